/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Reading the store: the row codec (a row of entries or recent back into a feed_entry), the
 * getters of the committed version's metadata, lists and feed config, and the per-thread
 * readers with their long-lived read transaction, key filter and lookups.
 */
#define _POSIX_C_SOURCE 200809L
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "plat_clock.h"
#include "plat_log.h"
#include "plat_mem.h"
#include "store_internal.h"

/* ---------------------------------------------------------------- rows */

/* Rebuilds stem || num zero-padded to width; false when it does not fit. */
static bool
join_listing(struct feed_entry *e, const void *stem, size_t stem_len, int64_t width, int64_t num)
{
    char digits[24];
    size_t nd = 0;

    if (width < 0 || width > FEED_NUM_DIGITS_MAX || num < 0 ||
        stem_len + (size_t)width > FEED_LISTING_ID_MAX || (width == 0 && num != 0)) {
        return false;
    }
    if (width > 0) {
        uint64_t v = (uint64_t)num;

        do {
            digits[nd++] = (char)('0' + v % 10);
            v /= 10;
        } while (v != 0);
        if (nd > (size_t)width) {
            return false;
        }
    }
    if (stem_len > 0) {
        memcpy(e->listing_id, stem, stem_len);
    }
    for (size_t i = 0; i < (size_t)width; i++) {
        size_t from_right = (size_t)width - 1 - i;

        e->listing_id[stem_len + i] = from_right < nd ? digits[from_right] : '0';
    }
    e->listing_id_len = (uint8_t)(stem_len + (size_t)width);
    e->listing_id[e->listing_id_len] = 0;
    return e->listing_id_len > 0;
}

/* Decodes the value columns of an entry row (everything but the key and the listing id). */
bool
store_decode_attrs(struct feed_entry *e, int64_t a, int64_t f, sqlite3_stmt *st, int u_col,
                   int s_col)
{
    int st_u = sqlite3_column_type(st, u_col);
    int st_s = sqlite3_column_type(st, s_col);

    if (a < 0 || a >= ((int64_t)1 << 21)) {
        return false;
    }
    e->kind = (uint8_t)(a & 1);
    e->id_type = (uint8_t)((a >> 1) & 0xf);
    e->reason = (uint16_t)(a >> 5);
    e->valid_from = f;
    if (st_u == SQLITE_NULL) {
        e->valid_until = FEED_UNTIL_OPEN;
    } else if (st_u == SQLITE_INTEGER) {
        e->valid_until = sqlite3_column_int64(st, u_col);
    } else {
        return false;
    }
    e->scope_count = 0;
    if (st_s == SQLITE_BLOB) {
        const uint8_t *p = sqlite3_column_blob(st, s_col);
        int n = sqlite3_column_bytes(st, s_col);

        if (n <= 0 || n % 2 != 0 || n / 2 > FEED_SCOPE_MAX || p == NULL) {
            return false;
        }
        for (int i = 0; i < n / 2; i++) {
            e->scope[i] = (uint16_t)((p[2 * i] << 8) | p[2 * i + 1]);
        }
        e->scope_count = (uint8_t)(n / 2);
    } else if (st_s != SQLITE_NULL) {
        return false;
    }
    return true;
}

/* Decodes a ROW_SELECT row into e and *list_no; false when damaged. Columns: 0 k, 1 t, 2 n,
 * 3 a, 4 f, 5 u, 6 s, 7 list, 8 stem, 9 width. */
