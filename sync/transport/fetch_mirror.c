/* SPDX-License-Identifier: Apache-2.0 */
/*
 * One mirror's attempt at one file (fetch.h, fetch_internal.h): the URL, the request (Range and
 * If-Range for a resume, If-None-Match / If-Modified-Since for the conditional GET, the time
 * left in the sync's budget), the libcurl callbacks that take headers and body into the spool,
 * and what the answer or the failure means for the carrier (enum outcome), counted in the stats.
 */
#define _DEFAULT_SOURCE
#include "fetch_internal.h"

#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "buf.h"
#include "plat_clock.h"
#include "plat_log.h"
#include "plat_text.h"

/* One request. */
struct xfer {
    struct fetch *f;
    struct spool *sp;
    const char *name;
    long status;
    int started; /* first body byte seen */
    uint64_t max_len;
    uint64_t offset; /* bytes in the spool when the request was sent (resume) */
    enum posgate_err err;
    int restart;           /* the resume went wrong: drop the part and ask again */
    int validator_changed; /* ... because a 206 named another validator */
    char etag[FETCH_HDR_MAX];
    char last_modified[FETCH_HDR_MAX];
    char content_range[FETCH_HDR_MAX];
    char retry_after[FETCH_HDR_MAX];
    char errbody[FETCH_ERRBODY_MAX];
    size_t errbody_len;
};

/* Appends name to base, percent-encoding what may not stand in a URL path ('%' kept: callers
 * pass already escaped role names). */
static enum posgate_err
make_url(const char *base, const char *dir, const char *name, char *out, size_t cap)
{
    int n = snprintf(out, cap, "%s%s", base, dir);

    if (n < 0 || (size_t)n >= cap) {
        return POSGATE_ERR_TOOBIG;
    }
    return plat_url_escape(name, strlen(name), PLAT_URL_KEEP_PATH | PLAT_URL_KEEP_PERCENT, out + n,
                           cap - (size_t)n, NULL);
}

/* ---- headers ---- */

static void
trim_value(const char *v, size_t n, char *out, size_t cap)
{
    while (n > 0 && (*v == ' ' || *v == '\t')) {
        v++;
        n--;
    }
    while (n > 0 && (v[n - 1] == '\r' || v[n - 1] == '\n' || v[n - 1] == ' ' || v[n - 1] == '\t')) {
        n--;
    }
    if (n >= cap) {
        out[0] = 0; /* too long to be a validator we would send back */
        return;
    }
    for (size_t i = 0; i < n; i++) {
        if ((unsigned char)v[i] < 0x20 || (unsigned char)v[i] == 0x7f) {
            out[0] = 0;
            return;
        }
    }
    memcpy(out, v, n);
    out[n] = 0;
}

static size_t
on_header(char *ptr, size_t size, size_t nmemb, void *ud)
{
    struct xfer *x = ud;
    size_t n = size * nmemb;
    const char *colon;
    size_t kl;

    if (n >= 5 && memcmp(ptr, "HTTP/", 5) == 0) {
        /* a new response (after a 100 or a proxy's CONNECT): forget the last one's headers */
        x->etag[0] = x->last_modified[0] = x->content_range[0] = x->retry_after[0] = 0;
        return n;
    }
    colon = memchr(ptr, ':', n);
    if (colon == NULL) {
        return n;
    }
    kl = (size_t)(colon - ptr);
    if (kl == 4 && strncasecmp(ptr, "etag", 4) == 0) {
        trim_value(colon + 1, n - kl - 1, x->etag, sizeof(x->etag));
    } else if (kl == 13 && strncasecmp(ptr, "last-modified", 13) == 0) {
        trim_value(colon + 1, n - kl - 1, x->last_modified, sizeof(x->last_modified));
    } else if (kl == 13 && strncasecmp(ptr, "content-range", 13) == 0) {
        trim_value(colon + 1, n - kl - 1, x->content_range, sizeof(x->content_range));
    } else if (kl == 11 && strncasecmp(ptr, "retry-after", 11) == 0) {
        trim_value(colon + 1, n - kl - 1, x->retry_after, sizeof(x->retry_after));
    }
    return n;
}

