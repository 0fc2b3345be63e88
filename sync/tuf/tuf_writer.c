/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The TUF writer (tuf_writer.h; how its files share the work: tuf_writer_internal.h): the state
 * in memory (roles, their working copies and small helpers), the settings of the next signing,
 * and the signing of one role.
 */
#define _POSIX_C_SOURCE 200809L
#include "tuf_writer_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "json_canon.h"
#include "plat_clock.h"
#include "plat_file.h"
#include "plat_mem.h"
#include "tuf_meta.h"

const char *const tw_top_roles[4] = {"root", "timestamp", "snapshot", "targets"};

enum posgate_err
tw_fail(struct tuf_writer *w, enum posgate_err err, const char *fmt, ...)
{
    va_list ap;

    if (w != NULL && err != POSGATE_OK) {
        va_start(ap, fmt);
        vsnprintf(w->errmsg, sizeof(w->errmsg), fmt, ap);
        va_end(ap);
    }
    return err;
}

int
tw_is_top(const char *name)
{
    for (size_t i = 0; i < 4; i++) {
        if (strcmp(name, tw_top_roles[i]) == 0) {
            return 1;
        }
    }
    return 0;
}

/* Targets-type roles: "targets" and every delegated role. */
int
tw_is_targets_type(const char *name)
{
    return strcmp(name, "targets") == 0 || !tw_is_top(name);
}