bool
store_decode_row(sqlite3_stmt *st, struct feed_entry *e, int64_t *list_no)
{
    const void *k = sqlite3_column_blob(st, 0);

    if (sqlite3_column_bytes(st, 0) != FEED_KEY_LEN || k == NULL ||
        sqlite3_column_type(st, 7) != SQLITE_INTEGER ||
        sqlite3_column_type(st, 3) != SQLITE_INTEGER ||
        sqlite3_column_type(st, 4) != SQLITE_INTEGER) {
        return false;
    }
    memcpy(e->key, k, FEED_KEY_LEN);
    *list_no = sqlite3_column_int64(st, 7);
    if (!join_listing(e, sqlite3_column_blob(st, 8), (size_t)sqlite3_column_bytes(st, 8),
                      sqlite3_column_int64(st, 9), sqlite3_column_int64(st, 2))) {
        return false;
    }
    return store_decode_attrs(e, sqlite3_column_int64(st, 3), sqlite3_column_int64(st, 4), st, 5,
                              6);
}

/* ---------------------------------------------------------------- reading meta and lists */

const char *const store_meta_names[STORE_META_FIELDS] = {
    "feed_version", "root_version", "snapshot_version",  "targets_version",
    "issued_at",    "expires_at",   "newest_issue_seen", "installed_at",
};

int64_t *
store_meta_field(struct store_meta *m, size_t i)
{
    int64_t *f[] = {&m->feed_version, &m->root_version, &m->snapshot_version,  &m->targets_version,
                    &m->issued_at,    &m->expires_at,   &m->newest_issue_seen, &m->installed_at};

    return f[i];
}

static void
parse_jurisdictions(struct store_meta *m, const char *s)
{
    m->n_jurisdictions = 0;
    while (s != NULL && s[0] != 0 && s[1] != 0 && m->n_jurisdictions < STORE_JURISDICTIONS_MAX) {
        m->jurisdictions[m->n_jurisdictions][0] = s[0];
        m->jurisdictions[m->n_jurisdictions][1] = s[1];
        m->jurisdictions[m->n_jurisdictions][2] = 0;
        m->n_jurisdictions++;
        s += 2;
        if (*s != ',') {
            break;
        }
        s++;
    }
}

enum posgate_err
store_read_meta(sqlite3 *db, struct store_meta *out, char *msg, size_t cap)
{
    sqlite3_stmt *st = NULL;
    enum posgate_err err = store_prepare(db, "SELECT name, value FROM meta", &st, msg, cap);
    int rc;

    memset(out, 0, sizeof(*out));
    if (err != POSGATE_OK) {
        return err;
    }
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *name = (const char *)sqlite3_column_text(st, 0);

        if (name == NULL) {
            continue;
        }
        if (strcmp(name, "jurisdictions") == 0) {
            parse_jurisdictions(out, (const char *)sqlite3_column_text(st, 1));
            continue;
        }
        for (size_t i = 0; i < sizeof(store_meta_names) / sizeof(store_meta_names[0]); i++) {
            if (strcmp(name, store_meta_names[i]) == 0) {
                *store_meta_field(out, i) = sqlite3_column_int64(st, 1);
            }
        }
    }
    if (rc != SQLITE_DONE) {
        err = store_db_fail(db, rc, "read meta", msg, cap);
    }
    sqlite3_finalize(st);
    return err;
}

static enum posgate_err
row_to_list(sqlite3 *db, sqlite3_stmt *st, struct store_list *l, int64_t *no, char *msg, size_t cap)
{
    const char *id = (const char *)sqlite3_column_text(st, 1);
    const char *digest = (const char *)sqlite3_column_text(st, 4);
    const void *state = sqlite3_column_blob(st, 5);
    int state_len = sqlite3_column_bytes(st, 5);
    const void *reasons = sqlite3_column_blob(st, 7);
    int reasons_len = sqlite3_column_bytes(st, 7);

    (void)db;
    memset(l, 0, sizeof(*l));
    *no = sqlite3_column_int64(st, 0);
    if (id == NULL || strlen(id) > FEED_LIST_ID_MAX || digest == NULL ||
        strlen(digest) != STATE_DIGEST_HEX_LEN || state == NULL ||
        state_digest_deserialise(&l->state, state, (size_t)state_len) != POSGATE_OK ||
        reasons_len > STORE_REASON_BITMAP) {
        plat_msgf(msg, cap, "store: lists row %" PRId64 " is damaged", *no);
        return POSGATE_ERR_CORRUPT;
    }
    memcpy(l->id, id, strlen(id) + 1);
    l->seq = (uint64_t)sqlite3_column_int64(st, 2);
    l->entries = (uint64_t)sqlite3_column_int64(st, 3);
    memcpy(l->digest, digest, STATE_DIGEST_HEX_LEN + 1);
    l->issued_at = sqlite3_column_int64(st, 6);
    if (reasons != NULL && reasons_len > 0) {
        memcpy(l->reasons, reasons, (size_t)reasons_len);
    }
    l->cfg_index = -1;
    return POSGATE_OK;
}

