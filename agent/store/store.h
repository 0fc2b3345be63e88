/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The kiosk's local store: one SQLite file holding the installed feed version, the feed
 * configuration and every list's entries, keyed by the 16-byte keyed hash. SQLite is included
 * here only. An update (snapshots and deltas of several lists, metadata, configuration) is one
 * SQLite transaction, so a check sees one whole version and a failed update leaves the last
 * good version serving. Entries are applied one record at a time (nothing holds a whole list in
 * memory). Checks go through reader handles (one per thread) that keep a read transaction open
 * and renew it when a new version has committed; a lookup does not allocate.
 *
 * Schema (version STORE_SCHEMA_VERSION, PRAGMA user_version; older files are migrated in place
 * by a table of migration functions, newer ones are refused):
 *
 *   meta(name TEXT PRIMARY KEY, value)  WITHOUT ROWID
 *       magic "posgate-store", feed_version, root_version, snapshot_version,
 *       targets_version, issued_at, expires_at, newest_issue_seen, installed_at,
 *       jurisdictions ("CN,HK"), config (the feed.json bytes, BLOB), keyset (16-byte BLOB)
 *   lists(no INTEGER PRIMARY KEY, id TEXT UNIQUE, seq, entries, digest TEXT (hex),
 *         state BLOB (268, state_digest_serialise), issued_at, reasons BLOB (bitmap))
 *   tmpl(id INTEGER PRIMARY KEY, list, stem BLOB, width, UNIQUE(list, stem, width))
 *   entries(k BLOB, t, n, a, f, u, s, PRIMARY KEY(k, t, n)) WITHOUT ROWID
 *   recent(k BLOB, t, n, d, a, f, u, s, PRIMARY KEY(k, t, n, d)) WITHOUT ROWID
 *
 * An entry row (≈ 40 bytes on disk with B-tree overhead for a typical entry):
 *
 *   +---------+------+-----+-----+-------------+---------------+------------------+
 *   | k       | t    | n   | a   | f           | u             | s                |
 *   | key 16B | tmpl | num | attr| valid_from  | valid_until   | scope narrowing  |
 *   | BLOB    | int  | int | int | int seconds | int, NULL=open| BLOB u16 BE each,|
 *   |         |      |     |     |             |               | NULL = none      |
 *   +---------+------+-----+-----+-------------+---------------+------------------+
 *   attr a = kind | id_type << 1 | reason << 5     (kind 0 restrict, 1 exempt)
 *   listing id = tmpl.stem || num in decimal, zero-padded to tmpl.width digits
 *                (width 0: the listing id is the stem alone and num is 0)
 *
 * A listing id is split at its trailing run of at most 18 digits ("SPC-2024-000123" → stem
 * "SPC-2024-", width 6, num 123; feed_listing_split, the split of the feed records too), so the
 * repeated prefix is stored once per list in tmpl; the template names its list, so (k, t, n) is
 * unique per (key, list, listing id), which is the identity of an entry within the feed.
 * Deleting a list's rows for a new snapshot scans the entries table (O(all entries)) unless the
 * list holds every row (then SQLite truncates). Templates of rows removed by deltas remain until
 * the list's next snapshot (they hold only public listing-id prefixes).
 *
 * Deltas go to recent, not to entries. The keys are keyed hashes, so a delta's changes land on
 * random pages: written into entries, a 1% delta of a 15M list rewrites most of the table's
 * pages. In recent a delta costs O(changes). A row of recent with d = 0 is an addition (a, f,
 * u, s as in entries); d = 1 marks the removal of the entries row (k, t, n) and carries its
 * values. The entries a check sees are the rows of entries without a marker plus the additions
 * (a key removed and added again has both). store_merge_step moves recent into entries a chunk
 * per transaction, each leaving the visible entries as they were: the daemon merges after a
 * sync, posgate import and sync after their commit (update.h, defer_merge), posgate compact on
 * demand. Until then a removed row stays in entries, hidden by its marker; the merge deletes it
 * (zeroed by secure_delete).
 *
 * Beside the file, "<path>.filter" is the key filter (keyfilter.h): meta "keyset" holds the
 * random token of the key set, which changes with every commit that adds a key, and a filter
 * file is used only for the token it names. store_filter_check and store_filter_rebuild below.
 *
 * Pragmas: journal_mode=WAL, synchronous=FULL, secure_delete=ON (removed entries are zeroed
 * on disk), foreign_keys off, mmap_size for readers.
 */
#ifndef POSGATE_STORE_H
#define POSGATE_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "feed_config.h"
#include "feed_records.h"
#include "posgate_err.h"
#include "state_digest.h"

