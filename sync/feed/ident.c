/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Identifier normalisation and validation (see ident.h for the canonical forms). Each type has
 * one parser that folds the raw input to ASCII (or, for names, through utf8proc, which no other
 * module includes), checks length, alphabet, code tables, embedded dates and check digits, and
 * writes the canonical form into a caller-owned struct ident. Nothing here allocates or reads a
 * clock: the check path calls it for every identifier of every request. The code tables and the
 * check characters are in ident_tables.c, the synthesisers of test data in ident_synth.c.
 */
#include "ident.h"

#include <stdio.h>
#include <string.h>

#include <utf8proc.h>

#include "ident_internal.h"
#include "plat_mem.h"

static const char *const type_names[IDENT_TYPE_COUNT] = {
    "cn_rid", "cn_uscc", "passport", "mrz", "national_id", "name_dob",
};

/* ------------------------------------------------------------------------------------------ */
/* Messages */

/* A printable description of one code point: 'A', space, U+00E9. */
struct chardesc {
    char s[16];
};

static struct chardesc
describe(long c)
{
    struct chardesc d;

    if (c == ' ') {
        snprintf(d.s, sizeof(d.s), "a space");
    } else if (c > 0x20 && c < 0x7F && c != '\'') {
        snprintf(d.s, sizeof(d.s), "'%c'", (char)c);
    } else {
        snprintf(d.s, sizeof(d.s), "U+%04lX", (unsigned long)c);
    }
    return d;
}

/* An excerpt of untrusted text safe to print: printable ASCII, '?' for anything else. */
struct excerpt {
    char s[40];
};

static struct excerpt
make_excerpt(const char *p, size_t n)
{
    struct excerpt e;
    size_t i, k = 0;

    for (i = 0; i < n && k < 32; i++) {
        unsigned char c = (unsigned char)p[i];
        e.s[k++] = (c >= 0x20 && c < 0x7F && c != '"') ? (char)c : '?';
    }
    if (i < n) {
        memcpy(e.s + k, "...", 3);
        k += 3;
    }
    e.s[k] = '\0';
    return e;
}

/* ------------------------------------------------------------------------------------------ */
/* Characters */

/* Decodes one code point at s[*pos], *pos < n; -1 on invalid UTF-8 (overlong forms,
 * surrogates and values past U+10FFFF included). */
static long
utf8_next(const unsigned char *s, size_t n, size_t *pos)
{
    size_t i = *pos, need, k;
    unsigned long c = s[i], min;

    if (c < 0x80) {
        *pos = i + 1;
        return (long)c;
    }
    if (c >= 0xC2 && c <= 0xDF) {
        need = 1;
        c &= 0x1F;
        min = 0x80;
    } else if (c >= 0xE0 && c <= 0xEF) {
        need = 2;
        c &= 0x0F;
        min = 0x800;
    } else if (c >= 0xF0 && c <= 0xF4) {
        need = 3;
        c &= 0x07;
        min = 0x10000;
    } else {
        return -1;
    }
    if (n - i - 1 < need) {
        return -1;
    }
    for (k = 1; k <= need; k++) {
        unsigned long b = s[i + k];
        if ((b & 0xC0) != 0x80) {
            return -1;
        }
        c = (c << 6) | (b & 0x3F);
    }
    if (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF)) {
        return -1;
    }
    *pos = i + 1 + need;
    return (long)c;
}

/* Appends code point c as UTF-8; -1 when it does not fit in cap bytes. */
static int
utf8_put(long c, char *out, size_t cap, size_t *len)
{
    unsigned long u = (unsigned long)c;
    unsigned char b[4];
    size_t n;

    if (u < 0x80) {
        b[0] = (unsigned char)u;
        n = 1;
    } else if (u < 0x800) {
        b[0] = (unsigned char)(0xC0 | (u >> 6));
        b[1] = (unsigned char)(0x80 | (u & 0x3F));
        n = 2;
    } else if (u < 0x10000) {
        b[0] = (unsigned char)(0xE0 | (u >> 12));
        b[1] = (unsigned char)(0x80 | ((u >> 6) & 0x3F));
        b[2] = (unsigned char)(0x80 | (u & 0x3F));
        n = 3;
    } else {
        b[0] = (unsigned char)(0xF0 | (u >> 18));
        b[1] = (unsigned char)(0x80 | ((u >> 12) & 0x3F));
        b[2] = (unsigned char)(0x80 | ((u >> 6) & 0x3F));
        b[3] = (unsigned char)(0x80 | (u & 0x3F));
        n = 4;
    }
    if (cap - *len < n) {
        return -1;
    }
    memcpy(out + *len, b, n);
    *len += n;
    return 0;
}

/* Full-width ASCII (U+FF01..U+FF5E) and the ideographic space fold to ASCII. */
static long
fold_width(long c)
{
    if (c >= 0xFF01 && c <= 0xFF5E) {
        return c - 0xFEE0;
    }
    if (c == 0x3000) {
        return ' ';
    }
    return c;
}

/* Folds in[0..len) to ASCII in out (at least len + 1 bytes), NUL-terminated. Anything outside
 * ASCII after full-width folding is refused. */
static enum posgate_err
fold_ascii(const char *tn, const char *in, size_t len, char *out, size_t *outlen, char *em,
           size_t ec)
{
    const unsigned char *s = (const unsigned char *)in;
    size_t pos = 0, n = 0, index = 0;

    while (pos < len) {
        size_t at = pos;
        long c = utf8_next(s, len, &pos);

        index++;
        if (c < 0) {
            plat_msgf(em, ec, "%s: invalid UTF-8 at byte %zu, expected UTF-8 text", tn, at + 1);
            return POSGATE_ERR_INVALID;
        }
        c = fold_width(c);
        if (c >= 0x80) {
            plat_msgf(em, ec,
                      "%s: character %zu is %s, expected ASCII letters, digits or their "
                      "full-width forms",
                      tn, index, describe(c).s);
            return POSGATE_ERR_INVALID;
        }
        out[n++] = (char)c;
    }
    out[n] = '\0';
    *outlen = n;
    return POSGATE_OK;
}