#define LISTS_SELECT "SELECT no, id, seq, entries, digest, state, issued_at, reasons FROM lists"

enum posgate_err
store_get_meta(struct store *s, struct store_meta *out)
{
    if (s == NULL || out == NULL) {
        return POSGATE_ERR_INVALID;
    }
    return store_read_meta(s->db, out, s->errmsg, sizeof(s->errmsg));
}

enum posgate_err
store_get_list(struct store *s, const char *list_id, struct store_list *out)
{
    sqlite3_stmt *st = NULL;
    enum posgate_err err;
    int rc;
    int64_t no;

    if (s == NULL || list_id == NULL || out == NULL) {
        return POSGATE_ERR_INVALID;
    }
    err = store_prepare(s->db, LISTS_SELECT " WHERE id = ?1", &st, s->errmsg, sizeof(s->errmsg));
    if (err != POSGATE_OK) {
        return err;
    }
    sqlite3_bind_text(st, 1, list_id, -1, SQLITE_STATIC);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        err = row_to_list(s->db, st, out, &no, s->errmsg, sizeof(s->errmsg));
    } else if (rc == SQLITE_DONE) {
        plat_msgf(s->errmsg, sizeof(s->errmsg), "store: list \"%.64s\" is not installed", list_id);
        err = POSGATE_ERR_NOTFOUND;
    } else {
        err = store_db_fail(s->db, rc, "read list", s->errmsg, sizeof(s->errmsg));
    }
    sqlite3_finalize(st);
    return err;
}

/* Marks the lists named in meta "authority_fresh" ("id=seconds,..."). */
static enum posgate_err
read_authority_fresh(sqlite3 *db, struct store_list *out, size_t n, char *msg, size_t msgcap)
{
    sqlite3_stmt *st = NULL;
    enum posgate_err err = store_prepare(
        db, "SELECT value FROM meta WHERE name = 'authority_fresh'", &st, msg, msgcap);
    const char *p;

    if (err != POSGATE_OK) {
        return err;
    }
    if (sqlite3_step(st) == SQLITE_ROW && (p = (const char *)sqlite3_column_text(st, 0)) != NULL) {
        while (*p != 0) {
            const char *eq = strchr(p, '='), *end = strchr(p, ',');
            size_t idlen;

            if (end == NULL) {
                end = p + strlen(p);
            }
            if (eq == NULL || eq > end) {
                break;
            }
            idlen = (size_t)(eq - p);
            for (size_t i = 0; i < n; i++) {
                if (strlen(out[i].id) == idlen && memcmp(out[i].id, p, idlen) == 0) {
                    out[i].authority_fresh = true;
                    out[i].vouched_at = strtoll(eq + 1, NULL, 10);
                }
            }
            p = *end == ',' ? end + 1 : end;
        }
    }
    sqlite3_finalize(st);
    return POSGATE_OK;
}

