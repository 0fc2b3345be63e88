/* SPDX-License-Identifier: Apache-2.0 */
/*
 * "spawn" of posgate-bench: runs a command and reports its wall time and its peak resident set
 * (the kernel's high-water mark of the process, ru_maxrss from wait4, which is VmHWM at exit),
 * for the import figures. Usage: spawn --out FILE -- CMD [ARGS...]; the command's own output
 * is inherited; the figures go to FILE as spawn_wall_s, spawn_maxrss_kb, spawn_status lines.
 * The exit status is the command's.
 */
#define _DEFAULT_SOURCE
#include <errno.h>
#include <spawn.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/wait.h>

#include "bench.h"

extern char **environ;

int
bench_cmd_spawn(int argc, char **argv)
{
    const char *out = NULL;
    int i, st = 0;
    pid_t pid;
    struct rusage ru;
    uint64_t t0, t1;
    FILE *f;

    for (i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--out") == 0 && i + 1 < argc) {
            out = argv[++i];
        } else if (strcmp(argv[i], "--") == 0) {
            i++;
            break;
        }
    }
    if (out == NULL || i >= argc) {
        bench_die("usage: spawn --out FILE -- CMD [ARGS...]");
    }
    t0 = plat_mono_ns();
    if (posix_spawnp(&pid, argv[i], NULL, NULL, argv + i, environ) != 0) {
        bench_die("%s: %s", argv[i], strerror(errno));
    }
    memset(&ru, 0, sizeof ru);
    if (wait4(pid, &st, 0, &ru) != pid) {
        bench_die("wait4: %s", strerror(errno));
    }
    t1 = plat_mono_ns();
    f = fopen(out, "w");
    if (f == NULL) {
        bench_die("%s: %s", out, strerror(errno));
    }
    fprintf(f, "spawn_wall_s=%.3f\nspawn_maxrss_kb=%ld\nspawn_status=%d\n", (double)(t1 - t0) / 1e9,
            ru.ru_maxrss, WIFEXITED(st) ? WEXITSTATUS(st) : 128);
    fclose(f);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 1;
}
