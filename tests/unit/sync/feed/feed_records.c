/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Tests of sync/feed_records: safety cases first, then round trips of 100,000 random records
 * through memory, a FILE* and a one-byte-at-a-time source, deltas, every writer refusal, and
 * the reader's rejection of every malformation (bad magic, version, out of order, duplicates,
 * truncation at every byte offset, trailing data, count mismatches, varint overflow, over-long
 * listing ids, non-canonical encodings), with the byte offsets and messages it reports, and
 * the split of a listing id (feed_listing_split) the store shares. Some bodies are crafted by
 * hand from the format in docs/feed.md, which checks the documentation.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "crypto.h"
#include "feed_records.h"
#include "plat_mem.h"
#include "posgate_err.h"
#include "state_digest.h"
#include "test.h"

#define DAY 86400

static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;

static uint64_t
rnd(void)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static uint64_t
rnd_below(uint64_t n)
{
    return rnd() % n;
}

static void
set_lid(struct feed_entry *e, const char *s)
{
    CHECK_OK(feed_entry_set_listing_id(e, s));
}

/* A random entry with every feature the format has: shared keys, odd listing ids, seconds and
 * days, open ends, scopes, exemptions. */
static void
random_entry(struct feed_entry *e, const struct feed_entry *prev)
{
    char lid[FEED_LISTING_ID_MAX + 1];
    uint64_t k = rnd_below(100);

    memset(e, 0, sizeof *e);
    if (prev != NULL && rnd_below(20) == 0) {
        memcpy(e->key, prev->key, FEED_KEY_LEN);
    } else {
        for (int i = 0; i < FEED_KEY_LEN; i += 8) {
            uint64_t v = rnd();
            memcpy(e->key + i, &v, 8);
        }
    }
    if (k < 80) {
        snprintf(lid, sizeof lid, "CN-SPC-%04u-%07u", (unsigned)(2020 + rnd_below(5)),
                 (unsigned)rnd_below(10000000));
    } else if (k < 85) {
        snprintf(lid, sizeof lid, "CASE %u/%u", (unsigned)rnd_below(1000),
                 (unsigned)rnd_below(100));
    } else if (k < 90) {
        snprintf(lid, sizeof lid, "%llu%llu", (unsigned long long)rnd(),
                 (unsigned long long)rnd()); /* digit runs past 18 */
    } else if (k < 95) {
        snprintf(lid, sizeof lid, "X%c", (char)('A' + rnd_below(26))); /* no digits */
    } else {
        size_t n = 1 + rnd_below(FEED_LISTING_ID_MAX);
        for (size_t i = 0; i < n; i++) {
            lid[i] = (char)(0x20 + rnd_below(0x5f));
        }
        lid[n] = '\0';
    }
    set_lid(e, lid);
    e->reason = (uint16_t)(rnd_below(10) == 0 ? rnd_below(65536) : rnd_below(8));
    e->id_type = (uint8_t)rnd_below(6);
    e->kind = rnd_below(10) == 0 ? FEED_KIND_EXEMPT : FEED_KIND_RESTRICT;
    e->valid_from = (int64_t)(rnd_below(20000) * DAY);
    if (rnd_below(4) == 0) {
        e->valid_from += (int64_t)rnd_below(DAY);
    }
    if (rnd_below(3) == 0) {
        e->valid_until = FEED_UNTIL_OPEN;
    } else {
        e->valid_until = e->valid_from + (int64_t)(1 + rnd_below(3000)) * DAY;
        if (rnd_below(4) == 0) {
            e->valid_until += (int64_t)rnd_below(DAY);
        }
    }
    if (rnd_below(8) == 0) {
        unsigned n = 1 + (unsigned)rnd_below(FEED_SCOPE_MAX);
        uint16_t v = (uint16_t)rnd_below(100);
        for (unsigned i = 0; i < n; i++) {
            e->scope[i] = v;
            v = (uint16_t)(v + 1 + rnd_below(i == 5 ? 60000 / FEED_SCOPE_MAX : 50));
        }
        e->scope_count = (uint8_t)n;
    }
}

static int
cmp_entries(const void *a, const void *b)
{
    return feed_entry_compare(a, b);
}

/* n random entries sorted and unique by (key, listing id); returns the count kept. */
static size_t
random_list(struct feed_entry *v, size_t n)
{
    size_t k = 0;

    for (size_t i = 0; i < n; i++) {
        random_entry(&v[i], i > 0 ? &v[i - 1] : NULL);
    }
    qsort(v, n, sizeof *v, cmp_entries);
    for (size_t i = 0; i < n; i++) {
        if (k == 0 || feed_entry_compare(&v[k - 1], &v[i]) != 0) {
            v[k++] = v[i];
        }
    }
    return k;
}

static void
snap_header(struct feed_header *h, uint64_t count)
{
    memset(h, 0, sizeof *h);
    h->body = FEED_BODY_SNAPSHOT;
    snprintf(h->list_id, sizeof h->list_id, "cn-spc");
    h->seq = 7;
    h->count = count;
    h->issued_at = 1718000000 + 1234;
}

static enum posgate_err
write_snapshot(const struct feed_entry *v, size_t n, struct buf *out, struct state_digest *st)
{
    struct feed_sink sink;
    struct feed_writer *w = NULL;
    struct feed_header h;
    enum posgate_err err;

    feed_sink_buf(&sink, out);
    snap_header(&h, n);
    err = feed_writer_new(&sink, &w);
    if (err == POSGATE_OK) {
        err = feed_writer_begin(w, &h, 0);
    }
    for (size_t i = 0; err == POSGATE_OK && i < n; i++) {
        err = feed_writer_add(w, &v[i]);
    }
    if (err == POSGATE_OK) {
        err = feed_writer_finish(w, NULL);
    }
    if (err == POSGATE_OK && st != NULL) {
        *st = *feed_writer_state(w);
    }
    if (err != POSGATE_OK) {
        fprintf(stderr, "write_snapshot: %s\n", feed_writer_errmsg(w));
    }
    feed_writer_free(w);
    return err;
}

/* Reads a whole body; the error and its message are returned, entries compared with want. */
static enum posgate_err
read_all(const struct feed_source *src, unsigned flags, const struct feed_entry *want, size_t nwant,
         char *msg, size_t cap, uint64_t *nread)
{
    struct feed_reader *r = NULL;
    const struct feed_header *h;
    enum feed_item item;
    struct feed_entry e;
    enum posgate_err err;
    size_t i = 0;
    int mismatches = 0;

    err = feed_reader_new(src, flags, &r);
    if (err == POSGATE_OK) {
        err = feed_reader_header(r, &h);
    }
    while (err == POSGATE_OK) {
        err = feed_reader_next(r, &item, &e);
        if (err != POSGATE_OK || item == FEED_ITEM_END) {
            break;
        }
        if (want != NULL && (i >= nwant || !feed_entry_equal(&e, &want[i]))) {
            if (mismatches++ < 3) {
                fprintf(stderr, "entry %zu differs (%s)\n", i, e.listing_id);
            }
        }
        i++;
    }
    if (msg != NULL) {
        snprintf(msg, cap, "%s", r != NULL ? feed_reader_errmsg(r) : "");
    }
    if (err == POSGATE_OK && want != NULL) {
        CHECK_INT(i, nwant);
        CHECK_INT(mismatches, 0);
    }
    if (nread != NULL) {
        *nread = i;
    }
    feed_reader_free(r);
    return err;
}

static enum posgate_err
read_mem(const void *data, size_t len, unsigned flags, char *msg, size_t cap)
{
    struct feed_source src;
    struct feed_mem m;

    feed_source_mem(&src, &m, data, len);
    return read_all(&src, flags, NULL, 0, msg, cap, NULL);
}

/* A source that hands out one byte per call (exercises every refill path). */
static enum posgate_err
trickle_read(void *ctx, uint8_t *buf, size_t cap, size_t *got)
{
    struct feed_mem *m = ctx;

    *got = 0;
    if (cap > 0 && m->pos < m->len) {
        buf[0] = m->data[m->pos++];
        *got = 1;
    }
    return POSGATE_OK;
}

