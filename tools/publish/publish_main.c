/* SPDX-License-Identifier: Apache-2.0 */
/*
 * posgate-publish: turns entries.csv and feed.json into a signed feed (a TUF repository). It
 * keeps a state directory between runs (the TUF writer's state, the config, the key paths and,
 * per list, the last published snapshot with its seq and state digest), validates every row
 * before anything is published, sorts the rows by (key, listing id) in bounded memory, compares
 * with the last snapshot of each list by a merge walk, refuses a mass change, and writes each
 * changed list's new snapshot and delta as TUF targets. docs/publishing.md is the manual.
 *
 * This file holds the usage and the dispatch to the commands:
 *
 *   init, update, refresh, delegate, bundle   publish_init.c ... publish_bundle.c
 *   authority-sign, accept                    publish_authority.c, publish_accept.c (the
 *                                             handover between two machines, handover.h)
 *   status                                    publish_status.c
 *   rotate, authorize, export, sign,          publish_keys.c
 *   add-signatures
 *
 * The state directory is drawn in publish_internal.h, the external sort in publish_sort.c.
 *
 * Exit codes: 0 ok, 2 usage or invalid input, 4 refused (mass change, missing authority key),
 * 5 I/O or other failure.
 */
#define _XOPEN_SOURCE 700
#include <stdio.h>
#include <string.h>

#include "json_canon.h"
#include "publish_internal.h"
#include "publish_keys.h"
#include "publish_status.h"
#include "version.h"

const char *const prog = "posgate-publish";

static void
usage(FILE *f)
{
    fprintf(f,
            "usage: posgate-publish COMMAND [options]   (COMMAND --help for details)\n"
            "  init      create the publisher state: keys, thresholds, feed config, list key\n"
            "  update    publish entries.csv: new snapshots and deltas of changed lists\n"
            "  refresh   re-sign the timestamp, no list change\n"
            "  status    each role's version, expiry, keys and delegations; warns before expiry\n"
            "  delegate  hand lists/<id>/* to the issuing authority's keys\n"
            "  authority-sign  (the authority, on its machine) sign its list's next version\n"
            "            from entries.csv and the public feed, as a handover file\n"
            "  accept    verify an authority's handover against the delegation and publish it\n"
            "  bundle    one file with the feed's metadata and targets, for a USB stick\n"
            "  rotate    change a top-level role's keys or threshold in a new root version\n"
            "  authorize record a delegated list's authority keys in a new root version,\n"
            "            or its retirement (--retire)\n"
            "  export    write a role's next version unsigned, for signers elsewhere\n"
            "  sign      add one key's signature to an exported role (no state needed)\n"
            "  add-signatures  install a role signed elsewhere (threshold checked)\n"
            "Exit: 0 ok, 2 usage or invalid input, 4 refused, 5 I/O.\n");
}

int
main(int argc, char **argv)
{
    json_init_hooks();
    if (version_asked(argc, argv)) {
        version_print(stdout, "posgate-publish", VERSION_MBEDTLS | VERSION_CJSON | VERSION_UTF8PROC,
                      NULL);
        return EXIT_OK;
    }
    if (argc < 2) {
        usage(stderr);
        return EXIT_USAGE;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        usage(stdout);
        return EXIT_OK;
    }
    if (strcmp(argv[1], "init") == 0) {
        return publish_cmd_init(argc - 2, argv + 2);
    }
    if (strcmp(argv[1], "update") == 0) {
        return publish_cmd_update(argc - 2, argv + 2);
    }
    if (strcmp(argv[1], "refresh") == 0) {
        return publish_cmd_refresh(argc - 2, argv + 2);
    }
    if (strcmp(argv[1], "status") == 0) {
        return publish_status_main(argc - 2, argv + 2);
    }
    if (strcmp(argv[1], "delegate") == 0) {
        return publish_cmd_delegate(argc - 2, argv + 2);
    }
    if (strcmp(argv[1], "authority-sign") == 0) {
        return publish_cmd_authority_sign(argc - 2, argv + 2);
    }
    if (strcmp(argv[1], "accept") == 0) {
        return publish_cmd_accept(argc - 2, argv + 2);
    }
    if (strcmp(argv[1], "bundle") == 0) {
        return publish_cmd_bundle(argc - 2, argv + 2);
    }
    if (strcmp(argv[1], "rotate") == 0) {
        return publish_cmd_rotate(argc - 2, argv + 2);
    }
    if (strcmp(argv[1], "authorize") == 0) {
        return publish_cmd_authorize(argc - 2, argv + 2);
    }
    if (strcmp(argv[1], "export") == 0) {
        return publish_cmd_export(argc - 2, argv + 2);
    }
    if (strcmp(argv[1], "sign") == 0) {
        return publish_cmd_sign(argc - 2, argv + 2);
    }
    if (strcmp(argv[1], "add-signatures") == 0) {
        return publish_cmd_add_signatures(argc - 2, argv + 2);
    }
    die_msg("unknown command \"%s\"", argv[1]);
    usage(stderr);
    return EXIT_USAGE;
}
