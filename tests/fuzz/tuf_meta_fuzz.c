/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Fuzz target of the TUF metadata parser (sync/tuf/tuf_meta.c): every input is parsed as each of
 * the four role types; whatever parses is walked (lookups, hash checks, delegation matching)
 * and verified against its own keys, so the struct invariants the client relies on are
 * exercised. Without a fuzzer, the corpus replays as an ordinary test (replay_main.c).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "crypto.h"
#include "tuf_meta.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
walk(const struct tuf_meta *m)
{
    uint8_t h256[CRYPTO_SHA256_LEN] = {0}, h512[CRYPTO_SHA512_LEN] = {0};
    char msg[256] = "", bin[TUF_NAME_MAX + 16];
    unsigned valid = 0;

    if (m->signed_canon.len == 0 || m->version < 1) {
        abort(); /* a parsed file always has canonical bytes and a version */
    }
    if (m->type == TUF_ROLE_ROOT) {
        for (int r = 0; r < 4; r++) {
            if (tuf_meta_verify(m, m->keys, m->nkeys, &m->roles[r], &valid) == POSGATE_OK &&
                valid < m->roles[r].threshold) {
                abort();
            }
        }
    }
    for (size_t i = 0; i < m->nmeta; i++) {
        if (tuf_meta_find_meta(m, m->meta[i].name) == NULL) {
            abort();
        }
        msg[0] = 0;
        if (m->meta[i].hashes.count > 0 &&
            tuf_hashes_check(&m->meta[i].hashes, h256, h512, "meta", msg, sizeof(msg)) ==
                POSGATE_OK &&
            msg[0] != 0) {
            abort(); /* success leaves no message behind */
        }
    }
    for (size_t i = 0; i < m->ntargets; i++) {
        const struct tuf_target *t = &m->targets[i];

        if (tuf_meta_find_target(m, t->name) == NULL) {
            abort();
        }
        /* All-zero digests never match a listed hash, so the check must refuse. */
        if (tuf_hashes_check(&t->hashes, h256, h512, "target", msg, sizeof(msg)) == POSGATE_OK &&
            (t->hashes.has_sha256 || t->hashes.has_sha512)) {
            static const uint8_t z[CRYPTO_SHA512_LEN] = {0};

            if (!(t->hashes.has_sha256 && memcmp(t->hashes.sha256, z, CRYPTO_SHA256_LEN) == 0) &&
                !(t->hashes.has_sha512 && memcmp(t->hashes.sha512, z, CRYPTO_SHA512_LEN) == 0)) {
                abort();
            }
        }
        for (size_t j = 0; j < m->delegations.nroles; j++) {
            (void)tuf_deleg_role_matches(&m->delegations.roles[j], t->name);
        }
        if (m->delegations.has_succinct &&
            tuf_succinct_role_for(&m->delegations.succinct, t->name, bin, sizeof(bin)) ==
                POSGATE_OK &&
            strncmp(bin, m->delegations.succinct.name_prefix,
                    strlen(m->delegations.succinct.name_prefix)) != 0) {
            abort();
        }
    }
    for (size_t j = 0; j < m->delegations.nroles; j++) {
        if (tuf_meta_verify(m, m->delegations.keys, m->delegations.nkeys,
                            &m->delegations.roles[j].keys, &valid) == POSGATE_OK &&
            valid < m->delegations.roles[j].keys.threshold) {
            abort();
        }
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    for (int t = TUF_ROLE_ROOT; t <= TUF_ROLE_TARGETS; t++) {
        struct tuf_meta *m = NULL;
        char msg[TUF_ERRMSG_MAX];

        if (tuf_meta_parse(data, size, (enum tuf_role_type)t, &m, msg, sizeof(msg)) == POSGATE_OK) {
            if (m == NULL) {
                abort();
            }
            walk(m);
        } else if (m != NULL || msg[0] == 0) {
            abort(); /* a refusal sets no output and always says why */
        }
        tuf_meta_free(m);
    }
    return 0;
}
