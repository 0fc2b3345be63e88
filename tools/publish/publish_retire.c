/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A delegated list leaving the feed (publish_internal.h): only once the root records its
 * retirement (`authorize --retire`, publish_keys.c, signed by the root threshold) may the
 * operator drop it from feed.json. The update that publishes the drop withdraws the list's
 * delegation (tuf_writer_undelegate keeps the once-signed role in the snapshot, retired) and,
 * once published, forgets the list: its record in publish.json and lists/<id>/. A retired list
 * comes back only delegated again (delegate, then authorize without --retire), never as the
 * operator's own. Kiosks unpin the list from the same root record (agent/core/pins.h), refuse
 * any drop without it, and any return that the root has not recorded anew.
 */
#define _XOPEN_SOURCE 700
#include <stdio.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "json_canon.h"
#include "publish_internal.h"

#define RECORD_MAX (1u << 20)

/* Whether the root w works on records list id as retired; its time into when. */
static enum posgate_err
retired_in(struct tuf_writer *w, const char *id, int *retired, char *when, size_t cap)
{
    struct buf rec = BUF_INIT(RECORD_MAX);
    cJSON *all = NULL;
    const cJSON *t;
    char msg[200];
    enum posgate_err err = tuf_writer_get_root_field(w, AUTH_FIELD, &rec);

    *retired = 0;
    if (err == POSGATE_ERR_NOTFOUND) {
        err = POSGATE_OK; /* the root records no list */
        goto out;
    }
    if (err == POSGATE_OK) {
        err = json_parse_bounded(rec.data, rec.len, RECORD_MAX, &all, msg, sizeof msg);
        if (err != POSGATE_OK) {
            die_msg("the root's %s: %s", AUTH_FIELD, msg);
        }
    } else {
        die_msg("the root's %s: %s", AUTH_FIELD, tuf_writer_errmsg(w));
    }
    if (err != POSGATE_OK) {
        goto out;
    }
    t = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(all, id), "retired");
    if (cJSON_IsString(t)) {
        *retired = 1;
        snprintf(when, cap, "%s", t->valuestring);
    }
out:
    cJSON_Delete(all);
    buf_free(&rec);
    return err;
}

/*
 * Before an update writes anything: each delegated list of the state missing from cfg must be
 * retired by the root (kiosks pinned it: they refuse the drop otherwise), and each list of cfg
 * the root records as retired must still be delegated in the state (the window before its drop):
 * one that comes back as the operator's own would be refused by every kiosk that dropped it.
 */
enum posgate_err
retire_check(struct pub_state *s, const struct feed_config *cfg)
{
    struct tuf_writer *w = NULL;
    char when[64];
    int retired = 0;
    enum posgate_err err = open_writer(s, &w);

    for (size_t i = 0; err == POSGATE_OK && i < s->nlists; i++) {
        const struct pub_list *pl = &s->lists[i];

        if (strcmp(pl->role, "targets") == 0 || feed_config_list_find(cfg, pl->id) >= 0) {
            continue;
        }
        err = retired_in(w, pl->id, &retired, when, sizeof when);
        if (err == POSGATE_OK && !retired) {
            die_msg("refused: list %s is delegated to its authority (role %s) and missing from "
                    "feed.json; kiosks pinned it and would refuse the feed. Only the root "
                    "threshold retires a delegated list: %s authorize --list %s --retire, then "
                    "drop it. Nothing was published.",
                    pl->id, pl->role, prog, pl->id);
            err = POSGATE_ERR_REJECTED;
        }
    }
    for (size_t i = 0; err == POSGATE_OK && i < cfg->n_lists; i++) {
        struct pub_list *pl = pub_find(s, cfg->lists[i].id);

        if (pl != NULL && strcmp(pl->role, "targets") != 0) {
            continue;
        }
        err = retired_in(w, cfg->lists[i].id, &retired, when, sizeof when);
        if (err == POSGATE_OK && retired) {
            die_msg("refused: list %s is retired by the root (since %s) and feed.json lists it "
                    "as the operator's own; kiosks that dropped it would refuse the feed. A "
                    "retired list returns delegated and authorised anew: %s delegate --list %s, "
                    "%s authorize --list %s. Nothing was published.",
                    cfg->lists[i].id, when, prog, cfg->lists[i].id, prog, cfg->lists[i].id);
            err = POSGATE_ERR_REJECTED;
        }
    }
    tuf_writer_free(w);
    return err;
}

/* A delegated list of the state that cfg no longer has (signed_cfg_plan let it through only
 * when the root retired it). */
static int
leaving(const struct pub_list *pl, const struct feed_config *cfg)
{
    return strcmp(pl->role, "targets") != 0 && feed_config_list_find(cfg, pl->id) < 0;
}

enum posgate_err
retire_undelegate(const struct pub_state *s, const struct feed_config *cfg, struct tuf_writer *w)
{
    struct tuf_writer_key_list kl;
    char when[64];
    enum posgate_err err = POSGATE_OK;
    int retired;

    for (size_t i = 0; err == POSGATE_OK && i < s->nlists; i++) {
        const struct pub_list *pl = &s->lists[i];

        if (!leaving(pl, cfg)) {
            continue;
        }
        err = retired_in(w, pl->id, &retired, when, sizeof when);
        if (err == POSGATE_OK && !retired) {
            die_msg("refused: list %s is delegated (role %s) and missing from feed.json, and the "
                    "root does not record its retirement. Nothing was published.",
                    pl->id, pl->role);
            err = POSGATE_ERR_REJECTED;
        }
        if (err != POSGATE_OK) {
            break;
        }
        memset(&kl, 0, sizeof kl);
        if (tuf_writer_get_role_keys(w, pl->role, &kl) == POSGATE_ERR_NOTFOUND) {
            continue; /* withdrawn by an earlier run whose publication did not finish */
        }
        tuf_writer_key_list_cleanup(&kl);
        err = tuf_writer_undelegate(w, "targets", pl->role);
        if (err != POSGATE_OK) {
            die_msg("cannot withdraw the delegation of list %s: %s", pl->id, tuf_writer_errmsg(w));
            break;
        }
        fprintf(stderr,
                "%s: list %s: retired by the root (%s) and dropped from feed.json; its delegation "
                "(role %s) is withdrawn and its targets leave the feed\n",
                prog, pl->id, when, pl->role);
    }
    return err;
}

enum posgate_err
retire_forget(struct pub_state *s, const struct feed_config *cfg)
{
    char dir[PATH_CAP];
    size_t i = 0;
    enum posgate_err err;

    while (i < s->nlists) {
        if (!leaving(&s->lists[i], cfg)) {
            i++;
            continue;
        }
        err = pathf(dir, sizeof dir, "%s/lists/%s", s->dir, s->lists[i].id);
        if (err != POSGATE_OK) {
            return err;
        }
        remove_dir(dir);
        memmove(&s->lists[i], &s->lists[i + 1], (s->nlists - i - 1) * sizeof s->lists[0]);
        s->nlists--;
    }
    return POSGATE_OK;
}
