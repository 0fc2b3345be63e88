/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The audit event codec: what one decision leaves in the audit trail, its canonical JSON text
 * (the bytes that are hashed, stored and uploaded) and the hash chain over those texts. The
 * queue (audit.h) owns storage and seq assignment; this file owns the format (docs/audit.md).
 *
 * Chain: hash(n) = SHA-256( hash(n-1) || canonical(n) ), hash(0) = 32 zero bytes, where
 * canonical(n) is the event's canonical JSON (TUF canonical form: keys sorted by their bytes, no
 * whitespace, integers only) and already holds "seq": n and "prev": hex(hash(n-1)).
 *
 *   +-------------------------- a decision event (kind "decision") --------------------------+
 *   | at          RFC 3339  the service date the check was about (the sale is `time`)      |
 *   | data_age_s  int|null  oldest age of the lists that took part, seconds                  |
 *   | decision    "allow" | "deny" | "refer"  (what the customer was answered)              |
 *   | device_id   32 hex    first 16 bytes of SHA-256(device.pub)                           |
 *   | error       string    only when the terminal could not decide (then decision refer)    |
 *   | feed_version int      the TUF timestamp version of the installed feed (0: none)      |
 *   | id          32 hex    the decision_id returned to the caller                          |
 *   | kind        "decision"                                                                |
 *   | lists       [{[digest,] id, seq}]  the installed lists that took part (gate + service); |
 *   |                       digest only where the chain does not hold it yet (below)        |
 *   | lists_more  int       lists that took part beyond AUDIT_LISTS_MAX (only when > 0)     |
 *   | mono_us     int       monotonic clock, microseconds (orders events within one boot)    |
 *   | operator    string    the clerk or kiosk id ("" when none)                            |
 *   | override    {by, overridden_decision, reason[, refused]}  only with an override        |
 *   | prev        64 hex    hash of the previous event                                      |
 *   | reasons     [{effect, kind, list, listing_id, reason}]  what the engine found          |
 *   | seq         int       device seq, contiguous from 1                                   |
 *   | service     string    the dotted service                                              |
 *   | subjects    [32 hex]  keyed hashes of the identifiers (never identifiers in clear)     |
 *   | time        RFC 3339  wall clock, seconds;  time_us  int  wall clock, microseconds     |
 *   | v           2  (1: every list of "lists" held its digest)                             |
 *   +----------------------------------------------------------------------------------------+
 *   A list's digest is written once, not in every event: a list of "lists" holds "digest" when
 *   the queue has not written that list at that seq with that digest since it was opened (the
 *   first decision after an update, a restart or a failed commit). A list without "digest" was
 *   made against the digest of the latest earlier event in the chain that names the same list
 *   id and seq with one.
 *   +------------------------- a summary event (kind "allow_summary") -----------------------+
 *   | cause "queue_full" | "write_failed", count, device_id, first_time, first_time_us,      |
 *   | kind, last_time, last_time_us, prev, seq, services {name: count}, services_other, v (1) |
 *   +----------------------------------------------------------------------------------------+
 */
#ifndef POSGATE_AUDIT_EVENT_H
#define POSGATE_AUDIT_EVENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "device_key.h"
#include "posgate_err.h"

#define AUDIT_HASH_LEN      32
#define AUDIT_SUBJECTS_MAX  8
#define AUDIT_SUBJECT_LEN   16
#define AUDIT_REASONS_MAX   16
#define AUDIT_LISTS_MAX     32
#define AUDIT_ID_MAX        64
#define AUDIT_OPERATOR_MAX  128
#define AUDIT_OVERRIDE_MAX  512 /* override reason text */
#define AUDIT_ERROR_MAX     512
#define AUDIT_SERVICES_MAX  32            /* distinct services counted by one summary */
#define AUDIT_EVENT_MAX     (64u * 1024u) /* largest canonical event text */
#define AUDIT_EVENT_VERSION   2             /* a decision's "v" */
#define AUDIT_SUMMARY_VERSION 1             /* a summary's "v" */
#define AUDIT_DIGESTS_MAX     256           /* lists whose digest the queue remembers as written */

/* AUDIT_ERROR: the terminal could not decide (store unreadable, no feed, list key mismatch, an
 * audit write failure of its own); the caller was told REFER with the error. */
enum audit_decision { AUDIT_ALLOW = 0, AUDIT_DENY = 1, AUDIT_REFER = 3, AUDIT_ERROR = 5 };

struct audit_reason {
    char kind[16];  /* "match", "exemption", "stale", "clock_fault", "overflow" */
    char effect[8]; /* "allow", "deny", "refer" */
    char list[AUDIT_ID_MAX + 1];
    char listing_id[AUDIT_ID_MAX + 1];
    char reason[AUDIT_ID_MAX + 1];
};

struct audit_list {
    char id[AUDIT_ID_MAX + 1];
    uint64_t seq;
    char digest[65];
    bool digest_written; /* set by the queue's writer: the chain holds it already (no "digest") */
};

/* The lists (id, seq, digest) the queue's writer has written into the chain since it opened. */
struct audit_digests {
    size_t n;
    struct audit_list lists[AUDIT_DIGESTS_MAX];
};

