/* SPDX-License-Identifier: Apache-2.0 */
/*
 * `posgate-publish accept`: the feed operator verifies an authority's handover (handover.h) against
 * the delegation its state records, installs the authority's signed role and its targets, and
 * publishes them with its own keys (snapshot, timestamp). The operator never holds the
 * authority's key. The steps, in the order publish_cmd_accept runs them; every refusal comes
 * before anything is written, and leaves the state and the feed directory as they were:
 *
 *   open_handover     the file's form (handover.c), the feed and the list it is for, the list
 *                     delegated in this state to the role it names
 *   check_keys        the delegation as the state records it now (after delegate and authorize:
 *                     a removed key counts for nothing) against the root's record of the list's
 *                     authority; the manifest and the role each signed by a threshold of its keys
 *   check_versions    the role's next version, built on the state's current one (the manifest
 *                     names both, and the base's sha256): a replayed or stale handover is refused
 *   check_role        expiry and signing time, every target within the delegation's paths, the
 *                     list's targets (one snapshot, its deltas, its configuration), each target's
 *                     content carried (length, sha256) or already in the state, the snapshot read
 *                     back against its state digest, the configuration against feed.json
 *   install           the targets into the writer's working copy of the role, the signed role
 *                     imported over it (tuf_writer_import_delegated checks the thresholds
 *                     again, the role's signing time its authority's)
 *   commit            the list's record (publish.json, its snapshot and configuration), then the
 *                     repository with the operator's keys
 */
#define _XOPEN_SOURCE 700
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "handover.h"
#include "json_canon.h"
#include "list_config.h"
#include "plat_clock.h"
#include "plat_file.h"
#include "plat_mem.h"
#include "publish_internal.h"
#include "tuf_meta.h"

#define CLOCK_SKEW 600 /* seconds a signing time may lie ahead of this clock */

static void
usage_accept(FILE *f)
{
    fprintf(f,
            "usage: posgate-publish accept --state DIR --handover FILE --out FEEDDIR\n"
            "                              [--expires DURATION]\n"
            "Verifies an issuing authority's handover (posgate-publish authority-sign) against\n"
            "the delegation of its list in the state: the manifest and the role signed by a\n"
            "threshold of the keys the state delegates the list to now (and the root records,\n"
            "when it records the list's authority), the role's version the next after the\n"
            "state's (a replayed or stale handover is refused), every target within the\n"
            "delegated paths with the length and sha256 the role lists, the list's\n"
            "configuration as feed.json has it. Then installs the role and its targets and\n"
            "publishes the feed to FEEDDIR with the operator's keys (--expires: the timestamp's\n"
            "lifetime, default 1d). Refused with exit 4 and nothing changed otherwise.\n"
            "Exit: 0 ok, 2 invalid input, 4 refused, 5 I/O.\n");
}

/* One target of the handover's role. */
struct acc_target {
    const struct tuf_target *t; /* in rm */
    struct list_target lt;
    int kept;             /* the state's working copy lists it as is */
    int fresh;            /* its content is new to the state (removed again on a failure) */
    char path[PATH_CAP];  /* its content: extracted from the handover, or the state's */
    char stored[PATH_CAP]; /* where install stored fresh content ("" before) */
    char sha_hex[2 * CRYPTO_SHA256_LEN + 1];
};

/* One accept run. */
struct acc {
    struct run r; /* the state, its config, the operator's keys; r.w its writer */
    struct handover *h;
    const struct handover_manifest *m;
    struct pub_list *pl;
    int idx;
    struct tuf_writer_key_list kl;
    struct tuf_meta *rm; /* the handover's role */
    struct acc_target *tg;
    size_t ntg, snap, cfg;
    int64_t state_version;
    int installed; /* the state holds this very role already (a run stopped after installing) */
    struct state_digest state;
};

static enum posgate_err refuse(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Says why the handover is refused (and that nothing changed); REJECTED. */
static enum posgate_err
refuse(const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "%s: refused: ", prog);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, ". Nothing was changed.\n");
    return POSGATE_ERR_REJECTED;
}

static void
acc_cleanup(struct acc *a)
{
    handover_free(a->h);
    tuf_writer_key_list_cleanup(&a->kl);
    tuf_meta_free(a->rm);
    plat_free(a->tg);
    run_cleanup(&a->r);
}

/* The handover's form, and the list of this state it is for. */
static enum posgate_err
open_handover(struct acc *a, const char *path)
{
    char msg[HANDOVER_ERRMSG_MAX];
    enum posgate_err err = handover_open(path, &a->h, msg, sizeof msg);

    if (err == POSGATE_ERR_NOTFOUND || err == POSGATE_ERR_IO || err == POSGATE_ERR_NOMEM) {
        die_msg("--handover %s: %s", path, msg);
        return err;
    }
    if (err != POSGATE_OK) {
        return refuse("%s is not a handover this version reads: %s", path, msg);
    }
    a->m = handover_manifest(a->h);
    if (strcmp(a->m->feed_id, a->r.cfg->feed_id) != 0) {
        return refuse("the handover is for feed \"%s\", this state publishes feed \"%s\"",
                      a->m->feed_id, a->r.cfg->feed_id);
    }
    a->idx = feed_config_list_find(a->r.cfg, a->m->list);
    a->pl = pub_find(&a->r.s, a->m->list);
    if (a->idx < 0 || a->pl == NULL) {
        return refuse("the handover is for list %s, which this feed does not have", a->m->list);
    }
    if (strcmp(a->pl->role, "targets") == 0) {
        return refuse("list %s is not delegated in this state (expected role %s%s; the operator "
                      "delegates it to its authority's keys first: %s delegate)",
                      a->m->list, ROLE_PREFIX, a->m->list, prog);
    }
    if (strcmp(a->pl->role, a->m->role) != 0) {
        return refuse("the handover is for role %s, list %s is delegated to role %s", a->m->role,
                      a->m->list, a->pl->role);
    }
    return open_writer(&a->r.s, &a->r.w);
}