static enum posgate_err
failing_read(void *ctx, uint8_t *buf, size_t cap, size_t *got)
{
    (void)ctx;
    (void)buf;
    (void)cap;
    *got = 0;
    return POSGATE_ERR_IO;
}

static enum posgate_err
failing_write(void *ctx, const uint8_t *data, size_t len)
{
    (void)ctx;
    (void)data;
    (void)len;
    return POSGATE_ERR_IO;
}

static void
test_safety(void)
{
    struct feed_sink sink;
    struct feed_source src;
    struct feed_mem m;
    struct feed_writer *w = (struct feed_writer *)&sink;
    struct feed_reader *r = (struct feed_reader *)&src;
    struct feed_entry e;
    struct feed_header h;
    enum feed_item item;
    const struct feed_header *hp;
    struct buf b = BUF_INIT(1 << 20);
    char msg[FEED_ERRMSG_MAX], long_id[FEED_LISTING_ID_MAX + 2];

    CHECK_ERR(feed_writer_new(NULL, &w), POSGATE_ERR_INVALID);
    CHECK(w == NULL);
    CHECK_ERR(feed_writer_new(&sink, NULL), POSGATE_ERR_INVALID);
    CHECK_ERR(feed_reader_new(NULL, 0, &r), POSGATE_ERR_INVALID);
    CHECK(r == NULL);
    feed_source_mem(&src, &m, NULL, 0);
    CHECK_ERR(feed_reader_new(&src, 0x80, &r), POSGATE_ERR_INVALID);
    CHECK_ERR(feed_writer_add(NULL, &e), POSGATE_ERR_INVALID);
    CHECK_ERR(feed_writer_finish(NULL, NULL), POSGATE_ERR_INVALID);
    CHECK_ERR(feed_reader_next(NULL, &item, &e), POSGATE_ERR_INVALID);
    CHECK(feed_writer_state(NULL) == NULL);
    CHECK(feed_reader_trailer_state(NULL) == NULL);
    feed_writer_free(NULL);
    feed_reader_free(NULL);

    /* listing ids and list ids */
    memset(&e, 0, sizeof e);
    CHECK_ERR(feed_entry_set_listing_id(&e, ""), POSGATE_ERR_INVALID);
    CHECK_ERR(feed_entry_set_listing_id(&e, "a\tb"), POSGATE_ERR_INVALID);
    CHECK_ERR(feed_entry_set_listing_id(&e, "caf\xc3\xa9"), POSGATE_ERR_INVALID);
    memset(long_id, 'A', sizeof long_id - 1);
    long_id[sizeof long_id - 1] = '\0';
    CHECK_ERR(feed_entry_set_listing_id(&e, long_id), POSGATE_ERR_INVALID);
    long_id[FEED_LISTING_ID_MAX] = '\0';
    CHECK_OK(feed_entry_set_listing_id(&e, long_id));
    CHECK_INT(e.listing_id_len, FEED_LISTING_ID_MAX);
    CHECK(feed_list_id_valid("cn-spc_2024.v1"));
    CHECK(!feed_list_id_valid(""));
    CHECK(!feed_list_id_valid(".."));
    CHECK(!feed_list_id_valid("a/b"));
    CHECK(!feed_list_id_valid(NULL));

    /* entry rules */
    set_lid(&e, "L-1");
    e.valid_from = 100;
    e.valid_until = 100;
    CHECK_ERR(feed_entry_check(&e, msg, sizeof msg), POSGATE_ERR_INVALID);
    CHECK_CONTAINS(msg, "valid_until 100");
    e.valid_until = FEED_UNTIL_OPEN;
    CHECK_OK(feed_entry_check(&e, msg, sizeof msg));
    e.valid_from = -1;
    CHECK_ERR(feed_entry_check(&e, NULL, 0), POSGATE_ERR_INVALID);
    e.valid_from = 0;
    e.kind = 2;
    CHECK_ERR(feed_entry_check(&e, msg, sizeof msg), POSGATE_ERR_INVALID);
    CHECK_CONTAINS(msg, "kind 2");
    e.kind = FEED_KIND_EXEMPT;
    e.scope_count = 2;
    e.scope[0] = 5;
    e.scope[1] = 5;
    CHECK_ERR(feed_entry_check(&e, msg, sizeof msg), POSGATE_ERR_INVALID);
    CHECK_CONTAINS(msg, "scope");
    e.scope_count = FEED_SCOPE_MAX + 1;
    CHECK_ERR(feed_entry_check(&e, msg, sizeof msg), POSGATE_ERR_INVALID);
    e.scope_count = 0;

    /* wrong state */
    feed_sink_buf(&sink, &b);
    CHECK_OK(feed_writer_new(&sink, &w));
    CHECK_ERR(feed_writer_add(w, &e), POSGATE_ERR_STATE);
    CHECK_CONTAINS(feed_writer_errmsg(w), "before begin");
    feed_writer_free(w);
    CHECK_OK(feed_writer_new(&sink, &w));
    snap_header(&h, 0);
    CHECK_OK(feed_writer_begin(w, &h, 0));
    CHECK_ERR(feed_writer_begin(w, &h, 0), POSGATE_ERR_STATE);
    feed_writer_free(w);

    /* empty and failing sources, failing sinks */
    CHECK_ERR(read_mem("", 0, 0, msg, sizeof msg), POSGATE_ERR_PARSE);
    CHECK_CONTAINS(msg, "truncated header");
    src.read = failing_read;
    src.ctx = NULL;
    CHECK_OK(feed_reader_new(&src, 0, &r));
    CHECK_ERR(feed_reader_header(r, &hp), POSGATE_ERR_IO);
    CHECK_CONTAINS(feed_reader_errmsg(r), "reading the body failed");
    CHECK_ERR(feed_reader_next(r, &item, &e), POSGATE_ERR_IO); /* sticky */
    feed_reader_free(r);
    sink.write = failing_write;
    CHECK_OK(feed_writer_new(&sink, &w));
    CHECK_OK(feed_writer_begin(w, &h, 0));
    CHECK_ERR(feed_writer_finish(w, NULL), POSGATE_ERR_IO);
    CHECK_CONTAINS(feed_writer_errmsg(w), "failed");
    feed_writer_free(w);

    /* allocation failure */
    feed_sink_buf(&sink, &b);
    plat_mem_fail_after(0);
    CHECK_ERR(feed_writer_new(&sink, &w), POSGATE_ERR_NOMEM);
    feed_source_mem(&src, &m, "x", 1);
    CHECK_ERR(feed_reader_new(&src, 0, &r), POSGATE_ERR_NOMEM);
    plat_mem_fail_after(-1);
    buf_free(&b);
}

