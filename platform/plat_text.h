/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Text that is text: a check that a byte string is well-formed UTF-8 (no overlong forms, no
 * surrogates, nothing past U+10FFFF) and holds no control character (C0, DEL, C1). Every
 * string a caller hands the agent (operator, override fields, names, identifiers) passes here
 * before it is stored, so the audit trail stays valid JSON text.
 */
#ifndef POSGATE_PLAT_TEXT_H
#define POSGATE_PLAT_TEXT_H

#include <stddef.h>

/* Allows '\n' (multi-line MRZ identifiers) besides printable text. */
#define PLAT_TEXT_ALLOW_NEWLINE 1u

/* Returns NULL when s[0..n) is valid text; otherwise what is wrong ("invalid UTF-8",
 * "a control character", "a NUL byte") with *bad_at set to the offending byte's offset. */
const char *plat_text_check(const char *s, size_t n, unsigned flags, size_t *bad_at);

#endif
