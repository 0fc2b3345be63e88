/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Raw SQLite floors of posgate-bench, the best the storage engine itself can do on this disk:
 *
 *   fsync  one ~300-byte row per transaction, journal_mode=WAL and synchronous=FULL (what a
 *          durable audit event costs at the least): --dir DIR [--count N] [--cdf FILE]
 *   group  the same rows from --producers threads (default 32), committed by one writer thread in
 *          groups: each producer hands over one row and waits until a commit holding it is
 *          durable, then hands over the next; the writer takes every row handed over so far and
 *          commits them in one transaction (WAL, synchronous=FULL), as many rows a commit as
 *          arrived while the previous one was on disk (what 32 concurrent durable audit events
 *          cost at the least): --dir DIR [--rows N] [--producers P] [--row-bytes B (300)]
 *   bulk   N sorted 16-byte keys into a WITHOUT ROWID table in one transaction, WAL and
 *          synchronous=FULL as the store uses (what a streamed import costs at the least):
 *          --dir DIR --entries N
 *
 * Bulk keys are generated in order (a rising 64-bit prefix and a mixed 64-bit suffix), so no
 * sort and no key array is needed at any N.
 */
#define _POSIX_C_SOURCE 200809L
#include <inttypes.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"

#define ROW_BYTES     300 /* --row-bytes default: about a small audit event */
#define ROW_BYTES_MAX 4096
#define PRODUCERS_MAX 256

