/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The store's SQLite layer: the helpers every file of the store calls (errors, statements,
 * transactions, checkpoints), the schema and its migrations, the process-wide SQLite setup,
 * the connection pragmas, and opening and closing a store. See store.h for the schema.
 */
#define _POSIX_C_SOURCE 200809L
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "plat_mem.h"
#include "store_internal.h"

#define STORE_MAGIC      "posgate-store"
#define MMAP_SIZE        (1LL << 31)
#define WRITER_CACHE_KIB 16384

/* Commits through any store handle of this process: readers renew when it moves, so a check
 * never answers from an older version than one this process already committed, whichever
 * handle committed it (an update runs on its own handle, checks on pooled readers). */
_Atomic uint64_t store_process_commits = 1;

/* ---------------------------------------------------------------- helpers */

enum posgate_err
store_sqlite_err(int rc)
{
    switch (rc & 0xff) {
    case SQLITE_OK:
    case SQLITE_ROW:
    case SQLITE_DONE:
        return POSGATE_OK;
    case SQLITE_NOMEM:
        return POSGATE_ERR_NOMEM;
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
    case SQLITE_FORMAT:
        return POSGATE_ERR_CORRUPT;
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        return POSGATE_ERR_RETRY;
    case SQLITE_CONSTRAINT:
        return POSGATE_ERR_REJECTED;
    case SQLITE_CANTOPEN:
        return POSGATE_ERR_IO;
    default:
        return POSGATE_ERR_IO;
    }
}

enum posgate_err
store_db_fail(sqlite3 *db, int rc, const char *what, char *msg, size_t cap)
{
    enum posgate_err err = store_sqlite_err(rc);

    plat_msgf(msg, cap, "store: %s: %s (%s)", what, sqlite3_errmsg(db), sqlite3_errstr(rc));
    if (err == POSGATE_OK) {
        err = POSGATE_ERR_IO;
    }
    return err;
}

enum posgate_err
store_exec(sqlite3 *db, const char *sql, char *msg, size_t cap)
{
    char *e = NULL;
    int rc = sqlite3_exec(db, sql, NULL, NULL, &e);

    if (rc != SQLITE_OK) {
        enum posgate_err err = store_sqlite_err(rc);

        plat_msgf(msg, cap, "store: %.60s: %s", sql, e != NULL ? e : sqlite3_errstr(rc));
        sqlite3_free(e);
        return err == POSGATE_OK ? POSGATE_ERR_IO : err;
    }
    return POSGATE_OK;
}

enum posgate_err
store_prepare(sqlite3 *db, const char *sql, sqlite3_stmt **out, char *msg, size_t cap)
{
    int rc = sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, out, NULL);

    if (rc != SQLITE_OK) {
        *out = NULL;
        return store_db_fail(db, rc, "prepare", msg, cap);
    }
    return POSGATE_OK;
}

/* Runs a query returning one integer; *found false when no row. */
enum posgate_err
store_query_int(sqlite3 *db, const char *sql, int64_t *out, bool *found, char *msg, size_t cap)
{
    sqlite3_stmt *st = NULL;
    enum posgate_err err = store_prepare(db, sql, &st, msg, cap);
    int rc;

    if (err != POSGATE_OK) {
        return err;
    }
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        *out = sqlite3_column_int64(st, 0);
        *found = true;
    } else if (rc == SQLITE_DONE) {
        *found = false;
    } else {
        err = store_db_fail(db, rc, "query", msg, cap);
    }
    sqlite3_finalize(st);
    return err;
}

/* The entries of all lists (the visible rows). */
enum posgate_err
store_lists_total(sqlite3 *db, int64_t *total, char *msg, size_t cap)
{
    bool found;

    return store_query_int(db, "SELECT coalesce(sum(entries), 0) FROM lists", total, &found, msg,
                           cap);
}

