/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Canonical JSON as TUF signs it (securesystemslib's encode_canonical, OLPC canonical JSON):
 * object keys sorted by their bytes, no whitespace, strings with only '"' and '\\' escaped,
 * integers only (a float is refused), true/false/null. Also the bounded parse wrapper around
 * cJSON that every JSON codec uses.
 */
#ifndef POSGATE_JSON_CANON_H
#define POSGATE_JSON_CANON_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "posgate_err.h"

struct cJSON;

/* Appends the canonical encoding of v to out. UNSUPPORTED for a non-integer number or a
 * number outside +-2^53; TOOBIG past out->max. */
POSGATE_WUR enum posgate_err json_canon_encode(const struct cJSON *v, struct buf *out);

/* Parses len bytes of JSON (no trailing garbage, depth at most 64, at most max_len bytes) into
 * a cJSON tree the caller frees with cJSON_Delete. PARSE or TOOBIG with a message in errmsg. */
POSGATE_WUR enum posgate_err json_parse_bounded(const void *data, size_t len, size_t max_len,
                                                struct cJSON **out, char *errmsg, size_t errcap);

/* Points cJSON at the platform allocator (idempotent, thread-safe). */
void json_init_hooks(void);

/* Until json_arena_end, this thread's cJSON allocations come from a buffer of about hint bytes
 * (64 KiB to 4 MiB, kept for the thread's next use) and frees of them cost nothing; past the
 * buffer, the platform allocator as usual. Every tree made in between must be deleted before
 * json_arena_end (the buffer is reused by the next json_arena_begin). For a reader that parses
 * and drops a large document many times (the collector's batches). */
void json_arena_begin(size_t hint);
void json_arena_end(void);

/* An integer member: INVALID when absent, not a number, not integral or out of range. */
POSGATE_WUR enum posgate_err json_get_int(const struct cJSON *obj, const char *name, int64_t min,
                                          int64_t max, int64_t *out);

/* Prints root without whitespace (cJSON_PrintUnformatted) into out (reset first) and frees
 * root, whatever the outcome: the last step of every codec that builds a cJSON tree. NOMEM
 * when root is NULL (a failed allocation while building it) or printing runs out of memory;
 * TOOBIG past out->max. */
POSGATE_WUR enum posgate_err json_print_to_buf(struct cJSON *root, struct buf *out);

/* Zeroes the text of every string value and member name in v's tree, then deletes it (NULL: no
 * effect): for a tree that held identifiers in clear (a check's body), whose freed memory the
 * allocator hands out again as it is. */
void json_delete_wiped(struct cJSON *v);

/* The run-time cJSON version, for --version. */
const char *json_cjson_version(void);

#endif
