/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The TUF writer (see tuf_writer.h for the state and repository layouts). Every role is held
 * as its last signed file (bytes and parsed envelope) plus an unsigned working copy of its
 * "signed" body; a change edits the working copy and marks the role dirty, and signing turns
 * the working copy into the next version. Signatures cover the canonical JSON of "signed"
 * (json_canon.h); files are written as ordinary JSON (cJSON, control characters escaped) so
 * that strict JSON readers accept them. Target content is streamed through the hash into the
 * state directory, never held whole in memory.
 */
#define _POSIX_C_SOURCE 200809L
#include "tuf_writer.h"

#include <errno.h>
#include <fnmatch.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "json_canon.h"
#include "tuf_meta.h"
#include "plat_clock.h"
#include "plat_file.h"
#include "plat_mem.h"

#define SPEC_VERSION   "1.0.31"
#define META_MAX       (16u * 1024u * 1024u) /* bytes of one metadata file */
#define STATE_JSON_MAX (64u * 1024u * 1024u) /* writer.json holds working copies */
#define NAME_MAX_LEN   1024                  /* bytes of a target name */
#define PATH_CAP       4096
#define COPY_CHUNK     65536
#define ROLE_COUNT_MAX 4096
#define WRITER_FORMAT  1
#define KEYTYPE        "ecdsa"
#define SCHEME         "ecdsa-sha2-nistp256"
#define KEYTYPE_RSA    "rsa"
#define SCHEME_RSA     "rsassa-pss-sha256"

static const char *const top_roles[4] = {"root", "timestamp", "snapshot", "targets"};

struct role {
    char name[TUF_WRITER_ROLE_MAX + 1];
    struct buf signed_bytes; /* last signed file, exactly as written; len 0 when never */
    cJSON *signed_env;       /* parsed signed_bytes; NULL when never signed */
    int64_t signed_version;  /* 0 when never signed */
    cJSON *work;             /* working "signed" body; NULL for timestamp/snapshot until built */
    int dirty;               /* work differs from what was signed, or a re-sign was asked */
    int signed_changed;      /* signed_bytes not yet saved */
    int64_t next_version;    /* 0: signed_version + 1 */
    int has_next_expires;
    int64_t next_expires;
    int64_t lifetime;                      /* 0: the default */
    struct crypto_privkey *const *signers; /* test knob; NULL: keyring */
    size_t signer_count;
    int has_signers;
};

struct tuf_writer {
    char dir[PATH_CAP];
    struct role *roles;
    size_t nroles;
    size_t cap;
    int64_t now;
    int snapshot_hashes;
    int failed;     /* an operation failed half-way in memory: only free is allowed */
    char **unlinks; /* files to remove after the next save */
    size_t nunlinks;
    char errmsg[TUF_WRITER_ERRMSG_MAX];
};

/* Keyring keys with their keyids, computed once per call. */
struct keyring {
    struct crypto_privkey *const *keys;
    size_t count;
    char (*ids)[TUF_WRITER_KEYID_LEN + 1];
};

static enum posgate_err fail(struct tuf_writer *w, enum posgate_err err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static enum posgate_err
fail(struct tuf_writer *w, enum posgate_err err, const char *fmt, ...)
{
    va_list ap;

    if (w != NULL && err != POSGATE_OK) {
        va_start(ap, fmt);
        vsnprintf(w->errmsg, sizeof(w->errmsg), fmt, ap);
        va_end(ap);
    }
    return err;
}

static int
is_top(const char *name)
{
    for (size_t i = 0; i < 4; i++) {
        if (strcmp(name, top_roles[i]) == 0) {
            return 1;
        }
    }
    return 0;
}

/* Targets-type roles: "targets" and every delegated role. */
static int
is_targets_type(const char *name)
{
    return strcmp(name, "targets") == 0 || !is_top(name);
}

static int
valid_role_name(const char *name)
{
    size_t n = strlen(name);

    if (n == 0 || n > TUF_WRITER_ROLE_MAX || is_top(name) || name[0] == '.') {
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        char c = name[i];

        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-')) {
            return 0;
        }
    }
    return 1;
}

/* A target name: '/'-separated segments, none empty, "." or "..", no control bytes. */
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

static struct role *
find_role(const struct tuf_writer *w, const char *name)
{
    for (size_t i = 0; i < w->nroles; i++) {
        if (strcmp(w->roles[i].name, name) == 0) {
            return &w->roles[i];
        }
    }
    return NULL;
}

static int64_t
writer_now(const struct tuf_writer *w)
{
    return w->now != 0 ? w->now : plat_wall_s();
}

static int64_t
default_lifetime(const struct tuf_writer *w, const struct role *r)
{
    const struct role *t;

    if (r->lifetime > 0) {
        return r->lifetime;
    }
    if (strcmp(r->name, "root") == 0) {
        return TUF_WRITER_ROOT_LIFETIME;
    }
    if (strcmp(r->name, "timestamp") == 0) {
        return TUF_WRITER_TIMESTAMP_LIFETIME;
    }
    if (strcmp(r->name, "snapshot") == 0) {
        return TUF_WRITER_SNAPSHOT_LIFETIME;
    }
    t = find_role(w, "targets");
    if (t != NULL && t != r && t->lifetime > 0) {
        return t->lifetime;
    }
    return TUF_WRITER_TARGETS_LIFETIME;
}

/* ---- small cJSON helpers ---------------------------------------------------------------- */

/* Sets key in obj to v (taking v), replacing an existing member. */
static enum posgate_err
obj_set(cJSON *obj, const char *key, cJSON *v)
{
    if (v == NULL) {
        return POSGATE_ERR_NOMEM;
    }
    if (cJSON_GetObjectItemCaseSensitive(obj, key) != NULL) {
        if (!cJSON_ReplaceItemInObjectCaseSensitive(obj, key, v)) {
            cJSON_Delete(v);
            return POSGATE_ERR_NOMEM;
        }
        return POSGATE_OK;
    }
    if (!cJSON_AddItemToObject(obj, key, v)) {
        cJSON_Delete(v);
        return POSGATE_ERR_NOMEM;
    }
    return POSGATE_OK;
}

static enum posgate_err
obj_set_int(cJSON *obj, const char *key, int64_t v)
{
    return obj_set(obj, key, cJSON_CreateNumber((double)v));
}

static enum posgate_err
obj_set_str(cJSON *obj, const char *key, const char *v)
{
    return obj_set(obj, key, cJSON_CreateString(v));
}

static enum posgate_err
arr_add(cJSON *arr, cJSON *v)
{
    if (v == NULL) {
        return POSGATE_ERR_NOMEM;
    }
    if (!cJSON_AddItemToArray(arr, v)) {
        cJSON_Delete(v);
        return POSGATE_ERR_NOMEM;
    }
    return POSGATE_OK;
}

static int
str_in_array(const cJSON *arr, const char *s)
{
    const cJSON *c;

    cJSON_ArrayForEach(c, arr)
    {
        if (cJSON_IsString(c) && strcmp(c->valuestring, s) == 0) {
            return 1;
        }
    }
    return 0;
}

/* Ordinary JSON text of v (control characters escaped) appended to out. */
static enum posgate_err
print_json(const cJSON *v, struct buf *out)
{
    char *s = cJSON_PrintUnformatted(v);
    enum posgate_err err;

    if (s == NULL) {
        return POSGATE_ERR_NOMEM;
    }
    err = buf_append_str(out, s);
    cJSON_free(s);
    return err;
}

/* ---- keys ------------------------------------------------------------------------------- */

/* The TUF key object of a public key: its keytype and scheme follow from the key itself
 * (ECDSA P-256: "ecdsa"/"ecdsa-sha2-nistp256"; RSA: "rsa"/"rsassa-pss-sha256"). */
static cJSON *
key_object(const char *pem)
{
    cJSON *k, *kv;
    enum crypto_scheme scheme;
    int rsa;

    if (crypto_pem_scheme(pem, &scheme) != POSGATE_OK) {
        return NULL;
    }
    rsa = scheme == CRYPTO_SCHEME_RSA_PSS_SHA256;
    k = cJSON_CreateObject();
    kv = cJSON_CreateObject();
    if (k == NULL || kv == NULL || obj_set_str(kv, "public", pem) != POSGATE_OK ||
        obj_set_str(k, "keytype", rsa ? KEYTYPE_RSA : KEYTYPE) != POSGATE_OK) {
        cJSON_Delete(k);
        cJSON_Delete(kv);
        return NULL;
    }
    if (obj_set(k, "keyval", kv) != POSGATE_OK ||
        obj_set_str(k, "scheme", rsa ? SCHEME_RSA : SCHEME) != POSGATE_OK) {
        cJSON_Delete(k);
        return NULL;
    }
    return k;
}

enum posgate_err
tuf_writer_keyid_pem(const char *public_pem, char *out)
{
    struct buf canon = BUF_INIT(CRYPTO_PEM_MAX * 2);
    uint8_t h[CRYPTO_SHA256_LEN];
    cJSON *k;
    enum crypto_scheme scheme;
    enum posgate_err err;

    if (public_pem == NULL || out == NULL) {
        return POSGATE_ERR_INVALID;
    }
    err = crypto_pem_scheme(public_pem, &scheme);
    if (err != POSGATE_OK) {
        return err == POSGATE_ERR_NOMEM ? err : POSGATE_ERR_INVALID;
    }
    json_init_hooks();
    k = key_object(public_pem);
    if (k == NULL) {
        return POSGATE_ERR_NOMEM;
    }
    err = json_canon_encode(k, &canon);
    cJSON_Delete(k);
    if (err == POSGATE_OK) {
        crypto_sha256(canon.data, canon.len, h);
        crypto_hex(h, sizeof(h), out);
    }
    buf_free(&canon);
    return err;
}

enum posgate_err
tuf_writer_keyid(const struct crypto_privkey *k, char *out)
{
    struct buf pem = BUF_INIT(CRYPTO_PEM_MAX);
    enum posgate_err err;

    if (k == NULL || out == NULL) {
        return POSGATE_ERR_INVALID;
    }
    err = crypto_privkey_public_pem(k, &pem);
    if (err == POSGATE_OK) {
        err = tuf_writer_keyid_pem(buf_cstr(&pem), out);
    }
    buf_free(&pem);
    return err;
}

/*
 * Checks a key set and adds its keys to keys_obj (a TUF "keys" dictionary). *keyids_out gets
 * the array of keyids in the given order.
 */
