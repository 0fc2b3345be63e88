/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Tests of sync/feed/ident.c: safety cases first, then vectors from the standards and public
 * examples for each identifier type (each vector's check character was verified by the
 * algorithm, and is re-verified here by reference implementations written independently of
 * the module), every rejection with its message, folding, entry keys against a golden HMAC
 * value, birth dates and ages, and randomised round trips over the synthesisers with
 * single-character substitutions.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "crypto.h"
#include "ident.h"
#include "plat_clock.h"
#include "posgate_err.h"
#include "test.h"

#define N_ROUNDS 10000

static char em[512];

/* ---- reference implementations, written from the standards, not from ident.c ---- */

static char
ref_rid_check(const char *s)
{
    int sum = 0;

    for (int i = 0; i < 17; i++) {
        int w = 1;
        for (int k = 0; k < 17 - i; k++) {
            w = (w * 2) % 11; /* 2^(17-i) mod 11, i counted from 0 at the left */
        }
        sum += (s[i] - '0') * w;
    }
    sum = (12 - sum % 11) % 11;
    return sum == 10 ? 'X' : (char)('0' + sum);
}

static char
ref_uscc_check(const char *s)
{
    static const char *alpha = "0123456789ABCDEFGHJKLMNPQRTUWXY";
    int sum = 0, w = 1;

    for (int i = 0; i < 17; i++) {
        sum += (int)(strchr(alpha, s[i]) - alpha) * w;
        w = (w * 3) % 31; /* GB 32100 weights are 3^(i-1) mod 31 */
    }
    sum = 31 - sum % 31;
    return alpha[sum == 31 ? 0 : sum];
}

static char
ref_mrz_check(const char *s, size_t n)
{
    int sum = 0;

    for (size_t i = 0; i < n; i++) {
        int v = s[i] == '<' ? 0 : (s[i] <= '9' ? s[i] - '0' : s[i] - 'A' + 10);
        sum += v * (i % 3 == 0 ? 7 : i % 3 == 1 ? 3 : 1);
    }
    return (char)('0' + sum % 10);
}

/* Recomputes every check digit of a TD3 line 2 in place (44 characters). */
static void
ref_mrz_fix(char *l2)
{
    char comp[39];
    int all_filler = 1;

    l2[9] = ref_mrz_check(l2, 9);
    l2[19] = ref_mrz_check(l2 + 13, 6);
    l2[27] = ref_mrz_check(l2 + 21, 6);
    for (int i = 28; i < 42; i++) {
        all_filler &= l2[i] == '<';
    }
    if (!all_filler || l2[42] != '<') {
        l2[42] = ref_mrz_check(l2 + 28, 14);
    }
    memcpy(comp, l2, 10);
    memcpy(comp + 10, l2 + 13, 7);
    memcpy(comp + 17, l2 + 21, 22);
    l2[43] = ref_mrz_check(comp, 39);
}

/* ---- helpers ---- */

static enum posgate_err
parse(const char *type, const char *value, struct ident *id)
{
    em[0] = '\0';
    return ident_parse(type, value, strlen(value), id, em, sizeof(em));
}

/* Expects value to parse as type with canonical form norm (and reduced type rtype). */
static void
expect_ok(const char *type, const char *value, enum ident_type rtype, const char *norm, int line)
{
    struct ident id;
    enum posgate_err err = parse(type, value, &id);

    test_checks++;
    if (err != POSGATE_OK) {
        test_failures++;
        fprintf(stderr, "line %d: %s \"%s\" rejected: %s\n", line, type, value, em);
        return;
    }
    CHECK_STR(id.norm, norm);
    CHECK_INT(id.norm_len, strlen(norm));
    CHECK_INT(id.type, rtype);
}
#define EXPECT_OK(t, v, rt, n) expect_ok((t), (v), (rt), (n), __LINE__)

/* Expects a rejection whose message contains msg, with *out left untouched. */
static void
expect_bad(const char *type, const char *value, const char *msg, int line)
{
    struct ident id;
    enum posgate_err err;

    memset(&id, 0xA5, sizeof(id));
    err = parse(type, value, &id);
    test_checks++;
    if (err != POSGATE_ERR_INVALID) {
        test_failures++;
        fprintf(stderr, "line %d: %s \"%s\" returned %s, expected INVALID\n", line, type, value,
                posgate_err_name(err));
        return;
    }
    test_checks++;
    if (strstr(em, msg) == NULL) {
        test_failures++;
        fprintf(stderr, "line %d: %s \"%s\": message \"%s\" lacks \"%s\"\n", line, type, value, em,
                msg);
    }
    test_checks++;
    if (((const unsigned char *)&id)[0] != 0xA5 || ((const unsigned char *)&id.norm)[0] != 0xA5) {
        test_failures++;
        fprintf(stderr, "line %d: out was written on failure\n", line);
    }
}
#define EXPECT_BAD(t, v, m) expect_bad((t), (v), (m), __LINE__)

/* ---- safety ---- */

