/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The audit uploader's transport: libcurl behind one function that POSTs one audit batch (the
 * JSON of audit_batch_json, agent/audit/audit.h) gzip-compressed to the collector's /v1/audit
 * (docs/collector.md) and classifies the answer. It uses the same TLS, mTLS and proxy rules as
 * the fetcher (sync/transport/fetch.h): with ca_file that file is the only trust anchor, peer and host
 * name are always verified, a client certificate and key (PEM) for mTLS, the configured proxy
 * or none (the environment's *_proxy is ignored), no redirects, http/https only. The request
 * carries "Content-Type: application/json", "Content-Encoding: gzip" and "Idempotency-Key"
 * (the batch's own idempotency_key). The answer's body is read up to 64 KiB. The answer's
 * Date is kept (server_date), so the daemon can report its clock offset against the collector.
 *
 *   200 {"acked_seq": N, ...}          -> UPLOAD_OK, acked_seq (and held_seq when present)
 *   409 {"acked_seq", "broken_at", ...} -> UPLOAD_CHAIN_BREAK: stop, an operator must look
 *   422 (events the signed head does not cover: this kiosk's trail does not hash to what it
 *        signed, so the same batch will never be taken) -> UPLOAD_CHAIN_BREAK as well
 *   429 / 503 (+ Retry-After)           -> UPLOAD_THROTTLED, retry_after_s
 *   other 5xx                           -> UPLOAD_SERVER
 *   other 4xx                           -> UPLOAD_REFUSED (the same bytes will not do better)
 *   transport / TLS / timeout           -> UPLOAD_NETWORK / UPLOAD_TLS / UPLOAD_TIMEOUT
 *   200 without a usable acked_seq      -> UPLOAD_PROTOCOL
 *
 * Not thread-safe: one uploader per thread.
 */
#ifndef POSGATE_UPLOADER_H
#define POSGATE_UPLOADER_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "posgate_err.h"

#define UPLOADER_ERRMSG_MAX 512
#define UPLOADER_RESP_MAX   (64u * 1024u)
#define UPLOADER_BODY_MAX   (64u * 1024u * 1024u)

enum uploader_kind {
    UPLOAD_OK,
    UPLOAD_NETWORK, /* connection refused/reset, truncated answer */
    UPLOAD_TLS,     /* handshake, untrusted peer, bad client certificate */
    UPLOAD_TIMEOUT,
    UPLOAD_THROTTLED,   /* 429 or 503: retry after retry_after_s (0: not given) */
    UPLOAD_SERVER,      /* another 5xx */
    UPLOAD_REFUSED,     /* 400, 401, 403, 413, 415 and other 4xx */
    UPLOAD_CHAIN_BREAK, /* 409: the collector found a broken chain; 422: the batch's events
                           do not hash to its signed head */
    UPLOAD_PROTOCOL,    /* an answer the uploader cannot use */
    UPLOAD__COUNT
};

struct uploader_options {
    const char *url;         /* the collector's POST URL, e.g. "https://hub:8443/v1/audit" */
    const char *ca_file;     /* PEM bundle, the only trust for https; NULL: system store */
    const char *client_cert; /* PEM client certificate (mTLS); needs client_key */
    const char *client_key;
    const char *proxy;      /* NULL: none (env ignored) */
    long connect_timeout_s; /* 0: 10 */
    long timeout_s;         /* whole request; 0: 60 */
    const char *user_agent; /* NULL: "posgate/0.1" */
};

struct uploader_result {
    enum uploader_kind kind;
    long http_status;                /* 0 when no answer */
    uint64_t acked_seq;              /* OK and CHAIN_BREAK (when the body says) */
    uint64_t held_seq;               /* OK: highest seq held (acked_seq when absent) */
    uint64_t broken_at;              /* CHAIN_BREAK: the lowest broken seq (0: not given) */
    uint64_t retry_after_s;          /* THROTTLED: from Retry-After (0: not given) */
    size_t sent_bytes;               /* gzip bytes sent */
    int64_t server_date;             /* the answer's Date header, wall seconds; 0: none */
    char error[UPLOADER_ERRMSG_MAX]; /* "" on OK */
};

struct uploader;

/* INVALID (errmsg says which option) for a URL that is not http(s) with a host, or a
 * client_cert without client_key. opt is copied. */
POSGATE_WUR enum posgate_err uploader_new(const struct uploader_options *opt, struct uploader **out,
                                          char *errmsg, size_t errcap);
void uploader_free(struct uploader *u);

/* Compresses body (one batch JSON, at most UPLOADER_BODY_MAX bytes) and POSTs it; *res says
 * what happened. Returns OK when an answer was classified (whatever its kind), INVALID for a
 * body that is not a batch object with an idempotency_key, NOMEM. */
POSGATE_WUR enum posgate_err uploader_post(struct uploader *u, const void *body, size_t len,
                                           struct uploader_result *res);

/* POSTs a device status report (agent/core/device_report.h; JSON, at most UPLOADER_BODY_MAX) gzip-
 * compressed to the collector's status URL: the audit URL with its last path segment replaced
 * by "device-status" (https://hub/v1/audit -> https://hub/v1/device-status). 200 is UPLOAD_OK;
 * 429/503 UPLOAD_THROTTLED; other 5xx UPLOAD_SERVER; other answers UPLOAD_REFUSED; transport
 * failures as uploader_post. server_date is filled from any answer. */
POSGATE_WUR enum posgate_err uploader_post_status(struct uploader *u, const void *body, size_t len,
                                                  struct uploader_result *res);

/* gzip (RFC 1952) of in into out (reset first). */
POSGATE_WUR enum posgate_err uploader_gzip(const void *in, size_t len, struct buf *out);
/* The batch's top-level "idempotency_key" (1..128 printable ASCII) into key. INVALID when
 * absent or malformed, PARSE when body is not JSON. */
POSGATE_WUR enum posgate_err uploader_batch_key(const void *body, size_t len, char *key,
                                                size_t cap);
/* Classifies an HTTP answer (status, body, Retry-After header value or NULL, now in wall
 * seconds) into res (kind, acked_seq, held_seq, broken_at, retry_after_s, error). */
void uploader_classify(long status, const char *body, size_t len, const char *retry_after,
                       int64_t now, struct uploader_result *res);
/* Prometheus label of a kind: "ok", "network", "tls", "timeout", "throttled", "server",
 * "refused", "chain_break", "protocol". */
const char *uploader_kind_name(enum uploader_kind k);

#endif
