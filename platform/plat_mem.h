/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Memory: a swappable allocator (so tests can sweep allocation failures) and wiping of secrets.
 * Every allocation in posgate goes through these, and the third-party libraries are pointed at
 * them where they allow it (cJSON hooks, SQLite config).
 */
#ifndef POSGATE_PLAT_MEM_H
#define POSGATE_PLAT_MEM_H

#include <stddef.h>

void *plat_malloc(size_t n);
void *plat_calloc(size_t count, size_t size);
void *plat_realloc(void *p, size_t n);
void plat_free(void *p);
/* Duplicates a string; NULL when allocation fails or s is NULL. */
char *plat_strdup(const char *s);
/* Overwrites memory in a way the compiler may not remove. */
void plat_wipe(void *p, size_t n);

/* Copies the string src into dst[cap] (cap >= 1), cut to fit and terminated: snprintf's "%s"
 * without printf's cost (the check path copies a dozen strings per decision). */
void plat_str_copy(char *dst, size_t cap, const char *src);
/* snprintf into an error message buffer; nothing when dst is NULL or cap is 0. */
void plat_msgf(char *dst, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Test hook: the next `countdown` allocations succeed, then every one fails until reset with
 * a negative value. Process-wide; not for production use. */
void plat_mem_fail_after(long countdown);

#endif
