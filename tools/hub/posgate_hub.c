/* SPDX-License-Identifier: Apache-2.0 */
/*
 * `posgate-hub`: the operator's server, in two roles that one process can play at once.
 * With --feed it serves a feed directory (metadata/ and targets/, as posgate-publish writes it)
 * over HTTP or HTTPS, as any static web server would, with ETag ("<size hex>-<mtime ns hex>"),
 * Last-Modified, conditional requests (304), single byte ranges (206/416, If-Range) and HEAD.
 * Only GET and HEAD (405 otherwise). Paths are resolved with realpath and must stay inside the
 * feed directory: a ".." segment (also when sent percent-encoded, which libmicrohttpd decodes
 * first) is refused with 403, a symbolic link that leads outside with 403, anything missing or
 * not a regular file with 404. Nothing served here is trusted by the kiosk: it verifies every
 * byte. With --db it is the audit collector: `POST /v1/audit` takes the kiosks' signed batches
 * (gzip or plain JSON) into hub_db.c, answering with the highest contiguous seq held
 * (docs/collector.md); `enroll` and `stats` work on the same database. With --tls-client-ca a
 * client certificate signed by that CA is required for both roles (403 without one).
 * libmicrohttpd is included here and in the daemon's HTTP server only (gnutls, under it, only
 * to check client certificates).
 */
#define _DEFAULT_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <gnutls/gnutls.h>
#include <microhttpd.h>
#include <netinet/in.h>

#include <stdatomic.h>

#include "buf.h"
#include "crypto.h"
#include "fetch.h"
#include "hub_dashboard.h"
#include "hub_db.h"
#include "hub_ingest.h"
#include "hub_report.h"
#include "plat_clock.h"
#include "plat_file.h"
#include "plat_log.h"
#include "version.h"

#define HUB_PEM_MAX (256 * 1024)

static const char usage[] =
    "usage: posgate-hub [serve] [--feed DIR] [--db HUB.db] --listen ADDR:PORT\n"
    "                   [--tls-cert CERT.pem --tls-key KEY.pem [--tls-client-ca CA.pem]]\n"
    "                   [--port-file FILE] [--max-body BYTES] [--max-inflight N]\n"
    "                   [--max-bodies-per-peer N] [--max-conns-per-peer N] [--body-timeout S]\n"
    "                   [--auditor-token T] [--log-level debug|info|warn|error]\n"
    "                   [--admin-token T] [--silent-minutes N]\n"
    "       posgate-hub enroll --db HUB.db --pub DEVICE.pub\n"
    "       posgate-hub stats --db HUB.db [--json]\n"
    "       posgate-hub migrate-db --from HUB.db --to postgresql://...\n"
    "       posgate-hub ingest STICK --db HUB.db [--json]   (posgate field-sync's stick)\n"
    "       posgate-hub devices --db HUB.db [--json]        (each device's latest status)\n"
    "       posgate-hub decision ID --db HUB.db [--feed DIR] [--json]   (answering a contest)\n"
    "       posgate-hub decisions --listing LIST/LISTING_ID --db HUB.db [--since T] [--json]\n"
    "       posgate-hub prune --older-than DURATION --db HUB.db\n"
    "Each command answers --help.\n"
    "\n"
    "--db is a SQLite file (created when missing) or a libpq URI, postgresql://... or\n"
    "postgres://...: the PostgreSQL store, which several posgate-hub processes may share.\n"
    "\n"
    "serve: with --feed, serves a feed directory (metadata/ and targets/ from posgate-publish)\n"
    "to kiosks (`posgate sync --url http://ADDR:PORT`), with ETag, Last-Modified, conditional\n"
    "requests, byte ranges and HEAD; GET and HEAD only; paths outside DIR are refused. With --db,\n"
    "collects audit batches at POST /v1/audit (docs/collector.md). At least one of the two.\n"
    "\n"
    "  --listen ADDR:PORT   127.0.0.1:8080, [::1]:8080; PORT 0 picks a free port\n"
    "  --tls-cert, --tls-key  serve HTTPS with this certificate chain and key (PEM)\n"
    "  --tls-client-ca CA   require a client certificate signed by CA (mTLS)\n"
    "  --port-file FILE     write the port actually bound (for PORT 0) to FILE\n"
    "  --max-body BYTES     largest audit request body as sent (default 8388608): 413 beyond\n"
    "  --max-inflight N     audit batches judged at once, once their body is here (default 16):\n"
    "                       429 beyond\n"
    "  --max-bodies-per-peer N  audit bodies arriving at once from one address (default 4):\n"
    "                       429 beyond\n"
    "  --max-conns-per-peer N  connections from one address (default 32): closed beyond\n"
    "  --body-timeout S     an audit body must arrive whole within S seconds (default 30),\n"
    "                       else the connection is closed; 10 s without a byte closes any\n"
    "                       connection\n"
    "  --auditor-token T    answer GET /v1/decisions/{id} to a bearer of T (with --db;\n"
    "                       without it, decision queries are refused)\n"
    "  --admin-token T      the fleet dashboard at /dashboard and GET /v1/fleet/... for a bearer\n"
    "                       of T (a browser logs in with it once); with --tls-client-ca a verified\n"
    "                       client certificate is admin too; without either, both are refused\n"
    "  --silent-minutes N   the dashboard calls a device silent after N minutes without a status\n"
    "                       report (default 60)\n"
    "\n"
    "Logs one line per request at info level on stderr. SIGTERM or SIGINT stop it (exit 0).\n"
    "exit codes: 0 stopped by a signal, 2 usage, 5 cannot start\n";

static const char usage_enroll[] =
    "usage: posgate-hub enroll --db HUB.db --pub DEVICE.pub\n"
    "\n"
    "Enrols a kiosk at the collector: DEVICE.pub is its device.pub (`posgate device-key`).\n"
    "Prints the device id (hex of the first 16 bytes of SHA-256 over the file's bytes).\n"
    "Enrolling the same key again changes nothing. Batches from devices not enrolled are refused.\n"
    "exit codes: 0 enrolled (or already), 2 usage, 4 not a P-256 public key or the id is\n"
    "enrolled with another key, 5 I/O\n";

static const char usage_stats[] =
    "usage: posgate-hub stats --db HUB.db [--json]\n"
    "\n"
    "Prints what the collector holds: events, by_decision (allow, deny, refer, summary and\n"
    "allow_folded, the ALLOWs the summaries stand for), and per device its last_seq (highest\n"
    "contiguous seq held), events, gaps (count, and gap_ranges [from, to]) and chain_ok\n"
    "(false once a chain break was found; broken_at names the seq).\n"
    "exit codes: 0 shown, 2 usage, 5 I/O\n";

static const char usage_migrate[] =
    "usage: posgate-hub migrate-db --from HUB.db --to postgresql://...\n"
    "\n"
    "Copies a collector's SQLite file (devices, events, gaps, chain breaks, batch records) into\n"
    "a PostgreSQL database that holds no device yet, in one transaction: all or nothing. Stop\n"
    "the hubs writing to HUB.db first; then start them with --db postgresql://...\n"
    "exit codes: 0 copied, 2 usage, 4 the destination holds devices or is not PostgreSQL,\n"
    "5 I/O\n";

