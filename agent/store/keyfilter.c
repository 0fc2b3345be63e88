/* SPDX-License-Identifier: Apache-2.0 */
/* The key filter file (keyfilter.h): mapping, creation, adding keys, install and token. */
#define _GNU_SOURCE
#include "keyfilter.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <zlib.h>

#include "plat_mem.h"

#define MAGIC     "PGKFLT02"
#define MAGIC_V1  "PGKFLT01" /* the format before the checksum: refused, then rebuilt */
#define OFF_BLOCK 8
#define OFF_PROBE 12
#define OFF_NBLK  16
#define OFF_KEYS  24
#define OFF_TOKEN 32
#define OFF_SUM   48 /* CRC-32 of the blocks; token, sum and flux are written in one pwrite */
#define OFF_FLUX  52 /* 1 while a writer adds keys in place */
#define OFF_GEN   56 /* counts the in-place updates begun */
/* Largest filter: 2^26 blocks (4 GiB), far beyond the entries a store holds. */
#define BLOCKS_MAX (1ull << 26)
/* A writer drops its mapped pages every so many keys, so that its resident memory stays small
 * while it fills a large filter (the pages stay in the page cache). */
#define DROP_EVERY 65536

static uint32_t
get32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

static uint64_t
get64(const uint8_t *p)
{
    return (uint64_t)get32(p) | ((uint64_t)get32(p + 4) << 32);
}

static void
put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) {
        p[i] = (uint8_t)(v >> (8 * i));
    }
}

static void
put64(uint8_t *p, uint64_t v)
{
    put32(p, (uint32_t)v);
    put32(p + 4, (uint32_t)(v >> 32));
}

uint64_t
keyfilter_blocks_for(uint64_t capacity)
{
    uint64_t n =
        (capacity * KEYFILTER_BITS_PER_KEY + KEYFILTER_BLOCK * 8 - 1) / (KEYFILTER_BLOCK * 8);

    return n < 64 ? 64 : n > BLOCKS_MAX ? BLOCKS_MAX : n;
}

bool
keyfilter_is_full(uint64_t n_blocks, uint64_t keys)
{
    return keys > n_blocks * KEYFILTER_BLOCK * 8 / KEYFILTER_FULL_BITS;
}

/* Checks a header against the file size; returns n_blocks or 0 (msg says why). */
static uint64_t
check_header(const uint8_t *h, uint64_t size, const char *path, char *msg, size_t cap)
{
    uint64_t n;

    if (memcmp(h, MAGIC_V1, 8) == 0) {
        plat_msgf(msg, cap,
                  "key filter %s: made by an older posgate (format %s, expected %s); the next "
                  "update or posgate compact writes a new one",
                  path, MAGIC_V1, MAGIC);
        return 0;
    }
    if (memcmp(h, MAGIC, 8) != 0) {
        plat_msgf(msg, cap, "key filter %s: not a key filter file (expected magic %s)", path,
                  MAGIC);
        return 0;
    }
    n = get64(h + OFF_NBLK);
    if (get32(h + OFF_BLOCK) != KEYFILTER_BLOCK || get32(h + OFF_PROBE) != KEYFILTER_PROBES ||
        n == 0 || n > BLOCKS_MAX || size != KEYFILTER_HEADER + n * KEYFILTER_BLOCK) {
        plat_msgf(msg, cap,
                  "key filter %s: header says %" PRIu32 "-byte blocks, %" PRIu32
                  " probes and %llu blocks in %llu bytes (expected %d-byte blocks, %d probes and "
                  "a matching size)",
                  path, get32(h + OFF_BLOCK), get32(h + OFF_PROBE), (unsigned long long)n,
                  (unsigned long long)size, KEYFILTER_BLOCK, KEYFILTER_PROBES);
        return 0;
    }
    return n;
}

