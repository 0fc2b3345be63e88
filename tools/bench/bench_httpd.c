/* SPDX-License-Identifier: Apache-2.0 */
/*
 * "httpd" of posgate-bench: the HTTP floor, a libmicrohttpd server on 127.0.0.1 that reads the
 * request body and answers every request with one fixed JSON body of the size of a check
 * answer. It runs MHD the way posgated does (internal polling thread, a thread pool of
 * --threads, default posgated's http_threads default, the same connection limits), so the
 * difference between the two is the
 * work posgated does per request. Usage: httpd --port P [--threads N]; prints "listening" when
 * ready and runs until SIGTERM or SIGINT.
 */
#define _POSIX_C_SOURCE 200809L
#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>

#include "httpd.h"
#include <string.h>

#include "bench.h"

static const char answer[] =
    "{\"decision\":\"allow\",\"decision_id\":\"00000000000000000000000000000000\","
    "\"service\":\"rail.hsr\",\"reasons\":[],\"feed_version\":2,\"data_age_s\":1,"
    "\"notice\":\"No restriction applies to this subject for rail.hsr.\"}";

static int marker;

static enum MHD_Result
on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
           const char *version, const char *upload, size_t *upload_size, void **con_cls)
{
    struct MHD_Response *r = cls;

    (void)url;
    (void)method;
    (void)version;
    (void)upload;
    if (*con_cls == NULL) {
        *con_cls = &marker;
        return MHD_YES;
    }
    if (*upload_size != 0) {
        *upload_size = 0; /* the body is read and ignored */
        return MHD_YES;
    }
    return MHD_queue_response(c, MHD_HTTP_OK, r);
}

int
bench_cmd_httpd(int argc, char **argv)
{
    uint64_t port = bench_arg_u64(argc, argv, "--port", 0);
    uint64_t threads = bench_arg_u64(argc, argv, "--threads", HTTPD_THREADS_DEFAULT);
    struct MHD_Response *r;
    struct MHD_Daemon *d;
    struct sockaddr_in sa;
    sigset_t set;
    int sig = 0;

    if (port == 0 || port > 65535 || threads == 0 || threads > 64) {
        bench_die("usage: httpd --port P [--threads 1..64]");
    }
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    r = MHD_create_response_from_buffer(sizeof answer - 1, (void *)(uintptr_t)answer,
                                        MHD_RESPMEM_PERSISTENT);
    if (r == NULL || MHD_add_response_header(r, "Content-Type", "application/json") != MHD_YES) {
        bench_die("cannot create the response");
    }
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    d = MHD_start_daemon(
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ITC | MHD_USE_AUTO | MHD_USE_ERROR_LOG,
        (uint16_t)port, NULL, NULL, on_request, r, MHD_OPTION_SOCK_ADDR, &sa,
        MHD_OPTION_THREAD_POOL_SIZE, (unsigned)threads, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)30,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned)256, MHD_OPTION_END);
    if (d == NULL) {
        bench_die("cannot listen on 127.0.0.1:%u", (unsigned)port);
    }
    printf("listening\n");
    fflush(stdout);
    sigwait(&set, &sig);
    MHD_stop_daemon(d);
    MHD_destroy_response(r);
    return 0;
}
