/* SPDX-License-Identifier: Apache-2.0 */
/*
 * `posgate-publish authority-sign`: the issuing authority, on its own machine, signs the next
 * version of its list's delegated role and writes it as a handover file (handover.h) for the
 * feed operator, who publishes it with `accept` (publish_accept.c) without ever holding the
 * authority's key. The steps, in the order publish_cmd_authority_sign runs them; nothing is
 * written but the work directory until the last one:
 *
 *   open_feed        the public feed (a directory or a bundle) verified as a kiosk would, from
 *                    a root the authority trusts (tuf_client.h); expired metadata is taken
 *                    (a copy may be days old) and said so
 *   load_config      config/feed.json from that feed (or --config, the authority's change of
 *                    its list's definition, for the same feed_id); the list key checked against
 *                    its check value
 *   find_delegation  role list-ID in the verified top-level targets: its keys, threshold and
 *                    paths; the given keys must reach the threshold among them (--new-keys:
 *                    keys the feed does not show yet, for a first delegation or a key change)
 *   load_base        version N of the role (0 when the feed does not delegate the list yet: then
 *                    the list's targets the top-level role lists), its snapshot (verified,
 *                    with its state digest), deltas and configuration, as a scratch state
 *   the update steps entries.csv (rows of the list only), the comparison, the mass-change guard,
 *                    the list's configuration (publish_config.c), its snapshot and delta
 *                    (publish_run.c), listed in the draft of version N + 1 (publish_role.c)
 *   write_handover   the role signed, the manifest signed, the handover written
 */
#define _XOPEN_SOURCE 700
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bundle.h"
#include "carrier.h"
#include "list_key.h"
#include "plat_clock.h"
#include "plat_file.h"
#include "plat_mem.h"
#include "publish_role.h"
#include "tuf_client.h"
#include "tuf_meta.h"

#define ROLE_LIFETIME (30 * 86400) /* as the operator's writer gives its targets roles */

static void
usage_authority_sign(FILE *f)
{
    fprintf(f,
            "usage: posgate-publish authority-sign --list ID --feed FEEDDIR|BUNDLE\n"
            "         --root TRUSTED_ROOT.json --entries entries.csv --list-key LIST.key\n"
            "         --key AUTH.key [--key ...] --out HANDOVER [--config FEED.json]\n"
            "         [--allow-mass-change] [--expires DURATION] [--new-keys] [--work DIR]\n"
            "For the issuing authority, on its own machine: verifies the public feed (as kiosks\n"
            "get it) from the root it trusts, finds its list's delegation and current version,\n"
            "validates entries.csv (rows of list ID only) exactly as update does, refuses a mass\n"
            "change unless --allow-mass-change, and signs the list's next snapshot, delta and\n"
            "configuration in the next version of its role (role list-ID, valid --expires, default\n"
            "30d) with its keys. Writes HANDOVER, one file for the feed operator, who publishes\n"
            "it with `posgate-publish accept` without the authority's key. --config: feed.json\n"
            "with the authority's change of its list's definition (the operator's feed.json must\n"
            "then say the same). --new-keys: keys the feed does not delegate the list to yet (a\n"
            "first delegation, or a key change the operator makes with delegate and authorize).\n"
            "--work DIR: where the run keeps its files (its trusted/, lists/ and work/ are\n"
            "cleared; default: a new directory beside HANDOVER, removed at the end).\n"
            "Exit: 0 ok, 2 invalid input, 4 refused, 5 I/O.\n");
}

/* One authority-sign run. */
struct arun {
    struct run r; /* the update steps, over a scratch state in work/ */
    char work[PATH_CAP];
    int own_work;  /* work was made here (removed at the end) */
    char trusted[PATH_CAP];
    struct carrier *meta, *targets;
    struct tuf_client *c;
    struct buf top; /* the verified top-level targets file */
    struct tuf_meta *topm;
    const struct tuf_deleg_role *deleg; /* in topm; NULL: the feed does not delegate the list */
    const char *list;
    int idx; /* the list's index in the config */
    char role[TUF_WRITER_ROLE_MAX + 1];
    char prefix[FEED_NAME_ID_MAX + 16];
    char feed_id[FEED_ID_MAX + 1];
    size_t nkeys;
    char keyids[MAX_AUTH_KEYS][TUF_WRITER_KEYID_LEN + 1];
    int64_t base_version;
    char base_sha[2 * CRYPTO_SHA256_LEN + 1];
    struct role_draft *d;
};

