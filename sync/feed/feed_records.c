/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Entries, listing ids and the byte sinks and sources of feed bodies (feed_records.h); the
 * writer is feed_writer.c, the reader feed_reader.c. Every encoding is canonical (minimal
 * varints, no leading zero gap byte, one way to split a listing id: feed_listing_split, a
 * template defined once per section), so a valid body has exactly one byte form and the reader
 * rejects every other.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "feed_records_internal.h"

/* ---- listing ids ---- */

void
feed_listing_split(const char *id, size_t len, size_t *stem_len, uint8_t *width, uint64_t *num)
{
    size_t run = 0;
    uint64_t v = 0;

    while (run < len && run < FEED_NUM_DIGITS_MAX && is_digit(id[len - 1 - run])) {
        run++;
    }
    for (size_t i = len - run; i < len; i++) {
        v = v * 10 + (uint64_t)(id[i] - '0');
    }
    *stem_len = len - run;
    *width = (uint8_t)run;
    *num = v;
}

int
feed_list_id_valid(const char *id)
{
    size_t n;

    if (id == NULL) {
        return 0;
    }
    n = strlen(id);
    if (n == 0 || n > FEED_LIST_ID_MAX || id[0] == '.') {
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        char c = id[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || is_digit(c) || c == '.' ||
              c == '_' || c == '-')) {
            return 0;
        }
    }
    return 1;
}

enum posgate_err
feed_entry_set_listing_id(struct feed_entry *e, const char *id)
{
    size_t n;

    if (e == NULL || id == NULL) {
        return POSGATE_ERR_INVALID;
    }
    n = strlen(id);
    if (n == 0 || n > FEED_LISTING_ID_MAX || !printable(id, n)) {
        return POSGATE_ERR_INVALID;
    }
    memcpy(e->listing_id, id, n + 1);
    e->listing_id_len = (uint8_t)n;
    return POSGATE_OK;
}

enum posgate_err
feed_check_listing(const struct feed_entry *e, char *msg, size_t cap)
{
    if (e->listing_id_len == 0 || e->listing_id_len > FEED_LISTING_ID_MAX) {
        snprintf(msg, cap, "listing id length %u, expected 1..%d", e->listing_id_len,
                 FEED_LISTING_ID_MAX);
        return POSGATE_ERR_INVALID;
    }
    if (!printable(e->listing_id, e->listing_id_len) || e->listing_id[e->listing_id_len] != '\0') {
        snprintf(msg, cap, "listing id is not printable ASCII of the length given (%u)",
                 e->listing_id_len);
        return POSGATE_ERR_INVALID;
    }
    return POSGATE_OK;
}

enum posgate_err
feed_entry_check(const struct feed_entry *e, char *msg, size_t cap)
{
    char scratch[8];
    enum posgate_err err;

    if (msg == NULL) {
        msg = scratch;
        cap = sizeof scratch;
    }
    if (e == NULL) {
        snprintf(msg, cap, "no entry");
        return POSGATE_ERR_INVALID;
    }
    err = feed_check_listing(e, msg, cap);
    if (err != POSGATE_OK) {
        return err;
    }
    if (e->kind != FEED_KIND_RESTRICT && e->kind != FEED_KIND_EXEMPT) {
        snprintf(msg, cap, "kind %u, expected 0 (restrict) or 1 (exempt)", e->kind);
        return POSGATE_ERR_INVALID;
    }
    if (e->valid_from < 0 || e->valid_from > FEED_TIME_MAX) {
        snprintf(msg, cap, "valid_from %" PRId64 " outside 0..%lld", e->valid_from,
                 (long long)FEED_TIME_MAX);
        return POSGATE_ERR_INVALID;
    }
    if (e->valid_until != FEED_UNTIL_OPEN &&
        (e->valid_until <= e->valid_from || e->valid_until > FEED_TIME_MAX)) {
        snprintf(msg, cap, "valid_until %" PRId64 ", expected open or in (%" PRId64 ", %lld]",
                 e->valid_until, e->valid_from, (long long)FEED_TIME_MAX);
        return POSGATE_ERR_INVALID;
    }
    if (e->scope_count > FEED_SCOPE_MAX) {
        snprintf(msg, cap, "%u scope services, at most %d", e->scope_count, FEED_SCOPE_MAX);
        return POSGATE_ERR_INVALID;
    }
    for (unsigned i = 1; i < e->scope_count; i++) {
        if (e->scope[i] <= e->scope[i - 1]) {
            snprintf(msg, cap, "scope index %u (%u) not greater than the one before (%u)", i,
                     e->scope[i], e->scope[i - 1]);
            return POSGATE_ERR_INVALID;
        }
    }
    return POSGATE_OK;
}

