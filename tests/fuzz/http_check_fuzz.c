/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Fuzz target for the POST /v1/check body parser (daemon_check_body_parse). Beyond not
 * crashing, every rejection carries a message naming a field, and an accepted body yields a
 * request with a service and at least one identifier that posgate_check would take. A body the
 * direct reader (daemon_check_body_fast) takes must give the same request through the general
 * parser: the body with its "service" key written "s\u0065rvice", which the direct reader leaves
 * to it.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "daemon_config.h"
#include "posgate_admin.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The general parser's request for a body the direct reader took into fast. */
static void
same_as_general(const uint8_t *data, size_t size, const struct posgate_request *fast)
{
    static const char esc[] = "\"s\\u0065rvice\"";
    struct posgate_request *rq = NULL;
    char msg[DAEMON_ERRMSG_MAX];
    uint8_t *alt;
    size_t k;

    /* the key: "service" followed by JSON whitespace and ':' (a value holds no quote) */
    for (k = 0; k + 9 <= size; k++) {
        size_t q = k + 9;

        if (memcmp(data + k, "\"service\"", 9) != 0) {
            continue;
        }
        while (q < size &&
               (data[q] == ' ' || data[q] == '\t' || data[q] == '\n' || data[q] == '\r')) {
            q++;
        }
        if (q < size && data[q] == ':') {
            break;
        }
    }
    if (k + 9 > size) {
        abort(); /* the direct reader took a body without a service key */
    }
    alt = malloc(size + sizeof(esc));
    if (alt == NULL || posgate_request_new(&rq) != POSGATE_OK) {
        free(alt);
        return;
    }
    memcpy(alt, data, k);
    memcpy(alt + k, esc, sizeof(esc) - 1);
    memcpy(alt + k + sizeof(esc) - 1, data + k + 9, size - k - 9);
    if (daemon_check_body_fast(alt, size - 9 + sizeof(esc) - 1, rq) == POSGATE_OK ||
        daemon_check_body_parse(alt, size - 9 + sizeof(esc) - 1, rq, msg, sizeof(msg)) !=
            POSGATE_OK ||
        !posgated_request_same(rq, fast)) {
        abort();
    }
    posgate_request_free(rq);
    free(alt);
}

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
    if (daemon_check_body_fast(data, size, rq) == POSGATE_OK) {
        same_as_general(data, size, rq);
    }
    posgate_request_free(rq);
    return 0;
}
