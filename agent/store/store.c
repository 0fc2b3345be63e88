/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The SQLite store: schema and migrations, one-transaction updates applied record by record,
 * per-thread readers with a long-lived read transaction, and verification of every list's
 * state digest from its rows. The only module besides the audit queue that includes SQLite.
 * See store.h for the schema and the row encoding.
 */
#define _POSIX_C_SOURCE 200809L
#include "store.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <sqlite3.h>

#include "keyfilter.h"
#include "plat_clock.h"
#include "plat_log.h"
#include "plat_mem.h"
#include "plat_random.h"

#define STORE_MAGIC      "posgate-store"
#define BUSY_TIMEOUT_MS  10000
#define MMAP_SIZE        (1LL << 31)
#define WRITER_CACHE_KIB 16384
#define TMPL_CACHE_SLOTS 1024
#define STEM_MAX         FEED_LISTING_ID_MAX

/* Commits through any store handle of this process: readers renew when it moves, so a check
 * never answers from an older version than one this process already committed, whichever
 * handle committed it (an update runs on its own handle, checks on pooled readers). */
static _Atomic uint64_t process_commits = 1;

struct store {
    sqlite3 *db;
    unsigned flags;
    bool updating;
    _Atomic uint64_t generation; /* bumped after each commit through this handle */
    char *kf_path;               /* the key filter file beside the store (keyfilter.h) */
    char errmsg[STORE_ERRMSG_MAX];
};

struct tmpl_slot {
    int64_t id; /* 0 = empty */
    int64_t list;
    uint8_t width;
    uint8_t stem_len;
    char stem[STEM_MAX];
};

enum update_mode { MODE_NONE, MODE_SNAPSHOT, MODE_DELTA };

/* What an update does with the key filter, chosen at its first added key: add the keys to the
 * filter of the current version in place, write a new filter (kept when the update replaced
 * every list that had rows, so that it holds every key), or none (it is rebuilt later). */
enum kf_mode { KF_UNDECIDED, KF_INPLACE, KF_NEW, KF_NONE };

struct had_rows {
    int64_t no;
    bool cleared;
};

/* A snapshot's rows are inserted INS_BATCH at a time: one multi-row INSERT keeps its cursor
 * open across the rows (sorted keys then append without a seek from the root) and pays the
 * statement's start and reset once per batch. */
#define INS_BATCH 64

struct pending_row {
    uint8_t key[FEED_KEY_LEN];
    bool open_until;
    uint8_t scope_len;
    int64_t tid, num, attrs, from, until;
    uint8_t scope[2 * FEED_SCOPE_MAX];
    char listing_id[FEED_LISTING_ID_MAX + 1];
};

struct store_update {
    struct store *s;
    enum posgate_err failed; /* sticky first error */
    enum update_mode mode;
    int64_t list_no;
    char list_id[FEED_LIST_ID_MAX + 1];
    bool trust_state;
    bool additions_started;
    bool have_state;
    uint64_t old_seq;
    uint64_t count;
    uint64_t changes;
    struct state_digest state;
    uint8_t reasons[STORE_REASON_BITMAP];
    sqlite3_stmt *ins;
    sqlite3_stmt *ov_ins;  /* a delta's addition, into recent */
    sqlite3_stmt *ov_take; /* a delta's removal of a recent addition */
    sqlite3_stmt *ov_tomb; /* a delta's removal of an entries row: its marker in recent */
    sqlite3_stmt *tmpl_sel;
    sqlite3_stmt *tmpl_ins;
    sqlite3_stmt *ins_batch; /* INS_BATCH rows in one INSERT, prepared on first use */
    struct tmpl_slot tmpl_cache[TMPL_CACHE_SLOTS];
    enum kf_mode kf_mode;
    struct keyfilter_writer kf;
    bool have_token;                    /* the store had a key set token at begin */
    uint8_t token[KEYFILTER_TOKEN_LEN]; /* ... that token */
    uint64_t expect_keys;               /* store_update_expect_keys */
    uint64_t adds;                      /* keys added by this update */
    size_t n_had;                       /* lists that had rows at begin: */
    struct had_rows *had;               /* ... whether this update emptied each */
    unsigned n_pending;
    struct pending_row pending[INS_BATCH];
};

struct reader_list_map {
    int64_t no;
    uint16_t index;
};

struct store_reader {
    struct store *s;
    sqlite3 *db;
    sqlite3_stmt *lookup;    /* entries only: recent is empty */
    sqlite3_stmt *lookup_ov; /* entries without their removal markers, plus recent additions */
    bool has_recent;         /* recent holds rows in the reader's version */
    bool have_token;         /* the reader's version has a key set token ... */
    uint8_t token[KEYFILTER_TOKEN_LEN];
    bool kf_ok; /* ... and kf is a filter made for it */
    struct keyfilter_map kf;
    bool kf_rejected; /* kf failed the spot check for kf_rejected_token */
    uint8_t kf_rejected_token[KEYFILTER_TOKEN_LEN];
    bool in_txn;
    uint64_t seen_store_gen;
    uint64_t txn_start_ns;
    uint64_t renew_ns;
    int64_t data_version;
    uint64_t generation;
    struct store_meta meta;
    struct feed_config *cfg;
    struct buf cfg_bytes;
    struct store_list *lists;    /* STORE_LISTS_MAX */
    struct reader_list_map *map; /* sorted by no */
    size_t n_lists;
    char errmsg[STORE_ERRMSG_MAX];
};

/* ---------------------------------------------------------------- helpers */

static enum posgate_err
map_sqlite(int rc)
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

static enum posgate_err
db_fail(sqlite3 *db, int rc, const char *what, char *msg, size_t cap)
{
    enum posgate_err err = map_sqlite(rc);

    plat_msgf(msg, cap, "store: %s: %s (%s)", what, sqlite3_errmsg(db), sqlite3_errstr(rc));
    if (err == POSGATE_OK) {
        err = POSGATE_ERR_IO;
    }
    return err;
}

static enum posgate_err
exec_sql(sqlite3 *db, const char *sql, char *msg, size_t cap)
{
    char *e = NULL;
    int rc = sqlite3_exec(db, sql, NULL, NULL, &e);

    if (rc != SQLITE_OK) {
        enum posgate_err err = map_sqlite(rc);

        plat_msgf(msg, cap, "store: %.60s: %s", sql, e != NULL ? e : sqlite3_errstr(rc));
        sqlite3_free(e);
        return err == POSGATE_OK ? POSGATE_ERR_IO : err;
    }
    return POSGATE_OK;
}

static enum posgate_err
prepare(sqlite3 *db, const char *sql, sqlite3_stmt **out, char *msg, size_t cap)
{
    int rc = sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, out, NULL);

    if (rc != SQLITE_OK) {
        *out = NULL;
        return db_fail(db, rc, "prepare", msg, cap);
    }
    return POSGATE_OK;
}

/* Runs a query returning one integer; *found false when no row. */
static enum posgate_err
query_int(sqlite3 *db, const char *sql, int64_t *out, bool *found, char *msg, size_t cap)
{
    sqlite3_stmt *st = NULL;
    enum posgate_err err = prepare(db, sql, &st, msg, cap);
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
        err = db_fail(db, rc, "query", msg, cap);
    }
    sqlite3_finalize(st);
    return err;
}

/* Splits a listing id at its trailing run of at most FEED_NUM_DIGITS_MAX digits. */
/* The entries of all lists (the visible rows). */
static enum posgate_err
lists_total(sqlite3 *db, int64_t *total, char *msg, size_t cap)
{
    bool found;

    return query_int(db, "SELECT coalesce(sum(entries), 0) FROM lists", total, &found, msg, cap);
}

/* The key set token (meta "keyset", keyfilter.h); *have is false when the store has none. */
static enum posgate_err
read_token(sqlite3 *db, uint8_t token[KEYFILTER_TOKEN_LEN], bool *have, char *msg, size_t cap)
{
    sqlite3_stmt *st = NULL;
    enum posgate_err err =
        prepare(db, "SELECT value FROM meta WHERE name = 'keyset'", &st, msg, cap);
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
        err = db_fail(db, rc, "read the key set token", msg, cap);
    }
    sqlite3_finalize(st);
    return err;
}

static void
split_listing(const char *id, size_t len, size_t *stem_len, uint8_t *width, int64_t *num)
{
    size_t d = 0;
    int64_t v = 0;

    while (d < len && d < FEED_NUM_DIGITS_MAX && id[len - 1 - d] >= '0' && id[len - 1 - d] <= '9') {
        d++;
    }
    for (size_t i = len - d; i < len; i++) {
        v = v * 10 + (id[i] - '0');
    }
    *stem_len = len - d;
    *width = (uint8_t)d;
    *num = v;
}

/* Rebuilds stem || num zero-padded to width; false when it does not fit. */
static bool
join_listing(struct feed_entry *e, const void *stem, size_t stem_len, int64_t width, int64_t num)
{
    char digits[24];
    size_t nd = 0;

    if (width < 0 || width > FEED_NUM_DIGITS_MAX || num < 0 ||
        stem_len + (size_t)width > FEED_LISTING_ID_MAX || (width == 0 && num != 0)) {
        return false;
    }
    if (width > 0) {
        uint64_t v = (uint64_t)num;

        do {
            digits[nd++] = (char)('0' + v % 10);
            v /= 10;
        } while (v != 0);
        if (nd > (size_t)width) {
            return false;
        }
    }
    if (stem_len > 0) {
        memcpy(e->listing_id, stem, stem_len);
    }
    for (size_t i = 0; i < (size_t)width; i++) {
        size_t from_right = (size_t)width - 1 - i;

        e->listing_id[stem_len + i] = from_right < nd ? digits[from_right] : '0';
    }
    e->listing_id_len = (uint8_t)(stem_len + (size_t)width);
    e->listing_id[e->listing_id_len] = 0;
    return e->listing_id_len > 0;
}

/* Decodes the value columns of an entry row (everything but the key and the listing id). */
static bool
decode_attrs(struct feed_entry *e, int64_t a, int64_t f, sqlite3_stmt *st, int u_col, int s_col)
{
    int st_u = sqlite3_column_type(st, u_col);
    int st_s = sqlite3_column_type(st, s_col);

    if (a < 0 || a >= ((int64_t)1 << 21)) {
        return false;
    }
    e->kind = (uint8_t)(a & 1);
    e->id_type = (uint8_t)((a >> 1) & 0xf);
    e->reason = (uint16_t)(a >> 5);
    e->valid_from = f;
    if (st_u == SQLITE_NULL) {
        e->valid_until = FEED_UNTIL_OPEN;
    } else if (st_u == SQLITE_INTEGER) {
        e->valid_until = sqlite3_column_int64(st, u_col);
    } else {
        return false;
    }
    e->scope_count = 0;
    if (st_s == SQLITE_BLOB) {
        const uint8_t *p = sqlite3_column_blob(st, s_col);
        int n = sqlite3_column_bytes(st, s_col);

        if (n <= 0 || n % 2 != 0 || n / 2 > FEED_SCOPE_MAX || p == NULL) {
            return false;
        }
        for (int i = 0; i < n / 2; i++) {
            e->scope[i] = (uint16_t)((p[2 * i] << 8) | p[2 * i + 1]);
        }
        e->scope_count = (uint8_t)(n / 2);
    } else if (st_s != SQLITE_NULL) {
        return false;
    }
    return true;
}

static int64_t
encode_attrs(const struct feed_entry *e)
{
    return (int64_t)e->kind | ((int64_t)e->id_type << 1) | ((int64_t)e->reason << 5);
}

/* ---------------------------------------------------------------- schema and migrations */

typedef enum posgate_err (*migrate_fn)(sqlite3 *db, char *msg, size_t cap);

