/* SPDX-License-Identifier: Apache-2.0 */
/*
 * `posgate-publish update`: publishes entries.csv. The steps, each a function below, in the
 * order publish_cmd_update runs them; a refusal up to step 4 publishes nothing, and the feed
 * directory is written only in step 6:
 *
 *     load_state          publish.json, feed.json with the list key's check value, the keys
 *     plan_lists          per list: published whole or compared, its next seq; the work dir
 *   1 read_entries        every row validated and keyed, into the external sort
 *   2 compare_lists       per list, the merge walk against its last snapshot (publish_list.c)
 *   3 check_mass_change   a change past a list's mass_change marks needs --allow-mass-change
 *   4 check_authority     a delegated list and its configuration change only with its keys
 *   5 stage_targets       the configurations, each changed list's snapshot and delta
 *   6 commit              the state (lists pending), the references, the repository, the state
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
            "(default 1d). A list delegated to its authority (posgate-publish delegate) needs\n"
            "its authority's key(s) to change: --authority-key LIST=KEY.key.\n"
            "Exit: 0 ok, 2 invalid input, 4 refused, 5 I/O.\n",
            FEED_MASS_PERCENT, FEED_MASS_ROWS);
}

/* One update run: what its steps share, released by run_cleanup. */
struct run {
    int64_t now;
    struct pub_state s;
    struct feed_config *cfg;
    struct buf cfg_raw;
    struct crypto_hmac_key hk;
    struct keyring kr;
    struct list_work *lw;  /* per list of cfg */
    struct signed_cfg *sc; /* per list of cfg */
    uint8_t *used;         /* REASON_BITS_BYTES per list of cfg */
    char workdir[PATH_CAP];
    char label[PATH_CAP]; /* entries.csv's file name, in messages */
    FILE *in;
    struct entries_csv *csv;
    struct sorter so;
    struct tuf_writer *w;
    uint64_t total;  /* rows read */
    size_t changed;  /* lists published */
    int cfg_changed; /* config/feed.json listed again */
};

static void
run_init(struct run *r)
{
    memset(r, 0, sizeof *r);
    r->now = plat_wall_s();
    buf_init(&r->cfg_raw, FEED_CONFIG_MAX_BYTES);
}

static void
run_cleanup(struct run *r)
{
    if (r->in != NULL) {
        fclose(r->in);
    }
    if (r->workdir[0] != '\0') {
        sorter_cleanup(&r->so);
        remove_dir(r->workdir);
    } else {
        sorter_cleanup(&r->so);
    }
    entries_csv_free(r->csv);
    tuf_writer_free(r->w);
    keyring_cleanup(&r->kr);
    crypto_hmac_key_cleanup(&r->hk);
    feed_config_free(r->cfg);
    buf_free(&r->cfg_raw);
    plat_free(r->lw);
    plat_free(r->sc);
    plat_free(r->used);
    pub_state_cleanup(&r->s);
}

/* The state, its feed config with the list key's check value, the list key and the keyring;
 * every --authority-key must name a list of the config. */
static enum posgate_err
load_state(struct run *r, const char *dir, const struct opt *auth)
{
    char p[PATH_CAP];
    int key_check_added = 0;
    size_t i;
    enum posgate_err err;

    err = pub_state_load(dir, &r->s);
    if (err != POSGATE_OK) {
        return err;
    }
    err = pathf(p, sizeof p, "%s/feed.json", r->s.dir);
    if (err == POSGATE_OK) {
        err = load_config(p, &r->cfg, &r->cfg_raw);
    }
    if (err == POSGATE_OK) {
        err = load_list_key(r->s.list_key, &r->hk);
    }
    if (err == POSGATE_OK) {
        /* a state made before feeds carried the check value gets it now, and publishes it */
        err = add_key_check(p, &r->hk, &r->cfg_raw, &r->cfg, &key_check_added);
    }
    if (err == POSGATE_OK && key_check_added) {
        err = plat_write_atomic(p, r->cfg_raw.data, r->cfg_raw.len, 0644);
        if (err != POSGATE_OK) {
            die_msg("cannot write %s: %s", p, posgate_strerror(err));
        }
    }
    if (err == POSGATE_OK) {
        err = keyring_load(&r->s, auth, &r->kr);
    }
    if (err != POSGATE_OK) {
        return err;
    }
    for (i = 0; i < r->kr.nauth; i++) {
        if (feed_config_list_find(r->cfg, r->kr.auth[i].list) < 0) {
            die_msg("--authority-key: unknown list \"%s\"", r->kr.auth[i].list);
            return POSGATE_ERR_USAGE;
        }
    }
    return POSGATE_OK;
}

/* Each list of the config: its state (added when new), whether it is published whole, its next
 * seq; then an empty work directory. */
