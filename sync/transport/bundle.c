/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The bundle container (format in bundle.h): a writer that streams files into one indexed
 * archive, and a reader that validates the header and the whole index before serving any body,
 * over a file descriptor (pread) or over bytes in memory.
 */
#define _POSIX_C_SOURCE 200809L
#include "bundle.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "plat_file.h"
#include "plat_mem.h"

struct bundle {
    int fd;        /* -1 for a bundle in memory */
    uint8_t *mem;  /* the bytes of a bundle in memory */
    uint64_t size; /* file size */
    size_t count;
    struct bundle_entry *entries;
    char *paths; /* NUL-terminated paths, back to back */
};

static uint64_t
get_be(const uint8_t *p, unsigned n)
{
    uint64_t v = 0;
    unsigned i;

    for (i = 0; i < n; i++) {
        v = (v << 8) | p[i];
    }
    return v;
}

static void
put_be(uint8_t *p, uint64_t v, unsigned n)
{
    unsigned i;

    for (i = 0; i < n; i++) {
        p[n - 1 - i] = (uint8_t)(v >> (8 * i));
    }
}

enum posgate_err
bundle_check_path(const char *path, size_t len)
{
    size_t i, seg = 0;

    if (path == NULL || len == 0 || len > BUNDLE_PATH_MAX) {
        return POSGATE_ERR_INVALID;
    }
    for (i = 0; i <= len; i++) {
        if (i == len || path[i] == '/') {
            size_t n = i - seg;

            if (n == 0 || (n == 1 && path[seg] == '.') ||
                (n == 2 && path[seg] == '.' && path[seg + 1] == '.')) {
                return POSGATE_ERR_INVALID;
            }
            seg = i + 1;
            continue;
        }
        if ((unsigned char)path[i] < 0x20 || path[i] == 0x7f || path[i] == '\\') {
            return POSGATE_ERR_INVALID;
        }
    }
    return POSGATE_OK;
}

static enum posgate_err
src_read(const struct bundle *b, uint64_t off, void *out, size_t len)
{
    size_t done = 0;

    if (off > b->size || len > b->size - off) {
        return POSGATE_ERR_INVALID;
    }
    if (b->fd < 0) {
        memcpy(out, b->mem + off, len);
        return POSGATE_OK;
    }
    while (done < len) {
        ssize_t n = pread(b->fd, (uint8_t *)out + done, len - done, (off_t)(off + done));

        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return POSGATE_ERR_IO;
        }
        done += (size_t)n;
    }
    return POSGATE_OK;
}

