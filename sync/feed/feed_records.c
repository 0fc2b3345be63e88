/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Snapshot and delta bodies: the streaming writer and the streaming reader of the record format
 * drawn in feed_records.h. Both sides keep the same small state (previous key and listing id,
 * a bounded template dictionary), so every record is encoded against the one before it. Every
 * encoding is canonical (minimal varints, no leading zero gap byte, one way to split a listing
 * id, a template defined once per section), so a valid body has exactly one byte form and the
 * reader rejects every other.
 */
#define _POSIX_C_SOURCE 200809L
#include "feed_records.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <string.h>
#include <unistd.h>

#include "crypto.h"
#include "plat_mem.h"

#define IOBUF_LEN 65536
/* Longest record: flags 1, gap 16, template 10 + 3 + 1 + 1 + 64 + 1, number 10, from 10,
 * until 10, scope 10 + 32 * 10. */
#define RECORD_MAX  512
#define HEADER_MAX  (4 + 3 + FEED_LIST_ID_MAX + 5 * 8 + 2 * FEED_DIGEST_LEN)
#define TRAILER_MAX (4 + 8 + STATE_DIGEST_SERIAL_LEN)
#define TMPL_SLOTS  (2 * FEED_TEMPLATES_MAX)
#define DAY         86400
#define DAYS_MAX    (FEED_TIME_MAX / DAY + 1)

#define FLAG_GAP_MASK 0x1fu
#define FLAG_EXEMPT   0x20u
#define FLAG_OPEN     0x40u
#define FLAG_SCOPE    0x80u

static const uint8_t magic_snapshot[4] = {'P', 'G', 'S', 'N'};
static const uint8_t magic_delta[4] = {'P', 'G', 'D', 'L'};
static const uint8_t magic_end[4] = {'P', 'G', 'E', 'N'};

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

static uint32_t
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

static int
tmpl_same(const struct tmpl *a, const struct tmpl *b)
{
    return a->reason == b->reason && a->id_type == b->id_type && a->width == b->width &&
           a->stem_len == b->stem_len && memcmp(a->stem, b->stem, a->stem_len) == 0;
}

static void
dict_reset(struct tmpl_dict *d)
{
    d->count = 0;
    memset(d->slot, 0, sizeof d->slot);
}

/* The index of t, or -1; *slot_out is where it would be inserted. */
static long
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
static void
dict_insert(struct tmpl_dict *d, const struct tmpl *t, size_t slot)
{
    if (d->count >= FEED_TEMPLATES_MAX) {
        return;
    }
    d->t[d->count] = *t;
    d->count++;
    d->slot[slot] = (uint16_t)d->count;
}

/* ---- listing ids ---- */

static int
is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static int
printable(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] > 0x7e) {
            return 0;
        }
    }
    return 1;
}

/* The canonical split: the trailing digits (at most FEED_NUM_DIGITS_MAX) are a number. */
static void
split_listing(const struct feed_entry *e, struct tmpl *t, uint64_t *num)
{
    size_t len = e->listing_id_len, run = 0;
    uint64_t v = 0;

    while (run < len && run < FEED_NUM_DIGITS_MAX && is_digit(e->listing_id[len - 1 - run])) {
        run++;
    }
    for (size_t i = len - run; i < len; i++) {
        v = v * 10 + (uint64_t)(e->listing_id[i] - '0');
    }
    t->width = (uint8_t)run;
    t->stem_len = (uint8_t)(len - run);
    memcpy(t->stem, e->listing_id, len - run);
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

static enum posgate_err
check_listing(const struct feed_entry *e, char *msg, size_t cap)
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
    err = check_listing(e, msg, cap);
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

static int
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

/* ---- shared encoding helpers ---- */

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
get_be64(const uint8_t *p)
{
    uint64_t v = 0;

    for (int i = 0; i < 8; i++) {
        v = v << 8 | p[i];
    }
    return v;
}

static uint64_t
zigzag(int64_t v)
{
    return v < 0 ? ~((uint64_t)v << 1) : (uint64_t)v << 1;
}

/* The inverse of zigzag for |v| < 2^62 (the caller bounds z first). */
static int64_t
unzigzag(uint64_t z)
{
    int64_t mag = (int64_t)(z >> 1);

    return (z & 1) ? -mag - 1 : mag;
}

static int64_t
day_floor(int64_t t)
{
    return t - t % DAY; /* t >= 0 */
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
    size_t slot = 0;

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
    split_listing(e, &t, &num);
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
    err = check_listing(e, msg, sizeof msg);
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
feed_writer_error(const struct feed_writer *w)
{
    return w == NULL ? "no writer" : w->err;
}

void
feed_writer_free(struct feed_writer *w)
{
    plat_free(w);
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
feed_reader_error(const struct feed_reader *r)
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