static enum posgate_err
plan_lists(struct run *r)
{
    const struct feed_config *cfg = r->cfg;
    struct list_work *lw;
    size_t i;
    enum posgate_err err;

    r->lw = plat_calloc(cfg->n_lists > 0 ? cfg->n_lists : 1, sizeof *r->lw);
    r->sc = plat_calloc(cfg->n_lists > 0 ? cfg->n_lists : 1, sizeof *r->sc);
    r->used = plat_calloc(cfg->n_lists > 0 ? cfg->n_lists : 1, REASON_BITS_BYTES);
    if (r->lw == NULL || r->sc == NULL || r->used == NULL) {
        return POSGATE_ERR_NOMEM;
    }
    lw = r->lw;
    for (i = 0; i < cfg->n_lists; i++) {
        lw[i].id = cfg->lists[i].id;
        lw[i].pl = pub_add(&r->s, cfg->lists[i].id);
        if (lw[i].pl == NULL) {
            return POSGATE_ERR_NOMEM;
        }
        /* a list a stopped run left pending is published whole: its snapshot.pgs may be
         * newer than its seq says, and what reached the repository is unknown */
        lw[i].first = !lw[i].pl->published || lw[i].pl->pending;
        lw[i].reformat = ident_format_old(lw[i].pl);
        lw[i].new_seq = lw[i].pl->seq + 1;
    }
    /* pub_add may have moved the array: take the pointers again */
    for (i = 0; i < cfg->n_lists; i++) {
        lw[i].pl = pub_find(&r->s, cfg->lists[i].id);
    }

    /* work directory for sort runs and staged bodies */
    err = pathf(r->workdir, sizeof r->workdir, "%s/work", r->s.dir);
    if (err != POSGATE_OK) {
        return err;
    }
    remove_dir(r->workdir);
    err = plat_mkdir_p(r->workdir, 0700);
    if (err != POSGATE_OK) {
        die_msg("cannot create %s: %s", r->workdir, posgate_strerror(err));
    }
    return err;
}

/* Step 1: parses and validates every row, keys it, feeds the sorter. */
static enum posgate_err
read_entries(struct run *r, const char *path)
{
    char msg[ENTRIES_CSV_ERRMSG_MAX];
    const char *slash = strrchr(path, '/');
    struct entries_row row;
    enum posgate_err err;

    r->in = fopen(path, "rb");
    if (r->in == NULL) {
        die_msg("cannot open %s: %s", path, strerror(errno));
        return errno == ENOENT ? POSGATE_ERR_NOTFOUND : POSGATE_ERR_IO;
    }
    snprintf(r->label, sizeof r->label, "%s", slash != NULL ? slash + 1 : path);
    err = entries_csv_open(r->in, r->label, r->cfg, &r->csv, msg, sizeof msg);
    if (err != POSGATE_OK) {
        die_msg("%s", msg);
        return err;
    }
    entries_csv_set_key(r->csv, &r->hk);
    snprintf(r->so.dir, sizeof r->so.dir, "%s", r->workdir);
    r->so.chunk = plat_malloc(SORT_CHUNK * sizeof *r->so.chunk);
    if (r->so.chunk == NULL) {
        return POSGATE_ERR_NOMEM;
    }
    while ((err = entries_csv_next(r->csv, &row)) == POSGATE_OK) {
        err = sorter_add(&r->so, row.list, row.line, &row.entry);
        if (err != POSGATE_OK) {
            return err;
        }
        r->lw[row.list].rows++;
        reason_used_mark(r->used, row.list, row.entry.reason);
        r->total++;
    }
    if (err != POSGATE_ERR_NOTFOUND) {
        die_msg("%s", entries_csv_errmsg(r->csv));
        die_msg("nothing was published");
        return err;
    }
    return sorter_finish(&r->so);
}

/* Step 2: per list, the merge walk against the last snapshot stages the new snapshot and the
 * changes. */
static enum posgate_err
compare_lists(struct run *r)
{
    struct item pending;
    int have_pending = 0;
    size_t i;
    enum posgate_err err;

    err = sorter_next(&r->so, &pending);
    if (err == POSGATE_OK) {
        have_pending = 1;
    } else if (err != POSGATE_ERR_NOTFOUND) {
        return err;
    }
    for (i = 0; i < r->cfg->n_lists; i++) {
        struct list_work *l = &r->lw[i];

        if ((err = pathf(l->snap_path, PATH_CAP, "%s/snap-%zu", r->workdir, i)) != POSGATE_OK ||
            (err = pathf(l->adds_path, PATH_CAP, "%s/adds-%zu", r->workdir, i)) != POSGATE_OK ||
            (err = pathf(l->rems_path, PATH_CAP, "%s/rems-%zu", r->workdir, i)) != POSGATE_OK) {
            return err;
        }
        err = list_pass(&r->s, l, (uint16_t)i, &r->so, &pending, &have_pending, r->now, r->label);
        if (err != POSGATE_OK) {
            die_msg("nothing was published");
            return err;
        }
    }
    return POSGATE_OK;
}

