/* SPDX-License-Identifier: Apache-2.0 */
/*
 * `--version` output (version.h): the project version compiled in by CMake and the run-time
 * versions of the libraries, each asked of the module that owns the library.
 */
#include "version.h"

#include <string.h>

#include "crypto.h"
#include "fetch.h"
#include "ident.h"
#include "json_canon.h"
#include "store.h"

#ifndef POSGATE_VERSION
#error "POSGATE_VERSION is set by agent/CMakeLists.txt"
#endif

const char *
version_string(void)
{
    return POSGATE_VERSION;
}

int
version_asked(int argc, char **argv)
{
    return argc >= 2 && strcmp(argv[1], "--version") == 0;
}

void
version_print(FILE *out, const char *prog, unsigned libs, const char *extra)
{
    fprintf(out, "%s %s\n", prog, POSGATE_VERSION);
    if (libs & VERSION_MBEDTLS) {
        fprintf(out, "mbedTLS %s\n", crypto_lib_version());
    }
    if (libs & VERSION_SQLITE) {
        fprintf(out, "SQLite %s\n", store_sqlite_version());
    }
    if (libs & VERSION_CURL) {
        fprintf(out, "libcurl %s\n", fetch_curl_version());
    }
    if (libs & VERSION_CJSON) {
        fprintf(out, "cJSON %s\n", json_cjson_version());
    }
    if (libs & VERSION_UTF8PROC) {
        fprintf(out, "utf8proc %s\n", ident_utf8proc_version());
    }
    if (extra != NULL) {
        fputs(extra, out);
    }
}
