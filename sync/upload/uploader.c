/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The audit uploader's transport (uploader.h): zlib gzip of a batch, one libcurl POST with the
 * fetcher's TLS/mTLS/proxy rules, and the classification of the collector's answer
 * (docs/collector.md, "Responses"). The daemon's upload loop (agent/daemon/daemon.c) decides what to
 * do with each kind: acknowledge, back off, wait for Retry-After or stop at a chain break.
 */
#define _POSIX_C_SOURCE 200809L
#include "uploader.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <zlib.h>

#include "fetch.h"
#include "json_canon.h"
#include "plat_clock.h"
#include "plat_mem.h"

#define KEY_MAX 128

struct uploader {
    CURL *curl;
    char url[1024];
    char status_url[1024]; /* url with its last segment replaced by "device-status" */
    char ca_file[1024];
    char client_cert[1024];
    char client_key[1024];
    char proxy[1024];
    char user_agent[128];
    struct buf gz;
    struct buf resp;
};

/* What the header and body callbacks collect for one request. */
struct exchange {
    struct buf *resp;
    int truncated;
    char retry_after[64];
    char date[64];
};

/* The status URL of an audit URL: its last path segment replaced by "device-status". */
static int
status_url(const char *url, char *out, size_t cap)
{
    const char *host = strstr(url, "://"), *slash;
    int n;

    slash = host != NULL ? strrchr(host + 3, '/') : NULL;
    if (slash == NULL) {
        n = snprintf(out, cap, "%s/device-status", url);
    } else {
        n = snprintf(out, cap, "%.*s/device-status", (int)(slash - url), url);
    }
    return n > 0 && (size_t)n < cap;
}

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static int curl_init_ok;

static void
global_init(void)
{
    curl_init_ok = curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK;
}

static const char *const kind_names[UPLOAD__COUNT] = {
    "ok", "network", "tls", "timeout", "throttled", "server", "refused", "chain_break", "protocol",
};

const char *
uploader_kind_name(enum uploader_kind k)
{
    return (unsigned)k < UPLOAD__COUNT ? kind_names[k] : "unknown";
}

static int
url_ok(const char *u)
{
    const char *rest;

    if (strncmp(u, "http://", 7) == 0) {
        rest = u + 7;
    } else if (strncmp(u, "https://", 8) == 0) {
        rest = u + 8;
    } else {
        return 0;
    }
    if (*rest == 0 || *rest == '/' || *rest == ':') {
        return 0;
    }
    for (const char *p = u; *p; p++) {
        if ((unsigned char)*p <= 0x20 || *p == 0x7f) {
            return 0;
        }
    }
    return 1;
}

static int
copy_opt(char *dst, size_t cap, const char *src)
{
    size_t n = src != NULL ? strlen(src) : 0;

    if (n >= cap) {
        return 0;
    }
    memcpy(dst, src != NULL ? src : "", n);
    dst[n] = 0;
    return 1;
}

