/* SPDX-License-Identifier: Apache-2.0 */
/*
 * `posgate-publish update`: publishes entries.csv. The steps, each a function below, in the
 * order publish_cmd_update runs them; a refusal up to step 4 publishes nothing, and the feed
 * directory is written only in step 6:
 *
 *     run_load_state      publish.json, feed.json with the list key's check value, the keys
 *     plan_lists          per list: published whole or compared, its next seq; the work dir
 *   1 read_entries        every row validated and keyed, into the external sort
 *     leave_delegated     a delegated list without rows nor its authority's keys is left as
 *                         it is: its authority publishes it by handover (publish_accept.c)
 *   2 compare_lists       per list, the merge walk against its last snapshot (publish_list.c)
 *   3 check_mass_change   a change past a list's mass_change marks needs --allow-mass-change
 *   4 check_authority     a delegated list and its configuration change only with its keys;
 *                         one leaves feed.json only when the root records its retirement
 *   5 stage_targets       a retired list's delegation withdrawn (publish_retire.c), the
 *                         configurations, each changed list's snapshot and delta
 *   6 commit              the state (lists pending), the references, the repository, the state
 *                         (without the retired lists)
 *
 * Steps 1 to 3 and the lists' part of step 5 are publish_run.c's, shared with authority-sign.
 */
#define _XOPEN_SOURCE 700
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "ident.h"
#include "plat_clock.h"
#include "plat_file.h"
#include "plat_mem.h"
#include "publish_internal.h"

static void
usage_update(FILE *f)
{
    fprintf(f,
            "usage: posgate-publish update --state DIR --entries entries.csv --out FEEDDIR\n"
            "                              [--expires DURATION] [--allow-mass-change]\n"
            "                              [--authority-key LIST=KEY.key ...]\n"
            "Validates every row of entries.csv against the feed config (nothing is published\n"
            "on any error), sorts each list by entry key, compares it with the last published\n"
            "snapshot and publishes a new snapshot and a delta for every changed list, then\n"
            "signs and writes the TUF repository to FEEDDIR. A change of more than %d%% of a\n"
            "list (additions + removals against its last entry count) and at least %d rows\n"
            "is refused with exit 4 unless --allow-mass-change is given (a list's own marks:\n"
            "\"mass_change\": {\"percent\": P, \"rows\": R} in feed.json). --expires sets the "
            "timestamp's lifetime\n"
            "(default 1d). A list delegated to its authority (posgate-publish delegate) is\n"
            "published from its authority's handover (posgate-publish accept) and left as it is\n"
            "when entries.csv has no rows of it; rows of it need its authority's key(s):\n"
            "--authority-key LIST=KEY.key (then entries.csv is the list's whole content).\n"
            "A delegated list leaves feed.json only once the root records its retirement\n"
            "(posgate-publish authorize --retire); the update then withdraws its delegation.\n"
            "Exit: 0 ok, 2 invalid input, 4 refused, 5 I/O.\n",
            FEED_MASS_PERCENT, FEED_MASS_ROWS);
}

/* After step 1: a delegated list that entries.csv has no rows of, and whose authority's key was
 * not given, is its authority's to publish (by handover): it is left as it is, neither compared
 * nor published. Not so a list whose role still waits for its authority's first signature, nor
 * one that must be published whole (pending, older identifier format): check_authority refuses
 * those. With the key, entries.csv is the list's whole content as before (an empty list is a
 * mass removal, which the guard catches). */
static void
leave_delegated(struct run *r)
{
    for (size_t i = 0; i < r->cfg->n_lists; i++) {
        struct list_work *l = &r->lw[i];

        if (strcmp(l->pl->role, "targets") != 0 && l->rows == 0 && l->pl->published &&
            !l->pl->pending && !l->pl->resign && !l->reformat &&
            keyring_auth_count(&r->kr, l->id) == 0) {
            l->untouched = 1;
            fprintf(stderr,
                    "%s: list %s: no rows in %s; left as its authority last published it "
                    "(seq %" PRIu64 ", %" PRIu64 " entries)\n",
                    prog, l->id, r->label, l->pl->seq, l->pl->entries);
        }
    }
}

