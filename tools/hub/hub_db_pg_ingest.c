/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The PostgreSQL store's ingest (hub_store.h): one batch judged (hub_judge_*, shared with the
 * SQLite store) and written in one READ COMMITTED transaction that starts by locking the
 * device's row; hub_db_pg.c explains why that orders every ingest of a device.
 *
 * The device's row keeps its head: the highest seq held (an event, or the anchor of pruned
 * ones) with that event's hash and prev, written in the same statement as the events (a hub of
 * an earlier version cannot insert events: hub_db_pg.c's migration 5). A batch
 * whose first event follows the head, the usual upload, is judged from the row alone: nothing
 * can be held above the head, so no other event of the device is read and no partition of
 * events is searched. Any other batch (a retry, one out of order, one after a gap, a head
 * without events) reads the events around it, as before.
 *
 * The usual batch takes one statement and one round trip (S_APPEND, ingest_append): the hub
 * keeps the enrolled keys it has seen (struct hpg_keys, all of them read on the first batch),
 * so it verifies the batch's signature before it writes, and the statement's UPDATE of the
 * device's row moves the head only when the row still says what the batch was judged on (the
 * key, and the head the batch's first event follows); its INSERTs of the events and of the
 * batch's record take place only when that UPDATE did. A batch that another ingest of the
 * device overtook (the row waits for its commit, then no longer matches), or one that does not
 * follow the head, is then judged in full, in two or more round trips each a pipeline (libpq's
 * pipeline mode): BEGIN, the device's row locked, then its anchor and open gaps (a statement
 * after the lock, so it sees what the previous holder committed); then the batch's events in
 * one INSERT of arrays (binary parameters) with the head, the acked seq and the batch's record,
 * and COMMIT. The statements are prepared once per connection, so that PostgreSQL plans them
 * once rather than for every batch over every partition.
 */
#define _POSIX_C_SOURCE 200809L

#include "hub_db_pg_internal.h"

#include "buf.h"
#include "crypto.h"
#include "plat_mem.h"

#define OID_BYTEA 17
#define OID_INT8  20
#define OID_TEXT  25

/* the longest array parameter: a batch's events' text (hub_batch.h limits a batch far below) */
#define ARRAY_MAX ((size_t)1 << 30)

enum stmt { S_DEVICE, S_DEVICE_MORE, S_HELD, S_STORE, S_CLOSE_GAPS, S_APPEND, S_COUNT };

/* the events' columns from the arrays $2..$9 (event_arrays), as both INSERTs of events write
 * them; writer: hub_db_pg.c's migration 5 */
#define EVENTS_FROM_ARRAYS                                                                      \
    "INSERT INTO events(device_id, seq, hash, prev_hash, kind, decision, count, json, "        \
    "received_at, decision_id, writer) SELECT $1, u.s, u.h, u.p, u.k, u.d, u.c, u.j, $10, u.i, " \
    "5 FROM unnest($2::int8[], $3::bytea[], $4::bytea[], $5::text[], $6::text[], $7::int8[], " \
    "$8::text[], $9::text[]) AS u(s, h, p, k, d, c, j, i)"
/* the batch's record ($15 its key, NULL: none; $16..$19 first and last seq, events, stored) */
#define BATCH_RECORD                                                                          \
    "INSERT INTO batches AS x(device_id, idempotency_key, first_seq, last_seq, n_events, "    \
    "stored, status, received_at, times) SELECT $1, $15, $16, $17, $18, $19, 'stored', $10, 1 " \
    "WHERE $15::text IS NOT NULL"
#define BATCH_RECORD_REPEAT                                                                   \
    " ON CONFLICT (device_id, idempotency_key) DO UPDATE SET times = x.times + 1, "           \
    "received_at = EXCLUDED.received_at, status = EXCLUDED.status RETURNING times"


static const char *const stmt_sql[S_COUNT] = {
    [S_DEVICE] = "SELECT pub_pem, last_seq, head_seq, head_hash, head_prev FROM devices "
                 "WHERE device_id = $1 FOR UPDATE",
    [S_DEVICE_MORE] = "SELECT coalesce((SELECT seq FROM anchors WHERE device_id = $1), 0), "
                      "EXISTS (SELECT 1 FROM gaps WHERE device_id = $1 AND closed_at IS NULL)",
    /* a pruned seq answers from its device's anchor (hub_store.h) */
    [S_HELD] = "SELECT seq, hash, prev_hash FROM events WHERE device_id = $1 AND seq BETWEEN $2 "
               "AND $3 UNION ALL SELECT a.seq, a.hash, a.prev_hash FROM anchors a WHERE "
               "a.device_id = $1 AND a.seq BETWEEN $2 AND $3 AND NOT EXISTS (SELECT 1 FROM "
               "events e WHERE e.device_id = $1 AND e.seq = a.seq) ORDER BY 1",
    [S_STORE] = "WITH ins AS (" EVENTS_FROM_ARRAYS " RETURNING 1), "
                "dev AS (UPDATE devices SET last_seq = $11, head_seq = $12, head_hash = $13, "
                "head_prev = $14 WHERE device_id = $1 RETURNING 1), "
                "bat AS (" BATCH_RECORD BATCH_RECORD_REPEAT ") "
                "SELECT (SELECT count(*) FROM ins), (SELECT count(*) FROM dev), "
                "coalesce((SELECT times FROM bat), 0)",
    /* a gap every seq of which is now held is closed, not forgotten */
    [S_CLOSE_GAPS] = "UPDATE gaps SET closed_at = $2 WHERE device_id = $1 AND closed_at IS NULL "
                     "AND (SELECT count(*) FROM events e WHERE e.device_id = gaps.device_id AND "
                     "e.seq BETWEEN gaps.from_seq AND gaps.to_seq) = to_seq - from_seq + 1",
    /* ingest_append: S_STORE's parameters, $11 the acked seq when it was the head, $20 the key
     * judged on, $21 the head judged on and $22 its hash; the acked seq moves with the head
     * when the trail held was contiguous */
    [S_APPEND] = "WITH dev AS (UPDATE devices SET last_seq = CASE WHEN last_seq = head_seq THEN "
                 "$11 ELSE last_seq END, head_seq = $12, head_hash = $13, head_prev = $14 "
                 "WHERE device_id = $1 AND pub_pem = $20 AND head_seq = $21 AND ($21 = 0 OR "
                 "head_hash = $22) RETURNING last_seq), "
                 "ins AS (" EVENTS_FROM_ARRAYS " WHERE EXISTS (SELECT 1 FROM dev) RETURNING 1), "
                 "bat AS (" BATCH_RECORD " AND EXISTS (SELECT 1 FROM dev)" BATCH_RECORD_REPEAT ") "
                 "SELECT (SELECT count(*) FROM ins), (SELECT last_seq FROM dev), "
                 "coalesce((SELECT times FROM bat), 0)",
};

