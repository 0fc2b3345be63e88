/* SPDX-License-Identifier: Apache-2.0 */
/*
 * posgate-hub's answers to HTTP requests (hub_internal.h), for libmicrohttpd's threads. The
 * collector: POST /v1/audit and POST /v1/device-status (docs/collector.md), whose bodies are
 * refused before they are read when too large or when their peer has too many on the way, and
 * are judged by hub_db.c once whole; GET /v1/decisions/{id} for the bearer of the auditor
 * token. The feed: any other path names a file under --feed, resolved with realpath and kept
 * inside the feed directory (403 for a ".." segment or a link that leads out, 404 for anything
 * missing or not a regular file), served with ETag ("<size hex>-<mtime ns hex>"),
 * Last-Modified, conditional requests (304) and single byte ranges (206/416, If-Range); only
 * GET and HEAD (405). With --tls-client-ca the feed and the collector's POSTs want a client
 * certificate signed by that CA (403 without one); gnutls is included here only to check it.
 */
#define _DEFAULT_SOURCE
#include "hub_internal.h"

#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <stdint.h>
#include <netinet/in.h>

#include "buf.h"
#include "crypto.h"
#include "fetch.h"
#include "hub_dashboard.h"
#include "hub_report.h"
#include "hub_text.h"
#include "hub_throttle.h"
#include "plat_clock.h"
#include "plat_log.h"


/* One peer with audit bodies in progress. */
struct hub_peer {
    uint8_t key[HUB_PEER_KEY];
    unsigned bodies;
};

/* One connection's request: an audit POST keeps its body here. */
struct hub_req {
    int audit;     /* POST /v1/audit or /v1/device-status: a body for the collector */
    int status;    /* POST /v1/device-status */
    int counted;   /* holds one of max_inflight (taken once the whole body is here) */
    int receiving; /* holds one of its peer's peer_bodies (while the body arrives) */
    int too_big;
    uint64_t started_ns; /* when the headers were complete */
    uint8_t peer[HUB_PEER_KEY];
    struct buf body;
};

static int
etag_matches(const char *list, const char *etag)
{
    /* If-None-Match: "*" or a comma-separated list of (possibly W/) entity tags */
    const char *p = list;
    size_t el = strlen(etag);

    while (*p != 0) {
        const char *start;
        size_t n;

        while (*p == ' ' || *p == ',' || *p == '\t') {
            p++;
        }
        if (*p == '*') {
            return 1;
        }
        if (strncmp(p, "W/", 2) == 0) {
            p += 2;
        }
        start = p;
        while (*p != 0 && *p != ',') {
            p++;
        }
        n = (size_t)(p - start);
        while (n > 0 && (start[n - 1] == ' ' || start[n - 1] == '\t')) {
            n--;
        }
        if (n == el && memcmp(start, etag, n) == 0) {
            return 1;
        }
    }
    return 0;
}

int
hub_parse_u64(const char *s, size_t n, uint64_t *out)
{
    uint64_t v = 0;

    if (n == 0 || n > 19) {
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return 0;
        }
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    *out = v;
    return 1;
}

/* One "bytes=A-B" / "bytes=A-" / "bytes=-N" range. Returns 1 and the range, 0 to ignore the
 * header (malformed or several ranges: RFC 9110 allows serving the whole file), -1 when
 * unsatisfiable. */
static int
parse_range(const char *h, uint64_t size, uint64_t *first, uint64_t *last)
{
    const char *dash;
    uint64_t a = 0, b = 0;

    if (strncmp(h, "bytes=", 6) != 0 || strchr(h, ',') != NULL) {
        return 0;
    }
    h += 6;
    dash = strchr(h, '-');
    if (dash == NULL) {
        return 0;
    }
    if (dash == h) {
        if (!hub_parse_u64(dash + 1, strlen(dash + 1), &b)) {
            return 0;
        }
        if (b == 0 || size == 0) {
            return -1;
        }
        *first = b >= size ? 0 : size - b;
        *last = size - 1;
        return 1;
    }
    if (!hub_parse_u64(h, (size_t)(dash - h), &a)) {
        return 0;
    }
    if (dash[1] == 0) {
        b = UINT64_MAX;
    } else if (!hub_parse_u64(dash + 1, strlen(dash + 1), &b) || b < a) {
        return 0;
    }
    if (a >= size) {
        return -1;
    }
    *first = a;
    *last = b >= size ? size - 1 : b;
    return 1;
}

