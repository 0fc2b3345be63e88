/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A delegated list's configuration as its authority signed it: the TUF target
 * `lists/<id>/config.json`, listed in the list's delegated role (`list-<id>`), so that only a
 * threshold of the authority's keys can change it. config/feed.json stays the operator's (the
 * top-level targets role signs it); a kiosk refuses a feed whose config/feed.json differs from
 * this signed copy for the list, for any reason its entries use, or for the services those
 * entries and reasons name by index. The publisher writes it (list_config_build) whenever it
 * signs the delegated role; the kiosk and the publisher compare (list_config_check).
 *
 * The body is canonical JSON (json_canon.h), the objects copied verbatim from feed.json:
 *
 *   {
 *     "format":   1,
 *     "list":     {"id": "no-fly", "authority": "...", "jurisdictions": ["CN"],
 *                  "stale_after": "7d", "stale_policy": "refer"},    the list object of feed.json
 *     "reasons":  [{"index": 2, "reason": {"id": "...", "scope": [...], ...}}, ...],
 *                 the reasons the list's entries use, by their position in feed.json's reasons
 *                 (strictly increasing), each the reason object of feed.json
 *     "services": ["air", "air.first", ...]   feed.json's services when signed; a later
 *                                             feed.json must start with them (entries and
 *                                             reasons name services by index; appending is
 *                                             allowed, renaming or reordering is not)
 *   }
 *
 * Comparison is of the JSON values, key by key: a key added, removed or changed in the list
 * object or in a used reason object differs (also one that restates a default, such as
 * "stale_policy": "refer" where the authority signed none: fail closed).
 */
#ifndef POSGATE_LIST_CONFIG_H
#define POSGATE_LIST_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "posgate_err.h"

#define LIST_CONFIG_MAX_BYTES (1u << 20) /* largest lists/<id>/config.json accepted */
#define LIST_CONFIG_FORMAT    1
#define LIST_CONFIG_ERRMSG    512 /* errmsg buffers of this size hold any message */

/*
 * Appends the list config of list_id to out (out->max bounds it), taken from len bytes of
 * feed.json (already validated by feed_config_parse): its list object, the reason objects at
 * the n indices of reasons (strictly increasing) and its services. INVALID when the list is
 * not in feed.json, an index is out of range or not increasing; PARSE for malformed JSON;
 * TOOBIG past out->max; NOMEM. errmsg says which.
 */
POSGATE_WUR enum posgate_err list_config_build(const void *feed_json, size_t len,
                                               const char *list_id, const uint16_t *reasons,
                                               size_t n, struct buf *out, char *errmsg,
                                               size_t errcap);

/*
 * Checks len bytes of feed.json against slen bytes of list_id's signed list config. OK when
 * feed.json holds the list object exactly as signed, every signed reason at its signed index
 * exactly as signed, and services starting with the signed ones. REJECTED otherwise, with a
 * message naming the list and the first field that differs, what the authority signed and
 * what feed.json holds, e.g.
 *   list no-fly: config/feed.json differs from what its authority signed in
 *   lists/no-fly/config.json: lists[1].jurisdictions is ["HK"], the authority signed ["CN"]
 * also REJECTED for a malformed signed config or feed.json; NOMEM.
 */
POSGATE_WUR enum posgate_err list_config_check(const void *feed_json, size_t len,
                                               const char *list_id, const void *signed_json,
                                               size_t slen, char *errmsg, size_t errcap);

#endif
