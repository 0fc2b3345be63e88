/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A list inside an update: a snapshot replaces its rows in entries (through a sorted run,
 * store_runs.c, then a batch of rows per INSERT), a delta's removals and additions go to recent
 * (store.h), each record checked and hashed into the list's state; finish compares that state and
 * records the list's row.
 */
#define _POSIX_C_SOURCE 200809L
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "plat_mem.h"
#include "store_internal.h"

/* The attributes column a of a row: kind | id_type << 1 | reason << 5 (store.h). */
static int64_t
encode_attrs(const struct feed_entry *e)
{
    return (int64_t)e->kind | ((int64_t)e->id_type << 1) | ((int64_t)e->reason << 5);
}

static void
reasons_from_blob(uint8_t *bits, const void *p, int len)
{
    memset(bits, 0, STORE_REASON_BITMAP);
    if (p != NULL && len > 0 && len <= STORE_REASON_BITMAP) {
        memcpy(bits, p, (size_t)len);
    }
}

/* Looks up (and creates) the list row; sets u->list_no, old_seq, count, state, reasons. */
static enum posgate_err
load_list(struct store_update *u, const char *list_id, bool create, bool *existed)
{
    sqlite3_stmt *st = NULL;
    struct store *s = u->s;
    enum posgate_err err;
    int rc;

    err = store_prepare(s->db, "SELECT no, seq, entries, state, reasons FROM lists WHERE id = ?1",
                        &st, s->errmsg, sizeof(s->errmsg));
    if (err != POSGATE_OK) {
        return store_ufail(u, err, "%s", s->errmsg);
    }
    sqlite3_bind_text(st, 1, list_id, -1, SQLITE_STATIC);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        *existed = true;
        u->list_no = sqlite3_column_int64(st, 0);
        u->old_seq = (uint64_t)sqlite3_column_int64(st, 1);
        u->count = (uint64_t)sqlite3_column_int64(st, 2);
        if (state_digest_deserialise(&u->state, sqlite3_column_blob(st, 3),
                                     (size_t)sqlite3_column_bytes(st, 3)) != POSGATE_OK) {
            sqlite3_finalize(st);
            return store_ufail(u, POSGATE_ERR_CORRUPT,
                               "store: list \"%s\": stored state is damaged", list_id);
        }
        reasons_from_blob(u->reasons, sqlite3_column_blob(st, 4), sqlite3_column_bytes(st, 4));
        sqlite3_finalize(st);
        return POSGATE_OK;
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        return store_ufail_db(u, rc, "read list");
    }
    *existed = false;
    u->old_seq = 0;
    u->count = 0;
    state_digest_init(&u->state);
    memset(u->reasons, 0, sizeof(u->reasons));
    if (!create) {
        return POSGATE_OK;
    }
    {
        uint8_t ser[STATE_DIGEST_SERIAL_LEN];
        char hex[STATE_DIGEST_HEX_LEN + 1];

        state_digest_serialise(&u->state, ser);
        state_digest_hex(&u->state, hex);
        err = store_prepare(s->db,
                            "INSERT INTO lists(id, seq, entries, digest, state, issued_at, reasons)"
                            " VALUES(?1, 0, 0, ?2, ?3, 0, NULL)",
                            &st, s->errmsg, sizeof(s->errmsg));
        if (err != POSGATE_OK) {
            return store_ufail(u, err, "%s", s->errmsg);
        }
        sqlite3_bind_text(st, 1, list_id, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, hex, -1, SQLITE_TRANSIENT);
        sqlite3_bind_blob(st, 3, ser, sizeof(ser), SQLITE_TRANSIENT);
        rc = sqlite3_step(st);
        sqlite3_finalize(st);
        if (rc != SQLITE_DONE) {
            return store_ufail_db(u, rc, "create list");
        }
        u->list_no = sqlite3_last_insert_rowid(s->db);
    }
    return POSGATE_OK;
}