static enum MHD_Result
simple(struct MHD_Connection *conn, unsigned status, const char *text, const char *method,
       const char *url)
{
    struct MHD_Response *r =
        MHD_create_response_from_buffer(strlen(text), (void *)text, MHD_RESPMEM_PERSISTENT);
    enum MHD_Result ret;

    if (r == NULL) {
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", "text/plain; charset=utf-8");
    if (status == MHD_HTTP_METHOD_NOT_ALLOWED) {
        MHD_add_response_header(r, "Allow", "GET, HEAD");
    }
    ret = MHD_queue_response(conn, status, r);
    MHD_destroy_response(r);
    plat_log(PLAT_LOG_INFO, "%s %s %u", method, url, status);
    return ret;
}

int
hub_tls_trust_new(const char *pem, size_t len, void **out)
{
    gnutls_x509_trust_list_t tl = NULL;
    gnutls_datum_t d = {(unsigned char *)(uintptr_t)pem, (unsigned)len};

    *out = NULL;
    if (len > UINT32_MAX || gnutls_x509_trust_list_init(&tl, 0) != 0) {
        return -1;
    }
    if (gnutls_x509_trust_list_add_trust_mem(tl, &d, NULL, GNUTLS_X509_FMT_PEM, 0, 0) <= 0) {
        gnutls_x509_trust_list_deinit(tl, 1);
        return -1;
    }
    *out = tl;
    return 0;
}

void
hub_tls_trust_free(void *trust)
{
    if (trust != NULL) {
        gnutls_x509_trust_list_deinit(trust, 1);
    }
}

#define PEER_CHAIN_MAX 8

/* 1 when the connection's client presented a certificate chain that trust verifies for TLS
 * client authentication (signature, validity dates, key purpose), else 0. The handshake itself
 * asked for a certificate of any CA MHD was given (--tls-client-ca and --admin-client-ca): which
 * one signed it is decided here, per use. */
static int
client_of(struct MHD_Connection *conn, void *trust)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_GNUTLS_SESSION);
    gnutls_typed_vdata_st purpose = {GNUTLS_DT_KEY_PURPOSE_OID,
                                     (unsigned char *)(uintptr_t)GNUTLS_KP_TLS_WWW_CLIENT, 0};
    gnutls_x509_crt_t crt[PEER_CHAIN_MAX];
    const gnutls_datum_t *raw;
    gnutls_session_t s;
    unsigned n = 0, made = 0, status = 1;
    int ok = 0;

    if (trust == NULL || ci == NULL || ci->tls_session == NULL) {
        return 0;
    }
    s = (gnutls_session_t)ci->tls_session;
    if (gnutls_certificate_type_get(s) != GNUTLS_CRT_X509 ||
        (raw = gnutls_certificate_get_peers(s, &n)) == NULL || n == 0 || n > PEER_CHAIN_MAX) {
        return 0;
    }
    for (; made < n; made++) {
        if (gnutls_x509_crt_init(&crt[made]) != 0) {
            break;
        }
        if (gnutls_x509_crt_import(crt[made], &raw[made], GNUTLS_X509_FMT_DER) != 0) {
            made++;
            break;
        }
    }
    if (made == n) {
        ok = gnutls_x509_trust_list_verify_crt2(trust, crt, n, &purpose, 1, 0, &status, NULL) ==
                 0 &&
             status == 0;
    }
    for (unsigned i = 0; i < made; i++) {
        gnutls_x509_crt_deinit(crt[i]);
    }
    return ok;
}

/* The client certificate check of --tls-client-ca: a kiosk's. */
static int
client_ok(const struct hub *h, struct MHD_Connection *conn)
{
    return client_of(conn, h->kiosk_trust);
}

/* ---- the audit collector: POST /v1/audit ---- */

