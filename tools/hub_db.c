/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The collector's SQLite store (hub_db.h): enrolment, judging a batch (signature, chain links
 * inside the batch, onto the events held before it and after it, conflicts with held events),
 * storing each (device, seq) once, and the records of gaps and chain breaks that stats reports.
 */
#include "hub_db.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include <sqlite3.h>

#include "crypto.h"
#include "plat_mem.h"

struct hub_db {
    sqlite3 *db;
    pthread_mutex_t mu; /* one batch at a time per connection */
};

static const char schema[] =
    "CREATE TABLE IF NOT EXISTS devices(device_id TEXT PRIMARY KEY, pub_pem TEXT NOT NULL,"
    " enrolled_at INTEGER NOT NULL, last_seq INTEGER NOT NULL DEFAULT 0,"
    " chain_ok INTEGER NOT NULL DEFAULT 1, broken_at INTEGER);"
    "CREATE TABLE IF NOT EXISTS events(device_id TEXT NOT NULL, seq INTEGER NOT NULL,"
    " hash BLOB NOT NULL, prev_hash BLOB NOT NULL, kind TEXT NOT NULL, decision TEXT NOT NULL,"
    " count INTEGER NOT NULL, json TEXT NOT NULL, received_at INTEGER NOT NULL,"
    " PRIMARY KEY(device_id, seq)) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS gaps(device_id TEXT NOT NULL, from_seq INTEGER NOT NULL,"
    " to_seq INTEGER NOT NULL, detected_at INTEGER NOT NULL, closed_at INTEGER,"
    " PRIMARY KEY(device_id, from_seq, to_seq));"
    "CREATE TABLE IF NOT EXISTS chain_breaks(device_id TEXT NOT NULL, seq INTEGER NOT NULL,"
    " kind TEXT NOT NULL, detail TEXT NOT NULL, event_json TEXT, first_seen INTEGER NOT NULL,"
    " last_seen INTEGER NOT NULL, times INTEGER NOT NULL, PRIMARY KEY(device_id, seq, kind));"
    "CREATE TABLE IF NOT EXISTS batches(device_id TEXT NOT NULL, idempotency_key TEXT NOT NULL,"
    " first_seq INTEGER NOT NULL, last_seq INTEGER NOT NULL, n_events INTEGER NOT NULL,"
    " stored INTEGER NOT NULL, status TEXT NOT NULL, received_at INTEGER NOT NULL,"
    " times INTEGER NOT NULL, PRIMARY KEY(device_id, idempotency_key));"
    "PRAGMA user_version=1;";

static enum posgate_err
sql_fail(struct hub_db *db, int rc, const char *what, char *errmsg, size_t errcap)
{
    if (errmsg != NULL && errcap > 0) {
        snprintf(errmsg, errcap, "collector database: %s: %s", what, sqlite3_errmsg(db->db));
    }
    return rc == SQLITE_BUSY || rc == SQLITE_LOCKED ? POSGATE_ERR_RETRY : POSGATE_ERR_IO;
}

enum posgate_err
hub_db_open(const char *path, struct hub_db **out, char *errmsg, size_t errcap)
{
    struct hub_db *db;
    enum posgate_err err = POSGATE_OK;
    int rc;

    if (path == NULL || out == NULL) {
        return POSGATE_ERR_INVALID;
    }
    *out = NULL;
    db = plat_calloc(1, sizeof(*db));
    if (db == NULL) {
        return POSGATE_ERR_NOMEM;
    }
    pthread_mutex_init(&db->mu, NULL);
    rc = sqlite3_open_v2(path, &db->db,
                         SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX, NULL);
    if (rc != SQLITE_OK) {
        snprintf(errmsg, errcap, "cannot open %s: %s", path,
                 db->db != NULL ? sqlite3_errmsg(db->db) : "out of memory");
        err = POSGATE_ERR_IO;
        goto out;
    }
    sqlite3_busy_timeout(db->db, 5000);
    rc =
        sqlite3_exec(db->db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;", NULL, NULL, NULL);
    if (rc == SQLITE_OK) {
        rc = sqlite3_exec(db->db, schema, NULL, NULL, NULL);
    }
    if (rc != SQLITE_OK) {
        err = sql_fail(db, rc, path, errmsg, errcap);
        goto out;
    }
    *out = db;
    db = NULL;
out:
    hub_db_close(db);
    return err;
}

void
hub_db_close(struct hub_db *db)
{
    if (db == NULL) {
        return;
    }
    sqlite3_close(db->db);
    pthread_mutex_destroy(&db->mu);
    plat_free(db);
}

enum posgate_err
hub_db_enroll(struct hub_db *db, const char *pem, size_t len, int64_t now_s,
              char id[DEVICE_ID_HEX_LEN + 1], bool *added, char *errmsg, size_t errcap)
{
    struct crypto_pubkey *pk = NULL;
    struct buf text = BUF_INIT(CRYPTO_PEM_MAX);
    sqlite3_stmt *st = NULL;
    enum posgate_err err;
    int rc;

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
    pthread_mutex_lock(&db->mu);
    rc = sqlite3_prepare_v2(db->db, "SELECT pub_pem FROM devices WHERE device_id = ?1", -1, &st,
                            NULL);
    if (rc == SQLITE_OK) {
        sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
        rc = sqlite3_step(st);
    }
    if (rc == SQLITE_ROW) {
        const char *have = (const char *)sqlite3_column_text(st, 0);

        if (have == NULL || strlen(have) != len || memcmp(have, pem, len) != 0) {
            snprintf(errmsg, errcap, "device %s is enrolled with a different public key", id);
            err = POSGATE_ERR_STATE;
        }
        goto unlock;
    }
    if (rc != SQLITE_DONE) {
        err = sql_fail(db, rc, "enrol", errmsg, errcap);
        goto unlock;
    }
    sqlite3_finalize(st);
    st = NULL;
    rc = sqlite3_prepare_v2(db->db,
                            "INSERT INTO devices(device_id, pub_pem, enrolled_at) "
                            "VALUES (?1, ?2, ?3)",
                            -1, &st, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, pem, (int)len, SQLITE_STATIC);
        sqlite3_bind_int64(st, 3, now_s);
        rc = sqlite3_step(st);
    }
    if (rc != SQLITE_DONE) {
        err = sql_fail(db, rc, "enrol", errmsg, errcap);
        goto unlock;
    }
    if (added != NULL) {
        *added = true;
    }
unlock:
    sqlite3_finalize(st);
    pthread_mutex_unlock(&db->mu);
out:
    crypto_pubkey_free(pk);
    buf_free(&text);
    return err;
}

