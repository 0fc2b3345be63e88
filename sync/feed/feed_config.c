/* SPDX-License-Identifier: Apache-2.0 */
/*
 * feed.json parsing and validation, and the allocation-free lookups over the result (service
 * taxonomy, lists, reasons). cJSON is used only during parsing; the parsed config holds plain
 * arrays and sorted index tables for binary search. See feed_config.h for the format.
 */
#include "feed_config.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "json_canon.h"
#include "plat_clock.h"
#include "plat_mem.h"

struct ctx {
    char *errmsg;
    size_t errcap;
    unsigned flags;
};

static enum posgate_err fail(struct ctx *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static enum posgate_err
fail(struct ctx *c, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(c->errmsg, c->errcap, fmt, ap);
    va_end(ap);
    return POSGATE_ERR_INVALID;
}

/* A short description of a JSON value's kind for "found ..." messages. */
static const char *
kind_of(const cJSON *v)
{
    if (v == NULL) {
        return "nothing";
    }
    if (cJSON_IsString(v)) {
        return "a string";
    }
    if (cJSON_IsNumber(v)) {
        return "a number";
    }
    if (cJSON_IsArray(v)) {
        return "an array";
    }
    if (cJSON_IsObject(v)) {
        return "an object";
    }
    if (cJSON_IsBool(v)) {
        return "a boolean";
    }
    return "null";
}

static enum posgate_err
check_keys(struct ctx *c, const cJSON *obj, const char *where, const char *const *allowed)
{
    const cJSON *m;

    if ((c->flags & FEED_CONFIG_STRICT) == 0) {
        return POSGATE_OK;
    }
    for (m = obj->child; m != NULL; m = m->next) {
        size_t i;
        bool known = false;

        for (i = 0; allowed[i] != NULL; i++) {
            if (m->string != NULL && strcmp(m->string, allowed[i]) == 0) {
                known = true;
                break;
            }
        }
        if (!known) {
            return fail(c, "%s: unknown key \"%.40s\" (strict mode)", where,
                        m->string != NULL ? m->string : "");
        }
    }
    return POSGATE_OK;
}

/* Id text: 1..max of [a-z0-9_-]. */
static bool
valid_id(const char *s, size_t max)
{
    size_t n = strlen(s);

    if (n == 0 || n > max) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];

        if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '_' || ch == '-')) {
            return false;
        }
    }
    return true;
}

/* Human text: valid UTF-8 without control characters (tab and newline allowed when multi). */
static bool
valid_text(const char *s, bool multiline)
{
    const unsigned char *p = (const unsigned char *)s;

    while (*p != 0) {
        unsigned char b = *p;
        size_t n, i;
        uint32_t cp;

        if (b < 0x80) {
            if (b == 0x7f || (b < 0x20 && !(multiline && (b == '\t' || b == '\n')))) {
                return false;
            }
            p++;
            continue;
        }
        if ((b & 0xe0) == 0xc0) {
            n = 1;
            cp = b & 0x1fu;
        } else if ((b & 0xf0) == 0xe0) {
            n = 2;
            cp = b & 0x0fu;
        } else if ((b & 0xf8) == 0xf0) {
            n = 3;
            cp = b & 0x07u;
        } else {
            return false;
        }
        for (i = 1; i <= n; i++) {
            if ((p[i] & 0xc0) != 0x80) {
                return false;
            }
            cp = (cp << 6) | (p[i] & 0x3fu);
        }
        if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) ||
            cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff) || (cp >= 0x80 && cp < 0xa0)) {
            return false;
        }
        p += n + 1;
    }
    return true;
}

/* A required (or optional when def != NULL) string member of bounded length. */
static enum posgate_err
get_string(struct ctx *c, const cJSON *obj, const char *where, const char *key, size_t max,
           const char *def, const char **out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    size_t n;

    if (v == NULL && def != NULL) {
        *out = def;
        return POSGATE_OK;
    }
    if (!cJSON_IsString(v) || v->valuestring == NULL) {
        return fail(c, "%s.%s: expected a string, found %s", where, key, kind_of(v));
    }
    n = strlen(v->valuestring);
    if (n == 0 || n > max) {
        return fail(c, "%s.%s: expected 1 to %zu bytes, found %zu", where, key, max, n);
    }
    *out = v->valuestring;
    return POSGATE_OK;
}

