/* SPDX-License-Identifier: Apache-2.0 */
/*
 * `posgate-publish init`: creates the publisher state, a TUF repository whose root is the root
 * keys with their threshold and whose online roles are the feed key, a copy of the validated
 * feed config (with the list key's check value) and the paths of the keys.
 */
#define _XOPEN_SOURCE 700
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pkcs11_signer.h"
#include "plat_file.h"
#include "publish_internal.h"

static enum posgate_err
abs_path(const char *p, char *out, size_t cap)
{
    char *r = realpath(p, NULL);
    enum posgate_err err = POSGATE_OK;

    if (r == NULL) {
        die_msg("%s: %s", p, strerror(errno));
        return errno == ENOENT ? POSGATE_ERR_NOTFOUND : POSGATE_ERR_IO;
    }
    if (strlen(r) >= cap) {
        err = POSGATE_ERR_TOOBIG;
    } else {
        memcpy(out, r, strlen(r) + 1);
    }
    free(r);
    return err;
}

/* Where init records a key: a file's absolute path, or a pkcs11: URI as given. */
static enum posgate_err
key_path(const char *p, char *out, size_t cap)
{
    if (pkcs11_signer_is_uri(p)) {
        if (strlen(p) >= cap) {
            die_msg("%.60s...: the pkcs11: URI is longer than %zu bytes", p, cap - 1);
            return POSGATE_ERR_TOOBIG;
        }
        memcpy(out, p, strlen(p) + 1);
        return POSGATE_OK;
    }
    return abs_path(p, out, cap);
}

/* Records where a signing key is (key_path) in path, and reads its public half into pem. */
static enum posgate_err
read_public(const char *given, char *path, size_t cap, struct buf *pem)
{
    struct crypto_privkey *k = NULL;
    enum posgate_err err = key_path(given, path, cap);

    if (err == POSGATE_OK) {
        err = load_privkey(path, &k);
    }
    if (err == POSGATE_OK) {
        err = crypto_privkey_public_pem(k, pem);
    }
    crypto_privkey_free(k);
    return err;
}

/* The TUF repository state in DIR/tuf: the root role is the root keys with threshold thr, the
 * timestamp, snapshot and targets roles the feed key; saved with the default lifetimes. */
static enum posgate_err
create_repo(const char *dir, const char **root_pems, size_t nroot, unsigned thr,
            const char *feed_pem)
{
    const char *feed_pems[1];
    struct tuf_writer_init wi;
    struct tuf_writer *w = NULL;
    char p[PATH_CAP], msg[TUF_WRITER_ERRMSG_MAX];
    enum posgate_err err;

    feed_pems[0] = feed_pem;
    memset(&wi, 0, sizeof wi);
    wi.root.public_pems = root_pems;
    wi.root.count = nroot;
    wi.root.threshold = thr;
    wi.timestamp.public_pems = feed_pems;
    wi.timestamp.count = 1;
    wi.timestamp.threshold = 1;
    wi.snapshot = wi.timestamp;
    wi.targets = wi.timestamp;
    err = pathf(p, sizeof p, "%s/tuf", dir);
    if (err != POSGATE_OK) {
        return err;
    }
    err = tuf_writer_create(p, &wi, &w, msg, sizeof msg);
    if (err != POSGATE_OK) {
        die_msg("cannot create the TUF repository state in %s: %s", p, msg);
        return err;
    }
    err = set_lifetimes(w, 86400);
    if (err == POSGATE_OK) {
        err = tuf_writer_save(w);
    }
    if (err != POSGATE_OK) {
        die_msg("cannot save the TUF writer state: %s", tuf_writer_errmsg(w));
    }
    tuf_writer_free(w);
    return err;
}

static void
usage_init(FILE *f)
{
    fprintf(f,
            "usage: posgate-publish init --state DIR --config feed.json --root-key K.key\n"
            "                            [--root-key K2.key ...] --threshold N --feed-key F.key\n"
            "                            --list-key FILE\n"
            "Creates the publisher state in DIR (which must not hold one): a TUF repository\n"
            "whose root role is the root keys with threshold N and whose timestamp, snapshot\n"
            "and targets roles are the feed key; a copy of the validated feed config; and the\n"
            "paths of the keys and of the 32-byte list key (which never goes into the feed).\n"
            "Nothing is published until the first update.\n"
            "Exit: 0 ok, 2 invalid input, 5 I/O.\n");
}

