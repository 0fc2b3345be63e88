/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The report codec: the JSON objects other tools script against — the check result
 * (`posgate check --json`, POST /v1/check) and the installed version (`posgate status --json`,
 * GET /v1/status). Field names are an interface: keep them.
 */
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "api_internal.h"
#include "feed_config.h"
#include "json_canon.h"
#include "plat_clock.h"

static cJSON *
add_time(cJSON *o, const char *name, int64_t t)
{
    char s[32];

    if (t == 0 || t == FEED_UNTIL_OPEN) {
        return cJSON_AddNullToObject(o, name);
    }
    plat_time_format(t, s, sizeof(s));
    return cJSON_AddStringToObject(o, name, s);
}

void
report_error_field(const char *msg, char *out, size_t cap)
{
    size_t k = 0;

    out[0] = 0;
    if (msg == NULL) {
        return;
    }
    /* a field is a name, maybe indexed, right before ": " */
    while (msg[k] != 0 && msg[k] != ':' && k + 1 < cap &&
           ((msg[k] >= 'a' && msg[k] <= 'z') || (msg[k] >= '0' && msg[k] <= '9') ||
            msg[k] == '_' || msg[k] == '[' || msg[k] == ']' || msg[k] == '.')) {
        k++;
    }
    if (k > 0 && msg[k] == ':' && msg[k + 1] == ' ') {
        memcpy(out, msg, k);
        out[k] = 0;
    }
    /* the engine's "check: service \"x\" is not in the signed service taxonomy" */
    if (strcmp(out, "check") == 0 && strncmp(msg + k + 2, "service ", 8) == 0 && cap > 7) {
        memcpy(out, "service", 8);
    }
}

static cJSON *
error_object(enum posgate_err err, const char *field, const char *msg)
{
    cJSON *o = cJSON_CreateObject();

    if (o == NULL) {
        return NULL;
    }
    cJSON_AddStringToObject(o, "code", posgate_err_name(err));
    if (field != NULL && field[0] != 0) {
        cJSON_AddStringToObject(o, "field", field);
    } else {
        cJSON_AddNullToObject(o, "field");
    }
    cJSON_AddStringToObject(o, "message", msg != NULL ? msg : posgate_strerror(err));
    return o;
}

enum posgate_err
report_error_json(enum posgate_err err, const char *field, const char *msg, struct buf *out)
{
    cJSON *root, *o;

    json_init_hooks();
    root = cJSON_CreateObject();
    o = error_object(err, field, msg);
    if (root == NULL || o == NULL) {
        cJSON_Delete(root);
        cJSON_Delete(o);
        return POSGATE_ERR_NOMEM;
    }
    cJSON_AddItemToObject(root, "error", o);
    return json_print_to_buf(root, out);
}

/* The ids of the stale lists among the reasons (each once). */
static void
add_stale_lists(cJSON *root, const struct engine_result *e, int ok)
{
    cJSON *arr = cJSON_AddArrayToObject(root, "stale_lists");

    for (size_t i = 0; ok && arr != NULL && i < e->n_reasons; i++) {
        const struct engine_reason *r = &e->reasons[i];
        int seen = 0;

        if (r->kind != ENGINE_REASON_STALE || r->list_id == NULL) {
            continue;
        }
        for (size_t j = 0; j < i; j++) {
            seen |= e->reasons[j].kind == ENGINE_REASON_STALE && e->reasons[j].list_id != NULL &&
                    strcmp(e->reasons[j].list_id, r->list_id) == 0;
        }
        if (!seen) {
            cJSON_AddItemToArray(arr, cJSON_CreateString(r->list_id));
        }
    }
}

