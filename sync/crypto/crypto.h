/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The crypto module: the only code that includes mbedTLS or OpenSSL. Hashes (SHA-256, SHA-512),
 * HMAC-SHA256 with pads computed once per key, public-key verification for the TUF key types
 * (ecdsa-sha2-nistp256 with DER signatures; RSA rsassa-pss-sha256 and rsa-pkcs1v15-sha256),
 * ECDSA P-256 and RSA-PSS signing and key generation for the writer side and the device key, and
 * the wrapper that lets a key held in a token (sync/crypto/pkcs11_signer.c) sign like a key file.
 */
#ifndef POSGATE_CRYPTO_H
#define POSGATE_CRYPTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "posgate_err.h"

#define CRYPTO_SHA256_LEN 32
#define CRYPTO_SHA512_LEN 64
#define CRYPTO_PEM_MAX    16384

void crypto_sha256(const void *data, size_t len, uint8_t out[CRYPTO_SHA256_LEN]);
void crypto_sha512(const void *data, size_t len, uint8_t out[CRYPTO_SHA512_LEN]);
/* The ChaCha20 keystream (RFC 8439) under key and nonce from block counter 0: len bytes. */
void crypto_chacha20_stream(const uint8_t key[32], const uint8_t nonce[12], uint8_t *out,
                            size_t len);

/* The state digest's element hash (state_digest.c): len bytes of the ChaCha20 keystream (RFC
 * 8439, zero nonce, block counter 0) under the key SHA-256(a || b), the same bytes as
 * crypto_sha256 and crypto_chacha20_stream give. Through libcrypto with its contexts kept from
 * call to call (the CPU's SHA extensions and vector ChaCha20: 0.29 us instead of 0.69 us for an
 * 82-byte input and 256 bytes here), for the threads that hash every entry of a snapshot. One
 * object per thread; should libcrypto fail a call, that call goes through mbedTLS. */
struct crypto_seeded_stream;
POSGATE_WUR enum posgate_err crypto_seeded_stream_new(struct crypto_seeded_stream **out);
void crypto_seeded_stream(struct crypto_seeded_stream *x, const void *a, size_t alen, const void *b,
                          size_t blen, uint8_t *out, size_t len);
void crypto_seeded_stream_free(struct crypto_seeded_stream *x);

/* Streaming SHA-256 + SHA-512 over the same bytes (target downloads hash both at once), for
 * long inputs (OpenSSL's libcrypto: the CPU's SHA extensions). finish starts the stream over,
 * so one stream hashes many inputs in turn (the audit chain). */
struct crypto_hash_stream;
POSGATE_WUR enum posgate_err crypto_hash_stream_new(struct crypto_hash_stream **out);
/* Only the hashes asked for (a download computes the ones its metadata lists); finish leaves
 * the other output untouched. */
POSGATE_WUR enum posgate_err crypto_hash_stream_new_for(struct crypto_hash_stream **out,
                                                        bool sha256, bool sha512);
void crypto_hash_stream_update(struct crypto_hash_stream *h, const void *data, size_t len);
void crypto_hash_stream_finish(struct crypto_hash_stream *h, uint8_t sha256[CRYPTO_SHA256_LEN],
                               uint8_t sha512[CRYPTO_SHA512_LEN]);
void crypto_hash_stream_free(struct crypto_hash_stream *h);

/* Single-shot SHA-256 streaming (for state digests and chains). */
struct crypto_sha256_ctx {
    uint8_t opaque[256]; /* large enough for mbedtls_sha256_context; checked at build time */
};
void crypto_sha256_init(struct crypto_sha256_ctx *c);
void crypto_sha256_update(struct crypto_sha256_ctx *c, const void *data, size_t len);
void crypto_sha256_finish(struct crypto_sha256_ctx *c, uint8_t out[CRYPTO_SHA256_LEN]);

/* HMAC-SHA256 with the inner and outer pads computed once per key: the check hot path must not
 * redo them. Computed through libcrypto, whose SHA-256 uses the CPU's SHA extensions (150 ns
 * against mbedTLS's 327 for an identifier, tools/bench/findings.md); should libcrypto fail a
 * call, or the key's libcrypto states not be made, that call goes through mbedTLS. A key made
 * by crypto_hmac_key_init holds memory until crypto_hmac_key_cleanup, which also wipes it. */
struct crypto_hmac_key {
    uint8_t inner[256]; /* SHA-256 state after the ipad block (mbedTLS) */
    uint8_t outer[256]; /* SHA-256 state after the opad block (mbedTLS) */
    void *x_inner;      /* the same states as libcrypto EVP_MD_CTX, or NULL */
    void *x_outer;
};
POSGATE_WUR enum posgate_err crypto_hmac_key_init(struct crypto_hmac_key *k, const void *key,
                                                  size_t keylen);
void crypto_hmac_key_cleanup(struct crypto_hmac_key *k);
/* Thread-safe: reads k only. */
void crypto_hmac(const struct crypto_hmac_key *k, const void *msg, size_t len,
                 uint8_t out[CRYPTO_SHA256_LEN]);

/* Public keys. */
enum crypto_scheme {
    CRYPTO_SCHEME_ECDSA_P256_SHA256, /* TUF "ecdsa-sha2-nistp256", keytype ecdsa or
                                        ecdsa-sha2-nistp256 */
    CRYPTO_SCHEME_RSA_PSS_SHA256,    /* "rsassa-pss-sha256", salt length = digest length */
    CRYPTO_SCHEME_RSA_PKCS1_SHA256   /* "rsa-pkcs1v15-sha256" */
};
struct crypto_pubkey;
/* Parses a PEM SubjectPublicKeyInfo; UNSUPPORTED when the key does not fit the scheme. */
POSGATE_WUR enum posgate_err crypto_pubkey_from_pem(const char *pem, enum crypto_scheme scheme,
                                                    struct crypto_pubkey **out);