enum posgate_err
keyfilter_map_open(struct keyfilter_map *m, const char *path, char *msg, size_t cap)
{
    struct stat st;
    uint8_t h[64];
    void *p;
    int fd;
    uint64_t n;

    memset(m, 0, sizeof(*m));
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;

        plat_msgf(msg, cap, "key filter %s: %s", path, strerror(e));
        return e == ENOENT ? POSGATE_ERR_NOTFOUND : POSGATE_ERR_IO;
    }
    if (fstat(fd, &st) != 0 || pread(fd, h, sizeof(h), 0) != (ssize_t)sizeof(h)) {
        plat_msgf(msg, cap, "key filter %s: cannot read its header (expected %d bytes)", path,
                  KEYFILTER_HEADER);
        close(fd);
        return POSGATE_ERR_CORRUPT;
    }
    n = check_header(h, (uint64_t)st.st_size, path, msg, cap);
    if (n == 0) {
        close(fd);
        return memcmp(h, MAGIC_V1, 8) == 0 ? POSGATE_ERR_UNSUPPORTED : POSGATE_ERR_CORRUPT;
    }
    p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
    close(fd);
    if (p == MAP_FAILED) {
        plat_msgf(msg, cap, "key filter %s: mmap: %s", path, strerror(errno));
        return POSGATE_ERR_IO;
    }
    m->base = p;
    m->len = (size_t)st.st_size;
    m->n_blocks = n;
    m->dev = st.st_dev;
    m->ino = st.st_ino;
    return POSGATE_OK;
}

void
keyfilter_map_close(struct keyfilter_map *m)
{
    if (m->base != NULL) {
        munmap((void *)m->base, m->len);
    }
    memset(m, 0, sizeof(*m));
}

bool
keyfilter_map_same(const struct keyfilter_map *m, const char *path)
{
    struct stat st;

    return m->base != NULL && stat(path, &st) == 0 && st.st_dev == m->dev && st.st_ino == m->ino;
}

bool
keyfilter_map_token_is(const struct keyfilter_map *m, const uint8_t token[KEYFILTER_TOKEN_LEN])
{
    uint8_t have[KEYFILTER_TOKEN_LEN];
    static const uint8_t zero[KEYFILTER_TOKEN_LEN];

    if (m->base == NULL) {
        return false;
    }
    /* another process writes the token after the bits it covers; read it before any bit */
    memcpy(have, m->base + OFF_TOKEN, sizeof(have));
    atomic_thread_fence(memory_order_acquire);
    return memcmp(have, zero, sizeof(have)) != 0 && memcmp(have, token, sizeof(have)) == 0;
}

uint64_t
keyfilter_map_keys(const struct keyfilter_map *m)
{
    return m->base != NULL ? get64(m->base + OFF_KEYS) : 0;
}

/* The CRC-32 of the blocks of a mapping, a page-aligned MiB at a time. drop: each MiB is dropped
 * from the mapping after it is read (shared file pages stay in the page cache, dirty or not; a
 * later access maps its page again), so that summing a large filter does not add it to the
 * resident memory of a process that will not probe it (an import, a state check, verify). */
static uint32_t
blocks_crc(const uint8_t *base, size_t len, bool drop)
{
    const size_t step = (size_t)1 << 20;
    uLong crc = crc32_z(0, NULL, 0);

    for (size_t off = 0; off < len; off += step) {
        size_t n = len - off < step ? len - off : step;
        size_t skip = off == 0 ? KEYFILTER_HEADER : 0;

        crc = crc32_z(crc, base + off + skip, n - skip);
        if (drop) {
            (void)madvise((void *)(uintptr_t)(base + off), n, MADV_DONTNEED);
        }
    }
    return (uint32_t)crc;
}

/* The header fields a checksum is read against (token, sum, flux, gen), read with acquire
 * loads so that the blocks are read after them. Read again after the blocks: a header that
 * changed meanwhile means a writer came by, and the file counts as busy. Whatever the order the
 * loads take, a file is used only when its blocks match the sum it names; a writer only adds
 * bits, so a file read that way is correct for its token. */
struct sum_head {
    uint64_t w[4];
};

static void
read_sum_head(const struct keyfilter_map *m, struct sum_head *h)
{
    const uint64_t *p = (const uint64_t *)(const void *)(m->base + OFF_TOKEN); /* 8-aligned */

    for (size_t i = 0; i < 4; i++) {
        h->w[i] = __atomic_load_n(&p[i], __ATOMIC_ACQUIRE);
    }
}

