/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Canonical JSON (the bytes TUF signatures cover) and the bounded cJSON parse that every JSON
 * codec goes through: size cap, depth cap, no trailing bytes, no duplicate object keys (a
 * duplicate key would let two parsers read different values under one signature).
 */
#define _POSIX_C_SOURCE 200809L
#include "json_canon.h"

#include <math.h>
#include <stdbool.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "plat_mem.h"

#define JSON_MAX_DEPTH 64
#define JSON_ARENA_MIN ((size_t)64 << 10)
#define JSON_ARENA_MAX ((size_t)4 << 20)
#define JSON_SAFE_INT  9007199254740992.0 /* 2^53 */

static pthread_once_t hooks_once = PTHREAD_ONCE_INIT;
/* Allocations cJSON was refused, per thread: cJSON reports running out of memory as a parse
 * failure, and json_parse_bounded tells the two apart by this count. */
static _Thread_local unsigned long alloc_failures;

/* The arena of this thread (json_arena_begin): a buffer kept from one use to the next, freed
 * when the thread ends. */
struct arena {
    unsigned char *base;
    size_t cap, used;
    bool on;
};

static pthread_key_t arena_key;
static _Thread_local struct arena *arena_tls;

static void
arena_drop(void *p)
{
    struct arena *a = p;

    if (a != NULL) {
        plat_free(a->base);
        plat_free(a);
    }
}

static void *
hook_malloc(size_t n)
{
    struct arena *a = arena_tls;
    void *p;

    if (a != NULL && a->on && n <= a->cap - a->used) {
        size_t step = (n + 15) & ~(size_t)15; /* aligned as malloc's */

        if (step <= a->cap - a->used) {
            p = a->base + a->used;
            a->used += step;
            return p;
        }
    }
    p = plat_malloc(n);
    if (p == NULL) {
        alloc_failures++;
    }
    return p;
}

static void
hook_free(void *p)
{
    const struct arena *a = arena_tls;

    if (a != NULL && (unsigned char *)p >= a->base && (unsigned char *)p < a->base + a->cap) {
        return; /* the arena's: given back all at once */
    }
    plat_free(p);
}

static void
install_hooks(void)
{
    cJSON_Hooks h = {hook_malloc, hook_free};

    (void)pthread_key_create(&arena_key, arena_drop);
    cJSON_InitHooks(&h);
}

void
json_arena_begin(size_t hint)
{
    struct arena *a;

    json_init_hooks();
    a = arena_tls;
    if (a == NULL) {
        a = plat_calloc(1, sizeof(*a));
        if (a == NULL || pthread_setspecific(arena_key, a) != 0) {
            plat_free(a);
            return; /* no arena: cJSON allocates as usual */
        }
        arena_tls = a;
    }
    hint = hint < JSON_ARENA_MIN ? JSON_ARENA_MIN : hint > JSON_ARENA_MAX ? JSON_ARENA_MAX : hint;
    if (a->cap < hint) {
        unsigned char *base = plat_malloc(hint);

        if (base != NULL) {
            plat_free(a->base);
            a->base = base;
            a->cap = hint;
        }
    }
    a->used = 0;
    a->on = a->base != NULL;
}

void
json_arena_end(void)
{
    struct arena *a = arena_tls;

    if (a != NULL) {
        a->on = false;
        a->used = 0;
    }
}

/* The strings of v and its siblings and, below them, their children's (depth: at most the
 * parser's 64). */
static void
wipe_tree(cJSON *v)
{
    for (; v != NULL; v = v->next) {
        if (v->valuestring != NULL) {
            plat_wipe(v->valuestring, strlen(v->valuestring));
        }
        if (v->string != NULL && (v->type & cJSON_StringIsConst) == 0) {
            plat_wipe(v->string, strlen(v->string));
        }
        wipe_tree(v->child);
    }
}

void
json_delete_wiped(cJSON *v)
{
    if (v != NULL) {
        wipe_tree(v->child);
        if (v->valuestring != NULL) {
            plat_wipe(v->valuestring, strlen(v->valuestring));
        }
        cJSON_Delete(v);
    }
}

void
json_init_hooks(void)
{
    pthread_once(&hooks_once, install_hooks);
}

static int
cmp_names(const void *a, const void *b)
{
    const cJSON *x = *(const cJSON *const *)a, *y = *(const cJSON *const *)b;

    return strcmp(x->string, y->string);
}

#define KIDS_ON_STACK 32

/* The members of object v sorted by name: in stack (KIDS_ON_STACK) when they fit, sorted by
 * insertion (an object in canonical form is sorted already: one pass), else on the heap
 * (*kids != stack: the caller frees it). NOMEM, or PARSE for a member without a name. */
