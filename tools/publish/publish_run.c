/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The steps of an update run that `update` (publish_update.c) and `authority-sign`
 * (publish_authority.c) share (publish_internal.h lists them in their order): the run's
 * resources, the state loaded, the lists planned, entries.csv read and sorted, each list compared
 * with its last snapshot, the mass-change guard, and each changed list's targets staged through a
 * target sink: the TUF writer's state for update, a delegated role being built for
 * authority-sign.
 */
#define _XOPEN_SOURCE 700
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "plat_clock.h"
#include "plat_file.h"
#include "plat_mem.h"
#include "publish_internal.h"

static enum posgate_err
writer_add(void *ctx, const char *role, const char *name, const char *path, const char *custom)
{
    struct tuf_writer *w = ctx;
    enum posgate_err err = tuf_writer_add_target(w, role, name, path, custom);

    if (err != POSGATE_OK) {
        die_msg("cannot add %s: %s", name, tuf_writer_errmsg(w));
    }
    return err;
}

static enum posgate_err
writer_remove(void *ctx, const char *role, const char *name)
{
    struct tuf_writer *w = ctx;
    enum posgate_err err = tuf_writer_remove_target(w, role, name);

    if (err != POSGATE_OK && err != POSGATE_ERR_NOTFOUND) {
        die_msg("cannot withdraw %s: %s", name, tuf_writer_errmsg(w));
    }
    return err;
}

void
target_sink_writer(struct target_sink *t, struct tuf_writer *w)
{
    t->add = writer_add;
    t->remove = writer_remove;
    t->ctx = w;
}

enum posgate_err
sink_remove_quiet(const struct target_sink *t, const char *role, const char *name)
{
    enum posgate_err err = t->remove(t->ctx, role, name);

    return err == POSGATE_ERR_NOTFOUND ? POSGATE_OK : err;
}

void
run_init(struct run *r)
{
    memset(r, 0, sizeof *r);
    r->now = plat_wall_s();
    buf_init(&r->cfg_raw, FEED_CONFIG_MAX_BYTES);
    r->only_list = -1;
    r->outcome = "published";
}

void
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

/* Every --authority-key must name a list of the config. */
enum posgate_err
run_load_state(struct run *r, const char *dir, const struct opt *auth)
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

enum posgate_err
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

enum posgate_err
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
        if (r->only_list >= 0 && row.list != (uint16_t)r->only_list) {
            die_msg("%s line %" PRIu64 ": a row of list %s; expected rows of list %s only",
                    r->label, row.line, r->cfg->lists[row.list].id,
                    r->cfg->lists[r->only_list].id);
            die_msg("nothing was %s", r->outcome);
            return POSGATE_ERR_INVALID;
        }
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
        die_msg("nothing was %s", r->outcome);
        return err;
    }
    return sorter_finish(&r->so);
}

enum posgate_err
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

        if (l->untouched) {
            continue;
        }
        if ((err = pathf(l->snap_path, PATH_CAP, "%s/snap-%zu", r->workdir, i)) != POSGATE_OK ||
            (err = pathf(l->adds_path, PATH_CAP, "%s/adds-%zu", r->workdir, i)) != POSGATE_OK ||
            (err = pathf(l->rems_path, PATH_CAP, "%s/rems-%zu", r->workdir, i)) != POSGATE_OK) {
            return err;
        }
        err = list_pass(&r->s, l, (uint16_t)i, &r->so, &pending, &have_pending, r->now, r->label);
        if (err != POSGATE_OK) {
            die_msg("nothing was %s", r->outcome);
            return err;
        }
    }
    return POSGATE_OK;
}

/* Before anything is written to the feed. */
enum posgate_err
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
        if (l->untouched || !l->pl->published || changes == 0) {
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
                "have it %s anyway. Nothing was %s.",
                r->outcome, r->outcome);
        return POSGATE_ERR_REJECTED;
    }
    return POSGATE_OK;
}

/* A run stopped before its publication finished: what it left in the writer's state is
 * unknown, so its deltas and snapshots are withdrawn (kiosks take the new snapshot) and the
 * list is published whole under a seq never published before. */
static enum posgate_err
withdraw_pending(const struct target_sink *t, const struct list_work *l, const char *name)
{
    struct pub_list *pl = l->pl;
    enum posgate_err err = POSGATE_OK;

    for (size_t k = 0; err == POSGATE_OK && k < pl->ndeltas; k++) {
        err = sink_remove_quiet(t, pl->role, pl->deltas[k]);
    }
    pl->ndeltas = 0;
    for (uint64_t k = 0; err == POSGATE_OK && k < 2 && pl->seq > k; k++) {
        char old[256];

        err = pathf(old, sizeof old, "lists/%s/snapshot-%" PRIu64 ".pgs", l->id, pl->seq - k);
        if (err == POSGATE_OK && strcmp(old, name) != 0) {
            err = sink_remove_quiet(t, pl->role, old);
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
        err = sink_remove_quiet(&r->sink, pl->role, pl->deltas[0]);
        if (err != POSGATE_OK) {
            return err;
        }
        memmove(pl->deltas[0], pl->deltas[1], (KEEP_DELTAS - 1) * sizeof pl->deltas[0]);
        pl->ndeltas--;
    }
    snprintf(pl->deltas[pl->ndeltas], sizeof pl->deltas[0],
             "lists/%s/delta-%" PRIu64 "-%" PRIu64 ".pgd", l->id, pl->seq, l->new_seq);
    err = r->sink.add(r->sink.ctx, pl->role, pl->deltas[pl->ndeltas], l->delta_path, custom);
    if (err != POSGATE_OK) {
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
        err = r->sink.add(r->sink.ctx, pl->role, name, l->snap_path, custom);
    }
    if (err == POSGATE_OK && pl->pending) {
        err = withdraw_pending(&r->sink, l, name);
    }
    if (err == POSGATE_OK && pl->snapshot_target[0] != '\0' &&
        strcmp(pl->snapshot_target, name) != 0) {
        err = sink_remove_quiet(&r->sink, pl->role, pl->snapshot_target);
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

int
list_changed(const struct run *r, size_t i)
{
    const struct list_work *l = &r->lw[i];

    return !l->untouched && (l->first || l->reformat || l->additions + l->removals > 0);
}

enum posgate_err
stage_lists(struct run *r)
{
    enum posgate_err err = signed_cfg_add(&r->s, r->cfg, &r->sink, r->sc);

    for (size_t i = 0; err == POSGATE_OK && i < r->cfg->n_lists; i++) {
        if (!list_changed(r, i)) {
            continue;
        }
        r->changed++;
        err = stage_list(r, i);
    }
    return err;
}
