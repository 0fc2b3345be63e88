/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The kiosk's data directory (mode 0700) and what lives in it:
 *
 *   +-------------------+--------------------------------------------------------------+
 *   | store.db (+ WAL)  | the installed lists, feed config and metadata (store.h)       |
 *   | tuf/              | the trusted TUF metadata (root.json, timestamp.json, ...)     |
 *   | tuf-staging/      | a refresh in progress; promoted to tuf/ after the store commit |
 *   | incoming/         | verified downloads waiting to be applied (removed after)      |
 *   | incoming/partial/ | interrupted network downloads, resumed with Range (fetch.h)    |
 *   | http-cache/       | ETag / Last-Modified of timestamp.json for conditional GET    |
 *   | list.key          | the 32-byte list key, mode 0600; never leaves the kiosk       |
 *   | audit.db (+ WAL)  | the audit queue: hash-chained decision events (audit.h)        |
 *   | device.key        | the device's ECDSA P-256 private key, mode 0600 (device_key.h) |
 *   | device.pub        | its public key, enrolled at the collector                      |
 *   | pins.json         | the authority delegations pinned per list (pins.h)            |
 *   +-------------------+--------------------------------------------------------------+
 */
#ifndef POSGATE_DATADIR_H
#define POSGATE_DATADIR_H

#include <stddef.h>
#include <stdint.h>

#include "list_key.h"
#include "posgate_err.h"

#define DATADIR_PATH_MAX 4096
#define LIST_KEY_LEN     32

struct datadir {
    char root[DATADIR_PATH_MAX];
    char store[DATADIR_PATH_MAX];
    char tuf[DATADIR_PATH_MAX];
    char tuf_staging[DATADIR_PATH_MAX];
    char incoming[DATADIR_PATH_MAX];
    char list_key[DATADIR_PATH_MAX];
    char audit_db[DATADIR_PATH_MAX];
    char device_key[DATADIR_PATH_MAX];
    char device_pub[DATADIR_PATH_MAX];
    char pins[DATADIR_PATH_MAX];
};

/* Fills the paths below root (NULL: $POSGATE_DATA_DIR, else /var/lib/posgate). */
POSGATE_WUR enum posgate_err datadir_init(struct datadir *d, const char *root);
/* Reads a 32-byte list key file; INVALID (with a message) when it is not exactly 32 bytes. */
POSGATE_WUR enum posgate_err datadir_read_list_key(const char *path, uint8_t key[LIST_KEY_LEN],
                                                   char *errmsg, size_t errcap);
/* The check value (list_key.h) of the list key file at path, into out; errors and messages as
 * datadir_read_list_key. The key itself is wiped before returning. */
POSGATE_WUR enum posgate_err datadir_list_key_check(const char *path,
                                                    char out[LIST_KEY_CHECK_HEX + 1], char *errmsg,
                                                    size_t errcap);

#endif