static void
test_roundtrip(void)
{
    size_t n = 100000;
    struct feed_entry *v = calloc(n, sizeof *v);
    struct buf body = BUF_INIT((size_t)1 << 30);
    struct state_digest st, indep;
    struct feed_source src;
    struct feed_mem m;
    struct feed_reader *r = NULL;
    const struct feed_header *h;
    enum feed_item item;
    struct feed_entry e;
    FILE *f;
    char msg[FEED_ERRMSG_MAX];
    uint64_t got = 0;

    if (v == NULL) {
        CHECK(0);
        return;
    }
    n = random_list(v, n);
    CHECK(n > 99000);
    CHECK_OK(write_snapshot(v, n, &body, &st));
    printf("round trip: %zu records, %zu bytes, %.2f bytes/record\n", n, body.len,
           (double)body.len / (double)n);
    state_digest_init(&indep);
    for (size_t i = 0; i < n; i++) {
        state_digest_add(&indep, &v[i]);
    }
    CHECK(state_digest_equal(&st, &indep));
    CHECK_INT(st.count, n);

    /* from memory, verifying the digest; header fields come back */
    feed_source_mem(&src, &m, body.data, body.len);
    CHECK_OK(feed_reader_new(&src, FEED_READ_VERIFY_DIGEST, &r));
    CHECK_OK(feed_reader_header(r, &h));
    CHECK_INT(h->body, FEED_BODY_SNAPSHOT);
    CHECK_STR(h->list_id, "cn-spc");
    CHECK_INT(h->seq, 7);
    CHECK_INT(h->count, n);
    CHECK_INT(h->issued_at, 1718000000 + 1234);
    CHECK(feed_reader_trailer_state(r) == NULL);
    /* bounded memory: no allocation at all while reading */
    plat_mem_fail_after(0);
    for (;;) {
        enum posgate_err err = feed_reader_next(r, &item, &e);
        if (err != POSGATE_OK || item == FEED_ITEM_END) {
            CHECK_OK(err);
            break;
        }
        CHECK_INT(item, FEED_ITEM_ENTRY);
        if (got < n && !feed_entry_equal(&e, &v[got])) {
            CHECK_FAIL("entry differs");
        }
        got++;
    }
    plat_mem_fail_after(-1);
    CHECK_INT(got, n);
    CHECK_INT(feed_reader_records(r), n);
    CHECK_INT(feed_reader_offset(r), body.len);
    CHECK(feed_reader_trailer_state(r) != NULL &&
          state_digest_equal(feed_reader_trailer_state(r), &st));
    CHECK_OK(feed_reader_next(r, &item, &e)); /* END stays END */
    CHECK_INT(item, FEED_ITEM_END);
    feed_reader_free(r);

    /* through a FILE* */
    f = tmpfile();
    CHECK(f != NULL);
    if (f != NULL) {
        struct feed_sink sink;
        struct feed_writer *w = NULL;
        struct feed_header hh;
        snap_header(&hh, n);
        feed_sink_file(&sink, f);
        CHECK_OK(feed_writer_new(&sink, &w));
        CHECK_OK(feed_writer_begin(w, &hh, 0));
        for (size_t i = 0; i < n; i++) {
            CHECK_OK(feed_writer_add(w, &v[i]));
        }
        CHECK_OK(feed_writer_finish(w, &st)); /* a matching given state is accepted */
        CHECK_INT(feed_writer_bytes(w), body.len);
        feed_writer_free(w);
        rewind(f);
        feed_source_file(&src, f);
        CHECK_OK(read_all(&src, FEED_READ_VERIFY_DIGEST, v, n, msg, sizeof msg, NULL));
        fclose(f);
    }

    /* one byte per read call */
    feed_source_mem(&src, &m, body.data, body.len);
    src.read = trickle_read;
    CHECK_OK(read_all(&src, 0, v, n, msg, sizeof msg, NULL));

    /* a broken trailer state is caught only when verifying */
    body.data[body.len - 1] ^= 1;
    CHECK_OK(read_mem(body.data, body.len, 0, msg, sizeof msg));
    CHECK_ERR(read_mem(body.data, body.len, FEED_READ_VERIFY_DIGEST, msg, sizeof msg),
              POSGATE_ERR_BADHASH);
    CHECK_CONTAINS(msg, "state digest mismatch");
    buf_free(&body);
    free(v);
}

/* A small valid snapshot of nrec records, with the offset where each record starts. */
static void
small_snapshot(struct buf *body, struct feed_entry *v, size_t nrec, uint64_t *starts)
{
    struct feed_source src;
    struct feed_mem m;
    struct feed_reader *r = NULL;
    const struct feed_header *h;
    enum feed_item item;
    struct feed_entry e;

    nrec = random_list(v, nrec);
    CHECK_OK(write_snapshot(v, nrec, body, NULL));
    feed_source_mem(&src, &m, body->data, body->len);
    CHECK_OK(feed_reader_new(&src, 0, &r));
    CHECK_OK(feed_reader_header(r, &h));
    for (size_t i = 0; i <= nrec; i++) {
        starts[i] = feed_reader_offset(r);
        CHECK_OK(feed_reader_next(r, &item, &e));
    }
    CHECK_INT(item, FEED_ITEM_END);
    feed_reader_free(r);
}

static void
test_truncation_and_garbage(void)
{
    struct feed_entry v[20];
    uint64_t starts[21];
    struct buf body = BUF_INIT(1 << 20);
    char msg[FEED_ERRMSG_MAX], want[128];
    int all_parse = 1, all_msg = 1;
    uint8_t *copy;
    size_t idn = strlen("cn-spc");

    small_snapshot(&body, v, 20, starts);
    /* every proper prefix is refused */
    for (size_t cut = 0; cut < body.len; cut++) {
        enum posgate_err err = read_mem(body.data, cut, FEED_READ_VERIFY_DIGEST, msg, sizeof msg);
        if (err != POSGATE_ERR_PARSE) {
            all_parse = 0;
            fprintf(stderr, "cut at %zu: %s (%s)\n", cut, posgate_err_name(err), msg);
        }
        if (strstr(msg, "truncated") == NULL) {
            all_msg = 0;
            fprintf(stderr, "cut at %zu: %s\n", cut, msg);
        }
    }
    CHECK(all_parse);
    CHECK(all_msg);
    /* the message counts whole records */
    CHECK_ERR(read_mem(body.data, (size_t)starts[12] + 3, 0, msg, sizeof msg), POSGATE_ERR_PARSE);
    snprintf(want, sizeof want, "offset %llu: truncated: expected 20 records, found 12",
             (unsigned long long)starts[12] + 3);
    CHECK_CONTAINS(msg, want);
    CHECK_ERR(read_mem(body.data, (size_t)starts[20] + 2, 0, msg, sizeof msg), POSGATE_ERR_PARSE);
    CHECK_CONTAINS(msg, "truncated trailer");

    /* trailing data */
    copy = malloc(body.len + 1);
    CHECK(copy != NULL);
    if (copy == NULL) {
        buf_free(&body);
        return;
    }
    memcpy(copy, body.data, body.len);
    copy[body.len] = 0;
    CHECK_ERR(read_mem(copy, body.len + 1, 0, msg, sizeof msg), POSGATE_ERR_PARSE);
    CHECK_CONTAINS(msg, "unexpected data after the trailer");

    /* count mismatches: header says fewer, header says more, trailer disagrees */
    copy[15 + idn + 7] = 19;
    CHECK_ERR(read_mem(copy, body.len, 0, msg, sizeof msg), POSGATE_ERR_PARSE);
    CHECK_CONTAINS(msg, "expected the trailer \"PGEN\" after 19 records");
    copy[15 + idn + 7] = 21;
    CHECK_ERR(read_mem(copy, body.len, 0, msg, sizeof msg), POSGATE_ERR_PARSE);
    copy[15 + idn + 7] = 20;
    CHECK_OK(read_mem(copy, body.len, FEED_READ_VERIFY_DIGEST, msg, sizeof msg));
    copy[starts[20] + 4 + 7] = 21;
    CHECK_ERR(read_mem(copy, body.len, 0, msg, sizeof msg), POSGATE_ERR_PARSE);
    CHECK_CONTAINS(msg, "count mismatch: the trailer says 21 records, the header 20");
    copy[starts[20] + 4 + 7] = 20;

    /* magic, version, flags, list id, too many entries */
    copy[0] = 'X';
    CHECK_ERR(read_mem(copy, body.len, 0, msg, sizeof msg), POSGATE_ERR_PARSE);
    CHECK_CONTAINS(msg, "offset 0: bad magic: expected \"PGSN\" (snapshot) or \"PGDL\"");
    copy[0] = 'P';
    copy[4] = 2;
    CHECK_ERR(read_mem(copy, body.len, 0, msg, sizeof msg), POSGATE_ERR_PARSE);
    CHECK_CONTAINS(msg, "offset 4: unsupported format version 2, expected 1");
    copy[4] = 1;
    copy[5] = 1;
    CHECK_ERR(read_mem(copy, body.len, 0, msg, sizeof msg), POSGATE_ERR_PARSE);
    CHECK_CONTAINS(msg, "header flags 0x01");
    copy[5] = 0;
    copy[7] = '/';
    CHECK_ERR(read_mem(copy, body.len, 0, msg, sizeof msg), POSGATE_ERR_PARSE);
    CHECK_CONTAINS(msg, "list id");
    copy[7] = 'c';
    copy[15 + idn] = 0x40;
    CHECK_ERR(read_mem(copy, body.len, 0, msg, sizeof msg), POSGATE_ERR_TOOBIG);
    copy[15 + idn] = 0;
    copy[7 + idn + 7] = 0; /* seq 7 -> 0 */
    CHECK_ERR(read_mem(copy, body.len, 0, msg, sizeof msg), POSGATE_ERR_PARSE);
    CHECK_CONTAINS(msg, "seq 0");
    copy[7 + idn + 7] = 7;
    CHECK_OK(read_mem(copy, body.len, 0, msg, sizeof msg));

    /* swapping two records breaks the order */
    {
        size_t a = (size_t)starts[3], mid = (size_t)starts[4], end = (size_t)starts[5];
        uint8_t tmp[1024];
        size_t la = mid - a, lb = end - mid;
        memcpy(tmp, copy + mid, lb);
        memcpy(tmp + lb, copy + a, la);
        memcpy(copy + a, tmp, la + lb);
        /* the gaps still add up to increasing keys; the digest catches the wrong ones */
        CHECK(read_mem(copy, body.len, FEED_READ_VERIFY_DIGEST, msg, sizeof msg) != POSGATE_OK);
    }
    free(copy);
    buf_free(&body);
}