/* Version 1: the first schema. */
static enum posgate_err
migrate_to_1(sqlite3 *db, char *msg, size_t cap)
{
    return exec_sql(db,
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

    err = exec_sql(db, "ALTER TABLE lists ADD COLUMN reasons BLOB;", msg, cap);
    if (err == POSGATE_OK) {
        err = prepare(db,
                      "SELECT DISTINCT m.list, e.a >> 5 FROM entries AS e JOIN tmpl AS m"
                      " ON m.id = e.t ORDER BY 1",
                      &sel, msg, cap);
    }
    if (err == POSGATE_OK) {
        err = prepare(db, "UPDATE lists SET reasons = ?2 WHERE no = ?1", &upd, msg, cap);
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
            err = db_fail(db, rc, "migration 2", msg, cap);
            goto out;
        }
        if (cur >= 0 && (rc == SQLITE_DONE || list != cur)) {
            sqlite3_bind_int64(upd, 1, cur);
            sqlite3_bind_blob(upd, 2, bits, (int)used, SQLITE_STATIC);
            if (sqlite3_step(upd) != SQLITE_DONE) {
                err = db_fail(db, sqlite3_errcode(db), "migration 2", msg, cap);
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
    return exec_sql(db,
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
        err = exec_sql(db, "BEGIN IMMEDIATE", msg, cap);
        if (err != POSGATE_OK) {
            return err;
        }
    }
    err = query_int(db, "PRAGMA user_version", &version, &found, msg, cap);
    if (err == POSGATE_OK) {
        err = query_int(db, "SELECT count(*) FROM sqlite_schema", &tables, &found, msg, cap);
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

        err = prepare(db, "SELECT value FROM meta WHERE name = 'magic'", &st, msg, cap);
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
    err = exec_sql(db, sql, msg, cap);
out:
    if (!readonly) {
        if (err == POSGATE_OK) {
            err = exec_sql(db, "COMMIT", msg, cap);
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

static enum posgate_err
open_conn(const char *path, bool write, bool create, sqlite3 **out, char *msg, size_t cap)
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
        err = db != NULL ? db_fail(db, rc, "open", msg, cap) : POSGATE_ERR_NOMEM;
        sqlite3_close(db);
        return err;
    }
    sqlite3_extended_result_codes(db, 1);
    sqlite3_busy_timeout(db, BUSY_TIMEOUT_MS);
    snprintf(pragmas, sizeof(pragmas),
             "PRAGMA secure_delete = ON; PRAGMA synchronous = FULL; PRAGMA foreign_keys = OFF;"
             " PRAGMA mmap_size = %lld; PRAGMA cache_size = -%d;",
             (long long)MMAP_SIZE, write ? WRITER_CACHE_KIB : 2048);
    err = exec_sql(db, pragmas, msg, cap);
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
    err = open_conn(path, !readonly, (flags & STORE_CREATE) != 0, &s->db, errmsg, errcap);
    if (err != POSGATE_OK) {
        goto out;
    }
    if (!readonly) {
        sqlite3_stmt *jm = NULL;

        err = prepare(s->db, "PRAGMA journal_mode = WAL", &jm, errmsg, errcap);
        if (err == POSGATE_OK) {
            int rc = sqlite3_step(jm);
            const unsigned char *mode = rc == SQLITE_ROW ? sqlite3_column_text(jm, 0) : NULL;

            if (mode == NULL || strcmp((const char *)mode, "wal") != 0) {
                err = rc == SQLITE_ROW ? POSGATE_ERR_IO : map_sqlite(rc);
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
    plat_free(s);
}

const char *
store_errmsg(const struct store *s)
{
    return s != NULL ? s->errmsg : "";
}

/* ---------------------------------------------------------------- reading meta and lists */

static const char *const meta_names[] = {
    "feed_version", "root_version", "snapshot_version",  "targets_version",
    "issued_at",    "expires_at",   "newest_issue_seen", "installed_at",
};

static int64_t *
meta_field(struct store_meta *m, size_t i)
{
    int64_t *f[] = {&m->feed_version, &m->root_version, &m->snapshot_version,  &m->targets_version,
                    &m->issued_at,    &m->expires_at,   &m->newest_issue_seen, &m->installed_at};

    return f[i];
}

static void
parse_jurisdictions(struct store_meta *m, const char *s)
{
    m->n_jurisdictions = 0;
    while (s != NULL && s[0] != 0 && s[1] != 0 && m->n_jurisdictions < STORE_JURISDICTIONS_MAX) {
        m->jurisdictions[m->n_jurisdictions][0] = s[0];
        m->jurisdictions[m->n_jurisdictions][1] = s[1];
        m->jurisdictions[m->n_jurisdictions][2] = 0;
        m->n_jurisdictions++;
        s += 2;
        if (*s != ',') {
            break;
        }
        s++;
    }
}

static enum posgate_err
read_meta(sqlite3 *db, struct store_meta *out, char *msg, size_t cap)
{
    sqlite3_stmt *st = NULL;
    enum posgate_err err = prepare(db, "SELECT name, value FROM meta", &st, msg, cap);
    int rc;

    memset(out, 0, sizeof(*out));
    if (err != POSGATE_OK) {
        return err;
    }
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *name = (const char *)sqlite3_column_text(st, 0);

        if (name == NULL) {
            continue;
        }
        if (strcmp(name, "jurisdictions") == 0) {
            parse_jurisdictions(out, (const char *)sqlite3_column_text(st, 1));
            continue;
        }
        for (size_t i = 0; i < sizeof(meta_names) / sizeof(meta_names[0]); i++) {
            if (strcmp(name, meta_names[i]) == 0) {
                *meta_field(out, i) = sqlite3_column_int64(st, 1);
            }
        }
    }
    if (rc != SQLITE_DONE) {
        err = db_fail(db, rc, "read meta", msg, cap);
    }
    sqlite3_finalize(st);
    return err;
}

static enum posgate_err
row_to_list(sqlite3 *db, sqlite3_stmt *st, struct store_list *l, int64_t *no, char *msg, size_t cap)
{
    const char *id = (const char *)sqlite3_column_text(st, 1);
    const char *digest = (const char *)sqlite3_column_text(st, 4);
    const void *state = sqlite3_column_blob(st, 5);
    int state_len = sqlite3_column_bytes(st, 5);
    const void *reasons = sqlite3_column_blob(st, 7);
    int reasons_len = sqlite3_column_bytes(st, 7);

    (void)db;
    memset(l, 0, sizeof(*l));
    *no = sqlite3_column_int64(st, 0);
    if (id == NULL || strlen(id) > FEED_LIST_ID_MAX || digest == NULL ||
        strlen(digest) != STATE_DIGEST_HEX_LEN || state == NULL ||
        state_digest_deserialise(&l->state, state, (size_t)state_len) != POSGATE_OK ||
        reasons_len > STORE_REASON_BITMAP) {
        plat_msgf(msg, cap, "store: lists row %" PRId64 " is damaged", *no);
        return POSGATE_ERR_CORRUPT;
    }
    memcpy(l->id, id, strlen(id) + 1);
    l->seq = (uint64_t)sqlite3_column_int64(st, 2);
    l->entries = (uint64_t)sqlite3_column_int64(st, 3);
    memcpy(l->digest, digest, STATE_DIGEST_HEX_LEN + 1);
    l->issued_at = sqlite3_column_int64(st, 6);
    if (reasons != NULL && reasons_len > 0) {
        memcpy(l->reasons, reasons, (size_t)reasons_len);
    }
    l->cfg_index = -1;
    return POSGATE_OK;
}

#define LISTS_SELECT "SELECT no, id, seq, entries, digest, state, issued_at, reasons FROM lists"

enum posgate_err
store_get_meta(struct store *s, struct store_meta *out)
{
    if (s == NULL || out == NULL) {
        return POSGATE_ERR_INVALID;
    }
    return read_meta(s->db, out, s->errmsg, sizeof(s->errmsg));
}

enum posgate_err
store_get_list(struct store *s, const char *list_id, struct store_list *out)
{
    sqlite3_stmt *st = NULL;
    enum posgate_err err;
    int rc;
    int64_t no;

    if (s == NULL || list_id == NULL || out == NULL) {
        return POSGATE_ERR_INVALID;
    }
    err = prepare(s->db, LISTS_SELECT " WHERE id = ?1", &st, s->errmsg, sizeof(s->errmsg));
    if (err != POSGATE_OK) {
        return err;
    }
    sqlite3_bind_text(st, 1, list_id, -1, SQLITE_STATIC);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        err = row_to_list(s->db, st, out, &no, s->errmsg, sizeof(s->errmsg));
    } else if (rc == SQLITE_DONE) {
        plat_msgf(s->errmsg, sizeof(s->errmsg), "store: list \"%.64s\" is not installed", list_id);
        err = POSGATE_ERR_NOTFOUND;
    } else {
        err = db_fail(s->db, rc, "read list", s->errmsg, sizeof(s->errmsg));
    }
    sqlite3_finalize(st);
    return err;
}

/* Marks the lists named in meta "authority_fresh" ("id=seconds,..."). */
static enum posgate_err
read_authority_fresh(sqlite3 *db, struct store_list *out, size_t n, char *msg, size_t msgcap)
{
    sqlite3_stmt *st = NULL;
    enum posgate_err err =
        prepare(db, "SELECT value FROM meta WHERE name = 'authority_fresh'", &st, msg, msgcap);
    const char *p;

    if (err != POSGATE_OK) {
        return err;
    }
    if (sqlite3_step(st) == SQLITE_ROW && (p = (const char *)sqlite3_column_text(st, 0)) != NULL) {
        while (*p != 0) {
            const char *eq = strchr(p, '='), *end = strchr(p, ',');
            size_t idlen;

            if (end == NULL) {
                end = p + strlen(p);
            }
            if (eq == NULL || eq > end) {
                break;
            }
            idlen = (size_t)(eq - p);
            for (size_t i = 0; i < n; i++) {
                if (strlen(out[i].id) == idlen && memcmp(out[i].id, p, idlen) == 0) {
                    out[i].authority_fresh = true;
                    out[i].vouched_at = strtoll(eq + 1, NULL, 10);
                }
            }
            p = *end == ',' ? end + 1 : end;
        }
    }
    sqlite3_finalize(st);
    return POSGATE_OK;
}

static enum posgate_err
read_lists(sqlite3 *db, struct store_list *out, int64_t *nos, size_t cap, size_t *n, char *msg,
           size_t msgcap)
{
    sqlite3_stmt *st = NULL;
    enum posgate_err err = prepare(db, LISTS_SELECT " ORDER BY no", &st, msg, msgcap);
    size_t i = 0;
    int rc;

    if (err != POSGATE_OK) {
        return err;
    }
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (i < cap) {
            int64_t no;

            err = row_to_list(db, st, &out[i], &no, msg, msgcap);
            if (err != POSGATE_OK) {
                break;
            }
            if (nos != NULL) {
                nos[i] = no;
            }
        }
        i++;
    }
    if (err == POSGATE_OK && rc != SQLITE_DONE) {
        err = db_fail(db, rc, "read lists", msg, msgcap);
    }
    sqlite3_finalize(st);
    *n = i;
    if (err == POSGATE_OK) {
        err = read_authority_fresh(db, out, i < cap ? i : cap, msg, msgcap);
    }
    return err;
}

int64_t
store_list_fresh_at(const struct store_list *l, const struct store_meta *m)
{
    int64_t other = l->authority_fresh ? l->vouched_at : m->issued_at;

    return l->issued_at > other ? l->issued_at : other;
}

enum posgate_err
store_get_lists(struct store *s, struct store_list *out, size_t cap, size_t *n)
{
    if (s == NULL || n == NULL || (out == NULL && cap > 0)) {
        return POSGATE_ERR_INVALID;
    }
    return read_lists(s->db, out, NULL, cap, n, s->errmsg, sizeof(s->errmsg));
}

static enum posgate_err
read_config(sqlite3 *db, struct buf *out, char *msg, size_t cap)
{
    sqlite3_stmt *st = NULL;
    enum posgate_err err =
        prepare(db, "SELECT value FROM meta WHERE name = 'config'", &st, msg, cap);
    int rc;

    if (err != POSGATE_OK) {
        return err;
    }
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        const void *p = sqlite3_column_blob(st, 0);
        int len = sqlite3_column_bytes(st, 0);

        err = buf_append(out, p != NULL ? p : "", (size_t)len);
    } else if (rc == SQLITE_DONE) {
        plat_msgf(msg, cap, "store: no feed configuration is installed");
        err = POSGATE_ERR_NOTFOUND;
    } else {
        err = db_fail(db, rc, "read config", msg, cap);
    }
    sqlite3_finalize(st);
    return err;
}

enum posgate_err
store_get_config(struct store *s, struct buf *out)
{
    if (s == NULL || out == NULL) {
        return POSGATE_ERR_INVALID;
    }
    return read_config(s->db, out, s->errmsg, sizeof(s->errmsg));
}

/* ---------------------------------------------------------------- updates */

static enum posgate_err ufail(struct store_update *u, enum posgate_err err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static enum posgate_err
ufail(struct store_update *u, enum posgate_err err, const char *fmt, ...)
{
    va_list ap;

    if (u->failed == POSGATE_OK) {
        va_start(ap, fmt);
        vsnprintf(u->s->errmsg, sizeof(u->s->errmsg), fmt, ap);
        va_end(ap);
        u->failed = err;
    }
    return err;
}

static enum posgate_err
ufail_db(struct store_update *u, int rc, const char *what)
{
    enum posgate_err err = map_sqlite(rc);

    return ufail(u, err == POSGATE_OK ? POSGATE_ERR_IO : err, "store: %s: %s", what,
                 sqlite3_errmsg(u->s->db));
}

static enum posgate_err
ready(struct store_update *u)
{
    if (u == NULL) {
        return POSGATE_ERR_INVALID;
    }
    if (u->failed != POSGATE_OK) {
        return POSGATE_ERR_STATE;
    }
    return POSGATE_OK;
}

/* Notes the lists that have rows as the update begins (for the key filter: a new filter holds
 * every key only when the update emptied each of them). */
static enum posgate_err
read_had_rows(struct store_update *u)
{
    struct store *s = u->s;
    sqlite3_stmt *st = NULL;
    enum posgate_err err;
    int rc;

    u->had = plat_calloc(STORE_LISTS_MAX + 1, sizeof(*u->had));
    if (u->had == NULL) {
        return POSGATE_ERR_NOMEM;
    }
    err =
        prepare(s->db, "SELECT no FROM lists WHERE entries > 0", &st, s->errmsg, sizeof(s->errmsg));
    if (err != POSGATE_OK) {
        return err;
    }
    while ((rc = sqlite3_step(st)) == SQLITE_ROW && u->n_had <= STORE_LISTS_MAX) {
        u->had[u->n_had++].no = sqlite3_column_int64(st, 0);
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE && rc != SQLITE_ROW) {
        return db_fail(s->db, rc, "read lists", s->errmsg, sizeof(s->errmsg));
    }
    if (u->n_had > STORE_LISTS_MAX) {
        plat_msgf(s->errmsg, sizeof(s->errmsg), "store: more than %d lists installed",
                  STORE_LISTS_MAX);
        return POSGATE_ERR_CORRUPT;
    }
    return POSGATE_OK;
}

void
store_update_expect_keys(struct store_update *u, uint64_t n)
{
    if (u != NULL) {
        u->expect_keys = n;
    }
}

/* True when the update emptied every list that had rows as it began: every row is its own. */
static bool
had_all_cleared(const struct store_update *u)
{
    for (size_t i = 0; i < u->n_had; i++) {
        if (!u->had[i].cleared) {
            return false;
        }
    }
    return true;
}

/* The first key an update adds chooses how it keeps the key filter (enum kf_mode). A filter
 * failure never fails the update: the update then leaves no filter for its version, lookups
 * go to SQLite, and store_filter_rebuild makes a new one. */
static void
kf_start(struct store_update *u)
{
    struct store *s = u->s;
    char msg[STORE_ERRMSG_MAX];
    uint64_t size = u->expect_keys;
    bool all_cleared = had_all_cleared(u);
    int64_t total = 0;

    u->kf_mode = KF_NONE;
    /* a store whose rows this update replaced so far gets a new filter; otherwise the keys go
     * into the current version's filter while it has room */
    if (!all_cleared && u->have_token &&
        keyfilter_open_rw(&u->kf, s->kf_path, u->token, msg, sizeof(msg)) == POSGATE_OK) {
        if (!keyfilter_is_full(u->kf.n_blocks, u->kf.keys)) {
            u->kf_mode = KF_INPLACE;
            return;
        }
        keyfilter_close(&u->kf);
    }
    if (!all_cleared && lists_total(s->db, &total, msg, sizeof(msg)) == POSGATE_OK &&
        (uint64_t)total > size) {
        size = (uint64_t)total;
    }
    if (keyfilter_create(&u->kf, s->kf_path, size, msg, sizeof(msg)) == POSGATE_OK) {
        u->kf_mode = KF_NEW;
    } else {
        plat_log(PLAT_LOG_WARN, "store: %s; lookups use the store alone until it is rebuilt", msg);
    }
}

static void
kf_note_add(struct store_update *u, const uint8_t *key)
{
    if (u->kf_mode == KF_UNDECIDED) {
        kf_start(u);
    }
    if (u->kf_mode == KF_INPLACE || u->kf_mode == KF_NEW) {
        keyfilter_add(&u->kf, key);
    }
    u->adds++;
}

static void
kf_note_cleared(struct store_update *u, int64_t no)
{
    for (size_t i = 0; i < u->n_had; i++) {
        if (u->had[i].no == no) {
            u->had[i].cleared = true;
        }
    }
}

static enum posgate_err meta_put_blob(struct store_update *u, const char *name, const void *p,
                                      size_t len, bool text);

/* Before the commit of an update that added keys: a new key set token, and a filter that holds
 * every key of the new version made durable, then given that token (keyfilter.h). */
static enum posgate_err
kf_finish(struct store_update *u)
{
    char msg[STORE_ERRMSG_MAX];
    uint8_t token[KEYFILTER_TOKEN_LEN];
    enum posgate_err err;
    bool complete = u->kf_mode == KF_INPLACE || (u->kf_mode == KF_NEW && had_all_cleared(u));

    if (u->adds == 0) {
        return POSGATE_OK; /* the key set only shrank: the filter still covers it */
    }
    err = plat_random(token, sizeof(token));
    if (err != POSGATE_OK) {
        return ufail(u, err, "store: no random bytes for the key set token");
    }
    err = meta_put_blob(u, "keyset", token, sizeof(token), false);
    if (err != POSGATE_OK) {
        return err;
    }
    if (!complete) {
        return POSGATE_OK; /* no filter for this version until store_filter_rebuild */
    }
    err = keyfilter_install(&u->kf, token, msg, sizeof(msg));
    if (err != POSGATE_OK) {
        plat_log(PLAT_LOG_WARN, "store: %s; lookups use the store alone until it is rebuilt", msg);
    }
    return POSGATE_OK;
}

enum posgate_err
store_begin_update(struct store *s, struct store_update **out)
{
    struct store_update *u;
    enum posgate_err err;
    char *msg;
    size_t cap;

    if (s == NULL || out == NULL) {
        return POSGATE_ERR_INVALID;
    }
    msg = s->errmsg;
    cap = sizeof(s->errmsg);
    if ((s->flags & STORE_READONLY) != 0) {
        plat_msgf(msg, cap, "store: opened read-only");
        return POSGATE_ERR_STATE;
    }
    if (s->updating) {
        plat_msgf(msg, cap, "store: an update is already in progress");
        return POSGATE_ERR_STATE;
    }
    u = plat_calloc(1, sizeof(*u));
    if (u == NULL) {
        return POSGATE_ERR_NOMEM;
    }
    u->s = s;
    u->kf.fd = -1;
    err = exec_sql(s->db, "BEGIN IMMEDIATE", msg, cap);
    if (err != POSGATE_OK) {
        plat_free(u);
        return err;
    }
    s->updating = true;
    err = prepare(s->db, "INSERT INTO entries(k, t, n, a, f, u, s) VALUES(?1,?2,?3,?4,?5,?6,?7)",
                  &u->ins, msg, cap);
    if (err == POSGATE_OK) {
        /* an addition is refused when the entry is visible: in entries without a removal
         * marker (checked here), or already added to recent (the primary key) */
        err = prepare(s->db,
                      "INSERT INTO recent(k, t, n, d, a, f, u, s)"
                      " SELECT ?1, ?2, ?3, 0, ?4, ?5, ?6, ?7 WHERE NOT EXISTS(SELECT 1 FROM entries"
                      " WHERE k = ?1 AND t = ?2 AND n = ?3 AND NOT EXISTS(SELECT 1 FROM recent"
                      " WHERE k = ?1 AND t = ?2 AND n = ?3 AND d = 1))",
                      &u->ov_ins, msg, cap);
    }
    if (err == POSGATE_OK) {
        err = prepare(s->db,
                      "DELETE FROM recent WHERE k = ?1 AND t = ?2 AND n = ?3 AND d = 0"
                      " RETURNING a, f, u, s",
                      &u->ov_take, msg, cap);
    }
    if (err == POSGATE_OK) {
        /* a second marker for the same row breaks the primary key: removed twice */
        err = prepare(s->db,
                      "INSERT INTO recent(k, t, n, d, a, f, u, s) SELECT k, t, n, 1, a, f, u, s"
                      " FROM entries WHERE k = ?1 AND t = ?2 AND n = ?3 RETURNING a, f, u, s",
                      &u->ov_tomb, msg, cap);
    }
    if (err == POSGATE_OK) {
        err = prepare(s->db, "SELECT id FROM tmpl WHERE list = ?1 AND stem = ?2 AND width = ?3",
                      &u->tmpl_sel, msg, cap);
    }
    if (err == POSGATE_OK) {
        err = prepare(s->db, "INSERT INTO tmpl(list, stem, width) VALUES(?1, ?2, ?3)", &u->tmpl_ins,
                      msg, cap);
    }
    if (err == POSGATE_OK) {
        err = read_token(s->db, u->token, &u->have_token, msg, cap);
    }
    if (err == POSGATE_OK) {
        err = read_had_rows(u);
    }
    if (err != POSGATE_OK) {
        store_update_abort(u);
        return err;
    }
    *out = u;
    return POSGATE_OK;
}

static enum posgate_err
meta_put_int(struct store_update *u, const char *name, int64_t v)
{
    sqlite3_stmt *st = NULL;
    enum posgate_err err = prepare(u->s->db, "INSERT OR REPLACE INTO meta VALUES(?1, ?2)", &st,
                                   u->s->errmsg, sizeof(u->s->errmsg));
    int rc;

    if (err != POSGATE_OK) {
        return ufail(u, err, "%s", u->s->errmsg);
    }
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, v);
    rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        return ufail_db(u, rc, "write meta");
    }
    return POSGATE_OK;
}

static enum posgate_err
meta_put_blob(struct store_update *u, const char *name, const void *p, size_t len, bool text)
{
    sqlite3_stmt *st = NULL;
    enum posgate_err err = prepare(u->s->db, "INSERT OR REPLACE INTO meta VALUES(?1, ?2)", &st,
                                   u->s->errmsg, sizeof(u->s->errmsg));
    int rc;

    if (err != POSGATE_OK) {
        return ufail(u, err, "%s", u->s->errmsg);
    }
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    if (text) {
        sqlite3_bind_text(st, 2, p, (int)len, SQLITE_STATIC);
    } else {
        sqlite3_bind_blob(st, 2, p, (int)len, SQLITE_STATIC);
    }
    rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        return ufail_db(u, rc, "write meta");
    }
    return POSGATE_OK;
}

enum posgate_err
store_update_set_meta(struct store_update *u, const struct store_meta *m)
{
    enum posgate_err err = ready(u);
    struct store_meta copy;

    if (err != POSGATE_OK) {
        return err;
    }
    if (m == NULL) {
        return ufail(u, POSGATE_ERR_INVALID, "store: no metadata given");
    }
    copy = *m;
    for (size_t i = 0; i < sizeof(meta_names) / sizeof(meta_names[0]); i++) {
        if (strcmp(meta_names[i], "installed_at") == 0) {
            continue; /* set by commit */
        }
        err = meta_put_int(u, meta_names[i], *meta_field(&copy, i));
        if (err != POSGATE_OK) {
            return err;
        }
    }
    return POSGATE_OK;
}

enum posgate_err
store_update_set_authority_fresh(struct store_update *u, const char *text)
{
    enum posgate_err err = ready(u);

    if (err != POSGATE_OK) {
        return err;
    }
    return meta_put_blob(u, "authority_fresh", text != NULL ? text : "",
                         text != NULL ? strlen(text) : 0, true);
}

enum posgate_err
store_update_set_config(struct store_update *u, const void *json, size_t len)
{
    enum posgate_err err = ready(u);
    struct feed_config *cfg = NULL;
    char msg[FEED_ERRMSG_MIN];

    if (err != POSGATE_OK) {
        return err;
    }
    if (json == NULL) {
        return ufail(u, POSGATE_ERR_INVALID, "store: no feed configuration given");
    }
    err = feed_config_parse(json, len, 0, &cfg, msg, sizeof(msg));
    if (err != POSGATE_OK) {
        return ufail(u, err, "store: feed configuration refused: %s", msg);
    }
    feed_config_free(cfg);
    return meta_put_blob(u, "config", json, len, false);
}

enum posgate_err
store_update_set_jurisdictions(struct store_update *u, const char *const *cc, size_t n)
{
    enum posgate_err err = ready(u);
    char text[STORE_JURISDICTIONS_MAX * 3];
    size_t len = 0;

    if (err != POSGATE_OK) {
        return err;
    }
    if ((cc == NULL && n > 0) || n > STORE_JURISDICTIONS_MAX) {
        return ufail(u, POSGATE_ERR_INVALID, "store: expected at most %d jurisdictions, found %zu",
                     STORE_JURISDICTIONS_MAX, n);
    }
    for (size_t i = 0; i < n; i++) {
        const char *c = cc[i];
        char a, b;

        if (c == NULL || strlen(c) != 2) {
            return ufail(u, POSGATE_ERR_INVALID,
                         "store: jurisdiction %zu: expected an ISO 3166 alpha-2 code", i);
        }
        a = (char)(c[0] >= 'a' && c[0] <= 'z' ? c[0] - 32 : c[0]);
        b = (char)(c[1] >= 'a' && c[1] <= 'z' ? c[1] - 32 : c[1]);
        if (a < 'A' || a > 'Z' || b < 'A' || b > 'Z') {
            return ufail(u, POSGATE_ERR_INVALID,
                         "store: jurisdiction %zu: expected two letters, found \"%s\"", i, c);
        }
        if (len > 0) {
            text[len++] = ',';
        }
        text[len++] = a;
        text[len++] = b;
    }
    return meta_put_blob(u, "jurisdictions", text, len, true);
}

static void
reasons_from_blob(uint8_t *bits, const void *p, int len)
{
    memset(bits, 0, STORE_REASON_BITMAP);
    if (p != NULL && len > 0 && len <= STORE_REASON_BITMAP) {
        memcpy(bits, p, (size_t)len);
    }
}

/* Looks up (and creates) the list row; sets u->list_no, old_seq, count, state, reasons. */
static enum posgate_err
load_list(struct store_update *u, const char *list_id, bool create, bool *existed)
{
    sqlite3_stmt *st = NULL;
    struct store *s = u->s;
    enum posgate_err err;
    int rc;

    err = prepare(s->db, "SELECT no, seq, entries, state, reasons FROM lists WHERE id = ?1", &st,
                  s->errmsg, sizeof(s->errmsg));
    if (err != POSGATE_OK) {
        return ufail(u, err, "%s", s->errmsg);
    }
    sqlite3_bind_text(st, 1, list_id, -1, SQLITE_STATIC);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        *existed = true;
        u->list_no = sqlite3_column_int64(st, 0);
        u->old_seq = (uint64_t)sqlite3_column_int64(st, 1);
        u->count = (uint64_t)sqlite3_column_int64(st, 2);
        if (state_digest_deserialise(&u->state, sqlite3_column_blob(st, 3),
                                     (size_t)sqlite3_column_bytes(st, 3)) != POSGATE_OK) {
            sqlite3_finalize(st);
            return ufail(u, POSGATE_ERR_CORRUPT, "store: list \"%s\": stored state is damaged",
                         list_id);
        }
        reasons_from_blob(u->reasons, sqlite3_column_blob(st, 4), sqlite3_column_bytes(st, 4));
        sqlite3_finalize(st);
        return POSGATE_OK;
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        return ufail_db(u, rc, "read list");
    }
    *existed = false;
    u->old_seq = 0;
    u->count = 0;
    state_digest_init(&u->state);
    memset(u->reasons, 0, sizeof(u->reasons));
    if (!create) {
        return POSGATE_OK;
    }
    {
        uint8_t ser[STATE_DIGEST_SERIAL_LEN];
        char hex[STATE_DIGEST_HEX_LEN + 1];

        state_digest_serialise(&u->state, ser);
        state_digest_hex(&u->state, hex);
        err = prepare(s->db,
                      "INSERT INTO lists(id, seq, entries, digest, state, issued_at, reasons)"
                      " VALUES(?1, 0, 0, ?2, ?3, 0, NULL)",
                      &st, s->errmsg, sizeof(s->errmsg));
        if (err != POSGATE_OK) {
            return ufail(u, err, "%s", s->errmsg);
        }
        sqlite3_bind_text(st, 1, list_id, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, hex, -1, SQLITE_TRANSIENT);
        sqlite3_bind_blob(st, 3, ser, sizeof(ser), SQLITE_TRANSIENT);
        rc = sqlite3_step(st);
        sqlite3_finalize(st);
        if (rc != SQLITE_DONE) {
            return ufail_db(u, rc, "create list");
        }
        u->list_no = sqlite3_last_insert_rowid(s->db);
    }
    return POSGATE_OK;
}

static enum posgate_err
begin_list(struct store_update *u, const char *list_id)
{
    enum posgate_err err = ready(u);

    if (err != POSGATE_OK) {
        return err;
    }
    if (u->mode != MODE_NONE) {
        return ufail(u, POSGATE_ERR_STATE, "store: list \"%s\" was not finished before \"%.64s\"",
                     u->list_id, list_id != NULL ? list_id : "");
    }
    if (list_id == NULL || !feed_list_id_valid(list_id)) {
        return ufail(u, POSGATE_ERR_INVALID,
                     "store: list id \"%.64s\": expected 1..64 of [A-Za-z0-9._-]",
                     list_id != NULL ? list_id : "");
    }
    memcpy(u->list_id, list_id, strlen(list_id) + 1);
    memset(u->tmpl_cache, 0, sizeof(u->tmpl_cache));
    u->additions_started = false;
    u->have_state = false;
    return POSGATE_OK;
}

/* Deletes every entry row and template of list no (the list row stays). */
static enum posgate_err
clear_list(struct store_update *u, int64_t no, uint64_t count)
{
    struct store *s = u->s;
    int64_t total = 0;
    bool found;
    enum posgate_err err;
    sqlite3_stmt *st = NULL;
    int64_t pending = 0;
    int rc;

    kf_note_cleared(u, no);

    if (count == 0) {
        /* an emptied list may still have rows in entries, hidden by their markers in recent */
        err = query_int(s->db, "SELECT EXISTS(SELECT 1 FROM recent)", &pending, &found, s->errmsg,
                        sizeof(s->errmsg));
        if (err != POSGATE_OK) {
            return ufail(u, err, "%s", s->errmsg);
        }
    }
    if (count > 0 || pending != 0) {
        err = lists_total(s->db, &total, s->errmsg, sizeof(s->errmsg));
        if (err != POSGATE_OK) {
            return ufail(u, err, "%s", s->errmsg);
        }
        if ((uint64_t)total == count) {
            /* The list holds every row: SQLite truncates the tables (zeroing the pages). */
            err = exec_sql(s->db, "DELETE FROM entries; DELETE FROM recent", s->errmsg,
                           sizeof(s->errmsg));
        } else {
            static const char *const sql[] = {
                "DELETE FROM entries WHERE t IN (SELECT id FROM tmpl WHERE list = ?1)",
                "DELETE FROM recent WHERE t IN (SELECT id FROM tmpl WHERE list = ?1)"};

            for (size_t i = 0; i < 2 && err == POSGATE_OK; i++) {
                err = prepare(s->db, sql[i], &st, s->errmsg, sizeof(s->errmsg));
                if (err == POSGATE_OK) {
                    sqlite3_bind_int64(st, 1, no);
                    rc = sqlite3_step(st);
                    if (rc != SQLITE_DONE) {
                        err =
                            db_fail(s->db, rc, "delete list entries", s->errmsg, sizeof(s->errmsg));
                    }
                    sqlite3_finalize(st);
                    st = NULL;
                }
            }
        }
        if (err != POSGATE_OK) {
            return ufail(u, err, "%s", s->errmsg);
        }
    }
    err = prepare(s->db, "DELETE FROM tmpl WHERE list = ?1", &st, s->errmsg, sizeof(s->errmsg));
    if (err != POSGATE_OK) {
        return ufail(u, err, "%s", s->errmsg);
    }
    sqlite3_bind_int64(st, 1, no);
    rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        return ufail_db(u, rc, "delete list templates");
    }
    return POSGATE_OK;
}

