/* SPDX-License-Identifier: Apache-2.0 */
/* CSPRNG through getrandom(2) (Linux). */
#define _GNU_SOURCE
#include "plat_random.h"

#include <errno.h>
#include <sys/random.h>

enum posgate_err
plat_random(void *out, size_t n)
{
    unsigned char *p = out;

    while (n > 0) {
        ssize_t r = getrandom(p, n, 0);

        if (r < 0) {
            if (errno == EINTR) {
                continue;
            }
            return POSGATE_ERR_IO;
        }
        p += r;
        n -= (size_t)r;
    }
    return POSGATE_OK;
}

enum posgate_err
plat_random_below(uint64_t bound, uint64_t *out)
{
    uint64_t v, limit;
    enum posgate_err err;

    if (bound == 0) {
        *out = 0;
        return POSGATE_OK;
    }
    limit = UINT64_MAX - (UINT64_MAX % bound);
    do {
        err = plat_random(&v, sizeof(v));
        if (err != POSGATE_OK) {
            return err;
        }
    } while (v >= limit);
    *out = v % bound;
    return POSGATE_OK;
}