static void
test_safety(void)
{
    struct ident id, before;
    char *big;

    CHECK_ERR(ident_parse(NULL, "x", 1, &id, em, sizeof(em)), POSGATE_ERR_INVALID);
    CHECK_CONTAINS(em, "identifier type is missing");
    CHECK_ERR(ident_parse("cn_rid", NULL, 0, &id, em, sizeof(em)), POSGATE_ERR_INVALID);
    CHECK_CONTAINS(em, "cn_rid: value is missing");
    CHECK_ERR(ident_parse("cn_rid", "11010519491231002X", 18, NULL, em, sizeof(em)),
              POSGATE_ERR_INVALID);
    CHECK_CONTAINS(em, "out is NULL");
    /* a NULL message buffer is allowed */
    CHECK_ERR(ident_parse("cn_rid", "1", 1, &id, NULL, 0), POSGATE_ERR_INVALID);
    CHECK_ERR(ident_parse_arg(NULL, 0, &id, em, sizeof(em)), POSGATE_ERR_INVALID);
    CHECK_CONTAINS(em, "identifier is missing");
    CHECK_ERR(ident_parse_name_dob(NULL, "1970-01-01", &id, em, sizeof(em)), POSGATE_ERR_INVALID);
    CHECK_CONTAINS(em, "name_dob: name is missing");
    CHECK_ERR(ident_parse_name_dob("a", NULL, &id, em, sizeof(em)), POSGATE_ERR_INVALID);
    CHECK_CONTAINS(em, "birth date is missing");

    /* empty and blank values, for every type */
    for (int t = 0; t < IDENT_TYPE_COUNT; t++) {
        const char *tn = ident_type_name((enum ident_type)t);
        char want[64];

        snprintf(want, sizeof(want), "%s: value is empty", tn);
        CHECK_ERR(ident_parse(tn, "", 0, &id, em, sizeof(em)), POSGATE_ERR_INVALID);
        CHECK_STR(em, want);
        CHECK_ERR(ident_parse(tn, " \t ", 3, &id, em, sizeof(em)), POSGATE_ERR_INVALID);
        CHECK_STR(em, want);
    }

    /* a 10 KB value is refused before anything reads it */
    big = malloc(10240);
    CHECK(big != NULL);
    if (big != NULL) {
        memset(big, '1', 10240);
        for (int t = 0; t < IDENT_TYPE_COUNT; t++) {
            CHECK_ERR(
                ident_parse(ident_type_name((enum ident_type)t), big, 10240, &id, em, sizeof(em)),
                POSGATE_ERR_INVALID);
            CHECK_CONTAINS(em, "value is 10240 bytes, expected at most 1024");
        }
        memcpy(big, "cn_rid:", 7);
        CHECK_ERR(ident_parse_arg(big, 10240, &id, em, sizeof(em)), POSGATE_ERR_INVALID);
        CHECK_CONTAINS(em, "cn_rid: value is 10233 bytes, expected at most 1024");
        big[10239] = '\0';
        CHECK_ERR(ident_parse_name_dob(big, "1970-01-01", &id, em, sizeof(em)),
                  POSGATE_ERR_INVALID);
        CHECK_CONTAINS(em, "name_dob: name is 10239 bytes, expected at most 1024");
        free(big);
    }

    /* an embedded NUL is refused (a C string view would see a different identifier) */
    CHECK_ERR(ident_parse("cn_rid",
                          "1101\0"
                          "0519491231002X",
                          18, &id, em, sizeof(em)),
              POSGATE_ERR_INVALID);
    CHECK_STR(em, "cn_rid: value contains a NUL byte at offset 4");
    CHECK_ERR(ident_parse("name_dob", "ann\0a|1970-01-01", 16, &id, em, sizeof(em)),
              POSGATE_ERR_INVALID);
    CHECK_CONTAINS(em, "NUL byte at offset 3");

    /* invalid UTF-8: a lone continuation byte, an overlong '/', a surrogate, a cut sequence */
    EXPECT_BAD("cn_rid",
               "1101051949123\x80"
               "002X",
               "invalid UTF-8 at byte 14");
    EXPECT_BAD("passport", "DEU:\xC0\xAF", "invalid UTF-8 at byte 5");
    EXPECT_BAD("name_dob", "a\xED\xA0\x80|1970-01-01", "invalid UTF-8 at byte 2 of the name");
    EXPECT_BAD("national_id", "FR:12\xE4\xBD", "invalid UTF-8 at byte 6");

    /* unknown types; the type name is echoed only as printable ASCII, bounded */
    EXPECT_BAD("ssn", "123", "unknown identifier type \"ssn\"");
    EXPECT_BAD("", "123", "unknown identifier type \"\"");
    CHECK_ERR(ident_parse_arg("ssn:123", 7, &id, em, sizeof(em)), POSGATE_ERR_INVALID);
    CHECK_CONTAINS(em, "unknown identifier type \"ssn\", expected cn_rid, cn_uscc");
    CHECK_ERR(ident_parse_arg("x\x01y:1", 5, &id, em, sizeof(em)), POSGATE_ERR_INVALID);
    CHECK_CONTAINS(em, "\"x?y\"");
    CHECK_ERR(ident_parse_arg("11010519491231002X", 18, &id, em, sizeof(em)), POSGATE_ERR_INVALID);
    CHECK_CONTAINS(em, "identifier has no type, expected TYPE:VALUE");

    /* a small message buffer truncates, never overflows */
    {
        char tiny[8];
        memset(tiny, 'Z', sizeof(tiny));
        CHECK_ERR(ident_parse("cn_rid", "1", 1, &id, tiny, 5), POSGATE_ERR_INVALID);
        CHECK_STR(tiny, "cn_r");
        CHECK(tiny[5] == 'Z');
    }

    /* *out is untouched on failure */
    memset(&before, 0x5A, sizeof(before));
    id = before;
    CHECK_ERR(ident_parse("cn_rid", "11010519491231002Y", 18, &id, em, sizeof(em)),
              POSGATE_ERR_INVALID);
    CHECK(memcmp(&id, &before, sizeof(id)) == 0);

    /* type names */
    {
        enum ident_type t;
        CHECK_INT(ident_type_from_name("PASSPORT", &t), 0);
        CHECK_INT(t, IDENT_PASSPORT);
        CHECK_INT(ident_type_from_name("national_id", &t), 0);
        CHECK_INT(t, IDENT_NATIONAL_ID);
        CHECK_INT(ident_type_from_name("national", &t), -1);
        CHECK_INT(ident_type_from_name("national_idx", &t), -1);
        CHECK_INT(ident_type_from_name(NULL, &t), -1);
        CHECK_STR(ident_type_name(IDENT_NAME_DOB), "name_dob");
        CHECK_STR(ident_type_name((enum ident_type)99), "unknown");
    }
}

/* ---- cn_rid ---- */

static void
test_cn_rid(void)
{
    struct ident id;
    char v[19];

    /* GB 11643-1999 example */
    CHECK(ref_rid_check("11010519491231002X") == 'X');
    EXPECT_OK("cn_rid", "11010519491231002X", IDENT_CN_RID, "11010519491231002X");
    CHECK_OK(parse("cn_rid", "11010519491231002X", &id));
    CHECK_INT(id.birth_days, plat_days_from_civil(1949, 12, 31));

    /* folding */
    EXPECT_OK("cn_rid", "11010519491231002x", IDENT_CN_RID, "11010519491231002X");
    EXPECT_OK("cn_rid", "  11010519491231002X \t\n", IDENT_CN_RID, "11010519491231002X");
    EXPECT_OK("cn_rid",
              "\xEF\xBC\x91\xEF\xBC\x91\xEF\xBC\x90\xEF\xBC\x91\xEF\xBC\x90\xEF\xBC\x95"
              "\xEF\xBC\x91\xEF\xBC\x99\xEF\xBC\x94\xEF\xBC\x99\xEF\xBC\x91\xEF\xBC\x92"
              "\xEF\xBC\x93\xEF\xBC\x91\xEF\xBC\x90\xEF\xBC\x90\xEF\xBC\x92\xEF\xBC\xB8",
              IDENT_CN_RID, "11010519491231002X"); /* full-width digits and X */
    EXPECT_OK("cn_rid",
              "\xE3\x80\x80"
              "1101051949123100"
              "\xEF\xBC\x92\xEF\xBD\x98",
              IDENT_CN_RID, "11010519491231002X"); /* ideographic space, full-width x */

    /* rejections */
    EXPECT_BAD("cn_rid", "11010519491231002", "cn_rid: expected 18 characters, found 17");
    EXPECT_BAD("cn_rid", "11010519491231002X1", "expected 18 characters, found 19");
    EXPECT_BAD("cn_rid", "110105194912310025",
               "cn_rid: check character is 5, expected X (ISO 7064 MOD 11-2)");
    EXPECT_BAD("cn_rid", "11010519491231002Y", "character 18 is 'Y', expected a check character");
    EXPECT_BAD("cn_rid", "1101051949123100AX", "character 17 is 'A', expected a digit");
    EXPECT_BAD("cn_rid", "110105 1949123100X", "character 7 is a space, expected a digit");
    EXPECT_BAD("cn_rid",
               "11010519491231\xE4\xB8\x80"
               "02X",
               "character 15 is U+4E00, expected ASCII");

    /* dates: build otherwise valid numbers with the reference check character */
    {
        static const struct {
            const char *date, *msg;
        } bad[] = {
            {"19491331", "birth date (characters 7-14) has month 13, expected 01-12"},
            {"19490001", "has month 00"},
            {"19490230", "has day 30, expected 01-28 for 1949-02"},
            {"19000229", "has day 29, expected 01-28 for 1900-02"},
            {"19490431", "has day 31, expected 01-30"},
            {"19490100", "has day 00"},
            {"17991231", "has year 1799, expected 1800-2099"},
            {"21000101", "has year 2100"},
        };
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
            memcpy(v, "110105", 6);
            memcpy(v + 6, bad[i].date, 8);
            memcpy(v + 14, "002", 3);
            v[17] = ref_rid_check(v);
            v[18] = '\0';
            EXPECT_BAD("cn_rid", v, bad[i].msg);
        }
        memcpy(v, "11010520000229002", 17);
        v[17] = ref_rid_check(v);
        v[18] = '\0';
        CHECK_OK(parse("cn_rid", v, &id));
        CHECK_INT(id.birth_days, plat_days_from_civil(2000, 2, 29));
        memcpy(v, "00000019491231002", 17);
        v[17] = ref_rid_check(v);
        EXPECT_BAD("cn_rid", v, "region code (characters 1-6) is 000000");
    }
}

/* ---- cn_uscc ---- */