static void
arun_cleanup(struct arun *a)
{
    run_cleanup(&a->r);
    role_draft_free(a->d);
    tuf_meta_free(a->topm);
    buf_free(&a->top);
    tuf_client_free(a->c);
    carrier_free(a->meta);
    carrier_free(a->targets);
    if (a->work[0] != '\0') {
        char p[PATH_CAP];

        /* the scratch state's files (run_cleanup removed work/work) */
        if (pathf(p, sizeof p, "%s/trusted", a->work) == POSGATE_OK) {
            remove_dir(p);
        }
        if (pathf(p, sizeof p, "%s/lists/%s", a->work, a->list) == POSGATE_OK) {
            remove_dir(p);
        }
        if (pathf(p, sizeof p, "%s/lists", a->work) == POSGATE_OK) {
            remove_dir(p);
        }
        if (pathf(p, sizeof p, "%s/role.json", a->work) == POSGATE_OK) {
            (void)unlink(p);
        }
        if (pathf(p, sizeof p, "%s/handover.json", a->work) == POSGATE_OK) {
            (void)unlink(p);
        }
        if (a->own_work) {
            (void)rmdir(a->work);
        }
    }
}

/* The keys: each loaded into the run's keyring as the list's authority key. */
static enum posgate_err
load_keys(struct arun *a, const struct opt *keys)
{
    struct keyring *kr = &a->r.kr;
    enum posgate_err err;

    if (keys->count > MAX_AUTH_KEYS) {
        die_msg("--key given %zu times, at most %d", keys->count, MAX_AUTH_KEYS);
        return POSGATE_ERR_USAGE;
    }
    for (size_t i = 0; i < keys->count; i++) {
        err = load_privkey(keys->values[i], &kr->keys[kr->n]);
        if (err == POSGATE_OK) {
            err = tuf_writer_keyid(kr->keys[kr->n], a->keyids[i]);
        }
        if (err != POSGATE_OK) {
            return err;
        }
        for (size_t j = 0; j < i; j++) {
            if (strcmp(a->keyids[j], a->keyids[i]) == 0) {
                die_msg("--key %s: the same key as --key %s", keys->values[i], keys->values[j]);
                return POSGATE_ERR_USAGE;
            }
        }
        snprintf(kr->auth[kr->nauth].list, sizeof kr->auth[0].list, "%s", a->list);
        kr->auth[kr->nauth++].k = kr->keys[kr->n++];
        a->nkeys++;
    }
    return POSGATE_OK;
}

/* The work directory: --work, or a new one beside --out. */
static enum posgate_err
make_work(struct arun *a, const char *work, const char *out)
{
    char tmpl[PATH_CAP];
    const char *slash = strrchr(out, '/');
    enum posgate_err err;

    if (work != NULL) {
        err = pathf(a->work, sizeof a->work, "%s", work);
        if (err == POSGATE_OK) {
            err = plat_mkdir_p(a->work, 0700);
        }
        return err;
    }
    err = slash != NULL
              ? pathf(tmpl, sizeof tmpl, "%.*s/.handover-XXXXXX", (int)(slash - out), out)
              : pathf(tmpl, sizeof tmpl, ".handover-XXXXXX");
    if (err != POSGATE_OK) {
        return err;
    }
    if (mkdtemp(tmpl) == NULL) {
        die_msg("cannot create a work directory %s: %s", tmpl, strerror(errno));
        return POSGATE_ERR_IO;
    }
    a->own_work = 1;
    return pathf(a->work, sizeof a->work, "%s", tmpl);
}

