/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The fetcher's bodies on their way (fetch.h, fetch_internal.h): the spool that holds a body
 * until it is complete (memory, or a part file of a target that a later fetch resumes), the
 * pruning of part files, and the conditional-GET cache of timestamp.json on disk.
 *
 * Conditional-GET cache file "<cache_dir>/<hex of the first 16 bytes of sha256(url)>.cache"
 * (written atomically; read back with every field checked; untrusted like everything fetched):
 *
 *   +------------------------------------------------------------------+
 *   | "posgate-http-cache 1\n"                                         |
 *   | "url " URL "\n"                  must equal the mirror's URL      |
 *   | "etag " ETAG "\n"                value may be empty               |
 *   | "last-modified " DATE "\n"       value may be empty               |
 *   | "length " DECIMAL "\n"           <= FETCH_COND_BODY_MAX           |
 *   | body: exactly length bytes                                       |
 *   +------------------------------------------------------------------+
 *
 * Partial target download "<spool_dir>/<hex16(sha256(name))>.part" (the bytes received so far,
 * locked with flock while a transfer writes it) and its ".meta" beside it:
 *
 *   +------------------------------------------------------------------+
 *   | "posgate-partial 1\n"                                            |
 *   | "name " NAME "\n"                the target's remote name         |
 *   | "etag " ETAG "\n"                validator for If-Range (or empty) |
 *   | "last-modified " DATE "\n"       used when there is no ETag       |
 *   +------------------------------------------------------------------+
 */
#define _DEFAULT_SOURCE
#include "fetch_internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "crypto.h"
#include "plat_clock.h"
#include "plat_file.h"
#include "plat_log.h"
#include "plat_mem.h"

/* Hex of the first 16 bytes of sha256(s): a file name for a URL or a target name. */
static void
hash_name(const char *s, char out[33])
{
    uint8_t h[CRYPTO_SHA256_LEN];

    crypto_sha256(s, strlen(s), h);
    crypto_hex(h, 16, out);
    out[32] = 0;
}

static void
unlink_quiet(const char *path)
{
    if (path[0] != 0 && plat_unlink(path) != POSGATE_OK) {
        plat_log(PLAT_LOG_WARN, "fetch: cannot remove %s", path);
    }
}

/* ---- the conditional-GET cache on disk ---- */

static int
take_line(const uint8_t **p, const uint8_t *end, const char *key, char *val, size_t cap)
{
    size_t kl = strlen(key);
    const uint8_t *nl = memchr(*p, '\n', (size_t)(end - *p));
    size_t vl;

    if (nl == NULL || (size_t)(nl - *p) < kl + 1 || memcmp(*p, key, kl) != 0 || (*p)[kl] != ' ') {
        return 0;
    }
    vl = (size_t)(nl - *p) - kl - 1;
    if (vl >= cap) {
        return 0;
    }
    memcpy(val, *p + kl + 1, vl);
    val[vl] = 0;
    for (size_t i = 0; i < vl; i++) {
        if ((unsigned char)val[i] < 0x20) {
            return 0;
        }
    }
    *p = nl + 1;
    return 1;
}

static void
cache_path(const struct fetch *f, const char *url, char *out, size_t cap)
{
    char h[33];

    hash_name(url, h);
    fx_msgf(out, cap, "%s/%s.cache", f->cache_dir, h);
}

void
fx_cache_load(struct fetch *f, struct mirror *m)
{
    char url[FETCH_URL_MAX + 32], path[FETCH_PATH_MAX + 64], got_url[FETCH_URL_MAX + 32];
    char lenbuf[32];
    struct buf raw = BUF_INIT(FETCH_COND_BODY_MAX + 3 * FETCH_URL_MAX);
    const uint8_t *p, *end;
    uint64_t len;

    if (f->cache_dir[0] == 0) {
        return;
    }
    snprintf(url, sizeof(url), "%smetadata/timestamp.json", m->base);
    cache_path(f, url, path, sizeof(path));
    if (plat_read_file(path, &raw) != POSGATE_OK) {
        goto out;
    }
    p = raw.data;
    end = raw.data + raw.len;
    if (raw.len < 21 || memcmp(p, "posgate-http-cache 1\n", 21) != 0) {
        goto bad;
    }
    p += 21;
    if (!take_line(&p, end, "url", got_url, sizeof(got_url)) || strcmp(got_url, url) != 0 ||
        !take_line(&p, end, "etag", m->ts.etag, sizeof(m->ts.etag)) ||
        !take_line(&p, end, "last-modified", m->ts.last_modified, sizeof(m->ts.last_modified)) ||
        !take_line(&p, end, "length", lenbuf, sizeof(lenbuf)) ||
        !fx_parse_uint(lenbuf, strlen(lenbuf), FETCH_COND_BODY_MAX, &len) ||
        (uint64_t)(end - p) != len) {
        goto bad;
    }
    buf_reset(&m->ts.body);
    if (buf_append(&m->ts.body, p, (size_t)len) != POSGATE_OK) {
        goto bad;
    }
    m->ts.valid = m->ts.etag[0] != 0 || m->ts.last_modified[0] != 0;
    goto out;
bad:
    plat_log(PLAT_LOG_WARN, "fetch: ignoring the unreadable cache file %s", path);
    m->ts.valid = 0;
    m->ts.etag[0] = 0;
    m->ts.last_modified[0] = 0;
out:
    buf_free(&raw);
}

