/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Exclusive locks between processes on a lock file (flock), for work that must never run twice
 * at once on the same directory: updates of a kiosk's data directory, runs of the publisher on
 * its state. The lock belongs to the open file description, so it ends with the process
 * whatever way it ends (a SIGKILL too); no stale lock is ever left to clean up. The file holds
 * the decimal pid of the holder, for messages only ("an update is running (pid 4242)").
 *
 *   +---------------------------+
 *   | "<pid>\n" of the holder   |   written after the lock is taken; never trusted for locking
 *   +---------------------------+
 */
#ifndef POSGATE_PLAT_LOCK_H
#define POSGATE_PLAT_LOCK_H

#include <stddef.h>

#include "posgate_err.h"

struct plat_lock {
    int fd; /* -1: not held */
};

#define PLAT_LOCK_INIT {-1}

/* Takes the lock on path (created 0600 when missing), waiting at most wait_ms (0: not at all).
 * RETRY when another process still holds it after that: *holder_pid (may be NULL) is then its
 * pid as written in the file, 0 when unknown. IO (errno text in msg) when the file cannot be
 * opened. */
POSGATE_WUR enum posgate_err plat_lock_take(struct plat_lock *l, const char *path, long wait_ms,
                                            long *holder_pid);
/* Takes the lock on a directory itself (flock on the directory), creating no file in it, for
 * directories whose contents are compared (the publisher's state); no holder pid. Waits and
 * errors as plat_lock_take; NOTFOUND when dir does not exist. */
POSGATE_WUR enum posgate_err plat_lock_dir(struct plat_lock *l, const char *dir, long wait_ms);
/* Releases the lock; a no-op when it is not held. */
void plat_lock_release(struct plat_lock *l);

#endif
