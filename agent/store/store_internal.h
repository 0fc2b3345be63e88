/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What the store's files share (agent/store only; not installed): the handle and the update's
 * state, the SQL of the visible rows, and the functions one file defines for the others.
 *
 *   store_schema.c   the SQLite layer (errors, statements, transactions), schema, migrations,
 *                    store_open / store_close
 *   store_reader.c   the row codec, the metadata, lists and config getters, readers, lookups
 *   store_update.c   an update's transaction, its metadata and config, its key filter upkeep
 *   store_list.c     a list's snapshot or delta inside an update
 *   store_runs.c     a snapshot's rows in sorted runs, merged into entries before the commit
 *   store_merge.c    recent merged into entries; the key filter's check and rebuild
 *   store_verify.c   store_verify
 */
#ifndef POSGATE_STORE_INTERNAL_H
#define POSGATE_STORE_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <sqlite3.h>

#include "keyfilter.h"
#include "store.h"

#define BUSY_TIMEOUT_MS  10000
#define TMPL_CACHE_SLOTS 1024
#define STEM_MAX         FEED_LISTING_ID_MAX

/* Commits through any store handle of this process: readers renew when it moves, so a check
 * never answers from an older version than one this process already committed, whichever
 * handle committed it (an update runs on its own handle, checks on pooled readers). */
extern _Atomic uint64_t store_process_commits;

/* A store handle (store_open). */
struct store {
    sqlite3 *db;
    unsigned flags;
    bool updating;
    _Atomic uint64_t generation; /* bumped after each commit through this handle */
    char *kf_path;               /* the key filter file beside the store (keyfilter.h) */
    pthread_mutex_t kf_mu;       /* kf_seen; held while a reader reads the filter's blocks */
    struct keyfilter_seen kf_seen; /* the filter its readers found good (CRC, spot check) */
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

/* One list's run in the rows file of an update (store_runs.c). */
struct run_seg {
    int64_t list_no;
    uint64_t start, end; /* its bytes in the file */
    uint32_t crc;        /* CRC-32 of those bytes as written */
};

/* The sorted runs of an update's snapshots (store_runs.c). */
struct store_runs {
    int fd;      /* the unlinked rows file; -1 until the first row */
    bool off;    /* rows go straight into entries for the rest of the update */
    bool in_seg; /* the last run takes the current list's rows */
    uint64_t size;
    size_t wlen;     /* bytes of size still in wbuf */
    size_t crc_done; /* ... of which the CRC of the last run has summed */
    uint8_t *wbuf;
    size_t n_seg, cap_seg;
    struct run_seg *seg;
    uint8_t last_key[FEED_KEY_LEN]; /* the open run's last key */
};

/* An update (store_begin_update): its transaction state (store_update.c) and the list being
 * applied (store_list.c). */
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
    struct store_runs runs;
    unsigned n_pending;
    struct pending_row pending[INS_BATCH];
};

/* The visible entries: rows of entries without a removal marker, plus the additions in
 * recent (store.h). VISIBLE_ROWS(" AND e.k = ?1") selects one key's. */
#define ROW_COLS   "SELECT e.k, e.t, e.n, e.a, e.f, e.u, e.s, m.list, m.stem, m.width FROM "
#define ROW_SELECT ROW_COLS "entries AS e LEFT JOIN tmpl AS m ON m.id = e.t"
#define VISIBLE_ROWS(cond)                                                                         \
    ROW_SELECT " WHERE NOT EXISTS(SELECT 1 FROM recent AS r WHERE r.k = e.k AND r.t = e.t"         \
               " AND r.n = e.n AND r.d = 1)" cond " UNION ALL " ROW_COLS                           \
               "recent AS e LEFT JOIN tmpl AS m ON m.id = e.t WHERE e.d = 0" cond

/* ---- store_schema.c: the SQLite layer */

/* The posgate error for an SQLite result code (OK for SQLITE_OK, ROW and DONE). */
enum posgate_err store_sqlite_err(int rc);
/* "store: what: SQLite's message" into msg; the error (IO when rc maps to OK). */
enum posgate_err store_db_fail(sqlite3 *db, int rc, const char *what, char *msg, size_t cap);
/* Runs sql (any number of statements without results). */
enum posgate_err store_exec(sqlite3 *db, const char *sql, char *msg, size_t cap);
/* A persistent prepared statement; *out NULL on failure. */
enum posgate_err store_prepare(sqlite3 *db, const char *sql, sqlite3_stmt **out, char *msg,
                               size_t cap);
/* Runs a query returning one integer; *found false when no row. */
enum posgate_err store_query_int(sqlite3 *db, const char *sql, int64_t *out, bool *found, char *msg,
                                 size_t cap);
/* The entries of all lists (the visible rows). */
enum posgate_err store_lists_total(sqlite3 *db, int64_t *total, char *msg, size_t cap);
/* The key set token (meta "keyset", keyfilter.h); *have is false when the store has none. */
enum posgate_err store_read_token(sqlite3 *db, uint8_t token[KEYFILTER_TOKEN_LEN], bool *have,
                                  char *msg, size_t cap);
