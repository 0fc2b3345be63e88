/* SPDX-License-Identifier: Apache-2.0 */
/* UTF-8 and control character checks (plat_text.h). */
#include "plat_text.h"

#include <stdint.h>

/* Length of the UTF-8 sequence at s (1..4) and its code point; 0 when it is malformed. */
static size_t
decode(const unsigned char *s, size_t n, uint32_t *cp)
{
    uint32_t c;
    size_t len;

    if (s[0] < 0x80) {
        *cp = s[0];
        return 1;
    }
    if (s[0] >= 0xC2 && s[0] <= 0xDF) {
        len = 2;
        c = s[0] & 0x1Fu;
    } else if (s[0] >= 0xE0 && s[0] <= 0xEF) {
        len = 3;
        c = s[0] & 0x0Fu;
    } else if (s[0] >= 0xF0 && s[0] <= 0xF4) {
        len = 4;
        c = s[0] & 0x07u;
    } else {
        return 0;
    }
    if (len > n) {
        return 0;
    }
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0u) != 0x80u) {
            return 0;
        }
        c = (c << 6) | (s[i] & 0x3Fu);
    }
    if ((len == 3 && c < 0x800) || (len == 4 && (c < 0x10000 || c > 0x10FFFF)) ||
        (c >= 0xD800 && c <= 0xDFFF)) {
        return 0;
    }
    *cp = c;
    return len;
}

const char *
plat_text_check(const char *s, size_t n, unsigned flags, size_t *bad_at)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0;

    while (i < n) {
        uint32_t cp = 0;
        size_t len = decode(u + i, n - i, &cp);

        if (len == 0) {
            *bad_at = i;
            return "invalid UTF-8";
        }
        if (cp == 0) {
            *bad_at = i;
            return "a NUL character";
        }
        if ((cp < 0x20 && !(cp == '\n' && (flags & PLAT_TEXT_ALLOW_NEWLINE))) || cp == 0x7F ||
            (cp >= 0x80 && cp <= 0x9F)) {
            *bad_at = i;
            return "a control character";
        }
        i += len;
    }
    return NULL;
}
