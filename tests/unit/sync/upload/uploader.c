/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The audit uploader's transport (sync/upload/uploader.h): gzip round trip through zlib's inflate, the
 * batch's idempotency key, the classification of every answer the collector documents, option
 * checks, and real POSTs to an in-test HTTP server on 127.0.0.1 that records the request
 * (headers, gzip body) and answers 200, 409 or 429 with Retry-After; a refused connection.
 */
#define _POSIX_C_SOURCE 200809L
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <zlib.h>

#include "test.h"
#include "uploader.h"

static const char batch[] =
    "{\"device_id\":\"00112233445566778899aabbccddeeff\",\"events\":[],"
    "\"head\":{\"hash\":\"00\",\"seq\":0},\"idempotency_key\":\"k-123\",\"signature\":\"ab\","
    "\"v\":1}";

/* The first occurrence of needle in hay, ignoring ASCII case; NULL when none. */
static const char *
ci_find(const char *hay, const char *needle)
{
    size_t n = strlen(needle);

    for (; *hay; hay++) {
        if (strncasecmp(hay, needle, n) == 0) {
            return hay;
        }
    }
    return NULL;
}

static size_t
gunzip(const uint8_t *in, size_t len, char *out, size_t cap)
{
    z_stream z;
    size_t n;

    memset(&z, 0, sizeof(z));
    if (inflateInit2(&z, 15 + 16) != Z_OK) {
        return 0;
    }
    z.next_in = (Bytef *)(uintptr_t)in;
    z.avail_in = (uInt)len;
    z.next_out = (Bytef *)out;
    z.avail_out = (uInt)(cap - 1);
    if (inflate(&z, Z_FINISH) != Z_STREAM_END) {
        inflateEnd(&z);
        return 0;
    }
    n = (size_t)z.total_out;
    out[n] = 0;
    inflateEnd(&z);
    return n;
}

static void
test_gzip_and_key(void)
{
    struct buf gz = BUF_INIT(1u << 20);
    char back[4096], key[200];

    CHECK_OK(uploader_gzip(batch, strlen(batch), &gz));
    CHECK(gz.len > 18 && gz.data[0] == 0x1f && gz.data[1] == 0x8b);
    CHECK_INT(gunzip(gz.data, gz.len, back, sizeof(back)), strlen(batch));
    CHECK_STR(back, batch);
    buf_free(&gz);

    CHECK_OK(uploader_batch_key(batch, strlen(batch), key, sizeof(key)));
    CHECK_STR(key, "k-123");
    CHECK_ERR(uploader_batch_key("{\"v\":1}", 7, key, sizeof(key)), POSGATE_ERR_INVALID);
    CHECK_ERR(uploader_batch_key("{\"idempotency_key\":\"a b\"}", 25, key, sizeof(key)),
              POSGATE_ERR_INVALID);
    CHECK_ERR(uploader_batch_key("{\"idempotency_key\":7}", 21, key, sizeof(key)),
              POSGATE_ERR_INVALID);
    CHECK_ERR(uploader_batch_key("{\"idem", 6, key, sizeof(key)), POSGATE_ERR_PARSE);
}

