/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The fetcher (sync/transport/fetch*.c) against a real HTTP server on 127.0.0.1 written in this file (a
 * raw socket loop, so that it can misbehave exactly: cut a body mid-way, lie about lengths,
 * answer 429/500): safety cases, full-jitter backoff bounds, Retry-After parsing (seconds and
 * the three HTTP-date forms), conditional GET with 304 served from the cache (in memory and from
 * the cache dir), Range resume after a cut connection (and a changed file restarting), 429 with
 * Retry-After closing the mirror, 500 and dead mirrors skipped for the next, 404 as NOTFOUND,
 * the length cap, and a mid-body failover never mixing two bodies in the sink.
 */
#define _DEFAULT_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fetch.h"
#include "plat_file.h"
#include "test.h"

/* ---- the server ---- */

enum mode { M_OK, M_CUT, M_500, M_429, M_404, M_LONG };

struct route {
    char path[128];
    enum mode mode;
    const uint8_t *body;
    size_t len;
    char etag[64];
    int retry_after;
    int ranges; /* honour Range / If-Range */
};

static struct route routes[16];
static int n_routes;
static pthread_mutex_t srv_lock = PTHREAD_MUTEX_INITIALIZER;
static int requests;
static char last_range[128], last_if_range[128], last_inm[128];
static int srv_fd = -1;

static void
set_route(const char *path, enum mode m, const uint8_t *body, size_t len, const char *etag)
{
    struct route *r = NULL;

    pthread_mutex_lock(&srv_lock);
    for (int i = 0; i < n_routes; i++) {
        if (strcmp(routes[i].path, path) == 0) {
            r = &routes[i];
        }
    }
    if (r == NULL) {
        r = &routes[n_routes++];
    }
    memset(r, 0, sizeof(*r));
    snprintf(r->path, sizeof(r->path), "%s", path);
    r->mode = m;
    r->body = body;
    r->len = len;
    snprintf(r->etag, sizeof(r->etag), "%s", etag);
    r->retry_after = 5;
    r->ranges = 1;
    pthread_mutex_unlock(&srv_lock);
}

static void
header_value(const char *req, const char *name, char *out, size_t cap)
{
    const char *p = req;
    size_t nl = strlen(name);

    out[0] = 0;
    while ((p = strchr(p, '\n')) != NULL) {
        p++;
        if (strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
            const char *v = p + nl + 1, *e;

            while (*v == ' ') {
                v++;
            }
            e = strpbrk(v, "\r\n");
            snprintf(out, cap, "%.*s", (int)(e != NULL ? e - v : (long)strlen(v)), v);
            return;
        }
    }
}

static void
send_all(int fd, const void *p, size_t n)
{
    const char *c = p;

    while (n > 0) {
        ssize_t w = send(fd, c, n, MSG_NOSIGNAL);

        if (w <= 0) {
            return;
        }
        c += w;
        n -= (size_t)w;
    }
}

