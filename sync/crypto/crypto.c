/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The crypto module: the only file that includes mbedTLS or OpenSSL. Hashes, HMAC with precomputed
 * pads, TUF signature verification (ECDSA P-256, RSA-PSS, RSA PKCS#1 v1.5) and ECDSA P-256 keys for
 * the writer and the device. Randomness comes from the platform CSPRNG, never a seeded PRNG,
 * so signing is safe from any thread.
 */
#include "crypto.h"

#include <limits.h>
#include <stdbool.h>
#include <string.h>

#include <mbedtls/asn1write.h>
#include <mbedtls/bignum.h>
#include <mbedtls/chacha20.h>
#include <mbedtls/ecdsa.h>
#include <mbedtls/ecp.h>
#include <mbedtls/pk.h>
#include <mbedtls/platform_util.h>
#include <mbedtls/rsa.h>
#include <mbedtls/sha256.h>
#include <mbedtls/sha512.h>
#include <mbedtls/version.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include "plat_file.h"
#include "plat_mem.h"
#include "plat_random.h"

_Static_assert(sizeof(mbedtls_sha256_context) <= sizeof(((struct crypto_sha256_ctx *)0)->opaque),
               "crypto_sha256_ctx too small");
_Static_assert(sizeof(mbedtls_sha256_context) <= sizeof(((struct crypto_hmac_key *)0)->inner),
               "crypto_hmac_key too small");

static int
rng(void *ctx, unsigned char *out, size_t n)
{
    (void)ctx;
    return plat_random(out, n) == POSGATE_OK ? 0 : -1;
}

void
crypto_sha256(const void *data, size_t len, uint8_t out[CRYPTO_SHA256_LEN])
{
    mbedtls_sha256_ret(data, len, out, 0);
}

void
crypto_sha512(const void *data, size_t len, uint8_t out[CRYPTO_SHA512_LEN])
{
    mbedtls_sha512_ret(data, len, out, 0);
}

void
crypto_chacha20_stream(const uint8_t key[32], const uint8_t nonce[12], uint8_t *out, size_t len)
{
    mbedtls_chacha20_context c;

    mbedtls_chacha20_init(&c);
    mbedtls_chacha20_setkey(&c, key);
    mbedtls_chacha20_starts(&c, nonce, 0);
    memset(out, 0, len);
    mbedtls_chacha20_update(&c, len, out, out); /* keystream XOR zeros, in place */
    mbedtls_chacha20_free(&c);
}

struct crypto_seeded_stream {
    EVP_MD_CTX *md;
    EVP_CIPHER_CTX *cc;
};

enum posgate_err
crypto_seeded_stream_new(struct crypto_seeded_stream **out)
{
    struct crypto_seeded_stream *x = plat_calloc(1, sizeof(*x));

    *out = NULL;
    if (x == NULL) {
        return POSGATE_ERR_NOMEM;
    }
    x->md = EVP_MD_CTX_new();
    x->cc = EVP_CIPHER_CTX_new();
    if (x->md == NULL || x->cc == NULL || EVP_DigestInit_ex(x->md, EVP_sha256(), NULL) != 1 ||
        EVP_EncryptInit_ex(x->cc, EVP_chacha20(), NULL, NULL, NULL) != 1) {
        crypto_seeded_stream_free(x);
        return POSGATE_ERR_NOMEM;
    }
    *out = x;
    return POSGATE_OK;
}

void
crypto_seeded_stream(struct crypto_seeded_stream *x, const void *a, size_t alen, const void *b,
                     size_t blen, uint8_t *out, size_t len)
{
    uint8_t seed[EVP_MAX_MD_SIZE];
    uint8_t iv[16] = {0}; /* libcrypto's ChaCha20 IV: block counter (LE32) || nonce */
    unsigned n = 0;
    int outl = 0;

    memset(out, 0, len);
    if (len > INT_MAX || EVP_DigestInit_ex(x->md, NULL, NULL) != 1 ||
        EVP_DigestUpdate(x->md, a, alen) != 1 || EVP_DigestUpdate(x->md, b, blen) != 1 ||
        EVP_DigestFinal_ex(x->md, seed, &n) != 1 || n != CRYPTO_SHA256_LEN ||
        EVP_EncryptInit_ex(x->cc, NULL, NULL, seed, iv) != 1 ||
        EVP_EncryptUpdate(x->cc, out, &outl, out, (int)len) != 1 || (size_t)outl != len) {
        static const uint8_t zero_nonce[12];
        mbedtls_sha256_context s;

        mbedtls_sha256_init(&s);
        mbedtls_sha256_starts_ret(&s, 0);
        mbedtls_sha256_update_ret(&s, a, alen);
        mbedtls_sha256_update_ret(&s, b, blen);
        mbedtls_sha256_finish_ret(&s, seed);
        mbedtls_sha256_free(&s);
        crypto_chacha20_stream(seed, zero_nonce, out, len);
    }
}

void
crypto_seeded_stream_free(struct crypto_seeded_stream *x)
{
    if (x == NULL) {
        return;
    }
    EVP_MD_CTX_free(x->md);
    EVP_CIPHER_CTX_free(x->cc);
    plat_free(x);
}

/* Streams hash long inputs (downloaded targets, audit events): OpenSSL's libcrypto, whose
 * SHA-256 uses the CPU's SHA extensions where it has them (3x mbedTLS 2.28 on a 1 KB event
 * here). mbedTLS keeps the short hashes, where its lower per-call cost wins. */
struct crypto_hash_stream {
    EVP_MD_CTX *c256, *c512;
};

static EVP_MD_CTX *
md_ctx(const EVP_MD *md)
{
    EVP_MD_CTX *c = EVP_MD_CTX_new();

    if (c != NULL && EVP_DigestInit_ex(c, md, NULL) != 1) {
        EVP_MD_CTX_free(c);
        c = NULL;
    }
    return c;
}

enum posgate_err
crypto_hash_stream_new_for(struct crypto_hash_stream **out, bool sha256, bool sha512)
{
    struct crypto_hash_stream *h = plat_calloc(1, sizeof(*h));

    *out = NULL;
    if (h == NULL) {
        return POSGATE_ERR_NOMEM;
    }
    h->c256 = sha256 ? md_ctx(EVP_sha256()) : NULL;
    h->c512 = sha512 ? md_ctx(EVP_sha512()) : NULL;
    if ((sha256 && h->c256 == NULL) || (sha512 && h->c512 == NULL)) {
        crypto_hash_stream_free(h);
        return POSGATE_ERR_NOMEM;
    }
    *out = h;
    return POSGATE_OK;
}

enum posgate_err
crypto_hash_stream_new(struct crypto_hash_stream **out)
{
    return crypto_hash_stream_new_for(out, true, true);
}

void
crypto_hash_stream_update(struct crypto_hash_stream *h, const void *data, size_t len)
{
    if (h->c256 != NULL) {
        (void)EVP_DigestUpdate(h->c256, data, len);
    }
    if (h->c512 != NULL) {
        (void)EVP_DigestUpdate(h->c512, data, len);
    }
}

static void
md_finish(EVP_MD_CTX *c, uint8_t *out, size_t len)
{
    uint8_t scratch[EVP_MAX_MD_SIZE];
    unsigned n = 0;

    if (c == NULL) {
        return;
    }
    (void)EVP_DigestFinal_ex(c, scratch, &n);
    if (out != NULL && n == len) {
        memcpy(out, scratch, len);
    }
    (void)EVP_DigestInit_ex(c, NULL, NULL); /* the same digest again, for the next input */
}

void
crypto_hash_stream_finish(struct crypto_hash_stream *h, uint8_t sha256[CRYPTO_SHA256_LEN],
                          uint8_t sha512[CRYPTO_SHA512_LEN])
{
    md_finish(h->c256, sha256, CRYPTO_SHA256_LEN);
    md_finish(h->c512, sha512, CRYPTO_SHA512_LEN);
}

void
crypto_hash_stream_free(struct crypto_hash_stream *h)
{
    if (h == NULL) {
        return;
    }
    EVP_MD_CTX_free(h->c256);
    EVP_MD_CTX_free(h->c512);
    plat_free(h);
}

/* The opaque byte arrays are copied in and out so alignment never matters. */
void
crypto_sha256_init(struct crypto_sha256_ctx *c)
{
    mbedtls_sha256_context s;

    mbedtls_sha256_init(&s);
    mbedtls_sha256_starts_ret(&s, 0);
    memcpy(c->opaque, &s, sizeof(s));
}

void
crypto_sha256_update(struct crypto_sha256_ctx *c, const void *data, size_t len)
{
    mbedtls_sha256_context s;

    memcpy(&s, c->opaque, sizeof(s));
    mbedtls_sha256_update_ret(&s, data, len);
    memcpy(c->opaque, &s, sizeof(s));
}

void
crypto_sha256_finish(struct crypto_sha256_ctx *c, uint8_t out[CRYPTO_SHA256_LEN])
{
    mbedtls_sha256_context s;

    memcpy(&s, c->opaque, sizeof(s));
    mbedtls_sha256_finish_ret(&s, out);
    mbedtls_platform_zeroize(&s, sizeof(s));
    mbedtls_platform_zeroize(c->opaque, sizeof(c->opaque));
}

/* A libcrypto SHA-256 state after the block key ^ x (64 bytes), or NULL. */
static EVP_MD_CTX *
pad_ctx(const uint8_t block[64], uint8_t x)
{
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    uint8_t pad[64];

    for (size_t i = 0; i < sizeof(pad); i++) {
        pad[i] = (uint8_t)(block[i] ^ x);
    }
    if (c != NULL && (EVP_DigestInit_ex(c, EVP_sha256(), NULL) != 1 ||
                      EVP_DigestUpdate(c, pad, sizeof(pad)) != 1)) {
        EVP_MD_CTX_free(c);
        c = NULL;
    }
    mbedtls_platform_zeroize(pad, sizeof(pad));
    return c;
}

enum posgate_err
crypto_hmac_key_init(struct crypto_hmac_key *k, const void *key, size_t keylen)
{
    uint8_t block[64], pad[64];
    mbedtls_sha256_context s;

    if (k == NULL || (key == NULL && keylen > 0)) {
        return POSGATE_ERR_INVALID;
    }
    memset(block, 0, sizeof(block));
    if (keylen > sizeof(block)) {
        mbedtls_sha256_ret(key, keylen, block, 0);
    } else if (keylen > 0) {
        memcpy(block, key, keylen);
    }
    for (size_t i = 0; i < sizeof(block); i++) {
        pad[i] = (uint8_t)(block[i] ^ 0x36);
    }
    mbedtls_sha256_init(&s);
    mbedtls_sha256_starts_ret(&s, 0);
    mbedtls_sha256_update_ret(&s, pad, sizeof(pad));
    memcpy(k->inner, &s, sizeof(s));
    for (size_t i = 0; i < sizeof(block); i++) {
        pad[i] = (uint8_t)(block[i] ^ 0x5c);
    }
    mbedtls_sha256_starts_ret(&s, 0);
    mbedtls_sha256_update_ret(&s, pad, sizeof(pad));
    memcpy(k->outer, &s, sizeof(s));
    /* the same two states in libcrypto: without them, every call goes through mbedTLS */
    k->x_inner = pad_ctx(block, 0x36);
    k->x_outer = pad_ctx(block, 0x5c);
    if (k->x_inner == NULL || k->x_outer == NULL) {
        EVP_MD_CTX_free(k->x_inner);
        EVP_MD_CTX_free(k->x_outer);
        k->x_inner = k->x_outer = NULL;
    }
    mbedtls_platform_zeroize(&s, sizeof(s));
    mbedtls_platform_zeroize(block, sizeof(block));
    mbedtls_platform_zeroize(pad, sizeof(pad));
    return POSGATE_OK;
}

void
crypto_hmac_key_cleanup(struct crypto_hmac_key *k)
{
    if (k != NULL) {
        EVP_MD_CTX_free(k->x_inner); /* frees the digest state wiped (OPENSSL_clear_free) */
        EVP_MD_CTX_free(k->x_outer);
        mbedtls_platform_zeroize(k, sizeof(*k));
    }
}

/* HMAC through libcrypto from the key's prepared states; false when a call failed. */
static bool
ossl_hmac(const struct crypto_hmac_key *k, const void *msg, size_t len,
          uint8_t out[CRYPTO_SHA256_LEN])
{
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    uint8_t inner[EVP_MAX_MD_SIZE], mac[EVP_MAX_MD_SIZE];
    unsigned n = 0, m = 0;
    bool ok = c != NULL && EVP_MD_CTX_copy_ex(c, k->x_inner) == 1 &&
              EVP_DigestUpdate(c, msg, len) == 1 && EVP_DigestFinal_ex(c, inner, &n) == 1 &&
              n == CRYPTO_SHA256_LEN && EVP_MD_CTX_copy_ex(c, k->x_outer) == 1 &&
              EVP_DigestUpdate(c, inner, CRYPTO_SHA256_LEN) == 1 &&
              EVP_DigestFinal_ex(c, mac, &m) == 1 && m == CRYPTO_SHA256_LEN;

    if (ok) {
        memcpy(out, mac, CRYPTO_SHA256_LEN);
    }
    mbedtls_platform_zeroize(inner, sizeof(inner));
    mbedtls_platform_zeroize(mac, sizeof(mac));
    EVP_MD_CTX_free(c);
    return ok;
}

void
crypto_hmac(const struct crypto_hmac_key *k, const void *msg, size_t len,
            uint8_t out[CRYPTO_SHA256_LEN])
{
    mbedtls_sha256_context s;
    uint8_t inner[CRYPTO_SHA256_LEN];

    if (k->x_inner != NULL && k->x_outer != NULL && ossl_hmac(k, msg, len, out)) {
        return;
    }
    memcpy(&s, k->inner, sizeof(s));
    mbedtls_sha256_update_ret(&s, msg, len);
    mbedtls_sha256_finish_ret(&s, inner);
    memcpy(&s, k->outer, sizeof(s));
    mbedtls_sha256_update_ret(&s, inner, sizeof(inner));
    mbedtls_sha256_finish_ret(&s, out);
    mbedtls_platform_zeroize(&s, sizeof(s));
}

struct crypto_pubkey {
    mbedtls_pk_context pk;
    enum crypto_scheme scheme;
    EVP_PKEY *ossl; /* the same P-256 key for OpenSSL's verification, NULL for RSA */
};

/* The P-256 key's point as an OpenSSL key: libcrypto verifies an ECDSA P-256 signature in
 * ~45 us on x86-64 where mbedTLS 2.28's bignum code takes ~1.1 ms, which is what a collector
 * verifying every upload's head spends its CPU on. Both refuse the same encodings (DER only,
 * no trailing bytes, r and s in range). */
static enum posgate_err
ossl_from_p256(struct crypto_pubkey *k)
{
    unsigned char pt[MBEDTLS_ECP_MAX_PT_LEN];
    size_t len = 0;
    const mbedtls_ecp_keypair *ec = mbedtls_pk_ec(k->pk);
    EVP_PKEY_CTX *c;
    OSSL_PARAM p[3];
    int ok;

    if (mbedtls_ecp_point_write_binary(&ec->grp, &ec->Q, MBEDTLS_ECP_PF_UNCOMPRESSED, &len, pt,
                                       sizeof(pt)) != 0) {
        return POSGATE_ERR_PARSE;
    }
    c = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
    if (c == NULL) {
        return POSGATE_ERR_NOMEM;
    }
    p[0] = OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, (char *)"prime256v1", 0);
    p[1] = OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, pt, len);
    p[2] = OSSL_PARAM_construct_end();
    ok = EVP_PKEY_fromdata_init(c) == 1 &&
         EVP_PKEY_fromdata(c, &k->ossl, EVP_PKEY_PUBLIC_KEY, p) == 1;
    EVP_PKEY_CTX_free(c);
    return ok ? POSGATE_OK : POSGATE_ERR_PARSE;
}

