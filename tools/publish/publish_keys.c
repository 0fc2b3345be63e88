/* SPDX-License-Identifier: Apache-2.0 */
/*
 * posgate-publish key commands (publish_keys.h): `rotate` changes the keys or threshold of a
 * top-level role in a new root version, `authorize` records a delegated list's authority keys in
 * a new root version (kiosks pin from it, agent/core/pins.h), or with --retire the list's
 * retirement (kiosks then accept a feed without it, publish_retire.c), `export`, `sign` and
 * `add-signatures` carry a role to offline signers and back. A new root is signed by a threshold of
 * the old and of the new root keys, either here from --root-key files or on other machines from an
 * exported proposal; the operator's online keys never suffice. docs/publishing.md is the manual.
 */
#define _XOPEN_SOURCE 700
#include "publish_keys.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "buf.h"
#include "crypto.h"
#include "json_canon.h"
#include "plat_clock.h"
#include "plat_file.h"
#include "plat_lock.h"
#include "plat_mem.h"
#include "posgate_err.h"
#include "publish_opts.h"
#include "tuf_writer.h"

#define EXIT_OK      0
#define EXIT_USAGE   2
#define EXIT_REFUSED 4
#define EXIT_IO      5

#define PATH_CAP       4096
#define RING_MAX       40
#define STATE_JSON_MAX (16u << 20)
#define PROPOSAL_MAX   (16u << 20)
#define PEM_MAX        (16u << 10)
#define ROLE_PREFIX    "list-"
#define AUTH_FIELD     "x-posgate-authorities"
#define LOCK_WAIT_MS   60000

static const char *const prog = "posgate-publish";
static const char *const online_roles[3] = {"timestamp", "snapshot", "targets"};

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void
say(const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "%s: ", prog);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

static int
exit_code(enum posgate_err err)
{
    switch (err) {
    case POSGATE_ERR_OK:
        return EXIT_OK;
    case POSGATE_ERR_INVALID:
    case POSGATE_ERR_USAGE:
    case POSGATE_ERR_PARSE:
    case POSGATE_ERR_TOOBIG:
    case POSGATE_ERR_NOTFOUND:
    case POSGATE_ERR_UNSUPPORTED:
    case POSGATE_ERR_STATE:
        return EXIT_USAGE;
    case POSGATE_ERR_REJECTED:
    case POSGATE_ERR_BADSIG:
    case POSGATE_ERR_ROLLBACK: /* a replayed or outdated proposal */
        return EXIT_REFUSED;
    case POSGATE_ERR_NOMEM:
    case POSGATE_ERR_IO:
    case POSGATE_ERR_BADHASH:
    case POSGATE_ERR_EXPIRED:
    case POSGATE_ERR_CORRUPT:
    case POSGATE_ERR_NETWORK:
    case POSGATE_ERR_RETRY:
    case POSGATE_ERR__COUNT:
        return EXIT_IO;
    }
    return EXIT_IO;
}

/* ---- files and keys -------------------------------------------------------------------------- */

/* Reads a text file, NUL-terminated. */
static enum posgate_err
read_text(const char *path, size_t max, struct buf *out)
{
    enum posgate_err err = plat_read_file(path, out);

    if (err == POSGATE_OK && out->len >= max) {
        err = POSGATE_ERR_TOOBIG;
    }
    if (err == POSGATE_OK) {
        err = buf_append(out, "", 1);
    }
    if (err != POSGATE_OK) {
        say("cannot read %s: %s", path, posgate_strerror(err));
    }
    return err;
}

/* The keyid of a public key file (PEM from posgate-keygen, PREFIX.pub). */
static enum posgate_err
pub_keyid(const char *path, struct buf *pem, char id[TUF_WRITER_KEYID_LEN + 1])
{
    enum posgate_err err;

    buf_reset(pem);
    err = read_text(path, PEM_MAX, pem);
    if (err != POSGATE_OK) {
        return err;
    }
    err = tuf_writer_keyid_pem((const char *)pem->data, id);
    if (err != POSGATE_OK) {
        say("%s: expected a PEM ECDSA P-256 public key (posgate-keygen's .pub), found something "
            "else",
            path);
    }
    return err;
}

struct kring {
    struct crypto_privkey *k[RING_MAX];
    char ids[RING_MAX][TUF_WRITER_KEYID_LEN + 1];
    size_t n;
};

static void
kring_cleanup(struct kring *r)
{
    for (size_t i = 0; i < r->n; i++) {
        crypto_privkey_free(r->k[i]);
    }
    memset(r, 0, sizeof(*r));
}

static enum posgate_err
kring_add(struct kring *r, const char *path)
{
    enum posgate_err err;

    if (r->n == RING_MAX) {
        say("more than %d signing keys", RING_MAX);
        return POSGATE_ERR_TOOBIG;
    }
    err = crypto_privkey_load(path, &r->k[r->n]);
    if (err != POSGATE_OK) {
        say("cannot load the private key %s: %s (expected a PEM ECDSA P-256 key from "
            "posgate-keygen)",
            path, posgate_strerror(err));
        return err;
    }
    err = tuf_writer_keyid(r->k[r->n], r->ids[r->n]);
    r->n++;
    return err;
}

static int
kring_has(const struct kring *r, const char *id)
{
    for (size_t i = 0; i < r->n; i++) {
        if (strcmp(r->ids[i], id) == 0) {
            return 1;
        }
    }
    return 0;
}

/* ---- the publisher state --------------------------------------------------------------------- */

