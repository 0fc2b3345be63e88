/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The TUF writer's targets roles (tuf_writer.h, tuf_writer_internal.h): delegations to other
 * keys and their withdrawal, and targets: content streamed through the hash into the state
 * directory (never held whole in memory), listed with length, sha256 and custom metadata.
 */
#define _POSIX_C_SOURCE 200809L
#include "tuf_writer_internal.h"

#include <errno.h>
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json_canon.h"
#include "plat_file.h"
#include "plat_mem.h"

/* A target name: 1 to NAME_MAX_LEN bytes of '/'-separated segments, none empty, "." or "..",
 * no control byte (C0, DEL) and no backslash. */
static int
valid_target_name(const char *name)
{
    size_t n = strlen(name);
    const char *seg = name;

    if (n == 0 || n > NAME_MAX_LEN || name[0] == '/' || name[n - 1] == '/') {
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        if ((unsigned char)name[i] < 0x20 || name[i] == 0x7f || name[i] == '\\') {
            return 0;
        }
    }
    while (seg != NULL) {
        const char *slash = strchr(seg, '/');
        size_t len = slash != NULL ? (size_t)(slash - seg) : strlen(seg);

        if (len == 0 || (len == 1 && seg[0] == '.') ||
            (len == 2 && seg[0] == '.' && seg[1] == '.')) {
            return 0;
        }
        seg = slash != NULL ? slash + 1 : NULL;
    }
    return 1;
}

/* Splits a target name into directory ("" when none) and base name. */
void
tw_split_name(const char *name, char *dir, size_t dcap, const char **base)
{
    const char *slash = strrchr(name, '/');

    if (slash == NULL) {
        dir[0] = 0;
        *base = name;
        return;
    }
    snprintf(dir, dcap, "%.*s", (int)(slash - name), name);
    *base = slash + 1;
}

/* "<dir>/<sha>.<base>" or "<sha>.<base>": the consistent name of a target. */
enum posgate_err
tw_consistent_name(const char *name, const char *sha_hex, char *out, size_t cap)
{
    char dir[NAME_MAX_LEN + 1];
    const char *base;
    int n;

    tw_split_name(name, dir, sizeof(dir), &base);
    if (dir[0] != 0) {
        n = snprintf(out, cap, "%s/%s.%s", dir, sha_hex, base);
    } else {
        n = snprintf(out, cap, "%s.%s", sha_hex, base);
    }
    return (n < 0 || (size_t)n >= cap) ? POSGATE_ERR_TOOBIG : POSGATE_OK;
}

static enum posgate_err
queue_unlink(struct tuf_writer *w, const char *path)
{
    char **n = plat_realloc(w->unlinks, (w->nunlinks + 1) * sizeof(*n));
    char *p;

    if (n == NULL) {
        return POSGATE_ERR_NOMEM;
    }
    w->unlinks = n;
    p = plat_strdup(path);
    if (p == NULL) {
        return POSGATE_ERR_NOMEM;
    }
    w->unlinks[w->nunlinks++] = p;
    return POSGATE_OK;
}

/* ---- delegations ------------------------------------------------------------------------ */

/* The delegation entry for name in any targets-type role's working copy, and its delegator. */
cJSON *
tw_find_delegation(const struct tuf_writer *w, const char *name, struct role **delegator)
{
    for (size_t i = 0; i < w->nroles; i++) {
        struct role *r = &w->roles[i];
        cJSON *roles, *d;

        if (!tw_is_targets_type(r->name) || r->work == NULL) {
            continue;
        }
        roles = cJSON_GetObjectItemCaseSensitive(
            cJSON_GetObjectItemCaseSensitive(r->work, "delegations"), "roles");
        cJSON_ArrayForEach(d, roles)
        {
            const cJSON *n = cJSON_GetObjectItemCaseSensitive(d, "name");

            if (cJSON_IsString(n) && strcmp(n->valuestring, name) == 0) {
                if (delegator != NULL) {
                    *delegator = r;
                }
                return d;
            }
        }
    }
    return NULL;
}

