/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The collector's SQLite store (hub_store.h; the schema is drawn in hub_db.h): enrolment, one
 * write transaction per batch (BEGIN IMMEDIATE: one writer at a time, which is what keeps a
 * device's events in order), storing each (device, seq) once, and the records of gaps and chain
 * breaks that stats reports. WAL with synchronous=FULL: an ack is sent only for events on disk.
 */
#include "hub_store.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include <sqlite3.h>

#include "crypto.h"
#include "plat_mem.h"

struct sq {
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
    "CREATE TABLE IF NOT EXISTS anchors(device_id TEXT PRIMARY KEY, seq INTEGER NOT NULL,"
    " hash BLOB NOT NULL, prev_hash BLOB NOT NULL, pruned_at INTEGER NOT NULL);";

/* The device status reports (hub_db_report): the latest per device and every one received. */
static const char report_schema[] =
    "CREATE TABLE IF NOT EXISTS device_status(device_id TEXT PRIMARY KEY,"
    " reported_at_us INTEGER NOT NULL, received_at INTEGER NOT NULL, report TEXT NOT NULL);"
    "CREATE TABLE IF NOT EXISTS device_reports(device_id TEXT NOT NULL,"
    " reported_at_us INTEGER NOT NULL, received_at INTEGER NOT NULL, report TEXT NOT NULL,"
    " PRIMARY KEY(device_id, reported_at_us)) WITHOUT ROWID;";

/* Version 3 (hub_db.h): events.decision_id, its index, and the contests looked up. The
 * decision ids of the events already held are taken from their text: the first ',"id":"' of a
 * canonical event is its top-level "id" for every event the kiosk's codec writes
 * (audit_event.c): keys are sorted by their bytes, those before "id" (at, data_age_s, decision,
 * device_id, error, feed_version) hold no object, and a '"' inside a string is always escaped,
 * so the text ',"id":"' cannot begin inside one. The id is kept only when 32 lowercase hex and
 * a closing quote follow, as ingest keeps it (hub_batch.c); hub_db_decision still parses the
 * event it finds and compares its "id". The same expression backfills PostgreSQL
 * (hub_db_pg.c, migration 4). */
#define ID_AT "instr(json, ',\"id\":\"')"
static const char schema_v3[] =
    "ALTER TABLE events ADD COLUMN decision_id TEXT;"
    "UPDATE events SET decision_id = substr(json, " ID_AT " + 7, 32) WHERE kind = 'decision'"
    " AND " ID_AT " > 0 AND substr(json, " ID_AT " + 39, 1) = '\"'"
    " AND NOT substr(json, " ID_AT " + 7, 32) GLOB '*[^0-9a-f]*';"
    "CREATE INDEX events_decision_id ON events(decision_id) WHERE decision_id IS NOT NULL;"
    "CREATE TABLE lookups(decision_id TEXT NOT NULL, looked_up_at INTEGER NOT NULL,"
    " service TEXT NOT NULL, lists TEXT NOT NULL, via TEXT NOT NULL);"
    "CREATE INDEX lookups_at ON lookups(looked_up_at);"
    "PRAGMA user_version=3;";
#define SCHEMA_VERSION 3

static enum posgate_err
sql_fail(struct sq *db, int rc, const char *what, char *errmsg, size_t errcap)
{
    if (errmsg != NULL && errcap > 0) {
        snprintf(errmsg, errcap, "collector database: %s: %s", what, sqlite3_errmsg(db->db));
    }
    return rc == SQLITE_BUSY || rc == SQLITE_LOCKED ? POSGATE_ERR_RETRY : POSGATE_ERR_IO;
}

/* Brings the schema to SCHEMA_VERSION in one write transaction (BEGIN IMMEDIATE: a second
 * process opening the file at once waits, then finds it done). The tables of versions 1 and 2
 * are made by CREATE TABLE IF NOT EXISTS before; a file newer than this binary knows is
 * refused. */
static enum posgate_err
migrate(struct sq *db, const char *path, char *errmsg, size_t errcap)
{
    sqlite3_stmt *st = NULL;
    int64_t have = -1;
    int rc = sqlite3_exec(db->db, "BEGIN IMMEDIATE", NULL, NULL, NULL);

    if (rc == SQLITE_OK) {
        rc = sqlite3_prepare_v2(db->db, "PRAGMA user_version", -1, &st, NULL);
    }
    if (rc == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW) {
        have = sqlite3_column_int64(st, 0);
    }
    sqlite3_finalize(st);
    if (rc == SQLITE_OK && have > SCHEMA_VERSION) {
        sqlite3_exec(db->db, "ROLLBACK", NULL, NULL, NULL);
        snprintf(errmsg, errcap,
                 "%s: the database's schema is version %lld, newer than this posgate-hub knows "
                 "(%d): upgrade posgate-hub",
                 path, (long long)have, SCHEMA_VERSION);
        return POSGATE_ERR_STATE;
    }
    if (rc == SQLITE_OK && have >= 0 && have < SCHEMA_VERSION) {
        rc = sqlite3_exec(db->db, schema_v3, NULL, NULL, NULL);
    }
    if (rc == SQLITE_OK) {
        rc = sqlite3_exec(db->db, "COMMIT", NULL, NULL, NULL);
    }
    if (rc != SQLITE_OK) {
        enum posgate_err err = sql_fail(db, rc, "schema version 3", errmsg, errcap);

        sqlite3_exec(db->db, "ROLLBACK", NULL, NULL, NULL);
        return err;
    }
    return POSGATE_OK;
}

static void sq_close(void *impl);

static enum posgate_err
sq_open(const char *path, struct sq **out, char *errmsg, size_t errcap)
{
    struct sq *db;
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
    if (rc == SQLITE_OK) {
        rc = sqlite3_exec(db->db, report_schema, NULL, NULL, NULL);
    }
    if (rc != SQLITE_OK) {
        err = sql_fail(db, rc, path, errmsg, errcap);
        goto out;
    }
    err = migrate(db, path, errmsg, errcap);
    if (err != POSGATE_OK) {
        goto out;
    }
    *out = db;
    db = NULL;
out:
    sq_close(db);
    return err;
}

static void
sq_close(void *impl)
{
    struct sq *db = impl;

    if (db == NULL) {
        return;
    }
    sqlite3_close(db->db);
    pthread_mutex_destroy(&db->mu);
    plat_free(db);
}

static enum posgate_err
sq_enroll(void *impl, const char *id, const char *pem, size_t len, int64_t now_s, bool *added,
          char *errmsg, size_t errcap)
{
    struct sq *db = impl;
    sqlite3_stmt *st = NULL;
    enum posgate_err err = POSGATE_OK;
    int rc;

    *added = false;
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
    *added = true;
unlock:
    sqlite3_finalize(st);
    pthread_mutex_unlock(&db->mu);
    return err;
}

/* ---- judging a batch ---- */

/* The stored hash and prev_hash (prev may be NULL) of (device, seq): 1 found, 0 not, -1 error
 * with the SQLite code in *rc_out. */
static int
held_hash(struct sq *db, const char *dev, uint64_t seq, uint8_t out[AUDIT_HASH_LEN],
          uint8_t prev[AUDIT_HASH_LEN], int *rc_out)
{
    sqlite3_stmt *st = NULL;
    int rc, found = 0;

    /* a pruned seq answers from its device's anchor (hub_store.h) */
    rc = sqlite3_prepare_v2(db->db,
                            "SELECT hash, prev_hash FROM events WHERE device_id = ?1 AND seq = ?2 "
                            "UNION ALL SELECT hash, prev_hash FROM anchors WHERE device_id = ?1 "
                            "AND seq = ?2 LIMIT 1",
                            -1, &st, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_bind_text(st, 1, dev, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, (sqlite3_int64)seq);
        rc = sqlite3_step(st);
    }
    if (rc == SQLITE_ROW) {
        memset(out, 0, AUDIT_HASH_LEN);
        if (sqlite3_column_bytes(st, 0) == AUDIT_HASH_LEN) {
            memcpy(out, sqlite3_column_blob(st, 0), AUDIT_HASH_LEN);
        }
        if (prev != NULL) {
            memset(prev, 0, AUDIT_HASH_LEN);
            if (sqlite3_column_bytes(st, 1) == AUDIT_HASH_LEN) {
                memcpy(prev, sqlite3_column_blob(st, 1), AUDIT_HASH_LEN);
            }
        }
        found = 1;
        rc = SQLITE_OK;
    } else if (rc != SQLITE_DONE) {
        found = -1;
    } else {
        rc = SQLITE_OK;
    }
    *rc_out = rc;
    sqlite3_finalize(st);
    return found;
}

struct held_ctx {
    struct sq *db;
    const char *dev;
    int rc;
};

static int
held_cb(void *ctx, uint64_t seq, uint8_t hash[AUDIT_HASH_LEN], uint8_t prev[AUDIT_HASH_LEN])
{
    struct held_ctx *c = ctx;

    return held_hash(c->db, c->dev, seq, hash, prev, &c->rc);
}

static int
query_u64(struct sq *db, const char *sql, const char *dev, uint64_t arg, uint64_t *out)
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
advance_acked(struct sq *db, const char *dev, uint64_t *acked)
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
exec_bound(struct sq *db, const char *sql, const char *dev, const int64_t *ints, size_t n_ints,
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
note_batch(struct sq *db, const struct hub_batch *b, const char *key, size_t stored,
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
record_break(struct sq *db, const char *dev, const struct hub_break *k, int64_t now_s)
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
insert_event(struct sq *db, const char *dev, const struct hub_event *e, int64_t now_s)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db->db,
                                "INSERT INTO events(device_id, seq, hash, prev_hash, kind, "
                                "decision, count, json, received_at, decision_id) VALUES (?1, "
                                "?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
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
        if (e->decision_id[0] != 0) { /* else NULL: a summary, or an id no contest can ask for */
            sqlite3_bind_text(st, 10, e->decision_id, -1, SQLITE_STATIC);
        }
        rc = sqlite3_step(st);
        rc = rc == SQLITE_DONE ? SQLITE_OK : rc;
    }
    sqlite3_finalize(st);
    return rc;
}

/* The lowest held seq below `below` (0 when none). */
static int
held_below(struct sq *db, const char *dev, uint64_t below, uint64_t *out)
{
    return query_u64(db,
                     "SELECT max(coalesce((SELECT max(seq) FROM events WHERE device_id = ?1 AND "
                     "seq < ?2), 0), coalesce((SELECT seq FROM anchors WHERE device_id = ?1 AND "
                     "seq < ?2), 0))",
                     dev, below, out);
}

/* The highest seq held, counting the anchor of pruned events. */
static const char held_max_sql[] =
    "SELECT max(coalesce((SELECT max(seq) FROM events WHERE device_id = ?1), 0), "
    "coalesce((SELECT seq FROM anchors WHERE device_id = ?1), 0))";

/* What the batch adds once judged: the gap before its first event when the seq before it is
 * not held, each event not held and above the device's anchor (not stored again below it), and
 * the gaps it fills closed. A SQLite code. */
static int
store_events(struct sq *db, const struct hub_batch *b, struct held_ctx *hc, uint64_t anchor,
             int64_t now_s, struct hub_ingest *res)
{
    int rc = SQLITE_OK, f = hub_judge_gap(b, res, anchor, held_cb, hc);

    if (f < 0) {
        return hc->rc;
    }
    if (f > 0) {
        uint64_t below = 0;
        int64_t v[3];

        rc = held_below(db, b->device_id, b->ev[0].seq, &below);
        if (rc != SQLITE_OK) {
            return rc;
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
            return rc;
        }
    }
    for (size_t i = 0; i < b->n; i++) {
        uint8_t h[AUDIT_HASH_LEN];

        f = held_hash(db, b->device_id, b->ev[i].seq, h, NULL, &rc);
        if (f < 0) {
            return rc;
        }
        if (f == 0 && b->ev[i].seq > anchor) { /* not stored again below the anchor */
            rc = insert_event(db, b->device_id, &b->ev[i], now_s);
            if (rc != SQLITE_OK) {
                return rc;
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
    }
    return rc;
}

/* Judges the batch (hub_store.h, hub_judge_*) and writes what it did, inside the caller's
 * write transaction: OK (stored) or BADHASH (the break recorded) for the caller to commit,
 * anything else to roll back. */
static enum posgate_err
ingest_tx(struct sq *db, const struct hub_batch *b, const char *key, int64_t now_s,
          struct hub_ingest *res)
{
    sqlite3_stmt *st = NULL;
    struct hub_break k;
    struct held_ctx hc = {db, b->device_id, SQLITE_OK};
    struct buf pem = BUF_INIT(CRYPTO_PEM_MAX);
    uint64_t anchor = 0;
    enum posgate_err err = POSGATE_OK;
    int rc, f;

    rc = sqlite3_prepare_v2(db->db, "SELECT pub_pem FROM devices WHERE device_id = ?1", -1, &st,
                            NULL);
    if (rc == SQLITE_OK) {
        sqlite3_bind_text(st, 1, b->device_id, -1, SQLITE_STATIC);
        rc = sqlite3_step(st);
    }
    if (rc == SQLITE_DONE) {
        err = hub_judge_unenrolled(b, res);
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
    rc = query_u64(db, held_max_sql, b->device_id, 0, &res->held_seq);
    if (rc != SQLITE_OK) {
        goto sqlerr;
    }
    rc = query_u64(db, "SELECT coalesce((SELECT seq FROM anchors WHERE device_id = ?1), 0)",
                   b->device_id, 0, &anchor);
    if (rc != SQLITE_OK) {
        goto sqlerr;
    }
    err = hub_judge_signed(buf_cstr(&pem), b, res);
    if (err != POSGATE_OK) {
        goto out;
    }
    f = hub_judge_chain(b, held_cb, &hc, &k, res);
    if (f < 0) {
        rc = hc.rc;
        goto sqlerr;
    }
    if (f > 0) {
        rc = record_break(db, b->device_id, &k, now_s);
        if (rc == SQLITE_OK) {
            rc = note_batch(db, b, key, 0, "chain_broken", now_s, &res->repeated_key);
        }
        if (rc != SQLITE_OK) {
            goto sqlerr;
        }
        err = POSGATE_ERR_BADHASH; /* committed by the caller: the break is recorded */
        goto out;
    }
    rc = store_events(db, b, &hc, anchor, now_s, res);
    if (rc == SQLITE_OK) {
        rc = advance_acked(db, b->device_id, &res->acked_seq);
    }
    if (rc == SQLITE_OK) {
        rc = query_u64(db, held_max_sql, b->device_id, 0, &res->held_seq);
    }
    if (rc == SQLITE_OK) {
        rc = note_batch(db, b, key, res->stored, "stored", now_s, &res->repeated_key);
    }
    if (rc == SQLITE_OK) {
        goto out;
    }
sqlerr:
    err = sql_fail(db, rc, "ingest", res->error, sizeof(res->error));
out:
    sqlite3_finalize(st);
    buf_free(&pem);
    return err;
}

/* One batch in one write transaction (BEGIN IMMEDIATE: one writer at a time). */
static enum posgate_err
sq_ingest(void *impl, const struct hub_batch *b, const char *key, int64_t now_s,
          struct hub_ingest *res)
{
    struct sq *db = impl;
    enum posgate_err err;
    int rc;

    pthread_mutex_lock(&db->mu);
    rc = sqlite3_exec(db->db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
    if (rc != SQLITE_OK) {
        err = sql_fail(db, rc, "ingest", res->error, sizeof(res->error));
        pthread_mutex_unlock(&db->mu);
        return err;
    }
    err = ingest_tx(db, b, key, now_s, res);
    if (err == POSGATE_OK || err == POSGATE_ERR_BADHASH) {
        rc = sqlite3_exec(db->db, "COMMIT", NULL, NULL, NULL);
        if (rc != SQLITE_OK) {
            err = sql_fail(db, rc, "ingest", res->error, sizeof(res->error));
        }
    }
    if (err != POSGATE_OK && err != POSGATE_ERR_BADHASH) {
        sqlite3_exec(db->db, "ROLLBACK", NULL, NULL, NULL);
    }
    pthread_mutex_unlock(&db->mu);
    return err;
}

/* ---- reading ---- */

/* The holes between held seqs; before the first held one, counted from the chain anchor prune
 * kept (pruned events are not missing ones), else from 0. */
static const char gaps_sql[] =
    "SELECT p + 1, seq - 1 FROM (SELECT seq, lag(seq, 1, coalesce((SELECT a.seq FROM anchors a "
    "WHERE a.device_id = ?1), 0)) OVER (ORDER BY seq) AS p FROM events WHERE device_id = ?1) "
    "WHERE seq > p + 1 ORDER BY seq";

/* Called with db->mu held. */
static enum posgate_err
device_state(struct sq *db, const char *device_id, struct hub_device_state *out)
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

/* Steps st and hands each row to fn; spec names the columns in order: 'i' an integer (a NULL
 * reads -1), 't' a text (NULL stays NULL), 'h' a 32-byte hash. */
static int
each(sqlite3_stmt *st, const char *spec, hub_row_fn fn, void *ctx, enum posgate_err *err)
{
    int rc;

    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        struct hub_row r;
        int ni = 0, nt = 0, nh = 0;

        memset(&r, 0, sizeof(r));
        for (int c = 0; spec[c] != 0; c++) {
            if (spec[c] == 'i') {
                r.i[ni++] =
                    sqlite3_column_type(st, c) == SQLITE_NULL ? -1 : sqlite3_column_int64(st, c);
            } else if (spec[c] == 't') {
                r.t[nt] = (const char *)sqlite3_column_text(st, c);
                r.tlen[nt++] = (size_t)sqlite3_column_bytes(st, c);
            } else if (sqlite3_column_bytes(st, c) == AUDIT_HASH_LEN) {
                r.h[nh++] = sqlite3_column_blob(st, c);
            } else {
                *err = POSGATE_ERR_CORRUPT; /* a hash that is not 32 bytes */
                return SQLITE_OK;
            }
        }
        *err = fn(ctx, &r);
        if (*err != POSGATE_OK) {
            return SQLITE_OK;
        }
    }
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

static enum posgate_err
list(struct sq *db, const char *sql, const char *dev, const char *spec, hub_row_fn fn, void *ctx)
{
    sqlite3_stmt *st = NULL;
    enum posgate_err err = POSGATE_OK;
    int rc = sqlite3_prepare_v2(db->db, sql, -1, &st, NULL);

    if (rc == SQLITE_OK && dev != NULL) {
        sqlite3_bind_text(st, 1, dev, -1, SQLITE_STATIC);
    }
    if (rc == SQLITE_OK) {
        rc = each(st, spec, fn, ctx, &err);
    }
    sqlite3_finalize(st);
    if (err == POSGATE_OK && rc != SQLITE_OK) {
        err = sql_fail(db, rc, "read", NULL, 0);
    }
    return err;
}

static enum posgate_err
sq_read_begin(void *impl)
{
    struct sq *db = impl;
    int rc;

    pthread_mutex_lock(&db->mu);
    rc = sqlite3_exec(db->db, "BEGIN", NULL, NULL, NULL);
    if (rc != SQLITE_OK) {
        pthread_mutex_unlock(&db->mu);
        return sql_fail(db, rc, "read", NULL, 0);
    }
    return POSGATE_OK;
}

static void
sq_read_end(void *impl)
{
    struct sq *db = impl;

    sqlite3_exec(db->db, "COMMIT", NULL, NULL, NULL);
    pthread_mutex_unlock(&db->mu);
}

static enum posgate_err
sq_device_state(void *impl, const char *id, struct hub_device_state *out)
{
    return device_state(impl, id, out);
}

/* The ALLOWs all summaries stand for, added in C with a check rather than by SQLite's sum(),
 * which fails the whole query on a 64-bit overflow. Ingest bounds each count
 * (HUB_SUMMARY_*), but a database written before that bound, or a device that sends maximal
 * summaries for years, could still pass 2^64: the figure then stays at UINT64_MAX and
 * folded_over says so, and every other figure is still reported. */
static enum posgate_err
fold_row(void *ctx, const struct hub_row *r)
{
    struct hub_totals *t = ctx;

    if (r->i[0] < 0) {
        return POSGATE_OK; /* never written by ingest: not an ALLOW count */
    }
    if ((uint64_t)r->i[0] > UINT64_MAX - t->folded) {
        t->folded = UINT64_MAX;
        t->folded_over = true;
    } else {
        t->folded += (uint64_t)r->i[0];
    }
    return POSGATE_OK;
}

static enum posgate_err
sq_totals(void *impl, struct hub_totals *t)
{
    enum posgate_err err;

    err = list(impl, "SELECT decision, count(*) FROM events GROUP BY decision", NULL, "ti",
               hub_row_decisions, t);
    if (err == POSGATE_OK) {
        err = list(impl, "SELECT count FROM events WHERE decision = 'summary'", NULL, "i", fold_row,
                   t);
    }
    if (err == POSGATE_OK) {
        err = list(impl, "SELECT count(*), coalesce(sum(times - 1), 0) FROM batches", NULL, "ii",
                   hub_row_batches, t);
    }
    return err;
}

static enum posgate_err
sq_devices(void *impl, hub_row_fn fn, void *ctx)
{
    return list(impl, "SELECT device_id FROM devices ORDER BY device_id", NULL, "t", fn, ctx);
}

static enum posgate_err
sq_gap_ranges(void *impl, const char *id, hub_row_fn fn, void *ctx)
{
    return list(impl, gaps_sql, id, "ii", fn, ctx);
}

static enum posgate_err
sq_gaps_detected(void *impl, const char *id, hub_row_fn fn, void *ctx)
{
    return list(impl,
                "SELECT from_seq, to_seq, detected_at, closed_at IS NOT NULL FROM gaps WHERE "
                "device_id = ?1 ORDER BY from_seq",
                id, "iiii", fn, ctx);
}

static enum posgate_err
sq_breaks(void *impl, const char *id, hub_row_fn fn, void *ctx)
{
    return list(impl,
                "SELECT seq, times, kind FROM chain_breaks WHERE device_id = ?1 ORDER BY seq, kind",
                id, "iit", fn, ctx);
}

static enum posgate_err
sq_device_pem(void *impl, const char *id, struct buf *out)
{
    enum posgate_err err;

    buf_reset(out);
    err = list(impl, "SELECT pub_pem FROM devices WHERE device_id = ?1", id, "t", hub_row_pem, out);
    if (err == POSGATE_OK && out->len == 0) {
        err = POSGATE_ERR_NOTFOUND;
    }
    return err;
}

static enum posgate_err
sq_report_put(void *impl, const char *id, int64_t reported_at_us, int64_t now_s, const char *report,
              size_t len, bool *latest)
{
    static const char *const sql[] = {
        "INSERT OR IGNORE INTO device_reports(device_id, reported_at_us, received_at, report) "
        "VALUES (?1, ?2, ?3, ?4)",
        "INSERT INTO device_status(device_id, reported_at_us, received_at, report) "
        "VALUES (?1, ?2, ?3, ?4) ON CONFLICT(device_id) DO UPDATE SET "
        "reported_at_us = excluded.reported_at_us, received_at = excluded.received_at, "
        "report = excluded.report WHERE excluded.reported_at_us > device_status.reported_at_us",
        "SELECT reported_at_us FROM device_status WHERE device_id = ?1",
    };
    struct sq *db = impl;
    sqlite3_stmt *st = NULL;
    enum posgate_err err = POSGATE_OK;
    int rc;

    *latest = false;
    pthread_mutex_lock(&db->mu);
    rc = sqlite3_exec(db->db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
    for (size_t i = 0; rc == SQLITE_OK && i < sizeof(sql) / sizeof(sql[0]); i++) {
        rc = sqlite3_prepare_v2(db->db, sql[i], -1, &st, NULL);
        if (rc != SQLITE_OK) {
            break;
        }
        sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
        if (i < 2) {
            sqlite3_bind_int64(st, 2, reported_at_us);
            sqlite3_bind_int64(st, 3, now_s);
            sqlite3_bind_text(st, 4, report, (int)len, SQLITE_STATIC);
        }
        rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) {
            *latest = sqlite3_column_int64(st, 0) == reported_at_us;
        }
        rc = rc == SQLITE_ROW || rc == SQLITE_DONE ? SQLITE_OK : rc;
        sqlite3_finalize(st);
        st = NULL;
    }
    if (rc == SQLITE_OK) {
        rc = sqlite3_exec(db->db, "COMMIT", NULL, NULL, NULL);
    }
    if (rc != SQLITE_OK) {
        err = sql_fail(db, rc, "device report", NULL, 0);
        sqlite3_exec(db->db, "ROLLBACK", NULL, NULL, NULL);
        *latest = false;
    }
    pthread_mutex_unlock(&db->mu);
    return err;
}

static enum posgate_err
sq_reports(void *impl, hub_row_fn fn, void *ctx)
{
    return list(impl,
                "SELECT device_id, report, reported_at_us, received_at FROM device_status "
                "ORDER BY device_id",
                NULL, "ttii", fn, ctx);
}

/* Each table in hub_store.h's column order. */
static const struct {
    const char *select, *spec;
} tables[HUB_T_N] = {
    {"SELECT device_id, pub_pem, enrolled_at, last_seq, chain_ok, broken_at FROM devices "
     "ORDER BY device_id",
     "ttiiii"},
    {"SELECT device_id, kind, decision, json, decision_id, hash, prev_hash, seq, count, "
     "received_at FROM events ORDER BY device_id, seq",
     "ttttthhiii"},
    {"SELECT device_id, from_seq, to_seq, detected_at, closed_at FROM gaps", "tiiii"},
    {"SELECT device_id, kind, detail, event_json, seq, first_seen, last_seen, times FROM "
     "chain_breaks",
     "ttttiiii"},
    {"SELECT device_id, idempotency_key, status, first_seq, last_seq, n_events, stored, "
     "received_at, times FROM batches",
     "tttiiiiii"},
    {"SELECT device_id, seq, hash, prev_hash, pruned_at FROM anchors", "tihhi"},
    {"SELECT device_id, report, reported_at_us, received_at FROM device_status", "ttii"},
    {"SELECT device_id, report, reported_at_us, received_at FROM device_reports", "ttii"},
    {"SELECT decision_id, service, lists, via, looked_up_at FROM lookups ORDER BY looked_up_at",
     "tttti"},
};

static enum posgate_err
sq_each_row(void *impl, enum hub_table t, hub_row_fn fn, void *ctx)
{
    return list(impl, tables[t].select, NULL, tables[t].spec, fn, ctx);
}

/* ---- queries and retention ---- */

static enum posgate_err
sq_find_events(void *impl, const struct hub_event_filter *f, hub_row_fn fn, void *ctx)
{
    struct sq *db = impl;
    sqlite3_stmt *st = NULL;
    enum posgate_err err = POSGATE_OK;
    int rc;

    /* a decision by its id through events_decision_id (a query of its own: an OR with the
     * other filters would not use the index); a listing's pattern is found in the text: a
     * stored event may hold a raw control character in a string, which SQLite's JSON functions
     * refuse */
    if (f->decision_id != NULL) {
        rc = sqlite3_prepare_v2(db->db,
                                "SELECT device_id, json, seq, received_at FROM events WHERE "
                                "decision_id = ?1 AND kind = 'decision' ORDER BY received_at, "
                                "device_id, seq",
                                -1, &st, NULL);
        if (rc == SQLITE_OK) {
            rc = sqlite3_bind_text(st, 1, f->decision_id, -1, SQLITE_STATIC);
        }
    } else {
        rc = sqlite3_prepare_v2(db->db,
                                "SELECT device_id, json, seq, received_at FROM events WHERE (kind "
                                "= 'decision' OR (?1 AND kind = 'allow_summary')) AND (?2 IS NULL "
                                "OR (decision IN ('deny', 'refer') AND instr(json, ?2) > 0)) "
                                "ORDER BY received_at, device_id, seq",
                                -1, &st, NULL);
        if (rc == SQLITE_OK) {
            sqlite3_bind_int(st, 1, f->summaries ? 1 : 0);
            rc = sqlite3_bind_text(st, 2, f->listing_pattern, -1, SQLITE_STATIC);
        }
    }
    if (rc == SQLITE_OK) {
        rc = each(st, "ttii", fn, ctx, &err);
    }
    sqlite3_finalize(st);
    if (err == POSGATE_OK && rc != SQLITE_OK) {
        err = sql_fail(db, rc, "query", NULL, 0);
    }
    return err;
}

static enum posgate_err
sq_prune(void *impl, int64_t before_s, int64_t now_s, struct hub_prune *res, char *errmsg,
         size_t errcap)
{
    static const char *const steps[] = {
        /* the anchor first: the newest event pruned per device, unless a newer one is held */
        "INSERT INTO anchors(device_id, seq, hash, prev_hash, pruned_at) SELECT e.device_id, "
        "e.seq, e.hash, e.prev_hash, ?2 FROM events e WHERE e.received_at < ?1 AND e.seq = "
        "(SELECT max(x.seq) FROM events x WHERE x.device_id = e.device_id AND x.received_at < "
        "?1) ON CONFLICT(device_id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash, "
        "prev_hash = excluded.prev_hash, pruned_at = excluded.pruned_at WHERE excluded.seq > "
        "anchors.seq",
        "DELETE FROM events WHERE received_at < ?1",
    };
    struct sq *db = impl;
    uint64_t n[2] = {0, 0};
    int rc;

    memset(res, 0, sizeof(*res));
    pthread_mutex_lock(&db->mu);
    rc = sqlite3_exec(db->db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
    for (size_t i = 0; rc == SQLITE_OK && i < 2; i++) {
        sqlite3_stmt *st = NULL;

        rc = sqlite3_prepare_v2(db->db, steps[i], -1, &st, NULL);
        if (rc == SQLITE_OK) {
            sqlite3_bind_int64(st, 1, before_s);
            if (sqlite3_bind_parameter_count(st) >= 2) {
                sqlite3_bind_int64(st, 2, now_s);
            }
            rc = sqlite3_step(st);
            rc = rc == SQLITE_DONE ? SQLITE_OK : rc;
        }
        n[i] = rc == SQLITE_OK ? (uint64_t)sqlite3_changes(db->db) : 0;
        sqlite3_finalize(st);
    }
    if (rc == SQLITE_OK) {
        rc = sqlite3_exec(db->db, "COMMIT", NULL, NULL, NULL);
    }
    if (rc != SQLITE_OK) {
        enum posgate_err err = sql_fail(db, rc, "prune", errmsg, errcap);

        sqlite3_exec(db->db, "ROLLBACK", NULL, NULL, NULL);
        pthread_mutex_unlock(&db->mu);
        return err;
    }
    pthread_mutex_unlock(&db->mu);
    res->anchors = n[0];
    res->events = n[1];
    return POSGATE_OK;
}

/* ---- the fleet dashboard (hub_fleet.c) ---- */

static enum posgate_err
sq_report_history(void *impl, const char *id, int64_t since_s, int64_t limit, hub_row_fn fn,
                  void *ctx)
{
    struct sq *db = impl;
    sqlite3_stmt *st = NULL;
    enum posgate_err err = POSGATE_OK;
    int rc;

    /* the newest LIMIT first, then handed out oldest first (LIMIT -1: all) */
    rc = sqlite3_prepare_v2(db->db,
                            "SELECT device_id, report, reported_at_us, received_at FROM (SELECT "
                            "device_id, report, reported_at_us, received_at FROM device_reports "
                            "WHERE (?1 IS NULL OR device_id = ?1) AND received_at >= ?2 ORDER BY "
                            "device_id, reported_at_us DESC LIMIT ?3) ORDER BY device_id, "
                            "reported_at_us",
                            -1, &st, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, since_s);
        sqlite3_bind_int64(st, 3, id != NULL && limit > 0 ? limit : -1);
        rc = each(st, "ttii", fn, ctx, &err);
    }
    sqlite3_finalize(st);
    if (err == POSGATE_OK && rc != SQLITE_OK) {
        err = sql_fail(db, rc, "report history", NULL, 0);
    }
    return err;
}

static enum posgate_err
sq_events_since(void *impl, int64_t since_s, hub_row_fn fn, void *ctx)
{
    struct sq *db = impl;
    sqlite3_stmt *st = NULL;
    enum posgate_err err = POSGATE_OK;
    int rc = sqlite3_prepare_v2(
        db->db, "SELECT device_id, json, seq, received_at FROM events WHERE received_at >= ?1", -1,
        &st, NULL);

    if (rc == SQLITE_OK) {
        sqlite3_bind_int64(st, 1, since_s);
        rc = each(st, "ttii", fn, ctx, &err);
    }
    sqlite3_finalize(st);
    if (err == POSGATE_OK && rc != SQLITE_OK) {
        err = sql_fail(db, rc, "events", NULL, 0);
    }
    return err;
}

/* ---- the contests looked up ---- */

static enum posgate_err
sq_lookup_put(void *impl, const char *decision_id, int64_t at_s, const char *service,
              const char *lists, const char *via, char *errmsg, size_t errcap)
{
    struct sq *db = impl;
    sqlite3_stmt *st = NULL;
    enum posgate_err err = POSGATE_OK;
    int rc;

    pthread_mutex_lock(&db->mu);
    rc = sqlite3_prepare_v2(db->db,
                            "INSERT INTO lookups(decision_id, looked_up_at, service, lists, via) "
                            "VALUES (?1, ?2, ?3, ?4, ?5)",
                            -1, &st, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_bind_text(st, 1, decision_id, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, at_s);
        sqlite3_bind_text(st, 3, service, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 4, lists, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 5, via, -1, SQLITE_STATIC);
        rc = sqlite3_step(st); /* autocommit: its own transaction */
        rc = rc == SQLITE_DONE ? SQLITE_OK : rc;
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_OK) {
        err = sql_fail(db, rc, "lookup", errmsg, errcap);
    }
    pthread_mutex_unlock(&db->mu);
    return err;
}

static const struct hub_store_ops sq_ops = {
    .name = "sqlite",
    .close = sq_close,
    .enroll = sq_enroll,
    .ingest = sq_ingest,
    .read_begin = sq_read_begin,
    .read_end = sq_read_end,
    .totals = sq_totals,
    .devices = sq_devices,
    .device_state = sq_device_state,
    .gap_ranges = sq_gap_ranges,
    .gaps_detected = sq_gaps_detected,
    .breaks = sq_breaks,
    .each_row = sq_each_row,
    .copy_begin = NULL, /* a SQLite file is a source of migrate-db, not a destination */
    .put_row = NULL,
    .copy_end = NULL,
    .find_events = sq_find_events,
    .prune = sq_prune,
    .device_pem = sq_device_pem,
    .report_put = sq_report_put,
    .reports = sq_reports,
    .report_history = sq_report_history,
    .events_since = sq_events_since,
    .lookup_put = sq_lookup_put,
};

enum posgate_err
hub_sqlite_open(const char *path, void **impl, const struct hub_store_ops **ops, char *errmsg,
                size_t errcap)
{
    struct sq *db = NULL;
    enum posgate_err err = sq_open(path, &db, errmsg, errcap);

    if (err == POSGATE_OK) {
        *impl = db;
        *ops = &sq_ops;
    }
    return err;
}
