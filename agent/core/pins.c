/* SPDX-License-Identifier: Apache-2.0 */
/* Delegation pins (pins.h): the codec of pins.json and the comparison with a new delegation. */
#define _POSIX_C_SOURCE 200809L
#include "pins.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "buf.h"
#include "crypto.h"
#include "json_canon.h"
#include "plat_file.h"
#include "plat_mem.h"

#define PINS_MAX_BYTES (1u << 20)
#define TARGETS_MAX    (8u << 20)

/* The delegated role of cfg list list_id in meta, or NULL. */
static const struct tuf_deleg_role *
role_of(const struct tuf_meta *meta, const char *list_id)
{
    char probe[FEED_NAME_ID_MAX + 32];

    if (meta == NULL || !meta->has_delegations) {
        return NULL;
    }
    snprintf(probe, sizeof(probe), "lists/%s/snapshot-1.pgs", list_id);
    for (size_t i = 0; i < meta->delegations.nroles; i++) {
        if (tuf_deleg_role_matches(&meta->delegations.roles[i], probe)) {
            return &meta->delegations.roles[i];
        }
    }
    return NULL;
}

static int
cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* A JSON array of the sorted key hashes of role r, from the raw delegations keys. */
static enum posgate_err
key_hashes(const cJSON *keys, const struct tuf_deleg_role *r, cJSON **out, char *errmsg, size_t cap)
{
    cJSON *arr = cJSON_CreateArray();
    char **hex = NULL;
    enum posgate_err err = POSGATE_OK;
    struct buf canon = BUF_INIT(64 * 1024);

    if (arr == NULL || (hex = plat_calloc(r->keys.nkeyids + 1, sizeof(*hex))) == NULL) {
        cJSON_Delete(arr);
        return POSGATE_ERR_NOMEM;
    }
    for (size_t i = 0; i < r->keys.nkeyids; i++) {
        const cJSON *k = cJSON_GetObjectItemCaseSensitive(keys, r->keys.keyids[i]);
        uint8_t h[CRYPTO_SHA256_LEN];

        buf_reset(&canon);
        if (k == NULL || json_canon_encode(k, &canon) != POSGATE_OK) {
            snprintf(errmsg, cap, "delegation %s: key %.16s is not in delegations.keys", r->name,
                     r->keys.keyids[i]);
            err = POSGATE_ERR_REJECTED;
            goto out;
        }
        crypto_sha256(canon.data, canon.len, h);
        hex[i] = plat_malloc(2 * CRYPTO_SHA256_LEN + 1);
        if (hex[i] == NULL) {
            err = POSGATE_ERR_NOMEM;
            goto out;
        }
        crypto_hex(h, sizeof(h), hex[i]);
    }
    qsort(hex, r->keys.nkeyids, sizeof(*hex), cmp_str);
    for (size_t i = 0; i < r->keys.nkeyids; i++) {
        cJSON_AddItemToArray(arr, cJSON_CreateString(hex[i]));
    }
out:
    for (size_t i = 0; i < r->keys.nkeyids; i++) {
        plat_free(hex[i]);
    }
    plat_free(hex);
    buf_free(&canon);
    if (err != POSGATE_OK) {
        cJSON_Delete(arr);
        return err;
    }
    *out = arr;
    return POSGATE_OK;
}