enum posgate_err
store_read_lists(sqlite3 *db, struct store_list *out, int64_t *nos, size_t cap, size_t *n,
                 char *msg, size_t msgcap)
{
    sqlite3_stmt *st = NULL;
    enum posgate_err err = store_prepare(db, LISTS_SELECT " ORDER BY no", &st, msg, msgcap);
    size_t i = 0;
    int rc;

    if (err != POSGATE_OK) {
        return err;
    }
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (i < cap) {
            int64_t no;

            err = row_to_list(db, st, &out[i], &no, msg, msgcap);
            if (err != POSGATE_OK) {
                break;
            }
            if (nos != NULL) {
                nos[i] = no;
            }
        }
        i++;
    }
    if (err == POSGATE_OK && rc != SQLITE_DONE) {
        err = store_db_fail(db, rc, "read lists", msg, msgcap);
    }
    sqlite3_finalize(st);
    *n = i;
    if (err == POSGATE_OK) {
        err = read_authority_fresh(db, out, i < cap ? i : cap, msg, msgcap);
    }
    return err;
}

int64_t
store_list_fresh_at(const struct store_list *l, const struct store_meta *m)
{
    int64_t other = l->authority_fresh ? l->vouched_at : m->issued_at;

    return l->issued_at > other ? l->issued_at : other;
}

enum posgate_err
store_get_lists(struct store *s, struct store_list *out, size_t cap, size_t *n)
{
    if (s == NULL || n == NULL || (out == NULL && cap > 0)) {
        return POSGATE_ERR_INVALID;
    }
    return store_read_lists(s->db, out, NULL, cap, n, s->errmsg, sizeof(s->errmsg));
}

enum posgate_err
store_read_config(sqlite3 *db, struct buf *out, char *msg, size_t cap)
{
    sqlite3_stmt *st = NULL;
    enum posgate_err err =
        store_prepare(db, "SELECT value FROM meta WHERE name = 'config'", &st, msg, cap);
    int rc;

    if (err != POSGATE_OK) {
        return err;
    }
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        const void *p = sqlite3_column_blob(st, 0);
        int len = sqlite3_column_bytes(st, 0);

        err = buf_append(out, p != NULL ? p : "", (size_t)len);
    } else if (rc == SQLITE_DONE) {
        plat_msgf(msg, cap, "store: no feed configuration is installed");
        err = POSGATE_ERR_NOTFOUND;
    } else {
        err = store_db_fail(db, rc, "read config", msg, cap);
    }
    sqlite3_finalize(st);
    return err;
}

enum posgate_err
store_get_config(struct store *s, struct buf *out)
{
    if (s == NULL || out == NULL) {
        return POSGATE_ERR_INVALID;
    }
    return store_read_config(s->db, out, s->errmsg, sizeof(s->errmsg));
}

/* ---------------------------------------------------------------- readers */

struct reader_list_map {
    int64_t no;
    uint16_t index;
};

struct store_reader {
    struct store *s;
    sqlite3 *db;
    sqlite3_stmt *lookup;    /* entries only: recent is empty */
    sqlite3_stmt *lookup_ov; /* entries without their removal markers, plus recent additions */
    bool has_recent;         /* recent holds rows in the reader's version */
    bool have_token;         /* the reader's version has a key set token ... */
    uint8_t token[KEYFILTER_TOKEN_LEN];
    bool kf_ok; /* ... and kf is a filter made for it */
    struct keyfilter_map kf;
    bool kf_rejected; /* kf failed the spot check for kf_rejected_token */
    uint8_t kf_rejected_token[KEYFILTER_TOKEN_LEN];
    bool in_txn;
    uint64_t seen_store_gen;
    uint64_t txn_start_ns;
    uint64_t renew_ns;
    int64_t data_version;
    uint64_t generation;
    struct store_meta meta;
    struct feed_config *cfg;
    struct buf cfg_bytes;
    struct store_list *lists;    /* STORE_LISTS_MAX */
    struct reader_list_map *map; /* sorted by no */
    size_t n_lists;
    char errmsg[STORE_ERRMSG_MAX];
    void *cache; /* the caller's (store_reader_set_cache), freed with the reader */
    void (*cache_free)(void *);
};

