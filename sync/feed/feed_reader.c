/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The streaming reader of snapshot and delta bodies (the format drawn in feed_records.h): it
 * pulls one record at a time through a fixed buffer (bounded memory whatever the size),
 * validates every byte, refuses any encoding that is not the canonical one, and reports errors
 * with the byte offset, what was expected and what was found.
 */
#define _POSIX_C_SOURCE 200809L
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "crypto.h"
#include "feed_records_internal.h"
#include "plat_mem.h"

#define HEADER_MAX (4 + 3 + FEED_LIST_ID_MAX + 5 * 8 + 2 * FEED_DIGEST_LEN)
#define DAYS_MAX   (FEED_TIME_MAX / DAY + 1)

static const uint64_t pow10_table[FEED_NUM_DIGITS_MAX + 1] = {
    1ULL,
    10ULL,
    100ULL,
    1000ULL,
    10000ULL,
    100000ULL,
    1000000ULL,
    10000000ULL,
    100000000ULL,
    1000000000ULL,
    10000000000ULL,
    100000000000ULL,
    1000000000000ULL,
    10000000000000ULL,
    100000000000000ULL,
    1000000000000000ULL,
    10000000000000000ULL,
    100000000000000000ULL,
    1000000000000000000ULL,
};

/* ---- decoding helpers ---- */

static uint64_t
get_be64(const uint8_t *p)
{
    uint64_t v = 0;

    for (int i = 0; i < 8; i++) {
        v = v << 8 | p[i];
    }
    return v;
}

/* The inverse of zigzag for |v| < 2^62 (the caller bounds z first). */
static int64_t
unzigzag(uint64_t z)
{
    int64_t mag = (int64_t)(z >> 1);

    return (z & 1) ? -mag - 1 : mag;
}

/* ---- reader ---- */

enum rstate { R_NEW, R_RECORDS, R_DONE, R_FAILED };

struct feed_reader {
    struct feed_source src;
    unsigned flags;
    enum rstate st;
    enum posgate_err sticky;
    struct feed_header h;
    enum section sec;
    uint64_t in_section;
    uint64_t records;
    int64_t time_base;
    int have_prev;
    uint8_t prev_key[FEED_KEY_LEN];
    uint8_t prev_lid_len;
    char prev_lid[FEED_LISTING_ID_MAX];
    struct state_digest computed;
    struct state_digest_async *hasher; /* FEED_READ_VERIFY_DIGEST: hashes beside the caller */
    struct state_digest trailer;
    uint64_t base_off; /* offset of buf[0] in the body */
    size_t pos, len;
    int eof;
    char err[FEED_ERRMSG_MAX];
    uint8_t buf[IOBUF_LEN];
    struct tmpl_dict dict;
};

/* A bounds-checked view of the buffered bytes. */
struct cur {
    const uint8_t *p;
    const uint8_t *start;
    const uint8_t *end;
};

