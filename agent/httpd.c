/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The local HTTP API on libmicrohttpd (httpd.h): listen sockets, routing, the bearer token,
 * body collection with a size cap, the check path with its counters and latency histogram,
 * and a graceful stop that lets requests in flight finish.
 */
#define _POSIX_C_SOURCE 200809L
#include "httpd.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <microhttpd.h>

#include "plat_clock.h"
#include "plat_log.h"
#include "plat_mem.h"

/* Latency buckets (seconds) of posgate_check_duration_seconds, from 1 µs to 100 ms. */
static const double bucket_le[] = {1e-6, 2.5e-6, 5e-6,   1e-5, 2.5e-5, 5e-5,   1e-4, 2.5e-4,
                                   5e-4, 1e-3,   2.5e-3, 5e-3, 1e-2,   2.5e-2, 5e-2, 1e-1};
#define N_BUCKETS (sizeof(bucket_le) / sizeof(bucket_le[0]))

enum outcome_slot { SLOT_ALLOW, SLOT_DENY, SLOT_REFER, SLOT_ERROR, SLOT__COUNT };
static const char *const slot_name[SLOT__COUNT] = {"allow", "deny", "refer", "error"};

struct listener {
    struct httpd *h;
    struct MHD_Daemon *mhd;
    int fd;
    int is_unix;
    char path[DAEMON_UNIX_PATH_MAX + 1];
    char text[DAEMON_URL_MAX];
};

struct httpd {
    struct posgate *pg;
    struct httpd_hooks hooks;
    pthread_mutex_t token_lock;
    char token[DAEMON_TOKEN_MAX + 1];
    struct listener ls[DAEMON_LISTEN_MAX];
    size_t n_ls;
    _Atomic uint64_t in_flight;
    _Atomic uint64_t checks[SLOT__COUNT];
    _Atomic uint64_t bucket[N_BUCKETS + 1]; /* the last one: +Inf */
    _Atomic uint64_t duration_ns;
    _Atomic uint64_t requests;
};

/* Per-request state, freed by the completion callback. */
struct req {
    struct buf body;
    int too_big;
};

unsigned
httpd_sync_status(enum httpd_sync_kind k)
{
    switch (k) {
    case HTTPD_SYNC_OK:
        return 200;
    case HTTPD_SYNC_NETWORK:
        return 502;
    case HTTPD_SYNC_REJECTED:
        return 422;
    case HTTPD_SYNC_CONFIG:
        return 409;
    case HTTPD_SYNC_STORE:
        return 500;
    }
    return 500;
}