/* A connection with the store's pragmas (writer: the larger cache). */
enum posgate_err store_open_conn(const char *path, bool write, bool create, sqlite3 **out,
                                 char *msg, size_t cap);
/* COMMIT when err is OK (its failure becomes err), else ROLLBACK; returns err. */
enum posgate_err store_end_txn(struct store *s, enum posgate_err err);
/* Truncates the WAL after a commit, best effort and without waiting. */
void store_checkpoint_now(struct store *s);

/* ---- store_reader.c: rows, metadata, lists and config */

/* The integer fields of struct store_meta by their names in meta (store_meta_field(m, i) is
 * the field named store_meta_names[i]). */
#define STORE_META_FIELDS 8
extern const char *const store_meta_names[STORE_META_FIELDS];
int64_t *store_meta_field(struct store_meta *m, size_t i);
/* Decodes the value columns a (attributes), f (valid_from), u_col (valid_until) and s_col
 * (scope) of an entry row into e; false when damaged. */
bool store_decode_attrs(struct feed_entry *e, int64_t a, int64_t f, sqlite3_stmt *st, int u_col,
                        int s_col);
/* Decodes a ROW_SELECT / VISIBLE_ROWS row into e and *list_no; false when damaged. */
bool store_decode_row(sqlite3_stmt *st, struct feed_entry *e, int64_t *list_no);
enum posgate_err store_read_meta(sqlite3 *db, struct store_meta *out, char *msg, size_t cap);
/* Every list in order of no (at most cap into out and nos, which may be NULL); *n is the
 * number installed. */
enum posgate_err store_read_lists(sqlite3 *db, struct store_list *out, int64_t *nos, size_t cap,
                                  size_t *n, char *msg, size_t msgcap);
/* Appends the installed feed.json bytes to out; NOTFOUND when none is installed. */
enum posgate_err store_read_config(sqlite3 *db, struct buf *out, char *msg, size_t cap);

/* ---- store_update.c: the update's transaction */

/* Records the update's first error (later ones are dropped) and returns err. */
enum posgate_err store_ufail(struct store_update *u, enum posgate_err err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* store_ufail with SQLite's message for rc. */
enum posgate_err store_ufail_db(struct store_update *u, int rc, const char *what);
/* INVALID for no update, STATE for a failed one, else OK. */
enum posgate_err store_update_ready(struct store_update *u);
/* The key filter's share of an added key, and of a list emptied by the update. */
void store_kf_note_add(struct store_update *u, const uint8_t *key);
/* Chooses how the update keeps the key filter, as its first added key does, and returns the
 * writer that takes the keys it adds, or NULL when it keeps none: keyfilter_add on it and
 * u->adds++ then stand for store_kf_note_add, from another thread too while the update's own
 * thread leaves the writer alone (store_runs.c's reader thread). */
struct keyfilter_writer *store_kf_writer(struct store_update *u);
void store_kf_note_cleared(struct store_update *u, int64_t no);

/* ---- store_list.c: rows into entries */

/* Queues a row for entries (inserted INS_BATCH at a time); store_flush_rows inserts the rows
 * queued. */
enum posgate_err store_put_row(struct store_update *u, const struct pending_row *r);
/* store_put_row of n rows in turn (whole batches from rows itself when none is queued). */
enum posgate_err store_put_rows(struct store_update *u, const struct pending_row *rows, size_t n);
enum posgate_err store_flush_rows(struct store_update *u);

/* ---- store_runs.c: a snapshot's rows wait in sorted runs, merged into entries */

/* Takes a snapshot row into the current list's run (*taken), or leaves it to the caller to
 * insert directly (no rows file; the runs are off). */
enum posgate_err store_runs_put(struct store_update *u, const struct pending_row *r, bool *taken);
/* Ends the current list's run. */
void store_runs_end_list(struct store_update *u);
/* True when a run of the update holds rows of list no. */
bool store_runs_has_list(const struct store_update *u, int64_t list_no);
/* Inserts every waiting row into entries in key order (the queued direct rows first). */
enum posgate_err store_runs_flush(struct store_update *u);
/* Frees the runs and closes the rows file (its rows are dropped). */
void store_runs_close(struct store_runs *w);

/* ---- store_reader.c: the key filter verdict the handle's readers share */

/* Drops the shared verdict (kf_seen): the handle's next reader reads the filter's blocks and spot
 * checks it again. For a check of the handle that found the file damaged or lacking keys: a
 * verdict taken before the loss would otherwise stand for the rest of the version. */
void store_filter_forget(struct store *s);

/* ---- store_merge.c: the key filter */

/* A few visible keys of the store must pass filter m (keyfilter.h); false when one does not
 * or the check cannot run. */
bool store_filter_spot_check(sqlite3 *db, const struct keyfilter_map *m);

#endif