static void
test_classify(void)
{
    struct uploader_result r;
    const char *ok = "{\"acked_seq\":41,\"held_seq\":44,\"stored\":3}";
    const char *brk = "{\"acked_seq\":10,\"broken_at\":13,\"error\":\"chain broken at seq 13\"}";

    memset(&r, 0, sizeof(r));
    uploader_classify(200, ok, strlen(ok), NULL, 0, &r);
    CHECK_INT(r.kind, UPLOAD_OK);
    CHECK_INT(r.acked_seq, 41);
    CHECK_INT(r.held_seq, 44);
    CHECK_STR(r.error, "");
    uploader_classify(200, "{\"stored\":3}", 12, NULL, 0, &r);
    CHECK_INT(r.kind, UPLOAD_PROTOCOL);
    CHECK_CONTAINS(r.error, "acked_seq");
    uploader_classify(200, "{\"acked_seq\":-1}", 16, NULL, 0, &r);
    CHECK_INT(r.kind, UPLOAD_PROTOCOL);
    uploader_classify(200, "not json", 8, NULL, 0, &r);
    CHECK_INT(r.kind, UPLOAD_PROTOCOL);
    uploader_classify(409, brk, strlen(brk), NULL, 0, &r);
    CHECK_INT(r.kind, UPLOAD_CHAIN_BREAK);
    CHECK_INT(r.broken_at, 13);
    CHECK_INT(r.acked_seq, 10);
    CHECK_CONTAINS(r.error, "chain broken at seq 13");
    /* events the signed head does not cover: the kiosk's own trail, stop as for a break */
    {
        static const char nc[] = "{\"acked_seq\":4,\"broken_at\":6,\"error\":\"not covered\"}";

        uploader_classify(422, nc, strlen(nc), NULL, 0, &r);
    }
    CHECK_INT(r.kind, UPLOAD_CHAIN_BREAK);
    CHECK_INT(r.broken_at, 6);
    CHECK_CONTAINS(r.error, "HTTP 422");
    uploader_classify(429, "{\"error\":\"busy\"}", 16, "7", 0, &r);
    CHECK_INT(r.kind, UPLOAD_THROTTLED);
    CHECK_INT(r.retry_after_s, 7);
    /* an HTTP-date 30 s after now */
    uploader_classify(503, "", 0, "Thu, 01 Jan 1970 00:00:40 GMT", 10, &r);
    CHECK_INT(r.kind, UPLOAD_THROTTLED);
    CHECK_INT(r.retry_after_s, 30);
    uploader_classify(503, "", 0, "soon", 10, &r);
    CHECK_INT(r.kind, UPLOAD_THROTTLED);
    CHECK_INT(r.retry_after_s, 0);
    uploader_classify(500, "{\"error\":\"db\"}", 14, NULL, 0, &r);
    CHECK_INT(r.kind, UPLOAD_SERVER);
    CHECK_CONTAINS(r.error, "db");
    for (long s = 400; s <= 415; s++) {
        if (s == 409) {
            continue;
        }
        uploader_classify(s, "{\"error\":\"no\"}", 14, NULL, 0, &r);
        CHECK_INT(r.kind, UPLOAD_REFUSED);
        CHECK_INT(r.http_status, s);
    }
    uploader_classify(302, "", 0, NULL, 0, &r);
    CHECK_INT(r.kind, UPLOAD_PROTOCOL);
    CHECK_STR(uploader_kind_name(UPLOAD_CHAIN_BREAK), "chain_break");
    CHECK_STR(uploader_kind_name(UPLOAD_THROTTLED), "throttled");
}

static void
test_options(void)
{
    struct uploader_options o;
    struct uploader *u = NULL;
    char msg[256];

    memset(&o, 0, sizeof(o));
    o.url = "ftp://hub/v1/audit";
    CHECK_ERR(uploader_new(&o, &u, msg, sizeof(msg)), POSGATE_ERR_INVALID);
    CHECK_CONTAINS(msg, "audit_url");
    o.url = "https:///v1/audit";
    CHECK_ERR(uploader_new(&o, &u, msg, sizeof(msg)), POSGATE_ERR_INVALID);
    o.url = "https://hub/v1/audit";
    o.client_cert = "/etc/c.pem";
    CHECK_ERR(uploader_new(&o, &u, msg, sizeof(msg)), POSGATE_ERR_INVALID);
    CHECK_CONTAINS(msg, "client_key");
    o.client_cert = NULL;
    CHECK_OK(uploader_new(&o, &u, msg, sizeof(msg)));
    CHECK(u != NULL);
    uploader_free(u);
    uploader_free(NULL);
}

/* ---- a one-request HTTP server on 127.0.0.1 ---- */

struct server {
    int fd;
    uint16_t port;
    const char *answer; /* the whole response */
    char req[65536];    /* the request as received */
    size_t req_len;
};

static void *
serve_one(void *arg)
{
    struct server *s = arg;
    int c = accept(s->fd, NULL, NULL);
    size_t want = 0;

    if (c < 0) {
        return NULL;
    }
    for (;;) {
        ssize_t n = read(c, s->req + s->req_len, sizeof(s->req) - 1 - s->req_len);
        char *end;

        if (n <= 0) {
            break;
        }
        s->req_len += (size_t)n;
        s->req[s->req_len] = 0;
        end = strstr(s->req, "\r\n\r\n");
        if (end != NULL && want == 0) {
            const char *cl = ci_find(s->req, "Content-Length:");
            size_t v = 0;

            for (cl = cl != NULL ? cl + 15 : "x"; *cl == ' '; cl++) {
            }
            for (; *cl >= '0' && *cl <= '9'; cl++) {
                v = v * 10 + (size_t)(*cl - '0');
            }
            want = (size_t)(end + 4 - s->req) + v;
        }
        if (want != 0 && s->req_len >= want) {
            break;
        }
    }
    if (write(c, s->answer, strlen(s->answer)) < 0) {
        fprintf(stderr, "serve_one: write failed\n");
    }
    close(c);
    return NULL;
}

