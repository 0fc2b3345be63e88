/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The audit queue: every decision as a hash-chained event (audit_event.h) in its own SQLite file
 * DIR/audit.db (WAL), apart from the list store so that a large import never blocks it. One
 * writer thread per open queue owns seq assignment and the chain head: it reads the head inside
 * its write transaction (so several processes — the daemon and a CLI check — still append one
 * contiguous chain), renders, hashes and inserts a group of events, and commits with
 * synchronous=FULL. Callers enqueue in memory; a DENY or REFER, and every event in `strict`
 * mode, waits until its commit; a `batched` ALLOW returns at once and is committed within
 * batch_ms or batch_max events (group commit). A full queue (bytes of stored events past
 * max_bytes, after pruning acknowledged events) keeps every DENY and REFER and folds ALLOWs
 * into counted `allow_summary` events that take their own seq. An uploader reads batches signed
 * by the device key (audit_batch_json) and records what the collector holds (audit_ack).
 *
 * A full disk: beside the queue, DIR/audit.db.reserve holds AUDIT_RESERVE_BYTES set aside
 * (posix_fallocate) while there is room. When the file system has less than 1 MiB free, or a
 * commit fails, the reserve is removed and the commit tried again: the queue, and the list
 * store's -shm file, go on with the space it gave back, so every DENY and REFER is still
 * recorded before it is answered, after a restart too (audit_reserve_prepare before opening
 * the store). Once AUDIT_RESERVE_BYTES + 2 MiB are free again the reserve is made anew. While
 * it is missing the queue reports disk_full (audit_stats).
 *
 * Schema (PRAGMA user_version 1; pages of 16 KiB in a file made since they were, 4 KiB before):
 *   +----------------------------------------------------------------------------------+
 *   | events(seq INTEGER PRIMARY KEY, kind TEXT, decision TEXT, time_us INTEGER,        |
 *   |        body TEXT (canonical JSON, hashed), hash BLOB (32, SHA-256(prev || body)))  |
 *   | meta(k TEXT PRIMARY KEY, v INTEGER, b BLOB):                                       |
 *   |   'anchor' v = seq of the last pruned event (0), b = its hash (32 zero bytes)       |
 *   |   'acked'  v = highest seq the collector acknowledged                               |
 *   |   'bytes'  v = sum of length(body) over the events up to seq b (b NULL: all);       |
 *   |            written when b is 1024 events behind the head or by a prune, so a        |
 *   |            reader adds the text of the events after b (audit_bytes_read)            |
 *   |   'bytes_v' v = 'bytes' v as written with b: when they differ, a writer that knows  |
 *   |            no b (an older binary) moved v, and a reader counts every event's text   |
 *   +----------------------------------------------------------------------------------+
 */
#ifndef POSGATE_AUDIT_H
#define POSGATE_AUDIT_H

#include <stddef.h>
#include <stdint.h>

#include "audit_event.h"
#include "buf.h"
#include "device_key.h"
#include "posgate_err.h"

enum audit_durability { AUDIT_STRICT, AUDIT_BATCHED };

struct audit_options {
    enum audit_durability durability; /* default AUDIT_STRICT */
    uint64_t max_bytes;               /* stored event text; 0 = unbounded (default 256 MiB) */
    uint32_t retention_days;          /* acknowledged events kept this long (default 30) */
    uint32_t batch_ms;                /* group commit interval (default 50) */
    uint32_t batch_max;               /* group commit size (default 256) */
};

#define AUDIT_READONLY       0x1u
#define AUDIT_RESERVE_BYTES  (8ull << 20)  /* space set aside for a full disk */
#define AUDIT_RESERVE_SUFFIX ".reserve"     /* DIR/audit.db.reserve */
#define AUDIT_PATH_MAX       4096 /* no writer thread, no key needed: list, export, verify */

struct audit_queue;