static enum MHD_Result
reply_json(struct MHD_Connection *conn, unsigned status, const struct buf *body,
           unsigned retry_after, const char *method, const char *url)
{
    static const char oom[] = "{\"error\":\"out of memory\"}";
    struct MHD_Response *r;
    enum MHD_Result ret;
    char ra[16];

    if (body->len == 0) {
        status = MHD_HTTP_SERVICE_UNAVAILABLE;
        retry_after = retry_after > 0 ? retry_after : 1;
        r = MHD_create_response_from_buffer(sizeof(oom) - 1, (void *)oom, MHD_RESPMEM_PERSISTENT);
    } else {
        r = MHD_create_response_from_buffer(body->len, body->data, MHD_RESPMEM_MUST_COPY);
    }
    if (r == NULL) {
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", "application/json");
    if (status == MHD_HTTP_METHOD_NOT_ALLOWED) {
        MHD_add_response_header(r, "Allow", "POST");
    }
    if (retry_after > 0) {
        snprintf(ra, sizeof(ra), "%u", retry_after);
        MHD_add_response_header(r, "Retry-After", ra);
    }
    ret = MHD_queue_response(conn, status, r);
    MHD_destroy_response(r);
    plat_log(PLAT_LOG_INFO, "%s %s %u %.*s", method, url, status,
             (int)(body->len > 300 ? 300 : body->len),
             body->len > 0 ? (const char *)body->data : "");
    return ret;
}

static enum MHD_Result
reply_error(struct MHD_Connection *conn, unsigned status, const char *msg, unsigned retry_after,
            const char *method, const char *url)
{
    struct buf b = BUF_INIT(4096);
    enum MHD_Result ret;

    if (buf_append_str(&b, "{\"error\":") != POSGATE_OK || hub_json_str(&b, msg) != POSGATE_OK ||
        buf_append_str(&b, "}") != POSGATE_OK) {
        buf_reset(&b);
    }
    ret = reply_json(conn, status, &b, retry_after, method, url);
    buf_free(&b);
    return ret;
}

/* "application/json" with optional parameters, case-insensitive. */
static int
is_json_type(const char *ct)
{
    static const char want[] = "application/json";
    size_t n = sizeof(want) - 1;

    if (ct == NULL || strncasecmp(ct, want, n) != 0) {
        return 0;
    }
    ct += n;
    while (*ct == ' ' || *ct == '\t') {
        ct++;
    }
    return *ct == 0 || *ct == ';';
}

/* What POST /v1/audit and POST /v1/device-status check before their body is judged, in this
 * order: the method (only_post: the 405's message), the client certificate, the size (too_big:
 * the 413's message), Content-Type, then Content-Encoding (a gzip body is decoded into plain,
 * which bounds it). 1 with the body to judge in *json and *len, or 0 with the refusal queued in
 * *ret. */
static int
upload_body(struct hub *h, struct MHD_Connection *conn, struct hub_req *rq, const char *only_post,
            const char *too_big, struct buf *plain, const void **json, size_t *len,
            const char *method, const char *url, enum MHD_Result *ret)
{
    const char *ce;
    char msg[512] = "";
    enum posgate_err err;

    if (strcmp(method, "POST") != 0) {
        *ret = reply_error(conn, MHD_HTTP_METHOD_NOT_ALLOWED, only_post, 0, method, url);
        return 0;
    }
    if (h->client_ca && !client_ok(h, conn)) {
        *ret = reply_error(conn, MHD_HTTP_FORBIDDEN,
                           "a client certificate signed by the hub's client CA is required", 0,
                           method, url);
        return 0;
    }
    if (rq->too_big) {
        *ret = reply_error(conn, MHD_HTTP_CONTENT_TOO_LARGE, too_big, 0, method, url);
        return 0;
    }
    if (!is_json_type(MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Type"))) {
        *ret = reply_error(conn, MHD_HTTP_UNSUPPORTED_MEDIA_TYPE,
                           "expected Content-Type: application/json", 0, method, url);
        return 0;
    }
    *json = rq->body.data;
    *len = rq->body.len;
    ce = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Encoding");
    if (ce != NULL && strcasecmp(ce, "gzip") == 0) {
        err = hub_gunzip(rq->body.data, rq->body.len, plain, msg, sizeof(msg));
        if (err != POSGATE_OK) {
            *ret = reply_error(
                conn, err == POSGATE_ERR_TOOBIG ? MHD_HTTP_CONTENT_TOO_LARGE : MHD_HTTP_BAD_REQUEST,
                msg[0] != 0 ? msg : posgate_strerror(err), 0, method, url);
            return 0;
        }
        *json = plain->data;
        *len = plain->len;
    } else if (ce != NULL && strcasecmp(ce, "identity") != 0) {
        *ret = reply_error(conn, MHD_HTTP_UNSUPPORTED_MEDIA_TYPE,
                           "expected Content-Encoding gzip or none", 0, method, url);
        return 0;
    }
    return 1;
}

/* The HTTP status of what the collector said of a body (docs/collector.md): 409 for a chain
 * break the device signed, 422 for events its signed head does not cover. */
static unsigned
upload_status(enum posgate_err err)
{
    switch (err) {
    case POSGATE_ERR_OK:
        return MHD_HTTP_OK;
    case POSGATE_ERR_BADHASH:
        return MHD_HTTP_CONFLICT;
    case POSGATE_ERR_REJECTED:
        return MHD_HTTP_UNPROCESSABLE_CONTENT;
    case POSGATE_ERR_PARSE:
    case POSGATE_ERR_INVALID:
        return MHD_HTTP_BAD_REQUEST;
    case POSGATE_ERR_TOOBIG:
        return MHD_HTTP_CONTENT_TOO_LARGE;
    case POSGATE_ERR_NOTFOUND:
        return MHD_HTTP_FORBIDDEN;
    case POSGATE_ERR_BADSIG:
        return MHD_HTTP_UNAUTHORIZED;
    case POSGATE_ERR_RETRY:
    case POSGATE_ERR_NOMEM:
        return MHD_HTTP_SERVICE_UNAVAILABLE;
    case POSGATE_ERR_IO:
    case POSGATE_ERR_USAGE:
    case POSGATE_ERR_ROLLBACK:
    case POSGATE_ERR_EXPIRED:
    case POSGATE_ERR_UNSUPPORTED:
    case POSGATE_ERR_CORRUPT:
    case POSGATE_ERR_STATE:
    case POSGATE_ERR_NETWORK:
    case POSGATE_ERR__COUNT:
    default:
        return MHD_HTTP_INTERNAL_SERVER_ERROR;
    }
}

/* The answer to a batch stored (200) or to a chain break or an uncovered event (409, 422). */
static enum posgate_err
audit_answer(struct buf *out, enum posgate_err err, const struct hub_ingest *res)
{
    enum posgate_err e2;

    if (err == POSGATE_OK) {
        e2 = buf_printf(out,
                        "{\"acked_seq\":%llu,\"device_id\":\"%s\",\"duplicates\":%zu,"
                        "\"held_seq\":%llu,\"repeated\":%s,\"stored\":%zu",
                        (unsigned long long)res->acked_seq, res->device_id, res->duplicates,
                        (unsigned long long)res->held_seq, res->repeated_key ? "true" : "false",
                        res->stored);
        if (e2 == POSGATE_OK && res->gap_to != 0) {
            e2 = buf_printf(out, ",\"gap\":[%llu,%llu]", (unsigned long long)res->gap_from,
                            (unsigned long long)res->gap_to);
        }
        return e2 == POSGATE_OK ? buf_append_str(out, "}") : e2;
    }
    /* a break the device signed (409, recorded), or events the signed head does not cover
     * (422, nothing recorded) */
    e2 = buf_printf(out, "{\"acked_seq\":%llu,\"broken_at\":%llu,\"error\":",
                    (unsigned long long)res->acked_seq, (unsigned long long)res->broken_at);
    if (e2 == POSGATE_OK) {
        e2 = hub_json_str(out, res->error);
    }
    if (e2 == POSGATE_OK) {
        e2 = buf_printf(out, ",\"held_seq\":%llu}", (unsigned long long)res->held_seq);
    }
    return e2;
}

static enum MHD_Result
handle_audit(struct hub *h, struct MHD_Connection *conn, struct hub_req *rq, const char *method,
             const char *url)
{
    const char *idem;
    struct buf plain = BUF_INIT(HUB_BATCH_JSON_MAX), out = BUF_INIT(4096);
    const void *json;
    size_t len;
    struct hub_ingest res;
    char too_big[128];
    enum posgate_err err;
    enum MHD_Result ret;
    unsigned status;

    snprintf(too_big, sizeof(too_big), "request body larger than %zu bytes", h->max_body);
    if (!upload_body(h, conn, rq, "only POST at " HUB_AUDIT_PATH, too_big, &plain, &json, &len,
                     method, url, &ret)) {
        buf_free(&plain);
        return ret;
    }
    idem = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Idempotency-Key");
    err = hub_db_ingest_json(h->db, json, len, idem, plat_wall_s(), &res);
    status = upload_status(err);
    if (status == MHD_HTTP_OK || status == MHD_HTTP_CONFLICT ||
        status == MHD_HTTP_UNPROCESSABLE_CONTENT) {
        if (audit_answer(&out, err, &res) != POSGATE_OK) {
            buf_reset(&out);
        }
        ret = reply_json(conn, status, &out, 0, method, url);
    } else {
        ret = reply_error(conn, status, res.error[0] != 0 ? res.error : posgate_strerror(err),
                          status == MHD_HTTP_SERVICE_UNAVAILABLE ? 2 : 0, method, url);
    }
    buf_free(&plain);
    buf_free(&out);
    return ret;
}

static int
is_collector_path(const char *url)
{
    return strcmp(url, HUB_AUDIT_PATH) == 0 || strcmp(url, HUB_STATUS_PATH) == 0;
}

/* POST /v1/device-status: a device status report (docs/collector.md, "Device status"), under
 * the same body limits and client certificate rule as an audit batch. */
static enum MHD_Result
handle_status(struct hub *h, struct MHD_Connection *conn, struct hub_req *rq, const char *method,
              const char *url)
{
    struct buf plain = BUF_INIT(HUB_REPORT_MAX), out = BUF_INIT(512);
    const void *json;
    size_t len;
    struct hub_report_result res;
    enum posgate_err err;
    enum MHD_Result ret;
    unsigned status;

    if (!upload_body(h, conn, rq, "only POST at " HUB_STATUS_PATH, "request body too large", &plain,
                     &json, &len, method, url, &ret)) {
        buf_free(&plain);
        return ret;
    }
    err = hub_db_report(h->db, json != NULL ? json : "", len, plat_wall_s(), &res);
    /* a report is no chain: those two are not its answers */
    status = err == POSGATE_ERR_BADHASH || err == POSGATE_ERR_REJECTED
                 ? MHD_HTTP_INTERNAL_SERVER_ERROR
                 : upload_status(err);
    if (status == MHD_HTTP_OK &&
        buf_printf(&out, "{\"device_id\":\"%s\",\"latest\":%s,\"reported_at_us\":%lld}",
                   res.device_id, res.latest ? "true" : "false",
                   (long long)res.reported_at_us) == POSGATE_OK) {
        ret = reply_json(conn, status, &out, 0, method, url);
    } else {
        ret = reply_error(conn, status == MHD_HTTP_OK ? MHD_HTTP_INTERNAL_SERVER_ERROR : status,
                          res.error[0] != 0 ? res.error : posgate_strerror(err),
                          status == MHD_HTTP_SERVICE_UNAVAILABLE ? 2 : 0, method, url);
    }
    buf_free(&plain);
    buf_free(&out);
    return ret;
}

/* Takes one of the peer's body slots: 1, or 0 when it holds h->peer_bodies already (or memory
 * ran out: refused the same way, retried later). */
static int
peer_take(struct hub *h, const uint8_t key[HUB_PEER_KEY])
{
    int ok = 0;
    size_t i;

    pthread_mutex_lock(&h->peers_mu);
    for (i = 0; i < h->n_peers; i++) {
        if (memcmp(h->peers[i].key, key, HUB_PEER_KEY) == 0) {
            break;
        }
    }
    if (i == h->n_peers) {
        if (h->n_peers == h->cap_peers) {
            size_t nc = h->cap_peers > 0 ? h->cap_peers * 2 : 16;
            void *p = realloc(h->peers, nc * sizeof(*h->peers));

            if (p == NULL) {
                goto out;
            }
            h->peers = p;
            h->cap_peers = nc;
        }
        memcpy(h->peers[i].key, key, HUB_PEER_KEY);
        h->peers[i].bodies = 0;
        h->n_peers++;
    }
    if (h->peers[i].bodies < h->peer_bodies) {
        h->peers[i].bodies++;
        ok = 1;
    }
out:
    pthread_mutex_unlock(&h->peers_mu);
    return ok;
}

static void
peer_give(struct hub *h, const uint8_t key[HUB_PEER_KEY])
{
    pthread_mutex_lock(&h->peers_mu);
    for (size_t i = 0; i < h->n_peers; i++) {
        if (memcmp(h->peers[i].key, key, HUB_PEER_KEY) == 0) {
            if (--h->peers[i].bodies == 0) {
                h->peers[i] = h->peers[--h->n_peers]; /* the table holds active peers only */
            }
            break;
        }
    }
    pthread_mutex_unlock(&h->peers_mu);
}

void
hub_http_completed(void *cls, struct MHD_Connection *conn, void **ctx,
                   enum MHD_RequestTerminationCode toe)
{
    struct hub *h = cls;
    struct hub_req *rq = *ctx;

    (void)conn;
    (void)toe;
    if (rq == NULL) {
        return;
    }
    if (rq->counted) {
        atomic_fetch_sub(&h->inflight, 1u);
    }
    if (rq->receiving) {
        peer_give(h, rq->peer);
    }
    buf_free(&rq->body);
    free(rq);
    *ctx = NULL;
}

/* The first call for a request: decides what it is, and refuses an oversized audit POST, or
 * one past its peer's bodies in progress, before its body is read. An upload slot
 * (max_inflight) is taken only once the whole body is here (handle_collector): a client that
 * sends slowly holds its own peer's slots, never the fleet's. */
static enum MHD_Result
on_headers(struct hub *h, struct MHD_Connection *conn, const char *url, const char *method,
           void **ctx)
{
    struct hub_req *rq = calloc(1, sizeof(*rq));
    const char *cl;
    uint64_t n;

    if (rq == NULL) {
        return MHD_NO;
    }
    *ctx = rq;
    rq->status = strcmp(url, HUB_STATUS_PATH) == 0;
    if (h->db == NULL || !is_collector_path(url) || strcmp(method, "POST") != 0) {
        rq->audit = h->db != NULL && is_collector_path(url);
        return MHD_YES;
    }
    rq->audit = 1;
    buf_init(&rq->body, h->max_body);
    cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Length");
    if (cl != NULL && hub_parse_u64(cl, strlen(cl), &n) && n > h->max_body) {
        char msg[128];

        snprintf(msg, sizeof(msg), "request body of %llu bytes, at most %zu are taken",
                 (unsigned long long)n, h->max_body);
        return reply_error(conn, MHD_HTTP_CONTENT_TOO_LARGE, msg, 0, method, url);
    }
    if (hub_peer_key(conn, rq->peer)) {
        if (!peer_take(h, rq->peer)) {
            char msg[128];

            snprintf(msg, sizeof(msg),
                     "%u uploads from this address are still arriving, at most %u at once; "
                     "retry later",
                     h->peer_bodies, h->peer_bodies);
            return reply_error(conn, MHD_HTTP_TOO_MANY_REQUESTS, msg, 1, method, url);
        }
        rq->receiving = 1;
    }
    rq->started_ns = plat_mono_ns();
    return MHD_YES;
}

/* GET /v1/decisions/{id}: the contest answer (hub_db_lookup: the lookup is recorded), for a
 * bearer of the auditor token only. */
static enum MHD_Result
handle_decision(struct hub *h, struct MHD_Connection *conn, const char *id, const char *method)
{
    const char *auth = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Authorization");
    struct buf out = BUF_INIT(1024 * 1024);
    uint8_t got[CRYPTO_SHA256_LEN], want[CRYPTO_SHA256_LEN];
    unsigned retry = 0;
    enum posgate_err err;
    enum MHD_Result ret;

    if (strcmp(method, "GET") != 0) {
        return reply_error(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "use GET", 0, method,
                           "/v1/decisions/");
    }
    if (h->db == NULL || h->auditor_token == NULL) {
        return reply_error(conn, MHD_HTTP_FORBIDDEN,
                           "this hub answers no decision queries (--db and --auditor-token)", 0,
                           method, "/v1/decisions/");
    }
    if (auth == NULL || strncmp(auth, "Bearer ", 7) != 0) {
        return reply_error(conn, MHD_HTTP_UNAUTHORIZED, "auditor bearer token required", 0, method,
                           "/v1/decisions/");
    }
    if (hub_throttle_blocked(h->throttle, conn, &retry)) {
        return reply_error(conn, MHD_HTTP_TOO_MANY_REQUESTS,
                           "too many wrong tokens from this address: try again later", retry,
                           method, "/v1/decisions/");
    }
    /* compared as hashes: in a time that depends on neither token's bytes nor length */
    crypto_sha256(auth + 7, strlen(auth + 7), got);
    crypto_sha256(h->auditor_token, strlen(h->auditor_token), want);
    if (!crypto_equal(got, want, sizeof(got))) {
        hub_throttle_failed(h->throttle, conn);
        return reply_error(conn, MHD_HTTP_FORBIDDEN, "not the auditor token", 0, method,
                           "/v1/decisions/");
    }
    if (!hub_lower_hex(id, 32)) {
        return reply_error(conn, MHD_HTTP_BAD_REQUEST, "a decision id is 32 lowercase hex", 0,
                           method, "/v1/decisions/");
    }
    err = hub_db_lookup(h->db, id, h->root_len > 0 ? h->root : NULL, true, "http", plat_wall_s(),
                        &out);
    if (err == POSGATE_ERR_NOTFOUND) {
        ret = reply_error(conn, MHD_HTTP_NOT_FOUND, "no decision with that id is held", 0, method,
                          "/v1/decisions/");
    } else if (err != POSGATE_OK) {
        ret = reply_error(conn, MHD_HTTP_SERVICE_UNAVAILABLE, posgate_strerror(err), 5, method,
                          "/v1/decisions/");
    } else {
        ret = reply_json(conn, MHD_HTTP_OK, &out, 0, method, "/v1/decisions/");
    }
    buf_free(&out);
    return ret;
}

/* A piece of a request's body. An audit POST keeps it (past max_body it reads on and answers
 * 413 at the end) unless its body timeout has passed; any other body is dropped. */
static enum MHD_Result
on_upload(struct hub *h, struct hub_req *rq, const char *url, const char *method,
          const char *upload_data, size_t *upload_data_size)
{
    if (rq->audit && strcmp(method, "POST") == 0 &&
        plat_mono_ns() - rq->started_ns > h->body_timeout_ns) {
        /* MHD cannot answer in the middle of a body: the connection is closed */
        plat_log(PLAT_LOG_INFO,
                 "%s %s: body not complete within %llu s, %zu bytes read: "
                 "connection closed",
                 method, url, (unsigned long long)(h->body_timeout_ns / 1000000000u), rq->body.len);
        return MHD_NO;
    }
    if (rq->audit && strcmp(method, "POST") == 0 && !rq->too_big &&
        buf_append(&rq->body, upload_data, *upload_data_size) != POSGATE_OK) {
        rq->too_big = 1; /* read on, answer 413 at the end */
        buf_free(&rq->body);
    }
    *upload_data_size = 0; /* otherwise a body we do not want: drop it */
    return MHD_YES;
}

/* A collector request whose body is all here: its peer's slot is given back and an upload
 * slot (max_inflight) taken, then the route answers. */
static enum MHD_Result
handle_collector(struct hub *h, struct MHD_Connection *conn, struct hub_req *rq, const char *method,
                 const char *url)
{
    if (rq->receiving) {
        peer_give(h, rq->peer); /* the whole body is here */
        rq->receiving = 0;
    }
    if (strcmp(method, "POST") == 0 && !rq->counted) {
        rq->counted = 1;
        if (atomic_fetch_add(&h->inflight, 1u) >= h->max_inflight) {
            return reply_error(conn, MHD_HTTP_TOO_MANY_REQUESTS,
                               "too many uploads at once, retry later", 1, method, url);
        }
    }
    return rq->status ? handle_status(h, conn, rq, method, url)
                      : handle_audit(h, conn, rq, method, url);
}

/* The feed's file that url names, opened into *fd and *st: 1, or 0 with the refusal (404,
 * 405, 403) queued in *ret. */
static int
feed_open(struct hub *h, struct MHD_Connection *conn, const char *url, const char *method, int *fd,
          struct stat *st, enum MHD_Result *ret)
{
    char path[PATH_MAX * 2], real[PATH_MAX];

    if (h->root_len == 0) {
        *ret =
            simple(conn, MHD_HTTP_NOT_FOUND,
                   h->db != NULL
                       ? "not found (this hub collects audit batches at POST " HUB_AUDIT_PATH ")\n"
                       : "not found\n",
                   method, url);
        return 0;
    }
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
        *ret = simple(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "only GET and HEAD\n", method, url);
        return 0;
    }
    if (h->client_ca && !client_ok(h, conn)) {
        *ret =
            simple(conn, MHD_HTTP_FORBIDDEN,
                   "a client certificate signed by the hub's client CA is required\n", method, url);
        return 0;
    }
    if (url[0] != '/' || strstr(url, "/../") != NULL || strstr(url, "/./") != NULL ||
        (strlen(url) >= 3 && strcmp(url + strlen(url) - 3, "/..") == 0) ||
        (strlen(url) >= 2 && strcmp(url + strlen(url) - 2, "/.") == 0) || strchr(url, '\\')) {
        *ret = simple(conn, MHD_HTTP_FORBIDDEN, "path outside the feed\n", method, url);
        return 0;
    }
    if ((size_t)snprintf(path, sizeof(path), "%s%s", h->root, url) >= sizeof(path)) {
        *ret = simple(conn, MHD_HTTP_NOT_FOUND, "not found\n", method, url);
        return 0;
    }
    if (realpath(path, real) == NULL) {
        *ret = simple(conn, MHD_HTTP_NOT_FOUND, "not found\n", method, url);
        return 0;
    }
    if (strncmp(real, h->root, h->root_len) != 0 || real[h->root_len] != '/') {
        *ret = simple(conn, MHD_HTTP_FORBIDDEN,
                      "not a file of the feed (the feed directory itself, or a link leading "
                      "out of it)\n",
                      method, url);
        return 0;
    }
    *fd = open(real, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (*fd < 0 || fstat(*fd, st) != 0 || !S_ISREG(st->st_mode)) {
        if (*fd >= 0) {
            close(*fd);
        }
        *ret = simple(conn, MHD_HTTP_NOT_FOUND, "not found\n", method, url);
        return 0;
    }
    return 1;
}

/* 304: the client's copy is current. */
static enum MHD_Result
reply_not_modified(struct MHD_Connection *conn, const char *etag, const char *lm,
                   const char *method, const char *url)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
    enum MHD_Result ret;

    if (r == NULL) {
        return MHD_NO;
    }
    MHD_add_response_header(r, "ETag", etag);
    MHD_add_response_header(r, "Last-Modified", lm);
    ret = MHD_queue_response(conn, MHD_HTTP_NOT_MODIFIED, r);
    MHD_destroy_response(r);
    plat_log(PLAT_LOG_INFO, "%s %s 304", method, url);
    return ret;
}

/* 416: the range asked for starts past the end of the file. */
static enum MHD_Result
reply_unsatisfiable(struct MHD_Connection *conn, uint64_t size, const char *range,
                    const char *method, const char *url)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
    enum MHD_Result ret;
    char cr[96];

    if (r == NULL) {
        return MHD_NO;
    }
    snprintf(cr, sizeof(cr), "bytes */%llu", (unsigned long long)size);
    MHD_add_response_header(r, "Content-Range", cr);
    ret = MHD_queue_response(conn, MHD_HTTP_RANGE_NOT_SATISFIABLE, r);
    MHD_destroy_response(r);
    plat_log(PLAT_LOG_INFO, "%s %s 416 (%s)", method, url, range);
    return ret;
}

