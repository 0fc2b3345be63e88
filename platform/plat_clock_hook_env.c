/* SPDX-License-Identifier: Apache-2.0 */
/* The wall clock's test hook in a test build (POSGATE_TEST_HOOKS=ON): POSGATE_FAKE_NOW. */
#define _POSIX_C_SOURCE 200809L
#include "plat_clock_hook.h"

#include <errno.h>
#include <stdlib.h>

int
plat_clock_hook_now(int64_t *out)
{
    const char *s = getenv("POSGATE_FAKE_NOW");
    char *end = NULL;
    long long v;

    if (s == NULL || *s == 0) {
        return 0;
    }
    errno = 0;
    v = strtoll(s, &end, 10);
    if (errno != 0 || end == s || *end != 0) {
        return 0;
    }
    *out = (int64_t)v;
    return 1;
}
