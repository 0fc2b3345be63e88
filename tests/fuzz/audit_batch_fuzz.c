/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Fuzz target of the collector's batch reader (tools/hub/hub_batch.c): any input either parses into
 * a batch whose events are canonical audit events with rising seqs, their hashes recomputed,
 * and a head that is the last event, or fails with a message; and the gzip decoder stays within
 * its bound. Without a fuzzer, the corpus replays as an ordinary test (replay_main.c).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hub_batch.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check_batch(const uint8_t *data, size_t size)
{
    struct hub_batch *b = NULL;
    char msg[512] = "";
    enum posgate_err err = hub_batch_parse(data, size, &b, msg, sizeof(msg));

    if (err != POSGATE_OK) {
        if (b != NULL || msg[0] == 0) {
            abort();
        }
        return;
    }
    if (b == NULL || strlen(b->device_id) != DEVICE_ID_HEX_LEN || b->sig_len == 0 ||
        b->sig_len > HUB_SIG_MAX) {
        abort();
    }
    for (size_t i = 0; i < b->n; i++) {
        uint8_t h[AUDIT_HASH_LEN];

        if (b->ev[i].text == NULL || strlen(b->ev[i].text) != b->ev[i].len ||
            (i > 0 && b->ev[i].seq <= b->ev[i - 1].seq)) {
            abort();
        }
        audit_chain_hash(b->ev[i].prev, b->ev[i].text, b->ev[i].len, h);
        if (memcmp(h, b->ev[i].hash, AUDIT_HASH_LEN) != 0) {
            abort();
        }
    }
    if (b->n > 0 && b->head_seq != b->ev[b->n - 1].seq) {
        abort();
    }
    hub_batch_free(b);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct buf out = BUF_INIT(1u << 20);
    char msg[512] = "";

    check_batch(data, size);
    if (hub_gunzip(data, size, &out, msg, sizeof(msg)) == POSGATE_OK) {
        if (out.len > out.max) {
            abort();
        }
        check_batch(out.data, out.len);
    } else if (out.len != 0 || msg[0] == 0) {
        abort();
    }
    buf_free(&out);
    return 0;
}
