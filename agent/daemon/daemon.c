/* SPDX-License-Identifier: Apache-2.0 */
/*
 * posgated: the agent daemon. It opens the data directory made by `posgate init`, serves the
 * local HTTP API (httpd.c) and keeps the lists fresh with a sync thread that runs one sync
 * attempt (posgated_sync_run, posgate_admin.h: the TUF update over the fetcher's carriers)
 * every poll_interval_s on the monotonic clock, backing off with full jitter after a failure
 * (capped at 8 poll intervals, at least 1 s, never before a mirror's Retry-After ends). A sync
 * never blocks a check: it installs a version in one SQLite transaction while readers keep the
 * previous one. Every sync runs in
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
 * the collector's last acknowledged seq, POSTs them gzip-compressed (the fetcher's TLS/mTLS/proxy
 * options) and records the answered acked_seq, which also prunes acknowledged events past
 * audit_retention_days (posgated_audit_upload). A failure backs off with full jitter
 * (capped at 8 intervals, never before a Retry-After); a chain break (409) stops the uploads
 * until a SIGHUP or a restart, reported in GET /v1/status "audit" and in /metrics.
 *
 * The mechanisms (fetcher, update, uploader, audit queue, device report) are the core's, behind
 * posgate_admin.h; this file holds the loops, their schedules, the config and the signals.
 *
 * Exit codes: 0 clean stop, 2 usage or config error, 5 start-up failure (store, listen).
 */
#define _POSIX_C_SOURCE 200809L
#include <sys/resource.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "daemon_config.h"
#include "httpd.h"
#include "plat_clock.h"
#include "plat_log.h"
#include "plat_mem.h"
#include "posgate.h"
#include "posgate_admin.h"

#define NS_PER_S 1000000000ull
#define SYNC_REQUEST_MIN_S 2        /* asked-for syncs start at most this often */

enum sync_fail_kind { SF_NETWORK, SF_REJECTED, SF_STORE, SF_CONFIG, SF_DISK, SF__COUNT };
static const char *const sf_name[SF__COUNT] = {"network", "rejected", "store", "config", "disk"};

struct daemon {
    char config_path[DAEMON_PATH_MAX];
    struct daemon_config cfg; /* guarded by lock (reloadable fields change on SIGHUP) */
    struct posgate *pg;
    struct posgated_core *core; /* the fetcher, the uploader, the store reads (posgate_admin.h) */
    struct httpd *httpd;

    pthread_mutex_t lock;
    pthread_cond_t cond; /* CLOCK_MONOTONIC: wakes the loop; signals the end of a sync */
    int stop;
    int running;         /* a sync is in progress */
    int requested;       /* POST /v1/sync asked for a sync not yet started */
    uint64_t last_start_ns; /* monotonic start of the last sync; 0: none */
    int merge_due;       /* the store's recent changes are to be merged (sync thread) */
    uint64_t generation; /* syncs finished */
    struct posgated_sync_outcome last;
    struct daemon_sync_state state;
    uint64_t next_due_ns; /* monotonic */
    uint64_t last_end_ns; /* monotonic end of the last sync */
    unsigned fails;       /* consecutive failures */
    uint64_t attempts;
    uint64_t failures[SF__COUNT];

