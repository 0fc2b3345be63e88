/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The fleet as the dashboard and GET /v1/fleet/... show it (docs/collector.md, "Fleet
 * dashboard"): the states of each enrolled device, worked out from its latest status report and
 * from what the collector holds of its audit trail; the feed versions across the fleet and how
 * fast each reached the devices (hub_fleet_stats.c); decisions over time (hub_fleet_stats.c).
 * Every answer is one JSON document appended to a buffer; nothing here speaks HTTP
 * (hub_dashboard.c does). Reports are the kiosks' own words (signed by their device key, not
 * checked against anything): a state read from a report says what the device said.
 *
 * A device's states, each judged on its own (a device may be in several):
 *   behind             its feed version is lower than the newest: the served feed's (--feed),
 *                      else the highest that any device reported
 *   stale              a list of its latest report is past its signed stale_after
 *   expired            its installed metadata had expired (metadata_expired)
 *   list_key_mismatch  its list key is not the one the feed was keyed with (list_key)
 *   chain_broken       the collector recorded a break in its audit chain (chain_ok false)
 *   gaps               seqs of its trail that the collector has never received
 *   silent             no report received for longer than silent_s, or none ever
 *   current            a report, and none of the above
 */
#ifndef POSGATE_HUB_FLEET_H
#define POSGATE_HUB_FLEET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "hub_db.h"
#include "posgate_err.h"

struct cJSON;

#define HUB_FLEET_STATES(X)                                                                        \
    X(CURRENT, "current")                                                                          \
    X(BEHIND, "behind")                                                                            \
    X(STALE, "stale")                                                                              \
    X(EXPIRED, "expired")                                                                          \
    X(LIST_KEY, "list_key_mismatch")                                                               \
    X(CHAIN, "chain_broken")                                                                       \
    X(GAPS, "gaps")                                                                                \
    X(SILENT, "silent")

#define HUB_FLEET_STATE_ENUM(name, text) HUB_FLEET_##name,
enum hub_fleet_state { HUB_FLEET_STATES(HUB_FLEET_STATE_ENUM) HUB_FLEET_N_STATES };
#undef HUB_FLEET_STATE_ENUM

#define HUB_FLEET_DAYS_MAX     366  /* the longest window of history an answer reads */
#define HUB_FLEET_HISTORY_MAX  5000 /* reports on one device's page */
#define HUB_FLEET_VERSIONS_MAX 50   /* feed versions in /v1/fleet/versions, newest first */

/* What every answer is computed against. */
struct hub_fleet_opts {
    int64_t now_s;          /* the collector's clock */
    int64_t silent_s;       /* no report for longer: silent */
    int64_t served_version; /* the served feed's timestamp version; 0: none (the fleet's newest) */
    int64_t days;           /* the window of history read, 1..HUB_FLEET_DAYS_MAX */
};

struct hub_fleet_device {
    char id[DEVICE_ID_HEX_LEN + 1];
    struct hub_device_state st;
    struct cJSON *report;   /* the latest status report; NULL when none (or unreadable) */
    int64_t received_at;    /* of the latest report, collector's clock; 0 when none */
    int64_t reported_at_us; /* of the latest report, kiosk's clock */
    int64_t feed_version;   /* of the latest report; -1 when none */
    unsigned states;        /* 1u << enum hub_fleet_state */
};

/* Every enrolled device, ordered by id, read in one snapshot. */
struct hub_fleet {
    struct hub_fleet_device *dev;
    size_t n, cap;
    int64_t newest;     /* the feed version a device should be on; 0 when none is known */
    bool newest_served; /* newest is the served feed's */
};

/* The name of a state ("current", "behind", ...), or NULL past the last. */
const char *hub_fleet_state_name(unsigned state);
/* The served feed's timestamp version (FEED/metadata/timestamp.json, as served: the kiosks
 * verify it, the dashboard only compares numbers), or 0 when it cannot be read. */
int64_t hub_fleet_served_version(const char *feed_dir);

POSGATE_WUR enum posgate_err hub_fleet_load(struct hub_db *db, const struct hub_fleet_opts *o,
                                            struct hub_fleet *f);
void hub_fleet_cleanup(struct hub_fleet *f); /* the fleet loaded; a zeroed one is a no-op */
/* The device of that id, or NULL. */
struct hub_fleet_device *hub_fleet_find(struct hub_fleet *f, const char *id);
/* One device as the devices answer lists it, a new object (NULL: out of memory). */
struct cJSON *hub_fleet_device_json(const struct hub_fleet_device *d,
                                    const struct hub_fleet_opts *o);

