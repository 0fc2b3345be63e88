/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The audit queue (audit.h), its writing half: the SQLite file's writer connection, the ring of
 * events, the writer thread with its group commit, and folding under a full queue. The reads,
 * acknowledgements, pruning, signed batches and chain verification are in audit_read.c; the
 * state both share in audit_queue.h. SQLite is included by agent/audit and the list store only.
 */
#define _POSIX_C_SOURCE 200809L
#include "audit.h"
#include "audit_db.h"
#include "audit_pack.h"
#include "audit_prune.h"
#include "audit_queue.h"
#include "audit_reserve.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <sqlite3.h>

#include "crypto.h"
#include "plat_clock.h"
#include "plat_log.h"
#include "plat_mem.h"
#include "plat_thread.h"

#define RING_CAP        1024
#define IDLE_RETRY_MS   1000
/* meta 'bytes' is written when it lags the chain by this many events (or a commit pruned): an
 * open, or a commit after another connection wrote, adds up at most these events' text */
#define BYTES_LAG_MAX 1024

/* A slot's producer: the address of this thread-local byte, unique among live threads. */
static _Thread_local char producer_mark;

void
audit_options_default(struct audit_options *o)
{
    memset(o, 0, sizeof(*o));
    o->durability = AUDIT_STRICT;
    o->max_bytes = 256ull << 20;
    o->retention_days = 30;
    o->batch_ms = 50;
    o->batch_max = 256;
}

enum posgate_err
audit_durability_parse(const char *s, enum audit_durability *out)
{
    if (s != NULL && strcmp(s, "strict") == 0) {
        *out = AUDIT_STRICT;
    } else if (s != NULL && strcmp(s, "batched") == 0) {
        *out = AUDIT_BATCHED;
    } else {
        return POSGATE_ERR_INVALID;
    }
    return POSGATE_OK;
}

static enum posgate_err
prepare(sqlite3 *db, const char *sql, sqlite3_stmt **st, char *errmsg, size_t errcap)
{
    int rc = sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, st, NULL);

    return rc == SQLITE_OK ? POSGATE_OK : audit_sql_err(db, rc, sql, errmsg, errcap);
}

/* The committer's care of the reserve (audit_reserve.h), its size copied for audit_stats. */
static int
reserve_tend(struct audit_queue *q, int failed)
{
    int room;

    if (!failed && plat_mono_ns() < q->res.next_ns) {
        return 0;
    }
    room = audit_reserve_tend(&q->res, failed);
    pthread_mutex_lock(&q->mu);
    q->reserve_bytes = q->res.bytes;
    pthread_mutex_unlock(&q->mu);
    return room;
}

/* The event of s, unpacked into the committer's q->ev (in cache); NULL when s holds none. */
static struct audit_event *
slot_event(struct audit_queue *q, const struct slot *s)
{
    return audit_packed_load(&s->ev, &q->ev) ? &q->ev : NULL;
}

/* ---- the writer ---- */

/* Whether the oldest ticket not taken by a commit is published (under q->mu). */
static int
head_published(struct audit_queue *q)
{
    uint64_t h = atomic_load_explicit(&q->taken, memory_order_relaxed);

    return atomic_load_explicit(&q->ring[h % RING_CAP]->ready, memory_order_acquire) == h + 1;
}

/* The writer sleeps (q->mu held) for `why` (WRITER_IDLE or WRITER_BATCH) unless what it would
 * sleep for is there already. It stores wsleep before it reads tail, and a producer takes its
 * ticket from tail before it reads wsleep (all seq_cst), so one of the two sees the other: the
 * writer a ticket (published or about to be), or the producer a sleeping writer, which it wakes
 * once its event is published. ts: deadline, NULL: none. */
static void
writer_sleep(struct audit_queue *q, int why, const struct timespec *ts)
{
    int ready;

    atomic_store(&q->wsleep, why);
    ready = why == WRITER_IDLE ? audit_queued(q) > 0
                               : audit_queued(q) >= q->batch_max && !atomic_load(&q->multi);
    if (!ready) {
        if (ts != NULL) {
            pthread_cond_timedwait(&q->cv_work, &q->mu, ts);
        } else {
            pthread_cond_wait(&q->cv_work, &q->mu);
        }
    }
    atomic_store(&q->wsleep, WRITER_AWAKE);
}

/* After publishing ticket t: wakes the writer if it slept for this event (w: wsleep as read
 * right after the ticket, before the event's copy, whose stores a later read would wait for).
 * One producer wins the exchange and signals; the others pass on without q->mu. */
