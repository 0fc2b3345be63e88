/* SPDX-License-Identifier: Apache-2.0 */
/*
 * An LD_PRELOAD fault injector for the crash and I/O-fault harnesses. It wraps the calls through
 * which posgate and SQLite's unix VFS change files (write, pwrite, pwrite64, fsync, fdatasync,
 * ftruncate, ftruncate64, rename, renameat) and, for the calls an environment selects, lets the
 * first FAULT_AFTER matching calls through and then either fails them with an errno or kills the
 * process with SIGKILL before the call happens (so "kill at the Nth rename" stops a process
 * between the fsync of a temp file and its rename).
 *
 *   FAULT_OP          comma-separated call names: write,pwrite,fsync,fdatasync,ftruncate,rename
 *                     (pwrite covers pwrite64, ftruncate covers ftruncate64, rename covers
 *                     renameat); unset: the library only passes calls through
 *   FAULT_PATH_SUBSTR only calls on a path containing this string count (the fd's path from
 *                     /proc/self/fd; for rename the source or the target path)
 *   FAULT_AFTER       matching calls let through before the first fault (default 0)
 *   FAULT_TIMES       how many matching calls fail after that (default: all of them)
 *   FAULT_ERRNO       ENOSPC (default), EIO, EDQUOT, EROFS or a number
 *   FAULT_ACTION      "errno" (default) or "kill" (SIGKILL at the first faulting call)
 *   FAULT_COUNT_FILE  at exit, the number of matching calls is written to this file (a harness
 *                     runs once with it to learn the range of FAULT_AFTER worth trying)
 *
 * Built without sanitizers: it is loaded into the normal build's binaries only.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

enum fault_op {
    OP_WRITE = 1u << 0,
    OP_PWRITE = 1u << 1,
    OP_FSYNC = 1u << 2,
    OP_FDATASYNC = 1u << 3,
    OP_FTRUNCATE = 1u << 4,
    OP_RENAME = 1u << 5
};

static struct {
    int ready;
    unsigned ops;
    char path_substr[512];
    long after;
    long times;
    int err;
    int kill;
    char count_file[1024];
    long seen;
    long failed;
} cfg;

static void
count_at_exit(void)
{
    FILE *f;

    if (cfg.count_file[0] == 0) {
        return;
    }
    f = fopen(cfg.count_file, "w");
    if (f != NULL) {
        fprintf(f, "%ld\n", cfg.seen);
        fclose(f);
    }
}

static long
env_long(const char *name, long dflt)
{
    const char *s = getenv(name);
    char *end;
    long v;

    if (s == NULL || *s == 0) {
        return dflt;
    }
    errno = 0;
    v = strtol(s, &end, 10);
    return errno != 0 || *end != 0 ? dflt : v;
}

static int
env_errno(void)
{
    const char *s = getenv("FAULT_ERRNO");

    if (s == NULL || *s == 0 || strcmp(s, "ENOSPC") == 0) {
        return ENOSPC;
    }
    if (strcmp(s, "EIO") == 0) {
        return EIO;
    }
    if (strcmp(s, "EDQUOT") == 0) {
        return EDQUOT;
    }
    if (strcmp(s, "EROFS") == 0) {
        return EROFS;
    }
    return (int)env_long("FAULT_ERRNO", ENOSPC);
}

static void
setup(void)
{
    const char *ops, *p;

    if (cfg.ready) {
        return;
    }
    cfg.ready = 1;
    ops = getenv("FAULT_OP");
    if (ops != NULL) {
        for (p = ops; *p != 0;) {
            size_t n = strcspn(p, ",");

            if (n == 5 && strncmp(p, "write", n) == 0) {
                cfg.ops |= OP_WRITE;
            } else if (n == 6 && strncmp(p, "pwrite", n) == 0) {
                cfg.ops |= OP_PWRITE;
            } else if (n == 5 && strncmp(p, "fsync", n) == 0) {
                cfg.ops |= OP_FSYNC;
            } else if (n == 9 && strncmp(p, "fdatasync", n) == 0) {
                cfg.ops |= OP_FDATASYNC;
            } else if (n == 9 && strncmp(p, "ftruncate", n) == 0) {
                cfg.ops |= OP_FTRUNCATE;
            } else if (n == 6 && strncmp(p, "rename", n) == 0) {
                cfg.ops |= OP_RENAME;
            }
            p += n;
            p += *p == ',' ? 1 : 0;
        }
    }
    p = getenv("FAULT_PATH_SUBSTR");
    snprintf(cfg.path_substr, sizeof(cfg.path_substr), "%s", p != NULL ? p : "");
    cfg.after = env_long("FAULT_AFTER", 0);
    cfg.times = env_long("FAULT_TIMES", -1);
    cfg.err = env_errno();
    p = getenv("FAULT_ACTION");
    cfg.kill = p != NULL && strcmp(p, "kill") == 0;
    p = getenv("FAULT_COUNT_FILE");
    snprintf(cfg.count_file, sizeof(cfg.count_file), "%s", p != NULL ? p : "");
    if (cfg.count_file[0] != 0) {
        atexit(count_at_exit);
    }
}

static int
fd_matches(int fd)
{
    char link[64], target[1024];
    ssize_t n;

    if (cfg.path_substr[0] == 0) {
        return fd > 2; /* never the standard streams unless a path asks for them */
    }
    snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
    n = readlink(link, target, sizeof(target) - 1);
    if (n <= 0) {
        return 0;
    }
    target[n] = 0;
    return strstr(target, cfg.path_substr) != NULL;
}

