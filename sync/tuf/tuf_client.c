/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The TUF client workflow (specification 1.0, section 5): the root chain, timestamp, snapshot,
 * targets and delegated targets with every version, rollback, expiry, length, hash and threshold
 * check, and verified target downloads. Trusted state lives on disk in the metadata directory;
 * each refresh starts again from what is on disk, so a refresh that failed half-way leaves
 * exactly the files the spec says to keep (every accepted step persisted, nothing rejected
 * written) and a later refresh can retry. Checks follow the reference implementation where the
 * spec leaves room (python-tuf's trusted metadata set), because the conformance suite does.
 * The delegation walks are in tuf_client_deleg.c; what the two files share is in
 * tuf_client_internal.h.
 */
#define _POSIX_C_SOURCE 200809L
#include "tuf_client_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "plat_clock.h"
#include "plat_file.h"
#include "plat_log.h"
#include "plat_mem.h"
#include "plat_text.h"
#include "tuf_meta.h"

#define PATH_CAP    8192
#define ESCAPED_MAX (3 * TUF_NAME_MAX + 8)

enum posgate_err
tc_seterr(struct tuf_client *c, enum posgate_err err, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(c->errmsg, sizeof(c->errmsg), fmt, ap);
    va_end(ap);
    return err;
}

static int64_t
now_s(const struct tuf_client *c)
{
    return c->opt.now != 0 ? c->opt.now : plat_wall_s();
}

/* The trusted file of a role: "<dir>/<role>.json", the role escaped as one URL path segment. */
static enum posgate_err
local_path(const struct tuf_client *c, const char *role, char *out, size_t cap)
{
    char esc[ESCAPED_MAX];
    int n;

    if (plat_url_escape(role, strlen(role), 0, esc, sizeof(esc), NULL) != POSGATE_OK) {
        return POSGATE_ERR_TOOBIG;
    }
    n = snprintf(out, cap, "%s/%s.json", c->dir, esc);
    return (n < 0 || (size_t)n >= cap) ? POSGATE_ERR_TOOBIG : POSGATE_OK;
}

static enum posgate_err
persist(struct tuf_client *c, const char *role, const struct buf *raw)
{
    char path[PATH_CAP];
    enum posgate_err err = local_path(c, role, path, sizeof(path));

    if (err == POSGATE_OK) {
        err = plat_write_atomic(path, raw->data, raw->len, 0644);
    }
    if (err != POSGATE_OK) {
        return tc_seterr(c, err, "cannot store trusted %s metadata in %s: %s", role, c->dir,
                         posgate_strerror(err));
    }
    return POSGATE_OK;
}

static void
unpersist(struct tuf_client *c, const char *role)
{
    char path[PATH_CAP];

    if (local_path(c, role, path, sizeof(path)) == POSGATE_OK) {
        if (plat_unlink(path) != POSGATE_OK) {
            /* Best effort: a stale file is verified again (and ignored) on every load. */
        }
    }
}

/* Reads and parses a trusted file; no signature check. NOTFOUND when absent. */
static enum posgate_err
load_local(struct tuf_client *c, const char *role, enum tuf_role_type type, uint64_t max,
           struct tuf_meta **out, char *msg, size_t cap)
{
    char path[PATH_CAP];
    struct buf raw = BUF_INIT(max);
    enum posgate_err err;

    *out = NULL;
    msg[0] = 0;
    err = local_path(c, role, path, sizeof(path));
    if (err == POSGATE_OK) {
        err = plat_read_file(path, &raw);
    }
    if (err == POSGATE_OK) {
        err = tuf_meta_parse(raw.data, raw.len, type, out, msg, cap);
    }
    buf_free(&raw);
    return err;
}

static const char *
plural(unsigned n)
{
    return n == 1 ? "" : "s";
}

/* Verifies m against a role's keys; BADSIG with "<what> has 1 valid signature of threshold 2
 * <by>" otherwise. */
enum posgate_err
tc_verify_role(struct tuf_client *c, const struct tuf_meta *m, const struct tuf_key *keys,
               size_t nkeys, const struct tuf_role_keys *role, const char *what, const char *by)
{
    unsigned valid = 0;
    enum posgate_err err = tuf_meta_verify(m, keys, nkeys, role, &valid);

    if (err != POSGATE_OK) {
        return tc_seterr(c, POSGATE_ERR_BADSIG, "%s has %u valid signature%s of threshold %u %s",
                         what, valid, plural(valid), role->threshold, by);
    }
    return POSGATE_OK;
}

/* Expiry check: EXPIRED unless accept_expired. */
static enum posgate_err
check_expiry(struct tuf_client *c, const struct tuf_meta *m, const char *what)
{
    int64_t now = now_s(c);
    char e[32], n[32];

    if (now < m->expires) {
        return POSGATE_OK;
    }
    if (c->opt.accept_expired) {
        c->expired = 1;
        return POSGATE_OK;
    }
    plat_time_format(m->expires, e, sizeof(e));
    plat_time_format(now, n, sizeof(n));
    return tc_seterr(c, POSGATE_ERR_EXPIRED, "%s version %lld expired at %s (now %s)", what,
                     (long long)m->version, e, n);
}

/* What a metadata body must be, checked by a carrier with mirrors as soon as one mirror's body
 * is complete (carrier_fetch_buf_checked), so that a mirror serving wrong bytes is skipped for
 * the next one instead of failing the refresh. The caller verifies again in full afterwards. */
struct meta_expect {
    struct tuf_client *c;
    const char *name;
    enum tuf_role_type type;
    const struct tuf_meta_file *file; /* length and hashes; NULL: none known */
    const struct tuf_key *keys;       /* signing keys; NULL: signatures not checked here */
    size_t nkeys;
    const struct tuf_role_keys *rk;
    enum posgate_err err; /* the last body's failure, with its message */
    char msg[TUF_ERRMSG_MAX];
};

static enum posgate_err check_meta_file(struct tuf_client *c, const struct tuf_meta_file *f,
                                        const struct buf *raw, const char *what);
static enum posgate_err parse_fetched(struct tuf_client *c, const struct buf *raw,
                                      enum tuf_role_type type, const char *name,
                                      struct tuf_meta **out);

static enum posgate_err
meta_check(void *ctx, const struct buf *raw)
{
    struct meta_expect *e = ctx;
    struct tuf_meta *m = NULL;
    enum posgate_err err = POSGATE_OK;

    if (e->file != NULL) {
        err = check_meta_file(e->c, e->file, raw, e->name);
    }
    if (err == POSGATE_OK) {
        err = parse_fetched(e->c, raw, e->type, e->name, &m);
    }
    if (err == POSGATE_OK && e->rk != NULL) {
        unsigned valid = 0;

        if (tuf_meta_verify(m, e->keys, e->nkeys, e->rk, &valid) != POSGATE_OK) {
            err = tc_seterr(e->c, POSGATE_ERR_BADSIG, "%s has %u valid signature%s of threshold %u",
                            e->name, valid, plural(valid), e->rk->threshold);
        }
    }
    tuf_meta_free(m);
    e->err = err;
    snprintf(e->msg, sizeof(e->msg), "%.500s", err == POSGATE_OK ? "" : e->c->errmsg);
    return err;
}

/* Fetches name from the metadata carrier into raw (at most max bytes); e (may be NULL) says
 * what a mirror's body must be to be taken. */
static enum posgate_err
fetch_meta(struct tuf_client *c, const char *name, uint64_t max, struct buf *raw,
           struct meta_expect *e)
{
    enum posgate_err err;

    if (c->opt.metadata == NULL) {
        return tc_seterr(c, POSGATE_ERR_STATE, "no metadata carrier to fetch %s from", name);
    }
    /* The parser takes at most TUF_META_MAX_LEN bytes: a signed length above it (a timestamp
     * declaring a 1 TiB snapshot) is refused before a byte is buffered, not spooled first. */
    if (max > TUF_META_MAX_LEN) {
        return tc_seterr(c, POSGATE_ERR_TOOBIG,
                         "%s: its signed length of %llu bytes exceeds the metadata parser's limit "
                         "of %u bytes; not fetched",
                         name, (unsigned long long)max, (unsigned)TUF_META_MAX_LEN);
    }
    buf_reset(raw);
    if (e != NULL) {
        e->c = c;
        e->name = name;
        e->err = POSGATE_OK;
        e->msg[0] = 0;
    }
    err = carrier_fetch_buf_checked(c->opt.metadata, name, max, raw, e != NULL ? meta_check : NULL,
                                    e);
    if (e != NULL && e->err != POSGATE_OK && err == e->err) {
        /* every mirror that delivered a body delivered one that fails verification */
        return tc_seterr(c, err, "%s (%s)", e->msg, carrier_errmsg(c->opt.metadata));
    }
    if (err == POSGATE_ERR_NOTFOUND) {
        return tc_seterr(c, err, "%s not found: %s", name, carrier_errmsg(c->opt.metadata));
    }
    if (err == POSGATE_ERR_TOOBIG) {
        return tc_seterr(c, err, "%s is longer than the %llu bytes allowed: %s", name,
                         (unsigned long long)max, carrier_errmsg(c->opt.metadata));
    }
    if (err != POSGATE_OK) {
        return tc_seterr(c, err, "fetching %s failed: %s", name, carrier_errmsg(c->opt.metadata));
    }
    return POSGATE_OK;
}

/* Length and hashes of fetched bytes against a meta entry (when it gives them). */
static enum posgate_err
check_meta_file(struct tuf_client *c, const struct tuf_meta_file *f, const struct buf *raw,
                const char *what)
{
    uint8_t h256[CRYPTO_SHA256_LEN], h512[CRYPTO_SHA512_LEN];
    char msg[512];

    if (f->has_length && raw->len != f->length) {
        return tc_seterr(c, POSGATE_ERR_BADHASH, "%s is %zu bytes, expected %llu", what, raw->len,
                         (unsigned long long)f->length);
    }
    if (f->hashes.count == 0) {
        return POSGATE_OK;
    }
    crypto_sha256(raw->data, raw->len, h256);
    crypto_sha512(raw->data, raw->len, h512);
    if (tuf_hashes_check(&f->hashes, h256, h512, what, msg, sizeof(msg)) != POSGATE_OK) {
        return tc_seterr(c, POSGATE_ERR_BADHASH, "%s", msg);
    }
    return POSGATE_OK;
}

static enum posgate_err
parse_fetched(struct tuf_client *c, const struct buf *raw, enum tuf_role_type type,
              const char *name, struct tuf_meta **out)
{
    char msg[TUF_ERRMSG_MAX];
    enum posgate_err err = tuf_meta_parse(raw->data, raw->len, type, out, msg, sizeof(msg));

    if (err != POSGATE_OK) {
        return tc_seterr(c, err, "%s: %s", name, msg);
    }
    return POSGATE_OK;
}

static void
drop_deleg(struct tuf_client *c)
{
    for (size_t i = 0; i < c->ndeleg; i++) {
        plat_free(c->deleg[i].name);
        tuf_meta_free(c->deleg[i].meta);
    }
    plat_free(c->deleg);
    c->deleg = NULL;
    c->ndeleg = c->capdeleg = 0;
}

static void
drop_trusted(struct tuf_client *c)
{
    tuf_meta_free(c->root);
    tuf_meta_free(c->timestamp);
    tuf_meta_free(c->snapshot);
    tuf_meta_free(c->targets);
    c->root = c->timestamp = c->snapshot = c->targets = NULL;
    drop_deleg(c);
}

static uint64_t
cap_or(uint64_t v, uint64_t def)
{
    return v != 0 ? v : def;
}

/* Loads root.json and checks that it is signed by a threshold of its own root keys. */
static enum posgate_err
load_trusted_root(struct tuf_client *c)
{
    char msg[TUF_ERRMSG_MAX];
    struct tuf_meta *m = NULL;
    enum posgate_err err;

    err = load_local(c, "root", TUF_ROLE_ROOT,
                     cap_or(c->opt.root_max_len, TUF_DEFAULT_ROOT_MAX_LEN), &m, msg, sizeof(msg));
    if (err == POSGATE_ERR_NOTFOUND) {
        return tc_seterr(c, err, "no trusted root.json in %s (bootstrap first)", c->dir);
    }
    if (err != POSGATE_OK) {
        return tc_seterr(c, err, "trusted root.json in %s is unusable: %s", c->dir,
                         msg[0] ? msg : posgate_strerror(err));
    }
    err = tc_verify_role(c, m, m->keys, m->nkeys, &m->roles[TUF_ROLE_ROOT], "trusted root",
                         "by its own root keys");
    if (err != POSGATE_OK) {
        tuf_meta_free(m);
        return err;
    }
    tuf_meta_free(c->root);
    c->root = m;
    return POSGATE_OK;
}

/* ---- 5.3: the root chain ---- */

static enum posgate_err
update_root(struct tuf_client *c)
{
    unsigned max_rot =
        c->opt.max_root_rotations ? c->opt.max_root_rotations : TUF_DEFAULT_MAX_ROOT_ROTATIONS;
    uint64_t max_len = cap_or(c->opt.root_max_len, TUF_DEFAULT_ROOT_MAX_LEN);
    struct buf raw = BUF_INIT(max_len);
    enum posgate_err err = POSGATE_OK;

    for (unsigned i = 0; i < max_rot; i++) {
        int64_t next = c->root->version + 1;
        char name[64], what[64], by[64];
        struct tuf_meta *m = NULL;
        struct meta_expect ex;

        snprintf(name, sizeof(name), "%lld.root.json", (long long)next);
        memset(&ex, 0, sizeof(ex));
        ex.type = TUF_ROLE_ROOT;
        err = fetch_meta(c, name, max_len, &raw, &ex);
        if (err == POSGATE_ERR_NOTFOUND) {
            err = POSGATE_OK; /* no newer root: the chain ends here */
            break;
        }
        if (err != POSGATE_OK) {
            goto out;
        }
        err = parse_fetched(c, &raw, TUF_ROLE_ROOT, name, &m);
        if (err != POSGATE_OK) {
            goto out;
        }
        snprintf(what, sizeof(what), "root %lld", (long long)next);
        snprintf(by, sizeof(by), "by the old root's (version %lld) keys",
                 (long long)c->root->version);
        err = tc_verify_role(c, m, c->root->keys, c->root->nkeys, &c->root->roles[TUF_ROLE_ROOT],
                             what, by);
        if (err == POSGATE_OK) {
            err = tc_verify_role(c, m, m->keys, m->nkeys, &m->roles[TUF_ROLE_ROOT], what,
                                 "by its own root keys");
        }
        if (err == POSGATE_OK && m->version != next) {
            err = tc_seterr(c, m->version < next ? POSGATE_ERR_ROLLBACK : POSGATE_ERR_REJECTED,
                            "%s holds root version %lld, expected %lld", name,
                            (long long)m->version, (long long)next);
        }
        if (err == POSGATE_OK) {
            err = persist(c, "root", &raw);
        }
        if (err != POSGATE_OK) {
            tuf_meta_free(m);
            goto out;
        }
        tuf_meta_free(c->root);
        c->root = m;
    }
    /* 5.3.10: only the final root must be unexpired (it was persisted first, as the spec says). */
    err = check_expiry(c, c->root, "root");
out:
    buf_free(&raw);
    return err;
}

/* Loads a trusted local file of a top-level role verified with the current root; NULL when
 * absent or no longer valid (the spec: ignore it). */
static struct tuf_meta *
load_trusted_top(struct tuf_client *c, enum tuf_role_type type, uint64_t max)
{
    char msg[TUF_ERRMSG_MAX];
    struct tuf_meta *m = NULL;
    const char *role = tuf_role_type_name(type);

    if (load_local(c, role, type, max, &m, msg, sizeof(msg)) != POSGATE_OK) {
        return NULL;
    }
    if (tuf_meta_verify(m, c->root->keys, c->root->nkeys, &c->root->roles[type], NULL) !=
        POSGATE_OK) {
        tuf_meta_free(m);
        return NULL;
    }
    return m;
}

/* 5.3.11: when the timestamp or snapshot keys rotated, the old files no longer verify; delete
 * both so that a fast-forward attack (versions pushed up by a thief of the old keys) can be
 * recovered from. Otherwise keep them as the rollback reference. */
static void
load_references(struct tuf_client *c)
{
    char path[PATH_CAP];
    int ts_file = 0, sn_file = 0;

    if (local_path(c, "timestamp", path, sizeof(path)) == POSGATE_OK) {
        ts_file = plat_exists(path);
    }
    if (local_path(c, "snapshot", path, sizeof(path)) == POSGATE_OK) {
        sn_file = plat_exists(path);
    }
    c->timestamp = load_trusted_top(
        c, TUF_ROLE_TIMESTAMP, cap_or(c->opt.timestamp_max_len, TUF_DEFAULT_TIMESTAMP_MAX_LEN));
    c->snapshot = load_trusted_top(c, TUF_ROLE_SNAPSHOT, TUF_META_MAX_LEN);
    if ((ts_file && c->timestamp == NULL) || (sn_file && c->snapshot == NULL)) {
        tuf_meta_free(c->timestamp);
        tuf_meta_free(c->snapshot);
        c->timestamp = c->snapshot = NULL;
        unpersist(c, "timestamp");
        unpersist(c, "snapshot");
    }
}

/* ---- 5.4: timestamp ---- */

static enum posgate_err
update_timestamp(struct tuf_client *c)
{
    uint64_t max_len = cap_or(c->opt.timestamp_max_len, TUF_DEFAULT_TIMESTAMP_MAX_LEN);
    struct buf raw = BUF_INIT(max_len);
    struct tuf_meta *m = NULL;
    struct meta_expect ex;
    enum posgate_err err;

    memset(&ex, 0, sizeof(ex));
    ex.type = TUF_ROLE_TIMESTAMP;
    ex.keys = c->root->keys;
    ex.nkeys = c->root->nkeys;
    ex.rk = &c->root->roles[TUF_ROLE_TIMESTAMP];
    err = fetch_meta(c, "timestamp.json", max_len, &raw, &ex);
    if (err == POSGATE_OK) {
        err = parse_fetched(c, &raw, TUF_ROLE_TIMESTAMP, "timestamp.json", &m);
    }
    if (err == POSGATE_OK) {
        char by[64];

        snprintf(by, sizeof(by), "by the keys of root %lld", (long long)c->root->version);
        err = tc_verify_role(c, m, c->root->keys, c->root->nkeys,
                             &c->root->roles[TUF_ROLE_TIMESTAMP], "timestamp", by);
    }
    if (err != POSGATE_OK) {
        goto out;
    }
    if (c->timestamp != NULL) {
        const struct tuf_meta_file *old = tuf_meta_find_meta(c->timestamp, "snapshot.json");
        const struct tuf_meta_file *new = tuf_meta_find_meta(m, "snapshot.json");

        if (m->version < c->timestamp->version) {
            err = tc_seterr(c, POSGATE_ERR_ROLLBACK,
                            "timestamp version %lld is older than trusted version %lld",
                            (long long)m->version, (long long)c->timestamp->version);
            goto out;
        }
        if (m->version == c->timestamp->version) {
            /* Same version: keep the trusted one (the repository may not change a version's
             * content), but it must still be current. */
            err = check_expiry(c, c->timestamp, "timestamp");
            goto out;
        }
        if (new->version < old->version) {
            err = tc_seterr(c, POSGATE_ERR_ROLLBACK,
                            "timestamp %lld lists snapshot version %lld, older than version %lld "
                            "listed by trusted timestamp %lld",
                            (long long)m->version, (long long)new->version, (long long)old->version,
                            (long long)c->timestamp->version);
            goto out;
        }
    }
    err = check_expiry(c, m, "timestamp");
    if (err == POSGATE_OK) {
        err = persist(c, "timestamp", &raw);
    }
    if (err == POSGATE_OK) {
        tuf_meta_free(c->timestamp);
        c->timestamp = m;
        m = NULL;
    }
out:
    tuf_meta_free(m);
    buf_free(&raw);
    return err;
}

/* ---- 5.5: snapshot ---- */

/* The remote name of a role's metadata: "<V>.<role>.json" with consistent snapshots. */
static enum posgate_err
remote_name(struct tuf_client *c, const char *role, int64_t version, char *out, size_t cap)
{
    char esc[ESCAPED_MAX];
    int n;

    if (plat_url_escape(role, strlen(role), 0, esc, sizeof(esc), NULL) != POSGATE_OK) {
        return tc_seterr(c, POSGATE_ERR_TOOBIG, "role name %.64s... is too long", role);
    }
    if (c->root->consistent_snapshot) {
        n = snprintf(out, cap, "%lld.%s.json", (long long)version, esc);
    } else {
        n = snprintf(out, cap, "%s.json", esc);
    }
    if (n < 0 || (size_t)n >= cap) {
        return tc_seterr(c, POSGATE_ERR_TOOBIG, "role name %.64s... is too long", role);
    }
    return POSGATE_OK;
}

static enum posgate_err
update_snapshot(struct tuf_client *c)
{
    const struct tuf_meta_file *sm = tuf_meta_find_meta(c->timestamp, "snapshot.json");
    uint64_t max_len =
        sm->has_length ? sm->length : cap_or(c->opt.snapshot_max_len, TUF_DEFAULT_SNAPSHOT_MAX_LEN);
    struct buf raw = BUF_INIT(max_len);
    struct tuf_meta *m = NULL;
    struct meta_expect ex;
    char name[ESCAPED_MAX + 32], by[64];
    enum posgate_err err;

    /* The trusted snapshot is the final one when the timestamp still points at its version. */
    if (c->snapshot != NULL && c->snapshot->version == sm->version &&
        now_s(c) < c->snapshot->expires) {
        buf_free(&raw);
        return POSGATE_OK;
    }
    err = remote_name(c, "snapshot", sm->version, name, sizeof(name));
    if (err == POSGATE_OK) {
        memset(&ex, 0, sizeof(ex));
        ex.type = TUF_ROLE_SNAPSHOT;
        ex.file = sm;
        ex.keys = c->root->keys;
        ex.nkeys = c->root->nkeys;
        ex.rk = &c->root->roles[TUF_ROLE_SNAPSHOT];
        err = fetch_meta(c, name, max_len, &raw, &ex);
    }
    if (err == POSGATE_OK) {
        err = check_meta_file(c, sm, &raw, name);
    }
    if (err == POSGATE_OK) {
        err = parse_fetched(c, &raw, TUF_ROLE_SNAPSHOT, name, &m);
    }
    if (err == POSGATE_OK) {
        snprintf(by, sizeof(by), "by the keys of root %lld", (long long)c->root->version);
        err = tc_verify_role(c, m, c->root->keys, c->root->nkeys,
                             &c->root->roles[TUF_ROLE_SNAPSHOT], "snapshot", by);
    }
    if (err != POSGATE_OK) {
        goto out;
    }
    if (c->snapshot != NULL) {
        for (size_t i = 0; i < c->snapshot->nmeta; i++) {
            const struct tuf_meta_file *old = &c->snapshot->meta[i];
            const struct tuf_meta_file *nf = tuf_meta_find_meta(m, old->name);

            if (nf == NULL) {
                err = tc_seterr(c, POSGATE_ERR_ROLLBACK,
                                "snapshot %lld no longer lists %s (trusted snapshot %lld lists "
                                "version %lld)",
                                (long long)m->version, old->name, (long long)c->snapshot->version,
                                (long long)old->version);
                goto out;
            }
            if (nf->version < old->version) {
                err = tc_seterr(c, POSGATE_ERR_ROLLBACK,
                                "snapshot %lld lists %s version %lld, older than version %lld in "
                                "trusted snapshot %lld",
                                (long long)m->version, old->name, (long long)nf->version,
                                (long long)old->version, (long long)c->snapshot->version);
                goto out;
            }
        }
    }
    if (m->version != sm->version) {
        err = tc_seterr(
            c, m->version < sm->version ? POSGATE_ERR_ROLLBACK : POSGATE_ERR_REJECTED,
            "snapshot version %lld does not match version %lld listed in timestamp %lld",
            (long long)m->version, (long long)sm->version, (long long)c->timestamp->version);
        goto out;
    }
    err = check_expiry(c, m, "snapshot");
    if (err == POSGATE_OK) {
        err = persist(c, "snapshot", &raw);
    }
    if (err == POSGATE_OK) {
        tuf_meta_free(c->snapshot);
        c->snapshot = m;
        m = NULL;
    }
out:
    tuf_meta_free(m);
    buf_free(&raw);
    return err;
}

/* ---- 5.6 / 5.7: targets and delegated targets ---- */

/*
 * Loads a targets role (top-level or delegated) verified with the given keys: the trusted local
 * file when it is the version snapshot lists, still verifies and is current; otherwise fetched,
 * checked against snapshot's length and hashes, verified, version-matched, expiry-checked and
 * persisted. *out is owned by the caller.
 */
enum posgate_err
tc_load_targets_role(struct tuf_client *c, const char *role, const struct tuf_key *keys,
                     size_t nkeys, const struct tuf_role_keys *rk, const char *by,
                     struct tuf_meta **out)
{
    char fname[ESCAPED_MAX + 32], name[ESCAPED_MAX + 32], what[TUF_NAME_MAX + 32];
    char msg[TUF_ERRMSG_MAX];
    const struct tuf_meta_file *mf;
    uint64_t max_len;
    struct meta_expect ex;
    struct buf raw;
    struct tuf_meta *m = NULL;
    enum posgate_err err;

    *out = NULL;
    /* Snapshot lists roles by their plain name; only URLs and local files escape it. */
    snprintf(fname, sizeof(fname), "%s.json", role);
    mf = tuf_meta_find_meta(c->snapshot, fname);
    if (mf == NULL) {
        return tc_seterr(c, POSGATE_ERR_NOTFOUND,
                         "role \"%s\" is not listed in snapshot %lld (expected an entry \"%s\")",
                         role, (long long)c->snapshot->version, fname);
    }
    snprintf(what, sizeof(what), "%s %lld", role, (long long)mf->version);
    max_len =
        mf->has_length ? mf->length : cap_or(c->opt.targets_max_len, TUF_DEFAULT_TARGETS_MAX_LEN);
    if (load_local(c, role, TUF_ROLE_TARGETS, max_len, &m, msg, sizeof(msg)) == POSGATE_OK) {
        if (m->version == mf->version && now_s(c) < m->expires &&
            tuf_meta_verify(m, keys, nkeys, rk, NULL) == POSGATE_OK) {
            *out = m;
            return POSGATE_OK;
        }
        tuf_meta_free(m);
        m = NULL;
    }
    buf_init(&raw, max_len);
    err = remote_name(c, role, mf->version, name, sizeof(name));
    if (err == POSGATE_OK) {
        memset(&ex, 0, sizeof(ex));
        ex.type = TUF_ROLE_TARGETS;
        ex.file = mf;
        ex.keys = keys;
        ex.nkeys = nkeys;
        ex.rk = rk;
        err = fetch_meta(c, name, max_len, &raw, &ex);
    }
    if (err == POSGATE_OK) {
        err = check_meta_file(c, mf, &raw, name);
    }
    if (err == POSGATE_OK) {
        err = parse_fetched(c, &raw, TUF_ROLE_TARGETS, name, &m);
    }
    if (err == POSGATE_OK) {
        err = tc_verify_role(c, m, keys, nkeys, rk, what, by);
    }
    if (err == POSGATE_OK && m->version != mf->version) {
        err = tc_seterr(c, m->version < mf->version ? POSGATE_ERR_ROLLBACK : POSGATE_ERR_REJECTED,
                        "%s version %lld does not match version %lld listed in snapshot %lld", role,
                        (long long)m->version, (long long)mf->version,
                        (long long)c->snapshot->version);
    }
    if (err == POSGATE_OK) {
        err = check_expiry(c, m, role);
    }
    if (err == POSGATE_OK) {
        err = persist(c, role, &raw);
    }
    buf_free(&raw);
    if (err != POSGATE_OK) {
        tuf_meta_free(m);
        return err;
    }
    *out = m;
    return POSGATE_OK;
}

static enum posgate_err
update_targets(struct tuf_client *c)
{
    char by[64];
    struct tuf_meta *m = NULL;
    enum posgate_err err;

    snprintf(by, sizeof(by), "by the keys of root %lld", (long long)c->root->version);
    err = tc_load_targets_role(c, "targets", c->root->keys, c->root->nkeys,
                               &c->root->roles[TUF_ROLE_TARGETS], by, &m);
    if (err == POSGATE_OK) {
        tuf_meta_free(c->targets);
        c->targets = m;
    }
    return err;
}

/* ---- public: lifecycle and refresh ---- */

enum posgate_err
tuf_client_bootstrap(const char *metadata_dir, const void *root, size_t len, char *errmsg,
                     size_t errcap)
{
    char msg[TUF_ERRMSG_MAX], path[PATH_CAP];
    struct tuf_meta *m = NULL;
    unsigned valid = 0;
    enum posgate_err err;
    int n;

    if (errmsg != NULL && errcap > 0) {
        errmsg[0] = 0;
    }
    if (metadata_dir == NULL || root == NULL) {
        return POSGATE_ERR_INVALID;
    }
    err = tuf_meta_parse(root, len, TUF_ROLE_ROOT, &m, msg, sizeof(msg));
    if (err != POSGATE_OK) {
        if (errmsg != NULL) {
            snprintf(errmsg, errcap, "initial root: %s", msg);
        }
        return err;
    }
    err = tuf_meta_verify(m, m->keys, m->nkeys, &m->roles[TUF_ROLE_ROOT], &valid);
    if (err != POSGATE_OK) {
        if (errmsg != NULL) {
            snprintf(errmsg, errcap,
                     "initial root %lld has %u valid signature%s of threshold %u by its own keys",
                     (long long)m->version, valid, plural(valid),
                     m->roles[TUF_ROLE_ROOT].threshold);
        }
        goto out;
    }
    err = plat_mkdir_p(metadata_dir, 0755);
    if (err == POSGATE_OK) {
        n = snprintf(path, sizeof(path), "%s/root.json", metadata_dir);
        err = (n < 0 || (size_t)n >= sizeof(path)) ? POSGATE_ERR_TOOBIG : POSGATE_OK;
    }
    if (err == POSGATE_OK) {
        err = plat_write_atomic(path, root, len, 0644);
    }
    if (err != POSGATE_OK && errmsg != NULL) {
        snprintf(errmsg, errcap, "cannot store root.json in %s: %s", metadata_dir,
                 posgate_strerror(err));
    }
out:
    tuf_meta_free(m);
    return err;
}

enum posgate_err
tuf_client_new(const struct tuf_client_options *opt, struct tuf_client **out)
{
    struct tuf_client *c;
    size_t n;
    enum posgate_err err;

    if (out == NULL) {
        return POSGATE_ERR_INVALID;
    }
    *out = NULL;
    if (opt == NULL || opt->metadata_dir == NULL) {
        return POSGATE_ERR_INVALID;
    }
    n = strlen(opt->metadata_dir);
    if (n == 0 || n >= sizeof(c->dir)) {
        return POSGATE_ERR_INVALID;
    }
    c = plat_calloc(1, sizeof(*c));
    if (c == NULL) {
        return POSGATE_ERR_NOMEM;
    }
    c->opt = *opt;
    memcpy(c->dir, opt->metadata_dir, n + 1);
    c->opt.metadata_dir = c->dir;
    err = load_trusted_root(c);
    if (err != POSGATE_OK) {
        /* The caller has no client to ask: log the reason where it can be seen. */
        plat_log(PLAT_LOG_WARN, "tuf: %s", c->errmsg);
        tuf_client_free(c);
        return err;
    }
    *out = c;
    return POSGATE_OK;
}

void
tuf_client_free(struct tuf_client *c)
{
    if (c == NULL) {
        return;
    }
    drop_trusted(c);
    plat_free(c);
}

enum posgate_err
tuf_client_refresh(struct tuf_client *c)
{
    enum posgate_err err;

    if (c == NULL) {
        return POSGATE_ERR_INVALID;
    }
    c->errmsg[0] = 0;
    c->refreshed = 0;
    c->expired = 0;
    /* Start from what is on disk: the trusted state is the files, never a half-updated
     * memory copy from an earlier failed refresh. */
    drop_trusted(c);
    err = load_trusted_root(c);
    if (err == POSGATE_OK) {
        err = update_root(c);
    }
    if (err == POSGATE_OK) {
        load_references(c);
        err = update_timestamp(c);
    }
    if (err == POSGATE_OK) {
        err = update_snapshot(c);
    }
    if (err == POSGATE_OK) {
        err = update_targets(c);
    }
    if (err == POSGATE_OK) {
        c->refreshed = 1;
        c->errmsg[0] = 0;
    }
    return err;
}

/* ---- downloads ---- */

/* The trusted entry behind a tuf_target_info: the caller's copy is only a handle. */
static enum posgate_err
trusted_target(struct tuf_client *c, const struct tuf_target_info *t, const struct tuf_target **out)
{
    const struct tuf_meta *m = NULL;
    const struct tuf_target *tt;

    *out = NULL;
    if (!c->refreshed) {
        return tc_seterr(c, POSGATE_ERR_STATE, "no successful refresh");
    }
    if (t->role == NULL || t->name == NULL) {
        return tc_seterr(c, POSGATE_ERR_INVALID, "target info without name or role");
    }
    if (strcmp(t->role, "targets") == 0) {
        m = c->targets;
    } else {
        const struct deleg_entry *e = tc_find_deleg(c, t->role);

        m = e != NULL ? e->meta : NULL;
    }
    tt = m != NULL ? tuf_meta_find_target(m, t->name) : NULL;
    if (tt == NULL) {
        return tc_seterr(c, POSGATE_ERR_STATE,
                         "target \"%.200s\" of role \"%.200s\" is not in the trusted metadata of "
                         "this session (look it up first)",
                         t->name, t->role);
    }
    if (tt->hashes.unknown != NULL) {
        return tc_seterr(
            c, POSGATE_ERR_BADHASH,
            "target \"%.200s\" lists a hash we cannot check (%s); expected only sha256 "
            "and sha512",
            tt->name, tt->hashes.unknown);
    }
    *out = tt;
    return POSGATE_OK;
}

struct dl_sink {
    struct plat_atomic_file *f;
    struct crypto_hash_stream *h;
    const struct tuf_target *tt;
    uint64_t len; /* bytes written */
    int finished; /* h256/h512 hold the digests of the body (dl_check) */
    uint8_t h256[CRYPTO_SHA256_LEN], h512[CRYPTO_SHA512_LEN];
};

static enum posgate_err
dl_write(void *ctx, const uint8_t *data, size_t len)
{
    struct dl_sink *s = ctx;

    if (s->h == NULL) {
        return POSGATE_ERR_NOMEM; /* dl_reset could not make a fresh hash */
    }
    crypto_hash_stream_update(s->h, data, len);
    s->len += len;
    return plat_atomic_write(s->f, data, len);
}

/* A mirror's complete body against the target's signed length and hashes (struct
 * carrier_sink): a mirror serving other bytes is skipped for the next. */
static enum posgate_err
dl_check(void *ctx)
{
    struct dl_sink *s = ctx;
    char msg[256];

    if (s->len != s->tt->length) {
        return POSGATE_ERR_BADHASH;
    }
    crypto_hash_stream_finish(s->h, s->h256, s->h512);
    s->finished = 1;
    return tuf_hashes_check(&s->tt->hashes, s->tt->hashes.has_sha256 ? s->h256 : NULL,
                            s->tt->hashes.has_sha512 ? s->h512 : NULL, "target", msg,
                            sizeof(msg)) == POSGATE_OK
               ? POSGATE_OK
               : POSGATE_ERR_BADHASH;
}

/* Forgets a body that failed dl_check: an empty temp file and a fresh hash. */
static void
dl_reset(void *ctx)
{
    struct dl_sink *s = ctx;

    crypto_hash_stream_free(s->h);
    s->h = NULL;
    if (crypto_hash_stream_new_for(&s->h, s->tt->hashes.has_sha256, s->tt->hashes.has_sha512) !=
        POSGATE_OK) {
        s->h = NULL;
    }
    s->len = 0;
    s->finished = 0;
    if (ftruncate(s->f->fd, 0) != 0 || lseek(s->f->fd, 0, SEEK_SET) < 0) {
        s->len = UINT64_MAX; /* the next body cannot pass dl_check */
    }
}

enum posgate_err
tuf_client_download(struct tuf_client *c, const struct tuf_target_info *t, const char *dest_path)
{
    const struct tuf_target *tt;
    char rname[2 * TUF_NAME_MAX + 160], hex[2 * CRYPTO_SHA512_LEN + 1], msg[512];
    uint8_t h256[CRYPTO_SHA256_LEN], h512[CRYPTO_SHA512_LEN];
    struct plat_atomic_file f;
    struct dl_sink ds = {&f, NULL, NULL, 0, 0, {0}, {0}};
    struct carrier_sink sink = {dl_write, &ds, dl_check, dl_reset};
    uint64_t got = 0;
    enum posgate_err err;
    int opened = 0;

    if (c == NULL) {
        return POSGATE_ERR_INVALID;
    }
    if (t == NULL || dest_path == NULL) {
        return tc_seterr(c, POSGATE_ERR_INVALID, "download: NULL argument");
    }
    c->errmsg[0] = 0;
    if (c->opt.targets == NULL) {
        return tc_seterr(c, POSGATE_ERR_STATE, "no targets carrier to download from");
    }
    err = trusted_target(c, t, &tt);
    if (err != POSGATE_OK) {
        return err;
    }
    if (c->root->consistent_snapshot) {
        const char *slash = strrchr(tt->name, '/');
        int dirlen = slash != NULL ? (int)(slash - tt->name + 1) : 0;
        int n;

        if (tt->hashes.has_sha256) {
            crypto_hex(tt->hashes.sha256, CRYPTO_SHA256_LEN, hex);
        } else {
            crypto_hex(tt->hashes.sha512, CRYPTO_SHA512_LEN, hex);
        }
        n = snprintf(rname, sizeof(rname), "%.*s%s.%s", dirlen, tt->name, hex, tt->name + dirlen);
        if (n < 0 || (size_t)n >= sizeof(rname)) {
            return tc_seterr(c, POSGATE_ERR_TOOBIG, "target name \"%.64s...\" is too long",
                             tt->name);
        }
    } else {
        snprintf(rname, sizeof(rname), "%s", tt->name);
    }
    f.fd = -1;
    err = crypto_hash_stream_new_for(&ds.h, tt->hashes.has_sha256, tt->hashes.has_sha512);
    if (err != POSGATE_OK) {
        return tc_seterr(c, err, "out of memory");
    }
    err = plat_atomic_open(&f, dest_path, 0644);
    if (err != POSGATE_OK) {
        err = tc_seterr(c, err, "cannot create a temporary file beside %.300s: %s", dest_path,
                        posgate_strerror(err));
        goto out;
    }
    opened = 1;
    ds.tt = tt;
    err = carrier_fetch(c->opt.targets, rname, tt->length, &sink, &got);
    if (err == POSGATE_OK && ds.h == NULL) {
        err = tc_seterr(c, POSGATE_ERR_NOMEM, "out of memory");
        goto out;
    }
    if (err == POSGATE_ERR_BADHASH) {
        err = tc_seterr(c, err,
                        "target \"%.200s\": no mirror served the %llu bytes with the hashes its "
                        "metadata lists: %s",
                        tt->name, (unsigned long long)tt->length, carrier_errmsg(c->opt.targets));
        goto out;
    }
    if (err == POSGATE_ERR_TOOBIG) {
        err =
            tc_seterr(c, err, "target \"%.200s\" is longer than the %llu bytes its metadata lists",
                      tt->name, (unsigned long long)tt->length);
        goto out;
    }
    if (err != POSGATE_OK) {
        err = tc_seterr(c, err, "downloading target \"%.200s\" failed: %s", tt->name,
                        carrier_errmsg(c->opt.targets));
        goto out;
    }
    if (got != tt->length) {
        err = tc_seterr(c, POSGATE_ERR_BADHASH, "target \"%.200s\" is %llu bytes, expected %llu",
                        tt->name, (unsigned long long)got, (unsigned long long)tt->length);
        goto out;
    }
    if (ds.finished) {
        memcpy(h256, ds.h256, sizeof(h256));
        memcpy(h512, ds.h512, sizeof(h512));
    } else {
        crypto_hash_stream_finish(ds.h, h256, h512);
    }
    snprintf(rname, sizeof(rname), "target \"%.200s\"", tt->name);
    if (tuf_hashes_check(&tt->hashes, tt->hashes.has_sha256 ? h256 : NULL,
                         tt->hashes.has_sha512 ? h512 : NULL, rname, msg,
                         sizeof(msg)) != POSGATE_OK) {
        err = tc_seterr(c, POSGATE_ERR_BADHASH, "%s", msg);
        goto out;
    }
    err = plat_atomic_commit(&f);
    if (err != POSGATE_OK) {
        err = tc_seterr(c, err, "cannot move the verified target into %.300s: %s", dest_path,
                        posgate_strerror(err));
        goto out;
    }
    opened = 0;
out:
    if (opened) {
        plat_atomic_abort(&f);
    }
    crypto_hash_stream_free(ds.h);
    return err;
}

enum posgate_err
tuf_client_verify_file(struct tuf_client *c, const struct tuf_target_info *t, const char *path)
{
    const struct tuf_target *tt;
    struct crypto_hash_stream *h = NULL;
    uint8_t h256[CRYPTO_SHA256_LEN], h512[CRYPTO_SHA512_LEN], chunk[16384];
    char what[TUF_NAME_MAX + 32], msg[512];
    uint64_t total = 0;
    enum posgate_err err;
    int fd;

    if (c == NULL) {
        return POSGATE_ERR_INVALID;
    }
    if (t == NULL || path == NULL) {
        return tc_seterr(c, POSGATE_ERR_INVALID, "verify_file: NULL argument");
    }
    err = trusted_target(c, t, &tt);
    if (err != POSGATE_OK) {
        return err;
    }
    fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0) {
        return tc_seterr(c, errno == ENOENT ? POSGATE_ERR_NOTFOUND : POSGATE_ERR_IO,
                         "open %.300s: %s", path, strerror(errno));
    }
    err = crypto_hash_stream_new_for(&h, tt->hashes.has_sha256, tt->hashes.has_sha512);
    while (err == POSGATE_OK) {
        ssize_t n = read(fd, chunk, sizeof(chunk));

        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            err = tc_seterr(c, POSGATE_ERR_IO, "read %.300s: %s", path, strerror(errno));
            break;
        }
        if (n == 0) {
            break;
        }
        total += (uint64_t)n;
        if (total > tt->length) {
            err = tc_seterr(c, POSGATE_ERR_BADHASH,
                            "%.300s is longer than the %llu bytes of target "
                            "\"%.200s\"",
                            path, (unsigned long long)tt->length, tt->name);
            break;
        }
        crypto_hash_stream_update(h, chunk, (size_t)n);
    }
    close(fd);
    if (err == POSGATE_OK && total != tt->length) {
        err = tc_seterr(c, POSGATE_ERR_BADHASH, "%.300s is %llu bytes, target \"%.200s\" has %llu",
                        path, (unsigned long long)total, tt->name, (unsigned long long)tt->length);
    }
    if (err == POSGATE_OK) {
        crypto_hash_stream_finish(h, h256, h512);
        snprintf(what, sizeof(what), "%.300s", path);
        if (tuf_hashes_check(&tt->hashes, tt->hashes.has_sha256 ? h256 : NULL,
                             tt->hashes.has_sha512 ? h512 : NULL, what, msg,
                             sizeof(msg)) != POSGATE_OK) {
            err = tc_seterr(c, POSGATE_ERR_BADHASH, "%s", msg);
        }
    }
    crypto_hash_stream_free(h);
    return err;
}

