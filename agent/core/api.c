/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The public C API (posgate.h): opening a data directory, building requests, and the check
 * itself — keys from the prepared HMAC pads, a pooled store reader per concurrent check, the
 * decision engine, a supervisor override where the listing allows one, and the audit event of
 * every decision (audit.h) — with no allocation on the check path once the readers are warm.
 */
#define _POSIX_C_SOURCE 200809L
#include "posgate.h"

#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "api_internal.h"
#include "posgate_admin.h"
#include "plat_clock.h"
#include "plat_log.h"
#include "plat_mem.h"
#include "plat_random.h"
#include "update.h"
#include "plat_text.h"

static _Thread_local char open_errmsg[API_ERRMSG_MAX];

const char *
posgate_open_errmsg(void)
{
    return open_errmsg;
}

/* The device key and the audit queue. A data dir made before the device key existed gets its
 * key now, so that no decision goes unaudited. */
static enum posgate_err
open_audit(struct posgate *pg, char *errmsg, size_t errcap)
{
    char msg[API_ERRMSG_MAX];
    enum posgate_err err;

    err = device_key_load(pg->dd.device_key, pg->dd.device_pub, &pg->dk, msg, sizeof(msg));
    if (err == POSGATE_ERR_NOTFOUND) {
        plat_log(PLAT_LOG_INFO, "no device key in %s: making one", pg->dd.root);
        err = device_key_create(pg->dd.device_key, pg->dd.device_pub, msg, sizeof(msg));
        if (err == POSGATE_OK) {
            err = device_key_load(pg->dd.device_key, pg->dd.device_pub, &pg->dk, msg, sizeof(msg));
        }
    }
    if (err == POSGATE_OK) {
        err = audit_open(pg->dd.audit_db, pg->dk, NULL, 0, &pg->audit, msg, sizeof(msg));
    }
    if (err != POSGATE_OK) {
        snprintf(errmsg, errcap, "%s", msg);
    }
    return err;
}

/* posgate_open with its message in a caller buffer (posgate_admin.h; posgate_err.h says why
 * there are two). */
enum posgate_err
posgate_admin_open(const char *data_dir, struct posgate **out, char *errmsg, size_t errcap)
{
    struct posgate *pg;
    enum posgate_err err;
    uint8_t key[LIST_KEY_LEN];
    char msg[256], none[1];

    if (errmsg == NULL || errcap == 0) {
        errmsg = none;
        errcap = sizeof(none);
    }
    errmsg[0] = 0;
    if (out == NULL) {
        return POSGATE_ERR_INVALID;
    }
    *out = NULL;
    pg = plat_calloc(1, sizeof(*pg));
    if (pg == NULL) {
        return POSGATE_ERR_NOMEM;
    }
    if (pthread_mutex_init(&pg->lock, NULL) != 0) {
        plat_free(pg);
        return POSGATE_ERR_NOMEM;
    }
    if (pthread_mutex_init(&pg->st_lock, NULL) != 0) {
        pthread_mutex_destroy(&pg->lock);
        plat_free(pg);
        return POSGATE_ERR_NOMEM;
    }
    err = datadir_init(&pg->dd, data_dir);
    if (err != POSGATE_OK) {
        snprintf(errmsg, errcap, "data dir: %s", posgate_strerror(err));
        goto fail;
    }
    err = datadir_read_list_key(pg->dd.list_key, key, msg, sizeof(msg));
    if (err != POSGATE_OK) {
        snprintf(errmsg, errcap, "%s%s", msg,
                 err == POSGATE_ERR_NOTFOUND ? " (run posgate init first)" : "");
        goto fail;
    }
    err = crypto_hmac_key_init(&pg->hmac, key, sizeof(key));
    plat_wipe(key, sizeof(key));
    if (err != POSGATE_OK) {
        goto fail;
    }
    list_key_check(&pg->hmac, pg->key_check);
    /* on a full disk, the space the audit queue set aside lets the store make its -shm file */
    audit_reserve_prepare(pg->dd.audit_db);
    err = store_open(pg->dd.store, 0, &pg->st, msg, sizeof(msg));
    if (err != POSGATE_OK) {
        snprintf(errmsg, errcap, "%.450s", msg); /* it names the file */
        goto fail;
    }
    pg->at_tolerance_s = POSGATE_AT_TOLERANCE_S;
    pg->at_horizon_s = POSGATE_AT_HORIZON_S;
    err = plat_random(pg->id_prefix, sizeof(pg->id_prefix));
    if (err != POSGATE_OK) {
        goto fail;
    }
    err = open_audit(pg, errmsg, errcap);
    if (err != POSGATE_OK) {
        goto fail;
    }
    *out = pg;
    return POSGATE_OK;
fail:
    posgate_close(pg);
    return err;
}

enum posgate_err
posgate_open(const char *data_dir, struct posgate **out)
{
    return posgate_admin_open(data_dir, out, open_errmsg, sizeof(open_errmsg));
}

