/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Fuzz target for the POST /v1/check body parser (daemon_check_body_parse). Beyond not
 * crashing, every rejection carries a message naming a field, and an accepted body yields a
 * request with a service and at least one identifier that posgate_check would take.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "daemon_config.h"
#include "posgate_admin.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct posgate_request *rq = NULL;
    struct posgated_request_view v;
    char msg[DAEMON_ERRMSG_MAX];
    enum posgate_err err;

    if (posgate_request_new(&rq) != POSGATE_OK) {
        return 0;
    }
    msg[0] = 0;
    err = daemon_check_body_parse(data, size, rq, msg, sizeof(msg));
    if (err != POSGATE_OK) {
        if (msg[0] == 0 || strchr(msg, ':') == NULL) {
            abort();
        }
    } else {
        posgated_request_view(rq, &v);
        if (v.service[0] == 0 || v.n_ids == 0 || v.n_ids > POSGATED_IDS_MAX) {
            abort();
        }
    }
    posgate_request_free(rq);
    return 0;
}
