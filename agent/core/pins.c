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
#include "plat_clock.h"
#include "plat_file.h"
#include "plat_log.h"
#include "plat_mem.h"

#define PINS_MAX_BYTES (1u << 20)
#define TARGETS_MAX    (8u << 20)
#define TIME_MAX       40 /* an RFC 3339 time, with a fraction and an offset */

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

/* pins.json into *out, with its "lists" object (added when absent) in *lists and its "retired"
 * object in *retired (NULL when absent); a missing file is an empty one. CORRUPT for an
 * unreadable file or a member that is not an object; IO, NOMEM. */
static enum posgate_err
pins_load(const char *pins_path, cJSON **out, cJSON **lists, cJSON **retired, char *errmsg,
          size_t errcap)
{
    struct buf raw = BUF_INIT(PINS_MAX_BYTES);
    cJSON *pins = NULL;
    char msg[160];
    enum posgate_err err = plat_read_file(pins_path, &raw);

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
    } else {
        snprintf(errmsg, errcap, "cannot read %s: %s", pins_path, posgate_strerror(err));
    }
    buf_free(&raw);
    if (err != POSGATE_OK) {
        cJSON_Delete(pins);
        return err;
    }
    *lists = cJSON_GetObjectItemCaseSensitive(pins, "lists");
    if (*lists == NULL) {
        *lists = cJSON_AddObjectToObject(pins, "lists");
    }
    *retired = cJSON_GetObjectItemCaseSensitive(pins, "retired");
    if (!cJSON_IsObject(*lists) || (*retired != NULL && !cJSON_IsObject(*retired))) {
        snprintf(errmsg, errcap, "%s: \"%s\" is not an object", pins_path,
                 cJSON_IsObject(*lists) ? "retired" : "lists");
        cJSON_Delete(pins);
        return POSGATE_ERR_CORRUPT;
    }
    *out = pins;
    return POSGATE_OK;
}

static enum posgate_err
pins_save(const char *pins_path, const cJSON *pins, char *errmsg, size_t errcap)
{
    char *s = cJSON_PrintUnformatted(pins);
    enum posgate_err err;

    if (s == NULL) {
        return POSGATE_ERR_NOMEM;
    }
    err = plat_write_atomic(pins_path, s, strlen(s), 0600);
    cJSON_free(s);
    if (err != POSGATE_OK) {
        snprintf(errmsg, errcap, "cannot write %s: %s", pins_path, posgate_strerror(err));
    }
    return err;
}

/* A pin the root marked retired ("retired" in its record) whose list the feed no longer carries
 * moves from "lists" to "retired": the list is unpinned, and the entry keeps the root version
 * and the time of its retirement (the kiosk's audit trail). Returns how many moved. */
static int
unpin_retired(cJSON *pins, cJSON *lists, cJSON **retired, const struct feed_config *cfg)
{
    cJSON *pin = lists->child;
    int moved = 0;

    while (pin != NULL) {
        cJSON *next = pin->next;
        const cJSON *when = cJSON_GetObjectItemCaseSensitive(pin, "retired");
        const cJSON *root = cJSON_GetObjectItemCaseSensitive(pin, "root");

        if (cJSON_IsString(when) && feed_config_list_find(cfg, pin->string) < 0) {
            if (*retired == NULL) {
                *retired = cJSON_AddObjectToObject(pins, "retired");
            }
            if (*retired == NULL) {
                break; /* out of memory: the pin stays, which refuses nothing it should allow */
            }
            plat_log(PLAT_LOG_INFO,
                     "list %s: retired by root version %d (%s) and no longer in the feed: "
                     "unpinned; its entries are removed with this feed version",
                     pin->string, cJSON_IsNumber(root) ? root->valueint : 0, when->valuestring);
            cJSON_AddItemToObject(*retired, pin->string, cJSON_DetachItemViaPointer(lists, pin));
            moved++;
        }
        pin = next;
    }
    return moved;
}