static enum posgate_err
build_keyset(struct tuf_writer *w, const char *what, const struct tuf_writer_role_keys *k,
             cJSON *keys_obj, cJSON **keyids_out)
{
    cJSON *ids = NULL;
    char id[TUF_WRITER_KEYID_LEN + 1];
    enum posgate_err err = POSGATE_OK;

    *keyids_out = NULL;
    if (k == NULL || k->count == 0 || k->public_pems == NULL) {
        return fail(w, POSGATE_ERR_INVALID, "%s: expected at least one public key, found none",
                    what);
    }
    if (k->count > TUF_WRITER_MAX_KEYS) {
        return fail(w, POSGATE_ERR_INVALID, "%s: expected at most %d keys, found %zu", what,
                    TUF_WRITER_MAX_KEYS, k->count);
    }
    if (k->threshold < 1 || k->threshold > k->count) {
        return fail(w, POSGATE_ERR_INVALID,
                    "%s: threshold must be between 1 and the %zu keys given, found %u", what,
                    k->count, k->threshold);
    }
    ids = cJSON_CreateArray();
    if (ids == NULL) {
        return POSGATE_ERR_NOMEM;
    }
    for (size_t i = 0; i < k->count; i++) {
        if (k->public_pems[i] == NULL) {
            err = fail(w, POSGATE_ERR_INVALID, "%s: key %zu is NULL", what, i + 1);
            goto out;
        }
        err = tuf_writer_keyid_pem(k->public_pems[i], id);
        if (err != POSGATE_OK) {
            err = fail(w, err,
                       "%s: key %zu: expected a PEM ECDSA P-256 public key "
                       "(SubjectPublicKeyInfo), found something else",
                       what, i + 1);
            goto out;
        }
        if (str_in_array(ids, id)) {
            err = fail(w, POSGATE_ERR_INVALID, "%s: key %zu (keyid %.16s...) is given twice", what,
                       i + 1, id);
            goto out;
        }
        err = arr_add(ids, cJSON_CreateString(id));
        if (err == POSGATE_OK && cJSON_GetObjectItemCaseSensitive(keys_obj, id) == NULL) {
            err = obj_set(keys_obj, id, key_object(k->public_pems[i]));
        }
        if (err != POSGATE_OK) {
            goto out;
        }
    }
    *keyids_out = ids;
    ids = NULL;
out:
    cJSON_Delete(ids);
    return err;
}

/* Drops keys of keys_obj that no role in roles (object or array of role objects) uses. */
static void
prune_keys(cJSON *keys_obj, const cJSON *roles)
{
    cJSON *k = keys_obj != NULL ? keys_obj->child : NULL;

    while (k != NULL) {
        cJSON *next = k->next;
        const cJSON *r;
        int used = 0;

        cJSON_ArrayForEach(r, roles)
        {
            if (str_in_array(cJSON_GetObjectItemCaseSensitive(r, "keyids"), k->string)) {
                used = 1;
            }
        }
        if (!used) {
            cJSON_Delete(cJSON_DetachItemViaPointer(keys_obj, k));
        }
        k = next;
    }
}

/* ---- role bodies ------------------------------------------------------------------------ */

static cJSON *
new_body(const char *type)
{
    cJSON *b = cJSON_CreateObject();

    if (b == NULL || obj_set_str(b, "_type", type) != POSGATE_OK ||
        obj_set_str(b, "spec_version", SPEC_VERSION) != POSGATE_OK ||
        obj_set_int(b, "version", 0) != POSGATE_OK ||
        obj_set_str(b, "expires", "1970-01-01T00:00:00Z") != POSGATE_OK) {
        cJSON_Delete(b);
        return NULL;
    }
    return b;
}

static cJSON *
new_targets_body(void)
{
    cJSON *b = new_body("targets");

    if (b != NULL && obj_set(b, "targets", cJSON_CreateObject()) != POSGATE_OK) {
        cJSON_Delete(b);
        return NULL;
    }
    return b;
}

static enum posgate_err
add_role(struct tuf_writer *w, const char *name, struct role **out)
{
    struct role *r;

    if (w->nroles >= ROLE_COUNT_MAX) {
        return fail(w, POSGATE_ERR_TOOBIG, "expected at most %d roles, found more", ROLE_COUNT_MAX);
    }
    if (w->nroles == w->cap) {
        size_t ncap = w->cap == 0 ? 8 : w->cap * 2;
        struct role *n = plat_realloc(w->roles, ncap * sizeof(*n));

        if (n == NULL) {
            return POSGATE_ERR_NOMEM;
        }
        w->roles = n;
        w->cap = ncap;
    }
    r = &w->roles[w->nroles++];
    memset(r, 0, sizeof(*r));
    snprintf(r->name, sizeof(r->name), "%s", name);
    buf_init(&r->signed_bytes, META_MAX);
    *out = r;
    return POSGATE_OK;
}

static void
role_cleanup(struct role *r)
{
    buf_free(&r->signed_bytes);
    cJSON_Delete(r->signed_env);
    cJSON_Delete(r->work);
    r->signed_env = NULL;
    r->work = NULL;
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

static enum posgate_err state_path(const struct tuf_writer *w, char *out, size_t cap,
                                   const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static enum posgate_err
state_path(const struct tuf_writer *w, char *out, size_t cap, const char *fmt, ...)
{
    char rel[PATH_CAP];
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(rel, sizeof(rel), fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof(rel)) {
        return POSGATE_ERR_TOOBIG;
    }
    return plat_path_join(out, cap, w->dir, rel);
}

/* Splits a target name into directory ("" when none) and base name. */
static void
split_name(const char *name, char *dir, size_t dcap, const char **base)
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
static enum posgate_err
consistent_name(const char *name, const char *sha_hex, char *out, size_t cap)
{
    char dir[NAME_MAX_LEN + 1];
    const char *base;
    int n;

    split_name(name, dir, sizeof(dir), &base);
    if (dir[0] != 0) {
        n = snprintf(out, cap, "%s/%s.%s", dir, sha_hex, base);
    } else {
        n = snprintf(out, cap, "%s.%s", sha_hex, base);
    }
    return (n < 0 || (size_t)n >= cap) ? POSGATE_ERR_TOOBIG : POSGATE_OK;
}

/* ---- lifecycle -------------------------------------------------------------------------- */

static enum posgate_err
writer_alloc(const char *state_dir, struct tuf_writer **out)
{
    struct tuf_writer *w;

    *out = NULL;
    if (state_dir == NULL || strlen(state_dir) == 0 ||
        strlen(state_dir) >= sizeof(((struct tuf_writer *)0)->dir) - 512) {
        return POSGATE_ERR_INVALID;
    }
    w = plat_calloc(1, sizeof(*w));
    if (w == NULL) {
        return POSGATE_ERR_NOMEM;
    }
    snprintf(w->dir, sizeof(w->dir), "%s", state_dir);
    json_init_hooks();
    *out = w;
    return POSGATE_OK;
}

void
tuf_writer_free(struct tuf_writer *w)
{
    if (w == NULL) {
        return;
    }
    for (size_t i = 0; i < w->nroles; i++) {
        role_cleanup(&w->roles[i]);
    }
    plat_free(w->roles);
    for (size_t i = 0; i < w->nunlinks; i++) {
        plat_free(w->unlinks[i]);
    }
    plat_free(w->unlinks);
    plat_free(w);
}

const char *
tuf_writer_errmsg(const struct tuf_writer *w)
{
    return w != NULL ? w->errmsg : "";
}

static void
copy_err(const struct tuf_writer *w, enum posgate_err err, char *errmsg, size_t errcap)
{
    if (errmsg == NULL || errcap == 0) {
        return;
    }
    if (err == POSGATE_OK) {
        errmsg[0] = 0;
    } else if (w != NULL && w->errmsg[0] != 0) {
        snprintf(errmsg, errcap, "%s", w->errmsg);
    } else {
        snprintf(errmsg, errcap, "%s", posgate_strerror(err));
    }
}

static enum posgate_err save_state(struct tuf_writer *w);

enum posgate_err
tuf_writer_create(const char *state_dir, const struct tuf_writer_init *init,
                  struct tuf_writer **out, char *errmsg, size_t errcap)
{
    struct tuf_writer *w = NULL;
    const struct tuf_writer_role_keys *specs[4];
    char path[PATH_CAP];
    cJSON *keys = NULL, *roles = NULL;
    struct role *r;
    enum posgate_err err;

    if (out == NULL) {
        copy_err(NULL, POSGATE_ERR_INVALID, errmsg, errcap);
        return POSGATE_ERR_INVALID;
    }
    *out = NULL;
    err = writer_alloc(state_dir, &w);
    if (err != POSGATE_OK || init == NULL) {
        err = err != POSGATE_OK ? err : POSGATE_ERR_INVALID;
        goto out;
    }
    err = state_path(w, path, sizeof(path), "writer.json");
    if (err != POSGATE_OK) {
        goto out;
    }
    if (plat_exists(path)) {
        err = fail(w, POSGATE_ERR_STATE,
                   "%s already holds a writer state (writer.json); expected an empty or new "
                   "directory, refusing to overwrite it",
                   state_dir);
        goto out;
    }
    specs[0] = &init->root;
    specs[1] = &init->timestamp;
    specs[2] = &init->snapshot;
    specs[3] = &init->targets;
    keys = cJSON_CreateObject();
    roles = cJSON_CreateObject();
    if (keys == NULL || roles == NULL) {
        err = POSGATE_ERR_NOMEM;
        goto out;
    }
    for (size_t i = 0; i < 4; i++) {
        cJSON *ids = NULL, *ro;
        char what[64];

        snprintf(what, sizeof(what), "%s role", top_roles[i]);
        err = build_keyset(w, what, specs[i], keys, &ids);
        if (err != POSGATE_OK) {
            goto out;
        }
        ro = cJSON_CreateObject();
        err = obj_set(roles, top_roles[i], ro);
        if (err == POSGATE_OK) {
            err = obj_set(ro, "keyids", ids);
            ids = NULL;
        }
        if (err == POSGATE_OK) {
            err = obj_set_int(ro, "threshold", (int64_t)specs[i]->threshold);
        }
        cJSON_Delete(ids);
        if (err != POSGATE_OK) {
            goto out;
        }
    }
    for (size_t i = 0; i < 4; i++) {
        err = add_role(w, top_roles[i], &r);
        if (err != POSGATE_OK) {
            goto out;
        }
        r->dirty = 1;
    }
    r = find_role(w, "root");
    r->work = new_body("root");
    if (r->work == NULL ||
        obj_set(r->work, "consistent_snapshot", cJSON_CreateTrue()) != POSGATE_OK ||
        obj_set(r->work, "keys", keys) != POSGATE_OK) {
        keys = NULL;
        err = POSGATE_ERR_NOMEM;
        goto out;
    }
    keys = NULL;
    err = obj_set(r->work, "roles", roles);
    roles = NULL;
    if (err != POSGATE_OK) {
        goto out;
    }
    r = find_role(w, "targets");
    r->work = new_targets_body();
    if (r->work == NULL) {
        err = POSGATE_ERR_NOMEM;
        goto out;
    }
    err = plat_mkdir_p(state_dir, 0700);
    if (err != POSGATE_OK) {
        err = fail(w, err, "cannot create state directory %s", state_dir);
        goto out;
    }
    err = save_state(w);
    if (err != POSGATE_OK) {
        goto out;
    }
    *out = w;
    w = NULL;
out:
    cJSON_Delete(keys);
    cJSON_Delete(roles);
    copy_err(w, err, errmsg, errcap);
    tuf_writer_free(w);
    return err;
}

/* Loads signed/<name>.json into r when present. */
static enum posgate_err
load_signed(struct tuf_writer *w, struct role *r)
{
    char path[PATH_CAP], emsg[256];
    const cJSON *signed_;
    int64_t v;
    enum posgate_err err;

    err = state_path(w, path, sizeof(path), "signed/%s.json", r->name);
    if (err != POSGATE_OK) {
        return err;
    }
    err = plat_read_file(path, &r->signed_bytes);
    if (err == POSGATE_ERR_NOTFOUND) {
        buf_reset(&r->signed_bytes);
        return POSGATE_OK;
    }
    if (err != POSGATE_OK) {
        return fail(w, err, "cannot read %s", path);
    }
    err = json_parse_bounded(r->signed_bytes.data, r->signed_bytes.len, META_MAX, &r->signed_env,
                             emsg, sizeof(emsg));
    if (err != POSGATE_OK) {
        return fail(w, POSGATE_ERR_CORRUPT, "%s: %s", path, emsg);
    }
    signed_ = cJSON_GetObjectItemCaseSensitive(r->signed_env, "signed");
    if (!cJSON_IsObject(signed_) ||
        json_get_int(signed_, "version", 1, INT64_C(9007199254740992), &v) != POSGATE_OK) {
        return fail(w, POSGATE_ERR_CORRUPT,
                    "%s: expected signed metadata with a version, found none", path);
    }
    r->signed_version = v;
    return POSGATE_OK;
}

enum posgate_err
tuf_writer_open(const char *state_dir, struct tuf_writer **out, char *errmsg, size_t errcap)
{
    struct tuf_writer *w = NULL;
    struct buf raw = BUF_INIT(STATE_JSON_MAX);
    char path[PATH_CAP], emsg[256];
    cJSON *st = NULL;
    const cJSON *roles, *e;
    int64_t fmt;
    enum posgate_err err;

    if (out == NULL) {
        copy_err(NULL, POSGATE_ERR_INVALID, errmsg, errcap);
        return POSGATE_ERR_INVALID;
    }
    *out = NULL;
    err = writer_alloc(state_dir, &w);
    if (err != POSGATE_OK) {
        goto out;
    }
    err = state_path(w, path, sizeof(path), "writer.json");
    if (err == POSGATE_OK) {
        err = plat_read_file(path, &raw);
    }
    if (err != POSGATE_OK) {
        err = fail(w, err, "cannot read the writer state %s: %s", path, posgate_strerror(err));
        goto out;
    }
    err = json_parse_bounded(raw.data, raw.len, STATE_JSON_MAX, &st, emsg, sizeof(emsg));
    if (err != POSGATE_OK) {
        err = fail(w, POSGATE_ERR_CORRUPT, "%s: %s", path, emsg);
        goto out;
    }
    if (json_get_int(st, "format", 0, 1000, &fmt) != POSGATE_OK || fmt != WRITER_FORMAT) {
        err = fail(w, POSGATE_ERR_UNSUPPORTED, "%s: expected format %d, found another", path,
                   WRITER_FORMAT);
        goto out;
    }
    w->snapshot_hashes = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(st, "snapshot_hashes"));
    roles = cJSON_GetObjectItemCaseSensitive(st, "roles");
    if (!cJSON_IsArray(roles)) {
        err = fail(w, POSGATE_ERR_CORRUPT, "%s: expected a roles array, found none", path);
        goto out;
    }
    cJSON_ArrayForEach(e, roles)
    {
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(e, "name");
        const cJSON *work = cJSON_GetObjectItemCaseSensitive(e, "work");
        struct role *r;
        int64_t v;

        if (!cJSON_IsString(name) ||
            (!is_top(name->valuestring) && !valid_role_name(name->valuestring)) ||
            find_role(w, name->valuestring) != NULL) {
            err = fail(w, POSGATE_ERR_CORRUPT, "%s: bad or repeated role name", path);
            goto out;
        }
        err = add_role(w, name->valuestring, &r);
        if (err == POSGATE_OK) {
            err = load_signed(w, r);
        }
        if (err != POSGATE_OK) {
            goto out;
        }
        r->dirty = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(e, "dirty"));
        if (json_get_int(e, "lifetime", 1, INT64_C(1) << 40, &v) == POSGATE_OK) {
            r->lifetime = v;
        }
        if (json_get_int(e, "next_version", 1, INT64_C(9007199254740992), &v) == POSGATE_OK) {
            r->next_version = v;
        }
        if (json_get_int(e, "next_expires", -(INT64_C(1) << 50), INT64_C(1) << 50, &v) ==
            POSGATE_OK) {
            r->next_expires = v;
            r->has_next_expires = 1;
        }
        if (cJSON_IsObject(work)) {
            r->work = cJSON_Duplicate(work, 1);
        } else if (r->signed_env != NULL) {
            r->work = cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(r->signed_env, "signed"), 1);
        } else if (is_targets_type(r->name) || strcmp(r->name, "root") == 0) {
            err = fail(w, POSGATE_ERR_CORRUPT,
                       "%s: role %s has neither signed metadata nor a "
                       "working copy",
                       path, r->name);
            goto out;
        }
        if ((is_targets_type(r->name) || strcmp(r->name, "root") == 0) && r->work == NULL) {
            err = POSGATE_ERR_NOMEM;
            goto out;
        }
        if (r->signed_env == NULL) {
            r->dirty = 1;
        }
    }
    for (size_t i = 0; i < 4; i++) {
        if (find_role(w, top_roles[i]) == NULL) {
            err = fail(w, POSGATE_ERR_CORRUPT, "%s: the %s role is missing", path, top_roles[i]);
            goto out;
        }
    }
    *out = w;
    w = NULL;