static int
ossl_verify(EVP_PKEY *key, const uint8_t hash[CRYPTO_SHA256_LEN], const uint8_t *sig,
            size_t siglen)
{
    EVP_PKEY_CTX *c = EVP_PKEY_CTX_new(key, NULL);
    int rc = -1;

    if (c != NULL && EVP_PKEY_verify_init(c) == 1 &&
        EVP_PKEY_CTX_set_signature_md(c, EVP_sha256()) == 1 &&
        EVP_PKEY_verify(c, sig, siglen, hash, CRYPTO_SHA256_LEN) == 1) {
        rc = 0;
    }
    EVP_PKEY_CTX_free(c);
    return rc;
}

enum posgate_err
crypto_pubkey_from_pem(const char *pem, enum crypto_scheme scheme, struct crypto_pubkey **out)
{
    struct crypto_pubkey *k;
    size_t n;
    enum posgate_err err = POSGATE_OK;

    if (out == NULL) {
        return POSGATE_ERR_INVALID;
    }
    *out = NULL;
    if (pem == NULL) {
        return POSGATE_ERR_INVALID;
    }
    n = strlen(pem);
    if (n == 0 || n > CRYPTO_PEM_MAX) {
        return n == 0 ? POSGATE_ERR_PARSE : POSGATE_ERR_TOOBIG;
    }
    k = plat_calloc(1, sizeof(*k));
    if (k == NULL) {
        return POSGATE_ERR_NOMEM;
    }
    mbedtls_pk_init(&k->pk);
    k->scheme = scheme;
    if (mbedtls_pk_parse_public_key(&k->pk, (const unsigned char *)pem, n + 1) != 0) {
        err = POSGATE_ERR_PARSE;
        goto out;
    }
    switch (scheme) {
    case CRYPTO_SCHEME_ECDSA_P256_SHA256:
        if (!mbedtls_pk_can_do(&k->pk, MBEDTLS_PK_ECDSA) ||
            mbedtls_pk_ec(k->pk)->grp.id != MBEDTLS_ECP_DP_SECP256R1) {
            err = POSGATE_ERR_UNSUPPORTED;
        } else {
            err = ossl_from_p256(k);
        }
        break;
    case CRYPTO_SCHEME_RSA_PSS_SHA256:
    case CRYPTO_SCHEME_RSA_PKCS1_SHA256:
        if (mbedtls_pk_get_type(&k->pk) != MBEDTLS_PK_RSA || mbedtls_pk_get_bitlen(&k->pk) < 2048) {
            err = POSGATE_ERR_UNSUPPORTED;
        }
        break;
    default:
        err = POSGATE_ERR_UNSUPPORTED;
        break;
    }
out:
    if (err != POSGATE_OK) {
        crypto_pubkey_free(k);
        return err;
    }
    *out = k;
    return POSGATE_OK;
}

