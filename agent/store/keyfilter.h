/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The key filter: a blocked Bloom filter of the store's keys in its own file beside the store
 * ("<store>.filter"), so that a lookup of a key that is in no row (most checks: most people
 * are on no list) is answered without SQLite. A "no" from the filter is certain; a "maybe"
 * goes to SQLite as before.
 *
 * File (little-endian): a 4,096-byte header, then n_blocks blocks of 64 bytes.
 *   0  magic "PGKFLT02"     8  block bytes (u32, 64)   12 probes (u32, 7)
 *   16 n_blocks (u64)       24 keys added (u64)         32 token (16 bytes)
 *   48 CRC-32 of the blocks (u32)   52 flux (u32: 1 while a writer adds keys in place)
 *   56 in-place updates begun (u64)
 * A process checks the CRC when it first uses a file for a version, so that bits lost on disk
 * (a flipped sector: a "no" for a listed key, a wrong ALLOW) make the file unused instead. A
 * file in flux, or one whose header changes while the CRC is read, is busy: not used, not
 * damaged. A file of the older format (PGKFLT01) is refused and rebuilt.
 * A key's block is (first 4 bytes big-endian * n_blocks) >> 32, so keys in sorted order fill
 * the blocks in order; its 7 bits in the block come from bytes 8..15. Keys are HMAC outputs.
 *
 * Which store version a file is good for: the store keeps a random token (meta "keyset") that
 * changes with every commit that adds a key; a file whose token equals the store's holds every
 * key of that version. Under the store's write lock, a writer sets bits only (never clears
 * one) in a file in place, makes them durable and only then writes the new token through the
 * same open file, before the store commits that token; a new file (the first import, a
 * rebuild) is written whole with its token under a temporary name and renamed over. So a file
 * that names a token covers it for as long as it exists, a crash at any point leaves tokens
 * that differ (the filter is then not used until it is rebuilt), and a reader that matched a
 * token keeps a correct filter for that version while writers add bits.
 */
#ifndef POSGATE_KEYFILTER_H
#define POSGATE_KEYFILTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "plat_file.h"
#include "posgate_err.h"

#define KEYFILTER_TOKEN_LEN 16
#define KEYFILTER_KEY_LEN   16
#define KEYFILTER_HEADER    4096
#define KEYFILTER_BLOCK     64
#define KEYFILTER_PROBES    7
#define KEYFILTER_SUFFIX    ".filter"
/* Bits per key a new filter is sized for: about 0.1% of absent keys then pass (at 10 bits it was
 * 1%, and those checks' B-tree lookups set an ALLOW's p99). */
#define KEYFILTER_BITS_PER_KEY 16
/* A filter holding more keys than one per KEYFILTER_FULL_BITS bits (about 0.4% of absent keys
 * passing) is due for a rebuild. */
#define KEYFILTER_FULL_BITS 12

/* A read-only mapping of a filter file. */
struct keyfilter_map {
    const uint8_t *base; /* NULL: not mapped */
    size_t len;
    uint64_t n_blocks;
    dev_t dev;
    ino_t ino;
};

/* Maps path. NOTFOUND when absent, CORRUPT when it is not a filter file, UNSUPPORTED when it
 * is one of the older format (msg says why). */
POSGATE_WUR enum posgate_err keyfilter_map_open(struct keyfilter_map *m, const char *path,
                                                char *msg, size_t cap);
void keyfilter_map_close(struct keyfilter_map *m);
/* True when path names the file m maps (same device and inode). */
bool keyfilter_map_same(const struct keyfilter_map *m, const char *path);
/* True when the mapped file's token equals token (an all-zero token never matches). */
bool keyfilter_map_token_is(const struct keyfilter_map *m,
                            const uint8_t token[KEYFILTER_TOKEN_LEN]);
/* Keys added to the mapped file so far (its header). */
uint64_t keyfilter_map_keys(const struct keyfilter_map *m);

enum keyfilter_sum {
    KEYFILTER_SUM_OK,   /* the blocks match the header's CRC */
    KEYFILTER_SUM_BUSY, /* a writer is adding keys in place (or left the file so): not usable */
    KEYFILTER_SUM_BAD,  /* the blocks do not match their CRC: damaged */
};
/* Reads every block (about 4.5 ms for a 30 MB filter in the page cache). drop: for a caller that
 * will not probe the mapping (a state check, verify), each MiB read is dropped from it, so that
 * the check does not add the filter to the process's resident memory. */
enum keyfilter_sum keyfilter_map_verify(const struct keyfilter_map *m, bool drop);

/* A filter file whose blocks matched their CRC: its device, inode, length, the header (token,
 * CRC, flux, updates begun) it had while they were read, and the caller's tag (the store version
 * they were read for). */