/* ---- state ---- */

static const struct tuf_meta *
role_meta(const struct tuf_client *c, const char *role)
{
    const struct tuf_meta *m = NULL;

    if (strcmp(role, "root") == 0) {
        m = c->root;
    } else if (strcmp(role, "timestamp") == 0) {
        m = c->timestamp;
    } else if (strcmp(role, "snapshot") == 0) {
        m = c->snapshot;
    } else if (strcmp(role, "targets") == 0) {
        m = c->targets;
    } else {
        for (size_t i = 0; i < c->ndeleg; i++) {
            if (strcmp(c->deleg[i].name, role) == 0) {
                m = c->deleg[i].meta;
            }
        }
    }
    return m;
}

enum posgate_err
tuf_client_role_info(const struct tuf_client *c, const char *role, int64_t *version,
                     int64_t *expires)
{
    const struct tuf_meta *m;

    if (c == NULL || role == NULL) {
        return POSGATE_ERR_INVALID;
    }
    m = role_meta(c, role);
    if (m == NULL) {
        return POSGATE_ERR_NOTFOUND;
    }
    if (version != NULL) {
        *version = m->version;
    }
    if (expires != NULL) {
        *expires = m->expires;
    }
    return POSGATE_OK;
}

int64_t
tuf_client_role_issued(const struct tuf_client *c, const char *role)
{
    const struct tuf_meta *m;

    if (c == NULL || role == NULL) {
        return 0;
    }
    m = role_meta(c, role);
    return m != NULL ? m->issued : 0;
}

int
tuf_client_expired(const struct tuf_client *c)
{
    return c != NULL && c->expired;
}

const char *
tuf_client_errmsg(const struct tuf_client *c)
{
    return c != NULL ? c->errmsg : "";
}