/* 200 with the whole file, or 206 with bytes first..last of it (partial); fd passes to MHD. */
static enum MHD_Result
reply_file(struct MHD_Connection *conn, int fd, uint64_t size, uint64_t first, uint64_t last,
           int partial, const char *etag, const char *lm, const char *method, const char *url)
{
    struct MHD_Response *r;
    enum MHD_Result ret;
    unsigned status = MHD_HTTP_OK;
    char cr[96], len[32];

    r = MHD_create_response_from_fd_at_offset64(size == 0 ? 0 : last - first + 1, fd, first);
    if (r == NULL) {
        close(fd);
        return MHD_NO;
    }
    MHD_add_response_header(r, "ETag", etag);
    MHD_add_response_header(r, "Last-Modified", lm);
    MHD_add_response_header(r, "Accept-Ranges", "bytes");
    MHD_add_response_header(r, "Content-Type",
                            strlen(url) > 5 && strcmp(url + strlen(url) - 5, ".json") == 0
                                ? "application/json"
                                : "application/octet-stream");
    if (partial) {
        snprintf(cr, sizeof(cr), "bytes %llu-%llu/%llu", (unsigned long long)first,
                 (unsigned long long)last, (unsigned long long)size);
        MHD_add_response_header(r, "Content-Range", cr);
        status = MHD_HTTP_PARTIAL_CONTENT;
    }
    ret = MHD_queue_response(conn, status, r);
    MHD_destroy_response(r);
    snprintf(len, sizeof(len), "%llu", (unsigned long long)(size == 0 ? 0 : last - first + 1));
    plat_log(PLAT_LOG_INFO, "%s %s %u %s bytes", method, url, status, len);
    return ret;
}