out:
    cJSON_Delete(st);
    buf_free(&raw);
    copy_err(w, err, errmsg, errcap);
    tuf_writer_free(w);
    return err;
}

/* ---- saving ------------------------------------------------------------------------------ */

static enum posgate_err
save_state(struct tuf_writer *w)
{
    cJSON *st = NULL, *roles;
    struct buf text = BUF_INIT(STATE_JSON_MAX);
    char path[PATH_CAP];
    enum posgate_err err;

    err = state_path(w, path, sizeof(path), "signed");
    if (err == POSGATE_OK) {
        err = plat_mkdir_p(path, 0700);
    }
    if (err == POSGATE_OK) {
        err = state_path(w, path, sizeof(path), "roots");
    }
    if (err == POSGATE_OK) {
        err = plat_mkdir_p(path, 0700);
    }
    if (err != POSGATE_OK) {
        return fail(w, err, "cannot create %s", path);
    }
    /* Signed files first: writer.json never names a signing that is not on disk. */
    for (size_t i = 0; i < w->nroles; i++) {
        struct role *r = &w->roles[i];

        if (!r->signed_changed) {
            continue;
        }
        err = state_path(w, path, sizeof(path), "signed/%s.json", r->name);
        if (err == POSGATE_OK) {
            err = plat_write_atomic(path, r->signed_bytes.data, r->signed_bytes.len, 0644);
        }
        if (err == POSGATE_OK && strcmp(r->name, "root") == 0) {
            err = state_path(w, path, sizeof(path), "roots/%lld.root.json",
                             (long long)r->signed_version);
            if (err == POSGATE_OK) {
                err = plat_write_atomic(path, r->signed_bytes.data, r->signed_bytes.len, 0644);
            }
        }
        if (err != POSGATE_OK) {
            return fail(w, err, "cannot write %s", path);
        }
        r->signed_changed = 0;
    }
    st = cJSON_CreateObject();
    roles = cJSON_CreateArray();
    if (st == NULL || roles == NULL || obj_set_int(st, "format", WRITER_FORMAT) != POSGATE_OK ||
        obj_set(st, "snapshot_hashes", cJSON_CreateBool(w->snapshot_hashes)) != POSGATE_OK) {
        cJSON_Delete(roles);
        err = POSGATE_ERR_NOMEM;
        goto out;
    }
    err = obj_set(st, "roles", roles);
    for (size_t i = 0; i < w->nroles && err == POSGATE_OK; i++) {
        struct role *r = &w->roles[i];
        cJSON *e = cJSON_CreateObject();

        err = arr_add(roles, e);
        if (err == POSGATE_OK) {
            err = obj_set_str(e, "name", r->name);
        }
        if (err == POSGATE_OK) {
            err = obj_set(e, "dirty", cJSON_CreateBool(r->dirty));
        }
        if (err == POSGATE_OK && r->lifetime > 0) {
            err = obj_set_int(e, "lifetime", r->lifetime);
        }
        if (err == POSGATE_OK && r->next_version > 0) {
            err = obj_set_int(e, "next_version", r->next_version);
        }
        if (err == POSGATE_OK && r->has_next_expires) {
            err = obj_set_int(e, "next_expires", r->next_expires);
        }
        if (err == POSGATE_OK && r->dirty && r->work != NULL) {
            err = obj_set(e, "work", cJSON_Duplicate(r->work, 1));
        }
    }
    if (err == POSGATE_OK) {
        err = print_json(st, &text);
    }
    if (err == POSGATE_OK) {
        err = state_path(w, path, sizeof(path), "writer.json");
    }
    if (err == POSGATE_OK) {
        err = plat_write_atomic(path, text.data, text.len, 0600);
        if (err != POSGATE_OK) {
            err = fail(w, err, "cannot write %s", path);
        }
    }
    if (err == POSGATE_OK) {
        for (size_t i = 0; i < w->nunlinks; i++) {
            /* Best effort: a leftover file wastes space but changes nothing signed. */
            if (plat_unlink(w->unlinks[i]) != POSGATE_OK) {
                w->errmsg[0] = 0;
            }
            plat_free(w->unlinks[i]);
        }
        w->nunlinks = 0;
    }
out:
    cJSON_Delete(st);
    buf_free(&text);
    return err;
}

enum posgate_err
tuf_writer_save(struct tuf_writer *w)
{
    if (w == NULL) {
        return POSGATE_ERR_INVALID;
    }
    if (w->failed) {
        return fail(w, POSGATE_ERR_STATE, "an earlier operation failed half-way; reopen the state");
    }
    w->errmsg[0] = 0;
    return save_state(w);
}

/* ---- settings ---------------------------------------------------------------------------- */

static enum posgate_err
usable(struct tuf_writer *w, const char *role, struct role **out)
{
    if (w == NULL) {
        return POSGATE_ERR_INVALID;
    }
    if (w->failed) {
        return fail(w, POSGATE_ERR_STATE, "an earlier operation failed half-way; reopen the state");
    }
    w->errmsg[0] = 0;
    if (out != NULL) {
        *out = role != NULL ? find_role(w, role) : NULL;
        if (*out == NULL) {
            return fail(w, role == NULL ? POSGATE_ERR_INVALID : POSGATE_ERR_NOTFOUND,
                        "expected a known role, found \"%s\"", role != NULL ? role : "(null)");
        }
    }
    return POSGATE_OK;
}

void
tuf_writer_set_now(struct tuf_writer *w, int64_t now)
{
    if (w != NULL) {
        w->now = now;
    }
}

void
tuf_writer_set_snapshot_hashes(struct tuf_writer *w, int on)
{
    if (w != NULL && w->snapshot_hashes != (on != 0)) {
        w->snapshot_hashes = on != 0;
        struct role *s = find_role(w, "snapshot");

        if (s != NULL) {
            s->dirty = 1;
        }
    }
}

enum posgate_err
tuf_writer_set_lifetime(struct tuf_writer *w, const char *role, int64_t seconds)
{
    struct role *r;
    enum posgate_err err = usable(w, role, &r);

    if (err != POSGATE_OK) {
        return err;
    }
    if (seconds < 1 || seconds > (INT64_C(1) << 40)) {
        return fail(w, POSGATE_ERR_INVALID, "expected a lifetime of 1 s to 2^40 s, found %lld",
                    (long long)seconds);
    }
    r->lifetime = seconds;
    return POSGATE_OK;
}

