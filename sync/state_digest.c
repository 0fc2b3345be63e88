/* SPDX-License-Identifier: Apache-2.0 */
/*
 * State digest of a list: an additive lattice hash over the canonical encodings of its entries
 * (see state_digest.h for the encodings and docs/feed.md for the security argument). Adding and
 * removing an entry cost one SHA-256 of its encoding and eight single-block SHA-256 calls.
 */
#include "state_digest.h"

#include <string.h>

#include "crypto.h"
#include "feed_records.h"

static const char entry_domain[] = "posgate-entry-v1"; /* hashed with its NUL */
static const uint8_t state_magic[4] = {'P', 'G', 'L', '1'};

static void
put_be16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static void
put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static void
put_be64(uint8_t *p, uint64_t v)
{
    put_be32(p, (uint32_t)(v >> 32));
    put_be32(p + 4, (uint32_t)v);
}

static uint32_t
get_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

static uint64_t
get_be64(const uint8_t *p)
{
    return (uint64_t)get_be32(p) << 32 | get_be32(p + 4);
}

size_t
state_digest_entry_encode(const struct feed_entry *e, uint8_t out[STATE_DIGEST_ENTRY_MAX])
{
    size_t n = 0;

    if (e->scope_count > FEED_SCOPE_MAX || e->listing_id_len > FEED_LISTING_ID_MAX) {
        return 0;
    }
    memcpy(out, e->key, FEED_KEY_LEN);
    n += FEED_KEY_LEN;
    out[n++] = e->kind;
    out[n++] = e->id_type;
    put_be16(out + n, e->reason);
    n += 2;
    put_be64(out + n, (uint64_t)e->valid_from);
    n += 8;
    put_be64(out + n, e->valid_until == FEED_UNTIL_OPEN ? UINT64_MAX : (uint64_t)e->valid_until);
    n += 8;
    out[n++] = e->scope_count;
    for (unsigned i = 0; i < e->scope_count; i++) {
        put_be16(out + n, e->scope[i]);
        n += 2;
    }
    out[n++] = e->listing_id_len;
    memcpy(out + n, e->listing_id, e->listing_id_len);
    n += e->listing_id_len;
    return n;
}

void
state_digest_entry_lanes(const struct feed_entry *e, uint32_t lanes[STATE_DIGEST_LANES])
{
    uint8_t enc[STATE_DIGEST_ENTRY_MAX];
    uint8_t seed[CRYPTO_SHA256_LEN + 1];
    uint8_t block[CRYPTO_SHA256_LEN];
    struct crypto_sha256_ctx c;
    size_t n = state_digest_entry_encode(e, enc);

    crypto_sha256_init(&c);
    crypto_sha256_update(&c, entry_domain, sizeof entry_domain);
    crypto_sha256_update(&c, enc, n);
    crypto_sha256_finish(&c, seed);
    for (unsigned i = 0; i < STATE_DIGEST_LANES / 8; i++) {
        seed[CRYPTO_SHA256_LEN] = (uint8_t)i;
        crypto_sha256(seed, sizeof seed, block);
        for (unsigned j = 0; j < 8; j++) {
            lanes[i * 8 + j] = get_be32(block + 4 * j);
        }
    }
}

void
state_digest_init(struct state_digest *d)
{
    memset(d, 0, sizeof *d);
}

void
state_digest_add(struct state_digest *d, const struct feed_entry *e)
{
    uint32_t lanes[STATE_DIGEST_LANES];

    state_digest_entry_lanes(e, lanes);
    for (unsigned i = 0; i < STATE_DIGEST_LANES; i++) {
        d->lane[i] += lanes[i];
    }
    d->count++;
}

void
state_digest_remove(struct state_digest *d, const struct feed_entry *e)
{
    uint32_t lanes[STATE_DIGEST_LANES];

    state_digest_entry_lanes(e, lanes);
    for (unsigned i = 0; i < STATE_DIGEST_LANES; i++) {
        d->lane[i] -= lanes[i];
    }
    d->count--;
}

void
state_digest_merge(struct state_digest *d, const struct state_digest *other)
{
    for (unsigned i = 0; i < STATE_DIGEST_LANES; i++) {
        d->lane[i] += other->lane[i];
    }
    d->count += other->count;
}

void
state_digest_subtract(struct state_digest *d, const struct state_digest *other)
{
    for (unsigned i = 0; i < STATE_DIGEST_LANES; i++) {
        d->lane[i] -= other->lane[i];
    }
    d->count -= other->count;
}

int
state_digest_equal(const struct state_digest *a, const struct state_digest *b)
{
    if (a->count != b->count) {
        return 0;
    }
    for (unsigned i = 0; i < STATE_DIGEST_LANES; i++) {
        if (a->lane[i] != b->lane[i]) {
            return 0;
        }
    }
    return 1;
}

void
state_digest_serialise(const struct state_digest *d, uint8_t out[STATE_DIGEST_SERIAL_LEN])
{
    memcpy(out, state_magic, sizeof state_magic);
    put_be64(out + 4, d->count);
    for (unsigned i = 0; i < STATE_DIGEST_LANES; i++) {
        put_be32(out + 12 + 4 * i, d->lane[i]);
    }
}

enum posgate_err
state_digest_deserialise(struct state_digest *d, const uint8_t *in, size_t len)
{
    if (in == NULL || len != STATE_DIGEST_SERIAL_LEN ||
        memcmp(in, state_magic, sizeof state_magic) != 0) {
        return POSGATE_ERR_PARSE;
    }
    d->count = get_be64(in + 4);
    for (unsigned i = 0; i < STATE_DIGEST_LANES; i++) {
        d->lane[i] = get_be32(in + 12 + 4 * i);
    }
    return POSGATE_OK;
}

void
state_digest_finish(const struct state_digest *d, uint8_t out[STATE_DIGEST_LEN])
{
    uint8_t ser[STATE_DIGEST_SERIAL_LEN];

    state_digest_serialise(d, ser);
    crypto_sha256(ser, sizeof ser, out);
}

void
state_digest_hex(const struct state_digest *d, char out[STATE_DIGEST_HEX_LEN + 1])
{
    uint8_t dg[STATE_DIGEST_LEN];

    state_digest_finish(d, dg);
    crypto_hex(dg, sizeof dg, out);
}
