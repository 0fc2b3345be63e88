/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What a collector store implements behind hub_db.h (private to tools/hub_db*.c): SQLite in
 * hub_db_sqlite.c (a file, the embedded default), PostgreSQL in hub_db_pg.c (a libpq URI).
 * hub_db.c owns what does not depend on the store: choosing it from the --db argument, the
 * checks on a batch before the store is touched, judging the batch against its key and the
 * chain against what is held (the hub_judge_* steps below, given a lookup of held events), the
 * rows both stores read the same way, and the stats documents, written from the rows the store
 * reads. A store owns its SQL, its transactions and its locking: ingest must judge and write
 * one device's batch so that no other ingest of that device interleaves (SQLite: one writer;
 * PostgreSQL: the device's row locked FOR UPDATE).
 *
 * Chain anchors (anchors(device_id PK, seq, hash, prev_hash, pruned_at)): prune keeps, for each
 * device, the seq, hash and prev_hash of the newest event it deleted. The held-event lookup of
 * both stores answers from the anchor when the events table no longer holds that seq, so a
 * batch continuing after a prune links onto it exactly as onto the event, and a forged
 * continuation is still a break. Events at or below a device's anchor are not stored again
 * (they cannot be compared with what was deleted, except the anchor itself).
 *
 * Copying between stores (migrate-db) goes table by table in this column order:
 *   devices       t0 device_id, t1 pub_pem; i0 enrolled_at, i1 last_seq, i2 chain_ok (0/1),
 *                 i3 broken_at (-1: NULL)
 *   events        t0 device_id, t1 kind, t2 decision, t3 json, t4 decision_id (NULL);
 *                 h0 hash, h1 prev_hash; i0 seq, i1 count, i2 received_at
 *   gaps          t0 device_id; i0 from_seq, i1 to_seq, i2 detected_at, i3 closed_at (-1: NULL)
 *   chain_breaks  t0 device_id, t1 kind, t2 detail, t3 event_json (NULL); i0 seq,
 *                 i1 first_seen, i2 last_seen, i3 times
 *   batches       t0 device_id, t1 idempotency_key, t2 status; i0 first_seq, i1 last_seq,
 *                 i2 n_events, i3 stored, i4 received_at, i5 times
 *   anchors       t0 device_id; h0 hash, h1 prev_hash; i0 seq, i1 pruned_at
 *   device_status, device_reports
 *                 t0 device_id, t1 report; i0 reported_at_us, i1 received_at
 *   lookups       t0 decision_id, t1 service, t2 lists, t3 via; i0 looked_up_at
 */
#ifndef POSGATE_HUB_STORE_H
#define POSGATE_HUB_STORE_H

#include "hub_db.h"

struct crypto_pubkey;

enum hub_table {
    HUB_T_DEVICES,
    HUB_T_EVENTS,
    HUB_T_GAPS,
    HUB_T_BREAKS,
    HUB_T_BATCHES,
    HUB_T_ANCHORS, /* the chain anchors prune keeps, so later uploads still verify */
    HUB_T_STATUS,  /* each device's latest status report */
    HUB_T_REPORTS, /* every status report received */
    HUB_T_LOOKUPS, /* the contests looked up (hub_db_lookup), for the transparency report */
    HUB_T_N
};

struct hub_row {
    const char *t[5];
    size_t tlen[5];
    const uint8_t *h[2]; /* AUDIT_HASH_LEN bytes each */
    int64_t i[6];
};

/* One row handed to a callback: the columns each reader or table names, in that order. */
typedef enum posgate_err (*hub_row_fn)(void *ctx, const struct hub_row *row);

struct hub_totals {
    uint64_t events, allow, deny, refer, error, summary, folded, batches, repeats;
    bool folded_over; /* the ALLOWs of all summaries pass 2^64: folded is UINT64_MAX */
};

