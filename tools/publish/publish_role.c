/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A delegated role's next version built away from the operator's state (publish_role.h): the
 * draft body, its target sink, and the unsigned file authority-sign signs.
 */
#define _XOPEN_SOURCE 700
#include "publish_role.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "json_canon.h"
#include "plat_clock.h"
#include "plat_file.h"
#include "plat_mem.h"
#include "tuf_meta.h"

#define MAX_PATHS 16

struct role_draft {
    cJSON *body; /* the next version's "signed" */
    char *paths[MAX_PATHS];
    size_t npaths;
    struct handover_file *carried; /* names and paths owned */
    size_t ncarried, cap;
};

void
role_draft_free(struct role_draft *d)
{
    if (d == NULL) {
        return;
    }
    cJSON_Delete(d->body);
    for (size_t i = 0; i < d->npaths; i++) {
        plat_free(d->paths[i]);
    }
    for (size_t i = 0; i < d->ncarried; i++) {
        plat_free((char *)d->carried[i].name);
        plat_free((char *)d->carried[i].path);
    }
    plat_free(d->carried);
    plat_free(d);
}

static char *
dup_str(const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = plat_malloc(n);

    if (p != NULL) {
        memcpy(p, s, n);
    }
    return p;
}

static enum posgate_err
draft_new(const char *const *paths, size_t npaths, struct role_draft **out)
{
    struct role_draft *d = plat_calloc(1, sizeof *d);

    if (d == NULL) {
        return POSGATE_ERR_NOMEM;
    }
    if (npaths > MAX_PATHS) {
        role_draft_free(d);
        die_msg("the delegation names %zu path patterns, at most %d expected", npaths, MAX_PATHS);
        return POSGATE_ERR_TOOBIG;
    }
    for (size_t i = 0; i < npaths; i++) {
        d->paths[i] = dup_str(paths[i]);
        if (d->paths[i] == NULL) {
            role_draft_free(d);
            return POSGATE_ERR_NOMEM;
        }
        d->npaths++;
    }
    *out = d;
    return POSGATE_OK;
}

/* The "signed" object of a metadata file, detached from its parsed envelope. */
static enum posgate_err
signed_of(const void *file, size_t len, const char *what, cJSON **out)
{
    cJSON *env = NULL, *s;
    char msg[256];
    enum posgate_err err = json_parse_bounded(file, len, TUF_META_MAX_LEN, &env, msg, sizeof msg);

    if (err != POSGATE_OK) {
        die_msg("%s: %s", what, msg);
        return POSGATE_ERR_PARSE;
    }
    s = cJSON_DetachItemFromObjectCaseSensitive(env, "signed");
    cJSON_Delete(env);
    if (!cJSON_IsObject(s) || !cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(s, "targets"))) {
        cJSON_Delete(s);
        die_msg("%s: expected a signed targets body, found something else", what);
        return POSGATE_ERR_PARSE;
    }
    *out = s;
    return POSGATE_OK;
}

enum posgate_err
role_draft_from_role(const void *role_file, size_t len, const char *const *paths, size_t npaths,
                     struct role_draft **out)
{
    struct role_draft *d = NULL;
    enum posgate_err err = draft_new(paths, npaths, &d);

    if (err == POSGATE_OK) {
        err = signed_of(role_file, len, "the role's last signed version", &d->body);
    }
    if (err != POSGATE_OK) {
        role_draft_free(d);
        return err;
    }
    *out = d;
    return POSGATE_OK;
}