static uint32_t
head32(const struct sum_head *h, size_t off)
{
    uint8_t b[sizeof(h->w)];

    memcpy(b, h->w, sizeof(b));
    return get32(b + (off - OFF_TOKEN));
}

/* before: the header the blocks were read against. */
static enum keyfilter_sum
verify_head(const struct keyfilter_map *m, bool drop, struct sum_head *before)
{
    struct sum_head after;
    uint32_t crc;

    if (m->base == NULL) {
        return KEYFILTER_SUM_BAD;
    }
    read_sum_head(m, before);
    if (head32(before, OFF_FLUX) != 0) {
        return KEYFILTER_SUM_BUSY;
    }
    crc = blocks_crc(m->base, m->len, drop);
    read_sum_head(m, &after);
    if (memcmp(before->w, after.w, sizeof(after.w)) != 0) {
        return KEYFILTER_SUM_BUSY; /* a writer began (or finished) while the sum was read */
    }
    return crc == head32(before, OFF_SUM) ? KEYFILTER_SUM_OK : KEYFILTER_SUM_BAD;
}

enum keyfilter_sum
keyfilter_map_verify(const struct keyfilter_map *m, bool drop)
{
    struct sum_head h;

    return verify_head(m, drop, &h);
}

bool
keyfilter_seen_matches(const struct keyfilter_map *m, const struct keyfilter_seen *seen,
                       const int64_t tag[2])
{
    struct sum_head h;

    if (m->base == NULL || !seen->valid) {
        return false;
    }
    _Static_assert(sizeof(h.w) == sizeof(seen->head), "keyfilter_seen.head");
    read_sum_head(m, &h);
    return seen->dev == m->dev && seen->ino == m->ino && seen->len == m->len &&
           seen->tag[0] == tag[0] && seen->tag[1] == tag[1] && head32(&h, OFF_FLUX) == 0 &&
           memcmp(h.w, seen->head, sizeof(h.w)) == 0;
}

enum keyfilter_sum
keyfilter_map_verify_as(const struct keyfilter_map *m, const int64_t tag[2],
                        struct keyfilter_seen *out)
{
    struct sum_head h;
    enum keyfilter_sum sum = verify_head(m, false, &h);

    memset(out, 0, sizeof(*out));
    if (sum == KEYFILTER_SUM_OK) {
        out->valid = true;
        out->dev = m->dev;
        out->ino = m->ino;
        out->len = m->len;
        memcpy(out->head, h.w, sizeof(out->head));
        out->tag[0] = tag[0];
        out->tag[1] = tag[1];
    }
    return sum;
}

static enum posgate_err
map_rw(struct keyfilter_writer *w, const char *path, char *msg, size_t cap)
{
    void *p = mmap(NULL, w->len, PROT_READ | PROT_WRITE, MAP_SHARED, w->fd, 0);

    if (p == MAP_FAILED) {
        plat_msgf(msg, cap, "key filter %s: mmap: %s", path, strerror(errno));
        return POSGATE_ERR_IO;
    }
    w->base = p;
    return POSGATE_OK;
}

enum posgate_err
keyfilter_create(struct keyfilter_writer *w, const char *path, uint64_t capacity, char *msg,
                 size_t cap)
{
    enum posgate_err err;
    int e;
    struct plat_atomic_file *f = &w->af;

    memset(w, 0, sizeof(*w));
    w->is_new = true;
    w->n_blocks = keyfilter_blocks_for(capacity);
    w->len = (size_t)(KEYFILTER_HEADER + w->n_blocks * KEYFILTER_BLOCK);
    /* the temporary file is the atomic replace's (plat_file.h); w->fd is its descriptor */
    err = plat_atomic_open(f, path, 0644);
    if (err != POSGATE_OK) {
        plat_msgf(msg, cap, "key filter %s: cannot create its temporary file (%s)", path,
                  posgate_strerror(err));
        w->fd = -1;
        return err;
    }
    w->fd = f->fd;
    /* allocated now, so that a full disk fails here and not as SIGBUS on a mapped page */
    if ((e = posix_fallocate(w->fd, 0, (off_t)w->len)) != 0) {
        plat_msgf(msg, cap, "key filter %s: %s allocating %zu bytes", f->tmp_path, strerror(e),
                  w->len);
        err = POSGATE_ERR_IO;
        keyfilter_close(w);
        return err;
    }
    err = map_rw(w, f->tmp_path, msg, cap);
    if (err != POSGATE_OK) {
        keyfilter_close(w);
        return err;
    }
    memcpy(w->base, MAGIC, 8);
    put32(w->base + OFF_BLOCK, KEYFILTER_BLOCK);
    put32(w->base + OFF_PROBE, KEYFILTER_PROBES);
    put64(w->base + OFF_NBLK, w->n_blocks);
    return POSGATE_OK;
}