/* Trims ASCII white space on both sides of s[0..*n); returns the new start. */
static const char *
trim(const char *s, size_t *n)
{
    size_t a = 0, b = *n;

    while (a < b && is_space((unsigned char)s[a])) {
        a++;
    }
    while (b > a && is_space((unsigned char)s[b - 1])) {
        b--;
    }
    *n = b - a;
    return s + a;
}

/* ------------------------------------------------------------------------------------------ */
/* Dates */

static int
days_in_month(int y, int m)
{
    static const int dm[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;

    return (m == 2 && leap) ? 29 : dm[m - 1];
}

static int
digits_value(const char *s, size_t n)
{
    int v = 0;

    for (size_t i = 0; i < n; i++) {
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

/* Validates a calendar date in the accepted birth range; 0 when valid, else writes why. */
static int
check_date(const char *tn, const char *what, int y, int m, int d, char *em, size_t ec)
{
    if (y < IDENT_YEAR_MIN || y > IDENT_YEAR_MAX) {
        plat_msgf(em, ec, "%s: %s has year %04d, expected %d-%d", tn, what, y, IDENT_YEAR_MIN,
                  IDENT_YEAR_MAX);
        return -1;
    }
    if (m < 1 || m > 12) {
        plat_msgf(em, ec, "%s: %s has month %02d, expected 01-12", tn, what, m);
        return -1;
    }
    if (d < 1 || d > days_in_month(y, m)) {
        plat_msgf(em, ec, "%s: %s has day %02d, expected 01-%02d for %04d-%02d", tn, what, d,
                  days_in_month(y, m), y, m);
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* Types */

static enum posgate_err
parse_cn_rid(const char *v, size_t len, struct ident *id, char *em, size_t ec)
{
    static const char tn[] = "cn_rid";
    char a[IDENT_VALUE_MAX + 1];
    const char *s;
    size_t n;
    int y, m, d;
    char want, got;
    enum posgate_err err;

    err = fold_ascii(tn, v, len, a, &n, em, ec);
    if (err != POSGATE_OK) {
        return err;
    }
    s = trim(a, &n);
    if (n != 18) {
        plat_msgf(em, ec, "%s: expected 18 characters, found %zu", tn, n);
        return POSGATE_ERR_INVALID;
    }
    for (size_t i = 0; i < 17; i++) {
        if (!is_digit(s[i])) {
            plat_msgf(em, ec, "%s: character %zu is %s, expected a digit", tn, i + 1,
                      describe(s[i]).s);
            return POSGATE_ERR_INVALID;
        }
    }
    got = (char)to_upper(s[17]);
    if (!is_digit(got) && got != 'X') {
        plat_msgf(em, ec, "%s: character 18 is %s, expected a check character 0-9 or X", tn,
                  describe(s[17]).s);
        return POSGATE_ERR_INVALID;
    }
    if (memcmp(s, "000000", 6) == 0) {
        plat_msgf(em, ec, "%s: region code (characters 1-6) is 000000, expected an assigned code",
                  tn);
        return POSGATE_ERR_INVALID;
    }
    y = digits_value(s + 6, 4);
    m = digits_value(s + 10, 2);
    d = digits_value(s + 12, 2);
    if (check_date(tn, "birth date (characters 7-14)", y, m, d, em, ec) != 0) {
        return POSGATE_ERR_INVALID;
    }
    want = ident_rid_check(s);
    if (got != want) {
        plat_msgf(em, ec, "%s: check character is %c, expected %c (ISO 7064 MOD 11-2)", tn, got,
                  want);
        return POSGATE_ERR_INVALID;
    }
    memcpy(id->norm, s, 17);
    id->norm[17] = got;
    id->norm[18] = '\0';
    id->norm_len = 18;
    id->birth_days = plat_days_from_civil(y, (unsigned)m, (unsigned)d);
    return POSGATE_OK;
}

static enum posgate_err
parse_cn_uscc(const char *v, size_t len, struct ident *id, char *em, size_t ec)
{
    static const char tn[] = "cn_uscc";
    char a[IDENT_VALUE_MAX + 1], u[18];
    const char *s;
    size_t n;
    char want;
    enum posgate_err err;

    err = fold_ascii(tn, v, len, a, &n, em, ec);
    if (err != POSGATE_OK) {
        return err;
    }
    s = trim(a, &n);
    if (n != 18) {
        plat_msgf(em, ec, "%s: expected 18 characters, found %zu", tn, n);
        return POSGATE_ERR_INVALID;
    }
    for (size_t i = 0; i < 18; i++) {
        u[i] = (char)to_upper(s[i]);
        if (ident_uscc_index(u[i]) < 0) {
            plat_msgf(em, ec,
                      "%s: character %zu is %s, expected 0-9 or A-H J-N P-R T U W-Y "
                      "(GB 32100 alphabet, no I O S V Z)",
                      tn, i + 1, describe(s[i]).s);
            return POSGATE_ERR_INVALID;
        }
    }
    want = ident_uscc_check(u);
    if (u[17] != want) {
        plat_msgf(em, ec, "%s: check character is %c, expected %c (GB 32100)", tn, u[17], want);
        return POSGATE_ERR_INVALID;
    }
    memcpy(id->norm, u, 18);
    id->norm[18] = '\0';
    id->norm_len = 18;
    return POSGATE_OK;
}

/* Writes "ISSUER:NUMBER" into id from an issuer (3 letters, or D padded with '<'; one of
 * icao_codes, spelt canonical) and a number (fillers and spaces dropped, at most 9 of A-Z 0-9). */
static enum posgate_err
passport_build(const char *tn, const char *iss, size_t isslen, const char *num, size_t numlen,
               struct ident *id, char *em, size_t ec)
{
    size_t k, count = 0;
    char code[4];
    const char *canon;

    iss = trim(iss, &isslen);
    while (isslen > 0 && iss[isslen - 1] == '<') {
        isslen--;
    }
    if (isslen != 3 && !(isslen == 1 && to_upper(iss[0]) == 'D')) {
        plat_msgf(em, ec,
                  "%s: issuer has %zu characters, expected a three-letter ICAO 9303 code "
                  "(or D, D<<)",
                  tn, isslen);
        return POSGATE_ERR_INVALID;
    }
    for (size_t i = 0; i < isslen; i++) {
        int c = to_upper(iss[i]);
        if (!is_upper(c)) {
            plat_msgf(em, ec, "%s: issuer character %zu is %s, expected a letter A-Z (ICAO 9303)",
                      tn, i + 1, describe(iss[i]).s);
            return POSGATE_ERR_INVALID;
        }
        code[i] = (char)c;
    }
    code[isslen] = '\0';
    canon = ident_icao_canonical(code);
    if (canon == NULL) {
        plat_msgf(em, ec,
                  "%s: issuer %s is not an ICAO 9303 code, expected an ISO 3166-1 alpha-3 code "
                  "or an ICAO code (D, GBD, UNO, XXA, ...)",
                  tn, code);
        return POSGATE_ERR_INVALID;
    }
    k = strlen(canon);
    memcpy(id->norm, canon, k);
    id->norm[k++] = ':';
    for (size_t i = 0; i < numlen; i++) {
        int c = to_upper(num[i]);
        if (c == '<' || is_space(c)) {
            continue;
        }
        if (!is_upper(c) && !is_digit(c)) {
            plat_msgf(em, ec, "%s: number character %zu is %s, expected A-Z, 0-9 or the filler <",
                      tn, i + 1, describe(num[i]).s);
            return POSGATE_ERR_INVALID;
        }
        count++;
        if (count <= 9) {
            id->norm[k++] = (char)c;
        }
    }
    if (count == 0) {
        plat_msgf(em, ec, "%s: number is empty, expected 1-9 characters A-Z 0-9", tn);
        return POSGATE_ERR_INVALID;
    }
    if (count > 9) {
        plat_msgf(em, ec, "%s: number has %zu characters, expected at most 9 (ICAO 9303)", tn,
                  count);
        return POSGATE_ERR_INVALID;
    }
    id->norm[k] = '\0';
    id->norm_len = k;
    id->type = IDENT_PASSPORT;
    return POSGATE_OK;
}

static enum posgate_err
parse_passport(const char *v, size_t len, struct ident *id, char *em, size_t ec)
{
    static const char tn[] = "passport";
    char a[IDENT_VALUE_MAX + 1];
    const char *s, *colon;
    size_t n;
    enum posgate_err err;

    err = fold_ascii(tn, v, len, a, &n, em, ec);
    if (err != POSGATE_OK) {
        return err;
    }
    s = trim(a, &n);
    colon = memchr(s, ':', n);
    if (colon == NULL) {
        plat_msgf(em, ec, "%s: expected ISSUER:NUMBER, found no ':'", tn);
        return POSGATE_ERR_INVALID;
    }
    return passport_build(tn, s, (size_t)(colon - s), colon + 1, n - (size_t)(colon - s) - 1, id,
                          em, ec);
}

struct mrz_field {
    const char *name;
    size_t start, len, check; /* 0-based, line 2 */
};

static const struct mrz_field mrz_fields[4] = {
    {"document number", 0, 9, 9},
    {"birth date", 13, 6, 19},
    {"expiry date", 21, 6, 27},
    {"optional data", 28, 14, 42},
};

/* Verifies the check digit at l2[pos] against the computed one. */
static enum posgate_err
mrz_verify(const char *what, const char *l2, size_t pos, char want, int filler_ok, char *em,
           size_t ec)
{
    char got = l2[pos];

    if (got == '<' && filler_ok) {
        got = '0';
    }
    if (!is_digit(got)) {
        plat_msgf(em, ec, "mrz: %s check digit (line 2 character %zu) is %s, expected a digit",
                  what, pos + 1, describe(l2[pos]).s);
        return POSGATE_ERR_INVALID;
    }
    if (got != want) {
        plat_msgf(em, ec, "mrz: %s check digit is %c, expected %c (ICAO 9303 7-3-1)", what, got,
                  want);
        return POSGATE_ERR_INVALID;
    }
    return POSGATE_OK;
}

static enum posgate_err
parse_mrz(const char *v, size_t len, struct ident *id, char *em, size_t ec)
{
    static const char tn[] = "mrz";
    char a[IDENT_VALUE_MAX + 1], l1[44], l2[44], comp[39];
    const char *s, *sep, *line[2];
    size_t n, ln[2], k;
    enum posgate_err err;

    err = fold_ascii(tn, v, len, a, &n, em, ec);
    if (err != POSGATE_OK) {
        return err;
    }
    s = trim(a, &n);
    sep = NULL;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '\n' || s[i] == '|') {
            sep = s + i;
            break;
        }
    }
    if (sep == NULL) {
        plat_msgf(em, ec,
                  "%s: expected two 44-character lines joined by a newline or '|', found "
                  "one line",
                  tn);
        return POSGATE_ERR_INVALID;
    }
    line[0] = s;
    ln[0] = (size_t)(sep - s);
    line[1] = sep + 1;
    ln[1] = n - ln[0] - 1;
    for (int L = 0; L < 2; L++) {
        line[L] = trim(line[L], &ln[L]);
        if (memchr(line[L], '\n', ln[L]) != NULL || memchr(line[L], '|', ln[L]) != NULL) {
            plat_msgf(em, ec, "%s: found more than two lines, expected two (TD3)", tn);
            return POSGATE_ERR_INVALID;
        }
        if (ln[L] != 44) {
            plat_msgf(em, ec, "%s: line %d has %zu characters, expected 44 (TD3)", tn, L + 1,
                      ln[L]);
            return POSGATE_ERR_INVALID;
        }
        for (size_t i = 0; i < 44; i++) {
            int c = to_upper(line[L][i]);
            if (!is_upper(c) && !is_digit(c) && c != '<') {
                plat_msgf(em, ec, "%s: line %d character %zu is %s, expected A-Z, 0-9 or <", tn,
                          L + 1, i + 1, describe(line[L][i]).s);
                return POSGATE_ERR_INVALID;
            }
            (L == 0 ? l1 : l2)[i] = (char)c;
        }
    }
    if (l1[0] != 'P') {
        plat_msgf(em, ec, "%s: line 1 starts with %s, expected P (TD3 passport)", tn,
                  describe(l1[0]).s);
        return POSGATE_ERR_INVALID;
    }
    if (strchr("MFX<", l2[20]) == NULL) {
        plat_msgf(em, ec, "%s: sex (line 2 character 21) is %s, expected M, F, X or <", tn,
                  describe(l2[20]).s);
        return POSGATE_ERR_INVALID;
    }
    for (int f = 0; f < 4; f++) {
        const struct mrz_field *fd = &mrz_fields[f];
        int filler_ok = 0;

        if (f == 3) {
            /* ICAO 9303 Part 4: the optional-data check digit may be '<' when the field is
             * all fillers. */
            filler_ok = 1;
            for (size_t i = 0; i < fd->len; i++) {
                filler_ok &= l2[fd->start + i] == '<';
            }
        }
        err = mrz_verify(fd->name, l2, fd->check, ident_mrz_check(l2 + fd->start, fd->len),
                         filler_ok, em, ec);
        if (err != POSGATE_OK) {
            return err;
        }
    }
    k = 0;
    memcpy(comp + k, l2, 10);
    k += 10;
    memcpy(comp + k, l2 + 13, 7);
    k += 7;
    memcpy(comp + k, l2 + 21, 22);
    k += 22;
    err = mrz_verify("composite", l2, 43, ident_mrz_check(comp, k), 0, em, ec);
    if (err != POSGATE_OK) {
        return err;
    }
    return passport_build(tn, l1 + 2, 3, l2, 9, id, em, ec);
}

static enum posgate_err
parse_national_id(const char *v, size_t len, struct ident *id, char *em, size_t ec)
{
    static const char tn[] = "national_id";
    char a[IDENT_VALUE_MAX + 1];
    const char *s, *colon, *cc;
    size_t n, ccn, k = 0, count = 0;
    enum posgate_err err;

    err = fold_ascii(tn, v, len, a, &n, em, ec);
    if (err != POSGATE_OK) {
        return err;
    }
    s = trim(a, &n);
    colon = memchr(s, ':', n);
    if (colon == NULL) {
        plat_msgf(em, ec, "%s: expected CC:VALUE, found no ':'", tn);
        return POSGATE_ERR_INVALID;
    }
    ccn = (size_t)(colon - s);
    cc = trim(s, &ccn);
    if (ccn != 2) {
        plat_msgf(em, ec, "%s: country code has %zu characters, expected 2 (ISO 3166 alpha-2)", tn,
                  ccn);
        return POSGATE_ERR_INVALID;
    }
    for (size_t i = 0; i < 2; i++) {
        int c = to_upper(cc[i]);
        if (!is_upper(c)) {
            plat_msgf(em, ec, "%s: country code character %zu is %s, expected a letter A-Z", tn,
                      i + 1, describe(cc[i]).s);
            return POSGATE_ERR_INVALID;
        }
        id->norm[k++] = (char)c;
    }
    id->norm[k] = '\0';
    if (!ident_iso_alpha2_known(id->norm)) {
        plat_msgf(em, ec,
                  "%s: country code %s is not assigned in ISO 3166-1 alpha-2, expected "
                  "an assigned code such as FR or DE",
                  tn, id->norm);
        return POSGATE_ERR_INVALID;
    }
    if (strcmp(id->norm, "CN") == 0) {
        /* A Chinese national id is a resident identity number: one document, one key, so
         * national_id:CN:X is cn_rid:X, with cn_rid's validation. */
        id->type = IDENT_CN_RID;
        return parse_cn_rid(colon + 1, n - (size_t)(colon - s) - 1, id, em, ec);
    }
    id->norm[k++] = ':';
    for (size_t i = (size_t)(colon - s) + 1; i < n; i++) {
        int c = to_upper(s[i]);
        if (is_space(c) || c == '-' || c == '.') {
            continue;
        }
        if (!is_upper(c) && !is_digit(c)) {
            plat_msgf(em, ec,
                      "%s: value character %zu is %s, expected A-Z or 0-9 (spaces, '-' "
                      "and '.' are ignored)",
                      tn, i - (size_t)(colon - s), describe(s[i]).s);
            return POSGATE_ERR_INVALID;
        }
        count++;
        if (count <= 32) {
            id->norm[k++] = (char)c;
        }
    }
    if (count == 0) {
        plat_msgf(em, ec, "%s: value is empty, expected 1-32 characters A-Z 0-9", tn);
        return POSGATE_ERR_INVALID;
    }
    if (count > 32) {
        plat_msgf(em, ec, "%s: value has %zu characters, expected at most 32", tn, count);
        return POSGATE_ERR_INVALID;
    }
    id->norm[k] = '\0';
    id->norm_len = k;
    return POSGATE_OK;
}

/* Latin letters Unicode gives no decomposition, after case folding, to the base letters a
 * clerk's keyboard has (Łukasz is typed Lukasz); every other accent is a combining mark that
 * normalisation strips. */
static const char *
latin_base(utf8proc_int32_t c)
{
    switch (c) {
    case 0x00E6: /* æ */
        return "ae";
    case 0x00F0: /* ð */
    case 0x0111: /* đ */
        return "d";
    case 0x00F8: /* ø */
        return "o";
    case 0x00FE: /* þ */
        return "th";
    case 0x0127: /* ħ */
        return "h";
    case 0x0131: /* dotless i */
        return "i";
    case 0x0138: /* kra */
        return "k";
    case 0x0142: /* ł */
        return "l";
    case 0x0153: /* œ */
        return "oe";
    case 0x0167: /* ŧ */
        return "t";
    default:
        return NULL;
    }
}

/* Han, kana, Hangul and Bopomofo: scripts written without spaces between the parts of a name,
 * so "张 伟" and "张伟" are one name. */
static int
is_cjk(long c)
{
    return (c >= 0x1100 && c <= 0x11FF) || (c >= 0x2E80 && c <= 0x2FDF) ||
           (c >= 0x3005 && c <= 0x3007) || (c >= 0x3021 && c <= 0x3029) ||
           (c >= 0x3031 && c <= 0x303C) || (c >= 0x3040 && c <= 0x31FF) ||
           (c >= 0x3400 && c <= 0x4DBF) || (c >= 0x4E00 && c <= 0x9FFF) ||
           (c >= 0xA960 && c <= 0xA97F) || (c >= 0xAC00 && c <= 0xD7FF) ||
           (c >= 0xF900 && c <= 0xFAFF) || (c >= 0xFF66 && c <= 0xFF9F) ||
           (c >= 0x1B000 && c <= 0x1B16F) || (c >= 0x20000 && c <= 0x3FFFF);
}

/* White space, punctuation and modifier symbols (the spacing accents) separate name parts. */
static int
is_name_separator(utf8proc_int32_t c)
{
    switch (utf8proc_category(c)) {
    case UTF8PROC_CATEGORY_ZS:
    case UTF8PROC_CATEGORY_ZL:
    case UTF8PROC_CATEGORY_ZP:
    case UTF8PROC_CATEGORY_PC:
    case UTF8PROC_CATEGORY_PD:
    case UTF8PROC_CATEGORY_PS:
    case UTF8PROC_CATEGORY_PE:
    case UTF8PROC_CATEGORY_PI:
    case UTF8PROC_CATEGORY_PF:
    case UTF8PROC_CATEGORY_PO:
    case UTF8PROC_CATEGORY_SK:
        return 1;
    case UTF8PROC_CATEGORY_CN:
    case UTF8PROC_CATEGORY_LU:
    case UTF8PROC_CATEGORY_LL:
    case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM:
    case UTF8PROC_CATEGORY_LO:
    case UTF8PROC_CATEGORY_MN:
    case UTF8PROC_CATEGORY_MC:
    case UTF8PROC_CATEGORY_ME:
    case UTF8PROC_CATEGORY_ND:
    case UTF8PROC_CATEGORY_NL:
    case UTF8PROC_CATEGORY_NO:
    case UTF8PROC_CATEGORY_SM:
    case UTF8PROC_CATEGORY_SC:
    case UTF8PROC_CATEGORY_SO:
    case UTF8PROC_CATEGORY_CC:
    case UTF8PROC_CATEGORY_CF:
    case UTF8PROC_CATEGORY_CS:
    case UTF8PROC_CATEGORY_CO:
        break;
    }
    return c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

/* One part of a name in a token buffer. */
struct name_token {
    size_t off, len;
};

#define NAME_TOKENS_MAX (IDENT_NAME_MAX / 2 + 1) /* parts of one byte and a space each */

/* Splits s[0..n) (parts joined by single spaces) into tokens written to buf without the
 * spaces, except that a space between two CJK characters is dropped and the parts joined.
 * Returns the token count. buf holds at least n bytes. */
static size_t
name_split(const char *s, size_t n, char *buf, struct name_token *tok)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t pos = 0, k = 0, nt = 0;
    long prev = -1;
    int gap = 0;

    while (pos < n) {
        size_t at = pos;
        long c = utf8_next(u, n, &pos);

        if (c == ' ') {
            gap = 1;
            continue;
        }
        if (nt == 0 || (gap && !(is_cjk(prev) && is_cjk(c)))) {
            tok[nt].off = k;
            tok[nt].len = 0;
            nt++;
        }
        gap = 0;
        memcpy(buf + k, s + at, pos - at);
        k += pos - at;
        tok[nt - 1].len = k - tok[nt - 1].off;
        prev = c;
    }
    return nt;
}

static int
token_cmp(const char *buf, const struct name_token *a, const struct name_token *b)
{
    size_t m = a->len < b->len ? a->len : b->len;
    int c = memcmp(buf + a->off, buf + b->off, m);

    if (c != 0) {
        return c;
    }
    return (a->len > b->len) - (a->len < b->len);
}

/* Rewrites s[0..*n) as its parts sorted bytewise, duplicates dropped, joined by spaces, until
 * that spelling splits into the same parts again (sorting can bring two CJK parts side by side,
 * which then join): the result is a set, and folding it again gives it back. */
static void
name_sort(char *s, size_t *n)
{
    char buf[IDENT_NAME_MAX], joined[IDENT_NAME_MAX];
    struct name_token tok[NAME_TOKENS_MAX];

    for (;;) {
        size_t nt = name_split(s, *n, buf, tok), k = 0, kept = 0;

        for (size_t i = 1; i < nt; i++) {
            struct name_token t = tok[i];
            size_t j = i;

            while (j > 0 && token_cmp(buf, &tok[j - 1], &t) > 0) {
                tok[j] = tok[j - 1];
                j--;
            }
            tok[j] = t;
        }
        for (size_t i = 0; i < nt; i++) {
            if (kept > 0 && token_cmp(buf, &tok[kept - 1], &tok[i]) == 0) {
                continue;
            }
            tok[kept++] = tok[i];
        }
        for (size_t i = 0; i < kept; i++) {
            if (i > 0) {
                joined[k++] = ' ';
            }
            memcpy(joined + k, buf + tok[i].off, tok[i].len);
            k += tok[i].len;
        }
        if (k == *n && memcmp(joined, s, k) == 0) {
            return;
        }
        memcpy(s, joined, k);
        *n = k;
    }
}

#define NAME_CODEPOINTS_MAX IDENT_VALUE_MAX /* a name's code points during normalisation */

/* Folds a name (see ident.h): NFKC with full case folding and combining marks stripped
 * (utf8proc), the few Latin letters without a decomposition to their base letters, white space
 * and punctuation as part separators (none between CJK characters), then the parts as a sorted
 * set. out holds IDENT_NAME_MAX bytes. */
static enum posgate_err
fold_name(const char *in, size_t len, char *out, size_t *outlen, char *em, size_t ec)
{
    static const char tn[] = "name_dob";
    const utf8proc_option_t opts = UTF8PROC_STABLE | UTF8PROC_COMPAT | UTF8PROC_COMPOSE |
                                   UTF8PROC_CASEFOLD | UTF8PROC_STRIPMARK | UTF8PROC_IGNORE;
    const unsigned char *s = (const unsigned char *)in;
    utf8proc_int32_t cp[NAME_CODEPOINTS_MAX];
    utf8proc_ssize_t ncp;
    size_t pos = 0, n = 0, index = 0;
    int gap = 0;

    while (pos < len) {
        size_t at = pos;
        long c = utf8_next(s, len, &pos);

        index++;
        if (c < 0) {
            plat_msgf(em, ec, "%s: invalid UTF-8 at byte %zu of the name, expected UTF-8 text", tn,
                      at + 1);
            return POSGATE_ERR_INVALID;
        }
        c = fold_width(c);
        if (((c < 0x20 || c == 0x7F) && !is_space((int)c)) || (c >= 0x80 && c < 0xA0) || c == '|') {
            plat_msgf(em, ec, "%s: name character %zu is %s, expected a letter", tn, index,
                      describe(c).s);
            return POSGATE_ERR_INVALID;
        }
    }
    ncp = utf8proc_decompose(s, (utf8proc_ssize_t)len, cp, NAME_CODEPOINTS_MAX, opts);
    if (ncp > NAME_CODEPOINTS_MAX) {
        goto toolong;
    }
    if (ncp >= 0) {
        ncp = utf8proc_normalize_utf32(cp, ncp, opts);
    }
    if (ncp < 0) {
        plat_msgf(em, ec, "%s: name cannot be normalised (%s), expected UTF-8 text", tn,
                  utf8proc_errmsg(ncp));
        return POSGATE_ERR_INVALID;
    }
    for (utf8proc_ssize_t i = 0; i < ncp; i++) {
        utf8proc_int32_t c = cp[i];
        const char *base;

        if (is_name_separator(c)) {
            gap = n > 0;
            continue;
        }
        if (gap) {
            if (n >= IDENT_NAME_MAX) {
                goto toolong;
            }
            out[n++] = ' ';
            gap = 0;
        }
        base = latin_base(c);
        if (base != NULL) {
            size_t bl = strlen(base);

            if (IDENT_NAME_MAX - n < bl) {
                goto toolong;
            }
            memcpy(out + n, base, bl);
            n += bl;
        } else if (utf8_put(c, out, IDENT_NAME_MAX, &n) != 0) {
            goto toolong;
        }
    }
    if (n == 0) {
        plat_msgf(em, ec, "%s: name is empty, expected at least one letter", tn);
        return POSGATE_ERR_INVALID;
    }
    name_sort(out, &n);
    *outlen = n;
    return POSGATE_OK;
toolong:
    plat_msgf(em, ec, "%s: name is longer than %d bytes after folding", tn, IDENT_NAME_MAX);
    return POSGATE_ERR_INVALID;
}

/* Builds "name|YYYY-MM-DD" from a raw name and a raw date. */
static enum posgate_err
name_dob_build(const char *name, size_t namelen, const char *date, size_t datelen, struct ident *id,
               char *em, size_t ec)
{
    static const char tn[] = "name_dob";
    char a[IDENT_VALUE_MAX + 1];
    const char *s;
    size_t n, k;
    int y, m, d;
    enum posgate_err err;

    err = fold_name(name, namelen, id->norm, &k, em, ec);
    if (err != POSGATE_OK) {
        return err;
    }
    err = fold_ascii(tn, date, datelen, a, &n, em, ec);
    if (err != POSGATE_OK) {
        return err;
    }
    s = trim(a, &n);
    if (n != 10 || s[4] != '-' || s[7] != '-') {
        plat_msgf(em, ec, "%s: birth date \"%s\" is not in the form YYYY-MM-DD", tn,
                  make_excerpt(s, n).s);
        return POSGATE_ERR_INVALID;
    }
    for (size_t i = 0; i < 10; i++) {
        if (i != 4 && i != 7 && !is_digit(s[i])) {
            plat_msgf(em, ec, "%s: birth date character %zu is %s, expected a digit (YYYY-MM-DD)",
                      tn, i + 1, describe(s[i]).s);
            return POSGATE_ERR_INVALID;
        }
    }
    y = digits_value(s, 4);
    m = digits_value(s + 5, 2);
    d = digits_value(s + 8, 2);
    if (check_date(tn, "birth date", y, m, d, em, ec) != 0) {
        return POSGATE_ERR_INVALID;
    }
    id->norm[k++] = '|';
    memcpy(id->norm + k, s, 10);
    k += 10;
    id->norm[k] = '\0';
    id->norm_len = k;
    id->birth_days = plat_days_from_civil(y, (unsigned)m, (unsigned)d);
    return POSGATE_OK;
}

static enum posgate_err
parse_name_dob(const char *v, size_t len, struct ident *id, char *em, size_t ec)
{
    const char *bar = NULL;

    for (size_t i = len; i > 0; i--) {
        if (v[i - 1] == '|') {
            bar = v + i - 1;
            break;
        }
    }
    if (bar == NULL) {
        plat_msgf(em, ec, "name_dob: expected NAME|YYYY-MM-DD, found no '|'");
        return POSGATE_ERR_INVALID;
    }
    return name_dob_build(v, (size_t)(bar - v), bar + 1, len - (size_t)(bar - v) - 1, id, em, ec);
}

/* ------------------------------------------------------------------------------------------ */
/* Public parsing */

const char *
ident_type_name(enum ident_type t)
{
    if ((int)t < 0 || (int)t >= IDENT_TYPE_COUNT) {
        return "unknown";
    }
    return type_names[t];
}

int
ident_type_from_name_n(const char *name, size_t len, enum ident_type *out)
{
    if (name == NULL || out == NULL) {
        return -1;
    }
    for (int t = 0; t < IDENT_TYPE_COUNT; t++) {
        const char *tn = type_names[t];
        size_t i;

        if (strlen(tn) != len) {
            continue;
        }
        for (i = 0; i < len; i++) {
            int c = (unsigned char)name[i];
            if (c >= 'A' && c <= 'Z') {
                c = c - 'A' + 'a';
            }
            if (c != tn[i]) {
                break;
            }
        }
        if (i == len) {
            *out = (enum ident_type)t;
            return 0;
        }
    }
    return -1;
}

int
ident_type_from_name(const char *name, enum ident_type *out)
{
    if (name == NULL) {
        return -1;
    }
    return ident_type_from_name_n(name, strlen(name), out);
}

static enum posgate_err
parse_typed(enum ident_type t, const char *value, size_t len, struct ident *out, char *em,
            size_t ec)
{
    const char *tn = ident_type_name(t);
    struct ident id;
    const char *nul;
    enum posgate_err err = POSGATE_ERR_INVALID;

    if (out == NULL) {
        plat_msgf(em, ec, "%s: no place for the result (out is NULL)", tn);
        return POSGATE_ERR_INVALID;
    }
    if (value == NULL) {
        plat_msgf(em, ec, "%s: value is missing", tn);
        return POSGATE_ERR_INVALID;
    }
    if (len > IDENT_VALUE_MAX) {
        plat_msgf(em, ec, "%s: value is %zu bytes, expected at most %d", tn, len, IDENT_VALUE_MAX);
        return POSGATE_ERR_INVALID;
    }
    nul = memchr(value, '\0', len);
    if (nul != NULL) {
        plat_msgf(em, ec, "%s: value contains a NUL byte at offset %zu", tn, (size_t)(nul - value));
        return POSGATE_ERR_INVALID;
    }
    {
        size_t n = len;
        (void)trim(value, &n);
        if (n == 0) {
            plat_msgf(em, ec, "%s: value is empty", tn);
            return POSGATE_ERR_INVALID;
        }
    }
    memset(&id, 0, sizeof(id));
    id.type = t;
    id.birth_days = IDENT_NO_BIRTH;
    switch (t) {
    case IDENT_CN_RID:
        err = parse_cn_rid(value, len, &id, em, ec);
        break;
    case IDENT_CN_USCC:
        err = parse_cn_uscc(value, len, &id, em, ec);
        break;
    case IDENT_PASSPORT:
        err = parse_passport(value, len, &id, em, ec);
        break;
    case IDENT_MRZ:
        err = parse_mrz(value, len, &id, em, ec);
        break;
    case IDENT_NATIONAL_ID:
        err = parse_national_id(value, len, &id, em, ec);
        break;
    case IDENT_NAME_DOB:
        err = parse_name_dob(value, len, &id, em, ec);
        break;
    }
    if (err == POSGATE_OK) {
        *out = id;
    }
    return err;
}

static void
fail_unknown_type(const char *name, size_t len, char *em, size_t ec)
{
    plat_msgf(em, ec,
              "unknown identifier type \"%s\", expected cn_rid, cn_uscc, passport, mrz, "
              "national_id or name_dob",
              make_excerpt(name, len).s);
}

enum posgate_err
ident_parse(const char *type_name, const char *value, size_t len, struct ident *out, char *errmsg,
            size_t errcap)
{
    enum ident_type t;

    if (errmsg != NULL && errcap > 0) {
        errmsg[0] = '\0';
    }
    if (type_name == NULL) {
        plat_msgf(errmsg, errcap,
                  "identifier type is missing, expected cn_rid, cn_uscc, passport, "
                  "mrz, national_id or name_dob");
        return POSGATE_ERR_INVALID;
    }
    if (ident_type_from_name(type_name, &t) != 0) {
        fail_unknown_type(type_name, strlen(type_name), errmsg, errcap);
        return POSGATE_ERR_INVALID;
    }
    return parse_typed(t, value, len, out, errmsg, errcap);
}

enum posgate_err
ident_parse_arg(const char *arg, size_t len, struct ident *out, char *errmsg, size_t errcap)
{
    const char *colon;
    enum ident_type t;
    size_t tl;

    if (errmsg != NULL && errcap > 0) {
        errmsg[0] = '\0';
    }
    if (arg == NULL) {
        plat_msgf(errmsg, errcap, "identifier is missing, expected TYPE:VALUE");
        return POSGATE_ERR_INVALID;
    }
    colon = memchr(arg, ':', len);
    if (colon == NULL) {
        plat_msgf(errmsg, errcap,
                  "identifier has no type, expected TYPE:VALUE with TYPE one of "
                  "cn_rid, cn_uscc, passport, mrz, national_id, name_dob");
        return POSGATE_ERR_INVALID;
    }
    tl = (size_t)(colon - arg);
    if (ident_type_from_name_n(arg, tl, &t) != 0) {
        fail_unknown_type(arg, tl, errmsg, errcap);
        return POSGATE_ERR_INVALID;
    }
    return parse_typed(t, colon + 1, len - tl - 1, out, errmsg, errcap);
}

enum posgate_err
ident_parse_name_dob(const char *name, const char *date, struct ident *out, char *errmsg,
                     size_t errcap)
{
    struct ident id;
    size_t nl, dl;
    enum posgate_err err;

    if (errmsg != NULL && errcap > 0) {
        errmsg[0] = '\0';
    }
    if (name == NULL || date == NULL || out == NULL) {
        plat_msgf(errmsg, errcap, "name_dob: %s is missing",
                  name == NULL   ? "name"
                  : date == NULL ? "birth date"
                                 : "the result (out)");
        return POSGATE_ERR_INVALID;
    }
    nl = strlen(name);
    dl = strlen(date);
    if (nl > IDENT_VALUE_MAX || dl > IDENT_VALUE_MAX) {
        plat_msgf(errmsg, errcap, "name_dob: %s is %zu bytes, expected at most %d",
                  nl > IDENT_VALUE_MAX ? "name" : "birth date", nl > IDENT_VALUE_MAX ? nl : dl,
                  IDENT_VALUE_MAX);
        return POSGATE_ERR_INVALID;
    }
    memset(&id, 0, sizeof(id));
    id.type = IDENT_NAME_DOB;
    id.birth_days = IDENT_NO_BIRTH;
    err = name_dob_build(name, nl, date, dl, &id, errmsg, errcap);
    if (err == POSGATE_OK) {
        *out = id;
    }
    return err;
}

/* ------------------------------------------------------------------------------------------ */
/* Keys and birth dates */

size_t
ident_key_message(const struct ident *id, char *out, size_t cap)
{
    const char *tn = ident_type_name(id->type);
    size_t tl = strlen(tn), total = tl + 1 + id->norm_len;

    if (out == NULL || cap == 0) {
        return total;
    }
    if (total >= cap) {
        out[0] = '\0';
        return total;
    }
    memcpy(out, tn, tl);
    out[tl] = ':';
    memcpy(out + tl + 1, id->norm, id->norm_len);
    out[total] = '\0';
    return total;
}

void
ident_entry_key(const struct crypto_hmac_key *k, const struct ident *id, uint8_t out[IDENT_KEY_LEN])
{
    char msg[IDENT_MSG_MAX];
    uint8_t mac[CRYPTO_SHA256_LEN];
    size_t n = ident_key_message(id, msg, sizeof(msg));

    if (n >= sizeof(msg)) {
        n = 0; /* cannot happen: norm_len <= IDENT_NORM_MAX */
    }
    crypto_hmac(k, msg, n, mac);
    memcpy(out, mac, IDENT_KEY_LEN);
}

enum posgate_err
ident_birth_days(const struct ident *id, int64_t *days)
{
    if (id == NULL || days == NULL) {
        return POSGATE_ERR_INVALID;
    }
    if (id->birth_days == IDENT_NO_BIRTH) {
        return POSGATE_ERR_NOTFOUND;
    }
    *days = id->birth_days;
    return POSGATE_OK;
}

enum posgate_err
ident_age_at(const struct ident *id, int64_t at_s, int *years)
{
    int by, bm, bd, ay, am, ad;
    int64_t at_days;

    if (id == NULL || years == NULL) {
        return POSGATE_ERR_INVALID;
    }
    if (id->birth_days == IDENT_NO_BIRTH) {
        return POSGATE_ERR_NOTFOUND;
    }
    at_days = at_s / 86400 - ((at_s % 86400 < 0) ? 1 : 0);
    civil_from_days(id->birth_days, &by, &bm, &bd);
    civil_from_days(at_days, &ay, &am, &ad);
    *years = ay - by - ((am < bm || (am == bm && ad < bd)) ? 1 : 0);
    return POSGATE_OK;
}

const char *
ident_utf8proc_version(void)
{
    return utf8proc_version();
}