enum posgate_err
role_draft_from_targets(const void *targets_file, size_t len, const char *prefix,
                        const char *const *paths, size_t npaths, struct role_draft **out)
{
    struct role_draft *d = NULL;
    cJSON *top = NULL, *b = NULL, *t;
    const cJSON *e, *spec;
    enum posgate_err err = draft_new(paths, npaths, &d);

    if (err == POSGATE_OK) {
        err = signed_of(targets_file, len, "the top-level targets", &top);
    }
    if (err != POSGATE_OK) {
        goto out;
    }
    spec = cJSON_GetObjectItemCaseSensitive(top, "spec_version");
    err = POSGATE_ERR_NOMEM;
    b = cJSON_CreateObject();
    if (b == NULL || !cJSON_IsString(spec) || cJSON_AddStringToObject(b, "_type", "targets") == NULL ||
        cJSON_AddStringToObject(b, "spec_version", spec->valuestring) == NULL ||
        cJSON_AddNumberToObject(b, "version", 0) == NULL ||
        cJSON_AddStringToObject(b, "expires", "1970-01-01T00:00:00Z") == NULL ||
        (t = cJSON_AddObjectToObject(b, "targets")) == NULL) {
        goto out;
    }
    cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(top, "targets"))
    {
        if (strncmp(e->string, prefix, strlen(prefix)) == 0) {
            cJSON_AddItemToObject(t, e->string, cJSON_Duplicate(e, 1));
        }
    }
    d->body = b;
    b = NULL;
    *out = d;
    d = NULL;
    err = POSGATE_OK;
out:
    cJSON_Delete(top);
    cJSON_Delete(b);
    role_draft_free(d);
    return err;
}

/* Length and sha256 (hex) of a file, streamed. */
static enum posgate_err
hash_file(const char *path, uint64_t *length, char hex[2 * CRYPTO_SHA256_LEN + 1])
{
    FILE *f = fopen(path, "rb");
    struct crypto_hash_stream *hs = NULL;
    uint8_t chunk[65536], sha[CRYPTO_SHA256_LEN], sha512[CRYPTO_SHA512_LEN];
    enum posgate_err err;
    size_t n;

    if (f == NULL) {
        die_msg("cannot open %s: %s", path, strerror(errno));
        return POSGATE_ERR_IO;
    }
    *length = 0;
    err = crypto_hash_stream_new(&hs);
    while (err == POSGATE_OK && (n = fread(chunk, 1, sizeof chunk, f)) > 0) {
        crypto_hash_stream_update(hs, chunk, n);
        *length += n;
    }
    if (err == POSGATE_OK && ferror(f)) {
        die_msg("cannot read %s", path);
        err = POSGATE_ERR_IO;
    }
    if (err == POSGATE_OK) {
        crypto_hash_stream_finish(hs, sha, sha512);
        crypto_hex(sha, sizeof sha, hex);
    }
    crypto_hash_stream_free(hs);
    fclose(f);
    return err;
}

static int
path_allowed(const struct role_draft *d, const char *name)
{
    for (size_t i = 0; i < d->npaths; i++) {
        if (tuf_path_match(d->paths[i], name)) {
            return 1;
        }
    }
    return 0;
}

/* Forgets the file remembered for name, if any. */
static void
uncarry(struct role_draft *d, const char *name)
{
    for (size_t i = 0; i < d->ncarried; i++) {
        if (strcmp(d->carried[i].name, name) == 0) {
            plat_free((char *)d->carried[i].name);
            plat_free((char *)d->carried[i].path);
            d->carried[i] = d->carried[--d->ncarried];
            return;
        }
    }
}

static enum posgate_err
carry(struct role_draft *d, const char *name, const char *path)
{
    uncarry(d, name);
    if (d->ncarried == d->cap) {
        size_t nc = d->cap == 0 ? 8 : d->cap * 2;
        struct handover_file *nf = plat_realloc(d->carried, nc * sizeof *nf);

        if (nf == NULL) {
            return POSGATE_ERR_NOMEM;
        }
        d->carried = nf;
        d->cap = nc;
    }
    d->carried[d->ncarried].name = dup_str(name);
    d->carried[d->ncarried].path = dup_str(path);
    if (d->carried[d->ncarried].name == NULL || d->carried[d->ncarried].path == NULL) {
        plat_free((char *)d->carried[d->ncarried].name);
        plat_free((char *)d->carried[d->ncarried].path);
        return POSGATE_ERR_NOMEM;
    }
    d->ncarried++;
    return POSGATE_OK;
}

