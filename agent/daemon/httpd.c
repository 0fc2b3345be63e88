/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The local HTTP API on libmicrohttpd (httpd.h): listen sockets, the gate every request passes
 * before its body is read (Host, Origin, bearer tokens, privilege, Content-Type, length), a
 * reaper that closes connections past their request deadline, routing, body collection with a
 * size cap, the check path with its counters and latency histogram, and a graceful stop that
 * lets requests in flight finish.
 */
#define _POSIX_C_SOURCE 200809L
#include "httpd.h"

#include <arpa/inet.h>
#include <errno.h>
#include <grp.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <microhttpd.h>

#include "plat_clock.h"
#include "plat_log.h"
#include "plat_mem.h"
#include "posgate_admin.h"

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
    int loopback;
    char host[64]; /* the address as a Host header names it: "127.0.0.1", "[::1]" */
    char port[8];
    char path[DAEMON_UNIX_PATH_MAX + 1];
    char text[DAEMON_URL_MAX];
};

/* One request thread's counters, summed for /metrics and the stop's wait. A thread takes a shard
 * of its own on its first request and is the only one to write it, with plain adds: a check
 * neither pulls a counter's cache line from the other core nor waits on a locked instruction.
 * Shard 0 is shared, written with atomic adds: threads past HTTPD_SHARDS - 1 and a request's end
 * counted on a thread without a shard (the one stopping the server). The padding keeps two
 * shards off one line. */
#define HTTPD_SHARDS   64
#define SPARE_BODY_MAX 4096 /* a spare request keeps a body's storage up to this size */
struct shard {
    _Atomic uint64_t requests;
    _Atomic uint64_t in_flight; /* a request's end may be counted on another shard: summed */
    _Atomic uint64_t checks[SLOT__COUNT];
    _Atomic uint64_t bucket[N_BUCKETS + 1]; /* the last one: +Inf */
    _Atomic uint64_t duration_ns;
    char pad[64];
};

/* One open connection, tracked for its request deadline (socket context of MHD). */
struct conn {
    struct conn *prev, *next;
    MHD_socket fd;
    _Atomic uint64_t deadline_ns; /* monotonic; UINT64_MAX while an answer is being made */
    int shut;                     /* the reaper shut it down */
};

struct httpd {
    struct posgate *pg;
    struct posgated_core *core;
    struct httpd_hooks hooks;
    pthread_mutex_t token_lock; /* guards acc; acc_gen changes under it */
    struct httpd_access acc;
    _Atomic uint64_t acc_gen; /* bumped at each httpd_set_access: request threads copy acc */
    char group[DAEMON_GROUP_MAX + 1];
    struct listener ls[DAEMON_LISTEN_MAX];
    size_t n_ls;
    pthread_mutex_t conn_lock; /* guards conns */
    struct conn *conns;
    pthread_t reaper;
    int reaper_started;
    _Atomic int reaper_stop;
    _Atomic uint64_t reaped;
    _Atomic uint64_t refused[4]; /* by refusal: host, origin, type, privilege */
    struct shard shards[HTTPD_SHARDS];
    _Atomic unsigned next_shard;
    pthread_key_t scratch_key; /* each request thread's struct scratch */
    int scratch_key_made;
};

/* Per-request state, freed by the completion callback or kept as its thread's spare. */
struct req {
    struct buf body;
    int too_big;
    int privileged; /* the unix socket or the admin token */
};

/* A request thread's check request and result, kept from one check to the next: a result is
 * ~11 KB and a request ~3.6 KB, and allocating, zeroing and freeing both per request was a few
 * percent of a check over HTTP. The request is wiped after each check (identifiers in clear).
 * The thread's copy of the access rules (acc, taken again when acc_gen moves) spares each
 * request the shared lock; it is wiped with the scratch (tokens). */
struct scratch {
    struct posgate_request *rq;
    struct posgate_result *res;
    struct shard *sh;
    int sh_owned; /* sh is this thread's alone (not shard 0) */
    struct httpd_access acc;
    uint64_t acc_gen;  /* 0: none copied yet (httpd's starts at 1) */
    struct req *spare; /* a finished request's state, its body wiped, for the next one */
};