/* The key set token (meta "keyset", keyfilter.h); *have is false when the store has none. */
enum posgate_err
store_read_token(sqlite3 *db, uint8_t token[KEYFILTER_TOKEN_LEN], bool *have, char *msg, size_t cap)
{
    sqlite3_stmt *st = NULL;
    enum posgate_err err =
        store_prepare(db, "SELECT value FROM meta WHERE name = 'keyset'", &st, msg, cap);
    int rc;

    *have = false;
    if (err != POSGATE_OK) {
        return err;
    }
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW && sqlite3_column_type(st, 0) == SQLITE_BLOB &&
        sqlite3_column_bytes(st, 0) == KEYFILTER_TOKEN_LEN) {
        memcpy(token, sqlite3_column_blob(st, 0), KEYFILTER_TOKEN_LEN);
        *have = true;
    } else if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        err = store_db_fail(db, rc, "read the key set token", msg, cap);
    }
    sqlite3_finalize(st);
    return err;
}

/* ---------------------------------------------------------------- schema and migrations */

typedef enum posgate_err (*migrate_fn)(sqlite3 *db, char *msg, size_t cap);

/* Version 1: the first schema. */
static enum posgate_err
migrate_to_1(sqlite3 *db, char *msg, size_t cap)
{
    return store_exec(
        db,
        "CREATE TABLE meta(name TEXT PRIMARY KEY NOT NULL, value) WITHOUT ROWID;"
        "INSERT INTO meta VALUES('magic', '" STORE_MAGIC "');"
        "CREATE TABLE lists(no INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE,"
        " seq INTEGER NOT NULL, entries INTEGER NOT NULL, digest TEXT NOT NULL,"
        " state BLOB NOT NULL, issued_at INTEGER NOT NULL);"
        "CREATE TABLE tmpl(id INTEGER PRIMARY KEY, list INTEGER NOT NULL,"
        " stem BLOB NOT NULL, width INTEGER NOT NULL, UNIQUE(list, stem, width));"
        "CREATE TABLE entries(k BLOB NOT NULL, t INTEGER NOT NULL, n INTEGER NOT NULL,"
        " a INTEGER NOT NULL, f INTEGER NOT NULL, u INTEGER, s BLOB,"
        " PRIMARY KEY(k, t, n)) WITHOUT ROWID;",
        msg, cap);
}

/* Version 2: lists.reasons, the bitmap of reasons each list's entries use (for a list's
 * relevance to a service), filled from the existing rows. */
static enum posgate_err
migrate_to_2(sqlite3 *db, char *msg, size_t cap)
{
    enum posgate_err err;
    sqlite3_stmt *sel = NULL, *upd = NULL;
    int rc;
    int64_t cur = -1;
    uint8_t bits[STORE_REASON_BITMAP];
    size_t used = 0;

    err = store_exec(db, "ALTER TABLE lists ADD COLUMN reasons BLOB;", msg, cap);
    if (err == POSGATE_OK) {
        err = store_prepare(db,
                            "SELECT DISTINCT m.list, e.a >> 5 FROM entries AS e JOIN tmpl AS m"
                            " ON m.id = e.t ORDER BY 1",
                            &sel, msg, cap);
    }
    if (err == POSGATE_OK) {
        err = store_prepare(db, "UPDATE lists SET reasons = ?2 WHERE no = ?1", &upd, msg, cap);
    }
    if (err != POSGATE_OK) {
        goto out;
    }
    memset(bits, 0, sizeof(bits));
    for (;;) {
        int64_t list = 0, r = 0;

        rc = sqlite3_step(sel);
        if (rc == SQLITE_ROW) {
            list = sqlite3_column_int64(sel, 0);
            r = sqlite3_column_int64(sel, 1);
        } else if (rc != SQLITE_DONE) {
            err = store_db_fail(db, rc, "migration 2", msg, cap);
            goto out;
        }
        if (cur >= 0 && (rc == SQLITE_DONE || list != cur)) {
            sqlite3_bind_int64(upd, 1, cur);
            sqlite3_bind_blob(upd, 2, bits, (int)used, SQLITE_STATIC);
            if (sqlite3_step(upd) != SQLITE_DONE) {
                err = store_db_fail(db, sqlite3_errcode(db), "migration 2", msg, cap);
                goto out;
            }
            sqlite3_reset(upd);
            memset(bits, 0, sizeof(bits));
            used = 0;
        }
        if (rc == SQLITE_DONE) {
            break;
        }
        cur = list;
        if (r >= 0 && r < FEED_REASONS_MAX) {
            bits[r / 8] = (uint8_t)(bits[r / 8] | (1u << (r % 8)));
            if ((size_t)(r / 8) + 1 > used) {
                used = (size_t)(r / 8) + 1;
            }
        }
    }
out:
    sqlite3_finalize(sel);
    sqlite3_finalize(upd);
    return err;
}

