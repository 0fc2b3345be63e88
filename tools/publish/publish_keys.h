/* SPDX-License-Identifier: Apache-2.0 */
/*
 * posgate-publish key commands (publish_keys.c): rotation of any top-level role's keys, the
 * root-signed record of each delegated list's authority keys, and threshold signing across
 * machines (export the unsigned role, sign it with one key elsewhere, add the signatures).
 * main() in publish_main.c dispatches to these; each returns the process exit code
 * (0 ok, 2 usage or invalid input, 4 refused, 5 I/O).
 *
 * Files they read and write:
 *
 *   +-----------------------------+----------------------------------------------------------+
 *   | proposal (export, rotate    | {"signatures":[], "signed":{...}}: the next version of a  |
 *   | --export, authorize         | role, ordinary JSON, unsigned (signatures are over the   |
 *   |                             | canonical JSON of "signed"); `sign` appends one          |
 *   | --export)                   | {"keyid","sig"} per key; add-signatures merges the files |
 *   | STATE/publish.json          | root_keys (paths, pruned to the current root keys after  |
 *   |                             | a root change), online_keys (paths of rotated-in online  |
 *   |                             | keys, loaded by every update and refresh)                |
 *   +-----------------------------+----------------------------------------------------------+
 */
#ifndef POSGATE_PUBLISH_KEYS_H
#define POSGATE_PUBLISH_KEYS_H

int publish_cmd_rotate(int argc, char **argv);
int publish_cmd_authorize(int argc, char **argv);
int publish_cmd_export(int argc, char **argv);
int publish_cmd_sign(int argc, char **argv);
int publish_cmd_add_signatures(int argc, char **argv);

#endif
