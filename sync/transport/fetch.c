/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The network fetcher (fetch.h): mirrors in order, spooling so that a body reaches the caller
 * only when complete, resume of targets with Range/If-Range from a part file, conditional GET of
 * timestamp.json with a small cache, Retry-After windows per mirror, capped full-jitter backoff,
 * TLS with a pinned CA and client certificates, and the counters the daemon exports. This file
 * holds the options and life cycle, the one libcurl/TLS setup of every handle (fetch_curl_tls),
 * the carrier that asks the mirrors in turn, backoff and Retry-After; fetch_mirror.c asks one
 * mirror, fetch_spool.c keeps bodies, part files and the conditional-GET cache
 * (fetch_internal.h). libcurl's header is included by the fetcher (fetch_internal.h),
 * carrier_http.c and the uploader only.
 */
#define _DEFAULT_SOURCE
#include "fetch_internal.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "buf.h"
#include "plat_clock.h"
#include "plat_file.h"
#include "plat_log.h"
#include "plat_mem.h"
#include "plat_random.h"

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static int curl_init_ok;

static void
global_init(void)
{
    curl_init_ok = curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK;
}

/* ---- small helpers ---- */

static enum posgate_err
copy_str(char *dst, size_t cap, const char *src)
{
    size_t n = src != NULL ? strlen(src) : 0;

    if (n >= cap) {
        return POSGATE_ERR_TOOBIG;
    }
    if (n > 0) {
        memcpy(dst, src, n);
    }
    dst[n] = 0;
    return POSGATE_OK;
}

void
fx_count_fail(struct fetch *f, enum fetch_fail k)
{
    pthread_mutex_lock(&f->lock);
    f->stats.failures[k]++;
    pthread_mutex_unlock(&f->lock);
}

void
fx_count(struct fetch *f, uint64_t *field, uint64_t n)
{
    pthread_mutex_lock(&f->lock);
    *field += n;
    pthread_mutex_unlock(&f->lock);
}

void
fx_append(char *dst, size_t cap, const char *fmt, ...)
{
    size_t n = strlen(dst);
    va_list ap;

    if (n + 1 >= cap) {
        return;
    }
    va_start(ap, fmt);
    vsnprintf(dst + n, cap - n, fmt, ap);
    va_end(ap);
}

void
fx_msgf(char *dst, size_t cap, const char *fmt, ...)
{
    va_list ap;

    if (cap == 0) {
        return;
    }
    va_start(ap, fmt);
    vsnprintf(dst, cap, fmt, ap);
    va_end(ap);
}

/* ---- backoff and Retry-After ---- */

const char *
fetch_fail_name(enum fetch_fail k)
{
    switch (k) {
    case FETCH_FAIL_NETWORK:
        return "network";
    case FETCH_FAIL_HTTP_4XX:
        return "http_4xx";
    case FETCH_FAIL_HTTP_5XX:
        return "http_5xx";
    case FETCH_FAIL_TLS:
        return "tls";
    case FETCH_FAIL_TIMEOUT:
        return "timeout";
    case FETCH_FAIL_TOO_BIG:
        return "too_big";
    case FETCH_FAIL_REJECTED:
        return "rejected";
    case FETCH_FAIL__COUNT:
        break;
    }
    return "unknown";
}

uint64_t
fetch_backoff_s(unsigned attempt, uint64_t base_s, uint64_t cap_s)
{
    uint64_t ceiling, r = 0;

    if (base_s == 0 || cap_s == 0) {
        return 0;
    }
    /* base << attempt <= cap exactly when base <= cap >> attempt; the shift stays below 64 */
    if (attempt >= 63 || base_s > (cap_s >> attempt)) {
        ceiling = cap_s;
    } else {
        ceiling = base_s << attempt;
    }
    if (ceiling == UINT64_MAX) {
        if (plat_random(&r, sizeof(r)) != POSGATE_OK) {
            return ceiling;
        }
        return r;
    }
    if (plat_random_below(ceiling + 1, &r) != POSGATE_OK) {
        return ceiling; /* no randomness: wait the longest, never hammer */
    }
    return r;
}