/* ---- judging a batch ---- */

struct brk {
    uint64_t seq; /* 0: none */
    const char *kind;
    char detail[400];
    const char *event_json; /* borrowed from the batch; may be NULL */
};

/* Keeps the break with the lowest seq. */
static void
note_break(struct brk *k, uint64_t seq, const char *kind, const char *event_json,
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

/* The stored hash (col 0) or prev_hash (col 1) of (device, seq): 1 found, 0 not, -1 error. */
static int
held_hash(struct hub_db *db, const char *dev, uint64_t seq, int prev_col,
          uint8_t out[AUDIT_HASH_LEN], int *rc_out)
{
    sqlite3_stmt *st = NULL;
    int rc, found = 0;

    rc = sqlite3_prepare_v2(db->db,
                            prev_col ? "SELECT prev_hash FROM events WHERE device_id = ?1 "
                                       "AND seq = ?2"
                                     : "SELECT hash FROM events WHERE device_id = ?1 AND "
                                       "seq = ?2",
                            -1, &st, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_bind_text(st, 1, dev, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, (sqlite3_int64)seq);
        rc = sqlite3_step(st);
    }
    if (rc == SQLITE_ROW) {
        if (sqlite3_column_bytes(st, 0) == AUDIT_HASH_LEN) {
            memcpy(out, sqlite3_column_blob(st, 0), AUDIT_HASH_LEN);
        } else {
            memset(out, 0, AUDIT_HASH_LEN);
        }
        found = 1;
    } else if (rc != SQLITE_DONE) {
        found = -1;
    }
    *rc_out = rc;
    sqlite3_finalize(st);
    return found;
}

static int
query_u64(struct hub_db *db, const char *sql, const char *dev, uint64_t arg, uint64_t *out)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db->db, sql, -1, &st, NULL);

    *out = 0;
    if (rc == SQLITE_OK) {
        sqlite3_bind_text(st, 1, dev, -1, SQLITE_STATIC);
        if (sqlite3_bind_parameter_count(st) >= 2) {
            sqlite3_bind_int64(st, 2, (sqlite3_int64)arg);
        }
        rc = sqlite3_step(st);
    }
    if (rc == SQLITE_ROW) {
        *out = (uint64_t)sqlite3_column_int64(st, 0);
        rc = SQLITE_OK;
    } else if (rc == SQLITE_DONE) {
        rc = SQLITE_OK;
    }
    sqlite3_finalize(st);
    return rc;
}

/* Advances devices.last_seq over the contiguous seqs now held; *acked gets it. */
static int
advance_acked(struct hub_db *db, const char *dev, uint64_t *acked)
{
    sqlite3_stmt *st = NULL;
    uint64_t a;
    int rc = query_u64(db, "SELECT last_seq FROM devices WHERE device_id = ?1", dev, 0, &a);

    if (rc == SQLITE_OK) {
        rc = sqlite3_prepare_v2(db->db,
                                "SELECT seq FROM events WHERE device_id = ?1 AND "
                                "seq > ?2 ORDER BY seq",
                                -1, &st, NULL);
    }
    if (rc == SQLITE_OK) {
        sqlite3_bind_text(st, 1, dev, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, (sqlite3_int64)a);
        while ((rc = sqlite3_step(st)) == SQLITE_ROW &&
               (uint64_t)sqlite3_column_int64(st, 0) == a + 1) {
            a++;
        }
        rc = rc == SQLITE_ROW || rc == SQLITE_DONE ? SQLITE_OK : rc;
        sqlite3_finalize(st);
        st = NULL;
    }
    if (rc == SQLITE_OK) {
        rc = sqlite3_prepare_v2(db->db, "UPDATE devices SET last_seq = ?2 WHERE device_id = ?1", -1,
                                &st, NULL);
    }
    if (rc == SQLITE_OK) {
        sqlite3_bind_text(st, 1, dev, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, (sqlite3_int64)a);
        rc = sqlite3_step(st);
        rc = rc == SQLITE_DONE ? SQLITE_OK : rc;
    }
    sqlite3_finalize(st);
    *acked = a;
    return rc;
}

