/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Tests of the import pipeline (agent/core/update.c) end to end on real components: a TUF repository
 * made with our writer, list bodies written with the feed record writer (so each test can forge
 * exactly one thing: a byte, a signer, a version, an expiry, a custom field, a body header), a
 * kiosk data dir made as `posgate init` makes it, directory carriers, and the real SQLite store.
 * Good paths: fresh install, one delta, a chain of two deltas, a jump through the snapshot, a
 * list dropped, an entry removed. Every refusal asserts REJECTED, a message naming the problem,
 * and that the store (feed version, every list's seq and digest, a lookup) and the trusted
 * metadata in <data>/tuf are exactly as before.
 */
#define _POSIX_C_SOURCE 200809L
#include "tuf_fixture.h"

#include "datadir.h"
#include "feed_records.h"
#include "ident.h"
#include "list_key.h"
#include "list_config.h"
#include "plat_log.h"
#include "state_digest.h"
#include "store.h"
#include "update.h"

#define NSUBJ      400 /* subjects 1..NSUBJ-1 may be on a list */
#define NLISTS     2
#define MAX_SEQ    16
#define PROBE      50 /* a subject on "alpha" in every version */
#define CUSTOM_CAP 512
#define VALID_FROM 1600000000

static const char *const list_ids[NLISTS] = {"alpha", "beta"};

/* The publisher's model of one list. */
struct ulist {
    const char *id;
    const char *role;  /* the targets role listing it */
    uint8_t in[NSUBJ]; /* the published set of subjects */
    uint64_t seq;
    int64_t issued_at;
    struct state_digest st;
    char snap_name[128];                   /* the snapshot target now listed, "" when none */
    char snap_body[MAX_SEQ][FX_PATH];      /* body file of snapshot seq */
    char snap_custom[MAX_SEQ][CUSTOM_CAP]; /* its custom metadata */
};

struct uf {
    struct fx f;
    struct crypto_hmac_key hk;
    uint8_t list_key[LIST_KEY_LEN];
    struct ulist l[NLISTS];
    unsigned nfile;
    struct crypto_privkey *auth; /* the authority of a delegated "alpha", else NULL */
    int no_key_check;            /* set_config leaves list_key_check out (an old publisher) */
};

/* A kiosk: one data dir. */
struct kiosk {
    char data[FX_PATH];
    struct datadir dd;
};

/* Forgeries of one publishing step; all zero = an honest publisher. */
struct forge {
    int no_snapshot, no_delta;
    const char *snap_digest, *delta_digest; /* custom "digest" */
    const char *custom_list;                /* custom "list" of both targets */
    const char *body_list;                  /* list id in the snapshot body */
    const char *delta_body_list;            /* list id in the delta body */
    uint64_t snap_body_seq;                 /* seq in the snapshot body (0: honest) */
    int delta_base_forged;
    uint64_t delta_body_base; /* base seq in the delta body */
    const char *role;         /* role to list the targets in */
};

#define BAD_DIGEST "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

/* ---- publisher side ------------------------------------------------------------------------ */

static void
subject_key(struct uf *u, uint64_t v, uint8_t key[FEED_KEY_LEN])
{
    char rid[IDENT_SYNTH_CN_RID_SIZE], msg[256];
    struct ident id;

    ident_synth_cn_rid(v, rid);
    if (ident_parse("cn_rid", rid, strlen(rid), &id, msg, sizeof(msg)) != POSGATE_OK) {
        fprintf(stderr, "synthetic cn_rid %s: %s\n", rid, msg);
        exit(1);
    }
    ident_entry_key(&u->hk, &id, key);
}

static void
subject_entry(struct uf *u, const char *list, uint64_t v, struct feed_entry *e)
{
    char lid[FEED_LISTING_ID_MAX + 1];

    memset(e, 0, sizeof(*e));
    subject_key(u, v, e->key);
    snprintf(lid, sizeof(lid), "%s-%06u", list, (unsigned)v);
    if (feed_entry_set_listing_id(e, lid) != POSGATE_OK) {
        exit(1);
    }
    e->reason = 0;
    e->id_type = (uint8_t)IDENT_CN_RID;
    e->kind = FEED_KIND_RESTRICT;
    e->valid_from = VALID_FROM + (int64_t)v;
    e->valid_until = FEED_UNTIL_OPEN;
}

static int
entry_cmp(const void *a, const void *b)
{
    return feed_entry_compare(a, b);
}

/* The entries of the subjects where want(set_a[v], set_b[v]) holds, sorted. */
static struct feed_entry *
entries_of(struct uf *u, const char *list, const uint8_t *a, const uint8_t *b, int mode, size_t *n)
{
    struct feed_entry *v = calloc(NSUBJ, sizeof(*v));

    *n = 0;
    if (v == NULL) {
        exit(1);
    }
    for (uint64_t s = 1; s < NSUBJ; s++) {
        int take = mode == 0 ? a[s] : mode == 1 ? (a[s] && !b[s]) : (!a[s] && b[s]);

        if (take) {
            subject_entry(u, list, s, &v[(*n)++]);
        }
    }
    qsort(v, *n, sizeof(*v), entry_cmp);
    return v;
}

static void
state_of(struct uf *u, const char *list, const uint8_t *set, struct state_digest *st)
{
    size_t n;
    struct feed_entry *v = entries_of(u, list, set, NULL, 0, &n);

    state_digest_init(st);
    for (size_t i = 0; i < n; i++) {
        state_digest_add(st, &v[i]);
    }
    free(v);
}

static void
body_path(struct uf *u, const char *what, char *out)
{
    char name[64];

    snprintf(name, sizeof(name), "body-%u-%s", u->nfile++, what);
    fx_path(out, u->f.base, name);
}

static void
write_snapshot(struct uf *u, size_t li, const uint8_t *set, const char *body_list, uint64_t seq,
               const char *path)
{
    struct feed_header h;
    struct feed_sink sink;
    struct feed_writer *w = NULL;
    FILE *fp = fopen(path, "wb");
    size_t n;
    struct feed_entry *v = entries_of(u, u->l[li].id, set, NULL, 0, &n);

    CHECK(fp != NULL);
    memset(&h, 0, sizeof(h));
    h.body = FEED_BODY_SNAPSHOT;
    snprintf(h.list_id, sizeof(h.list_id), "%s", body_list);
    h.seq = seq;
    h.count = n;
    h.issued_at = u->l[li].issued_at;
    feed_sink_file(&sink, fp);
    CHECK_OK(feed_writer_new(&sink, &w));
    CHECK_OK(feed_writer_begin(w, &h, 0));
    for (size_t i = 0; i < n; i++) {
        CHECK_OK(feed_writer_add(w, &v[i]));
    }
    CHECK_OK(feed_writer_finish(w, NULL));
    feed_writer_free(w);
    fclose(fp);
    free(v);
}

static void
write_delta(struct uf *u, size_t li, const uint8_t *from, const uint8_t *to, const char *body_list,
            uint64_t base, uint64_t seq, const struct state_digest *sb,
            const struct state_digest *sr, const char *path)
{
    struct feed_header h;
    struct feed_sink sink;
    struct feed_writer *w = NULL;
    FILE *fp = fopen(path, "wb");
    size_t nr, na;
    struct feed_entry *rem = entries_of(u, u->l[li].id, from, to, 1, &nr);
    struct feed_entry *add = entries_of(u, u->l[li].id, from, to, 2, &na);

    CHECK(fp != NULL);
    memset(&h, 0, sizeof(h));
    h.body = FEED_BODY_DELTA;
    snprintf(h.list_id, sizeof(h.list_id), "%s", body_list);
    h.base_seq = base;
    h.seq = seq;
    h.removals = nr;
    h.additions = na;
    h.issued_at = u->l[li].issued_at;
    state_digest_finish(sb, h.base_digest);
    state_digest_finish(sr, h.result_digest);
    feed_sink_file(&sink, fp);
    CHECK_OK(feed_writer_new(&sink, &w));
    CHECK_OK(feed_writer_begin(w, &h, 0));
    for (size_t i = 0; i < nr; i++) {
        CHECK_OK(feed_writer_remove(w, &rem[i]));
    }
    for (size_t i = 0; i < na; i++) {
        CHECK_OK(feed_writer_add(w, &add[i]));
    }
    CHECK_OK(feed_writer_finish(w, NULL));
    feed_writer_free(w);
    fclose(fp);
    free(rem);
    free(add);
}

static size_t
set_count(const uint8_t *set)
{
    size_t n = 0;

    for (size_t s = 1; s < NSUBJ; s++) {
        n += set[s] != 0;
    }
    return n;
}

static void
set_range(uint8_t *set, unsigned from, unsigned to, uint8_t val)
{
    for (unsigned s = from; s <= to && s < NSUBJ; s++) {
        set[s] = val;
    }
}

/*
 * Publishes the next version of list li with the subject set `next` (the caller publishes the
 * repository): a snapshot (replacing the one listed) and a delta from the current seq, each
 * with its custom metadata, forged as fg says. The model follows the honest content.
 */
static void
step(struct uf *u, size_t li, const uint8_t *next, const struct forge *fg)
{
    static const struct forge honest;
    struct ulist *l = &u->l[li];
    struct state_digest nst;
    char hex[STATE_DIGEST_HEX_LEN + 1], ts[32], name[128], custom[CUSTOM_CAP];
    char snap[FX_PATH], delta[FX_PATH];
    uint64_t seq = l->seq + 1;
    const char *role, *clist, *blist;

    if (fg == NULL) {
        fg = &honest;
    }
    role = fg->role != NULL ? fg->role : l->role;
    clist = fg->custom_list != NULL ? fg->custom_list : l->id;
    blist = fg->body_list != NULL ? fg->body_list : l->id;
    if (seq >= MAX_SEQ) {
        fprintf(stderr, "too many versions\n");
        exit(1);
    }
    l->issued_at = u->f.now - 3600 + (int64_t)seq;
    plat_time_format(l->issued_at, ts, sizeof(ts));
    state_of(u, l->id, next, &nst);

    body_path(u, "snap", snap);
    write_snapshot(u, li, next, blist, fg->snap_body_seq ? fg->snap_body_seq : seq, snap);
    state_digest_hex(&nst, hex);
    snprintf(custom, sizeof(custom),
             "{\"digest\":\"%s\",\"entries\":%zu,\"ident_format\":%d,\"issued_at\":\"%s\","
             "\"list\":\"%s\",\"seq\":%llu,\"type\":\"snapshot\"}",
             fg->snap_digest != NULL ? fg->snap_digest : hex, set_count(next), IDENT_FORMAT, ts,
             clist, (unsigned long long)seq);
    snprintf(l->snap_body[seq], FX_PATH, "%s", snap);
    snprintf(l->snap_custom[seq], CUSTOM_CAP, "%s", custom);
    if (!fg->no_snapshot) {
        snprintf(name, sizeof(name), "lists/%s/snapshot-%llu.pgs", l->id, (unsigned long long)seq);
        CHECK_OK(tuf_writer_add_target(u->f.w, role, name, snap, custom));
    }
    if (l->snap_name[0] != 0) {
        CHECK_OK(tuf_writer_remove_target(u->f.w, l->role, l->snap_name));
        l->snap_name[0] = 0;
    }
    if (!fg->no_snapshot && strcmp(role, l->role) == 0) {
        snprintf(l->snap_name, sizeof(l->snap_name), "%s", name);
    }

    if (l->seq > 0 && !fg->no_delta) {
        body_path(u, "delta", delta);
        write_delta(u, li, l->in, next, fg->delta_body_list != NULL ? fg->delta_body_list : l->id,
                    fg->delta_base_forged ? fg->delta_body_base : l->seq, seq, &l->st, &nst, delta);
        snprintf(custom, sizeof(custom),
                 "{\"base_seq\":%llu,\"digest\":\"%s\",\"entries\":%zu,\"ident_format\":%d,"
                 "\"issued_at\":\"%s\",\"list\":\"%s\",\"seq\":%llu,\"type\":\"delta\"}",
                 (unsigned long long)l->seq, fg->delta_digest != NULL ? fg->delta_digest : hex,
                 set_count(next), IDENT_FORMAT, ts, clist, (unsigned long long)seq);
        snprintf(name, sizeof(name), "lists/%s/delta-%llu-%llu.pgd", l->id,
                 (unsigned long long)l->seq, (unsigned long long)seq);
        CHECK_OK(tuf_writer_add_target(u->f.w, role, name, delta, custom));
    }
    memcpy(l->in, next, NSUBJ);
    l->seq = seq;
    l->st = nst;
}

/* How config/feed.json differs from the honest one, and who publishes it. */
struct cfg_edit {
    const char *alpha_jurisdictions; /* JSON array text; NULL: [] */
    const char *scope;               /* r1's scope, JSON array text; NULL: ["air"] */
    int drop_alpha;                  /* alpha left out of lists */
    int unsigned_alpha;              /* the operator alone: lists/alpha/config.json unchanged */
};

/* Publishes config/feed.json naming the first nlists lists (as edit says), and, with a
 * delegated alpha, lists/alpha/config.json in alpha's role as its authority signs it. */
static void
set_config_edit(struct uf *u, size_t nlists, const struct cfg_edit *edit)
{
    struct buf b = BUF_INIT(8192), lc = BUF_INIT(LIST_CONFIG_MAX_BYTES);
    char path[FX_PATH], check[LIST_KEY_CHECK_HEX + 1], msg[LIST_CONFIG_ERRMSG];
    const uint16_t used[1] = {0};
    int first = 1;

    list_key_check(&u->hk, check);
    CHECK_OK(buf_printf(&b, "{\"feed_id\":\"test-feed\","));
    if (!u->no_key_check) {
        CHECK_OK(buf_printf(&b, "\"list_key_check\":\"%s\",", check));
    }
    CHECK_OK(buf_printf(&b, "\"services\":[\"air\",\"rail\"],\"lists\":["));
    for (size_t i = 0; i < nlists; i++) {
        if (i == 0 && edit->drop_alpha) {
            continue;
        }
        CHECK_OK(buf_printf(&b,
                            "%s{\"id\":\"%s\",\"authority\":\"Authority %s\","
                            "\"jurisdictions\":%s,\"stale_after\":\"7d\","
                            "\"stale_policy\":\"refer\"}",
                            first ? "" : ",", u->l[i].id, u->l[i].id,
                            i == 0 && edit->alpha_jurisdictions != NULL ? edit->alpha_jurisdictions
                                                                        : "[]"));
        first = 0;
    }
    CHECK_OK(buf_printf(&b,
                        "],\"reasons\":[{\"id\":\"r1\",\"authority\":\"A\","
                        "\"legal_basis\":\"Act 1\",\"contest\":\"Write to A\","
                        "\"scope\":%s}]}",
                        edit->scope != NULL ? edit->scope : "[\"air\"]"));
    body_path(u, "feed.json", path);
    fx_write(path, b.data, b.len);
    CHECK_OK(tuf_writer_add_target(u->f.w, "targets", "config/feed.json", path,
                                   "{\"type\":\"config\"}"));
    if (u->auth != NULL && !edit->drop_alpha && !edit->unsigned_alpha) {
        CHECK_OK(list_config_build(b.data, b.len, "alpha", used, 1, &lc, msg, sizeof(msg)));
        body_path(u, "alpha-config.json", path);
        fx_write(path, lc.data, lc.len);
        CHECK_OK(tuf_writer_add_target(u->f.w, u->l[0].role, "lists/alpha/config.json", path,
                                       "{\"list\":\"alpha\",\"type\":\"list-config\"}"));
    }
    buf_free(&lc);
    buf_free(&b);
}

static void
set_config(struct uf *u, size_t nlists)
{
    static const struct cfg_edit honest = {NULL, NULL, 0, 0};

    set_config_edit(u, nlists, &honest);
}

/* A repository with lists alpha (subjects 1..100) and beta (201..260) at seq 1, published.
 * With delegate set, alpha's targets are delegated to an authority key first. */
static void
uf_setup(struct uf *u, const char *tag, int delegate)
{
    uint8_t set[NSUBJ];

    memset(u, 0, sizeof(*u));
    fx_init(&u->f, tag);
    for (size_t i = 0; i < LIST_KEY_LEN; i++) {
        u->list_key[i] = (uint8_t)(0xa5 ^ (i * 7));
    }
    CHECK_OK(crypto_hmac_key_init(&u->hk, u->list_key, sizeof(u->list_key)));
    for (size_t i = 0; i < NLISTS; i++) {
        u->l[i].id = list_ids[i];
        u->l[i].role = "targets";
    }
    if (delegate) {
        const char *pem[1];
        const char *paths[1] = {"lists/alpha/*"};
        struct tuf_writer_delegation d;

        u->auth = fx_key();
        pem[0] = fx_pub(u->auth);
        memset(&d, 0, sizeof(d));
        d.delegator = "targets";
        d.name = "alpha-auth";
        d.paths = paths;
        d.path_count = 1;
        d.keys = (struct tuf_writer_role_keys){pem, 1, 1};
        d.terminating = 1;
        CHECK_OK(tuf_writer_delegate(u->f.w, &d));
        u->l[0].role = "alpha-auth";
        u->f.keyring[u->f.nkeyring++] = u->auth;
    }
    set_config(u, NLISTS);
    memset(set, 0, sizeof(set));
    set_range(set, 1, 100, 1);
    step(u, 0, set, NULL);
    memset(set, 0, sizeof(set));
    set_range(set, 201, 260, 1);
    step(u, 1, set, NULL);
    CHECK_OK(fx_publish(&u->f));
}

static void
uf_cleanup(struct uf *u)
{
    crypto_hmac_key_cleanup(&u->hk);
    crypto_privkey_free(u->auth);
    fx_cleanup(&u->f);
}

/* The next set of alpha: the current one with [rf..rt] removed and [af..at] added. */
static void
alpha_next(struct uf *u, unsigned rf, unsigned rt, unsigned af, unsigned at, uint8_t *out)
{
    memcpy(out, u->l[0].in, NSUBJ);
    if (rf != 0) {
        set_range(out, rf, rt, 0);
    }
    if (af != 0) {
        set_range(out, af, at, 1);
    }
}

static void
step_alpha(struct uf *u, unsigned rf, unsigned rt, unsigned af, unsigned at, const struct forge *fg)
{
    uint8_t set[NSUBJ];

    alpha_next(u, rf, rt, af, at, set);
    step(u, 0, set, fg);
}

/* The repository file of a target (consistent snapshot name) whose content is at body. */
static void
repo_target_path(struct uf *u, const char *name, const char *body, char *out, size_t cap)
{
    struct buf b;
    uint8_t sha[CRYPTO_SHA256_LEN];
    char hex[2 * CRYPTO_SHA256_LEN + 1];
    const char *slash = strrchr(name, '/');

    CHECK_OK(fx_read(body, &b));
    crypto_sha256(b.data, b.len, sha);
    buf_free(&b);
    crypto_hex(sha, sizeof(sha), hex);
    {
        struct buf p = BUF_INIT(FX_PATH);

        CHECK_OK(buf_printf(&p, "%s/%.*s/%s.%s", u->f.targets, (int)(slash - name), name, hex,
                            slash + 1));
        snprintf(out, cap, "%s", buf_cstr(&p));
        buf_free(&p);
    }
}

/* ---- kiosk side ---------------------------------------------------------------------------- */

/* What `posgate init` does: trust root 1, the list key, an empty store with a jurisdiction. */
static void
kiosk_init(struct uf *u, struct kiosk *k, const char *name)
{
    char path[FX_PATH], msg[512];
    struct buf root;
    struct store *st = NULL;
    struct store_update *up = NULL;
    const char *jur[1] = {"CN"};

    fx_path(k->data, u->f.base, name);
    CHECK_OK(plat_mkdir_p(k->data, 0700));
    CHECK_OK(datadir_init(&k->dd, k->data));
    fx_path(path, u->f.meta, "1.root.json");
    CHECK_OK(fx_read(path, &root));
    CHECK_OK(tuf_client_bootstrap(k->dd.tuf, root.data, root.len, msg, sizeof(msg)));
    buf_free(&root);
    CHECK_OK(plat_write_atomic(k->dd.list_key, u->list_key, sizeof(u->list_key), 0600));
    CHECK_OK(store_open(k->dd.store, STORE_CREATE, &st, msg, sizeof(msg)));
    CHECK_OK(store_begin_update(st, &up));
    CHECK_OK(store_update_set_jurisdictions(up, jur, 1));
    CHECK_OK(store_update_commit(up));
    store_close(st);
}

static enum posgate_err
kiosk_update_at(struct uf *u, struct kiosk *k, int accept_expired, int64_t now,
                struct update_result *res, char *msg, size_t cap)
{
    struct update_options opt;
    struct carrier *m = NULL, *t = NULL;
    enum posgate_err err;

    CHECK_OK(carrier_dir_new(u->f.meta, &m));
    CHECK_OK(carrier_dir_new(u->f.targets, &t));
    memset(&opt, 0, sizeof(opt));
    opt.data_dir = k->data;
    opt.metadata = m;
    opt.targets = t;
    opt.accept_expired = accept_expired;
    opt.now = now;
    err = update_run(&opt, res, msg, cap);
    carrier_free(m);
    carrier_free(t);
    return err;
}

/* An update that must succeed. */
static void
kiosk_update_ok(struct uf *u, struct kiosk *k, struct update_result *res)
{
    char msg[1024];
    enum posgate_err err = kiosk_update_at(u, k, 0, 0, res, msg, sizeof(msg));

    CHECK_OK(err);
    if (err != POSGATE_OK) {
        fprintf(stderr, "  update: %s\n", msg);
    }
}

/* Lists holding subject v (bit i set: list i has the entry "<list>-<v>" with the key of v).
 * Checks the hit's fields while at it. */
static unsigned
lookup_lists(struct store_reader *rd, struct uf *u, uint64_t v)
{
    uint8_t key[FEED_KEY_LEN];
    struct store_hit hits[8];
    const struct store_list *lists;
    size_t n = 0, nl = 0;
    unsigned mask = 0;

    subject_key(u, v, key);
    CHECK_OK(store_lookup(rd, key, hits, 8, &n));
    lists = store_reader_lists(rd, &nl);
    for (size_t i = 0; i < n && i < 8; i++) {
        CHECK(hits[i].list < nl);
        if (hits[i].list >= nl) {
            continue;
        }
        for (size_t li = 0; li < NLISTS; li++) {
            struct feed_entry want;

            if (strcmp(lists[hits[i].list].id, u->l[li].id) == 0) {
                subject_entry(u, u->l[li].id, v, &want);
                CHECK(feed_entry_equal(&want, &hits[i].e));
                mask |= 1u << li;
            }
        }
    }
    return mask;
}

/* The store holds exactly the model: lists[0..nlists) at their seq, digest and entries, every
 * subject found on exactly the lists that hold it, the lists beyond nlists gone. */
static void
check_state(struct uf *u, struct kiosk *k, size_t nlists)
{
    struct store *st = NULL;
    struct store_reader *rd = NULL;
    struct store_list sl;
    struct store_meta meta;
    char msg[256], hex[STATE_DIGEST_HEX_LEN + 1];
    int64_t tsv = 0;
    int bad = 0;

    CHECK_OK(store_open(k->dd.store, 0, &st, msg, sizeof(msg)));
    if (st == NULL) {
        return;
    }
    CHECK_OK(store_get_meta(st, &meta));
    CHECK_OK(tuf_writer_role_version(u->f.w, "timestamp", &tsv));
    CHECK_INT(meta.feed_version, tsv);
    for (size_t li = 0; li < NLISTS; li++) {
        if (li >= nlists) {
            CHECK_ERR(store_get_list(st, u->l[li].id, &sl), POSGATE_ERR_NOTFOUND);
            continue;
        }
        CHECK_OK(store_get_list(st, u->l[li].id, &sl));
        state_digest_hex(&u->l[li].st, hex);
        CHECK_INT(sl.seq, u->l[li].seq);
        CHECK_STR(sl.digest, hex);
        CHECK_INT(sl.entries, set_count(u->l[li].in));
        CHECK_INT(sl.issued_at, u->l[li].issued_at);
    }
    CHECK_OK(store_reader_new(st, &rd));
    for (uint64_t v = 1; v < NSUBJ; v++) {
        unsigned want = 0, got = lookup_lists(rd, u, v);

        for (size_t li = 0; li < nlists; li++) {
            want |= u->l[li].in[v] ? 1u << li : 0;
        }
        if (want != got && bad++ < 5) {
            fprintf(stderr, "subject %u: on lists 0x%x, expected 0x%x\n", (unsigned)v, got, want);
        }
    }
    CHECK_INT(bad, 0);
    store_reader_free(rd);
    store_close(st);
}

/* Whether subject v is found on list li. */
static int
found(struct uf *u, struct kiosk *k, size_t li, uint64_t v)
{
    struct store *st = NULL;
    struct store_reader *rd = NULL;
    char msg[256];
    unsigned mask = 0;

    CHECK_OK(store_open(k->dd.store, 0, &st, msg, sizeof(msg)));
    if (st != NULL && store_reader_new(st, &rd) == POSGATE_OK) {
        mask = lookup_lists(rd, u, v);
    }
    store_reader_free(rd);
    store_close(st);
    return (mask >> li) & 1u;
}

/* A picture of what a refused update must not change. */
struct kpic {
    struct store_meta meta;
    size_t nlists;
    struct store_list lists[NLISTS + 1];
    unsigned probe;
    struct fx_dirpic tuf;
};

static void
kpic_take(struct uf *u, struct kiosk *k, struct kpic *p)
{
    struct store *st = NULL;
    struct store_reader *rd = NULL;
    char msg[256];

    memset(p, 0, sizeof(*p));
    CHECK_OK(store_open(k->dd.store, 0, &st, msg, sizeof(msg)));
    if (st != NULL) {
        CHECK_OK(store_get_meta(st, &p->meta));
        CHECK_OK(store_get_lists(st, p->lists, NLISTS + 1, &p->nlists));
        CHECK_OK(store_reader_new(st, &rd));
        p->probe = rd != NULL ? lookup_lists(rd, u, PROBE) : 0;
        store_reader_free(rd);
        store_close(st);
    }
    fx_pic_take(&p->tuf, k->dd.tuf);
}

static void
kpic_check_same(struct uf *u, struct kiosk *k, struct kpic *before)
{
    struct kpic now;

    kpic_take(u, k, &now);
    CHECK_INT(now.meta.feed_version, before->meta.feed_version);
    CHECK_INT(now.meta.installed_at, before->meta.installed_at);
    CHECK_INT(now.nlists, before->nlists);
    for (size_t i = 0; i < now.nlists && i < before->nlists && i < NLISTS + 1; i++) {
        CHECK_STR(now.lists[i].id, before->lists[i].id);
        CHECK_INT(now.lists[i].seq, before->lists[i].seq);
        CHECK_STR(now.lists[i].digest, before->lists[i].digest);
        CHECK_INT(now.lists[i].entries, before->lists[i].entries);
    }
    CHECK_INT(now.probe, before->probe);
    CHECK(before->probe & 1u); /* the probe is on alpha in every version */
    CHECK(fx_pic_same(&before->tuf, k->dd.tuf));
    fx_pic_free(&now.tuf);
    fx_pic_free(&before->tuf);
}

/* An update that must be refused (REJECTED) with a message holding n1 (and n2), leaving the
 * kiosk exactly as it was. */
static void
expect_refused_at(struct uf *u, struct kiosk *k, int accept_expired, int64_t now, int line,
                  const char *n1, const char *n2)
{
    struct kpic before;
    struct update_result res;
    char msg[1024];
    int failures = test_failures;

    kpic_take(u, k, &before);
    CHECK_ERR(kiosk_update_at(u, k, accept_expired, now, &res, msg, sizeof(msg)),
              POSGATE_ERR_REJECTED);
    CHECK_CONTAINS(msg, n1);
    if (n2 != NULL) {
        CHECK_CONTAINS(msg, n2);
    }
    kpic_check_same(u, k, &before);
    if (getenv("POSGATE_TEST_VERBOSE") != NULL) {
        fprintf(stderr, "line %d refused: %s\n", line, msg);
    }
    if (test_failures != failures) {
        fprintf(stderr, "  (refusal expected at line %d; message: %s)\n", line, msg);
    }
}

#define EXPECT_REFUSED(u, k, n1, n2) expect_refused_at((u), (k), 0, 0, __LINE__, (n1), (n2))

/* ---- good paths ---------------------------------------------------------------------------- */

static void
test_good_paths(void)
{
    struct uf u;
    struct kiosk a, b, c, d;
    struct update_result res;
    char path[FX_PATH];

    uf_setup(&u, "upgood", 0);
    kiosk_init(&u, &a, "kiosk-a");
    kiosk_init(&u, &b, "kiosk-b");
    kiosk_init(&u, &c, "kiosk-c");
    kiosk_init(&u, &d, "kiosk-d");

    /* fresh install: both lists from their snapshots */
    kiosk_update_ok(&u, &a, &res);
    CHECK_INT(res.snapshots, 2);
    CHECK_INT(res.deltas, 0);
    CHECK_INT(res.fallbacks, 0);
    CHECK_INT(res.changed, 1);
    CHECK_INT(res.previous_version, 0);
    CHECK_INT(res.entries_changed, 100 + 60);
    CHECK_INT(res.expired_accepted, 0);
    check_state(&u, &a, 2);
    CHECK(found(&u, &a, 0, 3));
    CHECK(!found(&u, &a, 1, 3));
    CHECK(found(&u, &a, 1, 230));
    {
        /* the verified metadata was promoted: the trusted timestamp is the repository's */
        char trusted[FX_PATH], repo[FX_PATH];
        struct buf x, y;

        fx_path(trusted, a.dd.tuf, "timestamp.json");
        fx_path(repo, u.f.meta, "timestamp.json");
        CHECK_OK(fx_read(trusted, &x));
        CHECK_OK(fx_read(repo, &y));
        CHECK(x.len == y.len && memcmp(x.data, y.data, x.len) == 0);
        buf_free(&x);
        buf_free(&y);
        /* nothing left behind in staging or incoming */
        {
            struct fx_dirpic left;

            fx_pic_take(&left, a.dd.tuf_staging);
            CHECK_INT(left.n, 0);
            fx_pic_free(&left);
            fx_pic_take(&left, a.dd.incoming);
            CHECK_INT(left.n, 0);
            fx_pic_free(&left);
        }
    }
    kiosk_update_ok(&u, &b, &res);
    kiosk_update_ok(&u, &c, &res);
    kiosk_update_ok(&u, &d, &res);

    /* nothing new: nothing changes */
    kiosk_update_ok(&u, &a, &res);
    CHECK_INT(res.changed, 0);
    CHECK_INT(res.snapshots + res.deltas, 0);
    check_state(&u, &a, 2);

    /* v1 -> v2 by one delta: subjects 1..5 removed, 101..110 added */
    step_alpha(&u, 1, 5, 101, 110, NULL);
    CHECK_OK(fx_publish(&u.f));
    kiosk_update_ok(&u, &a, &res);
    CHECK_INT(res.deltas, 1);
    CHECK_INT(res.snapshots, 0);
    CHECK_INT(res.fallbacks, 0);
    CHECK_INT(res.changed, 1);
    CHECK_INT(res.entries_changed, 5 + 10);
    check_state(&u, &a, 2);
    CHECK(!found(&u, &a, 0, 3)); /* removed at the publisher: no longer found */
    CHECK(found(&u, &a, 0, 105));

    /* v2 -> v3; kiosk b skipped v2 and takes the chain of two deltas */
    step_alpha(&u, 6, 8, 111, 115, NULL);
    CHECK_OK(fx_publish(&u.f));
    kiosk_update_ok(&u, &b, &res);
    CHECK_INT(res.deltas, 2);
    CHECK_INT(res.snapshots, 0);
    CHECK_INT(res.fallbacks, 0);
    CHECK_INT(res.entries_changed, 5 + 10 + 3 + 5);
    check_state(&u, &b, 2);
    CHECK(!found(&u, &b, 0, 7));
    CHECK(found(&u, &b, 0, 112));

    /* v1 -> v3 on kiosk c with the delta files missing from the carrier: the chain fails on
     * download, the snapshot is taken */
    {
        char dir[FX_PATH];
        DIR *dp;
        struct dirent *e;
        int removed = 0;

        fx_path(dir, u.f.targets, "lists/alpha");
        dp = opendir(dir);
        CHECK(dp != NULL);
        while (dp != NULL && (e = readdir(dp)) != NULL) {
            if (strstr(e->d_name, ".delta-") != NULL) {
                fx_path(path, dir, e->d_name);
                CHECK(unlink(path) == 0);
                removed++;
            }
        }
        if (dp != NULL) {
            closedir(dp);
        }
        CHECK_INT(removed, 2);
    }
    kiosk_update_ok(&u, &c, &res);
    CHECK_INT(res.snapshots, 1);
    CHECK_INT(res.deltas, 0);
    CHECK_INT(res.fallbacks, 1);
    check_state(&u, &c, 2);

    /* v1 -> v3 on kiosk d, published without the deltas: straight to the snapshot */
    CHECK_OK(tuf_writer_remove_target(u.f.w, "targets", "lists/alpha/delta-1-2.pgd"));
    CHECK_OK(tuf_writer_remove_target(u.f.w, "targets", "lists/alpha/delta-2-3.pgd"));
    CHECK_OK(fx_publish(&u.f));
    kiosk_update_ok(&u, &d, &res);
    CHECK_INT(res.snapshots, 1);
    CHECK_INT(res.deltas, 0);
    CHECK_INT(res.fallbacks, 0);
    check_state(&u, &d, 2);

    /* beta removed from the config: dropped on kiosk a, which also takes alpha v2 -> v3, by
     * the snapshot as the deltas are no longer listed */
    set_config(&u, 1);
    CHECK_OK(fx_publish(&u.f));
    CHECK(found(&u, &a, 1, 230));
    kiosk_update_ok(&u, &a, &res);
    CHECK_INT(res.dropped, 1);
    CHECK_INT(res.snapshots, 1);
    CHECK_INT(res.changed, 1);
    check_state(&u, &a, 1);
    CHECK(!found(&u, &a, 1, 230));
    CHECK(found(&u, &a, 0, 112));

    /* and a delta after the drop still works */
    step_alpha(&u, 9, 9, 0, 0, NULL);
    CHECK_OK(fx_publish(&u.f));
    kiosk_update_ok(&u, &a, &res);
    CHECK_INT(res.deltas, 1);
    CHECK_INT(res.dropped, 0);
    CHECK_INT(res.entries_changed, 1);
    check_state(&u, &a, 1);
    CHECK(!found(&u, &a, 0, 9));
    uf_cleanup(&u);
}

/* ---- trust layer refusals -------------------------------------------------------------------- */

static void
test_trust_refusals(void)
{
    struct uf u;
    struct kiosk k;
    struct update_result res;
    char snap_repo[FX_PATH], delta_repo[FX_PATH], path[FX_PATH], old_ts[FX_PATH];
    struct buf orig_snap, orig_delta, b;
    struct crypto_privkey *wrong = fx_key();

    uf_setup(&u, "uptrust", 0);
    kiosk_init(&u, &k, "kiosk");
    kiosk_update_ok(&u, &k, &res);

    /* a tampered byte in the new snapshot and in the delta: the delta fails its hash, so does
     * the snapshot it falls back to */
    step_alpha(&u, 1, 5, 101, 110, NULL);
    CHECK_OK(fx_publish(&u.f));
    repo_target_path(&u, "lists/alpha/snapshot-2.pgs", u.l[0].snap_body[2], snap_repo,
                     sizeof(snap_repo));
    CHECK_OK(fx_read(snap_repo, &orig_snap));
    {
        char dir[FX_PATH];
        DIR *dp;
        struct dirent *e;

        delta_repo[0] = 0;
        fx_path(dir, u.f.targets, "lists/alpha");
        dp = opendir(dir);
        while (dp != NULL && (e = readdir(dp)) != NULL) {
            if (strstr(e->d_name, ".delta-1-2.pgd") != NULL) {
                fx_path(delta_repo, dir, e->d_name);
            }
        }
        if (dp != NULL) {
            closedir(dp);
        }
    }
    CHECK(delta_repo[0] != 0);
    CHECK_OK(fx_read(delta_repo, &orig_delta));
    CHECK_OK(fx_read(snap_repo, &b));
    b.data[b.len / 2] ^= 0x01;
    fx_write(snap_repo, b.data, b.len);
    buf_free(&b);
    CHECK_OK(fx_read(delta_repo, &b));
    b.data[b.len - 1] ^= 0x80;
    fx_write(delta_repo, b.data, b.len);
    buf_free(&b);
    EXPECT_REFUSED(&u, &k, "lists/alpha/snapshot-2.pgs", "sha256");
    /* the snapshot alone tampered: the delta carries the update */
    fx_write(delta_repo, orig_delta.data, orig_delta.len);
    {
        struct kiosk k2;

        kiosk_init(&u, &k2, "kiosk2"); /* a fresh kiosk needs the snapshot: refused */
        {
            struct update_result r2;
            char msg[1024];

            CHECK_ERR(kiosk_update_at(&u, &k2, 0, 0, &r2, msg, sizeof(msg)), POSGATE_ERR_REJECTED);
            CHECK_CONTAINS(msg, "snapshot-2.pgs");
        }
    }
    kiosk_update_ok(&u, &k, &res);
    CHECK_INT(res.deltas, 1);
    check_state(&u, &k, 2);
    fx_write(snap_repo, orig_snap.data, orig_snap.len);
    buf_free(&orig_snap);
    buf_free(&orig_delta);

    /* the timestamp signed by a key the root does not know */
    step_alpha(&u, 6, 6, 0, 0, NULL);
    CHECK_OK(tuf_writer_set_signers(u.f.w, "timestamp", &wrong, 1));
    CHECK_OK(fx_publish(&u.f));
    EXPECT_REFUSED(&u, &k, "timestamp", "signature");
    /* the snapshot role signed by the targets key */
    CHECK_OK(tuf_writer_set_signers(u.f.w, "snapshot", &u.f.tgt, 1));
    CHECK_OK(fx_publish(&u.f));
    EXPECT_REFUSED(&u, &k, "snapshot", "signature");
    /* signed properly again: accepted */
    CHECK_OK(tuf_writer_touch(u.f.w, "snapshot"));
    CHECK_OK(fx_publish(&u.f));
    kiosk_update_ok(&u, &k, &res);
    check_state(&u, &k, 2);

    /* a rollback: the carrier serves an older timestamp (validly signed) */
    fx_path(path, u.f.meta, "timestamp.json");
    fx_path(old_ts, u.f.base, "old-timestamp.json");
    fx_copy_file(path, old_ts);
    step_alpha(&u, 7, 7, 0, 0, NULL);
    CHECK_OK(fx_publish(&u.f));
    kiosk_update_ok(&u, &k, &res);
    fx_copy_file(old_ts, path);
    EXPECT_REFUSED(&u, &k, "timestamp version", "older");

    /* an expired timestamp, no --accept-expired */
    CHECK_OK(tuf_writer_set_expires(u.f.w, "timestamp", u.f.now - 60));
    CHECK_OK(fx_publish(&u.f));
    EXPECT_REFUSED(&u, &k, "expired", "--accept-expired");
    /* the same with the kiosk's clock ten days on, and a good timestamp */
    CHECK_OK(fx_publish(&u.f));
    expect_refused_at(&u, &k, 0, u.f.now + 10 * 86400, __LINE__, "expired", "--accept-expired");
    kiosk_update_ok(&u, &k, &res);
    check_state(&u, &k, 2);

    crypto_privkey_free(wrong);
    uf_cleanup(&u);
}

/* ---- list rules ---------------------------------------------------------------------------- */

static void
test_seq_back(void)
{
    struct uf u;
    struct kiosk k;
    struct update_result res;

    uf_setup(&u, "upback", 0);
    kiosk_init(&u, &k, "kiosk");
    step_alpha(&u, 1, 5, 101, 110, NULL);
    CHECK_OK(fx_publish(&u.f));
    kiosk_update_ok(&u, &k, &res);
    check_state(&u, &k, 2);

    /* the publisher (all keys, higher TUF versions) puts alpha's snapshot 1 back */
    CHECK_OK(tuf_writer_remove_target(u.f.w, "targets", "lists/alpha/snapshot-2.pgs"));
    CHECK_OK(tuf_writer_remove_target(u.f.w, "targets", "lists/alpha/delta-1-2.pgd"));
    CHECK_OK(tuf_writer_add_target(u.f.w, "targets", "lists/alpha/snapshot-1.pgs",
                                   u.l[0].snap_body[1], u.l[0].snap_custom[1]));
    CHECK_OK(fx_publish(&u.f));
    EXPECT_REFUSED(&u, &k, "list alpha", "older than the installed seq 2");
    uf_cleanup(&u);
}

static void
test_delta_base(void)
{
    struct uf u;
    struct kiosk k;
    struct update_result res;
    static const struct forge base0 = {.delta_base_forged = 1, .delta_body_base = 0};

    uf_setup(&u, "upbase", 0);
    kiosk_init(&u, &k, "kiosk");
    kiosk_update_ok(&u, &k, &res);
    step_alpha(&u, 1, 5, 101, 110, NULL);
    step_alpha(&u, 6, 8, 111, 115, NULL);
    /* the feed now offers only delta 2 -> 3 for alpha: no chain from 1, and no snapshot */
    CHECK_OK(tuf_writer_remove_target(u.f.w, "targets", "lists/alpha/delta-1-2.pgd"));
    CHECK_OK(tuf_writer_remove_target(u.f.w, "targets", "lists/alpha/snapshot-3.pgs"));
    CHECK_OK(fx_publish(&u.f));
    EXPECT_REFUSED(&u, &k, "base seq 2", "installed seq 1");
    /* with the snapshot back, the chain is not taken and the snapshot is */
    CHECK_OK(tuf_writer_add_target(u.f.w, "targets", "lists/alpha/snapshot-3.pgs",
                                   u.l[0].snap_body[3], u.l[0].snap_custom[3]));
    CHECK_OK(fx_publish(&u.f));
    kiosk_update_ok(&u, &k, &res);
    CHECK_INT(res.snapshots, 1);
    CHECK_INT(res.deltas, 0);
    CHECK_INT(res.fallbacks, 0);
    check_state(&u, &k, 2);

    /* a delta whose body says base 0 while its signed custom says base 3: refused, the
     * snapshot used instead */
    step_alpha(&u, 9, 9, 120, 121, &base0);
    CHECK_OK(fx_publish(&u.f));
    kiosk_update_ok(&u, &k, &res);
    CHECK_INT(res.fallbacks, 1);
    CHECK_INT(res.snapshots, 1);
    CHECK_INT(res.deltas, 0);
    check_state(&u, &k, 2);
    CHECK(!found(&u, &k, 0, 9));
    CHECK(found(&u, &k, 0, 121));
    uf_cleanup(&u);
}

static void
test_digest_mismatch(void)
{
    struct uf u;
    struct kiosk k;
    struct update_result res;
    static const struct forge bad_delta = {.delta_digest = BAD_DIGEST};
    static const struct forge bad_both = {.delta_digest = BAD_DIGEST, .snap_digest = BAD_DIGEST};

    uf_setup(&u, "updig", 0);
    kiosk_init(&u, &k, "kiosk");
    kiosk_update_ok(&u, &k, &res);

    /* the signed digest of the delta is wrong: the snapshot is taken instead */
    step_alpha(&u, 1, 5, 101, 110, &bad_delta);
    CHECK_OK(fx_publish(&u.f));
    kiosk_update_ok(&u, &k, &res);
    CHECK_INT(res.fallbacks, 1);
    CHECK_INT(res.snapshots, 1);
    CHECK_INT(res.deltas, 0);
    check_state(&u, &k, 2);

    /* both wrong: refused */
    step_alpha(&u, 6, 8, 111, 115, &bad_both);
    CHECK_OK(fx_publish(&u.f));
    EXPECT_REFUSED(&u, &k, "snapshot-3.pgs", "signed digest is 0123456789abcdef");
    uf_cleanup(&u);
}

static void
test_delegation(void)
{
    struct uf u;
    struct kiosk k;
    struct update_result res;
    static const struct forge top = {.role = "targets", .no_delta = 1};

    uf_setup(&u, "updeleg", 1);
    kiosk_init(&u, &k, "kiosk");
    kiosk_update_ok(&u, &k, &res);
    CHECK_INT(res.snapshots, 2);
    check_state(&u, &k, 2);

    /* alpha's new version signed by the operator's targets key instead of the authority's */
    step_alpha(&u, 1, 5, 101, 110, NULL);
    CHECK_OK(tuf_writer_set_signers(u.f.w, "alpha-auth", &u.f.tgt, 1));
    CHECK_OK(fx_publish(&u.f));
    EXPECT_REFUSED(&u, &k, "alpha-auth", NULL);
    /* signed by the authority: accepted, by delta */
    CHECK_OK(tuf_writer_touch(u.f.w, "alpha-auth"));
    CHECK_OK(fx_publish(&u.f));
    kiosk_update_ok(&u, &k, &res);
    CHECK_INT(res.deltas, 1);
    check_state(&u, &k, 2);

    /* the operator lists a snapshot of alpha in the top-level targets */
    step_alpha(&u, 6, 8, 111, 115, &top);
    CHECK_OK(fx_publish(&u.f));
    EXPECT_REFUSED(&u, &k, "delegated to the role \"alpha-auth\"", "lists/alpha/snapshot-3.pgs");

    /* the operator removes the delegation and signs alpha itself: the kiosk's pin refuses it */
    CHECK_OK(tuf_writer_undelegate(u.f.w, "targets", "alpha-auth"));
    CHECK_OK(fx_publish(&u.f));
    EXPECT_REFUSED(&u, &k, "pinned to its authority's delegation", "removes");

    /* ... or re-points the delegation at a key of its own: refused too */
    {
        const char *pem[1];
        const char *paths[1] = {"lists/alpha/*"};
        struct tuf_writer_delegation d;
        struct crypto_privkey *own = fx_key();

        pem[0] = fx_pub(own);
        memset(&d, 0, sizeof(d));
        d.delegator = "targets";
        d.name = "alpha-auth";
        d.paths = paths;
        d.path_count = 1;
        d.keys = (struct tuf_writer_role_keys){pem, 1, 1};
        d.terminating = 1;
        CHECK_OK(tuf_writer_delegate(u.f.w, &d));
        u.f.keyring[u.f.nkeyring - 1] = own; /* the slot of the authority's key */
        CHECK_OK(tuf_writer_touch(u.f.w, "alpha-auth"));
        CHECK_OK(fx_publish(&u.f));
        EXPECT_REFUSED(&u, &k, "pinned to its authority's delegation", "changes");
        u.f.keyring[u.f.nkeyring - 1] = u.auth;
        crypto_privkey_free(own);
    }
    uf_cleanup(&u);
}

/* The operator edits config/feed.json for a delegated list without its authority: each edit is
 * refused naming the list and the field; the authority's own change is accepted. */
static void
test_delegated_config(void)
{
    struct uf u;
    struct kiosk k;
    struct update_result res;
    static const struct cfg_edit juris = {"[\"HK\"]", NULL, 0, 1};
    static const struct cfg_edit scope = {NULL, "[\"rail\"]", 0, 1};
    static const struct cfg_edit drop = {NULL, NULL, 1, 1};
    static const struct cfg_edit signed_juris = {"[\"CN\"]", NULL, 0, 0};

    uf_setup(&u, "updelegcfg", 1);
    kiosk_init(&u, &k, "kiosk");
    kiosk_update_ok(&u, &k, &res);
    check_state(&u, &k, 2);

    set_config_edit(&u, NLISTS, &juris);
    CHECK_OK(fx_publish(&u.f));
    EXPECT_REFUSED(&u, &k, "list alpha: config/feed.json differs",
                   "lists[0].jurisdictions is [\"HK\"], the authority signed []");
    set_config_edit(&u, NLISTS, &scope);
    CHECK_OK(fx_publish(&u.f));
    EXPECT_REFUSED(&u, &k, "list alpha", "reasons[0].scope is [\"rail\"], the authority signed");
    set_config_edit(&u, NLISTS, &drop);
    CHECK_OK(fx_publish(&u.f));
    EXPECT_REFUSED(&u, &k, "list alpha is pinned", "config/feed.json drops it");

    /* the operator lists its own lists/alpha/config.json in the top-level targets: not read */
    {
        char path[FX_PATH];
        struct buf lc = BUF_INIT(LIST_CONFIG_MAX_BYTES);
        const uint16_t used[1] = {0};
        char msg[LIST_CONFIG_ERRMSG];
        static const char feed[] =
            "{\"feed_id\":\"f\",\"services\":[\"air\",\"rail\"],\"lists\":[{\"id\":\"alpha\","
            "\"authority\":\"Authority alpha\",\"jurisdictions\":[\"HK\"],\"stale_after\":\"7d\","
            "\"stale_policy\":\"refer\"}],\"reasons\":[{\"id\":\"r1\",\"authority\":\"A\","
            "\"legal_basis\":\"Act 1\",\"contest\":\"Write to A\",\"scope\":[\"air\"]}]}";

        set_config_edit(&u, NLISTS, &juris);
        CHECK_OK(list_config_build(feed, strlen(feed), "alpha", used, 1, &lc, msg, sizeof(msg)));
        body_path(&u, "forged-config.json", path);
        fx_write(path, lc.data, lc.len);
        buf_free(&lc);
        CHECK_OK(tuf_writer_add_target(u.f.w, "targets", "lists/alpha/config.json", path,
                                       "{\"list\":\"alpha\",\"type\":\"list-config\"}"));
        CHECK_OK(fx_publish(&u.f));
        EXPECT_REFUSED(&u, &k, "list alpha: config/feed.json differs", "jurisdictions");
        CHECK_OK(tuf_writer_remove_target(u.f.w, "targets", "lists/alpha/config.json"));
    }

    /* ... and an operator-signed version of alpha's role with its edited config: refused by the
     * delegation's keys */
    set_config_edit(&u, NLISTS, &signed_juris);
    CHECK_OK(tuf_writer_set_signers(u.f.w, u.l[0].role, &u.f.tgt, 1));
    CHECK_OK(fx_publish(&u.f));
    EXPECT_REFUSED(&u, &k, "alpha-auth", NULL);

    /* the authority itself signs the change: accepted */
    CHECK_OK(tuf_writer_set_signers(u.f.w, u.l[0].role, &u.auth, 1));
    CHECK_OK(fx_publish(&u.f));
    kiosk_update_ok(&u, &k, &res);
    check_state(&u, &k, 2);

    /* the authority's role no longer lists the list's configuration: refused */
    CHECK_OK(tuf_writer_remove_target(u.f.w, u.l[0].role, "lists/alpha/config.json"));
    CHECK_OK(fx_publish(&u.f));
    EXPECT_REFUSED(&u, &k, "list alpha is pinned", "that role lists no lists/alpha/config.json");
    uf_cleanup(&u);
}

static void
test_expired_accepted(void)
{
    struct uf u;
    struct kiosk k;
    struct update_result res;
    struct store *st = NULL;
    struct store_meta meta;
    char msg[1024], path[FX_PATH], old_ts[FX_PATH];
    int64_t later;

    uf_setup(&u, "upexp", 0);
    later = u.f.now + 10 * 86400; /* timestamp (1 d) and snapshot (7 d) expired */
    kiosk_init(&u, &k, "kiosk");
    kiosk_update_ok(&u, &k, &res);
    fx_path(path, u.f.meta, "timestamp.json");
    fx_path(old_ts, u.f.base, "old-timestamp.json");
    fx_copy_file(path, old_ts);
    step_alpha(&u, 1, 5, 101, 110, NULL);
    CHECK_OK(fx_publish(&u.f));

    /* without the flag: refused */
    expect_refused_at(&u, &k, 0, later, __LINE__, "expired", "--accept-expired");
    /* with it: newer than installed, accepted; the lists count as of their issue times */
    CHECK_OK(kiosk_update_at(&u, &k, 1, later, &res, msg, sizeof(msg)));
    CHECK_INT(res.expired_accepted, 1);
    CHECK_INT(res.deltas, 1);
    check_state(&u, &k, 2);
    CHECK_OK(store_open(k.dd.store, 0, &st, msg, sizeof(msg)));
    if (st != NULL) {
        CHECK_OK(store_get_meta(st, &meta));
        CHECK_INT(meta.issued_at,
                  u.l[0].issued_at < u.l[1].issued_at ? u.l[0].issued_at : u.l[1].issued_at);
        store_close(st);
    }

    /* the same version again: not newer, refused */
    expect_refused_at(&u, &k, 1, later, __LINE__, "not newer than the installed version", NULL);
    /* an older timestamp: refused */
    fx_copy_file(old_ts, path);
    expect_refused_at(&u, &k, 1, later, __LINE__, "timestamp version", "older");
    uf_cleanup(&u);
}

static void
test_body_mismatch(void)
{
    struct uf u;
    struct kiosk k;
    struct update_result res;
    static const struct forge other_list = {.no_delta = 1, .body_list = "beta"};
    static const struct forge other_seq = {.no_delta = 1, .snap_body_seq = 9};
    static const struct forge custom_list = {.no_delta = 1, .custom_list = "beta"};
    static const struct forge delta_list = {.delta_body_list = "beta"};

    uf_setup(&u, "upbody", 0);
    kiosk_init(&u, &k, "kiosk");
    kiosk_update_ok(&u, &k, &res);

    /* alpha's snapshot 2 whose body says list beta */
    step_alpha(&u, 1, 5, 101, 110, &other_list);
    CHECK_OK(fx_publish(&u.f));
    EXPECT_REFUSED(&u, &k, "body says list beta seq 2", "signed metadata says list alpha seq 2");

    /* alpha's snapshot 3 whose body says seq 9 */
    step_alpha(&u, 6, 6, 0, 0, &other_seq);
    CHECK_OK(fx_publish(&u.f));
    EXPECT_REFUSED(&u, &k, "body says list alpha seq 9", "signed metadata says list alpha seq 3");

    /* a target under lists/alpha/ whose custom metadata names beta */
    step_alpha(&u, 7, 7, 0, 0, &custom_list);
    CHECK_OK(fx_publish(&u.f));
    EXPECT_REFUSED(&u, &k, "custom \"list\" is \"beta\"", "expected \"alpha\"");

    /* an honest snapshot 5: installed */
    step_alpha(&u, 8, 8, 0, 0, NULL);
    CHECK_OK(fx_publish(&u.f));
    kiosk_update_ok(&u, &k, &res);
    CHECK_INT(res.snapshots, 1);
    check_state(&u, &k, 2);

    /* a delta whose body names another list: refused, the snapshot taken */
    step_alpha(&u, 10, 10, 0, 0, &delta_list);
    CHECK_OK(fx_publish(&u.f));
    kiosk_update_ok(&u, &k, &res);
    CHECK_INT(res.fallbacks, 1);
    CHECK_INT(res.snapshots, 1);
    check_state(&u, &k, 2);
    uf_cleanup(&u);
}

/* No store yet: NOTFOUND, telling to run init. */
/* The list key: a kiosk holding another key refuses the feed, naming both fingerprints (with
 * it nothing would match and everyone would be allowed); a feed config without the value (an
 * older publisher) is refused with a request to republish; either way nothing changes. */
static void
test_list_key(void)
{
    struct uf u;
    struct kiosk k, w;
    struct update_result res;
    uint8_t other[LIST_KEY_LEN];
    char mine[LIST_KEY_CHECK_HEX + 1], theirs[LIST_KEY_CHECK_HEX + 1], msg[1024];
    struct store *st = NULL;
    struct store_meta meta;

    uf_setup(&u, "uplistkey", 0);
    kiosk_init(&u, &k, "kiosk");
    kiosk_init(&u, &w, "kiosk-w");
    for (size_t i = 0; i < sizeof(other); i++) {
        other[i] = (uint8_t)(u.list_key[i] ^ 0x5a);
    }
    CHECK_OK(plat_write_atomic(w.dd.list_key, other, sizeof(other), 0600));
    list_key_check(&u.hk, mine);
    CHECK_OK(list_key_check_raw(other, sizeof(other), theirs));
    CHECK_ERR(kiosk_update_at(&u, &w, 0, 0, &res, msg, sizeof(msg)), POSGATE_ERR_REJECTED);
    CHECK_CONTAINS(msg, "list key mismatch");
    CHECK_CONTAINS(msg, mine);
    CHECK_CONTAINS(msg, theirs);
    CHECK_OK(store_open(w.dd.store, 0, &st, msg, sizeof(msg)));
    CHECK_OK(store_get_meta(st, &meta));
    CHECK_INT(meta.feed_version, 0); /* nothing installed */
    store_close(st);

    kiosk_update_ok(&u, &k, &res);
    check_state(&u, &k, 2);
    u.no_key_check = 1;
    set_config(&u, NLISTS);
    step_alpha(&u, 1, 5, 0, 0, NULL);
    CHECK_OK(fx_publish(&u.f));
    EXPECT_REFUSED(&u, &k, "no list key fingerprint", "republish");
    u.no_key_check = 0;
    set_config(&u, NLISTS);
    CHECK_OK(fx_publish(&u.f));
    kiosk_update_ok(&u, &k, &res);
    check_state(&u, &k, 2);
    uf_cleanup(&u);
}

static void
test_no_store(void)
{
    struct uf u;
    struct kiosk k;
    struct update_result res;
    char msg[1024];

    uf_setup(&u, "upnone", 0);
    fx_path(k.data, u.f.base, "nothing");
    CHECK_OK(datadir_init(&k.dd, k.data));
    CHECK_ERR(kiosk_update_at(&u, &k, 0, 0, &res, msg, sizeof(msg)), POSGATE_ERR_NOTFOUND);
    CHECK_CONTAINS(msg, "posgate init");
    uf_cleanup(&u);
}

int
main(void)
{
    plat_log_set_level(PLAT_LOG_ERROR);
    test_good_paths();
    test_trust_refusals();
    test_seq_back();
    test_delta_base();
    test_digest_mismatch();
    test_delegation();
    test_delegated_config();
    test_expired_accepted();
    test_body_mismatch();
    test_no_store();
    test_list_key();
    fx_pub_free_all();
    return test_summary("update");
}