void
posgate_close(struct posgate *pg)
{
    if (pg == NULL) {
        return;
    }
    audit_close(pg->audit); /* commits what is still queued */
    device_key_free(pg->dk);
    for (size_t i = 0; i < pg->n_readers; i++) {
        store_reader_free(pg->readers[i]);
    }
    store_close(pg->st);
    crypto_hmac_key_cleanup(&pg->hmac);
    pthread_mutex_destroy(&pg->st_lock);
    pthread_mutex_destroy(&pg->lock);
    plat_free(pg);
}

enum posgate_err
posgate_request_new(struct posgate_request **out)
{
    if (out == NULL) {
        return POSGATE_ERR_INVALID;
    }
    *out = plat_calloc(1, sizeof(**out));
    return *out != NULL ? POSGATE_OK : POSGATE_ERR_NOMEM;
}

void
posgate_request_free(struct posgate_request *rq)
{
    if (rq != NULL) {
        plat_wipe(rq, sizeof(*rq)); /* identifiers in clear */
        plat_free(rq);
    }
}

void
posgate_request_reset(struct posgate_request *rq)
{
    if (rq != NULL) {
        size_t used = rq->ids_used < ENGINE_IDS_MAX ? rq->ids_used : ENGINE_IDS_MAX;

        /* the ids past ids_used were never written since the last reset: zero already */
        plat_wipe(rq, offsetof(struct posgate_request, ids) + used * sizeof(rq->ids[0]));
    }
}

/* Before a parse into ids[n_ids] (room_for_id passed): the reset is to wipe that one too, even
 * when the parse fails half-way. */
static void
id_written(struct posgate_request *rq)
{
    if (rq->ids_used < rq->n_ids + 1) {
        rq->ids_used = rq->n_ids + 1;
    }
}

/* Only spaces (ASCII, no-break, ideographic, the U+2000..U+200B run): a value that names no one. */
static bool
blank(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;

    while (*p != 0) {
        if (p[0] == ' ') {
            p++;
        } else if (p[0] == 0xC2 && p[1] == 0xA0) {
            p += 2;
        } else if (p[0] == 0xE3 && p[1] == 0x80 && p[2] == 0x80) {
            p += 3;
        } else if (p[0] == 0xE2 && p[1] == 0x80 && p[2] >= 0x80 && p[2] <= 0x8B) {
            p += 3;
        } else {
            return false;
        }
    }
    return true;
}

static enum posgate_err
set_text(struct posgate_request *rq, char *dst, size_t cap, const char *what, const char *s)
{
    const char *bad;
    size_t n, at = 0;

    if (rq == NULL) {
        return POSGATE_ERR_INVALID;
    }
    if (s == NULL || *s == 0) {
        snprintf(rq->errmsg, sizeof(rq->errmsg), "%s: expected a value, found none", what);
        return POSGATE_ERR_INVALID;
    }
    if (blank(s)) {
        snprintf(rq->errmsg, sizeof(rq->errmsg), "%s: expected a value, found only spaces", what);
        return POSGATE_ERR_INVALID;
    }
    n = strlen(s);
    if (n >= cap) {
        snprintf(rq->errmsg, sizeof(rq->errmsg), "%s: expected at most %zu bytes, found %zu", what,
                 cap - 1, n);
        return POSGATE_ERR_INVALID;
    }
    bad = plat_text_check(s, n, 0, &at);
    if (bad != NULL) {
        snprintf(rq->errmsg, sizeof(rq->errmsg),
                 "%s: expected UTF-8 text without control characters, found %s at byte %zu",
                 what, bad, at);
        return POSGATE_ERR_INVALID;
    }
    memcpy(dst, s, n + 1);
    return POSGATE_OK;
}

enum posgate_err
posgate_request_set_service(struct posgate_request *rq, const char *service)
{
    return rq == NULL ? POSGATE_ERR_INVALID
                      : set_text(rq, rq->service, sizeof(rq->service), "service", service);
}

enum posgate_err
posgate_request_set_operator(struct posgate_request *rq, const char *op)
{
    return rq == NULL ? POSGATE_ERR_INVALID
                      : set_text(rq, rq->operator_id, sizeof(rq->operator_id), "operator", op);
}

enum posgate_err
posgate_request_set_override(struct posgate_request *rq, const char *by, const char *reason)
{
    enum posgate_err err;

    if (rq == NULL) {
        return POSGATE_ERR_INVALID;
    }
    err = set_text(rq, rq->override_by, sizeof(rq->override_by), "override by", by);
    if (err == POSGATE_OK) {
        err = set_text(rq, rq->override_reason, sizeof(rq->override_reason), "override reason",
                       reason);
    }
    rq->has_override = err == POSGATE_OK;
    return err;
}

static enum posgate_err
room_for_id(struct posgate_request *rq)
{
    if (rq->n_ids >= ENGINE_IDS_MAX) {
        snprintf(rq->errmsg, sizeof(rq->errmsg), "id: expected at most %d identifiers",
                 ENGINE_IDS_MAX);
        return POSGATE_ERR_INVALID;
    }
    return POSGATE_OK;
}

