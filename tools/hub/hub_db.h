/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The collector's store (posgate-hub --db, docs/collector.md): enrolled devices, every audit
 * event a device uploaded, stored once per (device_id, seq), and what went wrong, kept in
 * tables rather than hidden: gaps (seqs the collector never received) and chain breaks (an
 * event whose text does not hash to what the next event or the signed head names, or that
 * differs from the event already held at its seq). A batch is judged in one write transaction:
 * the device must be enrolled, the signature over the head must verify with its key, the head
 * must cover every event of the batch (else it is refused and nothing recorded: only what the
 * device signed is held against it), the chain must link onto the events already held; then new
 * events are inserted, known ones are compared and skipped. SQLite in WAL mode with
 * synchronous=FULL: an ack is sent only for events on disk.
 *
 * Two stores behind this API (hub_store.h): a SQLite file, schema below, and PostgreSQL (a
 * libpq URI), the same tables versioned by schema_version and events partitioned by month
 * (drawn in hub_db_pg.c).
 *
 * SQLite schema (PRAGMA user_version 3; 2 added anchors, 3 events.decision_id and lookups):
 *   +-------------------------------------------------------------------------------------+
 *   | devices(device_id TEXT PK, pub_pem TEXT, enrolled_at INT, chain_ok INT (0/1),        |
 *   |         broken_at INT|NULL (lowest seq of a break))                                   |
 *   | events(device_id, seq, hash BLOB(32), prev_hash BLOB(32), kind TEXT, decision TEXT   |
 *   |        (allow|deny|refer|summary), count INT (ALLOWs a summary stands for, else 1),  |
 *   |        json TEXT (canonical event), received_at INT, decision_id TEXT|NULL (a        |
 *   |        decision's top-level "id", 32 lowercase hex; NULL for summaries),             |
 *   |        PK(device_id, seq));  INDEX events_decision_id(decision_id) WHERE NOT NULL    |
 *   | gaps(device_id, from_seq, to_seq, detected_at, closed_at INT|NULL, PK(dev,from,to))  |
 *   | chain_breaks(device_id, seq, kind (prev|head|conflict|hole|origin), detail TEXT,     |
 *   |        event_json TEXT|NULL, first_seen, last_seen, times, PK(device_id, seq, kind)) |
 *   | batches(device_id, idempotency_key, first_seq, last_seq, n_events, stored, status,   |
 *   |        received_at, times, PK(device_id, idempotency_key))                           |
 *   | anchors(device_id PK, seq, hash BLOB(32), prev_hash BLOB(32), pruned_at INT)         |
 *   |        (the newest event prune deleted, per device: hub_store.h)                    |
 *   | device_status(device_id TEXT PK, reported_at_us INT, received_at INT, report TEXT)   |
 *   |        the latest status report of a device (the newest by reported_at_us)          |
 *   | device_reports(device_id, reported_at_us, received_at, report,                       |
 *   |        PK(device_id, reported_at_us))  every status report received (the history)    |
 *   | lookups(decision_id TEXT, looked_up_at INT, service TEXT, lists TEXT (a JSON array  |
 *   |        of the list ids its reasons cite), via TEXT (cli|http))  one row per contest  |
 *   |        answered (hub_db_lookup); INDEX lookups_at(looked_up_at)                     |
 *   +-------------------------------------------------------------------------------------+
 * Times are wall seconds. A break between seq-1 and seq is recorded at seq.
 */
#ifndef POSGATE_HUB_DB_H
#define POSGATE_HUB_DB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "device_key.h"
#include "hub_batch.h"
#include "posgate_err.h"

struct hub_db;

/* What one batch did. acked_seq is the highest seq up to which the collector holds every event
 * of the device (0 when it holds none from 1). */
struct hub_ingest {
    uint64_t acked_seq;
    uint64_t held_seq;         /* highest seq held */
    size_t stored;             /* events inserted by this batch */
    size_t duplicates;         /* events of the batch already held, identical */
    bool repeated_key;         /* the idempotency key was seen before for this device */
    uint64_t gap_from, gap_to; /* a gap this batch revealed (0, 0: none) */
    uint64_t broken_at;        /* the seq of the break (BADHASH) or of the event nearest the
                                  head that the signature does not cover (REJECTED) */
    char device_id[DEVICE_ID_HEX_LEN + 1];
    char error[512]; /* what was expected and found, for any result but OK */
};

struct hub_device_state {
    char device_id[DEVICE_ID_HEX_LEN + 1];
    int64_t enrolled_at;
    uint64_t last_seq; /* highest contiguous from 1 */
    uint64_t held_seq;
    uint64_t events;
    uint64_t gaps; /* open holes in 1..held_seq */
    bool chain_ok;
    uint64_t broken_at; /* 0 when chain_ok */
    uint64_t breaks;    /* rows in chain_breaks */
};

/* A query over the stored events (posgate-hub decision / decisions): the store hands back
 * the decision event whose decision_id column is decision_id (through its index), or the
 * events whose canonical text contains listing_pattern (NULL: not filtered), and the caller
 * checks each one it parses. Canonical text sorts keys, so a reason citing a listing holds
 * '"list":"L","listing_id":"X"' (hub_query.c builds it). */
struct hub_event_filter {
    const char *decision_id;     /* 32 lowercase hex; NULL: any */
    const char *listing_pattern; /* and only DENY and REFER events */
    bool summaries;              /* allow_summary events too (else decision events only) */
};

/* What a prune deleted: events, the devices whose anchor moved, PostgreSQL partitions dropped
 * whole. */
struct hub_prune {
    uint64_t events, anchors, partitions;
};

/* path is a SQLite file (created when missing) or a libpq URI, postgresql://... or
 * postgres://... (hub_db_is_uri): the PostgreSQL store, whose schema is migrated to the
 * current version at open (docs/collector.md). */
POSGATE_WUR enum posgate_err hub_db_open(const char *path, struct hub_db **out, char *errmsg,
                                         size_t errcap);
/* For the commands that only read (stats, devices, decisions, report): on PostgreSQL nothing is
 * migrated and the session's transactions are read-only, so a hot standby answers them; STATE,
 * saying what to do, when the database's schema is not the one this posgate-hub writes (a hub
 * opened on the primary migrates it). SQLite opens as hub_db_open does. */
POSGATE_WUR enum posgate_err hub_db_open_read(const char *path, struct hub_db **out,
                                              char *errmsg, size_t errcap);
/* NULL is a no-op. */
void hub_db_close(struct hub_db *db);
bool hub_db_is_uri(const char *path);
/* "sqlite" or "postgresql". */
const char *hub_db_kind(const struct hub_db *db);
/* The batches this handle ingested in one statement (PostgreSQL: hub_db_pg_ingest.c) and the
 * ones it judged in full (0 and 0 on SQLite, which keeps no count). */
void hub_db_ingest_counts(struct hub_db *db, uint64_t *one_statement, uint64_t *judged);
/* PostgreSQL: the server connections the ingest uses at once (1..16, default 4), set before
 * the first batch; INVALID out of range, UNSUPPORTED on SQLite (one writer). */
POSGATE_WUR enum posgate_err hub_db_set_connections(struct hub_db *db, unsigned n);
/* Copies every table of src (hub_store.h, enum hub_table: devices, events with their decision
 * ids, gaps, chain breaks, batch records, chain anchors, status reports, lookups) into dst, a
 * PostgreSQL store that holds no device yet, in one transaction of dst: STATE when dst is not
 * PostgreSQL or already holds devices; *n_events (may be NULL) gets the events copied. */
POSGATE_WUR enum posgate_err hub_db_migrate(struct hub_db *src, struct hub_db *dst,
                                            uint64_t *n_events, char *errmsg, size_t errcap);

/* Enrols the device whose public key PEM (the bytes of its device.pub) is pem; id gets its
 * device id (device_id_from_pub_pem). INVALID when pem is not an ECDSA P-256 public key;
 * STATE when that id is enrolled with a different key. Enrolling the same key again is OK and
 * sets *added (may be NULL) to false. */
POSGATE_WUR enum posgate_err hub_db_enroll(struct hub_db *db, const char *pem, size_t len,
                                           int64_t now_s, char id[DEVICE_ID_HEX_LEN + 1],
                                           bool *added, char *errmsg, size_t errcap);

/* Judges and stores one parsed batch. idem_header (may be NULL) is the Idempotency-Key header;
 * when the batch carries a key too they must agree. Returns
 *   OK        stored (possibly nothing new: a duplicate or overlapping batch is acknowledged)
 *   NOTFOUND  device not enrolled            BADSIG   signature over the head does not verify
 *   REJECTED  an event the signed head does not cover (hub_batch_covered): nothing recorded,
 *             the device's state unchanged (a captured batch edited by anyone proves nothing)
 *   BADHASH   a chain break or conflict that the device signed (recorded; nothing of the
 *             batch stored)
 *   INVALID   header and field keys differ   RETRY    the database is busy
 *   IO        the database failed
 * and fills *res (acked_seq is filled whenever the device is known). */
POSGATE_WUR enum posgate_err hub_db_ingest(struct hub_db *db, const struct hub_batch *b,
                                           const char *idem_header, int64_t now_s,
                                           struct hub_ingest *res);
/* hub_batch_parse + hub_db_ingest; PARSE / TOOBIG from the parser. */
POSGATE_WUR enum posgate_err hub_db_ingest_json(struct hub_db *db, const void *json, size_t len,
                                                const char *idem_header, int64_t now_s,
                                                struct hub_ingest *res);

POSGATE_WUR enum posgate_err hub_db_device(struct hub_db *db, const char *device_id,
                                           struct hub_device_state *out);
/* The stats document of `posgate-hub stats --json` (docs/collector.md), appended to out. */
POSGATE_WUR enum posgate_err hub_db_stats_json(struct hub_db *db, struct buf *out);
/* The same figures as text, one line per device. */
POSGATE_WUR enum posgate_err hub_db_stats_text(struct hub_db *db, struct buf *out);

/* posgate-hub decision ID: the one decision event whose id is decision_id, as the contest
 * answer document (docs/collector.md) appended to out, JSON or text. feed_dir (may be NULL) is
 * the feed the hub serves: its config/feed.json gives each reason's authority and legal basis;
 * without it the answer holds the ids only and says so. NOTFOUND when no event has that id. */
POSGATE_WUR enum posgate_err hub_db_decision(struct hub_db *db, const char *decision_id,
                                             const char *feed_dir, bool json, struct buf *out);
/* posgate-hub decision ID and GET /v1/decisions/{id}: hub_db_decision, and the lookup recorded
 * (the lookups table: the decision's id, now_s, its service and the lists its reasons cite, via
 * "cli" or "http"; never who asked) once the decision is found and before anything is
 * answered: a lookup that cannot be recorded is not answered (the store's error, RETRY when
 * busy), so the transparency report counts every contest answered. */
POSGATE_WUR enum posgate_err hub_db_lookup(struct hub_db *db, const char *decision_id,
                                           const char *feed_dir, bool json, const char *via,
                                           int64_t now_s, struct buf *out);
/* posgate-hub decisions --listing LIST/LISTING_ID [--since T]: every DENY and REFER that cited
 * the listing, oldest first; *n (may be NULL) gets how many. */
POSGATE_WUR enum posgate_err hub_db_decisions(struct hub_db *db, const char *list,
                                              const char *listing_id, const char *since,
                                              bool json, struct buf *out, size_t *n);
/* posgate-hub prune: deletes the events received before before_s (hub_store.h, anchors). */
POSGATE_WUR enum posgate_err hub_db_prune(struct hub_db *db, int64_t before_s, int64_t now_s,
                                          struct hub_prune *res, char *errmsg, size_t errcap);
/* Device status reports (docs/collector.md, "Device status"; the envelope is drawn in
 * agent/core/device_report.h). */
struct hub_report_result {
    char device_id[DEVICE_ID_HEX_LEN + 1];
    int64_t reported_at_us;
    bool latest;     /* it is now the device's latest (false: an older or repeated report) */
    char error[512]; /* for any result but OK */
};
/* Parses the envelope, verifies its signature with the enrolled key and keeps it: every
 * report in the history, the newest by reported_at_us as the latest, so a replayed older
 * report never overwrites a newer one. PARSE (malformed), NOTFOUND (not enrolled), BADSIG. */
POSGATE_WUR enum posgate_err hub_db_report(struct hub_db *db, const void *json, size_t len,
                                           int64_t now_s, struct hub_report_result *res);
/* The latest report of every device that sent one, ordered by device id. */
typedef enum posgate_err (*hub_report_fn)(void *ctx, const char *device_id, const char *report,
                                          size_t len, int64_t reported_at_us, int64_t received_at);
POSGATE_WUR enum posgate_err hub_db_reports(struct hub_db *db, hub_report_fn fn, void *ctx);

#endif
