/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The audit event codec (audit_event.h): events and summaries to canonical JSON through cJSON
 * and the canonical encoder, the chain hash, the signed head message, and the reading of a
 * stored event for `posgate audit list` and `audit verify`.
 */
#include "audit_event.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "crypto.h"
#include "json_canon.h"
#include "plat_clock.h"
#include "plat_mem.h"

const char *
audit_decision_name(enum audit_decision d)
{
    switch (d) {
    case AUDIT_ALLOW:
        return "allow";
    case AUDIT_DENY:
        return "deny";
    case AUDIT_REFER:
        return "refer";
    case AUDIT_ERROR:
        return "error";
    }
    return "refer";
}

/* Every addition is checked: a tree with a member missing for lack of memory must never be
 * encoded as if it were the event. */
#define CHK(call) chk(ok, (call))

static void *
chk(int *ok, void *added)
{
    if (added == NULL) {
        *ok = 0;
    }
    return added;
}

static void
add_time(int *ok, cJSON *o, const char *name, const char *name_us, int64_t us)
{
    char t[32];

    plat_time_format(us / 1000000, t, sizeof(t));
    CHK(cJSON_AddStringToObject(o, name, t));
    CHK(cJSON_AddNumberToObject(o, name_us, (double)us));
}

static void
add_chain(int *ok, cJSON *o, const char *device_id, uint64_t seq,
          const uint8_t prev[AUDIT_HASH_LEN])
{
    char hex[2 * AUDIT_HASH_LEN + 1];

    crypto_hex(prev, AUDIT_HASH_LEN, hex);
    CHK(cJSON_AddStringToObject(o, "device_id", device_id));
    CHK(cJSON_AddStringToObject(o, "prev", hex));
    CHK(cJSON_AddNumberToObject(o, "seq", (double)seq));
    CHK(cJSON_AddNumberToObject(o, "v", AUDIT_SUMMARY_VERSION));
}

static enum posgate_err
finish(int ok, cJSON *root, struct buf *out)
{
    size_t mark = out->len;
    enum posgate_err err;

    if (root == NULL || !ok) {
        cJSON_Delete(root);
        return POSGATE_ERR_NOMEM;
    }
    err = json_canon_encode(root, out);
    cJSON_Delete(root);
    if (err == POSGATE_OK && out->len - mark > AUDIT_EVENT_MAX) {
        err = POSGATE_ERR_TOOBIG;
    }
    if (err != POSGATE_OK) {
        out->len = mark;
    }
    return err;
}

/* The event's canonical text written directly, keys in the canonical (strcmp) order, the same
 * bytes json_canon_encode gives for the event's cJSON tree (tests/unit/agent/core/audit.c compares the
 * two on random events): the writer encodes one event per decision, and building and sorting a
 * tree was most of its time. Errors are sticky in *err. */
struct ew {
    struct buf *out;
    enum posgate_err err;
    bool first; /* no member written yet in the current object or array */
};

/* The bytes go straight into the buffer while they fit (the encoder reserves room for a
 * typical event first); buf_append grows it otherwise. */
static inline void
ew_raw(struct ew *w, const char *s, size_t n)
{
    struct buf *b = w->out;

    if (w->err != POSGATE_OK) {
        return;
    }
    if (n < b->cap - b->len && b->len + n <= b->max) {
        memcpy(b->data + b->len, s, n);
        b->len += n;
    } else {
        w->err = buf_append(b, s, n);
    }
}

/* A string with " and \ escaped (the only escapes of canonical JSON). */
static void
ew_str(struct ew *w, const char *s)
{
    size_t len = strlen(s);

    ew_raw(w, "\"", 1);
    if (memchr(s, '"', len) == NULL && memchr(s, '\\', len) == NULL) {
        ew_raw(w, s, len); /* most strings (digests, ids, names) need no escape */
        ew_raw(w, "\"", 1);
        return;
    }
    for (;;) {
        const char *q = s;

        while (*q != 0 && *q != '"' && *q != '\\') {
            q++;
        }
        ew_raw(w, s, (size_t)(q - s));
        if (*q == 0) {
            break;
        }
        {
            char esc[2] = {'\\', *q};

            ew_raw(w, esc, 2);
        }
        s = q + 1;
    }
    ew_raw(w, "\"", 1);
}

static void
ew_open(struct ew *w, char c)
{
    ew_raw(w, &c, 1);
    w->first = true;
}

static void
ew_close(struct ew *w, char c)
{
    ew_raw(w, &c, 1);
    w->first = false;
}

