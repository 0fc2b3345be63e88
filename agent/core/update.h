/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Installing a feed version: the one path from an untrusted carrier (a feed directory, a bundle
 * file, an HTTP mirror) into the store. It runs the TUF client workflow on a staging copy of the
 * trusted metadata, downloads the feed config and, per list, either the chain of deltas from the
 * installed seq or the newest snapshot (each target verified against its signed length and hashes
 * before it is read), applies everything to the store in ONE transaction and verifies each list's
 * state digest against the signed one; only after the store commit are the staged metadata
 * promoted. Any failure leaves the store and the trusted metadata as they were.
 *
 * Rules besides those of the TUF workflow (each a REJECTED with a message):
 *   - a list seq going back from the installed one;
 *   - a delta whose base is not the installed seq (the chain is then not taken);
 *   - a digest mismatch after applying a delta (the update is redone with the snapshot);
 *   - a list delegated to an authority's role whose targets appear in another role;
 *   - a list pinned to its authority's delegation (pins.h) that config/feed.json drops, whose
 *     role lists no lists/<id>/config.json, or whose entry in config/feed.json (the list, the
 *     reasons its entries use, the services before them) differs from that authority-signed
 *     copy (list_config.h);
 *   - expired metadata, unless accept_expired and the feed version is newer than the installed
 *     one (the lists then count as fresh only as of their own signed issue time).
 */
#ifndef POSGATE_UPDATE_H
#define POSGATE_UPDATE_H

#include <stddef.h>
#include <stdint.h>

#include "carrier.h"
#include "datadir.h"
#include "posgate_err.h"
#include "store.h"

/* Every update of a data directory (update_run, update_compact: the daemon, posgate import,
 * sync and compact) holds an exclusive flock on DIR/update.lock (plat_lock.h) from before it
 * reads the store until after the trusted metadata are promoted, so two never interleave. A
 * second caller waits up to its lock_wait_ms, then gets RETRY with "an update is running
 * (pid N)". */
#define UPDATE_LOCK_FILE    "update.lock"
#define UPDATE_LOCK_WAIT_MS 60000 /* the CLI's wait; the daemon waits 1 s and tries next poll */

struct update_options {
    const char *data_dir;     /* NULL: the default data dir */
    struct carrier *metadata; /* borrowed */
    struct carrier *targets;  /* borrowed */
    int accept_expired;
    int progress; /* draw progress bars on a terminal */
    int64_t now;  /* 0: the wall clock */
    /* 0: after installing, merge the store's recent changes into its main table (store.h), so
     * that rows removed are erased when the call returns; 1: leave that to the caller
     * (update_compact), as the daemon does outside the sync */
    int defer_merge;
    /* how long to wait for another update of the data dir: 0 UPDATE_LOCK_WAIT_MS, < 0 not at
     * all */
    long lock_wait_ms;
};

struct update_result {
    int changed;          /* 1 when list data changed */
    int64_t feed_version; /* timestamp version now installed */
    int64_t previous_version;
    unsigned snapshots; /* lists replaced from a snapshot */
    unsigned deltas;    /* deltas applied */
    unsigned dropped;   /* lists removed from the feed */
    unsigned fallbacks; /* delta chains abandoned for a snapshot */
    uint64_t entries_changed;
    int expired_accepted;
    double install_s;     /* from the start to the commit of the new version */
    uint64_t merged_rows; /* recent rows merged after the commit */
    uint64_t filter_keys; /* keys of a key filter rebuilt after the commit (0: none needed) */
    double merge_s;       /* the merge and the rebuild */
};

/* Runs one update. Errors: REJECTED (the feed was refused: errmsg says why), NETWORK/RETRY/IO
 * (the carrier failed), NOTFOUND (no store: run posgate init), CORRUPT, NOMEM. */
POSGATE_WUR enum posgate_err update_run(const struct update_options *opt, struct update_result *res,
                                        char *errmsg, size_t errcap);

/* Whether the trusted metadata and the store agree: the root and timestamp versions in tuf/
 * (or, while an update promotes them, in tuf-staging/) are the store's root_version and
 * feed_version. CORRUPT with a message naming both when they do not: the data dir must then not
 * be served as if it were fine (checks refuse, status shows it). OK when nothing is installed. */
POSGATE_WUR enum posgate_err update_meta_agreement(const struct datadir *dd,
                                                   const struct store_meta *m, char *msg,
                                                   size_t cap);

/* Merges the store's recent changes into its main table, a transaction per chunk, until none
 * is left or keep_going (may be NULL) returns 0 between chunks; then rebuilds the key filter
 * when the newest version has none usable (store_filter_rebuild). The store is opened here
 * (data_dir NULL: the default). *moved counts the rows merged, *filter_keys the keys of a
 * rebuilt filter (0: none needed). Errors as store_merge_step; errmsg says what failed. */
POSGATE_WUR enum posgate_err update_compact(const char *data_dir, int (*keep_going)(void *),
                                            void *ctx, uint64_t *moved, uint64_t *filter_keys,
                                            char *errmsg, size_t errcap);

#endif