/* Reads and validates header and index; b->fd/mem and b->size are set. */
static enum posgate_err
load_index(struct bundle *b, char *errmsg, size_t errcap)
{
    enum posgate_err err;
    uint8_t hdr[BUNDLE_HEADER_LEN];
    uint8_t *idx = NULL;
    uint64_t count, index_len, pos, expect_off;
    size_t i, paths_len = 0, pp = 0;

    if (b->size < BUNDLE_HEADER_LEN) {
        plat_msgf(errmsg, errcap, "bundle: file of %llu bytes is shorter than the %u-byte header",
                  (unsigned long long)b->size, BUNDLE_HEADER_LEN);
        err = POSGATE_ERR_PARSE;
        goto out;
    }
    err = src_read(b, 0, hdr, sizeof hdr);
    if (err != POSGATE_OK) {
        plat_msgf(errmsg, errcap, "bundle: cannot read the header");
        goto out;
    }
    if (memcmp(hdr, BUNDLE_MAGIC, BUNDLE_MAGIC_LEN) != 0) {
        plat_msgf(errmsg, errcap, "bundle: magic is not \"%s\": not a posgate bundle",
                  BUNDLE_MAGIC);
        err = POSGATE_ERR_PARSE;
        goto out;
    }
    if (get_be(hdr + 8, 4) != BUNDLE_VERSION) {
        plat_msgf(errmsg, errcap, "bundle: version %llu, expected %u",
                  (unsigned long long)get_be(hdr + 8, 4), BUNDLE_VERSION);
        err = POSGATE_ERR_UNSUPPORTED;
        goto out;
    }
    count = get_be(hdr + 12, 4);
    index_len = get_be(hdr + 16, 8);
    if (get_be(hdr + 24, 8) != 0) {
        plat_msgf(errmsg, errcap, "bundle: reserved header field is not 0");
        err = POSGATE_ERR_PARSE;
        goto out;
    }
    if (count > BUNDLE_MAX_ENTRIES || index_len > BUNDLE_INDEX_MAX) {
        plat_msgf(errmsg, errcap,
                  "bundle: %llu entries / %llu index bytes exceed the limits (%u / %u)",
                  (unsigned long long)count, (unsigned long long)index_len, BUNDLE_MAX_ENTRIES,
                  BUNDLE_INDEX_MAX);
        err = POSGATE_ERR_TOOBIG;
        goto out;
    }
    if (index_len > b->size - BUNDLE_HEADER_LEN) {
        plat_msgf(errmsg, errcap, "bundle: index of %llu bytes runs past the end of the file",
                  (unsigned long long)index_len);
        err = POSGATE_ERR_PARSE;
        goto out;
    }
    if (count * 18u > index_len) {
        plat_msgf(errmsg, errcap, "bundle: index of %llu bytes cannot hold %llu entries",
                  (unsigned long long)index_len, (unsigned long long)count);
        err = POSGATE_ERR_PARSE;
        goto out;
    }
    idx = plat_malloc(index_len > 0 ? (size_t)index_len : 1);
    b->entries = plat_calloc(count > 0 ? (size_t)count : 1, sizeof *b->entries);
    /* paths need at most index_len bytes plus one NUL per entry */
    b->paths = plat_malloc((size_t)(index_len + count + 1));
    if (idx == NULL || b->entries == NULL || b->paths == NULL) {
        err = POSGATE_ERR_NOMEM;
        goto out;
    }
    err = src_read(b, BUNDLE_HEADER_LEN, idx, (size_t)index_len);
    if (err != POSGATE_OK) {
        plat_msgf(errmsg, errcap, "bundle: cannot read the index");
        goto out;
    }
    pos = 0;
    expect_off = BUNDLE_HEADER_LEN + index_len;
    for (i = 0; i < count; i++) {
        struct bundle_entry *e = &b->entries[i];
        uint64_t plen;

        if (index_len - pos < 2) {
            plat_msgf(errmsg, errcap, "bundle index entry %zu: truncated", i);
            err = POSGATE_ERR_PARSE;
            goto out;
        }
        plen = get_be(idx + pos, 2);
        pos += 2;
        if (plen > index_len - pos || index_len - pos - plen < 16) {
            plat_msgf(errmsg, errcap, "bundle index entry %zu: truncated", i);
            err = POSGATE_ERR_PARSE;
            goto out;
        }
        if (memchr(idx + pos, 0, (size_t)plen) != NULL ||
            bundle_check_path((const char *)idx + pos, (size_t)plen) != POSGATE_OK) {
            plat_msgf(errmsg, errcap,
                      "bundle index entry %zu: path is not a relative path without \".\", \"..\","
                      " empty segments or control bytes",
                      i);
            err = POSGATE_ERR_INVALID;
            goto out;
        }
        memcpy(b->paths + pp, idx + pos, (size_t)plen);
        b->paths[pp + plen] = '\0';
        e->path = b->paths + pp;
        pp += (size_t)plen + 1;
        paths_len = pp;
        pos += plen;
        e->offset = get_be(idx + pos, 8);
        e->length = get_be(idx + pos + 8, 8);
        pos += 16;
        if (i > 0 && strcmp(b->entries[i - 1].path, e->path) >= 0) {
            plat_msgf(errmsg, errcap,
                      "bundle index entry %zu: path \"%s\" is a duplicate or out of order after "
                      "\"%s\"",
                      i, e->path, b->entries[i - 1].path);
            err = POSGATE_ERR_INVALID;
            goto out;
        }
        if (e->offset != expect_off) {
            plat_msgf(errmsg, errcap,
                      "bundle index entry %zu: offset %llu, expected %llu (bodies are packed in "
                      "index order)",
                      i, (unsigned long long)e->offset, (unsigned long long)expect_off);
            err = POSGATE_ERR_INVALID;
            goto out;
        }
        if (e->length > b->size - e->offset) {
            plat_msgf(errmsg, errcap,
                      "bundle index entry %zu: body of %llu bytes at offset %llu runs past the end "
                      "of the %llu-byte file",
                      i, (unsigned long long)e->length, (unsigned long long)e->offset,
                      (unsigned long long)b->size);
            err = POSGATE_ERR_INVALID;
            goto out;
        }
        expect_off = e->offset + e->length;
    }
    (void)paths_len;
    if (pos != index_len) {
        plat_msgf(errmsg, errcap, "bundle: %llu bytes left over after the last index entry",
                  (unsigned long long)(index_len - pos));
        err = POSGATE_ERR_PARSE;
        goto out;
    }
    if (expect_off != b->size) {
        plat_msgf(errmsg, errcap, "bundle: file is %llu bytes, the index accounts for %llu",
                  (unsigned long long)b->size, (unsigned long long)expect_off);
        err = POSGATE_ERR_INVALID;
        goto out;
    }
    b->count = (size_t)count;
    err = POSGATE_OK;
out:
    plat_free(idx);
    return err;
}

