/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The audit queue (agent/audit/audit.c, audit_event.c, device_key.c) through the API that owns it
 * (here, beside the core's tests, because it reads the queue of a posgate handle), and its wiring
 * into posgate_check,
 * against real SQLite files and a real kiosk data dir (tests/integration/audit_fixture.sh):
 * safety cases; strict durability (a DENY's event readable from a second connection as soon as
 * posgate_check returns); contiguous seqs and an intact chain with 8 threads checking
 * concurrently in strict and in batched mode, every decision id present exactly once; the
 * batched group commit bounds (few commits, every event visible within batch_ms plus slack);
 * supervisor overrides allowed and refused, both audited; a batch whose signature verifies
 * with the device's public key and whose events re-hash to the signed head (and a forged
 * signature that does not); ack + retention pruning with the chain still verifying from its
 * anchor; a full queue keeping every DENY and REFER and accounting for every folded ALLOW;
 * tamper detection (an edited, a deleted and a re-hashed event break audit_verify); callers
 * that enqueue without the queue's lock keeping each thread's order in the chain; a writer that
 * keeps the chain's head between commits noticing another connection's events and prunes; the
 * bytes of a queue killed between commits counted right when it is opened again; 16 KiB pages
 * in a new file with its WAL checkpointed at 4 MB, and a file of 4 KiB pages kept as it is;
 * events of every size, up to the largest, stored as recorded through the ring, and one whose
 * slot finds no memory refused with NOMEM.
 */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <sqlite3.h>

#include "api_internal.h"
#include "audit.h"
#include "crypto.h"
#include "device_key.h"
#include "json_canon.h"
#include "plat_clock.h"
#include "plat_mem.h"
#include "posgate.h"
#include "test.h"
#include "test_audit.h"

#define THREADS       8
#define GROUP_THREADS 32

static char dir[] = "/tmp/posgate-audit-XXXXXX";
static char kdir[1100];
static char ovr[64], hard[64], clean[64];

static int
read_subjects(const char *path)
{
    FILE *f = fopen(path, "r");
    char line[256];

    if (f == NULL) {
        return 0;
    }
    while (fgets(line, sizeof(line), f) != NULL) {
        line[strcspn(line, "\n")] = 0;
        if (strncmp(line, "OVR=", 4) == 0) {
            snprintf(ovr, sizeof(ovr), "%.60s", line + 4);
        } else if (strncmp(line, "HARD=", 5) == 0) {
            snprintf(hard, sizeof(hard), "%.60s", line + 5);
        } else if (strncmp(line, "CLEAN=", 6) == 0) {
            snprintf(clean, sizeof(clean), "%.60s", line + 6);
        }
    }
    fclose(f);
    return ovr[0] && hard[0] && clean[0];
}

/* ---- collecting events ---- */

struct seen {
    size_t n, cap;
    struct audit_event_info *ev;
    char (*ids)[33];
};

static int
collect(void *ctx, uint64_t seq, const char *body, size_t len, const uint8_t hash[AUDIT_HASH_LEN])
{
    struct seen *s = ctx;
    char msg[256];
    cJSON *root = NULL;

    (void)hash;
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 256;
        s->ev = realloc(s->ev, s->cap * sizeof(*s->ev));
        s->ids = realloc(s->ids, s->cap * sizeof(*s->ids));
    }
    CHECK_OK(audit_event_inspect(body, len, &s->ev[s->n], msg, sizeof(msg)));
    CHECK_INT(s->ev[s->n].seq, seq);
    s->ids[s->n][0] = 0;
    if (json_parse_bounded(body, len, AUDIT_EVENT_MAX, &root, msg, sizeof(msg)) == POSGATE_OK) {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(root, "id");

        if (cJSON_IsString(id)) {
            snprintf(s->ids[s->n], sizeof(s->ids[0]), "%s", id->valuestring);
        }
        cJSON_Delete(root);
    }
    s->n++;
    return 0;
}

static void
seen_free(struct seen *s)
{
    free(s->ev);
    free(s->ids);
    memset(s, 0, sizeof(*s));
}

static int
cmp_id(const void *a, const void *b)
{
    return strcmp((const char *)a, (const char *)b);
}

/* A second, read-only connection: what a crash would leave on disk. */
static void
read_all(const char *path, uint64_t since, struct seen *s)
{
    struct audit_queue *ro = NULL;
    char msg[256];

    CHECK_OK(audit_open(path, NULL, NULL, AUDIT_READONLY, &ro, msg, sizeof(msg)));
    if (ro != NULL) {
        CHECK_OK(audit_each(ro, since, collect, s));
    }
    audit_close(ro);
}

/* ---- concurrent checks through the public API ---- */

struct worker_arg {
    struct posgate *pg;
    int rounds;
    atomic_int bad;
    char (*ids)[33]; /* THREADS * rounds * 2 decision ids */
};

static struct worker_arg wa;
static atomic_int next_slot;

static void *
worker(void *arg)
{
    struct worker_arg *w = arg;
    struct posgate_request *rd = NULL, *ra = NULL;
    struct posgate_result *res = NULL;

    if (posgate_request_new(&rd) != POSGATE_OK || posgate_request_new(&ra) != POSGATE_OK ||
        posgate_result_new(&res) != POSGATE_OK ||
        posgate_request_set_service(rd, "air") != POSGATE_OK ||
        posgate_request_add_id(rd, ovr) != POSGATE_OK ||
        posgate_request_set_service(ra, "air") != POSGATE_OK ||
        posgate_request_add_id(ra, clean) != POSGATE_OK) {
        atomic_fetch_add(&w->bad, 1);
        goto out;
    }
    for (int i = 0; i < w->rounds; i++) {
        for (int k = 0; k < 2; k++) {
            enum posgate_err err = posgate_check(w->pg, k == 0 ? rd : ra, res);
            int slot = atomic_fetch_add(&next_slot, 1);

            if (err != POSGATE_OK ||
                posgate_result_decision(res) != (k == 0 ? POSGATE_DENY : POSGATE_ALLOW) ||
                (k == 0 && posgate_result_audit_seq(res) == 0)) {
                atomic_fetch_add(&w->bad, 1);
            }
            snprintf(w->ids[slot], 33, "%s", posgate_result_decision_id(res));
        }
    }
out:
    posgate_request_free(rd);
    posgate_request_free(ra);
    posgate_result_free(res);
    return NULL;
}

static void
concurrent(struct posgate *pg, const char *mode, int rounds, const char *audit_path)
{
    pthread_t th[THREADS];
    struct audit_stats st0, st1;
    struct seen s = {0};
    size_t total = (size_t)THREADS * (size_t)rounds * 2;

    CHECK_OK(posgate_set_audit_durability(pg, mode));
    CHECK_OK(audit_stats(pg->audit, &st0));
    wa.pg = pg;
    wa.rounds = rounds;
    atomic_store(&wa.bad, 0);
    atomic_store(&next_slot, 0);
    wa.ids = calloc(total, sizeof(*wa.ids));
    for (int i = 0; i < THREADS; i++) {
        CHECK_INT(pthread_create(&th[i], NULL, worker, &wa), 0);
    }
    for (int i = 0; i < THREADS; i++) {
        pthread_join(th[i], NULL);
    }
    CHECK_INT(atomic_load(&wa.bad), 0);
    CHECK_OK(audit_flush(pg->audit));
    CHECK_OK(audit_stats(pg->audit, &st1));
    CHECK_INT(st1.head_seq - st0.head_seq, total);
    printf("audit: %s: %zu checks from %d threads in %llu commits\n", mode, total, THREADS,
           (unsigned long long)(st1.commits - st0.commits));
    test_audit_verify_ok(pg->audit, mode);
    read_all(audit_path, st0.head_seq, &s);
    CHECK_INT(s.n, total);
    if (s.n == total) {
        /* contiguous: each seq once, in order */
        for (size_t i = 0; i < s.n; i++) {
            CHECK_INT(s.ev[i].seq, st0.head_seq + 1 + i);
        }
        /* every decision id answered is in the trail exactly once */
        qsort(s.ids, s.n, sizeof(s.ids[0]), cmp_id);
        qsort(wa.ids, total, sizeof(wa.ids[0]), cmp_id);
        for (size_t i = 0; i < total; i++) {
            if (strcmp(s.ids[i], wa.ids[i]) != 0) {
                CHECK_STR(s.ids[i], wa.ids[i]);
                break;
            }
        }
    }
    seen_free(&s);
    free(wa.ids);
}

/* ---- durable DENYs from 32 callers at once: one commit for many, none acknowledged early ---- */

static int sql(const char *path, const char *stmt);

struct deny_call {
    enum posgate_err err;
    int decision;
    uint64_t seq;
    char id[33];
};

struct deny_group {
    struct posgate *pg;
    int rounds;
    pthread_barrier_t start;
    struct deny_call *calls; /* GROUP_THREADS * rounds */
};

struct deny_thread {
    struct deny_group *g;
    int index;
    const char *operator_id; /* NULL: none */
};

static void *
deny_thread_main(void *arg)
{
    struct deny_thread *t = arg;
    struct posgate_request *rq = NULL;
    struct posgate_result *res = NULL;
    int ok =
        posgate_request_new(&rq) == POSGATE_OK && posgate_result_new(&res) == POSGATE_OK &&
        posgate_request_set_service(rq, "air") == POSGATE_OK &&
        posgate_request_add_id(rq, hard) == POSGATE_OK &&
        (t->operator_id == NULL || posgate_request_set_operator(rq, t->operator_id) == POSGATE_OK);

    if (t->g->rounds > 1) {
        pthread_barrier_wait(&t->g->start);
    }
    for (int i = 0; i < t->g->rounds; i++) {
        struct deny_call *c = &t->g->calls[t->index * t->g->rounds + i];

        c->err = ok ? posgate_check(t->g->pg, rq, res) : POSGATE_ERR_NOMEM;
        c->decision = ok ? (int)posgate_result_decision(res) : -1;
        c->seq = ok ? posgate_result_audit_seq(res) : 0;
        snprintf(c->id, sizeof(c->id), "%s", ok ? posgate_result_decision_id(res) : "");
    }
    posgate_request_free(rq);
    posgate_result_free(res);
    return NULL;
}