/* The separator and "name": of the next member. */
static void
ew_key(struct ew *w, const char *name)
{
    if (!w->first) {
        ew_raw(w, ",", 1);
    }
    w->first = false;
    ew_raw(w, "\"", 1);
    ew_raw(w, name, strlen(name)); /* member names are ours: nothing to escape */
    ew_raw(w, "\":", 2);
}

static void
ew_next(struct ew *w) /* the separator before an array element */
{
    if (!w->first) {
        ew_raw(w, ",", 1);
    }
    w->first = false;
}

/* Integers as the canonical encoder writes numbers: within +-2^53, else UNSUPPORTED. */
static void
ew_int(struct ew *w, const char *name, int64_t v)
{
    char t[24];
    int n;

    ew_key(w, name);
    if (v > (INT64_C(1) << 53) || v < -(INT64_C(1) << 53)) {
        if (w->err == POSGATE_OK) {
            w->err = POSGATE_ERR_UNSUPPORTED;
        }
        return;
    }
    {
        uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;

        n = (int)sizeof t;
        do {
            t[--n] = (char)('0' + u % 10);
            u /= 10;
        } while (u != 0);
        if (v < 0) {
            t[--n] = '-';
        }
    }
    ew_raw(w, t + n, sizeof t - (size_t)n);
}

static void
ew_uint(struct ew *w, const char *name, uint64_t v)
{
    ew_int(w, name, v > (UINT64_C(1) << 53) ? INT64_MAX : (int64_t)v);
}

static void
ew_kv(struct ew *w, const char *name, const char *v)
{
    ew_key(w, name);
    ew_str(w, v);
}

#define COPY_STR(d, s) plat_str_copy((d), sizeof(d), (s))

void
audit_event_copy(struct audit_event *dst, const struct audit_event *src)
{
    size_t n;

    COPY_STR(dst->id, src->id);
    dst->time_us = src->time_us;
    dst->mono_us = src->mono_us;
    dst->decision = src->decision;
    COPY_STR(dst->service, src->service);
    COPY_STR(dst->operator_id, src->operator_id);
    dst->n_subjects = src->n_subjects < AUDIT_SUBJECTS_MAX ? src->n_subjects : AUDIT_SUBJECTS_MAX;
    memcpy(dst->subjects, src->subjects, dst->n_subjects * sizeof(src->subjects[0]));
    n = src->n_reasons < AUDIT_REASONS_MAX ? src->n_reasons : AUDIT_REASONS_MAX;
    for (size_t i = 0; i < n; i++) {
        COPY_STR(dst->reasons[i].kind, src->reasons[i].kind);
        COPY_STR(dst->reasons[i].effect, src->reasons[i].effect);
        COPY_STR(dst->reasons[i].list, src->reasons[i].list);
        COPY_STR(dst->reasons[i].listing_id, src->reasons[i].listing_id);
        COPY_STR(dst->reasons[i].reason, src->reasons[i].reason);
    }
    dst->n_reasons = n;
    dst->feed_version = src->feed_version;
    dst->data_age_s = src->data_age_s;
    dst->at = src->at;
    n = src->n_lists < AUDIT_LISTS_MAX ? src->n_lists : AUDIT_LISTS_MAX;
    for (size_t i = 0; i < n; i++) {
        COPY_STR(dst->lists[i].id, src->lists[i].id);
        dst->lists[i].seq = src->lists[i].seq;
        COPY_STR(dst->lists[i].digest, src->lists[i].digest);
        dst->lists[i].digest_written = src->lists[i].digest_written;
    }
    dst->n_lists = n;
    dst->lists_more = src->lists_more;
    dst->has_override = src->has_override;
    dst->override_refused = src->override_refused;
    COPY_STR(dst->override_by, src->has_override ? src->override_by : "");
    COPY_STR(dst->override_reason, src->has_override ? src->override_reason : "");
    dst->overridden = src->overridden;
    COPY_STR(dst->error, src->error);
}

