/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The authority-signed list config (list_config.h): built by the publisher from feed.json, and
 * compared with a feed.json by the kiosk and by the publisher. cJSON is used only here and in
 * the other JSON codecs.
 */
#include "list_config.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "feed_config.h"
#include "json_canon.h"
#include "plat_mem.h"

#define VALUE_TEXT_MAX 96 /* bytes of a JSON value quoted in a message */

static void say(char *errmsg, size_t errcap, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
say(char *errmsg, size_t errcap, const char *fmt, ...)
{
    va_list ap;

    if (errmsg == NULL || errcap == 0) {
        return;
    }
    va_start(ap, fmt);
    vsnprintf(errmsg, errcap, fmt, ap);
    va_end(ap);
}

/* The list object of id in feed.json's "lists", or NULL; *pos its position. */
static const cJSON *
find_list(const cJSON *feed, const char *id, int *pos)
{
    const cJSON *l;
    int i = 0;

    cJSON_ArrayForEach(l, cJSON_GetObjectItemCaseSensitive(feed, "lists"))
    {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(l, "id");

        if (cJSON_IsString(v) && strcmp(v->valuestring, id) == 0) {
            *pos = i;
            return l;
        }
        i++;
    }
    return NULL;
}

enum posgate_err
list_config_build(const void *feed_json, size_t len, const char *list_id, const uint16_t *reasons,
                  size_t n, struct buf *out, char *errmsg, size_t errcap)
{
    cJSON *feed = NULL, *doc = NULL, *arr;
    const cJSON *list, *feed_reasons, *services;
    enum posgate_err err;
    int pos = 0;

    if (feed_json == NULL || list_id == NULL || out == NULL || (reasons == NULL && n > 0)) {
        say(errmsg, errcap, "list config: expected feed.json, a list id and an output buffer");
        return POSGATE_ERR_INVALID;
    }
    err = json_parse_bounded(feed_json, len, FEED_CONFIG_MAX_BYTES, &feed, errmsg, errcap);
    if (err != POSGATE_OK) {
        goto out;
    }
    err = POSGATE_ERR_INVALID;
    list = find_list(feed, list_id, &pos);
    if (list == NULL) {
        say(errmsg, errcap, "list config: expected list %s in feed.json, found none", list_id);
        goto out;
    }
    feed_reasons = cJSON_GetObjectItemCaseSensitive(feed, "reasons");
    services = cJSON_GetObjectItemCaseSensitive(feed, "services");
    if (!cJSON_IsArray(feed_reasons) || !cJSON_IsArray(services)) {
        say(errmsg, errcap, "list config: expected feed.json with reasons and services arrays");
        goto out;
    }
    doc = cJSON_CreateObject();
    err = POSGATE_ERR_NOMEM;
    if (doc == NULL || cJSON_AddNumberToObject(doc, "format", LIST_CONFIG_FORMAT) == NULL ||
        !cJSON_AddItemToObject(doc, "list", cJSON_Duplicate(list, 1)) ||
        !cJSON_AddItemToObject(doc, "services", cJSON_Duplicate(services, 1)) ||
        (arr = cJSON_AddArrayToObject(doc, "reasons")) == NULL) {
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        const cJSON *r = cJSON_GetArrayItem(feed_reasons, reasons[i]);
        cJSON *o;

        if (r == NULL || (i > 0 && reasons[i] <= reasons[i - 1])) {
            say(errmsg, errcap,
                "list config: reason index %u: expected a position in reasons (%d of them) "
                "above %d, found %u",
                (unsigned)reasons[i], cJSON_GetArraySize(feed_reasons),
                i > 0 ? (int)reasons[i - 1] : -1, (unsigned)reasons[i]);
            err = POSGATE_ERR_INVALID;
            goto out;
        }
        o = cJSON_CreateObject();
        if (o == NULL) {
            goto out;
        }
        cJSON_AddItemToArray(arr, o);
        if (cJSON_AddNumberToObject(o, "index", reasons[i]) == NULL ||
            !cJSON_AddItemToObject(o, "reason", cJSON_Duplicate(r, 1))) {
            goto out;
        }
    }
    err = json_canon_encode(doc, out);
    if (err != POSGATE_OK) {
        say(errmsg, errcap, "list config of %s: cannot encode it: %s", list_id,
            posgate_strerror(err));
    }
out:
    if (err == POSGATE_ERR_NOMEM) {
        say(errmsg, errcap, "list config of %s: out of memory", list_id);
    }
    cJSON_Delete(doc);
    cJSON_Delete(feed);
    return err;
}

/* v as compact JSON text for a message, at most VALUE_TEXT_MAX bytes; "nothing" when absent. */
static void
value_text(const cJSON *v, char out[VALUE_TEXT_MAX + 4])
{
    char *s;

    if (v == NULL) {
        snprintf(out, VALUE_TEXT_MAX + 4, "nothing");
        return;
    }
    s = cJSON_PrintUnformatted(v);
    if (s == NULL) {
        snprintf(out, VALUE_TEXT_MAX + 4, "(a value)");
        return;
    }
    if (strlen(s) > VALUE_TEXT_MAX) {
        snprintf(out, VALUE_TEXT_MAX + 4, "%.*s...", VALUE_TEXT_MAX, s);
    } else {
        snprintf(out, VALUE_TEXT_MAX + 4, "%s", s);
    }
    cJSON_free(s);
}

/* The first member of signed_obj or feed_obj that differs, key by key (a member on one side
 * only differs, as does a repeated key); NULL when they are equal. *sv and *fv are the two
 * values (NULL for the side that lacks it). */
static const char *
first_difference(const cJSON *signed_obj, const cJSON *feed_obj, const cJSON **sv, const cJSON **fv)
{
    const cJSON *m;

    for (m = signed_obj->child; m != NULL; m = m->next) {
        const cJSON *f = cJSON_GetObjectItemCaseSensitive(feed_obj, m->string);

        if (f == NULL || !cJSON_Compare(m, f, 1)) {
            *sv = m;
            *fv = f;
            return m->string;
        }
    }
    for (m = feed_obj->child; m != NULL; m = m->next) {
        const cJSON *s = cJSON_GetObjectItemCaseSensitive(signed_obj, m->string);

        if (s == NULL || cJSON_GetObjectItemCaseSensitive(feed_obj, m->string) != m) {
            *sv = s;
            *fv = m;
            return m->string != NULL ? m->string : "";
        }
    }
    return NULL;
}

/* REJECTED naming the list, the field (where.key) and both values. */
static enum posgate_err
differs(char *errmsg, size_t errcap, const char *list_id, const char *where, const char *key,
        const cJSON *sv, const cJSON *fv)
{
    char s[VALUE_TEXT_MAX + 4], f[VALUE_TEXT_MAX + 4];

    value_text(sv, s);
    value_text(fv, f);
    say(errmsg, errcap,
        "list %s: config/feed.json differs from what its authority signed in "
        "lists/%s/config.json: %s%s%s is %s, the authority signed %s: refused",
        list_id, list_id, where, key[0] != 0 ? "." : "", key, f, s);
    return POSGATE_ERR_REJECTED;
}

/* The signed list config's shape: format, list (with the right id), reasons, services. */
static enum posgate_err
check_shape(const cJSON *sig, const char *list_id, char *errmsg, size_t errcap)
{
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(sig, "list");
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(list, "id");
    const cJSON *reasons = cJSON_GetObjectItemCaseSensitive(sig, "reasons");
    const cJSON *services = cJSON_GetObjectItemCaseSensitive(sig, "services");
    const cJSON *r, *s;
    int64_t format = 0, prev = -1;

    if (!cJSON_IsObject(sig) || json_get_int(sig, "format", 0, INT32_MAX, &format) != POSGATE_OK ||
        format != LIST_CONFIG_FORMAT) {
        say(errmsg, errcap, "lists/%s/config.json: expected an object of format %d, found %s%lld",
            list_id, LIST_CONFIG_FORMAT, cJSON_IsObject(sig) ? "format " : "no object",
            cJSON_IsObject(sig) ? (long long)format : 0LL);
        return POSGATE_ERR_REJECTED;
    }
    if (!cJSON_IsObject(list) || !cJSON_IsString(id) || strcmp(id->valuestring, list_id) != 0) {
        say(errmsg, errcap,
            "lists/%s/config.json: expected \"list\" to be the object of list %s, found %s%.40s",
            list_id, list_id, cJSON_IsString(id) ? "list " : "no list object",
            cJSON_IsString(id) ? id->valuestring : "");
        return POSGATE_ERR_REJECTED;
    }
    if (!cJSON_IsArray(reasons) || !cJSON_IsArray(services)) {
        say(errmsg, errcap, "lists/%s/config.json: expected \"reasons\" and \"services\" arrays",
            list_id);
        return POSGATE_ERR_REJECTED;
    }
    cJSON_ArrayForEach(s, services)
    {
        if (!cJSON_IsString(s)) {
            say(errmsg, errcap, "lists/%s/config.json: expected services to be strings", list_id);
            return POSGATE_ERR_REJECTED;
        }
    }
    cJSON_ArrayForEach(r, reasons)
    {
        int64_t idx;

        if (json_get_int(r, "index", 0, FEED_REASONS_MAX - 1, &idx) != POSGATE_OK || idx <= prev ||
            !cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(r, "reason"))) {
            say(errmsg, errcap,
                "lists/%s/config.json: expected reasons as {\"index\", \"reason\"} with "
                "strictly increasing indices below %d (after %lld)",
                list_id, FEED_REASONS_MAX, (long long)prev);
            return POSGATE_ERR_REJECTED;
        }
        prev = idx;
    }
    return POSGATE_OK;
}