/* Checks every call against the trail written since `since`: a call answered OK is a DENY whose
 * event is in the trail once, at the seq it was given; a call that failed is not a DENY (nor an
 * ALLOW) and its event is not in the trail. Returns the number of failed calls. */
static size_t
check_calls(const char *audit_path, uint64_t since, const struct deny_call *calls, size_t n)
{
    struct seen s = {0};
    size_t failed = 0, ok = 0;

    read_all(audit_path, since, &s);
    for (size_t i = 0; i < n; i++) {
        const struct deny_call *c = &calls[i];
        size_t at = 0;

        while (at < s.n && strcmp(s.ids[at], c->id) != 0) {
            at++;
        }
        if (c->err != POSGATE_OK) {
            failed++;
            CHECK_INT(c->decision, POSGATE_REFER);
            CHECK(at == s.n); /* not acknowledged, and not in the trail either */
            continue;
        }
        ok++;
        CHECK_INT(c->decision, POSGATE_DENY);
        CHECK(at < s.n);
        if (at < s.n) {
            CHECK_INT(s.ev[at].seq, c->seq);
            CHECK_STR(s.ev[at].decision, "deny");
        }
    }
    /* the trail holds the acknowledged events and nothing else, each seq once, in order */
    CHECK_INT(s.n, ok);
    for (size_t i = 0; i < s.n; i++) {
        CHECK_INT(s.ev[i].seq, since + 1 + i);
    }
    seen_free(&s);
    return failed;
}

static void
test_deny_group(struct posgate *pg, const char *audit_path)
{
    enum { ROUNDS = 10 };
    pthread_t th[GROUP_THREADS];
    struct deny_thread t[GROUP_THREADS];
    struct deny_group g = {.pg = pg, .rounds = ROUNDS};
    struct audit_stats st0, st1;
    size_t total = (size_t)GROUP_THREADS * ROUNDS;

    CHECK_OK(posgate_set_audit_durability(pg, "batched"));
    CHECK_OK(audit_flush(pg->audit));
    CHECK_OK(audit_stats(pg->audit, &st0));
    g.calls = calloc(total, sizeof(*g.calls));
    CHECK_INT(pthread_barrier_init(&g.start, NULL, GROUP_THREADS), 0);
    for (int i = 0; i < GROUP_THREADS; i++) {
        t[i] = (struct deny_thread){&g, i, NULL};
        CHECK_INT(pthread_create(&th[i], NULL, deny_thread_main, &t[i]), 0);
    }
    for (int i = 0; i < GROUP_THREADS; i++) {
        pthread_join(th[i], NULL);
    }
    pthread_barrier_destroy(&g.start);
    CHECK_OK(audit_stats(pg->audit, &st1));
    CHECK_INT(st1.head_seq - st0.head_seq, total);
    CHECK_INT(check_calls(audit_path, st0.head_seq, g.calls, total), 0);
    /* 32 callers waiting at once share commits */
    CHECK(st1.commits - st0.commits < total);
    CHECK_INT(st1.failures - st0.failures, 0);
    printf("audit: %zu durable DENYs from %d threads in %llu commits\n", total, GROUP_THREADS,
           (unsigned long long)(st1.commits - st0.commits));
    test_audit_verify_ok(pg->audit, "deny group");
    free(g.calls);
}

/* Waits up to 10 s until pg's queue holds n events not yet taken by a commit. */
static int
wait_pending(struct posgate *pg, uint64_t n)
{
    struct audit_stats st;

    for (int i = 0; i < 1000; i++) {
        if (audit_stats(pg->audit, &st) == POSGATE_OK && st.pending >= n) {
            return 1;
        }
        nanosleep(&(struct timespec){0, 10000000}, NULL);
    }
    return 0;
}

/* A commit that fails fails every caller whose event it held. Another connection holds the write
 * lock, so the first caller's commit (its own event) waits while 30 more DENYs and then one whose
 * insert a trigger refuses queue behind it; the lock is let go: the first commit succeeds, the
 * one holding the other 31 fails as a whole, and all 31 callers are told. (Should thread 0 be
 * slow to start, another thread's event is the first commit's: the counts are the same.) */