static int
cmp_keyid(const void *x, const void *y)
{
    return strcmp((const char *)x, (const char *)y);
}

/* When the root records the list's authority (authorize), the state's delegation must be that
 * record: kiosks pin the list to it. */
static enum posgate_err
check_root_record(struct acc *a)
{
    struct buf rec = BUF_INIT(1u << 20);
    cJSON *all = NULL, *mine = NULL, *keys;
    const cJSON *r, *when;
    char ids[TUF_WRITER_MAX_KEYS][TUF_WRITER_KEYID_LEN + 1], msg[200];
    enum posgate_err err = tuf_writer_get_root_field(a->r.w, AUTH_FIELD, &rec);

    if (err == POSGATE_ERR_NOTFOUND) {
        buf_free(&rec);
        return POSGATE_OK; /* kiosks pin the list on first sight (docs/tuf.md) */
    }
    if (err == POSGATE_OK) {
        err = json_parse_bounded(rec.data, rec.len, rec.max, &all, msg, sizeof msg);
    }
    r = cJSON_GetObjectItemCaseSensitive(all, a->m->list);
    if (err != POSGATE_OK || r == NULL) {
        goto out;
    }
    when = cJSON_GetObjectItemCaseSensitive(r, "retired");
    if (cJSON_IsString(when)) {
        err = refuse("list %s is retired by the root (since %s): its authority's handovers are no "
                     "longer published; drop it from feed.json and run %s update (a retired list "
                     "returns only delegated and authorised anew)",
                     a->m->list, when->valuestring, prog);
        goto out;
    }
    for (size_t i = 0; err == POSGATE_OK && i < a->kl.count; i++) {
        err = tuf_writer_keyid_pem(a->kl.pems[i], ids[i]);
    }
    mine = cJSON_CreateObject();
    keys = cJSON_AddArrayToObject(mine, "keys");
    if (err != POSGATE_OK || keys == NULL) {
        err = err != POSGATE_OK ? err : POSGATE_ERR_NOMEM;
        goto out;
    }
    qsort(ids, a->kl.count, sizeof ids[0], cmp_keyid);
    for (size_t i = 0; i < a->kl.count; i++) {
        cJSON_AddItemToArray(keys, cJSON_CreateString(ids[i]));
    }
    cJSON_AddStringToObject(mine, "role", a->pl->role);
    cJSON_AddNumberToObject(mine, "threshold", a->kl.threshold);
    if (!cJSON_Compare(mine, r, 1)) {
        char *want = cJSON_PrintUnformatted(r), *have = cJSON_PrintUnformatted(mine);

        err = refuse("the delegation of list %s in this state (%s) differs from the root's record "
                     "of its authority (%s): kiosks would refuse the feed; a change of the "
                     "authority's keys needs the root threshold (%s authorize)",
                     a->m->list, have != NULL ? have : "?", want != NULL ? want : "?", prog);
        cJSON_free(want);
        cJSON_free(have);
    }
out:
    cJSON_Delete(mine);
    cJSON_Delete(all);
    buf_free(&rec);
    return err;
}

/* The signatures of env: a threshold of the delegation's keys as the state records them now. */
static enum posgate_err
check_signed(struct acc *a, const struct buf *env, const char *what)
{
    char msg[HANDOVER_ERRMSG_MAX];
    unsigned valid = 0;
    enum posgate_err err = handover_count_signatures(env->data, env->len,
                                                     (const char *const *)a->kl.pems, a->kl.count,
                                                     &valid, msg, sizeof msg);

    if (err != POSGATE_OK) {
        return refuse("the handover's %s: %s", what, msg);
    }
    if (valid < a->kl.threshold) {
        return refuse("the handover's %s is signed by %u of the %zu key(s) this state delegates "
                      "list %s to (role %s), expected %u (its threshold); a key removed from the "
                      "delegation, another key or a forged signature does not count",
                      what, valid, a->kl.count, a->m->list, a->pl->role, a->kl.threshold);
    }
    return POSGATE_OK;
}

/* Step check_keys. */
static enum posgate_err
check_keys(struct acc *a)
{
    enum posgate_err err = tuf_writer_get_role_keys(a->r.w, a->pl->role, &a->kl);

    if (err != POSGATE_OK) {
        die_msg("role %s: %s", a->pl->role, tuf_writer_errmsg(a->r.w));
        return err;
    }
    err = check_root_record(a);
    if (err == POSGATE_OK) {
        err = check_signed(a, handover_manifest_bytes(a->h), "manifest (" HANDOVER_MANIFEST ")");
    }
    if (err == POSGATE_OK) {
        err = check_signed(a, handover_role_bytes(a->h), "role (" HANDOVER_ROLE ")");
    }
    return err;
}