enum posgate_err
report_result_json_tree(const struct posgate_result *res, struct buf *out)
{
    cJSON *root, *reasons;
    const struct engine_result *e = &res->eng;

    json_init_hooks();
    root = cJSON_CreateObject();
    if (root == NULL) {
        return POSGATE_ERR_NOMEM;
    }
    cJSON_AddStringToObject(root, "decision", posgate_decision_name(posgate_result_decision(res)));
    cJSON_AddStringToObject(root, "decision_id", res->decision_id);
    cJSON_AddStringToObject(root, "service", res->service);
    add_time(root, "at", res->at);
    reasons = cJSON_AddArrayToObject(root, "reasons");
    for (size_t i = 0; res->err == POSGATE_OK && reasons != NULL && i < e->n_reasons; i++) {
        const struct engine_reason *r = &e->reasons[i];
        cJSON *o = cJSON_CreateObject();

        if (o == NULL) {
            cJSON_Delete(root);
            return POSGATE_ERR_NOMEM;
        }
        cJSON_AddItemToArray(reasons, o);
        cJSON_AddStringToObject(o, "kind", engine_reason_kind_name(r->kind));
        cJSON_AddStringToObject(o, "effect", engine_decision_name(r->effect));
        cJSON_AddStringToObject(o, "list", r->list_id);
        cJSON_AddStringToObject(o, "listing_id", r->listing_id);
        cJSON_AddStringToObject(o, "reason", r->reason_id);
        cJSON_AddStringToObject(o, "authority", r->authority[0] ? r->authority : r->list_authority);
        cJSON_AddStringToObject(o, "legal_basis", r->legal_basis);
        cJSON_AddStringToObject(o, "contest", r->contest);
        add_time(o, "valid_from", r->valid_from);
        add_time(o, "valid_until", r->valid_until);
        cJSON_AddBoolToObject(o, "override_allowed", r->overridable);
        cJSON_AddStringToObject(o, "detail", r->detail);
    }
    cJSON_AddNumberToObject(root, "feed_version", (double)res->feed_version);
    if (res->err == POSGATE_OK && e->data_age_s >= 0) {
        cJSON_AddNumberToObject(root, "data_age_s", (double)e->data_age_s);
    } else {
        cJSON_AddNullToObject(root, "data_age_s");
    }
    cJSON_AddBoolToObject(root, "clock_fault", res->err == POSGATE_OK && e->clock_fault);
    /* the answer's footing: signed metadata past its expiry, stale lists, the list key */
    cJSON_AddBoolToObject(root, "feed_expired",
                          res->expires_at != 0 && res->checked_now >= res->expires_at);
    add_stale_lists(root, e, res->err == POSGATE_OK);
    cJSON_AddStringToObject(root, "list_key", res->list_key != NULL ? res->list_key : "none");
    cJSON_AddStringToObject(root, "notice", e->notice);
    if (res->err == POSGATE_OK && res->overridden) {
        cJSON *o = cJSON_AddObjectToObject(root, "override");

        if (o != NULL) {
            cJSON_AddStringToObject(o, "by", res->override_by);
            cJSON_AddStringToObject(o, "reason", res->override_reason);
            cJSON_AddStringToObject(o, "overridden_decision", "deny");
        }
    }
    if (res->audit_seq > 0) {
        cJSON_AddNumberToObject(root, "audit_seq", (double)res->audit_seq);
    } else {
        cJSON_AddNullToObject(root, "audit_seq");
    }
    if (res->err != POSGATE_OK) {
        char field[64];

        report_error_field(res->err == POSGATE_ERR_INVALID ? res->errmsg : NULL, field,
                           sizeof(field));
        cJSON_AddItemToObject(root, "error", error_object(res->err, field, res->errmsg));
    }
    return json_print_to_buf(root, out);
}

/* "audit": the queue as the collector would see it: what is not yet acknowledged and how old
 * the oldest of it is (null when everything is acknowledged). */
static void
add_audit_queue(cJSON *root, const struct audit_stats *a, int64_t now)
{
    cJSON *o = cJSON_AddObjectToObject(root, "audit");
    int64_t age;

    if (o == NULL) {
        return;
    }
    cJSON_AddNumberToObject(o, "head_seq", (double)a->head_seq);
    cJSON_AddNumberToObject(o, "acked_seq", (double)a->acked_seq);
    cJSON_AddNumberToObject(o, "unsent",
                            (double)(a->head_seq > a->acked_seq ? a->head_seq - a->acked_seq : 0));
    if (a->oldest_unacked_us > 0) {
        age = now - a->oldest_unacked_us / 1000000;
        cJSON_AddNumberToObject(o, "oldest_unsent_age_s", (double)(age > 0 ? age : 0));
    } else {
        cJSON_AddNullToObject(o, "oldest_unsent_age_s");
    }
}