#define HUB_MAX_BODY     (8u * 1024u * 1024u)
#define HUB_MAX_INFLIGHT 16u
#define HUB_AUDIT_PATH   "/v1/audit"
#define HUB_STATUS_PATH  "/v1/device-status"
/* Slow clients (docs/collector.md, "Limits"): a peer is one client address. */
#define HUB_PEER_BODIES  4u  /* audit bodies being received at once from one peer: 429 beyond */
#define HUB_PEER_CONNS   32u /* connections from one peer: closed at accept beyond */
#define HUB_BODY_TIMEOUT 30u /* seconds from the headers to the last byte of an audit body */
#define HUB_IDLE_TIMEOUT 10u /* seconds without a byte (headers, body, or a reader) */
#define HUB_PEER_KEY     17  /* family byte + up to 16 address bytes */

/* One peer with audit bodies in progress. */
struct hub_peer {
    uint8_t key[HUB_PEER_KEY];
    unsigned bodies;
};

struct hub {
    char root[PATH_MAX]; /* realpath of the feed directory; "" without --feed */
    size_t root_len;
    int client_ca;     /* verify client certificates */
    struct hub_db *db; /* the collector; NULL without --db */
    const char *auditor_token; /* --auditor-token: GET /v1/decisions/{id}; NULL: refused */
    struct hub_dashboard *dash; /* /dashboard and /v1/fleet/ (hub_dashboard.h) */
    size_t max_body;
    unsigned max_inflight;
    atomic_uint inflight;
    unsigned peer_bodies; /* HUB_PEER_BODIES unless --max-bodies-per-peer */
    uint64_t body_timeout_ns;
    pthread_mutex_t peers_mu; /* guards peers */
    struct hub_peer *peers;   /* peers with bodies in progress; at most one per connection */
    size_t n_peers, cap_peers;
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

static int
parse_u64(const char *s, size_t n, uint64_t *out)
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
        if (!parse_u64(dash + 1, strlen(dash + 1), &b)) {
            return 0;
        }
        if (b == 0 || size == 0) {
            return -1;
        }
        *first = b >= size ? 0 : size - b;
        *last = size - 1;
        return 1;
    }
    if (!parse_u64(h, (size_t)(dash - h), &a)) {
        return 0;
    }
    if (dash[1] == 0) {
        b = UINT64_MAX;
    } else if (!parse_u64(dash + 1, strlen(dash + 1), &b) || b < a) {
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

/* The client certificate check of --tls-client-ca. */
static int
client_ok(struct MHD_Connection *conn)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_GNUTLS_SESSION);
    gnutls_session_t s;
    unsigned status = 0;

    if (ci == NULL || ci->tls_session == NULL) {
        return 0;
    }
    s = (gnutls_session_t)ci->tls_session;
    if (gnutls_certificate_type_get(s) != GNUTLS_CRT_X509 ||
        gnutls_certificate_get_peers(s, &status) == NULL) {
        return 0;
    }
    return gnutls_certificate_verify_peers2(s, &status) == 0 && status == 0;
}

/* ---- the audit collector: POST /v1/audit ---- */