/* One decision as the check hands it to the queue (seq, prev and device id come later). The
 * members an ALLOW fills come first and the large arrays it leaves empty last. The queue keeps
 * an event packed in its ring (audit_pack.h): only the parts in use. */
struct audit_event {
    int64_t at; /* the service date, seconds */
    int64_t time_us;
    int64_t mono_us;
    enum audit_decision decision;
    enum audit_decision overridden;
    size_t n_subjects;
    size_t n_reasons;
    int64_t feed_version;
    int64_t data_age_s; /* -1: none */
    size_t n_lists;
    size_t lists_more;
    bool has_override;
    bool override_refused;
    char id[33];
    char service[AUDIT_ID_MAX + 1];
    uint8_t subjects[AUDIT_SUBJECTS_MAX][AUDIT_SUBJECT_LEN];
    char operator_id[AUDIT_OPERATOR_MAX + 1];
    char error[AUDIT_ERROR_MAX]; /* "" when the terminal decided */
    struct audit_list lists[AUDIT_LISTS_MAX];
    struct audit_reason reasons[AUDIT_REASONS_MAX];
    char override_by[AUDIT_OPERATOR_MAX + 1];     /* read only with has_override */
    char override_reason[AUDIT_OVERRIDE_MAX + 1]; /* read only with has_override */
};

/* ALLOW events folded into one counted summary event. */
struct audit_summary {
    uint64_t count;
    int64_t first_us, last_us;
    size_t n_services;
    struct {
        char name[AUDIT_ID_MAX + 1];
        uint64_t n;
    } services[AUDIT_SERVICES_MAX];
    uint64_t services_other; /* ALLOWs of services past AUDIT_SERVICES_MAX distinct ones */
    const char *cause;       /* "queue_full" or "write_failed" */
};

/* What audit list / verify need from a stored event. */
struct audit_event_info {
    uint64_t seq;
    uint8_t prev[AUDIT_HASH_LEN];
    char kind[16];
    char decision[8];          /* "" for a summary */
    char id[AUDIT_ID_MAX + 1]; /* a decision's top-level "id" (its decision_id); "" when it has
                                  none, or none that fits */
    char device_id[DEVICE_ID_HEX_LEN + 1];
    char time[32];
    char service[AUDIT_ID_MAX + 1];
    char operator_id[AUDIT_OPERATOR_MAX + 1];
    char listings[256]; /* "list/listing_id ..." of the reasons, or "count N" (summary) */
    uint64_t count;     /* summary: ALLOWs folded; decision: 1 */
};

const char *audit_decision_name(enum audit_decision d); /* "allow", "deny", "refer", "error" */

/* Appends the canonical text of e as event seq after prev. TOOBIG past AUDIT_EVENT_MAX. */
POSGATE_WUR enum posgate_err audit_event_encode(const struct audit_event *e, const char *device_id,
                                                uint64_t seq, const uint8_t prev[AUDIT_HASH_LEN],
                                                struct buf *out);
POSGATE_WUR enum posgate_err audit_summary_encode(const struct audit_summary *s,
                                                  const char *device_id, uint64_t seq,
                                                  const uint8_t prev[AUDIT_HASH_LEN],
                                                  struct buf *out);
/* Marks each list of e whose digest d holds (digest_written), and adds the others to d: they
 * are written with e. d starts again when it is full. */
void audit_digests_mark(struct audit_digests *d, struct audit_event *e);
/* Counts one ALLOW event into s. */
void audit_summary_add(struct audit_summary *s, const struct audit_event *e);
/* Merges src into dst (dst keeps its cause). */
void audit_summary_merge(struct audit_summary *dst, const struct audit_summary *src);
/* hash = SHA-256(prev || text). */
void audit_chain_hash(const uint8_t prev[AUDIT_HASH_LEN], const void *text, size_t len,
                      uint8_t out[AUDIT_HASH_LEN]);
/* The same through a reusable stream (crypto_hash_stream_new_for(&h, true, false)), faster on
 * event-sized texts: the queue's writer and audit verify use it. */
struct crypto_hash_stream;
void audit_chain_hash_stream(struct crypto_hash_stream *h, const uint8_t prev[AUDIT_HASH_LEN],
                             const void *text, size_t len, uint8_t out[AUDIT_HASH_LEN]);
/* Parses a stored event text, checks that it is in canonical form, and fills *out. PARSE with
 * a message for anything else. */
POSGATE_WUR enum posgate_err audit_event_inspect(const void *text, size_t len,
                                                 struct audit_event_info *out, char *errmsg,
                                                 size_t errcap);
/* The same for an event parsed already (a collector's batch holds its events parsed, and puts
 * each in canonical form itself): *out from root's fields, PARSE with a message. */
struct cJSON;
POSGATE_WUR enum posgate_err audit_event_inspect_tree(const struct cJSON *root,
                                                      struct audit_event_info *out, char *errmsg,
                                                      size_t errcap);
/* The bytes a batch signature covers (docs/audit.md):
 *   "posgate-audit-head/v1\n" DEVICE_ID "\n" SEQ (decimal) "\n" HASH (64 hex) "\n"   */
POSGATE_WUR enum posgate_err audit_head_message(const char *device_id, uint64_t seq,
                                                const uint8_t hash[AUDIT_HASH_LEN],
                                                struct buf *out);

#endif