/* Step 3: the mass-change guard, before anything is written to the feed. */
static enum posgate_err
check_mass_change(const struct run *r, int allowed)
{
    int refused = 0;
    size_t i;

    for (i = 0; i < r->cfg->n_lists; i++) {
        const struct list_work *l = &r->lw[i];
        uint64_t changes = l->additions + l->removals;
        const struct feed_list *fl = &r->cfg->lists[i];

        /* a list never published has nothing to compare with; one a stopped run left
         * pending is republished whole, but its rows were compared with its last snapshot
         * all the same, so the guard holds for it too */
        if (!l->pl->published || changes == 0) {
            continue;
        }
        /* mass only past both marks: removing 1 row of 5 is a correction, not a bad export */
        if (changes * 100 > l->pl->entries * fl->mass_percent && changes >= fl->mass_min_rows) {
            fprintf(stderr,
                    "%s: list %s: %" PRIu64 " additions + %" PRIu64 " removals = %" PRIu64
                    " changes against %" PRIu64 " entries: more than %u%% and at least %" PRIu32
                    " rows (mass_change of the list in feed.json)%s\n",
                    prog, l->id, l->additions, l->removals, changes, l->pl->entries,
                    fl->mass_percent, fl->mass_min_rows,
                    allowed ? " (allowed by --allow-mass-change)"
                            : "; --allow-mass-change publishes it");
            refused = 1;
        }
    }
    if (refused && !allowed) {
        die_msg("refused: a mass change; check the export, then pass --allow-mass-change to "
                "publish it anyway. Nothing was published.");
        return POSGATE_ERR_REJECTED;
    }
    return POSGATE_OK;
}

/* Step 4: a delegated list changes only with its authority's keys, and so does its
 * configuration. */
static enum posgate_err
check_authority(struct run *r)
{
    size_t i;

    for (i = 0; i < r->cfg->n_lists; i++) {
        const struct list_work *l = &r->lw[i];

        if (strcmp(l->pl->role, "targets") != 0 &&
            (l->first || l->reformat || l->pl->resign || l->additions + l->removals > 0) &&
            keyring_auth_count(&r->kr, l->id) < l->pl->auth_threshold) {
            die_msg("refused: list %s is delegated to its authority (role %s, threshold %u) and "
                    "changed; pass --authority-key %s=KEY.key (%zu given). Nothing was published.",
                    l->id, l->pl->role, l->pl->auth_threshold, l->id,
                    keyring_auth_count(&r->kr, l->id));
            return POSGATE_ERR_REJECTED;
        }
    }
    return signed_cfg_plan(&r->s, r->cfg, &r->cfg_raw, r->used, &r->kr, r->workdir, r->sc);
}

/* A run stopped before its publication finished: what it left in the writer's state is
 * unknown, so its deltas and snapshots are withdrawn (kiosks take the new snapshot) and the
 * list is published whole under a seq never published before. */
static enum posgate_err
withdraw_pending(struct tuf_writer *w, const struct list_work *l, const char *name)
{
    struct pub_list *pl = l->pl;
    enum posgate_err err = POSGATE_OK;

    for (size_t k = 0; err == POSGATE_OK && k < pl->ndeltas; k++) {
        err = remove_target_quiet(w, pl->role, pl->deltas[k]);
    }
    pl->ndeltas = 0;
    for (uint64_t k = 0; err == POSGATE_OK && k < 2 && pl->seq > k; k++) {
        char old[256];

        err = pathf(old, sizeof old, "lists/%s/snapshot-%" PRIu64 ".pgs", l->id, pl->seq - k);
        if (err == POSGATE_OK && strcmp(old, name) != 0) {
            err = remove_target_quiet(w, pl->role, old);
        }
    }
    return err;
}

/* Writes the delta of list i from its last snapshot and lists it in the list's role, the
 * oldest of KEEP_DELTAS listed withdrawn. */
