/* SPDX-License-Identifier: Apache-2.0 */
/* POSIX files: bounded reads, atomic replace, durable rename, mkdir -p. */
#define _POSIX_C_SOURCE 200809L
#include "plat_file.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "plat_log.h"
#include "plat_random.h"

static enum posgate_err
errno_err(int e)
{
    switch (e) {
    case ENOENT:
        return POSGATE_ERR_NOTFOUND;
    case ENOMEM:
        return POSGATE_ERR_NOMEM;
    default:
        return POSGATE_ERR_IO;
    }
}

enum posgate_err
plat_read_file(const char *path, struct buf *out)
{
    int fd;
    enum posgate_err err = POSGATE_OK;
    uint8_t chunk[65536];

    buf_reset(out);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return errno_err(errno);
    }
    for (;;) {
        ssize_t n = read(fd, chunk, sizeof(chunk));

        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            err = errno_err(errno);
            break;
        }
        if (n == 0) {
            break;
        }
        err = buf_append(out, chunk, (size_t)n);
        if (err != POSGATE_OK) {
            break;
        }
    }
    close(fd);
    if (err == POSGATE_OK && out->data == NULL) {
        err = buf_reserve(out, 0);
        if (err == POSGATE_OK) {
            out->data[0] = 0;
        }
    }
    return err;
}

static int
dir_of(const char *path, char *out, size_t cap)
{
    const char *slash = strrchr(path, '/');
    size_t n;

    if (slash == NULL) {
        return snprintf(out, cap, ".") < (int)cap;
    }
    n = (size_t)(slash - path);
    if (n == 0) {
        n = 1;
    }
    if (n >= cap) {
        return 0;
    }
    memcpy(out, path, n);
    out[n] = 0;
    return 1;
}

enum posgate_err
plat_fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int rc;

    if (fd < 0) {
        return errno_err(errno);
    }
    rc = fsync(fd);
    close(fd);
    /* Some file systems refuse fsync on a directory; the rename is still ordered. */
    if (rc != 0 && errno != EINVAL) {
        return POSGATE_ERR_IO;
    }
    return POSGATE_OK;
}

enum posgate_err
plat_rename_durable(const char *from, const char *to)
{
    char dir[PATH_MAX];

    if (rename(from, to) != 0) {
        return errno_err(errno);
    }
    if (!dir_of(to, dir, sizeof(dir))) {
        return POSGATE_ERR_TOOBIG;
    }
    return plat_fsync_dir(dir);
}

enum posgate_err
plat_atomic_open(struct plat_atomic_file *f, const char *path, unsigned mode)
{
    uint8_t rnd[6];
    enum posgate_err err;

    f->fd = -1;
    f->tmp_path[0] = 0;
    if (strlen(path) >= sizeof(f->final_path)) {
        return POSGATE_ERR_TOOBIG;
    }
    snprintf(f->final_path, sizeof(f->final_path), "%s", path);
    err = plat_random(rnd, sizeof(rnd));
    if (err != POSGATE_OK) {
        return err;
    }
    snprintf(f->tmp_path, sizeof(f->tmp_path), "%s.tmp.%02x%02x%02x%02x%02x%02x", path, rnd[0],
             rnd[1], rnd[2], rnd[3], rnd[4], rnd[5]);
    f->fd = open(f->tmp_path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, (mode_t)mode);
    if (f->fd < 0) {
        f->tmp_path[0] = 0;
        return errno_err(errno);
    }
    /* umask may have narrowed the mode; never widen it, but make it exact. */
    if (fchmod(f->fd, (mode_t)mode) != 0) {
        plat_atomic_abort(f);
        return POSGATE_ERR_IO;
    }
    return POSGATE_OK;
}

enum posgate_err
plat_atomic_write(struct plat_atomic_file *f, const void *data, size_t len)
{
    const uint8_t *p = data;

    while (len > 0) {
        ssize_t n = write(f->fd, p, len);

        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            plat_log(PLAT_LOG_ERROR, "write %s: %s", f->tmp_path, strerror(errno));
            return POSGATE_ERR_IO;
        }
        p += n;
        len -= (size_t)n;
    }
    return POSGATE_OK;
}

