/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The update path: TUF refresh on a staging copy of the trusted metadata, then per list a delta
 * chain or a snapshot, all applied in one store transaction, then promotion of the metadata.
 * See update.h for the rules.
 */
#define _POSIX_C_SOURCE 200809L
#include "update.h"

#include <stdarg.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "crypto.h"
#include "datadir.h"
#include "feed_config.h"
#include "feed_records.h"
#include "ident.h"
#include "json_canon.h"
#include "list_key.h"
#include "list_config.h"
#include "pins.h"
#include "plat_clock.h"
#include "plat_file.h"
#include "plat_lock.h"
#include "plat_log.h"
#include "plat_mem.h"
#include "progress.h"
#include "state_digest.h"
#include "store.h"
#include "tuf_client.h"
#include "tuf_meta.h"

#define TUF_FILE_MAX     (8u << 20)
#define CUSTOM_MAX       4096
#define LIST_TARGETS_MAX 4096

/* One list target as its signed custom metadata describes it. */
struct list_target {
    struct tuf_target_info info; /* strings owned by the client */
    int is_delta;
    uint64_t seq;
    uint64_t base_seq;
    uint64_t entries;
    int64_t issued_at;
    char digest[STATE_DIGEST_HEX_LEN + 1];
    int ident_format; /* custom "ident_format"; 1 when absent (feeds before it) */
};

struct collect {
    const char *list_id;
    char prefix[FEED_LIST_ID_MAX + 16];
    struct list_target *v;
    size_t n;
    size_t cap;
    char *errmsg;
    size_t errcap;
};

struct run {
    const struct update_options *opt;
    struct datadir dd;
    struct store *st;
    struct tuf_client *tc;
    struct feed_config *cfg;
    struct tuf_meta *targets_meta; /* trusted top-level targets, for delegations */
    struct buf targets_json;       /* its bytes */
    struct update_result *res;
    int64_t now;
    char *errmsg;
    size_t errcap;
    int committed; /* the store holds the new version */
    int promoted;  /* ... and tuf/ its metadata */
};