struct kstate {
    char dir[PATH_CAP];
    cJSON *pub; /* publish.json */
    struct plat_lock lock;
};

static void
kstate_cleanup(struct kstate *s)
{
    cJSON_Delete(s->pub);
    s->pub = NULL;
    plat_lock_release(&s->lock);
}

static enum posgate_err
kstate_open(const char *dir, struct kstate *s, struct tuf_writer **w)
{
    char p[PATH_CAP], msg[TUF_WRITER_ERRMSG_MAX];
    struct buf raw = BUF_INIT(STATE_JSON_MAX);
    enum posgate_err err;

    memset(s, 0, sizeof(*s));
    s->lock.fd = -1;
    *w = NULL;
    if (snprintf(s->dir, sizeof(s->dir), "%s", dir) >= (int)sizeof(s->dir) ||
        snprintf(p, sizeof(p), "%s/publish.json", dir) >= (int)sizeof(p)) {
        say("state path too long: %s", dir);
        return POSGATE_ERR_TOOBIG;
    }
    err = plat_lock_dir(&s->lock, dir, LOCK_WAIT_MS);
    if (err != POSGATE_OK) {
        say("cannot lock the state %s: %s", dir, posgate_strerror(err));
        return err;
    }
    err = plat_read_file(p, &raw);
    if (err != POSGATE_OK) {
        say("%s holds no publisher state (%s; run `%s init` first)", dir, posgate_strerror(err),
            prog);
        goto out;
    }
    err = json_parse_bounded(raw.data, raw.len, STATE_JSON_MAX, &s->pub, msg, sizeof(msg));
    if (err != POSGATE_OK || !cJSON_IsObject(s->pub)) {
        say("%s: %s", p, err != POSGATE_OK ? msg : "expected an object");
        err = POSGATE_ERR_CORRUPT;
        goto out;
    }
    if (snprintf(p, sizeof(p), "%s/tuf", dir) >= (int)sizeof(p)) {
        err = POSGATE_ERR_TOOBIG;
        goto out;
    }
    err = tuf_writer_open(p, w, msg, sizeof(msg));
    if (err != POSGATE_OK) {
        say("cannot open the TUF writer state %s: %s", p, msg);
    }
out:
    buf_free(&raw);
    return err;
}

static enum posgate_err
kstate_save(struct kstate *s)
{
    char p[PATH_CAP + 16];
    struct buf out = BUF_INIT(STATE_JSON_MAX);
    enum posgate_err err = json_canon_encode(s->pub, &out);

    if (err == POSGATE_OK && snprintf(p, sizeof(p), "%s/publish.json", s->dir) >= (int)sizeof(p)) {
        err = POSGATE_ERR_TOOBIG;
    }
    if (err == POSGATE_OK) {
        err = plat_write_atomic(p, out.data, out.len, 0600);
        if (err != POSGATE_OK) {
            say("cannot write %s: %s", p, posgate_strerror(err));
        }
    }
    buf_free(&out);
    return err;
}

/* The operator's online keyring: the feed key, the recorded online keys and extra. */
static enum posgate_err
online_ring(const struct kstate *s, const struct opt *extra, struct kring *r)
{
    const cJSON *fk = cJSON_GetObjectItemCaseSensitive(s->pub, "feed_key"), *it;
    enum posgate_err err;

    memset(r, 0, sizeof(*r));
    if (!cJSON_IsString(fk)) {
        say("%s/publish.json: expected a feed_key path, found none", s->dir);
        return POSGATE_ERR_CORRUPT;
    }
    err = kring_add(r, fk->valuestring);
    cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(s->pub, "online_keys"))
    {
        if (err == POSGATE_OK && cJSON_IsString(it)) {
            err = kring_add(r, it->valuestring);
        }
    }
    for (size_t i = 0; extra != NULL && i < extra->count && err == POSGATE_OK; i++) {
        err = kring_add(r, extra->values[i]);
    }
    return err;
}

/* Refuses a root whose online roles the operator's keyring could not sign (a rotation to a key
 * that is not on the publishing host would stop every later refresh). */
static enum posgate_err
check_online(const cJSON *root_body, const struct kring *r)
{
    const cJSON *roles = cJSON_GetObjectItemCaseSensitive(root_body, "roles");

    for (size_t i = 0; i < 3; i++) {
        const cJSON *ro = cJSON_GetObjectItemCaseSensitive(roles, online_roles[i]);
        const cJSON *id, *thr = cJSON_GetObjectItemCaseSensitive(ro, "threshold");
        int have = 0;

        cJSON_ArrayForEach(id, cJSON_GetObjectItemCaseSensitive(ro, "keyids"))
        {
            have += cJSON_IsString(id) && kring_has(r, id->valuestring);
        }
        if (!cJSON_IsNumber(thr) || have < thr->valueint) {
            say("refused: the new root gives role %s a threshold of %d, and the operator's "
                "online keys (feed key, recorded online keys, --online-key) hold %d of its keys; "
                "pass --online-key NEW.key. Nothing was changed.",
                online_roles[i], cJSON_IsNumber(thr) ? thr->valueint : 0, have);
            return POSGATE_ERR_REJECTED;
        }
    }
    return POSGATE_OK;
}

/* After a new root: root_keys keeps the paths of keys the root still trusts; online_keys gains
 * the --online-key paths (absolute). */