static enum posgate_err
get_text(struct ctx *c, const cJSON *obj, const char *where, const char *key, size_t max,
         bool multiline, char **out)
{
    const char *s;
    enum posgate_err err = get_string(c, obj, where, key, max, NULL, &s);

    if (err != POSGATE_OK) {
        return err;
    }
    if (!valid_text(s, multiline)) {
        return fail(c, "%s.%s: expected UTF-8 text without control characters", where, key);
    }
    *out = plat_strdup(s);
    if (*out == NULL) {
        return POSGATE_ERR_NOMEM;
    }
    return POSGATE_OK;
}

static enum posgate_err
get_array(struct ctx *c, const cJSON *obj, const char *where, const char *key, size_t max,
          bool optional, const cJSON **out, size_t *count)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    int n;

    if (v == NULL && optional) {
        *out = NULL;
        *count = 0;
        return POSGATE_OK;
    }
    if (!cJSON_IsArray(v)) {
        return fail(c, "%s%s%s: expected an array, found %s", where, where[0] ? "." : "", key,
                    kind_of(v));
    }
    n = cJSON_GetArraySize(v);
    if (n < 0 || (size_t)n > max) {
        return fail(c, "%s%s%s: expected at most %zu elements, found %d", where,
                    where[0] ? "." : "", key, max, n);
    }
    *out = v;
    *count = (size_t)n;
    return POSGATE_OK;
}

/* Merge sort of uint16 indices with a context comparator (qsort has no context). */
typedef int (*cmp_fn)(const struct feed_config *cfg, uint16_t a, uint16_t b);

static void
sort_indices(const struct feed_config *cfg, uint16_t *a, uint16_t *tmp, size_t n, cmp_fn cmp)
{
    size_t mid, i, j, k;

    if (n < 2) {
        return;
    }
    mid = n / 2;
    sort_indices(cfg, a, tmp, mid, cmp);
    sort_indices(cfg, a + mid, tmp, n - mid, cmp);
    i = 0;
    j = mid;
    k = 0;
    while (i < mid && j < n) {
        if (cmp(cfg, a[i], a[j]) <= 0) {
            tmp[k++] = a[i++];
        } else {
            tmp[k++] = a[j++];
        }
    }
    while (i < mid) {
        tmp[k++] = a[i++];
    }
    while (j < n) {
        tmp[k++] = a[j++];
    }
    memcpy(a, tmp, n * sizeof(*a));
}

static int
cmp_service(const struct feed_config *cfg, uint16_t a, uint16_t b)
{
    return strcmp(cfg->services[a].name, cfg->services[b].name);
}

static int
cmp_list(const struct feed_config *cfg, uint16_t a, uint16_t b)
{
    return strcmp(cfg->lists[a].id, cfg->lists[b].id);
}

static int
cmp_reason(const struct feed_config *cfg, uint16_t a, uint16_t b)
{
    return strcmp(cfg->reasons[a].id, cfg->reasons[b].id);
}

static enum posgate_err
build_index(struct feed_config *cfg, size_t n, cmp_fn cmp, uint16_t **out, int *dup)
{
    uint16_t *idx = plat_calloc(n > 0 ? n : 1, sizeof(*idx));
    uint16_t *tmp = plat_calloc(n > 0 ? n : 1, sizeof(*tmp));

    *dup = -1;
    if (idx == NULL || tmp == NULL) {
        plat_free(idx);
        plat_free(tmp);
        return POSGATE_ERR_NOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        idx[i] = (uint16_t)i;
    }
    sort_indices(cfg, idx, tmp, n, cmp);
    plat_free(tmp);
    for (size_t i = 1; i < n; i++) {
        if (cmp(cfg, idx[i - 1], idx[i]) == 0) {
            *dup = idx[i - 1] > idx[i] ? idx[i - 1] : idx[i];
            break;
        }
    }
    *out = idx;
    return POSGATE_OK;
}

