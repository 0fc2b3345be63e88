/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The TUF writer's publication (tuf_writer.h, tuf_writer_internal.h): the snapshot and timestamp
 * bodies, and tuf_writer_publish, which signs every changed role and writes the repository
 * (target files, root chain, targets roles, snapshot, timestamp last).
 */
#define _POSIX_C_SOURCE 200809L
#include "tuf_writer_internal.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "json_canon.h"
#include "plat_file.h"
#include "plat_mem.h"
#include "tuf_meta.h"

static enum posgate_err
meta_entry(const struct tuf_writer *w, const struct role *r, int with_hashes, cJSON **out)
{
    cJSON *m = cJSON_CreateObject(), *h;
    uint8_t d[CRYPTO_SHA256_LEN];
    char hex[2 * CRYPTO_SHA256_LEN + 1];
    enum posgate_err err;

    (void)w;
    *out = NULL;
    if (m == NULL) {
        return POSGATE_ERR_NOMEM;
    }
    err = tw_obj_set_int(m, "version", r->signed_version);
    if (err == POSGATE_OK && with_hashes) {
        crypto_sha256(r->signed_bytes.data, r->signed_bytes.len, d);
        crypto_hex(d, sizeof(d), hex);
        err = tw_obj_set_int(m, "length", (int64_t)r->signed_bytes.len);
        h = cJSON_CreateObject();
        if (err == POSGATE_OK) {
            err = tw_obj_set(m, "hashes", h);
        } else {
            cJSON_Delete(h);
        }
        if (err == POSGATE_OK) {
            err = tw_obj_set_str(h, "sha256", hex);
        }
    }
    if (err != POSGATE_OK) {
        cJSON_Delete(m);
        return err;
    }
    *out = m;
    return POSGATE_OK;
}

/* Builds a new snapshot body; *changed says whether its meta differs from the signed one. */
static enum posgate_err
build_snapshot(struct tuf_writer *w, cJSON **out, int *changed)
{
    struct role *s = tw_find_role(w, "snapshot");
    cJSON *body = tw_new_body("snapshot"), *meta = cJSON_CreateObject();
    struct buf a = BUF_INIT(META_MAX), b = BUF_INIT(META_MAX);
    enum posgate_err err = POSGATE_OK;

    *out = NULL;
    if (body == NULL || meta == NULL) {
        cJSON_Delete(meta);
        err = POSGATE_ERR_NOMEM;
        goto out;
    }
    err = tw_obj_set(body, "meta", meta);
    for (size_t i = 0; i < w->nroles && err == POSGATE_OK; i++) {
        struct role *r = &w->roles[i];
        char key[TUF_WRITER_ROLE_MAX + 8];
        cJSON *m;

        if (!tw_is_targets_type(r->name)) {
            continue;
        }
        snprintf(key, sizeof(key), "%s.json", r->name);
        err = meta_entry(w, r, w->snapshot_hashes, &m);
        if (err == POSGATE_OK) {
            err = tw_obj_set(meta, key, m);
        }
    }
    if (err != POSGATE_OK) {
        goto out;
    }
    *changed = 1;
    if (s->signed_env != NULL) {
        const cJSON *old = cJSON_GetObjectItemCaseSensitive(
            cJSON_GetObjectItemCaseSensitive(s->signed_env, "signed"), "meta");

        if (old != NULL && json_canon_encode(old, &a) == POSGATE_OK &&
            json_canon_encode(meta, &b) == POSGATE_OK && a.len == b.len &&
            memcmp(a.data, b.data, a.len) == 0) {
            *changed = 0;
        }
    }
    *out = body;
    body = NULL;
out:
    cJSON_Delete(body);
    buf_free(&a);
    buf_free(&b);
    return err;
}

static enum posgate_err
build_timestamp(struct tuf_writer *w, cJSON **out)
{
    struct role *s = tw_find_role(w, "snapshot");
    cJSON *body = tw_new_body("timestamp"), *meta = cJSON_CreateObject(), *m = NULL;
    enum posgate_err err;

    *out = NULL;
    if (body == NULL || meta == NULL) {
        cJSON_Delete(body);
        cJSON_Delete(meta);
        return POSGATE_ERR_NOMEM;
    }
    err = tw_obj_set(body, "meta", meta);
    if (err == POSGATE_OK) {
        err = meta_entry(w, s, 1, &m);
    }
    if (err == POSGATE_OK) {
        err = tw_obj_set(meta, "snapshot.json", m);
    }
    if (err != POSGATE_OK) {
        cJSON_Delete(body);
        return err;
    }
    *out = body;
    return POSGATE_OK;
}

