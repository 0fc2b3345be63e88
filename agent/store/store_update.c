/* SPDX-License-Identifier: Apache-2.0 */
/*
 * An update: one write transaction from store_begin_update to store_update_commit (or abort),
 * its sticky first error, the metadata and feed config it sets, and how it keeps the key
 * filter for the keys it adds. A list's snapshot or delta inside it is store_list.c.
 */
#define _POSIX_C_SOURCE 200809L
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "plat_clock.h"
#include "plat_log.h"
#include "plat_mem.h"
#include "plat_random.h"
#include "store_internal.h"

/* ---------------------------------------------------------------- updates */

enum posgate_err
store_ufail(struct store_update *u, enum posgate_err err, const char *fmt, ...)
{
    va_list ap;

    if (u->failed == POSGATE_OK) {
        va_start(ap, fmt);
        vsnprintf(u->s->errmsg, sizeof(u->s->errmsg), fmt, ap);
        va_end(ap);
        u->failed = err;
    }
    return err;
}

enum posgate_err
store_ufail_db(struct store_update *u, int rc, const char *what)
{
    enum posgate_err err = store_sqlite_err(rc);

    return store_ufail(u, err == POSGATE_OK ? POSGATE_ERR_IO : err, "store: %s: %s", what,
                       sqlite3_errmsg(u->s->db));
}

enum posgate_err
store_update_ready(struct store_update *u)
{
    if (u == NULL) {
        return POSGATE_ERR_INVALID;
    }
    if (u->failed != POSGATE_OK) {
        return POSGATE_ERR_STATE;
    }
    return POSGATE_OK;
}

/* Notes the lists that have rows as the update begins (for the key filter: a new filter holds
 * every key only when the update emptied each of them). */
static enum posgate_err
read_had_rows(struct store_update *u)
{
    struct store *s = u->s;
    sqlite3_stmt *st = NULL;
    enum posgate_err err;
    int rc;

    u->had = plat_calloc(STORE_LISTS_MAX + 1, sizeof(*u->had));
    if (u->had == NULL) {
        return POSGATE_ERR_NOMEM;
    }
    err = store_prepare(s->db, "SELECT no FROM lists WHERE entries > 0", &st, s->errmsg,
                        sizeof(s->errmsg));
    if (err != POSGATE_OK) {
        return err;
    }
    while ((rc = sqlite3_step(st)) == SQLITE_ROW && u->n_had <= STORE_LISTS_MAX) {
        u->had[u->n_had++].no = sqlite3_column_int64(st, 0);
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE && rc != SQLITE_ROW) {
        return store_db_fail(s->db, rc, "read lists", s->errmsg, sizeof(s->errmsg));
    }
    if (u->n_had > STORE_LISTS_MAX) {
        plat_msgf(s->errmsg, sizeof(s->errmsg), "store: more than %d lists installed",
                  STORE_LISTS_MAX);
        return POSGATE_ERR_CORRUPT;
    }
    return POSGATE_OK;
}

void
store_update_expect_keys(struct store_update *u, uint64_t n)
{
    if (u != NULL) {
        u->expect_keys = n;
    }
}

/* True when the update emptied every list that had rows as it began: every row is its own. */
static bool
had_all_cleared(const struct store_update *u)
{
    for (size_t i = 0; i < u->n_had; i++) {
        if (!u->had[i].cleared) {
            return false;
        }
    }
    return true;
}

/* The first key an update adds chooses how it keeps the key filter (enum kf_mode). A filter
 * failure never fails the update: the update then leaves no filter for its version, lookups
 * go to SQLite, and store_filter_rebuild makes a new one. */
static void
kf_start(struct store_update *u)
{
    struct store *s = u->s;
    char msg[STORE_ERRMSG_MAX];
    uint64_t size = u->expect_keys;
    bool all_cleared = had_all_cleared(u);
    int64_t total = 0;

    u->kf_mode = KF_NONE;
    /* a store whose rows this update replaced so far gets a new filter; otherwise the keys go
     * into the current version's filter while it has room */
    if (!all_cleared && u->have_token &&
        keyfilter_open_rw(&u->kf, s->kf_path, u->token, msg, sizeof(msg)) == POSGATE_OK) {
        if (!keyfilter_is_full(u->kf.n_blocks, u->kf.keys)) {
            u->kf_mode = KF_INPLACE;
            return;
        }
        keyfilter_close(&u->kf);
    }
    if (!all_cleared && store_lists_total(s->db, &total, msg, sizeof(msg)) == POSGATE_OK &&
        (uint64_t)total > size) {
        size = (uint64_t)total;
    }
    if (keyfilter_create(&u->kf, s->kf_path, size, msg, sizeof(msg)) == POSGATE_OK) {
        u->kf_mode = KF_NEW;
    } else {
        plat_log(PLAT_LOG_WARN, "store: %s; lookups use the store alone until it is rebuilt", msg);
    }
}

