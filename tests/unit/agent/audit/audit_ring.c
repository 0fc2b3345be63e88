/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The audit queue's ring under several recording threads (agent/audit/audit.c, audit_pack.c):
 * batched ALLOWs of bursts that stop right after filling a batch committed within batch_ms (not
 * twice that); a ring filled by many threads never stalled until the writer's deadline; ALLOWs,
 * DENYs and REFERs of many threads with tiny batches and durability switched mid-run leaving one
 * event each, contiguous, in each thread's order, each DENY at the seq it was told; events at
 * the packed slot's size boundaries round-tripped and recorded by many threads; a commit failing
 * under producers that commit inline carrying every ALLOW into a summary, and a refused commit
 * (not a full disk) leaving the disk's reserve in place.
 */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>
#include <sqlite3.h>

#include "audit.h"
#include "audit_pack.h"
#include "device_key.h"
#include "json_canon.h"
#include "plat_clock.h"
#include "test.h"
#include "test_audit.h"

static char dir[] = "/tmp/posgate-ring-XXXXXX";
static struct device_key *dk;

static void
fill_event(struct audit_event *e, int id, enum audit_decision d)
{
    memset(e, 0, sizeof(*e));
    snprintf(e->id, sizeof(e->id), "%032x", (unsigned)id);
    e->time_us = plat_wall_us();
    e->mono_us = (int64_t)(plat_mono_ns() / 1000u);
    e->decision = d;
    snprintf(e->service, sizeof(e->service), "air");
    snprintf(e->operator_id, sizeof(e->operator_id), "op");
    e->n_subjects = 1;
    memset(e->subjects[0], id & 0xff, AUDIT_SUBJECT_LEN);
    e->data_age_s = 5;
    e->feed_version = 1;
    if (d != AUDIT_ALLOW) {
        e->n_reasons = 1;
        snprintf(e->reasons[0].kind, sizeof(e->reasons[0].kind), "match");
        snprintf(e->reasons[0].effect, sizeof(e->reasons[0].effect), "%s", audit_decision_name(d));
        snprintf(e->reasons[0].list, sizeof(e->reasons[0].list), "list-a");
        snprintf(e->reasons[0].listing_id, sizeof(e->reasons[0].listing_id), "L-%d", id);
    }
}

static struct audit_queue *
open_queue(const char *name, uint32_t batch_ms, uint32_t batch_max, enum audit_durability d)
{
    struct audit_options o;
    struct audit_queue *q = NULL;
    char path[1200], msg[256];

    audit_options_default(&o);
    o.durability = d;
    o.batch_ms = batch_ms;
    o.batch_max = batch_max;
    o.max_bytes = 0;
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    CHECK_OK(audit_open(path, dk, &o, 0, &q, msg, sizeof(msg)));
    return q;
}

static uint64_t
pending(struct audit_queue *q)
{
    struct audit_stats st;

    CHECK_OK(audit_stats(q, &st));
    return st.pending;
}

/* ---- every event as stored: its decision id, decision, summary count ---- */

struct stored {
    size_t n, cap;
    uint64_t first;
    int *id;       /* -1: a summary */
    char *dec;     /* 'a', 'd', 'r' */
    uint64_t *cnt; /* a summary's count */
};

