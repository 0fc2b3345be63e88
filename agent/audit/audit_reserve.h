/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The reserve of a full disk (audit.h): DIR/audit.db.reserve, AUDIT_RESERVE_BYTES set aside
 * while there is room, removed when the file system runs short or a commit fails, so that the
 * queue's commits go on with the space it gave back, and made anew once there is room again.
 */
#ifndef POSGATE_AUDIT_RESERVE_H
#define POSGATE_AUDIT_RESERVE_H

#include <stdint.h>

#include "audit.h"
#include "posgate_err.h"

struct audit_reserve {
    char path[AUDIT_PATH_MAX + 16]; /* the queue's path + AUDIT_RESERVE_SUFFIX */
    char dir[AUDIT_PATH_MAX];       /* the directory of the queue: its file system's free space */
    uint64_t bytes;                 /* size of the reserve file present now, 0 when released */
    uint64_t next_ns;               /* free space is looked at again from then on */
};

/* The reserve of the queue at queue_path; TOOBIG for a path past AUDIT_PATH_MAX. */
POSGATE_WUR enum posgate_err audit_reserve_init(struct audit_reserve *r, const char *queue_path);
/* The committer's care of the reserve: after a failed commit (failed) it is released at once;
 * otherwise, at most once a second, released when space is short or made again when space came
 * back. Returns 1 when a release made room (a failed commit is worth one more try). */
int audit_reserve_tend(struct audit_reserve *r, int failed);

#endif
