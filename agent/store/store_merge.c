/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Moving recent into entries a chunk per transaction (store_merge_step), and the key filter
 * beside the store: its state for the newest version, its spot check and its rebuild from
 * every row.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <string.h>

#include "plat_mem.h"
#include "plat_random.h"
#include "store_internal.h"

/* ---------------------------------------------------------------- merge */

struct merge_key {
    uint8_t k[FEED_KEY_LEN];
    int64_t t, n;
    int d;
};

enum posgate_err
store_recent_rows(struct store *s, uint64_t *rows, uint64_t *entries)
{
    enum posgate_err err;
    int64_t v = 0, total = 0;
    bool found = false;

    if (s == NULL || rows == NULL || entries == NULL) {
        return POSGATE_ERR_INVALID;
    }
    err = store_query_int(s->db, "SELECT count(*) FROM recent", &v, &found, s->errmsg,
                          sizeof(s->errmsg));
    if (err == POSGATE_OK) {
        err = store_lists_total(s->db, &total, s->errmsg, sizeof(s->errmsg));
    }
    *rows = err == POSGATE_OK ? (uint64_t)v : 0;
    *entries = err == POSGATE_OK ? (uint64_t)total : 0;
    return err;
}

/* Reads the first max_rows keys of recent in key order; an addition whose removal marker may
 * follow in the next chunk is held back, so a chunk deletes a row before re-adding it. */
static enum posgate_err
merge_read_chunk(struct store *s, struct merge_key *keys, size_t max_rows, size_t *n, bool *more)
{
    sqlite3_stmt *st = NULL;
    enum posgate_err err;
    size_t got = 0;
    int rc;

    err = store_prepare(s->db, "SELECT k, t, n, d FROM recent ORDER BY k, t, n, d LIMIT ?1", &st,
                        s->errmsg, sizeof(s->errmsg));
    if (err != POSGATE_OK) {
        return err;
    }
    sqlite3_bind_int64(st, 1, (int64_t)max_rows);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        struct merge_key *m = &keys[got];

        if (sqlite3_column_bytes(st, 0) != FEED_KEY_LEN || sqlite3_column_blob(st, 0) == NULL) {
            sqlite3_finalize(st);
            plat_msgf(s->errmsg, sizeof(s->errmsg), "store: a row of recent has a damaged key");
            return POSGATE_ERR_CORRUPT;
        }
        memcpy(m->k, sqlite3_column_blob(st, 0), FEED_KEY_LEN);
        m->t = sqlite3_column_int64(st, 1);
        m->n = sqlite3_column_int64(st, 2);
        m->d = sqlite3_column_int(st, 3);
        got++;
    }
    if (rc != SQLITE_DONE) {
        err = store_db_fail(s->db, rc, "read recent", s->errmsg, sizeof(s->errmsg));
    }
    sqlite3_finalize(st);
    *more = got == max_rows;
    if (*more && got > 1 && keys[got - 1].d == 0) {
        got--;
    }
    *n = got;
    return err;
}

static void
bind_merge_key(sqlite3_stmt *st, const struct merge_key *m)
{
    sqlite3_bind_blob(st, 1, m->k, FEED_KEY_LEN, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, m->t);
    sqlite3_bind_int64(st, 3, m->n);
}