enum posgate_err
tuf_writer_touch(struct tuf_writer *w, const char *role)
{
    struct role *r;
    enum posgate_err err = usable(w, role, &r);

    if (err == POSGATE_OK) {
        r->dirty = 1;
    }
    return err;
}

enum posgate_err
tuf_writer_set_expires(struct tuf_writer *w, const char *role, int64_t expires)
{
    struct role *r;
    enum posgate_err err = usable(w, role, &r);

    if (err == POSGATE_OK) {
        r->dirty = 1;
        r->has_next_expires = 1;
        r->next_expires = expires;
    }
    return err;
}

enum posgate_err
tuf_writer_set_version(struct tuf_writer *w, const char *role, int64_t version)
{
    struct role *r;
    enum posgate_err err = usable(w, role, &r);

    if (err != POSGATE_OK) {
        return err;
    }
    if (version < 1 || version > INT64_C(9007199254740992)) {
        return fail(w, POSGATE_ERR_INVALID, "expected a version from 1 to 2^53, found %lld",
                    (long long)version);
    }
    r->dirty = 1;
    r->next_version = version;
    return POSGATE_OK;
}

enum posgate_err
tuf_writer_set_signers(struct tuf_writer *w, const char *role, struct crypto_privkey *const *keys,
                       size_t count)
{
    struct role *r;
    enum posgate_err err = usable(w, role, &r);

    if (err != POSGATE_OK) {
        return err;
    }
    if (count > 0 && keys == NULL) {
        return fail(w, POSGATE_ERR_INVALID, "expected %zu keys, found NULL", count);
    }
    r->dirty = 1;
    r->signers = keys;
    r->signer_count = count;
    r->has_signers = 1;
    return POSGATE_OK;
}

size_t
tuf_writer_role_count(const struct tuf_writer *w)
{
    return w != NULL ? w->nroles : 0;
}

const char *
tuf_writer_role_name(const struct tuf_writer *w, size_t i)
{
    return w != NULL && i < w->nroles ? w->roles[i].name : NULL;
}

enum posgate_err
tuf_writer_role_signed(const struct tuf_writer *w, const char *role, const void **data,
                       size_t *len)
{
    const struct role *r;

    if (w == NULL || role == NULL || data == NULL || len == NULL) {
        return POSGATE_ERR_INVALID;
    }
    r = find_role(w, role);
    if (r == NULL || r->signed_bytes.len == 0) {
        return POSGATE_ERR_NOTFOUND;
    }
    *data = r->signed_bytes.data;
    *len = r->signed_bytes.len;
    return POSGATE_OK;
}

enum posgate_err
tuf_writer_role_version(const struct tuf_writer *w, const char *role, int64_t *version)
{
    const struct role *r;

    if (w == NULL || role == NULL || version == NULL) {
        return POSGATE_ERR_INVALID;
    }
    r = find_role(w, role);
    if (r == NULL) {
        return POSGATE_ERR_NOTFOUND;
    }
    *version = r->signed_version;
    return POSGATE_OK;
}

enum posgate_err
tuf_writer_set_role_keys(struct tuf_writer *w, const char *role,
                         const struct tuf_writer_role_keys *keys)
{
    struct role *root, *target;
    cJSON *work = NULL, *ids = NULL, *kobj, *roles, *ro;
    char what[64];
    enum posgate_err err = usable(w, role, &target);

    if (err != POSGATE_OK) {
        return err;
    }
    if (!is_top(role)) {
        return fail(w, POSGATE_ERR_INVALID,
                    "expected a top-level role (root, timestamp, snapshot, targets), found \"%s\"; "
                    "use tuf_writer_delegate for delegated roles",
                    role);
    }
    root = find_role(w, "root");
    /* Edit a copy so that a refused key set leaves the working root as it was. */
    work = cJSON_Duplicate(root->work, 1);
    if (work == NULL) {
        return POSGATE_ERR_NOMEM;
    }
    kobj = cJSON_GetObjectItemCaseSensitive(work, "keys");
    roles = cJSON_GetObjectItemCaseSensitive(work, "roles");
    ro = cJSON_GetObjectItemCaseSensitive(roles, role);
    if (!cJSON_IsObject(kobj) || !cJSON_IsObject(ro)) {
        err = fail(w, POSGATE_ERR_CORRUPT, "working root lacks keys or the %s role", role);
        goto out;
    }
    snprintf(what, sizeof(what), "%s role", role);
    err = build_keyset(w, what, keys, kobj, &ids);
    if (err == POSGATE_OK) {
        err = obj_set(ro, "keyids", ids);
        ids = NULL;
    }
    if (err == POSGATE_OK) {
        err = obj_set_int(ro, "threshold", (int64_t)keys->threshold);
    }
    if (err != POSGATE_OK) {
        goto out;
    }
    prune_keys(kobj, roles);
    cJSON_Delete(root->work);
    root->work = work;
    work = NULL;
    root->dirty = 1;
    /* The role's current metadata is signed by keys the new root no longer trusts. */
    target->dirty = 1;
out:
    cJSON_Delete(ids);
    cJSON_Delete(work);
    return err;
}

