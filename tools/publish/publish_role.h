/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A delegated role's next version, built away from the operator's state: how authority-sign
 * (publish_authority.c) makes the role of a handover (handover.h). The draft starts from the
 * role's last signed version as the public feed holds it (or, when the feed does not delegate the
 * list yet, from an empty role listing the targets the top-level role lists for the list: what
 * the operator's `delegate` moves into the role), takes the changes of an update run through its
 * target sink (publish_internal.h), and is signed as version N + 1 with the authority's keys.
 * Each target it lists anew is remembered with its file, to be carried by the handover.
 *
 * The body is built the way the TUF writer builds one (tuf_writer.h), so that the operator's
 * writer, given the same targets, holds the same body: target entries {"custom", "hashes":
 * {"sha256"}, "length"}, "version", "expires", and the signing time as "x-posgate-issued".
 */
#ifndef POSGATE_PUBLISH_ROLE_H
#define POSGATE_PUBLISH_ROLE_H

#include <stddef.h>
#include <stdint.h>

#include "handover.h"
#include "publish_internal.h"

struct role_draft;

/* From the role's last signed file (role_file, len bytes): its "signed" body. paths are the
 * delegation's path patterns (copied): a target outside them is refused. */
POSGATE_WUR enum posgate_err role_draft_from_role(const void *role_file, size_t len,
                                                  const char *const *paths, size_t npaths,
                                                  struct role_draft **out);
/* A new role: an empty targets body of targets_file's spec_version (the verified top-level
 * targets that will delegate it), listing the entries of targets_file whose names start with
 * prefix. */
POSGATE_WUR enum posgate_err role_draft_from_targets(const void *targets_file, size_t len,
                                                     const char *prefix, const char *const *paths,
                                                     size_t npaths, struct role_draft **out);
void role_draft_free(struct role_draft *d); /* NULL is a no-op */

/* The sink that lists targets in the draft (publish_internal.h). */
void role_draft_sink(struct role_draft *d, struct target_sink *t);

/* Remembers path as the content of target name, which the draft lists already, to be carried
 * too. */
POSGATE_WUR enum posgate_err role_draft_carry(struct role_draft *d, const char *name,
                                              const char *path);
/* The targets to carry (listed anew, or given to role_draft_carry), with their files (borrowed
 * from d). */
const struct handover_file *role_draft_carried(const struct role_draft *d, size_t *n);

/* Writes {"signatures": [], "signed": body} with version, expires and the signing time now set
 * to path (mode 0600), for tuf_writer_sign_file. */
POSGATE_WUR enum posgate_err role_draft_write(struct role_draft *d, int64_t version,
                                              int64_t expires, int64_t now, const char *path);

#endif