/* The public feed verified from the trusted root, into work/trusted. */
static enum posgate_err
open_feed(struct arun *a, const char *feed, const char *root)
{
    struct tuf_client_options o;
    struct buf rb = BUF_INIT(TUF_DEFAULT_ROOT_MAX_LEN);
    char p[PATH_CAP], msg[TUF_CLIENT_ERRMSG_MAX];
    enum posgate_err err;

    err = pathf(a->trusted, sizeof a->trusted, "%s/trusted", a->work);
    if (err == POSGATE_OK) {
        remove_dir(a->trusted);
        err = plat_read_file(root, &rb);
        if (err != POSGATE_OK) {
            die_msg("cannot read the trusted root %s: %s", root, posgate_strerror(err));
        }
    }
    if (err == POSGATE_OK) {
        err = tuf_client_bootstrap(a->trusted, rb.data, rb.len, msg, sizeof msg);
        if (err != POSGATE_OK) {
            die_msg("--root %s: %s", root, msg);
        }
    }
    buf_free(&rb);
    if (err == POSGATE_OK && bundle_is_bundle(feed)) {
        err = carrier_bundle_new(feed, "metadata/", &a->meta, msg, sizeof msg);
        if (err == POSGATE_OK) {
            err = carrier_bundle_new(feed, "targets/", &a->targets, msg, sizeof msg);
        }
        if (err != POSGATE_OK) {
            die_msg("--feed %s: %s", feed, msg);
        }
    } else if (err == POSGATE_OK) {
        err = pathf(p, sizeof p, "%s/metadata", feed);
        if (err == POSGATE_OK) {
            err = carrier_dir_new(p, &a->meta);
        }
        if (err == POSGATE_OK) {
            err = pathf(p, sizeof p, "%s/targets", feed);
        }
        if (err == POSGATE_OK) {
            err = carrier_dir_new(p, &a->targets);
        }
    }
    if (err != POSGATE_OK) {
        return err;
    }
    memset(&o, 0, sizeof o);
    o.metadata_dir = a->trusted;
    o.metadata = a->meta;
    o.targets = a->targets;
    o.accept_expired = 1;
    err = tuf_client_new(&o, &a->c);
    if (err == POSGATE_OK) {
        err = tuf_client_refresh(a->c);
    }
    if (err != POSGATE_OK) {
        die_msg("refused: the feed %s does not verify from the root %s: %s. Nothing was signed.",
                feed, root, tuf_client_errmsg(a->c));
        return err == POSGATE_ERR_NOMEM || err == POSGATE_ERR_IO ? err : POSGATE_ERR_REJECTED;
    }
    if (tuf_client_expired(a->c)) {
        fprintf(stderr, "%s: note: the feed's metadata has expired (an old copy?); the operator "
                        "refuses a handover built on a version it has moved past\n",
                prog);
    }
    buf_init(&a->top, TUF_META_MAX_LEN);
    err = pathf(p, sizeof p, "%s/targets.json", a->trusted);
    if (err == POSGATE_OK) {
        err = plat_read_file(p, &a->top);
    }
    if (err == POSGATE_OK) {
        err = tuf_meta_parse(a->top.data, a->top.len, TUF_ROLE_TARGETS, &a->topm, msg, sizeof msg);
    }
    return err;
}

/* Downloads the verified target name to dest. */
static enum posgate_err
download(struct arun *a, const char *name, const char *dest)
{
    struct tuf_target_info info;
    enum posgate_err err = tuf_client_find_target(a->c, name, &info);

    if (err == POSGATE_OK) {
        err = tuf_client_download(a->c, &info, dest);
    }
    if (err != POSGATE_OK) {
        die_msg("cannot take %s from the feed: %s", name, tuf_client_errmsg(a->c));
    }
    return err;
}