enum refusal { REF_HOST, REF_ORIGIN, REF_TYPE, REF_PRIVILEGE };
static const char *const refusal_name[4] = {"host", "origin", "content_type", "privilege"};

unsigned
httpd_sync_status(enum posgated_sync_kind k)
{
    switch (k) {
    case POSGATED_SYNC_OK:
        return 200;
    case POSGATED_SYNC_NETWORK:
        return 502;
    case POSGATED_SYNC_REJECTED:
        return 422;
    case POSGATED_SYNC_CONFIG:
        return 409;
    case POSGATED_SYNC_STORE:
    case POSGATED_SYNC_DISK:
        return 500;
    }
    return 500;
}

/* Any Origin still present was found in allowed_origins by the gate (gate()). */
static void
add_cors(struct MHD_Connection *c, struct MHD_Response *r)
{
    const char *origin = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Origin");

    if (origin != NULL) {
        MHD_add_response_header(r, "Access-Control-Allow-Origin", origin);
        MHD_add_response_header(r, "Vary", "Origin");
    }
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
    add_cors(c, r);
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

/* Who is calling: 0 refused (401), 1 a check caller, 2 privileged (the unix socket, or the
 * admin token on TCP). Without an api_token any TCP caller is a check caller. */
static int
credential(const struct httpd_access *a, const struct httpd_peer *p, const char *hdr)
{
    int is_admin, is_user;

    if (p->is_unix) {
        return 2;
    }
    if (hdr != NULL && strncmp(hdr, "Bearer ", 7) == 0) {
        hdr += 7;
    } else {
        hdr = NULL;
    }
    /* both compared, in constant time, whatever the first answer */
    is_admin = a->admin_token[0] != 0 && hdr != NULL && token_equal(hdr, a->admin_token);
    is_user = a->api_token[0] != 0 && hdr != NULL && token_equal(hdr, a->api_token);
    if (is_admin) {
        return 2;
    }
    return is_user || a->api_token[0] == 0 ? 1 : 0;
}

/* A Host header naming the listener: its address, localhost on loopback, an allowed_hosts
 * entry; with a port, the listener's. No Host (HTTP/1.0) passes; MHD refuses HTTP/1.1 without
 * one. A DNS rebinding page sends its own name and is refused. */
static int
host_ok(const struct httpd_access *a, const struct httpd_peer *p, const char *host)
{
    char name[DAEMON_NAME_MAX + 1];
    const char *port = NULL, *end;
    size_t n;

    if (p->is_unix || host == NULL) {
        return 1;
    }
    if (host[0] == '[') {
        end = strchr(host, ']');
        if (end == NULL) {
            return 0;
        }
        end++;
    } else {
        end = strchr(host, ':');
        if (end == NULL) {
            end = host + strlen(host);
        }
    }
    if (*end == ':') {
        port = end + 1;
    } else if (*end != 0) {
        return 0;
    }
    n = (size_t)(end - host);
    if (n == 0 || n > DAEMON_NAME_MAX || (port != NULL && strcmp(port, p->port) != 0)) {
        return 0;
    }
    memcpy(name, host, n);
    name[n] = 0;
    if (strcasecmp(name, p->addr) == 0 || (p->loopback && strcasecmp(name, "localhost") == 0)) {
        return 1;
    }
    for (size_t i = 0; i < a->n_hosts; i++) {
        if (strcasecmp(name, a->hosts[i]) == 0) {
            return 1;
        }
    }
    return 0;
}

static int
origin_ok(const struct httpd_access *a, const char *origin)
{
    if (origin == NULL) {
        return 1;
    }
    for (size_t i = 0; i < a->n_origins; i++) {
        if (strcmp(origin, a->origins[i]) == 0) {
            return 1;
        }
    }
    return 0;
}

/* application/json, with parameters ("; charset=utf-8") or not. */
static int
json_type(const char *ct)
{
    static const char want[] = "application/json";
    size_t n = sizeof(want) - 1;

    return strncasecmp(ct, want, n) == 0 && (ct[n] == 0 || ct[n] == ';' || ct[n] == ' ');
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

void
httpd_access_from_config(struct httpd_access *a, const struct daemon_config *cfg)
{
    plat_wipe(a, sizeof(*a));
    snprintf(a->api_token, sizeof(a->api_token), "%s", cfg->api_token);
    snprintf(a->admin_token, sizeof(a->admin_token), "%s", cfg->admin_token);
    memcpy(a->hosts, cfg->allowed_hosts, sizeof(a->hosts));
    a->n_hosts = cfg->n_allowed_hosts;
    memcpy(a->origins, cfg->allowed_origins, sizeof(a->origins));
    a->n_origins = cfg->n_allowed_origins;
}

unsigned
httpd_gate(const struct httpd_access *a, const struct httpd_peer *p, const struct httpd_head *r,
           int *privileged, char *msg, size_t cap)
{
    int level, post = strcmp(r->method, "POST") == 0;
    const char *ct = r->content_type, *cl = r->content_length;

    *privileged = 0;
    msg[0] = 0;
    if (!host_ok(a, p, r->host)) {
        snprintf(msg, cap,
                 "Host: expected this listener's address (%s:%s)%s or an allowed_hosts name, "
                 "found \"%.100s\"",
                 p->addr, p->port, p->loopback ? ", localhost" : "", r->host);
        return 421;
    }
    if (!origin_ok(a, r->origin)) {
        snprintf(msg, cap,
                 "Origin: expected no Origin or one in allowed_origins, found \"%.100s\"",
                 r->origin);
        return 403;
    }
    if (r->origin != NULL && strcmp(r->method, "OPTIONS") == 0) {
        return 0; /* a CORS preflight carries no credential and learns nothing */
    }
    level = credential(a, p, r->authorization);
    if (level == 0) {
        snprintf(msg, cap, "missing or wrong bearer token");
        return 401;
    }
    *privileged = level == 2;
    if (post && strcmp(r->url, "/v1/sync") == 0 && level != 2) {
        snprintf(msg, cap,
                 "POST /v1/sync: needs the privileged credential (the unix socket or the "
                 "admin_token), found a check caller's");
        return 403;
    }
    if (post && ((ct != NULL && !json_type(ct)) ||
                 (ct == NULL && (r->transfer_encoding != NULL ||
                                 (cl != NULL && strspn(cl, "0") != strlen(cl)))))) {
        snprintf(msg, cap, "Content-Type: expected application/json for a POST body, found %s%.100s%s",
                 ct != NULL ? "\"" : "none", ct != NULL ? ct : "", ct != NULL ? "\"" : "");
        return 415;
    }
    if (post && cl != NULL && declared_too_big(cl)) {
        snprintf(msg, cap, "body: larger than 65536 bytes");
        return 413;
    }
    return 0;
}

static void
scratch_free(void *p)
{
    struct scratch *s = p;

    if (s != NULL) {
        posgate_request_free(s->rq);
        posgate_result_free(s->res);
        plat_wipe(&s->acc, sizeof(s->acc));
        if (s->spare != NULL) {
            buf_wipe(&s->spare->body);
            plat_free(s->spare);
        }
        plat_free(s);
    }
}

/* This thread's scratch, made on its first request; NULL when out of memory. */
static struct scratch *
scratch_get(struct httpd *h)
{
    struct scratch *s = pthread_getspecific(h->scratch_key);

    if (s != NULL) {
        return s;
    }
    s = plat_calloc(1, sizeof(*s));
    if (s == NULL || posgate_request_new(&s->rq) != POSGATE_OK ||
        posgate_result_new(&s->res) != POSGATE_OK || pthread_setspecific(h->scratch_key, s) != 0) {
        scratch_free(s);
        return NULL;
    }
    {
        unsigned i = atomic_fetch_add(&h->next_shard, 1) + 1;

        s->sh_owned = i < HTTPD_SHARDS;
        s->sh = &h->shards[s->sh_owned ? i : 0];
    }
    return s;
}

/* Adds n to a counter of a shard (owned: the calling thread's alone). */
static void
count(int owned, _Atomic uint64_t *c, uint64_t n)
{
    if (owned) {
        atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + n,
                              memory_order_relaxed);
    } else {
        atomic_fetch_add_explicit(c, n, memory_order_relaxed);
    }
}

/* A counter summed over the shards; field is its offset in struct shard. */
static uint64_t
shard_sum(struct httpd *h, size_t field)
{
    uint64_t sum = 0;

    for (size_t i = 0; i < HTTPD_SHARDS; i++) {
        sum += atomic_load_explicit((_Atomic uint64_t *)(void *)((char *)&h->shards[i] + field),
                                    memory_order_relaxed);
    }
    return sum;
}

static enum MHD_Result
handle_check(struct httpd *h, struct MHD_Connection *c, const struct req *rq)
{
    struct scratch *sc = scratch_get(h);
    struct posgate_request *preq = sc != NULL ? sc->rq : NULL;
    struct posgate_result *res = sc != NULL ? sc->res : NULL;
    struct posgated_request_view view;
    char msg[DAEMON_ERRMSG_MAX];
    enum posgate_err err;
    enum MHD_Result ret;
    uint64_t t0, dt;
    enum outcome_slot slot = SLOT_ERROR;
    const char *json;

    if (sc == NULL) {
        ret = reply_error(c, 500, "out of memory");
        goto out;
    }
    err = daemon_check_body_parse(rq->body.data, rq->body.len, preq, msg, sizeof(msg));
    if (err != POSGATE_OK) {
        count(sc->sh_owned, &sc->sh->checks[SLOT_ERROR], 1);
        ret = reply_error(c, err == POSGATE_ERR_TOOBIG ? 413 : 400, msg);
        goto out;
    }
    posgated_request_view(preq, &view);
    if (view.has_override && !rq->privileged) {
        count(sc->sh_owned, &sc->sh->checks[SLOT_ERROR], 1);
        atomic_fetch_add(&h->refused[REF_PRIVILEGE], 1);
        ret = reply_error(c, 403,
                          "override_by: a supervisor override needs the privileged credential "
                          "(the unix socket or the admin_token), found a check caller's");
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
    count(sc->sh_owned, &sc->sh->checks[slot], 1);
    count(sc->sh_owned, &sc->sh->duration_ns, dt);
    {
        size_t b = 0;
        double s = (double)dt / 1e9;

        while (b < N_BUCKETS && s > bucket_le[b]) {
            b++;
        }
        count(sc->sh_owned, &sc->sh->bucket[b], 1);
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
    posgate_request_reset(preq); /* wiped: the next check starts from a zeroed request */
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
    err = posgated_status_json(h->core, &status);
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

    err = posgated_status_json(h->core, &status);
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
                         (unsigned long long)shard_sum(h, offsetof(struct shard, checks) +
                                                              (size_t)i * sizeof(uint64_t)));
    }
    if (err == POSGATE_OK) {
        err = buf_append_str(b, "# HELP posgate_check_duration_seconds Time spent in "
                                "posgate_check.\n"
                                "# TYPE posgate_check_duration_seconds histogram\n");
    }
    for (size_t i = 0; err == POSGATE_OK && i <= N_BUCKETS; i++) {
        cum += shard_sum(h, offsetof(struct shard, bucket) + i * sizeof(uint64_t));
        if (i < N_BUCKETS) {
            err = buf_printf(b, "posgate_check_duration_seconds_bucket{le=\"%g\"} %llu\n",
                             bucket_le[i], (unsigned long long)cum);
        } else {
            err = buf_printf(b,
                             "posgate_check_duration_seconds_bucket{le=\"+Inf\"} %llu\n"
                             "posgate_check_duration_seconds_sum %.9f\n"
                             "posgate_check_duration_seconds_count %llu\n",
                             (unsigned long long)cum,
                             (double)shard_sum(h, offsetof(struct shard, duration_ns)) / 1e9,
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
                         (unsigned long long)shard_sum(h, offsetof(struct shard, requests)));
    }
    if (err == POSGATE_OK) {
        err = buf_printf(b,
                         "# HELP posgate_http_refused_total Requests refused before their body "
                         "was read, by reason.\n"
                         "# TYPE posgate_http_refused_total counter\n");
    }
    for (int i = 0; err == POSGATE_OK && i < 4; i++) {
        err = buf_printf(b, "posgate_http_refused_total{reason=\"%s\"} %llu\n", refusal_name[i],
                         (unsigned long long)atomic_load(&h->refused[i]));
    }
    if (err == POSGATE_OK) {
        err = buf_printf(b,
                         "# HELP posgate_http_deadline_closed_total Connections closed for not "
                         "delivering a request within %u ms.\n"
                         "# TYPE posgate_http_deadline_closed_total counter\n"
                         "posgate_http_deadline_closed_total %llu\n",
                         (unsigned)HTTPD_REQUEST_DEADLINE_MS,
                         (unsigned long long)atomic_load(&h->reaped));
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

/* Starts or joins the one sync (the sync thread runs it); answers at once. */
static enum MHD_Result
handle_sync(struct httpd *h, struct MHD_Connection *c)
{
    struct buf b = BUF_INIT(1u << 12);
    enum MHD_Result ret;
    uint64_t id = 0;
    int running = 0;

    h->hooks.sync_request(h->hooks.ctx, &id, &running);
    if (daemon_sync_accepted_json(id, running, &b) != POSGATE_OK) {
        ret = reply_error(c, 500, "out of memory");
    } else {
        ret = reply_buf(c, 202, &b);
    }
    buf_free(&b);
    return ret;
}

/* A CORS preflight from an allowed origin (the gate refused any other). */
static enum MHD_Result
preflight(struct MHD_Connection *c)
{
    struct MHD_Response *r;
    enum MHD_Result ret;

    r = MHD_create_response_from_buffer(0, (void *)(uintptr_t)"", MHD_RESPMEM_PERSISTENT);
    if (r == NULL) {
        return MHD_NO;
    }
    add_cors(c, r);
    MHD_add_response_header(r, "Access-Control-Allow-Methods", "GET, HEAD, POST");
    MHD_add_response_header(r, "Access-Control-Allow-Headers", "Authorization, Content-Type");
    MHD_add_response_header(r, "Access-Control-Max-Age", "600");
    ret = MHD_queue_response(c, 204, r);
    MHD_destroy_response(r);
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
    add_cors(c, r);
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

    if (strcmp(method, "OPTIONS") == 0 &&
        MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Origin") != NULL) {
        return preflight(c);
    }
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


static struct conn *
conn_of(struct MHD_Connection *c)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);

    return ci != NULL ? ci->socket_context : NULL;
}

static void
conn_deadline(struct MHD_Connection *c, uint64_t deadline_ns)
{
    struct conn *k = conn_of(c);

    if (k != NULL) {
        atomic_store(&k->deadline_ns, deadline_ns);
    }
}

/* Everything judged from the request line and headers, before a byte of the body is read
 * (httpd_gate). MHD_YES with nothing queued (*pass) lets the request go on. */
static enum MHD_Result
gate(struct listener *l, struct scratch *sc, struct MHD_Connection *c, const char *url,
     const char *method, struct req *rq, int *pass)
{
    struct httpd *h = l->h;
    struct httpd_peer peer = {l->is_unix, l->loopback, l->host, l->port};
    struct httpd_head hd;
    char msg[DAEMON_ERRMSG_MAX];
    unsigned status;

    memset(&hd, 0, sizeof(hd));
    hd.method = method;
    hd.url = url;
    hd.host = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_HOST);
    hd.origin = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Origin");
    hd.authorization =
        MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    hd.content_type = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
    hd.content_length =
        MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    hd.transfer_encoding =
        MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_TRANSFER_ENCODING);
    if (sc->acc_gen != atomic_load_explicit(&h->acc_gen, memory_order_acquire)) {
        pthread_mutex_lock(&h->token_lock);
        sc->acc = h->acc;
        sc->acc_gen = atomic_load_explicit(&h->acc_gen, memory_order_relaxed);
        pthread_mutex_unlock(&h->token_lock);
    }
    status = httpd_gate(&sc->acc, &peer, &hd, &rq->privileged, msg, sizeof(msg));
    *pass = status == 0;
    switch (status) {
    case 0:
        return MHD_YES;
    case 401: {
        struct MHD_Response *r;
        enum MHD_Result ret;
        static const char body[] = "{\"error\":\"missing or wrong bearer token\"}";

        r = MHD_create_response_from_buffer(sizeof(body) - 1, (void *)(uintptr_t)body,
                                            MHD_RESPMEM_PERSISTENT);
        if (r == NULL) {
            return MHD_NO;
        }
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
        MHD_add_response_header(r, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer realm=\"posgated\"");
        add_cors(c, r);
        ret = MHD_queue_response(c, 401, r);
        MHD_destroy_response(r);
        return ret;
    }
    case 421:
        atomic_fetch_add(&h->refused[REF_HOST], 1);
        break;
    case 415:
        atomic_fetch_add(&h->refused[REF_TYPE], 1);
        break;
    case 403:
        atomic_fetch_add(&h->refused[hd.origin != NULL && strncmp(msg, "Origin", 6) == 0
                                         ? REF_ORIGIN
                                         : REF_PRIVILEGE],
                         1);
        break;
    default:
        break;
    }
    /* a 413 is answered before the body is read: MHD then closes the connection */
    return reply_error(c, status, msg);
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
        struct scratch *sc = scratch_get(h);
        enum MHD_Result ret;
        int pass = 0;

        if (sc == NULL) {
            return MHD_NO;
        }
        if (sc->spare != NULL) {
            rq = sc->spare; /* its body empty and wiped (on_completed) */
            sc->spare = NULL;
            rq->too_big = 0;
            rq->privileged = 0;
        } else {
            rq = plat_calloc(1, sizeof(*rq));
            if (rq == NULL) {
                return MHD_NO;
            }
            buf_init(&rq->body, DAEMON_CHECK_BODY_MAX);
        }
        *con_cls = rq;
        count(sc->sh_owned, &sc->sh->in_flight, 1);
        count(sc->sh_owned, &sc->sh->requests, 1);
        ret = gate(l, sc, c, url, method, rq, &pass);
        if (!pass) {
            conn_deadline(c, UINT64_MAX);
        }
        return ret;
    }
    if (*upload_data_size > 0) {
        if (!rq->too_big && buf_append(&rq->body, upload_data, *upload_data_size) != POSGATE_OK) {
            rq->too_big = 1;
            buf_free(&rq->body);
        }
        *upload_data_size = 0;
        return MHD_YES;
    }
    conn_deadline(c, UINT64_MAX); /* the request is whole: the answer is ours to make */
    return route(h, c, url, method, rq);
}

