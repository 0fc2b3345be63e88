/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Fuzz target for the posgated config parser (agent/daemon/daemon_config.c). Beyond not crashing, an
 * accepted config must respect its own rules: at least one listener, every TCP listener on
 * loopback unless allow_remote, a poll interval in range, http(s) feed URLs, a client
 * certificate only with its key; a rejected one must carry a message.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "daemon_config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct daemon_config c;
    char msg[DAEMON_ERRMSG_MAX];
    enum posgate_err err;

    msg[0] = 0;
    err = daemon_config_parse(data, size, &c, msg, sizeof(msg));
    if (err != POSGATE_OK) {
        if (msg[0] == 0) {
            abort();
        }
        return 0;
    }
    if (c.n_listen == 0 || c.n_listen > DAEMON_LISTEN_MAX || c.n_feed_urls > DAEMON_FEED_URLS_MAX ||
        c.poll_interval_s < 1 || c.poll_interval_s > DAEMON_POLL_MAX_S || c.data_dir[0] == 0) {
        abort();
    }
    for (size_t i = 0; i < c.n_listen; i++) {
        if (!c.listen[i].loopback && !c.allow_remote) {
            abort();
        }
        if (c.listen[i].kind == DAEMON_LISTEN_UNIX ? c.listen[i].path[0] != '/'
                                                   : c.listen[i].port == 0) {
            abort();
        }
    }
    for (size_t i = 0; i < c.n_feed_urls; i++) {
        if (strncmp(c.feed_urls[i], "http://", 7) != 0 &&
            strncmp(c.feed_urls[i], "https://", 8) != 0) {
            abort();
        }
    }
    if ((c.client_cert[0] != 0) != (c.client_key[0] != 0)) {
        abort();
    }
    return 0;
}
