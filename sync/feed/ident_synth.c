/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Synthetic identifiers (ident.h): valid and canonical, built from a 64-bit value with a
 * SplitMix64 sequence, so test data is reproducible and nearby values give unrelated
 * identifiers.
 */
#include <string.h>

#include "ident_internal.h"

/* SplitMix64: a well-mixed sequence from any seed, so nearby seeds are unrelated. */
static uint64_t
sm_next(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ULL);

    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static uint32_t
sm_below(uint64_t *s, uint32_t n)
{
    return (uint32_t)(sm_next(s) % n);
}

static void
put_digits(char *p, uint32_t v, int n)
{
    for (int i = n - 1; i >= 0; i--) {
        p[i] = (char)('0' + v % 10);
        v /= 10;
    }
}

/* A day in [from, to) years, as civil y/m/d. */
static void
synth_date(uint64_t *s, int from, int to, int *y, int *m, int *d)
{
    int64_t base = plat_days_from_civil(from, 1, 1);
    int64_t span = plat_days_from_civil(to, 1, 1) - base;

    civil_from_days(base + (int64_t)(sm_next(s) % (uint64_t)span), y, m, d);
}

void
ident_synth_cn_rid(uint64_t v, char out[IDENT_SYNTH_CN_RID_SIZE])
{
    uint64_t s = v ^ 0x636E5F726964ULL;
    int y, m, d;

    put_digits(out, 110000 + sm_below(&s, 710000), 6);
    synth_date(&s, 1930, 2020, &y, &m, &d);
    put_digits(out + 6, (uint32_t)y, 4);
    put_digits(out + 10, (uint32_t)m, 2);
    put_digits(out + 12, (uint32_t)d, 2);
    put_digits(out + 14, sm_below(&s, 1000), 3);
    out[17] = ident_rid_check(out);
    out[18] = '\0';
}

void
ident_synth_cn_uscc(uint64_t v, char out[IDENT_SYNTH_CN_USCC_SIZE])
{
    /* Registration authority + organisation type pairs in use (GB 32100 tables 1 and 2). */
    static const char heads[][3] = {"11", "12", "13", "19", "51", "52",
                                    "53", "59", "91", "92", "93", "Y1"};
    static const unsigned org_weights[8] = {3, 7, 9, 10, 5, 8, 4, 2};
    uint64_t s = v ^ 0x75736363ULL;
    unsigned sum = 0, c;

    memcpy(out, heads[sm_below(&s, (uint32_t)(sizeof(heads) / sizeof(heads[0])))], 2);
    put_digits(out + 2, 110000 + sm_below(&s, 710000), 6);
    /* Characters 9-17: a GB 11714 organisation code, eight characters and its check. */
    for (int i = 0; i < 8; i++) {
        char ch = sm_below(&s, 3) == 0 ? ident_uscc_alphabet[10 + sm_below(&s, 21)]
                                       : (char)('0' + sm_below(&s, 10));
        out[8 + i] = ch;
        sum += (unsigned)(is_digit(ch) ? ch - '0' : ch - 'A' + 10) * org_weights[i];
    }
    c = 11 - sum % 11;
    out[16] = c == 10 ? 'X' : c == 11 ? '0' : (char)('0' + c);
    out[17] = ident_uscc_check(out);
    out[18] = '\0';
}

/* The issuer and number shared by ident_synth_passport and ident_synth_mrz. */
static void
synth_passport_parts(uint64_t v, char issuer[4], char number[10])
{
    static const char issuers[][4] = {"CHN", "DEU", "FRA", "GBR", "USA", "JPN", "KOR",
                                      "RUS", "IND", "BRA", "CAN", "AUS", "ITA", "ESP",
                                      "NLD", "UTO", "D",   "HKG", "SGP", "TUR"};
    static const char alnum[] = "CFGHJKLMNPRTVWXYZ0123456789";
    uint64_t s = v ^ 0x70617373ULL;
    size_t k = 0;
    int len;

    memcpy(issuer, issuers[sm_below(&s, (uint32_t)(sizeof(issuers) / sizeof(issuers[0])))], 4);
    switch (sm_below(&s, 4)) {
    case 0: /* one letter and eight digits */
        number[k++] = (char)('A' + sm_below(&s, 26));
        len = 9;
        break;
    case 1: /* nine alphanumerics, without vowels and look-alikes */
        while (k < 9) {
            number[k++] = alnum[sm_below(&s, (uint32_t)(sizeof(alnum) - 1))];
        }
        len = 9;
        break;
    case 2: /* two letters and seven digits */
        number[k++] = (char)('A' + sm_below(&s, 26));
        number[k++] = (char)('A' + sm_below(&s, 26));
        len = 9;
        break;
    default: /* eight digits */
        len = 8;
        break;
    }
    while (k < (size_t)len) {
        number[k++] = (char)('0' + sm_below(&s, 10));
    }
    number[k] = '\0';
}

void
ident_synth_passport(uint64_t v, char out[IDENT_SYNTH_PASSPORT_SIZE])
{
    char issuer[4], number[10];
    size_t il, nl;

    synth_passport_parts(v, issuer, number);
    if (strcmp(issuer, "D") == 0) {
        memcpy(issuer, "DEU", 4); /* the canonical spelling; the MRZ keeps D<< */
    }
    il = strlen(issuer);
    nl = strlen(number);
    memcpy(out, issuer, il);
    out[il] = ':';
    memcpy(out + il + 1, number, nl + 1);
}