static void
test_cn_uscc(void)
{
    /* GB 32100-2015 style example and codes published on business licences */
    static const char *const good[] = {
        "91350100M000100Y43", "91330100799655058B", "9144030071526726XG",
        "914403001922038216", "91110000600037341L", "91110108551385082Q",
    };

    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        char lower[19];

        CHECK(ref_uscc_check(good[i]) == good[i][17]);
        EXPECT_OK("cn_uscc", good[i], IDENT_CN_USCC, good[i]);
        for (int k = 0; k < 19; k++) {
            lower[k] =
                (good[i][k] >= 'A' && good[i][k] <= 'Z') ? (char)(good[i][k] + 32) : good[i][k];
        }
        EXPECT_OK("cn_uscc", lower, IDENT_CN_USCC, good[i]);
    }
    EXPECT_OK("cn_uscc", " 91350100M000100Y43 ", IDENT_CN_USCC, "91350100M000100Y43");
    EXPECT_OK("cn_uscc",
              "91350100\xEF\xBC\xAD"
              "000100Y43",
              IDENT_CN_USCC, "91350100M000100Y43"); /* full-width M */

    EXPECT_BAD("cn_uscc", "91350100M000100Y4", "cn_uscc: expected 18 characters, found 17");
    EXPECT_BAD("cn_uscc", "91350100M000100Y44",
               "cn_uscc: check character is 4, expected 3 (GB 32100)");
    EXPECT_BAD("cn_uscc", "91350100I000100Y43",
               "character 9 is 'I', expected 0-9 or A-H J-N P-R T U W-Y");
    EXPECT_BAD("cn_uscc", "91350100O000100Y43", "character 9 is 'O'");
    EXPECT_BAD("cn_uscc", "91350100M000100Z43", "character 16 is 'Z'");
    EXPECT_BAD("cn_uscc", "9135010SM000100Y43", "character 8 is 'S'");
    EXPECT_BAD("cn_uscc", "91350100V000100Y43", "character 9 is 'V'");
    EXPECT_BAD("cn_uscc", "91350100-000100Y43", "character 9 is '-'");
}

/* ---- passport ---- */

static void
test_passport(void)
{
    EXPECT_OK("passport", "DEU:C01X00T47", IDENT_PASSPORT, "DEU:C01X00T47");
    EXPECT_OK("passport", "deu:c01x00t47", IDENT_PASSPORT, "DEU:C01X00T47");
    EXPECT_OK("passport", " DEU : C01 X00 T47 ", IDENT_PASSPORT, "DEU:C01X00T47");
    EXPECT_OK("passport", "D<<:C01X00T47", IDENT_PASSPORT, "DEU:C01X00T47");
    EXPECT_OK("passport", "d:C01X00T47", IDENT_PASSPORT, "DEU:C01X00T47");
    EXPECT_OK("passport", "UTO:L898902C<", IDENT_PASSPORT, "UTO:L898902C");
    EXPECT_OK("passport", "XXA:1", IDENT_PASSPORT, "XXA:1");
    EXPECT_OK("passport", "UNO:123456789", IDENT_PASSPORT, "UNO:123456789");
    EXPECT_OK("passport", "\xEF\xBC\xA3\xEF\xBC\xA8\xEF\xBC\xAE:E12345678", IDENT_PASSPORT,
              "CHN:E12345678");

    EXPECT_BAD("passport", "DEUC01X00T47", "passport: expected ISSUER:NUMBER, found no ':'");
    EXPECT_BAD("passport", "DE:C01X00T47",
               "passport: issuer has 2 characters, expected a three-letter ICAO 9303 code");
    EXPECT_BAD("passport", "DEUT:C01X00T47", "issuer has 4 characters");
    EXPECT_BAD("passport", "<<<:C01X00T47", "issuer has 0 characters");
    EXPECT_BAD("passport", "X<<:C01X00T47", "issuer has 1 characters");
    EXPECT_BAD("passport", "D1U:C01X00T47", "issuer character 2 is '1', expected a letter A-Z");
    EXPECT_BAD("passport", "U<O:C01X00T47", "issuer character 2 is '<'");
    EXPECT_BAD("passport", "DEU:C01X00T470",
               "passport: number has 10 characters, expected at most 9");
    EXPECT_BAD("passport", "DEU:", "passport: number is empty");
    EXPECT_BAD("passport", "DEU:<< <", "passport: number is empty");
    EXPECT_BAD("passport", "DEU:C01-X00", "number character 4 is '-', expected A-Z, 0-9");
    EXPECT_BAD("passport", "DEU:C01:X00", "number character 4 is ':'");
}

/* ---- mrz ---- */

#define SPEC_L1 "P<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<<<<<<<<<"
#define SPEC_L2 "L898902C36UTO7408122F1204159ZE184226B<<<<<10"
#define DEU_L1  "P<D<<MUSTERMANN<<ERIKA<<<<<<<<<<<<<<<<<<<<<<"
#define DEU_L2  "C01X00T478D<<6408125F2702283<<<<<<<<<<<<<<<4"

static void
mrz_join(char *out, const char *l1, const char *l2)
{
    memcpy(out, l1, 44);
    out[44] = '|';
    memcpy(out + 45, l2, 44);
    out[89] = '\0';
}

static void
test_mrz(void)
{
    struct ident a, b;
    char v[128], l2[45];

    /* ICAO 9303 Part 4 specimen; the reference agrees with every printed check digit */
    memcpy(l2, SPEC_L2, 45);
    ref_mrz_fix(l2);
    CHECK_STR(l2, SPEC_L2);
    EXPECT_OK("mrz", SPEC_L1 "\n" SPEC_L2, IDENT_PASSPORT, "UTO:L898902C3");
    EXPECT_OK("mrz", SPEC_L1 "|" SPEC_L2, IDENT_PASSPORT, "UTO:L898902C3");
    EXPECT_OK("mrz", "  " SPEC_L1 " \r\n" SPEC_L2 "\r\n", IDENT_PASSPORT, "UTO:L898902C3");
    CHECK_OK(parse("mrz", SPEC_L1 "\n" SPEC_L2, &a));
    CHECK_INT(a.birth_days, IDENT_NO_BIRTH);
    /* the German specimen: issuer D<<, all-filler optional data with a '<' check digit */
    memcpy(l2, DEU_L2, 45);
    ref_mrz_fix(l2);
    CHECK_STR(l2, DEU_L2);
    EXPECT_OK("mrz", DEU_L1 "\n" DEU_L2, IDENT_PASSPORT, "DEU:C01X00T47");
    /* lowercase OCR output folds */
    EXPECT_OK("mrz", "p<utoeriksson<<anna<maria<<<<<<<<<<<<<<<<<<<|" SPEC_L2, IDENT_PASSPORT,
              "UTO:L898902C3");

    /* reduced to passport: the same entry key spelling */
    CHECK_OK(parse("passport", "uto:L898902C3", &b));
    CHECK_STR(a.norm, b.norm);
    CHECK_INT(a.type, b.type);

    /* structure */
    EXPECT_BAD("mrz", SPEC_L1 SPEC_L2, "mrz: expected two 44-character lines joined by a newline");
    EXPECT_BAD("mrz", SPEC_L1 "\n" SPEC_L2 "\n" SPEC_L2, "found more than two lines");
    EXPECT_BAD("mrz", SPEC_L1 "|" SPEC_L2 "|x", "found more than two lines");
    EXPECT_BAD("mrz", "P<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<<<<<<<<\n" SPEC_L2,
               "mrz: line 1 has 43 characters, expected 44 (TD3)");
    EXPECT_BAD("mrz", SPEC_L1 "\n" SPEC_L2 "<", "line 2 has 45 characters");
    EXPECT_BAD("mrz", "I<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<<<<<<<<<\n" SPEC_L2,
               "mrz: line 1 starts with 'I', expected P (TD3 passport)");
    EXPECT_BAD("mrz", "P<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<<<<<<<<#\n" SPEC_L2,
               "line 1 character 44 is '#', expected A-Z, 0-9 or <");
    EXPECT_BAD("mrz",
               SPEC_L1 "\n"
                       "L898902C36UTO7408122Q1204159ZE184226B<<<<<10",
               "mrz: sex (line 2 character 21) is 'Q', expected M, F, X or <");
    EXPECT_BAD("mrz", "P<U<OERIKSSON<<ANNA<MARIA<<<<<<<<<<<<<<<<<<<\n" SPEC_L2,
               "mrz: issuer character 2 is '<'");
    /* a document number of fillers only reduces to an empty passport number */
    memcpy(l2, "<<<<<<<<<<UTO7408122F1204159ZE184226B<<<<<<<", 45);
    ref_mrz_fix(l2);
    mrz_join(v, SPEC_L1, l2);
    EXPECT_BAD("mrz", v, "mrz: number is empty");

    /* every check digit, one at a time */
    {
        static const struct {
            int pos;
            char to;
            const char *msg;
        } bad[] = {
            {9, '7', "mrz: document number check digit is 7, expected 6 (ICAO 9303 7-3-1)"},
            {0, 'M', "mrz: document number check digit is 6, expected"},
            {19, '3', "mrz: birth date check digit is 3, expected 2"},
            {14, '5', "mrz: birth date check digit is 2, expected"},
            {27, '0', "mrz: expiry date check digit is 0, expected 9"},
            {26, '6', "mrz: expiry date check digit is 9, expected"},
            {42, '2', "mrz: optional data check digit is 2, expected 1"},
            {30, '2', "mrz: optional data check digit is 1, expected"},
            {42, '<',
             "mrz: optional data check digit (line 2 character 43) is '<', expected a "
             "digit"},
            {43, '1', "mrz: composite check digit is 1, expected 0"},
            {9, '<', "document number check digit (line 2 character 10) is '<'"},
            {43, 'A', "composite check digit (line 2 character 44) is 'A'"},
        };
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
            memcpy(l2, SPEC_L2, 45);
            l2[bad[i].pos] = bad[i].to;
            mrz_join(v, SPEC_L1, l2);
            EXPECT_BAD("mrz", v, bad[i].msg);
        }
        /* the composite alone: change the birth year with its own check digit, keep the old
         * composite */
        memcpy(l2, SPEC_L2, 45);
        l2[13] = '8'; /* born 1984 */
        ref_mrz_fix(l2);
        l2[43] = SPEC_L2[43];
        mrz_join(v, SPEC_L1, l2);
        EXPECT_BAD("mrz", v, "mrz: composite check digit is 0, expected");
    }
}

