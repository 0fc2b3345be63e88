/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Tests of agent/core/report.c's check result: the direct writer (report_result_json) gives the
 * bytes cJSON prints for the result's tree (report_result_json_tree), which define the answer of
 * `posgate check --json` and POST /v1/check, on random results: every decision, reasons with
 * every optional text, strings with quotes, backslashes, control characters and UTF-8, numbers
 * inside and outside int, overrides, stale lists, an expired feed; and a result that carries an
 * error still gets its error object.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "api_internal.h"
#include "buf.h"
#include "feed_config.h"
#include "json_canon.h"
#include "test.h"

static uint64_t rng = 20;

static uint64_t
rnd(void)
{
    uint64_t z = (rng += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static void
rnd_str(char *s, size_t cap)
{
    static const char set[] = "abcXYZ019-_.:/ \"\\{}[],\n\t\r\b\f\x01\x1f\x7f\xc3\xa9\xe4\xb8\xad";
    size_t n = rnd() % 4 == 0 ? 0 : (size_t)(rnd() % (cap < 80 ? cap : 80));

    for (size_t i = 0; i < n; i++) {
        s[i] = set[rnd() % (sizeof set - 1)];
    }
    s[n] = 0;
}

static char texts[64][81];

static const char *
rnd_text(void)
{
    char *t = texts[rnd() % 64];

    rnd_str(t, 81);
    return t;
}

static int64_t
rnd_time(void)
{
    switch (rnd() % 4) {
    case 0:
        return 0;
    case 1:
        return FEED_UNTIL_OPEN;
    default:
        return (int64_t)(rnd() % 4000000000ULL);
    }
}

static int64_t
rnd_int(void)
{
    switch (rnd() % 5) {
    case 0:
        return (int64_t)(rnd() % 100);
    case 1:
        return INT32_MAX + (int64_t)(rnd() % 3) - 1;
    case 2:
        return (int64_t)(rnd() % (UINT64_C(1) << 53));
    case 3:
        return (int64_t)(rnd() >> 1); /* past 2^53: %1.17g */
    default:
        return (int64_t)(rnd() % 1000000000000000ULL);
    }
}

static void
rnd_result(struct posgate_result *res)
{
    struct engine_result *e = &res->eng;
    static const char *const keys[] = {"ok", "mismatch", "none", NULL};

    memset(res, 0, offsetof(struct posgate_result, json));
    e->decision = (enum engine_decision)(rnd() % 3);
    e->data_age_s = rnd() % 3 == 0 ? -1 : rnd_int();
    e->clock_fault = rnd() % 2 == 0;
    e->n_reasons = rnd() % 3 == 0 ? 0 : (size_t)(rnd() % (ENGINE_REASONS_MAX + 1));
    for (size_t i = 0; i < e->n_reasons; i++) {
        struct engine_reason *r = &e->reasons[i];

        r->kind = (enum engine_reason_kind)(rnd() % 5);
        r->effect = (enum engine_decision)(rnd() % 3);
        r->list_id = rnd() % 8 == 0 ? NULL : (rnd() % 3 == 0 ? "court" : rnd_text());
        r->list_authority = rnd_text();
        r->reason_id = rnd() % 8 == 0 ? NULL : rnd_text();
        r->authority = rnd() % 2 == 0 ? "" : rnd_text();
        r->legal_basis = rnd() % 8 == 0 ? NULL : rnd_text();
        r->contest = rnd_text();
        rnd_str(r->listing_id, sizeof r->listing_id);
        r->valid_from = rnd_time();
        r->valid_until = rnd_time();
        r->overridable = rnd() % 2 == 0;
        rnd_str(r->detail, sizeof r->detail);
    }
    rnd_str(e->notice, sizeof e->notice);
    rnd_str(res->service, sizeof res->service);
    snprintf(res->decision_id, sizeof res->decision_id, "%016llx%016llx",
             (unsigned long long)rnd(), (unsigned long long)rnd());
    res->at = rnd_time();
    res->feed_version = rnd_int();
    res->expires_at = rnd() % 2 == 0 ? 0 : (int64_t)(rnd() % 4000000000ULL);
    res->checked_now = (int64_t)(rnd() % 4000000000ULL);
    res->list_key = keys[rnd() % 4];
    res->overridden = rnd() % 3 == 0;
    rnd_str(res->override_by, sizeof res->override_by);
    rnd_str(res->override_reason, sizeof res->override_reason);
    res->audit_seq = rnd() % 2 == 0 ? 0 : (uint64_t)rnd_int();
}

int
main(void)
{
    static struct posgate_result res;
    struct buf got = BUF_INIT(1u << 22), want = BUF_INIT(1u << 22);
    const int rounds = 20000;
    int same = 0;

    json_init_hooks();
    for (int k = 0; k < rounds; k++) {
        rnd_result(&res);
        CHECK_OK(buf_append(&got, "stale", 5)); /* the writer replaces what the buffer held */
        CHECK_OK(report_result_json(&res, &got));
        CHECK_OK(report_result_json_tree(&res, &want));
        if (got.len == want.len && memcmp(got.data, want.data, got.len) == 0) {
            same++;
        } else if (same == k) {
            fprintf(stderr, "result %d differs:\n got  %.*s\n want %.*s\n", k, (int)got.len,
                    (const char *)got.data, (int)want.len, (const char *)want.data);
        }
        buf_reset(&got);
    }
    CHECK_INT(same, rounds);
    /* a result that carries an error: its error object, through the tree */
    rnd_result(&res);
    res.err = POSGATE_ERR_INVALID;
    snprintf(res.errmsg, sizeof res.errmsg, "service: expected a service name, found none");
    CHECK_OK(report_result_json(&res, &got));
    CHECK_CONTAINS((const char *)got.data,
                   "\"error\":{\"code\":\"INVALID\",\"field\":\"service\",\"message\":\"service: "
                   "expected a service name, found none\"}");
    CHECK_CONTAINS((const char *)got.data, "\"decision\":\"refer\"");
    buf_free(&got);
    buf_free(&want);
    return test_summary("report");
}
