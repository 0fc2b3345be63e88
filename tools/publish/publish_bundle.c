/* SPDX-License-Identifier: Apache-2.0 */
/*
 * `posgate-publish bundle`: one file (bundle.h) holding what a kiosk needs from a feed
 * directory, for a USB stick: every root version, the current metadata and every target they
 * list. Nothing is verified here; the kiosk verifies the bundle like a feed directory.
 */
#define _XOPEN_SOURCE 700
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "bundle.h"
#include "plat_file.h"
#include "plat_mem.h"
#include "publish_internal.h"
#include "tuf_meta.h"

static void
usage_bundle(FILE *f)
{
    fprintf(f, "usage: posgate-publish bundle --feed FEEDDIR --out FILE\n"
               "Writes one file for a USB stick holding what a kiosk needs from the feed: every\n"
               "root version (so an old kiosk can walk the chain), the current timestamp,\n"
               "snapshot, targets and delegated roles, and every target they list (the feed\n"
               "config, each list's current snapshot and its listed deltas). Nothing is verified\n"
               "here: the kiosk verifies the bundle exactly like a feed directory.\n"
               "Exit: 0 ok, 2 invalid input, 5 I/O.\n");
}

struct bundle_list {
    struct bundle_item *items;
    char **owned;
    size_t n, cap;
};

static enum posgate_err
bl_add(struct bundle_list *bl, const char *feed, const char *rel)
{
    char src[PATH_CAP];
    enum posgate_err err;
    size_t i;

    for (i = 0; i < bl->n; i++) {
        if (strcmp(bl->items[i].path, rel) == 0) {
            return POSGATE_OK;
        }
    }
    err = pathf(src, sizeof src, "%s/%s", feed, rel);
    if (err != POSGATE_OK) {
        return err;
    }
    if (!plat_exists(src)) {
        die_msg("the feed lacks %s (expected by its metadata)", src);
        return POSGATE_ERR_NOTFOUND;
    }
    if (bl->n + 1 > bl->cap) {
        size_t nc = bl->cap == 0 ? 64 : bl->cap * 2;
        struct bundle_item *ni = plat_realloc(bl->items, nc * sizeof *ni);
        char **no;

        if (ni == NULL) {
            return POSGATE_ERR_NOMEM;
        }
        bl->items = ni;
        no = plat_realloc(bl->owned, nc * 2 * sizeof *no);
        if (no == NULL) {
            return POSGATE_ERR_NOMEM;
        }
        bl->owned = no;
        bl->cap = nc;
    }
    bl->owned[2 * bl->n] = plat_strdup(rel);
    bl->owned[2 * bl->n + 1] = plat_strdup(src);
    if (bl->owned[2 * bl->n] == NULL || bl->owned[2 * bl->n + 1] == NULL) {
        plat_free(bl->owned[2 * bl->n]);
        plat_free(bl->owned[2 * bl->n + 1]);
        return POSGATE_ERR_NOMEM;
    }
    bl->items[bl->n].path = bl->owned[2 * bl->n];
    bl->items[bl->n].src_path = bl->owned[2 * bl->n + 1];
    bl->n++;
    return POSGATE_OK;
}

static void
bl_cleanup(struct bundle_list *bl)
{
    size_t i;

    for (i = 0; i < 2 * bl->n; i++) {
        plat_free(bl->owned[i]);
    }
    plat_free(bl->owned);
    plat_free(bl->items);
    memset(bl, 0, sizeof *bl);
}

static enum posgate_err
load_meta(const char *feed, const char *rel, enum tuf_role_type type, struct tuf_meta **m)
{
    char p[PATH_CAP], msg[TUF_ERRMSG_MAX];
    struct buf raw = BUF_INIT(TUF_META_MAX_LEN);
    enum posgate_err err = pathf(p, sizeof p, "%s/%s", feed, rel);

    if (err == POSGATE_OK) {
        err = plat_read_file(p, &raw);
        if (err != POSGATE_OK) {
            die_msg("cannot read %s: %s", p, posgate_strerror(err));
        }
    }
    if (err == POSGATE_OK) {
        err = tuf_meta_parse(raw.data, raw.len, type, m, msg, sizeof msg);
        if (err != POSGATE_OK) {
            die_msg("%s: %s", p, msg);
        }
    }
    buf_free(&raw);
    return err;
}