static enum posgate_err
sorted_kids(const cJSON *v, const cJSON **stack, const cJSON ***kids, size_t *n)
{
    const cJSON *c;
    size_t i = 0;

    *n = 0;
    for (c = v->child; c != NULL; c = c->next) {
        if (c->string == NULL) {
            return POSGATE_ERR_PARSE;
        }
        (*n)++;
    }
    *kids = *n <= KIDS_ON_STACK ? stack : plat_calloc(*n, sizeof(**kids));
    if (*kids == NULL) {
        return POSGATE_ERR_NOMEM;
    }
    for (c = v->child; c != NULL; c = c->next) {
        (*kids)[i++] = c;
    }
    if (*kids != stack) {
        qsort(*kids, *n, sizeof(**kids), cmp_names);
        return POSGATE_OK;
    }
    for (i = 1; i < *n; i++) {
        const cJSON *x = stack[i];
        size_t j = i;

        while (j > 0 && strcmp(stack[j - 1]->string, x->string) > 0) {
            stack[j] = stack[j - 1];
            j--;
        }
        stack[j] = x;
    }
    return POSGATE_OK;
}

/* An integer within +-2^53 in decimal, as "%lld" writes it. */
static enum posgate_err
encode_int(long long v, struct buf *out)
{
    char d[24];
    size_t i = sizeof(d);
    unsigned long long u = v < 0 ? 0ull - (unsigned long long)v : (unsigned long long)v;

    do {
        d[--i] = (char)('0' + u % 10);
        u /= 10;
    } while (u != 0);
    if (v < 0) {
        d[--i] = '-';
    }
    return buf_append(out, d + i, sizeof(d) - i);
}

static enum posgate_err
encode_string(const char *s, struct buf *out)
{
    enum posgate_err err = buf_append(out, "\"", 1);

    while (err == POSGATE_OK && *s != 0) {
        size_t run = strcspn(s, "\"\\");

        err = buf_append(out, s, run);
        s += run;
        if (err == POSGATE_OK && *s != 0) {
            char esc[2] = {'\\', *s};

            err = buf_append(out, esc, 2);
            s++;
        }
    }
    if (err == POSGATE_OK) {
        err = buf_append(out, "\"", 1);
    }
    return err;
}

static enum posgate_err
encode(const cJSON *v, struct buf *out, int depth)
{
    enum posgate_err err = POSGATE_OK;

    if (depth > JSON_MAX_DEPTH) {
        return POSGATE_ERR_TOOBIG;
    }
    if (cJSON_IsNull(v)) {
        return buf_append_str(out, "null");
    }
    if (cJSON_IsTrue(v)) {
        return buf_append_str(out, "true");
    }
    if (cJSON_IsFalse(v)) {
        return buf_append_str(out, "false");
    }
    if (cJSON_IsNumber(v)) {
        double d = v->valuedouble;

        if (!isfinite(d) || d != floor(d) || fabs(d) > JSON_SAFE_INT) {
            return POSGATE_ERR_UNSUPPORTED;
        }
        return encode_int((long long)d, out);
    }
    if (cJSON_IsString(v)) {
        return encode_string(v->valuestring != NULL ? v->valuestring : "", out);
    }
    if (cJSON_IsArray(v)) {
        const cJSON *c;
        int first = 1;

        err = buf_append(out, "[", 1);
        for (c = v->child; c != NULL && err == POSGATE_OK; c = c->next) {
            if (!first) {
                err = buf_append(out, ",", 1);
            }
            first = 0;
            if (err == POSGATE_OK) {
                err = encode(c, out, depth + 1);
            }
        }
        return err == POSGATE_OK ? buf_append(out, "]", 1) : err;
    }
    if (cJSON_IsObject(v)) {
        const cJSON *stack[KIDS_ON_STACK];
        const cJSON **kids;
        size_t n = 0, i = 0;

        err = sorted_kids(v, stack, &kids, &n);
        if (err != POSGATE_OK) {
            return err;
        }
        err = buf_append(out, "{", 1);
        for (i = 0; i < n && err == POSGATE_OK; i++) {
            if (i > 0) {
                err = buf_append(out, ",", 1);
            }
            if (err == POSGATE_OK) {
                err = encode_string(kids[i]->string, out);
            }
            if (err == POSGATE_OK) {
                err = buf_append(out, ":", 1);
            }
            if (err == POSGATE_OK) {
                err = encode(kids[i], out, depth + 1);
            }
        }
        if (kids != stack) {
            plat_free(kids);
        }
        return err == POSGATE_OK ? buf_append(out, "}", 1) : err;
    }
    return POSGATE_ERR_PARSE;
}

enum posgate_err
json_canon_encode(const struct cJSON *v, struct buf *out)
{
    if (v == NULL || out == NULL) {
        return POSGATE_ERR_INVALID;
    }
    return encode(v, out, 0);
}