static int
exec_bound(struct hub_db *db, const char *sql, const char *dev, const int64_t *ints, size_t n_ints,
           const char *t1, const char *t2)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db->db, sql, -1, &st, NULL);

    if (rc == SQLITE_OK) {
        sqlite3_bind_text(st, 1, dev, -1, SQLITE_STATIC);
        for (size_t i = 0; i < n_ints; i++) {
            sqlite3_bind_int64(st, (int)i + 2, ints[i]);
        }
        if (t1 != NULL) {
            sqlite3_bind_text(st, (int)n_ints + 2, t1, -1, SQLITE_STATIC);
        }
        if (t2 != NULL) {
            sqlite3_bind_text(st, (int)n_ints + 3, t2, -1, SQLITE_STATIC);
        }
        rc = sqlite3_step(st);
        rc = rc == SQLITE_DONE || rc == SQLITE_ROW ? SQLITE_OK : rc;
    }
    sqlite3_finalize(st);
    return rc;
}

/* Records the batch under its idempotency key; *repeated when the key was known. */
static int
note_batch(struct hub_db *db, const struct hub_batch *b, const char *key, size_t stored,
           const char *status, int64_t now_s, bool *repeated)
{
    uint64_t seen = 0;
    int64_t v[4];
    int rc;

    *repeated = false;
    if (key == NULL || key[0] == 0) {
        return SQLITE_OK;
    }
    {
        sqlite3_stmt *st = NULL;

        rc = sqlite3_prepare_v2(db->db,
                                "SELECT times FROM batches WHERE device_id = ?1 AND "
                                "idempotency_key = ?2",
                                -1, &st, NULL);
        if (rc == SQLITE_OK) {
            sqlite3_bind_text(st, 1, b->device_id, -1, SQLITE_STATIC);
            sqlite3_bind_text(st, 2, key, -1, SQLITE_STATIC);
            rc = sqlite3_step(st);
            seen = rc == SQLITE_ROW ? (uint64_t)sqlite3_column_int64(st, 0) : 0;
            rc = rc == SQLITE_ROW || rc == SQLITE_DONE ? SQLITE_OK : rc;
        }
        sqlite3_finalize(st);
    }
    if (rc != SQLITE_OK) {
        return rc;
    }
    *repeated = seen > 0;
    v[0] = b->n > 0 ? (int64_t)b->ev[0].seq : 0;
    v[1] = b->n > 0 ? (int64_t)b->ev[b->n - 1].seq : 0;
    v[2] = (int64_t)b->n;
    v[3] = now_s;
    if (seen > 0) {
        return exec_bound(db,
                          "UPDATE batches SET times = times + 1, received_at = ?5, "
                          "status = ?6 WHERE device_id = ?1 AND idempotency_key = ?7",
                          b->device_id, v, 4, status, key);
    }
    {
        sqlite3_stmt *st = NULL;

        rc = sqlite3_prepare_v2(db->db,
                                "INSERT INTO batches(device_id, idempotency_key, "
                                "first_seq, last_seq, n_events, stored, status, "
                                "received_at, times) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, "
                                "?8, 1)",
                                -1, &st, NULL);
        if (rc == SQLITE_OK) {
            sqlite3_bind_text(st, 1, b->device_id, -1, SQLITE_STATIC);
            sqlite3_bind_text(st, 2, key, -1, SQLITE_STATIC);
            sqlite3_bind_int64(st, 3, v[0]);
            sqlite3_bind_int64(st, 4, v[1]);
            sqlite3_bind_int64(st, 5, v[2]);
            sqlite3_bind_int64(st, 6, (sqlite3_int64)stored);
            sqlite3_bind_text(st, 7, status, -1, SQLITE_STATIC);
            sqlite3_bind_int64(st, 8, now_s);
            rc = sqlite3_step(st);
            rc = rc == SQLITE_DONE ? SQLITE_OK : rc;
        }
        sqlite3_finalize(st);
    }
    return rc;
}

static int
record_break(struct hub_db *db, const char *dev, const struct brk *k, int64_t now_s)
{
    sqlite3_stmt *st = NULL;
    int64_t v[2];
    int rc;

    rc = sqlite3_prepare_v2(db->db,
                            "INSERT INTO chain_breaks(device_id, seq, kind, detail, "
                            "event_json, first_seen, last_seen, times) VALUES (?1, ?2, "
                            "?3, ?4, ?5, ?6, ?6, 1) ON CONFLICT(device_id, seq, kind) DO "
                            "UPDATE SET last_seen = ?6, times = times + 1",
                            -1, &st, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_bind_text(st, 1, dev, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, (sqlite3_int64)k->seq);
        sqlite3_bind_text(st, 3, k->kind, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 4, k->detail, -1, SQLITE_STATIC);
        if (k->event_json != NULL) {
            sqlite3_bind_text(st, 5, k->event_json, -1, SQLITE_STATIC);
        }
        sqlite3_bind_int64(st, 6, now_s);
        rc = sqlite3_step(st);
        rc = rc == SQLITE_DONE ? SQLITE_OK : rc;
    }
    sqlite3_finalize(st);
    if (rc == SQLITE_OK) {
        v[0] = (int64_t)k->seq;
        rc = exec_bound(db,
                        "UPDATE devices SET chain_ok = 0, broken_at = min(coalesce(broken_at, "
                        "?2), ?2) WHERE device_id = ?1",
                        dev, v, 1, NULL, NULL);
    }
    return rc;
}