static enum posgate_err
record_keys(struct kstate *s, struct tuf_writer *w, const struct opt *online)
{
    struct tuf_writer_key_list rk;
    cJSON *keep = cJSON_CreateArray(), *ok;
    const cJSON *it;
    enum posgate_err err =
        keep != NULL ? tuf_writer_get_role_keys(w, "root", &rk) : POSGATE_ERR_NOMEM;

    if (err != POSGATE_OK) {
        cJSON_Delete(keep);
        return err;
    }
    cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(s->pub, "root_keys"))
    {
        struct crypto_privkey *k = NULL;
        char id[TUF_WRITER_KEYID_LEN + 1], rid[TUF_WRITER_KEYID_LEN + 1];
        int still = 0;

        if (!cJSON_IsString(it) || crypto_privkey_load(it->valuestring, &k) != POSGATE_OK) {
            continue; /* gone from this host: nothing to keep */
        }
        if (tuf_writer_keyid(k, id) == POSGATE_OK) {
            for (size_t i = 0; i < rk.count; i++) {
                still |=
                    tuf_writer_keyid_pem(rk.pems[i], rid) == POSGATE_OK && strcmp(rid, id) == 0;
            }
        }
        crypto_privkey_free(k);
        if (still) {
            cJSON_AddItemToArray(keep, cJSON_CreateString(it->valuestring));
        }
    }
    tuf_writer_key_list_cleanup(&rk);
    cJSON_DeleteItemFromObjectCaseSensitive(s->pub, "root_keys");
    cJSON_AddItemToObject(s->pub, "root_keys", keep);
    ok = cJSON_GetObjectItemCaseSensitive(s->pub, "online_keys");
    if (ok == NULL) {
        ok = cJSON_AddArrayToObject(s->pub, "online_keys");
    }
    for (size_t i = 0; online != NULL && i < online->count; i++) {
        char *abs = realpath(online->values[i], NULL);
        int dup = 0;

        if (abs == NULL) {
            say("%s: %s", online->values[i], strerror(errno));
            return POSGATE_ERR_NOTFOUND;
        }
        cJSON_ArrayForEach(it, ok)
        {
            dup |= cJSON_IsString(it) && strcmp(it->valuestring, abs) == 0;
        }
        if (!dup) {
            cJSON_AddItemToArray(ok, cJSON_CreateString(abs));
        }
        free(abs);
    }
    return kstate_save(s);
}

static enum posgate_err
publish_to(struct kstate *s, struct tuf_writer *w, const char *out, const struct opt *online)
{
    struct kring r;
    enum posgate_err err = online_ring(s, online, &r);

    if (err == POSGATE_OK) {
        err = tuf_writer_publish(w, out, r.k, r.n);
        if (err != POSGATE_OK) {
            say("publishing to %s failed: %s", out, tuf_writer_errmsg(w));
        }
    }
    kring_cleanup(&r);
    return err;
}

static enum posgate_err
write_file(const char *path, const struct buf *b)
{
    enum posgate_err err = plat_write_atomic(path, b->data, b->len, 0644);

    if (err != POSGATE_OK) {
        say("cannot write %s: %s", path, posgate_strerror(err));
    }
    return err;
}

static int64_t
root_version_now(struct tuf_writer *w)
{
    int64_t v = 0;

    if (tuf_writer_role_version(w, "root", &v) != POSGATE_OK) {
        v = 0;
    }
    return v;
}

/*
 * The end of rotate and authorize: the working root holds the change. With --export FILE the
 * unsigned next root goes to FILE and the state stays as it was; otherwise the --root-key keys
 * sign it (a threshold of the old and of the new root keys, else refused with nothing changed),
 * it is saved and, with --out, published.
 */
static enum posgate_err
finish_root(struct kstate *s, struct tuf_writer *w, const struct opt *root_keys,
            const struct opt *online, const struct opt *export_to, const struct opt *out)
{
    struct buf b = BUF_INIT(PROPOSAL_MAX);
    struct kring ring, rk;
    cJSON *env = NULL;
    char msg[200];
    enum posgate_err err;

    memset(&rk, 0, sizeof(rk));
    err = online_ring(s, online, &ring);
    if (err == POSGATE_OK) {
        err = tuf_writer_export_role(w, "root", 0, &b);
        if (err != POSGATE_OK) {
            say("%s", tuf_writer_errmsg(w));
        }
    }
    if (err == POSGATE_OK) {
        err = json_parse_bounded(b.data, b.len, PROPOSAL_MAX, &env, msg, sizeof(msg));
    }
    if (err == POSGATE_OK) {
        err = check_online(cJSON_GetObjectItemCaseSensitive(env, "signed"), &ring);
    }
    if (err != POSGATE_OK) {
        goto out;
    }
    if (export_to->count > 0) {
        err = write_file(opt_value(export_to), &b);
        if (err == POSGATE_OK) {
            printf("wrote %s: root version %lld, unsigned; have it signed (`%s sign`) by a "
                   "threshold of the current and of the new root keys, then `%s add-signatures`\n",
                   opt_value(export_to), (long long)root_version_now(w) + 1, prog, prog);
        }
        goto out; /* the state is not saved: the signed proposal carries the change */
    }
    if (root_keys->count == 0) {
        say("expected --root-key files (a threshold of the current and of the new root keys) or "
            "--export FILE, found neither; nothing was changed");
        err = POSGATE_ERR_USAGE;
        goto out;
    }
    for (size_t i = 0; i < root_keys->count && err == POSGATE_OK; i++) {
        err = kring_add(&rk, root_keys->values[i]);
    }
    if (err == POSGATE_OK) {
        err = tuf_writer_sign_role(w, "root", rk.k, rk.n);
        if (err != POSGATE_OK) {
            say("refused: %s. Nothing was changed.", tuf_writer_errmsg(w));
        }
    }
    if (err == POSGATE_OK) {
        err = record_keys(s, w, online);
    }
    if (err == POSGATE_OK && out->count > 0) {
        err = publish_to(s, w, opt_value(out), online);
    }
    if (err == POSGATE_OK) {
        printf("root version %lld signed%s%s\n", (long long)root_version_now(w),
               out->count > 0 ? " and published to " : " (published by the next update or refresh)",
               out->count > 0 ? opt_value(out) : "");
    }
out:
    cJSON_Delete(env);
    kring_cleanup(&ring);
    kring_cleanup(&rk);
    buf_free(&b);
    return err;
}