/* OK when sig is a valid signature of msg; BADSIG otherwise (never an I/O error). */
POSGATE_WUR enum posgate_err crypto_pubkey_verify(const struct crypto_pubkey *k, const void *msg,
                                                  size_t len, const uint8_t *sig, size_t siglen);
void crypto_pubkey_free(struct crypto_pubkey *k);

/* The scheme a PEM SubjectPublicKeyInfo signs with on the writer side: ECDSA P-256 keys
 * ecdsa-sha2-nistp256, RSA keys (CRYPTO_RSA_MIN_BITS ..) rsassa-pss-sha256; UNSUPPORTED for any
 * other key, PARSE when it is no public key. */
POSGATE_WUR enum posgate_err crypto_pem_scheme(const char *public_pem, enum crypto_scheme *out);
/* PEM SubjectPublicKeyInfo of an uncompressed P-256 point (0x04 || X || Y), and of an RSA key
 * from its big-endian modulus and public exponent (as PKCS#11 tokens report them). */
POSGATE_WUR enum posgate_err crypto_pubkey_pem_from_ec_point(const uint8_t *point, size_t len,
                                                             struct buf *out);
POSGATE_WUR enum posgate_err crypto_pubkey_pem_from_rsa(const uint8_t *n, size_t nlen,
                                                        const uint8_t *e, size_t elen,
                                                        struct buf *out);

/*
 * Private keys (writer side, device key): ECDSA P-256 (ecdsa-sha2-nistp256) or RSA
 * (rsassa-pss-sha256: MGF1-SHA256, salt length = digest length, as securesystemslib signs),
 * either held here or held by an external signer (a PKCS#11 token) that signs digests.
 */
#define CRYPTO_RSA_MIN_BITS 2048
#define CRYPTO_RSA_MAX_BITS 4096
#define CRYPTO_SIG_MAX      1024 /* bytes of a signature of any supported key */
struct crypto_privkey;
/* A new ECDSA P-256 key. */
POSGATE_WUR enum posgate_err crypto_privkey_generate(struct crypto_privkey **out);
/* A new RSA key of bits (2048 ..= 4096, a multiple of 8) with exponent 65537. */
POSGATE_WUR enum posgate_err crypto_privkey_generate_rsa(unsigned bits, struct crypto_privkey **out);
/* Loads a PEM ECDSA P-256 private key (SEC1 or PKCS#8, unencrypted): the device key. */
POSGATE_WUR enum posgate_err crypto_privkey_from_pem(const char *pem, struct crypto_privkey **out);
/* Loads a writer key file: PEM ECDSA P-256 or RSA private key (unencrypted); UNSUPPORTED for
 * another curve or key type. */
POSGATE_WUR enum posgate_err crypto_privkey_load(const char *path, struct crypto_privkey **out);

/* A key held by someone else: sign_digest gets the SHA-256 digest of the message and appends
 * the raw signature (ECDSA: r || s, 32 bytes each; RSA-PSS: the signature block) to sig. */
struct crypto_signer_ops {
    enum posgate_err (*sign_digest)(void *ctx, enum crypto_scheme scheme,
                                    const uint8_t digest[CRYPTO_SHA256_LEN], struct buf *sig);
    void (*free)(void *ctx); /* may be NULL */
};
/* Wraps an external signer whose public key is public_pem (copied) into a private key handle;
 * the handle owns ctx from success on (ops->free at crypto_privkey_free; ops is borrowed for the
 * handle's life). Each signature it returns is verified against public_pem first (BADSIG
 * otherwise). crypto_privkey_pem refuses it (UNSUPPORTED). */
POSGATE_WUR enum posgate_err crypto_privkey_external(const char *public_pem,
                                                     const struct crypto_signer_ops *ops,
                                                     void *ctx, struct crypto_privkey **out);
enum crypto_scheme crypto_privkey_scheme(const struct crypto_privkey *k);
/* PEM of the private key (the caller wipes it) and of its public key (SubjectPublicKeyInfo). */
POSGATE_WUR enum posgate_err crypto_privkey_pem(const struct crypto_privkey *k, struct buf *out);
POSGATE_WUR enum posgate_err crypto_privkey_public_pem(const struct crypto_privkey *k,
                                                       struct buf *out);
/* The signature of msg by the key's scheme (DER ECDSA over SHA-256, or RSA-PSS-SHA256),
 * appended to out. Thread-safe per key held here. */
POSGATE_WUR enum posgate_err crypto_privkey_sign(struct crypto_privkey *k, const void *msg,
                                                 size_t len, struct buf *out);
void crypto_privkey_free(struct crypto_privkey *k);

/* Hex helpers. */
void crypto_hex(const uint8_t *in, size_t len, char *out); /* out holds 2*len+1 */
/* Decodes lowercase or uppercase hex; INVALID on odd length or a non-hex digit. */
POSGATE_WUR enum posgate_err crypto_unhex(const char *hex, size_t hexlen, struct buf *out);
/* Constant-time comparison; 1 when equal. */
int crypto_equal(const void *a, const void *b, size_t n);

/* The run-time mbedTLS version ("2.28.3"), for --version. */
const char *crypto_lib_version(void);

#endif