/* The feed's config (or --config for the same feed), the list in it, the list key's check. */
static enum posgate_err
load_config_key(struct arun *a, const char *config, const char *list_key)
{
    struct run *r = &a->r;
    struct feed_config *feed_cfg = NULL;
    struct buf feed_raw = BUF_INIT(FEED_CONFIG_MAX_BYTES);
    char p[PATH_CAP], check[LIST_KEY_CHECK_HEX + 1], msg[512];
    enum posgate_err err;

    err = pathf(p, sizeof p, "%s/feed.json", a->trusted);
    if (err == POSGATE_OK) {
        err = download(a, "config/feed.json", p);
    }
    if (err == POSGATE_OK) {
        err = load_config(p, &feed_cfg, &feed_raw);
    }
    if (err != POSGATE_OK) {
        goto out;
    }
    snprintf(a->feed_id, sizeof a->feed_id, "%s", feed_cfg->feed_id);
    if (config != NULL) {
        err = load_config(config, &r->cfg, &r->cfg_raw);
        if (err == POSGATE_OK && strcmp(r->cfg->feed_id, a->feed_id) != 0) {
            die_msg("--config %s is for feed \"%s\", the feed is \"%s\"", config, r->cfg->feed_id,
                    a->feed_id);
            err = POSGATE_ERR_INVALID;
        }
    } else {
        r->cfg = feed_cfg;
        feed_cfg = NULL;
        err = buf_append(&r->cfg_raw, feed_raw.data, feed_raw.len);
    }
    if (err != POSGATE_OK) {
        goto out;
    }
    a->idx = feed_config_list_find(r->cfg, a->list);
    if (a->idx < 0) {
        die_msg("--list \"%s\": not a list of the feed configuration", a->list);
        err = POSGATE_ERR_INVALID;
        goto out;
    }
    err = load_list_key(list_key, &r->hk);
    if (err != POSGATE_OK) {
        goto out;
    }
    list_key_check(&r->hk, check);
    err = list_key_check_match(r->cfg->list_key_check[0] != 0
                                   ? r->cfg->list_key_check
                                   : (feed_cfg != NULL ? feed_cfg->list_key_check : ""),
                               check, msg, sizeof msg);
    if (err != POSGATE_OK) {
        die_msg("--list-key %s: %s", list_key, msg);
    }
out:
    feed_config_free(feed_cfg);
    buf_free(&feed_raw);
    return err;
}

/* Role list-ID in the verified top-level targets, and the given keys against it. */
static enum posgate_err
find_delegation(struct arun *a, int new_keys)
{
    const struct tuf_delegations *dl = &a->topm->delegations;
    size_t in = 0;

    for (size_t i = 0; a->topm->has_delegations && i < dl->nroles; i++) {
        if (strcmp(dl->roles[i].name, a->role) == 0) {
            a->deleg = &dl->roles[i];
        }
    }
    if (a->deleg != NULL && !a->deleg->has_paths) {
        die_msg("role %s is delegated by hash prefixes, expected path patterns", a->role);
        return POSGATE_ERR_UNSUPPORTED;
    }
    for (size_t k = 0; a->deleg != NULL && k < a->nkeys; k++) {
        for (size_t j = 0; j < a->deleg->keys.nkeyids; j++) {
            in += strcmp(a->deleg->keys.keyids[j], a->keyids[k]) == 0;
        }
    }
    if (a->deleg == NULL && !new_keys) {
        die_msg("refused: the feed does not delegate list %s (no role %s in its top-level "
                "targets); for the first handover, which the operator accepts with the "
                "delegation to your keys, pass --new-keys. Nothing was signed.",
                a->list, a->role);
        return POSGATE_ERR_REJECTED;
    }
    if (a->deleg != NULL && in < a->nkeys && !new_keys) {
        die_msg("refused: %zu of the %zu key(s) given are not among role %s's %zu key(s) in the "
                "feed; if the operator is moving the list to them (delegate and authorize), "
                "pass --new-keys. Nothing was signed.",
                a->nkeys - in, a->nkeys, a->role, a->deleg->keys.nkeyids);
        return POSGATE_ERR_REJECTED;
    }
    if (a->deleg != NULL && in == a->nkeys && in < a->deleg->keys.threshold) {
        die_msg("refused: role %s needs signatures of %u of its keys (threshold), %zu given. "
                "Nothing was signed.",
                a->role, a->deleg->keys.threshold, in);
        return POSGATE_ERR_REJECTED;
    }
    if (a->deleg == NULL || in < a->nkeys) {
        fprintf(stderr,
                "%s: signing with key(s) the feed does not delegate list %s to yet: the operator "
                "checks them against the delegation in its state\n",
                prog, a->list);
    }
    return POSGATE_OK;
}

struct base_ctx {
    struct arun *a;
    struct pub_list *pl;
    size_t nsnap;
    int have_config;
    uint64_t delta_seq[KEEP_DELTAS + 1];
    enum posgate_err err;
};