/* ---- rotate ---------------------------------------------------------------------------------- */

static void
usage_rotate(FILE *f)
{
    fprintf(f,
            "usage: %s rotate --state DIR --role root|targets|snapshot|timestamp\n"
            "         [--add-key K.pub ...] [--remove-key K.pub ...] [--threshold N]\n"
            "         (--root-key K.key ... --out FEEDDIR | --export ROOT.proposal.json)\n"
            "         [--online-key NEW.key ...]\n"
            "A new root version with the role's keys changed, signed by a threshold of the old\n"
            "and of the new root keys: here (--root-key) or on other machines (--export, then\n"
            "sign and add-signatures). An online role's new keys must be on this host\n"
            "(--online-key; recorded in the state for every later update and refresh).\n",
            prog);
}

int
publish_cmd_rotate(int argc, char **argv)
{
    struct opt o[] = {
        {"state", 1, 0, {0}, 0},      {"role", 1, 0, {0}, 0},      {"add-key", 1, 1, {0}, 0},
        {"remove-key", 1, 1, {0}, 0}, {"threshold", 1, 0, {0}, 0}, {"root-key", 1, 1, {0}, 0},
        {"out", 1, 0, {0}, 0},        {"export", 1, 0, {0}, 0},    {"online-key", 1, 1, {0}, 0}};
    struct kstate s;
    struct tuf_writer *w = NULL;
    struct tuf_writer_key_list kl;
    struct buf pem = BUF_INIT(PEM_MAX);
    char *added[OPT_VALUES_MAX] = {0};
    const char *role;
    long thr = 0;
    enum posgate_err err;
    int rc = opt_parse(argc, argv, o, sizeof(o) / sizeof(o[0]), OPT_SAY_TOO_OFTEN);

    memset(&s, 0, sizeof(s));
    s.lock.fd = -1;
    memset(&kl, 0, sizeof(kl));
    if (rc == 1) {
        usage_rotate(stdout);
        return EXIT_OK;
    }
    if (rc != 0 || opt_require(&o[0], "rotate") != 0 || opt_require(&o[1], "rotate") != 0) {
        return EXIT_USAGE;
    }
    role = opt_value(&o[1]);
    if (strcmp(role, "root") != 0 && strcmp(role, "targets") != 0 &&
        strcmp(role, "snapshot") != 0 && strcmp(role, "timestamp") != 0) {
        say("rotate: --role: expected root, targets, snapshot or timestamp, found \"%s\"", role);
        return EXIT_USAGE;
    }
    if ((o[6].count > 0) == (o[7].count > 0)) {
        say("rotate: expected exactly one of --out FEEDDIR and --export FILE");
        return EXIT_USAGE;
    }
    if (o[2].count + o[3].count == 0 && o[4].count == 0) {
        say("rotate: expected --add-key, --remove-key or --threshold, found none");
        return EXIT_USAGE;
    }
    if (o[4].count > 0) {
        char *end = NULL;

        thr = strtol(opt_value(&o[4]), &end, 10);
        if (end == opt_value(&o[4]) || *end != 0 || thr < 1 || thr > TUF_WRITER_MAX_KEYS) {
            say("rotate: --threshold: expected 1..%d, found \"%s\"", TUF_WRITER_MAX_KEYS,
                opt_value(&o[4]));
            return EXIT_USAGE;
        }
    }
    err = kstate_open(opt_value(&o[0]), &s, &w);
    if (err == POSGATE_OK) {
        err = tuf_writer_get_role_keys(w, role, &kl);
    }
    for (size_t i = 0; i < o[3].count && err == POSGATE_OK; i++) {
        char id[TUF_WRITER_KEYID_LEN + 1], have[TUF_WRITER_KEYID_LEN + 1];
        size_t at = kl.count;

        err = pub_keyid(o[3].values[i], &pem, id);
        for (size_t k = 0; k < kl.count && err == POSGATE_OK; k++) {
            if (tuf_writer_keyid_pem(kl.pems[k], have) == POSGATE_OK && strcmp(have, id) == 0) {
                at = k;
            }
        }
        if (err == POSGATE_OK && at == kl.count) {
            say("rotate: --remove-key %s: expected a key of role %s, found key %.16s... which it "
                "does not hold",
                o[3].values[i], role, id);
            err = POSGATE_ERR_INVALID;
        }
        if (err == POSGATE_OK) {
            plat_free(kl.pems[at]);
            memmove(&kl.pems[at], &kl.pems[at + 1], (kl.count - at - 1) * sizeof(kl.pems[0]));
            kl.count--;
        }
    }
    for (size_t i = 0; i < o[2].count && err == POSGATE_OK; i++) {
        char id[TUF_WRITER_KEYID_LEN + 1], have[TUF_WRITER_KEYID_LEN + 1];

        err = pub_keyid(o[2].values[i], &pem, id);
        for (size_t k = 0; k < kl.count && err == POSGATE_OK; k++) {
            if (tuf_writer_keyid_pem(kl.pems[k], have) == POSGATE_OK && strcmp(have, id) == 0) {
                say("rotate: --add-key %s: role %s already holds key %.16s...", o[2].values[i],
                    role, id);
                err = POSGATE_ERR_INVALID;
            }
        }
        if (err == POSGATE_OK && kl.count == TUF_WRITER_MAX_KEYS) {
            say("rotate: role %s would hold more than %d keys", role, TUF_WRITER_MAX_KEYS);
            err = POSGATE_ERR_INVALID;
        }
        if (err == POSGATE_OK) {
            added[i] = plat_strdup((const char *)pem.data);
            kl.pems[kl.count] = added[i];
            err = added[i] != NULL ? POSGATE_OK : POSGATE_ERR_NOMEM;
            added[i] = NULL; /* kl owns it now */
            kl.count++;
        }
    }
    if (err == POSGATE_OK) {
        struct tuf_writer_role_keys rk;

        rk.public_pems = (const char *const *)kl.pems;
        rk.count = kl.count;
        rk.threshold = thr > 0 ? (unsigned)thr : kl.threshold;
        if (rk.count == 0 || rk.threshold > rk.count) {
            say("rotate: role %s would hold %zu key(s) with threshold %u: expected 1 <= "
                "threshold <= keys; nothing was changed",
                role, rk.count, rk.threshold);
            err = POSGATE_ERR_INVALID;
        } else {
            err = tuf_writer_set_role_keys(w, role, &rk);
            if (err != POSGATE_OK) {
                say("rotate: %s", tuf_writer_errmsg(w));
            }
        }
    }
    if (err == POSGATE_OK) {
        err = finish_root(&s, w, &o[5], &o[8], &o[7], &o[6]);
    }
    tuf_writer_key_list_cleanup(&kl);
    tuf_writer_free(w);
    kstate_cleanup(&s);
    buf_free(&pem);
    return exit_code(err);
}

