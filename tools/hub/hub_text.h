/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Text the collector's files check or write the same way: an id or a hash in lowercase hex
 * (device ids, event hashes, decision ids, the kiosk folders of a stick), and a string written
 * as an ordinary JSON string in an answer (the HTTP collector's JSON bodies, `ingest --json`).
 * Two other writers in hub_query.c differ from the latter on purpose: pat_str writes a
 * string's inside as canonical JSON stores it, to be found in the stored events, and jstr
 * prints as cJSON does, like the rest of the decision answers.
 */
#ifndef POSGATE_HUB_TEXT_H
#define POSGATE_HUB_TEXT_H

#include <stdbool.h>
#include <stddef.h>

#include "buf.h"
#include "posgate_err.h"

/* Whether s is exactly n characters, each 0-9 or a-f. */
bool hub_lower_hex(const char *s, size_t n);

/* Appends s as a JSON string for an answer: quotes and backslashes escaped with a backslash,
 * every control byte (below 0x20) as \u00XX, each byte that is not part of a well-formed UTF-8
 * character (or is part of a C1 control one) as \ufffd, anything else as it is. Not the canonical
 * form of the stored events, which leaves control bytes raw (pat_str in hub_query.c). */
POSGATE_WUR enum posgate_err hub_json_str(struct buf *b, const char *s);

#endif
