/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Tests of sync/crypto/pkcs11_signer.c without a token: the URI checks (p11-kit parses, we refuse what
 * names no private key), each with its exact error and message; and key specs that are files.
 * Signing in a token is shown by tests/integration/keys_hsm.sh with SoftHSM2.
 */
#include <string.h>

#include "crypto.h"
#include "pkcs11_signer.h"
#include "test.h"

static void
expect_refused(const char *uri, enum posgate_err want, const char *msg_part)
{
    struct crypto_privkey *k = (struct crypto_privkey *)1;
    char msg[512] = "";

    CHECK_ERR(pkcs11_signer_open(uri, &k, msg, sizeof msg), want);
    CHECK(k == NULL);
    CHECK(strstr(msg, msg_part) != NULL);
}

static void
test_safety(void)
{
    char big[PKCS11_SIGNER_URI_MAX + 16];
    char msg[64];

    CHECK_ERR(pkcs11_signer_open("pkcs11:object=x", NULL, msg, sizeof msg), POSGATE_ERR_INVALID);
    expect_refused(NULL, POSGATE_ERR_INVALID, "expected a pkcs11: URI");
    expect_refused("/etc/key.pem", POSGATE_ERR_INVALID, "expected a pkcs11: URI");
    memcpy(big, "pkcs11:object=", 14);
    memset(big + 14, 'a', sizeof big - 15);
    big[sizeof big - 1] = '\0';
    expect_refused(big, POSGATE_ERR_TOOBIG, "longer than");
    CHECK_ERR(pkcs11_signer_generate("pkcs11:object=x", CRYPTO_SCHEME_RSA_PSS_SHA256, 1024, msg,
                                     sizeof msg),
              POSGATE_ERR_INVALID);
    CHECK_ERR(pkcs11_signer_generate("pkcs11:object=x", CRYPTO_SCHEME_RSA_PKCS1_SHA256, 2048, msg,
                                     sizeof msg),
              POSGATE_ERR_UNSUPPORTED);
}

static void
test_uri(void)
{
    CHECK(pkcs11_signer_is_uri("pkcs11:object=root"));
    CHECK(!pkcs11_signer_is_uri("PKCS11-root.key"));
    CHECK(!pkcs11_signer_is_uri("./pkcs11:object=root"));
    CHECK(!pkcs11_signer_is_uri(NULL));
    expect_refused("pkcs11:object=%zz", POSGATE_ERR_INVALID, "malformed pkcs11: URI");
    expect_refused("pkcs11:token=t", POSGATE_ERR_INVALID, "names no key");
    expect_refused("pkcs11:token=t;type=cert;object=a", POSGATE_ERR_INVALID,
                   "type other than private");
    expect_refused("pkcs11:token=t;type=public;object=a", POSGATE_ERR_INVALID,
                   "type other than private");
    /* a well-formed URI whose module cannot be loaded */
    expect_refused("pkcs11:token=t;object=a?module-path=/nonexistent/libnone.so", POSGATE_ERR_IO,
                   "cannot load the PKCS#11 module /nonexistent/libnone.so");
}

static void
test_load_any_file(void)
{
    struct crypto_privkey *k = (struct crypto_privkey *)1;
    char msg[512] = "";

    CHECK_ERR(pkcs11_signer_load_any("/nonexistent/key.pem", &k, msg, sizeof msg),
              POSGATE_ERR_NOTFOUND);
    CHECK(k == NULL);
    CHECK(strstr(msg, "expected a PEM ECDSA P-256 or RSA key") != NULL);
}

int
main(void)
{
    test_safety();
    test_uri();
    test_load_any_file();
    return test_summary("pkcs11_signer");
}
