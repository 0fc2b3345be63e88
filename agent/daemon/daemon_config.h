/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The daemon's JSON codecs (cJSON is reached through json_parse_bounded only): the posgated
 * config file, the POST /v1/check request body, and the JSON the HTTP API answers with that is
 * not the check result itself (GET /v1/status with its "sync" object, the health summary behind
 * GET /healthz and /metrics, the POST /v1/sync acceptance and {"error": ...} bodies). Every key
 * of the config has a default (daemon_config_defaults); an unknown key or a wrong type is an
 * error that names the key. docs/daemon.md is the reference for every key.
 *
 *   {
 *     "data_dir": "/var/lib/posgate",          string
 *     "listen": ["127.0.0.1:8421"],            "A.B.C.D:PORT" | "[V6]:PORT" | "unix:/path"
 *     "allow_remote": false,                   a non-loopback TCP address needs true
 *     "feed_urls": [],                         http(s) base URLs of a feed directory, in order
 *     "poll_interval_s": 300,                  1 .. 604800
 *     "ca_file": null, "client_cert": null, "client_key": null, "proxy": null,
 *     "max_recv_bytes_per_s": 0,               0 = unlimited
 *     "api_token": null,                       TCP listeners require "Bearer TOKEN"
 *     "admin_token": null,                     TCP callers of privileged actions (overrides,
 *                                              POST /v1/sync) present "Bearer ADMIN_TOKEN"
 *     "allowed_hosts": [],                     Host names accepted besides the listener's
 *                                              address (and localhost on loopback)
 *     "allowed_origins": [],                   Origin values accepted (any other: 403)
 *     "socket_group": null,                    group of the unix socket files (mode 0660)
 *     "log_level": "info",                     debug | info | warn | error | off
 *     "audit_url": null,                       the collector's POST /v1/audit URL; null: no upload
 *     "audit_batch_max": 500,                  events per upload, 1 .. 10000
 *     "audit_upload_interval_s": 10,           1 .. 86400
 *     "audit_retention_days": 30,              acknowledged events kept, 0 .. 36500
 *     "audit_max_bytes": 268435456,            stored event text before ALLOWs fold; 0: unbounded
 *     "audit_durability": "batched",           batched | strict
 *     "http_threads": 16,                      request threads per listener, 1 .. 64
 *     "at_tolerance_s": 300,                   a check's service date may lie this far before
 *                                              now (clock skew), 0 .. 86400
 *     "at_horizon_days": 120                   ... and this far after it, 0 .. 3660
 *   }
 */
#ifndef POSGATE_DAEMON_CONFIG_H
#define POSGATE_DAEMON_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "plat_log.h"
#include "posgate.h"
#include "posgate_err.h"

#define DAEMON_CONFIG_MAX_BYTES         (64u * 1024u)
#define DAEMON_LISTEN_MAX               8
#define DAEMON_FEED_URLS_MAX            8
#define DAEMON_PATH_MAX                 1024
#define DAEMON_URL_MAX                  1024
#define DAEMON_UNIX_PATH_MAX            107 /* sun_path holds 108 bytes with the NUL */
#define DAEMON_TOKEN_MAX                256
#define DAEMON_POLL_MAX_S               604800
#define DAEMON_ERRMSG_MAX               512
#define DAEMON_CHECK_BODY_MAX           (64u * 1024u)
#define DAEMON_AUDIT_BATCH_MAX          10000 /* the collector's limit per batch */
#define DAEMON_AUDIT_INTERVAL_MAX_S     86400
#define DAEMON_AUDIT_RETENTION_MAX_DAYS 36500
#define DAEMON_HTTP_THREADS_MAX         64
#define DAEMON_HTTP_THREADS_DEFAULT     16
#define DAEMON_NAMES_MAX                8   /* allowed_hosts, allowed_origins */
#define DAEMON_NAME_MAX                 255 /* one host name or origin */
#define DAEMON_GROUP_MAX                64