/* Prepares the statements this connection has not prepared yet (a prepared statement lasts
 * as long as the session, whatever becomes of the transaction it was made in). */
static enum posgate_err
prepare_all(struct pg *db, struct hub_ingest *res)
{
    for (int s = 0; s < S_COUNT; s++) {
        char name[32];
        PGresult *r;

        if ((db->prepared & (1u << s)) != 0) {
            continue;
        }
        snprintf(name, sizeof(name), "posgate_ingest_%d", s);
        r = PQprepare(db->c, name, stmt_sql[s], 0, NULL);
        if (PQresultStatus(r) != PGRES_COMMAND_OK) {
            enum posgate_err err = hpg_fail(db, r, stmt_sql[s], res->error, sizeof(res->error));

            PQclear(r);
            return err;
        }
        PQclear(r);
        db->prepared |= 1u << s;
    }
    return POSGATE_OK;
}

/* One statement of a pipeline: a prepared one (sql NULL) or sql text without parameters. */
struct step {
    enum stmt s;
    const char *sql;
    const struct params *p;
    ExecStatusType want;
    PGresult **out; /* NULL: the result is dropped */
};

static const char *
step_sql(const struct step *s)
{
    return s->sql != NULL ? s->sql : stmt_sql[s->s];
}

static void
drain(PGconn *c)
{
    PGresult *r;

    while ((r = PQgetResult(c)) != NULL) {
        PQclear(r);
    }
}

static bool
send_step(PGconn *c, const struct step *s)
{
    char name[32];

    if (s->sql != NULL) {
        return PQsendQueryParams(c, s->sql, 0, NULL, NULL, NULL, NULL, 0) == 1;
    }
    snprintf(name, sizeof(name), "posgate_ingest_%d", (int)s->s);
    return PQsendQueryPrepared(c, name, s->p->n, s->p->v, s->p->len, s->p->fmt, 0) == 1;
}

/* Sends the steps in one round trip and reads each result; the first failure is returned (the
 * steps after it are not run: PostgreSQL skips the rest of a pipeline after an error). */
static enum posgate_err
pipeline(struct pg *db, const struct step *st, int n, struct hub_ingest *res)
{
    enum posgate_err err = POSGATE_OK;
    int sent = 0;

    if (PQenterPipelineMode(db->c) != 1) {
        return hpg_fail(db, NULL, "pipeline", res->error, sizeof(res->error));
    }
    while (sent < n && send_step(db->c, &st[sent])) {
        sent++;
    }
    if (sent < n) {
        err = hpg_fail(db, NULL, step_sql(&st[sent]), res->error, sizeof(res->error));
    }
    if (PQpipelineSync(db->c) != 1 && err == POSGATE_OK) {
        err = hpg_fail(db, NULL, "pipeline sync", res->error, sizeof(res->error));
    }
    for (int i = 0; i < sent && PQstatus(db->c) == CONNECTION_OK; i++) {
        PGresult *r = PQgetResult(db->c);

        if (PQresultStatus(r) != st[i].want) {
            if (err == POSGATE_OK) {
                err = hpg_fail(db, r, step_sql(&st[i]), res->error, sizeof(res->error));
            }
            PQclear(r);
        } else if (st[i].out != NULL) {
            *st[i].out = r;
        } else {
            PQclear(r);
        }
        drain(db->c); /* the end of this statement's results */
    }
    if (PQstatus(db->c) == CONNECTION_OK) {
        PGresult *r = PQgetResult(db->c); /* the sync */

        if (PQresultStatus(r) != PGRES_PIPELINE_SYNC && err == POSGATE_OK) {
            err = hpg_fail(db, r, "pipeline sync", res->error, sizeof(res->error));
        }
        PQclear(r);
    } else if (err == POSGATE_OK) {
        err = hpg_fail(db, NULL, "pipeline", res->error, sizeof(res->error));
    }
    if (PQexitPipelineMode(db->c) != 1 && err == POSGATE_OK) {
        err = hpg_fail(db, NULL, "pipeline end", res->error, sizeof(res->error));
    }
    return err;
}

/* ---- binary arrays (PostgreSQL's array_recv: dimensions and element type, then each element
 * as its length and bytes, -1 for NULL, integers big-endian) ---- */

static void
put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static enum posgate_err
arr_begin(struct buf *a, uint32_t elem_oid, size_t n)
{
    uint8_t h[20];

    put_be32(h, 1);            /* one dimension */
    put_be32(h + 4, 0);        /* flags */
    put_be32(h + 8, elem_oid); /* the element's type */
    put_be32(h + 12, (uint32_t)n);
    put_be32(h + 16, 1); /* its lower bound */
    return buf_append(a, h, sizeof(h));
}