static int
find_sorted_n(const uint16_t *idx, size_t n, const char *name, size_t len,
              const char *(*key_of)(const struct feed_config *, uint16_t),
              const struct feed_config *cfg)
{
    size_t lo = 0, hi = n;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const char *k = key_of(cfg, idx[mid]);
        int r = strncmp(k, name, len);

        if (r == 0 && k[len] != 0) {
            r = 1; /* k is longer: it sorts after name */
        }
        if (r == 0) {
            return idx[mid];
        }
        if (r < 0) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return -1;
}

static const char *
service_key(const struct feed_config *cfg, uint16_t i)
{
    return cfg->services[i].name;
}

static const char *
list_key(const struct feed_config *cfg, uint16_t i)
{
    return cfg->lists[i].id;
}

static const char *
reason_key(const struct feed_config *cfg, uint16_t i)
{
    return cfg->reasons[i].id;
}

/* Service name syntax: labels of [a-z0-9_-]{1,32} joined by dots, at most 8, name <= 64. */
static bool
valid_service_name(const char *s, unsigned *depth)
{
    size_t n = strlen(s), label = 0;
    unsigned d = 1;

    if (n == 0 || n > FEED_SERVICE_NAME_MAX) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];

        if (ch == '.') {
            if (label == 0) {
                return false;
            }
            label = 0;
            d++;
            continue;
        }
        if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '_' || ch == '-')) {
            return false;
        }
        if (++label > FEED_SERVICE_LABEL_MAX) {
            return false;
        }
    }
    if (label == 0 || d > FEED_SERVICE_DEPTH_MAX) {
        return false;
    }
    *depth = d;
    return true;
}

static enum posgate_err
parse_services(struct ctx *c, const cJSON *root, struct feed_config *cfg)
{
    const cJSON *arr, *v;
    size_t n, i = 0;
    enum posgate_err err;
    int dup;

    err = get_array(c, root, "", "services", FEED_SERVICES_MAX, false, &arr, &n);
    if (err != POSGATE_OK) {
        return err;
    }
    if (n == 0) {
        return fail(c, "services: expected at least one service, found an empty array");
    }
    cfg->services = plat_calloc(n, sizeof(*cfg->services));
    if (cfg->services == NULL) {
        return POSGATE_ERR_NOMEM;
    }
    cJSON_ArrayForEach(v, arr)
    {
        unsigned depth = 0;

        if (!cJSON_IsString(v) || v->valuestring == NULL) {
            return fail(c, "services[%zu]: expected a string, found %s", i, kind_of(v));
        }
        if (!valid_service_name(v->valuestring, &depth)) {
            return fail(c,
                        "services[%zu]: expected a dotted name of labels [a-z0-9_-]{1,32} "
                        "(at most %d labels, %d bytes), found \"%.64s\"",
                        i, FEED_SERVICE_DEPTH_MAX, FEED_SERVICE_NAME_MAX, v->valuestring);
        }
        memcpy(cfg->services[i].name, v->valuestring, strlen(v->valuestring) + 1);
        cfg->services[i].depth = (uint8_t)depth;
        cfg->services[i].parent = FEED_NONE;
        i++;
    }
    cfg->n_services = (uint16_t)n;
    err = build_index(cfg, n, cmp_service, &cfg->services_by_name, &dup);
    if (err != POSGATE_OK) {
        return err;
    }
    if (dup >= 0) {
        return fail(c, "services[%d]: \"%s\" is listed twice", dup, cfg->services[dup].name);
    }
    for (i = 0; i < n; i++) {
        const char *name = cfg->services[i].name;
        const char *dot = strrchr(name, '.');
        int p;

        if (dot == NULL) {
            continue;
        }
        p = feed_config_service_find_n(cfg, name, (size_t)(dot - name));
        if (p < 0) {
            return fail(c,
                        "services[%zu]: \"%s\" needs its parent \"%.*s\" in services, "
                        "which is missing",
                        i, name, (int)(dot - name), name);
        }
        cfg->services[i].parent = (uint16_t)p;
    }
    return POSGATE_OK;
}

