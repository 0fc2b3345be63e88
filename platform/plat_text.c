/* SPDX-License-Identifier: Apache-2.0 */
/* UTF-8 and control character checks, URL percent-encoding (plat_text.h). */
#include "plat_text.h"

#include <stdint.h>
#include <string.h>

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

/* 1 when byte c stands as it is under flags (plat_url_escape). */
static int
url_keeps(unsigned char c, unsigned flags)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
        c == '.' || c == '_' || c == '~') {
        return 1;
    }
    if (c == '%') {
        return (flags & PLAT_URL_KEEP_PERCENT) != 0;
    }
    return (flags & PLAT_URL_KEEP_PATH) != 0 && c != 0 && strchr("/!$&'()*+,;=:@", c) != NULL;
}

enum posgate_err
plat_url_escape(const void *in, size_t in_len, unsigned flags, char *out, size_t cap,
                size_t *out_len)
{
    static const char hex[] = "0123456789ABCDEF";
    const unsigned char *p = in;
    size_t o = 0;

    if (out_len != NULL) {
        *out_len = 0;
    }
    if ((out == NULL && cap > 0) || (in == NULL && in_len > 0)) {
        return POSGATE_ERR_INVALID;
    }
    for (size_t i = 0; i < in_len; i++) {
        size_t need = url_keeps(p[i], flags) ? 1 : 3;

        if (cap - o <= need) { /* room for these bytes and the NUL: o + need < cap */
            if (cap > 0) {
                out[0] = 0;
            }
            return POSGATE_ERR_TOOBIG;
        }
        if (need == 1) {
            out[o++] = (char)p[i];
        } else {
            out[o++] = '%';
            out[o++] = hex[p[i] >> 4];
            out[o++] = hex[p[i] & 15];
        }
    }
    if (o >= cap) {
        return POSGATE_ERR_TOOBIG; /* cap 0: not even the NUL */
    }
    out[o] = 0;
    if (out_len != NULL) {
        *out_len = o;
    }
    return POSGATE_OK;
}
