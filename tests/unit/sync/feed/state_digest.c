/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Tests of sync/state_digest: the documented construction recomputed independently from
 * crypto_sha256, order independence, add-then-remove = empty, a delta applied in O(delta) equal
 * to recomputation, merge and subtract, every single-field change changing the digest, and the
 * serialised state (round trip, rejected forms).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "crypto.h"
#include "feed_records.h"
#include "posgate_err.h"
#include "state_digest.h"
#include "test.h"

static uint64_t rng_state = 12345;

static uint64_t
rnd(void)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static void
random_entry(struct feed_entry *e)
{
    char lid[32];

    memset(e, 0, sizeof *e);
    for (int i = 0; i < FEED_KEY_LEN; i++) {
        e->key[i] = (uint8_t)rnd();
    }
    snprintf(lid, sizeof lid, "CN-SPC-2024-%07u", (unsigned)(rnd() % 10000000));
    CHECK_OK(feed_entry_set_listing_id(e, lid));
    e->reason = (uint16_t)(rnd() % 20);
    e->id_type = (uint8_t)(rnd() % 6);
    e->kind = (uint8_t)(rnd() % 2);
    e->valid_from = (int64_t)(rnd() % 2000000000);
    e->valid_until = rnd() % 3 == 0 ? FEED_UNTIL_OPEN : e->valid_from + 1 + (int64_t)(rnd() % 1000);
    if (rnd() % 3 == 0) {
        e->scope_count = 2;
        e->scope[0] = 3;
        e->scope[1] = 9;
    }
}

static void
be(uint8_t *p, uint64_t v, int n)
{
    for (int i = n - 1; i >= 0; i--) {
        p[i] = (uint8_t)v;
        v >>= 8;
    }
}