/* Applies a chunk inside the caller's transaction: markers first, then additions. */
static enum posgate_err
merge_apply(struct store *s, const struct merge_key *keys, size_t n)
{
    static const char *const sql[3] = {
        "DELETE FROM entries WHERE k = ?1 AND t = ?2 AND n = ?3",
        ("INSERT INTO entries(k, t, n, a, f, u, s) SELECT k, t, n, a, f, u, s FROM recent"
         " WHERE k = ?1 AND t = ?2 AND n = ?3 AND d = 0"),
        "DELETE FROM recent WHERE k = ?1 AND t = ?2 AND n = ?3 AND d = ?4"};
    sqlite3_stmt *st[3] = {NULL, NULL, NULL};
    enum posgate_err err = POSGATE_OK;
    int rc = SQLITE_DONE;

    for (size_t i = 0; i < 3 && err == POSGATE_OK; i++) {
        err = store_prepare(s->db, sql[i], &st[i], s->errmsg, sizeof(s->errmsg));
    }
    for (int pass = 1; pass >= 0 && err == POSGATE_OK; pass--) {
        for (size_t i = 0; i < n && err == POSGATE_OK; i++) {
            sqlite3_stmt *op = pass == 1 ? st[0] : st[1];

            if (keys[i].d != pass) {
                continue;
            }
            bind_merge_key(op, &keys[i]);
            rc = sqlite3_step(op);
            sqlite3_reset(op);
            if ((rc == SQLITE_DONE && sqlite3_changes(s->db) != 1) ||
                (rc & 0xff) == SQLITE_CONSTRAINT) {
                plat_msgf(s->errmsg, sizeof(s->errmsg), "store: recent %s a row of entries that %s",
                          pass == 1 ? "marks the removal of" : "adds",
                          pass == 1 ? "is absent" : "exists");
                err = POSGATE_ERR_CORRUPT;
            } else if (rc != SQLITE_DONE) {
                err = store_db_fail(s->db, rc, "merge recent", s->errmsg, sizeof(s->errmsg));
            }
        }
    }
    for (size_t i = 0; i < n && err == POSGATE_OK; i++) {
        bind_merge_key(st[2], &keys[i]);
        sqlite3_bind_int(st[2], 4, keys[i].d);
        rc = sqlite3_step(st[2]);
        sqlite3_reset(st[2]);
        if (rc != SQLITE_DONE) {
            err = store_db_fail(s->db, rc, "merge recent", s->errmsg, sizeof(s->errmsg));
        }
    }
    for (size_t i = 0; i < 3; i++) {
        sqlite3_finalize(st[i]);
    }
    return err;
}

enum posgate_err
store_merge_step(struct store *s, size_t max_rows, uint64_t *moved, bool *more)
{
    struct merge_key *keys;
    enum posgate_err err;
    size_t n = 0;

    if (s == NULL || moved == NULL || more == NULL || max_rows < 2) {
        return POSGATE_ERR_INVALID;
    }
    *moved = 0;
    *more = false;
    if ((s->flags & STORE_READONLY) != 0 || s->updating) {
        plat_msgf(s->errmsg, sizeof(s->errmsg), "store: %s",
                  s->updating ? "an update is in progress" : "opened read-only");
        return POSGATE_ERR_STATE;
    }
    {
        int64_t any = 0;
        bool found = false;

        /* nothing to merge (the usual case): no write transaction, no checkpoint */
        err = store_query_int(s->db, "SELECT EXISTS(SELECT 1 FROM recent)", &any, &found, s->errmsg,
                              sizeof(s->errmsg));
        if (err != POSGATE_OK || any == 0) {
            return err;
        }
    }
    keys = plat_malloc(max_rows * sizeof(*keys));
    if (keys == NULL) {
        return POSGATE_ERR_NOMEM;
    }
    err = store_exec(s->db, "BEGIN IMMEDIATE", s->errmsg, sizeof(s->errmsg));
    if (err == POSGATE_OK) {
        err = merge_read_chunk(s, keys, max_rows, &n, more);
        if (err == POSGATE_OK && n > 0) {
            err = merge_apply(s, keys, n);
        }
        err = store_end_txn(s, err);
    }
    plat_free(keys);
    if (err != POSGATE_OK) {
        *more = false;
        return err;
    }
    *moved = n;
    if (n > 0) {
        /* the version is the same (only its layout changed); readers renew to let go of the
         * pages they hold */
        atomic_fetch_add(&s->generation, 1);
        atomic_fetch_add(&store_process_commits, 1);
    }
    if (!*more) {
        store_checkpoint_now(s);
    }
    return POSGATE_OK;
}

/* ---------------------------------------------------------------- key filter */

#define FILTER_SPOT_PROBES 8

/* A few visible keys of the store, found from random points of the key space, must pass a
 * filter made for its version. One that fails was lost behind the store's back (a damaged or
 * emptied file): the filter would answer "in no row" for listed keys, so it is not used. False
 * too when the check cannot run. Costs FILTER_SPOT_PROBES B-tree probes, once per version. */