int
bundle_is_bundle(const char *path)
{
    uint8_t magic[BUNDLE_MAGIC_LEN];
    FILE *f;
    int yes = 0;

    if (path == NULL) {
        return 0;
    }
    f = fopen(path, "rb");
    if (f == NULL) {
        return 0;
    }
    if (fread(magic, 1, sizeof magic, f) == sizeof magic &&
        memcmp(magic, BUNDLE_MAGIC, BUNDLE_MAGIC_LEN) == 0) {
        yes = 1;
    }
    fclose(f);
    return yes;
}

static struct bundle *
bundle_alloc(void)
{
    struct bundle *b = plat_calloc(1, sizeof *b);

    if (b != NULL) {
        b->fd = -1;
    }
    return b;
}

enum posgate_err
bundle_open(const char *path, struct bundle **out, char *errmsg, size_t errcap)
{
    enum posgate_err err;
    struct bundle *b = NULL;
    struct stat st;

    plat_msgf(errmsg, errcap, "%s", "");
    if (path == NULL || out == NULL) {
        return POSGATE_ERR_INVALID;
    }
    b = bundle_alloc();
    if (b == NULL) {
        return POSGATE_ERR_NOMEM;
    }
    /* O_NONBLOCK: opening a FIFO (or a device) must not wait for a writer; such files are
     * refused just below, and reads of a regular file ignore the flag */
    b->fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (b->fd < 0) {
        err = errno == ENOENT ? POSGATE_ERR_NOTFOUND : POSGATE_ERR_IO;
        plat_msgf(errmsg, errcap, "bundle %s: %s", path, strerror(errno));
        goto out;
    }
    if (fstat(b->fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        plat_msgf(errmsg, errcap, "bundle %s: expected a regular file, found %s", path,
                  S_ISFIFO(st.st_mode)  ? "a FIFO"
                  : S_ISCHR(st.st_mode) ? "a character device"
                  : S_ISBLK(st.st_mode) ? "a block device"
                  : S_ISSOCK(st.st_mode) ? "a socket"
                                         : "another kind of file");
        err = POSGATE_ERR_IO;
        goto out;
    }
    b->size = (uint64_t)st.st_size;
    err = load_index(b, errmsg, errcap);
    if (err != POSGATE_OK) {
        goto out;
    }
    *out = b;
    b = NULL;
out:
    bundle_free(b);
    return err;
}

enum posgate_err
bundle_open_mem(const void *data, size_t len, struct bundle **out, char *errmsg, size_t errcap)
{
    enum posgate_err err;
    struct bundle *b = NULL;

    plat_msgf(errmsg, errcap, "%s", "");
    if ((data == NULL && len > 0) || out == NULL) {
        return POSGATE_ERR_INVALID;
    }
    b = bundle_alloc();
    if (b == NULL) {
        return POSGATE_ERR_NOMEM;
    }
    b->mem = plat_malloc(len > 0 ? len : 1);
    if (b->mem == NULL) {
        err = POSGATE_ERR_NOMEM;
        goto out;
    }
    if (len > 0) {
        memcpy(b->mem, data, len);
    }
    b->size = len;
    err = load_index(b, errmsg, errcap);
    if (err != POSGATE_OK) {
        goto out;
    }
    *out = b;
    b = NULL;
out:
    bundle_free(b);
    return err;
}

void
bundle_free(struct bundle *b)
{
    if (b == NULL) {
        return;
    }
    if (b->fd >= 0) {
        close(b->fd);
    }
    plat_free(b->mem);
    plat_free(b->entries);
    plat_free(b->paths);
    plat_free(b);
}

size_t
bundle_count(const struct bundle *b)
{
    return b == NULL ? 0 : b->count;
}

const struct bundle_entry *
bundle_entry_at(const struct bundle *b, size_t i)
{
    if (b == NULL || i >= b->count) {
        return NULL;
    }
    return &b->entries[i];
}

const struct bundle_entry *
bundle_find(const struct bundle *b, const char *path)
{
    size_t lo = 0, hi;

    if (b == NULL || path == NULL) {
        return NULL;
    }
    hi = b->count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(b->entries[mid].path, path);

        if (c == 0) {
            return &b->entries[mid];
        }
        if (c < 0) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return NULL;
}

enum posgate_err
bundle_read(const struct bundle *b, const struct bundle_entry *e, uint64_t off, void *out,
            size_t len)
{
    if (b == NULL || e == NULL || (out == NULL && len > 0)) {
        return POSGATE_ERR_INVALID;
    }
    if (off > e->length || len > e->length - off) {
        return POSGATE_ERR_INVALID;
    }
    return src_read(b, e->offset + off, out, len);
}

/* ---- writer ---- */

struct witem {
    const char *path;
    const char *src;
    uint64_t length;
};

static int
witem_cmp(const void *a, const void *b)
{
    return strcmp(((const struct witem *)a)->path, ((const struct witem *)b)->path);
}

enum posgate_err
bundle_write(const char *out_path, const struct bundle_item *items, size_t n, char *errmsg,
             size_t errcap)
{
    enum posgate_err err;
    struct witem *w = NULL;
    uint8_t *idx = NULL, *chunk = NULL;
    uint64_t index_len = 0, off;
    size_t i, pos;
    struct plat_atomic_file af;
    uint8_t hdr[BUNDLE_HEADER_LEN];
    FILE *f = NULL;

    af.fd = -1;
    af.tmp_path[0] = '\0';
    plat_msgf(errmsg, errcap, "%s", "");
    if (out_path == NULL || (items == NULL && n > 0)) {
        return POSGATE_ERR_INVALID;
    }
    if (n > BUNDLE_MAX_ENTRIES) {
        plat_msgf(errmsg, errcap, "bundle: %zu files, at most %u allowed", n, BUNDLE_MAX_ENTRIES);
        return POSGATE_ERR_TOOBIG;
    }
    w = plat_calloc(n > 0 ? n : 1, sizeof *w);
    chunk = plat_malloc(65536);
    if (w == NULL || chunk == NULL) {
        err = POSGATE_ERR_NOMEM;
        goto out;
    }
    for (i = 0; i < n; i++) {
        size_t plen = items[i].path != NULL ? strlen(items[i].path) : 0;

        if (bundle_check_path(items[i].path, plen) != POSGATE_OK || items[i].src_path == NULL) {
            plat_msgf(errmsg, errcap, "bundle: invalid member path \"%s\"",
                      items[i].path != NULL ? items[i].path : "(null)");
            err = POSGATE_ERR_INVALID;
            goto out;
        }
        w[i].path = items[i].path;
        w[i].src = items[i].src_path;
        err = plat_file_size(w[i].src, &w[i].length);
        if (err != POSGATE_OK) {
            plat_msgf(errmsg, errcap, "bundle: cannot read %s (for %s): %s", w[i].src, w[i].path,
                      posgate_strerror(err));
            goto out;
        }
        index_len += 2 + plen + 16;
    }
    if (n > 0) {
        qsort(w, n, sizeof *w, witem_cmp);
    }
    for (i = 1; i < n; i++) {
        if (strcmp(w[i - 1].path, w[i].path) == 0) {
            plat_msgf(errmsg, errcap, "bundle: path \"%s\" given twice", w[i].path);
            err = POSGATE_ERR_INVALID;
            goto out;
        }
    }
    if (index_len > BUNDLE_INDEX_MAX) {
        plat_msgf(errmsg, errcap, "bundle: index of %llu bytes exceeds %u",
                  (unsigned long long)index_len, BUNDLE_INDEX_MAX);
        err = POSGATE_ERR_TOOBIG;
        goto out;
    }
    idx = plat_malloc(index_len > 0 ? (size_t)index_len : 1);
    if (idx == NULL) {
        err = POSGATE_ERR_NOMEM;
        goto out;
    }
    off = BUNDLE_HEADER_LEN + index_len;
    pos = 0;
    for (i = 0; i < n; i++) {
        size_t plen = strlen(w[i].path);

        put_be(idx + pos, plen, 2);
        memcpy(idx + pos + 2, w[i].path, plen);
        put_be(idx + pos + 2 + plen, off, 8);
        put_be(idx + pos + 2 + plen + 8, w[i].length, 8);
        pos += 2 + plen + 16;
        off += w[i].length;
    }
    memcpy(hdr, BUNDLE_MAGIC, BUNDLE_MAGIC_LEN);
    put_be(hdr + 8, BUNDLE_VERSION, 4);
    put_be(hdr + 12, n, 4);
    put_be(hdr + 16, index_len, 8);
    put_be(hdr + 24, 0, 8);

    err = plat_atomic_open(&af, out_path, 0644);
    if (err != POSGATE_OK) {
        plat_msgf(errmsg, errcap, "bundle: cannot create %s: %s", out_path, posgate_strerror(err));
        goto out;
    }
    err = plat_atomic_write(&af, hdr, sizeof hdr);
    if (err == POSGATE_OK) {
        err = plat_atomic_write(&af, idx, (size_t)index_len);
    }
    for (i = 0; i < n && err == POSGATE_OK; i++) {
        uint64_t left = w[i].length;

        f = fopen(w[i].src, "rb");
        if (f == NULL) {
            plat_msgf(errmsg, errcap, "bundle: cannot open %s: %s", w[i].src, strerror(errno));
            err = POSGATE_ERR_IO;
            break;
        }
        while (left > 0 && err == POSGATE_OK) {
            size_t want = left < 65536 ? (size_t)left : 65536;
            size_t got = fread(chunk, 1, want, f);

            if (got != want) {
                /* the file changed size since it was measured: the index would lie */
                plat_msgf(errmsg, errcap, "bundle: %s changed while being bundled", w[i].src);
                err = POSGATE_ERR_IO;
                break;
            }
            err = plat_atomic_write(&af, chunk, got);
            left -= got;
        }
        fclose(f);
        f = NULL;
    }
    if (err == POSGATE_OK) {
        err = plat_atomic_commit(&af);
    }
    if (err != POSGATE_OK && errmsg != NULL && errmsg[0] == '\0') {
        plat_msgf(errmsg, errcap, "bundle: writing %s: %s", out_path, posgate_strerror(err));
    }
out:
    if (err != POSGATE_OK) {
        plat_atomic_abort(&af);
    }
    plat_free(w);
    plat_free(idx);
    plat_free(chunk);
    return err;
}