/* ---- output ----------------------------------------------------------------------------- */

/* Writes bytes to path unless the file already holds exactly them. */
static enum posgate_err
write_if_differs(struct tuf_writer *w, const char *path, const struct buf *bytes)
{
    struct buf old = BUF_INIT(META_MAX);
    enum posgate_err err = plat_read_file(path, &old);
    int same = err == POSGATE_OK && old.len == bytes->len &&
               memcmp(old.data, bytes->data, bytes->len) == 0;

    buf_free(&old);
    if (same) {
        return POSGATE_OK;
    }
    err = plat_write_atomic(path, bytes->data, bytes->len, 0644);
    return err == POSGATE_OK ? err : tw_fail(w, err, "cannot write %s", path);
}

/* Copies the stored content of one target into the repository, streaming. */
static enum posgate_err
copy_target(struct tuf_writer *w, const char *out_dir, const char *name, const char *sha,
            uint64_t length)
{
    char cname[NAME_MAX_LEN + 80], src[PATH_CAP], dst[PATH_CAP], rel[PATH_CAP], dir[PATH_CAP];
    const char *base;
    struct plat_atomic_file af;
    uint8_t *chunk = NULL;
    uint64_t have = 0, total = 0;
    FILE *f = NULL;
    enum posgate_err err;

    af.fd = -1;
    af.tmp_path[0] = 0;
    err = tw_consistent_name(name, sha, cname, sizeof(cname));
    if (err == POSGATE_OK) {
        err = tw_state_path(w, src, sizeof(src), "targets/%s", cname);
    }
    if (err == POSGATE_OK && snprintf(rel, sizeof(rel), "targets/%s", cname) >= (int)sizeof(rel)) {
        err = POSGATE_ERR_TOOBIG;
    }
    if (err == POSGATE_OK) {
        err = plat_path_join(dst, sizeof(dst), out_dir, rel);
    }
    if (err != POSGATE_OK) {
        return tw_fail(w, err, "target %s: path too long", name);
    }
    if (plat_file_size(dst, &have) == POSGATE_OK && have == length) {
        return POSGATE_OK; /* the name carries the hash */
    }
    tw_split_name(dst, dir, sizeof(dir), &base);
    err = plat_mkdir_p(dir, 0755);
    if (err != POSGATE_OK) {
        return tw_fail(w, err, "cannot create %s", dir);
    }
    f = fopen(src, "rb");
    if (f == NULL) {
        return tw_fail(w, errno == ENOENT ? POSGATE_ERR_NOTFOUND : POSGATE_ERR_IO,
                       "target %s: expected its content in the state at %s, found none (%s)", name,
                       src, strerror(errno));
    }
    chunk = plat_malloc(COPY_CHUNK);
    err = chunk == NULL ? POSGATE_ERR_NOMEM : plat_atomic_open(&af, dst, 0644);
    while (err == POSGATE_OK) {
        size_t n = fread(chunk, 1, COPY_CHUNK, f);

        total += n;
        if (n > 0) {
            err = plat_atomic_write(&af, chunk, n);
        }
        if (n < COPY_CHUNK) {
            if (ferror(f)) {
                err = tw_fail(w, POSGATE_ERR_IO, "cannot read %s", src);
            }
            break;
        }
    }
    if (err == POSGATE_OK && total != length) {
        err = tw_fail(w, POSGATE_ERR_CORRUPT,
                      "target %s: expected %llu bytes of stored content, found %llu in %s", name,
                      (unsigned long long)length, (unsigned long long)total, src);
    }
    if (err == POSGATE_OK) {
        err = plat_atomic_commit(&af);
    }
    plat_atomic_abort(&af);
    plat_free(chunk);
    fclose(f);
    if (err != POSGATE_OK && w->errmsg[0] == 0) {
        err = tw_fail(w, err, "cannot copy target %s to %s: %s", name, dst, posgate_strerror(err));
    }
    return err;
}

