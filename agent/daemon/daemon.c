/* SPDX-License-Identifier: Apache-2.0 */
/*
 * posgated: the agent daemon. It opens the data directory made by `posgate init`, serves the
 * local HTTP API (httpd.c) and keeps the lists fresh with a sync thread that runs update_run
 * over the fetcher's carriers (sync/transport/fetch.h) every poll_interval_s on the monotonic clock,
 * backing off with full jitter after a failure (capped at 8 poll intervals, at least 1 s, never
 * before a mirror's Retry-After ends). A sync never blocks a check: update_run installs a
 * version in one SQLite transaction while readers keep the previous one. Every sync runs in
 * the sync thread: POST /v1/sync only asks for one (or joins the one asked for or running) and
 * answers 202 with its id at once; the result appears in GET /v1/status "sync.result". Syncs
 * asked for start at most one per SYNC_REQUEST_MIN_S after the previous start, so a flood of
 * requests costs one sync. Signals are taken synchronously by the main thread
 * (sigwait): SIGTERM/SIGINT stop accepting, let requests in flight finish, stop the sync
 * thread, close the store and exit 0; SIGHUP reloads the config (feed_urls, poll interval, TLS
 * and proxy options, rate limit, token, log level, the audit keys; listen and data_dir need a
 * restart), keeping the old config when the new one is bad.
 *
 * With audit_url set, an uploader thread sends the audit queue (audit.h) to the collector
 * (docs/collector.md): every audit_upload_interval_s on the monotonic clock, and at once again
 * while a full batch leaves more events waiting, it reads up to audit_batch_max events after
 * the collector's last acknowledged seq, POSTs them gzip-compressed (sync/upload/uploader.h, the
 * fetcher's TLS/mTLS/proxy options) and passes the answered acked_seq to audit_ack, which also
 * prunes acknowledged events past audit_retention_days. A failure backs off with full jitter
 * (capped at 8 intervals, never before a Retry-After); a chain break (409) stops the uploads
 * until a SIGHUP or a restart, reported in GET /v1/status "audit" and in /metrics.
 *
 * Exit codes: 0 clean stop, 2 usage or config error, 5 start-up failure (store, listen).
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <sys/resource.h>
#include <sys/statvfs.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "api_internal.h"
#include "daemon_config.h"
#include "device_report.h"
#include "fetch.h"
#include "httpd.h"
#include "plat_clock.h"
#include "plat_log.h"
#include "plat_mem.h"
#include "posgate.h"
#include "update.h"
#include "uploader.h"
#include "version.h"

#define NS_PER_S 1000000000ull
#define SYNC_REQUEST_MIN_S 2        /* asked-for syncs start at most this often */
#define DISK_LOW_BYTES     (1u << 20) /* a failed sync with less free is a full disk */

enum sync_fail_kind { SF_NETWORK, SF_REJECTED, SF_STORE, SF_CONFIG, SF_DISK, SF__COUNT };
static const char *const sf_name[SF__COUNT] = {"network", "rejected", "store", "config", "disk"};

struct daemon {
    char config_path[DAEMON_PATH_MAX];
    struct daemon_config cfg; /* guarded by lock (reloadable fields change on SIGHUP) */
    struct posgate *pg;
    struct httpd *httpd;

    pthread_mutex_t lock;
    pthread_cond_t cond; /* CLOCK_MONOTONIC: wakes the loop; signals the end of a sync */
    int stop;
    int running;         /* a sync is in progress */
    int requested;       /* POST /v1/sync asked for a sync not yet started */
    uint64_t last_start_ns; /* monotonic start of the last sync; 0: none */
    int merge_due;       /* the store's recent changes are to be merged (sync thread) */
    uint64_t generation; /* syncs finished */
    struct httpd_sync_outcome last;
    struct daemon_sync_state state;
    uint64_t next_due_ns; /* monotonic */
    uint64_t last_end_ns; /* monotonic end of the last sync */
    unsigned fails;       /* consecutive failures */
    int fetch_dirty;      /* the fetch options changed: make a new fetcher */
    uint64_t attempts;
    uint64_t failures[SF__COUNT];

    /* The fetcher: used only by the one running sync; replaced under stats_lock so /metrics
     * can read its counters at any time. Counters of replaced fetchers are kept in base. */
    pthread_mutex_t stats_lock;
    struct fetch *fetch;
    struct fetch_stats base;

    /* The audit uploader thread; its fields are guarded by lock, except the uploader itself,
     * which only that thread uses. */
    pthread_cond_t audit_cond; /* CLOCK_MONOTONIC: wakes the uploader (reload, stop) */
    struct daemon_audit_state audit;
    struct uploader *up;
    int audit_dirty;         /* the upload options changed: make a new uploader */
    int audit_kick;          /* upload at once (a reload) */
    unsigned audit_fails;    /* consecutive failed uploads */
    uint64_t audit_uploaded; /* events newly acknowledged by uploads */
    uint64_t audit_failures[UPLOAD__COUNT];
};

static void
usage(FILE *f)
{
    fprintf(f, "usage: posgated --config FILE          run the agent daemon\n"
               "       posgated --check-config --config FILE   validate the config and exit\n"
               "       posgated --help | --version\n"
               "The config is JSON; every key and its default is in docs/daemon.md.\n"
               "Signals: SIGTERM/SIGINT stop cleanly (exit 0), SIGHUP reloads the config.\n"
               "Exit codes: 0 clean stop, 2 usage or config error, 5 start-up failure.\n");
}

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