enum posgate_err
posgate_request_add_id(struct posgate_request *rq, const char *type_colon_value)
{
    enum posgate_err err;

    if (rq == NULL) {
        return POSGATE_ERR_INVALID;
    }
    err = room_for_id(rq);
    if (err != POSGATE_OK) {
        return err;
    }
    if (type_colon_value == NULL) {
        snprintf(rq->errmsg, sizeof(rq->errmsg), "id: expected TYPE:VALUE, found nothing");
        return POSGATE_ERR_INVALID;
    }
    id_written(rq);
    err = ident_parse_arg(type_colon_value, strlen(type_colon_value), &rq->ids[rq->n_ids],
                          rq->errmsg, sizeof(rq->errmsg));
    if (err == POSGATE_OK) {
        rq->n_ids++;
    }
    return err;
}

enum posgate_err
posgate_request_set_name_dob(struct posgate_request *rq, const char *name, const char *birth_date)
{
    enum posgate_err err;

    if (rq == NULL) {
        return POSGATE_ERR_INVALID;
    }
    err = room_for_id(rq);
    if (err != POSGATE_OK) {
        return err;
    }
    id_written(rq);
    err =
        ident_parse_name_dob(name, birth_date, &rq->ids[rq->n_ids], rq->errmsg, sizeof(rq->errmsg));
    if (err == POSGATE_OK) {
        rq->n_ids++;
    }
    return err;
}

enum posgate_err
posgate_request_set_at(struct posgate_request *rq, const char *rfc3339)
{
    if (rq == NULL) {
        return POSGATE_ERR_INVALID;
    }
    if (rfc3339 == NULL || plat_time_parse(rfc3339, &rq->at) != POSGATE_OK) {
        snprintf(rq->errmsg, sizeof(rq->errmsg),
                 "at: expected an RFC 3339 time like 2026-11-21T09:30:00Z, found \"%.64s\"",
                 rfc3339 ? rfc3339 : "");
        return POSGATE_ERR_INVALID;
    }
    rq->has_at = 1;
    return POSGATE_OK;
}

const char *
posgate_request_errmsg(const struct posgate_request *rq)
{
    return rq != NULL ? rq->errmsg : "no request";
}

enum posgate_err
posgate_result_new(struct posgate_result **out)
{
    struct posgate_result *res;

    if (out == NULL) {
        return POSGATE_ERR_INVALID;
    }
    res = plat_calloc(1, sizeof(*res));
    if (res == NULL) {
        return POSGATE_ERR_NOMEM;
    }
    buf_init(&res->json, 1u << 20);
    buf_init(&res->texts, 1u << 20);
    res->eng.decision = ENGINE_REFER;
    *out = res;
    return POSGATE_OK;
}

void
posgate_result_free(struct posgate_result *res)
{
    if (res != NULL) {
        buf_free(&res->json);
        buf_free(&res->texts);
        plat_free(res);
    }
}

/* The engine's reasons borrow their texts (list, authority, legal basis, contest route) from the
 * reader's feed config. Once the reader is back in the pool another check may renew it and
 * free that config while the caller still holds this result (posgate_result_json renders it
 * later), so the texts are copied into the result first. */
static enum posgate_err
own_texts(struct posgate_result *res)
{
    struct engine_result *e = &res->eng;
    size_t need = 0;

    buf_reset(&res->texts);
    for (size_t i = 0; i < e->n_reasons; i++) {
        const struct engine_reason *r = &e->reasons[i];
        const char *t[] = {r->list_id,   r->list_authority, r->reason_id,
                           r->authority, r->legal_basis,    r->contest};

        for (size_t k = 0; k < sizeof t / sizeof t[0]; k++) {
            need += (t[k] != NULL ? strlen(t[k]) : 0) + 1;
        }
    }
    if (need == 0) {
        return POSGATE_OK;
    }
    if (buf_reserve(&res->texts, need) != POSGATE_OK) { /* no reallocation below */
        return POSGATE_ERR_NOMEM;
    }
    for (size_t i = 0; i < e->n_reasons; i++) {
        struct engine_reason *r = &e->reasons[i];
        const char **t[] = {&r->list_id,   &r->list_authority, &r->reason_id,
                            &r->authority, &r->legal_basis,    &r->contest};

        for (size_t k = 0; k < sizeof t / sizeof t[0]; k++) {
            const char *src = *t[k] != NULL ? *t[k] : "";
            size_t at = res->texts.len;

            if (buf_append(&res->texts, src, strlen(src) + 1) != POSGATE_OK) {
                return POSGATE_ERR_NOMEM;
            }
            *t[k] = (const char *)res->texts.data + at;
        }
    }
    return POSGATE_OK;
}

static enum posgate_err
take_reader(struct posgate *pg, struct store_reader **out)
{
    enum posgate_err err = POSGATE_OK;

    pthread_mutex_lock(&pg->lock);
    if (pg->n_readers > 0) {
        *out = pg->readers[--pg->n_readers];
    } else {
        pthread_mutex_lock(&pg->st_lock);
        err = store_reader_new(pg->st, out);
        pthread_mutex_unlock(&pg->st_lock);
    }
    pthread_mutex_unlock(&pg->lock);
    return err;
}