enum posgate_err
crypto_pubkey_verify(const struct crypto_pubkey *k, const void *msg, size_t len, const uint8_t *sig,
                     size_t siglen)
{
    uint8_t hash[CRYPTO_SHA256_LEN];
    int rc;
    mbedtls_pk_context *pk;

    if (k == NULL || (msg == NULL && len > 0) || sig == NULL || siglen == 0) {
        return POSGATE_ERR_BADSIG;
    }
    pk = (mbedtls_pk_context *)&k->pk; /* mbedTLS 2.28 verify takes a non-const context */
    mbedtls_sha256_ret(msg, len, hash, 0);
    switch (k->scheme) {
    case CRYPTO_SCHEME_ECDSA_P256_SHA256:
        rc = k->ossl != NULL ? ossl_verify(k->ossl, hash, sig, siglen) : -1;
        break;
    case CRYPTO_SCHEME_RSA_PKCS1_SHA256:
        rc = mbedtls_pk_verify(pk, MBEDTLS_MD_SHA256, hash, sizeof(hash), sig, siglen);
        break;
    case CRYPTO_SCHEME_RSA_PSS_SHA256: {
        mbedtls_pk_rsassa_pss_options opt = {MBEDTLS_MD_SHA256, MBEDTLS_RSA_SALT_LEN_ANY};

        rc = mbedtls_pk_verify_ext(MBEDTLS_PK_RSASSA_PSS, &opt, pk, MBEDTLS_MD_SHA256, hash,
                                   sizeof(hash), sig, siglen);
        break;
    }
    default:
        rc = -1;
        break;
    }
    return rc == 0 ? POSGATE_OK : POSGATE_ERR_BADSIG;
}