/* Step check_versions: version N + 1 of the role, built on the state's version N itself. */
static enum posgate_err
check_versions(struct acc *a)
{
    const struct buf *role = handover_role_bytes(a->h);
    const void *cur = NULL;
    size_t cur_len = 0;
    uint8_t sha[CRYPTO_SHA256_LEN];
    char hex[2 * CRYPTO_SHA256_LEN + 1];
    enum posgate_err err = tuf_writer_role_version(a->r.w, a->pl->role, &a->state_version);

    if (err != POSGATE_OK) {
        return err;
    }
    if (a->state_version > 0 &&
        tuf_writer_role_signed(a->r.w, a->pl->role, &cur, &cur_len) != POSGATE_OK) {
        return POSGATE_ERR_CORRUPT;
    }
    if (a->m->version == a->state_version && cur_len == role->len &&
        memcmp(cur, role->data, cur_len) == 0) {
        /* installed by a run that stopped before its publication: the record may be behind */
        a->installed = 1;
        return POSGATE_OK;
    }
    if (a->m->base_version != a->state_version) {
        return refuse("the handover was built on version %" PRId64 " of role %s and makes version "
                      "%" PRId64 "; this state holds version %" PRId64 " (expected a handover on "
                      "version %" PRId64 " making %" PRId64 "): a replayed or stale handover",
                      a->m->base_version, a->pl->role, a->m->version, a->state_version,
                      a->state_version, a->state_version + 1);
    }
    if (a->state_version > 0) {
        crypto_sha256(cur, cur_len, sha);
        crypto_hex(sha, sizeof sha, hex);
        if (strcmp(hex, a->m->base_sha256) != 0) {
            return refuse("the handover was built on a version %" PRId64 " of role %s (sha256 "
                          "%s) other than this state's (sha256 %s)",
                          a->m->base_version, a->pl->role, a->m->base_sha256, hex);
        }
    }
    return POSGATE_OK;
}

/* The delegation's path patterns, from the working copy of the role that delegates it. */
static enum posgate_err
check_paths(struct acc *a)
{
    const void *data;
    size_t len;
    struct buf b = BUF_INIT(TUF_META_MAX_LEN);
    struct tuf_meta *dm = NULL;
    const struct tuf_deleg_role *d = NULL;
    char msg[TUF_ERRMSG_MAX];
    enum posgate_err err = tuf_writer_export_role(a->r.w, "targets", 0, &b);

    if (err == POSGATE_ERR_STATE) { /* no change pending: the signed one is the working copy */
        err = tuf_writer_role_signed(a->r.w, "targets", &data, &len);
        if (err == POSGATE_OK) {
            buf_reset(&b);
            err = buf_append(&b, data, len);
        }
    }
    if (err == POSGATE_OK) {
        err = tuf_meta_parse(b.data, b.len, TUF_ROLE_TARGETS, &dm, msg, sizeof msg);
    }
    for (size_t i = 0; err == POSGATE_OK && dm->has_delegations && i < dm->delegations.nroles;
         i++) {
        if (strcmp(dm->delegations.roles[i].name, a->pl->role) == 0) {
            d = &dm->delegations.roles[i];
        }
    }
    if (err == POSGATE_OK && d == NULL) {
        die_msg("the top-level targets role does not delegate role %s", a->pl->role);
        err = POSGATE_ERR_CORRUPT;
    }
    for (size_t k = 0; err == POSGATE_OK && k < a->rm->ntargets; k++) {
        if (!tuf_deleg_role_matches(d, a->rm->targets[k].name)) {
            err = refuse("target %s is outside the paths delegated to role %s (%s%s)",
                         a->rm->targets[k].name, a->pl->role,
                         d->npaths > 0 && d->has_paths ? d->paths[0] : "",
                         d->npaths > 1 ? ", ..." : "");
        }
    }
    tuf_meta_free(dm);
    buf_free(&b);
    return err;
}

/* The role's own fields: version, expiry, signing time, nothing delegated further. */
static enum posgate_err
parse_role(struct acc *a)
{
    const struct buf *role = handover_role_bytes(a->h);
    const void *cur;
    size_t cur_len;
    struct tuf_meta *prev = NULL;
    char msg[TUF_ERRMSG_MAX], t1[40], t2[40];
    int64_t now = a->r.now;
    enum posgate_err err = tuf_meta_parse(role->data, role->len, TUF_ROLE_TARGETS, &a->rm, msg,
                                          sizeof msg);

    if (err != POSGATE_OK) {
        return refuse("the handover's role: %s", msg);
    }
    if (a->rm->version != a->m->version) {
        return refuse("the handover's role is version %" PRId64 ", its manifest says %" PRId64,
                      a->rm->version, a->m->version);
    }
    plat_time_format(a->rm->expires, t1, sizeof t1);
    if (a->rm->expires <= now) {
        return refuse("the handover's role expired at %s", t1);
    }
    if (a->rm->issued == 0 || a->rm->issued > now + CLOCK_SKEW) {
        plat_time_format(a->rm->issued, t2, sizeof t2);
        return refuse("the handover's role carries %s signing time (" TUF_ISSUED_FIELD "%s%s); "
                      "expected one no later than now",
                      a->rm->issued == 0 ? "no" : "a future", a->rm->issued == 0 ? "" : " ",
                      a->rm->issued == 0 ? "" : t2);
    }
    if (a->rm->has_delegations) {
        return refuse("the handover's role delegates further; a list's role does not");
    }
    if (a->state_version > 0 && !a->installed &&
        tuf_writer_role_signed(a->r.w, a->pl->role, &cur, &cur_len) == POSGATE_OK &&
        tuf_meta_parse(cur, cur_len, TUF_ROLE_TARGETS, &prev, msg, sizeof msg) == POSGATE_OK &&
        prev->issued > a->rm->issued) {
        plat_time_format(a->rm->issued, t1, sizeof t1);
        plat_time_format(prev->issued, t2, sizeof t2);
        err = refuse("the handover's role was signed at %s, before the version it replaces (%s)",
                     t1, t2);
    }
    tuf_meta_free(prev);
    return err;
}