enum daemon_listen_kind { DAEMON_LISTEN_TCP4, DAEMON_LISTEN_TCP6, DAEMON_LISTEN_UNIX };

struct daemon_listen {
    enum daemon_listen_kind kind;
    char text[DAEMON_URL_MAX];           /* as written in the config */
    uint8_t addr[16];                    /* network order: 4 bytes (TCP4) or 16 (TCP6) */
    uint16_t port;                       /* host order */
    int loopback;                        /* 1 for 127.0.0.0/8, ::1 and unix sockets */
    char path[DAEMON_UNIX_PATH_MAX + 1]; /* UNIX */
};

struct daemon_config {
    char data_dir[DAEMON_PATH_MAX];
    struct daemon_listen listen[DAEMON_LISTEN_MAX];
    size_t n_listen;
    int allow_remote;
    char feed_urls[DAEMON_FEED_URLS_MAX][DAEMON_URL_MAX];
    size_t n_feed_urls;
    int64_t poll_interval_s;
    char ca_file[DAEMON_PATH_MAX];        /* "" = null */
    char client_cert[DAEMON_PATH_MAX];    /* "" = null */
    char client_key[DAEMON_PATH_MAX];     /* "" = null */
    char proxy[DAEMON_URL_MAX];           /* "" = null */
    uint64_t max_recv_bytes_per_s;        /* 0 = unlimited */
    char api_token[DAEMON_TOKEN_MAX + 1]; /* "" = null (no token required) */
    char admin_token[DAEMON_TOKEN_MAX + 1]; /* "" = null (privileged only on unix sockets) */
    char allowed_hosts[DAEMON_NAMES_MAX][DAEMON_NAME_MAX + 1];
    size_t n_allowed_hosts;
    char allowed_origins[DAEMON_NAMES_MAX][DAEMON_NAME_MAX + 1];
    size_t n_allowed_origins;
    char socket_group[DAEMON_GROUP_MAX + 1]; /* "" = null (the daemon's own group) */
    enum plat_log_level log_level;
    char audit_url[DAEMON_URL_MAX]; /* "" = null (no upload) */
    int64_t audit_batch_max;
    int64_t audit_upload_interval_s;
    int64_t audit_retention_days;
    uint64_t audit_max_bytes; /* 0 = unbounded */
    int audit_strict;         /* 1: "strict", 0: "batched" */
    int64_t http_threads;     /* request threads per listener */
    int64_t at_tolerance_s;   /* service date bounds (posgate_set_check_window) */
    int64_t at_horizon_days;
};

/* The documented defaults. */
void daemon_config_defaults(struct daemon_config *c);
/* Parses a config document over the defaults into *out (written only on success). INVALID,
 * PARSE or TOOBIG with a message naming the key ("poll_interval_s: expected an integer from 1
 * to 604800, found \"5m\""). */
POSGATE_WUR enum posgate_err daemon_config_parse(const void *data, size_t len,
                                                 struct daemon_config *out, char *errmsg,
                                                 size_t errcap);
/* Reads and parses a config file; NOTFOUND / IO name the path. */
POSGATE_WUR enum posgate_err daemon_config_load(const char *path, struct daemon_config *out,
                                                char *errmsg, size_t errcap);
/* Parses one listen address ("127.0.0.1:8421", "[::1]:8421", "unix:/run/posgate.sock"). */
POSGATE_WUR enum posgate_err daemon_listen_parse(const char *s, struct daemon_listen *out,
                                                 char *errmsg, size_t errcap);

/* Parses a POST /v1/check body into rq (reset first): keys service (required), ids (array of
 * "TYPE:VALUE"), name and birth_date (together), operator, at; ids or name+birth_date
 * required. INVALID with a message that starts with the offending field ("ids[1]: ...",
 * "frobnicate: unknown key"); PARSE for malformed JSON; TOOBIG past DAEMON_CHECK_BODY_MAX. */
POSGATE_WUR enum posgate_err daemon_check_body_parse(const void *data, size_t len,
                                                     struct posgate_request *rq, char *errmsg,
                                                     size_t errcap);