/* One target of the base listing: the list's records. */
static enum posgate_err
base_target(void *ctx, const struct tuf_target_info *t)
{
    struct base_ctx *b = ctx;
    struct pub_list *pl = b->pl;
    struct list_target lt;
    char msg[HANDOVER_ERRMSG_MAX];
    size_t k;

    if (strncmp(t->name, b->a->prefix, strlen(b->a->prefix)) != 0) {
        return POSGATE_OK;
    }
    if (list_target_parse(t->custom_json, &lt, msg, sizeof msg) != POSGATE_OK ||
        strcmp(lt.list, b->a->list) != 0) {
        die_msg("the feed's target %s: %s", t->name, msg);
        return POSGATE_ERR_REJECTED;
    }
    if (lt.type == LIST_TARGET_CONFIG) {
        b->have_config = 1;
    } else if (lt.type == LIST_TARGET_SNAPSHOT) {
        b->nsnap++;
        snprintf(pl->snapshot_target, sizeof pl->snapshot_target, "%s", t->name);
        pl->seq = lt.seq;
        pl->entries = lt.entries;
        pl->issued_at = lt.issued_at;
        pl->ident_format = lt.ident_format;
        pl->published = 1;
    } else if (pl->ndeltas == KEEP_DELTAS + 1 || strlen(t->name) >= sizeof pl->deltas[0]) {
        die_msg("the feed lists more than %d deltas of list %s", KEEP_DELTAS + 1, b->a->list);
        return POSGATE_ERR_REJECTED;
    } else {
        /* oldest first, as update keeps them */
        for (k = pl->ndeltas; k > 0 && b->delta_seq[k - 1] > lt.seq; k--) {
            b->delta_seq[k] = b->delta_seq[k - 1];
            memcpy(pl->deltas[k], pl->deltas[k - 1], sizeof pl->deltas[0]);
        }
        b->delta_seq[k] = lt.seq;
        snprintf(pl->deltas[k], sizeof pl->deltas[0], "%s", t->name);
        pl->ndeltas++;
    }
    return POSGATE_OK;
}

/* The base snapshot's state digest, read back and checked against what the feed says of it. */
static enum posgate_err
base_snapshot(struct arun *a, struct pub_list *pl, const char *path)
{
    FILE *f = fopen(path, "rb");
    struct feed_source src;
    struct feed_reader *rd = NULL;
    const struct feed_header *h;
    enum feed_item item;
    struct feed_entry e;
    enum posgate_err err;

    if (f == NULL) {
        die_msg("cannot open %s: %s", path, strerror(errno));
        return POSGATE_ERR_IO;
    }
    feed_source_file(&src, f);
    err = feed_reader_new(&src, FEED_READ_VERIFY_DIGEST, &rd);
    if (err == POSGATE_OK) {
        err = feed_reader_header(rd, &h);
    }
    if (err == POSGATE_OK && (h->body != FEED_BODY_SNAPSHOT || h->seq != pl->seq ||
                              h->count != pl->entries || strcmp(h->list_id, a->list) != 0)) {
        die_msg("%s is not the snapshot its metadata says (list %s, seq %" PRIu64 ", %" PRIu64
                " entries)",
                pl->snapshot_target, a->list, pl->seq, pl->entries);
        err = POSGATE_ERR_CORRUPT;
    }
    while (err == POSGATE_OK && (err = feed_reader_next(rd, &item, &e)) == POSGATE_OK &&
           item != FEED_ITEM_END) {
    }
    if (err == POSGATE_OK) {
        pl->state = *feed_reader_trailer_state(rd);
    } else if (rd != NULL && feed_reader_errmsg(rd)[0] != '\0') {
        die_msg("%s: %s", pl->snapshot_target, feed_reader_errmsg(rd));
    }
    feed_reader_free(rd);
    fclose(f);
    return err;
}

/* The first handover carries every target of its base (the top-level role's listing of the
 * list), as well as what it lists anew: the operator's state may lack the content `delegate`
 * moved into the role (a state from before this version lost it). */
