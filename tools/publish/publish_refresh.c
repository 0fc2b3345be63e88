/* SPDX-License-Identifier: Apache-2.0 */
/*
 * `posgate-publish refresh`: signs a new timestamp (and any role with pending changes) without
 * changing a list; given a delegated list's authority key, re-signs that list's role too.
 */
#define _XOPEN_SOURCE 700
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "publish_internal.h"

static void
usage_refresh(FILE *f)
{
    fprintf(f, "usage: posgate-publish refresh --state DIR --out FEEDDIR [--expires DURATION]\n"
               "                               [--authority-key LIST=KEY.key ...]\n"
               "Signs a new timestamp (and any role with pending changes) without changing a\n"
               "list, and writes the repository to FEEDDIR. --expires sets the timestamp's\n"
               "lifetime (default 1d). A delegated list is fresh only as of its authority's last\n"
               "signature: --authority-key LIST=KEY re-signs that list's role, vouching for it\n"
               "now (run it more often than the list's stale_after).\n"
               "Exit: 0 ok, 2 invalid input, 4 refused, 5 I/O.\n");
}

/* A delegated list is as fresh as its authority's last signature (kiosks count its data age from
 * its role's signing time, never from the operator's timestamp): a refresh given an authority's
 * key re-signs that list's role, which vouches for the list as of now. */
static enum posgate_err
touch_authority_roles(struct tuf_writer *w, const struct keyring *kr)
{
    char role[TUF_WRITER_ROLE_MAX + 1];
    enum posgate_err err;

    for (size_t i = 0; i < kr->nauth; i++) {
        snprintf(role, sizeof role, "%s%.*s", ROLE_PREFIX, FEED_NAME_ID_MAX, kr->auth[i].list);
        err = tuf_writer_touch(w, role);
        if (err != POSGATE_OK) {
            die_msg("--authority-key for list %s: %s", kr->auth[i].list, tuf_writer_errmsg(w));
            return err;
        }
    }
    return POSGATE_OK;
}

int
publish_cmd_refresh(int argc, char **argv)
{
    struct opt o[] = {{"state", 1, 0, {0}, 0},
                      {"out", 1, 0, {0}, 0},
                      {"expires", 1, 0, {0}, 0},
                      {"authority-key", 1, 1, {0}, 0}};
    struct pub_state s;
    struct tuf_writer *w = NULL;
    struct keyring kr;
    int rc;
    int64_t expires, v = 0;
    enum posgate_err err;

    memset(&s, 0, sizeof s);
    memset(&kr, 0, sizeof kr);
    rc = opt_parse(argc, argv, o, sizeof o / sizeof o[0], OPT_SAY_TWICE);
    if (rc < 0) {
        usage_refresh(stderr);
        return EXIT_USAGE;
    }
    if (rc > 0) {
        usage_refresh(stdout);
        return EXIT_OK;
    }
    if (opt_require(&o[0], "refresh") || opt_require(&o[1], "refresh")) {
        return EXIT_USAGE;
    }
    err = parse_expires(&o[2], &expires);
    if (err == POSGATE_OK) {
        err = pub_state_load(opt_value(&o[0]), &s);
    }
    if (err == POSGATE_OK) {
        err = keyring_load(&s, &o[3], &kr);
    }
    if (err == POSGATE_OK) {
        err = check_resign(&s, &kr);
    }
    if (err == POSGATE_OK) {
        err = signed_cfg_require(&s);
    }
    if (err == POSGATE_OK) {
        err = open_writer(&s, &w);
    }
    if (err == POSGATE_OK) {
        err = set_lifetimes(w, expires);
    }
    if (err == POSGATE_OK) {
        err = touch_authority_roles(w, &kr);
    }
    if (err == POSGATE_OK) {
        err = publish_repo(w, opt_value(&o[1]), &kr);
    }
    if (err == POSGATE_OK) {
        err = clear_resign(&s, &kr);
    }
    if (err == POSGATE_OK && tuf_writer_role_version(w, "timestamp", &v) == POSGATE_OK) {
        fprintf(stderr, "%s: timestamp version %" PRId64 " written to %s\n", prog, v,
                opt_value(&o[1]));
    }
    tuf_writer_free(w);
    keyring_cleanup(&kr);
    pub_state_cleanup(&s);
    return exit_for(err);
}
