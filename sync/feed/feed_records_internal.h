/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What the feed record files share (sync/feed only; not installed): the record format's
 * constants, the template dictionary both sides keep per section, and the small helpers of
 * both. feed_records.c holds the entries and listing ids, sinks and sources; feed_writer.c the
 * writer; feed_reader.c the reader.
 */
#ifndef POSGATE_FEED_RECORDS_INTERNAL_H
#define POSGATE_FEED_RECORDS_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "feed_records.h"

#define IOBUF_LEN 65536
/* Longest record: flags 1, gap 16, template 10 + 3 + 1 + 1 + 64 + 1, number 10, from 10,
 * until 10, scope 10 + 32 * 10. */
#define RECORD_MAX  512
#define TRAILER_MAX (4 + 8 + STATE_DIGEST_SERIAL_LEN)
#define TMPL_SLOTS  (2 * FEED_TEMPLATES_MAX)
#define DAY         86400

#define FLAG_GAP_MASK 0x1fu
#define FLAG_EXEMPT   0x20u
#define FLAG_OPEN     0x40u
#define FLAG_SCOPE    0x80u

static const uint8_t magic_snapshot[4] = {'P', 'G', 'S', 'N'};
static const uint8_t magic_delta[4] = {'P', 'G', 'D', 'L'};
static const uint8_t magic_end[4] = {'P', 'G', 'E', 'N'};

enum section { SEC_SNAPSHOT, SEC_REMOVALS, SEC_ADDITIONS };

/* ---- templates: (stem, width, reason, id_type) shared by many records ---- */

struct tmpl {
    uint16_t reason;
    uint8_t id_type;
    uint8_t width;
    uint8_t stem_len;
    char stem[FEED_LISTING_ID_MAX];
};

struct tmpl_dict {
    unsigned count;
    uint16_t slot[TMPL_SLOTS]; /* index + 1; 0 = empty */
    struct tmpl t[FEED_TEMPLATES_MAX];
};

static inline uint32_t
tmpl_hash(const struct tmpl *t)
{
    uint32_t h = 2166136261u;
    uint8_t head[5] = {(uint8_t)(t->reason >> 8), (uint8_t)t->reason, t->id_type, t->width,
                       t->stem_len};

    for (size_t i = 0; i < sizeof head; i++) {
        h = (h ^ head[i]) * 16777619u;
    }
    for (size_t i = 0; i < t->stem_len; i++) {
        h = (h ^ (uint8_t)t->stem[i]) * 16777619u;
    }
    return h;
}

static inline int
tmpl_same(const struct tmpl *a, const struct tmpl *b)
{
    return a->reason == b->reason && a->id_type == b->id_type && a->width == b->width &&
           a->stem_len == b->stem_len && memcmp(a->stem, b->stem, a->stem_len) == 0;
}

static inline void
dict_reset(struct tmpl_dict *d)
{
    d->count = 0;
    memset(d->slot, 0, sizeof d->slot);
}

/* The index of t, or -1; *slot_out is where it would be inserted. */
static inline long
dict_find(const struct tmpl_dict *d, const struct tmpl *t, size_t *slot_out)
{
    size_t s = tmpl_hash(t) & (TMPL_SLOTS - 1);

    while (d->slot[s] != 0) {
        const struct tmpl *c = &d->t[d->slot[s] - 1];
        if (tmpl_same(c, t)) {
            return (long)d->slot[s] - 1;
        }
        s = (s + 1) & (TMPL_SLOTS - 1);
    }
    *slot_out = s;
    return -1;
}

/* Remembers t when there is room (both sides apply the same rule). */
static inline void
dict_insert(struct tmpl_dict *d, const struct tmpl *t, size_t slot)
{
    if (d->count >= FEED_TEMPLATES_MAX) {
        return;
    }
    d->t[d->count] = *t;
    d->count++;
    d->slot[slot] = (uint16_t)d->count;
}

/* ---- listing ids and order ---- */

static inline int
is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static inline int
printable(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] > 0x7e) {
            return 0;
        }
    }
    return 1;
}

static inline int
compare_key_listing(const uint8_t *ka, const char *la, size_t na, const uint8_t *kb, const char *lb,
                    size_t nb)
{
    int c = memcmp(ka, kb, FEED_KEY_LEN);
    size_t n = na < nb ? na : nb;

    if (c != 0) {
        return c;
    }
    c = memcmp(la, lb, n);
    if (c != 0) {
        return c;
    }
    return na < nb ? -1 : na > nb ? 1 : 0;
}

static inline int64_t
day_floor(int64_t t)
{
    return t - t % DAY; /* t >= 0 */
}

/* INVALID with a message when e's listing id is not 1..64 printable bytes with its NUL. */
enum posgate_err feed_check_listing(const struct feed_entry *e, char *msg, size_t cap);

#endif