    /* The audit uploader thread; its fields are guarded by lock. */
    pthread_cond_t audit_cond; /* CLOCK_MONOTONIC: wakes the uploader (reload, stop) */
    struct daemon_audit_state audit;
    int audit_kick;          /* upload at once (a reload) */
    unsigned audit_fails;    /* consecutive failed uploads */
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

/* One sync attempt with the config as it is now; fills o. Runs outside d->lock. */
static void
run_one(struct daemon *d, const struct daemon_config *cfg, struct posgated_sync_outcome *o)
{
    const char *mirrors[DAEMON_FEED_URLS_MAX];
    struct posgated_sync_options so;

    memset(&so, 0, sizeof(so));
    for (size_t i = 0; i < cfg->n_feed_urls; i++) {
        mirrors[i] = cfg->feed_urls[i];
    }
    so.data_dir = cfg->data_dir;
    so.feed_urls = mirrors;
    so.n_feed_urls = cfg->n_feed_urls;
    so.ca_file = cfg->ca_file;
    so.client_cert = cfg->client_cert;
    so.client_key = cfg->client_key;
    so.proxy = cfg->proxy;
    so.max_recv_bytes_per_s = cfg->max_recv_bytes_per_s;
    posgated_sync_run(d->core, &so, o);
}

static enum sync_fail_kind
outcome_fail_kind(enum posgated_sync_kind k)
{
    switch (k) {
    case POSGATED_SYNC_NETWORK:
        return SF_NETWORK;
    case POSGATED_SYNC_REJECTED:
        return SF_REJECTED;
    case POSGATED_SYNC_CONFIG:
        return SF_CONFIG;
    case POSGATED_SYNC_DISK:
        return SF_DISK;
    case POSGATED_SYNC_OK:
    case POSGATED_SYNC_STORE:
        return SF_STORE;
    }
    return SF_STORE;
}

static const char *
kind_name(enum posgated_sync_kind k)
{
    return k == POSGATED_SYNC_OK ? "ok" : sf_name[outcome_fail_kind(k)];
}

/* Runs one sync (the sync thread only; d->lock not held on entry). A sync asked for by POST
 * /v1/sync is satisfied by any sync that starts after the request. */
static void
do_sync(struct daemon *d)
{
    struct daemon_config *cfg;
    struct posgated_sync_outcome o;
    uint64_t delay, now;
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
        o.kind = POSGATED_SYNC_STORE;
        snprintf(o.error, sizeof(o.error), "out of memory");
    } else {
        pthread_mutex_lock(&d->lock);
        *cfg = d->cfg;
        pthread_mutex_unlock(&d->lock);
        run_one(d, cfg, &o); /* a success also renews the idle store readers */
        plat_free(cfg);
    }

