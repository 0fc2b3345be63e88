/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Clocks and time text. Wall time is what signed expiries are compared against; monotonic time
 * drives poll intervals and latencies and never jumps. Only a build configured with
 * POSGATE_TEST_HOOKS=ON lets the environment (POSGATE_FAKE_NOW, seconds since the epoch) set the
 * wall clock, so that tests can reproduce clock faults; a shipped build reads the real clock
 * whatever the environment says (plat_clock_hook.h).
 */
#ifndef POSGATE_PLAT_CLOCK_H
#define POSGATE_PLAT_CLOCK_H

#include <stddef.h>
#include <stdint.h>

#include "posgate_err.h"

/* Seconds since the epoch (UTC). */
int64_t plat_wall_s(void);
/* Microseconds since the epoch (UTC). */
int64_t plat_wall_us(void);
/* Monotonic nanoseconds from an arbitrary origin. */
uint64_t plat_mono_ns(void);

/* Parses RFC 3339 ("2026-01-02T03:04:05Z", fractions and +hh:mm offsets allowed) or a bare
 * date ("2026-01-02", midnight UTC) into seconds since the epoch. */
POSGATE_WUR enum posgate_err plat_time_parse(const char *s, int64_t *out);
/* Formats seconds since the epoch as "YYYY-MM-DDTHH:MM:SSZ" into out (at least 21 bytes). */
void plat_time_format(int64_t t, char *out, size_t cap);
/* Parses a duration like "90m", "48h", "7d", "30s" into seconds. */
POSGATE_WUR enum posgate_err plat_duration_parse(const char *s, int64_t *out);
/* Days since 1970-01-01 of a civil date (proleptic Gregorian). */
int64_t plat_days_from_civil(int64_t y, unsigned m, unsigned d);
/* The civil date (proleptic Gregorian) of z days since 1970-01-01; m 1-12, d 1-31. */
void plat_civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d);

#endif