static void
on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
             enum MHD_RequestTerminationCode toe)
{
    struct listener *l = cls;
    struct req *rq = *con_cls;

    (void)toe;
    /* the next request on this connection (keep-alive) has the full deadline again */
    conn_deadline(c, plat_mono_ns() + (uint64_t)HTTPD_REQUEST_DEADLINE_MS * 1000000u);
    if (rq != NULL) {
        struct scratch *sc = pthread_getspecific(l->h->scratch_key);

        /* minus one (the sum wraps), on this thread's shard or the shared one */
        if (sc != NULL) {
            count(sc->sh_owned, &sc->sh->in_flight, UINT64_MAX);
        } else {
            count(0, &l->h->shards[0].in_flight, UINT64_MAX);
        }
        /* identifiers in clear: wiped; a small body's storage is kept with the spare */
        if (sc != NULL && sc->spare == NULL && rq->body.cap <= SPARE_BODY_MAX) {
            if (rq->body.data != NULL) {
                plat_wipe(rq->body.data, rq->body.cap);
            }
            buf_reset(&rq->body);
            sc->spare = rq;
        } else {
            buf_wipe(&rq->body);
            plat_free(rq);
        }
        *con_cls = NULL;
    }
}

/* Tracks every connection from accept to close, so the reaper can close one that holds a
 * slot without delivering a request (trickled headers or body). MHD calls CLOSED before it
 * closes the descriptor; the reaper shuts sockets down under conn_lock, so it never touches a
 * descriptor number that was reused. */