/* The members every answer starts with (now, silent_minutes, newest_feed_version,
 * newest_from, devices_enrolled), a new object (NULL: out of memory). */
struct cJSON *hub_fleet_doc(const struct hub_fleet *f, const struct hub_fleet_opts *o);

/* GET /v1/fleet/overview: devices by state, by feed version and by software version. */
POSGATE_WUR enum posgate_err hub_fleet_overview(struct hub_db *db, const struct hub_fleet_opts *o,
                                                struct buf *out);
/* GET /v1/fleet/devices: every device with its states and the figures of its latest report. */
POSGATE_WUR enum posgate_err hub_fleet_devices(struct hub_db *db, const struct hub_fleet_opts *o,
                                               struct buf *out);
/* GET /v1/fleet/devices/{id}: the device, its latest report whole, its open gaps and chain
 * breaks, and its reports of the window, newest first, at most limit (1..HUB_FLEET_HISTORY_MAX).
 * NOTFOUND when no enrolled device has that id. */
POSGATE_WUR enum posgate_err hub_fleet_device(struct hub_db *db, const char *id,
                                              const struct hub_fleet_opts *o, int64_t limit,
                                              struct buf *out);

/* GET /v1/fleet/versions (hub_fleet_stats.c): per feed version, newest first, the devices on
 * it, those still behind it and, for a version issued inside the window, its propagation:
 * from the signed issue time to the install on each device that has it (p50, p95, max). */
POSGATE_WUR enum posgate_err hub_fleet_versions(struct hub_db *db, const struct hub_fleet_opts *o,
                                                struct buf *out);

/* Delisting propagation over a span (the transparency report, hub_transparency.h): the feed
 * versions first installed inside [from_s, until_s), that is whose earliest install on any
 * device (its first report of the version or a later one) lies in it, each with the figures
 * /v1/fleet/versions gives it, computed by the same code over the status reports received
 * since from_s - HUB_FLEET_PROP_LOOKBACK_S: a version issued before that is left out (its
 * installs may lie before what was read, and so its first), as the dashboard leaves out the
 * propagation of a version issued before its window. Every device that has a version counts,
 * also those that installed it after until_s. latency_s pools the installs of all the span's
 * versions, sorted; median_s is their nearest-rank median (-1: none). */
#define HUB_FLEET_PROP_LOOKBACK_S (31 * 86400)
struct hub_fleet_prop_version {
    int64_t feed_version;
    int64_t issued_s;        /* its signed issue time */
    int64_t first_install_s; /* on the collector's clock */
    size_t devices;          /* that have it */
    int64_t p50_s, p95_s, max_s;
};
struct hub_fleet_prop {
    struct hub_fleet_prop_version *v; /* by feed version */
    size_t n;
    int64_t *latency_s;
    size_t installs;
    int64_t median_s;
};
POSGATE_WUR enum posgate_err hub_fleet_propagation(struct hub_db *db,
                                                   const struct hub_fleet_opts *o, int64_t from_s,
                                                   int64_t until_s, struct hub_fleet_prop *out);
void hub_fleet_prop_cleanup(struct hub_fleet_prop *p); /* a zeroed one is a no-op */

enum hub_fleet_by {
    HUB_FLEET_BY_DECISION,
    HUB_FLEET_BY_LIST,
    HUB_FLEET_BY_SERVICE,
    HUB_FLEET_BY_LISTING
};
/* GET /v1/fleet/decisions?by=...&bucket=day|hour (hub_fleet_stats.c): decisions counted per
 * day or hour of their own time (the kiosk's clock) over the window, one series per decision,
 * list, service or listing (LIST/LISTING_ID of DENYs and REFERs). INVALID for hourly buckets
 * over more than 31 days. */
POSGATE_WUR enum posgate_err hub_fleet_decisions(struct hub_db *db, const struct hub_fleet_opts *o,
                                                 enum hub_fleet_by by, bool hourly,
                                                 struct buf *out);

/* Appends the document (cJSON, freed) as one line of JSON: NOMEM when doc is NULL. */
POSGATE_WUR enum posgate_err hub_fleet_emit(struct cJSON *doc, struct buf *out);

#endif