static int
collect(void *ctx, uint64_t seq, const char *body, size_t len, const uint8_t hash[AUDIT_HASH_LEN])
{
    struct stored *s = ctx;
    cJSON *root = NULL;
    char msg[128];

    (void)hash;
    if (s->n == s->cap) {
        s->cap = s->cap ? 2 * s->cap : 1024;
        s->id = realloc(s->id, s->cap * sizeof(*s->id));
        s->dec = realloc(s->dec, s->cap);
        s->cnt = realloc(s->cnt, s->cap * sizeof(*s->cnt));
    }
    if (s->n == 0) {
        s->first = seq;
    }
    CHECK_INT(seq, s->first + s->n);
    s->id[s->n] = -1;
    s->dec[s->n] = '?';
    s->cnt[s->n] = 0;
    if (json_parse_bounded(body, len, AUDIT_EVENT_MAX, &root, msg, sizeof(msg)) == POSGATE_OK) {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(root, "id");
        const cJSON *d = cJSON_GetObjectItemCaseSensitive(root, "decision");
        const cJSON *c = cJSON_GetObjectItemCaseSensitive(root, "count");

        if (cJSON_IsString(id)) {
            s->id[s->n] = (int)strtol(id->valuestring, NULL, 16);
        }
        if (cJSON_IsString(d)) {
            s->dec[s->n] = d->valuestring[0];
        }
        if (cJSON_IsNumber(c)) {
            s->cnt[s->n] = (uint64_t)c->valuedouble;
            s->dec[s->n] = 'a'; /* an allow_summary */
        }
        cJSON_Delete(root);
    }
    s->n++;
    return 0;
}

static void
stored_free(struct stored *s)
{
    free(s->id);
    free(s->dec);
    free(s->cnt);
    memset(s, 0, sizeof(*s));
}

/* ---- bursts that stop right after filling a batch ---- */

struct burst {
    struct audit_queue *q;
    int t, n;
    atomic_int *go;
    uint64_t max_ns; /* the slowest audit_record */
    int err;
};

static void *
burst_main(void *arg)
{
    struct burst *b = arg;
    struct audit_event e;

    while (atomic_load(b->go) == 0) {
    }
    for (int i = 0; i < b->n; i++) {
        uint64_t t0;
        uint64_t dt;

        fill_event(&e, b->t << 20 | i, AUDIT_ALLOW);
        t0 = plat_mono_ns();
        b->err += audit_record(b->q, &e, NULL) != POSGATE_OK;
        dt = plat_mono_ns() - t0;
        b->max_ns = dt > b->max_ns ? dt : b->max_ns;
    }
    return NULL;
}

/* threads record per-thread events each (their sum ending right after a full batch), then stop:
 * returns the ms from the last return to nothing pending */
static uint64_t
run_burst(struct audit_queue *q, int threads, int per_thread, uint64_t *max_record_ns)
{
    pthread_t th[16];
    struct burst b[16];
    atomic_int go = 0;
    uint64_t t0;

    for (int i = 0; i < threads; i++) {
        b[i] = (struct burst){q, i + 1, per_thread, &go, 0, 0};
        CHECK_INT(pthread_create(&th[i], NULL, burst_main, &b[i]), 0);
    }
    atomic_store(&go, 1);
    for (int i = 0; i < threads; i++) {
        pthread_join(th[i], NULL);
        CHECK_INT(b[i].err, 0);
        *max_record_ns = b[i].max_ns > *max_record_ns ? b[i].max_ns : *max_record_ns;
    }
    t0 = plat_mono_ns();
    while (pending(q) > 0 && plat_mono_ns() - t0 < 5000000000u) {
        nanosleep(&(struct timespec){0, 1000000}, NULL);
    }
    return (plat_mono_ns() - t0) / 1000000u;
}

static void
test_burst_stop(void)
{
    struct audit_queue *q = open_queue("burst.db", 250, 256, AUDIT_BATCHED);
    uint64_t worst = 0, max_rec = 0;

    if (q == NULL) {
        return;
    }
    for (int r = 0; r < 20; r++) {
        /* 4 x 129 = 516: two full batches and 4 more, or 4 x 64 = one batch exactly */
        uint64_t ms = run_burst(q, 4, r % 2 ? 129 : 64, &max_rec);

        worst = ms > worst ? ms : worst;
    }
    printf("burst: the last events committed at most %llu ms after the burst stopped\n",
           (unsigned long long)worst);
    CHECK(worst < 400); /* batch_ms and slack for a loaded machine, not 2 x batch_ms */
    test_audit_verify_ok(q, "burst");
    audit_close(q);
}

/* Many threads fill the ring of a queue whose writer commits every second: the threads that fill
 * full batches commit them, and a full ring waits only for a commit, never for that deadline. */