enum posgate_err
tuf_writer_delegate(struct tuf_writer *w, const struct tuf_writer_delegation *d)
{
    struct role *parent, *child, *other = NULL;
    cJSON *work = NULL, *dele, *kobj, *roles, *entry = NULL, *ids = NULL, *paths = NULL, *old;
    char what[128];
    enum posgate_err err;

    if (w == NULL || d == NULL || d->name == NULL || d->delegator == NULL) {
        return POSGATE_ERR_INVALID;
    }
    err = tw_usable(w, d->delegator, &parent);
    if (err != POSGATE_OK) {
        return err;
    }
    if (!tw_is_targets_type(parent->name)) {
        return tw_fail(w, POSGATE_ERR_INVALID,
                       "expected \"targets\" or a delegated role as delegator, found \"%s\"",
                       parent->name);
    }
    if (!tw_valid_role_name(d->name)) {
        return tw_fail(w, POSGATE_ERR_INVALID,
                       "expected a delegated role name of 1 to %d characters [A-Za-z0-9._-], not a "
                       "top-level name, found \"%.80s\"",
                       TUF_WRITER_ROLE_MAX, d->name);
    }
    if (tw_find_delegation(w, d->name, &other) != NULL && other != parent) {
        return tw_fail(w, POSGATE_ERR_INVALID, "role %s is already delegated by %s, not by %s",
                       d->name, other->name, parent->name);
    }
    if (d->path_count == 0 || d->paths == NULL) {
        return tw_fail(w, POSGATE_ERR_INVALID,
                       "delegation %s: expected at least one path pattern, found none", d->name);
    }
    work = cJSON_Duplicate(parent->work, 1);
    paths = cJSON_CreateArray();
    entry = cJSON_CreateObject();
    if (work == NULL || paths == NULL || entry == NULL) {
        err = POSGATE_ERR_NOMEM;
        goto out;
    }
    for (size_t i = 0; i < d->path_count; i++) {
        if (d->paths[i] == NULL || d->paths[i][0] == 0 || strlen(d->paths[i]) > NAME_MAX_LEN) {
            err = tw_fail(w, POSGATE_ERR_INVALID,
                          "delegation %s: path pattern %zu is empty, NULL or too long", d->name,
                          i + 1);
            goto out;
        }
        err = tw_arr_add(paths, cJSON_CreateString(d->paths[i]));
        if (err != POSGATE_OK) {
            goto out;
        }
    }
    dele = cJSON_GetObjectItemCaseSensitive(work, "delegations");
    if (dele == NULL) {
        dele = cJSON_CreateObject();
        err = tw_obj_set(work, "delegations", dele);
        if (err == POSGATE_OK) {
            err = tw_obj_set(dele, "keys", cJSON_CreateObject());
        }
        if (err == POSGATE_OK) {
            err = tw_obj_set(dele, "roles", cJSON_CreateArray());
        }
        if (err != POSGATE_OK) {
            goto out;
        }
    }
    kobj = cJSON_GetObjectItemCaseSensitive(dele, "keys");
    roles = cJSON_GetObjectItemCaseSensitive(dele, "roles");
    if (!cJSON_IsObject(kobj) || !cJSON_IsArray(roles)) {
        err = tw_fail(w, POSGATE_ERR_CORRUPT, "role %s: malformed delegations", parent->name);
        goto out;
    }
    snprintf(what, sizeof(what), "delegation %s", d->name);
    err = tw_build_keyset(w, what, &d->keys, kobj, &ids);
    if (err == POSGATE_OK) {
        err = tw_obj_set_str(entry, "name", d->name);
    }
    if (err == POSGATE_OK) {
        err = tw_obj_set(entry, "keyids", ids);
        ids = NULL;
    }
    if (err == POSGATE_OK) {
        err = tw_obj_set_int(entry, "threshold", (int64_t)d->keys.threshold);
    }
    if (err == POSGATE_OK) {
        err = tw_obj_set(entry, "terminating", cJSON_CreateBool(d->terminating != 0));
    }
    if (err == POSGATE_OK) {
        err = tw_obj_set(entry, "paths", paths);
        paths = NULL;
    }
    if (err != POSGATE_OK) {
        goto out;
    }
    old = NULL;
    {
        cJSON *c;

        cJSON_ArrayForEach(c, roles)
        {
            const cJSON *n = cJSON_GetObjectItemCaseSensitive(c, "name");

            if (cJSON_IsString(n) && strcmp(n->valuestring, d->name) == 0) {
                old = c;
            }
        }
    }
    if (old != NULL) {
        if (!cJSON_ReplaceItemViaPointer(roles, old, entry)) {
            err = POSGATE_ERR_NOMEM;
            goto out;
        }
    } else if (!cJSON_AddItemToArray(roles, entry)) {
        err = POSGATE_ERR_NOMEM;
        goto out;
    }
    entry = NULL;
    tw_prune_keys(kobj, roles);
    child = tw_find_role(w, d->name);
    if (child == NULL) {
        char pname[TUF_WRITER_ROLE_MAX + 1];

        snprintf(pname, sizeof(pname), "%s", parent->name);
        err = tw_add_role(w, d->name, &child);
        parent = tw_find_role(w, pname); /* tw_add_role may move the role array */
        if (err != POSGATE_OK) {
            goto out;
        }
        child->work = tw_new_targets_body();
        if (child->work == NULL) {
            w->nroles--;
            tw_role_cleanup(child);
            err = POSGATE_ERR_NOMEM;
            goto out;
        }
    }
    child->dirty = 1; /* new keys or paths: signed again by the delegate */
    cJSON_Delete(parent->work);
    parent->work = work;
    work = NULL;
    parent->dirty = 1;
out:
    cJSON_Delete(work);
    cJSON_Delete(entry);
    cJSON_Delete(ids);
    cJSON_Delete(paths);
    return err;
}