/* The direct reader daemon_check_body_parse tries first: a body of the common form only, an
 * object of "service" and a non-empty "ids" array, each key once in either order, every value a
 * string without escapes or control bytes, JSON whitespace between. OK with rq filled exactly as
 * the general parser fills it for that body; PARSE for any other body (rq then unspecified: the
 * general parser resets it and judges the body, errors included). */
POSGATE_WUR enum posgate_err daemon_check_body_fast(const void *data, size_t len,
                                                    struct posgate_request *rq);

/* Checks every string of a request body on its raw JSON text (escapes decoded, \u0000
 * included): UTF-8 text without NUL or control characters, a newline allowed only inside
 * "ids". INVALID with a message naming the field ("operator: expected UTF-8 text ...");
 * malformed JSON is not judged here (the parser names it). */
POSGATE_WUR enum posgate_err daemon_body_text_check(const void *data, size_t len, char *errmsg,
                                                    size_t errcap);

/* What the audit uploader last did (times are wall seconds; 0 = never / none). */
struct daemon_audit_state {
    int enabled;     /* audit_url is set */
    int stopped;     /* a chain break (409) stopped the uploads */
    uint64_t queued; /* events stored and not yet acknowledged */
    uint64_t last_acked_seq;
    int64_t last_upload; /* last successful upload */
    int64_t next_upload;
    char last_error[DAEMON_ERRMSG_MAX]; /* "" = none */
};

/* What the sync loop last did (times are wall seconds; 0 = never / none). */
struct daemon_sync_state {
    int64_t last_attempt;
    int64_t last_success;
    int64_t next_attempt;
    char last_error[DAEMON_ERRMSG_MAX]; /* "" = none (the last attempt succeeded) */
    int running;
    uint64_t pending_id; /* the sync requested or running (POST /v1/sync's sync_id); 0: none */
    uint64_t last_id;    /* syncs finished: the id of the last one; 0: none yet */
    /* the last finished sync's result (when last_id > 0) */
    int last_ok;
    unsigned last_status;   /* what POST /v1/sync answered before it became asynchronous */
    const char *last_kind;  /* "ok", "network", "rejected", "store", "disk", "config" */
    int64_t last_feed_version;
    int last_changed;
    struct daemon_audit_state audit; /* reported beside "sync" as "audit" */
};

/* The health of the installed version, read from the status --json object. */
struct daemon_health {
    int ok;                         /* verified, not expired, no list stale, no clock fault */
    char reason[DAEMON_ERRMSG_MAX]; /* why not ok */
    int64_t feed_version;           /* 0: nothing installed */
    int64_t data_age_s;             /* the oldest list's age; -1 when unknown */
};

/* Fills h from the text of posgate_status_json. PARSE when it is not that object. */
POSGATE_WUR enum posgate_err daemon_health_from_status(const char *status_json,
                                                       struct daemon_health *h);
/* GET /v1/status: the status object with "sync": {last_attempt, last_success, last_error,
 * next_attempt, running, pending_id, result: {id, ok, kind, http_status, feed_version, changed,
 * error} or null} and "audit": {enabled, queued, last_acked_seq, last_upload,
 * last_error, next_upload, stopped} added (times RFC 3339 or null). */
POSGATE_WUR enum posgate_err daemon_status_with_sync(const char *status_json,
                                                     const struct daemon_sync_state *s,
                                                     struct buf *out);
/* The POST /v1/sync answer (202): {"sync_id", "running", "result"} where result names the
 * place of its outcome ("/v1/status sync.result, once sync.result.id >= sync_id"). */
POSGATE_WUR enum posgate_err daemon_sync_accepted_json(uint64_t id, int running,
                                                       struct buf *out);
/* {"error": msg} */
POSGATE_WUR enum posgate_err daemon_error_json(const char *msg, struct buf *out);
/* {"ok": bool, "reason": ...}: the /healthz body (reason only when not ok). */
POSGATE_WUR enum posgate_err daemon_health_json(const struct daemon_health *h, struct buf *out);

#endif
