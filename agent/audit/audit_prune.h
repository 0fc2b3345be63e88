/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Pruning the audit queue's SQLite file (audit.h's schema): its own file so that audit.c, the
 * queue and its writer, stays within the size rule.
 */
#ifndef POSGATE_AUDIT_PRUNE_H
#define POSGATE_AUDIT_PRUNE_H

#include <stdint.h>

struct sqlite3;

/* Deletes the events with seq <= upto that are older than cutoff_us (a prefix of the chain: it
 * stops at the first younger one), moves the anchor to the last one deleted and takes their
 * bytes off meta 'bytes'; *freed: those bytes. Inside a write transaction. An SQLite code. */
int audit_prune_prefix(struct sqlite3 *db, uint64_t upto, int64_t cutoff_us, uint64_t *freed);

/* The bytes of the stored events' text (audit.h, meta 'bytes'): v, plus the events after b when
 * b is set. *upto: b, UINT64_MAX when meta 'bytes' counts every event (a file written before b
 * was). Inside a transaction, for one snapshot. An SQLite code. */
int audit_bytes_read(struct sqlite3 *db, uint64_t *bytes, uint64_t *upto);

#endif
