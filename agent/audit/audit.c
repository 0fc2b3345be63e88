/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The audit queue (audit.h): the SQLite file, the writer thread with its group commit, folding
 * under a full queue, pruning, the signed batches for the uploader, and chain verification.
 * SQLite is included here (and audit_db.c, audit_prune.c) and in the list store only.
 */
#define _POSIX_C_SOURCE 200809L
#include "audit.h"
#include "audit_db.h"
#include "audit_pack.h"
#include "audit_prune.h"
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

struct receipt {
    enum posgate_err err;
    uint64_t seq;
    int done;
};

/* A caller that waits for its event's commit sleeps on the cv of the event's slot: woken when the
 * commit holding the event ends or when it is to commit the queue itself (wake_leader), not by
 * every commit. The cv belongs to the queue, so a committer may broadcast it after letting go of
 * q->mu (the caller may have returned by then, the slot may hold a newer event: a waiter woken
 * for nothing looks at its receipt and sleeps on).
 * The event is kept packed (audit_pack.h), so the ring's slots sit close together (a slot
 * holding a whole struct audit_event took ~10 KB, and a check wrote into a slot its pages and
 * cache lines had long left); the committer unpacks each into its own q->ev. */
struct slot {
    /* before ev: a caller writes them with the first lines of its event */
    struct receipt *rc;           /* NULL: nobody waits (a batched ALLOW) */
    uint64_t seq;                 /* set by the writer */
    uintptr_t producer;           /* the recording thread (producer_mark) */
    _Atomic uint64_t ready;       /* ticket + 1 once ev and rc are written (release) */
    pthread_cond_t cv;
    struct audit_packed ev; /* 2 KB with the members above (glibc) */
};

/* The chain's head and the bytes of its events, as a commit leaves them */
struct chain {
    uint64_t seq;
    uint8_t hash[AUDIT_HASH_LEN];
    uint64_t bytes;
};

/* A slot's producer: the address of this thread-local byte, unique among live threads. */
static _Thread_local char producer_mark;

/* What the writer thread sleeps for (wsleep): a producer that publishes an event wakes it only
 * when it sleeps for any event (IDLE), or for a full batch (BATCH) and the batch is full while
 * one thread records (!multi: several commit their full batches themselves). */
enum { WRITER_AWAKE, WRITER_IDLE, WRITER_BATCH };

struct audit_queue {
    sqlite3 *wdb; /* the writer thread's connection */
    sqlite3 *rdb; /* everything else, under rlock */
    pthread_mutex_t rlock;
    sqlite3_stmt *ins, *head, *anchor, *meta_get, *bytes_set;
    sqlite3_stmt *begin, *commit; /* prepared once: a DENY's commit pays no SQL parsing */
    struct device_key *key;
    struct crypto_hash_stream *chain; /* the chain's SHA-256, used by the one committer */
    char device_id[DEVICE_ID_HEX_LEN + 1];
    int readonly;