/* Queues removal of a target's stored content when no working role lists it any more. */
static enum posgate_err
release_content(struct tuf_writer *w, const char *name, const char *sha_hex)
{
    char cname[NAME_MAX_LEN + 80], path[PATH_CAP];
    enum posgate_err err;

    for (size_t i = 0; i < w->nroles; i++) {
        const cJSON *t;

        if (!tw_is_targets_type(w->roles[i].name) || w->roles[i].work == NULL) {
            continue;
        }
        cJSON_ArrayForEach(t, cJSON_GetObjectItemCaseSensitive(w->roles[i].work, "targets"))
        {
            const cJSON *h = cJSON_GetObjectItemCaseSensitive(
                cJSON_GetObjectItemCaseSensitive(t, "hashes"), "sha256");

            if (strcmp(t->string, name) == 0 && cJSON_IsString(h) &&
                strcmp(h->valuestring, sha_hex) == 0) {
                return POSGATE_OK; /* still listed */
            }
        }
    }
    err = tw_consistent_name(name, sha_hex, cname, sizeof(cname));
    if (err == POSGATE_OK) {
        err = tw_state_path(w, path, sizeof(path), "targets/%s", cname);
    }
    if (err == POSGATE_OK) {
        err = queue_unlink(w, path);
    }
    return err;
}

/*
 * The TUF client refuses a snapshot that stops listing a role an earlier snapshot listed (a
 * rollback), so a withdrawn role that was ever signed stays in the snapshot at its last version
 * ("retired": no delegation points at it, so no client reads it, and it is never signed again).
 * A role never signed is simply dropped.
 */