enum posgate_err
store_list_snapshot_begin(struct store_update *u, const char *list_id, unsigned flags)
{
    enum posgate_err err = begin_list(u, list_id);
    bool existed = false;

    if (err != POSGATE_OK) {
        return err;
    }
    err = load_list(u, list_id, true, &existed);
    if (err != POSGATE_OK) {
        return err;
    }
    if (existed) {
        err = clear_list(u, u->list_no, u->count);
        if (err != POSGATE_OK) {
            return err;
        }
        u->changes += u->count;
    }
    u->count = 0;
    state_digest_init(&u->state);
    memset(u->reasons, 0, sizeof(u->reasons));
    u->trust_state = (flags & STORE_SNAPSHOT_TRUST_STATE) != 0;
    u->mode = MODE_SNAPSHOT;
    u->have_state = true;
    return POSGATE_OK;
}

enum posgate_err
store_list_delta_begin(struct store_update *u, const char *list_id, uint64_t base_seq)
{
    enum posgate_err err = begin_list(u, list_id);
    bool existed = false;

    if (err != POSGATE_OK) {
        return err;
    }
    err = load_list(u, list_id, false, &existed);
    if (err != POSGATE_OK) {
        return err;
    }
    if (!existed) {
        return ufail(u, POSGATE_ERR_REJECTED,
                     "store: delta for list \"%s\" from seq %" PRIu64
                     ", but the list is not installed",
                     list_id, base_seq);
    }
    if (u->old_seq != base_seq) {
        return ufail(u, POSGATE_ERR_REJECTED,
                     "store: delta for list \"%s\" has base seq %" PRIu64
                     ", expected the installed seq %" PRIu64,
                     list_id, base_seq, u->old_seq);
    }
    u->trust_state = false;
    u->mode = MODE_DELTA;
    u->have_state = true;
    return POSGATE_OK;
}