void
fx_cache_save(struct fetch *f, const char *url, const struct cond_entry *e)
{
    char path[FETCH_PATH_MAX + 64];
    struct buf out = BUF_INIT(FETCH_COND_BODY_MAX + 3 * FETCH_URL_MAX);

    if (f->cache_dir[0] == 0) {
        return;
    }
    cache_path(f, url, path, sizeof(path));
    if (buf_printf(&out, "posgate-http-cache 1\nurl %s\netag %s\nlast-modified %s\nlength %zu\n",
                   url, e->etag, e->last_modified, e->body.len) != POSGATE_OK ||
        buf_append(&out, e->body.data, e->body.len) != POSGATE_OK ||
        plat_write_atomic(path, out.data, out.len, 0600) != POSGATE_OK) {
        plat_log(PLAT_LOG_WARN, "fetch: cannot write the cache file %s", path);
    }
    buf_free(&out);
}

/* ---- spools ---- */

void
fx_spool_close(struct spool *sp, int remove_files)
{
    if (sp->fd >= 0) {
        close(sp->fd); /* drops the flock */
        sp->fd = -1;
    }
    if (remove_files && sp->part[0] != 0) {
        unlink_quiet(sp->part);
        unlink_quiet(sp->meta);
    }
    buf_free(&sp->mem);
}

void
fetch_prune_spool(struct fetch *f, unsigned *removed)
{
    DIR *d;
    struct dirent *de;
    unsigned n = 0;

    if (removed != NULL) {
        *removed = 0;
    }
    if (f == NULL || f->spool_dir[0] == 0 || (d = opendir(f->spool_dir)) == NULL) {
        return;
    }
    while ((de = readdir(d)) != NULL) {
        size_t len = strlen(de->d_name);
        char part[FETCH_PATH_MAX], meta[FETCH_PATH_MAX];
        int fd;

        if (len != 32 + 5 || strcmp(de->d_name + 32, ".part") != 0) {
            continue; /* only our "<32 hex>.part" names */
        }
        fx_msgf(part, sizeof(part), "%s/%s", f->spool_dir, de->d_name);
        fx_msgf(meta, sizeof(meta), "%s/%.32s.meta", f->spool_dir, de->d_name);
        fd = open(part, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0) {
            continue;
        }
        if (flock(fd, LOCK_EX | LOCK_NB) == 0) { /* not in a transfer */
            unlink_quiet(meta);
            if (unlink(part) == 0) {
                n++;
            }
        }
        close(fd);
    }
    closedir(d);
    if (n > 0) {
        plat_log(PLAT_LOG_INFO, "fetch: removed %u partial download(s) of targets no longer needed",
                 n);
    }
    if (removed != NULL) {
        *removed = n;
    }
}

/* Removes part files older than FETCH_PART_MAX_AGE_S and all but the FETCH_PARTS_MAX newest,
 * except one a transfer holds (flock); and ".meta" files whose part is gone. */
