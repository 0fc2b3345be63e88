/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Identifier normalisation and validation: the module owns the rules that turn what a clerk
 * types, a card reader emits or a CSV row holds into one canonical spelling per subject, and
 * the keyed hash of that spelling that entries are stored under. Every check digit is verified
 * (ISO 7064 MOD 11-2 for cn_rid, GB 32100 for cn_uscc, ICAO 9303 7-3-1 for the MRZ), so a typo
 * becomes an input error rather than a silent ALLOW. Parsing is allocation-free and reads no
 * clock, so it can run on the check hot path. The synthesisers build valid identifiers
 * deterministically from a 64-bit value for tests and posgate-synth.
 *
 * Canonical forms (the key message is type ":" canonical):
 *
 *   type         input                         canonical                    example
 *   ----------   ---------------------------   --------------------------   ----------------------
 *   cn_rid       18 chars, 17 digits + 0-9/X   uppercase, trimmed           11010519491231002X
 *   cn_uscc      18 chars of 0-9A-HJ-NPQRTUWXY uppercase, trimmed           91350100M000100Y43
 *   passport     ISSUER:NUMBER                 AAA:N (issuer an ICAO 9303   DEU:C01X00T47
 *                                              code, D spelt DEU; number
 *                                              1-9 alnum)
 *   mrz          TD3 line1 (\n | "|") line2    reduced to passport          UTO:L898902C3
 *   national_id  CC:VALUE                      CC:VALUE, CC ISO 3166-1      FR:123ABC
 *                                              alpha-2, VALUE 1-32 alnum;
 *                                              CN:VALUE is a cn_rid
 *   name_dob     NAME|YYYY-MM-DD               folded name|date             anna maria|1974-08-12
 *                                              (see below)
 *
 *   entry key = HMAC-SHA256(list key, "passport:UTO:L898902C3")[0..15]
 *
 * One document has one key: national_id:CN:X reduces to cn_rid:X (a malformed X is an error, as
 * for cn_rid), passport D, D<< and an MRZ issued by D<< to DEU. An issuer outside the ICAO
 * 9303 table (ISO 3166-1 alpha-3 and the ICAO-only codes) or a country outside ISO 3166-1
 * alpha-2 is an input error, never a key no entry can match.
 *
 * A name folds with utf8proc (the only module that uses it): NFKC, full case folding, combining
 * marks stripped (so Ş and Ș, precomposed and decomposed Nguyễn are alike), the Latin letters
 * without a decomposition to base letters (ł l, ø o, æ ae), white space and punctuation as
 * part separators except between two CJK characters, where they are dropped ("张 伟" is
 * "张伟"), then the parts as a sorted set ("Petrov Ivan" is "ivan petrov"). Invalid UTF-8 and
 * control characters are input errors.
 *
 * Full-width forms (U+FF01..U+FF5E) and the ideographic space fold to ASCII in every type.
 * Every failure is POSGATE_ERR_INVALID with a message naming the type, the field and the rule
 * ("cn_rid: check character is 5, expected X (ISO 7064 MOD 11-2)"); the messages never echo
 * the whole identifier, only the offending character and its position (or a malformed date).
 */
#ifndef POSGATE_IDENT_H
#define POSGATE_IDENT_H

#include <stddef.h>
#include <stdint.h>

#include "crypto.h"
#include "posgate_err.h"

enum ident_type {
    IDENT_CN_RID,
    IDENT_CN_USCC,
    IDENT_PASSPORT,
    IDENT_MRZ, /* input only: a parsed MRZ has type IDENT_PASSPORT */
    IDENT_NATIONAL_ID,
    IDENT_NAME_DOB /* may only ever lead to REFER; the engine enforces that */
};
#define IDENT_TYPE_COUNT 6

/* The version of the canonical spellings above: entry keys made by one version match only
 * keys made by the same version. Publishers write it into every list target's signed custom
 * metadata ("ident_format"); a kiosk refuses a list whose newest snapshot carries an older one
 * (or none: version 1). 2: ICAO/ISO code tables, national_id:CN as cn_rid, utf8proc names. */
#define IDENT_FORMAT 2

#define IDENT_VALUE_MAX     1024 /* longest raw value accepted, in bytes */
#define IDENT_NAME_MAX      192  /* longest folded name of a name_dob, in bytes */
#define IDENT_NORM_MAX      255  /* longest canonical value, in bytes */
#define IDENT_TYPE_NAME_MAX 11   /* strlen("national_id") */
#define IDENT_MSG_MAX       (IDENT_TYPE_NAME_MAX + 1 + IDENT_NORM_MAX + 1) /* with the NUL */
#define IDENT_KEY_LEN       16
#define IDENT_NO_BIRTH      INT64_MIN
#define IDENT_YEAR_MIN      1800 /* birth dates are accepted in [IDENT_YEAR_MIN, IDENT_YEAR_MAX] */
#define IDENT_YEAR_MAX      2099

