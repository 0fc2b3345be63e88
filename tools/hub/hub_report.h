/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The collector's reading of a device status report (agent/core/device_report.h draws the
 * envelope and the report inside it) and `posgate-hub devices`, which lists the latest report
 * of each device with the kiosk's own field names. Nothing here trusts the report: hub_db.c
 * verifies the signature with the enrolled key before anything is kept.
 */
#ifndef POSGATE_HUB_REPORT_H
#define POSGATE_HUB_REPORT_H

#include <stddef.h>
#include <stdint.h>

#include "device_key.h"
#include "posgate_err.h"

#define HUB_REPORT_MAX     (1024u * 1024u) /* an envelope */
#define HUB_REPORT_PEM_MAX (64u * 1024u)
#define HUB_REPORT_SIG_MAX 256

struct hub_report {
    char device_id[DEVICE_ID_HEX_LEN + 1];
    int64_t reported_at_us; /* from the signed report */
    char *report;           /* the signed text, NUL-terminated */
    size_t report_len;
    uint8_t sig[HUB_REPORT_SIG_MAX];
    size_t sig_len;
};

/* PARSE with what was expected and found in errmsg: not JSON, v not 1, a member missing or
 * mistyped, a report that is not an object naming the same device_id and a reported_at_us;
 * TOOBIG past HUB_REPORT_MAX. */
POSGATE_WUR enum posgate_err hub_report_parse(const void *json, size_t len,
                                              struct hub_report **out, char *errmsg,
                                              size_t errcap);
void hub_report_free(struct hub_report *r); /* NULL is a no-op */

/* `posgate-hub devices` (argv after "devices"); returns the exit code. */
int hub_devices_main(int argc, char **argv);

#endif