struct hub_store_ops {
    const char *name;
    void (*close)(void *impl);
    /* Inserts the device (*added true) unless its id is enrolled; an enrolled id with another
     * PEM is STATE, with the same PEM OK (*added false). pem was checked by hub_db.c. */
    enum posgate_err (*enroll)(void *impl, const char *id, const char *pem, size_t len,
                               int64_t now_s, bool *added, char *errmsg, size_t errcap);
    /* hub_db_ingest after the idempotency key checks; key may be NULL. */
    enum posgate_err (*ingest)(void *impl, const struct hub_batch *b, const char *key,
                               int64_t now_s, struct hub_ingest *res);
    /* One consistent snapshot for the readers below, until read_end. */
    enum posgate_err (*read_begin)(void *impl);
    void (*read_end)(void *impl);
    enum posgate_err (*totals)(void *impl, struct hub_totals *t);
    /* Every enrolled device, ordered by id: row.t[0] */
    enum posgate_err (*devices)(void *impl, hub_row_fn fn, void *ctx);
    enum posgate_err (*device_state)(void *impl, const char *id, struct hub_device_state *out);
    /* Open holes: i0 from, i1 to */
    enum posgate_err (*gap_ranges)(void *impl, const char *id, hub_row_fn fn, void *ctx);
    /* Gaps recorded: i0 from, i1 to, i2 detected_at, i3 closed (0/1) */
    enum posgate_err (*gaps_detected)(void *impl, const char *id, hub_row_fn fn, void *ctx);
    /* Chain breaks: i0 seq, i1 times, t0 kind */
    enum posgate_err (*breaks)(void *impl, const char *id, hub_row_fn fn, void *ctx);
    /* migrate-db: every row of a table in the order above; and one row written. The copy runs
     * in the destination's own transaction (copy_begin .. copy_end(commit)). */
    enum posgate_err (*each_row)(void *impl, enum hub_table t, hub_row_fn fn, void *ctx);
    enum posgate_err (*copy_begin)(void *impl, char *errmsg, size_t errcap);
    enum posgate_err (*put_row)(void *impl, enum hub_table t, const struct hub_row *row,
                                char *errmsg, size_t errcap);
    enum posgate_err (*copy_end)(void *impl, bool commit, char *errmsg, size_t errcap);
    /* Events that match f (inside read_begin .. read_end), ordered by their time, device and
     * seq: t0 device_id, t1 json (the canonical event); i0 seq, i1 received_at. */
    enum posgate_err (*find_events)(void *impl, const struct hub_event_filter *f, hub_row_fn fn,
                                    void *ctx);
    /* Deletes the events received before before_s in one write transaction, first recording
     * per device the newest of them (highest seq) as its anchor in anchors, unless the anchor
     * held is newer; res gets what went. */
    enum posgate_err (*prune)(void *impl, int64_t before_s, int64_t now_s, struct hub_prune *res,
                              char *errmsg, size_t errcap);
    /* Device status reports (hub_db_report). The enrolled PEM of id into out, between
     * read_begin and read_end: NOTFOUND when the device is not enrolled. */
    enum posgate_err (*device_pem)(void *impl, const char *id, struct buf *out);
    /* In its own transaction: adds a verified report to device_reports (one already held for
     * that reported_at_us changes nothing) and to device_status when it is newer than the one
     * there; *latest says whether it is now the latest. */
    enum posgate_err (*report_put)(void *impl, const char *id, int64_t reported_at_us,
                                   int64_t now_s, const char *report, size_t len, bool *latest);
    /* The latest report of every device, ordered by id, between read_begin and read_end:
     * t0 device_id, t1 report; i0 reported_at_us, i1 received_at */
    enum posgate_err (*reports)(void *impl, hub_row_fn fn, void *ctx);
    /* The fleet dashboard (hub_fleet.c), between read_begin and read_end; rows streamed, not
     * held. The status reports received at or after since_s, of the device id (NULL: of every
     * device), ordered by device and reported_at_us; with an id, limit > 0 keeps its newest
     * limit only: t0 device_id, t1 report; i0 reported_at_us, i1 received_at */
    enum posgate_err (*report_history)(void *impl, const char *id, int64_t since_s,
                                       int64_t limit, hub_row_fn fn, void *ctx);
    /* Every event (decisions and summaries) received at or after since_s, in no order:
     * t0 device_id, t1 json (the canonical event); i0 seq, i1 received_at */
    enum posgate_err (*events_since)(void *impl, int64_t since_s, hub_row_fn fn, void *ctx);
    /* A contest looked up (hub_db_lookup), in its own write transaction: the decision's id,
     * the time (the collector's clock), its service, the lists its reasons cite (a JSON array
     * of strings) and how it was asked ("cli" or "http"). The transparency report reads them
     * back through each_row(HUB_T_LOOKUPS): contests are few, next to the events. */
    enum posgate_err (*lookup_put)(void *impl, const char *decision_id, int64_t at_s,
                                   const char *service, const char *lists, const char *via,
                                   char *errmsg, size_t errcap);
    /* Batches ingested since the store opened: stored in one statement from the device's head
     * as this process knew it, and judged in full (NULL: the store judges every batch in full). */
    void (*ingest_counts)(void *impl, uint64_t *one_statement, uint64_t *judged);
    /* The connections the ingest judges batches on at once (NULL: the store has one writer);
     * before the first batch. INVALID out of the store's range. */
    enum posgate_err (*set_connections)(void *impl, unsigned n);
};

