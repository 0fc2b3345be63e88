/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The durable DENY driver of posgate-bench, held against the group-commit floor
 * (bench_sqlite.c "group"):
 *
 *   deny32  --threads T (default 32) threads share one posgate_open handle, each with its own
 *           request and result, and check listed identifiers of --queries (every answer a
 *           DENY, whose audit event is durable before posgate_check returns) until --checks
 *           answers in all; thread t takes lines t, t + T, t + 2T ... of the file, wrapping
 *           around. Prints deny32_per_s (answers a second over the whole run) and the latency
 *           of each answer; fails when any answer is not a DENY with an audit sequence number.
 */
#define _POSIX_C_SOURCE 200809L
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "posgate.h"

#define THREADS_MAX 256

struct deny_run {
    struct posgate *pg;
    const char *service;
    char **ids;
    size_t n_ids;
    uint64_t per_thread;
    uint64_t threads;
    pthread_mutex_t mu; /* hist, bad, first_err */
    struct bench_hist *hist;
    uint64_t bad;
    char first_err[512];
};

struct deny_worker {
    struct deny_run *run;
    uint64_t index;
    struct bench_hist *h; /* this thread's latencies, merged at the end */
};

static void
note_bad(struct deny_run *r, const char *id, const char *why)
{
    pthread_mutex_lock(&r->mu);
    if (r->bad++ == 0) {
        snprintf(r->first_err, sizeof r->first_err, "%.200s: %.300s", id, why);
    }
    pthread_mutex_unlock(&r->mu);
}

static void *
deny_worker_main(void *arg)
{
    struct deny_worker *w = arg;
    struct deny_run *r = w->run;
    struct posgate_request *rq = NULL;
    struct posgate_result *res = NULL;

    if (posgate_request_new(&rq) != POSGATE_OK || posgate_result_new(&res) != POSGATE_OK) {
        note_bad(r, "-", "out of memory");
        goto out;
    }
    for (uint64_t i = 0; i < r->per_thread; i++) {
        const char *id = r->ids[(w->index + i * r->threads) % r->n_ids];
        uint64_t t0 = plat_mono_ns();
        enum posgate_err e;

        posgate_request_reset(rq);
        e = posgate_request_set_service(rq, r->service);
        if (e == POSGATE_OK) {
            e = posgate_request_add_id(rq, id);
        }
        if (e != POSGATE_OK) {
            note_bad(r, id, posgate_request_errmsg(rq));
            continue;
        }
        e = posgate_check(r->pg, rq, res);
        bench_hist_add(w->h, plat_mono_ns() - t0);
        if (e != POSGATE_OK) {
            note_bad(r, id, posgate_result_errmsg(res));
        } else if (posgate_result_decision(res) != POSGATE_DENY ||
                   posgate_result_audit_seq(res) == 0) {
            note_bad(r, id, "not a DENY with a durable audit event");
        }
    }
out:
    posgate_result_free(res);
    posgate_request_free(rq);
    return NULL;
}

/* Reads the identifiers of path, one a line, into *ids (the caller frees each and the array). */
static size_t
read_ids(const char *path, char ***ids)
{
    struct bench_map map;
    char line[BENCH_LINE_MAX];
    size_t n = 0, cap;
    long len;

    if (bench_map_open(&map, path) != 0) {
        bench_die("%s: cannot map the file", path);
    }
    cap = bench_map_count_lines(&map) + 1;
    *ids = calloc(cap, sizeof **ids);
    if (*ids == NULL) {
        bench_die("out of memory");
    }
    while (n < cap && (len = bench_map_line(&map, line, sizeof line)) >= 0) {
        if (len == 0) {
            continue;
        }
        (*ids)[n] = strdup(line);
        if ((*ids)[n] == NULL) {
            bench_die("out of memory");
        }
        n++;
    }
    bench_map_close(&map);
    return n;
}

int
bench_cmd_deny32(int argc, char **argv)
{
    const char *dir = bench_arg(argc, argv, "--data-dir", NULL);
    const char *qf = bench_arg(argc, argv, "--queries", NULL);
    uint64_t threads = bench_arg_u64(argc, argv, "--threads", 32);
    uint64_t checks = bench_arg_u64(argc, argv, "--checks", 3200);
    pthread_t th[THREADS_MAX];
    struct deny_worker w[THREADS_MAX];
    struct deny_run r;
    uint64_t t0, t1;

    memset(&r, 0, sizeof r);
    r.service = bench_arg(argc, argv, "--service", "rail.hsr");
    if (dir == NULL || qf == NULL || threads == 0 || threads > THREADS_MAX || checks < threads) {
        bench_die("usage: deny32 --data-dir DIR --queries FILE [--service S] [--threads 1..%d] "
                  "[--checks N >= threads]",
                  THREADS_MAX);
    }
    r.n_ids = read_ids(qf, &r.ids);
    if (r.n_ids == 0) {
        bench_die("%s: no identifiers", qf);
    }
    r.threads = threads;
    r.per_thread = checks / threads;
    r.hist = malloc(sizeof *r.hist);
    if (r.hist == NULL) {
        bench_die("out of memory");
    }
    bench_hist_init(r.hist);
    pthread_mutex_init(&r.mu, NULL);
    if (posgate_open(dir, &r.pg) != POSGATE_OK) {
        bench_die("posgate_open %s: %s", dir, posgate_open_errmsg());
    }
    /* ALLOW events batched, as the other figures; a DENY is committed before its answer anyway */
    if (posgate_set_audit_durability(r.pg, "batched") != POSGATE_OK) {
        bench_die("cannot set the audit durability");
    }
    for (uint64_t i = 0; i < threads; i++) {
        w[i].run = &r;
        w[i].index = i;
        w[i].h = malloc(sizeof *w[i].h);
        if (w[i].h == NULL) {
            bench_die("out of memory");
        }
        bench_hist_init(w[i].h);
    }
    t0 = plat_mono_ns();
    for (uint64_t i = 0; i < threads; i++) {
        if (pthread_create(&th[i], NULL, deny_worker_main, &w[i]) != 0) {
            bench_die("cannot start a checking thread");
        }
    }
    for (uint64_t i = 0; i < threads; i++) {
        pthread_join(th[i], NULL);
    }
    t1 = plat_mono_ns();
    for (uint64_t i = 0; i < threads; i++) {
        bench_hist_merge(r.hist, w[i].h);
        free(w[i].h);
    }
    printf("deny32_threads=%" PRIu64 "\ndeny32_checks=%" PRIu64 "\n", threads,
           r.per_thread * threads);
    printf("deny32_per_s=%.0f\n", (double)(r.per_thread * threads) * 1e9 / (double)(t1 - t0));
    bench_hist_print(r.hist, "deny32");
    printf("deny32_errors=%" PRIu64 "\n", r.bad);
    posgate_close(r.pg);
    for (size_t i = 0; i < r.n_ids; i++) {
        free(r.ids[i]);
    }
    free(r.ids);
    free(r.hist);
    pthread_mutex_destroy(&r.mu);
    if (r.bad > 0) {
        fprintf(stderr, "posgate-bench: %" PRIu64 " DENY checks failed; first: %s\n", r.bad,
                r.first_err);
        return 1;
    }
    return 0;
}
