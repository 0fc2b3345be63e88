/* SPDX-License-Identifier: Apache-2.0 */
/*
 * "client" of posgate-bench: one request-response driver over raw TCP sockets on 127.0.0.1 for
 * every server in the run, so posgated, the libmicrohttpd floor and Redis are measured the same
 * way. Each of --connections threads holds one keep-alive connection (TCP_NODELAY) and sends
 * its share of --requests one at a time, waiting for each answer (no pipelining); per-request
 * latency goes to a histogram, requests/s is total / wall time.
 *
 *   --proto http  POST --path with the JSON body {"service": S, "ids": [QUERY]}, QUERY taken
 *                 in turn from --queries; HTTP/1.1 with Content-Length; a status other than
 *                 200 (or --expect) counts as an error
 *   --proto resp  SISMEMBER s KEY with the 16-byte keys of --keys (qkeys.bin); ":1" is a hit
 *
 * Prints PREFIX_p50_us, PREFIX_p99_us, PREFIX_p999_us, PREFIX_rps, PREFIX_errors, PREFIX_hits.
 */
#define _POSIX_C_SOURCE 200809L
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bench.h"

#define RESP_BUF 65536
#define REQ_MAX  4096
#define CONN_MAX 256

struct shared {
    int proto_http;
    uint16_t port;
    const char *path;
    const char *service;
    const char *token;
    unsigned expect;
    struct bench_map queries; /* http */
    const size_t *qoff;       /* line offsets into queries */
    size_t nq;
    struct bench_map keys; /* resp */
    uint64_t per_thread;
};

struct worker {
    pthread_t th;
    const struct shared *sh;
    unsigned index;
    struct bench_hist *h;
    uint64_t errors;
    uint64_t hits;
    char first_err[256];
};