/* ---- national_id ---- */

static void
test_national_id(void)
{
    EXPECT_OK("national_id", "FR:123456789AB", IDENT_NATIONAL_ID, "FR:123456789AB");
    EXPECT_OK("national_id", " fr : 123-456.789 ab ", IDENT_NATIONAL_ID, "FR:123456789AB");
    EXPECT_OK("national_id", "se:19121212-1212", IDENT_NATIONAL_ID, "SE:191212121212");
    EXPECT_OK("national_id", "BR:123.456.789-09", IDENT_NATIONAL_ID, "BR:12345678909");
    EXPECT_OK("national_id", "US:12345678901234567890123456789012", IDENT_NATIONAL_ID,
              "US:12345678901234567890123456789012");

    EXPECT_BAD("national_id", "FR123", "national_id: expected CC:VALUE, found no ':'");
    EXPECT_BAD("national_id", "FRA:123",
               "national_id: country code has 3 characters, expected 2 (ISO 3166 alpha-2)");
    EXPECT_BAD("national_id", "F1:123", "country code character 2 is '1', expected a letter");
    EXPECT_BAD("national_id", "FR:", "national_id: value is empty");
    EXPECT_BAD("national_id", "FR: - . ", "national_id: value is empty");
    EXPECT_BAD("national_id", "US:123456789012345678901234567890123",
               "national_id: value has 33 characters, expected at most 32");
    EXPECT_BAD("national_id", "FR:12/34", "value character 3 is '/', expected A-Z or 0-9");
}

/* ---- name_dob ---- */

static void
test_name_dob(void)
{
    struct ident a, b;
    char longname[400];

    EXPECT_OK("name_dob", "Anna Maria|1974-08-12", IDENT_NAME_DOB, "anna maria|1974-08-12");
    EXPECT_OK("name_dob", "  ANNA--MARIA  O'Brien. |  1974-08-12 ", IDENT_NAME_DOB,
              "anna brien maria o|1974-08-12");
    EXPECT_OK("name_dob", "Anna\xE2\x80\x93Maria\xE2\x80\x90Lena|1974-08-12", IDENT_NAME_DOB,
              "anna lena maria|1974-08-12"); /* en dash, Unicode hyphen */
    EXPECT_OK("name_dob", "Jos\xC3\xA9 M\xC3\xBCller|1980-01-31", IDENT_NAME_DOB,
              "jose muller|1980-01-31");
    EXPECT_OK("name_dob", "\xC3\x89LO\xC3\x8FSE \xC3\x98stergaard|1980-01-31", IDENT_NAME_DOB,
              "eloise ostergaard|1980-01-31");
    EXPECT_OK("name_dob",
              "Stra\xC3\x9F"
              "e \xC3\x86sir|1980-01-31",
              IDENT_NAME_DOB, "aesir strasse|1980-01-31");
    /* Latin Extended-A: Łukasz Żółć, Dvořák, Œuvre, Ĳssel, Ğül */
    EXPECT_OK("name_dob", "\xC5\x81ukasz \xC5\xBB\xC3\xB3\xC5\x82\xC4\x87|1990-05-06",
              IDENT_NAME_DOB, "lukasz zolc|1990-05-06");
    EXPECT_OK("name_dob", "Dvo\xC5\x99\xC3\xA1k|1990-05-06", IDENT_NAME_DOB, "dvorak|1990-05-06");
    EXPECT_OK("name_dob", "\xC5\x92uvre \xC4\xB2ssel \xC4\x9E\xC3\xBCl|1990-05-06", IDENT_NAME_DOB,
              "gul ijssel oeuvre|1990-05-06");
    /* decomposed accents, typographic apostrophe, no-break space, zero-width space */
    EXPECT_OK("name_dob",
              "Jose\xCC\x81 O\xE2\x80\x99"
              "Brien\xC2\xA0"
              "Jr\xE2\x80\x8B|1990-05-06",
              IDENT_NAME_DOB, "brien jose jr o|1990-05-06");
    /* CJK kept as is; the ideographic space and the middle dot between CJK characters go */
    EXPECT_OK("name_dob", "\xE7\x8E\x8B\xE3\x80\x80\xE4\xBC\x9F|1990-05-06", IDENT_NAME_DOB,
              "\xE7\x8E\x8B\xE4\xBC\x9F|1990-05-06");
    EXPECT_OK("name_dob", "\xE9\x98\xBF\xE6\xB2\x9B\xC2\xB7\xE9\x98\xBF\xE6\x97\xBA|1990-05-06",
              IDENT_NAME_DOB, "\xE9\x98\xBF\xE6\xB2\x9B\xE9\x98\xBF\xE6\x97\xBA|1990-05-06");
    /* full-width letters and digits */
    EXPECT_OK("name_dob",
              "\xEF\xBC\xA1\xEF\xBC\xAE\xEF\xBC\xAE\xEF\xBC\xA1|"
              "\xEF\xBC\x91\xEF\xBC\x99\xEF\xBC\x99\xEF\xBC\x90-01-02",
              IDENT_NAME_DOB, "anna|1990-01-02");

    CHECK_OK(parse("name_dob", "O'Neil|2000-02-29", &a));
    CHECK_INT(a.birth_days, plat_days_from_civil(2000, 2, 29));
    CHECK_OK(ident_parse_name_dob("  O NEIL ", " 2000-02-29", &b, em, sizeof(em)));
    CHECK_STR(b.norm, a.norm);
    CHECK_INT(b.type, IDENT_NAME_DOB);
    CHECK_INT(b.birth_days, a.birth_days);

    EXPECT_BAD("name_dob", "Anna Maria 1974-08-12", "name_dob: expected NAME|YYYY-MM-DD");
    EXPECT_BAD("name_dob", "|1974-08-12", "name_dob: name is empty");
    EXPECT_BAD("name_dob", " - ' . |1974-08-12", "name_dob: name is empty");
    EXPECT_BAD("name_dob", "An|na|1974-08-12", "name character 3 is '|'");
    EXPECT_BAD("name_dob", "An\x01na|1974-08-12", "name character 3 is U+0001, expected a letter");
    EXPECT_BAD("name_dob", "Anna|1974-02-30", "name_dob: birth date has day 30, expected 01-28");
    EXPECT_BAD("name_dob", "Anna|1974-13-01", "birth date has month 13");
    EXPECT_BAD("name_dob", "Anna|1974/08/12", "birth date \"1974/08/12\" is not in the form");
    EXPECT_BAD("name_dob", "Anna|74-08-12", "is not in the form YYYY-MM-DD");
    EXPECT_BAD("name_dob", "Anna|", "is not in the form YYYY-MM-DD");
    EXPECT_BAD("name_dob", "Anna|1974-0a-12", "birth date character 7 is 'a', expected a digit");
    EXPECT_BAD("name_dob", "Anna|1700-01-01", "has year 1700");
    memset(longname, 'a', 193);
    memcpy(longname + 193, "|1974-08-12", 12);
    EXPECT_BAD("name_dob", longname, "name_dob: name is longer than 192 bytes after folding");
    longname[192] = '|';
    memcpy(longname + 192, "|1974-08-12", 12);
    EXPECT_OK("name_dob", longname, IDENT_NAME_DOB, longname);
    /* Æ doubles in size: 100 of them (200 bytes in, 200 out) are too long */
    for (int i = 0; i < 100; i++) {
        memcpy(longname + 2 * i, "\xC3\x86", 2);
    }
    memcpy(longname + 200, "|1974-08-12", 12);
    EXPECT_BAD("name_dob", longname, "longer than 192 bytes");
}