#define STORE_SCHEMA_VERSION    3
#define STORE_KEY_LEN           16
#define STORE_JURISDICTIONS_MAX 16
#define STORE_LISTS_MAX         FEED_LISTS_MAX
#define STORE_REASON_BITMAP     (FEED_REASONS_MAX / 8)
#define STORE_ERRMSG_MAX        256
#define STORE_CONFIG_MAX        FEED_CONFIG_MAX_BYTES
/* Rows of recent moved per merge transaction. */
#define STORE_MERGE_CHUNK 16384

/* Process-wide SQLite settings, applied once before SQLite's first use (store_open and the
 * audit queue call it). */
void store_sqlite_setup(void);

/* store_open flags. */
#define STORE_CREATE   0x1u /* create the file (and schema) when missing */
#define STORE_READONLY 0x2u /* no updates through this handle (a reader-only process) */

/* Installed feed metadata (one row per field in meta). Zero means unknown / never set. */
struct store_meta {
    int64_t feed_version; /* the timestamp role's version */
    int64_t root_version;
    int64_t snapshot_version;
    int64_t targets_version;
    int64_t issued_at;         /* issue time of the installed feed (seconds) */
    int64_t expires_at;        /* earliest expiry of the installed metadata */
    int64_t newest_issue_seen; /* newest signed issue time ever seen (clock-fault check) */
    int64_t installed_at;      /* wall time of the last committed update */
    uint16_t n_jurisdictions;
    char jurisdictions[STORE_JURISDICTIONS_MAX][3]; /* the kiosk's gate jurisdictions, "CN" */
};

/* One installed list (a row of lists). */
struct store_list {
    char id[FEED_LIST_ID_MAX + 1];
    uint64_t seq;
    uint64_t entries;
    int64_t issued_at;
    char digest[STATE_DIGEST_HEX_LEN + 1];
    struct state_digest state;
    uint8_t reasons[STORE_REASON_BITMAP]; /* bit r set: some entry used reason r (superset) */
    int cfg_index; /* (readers) index in the reader's feed config lists, -1 when absent */
    bool authority_fresh; /* a delegated list: fresh only as of its authority's signatures */
    int64_t vouched_at;   /* ... the last of which signed its role then (0: unknown) */
};

struct store;
struct store_update;
struct store_reader;

/* Opens (STORE_CREATE: creates) the store file at path and migrates an older schema. CORRUPT
 * for a file that is not a posgate store, a damaged file or a schema newer than this program;
 * NOTFOUND when missing without STORE_CREATE. errmsg (may be NULL) holds the reason. */
POSGATE_WUR enum posgate_err store_open(const char *path, unsigned flags, struct store **out,
                                        char *errmsg, size_t errcap);
/* NULL is a no-op. Every reader and update of the store must be freed first. */
void store_close(struct store *s);
/* The message of the last failure on this handle ("" when none); not for readers. */
const char *store_errmsg(const struct store *s);

/* Reads the metadata / one list / all lists / the feed config bytes of the committed version
 * (each call is its own read). store_get_list: NOTFOUND when the list is not installed.
 * store_get_lists fills at most cap lists and sets *n to the number installed. */
POSGATE_WUR enum posgate_err store_get_meta(struct store *s, struct store_meta *out);
POSGATE_WUR enum posgate_err store_get_list(struct store *s, const char *list_id,
                                            struct store_list *out);
POSGATE_WUR enum posgate_err store_get_lists(struct store *s, struct store_list *out, size_t cap,
                                             size_t *n);
/* Appends the installed feed.json bytes to out (NOTFOUND when none is installed). */
POSGATE_WUR enum posgate_err store_get_config(struct store *s, struct buf *out);
/* The instant a list's data is fresh as of: its own signed issue time, and the time its
 * authority last vouched for it (a delegated list) or the installed feed's signed issue time
 * (any other list), whichever is later. */
int64_t store_list_fresh_at(const struct store_list *l, const struct store_meta *m);

/* Updates. One update at a time per store (STATE otherwise). Usage:
 *
 *   store_begin_update(s, &u);
 *   store_update_set_meta(u, &meta);                 any order, each optional
 *   store_update_set_config(u, json, len);
 *   store_list_snapshot_begin(u, "no-fly", 0);       then store_list_add() per record
 *   store_list_finish(u, seq, issued_at, &trailer_state);
 *   store_list_delta_begin(u, "spc", base_seq);      then every store_list_remove(),
 *   store_list_finish(u, seq, issued_at, &result);   then every store_list_add()
 *   store_update_commit(u);                          or store_update_abort(u)
 *
 * Any failure inside an update poisons it: later calls return STATE and only abort (or a
 * commit, which then rolls back and returns the first error) is possible; the committed
 * version is untouched. The feed_entry fields are validated (feed_entry_check). */
POSGATE_WUR enum posgate_err store_begin_update(struct store *s, struct store_update **out);
POSGATE_WUR enum posgate_err store_update_set_meta(struct store_update *u,
                                                   const struct store_meta *m);
