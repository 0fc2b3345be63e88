/* SPDX-License-Identifier: Apache-2.0 */
/* Growable, bounded byte buffer. */
#include "buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plat_mem.h"

void
buf_init(struct buf *b, size_t max)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    b->max = max;
}

void
buf_free(struct buf *b)
{
    if (b == NULL) {
        return;
    }
    plat_free(b->data);
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
}

void
buf_wipe(struct buf *b)
{
    if (b == NULL) {
        return;
    }
    if (b->data != NULL) {
        plat_wipe(b->data, b->cap);
    }
    buf_free(b);
}

void
buf_reset(struct buf *b)
{
    b->len = 0;
    if (b->data != NULL) {
        b->data[0] = 0;
    }
}

enum posgate_err
buf_reserve(struct buf *b, size_t extra)
{
    size_t need, ncap;
    uint8_t *p;

    if (extra > b->max || b->len > b->max - extra) {
        return POSGATE_ERR_TOOBIG;
    }
    need = b->len + extra + 1;
    if (need <= b->cap) {
        return POSGATE_OK;
    }
    ncap = b->cap ? b->cap : 64;
    while (ncap < need) {
        ncap = ncap > SIZE_MAX / 2 ? need : ncap * 2;
    }
    p = plat_realloc(b->data, ncap);
    if (p == NULL) {
        return POSGATE_ERR_NOMEM;
    }
    b->data = p;
    b->cap = ncap;
    return POSGATE_OK;
}

enum posgate_err
buf_append_grow(struct buf *b, const void *p, size_t n)
{
    enum posgate_err err = buf_reserve(b, n);

    if (err != POSGATE_OK) {
        return err;
    }
    if (n > 0) {
        memcpy(b->data + b->len, p, n);
    }
    b->len += n;
    b->data[b->len] = 0;
    return POSGATE_OK;
}

enum posgate_err
buf_append_str(struct buf *b, const char *s)
{
    return buf_append(b, s, strlen(s));
}

enum posgate_err
buf_printf(struct buf *b, const char *fmt, ...)
{
    va_list ap;
    int n;
    enum posgate_err err;

    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) {
        return POSGATE_ERR_INVALID;
    }
    err = buf_reserve(b, (size_t)n);
    if (err != POSGATE_OK) {
        return err;
    }
    va_start(ap, fmt);
    vsnprintf((char *)b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return POSGATE_OK;
}

const char *
buf_cstr(const struct buf *b)
{
    return b->data != NULL ? (const char *)b->data : "";
}