void
crypto_pubkey_free(struct crypto_pubkey *k)
{
    if (k == NULL) {
        return;
    }
    mbedtls_pk_free(&k->pk);
    EVP_PKEY_free(k->ossl);
    plat_free(k);
}

/*
 * A private key is either held here (an mbedTLS context: ECDSA P-256 or RSA, from a file or
 * generated) or held elsewhere (a PKCS#11 token: the external signer's callback returns the raw
 * signature of a digest, and only its public half is known here).
 */
struct crypto_privkey {
    mbedtls_pk_context pk;
    enum crypto_scheme scheme;
    bool external;
    char *public_pem; /* external keys */
    struct crypto_pubkey *pub; /* external keys: every signature is checked before use */
    const struct crypto_signer_ops *ops;
    void *ctx;
};

static enum posgate_err
privkey_alloc(struct crypto_privkey **out)
{
    struct crypto_privkey *k = plat_calloc(1, sizeof(*k));

    if (k == NULL) {
        return POSGATE_ERR_NOMEM;
    }
    mbedtls_pk_init(&k->pk);
    *out = k;
    return POSGATE_OK;
}

enum posgate_err
crypto_privkey_generate(struct crypto_privkey **out)
{
    struct crypto_privkey *k = NULL;
    enum posgate_err err;

    *out = NULL;
    err = privkey_alloc(&k);
    if (err != POSGATE_OK) {
        return err;
    }
    k->scheme = CRYPTO_SCHEME_ECDSA_P256_SHA256;
    if (mbedtls_pk_setup(&k->pk, mbedtls_pk_info_from_type(MBEDTLS_PK_ECKEY)) != 0 ||
        mbedtls_ecp_gen_key(MBEDTLS_ECP_DP_SECP256R1, mbedtls_pk_ec(k->pk), rng, NULL) != 0) {
        crypto_privkey_free(k);
        return POSGATE_ERR_IO;
    }
    *out = k;
    return POSGATE_OK;
}