/* The name a list target of this type must have. */
static enum posgate_err
expected_name(const struct list_target *lt, char *out, size_t cap)
{
    if (lt->type == LIST_TARGET_CONFIG) {
        return pathf(out, cap, "lists/%s/config.json", lt->list);
    }
    if (lt->type == LIST_TARGET_SNAPSHOT) {
        return pathf(out, cap, "lists/%s/snapshot-%" PRIu64 ".pgs", lt->list, lt->seq);
    }
    return pathf(out, cap, "lists/%s/delta-%" PRIu64 "-%" PRIu64 ".pgd", lt->list, lt->base_seq,
                 lt->seq);
}

/* The role's targets are the list's: one snapshot, its deltas, one configuration. */
static enum posgate_err
list_targets(struct acc *a)
{
    size_t nsnap = 0, ncfg = 0;
    char want[256], msg[HANDOVER_ERRMSG_MAX];

    if (a->rm->ntargets > KEEP_DELTAS + 2) {
        return refuse("the handover's role lists %zu targets; a list's role lists its snapshot, "
                      "its configuration and at most %d deltas",
                      a->rm->ntargets, KEEP_DELTAS);
    }
    a->tg = plat_calloc(a->rm->ntargets + 1, sizeof *a->tg);
    if (a->tg == NULL) {
        return POSGATE_ERR_NOMEM;
    }
    a->ntg = a->rm->ntargets;
    for (size_t k = 0; k < a->ntg; k++) {
        struct acc_target *t = &a->tg[k];

        t->t = &a->rm->targets[k];
        if (list_target_parse(t->t->custom_json, &t->lt, msg, sizeof msg) != POSGATE_OK) {
            return refuse("target %s of the handover's role: %s", t->t->name, msg);
        }
        if (strcmp(t->lt.list, a->m->list) != 0 || expected_name(&t->lt, want, sizeof want) ||
            strcmp(want, t->t->name) != 0) {
            return refuse("target %s of the handover's role: expected a target of list %s named "
                          "%s, found one of list %s",
                          t->t->name, a->m->list, want, t->lt.list);
        }
        if (!t->t->hashes.has_sha256 || t->t->hashes.count != 1) {
            return refuse("target %s of the handover's role: expected a sha256 hash only",
                          t->t->name);
        }
        crypto_hex(t->t->hashes.sha256, CRYPTO_SHA256_LEN, t->sha_hex);
        if (t->lt.type == LIST_TARGET_SNAPSHOT) {
            a->snap = k;
            nsnap++;
        } else if (t->lt.type == LIST_TARGET_CONFIG) {
            a->cfg = k;
            ncfg++;
        }
    }
    if (nsnap != 1 || ncfg != 1) {
        return refuse("the handover's role lists %zu snapshot(s) and %zu configuration(s) of list "
                      "%s; expected one of each",
                      nsnap, ncfg, a->m->list);
    }
    for (size_t k = 0; k < a->ntg; k++) {
        if (a->tg[k].lt.type == LIST_TARGET_DELTA && a->tg[k].lt.seq > a->tg[a->snap].lt.seq) {
            return refuse("the handover's role lists delta %s past its snapshot's seq %" PRIu64,
                          a->tg[k].t->name, a->tg[a->snap].lt.seq);
        }
    }
    if (a->pl->published && a->tg[a->snap].lt.seq < a->pl->seq) {
        return refuse("the handover's snapshot of list %s is seq %" PRIu64 ", older than the "
                      "published seq %" PRIu64,
                      a->m->list, a->tg[a->snap].lt.seq, a->pl->seq);
    }
    return POSGATE_OK;
}

/* Finds a target by name in a role's working copy. */
struct find_ctx {
    const char *name;
    int found;
    uint64_t length;
    char sha[2 * CRYPTO_SHA256_LEN + 1];
    char custom[TUF_CUSTOM_MAX + 1];
    char stored[PATH_CAP];
};

static enum posgate_err
find_cb(void *ctx, const struct tuf_writer_target *t)
{
    struct find_ctx *f = ctx;

    if (strcmp(t->name, f->name) != 0) {
        return POSGATE_OK;
    }
    f->found = 1;
    f->length = t->length;
    snprintf(f->sha, sizeof f->sha, "%s", t->sha256_hex);
    snprintf(f->custom, sizeof f->custom, "%s", t->custom_json != NULL ? t->custom_json : "");
    snprintf(f->stored, sizeof f->stored, "%s", t->stored_path);
    return POSGATE_OK;
}