enum posgate_err
pins_check(const char *pins_path, const void *targets_json, size_t len, const struct tuf_meta *meta,
           const struct feed_config *cfg, char *errmsg, size_t errcap)
{
    cJSON *pins = NULL, *lists = NULL, *retired = NULL, *targets = NULL, *keys;
    enum posgate_err err;
    char msg[160];
    int changed = 0;

    err = pins_load(pins_path, &pins, &lists, &retired, errmsg, errcap);
    if (err != POSGATE_OK) {
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
        const cJSON *gone = cJSON_GetObjectItemCaseSensitive(retired, id);
        cJSON *hashes = NULL;

        if (gone != NULL) {
            const cJSON *gv = cJSON_GetObjectItemCaseSensitive(gone, "root");
            const cJSON *gt = cJSON_GetObjectItemCaseSensitive(gone, "retired");

            snprintf(errmsg, errcap,
                     "list %s was retired by the root (root version %d, retired %s) and has left "
                     "this kiosk's feed; this feed lists it again: refused (a retired list "
                     "returns only delegated to its authority and recorded anew in the root's "
                     "x-posgate-authorities, signed by the root threshold)",
                     id, cJSON_IsNumber(gv) ? gv->valueint : 0,
                     cJSON_IsString(gt) ? gt->valuestring : "?");
            err = POSGATE_ERR_REJECTED;
            goto out;
        }
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
    changed |= unpin_retired(pins, lists, &retired, cfg) > 0;
    if (changed) {
        err = pins_save(pins_path, pins, errmsg, errcap);
    }
out:
    cJSON_Delete(pins);
    cJSON_Delete(targets);
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

/* The record of one list in the root's x-posgate-authorities, as a pin; NULL when malformed. A
 * retired list's record keeps its last authority and adds "retired": the time its retirement
 * was signed (RFC 3339), copied into the pin. */
static cJSON *
pin_from_record(const cJSON *rec, int64_t root_version)
{
    const cJSON *role = cJSON_GetObjectItemCaseSensitive(rec, "role");
    const cJSON *keys = cJSON_GetObjectItemCaseSensitive(rec, "keys");
    const cJSON *retired = cJSON_GetObjectItemCaseSensitive(rec, "retired");
    int64_t thr, when;
    cJSON *pin, *arr;
    char **hex = NULL;
    int n = cJSON_GetArraySize(keys);

    if (!cJSON_IsString(role) || !cJSON_IsArray(keys) || n < 1 || n > 256 ||
        json_get_int(rec, "threshold", 1, n, &thr) != POSGATE_OK) {
        return NULL;
    }
    if (retired != NULL && (!cJSON_IsString(retired) || strlen(retired->valuestring) > TIME_MAX ||
                            plat_time_parse(retired->valuestring, &when) != POSGATE_OK)) {
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
    if (retired != NULL) {
        cJSON_AddStringToObject(pin, "retired", retired->valuestring);
    }
    plat_free(hex);
    return pin;
bad:
    plat_free(hex);
    cJSON_Delete(arr);
    cJSON_Delete(pin);
    return NULL;
}

static int
same_member(const cJSON *a, const cJSON *b, const char *name)
{
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(a, name);
    const cJSON *y = cJSON_GetObjectItemCaseSensitive(b, name);

    return (x == NULL && y == NULL) || (x != NULL && y != NULL && cJSON_Compare(x, y, 1));
}

/* old already holds what pin says, set by a root: it keeps the root version that first set it
 * (a later root that restates the record changes nothing). */
static int
same_pin(const cJSON *old, const cJSON *pin)
{
    return cJSON_GetObjectItemCaseSensitive(old, "root") != NULL && same_member(old, pin, "role") &&
           same_member(old, pin, "threshold") && same_member(old, pin, "keys") &&
           same_member(old, pin, "retired");
}

enum posgate_err
pins_apply_root(const char *pins_path, const void *root_json, size_t len, char *errmsg,
                size_t errcap)
{
    cJSON *pins = NULL, *root = NULL, *lists = NULL, *retired = NULL;
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
    err = pins_load(pins_path, &pins, &lists, &retired, errmsg, errcap);
    if (err != POSGATE_OK) {
        goto out;
    }
    cJSON_ArrayForEach(rec, auth)
    {
        cJSON *pin = pin_from_record(rec, root_version);
        cJSON *old = cJSON_GetObjectItemCaseSensitive(lists, rec->string);
        const cJSON *gone = cJSON_GetObjectItemCaseSensitive(retired, rec->string);

        if (pin == NULL) {
            snprintf(errmsg, errcap,
                     "trusted root version %lld: %s.%.40s: expected {\"role\", \"threshold\" "
                     "1..keys, \"keys\": [distinct sha256 hex], optional \"retired\": RFC 3339 "
                     "time}, found something else",
                     (long long)root_version, PINS_ROOT_FIELD, rec->string);
            err = POSGATE_ERR_REJECTED;
            goto out;
        }
        if (gone != NULL) {
            if (cJSON_GetObjectItemCaseSensitive(pin, "retired") != NULL) {
                cJSON_Delete(pin); /* retired, and already gone from this kiosk's feed */
                continue;
            }
            /* recorded anew: the list may return, pinned to its new authority */
            cJSON_DeleteItemFromObjectCaseSensitive(retired, rec->string);
            changed = 1;
        }
        if (old != NULL && same_pin(old, pin)) {
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
        err = pins_save(pins_path, pins, errmsg, errcap);
    }
out:
    cJSON_Delete(pins);
    cJSON_Delete(root);
    return err;
}