enum posgate_err
crypto_privkey_generate_rsa(unsigned bits, struct crypto_privkey **out)
{
    struct crypto_privkey *k = NULL;
    enum posgate_err err;

    if (out == NULL) {
        return POSGATE_ERR_INVALID;
    }
    *out = NULL;
    if (bits < CRYPTO_RSA_MIN_BITS || bits > CRYPTO_RSA_MAX_BITS || bits % 8 != 0) {
        return POSGATE_ERR_INVALID;
    }
    err = privkey_alloc(&k);
    if (err != POSGATE_OK) {
        return err;
    }
    k->scheme = CRYPTO_SCHEME_RSA_PSS_SHA256;
    if (mbedtls_pk_setup(&k->pk, mbedtls_pk_info_from_type(MBEDTLS_PK_RSA)) != 0 ||
        mbedtls_rsa_gen_key(mbedtls_pk_rsa(k->pk), rng, NULL, bits, 65537) != 0) {
        crypto_privkey_free(k);
        return POSGATE_ERR_IO;
    }
    *out = k;
    return POSGATE_OK;
}

static enum posgate_err
privkey_parse(const char *pem, bool allow_rsa, struct crypto_privkey **out)
{
    struct crypto_privkey *k = NULL;
    enum posgate_err err;
    size_t n;

    *out = NULL;
    if (pem == NULL) {
        return POSGATE_ERR_INVALID;
    }
    n = strlen(pem);
    if (n == 0 || n > CRYPTO_PEM_MAX) {
        return n == 0 ? POSGATE_ERR_PARSE : POSGATE_ERR_TOOBIG;
    }
    err = privkey_alloc(&k);
    if (err != POSGATE_OK) {
        return err;
    }
    if (mbedtls_pk_parse_key(&k->pk, (const unsigned char *)pem, n + 1, NULL, 0) != 0) {
        crypto_privkey_free(k);
        return POSGATE_ERR_PARSE;
    }
    if (mbedtls_pk_can_do(&k->pk, MBEDTLS_PK_ECDSA) &&
        mbedtls_pk_ec(k->pk)->grp.id == MBEDTLS_ECP_DP_SECP256R1) {
        k->scheme = CRYPTO_SCHEME_ECDSA_P256_SHA256;
    } else if (allow_rsa && mbedtls_pk_get_type(&k->pk) == MBEDTLS_PK_RSA &&
               mbedtls_pk_get_bitlen(&k->pk) >= CRYPTO_RSA_MIN_BITS &&
               mbedtls_pk_get_bitlen(&k->pk) <= CRYPTO_RSA_MAX_BITS) {
        k->scheme = CRYPTO_SCHEME_RSA_PSS_SHA256;
    } else {
        crypto_privkey_free(k);
        return POSGATE_ERR_UNSUPPORTED;
    }
    *out = k;
    return POSGATE_OK;
}