/* Called by the running sync only (no other thread uses the fetcher). */
static enum posgate_err
ensure_fetcher(struct daemon *d, const struct daemon_config *cfg, char *errmsg, size_t errcap)
{
    struct fetch_options fo;
    const char *mirrors[DAEMON_FEED_URLS_MAX];
    char spool[DAEMON_PATH_MAX + 32], cache[DAEMON_PATH_MAX + 32];
    struct fetch *f = NULL, *old;
    struct fetch_stats st;
    enum posgate_err err;
    int dirty;

    pthread_mutex_lock(&d->lock);
    dirty = d->fetch_dirty;
    d->fetch_dirty = 0;
    pthread_mutex_unlock(&d->lock);
    if (d->fetch != NULL && !dirty) {
        return POSGATE_OK;
    }
    memset(&fo, 0, sizeof(fo));
    for (size_t i = 0; i < cfg->n_feed_urls; i++) {
        mirrors[i] = cfg->feed_urls[i];
    }
    snprintf(spool, sizeof(spool), "%s/incoming/partial", cfg->data_dir);
    snprintf(cache, sizeof(cache), "%s/http-cache", cfg->data_dir);
    fo.mirrors = mirrors;
    fo.n_mirrors = cfg->n_feed_urls;
    fo.ca_file = cfg->ca_file[0] ? cfg->ca_file : NULL;
    fo.client_cert = cfg->client_cert[0] ? cfg->client_cert : NULL;
    fo.client_key = cfg->client_key[0] ? cfg->client_key : NULL;
    fo.proxy = cfg->proxy[0] ? cfg->proxy : NULL;
    fo.max_recv_bytes_per_s = cfg->max_recv_bytes_per_s;
    fo.spool_dir = spool;
    fo.cache_dir = cache;
    err = fetch_new(&fo, &f, errmsg, errcap);
    if (err != POSGATE_OK) {
        pthread_mutex_lock(&d->lock);
        d->fetch_dirty = 1; /* try again next time */
        pthread_mutex_unlock(&d->lock);
        return err;
    }
    pthread_mutex_lock(&d->stats_lock);
    old = d->fetch;
    if (old != NULL) {
        fetch_stats_get(old, &st);
        stats_add(&d->base, &st);
    }
    d->fetch = f;
    pthread_mutex_unlock(&d->stats_lock);
    fetch_free(old);
    return POSGATE_OK;
}

static enum sync_fail_kind
classify(enum posgate_err err)
{
    switch (err) {
    case POSGATE_ERR_NETWORK:
    case POSGATE_ERR_RETRY:
    case POSGATE_ERR_IO:
        return SF_NETWORK;
    case POSGATE_ERR_REJECTED:
    case POSGATE_ERR_BADSIG:
    case POSGATE_ERR_BADHASH:
    case POSGATE_ERR_ROLLBACK:
    case POSGATE_ERR_EXPIRED:
    case POSGATE_ERR_UNSUPPORTED:
    case POSGATE_ERR_PARSE:
    case POSGATE_ERR_TOOBIG:
        return SF_REJECTED;
    case POSGATE_ERR_OK:
    case POSGATE_ERR_NOMEM:
    case POSGATE_ERR_INVALID:
    case POSGATE_ERR_USAGE:
    case POSGATE_ERR_NOTFOUND:
    case POSGATE_ERR_CORRUPT:
    case POSGATE_ERR_STATE:
    case POSGATE_ERR__COUNT:
        return SF_STORE;
    }
    return SF_STORE;
}