void
store_kf_note_add(struct store_update *u, const uint8_t *key)
{
    if (u->kf_mode == KF_UNDECIDED) {
        kf_start(u);
    }
    if (u->kf_mode == KF_INPLACE || u->kf_mode == KF_NEW) {
        keyfilter_add(&u->kf, key);
    }
    u->adds++;
}

struct keyfilter_writer *
store_kf_writer(struct store_update *u)
{
    if (u->kf_mode == KF_UNDECIDED) {
        kf_start(u);
    }
    return u->kf_mode == KF_INPLACE || u->kf_mode == KF_NEW ? &u->kf : NULL;
}

void
store_kf_note_cleared(struct store_update *u, int64_t no)
{
    for (size_t i = 0; i < u->n_had; i++) {
        if (u->had[i].no == no) {
            u->had[i].cleared = true;
        }
    }
}

static enum posgate_err meta_put_blob(struct store_update *u, const char *name, const void *p,
                                      size_t len, bool text);

/* Before the commit of an update that added keys: a new key set token, and a filter that holds
 * every key of the new version made durable, then given that token (keyfilter.h). */
static enum posgate_err
kf_finish(struct store_update *u)
{
    char msg[STORE_ERRMSG_MAX];
    uint8_t token[KEYFILTER_TOKEN_LEN];
    enum posgate_err err;
    bool complete = u->kf_mode == KF_INPLACE || (u->kf_mode == KF_NEW && had_all_cleared(u));

    if (u->adds == 0) {
        return POSGATE_OK; /* the key set only shrank: the filter still covers it */
    }
    err = plat_random(token, sizeof(token));
    if (err != POSGATE_OK) {
        return store_ufail(u, err, "store: no random bytes for the key set token");
    }
    err = meta_put_blob(u, "keyset", token, sizeof(token), false);
    if (err != POSGATE_OK) {
        return err;
    }
    if (!complete) {
        return POSGATE_OK; /* no filter for this version until store_filter_rebuild */
    }
    err = keyfilter_install(&u->kf, token, msg, sizeof(msg));
    if (err != POSGATE_OK) {
        plat_log(PLAT_LOG_WARN, "store: %s; lookups use the store alone until it is rebuilt", msg);
    }
    return POSGATE_OK;
}

enum posgate_err
store_begin_update(struct store *s, struct store_update **out)
{
    struct store_update *u;
    enum posgate_err err;
    char *msg;
    size_t cap;

    if (s == NULL || out == NULL) {
        return POSGATE_ERR_INVALID;
    }
    msg = s->errmsg;
    cap = sizeof(s->errmsg);
    if ((s->flags & STORE_READONLY) != 0) {
        plat_msgf(msg, cap, "store: opened read-only");
        return POSGATE_ERR_STATE;
    }
    if (s->updating) {
        plat_msgf(msg, cap, "store: an update is already in progress");
        return POSGATE_ERR_STATE;
    }
    u = plat_calloc(1, sizeof(*u));
    if (u == NULL) {
        return POSGATE_ERR_NOMEM;
    }
    u->s = s;
    u->kf.fd = -1;
    u->runs.fd = -1;
    err = store_exec(s->db, "BEGIN IMMEDIATE", msg, cap);
    if (err != POSGATE_OK) {
        plat_free(u);
        return err;
    }
    s->updating = true;
    err = store_prepare(s->db,
                        "INSERT INTO entries(k, t, n, a, f, u, s) VALUES(?1,?2,?3,?4,?5,?6,?7)",
                        &u->ins, msg, cap);
    if (err == POSGATE_OK) {
        /* an addition is refused when the entry is visible: in entries without a removal
         * marker (checked here), or already added to recent (the primary key) */
        err = store_prepare(
            s->db,
            "INSERT INTO recent(k, t, n, d, a, f, u, s)"
            " SELECT ?1, ?2, ?3, 0, ?4, ?5, ?6, ?7 WHERE NOT EXISTS(SELECT 1 FROM entries"
            " WHERE k = ?1 AND t = ?2 AND n = ?3 AND NOT EXISTS(SELECT 1 FROM recent"
            " WHERE k = ?1 AND t = ?2 AND n = ?3 AND d = 1))",
            &u->ov_ins, msg, cap);
    }
    if (err == POSGATE_OK) {
        err = store_prepare(s->db,
                            "DELETE FROM recent WHERE k = ?1 AND t = ?2 AND n = ?3 AND d = 0"
                            " RETURNING a, f, u, s",
                            &u->ov_take, msg, cap);
    }
    if (err == POSGATE_OK) {
        /* a second marker for the same row breaks the primary key: removed twice */
        err =
            store_prepare(s->db,
                          "INSERT INTO recent(k, t, n, d, a, f, u, s) SELECT k, t, n, 1, a, f, u, s"
                          " FROM entries WHERE k = ?1 AND t = ?2 AND n = ?3 RETURNING a, f, u, s",
                          &u->ov_tomb, msg, cap);
    }
    if (err == POSGATE_OK) {
        err =
            store_prepare(s->db, "SELECT id FROM tmpl WHERE list = ?1 AND stem = ?2 AND width = ?3",
                          &u->tmpl_sel, msg, cap);
    }
    if (err == POSGATE_OK) {
        err = store_prepare(s->db, "INSERT INTO tmpl(list, stem, width) VALUES(?1, ?2, ?3)",
                            &u->tmpl_ins, msg, cap);
    }
    if (err == POSGATE_OK) {
        err = store_read_token(s->db, u->token, &u->have_token, msg, cap);
    }
    if (err == POSGATE_OK) {
        err = read_had_rows(u);
    }
    if (err != POSGATE_OK) {
        store_update_abort(u);
        return err;
    }
    *out = u;
    return POSGATE_OK;
}