/* ---- authorize ------------------------------------------------------------------------------- */

static void
usage_authorize(FILE *f)
{
    fprintf(f,
            "usage: %s authorize --state DIR --list ID [--retire]\n"
            "         (--root-key K.key ... --out FEEDDIR | --export ROOT.proposal.json)\n"
            "Records the list's current delegation (role list-ID, its keys and threshold, as\n"
            "`delegate` set it) in a new root version (\"" AUTH_FIELD "\"), signed by a\n"
            "threshold of the root keys. Kiosks pin the list's authority from that record, so an\n"
            "authority's key change reaches them without re-initialising; without the record a\n"
            "re-pointed delegation is refused.\n"
            "--retire records instead that the list is retired, now (its last authority kept\n"
            "beside the time): the operator may then drop it from feed.json (`update` withdraws\n"
            "its delegation) and kiosks unpin it and remove its entries. Without this record\n"
            "kiosks refuse a feed that drops a list they pinned.\n",
            prog);
}

static int
cmp_cstr(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The record of the list's current delegation in w (role list-ID): {"role", "threshold",
 * "keys": [sorted keyids]}. NOTFOUND (said) when the list is not delegated. */
static enum posgate_err
delegation_record(struct tuf_writer *w, const char *list, const char *role, cJSON **out)
{
    struct tuf_writer_key_list kl;
    char ids[TUF_WRITER_MAX_KEYS][TUF_WRITER_KEYID_LEN + 1];
    const char *sorted[TUF_WRITER_MAX_KEYS];
    cJSON *rec = NULL, *keys;
    enum posgate_err err;

    memset(&kl, 0, sizeof(kl));
    err = tuf_writer_get_role_keys(w, role, &kl);
    if (err == POSGATE_ERR_NOTFOUND) {
        say("authorize: list %s is not delegated (expected role %s; run `%s delegate` first)", list,
            role, prog);
    }
    for (size_t i = 0; i < kl.count && err == POSGATE_OK; i++) {
        err = tuf_writer_keyid_pem(kl.pems[i], ids[i]);
        sorted[i] = ids[i];
    }
    if (err == POSGATE_OK) {
        qsort(sorted, kl.count, sizeof(sorted[0]), cmp_cstr);
        rec = cJSON_CreateObject();
        keys = cJSON_AddArrayToObject(rec, "keys");
        err = rec != NULL && keys != NULL ? POSGATE_OK : POSGATE_ERR_NOMEM;
    }
    if (err == POSGATE_OK) {
        cJSON_AddStringToObject(rec, "role", role);
        cJSON_AddNumberToObject(rec, "threshold", kl.threshold);
        for (size_t i = 0; i < kl.count; i++) {
            cJSON_AddItemToArray(keys, cJSON_CreateString(sorted[i]));
        }
        *out = rec;
        rec = NULL;
    }
    cJSON_Delete(rec);
    tuf_writer_key_list_cleanup(&kl);
    return err;
}

/*
 * The retirement of a list: the root's record of its authority (else the state's delegation,
 * which kiosks pinned on first sight) with "retired": now. Kiosks unpin the list from it and
 * accept a feed without the list; a list already recorded as retired is STATE (nothing to sign).
 */