enum posgate_err
pins_check(const char *pins_path, const void *targets_json, size_t len, const struct tuf_meta *meta,
           const struct feed_config *cfg, char *errmsg, size_t errcap)
{
    struct buf raw = BUF_INIT(PINS_MAX_BYTES);
    cJSON *pins = NULL, *lists, *targets = NULL, *keys;
    enum posgate_err err;
    char msg[160];
    int changed = 0;

    err = plat_read_file(pins_path, &raw);
    if (err == POSGATE_ERR_NOTFOUND) {
        pins = cJSON_CreateObject();
        err = pins != NULL ? POSGATE_OK : POSGATE_ERR_NOMEM;
    } else if (err == POSGATE_OK) {
        err = json_parse_bounded(raw.data, raw.len, PINS_MAX_BYTES, &pins, msg, sizeof(msg));
        if (err != POSGATE_OK || !cJSON_IsObject(pins)) {
            snprintf(errmsg, errcap, "%s: %s", pins_path,
                     err != POSGATE_OK ? msg : "not an object");
            err = POSGATE_ERR_CORRUPT;
        }
    }
    if (err != POSGATE_OK) {
        goto out;
    }
    lists = cJSON_GetObjectItemCaseSensitive(pins, "lists");
    if (lists == NULL) {
        lists = cJSON_AddObjectToObject(pins, "lists");
    }
    if (!cJSON_IsObject(lists)) {
        snprintf(errmsg, errcap, "%s: \"lists\" is not an object", pins_path);
        err = POSGATE_ERR_CORRUPT;
        goto out;
    }
    err = json_parse_bounded(targets_json, len, TARGETS_MAX, &targets, msg, sizeof(msg));
    if (err != POSGATE_OK) {
        snprintf(errmsg, errcap, "trusted targets.json: %s", msg);
        goto out;
    }
    keys = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(targets, "signed"),
                                         "delegations"),
        "keys");
    for (unsigned i = 0; i < cfg->n_lists; i++) {
        const char *id = cfg->lists[i].id;
        const struct tuf_deleg_role *r = role_of(meta, id);
        cJSON *pin = cJSON_GetObjectItemCaseSensitive(lists, id);
        cJSON *hashes = NULL;

        if (r != NULL) {
            err = key_hashes(keys, r, &hashes, errmsg, errcap);
            if (err != POSGATE_OK) {
                goto out;
            }
        }
        if (pin == NULL) {
            if (r != NULL) {
                cJSON *o = cJSON_AddObjectToObject(lists, id);

                if (o == NULL) {
                    cJSON_Delete(hashes);
                    err = POSGATE_ERR_NOMEM;
                    goto out;
                }
                cJSON_AddStringToObject(o, "role", r->name);
                cJSON_AddNumberToObject(o, "threshold", r->keys.threshold);
                cJSON_AddItemToObject(o, "keys", hashes);
                changed = 1;
            }
            continue;
        }
        {
            const cJSON *prole = cJSON_GetObjectItemCaseSensitive(pin, "role");
            const cJSON *pth = cJSON_GetObjectItemCaseSensitive(pin, "threshold");
            const cJSON *pkeys = cJSON_GetObjectItemCaseSensitive(pin, "keys");
            int same = r != NULL && cJSON_IsString(prole) &&
                       strcmp(prole->valuestring, r->name) == 0 && cJSON_IsNumber(pth) &&
                       pth->valuedouble == (double)r->keys.threshold && pkeys != NULL &&
                       cJSON_Compare(pkeys, hashes, 1);

            cJSON_Delete(hashes);
            if (!same) {
                snprintf(errmsg, errcap,
                         "list %s is pinned to its authority's delegation (role %s, threshold %d, "
                         "%d key(s)); this feed %s it: refused (an authority key change needs a "
                         "new root, signed by the root threshold, recording the list's new keys "
                         "in x-posgate-authorities)",
                         id, cJSON_IsString(prole) ? prole->valuestring : "?",
                         cJSON_IsNumber(pth) ? pth->valueint : 0, cJSON_GetArraySize(pkeys),
                         r == NULL ? "removes" : "changes");
                err = POSGATE_ERR_REJECTED;
                goto out;
            }
        }
    }
    if (changed) {
        char *s = cJSON_PrintUnformatted(pins);

        if (s == NULL) {
            err = POSGATE_ERR_NOMEM;
            goto out;
        }
        err = plat_write_atomic(pins_path, s, strlen(s), 0600);
        cJSON_free(s);
        if (err != POSGATE_OK) {
            snprintf(errmsg, errcap, "cannot write %s: %s", pins_path, posgate_strerror(err));
        }
    }
out:
    cJSON_Delete(pins);
    cJSON_Delete(targets);
    buf_free(&raw);
    return err;
}