static enum posgate_err
arr_put(struct buf *a, const void *v, size_t len)
{
    uint8_t l[4];
    enum posgate_err err;

    put_be32(l, v == NULL ? 0xffffffffu : (uint32_t)len);
    err = buf_append(a, l, sizeof(l));
    return err != POSGATE_OK || v == NULL ? err : buf_append(a, v, len);
}

static enum posgate_err
arr_int8(struct buf *a, uint64_t v)
{
    uint8_t x[8];

    for (int i = 0; i < 8; i++) {
        x[i] = (uint8_t)(v >> (56 - 8 * i));
    }
    return arr_put(a, x, sizeof(x));
}

/* S_STORE's $2..$9, in order */
enum { A_SEQ, A_HASH, A_PREV, A_KIND, A_DECISION, A_COUNT, A_JSON, A_ID, A_N };

/* The arrays of the events to store (keep[i] set; n of them). */
static enum posgate_err
event_arrays(const struct hub_batch *b, const bool *keep, size_t n, struct buf a[A_N])
{
    static const uint32_t oid[A_N] = {OID_INT8, OID_BYTEA, OID_BYTEA, OID_TEXT,
                                      OID_TEXT, OID_INT8,  OID_TEXT,  OID_TEXT};
    enum posgate_err err = POSGATE_OK;

    for (int k = 0; err == POSGATE_OK && k < A_N; k++) {
        err = arr_begin(&a[k], oid[k], n);
    }
    for (size_t i = 0; err == POSGATE_OK && i < b->n; i++) {
        const struct hub_event *e = &b->ev[i];

        if (!keep[i]) {
            continue;
        }
        err = arr_int8(&a[A_SEQ], e->seq);
        err = err != POSGATE_OK ? err : arr_put(&a[A_HASH], e->hash, AUDIT_HASH_LEN);
        err = err != POSGATE_OK ? err : arr_put(&a[A_PREV], e->prev, AUDIT_HASH_LEN);
        err = err != POSGATE_OK ? err : arr_put(&a[A_KIND], e->kind, strlen(e->kind));
        err = err != POSGATE_OK ? err : arr_put(&a[A_DECISION], e->decision, strlen(e->decision));
        err = err != POSGATE_OK ? err : arr_int8(&a[A_COUNT], e->count);
        err = err != POSGATE_OK ? err : arr_put(&a[A_JSON], e->text, e->len);
        /* NULL: a summary, or an id no contest can ask for */
        err = err != POSGATE_OK ? err
                                : arr_put(&a[A_ID], e->decision_id[0] != 0 ? e->decision_id : NULL,
                                          strlen(e->decision_id));
    }
    return err;
}

static void
p_bin(struct params *p, const struct buf *a)
{
    p->v[p->n] = (const char *)a->data;
    p->len[p->n] = (int)a->len;
    p->fmt[p->n++] = 1;
}

/* ---- judging ---- */

/* The device as its locked row and the statement after the lock say. */
struct device {
    PGresult *r; /* holds pub_pem */
    uint64_t acked, head, anchor;
    uint8_t head_hash[AUDIT_HASH_LEN], head_prev[AUDIT_HASH_LEN];
    bool open_gaps;
};

/* The events held around the batch, sorted by seq, for the judge: rows of S_HELD, or only the
 * device's head when the batch follows it (r NULL). */
struct held {
    PGresult *r;
    int n;
    const struct device *d;
};

static int
held_cb(void *ctx, uint64_t seq, uint8_t hash[AUDIT_HASH_LEN], uint8_t prev[AUDIT_HASH_LEN])
{
    const struct held *h = ctx;
    int lo = 0, hi = h->n - 1;

    if (h->r == NULL) {
        if (h->d->head == 0 || seq != h->d->head) {
            return 0;
        }
        memcpy(hash, h->d->head_hash, AUDIT_HASH_LEN);
        memcpy(prev, h->d->head_prev, AUDIT_HASH_LEN);
        return 1;
    }
    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2;
        uint64_t s = (uint64_t)hpg_col_i(h->r, mid, 0);

        if (s == seq) {
            hpg_col_hash(h->r, mid, 1, hash);
            hpg_col_hash(h->r, mid, 2, prev);
            return 1;
        }
        if (s < seq) {
            lo = mid + 1;
        } else {
            hi = mid - 1;
        }
    }
    return 0;
}

static enum posgate_err
note_batch(struct pg *db, const struct hub_batch *b, const char *key, size_t stored,
           const char *status, int64_t now_s, struct hub_ingest *res)
{
    struct params p = {0};
    uint64_t times = 0;
    enum posgate_err err;

    if (key == NULL) {
        return POSGATE_OK;
    }
    p_str(&p, b->device_id);
    p_str(&p, key);
    p_int(&p, b->n > 0 ? (int64_t)b->ev[0].seq : 0);
    p_int(&p, b->n > 0 ? (int64_t)b->ev[b->n - 1].seq : 0);
    p_int(&p, (int64_t)b->n);
    p_int(&p, (int64_t)stored);
    p_str(&p, status);
    p_int(&p, now_s);
    err = hpg_query_u64(db,
                    "INSERT INTO batches AS x(device_id, idempotency_key, first_seq, last_seq, "
                    "n_events, stored, status, received_at, times) VALUES ($1, $2, $3, $4, $5, "
                    "$6, $7, $8, 1) ON CONFLICT (device_id, idempotency_key) DO UPDATE SET "
                    "times = x.times + 1, received_at = $8, status = $7 RETURNING times",
                    &p, &times, res->error, sizeof(res->error));
    res->repeated_key = times > 1;
    return err;
}