/* Version 3: recent, the changes of deltas not yet merged into entries (store.h). */
static enum posgate_err
migrate_to_3(sqlite3 *db, char *msg, size_t cap)
{
    return store_exec(db,
                      "CREATE TABLE recent(k BLOB NOT NULL, t INTEGER NOT NULL, n INTEGER NOT NULL,"
                      " d INTEGER NOT NULL, a INTEGER, f INTEGER, u INTEGER, s BLOB,"
                      " PRIMARY KEY(k, t, n, d)) WITHOUT ROWID;",
                      msg, cap);
}

static const migrate_fn migrations[STORE_SCHEMA_VERSION] = {migrate_to_1, migrate_to_2,
                                                            migrate_to_3};

/* Brings the schema to STORE_SCHEMA_VERSION inside one write transaction. */
static enum posgate_err
check_schema(sqlite3 *db, bool may_create, bool readonly, char *msg, size_t cap)
{
    enum posgate_err err;
    int64_t version = 0, tables = 0, v;
    bool found;
    char sql[64];

    if (!readonly) {
        err = store_exec(db, "BEGIN IMMEDIATE", msg, cap);
        if (err != POSGATE_OK) {
            return err;
        }
    }
    err = store_query_int(db, "PRAGMA user_version", &version, &found, msg, cap);
    if (err == POSGATE_OK) {
        err = store_query_int(db, "SELECT count(*) FROM sqlite_schema", &tables, &found, msg, cap);
    }
    if (err != POSGATE_OK) {
        if (err == POSGATE_ERR_CORRUPT || err == POSGATE_ERR_IO) {
            plat_msgf(msg, cap, "store: not a posgate store or damaged: %s", sqlite3_errmsg(db));
            err = POSGATE_ERR_CORRUPT;
        }
        goto out;
    }
    if (version == 0 && tables != 0) {
        plat_msgf(msg, cap,
                  "store: not a posgate store: a SQLite database with %" PRId64
                  " objects and no schema version",
                  tables);
        err = POSGATE_ERR_CORRUPT;
        goto out;
    }
    if (version > STORE_SCHEMA_VERSION) {
        plat_msgf(msg, cap, "store: schema version %" PRId64 " is newer than this program's %d",
                  version, STORE_SCHEMA_VERSION);
        err = POSGATE_ERR_CORRUPT;
        goto out;
    }
    if (version < 0) {
        plat_msgf(msg, cap, "store: schema version %" PRId64 " is not valid", version);
        err = POSGATE_ERR_CORRUPT;
        goto out;
    }
    if (version > 0) {
        sqlite3_stmt *st = NULL;

        err = store_prepare(db, "SELECT value FROM meta WHERE name = 'magic'", &st, msg, cap);
        if (err == POSGATE_OK) {
            const unsigned char *m = NULL;

            if (sqlite3_step(st) == SQLITE_ROW) {
                m = sqlite3_column_text(st, 0);
            }
            if (m == NULL || strcmp((const char *)m, STORE_MAGIC) != 0) {
                plat_msgf(msg, cap,
                          "store: not a posgate store: meta.magic is \"%.32s\", "
                          "expected \"" STORE_MAGIC "\"",
                          m != NULL ? (const char *)m : "(none)");
                err = POSGATE_ERR_CORRUPT;
            }
        } else {
            plat_msgf(msg, cap, "store: not a posgate store: no meta table");
            err = POSGATE_ERR_CORRUPT;
        }
        sqlite3_finalize(st);
        if (err != POSGATE_OK) {
            goto out;
        }
    }
    if (version == STORE_SCHEMA_VERSION) {
        goto out;
    }
    if (readonly || (version == 0 && !may_create)) {
        plat_msgf(msg, cap,
                  "store: schema version %" PRId64 " needs migration to %d; open it "
                  "for writing first",
                  version, STORE_SCHEMA_VERSION);
        err = version == 0 ? POSGATE_ERR_CORRUPT : POSGATE_ERR_STATE;
        goto out;
    }
    for (v = version; v < STORE_SCHEMA_VERSION; v++) {
        err = migrations[v](db, msg, cap);
        if (err != POSGATE_OK) {
            goto out;
        }
    }
    snprintf(sql, sizeof(sql), "PRAGMA user_version = %d", STORE_SCHEMA_VERSION);
    err = store_exec(db, sql, msg, cap);
out:
    if (!readonly) {
        if (err == POSGATE_OK) {
            err = store_exec(db, "COMMIT", msg, cap);
        }
        if (err != POSGATE_OK) {
            (void)sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
        }
    }
    return err;
}