static void
serve_one(int fd)
{
    char req[8192], path[256], hdr[512], range[128], ifr[128], inm[128];
    size_t got = 0;
    struct route r;
    int found = 0;

    while (got < sizeof(req) - 1) {
        ssize_t n = recv(fd, req + got, sizeof(req) - 1 - got, 0);

        if (n <= 0) {
            return;
        }
        got += (size_t)n;
        req[got] = 0;
        if (strstr(req, "\r\n\r\n") != NULL) {
            break;
        }
    }
    if (sscanf(req, "GET %255s", path) != 1) {
        return;
    }
    header_value(req, "Range", range, sizeof(range));
    header_value(req, "If-Range", ifr, sizeof(ifr));
    header_value(req, "If-None-Match", inm, sizeof(inm));
    pthread_mutex_lock(&srv_lock);
    requests++;
    snprintf(last_range, sizeof(last_range), "%s", range);
    snprintf(last_if_range, sizeof(last_if_range), "%s", ifr);
    snprintf(last_inm, sizeof(last_inm), "%s", inm);
    for (int i = 0; i < n_routes; i++) {
        if (strcmp(routes[i].path, path) == 0) {
            r = routes[i];
            found = 1;
        }
    }
    pthread_mutex_unlock(&srv_lock);
    if (!found || r.mode == M_404) {
        snprintf(hdr, sizeof(hdr),
                 "HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\n"
                 "Connection: close\r\n\r\nnot found");
        send_all(fd, hdr, strlen(hdr));
        return;
    }
    if (r.mode == M_500) {
        snprintf(hdr, sizeof(hdr),
                 "HTTP/1.1 500 Oops\r\nContent-Length: 21\r\n"
                 "Connection: close\r\n\r\n<h1>server broke</h1>");
        send_all(fd, hdr, strlen(hdr));
        return;
    }
    if (r.mode == M_429) {
        snprintf(hdr, sizeof(hdr),
                 "HTTP/1.1 429 Too Many\r\nRetry-After: %d\r\n"
                 "Content-Length: 0\r\nConnection: close\r\n\r\n",
                 r.retry_after);
        send_all(fd, hdr, strlen(hdr));
        return;
    }
    if (inm[0] != 0 && strcmp(inm, r.etag) == 0) {
        snprintf(hdr, sizeof(hdr),
                 "HTTP/1.1 304 Not Modified\r\nETag: %s\r\n"
                 "Connection: close\r\n\r\n",
                 r.etag);
        send_all(fd, hdr, strlen(hdr));
        return;
    }
    if (r.ranges && strncmp(range, "bytes=", 6) == 0 && (ifr[0] == 0 || strcmp(ifr, r.etag) == 0)) {
        unsigned long long first = strtoull(range + 6, NULL, 10);

        if (first < r.len) {
            snprintf(hdr, sizeof(hdr),
                     "HTTP/1.1 206 Partial\r\nETag: %s\r\nContent-Range: "
                     "bytes %llu-%zu/%zu\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n",
                     r.etag, first, r.len - 1, r.len, r.len - (size_t)first);
            send_all(fd, hdr, strlen(hdr));
            send_all(fd, r.body + first, r.len - (size_t)first);
            return;
        }
    }
    if (r.mode == M_LONG) {
        /* no Content-Length: the body ends when the connection does */
        snprintf(hdr, sizeof(hdr), "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n");
    } else {
        snprintf(hdr, sizeof(hdr),
                 "HTTP/1.1 200 OK\r\nETag: %s\r\nContent-Length: %zu\r\n"
                 "Connection: close\r\n\r\n",
                 r.etag, r.len);
    }
    send_all(fd, hdr, strlen(hdr));
    send_all(fd, r.body, r.mode == M_CUT ? r.len * 2 / 5 : r.len);
}

static void *
server_main(void *arg)
{
    (void)arg;
    for (;;) {
        int c = accept(srv_fd, NULL, NULL);

        if (c < 0) {
            return NULL;
        }
        serve_one(c);
        shutdown(c, SHUT_RDWR);
        close(c);
    }
}

static int
start_server(pthread_t *th)
{
    struct sockaddr_in a;
    socklen_t al = sizeof(a);

    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    srv_fd = socket(AF_INET, SOCK_STREAM, 0);
    if (srv_fd < 0 || bind(srv_fd, (struct sockaddr *)&a, sizeof(a)) != 0 ||
        listen(srv_fd, 16) != 0 || getsockname(srv_fd, (struct sockaddr *)&a, &al) != 0) {
        return -1;
    }
    pthread_create(th, NULL, server_main, NULL);
    return ntohs(a.sin_port);
}

/* A port nobody listens on: bound, then closed. */
static int
dead_port(void)
{
    struct sockaddr_in a;
    socklen_t al = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM, 0), port;

    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(fd, (struct sockaddr *)&a, sizeof(a));
    getsockname(fd, (struct sockaddr *)&a, &al);
    port = ntohs(a.sin_port);
    close(fd);
    return port;
}

static int
req_count(void)
{
    int n;

    pthread_mutex_lock(&srv_lock);
    n = requests;
    pthread_mutex_unlock(&srv_lock);
    return n;
}

/* ---- helpers ---- */

static struct fetch *
mk(const char *const *urls, size_t n, const char *spool, const char *cache)
{
    struct fetch_options o;
    struct fetch *f = NULL;
    char msg[512];

    memset(&o, 0, sizeof(o));
    o.mirrors = urls;
    o.n_mirrors = n;
    o.spool_dir = spool;
    o.cache_dir = cache;
    o.timeout_s = 10;
    if (fetch_new(&o, &f, msg, sizeof(msg)) != POSGATE_OK) {
        fprintf(stderr, "fetch_new: %s\n", msg);
    }
    return f;
}

static enum posgate_err
get(struct carrier *c, const char *name, uint64_t max, struct buf *out)
{
    buf_reset(out);
    return carrier_fetch_buf(c, name, max, out);
}

