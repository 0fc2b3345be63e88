/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Feed records: posgate's own compact, streamable binary bodies for a list snapshot (every entry
 * of one list at one seq) and a list delta (removals, then additions, from a base seq to a seq).
 * Records are in (key, listing id) order and delta-encoded against the previous record, so a
 * 15-million-entry list costs about 24 bytes an entry on the wire without compression. The
 * writer refuses records out of order; the reader pulls one record at a time through a fixed
 * buffer (bounded memory whatever the size), validates every byte and reports errors with the
 * byte offset, what was expected and what was found. docs/feed.md is the full reference.
 *
 * Snapshot body (integers big-endian; "v" = LEB128 varint, minimal):
 *
 *   +--------+-----+-----+-----+---------+--------+----------+-----------+
 *   | "PGSN" | ver | flg | idn | list id |  seq   |  count   | issued_at |
 *   |   4    |  1  |  1  |  1  |   idn   |   8    |    8     |     8     |
 *   +--------+-----+-----+-----+---------+--------+----------+-----------+
 *   | record 1 | record 2 | ... | record count |
 *   +--------+----------+------------------------------------+
 *   | "PGEN" |  count   | state digest state (268, see state_digest.h) |
 *   |   4    |    8     |                                              |
 *   +--------+----------+----------------------------------------------+
 *
 * Delta body:
 *
 *   +--------+-----+-----+-----+---------+----------+-----+----------+-----------+-----------+
 *   | "PGDL" | ver | flg | idn | list id | base seq | seq | removals | additions | issued_at |
 *   |   4    |  1  |  1  |  1  |   idn   |    8     |  8  |    8     |     8     |     8     |
 *   +--------+-----+-----+-----+---------+----------+-----+----------+-----------+-----------+
 *   | base digest (32) | result digest (32) |
 *   +------------------+--------------------+
 *   | removal 1 .. removal R | addition 1 .. addition A |
 *   +--------+----------+-----------+
 *   | "PGEN" | removals | additions |
 *   |   4    |    8     |     8     |
 *   +--------+----------+-----------+
 *
 * Full record (snapshot records and delta additions):
 *
 *   +-------+-----------+----------+------------+------+---------+-------------------+
 *   | flags | key gap   | template | listing no | from | [until] | [scope n, idx...] |
 *   |   1   | flags&31  |    v     | v (width>0)|  v   |   v     |  v, v ...         |
 *   +-------+-----------+----------+------------+------+---------+-------------------+
 *   flags: bits 0-4 key gap length g (0..16), bit 5 exempt, bit 6 until open, bit 7 scope.
 *   key gap: key - previous key as a g-byte big-endian integer (first byte non-zero).
 *   template: 0 = inline definition follows (reason v, id_type u8, stem length u8, stem,
 *   width u8), else k = the k-th template defined in this section.
 *
 * Removal record: flags (bits 5-7 zero) | key gap | template (inline: stem length u8, stem,
 * width u8) | listing no.
 */
#ifndef POSGATE_FEED_RECORDS_H
#define POSGATE_FEED_RECORDS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "buf.h"
#include "posgate_err.h"
#include "state_digest.h"

#define FEED_FORMAT_VERSION 1
#define FEED_KEY_LEN        16
#define FEED_LIST_ID_MAX    64
#define FEED_LISTING_ID_MAX 64
#define FEED_SCOPE_MAX      32
#define FEED_DIGEST_LEN     32
/* The largest count a header may declare (TOOBIG beyond). */
#define FEED_MAX_ENTRIES 1000000000ULL
/* Times are seconds since the epoch in [0, FEED_TIME_MAX] (9999-12-31T23:59:59Z). */
#define FEED_TIME_MAX   253402300799LL
#define FEED_UNTIL_OPEN INT64_MAX
/* Longest listing-id numeric tail carried as a number; longer digit runs stay in the stem. */
#define FEED_NUM_DIGITS_MAX 18
/* Templates remembered per section; later definitions stay inline (bounded reader memory). */
#define FEED_TEMPLATES_MAX 4096
#define FEED_ERRMSG_MAX    256