/* The feed version installed now (0: none): what a failed sync leaves serving. */
static int64_t
installed_version(struct daemon *d)
{
    struct store_meta m;

    if (store_get_meta(d->pg->st, &m) != POSGATE_OK) {
        return 0;
    }
    return m.feed_version;
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

/* One sync with the config as it is now; fills o. Runs outside d->lock. */
static void
run_one(struct daemon *d, const struct daemon_config *cfg, struct httpd_sync_outcome *o,
        uint64_t *retry_after_s)
{
    struct update_options uo;
    struct update_result ur;
    char msg[DAEMON_ERRMSG_MAX];
    enum posgate_err err;

    memset(o, 0, sizeof(*o));
    o->feed_version = installed_version(d);
    *retry_after_s = 0;
    if (cfg->n_feed_urls == 0) {
        o->kind = HTTPD_SYNC_CONFIG;
        snprintf(o->error, sizeof(o->error), "no feed_urls configured: nothing to sync from");
        return;
    }
    err = ensure_fetcher(d, cfg, msg, sizeof(msg));
    if (err != POSGATE_OK) {
        o->kind = HTTPD_SYNC_CONFIG;
        snprintf(o->error, sizeof(o->error), "fetcher: %.480s", msg);
        return;
    }
    memset(&uo, 0, sizeof(uo));
    memset(&ur, 0, sizeof(ur));
    uo.data_dir = cfg->data_dir;
    uo.defer_merge = 1; /* the sync thread merges after the sync (merge_recent) */
    uo.lock_wait_ms = 1000; /* an import or compact holds the data dir: try again next poll */
    fetch_sync_begin(d->fetch); /* the sync's time budget starts now */
    uo.metadata = fetch_metadata_carrier(d->fetch);
    uo.targets = fetch_targets_carrier(d->fetch);
    msg[0] = 0;
    err = update_run(&uo, &ur, msg, sizeof(msg));
    o->feed_version = err == POSGATE_OK ? ur.feed_version : installed_version(d);
    o->changed = ur.changed;
    if (err == POSGATE_OK) {
        o->kind = HTTPD_SYNC_OK;
        fetch_prune_spool(d->fetch, NULL);
        return;
    }
    switch (disk_full(cfg->data_dir, err, msg) ? SF_DISK : classify(err)) {
    case SF_DISK:
        o->kind = HTTPD_SYNC_DISK;
        break;
    case SF_NETWORK:
        o->kind = HTTPD_SYNC_NETWORK;
        break;
    case SF_REJECTED:
        o->kind = HTTPD_SYNC_REJECTED;
        fetch_note_rejected(d->fetch);
        break;
    case SF_STORE:
    case SF_CONFIG:
    case SF__COUNT:
        o->kind = HTTPD_SYNC_STORE;
        break;
    }
    snprintf(o->error, sizeof(o->error), "%s: %.400s", posgate_err_name(err),
             msg[0] ? msg : posgate_strerror(err));
    *retry_after_s = fetch_retry_after_s(d->fetch);
}

static enum sync_fail_kind
outcome_fail_kind(enum httpd_sync_kind k)
{
    switch (k) {
    case HTTPD_SYNC_NETWORK:
        return SF_NETWORK;
    case HTTPD_SYNC_REJECTED:
        return SF_REJECTED;
    case HTTPD_SYNC_CONFIG:
        return SF_CONFIG;
    case HTTPD_SYNC_DISK:
        return SF_DISK;
    case HTTPD_SYNC_OK:
    case HTTPD_SYNC_STORE:
        return SF_STORE;
    }
    return SF_STORE;
}

/* update_run commits through its own store connection, which pooled readers of d->pg notice
 * only on their renewal period (store.h: within a second). After an update is installed the
 * idle readers are renewed at once, so a check after POST /v1/sync answers from the new
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

static const char *
kind_name(enum httpd_sync_kind k)
{
    return k == HTTPD_SYNC_OK ? "ok" : sf_name[outcome_fail_kind(k)];
}

/* Runs one sync (the sync thread only; d->lock not held on entry). A sync asked for by POST
 * /v1/sync is satisfied by any sync that starts after the request. */
static void
do_sync(struct daemon *d)
{
    struct daemon_config *cfg;
    struct httpd_sync_outcome o;
    uint64_t retry_after = 0, delay, now;
    int64_t poll;

    pthread_mutex_lock(&d->lock);
    d->running = 1;
    d->requested = 0;
    d->last_start_ns = plat_mono_ns();
    d->state.running = 1;
    d->state.last_attempt = plat_wall_s();
    d->attempts++;
    pthread_mutex_unlock(&d->lock);

    /* a private copy: a SIGHUP during the sync changes d->cfg, not this run */
    cfg = plat_malloc(sizeof(*cfg));
    if (cfg == NULL) {
        memset(&o, 0, sizeof(o));
        o.kind = HTTPD_SYNC_STORE;
        snprintf(o.error, sizeof(o.error), "out of memory");
    } else {
        pthread_mutex_lock(&d->lock);
        *cfg = d->cfg;
        pthread_mutex_unlock(&d->lock);
        run_one(d, cfg, &o, &retry_after);
        plat_free(cfg);
        if (o.kind == HTTPD_SYNC_OK) {
            renew_idle_readers(d->pg);
        }
    }

    pthread_mutex_lock(&d->lock);
    now = plat_mono_ns();
    poll = d->cfg.poll_interval_s;
    if (o.kind == HTTPD_SYNC_OK) {
        d->fails = 0;
        delay = (uint64_t)poll;
        d->state.last_success = plat_wall_s();
        d->state.last_error[0] = 0;
        plat_log(PLAT_LOG_INFO, "sync: feed version %lld%s", (long long)o.feed_version,
                 o.changed ? " installed" : " (no change)");
    } else {
        d->failures[outcome_fail_kind(o.kind)]++;
        delay = fetch_backoff_s(d->fails, (uint64_t)poll, (uint64_t)poll * 8);
        d->fails++;
        if (delay < 1) {
            delay = 1;
        }
        if (delay < retry_after) {
            delay = retry_after;
        }
        snprintf(d->state.last_error, sizeof(d->state.last_error), "%s", o.error);
        plat_log(PLAT_LOG_WARN, "sync failed (%s), next attempt in %llu s: %s",
                 sf_name[outcome_fail_kind(o.kind)], (unsigned long long)delay, o.error);
    }
    if (o.kind == HTTPD_SYNC_CONFIG && d->cfg.n_feed_urls == 0) {
        d->state.next_attempt = 0;
        d->next_due_ns = UINT64_MAX;
    } else {
        d->next_due_ns = now + delay * NS_PER_S;
        d->state.next_attempt = plat_wall_s() + (int64_t)delay;
    }
    d->last_end_ns = now;
    if (o.kind == HTTPD_SYNC_OK && o.changed) {
        d->merge_due = 1;
    }
    d->last = o;
    d->running = 0;
    d->state.running = 0;
    d->generation++;
    d->state.last_id = d->generation;
    d->state.last_ok = o.kind == HTTPD_SYNC_OK;
    d->state.last_kind = kind_name(o.kind);
    d->state.last_status = httpd_sync_status(o.kind);
    d->state.last_feed_version = o.feed_version;
    d->state.last_changed = o.changed;
    pthread_cond_broadcast(&d->cond);
    pthread_mutex_unlock(&d->lock);
}

/* Between merge chunks: stop for a stop request or a sync (which then merges again). */
static int
merge_keep_going(void *ctx)
{
    struct daemon *d = ctx;
    int go;

    pthread_mutex_lock(&d->lock);
    go = !d->stop && !d->running;
    pthread_mutex_unlock(&d->lock);
    return go;
}

/* Merges the store's recent changes into its main table (store.h) after a sync installed a
 * delta, in the sync thread so that no caller of POST /v1/sync waits for it. Called with
 * d->lock held; releases it while merging. Checks go on meanwhile (each chunk leaves the
 * answers as they were). */
static void
merge_recent(struct daemon *d)
{
    char dir[DAEMON_PATH_MAX], msg[1024];
    uint64_t moved = 0, fkeys = 0, t0 = plat_mono_ns();
    enum posgate_err err;

    d->merge_due = 0;
    memcpy(dir, d->cfg.data_dir, sizeof(dir));
    pthread_mutex_unlock(&d->lock);
    err = update_compact(dir, merge_keep_going, d, &moved, &fkeys, msg, sizeof(msg));
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
    pthread_mutex_lock(&d->lock);
    if (err == POSGATE_OK && d->running) {
        d->merge_due = 1; /* interrupted by a sync: go on after it */
    }
}

/* When an asked-for sync may start (d->lock held). */
static uint64_t
request_due(const struct daemon *d)
{
    return d->last_start_ns == 0 ? 0 : d->last_start_ns + SYNC_REQUEST_MIN_S * NS_PER_S;
}

static void *
sync_thread(void *arg)
{
    struct daemon *d = arg;

    pthread_mutex_lock(&d->lock);
    while (!d->stop) {
        uint64_t now = plat_mono_ns();

        if (d->merge_due && !d->running) {
            merge_recent(d);
            continue;
        }

        if (!d->running && ((d->cfg.n_feed_urls > 0 && now >= d->next_due_ns) ||
                            (d->requested && now >= request_due(d)))) {
            pthread_mutex_unlock(&d->lock);
            do_sync(d);
            pthread_mutex_lock(&d->lock);
            continue;
        }
        if (d->running || ((d->cfg.n_feed_urls == 0 || d->next_due_ns == UINT64_MAX) &&
                           !d->requested)) {
            pthread_cond_wait(&d->cond, &d->lock);
        } else {
            struct timespec ts;
            uint64_t due = d->cfg.n_feed_urls > 0 ? d->next_due_ns : UINT64_MAX, wait, at;

            if (d->requested && request_due(d) < due) {
                due = request_due(d);
            }
            wait = due > now ? due - now : 0;

            clock_gettime(CLOCK_MONOTONIC, &ts);
            at = (uint64_t)ts.tv_sec * NS_PER_S + (uint64_t)ts.tv_nsec + wait;
            ts.tv_sec = (time_t)(at / NS_PER_S);
            ts.tv_nsec = (long)(at % NS_PER_S);
            (void)pthread_cond_timedwait(&d->cond, &d->lock, &ts);
        }
    }
    pthread_mutex_unlock(&d->lock);
    return NULL;
}

/* ---- the audit uploader ---- */

/* The handle's options from the config: audit durability and bounds, the service date's window. */
static void
audit_apply_options(struct daemon *d, const struct daemon_config *cfg)
{
    if (posgate_set_audit_durability(d->pg, cfg->audit_strict ? "strict" : "batched") !=
            POSGATE_OK ||
        posgate_set_audit_limits(d->pg, cfg->audit_max_bytes,
                                 (uint32_t)cfg->audit_retention_days) != POSGATE_OK) {
        plat_log(PLAT_LOG_ERROR, "audit: the durability or limits could not be applied");
    }
    if (posgate_set_check_window(d->pg, cfg->at_tolerance_s, cfg->at_horizon_days * 86400) !=
        POSGATE_OK) {
        plat_log(PLAT_LOG_ERROR, "check: the service date window could not be applied");
    }
}

/* Makes the uploader when there is none or the options changed (uploader thread only). */
static enum posgate_err
ensure_uploader(struct daemon *d, const struct daemon_config *cfg, char *errmsg, size_t errcap)
{
    struct uploader_options uo;
    struct uploader *u = NULL;
    enum posgate_err err;
    int dirty;

    pthread_mutex_lock(&d->lock);
    dirty = d->audit_dirty;
    d->audit_dirty = 0;
    pthread_mutex_unlock(&d->lock);
    if (d->up != NULL && !dirty) {
        return POSGATE_OK;
    }
    memset(&uo, 0, sizeof(uo));
    uo.url = cfg->audit_url;
    uo.ca_file = cfg->ca_file[0] ? cfg->ca_file : NULL;
    uo.client_cert = cfg->client_cert[0] ? cfg->client_cert : NULL;
    uo.client_key = cfg->client_key[0] ? cfg->client_key : NULL;
    uo.proxy = cfg->proxy[0] ? cfg->proxy : NULL;
    err = uploader_new(&uo, &u, errmsg, errcap);
    if (err != POSGATE_OK) {
        pthread_mutex_lock(&d->lock);
        d->audit_dirty = 1;
        pthread_mutex_unlock(&d->lock);
        return err;
    }
    uploader_free(d->up);
    d->up = u;
    return POSGATE_OK;
}

/* The queue's figures into d->audit (d->lock held by the caller). */
static void
audit_refresh_locked(struct daemon *d)
{
    struct audit_stats st;

    if (audit_stats(d->pg->audit, &st) == POSGATE_OK) {
        d->audit.last_acked_seq = st.acked_seq;
        d->audit.queued =
            (st.head_seq > st.acked_seq ? st.head_seq - st.acked_seq : 0) + st.pending;
    }
}

/* One upload round. Returns 1 when more events wait (upload again at once), 0 when the queue
 * is drained; *kind is the outcome (UPLOAD_OK also when there was nothing to send). */
static int
audit_upload_once(struct daemon *d, const struct daemon_config *cfg, struct buf *batch,
                  struct uploader_result *res)
{
    struct audit_stats st;
    struct audit_batch_info info;
    char msg[DAEMON_ERRMSG_MAX];
    enum posgate_err err;
    uint64_t ack;

    memset(res, 0, sizeof(*res));
    res->kind = UPLOAD_OK;
    err = audit_stats(d->pg->audit, &st);
    if (err != POSGATE_OK) {
        res->kind = UPLOAD_PROTOCOL;
        snprintf(res->error, sizeof(res->error), "audit queue: %s", posgate_strerror(err));
        return 0;
    }
    if (st.head_seq <= st.acked_seq) {
        return 0; /* nothing to send */
    }
    err = ensure_uploader(d, cfg, msg, sizeof(msg));
    if (err != POSGATE_OK) {
        res->kind = UPLOAD_PROTOCOL;
        snprintf(res->error, sizeof(res->error), "uploader: %.480s", msg);
        return 0;
    }
    err = audit_batch_json(d->pg->audit, st.acked_seq, (size_t)cfg->audit_batch_max, batch, &info);
    if (err != POSGATE_OK) {
        res->kind = UPLOAD_PROTOCOL;
        snprintf(res->error, sizeof(res->error), "audit batch after seq %llu: %s",
                 (unsigned long long)st.acked_seq, posgate_strerror(err));
        return 0;
    }
    if (info.n_events == 0) {
        return 0;
    }
    err = uploader_post(d->up, batch->data, batch->len, res);
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
        err = audit_ack(d->pg->audit, ack);
        if (err != POSGATE_OK) {
            res->kind = UPLOAD_PROTOCOL;
            snprintf(res->error, sizeof(res->error), "audit_ack(%llu): %s", (unsigned long long)ack,
                     posgate_strerror(err));
            return 0;
        }
        pthread_mutex_lock(&d->lock);
        d->audit_uploaded += ack - st.acked_seq;
        pthread_mutex_unlock(&d->lock);
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

/* The device status report (device_report.h) after an upload round that reached the
 * collector, or as a heartbeat when there was nothing to upload; *offset is the kiosk's clock
 * minus the collector's Date, from the last answer that carried one (uploader thread only). */
static void
send_status(struct daemon *d, int64_t *offset, int *have_offset)
{
    struct device_report_sync sync = {"network", NULL, 0};
    struct uploader_result res;
    struct buf rep = BUF_INIT(DEVICE_REPORT_MAX);
    char result[DAEMON_ERRMSG_MAX + 16];
    enum posgate_err err;

    pthread_mutex_lock(&d->lock);
    if (d->state.last_attempt == 0) {
        result[0] = 0;
    } else if (d->state.last_error[0] == 0) {
        snprintf(result, sizeof(result), "ok");
    } else {
        snprintf(result, sizeof(result), "failed: %.480s", d->state.last_error);
    }
    sync.at = d->state.last_attempt;
    pthread_mutex_unlock(&d->lock);
    sync.result = result;
    err = device_report_json(d->pg, result[0] != 0 ? &sync : NULL, *have_offset ? offset : NULL,
                             plat_wall_us(), &rep);
    if (err == POSGATE_OK) {
        err = uploader_post_status(d->up, rep.data, rep.len, &res);
    }
    if (err != POSGATE_OK) {
        plat_log(PLAT_LOG_WARN, "status report: %s", posgate_strerror(err));
    } else {
        if (res.server_date != 0) {
            *offset = plat_wall_s() - res.server_date;
            *have_offset = 1;
        }
        if (res.kind != UPLOAD_OK) {
            plat_log(PLAT_LOG_WARN, "status report not taken (%s): %s",
                     uploader_kind_name(res.kind), res.error);
        }
    }
    buf_free(&rep);
}

static void
wait_until_locked(struct daemon *d, uint64_t due_ns)
{
    struct timespec ts;
    uint64_t now = plat_mono_ns(), at;

    if (due_ns <= now) {
        return;
    }
    clock_gettime(CLOCK_MONOTONIC, &ts);
    at = (uint64_t)ts.tv_sec * NS_PER_S + (uint64_t)ts.tv_nsec + (due_ns - now);
    ts.tv_sec = (time_t)(at / NS_PER_S);
    ts.tv_nsec = (long)(at % NS_PER_S);
    (void)pthread_cond_timedwait(&d->audit_cond, &d->lock, &ts);
}

static void *
audit_thread(void *arg)
{
    struct daemon *d = arg;
    struct daemon_config *cfg = plat_malloc(sizeof(*cfg));
    struct buf batch = BUF_INIT(UPLOADER_BODY_MAX);
    struct uploader_result res;
    uint64_t due_ns = 0, last_prune_ns = 0;
    int64_t clock_offset = 0;
    int have_offset = 0;
    char upmsg[DAEMON_ERRMSG_MAX];

    if (cfg == NULL) {
        plat_log(PLAT_LOG_ERROR, "audit: out of memory; no uploads");
        return NULL;
    }
    pthread_mutex_lock(&d->lock);
    while (!d->stop) {
        uint64_t now = plat_mono_ns(), delay_s, interval;
        int more;

        audit_refresh_locked(d);
        if (d->audit_kick) {
            d->audit_kick = 0;
            due_ns = 0;
        }
        if (d->cfg.audit_url[0] == 0 || d->audit.stopped) {
            d->audit.next_upload = 0;
            pthread_cond_wait(&d->audit_cond, &d->lock);
            due_ns = 0;
            continue;
        }
        if (now < due_ns) {
            wait_until_locked(d, due_ns);
            if (plat_mono_ns() < due_ns) {
                continue; /* woken early: reload or stop */
            }
        }
        *cfg = d->cfg;
        pthread_mutex_unlock(&d->lock);

        more = audit_upload_once(d, cfg, &batch, &res);
        if (res.server_date != 0) {
            clock_offset = plat_wall_s() - res.server_date;
            have_offset = 1;
        }
        if (res.kind == UPLOAD_OK && !more &&
            ensure_uploader(d, cfg, upmsg, sizeof(upmsg)) == POSGATE_OK) {
            send_status(d, &clock_offset, &have_offset);
        }
        now = plat_mono_ns();
        if (last_prune_ns == 0 || now - last_prune_ns >= 60 * NS_PER_S) {
            if (audit_prune(d->pg->audit, plat_wall_s()) != POSGATE_OK) {
                plat_log(PLAT_LOG_WARN, "audit: pruning acknowledged events failed");
            }
            last_prune_ns = now;
        }

        pthread_mutex_lock(&d->lock);
        interval = (uint64_t)d->cfg.audit_upload_interval_s;
        if (res.kind == UPLOAD_OK) {
            d->audit_fails = 0;
            d->audit.last_error[0] = 0;
            if (res.http_status == 200) {
                d->audit.last_upload = plat_wall_s();
            }
            delay_s = more ? 0 : interval;
        } else {
            d->audit_failures[res.kind]++;
            snprintf(d->audit.last_error, sizeof(d->audit.last_error), "%s: %.480s",
                     uploader_kind_name(res.kind), res.error);
            if (res.kind == UPLOAD_CHAIN_BREAK) {
                d->audit.stopped = 1;
                plat_log(PLAT_LOG_ERROR,
                         "audit: uploads stopped: %s; compare `posgate audit verify` with the "
                         "collector's chain_breaks, then send SIGHUP or restart",
                         res.error);
                continue;
            }
            delay_s = fetch_backoff_s(d->audit_fails, interval, interval * 8);
            d->audit_fails++;
            if (delay_s < 1) {
                delay_s = 1;
            }
            if (res.kind == UPLOAD_THROTTLED && delay_s < res.retry_after_s) {
                delay_s = res.retry_after_s;
            }
            plat_log(PLAT_LOG_WARN, "audit upload failed (%s), next attempt in %llu s: %s",
                     uploader_kind_name(res.kind), (unsigned long long)delay_s, res.error);
        }
        due_ns = now + delay_s * NS_PER_S;
        d->audit.next_upload = plat_wall_s() + (int64_t)delay_s;
    }
    pthread_mutex_unlock(&d->lock);
    buf_free(&batch);
    plat_free(cfg);
    return NULL;
}

/* ---- hooks for the HTTP API ---- */

static void
hook_sync_request(void *ctx, uint64_t *id, int *running)
{
    struct daemon *d = ctx;

    pthread_mutex_lock(&d->lock);
    if (!d->running && !d->requested) {
        d->requested = 1;
        pthread_cond_broadcast(&d->cond);
    }
    *id = d->generation + 1; /* the sync running or the next to start */
    *running = d->running;
    pthread_mutex_unlock(&d->lock);
}

static void
hook_sync_state(void *ctx, struct daemon_sync_state *out)
{
    struct daemon *d = ctx;

    pthread_mutex_lock(&d->lock);
    audit_refresh_locked(d);
    d->audit.enabled = d->cfg.audit_url[0] != 0;
    *out = d->state;
    out->pending_id = d->running || d->requested ? d->generation + 1 : 0;
    out->audit = d->audit;
    pthread_mutex_unlock(&d->lock);
}

/* The data dir's file system as the audit queue sees it (audit.h, "A full disk"). */
static enum posgate_err
disk_metrics(struct daemon *d, struct buf *b)
{
    struct audit_stats st;

    if (audit_stats(d->pg->audit, &st) != POSGATE_OK) {
        return POSGATE_OK; /* no figures to give */
    }
    return buf_printf(b,
                      "# HELP posgate_disk_full 1 while the data dir's file system is full and "
                      "the audit queue records on its reserve.\n"
                      "# TYPE posgate_disk_full gauge\n"
                      "posgate_disk_full %d\n"
                      "# HELP posgate_audit_reserve_bytes Space the audit queue holds for a full "
                      "disk (0: released).\n"
                      "# TYPE posgate_audit_reserve_bytes gauge\n"
                      "posgate_audit_reserve_bytes %llu\n",
                      st.disk_full ? 1 : 0, (unsigned long long)st.reserve_bytes);
}

static enum posgate_err
hook_metrics(void *ctx, struct buf *b)
{
    struct daemon *d = ctx;
    struct fetch_stats st;
    uint64_t attempts, failures[SF__COUNT], up_failures[UPLOAD__COUNT], uploaded, queued, acked;
    int64_t last_success;
    int stopped;
    enum posgate_err err;

    pthread_mutex_lock(&d->lock);
    audit_refresh_locked(d);
    queued = d->audit.queued;
    acked = d->audit.last_acked_seq;
    stopped = d->audit.stopped;
    uploaded = d->audit_uploaded;
    memcpy(up_failures, d->audit_failures, sizeof(up_failures));
    attempts = d->attempts;
    memcpy(failures, d->failures, sizeof(failures));
    last_success = d->state.last_success;
    pthread_mutex_unlock(&d->lock);
    pthread_mutex_lock(&d->stats_lock);
    st = d->base;
    if (d->fetch != NULL) {
        struct fetch_stats cur;

        fetch_stats_get(d->fetch, &cur);
        stats_add(&st, &cur);
    }
    pthread_mutex_unlock(&d->stats_lock);

    err = buf_printf(b,
                     "# HELP posgate_sync_attempts_total Syncs started (loop and POST /v1/sync).\n"
                     "# TYPE posgate_sync_attempts_total counter\n"
                     "posgate_sync_attempts_total %llu\n"
                     "# HELP posgate_sync_failures_total Syncs that failed, by kind.\n"
                     "# TYPE posgate_sync_failures_total counter\n",
                     (unsigned long long)attempts);
    for (int i = 0; err == POSGATE_OK && i < SF__COUNT; i++) {
        err = buf_printf(b, "posgate_sync_failures_total{kind=\"%s\"} %llu\n", sf_name[i],
                         (unsigned long long)failures[i]);
    }
    if (err == POSGATE_OK) {
        err = buf_printf(b,
                         "# HELP posgate_sync_last_success_timestamp_seconds Wall time of the "
                         "last successful sync (0: none).\n"
                         "# TYPE posgate_sync_last_success_timestamp_seconds gauge\n"
                         "posgate_sync_last_success_timestamp_seconds %lld\n"
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
                         (long long)last_success, (unsigned long long)st.bytes,
                         (unsigned long long)st.attempts, (unsigned long long)st.ok,
                         (unsigned long long)st.not_modified, (unsigned long long)st.not_found,
                         (unsigned long long)st.resumed);
    }
    for (int i = 0; err == POSGATE_OK && i < FETCH_FAIL__COUNT; i++) {
        err = buf_printf(b, "posgate_fetch_failures_total{kind=\"%s\"} %llu\n",
                         fetch_fail_name((enum fetch_fail)i), (unsigned long long)st.failures[i]);
    }
    if (err == POSGATE_OK) {
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
                         (unsigned long long)queued, (unsigned long long)acked, stopped,
                         (unsigned long long)uploaded);
    }
    for (int i = 1; err == POSGATE_OK && i < UPLOAD__COUNT; i++) {
        err = buf_printf(b, "posgate_audit_upload_failures_total{kind=\"%s\"} %llu\n",
                         uploader_kind_name((enum uploader_kind)i),
                         (unsigned long long)up_failures[i]);
    }
    if (err == POSGATE_OK) {
        err = disk_metrics(d, b);
    }
    return err;
}

/* ---- config reload ---- */

static int
fetch_options_differ(const struct daemon_config *a, const struct daemon_config *b)
{
    if (a->n_feed_urls != b->n_feed_urls) {
        return 1;
    }
    for (size_t i = 0; i < a->n_feed_urls; i++) {
        if (strcmp(a->feed_urls[i], b->feed_urls[i]) != 0) {
            return 1;
        }
    }
    return strcmp(a->ca_file, b->ca_file) != 0 || strcmp(a->client_cert, b->client_cert) != 0 ||
           strcmp(a->client_key, b->client_key) != 0 || strcmp(a->proxy, b->proxy) != 0 ||
           a->max_recv_bytes_per_s != b->max_recv_bytes_per_s;
}

static int
listen_differs(const struct daemon_config *a, const struct daemon_config *b)
{
    if (a->n_listen != b->n_listen) {
        return 1;
    }
    for (size_t i = 0; i < a->n_listen; i++) {
        if (strcmp(a->listen[i].text, b->listen[i].text) != 0) {
            return 1;
        }
    }
    return 0;
}

static void
reload(struct daemon *d)
{
    static struct daemon_config nc; /* main thread only */
    char msg[DAEMON_ERRMSG_MAX];
    uint64_t now;

    if (daemon_config_load(d->config_path, &nc, msg, sizeof(msg)) != POSGATE_OK) {
        plat_log(PLAT_LOG_ERROR, "SIGHUP: %s; keeping the running config", msg);
        return;
    }
    pthread_mutex_lock(&d->lock);
    if (listen_differs(&d->cfg, &nc) || d->cfg.allow_remote != nc.allow_remote ||
        strcmp(d->cfg.socket_group, nc.socket_group) != 0) {
        plat_log(PLAT_LOG_WARN, "SIGHUP: listen/allow_remote/socket_group changed; they take "
                                "effect at the next restart");
    }
    if (strcmp(d->cfg.data_dir, nc.data_dir) != 0) {
        plat_log(PLAT_LOG_WARN, "SIGHUP: data_dir changed; it takes effect at the next restart");
    }
    if (fetch_options_differ(&d->cfg, &nc)) {
        d->fetch_dirty = 1;
    }
    if (fetch_options_differ(&d->cfg, &nc) || strcmp(d->cfg.audit_url, nc.audit_url) != 0) {
        d->audit_dirty = 1;
    }
    /* a reload resumes uploads stopped by a chain break and tries at once */
    d->audit.stopped = 0;
    d->audit_fails = 0;
    d->audit_kick = 1;
    /* keep what needs a restart */
    memcpy(nc.listen, d->cfg.listen, sizeof(nc.listen));
    nc.n_listen = d->cfg.n_listen;
    nc.allow_remote = d->cfg.allow_remote;
    memcpy(nc.data_dir, d->cfg.data_dir, sizeof(nc.data_dir));
    d->cfg = nc;
    now = plat_mono_ns();
    if (d->cfg.n_feed_urls == 0) {
        d->next_due_ns = UINT64_MAX;
        d->state.next_attempt = 0;
    } else if (d->fetch_dirty || d->next_due_ns == UINT64_MAX) {
        d->next_due_ns = now; /* new mirrors or options: try them at once */
        d->fails = 0;
        d->state.next_attempt = plat_wall_s();
    } else if (d->fails == 0 && d->last_end_ns != 0) {
        uint64_t due = d->last_end_ns + (uint64_t)d->cfg.poll_interval_s * NS_PER_S;

        d->next_due_ns = due;
        d->state.next_attempt = plat_wall_s() + (due > now ? (int64_t)((due - now) / NS_PER_S) : 0);
    }
    pthread_cond_broadcast(&d->cond);
    pthread_cond_broadcast(&d->audit_cond);
    pthread_mutex_unlock(&d->lock);
    audit_apply_options(d, &nc);
    httpd_set_access(d->httpd, &nc);
    plat_log_set_level(nc.log_level);
    plat_log(PLAT_LOG_INFO, "SIGHUP: config reloaded from %s (poll every %lld s, %zu feed URL%s)",
             d->config_path, (long long)nc.poll_interval_s, nc.n_feed_urls,
             nc.n_feed_urls == 1 ? "" : "s");
}

/* Each listener may hold HTTPD_CONN_MAX connections: the soft descriptor limit is raised
 * toward the hard one so that a full listener does not starve the store and the fetcher. */
static void
raise_fd_limit(const struct daemon_config *cfg)
{
    struct rlimit rl;
    rlim_t want = (rlim_t)cfg->n_listen * HTTPD_CONN_MAX + 256;

    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur >= want) {
        return;
    }
    rl.rlim_cur = rl.rlim_max != RLIM_INFINITY && rl.rlim_max < want ? rl.rlim_max : want;
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur < want) {
        plat_log(PLAT_LOG_WARN,
                 "open file limit %llu is below the %llu the listeners may need; connections "
                 "past it are refused",
                 (unsigned long long)rl.rlim_cur, (unsigned long long)want);
    }
}