enum posgate_err
plat_atomic_commit(struct plat_atomic_file *f)
{
    enum posgate_err err;

    if (fsync(f->fd) != 0) {
        plat_log(PLAT_LOG_ERROR, "fsync %s: %s", f->tmp_path, strerror(errno));
        plat_atomic_abort(f);
        return POSGATE_ERR_IO;
    }
    if (close(f->fd) != 0) {
        f->fd = -1;
        plat_atomic_abort(f);
        return POSGATE_ERR_IO;
    }
    f->fd = -1;
    err = plat_rename_durable(f->tmp_path, f->final_path);
    if (err != POSGATE_OK) {
        plat_log(PLAT_LOG_ERROR, "rename %s -> %s: %s", f->tmp_path, f->final_path,
                 strerror(errno));
        plat_atomic_abort(f);
        return err;
    }
    f->tmp_path[0] = 0;
    return POSGATE_OK;
}

void
plat_atomic_abort(struct plat_atomic_file *f)
{
    if (f->fd >= 0) {
        close(f->fd);
        f->fd = -1;
    }
    if (f->tmp_path[0] != 0) {
        unlink(f->tmp_path);
        f->tmp_path[0] = 0;
    }
}

enum posgate_err
plat_write_atomic(const char *path, const void *data, size_t len, unsigned mode)
{
    struct plat_atomic_file f;
    enum posgate_err err;

    err = plat_atomic_open(&f, path, mode);
    if (err != POSGATE_OK) {
        return err;
    }
    err = plat_atomic_write(&f, data, len);
    if (err != POSGATE_OK) {
        plat_atomic_abort(&f);
        return err;
    }
    return plat_atomic_commit(&f);
}

enum posgate_err
plat_mkdir_p(const char *path, unsigned mode)
{
    char tmp[PATH_MAX];
    size_t n = strlen(path);

    if (n == 0 || n >= sizeof(tmp)) {
        return POSGATE_ERR_INVALID;
    }
    memcpy(tmp, path, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (tmp[i] == '/' || tmp[i] == 0) {
            char c = tmp[i];

            tmp[i] = 0;
            if (mkdir(tmp, (mode_t)mode) != 0 && errno != EEXIST) {
                return errno_err(errno);
            }
            tmp[i] = c;
        }
    }
    return POSGATE_OK;
}

int
plat_exists(const char *path)
{
    struct stat st;

    return stat(path, &st) == 0;
}

enum posgate_err
plat_unlink(const char *path)
{
    if (unlink(path) != 0 && errno != ENOENT) {
        return POSGATE_ERR_IO;
    }
    return POSGATE_OK;
}

enum posgate_err
plat_file_size(const char *path, uint64_t *out)
{
    struct stat st;

    if (stat(path, &st) != 0) {
        return errno_err(errno);
    }
    *out = (uint64_t)st.st_size;
    return POSGATE_OK;
}

enum posgate_err
plat_fs_free(const char *path, uint64_t *out)
{
    struct statvfs vs;

    if (statvfs(path, &vs) != 0) {
        return errno_err(errno);
    }
    *out = (uint64_t)vs.f_bavail * (uint64_t)vs.f_frsize;
    return POSGATE_OK;
}

enum posgate_err
plat_file_reserve(const char *path, uint64_t size, unsigned mode)
{
    struct plat_atomic_file f;
    enum posgate_err err;
    int rc;

    err = plat_atomic_open(&f, path, mode);
    if (err != POSGATE_OK) {
        return err;
    }
    /* posix_fallocate returns the error rather than setting errno */
    rc = posix_fallocate(f.fd, 0, (off_t)size);
    if (rc != 0) {
        plat_log(PLAT_LOG_WARN, "%s: cannot set aside %llu bytes: %s", path,
                 (unsigned long long)size, strerror(rc));
        plat_atomic_abort(&f);
        return POSGATE_ERR_IO;
    }
    return plat_atomic_commit(&f); /* drops the temp file itself on failure */
}