int
fx_parse_uint(const char *s, size_t n, uint64_t max, uint64_t *out)
{
    uint64_t v = 0;

    if (n == 0) {
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return 0;
        }
        v = v * 10 + (uint64_t)(s[i] - '0');
        if (v > max) {
            return 0;
        }
    }
    *out = v;
    return 1;
}

static int
month_index(const char *s, size_t n)
{
    static const char *const names[] = {"jan", "feb", "mar", "apr", "may", "jun",
                                        "jul", "aug", "sep", "oct", "nov", "dec"};

    if (n != 3) {
        return -1;
    }
    for (int i = 0; i < 12; i++) {
        int same = 1;

        for (size_t j = 0; j < 3; j++) {
            char c = s[j];

            if (c >= 'A' && c <= 'Z') {
                c = (char)(c - 'A' + 'a');
            }
            if (c != names[i][j]) {
                same = 0;
            }
        }
        if (same) {
            return i;
        }
    }
    return -1;
}

/* HTTP-date (RFC 9110 5.6.7): IMF-fixdate, RFC 850 or asctime form, always GMT. */
static int
parse_http_date_(const char *s, int64_t *out)
{
    uint64_t nums[2] = {0, 0}, hh = 0, mi = 0, ss = 0, year, day;
    size_t numlen[2] = {0, 0};
    int nnum = 0, month = -1, have_time = 0, nwords = 0;
    const char *p = s;

    while (*p != 0) {
        const char *t;
        size_t n;

        while (*p == ' ' || *p == ',' || *p == '-') {
            p++;
        }
        if (*p == 0) {
            break;
        }
        t = p;
        while (*p != 0 && *p != ' ' && *p != ',' && *p != '-') {
            p++;
        }
        n = (size_t)(p - t);
        if (memchr(t, ':', n) != NULL) {
            if (have_time || n != 8 || t[2] != ':' || t[5] != ':' ||
                !fx_parse_uint(t, 2, 23, &hh) || !fx_parse_uint(t + 3, 2, 59, &mi) ||
                !fx_parse_uint(t + 6, 2, 60, &ss)) {
                return 0;
            }
            have_time = 1;
        } else if (t[0] >= '0' && t[0] <= '9') {
            if (nnum == 2 || n > 4 || !fx_parse_uint(t, n, 9999, &nums[nnum])) {
                return 0;
            }
            numlen[nnum++] = n;
        } else if (month < 0 && month_index(t, n) >= 0) {
            month = month_index(t, n);
        } else if (n == 3 && strncmp(t, "GMT", 3) == 0) {
            continue;
        } else if (nwords++ > 0) {
            return 0; /* one weekday name at most */
        }
    }
    if (!have_time || month < 0 || nnum != 2 || numlen[0] > 2) {
        return 0;
    }
    day = nums[0];
    year = nums[1];
    if (numlen[1] == 2) {
        year += year < 70 ? 2000 : 1900; /* RFC 850 two-digit years */
    } else if (numlen[1] != 4) {
        return 0;
    }
    if (day < 1 || day > 31 || year < 1970) {
        return 0;
    }
    *out = plat_days_from_civil((int64_t)year, (unsigned)month + 1, (unsigned)day) * 86400 +
           (int64_t)(hh * 3600 + mi * 60 + ss);
    return 1;
}

enum posgate_err
fetch_parse_http_date(const char *value, int64_t *out)
{
    char tmp[65];
    size_t n;

    if (value == NULL || out == NULL) {
        return POSGATE_ERR_INVALID;
    }
    n = strlen(value);
    if (n == 0 || n >= sizeof(tmp)) {
        return POSGATE_ERR_INVALID;
    }
    memcpy(tmp, value, n + 1);
    return parse_http_date_(tmp, out) ? POSGATE_OK : POSGATE_ERR_INVALID;
}