static enum posgate_err
retirement_record(struct tuf_writer *w, const char *list, const char *role, const cJSON *old,
                  cJSON **out)
{
    const cJSON *when = cJSON_GetObjectItemCaseSensitive(old, "retired");
    char now[32];
    cJSON *rec = NULL;
    enum posgate_err err = POSGATE_OK;

    if (when != NULL) {
        say("authorize: the root already records list %s as retired (%s); nothing to sign", list,
            cJSON_IsString(when) ? when->valuestring : "?");
        return POSGATE_ERR_STATE;
    }
    if (old != NULL) {
        rec = cJSON_Duplicate(old, 1);
        err = rec != NULL ? POSGATE_OK : POSGATE_ERR_NOMEM;
    } else {
        err = delegation_record(w, list, role, &rec);
    }
    if (err != POSGATE_OK) {
        return err;
    }
    plat_time_format(plat_wall_s(), now, sizeof(now));
    if (cJSON_AddStringToObject(rec, "retired", now) == NULL) {
        cJSON_Delete(rec);
        return POSGATE_ERR_NOMEM;
    }
    *out = rec;
    return POSGATE_OK;
}

int
publish_cmd_authorize(int argc, char **argv)
{
    struct opt o[] = {{"state", 1, 0, {0}, 0},    {"list", 1, 0, {0}, 0},
                      {"root-key", 1, 1, {0}, 0}, {"out", 1, 0, {0}, 0},
                      {"export", 1, 0, {0}, 0},   {"online-key", 1, 1, {0}, 0},
                      {"retire", 0, 0, {0}, 0}};
    struct kstate s;
    struct tuf_writer *w = NULL;
    struct buf cur = BUF_INIT(PROPOSAL_MAX);
    char role[TUF_WRITER_ROLE_MAX + 1];
    cJSON *rec = NULL, *auth = NULL;
    const cJSON *old;
    char *text = NULL, msg[200];
    enum posgate_err err;
    int rc = opt_parse(argc, argv, o, sizeof(o) / sizeof(o[0]), OPT_SAY_TOO_OFTEN);

    memset(&s, 0, sizeof(s));
    s.lock.fd = -1;
    if (rc == 1) {
        usage_authorize(stdout);
        return EXIT_OK;
    }
    if (rc != 0 || opt_require(&o[0], "authorize") != 0 || opt_require(&o[1], "authorize") != 0) {
        return EXIT_USAGE;
    }
    if ((o[3].count > 0) == (o[4].count > 0)) {
        say("authorize: expected exactly one of --out FEEDDIR and --export FILE");
        return EXIT_USAGE;
    }
    if (snprintf(role, sizeof(role), ROLE_PREFIX "%s", opt_value(&o[1])) >= (int)sizeof(role)) {
        say("authorize: --list: expected an id of at most %d bytes", TUF_WRITER_ROLE_MAX - 5);
        return EXIT_USAGE;
    }
    err = kstate_open(opt_value(&o[0]), &s, &w);
    if (err == POSGATE_OK) {
        err = tuf_writer_get_root_field(w, AUTH_FIELD, &cur);
    }
    if (err == POSGATE_ERR_NOTFOUND) {
        auth = cJSON_CreateObject();
        err = auth != NULL ? POSGATE_OK : POSGATE_ERR_NOMEM;
    } else if (err == POSGATE_OK) {
        err = json_parse_bounded(cur.data, cur.len, PROPOSAL_MAX, &auth, msg, sizeof(msg));
    }
    if (err != POSGATE_OK) {
        goto out;
    }
    old = cJSON_GetObjectItemCaseSensitive(auth, opt_value(&o[1]));
    if (o[6].count > 0) {
        err = retirement_record(w, opt_value(&o[1]), role, old, &rec);
    } else {
        err = delegation_record(w, opt_value(&o[1]), role, &rec);
        if (err == POSGATE_OK && old != NULL && cJSON_Compare(old, rec, 1)) {
            say("authorize: the root already records list %s with these keys and threshold; "
                "nothing to sign",
                opt_value(&o[1]));
            err = POSGATE_ERR_STATE;
        }
    }
    if (err != POSGATE_OK) {
        goto out;
    }
    cJSON_DeleteItemFromObjectCaseSensitive(auth, opt_value(&o[1]));
    cJSON_AddItemToObject(auth, opt_value(&o[1]), rec);
    rec = NULL;
    text = cJSON_PrintUnformatted(auth);
    err = text != NULL ? tuf_writer_set_root_field(w, AUTH_FIELD, text) : POSGATE_ERR_NOMEM;
    if (err == POSGATE_OK) {
        err = finish_root(&s, w, &o[2], &o[5], &o[4], &o[3]);
    }
out:
    cJSON_free(text);
    cJSON_Delete(rec);
    cJSON_Delete(auth);
    tuf_writer_free(w);
    kstate_cleanup(&s);
    buf_free(&cur);
    return exit_code(err);
}

/* ---- export, sign, add-signatures ------------------------------------------------------------ */

static void
usage_export(FILE *f)
{
    fprintf(f,
            "usage: %s export --state DIR --role ROLE --out PROPOSAL.json\n"
            "The next version of a targets role (top-level or delegated) with changes pending in\n"
            "the state, unsigned, for signers on other machines. Root proposals come from\n"
            "`rotate --export` and `authorize --export`.\n",
            prog);
}

