/* SPDX-License-Identifier: Apache-2.0 */
/* The CSPRNG: the kernel's getrandom(2). Keys, nonces, jitter and ids come from here. */
#ifndef POSGATE_PLAT_RANDOM_H
#define POSGATE_PLAT_RANDOM_H

#include <stddef.h>
#include <stdint.h>

#include "posgate_err.h"

POSGATE_WUR enum posgate_err plat_random(void *out, size_t n);
/* Uniform in [0, bound) without modulo bias; bound 0 yields 0. */
POSGATE_WUR enum posgate_err plat_random_below(uint64_t bound, uint64_t *out);

#endif
