/* SPDX-License-Identifier: Apache-2.0 */
/* The allocator every module uses, with a failure-injection hook for allocation sweeps. */
#define _DEFAULT_SOURCE /* strnlen */
#include "plat_mem.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static atomic_long fail_countdown = -1;

static int
should_fail(void)
{
    long v = atomic_load(&fail_countdown);

    if (v < 0) {
        return 0;
    }
    if (v == 0) {
        return 1;
    }
    atomic_fetch_sub(&fail_countdown, 1);
    return 0;
}

void
plat_mem_fail_after(long countdown)
{
    atomic_store(&fail_countdown, countdown);
}

void *
plat_malloc(size_t n)
{
    if (should_fail()) {
        return NULL;
    }
    return malloc(n ? n : 1);
}

void *
plat_calloc(size_t count, size_t size)
{
    if (should_fail()) {
        return NULL;
    }
    return calloc(count ? count : 1, size ? size : 1);
}

void *
plat_realloc(void *p, size_t n)
{
    if (should_fail()) {
        return NULL;
    }
    return realloc(p, n ? n : 1);
}

void
plat_free(void *p)
{
    free(p);
}

char *
plat_strdup(const char *s)
{
    size_t n;
    char *d;

    if (s == NULL) {
        return NULL;
    }
    n = strlen(s) + 1;
    d = plat_malloc(n);
    if (d != NULL) {
        memcpy(d, s, n);
    }
    return d;
}

void
plat_wipe(void *p, size_t n)
{
    if (p == NULL || n == 0) {
        return;
    }
    /* memset at full speed (a check resets a ~3 KB request each time), then a compiler barrier
     * that claims to read p, so the stores cannot be removed as dead. */
    memset(p, 0, n);
    __asm__ __volatile__("" : : "r"(p) : "memory");
}

void
plat_str_copy(char *dst, size_t cap, const char *src)
{
    size_t n = strnlen(src, cap - 1);

    memcpy(dst, src, n);
    dst[n] = 0;
}

void
plat_msgf(char *dst, size_t cap, const char *fmt, ...)
{
    va_list ap;

    if (dst == NULL || cap == 0) {
        return;
    }
    va_start(ap, fmt);
    vsnprintf(dst, cap, fmt, ap);
    va_end(ap);
}