/* The feed.json bytes as published; parsed here (tolerant mode) to validate them. */
POSGATE_WUR enum posgate_err store_update_set_config(struct store_update *u, const void *json,
                                                     size_t len);
/* The delegated lists and the time their authority last signed each one's role, as
 * "id=seconds,id=seconds" (meta "authority_fresh"); replaces the previous set. Their data age
 * counts from their own signatures only, never from the operator's timestamp
 * (store_list_fresh_at). */
POSGATE_WUR enum posgate_err store_update_set_authority_fresh(struct store_update *u,
                                                              const char *text);
/* Sets the kiosk's gate jurisdictions (posgate init); n <= STORE_JURISDICTIONS_MAX codes of
 * two letters, stored in upper case. */
POSGATE_WUR enum posgate_err store_update_set_jurisdictions(struct store_update *u,
                                                            const char *const *cc, size_t n);

/* Snapshot: replaces every entry of the list (creating the list when new). With
 * STORE_SNAPSHOT_TRUST_STATE the store does not hash the entries (the caller read them with
 * FEED_READ_VERIFY_DIGEST) and store_list_finish must be given the state; otherwise the store
 * computes the state and compares it with the one given to finish (if any). */
#define STORE_SNAPSHOT_TRUST_STATE 0x1u
POSGATE_WUR enum posgate_err store_list_snapshot_begin(struct store_update *u, const char *list_id,
                                                       unsigned flags);
/* Delta: REJECTED when the list is not installed or its seq is not base_seq. */
POSGATE_WUR enum posgate_err store_list_delta_begin(struct store_update *u, const char *list_id,
                                                    uint64_t base_seq);
/* A snapshot record or a delta addition. REJECTED when the entry (key, listing id) is already
 * in the list; INVALID for a malformed entry. */
POSGATE_WUR enum posgate_err store_list_add(struct store_update *u, const struct feed_entry *e);
/* A delta removal (key and listing id are read). REJECTED when the entry is not in the list or
 * an addition was already applied in this delta (removals come first). */
POSGATE_WUR enum posgate_err store_list_remove(struct store_update *u, const struct feed_entry *e);
/* Ends the current list: records seq, issued_at, entry count, state and digest. expected may
 * be NULL (not with STORE_SNAPSHOT_TRUST_STATE); REJECTED when the computed state differs
 * ("digest mismatch after applying"), ROLLBACK when a snapshot's seq is below the installed
 * one. The resulting state is available with store_update_list_state until the next begin. */
POSGATE_WUR enum posgate_err store_list_finish(struct store_update *u, uint64_t seq,
                                               int64_t issued_at,
                                               const struct state_digest *expected);
/* The state of the list last finished (or being applied); NULL before any. */
const struct state_digest *store_update_list_state(const struct store_update *u);
/* Removes a list and all its entries (a list dropped from the feed). NOTFOUND when absent. */
POSGATE_WUR enum posgate_err store_list_drop(struct store_update *u, const char *list_id);
/* Tells the update about how many keys the store holds after it (sizes a new key filter;
 * optional). */
void store_update_expect_keys(struct store_update *u, uint64_t n);
/* Entries added/removed in this update so far. */
uint64_t store_update_changes(const struct store_update *u);
/* Commits (fsync, synchronous=FULL) and frees u. On failure everything is rolled back. */
POSGATE_WUR enum posgate_err store_update_commit(struct store_update *u);
/* Rolls back and frees; NULL is a no-op. */
void store_update_abort(struct store_update *u);

/* Rows in recent (not yet merged) and the entries of all lists. */
POSGATE_WUR enum posgate_err store_recent_rows(struct store *s, uint64_t *rows, uint64_t *entries);

/* Moves up to max_rows (>= 2) rows of recent into entries in one transaction; *moved is how
 * many, *more whether recent may hold more. The visible entries do not change. Errors: STATE
 * (read-only, or an update is open on this handle), CORRUPT (recent does not match entries),
 * IO/FULL (nothing of this step is kept). */
POSGATE_WUR enum posgate_err store_merge_step(struct store *s, size_t max_rows, uint64_t *moved,
                                              bool *more);

/* The key filter (keyfilter.h): a file beside the store that answers "in no row" for most
 * absent keys without SQLite. An update that adds keys keeps it (in place, or a new one when it
 * replaced every list) or leaves none for its version; readers then use SQLite alone until
 * store_filter_rebuild. STALE: made for another version, of an older format, or in flux (an
 * update adds to it); FULL: usable but due for a rebuild; DAMAGED: not a filter file, one whose
 * blocks do not match their checksum (bits lost on disk), or one that fails a key of a spot
 * check (a few keys of the store found from random points); readers refuse it too. */