static enum posgate_err
record_break(struct pg *db, const char *dev, const struct hub_break *k, int64_t now_s,
             struct hub_ingest *res)
{
    struct params p = {0};
    enum posgate_err err;

    p_str(&p, dev);
    p_int(&p, (int64_t)k->seq);
    p_str(&p, k->kind);
    p_str(&p, k->detail);
    if (k->event_json != NULL) {
        p_str(&p, k->event_json);
    } else {
        p_null(&p);
    }
    p_int(&p, now_s);
    err = hpg_cmd(db,
              "INSERT INTO chain_breaks AS x(device_id, seq, kind, detail, event_json, first_seen, "
              "last_seen, times) VALUES ($1, $2, $3, $4, $5, $6, $6, 1) ON CONFLICT (device_id, "
              "seq, kind) DO UPDATE SET last_seen = $6, times = x.times + 1",
              &p, res->error, sizeof(res->error));
    if (err == POSGATE_OK) {
        p.n = 2;
        err = hpg_cmd(db,
                  "UPDATE devices SET chain_ok = false, broken_at = least(coalesce(broken_at, "
                  "$2), $2) WHERE device_id = $1",
                  &p, res->error, sizeof(res->error));
    }
    return err;
}

/* Advances devices.last_seq over the contiguous seqs now held; *acked gets it. */
static enum posgate_err
advance_acked(struct pg *db, const char *dev, uint64_t *acked, struct hub_ingest *res)
{
    struct params p = {0};
    PGresult *r = NULL;
    enum posgate_err err;
    uint64_t a = *acked;

    p_str(&p, dev);
    p_int(&p, (int64_t)a);
    err = hpg_run(db, "SELECT seq FROM events WHERE device_id = $1 AND seq > $2 ORDER BY seq", &p,
              PGRES_TUPLES_OK, &r, res->error, sizeof(res->error));
    for (int i = 0; err == POSGATE_OK && i < PQntuples(r); i++) {
        if ((uint64_t)hpg_col_i(r, i, 0) != a + 1) {
            break;
        }
        a++;
    }
    PQclear(r);
    if (err == POSGATE_OK && a != *acked) {
        memset(&p, 0, sizeof(p));
        p_str(&p, dev);
        p_int(&p, (int64_t)a);
        err = hpg_cmd(db, "UPDATE devices SET last_seq = $2 WHERE device_id = $1", &p, res->error,
                  sizeof(res->error));
    }
    if (err == POSGATE_OK) {
        *acked = a;
    }
    return err;
}

/* The device's row, locked until commit, then its anchor and open gaps read after the lock:
 * BEGIN and both statements in one round trip. NOTFOUND when the device is not enrolled. */
static enum posgate_err
lock_device(struct pg *db, const struct hub_batch *b, struct device *d, struct hub_ingest *res)
{
    struct params p = {0};
    PGresult *more = NULL;
    enum posgate_err err;

    p_str(&p, b->device_id);
    {
        const struct step st[] = {
            {S_COUNT, "BEGIN", NULL, PGRES_COMMAND_OK, NULL},
            {S_DEVICE, NULL, &p, PGRES_TUPLES_OK, &d->r},
            {S_DEVICE_MORE, NULL, &p, PGRES_TUPLES_OK, &more},
        };

        err = pipeline(db, st, 3, res);
    }
    if (err == POSGATE_OK && PQntuples(d->r) != 1) {
        err = hub_judge_unenrolled(b, res);
    }
    if (err == POSGATE_OK) {
        d->acked = (uint64_t)hpg_col_i(d->r, 0, 1);
        d->head = (uint64_t)hpg_col_i(d->r, 0, 2);
        if (d->head > 0 && (hpg_col_hash(d->r, 0, 3, d->head_hash) == 0 ||
                            hpg_col_hash(d->r, 0, 4, d->head_prev) == 0)) {
            snprintf(res->error, sizeof(res->error),
                     "collector database: device %s's head %llu has no hash", b->device_id,
                     (unsigned long long)d->head);
            err = POSGATE_ERR_CORRUPT;
        }
        d->anchor = (uint64_t)hpg_col_i(more, 0, 0);
        d->open_gaps = PQgetvalue(more, 0, 1)[0] == 't';
    }
    PQclear(more);
    return err;
}

/* The gap before the batch's first event when the seq before it is not held. */
static enum posgate_err
note_gap(struct pg *db, const struct hub_batch *b, int64_t now_s, struct hub_ingest *res)
{
    struct params p = {0};
    uint64_t below = 0;
    enum posgate_err err;

    p_str(&p, b->device_id);
    p_int(&p, (int64_t)(b->ev[0].seq - 1));
    err = hpg_query_u64(db,
                        "SELECT greatest(coalesce((SELECT max(seq) FROM events WHERE "
                        "device_id = $1 AND seq < $2), 0), coalesce((SELECT seq FROM anchors "
                        "WHERE device_id = $1 AND seq < $2), 0))",
                        &p, &below, res->error, sizeof(res->error));
    res->gap_from = below + 1;
    res->gap_to = b->ev[0].seq - 1;
    memset(&p, 0, sizeof(p));
    p_str(&p, b->device_id);
    p_int(&p, (int64_t)res->gap_from);
    p_int(&p, (int64_t)res->gap_to);
    p_int(&p, now_s);
    if (err == POSGATE_OK) {
        err = hpg_cmd(db,
                      "INSERT INTO gaps(device_id, from_seq, to_seq, detected_at) VALUES "
                      "($1, $2, $3, $4) ON CONFLICT DO NOTHING",
                      &p, res->error, sizeof(res->error));
    }
    return err;
}

