/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Fuzz target for the handover reader (tools/publish/handover.h): the input is opened as a
 * handover in memory, and read as a list target's custom metadata. Beyond not crashing, an
 * accepted handover must keep the promises of handover.h: a manifest of format 1 whose version
 * follows its base, role.json of the sha256 the manifest names, carried targets found by name;
 * counting its signatures against no key finds none. A refusal always says why.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "handover.h"
#include "tuf_meta.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check_handover(const struct handover *h)
{
    const struct handover_manifest *m = handover_manifest(h);
    const struct buf *role = handover_role_bytes(h);
    const struct buf *man = handover_manifest_bytes(h);
    struct tuf_meta *rm = NULL;
    struct list_target lt;
    uint8_t sha[CRYPTO_SHA256_LEN];
    char hex[2 * CRYPTO_SHA256_LEN + 1], msg[HANDOVER_ERRMSG_MAX];
    unsigned valid = 1;

    crypto_sha256(role->data, role->len, sha);
    crypto_hex(sha, sizeof sha, hex);
    if (m->version != m->base_version + 1 || strcmp(hex, m->role_sha256) != 0 ||
        (m->base_version == 0) != (m->base_sha256[0] == '\0') || man->len > HANDOVER_MANIFEST_MAX) {
        abort();
    }
    for (size_t i = 0; i < handover_target_count(h); i++) {
        const char *name = handover_target_name(h, i);

        if (name == NULL || name[0] == '\0' || !handover_carries(h, name)) {
            abort();
        }
    }
    if (handover_target_name(h, handover_target_count(h)) != NULL ||
        handover_count_signatures(man->data, man->len, NULL, 0, &valid, msg, sizeof msg) !=
            POSGATE_OK ||
        valid != 0) {
        abort();
    }
    if (tuf_meta_parse(role->data, role->len, TUF_ROLE_TARGETS, &rm, msg, sizeof msg) ==
        POSGATE_OK) {
        for (size_t k = 0; k < rm->ntargets; k++) {
            msg[0] = '\0';
            if (list_target_parse(rm->targets[k].custom_json, &lt, msg, sizeof msg) !=
                    POSGATE_OK &&
                msg[0] == '\0') {
                abort();
            }
        }
    }
    tuf_meta_free(rm);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct handover *h = NULL;
    struct list_target lt;
    char msg[HANDOVER_ERRMSG_MAX], *text;

    msg[0] = '\0';
    if (handover_open_mem(data, size, &h, msg, sizeof msg) == POSGATE_OK) {
        check_handover(h);
        handover_free(h);
    } else if (h != NULL || msg[0] == '\0') {
        abort();
    }
    /* the same bytes as a target's custom metadata */
    text = malloc(size + 1);
    if (text == NULL) {
        return 0;
    }
    memcpy(text, data, size);
    text[size] = '\0';
    msg[0] = '\0';
    if (list_target_parse(text, &lt, msg, sizeof msg) != POSGATE_OK && msg[0] == '\0') {
        abort();
    }
    free(text);
    return 0;
}