static void
give_reader(struct posgate *pg, struct store_reader *r)
{
    pthread_mutex_lock(&pg->lock);
    if (pg->n_readers < API_READERS_MAX) {
        pg->readers[pg->n_readers++] = r;
        r = NULL;
    }
    pthread_mutex_unlock(&pg->lock);
    store_reader_free(r);
}

static void
result_fail(struct posgate_result *res, enum posgate_err err, const char *msg)
{
    res->err = err;
    res->eng.decision = ENGINE_REFER;
    res->eng.n_reasons = 0;
    snprintf(res->errmsg, sizeof(res->errmsg), "%s", msg);
    snprintf(res->eng.notice, sizeof(res->eng.notice),
             "REFER: this terminal cannot answer (%s). Check the customer's documents and ask a "
             "supervisor.",
             msg);
}

static enum audit_decision
audit_of(enum engine_decision d)
{
    switch (d) {
    case ENGINE_ALLOW:
        return AUDIT_ALLOW;
    case ENGINE_DENY:
        return AUDIT_DENY;
    case ENGINE_REFER:
        return AUDIT_REFER;
    }
    return AUDIT_REFER;
}

_Static_assert(sizeof(((struct audit_list *)0)->id) == sizeof(((struct store_list *)0)->id),
               "an audit list id holds a store list id");
_Static_assert(sizeof(((struct audit_list *)0)->digest) ==
                   sizeof(((struct store_list *)0)->digest),
               "an audit list digest holds a store list digest");

/* The installed lists that took part in the check: those that apply at the gate and whose
 * entries use a reason covering the service or a part of it (engine_trail_lists). */
static void
event_lists(struct audit_event *ev, struct store_reader *r, int svc)
{
    const struct store_list *lists;
    uint16_t idx[AUDIT_LISTS_MAX];
    size_t n = 0, found;

    ev->n_lists = 0;
    ev->lists_more = 0;
    lists = store_reader_lists(r, &n);
    found = engine_trail_lists(r, svc, idx, AUDIT_LISTS_MAX);
    for (size_t i = 0; i < found && i < AUDIT_LISTS_MAX; i++) {
        const struct store_list *l = &lists[idx[i]];

        /* whole arrays of one size, each NUL-terminated by the store: no length to find */
        memcpy(ev->lists[i].id, l->id, sizeof(ev->lists[0].id));
        ev->lists[i].seq = l->seq;
        memcpy(ev->lists[i].digest, l->digest, sizeof(ev->lists[0].digest));
        ev->lists[i].digest_written = false; /* the queue's writer decides */
        ev->n_lists++;
    }
    ev->lists_more = found - ev->n_lists;
}

/* The parts of the event that do not depend on the engine's answer. */
static void
event_begin(struct audit_event *ev, const struct posgate_request *rq,
            const struct posgate_result *res, const struct engine_id *ids, int64_t wall_us,
            uint64_t mono_ns)
{
    plat_str_copy(ev->id, sizeof(ev->id), res->decision_id);
    ev->at = res->at;
    ev->time_us = wall_us;
    ev->mono_us = (int64_t)(mono_ns / 1000u);
    plat_str_copy(ev->service, sizeof(ev->service), rq->service);
    plat_str_copy(ev->operator_id, sizeof(ev->operator_id), rq->operator_id);
    ev->n_subjects = rq->n_ids < AUDIT_SUBJECTS_MAX ? rq->n_ids : AUDIT_SUBJECTS_MAX;
    for (size_t i = 0; i < ev->n_subjects; i++) {
        memcpy(ev->subjects[i], ids[i].key, AUDIT_SUBJECT_LEN);
    }
    ev->n_reasons = 0;
    ev->n_lists = 0;
    ev->lists_more = 0;
    ev->feed_version = 0;
    ev->data_age_s = -1;
    ev->has_override = rq->has_override != 0;
    ev->override_refused = false;
    ev->overridden = AUDIT_DENY;
    if (ev->has_override) {
        plat_str_copy(ev->override_by, sizeof(ev->override_by), rq->override_by);
        plat_str_copy(ev->override_reason, sizeof(ev->override_reason), rq->override_reason);
    }
    ev->error[0] = 0;
}

/* The engine's answer; decision is what the caller is told. */
static void
event_answer(struct audit_event *ev, const struct posgate_result *res, enum engine_decision d)
{
    const struct engine_result *e = &res->eng;

    ev->decision = audit_of(d);
    ev->feed_version = res->feed_version;
    ev->data_age_s = e->data_age_s;
    ev->n_reasons = 0;
    for (size_t i = 0; i < e->n_reasons && i < AUDIT_REASONS_MAX; i++) {
        const struct engine_reason *r = &e->reasons[i];
        struct audit_reason *a = &ev->reasons[ev->n_reasons++];

        plat_str_copy(a->kind, sizeof(a->kind), engine_reason_kind_name(r->kind));
        plat_str_copy(a->effect, sizeof(a->effect), engine_decision_name(r->effect));
        plat_str_copy(a->list, sizeof(a->list), r->list_id != NULL ? r->list_id : "");
        plat_str_copy(a->listing_id, sizeof(a->listing_id), r->listing_id);
        plat_str_copy(a->reason, sizeof(a->reason), r->reason_id != NULL ? r->reason_id : "");
    }
}

