/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The TUF writer's files (tuf_writer.h, tuf_writer_internal.h): the state directory read
 * (tuf_writer_open) and written (writer.json, signed/, roots/), and signed metadata across
 * machines: tuf_writer_sign_file, the export of a role's next version unsigned, and the import
 * of one signed elsewhere.
 */
#define _POSIX_C_SOURCE 200809L
#include "tuf_writer_internal.h"

#include <stdio.h>
#include <string.h>

#include "json_canon.h"
#include "plat_clock.h"
#include "plat_file.h"
#include "plat_mem.h"

/* ---- loading ---------------------------------------------------------------------------- */

/* Loads signed/<name>.json into r when present. */
static enum posgate_err
load_signed(struct tuf_writer *w, struct role *r)
{
    char path[PATH_CAP], emsg[256];
    const cJSON *signed_;
    int64_t v;
    enum posgate_err err;

    err = tw_state_path(w, path, sizeof(path), "signed/%s.json", r->name);
    if (err != POSGATE_OK) {
        return err;
    }
    err = plat_read_file(path, &r->signed_bytes);
    if (err == POSGATE_ERR_NOTFOUND) {
        buf_reset(&r->signed_bytes);
        return POSGATE_OK;
    }
    if (err != POSGATE_OK) {
        return tw_fail(w, err, "cannot read %s", path);
    }
    err = json_parse_bounded(r->signed_bytes.data, r->signed_bytes.len, META_MAX, &r->signed_env,
                             emsg, sizeof(emsg));
    if (err != POSGATE_OK) {
        return tw_fail(w, POSGATE_ERR_CORRUPT, "%s: %s", path, emsg);
    }
    signed_ = cJSON_GetObjectItemCaseSensitive(r->signed_env, "signed");
    if (!cJSON_IsObject(signed_) ||
        json_get_int(signed_, "version", 1, INT64_C(9007199254740992), &v) != POSGATE_OK) {
        return tw_fail(w, POSGATE_ERR_CORRUPT,
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
        tw_copy_err(NULL, POSGATE_ERR_INVALID, errmsg, errcap);
        return POSGATE_ERR_INVALID;
    }
    *out = NULL;
    err = tw_writer_alloc(state_dir, &w);
    if (err != POSGATE_OK) {
        goto out;
    }
    err = tw_state_path(w, path, sizeof(path), "writer.json");
    if (err == POSGATE_OK) {
        err = plat_read_file(path, &raw);
    }
    if (err != POSGATE_OK) {
        err = tw_fail(w, err, "cannot read the writer state %s: %s", path, posgate_strerror(err));
        goto out;
    }
    err = json_parse_bounded(raw.data, raw.len, STATE_JSON_MAX, &st, emsg, sizeof(emsg));
    if (err != POSGATE_OK) {
        err = tw_fail(w, POSGATE_ERR_CORRUPT, "%s: %s", path, emsg);
        goto out;
    }
    if (json_get_int(st, "format", 0, 1000, &fmt) != POSGATE_OK || fmt != WRITER_FORMAT) {
        err = tw_fail(w, POSGATE_ERR_UNSUPPORTED, "%s: expected format %d, found another", path,
                      WRITER_FORMAT);
        goto out;
    }
    w->snapshot_hashes = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(st, "snapshot_hashes"));
    roles = cJSON_GetObjectItemCaseSensitive(st, "roles");
    if (!cJSON_IsArray(roles)) {
        err = tw_fail(w, POSGATE_ERR_CORRUPT, "%s: expected a roles array, found none", path);
        goto out;
    }
    cJSON_ArrayForEach(e, roles)
    {
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(e, "name");
        const cJSON *work = cJSON_GetObjectItemCaseSensitive(e, "work");
        struct role *r;
        int64_t v;

        if (!cJSON_IsString(name) ||
            (!tw_is_top(name->valuestring) && !tw_valid_role_name(name->valuestring)) ||
            tw_find_role(w, name->valuestring) != NULL) {
            err = tw_fail(w, POSGATE_ERR_CORRUPT, "%s: bad or repeated role name", path);
            goto out;
        }
        err = tw_add_role(w, name->valuestring, &r);
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
        } else if (tw_is_targets_type(r->name) || strcmp(r->name, "root") == 0) {
            err = tw_fail(w, POSGATE_ERR_CORRUPT,
                          "%s: role %s has neither signed metadata nor a "
                          "working copy",
                          path, r->name);
            goto out;
        }
        if ((tw_is_targets_type(r->name) || strcmp(r->name, "root") == 0) && r->work == NULL) {
            err = POSGATE_ERR_NOMEM;
            goto out;
        }
        if (r->signed_env == NULL) {
            r->dirty = 1;
        }
    }
    for (size_t i = 0; i < 4; i++) {
        if (tw_find_role(w, tw_top_roles[i]) == NULL) {
            err = tw_fail(w, POSGATE_ERR_CORRUPT, "%s: the %s role is missing", path,
                          tw_top_roles[i]);
            goto out;
        }
    }
    *out = w;
    w = NULL;