enum posgate_err
tuf_writer_undelegate(struct tuf_writer *w, const char *delegator, const char *name)
{
    struct role *parent, *child, *owner = NULL;
    cJSON *entry, *roles, *targets = NULL, *empty = NULL;
    const cJSON *t;
    size_t idx;
    enum posgate_err err;

    err = tw_usable(w, delegator, &parent);
    if (err != POSGATE_OK) {
        return err;
    }
    if (name == NULL) {
        return POSGATE_ERR_INVALID;
    }
    entry = tw_find_delegation(w, name, &owner);
    child = tw_find_role(w, name);
    if (entry == NULL || owner != parent || child == NULL) {
        return tw_fail(w, POSGATE_ERR_NOTFOUND,
                       "expected %s to delegate to %s, found no such "
                       "delegation",
                       parent->name, name);
    }
    if (cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(
            cJSON_GetObjectItemCaseSensitive(child->work, "delegations"), "roles")) > 0) {
        return tw_fail(w, POSGATE_ERR_STATE,
                       "role %s delegates further; remove its own delegations first", name);
    }
    if (child->signed_env != NULL) {
        empty = cJSON_CreateObject();
        if (empty == NULL) {
            return POSGATE_ERR_NOMEM;
        }
    }
    roles = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(parent->work, "delegations"), "roles");
    cJSON_Delete(cJSON_DetachItemViaPointer(roles, entry));
    tw_prune_keys(cJSON_GetObjectItemCaseSensitive(
                      cJSON_GetObjectItemCaseSensitive(parent->work, "delegations"), "keys"),
                  roles);
    parent->dirty = 1;
    targets = cJSON_DetachItemFromObjectCaseSensitive(child->work, "targets");
    if (empty != NULL) {
        /* retired: the working copy lists nothing, so its content can go */
        (void)cJSON_AddItemToObject(child->work, "targets", empty);
        child->dirty = 0;
        child->next_version = 0;
        child->has_next_expires = 0;
        child->has_signers = 0;
    } else {
        tw_role_cleanup(child);
        idx = (size_t)(child - w->roles);
        memmove(&w->roles[idx], &w->roles[idx + 1], (w->nroles - idx - 1) * sizeof(*w->roles));
        w->nroles--;
    }
    cJSON_ArrayForEach(t, targets)
    {
        const cJSON *h = cJSON_GetObjectItemCaseSensitive(
            cJSON_GetObjectItemCaseSensitive(t, "hashes"), "sha256");

        if (err == POSGATE_OK && cJSON_IsString(h)) {
            err = release_content(w, t->string, h->valuestring);
        }
    }
    cJSON_Delete(targets);
    if (err != POSGATE_OK) {
        w->failed = 1;
    }
    return err;
}

/* A delegated role that no delegation points at any more (see tuf_writer_undelegate). */
int
tw_is_retired(const struct tuf_writer *w, const struct role *r)
{
    return !tw_is_top(r->name) && tw_find_delegation(w, r->name, NULL) == NULL;
}

/* ---- targets ---------------------------------------------------------------------------- */

/* python-tuf's rule: as many '/'-separated segments as the pattern, each fnmatch'ed. */
static int
path_matches(const char *pattern, const char *name)
{
    char p[NAME_MAX_LEN + 1], n[NAME_MAX_LEN + 1];
    char *ps, *ns, *pe, *ne;

    if (strlen(pattern) > NAME_MAX_LEN || strlen(name) > NAME_MAX_LEN) {
        return 0;
    }
    snprintf(p, sizeof(p), "%s", pattern);
    snprintf(n, sizeof(n), "%s", name);
    ps = p;
    ns = n;
    for (;;) {
        pe = strchr(ps, '/');
        ne = strchr(ns, '/');
        if ((pe == NULL) != (ne == NULL)) {
            return 0;
        }
        if (pe != NULL) {
            *pe = 0;
            *ne = 0;
        }
        if (fnmatch(ps, ns, 0) != 0) {
            return 0;
        }
        if (pe == NULL) {
            return 1;
        }
        ps = pe + 1;
        ns = ne + 1;
    }
}

static enum posgate_err
targets_role(struct tuf_writer *w, const char *role, struct role **out)
{
    enum posgate_err err = tw_usable(w, role, out);

    if (err != POSGATE_OK) {
        return err;
    }
    if (!tw_is_targets_type(role)) {
        return tw_fail(w, POSGATE_ERR_INVALID,
                       "expected \"targets\" or a delegated role, found the %s role", role);
    }
    return POSGATE_OK;
}