/* The template id for (current list, stem, width); creates it when create is set. 0 when
 * absent and not created. */
static enum posgate_err
template_id(struct store_update *u, const char *stem, size_t stem_len, uint8_t width, bool create,
            int64_t *out)
{
    uint32_t h = 2166136261u;
    struct tmpl_slot *slot;
    int rc;

    for (size_t i = 0; i < stem_len; i++) {
        h = (h ^ (uint8_t)stem[i]) * 16777619u;
    }
    h = (h ^ width) * 16777619u;
    slot = &u->tmpl_cache[h % TMPL_CACHE_SLOTS];
    if (slot->id != 0 && slot->list == u->list_no && slot->width == width &&
        slot->stem_len == stem_len && memcmp(slot->stem, stem, stem_len) == 0) {
        *out = slot->id;
        return POSGATE_OK;
    }
    sqlite3_bind_int64(u->tmpl_sel, 1, u->list_no);
    sqlite3_bind_blob(u->tmpl_sel, 2, stem, (int)stem_len, SQLITE_STATIC);
    sqlite3_bind_int(u->tmpl_sel, 3, width);
    rc = sqlite3_step(u->tmpl_sel);
    if (rc == SQLITE_ROW) {
        *out = sqlite3_column_int64(u->tmpl_sel, 0);
    } else if (rc == SQLITE_DONE) {
        *out = 0;
    }
    sqlite3_reset(u->tmpl_sel);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        return ufail_db(u, rc, "read template");
    }
    if (*out == 0 && create) {
        sqlite3_bind_int64(u->tmpl_ins, 1, u->list_no);
        sqlite3_bind_blob(u->tmpl_ins, 2, stem, (int)stem_len, SQLITE_STATIC);
        sqlite3_bind_int(u->tmpl_ins, 3, width);
        rc = sqlite3_step(u->tmpl_ins);
        sqlite3_reset(u->tmpl_ins);
        if (rc != SQLITE_DONE) {
            return ufail_db(u, rc, "write template");
        }
        *out = sqlite3_last_insert_rowid(u->s->db);
    }
    if (*out != 0) {
        slot->id = *out;
        slot->list = u->list_no;
        slot->width = width;
        slot->stem_len = (uint8_t)stem_len;
        memcpy(slot->stem, stem, stem_len);
    }
    return POSGATE_OK;
}

static enum posgate_err
check_entry(struct store_update *u, const struct feed_entry *e, bool full)
{
    char msg[160];
    enum posgate_err err;

    if (e == NULL) {
        return ufail(u, POSGATE_ERR_INVALID, "store: no entry given");
    }
    if (full) {
        err = feed_entry_check(e, msg, sizeof(msg));
        if (err != POSGATE_OK) {
            return ufail(u, err, "store: list \"%s\": entry %" PRIu64 ": %s", u->list_id,
                         u->count + 1, msg);
        }
        if (e->id_type > 15 || e->reason >= FEED_REASONS_MAX) {
            return ufail(u, POSGATE_ERR_INVALID,
                         "store: list \"%s\": id_type %u or reason %u out of range", u->list_id,
                         e->id_type, e->reason);
        }
    } else if (e->listing_id_len == 0 || e->listing_id_len > FEED_LISTING_ID_MAX ||
               strlen(e->listing_id) != e->listing_id_len) {
        return ufail(u, POSGATE_ERR_INVALID, "store: list \"%s\": removal with a bad listing id",
                     u->list_id);
    }
    return POSGATE_OK;
}

static void
bind_row(sqlite3_stmt *st, int base, const struct pending_row *r)
{
    sqlite3_bind_blob(st, base + 1, r->key, FEED_KEY_LEN, SQLITE_STATIC);
    sqlite3_bind_int64(st, base + 2, r->tid);
    sqlite3_bind_int64(st, base + 3, r->num);
    sqlite3_bind_int64(st, base + 4, r->attrs);
    sqlite3_bind_int64(st, base + 5, r->from);
    if (r->open_until) {
        sqlite3_bind_null(st, base + 6);
    } else {
        sqlite3_bind_int64(st, base + 6, r->until);
    }
    if (r->scope_len > 0) {
        sqlite3_bind_blob(st, base + 7, r->scope, r->scope_len, SQLITE_STATIC);
    } else {
        sqlite3_bind_null(st, base + 7);
    }
}

/* Inserts one row through st: u->ins (a snapshot's row into entries) or u->ov_ins (a delta's
 * addition into recent, which inserts nothing when the entry is visible already). */
static enum posgate_err
insert_row(struct store_update *u, sqlite3_stmt *st, const struct pending_row *r)
{
    int rc;

    bind_row(st, 0, r);
    rc = sqlite3_step(st);
    sqlite3_reset(st);
    if (rc == SQLITE_DONE && sqlite3_changes(u->s->db) == 1) {
        return POSGATE_OK;
    }
    if (rc == SQLITE_DONE || (rc & 0xff) == SQLITE_CONSTRAINT) {
        return ufail(u, POSGATE_ERR_REJECTED,
                     "store: list \"%s\": listing \"%s\" is added but already present", u->list_id,
                     r->listing_id);
    }
    return ufail_db(u, rc, "insert entry");
}

/* Inserts the pending rows. A full batch goes in one statement; when that statement fails on
 * a constraint (it is rolled back as a whole) the rows are inserted one by one to name the
 * listing at fault. */
