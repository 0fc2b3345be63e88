/* SPDX-License-Identifier: Apache-2.0 */
/*
 * plat_thread.h on Linux: setpriority applies to one thread when given its thread id.
 */
#define _GNU_SOURCE
#include "plat_thread.h"

#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#define BACKGROUND_NICE 10

void
plat_thread_background(void)
{
#ifdef SYS_gettid
    (void)setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), BACKGROUND_NICE);
#endif
}