/* "bytes FIRST-LAST/TOTAL" (TOTAL may be '*'). */
static int
parse_content_range(const char *s, uint64_t *first, uint64_t *total, int *total_known)
{
    const char *dash, *slash;
    uint64_t last;

    if (strncmp(s, "bytes ", 6) != 0) {
        return 0;
    }
    s += 6;
    dash = strchr(s, '-');
    slash = dash != NULL ? strchr(dash, '/') : NULL;
    if (dash == NULL || slash == NULL ||
        !fx_parse_uint(s, (size_t)(dash - s), UINT64_MAX / 10, first) ||
        !fx_parse_uint(dash + 1, (size_t)(slash - dash - 1), UINT64_MAX / 10, &last) ||
        last < *first) {
        return 0;
    }
    if (strcmp(slash + 1, "*") == 0) {
        *total_known = 0;
        return 1;
    }
    *total_known = 1;
    return fx_parse_uint(slash + 1, strlen(slash + 1), UINT64_MAX / 10, total) && *total > last;
}

/* ---- the body ---- */

static size_t
on_data(char *ptr, size_t size, size_t nmemb, void *ud)
{
    struct xfer *x = ud;
    size_t n = size * nmemb;

    if (!x->started) {
        x->started = 1;
        curl_easy_getinfo(x->f->curl, CURLINFO_RESPONSE_CODE, &x->status);
        if (x->status == 200) {
            if (x->offset > 0 || x->sp->len > 0) {
                /* the server ignored the Range or the file changed (If-Range): start over */
                if (fx_spool_truncate(x->sp) != POSGATE_OK) {
                    x->err = POSGATE_ERR_IO;
                    return 0;
                }
                x->offset = 0;
            }
            fx_spool_set_validator(x->sp, x->name, x->etag,
                                   x->etag[0] != 0 ? "" : x->last_modified);
        } else if (x->status == 206) {
            uint64_t first = 0, total = 0;
            int known = 0;

            if (x->offset == 0 || !parse_content_range(x->content_range, &first, &total, &known) ||
                first != x->offset) {
                x->restart = 1;
                return 0;
            }
            /* the rest must be of the same file as the held bytes: a 206 with another validator
             * (or none) would splice two versions together */
            if (x->sp->etag[0] != 0 ? strcmp(x->etag, x->sp->etag) != 0
                                    : strcmp(x->last_modified, x->sp->last_modified) != 0) {
                x->restart = 1;
                x->validator_changed = 1;
                return 0;
            }
            if (known && total > x->max_len) {
                x->err = POSGATE_ERR_TOOBIG;
                return 0;
            }
        }
    }
    if (x->status != 200 && x->status != 206) {
        size_t room = sizeof(x->errbody) - 1 - x->errbody_len;
        size_t take = n < room ? n : room;

        memcpy(x->errbody + x->errbody_len, ptr, take);
        x->errbody_len += take;
        x->errbody[x->errbody_len] = 0;
        return n; /* an error page: read and drop it (bounded by the timeouts) */
    }
    if ((uint64_t)n > x->max_len || x->sp->len > x->max_len - (uint64_t)n) {
        x->err = POSGATE_ERR_TOOBIG;
        return 0;
    }
    x->err = fx_spool_write(x->sp, ptr, n);
    if (x->err != POSGATE_OK) {
        return 0;
    }
    fx_count(x->f, &x->f->stats.bytes, n);
    return n;
}

/* ---- what an attempt came to ---- */

/* A short, printable summary of an error page: its <title> when it has one, else the text
 * with tags dropped; blanks collapsed. */
static void
page_text(const char *page, char *out, size_t cap)
{
    size_t o = 0;
    int in_tag = 0, space = 1;
    const char *title = strstr(page, "<title>"), *end = NULL;

    if (title != NULL) {
        title += 7;
        end = strstr(title, "</title>");
    }
    if (end == NULL) {
        title = page;
    }
    for (const char *p = title; *p != 0 && p != end && o + 1 < cap; p++) {
        unsigned char c = (unsigned char)*p;

        if (c == '<') {
            in_tag = 1;
        } else if (c == '>') {
            in_tag = 0;
            c = ' ';
        }
        if (in_tag) {
            continue;
        }
        if (c < 0x20 || c >= 0x7f || c == ' ') {
            if (!space) {
                out[o++] = ' ';
            }
            space = 1;
            continue;
        }
        out[o++] = (char)c;
        space = 0;
    }
    while (o > 0 && out[o - 1] == ' ') {
        o--;
    }
    out[o] = 0;
}

