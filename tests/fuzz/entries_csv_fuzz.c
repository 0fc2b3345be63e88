/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Fuzz target for entries.csv: the input is read as a whole entries.csv (header included)
 * against a fixed feed config, with small field and record bounds so the limits are reached.
 * Beyond not crashing, every accepted row must satisfy the rules it was checked against: a
 * known list and reason, a valid window, a strictly increasing scope inside the taxonomy, and
 * a listing id that the feed record module accepts; every error message must name a line.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "entries_csv.h"
#undef FEED_SCOPE_MAX
#include "feed_config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char config_json[] =
    "{\"feed_id\":\"f\",\"services\":[\"air\",\"air.first\",\"rail\",\"rail.hsr\",\"hotel\"],"
    "\"lists\":[{\"id\":\"court\",\"authority\":\"C\",\"stale_after\":\"7d\"},"
    "{\"id\":\"air-ban\",\"authority\":\"A\",\"stale_after\":\"2d\"}],"
    "\"reasons\":[{\"id\":\"debt\",\"authority\":\"C\",\"legal_basis\":\"L\",\"contest\":\"X\","
    "\"scope\":[\"air\",\"rail.hsr\"]},"
    "{\"id\":\"unruly\",\"authority\":\"A\",\"legal_basis\":\"L\",\"contest\":\"X\","
    "\"scope\":[\"air\"]}]}";

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct feed_config *cfg;
    struct entries_csv *r = NULL;
    struct entries_row row;
    char msg[ENTRIES_CSV_ERRMSG_MAX];
    enum posgate_err err;
    FILE *f;

    if (cfg == NULL && feed_config_parse(config_json, strlen(config_json), FEED_CONFIG_STRICT, &cfg,
                                         msg, sizeof msg) != POSGATE_OK) {
        abort();
    }
    if (size == 0) {
        return 0;
    }
    f = fmemopen((void *)data, size, "rb");
    if (f == NULL) {
        return 0;
    }
    err = entries_csv_open(f, "entries.csv", cfg, &r, msg, sizeof msg);
    if (err != POSGATE_OK) {
        if (strstr(msg, "entries.csv line ") == NULL) {
            abort();
        }
        fclose(f);
        return 0;
    }
    while ((err = entries_csv_next(r, &row)) == POSGATE_OK) {
        const struct feed_reason *rs;

        if (row.list >= cfg->n_lists || row.entry.reason >= cfg->n_reasons ||
            row.entry.valid_until <= row.entry.valid_from || row.line < 2 ||
            feed_entry_check(&row.entry, msg, sizeof msg) != POSGATE_OK) {
            abort();
        }
        rs = &cfg->reasons[row.entry.reason];
        for (unsigned i = 0; i < row.entry.scope_count; i++) {
            if (row.entry.scope[i] >= cfg->n_services ||
                (i > 0 && row.entry.scope[i] <= row.entry.scope[i - 1]) ||
                !feed_config_service_within_any(cfg, row.entry.scope[i], rs->scope, rs->n_scope)) {
                abort();
            }
        }
    }
    if (err != POSGATE_ERR_NOTFOUND && strstr(entries_csv_errmsg(r), "entries.csv line ") == NULL) {
        abort();
    }
    entries_csv_free(r);
    fclose(f);
    return 0;
}