static enum posgate_err
find_in(struct tuf_writer *w, const char *role, const char *name, struct find_ctx *f)
{
    memset(f, 0, sizeof *f);
    f->name = name;
    return tuf_writer_foreach_target(w, role, find_cb, f);
}

/* Whether any targets role of the state lists name with this content (then it is stored). */
static enum posgate_err
stored_anywhere(struct tuf_writer *w, const char *name, const char *sha, int *yes)
{
    struct find_ctx *f = plat_malloc(sizeof *f);
    enum posgate_err err = f != NULL ? POSGATE_OK : POSGATE_ERR_NOMEM;

    *yes = 0;
    for (size_t i = 0; err == POSGATE_OK && !*yes && i < tuf_writer_role_count(w); i++) {
        const char *role = tuf_writer_role_name(w, i);

        if (strcmp(role, "root") == 0 || strcmp(role, "timestamp") == 0 ||
            strcmp(role, "snapshot") == 0) {
            continue;
        }
        err = find_in(w, role, name, f);
        *yes = err == POSGATE_OK && f->found && strcmp(f->sha, sha) == 0 && plat_exists(f->stored);
    }
    plat_free(f);
    return err;
}

/* Each target's content: kept from the state's working copy, or carried (extracted, checked). */
static enum posgate_err
take_content(struct acc *a)
{
    struct find_ctx *f = plat_malloc(sizeof *f);
    char msg[HANDOVER_ERRMSG_MAX], hex[2 * CRYPTO_SHA256_LEN + 1];
    uint8_t sha[CRYPTO_SHA256_LEN];
    uint64_t len;
    enum posgate_err err = f != NULL ? POSGATE_OK : POSGATE_ERR_NOMEM;

    for (size_t i = 0; err == POSGATE_OK && i < handover_target_count(a->h); i++) {
        if (tuf_meta_find_target(a->rm, handover_target_name(a->h, i)) == NULL) {
            err = refuse("the handover carries %s, which its role does not list",
                         handover_target_name(a->h, i));
        }
    }
    for (size_t k = 0; err == POSGATE_OK && k < a->ntg; k++) {
        struct acc_target *t = &a->tg[k];

        err = find_in(a->r.w, a->pl->role, t->t->name, f);
        if (err != POSGATE_OK) {
            break;
        }
        /* listed as is: kept, its content the state's (a state whose `delegate` lost a moved
         * target's content, before this version, takes it from the handover again) */
        if (f->found && f->length == t->t->length && strcmp(f->sha, t->sha_hex) == 0 &&
            strcmp(f->custom, t->t->custom_json != NULL ? t->t->custom_json : "") == 0) {
            if (plat_exists(f->stored)) {
                t->kept = 1;
                snprintf(t->path, sizeof t->path, "%s", f->stored);
                continue;
            }
            if (!handover_carries(a->h, t->t->name)) {
                err = refuse("this state lacks the content of %s (expected in %s), and the "
                             "handover does not carry it",
                             t->t->name, f->stored);
                break;
            }
        }
        if (!handover_carries(a->h, t->t->name)) {
            err = refuse("the handover does not carry %s, and this state does not hold it",
                         t->t->name);
            break;
        }
        err = pathf(t->path, sizeof t->path, "%s/handover-%zu", a->r.workdir, k);
        if (err == POSGATE_OK) {
            err = handover_extract(a->h, t->t->name, t->path, &len, sha, msg, sizeof msg);
            if (err != POSGATE_OK) {
                die_msg("%s", msg);
            }
        }
        if (err != POSGATE_OK) {
            break;
        }
        crypto_hex(sha, sizeof sha, hex);
        if (len != t->t->length || strcmp(hex, t->sha_hex) != 0) {
            err = refuse("target %s: the role lists %" PRIu64 " bytes of sha256 %s, the "
                         "handover carries %" PRIu64 " bytes of sha256 %s",
                         t->t->name, t->t->length, t->sha_hex, len, hex);
            break;
        }
        err = stored_anywhere(a->r.w, t->t->name, t->sha_hex, &t->fresh);
        t->fresh = !t->fresh;
    }
    plat_free(f);
    return err;
}

/* The snapshot read back: the list, seq and count its custom says, its trailer's state digest
 * the one it names. */
