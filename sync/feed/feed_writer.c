/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The streaming writer of snapshot and delta bodies (the format drawn in feed_records.h): it
 * refuses records out of (key, listing id) order, encodes each against the one before it and
 * a bounded template dictionary, and buffers its output IOBUF_LEN bytes at a time.
 */
#define _POSIX_C_SOURCE 200809L
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "feed_records_internal.h"
#include "plat_mem.h"

/* ---- encoding helpers ---- */

static size_t
put_varint(uint8_t *p, uint64_t v)
{
    size_t n = 0;

    while (v >= 0x80) {
        p[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    p[n++] = (uint8_t)v;
    return n;
}

static void
put_be64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--) {
        p[i] = (uint8_t)v;
        v >>= 8;
    }
}

static uint64_t
zigzag(int64_t v)
{
    return v < 0 ? ~((uint64_t)v << 1) : (uint64_t)v << 1;
}

/* ---- writer ---- */

enum wstate { W_NEW, W_OPEN, W_DONE, W_FAILED };

struct feed_writer {
    struct feed_sink sink;
    struct feed_header h;
    unsigned flags;
    enum wstate st;
    enum section sec;
    uint64_t in_section;
    int64_t time_base;
    int have_prev;
    uint8_t prev_key[FEED_KEY_LEN];
    uint8_t prev_lid_len;
    char prev_lid[FEED_LISTING_ID_MAX];
    struct state_digest state;
    uint64_t bytes;
    size_t outlen;
    char err[FEED_ERRMSG_MAX];
    uint8_t out[IOBUF_LEN];
    struct tmpl_dict dict;
};