void
fx_prune_stale(struct fetch *f)
{
    struct {
        char name[40];
        int64_t mtime;
    } keep[FETCH_PARTS_MAX + 1];
    size_t n_keep = 0;
    unsigned removed = 0;
    int64_t now = plat_wall_s();
    DIR *d;
    struct dirent *de;

    if (f->spool_dir[0] == 0 || (d = opendir(f->spool_dir)) == NULL) {
        return;
    }
    while ((de = readdir(d)) != NULL) {
        size_t len = strlen(de->d_name);
        char part[FETCH_PATH_MAX], meta[FETCH_PATH_MAX], victim[40];
        struct stat st;
        int fd;

        if (len == 32 + 5 && strcmp(de->d_name + 32, ".meta") == 0) {
            fx_msgf(part, sizeof(part), "%s/%.32s.part", f->spool_dir, de->d_name);
            fx_msgf(meta, sizeof(meta), "%s/%s", f->spool_dir, de->d_name);
            if (!plat_exists(part)) {
                unlink_quiet(meta);
            }
            continue;
        }
        if (len != 32 + 5 || strcmp(de->d_name + 32, ".part") != 0) {
            continue;
        }
        fx_msgf(part, sizeof(part), "%s/%s", f->spool_dir, de->d_name);
        if (lstat(part, &st) != 0 || !S_ISREG(st.st_mode)) {
            continue;
        }
        victim[0] = 0;
        if (now - (int64_t)st.st_mtime > FETCH_PART_MAX_AGE_S) {
            snprintf(victim, sizeof(victim), "%.39s", de->d_name);
        } else {
            /* keep the newest FETCH_PARTS_MAX: insert by mtime, the oldest falls out */
            size_t at = n_keep;

            while (at > 0 && keep[at - 1].mtime < (int64_t)st.st_mtime) {
                at--;
            }
            memmove(&keep[at + 1], &keep[at], (n_keep - at) * sizeof(keep[0]));
            snprintf(keep[at].name, sizeof(keep[at].name), "%.39s", de->d_name);
            keep[at].mtime = (int64_t)st.st_mtime;
            if (n_keep < FETCH_PARTS_MAX) {
                n_keep++;
            } else {
                snprintf(victim, sizeof(victim), "%s", keep[FETCH_PARTS_MAX].name);
            }
        }
        if (victim[0] == 0) {
            continue;
        }
        fx_msgf(part, sizeof(part), "%s/%s", f->spool_dir, victim);
        fx_msgf(meta, sizeof(meta), "%s/%.32s.meta", f->spool_dir, victim);
        fd = open(part, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0) {
            continue;
        }
        if (flock(fd, LOCK_EX | LOCK_NB) == 0 && unlink(part) == 0) {
            unlink_quiet(meta);
            removed++;
        }
        close(fd);
    }
    closedir(d);
    if (removed > 0) {
        plat_log(PLAT_LOG_INFO,
                 "fetch: removed %u abandoned partial download(s) (older than %d days, or past "
                 "the newest %d)",
                 removed, FETCH_PART_MAX_AGE_S / 86400, FETCH_PARTS_MAX);
    }
}

/* Opens the spool for one fetch: the part file of a target when there is a spool dir (its
 * bytes and validator loaded for a resume), else memory. */