/* Streams src into the state's content store; fills length and sha256 hex. */
static enum posgate_err
store_content(struct tuf_writer *w, const char *name, const char *src, uint64_t *length,
              char *sha_hex)
{
    struct plat_atomic_file af;
    struct crypto_hash_stream *hs = NULL;
    char dir[NAME_MAX_LEN + 1], path[PATH_CAP], cname[NAME_MAX_LEN + 80];
    const char *base;
    uint8_t *chunk = NULL, h256[CRYPTO_SHA256_LEN], h512[CRYPTO_SHA512_LEN];
    FILE *f = NULL;
    uint64_t total = 0;
    enum posgate_err err;

    af.fd = -1;
    af.tmp_path[0] = 0;
    tw_split_name(name, dir, sizeof(dir), &base);
    err = tw_state_path(w, path, sizeof(path), "targets/%s", dir);
    if (err == POSGATE_OK) {
        err = plat_mkdir_p(path, 0700);
    }
    if (err != POSGATE_OK) {
        return tw_fail(w, err, "cannot create %s", path);
    }
    f = fopen(src, "rb");
    if (f == NULL) {
        return tw_fail(w, errno == ENOENT ? POSGATE_ERR_NOTFOUND : POSGATE_ERR_IO,
                       "cannot open target file %s: %s", src, strerror(errno));
    }
    chunk = plat_malloc(COPY_CHUNK);
    err = chunk == NULL ? POSGATE_ERR_NOMEM : crypto_hash_stream_new(&hs);
    if (err == POSGATE_OK) {
        err = tw_state_path(w, path, sizeof(path), "targets/%s%s.incoming", dir,
                            dir[0] != 0 ? "/" : "");
    }
    if (err == POSGATE_OK) {
        err = plat_atomic_open(&af, path, 0644);
    }
    while (err == POSGATE_OK) {
        size_t n = fread(chunk, 1, COPY_CHUNK, f);

        if (n > 0) {
            crypto_hash_stream_update(hs, chunk, n);
            total += n;
            err = plat_atomic_write(&af, chunk, n);
        }
        if (n < COPY_CHUNK) {
            if (ferror(f)) {
                err = tw_fail(w, POSGATE_ERR_IO, "cannot read target file %s", src);
            }
            break;
        }
    }
    if (err != POSGATE_OK) {
        goto out;
    }
    crypto_hash_stream_finish(hs, h256, h512);
    crypto_hex(h256, sizeof(h256), sha_hex);
    err = tw_consistent_name(name, sha_hex, cname, sizeof(cname));
    if (err == POSGATE_OK) {
        err = tw_state_path(w, path, sizeof(path), "targets/%s", cname);
    }
    if (err == POSGATE_OK && strlen(path) >= sizeof(af.final_path)) {
        err = POSGATE_ERR_TOOBIG;
    }
    if (err != POSGATE_OK) {
        goto out;
    }
    /* The name is known only now: commit the temporary file under its content's name. */
    snprintf(af.final_path, sizeof(af.final_path), "%s", path);
    err = plat_atomic_commit(&af);
    if (err != POSGATE_OK) {
        err = tw_fail(w, err, "cannot store target content as %s", path);
    }
    *length = total;
out:
    if (err != POSGATE_OK && w->errmsg[0] == 0) {
        err =
            tw_fail(w, err, "cannot store target %s from %s: %s", name, src, posgate_strerror(err));
    }
    plat_atomic_abort(&af);
    crypto_hash_stream_free(hs);
    plat_free(chunk);
    fclose(f);
    return err;
}

