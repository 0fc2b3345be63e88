/* SPDX-License-Identifier: Apache-2.0 */
/*
 * store_verify: inside one read transaction, SQLite's own integrity check, every list's stored
 * digest against its stored state, the removal markers of recent against entries, then every
 * visible row hashed into its list's state and checked against the key filter, and finally
 * each list's state and entry count against the stored ones. Each step is one function below,
 * in that order; the first that fails ends the verification with its message.
 */
#define _POSIX_C_SOURCE 200809L
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "plat_mem.h"
#include "store_internal.h"

/* What the steps share. */
struct verify {
    struct store *s;
    char *msg; /* the caller's errmsg */
    size_t cap;
    struct store_list *lists;  /* the installed lists (STORE_LISTS_MAX slots) */
    int64_t *nos;              /* ... their rows' numbers in lists */
    struct state_digest *calc; /* ... the state their visible rows give */
    size_t n;                  /* lists installed */
    struct keyfilter_map kf;   /* the key filter file, when made for this version (kf_ok) */
    bool kf_ok;
    enum keyfilter_sum kf_sum; /* its blocks against their checksums */
    uint64_t rows;             /* visible rows read */
    uint64_t unfiltered;       /* ... whose key the filter lacks */
};

/* The key filter, when it is made for this version, must pass every visible key: mapped here,
 * with its checksums verified. A store without a key set token, or a filter made for another
 * version, is not checked (readers do not use it either). */
static enum posgate_err
verify_open_filter(struct verify *v)
{
    uint8_t token[KEYFILTER_TOKEN_LEN];
    bool have_token = false;
    char kmsg[STORE_ERRMSG_MAX];
    enum posgate_err err = store_read_token(v->s->db, token, &have_token, v->msg, v->cap);

    if (err != POSGATE_OK || !have_token) {
        return err;
    }
    v->kf_ok = keyfilter_map_open(&v->kf, v->s->kf_path, kmsg, sizeof(kmsg)) == POSGATE_OK &&
               keyfilter_map_token_is(&v->kf, token);
    v->kf_sum = v->kf_ok ? keyfilter_map_verify(&v->kf, true) : KEYFILTER_SUM_OK;
    return POSGATE_OK;
}

/* SQLite's PRAGMA quick_check: CORRUPT unless it answers "ok". */
static enum posgate_err
verify_quick_check(struct verify *v)
{
    sqlite3_stmt *st = NULL;
    enum posgate_err err = store_prepare(v->s->db, "PRAGMA quick_check", &st, v->msg, v->cap);
    int rc;

    if (err != POSGATE_OK) {
        return err;
    }
    rc = sqlite3_step(st);
    if (rc != SQLITE_ROW || sqlite3_column_text(st, 0) == NULL ||
        strcmp((const char *)sqlite3_column_text(st, 0), "ok") != 0) {
        plat_msgf(v->msg, v->cap, "store: SQLite integrity check failed: %.120s",
                  rc == SQLITE_ROW && sqlite3_column_text(st, 0) != NULL
                      ? (const char *)sqlite3_column_text(st, 0)
                      : sqlite3_errmsg(v->s->db));
        err = POSGATE_ERR_CORRUPT;
    }
    sqlite3_finalize(st);
    return err;
}

/* Reads the lists; each one's stored digest must be the hex of its stored state (REJECTED). */
static enum posgate_err
verify_read_lists(struct verify *v)
{
    size_t cap = STORE_LISTS_MAX;
    enum posgate_err err = store_read_lists(v->s->db, v->lists, v->nos, cap, &v->n, v->msg, v->cap);

    if (err != POSGATE_OK) {
        return err;
    }
    if (v->n > cap) {
        plat_msgf(v->msg, v->cap, "store: %zu lists, at most %zu supported", v->n, cap);
        return POSGATE_ERR_CORRUPT;
    }
    for (size_t i = 0; i < v->n; i++) {
        char hex[STATE_DIGEST_HEX_LEN + 1];

        state_digest_init(&v->calc[i]);
        state_digest_hex(&v->lists[i].state, hex);
        if (strcmp(hex, v->lists[i].digest) != 0) {
            plat_msgf(v->msg, v->cap,
                      "list \"%s\": stored digest %.16s... does not match its "
                      "stored state %.16s...",
                      v->lists[i].id, v->lists[i].digest, hex);
            return POSGATE_ERR_REJECTED;
        }
    }
    return POSGATE_OK;
}

/* Every removal marker in recent must name a row of entries (CORRUPT). */
static enum posgate_err
verify_markers(struct verify *v)
{
    int64_t dangling = 0;
    bool found = false;
    enum posgate_err err =
        store_query_int(v->s->db,
                        "SELECT count(*) FROM recent AS r WHERE r.d = 1 AND NOT EXISTS(SELECT 1"
                        " FROM entries AS e WHERE e.k = r.k AND e.t = r.t AND e.n = r.n)",
                        &dangling, &found, v->msg, v->cap);

    if (err == POSGATE_OK && dangling != 0) {
        plat_msgf(v->msg, v->cap,
                  "store: %" PRId64 " removal marker(s) in recent name no row of entries",
                  dangling);
        err = POSGATE_ERR_CORRUPT;
    }
    return err;
}