int
tw_valid_role_name(const char *name)
{
    size_t n = strlen(name);

    if (n == 0 || n > TUF_WRITER_ROLE_MAX || tw_is_top(name) || name[0] == '.') {
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

struct role *
tw_find_role(const struct tuf_writer *w, const char *name)
{
    for (size_t i = 0; i < w->nroles; i++) {
        if (strcmp(w->roles[i].name, name) == 0) {
            return &w->roles[i];
        }
    }
    return NULL;
}

int64_t
tw_writer_now(const struct tuf_writer *w)
{
    return w->now != 0 ? w->now : plat_wall_s();
}

int64_t
tw_default_lifetime(const struct tuf_writer *w, const struct role *r)
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
    t = tw_find_role(w, "targets");
    if (t != NULL && t != r && t->lifetime > 0) {
        return t->lifetime;
    }
    return TUF_WRITER_TARGETS_LIFETIME;
}

/* ---- small cJSON helpers ---------------------------------------------------------------- */

/* Sets key in obj to v (taking v), replacing an existing member. */
enum posgate_err
tw_obj_set(cJSON *obj, const char *key, cJSON *v)
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

enum posgate_err
tw_obj_set_int(cJSON *obj, const char *key, int64_t v)
{
    return tw_obj_set(obj, key, cJSON_CreateNumber((double)v));
}

enum posgate_err
tw_obj_set_str(cJSON *obj, const char *key, const char *v)
{
    return tw_obj_set(obj, key, cJSON_CreateString(v));
}

enum posgate_err
tw_arr_add(cJSON *arr, cJSON *v)
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

int
tw_str_in_array(const cJSON *arr, const char *s)
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

/* Ordinary compact JSON text of v (cJSON: not canonical, control characters escaped) appended
 * to out. */
enum posgate_err
tw_print_json(const cJSON *v, struct buf *out)
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

/* ---- roles in memory -------------------------------------------------------------------- */

cJSON *
tw_new_body(const char *type)
{
    cJSON *b = cJSON_CreateObject();

    if (b == NULL || tw_obj_set_str(b, "_type", type) != POSGATE_OK ||
        tw_obj_set_str(b, "spec_version", SPEC_VERSION) != POSGATE_OK ||
        tw_obj_set_int(b, "version", 0) != POSGATE_OK ||
        tw_obj_set_str(b, "expires", "1970-01-01T00:00:00Z") != POSGATE_OK) {
        cJSON_Delete(b);
        return NULL;
    }
    return b;
}

cJSON *
tw_new_targets_body(void)
{
    cJSON *b = tw_new_body("targets");

    if (b != NULL && tw_obj_set(b, "targets", cJSON_CreateObject()) != POSGATE_OK) {
        cJSON_Delete(b);
        return NULL;
    }
    return b;
}

enum posgate_err
tw_add_role(struct tuf_writer *w, const char *name, struct role **out)
{
    struct role *r;

    if (w->nroles >= ROLE_COUNT_MAX) {
        return tw_fail(w, POSGATE_ERR_TOOBIG, "expected at most %d roles, found more",
                       ROLE_COUNT_MAX);
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

void
tw_role_cleanup(struct role *r)
{
    buf_free(&r->signed_bytes);
    cJSON_Delete(r->signed_env);
    cJSON_Delete(r->work);
    r->signed_env = NULL;
    r->work = NULL;
}

enum posgate_err
tw_state_path(const struct tuf_writer *w, char *out, size_t cap, const char *fmt, ...)
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

/* ---- lifecycle -------------------------------------------------------------------------- */

enum posgate_err
tw_writer_alloc(const char *state_dir, struct tuf_writer **out)
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
        tw_role_cleanup(&w->roles[i]);
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

void
tw_copy_err(const struct tuf_writer *w, enum posgate_err err, char *errmsg, size_t errcap)
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

/* ---- settings --------------------------------------------------------------------------- */

enum posgate_err
tw_usable(struct tuf_writer *w, const char *role, struct role **out)
{
    if (w == NULL) {
        return POSGATE_ERR_INVALID;
    }
    if (w->failed) {
        return tw_fail(w, POSGATE_ERR_STATE,
                       "an earlier operation failed half-way; reopen the state");
    }
    w->errmsg[0] = 0;
    if (out != NULL) {
        *out = role != NULL ? tw_find_role(w, role) : NULL;
        if (*out == NULL) {
            return tw_fail(w, role == NULL ? POSGATE_ERR_INVALID : POSGATE_ERR_NOTFOUND,
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
        struct role *s = tw_find_role(w, "snapshot");

        if (s != NULL) {
            s->dirty = 1;
        }
    }
}

enum posgate_err
tuf_writer_set_lifetime(struct tuf_writer *w, const char *role, int64_t seconds)
{
    struct role *r;
    enum posgate_err err = tw_usable(w, role, &r);

    if (err != POSGATE_OK) {
        return err;
    }
    if (seconds < 1 || seconds > (INT64_C(1) << 40)) {
        return tw_fail(w, POSGATE_ERR_INVALID, "expected a lifetime of 1 s to 2^40 s, found %lld",
                       (long long)seconds);
    }
    r->lifetime = seconds;
    return POSGATE_OK;
}

enum posgate_err
tuf_writer_touch(struct tuf_writer *w, const char *role)
{
    struct role *r;
    enum posgate_err err = tw_usable(w, role, &r);

    if (err == POSGATE_OK) {
        r->dirty = 1;
    }
    return err;
}

enum posgate_err
tuf_writer_set_expires(struct tuf_writer *w, const char *role, int64_t expires)
{
    struct role *r;
    enum posgate_err err = tw_usable(w, role, &r);

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
    enum posgate_err err = tw_usable(w, role, &r);

    if (err != POSGATE_OK) {
        return err;
    }
    if (version < 1 || version > INT64_C(9007199254740992)) {
        return tw_fail(w, POSGATE_ERR_INVALID, "expected a version from 1 to 2^53, found %lld",
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
    enum posgate_err err = tw_usable(w, role, &r);

    if (err != POSGATE_OK) {
        return err;
    }
    if (count > 0 && keys == NULL) {
        return tw_fail(w, POSGATE_ERR_INVALID, "expected %zu keys, found NULL", count);
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
tuf_writer_role_signed(const struct tuf_writer *w, const char *role, const void **data, size_t *len)
{
    const struct role *r;

    if (w == NULL || role == NULL || data == NULL || len == NULL) {
        return POSGATE_ERR_INVALID;
    }
    r = tw_find_role(w, role);
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
    r = tw_find_role(w, role);
    if (r == NULL) {
        return POSGATE_ERR_NOTFOUND;
    }
    *version = r->signed_version;
    return POSGATE_OK;
}

/* ---- signing ---------------------------------------------------------------------------- */

/* The key sets whose thresholds a signing of r must meet (root: new and old). */
enum posgate_err
tw_role_keysets(struct tuf_writer *w, const struct role *r, const cJSON *body,
                struct keyset sets[2], size_t *n)
{
    const cJSON *ro = NULL;
    int64_t thr;

    *n = 0;
    if (strcmp(r->name, "root") == 0 || tw_is_top(r->name)) {
        const struct role *root = tw_find_role(w, "root");
        const cJSON *rb = strcmp(r->name, "root") == 0 ? body : root->work;

        ro = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(rb, "roles"),
                                              r->name);
    } else {
        ro = tw_find_delegation(w, r->name, NULL);
        if (ro == NULL) {
            return tw_fail(w, POSGATE_ERR_STATE, "role %s is not delegated by any role", r->name);
        }
    }
    if (json_get_int(ro, "threshold", 1, TUF_WRITER_MAX_KEYS, &thr) != POSGATE_OK) {
        return tw_fail(w, POSGATE_ERR_CORRUPT,
                       "role %s: expected keyids and a threshold, found none", r->name);
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
            return tw_fail(w, POSGATE_ERR_CORRUPT, "the signed root lacks a root role");
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
    enum posgate_err err = tw_role_keysets(w, r, body, sets, &nsets);

    *nchosen = 0;
    if (err != POSGATE_OK) {
        return err;
    }
    for (size_t i = 0; i < kr->count; i++) {
        int wanted = 0, dup = 0;

        for (size_t s = 0; s < nsets; s++) {
            wanted |= tw_str_in_array(sets[s].keyids, kr->ids[i]);
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
            have += tw_str_in_array(sets[s].keyids, kr->ids[chosen[j]]);
        }
        if (have < sets[s].threshold) {
            return tw_fail(w, POSGATE_ERR_BADSIG,
                           "role %s needs %lld signatures from %s (threshold), the keyring holds "
                           "%lld of them",
                           r->name, (long long)sets[s].threshold, sets[s].what, (long long)have);
        }
    }
    return POSGATE_OK;
}

/* Signs the canonical JSON of body with each key, appending the signatures to sigs (taken, also
 * on failure), and builds the envelope and its file bytes (ordinary JSON, tw_print_json). */
enum posgate_err
tw_make_envelope(const cJSON *body, cJSON *sigs, struct crypto_privkey *const *keys, size_t n,
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
        err = tw_arr_add(sigs, s);
        if (err == POSGATE_OK) {
            err = tw_obj_set_str(s, "keyid", id);
        }
        if (err == POSGATE_OK) {
            err = tw_obj_set_str(s, "sig", hex);
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
    err = tw_obj_set(env, "signatures", sigs);
    if (err == POSGATE_OK) {
        err = tw_obj_set(env, "signed", cJSON_Duplicate(body, 1));
    }
    if (err == POSGATE_OK) {
        buf_reset(bytes);
        err = tw_print_json(env, bytes);
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
enum posgate_err
tw_sign_one(struct tuf_writer *w, struct role *r, const struct keyring *kr, int check_only)
{
    cJSON *body = NULL, *env = NULL;
    struct crypto_privkey **keys = NULL;
    size_t *chosen = NULL, nchosen = 0, nkeys;
    struct buf bytes = BUF_INIT(META_MAX);
    char when[40];
    int64_t version, expires;
    enum posgate_err err;

    if (r->work == NULL) {
        return tw_fail(w, POSGATE_ERR_STATE, "role %s has nothing to sign", r->name);
    }
    body = cJSON_Duplicate(r->work, 1);
    if (body == NULL) {
        return POSGATE_ERR_NOMEM;
    }
    version = r->next_version > 0 ? r->next_version : r->signed_version + 1;
    expires = r->has_next_expires ? r->next_expires : tw_writer_now(w) + tw_default_lifetime(w, r);
    plat_time_format(expires, when, sizeof(when));
    err = tw_obj_set_int(body, "version", version);
    if (err == POSGATE_OK) {
        err = tw_obj_set_str(body, "expires", when);
    }
    if (err == POSGATE_OK && (strcmp(r->name, "timestamp") == 0 || !tw_is_top(r->name))) {
        /* the signed issue time kiosks count data age from (TUF_ISSUED_FIELD): the timestamp's
         * vouches for the operator's lists, a delegated role's for its authority's list */
        char t[32];

        plat_time_format(tw_writer_now(w), t, sizeof(t));
        err = tw_obj_set_str(body, TUF_ISSUED_FIELD, t);
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
        err = tw_make_envelope(body, sigs, keys, nkeys, &env, &bytes);
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

enum posgate_err
tw_keyring_init(struct tuf_writer *w, struct keyring *kr, struct crypto_privkey *const *keys,
                size_t count)
{
    kr->keys = keys;
    kr->count = count;
    kr->ids = NULL;
    if (count > 0 && keys == NULL) {
        return tw_fail(w, POSGATE_ERR_INVALID, "expected %zu keyring keys, found NULL", count);
    }
    kr->ids = plat_calloc(count + 1, sizeof(*kr->ids));
    if (kr->ids == NULL) {
        return POSGATE_ERR_NOMEM;
    }
    for (size_t i = 0; i < count; i++) {
        enum posgate_err err = tuf_writer_keyid(keys[i], kr->ids[i]);

        if (err != POSGATE_OK) {
            return tw_fail(w, err, "keyring key %zu: cannot compute its keyid", i + 1);
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
    enum posgate_err err = tw_usable(w, role, &r);

    if (err != POSGATE_OK) {
        return err;
    }
    if (!tw_is_targets_type(role) && strcmp(role, "root") != 0) {
        return tw_fail(w, POSGATE_ERR_INVALID,
                       "expected root or a targets role, found %s (signed by publish)", role);
    }
    if (!r->dirty) {
        return tw_fail(w, POSGATE_ERR_STATE, "role %s has no changes to sign", role);
    }
    err = tw_keyring_init(w, &kr, keyring, count);
    if (err == POSGATE_OK) {
        err = tw_sign_one(w, r, &kr, 0);
    }
    if (err == POSGATE_OK) {
        err = tw_save_state(w);
    }
    plat_free(kr.ids);
    return err;
}
