/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The audit queue's SQLite file (audit_db.h): its connections' settings, its schema (drawn in
 * audit.h) and its chain head.
 */
#include "audit_db.h"

#include <stdio.h>
#include <string.h>

#include <sqlite3.h>

#include "store.h"

#define BUSY_TIMEOUT_MS 10000
#define SCHEMA_VERSION  1

/* A new file's page size. Against SQLite's 4 KiB: a quarter of the WAL frames, of the writes
 * (two a frame) and of the checkpoint's reads and writes for the same events, so the writer
 * spends ~27% less CPU an event (batched ALLOWs, 3.1-3.5 -> 2.1-2.5 us), and a checkpoint, which
 * holds up the commit that runs it, takes half the time (the p99 of 32 waiting DENYs 4.8-5.7 ms
 * -> 2.1-2.2 ms at 1M). A DENY's commit writes more bytes (3 frames of 16 KiB against 6 of 4),
 * in as long. Files made before keep theirs. */
#define PAGE_SIZE_PRAGMA "PRAGMA page_size = 16384;"
/* the WAL is checkpointed past this size, SQLite's default (1000 pages of 4 KiB) */
#define CHECKPOINT_BYTES (4096 * 1000)

enum posgate_err
audit_sql_err(sqlite3 *db, int rc, const char *what, char *errmsg, size_t errcap)
{
    if (errmsg != NULL && errcap > 0) {
        snprintf(errmsg, errcap, "audit: %s: %s", what, db != NULL ? sqlite3_errmsg(db) : "");
    }
    if (rc == SQLITE_CORRUPT || rc == SQLITE_NOTADB) {
        return POSGATE_ERR_CORRUPT;
    }
    if (rc == SQLITE_BUSY || rc == SQLITE_LOCKED) {
        return POSGATE_ERR_RETRY;
    }
    if (rc == SQLITE_NOMEM) {
        return POSGATE_ERR_NOMEM;
    }
    return POSGATE_ERR_IO;
}

static enum posgate_err
exec(sqlite3 *db, const char *sql, char *errmsg, size_t errcap)
{
    int rc = sqlite3_exec(db, sql, NULL, NULL, NULL);

    return rc == SQLITE_OK ? POSGATE_OK : audit_sql_err(db, rc, sql, errmsg, errcap);
}

static const char schema[] =
    "CREATE TABLE IF NOT EXISTS events(seq INTEGER PRIMARY KEY, kind TEXT NOT NULL,"
    " decision TEXT NOT NULL, time_us INTEGER NOT NULL, body TEXT NOT NULL, hash BLOB NOT NULL);"
    "CREATE TABLE IF NOT EXISTS meta(k TEXT PRIMARY KEY, v INTEGER NOT NULL, b BLOB);"
    "INSERT OR IGNORE INTO meta VALUES('anchor', 0, zeroblob(32)), ('acked', 0, NULL),"
    " ('bytes', 0, NULL);"
    "PRAGMA user_version = 1;";

/* PRAGMA user_version: SCHEMA_VERSION once the schema is in place, 0 for a new file. */
static int
schema_version(sqlite3 *db)
{
    sqlite3_stmt *st = NULL;
    int v = -1;

    if (sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW) {
        v = sqlite3_column_int(st, 0);
    }
    sqlite3_finalize(st);
    return v;
}

enum posgate_err
audit_db_open(const char *path, int readonly, sqlite3 **out, char *errmsg, size_t errcap)
{
    sqlite3 *db = NULL;
    int flags = readonly ? SQLITE_OPEN_READONLY : (SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
    int rc;
    enum posgate_err err;

    *out = NULL;
    store_sqlite_setup();
    rc = sqlite3_open_v2(path, &db, flags | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        if (readonly && rc == SQLITE_CANTOPEN) {
            snprintf(errmsg, errcap, "audit: %s does not exist (no decision was audited yet)",
                     path);
            sqlite3_close(db);
            return POSGATE_ERR_NOTFOUND;
        }
        err = audit_sql_err(db, rc, path, errmsg, errcap);
        sqlite3_close(db);
        return err;
    }
    sqlite3_busy_timeout(db, BUSY_TIMEOUT_MS);
    /* the page size first: it takes effect only before a new file's first page is written */
    err = exec(db,
               readonly ? "PRAGMA query_only = ON;"
                        : PAGE_SIZE_PRAGMA " PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;",
               errmsg, errcap);
    if (err == POSGATE_OK && !readonly) {
        sqlite3_stmt *st = NULL;
        int page = 4096;

        if (sqlite3_prepare_v2(db, "PRAGMA page_size", -1, &st, NULL) == SQLITE_OK &&
            sqlite3_step(st) == SQLITE_ROW && sqlite3_column_int(st, 0) > 0) {
            page = sqlite3_column_int(st, 0);
        }
        sqlite3_finalize(st);
        sqlite3_wal_autocheckpoint(db, CHECKPOINT_BYTES / page);
    }
    if (err != POSGATE_OK) {
        sqlite3_close(db);
        return err;
    }
    *out = db;
    return POSGATE_OK;
}

enum posgate_err
audit_db_create(sqlite3 *db, char *errmsg, size_t errcap)
{
    /* a write transaction: only for a new file, so that an existing queue opens on a full disk
     * (its commits then draw on the reserve) */
    return schema_version(db) == SCHEMA_VERSION ? POSGATE_OK : exec(db, schema, errmsg, errcap);
}

/* The chain head: the newest event, else the anchor left by pruning. */
int
audit_read_head(sqlite3_stmt *head, sqlite3_stmt *anchor, uint64_t *seq,
                uint8_t hash[AUDIT_HASH_LEN])
{
    sqlite3_stmt *st = head;
    int rc = sqlite3_step(st);

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