/* Appends s as a JSON string (quotes, backslashes and control bytes escaped). */
static enum posgate_err
json_str(struct buf *b, const char *s)
{
    enum posgate_err err = buf_append(b, "\"", 1);

    for (const unsigned char *p = (const unsigned char *)s; err == POSGATE_OK && *p != 0; p++) {
        if (*p == '"' || *p == '\\') {
            err = buf_printf(b, "\\%c", *p);
        } else if (*p < 0x20) {
            err = buf_printf(b, "\\u%04x", *p);
        } else {
            err = buf_append(b, p, 1);
        }
    }
    return err == POSGATE_OK ? buf_append(b, "\"", 1) : err;
}

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

    if (buf_append_str(&b, "{\"error\":") != POSGATE_OK || json_str(&b, msg) != POSGATE_OK ||
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

static enum MHD_Result
handle_audit(struct hub *h, struct MHD_Connection *conn, struct hub_req *rq, const char *method,
             const char *url)
{
    const char *ce, *idem;
    struct buf plain = BUF_INIT(HUB_BATCH_JSON_MAX), out = BUF_INIT(4096);
    const void *json;
    size_t len;
    struct hub_ingest res;
    char msg[512] = "";
    enum posgate_err err, e2 = POSGATE_OK;
    enum MHD_Result ret;
    unsigned status;

    if (strcmp(method, "POST") != 0) {
        return reply_error(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "only POST at " HUB_AUDIT_PATH, 0,
                           method, url);
    }
    if (h->client_ca && !client_ok(conn)) {
        return reply_error(conn, MHD_HTTP_FORBIDDEN,
                           "a client certificate signed by the hub's "
                           "client CA is required",
                           0, method, url);
    }
    if (rq->too_big) {
        snprintf(msg, sizeof(msg), "request body larger than %zu bytes", h->max_body);
        return reply_error(conn, MHD_HTTP_CONTENT_TOO_LARGE, msg, 0, method, url);
    }
    if (!is_json_type(MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Type"))) {
        return reply_error(conn, MHD_HTTP_UNSUPPORTED_MEDIA_TYPE,
                           "expected Content-Type: application/json", 0, method, url);
    }
    json = rq->body.data;
    len = rq->body.len;
    ce = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Encoding");
    if (ce != NULL && strcasecmp(ce, "gzip") == 0) {
        err = hub_gunzip(rq->body.data, rq->body.len, &plain, msg, sizeof(msg));
        if (err != POSGATE_OK) {
            buf_free(&plain);
            return reply_error(
                conn, err == POSGATE_ERR_TOOBIG ? MHD_HTTP_CONTENT_TOO_LARGE : MHD_HTTP_BAD_REQUEST,
                msg[0] != 0 ? msg : posgate_strerror(err), 0, method, url);
        }
        json = plain.data;
        len = plain.len;
    } else if (ce != NULL && strcasecmp(ce, "identity") != 0) {
        return reply_error(conn, MHD_HTTP_UNSUPPORTED_MEDIA_TYPE,
                           "expected Content-Encoding gzip or none", 0, method, url);
    }
    idem = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Idempotency-Key");
    err = hub_db_ingest_json(h->db, json, len, idem, plat_wall_s(), &res);
    switch (err) {
    case POSGATE_ERR_OK:
        status = MHD_HTTP_OK;
        e2 = buf_printf(&out,
                        "{\"acked_seq\":%llu,\"device_id\":\"%s\",\"duplicates\":%zu,"
                        "\"held_seq\":%llu,\"repeated\":%s,\"stored\":%zu",
                        (unsigned long long)res.acked_seq, res.device_id, res.duplicates,
                        (unsigned long long)res.held_seq, res.repeated_key ? "true" : "false",
                        res.stored);
        if (e2 == POSGATE_OK && res.gap_to != 0) {
            e2 = buf_printf(&out, ",\"gap\":[%llu,%llu]", (unsigned long long)res.gap_from,
                            (unsigned long long)res.gap_to);
        }
        if (e2 == POSGATE_OK) {
            e2 = buf_append_str(&out, "}");
        }
        break;
    case POSGATE_ERR_BADHASH:
    case POSGATE_ERR_REJECTED: /* a break the device signed (409, recorded), or events the
                                  signed head does not cover (422, nothing recorded) */
        status = err == POSGATE_ERR_BADHASH ? MHD_HTTP_CONFLICT : MHD_HTTP_UNPROCESSABLE_CONTENT;
        e2 = buf_printf(&out, "{\"acked_seq\":%llu,\"broken_at\":%llu,\"error\":",
                        (unsigned long long)res.acked_seq, (unsigned long long)res.broken_at);
        if (e2 == POSGATE_OK) {
            e2 = json_str(&out, res.error);
        }
        if (e2 == POSGATE_OK) {
            e2 = buf_printf(&out, ",\"held_seq\":%llu}", (unsigned long long)res.held_seq);
        }
        break;
    case POSGATE_ERR_PARSE:
    case POSGATE_ERR_INVALID:
        status = MHD_HTTP_BAD_REQUEST;
        break;
    case POSGATE_ERR_TOOBIG:
        status = MHD_HTTP_CONTENT_TOO_LARGE;
        break;
    case POSGATE_ERR_NOTFOUND:
        status = MHD_HTTP_FORBIDDEN;
        break;
    case POSGATE_ERR_BADSIG:
        status = MHD_HTTP_UNAUTHORIZED;
        break;
    case POSGATE_ERR_RETRY:
    case POSGATE_ERR_NOMEM:
        status = MHD_HTTP_SERVICE_UNAVAILABLE;
        break;
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
        status = MHD_HTTP_INTERNAL_SERVER_ERROR;
        break;
    }
    if (status == MHD_HTTP_OK || status == MHD_HTTP_CONFLICT ||
        status == MHD_HTTP_UNPROCESSABLE_CONTENT) {
        if (e2 != POSGATE_OK) {
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
    const char *ce;
    struct buf plain = BUF_INIT(HUB_REPORT_MAX), out = BUF_INIT(512);
    const void *json = rq->body.data;
    size_t len = rq->body.len;
    struct hub_report_result res;
    char msg[512] = "";
    enum posgate_err err;
    enum MHD_Result ret;
    unsigned status;

    if (strcmp(method, "POST") != 0) {
        return reply_error(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "only POST at " HUB_STATUS_PATH, 0,
                           method, url);
    }
    if (h->client_ca && !client_ok(conn)) {
        return reply_error(conn, MHD_HTTP_FORBIDDEN,
                           "a client certificate signed by the hub's client CA is required", 0,
                           method, url);
    }
    if (rq->too_big) {
        return reply_error(conn, MHD_HTTP_CONTENT_TOO_LARGE, "request body too large", 0, method,
                           url);
    }
    if (!is_json_type(MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Type"))) {
        return reply_error(conn, MHD_HTTP_UNSUPPORTED_MEDIA_TYPE,
                           "expected Content-Type: application/json", 0, method, url);
    }
    ce = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Encoding");
    if (ce != NULL && strcasecmp(ce, "gzip") == 0) {
        err = hub_gunzip(rq->body.data, rq->body.len, &plain, msg, sizeof(msg));
        if (err != POSGATE_OK) {
            buf_free(&plain);
            return reply_error(
                conn, err == POSGATE_ERR_TOOBIG ? MHD_HTTP_CONTENT_TOO_LARGE : MHD_HTTP_BAD_REQUEST,
                msg[0] != 0 ? msg : posgate_strerror(err), 0, method, url);
        }
        json = plain.data;
        len = plain.len;
    } else if (ce != NULL && strcasecmp(ce, "identity") != 0) {
        return reply_error(conn, MHD_HTTP_UNSUPPORTED_MEDIA_TYPE,
                           "expected Content-Encoding gzip or none", 0, method, url);
    }
    err = hub_db_report(h->db, json != NULL ? json : "", len, plat_wall_s(), &res);
    switch (err) {
    case POSGATE_ERR_OK:
        status = MHD_HTTP_OK;
        break;
    case POSGATE_ERR_PARSE:
    case POSGATE_ERR_INVALID:
        status = MHD_HTTP_BAD_REQUEST;
        break;
    case POSGATE_ERR_TOOBIG:
        status = MHD_HTTP_CONTENT_TOO_LARGE;
        break;
    case POSGATE_ERR_NOTFOUND:
        status = MHD_HTTP_FORBIDDEN;
        break;
    case POSGATE_ERR_BADSIG:
        status = MHD_HTTP_UNAUTHORIZED;
        break;
    case POSGATE_ERR_RETRY:
    case POSGATE_ERR_NOMEM:
        status = MHD_HTTP_SERVICE_UNAVAILABLE;
        break;
    case POSGATE_ERR_IO:
    case POSGATE_ERR_USAGE:
    case POSGATE_ERR_REJECTED:
    case POSGATE_ERR_BADHASH:
    case POSGATE_ERR_ROLLBACK:
    case POSGATE_ERR_EXPIRED:
    case POSGATE_ERR_UNSUPPORTED:
    case POSGATE_ERR_CORRUPT:
    case POSGATE_ERR_STATE:
    case POSGATE_ERR_NETWORK:
    case POSGATE_ERR__COUNT:
    default:
        status = MHD_HTTP_INTERNAL_SERVER_ERROR;
        break;
    }
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

/* The client address of conn as a key: family, then the address bytes (the port is left out:
 * a peer is a host). 0 when MHD cannot say. */
static int
peer_key(struct MHD_Connection *conn, uint8_t key[HUB_PEER_KEY])
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);

    memset(key, 0, HUB_PEER_KEY);
    if (ci == NULL || ci->client_addr == NULL) {
        return 0;
    }
    if (ci->client_addr->sa_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)(const void *)ci->client_addr;

        key[0] = 4;
        memcpy(key + 1, &a->sin_addr, sizeof(a->sin_addr));
        return 1;
    }
    if (ci->client_addr->sa_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)(const void *)ci->client_addr;

        key[0] = 6;
        memcpy(key + 1, &a->sin6_addr, sizeof(a->sin6_addr));
        return 1;
    }
    return 0;
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

static void
on_completed(void *cls, struct MHD_Connection *conn, void **ctx,
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
 * (max_inflight) is taken only once the whole body is here (on_request): a client that sends
 * slowly holds its own peer's slots, never the fleet's. */
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
    if (cl != NULL && parse_u64(cl, strlen(cl), &n) && n > h->max_body) {
        char msg[128];

        snprintf(msg, sizeof(msg), "request body of %llu bytes, at most %zu are taken",
                 (unsigned long long)n, h->max_body);
        return reply_error(conn, MHD_HTTP_CONTENT_TOO_LARGE, msg, 0, method, url);
    }
    if (peer_key(conn, rq->peer)) {
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

/* Compares n bytes in a time that does not depend on where they differ. */
static bool
same_secret(const char *a, const char *b, size_t n)
{
    unsigned char d = 0;

    for (size_t i = 0; i < n; i++) {
        d |= (unsigned char)(a[i] ^ b[i]);
    }
    return d == 0;
}

/* GET /v1/decisions/{id}: the contest answer (hub_db_decision), for a bearer of the auditor
 * token only. */
static enum MHD_Result
handle_decision(struct hub *h, struct MHD_Connection *conn, const char *id, const char *method)
{
    const char *auth = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Authorization");
    struct buf out = BUF_INIT(1024 * 1024);
    enum posgate_err err;
    enum MHD_Result ret;
    size_t tl;

    if (strcmp(method, "GET") != 0) {
        return reply_error(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "use GET", 0, method, "/v1/decisions/");
    }
    if (h->db == NULL || h->auditor_token == NULL) {
        return reply_error(conn, MHD_HTTP_FORBIDDEN,
                           "this hub answers no decision queries (--db and --auditor-token)", 0, method, "/v1/decisions/");
    }
    if (auth == NULL || strncmp(auth, "Bearer ", 7) != 0) {
        return reply_error(conn, MHD_HTTP_UNAUTHORIZED, "auditor bearer token required", 0, method, "/v1/decisions/");
    }
    tl = strlen(h->auditor_token);
    if (strlen(auth + 7) != tl || !same_secret(auth + 7, h->auditor_token, tl)) {
        return reply_error(conn, MHD_HTTP_FORBIDDEN, "not the auditor token", 0, method, "/v1/decisions/");
    }
    if (strlen(id) != 32 || strspn(id, "0123456789abcdef") != 32) {
        return reply_error(conn, MHD_HTTP_BAD_REQUEST, "a decision id is 32 lowercase hex", 0, method, "/v1/decisions/");
    }
    err = hub_db_decision(h->db, id, h->root_len > 0 ? h->root : NULL, true, &out);
    if (err == POSGATE_ERR_NOTFOUND) {
        ret = reply_error(conn, MHD_HTTP_NOT_FOUND, "no decision with that id is held", 0, method, "/v1/decisions/");
    } else if (err != POSGATE_OK) {
        ret = reply_error(conn, MHD_HTTP_SERVICE_UNAVAILABLE, posgate_strerror(err), 5, method, "/v1/decisions/");
    } else {
        ret = reply_json(conn, MHD_HTTP_OK, &out, 0, method, "/v1/decisions/");
    }
    buf_free(&out);
    return ret;
}

static enum MHD_Result
on_request(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
           const char *version, const char *upload_data, size_t *upload_data_size, void **ctx)
{
    struct hub *h = cls;
    struct hub_req *rq;
    char path[PATH_MAX * 2], real[PATH_MAX], etag[80], lm[40], cr[96], len[32];
    const char *inm, *ims, *range, *ifrange;
    struct MHD_Response *r;
    struct stat st;
    uint64_t size, first = 0, last = 0;
    int64_t mtime_ns, since;
    int fd, partial = 0, rr;
    unsigned status = MHD_HTTP_OK;
    enum MHD_Result ret;

    (void)version;
    if (*ctx == NULL) {
        return on_headers(h, conn, url, method, ctx); /* first call: headers only */
    }
    rq = *ctx;
    if (*upload_data_size != 0) {
        if (rq->audit && strcmp(method, "POST") == 0 &&
            plat_mono_ns() - rq->started_ns > h->body_timeout_ns) {
            /* MHD cannot answer in the middle of a body: the connection is closed */
            plat_log(PLAT_LOG_INFO,
                     "%s %s: body not complete within %llu s, %zu bytes read: "
                     "connection closed",
                     method, url, (unsigned long long)(h->body_timeout_ns / 1000000000u),
                     rq->body.len);
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
    if (hub_dashboard_owns(url)) {
        return hub_dashboard_request(h->dash, conn, url, method, h->client_ca && client_ok(conn));
    }
    if (strncmp(url, "/v1/decisions/", 14) == 0) {
        return handle_decision(h, conn, url + 14, method);
    }
    if (rq->audit) {
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
    if (h->root_len == 0) {
        return simple(conn, MHD_HTTP_NOT_FOUND,
                      h->db != NULL
                          ? "not found (this hub collects audit batches at POST " HUB_AUDIT_PATH
                            ")\n"
                          : "not found\n",
                      method, url);
    }
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
        return simple(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "only GET and HEAD\n", method, url);
    }
    if (h->client_ca && !client_ok(conn)) {
        return simple(conn, MHD_HTTP_FORBIDDEN,
                      "a client certificate signed by the hub's client CA is required\n", method,
                      url);
    }
    if (url[0] != '/' || strstr(url, "/../") != NULL || strstr(url, "/./") != NULL ||
        (strlen(url) >= 3 && strcmp(url + strlen(url) - 3, "/..") == 0) ||
        (strlen(url) >= 2 && strcmp(url + strlen(url) - 2, "/.") == 0) || strchr(url, '\\')) {
        return simple(conn, MHD_HTTP_FORBIDDEN, "path outside the feed\n", method, url);
    }
    if ((size_t)snprintf(path, sizeof(path), "%s%s", h->root, url) >= sizeof(path)) {
        return simple(conn, MHD_HTTP_NOT_FOUND, "not found\n", method, url);
    }
    if (realpath(path, real) == NULL) {
        return simple(conn, MHD_HTTP_NOT_FOUND, "not found\n", method, url);
    }
    if (strncmp(real, h->root, h->root_len) != 0 || real[h->root_len] != '/') {
        return simple(conn, MHD_HTTP_FORBIDDEN,
                      "not a file of the feed (the feed directory itself, or a link leading "
                      "out of it)\n",
                      method, url);
    }
    fd = open(real, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        if (fd >= 0) {
            close(fd);
        }
        return simple(conn, MHD_HTTP_NOT_FOUND, "not found\n", method, url);
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
        r = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
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
    range = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Range");
    ifrange = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "If-Range");
    if (range != NULL &&
        (ifrange == NULL || strcmp(ifrange, etag) == 0 || strcmp(ifrange, lm) == 0)) {
        rr = parse_range(range, size, &first, &last);
        if (rr < 0) {
            close(fd);
            r = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
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
        partial = rr > 0;
    }
    if (!partial) {
        first = 0;
        last = size > 0 ? size - 1 : 0;
    }
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

static int
read_pem(const char *path, struct buf *out)
{
    enum posgate_err err = plat_read_file(path, out);

    if (err != POSGATE_OK) {
        fprintf(stderr, "posgate-hub: cannot read %s: %s\n", path, posgate_strerror(err));
        return 0;
    }
    return 1;
}

/* "127.0.0.1:8080" or "[::1]:8080" into a socket address. */
static int
parse_listen(const char *s, struct sockaddr_storage *ss, socklen_t *len, int *v6)
{
    char host[64];
    const char *colon;
    uint64_t port;

    memset(ss, 0, sizeof(*ss));
    if (s[0] == '[') {
        const char *end = strchr(s, ']');

        if (end == NULL || end[1] != ':' || (size_t)(end - s - 1) >= sizeof(host)) {
            return 0;
        }
        memcpy(host, s + 1, (size_t)(end - s - 1));
        host[end - s - 1] = 0;
        colon = end + 1;
    } else {
        colon = strrchr(s, ':');
        if (colon == NULL || (size_t)(colon - s) >= sizeof(host)) {
            return 0;
        }
        memcpy(host, s, (size_t)(colon - s));
        host[colon - s] = 0;
    }
    if (!parse_u64(colon + 1, strlen(colon + 1), &port) || port > 65535) {
        return 0;
    }
    if (s[0] == '[') {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)ss;

        a->sin6_family = AF_INET6;
        a->sin6_port = htons((uint16_t)port);
        *len = sizeof(*a);
        *v6 = 1;
        return inet_pton(AF_INET6, host, &a->sin6_addr) == 1;
    } else {
        struct sockaddr_in *a = (struct sockaddr_in *)ss;

        a->sin_family = AF_INET;
        a->sin_port = htons((uint16_t)port);
        *len = sizeof(*a);
        *v6 = 0;
        return inet_pton(AF_INET, host, &a->sin_addr) == 1;
    }
}

static void
mhd_log(void *cls, const char *fmt, va_list ap)
{
    char line[512];

    (void)cls;
    vsnprintf(line, sizeof(line), fmt, ap);
    line[strcspn(line, "\n")] = 0;
    plat_log(PLAT_LOG_DEBUG, "microhttpd: %s", line);
}

static int
cmd_serve(int argc, char **argv)
{
    const char *feed = NULL, *listen = NULL, *cert = NULL, *key = NULL, *ca = NULL;
    const char *port_file = NULL, *dbpath = NULL;
    struct hub h;
    const char *auditor = NULL, *admin = NULL;
    uint64_t silent_min = 60;
    char dbmsg[512] = "";
    uint64_t max_body = HUB_MAX_BODY, max_inflight = HUB_MAX_INFLIGHT;
    uint64_t peer_bodies = HUB_PEER_BODIES, peer_conns = HUB_PEER_CONNS,
             body_timeout = HUB_BODY_TIMEOUT;
    struct buf cert_pem = BUF_INIT(HUB_PEM_MAX), key_pem = BUF_INIT(HUB_PEM_MAX),
               ca_pem = BUF_INIT(HUB_PEM_MAX);
    struct sockaddr_storage ss;
    socklen_t sl = 0;
    struct MHD_Daemon *d = NULL;
    const union MHD_DaemonInfo *di;
    sigset_t set;
    unsigned flags = MHD_USE_AUTO_INTERNAL_THREAD | MHD_USE_ERROR_LOG;
    int v6 = 0, sig = 0, rc = 5;
    enum plat_log_level lvl = PLAT_LOG_INFO;

    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];

        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            fputs(usage, stdout);
            return 0;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "posgate-hub: unexpected argument \"%s\"\n\n%s", a, usage);
            return 2;
        }
        if (strcmp(a, "--feed") == 0) {
            feed = argv[++i];
        } else if (strcmp(a, "--auditor-token") == 0) {
            auditor = argv[++i];
        } else if (strcmp(a, "--admin-token") == 0) {
            admin = argv[++i];
        } else if (strcmp(a, "--silent-minutes") == 0) {
            i++;
            if (!parse_u64(argv[i], strlen(argv[i]), &silent_min) || silent_min > 525600) {
                fprintf(stderr, "posgate-hub: --silent-minutes: expected 0 to 525600, got \"%s\"\n",
                        argv[i]);
                return 2;
            }
        } else if (strcmp(a, "--listen") == 0) {
            listen = argv[++i];
        } else if (strcmp(a, "--tls-cert") == 0) {
            cert = argv[++i];
        } else if (strcmp(a, "--tls-key") == 0) {
            key = argv[++i];
        } else if (strcmp(a, "--tls-client-ca") == 0) {
            ca = argv[++i];
        } else if (strcmp(a, "--port-file") == 0) {
            port_file = argv[++i];
        } else if (strcmp(a, "--db") == 0) {
            dbpath = argv[++i];
        } else if (strcmp(a, "--max-body") == 0 || strcmp(a, "--max-inflight") == 0) {
            uint64_t *dst = a[6] == 'b' ? &max_body : &max_inflight;

            i++;
            if (!parse_u64(argv[i], strlen(argv[i]), dst) || *dst == 0 ||
                *dst > (a[6] == 'b' ? (uint64_t)HUB_BATCH_JSON_MAX : 4096u)) {
                fprintf(stderr,
                        "posgate-hub: %s: expected a positive integer up to %llu, got "
                        "\"%s\"\n",
                        a, a[6] == 'b' ? (unsigned long long)HUB_BATCH_JSON_MAX : 4096ull, argv[i]);
                return 2;
            }
        } else if (strcmp(a, "--max-bodies-per-peer") == 0 ||
                   strcmp(a, "--max-conns-per-peer") == 0 || strcmp(a, "--body-timeout") == 0) {
            uint64_t *dst = strcmp(a, "--body-timeout") == 0         ? &body_timeout
                            : strcmp(a, "--max-conns-per-peer") == 0 ? &peer_conns
                                                                     : &peer_bodies;

            i++;
            if (!parse_u64(argv[i], strlen(argv[i]), dst) || *dst == 0 || *dst > 4096u) {
                fprintf(stderr,
                        "posgate-hub: %s: expected a positive integer up to 4096, got "
                        "\"%s\"\n",
                        a, argv[i]);
                return 2;
            }
        } else if (strcmp(a, "--log-level") == 0) {
            if (!plat_log_level_parse(argv[++i], &lvl)) {
                fprintf(stderr,
                        "posgate-hub: --log-level: expected debug, info, warn or error, "
                        "got \"%s\"\n",
                        argv[i]);
                return 2;
            }
        } else {
            fprintf(stderr, "posgate-hub: unexpected argument \"%s\"\n\n%s", a, usage);
            return 2;
        }
    }
    if ((feed == NULL && dbpath == NULL) || listen == NULL) {
        fprintf(stderr,
                "posgate-hub: expected --feed DIR and/or --db HUB.db, and --listen "
                "ADDR:PORT\n\n%s",
                usage);
        return 2;
    }
    if ((cert == NULL) != (key == NULL) || (ca != NULL && cert == NULL)) {
        fprintf(stderr, "posgate-hub: --tls-cert and --tls-key go together, and "
                        "--tls-client-ca needs them\n");
        return 2;
    }
    if (!parse_listen(listen, &ss, &sl, &v6)) {
        fprintf(stderr,
                "posgate-hub: --listen: expected 127.0.0.1:PORT or [::1]:PORT, got "
                "\"%s\"\n",
                listen);
        return 2;
    }
    plat_log_set_level(lvl);
    memset(&h, 0, sizeof(h));
    h.auditor_token = auditor;
    atomic_init(&h.inflight, 0u);
    h.max_body = (size_t)max_body;
    h.max_inflight = (unsigned)max_inflight;
    h.peer_bodies = (unsigned)peer_bodies;
    h.body_timeout_ns = body_timeout * 1000000000u;
    pthread_mutex_init(&h.peers_mu, NULL);
    if (feed != NULL && realpath(feed, h.root) == NULL) {
        fprintf(stderr, "posgate-hub: --feed %s: %s\n", feed, strerror(errno));
        return 2;
    }
    h.root_len = strlen(h.root);
    h.client_ca = ca != NULL;
    if (dbpath != NULL && hub_db_open(dbpath, &h.db, dbmsg, sizeof(dbmsg)) != POSGATE_OK) {
        /* a URI may carry a password: only a file's path is repeated */
        fprintf(stderr, "posgate-hub: --db %s: %s\n",
                hub_db_is_uri(dbpath) ? "(PostgreSQL URI)" : dbpath, dbmsg);
        goto out;
    }
    {
        struct hub_dashboard_config dc = {h.db, h.root_len > 0 ? h.root : NULL, admin, auditor,
                                          ca != NULL, cert != NULL, (int64_t)silent_min * 60};

        if (hub_dashboard_new(&dc, &h.dash) != POSGATE_OK) {
            fprintf(stderr, "posgate-hub: out of memory\n");
            goto out;
        }
    }
    if (cert != NULL && (!read_pem(cert, &cert_pem) || !read_pem(key, &key_pem) ||
                         (ca != NULL && !read_pem(ca, &ca_pem)))) {
        goto out;
    }
    /* signals are taken synchronously by the main thread; block them before MHD's threads */
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    if (v6) {
        flags |= MHD_USE_IPv6;
    }
    if (cert != NULL) {
        flags |= MHD_USE_TLS;
    }
    {
        struct MHD_OptionItem tls[4];
        size_t nt = 0;

        if (cert != NULL) {
            tls[nt++] =
                (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_CERT, 0, (void *)buf_cstr(&cert_pem)};
            tls[nt++] =
                (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_KEY, 0, (void *)buf_cstr(&key_pem)};
        }
        if (ca != NULL) {
            tls[nt++] =
                (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_TRUST, 0, (void *)buf_cstr(&ca_pem)};
        }
        tls[nt] = (struct MHD_OptionItem){MHD_OPTION_END, 0, NULL};
        /* the collector waits on fsync: a few threads keep the feed served meanwhile */
        d = MHD_start_daemon(
            flags, 0, NULL, NULL, on_request, &h, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
            MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL, MHD_OPTION_CONNECTION_TIMEOUT,
            HUB_IDLE_TIMEOUT, MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)peer_conns,
            MHD_OPTION_NOTIFY_COMPLETED, on_completed, &h, MHD_OPTION_THREAD_POOL_SIZE,
            h.db != NULL ? 4u : 1u, MHD_OPTION_ARRAY, tls, MHD_OPTION_END);
    }
    if (d == NULL) {
        fprintf(stderr,
                "posgate-hub: cannot listen on %s: is another program using that address "
                "and port? (the message above names the cause; with --tls-cert, a certificate "
                "or key that does not load stops it too)\n",
                listen);
        goto out;
    }
    di = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    if (di != NULL) {
        char pbuf[16];
        int n = snprintf(pbuf, sizeof(pbuf), "%u\n", (unsigned)di->port);

        plat_log(PLAT_LOG_INFO, "serving %s%s%s on %s port %u (%s)", h.root_len > 0 ? h.root : "",
                 h.root_len > 0 && h.db != NULL ? " and " : "",
                 h.db != NULL ? "audit collection at " HUB_AUDIT_PATH : "", listen,
                 (unsigned)di->port,
                 cert != NULL ? (ca != NULL ? "HTTPS, client certificates" : "HTTPS") : "HTTP");
        if (port_file != NULL &&
            plat_write_atomic(port_file, pbuf, (size_t)n, 0644) != POSGATE_OK) {
            fprintf(stderr, "posgate-hub: cannot write %s\n", port_file);
            goto out;
        }
    }
    (void)sl;
    while (sigwait(&set, &sig) != 0) {
    }
    plat_log(PLAT_LOG_INFO, "signal %d: stopping", sig);
    rc = 0;
out:
    if (d != NULL) {
        MHD_stop_daemon(d);
    }
    hub_dashboard_free(h.dash);
    hub_db_close(h.db);
    free(h.peers);
    pthread_mutex_destroy(&h.peers_mu);
    buf_wipe(&key_pem);
    buf_free(&cert_pem);
    buf_free(&ca_pem);
    return rc;
}

static int
cmd_enroll(int argc, char **argv)
{
    const char *dbpath = NULL, *pub = NULL;
    struct hub_db *db = NULL;
    struct buf pem = BUF_INIT(CRYPTO_PEM_MAX);
    char id[DEVICE_ID_HEX_LEN + 1], msg[512] = "";
    bool added = false;
    enum posgate_err err;
    int rc = 5;

    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            fputs(usage_enroll, stdout);
            return 0;
        }
        if (i + 1 < argc && strcmp(argv[i], "--db") == 0) {
            dbpath = argv[++i];
        } else if (i + 1 < argc && strcmp(argv[i], "--pub") == 0) {
            pub = argv[++i];
        } else {
            fprintf(stderr, "posgate-hub enroll: unexpected argument \"%s\"\n\n%s", argv[i],
                    usage_enroll);
            return 2;
        }
    }
    if (dbpath == NULL || pub == NULL) {
        fprintf(stderr, "posgate-hub enroll: expected --db HUB.db and --pub DEVICE.pub\n\n%s",
                usage_enroll);
        return 2;
    }
    err = plat_read_file(pub, &pem);
    if (err != POSGATE_OK) {
        fprintf(stderr, "posgate-hub enroll: cannot read %s: %s\n", pub, posgate_strerror(err));
        goto out;
    }
    if (hub_db_open(dbpath, &db, msg, sizeof(msg)) != POSGATE_OK) {
        fprintf(stderr, "posgate-hub enroll: %s\n", msg);
        goto out;
    }
    err = hub_db_enroll(db, (const char *)pem.data, pem.len, plat_wall_s(), id, &added, msg,
                        sizeof(msg));
    if (err == POSGATE_ERR_INVALID || err == POSGATE_ERR_STATE) {
        fprintf(stderr, "posgate-hub enroll: %s: %s\n", pub, msg);
        rc = 4;
        goto out;
    }
    if (err != POSGATE_OK) {
        fprintf(stderr, "posgate-hub enroll: %s\n", msg[0] != 0 ? msg : posgate_strerror(err));
        goto out;
    }
    printf("%s\n", id);
    fprintf(stderr, "posgate-hub: device %s %s\n", id, added ? "enrolled" : "was enrolled already");
    rc = 0;
out:
    hub_db_close(db);
    buf_free(&pem);
    return rc;
}

static int
cmd_stats(int argc, char **argv)
{
    const char *dbpath = NULL;
    struct hub_db *db = NULL;
    struct buf out = BUF_INIT(SIZE_MAX / 2);
    char msg[512] = "";
    int json = 0, rc = 5;
    enum posgate_err err;

    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            fputs(usage_stats, stdout);
            return 0;
        }
        if (strcmp(argv[i], "--json") == 0) {
            json = 1;
        } else if (i + 1 < argc && strcmp(argv[i], "--db") == 0) {
            dbpath = argv[++i];
        } else {
            fprintf(stderr, "posgate-hub stats: unexpected argument \"%s\"\n\n%s", argv[i],
                    usage_stats);
            return 2;
        }
    }
    if (dbpath == NULL) {
        fprintf(stderr, "posgate-hub stats: expected --db HUB.db\n\n%s", usage_stats);
        return 2;
    }
    if (!hub_db_is_uri(dbpath) && !plat_exists(dbpath)) {
        fprintf(stderr, "posgate-hub stats: %s does not exist\n", dbpath);
        return 5;
    }
    if (hub_db_open(dbpath, &db, msg, sizeof(msg)) != POSGATE_OK) {
        fprintf(stderr, "posgate-hub stats: %s\n", msg);
        goto out;
    }
    err = json ? hub_db_stats_json(db, &out) : hub_db_stats_text(db, &out);
    if (err != POSGATE_OK) {
        fprintf(stderr, "posgate-hub stats: %s\n", posgate_strerror(err));
        goto out;
    }
    fwrite(out.data, 1, out.len, stdout);
    rc = fflush(stdout) == 0 ? 0 : 5;