static void fail(struct run *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
fail(struct run *r, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(r->errmsg, r->errcap, fmt, ap);
    va_end(ap);
}

static enum posgate_err
tuf_to_update_err(enum posgate_err e)
{
    if (e == POSGATE_ERR_NETWORK || e == POSGATE_ERR_RETRY || e == POSGATE_ERR_IO ||
        e == POSGATE_ERR_NOMEM) {
        return e;
    }
    return POSGATE_ERR_REJECTED;
}

/* Parses a list target's custom metadata. */
static enum posgate_err
parse_custom(const struct tuf_target_info *t, const char *list_id, struct list_target *out,
             char *errmsg, size_t errcap)
{
    cJSON *c = NULL, *v;
    char msg[160];
    enum posgate_err err = POSGATE_ERR_REJECTED;
    int64_t i;
    const char *base = strrchr(t->name, '/');

    memset(out, 0, sizeof(*out));
    out->info = *t;
    base = base != NULL ? base + 1 : t->name;
    out->is_delta = strncmp(base, "delta-", 6) == 0;
    if (!out->is_delta && strncmp(base, "snapshot-", 9) != 0) {
        return POSGATE_ERR_NOTFOUND; /* another kind of file of the list: not ours to read */
    }
    if (t->custom_json == NULL ||
        json_parse_bounded(t->custom_json, strlen(t->custom_json), CUSTOM_MAX, &c, msg,
                           sizeof(msg)) != POSGATE_OK ||
        !cJSON_IsObject(c)) {
        snprintf(errmsg, errcap, "target %s: expected custom metadata {list, seq, ...}, found %s",
                 t->name, t->custom_json ? "malformed JSON" : "none");
        goto out;
    }
    v = cJSON_GetObjectItemCaseSensitive(c, "list");
    if (!cJSON_IsString(v) || strcmp(v->valuestring, list_id) != 0) {
        snprintf(errmsg, errcap, "target %s: custom \"list\" is %s%s%s, expected \"%s\"", t->name,
                 cJSON_IsString(v) ? "\"" : "", cJSON_IsString(v) ? v->valuestring : "missing",
                 cJSON_IsString(v) ? "\"" : "", list_id);
        goto out;
    }
    if (json_get_int(c, "seq", 1, INT64_MAX, &i) != POSGATE_OK) {
        snprintf(errmsg, errcap, "target %s: custom \"seq\" must be a positive integer", t->name);
        goto out;
    }
    out->seq = (uint64_t)i;
    if (out->is_delta) {
        if (json_get_int(c, "base_seq", 1, (int64_t)out->seq - 1, &i) != POSGATE_OK) {
            snprintf(errmsg, errcap,
                     "target %s: custom \"base_seq\" must be an integer below seq %llu", t->name,
                     (unsigned long long)out->seq);
            goto out;
        }
        out->base_seq = (uint64_t)i;
    }
    if (json_get_int(c, "entries", 0, (int64_t)FEED_MAX_ENTRIES, &i) != POSGATE_OK) {
        snprintf(errmsg, errcap, "target %s: custom \"entries\" must be a count", t->name);
        goto out;
    }
    out->entries = (uint64_t)i;
    v = cJSON_GetObjectItemCaseSensitive(c, "issued_at");
    if (cJSON_IsString(v)) {
        if (plat_time_parse(v->valuestring, &out->issued_at) != POSGATE_OK) {
            snprintf(errmsg, errcap, "target %s: custom \"issued_at\" is not RFC 3339: \"%.40s\"",
                     t->name, v->valuestring);
            goto out;
        }
    } else if (json_get_int(c, "issued_at", 0, FEED_TIME_MAX, &out->issued_at) != POSGATE_OK) {
        snprintf(errmsg, errcap, "target %s: custom \"issued_at\" missing", t->name);
        goto out;
    }
    v = cJSON_GetObjectItemCaseSensitive(c, "digest");
    if (!cJSON_IsString(v) || strlen(v->valuestring) != STATE_DIGEST_HEX_LEN) {
        snprintf(errmsg, errcap, "target %s: custom \"digest\" must be %d hex digits", t->name,
                 STATE_DIGEST_HEX_LEN);
        goto out;
    }
    snprintf(out->digest, sizeof(out->digest), "%s", v->valuestring);
    i = 1;
    if (cJSON_GetObjectItemCaseSensitive(c, "ident_format") != NULL &&
        json_get_int(c, "ident_format", 1, INT32_MAX, &i) != POSGATE_OK) {
        snprintf(errmsg, errcap, "target %s: custom \"ident_format\" must be a positive integer",
                 t->name);
        goto out;
    }
    out->ident_format = (int)i;
    err = POSGATE_OK;
out:
    cJSON_Delete(c);
    return err;
}

static enum posgate_err
collect_fn(void *ctx, const struct tuf_target_info *t)
{
    struct collect *c = ctx;
    struct list_target lt;
    enum posgate_err err;

    if (strncmp(t->name, c->prefix, strlen(c->prefix)) != 0) {
        return POSGATE_OK;
    }
    err = parse_custom(t, c->list_id, &lt, c->errmsg, c->errcap);
    if (err == POSGATE_ERR_NOTFOUND) {
        return POSGATE_OK;
    }
    if (err != POSGATE_OK) {
        return err;
    }
    if (c->n == c->cap) {
        size_t ncap = c->cap ? c->cap * 2 : 16;
        struct list_target *nv;

        if (ncap > LIST_TARGETS_MAX) {
            snprintf(c->errmsg, c->errcap, "list %s: more than %d targets", c->list_id,
                     LIST_TARGETS_MAX);
            return POSGATE_ERR_REJECTED;
        }
        nv = plat_realloc(c->v, ncap * sizeof(*nv));
        if (nv == NULL) {
            return POSGATE_ERR_NOMEM;
        }
        c->v = nv;
        c->cap = ncap;
    }
    c->v[c->n++] = lt;
    return POSGATE_OK;
}

/* The delegated role responsible for a list's targets, or NULL when the top-level targets role
 * holds them itself. */
static const char *
list_role(const struct run *r, const char *list_id)
{
    char probe[FEED_LIST_ID_MAX + 32];

    if (r->targets_meta == NULL || !r->targets_meta->has_delegations) {
        return NULL;
    }
    snprintf(probe, sizeof(probe), "lists/%s/snapshot-1.pgs", list_id);
    for (size_t i = 0; i < r->targets_meta->delegations.nroles; i++) {
        const struct tuf_deleg_role *d = &r->targets_meta->delegations.roles[i];

        if (tuf_deleg_role_matches(d, probe)) {
            return d->name;
        }
    }
    return NULL;
}

static enum posgate_err
collect_list(struct run *r, const char *list_id, struct collect *c)
{
    enum posgate_err err;
    const char *role = list_role(r, list_id);

    memset(c, 0, sizeof(*c));
    c->list_id = list_id;
    snprintf(c->prefix, sizeof(c->prefix), "lists/%s/", list_id);
    c->errmsg = r->errmsg;
    c->errcap = r->errcap;
    err = tuf_client_foreach_target(r->tc, "targets", collect_fn, c);
    if (err != POSGATE_OK) {
        if (r->errmsg[0] == 0) {
            fail(r, "%s", tuf_client_errmsg(r->tc));
        }
        return tuf_to_update_err(err);
    }
    if (role == NULL) {
        return POSGATE_OK;
    }
    if (c->n > 0) {
        fail(r,
             "list %s is delegated to the role \"%s\" (its authority's keys), but the top-level "
             "targets role lists %s: refused",
             list_id, role, c->v[0].info.name);
        return POSGATE_ERR_REJECTED;
    }
    err = tuf_client_foreach_target(r->tc, role, collect_fn, c);
    if (err != POSGATE_OK) {
        if (r->errmsg[0] == 0 || strstr(r->errmsg, "target ") != r->errmsg) {
            fail(r, "list %s (role %s): %s", list_id, role, tuf_client_errmsg(r->tc));
        }
        return tuf_to_update_err(err);
    }
    return POSGATE_OK;
}

struct file_source {
    FILE *f;
    uint64_t bytes;
};

static enum posgate_err
file_read(void *ctx, uint8_t *buf, size_t cap, size_t *got)
{
    struct file_source *s = ctx;
    size_t n = fread(buf, 1, cap, s->f);

    if (n == 0 && ferror(s->f)) {
        return POSGATE_ERR_IO;
    }
    s->bytes += n;
    *got = n;
    return POSGATE_OK;
}

static enum posgate_err
download(struct run *r, const struct list_target *t, char *path, size_t cap)
{
    const char *base = strrchr(t->info.name, '/');
    enum posgate_err err;
    char name[512];

    snprintf(name, sizeof(name), "%s", base != NULL ? base + 1 : t->info.name);
    err = plat_path_join(path, cap, r->dd.incoming, name);
    if (err != POSGATE_OK) {
        return err;
    }
    err = tuf_client_download(r->tc, &t->info, path);
    if (err != POSGATE_OK) {
        fail(r, "target %s: %s", t->info.name, tuf_client_errmsg(r->tc));
        return tuf_to_update_err(err);
    }
    return POSGATE_OK;
}

static int
digest_matches(const struct state_digest *s, const char *hex)
{
    char got[STATE_DIGEST_HEX_LEN + 1];

    state_digest_hex(s, got);
    return strcmp(got, hex) == 0;
}

/* Reads a body and applies it to the open update. */
static enum posgate_err
apply_body(struct run *r, struct store_update *u, const char *list_id, const struct list_target *t,
           uint64_t installed_seq, const struct state_digest *base)
{
    char path[DATADIR_PATH_MAX];
    struct file_source fs = {NULL, 0};
    struct feed_source src;
    struct feed_reader *rd = NULL;
    const struct feed_header *h;
    enum feed_item item;
    struct feed_entry e;
    enum posgate_err err;
    struct progress pr;
    uint64_t n = 0;

    path[0] = 0;
    err = download(r, t, path, sizeof(path));
    if (err != POSGATE_OK) {
        return err;
    }
    fs.f = fopen(path, "rb");
    if (fs.f == NULL) {
        fail(r, "cannot open the verified download %s", path);
        err = POSGATE_ERR_IO;
        goto out;
    }
    feed_source_file(&src, fs.f);
    src.read = file_read;
    src.ctx = &fs;
    err = feed_reader_new(&src, t->is_delta ? 0 : FEED_READ_VERIFY_DIGEST, &rd);
    if (err != POSGATE_OK) {
        goto out;
    }
    err = feed_reader_header(rd, &h);
    if (err != POSGATE_OK) {
        fail(r, "target %s: %s", t->info.name, feed_reader_errmsg(rd));
        err = POSGATE_ERR_REJECTED;
        goto out;
    }
    if (strcmp(h->list_id, list_id) != 0 || h->seq != t->seq ||
        (h->body == FEED_BODY_DELTA) != t->is_delta) {
        fail(r,
             "target %s: body says list %s seq %llu (%s), signed metadata says list %s seq %llu "
             "(%s)",
             t->info.name, h->list_id, (unsigned long long)h->seq,
             h->body == FEED_BODY_DELTA ? "delta" : "snapshot", list_id, (unsigned long long)t->seq,
             t->is_delta ? "delta" : "snapshot");
        err = POSGATE_ERR_REJECTED;
        goto out;
    }
    if (t->is_delta && (h->base_seq != installed_seq || h->base_seq != t->base_seq)) {
        fail(r, "target %s: delta base seq is %llu, expected the installed seq %llu", t->info.name,
             (unsigned long long)h->base_seq, (unsigned long long)installed_seq);
        err = POSGATE_ERR_REJECTED;
        goto out;
    }
    if (t->is_delta && base != NULL) {
        uint8_t have[STATE_DIGEST_LEN];

        state_digest_finish(base, have);
        if (!crypto_equal(have, h->base_digest, sizeof(have))) {
            fail(r,
                 "target %s: delta applies to a list state other than the installed seq %llu "
                 "(base digest differs)",
                 t->info.name, (unsigned long long)installed_seq);
            err = POSGATE_ERR_REJECTED;
            goto out;
        }
    }
    if (!t->is_delta && h->count != t->entries) {
        fail(r, "target %s: body holds %llu entries, signed metadata says %llu", t->info.name,
             (unsigned long long)h->count, (unsigned long long)t->entries);
        err = POSGATE_ERR_REJECTED;
        goto out;
    }
    err = t->is_delta ? store_list_delta_begin(u, list_id, installed_seq)
                      : store_list_snapshot_begin(u, list_id, STORE_SNAPSHOT_TRUST_STATE);
    if (err != POSGATE_OK) {
        fail(r, "list %s: %s", list_id, store_errmsg(r->st));
        goto out;
    }
    progress_begin(&pr, r->opt->progress, h->list_id,
                   t->is_delta ? h->removals + h->additions : h->count, t->info.length);
    for (;;) {
        err = feed_reader_next(rd, &item, &e);
        if (err != POSGATE_OK) {
            fail(r, "target %s: %s", t->info.name, feed_reader_errmsg(rd));
            err = POSGATE_ERR_REJECTED;
            goto out;
        }
        if (item == FEED_ITEM_END) {
            break;
        }
        err = item == FEED_ITEM_REMOVE ? store_list_remove(u, &e) : store_list_add(u, &e);
        if (err != POSGATE_OK) {
            fail(r, "target %s: record %llu: %s", t->info.name, (unsigned long long)n,
                 store_errmsg(r->st));
            if (err != POSGATE_ERR_NOMEM && err != POSGATE_ERR_IO) {
                err = POSGATE_ERR_REJECTED;
            }
            goto out;
        }
        n++;
        if ((n & 0xffff) == 0) {
            progress_update(&pr, n, fs.bytes);
        }
    }
    progress_end(&pr, n, fs.bytes);
    err = store_list_finish(u, t->seq, t->issued_at,
                            t->is_delta ? NULL : feed_reader_trailer_state(rd));
    if (err != POSGATE_OK) {
        fail(r, "target %s: %s", t->info.name, store_errmsg(r->st));
        goto out;
    }
    if (!digest_matches(store_update_list_state(u), t->digest)) {
        char got[STATE_DIGEST_HEX_LEN + 1];

        state_digest_hex(store_update_list_state(u), got);
        fail(r, "target %s: list digest after applying is %.16s..., signed digest is %.16s...",
             t->info.name, got, t->digest);
        err = POSGATE_ERR_REJECTED;
        goto out;
    }
    r->res->entries_changed += n;
out:
    feed_reader_free(rd);
    if (fs.f != NULL) {
        fclose(fs.f);
    }
    if (path[0] != 0 && plat_unlink(path) != POSGATE_OK) {
        plat_log(PLAT_LOG_WARN, "cannot remove %s", path);
    }
    return err;
}

/* The newest snapshot, or NULL. */
static const struct list_target *
head_snapshot(const struct collect *c)
{
    const struct list_target *best = NULL;

    for (size_t i = 0; i < c->n; i++) {
        if (!c->v[i].is_delta && (best == NULL || c->v[i].seq > best->seq)) {
            best = &c->v[i];
        }
    }
    return best;
}

/* The delta from base reaching furthest without passing target; NULL when none. */
static const struct list_target *
next_delta(const struct collect *c, uint64_t base, uint64_t target)
{
    const struct list_target *best = NULL;

    for (size_t i = 0; i < c->n; i++) {
        const struct list_target *t = &c->v[i];

        if (t->is_delta && t->base_seq == base && t->seq <= target &&
            (best == NULL || t->seq > best->seq)) {
            best = t;
        }
    }
    return best;
}

/* Refuses a list whose newest snapshot was keyed with older identifier spellings: its entries
 * would not match the keys this kiosk computes, and every missed match is an ALLOW. The newest
 * snapshot decides, as the state it signs is what the list becomes, by delta or snapshot. */
static enum posgate_err
check_ident_format(struct run *r, const char *list_id, const struct list_target *head)
{
    if (head->ident_format >= IDENT_FORMAT) {
        return POSGATE_OK;
    }
    fail(r,
         "list %s: target %s has identifier format %d, expected %d or newer; the publisher must "
         "republish the feed with a current posgate-publish",
         list_id, head->info.name, head->ident_format, IDENT_FORMAT);
    return POSGATE_ERR_REJECTED;
}

/* Applies one list from its targets c; *fallback is set when a delta chain failed and a snapshot
 * should be tried. */
static enum posgate_err
apply_list(struct run *r, struct store_update *u, const struct collect *c, int force_snapshot,
           int *fallback, int64_t *issued_at)
{
    const char *list_id = c->list_id;
    struct store_list sl;
    const struct list_target *head, *d;
    enum posgate_err err;
    int have_local;
    uint64_t cur;
    const struct list_target *chain[64];
    size_t nchain = 0;

    *fallback = 0;
    head = head_snapshot(c);
    err = store_get_list(r->st, list_id, &sl);
    have_local = err == POSGATE_OK;
    if (err != POSGATE_OK && err != POSGATE_ERR_NOTFOUND) {
        fail(r, "list %s: %s", list_id, store_errmsg(r->st));
        goto out;
    }
    err = POSGATE_OK;
    if (head == NULL) {
        /* Name a delta that cannot be used: its base is not what is installed. */
        uint64_t local = have_local ? sl.seq : 0;

        d = NULL;
        for (size_t i = 0; i < c->n; i++) {
            if (c->v[i].is_delta && c->v[i].base_seq != local &&
                (d == NULL || c->v[i].seq > d->seq)) {
                d = &c->v[i];
            }
        }
        if (d != NULL) {
            fail(r,
                 "list %s: delta %s has base seq %llu, expected the installed seq %llu, and the "
                 "feed lists no snapshot to fall back to",
                 list_id, d->info.name, (unsigned long long)d->base_seq, (unsigned long long)local);
        } else {
            fail(r, "list %s: the feed lists no snapshot for it", list_id);
        }
        err = POSGATE_ERR_REJECTED;
        goto out;
    }
    err = check_ident_format(r, list_id, head);
    if (err != POSGATE_OK) {
        goto out;
    }
    *issued_at = head->issued_at;
    if (have_local && head->seq < sl.seq) {
        fail(r, "list %s: feed seq %llu is older than the installed seq %llu", list_id,
             (unsigned long long)head->seq, (unsigned long long)sl.seq);
        err = POSGATE_ERR_REJECTED;
        goto out;
    }
    if (have_local && head->seq == sl.seq) {
        if (strcmp(head->digest, sl.digest) != 0) {
            fail(r, "list %s: seq %llu is installed with digest %.16s..., the feed signs %.16s...",
                 list_id, (unsigned long long)sl.seq, sl.digest, head->digest);
            err = POSGATE_ERR_REJECTED;
        }
        *issued_at = sl.issued_at;
        goto out;
    }
    if (have_local && !force_snapshot) {
        for (cur = sl.seq; cur < head->seq && nchain < 64; cur = d->seq) {
            d = next_delta(c, cur, head->seq);
            if (d == NULL) {
                break;
            }
            chain[nchain++] = d;
        }
        if (cur == head->seq) {
            uint64_t base = sl.seq;

            for (size_t i = 0; i < nchain; i++) {
                err = apply_body(r, u, list_id, chain[i], base,
                                 i == 0 ? &sl.state : store_update_list_state(u));
                if (err == POSGATE_ERR_REJECTED) {
                    plat_log(PLAT_LOG_WARN, "%s; trying the snapshot", r->errmsg);
                    *fallback = 1;
                    goto out;
                }
                if (err != POSGATE_OK) {
                    goto out;
                }
                base = chain[i]->seq;
                r->res->deltas++;
            }
            goto out;
        }
    }
    err = apply_body(r, u, list_id, head, have_local ? sl.seq : 0, NULL);
    if (err == POSGATE_OK) {
        r->res->snapshots++;
    }
out:
    return err;
}

/* The entries are keyed hashes under the publisher's list key: under another key nothing
 * would match and every listed person would be allowed. The feed must name this kiosk's key
 * (list_key.h); a feed without the value is refused too (fail closed). */
static enum posgate_err
check_list_key(struct run *r)
{
    char mine[LIST_KEY_CHECK_HEX + 1], msg[DATADIR_PATH_MAX + 128];
    enum posgate_err err;

    err = datadir_list_key_check(r->dd.list_key, mine, msg, sizeof(msg));
    if (err != POSGATE_OK) {
        fail(r, "%s", msg);
        return err == POSGATE_ERR_INVALID ? POSGATE_ERR_CORRUPT : err; /* a damaged key file */
    }
    err = list_key_check_match(r->cfg->list_key_check, mine, r->errmsg, r->errcap);
    if (err != POSGATE_OK) {
        return POSGATE_ERR_REJECTED;
    }
    return POSGATE_OK;
}

static enum posgate_err
load_config(struct run *r, struct buf *json)
{
    struct tuf_target_info t;
    enum posgate_err err;
    char path[DATADIR_PATH_MAX], msg[FEED_ERRMSG_MIN * 2];

    err = tuf_client_find_target(r->tc, "config/feed.json", &t);
    if (err != POSGATE_OK) {
        fail(r, "config/feed.json: %s", tuf_client_errmsg(r->tc));
        return tuf_to_update_err(err);
    }
    err = plat_path_join(path, sizeof(path), r->dd.incoming, "feed.json");
    if (err != POSGATE_OK) {
        return err;
    }
    err = tuf_client_download(r->tc, &t, path);
    if (err != POSGATE_OK) {
        fail(r, "config/feed.json: %s", tuf_client_errmsg(r->tc));
        return tuf_to_update_err(err);
    }
    err = plat_read_file(path, json);
    if (plat_unlink(path) != POSGATE_OK) {
        plat_log(PLAT_LOG_WARN, "cannot remove %s", path);
    }
    if (err != POSGATE_OK) {
        fail(r, "config/feed.json: %s", posgate_strerror(err));
        return err;
    }
    err = feed_config_parse(json->data, json->len, 0, &r->cfg, msg, sizeof(msg));
    if (err != POSGATE_OK) {
        fail(r, "config/feed.json: %s", msg);
        return POSGATE_ERR_REJECTED;
    }
    return check_list_key(r);
}

/* Finds one target by name in a role's listing. */
struct config_probe {
    char name[FEED_NAME_ID_MAX + 32];
    struct tuf_target_info info; /* strings owned by the client */
    int found;
};

static enum posgate_err
config_probe_fn(void *ctx, const struct tuf_target_info *t)
{
    struct config_probe *p = ctx;

    if (strcmp(t->name, p->name) == 0) {
        p->info = *t;
        p->found = 1;
    }
    return POSGATE_OK;
}

struct pinned_ctx {
    struct run *r;
    const struct buf *config_json;
};

/* A pinned list: still in config/feed.json, and there exactly as its authority signed it in
 * lists/<id>/config.json, which its pinned role (never the top-level targets) must list. */
static enum posgate_err
check_pinned_list(void *ctx, const char *list_id, const char *role)
{
    struct pinned_ctx *pc = ctx;
    struct run *r = pc->r;
    struct config_probe probe;
    struct buf signed_json = BUF_INIT(LIST_CONFIG_MAX_BYTES);
    char path[DATADIR_PATH_MAX];
    enum posgate_err err;

    memset(&probe, 0, sizeof(probe));
    snprintf(probe.name, sizeof(probe.name), "lists/%s/config.json", list_id);
    if (feed_config_list_find(r->cfg, list_id) < 0) {
        fail(r,
             "list %s is pinned to its authority's delegation (role %s); this feed's "
             "config/feed.json drops it: refused (only its authority may change a delegated "
             "list's configuration, and only a root signed by the root threshold may retire "
             "it: posgate-publish authorize --retire)",
             list_id, role);
        err = POSGATE_ERR_REJECTED;
        goto out;
    }
    err = tuf_client_foreach_target(r->tc, role, config_probe_fn, &probe);
    if (err != POSGATE_OK) {
        fail(r, "list %s (role %s): %s", list_id, role, tuf_client_errmsg(r->tc));
        err = tuf_to_update_err(err);
        goto out;
    }
    if (!probe.found) {
        fail(r,
             "list %s is pinned to its authority's delegation (role %s), but that role lists no "
             "%s (the list's configuration as its authority signed it): refused",
             list_id, role, probe.name);
        err = POSGATE_ERR_REJECTED;
        goto out;
    }
    err = plat_path_join(path, sizeof(path), r->dd.incoming, "list-config.json");
    if (err != POSGATE_OK) {
        goto out;
    }
    err = tuf_client_download(r->tc, &probe.info, path);
    if (err != POSGATE_OK) {
        fail(r, "target %s: %s", probe.name, tuf_client_errmsg(r->tc));
        err = tuf_to_update_err(err);
        goto out;
    }
    err = plat_read_file(path, &signed_json);
    if (plat_unlink(path) != POSGATE_OK) {
        plat_log(PLAT_LOG_WARN, "cannot remove %s", path);
    }
    if (err != POSGATE_OK) {
        fail(r, "target %s: %s", probe.name, posgate_strerror(err));
        err = err == POSGATE_ERR_TOOBIG ? POSGATE_ERR_REJECTED : err;
        goto out;
    }
    err = list_config_check(pc->config_json->data, pc->config_json->len, list_id, signed_json.data,
                            signed_json.len, r->errmsg, r->errcap);
out:
    buf_free(&signed_json);
    return err;
}

struct fresh_ctx {
    struct run *r;
    struct buf text; /* "id=seconds,..." */
};

static enum posgate_err
add_authority_fresh(void *ctx, const char *list_id, const char *role)
{
    struct fresh_ctx *fc = ctx;

    return buf_printf(&fc->text, "%s%s=%" PRId64, fc->text.len > 0 ? "," : "", list_id,
                      tuf_client_role_issued(fc->r->tc, role));
}

/* A delegated (pinned) list is fresh only as of its authority's signatures: its own issued_at
 * and its role's signing time, never the operator's timestamp. An operator who stops serving
 * the authority's new versions and only re-signs the timestamp would otherwise keep the old
 * version fresh for as long as the role is unexpired (store_list_fresh_at). */
static enum posgate_err
set_authority_fresh(struct run *r, struct store_update *u)
{
    struct fresh_ctx fc = {r, BUF_INIT(1u << 20)};
    enum posgate_err err = pins_foreach(r->dd.pins, add_authority_fresh, &fc, r->errmsg,
                                        r->errcap);

    if (err == POSGATE_OK) {
        err = buf_append(&fc.text, "", 1); /* NUL-terminated */
    }
    if (err == POSGATE_OK) {
        err = store_update_set_authority_fresh(u, (const char *)fc.text.data);
        if (err != POSGATE_OK) {
            fail(r, "store: %s", store_errmsg(r->st));
        }
    }
    buf_free(&fc.text);
    return err;
}

/* Every list the kiosk pinned (pins.h): its configuration must be the one its authority
 * signed, whatever the operator's config/feed.json says. */
static enum posgate_err
check_pinned_lists(struct run *r, const struct buf *config_json)
{
    struct pinned_ctx pc = {r, config_json};

    return pins_foreach(r->dd.pins, check_pinned_list, &pc, r->errmsg, r->errcap);
}

static enum posgate_err
load_targets_meta(struct run *r)
{
    char path[DATADIR_PATH_MAX], msg[256];
    enum posgate_err err;

    err = plat_path_join(path, sizeof(path), r->dd.tuf_staging, "targets.json");
    if (err == POSGATE_OK) {
        err = plat_read_file(path, &r->targets_json);
    }
    if (err == POSGATE_OK) {
        err = tuf_meta_parse(r->targets_json.data, r->targets_json.len, TUF_ROLE_TARGETS,
                             &r->targets_meta, msg, sizeof(msg));
        if (err != POSGATE_OK) {
            fail(r, "trusted targets.json: %s", msg);
        }
    }
    return err;
}

/* The verified root (tuf-staging/root.json) may record list authorities: pins follow it. */
static enum posgate_err
apply_root_pins(struct run *r, char *errmsg, size_t errcap)
{
    char path[DATADIR_PATH_MAX];
    struct buf raw = BUF_INIT(TUF_FILE_MAX);
    enum posgate_err err;

    err = plat_path_join(path, sizeof(path), r->dd.tuf_staging, "root.json");
    if (err == POSGATE_OK) {
        err = plat_read_file(path, &raw);
    }
    if (err != POSGATE_OK) {
        snprintf(errmsg, errcap, "cannot read the trusted %s: %s", path, posgate_strerror(err));
    } else {
        err = pins_apply_root(r->dd.pins, raw.data, raw.len, errmsg, errcap);
    }
    buf_free(&raw);
    return err;
}

static enum posgate_err
open_client(struct run *r)
{
    struct tuf_client_options o;
    enum posgate_err err;

    err = plat_remove_dir_files(r->dd.tuf_staging);
    if (err == POSGATE_OK) {
        err = plat_copy_dir_files(r->dd.tuf, r->dd.tuf_staging, TUF_FILE_MAX);
    }
    if (err == POSGATE_OK) {
        err = plat_mkdir_p(r->dd.incoming, 0700);
    }
    if (err != POSGATE_OK) {
        fail(r, "cannot prepare %s: %s", r->dd.tuf_staging, posgate_strerror(err));
        return err;
    }
    memset(&o, 0, sizeof(o));
    o.metadata_dir = r->dd.tuf_staging;
    o.metadata = r->opt->metadata;
    o.targets = r->opt->targets;
    o.now = r->now;
    o.accept_expired = r->opt->accept_expired;
    err = tuf_client_new(&o, &r->tc);
    if (err != POSGATE_OK) {
        fail(r, "trusted metadata in %s: %s", r->dd.tuf, posgate_strerror(err));
        return err == POSGATE_ERR_NOTFOUND ? POSGATE_ERR_NOTFOUND : POSGATE_ERR_CORRUPT;
    }
    err = tuf_client_refresh(r->tc);
    if (err != POSGATE_OK) {
        fail(r, "%s%s", tuf_client_errmsg(r->tc),
             err == POSGATE_ERR_EXPIRED && !r->opt->accept_expired
                 ? " (a bundle carried offline for days may be imported with --accept-expired)"
                 : "");
        return tuf_to_update_err(err);
    }
    return POSGATE_OK;
}

/* After the refresh: the trusted root and the feed never go back from what the store installed,
 * even when tuf/ fell behind the store (an update cut between its store commit and the
 * promotion of its metadata, or, before the update lock, a concurrent update that promoted an
 * older staging copy): a feed signed by a root rotated away must not be installed. */
static enum posgate_err
check_versions(struct run *r, const struct store_meta *old)
{
    int64_t root = 0, ts = 0, exp = 0;

    if (tuf_client_role_info(r->tc, "root", &root, &exp) != POSGATE_OK ||
        tuf_client_role_info(r->tc, "timestamp", &ts, &exp) != POSGATE_OK) {
        fail(r, "the refreshed metadata lacks a root or a timestamp");
        return POSGATE_ERR_REJECTED;
    }
    if (root < old->root_version) {
        fail(r, "root version %lld is older than the installed root version %lld: refused",
             (long long)root, (long long)old->root_version);
        return POSGATE_ERR_REJECTED;
    }
    if (ts < old->feed_version) {
        fail(r, "feed version %lld is older than the installed feed version %lld: refused",
             (long long)ts, (long long)old->feed_version);
        return POSGATE_ERR_REJECTED;
    }
    return POSGATE_OK;
}

static enum posgate_err
run_once(struct run *r, const struct store_meta *old, const struct buf *config_json, uint8_t *force,
         int *retry)
{
    struct store_update *u = NULL;
    struct store_meta m = *old;
    struct store_list installed[STORE_LISTS_MAX];
    size_t n_installed = 0;
    enum posgate_err err;
    int64_t v, exp, min_exp = INT64_MAX, newest = 0, oldest = INT64_MAX, ts_issued;
    static const char *const roles[] = {"timestamp", "snapshot", "targets"};
    struct collect *lists = plat_calloc(r->cfg->n_lists + 1, sizeof(*lists));
    unsigned n_lists = 0;
    uint64_t expect = 0;

    *retry = 0;
    r->errmsg[0] = 0;
    r->res->snapshots = r->res->deltas = r->res->dropped = 0;
    r->res->entries_changed = 0;
    if (lists == NULL) {
        return POSGATE_ERR_NOMEM;
    }
    /* every list's targets, once: their newest snapshots' entries are about the keys the store
     * holds after this update, which sizes a new key filter (store_update_expect_keys) */
    for (; n_lists < r->cfg->n_lists; n_lists++) {
        const struct list_target *head;

        err = collect_list(r, r->cfg->lists[n_lists].id, &lists[n_lists]);
        if (err != POSGATE_OK) {
            n_lists++;
            goto out;
        }
        head = head_snapshot(&lists[n_lists]);
        expect += head != NULL ? head->entries : 0;
    }
    err = store_begin_update(r->st, &u);
    if (err == POSGATE_OK) {
        store_update_expect_keys(u, expect);
        err = store_update_set_config(u, config_json->data, config_json->len);
    }
    if (err != POSGATE_OK) {
        fail(r, "store: %s", store_errmsg(r->st));
        goto out;
    }
    for (unsigned i = 0; i < n_lists; i++) {
        int fb = 0;
        int64_t issued = 0;

        err = apply_list(r, u, &lists[i], force[i], &fb, &issued);
        if (fb && !force[i]) {
            force[i] = 1;
            r->res->fallbacks++;
            *retry = 1;
            goto out;
        }
        if (err != POSGATE_OK) {
            goto out;
        }
        newest = issued > newest ? issued : newest;
        oldest = issued < oldest ? issued : oldest;
    }
    err = store_get_lists(r->st, installed, STORE_LISTS_MAX, &n_installed);
    if (err != POSGATE_OK) {
        fail(r, "store: %s", store_errmsg(r->st));
        goto out;
    }
    for (size_t i = 0; i < n_installed && i < STORE_LISTS_MAX; i++) {
        if (feed_config_list_find(r->cfg, installed[i].id) < 0) {
            err = store_list_drop(u, installed[i].id);
            if (err != POSGATE_OK) {
                fail(r, "store: %s", store_errmsg(r->st));
                goto out;
            }
            r->res->dropped++;
        }
    }
    for (size_t i = 0; i < 3; i++) {
        if (tuf_client_role_info(r->tc, roles[i], &v, &exp) == POSGATE_OK) {
            min_exp = exp < min_exp ? exp : min_exp;
            if (i == 0) {
                m.feed_version = v;
            } else if (i == 1) {
                m.snapshot_version = v;
            } else {
                m.targets_version = v;
            }
        }
    }
    if (tuf_client_role_info(r->tc, "root", &v, &exp) == POSGATE_OK) {
        m.root_version = v;
    }
    m.expires_at = min_exp == INT64_MAX ? 0 : min_exp;
    err = set_authority_fresh(r, u);
    if (err != POSGATE_OK) {
        goto out;
    }
    /* Freshness counts from signed issue times only, never from the install: the timestamp's
     * (TUF_ISSUED_FIELD: the operator vouched for the whole feed then), else each list's own.
     * Old metadata from a lagging mirror or CDN is old data, however recently installed. An
     * expired bundle counts only as of its lists' own signed issue times. */
    ts_issued = tuf_client_role_issued(r->tc, "timestamp");
    m.issued_at = r->res->expired_accepted ? (oldest == INT64_MAX ? 0 : oldest) : ts_issued;
    newest = ts_issued > newest ? ts_issued : newest;
    if (newest > m.newest_issue_seen) {
        m.newest_issue_seen = newest;
    }
    m.installed_at = r->now;
    err = store_update_set_meta(u, &m);
    if (err != POSGATE_OK) {
        fail(r, "store: %s", store_errmsg(r->st));
        goto out;
    }
    r->res->changed = store_update_changes(u) > 0 || r->res->dropped > 0;
    r->res->feed_version = m.feed_version;
    err = store_update_commit(u);
    u = NULL;
    if (err != POSGATE_OK) {
        fail(r, "store commit: %s", store_errmsg(r->st));
    }
out:
    store_update_abort(u);
    for (unsigned i = 0; i < n_lists; i++) {
        plat_free(lists[i].v);
    }
    plat_free(lists);
    return err;
}

/* The version of the role's metadata file in dir; 0 when the file is missing. */
static enum posgate_err
file_version(const char *dir, const char *name, enum tuf_role_type type, int64_t *out, char *msg,
             size_t cap)
{
    char path[DATADIR_PATH_MAX], pmsg[256];
    struct buf b = BUF_INIT(TUF_FILE_MAX);
    struct tuf_meta *m = NULL;
    enum posgate_err err;

    *out = 0;
    err = plat_path_join(path, sizeof(path), dir, name);
    if (err == POSGATE_OK) {
        err = plat_read_file(path, &b);
    }
    if (err == POSGATE_ERR_NOTFOUND) {
        err = POSGATE_OK;
        goto out;
    }
    if (err != POSGATE_OK) {
        snprintf(msg, cap, "%s: %s", path, posgate_strerror(err));
        goto out;
    }
    err = tuf_meta_parse(b.data, b.len, type, &m, pmsg, sizeof(pmsg));
    if (err != POSGATE_OK) {
        snprintf(msg, cap, "%s: %s", path, pmsg);
        err = POSGATE_ERR_CORRUPT;
        goto out;
    }
    *out = m->version;
out:
    tuf_meta_free(m);
    buf_free(&b);
    return err;
}

/* OK when the root and timestamp versions in dir are those the store records. */
static enum posgate_err
dir_agrees(const char *dir, const struct store_meta *m, char *msg, size_t cap)
{
    int64_t root = 0, ts = 0;
    enum posgate_err err;

    err = file_version(dir, "root.json", TUF_ROLE_ROOT, &root, msg, cap);
    if (err == POSGATE_OK) {
        err = file_version(dir, "timestamp.json", TUF_ROLE_TIMESTAMP, &ts, msg, cap);
    }
    if (err != POSGATE_OK) {
        return err;
    }
    if (root != m->root_version || ts != m->feed_version) {
        snprintf(msg, cap,
                 "the trusted metadata in %s is at root version %lld and feed version %lld, but "
                 "the store installed root version %lld and feed version %lld",
                 dir, (long long)root, (long long)ts, (long long)m->root_version,
                 (long long)m->feed_version);
        return POSGATE_ERR_CORRUPT;
    }
    return POSGATE_OK;
}

enum posgate_err
update_meta_agreement(const struct datadir *dd, const struct store_meta *m, char *msg, size_t cap)
{
    char smsg[512];

    msg[0] = 0;
    if (m->feed_version == 0) {
        return POSGATE_OK; /* nothing installed, nothing served */
    }
    if (dir_agrees(dd->tuf, m, msg, cap) == POSGATE_OK) {
        return POSGATE_OK;
    }
    /* The store commits first, then tuf/ follows from tuf-staging/ (update_run); staging that
     * matches the store exactly is that promotion pending (under way, or cut by a crash or a
     * failed copy), which the next update completes. */
    if (dir_agrees(dd->tuf_staging, m, smsg, sizeof(smsg)) == POSGATE_OK) {
        msg[0] = 0;
        return POSGATE_OK;
    }
    return POSGATE_ERR_CORRUPT;
}

/* Takes DIR/update.lock; RETRY with "an update is running (pid N)" when it stays held. */
static enum posgate_err
take_update_lock(const struct datadir *dd, long wait_ms, struct plat_lock *l, char *errmsg,
                 size_t errcap)
{
    char path[DATADIR_PATH_MAX];
    long pid = 0;
    enum posgate_err err;

    err = plat_path_join(path, sizeof(path), dd->root, UPDATE_LOCK_FILE);
    if (err == POSGATE_OK) {
        err = plat_lock_take(l, path, wait_ms, &pid);
    }
    if (err == POSGATE_ERR_RETRY) {
        snprintf(errmsg, errcap,
                 "an update is running (pid %ld) on %s: waited %ld ms for %s; try again when it "
                 "has finished",
                 pid, dd->root, wait_ms, path);
    } else if (err != POSGATE_OK) {
        snprintf(errmsg, errcap, "cannot lock %s: %s (is %s an initialised data dir?)", path,
                 posgate_strerror(err), dd->root);
    }
    return err;
}

/* Merges recent into the main table, then rebuilds the key filter when the store's newest
 * version has none usable (or a full one). *filter_keys: the keys of a rebuilt filter, else 0. */
static enum posgate_err
merge_all(struct store *st, int (*keep_going)(void *), void *ctx, uint64_t *moved,
          uint64_t *filter_keys, char *errmsg, size_t errcap)
{
    enum posgate_err err = POSGATE_OK;
    enum store_filter_state fs = STORE_FILTER_OK;
    bool more = true;

    *moved = 0;
    *filter_keys = 0;
    while (more && (keep_going == NULL || keep_going(ctx))) {
        uint64_t n = 0;

        err = store_merge_step(st, STORE_MERGE_CHUNK, &n, &more);
        if (err != POSGATE_OK) {
            snprintf(errmsg, errcap, "%s", store_errmsg(st));
            return err;
        }
        *moved += n;
    }
    if (keep_going != NULL && !keep_going(ctx)) {
        return POSGATE_OK;
    }
    err = store_filter_check(st, &fs, NULL);
    if (err == POSGATE_OK && fs != STORE_FILTER_OK) {
        err = store_filter_rebuild(st, filter_keys);
    }
    if (err != POSGATE_OK) {
        snprintf(errmsg, errcap, "key filter: %s", store_errmsg(st));
    }
    return err;
}

enum posgate_err
update_compact(const char *data_dir, int (*keep_going)(void *), void *ctx, uint64_t *moved,
               uint64_t *filter_keys, char *errmsg, size_t errcap)
{
    struct datadir dd;
    struct store *st = NULL;
    struct plat_lock lock = PLAT_LOCK_INIT;
    enum posgate_err err;
    char msg[STORE_ERRMSG_MAX];

    *moved = 0;
    *filter_keys = 0;
    errmsg[0] = 0;
    err = datadir_init(&dd, data_dir);
    if (err != POSGATE_OK) {
        snprintf(errmsg, errcap, "data dir: %s", posgate_strerror(err));
        return err;
    }
    /* a caller that can be stopped (the daemon, keep_going) does not wait for another's update:
     * its next merge comes soon enough */
    err = take_update_lock(&dd, keep_going != NULL ? 1000 : UPDATE_LOCK_WAIT_MS, &lock, errmsg,
                           errcap);
    if (err != POSGATE_OK) {
        return err;
    }
    err = store_open(dd.store, 0, &st, msg, sizeof(msg));
    if (err != POSGATE_OK) {
        snprintf(errmsg, errcap, "%s", msg); /* it names the file */
        plat_lock_release(&lock);
        return err;
    }
    err = merge_all(st, keep_going, ctx, moved, filter_keys, errmsg, errcap);
    store_close(st);
    plat_lock_release(&lock);
    return err;
}

enum posgate_err
update_run(const struct update_options *opt, struct update_result *res, char *errmsg, size_t errcap)
{
    uint64_t t0 = plat_mono_ns();
    struct run r;
    struct store_meta old, now_meta;
    struct plat_lock lock = PLAT_LOCK_INIT;
    struct buf config_json = BUF_INIT(FEED_CONFIG_MAX_BYTES);
    uint8_t force[FEED_LISTS_MAX];
    enum posgate_err err;
    char msg[512];
    int retry = 0;
    int64_t tsv = 0, tse = 0;

    memset(&r, 0, sizeof(r));
    buf_init(&r.targets_json, TUF_FILE_MAX);
    memset(res, 0, sizeof(*res));
    memset(force, 0, sizeof(force));
    r.opt = opt;
    r.res = res;
    r.errmsg = errmsg;
    r.errcap = errcap;
    errmsg[0] = 0;
    r.now = opt->now ? opt->now : plat_wall_s();
    err = datadir_init(&r.dd, opt->data_dir);
    if (err != POSGATE_OK) {
        fail(&r, "data dir: %s", posgate_strerror(err));
        return err;
    }
    /* One update of a data directory at a time (update.h): two refreshes from one trusted root
     * would each promote their own staging copy, the later undoing the earlier. */
    if (plat_exists(r.dd.root)) {
        err = take_update_lock(&r.dd, opt->lock_wait_ms == 0  ? UPDATE_LOCK_WAIT_MS
                                      : opt->lock_wait_ms < 0 ? 0
                                                              : opt->lock_wait_ms,
                               &lock, errmsg, errcap);
        if (err != POSGATE_OK) {
            return err;
        }
    }
    err = store_open(r.dd.store, 0, &r.st, msg, sizeof(msg));
    if (err != POSGATE_OK) {
        fail(&r, "%s", msg); /* it names the file */
        goto out;
    }
    err = store_get_meta(r.st, &old);
    if (err != POSGATE_OK) {
        fail(&r, "store: %s", store_errmsg(r.st));
        goto out;
    }
    res->previous_version = old.feed_version;
    if (old.feed_version != 0 && dir_agrees(r.dd.tuf, &old, msg, sizeof(msg)) != POSGATE_OK) {
        if (dir_agrees(r.dd.tuf_staging, &old, msg, sizeof(msg)) == POSGATE_OK &&
            plat_copy_dir_files(r.dd.tuf_staging, r.dd.tuf, TUF_FILE_MAX) == POSGATE_OK) {
            plat_log(PLAT_LOG_INFO, "promoted the verified metadata of feed version %lld that an "
                     "earlier update left in %s", (long long)old.feed_version, r.dd.tuf_staging);
        } else {
            /* the refresh below starts from the older trusted metadata; the version rules after
             * it refuse whatever would take the store back */
            plat_log(PLAT_LOG_WARN, "%s", msg);
        }
    }
    err = open_client(&r);
    if (err != POSGATE_OK) {
        goto out;
    }
    err = check_versions(&r, &old);
    if (err != POSGATE_OK) {
        goto out;
    }
    if (tuf_client_expired(r.tc)) {
        if (tuf_client_role_info(r.tc, "timestamp", &tsv, &tse) != POSGATE_OK ||
            tsv <= old.feed_version) {
            fail(&r,
                 "the metadata has expired and its feed version %lld is not newer than the "
                 "installed version %lld: refused",
                 (long long)tsv, (long long)old.feed_version);
            err = POSGATE_ERR_REJECTED;
            goto out;
        }
        res->expired_accepted = 1;
    }
    err = load_targets_meta(&r);
    if (err == POSGATE_OK) {
        err = load_config(&r, &config_json);
    }
    if (err == POSGATE_OK) {
        /* Before any list is read: the root's record of each list's authority moves its pin
         * (root-authorised), then a delegation the kiosk pinned must not have changed; a list
         * the root retired is unpinned once the feed drops it (run_once then drops its entries
         * from the store), and one the kiosk holds as retired may not come back. */
        err = apply_root_pins(&r, errmsg, errcap);
    }
    if (err == POSGATE_OK) {
        err = pins_check(r.dd.pins, r.targets_json.data, r.targets_json.len, r.targets_meta, r.cfg,
                         errmsg, errcap);
    }
    if (err == POSGATE_OK) {
        /* ... nor the configuration of a pinned list, which only its authority signs */
        err = check_pinned_lists(&r, &config_json);
    }
    if (err != POSGATE_OK) {
        goto out;
    }
    do {
        err = run_once(&r, &old, &config_json, force, &retry);
    } while (retry);
    if (err != POSGATE_OK) {
        goto out;
    }
    r.committed = 1;
    res->install_s = (double)(plat_mono_ns() - t0) / 1e9;
    /* The store holds the new version: now the trusted metadata may follow. */
    if (plat_copy_dir_files(r.dd.tuf_staging, r.dd.tuf, TUF_FILE_MAX) != POSGATE_OK) {
        /* The new version is installed and serving; its verified metadata stays in tuf-staging/
         * (which the agreement check accepts) and the next update promotes it. */
        plat_log(PLAT_LOG_WARN,
                 "feed version %lld is installed, but the verified metadata could not be copied "
                 "into %s; the next update will retry",
                 (long long)res->feed_version, r.dd.tuf);
    } else {
        r.promoted = 1;
    }
    err = store_get_meta(r.st, &now_meta);
    if (err == POSGATE_OK) {
        err = update_meta_agreement(&r.dd, &now_meta, msg, sizeof(msg));
        if (err != POSGATE_OK) {
            fail(&r, "after installing: %s", msg);
            goto out;
        }
    } else {
        fail(&r, "store: %s", store_errmsg(r.st));
        goto out;
    }
    if (!opt->defer_merge) {
        uint64_t t1 = plat_mono_ns();

        /* The new version is installed and serving either way: a merge or a filter rebuild
         * that fails is retried by the next update or by posgate compact. */
        if (merge_all(r.st, NULL, NULL, &res->merged_rows, &res->filter_keys, msg, sizeof(msg)) !=
            POSGATE_OK) {
            plat_log(PLAT_LOG_WARN,
                     "feed version %lld is installed; merging its changes into the main table "
                     "failed and is retried by the next update or posgate compact: %s",
                     (long long)res->feed_version, msg);
        }
        res->merge_s = (double)(plat_mono_ns() - t1) / 1e9;
    }
out:
    if ((!r.committed || r.promoted) && plat_remove_dir_files(r.dd.tuf_staging) != POSGATE_OK) {
        plat_log(PLAT_LOG_WARN, "cannot remove %s", r.dd.tuf_staging);
    }
    tuf_meta_free(r.targets_meta);
    buf_free(&r.targets_json);
    feed_config_free(r.cfg);
    tuf_client_free(r.tc);
    store_close(r.st);
    buf_free(&config_json);
    plat_lock_release(&lock);
    return err;
}
