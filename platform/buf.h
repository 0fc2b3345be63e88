/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A growable byte buffer with a hard maximum: every buffer that grows from input has one.
 * The data is always NUL-terminated (one spare byte beyond len) so text can be read in place.
 */
#ifndef POSGATE_BUF_H
#define POSGATE_BUF_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "posgate_err.h"

struct buf {
    uint8_t *data;
    size_t len;
    size_t cap;
    size_t max; /* hard limit on len */
};

#define BUF_INIT(maxlen)                                                                           \
    {                                                                                              \
        NULL, 0, 0, (maxlen)                                                                       \
    }

void buf_init(struct buf *b, size_t max);
/* Frees the storage (wiping it first when it held a secret: see buf_wipe). */
void buf_free(struct buf *b);
/* Zeroes the storage, then frees it. */
void buf_wipe(struct buf *b);
void buf_reset(struct buf *b);
/* TOOBIG when len would pass max, NOMEM when allocation fails. */
POSGATE_WUR enum posgate_err buf_reserve(struct buf *b, size_t extra);
/* buf_append when the bytes do not fit the storage as it is: grows it first. */
POSGATE_WUR enum posgate_err buf_append_grow(struct buf *b, const void *p, size_t n);
/* Appends n bytes; TOOBIG or NOMEM as buf_reserve. Inline when they fit the storage as it is
 * (with the NUL, within max): an answer or an event is written in dozens of small pieces. */
POSGATE_WUR static inline enum posgate_err
buf_append(struct buf *b, const void *p, size_t n)
{
    if (b->len < b->cap && n < b->cap - b->len && b->len <= b->max && n <= b->max - b->len) {
        if (n > 0) {
            memcpy(b->data + b->len, p, n);
        }
        b->len += n;
        b->data[b->len] = 0;
        return POSGATE_OK;
    }
    return buf_append_grow(b, p, n);
}
POSGATE_WUR enum posgate_err buf_append_str(struct buf *b, const char *s);
POSGATE_WUR enum posgate_err buf_printf(struct buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* The text as a C string ("" when empty); valid until the next change. */
const char *buf_cstr(const struct buf *b);

#endif