/* S_STORE's parameters $1..$19 for the events of b with keep[i] set (n of them): the arrays
 * go in a[] (the caller frees them), the head after the batch is head, hh, hp. */
static enum posgate_err
store_params(const struct hub_batch *b, const bool *keep, size_t n, const char *key,
             int64_t now_s, uint64_t acked, uint64_t head, const uint8_t *hh, const uint8_t *hp,
             struct buf a[A_N], struct params *p)
{
    enum posgate_err err = event_arrays(b, keep, n, a);

    p_str(p, b->device_id);
    for (int k = 0; k < A_N; k++) {
        p_bin(p, &a[k]);
    }
    p_int(p, now_s);
    p_int(p, (int64_t)acked);
    p_int(p, (int64_t)head);
    if (head > 0) {
        p_hash(p, hh);
        p_hash(p, hp);
    } else {
        p_null(p);
        p_null(p);
    }
    if (key != NULL) {
        p_str(p, key);
    } else {
        p_null(p);
    }
    p_int(p, b->n > 0 ? (int64_t)b->ev[0].seq : 0);
    p_int(p, b->n > 0 ? (int64_t)b->ev[b->n - 1].seq : 0);
    p_int(p, (int64_t)b->n);
    p_int(p, (int64_t)n);
    return err;
}

/* What a judged batch adds, as in the SQLite store: each event not held and above the anchor
 * (not stored again below it) in one statement with the device's head and acked seq and
 * the batch's record, then the gaps it fills closed, the acked seq advanced over what is now
 * contiguous (when the batch did not simply extend it), and COMMIT. follows: the batch's first
 * event follows the head, so nothing above it is held and no gap can close. */
static enum posgate_err
store(struct pg *db, const struct hub_batch *b, const char *key, const struct device *d,
      const struct held *held, bool follows, int64_t now_s, struct hub_ingest *res)
{
    struct buf a[A_N];
    struct params p = {0};
    PGresult *r = NULL;
    bool *keep = plat_calloc(b->n > 0 ? b->n : 1, sizeof(bool));
    size_t n = 0;
    uint64_t head = d->head, times = 0;
    const uint8_t *hh = d->head_hash, *hp = d->head_prev;
    enum posgate_err err = keep != NULL ? POSGATE_OK : POSGATE_ERR_NOMEM;

    for (int k = 0; k < A_N; k++) {
        buf_init(&a[k], ARRAY_MAX);
    }
    for (size_t i = 0; err == POSGATE_OK && i < b->n; i++) {
        uint8_t h[AUDIT_HASH_LEN], pv[AUDIT_HASH_LEN];

        keep[i] = held_cb((void *)held, b->ev[i].seq, h, pv) == 0 && b->ev[i].seq > d->anchor;
        n += keep[i] ? 1 : 0;
        if (keep[i] && b->ev[i].seq > head) {
            head = b->ev[i].seq;
            hh = b->ev[i].hash;
            hp = b->ev[i].prev;
        }
    }
    res->acked_seq = d->acked;
    if (follows && d->acked == d->head && n > 0) {
        res->acked_seq = head; /* the batch extends a contiguous trail with no hole inside */
    }
    if (err == POSGATE_OK) {
        err = store_params(b, keep, n, key, now_s, res->acked_seq, head, hh, hp, a, &p);
    }
    if (err == POSGATE_OK) {
        struct params g = {0};
        const struct step fast[] = {
            {S_STORE, NULL, &p, PGRES_TUPLES_OK, &r},
            {S_COUNT, "COMMIT", NULL, PGRES_COMMAND_OK, NULL},
        };

        if (follows) {
            err = pipeline(db, fast, 2, res);
        } else {
            err = pipeline(db, fast, 1, res);
            p_str(&g, b->device_id);
            p_int(&g, now_s);
            if (err == POSGATE_OK && d->open_gaps && n > 0) {
                const struct step close[] = {{S_CLOSE_GAPS, NULL, &g, PGRES_COMMAND_OK, NULL}};

                err = pipeline(db, close, 1, res);
            }
            if (err == POSGATE_OK && res->acked_seq == d->acked) {
                err = advance_acked(db, b->device_id, &res->acked_seq, res);
            }
            if (err == POSGATE_OK) {
                err = hpg_cmd(db, "COMMIT", NULL, res->error, sizeof(res->error));
            }
        }
    }
    if (err == POSGATE_OK) {
        times = (uint64_t)hpg_col_i(r, 0, 2);
        res->stored = (size_t)hpg_col_i(r, 0, 0);
        res->held_seq = head;
        res->repeated_key = times > 1;
    }
    PQclear(r);
    for (int k = 0; k < A_N; k++) {
        buf_free(&a[k]);
    }
    plat_free(keep);
    return err;
}

/* ---- the enrolled keys this process knows, and the batch in one statement ---- */

#define KEYS_MAX   ((size_t)1 << 18) /* devices whose keys are kept (~230 bytes each) */
#define PARSED_MAX ((size_t)1 << 14) /* of them, read for verification (a few KiB each) */
#define PEM_MAX    1024              /* a longer key is not kept (a P-256 key's PEM: ~180) */

/* A device's enrolled key: its PEM as devices holds it, and the key read from it once (NULL
 * until a batch needs it, and for all but PARSED_MAX devices). A key read stays until the
 * store closes, so a reader may use it after the lock (an entry whose PEM changed gets a new
 * one; the old goes on the retired list). */
struct key_entry {
    char id[DEVICE_ID_HEX_LEN + 1];
    char *pem;
    struct crypto_pubkey *pk;
    struct key_entry *retired;
};

/* Device id to enrolled key, read from devices: all of them on the first batch, then each
 * device judged in full. A device's key is never replaced by posgate-hub (enroll refuses
 * another key for an enrolled id), and S_APPEND compares it with the row anyway. */