static enum posgate_err wfail(struct feed_writer *w, enum posgate_err err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static enum posgate_err
wfail(struct feed_writer *w, enum posgate_err err, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(w->err, sizeof w->err, fmt, ap);
    va_end(ap);
    w->st = W_FAILED;
    return err;
}

static enum posgate_err
wflush(struct feed_writer *w)
{
    enum posgate_err err;

    if (w->outlen == 0) {
        return POSGATE_OK;
    }
    err = w->sink.write(w->sink.ctx, w->out, w->outlen);
    if (err != POSGATE_OK) {
        return wfail(w, err, "writing %zu bytes at offset %" PRIu64 " failed: %s", w->outlen,
                     w->bytes - w->outlen, posgate_strerror(err));
    }
    w->outlen = 0;
    return POSGATE_OK;
}

/* Makes room for n more bytes in the output buffer (n <= IOBUF_LEN). */
static enum posgate_err
wroom(struct feed_writer *w, size_t n)
{
    if (w->outlen + n > IOBUF_LEN) {
        return wflush(w);
    }
    return POSGATE_OK;
}

static void
wput(struct feed_writer *w, const void *p, size_t n)
{
    memcpy(w->out + w->outlen, p, n);
    w->outlen += n;
    w->bytes += n;
}

static void
wput_u8(struct feed_writer *w, uint8_t v)
{
    w->out[w->outlen++] = v;
    w->bytes++;
}

static void
wput_be64(struct feed_writer *w, uint64_t v)
{
    put_be64(w->out + w->outlen, v);
    w->outlen += 8;
    w->bytes += 8;
}

static void
wput_varint(struct feed_writer *w, uint64_t v)
{
    size_t n = put_varint(w->out + w->outlen, v);

    w->outlen += n;
    w->bytes += n;
}

enum posgate_err
feed_writer_new(const struct feed_sink *sink, struct feed_writer **out)
{
    struct feed_writer *w;

    if (out == NULL) {
        return POSGATE_ERR_INVALID;
    }
    *out = NULL;
    if (sink == NULL || sink->write == NULL) {
        return POSGATE_ERR_INVALID;
    }
    w = plat_calloc(1, sizeof *w);
    if (w == NULL) {
        return POSGATE_ERR_NOMEM;
    }
    w->sink = *sink;
    w->st = W_NEW;
    state_digest_init(&w->state);
    *out = w;
    return POSGATE_OK;
}

static enum posgate_err
check_header(const struct feed_header *h, char *msg, size_t cap)
{
    if (h->body != FEED_BODY_SNAPSHOT && h->body != FEED_BODY_DELTA) {
        snprintf(msg, cap, "body %d, expected snapshot (1) or delta (2)", (int)h->body);
        return POSGATE_ERR_INVALID;
    }
    if (memchr(h->list_id, '\0', sizeof h->list_id) == NULL || !feed_list_id_valid(h->list_id)) {
        snprintf(msg, cap, "list id is not 1..%d of [A-Za-z0-9._-] (not starting with '.')",
                 FEED_LIST_ID_MAX);
        return POSGATE_ERR_INVALID;
    }
    if (h->seq == 0) {
        snprintf(msg, cap, "seq 0, expected 1 or more");
        return POSGATE_ERR_INVALID;
    }
    if (h->issued_at < 0 || h->issued_at > FEED_TIME_MAX) {
        snprintf(msg, cap, "issued_at %" PRId64 " outside 0..%lld", h->issued_at,
                 (long long)FEED_TIME_MAX);
        return POSGATE_ERR_INVALID;
    }
    if (h->body == FEED_BODY_SNAPSHOT) {
        if (h->count > FEED_MAX_ENTRIES) {
            snprintf(msg, cap, "count %" PRIu64 " past the limit %llu", h->count, FEED_MAX_ENTRIES);
            return POSGATE_ERR_TOOBIG;
        }
        return POSGATE_OK;
    }
    if (h->base_seq >= h->seq) {
        snprintf(msg, cap, "base seq %" PRIu64 " not below seq %" PRIu64, h->base_seq, h->seq);
        return POSGATE_ERR_INVALID;
    }
    if (h->removals > FEED_MAX_ENTRIES || h->additions > FEED_MAX_ENTRIES) {
        snprintf(msg, cap, "%" PRIu64 " removals, %" PRIu64 " additions: past the limit %llu",
                 h->removals, h->additions, FEED_MAX_ENTRIES);
        return POSGATE_ERR_TOOBIG;
    }
    return POSGATE_OK;
}

static void
start_section(struct feed_writer *w, enum section sec)
{
    w->sec = sec;
    w->in_section = 0;
    w->have_prev = 0;
    memset(w->prev_key, 0, sizeof w->prev_key);
    w->prev_lid_len = 0;
    dict_reset(&w->dict);
}

enum posgate_err
feed_writer_begin(struct feed_writer *w, const struct feed_header *h, unsigned flags)
{
    enum posgate_err err;
    size_t idn;

    if (w == NULL) {
        return POSGATE_ERR_INVALID;
    }
    if (w->st != W_NEW) {
        return wfail(w, POSGATE_ERR_STATE, "begin called twice");
    }
    if (h == NULL) {
        return wfail(w, POSGATE_ERR_INVALID, "no header");
    }
    err = check_header(h, w->err, sizeof w->err);
    if (err != POSGATE_OK) {
        w->st = W_FAILED;
        return err;
    }
    if ((flags & ~FEED_WRITE_CALLER_STATE) != 0) {
        return wfail(w, POSGATE_ERR_INVALID, "unknown writer flags 0x%x", flags);
    }
    w->h = *h;
    w->h.version = FEED_FORMAT_VERSION;
    if (h->body == FEED_BODY_SNAPSHOT) {
        w->h.base_seq = 0;
        w->h.removals = 0;
        w->h.additions = 0;
    } else {
        w->h.count = 0;
    }
    w->flags = flags;
    w->time_base = day_floor(h->issued_at);
    idn = strlen(h->list_id);
    wput(w, h->body == FEED_BODY_SNAPSHOT ? magic_snapshot : magic_delta, 4);
    wput_u8(w, FEED_FORMAT_VERSION);
    wput_u8(w, 0);
    wput_u8(w, (uint8_t)idn);
    wput(w, h->list_id, idn);
    if (h->body == FEED_BODY_SNAPSHOT) {
        wput_be64(w, h->seq);
        wput_be64(w, h->count);
        wput_be64(w, (uint64_t)h->issued_at);
        start_section(w, SEC_SNAPSHOT);
    } else {
        wput_be64(w, h->base_seq);
        wput_be64(w, h->seq);
        wput_be64(w, h->removals);
        wput_be64(w, h->additions);
        wput_be64(w, (uint64_t)h->issued_at);
        wput(w, h->base_digest, FEED_DIGEST_LEN);
        wput(w, h->result_digest, FEED_DIGEST_LEN);
        start_section(w, h->removals > 0 ? SEC_REMOVALS : SEC_ADDITIONS);
    }
    w->st = W_OPEN;
    return POSGATE_OK;
}

static const char *
wlabel(const struct feed_writer *w)
{
    return w->sec == SEC_REMOVALS ? "removal" : w->sec == SEC_ADDITIONS ? "addition" : "record";
}

static void
put_time(struct feed_writer *w, int64_t rel)
{
    if (rel % DAY == 0) {
        wput_varint(w, zigzag(rel / DAY) << 1 | 1);
    } else {
        wput_varint(w, zigzag(rel) << 1);
    }
}

static void
put_duration(struct feed_writer *w, int64_t d)
{
    if (d % DAY == 0) {
        wput_varint(w, (uint64_t)(d / DAY) << 1 | 1);
    } else {
        wput_varint(w, (uint64_t)d << 1);
    }
}

static enum posgate_err
write_record(struct feed_writer *w, const struct feed_entry *e, int full)
{
    enum posgate_err err;
    uint64_t n = w->in_section + 1;
    uint8_t gap[FEED_KEY_LEN];
    unsigned borrow = 0, g, flags;
    struct tmpl t;
    uint64_t num;
    long idx;
    size_t slot = 0, stem_len;

    if (w->have_prev) {
        int c = compare_key_listing(e->key, e->listing_id, e->listing_id_len, w->prev_key,
                                    w->prev_lid, w->prev_lid_len);
        if (c == 0) {
            return wfail(w, POSGATE_ERR_INVALID,
                         "%s %" PRIu64 ": duplicate (key, listing id \"%s\")", wlabel(w), n,
                         e->listing_id);
        }
        if (c < 0) {
            return wfail(w, POSGATE_ERR_INVALID,
                         "%s %" PRIu64 ": (key, listing id \"%s\") not greater than the "
                         "previous record's: records must be in (key, listing id) order",
                         wlabel(w), n, e->listing_id);
        }
    }
    /* gap = key - previous key, 128-bit big-endian */
    for (int i = FEED_KEY_LEN - 1; i >= 0; i--) {
        unsigned d = (unsigned)e->key[i] - w->prev_key[i] - borrow;
        gap[i] = (uint8_t)d;
        borrow = (d >> 8) & 1;
    }
    for (g = 0; g < FEED_KEY_LEN && gap[g] == 0; g++) {
    }
    g = FEED_KEY_LEN - g;
    flags = g;
    if (full) {
        flags |= e->kind == FEED_KIND_EXEMPT ? FLAG_EXEMPT : 0;
        flags |= e->valid_until == FEED_UNTIL_OPEN ? FLAG_OPEN : 0;
        flags |= e->scope_count > 0 ? FLAG_SCOPE : 0;
    }
    err = wroom(w, RECORD_MAX);
    if (err != POSGATE_OK) {
        return err;
    }
    wput_u8(w, (uint8_t)flags);
    wput(w, gap + FEED_KEY_LEN - g, g);

    memset(&t, 0, sizeof t);
    if (full) {
        t.reason = e->reason;
        t.id_type = e->id_type;
    }
    feed_listing_split(e->listing_id, e->listing_id_len, &stem_len, &t.width, &num);
    t.stem_len = (uint8_t)stem_len;
    memcpy(t.stem, e->listing_id, stem_len);
    idx = dict_find(&w->dict, &t, &slot);
    if (idx >= 0) {
        wput_varint(w, (uint64_t)idx + 1);
    } else {
        wput_u8(w, 0);
        if (full) {
            wput_varint(w, t.reason);
            wput_u8(w, t.id_type);
        }
        wput_u8(w, t.stem_len);
        wput(w, t.stem, t.stem_len);
        wput_u8(w, t.width);
        dict_insert(&w->dict, &t, slot);
    }
    if (t.width > 0) {
        wput_varint(w, num);
    }
    if (full) {
        put_time(w, e->valid_from - w->time_base);
        if (e->valid_until != FEED_UNTIL_OPEN) {
            put_duration(w, e->valid_until - e->valid_from);
        }
        if (e->scope_count > 0) {
            wput_varint(w, e->scope_count);
            wput_varint(w, e->scope[0]);
            for (unsigned i = 1; i < e->scope_count; i++) {
                wput_varint(w, (uint64_t)(e->scope[i] - e->scope[i - 1] - 1));
            }
        }
        if (w->sec == SEC_SNAPSHOT && !(w->flags & FEED_WRITE_CALLER_STATE)) {
            state_digest_add(&w->state, e);
        }
    }
    memcpy(w->prev_key, e->key, FEED_KEY_LEN);
    memcpy(w->prev_lid, e->listing_id, e->listing_id_len);
    w->prev_lid_len = e->listing_id_len;
    w->have_prev = 1;
    w->in_section++;
    return POSGATE_OK;
}

static enum posgate_err
writer_ready(struct feed_writer *w)
{
    if (w->st == W_NEW) {
        return wfail(w, POSGATE_ERR_STATE, "records written before begin");
    }
    if (w->st != W_OPEN) {
        snprintf(w->err, sizeof w->err, "writer is %s",
                 w->st == W_DONE ? "finished" : "failed after an earlier error");
        return POSGATE_ERR_STATE;
    }
    return POSGATE_OK;
}

enum posgate_err
feed_writer_add(struct feed_writer *w, const struct feed_entry *e)
{
    enum posgate_err err;
    char msg[160];
    uint64_t declared;

    if (w == NULL) {
        return POSGATE_ERR_INVALID;
    }
    err = writer_ready(w);
    if (err != POSGATE_OK) {
        return err;
    }
    if (e == NULL) {
        return wfail(w, POSGATE_ERR_INVALID, "no entry");
    }
    if (w->sec == SEC_REMOVALS) {
        return wfail(w, POSGATE_ERR_INVALID,
                     "addition before all %" PRIu64 " removals were written (%" PRIu64 " so far)",
                     w->h.removals, w->in_section);
    }
    declared = w->sec == SEC_SNAPSHOT ? w->h.count : w->h.additions;
    if (w->in_section >= declared) {
        return wfail(w, POSGATE_ERR_INVALID, "%s %" PRIu64 ": the header declared %" PRIu64,
                     wlabel(w), w->in_section + 1, declared);
    }
    err = feed_entry_check(e, msg, sizeof msg);
    if (err != POSGATE_OK) {
        return wfail(w, err, "%s %" PRIu64 ": %s", wlabel(w), w->in_section + 1, msg);
    }
    return write_record(w, e, 1);
}

enum posgate_err
feed_writer_remove(struct feed_writer *w, const struct feed_entry *e)
{
    enum posgate_err err;
    char msg[160];

    if (w == NULL) {
        return POSGATE_ERR_INVALID;
    }
    err = writer_ready(w);
    if (err != POSGATE_OK) {
        return err;
    }
    if (e == NULL) {
        return wfail(w, POSGATE_ERR_INVALID, "no entry");
    }
    if (w->h.body != FEED_BODY_DELTA) {
        return wfail(w, POSGATE_ERR_INVALID, "removal in a snapshot body");
    }
    if (w->sec != SEC_REMOVALS) {
        return wfail(w, POSGATE_ERR_INVALID,
                     "removal %" PRIu64 ": the header declared %" PRIu64 " removals",
                     w->h.removals + 1, w->h.removals);
    }
    err = feed_check_listing(e, msg, sizeof msg);
    if (err != POSGATE_OK) {
        return wfail(w, err, "removal %" PRIu64 ": %s", w->in_section + 1, msg);
    }
    err = write_record(w, e, 0);
    if (err == POSGATE_OK && w->in_section == w->h.removals) {
        start_section(w, SEC_ADDITIONS);
    }
    return err;
}

enum posgate_err
feed_writer_finish(struct feed_writer *w, const struct state_digest *state)
{
    enum posgate_err err;
    uint8_t ser[STATE_DIGEST_SERIAL_LEN];

    if (w == NULL) {
        return POSGATE_ERR_INVALID;
    }
    err = writer_ready(w);
    if (err != POSGATE_OK) {
        return err;
    }
    if (w->h.body == FEED_BODY_SNAPSHOT) {
        if (w->in_section != w->h.count) {
            return wfail(w, POSGATE_ERR_INVALID,
                         "the header declared %" PRIu64 " records, %" PRIu64 " were written",
                         w->h.count, w->in_section);
        }
        if (w->flags & FEED_WRITE_CALLER_STATE) {
            if (state == NULL) {
                return wfail(w, POSGATE_ERR_INVALID,
                             "FEED_WRITE_CALLER_STATE needs the state at finish");
            }
            w->state = *state;
        } else if (state != NULL && !state_digest_equal(state, &w->state)) {
            return wfail(w, POSGATE_ERR_INVALID,
                         "the given state (%" PRIu64 " entries) differs from the state of the "
                         "%" PRIu64 " records written",
                         state->count, w->state.count);
        }
    } else {
        uint64_t rem = w->sec == SEC_REMOVALS ? w->in_section : w->h.removals;
        uint64_t add = w->sec == SEC_ADDITIONS ? w->in_section : 0;
        if (rem != w->h.removals || add != w->h.additions) {
            return wfail(w, POSGATE_ERR_INVALID,
                         "the header declared %" PRIu64 " removals and %" PRIu64
                         " additions, %" PRIu64 " and %" PRIu64 " were written",
                         w->h.removals, w->h.additions, rem, add);
        }
    }
    err = wroom(w, TRAILER_MAX);
    if (err != POSGATE_OK) {
        return err;
    }
    wput(w, magic_end, 4);
    if (w->h.body == FEED_BODY_SNAPSHOT) {
        wput_be64(w, w->h.count);
        state_digest_serialise(&w->state, ser);
        wput(w, ser, sizeof ser);
    } else {
        wput_be64(w, w->h.removals);
        wput_be64(w, w->h.additions);
    }
    err = wflush(w);
    if (err != POSGATE_OK) {
        return err;
    }
    w->st = W_DONE;
    return POSGATE_OK;
}

const struct state_digest *
feed_writer_state(const struct feed_writer *w)
{
    if (w == NULL || w->st != W_DONE || w->h.body != FEED_BODY_SNAPSHOT) {
        return NULL;
    }
    return &w->state;
}

uint64_t
feed_writer_bytes(const struct feed_writer *w)
{
    return w == NULL ? 0 : w->bytes;
}

const char *
feed_writer_errmsg(const struct feed_writer *w)
{
    return w == NULL ? "no writer" : w->err;
}

void
feed_writer_free(struct feed_writer *w)
{
    plat_free(w);
}