/* Step 4: a delegated list changes only with its authority's keys, and so does its
 * configuration; it leaves feed.json only retired by the root, and comes back only delegated
 * (publish_retire.c). */
static enum posgate_err
check_authority(struct run *r)
{
    size_t i;
    enum posgate_err err;

    for (i = 0; i < r->cfg->n_lists; i++) {
        const struct list_work *l = &r->lw[i];

        if (l->untouched || strcmp(l->pl->role, "targets") == 0 ||
            keyring_auth_count(&r->kr, l->id) >= l->pl->auth_threshold) {
            continue;
        }
        if (l->pl->resign || l->first || l->reformat || l->pl->pending) {
            die_msg("refused: list %s is delegated to its authority (role %s, threshold %u) and "
                    "its role waits for the authority's signature (%s); accept the authority's "
                    "handover (%s accept) or pass --authority-key %s=KEY.key (%zu given). "
                    "Nothing was published.",
                    l->id, l->pl->role, l->pl->auth_threshold,
                    l->pl->resign    ? "delegated since its last publication"
                    : l->reformat    ? "keys of an older identifier format"
                    : l->pl->pending ? "a stopped run left it pending"
                                     : "never published",
                    prog, l->id, keyring_auth_count(&r->kr, l->id));
            return POSGATE_ERR_REJECTED;
        }
        if (l->additions + l->removals > 0) {
            die_msg("refused: list %s is delegated to its authority (role %s, threshold %u) and "
                    "%s has rows of it that change it; only its authority changes it (by "
                    "handover, or pass --authority-key %s=KEY.key; %zu given). Nothing was "
                    "published.",
                    l->id, l->pl->role, l->pl->auth_threshold, r->label, l->id,
                    keyring_auth_count(&r->kr, l->id));
            return POSGATE_ERR_REJECTED;
        }
    }
    err = retire_check(&r->s, r->cfg);
    if (err != POSGATE_OK) {
        return err;
    }
    return signed_cfg_plan(&r->s, r->cfg, &r->cfg_raw, r->used, &r->kr, r->workdir, r->sc);
}

/* Step 5: the delegations of retired lists dropped from feed.json withdrawn, the feed's
 * configuration, then the lists' (publish_run.c), as targets of the state's writer. */
static enum posgate_err
stage_targets(struct run *r, int64_t expires)
{
    enum posgate_err err;

    err = open_writer(&r->s, &r->w);
    if (err == POSGATE_OK) {
        err = set_lifetimes(r->w, expires);
    }
    if (err == POSGATE_OK) {
        err = retire_undelegate(&r->s, r->cfg, r->w);
    }
    if (err == POSGATE_OK) {
        err = publish_config(&r->s, r->w, &r->cfg_raw, &r->cfg_changed);
    }
    if (err == POSGATE_OK) {
        target_sink_writer(&r->sink, r->w);
        err = stage_lists(r);
    }
    return err;
}

/* Each changed list's staged snapshot.pgs.new replaces its reference, and the state takes its
 * new seq, entry count and digest. */
static enum posgate_err
install_snapshots(struct run *r)
{
    size_t i;
    enum posgate_err err;

    for (i = 0; i < r->cfg->n_lists; i++) {
        struct list_work *l = &r->lw[i];
        char from[PATH_CAP], to[PATH_CAP];

        if (!list_changed(r, i)) {
            continue;
        }
        if ((err = pathf(from, sizeof from, "%s/lists/%s/snapshot.pgs.new", r->s.dir, l->id)) !=
                POSGATE_OK ||
            (err = pathf(to, sizeof to, "%s/lists/%s/snapshot.pgs", r->s.dir, l->id)) !=
                POSGATE_OK) {
            return err;
        }
        err = plat_rename_durable(from, to);
        if (err != POSGATE_OK) {
            die_msg("cannot rename %s: %s", from, posgate_strerror(err));
            return err;
        }
        l->pl->seq = l->new_seq;
        l->pl->published = 1;
        l->pl->entries = l->rows;
        l->pl->issued_at = r->now;
        l->pl->state = l->new_state;
    }
    return POSGATE_OK;
}