static int
file_size(const char *dir, uint64_t *total)
{
    char cmd[512];
    FILE *p;
    unsigned long long v = 0;
    int n = 0;

    snprintf(cmd, sizeof(cmd), "cat %s/*.part 2>/dev/null | wc -c; ls %s | grep -c part", dir, dir);
    p = popen(cmd, "r");
    if (p == NULL) {
        return -1;
    }
    if (fscanf(p, "%llu %d", &v, &n) != 2) {
        n = -1;
    }
    pclose(p);
    *total = v;
    return n;
}

/* ---- tests ---- */

static void
test_safety(void)
{
    struct fetch_options o;
    struct fetch *f = (struct fetch *)1;
    const char *bad[] = {"ftp://127.0.0.1/"};
    const char *good[] = {"http://127.0.0.1:1/"};
    const char *nine[9];
    char msg[512];

    CHECK_ERR(fetch_new(NULL, &f, msg, sizeof(msg)), POSGATE_ERR_INVALID);
    CHECK(f == NULL);
    memset(&o, 0, sizeof(o));
    CHECK_ERR(fetch_new(&o, &f, msg, sizeof(msg)), POSGATE_ERR_INVALID);
    CHECK_CONTAINS(msg, "at least one feed URL");
    o.mirrors = bad;
    o.n_mirrors = 1;
    CHECK_ERR(fetch_new(&o, &f, msg, sizeof(msg)), POSGATE_ERR_INVALID);
    CHECK_CONTAINS(msg, "ftp://");
    o.mirrors = good;
    o.client_cert = "c.pem";
    CHECK_ERR(fetch_new(&o, &f, msg, sizeof(msg)), POSGATE_ERR_INVALID);
    CHECK_CONTAINS(msg, "client_key");
    o.client_cert = NULL;
    for (int i = 0; i < 9; i++) {
        nine[i] = "http://127.0.0.1:1/";
    }
    o.mirrors = nine;
    o.n_mirrors = 9;
    CHECK_ERR(fetch_new(&o, &f, msg, sizeof(msg)), POSGATE_ERR_INVALID);
    CHECK_CONTAINS(msg, "at most 8");
    fetch_free(NULL);
    CHECK(fetch_metadata_carrier(NULL) == NULL);
    CHECK(fetch_retry_after_s(NULL) == 0);
    CHECK_STR(fetch_fail_name(FETCH_FAIL_HTTP_5XX), "http_5xx");
    CHECK_STR(fetch_fail_name(FETCH_FAIL_TLS), "tls");
}

static void
test_backoff(void)
{
    uint64_t seen_max = 0, seen_min = UINT64_MAX;
    int distinct[17] = {0}, nd = 0;

    CHECK(fetch_backoff_s(3, 0, 100) == 0);
    CHECK(fetch_backoff_s(3, 5, 0) == 0);
    for (unsigned a = 0; a < 200; a++) {
        uint64_t ceil = a >= 63 ? 300 : ((1ull << (a > 20 ? 20 : a)) > 300 ? 300 : (1ull << a));

        for (int i = 0; i < 200; i++) {
            uint64_t v = fetch_backoff_s(a, 1, 300);

            if (v > ceil) {
                CHECK(v <= ceil);
                fprintf(stderr, "attempt %u: %llu > %llu\n", a, (unsigned long long)v,
                        (unsigned long long)ceil);
                return;
            }
        }
    }
    /* huge values: no overflow, never past the cap */
    CHECK(fetch_backoff_s(1000, UINT64_MAX, UINT64_MAX - 1) <= UINT64_MAX - 1);
    CHECK(fetch_backoff_s(62, 3, 1000) <= 1000);
    CHECK(fetch_backoff_s(64, 1, 50) <= 50);
    /* full jitter: base 2, attempt 3 -> uniform over [0, 16] */
    for (int i = 0; i < 2000; i++) {
        uint64_t v = fetch_backoff_s(3, 2, 1000);

        CHECK(v <= 16);
        if (v > 16) {
            break;
        }
        seen_max = v > seen_max ? v : seen_max;
        seen_min = v < seen_min ? v : seen_min;
        if (!distinct[v]) {
            distinct[v] = 1;
            nd++;
        }
    }
    CHECK(seen_min == 0);
    CHECK(seen_max == 16);
    CHECK(nd == 17);
}