static enum posgate_err
stage_delta(struct run *r, size_t i)
{
    struct list_work *l = &r->lw[i];
    struct pub_list *pl = l->pl;
    char custom[1024];
    enum posgate_err err;

    err = pathf(l->delta_path, PATH_CAP, "%s/delta-%zu", r->workdir, i);
    if (err == POSGATE_OK) {
        err = write_delta(l, r->now);
    }
    if (err == POSGATE_OK) {
        err = custom_json(custom, sizeof custom, l, 1, r->now);
    }
    if (err != POSGATE_OK) {
        return err;
    }
    if (pl->ndeltas == KEEP_DELTAS) {
        err = remove_target_quiet(r->w, pl->role, pl->deltas[0]);
        if (err != POSGATE_OK) {
            return err;
        }
        memmove(pl->deltas[0], pl->deltas[1], (KEEP_DELTAS - 1) * sizeof pl->deltas[0]);
        pl->ndeltas--;
    }
    snprintf(pl->deltas[pl->ndeltas], sizeof pl->deltas[0],
             "lists/%s/delta-%" PRIu64 "-%" PRIu64 ".pgd", l->id, pl->seq, l->new_seq);
    err = tuf_writer_add_target(r->w, pl->role, pl->deltas[pl->ndeltas], l->delta_path, custom);
    if (err != POSGATE_OK) {
        die_msg("cannot add %s: %s", pl->deltas[pl->ndeltas], tuf_writer_errmsg(r->w));
        return err;
    }
    pl->ndeltas++;
    return POSGATE_OK;
}

/* List i changed: its new snapshot (and delta, when it had a last snapshot) listed in its role
 * in place of the targets they replace, the snapshot copied next to the state's reference. */
static enum posgate_err
stage_list(struct run *r, size_t i)
{
    struct list_work *l = &r->lw[i];
    struct pub_list *pl = l->pl;
    char name[256], custom[1024], dst[PATH_CAP], dir[PATH_CAP];
    enum posgate_err err;

    err = custom_json(custom, sizeof custom, l, 0, r->now);
    if (err == POSGATE_OK) {
        err = pathf(name, sizeof name, "lists/%s/snapshot-%" PRIu64 ".pgs", l->id, l->new_seq);
    }
    if (err == POSGATE_OK) {
        err = tuf_writer_add_target(r->w, pl->role, name, l->snap_path, custom);
        if (err != POSGATE_OK) {
            die_msg("cannot add %s: %s", name, tuf_writer_errmsg(r->w));
        }
    }
    if (err == POSGATE_OK && pl->pending) {
        err = withdraw_pending(r->w, l, name);
    }
    if (err == POSGATE_OK && pl->snapshot_target[0] != '\0' &&
        strcmp(pl->snapshot_target, name) != 0) {
        err = remove_target_quiet(r->w, pl->role, pl->snapshot_target);
    }
    if (err == POSGATE_OK && !l->first) {
        err = stage_delta(r, i);
    }
    if (err != POSGATE_OK) {
        return err;
    }
    /* the new snapshot becomes the list's reference */
    err = pathf(dir, sizeof dir, "%s/lists/%s", r->s.dir, l->id);
    if (err == POSGATE_OK) {
        err = plat_mkdir_p(dir, 0700);
    }
    if (err == POSGATE_OK) {
        err = pathf(dst, sizeof dst, "%s/snapshot.pgs.new", dir);
    }
    if (err == POSGATE_OK) {
        err = copy_file(l->snap_path, dst);
    }
    if (err != POSGATE_OK) {
        return err;
    }
    snprintf(pl->snapshot_target, sizeof pl->snapshot_target, "%s", name);
    fprintf(stderr,
            "%s: list %s: seq %" PRIu64 ", %" PRIu64 " entries (+%" PRIu64 " -%" PRIu64 ")\n", prog,
            l->id, l->new_seq, l->rows, l->additions, l->removals);
    return POSGATE_OK;
}

/* Whether list i is published in this run. */
static int
list_changed(const struct run *r, size_t i)
{
    const struct list_work *l = &r->lw[i];

    return l->first || l->reformat || l->additions + l->removals > 0;
}

/* Step 5: the configurations, then each changed list's snapshot and delta, as targets. */
static enum posgate_err
stage_targets(struct run *r, int64_t expires)
{
    size_t i;
    enum posgate_err err;

    err = open_writer(&r->s, &r->w);
    if (err == POSGATE_OK) {
        err = set_lifetimes(r->w, expires);
    }
    if (err == POSGATE_OK) {
        err = publish_config(&r->s, r->w, &r->cfg_raw, &r->cfg_changed);
    }
    if (err == POSGATE_OK) {
        err = signed_cfg_add(&r->s, r->cfg, r->w, r->sc);
    }
    for (i = 0; err == POSGATE_OK && i < r->cfg->n_lists; i++) {
        if (!list_changed(r, i)) {
            continue;
        }
        r->changed++;
        err = stage_list(r, i);
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
        r->s.lists[i].pending = 0;
        r->s.lists[i].ident_format = IDENT_FORMAT;
    }
    err = pub_state_save(&r->s);
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
    err = load_state(&r, opt_value(&o[0]), &o[5]);
    if (err == POSGATE_OK) {
        err = plan_lists(&r);
    }
    if (err == POSGATE_OK) {
        err = read_entries(&r, opt_value(&o[1]));
    }
    if (err == POSGATE_OK) {
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