/* ---- keys ---- */

static void
test_keys(void)
{
    static const char *const same[][2] = {
        {"cn_rid:11010519491231002X", "cn_rid: 11010519491231002x "},
        {"cn_rid:11010519491231002X",
         "CN_RID:\xEF\xBC\x91\xEF\xBC\x91\xEF\xBC\x90\xEF\xBC\x91\xEF\xBC\x90\xEF\xBC\x95"
         "19491231002\xEF\xBD\x98"},
        {"passport:UTO:L898902C3", "mrz:" SPEC_L1 "|" SPEC_L2},
        {"passport:D:C01X00T47", "mrz:" DEU_L1 "\n" DEU_L2},
        {"passport:DEU:C01X00T47", "passport:deu:c01 x00 t47"},
        {"cn_uscc:91350100M000100Y43", "cn_uscc:91350100m000100y43"},
        {"national_id:FR:123456789AB", "national_id:fr:123-456.789 ab"},
        {"name_dob:jose muller|1980-01-31", "name_dob:JOS\xC3\x89  M\xC3\x9CLLER|1980-01-31"},
    };
    uint8_t raw1[32], raw2[32], k1[IDENT_KEY_LEN], k2[IDENT_KEY_LEN], mac[32];
    struct crypto_hmac_key h1, h2;
    struct ident a, b;
    char msg[IDENT_MSG_MAX], small[8];

    for (int i = 0; i < 32; i++) {
        raw1[i] = (uint8_t)i;
        raw2[i] = (uint8_t)(i + 1);
    }
    CHECK_OK(crypto_hmac_key_init(&h1, raw1, sizeof(raw1)));
    CHECK_OK(crypto_hmac_key_init(&h2, raw2, sizeof(raw2)));

    /* key message and golden keys (computed with Python's hmac module) */
    CHECK_OK(ident_parse_arg("passport:deu:C01X00T47", 22, &a, em, sizeof(em)));
    CHECK_INT(ident_key_message(&a, msg, sizeof(msg)), 22);
    CHECK_STR(msg, "passport:DEU:C01X00T47");
    CHECK_INT(ident_key_message(&a, small, sizeof(small)), 22);
    CHECK_STR(small, "");
    CHECK_INT(ident_key_message(&a, NULL, 0), 22);
    ident_entry_key(&h1, &a, k1);
    {
        char hex[2 * IDENT_KEY_LEN + 1];
        crypto_hex(k1, IDENT_KEY_LEN, hex);
        CHECK_STR(hex, "95a28d09f25810d6df877d004090ba5e");
        CHECK_OK(ident_parse_arg("cn_rid:11010519491231002x", 25, &b, em, sizeof(em)));
        ident_entry_key(&h1, &b, k2);
        crypto_hex(k2, IDENT_KEY_LEN, hex);
        CHECK_STR(hex, "19629972a57e8c2b5cf0d23f85631859");
    }
    crypto_hmac(&h1, "passport:DEU:C01X00T47", 22, mac);
    CHECK(memcmp(mac, k1, IDENT_KEY_LEN) == 0);

    /* spellings of one identifier share a key; other list keys give other keys */
    for (size_t i = 0; i < sizeof(same) / sizeof(same[0]); i++) {
        CHECK_OK(ident_parse_arg(same[i][0], strlen(same[i][0]), &a, em, sizeof(em)));
        CHECK_OK(ident_parse_arg(same[i][1], strlen(same[i][1]), &b, em, sizeof(em)));
        ident_entry_key(&h1, &a, k1);
        ident_entry_key(&h1, &b, k2);
        CHECK(memcmp(k1, k2, IDENT_KEY_LEN) == 0);
        ident_entry_key(&h2, &a, k2);
        CHECK(memcmp(k1, k2, IDENT_KEY_LEN) != 0);
    }
    /* the type is part of the message: the same text under two types differs */
    CHECK_OK(parse("national_id", "DE:C01X00T47", &a));
    CHECK_OK(parse("passport", "DEU:C01X00T47", &b));
    ident_entry_key(&h1, &a, k1);
    ident_entry_key(&h1, &b, k2);
    CHECK(memcmp(k1, k2, IDENT_KEY_LEN) != 0);
    crypto_hmac_key_cleanup(&h1);
    crypto_hmac_key_cleanup(&h2);
}

/* ---- birth dates ---- */

static void
test_birth(void)
{
    struct ident id;
    char v[19];
    int64_t days, at;
    int years = -99;

    memcpy(v, "11010520000229123", 17);
    v[17] = ref_rid_check(v);
    v[18] = '\0';
    CHECK_OK(parse("cn_rid", v, &id));
    CHECK_OK(ident_birth_days(&id, &days));
    CHECK_INT(days, plat_days_from_civil(2000, 2, 29));
    at = plat_days_from_civil(2018, 2, 28) * 86400 + 86399;
    CHECK_OK(ident_age_at(&id, at, &years));
    CHECK_INT(years, 17);
    CHECK_OK(ident_age_at(&id, at + 1, &years));
    CHECK_INT(years, 18);
    CHECK_OK(ident_age_at(&id, plat_days_from_civil(2000, 2, 28) * 86400, &years));
    CHECK_INT(years, -1);
    CHECK_OK(ident_age_at(&id, plat_days_from_civil(2000, 2, 29) * 86400, &years));
    CHECK_INT(years, 0);

    CHECK_OK(parse("cn_rid", "11010519491231002X", &id));
    CHECK_OK(ident_age_at(&id, -86400 * 7305, &years)); /* 1950-01-01, before the epoch */
    CHECK_INT(years, 0);
    CHECK_OK(ident_age_at(&id, plat_days_from_civil(2026, 12, 31) * 86400, &years));
    CHECK_INT(years, 77);

    CHECK_OK(parse("passport", "DEU:C01X00T47", &id));
    CHECK_ERR(ident_birth_days(&id, &days), POSGATE_ERR_NOTFOUND);
    CHECK_ERR(ident_age_at(&id, 0, &years), POSGATE_ERR_NOTFOUND);
    CHECK_ERR(ident_birth_days(NULL, &days), POSGATE_ERR_INVALID);
}