/* Why a supervisor override of this result is refused, or NULL when it may proceed. */
static const char *
override_refusal(const struct engine_result *e, char *msg, size_t cap)
{
    if (e->decision != ENGINE_DENY) {
        snprintf(msg, cap,
                 "override: nothing to override: the decision is %s (an override "
                 "applies only to a DENY)",
                 engine_decision_name(e->decision));
        return msg;
    }
    for (size_t i = 0; i < e->n_reasons; i++) {
        const struct engine_reason *r = &e->reasons[i];

        if (r->effect != ENGINE_DENY) {
            continue;
        }
        if (r->kind != ENGINE_REASON_MATCH) {
            snprintf(msg, cap,
                     "override: list %s denies (%s: %.200s); a supervisor override "
                     "lifts only listings whose reason allows it",
                     r->list_id != NULL && r->list_id[0] ? r->list_id : "-",
                     engine_reason_kind_name(r->kind), r->detail);
            return msg;
        }
        if (!r->overridable) {
            snprintf(msg, cap,
                     "override: listing %s on list %s does not allow a supervisor "
                     "override (reason %s says override: none)",
                     r->listing_id, r->list_id, r->reason_id);
            return msg;
        }
    }
    if (e->reasons_dropped > 0 && e->n_reasons > 0 &&
        e->reasons[e->n_reasons - 1].effect == ENGINE_DENY) {
        snprintf(msg, cap,
                 "override: more than %d reasons deny; they cannot all be checked for "
                 "a supervisor override",
                 ENGINE_REASONS_MAX);
        return msg;
    }
    return NULL;
}

/* Applies an allowed override: the DENY reasons are lifted; a REFER from another reason stays. */
static void
apply_override(const struct posgate_request *rq, struct posgate_result *res)
{
    struct engine_result *e = &res->eng;
    char old[ENGINE_NOTICE_MAX];
    enum engine_decision d = ENGINE_ALLOW;

    for (size_t i = 0; i < e->n_reasons; i++) {
        if (e->reasons[i].effect == ENGINE_REFER) {
            d = ENGINE_REFER;
        }
    }
    snprintf(old, sizeof(old), "%s", e->notice);
    if (d == ENGINE_ALLOW) {
        snprintf(e->notice, sizeof(e->notice),
                 "ALLOW by supervisor override: %s overrode a DENY (reason given: %.600s). The "
                 "override is audited. The overridden decision was:\n%.3000s",
                 rq->override_by, rq->override_reason, old);
    } else {
        snprintf(e->notice, sizeof(e->notice),
                 "REFER: supervisor %s lifted the denial (reason given: %.600s), but another "
                 "reason still asks for a referral:\n%.3000s",
                 rq->override_by, rq->override_reason, old);
    }
    e->decision = d;
    res->overridden = 1;
    snprintf(res->override_by, sizeof(res->override_by), "%s", rq->override_by);
    snprintf(res->override_reason, sizeof(res->override_reason), "%s", rq->override_reason);
}

/* Says in the notice what the answer stands on when that is less than a fresh, signed feed: an
 * expired feed (metadata past its signed expiry) and stale lists. The same facts are in the
 * check object (feed_expired, stale_lists). */
static void
footing_note(struct posgate_result *res)
{
    struct engine_result *e = &res->eng;
    size_t len = strlen(e->notice), cap = sizeof(e->notice);
    char when[32];
    int n;

    if (res->expires_at != 0 && res->checked_now >= res->expires_at && len < cap) {
        plat_time_format(res->expires_at, when, sizeof(when));
        n = snprintf(e->notice + len, cap - len,
                     "\nNote: the feed's signed metadata expired at %s; this answer rests on "
                     "lists their publisher no longer vouches for. Sync or import a newer feed.",
                     when);
        len += n > 0 ? (size_t)n : 0;
    }
    for (size_t i = 0; i < e->n_reasons && len < cap; i++) {
        const struct engine_reason *r = &e->reasons[i];

        if (r->kind != ENGINE_REASON_STALE) {
            continue;
        }
        n = snprintf(e->notice + len, cap - len,
                     "\nNote: list %s is stale (%s); it answers by its stale policy.",
                     r->list_id != NULL ? r->list_id : "-", r->detail);
        len += n > 0 ? (size_t)n : 0;
    }
}

/* Records ev; a failure leaves the result REFER with the reason (the answer is not durable). */
static enum posgate_err
audit_or_fail(struct posgate *pg, const struct audit_event *ev, struct posgate_result *res)
{
    enum posgate_err err = audit_record(pg->audit, ev, &res->audit_seq);
    char msg[API_ERRMSG_MAX];

    if (err != POSGATE_OK) {
        snprintf(msg, sizeof(msg), "audit: the decision could not be recorded (%s)",
                 posgate_strerror(err));
        result_fail(res, err == POSGATE_ERR_STATE ? POSGATE_ERR_IO : err, msg);
        return res->err;
    }
    return POSGATE_OK;
}