int
publish_cmd_export(int argc, char **argv)
{
    struct opt o[] = {{"state", 1, 0, {0}, 0}, {"role", 1, 0, {0}, 0}, {"out", 1, 0, {0}, 0}};
    struct kstate s;
    struct tuf_writer *w = NULL;
    struct buf b = BUF_INIT(PROPOSAL_MAX);
    enum posgate_err err;
    int rc = opt_parse(argc, argv, o, sizeof(o) / sizeof(o[0]), OPT_SAY_TOO_OFTEN);

    memset(&s, 0, sizeof(s));
    s.lock.fd = -1;
    if (rc == 1) {
        usage_export(stdout);
        return EXIT_OK;
    }
    if (rc != 0 || opt_require(&o[0], "export") != 0 || opt_require(&o[1], "export") != 0 ||
        opt_require(&o[2], "export") != 0) {
        return EXIT_USAGE;
    }
    err = kstate_open(opt_value(&o[0]), &s, &w);
    if (err == POSGATE_OK) {
        err = tuf_writer_export_role(w, opt_value(&o[1]), 0, &b);
        if (err != POSGATE_OK) {
            say("export: %s", tuf_writer_errmsg(w));
        }
    }
    if (err == POSGATE_OK) {
        err = write_file(opt_value(&o[2]), &b);
    }
    if (err == POSGATE_OK) {
        printf("wrote %s: %s, unsigned\n", opt_value(&o[2]), opt_value(&o[1]));
    }
    tuf_writer_free(w);
    kstate_cleanup(&s);
    buf_free(&b);
    return exit_code(err);
}

static void
usage_sign(FILE *f)
{
    fprintf(f,
            "usage: %s sign --in PROPOSAL.json --key K.key --out SIGNED.json\n"
            "On a signer's own machine, no state needed: adds K's signature over the proposal's\n"
            "\"signed\" (canonical JSON) to the signatures already there. Read what you sign:\n"
            "the role, version and keys are printed.\n",
            prog);
}

/* Prints what a proposal asks to be signed. */
static void
describe(const cJSON *body)
{
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(body, "_type");
    const cJSON *ver = cJSON_GetObjectItemCaseSensitive(body, "version");
    const cJSON *exp = cJSON_GetObjectItemCaseSensitive(body, "expires");
    const cJSON *roles = cJSON_GetObjectItemCaseSensitive(body, "roles"), *r;
    const cJSON *auth = cJSON_GetObjectItemCaseSensitive(body, AUTH_FIELD);

    printf("%s version %d, expires %s\n", cJSON_IsString(type) ? type->valuestring : "?",
           cJSON_IsNumber(ver) ? ver->valueint : 0, cJSON_IsString(exp) ? exp->valuestring : "?");
    cJSON_ArrayForEach(r, roles)
    {
        const cJSON *id, *thr = cJSON_GetObjectItemCaseSensitive(r, "threshold");

        printf("  role %s: threshold %d of", r->string, cJSON_IsNumber(thr) ? thr->valueint : 0);
        cJSON_ArrayForEach(id, cJSON_GetObjectItemCaseSensitive(r, "keyids"))
        {
            printf(" %.16s", cJSON_IsString(id) ? id->valuestring : "?");
        }
        printf("\n");
    }
    cJSON_ArrayForEach(r, auth)
    {
        const cJSON *id, *thr = cJSON_GetObjectItemCaseSensitive(r, "threshold");
        const cJSON *gone = cJSON_GetObjectItemCaseSensitive(r, "retired");

        if (gone != NULL) {
            printf("  list %s RETIRED as of %s; its last authority:", r->string,
                   cJSON_IsString(gone) ? gone->valuestring : "?");
        } else {
            printf("  list %s authority:", r->string);
        }
        printf(" threshold %d of", cJSON_IsNumber(thr) ? thr->valueint : 0);
        cJSON_ArrayForEach(id, cJSON_GetObjectItemCaseSensitive(r, "keys"))
        {
            printf(" %.16s", cJSON_IsString(id) ? id->valuestring : "?");
        }
        printf("\n");
    }
}

int
publish_cmd_sign(int argc, char **argv)
{
    struct opt o[] = {{"in", 1, 0, {0}, 0}, {"key", 1, 0, {0}, 0}, {"out", 1, 0, {0}, 0}};
    struct buf b = BUF_INIT(PROPOSAL_MAX);
    struct kring r;
    cJSON *env = NULL;
    char msg[200];
    enum posgate_err err;
    int rc = opt_parse(argc, argv, o, sizeof(o) / sizeof(o[0]), OPT_SAY_TOO_OFTEN);

    memset(&r, 0, sizeof(r));
    if (rc == 1) {
        usage_sign(stdout);
        return EXIT_OK;
    }
    if (rc != 0 || opt_require(&o[0], "sign") != 0 || opt_require(&o[1], "sign") != 0 ||
        opt_require(&o[2], "sign") != 0) {
        return EXIT_USAGE;
    }
    err = plat_read_file(opt_value(&o[0]), &b);
    if (err != POSGATE_OK) {
        say("cannot read %s: %s", opt_value(&o[0]), posgate_strerror(err));
        goto out;
    }
    err = json_parse_bounded(b.data, b.len, PROPOSAL_MAX, &env, msg, sizeof(msg));
    if (err != POSGATE_OK || !cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(env, "signed"))) {
        say("%s: expected {\"signatures\", \"signed\"}, found %s", opt_value(&o[0]),
            err != POSGATE_OK ? msg : "no \"signed\" object");
        err = POSGATE_ERR_PARSE;
        goto out;
    }
    err = kring_add(&r, opt_value(&o[1]));
    if (err == POSGATE_OK && strcmp(opt_value(&o[0]), opt_value(&o[2])) != 0) {
        err = write_file(opt_value(&o[2]), &b);
    }
    if (err == POSGATE_OK) {
        err = tuf_writer_sign_file(opt_value(&o[2]), r.k, 1, 1);
        if (err != POSGATE_OK) {
            say("cannot sign %s: %s", opt_value(&o[2]), posgate_strerror(err));
        }
    }
    if (err == POSGATE_OK) {
        describe(cJSON_GetObjectItemCaseSensitive(env, "signed"));
        printf("signed by key %s into %s\n", r.ids[0], opt_value(&o[2]));
    }