/* ---- hand-crafted bodies, encoded from the documented format ---- */

struct craft {
    uint8_t b[4096];
    size_t n;
};

static void
c_u8(struct craft *c, unsigned v)
{
    c->b[c->n++] = (uint8_t)v;
}

static void
c_bytes(struct craft *c, const void *p, size_t n)
{
    memcpy(c->b + c->n, p, n);
    c->n += n;
}

static void
c_be64(struct craft *c, uint64_t v)
{
    for (int i = 56; i >= 0; i -= 8) {
        c_u8(c, (unsigned)(v >> i) & 0xff);
    }
}

static void
c_varint(struct craft *c, uint64_t v)
{
    while (v >= 0x80) {
        c_u8(c, (unsigned)(v & 0x7f) | 0x80);
        v >>= 7;
    }
    c_u8(c, (unsigned)v);
}

#define ISSUED ((int64_t)20000 * DAY + 5)

static void
c_snapshot_header(struct craft *c, uint64_t count)
{
    c->n = 0;
    c_bytes(c, "PGSN", 4);
    c_u8(c, 1);
    c_u8(c, 0);
    c_u8(c, 4);
    c_bytes(c, "test", 4);
    c_be64(c, 1);
    c_be64(c, count);
    c_be64(c, (uint64_t)ISSUED);
}

static void
c_snapshot_trailer(struct craft *c, uint64_t count, const struct state_digest *st)
{
    uint8_t ser[STATE_DIGEST_SERIAL_LEN];
    struct state_digest empty;

    state_digest_init(&empty);
    state_digest_serialise(st != NULL ? st : &empty, ser);
    c_bytes(c, "PGEN", 4);
    c_be64(c, count);
    c_bytes(c, ser, sizeof ser);
}

/* flags with a 16-byte gap of key 01..10, inline template (reason 3, id type 2, "AB-", 4 digits),
 * number 42, valid_from = base + 2 days, open. */
static void
c_record_a(struct craft *c, unsigned extra_flags)
{
    c_u8(c, 16 | 0x40 | extra_flags);
    for (unsigned i = 1; i <= 16; i++) {
        c_u8(c, i);
    }
    c_varint(c, 0);
    c_varint(c, 3);
    c_u8(c, 2);
    c_u8(c, 3);
    c_bytes(c, "AB-", 3);
    c_u8(c, 4);
    c_varint(c, 42);
    c_varint(c, 2 * 2 << 1 | 1); /* zigzag(2) = 4, day-coded */
}

static enum posgate_err
read_craft(struct craft *c, char *msg, size_t cap, struct feed_entry *first)
{
    struct feed_source src;
    struct feed_mem m;
    struct feed_reader *r = NULL;
    enum feed_item item;
    struct feed_entry e;
    enum posgate_err err;
    int seen = 0;

    feed_source_mem(&src, &m, c->b, c->n);
    err = feed_reader_new(&src, 0, &r);
    while (err == POSGATE_OK) {
        err = feed_reader_next(r, &item, &e);
        if (err != POSGATE_OK || item == FEED_ITEM_END) {
            break;
        }
        if (!seen && first != NULL) {
            *first = e;
        }
        seen = 1;
    }
    snprintf(msg, cap, "%s", feed_reader_errmsg(r));
    feed_reader_free(r);
    return err;
}