enum posgate_err
audit_event_encode(const struct audit_event *e, const char *device_id, uint64_t seq,
                   const uint8_t prev[AUDIT_HASH_LEN], struct buf *out)
{
    struct ew w = {out, POSGATE_OK, true};
    size_t mark = out->len;
    char hex[2 * AUDIT_HASH_LEN + 1], t[32];
    size_t n;

    if (buf_reserve(out, 2048) != POSGATE_OK) { /* a typical event, so ew_raw copies */
        w.err = buf_reserve(out, 0);
    }
    ew_open(&w, '{');
    plat_time_format(e->at, t, sizeof(t));
    ew_kv(&w, "at", t);
    if (e->data_age_s >= 0) {
        ew_int(&w, "data_age_s", e->data_age_s);
    } else {
        ew_key(&w, "data_age_s");
        ew_raw(&w, "null", 4);
    }
    ew_kv(&w, "decision", audit_decision_name(e->decision));
    ew_kv(&w, "device_id", device_id);
    if (e->error[0] != 0) {
        ew_kv(&w, "error", e->error);
    }
    ew_int(&w, "feed_version", e->feed_version);
    ew_kv(&w, "id", e->id);
    ew_kv(&w, "kind", "decision");
    ew_key(&w, "lists");
    ew_open(&w, '[');
    n = e->n_lists < AUDIT_LISTS_MAX ? e->n_lists : AUDIT_LISTS_MAX;
    for (size_t i = 0; i < n; i++) {
        ew_next(&w);
        ew_open(&w, '{');
        if (!e->lists[i].digest_written) {
            ew_kv(&w, "digest", e->lists[i].digest);
        }
        ew_kv(&w, "id", e->lists[i].id);
        ew_uint(&w, "seq", e->lists[i].seq);
        ew_close(&w, '}');
    }
    ew_close(&w, ']');
    if (e->lists_more > 0) {
        ew_uint(&w, "lists_more", e->lists_more);
    }
    ew_int(&w, "mono_us", e->mono_us);
    ew_kv(&w, "operator", e->operator_id);
    if (e->has_override) {
        ew_key(&w, "override");
        ew_open(&w, '{');
        ew_kv(&w, "by", e->override_by);
        ew_kv(&w, "overridden_decision", audit_decision_name(e->overridden));
        ew_kv(&w, "reason", e->override_reason);
        if (e->override_refused) {
            ew_key(&w, "refused");
            ew_raw(&w, "true", 4);
        }
        ew_close(&w, '}');
    }
    crypto_hex(prev, AUDIT_HASH_LEN, hex);
    ew_kv(&w, "prev", hex);
    ew_key(&w, "reasons");
    ew_open(&w, '[');
    n = e->n_reasons < AUDIT_REASONS_MAX ? e->n_reasons : AUDIT_REASONS_MAX;
    for (size_t i = 0; i < n; i++) {
        const struct audit_reason *r = &e->reasons[i];

        ew_next(&w);
        ew_open(&w, '{');
        ew_kv(&w, "effect", r->effect);
        ew_kv(&w, "kind", r->kind);
        ew_kv(&w, "list", r->list);
        ew_kv(&w, "listing_id", r->listing_id);
        ew_kv(&w, "reason", r->reason);
        ew_close(&w, '}');
    }
    ew_close(&w, ']');
    ew_uint(&w, "seq", seq);
    ew_kv(&w, "service", e->service);
    ew_key(&w, "subjects");
    ew_open(&w, '[');
    n = e->n_subjects < AUDIT_SUBJECTS_MAX ? e->n_subjects : AUDIT_SUBJECTS_MAX;
    for (size_t i = 0; i < n; i++) {
        char sh[2 * AUDIT_SUBJECT_LEN + 1];

        crypto_hex(e->subjects[i], AUDIT_SUBJECT_LEN, sh);
        ew_next(&w);
        ew_str(&w, sh);
    }
    ew_close(&w, ']');
    plat_time_format(e->time_us / 1000000, t, sizeof(t));
    ew_kv(&w, "time", t);
    ew_int(&w, "time_us", e->time_us);
    ew_int(&w, "v", AUDIT_EVENT_VERSION);
    ew_close(&w, '}');
    if (w.err == POSGATE_OK && out->len - mark > AUDIT_EVENT_MAX) {
        w.err = POSGATE_ERR_TOOBIG;
    }
    if (w.err != POSGATE_OK) {
        out->len = mark;
    }
    if (out->data != NULL) {
        out->data[out->len] = 0; /* ew_raw's copies leave the terminator to here */
    }
    return w.err;
}