/* Adds the targets a targets role lists, under their consistent-snapshot names. */
static enum posgate_err
add_role_targets(struct bundle_list *bl, const char *feed, const struct tuf_meta *m)
{
    size_t i;
    enum posgate_err err = POSGATE_OK;

    for (i = 0; i < m->ntargets && err == POSGATE_OK; i++) {
        const struct tuf_target *t = &m->targets[i];
        const char *slash = strrchr(t->name, '/');
        char hex[CRYPTO_SHA256_LEN * 2 + 1], rel[PATH_CAP];

        if (!t->hashes.has_sha256) {
            die_msg("target %s lists no sha256", t->name);
            return POSGATE_ERR_UNSUPPORTED;
        }
        crypto_hex(t->hashes.sha256, CRYPTO_SHA256_LEN, hex);
        if (slash != NULL) {
            err = pathf(rel, sizeof rel, "targets/%.*s/%s.%s", (int)(slash - t->name), t->name, hex,
                        slash + 1);
        } else {
            err = pathf(rel, sizeof rel, "targets/%s.%s", hex, t->name);
        }
        if (err == POSGATE_OK) {
            err = bl_add(bl, feed, rel);
        }
    }
    return err;
}

int
publish_cmd_bundle(int argc, char **argv)
{
    struct opt o[] = {{"feed", 1, 0, {0}, 0}, {"out", 1, 0, {0}, 0}};
    struct bundle_list bl;
    struct tuf_meta *ts = NULL, *snap = NULL, *tm = NULL;
    const struct tuf_meta_file *mf;
    char rel[PATH_CAP], p[PATH_CAP], msg[BUNDLE_ERRMSG_MAX];
    const char *feed;
    int rc;
    size_t i;
    int64_t n;
    enum posgate_err err;

    memset(&bl, 0, sizeof bl);
    rc = opt_parse(argc, argv, o, 2, OPT_SAY_TWICE);
    if (rc < 0) {
        usage_bundle(stderr);
        return EXIT_USAGE;
    }
    if (rc > 0) {
        usage_bundle(stdout);
        return EXIT_OK;
    }
    if (opt_require(&o[0], "bundle") || opt_require(&o[1], "bundle")) {
        return EXIT_USAGE;
    }
    feed = opt_value(&o[0]);
    /* every root version, from 1 up to the first gap */
    for (n = 1;; n++) {
        err = pathf(rel, sizeof rel, "metadata/%" PRId64 ".root.json", n);
        if (err != POSGATE_OK) {
            goto out;
        }
        err = pathf(p, sizeof p, "%s/%s", feed, rel);
        if (err != POSGATE_OK) {
            goto out;
        }
        if (!plat_exists(p)) {
            break;
        }
        err = bl_add(&bl, feed, rel);
        if (err != POSGATE_OK) {
            goto out;
        }
    }
    if (n == 1) {
        die_msg("%s/metadata/1.root.json is missing: not a published feed directory", feed);
        err = POSGATE_ERR_NOTFOUND;
        goto out;
    }
    err = bl_add(&bl, feed, "metadata/timestamp.json");
    if (err == POSGATE_OK) {
        err = load_meta(feed, "metadata/timestamp.json", TUF_ROLE_TIMESTAMP, &ts);
    }
    if (err != POSGATE_OK) {
        goto out;
    }
    mf = tuf_meta_find_meta(ts, "snapshot.json");
    if (mf == NULL) {
        die_msg("timestamp.json names no snapshot.json");
        err = POSGATE_ERR_PARSE;
        goto out;
    }
    err = pathf(rel, sizeof rel, "metadata/%" PRId64 ".snapshot.json", mf->version);
    if (err == POSGATE_OK) {
        err = bl_add(&bl, feed, rel);
    }
    if (err == POSGATE_OK) {
        err = load_meta(feed, rel, TUF_ROLE_SNAPSHOT, &snap);
    }
    if (err != POSGATE_OK) {
        goto out;
    }
    for (i = 0; i < snap->nmeta; i++) {
        const struct tuf_meta_file *f = &snap->meta[i];

        err = pathf(rel, sizeof rel, "metadata/%" PRId64 ".%s", f->version, f->name);
        if (err == POSGATE_OK) {
            err = bl_add(&bl, feed, rel);
        }
        if (err == POSGATE_OK) {
            err = load_meta(feed, rel, TUF_ROLE_TARGETS, &tm);
        }
        if (err == POSGATE_OK) {
            err = add_role_targets(&bl, feed, tm);
        }
        tuf_meta_free(tm);
        tm = NULL;
        if (err != POSGATE_OK) {
            goto out;
        }
    }
    err = bundle_write(opt_value(&o[1]), bl.items, bl.n, msg, sizeof msg);
    if (err != POSGATE_OK) {
        die_msg("%s", msg);
        goto out;
    }
    printf("wrote %s: %zu files\n", opt_value(&o[1]), bl.n);
out:
    tuf_meta_free(ts);
    tuf_meta_free(snap);
    bl_cleanup(&bl);
    return exit_for(err);
}
