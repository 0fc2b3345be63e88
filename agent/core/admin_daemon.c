/* SPDX-License-Identifier: Apache-2.0 */
/*
 * posgated's part of the admin interface (posgate_admin.h): the mechanisms behind the daemon's
 * sync thread (the fetcher, update_run and the classification of its outcome, the merge after
 * it, the renewal of the handle's pooled store readers), behind its audit uploader thread (the
 * uploader, one upload round, the device status report, pruning), the serialised reads of the
 * handle's store connection, and the metric families of the fetcher and the uploader.
 *
 * Locks: the handle's st_lock (api_internal.h) serialises every use of pg->st, here and in
 * posgate_status_json (one SQLite connection opened without SQLite's own mutex: two threads
 * stepping statements on it at once corrupt its state, which showed as a GET /v1/status
 * answering 500, or spinning for good, while the sync thread read the installed version).
 * lock guards the fetcher pointer (the sync thread replaces it,
 * /metrics and the stop read it), the renewal flags, the counters and the queue's last figures.
 * Neither is held while calling out, except st_lock around the store reads themselves.
 */
#define _POSIX_C_SOURCE 200809L
#include "posgate_admin.h"

#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <sys/statvfs.h>

#include "api_internal.h"
#include "device_report.h"
#include "fetch.h"
#include "plat_clock.h"
#include "plat_log.h"
#include "plat_mem.h"
#include "update.h"
#include "uploader.h"
#include "version.h"

#define NS_PER_S        1000000000ull
#define DISK_LOW_BYTES  (1u << 20) /* a failed sync with less free is a full disk */
#define PRUNE_PERIOD_NS (60 * NS_PER_S)
#define DIR_MAX         4096

_Static_assert(POSGATED_IDS_MAX == ENGINE_IDS_MAX, "posgated_request_view: identifiers");
_Static_assert((int)POSGATED_UPLOAD_OK == (int)UPLOAD_OK &&
                   (int)POSGATED_UPLOAD_NETWORK == (int)UPLOAD_NETWORK &&
                   (int)POSGATED_UPLOAD_TLS == (int)UPLOAD_TLS &&
                   (int)POSGATED_UPLOAD_TIMEOUT == (int)UPLOAD_TIMEOUT &&
                   (int)POSGATED_UPLOAD_THROTTLED == (int)UPLOAD_THROTTLED &&
                   (int)POSGATED_UPLOAD_SERVER == (int)UPLOAD_SERVER &&
                   (int)POSGATED_UPLOAD_REFUSED == (int)UPLOAD_REFUSED &&
                   (int)POSGATED_UPLOAD_CHAIN_BREAK == (int)UPLOAD_CHAIN_BREAK &&
                   (int)POSGATED_UPLOAD_PROTOCOL == (int)UPLOAD_PROTOCOL &&
                   (int)POSGATED_UPLOAD__COUNT == (int)UPLOAD__COUNT,
               "posgated_upload_kind mirrors uploader_kind");

struct posgated_core {
    struct posgate *pg;
    pthread_mutex_t lock;       /* the fields below marked "lock" */

    /* the sync thread's */
    struct fetch *fetch;     /* used by the sync thread only; replaced under lock */
    struct fetch_stats base; /* lock: counters of the fetchers replaced */
    int renew_fetch;         /* lock: make a new fetcher at the next run */
    int cancelled;           /* lock: posgated_sync_cancel was called */

    /* the uploader thread's (no lock: that thread only) */
    struct uploader *up;
    int64_t clock_offset; /* the kiosk's clock minus the collector's Date */
    int have_offset;
    uint64_t last_prune_ns;

    int renew_upload;                                 /* lock */
    struct posgated_audit_queue queue;                /* lock: the last figures read */
    uint64_t uploaded;                                /* lock: events newly acknowledged */
    uint64_t upload_failures[POSGATED_UPLOAD__COUNT]; /* lock */
};

