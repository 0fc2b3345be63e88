/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The TUF writer's keys and root (tuf_writer.h, tuf_writer_internal.h): key objects and keyids,
 * key sets, a new repository (root 1 and its keys), the keys of the top-level roles in the next
 * root, the key lists of a role, and root fields of our own ("x-...").
 */
#define _POSIX_C_SOURCE 200809L
#include "tuf_writer_internal.h"

#include <stdio.h>
#include <string.h>

#include "json_canon.h"
#include "plat_file.h"
#include "plat_mem.h"

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
    if (k == NULL || kv == NULL || tw_obj_set_str(kv, "public", pem) != POSGATE_OK ||
        tw_obj_set_str(k, "keytype", rsa ? KEYTYPE_RSA : KEYTYPE) != POSGATE_OK) {
        cJSON_Delete(k);
        cJSON_Delete(kv);
        return NULL;
    }
    if (tw_obj_set(k, "keyval", kv) != POSGATE_OK ||
        tw_obj_set_str(k, "scheme", rsa ? SCHEME_RSA : SCHEME) != POSGATE_OK) {
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
enum posgate_err
tw_build_keyset(struct tuf_writer *w, const char *what, const struct tuf_writer_role_keys *k,
                cJSON *keys_obj, cJSON **keyids_out)
{
    cJSON *ids = NULL;
    char id[TUF_WRITER_KEYID_LEN + 1];
    enum posgate_err err = POSGATE_OK;

    *keyids_out = NULL;
    if (k == NULL || k->count == 0 || k->public_pems == NULL) {
        return tw_fail(w, POSGATE_ERR_INVALID, "%s: expected at least one public key, found none",
                       what);
    }
    if (k->count > TUF_WRITER_MAX_KEYS) {
        return tw_fail(w, POSGATE_ERR_INVALID, "%s: expected at most %d keys, found %zu", what,
                       TUF_WRITER_MAX_KEYS, k->count);
    }
    if (k->threshold < 1 || k->threshold > k->count) {
        return tw_fail(w, POSGATE_ERR_INVALID,
                       "%s: threshold must be between 1 and the %zu keys given, found %u", what,
                       k->count, k->threshold);
    }
    ids = cJSON_CreateArray();
    if (ids == NULL) {
        return POSGATE_ERR_NOMEM;
    }
    for (size_t i = 0; i < k->count; i++) {
        if (k->public_pems[i] == NULL) {
            err = tw_fail(w, POSGATE_ERR_INVALID, "%s: key %zu is NULL", what, i + 1);
            goto out;
        }
        err = tuf_writer_keyid_pem(k->public_pems[i], id);
        if (err != POSGATE_OK) {
            err = tw_fail(w, err,
                          "%s: key %zu: expected a PEM ECDSA P-256 public key "
                          "(SubjectPublicKeyInfo), found something else",
                          what, i + 1);
            goto out;
        }
        if (tw_str_in_array(ids, id)) {
            err = tw_fail(w, POSGATE_ERR_INVALID, "%s: key %zu (keyid %.16s...) is given twice",
                          what, i + 1, id);
            goto out;
        }
        err = tw_arr_add(ids, cJSON_CreateString(id));
        if (err == POSGATE_OK && cJSON_GetObjectItemCaseSensitive(keys_obj, id) == NULL) {
            err = tw_obj_set(keys_obj, id, key_object(k->public_pems[i]));
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
void
tw_prune_keys(cJSON *keys_obj, const cJSON *roles)
{
    cJSON *k = keys_obj != NULL ? keys_obj->child : NULL;

    while (k != NULL) {
        cJSON *next = k->next;
        const cJSON *r;
        int used = 0;

        cJSON_ArrayForEach(r, roles)
        {
            if (tw_str_in_array(cJSON_GetObjectItemCaseSensitive(r, "keyids"), k->string)) {
                used = 1;
            }
        }
        if (!used) {
            cJSON_Delete(cJSON_DetachItemViaPointer(keys_obj, k));
        }
        k = next;
    }
}

/* ---- a new repository ------------------------------------------------------------------- */

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
        tw_copy_err(NULL, POSGATE_ERR_INVALID, errmsg, errcap);
        return POSGATE_ERR_INVALID;
    }
    *out = NULL;
    err = tw_writer_alloc(state_dir, &w);
    if (err != POSGATE_OK || init == NULL) {
        err = err != POSGATE_OK ? err : POSGATE_ERR_INVALID;
        goto out;
    }
    err = tw_state_path(w, path, sizeof(path), "writer.json");
    if (err != POSGATE_OK) {
        goto out;
    }
    if (plat_exists(path)) {
        err = tw_fail(w, POSGATE_ERR_STATE,
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

        snprintf(what, sizeof(what), "%s role", tw_top_roles[i]);
        err = tw_build_keyset(w, what, specs[i], keys, &ids);
        if (err != POSGATE_OK) {
            goto out;
        }
        ro = cJSON_CreateObject();
        err = tw_obj_set(roles, tw_top_roles[i], ro);
        if (err == POSGATE_OK) {
            err = tw_obj_set(ro, "keyids", ids);
            ids = NULL;
        }
        if (err == POSGATE_OK) {
            err = tw_obj_set_int(ro, "threshold", (int64_t)specs[i]->threshold);
        }
        cJSON_Delete(ids);
        if (err != POSGATE_OK) {
            goto out;
        }
    }
    for (size_t i = 0; i < 4; i++) {
        err = tw_add_role(w, tw_top_roles[i], &r);
        if (err != POSGATE_OK) {
            goto out;
        }
        r->dirty = 1;
    }
    r = tw_find_role(w, "root");
    r->work = tw_new_body("root");
    if (r->work == NULL ||
        tw_obj_set(r->work, "consistent_snapshot", cJSON_CreateTrue()) != POSGATE_OK ||
        tw_obj_set(r->work, "keys", keys) != POSGATE_OK) {
        keys = NULL;
        err = POSGATE_ERR_NOMEM;
        goto out;
    }
    keys = NULL;
    err = tw_obj_set(r->work, "roles", roles);
    roles = NULL;
    if (err != POSGATE_OK) {
        goto out;
    }
    r = tw_find_role(w, "targets");
    r->work = tw_new_targets_body();
    if (r->work == NULL) {
        err = POSGATE_ERR_NOMEM;
        goto out;
    }
    err = plat_mkdir_p(state_dir, 0700);
    if (err != POSGATE_OK) {
        err = tw_fail(w, err, "cannot create state directory %s", state_dir);
        goto out;
    }
    err = tw_save_state(w);
    if (err != POSGATE_OK) {
        goto out;
    }
    *out = w;
    w = NULL;
out:
    cJSON_Delete(keys);
    cJSON_Delete(roles);
    tw_copy_err(w, err, errmsg, errcap);
    tuf_writer_free(w);
    return err;
}

/* ---- the keys of top-level roles, root fields ------------------------------------------- */

enum posgate_err
tuf_writer_set_role_keys(struct tuf_writer *w, const char *role,
                         const struct tuf_writer_role_keys *keys)
{
    struct role *root, *target;
    cJSON *work = NULL, *ids = NULL, *kobj, *roles, *ro;
    char what[64];
    enum posgate_err err = tw_usable(w, role, &target);

    if (err != POSGATE_OK) {
        return err;
    }
    if (!tw_is_top(role)) {
        return tw_fail(
            w, POSGATE_ERR_INVALID,
            "expected a top-level role (root, timestamp, snapshot, targets), found \"%s\"; "
            "use tuf_writer_delegate for delegated roles",
            role);
    }
    root = tw_find_role(w, "root");
    /* Edit a copy so that a refused key set leaves the working root as it was. */
    work = cJSON_Duplicate(root->work, 1);
    if (work == NULL) {
        return POSGATE_ERR_NOMEM;
    }
    kobj = cJSON_GetObjectItemCaseSensitive(work, "keys");
    roles = cJSON_GetObjectItemCaseSensitive(work, "roles");
    ro = cJSON_GetObjectItemCaseSensitive(roles, role);
    if (!cJSON_IsObject(kobj) || !cJSON_IsObject(ro)) {
        err = tw_fail(w, POSGATE_ERR_CORRUPT, "working root lacks keys or the %s role", role);
        goto out;
    }
    snprintf(what, sizeof(what), "%s role", role);
    err = tw_build_keyset(w, what, keys, kobj, &ids);
    if (err == POSGATE_OK) {
        err = tw_obj_set(ro, "keyids", ids);
        ids = NULL;
    }
    if (err == POSGATE_OK) {
        err = tw_obj_set_int(ro, "threshold", (int64_t)keys->threshold);
    }
    if (err != POSGATE_OK) {
        goto out;
    }
    tw_prune_keys(kobj, roles);
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
        return tw_fail(w, POSGATE_ERR_CORRUPT, "%s: expected keyids and a threshold, found none",
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
            return tw_fail(w, POSGATE_ERR_CORRUPT,
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
    enum posgate_err err = tw_usable(w, role, &r);

    if (err != POSGATE_OK || out == NULL) {
        return err != POSGATE_OK ? err : POSGATE_ERR_INVALID;
    }
    if (tw_is_top(role)) {
        const struct role *root = tw_find_role(w, "root");

        ro = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(root->work, "roles"),
                                              role);
        keys = cJSON_GetObjectItemCaseSensitive(root->work, "keys");
    } else {
        struct role *delegator = NULL;

        ro = tw_find_delegation(w, role, &delegator);
        if (ro == NULL) {
            return tw_fail(w, POSGATE_ERR_NOTFOUND, "role %s is not delegated by any role", role);
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
    enum posgate_err err = tw_usable(w, "root", &root);

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
    enum posgate_err err = tw_usable(w, "root", &root);

    if (err != POSGATE_OK || field == NULL || json == NULL) {
        return err != POSGATE_OK ? err : POSGATE_ERR_INVALID;
    }
    if (strncmp(field, "x-", 2) != 0) {
        return tw_fail(w, POSGATE_ERR_INVALID,
                       "expected a root field of our own (\"x-...\"), found \"%s\"", field);
    }
    err = json_parse_bounded(json, strlen(json), META_MAX, &v, emsg, sizeof(emsg));
    if (err != POSGATE_OK) {
        return tw_fail(w, POSGATE_ERR_INVALID, "root field %s: %s", field, emsg);
    }
    err = tw_obj_set(root->work, field, v);
    if (err == POSGATE_OK) {
        root->dirty = 1;
    }
    return err;
}