enum posgate_err
tuf_writer_add_target(struct tuf_writer *w, const char *role, const char *name,
                      const char *src_path, const char *custom_json)
{
    struct role *r;
    cJSON *custom = NULL, *entry = NULL, *hashes, *targets, *old;
    char sha[2 * CRYPTO_SHA256_LEN + 1], old_sha[2 * CRYPTO_SHA256_LEN + 1], emsg[200];
    uint64_t length = 0;
    enum posgate_err err = targets_role(w, role, &r);

    if (err != POSGATE_OK) {
        return err;
    }
    if (name == NULL || src_path == NULL || !valid_target_name(name)) {
        return tw_fail(
            w, POSGATE_ERR_INVALID,
            "expected a target name of '/'-separated segments (no empty, \".\" or \"..\" "
            "segment, no control character, at most %d bytes), found \"%.100s\"",
            NAME_MAX_LEN, name != NULL ? name : "(null)");
    }
    if (strcmp(role, "targets") != 0) {
        const cJSON *d = tw_find_delegation(w, role, NULL), *p;
        int ok = 0;

        cJSON_ArrayForEach(p, cJSON_GetObjectItemCaseSensitive(d, "paths"))
        {
            if (cJSON_IsString(p) && path_matches(p->valuestring, name)) {
                ok = 1;
            }
        }
        if (!ok) {
            return tw_fail(w, POSGATE_ERR_INVALID,
                           "target %s is outside the paths delegated to role %s", name, role);
        }
    }
    if (custom_json != NULL) {
        err = json_parse_bounded(custom_json, strlen(custom_json), TUF_WRITER_CUSTOM_MAX, &custom,
                                 emsg, sizeof(emsg));
        if (err != POSGATE_OK) {
            return tw_fail(w, POSGATE_ERR_INVALID, "custom of target %s: %s", name, emsg);
        }
        if (!cJSON_IsObject(custom)) {
            cJSON_Delete(custom);
            return tw_fail(w, POSGATE_ERR_INVALID,
                           "custom of target %s: expected a JSON object, found another value",
                           name);
        }
        {
            struct buf canon = BUF_INIT(TUF_WRITER_CUSTOM_MAX * 2);

            err = json_canon_encode(custom, &canon);
            buf_free(&canon);
        }
        if (err != POSGATE_OK) {
            cJSON_Delete(custom);
            return tw_fail(w, POSGATE_ERR_INVALID,
                           "custom of target %s: expected canonical JSON (integers only, at most "
                           "2^53), found a value that cannot be signed",
                           name);
        }
    }
    err = store_content(w, name, src_path, &length, sha);
    if (err != POSGATE_OK) {
        goto out;
    }
    entry = cJSON_CreateObject();
    hashes = cJSON_CreateObject();
    if (entry == NULL || hashes == NULL) {
        cJSON_Delete(hashes);
        err = POSGATE_ERR_NOMEM;
        goto out;
    }
    if (custom != NULL) {
        err = tw_obj_set(entry, "custom", custom);
        custom = NULL;
    }
    if (err == POSGATE_OK) {
        err = tw_obj_set(entry, "hashes", hashes);
    } else {
        cJSON_Delete(hashes);
    }
    if (err == POSGATE_OK) {
        err = tw_obj_set_str(hashes, "sha256", sha);
    }
    if (err == POSGATE_OK) {
        err = tw_obj_set_int(entry, "length", (int64_t)length);
    }
    if (err != POSGATE_OK) {
        goto out;
    }
    targets = cJSON_GetObjectItemCaseSensitive(r->work, "targets");
    if (!cJSON_IsObject(targets)) {
        err = tw_fail(w, POSGATE_ERR_CORRUPT, "role %s: working copy lacks targets", role);
        goto out;
    }
    old = cJSON_GetObjectItemCaseSensitive(targets, name);
    old_sha[0] = 0;
    if (old != NULL) {
        const cJSON *h = cJSON_GetObjectItemCaseSensitive(
            cJSON_GetObjectItemCaseSensitive(old, "hashes"), "sha256");

        if (cJSON_IsString(h) && strlen(h->valuestring) < sizeof(old_sha)) {
            snprintf(old_sha, sizeof(old_sha), "%s", h->valuestring);
        }
    }
    err = tw_obj_set(targets, name, entry);
    entry = NULL;
    if (err != POSGATE_OK) {
        goto out;
    }
    r->dirty = 1;
    if (old_sha[0] != 0 && strcmp(old_sha, sha) != 0) {
        err = release_content(w, name, old_sha);
    }
out:
    cJSON_Delete(custom);
    cJSON_Delete(entry);
    return err;
}

