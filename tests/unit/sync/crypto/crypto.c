/* SPDX-License-Identifier: Apache-2.0 */
/* Tests of sync/crypto/crypto.c: hash and HMAC vectors, ECDSA sign/verify, forged signatures, keys. */
#include <string.h>

#include "crypto.h"
#include "plat_mem.h"
#include "test.h"

static void
hex_of(const uint8_t *b, size_t n, char *out)
{
    crypto_hex(b, n, out);
}

static void
test_safety(void)
{
    struct crypto_pubkey *pk = (struct crypto_pubkey *)1;
    struct crypto_privkey *sk = (struct crypto_privkey *)1;
    struct buf b = BUF_INIT(16);
    uint8_t sig[4] = {1, 2, 3, 4};

    CHECK_ERR(crypto_pubkey_from_pem(NULL, CRYPTO_SCHEME_ECDSA_P256_SHA256, &pk),
              POSGATE_ERR_INVALID);
    CHECK_ERR(crypto_pubkey_from_pem("", CRYPTO_SCHEME_ECDSA_P256_SHA256, &pk), POSGATE_ERR_PARSE);
    CHECK(pk == NULL);
    CHECK_ERR(crypto_pubkey_from_pem("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
                                     CRYPTO_SCHEME_ECDSA_P256_SHA256, &pk),
              POSGATE_ERR_PARSE);
    CHECK_ERR(crypto_pubkey_verify(NULL, "x", 1, sig, sizeof(sig)), POSGATE_ERR_BADSIG);
    CHECK_ERR(crypto_privkey_from_pem(NULL, &sk), POSGATE_ERR_INVALID);
    CHECK_ERR(crypto_privkey_load("/nonexistent/key.pem", &sk), POSGATE_ERR_NOTFOUND);
    CHECK(sk == NULL);
    CHECK_ERR(crypto_unhex("abc", 3, &b), POSGATE_ERR_INVALID);
    CHECK_ERR(crypto_unhex("zz", 2, &b), POSGATE_ERR_INVALID);
    buf_reset(&b);
    CHECK_ERR(crypto_unhex("000102030405060708090a0b0c0d0e0f10", 34, &b), POSGATE_ERR_TOOBIG);
    crypto_pubkey_free(NULL);
    crypto_privkey_free(NULL);
    crypto_hash_stream_free(NULL);
    buf_free(&b);
}