void
audit_digests_mark(struct audit_digests *d, struct audit_event *e)
{
    size_t n = e->n_lists < AUDIT_LISTS_MAX ? e->n_lists : AUDIT_LISTS_MAX;

    for (size_t i = 0; i < n; i++) {
        struct audit_list *l = &e->lists[i], *k = NULL;

        for (size_t j = 0; j < d->n && k == NULL; j++) {
            k = strcmp(d->lists[j].id, l->id) == 0 ? &d->lists[j] : NULL;
        }
        l->digest_written = k != NULL && k->seq == l->seq && strcmp(k->digest, l->digest) == 0;
        if (l->digest_written) {
            continue;
        }
        if (k == NULL) {
            if (d->n == AUDIT_DIGESTS_MAX) {
                d->n = 0; /* forgotten digests are written again: never one left out */
            }
            k = &d->lists[d->n++];
            COPY_STR(k->id, l->id);
        }
        k->seq = l->seq;
        COPY_STR(k->digest, l->digest);
    }
}

enum posgate_err
audit_summary_encode(const struct audit_summary *s, const char *device_id, uint64_t seq,
                     const uint8_t prev[AUDIT_HASH_LEN], struct buf *out)
{
    cJSON *root, *svc;
    int okv = 1, *ok = &okv;

    json_init_hooks();
    root = cJSON_CreateObject();
    if (root == NULL) {
        return POSGATE_ERR_NOMEM;
    }
    add_chain(ok, root, device_id, seq, prev);
    CHK(cJSON_AddStringToObject(root, "kind", "allow_summary"));
    CHK(cJSON_AddStringToObject(root, "cause", s->cause != NULL ? s->cause : "queue_full"));
    CHK(cJSON_AddNumberToObject(root, "count", (double)s->count));
    add_time(ok, root, "first_time", "first_time_us", s->first_us);
    add_time(ok, root, "last_time", "last_time_us", s->last_us);
    svc = CHK(cJSON_AddObjectToObject(root, "services"));
    for (size_t i = 0; svc != NULL && i < s->n_services; i++) {
        CHK(cJSON_AddNumberToObject(svc, s->services[i].name, (double)s->services[i].n));
    }
    CHK(cJSON_AddNumberToObject(root, "services_other", (double)s->services_other));
    return finish(*ok, root, out);
}

static void
count_service(struct audit_summary *s, const char *name, uint64_t n)
{
    for (size_t i = 0; i < s->n_services; i++) {
        if (strcmp(s->services[i].name, name) == 0) {
            s->services[i].n += n;
            return;
        }
    }
    if (s->n_services < AUDIT_SERVICES_MAX) {
        snprintf(s->services[s->n_services].name, sizeof(s->services[0].name), "%s", name);
        s->services[s->n_services++].n = n;
    } else {
        s->services_other += n;
    }
}

void
audit_summary_add(struct audit_summary *s, const struct audit_event *e)
{
    if (s->count == 0 || e->time_us < s->first_us) {
        s->first_us = e->time_us;
    }
    if (s->count == 0 || e->time_us > s->last_us) {
        s->last_us = e->time_us;
    }
    s->count++;
    count_service(s, e->service, 1);
}

void
audit_summary_merge(struct audit_summary *dst, const struct audit_summary *src)
{
    if (src->count == 0) {
        return;
    }
    if (dst->count == 0 || src->first_us < dst->first_us) {
        dst->first_us = src->first_us;
    }
    if (dst->count == 0 || src->last_us > dst->last_us) {
        dst->last_us = src->last_us;
    }
    dst->count += src->count;
    for (size_t i = 0; i < src->n_services; i++) {
        count_service(dst, src->services[i].name, src->services[i].n);
    }
    dst->services_other += src->services_other;
}

void
audit_chain_hash(const uint8_t prev[AUDIT_HASH_LEN], const void *text, size_t len,
                 uint8_t out[AUDIT_HASH_LEN])
{
    struct crypto_sha256_ctx c;

    crypto_sha256_init(&c);
    crypto_sha256_update(&c, prev, AUDIT_HASH_LEN);
    crypto_sha256_update(&c, text, len);
    crypto_sha256_finish(&c, out);
}

void
audit_chain_hash_stream(struct crypto_hash_stream *h, const uint8_t prev[AUDIT_HASH_LEN],
                        const void *text, size_t len, uint8_t out[AUDIT_HASH_LEN])
{
    crypto_hash_stream_update(h, prev, AUDIT_HASH_LEN);
    crypto_hash_stream_update(h, text, len);
    crypto_hash_stream_finish(h, out, NULL);
}

enum posgate_err
audit_head_message(const char *device_id, uint64_t seq, const uint8_t hash[AUDIT_HASH_LEN],
                   struct buf *out)
{
    char hex[2 * AUDIT_HASH_LEN + 1];

    crypto_hex(hash, AUDIT_HASH_LEN, hex);
    buf_reset(out);
    return buf_printf(out, "posgate-audit-head/v1\n%s\n%llu\n%s\n", device_id,
                      (unsigned long long)seq, hex);
}

