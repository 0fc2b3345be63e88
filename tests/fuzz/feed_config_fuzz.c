/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Fuzz target for the feed.json parser, in strict and tolerant modes. Beyond not crashing, an
 * accepted config must be self-consistent: every lookup finds its own index, every parent is a
 * strict prefix one label shorter, every reason scope names a service, and strict acceptance
 * implies tolerant acceptance.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "feed_config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check_config(const struct feed_config *cfg)
{
    for (unsigned i = 0; i < cfg->n_services; i++) {
        const struct feed_service *s = &cfg->services[i];

        if (feed_config_service_find(cfg, s->name) != (int)i ||
            !feed_config_service_within(cfg, i, i)) {
            abort();
        }
        if (s->parent != FEED_NONE) {
            size_t pl = strlen(cfg->services[s->parent].name);

            if (s->parent >= cfg->n_services || cfg->services[s->parent].depth + 1 != s->depth ||
                strncmp(s->name, cfg->services[s->parent].name, pl) != 0 || s->name[pl] != '.' ||
                !feed_config_service_within(cfg, i, s->parent) ||
                feed_config_service_within(cfg, s->parent, i)) {
                abort();
            }
        } else if (s->depth != 1) {
            abort();
        }
    }
    for (unsigned i = 0; i < cfg->n_lists; i++) {
        if (feed_config_list_find(cfg, cfg->lists[i].id) != (int)i ||
            cfg->lists[i].stale_after_s <= 0) {
            abort();
        }
    }
    for (unsigned i = 0; i < cfg->n_reasons; i++) {
        const struct feed_reason *r = &cfg->reasons[i];

        if (feed_config_reason_find(cfg, r->id) != (int)i || r->n_scope == 0) {
            abort();
        }
        for (unsigned j = 0; j < r->n_scope; j++) {
            if (r->scope[j] >= cfg->n_services) {
                abort();
            }
        }
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct feed_config *strict = NULL, *tolerant = NULL;
    char msg[FEED_ERRMSG_MIN];
    enum posgate_err es, et;

    es = feed_config_parse(data, size, FEED_CONFIG_STRICT, &strict, msg, sizeof(msg));
    et = feed_config_parse(data, size, 0, &tolerant, msg, sizeof(msg));
    if ((es == POSGATE_OK) != (strict != NULL) || (et == POSGATE_OK) != (tolerant != NULL)) {
        abort();
    }
    if (es == POSGATE_OK && et != POSGATE_OK) {
        abort();
    }
    if (strict != NULL) {
        check_config(strict);
    }
    if (tolerant != NULL) {
        check_config(tolerant);
    }
    feed_config_free(strict);
    feed_config_free(tolerant);
    return 0;
}
