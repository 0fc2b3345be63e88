/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The carrier interface shared by every transport: name checks, the dispatch to the
 * implementation, and the struct buf sink. The transports themselves live in carrier_dir.c and
 * carrier_http.c (and later a bundle carrier); none of them is trusted.
 */
#include "carrier.h"

#include <stdio.h>
#include <string.h>

enum posgate_err
carrier_check_name(const char *name)
{
    const char *seg;
    size_t n;

    if (name == NULL) {
        return POSGATE_ERR_INVALID;
    }
    n = strlen(name);
    if (n == 0 || n > CARRIER_NAME_MAX || name[0] == '/') {
        return POSGATE_ERR_INVALID;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)name[i];

        if (c < 0x20 || c == 0x7f || c == '\\') {
            return POSGATE_ERR_INVALID;
        }
    }
    seg = name;
    while (1) {
        size_t len = strcspn(seg, "/");

        if (len == 0 || (len == 1 && seg[0] == '.') ||
            (len == 2 && seg[0] == '.' && seg[1] == '.')) {
            return POSGATE_ERR_INVALID;
        }
        if (seg[len] == 0) {
            return POSGATE_OK;
        }
        seg += len + 1;
    }
}

enum posgate_err
carrier_fetch(struct carrier *c, const char *name, uint64_t max_len,
              const struct carrier_sink *sink, uint64_t *got)
{
    enum posgate_err err;
    uint64_t n = 0;

    if (got != NULL) {
        *got = 0;
    }
    if (c == NULL || c->ops == NULL || sink == NULL || sink->write == NULL) {
        return POSGATE_ERR_INVALID;
    }
    c->errmsg[0] = 0;
    if (carrier_check_name(name) != POSGATE_OK) {
        snprintf(c->errmsg, sizeof(c->errmsg), "refused file name \"%.200s\"",
                 name != NULL ? name : "(null)");
        return POSGATE_ERR_INVALID;
    }
    err = c->ops->fetch(c, name, max_len, sink, &n);
    if (err == POSGATE_OK) {
        c->errmsg[0] = 0;
        if (got != NULL) {
            *got = n;
        }
    } else if (c->errmsg[0] == 0) {
        snprintf(c->errmsg, sizeof(c->errmsg), "%s: %s", name, posgate_strerror(err));
    }
    return err;
}

static enum posgate_err
buf_sink_write(void *ctx, const uint8_t *data, size_t len)
{
    return buf_append(ctx, data, len);
}

static void
buf_sink_reset(void *ctx)
{
    buf_reset(ctx);
}

void
carrier_sink_buf(struct carrier_sink *s, struct buf *b)
{
    s->write = buf_sink_write;
    s->ctx = b;
    s->check = NULL;
    s->reset = buf_sink_reset;
}

/* A buf sink with a caller's check. */
struct checked_buf {
    struct buf *b;
    enum posgate_err (*check)(void *check_ctx, const struct buf *b);
    void *check_ctx;
};

static enum posgate_err
checked_write(void *ctx, const uint8_t *data, size_t len)
{
    return buf_append(((struct checked_buf *)ctx)->b, data, len);
}

static enum posgate_err
checked_check(void *ctx)
{
    struct checked_buf *cb = ctx;

    return cb->check(cb->check_ctx, cb->b);
}

static void
checked_reset(void *ctx)
{
    buf_reset(((struct checked_buf *)ctx)->b);
}

enum posgate_err
carrier_fetch_buf_checked(struct carrier *c, const char *name, uint64_t max_len, struct buf *out,
                          enum posgate_err (*check)(void *check_ctx, const struct buf *b),
                          void *check_ctx)
{
    struct carrier_sink s;
    struct checked_buf cb = {out, check, check_ctx};
    enum posgate_err err;

    if (out == NULL) {
        return POSGATE_ERR_INVALID;
    }
    buf_reset(out);
    if (out->max < max_len) {
        max_len = out->max;
    }
    carrier_sink_buf(&s, out);
    if (check != NULL) {
        s.write = checked_write;
        s.ctx = &cb;
        s.check = checked_check;
        s.reset = checked_reset;
    }
    err = carrier_fetch(c, name, max_len, &s, NULL);
    if (err != POSGATE_OK) {
        buf_reset(out);
    }
    return err;
}

enum posgate_err
carrier_fetch_buf(struct carrier *c, const char *name, uint64_t max_len, struct buf *out)
{
    return carrier_fetch_buf_checked(c, name, max_len, out, NULL, NULL);
}

const char *
carrier_errmsg(const struct carrier *c)
{
    return c != NULL ? c->errmsg : "";
}

void
carrier_free(struct carrier *c)
{
    if (c != NULL && c->ops != NULL && c->ops->destroy != NULL) {
        c->ops->destroy(c);
    }
}