static int
server_listen(struct server *s)
{
    struct sockaddr_in a;
    socklen_t al = sizeof(a);

    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    s->fd = socket(AF_INET, SOCK_STREAM, 0);
    if (s->fd < 0 || bind(s->fd, (struct sockaddr *)&a, sizeof(a)) != 0 || listen(s->fd, 4) != 0 ||
        getsockname(s->fd, (struct sockaddr *)&a, &al) != 0) {
        return -1;
    }
    s->port = ntohs(a.sin_port);
    return 0;
}

/* POSTs batch to a server answering `answer`; the request is left in *s. */
static void
post_to(struct server *s, const char *answer, struct uploader_result *r)
{
    struct uploader_options o;
    struct uploader *u = NULL;
    char url[64], msg[256];
    pthread_t t;

    memset(s, 0, sizeof(*s));
    s->answer = answer;
    CHECK_INT(server_listen(s), 0);
    snprintf(url, sizeof(url), "http://127.0.0.1:%u/v1/audit", (unsigned)s->port);
    memset(&o, 0, sizeof(o));
    o.url = url;
    o.timeout_s = 10;
    CHECK_OK(uploader_new(&o, &u, msg, sizeof(msg)));
    CHECK_INT(pthread_create(&t, NULL, serve_one, s), 0);
    CHECK_OK(uploader_post(u, batch, strlen(batch), r));
    pthread_join(t, NULL);
    close(s->fd);
    uploader_free(u);
}

static void
test_post(void)
{
    static struct server s;
    struct uploader_result r;
    char *body, back[4096];

    post_to(&s,
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 30\r\n"
            "Connection: close\r\n\r\n{\"acked_seq\":5,\"held_seq\":5}  ",
            &r);
    CHECK_INT(r.kind, UPLOAD_OK);
    CHECK_INT(r.http_status, 200);
    CHECK_INT(r.acked_seq, 5);
    CHECK(strncmp(s.req, "POST /v1/audit HTTP/1.1\r\n", 25) == 0);
    CHECK(ci_find(s.req, "\r\nIdempotency-Key: k-123\r\n") != NULL);
    CHECK(ci_find(s.req, "\r\nContent-Encoding: gzip\r\n") != NULL);
    CHECK(ci_find(s.req, "\r\nContent-Type: application/json\r\n") != NULL);
    body = strstr(s.req, "\r\n\r\n");
    CHECK(body != NULL);
    if (body != NULL) {
        body += 4;
        CHECK_INT(r.sent_bytes, s.req_len - (size_t)(body - s.req));
        CHECK_INT(gunzip((const uint8_t *)body, r.sent_bytes, back, sizeof(back)), strlen(batch));
        CHECK_STR(back, batch);
    }

    post_to(&s,
            "HTTP/1.1 429 Too Many Requests\r\nRetry-After: 3\r\nContent-Length: 16\r\n"
            "Connection: close\r\n\r\n{\"error\":\"busy\"}",
            &r);
    CHECK_INT(r.kind, UPLOAD_THROTTLED);
    CHECK_INT(r.retry_after_s, 3);

    post_to(&s,
            "HTTP/1.1 409 Conflict\r\nContent-Length: 48\r\nConnection: close\r\n\r\n"
            "{\"acked_seq\":2,\"broken_at\":4,\"error\":\"chain x!\"}",
            &r);
    CHECK_INT(r.kind, UPLOAD_CHAIN_BREAK);
    CHECK_INT(r.broken_at, 4);

    /* a server that closes without answering, then nothing listening at all */
    post_to(&s, "", &r);
    CHECK_INT(r.kind, UPLOAD_NETWORK);
    {
        struct uploader_options o;
        struct uploader *u = NULL;
        char url[64], msg[256];

        memset(&s, 0, sizeof(s));
        CHECK_INT(server_listen(&s), 0);
        close(s.fd); /* the port is free again: connection refused */
        snprintf(url, sizeof(url), "http://127.0.0.1:%u/v1/audit", (unsigned)s.port);
        memset(&o, 0, sizeof(o));
        o.url = url;
        CHECK_OK(uploader_new(&o, &u, msg, sizeof(msg)));
        CHECK_OK(uploader_post(u, batch, strlen(batch), &r));
        CHECK_INT(r.kind, UPLOAD_NETWORK);
        CHECK(r.error[0] != 0);
        CHECK_ERR(uploader_post(u, "{\"v\":1}", 7, &r), POSGATE_ERR_INVALID);
        uploader_free(u);
    }
}

int
main(void)
{
    test_gzip_and_key();
    test_classify();
    test_options();
    test_post();
    return test_summary("uploader");
}