/* ---- randomised round trips ---- */

static int
reparse_same(const char *type, const char *value, const char *norm)
{
    struct ident id;

    return parse(type, value, &id) == POSGATE_OK && strcmp(id.norm, norm) == 0;
}

static void
test_roundtrip_cn_rid(void)
{
    static const char checks[] = "0123456789X";
    long tried = 0, rejected = 0, distinct = 0;
    char v[IDENT_SYNTH_CN_RID_SIZE], w[IDENT_SYNTH_CN_RID_SIZE], prev[19] = "";
    int bad = 0;

    for (uint64_t s = 0; s < N_ROUNDS; s++) {
        struct ident id;

        ident_synth_cn_rid(s * 7919 + 1, v);
        ident_synth_cn_rid(s * 7919 + 1, w);
        bad += strcmp(v, w) != 0; /* deterministic */
        distinct += strcmp(v, prev) != 0;
        memcpy(prev, v, 19);
        if (parse("cn_rid", v, &id) != POSGATE_OK || strcmp(id.norm, v) != 0 ||
            v[17] != ref_rid_check(v) || id.birth_days < plat_days_from_civil(1930, 1, 1) ||
            id.birth_days >= plat_days_from_civil(2020, 1, 1)) {
            if (bad++ < 5) {
                fprintf(stderr, "cn_rid synth %s: %s\n", v, em);
            }
            continue;
        }
        /* every single-character substitution: MOD 11-2 detects all of them */
        for (int p = 0; p < 18; p++) {
            const char *alts = p < 17 ? "0123456789" : checks;
            for (const char *c = alts; *c != '\0'; c++) {
                if (*c == v[p]) {
                    continue;
                }
                memcpy(w, v, 19);
                w[p] = *c;
                tried++;
                rejected += parse("cn_rid", w, &id) != POSGATE_OK;
            }
        }
    }
    CHECK_INT(bad, 0);
    CHECK(distinct > N_ROUNDS - 10);
    CHECK_INT(rejected, tried);
    CHECK(tried == (long)N_ROUNDS * (17 * 9 + 10));
}

static void
test_roundtrip_cn_uscc(void)
{
    static const char alpha[] = "0123456789ABCDEFGHJKLMNPQRTUWXY";
    long tried = 0, rejected = 0;
    char v[IDENT_SYNTH_CN_USCC_SIZE], w[19];
    int bad = 0;

    for (uint64_t s = 0; s < N_ROUNDS; s++) {
        struct ident id;

        ident_synth_cn_uscc(s, v);
        if (parse("cn_uscc", v, &id) != POSGATE_OK || strcmp(id.norm, v) != 0 ||
            v[17] != ref_uscc_check(v)) {
            if (bad++ < 5) {
                fprintf(stderr, "cn_uscc synth %s: %s\n", v, em);
            }
            continue;
        }
        /* a prime modulus with non-zero weights: every substitution inside the alphabet is
         * detected; test a third of the positions per round to keep the run short */
        for (int p = (int)(s % 3); p < 18; p += 3) {
            for (const char *c = alpha; *c != '\0'; c++) {
                if (*c == v[p]) {
                    continue;
                }
                memcpy(w, v, 19);
                w[p] = *c;
                tried++;
                rejected += parse("cn_uscc", w, &id) != POSGATE_OK;
            }
        }
    }
    CHECK_INT(bad, 0);
    CHECK(tried > 0);
    CHECK_INT(rejected, tried);
}

static int
mrz_covered(int p)
{
    return p <= 9 || (p >= 13 && p <= 19) || p >= 21;
}

