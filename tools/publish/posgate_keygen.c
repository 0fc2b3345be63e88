/* SPDX-License-Identifier: Apache-2.0 */
/*
 * posgate-keygen: makes the publisher's secrets. `--out PREFIX` writes a new signing key (ECDSA
 * P-256, or RSA-PSS with --type rsa) as PREFIX.key (PEM, mode 0600) and its public key as
 * PREFIX.pub (PEM SubjectPublicKeyInfo, mode 0644) and prints the TUF keyid; `--token URI`
 * generates the key pair inside a PKCS#11 token instead (the private key never leaves it) and
 * `--public URI` reads a token key's public half, both writing PREFIX.pub when --out is given;
 * `--list-key --out FILE` writes a 32-byte list key from the CSPRNG (mode 0600). It never
 * overwrites an existing file or token key. Exit codes: 0 success, 2 usage, 5 I/O or other
 * failure.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "crypto.h"
#include "pkcs11_signer.h"
#include "plat_file.h"
#include "plat_mem.h"
#include "plat_random.h"
#include "posgate_err.h"
#include "tuf_writer.h"
#include "version.h"

#define EXIT_OK      0
#define EXIT_USAGE   2
#define EXIT_IO      5
#define LIST_KEY_LEN 32
#define PATH_CAP     4096
#define RSA_BITS     3072 /* securesystemslib's default RSA size */

static void
usage(FILE *f)
{
    fprintf(f, "usage: posgate-keygen [--type ecdsa|rsa] [--bits N] --out PREFIX\n"
               "                 write PREFIX.key (0600) and PREFIX.pub; ecdsa: P-256 (default),\n"
               "                 rsa: rsassa-pss-sha256, --bits 2048..4096 (default 3072)\n"
               "       posgate-keygen [--type ecdsa|rsa] [--bits N] --token URI [--out PREFIX]\n"
               "                 generate the key pair inside the PKCS#11 token the pkcs11: URI\n"
               "                 names (object=LABEL); the private key never leaves the token\n"
               "       posgate-keygen --public URI [--out PREFIX]\n"
               "                 print the keyid (and write PREFIX.pub) of a token key\n"
               "       posgate-keygen --list-key --out FILE    write a 32-byte list key (0600)\n"
               "       posgate-keygen --help\n"
               "A missing parent directory is created (mode 0700). Existing files are never\n"
               "overwritten. Exit: 0 ok, 2 usage, 5 I/O.\n");
}

static int
refuse_existing(const char *path)
{
    if (plat_exists(path)) {
        fprintf(stderr,
                "posgate-keygen: %s already exists; refusing to overwrite it (expected a new "
                "file name)\n",
                path);
        return 1;
    }
    return 0;
}

/* Creates the directory that will hold path (`--out keys/root` with no keys/ yet), mode 0700:
 * it is to hold private keys. An existing directory keeps its mode. */
static int
make_parent(const char *path)
{
    char dir[PATH_CAP];
    const char *slash = strrchr(path, '/');
    size_t n;
    enum posgate_err err;

    if (slash == NULL || slash == path) {
        return 0;
    }
    n = (size_t)(slash - path);
    if (n >= sizeof(dir)) {
        fprintf(stderr, "posgate-keygen: --out path is too long\n");
        return 1;
    }
    memcpy(dir, path, n);
    dir[n] = 0;
    err = plat_mkdir_p(dir, 0700);
    if (err != POSGATE_OK) {
        fprintf(stderr, "posgate-keygen: cannot create directory %s: %s\n", dir,
                posgate_strerror(err));
        return 1;
    }
    return 0;
}

static int
write_list_key(const char *path)
{
    uint8_t key[LIST_KEY_LEN];
    enum posgate_err err;

    if (refuse_existing(path) || make_parent(path)) {
        return EXIT_IO;
    }
    err = plat_random(key, sizeof(key));
    if (err == POSGATE_OK) {
        err = plat_write_atomic(path, key, sizeof(key), 0600);
    }
    plat_wipe(key, sizeof(key));
    if (err != POSGATE_OK) {
        fprintf(stderr, "posgate-keygen: cannot write %s: %s\n", path, posgate_strerror(err));
        return EXIT_IO;
    }
    printf("wrote list key %s (%d bytes, mode 0600)\n", path, LIST_KEY_LEN);
    return EXIT_OK;
}