int
feed_entry_compare(const struct feed_entry *a, const struct feed_entry *b)
{
    return compare_key_listing(a->key, a->listing_id, a->listing_id_len, b->key, b->listing_id,
                               b->listing_id_len);
}

int
feed_entry_equal(const struct feed_entry *a, const struct feed_entry *b)
{
    if (feed_entry_compare(a, b) != 0 || a->reason != b->reason || a->id_type != b->id_type ||
        a->kind != b->kind || a->valid_from != b->valid_from || a->valid_until != b->valid_until ||
        a->scope_count != b->scope_count) {
        return 0;
    }
    for (unsigned i = 0; i < a->scope_count && i < FEED_SCOPE_MAX; i++) {
        if (a->scope[i] != b->scope[i]) {
            return 0;
        }
    }
    return 1;
}

/* ---- sinks and sources ---- */

static enum posgate_err
file_write(void *ctx, const uint8_t *data, size_t len)
{
    return fwrite(data, 1, len, (FILE *)ctx) == len ? POSGATE_OK : POSGATE_ERR_IO;
}

static enum posgate_err
fd_write(void *ctx, const uint8_t *data, size_t len)
{
    int fd = (int)(intptr_t)ctx;

    while (len > 0) {
        ssize_t n = write(fd, data, len);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return POSGATE_ERR_IO;
        }
        data += n;
        len -= (size_t)n;
    }
    return POSGATE_OK;
}

static enum posgate_err
buf_write(void *ctx, const uint8_t *data, size_t len)
{
    return buf_append((struct buf *)ctx, data, len);
}

static enum posgate_err
file_read(void *ctx, uint8_t *buf, size_t cap, size_t *got)
{
    FILE *f = ctx;

    *got = fread(buf, 1, cap, f);
    return *got == 0 && ferror(f) ? POSGATE_ERR_IO : POSGATE_OK;
}

static enum posgate_err
fd_read(void *ctx, uint8_t *buf, size_t cap, size_t *got)
{
    int fd = (int)(intptr_t)ctx;
    ssize_t n;

    do {
        n = read(fd, buf, cap);
    } while (n < 0 && errno == EINTR);
    if (n < 0) {
        *got = 0;
        return POSGATE_ERR_IO;
    }
    *got = (size_t)n;
    return POSGATE_OK;
}

static enum posgate_err
mem_read(void *ctx, uint8_t *buf, size_t cap, size_t *got)
{
    struct feed_mem *m = ctx;
    size_t n = m->len - m->pos;

    if (n > cap) {
        n = cap;
    }
    if (n > 0) {
        memcpy(buf, m->data + m->pos, n);
    }
    m->pos += n;
    *got = n;
    return POSGATE_OK;
}

void
feed_sink_file(struct feed_sink *s, FILE *f)
{
    s->write = file_write;
    s->ctx = f;
}

void
feed_sink_fd(struct feed_sink *s, int fd)
{
    s->write = fd_write;
    s->ctx = (void *)(intptr_t)fd;
}

void
feed_sink_buf(struct feed_sink *s, struct buf *b)
{
    s->write = buf_write;
    s->ctx = b;
}

void
feed_source_file(struct feed_source *s, FILE *f)
{
    s->read = file_read;
    s->ctx = f;
}

void
feed_source_fd(struct feed_source *s, int fd)
{
    s->read = fd_read;
    s->ctx = (void *)(intptr_t)fd;
}

void
feed_source_mem(struct feed_source *s, struct feed_mem *m, const void *data, size_t len)
{
    m->data = data;
    m->len = data == NULL ? 0 : len;
    m->pos = 0;
    s->read = mem_read;
    s->ctx = m;
}