int
bench_connect_local(uint16_t port)
{
    struct sockaddr_in sa;
    int one = 1, fd = socket(AF_INET, SOCK_STREAM, 0);

    if (fd < 0) {
        return -1;
    }
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons(port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        close(fd);
        return -1;
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

int
bench_send_all(int fd, const char *p, size_t n, int more)
{
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL | (more ? MSG_MORE : 0));
        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w <= 0) {
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Appends what the socket has to buf[have..cap-1): 0 when something came, -1 on close, error
 * or a full buffer (cap - 1 bytes, room kept for a terminating NUL). */
static int
recv_more(int fd, char *buf, size_t cap, size_t *have)
{
    for (;;) {
        ssize_t r;

        if (*have + 1 >= cap) {
            return -1;
        }
        r = recv(fd, buf + *have, cap - 1 - *have, 0);
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r <= 0) {
            return -1;
        }
        *have += (size_t)r;
        return 0;
    }
}

int
bench_read_http(int fd, char *buf, size_t cap, unsigned *status, size_t *body_off)
{
    size_t have = 0, head = 0, clen = 0;
    char *end = NULL;

    for (;;) {
        if (end == NULL && have > 0) {
            buf[have] = '\0';
            end = strstr(buf, "\r\n\r\n");
            if (end != NULL) {
                const char *p = buf;
                int found = 0;
                head = (size_t)(end - buf) + 4;
                if (sscanf(buf, "HTTP/1.%*d %u", status) != 1) {
                    return -1;
                }
                while ((p = strstr(p, "\r\n")) != NULL && p < end) {
                    p += 2;
                    if (strncasecmp(p, "Content-Length:", 15) == 0) {
                        clen = (size_t)strtoul(p + 15, NULL, 10);
                        found = 1;
                    }
                }
                if (!found || head + clen >= cap) {
                    return -1;
                }
            }
        }
        if (end != NULL && have >= head + clen) {
            buf[have] = '\0';
            if (body_off != NULL) {
                *body_off = head;
            }
            return have == head + clen ? 0 : -1;
        }
        if (recv_more(fd, buf, cap, &have) != 0) {
            return -1;
        }
    }
}

/* Reads one RESP integer reply ":N\r\n": 0 and *value, -1 otherwise. */
static int
read_resp(int fd, char *buf, size_t cap, long *value)
{
    size_t have = 0;

    for (;;) {
        if (have >= 3 && buf[have - 2] == '\r' && buf[have - 1] == '\n') {
            if (buf[0] != ':') {
                return -1;
            }
            buf[have - 2] = '\0';
            *value = strtol(buf + 1, NULL, 10);
            return 0;
        }
        if (recv_more(fd, buf, cap, &have) != 0) {
            return -1;
        }
    }
}

static size_t
build_http(const struct shared *sh, uint64_t i, char *req, size_t cap)
{
    const struct bench_map *q = &sh->queries;
    size_t k = (size_t)(i % sh->nq), start = sh->qoff[k], len;
    char body[BENCH_LINE_MAX + 256], auth[512] = "";
    int bl, n;

    len = (k + 1 < sh->nq ? sh->qoff[k + 1] - 1 : q->len) - start;
    if (len > 0 && q->data[start + len - 1] == '\n') {
        len--;
    }
    bl = snprintf(body, sizeof body, "{\"service\":\"%s\",\"ids\":[\"%.*s\"]}", sh->service,
                  (int)len, q->data + start);
    if (sh->token != NULL && sh->token[0] != '\0') {
        snprintf(auth, sizeof auth, "Authorization: Bearer %s\r\n", sh->token);
    }
    n = snprintf(req, cap,
                 "POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                 "%sContent-Length: %d\r\n\r\n%s",
                 sh->path, auth, bl, body);
    return n > 0 && (size_t)n < cap ? (size_t)n : 0;
}

static size_t
build_resp(const struct shared *sh, uint64_t i, char *req, size_t cap)
{
    size_t nk = sh->keys.len / 16, k = (size_t)(i % nk);
    int n = snprintf(req, cap, "*3\r\n$9\r\nSISMEMBER\r\n$1\r\ns\r\n$16\r\n");

    if (n < 0 || (size_t)n + 18 > cap) {
        return 0;
    }
    memcpy(req + n, sh->keys.data + k * 16, 16);
    memcpy(req + n + 16, "\r\n", 2);
    return (size_t)n + 18;
}

static void
fail(struct worker *w, const char *what)
{
    if (w->errors++ == 0) {
        snprintf(w->first_err, sizeof w->first_err, "%s", what);
    }
}

static void *
run_worker(void *arg)
{
    struct worker *w = arg;
    const struct shared *sh = w->sh;
    char *buf = malloc(RESP_BUF), req[REQ_MAX];
    int fd = bench_connect_local(sh->port);
    uint64_t base = (uint64_t)w->index * 7919 * 131;

    if (buf == NULL || fd < 0) {
        fail(w, "cannot connect");
        free(buf);
        return NULL;
    }
    for (uint64_t i = 0; i < sh->per_thread; i++) {
        size_t n = sh->proto_http ? build_http(sh, base + i, req, sizeof req)
                                  : build_resp(sh, base + i, req, sizeof req);
        uint64_t t0 = plat_mono_ns();
        unsigned status = 0;
        long v = 0;
        int rc;

        if (n == 0 || bench_send_all(fd, req, n, 0) != 0) {
            fail(w, "send failed");
            break;
        }
        rc = sh->proto_http ? bench_read_http(fd, buf, RESP_BUF, &status, NULL)
                            : read_resp(fd, buf, RESP_BUF, &v);
        bench_hist_add(w->h, plat_mono_ns() - t0);
        if (rc != 0) {
            fail(w, "connection closed or malformed reply");
            break;
        }
        if (sh->proto_http && status != sh->expect) {
            char m[64];
            snprintf(m, sizeof m, "HTTP status %u, expected %u", status, sh->expect);
            fail(w, m);
        }
        w->hits += !sh->proto_http && v == 1;
    }
    close(fd);
    free(buf);
    return NULL;
}

int
bench_cmd_client(int argc, char **argv)
{
    const char *proto = bench_arg(argc, argv, "--proto", "http");
    const char *prefix = bench_arg(argc, argv, "--prefix", "client");
    const char *cdf = bench_arg(argc, argv, "--cdf", NULL);
    const char *qf = bench_arg(argc, argv, "--queries", NULL);
    const char *kf = bench_arg(argc, argv, "--keys", NULL);
    uint64_t conns = bench_arg_u64(argc, argv, "--connections", 1);
    uint64_t requests = bench_arg_u64(argc, argv, "--requests", 100000);
    uint64_t port = bench_arg_u64(argc, argv, "--port", 0);
    struct shared sh;
    struct worker *w;
    struct bench_hist *all = malloc(sizeof *all);
    size_t *qoff = NULL;
    uint64_t t0, t1, errors = 0, hits = 0;
    const char *first = "";

    memset(&sh, 0, sizeof sh);
    sh.proto_http = strcmp(proto, "http") == 0;
    sh.path = bench_arg(argc, argv, "--path", "/v1/check");
    sh.service = bench_arg(argc, argv, "--service", "rail.hsr");
    sh.token = bench_arg(argc, argv, "--token", NULL);
    sh.expect = (unsigned)bench_arg_u64(argc, argv, "--expect", 200);
    if (all == NULL || port == 0 || port > 65535 || conns == 0 || conns > CONN_MAX ||
        requests < conns || (sh.proto_http ? qf == NULL : kf == NULL) ||
        (!sh.proto_http && strcmp(proto, "resp") != 0)) {
        bench_die("usage: client --proto http|resp --port P [--connections 1..%d] "
                  "[--requests N] (--queries FILE | --keys qkeys.bin) [--path P] [--service S] "
                  "[--token T] [--prefix NAME] [--cdf FILE]",
                  CONN_MAX);
    }
    sh.port = (uint16_t)port;
    sh.per_thread = requests / conns;
    if (sh.proto_http) {
        if (bench_map_open(&sh.queries, qf) != 0) {
            bench_die("%s: cannot map the file", qf);
        }
        sh.nq = bench_map_count_lines(&sh.queries);
        qoff = malloc(sh.nq * sizeof *qoff);
        if (qoff == NULL) {
            bench_die("out of memory");
        }
        for (size_t i = 0, k = 0; i < sh.queries.len && k < sh.nq; k++) {
            const char *nl = memchr(sh.queries.data + i, '\n', sh.queries.len - i);
            qoff[k] = i;
            i = nl != NULL ? (size_t)(nl - sh.queries.data) + 1 : sh.queries.len;
        }
        sh.qoff = qoff;
    } else if (bench_map_open(&sh.keys, kf) != 0 || sh.keys.len < 16) {
        bench_die("%s: cannot map the file", kf);
    }
    w = calloc(conns, sizeof *w);
    if (w == NULL) {
        bench_die("out of memory");
    }
    t0 = plat_mono_ns();
    for (uint64_t i = 0; i < conns; i++) {
        w[i].sh = &sh;
        w[i].index = (unsigned)i;
        w[i].h = malloc(sizeof *w[i].h);
        if (w[i].h == NULL) {
            bench_die("out of memory");
        }
        bench_hist_init(w[i].h);
        if (pthread_create(&w[i].th, NULL, run_worker, &w[i]) != 0) {
            bench_die("pthread_create failed");
        }
    }
    bench_hist_init(all);
    for (uint64_t i = 0; i < conns; i++) {
        pthread_join(w[i].th, NULL);
        bench_hist_merge(all, w[i].h);
        if (w[i].errors > 0 && errors == 0) {
            first = w[i].first_err;
        }
        errors += w[i].errors;
        hits += w[i].hits;
    }
    t1 = plat_mono_ns();
    bench_hist_print(all, prefix);
    printf("%s_rps=%.0f\n", prefix, (double)all->count * 1e9 / (double)(t1 - t0));
    printf("%s_errors=%" PRIu64 "\n%s_hits=%" PRIu64 "\n", prefix, errors, prefix, hits);
    if (cdf != NULL && bench_hist_write_cdf(all, cdf) != 0) {
        bench_die("%s: cannot write the CDF", cdf);
    }
    if (errors > 0) {
        fprintf(stderr, "posgate-bench client: %" PRIu64 " errors; first: %s\n", errors, first);
    }
    for (uint64_t i = 0; i < conns; i++) {
        free(w[i].h);
    }
    free(w);
    free(qoff);
    free(all);
    bench_map_close(&sh.queries);
    bench_map_close(&sh.keys);
    return errors > 0 ? 1 : 0;
}
