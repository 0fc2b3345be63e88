/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The transparency report (docs/collector.md, "Transparency report"): a month's aggregates per
 * list and service, for `posgate-hub report --month YYYY-MM [--json|--html]` and the dashboard
 * (GET /v1/fleet/report?month=YYYY-MM). Aggregates only: no device id, operator, decision id or
 * listing id ever appears in it; list ids and service names do.
 *
 *   checks      per service: decision events, and the ALLOWs each summary stands for (its
 *               per-service counts; services_other under "(other)")
 *   allow, deny, refer, error
 *               per service, each decision once; DENY and REFER also per list and service,
 *               once under every distinct list its reasons cite (a decision citing two lists
 *               counts under both, so the list rows do not add up to the service's)
 *   overrides, overrides_refused
 *               supervisor overrides granted and refused (the event's "override" object, with
 *               "refused": true when refused), per service and per list cited
 *   lookups     contests answered (the lookups table: posgate-hub decision and
 *               GET /v1/decisions/{id}), per service and per list the decision cites
 *   propagation the feed versions first installed in the month, each version's p50, p95 and
 *               max from its signed issue time to each device's install, and the median over
 *               all those installs (hub_fleet_propagation: the code of /v1/fleet/versions)
 *
 * The month is UTC. A decision belongs to the month of its own time (the kiosk's clock:
 * "time", a summary's "last_time"), when the person was served, not of its arrival: a stick
 * brought weeks later still counts in the month of the checks. Events are read from those
 * received since the month began (on PostgreSQL the month's partitions and later ones): one
 * received before its own month began, only possible from a kiosk whose clock ran fast, is in
 * no month's report. Lookups belong to the month of the collector's clock when answered.
 */
#ifndef POSGATE_HUB_TRANSPARENCY_H
#define POSGATE_HUB_TRANSPARENCY_H

#include <stdint.h>

#include "buf.h"
#include "hub_db.h"
#include "posgate_err.h"

enum hub_transparency_format {
    HUB_TRANSPARENCY_TEXT,
    HUB_TRANSPARENCY_JSON,
    HUB_TRANSPARENCY_HTML
};

/* "YYYY-MM" (1970-01 .. 9999-12) as the month's first second and the next month's, UTC:
 * INVALID for anything else. */
POSGATE_WUR enum posgate_err hub_transparency_month(const char *month, int64_t *from_s,
                                                    int64_t *until_s);

/* The report of month appended to out in the format asked: text (a summary and tables), JSON
 * (one line, the keys of docs/collector.md) or HTML (one page: no script, no external URL,
 * every string escaped). now_s is the collector's clock. INVALID for a malformed month. */
POSGATE_WUR enum posgate_err hub_transparency(struct hub_db *db, const char *month, int64_t now_s,
                                              enum hub_transparency_format format, struct buf *out);

/* `posgate-hub report` (argv after "report"); returns the exit code. */
int hub_transparency_main(int argc, char **argv);

#endif
