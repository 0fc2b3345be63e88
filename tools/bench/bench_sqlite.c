/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Raw SQLite floors of posgate-bench, the best the storage engine itself can do on this disk:
 *
 *   fsync  one ~300-byte row per transaction, journal_mode=WAL and synchronous=FULL (what a
 *          durable audit event costs at the least): --dir DIR [--count N] [--cdf FILE]
 *   bulk   N sorted 16-byte keys into a WITHOUT ROWID table in one transaction, WAL and
 *          synchronous=FULL as the store uses (what a streamed import costs at the least):
 *          --dir DIR --entries N
 *
 * Bulk keys are generated in order (a rising 64-bit prefix and a mixed 64-bit suffix), so no
 * sort and no key array is needed at any N.
 */
#define _POSIX_C_SOURCE 200809L
#include <inttypes.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"

#define ROW_BYTES 300

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