static void
test_ring_full(void)
{
    struct audit_queue *q = open_queue("full.db", 1000, 256, AUDIT_BATCHED);
    uint64_t max_rec = 0, ms;

    if (q == NULL) {
        return;
    }
    ms = run_burst(q, 12, 6000, &max_rec);
    printf("ring full: slowest batched ALLOW %llu ms, the rest committed %llu ms after\n",
           (unsigned long long)(max_rec / 1000000u), (unsigned long long)ms);
    CHECK(max_rec < 500000000u);
    test_audit_verify_ok(q, "ring full");
    audit_close(q);
}

/* ---- a mix of decisions from many threads, durability switched mid-run ---- */

#define MIX_THREADS 6
#define MIX_N       1500

struct mixer {
    struct audit_queue *q;
    int t;
    uint64_t told[MIX_N]; /* seq told to a DENY / REFER / strict ALLOW, else 0 */
    int err;
};

static void *
mix_main(void *arg)
{
    struct mixer *m = arg;
    struct audit_event e;

    for (int i = 0; i < MIX_N; i++) {
        int k = (i * 7 + m->t) % 11;
        enum audit_decision d = k == 0 ? AUDIT_DENY : k == 1 ? AUDIT_REFER : AUDIT_ALLOW;

        fill_event(&e, m->t << 20 | i, d);
        if (audit_record(m->q, &e, &m->told[i]) != POSGATE_OK) {
            m->err++;
        }
        if (d != AUDIT_ALLOW && m->told[i] == 0) {
            m->err++;
        }
    }
    return NULL;
}

struct toggler {
    struct audit_queue *q;
    atomic_int stop;
};

static void *
toggle_main(void *arg)
{
    struct toggler *tg = arg;

    for (int i = 0; !atomic_load(&tg->stop); i++) {
        audit_set_durability(tg->q, i % 2 ? AUDIT_STRICT : AUDIT_BATCHED);
        nanosleep(&(struct timespec){0, 3000000}, NULL);
    }
    audit_set_durability(tg->q, AUDIT_BATCHED);
    return NULL;
}

static void
test_mix(const char *name, uint32_t batch_ms, uint32_t batch_max)
{
    static struct mixer m[MIX_THREADS];
    struct toggler tg = {0};
    pthread_t th[MIX_THREADS], tt;
    struct audit_queue *q = open_queue(name, batch_ms, batch_max, AUDIT_BATCHED);
    struct stored s = {0};
    int last[MIX_THREADS + 1], n_told = 0, bad_told = 0, bad_order = 0;
    size_t counts[MIX_THREADS + 1] = {0};

    if (q == NULL) {
        return;
    }
    tg.q = q;
    CHECK_INT(pthread_create(&tt, NULL, toggle_main, &tg), 0);
    for (int i = 0; i < MIX_THREADS; i++) {
        memset(&m[i], 0, sizeof(m[i]));
        m[i].q = q;
        m[i].t = i + 1;
        CHECK_INT(pthread_create(&th[i], NULL, mix_main, &m[i]), 0);
    }
    for (int i = 0; i < MIX_THREADS; i++) {
        pthread_join(th[i], NULL);
        CHECK_INT(m[i].err, 0);
    }
    atomic_store(&tg.stop, 1);
    pthread_join(tt, NULL);
    CHECK_OK(audit_flush(q));
    test_audit_verify_ok(q, name);
    CHECK_OK(audit_each(q, 0, collect, &s));
    CHECK_INT(s.n, (size_t)MIX_THREADS * MIX_N);
    for (int t = 0; t <= MIX_THREADS; t++) {
        last[t] = -1;
    }
    for (size_t i = 0; i < s.n; i++) {
        int t = s.id[i] >> 20, k = s.id[i] & 0xfffff;

        if (s.id[i] < 0 || t < 1 || t > MIX_THREADS || k >= MIX_N) {
            CHECK_FAIL("an event that no thread recorded");
            continue;
        }
        if (k <= last[t]) {
            bad_order++;
        }
        last[t] = k;
        counts[t]++;
        if (m[t - 1].told[k] != 0) {
            n_told++;
            bad_told += m[t - 1].told[k] != s.first + i;
        }
    }
    for (int t = 1; t <= MIX_THREADS; t++) {
        CHECK_INT(counts[t], MIX_N);
    }
    CHECK_INT(bad_order, 0);
    CHECK_INT(bad_told, 0);
    CHECK(n_told > 0);
    printf("mix %s: %zu events, %d seqs told, all in place\n", name, s.n, n_told);
    stored_free(&s);
    audit_close(q);
}