enum posgate_err
store_reader_new(struct store *s, struct store_reader **out)
{
    struct store_reader *r;
    enum posgate_err err;
    const char *path;

    if (s == NULL || out == NULL) {
        return POSGATE_ERR_INVALID;
    }
    path = sqlite3_db_filename(s->db, "main");
    if (path == NULL || path[0] == 0) {
        return POSGATE_ERR_STATE;
    }
    r = plat_calloc(1, sizeof(*r));
    if (r == NULL) {
        return POSGATE_ERR_NOMEM;
    }
    r->s = s;
    r->renew_ns = 1000ull * 1000000ull;
    r->data_version = -1;
    buf_init(&r->cfg_bytes, STORE_CONFIG_MAX);
    r->lists = plat_calloc(STORE_LISTS_MAX, sizeof(*r->lists));
    r->map = plat_calloc(STORE_LISTS_MAX, sizeof(*r->map));
    if (r->lists == NULL || r->map == NULL) {
        err = POSGATE_ERR_NOMEM;
        goto fail;
    }
    err = store_open_conn(path, false, false, &r->db, s->errmsg, sizeof(s->errmsg));
    if (err != POSGATE_OK) {
        goto fail;
    }
    err = store_prepare(r->db, ROW_SELECT " WHERE e.k = ?1", &r->lookup, s->errmsg,
                        sizeof(s->errmsg));
    if (err == POSGATE_OK) {
        err = store_prepare(r->db, VISIBLE_ROWS(" AND e.k = ?1"), &r->lookup_ov, s->errmsg,
                            sizeof(s->errmsg));
    }
    if (err != POSGATE_OK) {
        goto fail;
    }
    *out = r;
    return POSGATE_OK;
fail:
    store_reader_free(r);
    return err;
}

void
store_reader_free(struct store_reader *r)
{
    if (r == NULL) {
        return;
    }
    if (r->cache_free != NULL) {
        r->cache_free(r->cache);
    }
    sqlite3_finalize(r->lookup);
    sqlite3_finalize(r->lookup_ov);
    keyfilter_map_close(&r->kf);
    if (r->db != NULL && r->in_txn) {
        (void)sqlite3_exec(r->db, "COMMIT", NULL, NULL, NULL);
    }
    sqlite3_close(r->db);
    feed_config_free(r->cfg);
    buf_free(&r->cfg_bytes);
    plat_free(r->lists);
    plat_free(r->map);
    plat_free(r);
}

void
store_reader_set_renew_ms(struct store_reader *r, uint32_t ms)
{
    if (r != NULL) {
        r->renew_ns = (uint64_t)ms * 1000000ull;
    }
}

static void
sort_map(struct reader_list_map *m, size_t n)
{
    for (size_t i = 1; i < n; i++) {
        struct reader_list_map x = m[i];
        size_t j = i;

        while (j > 0 && m[j - 1].no > x.no) {
            m[j] = m[j - 1];
            j--;
        }
        m[j] = x;
    }
}

/* Whether the key filter file is made for the reader's version (keyfilter.h); a file replaced
 * since it was mapped is mapped again. A filter that cannot be used is not an error: lookups
 * then go to SQLite alone. */