/* A service date is a day of travel or stay from now on: one before now (less the clock-skew
 * tolerance) would ask about the past, one past the horizon about a day no list can speak for. */
static bool
at_in_window(const struct posgate *pg, int64_t at, int64_t now, char *msg, size_t cap)
{
    /* set by posgate_set_check_window while checks run (posgated's SIGHUP): read once each */
    int64_t tolerance = __atomic_load_n(&pg->at_tolerance_s, __ATOMIC_RELAXED);
    int64_t horizon = __atomic_load_n(&pg->at_horizon_s, __ATOMIC_RELAXED);
    char a[32], b[32];

    if (at < now - tolerance) {
        plat_time_format(at, a, sizeof(a));
        plat_time_format(now - tolerance, b, sizeof(b));
        snprintf(msg, cap,
                 "at: expected a service date from %s (now less %lld s) on, found %s; a check "
                 "is about a sale now and a service on or after it",
                 b, (long long)tolerance, a);
        return false;
    }
    if (at > now + horizon) {
        plat_time_format(at, a, sizeof(a));
        plat_time_format(now + horizon, b, sizeof(b));
        snprintf(msg, cap, "at: expected a service date up to %s (now plus %lld days), found %s", b,
                 (long long)(horizon / 86400), a);
        return false;
    }
    return true;
}

enum posgate_err
posgate_set_check_window(struct posgate *pg, int64_t tolerance_s, int64_t horizon_s)
{
    if (pg == NULL || tolerance_s < 0 || horizon_s < 0) {
        return POSGATE_ERR_INVALID;
    }
    /* checks of other threads read them without the lock (at_in_window): each is one atomic
     * word, and a check that sees one old and one new bound judges by two valid ones */
    __atomic_store_n(&pg->at_tolerance_s, tolerance_s, __ATOMIC_RELAXED);
    __atomic_store_n(&pg->at_horizon_s, horizon_s, __ATOMIC_RELAXED);
    return POSGATE_OK;
}

/* CORRUPT (with msg) when the reader's version carries no list key check value or another key's:
 * a comparison of two short strings, made under the version the engine just read. */
static enum posgate_err
key_matches(const struct posgate *pg, const struct store_reader *r, char *msg, size_t cap)
{
    const struct feed_config *cfg = store_reader_config(r);

    if (cfg == NULL) {
        return POSGATE_OK; /* nothing installed: the engine answered from no list */
    }
    if (list_key_check_match(cfg->list_key_check, pg->key_check, msg, cap) != POSGATE_OK) {
        return POSGATE_ERR_CORRUPT;
    }
    return POSGATE_OK;
}

const char *
api_meta_disagreement(struct posgate *pg, const struct store_meta *m, char *msg, size_t cap)
{
    enum posgate_err err;
    int known;

    pthread_mutex_lock(&pg->lock);
    known = pg->agree_known && pg->agree_feed == m->feed_version &&
            pg->agree_root == m->root_version;
    if (known) {
        err = pg->agree_err;
        if (err != POSGATE_OK) {
            snprintf(msg, cap, "%s", pg->agree_msg);
        }
    }
    pthread_mutex_unlock(&pg->lock);
    if (!known) {
        /* two small files read once per installed version, not per check; a disagreement is
         * read again by every check until an update repairs it (never cached as final) */
        err = update_meta_agreement(&pg->dd, m, msg, cap);
        if (err == POSGATE_OK) {
            pthread_mutex_lock(&pg->lock);
            pg->agree_known = 1;
            pg->agree_feed = m->feed_version;
            pg->agree_root = m->root_version;
            pg->agree_err = err;
            pg->agree_msg[0] = 0;
            pthread_mutex_unlock(&pg->lock);
        }
    }
    return err == POSGATE_OK ? NULL : msg;
}

/* CORRUPT (with msg) when the trusted metadata in the data dir do not describe the version the
 * engine read: a feed installed past its root's rotation, or metadata rolled back under it. */
static enum posgate_err
meta_agrees(struct posgate *pg, const struct store_reader *r, char *msg, size_t cap)
{
    char why[API_ERRMSG_MAX];

    if (api_meta_disagreement(pg, store_reader_meta(r), why, sizeof(why)) != NULL) {
        snprintf(msg, cap, "%.400s; run posgate sync or import to repair", why);
        return POSGATE_ERR_CORRUPT;
    }
    return POSGATE_OK;
}

/* A DENY or REFER notice ends with the decision id: the person quotes it to contest the
 * decision, and the collector finds the decision by it (posgate-hub decision ID). */
static void
quote_decision_id(struct posgate_result *res)
{
    struct engine_result *e = &res->eng;
    size_t len = strlen(e->notice);

    if (e->decision == ENGINE_ALLOW || len + 1 >= sizeof(e->notice)) {
        return;
    }
    snprintf(e->notice + len, sizeof(e->notice) - len,
             "\nDecision id: %s. Quote it to contest this decision or to ask why it was made.\n",
             res->decision_id);
}