static enum posgate_err
begin_list(struct store_update *u, const char *list_id)
{
    enum posgate_err err = store_update_ready(u);

    if (err != POSGATE_OK) {
        return err;
    }
    if (u->mode != MODE_NONE) {
        return store_ufail(u, POSGATE_ERR_STATE,
                           "store: list \"%s\" was not finished before \"%.64s\"", u->list_id,
                           list_id != NULL ? list_id : "");
    }
    if (list_id == NULL || !feed_list_id_valid(list_id)) {
        return store_ufail(u, POSGATE_ERR_INVALID,
                           "store: list id \"%.64s\": expected 1..64 of [A-Za-z0-9._-]",
                           list_id != NULL ? list_id : "");
    }
    memcpy(u->list_id, list_id, strlen(list_id) + 1);
    memset(u->tmpl_cache, 0, sizeof(u->tmpl_cache));
    u->additions_started = false;
    u->have_state = false;
    return POSGATE_OK;
}

/* Deletes every entry row and template of list no (the list row stays). */
static enum posgate_err
clear_list(struct store_update *u, int64_t no, uint64_t count)
{
    struct store *s = u->s;
    int64_t total = 0;
    bool found;
    enum posgate_err err;
    sqlite3_stmt *st = NULL;
    int64_t pending = 0;
    int rc;

    store_kf_note_cleared(u, no);

    if (count == 0) {
        /* an emptied list may still have rows in entries, hidden by their markers in recent */
        err = store_query_int(s->db, "SELECT EXISTS(SELECT 1 FROM recent)", &pending, &found,
                              s->errmsg, sizeof(s->errmsg));
        if (err != POSGATE_OK) {
            return store_ufail(u, err, "%s", s->errmsg);
        }
    }
    if (count > 0 || pending != 0) {
        err = store_lists_total(s->db, &total, s->errmsg, sizeof(s->errmsg));
        if (err != POSGATE_OK) {
            return store_ufail(u, err, "%s", s->errmsg);
        }
        if ((uint64_t)total == count) {
            /* The list holds every row: SQLite truncates the tables (zeroing the pages). */
            err = store_exec(s->db, "DELETE FROM entries; DELETE FROM recent", s->errmsg,
                             sizeof(s->errmsg));
        } else {
            static const char *const sql[] = {
                "DELETE FROM entries WHERE t IN (SELECT id FROM tmpl WHERE list = ?1)",
                "DELETE FROM recent WHERE t IN (SELECT id FROM tmpl WHERE list = ?1)"};

            for (size_t i = 0; i < 2 && err == POSGATE_OK; i++) {
                err = store_prepare(s->db, sql[i], &st, s->errmsg, sizeof(s->errmsg));
                if (err == POSGATE_OK) {
                    sqlite3_bind_int64(st, 1, no);
                    rc = sqlite3_step(st);
                    if (rc != SQLITE_DONE) {
                        err = store_db_fail(s->db, rc, "delete list entries", s->errmsg,
                                            sizeof(s->errmsg));
                    }
                    sqlite3_finalize(st);
                    st = NULL;
                }
            }
        }
        if (err != POSGATE_OK) {
            return store_ufail(u, err, "%s", s->errmsg);
        }
    }
    err =
        store_prepare(s->db, "DELETE FROM tmpl WHERE list = ?1", &st, s->errmsg, sizeof(s->errmsg));
    if (err != POSGATE_OK) {
        return store_ufail(u, err, "%s", s->errmsg);
    }
    sqlite3_bind_int64(st, 1, no);
    rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        return store_ufail_db(u, rc, "delete list templates");
    }
    return POSGATE_OK;
}

enum posgate_err
store_list_snapshot_begin(struct store_update *u, const char *list_id, unsigned flags)
{
    enum posgate_err err = begin_list(u, list_id);
    bool existed = false;

    if (err != POSGATE_OK) {
        return err;
    }
    err = load_list(u, list_id, true, &existed);
    if (err == POSGATE_OK && store_runs_has_list(u, u->list_no)) {
        err = store_runs_flush(u); /* its rows are cleared below */
    }
    if (err != POSGATE_OK) {
        return err;
    }
    if (existed) {
        err = clear_list(u, u->list_no, u->count);
        if (err != POSGATE_OK) {
            return err;
        }
        u->changes += u->count;
    }
    u->count = 0;
    state_digest_init(&u->state);
    memset(u->reasons, 0, sizeof(u->reasons));
    u->trust_state = (flags & STORE_SNAPSHOT_TRUST_STATE) != 0;
    u->mode = MODE_SNAPSHOT;
    u->have_state = true;
    return POSGATE_OK;
}