static int
write_signing_key(const char *prefix, int rsa, unsigned bits)
{
    char key_path[PATH_CAP], pub_path[PATH_CAP], keyid[TUF_WRITER_KEYID_LEN + 1];
    struct crypto_privkey *k = NULL;
    struct buf priv = BUF_INIT(CRYPTO_PEM_MAX), pub = BUF_INIT(CRYPTO_PEM_MAX);
    enum posgate_err err;
    int rc = EXIT_IO;

    if (snprintf(key_path, sizeof(key_path), "%s.key", prefix) >= (int)sizeof(key_path) ||
        snprintf(pub_path, sizeof(pub_path), "%s.pub", prefix) >= (int)sizeof(pub_path)) {
        fprintf(stderr, "posgate-keygen: --out PREFIX is too long\n");
        return EXIT_USAGE;
    }
    if (refuse_existing(key_path) || refuse_existing(pub_path) || make_parent(key_path)) {
        return EXIT_IO;
    }
    err = rsa ? crypto_privkey_generate_rsa(bits, &k) : crypto_privkey_generate(&k);
    if (err == POSGATE_OK) {
        err = crypto_privkey_pem(k, &priv);
    }
    if (err == POSGATE_OK) {
        err = crypto_privkey_public_pem(k, &pub);
    }
    if (err == POSGATE_OK) {
        err = tuf_writer_keyid(k, keyid);
    }
    if (err != POSGATE_OK) {
        fprintf(stderr, "posgate-keygen: cannot generate %s key: %s\n",
                rsa ? "an RSA" : "an ECDSA P-256", posgate_strerror(err));
        goto out;
    }
    err = plat_write_atomic(key_path, priv.data, priv.len, 0600);
    if (err != POSGATE_OK) {
        fprintf(stderr, "posgate-keygen: cannot write %s: %s\n", key_path, posgate_strerror(err));
        goto out;
    }
    err = plat_write_atomic(pub_path, pub.data, pub.len, 0644);
    if (err != POSGATE_OK) {
        fprintf(stderr, "posgate-keygen: cannot write %s: %s\n", pub_path, posgate_strerror(err));
        if (plat_unlink(key_path) != POSGATE_OK) {
            fprintf(stderr, "posgate-keygen: cannot remove %s\n", key_path);
        }
        goto out;
    }
    printf("wrote %s (private, mode 0600) and %s\nkeyid %s\n", key_path, pub_path, keyid);
    rc = EXIT_OK;
out:
    buf_wipe(&priv);
    buf_free(&pub);
    crypto_privkey_free(k);
    return rc;
}

/* The keyid of a token key, and its public key written to PREFIX.pub when prefix is set. */
static int
token_public(const char *uri, const char *prefix)
{
    char pub_path[PATH_CAP], keyid[TUF_WRITER_KEYID_LEN + 1], msg[512];
    struct crypto_privkey *k = NULL;
    struct buf pub = BUF_INIT(CRYPTO_PEM_MAX);
    enum posgate_err err;
    int rc = EXIT_IO;

    if (prefix != NULL &&
        snprintf(pub_path, sizeof(pub_path), "%s.pub", prefix) >= (int)sizeof(pub_path)) {
        fprintf(stderr, "posgate-keygen: --out PREFIX is too long\n");
        return EXIT_USAGE;
    }
    if (prefix != NULL && refuse_existing(pub_path)) {
        return EXIT_IO;
    }
    err = pkcs11_signer_open(uri, &k, msg, sizeof msg);
    if (err != POSGATE_OK) {
        fprintf(stderr, "posgate-keygen: %s\n", msg);
        return err == POSGATE_ERR_INVALID ? EXIT_USAGE : EXIT_IO;
    }
    err = crypto_privkey_public_pem(k, &pub);
    if (err == POSGATE_OK) {
        err = tuf_writer_keyid(k, keyid);
    }
    if (err == POSGATE_OK && prefix != NULL) {
        err = plat_write_atomic(pub_path, pub.data, pub.len, 0644);
    }
    if (err != POSGATE_OK) {
        fprintf(stderr, "posgate-keygen: cannot export the token key's public half: %s\n",
                posgate_strerror(err));
        goto out;
    }
    if (prefix != NULL) {
        printf("wrote %s\n", pub_path);
    } else {
        fputs((const char *)pub.data, stdout);
    }
    printf("keyid %s\nscheme %s\n", keyid,
           crypto_privkey_scheme(k) == CRYPTO_SCHEME_RSA_PSS_SHA256 ? "rsassa-pss-sha256"
                                                                     : "ecdsa-sha2-nistp256");
    rc = EXIT_OK;
out:
    buf_free(&pub);
    crypto_privkey_free(k);
    return rc;
}