out:
    hub_db_close(db);
    buf_free(&out);
    return rc;
}

static int
cmd_migrate(int argc, char **argv)
{
    const char *from = NULL, *to = NULL;
    struct hub_db *src = NULL, *dst = NULL;
    char msg[512] = "";
    uint64_t n = 0;
    enum posgate_err err;
    int rc = 5;

    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            fputs(usage_migrate, stdout);
            return 0;
        }
        if (i + 1 < argc && strcmp(argv[i], "--from") == 0) {
            from = argv[++i];
        } else if (i + 1 < argc && strcmp(argv[i], "--to") == 0) {
            to = argv[++i];
        } else {
            fprintf(stderr, "posgate-hub migrate-db: unexpected argument \"%s\"\n\n%s", argv[i],
                    usage_migrate);
            return 2;
        }
    }
    if (from == NULL || to == NULL || hub_db_is_uri(from) || !hub_db_is_uri(to)) {
        fprintf(stderr,
                "posgate-hub migrate-db: expected --from a SQLite file and --to a "
                "postgresql:// URI\n\n%s",
                usage_migrate);
        return 2;
    }
    if (!plat_exists(from)) {
        fprintf(stderr, "posgate-hub migrate-db: %s does not exist\n", from);
        return 5;
    }
    if (hub_db_open(from, &src, msg, sizeof(msg)) != POSGATE_OK ||
        hub_db_open(to, &dst, msg, sizeof(msg)) != POSGATE_OK) {
        fprintf(stderr, "posgate-hub migrate-db: %s\n", msg);
        goto out;
    }
    err = hub_db_migrate(src, dst, &n, msg, sizeof(msg));
    if (err != POSGATE_OK) {
        fprintf(stderr, "posgate-hub migrate-db: %s\n", msg[0] != 0 ? msg : posgate_strerror(err));
        rc = err == POSGATE_ERR_STATE ? 4 : 5;
        goto out;
    }
    fprintf(stderr, "posgate-hub: %llu events copied from %s\n", (unsigned long long)n, from);
    rc = 0;
