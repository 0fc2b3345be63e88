/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The device status report (docs/collector.md, "Device status"): what a kiosk tells its
 * collector about itself, signed with its device key so that a captured report cannot be
 * passed off as another device's, and dated so that a replayed old one cannot overwrite a
 * newer one (the collector keeps the one with the highest reported_at_us as the latest).
 * posgated sends it with each upload round (a heartbeat when there is nothing to upload);
 * `posgate field-sync` writes it onto the stick. The status object is `posgate status --json`
 * itself (report_status_json), so the field names are the same everywhere.
 *
 *   +------------------------ the envelope (JSON) -------------------------+
 *   | v          1                                                         |
 *   | device_id  32 hex                                                    |
 *   | report     string: the report's JSON text, exactly the bytes signed   |
 *   | signature  hex DER ECDSA P-256 by the device key over                |
 *   |            "posgate-device-report/v1\n" device_id "\n" report        |
 *   +----------------------------------------------------------------------+
 *   +------------------------ report (inside) -----------------------------+
 *   | v                 1                                                  |
 *   | device_id         must equal the envelope's                          |
 *   | reported_at_us    the kiosk's wall clock: orders reports of a device |
 *   | software_version  "0.1.0"                                            |
 *   | status            the object of `posgate status --json`: feed_version,|
 *   |                   lists [{id, seq, digest, data_age_s, stale ...}],  |
 *   |                   metadata_expired, list_key, key_filter, audit      |
 *   |                   {head_seq, acked_seq, unsent, oldest_unsent_age_s} |
 *   | sync              {result, source: "network"|"bundle", at} or null   |
 *   | clock_offset_s    kiosk clock minus the collector's Date, or null    |
 *   +----------------------------------------------------------------------+
 */
#ifndef POSGATE_DEVICE_REPORT_H
#define POSGATE_DEVICE_REPORT_H

#include <stdint.h>

#include "buf.h"
#include "posgate.h"
#include "posgate_err.h"

#define DEVICE_REPORT_MAGIC "posgate-device-report/v1\n"
#define DEVICE_REPORT_MAX   (1024u * 1024u) /* an envelope, as sent */

/* The last feed update this process knows of; all NULL / 0 when none. */
struct device_report_sync {
    const char *source; /* "network" or "bundle" */
    const char *result; /* "ok", "unchanged", "refused: ...", "failed: ..." */
    int64_t at;         /* wall seconds */
};

/* The signed envelope for pg's device into out (reset first). sync and clock_offset_s may be
 * NULL (reported as null). */
POSGATE_WUR enum posgate_err device_report_json(struct posgate *pg,
                                                const struct device_report_sync *sync,
                                                const int64_t *clock_offset_s, int64_t now_us,
                                                struct buf *out);
/* The bytes the signature covers, into out (reset first). */
POSGATE_WUR enum posgate_err device_report_message(const char *device_id, const char *report,
                                                   size_t len, struct buf *out);

#endif
