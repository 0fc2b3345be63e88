/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The state digest of a list: a homomorphic multiset hash (LtHash-style, 64 lanes of 32 bits =
 * 2048 bits of state) so that applying a delta updates it in O(delta) and `posgate verify` can
 * recompute it from scratch. Each entry's canonical encoding is hashed with SHA-256 to a seed,
 * the seed is expanded with the ChaCha20 keystream to 256 bytes = 64 big-endian u32 lanes, and
 * the lanes are added to the state (mod 2^32 each) on insert and subtracted on removal, together
 * with an entry count. The 32-byte digest shown to people and put in TUF `custom` is SHA-256 of
 * the serialised state. docs/feed.md gives the security argument.
 *
 * Canonical entry encoding (big-endian), hashed as SHA-256("posgate-entry-v2" 0x00 || enc):
 *
 *   +-----+------+---------+--------+------+-------+----+----------+-----+-----------+
 *   | key | kind | id_type | reason | from | until | sn | scope... | lid | listing id |
 *   | 16  |  1   |    1    |   2    |  8   |   8   | 1  |  2 * sn  |  1  |    lid     |
 *   +-----+------+---------+--------+------+-------+----+----------+-----+-----------+
 *   until = 0xffffffffffffffff when open.
 *   lanes = 256 bytes of ChaCha20(key = seed, nonce = 12 zero bytes, counter from 0).
 *
 * Serialised state (268 bytes; the digest is SHA-256 of these bytes):
 *
 *   +--------+---------+----------------------+
 *   | "PGL1" | count   | lane 0 .. lane 63    |
 *   |   4    | u64 BE  | 64 * u32 BE          |
 *   +--------+---------+----------------------+
 */
#ifndef POSGATE_STATE_DIGEST_H
#define POSGATE_STATE_DIGEST_H

#include <stddef.h>
#include <stdint.h>

#include "posgate_err.h"

#define STATE_DIGEST_LANES      64
#define STATE_DIGEST_LEN        32
#define STATE_DIGEST_HEX_LEN    64
#define STATE_DIGEST_SERIAL_LEN 268
/* Longest canonical entry encoding: 16 + 1 + 1 + 2 + 8 + 8 + 1 + 2 * 32 + 1 + 64. */
#define STATE_DIGEST_ENTRY_MAX 166

struct feed_entry;

/* Caller-owned; plain data, may be copied. count and lanes wrap mod 2^64 / 2^32. */
struct state_digest {
    uint64_t count;
    uint32_t lane[STATE_DIGEST_LANES];
};

/* The empty list. */
void state_digest_init(struct state_digest *d);
void state_digest_add(struct state_digest *d, const struct feed_entry *e);
void state_digest_remove(struct state_digest *d, const struct feed_entry *e);
/* d += other (the union of two disjoint multisets). */
void state_digest_merge(struct state_digest *d, const struct state_digest *other);
/* d -= other. */
void state_digest_subtract(struct state_digest *d, const struct state_digest *other);
/* 1 when both states are equal. */
int state_digest_equal(const struct state_digest *a, const struct state_digest *b);
/* The 32-byte digest: SHA-256 of the serialised state. */
void state_digest_finish(const struct state_digest *d, uint8_t out[STATE_DIGEST_LEN]);
/* The digest as 64 lowercase hex digits and a NUL. */
void state_digest_hex(const struct state_digest *d, char out[STATE_DIGEST_HEX_LEN + 1]);
void state_digest_serialise(const struct state_digest *d, uint8_t out[STATE_DIGEST_SERIAL_LEN]);
/* PARSE when len is not STATE_DIGEST_SERIAL_LEN or the magic is not "PGL1"; d unchanged then. */
POSGATE_WUR enum posgate_err state_digest_deserialise(struct state_digest *d, const uint8_t *in,
                                                      size_t len);

/* The canonical encoding of e into out; returns its length (0 when e breaks a size limit). */
size_t state_digest_entry_encode(const struct feed_entry *e, uint8_t out[STATE_DIGEST_ENTRY_MAX]);
/* The 64 lanes one entry adds (the element hash). */
void state_digest_entry_lanes(const struct feed_entry *e, uint32_t lanes[STATE_DIGEST_LANES]);

/* Adds a stream of entries to a digest on a helper thread, so that a snapshot import hashes on
 * one core while it writes the store on another. Entries are copied into 64 KiB batches; the
 * thread starts with the first full batch (short bodies never start one) and, if it cannot be
 * started, batches are hashed inline. One producer thread; about 260 KiB. */
struct state_digest_async;
POSGATE_WUR enum posgate_err state_digest_async_new(struct state_digest_async **out);
void state_digest_async_add(struct state_digest_async *a, const struct feed_entry *e);
/* Waits for the batches handed over and adds the entries added since the last finish to *d. */
void state_digest_async_finish(struct state_digest_async *a, struct state_digest *d);
/* The batches the producer hashed itself so far: when handing a batch over would fill the
 * queue, the caller's thread hashes it rather than wait for the helper. */
uint64_t state_digest_async_own_batches(const struct state_digest_async *a);
/* Stops the thread without waiting for the rest of the work; NULL is a no-op. */
void state_digest_async_free(struct state_digest_async *a);

#endif
