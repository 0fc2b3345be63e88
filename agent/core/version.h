/* SPDX-License-Identifier: Apache-2.0 */
/*
 * `--version` for every program: its own name and version, then the version of each library
 * it runs on, as reported at run time by the library itself (a program built against one
 * release and run with another shows the one it runs with). Each library's version comes from
 * the one module that includes it (crypto: mbedTLS, store: SQLite, fetch: libcurl, json_canon:
 * cJSON, ident: utf8proc); libmicrohttpd's comes from its own users as an extra line.
 *
 *   posgate 0.1.0
 *   mbedTLS 2.28.3
 *   SQLite 3.40.1
 *   ...
 */
#ifndef POSGATE_VERSION_H
#define POSGATE_VERSION_H

#include <stdio.h>

#define VERSION_MBEDTLS  (1u << 0)
#define VERSION_SQLITE   (1u << 1)
#define VERSION_CURL     (1u << 2)
#define VERSION_CJSON    (1u << 3)
#define VERSION_UTF8PROC (1u << 4)

/* The project's version, "MAJOR.MINOR.PATCH". */
const char *version_string(void);

/* True when argv[1] is "--version" (the option is accepted only first, before a command). */
int version_asked(int argc, char **argv);

/* Prints "PROG VERSION", then one "NAME VERSION" line per library in libs (VERSION_* bits),
 * then extra verbatim when not NULL (lines of libraries kept behind the caller's module). */
void version_print(FILE *out, const char *prog, unsigned libs, const char *extra);

#endif