enum store_filter_state {
    STORE_FILTER_OK,
    STORE_FILTER_FULL,
    STORE_FILTER_STALE,
    STORE_FILTER_MISSING,
    STORE_FILTER_DAMAGED
};
const char *store_filter_state_name(enum store_filter_state st);
/* The filter's state for the store's newest version; keys (may be NULL): keys it holds. */
POSGATE_WUR enum posgate_err store_filter_check(struct store *s, enum store_filter_state *state,
                                                uint64_t *keys);
/* Writes a new filter from every row, under the store's write lock (a few seconds at 15M
 * entries); keys (may be NULL): keys added. STATE when read-only or an update is open. */
POSGATE_WUR enum posgate_err store_filter_rebuild(struct store *s, uint64_t *keys);

/* Recomputes every list's state from its rows and compares it with the stored state and the
 * entry count. REJECTED (CORRUPT for an unreadable row) when any differs; errmsg names the
 * list. progress (may be NULL) is called every 65536 rows with the rows read so far. */
POSGATE_WUR enum posgate_err store_verify(struct store *s, void (*progress)(void *, uint64_t),
                                          void *ctx, char *errmsg, size_t errcap);

/* Readers: one per thread; any number per store. A reader holds a read transaction on one
 * version and renews it before a lookup when that version is no longer the newest (updates in
 * this process are seen at once; updates by another process within renew_ms milliseconds,
 * default 1000, as the transaction is also renewed on that period). */
POSGATE_WUR enum posgate_err store_reader_new(struct store *s, struct store_reader **out);
void store_reader_free(struct store_reader *r);
/* Sets the renewal period in milliseconds (0 = renew before every lookup). */
void store_reader_set_renew_ms(struct store_reader *r, uint32_t ms);

/* Brings the reader to the newest committed version if needed (allocates only when the
 * version changed: it parses the feed config). Called by store_lookup; call it explicitly
 * before reading the accessors below so they describe the version lookups will use. */
POSGATE_WUR enum posgate_err store_reader_refresh(struct store_reader *r);
/* The same, for a caller that has read the monotonic clock (plat_mono_ns) since it took the
 * reader: one clock reading less. */
POSGATE_WUR enum posgate_err store_reader_refresh_at(struct store_reader *r, uint64_t mono_ns);
/* The reader's version: metadata, the feed config (NULL when none installed) and the installed
 * lists (n_lists entries, with cfg_index resolved against that config). Valid until the next
 * refresh or lookup on this reader. */
const struct store_meta *store_reader_meta(const struct store_reader *r);
const struct feed_config *store_reader_config(const struct store_reader *r);
const struct store_list *store_reader_lists(const struct store_reader *r, size_t *n_lists);
/* The message of the reader's last failure ("" when none). */
const char *store_reader_errmsg(const struct store_reader *r);
/* A counter that changes whenever the reader moved to another version. */
uint64_t store_reader_generation(const struct store_reader *r);
/* One object of the caller's kept with the reader, for what it derives from the reader's
 * version (it compares store_reader_generation to know when to recompute): freed with the
 * reader by free_fn (may be NULL), and an earlier one replaced by another is freed at once. */
void store_reader_set_cache(struct store_reader *r, void *cache, void (*free_fn)(void *));
void *store_reader_cache(const struct store_reader *r); /* NULL when none */
/* True when the reader's lookups consult the key filter first (a filter made for its version). */
bool store_reader_uses_filter(const struct store_reader *r);

struct store_hit {
    uint16_t list; /* index into store_reader_lists */
    struct feed_entry e;
};
#define STORE_HITS_MAX 64

/* Every entry with this key, across lists, into out[0..cap); *n is the number found, which may
 * exceed cap (then only cap were written). Does not allocate; refreshes first (see above).
 * CORRUPT for a row that cannot be decoded. */
POSGATE_WUR enum posgate_err store_lookup(struct store_reader *r, const uint8_t key[STORE_KEY_LEN],
                                          struct store_hit *out, size_t cap, size_t *n);
/* The same in the reader's current version, without refreshing (several lookups of one check
 * then see one version). STATE when the reader was never refreshed. */
POSGATE_WUR enum posgate_err store_lookup_current(struct store_reader *r,
                                                  const uint8_t key[STORE_KEY_LEN],
                                                  struct store_hit *out, size_t cap, size_t *n);

/* A hint that key is about to be looked up: the filter's block for it is brought towards the
 * CPU's cache meanwhile (the probe's memory latency overlaps the caller's other work). Changes
 * nothing a lookup answers; does nothing without a filter for the reader's version. */
void store_reader_prefetch(const struct store_reader *r, const uint8_t key[STORE_KEY_LEN]);

/* The run-time SQLite version, for --version. */
const char *store_sqlite_version(void);

#endif