static enum posgate_err
carry_base(struct arun *a, const struct pub_list *pl, const char *dir, int have_config)
{
    char p[PATH_CAP], name[FEED_NAME_ID_MAX + 32];
    enum posgate_err err = POSGATE_OK;

    if (pl->published) {
        err = pathf(p, sizeof p, "%s/snapshot.pgs", dir);
        if (err == POSGATE_OK) {
            err = role_draft_carry(a->d, pl->snapshot_target, p);
        }
    }
    if (err == POSGATE_OK && have_config) {
        snprintf(name, sizeof name, "%sconfig.json", a->prefix);
        err = pathf(p, sizeof p, "%s/config.json", dir);
        if (err == POSGATE_OK) {
            err = role_draft_carry(a->d, name, p);
        }
    }
    for (size_t k = 0; err == POSGATE_OK && k < pl->ndeltas; k++) {
        err = pathf(p, sizeof p, "%s/base-delta-%zu", dir, k);
        if (err == POSGATE_OK) {
            err = download(a, pl->deltas[k], p);
        }
        if (err == POSGATE_OK) {
            err = role_draft_carry(a->d, pl->deltas[k], p);
        }
    }
    return err;
}

/* Version N of the role (or the top-level listing when N is 0), as the scratch state's record of
 * the list and as the draft of N + 1. */
static enum posgate_err
load_base(struct arun *a)
{
    struct pub_list *pl = pub_add(&a->r.s, a->list);
    struct base_ctx b;
    struct buf rb = BUF_INIT(TUF_META_MAX_LEN);
    char p[PATH_CAP], dir[PATH_CAP];
    const char *deflt = NULL;
    uint8_t sha[CRYPTO_SHA256_LEN];
    int64_t exp;
    enum posgate_err err;

    if (pl == NULL) {
        return POSGATE_ERR_NOMEM;
    }
    memset(&b, 0, sizeof b);
    b.a = a;
    b.pl = pl;
    snprintf(pl->role, sizeof pl->role, "%s", a->role);
    pl->auth_threshold = 1;
    err = tuf_client_foreach_target(a->c, a->deleg != NULL ? a->role : "targets", base_target, &b);
    if (err != POSGATE_OK && b.err == POSGATE_OK && err != POSGATE_ERR_REJECTED) {
        die_msg("cannot read role %s from the feed: %s", a->deleg != NULL ? a->role : "targets",
                tuf_client_errmsg(a->c));
    }
    if (err == POSGATE_OK && b.nsnap > 1) {
        die_msg("the feed lists %zu snapshots of list %s, expected one", b.nsnap, a->list);
        err = POSGATE_ERR_REJECTED;
    }
    if (err == POSGATE_OK && a->deleg != NULL) {
        err = tuf_client_role_info(a->c, a->role, &a->base_version, &exp);
        if (err == POSGATE_OK) {
            err = pathf(p, sizeof p, "%s/%s.json", a->trusted, a->role);
        }
        if (err == POSGATE_OK) {
            err = plat_read_file(p, &rb);
        }
        if (err == POSGATE_OK) {
            crypto_sha256(rb.data, rb.len, sha);
            crypto_hex(sha, sizeof sha, a->base_sha);
            err = role_draft_from_role(rb.data, rb.len, (const char *const *)a->deleg->paths,
                                       a->deleg->npaths, &a->d);
        }
    } else if (err == POSGATE_OK) {
        char pattern[FEED_NAME_ID_MAX + 24];

        /* what `delegate` hands to the role: lists/ID/ followed by "*" */
        snprintf(pattern, sizeof pattern, "%s*", a->prefix);
        deflt = pattern;
        err = role_draft_from_targets(a->top.data, a->top.len, a->prefix, &deflt, 1, &a->d);
    }
    buf_free(&rb);
    if (err == POSGATE_OK) {
        err = pathf(dir, sizeof dir, "%s/lists/%s", a->r.s.dir, a->list);
    }
    if (err == POSGATE_OK) {
        err = plat_mkdir_p(dir, 0700);
    }
    if (err == POSGATE_OK && b.have_config) {
        char name[FEED_NAME_ID_MAX + 32];

        snprintf(name, sizeof name, "%sconfig.json", a->prefix);
        err = pathf(p, sizeof p, "%s/config.json", dir);
        if (err == POSGATE_OK) {
            err = download(a, name, p);
        }
    }
    if (err == POSGATE_OK && pl->published) {
        err = pathf(p, sizeof p, "%s/snapshot.pgs", dir);
        if (err == POSGATE_OK) {
            err = download(a, pl->snapshot_target, p);
        }
        if (err == POSGATE_OK) {
            err = base_snapshot(a, pl, p);
        }
    }
    if (err == POSGATE_OK && a->deleg == NULL) {
        err = carry_base(a, pl, dir, b.have_config);
    }
    return err;
}

