/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The device key: an ECDSA P-256 key pair made once per kiosk at `posgate init`, with which the
 * kiosk signs the head of its audit chain in every uploaded batch (docs/audit.md). The private
 * key lives in DIR/device.key (PEM, mode 0600, never leaves the kiosk); the public key in
 * DIR/device.pub (PEM SubjectPublicKeyInfo, mode 0644) is what an operator enrols at the
 * collector. The device id is the hex of the first 16 bytes of SHA-256 over the public key PEM
 * text exactly as written to device.pub, so the collector derives the same id from that file.
 */
#ifndef POSGATE_DEVICE_KEY_H
#define POSGATE_DEVICE_KEY_H

#include <stddef.h>

#include "buf.h"
#include "posgate_err.h"

#define DEVICE_ID_HEX_LEN 32 /* hex digits of a device id */

struct device_key;

/* Makes a new key pair: key_path (0600) and pub_path (0644), each written atomically. STATE
 * when key_path already exists (a device keeps its key; remove it by hand to start over). */
POSGATE_WUR enum posgate_err device_key_create(const char *key_path, const char *pub_path,
                                               char *errmsg, size_t errcap);
/* Loads the device key: the public key and the device id from pub_path (derived from the
 * private key, and written, when pub_path is missing; NULL: always derived); the private key
 * is parsed at the first signature, so a check never touches it. NOTFOUND when key_path is
 * absent. */
POSGATE_WUR enum posgate_err device_key_load(const char *key_path, const char *pub_path,
                                             struct device_key **out, char *errmsg, size_t errcap);
/* NULL is a no-op; the private key is wiped. */
void device_key_free(struct device_key *k);
/* The device id (DEVICE_ID_HEX_LEN lowercase hex digits) and the public key PEM. */
const char *device_key_id(const struct device_key *k);
const char *device_key_pub_pem(const struct device_key *k);
/* DER ECDSA signature over SHA-256(msg), appended to sig. Thread-safe. CORRUPT when device.pub
 * does not belong to device.key. */
POSGATE_WUR enum posgate_err device_key_sign(struct device_key *k, const void *msg, size_t len,
                                             struct buf *sig);
/* The device id of a public key PEM (the bytes of device.pub); out holds 33 bytes. */
void device_id_from_pub_pem(const char *pem, size_t len, char out[DEVICE_ID_HEX_LEN + 1]);

#endif
