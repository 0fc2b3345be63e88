/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The audit queue's SQLite file (audit.h draws its schema): opening a connection to it with the
 * queue's settings, creating the schema in a new file, reading the chain's head, and SQLite's
 * codes as posgate's errors: what both halves of the queue (audit.c, audit_read.c) use.
 */
#ifndef POSGATE_AUDIT_DB_H
#define POSGATE_AUDIT_DB_H

#include <stddef.h>
#include <stdint.h>

#include "audit_event.h"
#include "posgate_err.h"

struct sqlite3;
struct sqlite3_stmt;

/* A connection to the queue at path: read-only (NOTFOUND when there is no file), or read-write,
 * creating the file, in WAL mode with synchronous=FULL; a new file gets the queue's page size. */
POSGATE_WUR enum posgate_err audit_db_open(const char *path, int readonly, struct sqlite3 **out,
                                           char *errmsg, size_t errcap);
/* Creates the schema unless the file has it (the only write an open makes). */
POSGATE_WUR enum posgate_err audit_db_create(struct sqlite3 *db, char *errmsg, size_t errcap);
/* rc (an SQLite code from db) as an error, "audit: WHAT: SQLite's message" into errmsg (NULL:
 * none): CORRUPT, RETRY for a busy file, NOMEM, else IO. */
enum posgate_err audit_sql_err(struct sqlite3 *db, int rc, const char *what, char *errmsg,
                               size_t errcap);
/* The chain head: the newest event (head: SELECT seq, hash of the last event), else the anchor
 * left by pruning (anchor: SELECT v, b of meta 'anchor'). An SQLite code; CORRUPT when neither
 * has a row. Both statements are reset. */
int audit_read_head(struct sqlite3_stmt *head, struct sqlite3_stmt *anchor, uint64_t *seq,
                    uint8_t hash[AUDIT_HASH_LEN]);

#endif