    pthread_mutex_lock(&d->lock);
    now = plat_mono_ns();
    poll = d->cfg.poll_interval_s;
    if (o.kind == POSGATED_SYNC_OK) {
        d->fails = 0;
        delay = (uint64_t)poll;
        d->state.last_success = plat_wall_s();
        d->state.last_error[0] = 0;
        plat_log(PLAT_LOG_INFO, "sync: feed version %lld%s", (long long)o.feed_version,
                 o.changed ? " installed" : " (no change)");
    } else {
        d->failures[outcome_fail_kind(o.kind)]++;
        delay = posgated_backoff_s(d->fails, (uint64_t)poll, o.retry_after_s);
        d->fails++;
        snprintf(d->state.last_error, sizeof(d->state.last_error), "%s", o.error);
        plat_log(PLAT_LOG_WARN, "sync failed (%s), next attempt in %llu s: %s",
                 sf_name[outcome_fail_kind(o.kind)], (unsigned long long)delay, o.error);
    }
    if (o.kind == POSGATED_SYNC_CONFIG && d->cfg.n_feed_urls == 0) {
        d->state.next_attempt = 0;
        d->next_due_ns = UINT64_MAX;
    } else {
        d->next_due_ns = now + delay * NS_PER_S;
        d->state.next_attempt = plat_wall_s() + (int64_t)delay;
    }
    d->last_end_ns = now;
    if (o.kind == POSGATED_SYNC_OK && o.changed) {
        d->merge_due = 1;
    }
    d->last = o;
    d->running = 0;
    d->state.running = 0;
    d->generation++;
    d->state.last_id = d->generation;
    d->state.last_ok = o.kind == POSGATED_SYNC_OK;
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

/* Merges the store's recent changes into its main table after a sync installed a delta, in the
 * sync thread so that no caller of POST /v1/sync waits for it. Called with d->lock held;
 * releases it while merging. Checks go on meanwhile (each chunk leaves the answers as they
 * were). */
static void
merge_recent(struct daemon *d)
{
    char dir[DAEMON_PATH_MAX];
    enum posgate_err err;

    d->merge_due = 0;
    memcpy(dir, d->cfg.data_dir, sizeof(dir));
    pthread_mutex_unlock(&d->lock);
    err = posgated_sync_merge(d->core, dir, merge_keep_going, d);
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

/* The queue's figures into d->audit (d->lock held by the caller). */
static void
audit_refresh_locked(struct daemon *d)
{
    struct posgated_audit_queue q;

    posgated_audit_queue(d->core, &q);
    d->audit.last_acked_seq = q.acked_seq;
    d->audit.queued = q.queued;
}

/* The uploader's options from the config (borrowed from cfg). */
static void
audit_options(const struct daemon_config *cfg, struct posgated_audit_options *ao)
{
    memset(ao, 0, sizeof(*ao));
    ao->url = cfg->audit_url;
    ao->ca_file = cfg->ca_file;
    ao->client_cert = cfg->client_cert;
    ao->client_key = cfg->client_key;
    ao->proxy = cfg->proxy;
    ao->batch_max = (size_t)cfg->audit_batch_max;
}

/* The device status report after an upload round that reached the collector, or as a
 * heartbeat when there was nothing to upload, with the sync loop's last attempt (uploader
 * thread only; d->lock not held). */
static void
send_status(struct daemon *d, const struct posgated_audit_options *ao)
{
    char last_error[DAEMON_ERRMSG_MAX];
    int64_t last_attempt;

    pthread_mutex_lock(&d->lock);
    last_attempt = d->state.last_attempt;
    memcpy(last_error, d->state.last_error, sizeof(last_error));
    pthread_mutex_unlock(&d->lock);
    posgated_audit_send_status(d->core, ao, last_attempt, last_error);
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
    struct posgated_audit_options ao;
    struct posgated_upload_result res;
    uint64_t due_ns = 0;

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

        audit_options(cfg, &ao);
        more = posgated_audit_upload(d->core, &ao, &res);
        if (res.kind == POSGATED_UPLOAD_OK && !more) {
            send_status(d, &ao);
        }
        now = plat_mono_ns();
        posgated_audit_prune(d->core); /* at most once a minute */

        pthread_mutex_lock(&d->lock);
        interval = (uint64_t)d->cfg.audit_upload_interval_s;
        if (res.kind == POSGATED_UPLOAD_OK) {
            d->audit_fails = 0;
            d->audit.last_error[0] = 0;
            if (res.http_status == 200) {
                d->audit.last_upload = plat_wall_s();
            }
            delay_s = more ? 0 : interval;
        } else {
            snprintf(d->audit.last_error, sizeof(d->audit.last_error), "%s: %.480s",
                     res.kind_name, res.error);
            if (res.kind == POSGATED_UPLOAD_CHAIN_BREAK) {
                d->audit.stopped = 1;
                plat_log(PLAT_LOG_ERROR,
                         "audit: uploads stopped: %s; compare `posgate audit verify` with the "
                         "collector's chain_breaks, then send SIGHUP or restart",
                         res.error);
                continue;
            }
            /* a Retry-After (THROTTLED) is waited for whole */
            delay_s = posgated_backoff_s(d->audit_fails, interval, res.retry_after_s);
            d->audit_fails++;
            plat_log(PLAT_LOG_WARN, "audit upload failed (%s), next attempt in %llu s: %s",
                     res.kind_name, (unsigned long long)delay_s, res.error);
        }
        due_ns = now + delay_s * NS_PER_S;
        d->audit.next_upload = plat_wall_s() + (int64_t)delay_s;
    }
    pthread_mutex_unlock(&d->lock);
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

static enum posgate_err
hook_metrics(void *ctx, struct buf *b)
{
    struct daemon *d = ctx;
    uint64_t attempts, failures[SF__COUNT];
    int64_t last_success;
    int stopped;
    enum posgate_err err;

    pthread_mutex_lock(&d->lock);
    stopped = d->audit.stopped;
    attempts = d->attempts;
    memcpy(failures, d->failures, sizeof(failures));
    last_success = d->state.last_success;
    pthread_mutex_unlock(&d->lock);

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
                         "posgate_sync_last_success_timestamp_seconds %lld\n",
                         (long long)last_success);
    }
    if (err == POSGATE_OK) {
        err = posgated_sync_metrics(d->core, b); /* posgate_fetch_* */
    }
    if (err == POSGATE_OK) {
        err = posgated_audit_metrics(d->core, stopped, b); /* posgate_audit_*, posgate_disk_* */
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
    int fetch_changed, fetch_renew;

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
    /* new fetch options: a new fetcher at the next sync, and a new uploader (same options) */
    fetch_changed = fetch_options_differ(&d->cfg, &nc);
    fetch_renew = posgated_sync_renew_fetcher(d->core, fetch_changed);
    if (fetch_changed || strcmp(d->cfg.audit_url, nc.audit_url) != 0) {
        posgated_audit_renew_uploader(d->core);
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
    } else if (fetch_renew || d->next_due_ns == UINT64_MAX) {
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

/* The command line: -1 to go on with *config (and *check_only), else the exit code (--version,
 * --help, a usage error). */
static int
parse_args(int argc, char **argv, const char **config, int *check_only)
{
    if (argc >= 2 && strcmp(argv[1], "--version") == 0) { /* only first, before the rest */
        char extra[128];

        snprintf(extra, sizeof(extra), "libmicrohttpd %s\n", httpd_mhd_version());
        posgated_version_print(stdout, extra);
        return 0;
    }
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 0;
        }
        if (strcmp(argv[i], "--check-config") == 0) {
            *check_only = 1;
        } else if (strcmp(argv[i], "--config") == 0 && i + 1 < argc) {
            *config = argv[++i];
        } else {
            fprintf(stderr, "posgated: unexpected argument \"%s\"\n", argv[i]);
            usage(stderr);
            return 2;
        }
    }
    if (*config == NULL) {
        fprintf(stderr, "posgated: --config FILE is required\n");
        usage(stderr);
        return 2;
    }
    return -1;
}

int
main(int argc, char **argv)
{
    static struct daemon d;
    const char *config = NULL;
    int check_only = 0, rc = 5, arg_rc, thread_started = 0;
    char msg[DAEMON_ERRMSG_MAX];
    struct httpd_options ho;
    pthread_condattr_t ca;
    pthread_t thr, athr;
    int audit_started = 0;
    sigset_t set;
    enum posgate_err err;

    arg_rc = parse_args(argc, argv, &config, &check_only);
    if (arg_rc >= 0) {
        return arg_rc;
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
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&d.cond, &ca);
    pthread_cond_init(&d.audit_cond, &ca);
    pthread_condattr_destroy(&ca);

    err = posgate_admin_open(d.cfg.data_dir, &d.pg, msg, sizeof(msg));
    if (err != POSGATE_OK) {
        fprintf(stderr, "posgated: cannot open data dir %s: %s\n", d.cfg.data_dir, msg);
        goto out;
    }
    err = posgated_core_new(d.pg, &d.core);
    if (err != POSGATE_OK) {
        fprintf(stderr, "posgated: %s\n", posgate_strerror(err));
        goto out;
    }
    audit_apply_options(&d, &d.cfg);
    raise_fd_limit(&d.cfg);
    memset(&ho, 0, sizeof(ho));
    ho.pg = d.pg;
    ho.core = d.core;
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
        /* a sync under way stops within a second and installs nothing */
        posgated_sync_cancel(d.core);
        pthread_join(thr, NULL);
    }
    if (audit_started) {
        pthread_mutex_lock(&d.lock);
        d.stop = 1;
        pthread_cond_broadcast(&d.audit_cond);
        pthread_mutex_unlock(&d.lock);
        pthread_join(athr, NULL);
    }
    posgated_core_free(d.core);
    posgate_close(d.pg);
    pthread_cond_destroy(&d.cond);
    pthread_cond_destroy(&d.audit_cond);
    pthread_mutex_destroy(&d.lock);
    if (rc == 0) {
        plat_log(PLAT_LOG_INFO, "stopped");
    }
    return rc;
}