enum posgate_err
uploader_new(const struct uploader_options *opt, struct uploader **out, char *errmsg, size_t errcap)
{
    struct uploader *u;

    *out = NULL;
    if (opt == NULL || opt->url == NULL || strlen(opt->url) >= sizeof(u->url) ||
        !url_ok(opt->url)) {
        snprintf(errmsg, errcap,
                 "audit_url: expected an http:// or https:// URL with a host, "
                 "found \"%.200s\"",
                 opt != NULL && opt->url != NULL ? opt->url : "(none)");
        return POSGATE_ERR_INVALID;
    }
    if ((opt->client_cert != NULL && opt->client_cert[0] != 0) !=
        (opt->client_key != NULL && opt->client_key[0] != 0)) {
        snprintf(errmsg, errcap, "expected client_cert and client_key together, found only one");
        return POSGATE_ERR_INVALID;
    }
    pthread_once(&curl_once, global_init);
    if (!curl_init_ok) {
        snprintf(errmsg, errcap, "libcurl could not be initialised");
        return POSGATE_ERR_NETWORK;
    }
    u = plat_calloc(1, sizeof(*u));
    if (u == NULL) {
        snprintf(errmsg, errcap, "out of memory");
        return POSGATE_ERR_NOMEM;
    }
    if (!status_url(opt->url, u->status_url, sizeof(u->status_url)) ||
        !copy_opt(u->url, sizeof(u->url), opt->url) ||
        !copy_opt(u->ca_file, sizeof(u->ca_file), opt->ca_file) ||
        !copy_opt(u->client_cert, sizeof(u->client_cert), opt->client_cert) ||
        !copy_opt(u->client_key, sizeof(u->client_key), opt->client_key) ||
        !copy_opt(u->proxy, sizeof(u->proxy), opt->proxy) ||
        !copy_opt(u->user_agent, sizeof(u->user_agent),
                  opt->user_agent != NULL ? opt->user_agent : "posgate/0.1")) {
        snprintf(errmsg, errcap, "an uploader option is longer than 1023 bytes");
        plat_free(u);
        return POSGATE_ERR_INVALID;
    }
    u->curl = curl_easy_init();
    if (u->curl == NULL) {
        snprintf(errmsg, errcap, "libcurl: no easy handle");
        plat_free(u);
        return POSGATE_ERR_NOMEM;
    }
    buf_init(&u->gz, UPLOADER_BODY_MAX + 1024);
    buf_init(&u->resp, UPLOADER_RESP_MAX);
    curl_easy_setopt(u->curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(u->curl, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(u->curl, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(u->curl, CURLOPT_CONNECTTIMEOUT,
                     opt->connect_timeout_s > 0 ? opt->connect_timeout_s : 10L);
    curl_easy_setopt(u->curl, CURLOPT_TIMEOUT, opt->timeout_s > 0 ? opt->timeout_s : 60L);
    curl_easy_setopt(u->curl, CURLOPT_USERAGENT, u->user_agent);
    fetch_curl_tls(u->curl, u->ca_file, u->client_cert, u->client_key);
    /* "" disables the *_proxy environment variables: the proxy comes from configuration */
    curl_easy_setopt(u->curl, CURLOPT_PROXY, u->proxy);
    *out = u;
    return POSGATE_OK;
}

void
uploader_free(struct uploader *u)
{
    if (u == NULL) {
        return;
    }
    curl_easy_cleanup(u->curl);
    buf_free(&u->gz);
    buf_free(&u->resp);
    plat_free(u);
}

enum posgate_err
uploader_gzip(const void *in, size_t len, struct buf *out)
{
    z_stream z;
    enum posgate_err err = POSGATE_OK;
    int zr;

    buf_reset(out);
    if (len > UPLOADER_BODY_MAX) {
        return POSGATE_ERR_TOOBIG;
    }
    memset(&z, 0, sizeof(z));
    /* 15 + 16: a gzip wrapper (RFC 1952) rather than zlib's */
    if (deflateInit2(&z, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
        return POSGATE_ERR_NOMEM;
    }
    err = buf_reserve(out, (size_t)deflateBound(&z, (uLong)len));
    if (err != POSGATE_OK) {
        goto out;
    }
    z.next_in = (Bytef *)(uintptr_t)in;
    z.avail_in = (uInt)len;
    z.next_out = out->data;
    z.avail_out = (uInt)(out->cap);
    zr = deflate(&z, Z_FINISH);
    if (zr != Z_STREAM_END) {
        err = POSGATE_ERR_NOMEM;
        goto out;
    }
    out->len = (size_t)z.total_out;
out:
    deflateEnd(&z);
    return err;
}

enum posgate_err
uploader_batch_key(const void *body, size_t len, char *key, size_t cap)
{
    cJSON *root = NULL;
    const cJSON *k;
    char msg[128];
    enum posgate_err err;
    size_t n;

    json_init_hooks();
    err = json_parse_bounded(body, len, UPLOADER_BODY_MAX, &root, msg, sizeof(msg));
    if (err != POSGATE_OK) {
        return POSGATE_ERR_PARSE;
    }
    err = POSGATE_ERR_INVALID;
    k = cJSON_IsObject(root) ? cJSON_GetObjectItemCaseSensitive(root, "idempotency_key") : NULL;
    if (!cJSON_IsString(k)) {
        goto out;
    }
    n = strlen(k->valuestring);
    if (n == 0 || n > KEY_MAX || n >= cap) {
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)k->valuestring[i];

        if (c < 0x21 || c > 0x7e) {
            goto out;
        }
    }
    memcpy(key, k->valuestring, n + 1);
    err = POSGATE_OK;
out:
    cJSON_Delete(root);
    return err;
}

/* A non-negative integer member of obj, or 0 with *found 0. */
static uint64_t
member_u64(const cJSON *obj, const char *name, int *found)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);

    *found = 0;
    if (!cJSON_IsNumber(v) || !(v->valuedouble >= 0 && v->valuedouble <= 9007199254740992.0) ||
        v->valuedouble != (double)(uint64_t)v->valuedouble) {
        return 0;
    }
    *found = 1;
    return (uint64_t)v->valuedouble;
}

/* The "error" member of a JSON answer, else the start of the body, into dst. */
static void
answer_error(const cJSON *root, const char *body, size_t len, char *dst, size_t cap)
{
    const cJSON *e = cJSON_IsObject(root) ? cJSON_GetObjectItemCaseSensitive(root, "error") : NULL;
    size_t n;

    if (cJSON_IsString(e)) {
        snprintf(dst, cap, "%.400s", e->valuestring);
        return;
    }
    n = len < 200 ? len : 200;
    snprintf(dst, cap, "%.*s", (int)n, body != NULL ? body : "");
    for (char *p = dst; *p; p++) {
        if ((unsigned char)*p < 0x20) {
            *p = ' ';
        }
    }
}

void
uploader_classify(long status, const char *body, size_t len, const char *retry_after, int64_t now,
                  struct uploader_result *res)
{
    cJSON *root = NULL;
    char msg[128], detail[420];
    int found = 0, found_held = 0;

    res->http_status = status;
    res->acked_seq = res->held_seq = res->broken_at = res->retry_after_s = 0;
    res->error[0] = 0;
    json_init_hooks();
    if (body != NULL && len > 0 &&
        json_parse_bounded(body, len, UPLOADER_RESP_MAX, &root, msg, sizeof(msg)) != POSGATE_OK) {
        root = NULL;
    }
    detail[0] = 0;
    answer_error(root, body, len, detail, sizeof(detail));
    if (status == 200) {
        res->acked_seq = cJSON_IsObject(root) ? member_u64(root, "acked_seq", &found) : 0;
        if (!found) {
            res->kind = UPLOAD_PROTOCOL;
            snprintf(res->error, sizeof(res->error),
                     "collector answered 200 without a non-negative integer acked_seq: %s", detail);
        } else {
            res->kind = UPLOAD_OK;
            res->held_seq = member_u64(root, "held_seq", &found_held);
            if (!found_held || res->held_seq < res->acked_seq) {
                res->held_seq = res->acked_seq;
            }
        }
    } else if (status == 409) {
        res->kind = UPLOAD_CHAIN_BREAK;
        if (cJSON_IsObject(root)) {
            res->acked_seq = member_u64(root, "acked_seq", &found);
            res->broken_at = member_u64(root, "broken_at", &found);
        }
        snprintf(res->error, sizeof(res->error),
                 "collector reports a broken chain at seq %llu (HTTP 409): %s",
                 (unsigned long long)res->broken_at, detail);
    } else if (status == 422) {
        /* the kiosk's own events do not hash to the head it signed: `posgate audit verify` */
        res->kind = UPLOAD_CHAIN_BREAK;
        if (cJSON_IsObject(root)) {
            res->acked_seq = member_u64(root, "acked_seq", &found);
            res->broken_at = member_u64(root, "broken_at", &found);
        }
        snprintf(res->error, sizeof(res->error),
                 "collector cannot verify the batch against its signed head at seq %llu (HTTP "
                 "422): %s",
                 (unsigned long long)res->broken_at, detail);
    } else if (status == 429 || status == 503) {
        uint64_t s = 0;

        res->kind = UPLOAD_THROTTLED;
        if (retry_after != NULL && fetch_parse_retry_after(retry_after, now, &s) == POSGATE_OK) {
            res->retry_after_s = s;
        }
        snprintf(res->error, sizeof(res->error),
                 "collector busy (HTTP %ld, Retry-After %llu s): %s", status,
                 (unsigned long long)res->retry_after_s, detail);
    } else if (status >= 500 && status <= 599) {
        res->kind = UPLOAD_SERVER;
        snprintf(res->error, sizeof(res->error), "collector failed (HTTP %ld): %s", status, detail);
    } else if (status >= 400 && status <= 499) {
        res->kind = UPLOAD_REFUSED;
        snprintf(res->error, sizeof(res->error), "collector refused the batch (HTTP %ld): %s",
                 status, detail);
    } else {
        res->kind = UPLOAD_PROTOCOL;
        snprintf(res->error, sizeof(res->error),
                 "collector answered HTTP %ld, expected 200, 409, 429 or 503: %s", status, detail);
    }
    cJSON_Delete(root);
}

/* The value of header line p (len bytes) when it is name (with the colon), into out. */
static void
header_value(const char *p, size_t len, const char *name, char *out, size_t cap)
{
    size_t a = strlen(name), b = len;

    if (len <= a || strncasecmp(p, name, a) != 0) {
        return;
    }
    while (a < b && (p[a] == ' ' || p[a] == '\t')) {
        a++;
    }
    while (b > a && (p[b - 1] == '\r' || p[b - 1] == '\n' || p[b - 1] == ' ')) {
        b--;
    }
    if (b - a < cap) {
        memcpy(out, p + a, b - a);
        out[b - a] = 0;
    }
}

static size_t
on_header(char *p, size_t size, size_t n, void *ctx)
{
    struct exchange *x = ctx;
    size_t len = size * n;

    header_value(p, len, "Retry-After:", x->retry_after, sizeof(x->retry_after));
    header_value(p, len, "Date:", x->date, sizeof(x->date));
    return len;
}

static size_t
on_data(char *p, size_t size, size_t n, void *ctx)
{
    struct exchange *x = ctx;
    size_t len = size * n;

    if (buf_append(x->resp, p, len) != POSGATE_OK) {
        x->truncated = 1; /* the rest is not needed: the answer is small JSON */
    }
    return len;
}

static enum uploader_kind
transport_kind(CURLcode rc)
{
    static const CURLcode tls[] = {
        CURLE_SSL_CONNECT_ERROR, CURLE_PEER_FAILED_VERIFICATION, CURLE_SSL_CERTPROBLEM,
        CURLE_SSL_CIPHER,        CURLE_SSL_CACERT_BADFILE,       CURLE_SSL_ISSUER_ERROR,
        CURLE_SSL_CRL_BADFILE,   CURLE_SSL_PINNEDPUBKEYNOTMATCH, CURLE_SSL_INVALIDCERTSTATUS,
        CURLE_USE_SSL_FAILED,    CURLE_SSL_CLIENTCERT,
    };

    if (rc == CURLE_OPERATION_TIMEDOUT) {
        return UPLOAD_TIMEOUT;
    }
    for (size_t i = 0; i < sizeof(tls) / sizeof(tls[0]); i++) {
        if (rc == tls[i]) {
            return UPLOAD_TLS;
        }
    }
    return UPLOAD_NETWORK;
}

enum posgate_err
uploader_post(struct uploader *u, const void *body, size_t len, struct uploader_result *res)
{
    char key[KEY_MAX + 1], hdr[KEY_MAX + 32], cerr[CURL_ERROR_SIZE];
    struct curl_slist *headers = NULL, *h;
    struct exchange x;
    enum posgate_err err;
    CURLcode rc;
    long status = 0;

    memset(res, 0, sizeof(*res));
    err = uploader_batch_key(body, len, key, sizeof(key));
    if (err != POSGATE_OK) {
        res->kind = UPLOAD_PROTOCOL;
        snprintf(res->error, sizeof(res->error),
                 "the batch is not a JSON object with an idempotency_key");
        return POSGATE_ERR_INVALID;
    }
    err = uploader_gzip(body, len, &u->gz);
    if (err != POSGATE_OK) {
        snprintf(res->error, sizeof(res->error), "gzip of the batch failed (%s)",
                 posgate_err_name(err));
        return err;
    }
    snprintf(hdr, sizeof(hdr), "Idempotency-Key: %s", key);
    {
        const char *lines[] = {"Content-Type: application/json", "Content-Encoding: gzip", hdr,
                               "Expect:"};

        for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++) {
            h = curl_slist_append(headers, lines[i]);
            if (h == NULL) {
                curl_slist_free_all(headers);
                snprintf(res->error, sizeof(res->error), "out of memory");
                return POSGATE_ERR_NOMEM;
            }
            headers = h;
        }
    }
    buf_reset(&u->resp);
    memset(&x, 0, sizeof(x));
    x.resp = &u->resp;
    cerr[0] = 0;
    curl_easy_setopt(u->curl, CURLOPT_URL, u->url);
    curl_easy_setopt(u->curl, CURLOPT_POST, 1L);
    curl_easy_setopt(u->curl, CURLOPT_POSTFIELDS, (const char *)u->gz.data);
    curl_easy_setopt(u->curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)u->gz.len);
    curl_easy_setopt(u->curl, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(u->curl, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(u->curl, CURLOPT_HEADERDATA, &x);
    curl_easy_setopt(u->curl, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(u->curl, CURLOPT_WRITEDATA, &x);
    curl_easy_setopt(u->curl, CURLOPT_ERRORBUFFER, cerr);
    rc = curl_easy_perform(u->curl);
    curl_easy_setopt(u->curl, CURLOPT_ERRORBUFFER, NULL);
    curl_easy_setopt(u->curl, CURLOPT_HTTPHEADER, NULL);
    curl_easy_setopt(u->curl, CURLOPT_POSTFIELDS, NULL);
    curl_slist_free_all(headers);
    res->sent_bytes = u->gz.len;
    if (rc != CURLE_OK) {
        res->kind = transport_kind(rc);
        snprintf(res->error, sizeof(res->error), "POST %.200s: %.100s (%.180s)", u->url,
                 curl_easy_strerror(rc), cerr[0] ? cerr : "no detail");
        return POSGATE_OK;
    }
    curl_easy_getinfo(u->curl, CURLINFO_RESPONSE_CODE, &status);
    uploader_classify(status, (const char *)u->resp.data, x.truncated ? 0 : u->resp.len,
                      x.retry_after[0] ? x.retry_after : NULL, plat_wall_s(), res);
    if (x.date[0] == 0 || fetch_parse_http_date(x.date, &res->server_date) != POSGATE_OK) {
        res->server_date = 0;
    }
    return POSGATE_OK;
}

enum posgate_err
uploader_post_status(struct uploader *u, const void *body, size_t len, struct uploader_result *res)
{
    static const char *const lines[] = {"Content-Type: application/json", "Content-Encoding: gzip",
                                        "Expect:"};
    char cerr[CURL_ERROR_SIZE];
    struct curl_slist *headers = NULL, *h;
    struct exchange x;
    enum posgate_err err;
    CURLcode rc;
    long status = 0;
    uint64_t s;

    memset(res, 0, sizeof(*res));
    if (u == NULL || body == NULL || len > UPLOADER_BODY_MAX) {
        return POSGATE_ERR_INVALID;
    }
    err = uploader_gzip(body, len, &u->gz);
    if (err != POSGATE_OK) {
        snprintf(res->error, sizeof(res->error), "gzip of the report failed (%s)",
                 posgate_err_name(err));
        return err;
    }
    for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++) {
        h = curl_slist_append(headers, lines[i]);
        if (h == NULL) {
            curl_slist_free_all(headers);
            snprintf(res->error, sizeof(res->error), "out of memory");
            return POSGATE_ERR_NOMEM;
        }
        headers = h;
    }
    buf_reset(&u->resp);
    memset(&x, 0, sizeof(x));
    x.resp = &u->resp;
    cerr[0] = 0;
    curl_easy_setopt(u->curl, CURLOPT_URL, u->status_url);
    curl_easy_setopt(u->curl, CURLOPT_POST, 1L);
    curl_easy_setopt(u->curl, CURLOPT_POSTFIELDS, (const char *)u->gz.data);
    curl_easy_setopt(u->curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)u->gz.len);
    curl_easy_setopt(u->curl, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(u->curl, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(u->curl, CURLOPT_HEADERDATA, &x);
    curl_easy_setopt(u->curl, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(u->curl, CURLOPT_WRITEDATA, &x);
    curl_easy_setopt(u->curl, CURLOPT_ERRORBUFFER, cerr);
    rc = curl_easy_perform(u->curl);
    curl_easy_setopt(u->curl, CURLOPT_ERRORBUFFER, NULL);
    curl_easy_setopt(u->curl, CURLOPT_HTTPHEADER, NULL);
    curl_easy_setopt(u->curl, CURLOPT_POSTFIELDS, NULL);
    curl_slist_free_all(headers);
    res->sent_bytes = u->gz.len;
    if (rc != CURLE_OK) {
        res->kind = transport_kind(rc);
        snprintf(res->error, sizeof(res->error), "POST %.200s: %.100s (%.180s)", u->status_url,
                 curl_easy_strerror(rc), cerr[0] ? cerr : "no detail");
        return POSGATE_OK;
    }
    curl_easy_getinfo(u->curl, CURLINFO_RESPONSE_CODE, &status);
    res->http_status = status;
    if (x.date[0] == 0 || fetch_parse_http_date(x.date, &res->server_date) != POSGATE_OK) {
        res->server_date = 0;
    }
    if (status == 200) {
        res->kind = UPLOAD_OK;
        return POSGATE_OK;
    }
    res->kind = status == 429 || status == 503 ? UPLOAD_THROTTLED
                : status >= 500                ? UPLOAD_SERVER
                                               : UPLOAD_REFUSED;
    if (res->kind == UPLOAD_THROTTLED && x.retry_after[0] != 0 &&
        fetch_parse_retry_after(x.retry_after, plat_wall_s(), &s) == POSGATE_OK) {
        res->retry_after_s = s;
    }
    snprintf(res->error, sizeof(res->error), "POST %.200s: HTTP %ld: %.*s", u->status_url, status,
             (int)(u->resp.len < 200 ? u->resp.len : 200),
             u->resp.len > 0 ? (const char *)u->resp.data : "");
    return POSGATE_OK;
}
