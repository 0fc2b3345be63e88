/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The lowercase-hex check and the JSON string writer that the collector's files share
 * (hub_text.h).
 */
#include "hub_text.h"

#include <string.h>

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
        if (*p == '"' || *p == '\\') {
            err = buf_printf(b, "\\%c", *p);
        } else if (*p < 0x20) {
            err = buf_printf(b, "\\u%04x", *p);
        } else {
            err = buf_append(b, p, 1);
        }
    }
    return err == POSGATE_OK ? buf_append(b, "\"", 1) : err;
}