static void
on_connection(void *cls, struct MHD_Connection *c, void **socket_context,
              enum MHD_ConnectionNotificationCode toe)
{
    struct listener *l = cls;
    struct httpd *h = l->h;
    struct conn *k = *socket_context;

    if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);

        k = plat_calloc(1, sizeof(*k));
        if (k == NULL || ci == NULL) {
            plat_free(k); /* untracked: MHD's inactivity timeout still bounds it */
            *socket_context = NULL;
            return;
        }
        k->fd = ci->connect_fd;
        atomic_store(&k->deadline_ns,
                     plat_mono_ns() + (uint64_t)HTTPD_REQUEST_DEADLINE_MS * 1000000u);
        pthread_mutex_lock(&h->conn_lock);
        k->next = h->conns;
        if (h->conns != NULL) {
            h->conns->prev = k;
        }
        h->conns = k;
        pthread_mutex_unlock(&h->conn_lock);
        *socket_context = k;
        return;
    }
    if (k == NULL) {
        return;
    }
    pthread_mutex_lock(&h->conn_lock);
    if (k->prev != NULL) {
        k->prev->next = k->next;
    } else {
        h->conns = k->next;
    }
    if (k->next != NULL) {
        k->next->prev = k->prev;
    }
    pthread_mutex_unlock(&h->conn_lock);
    plat_free(k);
    *socket_context = NULL;
}