static void
test_roundtrip_mrz(void)
{
    static const char charset[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789<";
    long tried = 0, rejected = 0, dtried = 0, drejected = 0, filler = 0;
    char v[IDENT_SYNTH_MRZ_SIZE], w[IDENT_SYNTH_MRZ_SIZE], p[IDENT_SYNTH_PASSPORT_SIZE];
    int bad = 0;
    uint64_t lcg = 12345;

    for (uint64_t s = 0; s < N_ROUNDS; s++) {
        struct ident id;
        char l2[45];

        ident_synth_mrz(s, v);
        ident_synth_passport(s, p);
        memcpy(l2, v + 45, 44);
        l2[44] = '\0';
        filler += l2[42] == '<';
        ref_mrz_fix(l2);
        if (strlen(v) != 89 || v[44] != '|' || memcmp(l2, v + 45, 44) != 0 ||
            parse("mrz", v, &id) != POSGATE_OK || strcmp(id.norm, p) != 0 ||
            id.type != IDENT_PASSPORT || !reparse_same("passport", p, p)) {
            if (bad++ < 5) {
                fprintf(stderr, "mrz synth %s (passport %s): %s\n", v, p, em);
            }
            continue;
        }
        memcpy(w, v, sizeof(w));
        w[44] = '\n';
        bad += !reparse_same("mrz", w, p);
        /* random substitutions inside the fields the check digits cover */
        for (int k = 0; k < 8; k++) {
            int pos;
            char c;
            do {
                lcg = lcg * 6364136223846793005ULL + 1442695040888963407ULL;
                pos = (int)((lcg >> 33) % 44);
                c = charset[(lcg >> 20) % (sizeof(charset) - 1)];
            } while (!mrz_covered(pos) || c == v[45 + pos]);
            memcpy(w, v, sizeof(w));
            w[45 + pos] = c;
            tried++;
            rejected += parse("mrz", w, &id) != POSGATE_OK;
            if (v[45 + pos] >= '0' && v[45 + pos] <= '9' && c >= '0' && c <= '9') {
                dtried++;
                drejected += parse("mrz", w, &id) != POSGATE_OK;
            }
        }
    }
    CHECK_INT(bad, 0);
    CHECK(filler > N_ROUNDS / 4 && filler < 3 * N_ROUNDS / 4); /* both optional-data forms */
    CHECK(rejected * 100 >= tried * 90);
    CHECK(dtried > 1000);
    CHECK_INT(drejected, dtried); /* 7-3-1 mod 10 detects every digit substitution */
    printf("mrz: %ld of %ld substitutions rejected\n", rejected, tried);
}

static void
test_roundtrip_plain(void)
{
    int bad = 0;
    long distinct_pp = 0;
    char prev[IDENT_SYNTH_PASSPORT_SIZE] = "";

    for (uint64_t s = 0; s < N_ROUNDS; s++) {
        char pp[IDENT_SYNTH_PASSPORT_SIZE], ni[IDENT_SYNTH_NATIONAL_ID_SIZE],
            nd[IDENT_SYNTH_NAME_DOB_SIZE], arg[96];
        struct ident id;

        ident_synth_passport(s, pp);
        ident_synth_national_id(s, ni);
        ident_synth_name_dob(s, nd);
        distinct_pp += strcmp(pp, prev) != 0;
        memcpy(prev, pp, sizeof(prev));
        bad += !reparse_same("passport", pp, pp);
        bad += !reparse_same("national_id", ni, ni);
        bad += !reparse_same("name_dob", nd, nd);
        snprintf(arg, sizeof(arg), "name_dob:%s", nd);
        bad += ident_parse_arg(arg, strlen(arg), &id, em, sizeof(em)) != POSGATE_OK ||
               strcmp(id.norm, nd) != 0 || id.birth_days == IDENT_NO_BIRTH;
        if (bad > 0 && bad < 3) {
            fprintf(stderr, "plain synth %s %s %s: %s\n", pp, ni, nd, em);
        }
    }
    CHECK_INT(bad, 0);
    CHECK(distinct_pp > N_ROUNDS - 50);
}

/* ---- one document, one key ---- */

/* Expects a and b (TYPE:VALUE) to give the same key message, expected. */
static void
expect_same_key(const char *a, const char *b, const char *expected, int line)
{
    struct ident ia, ib;
    char ma[IDENT_MSG_MAX], mb[IDENT_MSG_MAX];

    test_checks++;
    if (ident_parse_arg(a, strlen(a), &ia, em, sizeof(em)) != POSGATE_OK ||
        ident_parse_arg(b, strlen(b), &ib, em, sizeof(em)) != POSGATE_OK) {
        test_failures++;
        fprintf(stderr, "line %d: \"%s\" or \"%s\" rejected: %s\n", line, a, b, em);
        return;
    }
    (void)ident_key_message(&ia, ma, sizeof(ma));
    (void)ident_key_message(&ib, mb, sizeof(mb));
    test_checks++;
    if (strcmp(ma, expected) != 0 || strcmp(mb, expected) != 0) {
        test_failures++;
        fprintf(stderr, "line %d: \"%s\" keys as \"%s\", \"%s\" as \"%s\", expected \"%s\"\n", line,
                a, ma, b, mb, expected);
    }
}
#define EXPECT_SAME_KEY(a, b, e) expect_same_key((a), (b), (e), __LINE__)

static void
test_one_document(void)
{
    struct ident id;
    uint8_t ka[IDENT_KEY_LEN], kb[IDENT_KEY_LEN];
    struct crypto_hmac_key k;
    static const uint8_t raw[32] = {1, 2, 3};

    /* a Chinese national id is the resident identity number */
    EXPECT_SAME_KEY("cn_rid:11010519491231002X", "national_id:CN:11010519491231002X",
                    "cn_rid:11010519491231002X");
    EXPECT_SAME_KEY("cn_rid:11010519491231002x", "national_id: cn : 11010519491231002x ",
                    "cn_rid:11010519491231002X");
    EXPECT_OK("national_id", "CN:11010519491231002X", IDENT_CN_RID, "11010519491231002X");
    CHECK_OK(parse("national_id", "CN:11010519491231002X", &id));
    CHECK_INT(id.birth_days, plat_days_from_civil(1949, 12, 31));
    /* with cn_rid's validation: a malformed value is an input error */
    EXPECT_BAD("national_id", "CN:110105194912310021",
               "cn_rid: check character is 1, expected X (ISO 7064 MOD 11-2)");
    EXPECT_BAD("national_id", "CN:12345", "cn_rid: expected 18 characters, found 5");
    EXPECT_BAD("national_id", "CN:110105-19491231-002X", "cn_rid: expected 18 characters");

    /* the entry keys, not only the spellings, agree */
    CHECK_OK(crypto_hmac_key_init(&k, raw, sizeof(raw)));
    CHECK_OK(parse("cn_rid", "11010519491231002X", &id));
    ident_entry_key(&k, &id, ka);
    CHECK_OK(parse("national_id", "CN:11010519491231002X", &id));
    ident_entry_key(&k, &id, kb);
    CHECK(memcmp(ka, kb, IDENT_KEY_LEN) == 0);
    crypto_hmac_key_cleanup(&k);

    /* Germany: D (what German passports carry), D<< in an MRZ and DEU are one issuer */
    EXPECT_SAME_KEY("passport:DEU:C01X00T47", "passport:D:C01X00T47", "passport:DEU:C01X00T47");
    EXPECT_SAME_KEY("passport:DEU:C01X00T47", "passport:D<<:C01X00T47", "passport:DEU:C01X00T47");
    EXPECT_SAME_KEY("passport:DEU:C01X00T47", "mrz:" DEU_L1 "|" DEU_L2, "passport:DEU:C01X00T47");
}

static void
test_issuer_codes(void)
{
    /* ICAO-only codes of Doc 9303 Part 3 */
    static const char *const icao_only[] = {
        "GBD", "GBN", "GBO", "GBP", "GBS", "UNO", "UNA", "UNK", "XXA", "XXB",
        "XXC", "XXX", "EUE", "RKS", "XOM", "XPO", "XCC", "XBA", "UTO",
    };
    char v[32], want[32];

    for (size_t i = 0; i < sizeof(icao_only) / sizeof(icao_only[0]); i++) {
        snprintf(v, sizeof(v), "%s:123456789", icao_only[i]);
        snprintf(want, sizeof(want), "%s:123456789", icao_only[i]);
        EXPECT_OK("passport", v, IDENT_PASSPORT, want);
    }
    EXPECT_OK("passport", "AFG:1", IDENT_PASSPORT, "AFG:1");
    EXPECT_OK("passport", "ZWE:1", IDENT_PASSPORT, "ZWE:1");
    EXPECT_BAD("passport", "ZZZ:123", "passport: issuer ZZZ is not an ICAO 9303 code");
    EXPECT_BAD("passport", "GER:123", "issuer GER is not an ICAO 9303 code");
    EXPECT_BAD("passport", "AAA:123", "issuer AAA is not an ICAO 9303 code");
    EXPECT_BAD("passport", "ZZ:123", "issuer has 2 characters");
    {
        /* an MRZ whose issuing state is not a code */
        char l1[45], l2[45], mrz[90];

        memcpy(l1, SPEC_L1, 45);
        memcpy(l1 + 2, "ZZZ", 3);
        memcpy(l2, SPEC_L2, 45);
        memcpy(l2 + 10, "ZZZ", 3);
        ref_mrz_fix(l2);
        mrz_join(mrz, l1, l2);
        EXPECT_BAD("mrz", mrz, "mrz: issuer ZZZ is not an ICAO 9303 code");
    }

    /* national_id: ISO 3166-1 alpha-2 */
    EXPECT_OK("national_id", "DE:T220001293", IDENT_NATIONAL_ID, "DE:T220001293");
    EXPECT_OK("national_id", "ax:1", IDENT_NATIONAL_ID, "AX:1");
    EXPECT_OK("national_id", "ZW:1", IDENT_NATIONAL_ID, "ZW:1");
    EXPECT_BAD("national_id", "ZZ:123",
               "national_id: country code ZZ is not assigned in ISO 3166-1 alpha-2");
    EXPECT_BAD("national_id", "UK:123", "country code UK is not assigned");
    EXPECT_BAD("national_id", "XX:123", "country code XX is not assigned");
}

/* ---- names: one spelling per person ---- */

static void
test_name_forms(void)
{
    struct ident id;
    char big[IDENT_VALUE_MAX + 2];

    /* safety: NULLs, oversize, invalid UTF-8 in the name are input errors */
    CHECK_ERR(ident_parse_name_dob(NULL, "1990-01-01", &id, em, sizeof(em)), POSGATE_ERR_INVALID);
    CHECK_CONTAINS(em, "name_dob: name is missing");
    CHECK_ERR(ident_parse_name_dob("Anna", NULL, &id, em, sizeof(em)), POSGATE_ERR_INVALID);
    CHECK_CONTAINS(em, "name_dob: birth date is missing");
    memset(big, 'a', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    CHECK_ERR(ident_parse_name_dob(big, "1990-01-01", &id, em, sizeof(em)), POSGATE_ERR_INVALID);
    CHECK_CONTAINS(em, "name_dob: name is 1025 bytes, expected at most 1024");
    EXPECT_BAD("name_dob", "Iv\xC3n|1990-01-01", "name_dob: invalid UTF-8 at byte 3 of the name");
    EXPECT_BAD("name_dob", "Iv\xED\xA0\x80n|1990-01-01", "invalid UTF-8 at byte 3");
    EXPECT_BAD("name_dob", "Ivan\xC2\x85|1990-01-01", "name character 5 is U+0085");
    EXPECT_BAD("name_dob", "Ivan\xEF\xBD\x9CP|1990-01-01", "name character 5 is '|'");
    /* U+FDFA decomposes to 18 code points: 300 of them (900 bytes) are too many to normalise */
    {
        char wide[3 * 300 + 12];

        for (int i = 0; i < 300; i++) {
            memcpy(wide + 3 * i, "\xEF\xB7\xBA", 3);
        }
        memcpy(wide + 900, "|1990-01-01", 12);
        EXPECT_BAD("name_dob", wide, "name_dob: name is longer than 192 bytes after folding");
    }
    /* many combining marks on one letter fold to the letter */
    {
        char marks[1 + 2 * 500 + 12];
        size_t k = 0;

        marks[k++] = 'a';
        for (int i = 0; i < 500; i++) {
            marks[k++] = '\xCC';
            marks[k++] = '\x81';
        }
        memcpy(marks + k, "|1990-01-01", 12);
        EXPECT_OK("name_dob", marks, IDENT_NAME_DOB, "a|1990-01-01");
    }

    /* CJK: spaces and punctuation between CJK characters go */
    EXPECT_OK("name_dob", "张伟|1990-01-01", IDENT_NAME_DOB, "张伟|1990-01-01");
    EXPECT_OK("name_dob", "张 伟|1990-01-01", IDENT_NAME_DOB, "张伟|1990-01-01");
    EXPECT_OK("name_dob", " 张\xE3\x80\x80伟 |1990-01-01", IDENT_NAME_DOB, "张伟|1990-01-01");
    EXPECT_OK("name_dob", "张·伟|1990-01-01", IDENT_NAME_DOB, "张伟|1990-01-01");
    EXPECT_OK("name_dob", "김 민수|1990-01-01", IDENT_NAME_DOB, "김민수|1990-01-01");
    /* Cyrillic: full case folding; the parts are a set */
    EXPECT_OK("name_dob", "Иван Петров|1990-01-01", IDENT_NAME_DOB, "иван петров|1990-01-01");
    EXPECT_OK("name_dob", "ИВАН ПЕТРОВ|1990-01-01", IDENT_NAME_DOB, "иван петров|1990-01-01");
    EXPECT_OK("name_dob", "Петров, Иван|1990-01-01", IDENT_NAME_DOB, "иван петров|1990-01-01");
    EXPECT_OK("name_dob", "Petrov Ivan|1990-01-01", IDENT_NAME_DOB, "ivan petrov|1990-01-01");
    EXPECT_OK("name_dob", "IVAN  petrov|1990-01-01", IDENT_NAME_DOB, "ivan petrov|1990-01-01");
    EXPECT_OK("name_dob", "Ivan Ivan Petrov|1990-01-01", IDENT_NAME_DOB, "ivan petrov|1990-01-01");
    /* Vietnamese: precomposed, decomposed and half-composed spellings of Nguyễn */
    EXPECT_OK("name_dob", "Nguy\xE1\xBB\x85n V\xC4\x83n|1990-01-01", IDENT_NAME_DOB,
              "nguyen van|1990-01-01");
    EXPECT_OK("name_dob", "Nguye\xCC\x82\xCC\x83n Va\xCC\x86n|1990-01-01", IDENT_NAME_DOB,
              "nguyen van|1990-01-01");
    EXPECT_OK("name_dob", "NGUY\xC3\x8A\xCC\x83N V\xC4\x82N|1990-01-01", IDENT_NAME_DOB,
              "nguyen van|1990-01-01");
    /* Romanian comma below (U+0218..U+021B) and cedilla (U+015E, U+015F, U+0162, U+0163) */
    EXPECT_OK("name_dob", "\xC8\x98tefan \xC8\x9Aurcanu|1990-01-01", IDENT_NAME_DOB,
              "stefan turcanu|1990-01-01");
    EXPECT_OK("name_dob", "\xC5\x9Etefan \xC5\xA2urcanu|1990-01-01", IDENT_NAME_DOB,
              "stefan turcanu|1990-01-01");
    EXPECT_OK("name_dob", "\xC8\x99tefan \xC8\x9Burcanu|1990-01-01", IDENT_NAME_DOB,
              "stefan turcanu|1990-01-01");
    EXPECT_OK("name_dob", "\xC5\x9Ftefan \xC5\xA3urcanu|1990-01-01", IDENT_NAME_DOB,
              "stefan turcanu|1990-01-01");
    /* NFKC and full case folding: ß, the ﬁ ligature, full-width, Greek final sigma */
    EXPECT_OK("name_dob", "STRASSE|1990-01-01", IDENT_NAME_DOB, "strasse|1990-01-01");
    EXPECT_OK("name_dob",
              "Stra\xC3\x9F"
              "e|1990-01-01",
              IDENT_NAME_DOB, "strasse|1990-01-01");
    EXPECT_OK("name_dob", "\xEF\xAC\x81lipe|1990-01-01", IDENT_NAME_DOB, "filipe|1990-01-01");
    EXPECT_OK("name_dob", "ΟΔΥΣΣΕΥΣ|1990-01-01", IDENT_NAME_DOB, "οδυσσευσ|1990-01-01");
    EXPECT_OK("name_dob", "Οδυσσεύς|1990-01-01", IDENT_NAME_DOB, "οδυσσευσ|1990-01-01");
    /* soft hyphen and zero-width joiner are ignored, not separators */
    EXPECT_OK("name_dob", "Pe\xC2\xADtrov|1990-01-01", IDENT_NAME_DOB, "petrov|1990-01-01");
    /* sorting can bring two CJK parts side by side: they join, and the result is stable */
    EXPECT_OK("name_dob", "李 wang 张伟|1990-01-01", IDENT_NAME_DOB, "wang 张伟李|1990-01-01");
    EXPECT_OK("name_dob", "wang 张伟李|1990-01-01", IDENT_NAME_DOB, "wang 张伟李|1990-01-01");
}

/* Random names from pieces that normalisation merges, splits, folds or drops: every accepted
 * name's canonical form folds to itself (the publisher's key is the kiosk's). */
static void
test_roundtrip_names(void)
{
    static const char *const pieces[] = {
        "a",        "Z",  "é",  "e\xCC\x81", "Ș",  "Ş",  "ß", "Æ", "ł",        "张",
        "伟",       "李", "김", "ガ",        "カ", "Ж",  "ж", "Σ", "ς",        "ﬁ",
        "Ａ",       " ",  " ",  "-",         "·",  "　", ",", "'", "\xC2\xAD", "\xE2\x80\x8B",
        "\xCC\x88", "1",  "Ω",  "Å",         "ǅ",  "ŀ",  "ı",
    };
    uint64_t s = 0x6E616D65ULL;
    int bad = 0, accepted = 0;

    for (int r = 0; r < N_ROUNDS; r++) {
        char name[128], v[160];
        size_t k = 0;
        struct ident a, b;
        int n;

        s = s * 6364136223846793005ULL + 1442695040888963407ULL;
        n = 1 + (int)((s >> 33) % 12);
        for (int i = 0; i < n; i++) {
            const char *p;

            s = s * 6364136223846793005ULL + 1442695040888963407ULL;
            p = pieces[(s >> 33) % (sizeof(pieces) / sizeof(pieces[0]))];
            if (k + strlen(p) >= sizeof(name)) {
                break;
            }
            memcpy(name + k, p, strlen(p));
            k += strlen(p);
        }
        name[k] = '\0';
        snprintf(v, sizeof(v), "%s|1990-01-01", name);
        if (parse("name_dob", v, &a) != POSGATE_OK) {
            continue;
        }
        accepted++;
        if (parse("name_dob", a.norm, &b) != POSGATE_OK || strcmp(a.norm, b.norm) != 0) {
            if (bad++ < 3) {
                fprintf(stderr, "name \"%s\" folds to \"%s\", which folds to \"%s\"\n", name,
                        a.norm, b.norm);
            }
        }
    }
    CHECK_INT(bad, 0);
    CHECK(accepted > N_ROUNDS / 2);
}

int
main(void)
{
    test_safety();
    test_cn_rid();
    test_cn_uscc();
    test_passport();
    test_mrz();
    test_national_id();
    test_one_document();
    test_issuer_codes();
    test_name_dob();
    test_name_forms();
    test_keys();
    test_birth();
    test_roundtrip_cn_rid();
    test_roundtrip_cn_uscc();
    test_roundtrip_mrz();
    test_roundtrip_plain();
    test_roundtrip_names();
    return test_summary("ident");
}