static void
test_crafted(void)
{
    struct craft c;
    struct feed_entry e;
    char msg[FEED_ERRMSG_MAX];
    uint8_t key_a[16];
    size_t rec;

    for (unsigned i = 0; i < 16; i++) {
        key_a[i] = (uint8_t)(i + 1);
    }
    /* a record encoded by hand decodes as documented */
    c_snapshot_header(&c, 1);
    c_record_a(&c, 0x20);
    c_snapshot_trailer(&c, 1, NULL);
    CHECK_OK(read_craft(&c, msg, sizeof msg, &e));
    CHECK(memcmp(e.key, key_a, 16) == 0);
    CHECK_STR(e.listing_id, "AB-0042");
    CHECK_INT(e.reason, 3);
    CHECK_INT(e.id_type, 2);
    CHECK_INT(e.kind, FEED_KIND_EXEMPT);
    CHECK_INT(e.valid_from, (int64_t)20002 * DAY);
    CHECK(e.valid_until == FEED_UNTIL_OPEN);
    CHECK_INT(e.scope_count, 0);

    /* the writer produces exactly these bytes */
    {
        struct buf out = BUF_INIT(1 << 16);
        struct feed_sink sink;
        struct feed_writer *w = NULL;
        struct feed_header h;
        struct state_digest empty;
        memset(&h, 0, sizeof h);
        h.body = FEED_BODY_SNAPSHOT;
        snprintf(h.list_id, sizeof h.list_id, "test");
        h.seq = 1;
        h.count = 1;
        h.issued_at = ISSUED;
        feed_sink_buf(&sink, &out);
        state_digest_init(&empty);
        CHECK_OK(feed_writer_new(&sink, &w));
        CHECK_OK(feed_writer_begin(w, &h, FEED_WRITE_CALLER_STATE));
        CHECK_OK(feed_writer_add(w, &e));
        CHECK_OK(feed_writer_finish(w, &empty));
        CHECK_INT(out.len, c.n);
        CHECK(out.len == c.n && memcmp(out.data, c.b, c.n) == 0);
        feed_writer_free(w);
        buf_free(&out);
    }

    c_snapshot_header(&c, 1);
    rec = c.n;
    /* varint overflow: 10 bytes with too high a last byte */
    c_u8(&c, 0x40);
    for (int i = 0; i < 9; i++) {
        c_u8(&c, 0xff);
    }
    c_u8(&c, 0x02);
    c_snapshot_trailer(&c, 1, NULL);
    CHECK_ERR(read_craft(&c, msg, sizeof msg, NULL), POSGATE_ERR_PARSE);
    CHECK_CONTAINS(msg, "record 1: varint overflows 64 bits");
    {
        char want[64];
        snprintf(want, sizeof want, "offset %zu:", rec + 1);
        CHECK_CONTAINS(msg, want);
    }
    /* a varint running past 10 bytes */
    c.n = rec;
    c_u8(&c, 0x40);
    for (int i = 0; i < 12; i++) {
        c_u8(&c, 0x80);
    }
    c_snapshot_trailer(&c, 1, NULL);
    CHECK_ERR(read_craft(&c, msg, sizeof msg, NULL), POSGATE_ERR_PARSE);
    CHECK_CONTAINS(msg, "varint");
    /* non-minimal varint */
    c.n = rec;
    c_u8(&c, 0x40);
    c_u8(&c, 0x80);
    c_u8(&c, 0x00);
    c_snapshot_trailer(&c, 1, NULL);
    CHECK_ERR(read_craft(&c, msg, sizeof msg, NULL), POSGATE_ERR_PARSE);
    CHECK_CONTAINS(msg, "not minimal");
    /* key gap of 17 bytes, and with a leading zero */
    c.n = rec;
    c_u8(&c, 17);
    c_snapshot_trailer(&c, 1, NULL);
    CHECK_ERR(read_craft(&c, msg, sizeof msg, NULL), POSGATE_ERR_PARSE);
    CHECK_CONTAINS(msg, "key gap of 17 bytes, at most 16");
    c.n = rec;
    c_u8(&c, 2);
    c_u8(&c, 0);
    c_u8(&c, 1);
    c_snapshot_trailer(&c, 1, NULL);
    CHECK_ERR(read_craft(&c, msg, sizeof msg, NULL), POSGATE_ERR_PARSE);
    CHECK_CONTAINS(msg, "leading zero");
    /* over-long listing ids */
    c.n = rec;
    c_u8(&c, 0x41);
    c_u8(&c, 1);
    c_varint(&c, 0);
    c_varint(&c, 1);
    c_u8(&c, 0);
    c_u8(&c, 65);
    for (int i = 0; i < 65; i++) {
        c_u8(&c, 'A');
    }
    c_u8(&c, 0);
    c_snapshot_trailer(&c, 1, NULL);
    CHECK_ERR(read_craft(&c, msg, sizeof msg, NULL), POSGATE_ERR_PARSE);
    CHECK_CONTAINS(msg, "stem of 65 bytes, at most 64");
    c.n = rec;
    c_u8(&c, 0x41);
    c_u8(&c, 1);
    c_varint(&c, 0);
    c_varint(&c, 1);
    c_u8(&c, 0);
    c_u8(&c, 60);
    for (int i = 0; i < 60; i++) {
        c_u8(&c, 'A');
    }
    c_u8(&c, 10);
    c_varint(&c, 5);
    c_varint(&c, 1);
    c_snapshot_trailer(&c, 1, NULL);
    CHECK_ERR(read_craft(&c, msg, sizeof msg, NULL), POSGATE_ERR_PARSE);
    CHECK_CONTAINS(msg, "listing id of 70 bytes, expected 1..64");
    /* a number with more digits than its width, and a template never defined */
    c.n = rec;
    c_u8(&c, 0x41);
    c_u8(&c, 1);
    c_varint(&c, 0);
    c_varint(&c, 1);
    c_u8(&c, 0);
    c_u8(&c, 1);
    c_u8(&c, 'A');
    c_u8(&c, 2);
    c_varint(&c, 100);
    c_varint(&c, 1);
    c_snapshot_trailer(&c, 1, NULL);
    CHECK_ERR(read_craft(&c, msg, sizeof msg, NULL), POSGATE_ERR_PARSE);
    CHECK_CONTAINS(msg, "listing number 100 has more than 2 digits");
    c.n = rec;
    c_u8(&c, 0x41);
    c_u8(&c, 1);
    c_varint(&c, 1);
    c_snapshot_trailer(&c, 1, NULL);
    CHECK_ERR(read_craft(&c, msg, sizeof msg, NULL), POSGATE_ERR_PARSE);
    CHECK_CONTAINS(msg, "template 1, only 0 defined");
    /* non-canonical listing split, non-printable stem */
    c.n = rec;
    c_u8(&c, 0x41);
    c_u8(&c, 1);
    c_varint(&c, 0);
    c_varint(&c, 1);
    c_u8(&c, 0);
    c_u8(&c, 2);
    c_bytes(&c, "A1", 2);
    c_u8(&c, 1);
    c_varint(&c, 5);
    c_varint(&c, 1);
    c_snapshot_trailer(&c, 1, NULL);
    CHECK_ERR(read_craft(&c, msg, sizeof msg, NULL), POSGATE_ERR_PARSE);
    CHECK_CONTAINS(msg, "stem ends in a digit");
    c.n = rec;
    c_u8(&c, 0x41);
    c_u8(&c, 1);
    c_varint(&c, 0);
    c_varint(&c, 1);
    c_u8(&c, 0);
    c_u8(&c, 2);
    c_bytes(&c, "A\n", 2);
    c_u8(&c, 0);
    c_varint(&c, 1);
    c_snapshot_trailer(&c, 1, NULL);
    CHECK_ERR(read_craft(&c, msg, sizeof msg, NULL), POSGATE_ERR_PARSE);
    CHECK_CONTAINS(msg, "not printable");
    /* reason past 65535 */
    c.n = rec;
    c_u8(&c, 0x41);
    c_u8(&c, 1);
    c_varint(&c, 0);
    c_varint(&c, 65536);
    c_snapshot_trailer(&c, 1, NULL);
    CHECK_ERR(read_craft(&c, msg, sizeof msg, NULL), POSGATE_ERR_PARSE);
    CHECK_CONTAINS(msg, "reason 65536");

    /* times: seconds that are whole days, a zero-length window, out of range */
    c.n = rec;
    c_record_a(&c, 0);
    c.n--; /* drop the day-coded valid_from */
    c_varint(&c, (uint64_t)DAY << 2);
    c_snapshot_trailer(&c, 1, NULL);
    CHECK_ERR(read_craft(&c, msg, sizeof msg, NULL), POSGATE_ERR_PARSE);
    CHECK_CONTAINS(msg, "not canonical");
    c.n = rec;
    c_record_a(&c, 0);
    c.b[rec] &= (uint8_t)~0x40; /* not open: a length follows */
    c_varint(&c, 0);
    c_snapshot_trailer(&c, 1, NULL);
    CHECK_ERR(read_craft(&c, msg, sizeof msg, NULL), POSGATE_ERR_PARSE);
    CHECK_CONTAINS(msg, "validity length 0");
    c.n = rec;
    c_record_a(&c, 0);
    c.n--;
    c_varint(&c, (uint64_t)(2 * 30000 - 1) << 1 | 1); /* base - 30000 days < 0 */
    c_snapshot_trailer(&c, 1, NULL);
    CHECK_ERR(read_craft(&c, msg, sizeof msg, NULL), POSGATE_ERR_PARSE);
    CHECK_CONTAINS(msg, "valid_from");

    /* scopes: none, too many, past 65535; a valid one decodes */
    c.n = rec;
    c_record_a(&c, 0x80);
    c_varint(&c, 0);
    c_snapshot_trailer(&c, 1, NULL);
    CHECK_ERR(read_craft(&c, msg, sizeof msg, NULL), POSGATE_ERR_PARSE);
    CHECK_CONTAINS(msg, "0 scope services, expected 1..32");
    c.n = rec;
    c_record_a(&c, 0x80);
    c_varint(&c, 33);
    c_snapshot_trailer(&c, 1, NULL);
    CHECK_ERR(read_craft(&c, msg, sizeof msg, NULL), POSGATE_ERR_PARSE);
    c.n = rec;
    c_record_a(&c, 0x80);
    c_varint(&c, 2);
    c_varint(&c, 65000);
    c_varint(&c, 600);
    c_snapshot_trailer(&c, 1, NULL);
    CHECK_ERR(read_craft(&c, msg, sizeof msg, NULL), POSGATE_ERR_PARSE);
    CHECK_CONTAINS(msg, "past 65535");
    c.n = rec;
    c_record_a(&c, 0x80);
    c_varint(&c, 3);
    c_varint(&c, 4);
    c_varint(&c, 0);
    c_varint(&c, 9);
    c_snapshot_trailer(&c, 1, NULL);
    CHECK_OK(read_craft(&c, msg, sizeof msg, &e));
    CHECK_INT(e.scope_count, 3);
    CHECK_INT(e.scope[0], 4);
    CHECK_INT(e.scope[1], 5);
    CHECK_INT(e.scope[2], 15);

    /* two records: duplicate, out of order, overflowing key, template defined twice */
    c_snapshot_header(&c, 2);
    rec = c.n;
    c_record_a(&c, 0);
    c_u8(&c, 0x40); /* gap 0: same key */
    c_varint(&c, 1);
    c_varint(&c, 42);
    c_varint(&c, 9);
    c_snapshot_trailer(&c, 2, NULL);
    CHECK_ERR(read_craft(&c, msg, sizeof msg, NULL), POSGATE_ERR_PARSE);
    CHECK_CONTAINS(msg, "record 2: duplicate (key, listing id \"AB-0042\")");
    c.n = rec;
    c_record_a(&c, 0);
    c_u8(&c, 0x40);
    c_varint(&c, 1);
    c_varint(&c, 41);
    c_varint(&c, 9);
    c_snapshot_trailer(&c, 2, NULL);
    CHECK_ERR(read_craft(&c, msg, sizeof msg, NULL), POSGATE_ERR_PARSE);
    CHECK_CONTAINS(msg, "record 2: key equal to previous and listing id \"AB-0041\" not greater");
    c.n = rec;
    c_record_a(&c, 0);
    c_u8(&c, 0x40);
    c_varint(&c, 1);
    c_varint(&c, 43);
    c_varint(&c, 9);
    c_snapshot_trailer(&c, 2, NULL);
    CHECK_OK(read_craft(&c, msg, sizeof msg, NULL)); /* same key, greater listing id */
    c.n = rec;
    c_u8(&c, 0x40 | 16);
    for (int i = 0; i < 16; i++) {
        c_u8(&c, 0xff);
    }
    c_varint(&c, 0);
    c_varint(&c, 1);
    c_u8(&c, 0);
    c_u8(&c, 1);
    c_u8(&c, 'A');
    c_u8(&c, 0);
    c_varint(&c, 1);
    c_u8(&c, 0x41);
    c_u8(&c, 1);
    c_snapshot_trailer(&c, 2, NULL);
    CHECK_ERR(read_craft(&c, msg, sizeof msg, NULL), POSGATE_ERR_PARSE);
    CHECK_CONTAINS(msg, "overflows 128 bits");
    c.n = rec;
    c_record_a(&c, 0);
    c_u8(&c, 0x41);
    c_u8(&c, 1);
    c_varint(&c, 0);
    c_varint(&c, 3);
    c_u8(&c, 2);
    c_u8(&c, 3);
    c_bytes(&c, "AB-", 3);
    c_u8(&c, 4);
    c_varint(&c, 42);
    c_varint(&c, 9);
    c_snapshot_trailer(&c, 2, NULL);
    CHECK_ERR(read_craft(&c, msg, sizeof msg, NULL), POSGATE_ERR_PARSE);
    CHECK_CONTAINS(msg, "template defined twice");
}