enum posgate_err
crypto_privkey_from_pem(const char *pem, struct crypto_privkey **out)
{
    return privkey_parse(pem, false, out);
}

enum posgate_err
crypto_privkey_load(const char *path, struct crypto_privkey **out)
{
    struct buf raw = BUF_INIT(CRYPTO_PEM_MAX);
    enum posgate_err err;

    *out = NULL;
    err = plat_read_file(path, &raw);
    if (err == POSGATE_OK) {
        err = privkey_parse(buf_cstr(&raw), true, out);
    }
    buf_wipe(&raw);
    return err;
}

enum posgate_err
crypto_privkey_external(const char *public_pem, const struct crypto_signer_ops *ops, void *ctx,
                        struct crypto_privkey **out)
{
    struct crypto_privkey *k = NULL;
    enum posgate_err err;
    enum crypto_scheme scheme;

    if (out == NULL) {
        return POSGATE_ERR_INVALID;
    }
    *out = NULL;
    if (public_pem == NULL || ops == NULL || ops->sign_digest == NULL) {
        return POSGATE_ERR_INVALID;
    }
    err = crypto_pem_scheme(public_pem, &scheme);
    if (err != POSGATE_OK) {
        return err;
    }
    err = privkey_alloc(&k);
    if (err != POSGATE_OK) {
        return err;
    }
    k->external = true;
    k->scheme = scheme;
    k->public_pem = plat_strdup(public_pem);
    if (k->public_pem == NULL) {
        crypto_privkey_free(k);
        return POSGATE_ERR_NOMEM;
    }
    err = crypto_pubkey_from_pem(public_pem, scheme, &k->pub);
    if (err != POSGATE_OK) {
        crypto_privkey_free(k);
        return err;
    }
    k->ops = ops;
    k->ctx = ctx; /* owned from here on: ops->free releases it */
    *out = k;
    return POSGATE_OK;
}

enum crypto_scheme
crypto_privkey_scheme(const struct crypto_privkey *k)
{
    return k->scheme;
}

static enum posgate_err
pem_out(int rc, unsigned char *tmp, size_t cap, struct buf *out)
{
    enum posgate_err err;

    if (rc != 0) {
        mbedtls_platform_zeroize(tmp, cap);
        return POSGATE_ERR_IO;
    }
    err = buf_append_str(out, (const char *)tmp);
    mbedtls_platform_zeroize(tmp, cap);
    return err;
}

enum posgate_err
crypto_privkey_pem(const struct crypto_privkey *k, struct buf *out)
{
    unsigned char tmp[CRYPTO_PEM_MAX];
    enum posgate_err err;

    if (k->external) {
        return POSGATE_ERR_UNSUPPORTED; /* a token key never leaves its token */
    }
    err = pem_out(mbedtls_pk_write_key_pem((mbedtls_pk_context *)&k->pk, tmp, sizeof(tmp)), tmp,
                  sizeof(tmp), out);
    return err;
}

enum posgate_err
crypto_privkey_public_pem(const struct crypto_privkey *k, struct buf *out)
{
    unsigned char tmp[CRYPTO_PEM_MAX];

    if (k->external) {
        return buf_append_str(out, k->public_pem);
    }
    return pem_out(mbedtls_pk_write_pubkey_pem((mbedtls_pk_context *)&k->pk, tmp, sizeof(tmp)), tmp,
                   sizeof(tmp), out);
}

