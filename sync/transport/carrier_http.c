/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The HTTP(S) carrier: one GET per fetch through libcurl (whose header only the fetcher, this
 * file and the uploader include), reusing one easy handle so a refresh stays on one connection.
 * The length cap is enforced twice: libcurl refuses a declared Content-Length above it, and the
 * write callback aborts as soon as the body passes it (a server that lies about the length or
 * sends forever). Bodies of non-200 answers never reach the sink. Redirects are not followed and
 * only http/https are allowed; a too-slow transfer is aborted (the slow retrieval attack).
 */
#define _POSIX_C_SOURCE 200809L
#include "carrier.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include <curl/curl.h>

#include "fetch.h"
#include "plat_mem.h"
#include "plat_text.h"

#define HTTP_URL_MAX     8192
#define HTTP_ERRBODY_MAX 65536

struct carrier_http {
    struct carrier base; /* first */
    CURL *curl;
    char base_url[HTTP_URL_MAX];
    char ca_file[4096];
    char user_agent[128];
    long connect_timeout_s, timeout_s, low_speed_limit, low_speed_time_s;
};

/* State of one transfer, seen by the write callback. */
struct xfer {
    CURL *curl;
    const struct carrier_sink *sink;
    uint64_t max_len;
    uint64_t total;
    uint64_t dropped; /* bytes of an error page */
    long status;
    enum posgate_err err; /* why the callback stopped the transfer */
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static int curl_init_ok;

static void
global_init(void)
{
    curl_init_ok = curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK;
}

static size_t
on_data(char *ptr, size_t size, size_t nmemb, void *ud)
{
    struct xfer *x = ud;
    size_t n = size * nmemb;

    if (x->status == 0) {
        curl_easy_getinfo(x->curl, CURLINFO_RESPONSE_CODE, &x->status);
    }
    if (x->status != 200) {
        /* An error page: dropped, and never more than HTTP_ERRBODY_MAX of it. */
        x->dropped += (uint64_t)n;
        return x->dropped > HTTP_ERRBODY_MAX ? 0 : n;
    }
    if ((uint64_t)n > x->max_len - x->total) {
        x->err = POSGATE_ERR_TOOBIG;
        return 0; /* aborts the transfer */
    }
    x->err = x->sink->write(x->sink->ctx, (const uint8_t *)ptr, n);
    if (x->err != POSGATE_OK) {
        return 0;
    }
    x->total += (uint64_t)n;
    return n;
}

/* Appends name to the base URL, percent-encoding what may not stand in a URL path. '%' is kept:
 * callers pass names they have already escaped (role names). */
static enum posgate_err
make_url(const struct carrier_http *h, const char *name, char *out, size_t cap)
{
    size_t o = strlen(h->base_url);

    if (o >= cap) {
        return POSGATE_ERR_TOOBIG;
    }
    memcpy(out, h->base_url, o);
    return plat_url_escape(name, strlen(name), PLAT_URL_KEEP_PATH | PLAT_URL_KEEP_PERCENT, out + o,
                           cap - o, NULL);
}

static enum posgate_err
http_fetch(struct carrier *c, const char *name, uint64_t max_len, const struct carrier_sink *sink,
           uint64_t *got)
{
    struct carrier_http *h = (struct carrier_http *)c;
    struct xfer x = {h->curl, sink, max_len, 0, 0, 0, POSGATE_OK};
    char url[HTTP_URL_MAX + 4 * CARRIER_NAME_MAX];
    char cerr[CURL_ERROR_SIZE];
    CURLcode rc;

    if (make_url(h, name, url, sizeof(url)) != POSGATE_OK) {
        snprintf(c->errmsg, sizeof(c->errmsg), "URL for %.200s is too long", name);
        return POSGATE_ERR_INVALID;
    }
    cerr[0] = 0;
    curl_easy_setopt(h->curl, CURLOPT_URL, url);
    curl_easy_setopt(h->curl, CURLOPT_HTTPGET, 1L);
    curl_easy_setopt(h->curl, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(h->curl, CURLOPT_WRITEDATA, &x);
    curl_easy_setopt(h->curl, CURLOPT_ERRORBUFFER, cerr);
    curl_easy_setopt(h->curl, CURLOPT_MAXFILESIZE_LARGE,
                     (curl_off_t)(max_len > (uint64_t)INT64_MAX ? INT64_MAX : max_len));
    rc = curl_easy_perform(h->curl);
    curl_easy_setopt(h->curl, CURLOPT_ERRORBUFFER, NULL);
    if (x.status == 0) {
        curl_easy_getinfo(h->curl, CURLINFO_RESPONSE_CODE, &x.status);
    }
    if (rc == CURLE_FILESIZE_EXCEEDED || (rc == CURLE_WRITE_ERROR && x.err == POSGATE_ERR_TOOBIG)) {
        snprintf(c->errmsg, sizeof(c->errmsg),
                 "GET %.300s: body longer than the %llu bytes allowed", url,
                 (unsigned long long)max_len);
        return POSGATE_ERR_TOOBIG;
    }
    if (rc == CURLE_WRITE_ERROR && x.status != 200 && x.status != 0) {
        rc = CURLE_OK; /* we stopped reading an oversized error page: report its status */
    }
    if (rc == CURLE_WRITE_ERROR && x.err != POSGATE_OK) {
        snprintf(c->errmsg, sizeof(c->errmsg), "GET %.300s: the receiver refused the data (%s)",
                 url, posgate_err_name(x.err));
        return x.err;
    }
    if (rc != CURLE_OK) {
        snprintf(c->errmsg, sizeof(c->errmsg), "GET %.300s: %.150s", url,
                 cerr[0] != 0 ? cerr : curl_easy_strerror(rc));
        return POSGATE_ERR_NETWORK;
    }
    if (x.status == 404 || x.status == 410) {
        snprintf(c->errmsg, sizeof(c->errmsg), "GET %.300s: HTTP %ld (not found)", url, x.status);
        return POSGATE_ERR_NOTFOUND;
    }
    if (x.status != 200) {
        snprintf(c->errmsg, sizeof(c->errmsg), "GET %.300s: HTTP %ld, expected 200", url, x.status);
        return (x.status == 429 || x.status >= 500) ? POSGATE_ERR_RETRY : POSGATE_ERR_NETWORK;
    }
    *got = x.total;
    return POSGATE_OK;
}

static void
http_destroy(struct carrier *c)
{
    struct carrier_http *h = (struct carrier_http *)c;

    if (h->curl != NULL) {
        curl_easy_cleanup(h->curl);
    }
    plat_free(h);
}

static const struct carrier_ops http_ops = {"http", http_fetch, http_destroy};

static enum posgate_err
copy_str(char *dst, size_t cap, const char *src)
{
    size_t n = strlen(src);

    if (n >= cap) {
        return POSGATE_ERR_TOOBIG;
    }
    memcpy(dst, src, n + 1);
    return POSGATE_OK;
}

enum posgate_err
carrier_http_new(const char *base_url, const struct carrier_http_options *opt, struct carrier **out)
{
    struct carrier_http *h = NULL;
    enum posgate_err err = POSGATE_OK;
    size_t n;

    if (out == NULL) {
        return POSGATE_ERR_INVALID;
    }
    *out = NULL;
    if (base_url == NULL ||
        (strncmp(base_url, "http://", 7) != 0 && strncmp(base_url, "https://", 8) != 0)) {
        return POSGATE_ERR_INVALID;
    }
    pthread_once(&curl_once, global_init);
    if (!curl_init_ok) {
        return POSGATE_ERR_NETWORK;
    }
    h = plat_calloc(1, sizeof(*h));
    if (h == NULL) {
        return POSGATE_ERR_NOMEM;
    }
    h->base.ops = &http_ops;
    n = strlen(base_url);
    if (n + 2 > sizeof(h->base_url)) {
        err = POSGATE_ERR_TOOBIG;
        goto out;
    }
    memcpy(h->base_url, base_url, n + 1);
    if (n > 0 && base_url[n - 1] != '/') {
        h->base_url[n] = '/';
        h->base_url[n + 1] = 0;
    }
    h->connect_timeout_s =
        (opt != NULL && opt->connect_timeout_s > 0) ? opt->connect_timeout_s : 10;
    h->timeout_s = (opt != NULL && opt->timeout_s > 0) ? opt->timeout_s : 300;
    h->low_speed_limit = (opt != NULL && opt->low_speed_limit > 0) ? opt->low_speed_limit : 1;
    h->low_speed_time_s = (opt != NULL && opt->low_speed_time_s > 0) ? opt->low_speed_time_s : 30;
    if (opt != NULL && opt->ca_file != NULL) {
        err = copy_str(h->ca_file, sizeof(h->ca_file), opt->ca_file);
    }
    if (err == POSGATE_OK) {
        err = copy_str(h->user_agent, sizeof(h->user_agent),
                       (opt != NULL && opt->user_agent != NULL) ? opt->user_agent : "posgate/0.1");
    }
    if (err != POSGATE_OK) {
        goto out;
    }
    h->curl = curl_easy_init();
    if (h->curl == NULL) {
        err = POSGATE_ERR_NOMEM;
        goto out;
    }
    curl_easy_setopt(h->curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h->curl, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(h->curl, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h->curl, CURLOPT_CONNECTTIMEOUT, h->connect_timeout_s);
    curl_easy_setopt(h->curl, CURLOPT_TIMEOUT, h->timeout_s);
    curl_easy_setopt(h->curl, CURLOPT_LOW_SPEED_LIMIT, h->low_speed_limit);
    curl_easy_setopt(h->curl, CURLOPT_LOW_SPEED_TIME, h->low_speed_time_s);
    curl_easy_setopt(h->curl, CURLOPT_USERAGENT, h->user_agent);
    curl_easy_setopt(h->curl, CURLOPT_ACCEPT_ENCODING, NULL); /* the cap counts wire bytes */
    fetch_curl_tls(h->curl, h->ca_file, NULL, NULL);
    *out = &h->base;
    h = NULL;
out:
    if (h != NULL) {
        http_destroy(&h->base);
    }
    return err;
}