struct ident {
    enum ident_type type; /* after reduction: never IDENT_MRZ */
    size_t norm_len;      /* strlen(norm) */
    int64_t birth_days;   /* days since 1970-01-01 (cn_rid, name_dob), else IDENT_NO_BIRTH */
    char norm[IDENT_NORM_MAX + 1]; /* canonical value, NUL-terminated */
};

/* Parses value[0..len) as an identifier of the named type ("cn_rid", case-insensitive).
 * On success fills *out; on failure leaves *out untouched, returns POSGATE_ERR_INVALID and
 * writes a message into errmsg (which may be NULL). NULL arguments, an empty value, a value
 * longer than IDENT_VALUE_MAX, an embedded NUL, invalid UTF-8 and an unknown type are INVALID. */
POSGATE_WUR enum posgate_err ident_parse(const char *type_name, const char *value, size_t len,
                                         struct ident *out, char *errmsg, size_t errcap);
/* The same for "TYPE:VALUE", the --id argument form ("passport:DEU:C01X00T47"). */
POSGATE_WUR enum posgate_err ident_parse_arg(const char *arg, size_t len, struct ident *out,
                                             char *errmsg, size_t errcap);
/* A name_dob from separate name and date (--name and --birth-date); NUL-terminated. */
POSGATE_WUR enum posgate_err ident_parse_name_dob(const char *name, const char *date,
                                                  struct ident *out, char *errmsg, size_t errcap);

/* "cn_rid" ...; "unknown" for a value outside the enum. */
const char *ident_type_name(enum ident_type t);
/* 0 and *out set when name (case-insensitive) is a type name, -1 otherwise. */
int ident_type_from_name(const char *name, enum ident_type *out);
int ident_type_from_name_n(const char *name, size_t len, enum ident_type *out);

/* Writes type ":" canonical into out (NUL-terminated when cap > 0) and returns its length
 * without the NUL; a return >= cap means out was too small (IDENT_MSG_MAX always suffices). */
size_t ident_key_message(const struct ident *id, char *out, size_t cap);
/* Entry key: the first 16 bytes of HMAC-SHA256(list key, ident_key_message). Thread-safe. */
void ident_entry_key(const struct crypto_hmac_key *k, const struct ident *id,
                     uint8_t out[IDENT_KEY_LEN]);

/* Birth date in days since 1970-01-01: OK, or NOTFOUND when the type carries none. */
POSGATE_WUR enum posgate_err ident_birth_days(const struct ident *id, int64_t *days);
/* Age in whole years at the instant at_s (seconds since the epoch, UTC calendar); NOTFOUND
 * without a birth date; negative when born after at_s. Someone born on 29 February gains a
 * year on 1 March in common years. */
POSGATE_WUR enum posgate_err ident_age_at(const struct ident *id, int64_t at_s, int *years);

/* Deterministic synthetic identifiers, all valid and in canonical form, from any 64-bit value
 * (nearby values give unrelated identifiers). ident_synth_mrz(v) reduces to the same passport
 * as ident_synth_passport(v), so a listed passport can be checked with its MRZ. */
#define IDENT_SYNTH_CN_RID_SIZE      19 /* 18 + NUL */
#define IDENT_SYNTH_CN_USCC_SIZE     19
#define IDENT_SYNTH_PASSPORT_SIZE    16 /* "AAA:NNNNNNNNN" + NUL */
#define IDENT_SYNTH_MRZ_SIZE         90 /* 44 + '|' + 44 + NUL */
#define IDENT_SYNTH_NATIONAL_ID_SIZE 20 /* "CC:" + up to 16 + NUL */
#define IDENT_SYNTH_NAME_DOB_SIZE    64
void ident_synth_cn_rid(uint64_t v, char out[IDENT_SYNTH_CN_RID_SIZE]);
void ident_synth_cn_uscc(uint64_t v, char out[IDENT_SYNTH_CN_USCC_SIZE]);
void ident_synth_passport(uint64_t v, char out[IDENT_SYNTH_PASSPORT_SIZE]);
void ident_synth_mrz(uint64_t v, char out[IDENT_SYNTH_MRZ_SIZE]);
void ident_synth_national_id(uint64_t v, char out[IDENT_SYNTH_NATIONAL_ID_SIZE]);
void ident_synth_name_dob(uint64_t v, char out[IDENT_SYNTH_NAME_DOB_SIZE]);

/* The run-time utf8proc version, for --version. */
const char *ident_utf8proc_version(void);

#endif
