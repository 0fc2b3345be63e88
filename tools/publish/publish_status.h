/* SPDX-License-Identifier: Apache-2.0 */
/* `posgate-publish status` (publish_status.c). */
#ifndef POSGATE_PUBLISH_STATUS_H
#define POSGATE_PUBLISH_STATUS_H

/* argv: the arguments after "status". Returns the exit code (0, 1 a warning, 2, 5). */
int publish_status_main(int argc, char **argv);

#endif
