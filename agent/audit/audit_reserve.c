/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The reserve of a full disk (audit_reserve.h): finding its path, giving it back when space is
 * short, making it again when space came back.
 */
#define _POSIX_C_SOURCE 200809L
#include "audit_reserve.h"

#include <stdio.h>
#include <string.h>

#include "plat_clock.h"
#include "plat_file.h"
#include "plat_log.h"

#define RESERVE_CHECK_NS 1000000000ull /* free space is looked at most once a second */

/* Free space below which the reserve is given back, and the free space it needs to be made
 * again: the gap keeps a disk near the mark from removing and re-making it on every commit. */
#define RESERVE_LOW    (1ull << 20)
#define RESERVE_REMAKE (AUDIT_RESERVE_BYTES + 2 * RESERVE_LOW)

static enum posgate_err
reserve_paths(const char *path, char *rpath, size_t rcap, char *dir, size_t dcap)
{
    const char *slash = strrchr(path, '/');
    int n = snprintf(rpath, rcap, "%s%s", path, AUDIT_RESERVE_SUFFIX);

    if (n < 0 || (size_t)n >= rcap) {
        return POSGATE_ERR_TOOBIG;
    }
    if (slash == NULL) {
        n = snprintf(dir, dcap, ".");
    } else if (slash == path) {
        n = snprintf(dir, dcap, "/");
    } else {
        n = snprintf(dir, dcap, "%.*s", (int)(slash - path), path);
    }
    return n < 0 || (size_t)n >= dcap ? POSGATE_ERR_TOOBIG : POSGATE_OK;
}

static uint64_t
reserve_size(const char *rpath)
{
    uint64_t n = 0;

    if (plat_file_size(rpath, &n) != POSGATE_OK) {
        n = 0;
    }
    return n;
}

/* Removes the reserve when it is there and (unless force) the file system is short of space.
 * Returns the size of the reserve left in place. */
static uint64_t
reserve_release(const char *rpath, const char *dir, int force)
{
    uint64_t have = reserve_size(rpath), avail = 0;

    if (have == 0) {
        return 0;
    }
    if (!force && (plat_fs_free(dir, &avail) != POSGATE_OK || avail >= RESERVE_LOW)) {
        return have;
    }
    if (plat_unlink(rpath) != POSGATE_OK) {
        plat_log(PLAT_LOG_ERROR, "audit: disk full and the reserve %s cannot be removed", rpath);
        return have;
    }
    plat_log(PLAT_LOG_ERROR,
             "audit: disk full (less than %llu bytes free): released the reserve %s (%llu "
             "bytes) so that decisions stay recorded; free space on %s",
             (unsigned long long)RESERVE_LOW, rpath, (unsigned long long)have, dir);
    return 0;
}

void
audit_reserve_prepare(const char *path)
{
    char rpath[AUDIT_PATH_MAX + 16], dir[AUDIT_PATH_MAX];

    if (path != NULL &&
        reserve_paths(path, rpath, sizeof(rpath), dir, sizeof(dir)) == POSGATE_OK) {
        (void)reserve_release(rpath, dir, 0);
    }
}

enum posgate_err
audit_reserve_init(struct audit_reserve *r, const char *queue_path)
{
    memset(r, 0, sizeof(*r));
    return reserve_paths(queue_path, r->path, sizeof(r->path), r->dir, sizeof(r->dir));
}

int
audit_reserve_tend(struct audit_reserve *r, int failed)
{
    uint64_t now = plat_mono_ns(), avail = 0, had = r->bytes, size;

    if (!failed && now < r->next_ns) {
        return 0;
    }
    r->next_ns = now + RESERVE_CHECK_NS;
    size = reserve_release(r->path, r->dir, failed);
    if (size < AUDIT_RESERVE_BYTES && !failed && plat_fs_free(r->dir, &avail) == POSGATE_OK &&
        avail >= RESERVE_REMAKE + size) {
        if (plat_file_reserve(r->path, AUDIT_RESERVE_BYTES, 0600) == POSGATE_OK) {
            size = AUDIT_RESERVE_BYTES;
            if (had < AUDIT_RESERVE_BYTES) {
                plat_log(PLAT_LOG_INFO, "audit: space is back on %s: reserve %s made again",
                         r->dir, r->path);
            }
        }
    }
    r->bytes = size;
    return failed && had > 0 && size == 0;
}