static const char *const synth_surnames[] = {
    "WANG", "LI",     "ZHANG", "MUELLER", "MARTIN",   "SMITH",  "GARCIA",   "ROSSI",
    "KIM",  "SUZUKI", "SILVA", "NOVAK",   "ERIKSSON", "OKAFOR", "KOWALSKI", "DUBOIS",
};
static const char *const synth_given[] = {
    "WEI",  "FANG", "ANNA", "MARIA", "JOHN",  "LUCA",   "MIN",  "YUKI",
    "JOAO", "PETR", "ERIK", "NGOZI", "PIOTR", "CLAIRE", "HANS", "SOFIA",
};
#define SYNTH_NAMES 16

void
ident_synth_mrz(uint64_t v, char out[IDENT_SYNTH_MRZ_SIZE])
{
    char issuer[4], number[10], *l1 = out, *l2 = out + 45, comp[39];
    uint64_t s = v ^ 0x6D727AULL;
    const char *sur = synth_surnames[sm_below(&s, SYNTH_NAMES)];
    const char *given = synth_given[sm_below(&s, SYNTH_NAMES)];
    size_t k, sl = strlen(sur), gl = strlen(given);
    int y, m, d;

    synth_passport_parts(v, issuer, number);
    memset(out, '<', 89);
    out[44] = '|';
    out[89] = '\0';

    l1[0] = 'P';
    memcpy(l1 + 2, issuer, strlen(issuer));
    memcpy(l1 + 5, sur, sl);
    memcpy(l1 + 5 + sl + 2, given, gl);

    memcpy(l2, number, strlen(number));
    l2[9] = ident_mrz_check(l2, 9);
    memcpy(l2 + 10, issuer, strlen(issuer));
    synth_date(&s, 1930, 2020, &y, &m, &d);
    put_digits(l2 + 13, (uint32_t)(y % 100), 2);
    put_digits(l2 + 15, (uint32_t)m, 2);
    put_digits(l2 + 17, (uint32_t)d, 2);
    l2[19] = ident_mrz_check(l2 + 13, 6);
    l2[20] = "MFX<"[sm_below(&s, 4)];
    synth_date(&s, 2025, 2036, &y, &m, &d);
    put_digits(l2 + 21, (uint32_t)(y % 100), 2);
    put_digits(l2 + 23, (uint32_t)m, 2);
    put_digits(l2 + 25, (uint32_t)d, 2);
    l2[27] = ident_mrz_check(l2 + 21, 6);
    if (sm_below(&s, 2) == 0) {
        put_digits(l2 + 28, (uint32_t)sm_below(&s, 1000000000u), 9);
        l2[42] = ident_mrz_check(l2 + 28, 14);
    } /* else all fillers, and the check digit stays '<' */
    k = 0;
    memcpy(comp + k, l2, 10);
    k += 10;
    memcpy(comp + k, l2 + 13, 7);
    k += 7;
    memcpy(comp + k, l2 + 21, 22);
    k += 22;
    l2[43] = ident_mrz_check(comp, k);
}

void
ident_synth_national_id(uint64_t v, char out[IDENT_SYNTH_NATIONAL_ID_SIZE])
{
    static const char countries[][3] = {"FR", "DE", "IT", "ES", "NL", "SE",
                                        "BR", "IN", "US", "KR", "PL", "BE"};
    uint64_t s = v ^ 0x6E6174ULL;
    uint32_t len = 9 + sm_below(&s, 4);

    memcpy(out, countries[sm_below(&s, (uint32_t)(sizeof(countries) / sizeof(countries[0])))], 2);
    out[2] = ':';
    for (uint32_t i = 0; i < len; i++) {
        out[3 + i] =
            sm_below(&s, 5) == 0 ? (char)('A' + sm_below(&s, 26)) : (char)('0' + sm_below(&s, 10));
    }
    out[3 + len] = '\0';
}

void
ident_synth_name_dob(uint64_t v, char out[IDENT_SYNTH_NAME_DOB_SIZE])
{
    uint64_t s = v ^ 0x6E646FULL;
    const char *given = synth_given[sm_below(&s, SYNTH_NAMES)];
    const char *sur = synth_surnames[sm_below(&s, SYNTH_NAMES)];
    size_t k = 0;
    int y, m, d;

    if (strcmp(given, sur) > 0) {
        const char *t = given; /* canonical names are their parts in sorted order */

        given = sur;
        sur = t;
    }
    for (const char *p = given; *p != '\0'; p++) {
        out[k++] = (char)(*p - 'A' + 'a');
    }
    out[k++] = ' ';
    for (const char *p = sur; *p != '\0'; p++) {
        out[k++] = (char)(*p - 'A' + 'a');
    }
    out[k++] = '|';
    synth_date(&s, 1930, 2020, &y, &m, &d);
    put_digits(out + k, (uint32_t)y, 4);
    out[k + 4] = '-';
    put_digits(out + k + 5, (uint32_t)m, 2);
    out[k + 7] = '-';
    put_digits(out + k + 8, (uint32_t)d, 2);
    out[k + 10] = '\0';
}
