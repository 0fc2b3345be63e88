/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The collector's store, whichever it is (hub_db.h, hub_store.h): the --db argument chooses
 * SQLite (a file) or PostgreSQL (a postgresql:// or postgres:// URI); what does not depend on
 * the store lives here: the checks on a batch before any store is touched, the judging steps
 * each store's ingest calls (enrolment, signature and coverage, links onto what is held before
 * and after it, conflicts, seqs skipped, a gap before it), the rows both stores read alike, the
 * stats documents written from the rows a store reads, and the copy of one store into another
 * (migrate-db).
 */
#include "hub_db.h"

#include <stdio.h>
#include <string.h>

#include "crypto.h"
#include "device_report.h"
#include "hub_report.h"
#include "hub_store.h"
#include "plat_mem.h"

struct hub_db {
    const struct hub_store_ops *ops;
    void *impl;
};

const struct hub_store_ops *
hub_db_store(struct hub_db *db, void **impl)
{
    *impl = db->impl;
    return db->ops;
}

bool
hub_db_is_uri(const char *path)
{
    return path != NULL &&
           (strncmp(path, "postgresql://", 13) == 0 || strncmp(path, "postgres://", 11) == 0);
}

static enum posgate_err
open_store(const char *path, bool read_only, struct hub_db **out, char *errmsg, size_t errcap)
{
    struct hub_db *db;
    enum posgate_err err;

    if (path == NULL || out == NULL) {
        return POSGATE_ERR_INVALID;
    }
    *out = NULL;
    db = plat_calloc(1, sizeof(*db));
    if (db == NULL) {
        return POSGATE_ERR_NOMEM;
    }
    if (hub_db_is_uri(path)) {
        err = hub_pg_open(path, read_only, &db->impl, &db->ops, errmsg, errcap);
    } else {
        err = hub_sqlite_open(path, &db->impl, &db->ops, errmsg, errcap);
    }
    if (err != POSGATE_OK) {
        plat_free(db);
        return err;
    }
    *out = db;
    return POSGATE_OK;
}

enum posgate_err
hub_db_open(const char *path, struct hub_db **out, char *errmsg, size_t errcap)
{
    return open_store(path, false, out, errmsg, errcap);
}

enum posgate_err
hub_db_open_read(const char *path, struct hub_db **out, char *errmsg, size_t errcap)
{
    return open_store(path, true, out, errmsg, errcap);
}

void
hub_db_close(struct hub_db *db)
{
    if (db == NULL) {
        return;
    }
    db->ops->close(db->impl);
    plat_free(db);
}

const char *
hub_db_kind(const struct hub_db *db)
{
    return db != NULL ? db->ops->name : "";
}

enum posgate_err
hub_db_set_connections(struct hub_db *db, unsigned n)
{
    if (db == NULL) {
        return POSGATE_ERR_INVALID;
    }
    return db->ops->set_connections != NULL ? db->ops->set_connections(db->impl, n)
                                            : POSGATE_ERR_UNSUPPORTED;
}

void
hub_db_ingest_counts(struct hub_db *db, uint64_t *one_statement, uint64_t *judged)
{
    *one_statement = 0;
    *judged = 0;
    if (db != NULL && db->ops->ingest_counts != NULL) {
        db->ops->ingest_counts(db->impl, one_statement, judged);
    }
}

enum posgate_err
hub_db_enroll(struct hub_db *db, const char *pem, size_t len, int64_t now_s,
              char id[DEVICE_ID_HEX_LEN + 1], bool *added, char *errmsg, size_t errcap)
{
    struct crypto_pubkey *pk = NULL;
    struct buf text = BUF_INIT(CRYPTO_PEM_MAX);
    enum posgate_err err;
    bool add = false;

    if (db == NULL || pem == NULL || id == NULL) {
        return POSGATE_ERR_INVALID;
    }
    if (added != NULL) {
        *added = false;
    }
    err = buf_append(&text, pem, len); /* NUL-terminated for the PEM parser */
    if (err == POSGATE_OK) {
        err = crypto_pubkey_from_pem(buf_cstr(&text), CRYPTO_SCHEME_ECDSA_P256_SHA256, &pk);
    }
    if (err != POSGATE_OK) {
        snprintf(errmsg, errcap,
                 "expected an ECDSA P-256 public key in PEM (a device.pub), "
                 "found %zu bytes that are not one",
                 len);
        err = POSGATE_ERR_INVALID;
        goto out;
    }
    device_id_from_pub_pem(pem, len, id);
    err = db->ops->enroll(db->impl, id, pem, len, now_s, &add, errmsg, errcap);
    if (err == POSGATE_OK && added != NULL) {
        *added = add;
    }
out:
    crypto_pubkey_free(pk);
    buf_free(&text);
    return err;
}

