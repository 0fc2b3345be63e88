/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The list key's check value (list_key.h): computed by the publisher into the signed feed
 * configuration and by the kiosk from its list.key, and the one message both sides give when
 * the two differ.
 */
#include "list_key.h"

#include "feed_config.h"

#include <stdio.h>
#include <string.h>

void
list_key_check(const struct crypto_hmac_key *k, char out[LIST_KEY_CHECK_HEX + 1])
{
    uint8_t mac[CRYPTO_SHA256_LEN];

    crypto_hmac(k, LIST_KEY_CHECK_LABEL, strlen(LIST_KEY_CHECK_LABEL), mac);
    crypto_hex(mac, LIST_KEY_CHECK_BYTES, out);
    out[LIST_KEY_CHECK_HEX] = 0;
}

enum posgate_err
list_key_check_raw(const void *key, size_t len, char out[LIST_KEY_CHECK_HEX + 1])
{
    struct crypto_hmac_key k;
    enum posgate_err err;

    err = crypto_hmac_key_init(&k, key, len);
    if (err == POSGATE_OK) {
        list_key_check(&k, out);
    }
    crypto_hmac_key_cleanup(&k);
    return err;
}

enum posgate_err
list_key_check_match(const char *feed_check, const char *kiosk_check, char *errmsg, size_t errcap)
{
    if (feed_check == NULL || feed_check[0] == 0) {
        snprintf(errmsg, errcap,
                 "the feed configuration carries no list key fingerprint (list_key_check), so "
                 "this kiosk cannot tell whether its list key (fingerprint %s) is the one the "
                 "entries were hashed with: refused; republish the feed with a current "
                 "posgate-publish (posgate-publish update)",
                 kiosk_check);
        return POSGATE_ERR_REJECTED;
    }
    if (strcmp(feed_check, kiosk_check) != 0) {
        snprintf(errmsg, errcap,
                 "list key mismatch: the feed's entries were hashed with the list key of "
                 "fingerprint %s, this kiosk's list.key has fingerprint %s; install the "
                 "publisher's list key (posgate init --list-key) or a feed published with this "
                 "key",
                 feed_check, kiosk_check);
        return POSGATE_ERR_REJECTED;
    }
    return POSGATE_OK;
}

_Static_assert(LIST_KEY_CHECK_HEX == FEED_KEY_CHECK_HEX,
               "feed.json list_key_check holds a whole check value");
