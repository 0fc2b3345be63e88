/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The audit queue's state (audit.h), shared by its two halves: audit.c, the ring, the writer
 * thread and its group commit, and audit_read.c, the reads, acknowledgements, pruning and
 * verification on the rdb connection. Nothing outside agent/audit includes it.
 */
#ifndef POSGATE_AUDIT_QUEUE_H
#define POSGATE_AUDIT_QUEUE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include <sqlite3.h>

#include "audit.h"
#include "audit_event.h"
#include "audit_pack.h"
#include "audit_reserve.h"
#include "buf.h"
#include "crypto.h"
#include "device_key.h"

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
    struct receipt *rc;     /* NULL: nobody waits (a batched ALLOW) */
    uint64_t seq;           /* set by the writer */
    uintptr_t producer;     /* the recording thread (producer_mark) */
    _Atomic uint64_t ready; /* ticket + 1 once ev and rc are written (release) */
    pthread_cond_t cv;
    struct audit_packed ev; /* 2 KB with the members above (glibc) */
};

/* The chain's head and the bytes of its events, as a commit leaves them */
struct chain {
    uint64_t seq;
    uint8_t hash[AUDIT_HASH_LEN];
    uint64_t bytes;
};

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
     * the one committer. A caller takes a ticket (`tail`, fetch-and-add: the order of the chain),
     * waits only when the ring holds RING_CAP tickets not yet taken by a commit, writes its event
     * into the slot of ring[ticket % RING_CAP] and publishes it (the slot's ready). A batched ALLOW
     * does all that without q->mu. A commit takes the published run of tickets from head on, under
     * q->mu, and moves `taken` past them (release: the ring's new spare pointers are then the
     * callers'). */
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
    uint64_t done_count;   /* tickets committed (or failed) */
    uint64_t oldest_ns;    /* no queued event is older: the last take; 0: the writer saw none */
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

/* Events in the ring not yet taken by a commit. */
static inline uint64_t
audit_queued(struct audit_queue *q)
{
    return atomic_load(&q->tail) - atomic_load(&q->taken);
}

#endif