static void *
reaper(void *arg)
{
    struct httpd *h = arg;

    while (!atomic_load(&h->reaper_stop)) {
        struct timespec ts = {0, 100 * 1000 * 1000};
        uint64_t now = plat_mono_ns();

        pthread_mutex_lock(&h->conn_lock);
        for (struct conn *k = h->conns; k != NULL; k = k->next) {
            if (!k->shut && now > atomic_load(&k->deadline_ns)) {
                (void)shutdown(k->fd, SHUT_RDWR);
                k->shut = 1;
                atomic_fetch_add(&h->reaped, 1);
            }
        }
        pthread_mutex_unlock(&h->conn_lock);
        nanosleep(&ts, NULL);
    }
    return NULL;
}

static void mhd_log(void *cls, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));

static void
mhd_log(void *cls, const char *fmt, va_list ap)
{
    char msg[512];

    (void)cls;
    vsnprintf(msg, sizeof(msg), fmt, ap);
    msg[strcspn(msg, "\n")] = 0;
    /* a client gone or closed at its deadline is counted in /metrics, not logged each time */
    plat_log(strstr(msg, "closed") != NULL || strstr(msg, "closure") != NULL ? PLAT_LOG_DEBUG
                                                                              : PLAT_LOG_WARN,
             "httpd: %s", msg);
}