enum posgate_err
posgated_core_new(struct posgate *pg, struct posgated_core **out)
{
    struct posgated_core *c;

    if (pg == NULL || out == NULL) {
        return POSGATE_ERR_INVALID;
    }
    c = plat_calloc(1, sizeof(*c));
    if (c == NULL) {
        return POSGATE_ERR_NOMEM;
    }
    if (pthread_mutex_init(&c->lock, NULL) != 0) {
        plat_free(c);
        return POSGATE_ERR_NOMEM;
    }
    c->pg = pg;
    *out = c;
    return POSGATE_OK;
}

void
posgated_core_free(struct posgated_core *c)
{
    if (c == NULL) {
        return;
    }
    uploader_free(c->up);
    fetch_free(c->fetch);
    pthread_mutex_destroy(&c->lock);
    plat_free(c);
}

enum posgate_err
posgated_status_json(struct posgated_core *c, char **out)
{
    return posgate_status_json(c->pg, out); /* it takes the handle's st_lock */
}

void
posgated_request_view(const struct posgate_request *rq, struct posgated_request_view *out)
{
    out->service = rq->service;
    out->n_ids = rq->n_ids;
    out->operator_id = rq->operator_id;
    out->has_at = rq->has_at;
    out->has_override = rq->has_override;
    out->override_by = rq->override_by;
    out->override_reason = rq->override_reason;
}

int
posgated_request_same(const struct posgate_request *a, const struct posgate_request *b)
{
    return a != NULL && b != NULL && memcmp(a, b, sizeof(*a)) == 0;
}

uint64_t
posgated_backoff_s(unsigned fails, uint64_t interval_s, uint64_t retry_after_s)
{
    uint64_t delay = fetch_backoff_s(fails, interval_s, interval_s * 8);

    if (delay < 1) {
        delay = 1;
    }
    if (delay < retry_after_s) {
        delay = retry_after_s;
    }
    return delay;
}

void
posgated_version_print(FILE *out, const char *extra)
{
    version_print(
        out, "posgated",
        VERSION_MBEDTLS | VERSION_SQLITE | VERSION_CURL | VERSION_CJSON | VERSION_UTF8PROC, extra);
}

/* ---- the sync thread ---- */

static void
stats_add(struct fetch_stats *a, const struct fetch_stats *b)
{
    a->attempts += b->attempts;
    a->ok += b->ok;
    a->not_modified += b->not_modified;
    a->not_found += b->not_found;
    a->resumed += b->resumed;
    a->bytes += b->bytes;
    for (int i = 0; i < FETCH_FAIL__COUNT; i++) {
        a->failures[i] += b->failures[i];
    }
}

int
posgated_sync_renew_fetcher(struct posgated_core *c, int options_changed)
{
    int pending;

    pthread_mutex_lock(&c->lock);
    if (options_changed) {
        c->renew_fetch = 1;
    }
    pending = c->renew_fetch;
    pthread_mutex_unlock(&c->lock);
    return pending;
}

