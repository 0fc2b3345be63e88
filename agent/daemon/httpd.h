/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The daemon's local HTTP API (docs/api.md, docs/security.md), the only user of libmicrohttpd
 * in the agent. One MHD daemon per listen address, each with an internal thread pool, so checks
 * run in parallel and never wait for a sync (the sync runs in the daemon's sync thread; a
 * request only asks for one). Listen sockets are bound here (TCP on the configured address,
 * unix sockets as files made 0660, group socket_group) and handed to MHD.
 *
 * Every request passes, before its body is read: on TCP, a Host that names the listener's
 * address, localhost (loopback listeners) or an allowed_hosts entry (else 421); an Origin, if
 * any, in allowed_origins (else 403, on every listener); the bearer token on TCP when api_token
 * is set (else 401, compared in constant time); a POST body typed application/json (else 415).
 * Privileged actions (POST /v1/sync, a check with override_by) need the unix socket or
 * "Bearer ADMIN_TOKEN" on TCP (else 403). A connection must deliver each whole request within
 * HTTPD_REQUEST_DEADLINE_MS of its start or of its previous answer, or it is closed; at most
 * HTTPD_CONN_MAX connections per listener and HTTPD_CONN_PER_IP per TCP peer address.
 *
 *   POST /v1/check   -> 200 check object | 400 {"error"} | 403 | 413 | 415 | 503
 *   GET  /v1/status  -> 200 status object + "sync"
 *   GET  /healthz    -> 200 {"ok":true} | 503 {"ok":false,"reason"}
 *   GET  /metrics    -> 200 Prometheus text (version 0.0.4)
 *   POST /v1/sync    -> 202 {"sync_id","running","result"} | 403 (not privileged)
 */
#ifndef POSGATE_HTTPD_H
#define POSGATE_HTTPD_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "daemon_config.h"
#include "posgate.h"
#include "posgate_admin.h"
#include "posgate_err.h"

#define HTTPD_THREADS_DEFAULT DAEMON_HTTP_THREADS_DEFAULT
#define HTTPD_GRACE_MS        10000
#define HTTPD_REQUEST_DEADLINE_MS 10000 /* headers and body of one request, or keep-alive idle */
#define HTTPD_IO_TIMEOUT_S        10    /* libmicrohttpd's inactivity timeout */
#define HTTPD_CONN_MAX            1024  /* connections per listener */
#define HTTPD_CONN_PER_IP         512   /* connections per TCP peer address */

/* What the HTTP API asks of the daemon; every hook may be called from any server thread. */
struct httpd_hooks {
    void *ctx;
    /* Asks the sync thread for a sync, or joins the one requested or running; never waits for
     * it. *id is that sync's id (GET /v1/status sync.result.id once it ends). */
    void (*sync_request)(void *ctx, uint64_t *id, int *running);
    /* A copy of the sync loop's state. */
    void (*sync_state)(void *ctx, struct daemon_sync_state *out);
    /* Appends the daemon's metric families (sync, fetch) in Prometheus text format. */
    enum posgate_err (*metrics)(void *ctx, struct buf *out);
};

struct httpd_options {
    struct posgate *pg;                 /* borrowed; outlives the server: checks */
    struct posgated_core *core;         /* borrowed; outlives the server: the status object */
    const struct daemon_listen *listen; /* copied */
    size_t n_listen;
    const struct daemon_config *access; /* tokens, allowed_hosts, allowed_origins,
                                           socket_group; copied */
    unsigned threads; /* per listener; 0: HTTPD_THREADS_DEFAULT */
    struct httpd_hooks hooks;
};

/* The access rules a request is judged by (from the config; replaced on SIGHUP). */
struct httpd_access {
    char api_token[DAEMON_TOKEN_MAX + 1];   /* "": none */
    char admin_token[DAEMON_TOKEN_MAX + 1]; /* "": none */
    char hosts[DAEMON_NAMES_MAX][DAEMON_NAME_MAX + 1];
    size_t n_hosts;
    char origins[DAEMON_NAMES_MAX][DAEMON_NAME_MAX + 1];
    size_t n_origins;
};

/* The listener a request came in on. */
struct httpd_peer {
    int is_unix;
    int loopback;
    const char *addr; /* as a Host header names it: "127.0.0.1", "[::1]" ("" for unix) */
    const char *port; /* decimal ("" for unix) */
};

/* The request line and the headers the gate reads (NULL: absent). */
struct httpd_head {
    const char *method, *url;
    const char *host, *origin, *authorization, *content_type, *content_length,
        *transfer_encoding;
};

void httpd_access_from_config(struct httpd_access *a, const struct daemon_config *cfg);
/* Judges a request before its body is read: 0 to go on (*privileged set: the unix socket or
 * the admin token), else the status to refuse it with and msg naming what was expected and
 * found: 421 Host, 403 Origin or privilege (POST /v1/sync), 401 token, 415 Content-Type, 413
 * Content-Length. A check's override is judged after its body is parsed (needs *privileged). */
unsigned httpd_gate(const struct httpd_access *a, const struct httpd_peer *p,
                    const struct httpd_head *r, int *privileged, char *msg, size_t cap);

struct httpd;

/* Binds every listener and starts serving. IO (errmsg names the address and the reason) when
 * an address cannot be bound; INVALID for a bad option. */
POSGATE_WUR enum posgate_err httpd_start(const struct httpd_options *opt, struct httpd **out,
                                         char *errmsg, size_t errcap);
/* Replaces the tokens and the allowed hosts and origins (from cfg, copied) for later
 * requests. */
void httpd_set_access(struct httpd *h, const struct daemon_config *cfg);
/* Stops accepting connections, lets requests in flight finish (at most grace_ms), stops the
 * server threads, removes unix socket files and frees h. NULL is a no-op. */
void httpd_stop(struct httpd *h, unsigned grace_ms);

/* Maps a sync outcome to an HTTP status, reported in sync.result.http_status: OK 200, NETWORK
 * (no mirror delivered) 502, REJECTED (the verifier refused the feed) 422, CONFIG (no feed_urls)
 * 409, STORE and DISK (the local store failed, the data dir's file system is full) 500. */
unsigned httpd_sync_status(enum posgated_sync_kind k);

/* The run-time libmicrohttpd version, for --version. */
const char *httpd_mhd_version(void);

#endif