static void
delta_header(struct feed_header *h, uint64_t rem, uint64_t add)
{
    memset(h, 0, sizeof *h);
    h->body = FEED_BODY_DELTA;
    snprintf(h->list_id, sizeof h->list_id, "cn-spc");
    h->base_seq = 7;
    h->seq = 8;
    h->removals = rem;
    h->additions = add;
    h->issued_at = 1718100000;
    memset(h->base_digest, 0xaa, sizeof h->base_digest);
    memset(h->result_digest, 0xbb, sizeof h->result_digest);
}

static void
test_delta(void)
{
    size_t n = 20000, nrem = 0, nadd = 0, nnew;
    struct feed_entry *base = calloc(n, sizeof *base);
    struct feed_entry *rem = calloc(n, sizeof *rem);
    struct feed_entry *add = calloc(n, sizeof *add);
    struct feed_entry *fresh = calloc(n / 10, sizeof *fresh);
    struct buf body = BUF_INIT(1 << 24);
    struct feed_sink sink;
    struct feed_writer *w = NULL;
    struct feed_header h;
    struct feed_source src;
    struct feed_mem m;
    struct feed_reader *r = NULL;
    const struct feed_header *hp;
    enum feed_item item;
    struct feed_entry e;
    struct state_digest st_base, st_applied, st_new;
    size_t ir = 0, ia = 0, cut_ok = 1;
    char msg[FEED_ERRMSG_MAX];
    enum posgate_err err = POSGATE_OK;

    if (base == NULL || rem == NULL || add == NULL || fresh == NULL) {
        CHECK(0);
        goto out;
    }
    n = random_list(base, n);
    nnew = random_list(fresh, n / 10 < 2000 ? n / 10 : 2000);
    /* every 50th entry removed, every 70th changed (removed and added back with a new until) */
    for (size_t i = 0; i < n; i++) {
        if (i % 50 == 0 || i % 70 == 0) {
            rem[nrem++] = base[i];
        }
    }
    for (size_t i = 0, j = 0; i < n || j < nnew;) {
        if (j >= nnew || (i < n && feed_entry_compare(&base[i], &fresh[j]) < 0)) {
            if (i % 70 == 0 && i % 50 != 0) {
                add[nadd] = base[i];
                add[nadd].valid_until = FEED_UNTIL_OPEN;
                nadd++;
            }
            i++;
        } else {
            if (i >= n || feed_entry_compare(&base[i], &fresh[j]) != 0) {
                add[nadd++] = fresh[j];
            }
            j++;
        }
    }
    feed_sink_buf(&sink, &body);
    delta_header(&h, nrem, nadd);
    CHECK_OK(feed_writer_new(&sink, &w));
    CHECK_OK(feed_writer_begin(w, &h, 0));
    for (size_t i = 0; i < nrem; i++) {
        CHECK_OK(feed_writer_remove(w, &rem[i]));
    }
    for (size_t i = 0; i < nadd; i++) {
        CHECK_OK(feed_writer_add(w, &add[i]));
    }
    CHECK_OK(feed_writer_finish(w, NULL));
    CHECK(feed_writer_state(w) == NULL);
    feed_writer_free(w);
    w = NULL;
    printf("delta: %zu removals, %zu additions, %zu bytes, %.2f bytes/change\n", nrem, nadd,
           body.len, (double)body.len / (double)(nrem + nadd));

    /* read back; apply to the base digest; compare with the new list's digest */
    state_digest_init(&st_base);
    for (size_t i = 0; i < n; i++) {
        state_digest_add(&st_base, &base[i]);
    }
    st_applied = st_base;
    feed_source_mem(&src, &m, body.data, body.len);
    CHECK_OK(feed_reader_new(&src, FEED_READ_VERIFY_DIGEST, &r));
    CHECK_OK(feed_reader_header(r, &hp));
    CHECK_INT(hp->body, FEED_BODY_DELTA);
    CHECK_INT(hp->base_seq, 7);
    CHECK_INT(hp->seq, 8);
    CHECK_INT(hp->removals, nrem);
    CHECK_INT(hp->additions, nadd);
    CHECK_INT(hp->count, 0);
    CHECK(hp->base_digest[0] == 0xaa && hp->result_digest[31] == 0xbb);
    while ((err = feed_reader_next(r, &item, &e)) == POSGATE_OK && item != FEED_ITEM_END) {
        if (item == FEED_ITEM_REMOVE) {
            CHECK(ia == 0);
            if (ir < nrem && feed_entry_compare(&e, &rem[ir]) == 0) {
                state_digest_remove(&st_applied, &rem[ir]); /* the full entry, as a store would */
            } else {
                CHECK_FAIL("removal differs");
            }
            CHECK_INT(e.reason, 0);
            ir++;
        } else {
            CHECK_INT(item, FEED_ITEM_ADD);
            if (ia >= nadd || !feed_entry_equal(&e, &add[ia])) {
                CHECK_FAIL("addition differs");
            }
            state_digest_add(&st_applied, &e);
            ia++;
        }
    }
    CHECK_OK(err);
    CHECK_INT(ir, nrem);
    CHECK_INT(ia, nadd);
    CHECK(feed_reader_trailer_state(r) == NULL);
    feed_reader_free(r);
    r = NULL;
    /* the new list from scratch: base minus removals plus additions */
    state_digest_init(&st_new);
    for (size_t i = 0; i < n; i++) {
        if (i % 50 != 0 && i % 70 != 0) {
            state_digest_add(&st_new, &base[i]);
        }
    }
    for (size_t i = 0; i < nadd; i++) {
        state_digest_add(&st_new, &add[i]);
    }
    CHECK(state_digest_equal(&st_applied, &st_new));

    /* truncation anywhere in a small delta */
    body.len = 0;
    delta_header(&h, 3, 2);
    CHECK_OK(feed_writer_new(&sink, &w));
    CHECK_OK(feed_writer_begin(w, &h, 0));
    for (size_t i = 0; i < 3; i++) {
        CHECK_OK(feed_writer_remove(w, &rem[i]));
    }
    CHECK_OK(feed_writer_add(w, &add[0]));
    CHECK_OK(feed_writer_add(w, &add[1]));
    CHECK_OK(feed_writer_finish(w, NULL));
    feed_writer_free(w);
    w = NULL;
    CHECK_OK(read_mem(body.data, body.len, 0, msg, sizeof msg));
    for (size_t cut = 0; cut < body.len; cut++) {
        if (read_mem(body.data, cut, 0, msg, sizeof msg) != POSGATE_ERR_PARSE ||
            strstr(msg, "truncated") == NULL) {
            cut_ok = 0;
            fprintf(stderr, "delta cut at %zu: %s\n", cut, msg);
        }
    }
    CHECK(cut_ok);
    /* removal flags must be clear: the first removal record starts after the 117-byte header */
    body.data[7 + 6 + 40 + 64] |= 0x20;
    CHECK_ERR(read_mem(body.data, body.len, 0, msg, sizeof msg), POSGATE_ERR_PARSE);
    CHECK_CONTAINS(msg, "removal 1: removal flags");
    body.data[7 + 6 + 40 + 64] &= (uint8_t)~0x20;
    /* base seq not below seq */
    body.data[7 + 6 + 7] = 9;
    CHECK_ERR(read_mem(body.data, body.len, 0, msg, sizeof msg), POSGATE_ERR_PARSE);
    CHECK_CONTAINS(msg, "base seq 9 not below seq 8");
    body.data[7 + 6 + 7] = 7;
    body.data[body.len - 1] = 3; /* trailer additions */
    CHECK_ERR(read_mem(body.data, body.len, 0, msg, sizeof msg), POSGATE_ERR_PARSE);
    CHECK_CONTAINS(msg, "count mismatch");

    /* writer refusals in a delta */
    body.len = 0;
    CHECK_OK(feed_writer_new(&sink, &w));
    CHECK_OK(feed_writer_begin(w, &h, 0));
    CHECK_ERR(feed_writer_add(w, &add[0]), POSGATE_ERR_INVALID);
    CHECK_CONTAINS(feed_writer_errmsg(w), "addition before all 3 removals");
    CHECK_ERR(feed_writer_remove(w, &rem[0]), POSGATE_ERR_STATE); /* failed stays failed */
    feed_writer_free(w);
    CHECK_OK(feed_writer_new(&sink, &w));
    CHECK_OK(feed_writer_begin(w, &h, 0));
    CHECK_OK(feed_writer_remove(w, &rem[1]));
    CHECK_ERR(feed_writer_remove(w, &rem[0]), POSGATE_ERR_INVALID);
    CHECK_CONTAINS(feed_writer_errmsg(w), "removal 2: (key, listing id");
    feed_writer_free(w);
    CHECK_OK(feed_writer_new(&sink, &w));
    CHECK_OK(feed_writer_begin(w, &h, 0));
    for (size_t i = 0; i < 3; i++) {
        CHECK_OK(feed_writer_remove(w, &rem[i]));
    }
    CHECK_ERR(feed_writer_remove(w, &rem[3]), POSGATE_ERR_INVALID);
    CHECK_CONTAINS(feed_writer_errmsg(w), "declared 3 removals");
    feed_writer_free(w);
    CHECK_OK(feed_writer_new(&sink, &w));
    CHECK_OK(feed_writer_begin(w, &h, 0));
    CHECK_OK(feed_writer_remove(w, &rem[0]));
    CHECK_ERR(feed_writer_finish(w, NULL), POSGATE_ERR_INVALID);
    CHECK_CONTAINS(feed_writer_errmsg(w), "declared 3 removals and 2 additions, 1 and 0");
    feed_writer_free(w);
    w = NULL;
    h.base_seq = 8;
    CHECK_OK(feed_writer_new(&sink, &w));
    CHECK_ERR(feed_writer_begin(w, &h, 0), POSGATE_ERR_INVALID);
    CHECK_CONTAINS(feed_writer_errmsg(w), "base seq 8 not below seq 8");
out:
    feed_writer_free(w);
    buf_free(&body);
    free(base);
    free(rem);
    free(add);
    free(fresh);
}

