/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Bundles: one file that carries a TUF feed (the metadata and the targets a kiosk needs) on a
 * USB stick. A bundle is only a container: nothing in it is trusted, the TUF client verifies
 * every byte exactly as it does for a directory (carrier_bundle_new serves the bundle's
 * "metadata/..." and "targets/..." members to it). The reader validates the whole index
 * before anything is served: every offset and length inside the file, bodies packed in index
 * order with no gap or overlap, paths relative, without "." or ".." segments, strictly sorted
 * (so no duplicates) and at most BUNDLE_PATH_MAX bytes.
 *
 *   offset 0                                                                 (big-endian)
 *   +----------------+----------+----------+---------------+------------------+
 *   | magic          | version  | count    | index_len     | reserved (0)     |
 *   | "PGBUNDL1" 8 B | u32 = 1  | u32      | u64           | u64              |  header, 32 B
 *   +----------------+----------+----------+---------------+------------------+
 *   | index: count entries, strictly ascending by path bytes                  |
 *   |   +-----------+----------------------+-------------+-------------+      |
 *   |   | path_len  | path (no NUL)        | offset      | length      |      |
 *   |   | u16       | path_len bytes       | u64         | u64         |      |
 *   |   +-----------+----------------------+-------------+-------------+      |
 *   |   ... (index_len bytes in all)                                          |
 *   +-------------------------------------------------------------------------+
 *   | body of entry 0 (offset = 32 + index_len)                               |
 *   | body of entry 1 (offset = offset0 + length0) ...                        |
 *   +-------------------------------------------------------------------------+
 *   end of file = offset of the last entry + its length (nothing may follow)
 *
 * Paths are the feed directory's relative names: "metadata/3.root.json",
 * "metadata/timestamp.json", "targets/lists/eu-1/<sha256>.snapshot-4.pgs", ...
 */
#ifndef POSGATE_BUNDLE_H
#define POSGATE_BUNDLE_H

#include <stddef.h>
#include <stdint.h>

#include "carrier.h"
#include "posgate_err.h"

#define BUNDLE_MAGIC       "PGBUNDL1"
#define BUNDLE_MAGIC_LEN   8
#define BUNDLE_VERSION     1u
#define BUNDLE_HEADER_LEN  32u
#define BUNDLE_PATH_MAX    1024u
#define BUNDLE_MAX_ENTRIES 1000000u
#define BUNDLE_INDEX_MAX   (64u << 20) /* bytes of the index */
#define BUNDLE_ERRMSG_MAX  512

/* One member of a bundle as the index lists it. */
struct bundle_entry {
    const char *path; /* NUL-terminated, owned by the bundle */
    uint64_t offset;
    uint64_t length;
};

struct bundle;

/* 1 when the file at path starts with the bundle magic (a cheap test to tell a bundle from a
 * feed directory), 0 otherwise (also when it cannot be read). */
int bundle_is_bundle(const char *path);

/* Opens a bundle file and validates its header and index (INVALID/PARSE with the reason in
 * errmsg: "bundle index entry 3: offset 120 is not where entry 2 ends (118)"); NOTFOUND when the
 * file is absent, IO when it cannot be read, TOOBIG past the caps. */
POSGATE_WUR enum posgate_err bundle_open(const char *path, struct bundle **out, char *errmsg,
                                         size_t errcap);
/* The same over bytes in memory (copied), for tests and fuzzing. */
POSGATE_WUR enum posgate_err bundle_open_mem(const void *data, size_t len, struct bundle **out,
                                             char *errmsg, size_t errcap);
void bundle_free(struct bundle *b); /* NULL is a no-op */

size_t bundle_count(const struct bundle *b);
/* The i-th entry in path order; NULL past the end. */
const struct bundle_entry *bundle_entry_at(const struct bundle *b, size_t i);
/* Binary search by exact path; NULL when absent. */
const struct bundle_entry *bundle_find(const struct bundle *b, const char *path);
/* Reads len bytes of an entry's body from off (relative to the body start) into out;
 * INVALID when the range leaves the body, IO on a short read. */
POSGATE_WUR enum posgate_err bundle_read(const struct bundle *b, const struct bundle_entry *e,
                                         uint64_t off, void *out, size_t len);

/* One file to put in a bundle: its path inside the bundle and where its bytes are now. */
struct bundle_item {
    const char *path;
    const char *src_path;
};

/* Writes a bundle atomically to out_path from the items (any order; they are sorted by path,
 * and checked against the path rules; a duplicate path is INVALID). Bodies are streamed, never
 * held whole in memory. */
POSGATE_WUR enum posgate_err bundle_write(const char *out_path, const struct bundle_item *items,
                                          size_t n, char *errmsg, size_t errcap);

/* INVALID unless path follows the rules of a bundle path (relative, '/'-separated, no empty,
 * "." or ".." segment, no control byte, at most BUNDLE_PATH_MAX bytes). */
POSGATE_WUR enum posgate_err bundle_check_path(const char *path, size_t len);

/*
 * A carrier (carrier.h) that serves the members below prefix: with prefix "metadata/", fetching
 * "3.root.json" returns the member "metadata/3.root.json". The bundle file is opened and
 * validated here (errors as bundle_open; the message is in errmsg) and kept open for the
 * carrier's life. Use one carrier with "metadata/" for tuf_client_options.metadata and one
 * with "targets/" for .targets.
 */
POSGATE_WUR enum posgate_err carrier_bundle_new(const char *bundle_path, const char *prefix,
                                                struct carrier **out, char *errmsg, size_t errcap);

#endif