static void
test_deny_group_failure(struct posgate *pg, const char *audit_path)
{
    pthread_t th[GROUP_THREADS];
    struct deny_thread t[GROUP_THREADS];
    struct deny_group g = {.pg = pg, .rounds = 1};
    struct audit_stats st0, st1;
    sqlite3 *lock = NULL;
    size_t failed;

    CHECK_OK(posgate_set_audit_durability(pg, "batched"));
    CHECK_OK(audit_flush(pg->audit));
    CHECK_OK(audit_stats(pg->audit, &st0));
    g.calls = calloc(GROUP_THREADS, sizeof(*g.calls));
    CHECK_INT(sql(audit_path, "CREATE TRIGGER fault BEFORE INSERT ON events "
                              "WHEN instr(CAST(NEW.body AS TEXT), 'fault-op') > 0 "
                              "BEGIN SELECT RAISE(ABORT, 'injected fault'); END"),
              SQLITE_OK);
    CHECK_INT(sqlite3_open(audit_path, &lock), SQLITE_OK);
    CHECK_INT(sqlite3_exec(lock, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
    /* the first caller takes its event into a commit that waits for the lock */
    t[0] = (struct deny_thread){&g, 0, NULL};
    CHECK_INT(pthread_create(&th[0], NULL, deny_thread_main, &t[0]), 0);
    nanosleep(&(struct timespec){0, 100000000}, NULL);
    for (int i = 1; i < GROUP_THREADS - 1; i++) {
        t[i] = (struct deny_thread){&g, i, NULL};
        CHECK_INT(pthread_create(&th[i], NULL, deny_thread_main, &t[i]), 0);
    }
    CHECK(wait_pending(pg, GROUP_THREADS - 2));
    t[GROUP_THREADS - 1] = (struct deny_thread){&g, GROUP_THREADS - 1, "fault-op"};
    CHECK_INT(pthread_create(&th[GROUP_THREADS - 1], NULL, deny_thread_main, &t[GROUP_THREADS - 1]),
              0);
    CHECK(wait_pending(pg, GROUP_THREADS - 1));
    CHECK_INT(sqlite3_exec(lock, "ROLLBACK", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(lock);
    for (int i = 0; i < GROUP_THREADS; i++) {
        pthread_join(th[i], NULL);
    }
    CHECK_INT(sql(audit_path, "DROP TRIGGER fault"), SQLITE_OK);
    CHECK_OK(audit_stats(pg->audit, &st1));
    failed = check_calls(audit_path, st0.head_seq, g.calls, GROUP_THREADS);
    CHECK_INT(failed, GROUP_THREADS - 1); /* the one that succeeded: the first commit's */
    CHECK(g.calls[GROUP_THREADS - 1].err != POSGATE_OK);
    CHECK_INT(st1.head_seq - st0.head_seq, 1);
    CHECK(st1.failures > st0.failures);
    test_audit_verify_ok(pg->audit, "deny group failure");
    free(g.calls);
}

/* ---- batch signature ---- */

static void
check_batch(struct audit_queue *q, struct device_key *dk, uint64_t since)
{
    struct buf b = BUF_INIT(16u << 20), msg = BUF_INIT(512), sig = BUF_INIT(256);
    struct audit_batch_info bi;
    struct crypto_pubkey *pub = NULL;
    cJSON *root = NULL;
    const cJSON *ev, *it, *head;
    uint8_t h[AUDIT_HASH_LEN] = {0}, prev[AUDIT_HASH_LEN];
    char m[256], hex[65];
    int first = 1;

    CHECK_OK(audit_batch_json(q, since, 100, &b, &bi));
    CHECK(bi.n_events > 0 && bi.n_events <= 100);
    CHECK_INT(bi.first_seq, since + 1);
    CHECK_INT(bi.head_seq, bi.last_seq);
    CHECK_OK(json_parse_bounded(b.data, b.len, b.max, &root, m, sizeof(m)));
    if (root == NULL) {
        goto out;
    }
    CHECK_STR(cJSON_GetObjectItemCaseSensitive(root, "device_id")->valuestring, device_key_id(dk));
    CHECK(cJSON_IsString(cJSON_GetObjectItemCaseSensitive(root, "idempotency_key")));
    head = cJSON_GetObjectItemCaseSensitive(root, "head");
    CHECK_INT(cJSON_GetObjectItemCaseSensitive(head, "seq")->valuedouble, bi.head_seq);
    /* the events re-hash to the signed head */
    ev = cJSON_GetObjectItemCaseSensitive(root, "events");
    CHECK_INT(cJSON_GetArraySize(ev), bi.n_events);
    cJSON_ArrayForEach(it, ev)
    {
        struct buf c = BUF_INIT(AUDIT_EVENT_MAX);
        struct audit_event_info info;

        CHECK_OK(json_canon_encode(it, &c));
        CHECK_OK(audit_event_inspect(c.data, c.len, &info, m, sizeof(m)));
        if (first) {
            memcpy(h, info.prev, AUDIT_HASH_LEN);
            first = 0;
        }
        CHECK(memcmp(info.prev, h, AUDIT_HASH_LEN) == 0);
        memcpy(prev, h, AUDIT_HASH_LEN);
        audit_chain_hash(prev, c.data, c.len, h);
        buf_free(&c);
    }
    crypto_hex(h, AUDIT_HASH_LEN, hex);
    CHECK_STR(cJSON_GetObjectItemCaseSensitive(head, "hash")->valuestring, hex);
    /* the signature verifies with the public key alone; a forged one does not */
    CHECK_OK(crypto_pubkey_from_pem(device_key_pub_pem(dk), CRYPTO_SCHEME_ECDSA_P256_SHA256, &pub));
    CHECK_OK(audit_head_message(device_key_id(dk), bi.head_seq, h, &msg));
    {
        const char *sh = cJSON_GetObjectItemCaseSensitive(root, "signature")->valuestring;

        CHECK_OK(crypto_unhex(sh, strlen(sh), &sig));
    }
    if (pub != NULL) {
        CHECK_OK(crypto_pubkey_verify(pub, msg.data, msg.len, sig.data, sig.len));
        msg.data[msg.len - 2] ^= 1; /* another head hash */
        CHECK_ERR(crypto_pubkey_verify(pub, msg.data, msg.len, sig.data, sig.len),
                  POSGATE_ERR_BADSIG);
    }
    /* the same events give the same idempotency key */
    {
        struct buf b2 = BUF_INIT(16u << 20);
        cJSON *r2 = NULL;

        CHECK_OK(audit_batch_json(q, since, 100, &b2, NULL));
        CHECK_OK(json_parse_bounded(b2.data, b2.len, b2.max, &r2, m, sizeof(m)));
        if (r2 != NULL) {
            CHECK_STR(cJSON_GetObjectItemCaseSensitive(r2, "idempotency_key")->valuestring,
                      cJSON_GetObjectItemCaseSensitive(root, "idempotency_key")->valuestring);
        }
        cJSON_Delete(r2);
        buf_free(&b2);
    }
out:
    cJSON_Delete(root);
    crypto_pubkey_free(pub);
    buf_free(&b);
    buf_free(&msg);
    buf_free(&sig);
}

/* ---- a queue of its own: folding, pruning, tampering ---- */

static void
fill_event(struct audit_event *e, int i, enum audit_decision d, const char *svc)
{
    memset(e, 0, sizeof(*e));
    snprintf(e->id, sizeof(e->id), "%032x", i);
    e->time_us = plat_wall_us();
    e->mono_us = (int64_t)(plat_mono_ns() / 1000u);
    e->decision = d;
    snprintf(e->service, sizeof(e->service), "%s", svc);
    snprintf(e->operator_id, sizeof(e->operator_id), "op%d", i % 3);
    e->n_subjects = 1;
    memset(e->subjects[0], i & 0xff, AUDIT_SUBJECT_LEN);
    e->data_age_s = 5;
    e->feed_version = 1;
    if (d != AUDIT_ALLOW) {
        e->n_reasons = 1;
        snprintf(e->reasons[0].kind, sizeof(e->reasons[0].kind), "match");
        snprintf(e->reasons[0].effect, sizeof(e->reasons[0].effect), "%s", audit_decision_name(d));
        snprintf(e->reasons[0].list, sizeof(e->reasons[0].list), "list-a");
        snprintf(e->reasons[0].listing_id, sizeof(e->reasons[0].listing_id), "L-%d", i);
    }
}

struct fold_arg {
    struct audit_queue *q;
    int base, n;
    atomic_int *allow, *deny, *refer, *bad;
};

static void *
fold_worker(void *arg)
{
    struct fold_arg *f = arg;
    struct audit_event *e = malloc(sizeof(*e));

    for (int i = f->base; e != NULL && i < f->base + f->n; i++) {
        enum audit_decision d = i % 7 == 0 ? AUDIT_DENY : i % 11 == 0 ? AUDIT_REFER : AUDIT_ALLOW;
        uint64_t seq = 0;

        fill_event(e, i, d, i % 2 ? "air" : "rail.hsr");
        if (audit_record(f->q, e, &seq) != POSGATE_OK || (d != AUDIT_ALLOW && seq == 0)) {
            atomic_fetch_add(f->bad, 1);
        }
        atomic_fetch_add(d == AUDIT_ALLOW ? f->allow : d == AUDIT_DENY ? f->deny : f->refer, 1);
    }
    free(e);
    return NULL;
}

static void
test_full_queue(struct device_key *dk, const char *path)
{
    struct audit_options o;
    struct audit_queue *q = NULL;
    struct seen s = {0};
    struct audit_stats st;
    atomic_int allow = 0, deny = 0, refer = 0, bad = 0;
    struct fold_arg fa[4];
    pthread_t th[4];
    uint64_t n_allow = 0, n_deny = 0, n_refer = 0, folded_in = 0, summaries = 0;
    char msg[256];

    audit_options_default(&o);
    o.durability = AUDIT_BATCHED;
    o.max_bytes = 6000; /* a few events: the queue is full almost at once */
    CHECK_OK(audit_open(path, dk, &o, 0, &q, msg, sizeof(msg)));
    if (q == NULL) {
        return;
    }
    for (int i = 0; i < 4; i++) {
        fa[i] = (struct fold_arg){q, 1 + i * 500, 500, &allow, &deny, &refer, &bad};
        CHECK_INT(pthread_create(&th[i], NULL, fold_worker, &fa[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
    }
    CHECK_OK(audit_flush(q));
    CHECK_INT(atomic_load(&bad), 0);
    CHECK_OK(audit_stats(q, &st));
    test_audit_verify_ok(q, "full queue");
    audit_close(q);
    read_all(path, 0, &s);
    for (size_t i = 0; i < s.n; i++) {
        if (strcmp(s.ev[i].kind, "allow_summary") == 0) {
            summaries++;
            folded_in += s.ev[i].count;
        } else if (strcmp(s.ev[i].decision, "allow") == 0) {
            n_allow++;
        } else if (strcmp(s.ev[i].decision, "deny") == 0) {
            n_deny++;
        } else if (strcmp(s.ev[i].decision, "refer") == 0) {
            n_refer++;
        }
        CHECK_INT(s.ev[i].seq, i + 1);
    }
    printf("audit: full queue: %zu rows for 2000 decisions: %llu deny, %llu refer, %llu allow, "
           "%llu allow(s) folded into %llu summaries\n",
           s.n, (unsigned long long)n_deny, (unsigned long long)n_refer,
           (unsigned long long)n_allow, (unsigned long long)folded_in,
           (unsigned long long)summaries);
    CHECK_INT(n_deny, atomic_load(&deny));               /* no DENY dropped */
    CHECK_INT(n_refer, atomic_load(&refer));             /* no REFER dropped */
    CHECK_INT(n_allow + folded_in, atomic_load(&allow)); /* every ALLOW accounted for */
    CHECK(summaries > 0);
    CHECK(n_allow < (uint64_t)atomic_load(&allow));
    seen_free(&s);
}

/* ---- the ring: callers that take no lock, wrapping it many times ---- */

#define RING_THREADS 8
#define RING_EACH    4000 /* events a thread: the queue's 1024-slot ring wraps ~30 times */

struct ring_arg {
    struct audit_queue *q;
    int t;
    atomic_int *bad;
    uint64_t deny_seq[RING_EACH]; /* the seq each DENY was given, 0 for an ALLOW */
};

/* Event i of thread t: id (t + 1) << 20 | i, every 64th a DENY that waits for its commit. */
static void *
ring_worker(void *arg)
{
    struct ring_arg *r = arg;
    struct audit_event *e = malloc(sizeof(*e));

    for (int i = 0; e != NULL && i < RING_EACH; i++) {
        enum audit_decision d = i % 64 == 63 ? AUDIT_DENY : AUDIT_ALLOW;

        fill_event(e, (r->t + 1) << 20 | i, d, "air");
        r->deny_seq[i] = 0;
        if (audit_record(r->q, e, &r->deny_seq[i]) != POSGATE_OK ||
            (d == AUDIT_DENY) != (r->deny_seq[i] != 0)) {
            atomic_fetch_add(r->bad, 1);
        }
    }
    if (e == NULL) {
        atomic_fetch_add(r->bad, 1);
    }
    free(e);
    return NULL;
}

/* Batched ALLOWs enqueue without the queue's lock, beside DENYs that wait and commit: the trail
 * holds every event once, contiguous and verifying; each thread's events in the order it
 * recorded them; each DENY at the seq it was told. */
static void
test_ring_order(struct device_key *dk, const char *path)
{
    struct audit_options o;
    struct audit_queue *q = NULL;
    struct ring_arg *ra = calloc(RING_THREADS, sizeof(*ra));
    pthread_t th[RING_THREADS];
    atomic_int bad = 0;
    struct seen s = {0};
    uint64_t last[RING_THREADS] = {0};
    int next[RING_THREADS] = {0};
    size_t total = (size_t)RING_THREADS * RING_EACH;
    char msg[256];

    audit_options_default(&o);
    o.durability = AUDIT_BATCHED;
    o.batch_ms = 2;
    CHECK(ra != NULL);
    CHECK_OK(audit_open(path, dk, &o, 0, &q, msg, sizeof(msg)));
    if (q == NULL || ra == NULL) {
        free(ra);
        return;
    }
    for (int i = 0; i < RING_THREADS; i++) {
        ra[i].q = q;
        ra[i].t = i;
        ra[i].bad = &bad;
        CHECK_INT(pthread_create(&th[i], NULL, ring_worker, &ra[i]), 0);
    }
    for (int i = 0; i < RING_THREADS; i++) {
        pthread_join(th[i], NULL);
    }
    CHECK_INT(atomic_load(&bad), 0);
    CHECK_OK(audit_flush(q));
    test_audit_verify_ok(q, "ring");
    audit_close(q);
    read_all(path, 0, &s);
    CHECK_INT(s.n, total);
    for (size_t i = 0; i < s.n; i++) {
        unsigned long v = strtoul(s.ids[i], NULL, 16);
        int t = (int)(v >> 20) - 1, k = (int)(v & 0xfffff);

        CHECK_INT(s.ev[i].seq, i + 1);
        if (t < 0 || t >= RING_THREADS || k != next[t]) {
            fprintf(stderr, "ring: seq %zu holds event %s, expected event %d of thread %d\n",
                    i + 1, s.ids[i], t >= 0 && t < RING_THREADS ? next[t] : -1, t);
            CHECK(0);
            break;
        }
        CHECK(s.ev[i].seq > last[t]);
        last[t] = s.ev[i].seq;
        if (k % 64 == 63) {
            CHECK_STR(s.ev[i].decision, "deny");
            CHECK_INT(ra[t].deny_seq[k], s.ev[i].seq);
        }
        next[t]++;
    }
    for (int t = 0; t < RING_THREADS; t++) {
        CHECK_INT(next[t], RING_EACH);
    }
    seen_free(&s);
    free(ra);
}

/* ---- who commits a full batch of ALLOWs ---- */

#define PROD_EACH 2000

struct prod_arg {
    struct audit_queue *q;
    int t;
    atomic_int *bad;
};

static void *
prod_worker(void *arg)
{
    struct prod_arg *r = arg;
    struct audit_event e;

    for (int i = 0; i < PROD_EACH; i++) {
        fill_event(&e, (r->t + 1) << 20 | i, AUDIT_ALLOW, "air");
        if (audit_record(r->q, &e, NULL) != POSGATE_OK) {
            atomic_fetch_add(r->bad, 1);
        }
    }
    return NULL;
}

/* threads ALLOW batched events at once (1) or one thread does (0), batches of 16, the writer's
 * timer a minute: returns the batches the checking threads committed themselves */
static uint64_t
producers_run(struct device_key *dk, const char *path, int threads)
{
    struct audit_options o;
    struct audit_queue *q = NULL;
    struct prod_arg ra[4];
    pthread_t th[4];
    atomic_int bad = 0;
    struct audit_stats st;
    struct seen s = {0};
    char msg[256];

    audit_options_default(&o);
    o.durability = AUDIT_BATCHED;
    o.batch_ms = 60000;
    o.batch_max = 16;
    CHECK_OK(audit_open(path, dk, &o, 0, &q, msg, sizeof(msg)));
    if (q == NULL) {
        return 0;
    }
    for (int i = 0; i < threads; i++) {
        ra[i] = (struct prod_arg){q, i, &bad};
        CHECK_INT(pthread_create(&th[i], NULL, prod_worker, &ra[i]), 0);
    }
    for (int i = 0; i < threads; i++) {
        pthread_join(th[i], NULL);
    }
    CHECK_INT(atomic_load(&bad), 0);
    /* full batches do not wait for the timer, whoever commits them (the last ones may) */
    for (int i = 0; i < 500; i++) {
        CHECK_OK(audit_stats(q, &st));
        if (st.head_seq >= (uint64_t)threads * PROD_EACH / 2) {
            break;
        }
        nanosleep(&(struct timespec){0, 10000000}, NULL);
    }
    CHECK(st.head_seq >= (uint64_t)threads * PROD_EACH / 2);
    CHECK_OK(audit_flush(q));
    test_audit_verify_ok(q, "producers");
    CHECK_OK(audit_stats(q, &st));
    audit_close(q);
    read_all(path, 0, &s);
    CHECK_INT(s.n, (size_t)threads * PROD_EACH);
    seen_free(&s);
    printf("audit: %d thread(s) recording: %llu of %llu commits made by them\n", threads,
           (unsigned long long)st.producer_commits, (unsigned long long)st.commits);
    return st.producer_commits;
}

/* One thread checking leaves its batches to the writer thread, on the other core; several at
 * once commit the batch they fill themselves, at their own weight (the writer's background
 * weight would keep a busy machine's ring full, every checking thread waiting for it). */
static void
test_producer_commits(struct device_key *dk, const char *one, const char *four)
{
    CHECK_INT(producers_run(dk, one, 1), 0);
    CHECK(producers_run(dk, four, 4) > 0);
}

static int
sql(const char *path, const char *stmt)
{
    sqlite3 *db = NULL;
    int rc = sqlite3_open(path, &db);

    if (rc == SQLITE_OK) {
        rc = sqlite3_exec(db, stmt, NULL, NULL, NULL);
    }
    sqlite3_close(db);
    return rc;
}

/* Edits event seq's operator and stores the hash an attacker would compute for it. */
static int
rehash_edit(const char *path, int seq)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    uint8_t prev[AUDIT_HASH_LEN] = {0}, h[AUDIT_HASH_LEN];
    char body[AUDIT_EVENT_MAX];
    char *op;
    int rc = sqlite3_open(path, &db);

    if (rc == SQLITE_OK) {
        rc = sqlite3_prepare_v2(db, "SELECT hash FROM events WHERE seq = ?1", -1, &st, NULL);
    }
    if (rc == SQLITE_OK) {
        sqlite3_bind_int(st, 1, seq - 1);
        rc = sqlite3_step(st) == SQLITE_ROW ? SQLITE_OK : SQLITE_ERROR;
        if (rc == SQLITE_OK) {
            memcpy(prev, sqlite3_column_blob(st, 0), AUDIT_HASH_LEN);
        }
        sqlite3_finalize(st);
        st = NULL;
    }
    if (rc == SQLITE_OK) {
        rc = sqlite3_prepare_v2(db, "SELECT body FROM events WHERE seq = ?1", -1, &st, NULL);
    }
    if (rc == SQLITE_OK) {
        sqlite3_bind_int(st, 1, seq);
        rc = sqlite3_step(st) == SQLITE_ROW ? SQLITE_OK : SQLITE_ERROR;
        if (rc == SQLITE_OK) {
            snprintf(body, sizeof(body), "%s", (const char *)sqlite3_column_text(st, 0));
        }
        sqlite3_finalize(st);
        st = NULL;
    }
    op = rc == SQLITE_OK ? strstr(body, "\"operator\":\"op") : NULL;
    if (op == NULL) {
        sqlite3_close(db);
        return SQLITE_ERROR;
    }
    op[strlen("\"operator\":\"op")] = 'X'; /* same length, still canonical */
    audit_chain_hash(prev, body, strlen(body), h);
    rc = sqlite3_prepare_v2(db, "UPDATE events SET body = ?1, hash = ?2 WHERE seq = ?3", -1, &st,
                            NULL);
    if (rc == SQLITE_OK) {
        sqlite3_bind_text(st, 1, body, -1, SQLITE_STATIC);
        sqlite3_bind_blob(st, 2, h, AUDIT_HASH_LEN, SQLITE_STATIC);
        sqlite3_bind_int(st, 3, seq);
        rc = sqlite3_step(st) == SQLITE_DONE ? SQLITE_OK : SQLITE_ERROR;
        sqlite3_finalize(st);
    }
    sqlite3_close(db);
    return rc;
}

static enum posgate_err
verify_file(const char *path, char *msg, size_t cap)
{
    struct audit_queue *ro = NULL;
    enum posgate_err err = audit_open(path, NULL, NULL, AUDIT_READONLY, &ro, msg, cap);

    if (err == POSGATE_OK) {
        err = audit_verify(ro, NULL, msg, cap);
    }
    audit_close(ro);
    return err;
}

static void
test_prune_and_tamper(struct device_key *dk, const char *path)
{
    struct audit_queue *q = NULL;
    struct audit_event e;
    struct audit_stats st;
    uint64_t seq = 0;
    char msg[512], cp[1200], cmd[4000];

    CHECK_OK(audit_open(path, dk, NULL, 0, &q, msg, sizeof(msg)));
    if (q == NULL) {
        return;
    }
    for (int i = 1; i <= 20; i++) {
        fill_event(&e, i, i % 4 == 0 ? AUDIT_DENY : AUDIT_ALLOW, "air");
        CHECK_OK(audit_record(q, &e, &seq));
        CHECK_INT(seq, i); /* strict: every seq known on return */
    }
    CHECK_ERR(audit_ack(q, 21), POSGATE_ERR_INVALID); /* never written */
    CHECK_OK(audit_ack(q, 12));
    CHECK_OK(audit_stats(q, &st));
    CHECK_INT(st.acked_seq, 12);
    CHECK_INT(st.first_seq, 1); /* within retention: kept */
    CHECK_OK(audit_ack(q, 5));  /* an older ack does not go back */
    CHECK_OK(audit_stats(q, &st));
    CHECK_INT(st.acked_seq, 12);
    CHECK_OK(audit_prune(q, plat_wall_s() + 31 * 86400)); /* past the 30-day retention */
    CHECK_OK(audit_stats(q, &st));
    CHECK_INT(st.first_seq, 13); /* acknowledged and old: gone; the rest kept */
    CHECK_INT(st.events, 8);
    CHECK_INT(st.head_seq, 20);
    test_audit_verify_ok(q, "after prune");
    fill_event(&e, 21, AUDIT_REFER, "air");
    CHECK_OK(audit_record(q, &e, &seq));
    CHECK_INT(seq, 21); /* the chain goes on from the anchor */
    test_audit_verify_ok(q, "after prune and append");
    /* prune everything acknowledged: the head survives as the anchor */
    CHECK_OK(audit_ack(q, 21));
    CHECK_OK(audit_prune(q, plat_wall_s() + 31 * 86400));
    CHECK_OK(audit_stats(q, &st));
    CHECK_INT(st.events, 0);
    CHECK_INT(st.head_seq, 21);
    fill_event(&e, 22, AUDIT_DENY, "air");
    CHECK_OK(audit_record(q, &e, &seq));
    CHECK_INT(seq, 22);
    test_audit_verify_ok(q, "after pruning all");
    for (int i = 23; i <= 30; i++) {
        fill_event(&e, i, AUDIT_DENY, "air");
        CHECK_OK(audit_record(q, &e, &seq));
    }
    audit_close(q);
    CHECK_OK(verify_file(path, msg, sizeof(msg)));

    /* tampering, each on a fresh copy */
    snprintf(cp, sizeof(cp), "%s.t", path);
    snprintf(cmd, sizeof(cmd), "cp '%s' '%s'", path, cp);
    CHECK_INT(system(cmd), 0);
    CHECK_INT(sql(cp, "UPDATE events SET body = replace(body, '\"deny\"', '\"allow\"') "
                      "WHERE seq = 25"),
              SQLITE_OK);
    CHECK_ERR(verify_file(cp, msg, sizeof(msg)), POSGATE_ERR_CORRUPT);
    CHECK_CONTAINS(msg, "seq 25");
    CHECK_INT(system(cmd), 0);
    CHECK_INT(sql(cp, "DELETE FROM events WHERE seq = 26"), SQLITE_OK);
    CHECK_ERR(verify_file(cp, msg, sizeof(msg)), POSGATE_ERR_CORRUPT);
    CHECK_CONTAINS(msg, "expected seq 26");
    /* an edit that also recomputes its own stored hash still breaks the next event's prev */
    CHECK_INT(system(cmd), 0);
    CHECK_INT(rehash_edit(cp, 27), SQLITE_OK);
    CHECK_ERR(verify_file(cp, msg, sizeof(msg)), POSGATE_ERR_CORRUPT);
    CHECK_CONTAINS(msg, "seq 28");
    snprintf(cmd, sizeof(cmd), "rm -f '%s' '%s-wal' '%s-shm'", cp, cp, cp);
    CHECK_INT(system(cmd), 0);
}

/* An integer that SQL reads from the file at path (-1 when it cannot). */
static int64_t
sql_int(const char *path, const char *query)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    int64_t v = -1;

    if (sqlite3_open(path, &db) == SQLITE_OK &&
        sqlite3_prepare_v2(db, query, -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW) {
        v = sqlite3_column_int64(st, 0);
    }
    sqlite3_finalize(st);
    sqlite3_close(db);
    return v;
}

#define TEXT_BYTES "SELECT CAST(total(length(CAST(body AS BLOB))) AS INTEGER) FROM events"

/* Two queues on one file (posgated and a `posgate check` beside it): each writer keeps the
 * chain's head and bytes from one commit to the next, and must see the other's commits and
 * prunes in between. */
static void
test_other_writers(struct device_key *dk, const char *path)
{
    struct audit_queue *a = NULL, *b = NULL;
    struct audit_event e;
    struct audit_stats st;
    uint64_t seq = 0;
    char msg[512];

    CHECK_OK(audit_open(path, dk, NULL, 0, &a, msg, sizeof(msg)));
    CHECK_OK(audit_open(path, dk, NULL, 0, &b, msg, sizeof(msg)));
    if (a == NULL || b == NULL) {
        audit_close(a);
        audit_close(b);
        return;
    }
    for (int i = 1; i <= 12; i++) {
        fill_event(&e, i, i % 3 == 0 ? AUDIT_REFER : AUDIT_DENY, "air");
        CHECK_OK(audit_record(i % 2 ? a : b, &e, &seq));
        CHECK_INT(seq, i); /* one chain, whichever queue wrote the event before */
    }
    CHECK_OK(audit_stats(a, &st));
    CHECK_INT(st.bytes, sql_int(path, TEXT_BYTES));
    /* b acknowledges and prunes between two of a's commits */
    CHECK_OK(audit_ack(b, 8));
    CHECK_OK(audit_prune(b, plat_wall_s() + 31 * 86400));
    fill_event(&e, 13, AUDIT_DENY, "air");
    CHECK_OK(audit_record(a, &e, &seq));
    CHECK_INT(seq, 13);
    CHECK_OK(audit_stats(a, &st));
    CHECK_INT(st.first_seq, 9);
    CHECK_INT(st.bytes, sql_int(path, TEXT_BYTES));
    test_audit_verify_ok(a, "two writers");
    audit_close(a);
    audit_close(b);
    /* reopened, the queue's bytes are what a prune or a full queue counts from */
    CHECK_OK(audit_open(path, dk, NULL, 0, &a, msg, sizeof(msg)));
    CHECK_OK(audit_stats(a, &st));
    CHECK_INT(st.bytes, sql_int(path, TEXT_BYTES));
    audit_close(a);
}

/* A process killed with SIGKILL between commits, long before its writer wrote meta 'bytes'
 * again: the next open counts every event's text all the same. */
static void
test_bytes_after_kill(struct device_key *dk, const char *path)
{
    struct audit_queue *q = NULL;
    struct audit_stats st;
    int status = 0;
    uint64_t seq = 0;
    char msg[512];
    pid_t pid = fork();

    if (pid == 0) {
        struct audit_event e;

        if (audit_open(path, dk, NULL, 0, &q, msg, sizeof(msg)) != POSGATE_OK) {
            _exit(2);
        }
        for (int i = 1; i <= 40; i++) {
            fill_event(&e, i, AUDIT_DENY, "air");
            if (audit_record(q, &e, &seq) != POSGATE_OK || seq != (uint64_t)i) {
                _exit(3);
            }
        }
        raise(SIGKILL);
        _exit(4);
    }
    CHECK(pid > 0);
    CHECK_INT(waitpid(pid, &status, 0), pid);
    CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    CHECK_INT(sql_int(path, "SELECT max(seq) FROM events"), 40);
    /* the row lags the chain: what it does not count comes from the events themselves */
    CHECK(sql_int(path, "SELECT b FROM meta WHERE k = 'bytes'") < 40);
    CHECK_OK(audit_open(path, NULL, NULL, AUDIT_READONLY, &q, msg, sizeof(msg)));
    CHECK_OK(audit_stats(q, &st));
    CHECK_INT(st.bytes, sql_int(path, TEXT_BYTES));
    audit_close(q);
    q = NULL;
    CHECK_OK(audit_open(path, dk, NULL, 0, &q, msg, sizeof(msg)));
    if (q == NULL) {
        return;
    }
    CHECK_OK(audit_ack(q, 30)); /* a prune past the row's b, then more events */
    CHECK_OK(audit_prune(q, plat_wall_s() + 31 * 86400));
    for (int i = 41; i <= 45; i++) {
        struct audit_event e;

        fill_event(&e, i, AUDIT_DENY, "air");
        CHECK_OK(audit_record(q, &e, &seq));
        CHECK_INT(seq, i);
    }
    CHECK_OK(audit_stats(q, &st));
    CHECK_INT(st.first_seq, 31);
    CHECK_INT(st.bytes, sql_int(path, TEXT_BYTES));
    test_audit_verify_ok(q, "after a kill");
    audit_close(q);
}

/* The binary before meta 'bytes' had its b (a kiosk rolled back, then forward again) adds its
 * events' text to v and keeps b: the next open counts each event's text once, not the events
 * after b twice, and so does a commit after such a writer wrote between two of ours. */
static void
test_bytes_older_writer(struct device_key *dk, const char *path)
{
    /* one commit of the older writer: 5 events after the head, v + their text, b kept */
    static const char older_commit[] =
        "INSERT INTO events SELECT seq + (SELECT max(seq) FROM events), kind, decision, time_us,"
        " body, hash FROM events WHERE seq <= 5;"
        "UPDATE meta SET v = v + (SELECT total(length(CAST(body AS BLOB))) FROM events"
        " WHERE seq > (SELECT max(seq) - 5 FROM events)), b = coalesce(NULL, b) WHERE k = 'bytes';";
    struct audit_queue *q = NULL;
    struct audit_stats st;
    struct audit_event e;
    uint64_t seq = 0;
    char msg[512];

    CHECK_OK(audit_open(path, dk, NULL, 0, &q, msg, sizeof(msg)));
    if (q == NULL) {
        return;
    }
    for (int i = 1; i <= 40; i++) {
        fill_event(&e, i, AUDIT_DENY, "air");
        CHECK_OK(audit_record(q, &e, &seq));
    }
    audit_close(q);
    q = NULL;
    CHECK(sql_int(path, "SELECT b FROM meta WHERE k = 'bytes'") < 40);
    CHECK_INT(sql(path, older_commit), SQLITE_OK);
    CHECK_OK(audit_open(path, dk, NULL, 0, &q, msg, sizeof(msg)));
    if (q == NULL) {
        return;
    }
    CHECK_OK(audit_stats(q, &st));
    CHECK_INT(st.bytes, sql_int(path, TEXT_BYTES));
    /* the older writer between two commits of this one */
    fill_event(&e, 46, AUDIT_DENY, "air");
    CHECK_OK(audit_record(q, &e, &seq));
    CHECK_INT(sql(path, older_commit), SQLITE_OK);
    fill_event(&e, 52, AUDIT_DENY, "air");
    CHECK_OK(audit_record(q, &e, &seq));
    CHECK_INT(seq, 52);
    CHECK_OK(audit_stats(q, &st));
    CHECK_INT(st.bytes, sql_int(path, TEXT_BYTES));
    audit_close(q);
}

/* A new queue's file has 16 KiB pages and its WAL is checkpointed at ~4 MB as with SQLite's
 * 4 KiB pages (not at 1000 pages, 16 MB); a file made with 4 KiB pages keeps them and works. */
static void
test_page_size(struct device_key *dk, const char *path, const char *old_path)
{
    struct audit_queue *q = NULL;
    struct audit_options o;
    struct audit_event e;
    struct stat sb;
    char msg[512], wal[1300];
    uint64_t seq = 0;

    audit_options_default(&o);
    o.durability = AUDIT_BATCHED;
    CHECK_OK(audit_open(path, dk, &o, 0, &q, msg, sizeof(msg)));
    if (q == NULL) {
        return;
    }
    for (int i = 1; i <= 16000; i++) { /* ~9 MB of event text */
        fill_event(&e, i, AUDIT_ALLOW, "air");
        CHECK_OK(audit_record(q, &e, NULL));
    }
    CHECK_OK(audit_flush(q));
    snprintf(wal, sizeof(wal), "%s-wal", path);
    CHECK_INT(stat(wal, &sb), 0);
    printf("audit: page size %lld, WAL %lld bytes after 16000 events\n",
           (long long)sql_int(path, "PRAGMA page_size"), (long long)sb.st_size);
    CHECK_INT(sql_int(path, "PRAGMA page_size"), 16384);
    CHECK(sb.st_size < 6000000);
    audit_close(q);
    q = NULL;

    /* the schema of a queue made before, in 4 KiB pages */
    CHECK_INT(sql(old_path,
                  "PRAGMA page_size = 4096; PRAGMA journal_mode = WAL;"
                  "CREATE TABLE events(seq INTEGER PRIMARY KEY, kind TEXT NOT NULL,"
                  " decision TEXT NOT NULL, time_us INTEGER NOT NULL, body TEXT NOT NULL,"
                  " hash BLOB NOT NULL);"
                  "CREATE TABLE meta(k TEXT PRIMARY KEY, v INTEGER NOT NULL, b BLOB);"
                  "INSERT INTO meta VALUES('anchor', 0, zeroblob(32)), ('acked', 0, NULL),"
                  " ('bytes', 0, NULL);"
                  "PRAGMA user_version = 1;"),
              SQLITE_OK);
    CHECK_OK(audit_open(old_path, dk, NULL, 0, &q, msg, sizeof(msg)));
    if (q == NULL) {
        return;
    }
    for (int i = 1; i <= 20; i++) {
        fill_event(&e, i, AUDIT_DENY, "air");
        CHECK_OK(audit_record(q, &e, &seq));
        CHECK_INT(seq, i);
    }
    test_audit_verify_ok(q, "4 KiB pages");
    audit_close(q);
    CHECK_INT(sql_int(old_path, "PRAGMA page_size"), 4096);
}

/* The text of event seq of the queue at path ("" when there is none). */
struct one_body {
    uint64_t seq;
    char text[4096];
};

static int
body_of(void *ctx, uint64_t seq, const char *body, size_t len, const uint8_t hash[AUDIT_HASH_LEN])
{
    struct one_body *b = ctx;

    (void)hash;
    if (seq == b->seq) {
        snprintf(b->text, sizeof(b->text), "%.*s", (int)len, body);
    }
    return 0;
}

static const char *
event_text(const char *path, uint64_t seq)
{
    static struct one_body b;
    struct audit_queue *ro = NULL;
    char msg[256];

    b.seq = seq;
    b.text[0] = 0;
    CHECK_OK(audit_open(path, NULL, NULL, AUDIT_READONLY, &ro, msg, sizeof(msg)));
    if (ro != NULL) {
        CHECK_OK(audit_each(ro, 0, body_of, &b));
    }
    audit_close(ro);
    return b.text;
}

static void
set_lists(struct audit_event *e, const char *digest_b)
{
    e->n_lists = 2;
    snprintf(e->lists[0].id, sizeof(e->lists[0].id), "list-a");
    e->lists[0].seq = 4;
    snprintf(e->lists[0].digest, sizeof(e->lists[0].digest), "%064d", 1);
    snprintf(e->lists[1].id, sizeof(e->lists[1].id), "list-b");
    e->lists[1].seq = 9;
    snprintf(e->lists[1].digest, sizeof(e->lists[1].digest), "%s", digest_b);
}

/* Each list's digest is in the chain once: in the first decision the queue writes that names
 * the list at that seq with that digest, again after the digest changes and after the queue is
 * opened again. */
static void
test_digests_once(struct device_key *dk, const char *path)
{
    static const char dig_b[] = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
    static const char dig_c[] = "cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc";
    static const char bare[] =
        "\"lists\":[{\"id\":\"list-a\",\"seq\":4},{\"id\":\"list-b\",\"seq\":9}]";
    struct audit_queue *q = NULL;
    struct audit_event e;
    uint64_t seq = 0;
    char msg[512];

    CHECK_OK(audit_open(path, dk, NULL, 0, &q, msg, sizeof(msg)));
    if (q == NULL) {
        return;
    }
    for (int i = 1; i <= 4; i++) {
        fill_event(&e, i, i == 2 ? AUDIT_DENY : AUDIT_ALLOW, "air");
        set_lists(&e, i < 3 ? dig_b : dig_c); /* list-b's digest changes at event 3 */
        CHECK_OK(audit_record(q, &e, &seq));
        CHECK_INT(seq, i);
    }
    test_audit_verify_ok(q, "digests once");
    audit_close(q);
    CHECK_CONTAINS(event_text(path, 1), dig_b);
    CHECK_CONTAINS(event_text(path, 1), "\"lists\":[{\"digest\":\"0000");
    CHECK_CONTAINS(event_text(path, 2), bare);
    CHECK(strstr(event_text(path, 2), "digest") == NULL);
    CHECK_CONTAINS(event_text(path, 3),
                   "\"lists\":[{\"id\":\"list-a\",\"seq\":4},{\"digest\":\"cccc");
    CHECK_CONTAINS(event_text(path, 4), bare);
    /* opened again: the first decision names its digests again */
    CHECK_OK(audit_open(path, dk, NULL, 0, &q, msg, sizeof(msg)));
    if (q == NULL) {
        return;
    }
    fill_event(&e, 5, AUDIT_DENY, "air");
    set_lists(&e, dig_c);
    CHECK_OK(audit_record(q, &e, &seq));
    CHECK_INT(seq, 5);
    audit_close(q);
    CHECK_CONTAINS(event_text(path, 5), dig_c);
    CHECK_CONTAINS(event_text(path, 5), "\"lists\":[{\"digest\":\"0000");
    CHECK_OK(verify_file(path, msg, sizeof(msg)));
}

static void
test_batched_bounds(struct posgate *pg, const char *audit_path)
{
    struct posgate_request *rq = NULL;
    struct posgate_result *res = NULL;
    struct audit_stats st0, st1;
    struct seen s = {0};
    uint64_t t0, elapsed_ms, max_lag_ms = 0;
    const int n = 600;

    CHECK_OK(posgate_set_audit_durability(pg, "batched"));
    CHECK_OK(posgate_request_new(&rq));
    CHECK_OK(posgate_result_new(&res));
    CHECK_OK(posgate_request_set_service(rq, "air"));
    CHECK_OK(posgate_request_add_id(rq, clean));
    CHECK_OK(audit_flush(pg->audit));
    CHECK_OK(audit_stats(pg->audit, &st0));
    t0 = plat_mono_ns();
    for (int i = 0; i < n; i++) {
        CHECK_OK(posgate_check(pg, rq, res));
        CHECK_INT(posgate_result_audit_seq(res), 0); /* a batched ALLOW does not wait */
    }
    /* the last one becomes visible within batch_ms (50) plus scheduling slack */
    for (;;) {
        struct audit_stats st;
        uint64_t lag = (plat_mono_ns() - t0) / 1000000u;

        CHECK_OK(audit_stats(pg->audit, &st));
        if (st.head_seq >= st0.head_seq + (uint64_t)n) {
            max_lag_ms = lag;
            break;
        }
        if (lag > 5000) {
            CHECK_FAIL("batched events not committed within 5 s");
            break;
        }
        nanosleep(&(struct timespec){0, 2000000}, NULL);
    }
    elapsed_ms = (plat_mono_ns() - t0) / 1000000u;
    CHECK_OK(audit_stats(pg->audit, &st1));
    printf("audit: batched: %d ALLOW checks in %llu commits, all durable after %llu ms\n", n,
           (unsigned long long)(st1.commits - st0.commits), (unsigned long long)max_lag_ms);
    /* group commit: at most one commit per 256 events or per 50 ms window (plus the last) */
    CHECK(st1.commits - st0.commits <= (uint64_t)n / 256 + elapsed_ms / 50 + 2);
    CHECK(st1.commits - st0.commits < (uint64_t)n / 4);
    read_all(audit_path, st0.head_seq, &s);
    CHECK_INT(s.n, n);
    seen_free(&s);
    /* a DENY in batched mode still waits for its commit */
    posgate_request_reset(rq);
    CHECK_OK(posgate_request_set_service(rq, "air"));
    CHECK_OK(posgate_request_add_id(rq, ovr));
    CHECK_OK(posgate_check(pg, rq, res));
    CHECK_INT(posgate_result_decision(res), POSGATE_DENY);
    CHECK(posgate_result_audit_seq(res) > 0);
    CHECK_OK(posgate_set_audit_durability(pg, "strict"));
    posgate_request_free(rq);
    posgate_result_free(res);
}

/* A reset request holds nothing of the person it named: every byte zero again, though the reset
 * wipes only the ids a parse has written since the last one (posgate_request_reset). */
static void
test_request_reset(void)
{
    static const struct posgate_request zero;
    struct posgate_request *rq = NULL;

    CHECK_OK(posgate_request_new(&rq));
    if (rq == NULL) {
        return;
    }
    CHECK(memcmp(rq, &zero, sizeof(zero)) == 0);
    CHECK_OK(posgate_request_set_service(rq, "rail.hsr.a.longer.name"));
    CHECK_OK(posgate_request_set_service(rq, "air"));
    CHECK_OK(posgate_request_set_operator(rq, "clerk-7"));
    CHECK_OK(posgate_request_add_id(rq, "cn_rid:202215200001275489"));
    CHECK_ERR(posgate_request_add_id(rq, "cn_rid:2022"), POSGATE_ERR_INVALID);
    CHECK_OK(posgate_request_set_name_dob(rq, "Zhang San", "1990-01-02"));
    CHECK_OK(posgate_request_add_id(rq, "passport:DEU:C01X00T47"));
    CHECK_OK(posgate_request_set_override(rq, "sup-1", "travel permit seen"));
    CHECK_OK(posgate_request_set_at(rq, "2030-01-01T00:00:00Z"));
    posgate_request_reset(rq);
    CHECK(memcmp(rq, &zero, sizeof(zero)) == 0);
    /* fewer ids than before: the reset still leaves every byte zero */
    CHECK_OK(posgate_request_add_id(rq, "cn_rid:223408196405058715"));
    posgate_request_reset(rq);
    CHECK(memcmp(rq, &zero, sizeof(zero)) == 0);
    posgate_request_free(rq);
}

/* A result's reasons keep their texts after the reader that produced them renews onto a new
 * feed config (the old config is freed then): the DENY is rendered only afterwards, and still
 * names the authority of the config it was decided under. Under AddressSanitizer a reason that
 * borrowed from the freed config is a use-after-free. */
static void
test_texts_outlive_config(struct posgate *pg, const char *kd)
{
    struct posgate_request *rq = NULL;
    struct posgate_result *ra = NULL, *rb = NULL, *rc = NULL;
    char path[1200], old_auth[300] = "";
    sqlite3 *db = NULL;
    const char *j, *p;

    CHECK_OK(posgate_request_new(&rq));
    CHECK_OK(posgate_result_new(&ra));
    CHECK_OK(posgate_result_new(&rb));
    CHECK_OK(posgate_result_new(&rc));
    CHECK_OK(posgate_request_set_service(rq, "air"));
    CHECK_OK(posgate_request_add_id(rq, hard));
    CHECK_OK(posgate_check(pg, rq, ra));
    CHECK_OK(posgate_check(pg, rq, rb)); /* rendered only after the config changed */
    CHECK_INT(posgate_result_decision(rb), POSGATE_DENY);
    j = posgate_result_json(ra);
    p = j != NULL ? strstr(j, "\"authority\":\"") : NULL;
    CHECK(p != NULL);
    if (p != NULL) {
        p += strlen("\"authority\":\"");
        snprintf(old_auth, sizeof old_auth, "%.*s", (int)strcspn(p, "\""), p);
    }
    CHECK(old_auth[0] != 0);
    /* the feed config changes under the running kiosk (as a new feed version would) */
    snprintf(path, sizeof path, "%s/store.db", kd);
    CHECK_INT(sqlite3_open(path, &db), SQLITE_OK);
    sqlite3_busy_timeout(db, 5000);
    CHECK_INT(sqlite3_exec(db,
                           "UPDATE meta SET value = CAST(replace(CAST(value AS TEXT), "
                           "'\"authority\": \"', '\"authority\": \"Renamed ') AS BLOB) "
                           "WHERE name = 'config'",
                           NULL, NULL, NULL),
              SQLITE_OK);
    CHECK_INT(sqlite3_changes(db), 1);
    sqlite3_close(db); /* (the feed.json as published: "authority": "..." with a space) */
    {
        struct timespec renew = {1, 200 * 1000 * 1000}; /* pooled readers renew within 1 s */

        nanosleep(&renew, NULL);
    }
    CHECK_OK(posgate_check(pg, rq, rc)); /* renews the pooled reader: the old config goes */
    j = posgate_result_json(rc);
    CHECK_CONTAINS(j != NULL ? j : "", "\"authority\":\"Renamed ");
    j = posgate_result_json(rb);
    CHECK_CONTAINS(j != NULL ? j : "", old_auth);
    CHECK(j != NULL && strstr(j, "Renamed ") == NULL);
    posgate_result_free(ra);
    posgate_result_free(rb);
    posgate_result_free(rc);
    posgate_request_free(rq);
}

static void
test_override(struct posgate *pg, const char *audit_path)
{
    struct posgate_request *rq = NULL;
    struct posgate_result *res = NULL;
    struct seen s = {0};
    uint64_t seq;

    CHECK_OK(posgate_request_new(&rq));
    CHECK_OK(posgate_result_new(&res));
    CHECK_ERR(posgate_request_set_override(rq, "", "x"), POSGATE_ERR_INVALID);
    CHECK_ERR(posgate_request_set_override(rq, "sup", "bad\ttext"), POSGATE_ERR_INVALID);
    /* allowed: the listing's reason says override: supervisor */
    CHECK_OK(posgate_request_set_service(rq, "air"));
    CHECK_OK(posgate_request_add_id(rq, ovr));
    CHECK_OK(posgate_request_set_override(rq, "sup-1", "travel permit seen"));
    CHECK_OK(posgate_check(pg, rq, res));
    CHECK_INT(posgate_result_decision(res), POSGATE_ALLOW);
    CHECK_CONTAINS(posgate_result_json(res),
                   "\"override\":{\"by\":\"sup-1\",\"reason\":\"travel permit seen\","
                   "\"overridden_decision\":\"deny\"}");
    seq = posgate_result_audit_seq(res);
    CHECK(seq > 0);
    read_all(audit_path, seq - 1, &s);
    CHECK_INT(s.n, 1);
    if (s.n == 1) {
        CHECK_STR(s.ev[0].decision, "allow");
        CHECK_CONTAINS(s.ev[0].listings, "caac-safety/CAAC-OVR-1");
    }
    seen_free(&s);
    /* refused: override: none; audited as the DENY it stays */
    posgate_request_reset(rq);
    CHECK_OK(posgate_request_set_service(rq, "air"));
    CHECK_OK(posgate_request_add_id(rq, hard));
    CHECK_OK(posgate_request_set_override(rq, "sup-1", "please"));
    CHECK_ERR(posgate_check(pg, rq, res), POSGATE_ERR_INVALID);
    CHECK_INT(posgate_result_decision(res), POSGATE_REFER);
    CHECK_CONTAINS(posgate_result_errmsg(res),
                   "listing SPC-HARD-1 on list spc-enforcement does not allow a supervisor "
                   "override");
    read_all(audit_path, seq, &s);
    CHECK_INT(s.n, 1);
    if (s.n == 1) {
        CHECK_STR(s.ev[0].decision, "deny");
    }
    seen_free(&s);
    /* nothing to override */
    posgate_request_reset(rq);
    CHECK_OK(posgate_request_set_service(rq, "air"));
    CHECK_OK(posgate_request_add_id(rq, clean));
    CHECK_OK(posgate_request_set_override(rq, "sup-1", "why not"));
    CHECK_ERR(posgate_check(pg, rq, res), POSGATE_ERR_INVALID);
    CHECK_CONTAINS(posgate_result_errmsg(res), "nothing to override");
    posgate_request_free(rq);
    posgate_result_free(res);
}

/* ---- events of every size through the ring ---- */

#define SHAPED_EVENTS 2600 /* past 2 x the ring's slots: each slot holds events of each shape */

static void
fill_max(char *s, size_t cap, char c)
{
    memset(s, c, cap - 1);
    s[cap - 1] = 0;
}

/* Event i: an ALLOW naming 0-3 lists, a DENY with reasons, or the largest event (32 lists, 16
 * reasons, an override and an error, its strings at their maximum lengths), which the ring
 * keeps in a slot's ext. The lists' digests change now and then. */
static void
shaped_event(struct audit_event *e, int i)
{
    int shape = i % 6;

    fill_event(e, i, shape == 4 ? AUDIT_DENY : shape == 5 ? AUDIT_REFER : AUDIT_ALLOW, "rail.hsr");
    e->time_us = INT64_C(1795319670000000) + i; /* the same when made again */
    e->mono_us = i;
    e->n_lists = shape < 4 ? (size_t)shape : shape == 4 ? 2 : AUDIT_LISTS_MAX;
    for (size_t j = 0; j < e->n_lists; j++) {
        snprintf(e->lists[j].id, sizeof(e->lists[j].id), "list-%zu", j);
        e->lists[j].seq = 1 + (uint64_t)(i / 500);
        snprintf(e->lists[j].digest, sizeof(e->lists[j].digest), "%064d", i / 500);
    }
    if (shape != 5) {
        return;
    }
    fill_max(e->id, sizeof(e->id), 'a');
    fill_max(e->service, sizeof(e->service), 's');
    fill_max(e->operator_id, sizeof(e->operator_id), 'o');
    fill_max(e->error, sizeof(e->error), 'e');
    e->n_subjects = AUDIT_SUBJECTS_MAX;
    memset(e->subjects, i & 0xff, sizeof(e->subjects));
    for (size_t j = 0; j < e->n_lists; j++) {
        fill_max(e->lists[j].id, sizeof(e->lists[j].id), (char)('A' + j % 26));
        e->lists[j].id[0] = (char)('a' + j % 26); /* 32 distinct ids */
        e->lists[j].id[1] = (char)('a' + j / 26);
    }
    e->lists_more = 3;
    e->n_reasons = AUDIT_REASONS_MAX;
    for (size_t j = 0; j < e->n_reasons; j++) {
        fill_max(e->reasons[j].kind, sizeof(e->reasons[j].kind), 'k');
        fill_max(e->reasons[j].effect, sizeof(e->reasons[j].effect), 'f');
        fill_max(e->reasons[j].list, sizeof(e->reasons[j].list), 'l');
        fill_max(e->reasons[j].listing_id, sizeof(e->reasons[j].listing_id), 'n');
        fill_max(e->reasons[j].reason, sizeof(e->reasons[j].reason), 'r');
    }
    e->has_override = true;
    e->override_refused = i % 2 == 0;
    e->overridden = AUDIT_DENY;
    fill_max(e->override_by, sizeof(e->override_by), 'b');
    fill_max(e->override_reason, sizeof(e->override_reason), 'z');
}

/* Each stored text against audit_event_encode of the event recorded at its seq, with the
 * digests as the queue writes them once (audit_digests_mark) and prev the stored chain's. */
struct shaped_check {
    const char *device_id;
    struct audit_digests digests;
    struct audit_event e;
    struct buf want;
    uint8_t prev[AUDIT_HASH_LEN];
    uint64_t n;
    int differ;
};

static int
shaped_compare(void *ctx, uint64_t seq, const char *body, size_t len,
               const uint8_t hash[AUDIT_HASH_LEN])
{
    struct shaped_check *c = ctx;

    CHECK_INT(seq, c->n + 1);
    shaped_event(&c->e, (int)c->n);
    audit_digests_mark(&c->digests, &c->e);
    buf_reset(&c->want);
    CHECK_OK(audit_event_encode(&c->e, c->device_id, seq, c->prev, &c->want));
    if (len != c->want.len || memcmp(body, c->want.data, len) != 0) {
        if (c->differ++ == 0) {
            fprintf(stderr, "shaped: event %llu is\n  %.*s\nexpected\n  %.*s\n",
                    (unsigned long long)seq, (int)len, body, (int)c->want.len,
                    (const char *)c->want.data);
        }
    }
    memcpy(c->prev, hash, AUDIT_HASH_LEN);
    c->n++;
    return 0;
}

/* Events of every size, up to the largest, through the ring (ALLOWs batched, DENYs and REFERs
 * waited for): the stored texts are those of the events recorded. An event whose slot finds no
 * memory for it is refused with NOMEM, and the queue goes on. */
static void
test_shaped_events(struct device_key *dk, const char *path)
{
    static struct shaped_check c;
    struct audit_options o;
    struct audit_queue *q = NULL;
    struct audit_event *e = malloc(sizeof(*e));
    uint64_t seq = 0;
    char msg[256];
    int bad = 0;

    audit_options_default(&o);
    o.durability = AUDIT_BATCHED;
    o.batch_ms = 2;
    CHECK(e != NULL);
    CHECK_OK(audit_open(path, dk, &o, 0, &q, msg, sizeof(msg)));
    if (q == NULL || e == NULL) {
        free(e);
        return;
    }
    /* a fresh queue: the largest event's slot has no ext yet */
    audit_set_durability(q, AUDIT_STRICT);
    shaped_event(e, 5);
    plat_mem_fail_after(0);
    CHECK_ERR(audit_record(q, e, &seq), POSGATE_ERR_NOMEM);
    plat_mem_fail_after(-1);
    CHECK_INT(seq, 0);
    audit_set_durability(q, AUDIT_BATCHED);
    for (int i = 0; i < SHAPED_EVENTS; i++) {
        shaped_event(e, i);
        if (audit_record(q, e, &seq) != POSGATE_OK || (e->decision != AUDIT_ALLOW && seq == 0)) {
            bad++;
        }
    }
    CHECK_INT(bad, 0);
    CHECK_OK(audit_flush(q));
    test_audit_verify_ok(q, "shaped");
    audit_close(q);
    c.device_id = device_key_id(dk);
    buf_init(&c.want, AUDIT_EVENT_MAX);
    CHECK_OK(audit_open(path, NULL, NULL, AUDIT_READONLY, &q, msg, sizeof(msg)));
    if (q != NULL) {
        CHECK_OK(audit_each(q, 0, shaped_compare, &c));
    }
    audit_close(q);
    CHECK_INT(c.n, SHAPED_EVENTS); /* none folded, the refused one not among them */
    CHECK_INT(c.differ, 0);
    buf_free(&c.want);
    free(e);
}

int
main(void)
{
    const char *bin = getenv("POSGATE_BIN"), *src = getenv("POSGATE_TEST_SRC");
    char cmd[4096], path[1200], apath[1200], qpath[1200], kp[1200], pp[1200], msg[512];
    struct posgate *pg = NULL;
    struct posgate_request *rq = NULL;
    struct posgate_result *res = NULL;
    struct device_key *dk = NULL;
    struct audit_queue *q = NULL;
    struct audit_event e;
    struct audit_options o;
    enum audit_durability d;
    struct stat sb;
    struct seen s = {0};

    if (bin == NULL || src == NULL) {
        fprintf(stderr, "POSGATE_BIN and POSGATE_TEST_SRC must be set (ctest sets them)\n");
        return 1;
    }
    if (mkdtemp(dir) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    test_request_reset();
    /* the safety cases */
    audit_options_default(&o);
    CHECK_INT(o.durability, AUDIT_STRICT);
    CHECK_INT(o.batch_ms, 50);
    CHECK_INT(o.batch_max, 256);
    CHECK_ERR(audit_durability_parse("fast", &d), POSGATE_ERR_INVALID);
    CHECK_ERR(audit_durability_parse(NULL, &d), POSGATE_ERR_INVALID);
    CHECK_OK(audit_durability_parse("batched", &d));
    CHECK_INT(d, AUDIT_BATCHED);
    snprintf(qpath, sizeof(qpath), "%s/q.db", dir);
    CHECK_ERR(audit_open(qpath, NULL, NULL, 0, &q, msg, sizeof(msg)), POSGATE_ERR_INVALID);
    CHECK_ERR(audit_open(NULL, NULL, NULL, AUDIT_READONLY, &q, msg, sizeof(msg)),
              POSGATE_ERR_INVALID);
    CHECK_ERR(audit_open(qpath, NULL, NULL, AUDIT_READONLY, &q, msg, sizeof(msg)),
              POSGATE_ERR_NOTFOUND);
    CHECK(q == NULL);
    CHECK_ERR(audit_record(NULL, &e, NULL), POSGATE_ERR_INVALID);
    CHECK_ERR(audit_ack(NULL, 1), POSGATE_ERR_INVALID);
    CHECK_ERR(posgate_set_audit_durability(NULL, "strict"), POSGATE_ERR_INVALID);
    audit_close(NULL);
    device_key_free(NULL);
    snprintf(kp, sizeof(kp), "%s/dev.key", dir);
    snprintf(pp, sizeof(pp), "%s/dev.pub", dir);
    CHECK_ERR(device_key_load(kp, pp, &dk, msg, sizeof(msg)), POSGATE_ERR_NOTFOUND);
    CHECK_OK(device_key_create(kp, pp, msg, sizeof(msg)));
    CHECK_ERR(device_key_create(kp, pp, msg, sizeof(msg)), POSGATE_ERR_STATE);
    CHECK_INT(stat(kp, &sb), 0);
    CHECK_INT(sb.st_mode & 0777, 0600);
    CHECK_OK(device_key_load(kp, pp, &dk, msg, sizeof(msg)));
    CHECK_INT(strlen(device_key_id(dk)), DEVICE_ID_HEX_LEN);
    {
        char id[DEVICE_ID_HEX_LEN + 1];
        const char *pem = device_key_pub_pem(dk);

        device_id_from_pub_pem(pem, strlen(pem), id);
        CHECK_STR(id, device_key_id(dk));
    }
    /* a device.pub that is not device.key's: loads (the id is the file's) but never signs */
    {
        char kp2[1300], pp2[1300], cmd2[2800];
        struct device_key *dk2 = NULL;
        struct buf sig = BUF_INIT(256);

        snprintf(kp2, sizeof(kp2), "%s/dev2.key", dir);
        snprintf(pp2, sizeof(pp2), "%s/dev2.pub", dir);
        CHECK_OK(device_key_create(kp2, pp2, msg, sizeof(msg)));
        snprintf(cmd2, sizeof(cmd2), "cp '%s' '%s'", pp, pp2);
        CHECK_INT(system(cmd2), 0);
        CHECK_OK(device_key_load(kp2, pp2, &dk2, msg, sizeof(msg)));
        CHECK_STR(device_key_id(dk2), device_key_id(dk));
        CHECK_ERR(device_key_sign(dk2, "x", 1, &sig), POSGATE_ERR_CORRUPT);
        CHECK_OK(device_key_sign(dk, "x", 1, &sig));
        device_key_free(dk2);
        buf_free(&sig);
        /* without device.pub it is derived from the key and written */
        CHECK_INT(unlink(pp2), 0);
        CHECK_OK(device_key_load(kp2, pp2, &dk2, msg, sizeof(msg)));
        CHECK(strcmp(device_key_id(dk2), device_key_id(dk)) != 0);
        CHECK_INT(stat(pp2, &sb), 0);
        device_key_free(dk2);
    }
    /* a read-only queue refuses to record */
    CHECK_OK(audit_open(qpath, dk, NULL, 0, &q, msg, sizeof(msg)));
    audit_close(q);
    q = NULL;
    CHECK_OK(audit_open(qpath, NULL, NULL, AUDIT_READONLY, &q, msg, sizeof(msg)));
    fill_event(&e, 1, AUDIT_DENY, "air");
    CHECK_ERR(audit_record(q, &e, NULL), POSGATE_ERR_STATE);
    audit_close(q);
    q = NULL;

    test_prune_and_tamper(dk, qpath);
    snprintf(qpath, sizeof(qpath), "%s/two.db", dir);
    test_other_writers(dk, qpath);
    snprintf(qpath, sizeof(qpath), "%s/killed.db", dir);
    test_bytes_after_kill(dk, qpath);
    snprintf(qpath, sizeof(qpath), "%s/older.db", dir);
    test_bytes_older_writer(dk, qpath);
    snprintf(qpath, sizeof(qpath), "%s/pages.db", dir);
    snprintf(path, sizeof(path), "%s/pages4k.db", dir);
    test_page_size(dk, qpath, path);
    snprintf(qpath, sizeof(qpath), "%s/digests.db", dir);
    test_digests_once(dk, qpath);
    snprintf(qpath, sizeof(qpath), "%s/full.db", dir);
    test_full_queue(dk, qpath);
    snprintf(qpath, sizeof(qpath), "%s/ring.db", dir);
    test_ring_order(dk, qpath);
    snprintf(qpath, sizeof(qpath), "%s/prod1.db", dir);
    snprintf(path, sizeof(path), "%s/prod4.db", dir);
    test_producer_commits(dk, qpath, path);
    snprintf(qpath, sizeof(qpath), "%s/shaped.db", dir);
    test_shaped_events(dk, qpath);

    /* a real kiosk */
    snprintf(cmd, sizeof(cmd), "bash '%s/integration/audit_fixture.sh' '%s' '%s/fx'", src, bin,
             dir);
    CHECK_INT(system(cmd), 0);
    snprintf(path, sizeof(path), "%s/fx/subjects.env", dir);
    CHECK(read_subjects(path));
    snprintf(kdir, sizeof(kdir), "%s/fx/k", dir);
    snprintf(apath, sizeof(apath), "%s/audit.db", kdir);
    CHECK_OK(posgate_open(kdir, &pg));
    if (pg == NULL || test_failures != 0) {
        goto out;
    }
    CHECK_ERR(posgate_set_audit_durability(pg, "fast"), POSGATE_ERR_INVALID);
    /* strict durability: the DENY is on disk for another connection the moment check returns */
    CHECK_OK(posgate_request_new(&rq));
    CHECK_OK(posgate_result_new(&res));
    CHECK_OK(posgate_request_set_service(rq, "air"));
    CHECK_OK(posgate_request_add_id(rq, hard));
    CHECK_OK(posgate_request_set_operator(rq, "clerk-9"));
    CHECK_OK(posgate_check(pg, rq, res));
    CHECK_INT(posgate_result_decision(res), POSGATE_DENY);
    CHECK(posgate_result_audit_seq(res) > 0);
    read_all(apath, posgate_result_audit_seq(res) - 1, &s);
    CHECK_INT(s.n, 1);
    if (s.n == 1) {
        CHECK_STR(s.ids[0], posgate_result_decision_id(res));
        CHECK_STR(s.ev[0].decision, "deny");
        CHECK_STR(s.ev[0].operator_id, "clerk-9");
        CHECK_STR(s.ev[0].device_id, device_key_id(pg->dk));
        CHECK_CONTAINS(s.ev[0].listings, "spc-enforcement/SPC-HARD-1");
        /* the lists that took part, in the store's order: the two whose reasons cover air
         * (not rail-safety), each with its digest on the chain's first decision */
        CHECK(strstr(event_text(apath, posgate_result_audit_seq(res)),
                     "\"id\":\"spc-enforcement\",\"seq\":1},{\"digest\":") != NULL);
        CHECK(strstr(event_text(apath, posgate_result_audit_seq(res)),
                     "\"id\":\"caac-safety\",\"seq\":1}],") != NULL);
        CHECK(strstr(event_text(apath, posgate_result_audit_seq(res)), "rail-safety") == NULL);
    }
    seen_free(&s);
    /* never an identifier in clear */
    {
        struct buf b = BUF_INIT(1u << 20);
        const char *digits = strchr(hard, ':') + 1;

        CHECK_OK(audit_batch_json(pg->audit, 0, 1000, &b, NULL));
        CHECK(strstr(buf_cstr(&b), digits) == NULL);
        buf_free(&b);
    }
    test_override(pg, apath);
    concurrent(pg, "strict", 60, apath);
    concurrent(pg, "batched", 150, apath);
    test_deny_group(pg, apath);
    test_deny_group_failure(pg, apath);
    test_deny_group(pg, apath); /* and the queue goes on after the failure */
    test_batched_bounds(pg, apath);
    check_batch(pg->audit, pg->dk, 0);
    check_batch(pg->audit, pg->dk, 7);
    test_audit_verify_ok(pg->audit, "end");
    test_texts_outlive_config(pg, kdir);
out:
    posgate_request_free(rq);
    posgate_result_free(res);
    posgate_close(pg);
    device_key_free(dk);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0) {
        fprintf(stderr, "could not remove %s\n", dir);
    }
    return test_summary("audit");
}
