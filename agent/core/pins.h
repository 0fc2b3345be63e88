/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Delegation pins: the kiosk's memory of which authority keys sign each delegated list. TUF lets
 * the top-level targets role (the feed operator's key) rewrite its delegations at will, so on its
 * own it cannot stop an operator from undelegating a list, or re-pointing it at keys of its own,
 * and then signing the list itself. The first time a kiosk sees a list delegated it pins the
 * delegated role's name, threshold and keys (SHA-256 of each key's canonical JSON); from then on
 * an update whose delegation of that list differs in any of these is refused. An authority's key
 * change is authorised only by the root role (pins_apply_root below), never by the operator's
 * online keys. The update (update.c) also walks the pins
 * (pins_foreach) to hold each pinned list's entry in config/feed.json to the configuration its
 * authority signed in the pinned role (list_config.h), so the operator cannot drop or loosen it.
 * Only the root may retire a pinned list (pins_apply_root, "retired"); the kiosk then unpins it
 * once a feed no longer carries it (pins_check), and keeps a record of the retirement.
 *
 * pins.json (written atomically, mode 0600):
 *
 *   {"lists":   {"<list id>": {"role": "list-<id>", "threshold": 1,
 *                              "keys": ["<sha256 hex of canonical key JSON>", ...],
 *                              "root": N,     set from a record, first found in root N
 *                              "retired": "<RFC 3339>"}},   that record retires the list
 *    "retired": {"<list id>": {...the last pin, "root": N, "retired": "<RFC 3339>"}}}
 *
 *   lists    pinned lists: a feed that carries one must delegate it exactly so. A pin with
 *            "retired" (a retiring list) is held to its delegation while the feed still
 *            carries the list; the first feed without it moves the pin to "retired".
 *   retired  lists the root retired and this kiosk's feed then dropped ("root": the version of
 *            the first verified root this kiosk found the record in; "retired": the record's
 *            time). A feed that lists one again is refused until a root records the list anew.
 *            "root" and "retired" are absent from first-sight pins; "retired" absent when no
 *            list was ever retired.
 */
#ifndef POSGATE_PINS_H
#define POSGATE_PINS_H

#include <stddef.h>

#include "feed_config.h"
#include "posgate_err.h"
#include "tuf_meta.h"

/* Checks the delegations in the trusted top-level targets metadata (targets_json, already
 * verified; meta its parsed form) for every list of cfg against the pins at pins_path, pins
 * lists delegated for the first time, and unpins each retiring list cfg no longer has (moved to
 * "retired"), rewriting the file when any of these changed it. REJECTED with a message naming
 * the list when a pinned delegation was removed or changed, or when cfg lists a list this
 * kiosk holds as retired; IO, NOMEM; CORRUPT for an unreadable pins file. */
POSGATE_WUR enum posgate_err pins_check(const char *pins_path, const void *targets_json, size_t len,
                                        const struct tuf_meta *meta, const struct feed_config *cfg,
                                        char *errmsg, size_t errcap);

/* Calls fn with the list id and the pinned role name of every list pinned at pins_path, in
 * the file's order; a missing file pins nothing. A non-OK return from fn stops the walk and is
 * returned. CORRUPT (errmsg says why) for an unreadable pins file; IO, NOMEM. */
POSGATE_WUR enum posgate_err pins_foreach(const char *pins_path,
                                          enum posgate_err (*fn)(void *ctx, const char *list_id,
                                                                 const char *role),
                                          void *ctx, char *errmsg, size_t errcap);

/*
 * Root-authorised pins. The root role (threshold of the offline root keys, never the operator's
 * online keys) may record each delegated list's authority in its signed body:
 *
 *   "x-posgate-authorities": {"<list id>": {"role": "list-<id>", "threshold": 1,
 *                                            "keys": ["<sha256 hex of canonical key JSON>"],
 *                                            "retired": "<RFC 3339>"}}      (optional)
 *
 * (for keys written by tuf_writer the hash is the TUF keyid). Every list the verified root
 * records is pinned to that record, replacing an earlier pin (first sight or an older root's;
 * a pin that already says what the record says keeps the root version that set it); pins_check
 * then holds the feed's delegation to it. A list the root does not record keeps its pin.
 *
 * Retirement: a record with "retired": "<RFC 3339>" (its last authority kept beside it) marks
 * the list retired by the root threshold. Its pin becomes a retiring one (above), also on a
 * kiosk that never pinned the list; a list already under "retired" stays there. A record
 * without "retired" for a list under "retired" takes it out: the list returns, pinned to its
 * new record. The operator's online keys cannot write any of this: it is in the root.
 *
 * REJECTED for a malformed record (the root is trusted, so a malformed record is a publisher's
 * mistake, refused rather than guessed at); CORRUPT for an unreadable pins file; IO.
 */
#define PINS_ROOT_FIELD "x-posgate-authorities"
POSGATE_WUR enum posgate_err pins_apply_root(const char *pins_path, const void *root_json,
                                             size_t len, char *errmsg, size_t errcap);

#endif