/* "Z" or [+-]HH:MM with HH <= 14 and MM <= 59, into seconds east of UTC. */
static bool
parse_utc_offset(const char *s, int32_t *out)
{
    int h, m;

    if (strcmp(s, "Z") == 0) {
        *out = 0;
        return true;
    }
    if (strlen(s) != 6 || (s[0] != '+' && s[0] != '-') || s[3] != ':') {
        return false;
    }
    for (size_t i = 1; i < 6; i++) {
        if (i != 3 && (s[i] < '0' || s[i] > '9')) {
            return false;
        }
    }
    h = (s[1] - '0') * 10 + (s[2] - '0');
    m = (s[4] - '0') * 10 + (s[5] - '0');
    if (h > 14 || m > 59 || (h == 14 && m > 0)) {
        return false;
    }
    *out = (int32_t)((s[0] == '-' ? -1 : 1) * (h * 3600 + m * 60));
    return true;
}

/* An optional integer member within [lo, hi]; def when absent. */
static enum posgate_err
get_uint(struct ctx *c, const cJSON *obj, const char *where, const char *key, uint32_t lo,
         uint32_t hi, uint32_t def, uint32_t *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);

    if (v == NULL) {
        *out = def;
        return POSGATE_OK;
    }
    if (!cJSON_IsNumber(v) || v->valuedouble != (double)(int64_t)v->valuedouble ||
        v->valuedouble < (double)lo || v->valuedouble > (double)hi) {
        return fail(c, "%s.%s: expected an integer from %u to %u, found %s", where, key, lo, hi,
                    cJSON_IsNumber(v) ? "another number" : kind_of(v));
    }
    *out = (uint32_t)v->valuedouble;
    return POSGATE_OK;
}

/* The publisher's mass-change guard of a list: {"percent": P, "rows": R}, both optional. */
static enum posgate_err
parse_mass_change(struct ctx *c, const cJSON *o, const char *list, struct feed_list *l)
{
    static const char *const keys[] = {"percent", "rows", NULL};
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(o, "mass_change");
    char where[48];
    uint32_t pct = FEED_MASS_PERCENT, rows = FEED_MASS_ROWS;
    enum posgate_err err = POSGATE_OK;

    snprintf(where, sizeof(where), "%s.mass_change", list);
    if (m != NULL) {
        if (!cJSON_IsObject(m)) {
            return fail(c, "%s: expected an object like {\"percent\": 10, \"rows\": 100}, found %s",
                        where, kind_of(m));
        }
        err = check_keys(c, m, where, keys);
        if (err == POSGATE_OK) {
            err = get_uint(c, m, where, "percent", 1, 100, FEED_MASS_PERCENT, &pct);
        }
        if (err == POSGATE_OK) {
            err = get_uint(c, m, where, "rows", 0, 1000000000u, FEED_MASS_ROWS, &rows);
        }
    }
    l->mass_percent = (uint8_t)pct;
    l->mass_min_rows = rows;
    return err;
}