static int
token_generate(const char *uri, int rsa, unsigned bits, const char *prefix)
{
    char msg[512];
    enum posgate_err err;

    err = pkcs11_signer_generate(uri,
                                 rsa ? CRYPTO_SCHEME_RSA_PSS_SHA256
                                     : CRYPTO_SCHEME_ECDSA_P256_SHA256,
                                 bits, msg, sizeof msg);
    if (err != POSGATE_OK) {
        fprintf(stderr, "posgate-keygen: %s\n", msg);
        return err == POSGATE_ERR_INVALID ? EXIT_USAGE : EXIT_IO;
    }
    printf("generated %s key pair in the token\n", rsa ? "an RSA" : "an ECDSA P-256");
    return token_public(uri, prefix);
}

static int
parse_bits(const char *v, unsigned *out)
{
    char *end = NULL;
    unsigned long n = strtoul(v, &end, 10);

    if (end == v || *end != '\0' || n < CRYPTO_RSA_MIN_BITS || n > CRYPTO_RSA_MAX_BITS ||
        n % 8 != 0) {
        fprintf(stderr,
                "posgate-keygen: --bits \"%s\": expected a multiple of 8 from %d to %d\n", v,
                CRYPTO_RSA_MIN_BITS, CRYPTO_RSA_MAX_BITS);
        return -1;
    }
    *out = (unsigned)n;
    return 0;
}

int
main(int argc, char **argv)
{
    const char *out = NULL, *token = NULL, *public_uri = NULL;
    int list_key = 0, rsa = 0, bits_given = 0;
    unsigned bits = RSA_BITS;

    if (version_asked(argc, argv)) {
        version_print(stdout, "posgate-keygen", VERSION_MBEDTLS, NULL);
        return EXIT_OK;
    }
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return EXIT_OK;
        } else if (strcmp(argv[i], "--list-key") == 0) {
            list_key = 1;
        } else if (strcmp(argv[i], "--type") == 0 && i + 1 < argc) {
            i++;
            if (strcmp(argv[i], "rsa") == 0) {
                rsa = 1;
            } else if (strcmp(argv[i], "ecdsa") == 0) {
                rsa = 0;
            } else {
                fprintf(stderr, "posgate-keygen: --type \"%s\": expected ecdsa or rsa\n",
                        argv[i]);
                return EXIT_USAGE;
            }
        } else if (strcmp(argv[i], "--bits") == 0 && i + 1 < argc) {
            if (parse_bits(argv[++i], &bits) != 0) {
                return EXIT_USAGE;
            }
            bits_given = 1;
        } else if (strcmp(argv[i], "--token") == 0 && i + 1 < argc) {
            token = argv[++i];
        } else if (strcmp(argv[i], "--public") == 0 && i + 1 < argc) {
            public_uri = argv[++i];
        } else if (strcmp(argv[i], "--out") == 0 && i + 1 < argc) {
            if (out != NULL) {
                fprintf(stderr, "posgate-keygen: --out given twice\n");
                usage(stderr);
                return EXIT_USAGE;
            }
            out = argv[++i];
        } else {
            fprintf(stderr, "posgate-keygen: unexpected argument \"%s\"\n", argv[i]);
            usage(stderr);
            return EXIT_USAGE;
        }
    }
    if (bits_given && !rsa) {
        fprintf(stderr, "posgate-keygen: --bits applies to --type rsa only, found --type ecdsa\n");
        return EXIT_USAGE;
    }
    if ((token != NULL) + (public_uri != NULL) + list_key > 1) {
        fprintf(stderr, "posgate-keygen: expected one of --token, --public and --list-key, found "
                        "more\n");
        usage(stderr);
        return EXIT_USAGE;
    }
    if (out != NULL && out[0] == 0) {
        out = NULL;
    }
    if (token != NULL) {
        return token_generate(token, rsa, bits, out);
    }
    if (public_uri != NULL) {
        return token_public(public_uri, out);
    }
    if (out == NULL) {
        fprintf(stderr, "posgate-keygen: expected --out, found none\n");
        usage(stderr);
        return EXIT_USAGE;
    }
    return list_key ? write_list_key(out) : write_signing_key(out, rsa, bits);
}