static int
is_tls_error(CURLcode rc)
{
    static const CURLcode tls[] = {
        CURLE_SSL_CONNECT_ERROR,   CURLE_PEER_FAILED_VERIFICATION, CURLE_SSL_CERTPROBLEM,
        CURLE_SSL_CIPHER,          CURLE_SSL_CACERT_BADFILE,       CURLE_SSL_ISSUER_ERROR,
        CURLE_SSL_CRL_BADFILE,     CURLE_SSL_PINNEDPUBKEYNOTMATCH, CURLE_SSL_INVALIDCERTSTATUS,
        CURLE_SSL_ENGINE_NOTFOUND, CURLE_SSL_ENGINE_SETFAILED,     CURLE_SSL_ENGINE_INITFAILED,
        CURLE_SSL_SHUTDOWN_FAILED, CURLE_USE_SSL_FAILED,
    };

    for (size_t i = 0; i < sizeof(tls) / sizeof(tls[0]); i++) {
        if (rc == tls[i]) {
            return 1;
        }
    }
    return 0;
}

/* Says what a failed transfer means, counts it and picks the outcome. */
static enum outcome
transport_failure(struct fetch *f, struct mirror *m, const char *url, CURLcode rc, const char *cerr,
                  char *msg, size_t cap)
{
    const char *detail = cerr[0] != 0 ? cerr : curl_easy_strerror(rc);

    if (rc == CURLE_PEER_FAILED_VERIFICATION ||
        (rc == CURLE_SSL_CONNECT_ERROR && strstr(detail, "certificate verify") != NULL)) {
        fx_count_fail(f, FETCH_FAIL_TLS);
        if (f->ca_file[0] != 0) {
            fx_msgf(msg, cap, "GET %.300s: TLS: certificate not trusted by ca_file %.200s (%.150s)",
                    url, f->ca_file, detail);
        } else {
            fx_msgf(msg, cap,
                    "GET %.300s: TLS: certificate not trusted by the system CA store "
                    "(%.150s)",
                    url, detail);
        }
        return OUT_NETWORK;
    }
    if (rc == CURLE_SSL_CERTPROBLEM) {
        fx_count_fail(f, FETCH_FAIL_TLS);
        fx_msgf(msg, cap,
                "GET %.300s: TLS: cannot use the client certificate %.150s with key "
                "%.150s (%.150s)",
                url, f->client_cert, f->client_key, detail);
        return OUT_NETWORK;
    }
    if (rc == CURLE_SSL_CACERT_BADFILE) {
        fx_count_fail(f, FETCH_FAIL_TLS);
        fx_msgf(msg, cap, "GET %.300s: TLS: cannot read ca_file %.200s (%.150s)", url, f->ca_file,
                detail);
        return OUT_NETWORK;
    }
    if (is_tls_error(rc) || strstr(detail, "SSL") != NULL || strstr(detail, "alert") != NULL) {
        fx_count_fail(f, FETCH_FAIL_TLS);
        fx_msgf(msg, cap, "GET %.300s: TLS: handshake failed (%.200s)%s", url, detail,
                (m->https && f->client_cert[0] == 0)
                    ? "; the server may require a client certificate (none configured)"
                    : "");
        return OUT_NETWORK;
    }
    if (rc == CURLE_OPERATION_TIMEDOUT) {
        fx_count_fail(f, FETCH_FAIL_TIMEOUT);
        fx_msgf(msg, cap, "GET %.300s: timed out (%.200s)", url, detail);
        return OUT_NETWORK;
    }
    fx_count_fail(f, FETCH_FAIL_NETWORK);
    fx_msgf(msg, cap, "GET %.300s: %.250s", url, detail);
    return OUT_NETWORK;
}

/* ---- one mirror ---- */