static void
test_writer_refusals(void)
{
    struct feed_entry v[4];
    struct buf out = BUF_INIT(1 << 20);
    struct feed_sink sink;
    struct feed_writer *w = NULL;
    struct feed_header h;
    struct state_digest st;
    struct feed_entry bad;

    feed_sink_buf(&sink, &out);
    CHECK_INT(random_list(v, 4), 4);
    snap_header(&h, 4);

    /* out of order */
    CHECK_OK(feed_writer_new(&sink, &w));
    CHECK_OK(feed_writer_begin(w, &h, 0));
    CHECK_OK(feed_writer_add(w, &v[1]));
    CHECK_ERR(feed_writer_add(w, &v[0]), POSGATE_ERR_INVALID);
    CHECK_CONTAINS(feed_writer_errmsg(w), "record 2: (key, listing id");
    CHECK_CONTAINS(feed_writer_errmsg(w), "not greater than the previous record's");
    CHECK_ERR(feed_writer_add(w, &v[2]), POSGATE_ERR_STATE);
    CHECK_ERR(feed_writer_finish(w, NULL), POSGATE_ERR_STATE);
    feed_writer_free(w);
    /* duplicate, and same key with a smaller listing id */
    CHECK_OK(feed_writer_new(&sink, &w));
    CHECK_OK(feed_writer_begin(w, &h, 0));
    CHECK_OK(feed_writer_add(w, &v[0]));
    CHECK_ERR(feed_writer_add(w, &v[0]), POSGATE_ERR_INVALID);
    CHECK_CONTAINS(feed_writer_errmsg(w), "record 2: duplicate (key, listing id");
    feed_writer_free(w);
    bad = v[0];
    set_lid(&bad, "A");
    set_lid(&v[0], "B");
    CHECK_OK(feed_writer_new(&sink, &w));
    CHECK_OK(feed_writer_begin(w, &h, 0));
    CHECK_OK(feed_writer_add(w, &v[0]));
    CHECK_ERR(feed_writer_add(w, &bad), POSGATE_ERR_INVALID);
    feed_writer_free(w);
    /* a broken entry, too many records, too few, a given state that differs */
    CHECK_OK(feed_writer_new(&sink, &w));
    CHECK_OK(feed_writer_begin(w, &h, 0));
    bad = v[0];
    bad.valid_until = bad.valid_from;
    CHECK_ERR(feed_writer_add(w, &bad), POSGATE_ERR_INVALID);
    CHECK_CONTAINS(feed_writer_errmsg(w), "record 1: valid_until");
    feed_writer_free(w);
    CHECK_OK(feed_writer_new(&sink, &w));
    CHECK_OK(feed_writer_begin(w, &h, 0));
    bad = v[0];
    bad.listing_id_len = 3; /* disagrees with the string */
    CHECK_ERR(feed_writer_add(w, &bad), POSGATE_ERR_INVALID);
    feed_writer_free(w);
    h.count = 2;
    CHECK_OK(feed_writer_new(&sink, &w));
    CHECK_OK(feed_writer_begin(w, &h, 0));
    CHECK_OK(feed_writer_add(w, &v[0]));
    CHECK_OK(feed_writer_add(w, &v[1]));
    CHECK_ERR(feed_writer_add(w, &v[2]), POSGATE_ERR_INVALID);
    CHECK_CONTAINS(feed_writer_errmsg(w), "record 3: the header declared 2");
    feed_writer_free(w);
    CHECK_OK(feed_writer_new(&sink, &w));
    CHECK_OK(feed_writer_begin(w, &h, 0));
    CHECK_OK(feed_writer_add(w, &v[0]));
    CHECK_ERR(feed_writer_finish(w, NULL), POSGATE_ERR_INVALID);
    CHECK_CONTAINS(feed_writer_errmsg(w), "declared 2 records, 1 were written");
    feed_writer_free(w);
    CHECK_OK(feed_writer_new(&sink, &w));
    CHECK_OK(feed_writer_begin(w, &h, 0));
    CHECK_OK(feed_writer_add(w, &v[0]));
    CHECK_OK(feed_writer_add(w, &v[1]));
    state_digest_init(&st);
    CHECK_ERR(feed_writer_finish(w, &st), POSGATE_ERR_INVALID);
    CHECK_CONTAINS(feed_writer_errmsg(w), "differs");
    feed_writer_free(w);
    CHECK_OK(feed_writer_new(&sink, &w));
    CHECK_OK(feed_writer_begin(w, &h, FEED_WRITE_CALLER_STATE));
    CHECK_OK(feed_writer_add(w, &v[0]));
    CHECK_OK(feed_writer_add(w, &v[1]));
    CHECK_ERR(feed_writer_finish(w, NULL), POSGATE_ERR_INVALID);
    feed_writer_free(w);
    CHECK_OK(feed_writer_new(&sink, &w));
    CHECK_OK(feed_writer_begin(w, &h, 0));
    CHECK_ERR(feed_writer_remove(w, &v[0]), POSGATE_ERR_INVALID);
    CHECK_CONTAINS(feed_writer_errmsg(w), "removal in a snapshot");
    feed_writer_free(w);
    /* bad headers */
    CHECK_OK(feed_writer_new(&sink, &w));
    snprintf(h.list_id, sizeof h.list_id, "../etc");
    CHECK_ERR(feed_writer_begin(w, &h, 0), POSGATE_ERR_INVALID);
    CHECK_CONTAINS(feed_writer_errmsg(w), "list id");
    feed_writer_free(w);
    snap_header(&h, FEED_MAX_ENTRIES + 1);
    CHECK_OK(feed_writer_new(&sink, &w));
    CHECK_ERR(feed_writer_begin(w, &h, 0), POSGATE_ERR_TOOBIG);
    feed_writer_free(w);
    snap_header(&h, 1);
    h.seq = 0;
    CHECK_OK(feed_writer_new(&sink, &w));
    CHECK_ERR(feed_writer_begin(w, &h, 0), POSGATE_ERR_INVALID);
    feed_writer_free(w);
    snap_header(&h, 1);
    CHECK_OK(feed_writer_new(&sink, &w));
    CHECK_ERR(feed_writer_begin(w, &h, 0x10), POSGATE_ERR_INVALID);
    feed_writer_free(w);
    buf_free(&out);
}