static int
insert_event(struct hub_db *db, const char *dev, const struct hub_event *e, int64_t now_s)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db->db,
                                "INSERT INTO events(device_id, seq, hash, prev_hash, kind, "
                                "decision, count, json, received_at) VALUES (?1, ?2, ?3, "
                                "?4, ?5, ?6, ?7, ?8, ?9)",
                                -1, &st, NULL);

    if (rc == SQLITE_OK) {
        sqlite3_bind_text(st, 1, dev, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, (sqlite3_int64)e->seq);
        sqlite3_bind_blob(st, 3, e->hash, AUDIT_HASH_LEN, SQLITE_STATIC);
        sqlite3_bind_blob(st, 4, e->prev, AUDIT_HASH_LEN, SQLITE_STATIC);
        sqlite3_bind_text(st, 5, e->kind, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 6, e->decision, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 7, (sqlite3_int64)e->count);
        sqlite3_bind_text(st, 8, e->text, (int)e->len, SQLITE_STATIC);
        sqlite3_bind_int64(st, 9, now_s);
        rc = sqlite3_step(st);
        rc = rc == SQLITE_DONE ? SQLITE_OK : rc;
    }
    sqlite3_finalize(st);
    return rc;
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
find_breaks(struct hub_db *db, const struct hub_batch *b, struct brk *k, size_t *dups)
{
    static const uint8_t zero[AUDIT_HASH_LEN];
    uint8_t h[AUDIT_HASH_LEN];
    char x[2 * AUDIT_HASH_LEN + 1], y[2 * AUDIT_HASH_LEN + 1], d[400];
    int rc = SQLITE_OK, f;

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
            f = held_hash(db, b->device_id, first->seq - 1, 0, h, &rc);
            if (f < 0) {
                return rc;
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
        f = held_hash(db, b->device_id, last->seq + 1, 1, h, &rc);
        if (f < 0) {
            return rc;
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

        f = held_hash(db, b->device_id, e->seq, 0, h, &rc);
        if (f < 0) {
            return rc;
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
        f = held_hash(db, b->device_id, b->head_seq, 0, h, &rc);
        if (f < 0) {
            return rc;
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
    return SQLITE_OK;
}

static enum posgate_err
check_signature(const char *pem, const struct hub_batch *b, struct hub_ingest *res)
{
    struct crypto_pubkey *pk = NULL;
    struct buf msg = BUF_INIT(512);
    enum posgate_err err = crypto_pubkey_from_pem(pem, CRYPTO_SCHEME_ECDSA_P256_SHA256, &pk);

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
    crypto_pubkey_free(pk);
    buf_free(&msg);
    return err;
}

/* The lowest held seq below `below` (0 when none). */
static int
held_below(struct hub_db *db, const char *dev, uint64_t below, uint64_t *out)
{
    return query_u64(db,
                     "SELECT coalesce(max(seq), 0) FROM events WHERE device_id = ?1 AND "
                     "seq < ?2",
                     dev, below, out);
}

enum posgate_err
hub_db_ingest(struct hub_db *db, const struct hub_batch *b, const char *idem_header, int64_t now_s,
              struct hub_ingest *res)
{
    sqlite3_stmt *st = NULL;
    struct brk k;
    struct buf pem = BUF_INIT(CRYPTO_PEM_MAX);
    const char *key;
    enum posgate_err err = POSGATE_OK;
    bool in_tx = false;
    int rc;

    if (db == NULL || b == NULL || res == NULL) {
        return POSGATE_ERR_INVALID;
    }
    memset(res, 0, sizeof(*res));
    memset(&k, 0, sizeof(k));
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
    pthread_mutex_lock(&db->mu);
    rc = sqlite3_exec(db->db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
    if (rc != SQLITE_OK) {
        goto sqlerr;
    }
    in_tx = true;
    rc = sqlite3_prepare_v2(db->db, "SELECT pub_pem FROM devices WHERE device_id = ?1", -1, &st,
                            NULL);
    if (rc == SQLITE_OK) {
        sqlite3_bind_text(st, 1, b->device_id, -1, SQLITE_STATIC);
        rc = sqlite3_step(st);
    }
    if (rc == SQLITE_DONE) {
        snprintf(res->error, sizeof(res->error),
                 "device %s is not enrolled at this collector "
                 "(posgate-hub enroll --pub device.pub)",
                 b->device_id);
        err = POSGATE_ERR_NOTFOUND;
        goto out;
    }
    if (rc != SQLITE_ROW) {
        goto sqlerr;
    }
    err = buf_append_str(&pem, (const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    st = NULL;
    if (err != POSGATE_OK) {
        goto out;
    }
    rc = query_u64(db, "SELECT last_seq FROM devices WHERE device_id = ?1", b->device_id, 0,
                   &res->acked_seq);
    if (rc != SQLITE_OK) {
        goto sqlerr;
    }
    rc = query_u64(db, "SELECT coalesce(max(seq), 0) FROM events WHERE device_id = ?1",
                   b->device_id, 0, &res->held_seq);
    if (rc != SQLITE_OK) {
        goto sqlerr;
    }
    err = check_signature(buf_cstr(&pem), b, res);
    if (err != POSGATE_OK) {
        goto out;
    }
    /* an event the signature does not cover proves nothing about the device: refused, and
     * nothing recorded (anyone holding a captured batch could have edited it) */
    err = hub_batch_covered(b, &res->broken_at, res->error, sizeof(res->error));
    if (err != POSGATE_OK) {
        goto out;
    }
    rc = find_breaks(db, b, &k, &res->duplicates);
    if (rc != SQLITE_OK) {
        goto sqlerr;
    }
    if (k.seq != 0) {
        res->broken_at = k.seq;
        res->duplicates = 0;
        snprintf(res->error, sizeof(res->error), "chain broken at seq %llu (%s): %s",
                 (unsigned long long)k.seq, k.kind, k.detail);
        rc = record_break(db, b->device_id, &k, now_s);
        if (rc == SQLITE_OK) {
            rc = note_batch(db, b, key, 0, "chain_broken", now_s, &res->repeated_key);
        }
        if (rc == SQLITE_OK) {
            rc = sqlite3_exec(db->db, "COMMIT", NULL, NULL, NULL);
        }
        if (rc != SQLITE_OK) {
            goto sqlerr;
        }
        in_tx = false;
        err = POSGATE_ERR_BADHASH;
        goto out;
    }
    if (b->n > 0 && b->ev[0].seq > 1 && res->duplicates < b->n) {
        uint64_t below = 0;
        int f;
        uint8_t h[AUDIT_HASH_LEN];

        f = held_hash(db, b->device_id, b->ev[0].seq - 1, 0, h, &rc);
        if (f < 0) {
            goto sqlerr;
        }
        if (f == 0) {
            int64_t v[3];

            rc = held_below(db, b->device_id, b->ev[0].seq, &below);
            if (rc != SQLITE_OK) {
                goto sqlerr;
            }
            res->gap_from = below + 1;
            res->gap_to = b->ev[0].seq - 1;
            v[0] = (int64_t)res->gap_from;
            v[1] = (int64_t)res->gap_to;
            v[2] = now_s;
            rc = exec_bound(db,
                            "INSERT OR IGNORE INTO gaps(device_id, from_seq, to_seq, "
                            "detected_at) VALUES (?1, ?2, ?3, ?4)",
                            b->device_id, v, 3, NULL, NULL);
            if (rc != SQLITE_OK) {
                goto sqlerr;
            }
        }
    }
    for (size_t i = 0; i < b->n; i++) {
        uint8_t h[AUDIT_HASH_LEN];
        int f = held_hash(db, b->device_id, b->ev[i].seq, 0, h, &rc);

        if (f < 0) {
            goto sqlerr;
        }
        if (f == 0) {
            rc = insert_event(db, b->device_id, &b->ev[i], now_s);
            if (rc != SQLITE_OK) {
                goto sqlerr;
            }
            res->stored++;
        }
    }
    if (res->stored > 0) {
        int64_t v[1] = {now_s};

        /* a gap every seq of which is now held is closed, not forgotten */
        rc = exec_bound(db,
                        "UPDATE gaps SET closed_at = ?2 WHERE device_id = ?1 AND closed_at "
                        "IS NULL AND (SELECT count(*) FROM events e WHERE e.device_id = "
                        "gaps.device_id AND e.seq BETWEEN gaps.from_seq AND gaps.to_seq) = "
                        "to_seq - from_seq + 1",
                        b->device_id, v, 1, NULL, NULL);
        if (rc != SQLITE_OK) {
            goto sqlerr;
        }
    }
    rc = advance_acked(db, b->device_id, &res->acked_seq);
    if (rc == SQLITE_OK) {
        rc = query_u64(db, "SELECT coalesce(max(seq), 0) FROM events WHERE device_id = ?1",
                       b->device_id, 0, &res->held_seq);
    }
    if (rc == SQLITE_OK) {
        rc = note_batch(db, b, key, res->stored, "stored", now_s, &res->repeated_key);
    }
    if (rc == SQLITE_OK) {
        rc = sqlite3_exec(db->db, "COMMIT", NULL, NULL, NULL);
    }
    if (rc != SQLITE_OK) {
        goto sqlerr;
    }
    in_tx = false;
    err = POSGATE_OK;
    goto out;
sqlerr:
    err = sql_fail(db, rc, "ingest", res->error, sizeof(res->error));
out:
    sqlite3_finalize(st);
    if (in_tx) {
        sqlite3_exec(db->db, "ROLLBACK", NULL, NULL, NULL);
    }
    pthread_mutex_unlock(&db->mu);
    buf_free(&pem);
    return err;
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

static const char gaps_sql[] =
    "SELECT p + 1, seq - 1 FROM (SELECT seq, lag(seq, 1, 0) OVER (ORDER BY seq) AS p FROM events "
    "WHERE device_id = ?1) WHERE seq > p + 1 ORDER BY seq";

/* Called with db->mu held. */
static enum posgate_err
device_state(struct hub_db *db, const char *device_id, struct hub_device_state *out)
{
    sqlite3_stmt *st = NULL;
    enum posgate_err err = POSGATE_OK;
    int rc;

    memset(out, 0, sizeof(*out));
    rc = sqlite3_prepare_v2(db->db,
                            "SELECT enrolled_at, last_seq, chain_ok, "
                            "coalesce(broken_at, 0) FROM devices WHERE device_id = ?1",
                            -1, &st, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_bind_text(st, 1, device_id, -1, SQLITE_STATIC);
        rc = sqlite3_step(st);
    }
    if (rc == SQLITE_DONE) {
        err = POSGATE_ERR_NOTFOUND;
        goto out;
    }
    if (rc != SQLITE_ROW) {
        err = sql_fail(db, rc, "device", NULL, 0);
        goto out;
    }
    snprintf(out->device_id, sizeof(out->device_id), "%s", device_id);
    out->enrolled_at = sqlite3_column_int64(st, 0);
    out->last_seq = (uint64_t)sqlite3_column_int64(st, 1);
    out->chain_ok = sqlite3_column_int(st, 2) != 0;
    out->broken_at = (uint64_t)sqlite3_column_int64(st, 3);
    sqlite3_finalize(st);
    st = NULL;
    rc = query_u64(db, "SELECT count(*) FROM events WHERE device_id = ?1", device_id, 0,
                   &out->events);
    if (rc == SQLITE_OK) {
        rc = query_u64(db, "SELECT coalesce(max(seq), 0) FROM events WHERE device_id = ?1",
                       device_id, 0, &out->held_seq);
    }
    if (rc == SQLITE_OK) {
        rc = query_u64(db, "SELECT count(*) FROM chain_breaks WHERE device_id = ?1", device_id, 0,
                       &out->breaks);
    }
    if (rc == SQLITE_OK) {
        rc = sqlite3_prepare_v2(db->db, gaps_sql, -1, &st, NULL);
    }
    if (rc == SQLITE_OK) {
        sqlite3_bind_text(st, 1, device_id, -1, SQLITE_STATIC);
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
            out->gaps++;
        }
        rc = rc == SQLITE_DONE ? SQLITE_OK : rc;
    }
    if (rc != SQLITE_OK) {
        err = sql_fail(db, rc, "device", NULL, 0);
    }
out:
    sqlite3_finalize(st);
    return err;
}

enum posgate_err
hub_db_device(struct hub_db *db, const char *device_id, struct hub_device_state *out)
{
    enum posgate_err err;

    if (db == NULL || device_id == NULL || out == NULL) {
        return POSGATE_ERR_INVALID;
    }
    pthread_mutex_lock(&db->mu);
    err = device_state(db, device_id, out);
    pthread_mutex_unlock(&db->mu);
    return err;
}

/* Called with db->mu held. */
static enum posgate_err
device_json(struct hub_db *db, const char *dev, struct buf *out)
{
    struct hub_device_state s;
    sqlite3_stmt *st = NULL;
    enum posgate_err err;
    int rc, n = 0;

    err = device_state(db, dev, &s);
    if (err != POSGATE_OK) {
        return err;
    }
    err = buf_printf(out,
                     "{\"device_id\":\"%s\",\"enrolled_at\":%lld,\"last_seq\":%llu,"
                     "\"held_seq\":%llu,\"events\":%llu,\"gaps\":%llu,\"gap_ranges\":[",
                     dev, (long long)s.enrolled_at, (unsigned long long)s.last_seq,
                     (unsigned long long)s.held_seq, (unsigned long long)s.events,
                     (unsigned long long)s.gaps);
    rc = sqlite3_prepare_v2(db->db, gaps_sql, -1, &st, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_bind_text(st, 1, dev, -1, SQLITE_STATIC);
        while (err == POSGATE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
            err = buf_printf(out, "%s[%lld,%lld]", n++ > 0 ? "," : "",
                             (long long)sqlite3_column_int64(st, 0),
                             (long long)sqlite3_column_int64(st, 1));
        }
        rc = rc == SQLITE_DONE || rc == SQLITE_ROW ? SQLITE_OK : rc;
    }
    sqlite3_finalize(st);
    st = NULL;
    if (err == POSGATE_OK && rc == SQLITE_OK) {
        err = buf_printf(out, "],\"gaps_detected\":[");
        n = 0;
        rc = sqlite3_prepare_v2(db->db,
                                "SELECT from_seq, to_seq, detected_at, closed_at FROM "
                                "gaps WHERE device_id = ?1 ORDER BY from_seq",
                                -1, &st, NULL);
        if (rc == SQLITE_OK) {
            sqlite3_bind_text(st, 1, dev, -1, SQLITE_STATIC);
            while (err == POSGATE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
                err = buf_printf(out,
                                 "%s{\"from\":%lld,\"to\":%lld,\"detected_at\":%lld,"
                                 "\"closed\":%s}",
                                 n++ > 0 ? "," : "", (long long)sqlite3_column_int64(st, 0),
                                 (long long)sqlite3_column_int64(st, 1),
                                 (long long)sqlite3_column_int64(st, 2),
                                 sqlite3_column_type(st, 3) == SQLITE_NULL ? "false" : "true");
            }
            rc = rc == SQLITE_DONE || rc == SQLITE_ROW ? SQLITE_OK : rc;
        }
        sqlite3_finalize(st);
        st = NULL;
    }
    if (err == POSGATE_OK && rc == SQLITE_OK) {
        err = buf_printf(out, "],\"chain_ok\":%s,\"broken_at\":", s.chain_ok ? "true" : "false");
        if (err == POSGATE_OK) {
            err = s.chain_ok ? buf_printf(out, "null")
                             : buf_printf(out, "%llu", (unsigned long long)s.broken_at);
        }
        if (err == POSGATE_OK) {
            err = buf_printf(out, ",\"chain_breaks\":[");
        }
        n = 0;
        rc = sqlite3_prepare_v2(db->db,
                                "SELECT seq, kind, times FROM chain_breaks WHERE "
                                "device_id = ?1 ORDER BY seq, kind",
                                -1, &st, NULL);
        if (rc == SQLITE_OK) {
            sqlite3_bind_text(st, 1, dev, -1, SQLITE_STATIC);
            while (err == POSGATE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
                /* kinds are the fixed words of hub_db.h: no escaping needed */
                err = buf_printf(out, "%s{\"seq\":%lld,\"kind\":\"%s\",\"times\":%lld}",
                                 n++ > 0 ? "," : "", (long long)sqlite3_column_int64(st, 0),
                                 (const char *)sqlite3_column_text(st, 1),
                                 (long long)sqlite3_column_int64(st, 2));
            }
            rc = rc == SQLITE_DONE || rc == SQLITE_ROW ? SQLITE_OK : rc;
        }
        sqlite3_finalize(st);
        st = NULL;
        if (err == POSGATE_OK) {
            err = buf_printf(out, "]}");
        }
    }
    if (err == POSGATE_OK && rc != SQLITE_OK) {
        err = sql_fail(db, rc, "stats", NULL, 0);
    }
    return err;
}

/* Called with db->mu held: one line per device for the text form of stats. */
static enum posgate_err
device_text(struct hub_db *db, const char *dev, struct buf *out)
{
    struct hub_device_state s;
    sqlite3_stmt *st = NULL;
    enum posgate_err err = device_state(db, dev, &s);
    int rc, n = 0;

    if (err == POSGATE_OK) {
        err = buf_printf(out, "%s  last_seq %llu  held %llu  events %llu  gaps %llu", dev,
                         (unsigned long long)s.last_seq, (unsigned long long)s.held_seq,
                         (unsigned long long)s.events, (unsigned long long)s.gaps);
    }
    if (err != POSGATE_OK) {
        return err;
    }
    rc = sqlite3_prepare_v2(db->db, gaps_sql, -1, &st, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_bind_text(st, 1, dev, -1, SQLITE_STATIC);
        while (err == POSGATE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
            err = buf_printf(out, "%s%lld-%lld", n++ > 0 ? "," : " (",
                             (long long)sqlite3_column_int64(st, 0),
                             (long long)sqlite3_column_int64(st, 1));
        }
        rc = rc == SQLITE_DONE || rc == SQLITE_ROW ? SQLITE_OK : rc;
    }
    sqlite3_finalize(st);
    if (err == POSGATE_OK && n > 0) {
        err = buf_append_str(out, ")");
    }
    if (err == POSGATE_OK) {
        err = s.chain_ok
                  ? buf_printf(out, "  chain ok\n")
                  : buf_printf(out, "  chain BROKEN at seq %llu (%llu break record(s))\n",
                               (unsigned long long)s.broken_at, (unsigned long long)s.breaks);
    }
    if (err == POSGATE_OK && rc != SQLITE_OK) {
        err = sql_fail(db, rc, "stats", NULL, 0);
    }
    return err;
}

/* The ALLOWs all summaries stand for, added in C with a check rather than by SQLite's sum(),
 * which fails the whole query on a 64-bit overflow. Ingest bounds each count
 * (HUB_SUMMARY_*), but a database written before that bound, or a device that sends maximal
 * summaries for years, could still pass 2^64: the figure then stays at UINT64_MAX and *over
 * says so, and every other figure is still reported. Called with db->mu held. */
static int
sum_folded(struct hub_db *db, uint64_t *folded, bool *over)
{
    sqlite3_stmt *st = NULL;
    int rc;

    *folded = 0;
    *over = false;
    rc = sqlite3_prepare_v2(db->db, "SELECT count FROM events WHERE decision = 'summary'", -1, &st,
                            NULL);
    while (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        sqlite3_int64 c = sqlite3_column_int64(st, 0);

        rc = SQLITE_OK;
        if (c < 0) {
            continue; /* never written by ingest: not an ALLOW count */
        }
        if ((uint64_t)c > UINT64_MAX - *folded) {
            *folded = UINT64_MAX;
            *over = true;
        } else {
            *folded += (uint64_t)c;
        }
    }
    rc = rc == SQLITE_DONE ? SQLITE_OK : rc;
    sqlite3_finalize(st);
    return rc;
}

static enum posgate_err
stats(struct hub_db *db, bool json, struct buf *out)
{
    sqlite3_stmt *st = NULL;
    uint64_t events = 0, allow = 0, deny = 0, refer = 0, error = 0, summary = 0, folded = 0,
             batches = 0, repeats = 0;
    bool folded_over = false;
    enum posgate_err err = POSGATE_OK;
    char(*ids)[DEVICE_ID_HEX_LEN + 1] = NULL;
    size_t n_ids = 0, cap_ids = 0;
    int rc;

    if (db == NULL || out == NULL) {
        return POSGATE_ERR_INVALID;
    }
    pthread_mutex_lock(&db->mu);
    rc = sqlite3_exec(db->db, "BEGIN", NULL, NULL, NULL); /* one snapshot */
    if (rc == SQLITE_OK) {
        rc = sqlite3_prepare_v2(db->db, "SELECT decision, count(*) FROM events GROUP BY decision",
                                -1, &st, NULL);
    }
    if (rc == SQLITE_OK) {
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
            const char *d = (const char *)sqlite3_column_text(st, 0);
            uint64_t c = (uint64_t)sqlite3_column_int64(st, 1);

            events += c;
            if (d == NULL) {
                continue;
            }
            if (strcmp(d, "allow") == 0) {
                allow = c;
            } else if (strcmp(d, "deny") == 0) {
                deny = c;
            } else if (strcmp(d, "refer") == 0) {
                refer = c;
            } else if (strcmp(d, "error") == 0) {
                error = c; /* checks the terminal could not decide */
            } else if (strcmp(d, "summary") == 0) {
                summary = c;
            }
        }
        rc = rc == SQLITE_DONE ? SQLITE_OK : rc;
    }
    sqlite3_finalize(st);
    st = NULL;
    if (rc == SQLITE_OK) {
        rc = sum_folded(db, &folded, &folded_over);
    }
    if (rc == SQLITE_OK) {
        rc = sqlite3_prepare_v2(db->db,
                                "SELECT count(*), coalesce(sum(times - 1), 0) FROM "
                                "batches",
                                -1, &st, NULL);
        if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
            batches = (uint64_t)sqlite3_column_int64(st, 0);
            repeats = (uint64_t)sqlite3_column_int64(st, 1);
            rc = SQLITE_OK;
        }
        sqlite3_finalize(st);
        st = NULL;
    }
    if (rc == SQLITE_OK) {
        rc = sqlite3_prepare_v2(db->db, "SELECT device_id FROM devices ORDER BY device_id", -1, &st,
                                NULL);
        while (rc == SQLITE_OK && err == POSGATE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
            const char *d = (const char *)sqlite3_column_text(st, 0);

            rc = SQLITE_OK;
            if (n_ids == cap_ids) {
                size_t nc = cap_ids ? cap_ids * 2 : 16;
                void *p = plat_realloc(ids, nc * sizeof(*ids));

                if (p == NULL) {
                    err = POSGATE_ERR_NOMEM;
                    break;
                }
                ids = p;
                cap_ids = nc;
            }
            snprintf(ids[n_ids++], sizeof(ids[0]), "%s", d != NULL ? d : "");
        }
        rc = rc == SQLITE_DONE || rc == SQLITE_ROW ? SQLITE_OK : rc;
        sqlite3_finalize(st);
        st = NULL;
    }
    if (err == POSGATE_OK && rc != SQLITE_OK) {
        err = sql_fail(db, rc, "stats", NULL, 0);
    }
    if (err == POSGATE_OK && !json) {
        err = buf_printf(out,
                         "events %llu: allow %llu, deny %llu, refer %llu, error %llu, summary %llu "
                         "(folding %s%llu allow)\nbatches %llu (%llu repeated)\ndevices %zu\n",
                         (unsigned long long)events, (unsigned long long)allow,
                         (unsigned long long)deny, (unsigned long long)refer,
                         (unsigned long long)error, (unsigned long long)summary,
                         folded_over ? "more than " : "", (unsigned long long)folded,
                         (unsigned long long)batches, (unsigned long long)repeats, n_ids);
        for (size_t i = 0; err == POSGATE_OK && i < n_ids; i++) {
            err = device_text(db, ids[i], out);
        }
        goto done;
    }
    if (err == POSGATE_OK) {
        err = buf_printf(out,
                         "{\"events\":%llu,\"by_decision\":{\"allow\":%llu,\"deny\":%llu,"
                         "\"refer\":%llu,\"error\":%llu,\"summary\":%llu,\"allow_folded\":%llu%s},"
                         "\"batches\":%llu,\"repeated_batches\":%llu,\"devices\":[",
                         (unsigned long long)events, (unsigned long long)allow,
                         (unsigned long long)deny, (unsigned long long)refer,
                         (unsigned long long)error,
                         (unsigned long long)summary, (unsigned long long)folded,
                         folded_over ? ",\"allow_folded_saturated\":true" : "",
                         (unsigned long long)batches, (unsigned long long)repeats);
    }
    for (size_t i = 0; err == POSGATE_OK && i < n_ids; i++) {
        if (i > 0) {
            err = buf_append(out, ",", 1);
        }
        if (err == POSGATE_OK) {
            err = device_json(db, ids[i], out);
        }
    }
    if (err == POSGATE_OK) {
        err = buf_printf(out, "]}\n");
    }
done:
    sqlite3_exec(db->db, "COMMIT", NULL, NULL, NULL);
    pthread_mutex_unlock(&db->mu);
    plat_free(ids);
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