struct keyfilter_seen {
    bool valid;
    dev_t dev;
    ino_t ino;
    size_t len;
    uint64_t head[4];
    int64_t tag[2];
};
/* True when seen names the mapped file with the header it has now and the same tag. A writer
 * adds bits only with flux set and then changes the CRC, the token or the count of updates, so
 * a file whose header is unchanged holds the blocks that were read. The readers of one store
 * share one seen, tagged with the store's version: the process reads a file's blocks (and spot
 * checks it against the store) once for each version of the lists, not once for each reader
 * (each reader did, when it was made and at every update: 30 MB a reader at 15M keys, 100 MB at
 * 50M, and 8 B-tree probes). */
bool keyfilter_seen_matches(const struct keyfilter_map *m, const struct keyfilter_seen *seen,
                            const int64_t tag[2]);
/* keyfilter_map_verify(m, false); on OK, *out names the file, the header the blocks were read
 * against and tag (for the caller to record once its own checks of the file pass too). */
enum keyfilter_sum keyfilter_map_verify_as(const struct keyfilter_map *m, const int64_t tag[2],
                                           struct keyfilter_seen *out);

/* Offset in the file of key's block; *probes gets the bits its probes take (9 each). */
static inline uint64_t
keyfilter_block_offset(uint64_t n_blocks, const uint8_t *key, uint64_t *probes)
{
    uint32_t hi = ((uint32_t)key[0] << 24) | ((uint32_t)key[1] << 16) | ((uint32_t)key[2] << 8) |
                  (uint32_t)key[3];
    uint64_t h = 0;

    for (int i = 7; i >= 0; i--) {
        h = (h << 8) | key[8 + i];
    }
    *probes = h;
    return KEYFILTER_HEADER + (((uint64_t)hi * n_blocks) >> 32) * KEYFILTER_BLOCK;
}

/* False: key is in no row of a version whose token the file holds. */
static inline bool
keyfilter_maybe(const struct keyfilter_map *m, const uint8_t *key)
{
    uint64_t h;
    const uint8_t *blk = m->base + keyfilter_block_offset(m->n_blocks, key, &h);

    for (int p = 0; p < KEYFILTER_PROBES; p++) {
        unsigned bit = (unsigned)(h >> (9 * p)) & 511u;

        if ((blk[bit >> 3] & (1u << (bit & 7))) == 0) {
            return false;
        }
    }
    return true;
}

/* A filter file open for adding keys: a new one (keyfilter_create, installed by
 * keyfilter_install) or the existing one (keyfilter_open_rw). */
struct keyfilter_writer {
    int fd;
    uint8_t *base;
    size_t len;
    uint64_t n_blocks;
    uint64_t keys;
    uint64_t since_drop;
    bool is_new;
    bool busy; /* in place: marked in flux, not yet installed (keyfilter_close restores) */
    uint8_t token[KEYFILTER_TOKEN_LEN]; /* in place: the token the file had */
    struct plat_atomic_file af;
};

/* Blocks for a filter of capacity keys (at least 64). */
uint64_t keyfilter_blocks_for(uint64_t capacity);
/* True when the filter holds too many keys for its size (due for a rebuild). */
bool keyfilter_is_full(uint64_t n_blocks, uint64_t keys);

/* A new, empty filter for capacity keys, written under a temporary name beside path. */
POSGATE_WUR enum posgate_err keyfilter_create(struct keyfilter_writer *w, const char *path,
                                              uint64_t capacity, char *msg, size_t cap);
/* The existing filter at path, opened for adding keys; NOTFOUND when absent, CORRUPT when
 * malformed, STATE when its token is not token (it does not cover the current version). The
 * file is marked in flux until keyfilter_install or keyfilter_close. */
POSGATE_WUR enum posgate_err keyfilter_open_rw(struct keyfilter_writer *w, const char *path,
                                               const uint8_t token[KEYFILTER_TOKEN_LEN], char *msg,
                                               size_t cap);
void keyfilter_add(struct keyfilter_writer *w, const uint8_t *key);
/* Makes the filter durable for token, the store's token of the version it now covers: a new
 * filter with its bits, count and token, then renamed over path; a filter added to in place
 * with its bits and count first, then the token. Under the store's write lock, before the
 * store's commit. */
POSGATE_WUR enum posgate_err keyfilter_install(struct keyfilter_writer *w,
                                               const uint8_t token[KEYFILTER_TOKEN_LEN], char *msg,
                                               size_t cap);
/* Unmaps and closes; a new filter not installed is removed; one added to in place and not
 * installed gets its old token back with the checksum of its bits. */
void keyfilter_close(struct keyfilter_writer *w);

#endif
