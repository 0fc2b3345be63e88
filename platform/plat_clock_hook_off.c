/* SPDX-License-Identifier: Apache-2.0 */
/* The wall clock's test hook in a shippable build: there is none (plat_clock_hook.h). */
#include "plat_clock_hook.h"

int
plat_clock_hook_now(int64_t *out)
{
    (void)out;
    return 0;
}