enum posgate_err
posgate_check(struct posgate *pg, const struct posgate_request *rq, struct posgate_result *res)
{
    struct engine_id ids[ENGINE_IDS_MAX];
    struct engine_request er;
    struct store_reader *r = NULL;
    struct audit_event ev;
    enum posgate_err err;
    uint64_t n, mono_ns;
    int64_t now, wall_us;
    char msg[API_ERRMSG_MAX];

    if (res == NULL) {
        return POSGATE_ERR_INVALID;
    }
    msg[0] = 0;
    buf_reset(&res->json);
    res->errmsg[0] = 0;
    res->err = POSGATE_OK;
    res->overridden = 0;
    res->audit_seq = 0;
    if (pg == NULL || rq == NULL) {
        result_fail(res, POSGATE_ERR_INVALID, "no handle or request");
        return POSGATE_ERR_INVALID;
    }
    /* one reading of the wall clock: the check's instant and its event's time */
    wall_us = plat_wall_us();
    now = wall_us / 1000000 - (wall_us % 1000000 < 0 ? 1 : 0); /* floored, as tv_sec */
    n = atomic_fetch_add((_Atomic uint64_t *)&pg->id_counter, 1) + 1;
    {
        /* the handle's 8 random bytes, then the counter: 32 hex digits */
        static const char hx[] = "0123456789abcdef";

        for (int k = 0; k < 8; k++) {
            res->decision_id[2 * k] = hx[pg->id_prefix[k] >> 4];
            res->decision_id[2 * k + 1] = hx[pg->id_prefix[k] & 15];
        }
        for (int k = 0; k < 16; k++) {
            res->decision_id[16 + k] = hx[(n >> (60 - 4 * k)) & 15];
        }
        res->decision_id[32] = 0;
    }
    plat_str_copy(res->service, sizeof(res->service), rq->service);
    res->at = rq->has_at ? rq->at : now;
    res->feed_version = 0;
    res->expires_at = 0;
    res->checked_now = now;
    res->list_key = "none";
    if (rq->service[0] == 0) {
        result_fail(res, POSGATE_ERR_INVALID, "service: expected a service name, found none");
        return POSGATE_ERR_INVALID;
    }
    if (rq->n_ids == 0) {
        result_fail(res, POSGATE_ERR_INVALID,
                    "id: expected at least one identifier (or a name and birth date)");
        return POSGATE_ERR_INVALID;
    }
    if (rq->has_at && !at_in_window(pg, rq->at, now, msg, sizeof(msg))) {
        result_fail(res, POSGATE_ERR_INVALID, msg);
        return POSGATE_ERR_INVALID;
    }
    for (size_t i = 0; i < rq->n_ids; i++) {
        ident_entry_key(&pg->hmac, &rq->ids[i], ids[i].key);
        ids[i].type = rq->ids[i].type;
        ids[i].birth_days = rq->ids[i].birth_days;
    }
    err = take_reader(pg, &r);
    /* after the reader is taken: not older than the renewal it records (store_reader_refresh_at) */
    mono_ns = plat_mono_ns();
    if (err == POSGATE_OK) {
        /* the filter's blocks for these keys are on their way while the event is begun and the
         * reader refreshed: a probe that no longer waits for memory (a hint, no answer changes) */
        for (size_t i = 0; i < rq->n_ids; i++) {
            store_reader_prefetch(r, ids[i].key);
        }
    }
    event_begin(&ev, rq, res, ids, wall_us, mono_ns);
    memset(&er, 0, sizeof(er));
    er.service = rq->service;
    er.at = res->at;
    er.wall_now = now;
    er.mono_ns = mono_ns;
    er.ids = ids;
    er.n_ids = rq->n_ids;
    if (err != POSGATE_OK) {
        result_fail(res, err, "cannot read the store");
        ev.decision = AUDIT_ERROR;
        snprintf(ev.error, sizeof(ev.error), "%s", res->errmsg);
        (void)audit_or_fail(pg, &ev, res);
        return err;
    }
    err = engine_check_store(r, &er, &res->eng);
    if (err == POSGATE_OK || err == POSGATE_ERR_INVALID) {
        res->feed_version = store_reader_meta(r)->feed_version;
        res->expires_at = store_reader_meta(r)->expires_at;
    }
    if (err == POSGATE_OK) {
        /* the version the engine read must be keyed with this kiosk's list key, or its
         * ALLOW means only that no key matched (list_key.h) */
        err = key_matches(pg, r, msg, sizeof(msg));
        res->list_key = err == POSGATE_OK ? "ok" : "mismatch";
    }
    if (err == POSGATE_OK) {
        err = meta_agrees(pg, r, msg, sizeof(msg));
    }
    if (err == POSGATE_OK) {
        err = own_texts(res);
    }
    if (err == POSGATE_OK) {
        event_lists(&ev, r, res->eng.service);
    }
    give_reader(pg, r);
    if (err == POSGATE_ERR_INVALID) {
        /* not a decision: the request itself is wrong; nothing to audit */
        snprintf(msg, sizeof(msg), "%.500s", res->eng.notice);
        result_fail(res, err, msg);
        return err;
    }
    if (err != POSGATE_OK) {
        if (err == POSGATE_ERR_NOTFOUND) {
            snprintf(msg, sizeof(msg), "no verified list data is installed (run posgate import)");
        } else if (msg[0] == 0) {
            snprintf(msg, sizeof(msg), "%s", posgate_strerror(err));
        }
        result_fail(res, err, msg);
        ev.decision = AUDIT_ERROR;
        ev.feed_version = res->feed_version;
        snprintf(ev.error, sizeof(ev.error), "%s", res->errmsg);
        (void)audit_or_fail(pg, &ev, res);
        return err;
    }
    if (rq->has_override) {
        if (override_refusal(&res->eng, msg, sizeof(msg)) != NULL) {
            /* audited as answered by the engine, with the refused override */
            event_answer(&ev, res, res->eng.decision);
            ev.overridden = audit_of(res->eng.decision);
            ev.override_refused = true;
            err = audit_or_fail(pg, &ev, res);
            if (err != POSGATE_OK) {
                return err;
            }
            result_fail(res, POSGATE_ERR_INVALID, msg);
            return POSGATE_ERR_INVALID;
        }
        apply_override(rq, res);
    }
    footing_note(res);
    quote_decision_id(res);
    event_answer(&ev, res, res->eng.decision);
    return audit_or_fail(pg, &ev, res);
}