enum posgate_err
report_status_json(struct store *st, const char *key_check, const struct audit_stats *audit,
                   const char *disagreement,
                   int64_t now, struct buf *out)
{
    struct store_meta m;
    struct store_list *lists = NULL;
    size_t n = 0;
    struct buf cfgjson = BUF_INIT(FEED_CONFIG_MAX_BYTES);
    struct feed_config *cfg = NULL;
    cJSON *root = NULL, *arr, *j;
    enum posgate_err err;

    json_init_hooks();
    err = store_get_meta(st, &m);
    if (err != POSGATE_OK) {
        return err;
    }
    lists = cJSON_malloc(sizeof(*lists) * STORE_LISTS_MAX);
    if (lists == NULL) {
        return POSGATE_ERR_NOMEM;
    }
    err = store_get_lists(st, lists, STORE_LISTS_MAX, &n);
    if (err != POSGATE_OK) {
        goto out;
    }
    if (store_get_config(st, &cfgjson) == POSGATE_OK &&
        feed_config_parse(cfgjson.data, cfgjson.len, 0, &cfg, NULL, 0) != POSGATE_OK) {
        cfg = NULL;
    }
    root = cJSON_CreateObject();
    if (root == NULL) {
        err = POSGATE_ERR_NOMEM;
        goto out;
    }
    cJSON_AddNumberToObject(root, "feed_version", (double)m.feed_version);
    add_time(root, "issued_at", m.issued_at);
    add_time(root, "expires_at", m.expires_at);
    cJSON_AddNumberToObject(root, "root_version", (double)m.root_version);
    add_time(root, "installed_at", m.installed_at);
    add_time(root, "newest_issue_seen", m.newest_issue_seen);
    {
        uint64_t unmerged = 0, total = 0;

        /* delta rows not yet merged into the store's main table (store.h): 0 after each
         * import, sync or daemon merge; more means a merge failed (posgate compact) */
        if (store_recent_rows(st, &unmerged, &total) == POSGATE_OK) {
            cJSON_AddNumberToObject(root, "unmerged_rows", (double)unmerged);
        }
    }
    {
        enum store_filter_state fs;

        /* the key filter (store.h): "ok" after each import, sync or daemon merge; otherwise
         * checks use the store alone (slower, same answers) until posgate compact */
        if (store_filter_check(st, &fs, NULL) == POSGATE_OK) {
            cJSON_AddStringToObject(root, "key_filter", store_filter_state_name(fs));
        }
    }
    cJSON_AddBoolToObject(root, "metadata_expired", m.expires_at != 0 && now >= m.expires_at);
    cJSON_AddBoolToObject(root, "clock_fault", now < m.newest_issue_seen);
    if (audit != NULL) {
        /* the audit queue's reserve is released: the data dir's file system is full */
        cJSON_AddBoolToObject(root, "disk_full", audit->disk_full != 0);
        cJSON_AddNumberToObject(root, "audit_reserve_bytes", (double)audit->reserve_bytes);
        add_audit_queue(root, audit, now);
    }
    /* tuf/ and the store disagree (update.h): every check is refused until an update repairs it */
    cJSON_AddBoolToObject(root, "metadata_agree", disagreement == NULL);
    if (disagreement != NULL) {
        cJSON_AddStringToObject(root, "metadata_error", disagreement);
    }
    if (cfg != NULL) {
        cJSON_AddStringToObject(root, "feed_id", cfg->feed_id);
    }
    /* whether the installed feed was keyed with this kiosk's list key (list_key.h): on
     * "mismatch" every check is refused until the right key or a matching feed is installed */
    cJSON_AddStringToObject(root, "list_key",
                            cfg == NULL                                   ? "none"
                            : strcmp(cfg->list_key_check, key_check) == 0 ? "ok"
                                                                          : "mismatch");
    cJSON_AddStringToObject(root, "list_key_fingerprint", key_check);
    if (cfg != NULL) {
        cJSON_AddStringToObject(root, "feed_list_key_fingerprint", cfg->list_key_check);
    }
    j = cJSON_AddArrayToObject(root, "jurisdictions");
    for (size_t i = 0; j != NULL && i < m.n_jurisdictions; i++) {
        cJSON_AddItemToArray(j, cJSON_CreateString(m.jurisdictions[i]));
    }
    arr = cJSON_AddArrayToObject(root, "lists");
    for (size_t i = 0; arr != NULL && i < n && i < STORE_LISTS_MAX; i++) {
        cJSON *o = cJSON_CreateObject();
        int li = cfg != NULL ? feed_config_list_find(cfg, lists[i].id) : -1;
        int64_t fresh = store_list_fresh_at(&lists[i], &m);
        int64_t age = now - fresh;

        if (o == NULL) {
            err = POSGATE_ERR_NOMEM;
            goto out;
        }
        cJSON_AddItemToArray(arr, o);
        cJSON_AddStringToObject(o, "id", lists[i].id);
        cJSON_AddNumberToObject(o, "seq", (double)lists[i].seq);
        cJSON_AddNumberToObject(o, "entries", (double)lists[i].entries);
        cJSON_AddStringToObject(o, "digest", lists[i].digest);
        add_time(o, "issued_at", lists[i].issued_at);
        cJSON_AddNumberToObject(o, "data_age_s", (double)(age > 0 ? age : 0));
        if (li >= 0) {
            const struct feed_list *fl = &cfg->lists[li];

            cJSON_AddStringToObject(o, "authority", fl->authority);
            cJSON_AddStringToObject(o, "stale_after", fl->stale_after);
            cJSON_AddStringToObject(o, "stale_policy", feed_stale_policy_name(fl->stale_policy));
            cJSON_AddBoolToObject(o, "stale", age > fl->stale_after_s);
        }
    }
    err = json_print_to_buf(root, out);
    root = NULL;
out:
    cJSON_Delete(root);
    cJSON_free(lists);
    feed_config_free(cfg);
    buf_free(&cfgjson);
    return err;
}