static const char *
get_str(const cJSON *o, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);

    return cJSON_IsString(v) && v->valuestring != NULL ? v->valuestring : NULL;
}

enum posgate_err
audit_event_inspect(const void *text, size_t len, struct audit_event_info *out, char *errmsg,
                    size_t errcap)
{
    cJSON *root = NULL;
    const cJSON *a, *it;
    struct buf canon = BUF_INIT(AUDIT_EVENT_MAX + 1);
    struct buf prev = BUF_INIT(AUDIT_HASH_LEN);
    enum posgate_err err;
    const char *s;
    int64_t v;
    size_t used = 0;

    memset(out, 0, sizeof(*out));
    json_init_hooks();
    err = json_parse_bounded(text, len, AUDIT_EVENT_MAX, &root, errmsg, errcap);
    if (err != POSGATE_OK) {
        err = POSGATE_ERR_PARSE;
        goto out;
    }
    err = json_canon_encode(root, &canon);
    if (err != POSGATE_OK || canon.len != len || memcmp(canon.data, text, len) != 0) {
        snprintf(errmsg, errcap, "event text is not in canonical form");
        err = POSGATE_ERR_PARSE;
        goto out;
    }
    err = json_get_int(root, "seq", 1, (int64_t)1 << 53, &v);
    s = get_str(root, "prev");
    if (err != POSGATE_OK || s == NULL || strlen(s) != 2 * AUDIT_HASH_LEN ||
        crypto_unhex(s, strlen(s), &prev) != POSGATE_OK || prev.len != AUDIT_HASH_LEN) {
        snprintf(errmsg, errcap, "event: expected an integer \"seq\" and a 64-hex \"prev\"");
        err = POSGATE_ERR_PARSE;
        goto out;
    }
    out->seq = (uint64_t)v;
    memcpy(out->prev, prev.data, AUDIT_HASH_LEN);
    s = get_str(root, "kind");
    snprintf(out->kind, sizeof(out->kind), "%s", s != NULL ? s : "");
    s = get_str(root, "device_id");
    snprintf(out->device_id, sizeof(out->device_id), "%s", s != NULL ? s : "");
    out->count = 1;
    if (strcmp(out->kind, "allow_summary") == 0) {
        s = get_str(root, "last_time");
        snprintf(out->time, sizeof(out->time), "%s", s != NULL ? s : "");
        if (json_get_int(root, "count", 0, (int64_t)1 << 53, &v) == POSGATE_OK) {
            out->count = (uint64_t)v;
        }
        snprintf(out->decision, sizeof(out->decision), "allow");
        snprintf(out->listings, sizeof(out->listings), "%llu allow(s) folded",
                 (unsigned long long)out->count);
    } else if (strcmp(out->kind, "decision") == 0) {
        s = get_str(root, "time");
        snprintf(out->time, sizeof(out->time), "%s", s != NULL ? s : "");
        s = get_str(root, "decision");
        snprintf(out->decision, sizeof(out->decision), "%s", s != NULL ? s : "");
        s = get_str(root, "id");
        if (s != NULL && strlen(s) < sizeof(out->id)) { /* never a truncated id */
            memcpy(out->id, s, strlen(s) + 1);
        }
        s = get_str(root, "service");
        snprintf(out->service, sizeof(out->service), "%s", s != NULL ? s : "");
        s = get_str(root, "operator");
        snprintf(out->operator_id, sizeof(out->operator_id), "%s", s != NULL ? s : "");
        a = cJSON_GetObjectItemCaseSensitive(root, "reasons");
        cJSON_ArrayForEach(it, a)
        {
            const char *l = get_str(it, "list"), *id = get_str(it, "listing_id");
            int n;

            if (l == NULL || id == NULL || id[0] == 0) {
                continue;
            }
            n = snprintf(out->listings + used, sizeof(out->listings) - used, "%s%s/%s",
                         used > 0 ? " " : "", l, id);
            if (n < 0 || (size_t)n >= sizeof(out->listings) - used) {
                break;
            }
            used += (size_t)n;
        }
    } else {
        snprintf(errmsg, errcap, "event %llu: unknown kind \"%.32s\"", (unsigned long long)out->seq,
                 out->kind);
        err = POSGATE_ERR_PARSE;
        goto out;
    }
    err = POSGATE_OK;
out:
    cJSON_Delete(root);
    buf_free(&canon);
    buf_free(&prev);
    return err;
}
