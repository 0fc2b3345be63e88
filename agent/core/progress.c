/* SPDX-License-Identifier: Apache-2.0 */
/* Terminal progress bar for imports (stderr, only on a terminal). */
#define _POSIX_C_SOURCE 200809L
#include "progress.h"

#include <stdio.h>
#include <unistd.h>

#include "plat_clock.h"

void
progress_begin(struct progress *p, int enabled, const char *label, uint64_t total,
               uint64_t total_bytes)
{
    p->enabled = enabled && isatty(STDERR_FILENO);
    p->label = label;
    p->total = total;
    p->total_bytes = total_bytes;
    p->start_ns = plat_mono_ns();
    p->last_ns = 0;
}

static void
draw(struct progress *p, uint64_t done, uint64_t bytes, int final)
{
    uint64_t now = plat_mono_ns();
    double secs = (double)(now - p->start_ns) / 1e9;
    double mbs = secs > 0 ? (double)bytes / 1e6 / secs : 0;
    double frac = p->total ? (double)done / (double)p->total : 0;
    int width = 30, fill = (int)(frac * width);
    char bar[32];
    double left = frac > 0 && !final ? secs / frac - secs : 0;

    if (fill > width) {
        fill = width;
    }
    for (int i = 0; i < width; i++) {
        bar[i] = i < fill ? '#' : '.';
    }
    bar[width] = 0;
    fprintf(stderr, "\r%-12s [%s] %llu/%llu entries  %.1f MB/s  %s%.0fs%s", p->label, bar,
            (unsigned long long)done, (unsigned long long)p->total, mbs, final ? "took " : "left ",
            final ? secs : left, final ? "\n" : "   ");
    fflush(stderr);
}

void
progress_update(struct progress *p, uint64_t done, uint64_t bytes)
{
    uint64_t now;

    if (!p->enabled) {
        return;
    }
    now = plat_mono_ns();
    if (now - p->last_ns < 100000000u) {
        return;
    }
    p->last_ns = now;
    draw(p, done, bytes, 0);
}

void
progress_end(struct progress *p, uint64_t done, uint64_t bytes)
{
    if (p->enabled) {
        draw(p, done, bytes, 1);
    }
}
