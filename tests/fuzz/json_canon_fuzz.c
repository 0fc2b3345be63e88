/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Fuzz target of canonical JSON (sync/crypto/json_canon.c): whatever json_parse_bounded accepts and
 * json_canon_encode can encode must parse again, and encoding that parse must give the same
 * bytes (canonical form is a fixed point), so a signature over it is stable. Without a fuzzer,
 * the corpus replays as an ordinary test (replay_main.c).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "buf.h"
#include "json_canon.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct cJSON *v = NULL, *again = NULL;
    struct buf a = BUF_INIT(1u << 22), b = BUF_INIT(1u << 22);
    char msg[256];

    if (json_parse_bounded(data, size, 1u << 20, &v, msg, sizeof(msg)) != POSGATE_OK) {
        if (v != NULL || msg[0] == 0) {
            abort();
        }
        return 0;
    }
    if (json_canon_encode(v, &a) == POSGATE_OK) {
        /* Canonical output has no whitespace outside strings and no escapes but \" and \\;
         * control bytes in strings stay raw, which the parser must read back. */
        if (json_parse_bounded(a.data, a.len, 1u << 22, &again, msg, sizeof(msg)) != POSGATE_OK) {
            /* cJSON refuses raw control characters inside strings: allowed only then. */
            int has_ctl = 0;

            for (size_t i = 0; i < a.len; i++) {
                has_ctl |= a.data[i] < 0x20;
            }
            if (!has_ctl) {
                abort();
            }
        } else {
            if (json_canon_encode(again, &b) != POSGATE_OK || a.len != b.len ||
                memcmp(a.data, b.data, a.len) != 0) {
                abort();
            }
        }
    }
    cJSON_Delete(again);
    cJSON_Delete(v);
    buf_free(&a);
    buf_free(&b);
    return 0;
}
