/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Test helper of tests/integration/collector_pg_fleet.sh: simulated kiosks. For each of N
 * devices it makes DIR/dNNNN/ with a device key (device.key, device.pub), an audit queue of
 * EVENTS decisions, and the batches its uploader would send, CHUNK events each, signed:
 * DIR/dNNNN/batch-K.json for K = 0, 1, ... (batch K holds seqs K*CHUNK+1 ..).
 * Usage: collector_fleet DIR N EVENTS CHUNK
 */
#define _DEFAULT_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "audit.h"
#include "device_key.h"
#include "plat_clock.h"
#include "plat_file.h"

static int
arg(const char *s, unsigned long *out)
{
    char *end;

    *out = strtoul(s, &end, 10);
    return *end == 0 && *out > 0;
}

static int
one_device(const char *dir, unsigned long d, unsigned long events, unsigned long chunk)
{
    char base[4096], kp[4200], pp[4200], qp[4200], bp[4200], msg[512] = "";
    struct device_key *k = NULL;
    struct audit_queue *q = NULL;
    struct audit_options o;
    struct buf out = BUF_INIT(64u * 1024u * 1024u);
    int ok = 0;

    snprintf(base, sizeof(base), "%s/d%04lu", dir, d);
    snprintf(kp, sizeof(kp), "%s/device.key", base);
    snprintf(pp, sizeof(pp), "%s/device.pub", base);
    snprintf(qp, sizeof(qp), "%s/audit.db", base);
    audit_options_default(&o);
    o.durability = AUDIT_BATCHED; /* a test fixture: no fsync per event */
    if (mkdir(base, 0700) != 0 || device_key_create(kp, pp, msg, sizeof(msg)) != POSGATE_OK ||
        device_key_load(kp, pp, &k, msg, sizeof(msg)) != POSGATE_OK ||
        audit_open(qp, k, &o, 0, &q, msg, sizeof(msg)) != POSGATE_OK) {
        fprintf(stderr, "collector_fleet: device %lu: %s\n", d, msg[0] != 0 ? msg : base);
        goto out;
    }
    for (unsigned long i = 1; i <= events; i++) {
        struct audit_event e;

        memset(&e, 0, sizeof(e));
        snprintf(e.id, sizeof(e.id), "%016lx%016lx", d, i);
        e.time_us = plat_wall_us();
        e.mono_us = (int64_t)(plat_mono_ns() / 1000u);
        e.decision = i % 3 == 0 ? AUDIT_DENY : AUDIT_REFER;
        snprintf(e.service, sizeof(e.service), "%s", "rail.hsr");
        snprintf(e.operator_id, sizeof(e.operator_id), "clerk-%lu", i % 5);
        e.n_subjects = 1;
        memset(e.subjects[0], (int)(i & 0xff), AUDIT_SUBJECT_LEN);
        e.data_age_s = -1;
        if (audit_record(q, &e, NULL) != POSGATE_OK) {
            fprintf(stderr, "collector_fleet: device %lu: cannot record event %lu\n", d, i);
            goto out;
        }
    }
    if (audit_flush(q) != POSGATE_OK) {
        goto out;
    }
    for (unsigned long b = 0; b * chunk < events; b++) {
        out.len = 0;
        snprintf(bp, sizeof(bp), "%s/batch-%lu.json", base, b);
        if (audit_batch_json(q, b * chunk, (size_t)chunk, &out, NULL) != POSGATE_OK ||
            plat_write_atomic(bp, out.data, out.len, 0644) != POSGATE_OK) {
            fprintf(stderr, "collector_fleet: device %lu: cannot write %s\n", d, bp);
            goto out;
        }
    }
    ok = 1;
out:
    audit_close(q);
    device_key_free(k);
    buf_free(&out);
    return ok;
}

int
main(int argc, char **argv)
{
    unsigned long n, events, chunk;

    if (argc != 5 || !arg(argv[2], &n) || !arg(argv[3], &events) || !arg(argv[4], &chunk)) {
        fprintf(stderr, "usage: collector_fleet DIR N EVENTS CHUNK (positive integers)\n");
        return 2;
    }
    for (unsigned long d = 0; d < n; d++) {
        if (!one_device(argv[1], d, events, chunk)) {
            return 1;
        }
    }
    return 0;
}