enum posgate_err
list_config_check(const void *feed_json, size_t len, const char *list_id, const void *signed_json,
                  size_t slen, char *errmsg, size_t errcap)
{
    cJSON *feed = NULL, *sig = NULL;
    const cJSON *flist, *sv = NULL, *fv = NULL, *r, *fservices, *s;
    const char *key;
    char msg[256], where[48];
    enum posgate_err err = POSGATE_ERR_REJECTED;
    int pos = 0, i = 0;

    if (feed_json == NULL || list_id == NULL || signed_json == NULL) {
        say(errmsg, errcap, "list config check: expected feed.json, a list id and its config");
        return POSGATE_ERR_INVALID;
    }
    if (json_parse_bounded(signed_json, slen, LIST_CONFIG_MAX_BYTES, &sig, msg, sizeof(msg)) !=
        POSGATE_OK) {
        say(errmsg, errcap, "lists/%s/config.json: %s: refused", list_id, msg);
        goto out;
    }
    err = check_shape(sig, list_id, errmsg, errcap);
    if (err != POSGATE_OK) {
        goto out;
    }
    err = POSGATE_ERR_REJECTED;
    if (json_parse_bounded(feed_json, len, FEED_CONFIG_MAX_BYTES, &feed, msg, sizeof(msg)) !=
        POSGATE_OK) {
        say(errmsg, errcap, "config/feed.json: %s: refused", msg);
        goto out;
    }
    flist = find_list(feed, list_id, &pos);
    if (flist == NULL || !cJSON_IsObject(flist)) {
        say(errmsg, errcap,
            "list %s: config/feed.json drops it, but its authority signed it in "
            "lists/%s/config.json: refused",
            list_id, list_id);
        goto out;
    }
    snprintf(where, sizeof(where), "lists[%d]", pos);
    key = first_difference(cJSON_GetObjectItemCaseSensitive(sig, "list"), flist, &sv, &fv);
    if (key != NULL) {
        err = differs(errmsg, errcap, list_id, where, key, sv, fv);
        goto out;
    }
    fservices = cJSON_GetObjectItemCaseSensitive(feed, "services");
    cJSON_ArrayForEach(s, cJSON_GetObjectItemCaseSensitive(sig, "services"))
    {
        const cJSON *f = cJSON_GetArrayItem(fservices, i);

        if (f == NULL || !cJSON_Compare(s, f, 1)) {
            snprintf(where, sizeof(where), "services[%d]", i);
            err = differs(errmsg, errcap, list_id, where, "", s, f);
            goto out;
        }
        i++;
    }
    cJSON_ArrayForEach(r, cJSON_GetObjectItemCaseSensitive(sig, "reasons"))
    {
        int64_t idx = 0;
        const cJSON *sr = cJSON_GetObjectItemCaseSensitive(r, "reason");
        const cJSON *fr;

        if (json_get_int(r, "index", 0, FEED_REASONS_MAX - 1, &idx) != POSGATE_OK) {
            goto out; /* check_shape let it through: cannot happen */
        }
        fr = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(feed, "reasons"), (int)idx);
        snprintf(where, sizeof(where), "reasons[%lld]", (long long)idx);
        if (fr == NULL || !cJSON_IsObject(fr)) {
            err = differs(errmsg, errcap, list_id, where, "", sr, fr);
            goto out;
        }
        key = first_difference(sr, fr, &sv, &fv);
        if (key != NULL) {
            err = differs(errmsg, errcap, list_id, where, key, sv, fv);
            goto out;
        }
    }
    err = POSGATE_OK;
out:
    cJSON_Delete(sig);
    cJSON_Delete(feed);
    return err;
}
