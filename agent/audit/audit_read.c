/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The audit queue (audit.h), its reading half, on the rdb connection under rlock: the signed
 * batches for the uploader, acknowledgements and pruning, statistics, reading every event, and
 * chain verification. The writing half is audit.c.
 */
#define _POSIX_C_SOURCE 200809L
#include "audit.h"
#include "audit_db.h"
#include "audit_prune.h"
#include "audit_queue.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include <sqlite3.h>

#include "crypto.h"
#include "plat_clock.h"

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
        rc = audit_read_head(h, a, seq, hash);
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

/* audit_ack (ack: the seq acknowledged) and audit_prune (ack 0) */
static enum posgate_err
ack_and_prune(struct audit_queue *q, int64_t now_s, uint64_t ack)
{
    enum posgate_err err;

    if (q == NULL || q->readonly) {
        return q == NULL ? POSGATE_ERR_INVALID : POSGATE_ERR_STATE;
    }
    pthread_mutex_lock(&q->rlock);
    err = prune_locked(q, now_s, ack);
    pthread_mutex_unlock(&q->rlock);
    return err;
}

enum posgate_err
audit_ack(struct audit_queue *q, uint64_t seq)
{
    return ack_and_prune(q, plat_wall_s(), seq);
}

enum posgate_err
audit_prune(struct audit_queue *q, int64_t now_s)
{
    return ack_and_prune(q, now_s, 0);
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
    out->pending = audit_queued(q);
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
