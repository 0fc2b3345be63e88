/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The daemon's local HTTP API (docs/api.md), the only user of libmicrohttpd in the agent. One
 * MHD daemon per listen address, each with an internal thread pool, so checks run in parallel
 * and never wait for a sync (the sync runs in its own thread; readers keep the old version
 * until the update commits). Listen sockets are bound here (TCP on the configured address,
 * unix sockets as files made 0660) and handed to MHD. TCP listeners require
 * "Authorization: Bearer TOKEN" when a token is set (compared in constant time); unix sockets
 * rely on file permissions.
 *
 *   POST /v1/check   -> 200 check object | 400 {"error"} | 413 | 503 (no verified data)
 *   GET  /v1/status  -> 200 status object + "sync"
 *   GET  /healthz    -> 200 {"ok":true} | 503 {"ok":false,"reason"}
 *   GET  /metrics    -> 200 Prometheus text (version 0.0.4)
 *   POST /v1/sync    -> 200 | 502 (network) | 422 (feed rejected) | 409 (no feed_urls)
 */
#ifndef POSGATE_HTTPD_H
#define POSGATE_HTTPD_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "daemon_config.h"
#include "posgate.h"
#include "posgate_err.h"

#define HTTPD_THREADS_DEFAULT DAEMON_HTTP_THREADS_DEFAULT
#define HTTPD_GRACE_MS        10000

enum httpd_sync_kind {
    HTTPD_SYNC_OK,
    HTTPD_SYNC_NETWORK,  /* no mirror delivered (502) */
    HTTPD_SYNC_REJECTED, /* the verifier refused the feed (422) */
    HTTPD_SYNC_STORE,    /* the local store failed */
    HTTPD_SYNC_CONFIG    /* no feed_urls configured (409) */
};

/* The result of one sync, as POST /v1/sync reports it. */
struct httpd_sync_outcome {
    enum httpd_sync_kind kind;
    int64_t feed_version;
    int changed;
    char error[DAEMON_ERRMSG_MAX];
};

/* What the HTTP API asks of the daemon; every hook may be called from any server thread. */
struct httpd_hooks {
    void *ctx;
    /* Runs a sync now, or waits for the one running and reports that one. */
    void (*sync_now)(void *ctx, struct httpd_sync_outcome *out);
    /* A copy of the sync loop's state. */
    void (*sync_state)(void *ctx, struct daemon_sync_state *out);
    /* Appends the daemon's metric families (sync, fetch) in Prometheus text format. */
    enum posgate_err (*metrics)(void *ctx, struct buf *out);
};

struct httpd_options {
    struct posgate *pg;                 /* borrowed; outlives the server */
    const struct daemon_listen *listen; /* copied */
    size_t n_listen;
    const char *api_token; /* NULL or "": none; copied */
    unsigned threads;      /* per listener; 0: HTTPD_THREADS_DEFAULT */
    struct httpd_hooks hooks;
};

struct httpd;

/* Binds every listener and starts serving. IO (errmsg names the address and the reason) when
 * an address cannot be bound; INVALID for a bad option. */
POSGATE_WUR enum posgate_err httpd_start(const struct httpd_options *opt, struct httpd **out,
                                         char *errmsg, size_t errcap);
/* Replaces the bearer token (NULL or "": none) for later requests. */
void httpd_set_token(struct httpd *h, const char *token);
/* Stops accepting connections, lets requests in flight finish (at most grace_ms), stops the
 * server threads, removes unix socket files and frees h. NULL is a no-op. */
void httpd_stop(struct httpd *h, unsigned grace_ms);

/* Maps a sync outcome to its HTTP status (200, 502, 422, 409, 500). */
unsigned httpd_sync_status(enum httpd_sync_kind k);

#endif