void
fetch_format_http_date(int64_t t, char *out, size_t cap)
{
    static const char *const days[] = {"Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"};
    static const char *const months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                         "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    char iso[32];
    int64_t days_since = t >= 0 ? t / 86400 : (t - 86399) / 86400;
    unsigned mo;

    /* "YYYY-MM-DDTHH:MM:SSZ" from the platform, rearranged */
    plat_time_format(t, iso, sizeof(iso));
    mo = (unsigned)((iso[5] - '0') * 10 + (iso[6] - '0'));
    if (strlen(iso) < 20 || mo < 1 || mo > 12) {
        fx_msgf(out, cap, "%s", "Thu, 01 Jan 1970 00:00:00 GMT");
        return;
    }
    fx_msgf(out, cap, "%s, %.2s %s %.4s %.8s GMT", days[((days_since % 7) + 7) % 7], iso + 8,
            months[mo - 1], iso, iso + 11);
}

enum posgate_err
fetch_parse_retry_after(const char *value, int64_t now, uint64_t *out_s)
{
    size_t n;
    uint64_t v;
    int64_t t;

    if (value == NULL || out_s == NULL) {
        return POSGATE_ERR_INVALID;
    }
    while (*value == ' ' || *value == '\t') {
        value++;
    }
    n = strlen(value);
    while (n > 0 && (value[n - 1] == ' ' || value[n - 1] == '\t')) {
        n--;
    }
    if (n > 0 && value[0] >= '0' && value[0] <= '9' && strspn(value, "0123456789") >= n) {
        if (n > 19 || !fx_parse_uint(value, n, UINT64_MAX / 10, &v)) {
            v = FETCH_RETRY_AFTER_MAX; /* absurdly long: the cap */
        }
        *out_s = v > FETCH_RETRY_AFTER_MAX ? FETCH_RETRY_AFTER_MAX : v;
        return POSGATE_OK;
    }
    if (n == 0 || n > 64) {
        return POSGATE_ERR_INVALID;
    }
    {
        char tmp[65];

        memcpy(tmp, value, n);
        tmp[n] = 0;
        if (!parse_http_date_(tmp, &t)) {
            return POSGATE_ERR_INVALID;
        }
    }
    if (t <= now) {
        *out_s = 0;
    } else {
        *out_s = (uint64_t)(t - now) > FETCH_RETRY_AFTER_MAX ? FETCH_RETRY_AFTER_MAX
                                                             : (uint64_t)(t - now);
    }
    return POSGATE_OK;
}

/* ---- the carrier ---- */

/* libcurl calls this at least once a second during a transfer: fetch_cancel stops it. */
static int
on_progress(void *ud, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal, curl_off_t ulnow)
{
    (void)dltotal;
    (void)dlnow;
    (void)ultotal;
    (void)ulnow;
    return atomic_load(&((struct fetch *)ud)->cancelled) ? 1 : 0;
}

void
fetch_sync_begin(struct fetch *f)
{
    if (f == NULL) {
        return;
    }
    f->sync_deadline_ns = plat_mono_ns() + (uint64_t)f->sync_timeout_s * 1000000000ull;
    fx_prune_stale(f);
    for (size_t i = 0; i < f->n_mirrors; i++) {
        f->mirrors[i].slow = 0;
    }
}

void
fetch_cancel(struct fetch *f)
{
    if (f != NULL) {
        atomic_store(&f->cancelled, 1);
    }
}

