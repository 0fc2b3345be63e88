/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A progress bar for long imports: entries done, MB/s and time left, redrawn at most ten times a
 * second on stderr, and only when stderr is a terminal (never in logs or pipes).
 */
#ifndef POSGATE_PROGRESS_H
#define POSGATE_PROGRESS_H

#include <stdint.h>

struct progress {
    int enabled;
    const char *label;
    uint64_t total; /* entries expected, 0 when unknown */
    uint64_t total_bytes;
    uint64_t start_ns;
    uint64_t last_ns;
};

/* enabled: 1 to draw when stderr is a terminal, 0 never. */
void progress_begin(struct progress *p, int enabled, const char *label, uint64_t total,
                    uint64_t total_bytes);
void progress_update(struct progress *p, uint64_t done, uint64_t bytes);
void progress_end(struct progress *p, uint64_t done, uint64_t bytes);

#endif