/* Appends "name: value" to *headers; 0 when out of memory (*headers keeps what it held). */
static int
add_header(struct curl_slist **headers, const char *name, const char *value)
{
    char hdr[FETCH_HDR_MAX + 32];
    struct curl_slist *h2;

    snprintf(hdr, sizeof(hdr), "%s: %s", name, value);
    h2 = curl_slist_append(*headers, hdr);
    if (h2 == NULL) {
        return 0;
    }
    *headers = h2;
    return 1;
}

/* The headers of one request: If-Range to resume the bytes held in sp, If-None-Match and
 * If-Modified-Since for a conditional GET from m's cache. 0 when out of memory (*headers holds
 * what could be added: free it). */
static int
request_headers(const struct spool *sp, const struct mirror *m, int conditional,
                struct curl_slist **headers)
{
    int ok = 1;

    *headers = NULL;
    if (sp->len > 0) {
        ok = add_header(headers, "If-Range", sp->etag[0] != 0 ? sp->etag : sp->last_modified);
    }
    if (conditional && m->ts.valid) {
        if (m->ts.etag[0] != 0) {
            ok = add_header(headers, "If-None-Match", m->ts.etag) && ok;
        }
        if (m->ts.last_modified[0] != 0) {
            ok = add_header(headers, "If-Modified-Since", m->ts.last_modified) && ok;
        }
    }
    return ok;
}

/* The time one transfer may take: its timeout, cut so that it never outlasts the sync's budget;
 * 0 when that budget is used up. */
static long
transfer_ms(const struct fetch *f)
{
    uint64_t now = plat_mono_ns();
    long left_ms = f->timeout_ms;

    if (f->sync_deadline_ns != 0) {
        if (now >= f->sync_deadline_ns) {
            return 0;
        }
        if ((f->sync_deadline_ns - now) / 1000000u < (uint64_t)left_ms) {
            left_ms = (long)((f->sync_deadline_ns - now) / 1000000u) + 1;
        }
    }
    return left_ms;
}

/* What a complete HTTP answer x means: 304 replays m's cache (*use_cache set), 200 or a resumed
 * 206 holds the body in x->sp (the conditional GET's cache updated), 404/410 is NOTFOUND,
 * 429/503 closes m for its Retry-After, any other status fails; msg says why. */
static enum outcome
answer_outcome(struct fetch *f, struct mirror *m, const struct xfer *x, const char *url,
               int conditional, int *use_cache, char *msg, size_t cap)
{
    struct spool *sp = x->sp;
    char text[160];
    enum outcome out;

    if (x->status == 304 && conditional && m->ts.valid) {
        if (m->ts.body.len > x->max_len) {
            fx_count_fail(f, FETCH_FAIL_TOO_BIG);
            fx_msgf(msg, cap, "GET %.300s: cached body longer than the %llu bytes allowed", url,
                    (unsigned long long)x->max_len);
            return OUT_TOOBIG;
        }
        fx_count(f, &f->stats.not_modified, 1);
        *use_cache = 1;
        return OUT_OK;
    }
    if (x->status == 200 || (x->status == 206 && x->offset > 0)) {
        if (x->status == 206) {
            fx_count(f, &f->stats.resumed, 1);
        }
        fx_count(f, &f->stats.ok, 1);
        if (conditional && sp->len <= FETCH_COND_BODY_MAX &&
            (x->etag[0] != 0 || x->last_modified[0] != 0)) {
            buf_reset(&m->ts.body);
            m->ts.valid = buf_append(&m->ts.body, sp->mem.data, sp->mem.len) == POSGATE_OK;
            snprintf(m->ts.etag, sizeof(m->ts.etag), "%s", x->etag);
            snprintf(m->ts.last_modified, sizeof(m->ts.last_modified), "%s", x->last_modified);
            if (m->ts.valid) {
                fx_cache_save(f, url, &m->ts);
            }
        }
        return OUT_OK;
    }
    page_text(x->errbody, text, sizeof(text));
    if (x->status == 404 || x->status == 410) {
        fx_count(f, &f->stats.not_found, 1);
        fx_msgf(msg, cap, "GET %.300s: HTTP %ld (not found)", url, x->status);
        return OUT_NOTFOUND;
    }
    if (x->status == 429 || x->status == 503) {
        uint64_t wait = 0;

        if (x->retry_after[0] != 0 &&
            fetch_parse_retry_after(x->retry_after, plat_wall_s(), &wait) == POSGATE_OK &&
            wait > 0) {
            m->closed_until_ns = plat_mono_ns() + wait * 1000000000ull;
        }
        fx_count_fail(f, x->status == 429 ? FETCH_FAIL_HTTP_4XX : FETCH_FAIL_HTTP_5XX);
        fx_msgf(msg, cap, "GET %.300s: HTTP %ld%s%s%s, retry after %llu s", url, x->status,
                text[0] != 0 ? " (" : "", text, text[0] != 0 ? ")" : "", (unsigned long long)wait);
        return OUT_RETRY;
    }
    if (x->status >= 500) {
        fx_count_fail(f, FETCH_FAIL_HTTP_5XX);
        out = OUT_RETRY;
    } else {
        fx_count_fail(f, x->status >= 400 && x->status < 500 ? FETCH_FAIL_HTTP_4XX
                                                             : FETCH_FAIL_NETWORK);
        out = OUT_NETWORK;
    }
    fx_msgf(msg, cap, "GET %.300s: HTTP %ld%s%s%s, expected 200", url, x->status,
            text[0] != 0 ? " (" : "", text, text[0] != 0 ? ")" : "");
    if (m->https && f->client_cert[0] == 0 &&
        (x->status == 400 || x->status == 401 || x->status == 403 || x->status == 495 ||
         x->status == 496)) {
        fx_append(msg, cap, "; the server may require a client certificate (none configured)");
    }
    return out;
}

