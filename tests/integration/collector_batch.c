/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Test helper of tests/integration/collector.sh: writes the batch a kiosk's uploader would send
 * (audit_batch_json over DIR/audit.db, signed with DIR/device.key) to OUT, and prints
 * "FIRST LAST HEAD N" (seqs and event count) on stdout.
 * Usage: collector_batch DATA_DIR SINCE MAX OUT
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit.h"
#include "device_key.h"
#include "plat_file.h"

int
main(int argc, char **argv)
{
    char kp[4096], pp[4096], qp[4096], msg[512] = "";
    struct device_key *k = NULL;
    struct audit_queue *q = NULL;
    struct audit_batch_info bi;
    struct buf out = BUF_INIT(64u * 1024u * 1024u);
    unsigned long long since, max;
    char *end;
    int rc = 1;

    if (argc != 5) {
        fprintf(stderr, "usage: collector_batch DATA_DIR SINCE MAX OUT\n");
        return 2;
    }
    since = strtoull(argv[2], &end, 10);
    if (*end != 0) {
        fprintf(stderr, "collector_batch: SINCE: expected an integer, got \"%s\"\n", argv[2]);
        return 2;
    }
    max = strtoull(argv[3], &end, 10);
    if (*end != 0 || max == 0) {
        fprintf(stderr, "collector_batch: MAX: expected a positive integer, got \"%s\"\n", argv[3]);
        return 2;
    }
    snprintf(kp, sizeof(kp), "%s/device.key", argv[1]);
    snprintf(pp, sizeof(pp), "%s/device.pub", argv[1]);
    snprintf(qp, sizeof(qp), "%s/audit.db", argv[1]);
    if (device_key_load(kp, pp, &k, msg, sizeof(msg)) != POSGATE_OK ||
        audit_open(qp, k, NULL, 0, &q, msg, sizeof(msg)) != POSGATE_OK) {
        fprintf(stderr, "collector_batch: %s\n", msg);
        goto out;
    }
    if (audit_batch_json(q, since, (size_t)max, &out, &bi) != POSGATE_OK ||
        plat_write_atomic(argv[4], out.data, out.len, 0644) != POSGATE_OK) {
        fprintf(stderr, "collector_batch: cannot make or write the batch\n");
        goto out;
    }
    printf("%llu %llu %llu %zu\n", (unsigned long long)bi.first_seq,
           (unsigned long long)bi.last_seq, (unsigned long long)bi.head_seq, bi.n_events);
    rc = 0;
out:
    audit_close(q);
    device_key_free(k);
    buf_free(&out);
    return rc;
}