static void
test_retry_after(void)
{
    uint64_t s = 99;
    int64_t t = 0, ref = 784111777; /* Sun, 06 Nov 1994 08:49:37 GMT */
    char d[40];

    CHECK_OK(fetch_parse_retry_after("120", 0, &s));
    CHECK_INT(s, 120);
    CHECK_OK(fetch_parse_retry_after("  7 ", 0, &s));
    CHECK_INT(s, 7);
    CHECK_OK(fetch_parse_retry_after("0", 0, &s));
    CHECK_INT(s, 0);
    CHECK_OK(fetch_parse_retry_after("99999999999999999999999999", 0, &s));
    CHECK_INT(s, 86400);
    CHECK_OK(fetch_parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", ref - 30, &s));
    CHECK_INT(s, 30);
    CHECK_OK(fetch_parse_retry_after("Sunday, 06-Nov-94 08:49:37 GMT", ref - 45, &s));
    CHECK_INT(s, 45);
    CHECK_OK(fetch_parse_retry_after("Sun Nov  6 08:49:37 1994", ref - 1, &s));
    CHECK_INT(s, 1);
    CHECK_OK(fetch_parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", ref + 100, &s));
    CHECK_INT(s, 0); /* in the past */
    CHECK_OK(fetch_parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", ref - 999999, &s));
    CHECK_INT(s, 86400);
    CHECK_ERR(fetch_parse_retry_after("soon", 0, &s), POSGATE_ERR_INVALID);
    CHECK_ERR(fetch_parse_retry_after("", 0, &s), POSGATE_ERR_INVALID);
    CHECK_ERR(fetch_parse_retry_after("-5", 0, &s), POSGATE_ERR_INVALID);
    CHECK_ERR(fetch_parse_retry_after("12s", 0, &s), POSGATE_ERR_INVALID);
    CHECK_ERR(fetch_parse_retry_after("Sun, 32 Nov 1994 08:49:37 GMT", 0, &s), POSGATE_ERR_INVALID);
    CHECK_ERR(fetch_parse_retry_after("Sun, 06 Nov 1994 25:49:37 GMT", 0, &s), POSGATE_ERR_INVALID);
    CHECK_ERR(fetch_parse_retry_after("Sun, 06 Foo 1994 08:49:37 GMT", 0, &s), POSGATE_ERR_INVALID);
    CHECK_ERR(fetch_parse_retry_after(NULL, 0, &s), POSGATE_ERR_INVALID);
    fetch_format_http_date(ref, d, sizeof(d));
    CHECK_STR(d, "Sun, 06 Nov 1994 08:49:37 GMT");
    CHECK_OK(fetch_parse_http_date(d, &t));
    CHECK_INT(t, ref);
    fetch_format_http_date(1767225600, d, sizeof(d)); /* 2026-01-01 */
    CHECK_STR(d, "Thu, 01 Jan 2026 00:00:00 GMT");
}

static void
test_server(const char *tmp, int port)
{
    static uint8_t big[100000], big2[100000];
    char base_a[128], base_b[128], dead[128], spool[512], cache[512];
    const char *one[1], *two[2];
    struct buf out = BUF_INIT(1 << 20);
    struct fetch_stats st;
    struct fetch *f;
    uint64_t psize = 0;
    int n0;

    for (size_t i = 0; i < sizeof(big); i++) {
        big[i] = (uint8_t)(i * 7 + (i >> 8));
        big2[i] = (uint8_t)(i * 13 + 1);
    }
    snprintf(base_a, sizeof(base_a), "http://127.0.0.1:%d/a", port); /* no '/': added */
    snprintf(base_b, sizeof(base_b), "http://127.0.0.1:%d/b/", port);
    snprintf(dead, sizeof(dead), "http://127.0.0.1:%d/", dead_port());
    snprintf(spool, sizeof(spool), "%s/spool", tmp);
    snprintf(cache, sizeof(cache), "%s/cache", tmp);

    /* conditional GET: 200, then 304 answered from the cache with the same body */
    set_route("/a/metadata/timestamp.json", M_OK, (const uint8_t *)"TS-ONE", 6, "\"t1\"");
    one[0] = base_a;
    f = mk(one, 1, spool, cache);
    CHECK(f != NULL);
    if (f == NULL) {
        return;
    }
    CHECK_OK(get(fetch_metadata_carrier(f), "timestamp.json", 16384, &out));
    CHECK_STR(buf_cstr(&out), "TS-ONE");
    CHECK_STR(last_inm, "");
    CHECK_OK(get(fetch_metadata_carrier(f), "timestamp.json", 16384, &out));
    CHECK_STR(buf_cstr(&out), "TS-ONE");
    CHECK_STR(last_inm, "\"t1\"");
    fetch_stats_get(f, &st);
    CHECK_INT(st.not_modified, 1);
    CHECK_INT(st.ok, 1);
    CHECK_INT(st.attempts, 2);
    /* the cached body still obeys the length cap */
    CHECK_ERR(get(fetch_metadata_carrier(f), "timestamp.json", 3, &out), POSGATE_ERR_TOOBIG);
    fetch_free(f);
    /* a new fetcher (a new process) reuses the cache dir: the first request is conditional */
    f = mk(one, 1, spool, cache);
    CHECK_OK(get(fetch_metadata_carrier(f), "timestamp.json", 16384, &out));
    CHECK_STR(last_inm, "\"t1\"");
    CHECK_STR(buf_cstr(&out), "TS-ONE");
    /* the file changed: 200 with the new body, and the cache follows */
    set_route("/a/metadata/timestamp.json", M_OK, (const uint8_t *)"TS-TWO!", 7, "\"t2\"");
    CHECK_OK(get(fetch_metadata_carrier(f), "timestamp.json", 16384, &out));
    CHECK_STR(buf_cstr(&out), "TS-TWO!");
    CHECK_OK(get(fetch_metadata_carrier(f), "timestamp.json", 16384, &out));
    CHECK_STR(last_inm, "\"t2\"");
    CHECK_STR(buf_cstr(&out), "TS-TWO!");
    /* only timestamp.json is conditional */
    set_route("/a/metadata/1.root.json", M_OK, (const uint8_t *)"R", 1, "\"r\"");
    CHECK_OK(get(fetch_metadata_carrier(f), "1.root.json", 100, &out));
    CHECK_OK(get(fetch_metadata_carrier(f), "1.root.json", 100, &out));
    CHECK_STR(last_inm, "");

    /* Range resume: the connection is cut after 40% of the body */
    set_route("/a/targets/lists/x/big.bin", M_CUT, big, sizeof(big), "\"b1\"");
    CHECK_ERR(get(fetch_targets_carrier(f), "lists/x/big.bin", sizeof(big), &out),
              POSGATE_ERR_NETWORK);
    CHECK(out.len == 0); /* nothing reached the sink */
    CHECK_CONTAINS(carrier_errmsg(fetch_targets_carrier(f)), "targets/lists/x/big.bin");
    CHECK_INT(file_size(spool, &psize), 1);
    CHECK_INT(psize, sizeof(big) * 2 / 5);
    set_route("/a/targets/lists/x/big.bin", M_OK, big, sizeof(big), "\"b1\"");
    fetch_free(f);
    f = mk(one, 1, spool, cache); /* the part file outlives the process */
    CHECK_OK(get(fetch_targets_carrier(f), "lists/x/big.bin", sizeof(big), &out));
    CHECK_INT(out.len, sizeof(big));
    CHECK(out.len == sizeof(big) && memcmp(out.data, big, sizeof(big)) == 0);
    CHECK_STR(last_range, "bytes=40000-");
    CHECK_STR(last_if_range, "\"b1\"");
    fetch_stats_get(f, &st);
    CHECK_INT(st.resumed, 1);
    CHECK_INT(st.bytes, sizeof(big) - 40000);
    CHECK_INT(file_size(spool, &psize), 0); /* complete: part removed */
    /* cut again, then the file changes: If-Range no longer matches, the server sends all */
    set_route("/a/targets/lists/x/big.bin", M_CUT, big, sizeof(big), "\"b1\"");
    CHECK_ERR(get(fetch_targets_carrier(f), "lists/x/big.bin", sizeof(big), &out),
              POSGATE_ERR_NETWORK);
    set_route("/a/targets/lists/x/big.bin", M_OK, big2, sizeof(big2), "\"b2\"");
    CHECK_OK(get(fetch_targets_carrier(f), "lists/x/big.bin", sizeof(big2), &out));
    CHECK_STR(last_if_range, "\"b1\"");
    CHECK(out.len == sizeof(big2) && memcmp(out.data, big2, sizeof(big2)) == 0);
    fetch_stats_get(f, &st);
    CHECK_INT(st.resumed, 1);
    /* a server without range support: 200 from the start, still one correct body */
    set_route("/a/targets/lists/x/big.bin", M_CUT, big, sizeof(big), "\"b3\"");
    CHECK_ERR(get(fetch_targets_carrier(f), "lists/x/big.bin", sizeof(big), &out),
              POSGATE_ERR_NETWORK);
    set_route("/a/targets/lists/x/big.bin", M_OK, big, sizeof(big), "\"b3\"");
    pthread_mutex_lock(&srv_lock);
    routes[n_routes - 1].ranges = 0;
    for (int i = 0; i < n_routes; i++) {
        if (strcmp(routes[i].path, "/a/targets/lists/x/big.bin") == 0) {
            routes[i].ranges = 0;
        }
    }
    pthread_mutex_unlock(&srv_lock);
    CHECK_OK(get(fetch_targets_carrier(f), "lists/x/big.bin", sizeof(big), &out));
    CHECK(out.len == sizeof(big) && memcmp(out.data, big, sizeof(big)) == 0);

    /* length cap: declared too long, and no declared length at all */
    CHECK_ERR(get(fetch_targets_carrier(f), "lists/x/big.bin", 1000, &out), POSGATE_ERR_TOOBIG);
    CHECK(out.len == 0);
    CHECK_CONTAINS(carrier_errmsg(fetch_targets_carrier(f)), "longer than the 1000 bytes");
    set_route("/a/targets/endless.bin", M_LONG, big, sizeof(big), "");
    CHECK_ERR(get(fetch_targets_carrier(f), "endless.bin", 5000, &out), POSGATE_ERR_TOOBIG);
    CHECK(out.len == 0);
    fetch_stats_get(f, &st);
    CHECK_INT(st.failures[FETCH_FAIL_TOO_BIG], 2);
    CHECK_INT(file_size(spool, &psize), 0);

    /* 404 is NOTFOUND */
    CHECK_ERR(get(fetch_metadata_carrier(f), "2.root.json", 100, &out), POSGATE_ERR_NOTFOUND);
    CHECK_CONTAINS(carrier_errmsg(fetch_metadata_carrier(f)), "404");
    fetch_free(f);

    /* mirrors: A answers 500, B serves; a dead A, B serves; 404 + dead is NOTFOUND */
    set_route("/a/metadata/snapshot.json", M_500, NULL, 0, "");
    set_route("/b/metadata/snapshot.json", M_OK, (const uint8_t *)"SNAP-B", 6, "\"s\"");
    two[0] = base_a;
    two[1] = base_b;
    f = mk(two, 2, spool, NULL);
    CHECK_OK(get(fetch_metadata_carrier(f), "snapshot.json", 100, &out));
    CHECK_STR(buf_cstr(&out), "SNAP-B");
    fetch_stats_get(f, &st);
    CHECK_INT(st.failures[FETCH_FAIL_HTTP_5XX], 1);
    /* every mirror failing: RETRY, with each failure in the message */
    set_route("/b/metadata/snapshot.json", M_500, NULL, 0, "");
    CHECK_ERR(get(fetch_metadata_carrier(f), "snapshot.json", 100, &out), POSGATE_ERR_RETRY);
    CHECK_CONTAINS(carrier_errmsg(fetch_metadata_carrier(f)),
                   "/a/metadata/snapshot.json: HTTP 500");
    CHECK_CONTAINS(carrier_errmsg(fetch_metadata_carrier(f)),
                   "/b/metadata/snapshot.json: HTTP 500");
    CHECK_CONTAINS(carrier_errmsg(fetch_metadata_carrier(f)), "server broke");
    /* a mirror cutting mid-body, the next serving: the sink sees exactly one body */
    set_route("/a/metadata/1.targets.json", M_CUT, big, 5000, "\"x\"");
    set_route("/b/metadata/1.targets.json", M_OK, big2, 5000, "\"y\"");
    CHECK_OK(get(fetch_metadata_carrier(f), "1.targets.json", 100000, &out));
    CHECK(out.len == 5000 && memcmp(out.data, big2, 5000) == 0);
    fetch_free(f);
    two[0] = dead;
    f = mk(two, 2, NULL, NULL);
    CHECK_OK(get(fetch_metadata_carrier(f), "1.targets.json", 100000, &out));
    CHECK(out.len == 5000 && memcmp(out.data, big2, 5000) == 0);
    CHECK_ERR(get(fetch_metadata_carrier(f), "9.root.json", 100, &out), POSGATE_ERR_NOTFOUND);
    fetch_stats_get(f, &st);
    CHECK_INT(st.failures[FETCH_FAIL_NETWORK], 2);
    fetch_free(f);
    one[0] = dead;
    f = mk(one, 1, NULL, NULL);
    CHECK_ERR(get(fetch_metadata_carrier(f), "timestamp.json", 100, &out), POSGATE_ERR_NETWORK);
    CHECK_CONTAINS(carrier_errmsg(fetch_metadata_carrier(f)), "GET http://127.0.0.1:");
    fetch_free(f);
    /* the URL of a name: '%' kept (role names come escaped), and the other characters of a
     * path; every other byte percent-encoded (plat_url_escape) */
    set_route("/a/metadata/1.lists%2Feu-1%20x%C3%A9!@.json", M_OK, (const uint8_t *)"D", 1,
              "\"d\"");
    one[0] = base_a;
    f = mk(one, 1, NULL, NULL);
    CHECK_OK(get(fetch_metadata_carrier(f), "1.lists%2Feu-1 x\xc3\xa9!@.json", 100, &out));
    CHECK_STR(buf_cstr(&out), "D");
    CHECK_ERR(get(fetch_targets_carrier(f), "lists/eu-1/a%2Fb c", 100, &out), POSGATE_ERR_NOTFOUND);
    CHECK_CONTAINS(carrier_errmsg(fetch_targets_carrier(f)), "/a/targets/lists/eu-1/a%2Fb%20c");
    fetch_free(f);

    /* 429 with Retry-After: RETRY, the mirror closes for 5 s, no request until then */
    set_route("/a/metadata/timestamp.json", M_429, NULL, 0, "");
    one[0] = base_a;
    f = mk(one, 1, NULL, NULL);
    CHECK_ERR(get(fetch_metadata_carrier(f), "timestamp.json", 100, &out), POSGATE_ERR_RETRY);
    CHECK_CONTAINS(carrier_errmsg(fetch_metadata_carrier(f)), "HTTP 429");
    CHECK(fetch_retry_after_s(f) >= 4 && fetch_retry_after_s(f) <= 5);
    n0 = req_count();
    CHECK_ERR(get(fetch_metadata_carrier(f), "timestamp.json", 100, &out), POSGATE_ERR_RETRY);
    CHECK_CONTAINS(carrier_errmsg(fetch_metadata_carrier(f)), "Retry-After");
    CHECK_INT(req_count(), n0);
    fetch_stats_get(f, &st);
    CHECK_INT(st.failures[FETCH_FAIL_HTTP_4XX], 1);
    fetch_note_rejected(f);
    fetch_stats_get(f, &st);
    CHECK_INT(st.failures[FETCH_FAIL_REJECTED], 1);
    fetch_free(f);
    /* with a second mirror the closed one is skipped */
    set_route("/b/metadata/timestamp.json", M_OK, (const uint8_t *)"TS-B", 4, "\"tb\"");
    two[0] = base_a;
    two[1] = base_b;
    f = mk(two, 2, NULL, NULL);
    CHECK_ERR(get(fetch_metadata_carrier(f), "timestamp.json", 100, &out), POSGATE_OK);
    CHECK_STR(buf_cstr(&out), "TS-B");
    CHECK(fetch_retry_after_s(f) == 0); /* B is open */
    fetch_free(f);
    buf_free(&out);
}

int
main(void)
{
    char tmp[] = "/tmp/posgate-fetch-XXXXXX";
    char cmd[128];
    pthread_t th;
    int port;

    signal(SIGPIPE, SIG_IGN);
    test_safety();
    test_backoff();
    test_retry_after();
    if (mkdtemp(tmp) == NULL) {
        fprintf(stderr, "mkdtemp failed\n");
        return 1;
    }
    port = start_server(&th);
    CHECK(port > 0);
    if (port > 0) {
        test_server(tmp, port);
        shutdown(srv_fd, SHUT_RDWR);
        close(srv_fd);
        pthread_join(th, NULL);
    }
    snprintf(cmd, sizeof(cmd), "rm -rf %s", tmp);
    if (system(cmd) != 0) {
        fprintf(stderr, "cannot remove %s\n", tmp);
    }
    printf("fetch: %d checks, %d failures\n", test_checks, test_failures);
    return test_failures != 0;
}
