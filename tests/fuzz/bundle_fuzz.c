/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Fuzz target for the bundle reader: the input is opened as a bundle in memory. Beyond not
 * crashing, an accepted bundle must keep every promise of bundle.h: paths valid and strictly
 * sorted, bodies packed inside the file, every body readable, every entry found by its path.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "bundle.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct bundle *b = NULL;
    char msg[BUNDLE_ERRMSG_MAX];
    uint64_t end = BUNDLE_HEADER_LEN;
    uint8_t chunk[256];

    if (bundle_open_mem(data, size, &b, msg, sizeof msg) != POSGATE_OK) {
        if (b != NULL || msg[0] == '\0') {
            abort();
        }
        return 0;
    }
    for (size_t i = 0; i < bundle_count(b); i++) {
        const struct bundle_entry *e = bundle_entry_at(b, i);

        if (e == NULL || bundle_check_path(e->path, strlen(e->path)) != POSGATE_OK ||
            bundle_find(b, e->path) != e || e->offset < end || e->offset + e->length > size ||
            (i > 0 && strcmp(bundle_entry_at(b, i - 1)->path, e->path) >= 0)) {
            abort();
        }
        end = e->offset + e->length;
        if (bundle_read(b, e, 0, chunk,
                        e->length < sizeof chunk ? (size_t)e->length : sizeof chunk) !=
                POSGATE_OK ||
            memcmp(chunk, data + e->offset,
                   e->length < sizeof chunk ? (size_t)e->length : sizeof chunk) != 0) {
            abort();
        }
    }
    if (bundle_count(b) > 0 && end != size) {
        abort();
    }
    bundle_free(b);
    return 0;
}