static void
reader_filter(struct store_reader *r)
{
    enum keyfilter_sum sum;

    r->kf_ok = false;
    if (!r->have_token) {
        return;
    }
    if (!keyfilter_map_same(&r->kf, r->s->kf_path)) {
        char msg[STORE_ERRMSG_MAX];

        keyfilter_map_close(&r->kf);
        r->kf_rejected = false;
        if (keyfilter_map_open(&r->kf, r->s->kf_path, msg, sizeof(msg)) != POSGATE_OK) {
            return;
        }
    }
    if (!keyfilter_map_token_is(&r->kf, r->token)) {
        return;
    }
    if (r->kf_rejected && memcmp(r->kf_rejected_token, r->token, sizeof(r->token)) == 0) {
        return; /* this file failed its checks for this version already */
    }
    {
        /* once for each version of the lists (an update commits a new installed_at): the other
         * readers wait for the one checking the file, then take its verdict */
        const int64_t version[2] = {r->meta.feed_version, r->meta.installed_at};
        struct keyfilter_seen got;

        pthread_mutex_lock(&r->s->kf_mu);
        if (keyfilter_seen_matches(&r->kf, &r->s->kf_seen, version)) {
            pthread_mutex_unlock(&r->s->kf_mu);
            r->kf_ok = true;
            return;
        }
        sum = keyfilter_map_verify_as(&r->kf, version, &got);
        if (sum == KEYFILTER_SUM_BUSY) {
            pthread_mutex_unlock(&r->s->kf_mu);
            return; /* a writer is adding keys: tried again at the next renewal */
        }
        r->kf_ok = sum == KEYFILTER_SUM_OK && store_filter_spot_check(r->db, &r->kf);
        if (r->kf_ok) {
            r->s->kf_seen = got;
        }
        pthread_mutex_unlock(&r->s->kf_mu);
    }
    if (!r->kf_ok) {
        r->kf_rejected = true;
        memcpy(r->kf_rejected_token, r->token, sizeof(r->token));
        plat_log(PLAT_LOG_WARN,
                 "store: key filter %s %s; checks read the store alone until posgate compact "
                 "(or the next update) writes a new one",
                 r->s->kf_path,
                 sum == KEYFILTER_SUM_OK ? "lacks keys of the store"
                                         : "does not match its checksum (damaged on disk)");
    }
}

bool
store_reader_uses_filter(const struct store_reader *r)
{
    return r != NULL && r->kf_ok;
}

void
store_filter_forget(struct store *s)
{
    pthread_mutex_lock(&s->kf_mu);
    memset(&s->kf_seen, 0, sizeof(s->kf_seen));
    pthread_mutex_unlock(&s->kf_mu);
}

/* Reloads meta, lists and config inside the reader's new read transaction. */
static enum posgate_err
reader_load(struct store_reader *r)
{
    char *msg = r->errmsg;
    size_t cap = sizeof(r->errmsg);
    int64_t nos[64];
    int64_t *nos_p = nos;
    enum posgate_err err;
    struct buf cfg = BUF_INIT(STORE_CONFIG_MAX);
    size_t n = 0;

    err = store_read_meta(r->db, &r->meta, msg, cap);
    if (err == POSGATE_OK) {
        int64_t any = 0;
        bool found = false;

        err = store_query_int(r->db, "SELECT EXISTS(SELECT 1 FROM recent)", &any, &found, msg, cap);
        r->has_recent = any != 0;
    }
    if (err == POSGATE_OK) {
        err = store_read_token(r->db, r->token, &r->have_token, msg, cap);
        reader_filter(r);
    }
    if (err != POSGATE_OK) {
        return err;
    }
    if (STORE_LISTS_MAX > 64) {
        nos_p = plat_calloc(STORE_LISTS_MAX, sizeof(*nos_p));
        if (nos_p == NULL) {
            return POSGATE_ERR_NOMEM;
        }
    }
    err = store_read_lists(r->db, r->lists, nos_p, STORE_LISTS_MAX, &n, msg, cap);
    if (err == POSGATE_OK && n > STORE_LISTS_MAX) {
        plat_msgf(msg, cap, "store: %zu lists installed, at most %d supported", n, STORE_LISTS_MAX);
        err = POSGATE_ERR_CORRUPT;
    }
    if (err == POSGATE_OK) {
        for (size_t i = 0; i < n; i++) {
            r->map[i].no = nos_p[i];
            r->map[i].index = (uint16_t)i;
        }
        sort_map(r->map, n);
        r->n_lists = n;
        err = store_read_config(r->db, &cfg, msg, cap);
        if (err == POSGATE_ERR_NOTFOUND) {
            feed_config_free(r->cfg);
            r->cfg = NULL;
            buf_reset(&r->cfg_bytes);
            err = POSGATE_OK;
        } else if (err == POSGATE_OK && (r->cfg == NULL || cfg.len != r->cfg_bytes.len ||
                                         memcmp(cfg.data, r->cfg_bytes.data, cfg.len) != 0)) {
            struct feed_config *c = NULL;
            char cmsg[FEED_ERRMSG_MIN];

            err = feed_config_parse(cfg.data, cfg.len, 0, &c, cmsg, sizeof(cmsg));
            if (err == POSGATE_ERR_NOMEM) {
                plat_msgf(msg, cap,
                          "store: out of memory reading the installed feed configuration");
            } else if (err != POSGATE_OK) {
                plat_msgf(msg, cap, "store: installed feed configuration is damaged: %s", cmsg);
                err = POSGATE_ERR_CORRUPT;
            } else {
                feed_config_free(r->cfg);
                r->cfg = c;
                buf_reset(&r->cfg_bytes);
                err = buf_append(&r->cfg_bytes, cfg.data, cfg.len);
            }
        }
    }
    if (err == POSGATE_OK) {
        for (size_t i = 0; i < r->n_lists; i++) {
            r->lists[i].cfg_index = feed_config_list_find(r->cfg, r->lists[i].id);
        }
    }
    if (nos_p != nos) {
        plat_free(nos_p);
    }
    buf_free(&cfg);
    return err;
}