out:
    cJSON_Delete(st);
    buf_free(&raw);
    tw_copy_err(w, err, errmsg, errcap);
    tuf_writer_free(w);
    return err;
}

/* ---- saving ----------------------------------------------------------------------------- */

enum posgate_err
tw_save_state(struct tuf_writer *w)
{
    cJSON *st = NULL, *roles;
    struct buf text = BUF_INIT(STATE_JSON_MAX);
    char path[PATH_CAP];
    enum posgate_err err;

    err = tw_state_path(w, path, sizeof(path), "signed");
    if (err == POSGATE_OK) {
        err = plat_mkdir_p(path, 0700);
    }
    if (err == POSGATE_OK) {
        err = tw_state_path(w, path, sizeof(path), "roots");
    }
    if (err == POSGATE_OK) {
        err = plat_mkdir_p(path, 0700);
    }
    if (err != POSGATE_OK) {
        return tw_fail(w, err, "cannot create %s", path);
    }
    /* Signed files first: writer.json never names a signing that is not on disk. */
    for (size_t i = 0; i < w->nroles; i++) {
        struct role *r = &w->roles[i];

        if (!r->signed_changed) {
            continue;
        }
        err = tw_state_path(w, path, sizeof(path), "signed/%s.json", r->name);
        if (err == POSGATE_OK) {
            err = plat_write_atomic(path, r->signed_bytes.data, r->signed_bytes.len, 0644);
        }
        if (err == POSGATE_OK && strcmp(r->name, "root") == 0) {
            err = tw_state_path(w, path, sizeof(path), "roots/%lld.root.json",
                                (long long)r->signed_version);
            if (err == POSGATE_OK) {
                err = plat_write_atomic(path, r->signed_bytes.data, r->signed_bytes.len, 0644);
            }
        }
        if (err != POSGATE_OK) {
            return tw_fail(w, err, "cannot write %s", path);
        }
        r->signed_changed = 0;
    }
    st = cJSON_CreateObject();
    roles = cJSON_CreateArray();
    if (st == NULL || roles == NULL || tw_obj_set_int(st, "format", WRITER_FORMAT) != POSGATE_OK ||
        tw_obj_set(st, "snapshot_hashes", cJSON_CreateBool(w->snapshot_hashes)) != POSGATE_OK) {
        cJSON_Delete(roles);
        err = POSGATE_ERR_NOMEM;
        goto out;
    }
    err = tw_obj_set(st, "roles", roles);
    for (size_t i = 0; i < w->nroles && err == POSGATE_OK; i++) {
        struct role *r = &w->roles[i];
        cJSON *e = cJSON_CreateObject();

        err = tw_arr_add(roles, e);
        if (err == POSGATE_OK) {
            err = tw_obj_set_str(e, "name", r->name);
        }
        if (err == POSGATE_OK) {
            err = tw_obj_set(e, "dirty", cJSON_CreateBool(r->dirty));
        }
        if (err == POSGATE_OK && r->lifetime > 0) {
            err = tw_obj_set_int(e, "lifetime", r->lifetime);
        }
        if (err == POSGATE_OK && r->next_version > 0) {
            err = tw_obj_set_int(e, "next_version", r->next_version);
        }
        if (err == POSGATE_OK && r->has_next_expires) {
            err = tw_obj_set_int(e, "next_expires", r->next_expires);
        }
        if (err == POSGATE_OK && r->dirty && r->work != NULL) {
            err = tw_obj_set(e, "work", cJSON_Duplicate(r->work, 1));
        }
    }
    if (err == POSGATE_OK) {
        err = tw_print_json(st, &text);
    }
    if (err == POSGATE_OK) {
        err = tw_state_path(w, path, sizeof(path), "writer.json");
    }
    if (err == POSGATE_OK) {
        err = plat_write_atomic(path, text.data, text.len, 0600);
        if (err != POSGATE_OK) {
            err = tw_fail(w, err, "cannot write %s", path);
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
        return tw_fail(w, POSGATE_ERR_STATE,
                       "an earlier operation failed half-way; reopen the state");
    }
    w->errmsg[0] = 0;
    return tw_save_state(w);
}

/* ---- signing a file, export and import (threshold signing across machines) -------------- */

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
    err = tw_make_envelope(body, sigs, keys, count, &out_env, &bytes);
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

/* The next body of r with its version and expiry filled in, as tw_sign_one would sign it but
 * for the issue time (TUF_ISSUED_FIELD) tw_sign_one adds to the timestamp and delegated roles:
 * an exported role carries none, and an imported targets role, compared with this body, must
 * not either. */
static enum posgate_err
next_body(struct tuf_writer *w, struct role *r, int64_t expires, cJSON **out)
{
    char when[40];
    int64_t version;
    cJSON *body;
    enum posgate_err err;

    *out = NULL;
    if (r->work == NULL) {
        return tw_fail(w, POSGATE_ERR_STATE, "role %s has nothing to sign", r->name);
    }
    body = cJSON_Duplicate(r->work, 1);
    if (body == NULL) {
        return POSGATE_ERR_NOMEM;
    }
    version = r->next_version > 0 ? r->next_version : r->signed_version + 1;
    if (expires == 0) {
        expires =
            r->has_next_expires ? r->next_expires : tw_writer_now(w) + tw_default_lifetime(w, r);
    }
    plat_time_format(expires, when, sizeof(when));
    err = tw_obj_set_int(body, "version", version);
    if (err == POSGATE_OK) {
        err = tw_obj_set_str(body, "expires", when);
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
    enum posgate_err err = tw_usable(w, role, &r);

    if (err != POSGATE_OK || out == NULL) {
        return err != POSGATE_OK ? err : POSGATE_ERR_INVALID;
    }
    if (!tw_is_targets_type(role) && strcmp(role, "root") != 0) {
        return tw_fail(w, POSGATE_ERR_INVALID,
                       "expected root or a targets role, found %s (signed at each publication)",
                       role);
    }
    if (!r->dirty) {
        return tw_fail(w, POSGATE_ERR_STATE, "role %s has no changes to sign", role);
    }
    err = next_body(w, r, expires, &body);
    if (err != POSGATE_OK) {
        return err;
    }
    env = cJSON_CreateObject();
    err = env == NULL ? POSGATE_ERR_NOMEM : tw_obj_set(env, "signatures", cJSON_CreateArray());
    if (err == POSGATE_OK) {
        err = tw_obj_set(env, "signed", body);
        body = NULL;
    }
    if (err == POSGATE_OK) {
        buf_reset(out);
        err = tw_print_json(env, out);
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

        if (!cJSON_IsString(id) || !cJSON_IsString(hex) ||
            !tw_str_in_array(keyids, id->valuestring)) {
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
        if (!cJSON_IsString(id) || tw_str_in_array(seen, id->valuestring)) {
            continue;
        }
        err = tw_arr_add(seen, cJSON_CreateString(id->valuestring));
        if (err == POSGATE_OK) {
            err = tw_arr_add(res, cJSON_Duplicate(s, 1));
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
            cJSON_GetObjectItemCaseSensitive(old_body, "roles"), tw_top_roles[i]);
        const cJSON *b = cJSON_GetObjectItemCaseSensitive(
            cJSON_GetObjectItemCaseSensitive(new_body, "roles"), tw_top_roles[i]);

        if (a == NULL || b == NULL || !cJSON_Compare(a, b, 1)) {
            struct role *r = tw_find_role(w, tw_top_roles[i]);

            if (r != NULL) {
                r->dirty = 1;
            }
        }
    }
}

/* The key sets an imported signing of r must meet, each with the keys object that holds its
 * keys: root its new keys (from body itself) and the last signed root's; any other role the
 * keys its delegator names (tw_role_keysets). */
static enum posgate_err
import_keysets(struct tuf_writer *w, const struct role *r, const cJSON *body, struct keyset sets[2],
               const cJSON *set_keys[2], size_t *nsets)
{
    enum posgate_err err;

    *nsets = 0;
    if (strcmp(r->name, "root") == 0) {
        const cJSON *nro = cJSON_GetObjectItemCaseSensitive(
            cJSON_GetObjectItemCaseSensitive(body, "roles"), "root");
        int64_t thr;

        if (json_get_int(nro, "threshold", 1, TUF_WRITER_MAX_KEYS, &thr) != POSGATE_OK) {
            return tw_fail(w, POSGATE_ERR_PARSE,
                           "signed root: expected a root role with a threshold");
        }
        sets[0].keyids = cJSON_GetObjectItemCaseSensitive(nro, "keyids");
        sets[0].threshold = thr;
        sets[0].what = "new root keys";
        set_keys[0] = cJSON_GetObjectItemCaseSensitive(body, "keys");
        *nsets = 1;
        if (r->signed_env != NULL) {
            const cJSON *ob = cJSON_GetObjectItemCaseSensitive(r->signed_env, "signed");
            const cJSON *oro = cJSON_GetObjectItemCaseSensitive(
                cJSON_GetObjectItemCaseSensitive(ob, "roles"), "root");

            if (json_get_int(oro, "threshold", 1, TUF_WRITER_MAX_KEYS, &thr) != POSGATE_OK) {
                return tw_fail(w, POSGATE_ERR_CORRUPT, "the signed root lacks a root role");
            }
            sets[1].keyids = cJSON_GetObjectItemCaseSensitive(oro, "keyids");
            sets[1].threshold = thr;
            sets[1].what = "old root keys";
            set_keys[1] = cJSON_GetObjectItemCaseSensitive(ob, "keys");
            *nsets = 2;
        }
        return POSGATE_OK;
    }
    err = tw_role_keysets(w, r, body, sets, nsets);
    if (err != POSGATE_OK) {
        return err;
    }
    if (tw_is_top(r->name)) {
        set_keys[0] = cJSON_GetObjectItemCaseSensitive(tw_find_role(w, "root")->work, "keys");
    } else {
        struct role *delegator = NULL;

        (void)tw_find_delegation(w, r->name, &delegator);
        set_keys[0] = cJSON_GetObjectItemCaseSensitive(
            cJSON_GetObjectItemCaseSensitive(delegator->work, "delegations"), "keys");
    }
    return POSGATE_OK;
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
    enum posgate_err err = tw_usable(w, role, &r);

    if (err != POSGATE_OK || data == NULL) {
        return err != POSGATE_OK ? err : POSGATE_ERR_INVALID;
    }
    is_root = strcmp(role, "root") == 0;
    if (!tw_is_targets_type(role) && !is_root) {
        return tw_fail(w, POSGATE_ERR_INVALID,
                       "expected root or a targets role, found %s (signed at each publication)",
                       role);
    }
    err = json_parse_bounded(data, len, META_MAX, &env, emsg, sizeof(emsg));
    if (err != POSGATE_OK) {
        err = tw_fail(w, POSGATE_ERR_PARSE, "signed %s: %s", role, emsg);
        goto out;
    }
    body = cJSON_GetObjectItemCaseSensitive(env, "signed");
    type = cJSON_GetObjectItemCaseSensitive(body, "_type");
    if (!cJSON_IsObject(body) || !cJSON_IsString(type) ||
        strcmp(type->valuestring, is_root ? "root" : "targets") != 0 ||
        json_get_int(body, "version", 1, INT64_C(9007199254740992), &version) != POSGATE_OK ||
        !cJSON_IsString(cJSON_GetObjectItemCaseSensitive(body, "expires"))) {
        err = tw_fail(w, POSGATE_ERR_PARSE,
                      "signed %s: expected {\"signatures\", \"signed\"} of type %s with a version "
                      "and an expiry, found something else",
                      role, is_root ? "root" : "targets");
        goto out;
    }
    expected = r->next_version > 0 ? r->next_version : r->signed_version + 1;
    if (version != expected) {
        err = tw_fail(w, POSGATE_ERR_ROLLBACK,
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
        cJSON_DeleteItemFromObjectCaseSensitive(want, "expires");
        cJSON_AddItemToObject(
            want, "expires", cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(body, "expires"), 1));
        if (!cJSON_Compare(want, body, 1)) {
            err =
                tw_fail(w, POSGATE_ERR_REJECTED,
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
    err = import_keysets(w, r, body, sets, set_keys, &nsets);
    if (err != POSGATE_OK) {
        goto out;
    }
    for (size_t s = 0; s < nsets; s++) {
        int64_t have = count_valid(sets[s].keyids, set_keys[s], sigs, &canon);

        if (have < sets[s].threshold) {
            err = tw_fail(w, POSGATE_ERR_BADSIG,
                          "signed %s version %lld: expected valid signatures from %lld of the %s "
                          "(threshold), found %lld: refused",
                          role, (long long)version, (long long)sets[s].threshold, sets[s].what,
                          (long long)have);
            goto out;
        }
    }
    nenv = cJSON_CreateObject();
    err = nenv == NULL ? POSGATE_ERR_NOMEM : tw_obj_set(nenv, "signatures", sigs);
    sigs = NULL;
    if (err == POSGATE_OK) {
        err = tw_obj_set(nenv, "signed", cJSON_Duplicate(body, 1));
    }
    if (err == POSGATE_OK) {
        err = tw_print_json(nenv, &bytes);
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
    err = tw_save_state(w);
out:
    cJSON_Delete(env);
    cJSON_Delete(sigs);
    cJSON_Delete(want);
    cJSON_Delete(nenv);
    buf_free(&canon);
    buf_free(&bytes);
    return err;
}
