/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The audit queue's own share of deny32 (bench_deny.c):
 *
 *   audit32  --threads T (default 32) threads record DENY events (a simulated kiosk's,
 *            bench_fleet_event) into one fresh audit queue in DIR through audit_record, each
 *            waiting until its event is durable, as a DENY's check does, until --events events
 *            in all (default 12800). No list, no check: what is left of deny32 once the check's
 *            work is taken away, beside the group-commit floor. Prints audit32_per_s (events a
 *            second over the whole run) and audit32_per_commit.
 *            --dir DIR [--threads T] [--events N]
 */
#define _POSIX_C_SOURCE 200809L
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "audit.h"
#include "bench.h"
#include "bench_fleet.h"
#include "device_key.h"
#include "plat_clock.h"

#define THREADS_MAX 256

struct audit32_worker {
    struct audit_queue *q;
    unsigned long index, events;
    enum posgate_err err;
};

static void *
audit32_main(void *arg)
{
    struct audit32_worker *w = arg;

    for (unsigned long i = 0; i < w->events && w->err == POSGATE_OK; i++) {
        struct audit_event e;

        bench_fleet_event(w->index, i, &e);
        e.decision = AUDIT_DENY;
        e.n_reasons = 1;
        snprintf(e.reasons[0].kind, sizeof(e.reasons[0].kind), "%s", "match");
        snprintf(e.reasons[0].effect, sizeof(e.reasons[0].effect), "%s", "deny");
        snprintf(e.reasons[0].list, sizeof(e.reasons[0].list), "%s", "rail.hsr.banned");
        snprintf(e.reasons[0].listing_id, sizeof(e.reasons[0].listing_id), "L-%06lu", i);
        snprintf(e.reasons[0].reason, sizeof(e.reasons[0].reason), "%s", "court_order");
        w->err = audit_record(w->q, &e, NULL);
    }
    return NULL;
}

static void
remove_files(const char *dir)
{
    static const char *const names[] = {"a32.key", "a32.pub", "a32.db", "a32.db-wal",
                                        "a32.db-shm", "a32.db.reserve"};
    char p[4200];

    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        snprintf(p, sizeof p, "%s/%s", dir, names[i]);
        unlink(p);
    }
}

int
bench_cmd_audit32(int argc, char **argv)
{
    const char *dir = bench_arg(argc, argv, "--dir", NULL);
    uint64_t threads = bench_arg_u64(argc, argv, "--threads", 32);
    uint64_t events = bench_arg_u64(argc, argv, "--events", 12800);
    char kp[4200], pp[4200], qp[4200], em[512];
    struct device_key *key = NULL;
    struct audit_queue *q = NULL;
    struct audit_options o;
    struct audit_stats st;
    pthread_t th[THREADS_MAX];
    struct audit32_worker w[THREADS_MAX];
    uint64_t t0, t1, per = events / (threads > 0 ? threads : 1);

    if (dir == NULL || threads == 0 || threads > THREADS_MAX || events < threads) {
        bench_die("usage: audit32 --dir DIR [--threads 1..%d] [--events N >= threads]",
                  THREADS_MAX);
    }
    remove_files(dir);
    snprintf(kp, sizeof kp, "%s/a32.key", dir);
    snprintf(pp, sizeof pp, "%s/a32.pub", dir);
    snprintf(qp, sizeof qp, "%s/a32.db", dir);
    audit_options_default(&o);
    o.durability = AUDIT_BATCHED; /* as deny32: a DENY is durable before audit_record returns */
    if (device_key_create(kp, pp, em, sizeof em) != POSGATE_OK ||
        device_key_load(kp, pp, &key, em, sizeof em) != POSGATE_OK ||
        audit_open(qp, key, &o, 0, &q, em, sizeof em) != POSGATE_OK) {
        bench_die("audit32: %s", em);
    }
    t0 = plat_mono_ns();
    for (uint64_t i = 0; i < threads; i++) {
        w[i] = (struct audit32_worker){q, (unsigned long)i, (unsigned long)per, POSGATE_OK};
        if (pthread_create(&th[i], NULL, audit32_main, &w[i]) != 0) {
            bench_die("cannot start a recording thread");
        }
    }
    for (uint64_t i = 0; i < threads; i++) {
        pthread_join(th[i], NULL);
    }
    t1 = plat_mono_ns();
    for (uint64_t i = 0; i < threads; i++) {
        if (w[i].err != POSGATE_OK) {
            bench_die("audit32: thread %" PRIu64 ": audit_record: %s", i,
                      posgate_strerror(w[i].err));
        }
    }
    if (audit_stats(q, &st) != POSGATE_OK || st.commits == 0) {
        bench_die("audit32: no audit statistics");
    }
    printf("audit32_threads=%" PRIu64 "\naudit32_events=%" PRIu64 "\n", threads, per * threads);
    printf("audit32_per_s=%.0f\n", (double)(per * threads) * 1e9 / (double)(t1 - t0));
    printf("audit32_per_commit=%.1f\n", (double)(per * threads) / (double)st.commits);
    audit_close(q);
    device_key_free(key);
    remove_files(dir);
    return 0;
}