static enum posgate_err rfail(struct feed_reader *r, enum posgate_err err, uint64_t off,
                              const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static enum posgate_err
rfail(struct feed_reader *r, enum posgate_err err, uint64_t off, const char *fmt, ...)
{
    va_list ap;
    int n;

    n = snprintf(r->err, sizeof r->err, "offset %" PRIu64 ": ", off);
    if (n < 0 || (size_t)n >= sizeof r->err) {
        n = 0;
    }
    va_start(ap, fmt);
    vsnprintf(r->err + n, sizeof r->err - (size_t)n, fmt, ap);
    va_end(ap);
    r->st = R_FAILED;
    r->sticky = err;
    return err;
}

static uint64_t
cur_off(const struct feed_reader *r, const struct cur *c)
{
    return r->base_off + (uint64_t)(c->p - r->buf);
}

/* Makes at least need bytes available from pos unless the data ends first. */
static enum posgate_err
rfill(struct feed_reader *r, size_t need)
{
    while (r->len - r->pos < need && !r->eof) {
        enum posgate_err err;
        size_t got = 0;

        if (r->pos > 0) {
            memmove(r->buf, r->buf + r->pos, r->len - r->pos);
            r->base_off += r->pos;
            r->len -= r->pos;
            r->pos = 0;
        }
        err = r->src.read(r->src.ctx, r->buf + r->len, IOBUF_LEN - r->len, &got);
        if (err != POSGATE_OK) {
            return rfail(r, err, r->base_off + r->len, "reading the body failed: %s",
                         posgate_strerror(err));
        }
        if (got > IOBUF_LEN - r->len) {
            return rfail(r, POSGATE_ERR_IO, r->base_off + r->len,
                         "source returned %zu bytes for a %zu-byte buffer", got,
                         IOBUF_LEN - r->len);
        }
        if (got == 0) {
            r->eof = 1;
        }
        r->len += got;
    }
    return POSGATE_OK;
}

static void
cur_open(struct feed_reader *r, struct cur *c)
{
    c->start = r->buf + r->pos;
    c->p = c->start;
    c->end = r->buf + r->len;
}

static int
cur_u8(struct cur *c, uint8_t *v)
{
    if (c->p >= c->end) {
        return 0;
    }
    *v = *c->p++;
    return 1;
}

static int
cur_bytes(struct cur *c, void *out, size_t n)
{
    if ((size_t)(c->end - c->p) < n) {
        return 0;
    }
    memcpy(out, c->p, n);
    c->p += n;
    return 1;
}

static int
cur_be64(struct cur *c, uint64_t *v)
{
    uint8_t b[8];

    if (!cur_bytes(c, b, 8)) {
        return 0;
    }
    *v = get_be64(b);
    return 1;
}

enum vres { V_OK, V_SHORT, V_BAD };

/* A minimal LEB128 varint of at most 10 bytes that fits 64 bits. */
static enum vres
cur_varint(struct cur *c, uint64_t *v, const char **why)
{
    uint64_t x = 0;

    for (unsigned i = 0; i < 10; i++) {
        uint8_t b;
        if (c->p >= c->end) {
            return V_SHORT;
        }
        b = *c->p++;
        if (i == 9 && b > 1) {
            *why = "varint overflows 64 bits";
            return V_BAD;
        }
        x |= (uint64_t)(b & 0x7f) << (7 * i);
        if ((b & 0x80) == 0) {
            if (b == 0 && i > 0) {
                *why = "varint not minimal (ends in a zero byte)";
                return V_BAD;
            }
            *v = x;
            return V_OK;
        }
    }
    *why = "varint longer than 10 bytes";
    return V_BAD;
}

enum posgate_err
feed_reader_new(const struct feed_source *src, unsigned flags, struct feed_reader **out)
{
    struct feed_reader *r;

    if (out == NULL) {
        return POSGATE_ERR_INVALID;
    }
    *out = NULL;
    if (src == NULL || src->read == NULL || (flags & ~FEED_READ_VERIFY_DIGEST) != 0) {
        return POSGATE_ERR_INVALID;
    }
    r = plat_malloc(sizeof *r);
    if (r == NULL) {
        return POSGATE_ERR_NOMEM;
    }
    memset(r, 0, offsetof(struct feed_reader, buf));
    r->src = *src;
    r->flags = flags;
    r->st = R_NEW;
    state_digest_init(&r->computed);
    state_digest_init(&r->trailer);
    dict_reset(&r->dict);
    if ((flags & FEED_READ_VERIFY_DIGEST) && state_digest_async_new(&r->hasher) != POSGATE_OK) {
        plat_free(r);
        return POSGATE_ERR_NOMEM;
    }
    *out = r;
    return POSGATE_OK;
}

static void
hex4(const uint8_t *b, char out[9])
{
    crypto_hex(b, 4, out);
}

static enum posgate_err
rshort_header(struct feed_reader *r, struct cur *c, const char *what)
{
    return rfail(r, POSGATE_ERR_PARSE, cur_off(r, c),
                 "truncated header: expected %s, the data ends after %" PRIu64 " bytes", what,
                 r->base_off + r->len);
}

enum posgate_err
feed_reader_header(struct feed_reader *r, const struct feed_header **out)
{
    enum posgate_err err;
    struct cur c;
    uint8_t m[4], ver, flg, idn;
    uint64_t issued;
    struct feed_header *h;
    char hx[9];

    if (r == NULL || out == NULL) {
        return POSGATE_ERR_INVALID;
    }
    *out = NULL;
    if (r->st == R_FAILED) {
        return r->sticky;
    }
    if (r->st != R_NEW) {
        *out = &r->h;
        return POSGATE_OK;
    }
    h = &r->h;
    err = rfill(r, HEADER_MAX);
    if (err != POSGATE_OK) {
        return err;
    }
    cur_open(r, &c);
    if (!cur_bytes(&c, m, 4)) {
        return rshort_header(r, &c, "the 4-byte magic");
    }
    if (memcmp(m, magic_snapshot, 4) == 0) {
        h->body = FEED_BODY_SNAPSHOT;
    } else if (memcmp(m, magic_delta, 4) == 0) {
        h->body = FEED_BODY_DELTA;
    } else {
        hex4(m, hx);
        return rfail(r, POSGATE_ERR_PARSE, 0,
                     "bad magic: expected \"PGSN\" (snapshot) or \"PGDL\" (delta), found 0x%s", hx);
    }
    if (!cur_u8(&c, &ver)) {
        return rshort_header(r, &c, "the version");
    }
    if (ver != FEED_FORMAT_VERSION) {
        return rfail(r, POSGATE_ERR_PARSE, 4, "unsupported format version %u, expected %d", ver,
                     FEED_FORMAT_VERSION);
    }
    h->version = ver;
    if (!cur_u8(&c, &flg)) {
        return rshort_header(r, &c, "the flags");
    }
    if (flg != 0) {
        return rfail(r, POSGATE_ERR_PARSE, 5, "header flags 0x%02x, expected 0", flg);
    }
    if (!cur_u8(&c, &idn)) {
        return rshort_header(r, &c, "the list id length");
    }
    if (idn == 0 || idn > FEED_LIST_ID_MAX) {
        return rfail(r, POSGATE_ERR_PARSE, 6, "list id length %u, expected 1..%d", idn,
                     FEED_LIST_ID_MAX);
    }
    if (!cur_bytes(&c, h->list_id, idn)) {
        return rshort_header(r, &c, "the list id");
    }
    h->list_id[idn] = '\0';
    if (!feed_list_id_valid(h->list_id) || strlen(h->list_id) != idn) {
        return rfail(r, POSGATE_ERR_PARSE, 7,
                     "list id is not [A-Za-z0-9._-] (not starting with '.')");
    }
    if (h->body == FEED_BODY_SNAPSHOT) {
        if (!cur_be64(&c, &h->seq) || !cur_be64(&c, &h->count) || !cur_be64(&c, &issued)) {
            return rshort_header(r, &c, "seq, count and issue time (8 bytes each)");
        }
    } else {
        if (!cur_be64(&c, &h->base_seq) || !cur_be64(&c, &h->seq) || !cur_be64(&c, &h->removals) ||
            !cur_be64(&c, &h->additions) || !cur_be64(&c, &issued)) {
            return rshort_header(
                r, &c, "base seq, seq, removals, additions and issue time (8 bytes each)");
        }
        if (!cur_bytes(&c, h->base_digest, FEED_DIGEST_LEN) ||
            !cur_bytes(&c, h->result_digest, FEED_DIGEST_LEN)) {
            return rshort_header(r, &c, "the base and result digests (32 bytes each)");
        }
    }
    if (issued > (uint64_t)FEED_TIME_MAX) {
        return rfail(r, POSGATE_ERR_PARSE, (h->body == FEED_BODY_SNAPSHOT ? 23u : 39u) + idn,
                     "issue time %" PRIu64 " past %lld", issued, (long long)FEED_TIME_MAX);
    }
    h->issued_at = (int64_t)issued;
    if (h->seq == 0) {
        return rfail(r, POSGATE_ERR_PARSE, 7 + idn + (h->body == FEED_BODY_DELTA ? 8u : 0u),
                     "seq 0, expected 1 or more");
    }
    if (h->body == FEED_BODY_SNAPSHOT && h->count > FEED_MAX_ENTRIES) {
        return rfail(r, POSGATE_ERR_TOOBIG, 15u + idn, "count %" PRIu64 " past the limit %llu",
                     h->count, FEED_MAX_ENTRIES);
    }
    if (h->body == FEED_BODY_DELTA) {
        if (h->base_seq >= h->seq) {
            return rfail(r, POSGATE_ERR_PARSE, 7u + idn,
                         "base seq %" PRIu64 " not below seq %" PRIu64, h->base_seq, h->seq);
        }
        if (h->removals > FEED_MAX_ENTRIES || h->additions > FEED_MAX_ENTRIES) {
            return rfail(r, POSGATE_ERR_TOOBIG, 23u + idn,
                         "%" PRIu64 " removals, %" PRIu64 " additions: past the limit %llu",
                         h->removals, h->additions, FEED_MAX_ENTRIES);
        }
    }
    r->pos += (size_t)(c.p - c.start);
    r->time_base = day_floor(h->issued_at);
    r->sec = h->body == FEED_BODY_SNAPSHOT ? SEC_SNAPSHOT : SEC_REMOVALS;
    r->st = R_RECORDS;
    *out = h;
    return POSGATE_OK;
}

static const char *
rlabel(const struct feed_reader *r)
{
    return r->sec == SEC_REMOVALS ? "removal" : r->sec == SEC_ADDITIONS ? "addition" : "record";
}

static uint64_t
rdeclared(const struct feed_reader *r)
{
    return r->sec == SEC_SNAPSHOT   ? r->h.count
           : r->sec == SEC_REMOVALS ? r->h.removals
                                    : r->h.additions;
}

/* An error inside a record: "offset N: record K: ...". */
static enum posgate_err
rbad(struct feed_reader *r, uint64_t off, const char *what)
{
    return rfail(r, POSGATE_ERR_PARSE, off, "%s %" PRIu64 ": %s", rlabel(r), r->in_section + 1,
                 what);
}

static enum posgate_err
rshort(struct feed_reader *r, const struct cur *c)
{
    if (!r->eof) {
        return rfail(r, POSGATE_ERR_PARSE, cur_off(r, c), "%s %" PRIu64 ": longer than %d bytes",
                     rlabel(r), r->in_section + 1, RECORD_MAX);
    }
    return rfail(r, POSGATE_ERR_PARSE, r->base_off + r->len,
                 "truncated: expected %" PRIu64 " %ss, found %" PRIu64 " (the data ends inside "
                 "%s %" PRIu64 ")",
                 rdeclared(r), rlabel(r), r->in_section, rlabel(r), r->in_section + 1);
}

#define RVARINT(r, c, v)                                                                           \
    do {                                                                                           \
        const char *why_ = "";                                                                     \
        uint64_t off_ = cur_off((r), (c));                                                         \
        enum vres vr_ = cur_varint((c), (v), &why_);                                               \
        if (vr_ == V_SHORT) {                                                                      \
            return rshort((r), (c));                                                               \
        }                                                                                          \
        if (vr_ == V_BAD) {                                                                        \
            return rbad((r), off_, why_);                                                          \
        }                                                                                          \
    } while (0)

static enum posgate_err
read_time(struct feed_reader *r, struct cur *c, int64_t *out)
{
    uint64_t off = cur_off(r, c), v, z;
    int64_t rel;
    char msg[128];

    RVARINT(r, c, &v);
    z = v >> 1;
    if (v & 1) {
        if (z > 2 * (uint64_t)DAYS_MAX) {
            return rbad(r, off, "valid_from out of range");
        }
        rel = unzigzag(z) * DAY;
    } else {
        if (z > 2 * (uint64_t)FEED_TIME_MAX + 2) {
            return rbad(r, off, "valid_from out of range");
        }
        rel = unzigzag(z);
        if (rel % DAY == 0) {
            return rbad(r, off, "valid_from not canonical (a whole day coded in seconds)");
        }
    }
    *out = r->time_base + rel;
    if (*out < 0 || *out > FEED_TIME_MAX) {
        snprintf(msg, sizeof msg, "valid_from %" PRId64 " outside 0..%lld", *out,
                 (long long)FEED_TIME_MAX);
        return rbad(r, off, msg);
    }
    return POSGATE_OK;
}

static enum posgate_err
read_until(struct feed_reader *r, struct cur *c, int64_t from, int64_t *out)
{
    uint64_t off = cur_off(r, c), v, d;

    RVARINT(r, c, &v);
    d = v >> 1;
    if (v & 1) {
        if (d == 0 || d > (uint64_t)DAYS_MAX) {
            return rbad(r, off, "validity length out of range, expected 1 or more days");
        }
        d *= DAY;
    } else if (d == 0 || d % DAY == 0 || d > (uint64_t)FEED_TIME_MAX) {
        return rbad(r, off,
                    d == 0 ? "validity length 0, expected valid_until after valid_from"
                           : "validity length not canonical or out of range");
    }
    if ((uint64_t)from + d > (uint64_t)FEED_TIME_MAX) {
        return rbad(r, off, "valid_until past 9999-12-31T23:59:59Z");
    }
    *out = from + (int64_t)d;
    return POSGATE_OK;
}

static enum posgate_err
read_template(struct feed_reader *r, struct cur *c, int full, struct tmpl *t)
{
    uint64_t off = cur_off(r, c), v;
    char msg[128];
    size_t slot = 0;

    RVARINT(r, c, &v);
    if (v > 0) {
        if (v > r->dict.count) {
            snprintf(msg, sizeof msg, "template %" PRIu64 ", only %u defined", v, r->dict.count);
            return rbad(r, off, msg);
        }
        *t = r->dict.t[v - 1];
        return POSGATE_OK;
    }
    memset(t, 0, sizeof *t);
    if (full) {
        RVARINT(r, c, &v);
        if (v > UINT16_MAX) {
            snprintf(msg, sizeof msg, "reason %" PRIu64 ", expected at most 65535", v);
            return rbad(r, off, msg);
        }
        t->reason = (uint16_t)v;
        if (!cur_u8(c, &t->id_type)) {
            return rshort(r, c);
        }
    }
    if (!cur_u8(c, &t->stem_len)) {
        return rshort(r, c);
    }
    if (t->stem_len > FEED_LISTING_ID_MAX) {
        snprintf(msg, sizeof msg, "listing id stem of %u bytes, at most %d", t->stem_len,
                 FEED_LISTING_ID_MAX);
        return rbad(r, off, msg);
    }
    if (!cur_bytes(c, t->stem, t->stem_len) || !cur_u8(c, &t->width)) {
        return rshort(r, c);
    }
    if (t->width > FEED_NUM_DIGITS_MAX) {
        snprintf(msg, sizeof msg, "listing number width %u, at most %d", t->width,
                 FEED_NUM_DIGITS_MAX);
        return rbad(r, off, msg);
    }
    if ((unsigned)t->stem_len + t->width == 0 ||
        (unsigned)t->stem_len + t->width > FEED_LISTING_ID_MAX) {
        snprintf(msg, sizeof msg, "listing id of %u bytes, expected 1..%d",
                 (unsigned)t->stem_len + t->width, FEED_LISTING_ID_MAX);
        return rbad(r, off, msg);
    }
    if (!printable(t->stem, t->stem_len)) {
        return rbad(r, off, "listing id stem is not printable ASCII");
    }
    if (t->width < FEED_NUM_DIGITS_MAX && t->stem_len > 0 && is_digit(t->stem[t->stem_len - 1])) {
        return rbad(r, off, "listing id split not canonical (the stem ends in a digit)");
    }
    if (dict_find(&r->dict, t, &slot) >= 0) {
        return rbad(r, off, "template defined twice");
    }
    dict_insert(&r->dict, t, slot);
    return POSGATE_OK;
}

static enum posgate_err
read_record(struct feed_reader *r, struct feed_entry *e, int full)
{
    enum posgate_err err;
    struct cur c;
    uint64_t start, off, v;
    uint8_t flags, gap[FEED_KEY_LEN];
    unsigned g, carry = 0;
    struct tmpl t;
    char msg[160];

    err = rfill(r, RECORD_MAX);
    if (err != POSGATE_OK) {
        return err;
    }
    cur_open(r, &c);
    start = cur_off(r, &c);
    memset(e, 0, sizeof *e);
    if (!cur_u8(&c, &flags)) {
        return rshort(r, &c);
    }
    g = flags & FLAG_GAP_MASK;
    if (g > FEED_KEY_LEN) {
        snprintf(msg, sizeof msg, "key gap of %u bytes, at most %d", g, FEED_KEY_LEN);
        return rbad(r, start, msg);
    }
    if (!full && (flags & ~FLAG_GAP_MASK) != 0) {
        snprintf(msg, sizeof msg, "removal flags 0x%02x, expected bits 5-7 clear", flags);
        return rbad(r, start, msg);
    }
    if (!cur_bytes(&c, gap, g)) {
        return rshort(r, &c);
    }
    if (g > 0 && gap[0] == 0) {
        return rbad(r, start + 1, "key gap not minimal (leading zero byte)");
    }
    memcpy(e->key, r->prev_key, FEED_KEY_LEN);
    for (unsigned i = 0; i < FEED_KEY_LEN; i++) {
        unsigned k = FEED_KEY_LEN - 1 - i;
        unsigned s = (unsigned)e->key[k] + carry + (i < g ? gap[g - 1 - i] : 0u);
        e->key[k] = (uint8_t)s;
        carry = s >> 8;
    }
    if (carry != 0) {
        return rbad(r, start + 1, "key gap overflows 128 bits");
    }
    err = read_template(r, &c, full, &t);
    if (err != POSGATE_OK) {
        return err;
    }
    memcpy(e->listing_id, t.stem, t.stem_len);
    if (t.width > 0) {
        off = cur_off(r, &c);
        RVARINT(r, &c, &v);
        if (v >= pow10_table[t.width]) {
            snprintf(msg, sizeof msg, "listing number %" PRIu64 " has more than %u digits", v,
                     t.width);
            return rbad(r, off, msg);
        }
        for (unsigned i = 0; i < t.width; i++) {
            e->listing_id[t.stem_len + t.width - 1 - i] = (char)('0' + v % 10);
            v /= 10;
        }
    }
    e->listing_id_len = (uint8_t)(t.stem_len + t.width);
    e->listing_id[e->listing_id_len] = '\0';
    if (r->have_prev && g == 0) {
        int cmp = compare_key_listing(e->key, e->listing_id, e->listing_id_len, r->prev_key,
                                      r->prev_lid, r->prev_lid_len);
        if (cmp <= 0) {
            snprintf(msg, sizeof msg,
                     cmp == 0 ? "duplicate (key, listing id \"%s\")"
                              : "key equal to previous and listing id \"%s\" not greater",
                     e->listing_id);
            return rbad(r, start, msg);
        }
    }
    if (full) {
        e->reason = t.reason;
        e->id_type = t.id_type;
        e->kind = (flags & FLAG_EXEMPT) ? FEED_KIND_EXEMPT : FEED_KIND_RESTRICT;
        err = read_time(r, &c, &e->valid_from);
        if (err != POSGATE_OK) {
            return err;
        }
        if (flags & FLAG_OPEN) {
            e->valid_until = FEED_UNTIL_OPEN;
        } else {
            err = read_until(r, &c, e->valid_from, &e->valid_until);
            if (err != POSGATE_OK) {
                return err;
            }
        }
        if (flags & FLAG_SCOPE) {
            uint64_t n, idx;
            off = cur_off(r, &c);
            RVARINT(r, &c, &n);
            if (n == 0 || n > FEED_SCOPE_MAX) {
                snprintf(msg, sizeof msg, "%" PRIu64 " scope services, expected 1..%d", n,
                         FEED_SCOPE_MAX);
                return rbad(r, off, msg);
            }
            RVARINT(r, &c, &idx);
            for (uint64_t i = 0; i < n; i++) {
                if (i > 0) {
                    RVARINT(r, &c, &v);
                    idx = v > UINT16_MAX ? UINT64_MAX : idx + v + 1;
                }
                if (idx > UINT16_MAX) {
                    return rbad(r, off, "scope service index past 65535");
                }
                e->scope[i] = (uint16_t)idx;
            }
            e->scope_count = (uint8_t)n;
        }
    }
    memcpy(r->prev_key, e->key, FEED_KEY_LEN);
    memcpy(r->prev_lid, e->listing_id, e->listing_id_len);
    r->prev_lid_len = e->listing_id_len;
    r->have_prev = 1;
    r->pos += (size_t)(c.p - c.start);
    r->in_section++;
    r->records++;
    if (full && r->sec == SEC_SNAPSHOT && (r->flags & FEED_READ_VERIFY_DIGEST)) {
        state_digest_async_add(r->hasher, e);
    }
    return POSGATE_OK;
}

static enum posgate_err
read_trailer(struct feed_reader *r)
{
    enum posgate_err err;
    struct cur c;
    uint8_t m[4], ser[STATE_DIGEST_SERIAL_LEN];
    uint64_t a, b = 0, off;
    char hx[9];

    err = rfill(r, TRAILER_MAX + 1);
    if (err != POSGATE_OK) {
        return err;
    }
    cur_open(r, &c);
    off = cur_off(r, &c);
    if (!cur_bytes(&c, m, 4)) {
        goto truncated;
    }
    if (memcmp(m, magic_end, 4) != 0) {
        hex4(m, hx);
        return rfail(r, POSGATE_ERR_PARSE, off,
                     "expected the trailer \"PGEN\" after %" PRIu64
                     " records as the header declared, found 0x%s",
                     r->records, hx);
    }
    if (!cur_be64(&c, &a)) {
        goto truncated;
    }
    if (r->h.body == FEED_BODY_DELTA && !cur_be64(&c, &b)) {
        goto truncated;
    }
    if (r->h.body == FEED_BODY_SNAPSHOT && a != r->h.count) {
        return rfail(r, POSGATE_ERR_PARSE, off + 4,
                     "count mismatch: the trailer says %" PRIu64 " records, the header %" PRIu64, a,
                     r->h.count);
    }
    if (r->h.body == FEED_BODY_DELTA && (a != r->h.removals || b != r->h.additions)) {
        return rfail(r, POSGATE_ERR_PARSE, off + 4,
                     "count mismatch: the trailer says %" PRIu64 " removals and %" PRIu64
                     " additions, the header %" PRIu64 " and %" PRIu64,
                     a, b, r->h.removals, r->h.additions);
    }
    if (r->h.body == FEED_BODY_SNAPSHOT) {
        if (!cur_bytes(&c, ser, sizeof ser)) {
            goto truncated;
        }
        if (state_digest_deserialise(&r->trailer, ser, sizeof ser) != POSGATE_OK) {
            return rfail(r, POSGATE_ERR_PARSE, off + 12, "trailer state: expected magic \"PGL1\"");
        }
    }
    if (c.p != c.end) {
        return rfail(r, POSGATE_ERR_PARSE, cur_off(r, &c),
                     "unexpected data after the trailer (the body should end here)");
    }
    r->pos += (size_t)(c.p - c.start);
    if (r->h.body == FEED_BODY_SNAPSHOT && (r->flags & FEED_READ_VERIFY_DIGEST)) {
        state_digest_async_finish(r->hasher, &r->computed);
    }
    if (r->h.body == FEED_BODY_SNAPSHOT && (r->flags & FEED_READ_VERIFY_DIGEST) &&
        !state_digest_equal(&r->computed, &r->trailer)) {
        char want[STATE_DIGEST_HEX_LEN + 1], got[STATE_DIGEST_HEX_LEN + 1];
        state_digest_hex(&r->trailer, want);
        state_digest_hex(&r->computed, got);
        return rfail(r, POSGATE_ERR_BADHASH, off + 12,
                     "state digest mismatch: the trailer says %s, the entries give %s", want, got);
    }
    return POSGATE_OK;
truncated:
    return rfail(r, POSGATE_ERR_PARSE, r->base_off + r->len,
                 "truncated trailer: the data ends %zu bytes after the last record",
                 (size_t)(c.end - c.start));
}

enum posgate_err
feed_reader_next(struct feed_reader *r, enum feed_item *item, struct feed_entry *e)
{
    enum posgate_err err;
    const struct feed_header *h;

    if (r == NULL || item == NULL || e == NULL) {
        return POSGATE_ERR_INVALID;
    }
    *item = FEED_ITEM_END;
    if (r->st == R_FAILED) {
        return r->sticky;
    }
    if (r->st == R_NEW) {
        err = feed_reader_header(r, &h);
        if (err != POSGATE_OK) {
            return err;
        }
    }
    if (r->st == R_DONE) {
        return POSGATE_OK;
    }
    if (r->sec == SEC_REMOVALS && r->in_section == r->h.removals) {
        r->sec = SEC_ADDITIONS;
        r->in_section = 0;
        r->have_prev = 0;
        memset(r->prev_key, 0, sizeof r->prev_key);
        r->prev_lid_len = 0;
        dict_reset(&r->dict);
    }
    if (r->in_section == rdeclared(r) && r->sec != SEC_REMOVALS) {
        err = read_trailer(r);
        if (err != POSGATE_OK) {
            return err;
        }
        r->st = R_DONE;
        return POSGATE_OK;
    }
    err = read_record(r, e, r->sec != SEC_REMOVALS);
    if (err != POSGATE_OK) {
        return err;
    }
    *item = r->sec == SEC_SNAPSHOT   ? FEED_ITEM_ENTRY
            : r->sec == SEC_REMOVALS ? FEED_ITEM_REMOVE
                                     : FEED_ITEM_ADD;
    return POSGATE_OK;
}

const struct state_digest *
feed_reader_trailer_state(const struct feed_reader *r)
{
    if (r == NULL || r->st != R_DONE || r->h.body != FEED_BODY_SNAPSHOT) {
        return NULL;
    }
    return &r->trailer;
}

uint64_t
feed_reader_records(const struct feed_reader *r)
{
    return r == NULL ? 0 : r->records;
}

uint64_t
feed_reader_offset(const struct feed_reader *r)
{
    return r == NULL ? 0 : r->base_off + r->pos;
}

const char *
feed_reader_errmsg(const struct feed_reader *r)
{
    return r == NULL ? "no reader" : r->err;
}

void
feed_reader_free(struct feed_reader *r)
{
    if (r != NULL) {
        state_digest_async_free(r->hasher);
    }
    plat_free(r);
}
