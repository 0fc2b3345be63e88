/* SPDX-License-Identifier: Apache-2.0 */
/*
 * feed_format_bench: measures the snapshot and delta formats on a synthetic list (default
 * 1,000,000 entries, listing ids like "CN-SPC-2024-0012345") and prints bytes per entry, bytes
 * per changed entry and write/read/digest throughput. Built, not run by ctest; figures go to
 * docs/feed.md. Usage: feed_format_bench [--entries N] [--out SNAPSHOT_FILE]
 */
#define _POSIX_C_SOURCE 200809L
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "feed_records.h"
#include "plat_clock.h"
#include "state_digest.h"

#define DAY 86400

static uint64_t
mix(uint64_t z)
{
    z += 0x9e3779b97f4a7c15ULL;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static int
cmp_key(const void *a, const void *b)
{
    return memcmp(a, b, FEED_KEY_LEN);
}

static void
make_keys(uint8_t *keys, size_t n, uint64_t seed)
{
    for (size_t i = 0; i < n; i++) {
        uint64_t a = mix(seed ^ (2 * i)), b = mix(seed ^ (2 * i + 1));
        memcpy(keys + i * FEED_KEY_LEN, &a, 8);
        memcpy(keys + i * FEED_KEY_LEN + 8, &b, 8);
    }
    qsort(keys, n, FEED_KEY_LEN, cmp_key);
}

/* The entry for a key: a realistic mix of years, reasons, id types, windows and scopes. */
static void
make_entry(struct feed_entry *e, const uint8_t *key, size_t n)
{
    uint64_t r;
    char lid[FEED_LISTING_ID_MAX + 1];
    int64_t day0 = 19000; /* 2022-01-08 */

    memcpy(&r, key + 4, 8);
    r = mix(r);
    memset(e, 0, sizeof *e);
    memcpy(e->key, key, FEED_KEY_LEN);
    snprintf(lid, sizeof lid, "CN-SPC-%04u-%07u", (unsigned)(2019 + r % 6),
             (unsigned)(1 + (r >> 8) % n));
    if (feed_entry_set_listing_id(e, lid) != POSGATE_OK) {
        abort();
    }
    e->reason = (uint16_t)((r >> 40) % 4);
    e->id_type = (r >> 44) % 10 == 0 ? 1 : 0;
    e->kind = (r >> 48) % 50 == 0 ? FEED_KIND_EXEMPT : FEED_KIND_RESTRICT;
    e->valid_from = (day0 + (int64_t)((r >> 20) % 2000)) * DAY;
    if ((r >> 52) % 5 == 0) {
        e->valid_until = FEED_UNTIL_OPEN;
    } else {
        e->valid_until = e->valid_from + (int64_t)(180 + (r >> 32) % 1650) * DAY;
    }
    if ((r >> 58) % 10 == 0) {
        e->scope_count = 1;
        e->scope[0] = (uint16_t)((r >> 60) % 8);
    }
}

static double
secs(uint64_t t0)
{
    return (double)(plat_mono_ns() - t0) / 1e9;
}

static void
header(struct feed_header *h, enum feed_body body, uint64_t count)
{
    memset(h, 0, sizeof *h);
    h->body = body;
    snprintf(h->list_id, sizeof h->list_id, "cn-spc");
    h->seq = 2;
    h->base_seq = body == FEED_BODY_DELTA ? 1 : 0;
    h->count = body == FEED_BODY_SNAPSHOT ? count : 0;
    h->issued_at = plat_wall_s();
}

static int
write_snapshot(const uint8_t *keys, size_t n, unsigned flags, struct buf *out,
               struct state_digest *st, double *elapsed)
{
    struct feed_sink sink;
    struct feed_writer *w = NULL;
    struct feed_header h;
    struct feed_entry e;
    struct state_digest given;
    uint64_t t0 = plat_mono_ns();
    int ok = 0;

    buf_reset(out);
    feed_sink_buf(&sink, out);
    header(&h, FEED_BODY_SNAPSHOT, n);
    state_digest_init(&given);
    if (feed_writer_new(&sink, &w) != POSGATE_OK || feed_writer_begin(w, &h, flags) != POSGATE_OK) {
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        make_entry(&e, keys + i * FEED_KEY_LEN, n);
        if (feed_writer_add(w, &e) != POSGATE_OK) {
            goto out;
        }
    }
    if (feed_writer_finish(w, (flags & FEED_WRITE_CALLER_STATE) ? st : NULL) != POSGATE_OK) {
        goto out;
    }
    if (!(flags & FEED_WRITE_CALLER_STATE)) {
        *st = *feed_writer_state(w);
    }
    ok = 1;
out:
    *elapsed = secs(t0);
    if (!ok) {
        fprintf(stderr, "write failed: %s\n", feed_writer_errmsg(w));
    }
    feed_writer_free(w);
    return ok;
}

static int
read_body(const struct buf *body, unsigned flags, uint64_t *records, double *elapsed)
{
    struct feed_source src;
    struct feed_mem m;
    struct feed_reader *r = NULL;
    const struct feed_header *h;
    enum feed_item item;
    struct feed_entry e;
    uint64_t t0 = plat_mono_ns();
    int ok = 0;

    feed_source_mem(&src, &m, body->data, body->len);
    if (feed_reader_new(&src, flags, &r) != POSGATE_OK || feed_reader_header(r, &h) != POSGATE_OK) {
        goto out;
    }
    for (;;) {
        if (feed_reader_next(r, &item, &e) != POSGATE_OK) {
            goto out;
        }
        if (item == FEED_ITEM_END) {
            break;
        }
    }
    ok = 1;
out:
    *elapsed = secs(t0);
    *records = feed_reader_records(r);
    if (!ok) {
        fprintf(stderr, "read failed: %s\n", feed_reader_errmsg(r));
    }
    feed_reader_free(r);
    return ok;
}

/* A delta changing 1% of the list: half removals of existing entries, half new entries. */
static int
write_delta(const uint8_t *keys, size_t n, struct buf *out, size_t *changes)
{
    size_t nrem = n / 200, nadd = n / 200;
    uint8_t *fresh = malloc((nadd > 0 ? nadd : 1) * FEED_KEY_LEN);
    struct feed_sink sink;
    struct feed_writer *w = NULL;
    struct feed_header h;
    struct feed_entry e;
    size_t step = nrem > 0 ? n / nrem : 1;
    int ok = 0;

    if (fresh == NULL) {
        return 0;
    }
    make_keys(fresh, nadd, 0xfeedULL);
    buf_reset(out);
    feed_sink_buf(&sink, out);
    header(&h, FEED_BODY_DELTA, 0);
    h.removals = nrem;
    h.additions = nadd;
    if (feed_writer_new(&sink, &w) != POSGATE_OK || feed_writer_begin(w, &h, 0) != POSGATE_OK) {
        goto out;
    }
    for (size_t i = 0; i < nrem; i++) {
        make_entry(&e, keys + i * step * FEED_KEY_LEN, n);
        if (feed_writer_remove(w, &e) != POSGATE_OK) {
            goto out;
        }
    }
    for (size_t i = 0; i < nadd; i++) {
        make_entry(&e, fresh + i * FEED_KEY_LEN, n);
        if (feed_writer_add(w, &e) != POSGATE_OK) {
            goto out;
        }
    }
    ok = feed_writer_finish(w, NULL) == POSGATE_OK;
out:
    if (!ok) {
        fprintf(stderr, "delta failed: %s\n", feed_writer_errmsg(w));
    }
    *changes = nrem + nadd;
    feed_writer_free(w);
    free(fresh);
    return ok;
}

int
main(int argc, char **argv)
{
    size_t n = 1000000, changes = 0;
    const char *out_path = NULL;
    uint8_t *keys;
    struct buf body = BUF_INIT((size_t)1 << 34);
    struct buf delta = BUF_INIT((size_t)1 << 30);
    struct state_digest st, st2;
    double tw, twn, tr, trv, tg;
    uint64_t recs = 0, t0;
    char hex[STATE_DIGEST_HEX_LEN + 1];

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--entries") == 0 && i + 1 < argc) {
            char *end;
            unsigned long long v = strtoull(argv[++i], &end, 10);
            if (*end != '\0' || v == 0 || v > FEED_MAX_ENTRIES) {
                fprintf(stderr, "--entries: expected 1..%llu, found \"%s\"\n", FEED_MAX_ENTRIES,
                        argv[i]);
                return 2;
            }
            n = (size_t)v;
        } else if (strcmp(argv[i], "--out") == 0 && i + 1 < argc) {
            out_path = argv[++i];
        } else {
            fprintf(stderr, "usage: feed_format_bench [--entries N] [--out SNAPSHOT_FILE]\n");
            return 2;
        }
    }
    keys = malloc(n * FEED_KEY_LEN);
    if (keys == NULL) {
        fprintf(stderr, "out of memory for %zu keys\n", n);
        return 5;
    }
    t0 = plat_mono_ns();
    make_keys(keys, n, 0x5eedULL);
    tg = secs(t0);
    printf("entries                      %zu (keys generated and sorted in %.2f s)\n", n, tg);

    if (!write_snapshot(keys, n, 0, &body, &st, &tw)) {
        return 5;
    }
    printf("snapshot bytes               %zu\n", body.len);
    printf("snapshot bytes/entry         %.2f\n", (double)body.len / (double)n);
    printf("write, hashing the digest    %.2f s, %.0f entries/s\n", tw, (double)n / tw);
    st2 = st;
    if (!write_snapshot(keys, n, FEED_WRITE_CALLER_STATE, &body, &st2, &twn)) {
        return 5;
    }
    printf("write, state given           %.2f s, %.0f entries/s, %.1f MB/s\n", twn, (double)n / twn,
           (double)body.len / twn / 1e6);
    if (!read_body(&body, 0, &recs, &tr)) {
        return 5;
    }
    printf("read                         %.2f s, %.0f entries/s, %.1f MB/s\n", tr,
           (double)recs / tr, (double)body.len / tr / 1e6);
    if (!read_body(&body, FEED_READ_VERIFY_DIGEST, &recs, &trv)) {
        return 5;
    }
    printf("read + verify digest         %.2f s, %.0f entries/s\n", trv, (double)recs / trv);
    state_digest_hex(&st, hex);
    printf("state digest                 %s\n", hex);
    if (out_path != NULL) {
        FILE *f = fopen(out_path, "wb");
        if (f == NULL || fwrite(body.data, 1, body.len, f) != body.len || fclose(f) != 0) {
            fprintf(stderr, "cannot write %s\n", out_path);
            return 5;
        }
    }
    if (!write_delta(keys, n, &delta, &changes)) {
        return 5;
    }
    printf("delta (1%%: half removals, half additions): %zu changes, %zu bytes, "
           "%.2f bytes/change\n",
           changes, delta.len, (double)delta.len / (double)(changes > 0 ? changes : 1));
    buf_free(&body);
    buf_free(&delta);
    free(keys);
    return 0;
}