/* Makes the fetcher when there is none or a new one is due (the sync thread only). */
static enum posgate_err
ensure_fetcher(struct posgated_core *c, const struct posgated_sync_options *opt, char *errmsg,
               size_t errcap)
{
    struct fetch_options fo;
    char spool[DIR_MAX + 32], cache[DIR_MAX + 32];
    struct fetch *f = NULL, *old;
    struct fetch_stats st;
    enum posgate_err err;
    int renew;

    pthread_mutex_lock(&c->lock);
    renew = c->renew_fetch;
    c->renew_fetch = 0;
    pthread_mutex_unlock(&c->lock);
    if (c->fetch != NULL && !renew) {
        return POSGATE_OK;
    }
    memset(&fo, 0, sizeof(fo));
    snprintf(spool, sizeof(spool), "%s/incoming/partial", opt->data_dir);
    snprintf(cache, sizeof(cache), "%s/http-cache", opt->data_dir);
    fo.mirrors = opt->feed_urls;
    fo.n_mirrors = opt->n_feed_urls;
    fo.ca_file = opt->ca_file != NULL && opt->ca_file[0] ? opt->ca_file : NULL;
    fo.client_cert = opt->client_cert != NULL && opt->client_cert[0] ? opt->client_cert : NULL;
    fo.client_key = opt->client_key != NULL && opt->client_key[0] ? opt->client_key : NULL;
    fo.proxy = opt->proxy != NULL && opt->proxy[0] ? opt->proxy : NULL;
    fo.max_recv_bytes_per_s = opt->max_recv_bytes_per_s;
    fo.spool_dir = spool;
    fo.cache_dir = cache;
    err = fetch_new(&fo, &f, errmsg, errcap);
    if (err != POSGATE_OK) {
        pthread_mutex_lock(&c->lock);
        c->renew_fetch = 1; /* try again next time */
        pthread_mutex_unlock(&c->lock);
        return err;
    }
    pthread_mutex_lock(&c->lock);
    old = c->fetch;
    if (old != NULL) {
        fetch_stats_get(old, &st);
        stats_add(&c->base, &st);
    }
    c->fetch = f;
    if (c->cancelled) {
        fetch_cancel(f); /* made after the stop: it fetches nothing either */
    }
    pthread_mutex_unlock(&c->lock);
    fetch_free(old);
    return POSGATE_OK;
}

static enum posgated_sync_kind
classify(enum posgate_err err)
{
    switch (err) {
    case POSGATE_ERR_NETWORK:
    case POSGATE_ERR_RETRY:
    case POSGATE_ERR_IO:
        return POSGATED_SYNC_NETWORK;
    case POSGATE_ERR_REJECTED:
    case POSGATE_ERR_BADSIG:
    case POSGATE_ERR_BADHASH:
    case POSGATE_ERR_ROLLBACK:
    case POSGATE_ERR_EXPIRED:
    case POSGATE_ERR_UNSUPPORTED:
    case POSGATE_ERR_PARSE:
    case POSGATE_ERR_TOOBIG:
        return POSGATED_SYNC_REJECTED;
    case POSGATE_ERR_OK:
    case POSGATE_ERR_NOMEM:
    case POSGATE_ERR_INVALID:
    case POSGATE_ERR_USAGE:
    case POSGATE_ERR_NOTFOUND:
    case POSGATE_ERR_CORRUPT:
    case POSGATE_ERR_STATE:
    case POSGATE_ERR__COUNT:
        return POSGATED_SYNC_STORE;
    }
    return POSGATED_SYNC_STORE;
}

/* The feed version installed now (0: none): what a failed sync leaves serving. */
static int64_t
installed_version(struct posgated_core *c)
{
    struct store_meta m;
    enum posgate_err err;

    pthread_mutex_lock(&c->pg->st_lock);
    err = store_get_meta(c->pg->st, &m);
    pthread_mutex_unlock(&c->pg->st_lock);
    return err == POSGATE_OK ? m.feed_version : 0;
}

/* A failed sync whose cause is the data directory's file system being full: the error names
 * it (ENOSPC, EDQUOT, SQLite's "disk is full"), or the file system has (almost) no room left
 * after an I/O or store failure. Such a failure is the store's, not the network's. */
static int
disk_full(const char *data_dir, enum posgate_err err, const char *msg)
{
    struct statvfs vfs;

    if (strstr(msg, strerror(ENOSPC)) != NULL || strstr(msg, strerror(EDQUOT)) != NULL ||
        strstr(msg, "disk is full") != NULL) {
        return 1;
    }
    if (err != POSGATE_ERR_IO && err != POSGATE_ERR_CORRUPT && err != POSGATE_ERR_STATE) {
        return 0;
    }
    return statvfs(data_dir, &vfs) == 0 &&
           (uint64_t)vfs.f_bavail * (uint64_t)vfs.f_frsize < DISK_LOW_BYTES;
}

