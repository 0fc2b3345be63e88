/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The collector's reading of one uploaded audit batch (docs/collector.md): gzip decoding with a
 * bound, the batch JSON that agent/audit/audit_read.c's audit_batch_json writes, and for every
 * event its canonical text, seq, prev and chain hash recomputed with the device side's own
 * functions (audit_event_inspect, audit_chain_hash), so the two sides cannot drift. Nothing
 * here trusts the batch: the signature and the chain are judged by hub_db.c against the enrolled
 * key, and hub_batch_covered says whether the signed head commits to every event the batch
 * carries.
 *
 *   +------------------------------ a batch (JSON, maybe gzip) ------------------------------+
 *   | device_id        32 hex   must equal every event's device_id                          |
 *   | events           [event]  canonical audit events (audit_event.h), seq strictly rising  |
 *   | head             {hash: 64 hex, seq: int}  the last event, or the chain head if none   |
 *   | idempotency_key  string   optional, at most HUB_IDEM_MAX bytes (unsigned: a label)     |
 *   | signature        hex DER  ECDSA P-256 over audit_head_message(device_id, head)          |
 *   | v                1                                                                      |
 *   +-----------------------------------------------------------------------------------------+
 */
#ifndef POSGATE_HUB_BATCH_H
#define POSGATE_HUB_BATCH_H

#include <stddef.h>
#include <stdint.h>

#include "audit_event.h"
#include "buf.h"
#include "device_key.h"
#include "posgate_err.h"

#define HUB_IDEM_MAX       128
#define HUB_SIG_MAX        256
#define HUB_BATCH_EVENTS   10000                 /* events in one batch */
#define HUB_BATCH_JSON_MAX (32u * 1024u * 1024u) /* batch JSON after gzip decoding */
/* The most ALLOWs one allow_summary may stand for: HUB_SUMMARY_BURST, plus one per microsecond
 * of its span (last_time_us - first_time_us, counted up to HUB_SUMMARY_SPAN_MAX_US). One ALLOW
 * per microsecond (1,000,000/s) is above anything a kiosk answers (docs/benchmarks.md: an ALLOW
 * check takes ~1.2 us at the median in process); the burst covers a group commit whose ALLOWs share
 * one microsecond; the span cap keeps a clock that jumped by years from standing for 2^53 ALLOWs.
 * At most ~3.2e13 per summary, so a device's total needs ~570,000 maximal summaries to pass
 * 2^64: stats still add with checks (hub_db.c). */
#define HUB_SUMMARY_BURST       65536u
#define HUB_SUMMARY_PER_US      1u
#define HUB_SUMMARY_SPAN_MAX_US (366ull * 86400ull * 1000000ull)

struct hub_event {
    uint64_t seq;
    uint8_t prev[AUDIT_HASH_LEN]; /* as the event states it */
    uint8_t hash[AUDIT_HASH_LEN]; /* SHA-256(prev || text), recomputed here */
    char kind[16];                /* "decision" or "allow_summary" */
    char decision[8];             /* "allow", "deny", "refer"; "summary" for allow_summary */
    uint64_t count;               /* ALLOWs a summary stands for; 1 for a decision */
    char decision_id[33];         /* a decision's top-level "id" when it is 32 lowercase hex
                                     (stored as events.decision_id, indexed); "" otherwise */
    char *text;                   /* canonical text, NUL-terminated */
    size_t len;
};

struct hub_batch {
    char device_id[DEVICE_ID_HEX_LEN + 1];
    struct hub_event *ev;
    size_t n;
    uint64_t head_seq;
    uint8_t head_hash[AUDIT_HASH_LEN];
    uint8_t sig[HUB_SIG_MAX];
    size_t sig_len;
    char idem[HUB_IDEM_MAX + 1]; /* "" when the batch has none */
};

/* Parses a batch. PARSE (malformed JSON, a missing or mistyped member, an event that is not a
 * valid audit event, seqs not strictly rising, a head that is not the last event, an event of
 * another device, a summary whose count its span cannot hold: HUB_SUMMARY_*) or TOOBIG (past
 * HUB_BATCH_JSON_MAX or HUB_BATCH_EVENTS), with what was expected and what was found in errmsg.
 * Holes between seqs and broken links are not parse errors: hub_db.c records them. */
POSGATE_WUR enum posgate_err hub_batch_parse(const void *json, size_t len, struct hub_batch **out,
                                             char *errmsg, size_t errcap);
/* Whether the signed head commits to every event of b: the last event hashes to head.hash and
 * each other event hashes to the prev that the event after it names. Only such events may be
 * held against the device; an edited, removed or inserted event in a captured batch is not
 * covered. OK, or REJECTED with *first (the seq of the event nearest to the head that is not
 * covered) and what was expected and found in errmsg. The signature itself is hub_db.c's. */
POSGATE_WUR enum posgate_err hub_batch_covered(const struct hub_batch *b, uint64_t *first,
                                               char *errmsg, size_t errcap);
/* NULL is a no-op. */
void hub_batch_free(struct hub_batch *b);

/* Decodes a gzip stream (one or more members) into out (reset first): TOOBIG past out->max,
 * PARSE for anything that is not gzip or is truncated. */
POSGATE_WUR enum posgate_err hub_gunzip(const void *in, size_t len, struct buf *out, char *errmsg,
                                        size_t errcap);

#endif