/*
 * Step 6. Our state first, then the repository: should the publish fail after this, the next
 * update starts from a seq that was never published, and kiosks fall back to a snapshot;
 * the reverse order could publish the same seq twice with different contents. The changed
 * lists are marked pending before their snapshot.pgs is replaced and until the repository
 * is written, so a run killed anywhere in between leaves them to be published whole by the
 * next update (without the mark, the next update found snapshot.pgs newer than the state,
 * or found no change and never published the lists at all).
 */
static enum posgate_err
commit(struct run *r, const char *out)
{
    size_t i;
    enum posgate_err err;

    for (i = 0; i < r->cfg->n_lists; i++) {
        if (list_changed(r, i)) {
            r->lw[i].pl->pending = 1;
        }
    }
    err = pub_state_save(&r->s);
    if (err == POSGATE_OK) {
        err = install_snapshots(r);
    }
    if (err == POSGATE_OK) {
        err = pub_state_save(&r->s);
    }
    if (err == POSGATE_OK) {
        err = publish_repo(r->w, out, &r->kr);
    }
    if (err == POSGATE_OK) {
        err = signed_cfg_commit(&r->s, r->cfg, r->sc);
    }
    if (err != POSGATE_OK) {
        return err;
    }
    for (i = 0; i < r->s.nlists; i++) {
        int idx = feed_config_list_find(r->cfg, r->s.lists[i].id);

        /* a list left to its authority keeps the format it was last published in */
        if (idx >= 0 && r->lw[idx].untouched) {
            continue;
        }
        r->s.lists[i].pending = 0;
        r->s.lists[i].ident_format = IDENT_FORMAT;
    }
    err = retire_forget(&r->s, r->cfg);
    if (err == POSGATE_OK) {
        err = pub_state_save(&r->s);
    }
    if (err == POSGATE_OK) {
        err = clear_resign(&r->s, &r->kr);
    }
    return err;
}

int
publish_cmd_update(int argc, char **argv)
{
    struct opt o[] = {{"state", 1, 0, {0}, 0},
                      {"entries", 1, 0, {0}, 0},
                      {"out", 1, 0, {0}, 0},
                      {"expires", 1, 0, {0}, 0},
                      {"allow-mass-change", 0, 0, {0}, 0},
                      {"authority-key", 1, 1, {0}, 0}};
    struct run r;
    int rc;
    int64_t expires;
    enum posgate_err err;

    run_init(&r);
    rc = opt_parse(argc, argv, o, sizeof o / sizeof o[0], OPT_SAY_TWICE);
    if (rc < 0) {
        usage_update(stderr);
        return EXIT_USAGE;
    }
    if (rc > 0) {
        usage_update(stdout);
        return EXIT_OK;
    }
    if (opt_require(&o[0], "update") || opt_require(&o[1], "update") ||
        opt_require(&o[2], "update")) {
        return EXIT_USAGE;
    }
    err = parse_expires(&o[3], &expires);
    if (err != POSGATE_OK) {
        return EXIT_USAGE;
    }
    err = run_load_state(&r, opt_value(&o[0]), &o[5]);
    if (err == POSGATE_OK) {
        err = plan_lists(&r);
    }
    if (err == POSGATE_OK) {
        err = read_entries(&r, opt_value(&o[1]));
    }
    if (err == POSGATE_OK) {
        leave_delegated(&r);
        err = compare_lists(&r);
    }
    if (err == POSGATE_OK) {
        err = check_mass_change(&r, o[4].count > 0);
    }
    if (err == POSGATE_OK) {
        err = check_authority(&r);
    }
    if (err == POSGATE_OK) {
        err = stage_targets(&r, expires);
    }
    if (err == POSGATE_OK) {
        err = commit(&r, opt_value(&o[2]));
    }
    if (err == POSGATE_OK) {
        fprintf(stderr, "%s: published %" PRIu64 " rows; %zu list(s) changed%s; feed in %s\n", prog,
                r.total, r.changed, r.cfg_changed ? ", config updated" : "", opt_value(&o[2]));
    }
    run_cleanup(&r);
    return exit_for(err);
}