/* update_run commits through its own store connection, which pooled readers of the handle
 * notice only on their renewal period (store.h: within a second). After an update is installed
 * the idle readers are renewed at once, so a check after POST /v1/sync answers from the new
 * version. (A reader busy in a check right now renews on its period.) */
static void
renew_idle_readers(struct posgate *pg)
{
    pthread_mutex_lock(&pg->lock);
    for (size_t i = 0; i < pg->n_readers; i++) {
        store_reader_set_renew_ms(pg->readers[i], 0);
        if (store_reader_refresh(pg->readers[i]) != POSGATE_OK) {
            plat_log(PLAT_LOG_WARN, "sync: a store reader could not be renewed");
        }
        store_reader_set_renew_ms(pg->readers[i], 1000);
    }
    pthread_mutex_unlock(&pg->lock);
}

void
posgated_sync_run(struct posgated_core *c, const struct posgated_sync_options *opt,
                  struct posgated_sync_outcome *o)
{
    struct update_options uo;
    struct update_result ur;
    char msg[POSGATED_ERRMSG_MAX];
    enum posgate_err err;
    enum posgated_sync_kind kind;

    memset(o, 0, sizeof(*o));
    o->feed_version = installed_version(c);
    if (opt->n_feed_urls == 0) {
        o->kind = POSGATED_SYNC_CONFIG;
        snprintf(o->error, sizeof(o->error), "no feed_urls configured: nothing to sync from");
        return;
    }
    err = ensure_fetcher(c, opt, msg, sizeof(msg));
    if (err != POSGATE_OK) {
        o->kind = POSGATED_SYNC_CONFIG;
        snprintf(o->error, sizeof(o->error), "fetcher: %.480s", msg);
        return;
    }
    memset(&uo, 0, sizeof(uo));
    memset(&ur, 0, sizeof(ur));
    uo.data_dir = opt->data_dir;
    uo.defer_merge = 1;         /* merged after the sync (posgated_sync_merge) */
    uo.lock_wait_ms = 1000;     /* an import or compact holds the data dir: try again next poll */
    fetch_sync_begin(c->fetch); /* the sync's time budget starts now */
    uo.metadata = fetch_metadata_carrier(c->fetch);
    uo.targets = fetch_targets_carrier(c->fetch);
    msg[0] = 0;
    err = update_run(&uo, &ur, msg, sizeof(msg));
    o->feed_version = err == POSGATE_OK ? ur.feed_version : installed_version(c);
    o->changed = ur.changed;
    if (err == POSGATE_OK) {
        o->kind = POSGATED_SYNC_OK;
        fetch_prune_spool(c->fetch, NULL);
        renew_idle_readers(c->pg);
        return;
    }
    kind = disk_full(opt->data_dir, err, msg) ? POSGATED_SYNC_DISK : classify(err);
    if (kind == POSGATED_SYNC_REJECTED) {
        fetch_note_rejected(c->fetch);
    }
    o->kind = kind;
    snprintf(o->error, sizeof(o->error), "%s: %.400s", posgate_err_name(err),
             msg[0] ? msg : posgate_strerror(err));
    o->retry_after_s = fetch_retry_after_s(c->fetch);
}