static void
sql_ok(sqlite3 *db, int rc, const char *what)
{
    if (rc != SQLITE_OK && rc != SQLITE_DONE && rc != SQLITE_ROW) {
        bench_die("sqlite %s: %s", what, db != NULL ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
    }
}

static sqlite3 *
open_fresh(const char *dir, const char *name, const char *schema)
{
    char path[4096], side[4200];
    sqlite3 *db = NULL;

    snprintf(path, sizeof path, "%s/%s", dir, name);
    unlink(path);
    snprintf(side, sizeof side, "%s-wal", path);
    unlink(side);
    snprintf(side, sizeof side, "%s-shm", path);
    unlink(side);
    sql_ok(NULL, sqlite3_open(path, &db), "open");
    sql_ok(db,
           sqlite3_exec(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;", NULL, NULL, NULL),
           "pragma");
    sql_ok(db, sqlite3_exec(db, schema, NULL, NULL, NULL), "schema");
    return db;
}

int
bench_cmd_fsync(int argc, char **argv)
{
    const char *dir = bench_arg(argc, argv, "--dir", NULL);
    const char *cdf = bench_arg(argc, argv, "--cdf", NULL);
    uint64_t count = bench_arg_u64(argc, argv, "--count", 500);
    struct bench_hist *h = malloc(sizeof *h);
    sqlite3 *db;
    sqlite3_stmt *ins = NULL;
    uint8_t row[ROW_BYTES];

    if (dir == NULL || h == NULL || count == 0) {
        bench_die("usage: fsync --dir DIR [--count N] [--cdf FILE]");
    }
    db = open_fresh(dir, "fsync.db",
                    "CREATE TABLE ev(seq INTEGER PRIMARY KEY, at INTEGER, body BLOB)");
    sql_ok(
        db,
        sqlite3_prepare_v2(db, "INSERT INTO ev(seq, at, body) VALUES (?1, ?2, ?3)", -1, &ins, NULL),
        "prepare");
    bench_hist_init(h);
    for (uint64_t i = 0; i < count + 20; i++) {
        uint64_t t0 = plat_mono_ns(), t1;

        for (size_t j = 0; j < sizeof row; j++) {
            row[j] = (uint8_t)(i * 31 + j);
        }
        sqlite3_bind_int64(ins, 1, (sqlite3_int64)(i + 1));
        sqlite3_bind_int64(ins, 2, (sqlite3_int64)t0);
        sqlite3_bind_blob(ins, 3, row, (int)sizeof row, SQLITE_STATIC);
        sql_ok(db, sqlite3_step(ins), "insert");
        sqlite3_reset(ins);
        t1 = plat_mono_ns();
        if (i >= 20) { /* the first commits create the WAL */
            bench_hist_add(h, t1 - t0);
        }
    }
    bench_hist_print(h, "fsync_floor");
    if (cdf != NULL && bench_hist_write_cdf(h, cdf) != 0) {
        bench_die("%s: cannot write the CDF", cdf);
    }
    sqlite3_finalize(ins);
    sqlite3_close(db);
    free(h);
    return 0;
}

/* The group-commit floor: producers hand rows over under mu; the writer commits them in groups. */
struct group {
    pthread_mutex_t mu;
    pthread_cond_t cv_rows, cv_done;
    uint64_t handed;    /* rows handed over */
    uint64_t committed; /* rows durable (a prefix: commits are in order) */
    uint64_t rows;      /* rows to hand over in all */
    uint64_t commits;
    struct bench_hist *h; /* hand-over to durable, per row */
    sqlite3 *db;
    sqlite3_stmt *ins;
    size_t row_bytes;
};

static void *
group_producer(void *arg)
{
    struct group *g = arg;

    pthread_mutex_lock(&g->mu);
    while (g->handed < g->rows) {
        uint64_t mine = ++g->handed, t0 = plat_mono_ns();

        pthread_cond_signal(&g->cv_rows);
        while (g->committed < mine) {
            pthread_cond_wait(&g->cv_done, &g->mu);
        }
        bench_hist_add(g->h, plat_mono_ns() - t0);
    }
    pthread_mutex_unlock(&g->mu);
    return NULL;
}

/* Commits rows (from, to] in one transaction; the row bodies are made here, as the producers'
 * rows would be copied in. */
static void
group_commit(struct group *g, uint64_t from, uint64_t to)
{
    uint8_t row[ROW_BYTES_MAX];

    sql_ok(g->db, sqlite3_exec(g->db, "BEGIN", NULL, NULL, NULL), "begin");
    for (uint64_t i = from + 1; i <= to; i++) {
        for (size_t j = 0; j < g->row_bytes; j++) {
            row[j] = (uint8_t)(i * 31 + j);
        }
        sqlite3_bind_int64(g->ins, 1, (sqlite3_int64)i);
        sqlite3_bind_int64(g->ins, 2, (sqlite3_int64)plat_mono_ns());
        sqlite3_bind_blob(g->ins, 3, row, (int)g->row_bytes, SQLITE_STATIC);
        sql_ok(g->db, sqlite3_step(g->ins), "insert");
        sqlite3_reset(g->ins);
    }
    sql_ok(g->db, sqlite3_exec(g->db, "COMMIT", NULL, NULL, NULL), "commit");
}

int
bench_cmd_group(int argc, char **argv)
{
    const char *dir = bench_arg(argc, argv, "--dir", NULL);
    uint64_t rows = bench_arg_u64(argc, argv, "--rows", 5000);
    uint64_t np = bench_arg_u64(argc, argv, "--producers", 32);
    uint64_t row_bytes = bench_arg_u64(argc, argv, "--row-bytes", ROW_BYTES);
    pthread_t th[PRODUCERS_MAX];
    struct group g;
    uint64_t t0, t1;

    if (dir == NULL || rows == 0 || np == 0 || np > PRODUCERS_MAX || row_bytes == 0 ||
        row_bytes > ROW_BYTES_MAX) {
        bench_die("usage: group --dir DIR [--rows N] [--producers 1..%d] [--row-bytes 1..%d]",
                  PRODUCERS_MAX, ROW_BYTES_MAX);
    }
    memset(&g, 0, sizeof g);
    g.row_bytes = (size_t)row_bytes;
    g.rows = rows;
    g.h = malloc(sizeof *g.h);
    if (g.h == NULL) {
        bench_die("out of memory");
    }
    bench_hist_init(g.h);
    g.db = open_fresh(dir, "group.db",
                      "CREATE TABLE ev(seq INTEGER PRIMARY KEY, at INTEGER, body BLOB)");
    sql_ok(g.db,
           sqlite3_prepare_v2(g.db, "INSERT INTO ev(seq, at, body) VALUES (?1, ?2, ?3)", -1, &g.ins,
                              NULL),
           "prepare");
    group_commit(&g, 0, 0); /* the first commit creates the WAL */
    pthread_mutex_init(&g.mu, NULL);
    pthread_cond_init(&g.cv_rows, NULL);
    pthread_cond_init(&g.cv_done, NULL);
    t0 = plat_mono_ns();
    for (uint64_t i = 0; i < np; i++) {
        if (pthread_create(&th[i], NULL, group_producer, &g) != 0) {
            bench_die("cannot start a producer thread");
        }
    }
    pthread_mutex_lock(&g.mu);
    while (g.committed < g.rows) {
        uint64_t from = g.committed, to;

        while (g.handed == from) {
            pthread_cond_wait(&g.cv_rows, &g.mu);
        }
        to = g.handed;
        pthread_mutex_unlock(&g.mu);
        group_commit(&g, from, to);
        pthread_mutex_lock(&g.mu);
        g.committed = to;
        g.commits++;
        pthread_cond_broadcast(&g.cv_done);
    }
    pthread_mutex_unlock(&g.mu);
    for (uint64_t i = 0; i < np; i++) {
        pthread_join(th[i], NULL);
    }
    t1 = plat_mono_ns();
    printf("group_commit_floor_per_s=%.0f\n", (double)rows * 1e9 / (double)(t1 - t0));
    printf("group_commit_floor_rows_per_commit=%.1f\n", (double)rows / (double)g.commits);
    printf("group_commit_floor_producers=%" PRIu64 "\n", np);
    bench_hist_print(g.h, "group_commit_floor");
    sqlite3_finalize(g.ins);
    sqlite3_close(g.db);
    pthread_cond_destroy(&g.cv_rows);
    pthread_cond_destroy(&g.cv_done);
    pthread_mutex_destroy(&g.mu);
    free(g.h);
    return 0;
}

int
bench_cmd_bulk(int argc, char **argv)
{
    const char *dir = bench_arg(argc, argv, "--dir", NULL);
    uint64_t n = bench_arg_u64(argc, argv, "--entries", 0);
    uint64_t step, t0, t1;
    sqlite3 *db;
    sqlite3_stmt *ins = NULL;

    if (dir == NULL || n == 0) {
        bench_die("usage: bulk --dir DIR --entries N");
    }
    step = UINT64_MAX / n;
    db = open_fresh(dir, "bulk.db", "CREATE TABLE k(k BLOB PRIMARY KEY) WITHOUT ROWID");
    sql_ok(db, sqlite3_prepare_v2(db, "INSERT INTO k(k) VALUES (?1)", -1, &ins, NULL), "prepare");
    t0 = plat_mono_ns();
    sql_ok(db, sqlite3_exec(db, "BEGIN", NULL, NULL, NULL), "begin");
    for (uint64_t i = 0; i < n; i++) {
        uint8_t key[16];
        uint64_t hi = i * step, lo = bench_mix(i);

        for (int b = 0; b < 8; b++) {
            key[b] = (uint8_t)(hi >> (56 - 8 * b));
            key[8 + b] = (uint8_t)(lo >> (56 - 8 * b));
        }
        sqlite3_bind_blob(ins, 1, key, (int)sizeof key, SQLITE_STATIC);
        sql_ok(db, sqlite3_step(ins), "insert");
        sqlite3_reset(ins);
    }
    sql_ok(db, sqlite3_exec(db, "COMMIT", NULL, NULL, NULL), "commit");
    t1 = plat_mono_ns();
    printf("bulk_floor_s=%.3f\n", (double)(t1 - t0) / 1e9);
    printf("bulk_floor_entries_per_s=%.0f\n", (double)n * 1e9 / (double)(t1 - t0));
    sqlite3_finalize(ins);
    sqlite3_close(db);
    return 0;
}