enum feed_kind { FEED_KIND_RESTRICT = 0, FEED_KIND_EXEMPT = 1 };

enum feed_body { FEED_BODY_SNAPSHOT = 1, FEED_BODY_DELTA = 2 };

/* One list entry after keyed hashing. listing_id is NUL-terminated; listing_id_len excludes the
 * NUL. scope[] holds scope_count service indices, strictly increasing; 0 = the reason's scope. */
struct feed_entry {
    uint8_t key[FEED_KEY_LEN];
    uint8_t listing_id_len;
    char listing_id[FEED_LISTING_ID_MAX + 1];
    uint16_t reason;
    uint8_t id_type;
    uint8_t kind; /* enum feed_kind */
    int64_t valid_from;
    int64_t valid_until; /* FEED_UNTIL_OPEN when open */
    uint8_t scope_count;
    uint16_t scope[FEED_SCOPE_MAX];
};

/* A body header. Fields marked (delta) are zero in a snapshot; count is zero in a delta. */
struct feed_header {
    enum feed_body body;
    uint8_t version;
    char list_id[FEED_LIST_ID_MAX + 1];
    uint64_t seq;
    uint64_t base_seq;  /* (delta) */
    uint64_t count;     /* snapshot: number of entries */
    uint64_t removals;  /* (delta) */
    uint64_t additions; /* (delta) */
    int64_t issued_at;
    uint8_t base_digest[FEED_DIGEST_LEN];   /* (delta) digest of the list at base_seq */
    uint8_t result_digest[FEED_DIGEST_LEN]; /* (delta) digest of the list at seq */
};

/* Byte sinks and sources. write writes all len bytes or fails (IO); read reads up to cap bytes,
 * *got = 0 meaning the end of the data. */
struct feed_sink {
    enum posgate_err (*write)(void *ctx, const uint8_t *data, size_t len);
    void *ctx;
};
struct feed_source {
    enum posgate_err (*read)(void *ctx, uint8_t *buf, size_t cap, size_t *got);
    void *ctx;
};
struct feed_mem {
    const uint8_t *data;
    size_t len;
    size_t pos;
};
void feed_sink_file(struct feed_sink *s, FILE *f);
void feed_sink_fd(struct feed_sink *s, int fd);
/* Appends to b (bounded by b->max: TOOBIG past it). */
void feed_sink_buf(struct feed_sink *s, struct buf *b);
void feed_source_file(struct feed_source *s, FILE *f);
void feed_source_fd(struct feed_source *s, int fd);
/* Reads data[0..len) through m, which the caller keeps alive. */
void feed_source_mem(struct feed_source *s, struct feed_mem *m, const void *data, size_t len);

/* Entries. */
/* Sets listing_id and listing_id_len; INVALID when empty, longer than 64 bytes or not printable
 * ASCII (0x20..0x7e). */
POSGATE_WUR enum posgate_err feed_entry_set_listing_id(struct feed_entry *e, const char *id);
/* INVALID with a message naming the field when e breaks a rule (listing id, kind, times,
 * scope order); msg may be NULL. */
POSGATE_WUR enum posgate_err feed_entry_check(const struct feed_entry *e, char *msg, size_t cap);
/* Order of (key, listing id): <0, 0, >0. Listing ids compare as unsigned bytes, shorter first. */
int feed_entry_compare(const struct feed_entry *a, const struct feed_entry *b);
/* 1 when the whole entry (every field) is equal. */
int feed_entry_equal(const struct feed_entry *a, const struct feed_entry *b);
/* 1 when id is a valid list id: 1..64 of [A-Za-z0-9._-], not starting with '.'. */
int feed_list_id_valid(const char *id);
/* Splits the listing id id[0..len) at its trailing run of at most FEED_NUM_DIGITS_MAX digits
 * '0'-'9': the stem is id[0..*stem_len), *width is the run's length (0 when id does not end in
 * a digit; leading zeros count) and *num its value (below 10^18). A longer run keeps its head in
 * the stem. "SPC-2024-000123" gives "SPC-2024-", 6, 123. The one split of the record format (a
 * record's template and number) and of the kiosk's store (store.h, tmpl), so both store a
 * listing id the same way. Defined for any bytes and any len; no allocation. */
