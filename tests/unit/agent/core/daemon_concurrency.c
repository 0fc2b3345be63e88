/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Checks from several threads while a large update installs (issue 4: "none fails, none sees a
 * mixed version"). The fixture (tests/integration/daemon_fixture.sh, real binaries) leaves a
 * kiosk at feed version 1 and a feed at version 2 with POSGATE_CONCURRENCY_COUNT entries
 * (default 1,000,000; 100,000 under AddressSanitizer). Subject X is ALLOW in version 1 and DENY
 * in version 2; subject Y is DENY in both. While update_run installs version 2 from the feed
 * directory, every thread checks X and Y in a loop on one shared handle and asserts: every
 * check succeeds; its feed version is 1 or 2; X's decision is the one of that version; Y is
 * always DENY; checks go on while the update runs; 1.5 s after the commit no check sees version
 * 1 (pooled readers renew within a second). Both versions must have been observed. A thread
 * may see version 2 and then 1 within that second (another pooled reader): counted, printed.
 */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api_internal.h"
#include "carrier.h"
#include "posgate.h"
#include "test.h"
#include "update.h"

#define THREADS 6
#define STATUS_THREADS 2 /* posgate_status_json at once, as posgated's HTTP threads ask it */

struct shared {
    struct posgate *pg;
    char x_id[128], x_svc[64], y_id[128], y_svc[64];
    atomic_int stop, settled;
    atomic_ulong went_back;
    atomic_ulong checks, saw_v1, saw_v2, bad, statuses;
};

static void
fail(struct shared *s, const char *what)
{
    if (atomic_fetch_add(&s->bad, 1) < 10) {
        fprintf(stderr, "concurrency: %s\n", what);
    }
}

static void *
worker(void *arg)
{
    struct shared *s = arg;
    struct posgate_request *rx = NULL, *ry = NULL;
    struct posgate_result *res = NULL;
    int64_t last = 0;
    char msg[512];

    if (posgate_request_new(&rx) != POSGATE_OK || posgate_request_new(&ry) != POSGATE_OK ||
        posgate_result_new(&res) != POSGATE_OK ||
        posgate_request_set_service(rx, s->x_svc) != POSGATE_OK ||
        posgate_request_add_id(rx, s->x_id) != POSGATE_OK ||
        posgate_request_set_service(ry, s->y_svc) != POSGATE_OK ||
        posgate_request_add_id(ry, s->y_id) != POSGATE_OK) {
        fail(s, "request setup failed");
        goto out;
    }
    {
        /* y asks about tomorrow's service: its check reads the window that status_worker
         * sets meanwhile, as posgated's SIGHUP does */
        char at[32];
        time_t t = time(NULL) + 86400;
        struct tm tm;

        strftime(at, sizeof(at), "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&t, &tm));
        if (posgate_request_set_at(ry, at) != POSGATE_OK) {
            fail(s, "request setup failed (at)");
            goto out;
        }
    }
    while (!atomic_load(&s->stop)) {
        for (int which = 0; which < 2; which++) {
            enum posgate_err err = posgate_check(s->pg, which == 0 ? rx : ry, res);
            int64_t fv = res->feed_version;
            enum posgate_decision d = posgate_result_decision(res);
            enum posgate_decision want;

            atomic_fetch_add(&s->checks, 1);
            if (err != POSGATE_OK) {
                snprintf(msg, sizeof(msg), "check failed: %s: %s", posgate_err_name(err),
                         posgate_result_errmsg(res));
                fail(s, msg);
                continue;
            }
            if (fv != 1 && fv != 2) {
                snprintf(msg, sizeof(msg), "feed version %lld, expected 1 or 2", (long long)fv);
                fail(s, msg);
                continue;
            }
            if (fv < last) {
                /* another pooled reader not yet renewed (store.h: within renew_ms) */
                atomic_fetch_add(&s->went_back, 1);
            }
            if (fv == 1 && atomic_load(&s->settled)) {
                fail(s, "version 1 seen more than 1.5 s after version 2 committed");
            }
            last = fv;
            atomic_fetch_add(fv == 1 ? &s->saw_v1 : &s->saw_v2, 1);
            want = which == 1 ? POSGATE_DENY : (fv == 1 ? POSGATE_ALLOW : POSGATE_DENY);
            if (d != want) {
                snprintf(msg, sizeof(msg), "subject %c at version %lld: %s, expected %s",
                         which == 0 ? 'X' : 'Y', (long long)fv, posgate_decision_name(d),
                         posgate_decision_name(want));
                fail(s, msg);
            }
        }
    }
out:
    posgate_request_free(rx);
    posgate_request_free(ry);
    posgate_result_free(res);
    return NULL;
}

/* The status object read again and again from several threads of one handle (its store
 * connection admits one thread at a time: api_internal.h, st_lock), during checks and an update;
 * and the service date's window set again and again (posgated's SIGHUP) while checks read it. */
static void *
status_worker(void *arg)
{
    struct shared *s = arg;
    char msg[512];

    for (unsigned long n = 0; !atomic_load(&s->stop); n++) {
        char *json = NULL;
        enum posgate_err err = posgate_set_check_window(s->pg, 300 + (int64_t)(n % 2),
                                                        400 * 86400 + (int64_t)(n % 2));

        if (err != POSGATE_OK) {
            fail(s, "posgate_set_check_window failed");
        }
        err = posgate_status_json(s->pg, &json);

        if (err != POSGATE_OK || json == NULL || json[0] != '{' ||
            strstr(json, "\"feed_version\"") == NULL) {
            snprintf(msg, sizeof(msg), "status: %s: %.200s", posgate_err_name(err),
                     json != NULL ? json : "(none)");
            fail(s, msg);
        }
        posgate_free(json);
        atomic_fetch_add(&s->statuses, 1);
    }
    return NULL;
}

static int
read_subjects(const char *path, struct shared *s)
{
    FILE *f = fopen(path, "r");
    int n;

    if (f == NULL) {
        return 0;
    }
    n = fscanf(f, "%127s %63s %127s %63s", s->x_id, s->x_svc, s->y_id, s->y_svc);
    fclose(f);
    return n == 4;
}

int
main(void)
{
    static struct shared s;
    const char *bin = getenv("POSGATE_BIN"), *src = getenv("POSGATE_TEST_SRC");
    const char *count = getenv("POSGATE_CONCURRENCY_COUNT");
    char dir[] = "/tmp/posgate-conc-XXXXXX";
    char cmd[2048], path[1024], msg[512];
    struct carrier *meta = NULL, *targets = NULL;
    struct update_options uo;
    struct update_result ur;
    pthread_t th[THREADS], sth[STATUS_THREADS];
    enum posgate_err err;
    unsigned long before, during;

#if defined(__SANITIZE_ADDRESS__)
    const char *dflt = "100000";
#else
    const char *dflt = "1000000";
#endif
    if (bin == NULL || src == NULL) {
        fprintf(stderr, "POSGATE_BIN and POSGATE_TEST_SRC must be set (ctest sets them)\n");
        return 1;
    }
    if (count == NULL || strspn(count, "0123456789") != strlen(count) || count[0] == 0) {
        count = dflt;
    }
    /* the safety cases first */
    CHECK_ERR(posgate_open("/nonexistent/posgate-conc", &s.pg), POSGATE_ERR_NOTFOUND);
    CHECK(s.pg == NULL);

    if (mkdtemp(dir) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    snprintf(cmd, sizeof(cmd), "bash '%s/integration/daemon_fixture.sh' '%s' '%s' '%s'", src, bin,
             dir, count);
    CHECK_INT(system(cmd), 0);
    snprintf(path, sizeof(path), "%s/subjects.txt", dir);
    CHECK(read_subjects(path, &s));
    snprintf(path, sizeof(path), "%s/k", dir);
    CHECK_OK(posgate_open(path, &s.pg));
    if (test_failures != 0 || s.pg == NULL) {
        goto out;
    }
    for (int i = 0; i < THREADS; i++) {
        CHECK_INT(pthread_create(&th[i], NULL, worker, &s), 0);
    }
    for (int i = 0; i < STATUS_THREADS; i++) {
        CHECK_INT(pthread_create(&sth[i], NULL, status_worker, &s), 0);
    }
    snprintf(path, sizeof(path), "%s/feed/metadata", dir);
    CHECK_OK(carrier_dir_new(path, &meta));
    snprintf(path, sizeof(path), "%s/feed/targets", dir);
    CHECK_OK(carrier_dir_new(path, &targets));
    memset(&uo, 0, sizeof(uo));
    memset(&ur, 0, sizeof(ur));
    snprintf(path, sizeof(path), "%s/k", dir);
    uo.data_dir = path;
    uo.metadata = meta;
    uo.targets = targets;
    before = atomic_load(&s.checks);
    err = update_run(&uo, &ur, msg, sizeof(msg));
    during = atomic_load(&s.checks) - before;
    if (err != POSGATE_OK) {
        fprintf(stderr, "update_run: %s: %s\n", posgate_err_name(err), msg);
    }
    CHECK_OK(err);
    CHECK_INT(ur.feed_version, 2);
    printf("concurrency: %lu checks answered while the update ran\n", during);
    CHECK(during > 0); /* checks did not wait for the import */
    CHECK(ur.entries_changed + 1000 >= strtoull(count, NULL, 10));
    /* every pooled reader renews within a second (store.h); then no check may see version 1 */
    {
        struct timespec settle = {1, 500 * 1000 * 1000}, more = {0, 300 * 1000 * 1000};

        nanosleep(&settle, NULL);
        atomic_store(&s.settled, 1);
        nanosleep(&more, NULL);
    }
    atomic_store(&s.stop, 1);
    for (int i = 0; i < THREADS; i++) {
        pthread_join(th[i], NULL);
    }
    for (int i = 0; i < STATUS_THREADS; i++) {
        pthread_join(sth[i], NULL);
    }
    printf("concurrency: %lu status objects read from %d threads\n", atomic_load(&s.statuses),
           STATUS_THREADS);
    CHECK(atomic_load(&s.statuses) > 0);
    printf("concurrency: %lu checks (%lu at version 1, %lu at version 2), %lu bad, %lu saw "
           "an older version than their previous check (pooled readers renewing)\n",
           atomic_load(&s.checks), atomic_load(&s.saw_v1), atomic_load(&s.saw_v2),
           atomic_load(&s.bad), atomic_load(&s.went_back));
    CHECK_INT(atomic_load(&s.bad), 0);
    /* readers renew on any commit of this process (store_reader.c), so no thread goes back */
    CHECK_INT(atomic_load(&s.went_back), 0);
    CHECK(atomic_load(&s.saw_v1) > 0);
    CHECK(atomic_load(&s.saw_v2) > 0);
out:
    carrier_free(meta);
    carrier_free(targets);
    posgate_close(s.pg);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0) {
        fprintf(stderr, "could not remove %s\n", dir);
    }
    return test_summary("daemon_concurrency");
}