enum posgate_err
posgated_sync_merge(struct posgated_core *c, const char *data_dir, int (*keep_going)(void *ctx),
                    void *ctx)
{
    char msg[1024];
    uint64_t moved = 0, fkeys = 0, t0 = plat_mono_ns();
    enum posgate_err err;

    (void)c;
    err = update_compact(data_dir, keep_going, ctx, &moved, &fkeys, msg, sizeof(msg));
    if (err != POSGATE_OK) {
        plat_log(PLAT_LOG_WARN,
                 "merging the store's recent changes failed (retried after the next sync "
                 "that changes a list, at the next start, or by posgate compact): %s",
                 msg);
    } else if (moved > 0 || fkeys > 0) {
        char filter[96] = "";

        if (fkeys > 0) {
            snprintf(filter, sizeof(filter), "%srebuilt the key filter (%llu keys)",
                     moved > 0 ? " and " : "", (unsigned long long)fkeys);
        }
        if (moved > 0) {
            plat_log(PLAT_LOG_INFO,
                     "merged %llu recent row(s) into the store's main table%s in %.2f s",
                     (unsigned long long)moved, filter, (double)(plat_mono_ns() - t0) / 1e9);
        } else {
            plat_log(PLAT_LOG_INFO, "%s in %.2f s", filter, (double)(plat_mono_ns() - t0) / 1e9);
        }
    }
    return err;
}

void
posgated_sync_cancel(struct posgated_core *c)
{
    pthread_mutex_lock(&c->lock);
    c->cancelled = 1;
    if (c->fetch != NULL) {
        fetch_cancel(c->fetch);
    }
    pthread_mutex_unlock(&c->lock);
}

enum posgate_err
posgated_sync_metrics(struct posgated_core *c, struct buf *b)
{
    struct fetch_stats st;
    enum posgate_err err;

    pthread_mutex_lock(&c->lock);
    st = c->base;
    if (c->fetch != NULL) {
        struct fetch_stats cur;

        fetch_stats_get(c->fetch, &cur);
        stats_add(&st, &cur);
    }
    pthread_mutex_unlock(&c->lock);
    err = buf_printf(b,
                     "# HELP posgate_fetch_bytes_total Body bytes received from mirrors.\n"
                     "# TYPE posgate_fetch_bytes_total counter\n"
                     "posgate_fetch_bytes_total %llu\n"
                     "# HELP posgate_fetch_requests_total HTTP requests sent to mirrors, by "
                     "result.\n"
                     "# TYPE posgate_fetch_requests_total counter\n"
                     "posgate_fetch_requests_total{result=\"sent\"} %llu\n"
                     "posgate_fetch_requests_total{result=\"ok\"} %llu\n"
                     "posgate_fetch_requests_total{result=\"not_modified\"} %llu\n"
                     "posgate_fetch_requests_total{result=\"not_found\"} %llu\n"
                     "posgate_fetch_requests_total{result=\"resumed\"} %llu\n"
                     "# HELP posgate_fetch_failures_total Failed mirror requests, by kind.\n"
                     "# TYPE posgate_fetch_failures_total counter\n",
                     (unsigned long long)st.bytes, (unsigned long long)st.attempts,
                     (unsigned long long)st.ok, (unsigned long long)st.not_modified,
                     (unsigned long long)st.not_found, (unsigned long long)st.resumed);
    for (int i = 0; err == POSGATE_OK && i < FETCH_FAIL__COUNT; i++) {
        err = buf_printf(b, "posgate_fetch_failures_total{kind=\"%s\"} %llu\n",
                         fetch_fail_name((enum fetch_fail)i), (unsigned long long)st.failures[i]);
    }
    return err;
}

/* ---- the audit uploader thread ---- */

void
posgated_audit_renew_uploader(struct posgated_core *c)
{
    pthread_mutex_lock(&c->lock);
    c->renew_upload = 1;
    pthread_mutex_unlock(&c->lock);
}