/* ECDSA r||s (each half of raw) as the DER SEQUENCE of two INTEGERs TUF signatures carry. */
static enum posgate_err
ecdsa_raw_to_der(const uint8_t *raw, size_t rawlen, struct buf *out)
{
    unsigned char der[MBEDTLS_ECDSA_MAX_LEN];
    unsigned char *p = der + sizeof(der);
    mbedtls_mpi r, s;
    int len = 0, rc;
    enum posgate_err err = POSGATE_ERR_BADSIG;

    mbedtls_mpi_init(&r);
    mbedtls_mpi_init(&s);
    if (rawlen != 64) {
        goto out;
    }
    if (mbedtls_mpi_read_binary(&r, raw, 32) != 0 || mbedtls_mpi_read_binary(&s, raw + 32, 32) != 0) {
        goto out;
    }
    rc = mbedtls_asn1_write_mpi(&p, der, &s);
    if (rc < 0) {
        goto out;
    }
    len += rc;
    rc = mbedtls_asn1_write_mpi(&p, der, &r);
    if (rc < 0) {
        goto out;
    }
    len += rc;
    rc = mbedtls_asn1_write_len(&p, der, (size_t)len);
    if (rc < 0) {
        goto out;
    }
    len += rc;
    rc = mbedtls_asn1_write_tag(&p, der, MBEDTLS_ASN1_CONSTRUCTED | MBEDTLS_ASN1_SEQUENCE);
    if (rc < 0) {
        goto out;
    }
    len += rc;
    err = buf_append(out, p, (size_t)len);
out:
    mbedtls_mpi_free(&r);
    mbedtls_mpi_free(&s);
    return err;
}

static enum posgate_err
external_sign(struct crypto_privkey *k, const void *msg, size_t len,
              const uint8_t hash[CRYPTO_SHA256_LEN], struct buf *out)
{
    struct buf raw = BUF_INIT(CRYPTO_SIG_MAX);
    struct buf sig = BUF_INIT(CRYPTO_SIG_MAX);
    enum posgate_err err;

    err = k->ops->sign_digest(k->ctx, k->scheme, hash, &raw);
    if (err != POSGATE_OK) {
        goto out;
    }
    if (k->scheme == CRYPTO_SCHEME_ECDSA_P256_SHA256) {
        err = ecdsa_raw_to_der(raw.data, raw.len, &sig);
    } else {
        err = buf_append(&sig, raw.data, raw.len);
    }
    if (err != POSGATE_OK) {
        goto out;
    }
    /* The token could hold another key under the same name, or use another padding: a
     * signature the key's public half does not verify is never handed out. */
    err = crypto_pubkey_verify(k->pub, msg, len, sig.data, sig.len);
    if (err != POSGATE_OK) {
        goto out;
    }
    err = buf_append(out, sig.data, sig.len);
out:
    buf_free(&raw);
    buf_free(&sig);
    return err;
}

enum posgate_err
crypto_privkey_sign(struct crypto_privkey *k, const void *msg, size_t len, struct buf *out)
{
    uint8_t hash[CRYPTO_SHA256_LEN];
    unsigned char sig[MBEDTLS_MPI_MAX_SIZE];
    size_t siglen = 0;
    int rc;

    if (k == NULL || out == NULL || (msg == NULL && len > 0)) {
        return POSGATE_ERR_INVALID;
    }
    mbedtls_sha256_ret(msg, len, hash, 0);
    if (k->external) {
        return external_sign(k, msg, len, hash, out);
    }
    if (k->scheme == CRYPTO_SCHEME_RSA_PSS_SHA256) {
        mbedtls_rsa_context *rsa = mbedtls_pk_rsa(k->pk);

        /* securesystemslib's rsassa-pss-sha256: MGF1-SHA256, salt length = digest length */
        mbedtls_rsa_set_padding(rsa, MBEDTLS_RSA_PKCS_V21, MBEDTLS_MD_SHA256);
        rc = mbedtls_rsa_rsassa_pss_sign_ext(rsa, rng, NULL, MBEDTLS_MD_SHA256,
                                             (unsigned)sizeof(hash), hash, CRYPTO_SHA256_LEN, sig);
        siglen = mbedtls_rsa_get_len(rsa);
    } else {
        rc = mbedtls_pk_sign(&k->pk, MBEDTLS_MD_SHA256, hash, sizeof(hash), sig, &siglen, rng,
                             NULL);
    }
    if (rc != 0) {
        return POSGATE_ERR_IO;
    }
    return buf_append(out, sig, siglen);
}

void
crypto_privkey_free(struct crypto_privkey *k)
{
    if (k == NULL) {
        return;
    }
    if (k->external && k->ops->free != NULL) {
        k->ops->free(k->ctx);
    }
    crypto_pubkey_free(k->pub);
    plat_free(k->public_pem);
    mbedtls_pk_free(&k->pk);
    plat_free(k);
}

enum posgate_err
crypto_pem_scheme(const char *public_pem, enum crypto_scheme *out)
{
    struct crypto_pubkey *pk = NULL;
    enum posgate_err err;

    err = crypto_pubkey_from_pem(public_pem, CRYPTO_SCHEME_ECDSA_P256_SHA256, &pk);
    if (err == POSGATE_OK) {
        *out = CRYPTO_SCHEME_ECDSA_P256_SHA256;
    } else if (err == POSGATE_ERR_UNSUPPORTED) {
        err = crypto_pubkey_from_pem(public_pem, CRYPTO_SCHEME_RSA_PSS_SHA256, &pk);
        if (err == POSGATE_OK) {
            *out = CRYPTO_SCHEME_RSA_PSS_SHA256;
        }
    }
    crypto_pubkey_free(pk);
    return err;
}