/* The store behind db, for the readers of hub_query.c. */
const struct hub_store_ops *hub_db_store(struct hub_db *db, void **impl);

/* A held event for the judge: 1 found (hash and prev filled), 0 not held, or an error < 0. */
typedef int (*hub_held_fn)(void *ctx, uint64_t seq, uint8_t hash[AUDIT_HASH_LEN],
                           uint8_t prev[AUDIT_HASH_LEN]);

struct hub_break {
    uint64_t seq; /* 0: none */
    const char *kind;
    char detail[400];
    const char *event_json; /* borrowed from the batch; may be NULL */
};

/* Judging a batch inside a store's ingest, in this order, each filling res as its answer:
 *   hub_judge_unenrolled  no device row: NOTFOUND, and how to enrol it
 *   hub_judge_signed      the enrolled key (pem) must verify the signature over the head
 *                         (BADSIG), and the head must cover every event (REJECTED, nothing
 *                         recorded: hub_batch_covered)
 *   hub_judge_chain       every link the batch makes with what is held, and seqs it skips: 1
 *                         with the break of lowest seq in *k (res->broken_at and res->error
 *                         say it, no duplicates counted) for the store to record and answer
 *                         BADHASH, 0 with res->duplicates the events held identical, or the
 *                         lookup's error (< 0)
 *   hub_judge_gap         1 when the batch stores something new and the seq before its first
 *                         event is not held and not below the device's anchor (pruned once
 *                         held): a gap for the store to record (res->gap_from, gap_to); 0 not,
 *                         or the lookup's error (< 0) */
POSGATE_WUR enum posgate_err hub_judge_unenrolled(const struct hub_batch *b,
                                                  struct hub_ingest *res);
POSGATE_WUR enum posgate_err hub_judge_signed(const char *pem, const struct hub_batch *b,
                                              struct hub_ingest *res);
/* The same with the key already read (NULL: BADSIG). */
POSGATE_WUR enum posgate_err hub_judge_signed_key(const struct crypto_pubkey *pk,
                                                  const struct hub_batch *b,
                                                  struct hub_ingest *res);
int hub_judge_chain(const struct hub_batch *b, hub_held_fn held, void *ctx, struct hub_break *k,
                    struct hub_ingest *res);
int hub_judge_gap(const struct hub_batch *b, const struct hub_ingest *res, uint64_t anchor,
                  hub_held_fn held, void *ctx);

/* Rows both stores read the same way, for their own queries: */
/* t0 a PEM, into the struct buf ctx (replacing what it held) */
enum posgate_err hub_row_pem(void *ctx, const struct hub_row *r);
/* t0 a decision and i0 its events, into the struct hub_totals ctx (events sums them all) */
enum posgate_err hub_row_decisions(void *ctx, const struct hub_row *r);
/* i0 batch records and i1 the repeats of their keys, into the struct hub_totals ctx */
enum posgate_err hub_row_batches(void *ctx, const struct hub_row *r);

POSGATE_WUR enum posgate_err hub_sqlite_open(const char *path, void **impl,
                                             const struct hub_store_ops **ops, char *errmsg,
                                             size_t errcap);
/* read_only: no migration, and every transaction of the session read-only (a standby takes
 * it); STATE when the schema is not the one this hub writes. */
POSGATE_WUR enum posgate_err hub_pg_open(const char *uri, bool read_only, void **impl,
                                         const struct hub_store_ops **ops, char *errmsg,
                                         size_t errcap);

#endif
