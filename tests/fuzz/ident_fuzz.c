/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Fuzz target for the identifier parsers: the input is parsed as "TYPE:VALUE" and as a value
 * of every type. Beyond not crashing, every accepted identifier must be canonical: its
 * canonical form parses again (as its reduced type) to itself, and it fits the message buffer.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ident.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check_canonical(const struct ident *id)
{
    struct ident again;
    char msg[IDENT_MSG_MAX], em[256];

    if (id->type == IDENT_MRZ || id->norm_len != strlen(id->norm) ||
        id->norm_len > IDENT_NORM_MAX) {
        abort();
    }
    if (ident_key_message(id, msg, sizeof(msg)) >= sizeof(msg)) {
        abort();
    }
    if (ident_parse(ident_type_name(id->type), id->norm, id->norm_len, &again, em, sizeof(em)) !=
        POSGATE_OK) {
        abort();
    }
    if (again.type != id->type || again.norm_len != id->norm_len ||
        memcmp(again.norm, id->norm, id->norm_len) != 0 || again.birth_days != id->birth_days) {
        abort();
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data;
    struct ident id;
    char em[256];

    if (ident_parse_arg(s, size, &id, em, sizeof(em)) == POSGATE_OK) {
        check_canonical(&id);
    } else if (em[0] == '\0') {
        abort(); /* every failure explains itself */
    }
    for (int t = 0; t < IDENT_TYPE_COUNT; t++) {
        if (ident_parse(ident_type_name((enum ident_type)t), s, size, &id, em, sizeof(em)) ==
            POSGATE_OK) {
            check_canonical(&id);
        } else if (em[0] == '\0') {
            abort();
        }
    }
    return 0;
}