/* Makes the uploader when there is none or a new one is due (the uploader thread only). */
static enum posgate_err
ensure_uploader(struct posgated_core *c, const struct posgated_audit_options *opt, char *errmsg,
                size_t errcap)
{
    struct uploader_options uo;
    struct uploader *u = NULL;
    enum posgate_err err;
    int renew;

    pthread_mutex_lock(&c->lock);
    renew = c->renew_upload;
    c->renew_upload = 0;
    pthread_mutex_unlock(&c->lock);
    if (c->up != NULL && !renew) {
        return POSGATE_OK;
    }
    memset(&uo, 0, sizeof(uo));
    uo.url = opt->url;
    uo.ca_file = opt->ca_file != NULL && opt->ca_file[0] ? opt->ca_file : NULL;
    uo.client_cert = opt->client_cert != NULL && opt->client_cert[0] ? opt->client_cert : NULL;
    uo.client_key = opt->client_key != NULL && opt->client_key[0] ? opt->client_key : NULL;
    uo.proxy = opt->proxy != NULL && opt->proxy[0] ? opt->proxy : NULL;
    err = uploader_new(&uo, &u, errmsg, errcap);
    if (err != POSGATE_OK) {
        pthread_mutex_lock(&c->lock);
        c->renew_upload = 1;
        pthread_mutex_unlock(&c->lock);
        return err;
    }
    uploader_free(c->up);
    c->up = u;
    return POSGATE_OK;
}

/* One upload round into res. Returns 1 when more events wait, 0 when the queue is drained or
 * the round failed; res->kind is UPLOAD_OK also when there was nothing to send. */
static int
upload_once(struct posgated_core *c, const struct posgated_audit_options *opt, struct buf *batch,
            struct uploader_result *res)
{
    struct audit_stats st;
    struct audit_batch_info info;
    char msg[POSGATED_ERRMSG_MAX];
    enum posgate_err err;
    uint64_t ack;

    memset(res, 0, sizeof(*res));
    res->kind = UPLOAD_OK;
    err = audit_stats(c->pg->audit, &st);
    if (err != POSGATE_OK) {
        res->kind = UPLOAD_PROTOCOL;
        snprintf(res->error, sizeof(res->error), "audit queue: %s", posgate_strerror(err));
        return 0;
    }
    if (st.head_seq <= st.acked_seq) {
        return 0; /* nothing to send */
    }
    err = ensure_uploader(c, opt, msg, sizeof(msg));
    if (err != POSGATE_OK) {
        res->kind = UPLOAD_PROTOCOL;
        snprintf(res->error, sizeof(res->error), "uploader: %.480s", msg);
        return 0;
    }
    err = audit_batch_json(c->pg->audit, st.acked_seq, opt->batch_max, batch, &info);
    if (err != POSGATE_OK) {
        res->kind = UPLOAD_PROTOCOL;
        snprintf(res->error, sizeof(res->error), "audit batch after seq %llu: %s",
                 (unsigned long long)st.acked_seq, posgate_strerror(err));
        return 0;
    }
    if (info.n_events == 0) {
        return 0;
    }
    err = uploader_post(c->up, batch->data, batch->len, res);
    if (err != POSGATE_OK) {
        if (res->error[0] == 0) {
            snprintf(res->error, sizeof(res->error), "upload: %s", posgate_strerror(err));
        }
        res->kind = UPLOAD_PROTOCOL;
        return 0;
    }
    if (res->kind != UPLOAD_OK) {
        return 0;
    }
    ack = res->acked_seq;
    if (ack > info.last_seq) {
        /* the collector holds more than this device wrote: never acknowledge that */
        res->kind = UPLOAD_PROTOCOL;
        snprintf(res->error, sizeof(res->error),
                 "collector acknowledged seq %llu, past the last seq sent (%llu): is audit_url "
                 "the collector of this device?",
                 (unsigned long long)ack, (unsigned long long)info.last_seq);
        return 0;
    }
    if (ack > st.acked_seq) {
        err = audit_ack(c->pg->audit, ack);
        if (err != POSGATE_OK) {
            res->kind = UPLOAD_PROTOCOL;
            snprintf(res->error, sizeof(res->error), "audit_ack(%llu): %s", (unsigned long long)ack,
                     posgate_strerror(err));
            return 0;
        }
        pthread_mutex_lock(&c->lock);
        c->uploaded += ack - st.acked_seq;
        pthread_mutex_unlock(&c->lock);
    } else if (ack < info.last_seq) {
        /* nothing new held: a gap or a collector that lost events; report, do not spin */
        res->kind = UPLOAD_PROTOCOL;
        snprintf(res->error, sizeof(res->error),
                 "collector answered acked_seq %llu after a batch of seqs %llu..%llu (held_seq "
                 "%llu): it holds no new contiguous events",
                 (unsigned long long)ack, (unsigned long long)info.first_seq,
                 (unsigned long long)info.last_seq, (unsigned long long)res->held_seq);
        return 0;
    }
    return st.head_seq > ack;
}