static enum posgate_err
write_repository(struct tuf_writer *w, const char *out_dir)
{
    char mdir[PATH_CAP], path[PATH_CAP], rel[PATH_CAP];
    struct buf tmp = BUF_INIT(META_MAX);
    struct role *root = tw_find_role(w, "root"), *snap = tw_find_role(w, "snapshot");
    enum posgate_err err;

    err = plat_path_join(mdir, sizeof(mdir), out_dir, "metadata");
    if (err == POSGATE_OK) {
        err = plat_mkdir_p(mdir, 0755);
    }
    if (err != POSGATE_OK) {
        return tw_fail(w, err, "cannot create %s/metadata", out_dir);
    }
    /* 1. target files */
    for (size_t i = 0; i < w->nroles && err == POSGATE_OK; i++) {
        const cJSON *t;

        if (!tw_is_targets_type(w->roles[i].name) || tw_is_retired(w, &w->roles[i])) {
            continue;
        }
        cJSON_ArrayForEach(
            t, cJSON_GetObjectItemCaseSensitive(
                   cJSON_GetObjectItemCaseSensitive(w->roles[i].signed_env, "signed"), "targets"))
        {
            const cJSON *h = cJSON_GetObjectItemCaseSensitive(
                cJSON_GetObjectItemCaseSensitive(t, "hashes"), "sha256");
            int64_t len;

            if (err != POSGATE_OK) {
                break;
            }
            if (!cJSON_IsString(h) ||
                json_get_int(t, "length", 0, INT64_C(9007199254740992), &len) != POSGATE_OK) {
                err = tw_fail(w, POSGATE_ERR_CORRUPT, "role %s: target %s lacks length or sha256",
                              w->roles[i].name, t->string);
                break;
            }
            err = copy_target(w, out_dir, t->string, h->valuestring, (uint64_t)len);
        }
    }
    /* 2. the root chain, from the state's history */
    for (int64_t v = 1; v <= root->signed_version && err == POSGATE_OK; v++) {
        err = tw_state_path(w, path, sizeof(path), "roots/%lld.root.json", (long long)v);
        if (err != POSGATE_OK) {
            break;
        }
        err = plat_read_file(path, &tmp);
        if (err == POSGATE_ERR_NOTFOUND) {
            err = POSGATE_OK; /* a version skipped by tuf_writer_set_version */
            continue;
        }
        if (err == POSGATE_OK) {
            snprintf(rel, sizeof(rel), "%lld.root.json", (long long)v);
            err = plat_path_join(path, sizeof(path), mdir, rel);
        }
        if (err == POSGATE_OK) {
            err = write_if_differs(w, path, &tmp);
        }
    }
    if (err == POSGATE_OK) {
        err = plat_path_join(path, sizeof(path), mdir, "root.json");
    }
    if (err == POSGATE_OK) {
        err = write_if_differs(w, path, &root->signed_bytes);
    }
    /* 3. targets roles, 4. snapshot, 5. timestamp last */
    for (size_t i = 0; i < w->nroles && err == POSGATE_OK; i++) {
        struct role *r = &w->roles[i];

        if (!tw_is_targets_type(r->name)) {
            continue;
        }
        snprintf(rel, sizeof(rel), "%lld.%s.json", (long long)r->signed_version, r->name);
        err = plat_path_join(path, sizeof(path), mdir, rel);
        if (err == POSGATE_OK) {
            err = write_if_differs(w, path, &r->signed_bytes);
        }
    }
    if (err == POSGATE_OK) {
        snprintf(rel, sizeof(rel), "%lld.snapshot.json", (long long)snap->signed_version);
        err = plat_path_join(path, sizeof(path), mdir, rel);
    }
    if (err == POSGATE_OK) {
        err = write_if_differs(w, path, &snap->signed_bytes);
    }
    if (err == POSGATE_OK) {
        err = plat_path_join(path, sizeof(path), mdir, "timestamp.json");
    }
    if (err == POSGATE_OK) {
        err = write_if_differs(w, path, &tw_find_role(w, "timestamp")->signed_bytes);
    }
    buf_free(&tmp);
    if (err != POSGATE_OK && w->errmsg[0] == 0) {
        err = tw_fail(w, err, "cannot write the repository in %s: %s", out_dir,
                      posgate_strerror(err));
    }
    return err;
}

/* ROLLBACK when out_dir already serves a timestamp of a higher version than the one about to
 * be written: a run from an older copy of the state (or one that raced another run) would roll
 * every kiosk that fetched the newer one back. A damaged or missing file does not count. */