struct hpg_keys {
    pthread_rwlock_t lock;
    struct key_entry **slot; /* an open hash table, at most half full */
    size_t cap, n, parsed;
    struct key_entry *retired;
    int loaded; /* 0 not yet, 1 being read, 2 read */
    uint64_t appended, judged;
};

struct hpg_keys *
hpg_keys_new(void)
{
    struct hpg_keys *k = plat_calloc(1, sizeof(*k));

    if (k != NULL) {
        pthread_rwlock_init(&k->lock, NULL);
    }
    return k;
}

static void
entry_free(struct key_entry *e)
{
    if (e != NULL) {
        crypto_pubkey_free(e->pk);
        plat_free(e->pem);
        plat_free(e);
    }
}

void
hpg_keys_free(struct hpg_keys *k)
{
    if (k == NULL) {
        return;
    }
    for (size_t i = 0; i < k->cap; i++) {
        entry_free(k->slot[i]);
    }
    while (k->retired != NULL) {
        struct key_entry *e = k->retired;

        k->retired = e->retired;
        entry_free(e);
    }
    plat_free(k->slot);
    pthread_rwlock_destroy(&k->lock);
    plat_free(k);
}

enum posgate_err
hpg_set_connections(void *impl, unsigned n)
{
    struct pg *db = impl;

    if (n == 0 || n > HPG_LANES_MAX) {
        return POSGATE_ERR_INVALID;
    }
    db->n_lanes = n;
    return POSGATE_OK;
}

void
hpg_ingest_counts(void *impl, uint64_t *appended, uint64_t *judged)
{
    struct pg *db = impl;

    *appended = __atomic_load_n(&db->keys->appended, __ATOMIC_RELAXED);
    *judged = __atomic_load_n(&db->keys->judged, __ATOMIC_RELAXED);
}

static size_t
key_slot(size_t cap, const char *id)
{
    uint64_t h = 1469598103934665603u; /* FNV-1a */

    for (size_t i = 0; i < DEVICE_ID_HEX_LEN; i++) {
        h = (h ^ (uint8_t)id[i]) * 1099511628211u;
    }
    return (size_t)h & (cap - 1);
}

/* id's slot (locked by the caller): its entry, or the empty slot where it would go. */
static size_t
key_find(const struct hpg_keys *k, const char *id)
{
    size_t i = key_slot(k->cap, id);

    while (k->slot[i] != NULL && memcmp(k->slot[i]->id, id, DEVICE_ID_HEX_LEN + 1) != 0) {
        i = (i + 1) & (k->cap - 1);
    }
    return i;
}

/* Copies the key kept for id into pem (PEM_MAX + 1 bytes) and *pk the key read from it (NULL
 * when not read yet): false when none is kept. */
static bool
keys_get(struct hpg_keys *k, const char *id, char *pem, const struct crypto_pubkey **pk)
{
    bool found = false;

    pthread_rwlock_rdlock(&k->lock);
    if (k->cap > 0) {
        const struct key_entry *e = k->slot[key_find(k, id)];

        if (e != NULL) {
            snprintf(pem, PEM_MAX + 1, "%s", e->pem);
            *pk = e->pk;
            found = true;
        }
    }
    pthread_rwlock_unlock(&k->lock);
    return found;
}

/* Keeps id's key (write-locked by the caller); nothing when full, or id is not a device id. */
static void
keys_put_locked(struct hpg_keys *k, const char *id, const char *pem, size_t pem_len)
{
    struct key_entry *e;
    size_t i;

    if (strnlen(id, DEVICE_ID_HEX_LEN + 1) != DEVICE_ID_HEX_LEN || pem_len > PEM_MAX) {
        return;
    }
    if (k->cap > 0 && (e = k->slot[key_find(k, id)]) != NULL) {
        if (strlen(e->pem) == pem_len && memcmp(e->pem, pem, pem_len) == 0) {
            return; /* kept already */
        }
    } else if (k->n >= KEYS_MAX) {
        return;
    }
    if (2 * (k->n + 1) > k->cap) {
        size_t cap = k->cap > 0 ? 2 * k->cap : 1024;
        struct key_entry **slot = plat_calloc(cap, sizeof(*slot)), **old = k->slot;
        size_t old_cap = k->cap;

        if (slot == NULL) {
            return;
        }
        k->slot = slot;
        k->cap = cap;
        for (size_t j = 0; j < old_cap; j++) {
            if (old[j] != NULL) {
                slot[key_find(k, old[j]->id)] = old[j];
            }
        }
        plat_free(old);
    }
    e = plat_calloc(1, sizeof(*e));
    if (e == NULL || (e->pem = plat_malloc(pem_len + 1)) == NULL) {
        plat_free(e);
        return;
    }
    memcpy(e->id, id, DEVICE_ID_HEX_LEN + 1);
    memcpy(e->pem, pem, pem_len);
    e->pem[pem_len] = 0;
    i = key_find(k, id);
    if (k->slot[i] != NULL) { /* another key for id: the old one may be in use */
        k->slot[i]->retired = k->retired;
        k->retired = k->slot[i];
    } else {
        k->n++;
    }
    k->slot[i] = e;
}

static void
keys_put(struct hpg_keys *k, const char *id, const char *pem)
{
    pthread_rwlock_wrlock(&k->lock);
    keys_put_locked(k, id, pem, strlen(pem));
    pthread_rwlock_unlock(&k->lock);
}

/* The key read from pem, kept with id's entry while fewer than PARSED_MAX are (*pk); else
 * *own, which the caller frees. NULL in both when pem is not a key. */
