/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The admin interface of the kiosk library: what the posgate command line (agent/cli) and the
 * posgated daemon (agent/daemon) need beyond posgate.h. They include only posgate.h, this
 * header, platform/ and the bounded JSON parser (tools/check-layers.sh holds them to it); the
 * store, the update pipeline, the audit queue, the fetcher and the API's private struct stay
 * behind it. Not installed: it may change with the programs built beside it.
 */
#ifndef POSGATE_ADMIN_H
#define POSGATE_ADMIN_H

#include "posgate.h"

/* ==== the posgate command line ============================================================ */


/* ==== end of the command line's part ====================================================== */



/* ==== posgated ============================================================================ */

/*
 * What posgated (agent/daemon) needs beyond posgate.h: the mechanisms of its sync thread (one
 * sync attempt over the fetcher's carriers, the merge of the store's recent changes after it),
 * of its audit uploader thread (one upload round, the signed device status report, pruning),
 * the status object its HTTP threads read, and the figures /metrics shows. The loops, their
 * schedules, the config and the HTTP API stay in the daemon; the fetcher, the uploader, the
 * update pipeline, the audit queue and the handle's insides stay here (admin_daemon.c).
 *
 * Threads. One struct posgated_core per open handle, made before the daemon's threads start and
 * freed after they all stopped. Each function names the threads that may call it:
 *   - the sync thread (one thread): posgated_sync_run, posgated_sync_merge;
 *   - the uploader thread (one thread): posgated_audit_upload, posgated_audit_send_status,
 *     posgated_audit_prune;
 *   - any thread, at any time: every other function (but posgated_core_new and _free).
 * Reads of the handle's own store connection (the status object, the installed version, the
 * device report) are serialised inside, so HTTP threads, the sync thread and the uploader thread
 * may ask at once (posgate_status_json on the same handle from several threads is not safe:
 * use posgated_status_json). Nothing here calls into the daemon except keep_going, and no lock
 * taken inside is held on return: the daemon may call the "any thread" functions with its own
 * locks held.
 */
#include <stdint.h>
#include <stdio.h>

struct buf;
struct posgated_core;

#define POSGATED_ERRMSG_MAX 512
#define POSGATED_IDS_MAX    8 /* identifiers per request (posgate_request_add_id) */

/* The daemon's machinery around pg (borrowed: it must outlive *out). NOMEM. */
POSGATE_WUR enum posgate_err posgated_core_new(struct posgate *pg, struct posgated_core **out);
/* Frees the fetcher and the uploader; NULL is a no-op. Only after every thread using c ended. */
void posgated_core_free(struct posgated_core *c);

/* posgate_status_json of the handle (the object of `posgate status --json`), serialised with
 * every other reader of the handle's store connection; *out is freed with posgate_free. Any
 * thread. */
POSGATE_WUR enum posgate_err posgated_status_json(struct posgated_core *c, char **out);

/* What a request holds, for the HTTP API's privilege rule and the fuzz targets' invariants.
 * The strings are rq's ("" when not set), valid until rq is changed or freed. */
struct posgated_request_view {
    const char *service;
    size_t n_ids; /* 0 .. POSGATED_IDS_MAX */
    const char *operator_id;
    int has_at;
    int has_override; /* a supervisor override (posgate_request_set_override) */
    const char *override_by, *override_reason;
};
void posgated_request_view(const struct posgate_request *rq, struct posgated_request_view *out);

/* The wait in seconds before a loop's next attempt after a failure: full jitter (uniform from
 * the CSPRNG) in [0, min(8 intervals, interval_s * 2^fails)], fails counting the failures
 * before this one, then at least 1 and at least retry_after_s (a Retry-After still running).
 * Any thread. */
uint64_t posgated_backoff_s(unsigned fails, uint64_t interval_s, uint64_t retry_after_s);

/* `posgated --version`: "posgated VERSION", then the run-time version of each library the
 * core runs on (mbedTLS, SQLite, libcurl, cJSON, utf8proc), one per line, then extra verbatim
 * (NULL: none; the daemon's own libraries). */
void posgated_version_print(FILE *out, const char *extra);

/* ---- the sync thread ---- */

enum posgated_sync_kind {
    POSGATED_SYNC_OK,
    POSGATED_SYNC_NETWORK,  /* no mirror delivered */
    POSGATED_SYNC_REJECTED, /* the verifier refused the feed */
    POSGATED_SYNC_STORE,    /* the local store failed */
    POSGATED_SYNC_CONFIG,   /* no feed URL, or no fetcher could be made from the options */
    POSGATED_SYNC_DISK      /* the data directory's file system is full */
};

/* One attempt's options: the config as it is when the attempt starts (borrowed for the call;
 * NULL or "" for an absent path or proxy). */
struct posgated_sync_options {
    const char *data_dir;
    const char *const *feed_urls; /* the mirrors' base URLs, in the order they are tried */
    size_t n_feed_urls;           /* 0: the attempt fails with CONFIG at once */
    const char *ca_file, *client_cert, *client_key, *proxy;
    uint64_t max_recv_bytes_per_s; /* 0: unlimited */
};

struct posgated_sync_outcome {
    enum posgated_sync_kind kind;
    int64_t feed_version;   /* installed after the attempt (a failure leaves the last good one) */
    int changed;            /* list data changed */
    uint64_t retry_after_s; /* a failure: until a mirror's Retry-After ends (0: none running) */
    char error[POSGATED_ERRMSG_MAX]; /* a failure: "NAME: why" ("" on OK) */
};

/* The fetch options changed when options_changed is 1: the next posgated_sync_run makes a new
 * fetcher from its options (the old one's counters are kept for /metrics). Returns 1 while a
 * new fetcher is due: asked for, now or before, and not yet made by a run, or the last run
 * could not make one. Any thread. */