static enum posgate_err
check_not_behind(struct tuf_writer *w, const char *out_dir, int64_t next)
{
    char path[4096], msg[128];
    struct buf raw = BUF_INIT(META_MAX);
    struct tuf_meta *m = NULL;
    enum posgate_err err = POSGATE_OK;

    if (snprintf(path, sizeof(path), "%s/metadata/timestamp.json", out_dir) >= (int)sizeof(path) ||
        plat_read_file(path, &raw) != POSGATE_OK ||
        tuf_meta_parse(raw.data, raw.len, TUF_ROLE_TIMESTAMP, &m, msg, sizeof(msg)) != POSGATE_OK) {
        goto out;
    }
    if (m->version > next) {
        err = tw_fail(w, POSGATE_ERR_ROLLBACK,
                      "timestamp version %lld would go back from version %lld already in %s: "
                      "refused (the state is older than the feed it wrote)",
                      (long long)next, (long long)m->version, path);
    }
out:
    tuf_meta_free(m);
    buf_free(&raw);
    return err;
}

/* ---- publish ---------------------------------------------------------------------------- */

enum posgate_err
tuf_writer_publish(struct tuf_writer *w, const char *out_dir, struct crypto_privkey *const *keyring,
                   size_t count)
{
    struct keyring kr = {NULL, 0, NULL};
    struct role *snap, *ts;
    cJSON *body = NULL;
    int changed = 0, explicit_ts = 0;
    enum posgate_err err = tw_usable(w, NULL, NULL);

    if (err != POSGATE_OK) {
        return err;
    }
    if (out_dir == NULL || out_dir[0] == 0) {
        return tw_fail(w, POSGATE_ERR_INVALID, "expected an output directory, found none");
    }
    err = tw_keyring_init(w, &kr, keyring, count);
    if (err != POSGATE_OK) {
        goto out;
    }
    /* Check every signing first, so that a missing key changes nothing. */
    for (size_t i = 0; i < w->nroles && err == POSGATE_OK; i++) {
        struct role *r = &w->roles[i];

        if (r->dirty && (tw_is_targets_type(r->name) || strcmp(r->name, "root") == 0)) {
            err = tw_sign_one(w, r, &kr, 1);
        }
    }
    for (size_t i = 0; i < 2 && err == POSGATE_OK; i++) {
        struct role *r = tw_find_role(w, tw_top_roles[i + 1]);

        if (!r->has_signers) {
            /* timestamp and snapshot keys come from the working root */
            cJSON *saved = r->work;
            cJSON *probe = tw_new_body(r->name);

            r->work = probe;
            err = probe == NULL ? POSGATE_ERR_NOMEM : tw_sign_one(w, r, &kr, 1);
            r->work = saved;
            cJSON_Delete(probe);
        }
    }
    if (err != POSGATE_OK) {
        goto out;
    }
    /* Root first: the other roles are signed under the keys it names. */
    if (tw_find_role(w, "root")->dirty) {
        err = tw_sign_one(w, tw_find_role(w, "root"), &kr, 0);
    }
    for (size_t i = 0; i < w->nroles && err == POSGATE_OK; i++) {
        struct role *r = &w->roles[i];

        if (r->dirty && tw_is_targets_type(r->name)) {
            err = tw_sign_one(w, r, &kr, 0);
        }
    }
    snap = tw_find_role(w, "snapshot");
    if (err == POSGATE_OK) {
        err = build_snapshot(w, &body, &changed);
    }
    if (err == POSGATE_OK && (changed || snap->dirty || snap->signed_env == NULL)) {
        cJSON_Delete(snap->work);
        snap->work = body;
        body = NULL;
        err = tw_sign_one(w, snap, &kr, 0);
    }
    ts = tw_find_role(w, "timestamp");
    explicit_ts = ts->next_version > 0;
    if (err == POSGATE_OK) {
        cJSON_Delete(body);
        body = NULL;
        err = build_timestamp(w, &body);
    }
    if (err == POSGATE_OK) {
        cJSON_Delete(ts->work);
        ts->work = body;
        body = NULL;
        err = tw_sign_one(w, ts, &kr, 0);
    }
    if (err != POSGATE_OK) {
        w->failed = 1; /* some roles are signed in memory only */
        goto out;
    }
    /* a version the operator set on purpose (tuf_writer_set_version: the recovery from a
     * fast-forward attack goes back after rotating the timestamp key) is not checked */
    err = explicit_ts ? POSGATE_OK : check_not_behind(w, out_dir, ts->signed_version);
    if (err != POSGATE_OK) {
        w->failed = 1;
        goto out;
    }
    err = tw_save_state(w);
    if (err == POSGATE_OK) {
        err = write_repository(w, out_dir);
    }
out:
    cJSON_Delete(body);
    plat_free(kr.ids);
    return err;
}