static enum posgate_err
parse_list(struct ctx *c, const cJSON *o, size_t i, struct feed_list *l)
{
    static const char *const keys[] = {
        "id",       "authority", "jurisdictions", "stale_after",
        "stale_policy", "timezone", "mass_change", NULL};
    char where[32];
    const char *s;
    const cJSON *arr, *v;
    size_t n, j = 0;
    enum posgate_err err;

    snprintf(where, sizeof(where), "lists[%zu]", i);
    if (!cJSON_IsObject(o)) {
        return fail(c, "%s: expected an object, found %s", where, kind_of(o));
    }
    err = check_keys(c, o, where, keys);
    if (err != POSGATE_OK) {
        return err;
    }
    err = get_string(c, o, where, "id", FEED_NAME_ID_MAX, NULL, &s);
    if (err != POSGATE_OK) {
        return err;
    }
    if (!valid_id(s, FEED_NAME_ID_MAX)) {
        return fail(c, "%s.id: expected 1 to %d of [a-z0-9_-], found \"%.40s\"", where,
                    FEED_NAME_ID_MAX, s);
    }
    memcpy(l->id, s, strlen(s) + 1);
    err = get_text(c, o, where, "authority", FEED_AUTHORITY_MAX, false, &l->authority);
    if (err != POSGATE_OK) {
        return err;
    }
    err = get_array(c, o, where, "jurisdictions", FEED_JURISDICTIONS_MAX, true, &arr, &n);
    if (err != POSGATE_OK) {
        return err;
    }
    if (arr != NULL) {
        cJSON_ArrayForEach(v, arr)
        {
            const char *cc = cJSON_IsString(v) ? v->valuestring : NULL;

            if (cc == NULL || strlen(cc) != 2 || cc[0] < 'A' || cc[0] > 'Z' || cc[1] < 'A' ||
                cc[1] > 'Z') {
                return fail(c,
                            "%s.jurisdictions[%zu]: expected an ISO 3166 alpha-2 code in upper "
                            "case (\"CN\"), found %s%.16s%s",
                            where, j, cc != NULL ? "\"" : kind_of(v), cc != NULL ? cc : "",
                            cc != NULL ? "\"" : "");
            }
            for (size_t k = 0; k < j; k++) {
                if (strcmp(l->jurisdictions[k], cc) == 0) {
                    return fail(c, "%s.jurisdictions[%zu]: \"%s\" is listed twice", where, j, cc);
                }
            }
            memcpy(l->jurisdictions[j], cc, 3);
            j++;
        }
    }
    l->n_jurisdictions = (uint16_t)j;
    err = get_string(c, o, where, "stale_after", sizeof(l->stale_after) - 1, NULL, &s);
    if (err != POSGATE_OK) {
        return err;
    }
    if (plat_duration_parse(s, &l->stale_after_s) != POSGATE_OK || l->stale_after_s <= 0 ||
        l->stale_after_s > (int64_t)3650 * 86400) {
        return fail(c,
                    "%s.stale_after: expected a duration like \"48h\" or \"7d\" (1s to 3650d), "
                    "found \"%.15s\"",
                    where, s);
    }
    memcpy(l->stale_after, s, strlen(s) + 1);
    err = get_string(c, o, where, "stale_policy", 16, "refer", &s);
    if (err != POSGATE_OK) {
        return err;
    }
    if (strcmp(s, "allow") == 0) {
        l->stale_policy = FEED_STALE_ALLOW;
    } else if (strcmp(s, "refer") == 0) {
        l->stale_policy = FEED_STALE_REFER;
    } else if (strcmp(s, "deny") == 0) {
        l->stale_policy = FEED_STALE_DENY;
    } else {
        return fail(c, "%s.stale_policy: expected \"allow\", \"refer\" or \"deny\", found \"%s\"",
                    where, s);
    }
    err = get_string(c, o, where, "timezone", 16, "Z", &s);
    if (err != POSGATE_OK) {
        return err;
    }
    if (!parse_utc_offset(s, &l->tz_offset_s)) {
        return fail(c,
                    "%s.timezone: expected a UTC offset like \"+08:00\" or \"-05:30\" (at most "
                    "14 hours) or \"Z\", found \"%.16s\"",
                    where, s);
    }
    return parse_mass_change(c, o, where, l);
}

static enum posgate_err
parse_reason(struct ctx *c, const cJSON *o, size_t i, struct feed_config *cfg,
             struct feed_reason *r)
{
    static const char *const keys[] = {"id",    "authority", "legal_basis", "contest",
                                       "scope", "override",  "minors",      NULL};
    char where[32];
    const char *s;
    const cJSON *arr, *v;
    size_t n, j = 0;
    enum posgate_err err;