enum posgate_err
keyfilter_open_rw(struct keyfilter_writer *w, const char *path,
                  const uint8_t token[KEYFILTER_TOKEN_LEN], char *msg, size_t cap)
{
    struct stat st;
    uint8_t h[64];
    static const uint8_t zero[KEYFILTER_TOKEN_LEN];
    enum posgate_err err;

    memset(w, 0, sizeof(*w));
    if (strlen(path) >= sizeof(w->af.final_path)) {
        w->fd = -1;
        plat_msgf(msg, cap, "key filter %s: path too long", path);
        return POSGATE_ERR_TOOBIG;
    }
    memcpy(w->af.final_path, path, strlen(path) + 1);
    w->fd = open(path, O_RDWR | O_CLOEXEC);
    if (w->fd < 0) {
        int e = errno;

        plat_msgf(msg, cap, "key filter %s: %s", path, strerror(e));
        return e == ENOENT ? POSGATE_ERR_NOTFOUND : POSGATE_ERR_IO;
    }
    if (fstat(w->fd, &st) != 0 || pread(w->fd, h, sizeof(h), 0) != (ssize_t)sizeof(h)) {
        plat_msgf(msg, cap, "key filter %s: cannot read its header", path);
        keyfilter_close(w);
        return POSGATE_ERR_CORRUPT;
    }
    w->n_blocks = check_header(h, (uint64_t)st.st_size, path, msg, cap);
    if (w->n_blocks == 0) {
        keyfilter_close(w);
        return POSGATE_ERR_CORRUPT;
    }
    if (memcmp(h + OFF_TOKEN, zero, sizeof(zero)) == 0 ||
        memcmp(h + OFF_TOKEN, token, KEYFILTER_TOKEN_LEN) != 0) {
        plat_msgf(msg, cap, "key filter %s: made for another version of the store", path);
        keyfilter_close(w);
        return POSGATE_ERR_STATE;
    }
    w->keys = get64(h + OFF_KEYS);
    w->len = (size_t)st.st_size;
    err = map_rw(w, path, msg, cap);
    if (err != POSGATE_OK) {
        keyfilter_close(w);
        return err;
    }
    /* bits lost on disk must not be sealed by a new checksum: the file is added to only when
     * it matches its own (a file left in flux by a crash cannot be checked, so it is not) */
    if (get32(h + OFF_FLUX) != 0 || blocks_crc(w->base, w->len, true) != get32(h + OFF_SUM)) {
        plat_msgf(msg, cap, "key filter %s: %s", path,
                  get32(h + OFF_FLUX) != 0 ? "left in flux by an update that did not finish"
                                           : "its blocks do not match their checksum");
        keyfilter_close(w);
        return POSGATE_ERR_CORRUPT;
    }
    /* readers that check the file from now on find it busy until install or close; the token
     * is left as it is, so that a reader that matched it keeps its (only growing) filter */
    {
        uint8_t f[12];

        put32(f, 1);
        put64(f + 4, get64(h + OFF_GEN) + 1);
        if (pwrite(w->fd, f, sizeof(f), OFF_FLUX) != (ssize_t)sizeof(f)) {
            plat_msgf(msg, cap, "key filter %s: marking it busy: %s", path, strerror(errno));
            keyfilter_close(w);
            return POSGATE_ERR_IO;
        }
        memcpy(w->token, token, KEYFILTER_TOKEN_LEN);
        w->busy = true;
    }
    return POSGATE_OK;
}