out:
    hub_db_close(src);
    hub_db_close(dst);
    return rc;
}

static const char usage_decision[] =
    "usage: posgate-hub decision ID --db HUB.db [--feed DIR] [--json]\n"
    "  what was decided under that decision id and why (docs/collector.md); exit 3 when no\n"
    "  event holds it\n";
static const char usage_decisions[] =
    "usage: posgate-hub decisions --listing LIST/LISTING_ID --db HUB.db [--since T] [--json]\n"
    "  every DENY and REFER that cited the listing: decision id, time, decision, device,\n"
    "  service, operator (T: RFC 3339 UTC or its prefix, 2025-03-01)\n";
static const char usage_prune[] =
    "usage: posgate-hub prune --older-than DURATION --db HUB.db\n"
    "  deletes events received more than DURATION ago (30d, 12w, 2y: d, w, y = 365 d),\n"
    "  keeping each device's chain anchor\n";

/* decision, decisions and prune: their common options; 2 on a usage error, else 0. */
static int
query_args(int argc, char **argv, const char *usage_text, const char *name, const char **dbpath,
           const char **pos, const char **opt, const char *opt_name, const char **since,
           const char **feed, bool *json)
{
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            fputs(usage_text, stdout);
            return 1;
        }
        if (json != NULL && strcmp(argv[i], "--json") == 0) {
            *json = true;
        } else if (i + 1 < argc && strcmp(argv[i], "--db") == 0) {
            *dbpath = argv[++i];
        } else if (opt != NULL && i + 1 < argc && strcmp(argv[i], opt_name) == 0) {
            *opt = argv[++i];
        } else if (since != NULL && i + 1 < argc && strcmp(argv[i], "--since") == 0) {
            *since = argv[++i];
        } else if (feed != NULL && i + 1 < argc && strcmp(argv[i], "--feed") == 0) {
            *feed = argv[++i];
        } else if (pos != NULL && *pos == NULL && argv[i][0] != '-') {
            *pos = argv[i];
        } else {
            fprintf(stderr, "posgate-hub %s: unexpected argument \"%s\"\n\n%s", name, argv[i],
                    usage_text);
            return 2;
        }
    }
    if (*dbpath == NULL || (pos != NULL && *pos == NULL) || (opt != NULL && *opt == NULL)) {
        fprintf(stderr, "posgate-hub %s: missing arguments\n\n%s", name, usage_text);
        return 2;
    }
    return 0;
}