    snprintf(where, sizeof(where), "reasons[%zu]", i);
    if (!cJSON_IsObject(o)) {
        return fail(c, "%s: expected an object, found %s", where, kind_of(o));
    }
    err = check_keys(c, o, where, keys);
    if (err != POSGATE_OK) {
        return err;
    }
    err = get_string(c, o, where, "id", FEED_NAME_ID_MAX, NULL, &s);
    if (err != POSGATE_OK) {
        return err;
    }
    if (!valid_id(s, FEED_NAME_ID_MAX)) {
        return fail(c, "%s.id: expected 1 to %d of [a-z0-9_-], found \"%.40s\"", where,
                    FEED_NAME_ID_MAX, s);
    }
    memcpy(r->id, s, strlen(s) + 1);
    err = get_text(c, o, where, "authority", FEED_AUTHORITY_MAX, false, &r->authority);
    if (err == POSGATE_OK) {
        err = get_text(c, o, where, "legal_basis", FEED_TEXT_MAX, true, &r->legal_basis);
    }
    if (err == POSGATE_OK) {
        err = get_text(c, o, where, "contest", FEED_TEXT_MAX, true, &r->contest);
    }
    if (err == POSGATE_OK) {
        err = get_array(c, o, where, "scope", FEED_REASON_SCOPE_MAX, false, &arr, &n);
    }
    if (err != POSGATE_OK) {
        return err;
    }
    if (n == 0) {
        return fail(c, "%s.scope: expected at least one service, found an empty array", where);
    }
    cJSON_ArrayForEach(v, arr)
    {
        int idx;

        if (!cJSON_IsString(v) || v->valuestring == NULL) {
            return fail(c, "%s.scope[%zu]: expected a service name, found %s", where, j,
                        kind_of(v));
        }
        idx = feed_config_service_find(cfg, v->valuestring);
        if (idx < 0) {
            return fail(c, "%s.scope[%zu]: expected a service of the taxonomy, found \"%.64s\"",
                        where, j, v->valuestring);
        }
        for (size_t k = 0; k < j; k++) {
            if (r->scope[k] == (uint16_t)idx) {
                return fail(c, "%s.scope[%zu]: \"%s\" is listed twice", where, j, v->valuestring);
            }
        }
        r->scope[j++] = (uint16_t)idx;
    }
    r->n_scope = (uint16_t)j;
    err = get_string(c, o, where, "override", 16, "none", &s);
    if (err != POSGATE_OK) {
        return err;
    }
    if (strcmp(s, "none") == 0) {
        r->override = FEED_OVERRIDE_NONE;
    } else if (strcmp(s, "supervisor") == 0) {
        r->override = FEED_OVERRIDE_SUPERVISOR;
    } else {
        return fail(c, "%s.override: expected \"none\" or \"supervisor\", found \"%s\"", where, s);
    }
    err = get_string(c, o, where, "minors", 16, "deny", &s);
    if (err != POSGATE_OK) {
        return err;
    }
    if (strcmp(s, "deny") == 0) {
        r->minors = FEED_MINORS_DENY;
    } else if (strcmp(s, "refer") == 0) {
        r->minors = FEED_MINORS_REFER;
    } else {
        return fail(c, "%s.minors: expected \"deny\" or \"refer\", found \"%s\"", where, s);
    }
    return POSGATE_OK;
}

/* Optional: the publisher adds it; whether a feed without it is acceptable is the kiosk's
 * decision (list_key.h), not the parser's. */
static enum posgate_err
parse_list_key_check(struct ctx *c, const cJSON *root, struct feed_config *cfg)
{
    const char *s;
    size_t n;
    enum posgate_err err;

    if (cJSON_GetObjectItemCaseSensitive(root, "list_key_check") == NULL) {
        cfg->list_key_check[0] = 0;
        return POSGATE_OK;
    }
    err = get_string(c, root, "feed.json", "list_key_check", 64, NULL, &s);
    if (err != POSGATE_OK) {
        return err;
    }
    n = strlen(s);
    for (size_t i = 0; i < n; i++) {
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) {
            n = 0;
            break;
        }
    }
    if (n != FEED_KEY_CHECK_HEX) {
        return fail(c,
                    "feed.json.list_key_check: expected %d lower-case hex digits, found \"%.64s\"",
                    FEED_KEY_CHECK_HEX, s);
    }
    memcpy(cfg->list_key_check, s, n + 1);
    return POSGATE_OK;
}

