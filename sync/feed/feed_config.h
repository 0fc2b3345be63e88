/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The feed configuration: the publisher's feed.json, published verbatim as the TUF target
 * `config/feed.json`, holding the signed service taxonomy, the lists and the reasons. This
 * module parses and validates it (through json_parse_bounded, with hard caps on every count and
 * string length) into an immutable struct feed_config, and answers the lookups the publisher,
 * the import and the decision engine need without allocating. Indices are positions in the
 * JSON arrays: a service's index is its position in `services`, a list's in `lists`, a
 * reason's in `reasons`; the binary records carry these indices, so the arrays are append-only
 * between feed versions (the publisher's concern).
 *
 *   {
 *     "feed_id":  "cn-transport",                      1..64 of [A-Za-z0-9._-]
 *     "list_key_check": "3f9c0a17d2b4e861",            16 lower-case hex digits: the list
 *                                                      key's check value (list_key.h), added
 *                                                      by posgate-publish; absent in the
 *                                                      operator's input is fine, but a kiosk
 *                                                      refuses a feed without it
 *     "services": ["air", "air.first", "rail", ...],   dotted labels of [a-z0-9_-], each
 *                                                      label 1..32, name <= 64, depth <= 8;
 *                                                      every dotted parent must be listed
 *                                                      (before or after), no duplicates
 *     "lists": [{
 *       "id":            "spc-enforcement",            1..32 of [a-z0-9_-], unique
 *       "authority":     "Supreme People's Court",     1..256 bytes of text
 *       "jurisdictions": ["CN"],                       ISO 3166 alpha-2, upper case;
 *                                                      [] or absent = everywhere
 *       "stale_after":   "7d",                         DURATION (plat_duration_parse), > 0
 *       "stale_policy":  "refer",                      allow|refer|deny; absent = refer
 *       "timezone":      "+08:00"                      the list's UTC offset, [+-]HH:MM
 *                                                      (HH <= 14, MM < 60) or "Z"; absent =
 *                                                      UTC; a date-only valid_from/valid_until
 *                                                      of entries.csv is a whole day there
 *       "mass_change":   {"percent": 10, "rows": 100}  the publisher's guard: an update
 *                                                      changing more than percent (1..100) of
 *                                                      the list AND at least rows (0..10^9)
 *                                                      rows needs --allow-mass-change; absent
 *                                                      = these defaults, either key optional
 *     }],
 *     "reasons": [{
 *       "id":          "court-enforcement",            1..32 of [a-z0-9_-], unique
 *       "authority":   "...",                          1..256 bytes
 *       "legal_basis": "...",                          1..1024 bytes
 *       "contest":     "... https://... / +86 ...",    1..1024 bytes
 *       "scope":       ["air", "rail.hsr"],            1..64 services of the taxonomy
 *       "override":    "none",                         none|supervisor; absent = none
 *       "minors":      "refer"                         deny|refer; absent = deny
 *     }]
 *   }
 *
 * Dates: the publisher turns a date-only bound of entries.csv into an instant with the list's
 * timezone (entries_csv.h): with "+08:00", valid_from 2026-01-01 starts at
 * 2025-12-31T16:00:00Z and valid_until 2026-12-31 (inclusive: the whole day) ends at
 * 2026-12-31T16:00:00Z; a full RFC 3339 timestamp is taken as given. Kiosks receive instants
 * only. A fixed offset rather than a zone name: a whole day stays 24 hours, whatever daylight
 * saving time a region observes (an issuer with DST writes timestamps).
 *
 * Text fields may hold any UTF-8 except control characters (tab and newline are allowed in
 * legal_basis and contest). Unknown keys are refused with FEED_CONFIG_STRICT (the publisher's
 * input) and ignored without it (a kiosk reading a newer feed). Every failure is
 * POSGATE_ERR_INVALID (or PARSE for malformed JSON, TOOBIG past FEED_CONFIG_MAX_BYTES) with a
 * message naming the key and saying what was expected and what was found, e.g.
 * `lists[1].stale_policy: expected "allow", "refer" or "deny", found "sometimes"`.
 */
#ifndef POSGATE_FEED_CONFIG_H
#define POSGATE_FEED_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "posgate_err.h"

#define FEED_CONFIG_MAX_BYTES  (4u << 20) /* largest feed.json accepted */
#define FEED_ID_MAX            64         /* feed_id length */
#define FEED_SERVICES_MAX      1024
#define FEED_SERVICE_NAME_MAX  64 /* whole dotted name */
#define FEED_SERVICE_LABEL_MAX 32 /* one label between dots */
#define FEED_SERVICE_DEPTH_MAX 8  /* labels in a name */
#define FEED_LISTS_MAX         1024
#define FEED_REASONS_MAX       4096
#define FEED_NAME_ID_MAX       32 /* list and reason ids */
#define FEED_AUTHORITY_MAX     256
#define FEED_TEXT_MAX          1024       /* legal_basis, contest */
#define FEED_JURISDICTIONS_MAX 64         /* per list */
#define FEED_REASON_SCOPE_MAX  64         /* services per reason */
#define FEED_MASS_PERCENT      10 /* default mass_change.percent */
#define FEED_MASS_ROWS         100 /* default mass_change.rows */
#define FEED_NONE              UINT16_MAX /* "no index" (a root service's parent) */
#define FEED_ERRMSG_MIN        160        /* errmsg buffers of this size hold any message */
#define FEED_KEY_CHECK_HEX     16         /* list_key_check digits (LIST_KEY_CHECK_HEX) */

/* Parse flags. */
#define FEED_CONFIG_STRICT 0x1u /* refuse unknown keys (publisher); else ignore them (kiosk) */

enum feed_stale_policy { FEED_STALE_ALLOW, FEED_STALE_REFER, FEED_STALE_DENY };

enum feed_override { FEED_OVERRIDE_NONE, FEED_OVERRIDE_SUPERVISOR };

enum feed_minors { FEED_MINORS_DENY, FEED_MINORS_REFER };

struct feed_service {
    char name[FEED_SERVICE_NAME_MAX + 1];
    uint16_t parent; /* index of the dotted parent, FEED_NONE for a root */
    uint8_t depth;   /* 1 for a root ("rail"), 2 for "rail.hsr", ... */
};

struct feed_list {
    char id[FEED_NAME_ID_MAX + 1];
    char *authority;
    uint16_t n_jurisdictions;                      /* 0 = everywhere */
    char jurisdictions[FEED_JURISDICTIONS_MAX][3]; /* "CN", NUL-terminated */
    int64_t stale_after_s;                         /* > 0 */
    char stale_after[16]; /* the DURATION text as written, for notices ("7d") */
    enum feed_stale_policy stale_policy;
    int32_t tz_offset_s; /* "timezone": seconds east of UTC (0 when absent) */
    uint8_t mass_percent;   /* "mass_change": past this share of the list ... */
    uint32_t mass_min_rows; /* ... and at least this many rows, a change is mass */
};

struct feed_reason {
    char id[FEED_NAME_ID_MAX + 1];
    char *authority;
    char *legal_basis;
    char *contest;
    uint16_t n_scope;                      /* >= 1 */
    uint16_t scope[FEED_REASON_SCOPE_MAX]; /* service indices */
    enum feed_override override;
    enum feed_minors minors;
};

/* Immutable after feed_config_parse; safe to share read-only between threads. The fields may
 * be read directly; the arrays have n_* elements. */
struct feed_config {
    char feed_id[FEED_ID_MAX + 1];
    char list_key_check[FEED_KEY_CHECK_HEX + 1]; /* "" when the feed has none */
    uint16_t n_services;
    uint16_t n_lists;
    uint16_t n_reasons;
    struct feed_service *services;
    struct feed_list *lists;
    struct feed_reason *reasons;
    /* Private: indices sorted by name/id for binary search. */
    uint16_t *services_by_name;
    uint16_t *lists_by_id;
    uint16_t *reasons_by_id;
};

/* Parses and validates len bytes of feed.json. flags: FEED_CONFIG_STRICT or 0. On success
 * *out owns a new config (free with feed_config_free); on failure *out is untouched and errmsg
 * (may be NULL; FEED_ERRMSG_MIN bytes or more recommended) holds the reason. */
POSGATE_WUR enum posgate_err feed_config_parse(const void *json, size_t len, unsigned flags,
                                               struct feed_config **out, char *errmsg,
                                               size_t errcap);
/* NULL is a no-op. */
void feed_config_free(struct feed_config *cfg);

/* Lookups: the index, or -1 when absent (or an argument is NULL). O(log n), no allocation,
 * thread-safe. name need not be NUL-terminated in the _n forms. */
int feed_config_service_find(const struct feed_config *cfg, const char *name);
int feed_config_service_find_n(const struct feed_config *cfg, const char *name, size_t len);
int feed_config_list_find(const struct feed_config *cfg, const char *id);
int feed_config_reason_find(const struct feed_config *cfg, const char *id);

/* True when service svc_idx lies inside scope scope_idx: the same service or a dotted
 * descendant (a restriction on rail.hsr covers rail.hsr.first, not rail, not rail.hsrx).
 * False for an index out of range. O(depth), no allocation. */
bool feed_config_service_within(const struct feed_config *cfg, unsigned svc_idx,
                                unsigned scope_idx);
/* True when svc_idx lies inside any of the n scope indices (a reason's scope, or an entry's
 * scope narrowing). */
bool feed_config_service_within_any(const struct feed_config *cfg, unsigned svc_idx,
                                    const uint16_t *scope, size_t n);
/* True when the list applies at a gate of the kiosk jurisdiction cc ("CN"; case-insensitive):
 * its jurisdictions are empty (everywhere) or hold cc. */
bool feed_config_list_applies_in(const struct feed_config *cfg, unsigned list_idx, const char *cc);

/* Names for messages: "stale_policy" values ("allow", ...), never NULL. */
const char *feed_stale_policy_name(enum feed_stale_policy p);
const char *feed_override_name(enum feed_override o);
const char *feed_minors_name(enum feed_minors m);

#endif