enum posgate_decision
posgate_result_decision(const struct posgate_result *res)
{
    if (res == NULL || res->err != POSGATE_OK) {
        return POSGATE_REFER;
    }
    switch (res->eng.decision) {
    case ENGINE_ALLOW:
        return POSGATE_ALLOW;
    case ENGINE_DENY:
        return POSGATE_DENY;
    case ENGINE_REFER:
        return POSGATE_REFER;
    }
    return POSGATE_REFER;
}

const char *
posgate_decision_name(enum posgate_decision d)
{
    switch (d) {
    case POSGATE_ALLOW:
        return "allow";
    case POSGATE_DENY:
        return "deny";
    case POSGATE_REFER:
        return "refer";
    }
    return "refer";
}

const char *
posgate_result_decision_id(const struct posgate_result *res)
{
    return res != NULL ? res->decision_id : "";
}

const char *
posgate_result_notice(const struct posgate_result *res)
{
    return res != NULL ? res->eng.notice : "";
}

uint64_t
posgate_result_audit_seq(const struct posgate_result *res)
{
    return res != NULL ? res->audit_seq : 0;
}

enum posgate_err
posgate_set_audit_durability(struct posgate *pg, const char *mode)
{
    enum audit_durability d;

    if (pg == NULL || audit_durability_parse(mode, &d) != POSGATE_OK) {
        return POSGATE_ERR_INVALID;
    }
    audit_set_durability(pg->audit, d);
    return POSGATE_OK;
}

enum posgate_err
posgate_set_audit_limits(struct posgate *pg, uint64_t max_bytes, uint32_t retention_days)
{
    if (pg == NULL) {
        return POSGATE_ERR_INVALID;
    }
    audit_set_limits(pg->audit, max_bytes, retention_days);
    return POSGATE_OK;
}

const char *
posgate_result_errmsg(const struct posgate_result *res)
{
    return res != NULL ? res->errmsg : "";
}

const char *
posgate_result_json(struct posgate_result *res)
{
    if (res == NULL) {
        return NULL;
    }
    if (res->json.len == 0 && report_result_json(res, &res->json) != POSGATE_OK) {
        return NULL;
    }
    return buf_cstr(&res->json);
}

enum posgate_err
posgate_status_json(struct posgate *pg, char **out)
{
    struct buf b = BUF_INIT(1u << 22);
    struct audit_stats as;
    const struct audit_stats *asp = NULL;
    struct store_meta m;
    char why[API_ERRMSG_MAX];
    enum posgate_err err;

    if (pg == NULL || out == NULL) {
        return POSGATE_ERR_INVALID;
    }
    *out = NULL;
    if (audit_stats(pg->audit, &as) == POSGATE_OK) {
        asp = &as;
    }
    /* st_lock is never held while taking lock (api_meta_disagreement takes it) */
    pthread_mutex_lock(&pg->st_lock);
    err = store_get_meta(pg->st, &m);
    pthread_mutex_unlock(&pg->st_lock);
    if (err == POSGATE_OK) {
        const char *disagree = api_meta_disagreement(pg, &m, why, sizeof(why));

        pthread_mutex_lock(&pg->st_lock);
        err = report_status_json(pg->st, pg->key_check, asp, disagree, plat_wall_s(), &b);
        pthread_mutex_unlock(&pg->st_lock);
    }
    if (err != POSGATE_OK) {
        buf_free(&b);
        return err;
    }
    *out = (char *)b.data;
    return POSGATE_OK;
}

void
posgate_free(void *p)
{
    plat_free(p);
}