bool
store_filter_spot_check(sqlite3 *db, const struct keyfilter_map *m)
{
    static const char sql[] = "SELECT e.k FROM entries AS e WHERE e.k >= ?1 AND NOT EXISTS("
                              "SELECT 1 FROM recent AS r WHERE r.k = e.k AND r.t = e.t"
                              " AND r.n = e.n AND r.d = 1) LIMIT 1";
    uint8_t probes[FILTER_SPOT_PROBES][STORE_KEY_LEN];
    sqlite3_stmt *st = NULL;
    bool ok = true;

    if (plat_random(probes, sizeof(probes)) != POSGATE_OK ||
        sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
        sqlite3_finalize(st);
        return false;
    }
    for (size_t i = 0; i < FILTER_SPOT_PROBES && ok; i++) {
        int rc;

        sqlite3_bind_blob(st, 1, probes[i], STORE_KEY_LEN, SQLITE_STATIC);
        rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) {
            ok = sqlite3_column_bytes(st, 0) == STORE_KEY_LEN &&
                 keyfilter_maybe(m, sqlite3_column_blob(st, 0));
        } else if (rc != SQLITE_DONE) {
            ok = false;
        }
        sqlite3_reset(st);
    }
    sqlite3_finalize(st);
    return ok;
}

const char *
store_filter_state_name(enum store_filter_state st)
{
    switch (st) {
    case STORE_FILTER_OK:
        return "ok";
    case STORE_FILTER_FULL:
        return "full";
    case STORE_FILTER_STALE:
        return "stale";
    case STORE_FILTER_DAMAGED:
        return "damaged";
    case STORE_FILTER_MISSING:
        break;
    }
    return "missing";
}

/* The filter file's state against token (have: the store has one); *keys from its header. */
static enum store_filter_state
filter_state_of(struct store *s, const uint8_t *token, bool have, uint64_t *keys)
{
    struct keyfilter_map m;
    char msg[STORE_ERRMSG_MAX];
    enum posgate_err err = keyfilter_map_open(&m, s->kf_path, msg, sizeof(msg));
    enum store_filter_state st;

    enum keyfilter_sum sum = KEYFILTER_SUM_BAD;

    *keys = 0;
    if (err != POSGATE_OK) {
        return err == POSGATE_ERR_CORRUPT       ? STORE_FILTER_DAMAGED
               : err == POSGATE_ERR_UNSUPPORTED ? STORE_FILTER_STALE
                                                : STORE_FILTER_MISSING;
    }
    *keys = keyfilter_map_keys(&m);
    if (!have || !keyfilter_map_token_is(&m, token) ||
        (sum = keyfilter_map_verify(&m, true)) == KEYFILTER_SUM_BUSY) {
        st = STORE_FILTER_STALE;
    } else if (sum == KEYFILTER_SUM_BAD || !store_filter_spot_check(s->db, &m)) {
        st = STORE_FILTER_DAMAGED;
        store_filter_forget(s); /* "checks do not use it": the readers made from now on */
    } else if (keyfilter_is_full(m.n_blocks, *keys)) {
        st = STORE_FILTER_FULL;
    } else {
        st = STORE_FILTER_OK;
    }
    keyfilter_map_close(&m);
    return st;
}

enum posgate_err
store_filter_check(struct store *s, enum store_filter_state *state, uint64_t *keys)
{
    uint8_t token[KEYFILTER_TOKEN_LEN];
    bool have = false;
    uint64_t k;
    enum posgate_err err;

    if (s == NULL || state == NULL) {
        return POSGATE_ERR_INVALID;
    }
    /* one read transaction: the token and the keys the spot check reads are of one version */
    err = store_exec(s->db, "BEGIN", s->errmsg, sizeof(s->errmsg));
    if (err != POSGATE_OK) {
        return err;
    }
    err = store_read_token(s->db, token, &have, s->errmsg, sizeof(s->errmsg));
    if (err == POSGATE_OK) {
        *state = filter_state_of(s, token, have, &k);
        if (keys != NULL) {
            *keys = k;
        }
    }
    (void)sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL);
    return err;
}

