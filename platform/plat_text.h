/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Text that is text: a check that a byte string is well-formed UTF-8 (no overlong forms, no
 * surrogates, nothing past U+10FFFF) and holds no control character (C0, DEL, C1). Every
 * string a caller hands the agent (operator, override fields, names, identifiers) passes here
 * before it is stored, so the audit trail stays valid JSON text.
 *
 * And the one percent-encoder of URL paths and of names made from them (plat_url_escape).
 */
#ifndef POSGATE_PLAT_TEXT_H
#define POSGATE_PLAT_TEXT_H

#include <stddef.h>

#include "posgate_err.h"

/* Allows '\n' (multi-line MRZ identifiers) besides printable text. */
#define PLAT_TEXT_ALLOW_NEWLINE 1u

/* Returns NULL when s[0..n) is valid text; otherwise what is wrong ("invalid UTF-8",
 * "a control character", "a NUL byte") with *bad_at set to the offending byte's offset. */
const char *plat_text_check(const char *s, size_t n, unsigned flags, size_t *bad_at);

/* plat_url_escape flags. With none, only the unreserved bytes of RFC 3986 (A-Z a-z 0-9 - . _ ~)
 * stand as they are: the result is one path segment, or a file name ("lists/a" -> "lists%2Fa").
 * KEEP_PATH also keeps '/' and the other bytes a URL path may hold as they are (! $ & ' ( ) * +
 * , ; = : @); KEEP_PERCENT keeps '%', for input that is already escaped (role names). */
#define PLAT_URL_KEEP_PATH    1u
#define PLAT_URL_KEEP_PERCENT 2u

/*
 * Percent-encodes the in_len bytes at in (NUL bytes included: "%00"), every byte not kept by
 * flags as '%' and two upper-case hex digits, into out followed by a NUL. cap is the size of out.
 * *out_len (may be NULL) gets the length written, NUL not counted. TOOBIG when the result and its
 * NUL do not fit in cap (nothing partial: out is then "" when cap > 0). INVALID for a NULL out
 * with cap > 0, or a NULL in with in_len > 0.
 */
POSGATE_WUR enum posgate_err plat_url_escape(const void *in, size_t in_len, unsigned flags,
                                             char *out, size_t cap, size_t *out_len);

#endif