static void
keys_read(struct hpg_keys *k, const char *id, const char *pem, const struct crypto_pubkey **pk,
          struct crypto_pubkey **own)
{
    struct crypto_pubkey *x = NULL;

    *pk = NULL;
    *own = NULL;
    if (crypto_pubkey_from_pem(pem, CRYPTO_SCHEME_ECDSA_P256_SHA256, &x) != POSGATE_OK) {
        return;
    }
    pthread_rwlock_wrlock(&k->lock);
    {
        struct key_entry *e = k->cap > 0 ? k->slot[key_find(k, id)] : NULL;

        if (e != NULL && e->pk != NULL && strcmp(e->pem, pem) == 0) {
            *pk = e->pk; /* read by another batch meanwhile */
        } else if (e != NULL && e->pk == NULL && strcmp(e->pem, pem) == 0 &&
                   k->parsed < PARSED_MAX) {
            e->pk = x;
            k->parsed++;
            *pk = x;
            x = NULL;
        }
    }
    pthread_rwlock_unlock(&k->lock);
    if (*pk == NULL) {
        *own = x;
        *pk = x;
    } else {
        crypto_pubkey_free(x);
    }
}

/* Every enrolled key (up to KEYS_MAX), read once by the first batch of this process; a read
 * that fails is tried again by a later batch (until then, batches are judged in full). */
static void
keys_load(struct pg *lane, struct hpg_keys *k)
{
    char err[256];
    PGresult *r = NULL;
    int want = 0;

    if (!__atomic_compare_exchange_n(&k->loaded, &want, 1, false, __ATOMIC_ACQ_REL,
                                     __ATOMIC_ACQUIRE)) {
        return;
    }
    if (hpg_run(lane, "SELECT device_id, pub_pem FROM devices LIMIT 262144", NULL,
                PGRES_TUPLES_OK, &r, err, sizeof(err)) != POSGATE_OK) {
        __atomic_store_n(&k->loaded, 0, __ATOMIC_RELEASE);
        return;
    }
    pthread_rwlock_wrlock(&k->lock);
    for (int i = 0; i < PQntuples(r); i++) {
        keys_put_locked(k, PQgetvalue(r, i, 0), PQgetvalue(r, i, 1),
                        (size_t)PQgetlength(r, i, 1));
    }
    pthread_rwlock_unlock(&k->lock);
    PQclear(r);
    __atomic_store_n(&k->loaded, 2, __ATOMIC_RELEASE);
}

/* The usual batch in one statement (S_APPEND, the file's comment): *done when stored. Not
 * taken (res as it was, nothing written) when no key is kept for the device, the kept key does
 * not verify the batch, the batch breaks its own chain, or the device's row no longer holds
 * the key and the head its first event follows: the caller then judges it in full. */
static enum posgate_err
ingest_append(struct pg *db, struct hpg_keys *keys, const struct hub_batch *b, const char *key,
              int64_t now_s, struct hub_ingest *res, bool *done)
{
    struct hub_ingest before = *res;
    struct device d = {0};
    struct held held = {NULL, 0, &d};
    struct hub_break k;
    struct buf a[A_N];
    struct params p = {0};
    PGresult *r = NULL;
    bool *keep = NULL;
    char pem[PEM_MAX + 1];
    const struct crypto_pubkey *pk = NULL;
    struct crypto_pubkey *own = NULL;
    enum posgate_err err = POSGATE_OK;
    bool judged;

    *done = false;
    if (b->n == 0 || !keys_get(keys, b->device_id, pem, &pk)) {
        return POSGATE_OK;
    }
    if (pk == NULL) {
        keys_read(keys, b->device_id, pem, &pk, &own);
    }
    /* judged as if the device's head were the seq before the batch, with the hash its first
     * event names: the statement stores it only when the row says so */
    d.head = b->ev[0].seq - 1;
    memcpy(d.head_hash, b->ev[0].prev, AUDIT_HASH_LEN);
    judged = hub_judge_signed_key(pk, b, res) == POSGATE_OK &&
             hub_judge_chain(b, held_cb, &held, &k, res) == 0 &&
             hub_judge_gap(b, res, 0, held_cb, &held) == 0;
    crypto_pubkey_free(own);
    if (!judged) {
        *res = before;
        return POSGATE_OK;
    }
    for (int i = 0; i < A_N; i++) {
        buf_init(&a[i], ARRAY_MAX);
    }
    keep = plat_malloc(b->n * sizeof(bool));
    err = keep != NULL ? POSGATE_OK : POSGATE_ERR_NOMEM;
    for (size_t i = 0; keep != NULL && i < b->n; i++) {
        keep[i] = true;
    }
    if (err == POSGATE_OK) {
        const struct hub_event *last = &b->ev[b->n - 1];

        err = store_params(b, keep, b->n, key, now_s, last->seq, last->seq, last->hash,
                           last->prev, a, &p);
        p_str(&p, pem);
        p_int(&p, (int64_t)d.head);
        p_hash(&p, d.head_hash);
    }
    if (err == POSGATE_OK) {
        const struct step st[] = {{S_APPEND, NULL, &p, PGRES_TUPLES_OK, &r}};

        err = pipeline(db, st, 1, res); /* one statement: its own transaction */
    }
    if (err == POSGATE_OK && !PQgetisnull(r, 0, 1)) {
        res->stored = (size_t)hpg_col_i(r, 0, 0);
        res->acked_seq = (uint64_t)hpg_col_i(r, 0, 1);
        res->held_seq = b->ev[b->n - 1].seq;
        res->repeated_key = hpg_col_i(r, 0, 2) > 1;
        *done = true;
        __atomic_fetch_add(&keys->appended, 1, __ATOMIC_RELAXED);
    } else {
        /* not taken, or failed: judged in full, which meets any failure of the server again */
        *res = before;
        err = POSGATE_OK;
    }
    PQclear(r);
    for (int i = 0; i < A_N; i++) {
        buf_free(&a[i]);
    }
    plat_free(keep);
    return err;
}