static enum posgate_err
flush_pending(struct store_update *u)
{
    enum posgate_err err = POSGATE_OK;
    unsigned n = u->n_pending, i = 0;
    int rc;

    u->n_pending = 0;
    if (n == INS_BATCH) {
        if (u->ins_batch == NULL) {
            char sql[64 + INS_BATCH * 32];
            size_t used = (size_t)snprintf(sql, sizeof(sql),
                                           "INSERT INTO entries(k, t, n, a, f, u, s) VALUES");
            for (unsigned r = 0; r < INS_BATCH; r++) {
                used += (size_t)snprintf(sql + used, sizeof(sql) - used, "%s(?,?,?,?,?,?,?)",
                                         r == 0 ? "" : ",");
            }
            char msg[STORE_ERRMSG_MAX];

            err = prepare(u->s->db, sql, &u->ins_batch, msg, sizeof(msg));
            if (err != POSGATE_OK) {
                return ufail(u, err, "%s", msg);
            }
        }
        for (unsigned r = 0; r < INS_BATCH; r++) {
            bind_row(u->ins_batch, 7 * (int)r, &u->pending[r]);
        }
        rc = sqlite3_step(u->ins_batch);
        sqlite3_reset(u->ins_batch);
        if (rc == SQLITE_DONE) {
            return POSGATE_OK;
        }
        if ((rc & 0xff) != SQLITE_CONSTRAINT) {
            return ufail_db(u, rc, "insert entries");
        }
    }
    for (; i < n && err == POSGATE_OK; i++) {
        err = insert_row(u, u->ins, &u->pending[i]);
    }
    return err;
}

enum posgate_err
store_list_add(struct store_update *u, const struct feed_entry *e)
{
    enum posgate_err err = ready(u);
    size_t stem_len;
    uint8_t width;
    int64_t num, tid = 0;
    struct pending_row *r;

    if (err != POSGATE_OK) {
        return err;
    }
    if (u->mode == MODE_NONE) {
        return ufail(u, POSGATE_ERR_STATE, "store: entry added outside a list");
    }
    err = check_entry(u, e, true);
    if (err != POSGATE_OK) {
        return err;
    }
    split_listing(e->listing_id, e->listing_id_len, &stem_len, &width, &num);
    err = template_id(u, e->listing_id, stem_len, width, true, &tid);
    if (err != POSGATE_OK) {
        return err;
    }
    r = &u->pending[u->n_pending];
    memcpy(r->key, e->key, FEED_KEY_LEN);
    r->tid = tid;
    r->num = num;
    r->attrs = encode_attrs(e);
    r->from = e->valid_from;
    r->open_until = e->valid_until == FEED_UNTIL_OPEN;
    r->until = e->valid_until;
    r->scope_len = (uint8_t)(2 * e->scope_count);
    for (unsigned i = 0; i < e->scope_count; i++) {
        r->scope[2 * i] = (uint8_t)(e->scope[i] >> 8);
        r->scope[2 * i + 1] = (uint8_t)e->scope[i];
    }
    memcpy(r->listing_id, e->listing_id, e->listing_id_len);
    r->listing_id[e->listing_id_len] = 0;
    if (u->mode == MODE_SNAPSHOT) {
        u->n_pending++;
        err = u->n_pending == INS_BATCH ? flush_pending(u) : POSGATE_OK;
    } else {
        err = insert_row(u, u->ov_ins, r); /* a delta's additions go to recent (store.h) */
    }
    if (err != POSGATE_OK) {
        return err;
    }
    kf_note_add(u, e->key);
    if (!u->trust_state) {
        state_digest_add(&u->state, e);
    }
    u->reasons[e->reason / 8] = (uint8_t)(u->reasons[e->reason / 8] | (1u << (e->reason % 8)));
    u->count++;
    u->changes++;
    u->additions_started = true;
    return POSGATE_OK;
}

/* Steps a removal statement (?1 k, ?2 t, ?3 n; RETURNING a, f, u, s) and decodes the row it
 * hands back into *old. SQLITE_ROW: removed; SQLITE_DONE: no such row; SQLITE_CORRUPT: the row
 * does not decode; otherwise the SQLite error. */
static int
take_row(sqlite3_stmt *st, const struct feed_entry *e, int64_t tid, int64_t num,
         struct feed_entry *old)
{
    int rc, rrc;

    sqlite3_bind_blob(st, 1, e->key, FEED_KEY_LEN, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, tid);
    sqlite3_bind_int64(st, 3, num);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        memcpy(old->key, e->key, FEED_KEY_LEN);
        memcpy(old->listing_id, e->listing_id, e->listing_id_len + 1u);
        old->listing_id_len = e->listing_id_len;
        if (!decode_attrs(old, sqlite3_column_int64(st, 0), sqlite3_column_int64(st, 1), st, 2,
                          3)) {
            sqlite3_reset(st);
            return SQLITE_CORRUPT;
        }
        if (sqlite3_step(st) != SQLITE_DONE) { /* (k, t, n[, d]) is the primary key */
            return sqlite3_reset(st);
        }
    }
    rrc = sqlite3_reset(st);
    if (rc == SQLITE_ROW || rc == SQLITE_DONE) {
        return rrc == SQLITE_OK ? rc : rrc;
    }
    return rc == SQLITE_ERROR ? rrc : rc; /* reset gives the extended code */
}

enum posgate_err
store_list_remove(struct store_update *u, const struct feed_entry *e)
{
    enum posgate_err err = ready(u);
    size_t stem_len;
    uint8_t width;
    int64_t num, tid = 0;
    struct feed_entry old;
    int rc;

    if (err != POSGATE_OK) {
        return err;
    }
    if (u->mode != MODE_DELTA) {
        return ufail(u, POSGATE_ERR_STATE, "store: removal outside a delta");
    }
    if (u->additions_started) {
        return ufail(u, POSGATE_ERR_REJECTED,
                     "store: list \"%s\": removal after an addition (removals come first)",
                     u->list_id);
    }
    err = check_entry(u, e, false);
    if (err != POSGATE_OK) {
        return err;
    }
    split_listing(e->listing_id, e->listing_id_len, &stem_len, &width, &num);
    err = template_id(u, e->listing_id, stem_len, width, false, &tid);
    if (err != POSGATE_OK) {
        return err;
    }
    memset(&old, 0, sizeof(old));
    rc = SQLITE_DONE;
    if (tid != 0) {
        /* an addition still in recent goes from there; a row of entries gets a marker */
        rc = take_row(u->ov_take, e, tid, num, &old);
        if (rc == SQLITE_DONE) {
            rc = take_row(u->ov_tomb, e, tid, num, &old);
            if ((rc & 0xff) == SQLITE_CONSTRAINT) {
                rc = SQLITE_DONE; /* marked already: removed before */
            }
        }
        if (rc == SQLITE_CORRUPT) {
            return ufail(u, POSGATE_ERR_CORRUPT,
                         "store: list \"%s\": the row of listing \"%s\" is damaged", u->list_id,
                         e->listing_id);
        }
    }
    if (rc == SQLITE_DONE) {
        return ufail(u, POSGATE_ERR_REJECTED,
                     "store: list \"%s\": listing \"%s\" is removed but not present", u->list_id,
                     e->listing_id);
    }
    if (rc != SQLITE_ROW) {
        return ufail_db(u, rc, "delete entry");
    }
    state_digest_remove(&u->state, &old);
    u->count--;
    u->changes++;
    return POSGATE_OK;
}

enum posgate_err
store_list_finish(struct store_update *u, uint64_t seq, int64_t issued_at,
                  const struct state_digest *expected)
{
    enum posgate_err err = ready(u);
    uint8_t ser[STATE_DIGEST_SERIAL_LEN];
    char hex[STATE_DIGEST_HEX_LEN + 1];
    sqlite3_stmt *st = NULL;
    size_t used = 0;
    int rc;

    if (err != POSGATE_OK) {
        return err;
    }
    if (u->mode == MODE_NONE) {
        return ufail(u, POSGATE_ERR_STATE, "store: finish without a list");
    }
    err = flush_pending(u);
    if (err != POSGATE_OK) {
        return err;
    }
    if (seq > INT64_MAX) {
        return ufail(u, POSGATE_ERR_INVALID, "store: seq %" PRIu64 " out of range", seq);
    }
    if (u->mode == MODE_SNAPSHOT && seq < u->old_seq) {
        return ufail(u, POSGATE_ERR_ROLLBACK,
                     "store: snapshot of list \"%s\" has seq %" PRIu64
                     ", older than the installed %" PRIu64,
                     u->list_id, seq, u->old_seq);
    }
    if (u->mode == MODE_DELTA && seq <= u->old_seq) {
        return ufail(u, POSGATE_ERR_ROLLBACK,
                     "store: delta of list \"%s\" goes to seq %" PRIu64
                     ", expected above the base %" PRIu64,
                     u->list_id, seq, u->old_seq);
    }
    if (u->trust_state) {
        if (expected == NULL) {
            return ufail(u, POSGATE_ERR_INVALID,
                         "store: list \"%s\": a trusted snapshot needs its state", u->list_id);
        }
        u->state = *expected;
    } else if (expected != NULL && !state_digest_equal(&u->state, expected)) {
        char want[STATE_DIGEST_HEX_LEN + 1];

        state_digest_hex(&u->state, hex);
        state_digest_hex(expected, want);
        return ufail(u, POSGATE_ERR_REJECTED,
                     "store: list \"%s\" seq %" PRIu64 ": digest mismatch after applying: "
                     "expected %.16s..., computed %.16s...",
                     u->list_id, seq, want, hex);
    }
    if (u->state.count != u->count) {
        return ufail(u, POSGATE_ERR_REJECTED,
                     "store: list \"%s\": the state counts %" PRIu64 " entries, %" PRIu64
                     " were applied",
                     u->list_id, u->state.count, u->count);
    }
    state_digest_serialise(&u->state, ser);
    state_digest_hex(&u->state, hex);
    for (size_t i = 0; i < sizeof(u->reasons); i++) {
        if (u->reasons[i] != 0) {
            used = i + 1;
        }
    }
    err = prepare(u->s->db,
                  "UPDATE lists SET seq = ?2, entries = ?3, digest = ?4, state = ?5,"
                  " issued_at = ?6, reasons = ?7 WHERE no = ?1",
                  &st, u->s->errmsg, sizeof(u->s->errmsg));
    if (err != POSGATE_OK) {
        return ufail(u, err, "%s", u->s->errmsg);
    }
    sqlite3_bind_int64(st, 1, u->list_no);
    sqlite3_bind_int64(st, 2, (int64_t)seq);
    sqlite3_bind_int64(st, 3, (int64_t)u->count);
    sqlite3_bind_text(st, 4, hex, -1, SQLITE_STATIC);
    sqlite3_bind_blob(st, 5, ser, sizeof(ser), SQLITE_STATIC);
    sqlite3_bind_int64(st, 6, issued_at);
    sqlite3_bind_blob(st, 7, u->reasons, (int)used, SQLITE_STATIC);
    rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        return ufail_db(u, rc, "update list");
    }
    u->mode = MODE_NONE;
    return POSGATE_OK;
}

const struct state_digest *
store_update_list_state(const struct store_update *u)
{
    return (u != NULL && u->have_state) ? &u->state : NULL;
}

enum posgate_err
store_list_drop(struct store_update *u, const char *list_id)
{
    enum posgate_err err = begin_list(u, list_id);
    bool existed = false;
    sqlite3_stmt *st = NULL;
    int rc;

    if (err != POSGATE_OK) {
        return err;
    }
    err = load_list(u, list_id, false, &existed);
    if (err != POSGATE_OK) {
        return err;
    }
    if (!existed) {
        plat_msgf(u->s->errmsg, sizeof(u->s->errmsg), "store: list \"%s\" is not installed",
                  list_id);
        return POSGATE_ERR_NOTFOUND; /* not poisoning: nothing changed */
    }
    err = clear_list(u, u->list_no, u->count);
    if (err != POSGATE_OK) {
        return err;
    }
    err = prepare(u->s->db, "DELETE FROM lists WHERE no = ?1", &st, u->s->errmsg,
                  sizeof(u->s->errmsg));
    if (err != POSGATE_OK) {
        return ufail(u, err, "%s", u->s->errmsg);
    }
    sqlite3_bind_int64(st, 1, u->list_no);
    rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        return ufail_db(u, rc, "drop list");
    }
    u->changes += u->count;
    u->have_state = false;
    return POSGATE_OK;
}

uint64_t
store_update_changes(const struct store_update *u)
{
    return u != NULL ? u->changes : 0;
}

/* Finalizes the update's statements (COMMIT wants none pending). */
static void
update_finalize(struct store_update *u)
{
    sqlite3_finalize(u->ins);
    sqlite3_finalize(u->ov_ins);
    sqlite3_finalize(u->ov_take);
    sqlite3_finalize(u->ov_tomb);
    sqlite3_finalize(u->tmpl_sel);
    sqlite3_finalize(u->tmpl_ins);
    sqlite3_finalize(u->ins_batch);
    u->ins = u->ov_ins = u->ov_take = u->ov_tomb = NULL;
    u->tmpl_sel = u->tmpl_ins = u->ins_batch = NULL;
}

static void
update_free(struct store_update *u)
{
    update_finalize(u);
    keyfilter_close(&u->kf);
    plat_free(u->had);
    u->s->updating = false;
    plat_free(u);
}