enum posgate_err
store_list_delta_begin(struct store_update *u, const char *list_id, uint64_t base_seq)
{
    enum posgate_err err = begin_list(u, list_id);
    bool existed = false;

    if (err != POSGATE_OK) {
        return err;
    }
    err = store_runs_flush(u); /* a delta reads rows */
    if (err != POSGATE_OK) {
        return err;
    }
    err = load_list(u, list_id, false, &existed);
    if (err != POSGATE_OK) {
        return err;
    }
    if (!existed) {
        return store_ufail(u, POSGATE_ERR_REJECTED,
                           "store: delta for list \"%s\" from seq %" PRIu64
                           ", but the list is not installed",
                           list_id, base_seq);
    }
    if (u->old_seq != base_seq) {
        return store_ufail(u, POSGATE_ERR_REJECTED,
                           "store: delta for list \"%s\" has base seq %" PRIu64
                           ", expected the installed seq %" PRIu64,
                           list_id, base_seq, u->old_seq);
    }
    u->trust_state = false;
    u->mode = MODE_DELTA;
    u->have_state = true;
    return POSGATE_OK;
}

/* The template id for (current list, stem, width); creates it when create is set. 0 when
 * absent and not created. */
static enum posgate_err
template_id(struct store_update *u, const char *stem, size_t stem_len, uint8_t width, bool create,
            int64_t *out)
{
    uint32_t h = 2166136261u;
    struct tmpl_slot *slot;
    int rc;

    for (size_t i = 0; i < stem_len; i++) {
        h = (h ^ (uint8_t)stem[i]) * 16777619u;
    }
    h = (h ^ width) * 16777619u;
    slot = &u->tmpl_cache[h % TMPL_CACHE_SLOTS];
    if (slot->id != 0 && slot->list == u->list_no && slot->width == width &&
        slot->stem_len == stem_len && memcmp(slot->stem, stem, stem_len) == 0) {
        *out = slot->id;
        return POSGATE_OK;
    }
    sqlite3_bind_int64(u->tmpl_sel, 1, u->list_no);
    sqlite3_bind_blob(u->tmpl_sel, 2, stem, (int)stem_len, SQLITE_STATIC);
    sqlite3_bind_int(u->tmpl_sel, 3, width);
    rc = sqlite3_step(u->tmpl_sel);
    if (rc == SQLITE_ROW) {
        *out = sqlite3_column_int64(u->tmpl_sel, 0);
    } else if (rc == SQLITE_DONE) {
        *out = 0;
    }
    sqlite3_reset(u->tmpl_sel);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        return store_ufail_db(u, rc, "read template");
    }
    if (*out == 0 && create) {
        sqlite3_bind_int64(u->tmpl_ins, 1, u->list_no);
        sqlite3_bind_blob(u->tmpl_ins, 2, stem, (int)stem_len, SQLITE_STATIC);
        sqlite3_bind_int(u->tmpl_ins, 3, width);
        rc = sqlite3_step(u->tmpl_ins);
        sqlite3_reset(u->tmpl_ins);
        if (rc != SQLITE_DONE) {
            return store_ufail_db(u, rc, "write template");
        }
        *out = sqlite3_last_insert_rowid(u->s->db);
    }
    if (*out != 0) {
        slot->id = *out;
        slot->list = u->list_no;
        slot->width = width;
        slot->stem_len = (uint8_t)stem_len;
        memcpy(slot->stem, stem, stem_len);
    }
    return POSGATE_OK;
}

static enum posgate_err
check_entry(struct store_update *u, const struct feed_entry *e, bool full)
{
    char msg[160];
    enum posgate_err err;

    if (e == NULL) {
        return store_ufail(u, POSGATE_ERR_INVALID, "store: no entry given");
    }
    if (full) {
        err = feed_entry_check(e, msg, sizeof(msg));
        if (err != POSGATE_OK) {
            return store_ufail(u, err, "store: list \"%s\": entry %" PRIu64 ": %s", u->list_id,
                               u->count + 1, msg);
        }
        if (e->id_type > 15 || e->reason >= FEED_REASONS_MAX) {
            return store_ufail(u, POSGATE_ERR_INVALID,
                               "store: list \"%s\": id_type %u or reason %u out of range",
                               u->list_id, e->id_type, e->reason);
        }
    } else if (e->listing_id_len == 0 || e->listing_id_len > FEED_LISTING_ID_MAX ||
               strlen(e->listing_id) != e->listing_id_len) {
        return store_ufail(u, POSGATE_ERR_INVALID,
                           "store: list \"%s\": removal with a bad listing id", u->list_id);
    }
    return POSGATE_OK;
}

