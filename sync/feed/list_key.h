/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The list key's check value: a public fingerprint of the secret list key, so that a kiosk can
 * tell that it holds the key the publisher hashed the entries with. Entry keys are
 * HMAC-SHA256(list key, ...): with another key nothing matches and every listed person would
 * be allowed, silently. The publisher puts the value into the signed feed configuration
 * (feed.json `list_key_check`, feed_config.h); the kiosk computes its own from list.key and
 * refuses a feed, and any check, when the two differ. `posgate init` prints it so that an
 * operator can compare it with the publisher's.
 *
 *   check value = lower-case hex of the first LIST_KEY_CHECK_BYTES bytes of
 *                 HMAC-SHA256(list key, "posgate list key check v1")
 *
 * The label is not an identifier type, so the value is no entry key; as an HMAC output under a
 * 256-bit random key it reveals nothing usable about the key.
 */
#ifndef POSGATE_LIST_KEY_H
#define POSGATE_LIST_KEY_H

#include <stddef.h>

#include "crypto.h"
#include "posgate_err.h"

#define LIST_KEY_CHECK_LABEL "posgate list key check v1"
#define LIST_KEY_CHECK_BYTES 8
#define LIST_KEY_CHECK_HEX   (2 * LIST_KEY_CHECK_BYTES) /* characters, without the NUL */

/* The check value of key k into out (LIST_KEY_CHECK_HEX characters and a NUL). */
void list_key_check(const struct crypto_hmac_key *k, char out[LIST_KEY_CHECK_HEX + 1]);

/* The check value of a raw key of len bytes. NOMEM only. */
POSGATE_WUR enum posgate_err list_key_check_raw(const void *key, size_t len,
                                                char out[LIST_KEY_CHECK_HEX + 1]);

/* Compares the feed's check value (feed.json list_key_check; "" when the feed has none) with
 * the kiosk's. REJECTED when they differ or the feed has none, with a message naming both
 * fingerprints (or saying that the feed must be republished); OK otherwise. */
POSGATE_WUR enum posgate_err list_key_check_match(const char *feed_check, const char *kiosk_check,
                                                  char *errmsg, size_t errcap);

#endif