/* ---- judging a batch ---- */

/* Keeps the break with the lowest seq. */
static void
note_break(struct hub_break *k, uint64_t seq, const char *kind, const char *event_json,
           const char *detail)
{
    if (k->seq != 0 && k->seq <= seq) {
        return;
    }
    k->seq = seq;
    k->kind = kind;
    k->event_json = event_json;
    snprintf(k->detail, sizeof(k->detail), "%s", detail);
}

static void
hexs(const uint8_t h[AUDIT_HASH_LEN], char out[2 * AUDIT_HASH_LEN + 1])
{
    crypto_hex(h, AUDIT_HASH_LEN, out);
}

/* Every link the batch makes with what is held, and seqs it skips. Called only for a batch
 * whose signed head covers all its events (hub_batch_covered): a break found here is one the
 * device signed, never one a third party made by editing a captured batch. */
static int
judge_breaks(const struct hub_batch *b, hub_held_fn held, void *ctx, struct hub_break *k,
             size_t *dups)
{
    static const uint8_t zero[AUDIT_HASH_LEN];
    uint8_t h[AUDIT_HASH_LEN], hp[AUDIT_HASH_LEN];
    char x[2 * AUDIT_HASH_LEN + 1], y[2 * AUDIT_HASH_LEN + 1], d[400];
    int f;

    *dups = 0;
    /* hub_batch_covered passed: every event links to the next by hash, so the only anomaly
     * left inside the batch is one the device signed, a seq skipped by a valid link */
    for (size_t i = 1; i < b->n; i++) {
        const struct hub_event *p = &b->ev[i - 1], *e = &b->ev[i];

        if (e->seq != p->seq + 1) {
            snprintf(d, sizeof(d),
                     "seq %llu..%llu missing inside the batch (events %llu and "
                     "%llu are next to each other): the device's trail lost events",
                     (unsigned long long)(p->seq + 1), (unsigned long long)(e->seq - 1),
                     (unsigned long long)p->seq, (unsigned long long)e->seq);
            note_break(k, p->seq + 1, "hole", NULL, d);
        }
    }
    if (b->n > 0) {
        const struct hub_event *first = &b->ev[0], *last = &b->ev[b->n - 1];

        if (first->seq == 1 && memcmp(first->prev, zero, AUDIT_HASH_LEN) != 0) {
            note_break(k, 1, "origin", first->text, "event 1 names a prev other than 64 zeros");
        }
        if (first->seq > 1) {
            f = held(ctx, first->seq - 1, h, hp);
            if (f < 0) {
                return f;
            }
            if (f == 1 && memcmp(h, first->prev, AUDIT_HASH_LEN) != 0) {
                hexs(first->prev, x);
                hexs(h, y);
                snprintf(d, sizeof(d),
                         "event %llu names prev %s but the held event %llu hashes "
                         "to %s",
                         (unsigned long long)first->seq, x, (unsigned long long)(first->seq - 1),
                         y);
                note_break(k, first->seq, "prev", first->text, d);
            }
        }
        f = held(ctx, last->seq + 1, hp, h);
        if (f < 0) {
            return f;
        }
        if (f == 1 && memcmp(h, last->hash, AUDIT_HASH_LEN) != 0) {
            hexs(h, x);
            hexs(last->hash, y);
            snprintf(d, sizeof(d),
                     "the held event %llu names prev %s but event %llu hashes to "
                     "%s",
                     (unsigned long long)(last->seq + 1), x, (unsigned long long)last->seq, y);
            note_break(k, last->seq, "prev", last->text, d);
        }
    }
    for (size_t i = 0; i < b->n; i++) {
        const struct hub_event *e = &b->ev[i];

        f = held(ctx, e->seq, h, hp);
        if (f < 0) {
            return f;
        }
        if (f == 1 && memcmp(h, e->hash, AUDIT_HASH_LEN) == 0) {
            (*dups)++;
        } else if (f == 1) {
            hexs(e->hash, x);
            hexs(h, y);
            snprintf(d, sizeof(d),
                     "event %llu hashes to %s but the event held at that seq "
                     "hashes to %s: the device's trail changed after upload",
                     (unsigned long long)e->seq, x, y);
            note_break(k, e->seq, "conflict", e->text, d);
        }
    }
    if (b->n == 0 && b->head_seq > 0) {
        f = held(ctx, b->head_seq, h, hp);
        if (f < 0) {
            return f;
        }
        if (f == 1 && memcmp(h, b->head_hash, AUDIT_HASH_LEN) != 0) {
            hexs(b->head_hash, x);
            hexs(h, y);
            snprintf(d, sizeof(d),
                     "signed head %llu is %s but the event held at that seq "
                     "hashes to %s",
                     (unsigned long long)b->head_seq, x, y);
            note_break(k, b->head_seq, "conflict", NULL, d);
        }
    }
    return 0;
}

