/* SPDX-License-Identifier: Apache-2.0 */
/* Paths of the data directory and the list key file. */
#include "datadir.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "plat_file.h"
#include "plat_mem.h"

enum posgate_err
datadir_init(struct datadir *d, const char *root)
{
    enum posgate_err err;

    if (root == NULL || *root == 0) {
        root = getenv("POSGATE_DATA_DIR");
    }
    if (root == NULL || *root == 0) {
        root = "/var/lib/posgate";
    }
    if (strlen(root) >= sizeof(d->root) - 64) {
        return POSGATE_ERR_TOOBIG;
    }
    snprintf(d->root, sizeof(d->root), "%s", root);
    err = plat_path_join(d->store, sizeof(d->store), root, "store.db");
    if (err == POSGATE_OK) {
        err = plat_path_join(d->tuf, sizeof(d->tuf), root, "tuf");
    }
    if (err == POSGATE_OK) {
        err = plat_path_join(d->tuf_staging, sizeof(d->tuf_staging), root, "tuf-staging");
    }
    if (err == POSGATE_OK) {
        err = plat_path_join(d->incoming, sizeof(d->incoming), root, "incoming");
    }
    if (err == POSGATE_OK) {
        err = plat_path_join(d->list_key, sizeof(d->list_key), root, "list.key");
    }
    if (err == POSGATE_OK) {
        err = plat_path_join(d->audit_db, sizeof(d->audit_db), root, "audit.db");
    }
    if (err == POSGATE_OK) {
        err = plat_path_join(d->device_key, sizeof(d->device_key), root, "device.key");
    }
    if (err == POSGATE_OK) {
        err = plat_path_join(d->device_pub, sizeof(d->device_pub), root, "device.pub");
    }
    if (err == POSGATE_OK) {
        err = plat_path_join(d->pins, sizeof(d->pins), root, "pins.json");
    }
    return err;
}

enum posgate_err
datadir_read_list_key(const char *path, uint8_t key[LIST_KEY_LEN], char *errmsg, size_t errcap)
{
    struct buf b = BUF_INIT(LIST_KEY_LEN + 1);
    enum posgate_err err = plat_read_file(path, &b);

    if (err == POSGATE_ERR_TOOBIG || (err == POSGATE_OK && b.len != LIST_KEY_LEN)) {
        snprintf(errmsg, errcap, "list key %s: expected exactly %d bytes, found %s", path,
                 LIST_KEY_LEN, err == POSGATE_ERR_TOOBIG ? "more" : "fewer");
        err = POSGATE_ERR_INVALID;
    } else if (err != POSGATE_OK) {
        snprintf(errmsg, errcap, "list key %s: %s", path, posgate_strerror(err));
    } else {
        memcpy(key, b.data, LIST_KEY_LEN);
    }
    buf_wipe(&b);
    return err;
}

enum posgate_err
datadir_list_key_check(const char *path, char out[LIST_KEY_CHECK_HEX + 1], char *errmsg,
                       size_t errcap)
{
    uint8_t key[LIST_KEY_LEN];
    enum posgate_err err = datadir_read_list_key(path, key, errmsg, errcap);

    if (err == POSGATE_OK) {
        err = list_key_check_raw(key, sizeof(key), out);
    }
    plat_wipe(key, sizeof(key));
    return err;
}
