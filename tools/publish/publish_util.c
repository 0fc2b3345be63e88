/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The helpers of the posgate-publish commands (publish_internal.h): their messages and exit
 * codes, bounded paths, the signing keys, list key and feed configuration they load (with the
 * list key's check value added to a feed.json that lacks it), and the files a run copies and
 * clears.
 */
#define _XOPEN_SOURCE 700
#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "list_key.h"
#include "pkcs11_signer.h"
#include "plat_file.h"
#include "publish_internal.h"

void
die_msg(const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "%s: ", prog);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

int
exit_for(enum posgate_err err)
{
    switch (err) {
    case POSGATE_ERR_OK:
        return EXIT_OK;
    case POSGATE_ERR_INVALID:
    case POSGATE_ERR_USAGE:
    case POSGATE_ERR_PARSE:
    case POSGATE_ERR_TOOBIG:
    case POSGATE_ERR_NOTFOUND:
    case POSGATE_ERR_UNSUPPORTED:
    case POSGATE_ERR_STATE:
        return EXIT_USAGE;
    case POSGATE_ERR_REJECTED:
    case POSGATE_ERR_BADSIG:
        return EXIT_REFUSED;
    case POSGATE_ERR_NOMEM:
    case POSGATE_ERR_IO:
    case POSGATE_ERR_BADHASH:
    case POSGATE_ERR_ROLLBACK:
    case POSGATE_ERR_EXPIRED:
    case POSGATE_ERR_CORRUPT:
    case POSGATE_ERR_NETWORK:
    case POSGATE_ERR_RETRY:
    case POSGATE_ERR__COUNT:
        return EXIT_IO;
    }
    return EXIT_IO;
}

enum posgate_err
pathf(char *out, size_t cap, const char *fmt, ...)
{
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(out, cap, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= cap) {
        die_msg("path too long");
        return POSGATE_ERR_TOOBIG;
    }
    return POSGATE_OK;
}

/* A signing key: a key file, or a key in a PKCS#11 token named by a pkcs11: URI. */
enum posgate_err
load_privkey(const char *path, struct crypto_privkey **out)
{
    char msg[512];
    enum posgate_err err = pkcs11_signer_load_any(path, out, msg, sizeof msg);

    if (err != POSGATE_OK) {
        die_msg("%s", msg);
    }
    return err;
}

enum posgate_err
load_list_key(const char *path, struct crypto_hmac_key *k)
{
    struct buf raw = BUF_INIT(4096);
    enum posgate_err err;

    err = plat_read_file(path, &raw);
    if (err != POSGATE_OK) {
        die_msg("cannot read the list key %s: %s", path, posgate_strerror(err));
        goto out;
    }
    if (raw.len != LIST_KEY_LEN) {
        die_msg("list key %s is %zu bytes, expected %d (posgate-keygen --list-key)", path, raw.len,
                LIST_KEY_LEN);
        err = POSGATE_ERR_INVALID;
        goto out;
    }
    err = crypto_hmac_key_init(k, raw.data, raw.len);
out:
    buf_wipe(&raw);
    return err;
}

enum posgate_err
load_config(const char *path, struct feed_config **cfg, struct buf *raw)
{
    char msg[512];
    enum posgate_err err;

    err = plat_read_file(path, raw);
    if (err != POSGATE_OK) {
        die_msg("cannot read the feed config %s: %s", path, posgate_strerror(err));
        return err;
    }
    err = feed_config_parse(raw->data, raw->len, FEED_CONFIG_STRICT, cfg, msg, sizeof msg);
    if (err != POSGATE_OK) {
        die_msg("%s: %s", path, msg);
    }
    return err;
}

/* The feed configuration as kiosks receive it: the operator's feed.json with the list key's
 * check value (list_key.h) inserted as its first member, every other byte as written, so that a
 * kiosk holding another list key refuses the feed instead of allowing everyone. A value
 * already present must be this key's (a different one means the list key file is not the one
 * the feed was set up with). *added is 1 when the value was inserted; *cfg is then re-parsed
 * from the new bytes (which must still fit FEED_CONFIG_MAX_BYTES). */
enum posgate_err
add_key_check(const char *where, const struct crypto_hmac_key *hk, struct buf *raw,
              struct feed_config **cfg, int *added)
{
    char check[LIST_KEY_CHECK_HEX + 1];
    struct buf out = BUF_INIT(FEED_CONFIG_MAX_BYTES);
    struct feed_config *c = NULL;
    const char *p = (const char *)raw->data;
    size_t open = 0;
    enum posgate_err err = POSGATE_OK;

    *added = 0;
    list_key_check(hk, check);
    if ((*cfg)->list_key_check[0] != 0) {
        if (strcmp((*cfg)->list_key_check, check) != 0) {
            die_msg("%s: list_key_check is %s, but the list key's fingerprint is %s: the list "
                    "key is not the one this feed configuration names",
                    where, (*cfg)->list_key_check, check);
            err = POSGATE_ERR_REJECTED;
        }
        goto out;
    }
    while (open < raw->len && p[open] != '{') {
        open++;
    }
    if (open == raw->len) {
        die_msg("%s: expected a JSON object, found no \"{\"", where);
        err = POSGATE_ERR_INVALID;
        goto out;
    }
    err = buf_append(&out, raw->data, open + 1);
    if (err == POSGATE_OK) {
        err = buf_printf(&out, "\n  \"list_key_check\": \"%s\",", check);
    }
    if (err == POSGATE_OK) {
        err = buf_append(&out, p + open + 1, raw->len - open - 1);
    }
    if (err != POSGATE_OK) {
        die_msg("%s: cannot add list_key_check: %s", where, posgate_strerror(err));
        goto out;
    }
    err = feed_config_parse(out.data, out.len, FEED_CONFIG_STRICT, &c, NULL, 0);
    if (err != POSGATE_OK) {
        die_msg("%s: with list_key_check added it no longer parses: %s", where,
                posgate_strerror(err));
        goto out;
    }
    feed_config_free(*cfg);
    *cfg = c;
    buf_reset(raw);
    err = buf_append(raw, out.data, out.len);
    if (err != POSGATE_OK) {
        goto out;
    }
    *added = 1;
out:
    buf_free(&out);
    return err;
}

/* Copies a file (streaming). */
enum posgate_err
copy_file(const char *from, const char *to)
{
    FILE *f = fopen(from, "rb");
    struct plat_atomic_file af;
    uint8_t chunk[65536];
    enum posgate_err err;
    size_t n;

    af.fd = -1;
    af.tmp_path[0] = '\0';
    if (f == NULL) {
        die_msg("cannot open %s: %s", from, strerror(errno));
        return POSGATE_ERR_IO;
    }
    err = plat_atomic_open(&af, to, 0644);
    while (err == POSGATE_OK && (n = fread(chunk, 1, sizeof chunk, f)) > 0) {
        err = plat_atomic_write(&af, chunk, n);
    }
    if (err == POSGATE_OK && ferror(f)) {
        err = POSGATE_ERR_IO;
    }
    if (err == POSGATE_OK) {
        err = plat_atomic_commit(&af);
    }
    if (err != POSGATE_OK) {
        plat_atomic_abort(&af);
        die_msg("cannot copy %s to %s: %s", from, to, posgate_strerror(err));
    }
    fclose(f);
    return err;
}

/* Removes every file of a directory (not recursive) and the directory. */
void
remove_dir(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    char p[PATH_CAP];

    if (d == NULL) {
        return;
    }
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0) {
            continue;
        }
        if (pathf(p, sizeof p, "%s/%s", dir, de->d_name) == POSGATE_OK) {
            (void)unlink(p);
        }
    }
    closedir(d);
    (void)rmdir(dir);
}