/* The update steps over the scratch state: the list's rows, compared with its base, the
 * guard, its configuration and its targets, listed in the draft. */
static enum posgate_err
run_steps(struct arun *a, const char *entries, int allow_mass_change)
{
    struct run *r = &a->r;
    enum posgate_err err = plan_lists(r);

    for (size_t i = 0; err == POSGATE_OK && i < r->cfg->n_lists; i++) {
        r->lw[i].untouched = (int)i != a->idx;
    }
    r->only_list = a->idx;
    r->outcome = "signed";
    if (err == POSGATE_OK) {
        err = read_entries(r, entries);
    }
    if (err == POSGATE_OK) {
        err = compare_lists(r);
    }
    if (err == POSGATE_OK) {
        err = check_mass_change(r, allow_mass_change);
    }
    if (err == POSGATE_OK) {
        err = signed_cfg_plan(&r->s, r->cfg, &r->cfg_raw, r->used, &r->kr, r->workdir, r->sc);
    }
    if (err == POSGATE_OK) {
        role_draft_sink(a->d, &r->sink);
        err = stage_lists(r);
    }
    return err;
}

/* Signs the draft as version N + 1 and the manifest, and writes the handover. */
static enum posgate_err
write_handover(struct arun *a, const char *out, int64_t lifetime)
{
    struct handover_manifest m;
    struct buf b = BUF_INIT(TUF_META_MAX_LEN);
    const struct handover_file *files;
    char role_path[PATH_CAP], man_path[PATH_CAP], msg[BUNDLE_ERRMSG_MAX];
    uint8_t sha[CRYPTO_SHA256_LEN];
    size_t n;
    enum posgate_err err;

    memset(&m, 0, sizeof m);
    m.base_version = a->base_version;
    m.version = a->base_version + 1;
    m.created = a->r.now;
    snprintf(m.feed_id, sizeof m.feed_id, "%s", a->feed_id);
    snprintf(m.list, sizeof m.list, "%s", a->list);
    snprintf(m.role, sizeof m.role, "%s", a->role);
    snprintf(m.base_sha256, sizeof m.base_sha256, "%s", a->base_sha);
    err = pathf(role_path, sizeof role_path, "%s/role.json", a->work);
    if (err == POSGATE_OK) {
        err = pathf(man_path, sizeof man_path, "%s/handover.json", a->work);
    }
    if (err == POSGATE_OK) {
        err = role_draft_write(a->d, m.version, a->r.now + lifetime, a->r.now, role_path);
    }
    if (err == POSGATE_OK) {
        err = tuf_writer_sign_file(role_path, a->r.kr.keys, a->nkeys, 0);
    }
    if (err == POSGATE_OK) {
        err = plat_read_file(role_path, &b);
    }
    if (err == POSGATE_OK) {
        crypto_sha256(b.data, b.len, sha);
        crypto_hex(sha, sizeof sha, m.role_sha256);
        err = handover_manifest_json(&m, &b);
    }
    if (err == POSGATE_OK) {
        err = plat_write_atomic(man_path, b.data, b.len, 0600);
    }
    if (err == POSGATE_OK) {
        err = tuf_writer_sign_file(man_path, a->r.kr.keys, a->nkeys, 0);
    }
    if (err != POSGATE_OK) {
        die_msg("cannot sign the handover in %s: %s", a->work, posgate_strerror(err));
        goto out;
    }
    files = role_draft_carried(a->d, &n);
    err = handover_write(out, man_path, role_path, files, n, msg, sizeof msg);
    if (err != POSGATE_OK) {
        die_msg("cannot write %s: %s", out, msg);
    }
out:
    buf_free(&b);
    return err;
}