static void
bind_row(sqlite3_stmt *st, int base, const struct pending_row *r)
{
    sqlite3_bind_blob(st, base + 1, r->key, FEED_KEY_LEN, SQLITE_STATIC);
    sqlite3_bind_int64(st, base + 2, r->tid);
    sqlite3_bind_int64(st, base + 3, r->num);
    sqlite3_bind_int64(st, base + 4, r->attrs);
    sqlite3_bind_int64(st, base + 5, r->from);
    if (r->open_until) {
        sqlite3_bind_null(st, base + 6);
    } else {
        sqlite3_bind_int64(st, base + 6, r->until);
    }
    if (r->scope_len > 0) {
        sqlite3_bind_blob(st, base + 7, r->scope, r->scope_len, SQLITE_STATIC);
    } else {
        sqlite3_bind_null(st, base + 7);
    }
}

/* Inserts one row through st: u->ins (a snapshot's row into entries) or u->ov_ins (a delta's
 * addition into recent, which inserts nothing when the entry is visible already). */
static enum posgate_err
insert_row(struct store_update *u, sqlite3_stmt *st, const struct pending_row *r)
{
    int rc;

    bind_row(st, 0, r);
    rc = sqlite3_step(st);
    sqlite3_reset(st);
    if (rc == SQLITE_DONE && sqlite3_changes(u->s->db) == 1) {
        return POSGATE_OK;
    }
    if ((rc == SQLITE_DONE || (rc & 0xff) == SQLITE_CONSTRAINT) && r->listing_id[0] == 0) {
        return store_ufail(u, POSGATE_ERR_REJECTED, /* a merged row of a run (store_runs.c) */
                           "store: a snapshot adds the entry of key %02x%02x%02x%02x... and "
                           "template %" PRId64 " twice: it is added but already present",
                           r->key[0], r->key[1], r->key[2], r->key[3], r->tid);
    }
    if (rc == SQLITE_DONE || (rc & 0xff) == SQLITE_CONSTRAINT) {
        return store_ufail(u, POSGATE_ERR_REJECTED,
                           "store: list \"%s\": listing \"%s\" is added but already present",
                           u->list_id, r->listing_id);
    }
    return store_ufail_db(u, rc, "insert entry");
}

/* Inserts n rows. A full batch goes in one statement; when that statement fails on a
 * constraint (it is rolled back as a whole) the rows are inserted one by one to name the
 * listing at fault. */
static enum posgate_err
insert_rows(struct store_update *u, const struct pending_row *rows, unsigned n)
{
    enum posgate_err err = POSGATE_OK;
    unsigned i = 0;
    int rc;

    if (n == INS_BATCH) {
        if (u->ins_batch == NULL) {
            char sql[64 + INS_BATCH * 32];
            size_t used = (size_t)snprintf(sql, sizeof(sql),
                                           "INSERT INTO entries(k, t, n, a, f, u, s) VALUES");
            for (unsigned r = 0; r < INS_BATCH; r++) {
                used += (size_t)snprintf(sql + used, sizeof(sql) - used, "%s(?,?,?,?,?,?,?)",
                                         r == 0 ? "" : ",");
            }
            char msg[STORE_ERRMSG_MAX];

            err = store_prepare(u->s->db, sql, &u->ins_batch, msg, sizeof(msg));
            if (err != POSGATE_OK) {
                return store_ufail(u, err, "%s", msg);
            }
        }
        for (unsigned r = 0; r < INS_BATCH; r++) {
            bind_row(u->ins_batch, 7 * (int)r, &rows[r]);
        }
        rc = sqlite3_step(u->ins_batch);
        sqlite3_reset(u->ins_batch);
        if (rc == SQLITE_DONE) {
            return POSGATE_OK;
        }
        if ((rc & 0xff) != SQLITE_CONSTRAINT) {
            return store_ufail_db(u, rc, "insert entries");
        }
    }
    for (; i < n && err == POSGATE_OK; i++) {
        err = insert_row(u, u->ins, &rows[i]);
    }
    return err;
}