void feed_listing_split(const char *id, size_t len, size_t *stem_len, uint8_t *width,
                        uint64_t *num);

/* Writer. Usage: new, begin, add/remove records in order, finish, free. */
#define FEED_WRITE_CALLER_STATE 1u /* snapshot: finish is given the state; entries not hashed */
struct feed_writer;
POSGATE_WUR enum posgate_err feed_writer_new(const struct feed_sink *sink,
                                             struct feed_writer **out);
/* Validates and writes the header (h->body says which body); flags FEED_WRITE_*. */
POSGATE_WUR enum posgate_err feed_writer_begin(struct feed_writer *w, const struct feed_header *h,
                                               unsigned flags);
/* A snapshot record or a delta addition. INVALID when out of order, a duplicate, more than the
 * header declared, or a broken entry; the writer then refuses everything (STATE). */
POSGATE_WUR enum posgate_err feed_writer_add(struct feed_writer *w, const struct feed_entry *e);
/* A delta removal (only key and listing id are read); all removals come before additions. */
POSGATE_WUR enum posgate_err feed_writer_remove(struct feed_writer *w, const struct feed_entry *e);
/* Writes the trailer and flushes. A snapshot's trailer carries the state of its entries: the
 * writer's own hash of them, or with FEED_WRITE_CALLER_STATE the given state (required then).
 * Without that flag a given state must equal the computed one (INVALID otherwise). INVALID when
 * fewer records were written than declared. */
POSGATE_WUR enum posgate_err feed_writer_finish(struct feed_writer *w,
                                                const struct state_digest *state);
/* The snapshot state written in the trailer (after finish), else NULL. */
const struct state_digest *feed_writer_state(const struct feed_writer *w);
/* Bytes written so far. */
uint64_t feed_writer_bytes(const struct feed_writer *w);
/* Message of the last error ("" when none). */
const char *feed_writer_errmsg(const struct feed_writer *w);
void feed_writer_free(struct feed_writer *w);

/* Reader. Usage: new, header, next until FEED_ITEM_END, free. Memory is fixed at new. */
#define FEED_READ_VERIFY_DIGEST 1u /* snapshot: hash the entries and compare with the trailer */
enum feed_item {
    FEED_ITEM_END = 0,
    FEED_ITEM_ENTRY,  /* a snapshot record */
    FEED_ITEM_REMOVE, /* a delta removal: key and listing id set, other fields zero */
    FEED_ITEM_ADD     /* a delta addition */
};
struct feed_reader;
POSGATE_WUR enum posgate_err feed_reader_new(const struct feed_source *src, unsigned flags,
                                             struct feed_reader **out);
/* Reads and validates the header. PARSE (TOOBIG for a count past FEED_MAX_ENTRIES). */
POSGATE_WUR enum posgate_err feed_reader_header(struct feed_reader *r,
                                                const struct feed_header **out);
/* The next item into *item (and e). FEED_ITEM_END only after the trailer was checked and the
 * data ended there. PARSE on any malformation, BADHASH when FEED_READ_VERIFY_DIGEST finds the
 * trailer state differs from the entries, IO from the source. Errors are sticky. */
POSGATE_WUR enum posgate_err feed_reader_next(struct feed_reader *r, enum feed_item *item,
                                              struct feed_entry *e);
/* Snapshot: the state from the trailer, once FEED_ITEM_END was returned; else NULL. */
const struct state_digest *feed_reader_trailer_state(const struct feed_reader *r);
/* Records returned so far, and the byte offset reached. */
uint64_t feed_reader_records(const struct feed_reader *r);
uint64_t feed_reader_offset(const struct feed_reader *r);
/* "offset N: record K: what was expected, what was found" ("" when none). */
const char *feed_reader_errmsg(const struct feed_reader *r);
void feed_reader_free(struct feed_reader *r);

#endif