out:
    cJSON_Delete(env);
    kring_cleanup(&r);
    buf_free(&b);
    return exit_code(err);
}

static void
usage_add_signatures(FILE *f)
{
    fprintf(f,
            "usage: %s add-signatures --state DIR --role ROLE --in SIGNED.json [--in ...]\n"
            "         [--online-key NEW.key ...] [--out FEEDDIR]\n"
            "Merges the signatures of signed copies of one proposal and installs it as the role's\n"
            "next version: refused (exit 4, nothing changed) below the threshold (root: of the\n"
            "current and of the new root keys), for another version than the next (a replayed\n"
            "or outdated proposal) or, for a targets role, other content than the state's.\n"
            "With --out, publishes.\n",
            prog);
}

int
publish_cmd_add_signatures(int argc, char **argv)
{
    struct opt o[] = {{"state", 1, 0, {0}, 0},
                      {"role", 1, 0, {0}, 0},
                      {"in", 1, 1, {0}, 0},
                      {"online-key", 1, 1, {0}, 0},
                      {"out", 1, 0, {0}, 0}};
    struct kstate s;
    struct tuf_writer *w = NULL;
    struct buf b = BUF_INIT(PROPOSAL_MAX);
    struct kring ring;
    cJSON *merged = NULL, *sigs, *env = NULL;
    const cJSON *sig;
    char msg[200], *text = NULL;
    enum posgate_err err = POSGATE_OK;
    int is_root, rc = opt_parse(argc, argv, o, sizeof(o) / sizeof(o[0]), OPT_SAY_TOO_OFTEN);

    memset(&s, 0, sizeof(s));
    s.lock.fd = -1;
    memset(&ring, 0, sizeof(ring));
    if (rc == 1) {
        usage_add_signatures(stdout);
        return EXIT_OK;
    }
    if (rc != 0 || opt_require(&o[0], "add-signatures") != 0 ||
        opt_require(&o[1], "add-signatures") != 0 || opt_require(&o[2], "add-signatures") != 0) {
        return EXIT_USAGE;
    }
    is_root = strcmp(opt_value(&o[1]), "root") == 0;
    for (size_t i = 0; i < o[2].count && err == POSGATE_OK; i++) {
        buf_reset(&b);
        err = plat_read_file(o[2].values[i], &b);
        if (err == POSGATE_OK) {
            err = json_parse_bounded(b.data, b.len, PROPOSAL_MAX, &env, msg, sizeof(msg));
            if (err != POSGATE_OK) {
                say("%s: %s", o[2].values[i], msg);
            }
        } else {
            say("cannot read %s: %s", o[2].values[i], posgate_strerror(err));
        }
        if (err != POSGATE_OK) {
            break;
        }
        if (merged == NULL) {
            merged = env;
            env = NULL;
            if (!cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(merged, "signatures"))) {
                say("%s: expected a \"signatures\" array, found none", o[2].values[i]);
                err = POSGATE_ERR_PARSE;
            }
            continue;
        }
        if (!cJSON_Compare(cJSON_GetObjectItemCaseSensitive(merged, "signed"),
                           cJSON_GetObjectItemCaseSensitive(env, "signed"), 1)) {
            say("%s: expected the same \"signed\" as %s, found a different one (signed copies of "
                "one proposal only)",
                o[2].values[i], o[2].values[0]);
            err = POSGATE_ERR_INVALID;
            break;
        }
        sigs = cJSON_GetObjectItemCaseSensitive(merged, "signatures");
        cJSON_ArrayForEach(sig, cJSON_GetObjectItemCaseSensitive(env, "signatures"))
        {
            cJSON_AddItemToArray(sigs, cJSON_Duplicate(sig, 1));
        }
        cJSON_Delete(env);
        env = NULL;
    }
    if (err != POSGATE_OK) {
        goto out;
    }
    err = kstate_open(opt_value(&o[0]), &s, &w);
    if (err == POSGATE_OK && is_root) {
        err = online_ring(&s, &o[3], &ring);
        if (err == POSGATE_OK) {
            err = check_online(cJSON_GetObjectItemCaseSensitive(merged, "signed"), &ring);
        }
    }
    if (err != POSGATE_OK) {
        goto out;
    }
    text = cJSON_PrintUnformatted(merged);
    if (text == NULL) {
        err = POSGATE_ERR_NOMEM;
        goto out;
    }
    err = tuf_writer_import_signed(w, opt_value(&o[1]), text, strlen(text));
    if (err != POSGATE_OK) {
        say("refused: %s. Nothing was changed.", tuf_writer_errmsg(w));
        goto out;
    }
    if (is_root) {
        err = record_keys(&s, w, &o[3]);
    }
    if (err == POSGATE_OK && o[4].count > 0) {
        err = publish_to(&s, w, opt_value(&o[4]), &o[3]);
    }
    if (err == POSGATE_OK) {
        printf("%s installed%s%s\n", opt_value(&o[1]), o[4].count > 0 ? "; published to " : "",
               o[4].count > 0 ? opt_value(&o[4]) : "");
    }
out:
    cJSON_free(text);
    cJSON_Delete(merged);
    cJSON_Delete(env);
    kring_cleanup(&ring);
    tuf_writer_free(w);
    kstate_cleanup(&s);
    buf_free(&b);
    return exit_code(err);
}