/* COMMIT when err is OK (its failure becomes err), else ROLLBACK; returns err. */
static enum posgate_err
end_txn(struct store *s, enum posgate_err err)
{
    if (err == POSGATE_OK) {
        int rc = sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL);

        if (rc != SQLITE_OK) {
            err = db_fail(s->db, rc, "commit", s->errmsg, sizeof(s->errmsg));
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
static void
checkpoint_now(struct store *s)
{
    sqlite3_busy_timeout(s->db, 0);
    (void)sqlite3_wal_checkpoint_v2(s->db, NULL, SQLITE_CHECKPOINT_TRUNCATE, NULL, NULL);
    sqlite3_busy_timeout(s->db, BUSY_TIMEOUT_MS);
}

enum posgate_err
store_update_commit(struct store_update *u)
{
    enum posgate_err err;
    struct store *s;

    if (u == NULL) {
        return POSGATE_ERR_INVALID;
    }
    s = u->s;
    err = u->failed;
    if (err == POSGATE_OK && u->mode != MODE_NONE) {
        err = ufail(u, POSGATE_ERR_STATE, "store: list \"%s\" was not finished", u->list_id);
    }
    if (err == POSGATE_OK) {
        err = meta_put_int(u, "installed_at", plat_wall_s());
    }
    if (err == POSGATE_OK) {
        err = kf_finish(u);
    }
    update_finalize(u);
    err = end_txn(s, err);
    if (err != POSGATE_OK) {
        update_free(u);
        return err;
    }
    atomic_fetch_add(&s->generation, 1);
    atomic_fetch_add(&process_commits, 1);
    update_free(u);
    checkpoint_now(s);
    return POSGATE_OK;
}

void
store_update_abort(struct store_update *u)
{
    if (u == NULL) {
        return;
    }
    update_finalize(u);
    (void)sqlite3_exec(u->s->db, "ROLLBACK", NULL, NULL, NULL);
    update_free(u);
}

/* ---------------------------------------------------------------- merge */

struct merge_key {
    uint8_t k[FEED_KEY_LEN];
    int64_t t, n;
    int d;
};

enum posgate_err
store_recent_rows(struct store *s, uint64_t *rows, uint64_t *entries)
{
    enum posgate_err err;
    int64_t v = 0, total = 0;
    bool found = false;

    if (s == NULL || rows == NULL || entries == NULL) {
        return POSGATE_ERR_INVALID;
    }
    err = query_int(s->db, "SELECT count(*) FROM recent", &v, &found, s->errmsg, sizeof(s->errmsg));
    if (err == POSGATE_OK) {
        err = lists_total(s->db, &total, s->errmsg, sizeof(s->errmsg));
    }
    *rows = err == POSGATE_OK ? (uint64_t)v : 0;
    *entries = err == POSGATE_OK ? (uint64_t)total : 0;
    return err;
}

/* Reads the first max_rows keys of recent in key order; an addition whose removal marker may
 * follow in the next chunk is held back, so a chunk deletes a row before re-adding it. */
static enum posgate_err
merge_read_chunk(struct store *s, struct merge_key *keys, size_t max_rows, size_t *n, bool *more)
{
    sqlite3_stmt *st = NULL;
    enum posgate_err err;
    size_t got = 0;
    int rc;

    err = prepare(s->db, "SELECT k, t, n, d FROM recent ORDER BY k, t, n, d LIMIT ?1", &st,
                  s->errmsg, sizeof(s->errmsg));
    if (err != POSGATE_OK) {
        return err;
    }
    sqlite3_bind_int64(st, 1, (int64_t)max_rows);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        struct merge_key *m = &keys[got];

        if (sqlite3_column_bytes(st, 0) != FEED_KEY_LEN || sqlite3_column_blob(st, 0) == NULL) {
            sqlite3_finalize(st);
            plat_msgf(s->errmsg, sizeof(s->errmsg), "store: a row of recent has a damaged key");
            return POSGATE_ERR_CORRUPT;
        }
        memcpy(m->k, sqlite3_column_blob(st, 0), FEED_KEY_LEN);
        m->t = sqlite3_column_int64(st, 1);
        m->n = sqlite3_column_int64(st, 2);
        m->d = sqlite3_column_int(st, 3);
        got++;
    }
    if (rc != SQLITE_DONE) {
        err = db_fail(s->db, rc, "read recent", s->errmsg, sizeof(s->errmsg));
    }
    sqlite3_finalize(st);
    *more = got == max_rows;
    if (*more && got > 1 && keys[got - 1].d == 0) {
        got--;
    }
    *n = got;
    return err;
}

static void
bind_merge_key(sqlite3_stmt *st, const struct merge_key *m)
{
    sqlite3_bind_blob(st, 1, m->k, FEED_KEY_LEN, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, m->t);
    sqlite3_bind_int64(st, 3, m->n);
}

/* Applies a chunk inside the caller's transaction: markers first, then additions. */
static enum posgate_err
merge_apply(struct store *s, const struct merge_key *keys, size_t n)
{
    static const char *const sql[3] = {
        "DELETE FROM entries WHERE k = ?1 AND t = ?2 AND n = ?3",
        ("INSERT INTO entries(k, t, n, a, f, u, s) SELECT k, t, n, a, f, u, s FROM recent"
         " WHERE k = ?1 AND t = ?2 AND n = ?3 AND d = 0"),
        "DELETE FROM recent WHERE k = ?1 AND t = ?2 AND n = ?3 AND d = ?4"};
    sqlite3_stmt *st[3] = {NULL, NULL, NULL};
    enum posgate_err err = POSGATE_OK;
    int rc = SQLITE_DONE;

    for (size_t i = 0; i < 3 && err == POSGATE_OK; i++) {
        err = prepare(s->db, sql[i], &st[i], s->errmsg, sizeof(s->errmsg));
    }
    for (int pass = 1; pass >= 0 && err == POSGATE_OK; pass--) {
        for (size_t i = 0; i < n && err == POSGATE_OK; i++) {
            sqlite3_stmt *op = pass == 1 ? st[0] : st[1];

            if (keys[i].d != pass) {
                continue;
            }
            bind_merge_key(op, &keys[i]);
            rc = sqlite3_step(op);
            sqlite3_reset(op);
            if ((rc == SQLITE_DONE && sqlite3_changes(s->db) != 1) ||
                (rc & 0xff) == SQLITE_CONSTRAINT) {
                plat_msgf(s->errmsg, sizeof(s->errmsg), "store: recent %s a row of entries that %s",
                          pass == 1 ? "marks the removal of" : "adds",
                          pass == 1 ? "is absent" : "exists");
                err = POSGATE_ERR_CORRUPT;
            } else if (rc != SQLITE_DONE) {
                err = db_fail(s->db, rc, "merge recent", s->errmsg, sizeof(s->errmsg));
            }
        }
    }
    for (size_t i = 0; i < n && err == POSGATE_OK; i++) {
        bind_merge_key(st[2], &keys[i]);
        sqlite3_bind_int(st[2], 4, keys[i].d);
        rc = sqlite3_step(st[2]);
        sqlite3_reset(st[2]);
        if (rc != SQLITE_DONE) {
            err = db_fail(s->db, rc, "merge recent", s->errmsg, sizeof(s->errmsg));
        }
    }
    for (size_t i = 0; i < 3; i++) {
        sqlite3_finalize(st[i]);
    }
    return err;
}

enum posgate_err
store_merge_step(struct store *s, size_t max_rows, uint64_t *moved, bool *more)
{
    struct merge_key *keys;
    enum posgate_err err;
    size_t n = 0;

    if (s == NULL || moved == NULL || more == NULL || max_rows < 2) {
        return POSGATE_ERR_INVALID;
    }
    *moved = 0;
    *more = false;
    if ((s->flags & STORE_READONLY) != 0 || s->updating) {
        plat_msgf(s->errmsg, sizeof(s->errmsg), "store: %s",
                  s->updating ? "an update is in progress" : "opened read-only");
        return POSGATE_ERR_STATE;
    }
    {
        int64_t any = 0;
        bool found = false;

        /* nothing to merge (the usual case): no write transaction, no checkpoint */
        err = query_int(s->db, "SELECT EXISTS(SELECT 1 FROM recent)", &any, &found, s->errmsg,
                        sizeof(s->errmsg));
        if (err != POSGATE_OK || any == 0) {
            return err;
        }
    }
    keys = plat_malloc(max_rows * sizeof(*keys));
    if (keys == NULL) {
        return POSGATE_ERR_NOMEM;
    }
    err = exec_sql(s->db, "BEGIN IMMEDIATE", s->errmsg, sizeof(s->errmsg));
    if (err == POSGATE_OK) {
        err = merge_read_chunk(s, keys, max_rows, &n, more);
        if (err == POSGATE_OK && n > 0) {
            err = merge_apply(s, keys, n);
        }
        err = end_txn(s, err);
    }
    plat_free(keys);
    if (err != POSGATE_OK) {
        *more = false;
        return err;
    }
    *moved = n;
    if (n > 0) {
        /* the version is the same (only its layout changed); readers renew to let go of the
         * pages they hold */
        atomic_fetch_add(&s->generation, 1);
        atomic_fetch_add(&process_commits, 1);
    }
    if (!*more) {
        checkpoint_now(s);
    }
    return POSGATE_OK;
}

/* ---------------------------------------------------------------- key filter */

#define FILTER_SPOT_PROBES 8

/* A few visible keys of the store, found from random points of the key space, must pass a
 * filter made for its version. One that fails was lost behind the store's back (a damaged or
 * emptied file): the filter would answer "in no row" for listed keys, so it is not used. False
 * too when the check cannot run. Costs FILTER_SPOT_PROBES B-tree probes, once per version. */
static bool
filter_spot_check(sqlite3 *db, const struct keyfilter_map *m)
{
    static const char sql[] = "SELECT e.k FROM entries AS e WHERE e.k >= ?1 AND NOT EXISTS("
                              "SELECT 1 FROM recent AS r WHERE r.k = e.k AND r.t = e.t"
                              " AND r.n = e.n AND r.d = 1) LIMIT 1";
    uint8_t probes[FILTER_SPOT_PROBES][STORE_KEY_LEN];
    sqlite3_stmt *st = NULL;
    bool ok = true;

    if (plat_random(probes, sizeof(probes)) != POSGATE_OK ||
        sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
        sqlite3_finalize(st);
        return false;
    }
    for (size_t i = 0; i < FILTER_SPOT_PROBES && ok; i++) {
        int rc;

        sqlite3_bind_blob(st, 1, probes[i], STORE_KEY_LEN, SQLITE_STATIC);
        rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) {
            ok = sqlite3_column_bytes(st, 0) == STORE_KEY_LEN &&
                 keyfilter_maybe(m, sqlite3_column_blob(st, 0));
        } else if (rc != SQLITE_DONE) {
            ok = false;
        }
        sqlite3_reset(st);
    }
    sqlite3_finalize(st);
    return ok;
}

const char *
store_filter_state_name(enum store_filter_state st)
{
    switch (st) {
    case STORE_FILTER_OK:
        return "ok";
    case STORE_FILTER_FULL:
        return "full";
    case STORE_FILTER_STALE:
        return "stale";
    case STORE_FILTER_DAMAGED:
        return "damaged";
    case STORE_FILTER_MISSING:
        break;
    }
    return "missing";
}

/* The filter file's state against token (have: the store has one); *keys from its header. */
static enum store_filter_state
filter_state_of(struct store *s, const uint8_t *token, bool have, uint64_t *keys)
{
    struct keyfilter_map m;
    char msg[STORE_ERRMSG_MAX];
    enum posgate_err err = keyfilter_map_open(&m, s->kf_path, msg, sizeof(msg));
    enum store_filter_state st;

    enum keyfilter_sum sum = KEYFILTER_SUM_BAD;

    *keys = 0;
    if (err != POSGATE_OK) {
        return err == POSGATE_ERR_CORRUPT       ? STORE_FILTER_DAMAGED
               : err == POSGATE_ERR_UNSUPPORTED ? STORE_FILTER_STALE
                                                : STORE_FILTER_MISSING;
    }
    *keys = keyfilter_map_keys(&m);
    if (!have || !keyfilter_map_token_is(&m, token) ||
        (sum = keyfilter_map_verify(&m, true)) == KEYFILTER_SUM_BUSY) {
        st = STORE_FILTER_STALE;
    } else if (sum == KEYFILTER_SUM_BAD || !filter_spot_check(s->db, &m)) {
        st = STORE_FILTER_DAMAGED;
    } else if (keyfilter_is_full(m.n_blocks, *keys)) {
        st = STORE_FILTER_FULL;
    } else {
        st = STORE_FILTER_OK;
    }
    keyfilter_map_close(&m);
    return st;
}

enum posgate_err
store_filter_check(struct store *s, enum store_filter_state *state, uint64_t *keys)
{
    uint8_t token[KEYFILTER_TOKEN_LEN];
    bool have = false;
    uint64_t k;
    enum posgate_err err;

    if (s == NULL || state == NULL) {
        return POSGATE_ERR_INVALID;
    }
    /* one read transaction: the token and the keys the spot check reads are of one version */
    err = exec_sql(s->db, "BEGIN", s->errmsg, sizeof(s->errmsg));
    if (err != POSGATE_OK) {
        return err;
    }
    err = read_token(s->db, token, &have, s->errmsg, sizeof(s->errmsg));
    if (err == POSGATE_OK) {
        *state = filter_state_of(s, token, have, &k);
        if (keys != NULL) {
            *keys = k;
        }
    }
    (void)sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL);
    return err;
}

