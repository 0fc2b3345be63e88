/* SPDX-License-Identifier: Apache-2.0 */
/* stderr logging with a time stamp and a level. */
#define _POSIX_C_SOURCE 200809L
#include "plat_log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plat_clock.h"

static atomic_int threshold = -1;

int
plat_log_level_parse(const char *s, enum plat_log_level *out)
{
    static const char *const names[] = {"debug", "info", "warn", "error", "off"};

    for (int i = 0; i < 5; i++) {
        if (s != NULL && strcmp(s, names[i]) == 0) {
            *out = (enum plat_log_level)i;
            return 1;
        }
    }
    return 0;
}

void
plat_log_set_level(enum plat_log_level level)
{
    atomic_store(&threshold, (int)level);
}

static int
current_threshold(void)
{
    int t = atomic_load(&threshold);
    enum plat_log_level l;

    if (t < 0) {
        t = PLAT_LOG_WARN;
        if (plat_log_level_parse(getenv("POSGATE_LOG_LEVEL"), &l)) {
            t = (int)l;
        }
        atomic_store(&threshold, t);
    }
    return t;
}

void
plat_log(enum plat_log_level level, const char *fmt, ...)
{
    static const char *const tags[] = {"debug", "info", "warn", "error", "off"};
    char ts[32], line[2048];
    va_list ap;

    if ((int)level < current_threshold()) {
        return;
    }
    plat_time_format(plat_wall_s(), ts, sizeof(ts));
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    fprintf(stderr, "%s posgate %s: %s\n", ts, tags[level], line);
}
