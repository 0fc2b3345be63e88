/* SPDX-License-Identifier: Apache-2.0 */
/*
 * An audit event packed: the parts of a struct audit_event in use, one after the other, as the
 * queue keeps an event in its ring between the check that records it and the commit that
 * writes it (audit.c). An ALLOW packs into a few hundred bytes where the struct takes ~10 KB,
 * so the ring's slots sit close together. In memory only, never stored or sent; the packing
 * thread's byte order.
 *
 *   +------------------------------------------------------------------------------------+
 *   | head      at, time_us, mono_us, feed_version, data_age_s, lists_more (int64 each),  |
 *   |           decision, overridden (int32), n_subjects, n_reasons, n_lists, flags (u8)  |
 *   | id, service                          strings: u16 length, bytes (no NUL)            |
 *   | subjects  n_subjects x 16 bytes                                                     |
 *   | operator_id                                                                          |
 *   | error                                only with flags & PACK_ERROR                    |
 *   | lists     n_lists x (id, seq (u64), digest, digest_written (u8))                    |
 *   | reasons   n_reasons x (kind, effect, list, listing_id, reason)                      |
 *   | override_by, override_reason         only with flags & PACK_OVERRIDE                 |
 *   +------------------------------------------------------------------------------------+
 */
#ifndef POSGATE_AUDIT_PACK_H
#define POSGATE_AUDIT_PACK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "audit_event.h"
#include "posgate_err.h"

/* A string of a char[cap] packed: its length (2 bytes) and up to cap - 1 bytes. */
#define AUDIT_PACK_STR(cap) ((cap) + 1u)
/* The largest packed event: every array full, every string at its maximum. */
#define AUDIT_PACKED_MAX                                                                           \
    (64u + AUDIT_PACK_STR(33u) + AUDIT_PACK_STR(AUDIT_ID_MAX + 1u) +                               \
     AUDIT_SUBJECTS_MAX * AUDIT_SUBJECT_LEN + AUDIT_PACK_STR(AUDIT_OPERATOR_MAX + 1u) +            \
     AUDIT_PACK_STR(AUDIT_ERROR_MAX) +                                                             \
     AUDIT_LISTS_MAX * (AUDIT_PACK_STR(AUDIT_ID_MAX + 1u) + 8u + AUDIT_PACK_STR(65u) + 1u) +       \
     AUDIT_REASONS_MAX *                                                                           \
         (AUDIT_PACK_STR(16u) + AUDIT_PACK_STR(8u) + 3u * AUDIT_PACK_STR(AUDIT_ID_MAX + 1u)) +     \
     AUDIT_PACK_STR(AUDIT_OPERATOR_MAX + 1u) + AUDIT_PACK_STR(AUDIT_OVERRIDE_MAX + 1u))

/* The bytes of an event that struct audit_packed holds in place. */
#define AUDIT_PACKED_INLINE 1952

/* An event kept packed: in place when it fits (an ALLOW does, and a DENY naming a few lists),
 * else in ext, made the first time one does not fit and kept for the next. */
struct audit_packed {
    const uint8_t *event; /* bytes or ext; NULL: none */
    uint8_t *ext;         /* AUDIT_PACKED_MAX bytes, or NULL */
    uint8_t bytes[AUDIT_PACKED_INLINE];
};

/* Packs e into p. NOMEM when e needs ext and there is no memory for it: p then holds no event. */
POSGATE_WUR enum posgate_err audit_packed_store(struct audit_packed *p,
                                                const struct audit_event *e);
/* Unpacks p's event into dst (audit_event_unpack); false when p holds none. */
bool audit_packed_load(const struct audit_packed *p, struct audit_event *dst);
/* Frees p's ext (p zeroed, or stored into, before). */
void audit_packed_cleanup(struct audit_packed *p);

/* Packs the parts of e in use into dst[0, cap): the bytes written, or 0 when they do not fit
 * (dst then holds nothing usable). cap AUDIT_PACKED_MAX holds any event. */
size_t audit_event_pack(const struct audit_event *e, uint8_t *dst, size_t cap);
/* Unpacks what audit_event_pack wrote into dst: dst's parts in use (its strings, and its arrays
 * up to their counts) then equal e's; the override strings are left as they were in an event
 * without an override. */
void audit_event_unpack(struct audit_event *dst, const uint8_t *src);

#endif