static enum posgate_err
fetch_carrier_fetch(struct carrier *c, const char *name, uint64_t max_len,
                    const struct carrier_sink *sink, uint64_t *got)
{
    struct fetch_carrier *fc = (struct fetch_carrier *)c;
    struct fetch *f = fc->f;
    struct spool sp;
    char one[CARRIER_ERRMSG_MAX];
    int any_notfound = 0, any_toobig = 0, any_retry = 0, delivered = 0, use_cache = 0;
    int refetched = 0;
    enum posgate_err err, check_err, bad_body = POSGATE_OK;
    enum outcome out = OUT_NETWORK;
    size_t i, order[FETCH_MIRRORS_MAX];
    uint64_t len = 0;

    c->errmsg[0] = 0;
    if (!fc->targets && max_len > FETCH_META_MAX) {
        max_len = FETCH_META_MAX;
    }
    err = fx_spool_open(f, fc->targets, name, max_len, &sp);
    if (err != POSGATE_OK) {
        fx_msgf(c->errmsg, sizeof(c->errmsg), "cannot open the partial download %s: %s", sp.part,
                posgate_strerror(err));
        fx_spool_close(&sp, 0);
        return err;
    }
    if (sp.len > 0) {
        plat_log(PLAT_LOG_INFO, "fetch: resuming %s at byte %llu", name,
                 (unsigned long long)sp.len);
    }
    /* mirrors in order, those that timed out earlier in this sync last */
    for (size_t pass = 0, k = 0; pass < 2; pass++) {
        for (i = 0; i < f->n_mirrors; i++) {
            if (f->mirrors[i].slow == (int)pass) {
                order[k++] = i;
            }
        }
    }
    for (size_t k = 0; k < f->n_mirrors; k++) {
        struct mirror *m = &f->mirrors[order[k]];
        uint64_t now = plat_mono_ns(), start_len = sp.len;

        i = order[k];
        one[0] = 0;
        if (atomic_load(&f->cancelled)) {
            fx_msgf(one, sizeof(one), "%.300s: not asked, the sync was cancelled", m->base);
            out = OUT_LOCAL;
        } else if (m->closed_until_ns > now) {
            fx_msgf(
                one, sizeof(one), "%.300s: asked to wait %llu s more (Retry-After)", m->base,
                (unsigned long long)((m->closed_until_ns - now + 999999999ull) / 1000000000ull));
            out = OUT_RETRY;
        } else {
            m->closed_until_ns = 0;
            out =
                fx_try_mirror(f, m, fc->targets, name, max_len, &sp, &use_cache, one, sizeof(one));
        }
        if (out == OUT_OK) {
            const struct cond_entry *ce = &m->ts;

            len = use_cache ? ce->body.len : sp.len;
            err = use_cache
                      ? (len > 0 ? sink->write(sink->ctx, ce->body.data, ce->body.len) : POSGATE_OK)
                      : fx_spool_replay(&sp, sink);
            if (err != POSGATE_OK) {
                fx_spool_close(&sp, 1);
                fx_msgf(c->errmsg, sizeof(c->errmsg), "%s: the receiver refused the data (%s)",
                        name, posgate_err_name(err));
                return err;
            }
            check_err = sink->check != NULL ? sink->check(sink->ctx) : POSGATE_OK;
            if (check_err == POSGATE_OK) {
                delivered = 1;
                break;
            }
            /* wrong bytes from this mirror (any length, garbage, an encoded body): counted
             * against it, forgotten, and the next mirror asked */
            sink->reset(sink->ctx);
            fx_count_fail(f, FETCH_FAIL_REJECTED);
            bad_body = check_err;
            if (use_cache) {
                m->ts.valid = 0;
            }
            if (fx_spool_truncate(&sp) != POSGATE_OK) {
                out = OUT_LOCAL;
                fx_msgf(one, sizeof(one), "cannot reset the partial file %.200s", sp.part);
            } else if (start_len > 0 && !refetched) {
                /* a resumed body may hold bytes of an older file: once more from byte 0 */
                refetched = 1;
                plat_log(PLAT_LOG_WARN,
                         "fetch: %s%s from %s (resumed at byte %llu) fails verification (%s); "
                         "fetching it again from byte 0",
                         fc->targets ? "targets/" : "metadata/", name, m->base,
                         (unsigned long long)start_len, posgate_err_name(check_err));
                k--;
                continue;
            } else {
                fx_msgf(one, sizeof(one), "%.300s: the body of %.200s fails verification (%s)",
                        m->base, name, posgate_err_name(check_err));
                out = OUT_NETWORK;
            }
        }
        fx_append(c->errmsg, sizeof(c->errmsg), "%s%s", c->errmsg[0] != 0 ? "; " : "", one);
        if (out == OUT_LOCAL) {
            break;
        }
        any_notfound |= out == OUT_NOTFOUND;
        any_toobig |= out == OUT_TOOBIG;
        any_retry |= out == OUT_RETRY;
        if (out != OUT_NOTFOUND && k + 1 < f->n_mirrors) {
            plat_log(PLAT_LOG_WARN, "fetch: %s; trying the next mirror", one);
        }
    }
    if (delivered) {
        fx_spool_close(&sp, 1); /* complete: the part file has served its purpose */
        if (got != NULL) {
            *got = len;
        }
        c->errmsg[0] = 0;
        return POSGATE_OK;
    }
    /* a part file with a validator stays for the next attempt; an empty one goes */
    fx_spool_close(&sp, sp.len == 0);
    if (out == OUT_LOCAL) {
        return atomic_load(&f->cancelled) ? POSGATE_ERR_NETWORK : POSGATE_ERR_IO;
    }
    if (any_notfound) {
        return POSGATE_ERR_NOTFOUND;
    }
    if (bad_body != POSGATE_OK) {
        return bad_body;
    }
    if (any_toobig) {
        return POSGATE_ERR_TOOBIG;
    }
    return any_retry ? POSGATE_ERR_RETRY : POSGATE_ERR_NETWORK;
}