/* Depth and duplicate-key check over a parsed tree. */
static enum posgate_err
check_tree(const cJSON *v, int depth, char *errmsg, size_t errcap)
{
    const cJSON *c;
    enum posgate_err err;

    if (depth > JSON_MAX_DEPTH) {
        snprintf(errmsg, errcap, "JSON nested deeper than %d levels", JSON_MAX_DEPTH);
        return POSGATE_ERR_TOOBIG;
    }
    if (cJSON_IsObject(v)) {
        const cJSON *stack[KIDS_ON_STACK];
        const cJSON **kids;
        size_t n = 0;

        err = sorted_kids(v, stack, &kids, &n);
        if (err != POSGATE_OK) {
            snprintf(errmsg, errcap, "%s", err == POSGATE_ERR_NOMEM ? "out of memory"
                                                                     : "JSON member without a name");
            return err;
        }
        for (size_t i = 1; i < n && err == POSGATE_OK; i++) {
            if (strcmp(kids[i - 1]->string, kids[i]->string) == 0) {
                snprintf(errmsg, errcap, "JSON object has the key \"%.64s\" twice",
                         kids[i]->string);
                err = POSGATE_ERR_PARSE;
            }
        }
        if (kids != stack) {
            plat_free(kids);
        }
        if (err != POSGATE_OK) {
            return err;
        }
    }
    if (cJSON_IsObject(v) || cJSON_IsArray(v)) {
        for (c = v->child; c != NULL; c = c->next) {
            err = check_tree(c, depth + 1, errmsg, errcap);
            if (err != POSGATE_OK) {
                return err;
            }
        }
    }
    return POSGATE_OK;
}

enum posgate_err
json_parse_bounded(const void *data, size_t len, size_t max_len, struct cJSON **out, char *errmsg,
                   size_t errcap)
{
    const char *end = NULL;
    const char *p = data;
    cJSON *root;
    enum posgate_err err;
    char dummy[8];
    unsigned long failures;

    if (errmsg == NULL || errcap == 0) {
        errmsg = dummy;
        errcap = sizeof(dummy);
    }
    errmsg[0] = 0;
    if (out == NULL) {
        return POSGATE_ERR_INVALID;
    }
    *out = NULL;
    if (data == NULL) {
        snprintf(errmsg, errcap, "no JSON data");
        return POSGATE_ERR_INVALID;
    }
    if (len > max_len) {
        snprintf(errmsg, errcap, "JSON of %zu bytes exceeds the limit of %zu bytes", len, max_len);
        return POSGATE_ERR_TOOBIG;
    }
    if (memchr(p, 0, len) != NULL) {
        snprintf(errmsg, errcap, "JSON contains a NUL byte");
        return POSGATE_ERR_PARSE;
    }
    json_init_hooks();
    failures = alloc_failures;
    root = cJSON_ParseWithLengthOpts(p, len, &end, 0);
    if (root == NULL && alloc_failures != failures) {
        snprintf(errmsg, errcap, "out of memory while parsing %zu bytes of JSON", len);
        return POSGATE_ERR_NOMEM;
    }
    if (root == NULL) {
        const char *at = cJSON_GetErrorPtr();
        long off = (at != NULL && at >= p && at <= p + len) ? (long)(at - p) : -1;

        snprintf(errmsg, errcap, "malformed JSON near byte %ld", off);
        return POSGATE_ERR_PARSE;
    }
    while (end != NULL && end < p + len &&
           (*end == ' ' || *end == '\n' || *end == '\r' || *end == '\t')) {
        end++;
    }
    if (end != p + len) {
        snprintf(errmsg, errcap, "unexpected bytes after the JSON value at byte %ld",
                 (long)(end - p));
        cJSON_Delete(root);
        return POSGATE_ERR_PARSE;
    }
    err = check_tree(root, 0, errmsg, errcap);
    if (err != POSGATE_OK) {
        cJSON_Delete(root);
        return err;
    }
    *out = root;
    return POSGATE_OK;
}

enum posgate_err
json_get_int(const struct cJSON *obj, const char *name, int64_t min, int64_t max, int64_t *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);
    double d;

    if (!cJSON_IsNumber(v)) {
        return POSGATE_ERR_INVALID;
    }
    d = v->valuedouble;
    if (!isfinite(d) || d != floor(d) || fabs(d) > JSON_SAFE_INT || d < (double)min ||
        d > (double)max) {
        return POSGATE_ERR_INVALID;
    }
    *out = (int64_t)d;
    return POSGATE_OK;
}

enum posgate_err
json_print_to_buf(struct cJSON *root, struct buf *out)
{
    char *s;
    enum posgate_err err;

    if (root == NULL) {
        return POSGATE_ERR_NOMEM;
    }
    s = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    if (s == NULL) {
        return POSGATE_ERR_NOMEM;
    }
    buf_reset(out);
    err = buf_append_str(out, s);
    cJSON_free(s);
    return err;
}

const char *
json_cjson_version(void)
{
    return cJSON_Version();
}