static int
open_db(const char *name, const char *dbpath, struct hub_db **db)
{
    char msg[512] = "";

    if (!hub_db_is_uri(dbpath) && !plat_exists(dbpath)) {
        fprintf(stderr, "posgate-hub %s: %s does not exist\n", name, dbpath);
        return 5;
    }
    if (hub_db_open(dbpath, db, msg, sizeof(msg)) != POSGATE_OK) {
        fprintf(stderr, "posgate-hub %s: %s\n", name, msg);
        return 5;
    }
    return 0;
}

static int
cmd_decision(int argc, char **argv)
{
    const char *dbpath = NULL, *id = NULL, *feed = NULL;
    struct hub_db *db = NULL;
    struct buf out = BUF_INIT(SIZE_MAX / 2);
    bool json = false;
    enum posgate_err err;
    int rc = query_args(argc, argv, usage_decision, "decision", &dbpath, &id, NULL, NULL, NULL,
                        &feed, &json);

    if (rc != 0) {
        return rc == 1 ? 0 : rc;
    }
    if (strlen(id) != 32 || strspn(id, "0123456789abcdef") != 32) {
        fprintf(stderr, "posgate-hub decision: a decision id is 32 lowercase hex digits (as the "
                        "counter notice prints it), not \"%.80s\"\n", id);
        return 2;
    }
    rc = open_db("decision", dbpath, &db);
    if (rc != 0) {
        return rc;
    }
    err = hub_db_decision(db, id, feed, json, &out);
    if (err == POSGATE_ERR_NOTFOUND) {
        fprintf(stderr, "posgate-hub decision: no event held has decision id %s\n", id);
        rc = 3;
    } else if (err != POSGATE_OK) {
        fprintf(stderr, "posgate-hub decision: %s\n", posgate_strerror(err));
        rc = 5;
    } else {
        fwrite(out.data, 1, out.len, stdout);
        rc = fflush(stdout) == 0 ? 0 : 5;
    }
    hub_db_close(db);
    buf_free(&out);
    return rc;
}

