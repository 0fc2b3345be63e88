/* SPDX-License-Identifier: Apache-2.0 */
/* The `posgate audit ...` and `posgate device-key` commands (audit_cli.c), called by main. */
#ifndef POSGATE_AUDIT_CLI_H
#define POSGATE_AUDIT_CLI_H

/* argv[0] is "audit" or "device-key"; data_dir may be NULL. Returns the exit code. */
int audit_cli_main(const char *data_dir, int argc, char **argv);
int device_key_cli_main(const char *data_dir, int argc, char **argv);

#endif