/* Token, checksum of the blocks and flux 0, in one write (the header fields 32..55). */
static bool
write_sum(struct keyfilter_writer *w, const uint8_t token[KEYFILTER_TOKEN_LEN])
{
    uint8_t f[24];

    memcpy(f, token, KEYFILTER_TOKEN_LEN);
    put32(f + 16, blocks_crc(w->base, w->len, true));
    put32(f + 20, 0);
    return pwrite(w->fd, f, sizeof(f), OFF_TOKEN) == (ssize_t)sizeof(f) && fdatasync(w->fd) == 0;
}

void
keyfilter_add(struct keyfilter_writer *w, const uint8_t *key)
{
    uint64_t h;
    uint8_t *blk = w->base + keyfilter_block_offset(w->n_blocks, key, &h);

    for (int p = 0; p < KEYFILTER_PROBES; p++) {
        unsigned bit = (unsigned)(h >> (9 * p)) & 511u;

        blk[bit >> 3] = (uint8_t)(blk[bit >> 3] | (1u << (bit & 7)));
    }
    w->keys++;
    if (++w->since_drop >= DROP_EVERY) {
        w->since_drop = 0;
        /* shared file pages: the writes are in the page cache, only the mapping is dropped */
        (void)madvise(w->base, w->len, MADV_DONTNEED);
    }
}

enum posgate_err
keyfilter_install(struct keyfilter_writer *w, const uint8_t token[KEYFILTER_TOKEN_LEN], char *msg,
                  size_t cap)
{
    const char *name = w->is_new ? w->af.tmp_path : w->af.final_path;
    enum posgate_err err;

    put64(w->base + OFF_KEYS, w->keys);
    if (w->is_new) {
        /* nobody reads the file before the rename: bits, count, sum and token go durable
         * together */
        memcpy(w->base + OFF_TOKEN, token, KEYFILTER_TOKEN_LEN);
        put32(w->base + OFF_SUM, blocks_crc(w->base, w->len, true));
        if (msync(w->base, w->len, MS_SYNC) != 0) {
            plat_msgf(msg, cap, "key filter %s: sync: %s", name, strerror(errno));
            return POSGATE_ERR_IO;
        }
        err = plat_atomic_commit(&w->af); /* fsync, rename over, fsync of the directory */
        w->fd = -1;
        if (err != POSGATE_OK) {
            plat_msgf(msg, cap, "key filter %s: cannot replace %s (%s)", name, w->af.final_path,
                      posgate_strerror(err));
            return err;
        }
        w->is_new = false;
        return POSGATE_OK;
    }
    /* in place, while readers of the older token map it: the bits first, then the token with
     * the new checksum (and flux 0) */
    if (msync(w->base, w->len, MS_SYNC) != 0 || fsync(w->fd) != 0) {
        plat_msgf(msg, cap, "key filter %s: sync: %s", name, strerror(errno));
        return POSGATE_ERR_IO;
    }
    if (!write_sum(w, token)) {
        plat_msgf(msg, cap, "key filter %s: writing its token: %s", name, strerror(errno));
        return POSGATE_ERR_IO;
    }
    w->busy = false;
    return POSGATE_OK;
}

void
keyfilter_close(struct keyfilter_writer *w)
{
    if (w->busy && w->base != NULL) {
        /* an update that did not install: the bits it set are a superset for the token the
         * file had, so the file serves it again with a checksum of what it now holds. A file
         * left busy (this fails, or a crash) is rebuilt by the next update. */
        (void)(msync(w->base, w->len, MS_SYNC) == 0 && write_sum(w, w->token));
        w->busy = false;
    }
    if (w->base != NULL) {
        munmap(w->base, w->len);
        w->base = NULL;
    }
    if (w->is_new) {
        plat_atomic_abort(&w->af); /* closes and removes a file never installed */
    } else if (w->fd >= 0) {
        close(w->fd);
    }
    w->fd = -1;
}