enum posgate_err
pins_foreach(const char *pins_path,
             enum posgate_err (*fn)(void *ctx, const char *list_id, const char *role), void *ctx,
             char *errmsg, size_t errcap)
{
    struct buf raw = BUF_INIT(PINS_MAX_BYTES);
    cJSON *pins = NULL;
    const cJSON *lists, *pin;
    enum posgate_err err;
    char msg[160];

    err = plat_read_file(pins_path, &raw);
    if (err == POSGATE_ERR_NOTFOUND) {
        err = POSGATE_OK;
        goto out;
    }
    if (err != POSGATE_OK) {
        snprintf(errmsg, errcap, "cannot read %s: %s", pins_path, posgate_strerror(err));
        goto out;
    }
    err = json_parse_bounded(raw.data, raw.len, PINS_MAX_BYTES, &pins, msg, sizeof(msg));
    lists = cJSON_GetObjectItemCaseSensitive(pins, "lists");
    if (err != POSGATE_OK || !cJSON_IsObject(lists)) {
        snprintf(errmsg, errcap, "%s: %s", pins_path,
                 err != POSGATE_OK ? msg : "expected an object \"lists\"");
        err = POSGATE_ERR_CORRUPT;
        goto out;
    }
    cJSON_ArrayForEach(pin, lists)
    {
        const cJSON *role = cJSON_GetObjectItemCaseSensitive(pin, "role");

        if (pin->string == NULL || !cJSON_IsString(role)) {
            snprintf(errmsg, errcap, "%s: list %.40s: expected a pin with a \"role\"", pins_path,
                     pin->string != NULL ? pin->string : "?");
            err = POSGATE_ERR_CORRUPT;
            goto out;
        }
        err = fn(ctx, pin->string, role->valuestring);
        if (err != POSGATE_OK) {
            goto out;
        }
    }
out:
    cJSON_Delete(pins);
    buf_free(&raw);
    return err;
}

/* The record of one list in the root's x-posgate-authorities, as a pin; NULL when malformed. */
static cJSON *
pin_from_record(const cJSON *rec, int64_t root_version)
{
    const cJSON *role = cJSON_GetObjectItemCaseSensitive(rec, "role");
    const cJSON *keys = cJSON_GetObjectItemCaseSensitive(rec, "keys");
    int64_t thr;
    cJSON *pin, *arr;
    char **hex = NULL;
    int n = cJSON_GetArraySize(keys);

    if (!cJSON_IsString(role) || !cJSON_IsArray(keys) || n < 1 || n > 256 ||
        json_get_int(rec, "threshold", 1, n, &thr) != POSGATE_OK) {
        return NULL;
    }
    pin = cJSON_CreateObject();
    arr = cJSON_CreateArray();
    hex = plat_calloc((size_t)n + 1, sizeof(*hex));
    if (pin == NULL || arr == NULL || hex == NULL) {
        goto bad;
    }
    for (int i = 0; i < n; i++) {
        const cJSON *k = cJSON_GetArrayItem(keys, i);

        if (!cJSON_IsString(k) || strlen(k->valuestring) != 2 * CRYPTO_SHA256_LEN) {
            goto bad;
        }
        hex[i] = k->valuestring;
    }
    qsort(hex, (size_t)n, sizeof(*hex), cmp_str);
    for (int i = 0; i < n; i++) {
        if (i > 0 && strcmp(hex[i - 1], hex[i]) == 0) {
            goto bad; /* a key never counts twice */
        }
        cJSON_AddItemToArray(arr, cJSON_CreateString(hex[i]));
    }
    cJSON_AddStringToObject(pin, "role", role->valuestring);
    cJSON_AddNumberToObject(pin, "threshold", (double)thr);
    cJSON_AddItemToObject(pin, "keys", arr);
    cJSON_AddNumberToObject(pin, "root", (double)root_version);
    plat_free(hex);
    return pin;
bad:
    plat_free(hex);
    cJSON_Delete(arr);
    cJSON_Delete(pin);
    return NULL;
}