/* ---- the packed slot's size boundaries ---- */

/* An event whose packed size is want (error text sized to fit), or 0 when none is. */
static size_t
sized_event(struct audit_event *e, int id, size_t want)
{
    uint8_t big[AUDIT_PACKED_MAX];
    size_t base, n;

    fill_event(e, id, AUDIT_DENY);
    e->n_lists = 11;
    for (size_t j = 0; j < e->n_lists; j++) {
        snprintf(e->lists[j].id, sizeof(e->lists[j].id), "list-%02u-%040d", (unsigned)(j % 100), 0);
        e->lists[j].seq = 1;
        snprintf(e->lists[j].digest, sizeof(e->lists[j].digest), "%064d", 7);
    }
    e->error[0] = 'x';
    e->error[1] = 0;
    base = audit_event_pack(e, big, sizeof(big)) - 1;
    if (want < base + 1 || want - base >= sizeof(e->error)) {
        return 0;
    }
    memset(e->error, 'e', want - base);
    e->error[want - base] = 0;
    n = audit_event_pack(e, big, sizeof(big));
    return n;
}

struct sizer {
    struct audit_queue *q;
    int t;
    int err;
};

static const size_t sizes[] = {AUDIT_PACKED_INLINE - 1, AUDIT_PACKED_INLINE,
                               AUDIT_PACKED_INLINE + 1, AUDIT_PACKED_INLINE + 2, 0};

static void *
size_main(void *arg)
{
    struct sizer *z = arg;
    struct audit_event *e = malloc(sizeof(*e));

    for (int i = 0; e != NULL && i < 800; i++) {
        size_t want = sizes[i % 5];
        uint64_t seq = 0;

        if (want != 0) {
            (void)sized_event(e, z->t << 20 | i, want);
        } else {
            fill_event(e, z->t << 20 | i, AUDIT_ALLOW);
        }
        if (i % 3 == 0) {
            e->decision = AUDIT_ALLOW;
        }
        if (audit_record(z->q, e, &seq) != POSGATE_OK) {
            z->err++;
        }
    }
    free(e);
    return NULL;
}

