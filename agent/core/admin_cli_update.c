/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The posgate command line's feed sources and updates (posgate_admin.h): `posgate import` reads a
 * feed directory or a bundle file, `posgate sync` web mirrors, `posgate field-sync` the newest
 * bundle on a stick; each installs through update_run.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "bundle.h"
#include "carrier.h"
#include "datadir.h"
#include "fetch.h"
#include "plat_file.h"
#include "plat_mem.h"
#include "posgate_admin.h"
#include "update.h"

_Static_assert(POSGATE_CLI_MIRRORS_MAX == FETCH_MIRRORS_MAX, "posgate_admin.h: mirrors");
_Static_assert(POSGATE_CLI_FETCH_FAILS == FETCH_FAIL__COUNT, "posgate_admin.h: fetch failures");

struct posgate_cli_source {
    struct carrier *meta, *targets; /* a path: owned; mirrors: borrowed from f */
    struct fetch *f;                /* mirrors */
};

/* A feed directory's two carriers. */
static enum posgate_err
source_dir(const char *path, struct posgate_cli_source *s)
{
    char sub[4096];
    enum posgate_err err;

    err = plat_path_join(sub, sizeof(sub), path, "metadata");
    if (err == POSGATE_OK) {
        err = carrier_dir_new(sub, &s->meta);
    }
    if (err == POSGATE_OK) {
        err = plat_path_join(sub, sizeof(sub), path, "targets");
    }
    if (err == POSGATE_OK) {
        err = carrier_dir_new(sub, &s->targets);
    }
    return err;
}

enum posgate_err
posgate_cli_source_path(const char *path, struct posgate_cli_source **out, char *msg, size_t cap)
{
    struct posgate_cli_source *s;
    struct stat st;
    enum posgate_err err;

    *out = NULL;
    msg[0] = 0;
    s = plat_calloc(1, sizeof(*s));
    if (s == NULL) {
        return POSGATE_ERR_NOMEM;
    }
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
        err = source_dir(path, s);
    } else {
        err = carrier_bundle_new(path, "metadata/", &s->meta, msg, cap);
        if (err == POSGATE_OK) {
            err = carrier_bundle_new(path, "targets/", &s->targets, msg, cap);
        }
    }
    if (err != POSGATE_OK) {
        posgate_cli_source_free(s);
        return err;
    }
    *out = s;
    return POSGATE_OK;
}

enum posgate_err
posgate_cli_source_mirrors(const char *data_dir, const struct posgate_cli_mirrors *m,
                           struct posgate_cli_source **out, char *msg, size_t cap)
{
    struct fetch_options fo;
    struct datadir dd;
    struct posgate_cli_source *s;
    char spool[DATADIR_PATH_MAX + 16], cache[DATADIR_PATH_MAX + 16];
    enum posgate_err err;

    *out = NULL;
    msg[0] = 0;
    err = datadir_init(&dd, data_dir);
    if (err != POSGATE_OK) {
        snprintf(msg, cap, "bad data dir: %s", posgate_strerror(err));
        return err;
    }
    memset(&fo, 0, sizeof(fo));
    fo.mirrors = m->urls;
    fo.n_mirrors = m->n_urls;
    fo.ca_file = m->ca_file;
    fo.client_cert = m->client_cert;
    fo.client_key = m->client_key;
    fo.proxy = m->proxy;
    fo.max_recv_bytes_per_s = m->max_recv_bytes_per_s;
    fo.connect_timeout_s = m->connect_timeout_s;
    fo.timeout_s = m->timeout_s;
    fo.sync_timeout_s = m->sync_timeout_s;
    /* resume and cache files only in an initialised data dir (else update_run says "init") */
    if (plat_exists(dd.store) &&
        plat_path_join(spool, sizeof(spool), dd.incoming, "partial") == POSGATE_OK &&
        plat_path_join(cache, sizeof(cache), dd.root, "http-cache") == POSGATE_OK) {
        fo.spool_dir = spool;
        fo.cache_dir = cache;
    }
    s = plat_calloc(1, sizeof(*s));
    if (s == NULL) {
        return POSGATE_ERR_NOMEM;
    }
    err = fetch_new(&fo, &s->f, msg, cap);
    if (err != POSGATE_OK) {
        plat_free(s);
        return err;
    }
    s->meta = fetch_metadata_carrier(s->f);
    s->targets = fetch_targets_carrier(s->f);
    *out = s;
    return POSGATE_OK;
}

void
posgate_cli_source_free(struct posgate_cli_source *src)
{
    if (src == NULL) {
        return;
    }
    if (src->f != NULL) {
        fetch_free(src->f);
    } else {
        carrier_free(src->meta);
        carrier_free(src->targets);
    }
    plat_free(src);
}

enum posgate_err
posgate_cli_update(const char *data_dir, struct posgate_cli_source *src,
                   const struct posgate_cli_update_options *o,
                   struct posgate_cli_update_result *res, char *msg, size_t cap)
{
    struct update_options uo;
    struct update_result r;
    enum posgate_err err;

    memset(&uo, 0, sizeof(uo));
    memset(&r, 0, sizeof(r));
    memset(res, 0, sizeof(*res));
    uo.data_dir = data_dir;
    uo.metadata = src->meta;
    uo.targets = src->targets;
    uo.accept_expired = o->accept_expired;
    uo.progress = o->progress;
    uo.lock_wait_ms = o->lock_wait_ms;
    msg[0] = 0;
    err = update_run(&uo, &r, msg, cap);
    if (src->f != NULL && err == POSGATE_ERR_REJECTED) {
        fetch_note_rejected(src->f);
    } else if (src->f != NULL && err == POSGATE_OK) {
        fetch_prune_spool(src->f, NULL);
    }
    res->changed = r.changed;
    res->feed_version = r.feed_version;
    res->previous_version = r.previous_version;
    res->snapshots = r.snapshots;
    res->deltas = r.deltas;
    res->dropped = r.dropped;
    res->fallbacks = r.fallbacks;
    res->entries_changed = r.entries_changed;
    res->expired_accepted = r.expired_accepted;
    res->install_s = r.install_s;
    res->merged_rows = r.merged_rows;
    res->filter_keys = r.filter_keys;
    res->merge_s = r.merge_s;
    return err;
}

void
posgate_cli_source_stats(struct posgate_cli_source *src, struct posgate_cli_fetch_stats *out)
{
    struct fetch_stats fs;

    memset(&fs, 0, sizeof(fs));
    memset(out, 0, sizeof(*out));
    if (src != NULL && src->f != NULL) {
        fetch_stats_get(src->f, &fs);
        out->retry_after_s = fetch_retry_after_s(src->f);
    }
    out->attempts = fs.attempts;
    out->ok = fs.ok;
    out->not_modified = fs.not_modified;
    out->not_found = fs.not_found;
    out->resumed = fs.resumed;
    out->bytes = fs.bytes;
    for (int k = 0; k < FETCH_FAIL__COUNT; k++) {
        out->failures[k].name = fetch_fail_name((enum fetch_fail)k);
        out->failures[k].n = fs.failures[k];
    }
}
