/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Fuzz target for the key filter file's header check (keyfilter_map_open): the input is the
 * file. A file that is accepted must map whole, so that probes of any key stay inside it; its
 * token compare and key count must read only the header, its checksum only the file.
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "keyfilter.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct keyfilter_map m;
    char path[64], msg[256];
    int fd = memfd_create("keyfilter-fuzz", MFD_CLOEXEC);
    uint8_t key[KEYFILTER_KEY_LEN], token[KEYFILTER_TOKEN_LEN] = {0};

    if (fd < 0) {
        abort();
    }
    if (size > 0 && write(fd, data, size) != (ssize_t)size) {
        abort();
    }
    snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
    if (keyfilter_map_open(&m, path, msg, sizeof(msg)) == POSGATE_OK) {
        if (m.len != size || m.len != KEYFILTER_HEADER + m.n_blocks * KEYFILTER_BLOCK) {
            abort();
        }
        (void)keyfilter_map_token_is(&m, token);
        (void)keyfilter_map_keys(&m);
        (void)keyfilter_map_verify(&m, true); /* reads every block */
        /* the first and the last block, and keys taken from the input */
        for (int i = 0; i < 18; i++) {
            memset(key, i == 0 ? 0x00 : 0xff, sizeof(key));
            if (i >= 2) {
                for (size_t j = 0; j < sizeof(key); j++) {
                    key[j] = data[(size_t)(i * 16 + (int)j) % size];
                }
            }
            (void)keyfilter_maybe(&m, key);
        }
        keyfilter_map_close(&m);
    } else if (msg[0] == 0) {
        abort(); /* every refusal says why */
    }
    close(fd);
    return 0;
}