/* The enrolled key must verify the signature over the head: else BADSIG with res->error. */
static enum posgate_err
judge_signature(const struct crypto_pubkey *pk, const struct hub_batch *b, struct hub_ingest *res)
{
    struct buf msg = BUF_INIT(512);
    enum posgate_err err = pk != NULL ? POSGATE_OK : POSGATE_ERR_INVALID;

    if (err == POSGATE_OK) {
        err = audit_head_message(b->device_id, b->head_seq, b->head_hash, &msg);
    }
    if (err == POSGATE_OK) {
        err = crypto_pubkey_verify(pk, msg.data, msg.len, b->sig, b->sig_len);
    }
    if (err != POSGATE_OK) {
        snprintf(res->error, sizeof(res->error),
                 "the signature over head seq %llu does not "
                 "verify with the public key enrolled for device %s",
                 (unsigned long long)b->head_seq, b->device_id);
        err = POSGATE_ERR_BADSIG;
    }
    buf_free(&msg);
    return err;
}

enum posgate_err
hub_judge_unenrolled(const struct hub_batch *b, struct hub_ingest *res)
{
    snprintf(res->error, sizeof(res->error),
             "device %s is not enrolled at this collector "
             "(posgate-hub enroll --pub device.pub)",
             b->device_id);
    return POSGATE_ERR_NOTFOUND;
}

enum posgate_err
hub_judge_signed(const char *pem, const struct hub_batch *b, struct hub_ingest *res)
{
    struct crypto_pubkey *pk = NULL;
    enum posgate_err err;

    /* a key that cannot be read verifies nothing: BADSIG, as judge_signature says */
    if (crypto_pubkey_from_pem(pem, CRYPTO_SCHEME_ECDSA_P256_SHA256, &pk) != POSGATE_OK) {
        pk = NULL;
    }
    err = hub_judge_signed_key(pk, b, res);
    crypto_pubkey_free(pk);
    return err;
}

enum posgate_err
hub_judge_signed_key(const struct crypto_pubkey *pk, const struct hub_batch *b,
                     struct hub_ingest *res)
{
    enum posgate_err err = judge_signature(pk, b, res);

    /* an event the signature does not cover proves nothing about the device: refused, and
     * nothing recorded (anyone holding a captured batch could have edited it) */
    if (err == POSGATE_OK) {
        err = hub_batch_covered(b, &res->broken_at, res->error, sizeof(res->error));
    }
    return err;
}

int
hub_judge_chain(const struct hub_batch *b, hub_held_fn held, void *ctx, struct hub_break *k,
                struct hub_ingest *res)
{
    int f;

    memset(k, 0, sizeof(*k));
    f = judge_breaks(b, held, ctx, k, &res->duplicates);
    if (f < 0 || k->seq == 0) {
        return f;
    }
    res->broken_at = k->seq;
    res->duplicates = 0;
    snprintf(res->error, sizeof(res->error), "chain broken at seq %llu (%s): %s",
             (unsigned long long)k->seq, k->kind, k->detail);
    return 1;
}

int
hub_judge_gap(const struct hub_batch *b, const struct hub_ingest *res, uint64_t anchor,
              hub_held_fn held, void *ctx)
{
    uint8_t h[AUDIT_HASH_LEN], hp[AUDIT_HASH_LEN];
    int f;

    /* a seq below the anchor was held and pruned: nothing is missing there */
    if (b->n == 0 || b->ev[0].seq <= 1 || res->duplicates >= b->n || b->ev[0].seq - 1 < anchor) {
        return 0;
    }
    f = held(ctx, b->ev[0].seq - 1, h, hp);
    return f < 0 ? f : f == 0;
}