/* Judges the batch (hub_store.h, hub_judge_*) and writes what it did: OK (stored and
 * committed), BADHASH (the break recorded, for the caller to commit), anything else to roll
 * back. */
static enum posgate_err
ingest_locked(struct pg *db, struct hpg_keys *keys, const struct hub_batch *b, const char *key,
              int64_t now_s, struct hub_ingest *res)
{
    struct device d = {0};
    struct held held = {NULL, 0, &d};
    struct params p = {0};
    struct hub_break k;
    bool follows;
    enum posgate_err err = lock_device(db, b, &d, res);
    uint64_t lo, hi;

    if (err == POSGATE_OK) {
        res->acked_seq = d.acked;
        res->held_seq = d.head;
        err = hub_judge_signed(PQgetvalue(d.r, 0, 0), b, res);
    }
    if (err == POSGATE_OK) {
        keys_put(keys, b->device_id, PQgetvalue(d.r, 0, 0));
    }
    if (err != POSGATE_OK) {
        goto out;
    }
    lo = b->n > 0 ? b->ev[0].seq : b->head_seq;
    hi = b->n > 0 ? b->ev[b->n - 1].seq : b->head_seq;
    follows = b->n > 0 && lo == d.head + 1;
    if (!follows) {
        p_str(&p, b->device_id);
        p_int(&p, (int64_t)(lo > 0 ? lo - 1 : 0));
        p_int(&p, (int64_t)(hi + 1));
        {
            const struct step st[] = {{S_HELD, NULL, &p, PGRES_TUPLES_OK, &held.r}};

            err = pipeline(db, st, 1, res);
        }
        if (err != POSGATE_OK) {
            goto out;
        }
        held.n = PQntuples(held.r);
    }
    /* the lookup answers from held: it cannot fail */
    if (hub_judge_chain(b, held_cb, &held, &k, res) > 0) {
        err = record_break(db, b->device_id, &k, now_s, res);
        if (err == POSGATE_OK) {
            err = note_batch(db, b, key, 0, "chain_broken", now_s, res);
        }
        if (err == POSGATE_OK) {
            err = POSGATE_ERR_BADHASH; /* committed by the caller: the break is recorded */
        }
        goto out;
    }
    if (hub_judge_gap(b, res, d.anchor, held_cb, &held) > 0) {
        err = note_gap(db, b, now_s, res);
    }
    if (err == POSGATE_OK) {
        err = store(db, b, key, &d, &held, follows, now_s, res);
    }
out:
    PQclear(held.r);
    PQclear(d.r);
    return err;
}

/* A lane free now, else one in turn to wait for; locked. */
static struct pg *
take_lane(struct pg *db)
{
    unsigned k;

    for (unsigned i = 0; i < db->n_lanes; i++) {
        if (pthread_mutex_trylock(&db->lanes[i].mu) == 0) {
            return &db->lanes[i];
        }
    }
    k = __atomic_fetch_add(&db->next_lane, 1, __ATOMIC_RELAXED) % db->n_lanes;
    pthread_mutex_lock(&db->lanes[k].mu);
    return &db->lanes[k];
}

/* The lane's connection, made on its first batch (RETRY when the server cannot be reached:
 * the uploader sends the batch again later). */
static enum posgate_err
connect_lane(struct pg *db, struct pg *lane, struct hub_ingest *res)
{
    if (lane->c != NULL) {
        hpg_reconnect(lane);
        return POSGATE_OK;
    }
    lane->c = PQconnectdb(db->uri);
    if (lane->c == NULL || PQstatus(lane->c) != CONNECTION_OK) {
        /* the URI itself is not repeated: it may carry a password */
        snprintf(res->error, sizeof(res->error), "cannot connect to PostgreSQL: %s",
                 lane->c != NULL ? PQerrorMessage(lane->c) : "out of memory");
        PQfinish(lane->c);
        lane->c = NULL;
        return POSGATE_ERR_RETRY;
    }
    PQclear(PQexec(lane->c, "SET client_min_messages = warning"));
    return POSGATE_OK;
}

enum posgate_err
hpg_ingest(void *impl, const struct hub_batch *b, const char *key, int64_t now_s,
           struct hub_ingest *res)
{
    struct pg *db = take_lane(impl);
    enum posgate_err err = connect_lane(impl, db, res);
    bool done = false;

    if (err == POSGATE_OK) {
        err = hpg_ensure_partition(db, now_s, res->error, sizeof(res->error));
    }
    if (err == POSGATE_OK) {
        err = prepare_all(db, res);
    }
    if (err == POSGATE_OK) {
        keys_load(db, ((struct pg *)impl)->keys);
        err = ingest_append(db, ((struct pg *)impl)->keys, b, key, now_s, res, &done);
    }
    if (err == POSGATE_OK && !done) {
        __atomic_fetch_add(&((struct pg *)impl)->keys->judged, 1, __ATOMIC_RELAXED);
        err = ingest_locked(db, ((struct pg *)impl)->keys, b, key, now_s, res);
    }
    if (err == POSGATE_ERR_BADHASH) {
        enum posgate_err c = hpg_cmd(db, "COMMIT", NULL, res->error, sizeof(res->error));

        err = c != POSGATE_OK ? c : err;
    } else if (err != POSGATE_OK && db->c != NULL &&
               PQtransactionStatus(db->c) != PQTRANS_IDLE) {
        PQclear(PQexec(db->c, "ROLLBACK"));
    }
    pthread_mutex_unlock(&db->mu);
    return err;
}