static void
test_sizes(void)
{
    static uint8_t a[AUDIT_PACKED_MAX];
    struct audit_event *e = malloc(sizeof(*e)), *back = malloc(sizeof(*back));
    struct buf x = BUF_INIT(AUDIT_EVENT_MAX), y = BUF_INIT(AUDIT_EVENT_MAX);
    uint8_t prev[AUDIT_HASH_LEN] = {0};
    struct audit_packed p;
    pthread_t th[6];
    struct sizer z[6];
    struct audit_queue *q;

    CHECK(e != NULL && back != NULL);
    if (e == NULL || back == NULL) {
        goto out;
    }
    /* the safety case: a slot that holds no event (its store found no memory) loads none */
    memset(&p, 0, sizeof(p));
    CHECK(!audit_packed_load(&p, back));
    /* each boundary size packs as such, in place or in ext, and unpacks to the same text */
    for (int i = 0; i < 4; i++) {
        memset(&p, 0, sizeof(p));
        CHECK_INT(sized_event(e, i, sizes[i]), sizes[i]);
        CHECK_OK(audit_packed_store(&p, e));
        CHECK(p.event == (sizes[i] <= AUDIT_PACKED_INLINE ? p.bytes : p.ext));
        memset(back, 0x5a, sizeof(*back));
        CHECK(audit_packed_load(&p, back));
        buf_reset(&x);
        buf_reset(&y);
        CHECK_OK(audit_event_encode(e, "dev", 1, prev, &x));
        CHECK_OK(audit_event_encode(back, "dev", 1, prev, &y));
        CHECK(x.len == y.len && memcmp(x.data, y.data, x.len) == 0);
        audit_packed_cleanup(&p);
    }
    CHECK_INT(audit_event_pack(e, a, AUDIT_PACKED_INLINE + 1), 0);
    q = open_queue("sizes.db", 1, 2, AUDIT_BATCHED);
    if (q == NULL) {
        goto out;
    }
    for (int i = 0; i < 6; i++) {
        z[i] = (struct sizer){q, i + 1, 0};
        CHECK_INT(pthread_create(&th[i], NULL, size_main, &z[i]), 0);
    }
    for (int i = 0; i < 6; i++) {
        pthread_join(th[i], NULL);
        CHECK_INT(z[i].err, 0);
    }
    CHECK_OK(audit_flush(q));
    test_audit_verify_ok(q, "sizes");
    audit_close(q);
out:
    buf_free(&x);
    buf_free(&y);
    free(e);
    free(back);
}

/* ---- a commit that fails while producers commit inline ---- */

struct faulter {
    struct audit_queue *q;
    int t, n;
    int allow_ok, deny_ok, deny_err, other_err;
};

static void *
fault_main(void *arg)
{
    struct faulter *f = arg;
    struct audit_event e;

    for (int i = 0; i < f->n; i++) {
        int deny = i % 50 == 49;
        uint64_t seq = 0;
        enum posgate_err err;

        fill_event(&e, f->t << 20 | i, deny ? AUDIT_DENY : AUDIT_ALLOW);
        if (deny && i % 100 == 99) {
            snprintf(e.operator_id, sizeof(e.operator_id), "fault-op");
        }
        err = audit_record(f->q, &e, &seq);
        if (!deny) {
            f->allow_ok += err == POSGATE_OK;
            f->other_err += err != POSGATE_OK;
        } else if (err == POSGATE_OK && seq > 0) {
            f->deny_ok++;
        } else if (err != POSGATE_OK && seq == 0) {
            f->deny_err++;
        } else {
            f->other_err++;
        }
    }
    return NULL;
}

static void
test_commit_failure(void)
{
    struct audit_queue *q = open_queue("fault.db", 5, 16, AUDIT_BATCHED);
    struct faulter f[6];
    pthread_t th[6];
    struct stored s = {0};
    uint64_t allows = 0, in_chain = 0, denies_ok = 0, deny_rows = 0;
    sqlite3 *db = NULL;
    char path[1200];

    if (q == NULL) {
        return;
    }
    snprintf(path, sizeof(path), "%s/fault.db", dir);
    CHECK_INT(sqlite3_open(path, &db), SQLITE_OK);
    sqlite3_busy_timeout(db, 5000);
    CHECK_INT(sqlite3_exec(db,
                           "CREATE TRIGGER fault BEFORE INSERT ON events "
                           "WHEN instr(CAST(NEW.body AS TEXT), 'fault-op') > 0 "
                           "BEGIN SELECT RAISE(ABORT, 'injected fault'); END",
                           NULL, NULL, NULL),
              SQLITE_OK);
    sqlite3_close(db);
    for (int i = 0; i < 6; i++) {
        f[i] = (struct faulter){q, i + 1, 2000, 0, 0, 0, 0};
        CHECK_INT(pthread_create(&th[i], NULL, fault_main, &f[i]), 0);
    }
    for (int i = 0; i < 6; i++) {
        pthread_join(th[i], NULL);
        CHECK_INT(f[i].other_err, 0);
        CHECK(f[i].deny_err >= 20); /* its own fault events, and those committed with them */
        allows += (uint64_t)f[i].allow_ok;
        denies_ok += (uint64_t)f[i].deny_ok;
    }
    CHECK_OK(audit_flush(q));
    /* the carried summary, if the last commit failed, goes with the next commit */
    {
        struct audit_event e;
        uint64_t seq = 0;

        fill_event(&e, 0xfffff, AUDIT_DENY);
        CHECK_OK(audit_record(q, &e, &seq));
        CHECK(seq > 0);
    }
    test_audit_verify_ok(q, "fault");
    CHECK_OK(audit_each(q, 0, collect, &s));
    for (size_t i = 0; i < s.n; i++) {
        if (s.id[i] < 0 && s.dec[i] == 'a') {
            in_chain += s.cnt[i];
        } else if (s.dec[i] == 'a') {
            in_chain++;
        } else if (s.id[i] != 0xfffff) {
            deny_rows++;
        }
    }
    CHECK_INT(in_chain, allows);
    CHECK_INT(deny_rows, denies_ok);
    printf("fault: %llu ALLOWs all counted, %llu DENYs stored\n", (unsigned long long)allows,
           (unsigned long long)denies_ok);
    stored_free(&s);
    audit_close(q);
}