static void
report(const struct arun *a, const char *out)
{
    const struct list_work *l = &a->r.lw[a->idx];
    const struct pub_list *pl = l->pl;

    if (!list_changed(&a->r, (size_t)a->idx)) {
        fprintf(stderr, "%s: list %s unchanged (seq %" PRIu64 ", %" PRIu64 " entries)%s\n", prog,
                a->list, pl->seq, pl->entries,
                a->r.sc[a->idx].write ? "; its configuration signed"
                                      : "; the role is signed again: the list counts as fresh "
                                        "from now");
    }
    fprintf(stderr,
            "%s: handover of list %s written to %s: role %s version %" PRId64 " (on version %" PRId64
            " of feed %s), signed by %zu key(s); give it to the feed operator (%s accept)\n",
            prog, a->list, out, a->role, a->base_version + 1, a->base_version, a->feed_id,
            a->nkeys, prog);
}

int
publish_cmd_authority_sign(int argc, char **argv)
{
    struct opt o[] = {{"list", 1, 0, {0}, 0},     {"feed", 1, 0, {0}, 0},
                      {"root", 1, 0, {0}, 0},     {"entries", 1, 0, {0}, 0},
                      {"list-key", 1, 0, {0}, 0}, {"key", 1, 1, {0}, 0},
                      {"out", 1, 0, {0}, 0},      {"config", 1, 0, {0}, 0},
                      {"allow-mass-change", 0, 0, {0}, 0}, {"expires", 1, 0, {0}, 0},
                      {"new-keys", 0, 0, {0}, 0}, {"work", 1, 0, {0}, 0}};
    struct arun a;
    int64_t lifetime = ROLE_LIFETIME;
    int rc = opt_parse(argc, argv, o, sizeof o / sizeof o[0], OPT_SAY_TWICE);
    enum posgate_err err;

    if (rc != 0) {
        usage_authority_sign(rc > 0 ? stdout : stderr);
        return rc > 0 ? EXIT_OK : EXIT_USAGE;
    }
    for (size_t i = 0; i < 7; i++) {
        if (opt_require(&o[i], "authority-sign") != 0) {
            return EXIT_USAGE;
        }
    }
    if (o[9].count > 0 &&
        (plat_duration_parse(opt_value(&o[9]), &lifetime) != POSGATE_OK || lifetime <= 0)) {
        die_msg("--expires \"%s\": expected a duration like 7d or 720h", opt_value(&o[9]));
        return EXIT_USAGE;
    }
    if (!feed_list_id_valid(opt_value(&o[0]))) {
        die_msg("--list \"%s\": expected a list id (1 to 64 of [A-Za-z0-9._-])", opt_value(&o[0]));
        return EXIT_USAGE;
    }
    if (plat_exists(opt_value(&o[6]))) {
        die_msg("--out %s exists; refusing to overwrite it", opt_value(&o[6]));
        return EXIT_USAGE;
    }
    memset(&a, 0, sizeof a);
    run_init(&a.r);
    a.list = opt_value(&o[0]);
    snprintf(a.role, sizeof a.role, ROLE_PREFIX "%s", a.list);
    snprintf(a.prefix, sizeof a.prefix, "lists/%s/", a.list);
    err = load_keys(&a, &o[5]);
    if (err == POSGATE_OK) {
        err = make_work(&a, opt_value(&o[11]), opt_value(&o[6]));
    }
    if (err == POSGATE_OK) {
        snprintf(a.r.s.dir, sizeof a.r.s.dir, "%s", a.work);
        err = open_feed(&a, opt_value(&o[1]), opt_value(&o[2]));
    }
    if (err == POSGATE_OK) {
        err = load_config_key(&a, opt_value(&o[7]), opt_value(&o[4]));
    }
    if (err == POSGATE_OK) {
        err = find_delegation(&a, o[10].count > 0);
    }
    if (err == POSGATE_OK) {
        err = load_base(&a);
    }
    if (err == POSGATE_OK) {
        err = run_steps(&a, opt_value(&o[3]), o[8].count > 0);
    }
    if (err == POSGATE_OK) {
        err = write_handover(&a, opt_value(&o[6]), lifetime);
    }
    if (err == POSGATE_OK) {
        report(&a, opt_value(&o[6]));
    }
    arun_cleanup(&a);
    return exit_for(err);
}