static enum posgate_err
flush_pending(struct store_update *u)
{
    unsigned n = u->n_pending;

    u->n_pending = 0;
    return insert_rows(u, u->pending, n);
}

enum posgate_err
store_put_row(struct store_update *u, const struct pending_row *r)
{
    u->pending[u->n_pending++] = *r;
    return u->n_pending == INS_BATCH ? flush_pending(u) : POSGATE_OK;
}

enum posgate_err
store_put_rows(struct store_update *u, const struct pending_row *rows, size_t n)
{
    enum posgate_err err = POSGATE_OK;
    size_t i = 0;

    if (u->n_pending == 0) { /* whole batches straight from rows, without a copy */
        for (; n - i >= INS_BATCH && err == POSGATE_OK; i += INS_BATCH) {
            err = insert_rows(u, rows + i, INS_BATCH);
        }
    }
    for (; i < n && err == POSGATE_OK; i++) {
        err = store_put_row(u, &rows[i]);
    }
    return err;
}

enum posgate_err
store_flush_rows(struct store_update *u)
{
    return flush_pending(u);
}

enum posgate_err
store_list_add(struct store_update *u, const struct feed_entry *e)
{
    enum posgate_err err = store_update_ready(u);
    size_t stem_len;
    uint8_t width;
    int64_t tid = 0;
    uint64_t num; /* below 10^18: an int64_t in the row */
    struct pending_row row, *r = &row;
    bool taken = false;

    if (err != POSGATE_OK) {
        return err;
    }
    if (u->mode == MODE_NONE) {
        return store_ufail(u, POSGATE_ERR_STATE, "store: entry added outside a list");
    }
    err = check_entry(u, e, true);
    if (err != POSGATE_OK) {
        return err;
    }
    feed_listing_split(e->listing_id, e->listing_id_len, &stem_len, &width, &num);
    err = template_id(u, e->listing_id, stem_len, width, true, &tid);
    if (err != POSGATE_OK) {
        return err;
    }
    memcpy(r->key, e->key, FEED_KEY_LEN);
    r->tid = tid;
    r->num = (int64_t)num;
    r->attrs = encode_attrs(e);
    r->from = e->valid_from;
    r->open_until = e->valid_until == FEED_UNTIL_OPEN;
    r->until = e->valid_until;
    r->scope_len = (uint8_t)(2 * e->scope_count);
    for (unsigned i = 0; i < e->scope_count; i++) {
        r->scope[2 * i] = (uint8_t)(e->scope[i] >> 8);
        r->scope[2 * i + 1] = (uint8_t)e->scope[i];
    }
    memcpy(r->listing_id, e->listing_id, e->listing_id_len);
    r->listing_id[e->listing_id_len] = 0;
    if (u->mode == MODE_SNAPSHOT) {
        /* into the list's sorted run, merged with the other lists' before the commit */
        err = store_runs_put(u, r, &taken);
        if (err == POSGATE_OK && !taken) {
            err = store_put_row(u, r);
        }
    } else {
        err = insert_row(u, u->ov_ins, r); /* a delta's additions go to recent (store.h) */
    }
    if (err != POSGATE_OK) {
        return err;
    }
    if (!taken) {
        store_kf_note_add(u, e->key); /* a row of a run: when it is merged, in key order */
    }
    if (!u->trust_state) {
        state_digest_add(&u->state, e);
    }
    u->reasons[e->reason / 8] = (uint8_t)(u->reasons[e->reason / 8] | (1u << (e->reason % 8)));
    u->count++;
    u->changes++;
    u->additions_started = true;
    return POSGATE_OK;
}

/* Steps a removal statement (?1 k, ?2 t, ?3 n; RETURNING a, f, u, s) and decodes the row it
 * hands back into *old. SQLITE_ROW: removed; SQLITE_DONE: no such row; SQLITE_CORRUPT: the row
 * does not decode; otherwise the SQLite error. */
static int
take_row(sqlite3_stmt *st, const struct feed_entry *e, int64_t tid, int64_t num,
         struct feed_entry *old)
{
    int rc, rrc;