enum posgate_err
pins_apply_root(const char *pins_path, const void *root_json, size_t len, char *errmsg,
                size_t errcap)
{
    struct buf raw = BUF_INIT(PINS_MAX_BYTES);
    cJSON *pins = NULL, *root = NULL, *lists;
    const cJSON *body, *auth, *rec;
    int64_t root_version = 0;
    enum posgate_err err;
    char msg[160];
    int changed = 0;

    err = json_parse_bounded(root_json, len, TARGETS_MAX, &root, msg, sizeof(msg));
    if (err != POSGATE_OK) {
        snprintf(errmsg, errcap, "trusted root.json: %s", msg);
        goto out;
    }
    body = cJSON_GetObjectItemCaseSensitive(root, "signed");
    auth = cJSON_GetObjectItemCaseSensitive(body, PINS_ROOT_FIELD);
    if (auth == NULL) {
        goto out; /* no record: first-sight pins stay as they are */
    }
    if (json_get_int(body, "version", 1, INT64_MAX, &root_version) != POSGATE_OK) {
        root_version = 0; /* verified by the client; only named in messages here */
    }
    if (!cJSON_IsObject(auth)) {
        snprintf(errmsg, errcap, "trusted root version %lld: expected %s to be an object",
                 (long long)root_version, PINS_ROOT_FIELD);
        err = POSGATE_ERR_REJECTED;
        goto out;
    }
    err = plat_read_file(pins_path, &raw);
    if (err == POSGATE_ERR_NOTFOUND) {
        pins = cJSON_CreateObject();
        err = pins != NULL ? POSGATE_OK : POSGATE_ERR_NOMEM;
    } else if (err == POSGATE_OK) {
        err = json_parse_bounded(raw.data, raw.len, PINS_MAX_BYTES, &pins, msg, sizeof(msg));
        if (err != POSGATE_OK || !cJSON_IsObject(pins)) {
            snprintf(errmsg, errcap, "%s: %s", pins_path,
                     err != POSGATE_OK ? msg : "not an object");
            err = POSGATE_ERR_CORRUPT;
        }
    }
    if (err != POSGATE_OK) {
        goto out;
    }
    lists = cJSON_GetObjectItemCaseSensitive(pins, "lists");
    if (lists == NULL) {
        lists = cJSON_AddObjectToObject(pins, "lists");
    }
    if (!cJSON_IsObject(lists)) {
        snprintf(errmsg, errcap, "%s: \"lists\" is not an object", pins_path);
        err = POSGATE_ERR_CORRUPT;
        goto out;
    }
    cJSON_ArrayForEach(rec, auth)
    {
        cJSON *pin = pin_from_record(rec, root_version);
        cJSON *old = cJSON_GetObjectItemCaseSensitive(lists, rec->string);

        if (pin == NULL) {
            snprintf(errmsg, errcap,
                     "trusted root version %lld: %s.%.40s: expected {\"role\", \"threshold\" "
                     "1..keys, \"keys\": [distinct sha256 hex]}, found something else",
                     (long long)root_version, PINS_ROOT_FIELD, rec->string);
            err = POSGATE_ERR_REJECTED;
            goto out;
        }
        if (old != NULL && cJSON_Compare(old, pin, 1)) {
            cJSON_Delete(pin);
            continue;
        }
        if (old != NULL) {
            cJSON_ReplaceItemInObjectCaseSensitive(lists, rec->string, pin); /* keeps the name */
        } else {
            cJSON_AddItemToObject(lists, rec->string, pin);
        }
        changed = 1;
    }
    if (changed) {
        char *s = cJSON_PrintUnformatted(pins);

        if (s == NULL) {
            err = POSGATE_ERR_NOMEM;
            goto out;
        }
        err = plat_write_atomic(pins_path, s, strlen(s), 0600);
        cJSON_free(s);
        if (err != POSGATE_OK) {
            snprintf(errmsg, errcap, "cannot write %s: %s", pins_path, posgate_strerror(err));
        }
    }
out:
    cJSON_Delete(pins);
    cJSON_Delete(root);
    buf_free(&raw);
    return err;
}