static int
cmd_decisions(int argc, char **argv)
{
    const char *dbpath = NULL, *listing = NULL, *since = NULL, *slash;
    struct hub_db *db = NULL;
    struct buf out = BUF_INIT(SIZE_MAX / 2);
    char list[AUDIT_ID_MAX + 1];
    bool json = false;
    enum posgate_err err;
    int rc = query_args(argc, argv, usage_decisions, "decisions", &dbpath, NULL, &listing,
                        "--listing", &since, NULL, &json);

    if (rc != 0) {
        return rc == 1 ? 0 : rc;
    }
    slash = strchr(listing, '/');
    if (slash == NULL || slash == listing || slash[1] == 0 ||
        (size_t)(slash - listing) > AUDIT_ID_MAX) {
        fprintf(stderr, "posgate-hub decisions: --listing expects LIST/LISTING_ID, not \"%s\"\n",
                listing);
        return 2;
    }
    snprintf(list, sizeof(list), "%.*s", (int)(slash - listing), listing);
    rc = open_db("decisions", dbpath, &db);
    if (rc != 0) {
        return rc;
    }
    err = hub_db_decisions(db, list, slash + 1, since, json, &out, NULL);
    if (err != POSGATE_OK) {
        fprintf(stderr, "posgate-hub decisions: %s\n",
                err == POSGATE_ERR_INVALID ? "--since expects an RFC 3339 UTC time or its prefix"
                                           : posgate_strerror(err));
        rc = err == POSGATE_ERR_INVALID ? 2 : 5;
    } else {
        fwrite(out.data, 1, out.len, stdout);
        rc = fflush(stdout) == 0 ? 0 : 5;
    }
    hub_db_close(db);
    buf_free(&out);
    return rc;
}

