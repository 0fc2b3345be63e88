/* SPDX-License-Identifier: Apache-2.0 */
/* Inter-process exclusive locks on a lock file: flock, polled until a deadline. */
#define _DEFAULT_SOURCE
#include "plat_lock.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

#include "plat_clock.h"

static long
read_pid(int fd)
{
    char b[32];
    ssize_t n = pread(fd, b, sizeof(b) - 1, 0);
    char *end = NULL;
    long pid;

    if (n <= 0) {
        return 0;
    }
    b[n] = 0;
    pid = strtol(b, &end, 10);
    if (end == b || pid <= 0) {
        return 0;
    }
    return pid;
}

/* flock, polled every 20 ms until wait_ms has passed. */
static enum posgate_err
lock_fd(int fd, long wait_ms)
{
    uint64_t deadline = plat_mono_ns() + (uint64_t)(wait_ms > 0 ? wait_ms : 0) * 1000000u;
    struct timespec nap = {0, 20 * 1000000L};

    while (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        if (errno != EWOULDBLOCK && errno != EINTR) {
            return POSGATE_ERR_IO;
        }
        if (plat_mono_ns() >= deadline) {
            return POSGATE_ERR_RETRY;
        }
        nanosleep(&nap, NULL);
    }
    return POSGATE_OK;
}

enum posgate_err
plat_lock_dir(struct plat_lock *l, const char *dir, long wait_ms)
{
    enum posgate_err err;
    int fd;

    l->fd = -1;
    fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        return errno == ENOENT ? POSGATE_ERR_NOTFOUND : POSGATE_ERR_IO;
    }
    err = lock_fd(fd, wait_ms);
    if (err != POSGATE_OK) {
        close(fd);
        return err;
    }
    l->fd = fd;
    return POSGATE_OK;
}

enum posgate_err
plat_lock_take(struct plat_lock *l, const char *path, long wait_ms, long *holder_pid)
{
    enum posgate_err err;
    char b[32];
    int fd, n;

    l->fd = -1;
    if (holder_pid != NULL) {
        *holder_pid = 0;
    }
    fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY, 0600);
    if (fd < 0) {
        return errno == ENOMEM ? POSGATE_ERR_NOMEM : POSGATE_ERR_IO;
    }
    err = lock_fd(fd, wait_ms);
    if (err != POSGATE_OK) {
        if (err == POSGATE_ERR_RETRY && holder_pid != NULL) {
            *holder_pid = read_pid(fd);
        }
        close(fd);
        return err;
    }
    n = snprintf(b, sizeof(b), "%ld\n", (long)getpid());
    /* the pid is for messages only: a failed write leaves the lock as good */
    if (ftruncate(fd, 0) == 0 && n > 0) {
        (void)!pwrite(fd, b, (size_t)n, 0);
    }
    l->fd = fd;
    return POSGATE_OK;
}

void
plat_lock_release(struct plat_lock *l)
{
    if (l == NULL || l->fd < 0) {
        return;
    }
    close(l->fd); /* drops the flock */
    l->fd = -1;
}
