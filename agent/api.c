/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The public C API (posgate.h): opening a data directory, building requests, and the check
 * itself — keys from the prepared HMAC pads, a pooled store reader per concurrent check, the
 * decision engine — with no allocation on the check path once the readers are warm.
 */
#define _POSIX_C_SOURCE 200809L
#include "posgate.h"

#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "api_internal.h"
#include "plat_clock.h"
#include "plat_mem.h"
#include "plat_random.h"

static _Thread_local char open_errmsg[API_ERRMSG_MAX];

const char *
posgate_open_errmsg(void)
{
    return open_errmsg;
}

enum posgate_err
posgate_open(const char *data_dir, struct posgate **out)
{
    struct posgate *pg;
    enum posgate_err err;
    uint8_t key[LIST_KEY_LEN];
    char msg[256];

    open_errmsg[0] = 0;
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
    err = datadir_init(&pg->dd, data_dir);
    if (err != POSGATE_OK) {
        snprintf(open_errmsg, sizeof(open_errmsg), "data dir: %s", posgate_strerror(err));
        goto fail;
    }
    err = datadir_read_list_key(pg->dd.list_key, key, msg, sizeof(msg));
    if (err != POSGATE_OK) {
        snprintf(open_errmsg, sizeof(open_errmsg), "%s%s", msg,
                 err == POSGATE_ERR_NOTFOUND ? " (run posgate init first)" : "");
        goto fail;
    }
    err = crypto_hmac_key_init(&pg->hmac, key, sizeof(key));
    plat_wipe(key, sizeof(key));
    if (err != POSGATE_OK) {
        goto fail;
    }
    err = store_open(pg->dd.store, 0, &pg->st, msg, sizeof(msg));
    if (err != POSGATE_OK) {
        snprintf(open_errmsg, sizeof(open_errmsg), "store %.200s: %.250s", pg->dd.store, msg);
        goto fail;
    }
    err = plat_random(pg->id_prefix, sizeof(pg->id_prefix));
    if (err != POSGATE_OK) {
        goto fail;
    }
    *out = pg;
    return POSGATE_OK;
fail:
    posgate_close(pg);
    return err;
}

void
posgate_close(struct posgate *pg)
{
    if (pg == NULL) {
        return;
    }
    for (size_t i = 0; i < pg->n_readers; i++) {
        store_reader_free(pg->readers[i]);
    }
    store_close(pg->st);
    crypto_hmac_key_cleanup(&pg->hmac);
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
        plat_wipe(rq, sizeof(*rq));
    }
}

static enum posgate_err
set_text(struct posgate_request *rq, char *dst, size_t cap, const char *what, const char *s)
{
    size_t n;

    if (rq == NULL) {
        return POSGATE_ERR_INVALID;
    }
    if (s == NULL || *s == 0) {
        snprintf(rq->errmsg, sizeof(rq->errmsg), "%s: expected a value, found none", what);
        return POSGATE_ERR_INVALID;
    }
    n = strlen(s);
    if (n >= cap) {
        snprintf(rq->errmsg, sizeof(rq->errmsg), "%s: expected at most %zu bytes, found %zu",
                 what, cap - 1, n);
        return POSGATE_ERR_INVALID;
    }
    for (size_t i = 0; i < n; i++) {
        if ((unsigned char)s[i] < 0x20) {
            snprintf(rq->errmsg, sizeof(rq->errmsg), "%s: control character at byte %zu", what,
                     i);
            return POSGATE_ERR_INVALID;
        }
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
    err = ident_parse_name_dob(name, birth_date, &rq->ids[rq->n_ids], rq->errmsg,
                               sizeof(rq->errmsg));
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
    res->eng.decision = ENGINE_REFER;
    *out = res;
    return POSGATE_OK;
}

void
posgate_result_free(struct posgate_result *res)
{
    if (res != NULL) {
        buf_free(&res->json);
        plat_free(res);
    }
}

static enum posgate_err
take_reader(struct posgate *pg, struct store_reader **out)
{
    enum posgate_err err = POSGATE_OK;

    pthread_mutex_lock(&pg->lock);
    if (pg->n_readers > 0) {
        *out = pg->readers[--pg->n_readers];
    } else {
        err = store_reader_new(pg->st, out);
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

enum posgate_err
posgate_check(struct posgate *pg, const struct posgate_request *rq, struct posgate_result *res)
{
    struct engine_id ids[ENGINE_IDS_MAX];
    struct engine_request er;
    struct store_reader *r = NULL;
    enum posgate_err err;
    uint64_t n;
    int64_t now;

    if (res == NULL) {
        return POSGATE_ERR_INVALID;
    }
    buf_reset(&res->json);
    res->errmsg[0] = 0;
    res->err = POSGATE_OK;
    if (pg == NULL || rq == NULL) {
        result_fail(res, POSGATE_ERR_INVALID, "no handle or request");
        return POSGATE_ERR_INVALID;
    }
    now = plat_wall_s();
    n = atomic_fetch_add((_Atomic uint64_t *)&pg->id_counter, 1) + 1;
    snprintf(res->decision_id, sizeof(res->decision_id),
             "%02x%02x%02x%02x%02x%02x%02x%02x%016llx", pg->id_prefix[0], pg->id_prefix[1],
             pg->id_prefix[2], pg->id_prefix[3], pg->id_prefix[4], pg->id_prefix[5],
             pg->id_prefix[6], pg->id_prefix[7], (unsigned long long)n);
    snprintf(res->service, sizeof(res->service), "%s", rq->service);
    res->at = rq->has_at ? rq->at : now;
    res->feed_version = 0;
    if (rq->service[0] == 0) {
        result_fail(res, POSGATE_ERR_INVALID, "service: expected a service name, found none");
        return POSGATE_ERR_INVALID;
    }
    if (rq->n_ids == 0) {
        result_fail(res, POSGATE_ERR_INVALID,
                    "id: expected at least one identifier (or a name and birth date)");
        return POSGATE_ERR_INVALID;
    }
    for (size_t i = 0; i < rq->n_ids; i++) {
        ident_entry_key(&pg->hmac, &rq->ids[i], ids[i].key);
        ids[i].type = rq->ids[i].type;
        ids[i].birth_days = rq->ids[i].birth_days;
    }
    memset(&er, 0, sizeof(er));
    er.service = rq->service;
    er.at = res->at;
    er.wall_now = now;
    er.ids = ids;
    er.n_ids = rq->n_ids;
    err = take_reader(pg, &r);
    if (err != POSGATE_OK) {
        result_fail(res, err, "cannot read the store");
        return err;
    }
    err = engine_check_store(r, &er, &res->eng);
    if (err == POSGATE_OK || err == POSGATE_ERR_INVALID) {
        res->feed_version = store_reader_meta(r)->feed_version;
    }
    give_reader(pg, r);
    if (err == POSGATE_ERR_NOTFOUND) {
        result_fail(res, err, "no verified list data is installed (run posgate import)");
    } else if (err == POSGATE_ERR_INVALID) {
        char msg[API_ERRMSG_MAX];

        snprintf(msg, sizeof(msg), "%.500s", res->eng.notice);
        result_fail(res, err, msg);
    } else if (err != POSGATE_OK) {
        result_fail(res, err, posgate_strerror(err));
    }
    return err;
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
    enum posgate_err err;

    if (pg == NULL || out == NULL) {
        return POSGATE_ERR_INVALID;
    }
    *out = NULL;
    err = report_status_json(pg->st, plat_wall_s(), &b);
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