static enum posgate_err
parse_root(struct ctx *c, const cJSON *root, struct feed_config *cfg)
{
    static const char *const keys[] = {"feed_id", "list_key_check", "services",
                                       "lists",   "reasons",        NULL};
    const cJSON *arr, *v;
    const char *s;
    size_t n, i;
    enum posgate_err err;
    int dup;

    if (!cJSON_IsObject(root)) {
        return fail(c, "feed.json: expected an object at the top, found %s", kind_of(root));
    }
    err = check_keys(c, root, "feed.json", keys);
    if (err != POSGATE_OK) {
        return err;
    }
    err = get_string(c, root, "feed.json", "feed_id", FEED_ID_MAX, NULL, &s);
    if (err != POSGATE_OK) {
        return err;
    }
    for (i = 0; s[i] != 0; i++) {
        char ch = s[i];

        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '.' || ch == '_' || ch == '-')) {
            return fail(c, "feed.json.feed_id: expected [A-Za-z0-9._-], found byte 0x%02x at %zu",
                        (unsigned)(unsigned char)ch, i);
        }
    }
    memcpy(cfg->feed_id, s, i + 1);
    err = parse_list_key_check(c, root, cfg);
    if (err != POSGATE_OK) {
        return err;
    }
    err = parse_services(c, root, cfg);
    if (err != POSGATE_OK) {
        return err;
    }

    err = get_array(c, root, "", "lists", FEED_LISTS_MAX, false, &arr, &n);
    if (err != POSGATE_OK) {
        return err;
    }
    cfg->lists = plat_calloc(n > 0 ? n : 1, sizeof(*cfg->lists));
    if (cfg->lists == NULL) {
        return POSGATE_ERR_NOMEM;
    }
    i = 0;
    cJSON_ArrayForEach(v, arr)
    {
        cfg->n_lists = (uint16_t)(i + 1); /* so that feed_config_free sees the strings */
        err = parse_list(c, v, i, &cfg->lists[i]);
        if (err != POSGATE_OK) {
            return err;
        }
        i++;
    }
    cfg->n_lists = (uint16_t)n;
    err = build_index(cfg, n, cmp_list, &cfg->lists_by_id, &dup);
    if (err != POSGATE_OK) {
        return err;
    }
    if (dup >= 0) {
        return fail(c, "lists[%d].id: \"%s\" is used twice", dup, cfg->lists[dup].id);
    }

    err = get_array(c, root, "", "reasons", FEED_REASONS_MAX, false, &arr, &n);
    if (err != POSGATE_OK) {
        return err;
    }
    cfg->reasons = plat_calloc(n > 0 ? n : 1, sizeof(*cfg->reasons));
    if (cfg->reasons == NULL) {
        return POSGATE_ERR_NOMEM;
    }
    i = 0;
    cJSON_ArrayForEach(v, arr)
    {
        cfg->n_reasons = (uint16_t)(i + 1);
        err = parse_reason(c, v, i, cfg, &cfg->reasons[i]);
        if (err != POSGATE_OK) {
            return err;
        }
        i++;
    }
    cfg->n_reasons = (uint16_t)n;
    err = build_index(cfg, n, cmp_reason, &cfg->reasons_by_id, &dup);
    if (err != POSGATE_OK) {
        return err;
    }
    if (dup >= 0) {
        return fail(c, "reasons[%d].id: \"%s\" is used twice", dup, cfg->reasons[dup].id);
    }
    return POSGATE_OK;
}

enum posgate_err
feed_config_parse(const void *json, size_t len, unsigned flags, struct feed_config **out,
                  char *errmsg, size_t errcap)
{
    enum posgate_err err;
    cJSON *root = NULL;
    struct feed_config *cfg = NULL;
    char dummy[8];
    struct ctx c;

    if (errmsg == NULL || errcap == 0) {
        errmsg = dummy;
        errcap = sizeof(dummy);
    }
    errmsg[0] = 0;
    c.errmsg = errmsg;
    c.errcap = errcap;
    c.flags = flags;
    if (json == NULL || out == NULL) {
        snprintf(errmsg, errcap, "feed.json: no data");
        return POSGATE_ERR_INVALID;
    }
    err = json_parse_bounded(json, len, FEED_CONFIG_MAX_BYTES, &root, errmsg, errcap);
    if (err != POSGATE_OK) {
        goto out;
    }
    cfg = plat_calloc(1, sizeof(*cfg));
    if (cfg == NULL) {
        err = POSGATE_ERR_NOMEM;
        goto out;
    }
    err = parse_root(&c, root, cfg);
    if (err != POSGATE_OK) {
        if (err == POSGATE_ERR_NOMEM) {
            snprintf(errmsg, errcap, "feed.json: out of memory");
        }
        goto out;
    }
    *out = cfg;
    cfg = NULL;
out:
    feed_config_free(cfg);
    cJSON_Delete(root);
    return err;
}