    pthread_mutex_t mu; /* everything below */
    /* cv_work: the writer's work; cv_done: a commit ended (the writer waiting its turn, flushes)
     * or the ring has room again. Callers waiting for their event sleep on its slot's cv. */
    pthread_cond_t cv_work, cv_done;
    pthread_t th;
    int has_thread;
    atomic_int stop;
    int committing; /* a thread (the writer or a waiting caller) is in commit_batch */
    /* The queue is a ring of slot pointers. A commit takes its events out of the ring at once
     * (their slots move to batch, spare slots take their places), so checks go on filling the
     * ring while the commit encodes, hashes and waits for its fsync. batch and spare belong to
     * the one committer. A caller takes a ticket (`tail`, fetch-and-add: the order of the chain), waits only when the
     * ring holds RING_CAP tickets not yet taken by a commit, writes its event into the slot of
     * ring[ticket % RING_CAP] and publishes it (the slot's ready). A batched ALLOW does all that
     * without q->mu. A commit takes the published run of tickets from head on, under q->mu, and
     * moves `taken` past them (release: the ring's new spare pointers are then the callers'). */
    struct slot *slots; /* 2 * RING_CAP */
    struct slot **ring, **batch, **spare;
    size_t *scratch; /* folded batch indices waiting for their summary's seq (committer only) */
    /* 64 bytes apart, so on cache lines of their own: every caller writes tail, the committer
     * taken and the writer wsleep, and the other fields change under mu */
    char pad0[64];
    _Atomic uint64_t tail; /* tickets taken */
    char pad1[64];
    _Atomic uint64_t taken; /* tickets taken by commits; stored under mu */
    atomic_int wsleep;      /* WRITER_*: set by the writer under mu, cleared by who wakes it */
    /* 1 when the last batch taken held events of more than one thread (several threads check at
     * once): a batched ALLOW that fills a batch is then committed by its own thread, at its
     * weight, rather than by the writer thread, whose background weight would leave a busy
     * machine's ring full and every checking thread waiting for it. Set by the committer. */
    atomic_int multi;
    char pad2[64];
    size_t urgent, full_waiters;
    uint64_t done_count; /* tickets committed (or failed) */
    uint64_t oldest_ns;  /* no queued event is older: the last take; 0: the writer saw none */
    atomic_int durability; /* enum audit_durability */
    uint64_t max_bytes;
    int64_t retention_s;
    uint32_t batch_ms, batch_max;
    struct audit_summary carry; /* ALLOWs of failed commits, written with the next one */
    /* The list digests written into the chain since the queue opened (audit_event.h): a
     * decision names a list without its digest once the chain holds it. Committer only;
     * emptied when a commit fails, since what it wrote is gone with the rollback. */
    struct audit_digests digests;
    /* The chain as the committer's last commit left it, valid while the file's data version
     * (SQLITE_FCNTL_DATA_VERSION, which any commit changes, ours and other connections', such
     * as rdb's acks and prunes or another process's events) is the one read right after that
     * commit: a commit then reads neither the head nor meta 'bytes'. Committer only. */
    struct chain known;
    unsigned known_version;
    int known_valid;
    uint64_t bytes_upto; /* the seq meta 'bytes' counts up to; UINT64_MAX: every event */
    uint64_t folded, commits, failures, producer_commits;
    struct buf body; /* writer's render buffer */
    /* the event of the slot being written (slot_event): committer only */
    struct audit_event ev;
    /* room for the commits of a full disk: the committer's; its size read under mu (stats) */
    struct audit_reserve res;
    uint64_t reserve_bytes;
};

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