enum posgate_err
hub_db_ingest(struct hub_db *db, const struct hub_batch *b, const char *idem_header, int64_t now_s,
              struct hub_ingest *res)
{
    const char *key;

    if (db == NULL || b == NULL || res == NULL) {
        return POSGATE_ERR_INVALID;
    }
    memset(res, 0, sizeof(*res));
    memcpy(res->device_id, b->device_id, sizeof(res->device_id));
    key = b->idem[0] != 0 ? b->idem : idem_header;
    if (idem_header != NULL && idem_header[0] != 0 && b->idem[0] != 0 &&
        strcmp(idem_header, b->idem) != 0) {
        snprintf(res->error, sizeof(res->error),
                 "Idempotency-Key header \"%.64s\" differs from "
                 "the batch's idempotency_key \"%.64s\"",
                 idem_header, b->idem);
        return POSGATE_ERR_INVALID;
    }
    if (key != NULL && strlen(key) > HUB_IDEM_MAX) {
        snprintf(res->error, sizeof(res->error), "Idempotency-Key of %zu bytes, at most %d",
                 strlen(key), HUB_IDEM_MAX);
        return POSGATE_ERR_INVALID;
    }
    if (key != NULL && key[0] == 0) {
        key = NULL;
    }
    return db->ops->ingest(db->impl, b, key, now_s, res);
}

enum posgate_err
hub_db_ingest_json(struct hub_db *db, const void *json, size_t len, const char *idem_header,
                   int64_t now_s, struct hub_ingest *res)
{
    struct hub_batch *b = NULL;
    enum posgate_err err;

    if (db == NULL || res == NULL) {
        return POSGATE_ERR_INVALID;
    }
    memset(res, 0, sizeof(*res));
    err = hub_batch_parse(json, len, &b, res->error, sizeof(res->error));
    if (err == POSGATE_OK) {
        err = hub_db_ingest(db, b, idem_header, now_s, res);
    }
    hub_batch_free(b);
    return err;
}

/* ---- reading ---- */

enum posgate_err
hub_row_pem(void *ctx, const struct hub_row *r)
{
    struct buf *out = ctx;

    buf_reset(out);
    return buf_append(out, r->t[0], r->tlen[0]);
}

enum posgate_err
hub_row_decisions(void *ctx, const struct hub_row *r)
{
    struct hub_totals *t = ctx;
    const char *d = r->t[0];
    uint64_t c = (uint64_t)r->i[0];

    t->events += c;
    if (d == NULL) {
        return POSGATE_OK;
    }
    if (strcmp(d, "allow") == 0) {
        t->allow = c;
    } else if (strcmp(d, "deny") == 0) {
        t->deny = c;
    } else if (strcmp(d, "refer") == 0) {
        t->refer = c;
    } else if (strcmp(d, "error") == 0) {
        t->error = c; /* checks the terminal could not decide */
    } else if (strcmp(d, "summary") == 0) {
        t->summary = c;
    }
    return POSGATE_OK;
}

enum posgate_err
hub_row_batches(void *ctx, const struct hub_row *r)
{
    struct hub_totals *t = ctx;

    t->batches = (uint64_t)r->i[0];
    t->repeats = (uint64_t)r->i[1];
    return POSGATE_OK;
}

enum posgate_err
hub_db_device(struct hub_db *db, const char *device_id, struct hub_device_state *out)
{
    enum posgate_err err;

    if (db == NULL || device_id == NULL || out == NULL) {
        return POSGATE_ERR_INVALID;
    }
    err = db->ops->read_begin(db->impl);
    if (err == POSGATE_OK) {
        err = db->ops->device_state(db->impl, device_id, out);
        db->ops->read_end(db->impl);
    }
    return err;
}

struct fmt {
    struct buf *out;
    int n;
};

static enum posgate_err
gap_json(void *ctx, const struct hub_row *r)
{
    struct fmt *f = ctx;

    return buf_printf(f->out, "%s[%lld,%lld]", f->n++ > 0 ? "," : "", (long long)r->i[0],
                      (long long)r->i[1]);
}