int posgated_sync_renew_fetcher(struct posgated_core *c, int options_changed);

/* One sync attempt with opt: the TUF update (update_run) from the mirrors through the fetcher,
 * waiting at most a second for another update of the data dir (the next attempt tries again),
 * the store's recent changes left for posgated_sync_merge; after a success the spool's stale
 * partial downloads are removed and the handle's idle store readers renewed, so that the next
 * check answers from the new version. *out (reset first) classifies what happened. The sync
 * thread only; blocks for the network and the disk (posgated_sync_cancel ends it early). */
void posgated_sync_run(struct posgated_core *c, const struct posgated_sync_options *opt,
                       struct posgated_sync_outcome *out);

/* Merges the store's recent changes into its main table (update_compact), a transaction per
 * chunk, asking keep_going(ctx) between chunks (0 stops; the rest waits for the next merge);
 * rebuilds the key filter when the installed version has none usable. Logs what it did, or
 * why it failed. The sync thread only, between attempts; checks go on meanwhile. */
POSGATE_WUR enum posgate_err posgated_sync_merge(struct posgated_core *c, const char *data_dir,
                                                 int (*keep_going)(void *ctx), void *ctx);

/* Stops the transfers of the attempt under way, and of every later one, within about a second:
 * the attempt fails and installs nothing. For the stop: any thread. */
void posgated_sync_cancel(struct posgated_core *c);

/* Appends the fetcher's metric families (Prometheus text 0.0.4): posgate_fetch_bytes_total,
 * posgate_fetch_requests_total{result}, posgate_fetch_failures_total{kind}, summed over every
 * fetcher made. Any thread. */
POSGATE_WUR enum posgate_err posgated_sync_metrics(struct posgated_core *c, struct buf *out);

/* ---- the audit uploader thread ---- */

enum posgated_upload_kind {
    POSGATED_UPLOAD_OK,
    POSGATED_UPLOAD_NETWORK,
    POSGATED_UPLOAD_TLS,
    POSGATED_UPLOAD_TIMEOUT,
    POSGATED_UPLOAD_THROTTLED,   /* 429 / 503: wait retry_after_s */
    POSGATED_UPLOAD_SERVER,      /* another 5xx */
    POSGATED_UPLOAD_REFUSED,     /* another 4xx */
    POSGATED_UPLOAD_CHAIN_BREAK, /* the collector found the chain broken: stop uploading */
    POSGATED_UPLOAD_PROTOCOL,    /* an answer that cannot be used, or a local failure */
    POSGATED_UPLOAD__COUNT
};

/* The uploader's options (borrowed for the call; NULL or "" for an absent path or proxy). */
struct posgated_audit_options {
    const char *url; /* the collector's POST /v1/audit URL */
    const char *ca_file, *client_cert, *client_key, *proxy;
    size_t batch_max; /* events per batch */
};

struct posgated_upload_result {
    enum posgated_upload_kind kind;
    const char *kind_name;  /* "ok", "network", "tls", "timeout", "throttled", "server",
                               "refused", "chain_break", "protocol" (static) */
    long http_status;       /* the collector's answer; 0: none (nothing sent, or no answer) */
    uint64_t retry_after_s; /* THROTTLED: the Retry-After given (0: none); else 0 */
    char error[POSGATED_ERRMSG_MAX]; /* "" on OK */
};

/* Makes a new uploader at the next use (the upload options changed). Any thread. */
void posgated_audit_renew_uploader(struct posgated_core *c);

/* One upload round: up to batch_max events after the collector's acknowledged seq, signed,
 * POSTed gzip-compressed, and the seq it acknowledges recorded (which may prune). An empty
 * queue is OK with http_status 0. Returns 1 when more events wait (upload again at once), 0
 * otherwise. A failure's kind is counted for posgated_audit_metrics; the answer's Date, if any,
 * sets the clock offset the status report gives. The uploader thread only; blocks. */
int posgated_audit_upload(struct posgated_core *c, const struct posgated_audit_options *opt,
                          struct posgated_upload_result *res);

/* Sends the signed device status report (docs/collector.md, "Device status") to the
 * collector's device-status URL beside opt->url, with the last sync attempt (sync_at wall
 * seconds, 0: none yet; sync_error "" when it succeeded) and the clock offset against the
 * collector's last Date. Nothing when no uploader can be made; a failure is logged. The uploader
 * thread only; blocks. */
void posgated_audit_send_status(struct posgated_core *c, const struct posgated_audit_options *opt,
                                int64_t sync_at, const char *sync_error);

/* Deletes acknowledged events past the retention period, at most once a minute (the first call
 * always). The uploader thread only. */
void posgated_audit_prune(struct posgated_core *c);

/* The queue's figures: events stored and not yet acknowledged, and the highest seq the
 * collector acknowledged. Read now; when the queue cannot be read, the last figures read
 * (0 before any). Any thread. */
struct posgated_audit_queue {
    uint64_t queued;
    uint64_t acked_seq;
};
void posgated_audit_queue(struct posgated_core *c, struct posgated_audit_queue *out);

/* Appends the uploader's and the queue's metric families (Prometheus text 0.0.4):
 * posgate_audit_queued, _acked_seq, _upload_stopped (stopped: the daemon's chain-break state),
 * _uploaded_total, _upload_failures_total{kind}, then posgate_disk_full and
 * posgate_audit_reserve_bytes when the queue can be read. Any thread. */
POSGATE_WUR enum posgate_err posgated_audit_metrics(struct posgated_core *c, int stopped,
                                                    struct buf *out);

/* ==== end of posgated's part ============================================================== */

#endif