static enum MHD_Result
reply(struct MHD_Connection *c, unsigned status, const char *type, const char *body, size_t len)
{
    struct MHD_Response *r;
    enum MHD_Result ret;

    r = MHD_create_response_from_buffer(len, (void *)(uintptr_t)body, MHD_RESPMEM_MUST_COPY);
    if (r == NULL) {
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    ret = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result
reply_buf(struct MHD_Connection *c, unsigned status, const struct buf *b)
{
    return reply(c, status, "application/json", buf_cstr(b), b->len);
}

static enum MHD_Result
reply_error(struct MHD_Connection *c, unsigned status, const char *msg)
{
    struct buf b = BUF_INIT(1u << 16);
    enum MHD_Result ret;

    if (daemon_error_json(msg, &b) != POSGATE_OK) {
        buf_free(&b);
        return reply(c, 500, "application/json", "{\"error\":\"out of memory\"}", 25);
    }
    ret = reply_buf(c, status, &b);
    buf_free(&b);
    return ret;
}

/* Constant-time comparison: the time depends only on the length of the expected token. */
static int
token_equal(const char *given, const char *want)
{
    size_t gl = strlen(given), wl = strlen(want);
    unsigned diff = gl != wl;

    for (size_t i = 0; i < wl; i++) {
        unsigned char g = i < gl ? (unsigned char)given[i] : 0;

        diff |= (unsigned)(g ^ (unsigned char)want[i]);
    }
    return diff == 0;
}

static int
authorised(struct httpd *h, struct MHD_Connection *c, int is_unix)
{
    char want[DAEMON_TOKEN_MAX + 1];
    const char *hdr;
    int ok;

    if (is_unix) {
        return 1;
    }
    pthread_mutex_lock(&h->token_lock);
    memcpy(want, h->token, sizeof(want));
    pthread_mutex_unlock(&h->token_lock);
    if (want[0] == 0) {
        return 1;
    }
    hdr = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    ok = hdr != NULL && strncmp(hdr, "Bearer ", 7) == 0 && token_equal(hdr + 7, want);
    memset(want, 0, sizeof(want));
    return ok;
}

static enum MHD_Result
handle_check(struct httpd *h, struct MHD_Connection *c, const struct req *rq)
{
    struct posgate_request *preq = NULL;
    struct posgate_result *res = NULL;
    char msg[DAEMON_ERRMSG_MAX];
    enum posgate_err err;
    enum MHD_Result ret;
    uint64_t t0, dt;
    enum outcome_slot slot = SLOT_ERROR;
    const char *json;

    if (posgate_request_new(&preq) != POSGATE_OK || posgate_result_new(&res) != POSGATE_OK) {
        ret = reply_error(c, 500, "out of memory");
        goto out;
    }
    err = daemon_check_body_parse(rq->body.data, rq->body.len, preq, msg, sizeof(msg));
    if (err != POSGATE_OK) {
        atomic_fetch_add(&h->checks[SLOT_ERROR], 1);
        ret = reply_error(c, err == POSGATE_ERR_TOOBIG ? 413 : 400, msg);
        goto out;
    }
    t0 = plat_mono_ns();
    err = posgate_check(h->pg, preq, res);
    dt = plat_mono_ns() - t0;
    if (err == POSGATE_OK) {
        switch (posgate_result_decision(res)) {
        case POSGATE_ALLOW:
            slot = SLOT_ALLOW;
            break;
        case POSGATE_DENY:
            slot = SLOT_DENY;
            break;
        case POSGATE_REFER:
            slot = SLOT_REFER;
            break;
        }
    }
    atomic_fetch_add(&h->checks[slot], 1);
    atomic_fetch_add(&h->duration_ns, dt);
    {
        size_t b = 0;
        double s = (double)dt / 1e9;

        while (b < N_BUCKETS && s > bucket_le[b]) {
            b++;
        }
        atomic_fetch_add(&h->bucket[b], 1);
    }
    if (err == POSGATE_ERR_INVALID) {
        ret = reply_error(c, 400, posgate_result_errmsg(res));
    } else if (err == POSGATE_ERR_NOTFOUND) {
        ret = reply_error(c, 503, posgate_result_errmsg(res));
    } else if (err != POSGATE_OK) {
        snprintf(msg, sizeof(msg), "check failed: %s: %s", posgate_strerror(err),
                 posgate_result_errmsg(res));
        ret = reply_error(c, 500, msg);
    } else {
        json = posgate_result_json(res);
        ret = json != NULL ? reply(c, 200, "application/json", json, strlen(json))
                           : reply_error(c, 500, "out of memory");
    }
out:
    posgate_request_free(preq);
    posgate_result_free(res);
    return ret;
}

static enum MHD_Result
handle_status(struct httpd *h, struct MHD_Connection *c)
{
    struct daemon_sync_state s;
    struct buf b = BUF_INIT(1u << 22);
    char *status = NULL;
    enum posgate_err err;
    enum MHD_Result ret;

    memset(&s, 0, sizeof(s));
    h->hooks.sync_state(h->hooks.ctx, &s);
    err = posgate_status_json(h->pg, &status);
    if (err == POSGATE_OK) {
        err = daemon_status_with_sync(status, &s, &b);
    }
    if (err != POSGATE_OK) {
        char msg[128];

        snprintf(msg, sizeof(msg), "status: %s", posgate_strerror(err));
        ret = reply_error(c, 500, msg);
    } else {
        ret = reply_buf(c, 200, &b);
    }
    posgate_free(status);
    buf_free(&b);
    return ret;
}

static enum posgate_err
read_health(struct httpd *h, struct daemon_health *hl)
{
    char *status = NULL;
    enum posgate_err err;

    err = posgate_status_json(h->pg, &status);
    if (err == POSGATE_OK) {
        err = daemon_health_from_status(status, hl);
    }
    posgate_free(status);
    return err;
}

static enum MHD_Result
handle_healthz(struct httpd *h, struct MHD_Connection *c)
{
    struct daemon_health hl;
    struct buf b = BUF_INIT(1u << 16);
    enum posgate_err err;
    enum MHD_Result ret;

    err = read_health(h, &hl);
    if (err != POSGATE_OK) {
        memset(&hl, 0, sizeof(hl));
        snprintf(hl.reason, sizeof(hl.reason), "cannot read the store: %s", posgate_strerror(err));
    }
    err = daemon_health_json(&hl, &b);
    ret = err == POSGATE_OK ? reply_buf(c, hl.ok ? 200 : 503, &b)
                            : reply_error(c, 500, "out of memory");
    buf_free(&b);
    return ret;
}

static enum posgate_err
metrics_text(struct httpd *h, struct buf *b)
{
    struct daemon_health hl;
    enum posgate_err err;
    uint64_t cum = 0;

    err = buf_append_str(b, "# HELP posgate_checks_total Checks answered, by decision "
                            "(error: input or store errors).\n"
                            "# TYPE posgate_checks_total counter\n");
    for (int i = 0; err == POSGATE_OK && i < SLOT__COUNT; i++) {
        err = buf_printf(b, "posgate_checks_total{decision=\"%s\"} %llu\n", slot_name[i],
                         (unsigned long long)atomic_load(&h->checks[i]));
    }
    if (err == POSGATE_OK) {
        err = buf_append_str(b, "# HELP posgate_check_duration_seconds Time spent in "
                                "posgate_check.\n"
                                "# TYPE posgate_check_duration_seconds histogram\n");
    }
    for (size_t i = 0; err == POSGATE_OK && i <= N_BUCKETS; i++) {
        cum += atomic_load(&h->bucket[i]);
        if (i < N_BUCKETS) {
            err = buf_printf(b, "posgate_check_duration_seconds_bucket{le=\"%g\"} %llu\n",
                             bucket_le[i], (unsigned long long)cum);
        } else {
            err = buf_printf(b,
                             "posgate_check_duration_seconds_bucket{le=\"+Inf\"} %llu\n"
                             "posgate_check_duration_seconds_sum %.9f\n"
                             "posgate_check_duration_seconds_count %llu\n",
                             (unsigned long long)cum, (double)atomic_load(&h->duration_ns) / 1e9,
                             (unsigned long long)cum);
        }
    }
    if (err == POSGATE_OK && read_health(h, &hl) == POSGATE_OK) {
        err = buf_printf(b,
                         "# HELP posgate_feed_version The installed feed (timestamp) version.\n"
                         "# TYPE posgate_feed_version gauge\n"
                         "posgate_feed_version %lld\n"
                         "# HELP posgate_data_age_seconds Age of the oldest installed list.\n"
                         "# TYPE posgate_data_age_seconds gauge\n"
                         "posgate_data_age_seconds %lld\n"
                         "# HELP posgate_healthy 1 when serving verified, fresh data.\n"
                         "# TYPE posgate_healthy gauge\n"
                         "posgate_healthy %d\n",
                         (long long)hl.feed_version, (long long)hl.data_age_s, hl.ok ? 1 : 0);
    }
    if (err == POSGATE_OK) {
        err = buf_printf(b,
                         "# HELP posgate_http_requests_total HTTP requests received.\n"
                         "# TYPE posgate_http_requests_total counter\n"
                         "posgate_http_requests_total %llu\n",
                         (unsigned long long)atomic_load(&h->requests));
    }
    if (err == POSGATE_OK && h->hooks.metrics != NULL) {
        err = h->hooks.metrics(h->hooks.ctx, b);
    }
    return err;
}

static enum MHD_Result
handle_metrics(struct httpd *h, struct MHD_Connection *c)
{
    struct buf b = BUF_INIT(1u << 20);
    enum MHD_Result ret;

    if (metrics_text(h, &b) != POSGATE_OK) {
        ret = reply_error(c, 500, "metrics: out of memory");
    } else {
        ret = reply(c, 200, "text/plain; version=0.0.4; charset=utf-8", buf_cstr(&b), b.len);
    }
    buf_free(&b);
    return ret;
}

static enum MHD_Result
handle_sync(struct httpd *h, struct MHD_Connection *c)
{
    struct httpd_sync_outcome o;
    struct buf b = BUF_INIT(1u << 16);
    enum MHD_Result ret;

    memset(&o, 0, sizeof(o));
    h->hooks.sync_now(h->hooks.ctx, &o);
    if (daemon_sync_result_json(o.kind == HTTPD_SYNC_OK, o.feed_version, o.changed, o.error, &b) !=
        POSGATE_OK) {
        ret = reply_error(c, 500, "out of memory");
    } else {
        ret = reply_buf(c, httpd_sync_status(o.kind), &b);
    }
    buf_free(&b);
    return ret;
}

static enum MHD_Result
method_not_allowed(struct MHD_Connection *c, const char *allow)
{
    struct MHD_Response *r;
    enum MHD_Result ret;
    static const char body[] = "{\"error\":\"method not allowed\"}";

    r = MHD_create_response_from_buffer(sizeof(body) - 1, (void *)(uintptr_t)body,
                                        MHD_RESPMEM_PERSISTENT);
    if (r == NULL) {
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, allow);
    ret = MHD_queue_response(c, 405, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result
route(struct httpd *h, struct MHD_Connection *c, const char *url, const char *method,
      const struct req *rq)
{
    int get = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;
    int post = strcmp(method, "POST") == 0;

    if (strcmp(url, "/v1/check") == 0) {
        if (!post) {
            return method_not_allowed(c, "POST");
        }
        if (rq->too_big) {
            return reply_error(c, 413, "body: larger than 65536 bytes");
        }
        return handle_check(h, c, rq);
    }
    if (strcmp(url, "/v1/sync") == 0) {
        return post ? handle_sync(h, c) : method_not_allowed(c, "POST");
    }
    if (strcmp(url, "/v1/status") == 0) {
        return get ? handle_status(h, c) : method_not_allowed(c, "GET, HEAD");
    }
    if (strcmp(url, "/healthz") == 0) {
        return get ? handle_healthz(h, c) : method_not_allowed(c, "GET, HEAD");
    }
    if (strcmp(url, "/metrics") == 0) {
        return get ? handle_metrics(h, c) : method_not_allowed(c, "GET, HEAD");
    }
    return reply_error(c, 404, "no such endpoint (see docs/api.md)");
}

/* A Content-Length over the body cap (or absurdly long). */
static int
declared_too_big(const char *cl)
{
    uint64_t v = 0;

    for (size_t i = 0; cl[i] >= '0' && cl[i] <= '9'; i++) {
        if (i >= 12) {
            return 1;
        }
        v = v * 10 + (uint64_t)(cl[i] - '0');
    }
    return v > DAEMON_CHECK_BODY_MAX;
}

static enum MHD_Result
on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
           const char *version, const char *upload_data, size_t *upload_data_size, void **con_cls)
{
    struct listener *l = cls;
    struct httpd *h = l->h;
    struct req *rq = *con_cls;

    (void)version;
    if (rq == NULL) {
        const char *cl;

        rq = plat_calloc(1, sizeof(*rq));
        if (rq == NULL) {
            return MHD_NO;
        }
        buf_init(&rq->body, DAEMON_CHECK_BODY_MAX);
        *con_cls = rq;
        atomic_fetch_add(&h->in_flight, 1);
        atomic_fetch_add(&h->requests, 1);
        if (!authorised(h, c, l->is_unix)) {
            struct MHD_Response *r;
            enum MHD_Result ret;
            static const char body[] = "{\"error\":\"missing or wrong bearer token\"}";

            r = MHD_create_response_from_buffer(sizeof(body) - 1, (void *)(uintptr_t)body,
                                                MHD_RESPMEM_PERSISTENT);
            if (r == NULL) {
                return MHD_NO;
            }
            MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
            MHD_add_response_header(r, MHD_HTTP_HEADER_WWW_AUTHENTICATE,
                                    "Bearer realm=\"posgated\"");
            ret = MHD_queue_response(c, 401, r);
            MHD_destroy_response(r);
            return ret;
        }
        cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (cl != NULL && declared_too_big(cl)) {
            /* refused before reading it: MHD then closes the connection */
            return reply_error(c, 413, "body: larger than 65536 bytes");
        }
        return MHD_YES;
    }
    if (*upload_data_size > 0) {
        if (!rq->too_big && buf_append(&rq->body, upload_data, *upload_data_size) != POSGATE_OK) {
            rq->too_big = 1;
            buf_free(&rq->body);
        }
        *upload_data_size = 0;
        return MHD_YES;
    }
    return route(h, c, url, method, rq);
}

static void
on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
             enum MHD_RequestTerminationCode toe)
{
    struct listener *l = cls;
    struct req *rq = *con_cls;

    (void)c;
    (void)toe;
    if (rq != NULL) {
        buf_wipe(&rq->body); /* identifiers in clear */
        plat_free(rq);
        *con_cls = NULL;
        atomic_fetch_sub(&l->h->in_flight, 1);
    }
}

static void mhd_log(void *cls, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));

static void
mhd_log(void *cls, const char *fmt, va_list ap)
{
    char msg[512];

    (void)cls;
    vsnprintf(msg, sizeof(msg), fmt, ap);
    msg[strcspn(msg, "\n")] = 0;
    plat_log(PLAT_LOG_WARN, "httpd: %s", msg);
}

static enum posgate_err
bind_listener(const struct daemon_listen *d, struct listener *l, char *errmsg, size_t errcap)
{
    int fd = -1, one = 1;
    union {
        struct sockaddr sa;
        struct sockaddr_in in4;
        struct sockaddr_in6 in6;
        struct sockaddr_un un;
    } a;
    socklen_t alen;
    struct stat st;

    memset(&a, 0, sizeof(a));
    switch (d->kind) {
    case DAEMON_LISTEN_TCP4:
        a.in4.sin_family = AF_INET;
        a.in4.sin_port = htons(d->port);
        memcpy(&a.in4.sin_addr, d->addr, 4);
        alen = sizeof(a.in4);
        break;
    case DAEMON_LISTEN_TCP6:
        a.in6.sin6_family = AF_INET6;
        a.in6.sin6_port = htons(d->port);
        memcpy(&a.in6.sin6_addr, d->addr, 16);
        alen = sizeof(a.in6);
        break;
    case DAEMON_LISTEN_UNIX:
        a.un.sun_family = AF_UNIX;
        if (strlen(d->path) >= sizeof(a.un.sun_path)) {
            snprintf(errmsg, errcap, "listen %.200s: path too long", d->text);
            return POSGATE_ERR_INVALID;
        }
        memcpy(a.un.sun_path, d->path, strlen(d->path) + 1);
        alen = sizeof(a.un);
        /* a socket file left by a previous run is replaced; anything else is not touched */
        if (lstat(d->path, &st) == 0) {
            if (!S_ISSOCK(st.st_mode)) {
                snprintf(errmsg, errcap, "listen %.200s: %.200s exists and is not a socket",
                         d->text, d->path);
                return POSGATE_ERR_IO;
            }
            unlink(d->path);
        }
        break;
    default:
        return POSGATE_ERR_INVALID;
    }
    fd = socket(a.sa.sa_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(errmsg, errcap, "listen %.200s: socket: %s", d->text, strerror(errno));
        return POSGATE_ERR_IO;
    }
    if (d->kind != DAEMON_LISTEN_UNIX) {
        (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    }
    if (d->kind == DAEMON_LISTEN_TCP6) {
        (void)setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    }
    if (bind(fd, &a.sa, alen) != 0) {
        snprintf(errmsg, errcap, "listen %.200s: bind: %s", d->text, strerror(errno));
        close(fd);
        return POSGATE_ERR_IO;
    }
    if (d->kind == DAEMON_LISTEN_UNIX && chmod(d->path, 0660) != 0) {
        snprintf(errmsg, errcap, "listen %.200s: chmod: %s", d->text, strerror(errno));
        close(fd);
        unlink(d->path);
        return POSGATE_ERR_IO;
    }
    if (listen(fd, 128) != 0) {
        snprintf(errmsg, errcap, "listen %.200s: listen: %s", d->text, strerror(errno));
        close(fd);
        return POSGATE_ERR_IO;
    }
    l->fd = fd;
    l->is_unix = d->kind == DAEMON_LISTEN_UNIX;
    snprintf(l->path, sizeof(l->path), "%s", l->is_unix ? d->path : "");
    snprintf(l->text, sizeof(l->text), "%s", d->text);
    return POSGATE_OK;
}

static void
listener_close(struct listener *l)
{
    if (l->mhd != NULL) {
        MHD_stop_daemon(l->mhd);
        l->mhd = NULL;
    }
    if (l->fd >= 0) {
        close(l->fd);
        l->fd = -1;
    }
    if (l->is_unix && l->path[0] != 0) {
        unlink(l->path);
        l->path[0] = 0;
    }
}

enum posgate_err
httpd_start(const struct httpd_options *opt, struct httpd **out, char *errmsg, size_t errcap)
{
    struct httpd *h;
    enum posgate_err err = POSGATE_OK;
    unsigned threads;

    if (opt == NULL || out == NULL || opt->pg == NULL || opt->n_listen == 0 ||
        opt->n_listen > DAEMON_LISTEN_MAX || opt->hooks.sync_now == NULL ||
        opt->hooks.sync_state == NULL) {
        snprintf(errmsg, errcap, "httpd: missing options");
        return POSGATE_ERR_INVALID;
    }
    *out = NULL;
    h = plat_calloc(1, sizeof(*h));
    if (h == NULL) {
        return POSGATE_ERR_NOMEM;
    }
    h->pg = opt->pg;
    h->hooks = opt->hooks;
    pthread_mutex_init(&h->token_lock, NULL);
    httpd_set_token(h, opt->api_token);
    threads = opt->threads != 0 ? opt->threads : HTTPD_THREADS_DEFAULT;
    for (size_t i = 0; i < opt->n_listen; i++) {
        struct listener *l = &h->ls[i];

        l->fd = -1;
        l->h = h;
        h->n_ls = i + 1;
        err = bind_listener(&opt->listen[i], l, errmsg, errcap);
        if (err != POSGATE_OK) {
            goto fail;
        }
        l->mhd = MHD_start_daemon(
            MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ITC | MHD_USE_AUTO | MHD_USE_ERROR_LOG, 0,
            NULL, NULL, on_request, l, MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,
            MHD_OPTION_LISTEN_SOCKET, (MHD_socket)l->fd, MHD_OPTION_THREAD_POOL_SIZE, threads,
            MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)30, MHD_OPTION_CONNECTION_LIMIT, (unsigned)256,
            MHD_OPTION_NOTIFY_COMPLETED, on_completed, l, MHD_OPTION_END);
        if (l->mhd == NULL) {
            snprintf(errmsg, errcap, "listen %.200s: libmicrohttpd did not start", l->text);
            err = POSGATE_ERR_IO;
            goto fail;
        }
        plat_log(PLAT_LOG_INFO, "listening on %s", l->text);
    }
    *out = h;
    return POSGATE_OK;
fail:
    httpd_stop(h, 0);
    return err;
}

void
httpd_set_token(struct httpd *h, const char *token)
{
    if (h == NULL) {
        return;
    }
    pthread_mutex_lock(&h->token_lock);
    memset(h->token, 0, sizeof(h->token));
    if (token != NULL) {
        snprintf(h->token, sizeof(h->token), "%s", token);
    }
    pthread_mutex_unlock(&h->token_lock);
}

void
httpd_stop(struct httpd *h, unsigned grace_ms)
{
    uint64_t deadline;

    if (h == NULL) {
        return;
    }
    /* stop accepting: quiesce hands the listen socket back, we close it */
    for (size_t i = 0; i < h->n_ls; i++) {
        struct listener *l = &h->ls[i];

        if (l->mhd != NULL) {
            (void)MHD_quiesce_daemon(l->mhd);
        }
        if (l->fd >= 0) {
            close(l->fd);
            l->fd = -1;
        }
    }
    deadline = plat_mono_ns() + (uint64_t)grace_ms * 1000000u;
    while (atomic_load(&h->in_flight) > 0 && plat_mono_ns() < deadline) {
        struct timespec ts = {0, 10 * 1000 * 1000};

        nanosleep(&ts, NULL);
    }
    for (size_t i = 0; i < h->n_ls; i++) {
        listener_close(&h->ls[i]);
    }
    pthread_mutex_destroy(&h->token_lock);
    plat_wipe(h->token, sizeof(h->token));
    plat_free(h);
}