static enum posgate_err
bind_listener(const struct daemon_listen *d, const char *group, struct listener *l, char *errmsg,
              size_t errcap)
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
    if (d->kind == DAEMON_LISTEN_UNIX && group != NULL && group[0] != 0) {
        struct group *g = getgrnam(group);

        if (g == NULL || chown(d->path, (uid_t)-1, g->gr_gid) != 0) {
            snprintf(errmsg, errcap, "listen %.200s: socket_group \"%s\": %s", d->text, group,
                     g == NULL ? "no such group" : strerror(errno));
            close(fd);
            unlink(d->path);
            return POSGATE_ERR_IO;
        }
    }
    if (listen(fd, 128) != 0) {
        snprintf(errmsg, errcap, "listen %.200s: listen: %s", d->text, strerror(errno));
        close(fd);
        return POSGATE_ERR_IO;
    }
    l->fd = fd;
    l->is_unix = d->kind == DAEMON_LISTEN_UNIX;
    l->loopback = d->loopback;
    snprintf(l->port, sizeof(l->port), "%u", (unsigned)d->port);
    if (d->kind == DAEMON_LISTEN_TCP4) {
        (void)inet_ntop(AF_INET, d->addr, l->host, sizeof(l->host));
    } else if (d->kind == DAEMON_LISTEN_TCP6) {
        char t[INET6_ADDRSTRLEN];

        (void)inet_ntop(AF_INET6, d->addr, t, sizeof(t));
        snprintf(l->host, sizeof(l->host), "[%s]", t);
    }
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

    if (opt == NULL || out == NULL || opt->pg == NULL || opt->core == NULL ||
        opt->n_listen == 0 || opt->n_listen > DAEMON_LISTEN_MAX ||
        opt->hooks.sync_request == NULL || opt->access == NULL || opt->hooks.sync_state == NULL) {
        snprintf(errmsg, errcap, "httpd: missing options");
        return POSGATE_ERR_INVALID;
    }
    *out = NULL;
    h = plat_calloc(1, sizeof(*h));
    if (h == NULL) {
        return POSGATE_ERR_NOMEM;
    }
    h->pg = opt->pg;
    h->core = opt->core;
    h->hooks = opt->hooks;
    pthread_mutex_init(&h->token_lock, NULL);
    pthread_mutex_init(&h->conn_lock, NULL);
    httpd_set_access(h, opt->access);
    if (pthread_key_create(&h->scratch_key, scratch_free) != 0) {
        snprintf(errmsg, errcap, "httpd: cannot create the request threads' key");
        err = POSGATE_ERR_NOMEM;
        goto fail;
    }
    h->scratch_key_made = 1;
    snprintf(h->group, sizeof(h->group), "%s", opt->access->socket_group);
    if (pthread_create(&h->reaper, NULL, reaper, h) != 0) {
        snprintf(errmsg, errcap, "httpd: cannot start the connection reaper thread");
        err = POSGATE_ERR_NOMEM;
        goto fail;
    }
    h->reaper_started = 1;
    threads = opt->threads != 0 ? opt->threads : HTTPD_THREADS_DEFAULT;
    for (size_t i = 0; i < opt->n_listen; i++) {
        struct listener *l = &h->ls[i];

        l->fd = -1;
        l->h = h;
        h->n_ls = i + 1;
        err = bind_listener(&opt->listen[i], h->group, l, errmsg, errcap);
        if (err != POSGATE_OK) {
            goto fail;
        }
        l->mhd = MHD_start_daemon(
            MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ITC | MHD_USE_AUTO | MHD_USE_ERROR_LOG, 0,
            NULL, NULL, on_request, l, MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,
            MHD_OPTION_LISTEN_SOCKET, (MHD_socket)l->fd, MHD_OPTION_THREAD_POOL_SIZE, threads,
            MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)HTTPD_IO_TIMEOUT_S,
            MHD_OPTION_CONNECTION_LIMIT, (unsigned)HTTPD_CONN_MAX,
            MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)(l->is_unix ? 0 : HTTPD_CONN_PER_IP),
            MHD_OPTION_NOTIFY_COMPLETED, on_completed, l, MHD_OPTION_NOTIFY_CONNECTION,
            on_connection, l, MHD_OPTION_END);
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
httpd_set_access(struct httpd *h, const struct daemon_config *cfg)
{
    if (h == NULL || cfg == NULL) {
        return;
    }
    pthread_mutex_lock(&h->token_lock);
    httpd_access_from_config(&h->acc, cfg);
    atomic_fetch_add_explicit(&h->acc_gen, 1, memory_order_release);
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
    while (shard_sum(h, offsetof(struct shard, in_flight)) > 0 && plat_mono_ns() < deadline) {
        struct timespec ts = {0, 10 * 1000 * 1000};

        nanosleep(&ts, NULL);
    }
    if (h->reaper_started) {
        atomic_store(&h->reaper_stop, 1);
        pthread_join(h->reaper, NULL);
    }
    for (size_t i = 0; i < h->n_ls; i++) {
        listener_close(&h->ls[i]);
    }
    if (h->scratch_key_made) {
        /* every request thread has ended with its MHD daemon and freed its scratch */
        pthread_key_delete(h->scratch_key);
    }
    while (h->conns != NULL) { /* none once every MHD daemon stopped; freed all the same */
        struct conn *k = h->conns;

        h->conns = k->next;
        plat_free(k);
    }
    pthread_mutex_destroy(&h->conn_lock);
    pthread_mutex_destroy(&h->token_lock);
    plat_wipe(&h->acc, sizeof(h->acc));
    plat_free(h);
}

const char *
httpd_mhd_version(void)
{
    return MHD_get_version();
}