enum posgate_err
store_reader_refresh(struct store_reader *r)
{
    return store_reader_refresh_at(r, plat_mono_ns());
}

enum posgate_err
store_reader_refresh_at(struct store_reader *r, uint64_t now)
{
    uint64_t gen;
    enum posgate_err err;
    int64_t dv = 0;
    bool found = false;

    if (r == NULL) {
        return POSGATE_ERR_INVALID;
    }
    gen = atomic_load(&store_process_commits);
    /* a reading older than the transaction's start (taken before the reader was) counts as no
     * time elapsed, not as an unsigned wrap to "renew now" */
    if (r->in_txn && gen == r->seen_store_gen &&
        (now < r->txn_start_ns || now - r->txn_start_ns < r->renew_ns)) {
        return POSGATE_OK;
    }
    sqlite3_reset(r->lookup);
    sqlite3_reset(r->lookup_ov);
    if (r->in_txn) {
        (void)sqlite3_exec(r->db, "COMMIT", NULL, NULL, NULL);
        r->in_txn = false;
    }
    err = store_exec(r->db, "BEGIN", r->errmsg, sizeof(r->errmsg));
    if (err != POSGATE_OK) {
        return err;
    }
    r->in_txn = true;
    r->seen_store_gen = gen;
    r->txn_start_ns = now;
    /* The first read starts the snapshot; data_version then tells whether it is new. */
    err = store_query_int(r->db, "SELECT count(*) FROM meta", &dv, &found, r->errmsg,
                          sizeof(r->errmsg));
    if (err == POSGATE_OK) {
        err = store_query_int(r->db, "PRAGMA data_version", &dv, &found, r->errmsg,
                              sizeof(r->errmsg));
    }
    if (err == POSGATE_OK && dv != r->data_version) {
        err = reader_load(r);
        if (err == POSGATE_OK) {
            r->data_version = dv;
            r->generation++;
        }
    } else if (err == POSGATE_OK && !r->kf_ok) {
        reader_filter(r); /* a filter rebuilt since, without a change of the store */
    }
    if (err != POSGATE_OK) {
        (void)sqlite3_exec(r->db, "COMMIT", NULL, NULL, NULL);
        r->in_txn = false;
        r->data_version = -1;
    }
    return err;
}

const struct store_meta *
store_reader_meta(const struct store_reader *r)
{
    return r != NULL ? &r->meta : NULL;
}

const struct feed_config *
store_reader_config(const struct store_reader *r)
{
    return r != NULL ? r->cfg : NULL;
}

