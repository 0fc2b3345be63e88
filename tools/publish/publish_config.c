/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The configurations an update publishes (publish_internal.h): the feed's own (config/feed.json,
 * listed when new or changed) and each delegated list's (lists/<id>/config.json, list_config.h),
 * which only its authority signs: planned before anything is written, listed in its role,
 * recorded in the state once published. refresh, which reads no entries.csv, requires each to
 * have been signed once.
 */
#define _XOPEN_SOURCE 700
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "list_config.h"
#include "plat_file.h"
#include "plat_mem.h"
#include "publish_internal.h"

/* Adds config/feed.json when it is not listed yet or changed. */
enum posgate_err
publish_config(struct pub_state *s, struct tuf_writer *w, const struct buf *raw, int *changed)
{
    uint8_t sha[CRYPTO_SHA256_LEN];
    char hex[65], p[PATH_CAP], custom[256];
    enum posgate_err err;

    *changed = 0;
    crypto_sha256(raw->data, raw->len, sha);
    crypto_hex(sha, sizeof sha, hex);
    if (strcmp(hex, s->config_sha256) == 0) {
        return POSGATE_OK;
    }
    err = pathf(p, sizeof p, "%s/feed.json", s->dir);
    if (err != POSGATE_OK) {
        return err;
    }
    snprintf(custom, sizeof custom, "{\"type\":\"config\"}");
    err = tuf_writer_add_target(w, "targets", "config/feed.json", p, custom);
    if (err != POSGATE_OK) {
        die_msg("cannot add config/feed.json: %s", tuf_writer_errmsg(w));
        return err;
    }
    memcpy(s->config_sha256, hex, sizeof hex);
    *changed = 1;
    return POSGATE_OK;
}

/* Notes that a row of list uses reason (used: REASON_BITS_BYTES per list of the config). */
void
reason_used_mark(uint8_t *used, uint16_t list, uint16_t reason)
{
    if (reason < FEED_REASONS_MAX) {
        used[(size_t)list * REASON_BITS_BYTES + reason / 8] |= (uint8_t)(1u << (reason % 8));
    }
}

/* The reasons rows of list use, in increasing order; their count. */
static size_t
reasons_used(const uint8_t *used, uint16_t list, uint16_t *out)
{
    size_t n = 0;

    for (unsigned r = 0; r < FEED_REASONS_MAX; r++) {
        if ((used[(size_t)list * REASON_BITS_BYTES + r / 8] & (1u << (r % 8))) != 0) {
            out[n++] = (uint16_t)r;
        }
    }
    return n;
}

/*
 * Before anything is written: for every delegated list, the list config its authority signs
 * (the list and the reasons its rows use, from feed.json) is compared with the one it signed
 * last (<state>/lists/<id>/config.json). With the authority's keys a new one is staged when it
 * differs; without them a difference kiosks would refuse is refused here (exit 4), as is one
 * never signed yet. (A delegated list dropped from feed.json is retire_check's.)
 */
enum posgate_err
signed_cfg_plan(struct pub_state *s, const struct feed_config *cfg, const struct buf *cfg_raw,
                const uint8_t *used, const struct keyring *kr, const char *workdir,
                struct signed_cfg *sc)
{
    struct buf now = BUF_INIT(LIST_CONFIG_MAX_BYTES), old = BUF_INIT(LIST_CONFIG_MAX_BYTES);
    uint16_t *idx = plat_calloc(FEED_REASONS_MAX, sizeof *idx);
    char p[PATH_CAP], msg[LIST_CONFIG_ERRMSG];
    enum posgate_err err = POSGATE_OK;
    size_t i;