enum posgate_err
tuf_writer_remove_target(struct tuf_writer *w, const char *role, const char *name)
{
    struct role *r;
    cJSON *t;
    char sha[2 * CRYPTO_SHA256_LEN + 1];
    enum posgate_err err = targets_role(w, role, &r);

    if (err != POSGATE_OK) {
        return err;
    }
    if (name == NULL) {
        return POSGATE_ERR_INVALID;
    }
    t = cJSON_DetachItemFromObjectCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(r->work, "targets"), name);
    if (t == NULL) {
        return tw_fail(w, POSGATE_ERR_NOTFOUND, "role %s does not list target %s", role, name);
    }
    r->dirty = 1;
    {
        const cJSON *h = cJSON_GetObjectItemCaseSensitive(
            cJSON_GetObjectItemCaseSensitive(t, "hashes"), "sha256");

        sha[0] = 0;
        if (cJSON_IsString(h) && strlen(h->valuestring) < sizeof(sha)) {
            snprintf(sha, sizeof(sha), "%s", h->valuestring);
        }
    }
    cJSON_Delete(t);
    if (sha[0] != 0) {
        err = release_content(w, name, sha);
    }
    return err;
}

static int
cmp_items(const void *a, const void *b)
{
    const cJSON *x = *(const cJSON *const *)a, *y = *(const cJSON *const *)b;

    return strcmp(x->string, y->string);
}

enum posgate_err
tuf_writer_foreach_target(struct tuf_writer *w, const char *role,
                          enum posgate_err (*fn)(void *ctx, const struct tuf_writer_target *t),
                          void *ctx)
{
    struct role *r;
    const cJSON *targets, *t, **items = NULL;
    struct buf custom = BUF_INIT(TUF_WRITER_CUSTOM_MAX * 2);
    char cname[NAME_MAX_LEN + 80], path[PATH_CAP];
    size_t n = 0, i = 0;
    enum posgate_err err = targets_role(w, role, &r);

    if (err != POSGATE_OK) {
        return err;
    }
    if (fn == NULL) {
        return POSGATE_ERR_INVALID;
    }
    targets = cJSON_GetObjectItemCaseSensitive(r->work, "targets");
    cJSON_ArrayForEach(t, targets)
    {
        n++;
    }
    if (n == 0) {
        return POSGATE_OK;
    }
    items = plat_calloc(n, sizeof(*items));
    if (items == NULL) {
        return POSGATE_ERR_NOMEM;
    }
    cJSON_ArrayForEach(t, targets)
    {
        items[i++] = t;
    }
    qsort(items, n, sizeof(*items), cmp_items);
    for (i = 0; i < n && err == POSGATE_OK; i++) {
        struct tuf_writer_target info;
        const cJSON *h = cJSON_GetObjectItemCaseSensitive(
            cJSON_GetObjectItemCaseSensitive(items[i], "hashes"), "sha256");
        const cJSON *c = cJSON_GetObjectItemCaseSensitive(items[i], "custom");
        int64_t len = 0;

        memset(&info, 0, sizeof(info));
        if (!cJSON_IsString(h) ||
            json_get_int(items[i], "length", 0, INT64_C(9007199254740992), &len) != POSGATE_OK) {
            err = tw_fail(w, POSGATE_ERR_CORRUPT, "role %s: target %s lacks length or sha256", role,
                          items[i]->string);
            break;
        }
        info.name = items[i]->string;
        info.length = (uint64_t)len;
        info.sha256_hex = h->valuestring;
        buf_reset(&custom);
        if (c != NULL) {
            err = json_canon_encode(c, &custom);
            info.custom_json = buf_cstr(&custom);
        }
        if (err == POSGATE_OK) {
            err = tw_consistent_name(info.name, info.sha256_hex, cname, sizeof(cname));
        }
        if (err == POSGATE_OK) {
            err = tw_state_path(w, path, sizeof(path), "targets/%s", cname);
        }
        if (err == POSGATE_OK) {
            info.stored_path = path;
            err = fn(ctx, &info);
        }
    }
    plat_free(items);
    buf_free(&custom);
    return err;
}