static enum posgate_err
check_snapshot(struct acc *a)
{
    const struct acc_target *t = &a->tg[a->snap];
    FILE *f = fopen(t->path, "rb");
    struct feed_source src;
    struct feed_reader *rd = NULL;
    const struct feed_header *h;
    enum feed_item item;
    struct feed_entry e;
    char hex[STATE_DIGEST_HEX_LEN + 1];
    enum posgate_err err;

    if (f == NULL) {
        die_msg("cannot open %s: %s", t->path, strerror(errno));
        return POSGATE_ERR_IO;
    }
    feed_source_file(&src, f);
    err = feed_reader_new(&src, FEED_READ_VERIFY_DIGEST, &rd);
    if (err == POSGATE_OK) {
        err = feed_reader_header(rd, &h);
    }
    if (err == POSGATE_OK && (h->body != FEED_BODY_SNAPSHOT || strcmp(h->list_id, a->m->list) != 0 ||
                              h->seq != t->lt.seq || h->count != t->lt.entries)) {
        err = refuse("%s holds list %s seq %" PRIu64 " of %" PRIu64 " entries; its metadata says "
                     "list %s seq %" PRIu64 " of %" PRIu64,
                     t->t->name, h->list_id, h->seq, h->count, a->m->list, t->lt.seq,
                     t->lt.entries);
    }
    while (err == POSGATE_OK && (err = feed_reader_next(rd, &item, &e)) == POSGATE_OK &&
           item != FEED_ITEM_END) {
    }
    if (err == POSGATE_OK) {
        a->state = *feed_reader_trailer_state(rd);
        state_digest_hex(&a->state, hex);
        if (strcmp(hex, t->lt.digest) != 0) {
            err = refuse("%s: state digest %s, its metadata says %s", t->t->name, hex,
                         t->lt.digest);
        }
    } else if (err != POSGATE_ERR_REJECTED) {
        err = refuse("%s: %s", t->t->name, rd != NULL ? feed_reader_errmsg(rd) : "unreadable");
    }
    feed_reader_free(rd);
    fclose(f);
    return err;
}

/* The configuration the authority signed holds for the operator's feed.json (list_config.h), and
 * so do the other delegated lists' (feed.json is published with the handover); none of them
 * waits for its authority's first signature (the publication could not sign it). */
static enum posgate_err
check_configs(struct acc *a)
{
    struct buf c = BUF_INIT(LIST_CONFIG_MAX_BYTES);
    char msg[LIST_CONFIG_ERRMSG], p[PATH_CAP];
    enum posgate_err err = plat_read_file(a->tg[a->cfg].path, &c);

    if (err != POSGATE_OK) {
        err = refuse("%s: %s", a->tg[a->cfg].t->name, posgate_strerror(err));
    }
    if (err == POSGATE_OK && list_config_check(a->r.cfg_raw.data, a->r.cfg_raw.len, a->m->list,
                                               c.data, c.len, msg, sizeof msg) != POSGATE_OK) {
        err = refuse("%s; the operator's feed.json must say what the authority signed (edit it, "
                     "or ask the authority)",
                     msg);
    }
    for (size_t i = 0; err == POSGATE_OK && i < a->r.s.nlists; i++) {
        const struct pub_list *o = &a->r.s.lists[i];

        if (o == a->pl || strcmp(o->role, "targets") == 0) {
            continue;
        }
        if (feed_config_list_find(a->r.cfg, o->id) < 0) {
            err = refuse("list %s (role %s) is missing from feed.json: a delegated list leaves the "
                         "feed only by %s update, once the root records its retirement",
                         o->id, o->role, prog);
            break;
        }
        if (o->resign) {
            err = refuse("list %s (role %s) waits for its authority's first signature; the feed "
                         "cannot be published before it (accept its handover first)",
                         o->id, o->role);
            break;
        }
        buf_reset(&c);
        err = pathf(p, sizeof p, "%s/lists/%s/config.json", a->r.s.dir, o->id);
        if (err == POSGATE_OK && plat_read_file(p, &c) == POSGATE_OK &&
            list_config_check(a->r.cfg_raw.data, a->r.cfg_raw.len, o->id, c.data, c.len, msg,
                              sizeof msg) != POSGATE_OK) {
            err = refuse("%s", msg);
        }
    }
    buf_free(&c);
    return err;
}

/* The "signed" body of the role's working copy in the state. */
static enum posgate_err
work_body(struct acc *a, cJSON **out)
{
    struct buf b = BUF_INIT(TUF_META_MAX_LEN);
    const void *data;
    size_t len;
    cJSON *env = NULL;
    char msg[200];
    enum posgate_err err = tuf_writer_export_role(a->r.w, a->pl->role, 0, &b);

    if (err == POSGATE_ERR_STATE) {
        err = tuf_writer_role_signed(a->r.w, a->pl->role, &data, &len);
        if (err == POSGATE_OK) {
            buf_reset(&b);
            err = buf_append(&b, data, len);
        }
    }
    if (err == POSGATE_OK) {
        err = json_parse_bounded(b.data, b.len, TUF_META_MAX_LEN, &env, msg, sizeof msg);
    }
    if (err == POSGATE_OK) {
        *out = cJSON_DetachItemFromObjectCaseSensitive(env, "signed");
        err = *out != NULL ? POSGATE_OK : POSGATE_ERR_CORRUPT;
    }
    cJSON_Delete(env);
    buf_free(&b);
    return err;
}

/* Beside its targets, version, expiry and signing time, the role must be the state's own (the
 * writer compares the rest again when it imports it). */