    if (idx == NULL) {
        err = POSGATE_ERR_NOMEM;
        goto out;
    }
    for (i = 0; i < cfg->n_lists; i++) {
        const struct pub_list *pl = pub_find(s, cfg->lists[i].id);
        int keys;

        if (pl == NULL || strcmp(pl->role, "targets") == 0) {
            continue;
        }
        keys = keyring_auth_count(kr, pl->id) >= pl->auth_threshold;
        buf_reset(&now);
        buf_reset(&old);
        err = list_config_build(cfg_raw->data, cfg_raw->len, pl->id, idx,
                                reasons_used(used, (uint16_t)i, idx), &now, msg, sizeof msg);
        if (err != POSGATE_OK) {
            die_msg("list %s: %s", pl->id, msg);
            goto out;
        }
        err = pathf(p, sizeof p, "%s/lists/%s/config.json", s->dir, pl->id);
        if (err != POSGATE_OK) {
            goto out;
        }
        err = plat_read_file(p, &old);
        if (err != POSGATE_OK && err != POSGATE_ERR_NOTFOUND) {
            die_msg("cannot read %s: %s", p, posgate_strerror(err));
            goto out;
        }
        if (err == POSGATE_OK && old.len == now.len && memcmp(old.data, now.data, now.len) == 0) {
            continue;
        }
        if (!keys && err == POSGATE_ERR_NOTFOUND) {
            die_msg("refused: list %s is delegated to its authority (role %s, threshold %u) and "
                    "its configuration (lists/%s/config.json) is not signed by it yet; pass "
                    "--authority-key %s=KEY.key. Nothing was published.",
                    pl->id, pl->role, pl->auth_threshold, pl->id, pl->id);
            err = POSGATE_ERR_REJECTED;
            goto out;
        }
        if (!keys) {
            /* the operator's own change (a service appended) that kiosks accept as is */
            err = list_config_check(cfg_raw->data, cfg_raw->len, pl->id, old.data, old.len, msg,
                                    sizeof msg);
            if (err != POSGATE_OK) {
                die_msg("%s; only its authority may change it: pass --authority-key %s=KEY.key. "
                        "Nothing was published.",
                        msg, pl->id);
                goto out;
            }
            continue;
        }
        err = pathf(sc[i].staged, sizeof sc[i].staged, "%s/list-config-%zu.json", workdir, i);
        if (err == POSGATE_OK) {
            err = plat_write_atomic(sc[i].staged, now.data, now.len, 0600);
        }
        if (err != POSGATE_OK) {
            die_msg("cannot write %s: %s", sc[i].staged, posgate_strerror(err));
            goto out;
        }
        sc[i].write = 1;
    }
    err = POSGATE_OK;
out:
    plat_free(idx);
    buf_free(&now);
    buf_free(&old);
    return err;
}

/* Lists each staged list config in its delegated role (signed there by its authority). */
enum posgate_err
signed_cfg_add(struct pub_state *s, const struct feed_config *cfg, const struct target_sink *t,
               const struct signed_cfg *sc)
{
    char name[FEED_NAME_ID_MAX + 32], custom[FEED_NAME_ID_MAX + 64];
    enum posgate_err err;
    size_t i;

    for (i = 0; i < cfg->n_lists; i++) {
        const struct pub_list *pl = pub_find(s, cfg->lists[i].id);

        if (!sc[i].write || pl == NULL) {
            continue;
        }
        snprintf(name, sizeof name, "lists/%s/config.json", pl->id);
        snprintf(custom, sizeof custom, "{\"list\":\"%s\",\"type\":\"list-config\"}", pl->id);
        err = t->add(t->ctx, pl->role, name, sc[i].staged, custom);
        if (err != POSGATE_OK) {
            return err;
        }
    }
    return POSGATE_OK;
}

/* refresh reads no entries.csv, so it cannot sign a list's configuration: a delegated list
 * whose authority has not signed one yet needs an update first (kiosks would refuse the feed). */
enum posgate_err
signed_cfg_require(const struct pub_state *s)
{
    char p[PATH_CAP];
    enum posgate_err err;
    size_t i;

    for (i = 0; i < s->nlists; i++) {
        const struct pub_list *l = &s->lists[i];

        if (strcmp(l->role, "targets") == 0) {
            continue;
        }
        err = pathf(p, sizeof p, "%s/lists/%s/config.json", s->dir, l->id);
        if (err != POSGATE_OK) {
            return err;
        }
        if (access(p, F_OK) != 0) {
            die_msg("refused: list %s is delegated to its authority (role %s) and its "
                    "configuration (lists/%s/config.json) is not signed by it yet; run %s update "
                    "with --authority-key %s=KEY.key first. Nothing was published.",
                    l->id, l->role, l->id, prog, l->id);
            return POSGATE_ERR_REJECTED;
        }
    }
    return POSGATE_OK;
}

/* After the publication: the configs just signed are the ones to compare with next time. */
enum posgate_err
signed_cfg_commit(const struct pub_state *s, const struct feed_config *cfg,
                  const struct signed_cfg *sc)
{
    char dir[PATH_CAP], to[PATH_CAP];
    enum posgate_err err;
    size_t i;

    for (i = 0; i < cfg->n_lists; i++) {
        if (!sc[i].write) {
            continue;
        }
        err = pathf(dir, sizeof dir, "%s/lists/%s", s->dir, cfg->lists[i].id);
        if (err == POSGATE_OK) {
            err = plat_mkdir_p(dir, 0700);
        }
        if (err == POSGATE_OK) {
            err = pathf(to, sizeof to, "%s/config.json", dir);
        }
        if (err == POSGATE_OK) {
            err = copy_file(sc[i].staged, to);
        }
        if (err != POSGATE_OK) {
            return err;
        }
        fprintf(stderr, "%s: list %s: configuration signed by its authority\n", prog,
                cfg->lists[i].id);
    }
    return POSGATE_OK;
}