static enum posgate_err
gap_detected_json(void *ctx, const struct hub_row *r)
{
    struct fmt *f = ctx;

    return buf_printf(f->out, "%s{\"from\":%lld,\"to\":%lld,\"detected_at\":%lld,\"closed\":%s}",
                      f->n++ > 0 ? "," : "", (long long)r->i[0], (long long)r->i[1],
                      (long long)r->i[2], r->i[3] != 0 ? "true" : "false");
}

static enum posgate_err
break_json(void *ctx, const struct hub_row *r)
{
    struct fmt *f = ctx;

    /* kinds are the fixed words of hub_db.h: no escaping needed */
    return buf_printf(f->out, "%s{\"seq\":%lld,\"kind\":\"%s\",\"times\":%lld}",
                      f->n++ > 0 ? "," : "", (long long)r->i[0], r->t[0], (long long)r->i[1]);
}

static enum posgate_err
gap_text(void *ctx, const struct hub_row *r)
{
    struct fmt *f = ctx;

    return buf_printf(f->out, "%s%lld-%lld", f->n++ > 0 ? "," : " (", (long long)r->i[0],
                      (long long)r->i[1]);
}

static enum posgate_err
device_json(struct hub_db *db, const char *dev, struct buf *out)
{
    struct hub_device_state s;
    struct fmt f = {out, 0};
    enum posgate_err err;

    err = db->ops->device_state(db->impl, dev, &s);
    if (err == POSGATE_OK) {
        err = buf_printf(out,
                         "{\"device_id\":\"%s\",\"enrolled_at\":%lld,\"last_seq\":%llu,"
                         "\"held_seq\":%llu,\"events\":%llu,\"gaps\":%llu,\"gap_ranges\":[",
                         dev, (long long)s.enrolled_at, (unsigned long long)s.last_seq,
                         (unsigned long long)s.held_seq, (unsigned long long)s.events,
                         (unsigned long long)s.gaps);
    }
    if (err == POSGATE_OK) {
        err = db->ops->gap_ranges(db->impl, dev, gap_json, &f);
    }
    if (err == POSGATE_OK) {
        err = buf_printf(out, "],\"gaps_detected\":[");
        f.n = 0;
    }
    if (err == POSGATE_OK) {
        err = db->ops->gaps_detected(db->impl, dev, gap_detected_json, &f);
    }
    if (err == POSGATE_OK) {
        err = buf_printf(out, "],\"chain_ok\":%s,\"broken_at\":", s.chain_ok ? "true" : "false");
    }
    if (err == POSGATE_OK) {
        err = s.chain_ok ? buf_printf(out, "null")
                         : buf_printf(out, "%llu", (unsigned long long)s.broken_at);
    }
    if (err == POSGATE_OK) {
        err = buf_printf(out, ",\"chain_breaks\":[");
        f.n = 0;
    }
    if (err == POSGATE_OK) {
        err = db->ops->breaks(db->impl, dev, break_json, &f);
    }
    if (err == POSGATE_OK) {
        err = buf_printf(out, "]}");
    }
    return err;
}

/* One line per device for the text form of stats. */
static enum posgate_err
device_text(struct hub_db *db, const char *dev, struct buf *out)
{
    struct hub_device_state s;
    struct fmt f = {out, 0};
    enum posgate_err err = db->ops->device_state(db->impl, dev, &s);

    if (err == POSGATE_OK) {
        err = buf_printf(out, "%s  last_seq %llu  held %llu  events %llu  gaps %llu", dev,
                         (unsigned long long)s.last_seq, (unsigned long long)s.held_seq,
                         (unsigned long long)s.events, (unsigned long long)s.gaps);
    }
    if (err == POSGATE_OK) {
        err = db->ops->gap_ranges(db->impl, dev, gap_text, &f);
    }
    if (err == POSGATE_OK && f.n > 0) {
        err = buf_append_str(out, ")");
    }
    if (err == POSGATE_OK) {
        err = s.chain_ok
                  ? buf_printf(out, "  chain ok\n")
                  : buf_printf(out, "  chain BROKEN at seq %llu (%llu break record(s))\n",
                               (unsigned long long)s.broken_at, (unsigned long long)s.breaks);
    }
    return err;
}

struct ids {
    char (*id)[DEVICE_ID_HEX_LEN + 1];
    size_t n, cap;
};