static int
path_matches(const char *a, const char *b)
{
    if (cfg.path_substr[0] == 0) {
        return 1;
    }
    return (a != NULL && strstr(a, cfg.path_substr) != NULL) ||
           (b != NULL && strstr(b, cfg.path_substr) != NULL);
}

/* 1 when this call must fail (errno set), 0 to pass it on; may not return (kill). */
static int
decide(unsigned op, int matched)
{
    int saved = errno;

    setup();
    if ((cfg.ops & op) == 0 || !matched) {
        errno = saved;
        return 0;
    }
    cfg.seen++;
    if (cfg.seen <= cfg.after || (cfg.times >= 0 && cfg.failed >= cfg.times)) {
        errno = saved;
        return 0;
    }
    cfg.failed++;
    if (cfg.kill) {
        raise(SIGKILL);
    }
    errno = cfg.err;
    return 1;
}

static int
want(unsigned op)
{
    setup();
    return (cfg.ops & op) != 0;
}

#define REAL(name)                                                                                 \
    static __typeof__(&name) real_##name;                                                          \
    if (real_##name == NULL) {                                                                     \
        real_##name = (__typeof__(&name))dlsym(RTLD_NEXT, #name);                                  \
    }

ssize_t
write(int fd, const void *buf, size_t n)
{
    REAL(write);
    if (want(OP_WRITE) && decide(OP_WRITE, fd_matches(fd))) {
        return -1;
    }
    return real_write(fd, buf, n);
}

ssize_t
pwrite(int fd, const void *buf, size_t n, off_t off)
{
    REAL(pwrite);
    if (want(OP_PWRITE) && decide(OP_PWRITE, fd_matches(fd))) {
        return -1;
    }
    return real_pwrite(fd, buf, n, off);
}

ssize_t
pwrite64(int fd, const void *buf, size_t n, off64_t off)
{
    REAL(pwrite64);
    if (want(OP_PWRITE) && decide(OP_PWRITE, fd_matches(fd))) {
        return -1;
    }
    return real_pwrite64(fd, buf, n, off);
}

int
fsync(int fd)
{
    REAL(fsync);
    if (want(OP_FSYNC) && decide(OP_FSYNC, fd_matches(fd))) {
        return -1;
    }
    return real_fsync(fd);
}

int
fdatasync(int fd)
{
    REAL(fdatasync);
    if (want(OP_FDATASYNC) && decide(OP_FDATASYNC, fd_matches(fd))) {
        return -1;
    }
    return real_fdatasync(fd);
}

int
ftruncate(int fd, off_t len)
{
    REAL(ftruncate);
    if (want(OP_FTRUNCATE) && decide(OP_FTRUNCATE, fd_matches(fd))) {
        return -1;
    }
    return real_ftruncate(fd, len);
}

int
ftruncate64(int fd, off64_t len)
{
    REAL(ftruncate64);
    if (want(OP_FTRUNCATE) && decide(OP_FTRUNCATE, fd_matches(fd))) {
        return -1;
    }
    return real_ftruncate64(fd, len);
}

int
rename(const char *from, const char *to)
{
    REAL(rename);
    if (want(OP_RENAME) && decide(OP_RENAME, path_matches(from, to))) {
        return -1;
    }
    return real_rename(from, to);
}

int
renameat(int fromfd, const char *from, int tofd, const char *to)
{
    REAL(renameat);
    if (want(OP_RENAME) && decide(OP_RENAME, path_matches(from, to))) {
        return -1;
    }
    return real_renameat(fromfd, from, tofd, to);
}