static enum posgate_err
draft_add(void *ctx, const char *role, const char *name, const char *path, const char *custom)
{
    struct role_draft *d = ctx;
    cJSON *entry = NULL, *c = NULL, *h;
    char hex[2 * CRYPTO_SHA256_LEN + 1], msg[200];
    uint64_t length;
    enum posgate_err err;

    if (!path_allowed(d, name)) {
        die_msg("target %s is outside the paths delegated to role %s", name, role);
        return POSGATE_ERR_REJECTED;
    }
    err = hash_file(path, &length, hex);
    if (err == POSGATE_OK && custom != NULL) {
        err = json_parse_bounded(custom, strlen(custom), TUF_CUSTOM_MAX, &c, msg, sizeof msg);
        if (err != POSGATE_OK) {
            die_msg("custom of %s: %s", name, msg);
        }
    }
    if (err != POSGATE_OK) {
        return err;
    }
    entry = cJSON_CreateObject();
    if (entry == NULL || (c != NULL && !cJSON_AddItemToObject(entry, "custom", c)) ||
        (h = cJSON_AddObjectToObject(entry, "hashes")) == NULL ||
        cJSON_AddStringToObject(h, "sha256", hex) == NULL ||
        cJSON_AddNumberToObject(entry, "length", (double)length) == NULL) {
        if (entry == NULL || cJSON_GetObjectItemCaseSensitive(entry, "custom") == NULL) {
            cJSON_Delete(c);
        }
        cJSON_Delete(entry);
        return POSGATE_ERR_NOMEM;
    }
    cJSON_DeleteItemFromObjectCaseSensitive(cJSON_GetObjectItemCaseSensitive(d->body, "targets"),
                                            name);
    cJSON_AddItemToObject(cJSON_GetObjectItemCaseSensitive(d->body, "targets"), name, entry);
    return carry(d, name, path);
}

static enum posgate_err
draft_remove(void *ctx, const char *role, const char *name)
{
    struct role_draft *d = ctx;
    cJSON *t = cJSON_DetachItemFromObjectCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(d->body, "targets"), name);

    (void)role;
    if (t == NULL) {
        return POSGATE_ERR_NOTFOUND;
    }
    cJSON_Delete(t);
    uncarry(d, name);
    return POSGATE_OK;
}

void
role_draft_sink(struct role_draft *d, struct target_sink *t)
{
    t->add = draft_add;
    t->remove = draft_remove;
    t->ctx = d;
}

enum posgate_err
role_draft_carry(struct role_draft *d, const char *name, const char *path)
{
    if (cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(d->body, "targets"),
                                         name) == NULL) {
        return POSGATE_ERR_NOTFOUND;
    }
    return carry(d, name, path);
}

const struct handover_file *
role_draft_carried(const struct role_draft *d, size_t *n)
{
    *n = d->ncarried;
    return d->carried;
}

static int
set_member(cJSON *o, const char *name, cJSON *v)
{
    if (v == NULL) {
        return -1;
    }
    cJSON_DeleteItemFromObjectCaseSensitive(o, name);
    if (!cJSON_AddItemToObject(o, name, v)) {
        cJSON_Delete(v);
        return -1;
    }
    return 0;
}

enum posgate_err
role_draft_write(struct role_draft *d, int64_t version, int64_t expires, int64_t now,
                 const char *path)
{
    char exp[40], iss[40];
    cJSON *env = cJSON_CreateObject();
    struct buf out = BUF_INIT(TUF_META_MAX_LEN);
    enum posgate_err err = POSGATE_ERR_NOMEM;

    plat_time_format(expires, exp, sizeof exp);
    plat_time_format(now, iss, sizeof iss);
    if (env == NULL || set_member(d->body, "version", cJSON_CreateNumber((double)version)) != 0 ||
        set_member(d->body, "expires", cJSON_CreateString(exp)) != 0 ||
        set_member(d->body, TUF_ISSUED_FIELD, cJSON_CreateString(iss)) != 0 ||
        cJSON_AddArrayToObject(env, "signatures") == NULL) {
        goto out;
    }
    cJSON_AddItemReferenceToObject(env, "signed", d->body);
    err = json_canon_encode(env, &out);
    if (err == POSGATE_OK) {
        err = plat_write_atomic(path, out.data, out.len, 0600);
    }
    if (err != POSGATE_OK) {
        die_msg("cannot write %s: %s", path, posgate_strerror(err));
    }
out:
    cJSON_Delete(env);
    buf_free(&out);
    return err;
}