int
publish_cmd_init(int argc, char **argv)
{
    struct opt o[] = {{"state", 1, 0, {0}, 0},    {"config", 1, 0, {0}, 0},
                      {"root-key", 1, 1, {0}, 0}, {"threshold", 1, 0, {0}, 0},
                      {"feed-key", 1, 0, {0}, 0}, {"list-key", 1, 0, {0}, 0}};
    struct pub_state s;
    struct feed_config *cfg = NULL;
    struct buf cfg_raw = BUF_INIT(FEED_CONFIG_MAX_BYTES);
    struct buf root_pem[MAX_ROOT_KEYS], feed_pem = BUF_INIT(CRYPTO_PEM_MAX);
    const char *root_pems[MAX_ROOT_KEYS];
    struct crypto_hmac_key hk;
    char p[PATH_CAP], *end = NULL;
    int rc, key_check_added = 0;
    unsigned long thr;
    size_t i;
    enum posgate_err err = POSGATE_ERR_USAGE;

    memset(&s, 0, sizeof s);
    memset(&hk, 0, sizeof hk);
    for (i = 0; i < MAX_ROOT_KEYS; i++) {
        buf_init(&root_pem[i], CRYPTO_PEM_MAX);
    }
    rc = opt_parse(argc, argv, o, sizeof o / sizeof o[0], OPT_SAY_TWICE);
    if (rc < 0) {
        usage_init(stderr);
        return EXIT_USAGE;
    }
    if (rc > 0) {
        usage_init(stdout);
        return EXIT_OK;
    }
    for (i = 0; i < sizeof o / sizeof o[0]; i++) {
        if (opt_require(&o[i], "init") != 0) {
            return EXIT_USAGE;
        }
    }
    errno = 0;
    thr = strtoul(opt_value(&o[3]), &end, 10);
    if (errno != 0 || end == opt_value(&o[3]) || *end != '\0' || thr < 1 || thr > o[2].count) {
        die_msg("--threshold \"%s\": expected a number from 1 to %zu (the number of root keys)",
                opt_value(&o[3]), o[2].count);
        return EXIT_USAGE;
    }
    err = plat_mkdir_p(opt_value(&o[0]), 0700);
    if (err != POSGATE_OK) {
        die_msg("cannot create %s: %s", opt_value(&o[0]), posgate_strerror(err));
        goto out;
    }
    err = abs_path(opt_value(&o[0]), s.dir, sizeof s.dir);
    if (err != POSGATE_OK) {
        goto out;
    }
    err = pathf(p, sizeof p, "%s/publish.json", s.dir);
    if (err != POSGATE_OK) {
        goto out;
    }
    if (plat_exists(p)) {
        die_msg("%s already holds a publisher state; refusing to overwrite it", s.dir);
        err = POSGATE_ERR_STATE;
        goto out;
    }
    err = load_config(opt_value(&o[1]), &cfg, &cfg_raw);
    if (err != POSGATE_OK) {
        goto out;
    }
    err = abs_path(opt_value(&o[5]), s.list_key, sizeof s.list_key);
    if (err == POSGATE_OK) {
        err = load_list_key(s.list_key, &hk);
    }
    if (err == POSGATE_OK) {
        err = add_key_check(opt_value(&o[1]), &hk, &cfg_raw, &cfg, &key_check_added);
    }
    if (err != POSGATE_OK) {
        goto out;
    }
    for (i = 0; i < o[2].count; i++) {
        err = read_public(o[2].values[i], s.root_keys[i], PATH_CAP, &root_pem[i]);
        if (err != POSGATE_OK) {
            goto out;
        }
        root_pems[i] = buf_cstr(&root_pem[i]);
    }
    s.nroot = o[2].count;
    err = read_public(opt_value(&o[4]), s.feed_key, sizeof s.feed_key, &feed_pem);
    if (err == POSGATE_OK) {
        err = create_repo(s.dir, root_pems, s.nroot, (unsigned)thr, buf_cstr(&feed_pem));
    }
    if (err != POSGATE_OK) {
        goto out;
    }
    err = pathf(p, sizeof p, "%s/feed.json", s.dir);
    if (err == POSGATE_OK) {
        err = plat_write_atomic(p, cfg_raw.data, cfg_raw.len, 0644);
    }
    if (err != POSGATE_OK) {
        die_msg("cannot write %s: %s", p, posgate_strerror(err));
        goto out;
    }
    s.config_sha256[0] = '\0';
    for (i = 0; i < cfg->n_lists; i++) {
        if (pub_add(&s, cfg->lists[i].id) == NULL) {
            err = POSGATE_ERR_NOMEM;
            goto out;
        }
    }
    err = pub_state_save(&s);
    if (err != POSGATE_OK) {
        goto out;
    }
    printf("initialised %s: %zu root key(s), threshold %lu; feed %s with %u list(s); list key "
           "fingerprint %s\n",
           s.dir, s.nroot, thr, cfg->feed_id, (unsigned)cfg->n_lists, cfg->list_key_check);
out:
    crypto_hmac_key_cleanup(&hk);
    feed_config_free(cfg);
    buf_free(&cfg_raw);
    for (i = 0; i < MAX_ROOT_KEYS; i++) {
        buf_free(&root_pem[i]);
    }
    buf_free(&feed_pem);
    pub_state_cleanup(&s);
    return exit_for(err);
}
