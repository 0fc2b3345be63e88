/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Fuzz target for the authority-signed list config (list_config.h). The input is read twice:
 * as a signed lists/no-fly/config.json checked against a fixed feed.json, and as a feed.json
 * checked against the config built from that fixed feed.json. Beyond not crashing: only OK or
 * REJECTED may come back, a refusal always has a message, and a feed.json that passes builds
 * the same signed config again, but for services appended after the signed ones (the config
 * ends with its services array, "...]}": all before that closing must be the same bytes).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "list_config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char feed[] =
    "{\"feed_id\":\"f\",\"services\":[\"air\",\"rail\",\"hotel\",\"hotel.star\"],"
    "\"lists\":[{\"id\":\"spc\",\"authority\":\"SPC\",\"stale_after\":\"7d\"},"
    "{\"id\":\"no-fly\",\"authority\":\"CAAC\",\"jurisdictions\":[\"CN\"],"
    "\"stale_after\":\"2d\",\"stale_policy\":\"deny\"}],"
    "\"reasons\":[{\"id\":\"debtor\",\"authority\":\"SPC\",\"legal_basis\":\"Art. 3\","
    "\"contest\":\"12368\",\"scope\":[\"air\"]},{\"id\":\"air-safety\",\"authority\":\"CAAC\","
    "\"legal_basis\":\"Art. 9\",\"contest\":\"CAAC\",\"scope\":[\"air\"]}]}";

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const uint16_t used[1] = {1};
    struct buf sig = BUF_INIT(LIST_CONFIG_MAX_BYTES), again = BUF_INIT(LIST_CONFIG_MAX_BYTES);
    char msg[LIST_CONFIG_ERRMSG];
    enum posgate_err err;

    msg[0] = 0;
    err = list_config_check(feed, strlen(feed), "no-fly", data, size, msg, sizeof(msg));
    if ((err != POSGATE_OK && err != POSGATE_ERR_REJECTED) ||
        (err == POSGATE_ERR_REJECTED && msg[0] == 0)) {
        abort();
    }
    if (list_config_build(feed, strlen(feed), "no-fly", used, 1, &sig, msg, sizeof(msg)) !=
        POSGATE_OK) {
        abort();
    }
    msg[0] = 0;
    err = list_config_check(data, size, "no-fly", sig.data, sig.len, msg, sizeof(msg));
    if ((err != POSGATE_OK && err != POSGATE_ERR_REJECTED) ||
        (err == POSGATE_ERR_REJECTED && msg[0] == 0)) {
        abort();
    }
    if (err == POSGATE_OK &&
        list_config_build(data, size, "no-fly", used, 1, &again, msg, sizeof(msg)) == POSGATE_OK &&
        (again.len < sig.len || memcmp(again.data, sig.data, sig.len - 2) != 0)) {
        abort();
    }
    buf_free(&sig);
    buf_free(&again);
    return 0;
}
