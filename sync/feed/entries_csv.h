/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The publisher's entries.csv: a streaming RFC 4180 reader (quoted fields, doubled quotes,
 * CRLF or LF, fields and records bounded) and the validation of each row against the feed
 * configuration. Rows are read one at a time from a FILE*, so a 15-million-row export is never
 * held in memory. Every error names the file label and the line where the record starts:
 * `entries.csv line 17: unknown reason "x"; expected one of "court-enforcement", ...`.
 *
 * The header row is required and must be exactly these nine columns, in this order (a UTF-8
 * byte order mark before it is skipped; completely empty lines are skipped):
 *
 *   list,listing_id,kind,id_type,id_value,reason,valid_from,valid_until,scope
 *
 *   column       rule
 *   -----------  ---------------------------------------------------------------------------
 *   list         a list id of feed.json
 *   listing_id   1..64 printable ASCII bytes (the public case number a person can cite)
 *   kind         restrict | exempt
 *   id_type      cn_rid | cn_uscc | passport | mrz | national_id | name_dob (ident.h)
 *   id_value     valid for its type, check digits included (ident_parse)
 *   reason       a reason id of feed.json
 *   valid_from   YYYY-MM-DD (from the start of that day in the list's timezone,
 *                feed_config.h) or RFC 3339 (UTC when no offset); required
 *   valid_until  the same, later than valid_from; a date is inclusive (to the start of
 *                the next day in the list's timezone); empty = open-ended
 *   scope        empty = the reason's scope; else services joined by ';', each in the
 *                taxonomy and inside the reason's scope (a narrowing, never a widening)
 */
#ifndef POSGATE_ENTRIES_CSV_H
#define POSGATE_ENTRIES_CSV_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "crypto.h"
#include "feed_records.h"
#include "posgate_err.h"

#define ENTRIES_CSV_FIELDS     9
#define ENTRIES_CSV_FIELD_MAX  2048 /* bytes of one field */
#define ENTRIES_CSV_RECORD_MAX 8192 /* bytes of one record (all fields) */
#define ENTRIES_CSV_ERRMSG_MAX 768
#define ENTRIES_CSV_HEADER                                                                         \
    "list,listing_id,kind,id_type,id_value,reason,valid_from,valid_until,scope"

struct feed_config;

/* ---- the RFC 4180 tokenizer ---- */

#define CSV_MAX_FIELDS 64

struct csv_reader;

/* A reader over f (borrowed; not closed). label names the input in messages ("entries.csv").
 * field_max and record_max bound one field and one record (0 selects the ENTRIES_CSV_ values). */
POSGATE_WUR enum posgate_err csv_reader_new(FILE *f, const char *label, size_t field_max,
                                            size_t record_max, struct csv_reader **out);
void csv_reader_free(struct csv_reader *r); /* NULL is a no-op */
/*
 * Reads the next record: OK with *nfields fields (each NUL-terminated in *fields, lengths in
 * *lens, valid until the next call), NOTFOUND at the end of the input, PARSE for malformed CSV
 * (a quote inside an unquoted field, text after a closing quote, an unclosed quote, a bare CR,
 * a NUL byte), TOOBIG past a bound, IO on a read error; csv_reader_errmsg() says which line.
 */
POSGATE_WUR enum posgate_err csv_reader_next(struct csv_reader *r, size_t *nfields,
                                             char *const **fields, const size_t **lens);
/* Line (1-based) on which the last record started. */
uint64_t csv_reader_line(const struct csv_reader *r);
const char *csv_reader_errmsg(const struct csv_reader *r);

/* ---- entries.csv rows ---- */

/* One validated row. entry.key is set when the reader has a list key (entries_csv_set_key),
 * zero otherwise; entry.id_type is the enum ident_type after reduction (an mrz row becomes a
 * passport). */
struct entries_row {
    uint64_t line; /* where the record starts */
    uint16_t list; /* index of the list in the feed config */
    struct feed_entry entry;
};

struct entries_csv;

/* Opens the reader over f (borrowed) and checks the header row. cfg is borrowed for the
 * reader's life. INVALID/PARSE with the reason in errmsg when the header is wrong. */
POSGATE_WUR enum posgate_err entries_csv_open(FILE *f, const char *label,
                                              const struct feed_config *cfg,
                                              struct entries_csv **out, char *errmsg,
                                              size_t errcap);
/* The list key: from now on each row's key is HMAC-SHA256(key, type ":" canonical)[0..15].
 * Borrowed for the reader's life. */
void entries_csv_set_key(struct entries_csv *r, const struct crypto_hmac_key *key);
/* The next row: OK, NOTFOUND at the end, INVALID (a rule), PARSE (CSV syntax), TOOBIG, IO.
 * The message (entries_csv_errmsg) names the label and line. */
POSGATE_WUR enum posgate_err entries_csv_next(struct entries_csv *r, struct entries_row *row);
const char *entries_csv_errmsg(const struct entries_csv *r);
void entries_csv_free(struct entries_csv *r); /* NULL is a no-op */

#endif