/* The delegation entry for name in any targets-type role's working copy, and its delegator. */
static cJSON *
find_delegation(const struct tuf_writer *w, const char *name, struct role **delegator)
{
    for (size_t i = 0; i < w->nroles; i++) {
        struct role *r = &w->roles[i];
        cJSON *roles, *d;

        if (!is_targets_type(r->name) || r->work == NULL) {
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
    err = usable(w, d->delegator, &parent);
    if (err != POSGATE_OK) {
        return err;
    }
    if (!is_targets_type(parent->name)) {
        return fail(w, POSGATE_ERR_INVALID,
                    "expected \"targets\" or a delegated role as delegator, found \"%s\"",
                    parent->name);
    }
    if (!valid_role_name(d->name)) {
        return fail(w, POSGATE_ERR_INVALID,
                    "expected a delegated role name of 1 to %d characters [A-Za-z0-9._-], not a "
                    "top-level name, found \"%.80s\"",
                    TUF_WRITER_ROLE_MAX, d->name);
    }
    if (find_delegation(w, d->name, &other) != NULL && other != parent) {
        return fail(w, POSGATE_ERR_INVALID, "role %s is already delegated by %s, not by %s",
                    d->name, other->name, parent->name);
    }
    if (d->path_count == 0 || d->paths == NULL) {
        return fail(w, POSGATE_ERR_INVALID,
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
            err =
                fail(w, POSGATE_ERR_INVALID,
                     "delegation %s: path pattern %zu is empty, NULL or too long", d->name, i + 1);
            goto out;
        }
        err = arr_add(paths, cJSON_CreateString(d->paths[i]));
        if (err != POSGATE_OK) {
            goto out;
        }
    }
    dele = cJSON_GetObjectItemCaseSensitive(work, "delegations");
    if (dele == NULL) {
        dele = cJSON_CreateObject();
        err = obj_set(work, "delegations", dele);
        if (err == POSGATE_OK) {
            err = obj_set(dele, "keys", cJSON_CreateObject());
        }
        if (err == POSGATE_OK) {
            err = obj_set(dele, "roles", cJSON_CreateArray());
        }
        if (err != POSGATE_OK) {
            goto out;
        }
    }
    kobj = cJSON_GetObjectItemCaseSensitive(dele, "keys");
    roles = cJSON_GetObjectItemCaseSensitive(dele, "roles");
    if (!cJSON_IsObject(kobj) || !cJSON_IsArray(roles)) {
        err = fail(w, POSGATE_ERR_CORRUPT, "role %s: malformed delegations", parent->name);
        goto out;
    }
    snprintf(what, sizeof(what), "delegation %s", d->name);
    err = build_keyset(w, what, &d->keys, kobj, &ids);
    if (err == POSGATE_OK) {
        err = obj_set_str(entry, "name", d->name);
    }
    if (err == POSGATE_OK) {
        err = obj_set(entry, "keyids", ids);
        ids = NULL;
    }
    if (err == POSGATE_OK) {
        err = obj_set_int(entry, "threshold", (int64_t)d->keys.threshold);
    }
    if (err == POSGATE_OK) {
        err = obj_set(entry, "terminating", cJSON_CreateBool(d->terminating != 0));
    }
    if (err == POSGATE_OK) {
        err = obj_set(entry, "paths", paths);
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
    prune_keys(kobj, roles);
    child = find_role(w, d->name);
    if (child == NULL) {
        char pname[TUF_WRITER_ROLE_MAX + 1];

        snprintf(pname, sizeof(pname), "%s", parent->name);
        err = add_role(w, d->name, &child);
        parent = find_role(w, pname); /* add_role may move the role array */
        if (err != POSGATE_OK) {
            goto out;
        }
        child->work = new_targets_body();
        if (child->work == NULL) {
            w->nroles--;
            role_cleanup(child);
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

        if (!is_targets_type(w->roles[i].name) || w->roles[i].work == NULL) {
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
    err = consistent_name(name, sha_hex, cname, sizeof(cname));
    if (err == POSGATE_OK) {
        err = state_path(w, path, sizeof(path), "targets/%s", cname);
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

    err = usable(w, delegator, &parent);
    if (err != POSGATE_OK) {
        return err;
    }
    if (name == NULL) {
        return POSGATE_ERR_INVALID;
    }
    entry = find_delegation(w, name, &owner);
    child = find_role(w, name);
    if (entry == NULL || owner != parent || child == NULL) {
        return fail(w, POSGATE_ERR_NOTFOUND,
                    "expected %s to delegate to %s, found no such "
                    "delegation",
                    parent->name, name);
    }
    if (cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(
            cJSON_GetObjectItemCaseSensitive(child->work, "delegations"), "roles")) > 0) {
        return fail(w, POSGATE_ERR_STATE,
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
    prune_keys(cJSON_GetObjectItemCaseSensitive(
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
        role_cleanup(child);
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
static int
is_retired(const struct tuf_writer *w, const struct role *r)
{
    return !is_top(r->name) && find_delegation(w, r->name, NULL) == NULL;
}

/* ---- targets ----------------------------------------------------------------------------- */

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
    enum posgate_err err = usable(w, role, out);

    if (err != POSGATE_OK) {
        return err;
    }
    if (!is_targets_type(role)) {
        return fail(w, POSGATE_ERR_INVALID,
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
    split_name(name, dir, sizeof(dir), &base);
    err = state_path(w, path, sizeof(path), "targets/%s", dir);
    if (err == POSGATE_OK) {
        err = plat_mkdir_p(path, 0700);
    }
    if (err != POSGATE_OK) {
        return fail(w, err, "cannot create %s", path);
    }
    f = fopen(src, "rb");
    if (f == NULL) {
        return fail(w, errno == ENOENT ? POSGATE_ERR_NOTFOUND : POSGATE_ERR_IO,
                    "cannot open target file %s: %s", src, strerror(errno));
    }
    chunk = plat_malloc(COPY_CHUNK);
    err = chunk == NULL ? POSGATE_ERR_NOMEM : crypto_hash_stream_new(&hs);
    if (err == POSGATE_OK) {
        err =
            state_path(w, path, sizeof(path), "targets/%s%s.incoming", dir, dir[0] != 0 ? "/" : "");
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
                err = fail(w, POSGATE_ERR_IO, "cannot read target file %s", src);
            }
            break;
        }
    }
    if (err != POSGATE_OK) {
        goto out;
    }
    crypto_hash_stream_finish(hs, h256, h512);
    crypto_hex(h256, sizeof(h256), sha_hex);
    err = consistent_name(name, sha_hex, cname, sizeof(cname));
    if (err == POSGATE_OK) {
        err = state_path(w, path, sizeof(path), "targets/%s", cname);
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
        err = fail(w, err, "cannot store target content as %s", path);
    }
    *length = total;
out:
    if (err != POSGATE_OK && w->errmsg[0] == 0) {
        err = fail(w, err, "cannot store target %s from %s: %s", name, src, posgate_strerror(err));
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
        return fail(w, POSGATE_ERR_INVALID,
                    "expected a target name of '/'-separated segments (no empty, \".\" or \"..\" "
                    "segment, no control character, at most %d bytes), found \"%.100s\"",
                    NAME_MAX_LEN, name != NULL ? name : "(null)");
    }
    if (strcmp(role, "targets") != 0) {
        const cJSON *d = find_delegation(w, role, NULL), *p;
        int ok = 0;

        cJSON_ArrayForEach(p, cJSON_GetObjectItemCaseSensitive(d, "paths"))
        {
            if (cJSON_IsString(p) && path_matches(p->valuestring, name)) {
                ok = 1;
            }
        }
        if (!ok) {
            return fail(w, POSGATE_ERR_INVALID,
                        "target %s is outside the paths delegated to role %s", name, role);
        }
    }
    if (custom_json != NULL) {
        err = json_parse_bounded(custom_json, strlen(custom_json), TUF_WRITER_CUSTOM_MAX, &custom,
                                 emsg, sizeof(emsg));
        if (err != POSGATE_OK) {
            return fail(w, POSGATE_ERR_INVALID, "custom of target %s: %s", name, emsg);
        }
        if (!cJSON_IsObject(custom)) {
            cJSON_Delete(custom);
            return fail(w, POSGATE_ERR_INVALID,
                        "custom of target %s: expected a JSON object, found another value", name);
        }
        {
            struct buf canon = BUF_INIT(TUF_WRITER_CUSTOM_MAX * 2);

            err = json_canon_encode(custom, &canon);
            buf_free(&canon);
        }
        if (err != POSGATE_OK) {
            cJSON_Delete(custom);
            return fail(w, POSGATE_ERR_INVALID,
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
        err = obj_set(entry, "custom", custom);
        custom = NULL;
    }
    if (err == POSGATE_OK) {
        err = obj_set(entry, "hashes", hashes);
    } else {
        cJSON_Delete(hashes);
    }
    if (err == POSGATE_OK) {
        err = obj_set_str(hashes, "sha256", sha);
    }
    if (err == POSGATE_OK) {
        err = obj_set_int(entry, "length", (int64_t)length);
    }
    if (err != POSGATE_OK) {
        goto out;
    }
    targets = cJSON_GetObjectItemCaseSensitive(r->work, "targets");
    if (!cJSON_IsObject(targets)) {
        err = fail(w, POSGATE_ERR_CORRUPT, "role %s: working copy lacks targets", role);
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
    err = obj_set(targets, name, entry);
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
        return fail(w, POSGATE_ERR_NOTFOUND, "role %s does not list target %s", role, name);
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
            err = fail(w, POSGATE_ERR_CORRUPT, "role %s: target %s lacks length or sha256", role,
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
            err = consistent_name(info.name, info.sha256_hex, cname, sizeof(cname));
        }
        if (err == POSGATE_OK) {
            err = state_path(w, path, sizeof(path), "targets/%s", cname);
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

/* ---- signing ----------------------------------------------------------------------------- */

struct keyset {
    const cJSON *keyids;
    int64_t threshold;
    const char *what;
};

/* The key sets whose thresholds a signing of r must meet (root: new and old). */
static enum posgate_err
role_keysets(struct tuf_writer *w, const struct role *r, const cJSON *body, struct keyset sets[2],
             size_t *n)
{
    const cJSON *ro = NULL;
    int64_t thr;

    *n = 0;
    if (strcmp(r->name, "root") == 0 || is_top(r->name)) {
        const struct role *root = find_role(w, "root");
        const cJSON *rb = strcmp(r->name, "root") == 0 ? body : root->work;

        ro = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(rb, "roles"),
                                              r->name);
    } else {
        ro = find_delegation(w, r->name, NULL);
        if (ro == NULL) {
            return fail(w, POSGATE_ERR_STATE, "role %s is not delegated by any role", r->name);
        }
    }
    if (json_get_int(ro, "threshold", 1, TUF_WRITER_MAX_KEYS, &thr) != POSGATE_OK) {
        return fail(w, POSGATE_ERR_CORRUPT, "role %s: expected keyids and a threshold, found none",
                    r->name);
    }
    sets[0].keyids = cJSON_GetObjectItemCaseSensitive(ro, "keyids");
    sets[0].threshold = thr;
    sets[0].what = strcmp(r->name, "root") == 0 ? "new root keys" : "its keys";
    *n = 1;
    if (strcmp(r->name, "root") == 0 && r->signed_env != NULL) {
        const cJSON *old = cJSON_GetObjectItemCaseSensitive(
            cJSON_GetObjectItemCaseSensitive(
                cJSON_GetObjectItemCaseSensitive(r->signed_env, "signed"), "roles"),
            "root");

        if (json_get_int(old, "threshold", 1, TUF_WRITER_MAX_KEYS, &thr) != POSGATE_OK) {
            return fail(w, POSGATE_ERR_CORRUPT, "the signed root lacks a root role");
        }
        sets[1].keyids = cJSON_GetObjectItemCaseSensitive(old, "keyids");
        sets[1].threshold = thr;
        sets[1].what = "old root keys";
        *n = 2;
    }
    return POSGATE_OK;
}

/* Chooses keyring keys for r (indices into kr); BADSIG when a threshold cannot be met. */
static enum posgate_err
choose_signers(struct tuf_writer *w, const struct role *r, const cJSON *body,
               const struct keyring *kr, size_t *chosen, size_t *nchosen)
{
    struct keyset sets[2];
    size_t nsets = 0;
    enum posgate_err err = role_keysets(w, r, body, sets, &nsets);

    *nchosen = 0;
    if (err != POSGATE_OK) {
        return err;
    }
    for (size_t i = 0; i < kr->count; i++) {
        int wanted = 0, dup = 0;

        for (size_t s = 0; s < nsets; s++) {
            wanted |= str_in_array(sets[s].keyids, kr->ids[i]);
        }
        for (size_t j = 0; j < *nchosen; j++) {
            dup |= strcmp(kr->ids[chosen[j]], kr->ids[i]) == 0;
        }
        if (wanted && !dup) {
            chosen[(*nchosen)++] = i;
        }
    }
    for (size_t s = 0; s < nsets; s++) {
        int64_t have = 0;

        for (size_t j = 0; j < *nchosen; j++) {
            have += str_in_array(sets[s].keyids, kr->ids[chosen[j]]);
        }
        if (have < sets[s].threshold) {
            return fail(w, POSGATE_ERR_BADSIG,
                        "role %s needs %lld signatures from %s (threshold), the keyring holds "
                        "%lld of them",
                        r->name, (long long)sets[s].threshold, sets[s].what, (long long)have);
        }
    }
    return POSGATE_OK;
}

/* Signs body with keys and builds the envelope and its file bytes. */
static enum posgate_err
make_envelope(const cJSON *body, cJSON *sigs, struct crypto_privkey *const *keys, size_t n,
              cJSON **env_out, struct buf *bytes)
{
    struct buf canon = BUF_INIT(META_MAX);
    struct buf sig = BUF_INIT(CRYPTO_SIG_MAX);
    char hex[1100], id[TUF_WRITER_KEYID_LEN + 1];
    cJSON *env = NULL;
    enum posgate_err err;

    *env_out = NULL;
    err = json_canon_encode(body, &canon);
    for (size_t i = 0; i < n && err == POSGATE_OK; i++) {
        cJSON *s;

        buf_reset(&sig);
        err = tuf_writer_keyid(keys[i], id);
        if (err == POSGATE_OK) {
            err = crypto_privkey_sign(keys[i], canon.data, canon.len, &sig);
        }
        if (err == POSGATE_OK && sig.len * 2 + 1 > sizeof(hex)) {
            err = POSGATE_ERR_TOOBIG;
        }
        if (err != POSGATE_OK) {
            break;
        }
        crypto_hex(sig.data, sig.len, hex);
        s = cJSON_CreateObject();
        err = arr_add(sigs, s);
        if (err == POSGATE_OK) {
            err = obj_set_str(s, "keyid", id);
        }
        if (err == POSGATE_OK) {
            err = obj_set_str(s, "sig", hex);
        }
    }
    if (err != POSGATE_OK) {
        cJSON_Delete(sigs);
        goto out;
    }
    env = cJSON_CreateObject();
    if (env == NULL) {
        cJSON_Delete(sigs);
        err = POSGATE_ERR_NOMEM;
        goto out;
    }
    err = obj_set(env, "signatures", sigs);
    if (err == POSGATE_OK) {
        err = obj_set(env, "signed", cJSON_Duplicate(body, 1));
    }
    if (err == POSGATE_OK) {
        buf_reset(bytes);
        err = print_json(env, bytes);
    }
    if (err == POSGATE_OK) {
        *env_out = env;
        env = NULL;
    }
out:
    cJSON_Delete(env);
    buf_free(&canon);
    buf_free(&sig);
    return err;
}

/*
 * Signs r's working body as its next version. check_only: only verifies that the keyring can
 * meet the thresholds (nothing changes). Otherwise r takes the new signed file; on a failure
 * after that point the writer is marked failed.
 */
static enum posgate_err
sign_one(struct tuf_writer *w, struct role *r, const struct keyring *kr, int check_only)
{
    cJSON *body = NULL, *env = NULL;
    struct crypto_privkey **keys = NULL;
    size_t *chosen = NULL, nchosen = 0, nkeys;
    struct buf bytes = BUF_INIT(META_MAX);
    char when[40];
    int64_t version, expires;
    enum posgate_err err;

    if (r->work == NULL) {
        return fail(w, POSGATE_ERR_STATE, "role %s has nothing to sign", r->name);
    }
    body = cJSON_Duplicate(r->work, 1);
    if (body == NULL) {
        return POSGATE_ERR_NOMEM;
    }
    version = r->next_version > 0 ? r->next_version : r->signed_version + 1;
    expires = r->has_next_expires ? r->next_expires : writer_now(w) + default_lifetime(w, r);
    plat_time_format(expires, when, sizeof(when));
    err = obj_set_int(body, "version", version);
    if (err == POSGATE_OK) {
        err = obj_set_str(body, "expires", when);
    }
    if (err == POSGATE_OK && (strcmp(r->name, "timestamp") == 0 || !is_top(r->name))) {
        /* the signed issue time kiosks count data age from (TUF_ISSUED_FIELD): the timestamp's
         * vouches for the operator's lists, a delegated role's for its authority's list */
        char t[32];

        plat_time_format(writer_now(w), t, sizeof(t));
        err = obj_set_str(body, TUF_ISSUED_FIELD, t);
    }
    if (err != POSGATE_OK) {
        goto out;
    }
    if (r->has_signers) {
        nkeys = r->signer_count;
        keys = plat_calloc(nkeys + 1, sizeof(*keys));
        if (keys == NULL) {
            err = POSGATE_ERR_NOMEM;
            goto out;
        }
        for (size_t i = 0; i < nkeys; i++) {
            keys[i] = r->signers[i];
        }
    } else {
        chosen = plat_calloc(kr->count + 1, sizeof(*chosen));
        if (chosen == NULL) {
            err = POSGATE_ERR_NOMEM;
            goto out;
        }
        err = choose_signers(w, r, body, kr, chosen, &nchosen);
        if (err != POSGATE_OK) {
            goto out;
        }
        nkeys = nchosen;
        keys = plat_calloc(nkeys + 1, sizeof(*keys));
        if (keys == NULL) {
            err = POSGATE_ERR_NOMEM;
            goto out;
        }
        for (size_t i = 0; i < nkeys; i++) {
            keys[i] = kr->keys[chosen[i]];
        }
    }
    if (check_only) {
        goto out;
    }
    {
        cJSON *sigs = cJSON_CreateArray();

        if (sigs == NULL) {
            err = POSGATE_ERR_NOMEM;
            goto out;
        }
        err = make_envelope(body, sigs, keys, nkeys, &env, &bytes);
    }
    if (err != POSGATE_OK) {
        goto out;
    }
    buf_reset(&r->signed_bytes);
    err = buf_append(&r->signed_bytes, bytes.data, bytes.len);
    if (err != POSGATE_OK) {
        w->failed = 1;
        goto out;
    }
    cJSON_Delete(r->signed_env);
    r->signed_env = env;
    env = NULL;
    cJSON_Delete(r->work);
    r->work = body;
    body = NULL;
    r->signed_version = version;
    r->signed_changed = 1;
    r->dirty = 0;
    r->next_version = 0;
    r->has_next_expires = 0;
    r->has_signers = 0;
    r->signers = NULL;
    r->signer_count = 0;
out:
    cJSON_Delete(body);
    cJSON_Delete(env);
    plat_free(keys);
    plat_free(chosen);
    buf_free(&bytes);
    return err;
}

static enum posgate_err
keyring_init(struct tuf_writer *w, struct keyring *kr, struct crypto_privkey *const *keys,
             size_t count)
{
    kr->keys = keys;
    kr->count = count;
    kr->ids = NULL;
    if (count > 0 && keys == NULL) {
        return fail(w, POSGATE_ERR_INVALID, "expected %zu keyring keys, found NULL", count);
    }
    kr->ids = plat_calloc(count + 1, sizeof(*kr->ids));
    if (kr->ids == NULL) {
        return POSGATE_ERR_NOMEM;
    }
    for (size_t i = 0; i < count; i++) {
        enum posgate_err err = tuf_writer_keyid(keys[i], kr->ids[i]);

        if (err != POSGATE_OK) {
            return fail(w, err, "keyring key %zu: cannot compute its keyid", i + 1);
        }
    }
    return POSGATE_OK;
}

enum posgate_err
tuf_writer_sign_role(struct tuf_writer *w, const char *role, struct crypto_privkey *const *keyring,
                     size_t count)
{
    struct role *r;
    struct keyring kr = {NULL, 0, NULL};
    enum posgate_err err = usable(w, role, &r);

    if (err != POSGATE_OK) {
        return err;
    }
    if (!is_targets_type(role) && strcmp(role, "root") != 0) {
        return fail(w, POSGATE_ERR_INVALID,
                    "expected root or a targets role, found %s (signed by publish)", role);
    }
    if (!r->dirty) {
        return fail(w, POSGATE_ERR_STATE, "role %s has no changes to sign", role);
    }
    err = keyring_init(w, &kr, keyring, count);
    if (err == POSGATE_OK) {
        err = sign_one(w, r, &kr, 0);
    }
    if (err == POSGATE_OK) {
        err = save_state(w);
    }
    plat_free(kr.ids);
    return err;
}

/* ---- snapshot, timestamp, output --------------------------------------------------------- */

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
    err = obj_set_int(m, "version", r->signed_version);
    if (err == POSGATE_OK && with_hashes) {
        crypto_sha256(r->signed_bytes.data, r->signed_bytes.len, d);
        crypto_hex(d, sizeof(d), hex);
        err = obj_set_int(m, "length", (int64_t)r->signed_bytes.len);
        h = cJSON_CreateObject();
        if (err == POSGATE_OK) {
            err = obj_set(m, "hashes", h);
        } else {
            cJSON_Delete(h);
        }
        if (err == POSGATE_OK) {
            err = obj_set_str(h, "sha256", hex);
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
    struct role *s = find_role(w, "snapshot");
    cJSON *body = new_body("snapshot"), *meta = cJSON_CreateObject();
    struct buf a = BUF_INIT(META_MAX), b = BUF_INIT(META_MAX);
    enum posgate_err err = POSGATE_OK;

    *out = NULL;
    if (body == NULL || meta == NULL) {
        cJSON_Delete(meta);
        err = POSGATE_ERR_NOMEM;
        goto out;
    }
    err = obj_set(body, "meta", meta);
    for (size_t i = 0; i < w->nroles && err == POSGATE_OK; i++) {
        struct role *r = &w->roles[i];
        char key[TUF_WRITER_ROLE_MAX + 8];
        cJSON *m;

        if (!is_targets_type(r->name)) {
            continue;
        }
        snprintf(key, sizeof(key), "%s.json", r->name);
        err = meta_entry(w, r, w->snapshot_hashes, &m);
        if (err == POSGATE_OK) {
            err = obj_set(meta, key, m);
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
    struct role *s = find_role(w, "snapshot");
    cJSON *body = new_body("timestamp"), *meta = cJSON_CreateObject(), *m = NULL;
    enum posgate_err err;

    *out = NULL;
    if (body == NULL || meta == NULL) {
        cJSON_Delete(body);
        cJSON_Delete(meta);
        return POSGATE_ERR_NOMEM;
    }
    err = obj_set(body, "meta", meta);
    if (err == POSGATE_OK) {
        err = meta_entry(w, s, 1, &m);
    }
    if (err == POSGATE_OK) {
        err = obj_set(meta, "snapshot.json", m);
    }
    if (err != POSGATE_OK) {
        cJSON_Delete(body);
        return err;
    }
    *out = body;
    return POSGATE_OK;
}

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
    return err == POSGATE_OK ? err : fail(w, err, "cannot write %s", path);
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
    err = consistent_name(name, sha, cname, sizeof(cname));
    if (err == POSGATE_OK) {
        err = state_path(w, src, sizeof(src), "targets/%s", cname);
    }
    if (err == POSGATE_OK && snprintf(rel, sizeof(rel), "targets/%s", cname) >= (int)sizeof(rel)) {
        err = POSGATE_ERR_TOOBIG;
    }
    if (err == POSGATE_OK) {
        err = plat_path_join(dst, sizeof(dst), out_dir, rel);
    }
    if (err != POSGATE_OK) {
        return fail(w, err, "target %s: path too long", name);
    }
    if (plat_file_size(dst, &have) == POSGATE_OK && have == length) {
        return POSGATE_OK; /* the name carries the hash */
    }
    split_name(dst, dir, sizeof(dir), &base);
    err = plat_mkdir_p(dir, 0755);
    if (err != POSGATE_OK) {
        return fail(w, err, "cannot create %s", dir);
    }
    f = fopen(src, "rb");
    if (f == NULL) {
        return fail(w, errno == ENOENT ? POSGATE_ERR_NOTFOUND : POSGATE_ERR_IO,
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
                err = fail(w, POSGATE_ERR_IO, "cannot read %s", src);
            }
            break;
        }
    }
    if (err == POSGATE_OK && total != length) {
        err = fail(w, POSGATE_ERR_CORRUPT,
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
        err = fail(w, err, "cannot copy target %s to %s: %s", name, dst, posgate_strerror(err));
    }
    return err;
}

static enum posgate_err
write_repository(struct tuf_writer *w, const char *out_dir)
{
    char mdir[PATH_CAP], path[PATH_CAP], rel[PATH_CAP];
    struct buf tmp = BUF_INIT(META_MAX);
    struct role *root = find_role(w, "root"), *snap = find_role(w, "snapshot");
    enum posgate_err err;

    err = plat_path_join(mdir, sizeof(mdir), out_dir, "metadata");
    if (err == POSGATE_OK) {
        err = plat_mkdir_p(mdir, 0755);
    }
    if (err != POSGATE_OK) {
        return fail(w, err, "cannot create %s/metadata", out_dir);
    }
    /* 1. target files */
    for (size_t i = 0; i < w->nroles && err == POSGATE_OK; i++) {
        const cJSON *t;

        if (!is_targets_type(w->roles[i].name) || is_retired(w, &w->roles[i])) {
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
                err = fail(w, POSGATE_ERR_CORRUPT, "role %s: target %s lacks length or sha256",
                           w->roles[i].name, t->string);
                break;
            }
            err = copy_target(w, out_dir, t->string, h->valuestring, (uint64_t)len);
        }
    }
    /* 2. the root chain, from the state's history */
    for (int64_t v = 1; v <= root->signed_version && err == POSGATE_OK; v++) {
        err = state_path(w, path, sizeof(path), "roots/%lld.root.json", (long long)v);
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

        if (!is_targets_type(r->name)) {
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
        err = write_if_differs(w, path, &find_role(w, "timestamp")->signed_bytes);
    }
    buf_free(&tmp);
    if (err != POSGATE_OK && w->errmsg[0] == 0) {
        err = fail(w, err, "cannot write the repository in %s: %s", out_dir, posgate_strerror(err));
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

    if (snprintf(path, sizeof(path), "%s/metadata/timestamp.json", out_dir) >=
            (int)sizeof(path) ||
        plat_read_file(path, &raw) != POSGATE_OK ||
        tuf_meta_parse(raw.data, raw.len, TUF_ROLE_TIMESTAMP, &m, msg, sizeof(msg)) !=
            POSGATE_OK) {
        goto out;
    }
    if (m->version > next) {
        err = fail(w, POSGATE_ERR_ROLLBACK,
                   "timestamp version %lld would go back from version %lld already in %s: "
                   "refused (the state is older than the feed it wrote)",
                   (long long)next, (long long)m->version, path);
    }
out:
    tuf_meta_free(m);
    buf_free(&raw);
    return err;
}

enum posgate_err
tuf_writer_publish(struct tuf_writer *w, const char *out_dir, struct crypto_privkey *const *keyring,
                   size_t count)
{
    struct keyring kr = {NULL, 0, NULL};
    struct role *snap, *ts;
    cJSON *body = NULL;
    int changed = 0, explicit_ts = 0;
    enum posgate_err err = usable(w, NULL, NULL);

    if (err != POSGATE_OK) {
        return err;
    }
    if (out_dir == NULL || out_dir[0] == 0) {
        return fail(w, POSGATE_ERR_INVALID, "expected an output directory, found none");
    }
    err = keyring_init(w, &kr, keyring, count);
    if (err != POSGATE_OK) {
        goto out;
    }
    /* Check every signing first, so that a missing key changes nothing. */
    for (size_t i = 0; i < w->nroles && err == POSGATE_OK; i++) {
        struct role *r = &w->roles[i];

        if (r->dirty && (is_targets_type(r->name) || strcmp(r->name, "root") == 0)) {
            err = sign_one(w, r, &kr, 1);
        }
    }
    for (size_t i = 0; i < 2 && err == POSGATE_OK; i++) {
        struct role *r = find_role(w, top_roles[i + 1]);

        if (!r->has_signers) {
            /* timestamp and snapshot keys come from the working root */
            cJSON *saved = r->work;
            cJSON *probe = new_body(r->name);

            r->work = probe;
            err = probe == NULL ? POSGATE_ERR_NOMEM : sign_one(w, r, &kr, 1);
            r->work = saved;
            cJSON_Delete(probe);
        }
    }
    if (err != POSGATE_OK) {
        goto out;
    }
    /* Root first: the other roles are signed under the keys it names. */
    if (find_role(w, "root")->dirty) {
        err = sign_one(w, find_role(w, "root"), &kr, 0);
    }
    for (size_t i = 0; i < w->nroles && err == POSGATE_OK; i++) {
        struct role *r = &w->roles[i];

        if (r->dirty && is_targets_type(r->name)) {
            err = sign_one(w, r, &kr, 0);
        }
    }
    snap = find_role(w, "snapshot");
    if (err == POSGATE_OK) {
        err = build_snapshot(w, &body, &changed);
    }
    if (err == POSGATE_OK && (changed || snap->dirty || snap->signed_env == NULL)) {
        cJSON_Delete(snap->work);
        snap->work = body;
        body = NULL;
        err = sign_one(w, snap, &kr, 0);
    }
    ts = find_role(w, "timestamp");
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
        err = sign_one(w, ts, &kr, 0);
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
    err = save_state(w);
    if (err == POSGATE_OK) {
        err = write_repository(w, out_dir);
    }
out:
    cJSON_Delete(body);
    plat_free(kr.ids);
    return err;
}

enum posgate_err
tuf_writer_sign_file(const char *path, struct crypto_privkey *const *keys, size_t count, int append)
{
    struct buf raw = BUF_INIT(META_MAX), bytes = BUF_INIT(META_MAX);
    cJSON *env = NULL, *out_env = NULL, *sigs;
    const cJSON *body, *old;
    char emsg[200];
    enum posgate_err err;

    if (path == NULL || (count > 0 && keys == NULL)) {
        return POSGATE_ERR_INVALID;
    }
    err = plat_read_file(path, &raw);
    if (err == POSGATE_OK) {
        err = json_parse_bounded(raw.data, raw.len, META_MAX, &env, emsg, sizeof(emsg));
    }
    if (err != POSGATE_OK) {
        goto out;
    }
    body = cJSON_GetObjectItemCaseSensitive(env, "signed");
    old = cJSON_GetObjectItemCaseSensitive(env, "signatures");
    if (!cJSON_IsObject(body)) {
        err = POSGATE_ERR_PARSE;
        goto out;
    }
    sigs = append && cJSON_IsArray(old) ? cJSON_Duplicate(old, 1) : cJSON_CreateArray();
    if (sigs == NULL) {
        err = POSGATE_ERR_NOMEM;
        goto out;
    }
    err = make_envelope(body, sigs, keys, count, &out_env, &bytes);
    if (err == POSGATE_OK) {
        err = plat_write_atomic(path, bytes.data, bytes.len, 0644);
    }
out:
    cJSON_Delete(env);
    cJSON_Delete(out_env);
    buf_free(&raw);
    buf_free(&bytes);
    return err;
}

/* ---- threshold signing across machines, key lists, root records ---------------------------- */

void
tuf_writer_key_list_cleanup(struct tuf_writer_key_list *l)
{
    if (l == NULL) {
        return;
    }
    for (size_t i = 0; i < l->count; i++) {
        plat_free(l->pems[i]);
    }
    memset(l, 0, sizeof(*l));
}

/* Fills l from a keyids array, a keys object and a threshold. */
static enum posgate_err
key_list_fill(struct tuf_writer *w, const char *what, const cJSON *keyids, const cJSON *keys,
              const cJSON *holder, struct tuf_writer_key_list *l)
{
    const cJSON *id;
    int64_t thr;

    memset(l, 0, sizeof(*l));
    if (json_get_int(holder, "threshold", 1, TUF_WRITER_MAX_KEYS, &thr) != POSGATE_OK ||
        !cJSON_IsArray(keyids)) {
        return fail(w, POSGATE_ERR_CORRUPT, "%s: expected keyids and a threshold, found none",
                    what);
    }
    l->threshold = (unsigned)thr;
    cJSON_ArrayForEach(id, keyids)
    {
        const cJSON *pub = NULL;

        if (cJSON_IsString(id)) {
            pub = cJSON_GetObjectItemCaseSensitive(
                cJSON_GetObjectItemCaseSensitive(
                    cJSON_GetObjectItemCaseSensitive(keys, id->valuestring), "keyval"),
                "public");
        }
        if (!cJSON_IsString(pub) || l->count == TUF_WRITER_MAX_KEYS) {
            tuf_writer_key_list_cleanup(l);
            return fail(w, POSGATE_ERR_CORRUPT,
                        "%s: expected a public key for each keyid, found "
                        "a keyid without one (or more than %d keys)",
                        what, TUF_WRITER_MAX_KEYS);
        }
        l->pems[l->count] = plat_strdup(pub->valuestring);
        if (l->pems[l->count] == NULL) {
            tuf_writer_key_list_cleanup(l);
            return POSGATE_ERR_NOMEM;
        }
        l->count++;
    }
    return POSGATE_OK;
}

enum posgate_err
tuf_writer_get_role_keys(struct tuf_writer *w, const char *role, struct tuf_writer_key_list *out)
{
    struct role *r;
    const cJSON *ro, *keys;
    enum posgate_err err = usable(w, role, &r);

    if (err != POSGATE_OK || out == NULL) {
        return err != POSGATE_OK ? err : POSGATE_ERR_INVALID;
    }
    if (is_top(role)) {
        const struct role *root = find_role(w, "root");

        ro = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(root->work, "roles"),
                                              role);
        keys = cJSON_GetObjectItemCaseSensitive(root->work, "keys");
    } else {
        struct role *delegator = NULL;

        ro = find_delegation(w, role, &delegator);
        if (ro == NULL) {
            return fail(w, POSGATE_ERR_NOTFOUND, "role %s is not delegated by any role", role);
        }
        keys = cJSON_GetObjectItemCaseSensitive(
            cJSON_GetObjectItemCaseSensitive(delegator->work, "delegations"), "keys");
    }
    return key_list_fill(w, role, cJSON_GetObjectItemCaseSensitive(ro, "keyids"), keys, ro, out);
}

enum posgate_err
tuf_writer_get_root_field(struct tuf_writer *w, const char *field, struct buf *out)
{
    struct role *root;
    const cJSON *v;
    enum posgate_err err = usable(w, "root", &root);

    if (err != POSGATE_OK || field == NULL || out == NULL) {
        return err != POSGATE_OK ? err : POSGATE_ERR_INVALID;
    }
    v = cJSON_GetObjectItemCaseSensitive(root->work, field);
    if (v == NULL) {
        return POSGATE_ERR_NOTFOUND;
    }
    buf_reset(out);
    return json_canon_encode(v, out);
}

enum posgate_err
tuf_writer_set_root_field(struct tuf_writer *w, const char *field, const char *json)
{
    struct role *root;
    cJSON *v = NULL;
    char emsg[200];
    enum posgate_err err = usable(w, "root", &root);

    if (err != POSGATE_OK || field == NULL || json == NULL) {
        return err != POSGATE_OK ? err : POSGATE_ERR_INVALID;
    }
    if (strncmp(field, "x-", 2) != 0) {
        return fail(w, POSGATE_ERR_INVALID,
                    "expected a root field of our own (\"x-...\"), found \"%s\"", field);
    }
    err = json_parse_bounded(json, strlen(json), META_MAX, &v, emsg, sizeof(emsg));
    if (err != POSGATE_OK) {
        return fail(w, POSGATE_ERR_INVALID, "root field %s: %s", field, emsg);
    }
    err = obj_set(root->work, field, v);
    if (err == POSGATE_OK) {
        root->dirty = 1;
    }
    return err;
}

/* The next body of r (version and expires filled in), as sign_one would sign it. */
static enum posgate_err
next_body(struct tuf_writer *w, struct role *r, int64_t expires, cJSON **out)
{
    char when[40];
    int64_t version;
    cJSON *body;
    enum posgate_err err;

    *out = NULL;
    if (r->work == NULL) {
        return fail(w, POSGATE_ERR_STATE, "role %s has nothing to sign", r->name);
    }
    body = cJSON_Duplicate(r->work, 1);
    if (body == NULL) {
        return POSGATE_ERR_NOMEM;
    }
    version = r->next_version > 0 ? r->next_version : r->signed_version + 1;
    if (expires == 0) {
        expires = r->has_next_expires ? r->next_expires : writer_now(w) + default_lifetime(w, r);
    }
    plat_time_format(expires, when, sizeof(when));
    err = obj_set_int(body, "version", version);
    if (err == POSGATE_OK) {
        err = obj_set_str(body, "expires", when);
    }
    if (err != POSGATE_OK) {
        cJSON_Delete(body);
        return err;
    }
    *out = body;
    return POSGATE_OK;
}

enum posgate_err
tuf_writer_export_role(struct tuf_writer *w, const char *role, int64_t expires, struct buf *out)
{
    struct role *r;
    cJSON *body = NULL, *env = NULL;
    enum posgate_err err = usable(w, role, &r);

    if (err != POSGATE_OK || out == NULL) {
        return err != POSGATE_OK ? err : POSGATE_ERR_INVALID;
    }
    if (!is_targets_type(role) && strcmp(role, "root") != 0) {
        return fail(w, POSGATE_ERR_INVALID,
                    "expected root or a targets role, found %s (signed at each publication)", role);
    }
    if (!r->dirty) {
        return fail(w, POSGATE_ERR_STATE, "role %s has no changes to sign", role);
    }
    err = next_body(w, r, expires, &body);
    if (err != POSGATE_OK) {
        return err;
    }
    env = cJSON_CreateObject();
    err = env == NULL ? POSGATE_ERR_NOMEM : obj_set(env, "signatures", cJSON_CreateArray());
    if (err == POSGATE_OK) {
        err = obj_set(env, "signed", body);
        body = NULL;
    }
    if (err == POSGATE_OK) {
        buf_reset(out);
        err = print_json(env, out);
    }
    cJSON_Delete(body);
    cJSON_Delete(env);
    return err;
}

/* The scheme of a key object, for verification. */
static int
key_scheme(const cJSON *k, enum crypto_scheme *out)
{
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(k, "scheme");

    if (!cJSON_IsString(s)) {
        return -1;
    }
    if (strcmp(s->valuestring, "ecdsa-sha2-nistp256") == 0) {
        *out = CRYPTO_SCHEME_ECDSA_P256_SHA256;
    } else if (strcmp(s->valuestring, "rsassa-pss-sha256") == 0) {
        *out = CRYPTO_SCHEME_RSA_PSS_SHA256;
    } else {
        return -1;
    }
    return 0;
}

/* Counts the distinct keyids of keyids (keys in keys_obj) with a valid signature in sigs. */
static int64_t
count_valid(const cJSON *keyids, const cJSON *keys_obj, const cJSON *sigs, const struct buf *canon)
{
    const cJSON *s;
    int64_t n = 0;
    struct buf raw = BUF_INIT(1024);

    cJSON_ArrayForEach(s, sigs)
    {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(s, "keyid");
        const cJSON *hex = cJSON_GetObjectItemCaseSensitive(s, "sig");
        const cJSON *k, *pub;
        struct crypto_pubkey *pk = NULL;
        enum crypto_scheme scheme;

        if (!cJSON_IsString(id) || !cJSON_IsString(hex) || !str_in_array(keyids, id->valuestring)) {
            continue;
        }
        k = cJSON_GetObjectItemCaseSensitive(keys_obj, id->valuestring);
        pub = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(k, "keyval"),
                                               "public");
        buf_reset(&raw);
        if (!cJSON_IsString(pub) || key_scheme(k, &scheme) != 0 ||
            crypto_unhex(hex->valuestring, strlen(hex->valuestring), &raw) != POSGATE_OK ||
            crypto_pubkey_from_pem(pub->valuestring, scheme, &pk) != POSGATE_OK) {
            continue;
        }
        if (crypto_pubkey_verify(pk, canon->data, canon->len, raw.data, raw.len) == POSGATE_OK) {
            n++;
        }
        crypto_pubkey_free(pk);
    }
    buf_free(&raw);
    return n;
}

/* Keeps the first signature of each keyid (a key never counts twice). */
static enum posgate_err
dedupe_sigs(const cJSON *sigs, cJSON **out)
{
    const cJSON *s;
    cJSON *res = cJSON_CreateArray(), *seen = cJSON_CreateArray();
    enum posgate_err err = res != NULL && seen != NULL ? POSGATE_OK : POSGATE_ERR_NOMEM;

    cJSON_ArrayForEach(s, sigs)
    {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(s, "keyid");

        if (err != POSGATE_OK) {
            break;
        }
        if (!cJSON_IsString(id) || str_in_array(seen, id->valuestring)) {
            continue;
        }
        err = arr_add(seen, cJSON_CreateString(id->valuestring));
        if (err == POSGATE_OK) {
            err = arr_add(res, cJSON_Duplicate(s, 1));
        }
    }
    cJSON_Delete(seen);
    if (err != POSGATE_OK) {
        cJSON_Delete(res);
        return err;
    }
    *out = res;
    return POSGATE_OK;
}

/* Marks the top-level roles whose keys or threshold differ between two root bodies. */
static void
mark_rotated(struct tuf_writer *w, const cJSON *old_body, const cJSON *new_body)
{
    for (size_t i = 1; i < 4; i++) {
        const cJSON *a = cJSON_GetObjectItemCaseSensitive(
            cJSON_GetObjectItemCaseSensitive(old_body, "roles"), top_roles[i]);
        const cJSON *b = cJSON_GetObjectItemCaseSensitive(
            cJSON_GetObjectItemCaseSensitive(new_body, "roles"), top_roles[i]);

        if (a == NULL || b == NULL || !cJSON_Compare(a, b, 1)) {
            struct role *r = find_role(w, top_roles[i]);

            if (r != NULL) {
                r->dirty = 1;
            }
        }
    }
}

/* The fields of an imported targets role that are its signer's: the expiry, and a delegated
 * role's issue time (TUF_ISSUED_FIELD: an authority signs its role on its own machine, with
 * posgate-publish authority-sign). want takes them from body. */
static void
take_signer_fields(cJSON *want, const cJSON *body, int delegated)
{
    const char *fields[] = {"expires", TUF_ISSUED_FIELD};

    for (size_t i = 0; i < (delegated ? 2u : 1u); i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(body, fields[i]);

        cJSON_DeleteItemFromObjectCaseSensitive(want, fields[i]);
        if (v != NULL) {
            cJSON_AddItemToObject(want, fields[i], cJSON_Duplicate(v, 1));
        }
    }
}

enum posgate_err
tuf_writer_import_signed(struct tuf_writer *w, const char *role, const void *data, size_t len)
{
    struct role *r;
    cJSON *env = NULL, *sigs = NULL, *want = NULL, *nenv = NULL;
    const cJSON *body, *type;
    struct buf canon = BUF_INIT(META_MAX), bytes = BUF_INIT(META_MAX);
    struct keyset sets[2];
    const cJSON *set_keys[2] = {NULL, NULL};
    size_t nsets = 0;
    int64_t version, expected;
    char emsg[200];
    int is_root;
    enum posgate_err err = usable(w, role, &r);

    if (err != POSGATE_OK || data == NULL) {
        return err != POSGATE_OK ? err : POSGATE_ERR_INVALID;
    }
    is_root = strcmp(role, "root") == 0;
    if (!is_targets_type(role) && !is_root) {
        return fail(w, POSGATE_ERR_INVALID,
                    "expected root or a targets role, found %s (signed at each publication)", role);
    }
    err = json_parse_bounded(data, len, META_MAX, &env, emsg, sizeof(emsg));
    if (err != POSGATE_OK) {
        err = fail(w, POSGATE_ERR_PARSE, "signed %s: %s", role, emsg);
        goto out;
    }
    body = cJSON_GetObjectItemCaseSensitive(env, "signed");
    type = cJSON_GetObjectItemCaseSensitive(body, "_type");
    if (!cJSON_IsObject(body) || !cJSON_IsString(type) ||
        strcmp(type->valuestring, is_root ? "root" : "targets") != 0 ||
        json_get_int(body, "version", 1, INT64_C(9007199254740992), &version) != POSGATE_OK ||
        !cJSON_IsString(cJSON_GetObjectItemCaseSensitive(body, "expires"))) {
        err = fail(w, POSGATE_ERR_PARSE,
                   "signed %s: expected {\"signatures\", \"signed\"} of type %s with a version "
                   "and an expiry, found something else",
                   role, is_root ? "root" : "targets");
        goto out;
    }
    expected = r->next_version > 0 ? r->next_version : r->signed_version + 1;
    if (version != expected) {
        err = fail(w, POSGATE_ERR_ROLLBACK,
                   "signed %s: expected version %lld (the next after %lld), found %lld", role,
                   (long long)expected, (long long)r->signed_version, (long long)version);
        goto out;
    }
    if (!is_root) {
        /* A targets role's content is the operator's state: only the signatures come in. */
        err = next_body(w, r, 1, &want);
        if (err != POSGATE_OK) {
            goto out;
        }
        take_signer_fields(want, body, !is_top(role));
        if (!cJSON_Compare(want, body, 1)) {
            err = fail(w, POSGATE_ERR_REJECTED,
                       "signed %s version %lld: its content differs from the state's next version "
                       "of the role (export it again and have it signed)",
                       role, (long long)version);
            goto out;
        }
    }
    err = dedupe_sigs(cJSON_GetObjectItemCaseSensitive(env, "signatures"), &sigs);
    if (err == POSGATE_OK) {
        err = json_canon_encode(body, &canon);
    }
    if (err != POSGATE_OK) {
        goto out;
    }
    /* The thresholds: root needs its new keys (from the body itself) and the old ones. */
    if (is_root) {
        const cJSON *nro = cJSON_GetObjectItemCaseSensitive(
            cJSON_GetObjectItemCaseSensitive(body, "roles"), "root");
        int64_t thr;

        if (json_get_int(nro, "threshold", 1, TUF_WRITER_MAX_KEYS, &thr) != POSGATE_OK) {
            err = fail(w, POSGATE_ERR_PARSE, "signed root: expected a root role with a threshold");
            goto out;
        }
        sets[0].keyids = cJSON_GetObjectItemCaseSensitive(nro, "keyids");
        sets[0].threshold = thr;
        sets[0].what = "new root keys";
        set_keys[0] = cJSON_GetObjectItemCaseSensitive(body, "keys");
        nsets = 1;
        if (r->signed_env != NULL) {
            const cJSON *ob = cJSON_GetObjectItemCaseSensitive(r->signed_env, "signed");
            const cJSON *oro = cJSON_GetObjectItemCaseSensitive(
                cJSON_GetObjectItemCaseSensitive(ob, "roles"), "root");

            if (json_get_int(oro, "threshold", 1, TUF_WRITER_MAX_KEYS, &thr) != POSGATE_OK) {
                err = fail(w, POSGATE_ERR_CORRUPT, "the signed root lacks a root role");
                goto out;
            }
            sets[1].keyids = cJSON_GetObjectItemCaseSensitive(oro, "keyids");
            sets[1].threshold = thr;
            sets[1].what = "old root keys";
            set_keys[1] = cJSON_GetObjectItemCaseSensitive(ob, "keys");
            nsets = 2;
        }
    } else {
        err = role_keysets(w, r, body, sets, &nsets);
        if (err != POSGATE_OK) {
            goto out;
        }
        if (is_top(role)) {
            set_keys[0] = cJSON_GetObjectItemCaseSensitive(find_role(w, "root")->work, "keys");
        } else {
            struct role *delegator = NULL;

            (void)find_delegation(w, role, &delegator);
            set_keys[0] = cJSON_GetObjectItemCaseSensitive(
                cJSON_GetObjectItemCaseSensitive(delegator->work, "delegations"), "keys");
        }
    }
    for (size_t s = 0; s < nsets; s++) {
        int64_t have = count_valid(sets[s].keyids, set_keys[s], sigs, &canon);

        if (have < sets[s].threshold) {
            err = fail(w, POSGATE_ERR_BADSIG,
                       "signed %s version %lld: expected valid signatures from %lld of the %s "
                       "(threshold), found %lld: refused",
                       role, (long long)version, (long long)sets[s].threshold, sets[s].what,
                       (long long)have);
            goto out;
        }
    }
    nenv = cJSON_CreateObject();
    err = nenv == NULL ? POSGATE_ERR_NOMEM : obj_set(nenv, "signatures", sigs);
    sigs = NULL;
    if (err == POSGATE_OK) {
        err = obj_set(nenv, "signed", cJSON_Duplicate(body, 1));
    }
    if (err == POSGATE_OK) {
        err = print_json(nenv, &bytes);
    }
    if (err != POSGATE_OK) {
        goto out;
    }
    if (is_root && r->signed_env != NULL) {
        mark_rotated(w, cJSON_GetObjectItemCaseSensitive(r->signed_env, "signed"), body);
    }
    buf_reset(&r->signed_bytes);
    err = buf_append(&r->signed_bytes, bytes.data, bytes.len);
    if (err != POSGATE_OK) {
        w->failed = 1;
        goto out;
    }
    cJSON_Delete(r->work);
    r->work = cJSON_Duplicate(body, 1);
    cJSON_Delete(r->signed_env);
    r->signed_env = nenv;
    nenv = NULL;
    if (r->work == NULL) {
        w->failed = 1;
        err = POSGATE_ERR_NOMEM;
        goto out;
    }
    r->signed_version = version;
    r->signed_changed = 1;
    r->dirty = 0;
    r->next_version = 0;
    r->has_next_expires = 0;
    err = save_state(w);
out:
    cJSON_Delete(env);
    cJSON_Delete(sigs);
    cJSON_Delete(want);
    cJSON_Delete(nenv);
    buf_free(&canon);
    buf_free(&bytes);
    return err;
}
