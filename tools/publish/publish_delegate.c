/* SPDX-License-Identifier: Apache-2.0 */
/*
 * `posgate-publish delegate`: hands the targets lists/<id>/... to a role of the list's issuing
 * authority's keys, and moves the list's current targets into it.
 */
#define _XOPEN_SOURCE 700
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plat_file.h"
#include "plat_mem.h"
#include "publish_internal.h"

static void
usage_delegate(FILE *f)
{
    fprintf(
        f, "usage: posgate-publish delegate --state DIR --list ID --key AUTH.pub [--key ...]\n"
           "                                --threshold N\n"
           "Delegates the targets lists/ID/* to the list's issuing authority: from now on only\n"
           "a threshold of the authority's keys can change the list (role \"" ROLE_PREFIX "ID\"),\n"
           "so the list is next published from its authority's handover (accept), or by an\n"
           "update given --authority-key ID=KEY.key. The list's current targets move into the\n"
           "delegated role. Nothing is published until then. ID may be a list of the state's\n"
           "feed.json that no run has published (a new list, or a retired one returning).\n"
           "Exit: 0 ok, 2 invalid input, 5 I/O.\n");
}

struct move_ctx {
    const char *prefix;
    size_t n;
    char names[KEEP_DELTAS + 4][256];
    char stored[KEEP_DELTAS + 4][PATH_CAP];
    char custom[KEEP_DELTAS + 4][1024];
};

static enum posgate_err
collect_target(void *ctx, const struct tuf_writer_target *t)
{
    struct move_ctx *m = ctx;

    if (strncmp(t->name, m->prefix, strlen(m->prefix)) != 0) {
        return POSGATE_OK;
    }
    if (m->n == KEEP_DELTAS + 4 || strlen(t->name) >= 256 || strlen(t->stored_path) >= PATH_CAP ||
        (t->custom_json != NULL && strlen(t->custom_json) >= 1024)) {
        return POSGATE_ERR_TOOBIG;
    }
    snprintf(m->names[m->n], 256, "%s", t->name);
    snprintf(m->stored[m->n], PATH_CAP, "%s", t->stored_path);
    snprintf(m->custom[m->n], 1024, "%s", t->custom_json != NULL ? t->custom_json : "");
    m->n++;
    return POSGATE_OK;
}

/* Moves the targets mv->prefix names from the top-level role into role, each through a copy in
 * DIR/work (workdir, PATH_CAP bytes, which the caller removes). */
static enum posgate_err
move_targets(const char *dir, struct tuf_writer *w, const struct pub_list *pl, const char *role,
             struct move_ctx *mv, char *workdir)
{
    size_t i;
    enum posgate_err err;

    err = tuf_writer_foreach_target(w, "targets", collect_target, mv);
    if (err != POSGATE_OK) {
        die_msg("cannot list the targets of list %s: %s", pl->id, posgate_strerror(err));
        return err;
    }
    err = pathf(workdir, PATH_CAP, "%s/work", dir);
    if (err == POSGATE_OK) {
        remove_dir(workdir);
        err = plat_mkdir_p(workdir, 0700);
    }
    for (i = 0; i < mv->n && err == POSGATE_OK; i++) {
        char tmp[PATH_CAP];

        err = pathf(tmp, sizeof tmp, "%s/move-%zu", workdir, i);
        if (err == POSGATE_OK) {
            err = copy_file(mv->stored[i], tmp);
        }
        /* listed in the role before it leaves the top-level one: the writer removes stored
         * content that no role lists any more, and would remove it from the state for good */
        if (err == POSGATE_OK) {
            err = tuf_writer_add_target(w, role, mv->names[i], tmp,
                                        mv->custom[i][0] != '\0' ? mv->custom[i] : NULL);
        }
        if (err == POSGATE_OK) {
            err = tuf_writer_remove_target(w, "targets", mv->names[i]);
        }
        if (err != POSGATE_OK) {
            die_msg("cannot move %s into role %s: %s", mv->names[i], role, tuf_writer_errmsg(w));
        }
    }
    return err;
}

/* A list of the state's feed.json that no run has published yet (a list added, or a retired
 * one coming back delegated to its authority): recorded in the state now, so that it is first
 * published by its authority. */
static enum posgate_err
new_list(struct pub_state *s, const char *id, struct pub_list **out)
{
    struct feed_config *cfg = NULL;
    struct buf raw = BUF_INIT(FEED_CONFIG_MAX_BYTES);
    char p[PATH_CAP];
    enum posgate_err err = pathf(p, sizeof p, "%s/feed.json", s->dir);

    if (err == POSGATE_OK) {
        err = load_config(p, &cfg, &raw);
    }
    if (err == POSGATE_OK && feed_config_list_find(cfg, id) < 0) {
        die_msg("--list \"%s\": not a list of the feed config", id);
        err = POSGATE_ERR_INVALID;
    }
    if (err == POSGATE_OK) {
        *out = pub_add(s, id);
        err = *out != NULL ? POSGATE_OK : POSGATE_ERR_NOMEM;
    }
    feed_config_free(cfg);
    buf_free(&raw);
    return err;
}