static enum posgate_err
collect_id(void *ctx, const struct hub_row *r)
{
    struct ids *ids = ctx;

    if (ids->n == ids->cap) {
        size_t nc = ids->cap ? ids->cap * 2 : 16;
        void *p = plat_realloc(ids->id, nc * sizeof(*ids->id));

        if (p == NULL) {
            return POSGATE_ERR_NOMEM;
        }
        ids->id = p;
        ids->cap = nc;
    }
    snprintf(ids->id[ids->n++], sizeof(ids->id[0]), "%s", r->t[0] != NULL ? r->t[0] : "");
    return POSGATE_OK;
}

static enum posgate_err
stats(struct hub_db *db, bool json, struct buf *out)
{
    struct hub_totals t;
    struct ids ids = {NULL, 0, 0};
    enum posgate_err err;

    if (db == NULL || out == NULL) {
        return POSGATE_ERR_INVALID;
    }
    memset(&t, 0, sizeof(t));
    err = db->ops->read_begin(db->impl); /* one snapshot */
    if (err != POSGATE_OK) {
        return err;
    }
    err = db->ops->totals(db->impl, &t);
    if (err == POSGATE_OK) {
        err = db->ops->devices(db->impl, collect_id, &ids);
    }
    if (err == POSGATE_OK && !json) {
        err = buf_printf(out,
                         "events %llu: allow %llu, deny %llu, refer %llu, error %llu, summary %llu "
                         "(folding %s%llu allow)\nbatches %llu (%llu repeated)\ndevices %zu\n",
                         (unsigned long long)t.events, (unsigned long long)t.allow,
                         (unsigned long long)t.deny, (unsigned long long)t.refer,
                         (unsigned long long)t.error, (unsigned long long)t.summary,
                         t.folded_over ? "more than " : "", (unsigned long long)t.folded,
                         (unsigned long long)t.batches, (unsigned long long)t.repeats, ids.n);
        for (size_t i = 0; err == POSGATE_OK && i < ids.n; i++) {
            err = device_text(db, ids.id[i], out);
        }
        goto done;
    }
    if (err == POSGATE_OK) {
        err = buf_printf(
            out,
            "{\"events\":%llu,\"by_decision\":{\"allow\":%llu,\"deny\":%llu,"
            "\"refer\":%llu,\"error\":%llu,\"summary\":%llu,\"allow_folded\":%llu%s},"
            "\"batches\":%llu,\"repeated_batches\":%llu,\"devices\":[",
            (unsigned long long)t.events, (unsigned long long)t.allow, (unsigned long long)t.deny,
            (unsigned long long)t.refer, (unsigned long long)t.error, (unsigned long long)t.summary,
            (unsigned long long)t.folded, t.folded_over ? ",\"allow_folded_saturated\":true" : "",
            (unsigned long long)t.batches, (unsigned long long)t.repeats);
    }
    for (size_t i = 0; err == POSGATE_OK && i < ids.n; i++) {
        if (i > 0) {
            err = buf_append(out, ",", 1);
        }
        if (err == POSGATE_OK) {
            err = device_json(db, ids.id[i], out);
        }
    }
    if (err == POSGATE_OK) {
        err = buf_printf(out, "]}\n");
    }
done:
    db->ops->read_end(db->impl);
    plat_free(ids.id);
    return err;
}

enum posgate_err
hub_db_stats_json(struct hub_db *db, struct buf *out)
{
    return stats(db, true, out);
}

enum posgate_err
hub_db_stats_text(struct hub_db *db, struct buf *out)
{
    return stats(db, false, out);
}

/* ---- migrate-db ---- */

struct copy {
    struct hub_db *dst;
    enum hub_table t;
    uint64_t n;
    char *errmsg;
    size_t errcap;
};

static enum posgate_err
copy_row(void *ctx, const struct hub_row *r)
{
    struct copy *c = ctx;

    c->n++;
    return c->dst->ops->put_row(c->dst->impl, c->t, r, c->errmsg, c->errcap);
}