static void
sqlite_setup_once(void)
{
    /* Before SQLite initialises: no allocation statistics, so its allocator takes no global
     * mutex on every malloc (an insert allocates; the import and the check paths pay it). */
    (void)sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
}

void
store_sqlite_setup(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;

    (void)pthread_once(&once, sqlite_setup_once);
}

enum posgate_err
store_open_conn(const char *path, bool write, bool create, sqlite3 **out, char *msg, size_t cap)
{
    sqlite3 *db = NULL;
    int flags = SQLITE_OPEN_NOMUTEX | (write ? SQLITE_OPEN_READWRITE : SQLITE_OPEN_READONLY);
    int rc;
    enum posgate_err err;
    char pragmas[256];

    if (create) {
        flags |= SQLITE_OPEN_CREATE;
    }
    store_sqlite_setup();
    rc = sqlite3_open_v2(path, &db, flags, NULL);
    if (rc != SQLITE_OK) {
        err = db != NULL ? store_db_fail(db, rc, "open", msg, cap) : POSGATE_ERR_NOMEM;
        sqlite3_close(db);
        return err;
    }
    sqlite3_extended_result_codes(db, 1);
    sqlite3_busy_timeout(db, BUSY_TIMEOUT_MS);
    snprintf(pragmas, sizeof(pragmas),
             "PRAGMA secure_delete = ON; PRAGMA synchronous = FULL; PRAGMA foreign_keys = OFF;"
             " PRAGMA mmap_size = %lld; PRAGMA cache_size = -%d;",
             (long long)MMAP_SIZE, write ? WRITER_CACHE_KIB : 2048);
    err = store_exec(db, pragmas, msg, cap);
    if (err != POSGATE_OK) {
        /* A file that is no database fails here with SQLITE_NOTADB (CORRUPT); an I/O error
         * (a full disk while the WAL index is set up) stays IO, so nobody wipes a sound store.
         * The message names the file, not the pragmas. */
        plat_msgf(msg, cap, "store: %s: %s%s", path, sqlite3_errmsg(db),
                  err == POSGATE_ERR_CORRUPT ? " (expected a posgate store)" : "");
        sqlite3_close(db);
        return err;
    }
    *out = db;
    return POSGATE_OK;
}