static enum posgate_err
check_body(struct acc *a)
{
    static const char *const own[] = {"targets", "version", "expires", TUF_ISSUED_FIELD};
    const struct buf *role = handover_role_bytes(a->h);
    cJSON *mine = NULL, *env = NULL, *theirs;
    char msg[200];
    enum posgate_err err = work_body(a, &mine);

    if (err == POSGATE_OK) {
        err = json_parse_bounded(role->data, role->len, TUF_META_MAX_LEN, &env, msg, sizeof msg);
    }
    if (err != POSGATE_OK) {
        goto out;
    }
    theirs = cJSON_GetObjectItemCaseSensitive(env, "signed");
    for (size_t i = 0; i < sizeof own / sizeof own[0]; i++) {
        cJSON_DeleteItemFromObjectCaseSensitive(mine, own[i]);
        cJSON_DeleteItemFromObjectCaseSensitive(theirs, own[i]);
    }
    if (!cJSON_Compare(mine, theirs, 1)) {
        char *m = cJSON_PrintUnformatted(mine), *t = cJSON_PrintUnformatted(theirs);

        err = refuse("the handover's role differs from role %s in this state beside its targets, "
                     "version, expiry and signing time: %.300s, the state's %.300s",
                     a->pl->role, t != NULL ? t : "?", m != NULL ? m : "?");
        cJSON_free(m);
        cJSON_free(t);
    }
out:
    cJSON_Delete(mine);
    cJSON_Delete(env);
    return err;
}

/* Collects the names a role's working copy lists. */
struct names_ctx {
    char (*names)[256];
    size_t n, cap;
};

static enum posgate_err
names_cb(void *ctx, const struct tuf_writer_target *t)
{
    struct names_ctx *c = ctx;

    if (c->n == c->cap || strlen(t->name) >= sizeof c->names[0]) {
        return POSGATE_ERR_TOOBIG;
    }
    snprintf(c->names[c->n++], sizeof c->names[0], "%s", t->name);
    return POSGATE_OK;
}

/* Content stored for this handover alone, removed after a failure: the state as it was. */
static void
unstore_fresh(struct acc *a)
{
    for (size_t k = 0; k < a->ntg; k++) {
        if (a->tg[k].fresh && a->tg[k].stored[0] != '\0') {
            (void)unlink(a->tg[k].stored);
        }
    }
}

/* Step install: the working copy of the role made the handover's, then its signed version
 * imported over it. */
static enum posgate_err
install(struct acc *a)
{
    struct tuf_writer *w = a->r.w;
    const struct buf *role = handover_role_bytes(a->h);
    struct names_ctx old;
    struct find_ctx *f = plat_malloc(sizeof *f);
    enum posgate_err err = f != NULL ? POSGATE_OK : POSGATE_ERR_NOMEM;

    memset(&old, 0, sizeof old);
    old.cap = 4 * KEEP_DELTAS + 16;
    old.names = plat_calloc(old.cap, sizeof *old.names);
    if (err == POSGATE_OK && old.names == NULL) {
        err = POSGATE_ERR_NOMEM;
    }
    if (err == POSGATE_OK) {
        err = tuf_writer_foreach_target(w, a->pl->role, names_cb, &old);
    }
    for (size_t k = 0; err == POSGATE_OK && k < a->ntg; k++) {
        struct acc_target *t = &a->tg[k];

        if (t->kept) {
            continue;
        }
        err = tuf_writer_add_target(w, a->pl->role, t->t->name, t->path, t->t->custom_json);
        if (err == POSGATE_OK) {
            err = find_in(w, a->pl->role, t->t->name, f);
            snprintf(t->stored, sizeof t->stored, "%s", f->stored);
        }
    }
    for (size_t i = 0; err == POSGATE_OK && i < old.n; i++) {
        if (tuf_meta_find_target(a->rm, old.names[i]) == NULL) {
            err = tuf_writer_remove_target(w, a->pl->role, old.names[i]);
        }
    }
    if (err == POSGATE_OK) {
        err = tuf_writer_import_delegated(w, a->pl->role, role->data, role->len);
    }
    if (err != POSGATE_OK) {
        unstore_fresh(a);
        err = refuse("installing the handover's role: %s", tuf_writer_errmsg(w));
    }
    plat_free(old.names);
    plat_free(f);
    return err;
}

/* The state's record of the list as the installed role lists it. */
static void
set_record(struct acc *a)
{
    const struct acc_target *s = &a->tg[a->snap];
    struct pub_list *pl = a->pl;
    uint64_t seqs[KEEP_DELTAS + 1];

    pl->published = 1;
    pl->seq = s->lt.seq;
    pl->entries = s->lt.entries;
    pl->issued_at = s->lt.issued_at;
    pl->state = a->state;
    pl->ident_format = s->lt.ident_format;
    snprintf(pl->snapshot_target, sizeof pl->snapshot_target, "%s", s->t->name);
    pl->ndeltas = 0;
    for (size_t k = 0; k < a->ntg; k++) {
        size_t j;

        if (a->tg[k].lt.type != LIST_TARGET_DELTA || pl->ndeltas == KEEP_DELTAS + 1) {
            continue;
        }
        for (j = pl->ndeltas; j > 0 && seqs[j - 1] > a->tg[k].lt.seq; j--) {
            seqs[j] = seqs[j - 1];
            memcpy(pl->deltas[j], pl->deltas[j - 1], sizeof pl->deltas[0]);
        }
        seqs[j] = a->tg[k].lt.seq;
        snprintf(pl->deltas[j], sizeof pl->deltas[0], "%s", a->tg[k].t->name);
        pl->ndeltas++;
    }
    pl->pending = 0;
    pl->resign = 0;
}