static enum posgate_err
pubkey_pem_of(mbedtls_pk_context *pk, struct buf *out)
{
    unsigned char tmp[CRYPTO_PEM_MAX];

    return pem_out(mbedtls_pk_write_pubkey_pem(pk, tmp, sizeof(tmp)), tmp, sizeof(tmp), out);
}

enum posgate_err
crypto_pubkey_pem_from_ec_point(const uint8_t *point, size_t len, struct buf *out)
{
    mbedtls_pk_context pk;
    mbedtls_ecp_keypair *ec;
    enum posgate_err err = POSGATE_ERR_PARSE;

    if (point == NULL || out == NULL) {
        return POSGATE_ERR_INVALID;
    }
    mbedtls_pk_init(&pk);
    if (mbedtls_pk_setup(&pk, mbedtls_pk_info_from_type(MBEDTLS_PK_ECKEY)) != 0) {
        err = POSGATE_ERR_NOMEM;
        goto out;
    }
    ec = mbedtls_pk_ec(pk);
    if (mbedtls_ecp_group_load(&ec->grp, MBEDTLS_ECP_DP_SECP256R1) != 0 ||
        mbedtls_ecp_point_read_binary(&ec->grp, &ec->Q, point, len) != 0 ||
        mbedtls_ecp_check_pubkey(&ec->grp, &ec->Q) != 0) {
        goto out;
    }
    err = pubkey_pem_of(&pk, out);
out:
    mbedtls_pk_free(&pk);
    return err;
}

enum posgate_err
crypto_pubkey_pem_from_rsa(const uint8_t *n, size_t nlen, const uint8_t *e, size_t elen,
                           struct buf *out)
{
    mbedtls_pk_context pk;
    mbedtls_rsa_context *rsa;
    enum posgate_err err = POSGATE_ERR_PARSE;

    if (n == NULL || e == NULL || out == NULL) {
        return POSGATE_ERR_INVALID;
    }
    mbedtls_pk_init(&pk);
    if (mbedtls_pk_setup(&pk, mbedtls_pk_info_from_type(MBEDTLS_PK_RSA)) != 0) {
        err = POSGATE_ERR_NOMEM;
        goto out;
    }
    rsa = mbedtls_pk_rsa(pk);
    if (mbedtls_rsa_import_raw(rsa, n, nlen, NULL, 0, NULL, 0, NULL, 0, e, elen) != 0 ||
        mbedtls_rsa_complete(rsa) != 0 || mbedtls_rsa_check_pubkey(rsa) != 0) {
        goto out;
    }
    if (mbedtls_pk_get_bitlen(&pk) < CRYPTO_RSA_MIN_BITS ||
        mbedtls_pk_get_bitlen(&pk) > CRYPTO_RSA_MAX_BITS) {
        err = POSGATE_ERR_UNSUPPORTED;
        goto out;
    }
    err = pubkey_pem_of(&pk, out);
out:
    mbedtls_pk_free(&pk);
    return err;
}

void
crypto_hex(const uint8_t *in, size_t len, char *out)
{
    static const char digits[] = "0123456789abcdef";

    for (size_t i = 0; i < len; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 15];
    }
    out[2 * len] = 0;
}

static int
hexval(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

enum posgate_err
crypto_unhex(const char *hex, size_t hexlen, struct buf *out)
{
    enum posgate_err err;

    if (hex == NULL || hexlen % 2 != 0) {
        return POSGATE_ERR_INVALID;
    }
    err = buf_reserve(out, hexlen / 2);
    if (err != POSGATE_OK) {
        return err;
    }
    for (size_t i = 0; i < hexlen; i += 2) {
        int hi = hexval(hex[i]), lo = hexval(hex[i + 1]);
        uint8_t b;

        if (hi < 0 || lo < 0) {
            return POSGATE_ERR_INVALID;
        }
        b = (uint8_t)(hi << 4 | lo);
        err = buf_append(out, &b, 1);
        if (err != POSGATE_OK) {
            return err;
        }
    }
    return POSGATE_OK;
}

int
crypto_equal(const void *a, const void *b, size_t n)
{
    const volatile uint8_t *x = a, *y = b;
    uint8_t d = 0;

    for (size_t i = 0; i < n; i++) {
        d |= (uint8_t)(x[i] ^ y[i]);
    }
    return d == 0;
}

const char *
crypto_lib_version(void)
{
    /* mbedtls_version_get_string writes at most 9 bytes; --version is asked once, by main */
    static char v[16];

    mbedtls_version_get_string(v);
    return v;
}
