/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The collector's PostgreSQL store (hub_store.h), through libpq, for several posgate-hub
 * processes on one database. The schema is versioned: schema_version holds each migration
 * applied, and hub_pg_open applies the missing ones in one transaction under an advisory lock,
 * so hubs starting together migrate once. events is partitioned by month of received_at (the
 * collector's clock, never the kiosk's); a month's partition is created when the first batch
 * of that month arrives (and the next month's with it), under another advisory lock.
 *
 * Ordering under concurrency: a batch is judged and written in one READ COMMITTED transaction
 * that starts by locking its device's row (SELECT ... FOR UPDATE). Another hub ingesting for
 * the same device waits at that statement until the first commits; every later statement of
 * its transaction takes a new snapshot, so it sees the events the first one stored. Hence the
 * reads that judge a batch (held events, gaps, acked_seq) and the writes that follow are never
 * interleaved with another ingest of the device: no event is stored twice (the check before
 * each insert sees every committed event of the device), none lost (a failed transaction
 * stores nothing and is not acknowledged), and gaps and breaks are judged against exactly what
 * is held. Batches of different devices lock different rows and proceed at once.
 *
 * Schema version 1 (the same tables and columns as hub_db.h's SQLite schema; bytea hashes,
 * boolean chain_ok):
 *   +-------------------------------------------------------------------------------------+
 *   | schema_version(version INT PK, applied_at BIGINT)                                   |
 *   | devices(device_id PK, pub_pem, enrolled_at, last_seq, chain_ok BOOL, broken_at)     |
 *   | events(device_id, seq, hash, prev_hash, kind, decision, count, json, received_at,   |
 *   |        PK(device_id, seq, received_at)) PARTITION BY RANGE (received_at)           |
 *   |   events_YYYY_MM PARTITION OF events FOR VALUES FROM (month start) TO (next month)  |
 *   | gaps, chain_breaks, batches: as in hub_db.h                                         |
 *   +-------------------------------------------------------------------------------------+
 * Schema version 2: anchors (hub_store.h):
 *   +-------------------------------------------------------------------------------------+
 *   | anchors(device_id PK, seq, hash bytea, prev_hash bytea, pruned_at)                  |
 * Schema version 3 adds the status reports, as in hub_db.h:
 *   +-------------------------------------------------------------------------------------+
 *   | device_status(device_id PK, reported_at_us, received_at, report)  the latest        |
 *   | device_reports(device_id, reported_at_us, received_at, report, PK(device_id,        |
 *   |        reported_at_us))                                           the history       |
 *   +-------------------------------------------------------------------------------------+
 * Schema version 4: contests by index, and the contests looked up, as in hub_db.h:
 *   +-------------------------------------------------------------------------------------+
 *   | events.decision_id text|NULL, backfilled from the text; INDEX events_decision_id     |
 *   |        ON events(decision_id) WHERE NOT NULL (on the parent: every partition has it)|
 *   | lookups(decision_id, looked_up_at, service, lists, via); INDEX lookups_at           |
 *   +-------------------------------------------------------------------------------------+
 * The primary key of a partitioned table must hold the partition key, so (device_id, seq) is
 * unique by the device lock above, not by an index.
 */
#include "hub_db_pg_internal.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libpq-fe.h>

#include "crypto.h"
#include "plat_mem.h"

#define LOCK_MIGRATE   7461001 /* pg_advisory_xact_lock keys */
#define LOCK_PARTITION 7461002

/* RETRY for what another attempt may pass (serialization failure, deadlock, a connection
 * lost or refused, too many connections), else IO; the server's message into errmsg. */
enum posgate_err
hpg_fail(struct pg *db, PGresult *r, const char *what, char *errmsg, size_t errcap)
{
    const char *state = r != NULL ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
    const char *msg = r != NULL ? PQresultErrorMessage(r) : PQerrorMessage(db->c);
    bool retry = PQstatus(db->c) != CONNECTION_OK ||
                 (state != NULL && (strncmp(state, "40", 2) == 0 || strncmp(state, "08", 2) == 0 ||
                                    strcmp(state, "53300") == 0 || strcmp(state, "57P01") == 0));

    if (errmsg != NULL && errcap > 0) {
        snprintf(errmsg, errcap, "collector database (PostgreSQL): %.48s...: %s", what,
                 msg != NULL && msg[0] != 0 ? msg : "no answer from the server");
    }
    return retry ? POSGATE_ERR_RETRY : POSGATE_ERR_IO;
}

/* Runs sql; *out gets the result when it has the status wanted (the caller clears it). */
enum posgate_err
hpg_run(struct pg *db, const char *sql, const struct params *p, ExecStatusType want, PGresult **out,
    char *errmsg, size_t errcap)
{
    /* without parameters, the simple protocol: a migration is several statements */
    PGresult *r = p == NULL ? PQexec(db->c, sql)
                            : PQexecParams(db->c, sql, p->n, NULL, p->v, p->len, p->fmt, 0);
    enum posgate_err err = POSGATE_OK;

    if (PQresultStatus(r) != want) {
        err = hpg_fail(db, r, sql, errmsg, errcap);
        PQclear(r);
        r = NULL;
    }
    if (out != NULL) {
        *out = r;
    } else {
        PQclear(r);
    }
    return err;
}

enum posgate_err
hpg_cmd(struct pg *db, const char *sql, const struct params *p, char *errmsg, size_t errcap)
{
    return hpg_run(db, sql, p, PGRES_COMMAND_OK, NULL, errmsg, errcap);
}

int64_t
hpg_col_i(const PGresult *r, int row, int c)
{
    if (PQgetisnull(r, row, c)) {
        return -1;
    }
    return strtoll(PQgetvalue(r, row, c), NULL, 10);
}

/* A bytea column read as text ("\x" and 64 hex digits): 1 when it is 32 bytes. */
int
hpg_col_hash(const PGresult *r, int row, int c, uint8_t out[AUDIT_HASH_LEN])
{
    const char *v = PQgetvalue(r, row, c);

    memset(out, 0, AUDIT_HASH_LEN);
    if (PQgetlength(r, row, c) != 2 + 2 * AUDIT_HASH_LEN || v[0] != '\\' || v[1] != 'x') {
        return 0;
    }
    for (int i = 0; i < AUDIT_HASH_LEN; i++) {
        unsigned x;

        if (sscanf(v + 2 + 2 * i, "%2x", &x) != 1) {
            return 0;
        }
        out[i] = (uint8_t)x;
    }
    return 1;
}

/* ---- schema ---- */

static const char *const migrations[] = {
    /* 1: the tables of hub_db.h, events partitioned by month */
    "CREATE TABLE devices(device_id text PRIMARY KEY, pub_pem text NOT NULL,"
    " enrolled_at bigint NOT NULL, last_seq bigint NOT NULL DEFAULT 0,"
    " chain_ok boolean NOT NULL DEFAULT true, broken_at bigint);"
    "CREATE TABLE events(device_id text NOT NULL, seq bigint NOT NULL, hash bytea NOT NULL,"
    " prev_hash bytea NOT NULL, kind text NOT NULL, decision text NOT NULL, count bigint NOT NULL,"
    " json text NOT NULL, received_at bigint NOT NULL, PRIMARY KEY(device_id, seq, received_at))"
    " PARTITION BY RANGE (received_at);"
    "CREATE INDEX events_decision ON events(decision);"
    "CREATE TABLE gaps(device_id text NOT NULL, from_seq bigint NOT NULL, to_seq bigint NOT NULL,"
    " detected_at bigint NOT NULL, closed_at bigint, PRIMARY KEY(device_id, from_seq, to_seq));"
    "CREATE TABLE chain_breaks(device_id text NOT NULL, seq bigint NOT NULL, kind text NOT NULL,"
    " detail text NOT NULL, event_json text, first_seen bigint NOT NULL,"
    " last_seen bigint NOT NULL, times bigint NOT NULL, PRIMARY KEY(device_id, seq, kind));"
    "CREATE TABLE batches(device_id text NOT NULL, idempotency_key text NOT NULL,"
    " first_seq bigint NOT NULL, last_seq bigint NOT NULL, n_events bigint NOT NULL,"
    " stored bigint NOT NULL, status text NOT NULL, received_at bigint NOT NULL,"
    " times bigint NOT NULL, PRIMARY KEY(device_id, idempotency_key));",
    /* 2: chain anchors kept by prune */
    "CREATE TABLE anchors(device_id text PRIMARY KEY, seq bigint NOT NULL, hash bytea NOT NULL,"
    " prev_hash bytea NOT NULL, pruned_at bigint NOT NULL);",
    /* 3: device status reports, the latest per device and every one received */
    "CREATE TABLE device_status(device_id text PRIMARY KEY, reported_at_us bigint NOT NULL,"
    " received_at bigint NOT NULL, report text NOT NULL);"
    "CREATE TABLE device_reports(device_id text NOT NULL, reported_at_us bigint NOT NULL,"
    " received_at bigint NOT NULL, report text NOT NULL,"
    " PRIMARY KEY(device_id, reported_at_us));",
    /* 4: a decision found by its id through an index (the id backfilled from the stored text
     * by the expression hub_db_sqlite.c's schema_v3 explains), and the contests looked up */
    "ALTER TABLE events ADD COLUMN decision_id text;"
    "UPDATE events SET decision_id = substr(json, strpos(json, ',\"id\":\"') + 7, 32)"
    " WHERE kind = 'decision' AND strpos(json, ',\"id\":\"') > 0"
    " AND substr(json, strpos(json, ',\"id\":\"') + 39, 1) = '\"'"
    " AND substr(json, strpos(json, ',\"id\":\"') + 7, 32) ~ '^[0-9a-f]{32}$';"
    "CREATE INDEX events_decision_id ON events(decision_id) WHERE decision_id IS NOT NULL;"
    "CREATE TABLE lookups(decision_id text NOT NULL, looked_up_at bigint NOT NULL,"
    " service text NOT NULL, lists text NOT NULL, via text NOT NULL);"
    "CREATE INDEX lookups_at ON lookups(looked_up_at);",
    /* 5: each device's head, so that a batch following it is judged from the device's row
     * (hub_db_pg_ingest.c), filled from what is held; and events.writer, the schema version of
     * the hub that stored the event, without a default: a hub of an earlier version still
     * running during an upgrade would store events without moving the head (and a batch then
     * judged from a stale head would be stored twice), so its inserts are refused instead */
    "ALTER TABLE devices ADD COLUMN head_seq bigint NOT NULL DEFAULT 0,"
    " ADD COLUMN head_hash bytea, ADD COLUMN head_prev bytea;"
    "ALTER TABLE events ADD COLUMN writer smallint NOT NULL DEFAULT 4;"
    "ALTER TABLE events ALTER COLUMN writer DROP DEFAULT;",
};
#define SCHEMA_VERSION ((int64_t)(sizeof(migrations) / sizeof(migrations[0])))

/* Each device's head from the events and anchors held (migration 5, migrate-db). */
static const char heads_sql[] =
    "UPDATE devices d SET head_seq = h.seq, head_hash = h.hash, head_prev = h.prev_hash FROM "
    "(SELECT DISTINCT ON (device_id) device_id, seq, hash, prev_hash FROM (SELECT device_id, "
    "seq, hash, prev_hash FROM events UNION ALL SELECT device_id, seq, hash, prev_hash FROM "
    "anchors) x ORDER BY device_id, seq DESC) h WHERE h.device_id = d.device_id";

static enum posgate_err
migrate(struct pg *db, char *errmsg, size_t errcap)
{
    PGresult *r = NULL;
    struct params p = {0};
    enum posgate_err err;
    int64_t have;

    err = hpg_cmd(db, "BEGIN", NULL, errmsg, errcap);
    if (err != POSGATE_OK) {
        return err;
    }
    p_int(&p, LOCK_MIGRATE);
    err = hpg_run(db, "SELECT pg_advisory_xact_lock($1)", &p, PGRES_TUPLES_OK, NULL, errmsg, errcap);
    if (err == POSGATE_OK) {
        err = hpg_cmd(db,
                  "CREATE TABLE IF NOT EXISTS schema_version(version integer PRIMARY KEY,"
                  " applied_at bigint NOT NULL)",
                  NULL, errmsg, errcap);
    }
    if (err == POSGATE_OK) {
        err = hpg_run(db, "SELECT coalesce(max(version), 0) FROM schema_version", NULL, PGRES_TUPLES_OK,
                  &r, errmsg, errcap);
    }
    if (err != POSGATE_OK) {
        goto out;
    }
    have = hpg_col_i(r, 0, 0);
    if (have > SCHEMA_VERSION) {
        snprintf(errmsg, errcap,
                 "the database's schema is version %" PRId64 ", newer than this posgate-hub "
                 "knows (%" PRId64 "): upgrade posgate-hub",
                 have, SCHEMA_VERSION);
        err = POSGATE_ERR_STATE;
        goto out;
    }
    for (int64_t v = have + 1; err == POSGATE_OK && v <= SCHEMA_VERSION; v++) {
        memset(&p, 0, sizeof(p));
        p_int(&p, v);
        p_int(&p, (int64_t)time(NULL));
        err = hpg_cmd(db, migrations[v - 1], NULL, errmsg, errcap);
        if (err == POSGATE_OK && v == 5) {
            err = hpg_cmd(db, heads_sql, NULL, errmsg, errcap);
        }
        if (err == POSGATE_OK) {
            err = hpg_cmd(db, "INSERT INTO schema_version(version, applied_at) VALUES ($1, $2)", &p,
                      errmsg, errcap);
        }
    }
out:
    PQclear(r);
    if (err == POSGATE_OK) {
        err = hpg_cmd(db, "COMMIT", NULL, errmsg, errcap);
    } else {
        PQclear(PQexec(db->c, "ROLLBACK"));
    }
    return err;
}

/* Months since January 1970 of a UTC time, and the time a month starts: the proleptic
 * Gregorian calendar in integers (H. Hinnant's days_from_civil), no time zone involved. */
static int64_t
days_from_civil(int64_t y, int64_t m)
{
    int64_t era, yoe, doy;

    y -= m <= 2;
    era = (y >= 0 ? y : y - 399) / 400;
    yoe = y - era * 400;
    doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5; /* day 1 of the month */
    return era * 146097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719468;
}

static int64_t
month_start(int64_t months)
{
    return days_from_civil(1970 + months / 12, months % 12 + 1) * 86400;
}

static int64_t
month_of(int64_t t)
{
    int64_t m = (t / 86400 / 365) * 12; /* below the answer; never more than a year off */

    while (month_start(m + 1) <= t) {
        m++;
    }
    while (m > 0 && month_start(m) > t) {
        m--;
    }
    return m;
}

/* The partitions of events for the month of now_s and the next, outside any batch's
 * transaction (creating one locks the parent table briefly). */
enum posgate_err
hpg_ensure_partition(struct pg *db, int64_t now_s, char *errmsg, size_t errcap)
{
    int64_t m = month_of(now_s);
    struct params p = {0};
    enum posgate_err err = POSGATE_OK;
    bool locked = false;

    if (m == db->month_ready) {
        return POSGATE_OK;
    }
    /* Each month is looked up first, then again under the lock: one made already (by another
     * hub, or another connection of this one) takes no lock and no DDL, which would wait for
     * and then hold up every batch being written. */
    for (int64_t k = m; err == POSGATE_OK && k <= m + 1; k++) {
        char name[32], sql[256];
        uint64_t have = 0;

        snprintf(name, sizeof(name), "events_%04d_%02d", (int)(k / 12) + 1970, (int)(k % 12) + 1);
        snprintf(sql, sizeof(sql), "SELECT (to_regclass('%s') IS NOT NULL)::int", name);
        err = hpg_query_u64(db, sql, NULL, &have, errmsg, errcap);
        if (err == POSGATE_OK && have == 0 && !locked) {
            err = hpg_cmd(db, "BEGIN", NULL, errmsg, errcap);
            p_int(&p, LOCK_PARTITION);
            err = err != POSGATE_OK ? err
                                    : hpg_run(db, "SELECT pg_advisory_xact_lock($1)", &p,
                                              PGRES_TUPLES_OK, NULL, errmsg, errcap);
            locked = err == POSGATE_OK;
            err = err != POSGATE_OK ? err : hpg_query_u64(db, sql, NULL, &have, errmsg, errcap);
        }
        if (err == POSGATE_OK && have == 0) {
            snprintf(sql, sizeof(sql),
                     "CREATE TABLE IF NOT EXISTS %s PARTITION OF events FOR VALUES FROM (%" PRId64
                     ") TO (%" PRId64 ")",
                     name, month_start(k), month_start(k + 1));
            err = hpg_cmd(db, sql, NULL, errmsg, errcap);
        }
    }
    if (locked && err == POSGATE_OK) {
        err = hpg_cmd(db, "COMMIT", NULL, errmsg, errcap);
    } else if (PQtransactionStatus(db->c) != PQTRANS_IDLE) {
        PQclear(PQexec(db->c, "ROLLBACK"));
    }
    if (err == POSGATE_OK) {
        db->month_ready = m;
    }
    return err;
}

static void pg_close(void *impl);

/* A connection that broke (a server restart) is reset before the next transaction. */
void
hpg_reconnect(struct pg *db)
{
    if (PQstatus(db->c) != CONNECTION_OK) {
        PQreset(db->c);
        db->month_ready = 0;
        db->prepared = 0; /* a new session has no prepared statements */
    }
}

enum posgate_err
hpg_query_u64(struct pg *db, const char *sql, const struct params *p, uint64_t *out, char *errmsg,
          size_t errcap)
{
    PGresult *r = NULL;
    enum posgate_err err = hpg_run(db, sql, p, PGRES_TUPLES_OK, &r, errmsg, errcap);

    *out = 0;
    if (err == POSGATE_OK && PQntuples(r) > 0) {
        *out = (uint64_t)hpg_col_i(r, 0, 0);
    }
    PQclear(r);
    return err;
}

/* ---- enrolment ---- */

static enum posgate_err
pg_enroll(void *impl, const char *id, const char *pem, size_t len, int64_t now_s, bool *added,
          char *errmsg, size_t errcap)
{
    struct pg *db = impl;
    struct params p = {0};
    PGresult *r = NULL;
    enum posgate_err err;

    *added = false;
    p_str(&p, id);
    p_text(&p, pem, len);
    p_int(&p, now_s);
    pthread_mutex_lock(&db->mu);
    hpg_reconnect(db);
    err = hpg_run(db,
              "INSERT INTO devices(device_id, pub_pem, enrolled_at) VALUES ($1, $2, $3) "
              "ON CONFLICT (device_id) DO NOTHING",
              &p, PGRES_COMMAND_OK, &r, errmsg, errcap);
    if (err == POSGATE_OK && strcmp(PQcmdTuples(r), "1") == 0) {
        *added = true;
        goto out;
    }
    PQclear(r);
    r = NULL;
    if (err == POSGATE_OK) {
        p.n = 1;
        err = hpg_run(db, "SELECT pub_pem FROM devices WHERE device_id = $1", &p, PGRES_TUPLES_OK, &r,
                  errmsg, errcap);
    }
    if (err == POSGATE_OK && (PQntuples(r) != 1 || (size_t)PQgetlength(r, 0, 0) != len ||
                              memcmp(PQgetvalue(r, 0, 0), pem, len) != 0)) {
        snprintf(errmsg, errcap, "device %s is enrolled with a different public key", id);
        err = POSGATE_ERR_STATE;
    }
out:
    PQclear(r);
    pthread_mutex_unlock(&db->mu);
    return err;
}

/* ---- reading ---- */

/* Runs sql with dev as $1 (when not NULL) and hands each row to fn; spec as in
 * hub_db_sqlite.c: 'i' integer (NULL: -1), 't' text (NULL stays NULL), 'h' a 32-byte hash. */
static enum posgate_err
list(struct pg *db, const char *sql, const char *dev, const char *spec, hub_row_fn fn, void *ctx)
{
    struct params p = {0};
    PGresult *r = NULL;
    enum posgate_err err;
    uint8_t hs[2][AUDIT_HASH_LEN];

    if (dev != NULL) {
        p_str(&p, dev);
    }
    err = hpg_run(db, sql, &p, PGRES_TUPLES_OK, &r, NULL, 0);
    for (int row = 0; err == POSGATE_OK && row < PQntuples(r); row++) {
        struct hub_row x;
        int ni = 0, nt = 0, nh = 0;

        memset(&x, 0, sizeof(x));
        for (int c = 0; err == POSGATE_OK && spec[c] != 0; c++) {
            if (spec[c] == 'i') {
                x.i[ni++] = hpg_col_i(r, row, c);
            } else if (spec[c] == 't') {
                x.t[nt] = PQgetisnull(r, row, c) ? NULL : PQgetvalue(r, row, c);
                x.tlen[nt++] = (size_t)PQgetlength(r, row, c);
            } else if (hpg_col_hash(r, row, c, hs[nh])) {
                x.h[nh] = hs[nh];
                nh++;
            } else {
                err = POSGATE_ERR_CORRUPT; /* a hash that is not 32 bytes */
            }
        }
        if (err == POSGATE_OK) {
            err = fn(ctx, &x);
        }
    }
    PQclear(r);
    return err;
}

static enum posgate_err
pg_read_begin(void *impl)
{
    struct pg *db = impl;
    enum posgate_err err;

    pthread_mutex_lock(&db->mu);
    hpg_reconnect(db);
    err = hpg_cmd(db, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", NULL, NULL, 0);
    if (err != POSGATE_OK) {
        pthread_mutex_unlock(&db->mu);
    }
    return err;
}

static void
pg_read_end(void *impl)
{
    struct pg *db = impl;

    PQclear(PQexec(db->c, "COMMIT"));
    pthread_mutex_unlock(&db->mu);
}

static enum posgate_err
state_row(void *ctx, const struct hub_row *r)
{
    struct hub_device_state *s = ctx;

    s->enrolled_at = r->i[0];
    s->last_seq = (uint64_t)r->i[1];
    s->chain_ok = r->i[2] != 0;
    s->broken_at = r->i[3] > 0 ? (uint64_t)r->i[3] : 0;
    s->events = (uint64_t)r->i[4];
    s->held_seq = (uint64_t)r->i[5];
    snprintf(s->device_id, sizeof(s->device_id), "%s", r->t[0]);
    return POSGATE_OK;
}

static enum posgate_err
count_row(void *ctx, const struct hub_row *r)
{
    uint64_t *n = ctx;

    *n += r->i[0] >= 0 ? (uint64_t)r->i[0] : 0;
    return POSGATE_OK;
}

/* The holes between held seqs; before the first held one, counted from the chain anchor prune
 * kept (pruned events are not missing ones), else from 0. */
static const char gaps_sql[] =
    "SELECT p + 1, seq - 1 FROM (SELECT seq, lag(seq, 1, coalesce((SELECT a.seq FROM anchors a "
    "WHERE a.device_id = $1), 0::bigint)) OVER (ORDER BY seq) AS p FROM events WHERE device_id = "
    "$1) s WHERE seq > p + 1 ORDER BY seq";

static enum posgate_err
pg_device_state(void *impl, const char *id, struct hub_device_state *out)
{
    struct pg *db = impl;
    enum posgate_err err;

    memset(out, 0, sizeof(*out));
    err = list(db,
               "SELECT device_id, enrolled_at, last_seq, chain_ok::int, coalesce(broken_at, 0), "
               "(SELECT count(*) FROM events e WHERE e.device_id = d.device_id), "
               "(SELECT coalesce(max(seq), 0) FROM events e WHERE e.device_id = d.device_id) "
               "FROM devices d WHERE device_id = $1",
               id, "tiiiiii", state_row, out);
    if (err == POSGATE_OK && out->device_id[0] == 0) {
        err = POSGATE_ERR_NOTFOUND;
    }
    if (err == POSGATE_OK) {
        err = list(db, "SELECT count(*) FROM chain_breaks WHERE device_id = $1", id, "i", count_row,
                   &out->breaks);
    }
    if (err == POSGATE_OK) {
        char sql[512];

        snprintf(sql, sizeof(sql), "SELECT count(*) FROM (%s) g", gaps_sql);
        err = list(db, sql, id, "i", count_row, &out->gaps);
    }
    return err;
}

/* numeric sums cannot overflow in PostgreSQL; the figure saturates at 2^64 - 1 as in SQLite */
static enum posgate_err
fold_row(void *ctx, const struct hub_row *r)
{
    struct hub_totals *t = ctx;

    t->folded_over = r->i[1] != 0;
    t->folded = t->folded_over ? UINT64_MAX : strtoull(r->t[0], NULL, 10);
    return POSGATE_OK;
}

static enum posgate_err
pg_totals(void *impl, struct hub_totals *t)
{
    enum posgate_err err;

    err = list(impl, "SELECT decision, count(*) FROM events GROUP BY decision", NULL, "ti",
               hub_row_decisions, t);
    if (err == POSGATE_OK) {
        err = list(impl,
                   "SELECT least(s, 18446744073709551615)::text, (s > 18446744073709551615)::int "
                   "FROM (SELECT coalesce(sum(count) FILTER (WHERE count >= 0), 0)::numeric AS s "
                   "FROM events WHERE decision = 'summary') x",
                   NULL, "ti", fold_row, t);
    }
    if (err == POSGATE_OK) {
        err = list(impl, "SELECT count(*), coalesce(sum(times - 1), 0) FROM batches", NULL, "ii",
                   hub_row_batches, t);
    }
    return err;
}

static enum posgate_err
pg_devices(void *impl, hub_row_fn fn, void *ctx)
{
    return list(impl, "SELECT device_id FROM devices ORDER BY device_id", NULL, "t", fn, ctx);
}

static enum posgate_err
pg_device_pem(void *impl, const char *id, struct buf *out)
{
    enum posgate_err err;

    buf_reset(out);
    err = list(impl, "SELECT pub_pem FROM devices WHERE device_id = $1", id, "t", hub_row_pem, out);
    if (err == POSGATE_OK && out->len == 0) {
        err = POSGATE_ERR_NOTFOUND;
    }
    return err;
}

/* The upsert's WHERE is evaluated on the row as locked, so two hubs taking reports of one
 * device at once keep the newer one whatever the order. */
static enum posgate_err
pg_report_put(void *impl, const char *id, int64_t reported_at_us, int64_t now_s, const char *report,
              size_t len, bool *latest)
{
    struct pg *db = impl;
    struct params p = {0};
    PGresult *r = NULL;
    enum posgate_err err;

    *latest = false;
    p_str(&p, id);
    p_int(&p, reported_at_us);
    p_int(&p, now_s);
    p_text(&p, report, len);
    pthread_mutex_lock(&db->mu);
    hpg_reconnect(db);
    err = hpg_cmd(db, "BEGIN", NULL, NULL, 0);
    if (err == POSGATE_OK) {
        err = hpg_cmd(db,
                  "INSERT INTO device_reports(device_id, reported_at_us, received_at, report) "
                  "VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
                  &p, NULL, 0);
    }
    if (err == POSGATE_OK) {
        err = hpg_cmd(db,
                  "INSERT INTO device_status(device_id, reported_at_us, received_at, report) "
                  "VALUES ($1, $2, $3, $4) ON CONFLICT (device_id) DO UPDATE SET "
                  "reported_at_us = excluded.reported_at_us, received_at = excluded.received_at,"
                  " report = excluded.report "
                  "WHERE excluded.reported_at_us > device_status.reported_at_us",
                  &p, NULL, 0);
    }
    if (err == POSGATE_OK) {
        p.n = 1;
        err = hpg_run(db, "SELECT reported_at_us FROM device_status WHERE device_id = $1", &p,
                  PGRES_TUPLES_OK, &r, NULL, 0);
    }
    if (err == POSGATE_OK) {
        *latest = PQntuples(r) == 1 && hpg_col_i(r, 0, 0) == reported_at_us;
        err = hpg_cmd(db, "COMMIT", NULL, NULL, 0);
    }
    if (err != POSGATE_OK) {
        PQclear(PQexec(db->c, "ROLLBACK"));
        *latest = false;
    }
    PQclear(r);
    pthread_mutex_unlock(&db->mu);
    return err;
}

static enum posgate_err
pg_reports(void *impl, hub_row_fn fn, void *ctx)
{
    return list(impl,
                "SELECT device_id, report, reported_at_us, received_at FROM device_status "
                "ORDER BY device_id",
                NULL, "ttii", fn, ctx);
}

static enum posgate_err
pg_gap_ranges(void *impl, const char *id, hub_row_fn fn, void *ctx)
{
    return list(impl, gaps_sql, id, "ii", fn, ctx);
}

static enum posgate_err
pg_gaps_detected(void *impl, const char *id, hub_row_fn fn, void *ctx)
{
    return list(impl,
                "SELECT from_seq, to_seq, detected_at, (closed_at IS NOT NULL)::int FROM gaps "
                "WHERE device_id = $1 ORDER BY from_seq",
                id, "iiii", fn, ctx);
}

static enum posgate_err
pg_breaks(void *impl, const char *id, hub_row_fn fn, void *ctx)
{
    return list(impl,
                "SELECT seq, times, kind FROM chain_breaks WHERE device_id = $1 ORDER BY seq, "
                "kind COLLATE \"C\"",
                id, "iit", fn, ctx);
}

/* ---- migrate-db ---- */

static const struct {
    const char *select, *spec, *insert;
} tables[HUB_T_N] = {
    {"SELECT device_id, pub_pem, enrolled_at, last_seq, chain_ok::int, broken_at FROM devices "
     "ORDER BY device_id",
     "ttiiii",
     "INSERT INTO devices(device_id, pub_pem, enrolled_at, last_seq, chain_ok, broken_at) "
     "VALUES ($1, $2, $3, $4, $5::int::boolean, $6)"},
    {"SELECT device_id, kind, decision, json, decision_id, hash, prev_hash, seq, count, "
     "received_at FROM events ORDER BY device_id, seq",
     "ttttthhiii",
     "INSERT INTO events(device_id, kind, decision, json, decision_id, hash, prev_hash, seq, "
     "count, received_at, writer) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 5)"},
    {"SELECT device_id, from_seq, to_seq, detected_at, closed_at FROM gaps", "tiiii",
     "INSERT INTO gaps(device_id, from_seq, to_seq, detected_at, closed_at) VALUES ($1, $2, $3, "
     "$4, $5)"},
    {"SELECT device_id, kind, detail, event_json, seq, first_seen, last_seen, times FROM "
     "chain_breaks",
     "ttttiiii",
     "INSERT INTO chain_breaks(device_id, kind, detail, event_json, seq, first_seen, last_seen, "
     "times) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"},
    {"SELECT device_id, idempotency_key, status, first_seq, last_seq, n_events, stored, "
     "received_at, times FROM batches",
     "tttiiiiii",
     "INSERT INTO batches(device_id, idempotency_key, status, first_seq, last_seq, n_events, "
     "stored, received_at, times) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"},
    {"SELECT device_id, seq, hash, prev_hash, pruned_at FROM anchors", "tihhi",
     "INSERT INTO anchors(device_id, seq, hash, prev_hash, pruned_at) VALUES ($1, $2, $3, $4, "
     "$5)"},
    {"SELECT device_id, report, reported_at_us, received_at FROM device_status", "ttii",
     "INSERT INTO device_status(device_id, report, reported_at_us, received_at) VALUES ($1, $2, "
     "$3, $4)"},
    {"SELECT device_id, report, reported_at_us, received_at FROM device_reports", "ttii",
     "INSERT INTO device_reports(device_id, report, reported_at_us, received_at) VALUES ($1, $2, "
     "$3, $4)"},
    {"SELECT decision_id, service, lists, via, looked_up_at FROM lookups ORDER BY looked_up_at",
     "tttti",
     "INSERT INTO lookups(decision_id, service, lists, via, looked_up_at) VALUES ($1, $2, $3, $4, "
     "$5)"},
};

static enum posgate_err
pg_each_row(void *impl, enum hub_table t, hub_row_fn fn, void *ctx)
{
    return list(impl, tables[t].select, NULL, tables[t].spec, fn, ctx);
}

static enum posgate_err
pg_copy_begin(void *impl, char *errmsg, size_t errcap)
{
    struct pg *db = impl;
    uint64_t n = 0;
    enum posgate_err err;

    pthread_mutex_lock(&db->mu);
    hpg_reconnect(db);
    err = hpg_cmd(db, "BEGIN", NULL, errmsg, errcap);
    if (err == POSGATE_OK) {
        err = hpg_cmd(db, "LOCK TABLE devices IN EXCLUSIVE MODE", NULL, errmsg, errcap);
    }
    if (err == POSGATE_OK) {
        err = hpg_query_u64(db, "SELECT count(*) FROM devices", NULL, &n, errmsg, errcap);
    }
    if (err == POSGATE_OK && n > 0) {
        snprintf(errmsg, errcap,
                 "expected a collector database without devices, found %llu enrolled",
                 (unsigned long long)n);
        err = POSGATE_ERR_STATE;
    }
    if (err != POSGATE_OK) {
        PQclear(PQexec(db->c, "ROLLBACK"));
        pthread_mutex_unlock(&db->mu);
    }
    return err;
}

static enum posgate_err
pg_put_row(void *impl, enum hub_table t, const struct hub_row *row, char *errmsg, size_t errcap)
{
    struct pg *db = impl;
    struct params p = {0};
    int ni = 0, nt = 0, nh = 0;
    enum posgate_err err = POSGATE_OK;

    if (t == HUB_T_EVENTS) {
        /* the partitions of the months the rows were received in */
        int64_t m = month_of(row->i[2]);
        char sql[256];

        snprintf(sql, sizeof(sql),
                 "CREATE TABLE IF NOT EXISTS events_%04d_%02d PARTITION OF events FOR VALUES "
                 "FROM (%" PRId64 ") TO (%" PRId64 ")",
                 (int)(m / 12) + 1970, (int)(m % 12) + 1, month_start(m), month_start(m + 1));
        if (m != db->month_ready) {
            err = hpg_cmd(db, sql, NULL, errmsg, errcap);
            db->month_ready = m;
        }
    }
    for (int c = 0; err == POSGATE_OK && tables[t].spec[c] != 0; c++) {
        char k = tables[t].spec[c];

        if (k == 't' && row->t[nt] == NULL) {
            p_null(&p);
            nt++;
        } else if (k == 't') {
            p_text(&p, row->t[nt], row->tlen[nt]);
            nt++;
        } else if (k == 'h') {
            p_hash(&p, row->h[nh++]);
        } else if (row->i[ni] < 0 &&
                   ((t == HUB_T_DEVICES && ni == 3) || (t == HUB_T_GAPS && ni == 3))) {
            p_null(&p); /* broken_at, closed_at */
            ni++;
        } else {
            p_int(&p, row->i[ni++]);
        }
    }
    if (err == POSGATE_OK) {
        err = hpg_cmd(db, tables[t].insert, &p, errmsg, errcap);
    }
    return err;
}

static enum posgate_err
pg_copy_end(void *impl, bool commit, char *errmsg, size_t errcap)
{
    struct pg *db = impl;
    enum posgate_err err = POSGATE_OK;

    if (commit) {
        err = hpg_cmd(db, heads_sql, NULL, errmsg, errcap);
    }
    if (commit && err == POSGATE_OK) {
        err = hpg_cmd(db, "COMMIT", NULL, errmsg, errcap);
    } else {
        PQclear(PQexec(db->c, "ROLLBACK"));
    }
    db->month_ready = 0;
    pthread_mutex_unlock(&db->mu);
    return err;
}

/* ---- queries and retention ---- */

static enum posgate_err
pg_find_events(void *impl, const struct hub_event_filter *f, hub_row_fn fn, void *ctx)
{
    struct pg *db = impl;
    struct params p = {0};
    PGresult *r = NULL;
    enum posgate_err err;

    /* a decision by its id through events_decision_id (each partition's index); a listing's
     * pattern is found in the text, as in the SQLite store: a stored event may hold a raw
     * control character in a string, which jsonb refuses */
    if (f->decision_id != NULL) {
        p_str(&p, f->decision_id);
        err = hpg_run(db,
                  "SELECT device_id, json, seq, received_at FROM events WHERE decision_id = $1 "
                  "AND kind = 'decision' ORDER BY received_at, device_id, seq",
                  &p, PGRES_TUPLES_OK, &r, NULL, 0);
    } else {
        p_str(&p, f->summaries ? "t" : "f");
        if (f->listing_pattern != NULL) {
            p_str(&p, f->listing_pattern);
        } else {
            p_null(&p);
        }
        err = hpg_run(db,
                  "SELECT device_id, json, seq, received_at FROM events WHERE (kind = 'decision' "
                  "OR ($1::boolean AND kind = 'allow_summary')) AND ($2::text IS NULL OR "
                  "(decision IN ('deny', 'refer') AND strpos(json, $2) > 0)) ORDER BY "
                  "received_at, device_id, seq",
                  &p, PGRES_TUPLES_OK, &r, NULL, 0);
    }
    for (int row = 0; err == POSGATE_OK && row < PQntuples(r); row++) {
        struct hub_row x;

        memset(&x, 0, sizeof(x));
        for (int c = 0; c < 2; c++) {
            x.t[c] = PQgetvalue(r, row, c);
            x.tlen[c] = (size_t)PQgetlength(r, row, c);
        }
        x.i[0] = hpg_col_i(r, row, 2);
        x.i[1] = hpg_col_i(r, row, 3);
        err = fn(ctx, &x);
    }
    PQclear(r);
    return err;
}

/* Partitions entirely older than before_s are dropped whole; the rest of the old events are
 * deleted row by row. Every device's row is locked first (in id order, as ingest takes one),
 * so no batch is judged against events half pruned. */
static enum posgate_err
pg_prune(void *impl, int64_t before_s, int64_t now_s, struct hub_prune *res, char *errmsg,
         size_t errcap)
{
    struct pg *db = impl;
    struct params p = {0};
    PGresult *r = NULL;
    enum posgate_err err;

    memset(res, 0, sizeof(*res));
    pthread_mutex_lock(&db->mu);
    hpg_reconnect(db);
    err = hpg_cmd(db, "BEGIN", NULL, errmsg, errcap);
    if (err != POSGATE_OK) {
        goto unlock;
    }
    err = hpg_run(db, "SELECT device_id FROM devices ORDER BY device_id FOR UPDATE", NULL,
              PGRES_TUPLES_OK, NULL, errmsg, errcap);
    p_int(&p, before_s);
    p_int(&p, now_s);
    if (err == POSGATE_OK) {
        err = hpg_run(db,
                  "INSERT INTO anchors(device_id, seq, hash, prev_hash, pruned_at) SELECT DISTINCT "
                  "ON (device_id) device_id, seq, hash, prev_hash, $2::bigint FROM events WHERE "
                  "received_at < $1 ORDER BY device_id, seq DESC ON CONFLICT (device_id) DO "
                  "UPDATE SET seq = excluded.seq, hash = excluded.hash, prev_hash = "
                  "excluded.prev_hash, pruned_at = excluded.pruned_at WHERE excluded.seq > "
                  "anchors.seq",
                  &p, PGRES_COMMAND_OK, &r, errmsg, errcap);
    }
    if (err == POSGATE_OK) {
        res->anchors = strtoull(PQcmdTuples(r), NULL, 10);
        PQclear(r);
        r = NULL;
        err = hpg_run(db,
                  "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                  "WHERE i.inhparent = 'events'::regclass ORDER BY 1",
                  NULL, PGRES_TUPLES_OK, &r, errmsg, errcap);
    }
    for (int row = 0; err == POSGATE_OK && row < PQntuples(r); row++) {
        const char *name = PQgetvalue(r, row, 0);
        int y, m;
        char sql[160];
        PGresult *n = NULL;

        if (sscanf(name, "events_%4d_%2d", &y, &m) != 2 || m < 1 || m > 12 ||
            month_start((int64_t)(y - 1970) * 12 + m) > before_s) { /* the month's end */
            continue;
        }
        snprintf(sql, sizeof(sql), "SELECT count(*) FROM events_%04d_%02d", y, m);
        err = hpg_run(db, sql, NULL, PGRES_TUPLES_OK, &n, errmsg, errcap);
        if (err == POSGATE_OK) {
            res->events += (uint64_t)hpg_col_i(n, 0, 0);
            snprintf(sql, sizeof(sql), "DROP TABLE events_%04d_%02d", y, m);
            err = hpg_cmd(db, sql, NULL, errmsg, errcap);
            res->partitions++;
        }
        PQclear(n);
    }
    PQclear(r);
    r = NULL;
    if (err == POSGATE_OK) {
        p.n = 1;
        err = hpg_run(db, "DELETE FROM events WHERE received_at < $1", &p, PGRES_COMMAND_OK, &r, errmsg,
                  errcap);
    }
    if (err == POSGATE_OK) {
        res->events += strtoull(PQcmdTuples(r), NULL, 10);
        err = hpg_cmd(db, "COMMIT", NULL, errmsg, errcap);
    } else {
        PQclear(PQexec(db->c, "ROLLBACK"));
    }
    PQclear(r);
    db->month_ready = 0; /* a dropped month is created again when a batch needs it */
unlock:
    pthread_mutex_unlock(&db->mu);
    return err;
}

/* ---- the fleet dashboard (hub_fleet.c) ---- */

/* Runs sql and hands each row to fn as it arrives (libpq's single-row mode: a month of events
 * is never held in memory at once); columns t0, t1, i0, i1. A callback's error stops the
 * callbacks, and the rest of the answer is read and dropped. */
static enum posgate_err
stream_rows(struct pg *db, const char *sql, const struct params *p, hub_row_fn fn, void *ctx)
{
    PGresult *r;
    enum posgate_err err = POSGATE_OK;

    if (!PQsendQueryParams(db->c, sql, p->n, NULL, p->v, p->len, p->fmt, 0)) {
        return hpg_fail(db, NULL, sql, NULL, 0);
    }
    if (!PQsetSingleRowMode(db->c)) {
        err = POSGATE_ERR_IO; /* the answer is still read below, whole */
    }
    while ((r = PQgetResult(db->c)) != NULL) {
        ExecStatusType s = PQresultStatus(r);

        if (s == PGRES_SINGLE_TUPLE && err == POSGATE_OK) {
            struct hub_row x;

            memset(&x, 0, sizeof(x));
            for (int c = 0; c < 2; c++) {
                x.t[c] = PQgetvalue(r, 0, c);
                x.tlen[c] = (size_t)PQgetlength(r, 0, c);
            }
            x.i[0] = hpg_col_i(r, 0, 2);
            x.i[1] = hpg_col_i(r, 0, 3);
            err = fn(ctx, &x);
        } else if (s != PGRES_SINGLE_TUPLE && s != PGRES_TUPLES_OK && err == POSGATE_OK) {
            err = hpg_fail(db, r, sql, NULL, 0);
        }
        PQclear(r);
    }
    return err;
}

static enum posgate_err
pg_report_history(void *impl, const char *id, int64_t since_s, int64_t limit, hub_row_fn fn,
                  void *ctx)
{
    struct params p = {0};

    if (id != NULL) {
        p_str(&p, id);
    } else {
        p_null(&p);
    }
    p_int(&p, since_s);
    if (id != NULL && limit > 0) {
        p_int(&p, limit);
    } else {
        p_null(&p); /* LIMIT NULL: all */
    }
    return stream_rows(impl,
                       "SELECT device_id, report, reported_at_us, received_at FROM (SELECT "
                       "device_id, report, reported_at_us, received_at FROM device_reports WHERE "
                       "($1::text IS NULL OR device_id = $1) AND received_at >= $2::bigint "
                       "ORDER BY device_id, reported_at_us DESC LIMIT $3::bigint) r ORDER BY "
                       "device_id, reported_at_us",
                       &p, fn, ctx);
}

static enum posgate_err
pg_events_since(void *impl, int64_t since_s, hub_row_fn fn, void *ctx)
{
    struct params p = {0};

    p_int(&p, since_s);
    /* received_at is the partition key: older months are not read */
    return stream_rows(impl,
                       "SELECT device_id, json, seq, received_at FROM events WHERE received_at >= "
                       "$1::bigint",
                       &p, fn, ctx);
}

/* ---- the contests looked up ---- */

static enum posgate_err
pg_lookup_put(void *impl, const char *decision_id, int64_t at_s, const char *service,
              const char *lists, const char *via, char *errmsg, size_t errcap)
{
    struct pg *db = impl;
    struct params p = {0};
    enum posgate_err err;

    p_str(&p, decision_id);
    p_int(&p, at_s);
    p_str(&p, service);
    p_str(&p, lists);
    p_str(&p, via);
    pthread_mutex_lock(&db->mu);
    hpg_reconnect(db);
    err = hpg_cmd(db,
              "INSERT INTO lookups(decision_id, looked_up_at, service, lists, via) VALUES ($1, "
              "$2, $3, $4, $5)",
              &p, errmsg, errcap);
    pthread_mutex_unlock(&db->mu);
    return err;
}

static const struct hub_store_ops pg_ops = {
    .name = "postgresql",
    .close = pg_close,
    .enroll = pg_enroll,
    .ingest = hpg_ingest,
    .read_begin = pg_read_begin,
    .read_end = pg_read_end,
    .totals = pg_totals,
    .devices = pg_devices,
    .device_state = pg_device_state,
    .gap_ranges = pg_gap_ranges,
    .gaps_detected = pg_gaps_detected,
    .breaks = pg_breaks,
    .each_row = pg_each_row,
    .copy_begin = pg_copy_begin,
    .put_row = pg_put_row,
    .copy_end = pg_copy_end,
    .find_events = pg_find_events,
    .prune = pg_prune,
    .device_pem = pg_device_pem,
    .report_put = pg_report_put,
    .reports = pg_reports,
    .report_history = pg_report_history,
    .events_since = pg_events_since,
    .lookup_put = pg_lookup_put,
    .ingest_counts = hpg_ingest_counts,
    .set_connections = hpg_set_connections,
};

static void
pg_close(void *impl)
{
    struct pg *db = impl;

    if (db == NULL) {
        return;
    }
    for (int i = 0; db->lanes != NULL && i < HPG_LANES_MAX; i++) {
        PQfinish(db->lanes[i].c);
        pthread_mutex_destroy(&db->lanes[i].mu);
    }
    plat_free(db->lanes);
    plat_free(db->uri);
    hpg_keys_free(db->keys);
    PQfinish(db->c);
    pthread_mutex_destroy(&db->mu);
    plat_free(db);
}

/* The schema of a database opened read-only: OK when it is this hub's, else STATE saying why. */
static enum posgate_err
schema_current(struct pg *db, char *errmsg, size_t errcap)
{
    uint64_t have = 0;
    enum posgate_err err = hpg_query_u64(db, "SELECT (to_regclass('schema_version') IS NOT NULL)::int",
                                         NULL, &have, errmsg, errcap);

    if (err == POSGATE_OK && have == 0) {
        snprintf(errmsg, errcap,
                 "the database holds no collector (no schema_version table): start posgate-hub "
                 "serve --db on it, or migrate-db into it, first");
        return POSGATE_ERR_STATE;
    }
    if (err == POSGATE_OK) {
        err = hpg_query_u64(db, "SELECT coalesce(max(version), 0) FROM schema_version", NULL, &have,
                            errmsg, errcap);
    }
    if (err == POSGATE_OK && have != (uint64_t)SCHEMA_VERSION) {
        snprintf(errmsg, errcap,
                 "the database's schema is version %" PRIu64 ", this posgate-hub reads version "
                 "%" PRId64 ": %s",
                 have, SCHEMA_VERSION,
                 have < (uint64_t)SCHEMA_VERSION
                     ? "a posgate-hub of this version opened on the primary (serve, enroll, "
                       "decision or prune) migrates it"
                     : "upgrade posgate-hub");
        return POSGATE_ERR_STATE;
    }
    return err;
}

enum posgate_err
hub_pg_open(const char *uri, bool read_only, void **impl, const struct hub_store_ops **ops,
            char *errmsg, size_t errcap)
{
    struct pg *db = plat_calloc(1, sizeof(*db));
    enum posgate_err err = POSGATE_OK;

    if (db == NULL) {
        return POSGATE_ERR_NOMEM;
    }
    pthread_mutex_init(&db->mu, NULL);
    db->lanes = plat_calloc(HPG_LANES_MAX, sizeof(*db->lanes));
    db->n_lanes = HPG_LANES;
    db->uri = plat_strdup(uri);
    db->keys = hpg_keys_new();
    if (db->lanes == NULL || db->uri == NULL || db->keys == NULL) {
        plat_free(db->lanes);
        db->lanes = NULL;
        err = POSGATE_ERR_NOMEM;
        goto out;
    }
    for (int i = 0; i < HPG_LANES_MAX; i++) {
        pthread_mutex_init(&db->lanes[i].mu, NULL);
    }
    db->c = PQconnectdb(uri);
    if (db->c == NULL || PQstatus(db->c) != CONNECTION_OK) {
        /* the URI itself is not repeated: it may carry a password */
        snprintf(errmsg, errcap, "cannot connect to PostgreSQL: %s",
                 db->c != NULL ? PQerrorMessage(db->c) : "out of memory");
        err = POSGATE_ERR_IO;
        goto out;
    }
    PQclear(PQexec(db->c, "SET client_min_messages = warning"));
    if (read_only) {
        err = hpg_cmd(db, "SET default_transaction_read_only = on", NULL, errmsg, errcap);
        err = err != POSGATE_OK ? err : schema_current(db, errmsg, errcap);
    } else {
        err = migrate(db, errmsg, errcap);
    }
    if (err != POSGATE_OK) {
        goto out;
    }
    *impl = db;
    *ops = &pg_ops;
    db = NULL;
out:
    pg_close(db);
    return err;
}