    sqlite3_bind_blob(st, 1, e->key, FEED_KEY_LEN, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, tid);
    sqlite3_bind_int64(st, 3, num);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        memcpy(old->key, e->key, FEED_KEY_LEN);
        memcpy(old->listing_id, e->listing_id, e->listing_id_len + 1u);
        old->listing_id_len = e->listing_id_len;
        if (!store_decode_attrs(old, sqlite3_column_int64(st, 0), sqlite3_column_int64(st, 1), st,
                                2, 3)) {
            sqlite3_reset(st);
            return SQLITE_CORRUPT;
        }
        if (sqlite3_step(st) != SQLITE_DONE) { /* (k, t, n[, d]) is the primary key */
            return sqlite3_reset(st);
        }
    }
    rrc = sqlite3_reset(st);
    if (rc == SQLITE_ROW || rc == SQLITE_DONE) {
        return rrc == SQLITE_OK ? rc : rrc;
    }
    return rc == SQLITE_ERROR ? rrc : rc; /* reset gives the extended code */
}

enum posgate_err
store_list_remove(struct store_update *u, const struct feed_entry *e)
{
    enum posgate_err err = store_update_ready(u);
    size_t stem_len;
    uint8_t width;
    int64_t tid = 0;
    uint64_t num; /* below 10^18: an int64_t in the row */
    struct feed_entry old;
    int rc;

    if (err != POSGATE_OK) {
        return err;
    }
    if (u->mode != MODE_DELTA) {
        return store_ufail(u, POSGATE_ERR_STATE, "store: removal outside a delta");
    }
    if (u->additions_started) {
        return store_ufail(u, POSGATE_ERR_REJECTED,
                           "store: list \"%s\": removal after an addition (removals come first)",
                           u->list_id);
    }
    err = check_entry(u, e, false);
    if (err != POSGATE_OK) {
        return err;
    }
    feed_listing_split(e->listing_id, e->listing_id_len, &stem_len, &width, &num);
    err = template_id(u, e->listing_id, stem_len, width, false, &tid);
    if (err != POSGATE_OK) {
        return err;
    }
    memset(&old, 0, sizeof(old));
    rc = SQLITE_DONE;
    if (tid != 0) {
        /* an addition still in recent goes from there; a row of entries gets a marker */
        rc = take_row(u->ov_take, e, tid, (int64_t)num, &old);
        if (rc == SQLITE_DONE) {
            rc = take_row(u->ov_tomb, e, tid, (int64_t)num, &old);
            if ((rc & 0xff) == SQLITE_CONSTRAINT) {
                rc = SQLITE_DONE; /* marked already: removed before */
            }
        }
        if (rc == SQLITE_CORRUPT) {
            return store_ufail(u, POSGATE_ERR_CORRUPT,
                               "store: list \"%s\": the row of listing \"%s\" is damaged",
                               u->list_id, e->listing_id);
        }
    }
    if (rc == SQLITE_DONE) {
        return store_ufail(u, POSGATE_ERR_REJECTED,
                           "store: list \"%s\": listing \"%s\" is removed but not present",
                           u->list_id, e->listing_id);
    }
    if (rc != SQLITE_ROW) {
        return store_ufail_db(u, rc, "delete entry");
    }
    state_digest_remove(&u->state, &old);
    u->count--;
    u->changes++;
    return POSGATE_OK;
}