struct audit_stats {
    uint64_t head_seq;  /* highest seq stored (or the anchor when none is left) */
    uint64_t first_seq; /* lowest seq stored, 0 when none */
    uint64_t acked_seq;
    int64_t oldest_unacked_us; /* time_us (a summary's first_time_us) of event acked_seq + 1,
                                  the oldest the collector does not hold; 0 when none */
    uint64_t events;   /* rows stored */
    uint64_t bytes;    /* bytes of event text stored */
    uint64_t pending;  /* enqueued, not yet committed (this process) */
    uint64_t folded;   /* ALLOWs folded into summaries (this process) */
    uint64_t commits;  /* write transactions (this process) */
    uint64_t producer_commits; /* of them, batches of ALLOWs committed by the checking thread
                                  that filled them, several threads checking at once */
    uint64_t failures; /* failed write transactions (this process) */
    uint64_t reserve_bytes; /* size of the reserve file in place (0: released or read-only) */
    int disk_full; /* the reserve is missing or short: the disk filled and has not recovered */
};

struct audit_batch_info {
    size_t n_events;
    uint64_t first_seq, last_seq; /* 0 when no event */
    uint64_t head_seq;            /* the signed head */
};

void audit_options_default(struct audit_options *o);
POSGATE_WUR enum posgate_err audit_durability_parse(const char *s, enum audit_durability *out);

/* Opens (creates) path. key is borrowed and must outlive the queue (NULL only with
 * AUDIT_READONLY). opt NULL: defaults. */
POSGATE_WUR enum posgate_err audit_open(const char *path, struct device_key *key,
                                        const struct audit_options *opt, unsigned flags,
                                        struct audit_queue **out, char *errmsg, size_t errcap);
/* Commits everything enqueued, stops the writer; NULL is a no-op. */
void audit_close(struct audit_queue *q);
void audit_set_durability(struct audit_queue *q, enum audit_durability d);
void audit_set_limits(struct audit_queue *q, uint64_t max_bytes, uint32_t retention_days);

/* Gives back the reserve of the queue at path (its audit.db) when its file system has less
 * than 1 MiB free. For a process about to open other files of the data dir (the list store)
 * before the queue. */
void audit_reserve_prepare(const char *path);

/* Enqueues one decision (copied). Waits for the commit when e is a DENY or REFER or the queue
 * is strict; then *seq (may be NULL) is its seq (or that of the summary it was folded into) and
 * an error means the event is not durable. A batched ALLOW returns OK at once with *seq 0.
 * STATE on a read-only queue. */
POSGATE_WUR enum posgate_err audit_record(struct audit_queue *q, const struct audit_event *e,
                                          uint64_t *seq);
/* Waits until everything enqueued before the call is committed. */
POSGATE_WUR enum posgate_err audit_flush(struct audit_queue *q);

/* For the uploader: up to max events with seq > since_seq, as one JSON object
 *   {"device_id", "events":[canonical events...], "head":{"seq","hash"},
 *    "idempotency_key", "signature", "v":1}
 * where head is the last event of the batch (the chain head when there is none) and signature
 * is hex DER ECDSA by the device key over audit_head_message(device_id, head). The same events
 * give the same idempotency_key. out is reset first; info may be NULL. */
POSGATE_WUR enum posgate_err audit_batch_json(struct audit_queue *q, uint64_t since_seq, size_t max,
                                              struct buf *out, struct audit_batch_info *info);
/* Records that the collector holds every event up to seq (never goes back; INVALID past the
 * stored head), then prunes. */
POSGATE_WUR enum posgate_err audit_ack(struct audit_queue *q, uint64_t seq);
/* Deletes acknowledged events older than the retention period (now_s: wall seconds). */
POSGATE_WUR enum posgate_err audit_prune(struct audit_queue *q, int64_t now_s);
POSGATE_WUR enum posgate_err audit_stats(struct audit_queue *q, struct audit_stats *out);

/* Calls fn for every stored event with seq > since_seq in order; fn returns nonzero to stop. */
typedef int (*audit_each_fn)(void *ctx, uint64_t seq, const char *body, size_t len,
                             const uint8_t hash[AUDIT_HASH_LEN]);
POSGATE_WUR enum posgate_err audit_each(struct audit_queue *q, uint64_t since_seq, audit_each_fn fn,
                                        void *ctx);
/* Recomputes the chain from the anchor: every seq present and contiguous, every stored hash
 * equal to SHA-256(prev || body), every body canonical with its own seq and prev. CORRUPT with
 * the first break in errmsg. *n_events (may be NULL) counts the events checked. */
POSGATE_WUR enum posgate_err audit_verify(struct audit_queue *q, uint64_t *n_events, char *errmsg,
                                          size_t errcap);

#endif
