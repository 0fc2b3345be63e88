/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What the identifier files share (sync/feed only; not installed): ident.c parses, ident_tables.c
 * holds the code tables and computes the check characters, ident_synth.c builds synthetic
 * identifiers. Nothing here allocates or reads a clock.
 */
#ifndef POSGATE_IDENT_INTERNAL_H
#define POSGATE_IDENT_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "ident.h"
#include "plat_clock.h"

/* ---- characters (ASCII only) */

static inline int
is_digit(int c)
{
    return c >= '0' && c <= '9';
}

static inline int
is_upper(int c)
{
    return c >= 'A' && c <= 'Z';
}

static inline int
to_upper(int c)
{
    return (c >= 'a' && c <= 'z') ? c - 'a' + 'A' : c;
}

static inline int
is_space(int c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f';
}

/* Days since 1970-01-01 to civil date (plat_civil_from_days), in the int fields ident uses. */
static inline void
civil_from_days(int64_t z, int *y, int *m, int *d)
{
    int64_t yy;
    unsigned mm, dd;

    plat_civil_from_days(z, &yy, &mm, &dd);
    *y = (int)yy;
    *m = (int)mm;
    *d = (int)dd;
}

/* ---- ident_tables.c: code tables */

/* The canonical spelling of an ICAO 9303 issuer code (upper case, 1-3 letters), or NULL. */
const char *ident_icao_canonical(const char *code);
/* 1 when cc (two upper-case letters and a NUL) is an assigned ISO 3166-1 alpha-2 code. */
int ident_iso_alpha2_known(const char *cc);

/* ---- ident_tables.c: check characters */

/* GB 32100-2015: the 31-character alphabet (no I, O, S, V, Z). */
extern const char ident_uscc_alphabet[32];
/* The ISO 7064 MOD 11-2 check character (0-9 or X) of the 17 digits s[0..17) of a cn_rid. */
char ident_rid_check(const char *s);
/* The index of c in ident_uscc_alphabet, -1 when it is not in it. */
int ident_uscc_index(int c);
/* The GB 32100 check character of s[0..17), which must be in the alphabet. */
char ident_uscc_check(const char *s);
/* The ICAO 9303 7-3-1 check digit of the MRZ characters s[0..n). */
char ident_mrz_check(const char *s, size_t n);

#endif