/* Adds the first column of every row sql selects to w. */
static enum posgate_err
filter_add_rows(struct store *s, struct keyfilter_writer *w, const char *sql)
{
    sqlite3_stmt *st = NULL;
    enum posgate_err err = prepare(s->db, sql, &st, s->errmsg, sizeof(s->errmsg));
    int rc;

    if (err != POSGATE_OK) {
        return err;
    }
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (sqlite3_column_bytes(st, 0) != STORE_KEY_LEN) {
            sqlite3_finalize(st);
            plat_msgf(s->errmsg, sizeof(s->errmsg), "store: a row's key is %d bytes, expected %d",
                      sqlite3_column_bytes(st, 0), STORE_KEY_LEN);
            return POSGATE_ERR_CORRUPT;
        }
        keyfilter_add(w, sqlite3_column_blob(st, 0));
    }
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? POSGATE_OK
                             : db_fail(s->db, rc, "read keys", s->errmsg, sizeof(s->errmsg));
}

enum posgate_err
store_filter_rebuild(struct store *s, uint64_t *keys)
{
    struct keyfilter_writer w = {.fd = -1};
    uint8_t token[KEYFILTER_TOKEN_LEN];
    bool have = false;
    int64_t total = 0;
    enum posgate_err err;

    if (s == NULL) {
        return POSGATE_ERR_INVALID;
    }
    if ((s->flags & STORE_READONLY) != 0 || s->updating) {
        plat_msgf(s->errmsg, sizeof(s->errmsg), "store: %s",
                  s->updating ? "an update is in progress" : "opened read-only");
        return POSGATE_ERR_STATE;
    }
    /* under the write lock: no key is added while the rows are read */
    err = exec_sql(s->db, "BEGIN IMMEDIATE", s->errmsg, sizeof(s->errmsg));
    if (err != POSGATE_OK) {
        return err;
    }
    err = read_token(s->db, token, &have, s->errmsg, sizeof(s->errmsg));
    if (err == POSGATE_OK && !have) {
        sqlite3_stmt *st = NULL;

        err = plat_random(token, sizeof(token));
        if (err == POSGATE_OK) {
            err = prepare(s->db, "INSERT OR REPLACE INTO meta VALUES('keyset', ?1)", &st, s->errmsg,
                          sizeof(s->errmsg));
        }
        if (err == POSGATE_OK) {
            int rc;

            sqlite3_bind_blob(st, 1, token, sizeof(token), SQLITE_STATIC);
            rc = sqlite3_step(st);
            if (rc != SQLITE_DONE) {
                err = db_fail(s->db, rc, "write the key set token", s->errmsg, sizeof(s->errmsg));
            }
        }
        sqlite3_finalize(st);
    }
    if (err == POSGATE_OK) {
        err = lists_total(s->db, &total, s->errmsg, sizeof(s->errmsg));
    }
    if (err == POSGATE_OK) {
        err = keyfilter_create(&w, s->kf_path, total > 0 ? (uint64_t)total : 0, s->errmsg,
                               sizeof(s->errmsg));
    }
    /* every key of entries (rows hidden by a removal marker too: a superset is correct) and
     * of recent's additions */
    if (err == POSGATE_OK) {
        err = filter_add_rows(s, &w, "SELECT k FROM entries");
    }
    if (err == POSGATE_OK) {
        err = filter_add_rows(s, &w, "SELECT k FROM recent WHERE d = 0");
    }
    if (err == POSGATE_OK) {
        err = keyfilter_install(&w, token, s->errmsg, sizeof(s->errmsg));
    }
    if (err == POSGATE_OK && keys != NULL) {
        *keys = w.keys;
    }
    keyfilter_close(&w);
    err = end_txn(s, err);
    if (err == POSGATE_OK) {
        atomic_fetch_add(&process_commits, 1); /* readers of this process look again */
    }
    return err;
}

/* ---------------------------------------------------------------- verify */

/* The visible entries: rows of entries without a removal marker, plus the additions in
 * recent (store.h). VISIBLE_ROWS(" AND e.k = ?1") selects one key's. */
#define ROW_COLS   "SELECT e.k, e.t, e.n, e.a, e.f, e.u, e.s, m.list, m.stem, m.width FROM "
#define ROW_SELECT ROW_COLS "entries AS e LEFT JOIN tmpl AS m ON m.id = e.t"
#define VISIBLE_ROWS(cond)                                                                         \
    ROW_SELECT " WHERE NOT EXISTS(SELECT 1 FROM recent AS r WHERE r.k = e.k AND r.t = e.t"         \
               " AND r.n = e.n AND r.d = 1)" cond " UNION ALL " ROW_COLS                           \
               "recent AS e LEFT JOIN tmpl AS m ON m.id = e.t WHERE e.d = 0" cond

/* Decodes a ROW_SELECT row into e and *list_no; false when damaged. Columns: 0 k, 1 t, 2 n,
 * 3 a, 4 f, 5 u, 6 s, 7 list, 8 stem, 9 width. */
static bool
decode_row(sqlite3_stmt *st, struct feed_entry *e, int64_t *list_no)
{
    const void *k = sqlite3_column_blob(st, 0);

    if (sqlite3_column_bytes(st, 0) != FEED_KEY_LEN || k == NULL ||
        sqlite3_column_type(st, 7) != SQLITE_INTEGER ||
        sqlite3_column_type(st, 3) != SQLITE_INTEGER ||
        sqlite3_column_type(st, 4) != SQLITE_INTEGER) {
        return false;
    }
    memcpy(e->key, k, FEED_KEY_LEN);
    *list_no = sqlite3_column_int64(st, 7);
    if (!join_listing(e, sqlite3_column_blob(st, 8), (size_t)sqlite3_column_bytes(st, 8),
                      sqlite3_column_int64(st, 9), sqlite3_column_int64(st, 2))) {
        return false;
    }
    return decode_attrs(e, sqlite3_column_int64(st, 3), sqlite3_column_int64(st, 4), st, 5, 6);
}

enum posgate_err
store_verify(struct store *s, void (*progress)(void *, uint64_t), void *ctx, char *errmsg,
             size_t errcap)
{
    enum posgate_err err;
    struct store_list *lists = NULL;
    int64_t *nos = NULL;
    struct state_digest *calc = NULL;
    sqlite3_stmt *st = NULL;
    size_t n = 0, cap = STORE_LISTS_MAX;
    uint64_t rows = 0, unfiltered = 0;
    char dummy[8];
    int rc;
    bool txn = false, have_token = false, kf_ok = false;
    uint8_t token[KEYFILTER_TOKEN_LEN];
    struct keyfilter_map kf = {0};
    enum keyfilter_sum kf_sum = KEYFILTER_SUM_OK;

    if (errmsg == NULL || errcap == 0) {
        errmsg = dummy;
        errcap = sizeof(dummy);
    }
    errmsg[0] = 0;
    if (s == NULL) {
        return POSGATE_ERR_INVALID;
    }
    lists = plat_calloc(cap, sizeof(*lists));
    nos = plat_calloc(cap, sizeof(*nos));
    calc = plat_calloc(cap, sizeof(*calc));
    if (lists == NULL || nos == NULL || calc == NULL) {
        err = POSGATE_ERR_NOMEM;
        goto out;
    }
    err = exec_sql(s->db, "BEGIN", errmsg, errcap);
    if (err != POSGATE_OK) {
        goto out;
    }
    txn = true;
    /* the key filter, when it is made for this version, must pass every visible key */
    err = read_token(s->db, token, &have_token, errmsg, errcap);
    if (err != POSGATE_OK) {
        goto out;
    }
    if (have_token) {
        char kmsg[STORE_ERRMSG_MAX];

        kf_ok = keyfilter_map_open(&kf, s->kf_path, kmsg, sizeof(kmsg)) == POSGATE_OK &&
                keyfilter_map_token_is(&kf, token);
        kf_sum = kf_ok ? keyfilter_map_verify(&kf, true) : KEYFILTER_SUM_OK;
    }
    err = prepare(s->db, "PRAGMA quick_check", &st, errmsg, errcap);
    if (err == POSGATE_OK) {
        rc = sqlite3_step(st);
        if (rc != SQLITE_ROW || sqlite3_column_text(st, 0) == NULL ||
            strcmp((const char *)sqlite3_column_text(st, 0), "ok") != 0) {
            plat_msgf(errmsg, errcap, "store: SQLite integrity check failed: %.120s",
                      rc == SQLITE_ROW && sqlite3_column_text(st, 0) != NULL
                          ? (const char *)sqlite3_column_text(st, 0)
                          : sqlite3_errmsg(s->db));
            err = POSGATE_ERR_CORRUPT;
        }
        sqlite3_finalize(st);
        st = NULL;
    }
    if (err != POSGATE_OK) {
        goto out;
    }
    err = read_lists(s->db, lists, nos, cap, &n, errmsg, errcap);
    if (err != POSGATE_OK) {
        goto out;
    }
    if (n > cap) {
        plat_msgf(errmsg, errcap, "store: %zu lists, at most %zu supported", n, cap);
        err = POSGATE_ERR_CORRUPT;
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        char hex[STATE_DIGEST_HEX_LEN + 1];

        state_digest_init(&calc[i]);
        state_digest_hex(&lists[i].state, hex);
        if (strcmp(hex, lists[i].digest) != 0) {
            plat_msgf(errmsg, errcap,
                      "list \"%s\": stored digest %.16s... does not match its "
                      "stored state %.16s...",
                      lists[i].id, lists[i].digest, hex);
            err = POSGATE_ERR_REJECTED;
            goto out;
        }
    }
    {
        int64_t dangling = 0;
        bool found = false;

        err = query_int(s->db,
                        "SELECT count(*) FROM recent AS r WHERE r.d = 1 AND NOT EXISTS(SELECT 1"
                        " FROM entries AS e WHERE e.k = r.k AND e.t = r.t AND e.n = r.n)",
                        &dangling, &found, errmsg, errcap);
        if (err == POSGATE_OK && dangling != 0) {
            plat_msgf(errmsg, errcap,
                      "store: %" PRId64 " removal marker(s) in recent name no row of entries",
                      dangling);
            err = POSGATE_ERR_CORRUPT;
        }
    }
    if (err == POSGATE_OK) {
        err = prepare(s->db, VISIBLE_ROWS(""), &st, errmsg, errcap);
    }
    if (err != POSGATE_OK) {
        goto out;
    }
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        struct feed_entry e;
        int64_t no = -1;
        size_t i;

        memset(&e, 0, sizeof(e));
        if (!decode_row(st, &e, &no)) {
            plat_msgf(errmsg, errcap, "store: entry row %" PRIu64 " cannot be decoded", rows + 1);
            err = POSGATE_ERR_CORRUPT;
            goto out;
        }
        for (i = 0; i < n && nos[i] != no; i++) {
        }
        if (i == n) {
            plat_msgf(errmsg, errcap,
                      "store: entry row %" PRIu64 " belongs to no list (%" PRId64 ")", rows + 1,
                      no);
            err = POSGATE_ERR_REJECTED;
            goto out;
        }
        state_digest_add(&calc[i], &e);
        if (kf_ok && !keyfilter_maybe(&kf, e.key)) {
            unfiltered++;
        }
        rows++;
        if (progress != NULL && (rows & 0xffff) == 0) {
            progress(ctx, rows);
        }
    }
    if (rc != SQLITE_DONE) {
        err = db_fail(s->db, rc, "read entries", errmsg, errcap);
        if (err == POSGATE_ERR_IO) {
            err = POSGATE_ERR_CORRUPT;
        }
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        if (!state_digest_equal(&calc[i], &lists[i].state) || calc[i].count != lists[i].entries) {
            char hex[STATE_DIGEST_HEX_LEN + 1];

            state_digest_hex(&calc[i], hex);
            plat_msgf(errmsg, errcap,
                      "list \"%s\" seq %" PRIu64 ": rows give digest %.16s... over %" PRIu64
                      " entries, expected %.16s... over %" PRIu64,
                      lists[i].id, lists[i].seq, hex, calc[i].count, lists[i].digest,
                      lists[i].entries);
            err = POSGATE_ERR_REJECTED;
            goto out;
        }
    }
    if (kf_sum == KEYFILTER_SUM_BAD) {
        plat_msgf(
            errmsg, errcap,
            "store: key filter %s does not match its checksum (damaged on disk; it lacks %" PRIu64
            " of the %" PRIu64 " entries' keys; checks do not use it): remove it, and "
            "posgate compact writes a new one",
            s->kf_path, unfiltered, rows);
        err = POSGATE_ERR_CORRUPT;
    } else if (unfiltered > 0) {
        plat_msgf(errmsg, errcap,
                  "store: key filter %s lacks %" PRIu64 " of the %" PRIu64
                  " entries' keys (lookups of them would find nothing): remove it, and posgate "
                  "compact writes a new one",
                  s->kf_path, unfiltered, rows);
        err = POSGATE_ERR_CORRUPT;
    }
out:
    sqlite3_finalize(st);
    keyfilter_map_close(&kf);
    if (txn) {
        (void)sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL);
    }
    plat_free(lists);
    plat_free(nos);
    plat_free(calc);
    return err;
}