enum posgate_err
store_list_finish(struct store_update *u, uint64_t seq, int64_t issued_at,
                  const struct state_digest *expected)
{
    enum posgate_err err = store_update_ready(u);
    uint8_t ser[STATE_DIGEST_SERIAL_LEN];
    char hex[STATE_DIGEST_HEX_LEN + 1];
    sqlite3_stmt *st = NULL;
    size_t used = 0;
    int rc;

    if (err != POSGATE_OK) {
        return err;
    }
    if (u->mode == MODE_NONE) {
        return store_ufail(u, POSGATE_ERR_STATE, "store: finish without a list");
    }
    err = flush_pending(u);
    if (err != POSGATE_OK) {
        return err;
    }
    store_runs_end_list(u);
    if (seq > INT64_MAX) {
        return store_ufail(u, POSGATE_ERR_INVALID, "store: seq %" PRIu64 " out of range", seq);
    }
    if (u->mode == MODE_SNAPSHOT && seq < u->old_seq) {
        return store_ufail(u, POSGATE_ERR_ROLLBACK,
                           "store: snapshot of list \"%s\" has seq %" PRIu64
                           ", older than the installed %" PRIu64,
                           u->list_id, seq, u->old_seq);
    }
    if (u->mode == MODE_DELTA && seq <= u->old_seq) {
        return store_ufail(u, POSGATE_ERR_ROLLBACK,
                           "store: delta of list \"%s\" goes to seq %" PRIu64
                           ", expected above the base %" PRIu64,
                           u->list_id, seq, u->old_seq);
    }
    if (u->trust_state) {
        if (expected == NULL) {
            return store_ufail(u, POSGATE_ERR_INVALID,
                               "store: list \"%s\": a trusted snapshot needs its state",
                               u->list_id);
        }
        u->state = *expected;
    } else if (expected != NULL && !state_digest_equal(&u->state, expected)) {
        char want[STATE_DIGEST_HEX_LEN + 1];

        state_digest_hex(&u->state, hex);
        state_digest_hex(expected, want);
        return store_ufail(u, POSGATE_ERR_REJECTED,
                           "store: list \"%s\" seq %" PRIu64 ": digest mismatch after applying: "
                           "expected %.16s..., computed %.16s...",
                           u->list_id, seq, want, hex);
    }
    if (u->state.count != u->count) {
        return store_ufail(u, POSGATE_ERR_REJECTED,
                           "store: list \"%s\": the state counts %" PRIu64 " entries, %" PRIu64
                           " were applied",
                           u->list_id, u->state.count, u->count);
    }
    state_digest_serialise(&u->state, ser);
    state_digest_hex(&u->state, hex);
    for (size_t i = 0; i < sizeof(u->reasons); i++) {
        if (u->reasons[i] != 0) {
            used = i + 1;
        }
    }
    err = store_prepare(u->s->db,
                        "UPDATE lists SET seq = ?2, entries = ?3, digest = ?4, state = ?5,"
                        " issued_at = ?6, reasons = ?7 WHERE no = ?1",
                        &st, u->s->errmsg, sizeof(u->s->errmsg));
    if (err != POSGATE_OK) {
        return store_ufail(u, err, "%s", u->s->errmsg);
    }
    sqlite3_bind_int64(st, 1, u->list_no);
    sqlite3_bind_int64(st, 2, (int64_t)seq);
    sqlite3_bind_int64(st, 3, (int64_t)u->count);
    sqlite3_bind_text(st, 4, hex, -1, SQLITE_STATIC);
    sqlite3_bind_blob(st, 5, ser, sizeof(ser), SQLITE_STATIC);
    sqlite3_bind_int64(st, 6, issued_at);
    sqlite3_bind_blob(st, 7, u->reasons, (int)used, SQLITE_STATIC);
    rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        return store_ufail_db(u, rc, "update list");
    }
    u->mode = MODE_NONE;
    return POSGATE_OK;
}

const struct state_digest *
store_update_list_state(const struct store_update *u)
{
    return (u != NULL && u->have_state) ? &u->state : NULL;
}

enum posgate_err
store_list_drop(struct store_update *u, const char *list_id)
{
    enum posgate_err err = begin_list(u, list_id);
    bool existed = false;
    sqlite3_stmt *st = NULL;
    int rc;

    if (err != POSGATE_OK) {
        return err;
    }
    err = store_runs_flush(u);
    if (err != POSGATE_OK) {
        return err;
    }
    err = load_list(u, list_id, false, &existed);
    if (err != POSGATE_OK) {
        return err;
    }
    if (!existed) {
        plat_msgf(u->s->errmsg, sizeof(u->s->errmsg), "store: list \"%s\" is not installed",
                  list_id);
        return POSGATE_ERR_NOTFOUND; /* not poisoning: nothing changed */
    }
    err = clear_list(u, u->list_no, u->count);
    if (err != POSGATE_OK) {
        return err;
    }
    err = store_prepare(u->s->db, "DELETE FROM lists WHERE no = ?1", &st, u->s->errmsg,
                        sizeof(u->s->errmsg));
    if (err != POSGATE_OK) {
        return store_ufail(u, err, "%s", u->s->errmsg);
    }
    sqlite3_bind_int64(st, 1, u->list_no);
    rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        return store_ufail_db(u, rc, "drop list");
    }
    u->changes += u->count;
    u->have_state = false;
    return POSGATE_OK;
}