int
main(int argc, char **argv)
{
    static struct daemon d;
    const char *config = NULL;
    int check_only = 0, rc = 5, thread_started = 0;
    char msg[DAEMON_ERRMSG_MAX];
    struct httpd_options ho;
    pthread_condattr_t ca;
    pthread_t thr, athr;
    int audit_started = 0;
    sigset_t set;
    enum posgate_err err;

    if (version_asked(argc, argv)) {
        char extra[128];

        snprintf(extra, sizeof(extra), "libmicrohttpd %s\n", httpd_mhd_version());
        version_print(stdout, "posgated", VERSION_MBEDTLS | VERSION_SQLITE | VERSION_CURL | VERSION_CJSON | VERSION_UTF8PROC, extra);
        return 0;
    }
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 0;
        }
        if (strcmp(argv[i], "--check-config") == 0) {
            check_only = 1;
        } else if (strcmp(argv[i], "--config") == 0 && i + 1 < argc) {
            config = argv[++i];
        } else {
            fprintf(stderr, "posgated: unexpected argument \"%s\"\n", argv[i]);
            usage(stderr);
            return 2;
        }
    }
    if (config == NULL) {
        fprintf(stderr, "posgated: --config FILE is required\n");
        usage(stderr);
        return 2;
    }
    if (strlen(config) >= sizeof(d.config_path)) {
        fprintf(stderr, "posgated: config path too long\n");
        return 2;
    }
    snprintf(d.config_path, sizeof(d.config_path), "%s", config);
    if (daemon_config_load(config, &d.cfg, msg, sizeof(msg)) != POSGATE_OK) {
        fprintf(stderr, "posgated: %s\n", msg);
        return 2;
    }
    if (check_only) {
        printf("config %s is valid\n", config);
        return 0;
    }
    plat_log_set_level(d.cfg.log_level);

    /* Signals are taken by sigwait in this thread; every thread started below inherits the
     * mask. SIGPIPE is ignored (a client gone mid-answer). */
    signal(SIGPIPE, SIG_IGN);
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &set, NULL);

    pthread_mutex_init(&d.lock, NULL);
    pthread_mutex_init(&d.stats_lock, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&d.cond, &ca);
    pthread_cond_init(&d.audit_cond, &ca);
    pthread_condattr_destroy(&ca);

    err = posgate_open(d.cfg.data_dir, &d.pg);
    if (err != POSGATE_OK) {
        fprintf(stderr, "posgated: cannot open data dir %s: %s\n", d.cfg.data_dir,
                posgate_open_errmsg());
        goto out;
    }
    audit_apply_options(&d, &d.cfg);
    raise_fd_limit(&d.cfg);
    memset(&ho, 0, sizeof(ho));
    ho.pg = d.pg;
    ho.listen = d.cfg.listen;
    ho.n_listen = d.cfg.n_listen;
    ho.access = &d.cfg;
    ho.threads = (unsigned)d.cfg.http_threads;
    ho.hooks.ctx = &d;
    ho.hooks.sync_request = hook_sync_request;
    ho.hooks.sync_state = hook_sync_state;
    ho.hooks.metrics = hook_metrics;
    err = httpd_start(&ho, &d.httpd, msg, sizeof(msg));
    if (err != POSGATE_OK) {
        fprintf(stderr, "posgated: %s\n", msg);
        goto out;
    }
    d.next_due_ns = d.cfg.n_feed_urls > 0 ? plat_mono_ns() : UINT64_MAX;
    d.merge_due = 1; /* rows an earlier run or posgate import left in recent */
    d.state.next_attempt = d.cfg.n_feed_urls > 0 ? plat_wall_s() : 0;
    if (pthread_create(&thr, NULL, sync_thread, &d) != 0) {
        fprintf(stderr, "posgated: cannot start the sync thread\n");
        goto out;
    }
    thread_started = 1;
    if (pthread_create(&athr, NULL, audit_thread, &d) != 0) {
        fprintf(stderr, "posgated: cannot start the audit uploader thread\n");
        goto out;
    }
    audit_started = 1;
    if (d.cfg.audit_url[0] != 0) {
        plat_log(PLAT_LOG_INFO, "audit: uploading to %s every %lld s", d.cfg.audit_url,
                 (long long)d.cfg.audit_upload_interval_s);
    }
    plat_log(PLAT_LOG_INFO, "posgated running: data dir %s, %zu feed URL%s, poll every %lld s",
             d.cfg.data_dir, d.cfg.n_feed_urls, d.cfg.n_feed_urls == 1 ? "" : "s",
             (long long)d.cfg.poll_interval_s);

    for (;;) {
        int sig = 0;

        if (sigwait(&set, &sig) != 0) {
            continue;
        }
        if (sig == SIGHUP) {
            reload(&d);
            continue;
        }
        plat_log(PLAT_LOG_INFO, "%s: stopping", sig == SIGTERM ? "SIGTERM" : "SIGINT");
        break;
    }
    rc = 0;
out:
    httpd_stop(d.httpd, HTTPD_GRACE_MS);
    d.httpd = NULL;
    if (thread_started) {
        pthread_mutex_lock(&d.lock);
        d.stop = 1;
        pthread_cond_broadcast(&d.cond);
        pthread_mutex_unlock(&d.lock);
        /* a sync under way stops within a second and installs nothing (fetch_cancel) */
        pthread_mutex_lock(&d.stats_lock);
        fetch_cancel(d.fetch);
        pthread_mutex_unlock(&d.stats_lock);
        pthread_join(thr, NULL);
    }
    if (audit_started) {
        pthread_mutex_lock(&d.lock);
        d.stop = 1;
        pthread_cond_broadcast(&d.audit_cond);
        pthread_mutex_unlock(&d.lock);
        pthread_join(athr, NULL);
    }
    uploader_free(d.up);
    fetch_free(d.fetch);
    posgate_close(d.pg);
    pthread_cond_destroy(&d.cond);
    pthread_cond_destroy(&d.audit_cond);
    pthread_mutex_destroy(&d.stats_lock);
    pthread_mutex_destroy(&d.lock);
    if (rc == 0) {
        plat_log(PLAT_LOG_INFO, "stopped");
    }
    return rc;
}