int
posgated_audit_upload(struct posgated_core *c, const struct posgated_audit_options *opt,
                      struct posgated_upload_result *res)
{
    struct buf batch = BUF_INIT(UPLOADER_BODY_MAX);
    struct uploader_result ur;
    int more;

    more = upload_once(c, opt, &batch, &ur);
    buf_free(&batch);
    if (ur.server_date != 0) {
        c->clock_offset = plat_wall_s() - ur.server_date;
        c->have_offset = 1;
    }
    if (ur.kind != UPLOAD_OK) {
        pthread_mutex_lock(&c->lock);
        c->upload_failures[ur.kind]++;
        pthread_mutex_unlock(&c->lock);
    }
    memset(res, 0, sizeof(*res));
    res->kind = (enum posgated_upload_kind)ur.kind;
    res->kind_name = uploader_kind_name(ur.kind);
    res->http_status = ur.http_status;
    res->retry_after_s = ur.kind == UPLOAD_THROTTLED ? ur.retry_after_s : 0;
    snprintf(res->error, sizeof(res->error), "%s", ur.error);
    return more;
}

void
posgated_audit_send_status(struct posgated_core *c, const struct posgated_audit_options *opt,
                           int64_t sync_at, const char *sync_error)
{
    struct device_report_sync sync = {"network", NULL, 0};
    struct uploader_result res;
    struct buf rep = BUF_INIT(DEVICE_REPORT_MAX);
    char result[POSGATED_ERRMSG_MAX + 16], msg[POSGATED_ERRMSG_MAX];
    enum posgate_err err;

    if (ensure_uploader(c, opt, msg, sizeof(msg)) != POSGATE_OK) {
        return; /* the upload round reports why */
    }
    if (sync_at == 0) {
        result[0] = 0;
    } else if (sync_error == NULL || sync_error[0] == 0) {
        snprintf(result, sizeof(result), "ok");
    } else {
        snprintf(result, sizeof(result), "failed: %.480s", sync_error);
    }
    sync.at = sync_at;
    sync.result = result;
    /* the report holds the status object (posgate_status_json takes the handle's st_lock) */
    err = device_report_json(c->pg, result[0] != 0 ? &sync : NULL,
                             c->have_offset ? &c->clock_offset : NULL, plat_wall_us(), &rep);
    if (err == POSGATE_OK) {
        err = uploader_post_status(c->up, rep.data, rep.len, &res);
    }
    if (err != POSGATE_OK) {
        plat_log(PLAT_LOG_WARN, "status report: %s", posgate_strerror(err));
    } else {
        if (res.server_date != 0) {
            c->clock_offset = plat_wall_s() - res.server_date;
            c->have_offset = 1;
        }
        if (res.kind != UPLOAD_OK) {
            plat_log(PLAT_LOG_WARN, "status report not taken (%s): %s",
                     uploader_kind_name(res.kind), res.error);
        }
    }
    buf_free(&rep);
}

void
posgated_audit_prune(struct posgated_core *c)
{
    uint64_t now = plat_mono_ns();

    if (c->last_prune_ns != 0 && now - c->last_prune_ns < PRUNE_PERIOD_NS) {
        return;
    }
    if (audit_prune(c->pg->audit, plat_wall_s()) != POSGATE_OK) {
        plat_log(PLAT_LOG_WARN, "audit: pruning acknowledged events failed");
    }
    c->last_prune_ns = now;
}

