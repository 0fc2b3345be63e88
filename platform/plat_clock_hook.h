/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The wall clock's test hook, chosen by CMake: plat_clock_hook_off.c in every build that may be
 * shipped (the hook reports nothing, the environment cannot touch the clock), and
 * plat_clock_hook_env.c only when POSGATE_TEST_HOOKS=ON (POSGATE_FAKE_NOW, seconds since the
 * epoch, replaces the wall clock). A stray POSGATE_FAKE_NOW on a kiosk would otherwise freeze its
 * clock: no data would ever turn stale and no clock fault would ever be seen.
 */
#ifndef POSGATE_PLAT_CLOCK_HOOK_H
#define POSGATE_PLAT_CLOCK_HOOK_H

#include <stdint.h>

/* 1 and *out (seconds since the epoch) when the wall clock is overridden, else 0. */
int plat_clock_hook_now(int64_t *out);

#endif
