/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Pruning the audit queue (audit_prune.h): the prefix of the chain the collector holds and the
 * retention period lets go, and the anchor that the chain is verified from afterwards.
 */
#include "audit_prune.h"

#include <string.h>

#include <sqlite3.h>

#include "audit_event.h"

int
audit_prune_prefix(sqlite3 *db, uint64_t upto, int64_t cutoff_us, uint64_t *freed)
{
    sqlite3_stmt *st = NULL;
    uint64_t limit = upto, anchor = 0;
    uint8_t hash[AUDIT_HASH_LEN];
    int rc, have = 0;

    *freed = 0;
    rc = sqlite3_prepare_v2(db, "SELECT min(seq) FROM events WHERE seq <= ?1 AND time_us >= ?2", -1,
                            &st, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_bind_int64(st, 1, (sqlite3_int64)upto);
        sqlite3_bind_int64(st, 2, cutoff_us);
        if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL) {
            limit = (uint64_t)sqlite3_column_int64(st, 0) - 1;
        }
        sqlite3_finalize(st);
        st = NULL;
        rc = sqlite3_prepare_v2(db,
                                "SELECT seq, hash FROM events WHERE seq <= ?1 "
                                "ORDER BY seq DESC LIMIT 1",
                                -1, &st, NULL);
    }
    if (rc == SQLITE_OK) {
        sqlite3_bind_int64(st, 1, (sqlite3_int64)limit);
        if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_bytes(st, 1) == AUDIT_HASH_LEN) {
            anchor = (uint64_t)sqlite3_column_int64(st, 0);
            memcpy(hash, sqlite3_column_blob(st, 1), AUDIT_HASH_LEN);
            have = 1;
        }
        sqlite3_finalize(st);
        st = NULL;
    }
    if (rc != SQLITE_OK || !have) {
        return rc;
    }
    rc = sqlite3_prepare_v2(db,
                            "SELECT total(length(CAST(body AS BLOB))) FROM events "
                            "WHERE seq <= ?1",
                            -1, &st, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_bind_int64(st, 1, (sqlite3_int64)anchor);
        if (sqlite3_step(st) == SQLITE_ROW) {
            *freed = (uint64_t)sqlite3_column_double(st, 0);
        }
        sqlite3_finalize(st);
        st = NULL;
        rc = sqlite3_prepare_v2(db, "DELETE FROM events WHERE seq <= ?1", -1, &st, NULL);
    }
    if (rc == SQLITE_OK) {
        sqlite3_bind_int64(st, 1, (sqlite3_int64)anchor);
        rc = sqlite3_step(st) == SQLITE_DONE ? SQLITE_OK : sqlite3_errcode(db);
        sqlite3_finalize(st);
        st = NULL;
        rc = rc != SQLITE_OK ? rc
                             : sqlite3_prepare_v2(db,
                                                  "UPDATE meta SET v = ?1, b = ?2 WHERE k = "
                                                  "'anchor'",
                                                  -1, &st, NULL);
    }
    if (rc == SQLITE_OK) {
        sqlite3_bind_int64(st, 1, (sqlite3_int64)anchor);
        sqlite3_bind_blob(st, 2, hash, AUDIT_HASH_LEN, SQLITE_STATIC);
        rc = sqlite3_step(st) == SQLITE_DONE ? SQLITE_OK : sqlite3_errcode(db);
        sqlite3_finalize(st);
        st = NULL;
        rc = rc != SQLITE_OK ? rc
                             : sqlite3_prepare_v2(db,
                                                  "UPDATE meta SET v = max(0, v - ?1) "
                                                  "WHERE k IN ('bytes', 'bytes_v')",
                                                  -1, &st, NULL);
    }
    if (rc == SQLITE_OK) {
        /* meta 'bytes' counts the events up to its b: when that is below the new anchor, every
         * event it counted is gone (v <= freed), and those left are after b */
        sqlite3_bind_int64(st, 1, (sqlite3_int64)*freed);
        rc = sqlite3_step(st) == SQLITE_DONE ? SQLITE_OK : sqlite3_errcode(db);
        sqlite3_finalize(st);
    }
    return rc;
}

int
audit_bytes_read(sqlite3 *db, uint64_t *bytes, uint64_t *upto)
{
    sqlite3_stmt *st = NULL;
    int rc, counted_all = 1, recount = 0;

    *bytes = 0;
    *upto = 0;
    rc = sqlite3_prepare_v2(db,
                            "SELECT v, b, (SELECT v FROM meta WHERE k = 'bytes_v') FROM meta "
                            "WHERE k = 'bytes'",
                            -1, &st, NULL);
    if (rc == SQLITE_OK) {
        rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) {
            *bytes = (uint64_t)sqlite3_column_int64(st, 0);
            if (sqlite3_column_type(st, 1) == SQLITE_INTEGER) {
                *upto = (uint64_t)sqlite3_column_int64(st, 1);
                counted_all = 0;
                /* v moved without its copy: a writer that knows no b (the binary before it) added
                 * its events to v, which the sum after b would count again: count every event */
                if (sqlite3_column_type(st, 2) != SQLITE_INTEGER ||
                    sqlite3_column_int64(st, 2) != sqlite3_column_int64(st, 0)) {
                    *bytes = 0;
                    *upto = 0;
                    recount = 1;
                }
            }
        }
        rc = rc == SQLITE_ROW || rc == SQLITE_DONE ? SQLITE_OK : rc;
        sqlite3_finalize(st);
        st = NULL;
    }
    if (rc != SQLITE_OK || counted_all) {
        *upto = UINT64_MAX;
        return rc;
    }
    rc = sqlite3_prepare_v2(
        db, "SELECT total(length(CAST(body AS BLOB))) FROM events WHERE seq > ?1", -1, &st, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_bind_int64(st, 1, (sqlite3_int64)*upto);
        rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) {
            *bytes += (uint64_t)sqlite3_column_double(st, 0);
            rc = SQLITE_OK;
        }
        sqlite3_finalize(st);
    }
    if (recount) {
        *upto = UINT64_MAX; /* every event counted: the writer's next commit writes the row */
    }
    return rc;
}