int
publish_cmd_delegate(int argc, char **argv)
{
    struct opt o[] = {{"state", 1, 0, {0}, 0},
                      {"list", 1, 0, {0}, 0},
                      {"key", 1, 1, {0}, 0},
                      {"threshold", 1, 0, {0}, 0}};
    struct pub_state s;
    struct tuf_writer *w = NULL;
    struct pub_list *pl;
    struct buf pems[MAX_ROOT_KEYS];
    const char *pem_ptrs[MAX_ROOT_KEYS];
    const char *paths[1];
    char pattern[128], role[TUF_WRITER_ROLE_MAX + 1], prefix[128], workdir[PATH_CAP];
    char keyid[TUF_WRITER_KEYID_LEN + 1], *end = NULL;
    struct tuf_writer_delegation d;
    struct move_ctx *mv = NULL;
    unsigned long thr;
    int rc;
    size_t i;
    enum posgate_err err = POSGATE_ERR_USAGE;

    memset(&s, 0, sizeof s);
    workdir[0] = '\0';
    for (i = 0; i < MAX_ROOT_KEYS; i++) {
        buf_init(&pems[i], CRYPTO_PEM_MAX);
    }
    rc = opt_parse(argc, argv, o, sizeof o / sizeof o[0], OPT_SAY_TWICE);
    if (rc < 0) {
        usage_delegate(stderr);
        return EXIT_USAGE;
    }
    if (rc > 0) {
        usage_delegate(stdout);
        return EXIT_OK;
    }
    for (i = 0; i < 4; i++) {
        if (opt_require(&o[i], "delegate") != 0) {
            return EXIT_USAGE;
        }
    }
    errno = 0;
    thr = strtoul(opt_value(&o[3]), &end, 10);
    if (errno != 0 || end == opt_value(&o[3]) || *end != '\0' || thr < 1 || thr > o[2].count) {
        die_msg("--threshold \"%s\": expected a number from 1 to %zu (the number of keys)",
                opt_value(&o[3]), o[2].count);
        return EXIT_USAGE;
    }
    err = pub_state_load(opt_value(&o[0]), &s);
    if (err != POSGATE_OK) {
        goto out;
    }
    pl = pub_find(&s, opt_value(&o[1]));
    if (pl == NULL) {
        err = new_list(&s, opt_value(&o[1]), &pl);
        if (err != POSGATE_OK) {
            goto out;
        }
    }
    for (i = 0; i < o[2].count; i++) {
        err = plat_read_file(o[2].values[i], &pems[i]);
        if (err == POSGATE_OK) {
            err = tuf_writer_keyid_pem(buf_cstr(&pems[i]), keyid);
        }
        if (err != POSGATE_OK) {
            die_msg("--key %s: %s (expected a PEM ECDSA P-256 or RSA public key, PREFIX.pub "
                    "from posgate-keygen)",
                    o[2].values[i], posgate_strerror(err));
            goto out;
        }
        pem_ptrs[i] = buf_cstr(&pems[i]);
    }
    snprintf(pattern, sizeof pattern, "lists/%s/*", pl->id);
    snprintf(prefix, sizeof prefix, "lists/%s/", pl->id);
    snprintf(role, sizeof role, ROLE_PREFIX "%s", pl->id);
    paths[0] = pattern;
    memset(&d, 0, sizeof d);
    d.delegator = "targets";
    d.name = role;
    d.paths = paths;
    d.path_count = 1;
    d.keys.public_pems = pem_ptrs;
    d.keys.count = o[2].count;
    d.keys.threshold = (unsigned)thr;
    d.terminating = 1;
    err = open_writer(&s, &w);
    if (err != POSGATE_OK) {
        goto out;
    }
    err = tuf_writer_delegate(w, &d);
    if (err != POSGATE_OK) {
        die_msg("cannot delegate %s: %s", pattern, tuf_writer_errmsg(w));
        goto out;
    }
    /* move the list's targets from the top-level role into the delegated one */
    if (strcmp(pl->role, "targets") == 0) {
        mv = plat_calloc(1, sizeof *mv);
        if (mv == NULL) {
            err = POSGATE_ERR_NOMEM;
            goto out;
        }
        mv->prefix = prefix;
        err = move_targets(s.dir, w, pl, role, mv, workdir);
        if (err != POSGATE_OK) {
            goto out;
        }
    }
    snprintf(pl->role, sizeof pl->role, "%s", role);
    pl->auth_threshold = (unsigned)thr;
    pl->resign = 1;
    err = tuf_writer_save(w);
    if (err != POSGATE_OK) {
        die_msg("cannot save the TUF writer state: %s", tuf_writer_errmsg(w));
        goto out;
    }
    err = pub_state_save(&s);
    if (err != POSGATE_OK) {
        goto out;
    }
    printf("delegated %s to role %s: %zu key(s), threshold %lu%s\n", pattern, role, o[2].count, thr,
           mv != NULL && mv->n > 0 ? "; its targets moved into the role" : "");
    printf("the list waits for its authority's signature: accept its handover (%s accept), or "
           "run update with --authority-key %s=KEY.key (its authority signs the list's "
           "configuration too)\n",
           prog, pl->id);
out:
    if (mv != NULL && workdir[0] != '\0') {
        remove_dir(workdir);
    }
    plat_free(mv);
    tuf_writer_free(w);
    for (i = 0; i < MAX_ROOT_KEYS; i++) {
        buf_free(&pems[i]);
    }
    pub_state_cleanup(&s);
    return exit_for(err);
}
