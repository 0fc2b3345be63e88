/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Test helper of tests/integration/delegated_config.sh: the feed operator acting alone. It
 * opens the publisher's TUF writer state, lists CONFIG as config/feed.json in the top-level
 * targets role, and publishes to FEED_DIR signed with the operator's keys only (targets,
 * snapshot, timestamp): what an operator holding no authority key can put in front of a kiosk
 * without going through posgate-publish's own checks.
 * Usage: operator_publish TUF_STATE_DIR FEED_DIR CONFIG KEY.key [KEY.key ...]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crypto.h"
#include "tuf_writer.h"

#define MAX_KEYS 8

int
main(int argc, char **argv)
{
    struct crypto_privkey *keys[MAX_KEYS];
    struct tuf_writer *w = NULL;
    char msg[TUF_WRITER_ERRMSG_MAX] = "";
    size_t n = 0;
    int rc = 1;

    if (argc < 5 || argc - 4 > MAX_KEYS) {
        fprintf(stderr,
                "usage: operator_publish TUF_STATE_DIR FEED_DIR CONFIG KEY.key [KEY.key ...] "
                "(1 to %d keys, found %d)\n",
                MAX_KEYS, argc > 4 ? argc - 4 : 0);
        return 2;
    }
    for (int i = 4; i < argc; i++) {
        if (crypto_privkey_load(argv[i], &keys[n]) != POSGATE_OK) {
            fprintf(stderr, "operator_publish: cannot load the private key %s\n", argv[i]);
            goto out;
        }
        n++;
    }
    if (tuf_writer_open(argv[1], &w, msg, sizeof(msg)) != POSGATE_OK) {
        fprintf(stderr, "operator_publish: %s: %s\n", argv[1], msg);
        goto out;
    }
    if (tuf_writer_add_target(w, "targets", "config/feed.json", argv[3], "{\"type\":\"config\"}") !=
            POSGATE_OK ||
        tuf_writer_publish(w, argv[2], keys, n) != POSGATE_OK) {
        fprintf(stderr, "operator_publish: %s\n", tuf_writer_errmsg(w));
        goto out;
    }
    rc = 0;
out:
    tuf_writer_free(w);
    for (size_t i = 0; i < n; i++) {
        crypto_privkey_free(keys[i]);
    }
    return rc;
}