static enum posgate_err
meta_put_int(struct store_update *u, const char *name, int64_t v)
{
    sqlite3_stmt *st = NULL;
    enum posgate_err err = store_prepare(u->s->db, "INSERT OR REPLACE INTO meta VALUES(?1, ?2)",
                                         &st, u->s->errmsg, sizeof(u->s->errmsg));
    int rc;

    if (err != POSGATE_OK) {
        return store_ufail(u, err, "%s", u->s->errmsg);
    }
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, v);
    rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        return store_ufail_db(u, rc, "write meta");
    }
    return POSGATE_OK;
}

static enum posgate_err
meta_put_blob(struct store_update *u, const char *name, const void *p, size_t len, bool text)
{
    sqlite3_stmt *st = NULL;
    enum posgate_err err = store_prepare(u->s->db, "INSERT OR REPLACE INTO meta VALUES(?1, ?2)",
                                         &st, u->s->errmsg, sizeof(u->s->errmsg));
    int rc;

    if (err != POSGATE_OK) {
        return store_ufail(u, err, "%s", u->s->errmsg);
    }
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    if (text) {
        sqlite3_bind_text(st, 2, p, (int)len, SQLITE_STATIC);
    } else {
        sqlite3_bind_blob(st, 2, p, (int)len, SQLITE_STATIC);
    }
    rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        return store_ufail_db(u, rc, "write meta");
    }
    return POSGATE_OK;
}

enum posgate_err
store_update_set_meta(struct store_update *u, const struct store_meta *m)
{
    enum posgate_err err = store_update_ready(u);
    struct store_meta copy;

    if (err != POSGATE_OK) {
        return err;
    }
    if (m == NULL) {
        return store_ufail(u, POSGATE_ERR_INVALID, "store: no metadata given");
    }
    copy = *m;
    for (size_t i = 0; i < sizeof(store_meta_names) / sizeof(store_meta_names[0]); i++) {
        if (strcmp(store_meta_names[i], "installed_at") == 0) {
            continue; /* set by commit */
        }
        err = meta_put_int(u, store_meta_names[i], *store_meta_field(&copy, i));
        if (err != POSGATE_OK) {
            return err;
        }
    }
    return POSGATE_OK;
}

enum posgate_err
store_update_set_authority_fresh(struct store_update *u, const char *text)
{
    enum posgate_err err = store_update_ready(u);

    if (err != POSGATE_OK) {
        return err;
    }
    return meta_put_blob(u, "authority_fresh", text != NULL ? text : "",
                         text != NULL ? strlen(text) : 0, true);
}

