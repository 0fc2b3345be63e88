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
 * bytes json_canon_encode gives for the event's cJSON tree (tests/unit/agent/audit/audit_event.c
 * compares the two on random events): the writer encodes one event per decision, and building and
 * sorting a tree was most of its time. Errors are sticky in *err. */
struct ew {
    struct buf *out;
    enum posgate_err err;
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

#define COPY_STR(d, s) plat_str_copy((d), sizeof(d), (s))

/* The members' names with their separators, as literals: no strlen and one copy each. */
#define EW_LIT(w, lit) ew_raw((w), (lit), sizeof(lit) - 1)

/* An integer's digits (no name), as ew_int writes them. */
static void
ew_ival(struct ew *w, int64_t v)
{
    char t[24];
    size_t n = sizeof t;
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;

    if (v > (INT64_C(1) << 53) || v < -(INT64_C(1) << 53)) {
        if (w->err == POSGATE_OK) {
            w->err = POSGATE_ERR_UNSUPPORTED;
        }
        return;
    }
    do {
        t[--n] = (char)('0' + u % 10);
        u /= 10;
    } while (u != 0);
    if (v < 0) {
        t[--n] = '-';
    }
    ew_raw(w, t + n, sizeof t - n);
}

static void
ew_uval(struct ew *w, uint64_t v)
{
    ew_ival(w, v > (UINT64_C(1) << 53) ? INT64_MAX : (int64_t)v);
}

/* A time as a quoted RFC 3339 string. The writer encodes one event after another, most of them
 * within the same second and with the service date of that second: the last second formatted
 * is kept per thread. The text holds digits, '-', 'T', ':' and 'Z' only: nothing to escape. */
static void
ew_time(struct ew *w, int64_t s)
{
    static _Thread_local int64_t last_s = INT64_MIN;
    static _Thread_local char last[32];
    static _Thread_local size_t last_len;

    if (s != last_s) {
        plat_time_format(s, last, sizeof(last));
        last_len = strlen(last);
        last_s = s;
    }
    ew_raw(w, "\"", 1);
    ew_raw(w, last, last_len);
    ew_raw(w, "\"", 1);
}

/* A quoted hex string of n bytes. */
static void
ew_hex(struct ew *w, const uint8_t *b, size_t n)
{
    char hex[2 * AUDIT_HASH_LEN + 3];

    hex[0] = '"';
    crypto_hex(b, n, hex + 1);
    hex[2 * n + 1] = '"';
    ew_raw(w, hex, 2 * n + 2);
}

/* The canonical order of a decision's members is fixed (its names sorted by their bytes), so
 * each name is written with its separator as one literal. */
enum posgate_err
audit_event_encode(const struct audit_event *e, const char *device_id, uint64_t seq,
                   const uint8_t prev[AUDIT_HASH_LEN], struct buf *out)
{
    struct ew w = {out, POSGATE_OK};
    size_t mark = out->len;
    size_t n;

    if (buf_reserve(out, 2048) != POSGATE_OK) { /* a typical event, so ew_raw copies */
        w.err = buf_reserve(out, 0);
    }
    EW_LIT(&w, "{\"at\":");
    ew_time(&w, e->at);
    EW_LIT(&w, ",\"data_age_s\":");
    if (e->data_age_s >= 0) {
        ew_ival(&w, e->data_age_s);
    } else {
        EW_LIT(&w, "null");
    }
    EW_LIT(&w, ",\"decision\":\"");
    ew_raw(&w, audit_decision_name(e->decision), strlen(audit_decision_name(e->decision)));
    EW_LIT(&w, "\",\"device_id\":");
    ew_str(&w, device_id);
    if (e->error[0] != 0) {
        EW_LIT(&w, ",\"error\":");
        ew_str(&w, e->error);
    }
    EW_LIT(&w, ",\"feed_version\":");
    ew_ival(&w, e->feed_version);
    EW_LIT(&w, ",\"id\":");
    ew_str(&w, e->id);
    EW_LIT(&w, ",\"kind\":\"decision\",\"lists\":[");
    n = e->n_lists < AUDIT_LISTS_MAX ? e->n_lists : AUDIT_LISTS_MAX;
    for (size_t i = 0; i < n; i++) {
        const struct audit_list *l = &e->lists[i];

        ew_raw(&w, i == 0 ? "{" : ",{", i == 0 ? 1 : 2);
        if (!l->digest_written) {
            EW_LIT(&w, "\"digest\":");
            ew_str(&w, l->digest);
            EW_LIT(&w, ",");
        }
        EW_LIT(&w, "\"id\":");
        ew_str(&w, l->id);
        EW_LIT(&w, ",\"seq\":");
        ew_uval(&w, l->seq);
        EW_LIT(&w, "}");
    }
    EW_LIT(&w, "]");
    if (e->lists_more > 0) {
        EW_LIT(&w, ",\"lists_more\":");
        ew_uval(&w, e->lists_more);
    }
    EW_LIT(&w, ",\"mono_us\":");
    ew_ival(&w, e->mono_us);
    EW_LIT(&w, ",\"operator\":");
    ew_str(&w, e->operator_id);
    if (e->has_override) {
        EW_LIT(&w, ",\"override\":{\"by\":");
        ew_str(&w, e->override_by);
        EW_LIT(&w, ",\"overridden_decision\":\"");
        ew_raw(&w, audit_decision_name(e->overridden), strlen(audit_decision_name(e->overridden)));
        EW_LIT(&w, "\",\"reason\":");
        ew_str(&w, e->override_reason);
        if (e->override_refused) {
            EW_LIT(&w, ",\"refused\":true");
        }
        EW_LIT(&w, "}");
    }
    EW_LIT(&w, ",\"prev\":");
    ew_hex(&w, prev, AUDIT_HASH_LEN);
    EW_LIT(&w, ",\"reasons\":[");
    n = e->n_reasons < AUDIT_REASONS_MAX ? e->n_reasons : AUDIT_REASONS_MAX;
    for (size_t i = 0; i < n; i++) {
        const struct audit_reason *r = &e->reasons[i];

        ew_raw(&w, i == 0 ? "{\"effect\":" : ",{\"effect\":", i == 0 ? 10 : 11);
        ew_str(&w, r->effect);
        EW_LIT(&w, ",\"kind\":");
        ew_str(&w, r->kind);
        EW_LIT(&w, ",\"list\":");
        ew_str(&w, r->list);
        EW_LIT(&w, ",\"listing_id\":");
        ew_str(&w, r->listing_id);
        EW_LIT(&w, ",\"reason\":");
        ew_str(&w, r->reason);
        EW_LIT(&w, "}");
    }
    EW_LIT(&w, "],\"seq\":");
    ew_uval(&w, seq);
    EW_LIT(&w, ",\"service\":");
    ew_str(&w, e->service);
    EW_LIT(&w, ",\"subjects\":[");
    n = e->n_subjects < AUDIT_SUBJECTS_MAX ? e->n_subjects : AUDIT_SUBJECTS_MAX;
    for (size_t i = 0; i < n; i++) {
        if (i > 0) {
            EW_LIT(&w, ",");
        }
        ew_hex(&w, e->subjects[i], AUDIT_SUBJECT_LEN);
    }
    EW_LIT(&w, "],\"time\":");
    ew_time(&w, e->time_us / 1000000);
    EW_LIT(&w, ",\"time_us\":");
    ew_ival(&w, e->time_us);
    EW_LIT(&w, ",\"v\":");
    ew_ival(&w, AUDIT_EVENT_VERSION);
    EW_LIT(&w, "}");
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
    size_t next = 0; /* where the list after the last one found would be */

    for (size_t i = 0; i < n; i++) {
        struct audit_list *l = &e->lists[i], *k = NULL;

        /* the events of one service name the same lists in the same order: look where the
         * next one was written first, then everywhere */
        if (next < d->n && strcmp(d->lists[next].id, l->id) == 0) {
            k = &d->lists[next];
        }
        for (size_t j = 0; j < d->n && k == NULL; j++) {
            k = strcmp(d->lists[j].id, l->id) == 0 ? &d->lists[j] : NULL;
        }
        next = k != NULL ? (size_t)(k - d->lists) + 1 : next;
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
    struct buf canon = BUF_INIT(AUDIT_EVENT_MAX + 1);
    enum posgate_err err;

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
    err = audit_event_inspect_tree(root, out, errmsg, errcap);
out:
    cJSON_Delete(root);
    buf_free(&canon);
    return err;
}

enum posgate_err
audit_event_inspect_tree(const struct cJSON *root, struct audit_event_info *out, char *errmsg,
                         size_t errcap)
{
    const cJSON *a, *it;
    struct buf prev = BUF_INIT(AUDIT_HASH_LEN);
    enum posgate_err err;
    const char *s;
    int64_t v;
    size_t used = 0;

    memset(out, 0, sizeof(*out));
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
    buf_free(&prev);
    return err;
}