enum posgate_err
store_open(const char *path, unsigned flags, struct store **out, char *errmsg, size_t errcap)
{
    struct store *s = NULL;
    enum posgate_err err;
    struct stat st;
    bool exists;
    bool readonly = (flags & STORE_READONLY) != 0;
    char dummy[8];

    if (errmsg == NULL || errcap == 0) {
        errmsg = dummy;
        errcap = sizeof(dummy);
    }
    errmsg[0] = 0;
    if (path == NULL || out == NULL) {
        plat_msgf(errmsg, errcap, "store: no path");
        return POSGATE_ERR_INVALID;
    }
    exists = stat(path, &st) == 0;
    if (!exists && ((flags & STORE_CREATE) == 0 || readonly)) {
        plat_msgf(errmsg, errcap, "store: %s does not exist (run posgate init)", path);
        return POSGATE_ERR_NOTFOUND;
    }
    if (exists && !S_ISREG(st.st_mode)) {
        plat_msgf(errmsg, errcap, "store: %s is not a regular file", path);
        return POSGATE_ERR_CORRUPT;
    }
    if (sqlite3_threadsafe() == 0) {
        plat_msgf(errmsg, errcap, "store: SQLite was built without thread support");
        return POSGATE_ERR_UNSUPPORTED;
    }
    s = plat_calloc(1, sizeof(*s));
    if (s == NULL) {
        return POSGATE_ERR_NOMEM;
    }
    s->flags = flags;
    atomic_init(&s->generation, 1);
    pthread_mutex_init(&s->kf_mu, NULL);
    err = store_open_conn(path, !readonly, (flags & STORE_CREATE) != 0, &s->db, errmsg, errcap);
    if (err != POSGATE_OK) {
        goto out;
    }
    if (!readonly) {
        sqlite3_stmt *jm = NULL;

        err = store_prepare(s->db, "PRAGMA journal_mode = WAL", &jm, errmsg, errcap);
        if (err == POSGATE_OK) {
            int rc = sqlite3_step(jm);
            const unsigned char *mode = rc == SQLITE_ROW ? sqlite3_column_text(jm, 0) : NULL;

            if (mode == NULL || strcmp((const char *)mode, "wal") != 0) {
                err = rc == SQLITE_ROW ? POSGATE_ERR_IO : store_sqlite_err(rc);
                if (err == POSGATE_ERR_IO || err == POSGATE_OK) {
                    err = POSGATE_ERR_CORRUPT;
                }
                plat_msgf(errmsg, errcap, "store: %s: cannot switch to WAL: %s", path,
                          mode != NULL ? (const char *)mode : sqlite3_errmsg(s->db));
            }
        } else {
            err = POSGATE_ERR_CORRUPT;
        }
        sqlite3_finalize(jm);
        if (err != POSGATE_OK) {
            goto out;
        }
    }
    err = check_schema(s->db, (flags & STORE_CREATE) != 0, readonly, errmsg, errcap);
    if (err != POSGATE_OK) {
        goto out;
    }
    s->kf_path = plat_malloc(strlen(path) + sizeof(KEYFILTER_SUFFIX));
    if (s->kf_path == NULL) {
        err = POSGATE_ERR_NOMEM;
        goto out;
    }
    memcpy(s->kf_path, path, strlen(path));
    memcpy(s->kf_path + strlen(path), KEYFILTER_SUFFIX, sizeof(KEYFILTER_SUFFIX));
    *out = s;
    s = NULL;
out:
    store_close(s);
    if (err != POSGATE_OK && strstr(errmsg, path) == NULL) {
        /* every refusal names the file: "store: PATH: what is wrong" */
        char what[STORE_ERRMSG_MAX];
        const char *w = strncmp(errmsg, "store: ", 7) == 0 ? errmsg + 7 : errmsg;

        plat_str_copy(what, sizeof(what), w);
        plat_msgf(errmsg, errcap, "store: %s: %s", path,
                  what[0] != 0 ? what : posgate_strerror(err));
    }
    return err;
}

void
store_close(struct store *s)
{
    if (s == NULL) {
        return;
    }
    sqlite3_close(s->db);
    plat_free(s->kf_path);
    pthread_mutex_destroy(&s->kf_mu);
    plat_free(s);
}

const char *
store_errmsg(const struct store *s)
{
    return s != NULL ? s->errmsg : "";
}

/* ---------------------------------------------------------------- transactions */

/* COMMIT when err is OK (its failure becomes err), else ROLLBACK; returns err. */
enum posgate_err
store_end_txn(struct store *s, enum posgate_err err)
{
    if (err == POSGATE_OK) {
        int rc = sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL);

        if (rc != SQLITE_OK) {
            err = store_db_fail(s->db, rc, "commit", s->errmsg, sizeof(s->errmsg));
        }
    }
    if (err != POSGATE_OK) {
        (void)sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
    }
    return err;
}

/* Copies the WAL into the database and truncates it, so that removed entries (zeroed by
 * secure_delete in the new pages) leave no old page images behind in the WAL. Best effort
 * and without waiting: a reader still on an older version keeps the WAL until the next
 * commit's checkpoint. */
void
store_checkpoint_now(struct store *s)
{
    sqlite3_busy_timeout(s->db, 0);
    (void)sqlite3_wal_checkpoint_v2(s->db, NULL, SQLITE_CHECKPOINT_TRUNCATE, NULL, NULL);
    sqlite3_busy_timeout(s->db, BUSY_TIMEOUT_MS);
}

const char *
store_sqlite_version(void)
{
    return sqlite3_libversion();
}