enum posgate_err
store_update_set_config(struct store_update *u, const void *json, size_t len)
{
    enum posgate_err err = store_update_ready(u);
    struct feed_config *cfg = NULL;
    char msg[FEED_ERRMSG_MIN];

    if (err != POSGATE_OK) {
        return err;
    }
    if (json == NULL) {
        return store_ufail(u, POSGATE_ERR_INVALID, "store: no feed configuration given");
    }
    err = feed_config_parse(json, len, 0, &cfg, msg, sizeof(msg));
    if (err != POSGATE_OK) {
        return store_ufail(u, err, "store: feed configuration refused: %s", msg);
    }
    feed_config_free(cfg);
    return meta_put_blob(u, "config", json, len, false);
}

enum posgate_err
store_update_set_jurisdictions(struct store_update *u, const char *const *cc, size_t n)
{
    enum posgate_err err = store_update_ready(u);
    char text[STORE_JURISDICTIONS_MAX * 3];
    size_t len = 0;

    if (err != POSGATE_OK) {
        return err;
    }
    if ((cc == NULL && n > 0) || n > STORE_JURISDICTIONS_MAX) {
        return store_ufail(u, POSGATE_ERR_INVALID,
                           "store: expected at most %d jurisdictions, found %zu",
                           STORE_JURISDICTIONS_MAX, n);
    }
    for (size_t i = 0; i < n; i++) {
        const char *c = cc[i];
        char a, b;

        if (c == NULL || strlen(c) != 2) {
            return store_ufail(u, POSGATE_ERR_INVALID,
                               "store: jurisdiction %zu: expected an ISO 3166 alpha-2 code", i);
        }
        a = (char)(c[0] >= 'a' && c[0] <= 'z' ? c[0] - 32 : c[0]);
        b = (char)(c[1] >= 'a' && c[1] <= 'z' ? c[1] - 32 : c[1]);
        if (a < 'A' || a > 'Z' || b < 'A' || b > 'Z') {
            return store_ufail(u, POSGATE_ERR_INVALID,
                               "store: jurisdiction %zu: expected two letters, found \"%s\"", i, c);
        }
        if (len > 0) {
            text[len++] = ',';
        }
        text[len++] = a;
        text[len++] = b;
    }
    return meta_put_blob(u, "jurisdictions", text, len, true);
}

uint64_t
store_update_changes(const struct store_update *u)
{
    return u != NULL ? u->changes : 0;
}

/* Finalizes the update's statements (COMMIT wants none pending). */
static void
update_finalize(struct store_update *u)
{
    sqlite3_finalize(u->ins);
    sqlite3_finalize(u->ov_ins);
    sqlite3_finalize(u->ov_take);
    sqlite3_finalize(u->ov_tomb);
    sqlite3_finalize(u->tmpl_sel);
    sqlite3_finalize(u->tmpl_ins);
    sqlite3_finalize(u->ins_batch);
    u->ins = u->ov_ins = u->ov_take = u->ov_tomb = NULL;
    u->tmpl_sel = u->tmpl_ins = u->ins_batch = NULL;
}

static void
update_free(struct store_update *u)
{
    update_finalize(u);
    store_runs_close(&u->runs);
    keyfilter_close(&u->kf);
    plat_free(u->had);
    u->s->updating = false;
    plat_free(u);
}

enum posgate_err
store_update_commit(struct store_update *u)
{
    enum posgate_err err;
    struct store *s;

    if (u == NULL) {
        return POSGATE_ERR_INVALID;
    }
    s = u->s;
    err = u->failed;
    if (err == POSGATE_OK && u->mode != MODE_NONE) {
        err = store_ufail(u, POSGATE_ERR_STATE, "store: list \"%s\" was not finished", u->list_id);
    }
    if (err == POSGATE_OK) {
        err = store_runs_flush(u); /* the snapshots' rows, merged in key order */
    }
    if (err == POSGATE_OK) {
        err = meta_put_int(u, "installed_at", plat_wall_s());
    }
    if (err == POSGATE_OK) {
        err = kf_finish(u);
    }
    update_finalize(u);
    err = store_end_txn(s, err);
    if (err != POSGATE_OK) {
        update_free(u);
        return err;
    }
    atomic_fetch_add(&s->generation, 1);
    atomic_fetch_add(&store_process_commits, 1);
    update_free(u);
    store_checkpoint_now(s);
    return POSGATE_OK;
}

void
store_update_abort(struct store_update *u)
{
    if (u == NULL) {
        return;
    }
    update_finalize(u);
    (void)sqlite3_exec(u->s->db, "ROLLBACK", NULL, NULL, NULL);
    update_free(u);
}