/* The queue's figures read now into the last figures (when it can be read), these into *out;
 * *ok (may be NULL) says whether the queue was read, and then *st (may be NULL) has its stats. */
static void
queue_read(struct posgated_core *c, struct posgated_audit_queue *out, struct audit_stats *st,
           int *ok)
{
    struct audit_stats s;
    int read = audit_stats(c->pg->audit, &s) == POSGATE_OK;

    pthread_mutex_lock(&c->lock);
    if (read) {
        c->queue.acked_seq = s.acked_seq;
        c->queue.queued = (s.head_seq > s.acked_seq ? s.head_seq - s.acked_seq : 0) + s.pending;
    }
    *out = c->queue;
    pthread_mutex_unlock(&c->lock);
    if (read && st != NULL) {
        *st = s;
    }
    if (ok != NULL) {
        *ok = read;
    }
}

void
posgated_audit_queue(struct posgated_core *c, struct posgated_audit_queue *out)
{
    queue_read(c, out, NULL, NULL);
}

enum posgate_err
posgated_audit_metrics(struct posgated_core *c, int stopped, struct buf *b)
{
    struct posgated_audit_queue q;
    struct audit_stats st;
    uint64_t uploaded, failures[POSGATED_UPLOAD__COUNT];
    int have_stats = 0;
    enum posgate_err err;

    queue_read(c, &q, &st, &have_stats);
    pthread_mutex_lock(&c->lock);
    uploaded = c->uploaded;
    memcpy(failures, c->upload_failures, sizeof(failures));
    pthread_mutex_unlock(&c->lock);
    err = buf_printf(b,
                     "# HELP posgate_audit_queued Audit events not yet acknowledged by the "
                     "collector.\n"
                     "# TYPE posgate_audit_queued gauge\n"
                     "posgate_audit_queued %llu\n"
                     "# HELP posgate_audit_acked_seq Highest seq the collector acknowledged.\n"
                     "# TYPE posgate_audit_acked_seq gauge\n"
                     "posgate_audit_acked_seq %llu\n"
                     "# HELP posgate_audit_upload_stopped 1 when a chain break stopped the "
                     "uploads.\n"
                     "# TYPE posgate_audit_upload_stopped gauge\n"
                     "posgate_audit_upload_stopped %d\n"
                     "# HELP posgate_audit_uploaded_total Audit events acknowledged by the "
                     "collector.\n"
                     "# TYPE posgate_audit_uploaded_total counter\n"
                     "posgate_audit_uploaded_total %llu\n"
                     "# HELP posgate_audit_upload_failures_total Failed audit uploads, by "
                     "kind.\n"
                     "# TYPE posgate_audit_upload_failures_total counter\n",
                     (unsigned long long)q.queued, (unsigned long long)q.acked_seq, stopped,
                     (unsigned long long)uploaded);
    for (int i = 1; err == POSGATE_OK && i < POSGATED_UPLOAD__COUNT; i++) {
        err =
            buf_printf(b, "posgate_audit_upload_failures_total{kind=\"%s\"} %llu\n",
                       uploader_kind_name((enum uploader_kind)i), (unsigned long long)failures[i]);
    }
    if (err == POSGATE_OK && have_stats) {
        /* the data dir's file system as the audit queue sees it (audit.h, "A full disk") */
        err = buf_printf(b,
                         "# HELP posgate_disk_full 1 while the data dir's file system is full "
                         "and the audit queue records on its reserve.\n"
                         "# TYPE posgate_disk_full gauge\n"
                         "posgate_disk_full %d\n"
                         "# HELP posgate_audit_reserve_bytes Space the audit queue holds for a "
                         "full disk (0: released).\n"
                         "# TYPE posgate_audit_reserve_bytes gauge\n"
                         "posgate_audit_reserve_bytes %llu\n",
                         st.disk_full ? 1 : 0, (unsigned long long)st.reserve_bytes);
    }
    return err;
}
