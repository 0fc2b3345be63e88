/* SPDX-License-Identifier: Apache-2.0 */
/*
 * posgate-keygen: makes the publisher's secrets. `--out PREFIX` writes a new ECDSA P-256 signing
 * key as PREFIX.key (PEM, mode 0600) and its public key as PREFIX.pub (PEM SubjectPublicKeyInfo,
 * mode 0644) and prints the TUF keyid; `--list-key --out FILE` writes a 32-byte list key from the
 * CSPRNG (mode 0600). It never overwrites an existing file. Exit codes: 0 success, 2 usage,
 * 5 I/O or other failure.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <string.h>

#include "buf.h"
#include "crypto.h"
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

static void
usage(FILE *f)
{
    fprintf(f, "usage: posgate-keygen --out PREFIX             write PREFIX.key (0600) and "
               "PREFIX.pub\n"
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
write_signing_key(const char *prefix)
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
    err = crypto_privkey_generate(&k);
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
        fprintf(stderr, "posgate-keygen: cannot generate an ECDSA P-256 key: %s\n",
                posgate_strerror(err));
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

int
main(int argc, char **argv)
{
    const char *out = NULL;
    int list_key = 0;

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
    if (out == NULL || out[0] == 0) {
        fprintf(stderr, "posgate-keygen: expected --out, found none\n");
        usage(stderr);
        return EXIT_USAGE;
    }
    return list_key ? write_list_key(out) : write_signing_key(out);
}