/* ---------------------------------------------------------------- readers */

enum posgate_err
store_reader_new(struct store *s, struct store_reader **out)
{
    struct store_reader *r;
    enum posgate_err err;
    const char *path;

    if (s == NULL || out == NULL) {
        return POSGATE_ERR_INVALID;
    }
    path = sqlite3_db_filename(s->db, "main");
    if (path == NULL || path[0] == 0) {
        return POSGATE_ERR_STATE;
    }
    r = plat_calloc(1, sizeof(*r));
    if (r == NULL) {
        return POSGATE_ERR_NOMEM;
    }
    r->s = s;
    r->renew_ns = 1000ull * 1000000ull;
    r->data_version = -1;
    buf_init(&r->cfg_bytes, STORE_CONFIG_MAX);
    r->lists = plat_calloc(STORE_LISTS_MAX, sizeof(*r->lists));
    r->map = plat_calloc(STORE_LISTS_MAX, sizeof(*r->map));
    if (r->lists == NULL || r->map == NULL) {
        err = POSGATE_ERR_NOMEM;
        goto fail;
    }
    err = open_conn(path, false, false, &r->db, s->errmsg, sizeof(s->errmsg));
    if (err != POSGATE_OK) {
        goto fail;
    }
    err = prepare(r->db, ROW_SELECT " WHERE e.k = ?1", &r->lookup, s->errmsg, sizeof(s->errmsg));
    if (err == POSGATE_OK) {
        err = prepare(r->db, VISIBLE_ROWS(" AND e.k = ?1"), &r->lookup_ov, s->errmsg,
                      sizeof(s->errmsg));
    }
    if (err != POSGATE_OK) {
        goto fail;
    }
    *out = r;
    return POSGATE_OK;
fail:
    store_reader_free(r);
    return err;
}

void
store_reader_free(struct store_reader *r)
{
    if (r == NULL) {
        return;
    }
    sqlite3_finalize(r->lookup);
    sqlite3_finalize(r->lookup_ov);
    keyfilter_map_close(&r->kf);
    if (r->db != NULL && r->in_txn) {
        (void)sqlite3_exec(r->db, "COMMIT", NULL, NULL, NULL);
    }
    sqlite3_close(r->db);
    feed_config_free(r->cfg);
    buf_free(&r->cfg_bytes);
    plat_free(r->lists);
    plat_free(r->map);
    plat_free(r);
}

void
store_reader_set_renew_ms(struct store_reader *r, uint32_t ms)
{
    if (r != NULL) {
        r->renew_ns = (uint64_t)ms * 1000000ull;
    }
}

static void
sort_map(struct reader_list_map *m, size_t n)
{
    for (size_t i = 1; i < n; i++) {
        struct reader_list_map x = m[i];
        size_t j = i;

        while (j > 0 && m[j - 1].no > x.no) {
            m[j] = m[j - 1];
            j--;
        }
        m[j] = x;
    }
}

/* Whether the key filter file is made for the reader's version (keyfilter.h); a file replaced
 * since it was mapped is mapped again. A filter that cannot be used is not an error: lookups
 * then go to SQLite alone. */
static void
reader_filter(struct store_reader *r)
{
    enum keyfilter_sum sum;

    r->kf_ok = false;
    if (!r->have_token) {
        return;
    }
    if (!keyfilter_map_same(&r->kf, r->s->kf_path)) {
        char msg[STORE_ERRMSG_MAX];

        keyfilter_map_close(&r->kf);
        r->kf_rejected = false;
        if (keyfilter_map_open(&r->kf, r->s->kf_path, msg, sizeof(msg)) != POSGATE_OK) {
            return;
        }
    }
    if (!keyfilter_map_token_is(&r->kf, r->token)) {
        return;
    }
    if (r->kf_rejected && memcmp(r->kf_rejected_token, r->token, sizeof(r->token)) == 0) {
        return; /* this file failed its checks for this version already */
    }
    sum = keyfilter_map_verify(&r->kf, false);
    if (sum == KEYFILTER_SUM_BUSY) {
        return; /* a writer is adding keys: tried again at the next renewal */
    }
    r->kf_ok = sum == KEYFILTER_SUM_OK && filter_spot_check(r->db, &r->kf);
    if (!r->kf_ok) {
        r->kf_rejected = true;
        memcpy(r->kf_rejected_token, r->token, sizeof(r->token));
        plat_log(PLAT_LOG_WARN,
                 "store: key filter %s %s; checks read the store alone until posgate compact "
                 "(or the next update) writes a new one",
                 r->s->kf_path,
                 sum == KEYFILTER_SUM_OK ? "lacks keys of the store"
                                         : "does not match its checksum (damaged on disk)");
    }
}

bool
store_reader_uses_filter(const struct store_reader *r)
{
    return r != NULL && r->kf_ok;
}

/* Reloads meta, lists and config inside the reader's new read transaction. */
static enum posgate_err
reader_load(struct store_reader *r)
{
    char *msg = r->errmsg;
    size_t cap = sizeof(r->errmsg);
    int64_t nos[64];
    int64_t *nos_p = nos;
    enum posgate_err err;
    struct buf cfg = BUF_INIT(STORE_CONFIG_MAX);
    size_t n = 0;

    err = read_meta(r->db, &r->meta, msg, cap);
    if (err == POSGATE_OK) {
        int64_t any = 0;
        bool found = false;

        err = query_int(r->db, "SELECT EXISTS(SELECT 1 FROM recent)", &any, &found, msg, cap);
        r->has_recent = any != 0;
    }
    if (err == POSGATE_OK) {
        err = read_token(r->db, r->token, &r->have_token, msg, cap);
        reader_filter(r);
    }
    if (err != POSGATE_OK) {
        return err;
    }
    if (STORE_LISTS_MAX > 64) {
        nos_p = plat_calloc(STORE_LISTS_MAX, sizeof(*nos_p));
        if (nos_p == NULL) {
            return POSGATE_ERR_NOMEM;
        }
    }
    err = read_lists(r->db, r->lists, nos_p, STORE_LISTS_MAX, &n, msg, cap);
    if (err == POSGATE_OK && n > STORE_LISTS_MAX) {
        plat_msgf(msg, cap, "store: %zu lists installed, at most %d supported", n, STORE_LISTS_MAX);
        err = POSGATE_ERR_CORRUPT;
    }
    if (err == POSGATE_OK) {
        for (size_t i = 0; i < n; i++) {
            r->map[i].no = nos_p[i];
            r->map[i].index = (uint16_t)i;
        }
        sort_map(r->map, n);
        r->n_lists = n;
        err = read_config(r->db, &cfg, msg, cap);
        if (err == POSGATE_ERR_NOTFOUND) {
            feed_config_free(r->cfg);
            r->cfg = NULL;
            buf_reset(&r->cfg_bytes);
            err = POSGATE_OK;
        } else if (err == POSGATE_OK && (r->cfg == NULL || cfg.len != r->cfg_bytes.len ||
                                         memcmp(cfg.data, r->cfg_bytes.data, cfg.len) != 0)) {
            struct feed_config *c = NULL;
            char cmsg[FEED_ERRMSG_MIN];

            err = feed_config_parse(cfg.data, cfg.len, 0, &c, cmsg, sizeof(cmsg));
            if (err == POSGATE_ERR_NOMEM) {
                plat_msgf(msg, cap,
                          "store: out of memory reading the installed feed configuration");
            } else if (err != POSGATE_OK) {
                plat_msgf(msg, cap, "store: installed feed configuration is damaged: %s", cmsg);
                err = POSGATE_ERR_CORRUPT;
            } else {
                feed_config_free(r->cfg);
                r->cfg = c;
                buf_reset(&r->cfg_bytes);
                err = buf_append(&r->cfg_bytes, cfg.data, cfg.len);
            }
        }
    }
    if (err == POSGATE_OK) {
        for (size_t i = 0; i < r->n_lists; i++) {
            r->lists[i].cfg_index = feed_config_list_find(r->cfg, r->lists[i].id);
        }
    }
    if (nos_p != nos) {
        plat_free(nos_p);
    }
    buf_free(&cfg);
    return err;
}

enum posgate_err
store_reader_refresh(struct store_reader *r)
{
    uint64_t now, gen;
    enum posgate_err err;
    int64_t dv = 0;
    bool found = false;

    if (r == NULL) {
        return POSGATE_ERR_INVALID;
    }
    now = plat_mono_ns();
    gen = atomic_load(&process_commits);
    if (r->in_txn && gen == r->seen_store_gen && now - r->txn_start_ns < r->renew_ns) {
        return POSGATE_OK;
    }
    sqlite3_reset(r->lookup);
    sqlite3_reset(r->lookup_ov);
    if (r->in_txn) {
        (void)sqlite3_exec(r->db, "COMMIT", NULL, NULL, NULL);
        r->in_txn = false;
    }
    err = exec_sql(r->db, "BEGIN", r->errmsg, sizeof(r->errmsg));
    if (err != POSGATE_OK) {
        return err;
    }
    r->in_txn = true;
    r->seen_store_gen = gen;
    r->txn_start_ns = now;
    /* The first read starts the snapshot; data_version then tells whether it is new. */
    err = query_int(r->db, "SELECT count(*) FROM meta", &dv, &found, r->errmsg, sizeof(r->errmsg));
    if (err == POSGATE_OK) {
        err = query_int(r->db, "PRAGMA data_version", &dv, &found, r->errmsg, sizeof(r->errmsg));
    }
    if (err == POSGATE_OK && dv != r->data_version) {
        err = reader_load(r);
        if (err == POSGATE_OK) {
            r->data_version = dv;
            r->generation++;
        }
    } else if (err == POSGATE_OK && !r->kf_ok) {
        reader_filter(r); /* a filter rebuilt since, without a change of the store */
    }
    if (err != POSGATE_OK) {
        (void)sqlite3_exec(r->db, "COMMIT", NULL, NULL, NULL);
        r->in_txn = false;
        r->data_version = -1;
    }
    return err;
}

const struct store_meta *
store_reader_meta(const struct store_reader *r)
{
    return r != NULL ? &r->meta : NULL;
}

const struct feed_config *
store_reader_config(const struct store_reader *r)
{
    return r != NULL ? r->cfg : NULL;
}

const struct store_list *
store_reader_lists(const struct store_reader *r, size_t *n_lists)
{
    if (r == NULL) {
        if (n_lists != NULL) {
            *n_lists = 0;
        }
        return NULL;
    }
    if (n_lists != NULL) {
        *n_lists = r->n_lists;
    }
    return r->lists;
}

const char *
store_reader_errmsg(const struct store_reader *r)
{
    return r != NULL ? r->errmsg : "";
}

uint64_t
store_reader_generation(const struct store_reader *r)
{
    return r != NULL ? r->generation : 0;
}

static int
map_find(const struct store_reader *r, int64_t no)
{
    size_t lo = 0, hi = r->n_lists;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;

        if (r->map[mid].no == no) {
            return r->map[mid].index;
        }
        if (r->map[mid].no < no) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return -1;
}

enum posgate_err
store_lookup(struct store_reader *r, const uint8_t key[STORE_KEY_LEN], struct store_hit *out,
             size_t cap, size_t *n)
{
    enum posgate_err err;

    if (r == NULL || key == NULL || n == NULL || (out == NULL && cap > 0)) {
        return POSGATE_ERR_INVALID;
    }
    *n = 0;
    err = store_reader_refresh(r);
    if (err != POSGATE_OK) {
        return err;
    }
    return store_lookup_current(r, key, out, cap, n);
}

enum posgate_err
store_lookup_current(struct store_reader *r, const uint8_t key[STORE_KEY_LEN],
                     struct store_hit *out, size_t cap, size_t *n)
{
    size_t found = 0;
    sqlite3_stmt *st;
    int rc;

    if (r == NULL || key == NULL || n == NULL || (out == NULL && cap > 0)) {
        return POSGATE_ERR_INVALID;
    }
    *n = 0;
    if (!r->in_txn) {
        plat_msgf(r->errmsg, sizeof(r->errmsg), "store: reader has no version; refresh first");
        return POSGATE_ERR_STATE;
    }
    if (r->kf_ok && !keyfilter_maybe(&r->kf, key)) {
        return POSGATE_OK; /* in no row: the filter's "no" is certain */
    }
    st = r->has_recent ? r->lookup_ov : r->lookup;
    sqlite3_bind_blob(st, 1, key, STORE_KEY_LEN, SQLITE_STATIC);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (found < cap) {
            struct store_hit *h = &out[found];
            int64_t no = -1;
            int idx;

            idx = decode_row(st, &h->e, &no) ? map_find(r, no) : -1;
            if (idx < 0) {
                sqlite3_reset(st);
                plat_msgf(r->errmsg, sizeof(r->errmsg),
                          "store: an entry row of this key cannot be decoded");
                return POSGATE_ERR_CORRUPT;
            }
            h->list = (uint16_t)idx;
        }
        found++;
    }
    sqlite3_reset(st);
    if (rc != SQLITE_DONE) {
        return map_sqlite(rc) == POSGATE_OK ? POSGATE_ERR_IO : map_sqlite(rc);
    }
    *n = found;
    return POSGATE_OK;
}

const char *
store_sqlite_version(void)
{
    return sqlite3_libversion();
}