/* Whether the state's record of the list is already this handover's. */
static int
record_current(const struct acc *a)
{
    const struct acc_target *s = &a->tg[a->snap];

    return !a->pl->pending && a->pl->published && a->pl->seq == s->lt.seq &&
           strcmp(a->pl->snapshot_target, s->t->name) == 0;
}

/* Step commit: the list marked pending while its snapshot and configuration are replaced (so
 * that a run stopped in between is seen), its record, then the repository. */
static enum posgate_err
commit(struct acc *a, const char *out, int64_t expires)
{
    char dir[PATH_CAP], p[PATH_CAP];
    int cfg_changed = 0;
    enum posgate_err err;

    a->pl->pending = 1;
    err = pub_state_save(&a->r.s);
    if (err == POSGATE_OK) {
        err = pathf(dir, sizeof dir, "%s/lists/%s", a->r.s.dir, a->m->list);
    }
    if (err == POSGATE_OK) {
        err = plat_mkdir_p(dir, 0700);
    }
    if (err == POSGATE_OK) {
        err = pathf(p, sizeof p, "%s/snapshot.pgs", dir);
    }
    if (err == POSGATE_OK) {
        err = copy_file(a->tg[a->snap].path, p);
    }
    if (err == POSGATE_OK) {
        err = pathf(p, sizeof p, "%s/config.json", dir);
    }
    if (err == POSGATE_OK) {
        err = copy_file(a->tg[a->cfg].path, p);
    }
    if (err == POSGATE_OK) {
        set_record(a);
        err = publish_config(&a->r.s, a->r.w, &a->r.cfg_raw, &cfg_changed);
    }
    if (err == POSGATE_OK) {
        err = pub_state_save(&a->r.s);
    }
    if (err == POSGATE_OK) {
        err = set_lifetimes(a->r.w, expires);
    }
    if (err == POSGATE_OK) {
        err = publish_repo(a->r.w, out, &a->r.kr);
    }
    if (err == POSGATE_OK && cfg_changed) {
        fprintf(stderr, "%s: config/feed.json published anew\n", prog);
    }
    return err;
}

/* The checks, in their order; each refusal leaves everything as it was. */
static enum posgate_err
check_all(struct acc *a, const char *path)
{
    enum posgate_err err = open_handover(a, path);

    if (err == POSGATE_OK) {
        err = check_keys(a);
    }
    if (err == POSGATE_OK) {
        err = check_versions(a);
    }
    if (err == POSGATE_OK) {
        err = parse_role(a);
    }
    if (err == POSGATE_OK) {
        err = check_paths(a);
    }
    if (err == POSGATE_OK) {
        err = list_targets(a);
    }
    if (err == POSGATE_OK && a->installed && record_current(a)) {
        err = refuse("this handover (role %s version %" PRId64 ") was accepted already: a replay "
                     "(if %s does not show it yet, run %s refresh)",
                     a->pl->role, a->m->version, "the feed", prog);
    }
    if (err == POSGATE_OK) {
        err = take_content(a);
    }
    if (err == POSGATE_OK) {
        err = check_snapshot(a);
    }
    if (err == POSGATE_OK) {
        err = check_configs(a);
    }
    if (err == POSGATE_OK) {
        err = check_body(a);
    }
    return err;
}

int
publish_cmd_accept(int argc, char **argv)
{
    struct opt o[] = {{"state", 1, 0, {0}, 0},
                      {"handover", 1, 0, {0}, 0},
                      {"out", 1, 0, {0}, 0},
                      {"expires", 1, 0, {0}, 0}};
    struct acc a;
    int64_t expires;
    int rc = opt_parse(argc, argv, o, sizeof o / sizeof o[0], OPT_SAY_TWICE);
    enum posgate_err err;

    if (rc != 0) {
        usage_accept(rc > 0 ? stdout : stderr);
        return rc > 0 ? EXIT_OK : EXIT_USAGE;
    }
    if (opt_require(&o[0], "accept") || opt_require(&o[1], "accept") ||
        opt_require(&o[2], "accept") || parse_expires(&o[3], &expires) != POSGATE_OK) {
        return EXIT_USAGE;
    }
    memset(&a, 0, sizeof a);
    run_init(&a.r);
    err = run_load_state(&a.r, opt_value(&o[0]), NULL);
    if (err == POSGATE_OK) {
        err = pathf(a.r.workdir, sizeof a.r.workdir, "%s/work", a.r.s.dir);
    }
    if (err == POSGATE_OK) {
        remove_dir(a.r.workdir);
        err = plat_mkdir_p(a.r.workdir, 0700);
    }
    if (err == POSGATE_OK) {
        err = check_all(&a, opt_value(&o[1]));
    }
    if (err == POSGATE_OK && !a.installed) {
        err = install(&a);
    }
    if (err == POSGATE_OK) {
        err = commit(&a, opt_value(&o[2]), expires);
    }
    if (err == POSGATE_OK) {
        fprintf(stderr,
                "%s: accepted the handover of list %s: role %s version %" PRId64 " (on %" PRId64
                "), seq %" PRIu64 ", %" PRIu64 " entries, signed by its authority; feed in %s\n",
                prog, a.m->list, a.pl->role, a.m->version, a.m->base_version, a.pl->seq,
                a.pl->entries, opt_value(&o[2]));
    }
    acc_cleanup(&a);
    return exit_for(err);
}