static void
fetch_carrier_destroy(struct carrier *c)
{
    (void)c; /* borrowed from the fetcher: fetch_free releases it */
}

static const struct carrier_ops fetch_carrier_ops = {"fetch", fetch_carrier_fetch,
                                                     fetch_carrier_destroy};

/* ---- life cycle ---- */

enum posgate_err
fetch_new(const struct fetch_options *opt, struct fetch **out, char *errmsg, size_t errcap)
{
    struct fetch *f = NULL;
    enum posgate_err err = POSGATE_ERR_INVALID;
    char e[512] = "";

    if (out != NULL) {
        *out = NULL;
    }
    if (opt == NULL || out == NULL) {
        snprintf(e, sizeof(e), "NULL argument");
        goto out;
    }
    if (opt->n_mirrors == 0 || opt->mirrors == NULL) {
        snprintf(e, sizeof(e), "expected at least one feed URL, got none");
        goto out;
    }
    if (opt->n_mirrors > FETCH_MIRRORS_MAX) {
        snprintf(e, sizeof(e), "expected at most %d feed URLs, got %zu", FETCH_MIRRORS_MAX,
                 opt->n_mirrors);
        goto out;
    }
    if ((opt->client_cert == NULL) != (opt->client_key == NULL)) {
        snprintf(e, sizeof(e),
                 "a client certificate needs its key and the other way round "
                 "(got %s without %s)",
                 opt->client_cert != NULL ? "client_cert" : "client_key",
                 opt->client_cert != NULL ? "client_key" : "client_cert");
        goto out;
    }
    pthread_once(&curl_once, global_init);
    if (!curl_init_ok) {
        snprintf(e, sizeof(e), "libcurl failed to initialise");
        err = POSGATE_ERR_NETWORK;
        goto out;
    }
    f = plat_calloc(1, sizeof(*f));
    if (f == NULL) {
        err = POSGATE_ERR_NOMEM;
        goto out;
    }
    pthread_mutex_init(&f->lock, NULL);
    f->mirrors = plat_calloc(opt->n_mirrors, sizeof(*f->mirrors));
    if (f->mirrors == NULL) {
        err = POSGATE_ERR_NOMEM;
        goto out;
    }
    f->n_mirrors = opt->n_mirrors;
    for (size_t i = 0; i < opt->n_mirrors; i++) {
        struct mirror *m = &f->mirrors[i];
        const char *u = opt->mirrors[i];
        size_t n = u != NULL ? strlen(u) : 0;

        buf_init(&m->ts.body, FETCH_COND_BODY_MAX);
        if (u == NULL || (strncmp(u, "http://", 7) != 0 && strncmp(u, "https://", 8) != 0) ||
            n < 9) {
            snprintf(e, sizeof(e),
                     "feed URL \"%.300s\": expected http://HOST/... or "
                     "https://HOST/...",
                     u != NULL ? u : "(null)");
            goto out;
        }
        if (n + 2 > sizeof(m->base) || strpbrk(u, " \t\r\n\"<>\\^`{|}?#") != NULL) {
            snprintf(e, sizeof(e),
                     "feed URL \"%.300s\": too long, or holds a character not "
                     "allowed in a base URL (space, quote, ?, # ...)",
                     u);
            goto out;
        }
        memcpy(m->base, u, n + 1);
        if (u[n - 1] != '/') {
            m->base[n] = '/';
            m->base[n + 1] = 0;
        }
        m->https = strncmp(u, "https://", 8) == 0;
    }
    if (copy_str(f->ca_file, sizeof(f->ca_file), opt->ca_file) != POSGATE_OK ||
        copy_str(f->client_cert, sizeof(f->client_cert), opt->client_cert) != POSGATE_OK ||
        copy_str(f->client_key, sizeof(f->client_key), opt->client_key) != POSGATE_OK ||
        copy_str(f->proxy, sizeof(f->proxy), opt->proxy) != POSGATE_OK ||
        copy_str(f->spool_dir, sizeof(f->spool_dir), opt->spool_dir) != POSGATE_OK ||
        copy_str(f->cache_dir, sizeof(f->cache_dir), opt->cache_dir) != POSGATE_OK ||
        copy_str(f->user_agent, sizeof(f->user_agent),
                 opt->user_agent != NULL ? opt->user_agent : "posgate/0.1") != POSGATE_OK) {
        snprintf(e, sizeof(e), "an option string is too long");
        goto out;
    }
    if (f->spool_dir[0] != 0 && plat_mkdir_p(f->spool_dir, 0700) != POSGATE_OK) {
        snprintf(e, sizeof(e), "cannot create the spool directory %.300s", f->spool_dir);
        err = POSGATE_ERR_IO;
        goto out;
    }
    if (f->cache_dir[0] != 0 && plat_mkdir_p(f->cache_dir, 0700) != POSGATE_OK) {
        snprintf(e, sizeof(e), "cannot create the cache directory %.300s", f->cache_dir);
        err = POSGATE_ERR_IO;
        goto out;
    }
    for (size_t i = 0; i < f->n_mirrors; i++) {
        fx_cache_load(f, &f->mirrors[i]);
    }
    f->curl = curl_easy_init();
    if (f->curl == NULL) {
        err = POSGATE_ERR_NOMEM;
        goto out;
    }
    curl_easy_setopt(f->curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(f->curl, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(f->curl, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(f->curl, CURLOPT_CONNECTTIMEOUT,
                     opt->connect_timeout_s > 0 ? opt->connect_timeout_s : 10L);
    f->timeout_ms = (opt->timeout_s > 0 ? opt->timeout_s : 300L) * 1000L;
    f->sync_timeout_s = opt->sync_timeout_s > 0 ? opt->sync_timeout_s : FETCH_SYNC_TIMEOUT_S;
    fetch_sync_begin(f);
    curl_easy_setopt(f->curl, CURLOPT_TIMEOUT_MS, f->timeout_ms);
    curl_easy_setopt(f->curl, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(f->curl, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(f->curl, CURLOPT_XFERINFODATA, f);
    curl_easy_setopt(f->curl, CURLOPT_LOW_SPEED_LIMIT,
                     opt->low_speed_bytes_per_s > 0 ? opt->low_speed_bytes_per_s : 1L);
    curl_easy_setopt(f->curl, CURLOPT_LOW_SPEED_TIME,
                     opt->low_speed_time_s > 0 ? opt->low_speed_time_s : 30L);
    if (opt->max_recv_bytes_per_s > 0) {
        curl_easy_setopt(f->curl, CURLOPT_MAX_RECV_SPEED_LARGE,
                         (curl_off_t)(opt->max_recv_bytes_per_s > (uint64_t)INT64_MAX
                                          ? INT64_MAX
                                          : opt->max_recv_bytes_per_s));
    }
    curl_easy_setopt(f->curl, CURLOPT_USERAGENT, f->user_agent);
    curl_easy_setopt(f->curl, CURLOPT_ACCEPT_ENCODING, NULL); /* the caps count wire bytes */
    fetch_curl_tls(f->curl, f->ca_file, f->client_cert, f->client_key);
    /* "" disables the *_proxy environment variables: the proxy comes from configuration */
    curl_easy_setopt(f->curl, CURLOPT_PROXY, f->proxy);
    f->meta.base.ops = &fetch_carrier_ops;
    f->meta.f = f;
    f->meta.targets = 0;
    f->tgt.base.ops = &fetch_carrier_ops;
    f->tgt.f = f;
    f->tgt.targets = 1;
    *out = f;
    f = NULL;
    err = POSGATE_OK;
out:
    if (err != POSGATE_OK && errmsg != NULL && errcap > 0) {
        snprintf(errmsg, errcap, "%s", e[0] != 0 ? e : posgate_strerror(err));
    }
    fetch_free(f);
    return err;
}

void
fetch_free(struct fetch *f)
{
    if (f == NULL) {
        return;
    }
    if (f->curl != NULL) {
        curl_easy_cleanup(f->curl);
    }
    if (f->mirrors != NULL) {
        for (size_t i = 0; i < f->n_mirrors; i++) {
            buf_free(&f->mirrors[i].ts.body);
        }
        plat_free(f->mirrors);
    }
    pthread_mutex_destroy(&f->lock);
    plat_free(f);
}

struct carrier *
fetch_metadata_carrier(struct fetch *f)
{
    return f != NULL ? &f->meta.base : NULL;
}

struct carrier *
fetch_targets_carrier(struct fetch *f)
{
    return f != NULL ? &f->tgt.base : NULL;
}

void
fetch_stats_get(struct fetch *f, struct fetch_stats *out)
{
    if (out == NULL) {
        return;
    }
    if (f == NULL) {
        memset(out, 0, sizeof(*out));
        return;
    }
    pthread_mutex_lock(&f->lock);
    *out = f->stats;
    pthread_mutex_unlock(&f->lock);
}

void
fetch_note_rejected(struct fetch *f)
{
    if (f != NULL) {
        fx_count_fail(f, FETCH_FAIL_REJECTED);
    }
}

uint64_t
fetch_retry_after_s(struct fetch *f)
{
    uint64_t now = plat_mono_ns(), best = UINT64_MAX;

    if (f == NULL) {
        return 0;
    }
    for (size_t i = 0; i < f->n_mirrors; i++) {
        uint64_t until = f->mirrors[i].closed_until_ns;

        if (until <= now) {
            return 0;
        }
        if (until - now < best) {
            best = until - now;
        }
    }
    return best == UINT64_MAX ? 0 : (best + 999999999ull) / 1000000000ull;
}

void
fetch_curl_tls(void *curl, const char *ca_file, const char *client_cert, const char *client_key)
{
    curl_easy_setopt(curl, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(curl, CURLOPT_SSL_VERIFYHOST, 2L);
    if (ca_file != NULL && ca_file[0] != 0) {
        /* the pinned CA is the only trust: no CA directory, no built-in bundle */
        curl_easy_setopt(curl, CURLOPT_CAINFO, ca_file);
        curl_easy_setopt(curl, CURLOPT_CAPATH, NULL);
    }
    if (client_cert != NULL && client_cert[0] != 0) {
        curl_easy_setopt(curl, CURLOPT_SSLCERT, client_cert);
        curl_easy_setopt(curl, CURLOPT_SSLCERTTYPE, "PEM");
        curl_easy_setopt(curl, CURLOPT_SSLKEY, client_key);
        curl_easy_setopt(curl, CURLOPT_SSLKEYTYPE, "PEM");
    }
}

const char *
fetch_curl_version(void)
{
    return curl_version_info(CURLVERSION_NOW)->version;
}
