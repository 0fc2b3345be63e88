/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The admin interface of the kiosk library: what the posgate command line (agent/cli) and the
 * posgated daemon (agent/daemon) need beyond posgate.h. They include only posgate.h, this
 * header, platform/ and the bounded JSON parser (tools/check-layers.sh holds them to it); the
 * store, the update pipeline, the audit queue, the fetcher and the API's private struct stay
 * behind it. Not installed: it may change with the programs built beside it.
 */
#ifndef POSGATE_ADMIN_H
#define POSGATE_ADMIN_H

#include "posgate.h"

/* ==== the posgate command line ============================================================ */


/* ==== end of the command line's part ====================================================== */



/* ==== posgated ============================================================================ */


/* ==== end of posgated's part ============================================================== */

#endif