/* The check result written directly, the bytes cJSON_PrintUnformatted gives for the tree of
 * report_result_json_tree (tests/unit/agent/core/report.c compares the two): every check over
 * HTTP is answered with one, and the tree's ~40 allocations, its printf/sscanf round trip per
 * number and its copies were a few percent of an ALLOW's CPU. Errors are sticky in *err. */
struct jw {
    struct buf *out;
    enum posgate_err err;
};

static void
jw_raw(struct jw *w, const char *s, size_t n)
{
    if (w->err == POSGATE_OK) {
        w->err = buf_append(w->out, s, n);
    }
}

#define JW_LIT(w, lit) jw_raw((w), (lit), sizeof(lit) - 1)

/* A string as cJSON prints it: '"', '\\', \b \f \n \r \t escaped, other bytes below 0x20 as
 * \u00xx, everything else as is. */
static void
jw_str(struct jw *w, const char *s)
{
    static const char hx[] = "0123456789abcdef";
    const char *run = s;

    JW_LIT(w, "\"");
    for (; *s != 0; s++) {
        unsigned char c = (unsigned char)*s;
        char esc[6] = {'\\', 0, '0', '0', 0, 0};
        size_t n = 2;

        if (c >= 0x20 && c != '"' && c != '\\') {
            continue;
        }
        jw_raw(w, run, (size_t)(s - run));
        run = s + 1;
        switch (c) {
        case '"':
        case '\\':
            esc[1] = (char)c;
            break;
        case '\b':
            esc[1] = 'b';
            break;
        case '\f':
            esc[1] = 'f';
            break;
        case '\n':
            esc[1] = 'n';
            break;
        case '\r':
            esc[1] = 'r';
            break;
        case '\t':
            esc[1] = 't';
            break;
        default:
            esc[1] = 'u';
            esc[4] = hx[c >> 4];
            esc[5] = hx[c & 15];
            n = 6;
            break;
        }
        jw_raw(w, esc, n);
    }
    jw_raw(w, run, (size_t)(s - run));
    JW_LIT(w, "\"");
}

/* "name": with its separator (names are ours: nothing to escape). */
static void
jw_key(struct jw *w, const char *comma_name_colon, size_t n)
{
    jw_raw(w, comma_name_colon, n);
}

#define JW_KEY(w, lit) jw_key((w), (lit), sizeof(lit) - 1)

/* A number as cJSON prints it: an integer within int as %d, else %1.15g, or %1.17g when %1.15g
 * does not read back as the same double. */
static void
jw_num(struct jw *w, double d)
{
    char t[32];
    int n;

    if (isnan(d) || isinf(d)) {
        JW_LIT(w, "null");
        return;
    }
    if (d < INT_MAX && d > INT_MIN && d == (double)(int)d) {
        int v = (int)d;
        unsigned u = v < 0 ? 0u - (unsigned)v : (unsigned)v;
        size_t k = sizeof(t);

        do {
            t[--k] = (char)('0' + u % 10);
            u /= 10;
        } while (u != 0);
        if (v < 0) {
            t[--k] = '-';
        }
        jw_raw(w, t + k, sizeof(t) - k);
        return;
    }
    n = snprintf(t, sizeof(t), "%1.15g", d);
    if (n > 0) {
        double back = strtod(t, NULL);
        double big = fabs(back) > fabs(d) ? fabs(back) : fabs(d);

        if (!(fabs(back - d) <= big * DBL_EPSILON)) { /* cJSON's compare_double */
            n = snprintf(t, sizeof(t), "%1.17g", d);
        }
    }
    jw_raw(w, t, n > 0 ? (size_t)n : 0);
}

static void
jw_time(struct jw *w, int64_t t)
{
    char s[32];

    if (t == 0 || t == FEED_UNTIL_OPEN) {
        JW_LIT(w, "null");
        return;
    }
    plat_time_format(t, s, sizeof(s));
    jw_str(w, s);
}