/* "30d", "12w", "2y", "3600s", "48h": seconds, or -1. */
static int64_t
parse_duration(const char *s)
{
    char *end = NULL;
    long long v = strtoll(s, &end, 10);
    int64_t unit;

    if (end == s || v <= 0 || v > 100000 || end[0] == 0 || end[1] != 0) {
        return -1;
    }
    unit = end[0] == 's' ? 1 : end[0] == 'h' ? 3600 : end[0] == 'd' ? 86400
         : end[0] == 'w' ? 7 * 86400 : end[0] == 'y' ? 365 * 86400 : -1;
    return unit < 0 ? -1 : (int64_t)v * unit;
}

static int
cmd_prune(int argc, char **argv)
{
    const char *dbpath = NULL, *older = NULL;
    struct hub_db *db = NULL;
    struct hub_prune res;
    char msg[512] = "";
    int64_t d, now = plat_wall_s();
    enum posgate_err err;
    int rc = query_args(argc, argv, usage_prune, "prune", &dbpath, NULL, &older, "--older-than",
                        NULL, NULL, NULL);

    if (rc != 0) {
        return rc == 1 ? 0 : rc;
    }
    d = parse_duration(older);
    if (d < 0) {
        fprintf(stderr, "posgate-hub prune: --older-than expects N followed by s, h, d, w or y, "
                        "not \"%s\"\n", older);
        return 2;
    }
    rc = open_db("prune", dbpath, &db);
    if (rc != 0) {
        return rc;
    }
    err = hub_db_prune(db, now - d, now, &res, msg, sizeof(msg));
    if (err != POSGATE_OK) {
        fprintf(stderr, "posgate-hub prune: %s\n", msg[0] != 0 ? msg : posgate_strerror(err));
        rc = 5;
    } else {
        printf("pruned %" PRIu64 " events received before %" PRId64 " (%" PRIu64
               " partitions dropped whole); %" PRIu64 " chain anchors moved\n",
               res.events, now - d, res.partitions, res.anchors);
        rc = fflush(stdout) == 0 ? 0 : 5;
    }
    hub_db_close(db);
    return rc;
}

int
main(int argc, char **argv)
{
    if (version_asked(argc, argv)) {
        char extra[128];

        snprintf(extra, sizeof(extra), "libmicrohttpd %s\n", MHD_get_version());
        version_print(stdout, "posgate-hub", VERSION_MBEDTLS | VERSION_SQLITE | VERSION_CJSON,
                      extra);
        return 0;
    }
    if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        fputs(usage, stdout);
        return 0;
    }
    if (argc >= 2 && strcmp(argv[1], "serve") == 0) {
        return cmd_serve(argc - 2, argv + 2);
    }
    if (argc >= 2 && strcmp(argv[1], "enroll") == 0) {
        return cmd_enroll(argc - 2, argv + 2);
    }
    if (argc >= 2 && strcmp(argv[1], "stats") == 0) {
        return cmd_stats(argc - 2, argv + 2);
    }
    if (argc >= 2 && strcmp(argv[1], "migrate-db") == 0) {
        return cmd_migrate(argc - 2, argv + 2);
    }
    if (argc >= 2 && strcmp(argv[1], "decision") == 0) {
        return cmd_decision(argc - 2, argv + 2);
    }
    if (argc >= 2 && strcmp(argv[1], "decisions") == 0) {
        return cmd_decisions(argc - 2, argv + 2);
    }
    if (argc >= 2 && strcmp(argv[1], "prune") == 0) {
        return cmd_prune(argc - 2, argv + 2);
    }
    if (argc >= 2 && strcmp(argv[1], "ingest") == 0) {
        return hub_ingest_main(argc - 2, argv + 2);
    }
    if (argc >= 2 && strcmp(argv[1], "devices") == 0) {
        return hub_devices_main(argc - 2, argv + 2);
    }
    if (argc >= 2 && argv[1][0] != '-') {
        fprintf(stderr, "posgate-hub: unknown command \"%s\"\n\n%s", argv[1], usage);
        return 2;
    }
    return cmd_serve(argc - 1, argv + 1);
}