static uint64_t
queued(struct audit_queue *q)
{
    return atomic_load(&q->tail) - atomic_load(&q->taken);
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
    ready = why == WRITER_IDLE ? queued(q) > 0
                               : queued(q) >= q->batch_max && !atomic_load(&q->multi);
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

/* The chain head: the newest event, else the anchor left by pruning. */
static int
read_head(sqlite3 *db, sqlite3_stmt *head, sqlite3_stmt *anchor, uint64_t *seq,
          uint8_t hash[AUDIT_HASH_LEN])
{
    sqlite3_stmt *st = head;
    int rc = sqlite3_step(st);

    (void)db;
    if (rc == SQLITE_DONE) {
        sqlite3_reset(st);
        st = anchor;
        rc = sqlite3_step(st);
    }
    if (rc != SQLITE_ROW) {
        sqlite3_reset(st);
        return rc == SQLITE_DONE ? SQLITE_CORRUPT : rc;
    }
    *seq = (uint64_t)sqlite3_column_int64(st, 0);
    memset(hash, 0, AUDIT_HASH_LEN);
    if (sqlite3_column_bytes(st, 1) == AUDIT_HASH_LEN) {
        memcpy(hash, sqlite3_column_blob(st, 1), AUDIT_HASH_LEN);
    }
    sqlite3_reset(st);
    return SQLITE_OK;
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
    rc = read_head(q->wdb, q->head, q->anchor, &c->seq, c->hash);
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
        if (queued(q) == 0) {
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
            if (queued(q) == 0 && q->carry.count > 0) {
                q->committing = 1;
                pthread_mutex_unlock(&q->mu);
                err = commit_batch(q, 0, q->max_bytes);
                pthread_mutex_lock(&q->mu);
                q->committing = 0;
                pthread_cond_broadcast(&q->cv_done);
                wake_leader(q);
                if (atomic_load(&q->stop) && queued(q) == 0) {
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
            (queued(q) < q->batch_max || atomic_load(&q->multi))) {
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
    if (!q->committing && queued(q) >= q->batch_max && head_published(q)) {
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
        } else if (q->urgent == 0 && (queued(q) > 0 || (!q->committing && q->carry.count > 0))) {
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

/* ---- reading, acknowledging, pruning (the rdb connection) ---- */

static enum posgate_err
rd_head(struct audit_queue *q, uint64_t *seq, uint8_t hash[AUDIT_HASH_LEN])
{
    sqlite3_stmt *h = NULL, *a = NULL;
    int rc = sqlite3_prepare_v2(q->rdb, "SELECT seq, hash FROM events ORDER BY seq DESC LIMIT 1",
                                -1, &h, NULL);

    if (rc == SQLITE_OK) {
        rc = sqlite3_prepare_v2(q->rdb, "SELECT v, b FROM meta WHERE k = 'anchor'", -1, &a, NULL);
    }
    if (rc == SQLITE_OK) {
        rc = read_head(q->rdb, h, a, seq, hash);
    }
    sqlite3_finalize(h);
    sqlite3_finalize(a);
    return rc == SQLITE_OK ? POSGATE_OK : audit_sql_err(q->rdb, rc, "head", NULL, 0);
}

static int64_t
rd_meta(struct audit_queue *q, const char *k, uint8_t *b, size_t blen)
{
    sqlite3_stmt *st = NULL;
    int64_t v = 0;

    if (sqlite3_prepare_v2(q->rdb, "SELECT v, b FROM meta WHERE k = ?1", -1, &st, NULL) ==
        SQLITE_OK) {
        sqlite3_bind_text(st, 1, k, -1, SQLITE_STATIC);
        if (sqlite3_step(st) == SQLITE_ROW) {
            v = sqlite3_column_int64(st, 0);
            if (b != NULL && (size_t)sqlite3_column_bytes(st, 1) == blen) {
                memcpy(b, sqlite3_column_blob(st, 1), blen);
            }
        }
    }
    sqlite3_finalize(st);
    return v;
}

enum posgate_err
audit_batch_json(struct audit_queue *q, uint64_t since_seq, size_t max, struct buf *out,
                 struct audit_batch_info *info)
{
    sqlite3_stmt *st = NULL;
    struct audit_batch_info bi;
    struct buf msg = BUF_INIT(512), sig = BUF_INIT(256);
    uint8_t head_hash[AUDIT_HASH_LEN], idem[CRYPTO_SHA256_LEN];
    char hex[2 * AUDIT_HASH_LEN + 1], sighex[2 * 256 + 1];
    enum posgate_err err;
    int rc;

    if (q == NULL || out == NULL || q->key == NULL || max == 0) {
        return POSGATE_ERR_INVALID;
    }
    memset(&bi, 0, sizeof(bi));
    buf_reset(out);
    pthread_mutex_lock(&q->rlock);
    rc = sqlite3_exec(q->rdb, "BEGIN", NULL, NULL, NULL); /* one snapshot for the whole batch */
    err = rc == SQLITE_OK ? rd_head(q, &bi.head_seq, head_hash)
                          : audit_sql_err(q->rdb, rc, "begin", NULL, 0);
    if (err != POSGATE_OK) {
        goto out;
    }
    err = buf_printf(out, "{\"device_id\":\"%s\",\"events\":[", q->device_id);
    rc = sqlite3_prepare_v2(q->rdb,
                            "SELECT seq, body, hash FROM events WHERE seq > ?1 "
                            "ORDER BY seq LIMIT ?2",
                            -1, &st, NULL);
    if (rc != SQLITE_OK) {
        err = audit_sql_err(q->rdb, rc, "batch", NULL, 0);
        goto out;
    }
    sqlite3_bind_int64(st, 1, (sqlite3_int64)since_seq);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)(max > INT32_MAX ? INT32_MAX : max));
    while (err == POSGATE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        uint64_t seq = (uint64_t)sqlite3_column_int64(st, 0);

        if (bi.n_events > 0) {
            err = buf_append(out, ",", 1);
        }
        if (err == POSGATE_OK) {
            err = buf_append(out, sqlite3_column_text(st, 1), (size_t)sqlite3_column_bytes(st, 1));
        }
        if (bi.n_events == 0) {
            bi.first_seq = seq;
        }
        bi.last_seq = seq;
        if (sqlite3_column_bytes(st, 2) == AUDIT_HASH_LEN) {
            memcpy(head_hash, sqlite3_column_blob(st, 2), AUDIT_HASH_LEN);
        }
        bi.n_events++;
    }
    if (err == POSGATE_OK && rc != SQLITE_DONE && rc != SQLITE_ROW) {
        err = audit_sql_err(q->rdb, rc, "batch", NULL, 0);
    }
    if (err != POSGATE_OK) {
        goto out;
    }
    if (bi.n_events > 0) {
        bi.head_seq = bi.last_seq;
    }
    err = audit_head_message(q->device_id, bi.head_seq, head_hash, &msg);
    if (err == POSGATE_OK) {
        err = device_key_sign(q->key, msg.data, msg.len, &sig);
    }
    if (err != POSGATE_OK || sig.len > 256) {
        err = err != POSGATE_OK ? err : POSGATE_ERR_TOOBIG;
        goto out;
    }
    crypto_hex(sig.data, sig.len, sighex);
    crypto_hex(head_hash, AUDIT_HASH_LEN, hex);
    /* the idempotency key names the batch's content: a retry of the same events repeats it */
    buf_reset(&msg);
    err = buf_printf(&msg, "posgate-audit-batch/v1\n%s\n%llu\n%llu\n%s\n", q->device_id,
                     (unsigned long long)bi.first_seq, (unsigned long long)bi.last_seq, hex);
    if (err != POSGATE_OK) {
        goto out;
    }
    crypto_sha256(msg.data, msg.len, idem);
    {
        char ik[33];

        crypto_hex(idem, 16, ik);
        err = buf_printf(out,
                         "],\"head\":{\"hash\":\"%s\",\"seq\":%llu},\"idempotency_key\":"
                         "\"%s\",\"signature\":\"%s\",\"v\":1}",
                         hex, (unsigned long long)bi.head_seq, ik, sighex);
    }
out:
    sqlite3_finalize(st);
    sqlite3_exec(q->rdb, "COMMIT", NULL, NULL, NULL);
    pthread_mutex_unlock(&q->rlock);
    buf_free(&msg);
    buf_free(&sig);
    if (err != POSGATE_OK) {
        buf_reset(out);
    } else if (info != NULL) {
        *info = bi;
    }
    return err;
}

static enum posgate_err
prune_locked(struct audit_queue *q, int64_t now_s, uint64_t ack)
{
    uint64_t head = 0, freed = 0, acked;
    uint8_t hh[AUDIT_HASH_LEN];
    enum posgate_err err = POSGATE_OK;
    int64_t retention_s;
    int rc;

    pthread_mutex_lock(&q->mu);
    retention_s = q->retention_s;
    pthread_mutex_unlock(&q->mu);
    rc = sqlite3_exec(q->rdb, "BEGIN IMMEDIATE", NULL, NULL, NULL);
    if (rc != SQLITE_OK) {
        return audit_sql_err(q->rdb, rc, "begin", NULL, 0);
    }
    err = rd_head(q, &head, hh);
    if (err == POSGATE_OK && ack > head) {
        err = POSGATE_ERR_INVALID; /* the collector cannot hold what was never written */
    }
    acked = (uint64_t)rd_meta(q, "acked", NULL, 0);
    if (err == POSGATE_OK && ack > acked) {
        sqlite3_stmt *st = NULL;

        rc = sqlite3_prepare_v2(q->rdb, "UPDATE meta SET v = ?1 WHERE k = 'acked'", -1, &st, NULL);
        if (rc == SQLITE_OK) {
            sqlite3_bind_int64(st, 1, (sqlite3_int64)ack);
            rc = sqlite3_step(st) == SQLITE_DONE ? SQLITE_OK : sqlite3_errcode(q->rdb);
        }
        sqlite3_finalize(st);
        err = rc == SQLITE_OK ? POSGATE_OK : audit_sql_err(q->rdb, rc, "ack", NULL, 0);
        acked = ack;
    }
    if (err == POSGATE_OK && acked > 0) {
        rc = audit_prune_prefix(q->rdb, acked, (now_s - retention_s) * 1000000, &freed);
        err = rc == SQLITE_OK ? POSGATE_OK : audit_sql_err(q->rdb, rc, "prune", NULL, 0);
    }
    rc = sqlite3_exec(q->rdb, err == POSGATE_OK ? "COMMIT" : "ROLLBACK", NULL, NULL, NULL);
    if (err == POSGATE_OK && rc != SQLITE_OK) {
        err = audit_sql_err(q->rdb, rc, "commit", NULL, 0);
    }
    return err;
}

enum posgate_err
audit_ack(struct audit_queue *q, uint64_t seq)
{
    enum posgate_err err;

    if (q == NULL || q->readonly) {
        return q == NULL ? POSGATE_ERR_INVALID : POSGATE_ERR_STATE;
    }
    pthread_mutex_lock(&q->rlock);
    err = prune_locked(q, plat_wall_s(), seq);
    pthread_mutex_unlock(&q->rlock);
    return err;
}

enum posgate_err
audit_prune(struct audit_queue *q, int64_t now_s)
{
    enum posgate_err err;

    if (q == NULL || q->readonly) {
        return q == NULL ? POSGATE_ERR_INVALID : POSGATE_ERR_STATE;
    }
    pthread_mutex_lock(&q->rlock);
    err = prune_locked(q, now_s, 0);
    pthread_mutex_unlock(&q->rlock);
    return err;
}

enum posgate_err
audit_stats(struct audit_queue *q, struct audit_stats *out)
{
    sqlite3_stmt *st = NULL;
    uint8_t hh[AUDIT_HASH_LEN];
    uint64_t upto;
    enum posgate_err err;
    int rc;

    if (q == NULL || out == NULL) {
        return POSGATE_ERR_INVALID;
    }
    memset(out, 0, sizeof(*out));
    pthread_mutex_lock(&q->rlock);
    rc = sqlite3_exec(q->rdb, "BEGIN", NULL, NULL, NULL);
    err = rc == SQLITE_OK ? rd_head(q, &out->head_seq, hh)
                          : audit_sql_err(q->rdb, rc, "begin", NULL, 0);
    if (err == POSGATE_OK) {
        out->acked_seq = (uint64_t)rd_meta(q, "acked", NULL, 0);
        rc = audit_bytes_read(q->rdb, &out->bytes, &upto);
        if (rc != SQLITE_OK) {
            err = audit_sql_err(q->rdb, rc, "bytes", NULL, 0);
        }
    }
    if (err == POSGATE_OK) {
        rc = sqlite3_prepare_v2(q->rdb, "SELECT count(*), min(seq) FROM events", -1, &st, NULL);
        if (rc == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW) {
            out->events = (uint64_t)sqlite3_column_int64(st, 0);
            out->first_seq = (uint64_t)sqlite3_column_int64(st, 1);
        } else {
            err = audit_sql_err(q->rdb, rc == SQLITE_OK ? sqlite3_errcode(q->rdb) : rc, "stats",
                                NULL, 0);
        }
        sqlite3_finalize(st);
        st = NULL;
    }
    if (err == POSGATE_OK && out->head_seq > out->acked_seq) {
        /* the device status report's "oldest unsent" age (docs/collector.md) */
        rc = sqlite3_prepare_v2(q->rdb,
                                "SELECT coalesce(json_extract(body, '$.time_us'), "
                                "json_extract(body, '$.first_time_us')) FROM events "
                                "WHERE seq = ?1",
                                -1, &st, NULL);
        if (rc == SQLITE_OK) {
            sqlite3_bind_int64(st, 1, (sqlite3_int64)(out->acked_seq + 1));
            if (sqlite3_step(st) == SQLITE_ROW) {
                out->oldest_unacked_us = (int64_t)sqlite3_column_int64(st, 0);
            }
        }
        sqlite3_finalize(st);
    }
    sqlite3_exec(q->rdb, "COMMIT", NULL, NULL, NULL);
    pthread_mutex_unlock(&q->rlock);
    pthread_mutex_lock(&q->mu);
    out->pending = queued(q);
    out->folded = q->folded;
    out->commits = q->commits;
    out->producer_commits = q->producer_commits;
    out->failures = q->failures;
    out->reserve_bytes = q->readonly ? 0 : q->reserve_bytes;
    out->disk_full = !q->readonly && q->reserve_bytes < AUDIT_RESERVE_BYTES;
    pthread_mutex_unlock(&q->mu);
    return err;
}

enum posgate_err
audit_each(struct audit_queue *q, uint64_t since_seq, audit_each_fn fn, void *ctx)
{
    sqlite3_stmt *st = NULL;
    enum posgate_err err = POSGATE_OK;
    int rc;

    if (q == NULL || fn == NULL) {
        return POSGATE_ERR_INVALID;
    }
    pthread_mutex_lock(&q->rlock);
    rc = sqlite3_prepare_v2(q->rdb,
                            "SELECT seq, body, hash FROM events WHERE seq > ?1 "
                            "ORDER BY seq",
                            -1, &st, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_bind_int64(st, 1, (sqlite3_int64)since_seq);
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
            uint8_t h[AUDIT_HASH_LEN] = {0};

            if (sqlite3_column_bytes(st, 2) == AUDIT_HASH_LEN) {
                memcpy(h, sqlite3_column_blob(st, 2), AUDIT_HASH_LEN);
            }
            if (fn(ctx, (uint64_t)sqlite3_column_int64(st, 0),
                   (const char *)sqlite3_column_text(st, 1), (size_t)sqlite3_column_bytes(st, 1),
                   h) != 0) {
                rc = SQLITE_DONE;
                break;
            }
        }
    }
    if (rc != SQLITE_DONE) {
        err = audit_sql_err(q->rdb, rc, "read", NULL, 0);
    }
    sqlite3_finalize(st);
    pthread_mutex_unlock(&q->rlock);
    return err;
}

enum posgate_err
audit_verify(struct audit_queue *q, uint64_t *n_events, char *errmsg, size_t errcap)
{
    sqlite3_stmt *st = NULL;
    uint8_t prev[AUDIT_HASH_LEN] = {0}, h[AUDIT_HASH_LEN];
    char sub[256];
    uint64_t expect, n = 0;
    enum posgate_err err = POSGATE_OK;
    int rc;

    if (q == NULL) {
        return POSGATE_ERR_INVALID;
    }
    errmsg[0] = 0;
    pthread_mutex_lock(&q->rlock);
    rc = sqlite3_exec(q->rdb, "BEGIN", NULL, NULL, NULL);
    expect = (uint64_t)rd_meta(q, "anchor", prev, sizeof(prev)) + 1;
    if (rc == SQLITE_OK) {
        rc = sqlite3_prepare_v2(q->rdb, "SELECT seq, body, hash FROM events ORDER BY seq", -1, &st,
                                NULL);
    }
    while (st != NULL && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        uint64_t seq = (uint64_t)sqlite3_column_int64(st, 0);
        const void *body = sqlite3_column_text(st, 1);
        size_t len = (size_t)sqlite3_column_bytes(st, 1);
        struct audit_event_info info;

        if (seq != expect) {
            snprintf(errmsg, errcap,
                     "chain broken: expected seq %llu, found %llu (events %llu "
                     "to %llu are missing)",
                     (unsigned long long)expect, (unsigned long long)seq,
                     (unsigned long long)expect, (unsigned long long)(seq - 1));
            err = POSGATE_ERR_CORRUPT;
            break;
        }
        if (audit_event_inspect(body, len, &info, sub, sizeof(sub)) != POSGATE_OK) {
            snprintf(errmsg, errcap, "chain broken at seq %llu: %s", (unsigned long long)seq, sub);
            err = POSGATE_ERR_CORRUPT;
            break;
        }
        if (info.seq != seq || memcmp(info.prev, prev, AUDIT_HASH_LEN) != 0) {
            snprintf(errmsg, errcap,
                     "chain broken at seq %llu: the event names seq %llu and a "
                     "previous hash that is not the hash of event %llu",
                     (unsigned long long)seq, (unsigned long long)info.seq,
                     (unsigned long long)(seq - 1));
            err = POSGATE_ERR_CORRUPT;
            break;
        }
        audit_chain_hash(prev, body, len, h);
        if (sqlite3_column_bytes(st, 2) != AUDIT_HASH_LEN ||
            memcmp(sqlite3_column_blob(st, 2), h, AUDIT_HASH_LEN) != 0) {
            snprintf(errmsg, errcap,
                     "chain broken at seq %llu: the stored hash is not "
                     "SHA-256(prev || event): the event was edited",
                     (unsigned long long)seq);
            err = POSGATE_ERR_CORRUPT;
            break;
        }
        memcpy(prev, h, AUDIT_HASH_LEN);
        expect++;
        n++;
    }
    if (err == POSGATE_OK && rc != SQLITE_DONE) {
        err = audit_sql_err(q->rdb, rc, "verify", errmsg, errcap);
    }
    sqlite3_finalize(st);
    sqlite3_exec(q->rdb, "COMMIT", NULL, NULL, NULL);
    pthread_mutex_unlock(&q->rlock);
    if (n_events != NULL) {
        *n_events = n;
    }
    return err;
}
