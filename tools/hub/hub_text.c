/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The lowercase-hex check and the JSON string writer that the collector's files share
 * (hub_text.h).
 */
#define _POSIX_C_SOURCE 200809L
#include "hub_text.h"

#include <string.h>

#include "plat_text.h"

bool
hub_lower_hex(const char *s, size_t n)
{
    if (strlen(s) != n) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) {
            return false;
        }
    }
    return true;
}

enum posgate_err
hub_json_str(struct buf *b, const char *s)
{
    enum posgate_err err = buf_append(b, "\"", 1);

    for (const unsigned char *p = (const unsigned char *)s; err == POSGATE_OK && *p != 0; p++) {
        size_t n = *p < 0x80 ? 1 : *p >= 0xc2 && *p <= 0xdf ? 2 : *p >= 0xe0 && *p <= 0xef ? 3
                                  : *p >= 0xf0 && *p <= 0xf4 ? 4 : 0;
        size_t bad;

        if (*p == '"' || *p == '\\') {
            err = buf_printf(b, "\\%c", *p);
        } else if (*p < 0x20) {
            err = buf_printf(b, "\\u%04x", *p);
        } else if (n == 1) {
            err = buf_append(b, p, 1);
        } else if (n > 0 && strnlen((const char *)p, n) == n &&
                   plat_text_check((const char *)p, n, 0, &bad) == NULL) {
            err = buf_append(b, p, n); /* one whole UTF-8 character, not a control one */
            p += n - 1;
        } else {
            /* text taken from a request may hold any byte: the answer stays valid JSON */
            err = buf_append_str(b, "\\ufffd");
        }
    }
    return err == POSGATE_OK ? buf_append(b, "\"", 1) : err;
}