enum posgate_err
plat_path_join(char *out, size_t cap, const char *a, const char *b)
{
    size_t la = strlen(a);
    int n;

    if (la > 0 && a[la - 1] == '/') {
        n = snprintf(out, cap, "%s%s", a, b);
    } else {
        n = snprintf(out, cap, "%s/%s", a, b);
    }
    if (n < 0 || (size_t)n >= cap) {
        return POSGATE_ERR_TOOBIG;
    }
    return POSGATE_OK;
}

enum posgate_err
plat_copy_dir_files(const char *src, const char *dst, size_t file_max)
{
    DIR *d;
    struct dirent *e;
    enum posgate_err err;
    struct buf b = BUF_INIT(file_max);

    err = plat_mkdir_p(dst, 0700);
    if (err != POSGATE_OK) {
        return err;
    }
    d = opendir(src);
    if (d == NULL) {
        return errno_err(errno);
    }
    while ((e = readdir(d)) != NULL) {
        char from[PATH_MAX], to[PATH_MAX];
        struct stat st;

        if (e->d_name[0] == '.' || strstr(e->d_name, ".tmp.") != NULL) {
            continue;
        }
        err = plat_path_join(from, sizeof(from), src, e->d_name);
        if (err == POSGATE_OK) {
            err = plat_path_join(to, sizeof(to), dst, e->d_name);
        }
        if (err != POSGATE_OK) {
            break;
        }
        if (stat(from, &st) != 0 || !S_ISREG(st.st_mode)) {
            continue;
        }
        err = plat_read_file(from, &b);
        if (err == POSGATE_OK) {
            err = plat_write_atomic(to, b.data, b.len, (unsigned)(st.st_mode & 0777));
        }
        if (err != POSGATE_OK) {
            break;
        }
    }
    closedir(d);
    buf_free(&b);
    return err;
}

enum posgate_err
plat_remove_dir_files(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    enum posgate_err err = POSGATE_OK;

    if (d == NULL) {
        return errno == ENOENT ? POSGATE_OK : errno_err(errno);
    }
    while ((e = readdir(d)) != NULL) {
        char p[PATH_MAX];

        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) {
            continue;
        }
        if (plat_path_join(p, sizeof(p), dir, e->d_name) != POSGATE_OK || unlink(p) != 0) {
            err = POSGATE_ERR_IO;
        }
    }
    closedir(d);
    if (err == POSGATE_OK && rmdir(dir) != 0) {
        err = POSGATE_ERR_IO;
    }
    return err;
}

void
plat_names_free(struct plat_names *ns)
{
    if (ns == NULL) {
        return;
    }
    for (size_t i = 0; i < ns->n; i++) {
        free(ns->v[i]);
    }
    free(ns->v);
    ns->v = NULL;
    ns->n = 0;
}

static int
cmp_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

enum posgate_err
plat_dir_names(const char *dir, int (*keep)(const char *name), size_t max, struct plat_names *out)
{
    DIR *d;
    struct dirent *e;
    char **v;
    enum posgate_err err = POSGATE_OK;

    out->v = NULL;
    out->n = 0;
    d = opendir(dir);
    if (d == NULL) {
        return errno == ENOENT ? POSGATE_ERR_NOTFOUND : POSGATE_ERR_IO;
    }
    while ((e = readdir(d)) != NULL) {
        if (!keep(e->d_name)) {
            continue;
        }
        if (out->n >= max) {
            err = POSGATE_ERR_TOOBIG;
            break;
        }
        v = realloc(out->v, (out->n + 1) * sizeof(*v));
        if (v == NULL) {
            err = POSGATE_ERR_NOMEM;
            break;
        }
        out->v = v;
        out->v[out->n] = strdup(e->d_name);
        if (out->v[out->n] == NULL) {
            err = POSGATE_ERR_NOMEM;
            break;
        }
        out->n++;
    }
    closedir(d);
    if (err != POSGATE_OK) {
        plat_names_free(out);
        return err;
    }
    if (out->n > 1) {
        qsort(out->v, out->n, sizeof(*out->v), cmp_name);
    }
    return POSGATE_OK;
}
