/* SPDX-License-Identifier: Apache-2.0 */
/* `posgate field-sync STICK`: the stick's layout and the steps are in posgate_admin.h and
 * agent/audit/field_sync_layout.h. */
#ifndef POSGATE_FIELD_SYNC_H
#define POSGATE_FIELD_SYNC_H

/* The command line; returns the exit code. data_dir NULL: the default. */
int field_sync_cli_main(const char *data_dir, int argc, char **argv);

#endif