/* Adds one visible row to its list's state and checks its key against the filter. */
static enum posgate_err
verify_row(struct verify *v, sqlite3_stmt *st)
{
    struct feed_entry e;
    int64_t no = -1;
    size_t i;

    memset(&e, 0, sizeof(e));
    if (!store_decode_row(st, &e, &no)) {
        plat_msgf(v->msg, v->cap, "store: entry row %" PRIu64 " cannot be decoded", v->rows + 1);
        return POSGATE_ERR_CORRUPT;
    }
    for (i = 0; i < v->n && v->nos[i] != no; i++) {
    }
    if (i == v->n) {
        plat_msgf(v->msg, v->cap, "store: entry row %" PRIu64 " belongs to no list (%" PRId64 ")",
                  v->rows + 1, no);
        return POSGATE_ERR_REJECTED;
    }
    state_digest_add(&v->calc[i], &e);
    if (v->kf_ok && !keyfilter_maybe(&v->kf, e.key)) {
        v->unfiltered++;
    }
    v->rows++;
    return POSGATE_OK;
}

/* Every visible row (VISIBLE_ROWS) through verify_row; progress every 65536 rows. A read error
 * is CORRUPT (a damaged page), unless SQLite names another cause. */
static enum posgate_err
verify_rows(struct verify *v, void (*progress)(void *, uint64_t), void *ctx)
{
    sqlite3_stmt *st = NULL;
    enum posgate_err err = store_prepare(v->s->db, VISIBLE_ROWS(""), &st, v->msg, v->cap);
    int rc = SQLITE_DONE;

    while (err == POSGATE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        err = verify_row(v, st);
        if (err == POSGATE_OK && progress != NULL && (v->rows & 0xffff) == 0) {
            progress(ctx, v->rows);
        }
    }
    if (err == POSGATE_OK && rc != SQLITE_DONE) {
        err = store_db_fail(v->s->db, rc, "read entries", v->msg, v->cap);
        if (err == POSGATE_ERR_IO) {
            err = POSGATE_ERR_CORRUPT;
        }
    }
    sqlite3_finalize(st);
    return err;
}

/* Each list's rows must give its stored state and entry count (REJECTED). */
static enum posgate_err
verify_states(struct verify *v)
{
    for (size_t i = 0; i < v->n; i++) {
        const struct store_list *l = &v->lists[i];

        if (!state_digest_equal(&v->calc[i], &l->state) || v->calc[i].count != l->entries) {
            char hex[STATE_DIGEST_HEX_LEN + 1];

            state_digest_hex(&v->calc[i], hex);
            plat_msgf(v->msg, v->cap,
                      "list \"%s\" seq %" PRIu64 ": rows give digest %.16s... over %" PRIu64
                      " entries, expected %.16s... over %" PRIu64,
                      l->id, l->seq, hex, v->calc[i].count, l->digest, l->entries);
            return POSGATE_ERR_REJECTED;
        }
    }
    return POSGATE_OK;
}

/* A filter made for this version that fails its checksums, or lacks a visible key: CORRUPT,
 * and the handle's readers made from now on do not take the verdict they shared before. */
static enum posgate_err
verify_filter_verdict(const struct verify *v)
{
    if (v->kf_sum == KEYFILTER_SUM_BAD || v->unfiltered > 0) {
        store_filter_forget(v->s);
    }
    if (v->kf_sum == KEYFILTER_SUM_BAD) {
        plat_msgf(
            v->msg, v->cap,
            "store: key filter %s does not match its checksum (damaged on disk; it lacks %" PRIu64
            " of the %" PRIu64 " entries' keys; checks do not use it): remove it, and "
            "posgate compact writes a new one",
            v->s->kf_path, v->unfiltered, v->rows);
        return POSGATE_ERR_CORRUPT;
    }
    if (v->unfiltered > 0) {
        plat_msgf(v->msg, v->cap,
                  "store: key filter %s lacks %" PRIu64 " of the %" PRIu64
                  " entries' keys (lookups of them would find nothing): remove it, and posgate "
                  "compact writes a new one",
                  v->s->kf_path, v->unfiltered, v->rows);
        return POSGATE_ERR_CORRUPT;
    }
    return POSGATE_OK;
}

enum posgate_err
store_verify(struct store *s, void (*progress)(void *, uint64_t), void *ctx, char *errmsg,
             size_t errcap)
{
    struct verify v = {.s = s, .kf_sum = KEYFILTER_SUM_OK};
    enum posgate_err err;
    char dummy[8];
    bool txn = false;

    if (errmsg == NULL || errcap == 0) {
        errmsg = dummy;
        errcap = sizeof(dummy);
    }
    errmsg[0] = 0;
    if (s == NULL) {
        return POSGATE_ERR_INVALID;
    }
    v.msg = errmsg;
    v.cap = errcap;
    v.lists = plat_calloc(STORE_LISTS_MAX, sizeof(*v.lists));
    v.nos = plat_calloc(STORE_LISTS_MAX, sizeof(*v.nos));
    v.calc = plat_calloc(STORE_LISTS_MAX, sizeof(*v.calc));
    if (v.lists == NULL || v.nos == NULL || v.calc == NULL) {
        err = POSGATE_ERR_NOMEM;
    } else {
        err = store_exec(s->db, "BEGIN", errmsg, errcap);
        txn = err == POSGATE_OK;
    }
    if (err == POSGATE_OK) {
        err = verify_open_filter(&v);
    }
    if (err == POSGATE_OK) {
        err = verify_quick_check(&v);
    }
    if (err == POSGATE_OK) {
        err = verify_read_lists(&v);
    }
    if (err == POSGATE_OK) {
        err = verify_markers(&v);
    }
    if (err == POSGATE_OK) {
        err = verify_rows(&v, progress, ctx);
    }
    if (err == POSGATE_OK) {
        err = verify_states(&v);
    }
    if (err == POSGATE_OK) {
        err = verify_filter_verdict(&v);
    }
    keyfilter_map_close(&v.kf);
    if (txn) {
        (void)sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL);
    }
    plat_free(v.lists);
    plat_free(v.nos);
    plat_free(v.calc);
    return err;
}