enum posgate_err
hub_db_migrate(struct hub_db *src, struct hub_db *dst, uint64_t *n_events, char *errmsg,
               size_t errcap)
{
    struct copy c = {dst, HUB_T_DEVICES, 0, errmsg, errcap};
    enum posgate_err err, end;

    if (src == NULL || dst == NULL) {
        return POSGATE_ERR_INVALID;
    }
    if (dst->ops->copy_begin == NULL) {
        snprintf(errmsg, errcap,
                 "expected a PostgreSQL destination (postgresql://...), found a "
                 "%s store",
                 dst->ops->name);
        return POSGATE_ERR_STATE;
    }
    err = dst->ops->copy_begin(dst->impl, errmsg, errcap);
    if (err != POSGATE_OK) {
        return err;
    }
    err = src->ops->read_begin(src->impl);
    if (err == POSGATE_OK) {
        for (int t = 0; err == POSGATE_OK && t < HUB_T_N; t++) {
            c.t = (enum hub_table)t;
            c.n = 0;
            err = src->ops->each_row(src->impl, c.t, copy_row, &c);
            if (err == POSGATE_OK && c.t == HUB_T_EVENTS && n_events != NULL) {
                *n_events = c.n;
            }
        }
        src->ops->read_end(src->impl);
    } else {
        snprintf(errmsg, errcap, "cannot read the source collector database");
    }
    end = dst->ops->copy_end(dst->impl, err == POSGATE_OK, errmsg, errcap);
    return err != POSGATE_OK ? err : end;
}

/* ---- device status reports ---- */

enum posgate_err
hub_db_report(struct hub_db *db, const void *json, size_t len, int64_t now_s,
              struct hub_report_result *res)
{
    struct hub_report *rep = NULL;
    struct buf pem = BUF_INIT(HUB_REPORT_PEM_MAX), msg = BUF_INIT(HUB_REPORT_MAX + 128);
    struct crypto_pubkey *pk = NULL;
    enum posgate_err err;

    if (db == NULL || json == NULL || res == NULL) {
        return POSGATE_ERR_INVALID;
    }
    memset(res, 0, sizeof(*res));
    err = hub_report_parse(json, len, &rep, res->error, sizeof(res->error));
    if (err != POSGATE_OK) {
        goto out;
    }
    memcpy(res->device_id, rep->device_id, sizeof(res->device_id));
    res->reported_at_us = rep->reported_at_us;
    err = db->ops->read_begin(db->impl);
    if (err == POSGATE_OK) {
        err = db->ops->device_pem(db->impl, rep->device_id, &pem);
        db->ops->read_end(db->impl);
    }
    if (err == POSGATE_ERR_NOTFOUND) {
        snprintf(res->error, sizeof(res->error), "device %s is not enrolled", rep->device_id);
    }
    if (err == POSGATE_OK) {
        err = buf_append(&pem, "", 1);
    }
    if (err == POSGATE_OK) {
        err = device_report_message(rep->device_id, rep->report, rep->report_len, &msg);
    }
    if (err == POSGATE_OK &&
        (crypto_pubkey_from_pem((const char *)pem.data, CRYPTO_SCHEME_ECDSA_P256_SHA256, &pk) !=
             POSGATE_OK ||
         crypto_pubkey_verify(pk, msg.data, msg.len, rep->sig, rep->sig_len) != POSGATE_OK)) {
        snprintf(res->error, sizeof(res->error),
                 "the report's signature does not verify with the public key enrolled for "
                 "device %s",
                 rep->device_id);
        err = POSGATE_ERR_BADSIG;
    }
    if (err == POSGATE_OK) {
        err = db->ops->report_put(db->impl, rep->device_id, rep->reported_at_us, now_s, rep->report,
                                  rep->report_len, &res->latest);
    }
out:
    crypto_pubkey_free(pk);
    hub_report_free(rep);
    buf_free(&pem);
    buf_free(&msg);
    return err;
}

struct report_each {
    hub_report_fn fn;
    void *ctx;
};

static enum posgate_err
report_row(void *ctx, const struct hub_row *r)
{
    struct report_each *e = ctx;

    return e->fn(e->ctx, r->t[0], r->t[1], r->tlen[1], r->i[0], r->i[1]);
}

enum posgate_err
hub_db_reports(struct hub_db *db, hub_report_fn fn, void *ctx)
{
    struct report_each e = {fn, ctx};
    enum posgate_err err;

    if (db == NULL || fn == NULL) {
        return POSGATE_ERR_INVALID;
    }
    err = db->ops->read_begin(db->impl);
    if (err == POSGATE_OK) {
        err = db->ops->reports(db->impl, report_row, &e);
        db->ops->read_end(db->impl);
    }
    return err;
}