/* Adds the first column of every row sql selects to w. */
static enum posgate_err
filter_add_rows(struct store *s, struct keyfilter_writer *w, const char *sql)
{
    sqlite3_stmt *st = NULL;
    enum posgate_err err = store_prepare(s->db, sql, &st, s->errmsg, sizeof(s->errmsg));
    int rc;

    if (err != POSGATE_OK) {
        return err;
    }
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (sqlite3_column_bytes(st, 0) != STORE_KEY_LEN) {
            sqlite3_finalize(st);
            plat_msgf(s->errmsg, sizeof(s->errmsg), "store: a row's key is %d bytes, expected %d",
                      sqlite3_column_bytes(st, 0), STORE_KEY_LEN);
            return POSGATE_ERR_CORRUPT;
        }
        keyfilter_add(w, sqlite3_column_blob(st, 0));
    }
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? POSGATE_OK
                             : store_db_fail(s->db, rc, "read keys", s->errmsg, sizeof(s->errmsg));
}

enum posgate_err
store_filter_rebuild(struct store *s, uint64_t *keys)
{
    struct keyfilter_writer w = {.fd = -1};
    uint8_t token[KEYFILTER_TOKEN_LEN];
    bool have = false;
    int64_t total = 0;
    enum posgate_err err;

    if (s == NULL) {
        return POSGATE_ERR_INVALID;
    }
    if ((s->flags & STORE_READONLY) != 0 || s->updating) {
        plat_msgf(s->errmsg, sizeof(s->errmsg), "store: %s",
                  s->updating ? "an update is in progress" : "opened read-only");
        return POSGATE_ERR_STATE;
    }
    /* under the write lock: no key is added while the rows are read */
    err = store_exec(s->db, "BEGIN IMMEDIATE", s->errmsg, sizeof(s->errmsg));
    if (err != POSGATE_OK) {
        return err;
    }
    err = store_read_token(s->db, token, &have, s->errmsg, sizeof(s->errmsg));
    if (err == POSGATE_OK && !have) {
        sqlite3_stmt *st = NULL;

        err = plat_random(token, sizeof(token));
        if (err == POSGATE_OK) {
            err = store_prepare(s->db, "INSERT OR REPLACE INTO meta VALUES('keyset', ?1)", &st,
                                s->errmsg, sizeof(s->errmsg));
        }
        if (err == POSGATE_OK) {
            int rc;

            sqlite3_bind_blob(st, 1, token, sizeof(token), SQLITE_STATIC);
            rc = sqlite3_step(st);
            if (rc != SQLITE_DONE) {
                err = store_db_fail(s->db, rc, "write the key set token", s->errmsg,
                                    sizeof(s->errmsg));
            }
        }
        sqlite3_finalize(st);
    }
    if (err == POSGATE_OK) {
        err = store_lists_total(s->db, &total, s->errmsg, sizeof(s->errmsg));
    }
    if (err == POSGATE_OK) {
        err = keyfilter_create(&w, s->kf_path, total > 0 ? (uint64_t)total : 0, s->errmsg,
                               sizeof(s->errmsg));
    }
    /* every key of entries (rows hidden by a removal marker too: a superset is correct) and
     * of recent's additions */
    if (err == POSGATE_OK) {
        err = filter_add_rows(s, &w, "SELECT k FROM entries");
    }
    if (err == POSGATE_OK) {
        err = filter_add_rows(s, &w, "SELECT k FROM recent WHERE d = 0");
    }
    if (err == POSGATE_OK) {
        err = keyfilter_install(&w, token, s->errmsg, sizeof(s->errmsg));
    }
    if (err == POSGATE_OK && keys != NULL) {
        *keys = w.keys;
    }
    keyfilter_close(&w);
    err = store_end_txn(s, err);
    if (err == POSGATE_OK) {
        atomic_fetch_add(&store_process_commits, 1); /* readers of this process look again */
    }
    return err;
}