/* The construction exactly as docs/feed.md states it, written out separately. */
static void
reference_digest(const struct feed_entry *v, size_t n, uint8_t out[32])
{
    uint32_t lanes[64] = {0};
    uint8_t ser[268];

    for (size_t k = 0; k < n; k++) {
        const struct feed_entry *e = &v[k];
        uint8_t msg[17 + 166], seed[32], stream[256];
        static const uint8_t nonce[12];
        size_t m = 0;
        memcpy(msg, "posgate-entry-v2", 17); /* with its NUL */
        m = 17;
        memcpy(msg + m, e->key, 16);
        m += 16;
        msg[m++] = e->kind;
        msg[m++] = e->id_type;
        be(msg + m, e->reason, 2);
        m += 2;
        be(msg + m, (uint64_t)e->valid_from, 8);
        m += 8;
        be(msg + m, e->valid_until == FEED_UNTIL_OPEN ? UINT64_MAX : (uint64_t)e->valid_until, 8);
        m += 8;
        msg[m++] = e->scope_count;
        for (unsigned i = 0; i < e->scope_count; i++) {
            be(msg + m, e->scope[i], 2);
            m += 2;
        }
        msg[m++] = e->listing_id_len;
        memcpy(msg + m, e->listing_id, e->listing_id_len);
        m += e->listing_id_len;
        crypto_sha256(msg, m, seed);
        crypto_chacha20_stream(seed, nonce, stream, sizeof stream); /* RFC 8439, tested in crypto */
        for (unsigned i = 0; i < 64; i++) {
            const uint8_t *p = stream + 4 * i;
            lanes[i] += (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
        }
    }
    memcpy(ser, "PGL1", 4);
    be(ser + 4, n, 8);
    for (unsigned i = 0; i < 64; i++) {
        be(ser + 12 + 4 * i, lanes[i], 4);
    }
    crypto_sha256(ser, sizeof ser, out);
}

static void
test_reference_and_empty(void)
{
    struct feed_entry v[5];
    struct state_digest d;
    uint8_t got[32], want[32];
    char hex[65], want_hex[65];

    state_digest_init(&d);
    state_digest_finish(&d, got);
    reference_digest(v, 0, want);
    CHECK(memcmp(got, want, 32) == 0);
    for (int i = 0; i < 5; i++) {
        random_entry(&v[i]);
        state_digest_add(&d, &v[i]);
    }
    state_digest_finish(&d, got);
    reference_digest(v, 5, want);
    CHECK(memcmp(got, want, 32) == 0);
    state_digest_hex(&d, hex);
    crypto_hex(want, 32, want_hex);
    CHECK_STR(hex, want_hex);
    CHECK_INT(strlen(hex), 64);
    CHECK_INT(d.count, 5);
}

static void
test_order_and_inverse(void)
{
    enum { N = 500 };
    struct feed_entry *v = calloc(N, sizeof *v);
    struct state_digest a, b, empty;
    size_t perm[N];

    if (v == NULL) {
        CHECK(0);
        return;
    }
    for (size_t i = 0; i < N; i++) {
        random_entry(&v[i]);
        perm[i] = i;
    }
    for (size_t i = N - 1; i > 0; i--) {
        size_t j = rnd() % (i + 1), t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
    state_digest_init(&a);
    state_digest_init(&b);
    state_digest_init(&empty);
    for (size_t i = 0; i < N; i++) {
        state_digest_add(&a, &v[i]);
        state_digest_add(&b, &v[perm[i]]);
    }
    CHECK(state_digest_equal(&a, &b));
    CHECK(!state_digest_equal(&a, &empty));
    /* removal in yet another order returns to the empty state */
    for (size_t i = 0; i < N; i++) {
        state_digest_remove(&a, &v[(i * 7) % N]);
    }
    CHECK(state_digest_equal(&a, &empty));
    CHECK_INT(a.count, 0);
    /* remove before add (a delta's removal seen first) also cancels */
    state_digest_remove(&a, &v[0]);
    CHECK(!state_digest_equal(&a, &empty));
    state_digest_add(&a, &v[0]);
    CHECK(state_digest_equal(&a, &empty));
    /* a multiset: the same entry twice is not the same as once */
    state_digest_add(&a, &v[1]);
    b = a;
    state_digest_add(&b, &v[1]);
    CHECK(!state_digest_equal(&a, &b));
    free(v);
}

static void
test_delta_equals_recompute(void)
{
    enum { N = 2000 };
    struct feed_entry *v = calloc(N + 100, sizeof *v);
    struct state_digest base, applied, scratch, part1, part2, merged;
    uint8_t d1[32], d2[32];

    if (v == NULL) {
        CHECK(0);
        return;
    }
    for (size_t i = 0; i < N + 100; i++) {
        random_entry(&v[i]);
    }
    state_digest_init(&base);
    for (size_t i = 0; i < N; i++) {
        state_digest_add(&base, &v[i]);
    }
    /* delta: remove every 10th, change every 15th (remove + add back edited), add 100 new */
    applied = base;
    for (size_t i = 0; i < N; i++) {
        if (i % 10 == 0) {
            state_digest_remove(&applied, &v[i]);
        } else if (i % 15 == 0) {
            state_digest_remove(&applied, &v[i]);
            v[i].reason = (uint16_t)(v[i].reason + 1);
            state_digest_add(&applied, &v[i]);
        }
    }
    for (size_t i = N; i < N + 100; i++) {
        state_digest_add(&applied, &v[i]);
    }
    state_digest_init(&scratch);
    for (size_t i = 0; i < N + 100; i++) {
        if (i >= N || i % 10 != 0) {
            state_digest_add(&scratch, &v[i]);
        }
    }
    CHECK(state_digest_equal(&applied, &scratch));
    state_digest_finish(&applied, d1);
    state_digest_finish(&scratch, d2);
    CHECK(memcmp(d1, d2, 32) == 0);
    CHECK(!state_digest_equal(&applied, &base));

    /* merge of two halves equals the whole; subtract undoes merge */
    state_digest_init(&part1);
    state_digest_init(&part2);
    for (size_t i = 0; i < N + 100; i++) {
        if (i >= N || i % 10 != 0) {
            state_digest_add(i % 2 ? &part1 : &part2, &v[i]);
        }
    }
    merged = part1;
    state_digest_merge(&merged, &part2);
    CHECK(state_digest_equal(&merged, &scratch));
    state_digest_subtract(&merged, &part2);
    CHECK(state_digest_equal(&merged, &part1));
    free(v);
}

static void
test_every_field_counts(void)
{
    struct feed_entry base, e;
    uint8_t d0[32], d[32];
    int changed = 0, tried = 0;

    memset(&base, 0, sizeof base);
    for (int i = 0; i < 16; i++) {
        base.key[i] = (uint8_t)(i * 17);
    }
    CHECK_OK(feed_entry_set_listing_id(&base, "CN-SPC-2024-0012345"));
    base.reason = 4;
    base.id_type = 1;
    base.kind = FEED_KIND_RESTRICT;
    base.valid_from = 1700000000;
    base.valid_until = 1800000000;
    base.scope_count = 1;
    base.scope[0] = 7;

#define VARIANT(stmt)                                                                              \
    do {                                                                                           \
        struct state_digest s_;                                                                    \
        e = base;                                                                                  \
        stmt;                                                                                      \
        state_digest_init(&s_);                                                                    \
        state_digest_add(&s_, &e);                                                                 \
        state_digest_finish(&s_, d);                                                               \
        tried++;                                                                                   \
        if (memcmp(d, d0, 32) != 0) {                                                              \
            changed++;                                                                             \
        } else {                                                                                   \
            fprintf(stderr, "no digest change for: %s\n", #stmt);                                  \
        }                                                                                          \
    } while (0)

    {
        struct state_digest s;
        state_digest_init(&s);
        state_digest_add(&s, &base);
        state_digest_finish(&s, d0);
    }
    for (int bit = 0; bit < 128; bit++) {
        VARIANT(e.key[bit / 8] ^= (uint8_t)(1u << (bit % 8)));
    }
    VARIANT(CHECK_OK(feed_entry_set_listing_id(&e, "CN-SPC-2024-0012346")));
    VARIANT(CHECK_OK(feed_entry_set_listing_id(&e, "CN-SPC-2024-001234")));
    VARIANT(CHECK_OK(feed_entry_set_listing_id(&e, "cN-SPC-2024-0012345")));
    VARIANT(e.reason = 5);
    VARIANT(e.reason = (uint16_t)(4 + 256));
    VARIANT(e.id_type = 2);
    VARIANT(e.kind = FEED_KIND_EXEMPT);
    VARIANT(e.valid_from += 1);
    VARIANT(e.valid_until -= 1);
    VARIANT(e.valid_until = FEED_UNTIL_OPEN);
    VARIANT(e.scope_count = 0);
    VARIANT(e.scope[0] = 8);
    VARIANT((e.scope_count = 2, e.scope[1] = 9));
    /* field boundaries: moving a byte between scope and listing id must not collide */
    VARIANT((e.scope_count = 0, e.reason = 0));
#undef VARIANT
    CHECK_INT(changed, tried);
    CHECK(tried > 140);
}

static void
test_serialise(void)
{
    struct state_digest d, back;
    struct feed_entry e;
    uint8_t ser[STATE_DIGEST_SERIAL_LEN];

    state_digest_init(&d);
    for (int i = 0; i < 10; i++) {
        random_entry(&e);
        state_digest_add(&d, &e);
    }
    state_digest_serialise(&d, ser);
    CHECK(memcmp(ser, "PGL1", 4) == 0);
    state_digest_init(&back);
    CHECK_OK(state_digest_deserialise(&back, ser, sizeof ser));
    CHECK(state_digest_equal(&back, &d));
    CHECK_ERR(state_digest_deserialise(&back, ser, sizeof ser - 1), POSGATE_ERR_PARSE);
    CHECK_ERR(state_digest_deserialise(&back, NULL, sizeof ser), POSGATE_ERR_PARSE);
    ser[3] = '2';
    state_digest_init(&back);
    CHECK_ERR(state_digest_deserialise(&back, ser, sizeof ser), POSGATE_ERR_PARSE);
    CHECK_INT(back.count, 0); /* unchanged on error */
    /* the encoding length limit */
    {
        uint8_t enc[STATE_DIGEST_ENTRY_MAX];
        e.scope_count = FEED_SCOPE_MAX;
        memset(e.listing_id, 'A', FEED_LISTING_ID_MAX);
        e.listing_id[FEED_LISTING_ID_MAX] = '\0';
        e.listing_id_len = FEED_LISTING_ID_MAX;
        CHECK_INT(state_digest_entry_encode(&e, enc), STATE_DIGEST_ENTRY_MAX);
        e.scope_count = FEED_SCOPE_MAX + 1;
        CHECK_INT(state_digest_entry_encode(&e, enc), 0);
    }
}

/* The helper-thread hasher gives the digest of the inline one: short streams (no thread),
 * long ones (many batches, the producer hashing some itself), reuse after finish, and a
 * stream abandoned half-way (freed without finish). */
static void
test_async(void)
{
    static const size_t sizes[] = {0, 1, 1000, 200000};
    struct feed_entry e;
    struct state_digest want, got;
    struct state_digest_async *a = NULL;

    CHECK_OK(state_digest_async_new(&a));
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        uint64_t seed = rng_state;
        state_digest_init(&want);
        for (size_t i = 0; i < sizes[k]; i++) {
            random_entry(&e);
            state_digest_add(&want, &e);
        }
        rng_state = seed; /* the same entries again */
        state_digest_init(&got);
        for (size_t i = 0; i < sizes[k]; i++) {
            random_entry(&e);
            state_digest_async_add(a, &e);
        }
        state_digest_async_finish(a, &got);
        CHECK(state_digest_equal(&got, &want));
        CHECK(got.count == sizes[k]);
    }
    /* 200,000 entries are ~190 batches, copied faster than the helper hashes them: the producer
     * hashed some itself instead of waiting for a free slot, and the sums above still agree */
    CHECK(state_digest_async_own_batches(a) > 0);
    CHECK(state_digest_async_own_batches(NULL) == 0);
    /* finish adds to what the digest held */
    state_digest_init(&got);
    random_entry(&e);
    state_digest_add(&got, &e);
    want = got;
    random_entry(&e);
    state_digest_add(&want, &e);
    state_digest_async_add(a, &e);
    state_digest_async_finish(a, &got);
    CHECK(state_digest_equal(&got, &want));
    for (int i = 0; i < 20000; i++) { /* abandoned with batches queued */
        random_entry(&e);
        state_digest_async_add(a, &e);
    }
    state_digest_async_free(a);
    state_digest_async_free(NULL);
}

int
main(void)
{
    test_reference_and_empty();
    test_order_and_inverse();
    test_delta_equals_recompute();
    test_every_field_counts();
    test_serialise();
    test_async();
    return test_summary("state_digest");
}