/* More templates than the dictionary remembers: later ones stay inline on both sides. */
static void
test_dictionary_full(void)
{
    size_t n = FEED_TEMPLATES_MAX + 500;
    struct feed_entry *v = calloc(n * 2, sizeof *v);
    struct buf body = BUF_INIT(1 << 24);
    struct feed_source src;
    struct feed_mem m;
    char msg[FEED_ERRMSG_MAX], lid[32];

    if (v == NULL) {
        CHECK(0);
        return;
    }
    for (size_t i = 0; i < n * 2; i++) {
        random_entry(&v[i], NULL);
        snprintf(lid, sizeof lid, "S%zu-", i % n); /* each stem twice */
        set_lid(&v[i], lid);
    }
    qsort(v, n * 2, sizeof *v, cmp_entries);
    CHECK_OK(write_snapshot(v, n * 2, &body, NULL));
    feed_source_mem(&src, &m, body.data, body.len);
    CHECK_OK(read_all(&src, FEED_READ_VERIFY_DIGEST, v, n * 2, msg, sizeof msg, NULL));
    buf_free(&body);
    free(v);
}

/* feed_listing_split(id, len) gives stem_len, width and num. */
static void
check_split(const char *id, size_t len, size_t stem_len, unsigned width, uint64_t num)
{
    size_t got_stem = 99;
    uint8_t got_width = 99;
    uint64_t got_num = 99;

    feed_listing_split(id, len, &got_stem, &got_width, &got_num);
    CHECK_INT(got_stem, stem_len);
    CHECK_INT(got_width, width);
    CHECK(got_num == num);
}

/* feed_listing_split, the one split of a listing id shared by the record format and the store:
 * fixed cases, then random ids whose parts must give the id back (stem || number zero-padded to
 * the width) with a stem that ends in a digit only when the run was cut at 18 digits. */
static void
test_listing_split(void)
{
    static const char alphabet[] = "0123456789-AZaz./ \x7e";
    char id[FEED_LISTING_ID_MAX + 1], back[FEED_LISTING_ID_MAX + 24];

    check_split("SPC-2024-000123", 15, 9, 6, 123);
    check_split("ABC", 3, 3, 0, 0);
    check_split("123", 3, 0, 3, 123);
    check_split("0", 1, 0, 1, 0);
    check_split("000", 3, 0, 3, 0);
    check_split("A1B2", 4, 3, 1, 2);
    check_split("", 0, 0, 0, 0);
    check_split("AB12XY", 4, 2, 2, 12);   /* only id[0..len) is read */
    check_split("X\xd9\xa3", 3, 3, 0, 0); /* a digit outside ASCII is not a digit */
    check_split("999999999999999999", 18, 0, 18, 999999999999999999ULL);
    check_split("1234567890123456789", 19, 1, 18, 234567890123456789ULL);
    memset(id, '7', FEED_LISTING_ID_MAX);
    check_split(id, FEED_LISTING_ID_MAX, FEED_LISTING_ID_MAX - 18, 18, 777777777777777777ULL);

    for (int i = 0; i < 100000; i++) {
        size_t len = 1 + rnd_below(FEED_LISTING_ID_MAX), stem_len;
        uint8_t width;
        uint64_t num;
        int n;

        for (size_t j = 0; j < len; j++) {
            /* mostly digits, so that long runs come up */
            id[j] = rnd_below(3) != 0 ? (char)('0' + rnd_below(10))
                                      : alphabet[rnd_below(sizeof alphabet - 1)];
        }
        id[len] = 0;
        feed_listing_split(id, len, &stem_len, &width, &num);
        CHECK(width <= FEED_NUM_DIGITS_MAX && stem_len + width == len);
        CHECK(num < 1000000000000000000ULL);
        CHECK(width == FEED_NUM_DIGITS_MAX || stem_len == 0 || id[stem_len - 1] < '0' ||
              id[stem_len - 1] > '9');
        memcpy(back, id, stem_len);
        n = width == 0 ? 0
                       : snprintf(back + stem_len, sizeof back - stem_len, "%0*llu", (int)width,
                                  (unsigned long long)num);
        CHECK(n == (int)width && memcmp(back, id, len) == 0);
        if (width == 0) {
            CHECK(num == 0);
        }
    }
}

int
main(void)
{
    test_safety();
    test_roundtrip();
    test_truncation_and_garbage();
    test_crafted();
    test_delta();
    test_writer_refusals();
    test_dictionary_full();
    test_listing_split();
    return test_summary("feed_records");
}
