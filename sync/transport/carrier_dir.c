/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The directory carrier: a TUF repository on a USB stick or a local mirror. It reads
 * "<root>/<name>" in chunks into the sink and stops at the length cap, so a file that keeps
 * growing (or a device node posing as one) cannot exhaust memory. Only regular files are read.
 */
#define _POSIX_C_SOURCE 200809L
#include "carrier.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "plat_file.h"
#include "plat_mem.h"

#define DIR_CHUNK 65536

struct carrier_dir {
    struct carrier base; /* first: a struct carrier * is a struct carrier_dir * */
    char root[4096];
};

static enum posgate_err
dir_fetch(struct carrier *c, const char *name, uint64_t max_len, const struct carrier_sink *sink,
          uint64_t *got)
{
    struct carrier_dir *d = (struct carrier_dir *)c;
    char path[8192];
    uint8_t *chunk = NULL;
    uint64_t total = 0;
    struct stat st;
    enum posgate_err err = POSGATE_OK;
    int fd = -1;

    if (plat_path_join(path, sizeof(path), d->root, name) != POSGATE_OK) {
        snprintf(c->errmsg, sizeof(c->errmsg), "path of %.200s is too long", name);
        return POSGATE_ERR_INVALID;
    }
    fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0) {
        int e = errno;

        snprintf(c->errmsg, sizeof(c->errmsg), "open %.300s: %s", path, strerror(e));
        return (e == ENOENT || e == ENOTDIR) ? POSGATE_ERR_NOTFOUND : POSGATE_ERR_IO;
    }
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        snprintf(c->errmsg, sizeof(c->errmsg), "%.300s is not a regular file", path);
        err = POSGATE_ERR_IO;
        goto out;
    }
    if ((uint64_t)st.st_size > max_len) {
        snprintf(c->errmsg, sizeof(c->errmsg), "%.300s has %lld bytes, more than the %llu allowed",
                 path, (long long)st.st_size, (unsigned long long)max_len);
        err = POSGATE_ERR_TOOBIG;
        goto out;
    }
    chunk = plat_malloc(DIR_CHUNK);
    if (chunk == NULL) {
        err = POSGATE_ERR_NOMEM;
        goto out;
    }
    while (1) {
        ssize_t n = read(fd, chunk, DIR_CHUNK);

        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            snprintf(c->errmsg, sizeof(c->errmsg), "read %.300s: %s", path, strerror(errno));
            err = POSGATE_ERR_IO;
            goto out;
        }
        if (n == 0) {
            break;
        }
        if ((uint64_t)n > max_len - total) {
            /* The file grew past the cap while we read it: deliver up to the cap only. */
            snprintf(c->errmsg, sizeof(c->errmsg), "%.300s is longer than the %llu bytes allowed",
                     path, (unsigned long long)max_len);
            err = POSGATE_ERR_TOOBIG;
            goto out;
        }
        err = sink->write(sink->ctx, chunk, (size_t)n);
        if (err != POSGATE_OK) {
            snprintf(c->errmsg, sizeof(c->errmsg), "%.300s: the receiver refused the data (%s)",
                     path, posgate_err_name(err));
            goto out;
        }
        total += (uint64_t)n;
    }
    *got = total;
out:
    plat_free(chunk);
    close(fd);
    return err;
}

static void
dir_destroy(struct carrier *c)
{
    plat_free(c);
}

static const struct carrier_ops dir_ops = {"dir", dir_fetch, dir_destroy};

enum posgate_err
carrier_dir_new(const char *root, struct carrier **out)
{
    struct carrier_dir *d;
    size_t n;

    if (out == NULL) {
        return POSGATE_ERR_INVALID;
    }
    *out = NULL;
    if (root == NULL) {
        return POSGATE_ERR_INVALID;
    }
    n = strlen(root);
    if (n == 0 || n >= sizeof(d->root)) {
        return POSGATE_ERR_INVALID;
    }
    d = plat_calloc(1, sizeof(*d));
    if (d == NULL) {
        return POSGATE_ERR_NOMEM;
    }
    d->base.ops = &dir_ops;
    memcpy(d->root, root, n + 1);
    *out = &d->base;
    return POSGATE_OK;
}