enum posgate_err
fx_spool_open(struct fetch *f, int targets, const char *name, uint64_t max_len, struct spool *sp)
{
    char h[33], line[FETCH_HDR_MAX + 32];
    struct buf raw = BUF_INIT(4 * FETCH_HDR_MAX + CARRIER_NAME_MAX + 64);
    struct stat st;

    memset(sp, 0, sizeof(*sp));
    sp->fd = -1;
    buf_init(&sp->mem, (size_t)(max_len < FETCH_MEM_SPOOL_MAX ? max_len : FETCH_MEM_SPOOL_MAX));
    if (!targets || f->spool_dir[0] == 0) {
        return POSGATE_OK;
    }
    hash_name(name, h);
    fx_msgf(sp->part, sizeof(sp->part), "%s/%s.part", f->spool_dir, h);
    fx_msgf(sp->meta, sizeof(sp->meta), "%s/%s.meta", f->spool_dir, h);
    sp->fd = open(sp->part, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (sp->fd < 0) {
        plat_log(PLAT_LOG_WARN, "fetch: cannot open %s (%s); downloading into memory", sp->part,
                 strerror(errno));
        sp->part[0] = 0;
        return POSGATE_OK;
    }
    if (flock(sp->fd, LOCK_EX | LOCK_NB) != 0) {
        /* another process resumes this file right now: do not touch it */
        close(sp->fd);
        sp->fd = -1;
        sp->part[0] = 0;
        return POSGATE_OK;
    }
    if (fstat(sp->fd, &st) != 0) {
        return POSGATE_ERR_IO;
    }
    sp->len = (uint64_t)st.st_size;
    if (sp->len > 0) {
        const uint8_t *p, *end;
        int ok = plat_read_file(sp->meta, &raw) == POSGATE_OK;

        p = raw.data;
        end = raw.data + raw.len;
        ok = ok && raw.len >= 18 && memcmp(p, "posgate-partial 1\n", 18) == 0;
        if (ok) {
            p += 18;
            ok = take_line(&p, end, "name", line, sizeof(line)) && strcmp(line, name) == 0 &&
                 take_line(&p, end, "etag", sp->etag, sizeof(sp->etag)) &&
                 take_line(&p, end, "last-modified", sp->last_modified, sizeof(sp->last_modified));
        }
        /* resume only with a validator, and only when something is left to fetch */
        if (!ok || (sp->etag[0] == 0 && sp->last_modified[0] == 0) || sp->len >= max_len) {
            if (ftruncate(sp->fd, 0) != 0) {
                buf_free(&raw);
                return POSGATE_ERR_IO;
            }
            sp->len = 0;
            sp->etag[0] = 0;
            sp->last_modified[0] = 0;
        }
    }
    buf_free(&raw);
    if (lseek(sp->fd, (off_t)sp->len, SEEK_SET) < 0) {
        return POSGATE_ERR_IO;
    }
    return POSGATE_OK;
}

enum posgate_err
fx_spool_truncate(struct spool *sp)
{
    sp->len = 0;
    sp->etag[0] = 0;
    sp->last_modified[0] = 0;
    buf_reset(&sp->mem);
    if (sp->fd >= 0) {
        unlink_quiet(sp->meta);
        if (ftruncate(sp->fd, 0) != 0 || lseek(sp->fd, 0, SEEK_SET) < 0) {
            return POSGATE_ERR_IO;
        }
    }
    return POSGATE_OK;
}

enum posgate_err
fx_spool_write(struct spool *sp, const void *data, size_t n)
{
    const uint8_t *p = data;

    if (sp->fd < 0) {
        enum posgate_err err = buf_append(&sp->mem, data, n);

        if (err == POSGATE_OK) {
            sp->len += n;
        }
        return err;
    }
    while (n > 0) {
        ssize_t w = write(sp->fd, p, n);

        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w <= 0) {
            return POSGATE_ERR_IO;
        }
        p += w;
        n -= (size_t)w;
        sp->len += (uint64_t)w;
    }
    return POSGATE_OK;
}

/* Records the validator of the bytes now being written (the start of a 200). */
void
fx_spool_set_validator(struct spool *sp, const char *name, const char *etag, const char *lm)
{
    struct buf out = BUF_INIT(4 * FETCH_HDR_MAX + CARRIER_NAME_MAX + 64);

    snprintf(sp->etag, sizeof(sp->etag), "%s", etag);
    snprintf(sp->last_modified, sizeof(sp->last_modified), "%s", lm);
    if (sp->fd < 0) {
        return;
    }
    if (buf_printf(&out, "posgate-partial 1\nname %s\netag %s\nlast-modified %s\n", name, etag,
                   lm) != POSGATE_OK ||
        plat_write_atomic(sp->meta, out.data, out.len, 0600) != POSGATE_OK) {
        plat_log(PLAT_LOG_WARN, "fetch: cannot write %s; this download cannot be resumed",
                 sp->meta);
    }
    buf_free(&out);
}

/* Feeds the complete spool into the caller's sink. */
enum posgate_err
fx_spool_replay(struct spool *sp, const struct carrier_sink *sink)
{
    uint8_t *chunk;
    enum posgate_err err = POSGATE_OK;
    uint64_t left = sp->len;

    if (sp->fd < 0) {
        return sp->len > 0 ? sink->write(sink->ctx, sp->mem.data, sp->mem.len) : POSGATE_OK;
    }
    if (lseek(sp->fd, 0, SEEK_SET) < 0) {
        return POSGATE_ERR_IO;
    }
    chunk = plat_malloc(FETCH_CHUNK);
    if (chunk == NULL) {
        return POSGATE_ERR_NOMEM;
    }
    while (left > 0 && err == POSGATE_OK) {
        size_t want = left < FETCH_CHUNK ? (size_t)left : FETCH_CHUNK;
        ssize_t r = read(sp->fd, chunk, want);

        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r <= 0) {
            err = POSGATE_ERR_IO;
            break;
        }
        err = sink->write(sink->ctx, chunk, (size_t)r);
        left -= (uint64_t)r;
    }
    plat_free(chunk);
    return err;
}