static void
test_hashes(void)
{
    uint8_t h[64], h2[64];
    char hex[129];
    struct crypto_hash_stream *s;
    struct crypto_sha256_ctx c;

    crypto_sha256("abc", 3, h);
    hex_of(h, 32, hex);
    CHECK_STR(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    crypto_sha512("abc", 3, h);
    hex_of(h, 64, hex);
    CHECK_STR(hex, "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a"
                   "2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f");
    CHECK_OK(crypto_hash_stream_new(&s));
    crypto_hash_stream_update(s, "a", 1);
    crypto_hash_stream_update(s, "bc", 2);
    crypto_hash_stream_finish(s, h, h2);
    crypto_hash_stream_free(s);
    hex_of(h, 32, hex);
    CHECK_STR(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    crypto_sha512("abc", 3, h);
    CHECK(memcmp(h, h2, 64) == 0);
    /* a stream starts over after finish: one stream hashes many inputs (the audit chain),
     * and agrees with the one-shot hash on inputs across block boundaries */
    CHECK_OK(crypto_hash_stream_new_for(&s, true, false));
    for (size_t n = 0; n < 300; n += 7) {
        uint8_t data[300], one[32];

        for (size_t i = 0; i < n; i++) {
            data[i] = (uint8_t)(i * 31 + n);
        }
        memset(h2, 0xaa, 64);
        crypto_hash_stream_update(s, data, n / 2);
        crypto_hash_stream_update(s, data + n / 2, n - n / 2);
        crypto_hash_stream_finish(s, h, h2);
        crypto_sha256(data, n, one);
        CHECK(memcmp(h, one, 32) == 0);
        CHECK(h2[0] == 0xaa && h2[63] == 0xaa); /* SHA-512 not asked for: untouched */
    }
    crypto_hash_stream_free(s);
    crypto_sha256_init(&c);
    crypto_sha256_update(&c, "ab", 2);
    crypto_sha256_update(&c, "c", 1);
    crypto_sha256_finish(&c, h);
    hex_of(h, 32, hex);
    CHECK_STR(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    plat_mem_fail_after(0);
    CHECK_ERR(crypto_hash_stream_new(&s), POSGATE_ERR_NOMEM);
    plat_mem_fail_after(-1);
}

static void
test_hmac(void)
{
    /* RFC 4231 test cases 1, 2 and 6 (a key longer than the block). */
    struct crypto_hmac_key k;
    uint8_t key1[20], key6[131], out[32];
    char hex[65];

    memset(key1, 0x0b, sizeof(key1));
    CHECK_OK(crypto_hmac_key_init(&k, key1, sizeof(key1)));
    crypto_hmac(&k, "Hi There", 8, out);
    hex_of(out, 32, hex);
    CHECK_STR(hex, "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
    /* Reuse of the prepared key gives the same answer (pads are not consumed). */
    crypto_hmac(&k, "Hi There", 8, out);
    hex_of(out, 32, hex);
    CHECK_STR(hex, "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
    crypto_hmac_key_cleanup(&k);
    CHECK_OK(crypto_hmac_key_init(&k, "Jefe", 4));
    CHECK(k.x_inner != NULL && k.x_outer != NULL); /* through libcrypto */
    crypto_hmac(&k, "what do ya want for nothing?", 28, out);
    hex_of(out, 32, hex);
    CHECK_STR(hex, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    {
        /* without the libcrypto states (made or used in vain): mbedTLS, the same MACs for
         * messages of every length around the block */
        static const size_t key_lens[] = {0, 1, 32, 63, 64, 65, 131};
        struct crypto_hmac_key kb = k;
        uint8_t msg[200], a[32], b[32];

        kb.x_inner = kb.x_outer = NULL;
        crypto_hmac(&kb, "what do ya want for nothing?", 28, out);
        hex_of(out, 32, hex);
        CHECK_STR(hex, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
        crypto_hmac_key_cleanup(&kb); /* wipes its copy; the states stay k's */
        for (size_t n = 0; n < sizeof(msg); n++) {
            msg[n] = (uint8_t)(n * 7 + 1);
        }
        for (size_t j = 0; j < sizeof(key_lens) / sizeof(key_lens[0]); j++) {
            struct crypto_hmac_key kj;

            memset(key6, (int)(0x11 * (j + 1)), sizeof(key6));
            CHECK_OK(crypto_hmac_key_init(&kj, key6, key_lens[j]));
            CHECK(kj.x_inner != NULL);
            kb = kj;
            kb.x_inner = kb.x_outer = NULL;
            for (size_t n = 0; n < sizeof(msg); n++) {
                crypto_hmac(&kj, msg, n, a);
                crypto_hmac(&kb, msg, n, b);
                CHECK(memcmp(a, b, sizeof(a)) == 0);
            }
            crypto_hmac_key_cleanup(&kb);
            crypto_hmac_key_cleanup(&kj);
        }
    }
    crypto_hmac_key_cleanup(&k);
    memset(key6, 0xaa, sizeof(key6));
    CHECK_OK(crypto_hmac_key_init(&k, key6, sizeof(key6)));
    crypto_hmac(&k, "Test Using Larger Than Block-Size Key - Hash Key First", 54, out);
    hex_of(out, 32, hex);
    CHECK_STR(hex, "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
    crypto_hmac_key_cleanup(&k);
    CHECK_ERR(crypto_hmac_key_init(NULL, "k", 1), POSGATE_ERR_INVALID);
}

static void
test_sign_verify(void)
{
    struct crypto_privkey *sk = NULL, *sk2 = NULL, *other = NULL;
    struct crypto_pubkey *pk = NULL, *wrong_scheme = NULL;
    struct buf pem = BUF_INIT(CRYPTO_PEM_MAX), pub = BUF_INIT(CRYPTO_PEM_MAX), sig = BUF_INIT(256),
               sig2 = BUF_INIT(256);

    CHECK_OK(crypto_privkey_generate(&sk));
    CHECK_OK(crypto_privkey_generate(&other));
    CHECK_OK(crypto_privkey_pem(sk, &pem));
    CHECK_CONTAINS(buf_cstr(&pem), "PRIVATE KEY");
    CHECK_OK(crypto_privkey_from_pem(buf_cstr(&pem), &sk2));
    CHECK_OK(crypto_privkey_public_pem(sk, &pub));
    CHECK_CONTAINS(buf_cstr(&pub), "BEGIN PUBLIC KEY");
    CHECK_OK(crypto_pubkey_from_pem(buf_cstr(&pub), CRYPTO_SCHEME_ECDSA_P256_SHA256, &pk));
    CHECK_ERR(crypto_pubkey_from_pem(buf_cstr(&pub), CRYPTO_SCHEME_RSA_PSS_SHA256, &wrong_scheme),
              POSGATE_ERR_UNSUPPORTED);
    CHECK_OK(crypto_privkey_sign(sk, "message", 7, &sig));
    CHECK_OK(crypto_pubkey_verify(pk, "message", 7, sig.data, sig.len));
    /* Forgeries: another message, a flipped bit, a truncated or extended signature, another key. */
    CHECK_ERR(crypto_pubkey_verify(pk, "messagf", 7, sig.data, sig.len), POSGATE_ERR_BADSIG);
    sig.data[sig.len / 2] ^= 1;
    CHECK_ERR(crypto_pubkey_verify(pk, "message", 7, sig.data, sig.len), POSGATE_ERR_BADSIG);
    sig.data[sig.len / 2] ^= 1;
    CHECK_ERR(crypto_pubkey_verify(pk, "message", 7, sig.data, sig.len - 1), POSGATE_ERR_BADSIG);
    CHECK_OK(buf_append(&sig, "\0", 1));
    CHECK_ERR(crypto_pubkey_verify(pk, "message", 7, sig.data, sig.len), POSGATE_ERR_BADSIG);
    sig.len--;
    {
        /* the same r and s with the sequence's length in BER long form: DER only */
        uint8_t ber[300];

        CHECK(sig.len > 2 && sig.data[0] == 0x30 && sig.data[1] < 0x80);
        ber[0] = 0x30;
        ber[1] = 0x81;
        memcpy(ber + 2, sig.data + 1, sig.len - 1);
        CHECK_ERR(crypto_pubkey_verify(pk, "message", 7, ber, sig.len + 1), POSGATE_ERR_BADSIG);
    }
    CHECK_OK(crypto_pubkey_verify(pk, "message", 7, sig.data, sig.len));
    CHECK_OK(crypto_privkey_sign(other, "message", 7, &sig2));
    CHECK_ERR(crypto_pubkey_verify(pk, "message", 7, sig2.data, sig2.len), POSGATE_ERR_BADSIG);
    /* The reloaded key signs verifiably too. */
    buf_reset(&sig2);
    CHECK_OK(crypto_privkey_sign(sk2, "m2", 2, &sig2));
    CHECK_OK(crypto_pubkey_verify(pk, "m2", 2, sig2.data, sig2.len));
    crypto_pubkey_free(pk);
    crypto_privkey_free(sk);
    crypto_privkey_free(sk2);
    crypto_privkey_free(other);
    buf_wipe(&pem);
    buf_free(&pub);
    buf_free(&sig);
    buf_free(&sig2);
}

static void
test_hex(void)
{
    struct buf b = BUF_INIT(64);
    uint8_t x[3] = {0x00, 0xab, 0xff};
    char hex[7];

    crypto_hex(x, 3, hex);
    CHECK_STR(hex, "00abff");
    CHECK_OK(crypto_unhex("00ABff", 6, &b));
    CHECK_INT(b.len, 3);
    CHECK(memcmp(b.data, x, 3) == 0);
    CHECK(crypto_equal("abc", "abc", 3));
    CHECK(!crypto_equal("abc", "abd", 3));
    buf_free(&b);
}

/* RFC 8439 appendix A.1, test vectors 1 and 2: all-zero key and nonce, blocks 0 and 1. */
static void
test_chacha20(void)
{
    static const char want[] = "76b8e0ada0f13d90405d6ae55386bd28bdd219b8a08ded1aa836efcc8b770dc7"
                               "da41597c5157488d7724e03fb8d84a376a43b8f41518a11cc387b669b2ee6586"
                               "9f07e7be5551387a98ba977c732d080dcb0f29a048e3656912c6533e32ee7aed"
                               "29b721769ce64e43d57133b074d839d531ed1f28510afb45ace10a1f4b794d6f";
    uint8_t key[32] = {0}, nonce[12] = {0}, out[128], other[128];
    char hex[2 * sizeof out + 1];

    crypto_chacha20_stream(key, nonce, out, sizeof out);
    crypto_hex(out, sizeof out, hex);
    CHECK_STR(hex, want);
    nonce[11] = 1; /* another nonce, another stream */
    crypto_chacha20_stream(key, nonce, other, sizeof other);
    CHECK(memcmp(out, other, sizeof out) != 0);
}

/* The seeded stream (libcrypto) gives the bytes of crypto_sha256 then crypto_chacha20_stream
 * (mbedTLS) for inputs split anywhere, empty ones and lengths around ChaCha20's 64-byte block,
 * and keeps nothing of one call in the next. */
static void
test_seeded_stream(void)
{
    static const uint8_t zero_nonce[12];
    struct crypto_seeded_stream *x = NULL;
    uint8_t msg[200], seed[CRYPTO_SHA256_LEN], want[300], got[300];

    for (size_t i = 0; i < sizeof msg; i++) {
        msg[i] = (uint8_t)(i * 37 + 11);
    }
    CHECK_OK(crypto_seeded_stream_new(&x));
    for (size_t mlen = 0; mlen <= sizeof msg; mlen += 13) {
        for (size_t len = 0; len <= sizeof want; len += 31) {
            size_t split = mlen / 3;

            crypto_sha256(msg, mlen, seed);
            crypto_chacha20_stream(seed, zero_nonce, want, len);
            memset(got, 0xa5, sizeof got);
            crypto_seeded_stream(x, msg, split, msg + split, mlen - split, got, len);
            CHECK(memcmp(got, want, len) == 0);
            CHECK(len == sizeof got || got[len] == 0xa5); /* nothing past len */
        }
    }
    crypto_sha256(msg, 64, seed);
    crypto_chacha20_stream(seed, zero_nonce, want, 256);
    crypto_seeded_stream(x, NULL, 0, msg, 64, got, 256);
    CHECK(memcmp(got, want, 256) == 0);
    crypto_seeded_stream_free(x);
    crypto_seeded_stream_free(NULL);
}

int
main(void)
{
    test_chacha20();
    test_seeded_stream();
    test_safety();
    test_hashes();
    test_hmac();
    test_sign_verify();
    test_hex();
    return test_summary("crypto");
}