void
feed_config_free(struct feed_config *cfg)
{
    if (cfg == NULL) {
        return;
    }
    if (cfg->lists != NULL) {
        for (size_t i = 0; i < cfg->n_lists; i++) {
            plat_free(cfg->lists[i].authority);
        }
    }
    if (cfg->reasons != NULL) {
        for (size_t i = 0; i < cfg->n_reasons; i++) {
            plat_free(cfg->reasons[i].authority);
            plat_free(cfg->reasons[i].legal_basis);
            plat_free(cfg->reasons[i].contest);
        }
    }
    plat_free(cfg->services);
    plat_free(cfg->lists);
    plat_free(cfg->reasons);
    plat_free(cfg->services_by_name);
    plat_free(cfg->lists_by_id);
    plat_free(cfg->reasons_by_id);
    plat_free(cfg);
}

int
feed_config_service_find_n(const struct feed_config *cfg, const char *name, size_t len)
{
    if (cfg == NULL || name == NULL || cfg->services_by_name == NULL) {
        return -1;
    }
    return find_sorted_n(cfg->services_by_name, cfg->n_services, name, len, service_key, cfg);
}

int
feed_config_service_find(const struct feed_config *cfg, const char *name)
{
    if (name == NULL) {
        return -1;
    }
    return feed_config_service_find_n(cfg, name, strlen(name));
}

int
feed_config_list_find(const struct feed_config *cfg, const char *id)
{
    if (cfg == NULL || id == NULL || cfg->lists_by_id == NULL) {
        return -1;
    }
    return find_sorted_n(cfg->lists_by_id, cfg->n_lists, id, strlen(id), list_key, cfg);
}

int
feed_config_reason_find(const struct feed_config *cfg, const char *id)
{
    if (cfg == NULL || id == NULL || cfg->reasons_by_id == NULL) {
        return -1;
    }
    return find_sorted_n(cfg->reasons_by_id, cfg->n_reasons, id, strlen(id), reason_key, cfg);
}

bool
feed_config_service_within(const struct feed_config *cfg, unsigned svc_idx, unsigned scope_idx)
{
    unsigned s = svc_idx;

    if (cfg == NULL || svc_idx >= cfg->n_services || scope_idx >= cfg->n_services) {
        return false;
    }
    /* Walk up the parents; the depth bounds the walk (parents are strictly shallower). */
    while (s != FEED_NONE) {
        if (s == scope_idx) {
            return true;
        }
        if (cfg->services[s].depth <= cfg->services[scope_idx].depth) {
            return false;
        }
        s = cfg->services[s].parent;
    }
    return false;
}

bool
feed_config_service_within_any(const struct feed_config *cfg, unsigned svc_idx,
                               const uint16_t *scope, size_t n)
{
    if (scope == NULL) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        if (feed_config_service_within(cfg, svc_idx, scope[i])) {
            return true;
        }
    }
    return false;
}

bool
feed_config_list_applies_in(const struct feed_config *cfg, unsigned list_idx, const char *cc)
{
    const struct feed_list *l;

    if (cfg == NULL || list_idx >= cfg->n_lists) {
        return false;
    }
    l = &cfg->lists[list_idx];
    if (l->n_jurisdictions == 0) {
        return true;
    }
    if (cc == NULL || cc[0] == 0 || cc[1] == 0 || cc[2] != 0) {
        return false;
    }
    for (size_t i = 0; i < l->n_jurisdictions; i++) {
        const char *j = l->jurisdictions[i];

        if ((j[0] == cc[0] || j[0] == (cc[0] & ~0x20)) &&
            (j[1] == cc[1] || j[1] == (cc[1] & ~0x20))) {
            return true;
        }
    }
    return false;
}

const char *
feed_stale_policy_name(enum feed_stale_policy p)
{
    switch (p) {
    case FEED_STALE_ALLOW:
        return "allow";
    case FEED_STALE_REFER:
        return "refer";
    case FEED_STALE_DENY:
        return "deny";
    }
    return "unknown";
}

const char *
feed_override_name(enum feed_override o)
{
    switch (o) {
    case FEED_OVERRIDE_NONE:
        return "none";
    case FEED_OVERRIDE_SUPERVISOR:
        return "supervisor";
    }
    return "unknown";
}

const char *
feed_minors_name(enum feed_minors m)
{
    switch (m) {
    case FEED_MINORS_DENY:
        return "deny";
    case FEED_MINORS_REFER:
        return "refer";
    }
    return "unknown";
}