/* A commit refused for a reason other than room (a trigger's abort here) leaves the disk's
 * reserve in place: it is given back only to a full disk, and "disk full" is not logged. */
static void
test_reserve_kept(void)
{
    struct audit_queue *q = open_queue("keep.db", 5, 16, AUDIT_BATCHED);
    struct audit_stats st;
    struct audit_event e;
    uint64_t seq = 0;
    sqlite3 *db = NULL;
    char path[1200];

    if (q == NULL) {
        return;
    }
    CHECK_OK(audit_stats(q, &st));
    CHECK_INT(st.reserve_bytes, AUDIT_RESERVE_BYTES);
    snprintf(path, sizeof(path), "%s/keep.db", dir);
    CHECK_INT(sqlite3_open(path, &db), SQLITE_OK);
    CHECK_INT(sqlite3_exec(db,
                           "CREATE TRIGGER fault BEFORE INSERT ON events "
                           "BEGIN SELECT RAISE(ABORT, 'injected fault'); END",
                           NULL, NULL, NULL),
              SQLITE_OK);
    sqlite3_close(db);
    fill_event(&e, 1, AUDIT_DENY);
    CHECK(audit_record(q, &e, &seq) != POSGATE_OK);
    CHECK_INT(seq, 0);
    CHECK_OK(audit_stats(q, &st));
    CHECK_INT(st.reserve_bytes, AUDIT_RESERVE_BYTES);
    CHECK_INT(st.disk_full, 0);
    audit_close(q);
}

int
main(void)
{
    char kp[1200], pp[1200], msg[256], cmd[1300];

    if (mkdtemp(dir) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    snprintf(kp, sizeof(kp), "%s/dev.key", dir);
    snprintf(pp, sizeof(pp), "%s/dev.pub", dir);
    CHECK_OK(device_key_create(kp, pp, msg, sizeof(msg)));
    CHECK_OK(device_key_load(kp, pp, &dk, msg, sizeof(msg)));
    if (dk != NULL) {
        const char *only = getenv("RING_ONLY");

        if (only == NULL || strstr(only, "burst")) {
            test_burst_stop();
        }
        if (only == NULL || strstr(only, "full")) {
            test_ring_full();
        }
        if (only == NULL || strstr(only, "mix")) {
            test_mix("mix1.db", 1, 1);
            test_mix("mix2.db", 1, 2);
            test_mix("mix256.db", 50, 256);
        }
        if (only == NULL || strstr(only, "sizes")) {
            test_sizes();
        }
        if (only == NULL || strstr(only, "fault")) {
            test_commit_failure();
            test_reserve_kept();
        }
    }
    device_key_free(dk);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0) {
        fprintf(stderr, "could not remove %s\n", dir);
    }
    return test_summary("audit_ring");
}