const struct store_list *
store_reader_lists(const struct store_reader *r, size_t *n_lists)
{
    if (r == NULL) {
        if (n_lists != NULL) {
            *n_lists = 0;
        }
        return NULL;
    }
    if (n_lists != NULL) {
        *n_lists = r->n_lists;
    }
    return r->lists;
}

const char *
store_reader_errmsg(const struct store_reader *r)
{
    return r != NULL ? r->errmsg : "";
}

uint64_t
store_reader_generation(const struct store_reader *r)
{
    return r != NULL ? r->generation : 0;
}

void
store_reader_set_cache(struct store_reader *r, void *cache, void (*free_fn)(void *))
{
    if (r == NULL) {
        return;
    }
    if (r->cache_free != NULL && r->cache != cache) {
        r->cache_free(r->cache);
    }
    r->cache = cache;
    r->cache_free = free_fn;
}

void *
store_reader_cache(const struct store_reader *r)
{
    return r != NULL ? r->cache : NULL;
}

static int
map_find(const struct store_reader *r, int64_t no)
{
    size_t lo = 0, hi = r->n_lists;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;

        if (r->map[mid].no == no) {
            return r->map[mid].index;
        }
        if (r->map[mid].no < no) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return -1;
}

enum posgate_err
store_lookup(struct store_reader *r, const uint8_t key[STORE_KEY_LEN], struct store_hit *out,
             size_t cap, size_t *n)
{
    enum posgate_err err;

    if (r == NULL || key == NULL || n == NULL || (out == NULL && cap > 0)) {
        return POSGATE_ERR_INVALID;
    }
    *n = 0;
    err = store_reader_refresh(r);
    if (err != POSGATE_OK) {
        return err;
    }
    return store_lookup_current(r, key, out, cap, n);
}

void
store_reader_prefetch(const struct store_reader *r, const uint8_t key[STORE_KEY_LEN])
{
    uint64_t probes;

    /* here, not in an inline function of keyfilter.h: GCC takes a function whose only effect is
     * a prefetch for one without effects and drops the call */
    if (r != NULL && key != NULL && r->kf_ok) {
        __builtin_prefetch(r->kf.base + keyfilter_block_offset(r->kf.n_blocks, key, &probes), 0,
                           3);
    }
}

enum posgate_err
store_lookup_current(struct store_reader *r, const uint8_t key[STORE_KEY_LEN],
                     struct store_hit *out, size_t cap, size_t *n)
{
    size_t found = 0;
    sqlite3_stmt *st;
    int rc;

    if (r == NULL || key == NULL || n == NULL || (out == NULL && cap > 0)) {
        return POSGATE_ERR_INVALID;
    }
    *n = 0;
    if (!r->in_txn) {
        plat_msgf(r->errmsg, sizeof(r->errmsg), "store: reader has no version; refresh first");
        return POSGATE_ERR_STATE;
    }
    if (r->kf_ok && !keyfilter_maybe(&r->kf, key)) {
        return POSGATE_OK; /* in no row: the filter's "no" is certain */
    }
    st = r->has_recent ? r->lookup_ov : r->lookup;
    sqlite3_bind_blob(st, 1, key, STORE_KEY_LEN, SQLITE_STATIC);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (found < cap) {
            struct store_hit *h = &out[found];
            int64_t no = -1;
            int idx;

            idx = store_decode_row(st, &h->e, &no) ? map_find(r, no) : -1;
            if (idx < 0) {
                sqlite3_reset(st);
                plat_msgf(r->errmsg, sizeof(r->errmsg),
                          "store: an entry row of this key cannot be decoded");
                return POSGATE_ERR_CORRUPT;
            }
            h->list = (uint16_t)idx;
        }
        found++;
    }
    sqlite3_reset(st);
    if (rc != SQLITE_DONE) {
        return store_sqlite_err(rc) == POSGATE_OK ? POSGATE_ERR_IO : store_sqlite_err(rc);
    }
    *n = found;
    return POSGATE_OK;
}