/* One mirror's attempt at name (fetch_internal.h). */
enum outcome
fx_try_mirror(struct fetch *f, struct mirror *m, int targets, const char *name, uint64_t max_len,
              struct spool *sp, int *use_cache, char *msg, size_t cap)
{
    char url[FETCH_URL_MAX + 4 * CARRIER_NAME_MAX];
    char cerr[CURL_ERROR_SIZE], range[32];
    int conditional = !targets && strcmp(name, "timestamp.json") == 0;

    *use_cache = 0;
    if (make_url(m->base, targets ? "targets/" : "metadata/", name, url, sizeof(url)) !=
        POSGATE_OK) {
        fx_msgf(msg, cap, "URL for %.200s is too long", name);
        return OUT_LOCAL;
    }
    for (int round = 0; round < 2; round++) {
        struct xfer x;
        struct curl_slist *headers = NULL;
        CURLcode rc;
        long left_ms;

        if (sp->len > 0 && sp->etag[0] == 0 && sp->last_modified[0] == 0 &&
            fx_spool_truncate(sp) != POSGATE_OK) {
            fx_msgf(msg, cap, "cannot reset the partial file %.200s", sp->part);
            return OUT_LOCAL;
        }
        memset(&x, 0, sizeof(x));
        x.f = f;
        x.sp = sp;
        x.name = name;
        x.max_len = max_len;
        x.offset = sp->len;
        cerr[0] = 0;
        if (x.offset > 0) {
            snprintf(range, sizeof(range), "%llu-", (unsigned long long)x.offset);
        }
        if (!request_headers(sp, m, conditional, &headers)) {
            curl_slist_free_all(headers);
            fx_msgf(msg, cap, "GET %.300s: out of memory", url);
            return OUT_LOCAL;
        }
        curl_easy_setopt(f->curl, CURLOPT_URL, url);
        curl_easy_setopt(f->curl, CURLOPT_HTTPGET, 1L);
        curl_easy_setopt(f->curl, CURLOPT_RANGE, x.offset > 0 ? range : NULL);
        curl_easy_setopt(f->curl, CURLOPT_HTTPHEADER, headers);
        curl_easy_setopt(f->curl, CURLOPT_HEADERFUNCTION, on_header);
        curl_easy_setopt(f->curl, CURLOPT_HEADERDATA, &x);
        curl_easy_setopt(f->curl, CURLOPT_WRITEFUNCTION, on_data);
        curl_easy_setopt(f->curl, CURLOPT_WRITEDATA, &x);
        curl_easy_setopt(f->curl, CURLOPT_ERRORBUFFER, cerr);
        curl_easy_setopt(f->curl, CURLOPT_MAXFILESIZE_LARGE,
                         (curl_off_t)(max_len > (uint64_t)INT64_MAX ? INT64_MAX : max_len));
        left_ms = transfer_ms(f);
        if (left_ms == 0) {
            curl_slist_free_all(headers);
            fx_count_fail(f, FETCH_FAIL_TIMEOUT);
            fx_msgf(msg, cap, "GET %.300s: not sent, the sync used its whole budget of %ld s", url,
                    f->sync_timeout_s);
            return OUT_NETWORK;
        }
        curl_easy_setopt(f->curl, CURLOPT_TIMEOUT_MS, left_ms);
        fx_count(f, &f->stats.attempts, 1);
        rc = curl_easy_perform(f->curl);
        curl_easy_setopt(f->curl, CURLOPT_ERRORBUFFER, NULL);
        curl_easy_setopt(f->curl, CURLOPT_HTTPHEADER, NULL);
        curl_easy_setopt(f->curl, CURLOPT_RANGE, NULL);
        curl_slist_free_all(headers);
        if (x.status == 0) {
            curl_easy_getinfo(f->curl, CURLINFO_RESPONSE_CODE, &x.status);
        }
        plat_log(PLAT_LOG_DEBUG, "fetch: GET %s%s -> %ld (curl %d)", url,
                 x.offset > 0 ? " (resume)" : "", x.status, (int)rc);
        if (x.restart || (x.status == 416 && x.offset > 0)) {
            plat_log(PLAT_LOG_INFO,
                     "fetch: GET %s: cannot resume at byte %llu (HTTP %ld%s); "
                     "starting over",
                     url, (unsigned long long)x.offset, x.status,
                     x.validator_changed ? ", the 206 names another validator than the held bytes"
                     : x.restart         ? ", unexpected Content-Range"
                                         : "");
            if (fx_spool_truncate(sp) != POSGATE_OK) {
                fx_msgf(msg, cap, "GET %.300s: cannot reset the partial file %.200s", url,
                        sp->part);
                return OUT_LOCAL;
            }
            continue;
        }
        if (rc == CURLE_FILESIZE_EXCEEDED ||
            (rc == CURLE_WRITE_ERROR && x.err == POSGATE_ERR_TOOBIG)) {
            fx_count_fail(f, FETCH_FAIL_TOO_BIG);
            (void)fx_spool_truncate(sp);
            fx_msgf(msg, cap, "GET %.300s: body longer than the %llu bytes allowed", url,
                    (unsigned long long)max_len);
            return OUT_TOOBIG;
        }
        if (rc == CURLE_WRITE_ERROR && x.err != POSGATE_OK) {
            fx_msgf(msg, cap, "GET %.300s: cannot keep the body (%s)", url,
                    posgate_strerror(x.err));
            return OUT_LOCAL;
        }
        if (rc == CURLE_ABORTED_BY_CALLBACK && atomic_load(&f->cancelled)) {
            fx_msgf(msg, cap, "GET %.300s: stopped (the sync was cancelled)", url);
            return OUT_LOCAL;
        }
        if (rc != CURLE_OK) {
            if (rc == CURLE_OPERATION_TIMEDOUT) {
                m->slow = 1; /* later files of this sync ask the other mirrors first */
                /* the budget cut this transfer's time (libcurl's clock may fire a few ms before
                 * ours reaches the deadline), or the deadline has passed */
                if (f->sync_deadline_ns != 0 &&
                    (left_ms < f->timeout_ms || plat_mono_ns() >= f->sync_deadline_ns)) {
                    fx_count_fail(f, FETCH_FAIL_TIMEOUT);
                    fx_msgf(msg, cap, "GET %.300s: cut, the sync used its whole budget of %ld s",
                            url, f->sync_timeout_s);
                    return OUT_NETWORK;
                }
            }
            return transport_failure(f, m, url, rc, cerr, msg, cap);
        }
        return answer_outcome(f, m, &x, url, conditional, use_cache, msg, cap);
    }
    fx_msgf(msg, cap, "GET %.300s: the server cannot resume the download, even from the start",
            url);
    fx_count_fail(f, FETCH_FAIL_NETWORK);
    return OUT_NETWORK;
}
