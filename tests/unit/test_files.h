/* SPDX-License-Identifier: Apache-2.0 */
/* Test helpers on real files (test.h's CHECK macros): a temporary directory, damage on disk.
 * Include after test.h, in a file built with _POSIX_C_SOURCE >= 200809L (mkdtemp). */
#ifndef POSGATE_TEST_FILES_H
#define POSGATE_TEST_FILES_H

#include <stdio.h>
#include <stdlib.h>

#include "test.h"

/* A new directory "$TMPDIR/posgate-NAME-" plus six random characters (mkdtemp fills in the
 * template) in buf; false (with a message) when it cannot be made. */
static inline int
test_mkdtemp(char *buf, size_t cap, const char *name)
{
    const char *base = getenv("TMPDIR");

    snprintf(buf, cap, "%s/posgate-%s-XXXXXX", base != NULL ? base : "/tmp", name);
    if (mkdtemp(buf) == NULL) {
        perror("mkdtemp");
        return 0;
    }
    return 1;
}

/* Flips one bit of a file in place (bit 0..7 of the byte at off): damage on disk. */
static inline void
test_flip_bit(const char *path, long off, unsigned bit)
{
    FILE *f = fopen(path, "r+b");
    int c = EOF;

    CHECK(f != NULL);
    if (f == NULL) {
        return;
    }
    CHECK(fseek(f, off, SEEK_SET) == 0 && (c = fgetc(f)) != EOF);
    CHECK(c != EOF && fseek(f, off, SEEK_SET) == 0 && fputc(c ^ (1 << bit), f) != EOF);
    CHECK(fclose(f) == 0);
}

#endif
