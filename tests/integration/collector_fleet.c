/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Test helper of tests/integration/collector_pg_fleet.sh: simulated kiosks (tools/bench/
 * bench_fleet.h, shared with the collector's benchmark). For each of N devices it makes
 * DIR/dNNNN/ with a device key (device.key, device.pub), an audit queue of EVENTS decisions, and
 * the batches its uploader would send, CHUNK events each, signed: DIR/dNNNN/batch-K.json for
 * K = 0, 1, ... (batch K holds seqs K*CHUNK+1 ..).
 * Usage: collector_fleet DIR N EVENTS CHUNK
 */
#include <stdio.h>
#include <stdlib.h>

#include "bench_fleet.h"
#include "plat_file.h"

struct dev {
    const char *base;
};

static int
arg(const char *s, unsigned long *out)
{
    char *end;

    *out = strtoul(s, &end, 10);
    return *end == 0 && *out > 0;
}

static int
write_batch(void *ctx, unsigned long index, const struct buf *json,
            const struct audit_batch_info *info)
{
    const struct dev *dv = ctx;
    char bp[4200];

    (void)info;
    snprintf(bp, sizeof(bp), "%s/batch-%lu.json", dv->base, index);
    if (plat_write_atomic(bp, json->data, json->len, 0644) != POSGATE_OK) {
        fprintf(stderr, "collector_fleet: cannot write %s\n", bp);
        return 1;
    }
    return 0;
}

int
main(int argc, char **argv)
{
    unsigned long n, events, chunk;
    char base[4096], msg[512] = "";
    struct dev dv = {base};

    if (argc != 5 || !arg(argv[2], &n) || !arg(argv[3], &events) || !arg(argv[4], &chunk)) {
        fprintf(stderr, "usage: collector_fleet DIR N EVENTS CHUNK (positive integers)\n");
        return 2;
    }
    for (unsigned long d = 0; d < n; d++) {
        struct bench_fleet_dev *dev = NULL;
        enum posgate_err err;

        snprintf(base, sizeof(base), "%s/d%04lu", argv[1], d);
        err = bench_fleet_make(base, d, events, &dev, msg, sizeof(msg));
        if (err == POSGATE_OK) {
            err = bench_fleet_cut(dev, events, chunk, write_batch, &dv, msg, sizeof(msg));
        }
        bench_fleet_free(dev);
        if (err != POSGATE_OK) {
            fprintf(stderr, "collector_fleet: device %lu: %s\n", d, msg);
            return 1;
        }
    }
    return 0;
}