/* GET or HEAD of a feed file: the conditional headers first (304), then Range (206, 416). */
static enum MHD_Result
handle_feed(struct hub *h, struct MHD_Connection *conn, const char *url, const char *method)
{
    char etag[80], lm[40];
    const char *inm, *ims, *range, *ifrange;
    struct stat st;
    uint64_t size, first = 0, last = 0;
    int64_t mtime_ns, since;
    int fd = -1, partial = 0, rr;
    enum MHD_Result ret;

    if (!feed_open(h, conn, url, method, &fd, &st, &ret)) {
        return ret;
    }
    size = (uint64_t)st.st_size;
    mtime_ns = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
    snprintf(etag, sizeof(etag), "\"%llx-%llx\"", (unsigned long long)size,
             (unsigned long long)mtime_ns);
    fetch_format_http_date((int64_t)st.st_mtim.tv_sec, lm, sizeof(lm));
    inm = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "If-None-Match");
    ims = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "If-Modified-Since");
    if ((inm != NULL && etag_matches(inm, etag)) ||
        (inm == NULL && ims != NULL && fetch_parse_http_date(ims, &since) == POSGATE_OK &&
         (int64_t)st.st_mtim.tv_sec <= since)) {
        close(fd);
        return reply_not_modified(conn, etag, lm, method, url);
    }
    range = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Range");
    ifrange = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "If-Range");
    if (range != NULL &&
        (ifrange == NULL || strcmp(ifrange, etag) == 0 || strcmp(ifrange, lm) == 0)) {
        rr = parse_range(range, size, &first, &last);
        if (rr < 0) {
            close(fd);
            return reply_unsatisfiable(conn, size, range, method, url);
        }
        partial = rr > 0;
    }
    if (!partial) {
        first = 0;
        last = size > 0 ? size - 1 : 0;
    }
    return reply_file(conn, fd, size, first, last, partial, etag, lm, method, url);
}

/* The routes, in order: a request's headers (on_headers), its body (on_upload), then the
 * dashboard's (hub_dashboard.h), /v1/decisions/{id}, the collector's POSTs, and the feed for
 * everything else. */
enum MHD_Result
hub_http_request(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                 const char *version, const char *upload_data, size_t *upload_data_size, void **ctx)
{
    struct hub *h = cls;
    struct hub_req *rq;

    (void)version;
    if (*ctx == NULL) {
        return on_headers(h, conn, url, method, ctx); /* first call: headers only */
    }
    rq = *ctx;
    if (*upload_data_size != 0) {
        return on_upload(h, rq, url, method, upload_data, upload_data_size);
    }
    if (hub_dashboard_owns(url)) {
        return hub_dashboard_request(h->dash, conn, url, method,
                                     client_of(conn, h->admin_trust) == 1);
    }
    if (strncmp(url, "/v1/decisions/", 14) == 0) {
        return handle_decision(h, conn, url + 14, method);
    }
    if (rq->audit) {
        return handle_collector(h, conn, rq, method, url);
    }
    return handle_feed(h, conn, url, method);
}