/* "name":"value", left out when value is NULL (as cJSON_AddStringToObject leaves it out). */
static void
jw_kv(struct jw *w, const char *key, size_t keylen, const char *v)
{
    if (v != NULL) {
        jw_key(w, key, keylen);
        jw_str(w, v);
    }
}

#define JW_KV(w, lit, v) jw_kv((w), (lit), sizeof(lit) - 1, (v))

static void
jw_reason(struct jw *w, const struct engine_reason *r)
{
    JW_LIT(w, "{");
    JW_KV(w, "\"kind\":", engine_reason_kind_name(r->kind));
    JW_KV(w, ",\"effect\":", engine_decision_name(r->effect));
    JW_KV(w, ",\"list\":", r->list_id);
    JW_KV(w, ",\"listing_id\":", r->listing_id);
    JW_KV(w, ",\"reason\":", r->reason_id);
    JW_KV(w, ",\"authority\":", r->authority[0] ? r->authority : r->list_authority);
    JW_KV(w, ",\"legal_basis\":", r->legal_basis);
    JW_KV(w, ",\"contest\":", r->contest);
    JW_KEY(w, ",\"valid_from\":");
    jw_time(w, r->valid_from);
    JW_KEY(w, ",\"valid_until\":");
    jw_time(w, r->valid_until);
    if (r->overridable) {
        JW_KEY(w, ",\"override_allowed\":true");
    } else {
        JW_KEY(w, ",\"override_allowed\":false");
    }
    JW_KV(w, ",\"detail\":", r->detail);
    JW_LIT(w, "}");
}

enum posgate_err
report_result_json(const struct posgate_result *res, struct buf *out)
{
    const struct engine_result *e = &res->eng;
    struct jw w = {out, POSGATE_OK};
    size_t n_stale = 0;

    if (res->err != POSGATE_OK) {
        return report_result_json_tree(res, out); /* the error object: not on the hot path */
    }
    buf_reset(out);
    JW_KV(&w, "{\"decision\":", posgate_decision_name(posgate_result_decision(res)));
    JW_KV(&w, ",\"decision_id\":", res->decision_id);
    JW_KV(&w, ",\"service\":", res->service);
    JW_KEY(&w, ",\"at\":");
    jw_time(&w, res->at);
    JW_KEY(&w, ",\"reasons\":[");
    for (size_t i = 0; i < e->n_reasons; i++) {
        if (i > 0) {
            JW_LIT(&w, ",");
        }
        jw_reason(&w, &e->reasons[i]);
    }
    JW_KEY(&w, "],\"feed_version\":");
    jw_num(&w, (double)res->feed_version);
    JW_KEY(&w, ",\"data_age_s\":");
    if (e->data_age_s >= 0) {
        jw_num(&w, (double)e->data_age_s);
    } else {
        JW_LIT(&w, "null");
    }
    if (e->clock_fault) {
        JW_KEY(&w, ",\"clock_fault\":true");
    } else {
        JW_KEY(&w, ",\"clock_fault\":false");
    }
    if (res->expires_at != 0 && res->checked_now >= res->expires_at) {
        JW_KEY(&w, ",\"feed_expired\":true");
    } else {
        JW_KEY(&w, ",\"feed_expired\":false");
    }
    JW_KEY(&w, ",\"stale_lists\":[");
    for (size_t i = 0; i < e->n_reasons; i++) {
        const struct engine_reason *r = &e->reasons[i];
        int seen = 0;

        if (r->kind != ENGINE_REASON_STALE || r->list_id == NULL) {
            continue;
        }
        for (size_t j = 0; j < i; j++) {
            seen |= e->reasons[j].kind == ENGINE_REASON_STALE && e->reasons[j].list_id != NULL &&
                    strcmp(e->reasons[j].list_id, r->list_id) == 0;
        }
        if (!seen) {
            if (n_stale++ > 0) {
                JW_LIT(&w, ",");
            }
            jw_str(&w, r->list_id);
        }
    }
    JW_KV(&w, "],\"list_key\":", res->list_key != NULL ? res->list_key : "none");
    JW_KV(&w, ",\"notice\":", e->notice);
    if (res->overridden) {
        JW_KV(&w, ",\"override\":{\"by\":", res->override_by);
        JW_KV(&w, ",\"reason\":", res->override_reason);
        JW_KEY(&w, ",\"overridden_decision\":\"deny\"}");
    }
    JW_KEY(&w, ",\"audit_seq\":");
    if (res->audit_seq > 0) {
        jw_num(&w, (double)res->audit_seq);
    } else {
        JW_LIT(&w, "null");
    }
    JW_LIT(&w, "}");
    if (w.err != POSGATE_OK) {
        buf_reset(out);
    }
    return w.err;
}