static void
wake_writer(struct audit_queue *q, uint64_t t, int w)
{
    if (w == WRITER_AWAKE ||
        (w == WRITER_BATCH &&
         (t + 1 - atomic_load(&q->taken) < q->batch_max || atomic_load(&q->multi)))) {
        return;
    }
    if (atomic_compare_exchange_strong(&q->wsleep, &w, WRITER_AWAKE)) {
        pthread_mutex_lock(&q->mu);
        pthread_cond_signal(&q->cv_work);
        pthread_mutex_unlock(&q->mu);
    }
}

static int64_t
meta_int(struct audit_queue *q, const char *k)
{
    int64_t v = 0;

    sqlite3_bind_text(q->meta_get, 1, k, -1, SQLITE_STATIC);
    if (sqlite3_step(q->meta_get) == SQLITE_ROW) {
        v = sqlite3_column_int64(q->meta_get, 0);
    }
    sqlite3_reset(q->meta_get);
    return v;
}

static int
bytes_put(sqlite3_stmt *st, const struct chain *c)
{
    int rc;

    sqlite3_bind_int64(st, 1, (sqlite3_int64)c->bytes);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)c->seq);
    rc = sqlite3_step(st);
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

/* Runs a prepared statement that returns no rows (BEGIN, COMMIT). */
static int
step_done(sqlite3_stmt *st)
{
    int rc = sqlite3_step(st);

    sqlite3_reset(st);
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

static int
insert(struct audit_queue *q, struct chain *c, const char *kind, const char *decision,
       int64_t time_us)
{
    uint8_t h[AUDIT_HASH_LEN];
    int rc;

    audit_chain_hash_stream(q->chain, c->hash, q->body.data, q->body.len, h);
    sqlite3_bind_int64(q->ins, 1, (sqlite3_int64)(c->seq + 1));
    sqlite3_bind_text(q->ins, 2, kind, -1, SQLITE_STATIC);
    sqlite3_bind_text(q->ins, 3, decision, -1, SQLITE_STATIC);
    sqlite3_bind_int64(q->ins, 4, time_us);
    sqlite3_bind_text(q->ins, 5, (const char *)q->body.data, (int)q->body.len, SQLITE_STATIC);
    sqlite3_bind_blob(q->ins, 6, h, AUDIT_HASH_LEN, SQLITE_STATIC);
    rc = sqlite3_step(q->ins);
    sqlite3_reset(q->ins);
    if (rc != SQLITE_DONE) {
        return rc;
    }
    c->seq++;
    memcpy(c->hash, h, AUDIT_HASH_LEN);
    c->bytes += q->body.len;
    return SQLITE_OK;
}

static int
write_summary(struct audit_queue *q, struct chain *c, const struct audit_summary *s)
{
    buf_reset(&q->body);
    if (audit_summary_encode(s, q->device_id, c->seq + 1, c->hash, &q->body) != POSGATE_OK) {
        return SQLITE_NOMEM;
    }
    return insert(q, c, "allow_summary", "allow", s->last_us);
}

/* The data version of the writer's file: changed by every commit to it, from any connection.
 * Read inside a transaction, it is the version of the snapshot that transaction sees. */
static int
data_version(sqlite3 *db, unsigned *v)
{
    return sqlite3_file_control(db, "main", SQLITE_FCNTL_DATA_VERSION, v);
}

/* The chain's head and bytes, inside the commit's write transaction: as the last commit left
 * them when nobody has written to the file since, else read from it. */
static int
chain_load(struct audit_queue *q, struct chain *c)
{
    unsigned v;
    int rc;

    if (q->known_valid && data_version(q->wdb, &v) == SQLITE_OK && v == q->known_version) {
        *c = q->known;
        return SQLITE_OK;
    }
    q->known_valid = 0;
    rc = audit_read_head(q->head, q->anchor, &c->seq, c->hash);
    if (rc == SQLITE_OK) {
        rc = audit_bytes_read(q->wdb, &c->bytes, &q->bytes_upto);
    }
    return rc;
}

static int
is_full(const struct audit_queue *q, const struct chain *c, uint64_t max_bytes)
{
    (void)q;
    return max_bytes > 0 && c->bytes >= max_bytes;
}

/* Writes batch[0, k) (and the carried summary) in one transaction; rolls back on failure. */
static int
commit_try(struct audit_queue *q, size_t k, uint64_t max_bytes)
{
    struct audit_summary sum;
    struct chain c;
    uint64_t upto;
    size_t nf = 0;
    int rc, full, pruned = 0;
    uint64_t folded = 0;

    memset(&sum, 0, sizeof(sum));
    sum.cause = "queue_full";
    rc = step_done(q->begin);
    if (rc != SQLITE_OK) {
        goto fail;
    }
    rc = chain_load(q, &c);
    if (rc != SQLITE_OK) {
        goto fail;
    }
    upto = q->bytes_upto;
    full = is_full(q, &c, max_bytes);
    if (full) {
        uint64_t freed = 0;

        /* acknowledged events are at the collector: make room before folding anything */
        rc = audit_prune_prefix(q->wdb, (uint64_t)meta_int(q, "acked"), INT64_MAX, &freed);
        if (rc != SQLITE_OK) {
            goto fail;
        }
        c.bytes = c.bytes > freed ? c.bytes - freed : 0;
        full = is_full(q, &c, max_bytes);
        pruned = 1;
    }
    if (q->carry.count > 0) {
        rc = write_summary(q, &c, &q->carry);
        if (rc != SQLITE_OK) {
            goto fail;
        }
    }
    for (size_t i = 0; i < k; i++) {
        struct slot *s = q->batch[i];
        struct audit_event *e = slot_event(q, s);

        if (e == NULL) {
            continue; /* its caller was told its event is not recorded */
        }
        if (e->decision == AUDIT_ALLOW && full) {
            audit_summary_add(&sum, e);
            q->scratch[nf++] = i;
            folded++;
            continue;
        }
        if (sum.count > 0) {
            rc = write_summary(q, &c, &sum);
            if (rc != SQLITE_OK) {
                goto fail;
            }
            for (size_t j = 0; j < nf; j++) {
                q->batch[q->scratch[j]]->seq = c.seq;
            }
            nf = 0;
            memset(&sum, 0, sizeof(sum));
            sum.cause = "queue_full";
        }
        audit_digests_mark(&q->digests, e);
        buf_reset(&q->body);
        if (audit_event_encode(e, q->device_id, c.seq + 1, c.hash, &q->body) != POSGATE_OK) {
            rc = SQLITE_NOMEM;
            goto fail;
        }
        rc = insert(q, &c, "decision", audit_decision_name(e->decision), e->time_us);
        if (rc != SQLITE_OK) {
            goto fail;
        }
        s->seq = c.seq;
        full = is_full(q, &c, max_bytes);
    }
    if (sum.count > 0) {
        rc = write_summary(q, &c, &sum);
        if (rc != SQLITE_OK) {
            goto fail;
        }
        for (size_t j = 0; j < nf; j++) {
            q->batch[q->scratch[j]]->seq = c.seq;
        }
    }
    /* Not in every commit: a DENY's commit writes one page less. What the row does not count,
     * the events after its b, is added up from them whenever the chain is read from the file
     * (audit_bytes_read): after a kill too, since the row and the events commit together. */
    if (pruned || q->bytes_upto > c.seq || c.seq - q->bytes_upto >= BYTES_LAG_MAX) {
        rc = bytes_put(q->bytes_set, &c);
        if (rc != SQLITE_OK) {
            goto fail;
        }
        upto = c.seq;
    }
    rc = step_done(q->commit);
    if (rc != SQLITE_OK) {
        goto fail;
    }
    q->bytes_upto = upto;
    q->known = c;
    q->known_valid = data_version(q->wdb, &q->known_version) == SQLITE_OK;
    memset(&q->carry, 0, sizeof(q->carry));
    /* commit_batch runs without q->mu; the counters are read under it (audit_stats) */
    pthread_mutex_lock(&q->mu);
    q->folded += folded;
    q->commits++;
    pthread_mutex_unlock(&q->mu);
    return SQLITE_OK;
fail:
    plat_log(PLAT_LOG_WARN, "audit: write failed (%s); %zu event(s) not committed",
             sqlite3_errmsg(q->wdb), k);
    sqlite3_exec(q->wdb, "ROLLBACK", NULL, NULL, NULL);
    q->known_valid = 0;
    q->digests.n = 0; /* the digests this transaction wrote are gone with it */
    return rc;
}

/* Writes batch[0, k) (and the carried summary) in one transaction. A commit that fails for want
 * of room (full, or an I/O error) while the reserve is in place is tried once more after releasing
 * it: a full disk still records every DENY and REFER. */
static enum posgate_err
commit_batch(struct audit_queue *q, size_t k, uint64_t max_bytes)
{
    int rc = commit_try(q, k, max_bytes);

    if (((rc & 0xff) == SQLITE_FULL || (rc & 0xff) == SQLITE_IOERR) && reserve_tend(q, 1)) {
        rc = commit_try(q, k, max_bytes);
    }
    if (rc == SQLITE_OK) {
        (void)reserve_tend(q, 0);
        return POSGATE_OK;
    }
    pthread_mutex_lock(&q->mu);
    q->failures++;
    pthread_mutex_unlock(&q->mu);
    q->carry.cause = "write_failed";
    for (size_t i = 0; i < k; i++) {
        struct slot *s = q->batch[i];
        const struct audit_event *e = s->rc == NULL ? slot_event(q, s) : NULL;

        /* nobody waits for a batched ALLOW: keep it counted for the next commit */
        if (e != NULL && e->decision == AUDIT_ALLOW) {
            audit_summary_add(&q->carry, e);
        }
    }
    return audit_sql_err(q->wdb, rc, "commit", NULL, 0);
}

static void
deadline_after(struct timespec *ts, uint64_t from_ns, uint32_t ms)
{
    uint64_t t = from_ns + (uint64_t)ms * 1000000u;

    ts->tv_sec = (time_t)(t / 1000000000u);
    ts->tv_nsec = (long)(t % 1000000000u);
}

static void wake_leader(struct audit_queue *q);

/* Called with q->mu held and committing set: commits every published slot without the lock, then
 * completes them (receipts, counters), clears committing, wakes the next committer (unless !wake:
 * the caller commits the next group itself) and, without the lock, the callers whose events it
 * held. Returns with q->mu held, and the number of events it took. */
static size_t
run_batch(struct audit_queue *q, int wake)
{
    uint64_t start = atomic_load_explicit(&q->taken, memory_order_relaxed);
    size_t k = 0, waiters = 0, nw = 0;
    struct slot *woken[RING_CAP]; /* the slots of the waiting callers this commit completes */
    uint64_t max_bytes = q->max_bytes;
    enum posgate_err err;

    /* take the published events out of the ring, up to the first ticket whose caller is still
     * writing it: their slots become the batch, spares fill the ring */
    while (k < RING_CAP) {
        size_t r = (size_t)((start + k) % RING_CAP);
        struct slot *s = q->ring[r];

        if (atomic_load_explicit(&s->ready, memory_order_acquire) != start + k + 1) {
            break;
        }
        q->batch[k] = s;
        q->ring[r] = q->spare[k];
        waiters += s->rc != NULL;
        k++;
    }
    atomic_store_explicit(&q->taken, start + k, memory_order_release);
    if (k > 1) {
        int multi = 0;

        for (size_t i = 1; i < k && !multi; i++) {
            multi = q->batch[i]->producer != q->batch[0]->producer;
        }
        atomic_store_explicit(&q->multi, multi, memory_order_relaxed);
    }
    q->urgent -= waiters;
    /* not 0: the writer, asleep till an older event's deadline, would then wait batch_ms anew */
    q->oldest_ns = k > 0 ? plat_mono_ns() : q->oldest_ns;
    if (k == 0 && q->carry.count == 0) {
        q->committing = 0;
        pthread_cond_broadcast(&q->cv_done); /* the writer may wait for this commit */
        return 0;
    }
    if (q->full_waiters > 0) {
        pthread_cond_broadcast(&q->cv_done); /* room in the full ring again */
    }
    pthread_mutex_unlock(&q->mu);
    err = commit_batch(q, k, max_bytes);
    pthread_mutex_lock(&q->mu);
    for (size_t i = 0; i < k; i++) {
        struct slot *s = q->batch[i];

        if (s->rc != NULL) {
            s->rc->err = err;
            s->rc->seq = err == POSGATE_OK ? s->seq : 0;
            s->rc->done = 1;
            s->rc = NULL;
            woken[nw++] = s;
        }
        q->spare[i] = s; /* the batch's slots are the next spares */
    }
    q->done_count += k;
    q->committing = 0;
    pthread_cond_broadcast(&q->cv_done);
    if (wake) {
        wake_leader(q);
    }
    if (nw > 0) {
        /* the next commit may start meanwhile: these wake-ups are not in its way */
        pthread_mutex_unlock(&q->mu);
        for (size_t i = 0; i < nw; i++) {
            pthread_cond_broadcast(&woken[i]->cv);
        }
        pthread_mutex_lock(&q->mu);
    }
    return k;
}

/* Called with q->mu held when a commit has ended: wakes the caller of the oldest queued event that
 * waits for its commit, to commit the queue itself (unless someone else started a commit by then;
 * then it sleeps on until that commit ends, and the same happens again). One wake-up, not one for
 * every waiting caller. */
static void
wake_leader(struct audit_queue *q)
{
    uint64_t t = atomic_load_explicit(&q->taken, memory_order_relaxed);
    uint64_t tail = atomic_load_explicit(&q->tail, memory_order_acquire);

    for (; q->urgent > 0 && t != tail; t++) {
        struct slot *s = q->ring[t % RING_CAP];

        if (atomic_load_explicit(&s->ready, memory_order_acquire) != t + 1) {
            /* a caller is copying a batched ALLOW: the writer commits once it is published */
            pthread_cond_signal(&q->cv_work);
            return;
        }
        if (s->rc != NULL) {
            pthread_cond_broadcast(&s->cv);
            return;
        }
    }
}

static void *
writer_main(void *arg)
{
    struct audit_queue *q = arg;
    int spins = 0;

    /* batched events can wait while checks run: on two busy cores a commit no longer preempts
     * the thread answering a check (HTTP ALLOW p99 over one connection 92-108 us -> 81-86 us at
     * 1M, tools/bench/findings.md); a DENY's commit is made by its own caller */
    plat_thread_background();
    pthread_mutex_lock(&q->mu);
    for (;;) {
        enum posgate_err err;
        struct timespec ts;

        if (q->committing) { /* a caller commits (audit_record): the carry is its until then */
            pthread_cond_wait(&q->cv_done, &q->mu);
            continue;
        }
        if (audit_queued(q) == 0) {
            int stop = atomic_load(&q->stop);

            q->oldest_ns = 0; /* the next event's batch_ms counts from when it comes */
            if (q->carry.count > 0 && !stop) {
                deadline_after(&ts, plat_mono_ns(), IDLE_RETRY_MS);
                writer_sleep(q, WRITER_IDLE, &ts);
            } else if (q->carry.count == 0) {
                if (stop) {
                    break;
                }
                writer_sleep(q, WRITER_IDLE, NULL);
                continue;
            }
            if (q->committing) {
                continue;
            }
            if (audit_queued(q) == 0 && q->carry.count > 0) {
                q->committing = 1;
                pthread_mutex_unlock(&q->mu);
                err = commit_batch(q, 0, q->max_bytes);
                pthread_mutex_lock(&q->mu);
                q->committing = 0;
                pthread_cond_broadcast(&q->cv_done);
                wake_leader(q);
                if (atomic_load(&q->stop) && audit_queued(q) == 0) {
                    /* that was the last attempt at the carried summary */
                    if (err != POSGATE_OK) {
                        plat_log(PLAT_LOG_ERROR, "audit: %llu ALLOW event(s) lost at close",
                                 (unsigned long long)q->carry.count);
                    }
                    break;
                }
            }
            continue;
        }
        if (q->oldest_ns == 0) {
            q->oldest_ns = plat_mono_ns();
        }
        if (!atomic_load(&q->stop) && q->urgent == 0 &&
            (audit_queued(q) < q->batch_max || atomic_load(&q->multi))) {
            uint64_t now = plat_mono_ns(), due = q->oldest_ns + (uint64_t)q->batch_ms * 1000000u;

            if (now < due) {
                deadline_after(&ts, q->oldest_ns, q->batch_ms);
                writer_sleep(q, WRITER_BATCH, &ts);
                continue;
            }
        }
        if (!head_published(q)) {
            /* the oldest ticket's caller is copying its event and wakes no writer that is awake:
             * give it the CPU, or after a while (it was preempted) sleep a little */
            pthread_mutex_unlock(&q->mu);
            if (++spins < 64) {
                sched_yield();
            } else {
                nanosleep(&(struct timespec){0, 100000}, NULL);
                spins = 0;
            }
            pthread_mutex_lock(&q->mu);
            continue;
        }
        spins = 0;
        q->committing = 1;
        (void)run_batch(q, 1); /* clears committing */
    }
    pthread_mutex_unlock(&q->mu);
    return NULL;
}

/* ---- open / close ---- */

enum posgate_err
audit_open(const char *path, struct device_key *key, const struct audit_options *opt,
           unsigned flags, struct audit_queue **out, char *errmsg, size_t errcap)
{
    struct audit_queue *q;
    struct audit_options def;
    pthread_condattr_t ca;
    enum posgate_err err;
    int ro = (flags & AUDIT_READONLY) != 0;

    if (out == NULL || path == NULL || (key == NULL && !ro)) {
        return POSGATE_ERR_INVALID;
    }
    *out = NULL;
    if (opt == NULL) {
        audit_options_default(&def);
        opt = &def;
    }
    q = plat_calloc(1, sizeof(*q));
    if (q == NULL) {
        return POSGATE_ERR_NOMEM;
    }
    q->readonly = ro;
    q->key = key;
    snprintf(q->device_id, sizeof(q->device_id), "%s", key != NULL ? device_key_id(key) : "");
    atomic_init(&q->durability, (int)opt->durability);
    q->max_bytes = opt->max_bytes;
    q->retention_s = (int64_t)opt->retention_days * 86400;
    q->batch_ms = opt->batch_ms > 0 ? opt->batch_ms : 50;
    q->batch_max = opt->batch_max > 0 && opt->batch_max <= RING_CAP / 2 ? opt->batch_max : 256;
    buf_init(&q->body, AUDIT_EVENT_MAX);
    pthread_mutex_init(&q->mu, NULL);
    pthread_mutex_init(&q->rlock, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&q->cv_work, &ca);
    pthread_condattr_destroy(&ca);
    pthread_cond_init(&q->cv_done, NULL);
    if (!ro) {
        err = audit_reserve_init(&q->res, path);
        if (err != POSGATE_OK) {
            snprintf(errmsg, errcap, "audit: path %.200s... is too long", path);
            goto fail;
        }
        /* before SQLite needs room for the -wal and -shm files: released on a full disk, made
         * when missing and there is room */
        (void)reserve_tend(q, 0);
        err = audit_db_open(path, 0, &q->wdb, errmsg, errcap);
        if (err == POSGATE_OK) {
            err = audit_db_create(q->wdb, errmsg, errcap);
        }
        if (err == POSGATE_OK) {
            err = prepare(q->wdb,
                          "INSERT INTO events(seq, kind, decision, time_us, body, hash) "
                          "VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                          &q->ins, errmsg, errcap);
        }
        if (err == POSGATE_OK) {
            err = prepare(q->wdb, "SELECT seq, hash FROM events ORDER BY seq DESC LIMIT 1",
                          &q->head, errmsg, errcap);
        }
        if (err == POSGATE_OK) {
            err = prepare(q->wdb, "SELECT v, b FROM meta WHERE k = 'anchor'", &q->anchor, errmsg,
                          errcap);
        }
        if (err == POSGATE_OK) {
            err = prepare(q->wdb, "SELECT v FROM meta WHERE k = ?1", &q->meta_get, errmsg, errcap);
        }
        if (err == POSGATE_OK) {
            err = prepare(q->wdb,
                          "INSERT INTO meta(k, v, b) VALUES('bytes', ?1, ?2), ('bytes_v', ?1, NULL)"
                          " ON CONFLICT(k) DO UPDATE SET v = excluded.v, b = excluded.b",
                          &q->bytes_set, errmsg, errcap);
        }
        if (err == POSGATE_OK) {
            err = prepare(q->wdb, "BEGIN IMMEDIATE", &q->begin, errmsg, errcap);
        }
        if (err == POSGATE_OK) {
            err = prepare(q->wdb, "COMMIT", &q->commit, errmsg, errcap);
        }
        if (err != POSGATE_OK) {
            goto fail;
        }
        q->slots = plat_calloc(2 * RING_CAP, sizeof(*q->slots));
        q->ring = plat_calloc(RING_CAP, sizeof(*q->ring));
        q->batch = plat_calloc(RING_CAP, sizeof(*q->batch));
        q->spare = plat_calloc(RING_CAP, sizeof(*q->spare));
        q->scratch = plat_calloc(RING_CAP, sizeof(*q->scratch));
        for (size_t i = 0; q->slots != NULL && q->ring != NULL && q->spare != NULL && i < RING_CAP;
             i++) {
            q->ring[i] = &q->slots[i];
            q->spare[i] = &q->slots[RING_CAP + i];
        }
        for (size_t i = 0; q->slots != NULL && i < 2 * RING_CAP; i++) {
            pthread_cond_init(&q->slots[i].cv, NULL);
        }
        if (q->slots == NULL || q->ring == NULL || q->batch == NULL || q->spare == NULL ||
            q->scratch == NULL ||
            crypto_hash_stream_new_for(&q->chain, true, false) != POSGATE_OK) {
            err = POSGATE_ERR_NOMEM;
            goto fail;
        }
    }
    err = audit_db_open(path, ro, &q->rdb, errmsg, errcap);
    if (err == POSGATE_OK && ro) {
        sqlite3_stmt *st = NULL;

        /* an empty or foreign file is not an audit queue */
        err = prepare(q->rdb, "SELECT v FROM meta WHERE k = 'anchor'", &st, errmsg, errcap);
        sqlite3_finalize(st);
        if (err == POSGATE_ERR_IO) {
            snprintf(errmsg, errcap, "audit: %s holds no audit queue", path);
            err = POSGATE_ERR_CORRUPT;
        }
    }
    if (err != POSGATE_OK) {
        goto fail;
    }
    if (!ro) {
        if (pthread_create(&q->th, NULL, writer_main, q) != 0) {
            snprintf(errmsg, errcap, "audit: cannot start the writer thread");
            err = POSGATE_ERR_NOMEM;
            goto fail;
        }
        q->has_thread = 1;
    }
    *out = q;
    return POSGATE_OK;
fail:
    audit_close(q);
    return err;
}

void
audit_close(struct audit_queue *q)
{
    if (q == NULL) {
        return;
    }
    if (q->has_thread) {
        pthread_mutex_lock(&q->mu);
        atomic_store(&q->stop, 1);
        pthread_cond_broadcast(&q->cv_work);
        pthread_mutex_unlock(&q->mu);
        pthread_join(q->th, NULL);
    }
    sqlite3_finalize(q->ins);
    sqlite3_finalize(q->head);
    sqlite3_finalize(q->anchor);
    sqlite3_finalize(q->meta_get);
    sqlite3_finalize(q->bytes_set);
    sqlite3_finalize(q->begin);
    sqlite3_finalize(q->commit);
    sqlite3_close(q->wdb);
    sqlite3_close(q->rdb);
    pthread_cond_destroy(&q->cv_work);
    pthread_cond_destroy(&q->cv_done);
    pthread_mutex_destroy(&q->mu);
    pthread_mutex_destroy(&q->rlock);
    buf_free(&q->body);
    for (size_t i = 0; q->slots != NULL && i < 2 * RING_CAP; i++) {
        pthread_cond_destroy(&q->slots[i].cv);
        audit_packed_cleanup(&q->slots[i].ev);
    }
    plat_free(q->slots);
    plat_free(q->ring);
    plat_free(q->batch);
    plat_free(q->spare);
    plat_free(q->scratch);
    crypto_hash_stream_free(q->chain);
    plat_free(q);
}

void
audit_set_durability(struct audit_queue *q, enum audit_durability d)
{
    if (q != NULL) {
        atomic_store(&q->durability, (int)d);
    }
}

void
audit_set_limits(struct audit_queue *q, uint64_t max_bytes, uint32_t retention_days)
{
    if (q != NULL) {
        pthread_mutex_lock(&q->mu);
        q->max_bytes = max_bytes;
        q->retention_s = (int64_t)retention_days * 86400;
        pthread_mutex_unlock(&q->mu);
    }
}

/* ---- enqueueing ---- */

/* Ticket t is RING_CAP or more past the oldest not taken by a commit: waits until a commit takes
 * enough (the RING_CAP tickets before it do not wait: they get published). locked: q->mu held. */
static void
wait_room(struct audit_queue *q, uint64_t t, int locked)
{
    if (!locked) {
        pthread_mutex_lock(&q->mu);
    }
    q->full_waiters++;
    while (t - atomic_load(&q->taken) >= RING_CAP) {
        if (!q->committing && head_published(q)) {
            /* nobody commits (the writer may wait for a CPU): make the room itself */
            q->committing = 1;
            (void)run_batch(q, 1); /* clears committing */
            continue;
        }
        pthread_cond_signal(&q->cv_work);
        pthread_cond_wait(&q->cv_done, &q->mu);
    }
    q->full_waiters--;
    if (!locked) {
        pthread_mutex_unlock(&q->mu);
    }
}

/* A batched ALLOW whose event filled a batch while several threads record (q->multi): its
 * thread commits the batch unless someone else commits already (then the next event's thread
 * tries again, or the writer commits batch_ms after the oldest when no more come). Returns 1
 * when it committed. */
static int
commit_full_batch(struct audit_queue *q)
{
    int done = 0;

    if (pthread_mutex_trylock(&q->mu) != 0) {
        return 0; /* a commit is starting or ending */
    }
    if (!q->committing && audit_queued(q) >= q->batch_max && head_published(q)) {
        q->committing = 1;
        q->producer_commits++;
        (void)run_batch(q, 1); /* clears committing */
        done = 1;
    }
    pthread_mutex_unlock(&q->mu);
    return done;
}

enum posgate_err
audit_record(struct audit_queue *q, const struct audit_event *e, uint64_t *seq)
{
    struct receipt rc = {POSGATE_OK, 0, 0};
    struct slot *s;
    uint64_t t;
    int wait, w;
    enum posgate_err err;

    if (seq != NULL) {
        *seq = 0;
    }
    if (q == NULL || e == NULL) {
        return POSGATE_ERR_INVALID;
    }
    if (q->readonly) {
        return POSGATE_ERR_STATE;
    }
    if (atomic_load(&q->stop)) {
        return POSGATE_ERR_STATE;
    }
    wait = atomic_load_explicit(&q->durability, memory_order_relaxed) == AUDIT_STRICT ||
           e->decision != AUDIT_ALLOW;
    if (wait) {
        pthread_mutex_lock(&q->mu); /* held from the ticket on: urgent counts the event */
    }
    t = atomic_fetch_add(&q->tail, 1);
    w = atomic_load(&q->wsleep);
    if (t - atomic_load_explicit(&q->taken, memory_order_acquire) >= RING_CAP) {
        wait_room(q, t, wait);
    }
    s = q->ring[t % RING_CAP];
    err = audit_packed_store(&s->ev, e);
    s->rc = wait && err == POSGATE_OK ? &rc : NULL;
    s->seq = 0;
    s->producer = (uintptr_t)&producer_mark;
    if (!wait || err != POSGATE_OK) {
        /* NOMEM: the ticket is published without an event (commits pass over it), and the
         * caller learns that its event is not recorded */
        atomic_store_explicit(&s->ready, t + 1, memory_order_release);
        if (wait) {
            pthread_mutex_unlock(&q->mu);
        } else if (atomic_load_explicit(&q->multi, memory_order_relaxed) &&
                   t + 1 - atomic_load_explicit(&q->taken, memory_order_acquire) >= q->batch_max &&
                   commit_full_batch(q)) {
            return err;
        }
        wake_writer(q, t, w); /* a writer asleep with no deadline (the queue was empty) wakes */
        return err;
    }
    q->urgent++;
    atomic_store_explicit(&s->ready, t + 1, memory_order_release);
    /* A caller that waits commits the queue itself when nobody else is committing (its event
     * and everything queued before it, in one transaction): no hand-over to the writer thread
     * and back, two thread wake-ups less on every DENY. Otherwise it waits for the commit in
     * progress: woken when that one carried its event, or, as the oldest waiting caller left in
     * the queue, to take the next (group commit: whoever commits takes every event queued). */
    for (int extra = 0, owe = 0;;) {
        if (rc.done) {
            /* Its own event durable, a committer that finds callers queued behind it commits
             * their group too (once), rather than wake one of them to do it: the next commit
             * starts without a thread's wake-up in its way. */
            if (extra || q->committing || q->urgent == 0) {
                if (owe && !q->committing) {
                    wake_leader(q);
                }
                break;
            }
            extra = 1;
        } else if (q->committing) {
            pthread_cond_wait(&s->cv, &q->mu); /* s: the slot of its event until it is done */
            continue;
        }
        q->committing = 1;
        owe = 1;
        if (run_batch(q, 0) == 0) { /* clears committing */
            /* an earlier ticket's caller is still writing its event: let it run */
            pthread_mutex_unlock(&q->mu);
            sched_yield();
            pthread_mutex_lock(&q->mu);
        } else if (q->urgent == 0 &&
                   (audit_queued(q) > 0 || (!q->committing && q->carry.count > 0))) {
            pthread_cond_signal(&q->cv_work); /* batched events queued, or ALLOWs carried */
        }
    }
    pthread_mutex_unlock(&q->mu);
    if (seq != NULL) {
        *seq = rc.seq;
    }
    return rc.err;
}

enum posgate_err
audit_flush(struct audit_queue *q)
{
    uint64_t target;

    if (q == NULL) {
        return POSGATE_ERR_INVALID;
    }
    if (q->readonly) {
        return POSGATE_OK;
    }
    pthread_mutex_lock(&q->mu);
    target = atomic_load(&q->tail);
    if (q->done_count < target) {
        q->urgent++; /* commit now rather than at the batch deadline */
        pthread_cond_signal(&q->cv_work);
        while (q->done_count < target) {
            pthread_cond_wait(&q->cv_done, &q->mu);
        }
        q->urgent--;
    }
    pthread_mutex_unlock(&q->mu);
    return POSGATE_OK;
}
