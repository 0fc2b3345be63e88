/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Tests of the TUF client (sync/tuf/tuf_client*.c) and the carriers (carrier_dir.c, carrier_http.c).
 * Repositories are built here with freshly generated ECDSA keys (crypto_privkey_sign over
 * json_canon_encode), so the tests do not depend on the writer. Safety cases first, then the
 * good paths (fresh install, update, root rotation, delegations, hash bins) and the attacks of
 * the TUF threat model, each refused with a message naming expected and found values and with
 * the trusted directory byte-for-byte unchanged. The HTTP carrier runs against a small server
 * on 127.0.0.1 in a thread of this process.
 */
#define _POSIX_C_SOURCE 200809L
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "buf.h"
#include "carrier.h"
#include "crypto.h"
#include "json_canon.h"
#include "plat_clock.h"
#include "plat_file.h"
#include "plat_mem.h"
#include "posgate_err.h"
#include "test.h"
#include "tuf_client.h"

#define NOW  ((int64_t)1893456000) /* 2030-01-01T00:00:00Z */
#define DAY  ((int64_t)86400)
#define PCAP 1024
#define MAXF 32

/* ---- keys and signing ---- */

struct key {
    struct crypto_privkey *k;
    char id[2 * CRYPTO_SHA256_LEN + 1];
    char *pem;
};

static void
key_new(struct key *k)
{
    struct buf pem = BUF_INIT(CRYPTO_PEM_MAX);
    uint8_t h[CRYPTO_SHA256_LEN];

    memset(k, 0, sizeof(*k));
    CHECK_OK(crypto_privkey_generate(&k->k));
    CHECK_OK(crypto_privkey_public_pem(k->k, &pem));
    k->pem = plat_strdup(buf_cstr(&pem));
    crypto_sha256(pem.data, pem.len, h);
    crypto_hex(h, sizeof(h), k->id);
    buf_free(&pem);
}

static void
key_free(struct key *k)
{
    crypto_privkey_free(k->k);
    plat_free(k->pem);
    memset(k, 0, sizeof(*k));
}

static cJSON *
key_json(const struct key *k)
{
    cJSON *o = cJSON_CreateObject(), *kv = cJSON_CreateObject();

    cJSON_AddStringToObject(o, "keytype", "ecdsa");
    cJSON_AddStringToObject(o, "scheme", "ecdsa-sha2-nistp256");
    cJSON_AddStringToObject(kv, "public", k->pem);
    cJSON_AddItemToObject(o, "keyval", kv);
    return o;
}

static void
time_str(int64_t t, char *out, size_t cap)
{
    plat_time_format(t, out, cap);
}

static cJSON *
base_signed(const char *type, int version, int64_t expires)
{
    cJSON *s = cJSON_CreateObject();
    char e[32];

    time_str(expires, e, sizeof(e));
    cJSON_AddStringToObject(s, "_type", type);
    cJSON_AddStringToObject(s, "spec_version", "1.0.31");
    cJSON_AddNumberToObject(s, "version", version);
    cJSON_AddStringToObject(s, "expires", e);
    return s;
}

static cJSON *
role_json(struct key *const *keys, size_t n, int threshold)
{
    cJSON *r = cJSON_CreateObject(), *ids = cJSON_CreateArray();

    for (size_t i = 0; i < n; i++) {
        cJSON_AddItemToArray(ids, cJSON_CreateString(keys[i]->id));
    }
    cJSON_AddItemToObject(r, "keyids", ids);
    cJSON_AddNumberToObject(r, "threshold", threshold);
    return r;
}

/* Signs s (consumed) with keys and writes the envelope to path; returns the bytes in out when
 * out is not NULL (for lengths and hashes). */
static void
write_signed(const char *path, cJSON *s, struct key *const *keys, size_t n, struct buf *out)
{
    struct buf canon = BUF_INIT(1u << 24), sig = BUF_INIT(1024);
    cJSON *env = cJSON_CreateObject(), *sigs = cJSON_CreateArray();
    char *text;

    CHECK_OK(json_canon_encode(s, &canon));
    for (size_t i = 0; i < n; i++) {
        cJSON *o = cJSON_CreateObject();
        char hex[300];

        buf_reset(&sig);
        CHECK_OK(crypto_privkey_sign(keys[i]->k, canon.data, canon.len, &sig));
        crypto_hex(sig.data, sig.len, hex);
        cJSON_AddStringToObject(o, "keyid", keys[i]->id);
        cJSON_AddStringToObject(o, "sig", hex);
        cJSON_AddItemToArray(sigs, o);
    }
    cJSON_AddItemToObject(env, "signatures", sigs);
    cJSON_AddItemToObject(env, "signed", s);
    text = cJSON_Print(env); /* pretty: the stored bytes differ from the canonical ones */
    CHECK_OK(plat_write_atomic(path, text, strlen(text), 0644));
    if (out != NULL) {
        buf_reset(out);
        CHECK_OK(buf_append(out, text, strlen(text)));
    }
    cJSON_free(text);
    cJSON_Delete(env);
    buf_free(&canon);
    buf_free(&sig);
}

/* ---- a repository under construction ---- */

struct repo {
    char base[PCAP], meta[PCAP], tdir[PCAP], trusted[PCAP], dl[PCAP];
    struct key rk[3], ts, snap, tgt, deleg, ts2;
    struct key *root_keys[3];
    size_t nroot;
    int root_threshold;
    struct key *ts_key, *snap_key, *tgt_key;
    int consistent;
    int root_v, ts_v, snap_v, tgt_v;
    cJSON *targets;     /* the "targets" object of the top-level targets role */
    cJSON *delegations; /* of the top-level targets role, NULL when none */
    cJSON *snap_meta;   /* "meta" of the next snapshot */
    int64_t expires;
};

static void
rm_rf(const char *path)
{
    DIR *d = opendir(path);
    struct dirent *e;

    if (d == NULL) {
        unlink(path);
        return;
    }
    while ((e = readdir(d)) != NULL) {
        char p[PCAP * 2];

        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) {
            continue;
        }
        snprintf(p, sizeof(p), "%s/%s", path, e->d_name);
        rm_rf(p);
    }
    closedir(d);
    rmdir(path);
}

static void
path_of(char *out, const char *dir, const char *name)
{
    int n = snprintf(out, PCAP, "%s/%s", dir, name);

    CHECK(n > 0 && n < PCAP);
}

static void
write_root(struct repo *r, int version, struct key *const *signers, size_t nsigners)
{
    cJSON *s = base_signed("root", version, r->expires), *keys = cJSON_CreateObject();
    cJSON *roles = cJSON_CreateObject();
    struct key *all[8];
    size_t nall = 0;
    char name[64], path[PCAP];

    cJSON_AddBoolToObject(s, "consistent_snapshot", r->consistent);
    for (size_t i = 0; i < r->nroot; i++) {
        all[nall++] = r->root_keys[i];
    }
    all[nall++] = r->ts_key;
    all[nall++] = r->snap_key;
    all[nall++] = r->tgt_key;
    for (size_t i = 0; i < nall; i++) {
        if (cJSON_GetObjectItem(keys, all[i]->id) == NULL) {
            cJSON_AddItemToObject(keys, all[i]->id, key_json(all[i]));
        }
    }
    cJSON_AddItemToObject(s, "keys", keys);
    cJSON_AddItemToObject(roles, "root", role_json(r->root_keys, r->nroot, r->root_threshold));
    cJSON_AddItemToObject(roles, "timestamp", role_json(&r->ts_key, 1, 1));
    cJSON_AddItemToObject(roles, "snapshot", role_json(&r->snap_key, 1, 1));
    cJSON_AddItemToObject(roles, "targets", role_json(&r->tgt_key, 1, 1));
    cJSON_AddItemToObject(s, "roles", roles);
    snprintf(name, sizeof(name), "%d.root.json", version);
    path_of(path, r->meta, name);
    write_signed(path, s, signers, nsigners, NULL);
    r->root_v = version;
}

/* Remote name of a role's file (escaped as the client escapes it). */
static void
meta_name(const struct repo *r, const char *role, int version, char *out, size_t cap)
{
    char esc[PCAP];
    size_t o = 0;

    for (const char *p = role; *p != 0 && o + 4 < sizeof(esc); p++) {
        if ((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-' || *p == '.' ||
            *p == '_') {
            esc[o++] = *p;
        } else {
            o += (size_t)snprintf(esc + o, sizeof(esc) - o, "%%%02X", (unsigned char)*p);
        }
    }
    esc[o] = 0;
    if (r->consistent) {
        CHECK((size_t)snprintf(out, cap, "%d.%s.json", version, esc) < cap);
    } else {
        CHECK((size_t)snprintf(out, cap, "%s.json", esc) < cap);
    }
}

/* Writes a targets role (top-level or delegated) and lists it in the next snapshot. targets
 * and delegations are duplicated, not consumed. */
static void
write_targets_role(struct repo *r, const char *role, int version, const cJSON *targets,
                   const cJSON *delegations, struct key *const *signers, size_t n)
{
    cJSON *s = base_signed("targets", version, r->expires), *mf = cJSON_CreateObject();
    char name[PCAP], path[PCAP], snapname[PCAP];

    cJSON_AddItemToObject(s, "targets", cJSON_Duplicate(targets, 1));
    if (delegations != NULL) {
        cJSON_AddItemToObject(s, "delegations", cJSON_Duplicate(delegations, 1));
    }
    meta_name(r, role, version, name, sizeof(name));
    path_of(path, r->meta, name);
    write_signed(path, s, signers, n, NULL);
    cJSON_AddNumberToObject(mf, "version", version);
    snprintf(snapname, sizeof(snapname), "%s.json", role);
    cJSON_DeleteItemFromObject(r->snap_meta, snapname);
    cJSON_AddItemToObject(r->snap_meta, snapname, mf);
}

static void
write_snapshot(struct repo *r, int version, struct buf *raw)
{
    cJSON *s = base_signed("snapshot", version, r->expires);
    char name[PCAP], path[PCAP];

    cJSON_AddItemToObject(s, "meta", cJSON_Duplicate(r->snap_meta, 1));
    meta_name(r, "snapshot", version, name, sizeof(name));
    path_of(path, r->meta, name);
    write_signed(path, s, &r->snap_key, 1, raw);
    r->snap_v = version;
}

/* timestamp.json listing snapshot snap_version, with length and sha256 of snap_raw when given. */
static void
write_timestamp(struct repo *r, int version, int snap_version, const struct buf *snap_raw,
                int64_t expires, struct key *signer)
{
    cJSON *s = base_signed("timestamp", version, expires), *meta = cJSON_CreateObject();
    cJSON *mf = cJSON_CreateObject();
    char path[PCAP];

    cJSON_AddNumberToObject(mf, "version", snap_version);
    if (snap_raw != NULL) {
        uint8_t h[CRYPTO_SHA256_LEN];
        char hex[2 * CRYPTO_SHA256_LEN + 1];
        cJSON *hs = cJSON_CreateObject();

        crypto_sha256(snap_raw->data, snap_raw->len, h);
        crypto_hex(h, sizeof(h), hex);
        cJSON_AddStringToObject(hs, "sha256", hex);
        cJSON_AddNumberToObject(mf, "length", (double)snap_raw->len);
        cJSON_AddItemToObject(mf, "hashes", hs);
    }
    cJSON_AddItemToObject(meta, "snapshot.json", mf);
    cJSON_AddItemToObject(s, "meta", meta);
    path_of(path, r->meta, "timestamp.json");
    write_signed(path, s, &signer, 1, NULL);
    r->ts_v = version;
}

/* Publishes targets (next version), snapshot and timestamp (next versions). */
static void
publish(struct repo *r)
{
    struct buf raw = BUF_INIT(1u << 24);

    write_targets_role(r, "targets", ++r->tgt_v, r->targets, r->delegations, &r->tgt_key, 1);
    write_snapshot(r, r->snap_v + 1, &raw);
    write_timestamp(r, r->ts_v + 1, r->snap_v, &raw, r->expires, r->ts_key);
    buf_free(&raw);
}

/* A target entry for data (sha256 and sha512), also stored in the targets directory under its
 * consistent and its plain name. */
static cJSON *
add_target(struct repo *r, cJSON *targets, const char *name, const char *data,
           const char *custom_json)
{
    cJSON *t = cJSON_CreateObject(), *hs = cJSON_CreateObject();
    uint8_t h256[CRYPTO_SHA256_LEN], h512[CRYPTO_SHA512_LEN];
    char hex[2 * CRYPTO_SHA512_LEN + 1], path[PCAP * 2], dir[PCAP];
    const char *slash = strrchr(name, '/');
    size_t n = strlen(data);

    crypto_sha256(data, n, h256);
    crypto_sha512(data, n, h512);
    crypto_hex(h256, sizeof(h256), hex);
    cJSON_AddStringToObject(hs, "sha256", hex);
    n = (size_t)snprintf(dir, sizeof(dir), "%s/%.*s", r->tdir, slash ? (int)(slash - name) : 0,
                         name);
    CHECK(n < sizeof(dir));
    n = strlen(data);
    CHECK_OK(plat_mkdir_p(dir, 0755));
    snprintf(path, sizeof(path), "%s/%s.%s", dir, hex, slash ? slash + 1 : name);
    CHECK_OK(plat_write_atomic(path, data, n, 0644));
    snprintf(path, sizeof(path), "%s/%s", r->tdir, name);
    CHECK_OK(plat_write_atomic(path, data, n, 0644));
    crypto_hex(h512, sizeof(h512), hex);
    cJSON_AddStringToObject(hs, "sha512", hex);
    cJSON_AddNumberToObject(t, "length", (double)n);
    cJSON_AddItemToObject(t, "hashes", hs);
    if (custom_json != NULL) {
        cJSON_AddItemToObject(t, "custom", cJSON_Parse(custom_json));
    }
    cJSON_DeleteItemFromObject(targets, name);
    cJSON_AddItemToObject(targets, name, t);
    return t;
}

static void
repo_init(struct repo *r, const char *tag)
{
    char tmpl[PCAP];
    char path[PCAP];
    struct buf raw = BUF_INIT(1u << 20);
    char msg[512];

    memset(r, 0, sizeof(*r));
    snprintf(tmpl, sizeof(tmpl), "/tmp/posgate-tufc-%s-XXXXXX", tag);
    CHECK(mkdtemp(tmpl) != NULL);
    snprintf(r->base, sizeof(r->base), "%s", tmpl);
    path_of(r->meta, r->base, "metadata");
    path_of(r->tdir, r->base, "targets");
    path_of(r->trusted, r->base, "trusted");
    path_of(r->dl, r->base, "dl");
    CHECK_OK(plat_mkdir_p(r->meta, 0755));
    CHECK_OK(plat_mkdir_p(r->tdir, 0755));
    CHECK_OK(plat_mkdir_p(r->dl, 0755));
    for (int i = 0; i < 3; i++) {
        key_new(&r->rk[i]);
    }
    key_new(&r->ts);
    key_new(&r->snap);
    key_new(&r->tgt);
    key_new(&r->deleg);
    key_new(&r->ts2);
    r->root_keys[0] = &r->rk[0];
    r->nroot = 1;
    r->root_threshold = 1;
    r->ts_key = &r->ts;
    r->snap_key = &r->snap;
    r->tgt_key = &r->tgt;
    r->consistent = 1;
    r->expires = NOW + 30 * DAY;
    r->targets = cJSON_CreateObject();
    r->snap_meta = cJSON_CreateObject();
    write_root(r, 1, r->root_keys, 1);
    add_target(r, r->targets, "config/feed.json", "{\"lists\":[]}",
               "{\"kind\":\"config\",\"seq\":1}");
    publish(r);
    /* Install the trusted root as an operator would. */
    path_of(path, r->meta, "1.root.json");
    CHECK_OK(plat_read_file(path, &raw));
    CHECK_OK(tuf_client_bootstrap(r->trusted, raw.data, raw.len, msg, sizeof(msg)));
    buf_free(&raw);
}

static void
repo_free(struct repo *r)
{
    for (int i = 0; i < 3; i++) {
        key_free(&r->rk[i]);
    }
    key_free(&r->ts);
    key_free(&r->snap);
    key_free(&r->tgt);
    key_free(&r->deleg);
    key_free(&r->ts2);
    cJSON_Delete(r->targets);
    cJSON_Delete(r->delegations);
    cJSON_Delete(r->snap_meta);
    rm_rf(r->base);
}

/* ---- running the client ---- */

struct run {
    struct carrier *mc, *tc;
    struct tuf_client *c;
};

static enum posgate_err
client_open(struct repo *r, struct run *x, const struct tuf_client_options *extra)
{
    struct tuf_client_options opt;

    memset(x, 0, sizeof(*x));
    if (extra != NULL) {
        opt = *extra;
    } else {
        memset(&opt, 0, sizeof(opt));
    }
    CHECK_OK(carrier_dir_new(r->meta, &x->mc));
    CHECK_OK(carrier_dir_new(r->tdir, &x->tc));
    opt.metadata_dir = r->trusted;
    opt.metadata = x->mc;
    opt.targets = x->tc;
    if (opt.now == 0) {
        opt.now = NOW;
    }
    return tuf_client_new(&opt, &x->c);
}

static void
client_close(struct run *x)
{
    tuf_client_free(x->c);
    carrier_free(x->mc);
    carrier_free(x->tc);
    memset(x, 0, sizeof(*x));
}

/* One refresh on a fresh client; the message of a failure is copied to msg. */
static enum posgate_err
refresh_once(struct repo *r, const struct tuf_client_options *extra, char *msg, size_t cap)
{
    struct run x;
    enum posgate_err err = client_open(r, &x, extra);

    if (err == POSGATE_OK) {
        err = tuf_client_refresh(x.c);
    }
    snprintf(msg, cap, "%s", tuf_client_errmsg(x.c));
    client_close(&x);
    return err;
}

/* A picture of the trusted directory: names and contents. */
struct picture {
    size_t n;
    char names[MAXF][256];
    struct buf data[MAXF];
};

static void
take_picture(const char *dir, struct picture *p)
{
    DIR *d = opendir(dir);
    struct dirent *e;

    memset(p, 0, sizeof(*p));
    if (d == NULL) {
        return;
    }
    while ((e = readdir(d)) != NULL && p->n < MAXF) {
        char path[PCAP * 2];

        if (e->d_name[0] == '.') {
            continue;
        }
        snprintf(p->names[p->n], sizeof(p->names[p->n]), "%s", e->d_name);
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        buf_init(&p->data[p->n], 1u << 24);
        CHECK_OK(plat_read_file(path, &p->data[p->n]));
        p->n++;
    }
    closedir(d);
}

static void
free_picture(struct picture *p)
{
    for (size_t i = 0; i < p->n; i++) {
        buf_free(&p->data[i]);
    }
}

/* 1 when the directory holds exactly the pictured files with the pictured bytes. */
static int
unchanged(const char *dir, const struct picture *before)
{
    struct picture now;
    int same;

    take_picture(dir, &now);
    same = now.n == before->n;
    for (size_t i = 0; same && i < now.n; i++) {
        int found = 0;

        for (size_t j = 0; j < before->n; j++) {
            if (strcmp(now.names[i], before->names[j]) == 0) {
                found = now.data[i].len == before->data[j].len &&
                        memcmp(now.data[i].data, before->data[j].data, now.data[i].len) == 0;
            }
        }
        same = found;
    }
    free_picture(&now);
    return same;
}

static int64_t
trusted_version(struct repo *r, const char *file)
{
    struct buf raw = BUF_INIT(1u << 24);
    char path[PCAP];
    int64_t v = -1;
    cJSON *j;

    path_of(path, r->trusted, file);
    if (plat_read_file(path, &raw) != POSGATE_OK) {
        buf_free(&raw);
        return -1;
    }
    j = cJSON_Parse(buf_cstr(&raw));
    if (j != NULL) {
        const cJSON *ver = cJSON_GetObjectItem(cJSON_GetObjectItem(j, "signed"), "version");

        v = cJSON_IsNumber(ver) ? (int64_t)ver->valuedouble : -1;
    }
    cJSON_Delete(j);
    buf_free(&raw);
    return v;
}

/* Runs one refresh expected to fail with err, message containing needle, nothing changed. */
#define expect_attack_refused(r, err, needle) expect_refused_at(r, err, needle, __LINE__)

static void
expect_refused_at(struct repo *r, enum posgate_err err, const char *needle, int line)
{
    struct picture before;
    char msg[TUF_CLIENT_ERRMSG_MAX];

    take_picture(r->trusted, &before);
    CHECK_ERR(refresh_once(r, NULL, msg, sizeof(msg)), err);
    CHECK_CONTAINS(msg, needle);
    if (!unchanged(r->trusted, &before)) {
        CHECK_FAIL("the trusted directory changed");
        fprintf(stderr, "  (attack refused at line %d: %s)\n", line, msg);
    }
    free_picture(&before);
}

/* ---- safety cases ---- */

static void
test_safety(void)
{
    struct tuf_client_options opt;
    struct tuf_client *c = (struct tuf_client *)1;
    struct tuf_target_info info;
    struct repo r;
    struct run x;
    char msg[512];
    enum posgate_err (*fn)(void *, const struct tuf_target_info *) = NULL;

    memset(&opt, 0, sizeof(opt));
    CHECK_ERR(tuf_client_new(NULL, &c), POSGATE_ERR_INVALID);
    CHECK(c == NULL);
    CHECK_ERR(tuf_client_new(&opt, NULL), POSGATE_ERR_INVALID);
    CHECK_ERR(tuf_client_new(&opt, &c), POSGATE_ERR_INVALID); /* no metadata_dir */
    CHECK_ERR(tuf_client_refresh(NULL), POSGATE_ERR_INVALID);
    CHECK_ERR(tuf_client_find_target(NULL, "a", &info), POSGATE_ERR_INVALID);
    CHECK_ERR(tuf_client_download(NULL, &info, "/tmp/x"), POSGATE_ERR_INVALID);
    CHECK_ERR(tuf_client_foreach_target(NULL, "targets", fn, NULL), POSGATE_ERR_INVALID);
    CHECK_ERR(tuf_client_role_info(NULL, "root", NULL, NULL), POSGATE_ERR_INVALID);
    CHECK_STR(tuf_client_errmsg(NULL), "");
    CHECK(!tuf_client_expired(NULL));
    tuf_client_free(NULL);
    CHECK_ERR(tuf_client_bootstrap(NULL, "{}", 2, msg, sizeof(msg)), POSGATE_ERR_INVALID);
    CHECK_ERR(tuf_client_bootstrap("/tmp/posgate-never", "not json", 8, msg, sizeof(msg)),
              POSGATE_ERR_PARSE);
    CHECK_CONTAINS(msg, "initial root: root: malformed JSON");
    CHECK(!plat_exists("/tmp/posgate-never"));

    repo_init(&r, "safety");
    /* A root not signed by its own keys is refused at bootstrap. */
    {
        struct key *signer[1] = {&r.tgt};
        char path[PCAP], dir[PCAP];
        struct buf raw = BUF_INIT(1u << 20);

        write_root(&r, 9, signer, 1);
        path_of(path, r.meta, "9.root.json");
        CHECK_OK(plat_read_file(path, &raw));
        path_of(dir, r.base, "other");
        CHECK_ERR(tuf_client_bootstrap(dir, raw.data, raw.len, msg, sizeof(msg)),
                  POSGATE_ERR_BADSIG);
        CHECK_CONTAINS(msg, "initial root 9 has 0 valid signatures of threshold 1");
        CHECK_OK(plat_unlink(path));
        buf_free(&raw);
        r.root_v = 1;
    }
    /* An empty metadata dir: NOTFOUND, and nothing fetched. */
    {
        struct tuf_client_options o;
        char dir[PCAP];

        memset(&o, 0, sizeof(o));
        path_of(dir, r.base, "empty");
        CHECK_OK(plat_mkdir_p(dir, 0755));
        o.metadata_dir = dir;
        CHECK_ERR(tuf_client_new(&o, &c), POSGATE_ERR_NOTFOUND);
    }
    /* Lookups before a refresh are a state error. */
    CHECK_OK(client_open(&r, &x, NULL));
    CHECK_ERR(tuf_client_find_target(x.c, "config/feed.json", &info), POSGATE_ERR_STATE);
    CHECK_CONTAINS(tuf_client_errmsg(x.c), "no successful refresh");
    CHECK_ERR(tuf_client_find_target(x.c, NULL, &info), POSGATE_ERR_INVALID);
    memset(&info, 0, sizeof(info));
    CHECK_ERR(tuf_client_download(x.c, &info, NULL), POSGATE_ERR_INVALID);
    CHECK_ERR(tuf_client_download(x.c, &info, "/tmp/x"), POSGATE_ERR_STATE);
    CHECK_ERR(tuf_client_role_info(x.c, "timestamp", NULL, NULL), POSGATE_ERR_NOTFOUND);
    client_close(&x);
    repo_free(&r);
}

/* ---- good paths ---- */

struct collect {
    int n;
    char names[8][128];
    char roles[8][128];
};

static enum posgate_err
collect_fn(void *ctx, const struct tuf_target_info *t)
{
    struct collect *c = ctx;

    if (c->n < 8) {
        snprintf(c->names[c->n], sizeof(c->names[c->n]), "%s", t->name);
        snprintf(c->roles[c->n], sizeof(c->roles[c->n]), "%s", t->role);
    }
    c->n++;
    return POSGATE_OK;
}

static void
test_fresh_install_and_update(void)
{
    struct repo r;
    struct run x;
    struct tuf_target_info info;
    struct buf got = BUF_INIT(1u << 20);
    char dest[PCAP], msg[TUF_CLIENT_ERRMSG_MAX];
    int64_t ver = 0, exp = 0;
    struct collect col;

    repo_init(&r, "fresh");
    CHECK_OK(client_open(&r, &x, NULL));
    CHECK_OK(tuf_client_refresh(x.c));
    CHECK_STR(tuf_client_errmsg(x.c), "");
    CHECK_OK(tuf_client_role_info(x.c, "snapshot", &ver, &exp));
    CHECK_INT(ver, 1);
    CHECK_INT(exp, NOW + 30 * DAY);
    CHECK_OK(tuf_client_find_target(x.c, "config/feed.json", &info));
    CHECK_STR(info.role, "targets");
    CHECK_STR(info.custom_json, "{\"kind\":\"config\",\"seq\":1}");
    CHECK_INT(info.length, 12);
    CHECK(info.has_sha256 && info.has_sha512);
    path_of(dest, r.dl, "feed.json");
    CHECK_ERR(tuf_client_verify_file(x.c, &info, dest), POSGATE_ERR_NOTFOUND);
    CHECK_OK(tuf_client_download(x.c, &info, dest));
    CHECK_OK(plat_read_file(dest, &got));
    CHECK_STR(buf_cstr(&got), "{\"lists\":[]}");
    CHECK_OK(tuf_client_verify_file(x.c, &info, dest));
    CHECK_OK(plat_write_atomic(dest, "{\"lists\":[1]}", 13, 0644));
    CHECK_ERR(tuf_client_verify_file(x.c, &info, dest), POSGATE_ERR_BADHASH);
    CHECK_ERR(tuf_client_find_target(x.c, "config/none.json", &info), POSGATE_ERR_NOTFOUND);
    CHECK_CONTAINS(tuf_client_errmsg(x.c), "no trusted role lists target \"config/none.json\"");
    memset(&col, 0, sizeof(col));
    CHECK_OK(tuf_client_foreach_target(x.c, "targets", collect_fn, &col));
    CHECK_INT(col.n, 1);
    client_close(&x);
    CHECK_INT(trusted_version(&r, "timestamp.json"), 1);
    CHECK_INT(trusted_version(&r, "targets.json"), 1);

    /* An update: new targets, snapshot and timestamp. */
    add_target(&r, r.targets, "lists/eu-1/snap-1.bin", "entries", "{\"seq\":1}");
    publish(&r);
    CHECK_OK(refresh_once(&r, NULL, msg, sizeof(msg)));
    CHECK_INT(trusted_version(&r, "timestamp.json"), 2);
    CHECK_INT(trusted_version(&r, "snapshot.json"), 2);
    CHECK_INT(trusted_version(&r, "targets.json"), 2);
    /* Nothing new: a refresh keeps the same versions and succeeds. */
    CHECK_OK(refresh_once(&r, NULL, msg, sizeof(msg)));
    CHECK_INT(trusted_version(&r, "timestamp.json"), 2);

    /* Without consistent snapshots, plain names are fetched. */
    r.consistent = 0;
    write_root(&r, 2, r.root_keys, 1);
    publish(&r);
    CHECK_OK(client_open(&r, &x, NULL));
    CHECK_OK(tuf_client_refresh(x.c));
    CHECK_OK(tuf_client_find_target(x.c, "lists/eu-1/snap-1.bin", &info));
    path_of(dest, r.dl, "snap.bin");
    CHECK_OK(tuf_client_download(x.c, &info, dest));
    CHECK_OK(plat_read_file(dest, &got));
    CHECK_STR(buf_cstr(&got), "entries");
    client_close(&x);
    CHECK_INT(trusted_version(&r, "root.json"), 2);
    buf_free(&got);
    repo_free(&r);
}

static void
test_root_rotation(void)
{
    struct repo r;
    struct tuf_client_options opt;
    char msg[TUF_CLIENT_ERRMSG_MAX];

    repo_init(&r, "rot");
    /* v2: root key 0 -> 1 (signed by both), v3: 1 -> {1,2} threshold 2 (signed by 1 and 2),
     * v4: threshold 2 of {1,2} (signed by both). */
    {
        struct key *s01[2] = {&r.rk[0], &r.rk[1]}, *s12[2] = {&r.rk[1], &r.rk[2]};

        r.root_keys[0] = &r.rk[1];
        write_root(&r, 2, s01, 2);
        r.root_keys[1] = &r.rk[2];
        r.nroot = 2;
        r.root_threshold = 2;
        write_root(&r, 3, s12, 2);
        write_root(&r, 4, s12, 2);
    }
    memset(&opt, 0, sizeof(opt));
    opt.max_root_rotations = 2; /* stops at v3 this time */
    CHECK_OK(refresh_once(&r, &opt, msg, sizeof(msg)));
    CHECK_INT(trusted_version(&r, "root.json"), 3);
    CHECK_OK(refresh_once(&r, NULL, msg, sizeof(msg)));
    CHECK_INT(trusted_version(&r, "root.json"), 4);

    /* Bad rotation: v5 signed only by the new key set. */
    {
        struct key *s0[1] = {&r.rk[0]};

        r.root_keys[0] = &r.rk[0];
        r.nroot = 1;
        r.root_threshold = 1;
        write_root(&r, 5, s0, 1);
        expect_attack_refused(&r, POSGATE_ERR_BADSIG,
                              "root 5 has 0 valid signatures of threshold 2 by the old root's "
                              "(version 4) keys");
    }
    /* Threshold of the old keys met, but not of the new ones. */
    {
        struct key *s12[2] = {&r.rk[1], &r.rk[2]};

        r.root_keys[0] = &r.rk[0];
        r.root_keys[1] = &r.rk[1];
        r.nroot = 2;
        r.root_threshold = 2;
        write_root(&r, 5, s12, 2);
        expect_attack_refused(&r, POSGATE_ERR_BADSIG,
                              "root 5 has 1 valid signature of threshold 2 by its own root keys");
    }
    /* A root file whose version is not the one its name promises. */
    {
        struct key *s12[2] = {&r.rk[1], &r.rk[2]};
        char from[PCAP], to[PCAP];

        r.root_keys[0] = &r.rk[1];
        r.root_keys[1] = &r.rk[2];
        write_root(&r, 6, s12, 2);
        path_of(from, r.meta, "6.root.json");
        path_of(to, r.meta, "5.root.json");
        CHECK(rename(from, to) == 0);
        expect_attack_refused(&r, POSGATE_ERR_REJECTED,
                              "5.root.json holds root version 6, expected 5");
    }
    /* An expired final root is persisted (5.3.10), then refused. */
    {
        struct key *s12[2] = {&r.rk[1], &r.rk[2]};

        r.expires = NOW - DAY;
        write_root(&r, 5, s12, 2);
        r.expires = NOW + 30 * DAY;
        CHECK_ERR(refresh_once(&r, NULL, msg, sizeof(msg)), POSGATE_ERR_EXPIRED);
        CHECK_CONTAINS(msg, "root version 5 expired at");
        CHECK_INT(trusted_version(&r, "root.json"), 5);
    }
    repo_free(&r);
}

static void
test_delegations(void)
{
    struct repo r;
    struct run x;
    struct tuf_target_info info;
    cJSON *dt = cJSON_CreateObject(), *roles, *role, *keys;
    struct collect col;
    char dest[PCAP], path[PCAP];
    struct key *dk[1];

    repo_init(&r, "deleg");
    dk[0] = &r.deleg;
    /* targets delegates "lists/eu-1/<any>" to the authority key (role "lists/eu-1"). */
    r.delegations = cJSON_CreateObject();
    keys = cJSON_CreateObject();
    cJSON_AddItemToObject(keys, r.deleg.id, key_json(&r.deleg));
    cJSON_AddItemToObject(r.delegations, "keys", keys);
    roles = cJSON_CreateArray();
    role = role_json(dk, 1, 1);
    cJSON_AddStringToObject(role, "name", "lists/eu-1");
    cJSON_AddBoolToObject(role, "terminating", 1);
    cJSON_AddItemToObject(role, "paths",
                          cJSON_CreateStringArray((const char *[]){"lists/eu-1/*"}, 1));
    cJSON_AddItemToArray(roles, role);
    cJSON_AddItemToObject(r.delegations, "roles", roles);
    add_target(&r, dt, "lists/eu-1/snap-7.bin", "eu entries", "{\"seq\":7}");
    add_target(&r, dt, "config/evil.json", "not delegated", NULL);
    write_targets_role(&r, "lists/eu-1", 1, dt, NULL, dk, 1);
    publish(&r);

    CHECK_OK(client_open(&r, &x, NULL));
    CHECK_OK(tuf_client_refresh(x.c));
    CHECK_OK(tuf_client_find_target(x.c, "lists/eu-1/snap-7.bin", &info));
    CHECK_STR(info.role, "lists/eu-1");
    CHECK_STR(info.custom_json, "{\"seq\":7}");
    path_of(dest, r.dl, "snap-7.bin");
    CHECK_OK(tuf_client_download(x.c, &info, dest));
    /* The role lists a target outside its delegated paths: not trusted for it. */
    CHECK_ERR(tuf_client_find_target(x.c, "config/evil.json", &info), POSGATE_ERR_NOTFOUND);
    memset(&col, 0, sizeof(col));
    CHECK_OK(tuf_client_foreach_target(x.c, "lists/eu-1", collect_fn, &col));
    CHECK_INT(col.n, 1);
    CHECK_STR(col.names[0], "lists/eu-1/snap-7.bin");
    CHECK_STR(col.roles[0], "lists/eu-1");
    CHECK_ERR(tuf_client_foreach_target(x.c, "lists/none", collect_fn, &col), POSGATE_ERR_NOTFOUND);
    client_close(&x);
    path_of(path, r.trusted, "lists%2Feu-1.json");
    CHECK(plat_exists(path));

    /* The delegated path signed by the delegator (targets key) instead of the delegate. */
    {
        struct key *tk[1] = {&r.tgt};
        struct picture before;
        enum posgate_err err;

        add_target(&r, dt, "lists/eu-1/snap-8.bin", "forged", NULL);
        write_targets_role(&r, "lists/eu-1", 2, dt, NULL, tk, 1);
        publish(&r);
        CHECK_OK(client_open(&r, &x, NULL));
        CHECK_OK(tuf_client_refresh(x.c));
        take_picture(r.trusted, &before);
        err = tuf_client_find_target(x.c, "lists/eu-1/snap-8.bin", &info);
        CHECK_ERR(err, POSGATE_ERR_BADSIG);
        CHECK_CONTAINS(tuf_client_errmsg(x.c), "lists/eu-1 2 has 0 valid signatures of threshold "
                                               "1 by the keys targets delegates to it");
        CHECK(unchanged(r.trusted, &before));
        free_picture(&before);
        client_close(&x);
    }
    /* Terminating: a matching terminating role without the target ends the search, so a
     * later role listing it is never asked. Non-terminating: the search goes on. */
    {
        cJSON *other = cJSON_CreateObject(), *r2 = role_json(dk, 1, 1);
        cJSON *empty = cJSON_CreateObject();

        write_targets_role(&r, "lists/eu-1", 3, empty, NULL, dk, 1);
        cJSON_Delete(empty);
        add_target(&r, other, "lists/eu-1/snap-9.bin", "found by other", NULL);
        write_targets_role(&r, "other", 1, other, NULL, dk, 1);
        cJSON_AddStringToObject(r2, "name", "other");
        cJSON_AddBoolToObject(r2, "terminating", 0);
        cJSON_AddItemToObject(r2, "paths",
                              cJSON_CreateStringArray((const char *[]){"lists/*/*"}, 1));
        cJSON_AddItemToArray(roles, r2);
        publish(&r);
        CHECK_OK(client_open(&r, &x, NULL));
        CHECK_OK(tuf_client_refresh(x.c));
        CHECK_ERR(tuf_client_find_target(x.c, "lists/eu-1/snap-9.bin", &info),
                  POSGATE_ERR_NOTFOUND);
        client_close(&x);
        cJSON_ReplaceItemInObject(role, "terminating", cJSON_CreateFalse());
        publish(&r);
        CHECK_OK(client_open(&r, &x, NULL));
        CHECK_OK(tuf_client_refresh(x.c));
        CHECK_OK(tuf_client_find_target(x.c, "lists/eu-1/snap-9.bin", &info));
        CHECK_STR(info.role, "other");
        client_close(&x);
        /* Listing one role fetches it first, not its siblings. */
        CHECK_OK(client_open(&r, &x, NULL));
        CHECK_OK(tuf_client_refresh(x.c));
        memset(&col, 0, sizeof(col));
        CHECK_OK(tuf_client_foreach_target(x.c, "other", collect_fn, &col));
        CHECK_INT(col.n, 1);
        CHECK_STR(col.names[0], "lists/eu-1/snap-9.bin");
        CHECK_ERR(tuf_client_role_info(x.c, "lists/eu-1", NULL, NULL), POSGATE_ERR_NOTFOUND);
        CHECK_OK(tuf_client_role_info(x.c, "other", NULL, NULL));
        client_close(&x);
        cJSON_Delete(other);
    }
    /* A delegated role missing from snapshot is not fetched. */
    {
        cJSON *r3 = role_json(dk, 1, 1);

        cJSON_AddStringToObject(r3, "name", "third");
        cJSON_AddBoolToObject(r3, "terminating", 0);
        cJSON_AddItemToObject(r3, "paths", cJSON_CreateStringArray((const char *[]){"zz/*"}, 1));
        cJSON_AddItemToArray(roles, r3);
        publish(&r);
        CHECK_OK(client_open(&r, &x, NULL));
        CHECK_OK(tuf_client_refresh(x.c));
        CHECK_ERR(tuf_client_find_target(x.c, "zz/a", &info), POSGATE_ERR_NOTFOUND);
        CHECK_CONTAINS(tuf_client_errmsg(x.c), "role \"third\" is not listed in snapshot");
        path_of(path, r.trusted, "third.json");
        CHECK(!plat_exists(path));
        client_close(&x);
    }
    cJSON_Delete(dt);
    repo_free(&r);
}

static void
test_succinct_bins(void)
{
    struct repo r;
    struct run x;
    struct tuf_target_info info;
    cJSON *succ, *keys, *bin = cJSON_CreateObject();
    struct key *dk[1];
    uint8_t h[CRYPTO_SHA256_LEN];
    char binname[32];
    const char *target = "lists/asia-3/snap-1.bin";
    struct collect col;

    repo_init(&r, "bins");
    dk[0] = &r.deleg;
    r.delegations = cJSON_CreateObject();
    keys = cJSON_CreateObject();
    cJSON_AddItemToObject(keys, r.deleg.id, key_json(&r.deleg));
    cJSON_AddItemToObject(r.delegations, "keys", keys);
    succ = role_json(dk, 1, 1);
    cJSON_AddNumberToObject(succ, "bit_length", 4);
    cJSON_AddStringToObject(succ, "name_prefix", "bin");
    cJSON_AddItemToObject(r.delegations, "succinct_roles", succ);
    crypto_sha256(target, strlen(target), h);
    snprintf(binname, sizeof(binname), "bin-%x", h[0] >> 4);
    add_target(&r, bin, target, "asia", NULL);
    write_targets_role(&r, binname, 1, bin, NULL, dk, 1);
    publish(&r);
    CHECK_OK(client_open(&r, &x, NULL));
    CHECK_OK(tuf_client_refresh(x.c));
    CHECK_OK(tuf_client_find_target(x.c, target, &info));
    CHECK_STR(info.role, binname);
    memset(&col, 0, sizeof(col));
    CHECK_OK(tuf_client_foreach_target(x.c, binname, collect_fn, &col));
    CHECK_INT(col.n, 1);
    client_close(&x);
    cJSON_Delete(bin);
    repo_free(&r);
}

/* ---- attacks ---- */

static void
test_rollback_and_freeze(void)
{
    struct repo r;
    struct buf raw = BUF_INIT(1u << 24);
    char msg[TUF_CLIENT_ERRMSG_MAX];
    struct tuf_client_options opt;

    repo_init(&r, "rollback");
    publish(&r); /* v2 everywhere */
    CHECK_OK(refresh_once(&r, NULL, msg, sizeof(msg)));

    /* Timestamp rollback: a mirror serves version 1 again. */
    write_timestamp(&r, 1, 2, NULL, r.expires, r.ts_key);
    expect_attack_refused(&r, POSGATE_ERR_ROLLBACK,
                          "timestamp version 1 is older than trusted version 2");

    /* Snapshot version rollback inside a newer timestamp. */
    write_timestamp(&r, 3, 1, NULL, r.expires, r.ts_key);
    expect_attack_refused(&r, POSGATE_ERR_ROLLBACK,
                          "timestamp 3 lists snapshot version 1, older than version 2");

    /* Mix and match: timestamp promises snapshot 3, the file at that name is snapshot 2. */
    {
        char from[PCAP], to[PCAP];

        path_of(from, r.meta, "2.snapshot.json");
        path_of(to, r.meta, "3.snapshot.json");
        CHECK_OK(plat_read_file(from, &raw));
        CHECK_OK(plat_write_atomic(to, raw.data, raw.len, 0644));
        write_timestamp(&r, 3, 3, NULL, r.expires, r.ts_key);
        /* The timestamp itself is good and is kept; the snapshot is refused. */
        CHECK_ERR(refresh_once(&r, NULL, msg, sizeof(msg)), POSGATE_ERR_ROLLBACK);
        CHECK_CONTAINS(msg, "snapshot version 2 does not match version 3 listed in timestamp 3");
        CHECK_INT(trusted_version(&r, "timestamp.json"), 3);
        CHECK_INT(trusted_version(&r, "snapshot.json"), 2);
        CHECK_OK(plat_unlink(to));
    }
    r.ts_v = 3;
    r.snap_v = 2;

    /* Targets rollback through snapshot: targets 1 listed after 2. */
    {
        cJSON *mf = cJSON_GetObjectItem(r.snap_meta, "targets.json");

        cJSON_ReplaceItemInObject(mf, "version", cJSON_CreateNumber(1));
        write_snapshot(&r, 3, &raw);
        write_timestamp(&r, 4, 3, &raw, r.expires, r.ts_key);
        CHECK_ERR(refresh_once(&r, NULL, msg, sizeof(msg)), POSGATE_ERR_ROLLBACK);
        CHECK_CONTAINS(msg, "snapshot 3 lists targets.json version 1, older than version 2");
        CHECK_INT(trusted_version(&r, "snapshot.json"), 2);
        cJSON_ReplaceItemInObject(mf, "version", cJSON_CreateNumber(2));
    }
    /* Snapshot hash mismatch: the timestamp lists another snapshot's hash. */
    {
        struct buf other = BUF_INIT(1u << 24);

        write_snapshot(&r, 4, &raw);
        CHECK_OK(buf_append(&other, raw.data, raw.len));
        other.data[other.len - 2] ^= 1;
        write_timestamp(&r, 5, 4, &other, r.expires, r.ts_key);
        CHECK_ERR(refresh_once(&r, NULL, msg, sizeof(msg)), POSGATE_ERR_BADHASH);
        CHECK_CONTAINS(msg, "4.snapshot.json has sha256");
        CHECK_INT(trusted_version(&r, "snapshot.json"), 2);
        buf_free(&other);
    }
    /* Freeze: an expired timestamp is refused... */
    write_snapshot(&r, 4, &raw);
    write_timestamp(&r, 6, 4, &raw, NOW - 1, r.ts_key);
    expect_attack_refused(&r, POSGATE_ERR_EXPIRED, "timestamp version 6 expired at");
    /* ...unless the caller accepts expired metadata (a bundle carried for days). */
    memset(&opt, 0, sizeof(opt));
    opt.accept_expired = 1;
    {
        struct run x;

        CHECK_OK(client_open(&r, &x, &opt));
        CHECK_OK(tuf_client_refresh(x.c));
        CHECK(tuf_client_expired(x.c));
        client_close(&x);
    }
    CHECK_INT(trusted_version(&r, "timestamp.json"), 6);
    /* Expired snapshot. */
    r.expires = NOW - 1;
    write_snapshot(&r, 5, &raw);
    r.expires = NOW + 30 * DAY;
    write_timestamp(&r, 7, 5, &raw, r.expires, r.ts_key);
    CHECK_ERR(refresh_once(&r, NULL, msg, sizeof(msg)), POSGATE_ERR_EXPIRED);
    CHECK_CONTAINS(msg, "snapshot version 5 expired at");
    CHECK_INT(trusted_version(&r, "snapshot.json"), 4);

    /* A role removed from snapshot. */
    {
        cJSON *saved = cJSON_Duplicate(r.snap_meta, 1);

        cJSON_AddItemToObject(r.snap_meta, "lists/x.json", cJSON_Parse("{\"version\":1}"));
        write_snapshot(&r, 6, &raw);
        write_timestamp(&r, 8, 6, &raw, r.expires, r.ts_key);
        CHECK_OK(refresh_once(&r, NULL, msg, sizeof(msg)));
        cJSON_Delete(r.snap_meta);
        r.snap_meta = saved;
        write_snapshot(&r, 7, &raw);
        write_timestamp(&r, 9, 7, &raw, r.expires, r.ts_key);
        /* The new timestamp is good and kept (spec 5.4); the snapshot is refused. */
        CHECK_ERR(refresh_once(&r, NULL, msg, sizeof(msg)), POSGATE_ERR_ROLLBACK);
        CHECK_CONTAINS(msg, "snapshot 7 no longer lists lists/x.json (trusted snapshot 6 lists "
                            "version 1)");
        CHECK_INT(trusted_version(&r, "timestamp.json"), 9);
        CHECK_INT(trusted_version(&r, "snapshot.json"), 6);
    }
    buf_free(&raw);
    repo_free(&r);
}

static void
test_wrong_keys_and_fast_forward(void)
{
    struct repo r;
    char msg[TUF_CLIENT_ERRMSG_MAX];
    struct buf raw = BUF_INIT(1u << 24);

    repo_init(&r, "keys");
    CHECK_OK(refresh_once(&r, NULL, msg, sizeof(msg)));
    /* A timestamp signed with the snapshot key. */
    write_timestamp(&r, 2, 1, NULL, r.expires, r.snap_key);
    expect_attack_refused(&r, POSGATE_ERR_BADSIG,
                          "timestamp has 0 valid signatures of threshold 1 by the keys of root 1");
    /* Fast-forward: a thief of the timestamp key pushed version 50. */
    write_timestamp(&r, 50, 1, NULL, r.expires, r.ts_key);
    CHECK_OK(refresh_once(&r, NULL, msg, sizeof(msg)));
    CHECK_INT(trusted_version(&r, "timestamp.json"), 50);
    /* Recovery: root 2 rotates the timestamp key; timestamp starts again at 2. */
    r.ts_key = &r.ts2;
    write_root(&r, 2, r.root_keys, 1);
    write_timestamp(&r, 2, 1, NULL, r.expires, r.ts_key);
    CHECK_OK(refresh_once(&r, NULL, msg, sizeof(msg)));
    CHECK_INT(trusted_version(&r, "root.json"), 2);
    CHECK_INT(trusted_version(&r, "timestamp.json"), 2);
    /* And a timestamp signed with the old, rotated-out key is now refused. */
    write_timestamp(&r, 3, 1, NULL, r.expires, &r.ts);
    expect_attack_refused(&r, POSGATE_ERR_BADSIG, "timestamp has 0 valid signatures");
    (void)raw;
    buf_free(&raw);
    repo_free(&r);
}

static void
test_endless_and_arbitrary(void)
{
    struct repo r;
    struct run x;
    struct tuf_target_info info;
    char msg[TUF_CLIENT_ERRMSG_MAX], dest[PCAP], path[PCAP * 2], hex[2 * CRYPTO_SHA256_LEN + 1];
    struct buf got = BUF_INIT(1u << 20);
    struct tuf_client_options opt;
    uint8_t h[CRYPTO_SHA256_LEN];
    DIR *d;
    struct dirent *e;
    int files = 0;

    repo_init(&r, "endless");
    CHECK_OK(refresh_once(&r, NULL, msg, sizeof(msg)));
    /* Endless data: a timestamp.json past the cap. */
    {
        char *pad = plat_malloc(40000);
        cJSON *s = base_signed("timestamp", 2, r.expires);
        char tpath[PCAP];

        memset(pad, 'x', 39999);
        pad[39999] = 0;
        cJSON_AddItemToObject(s, "meta", cJSON_Parse("{\"snapshot.json\":{\"version\":1}}"));
        cJSON_AddStringToObject(s, "x-padding", pad);
        path_of(tpath, r.meta, "timestamp.json");
        write_signed(tpath, s, &r.ts_key, 1, NULL);
        plat_free(pad);
        memset(&opt, 0, sizeof(opt));
        opt.timestamp_max_len = 16384;
        CHECK_ERR(refresh_once(&r, &opt, msg, sizeof(msg)), POSGATE_ERR_TOOBIG);
        CHECK_CONTAINS(msg, "timestamp.json is longer than the 16384 bytes allowed");
        opt.timestamp_max_len = 65536; /* a larger cap lets the same file through */
        CHECK_OK(refresh_once(&r, &opt, msg, sizeof(msg)));
    }
    /* A target served longer than its metadata says, and one served with other bytes. */
    add_target(&r, r.targets, "lists/a/snap.bin", "0123456789", NULL);
    add_target(&r, r.targets, "lists/a/delta.bin", "abcdefghij", NULL);
    add_target(&r, r.targets, "lists/a/md5.bin", "md5", NULL);
    cJSON_AddStringToObject(
        cJSON_GetObjectItem(cJSON_GetObjectItem(r.targets, "lists/a/md5.bin"), "hashes"), "md5",
        "00112233445566778899aabbccddeeff");
    /* Each listed hash is computed and checked, and only those: a wrong sha512 beside a right
     * sha256 is refused; a target listing sha512 alone is fetched under its sha512 name. */
    add_target(&r, r.targets, "lists/a/s512.bin", "sixty-four", NULL);
    cJSON_ReplaceItemInObject(
        cJSON_GetObjectItem(cJSON_GetObjectItem(r.targets, "lists/a/s512.bin"), "hashes"), "sha512",
        cJSON_CreateString("00000000000000000000000000000000000000000000000000000000"
                           "000000000000000000000000000000000000000000000000000000000"
                           "000000000000000"));
    add_target(&r, r.targets, "lists/a/only512.bin", "only sha512", NULL);
    cJSON_DeleteItemFromObject(
        cJSON_GetObjectItem(cJSON_GetObjectItem(r.targets, "lists/a/only512.bin"), "hashes"),
        "sha256");
    {
        uint8_t h512[CRYPTO_SHA512_LEN];
        char hex512[2 * CRYPTO_SHA512_LEN + 1];

        crypto_sha512("only sha512", 11, h512);
        crypto_hex(h512, sizeof(h512), hex512);
        snprintf(path, sizeof(path), "%s/lists/a/%s.only512.bin", r.tdir, hex512);
        CHECK_OK(plat_write_atomic(path, "only sha512", 11, 0644));
    }
    publish(&r);
    crypto_sha256("0123456789", 10, h);
    crypto_hex(h, sizeof(h), hex);
    snprintf(path, sizeof(path), "%s/lists/a/%s.snap.bin", r.tdir, hex);
    CHECK_OK(plat_write_atomic(path, "0123456789 and more and more", 28, 0644));
    crypto_sha256("abcdefghij", 10, h);
    crypto_hex(h, sizeof(h), hex);
    snprintf(path, sizeof(path), "%s/lists/a/%s.delta.bin", r.tdir, hex);
    CHECK_OK(plat_write_atomic(path, "ABCDEFGHIJ", 10, 0644));

    CHECK_OK(client_open(&r, &x, NULL));
    CHECK_OK(tuf_client_refresh(x.c));
    CHECK_OK(tuf_client_find_target(x.c, "lists/a/snap.bin", &info));
    path_of(dest, r.dl, "snap.bin");
    CHECK_ERR(tuf_client_download(x.c, &info, dest), POSGATE_ERR_TOOBIG);
    CHECK_CONTAINS(tuf_client_errmsg(x.c), "longer than the 10 bytes its metadata lists");
    CHECK(!plat_exists(dest));
    CHECK_OK(tuf_client_find_target(x.c, "lists/a/delta.bin", &info));
    path_of(dest, r.dl, "delta.bin");
    CHECK_OK(plat_write_atomic(dest, "previous", 8, 0644));
    CHECK_ERR(tuf_client_download(x.c, &info, dest), POSGATE_ERR_BADHASH);
    CHECK_CONTAINS(tuf_client_errmsg(x.c), "target \"lists/a/delta.bin\" has sha256");
    CHECK_OK(plat_read_file(dest, &got)); /* the previous file is untouched */
    CHECK_STR(buf_cstr(&got), "previous");
    /* A hash algorithm we do not compute: refused before anything is fetched. */
    CHECK_OK(tuf_client_find_target(x.c, "lists/a/md5.bin", &info));
    path_of(dest, r.dl, "md5.bin");
    CHECK_ERR(tuf_client_download(x.c, &info, dest), POSGATE_ERR_BADHASH);
    CHECK_CONTAINS(tuf_client_errmsg(x.c), "cannot check (md5)");
    CHECK_OK(tuf_client_find_target(x.c, "lists/a/s512.bin", &info));
    path_of(dest, r.dl, "s512.bin");
    CHECK_ERR(tuf_client_download(x.c, &info, dest), POSGATE_ERR_BADHASH);
    CHECK_CONTAINS(tuf_client_errmsg(x.c), "has sha512");
    CHECK(!plat_exists(dest));
    CHECK_OK(tuf_client_find_target(x.c, "lists/a/only512.bin", &info));
    CHECK(!info.has_sha256 && info.has_sha512);
    path_of(dest, r.dl, "only512.bin");
    CHECK_OK(tuf_client_download(x.c, &info, dest));
    CHECK_OK(plat_read_file(dest, &got));
    CHECK_STR(buf_cstr(&got), "only sha512");
    CHECK_OK(plat_unlink(dest));
    /* Forged info: the caller's length and hashes are not trusted. */
    CHECK_OK(tuf_client_find_target(x.c, "lists/a/delta.bin", &info));
    info.length = 3;
    info.name = "lists/a/unknown.bin";
    CHECK_ERR(tuf_client_download(x.c, &info, dest), POSGATE_ERR_STATE);
    client_close(&x);
    /* No temporary file is left behind. */
    d = opendir(r.dl);
    while (d != NULL && (e = readdir(d)) != NULL) {
        if (e->d_name[0] != '.') {
            files++;
            CHECK_STR(e->d_name, "delta.bin");
        }
    }
    if (d != NULL) {
        closedir(d);
    }
    CHECK_INT(files, 1);
    buf_free(&got);
    repo_free(&r);
}

/* ---- carriers ---- */

static void
test_dir_carrier(void)
{
    struct carrier *c = NULL;
    struct buf b = BUF_INIT(1024);
    char dir[] = "/tmp/posgate-carrier-XXXXXX", path[PCAP];

    CHECK(mkdtemp(dir) != NULL);
    path_of(path, dir, "f.txt");
    CHECK_OK(plat_write_atomic(path, "hello world", 11, 0644));
    CHECK_ERR(carrier_dir_new(NULL, &c), POSGATE_ERR_INVALID);
    CHECK_ERR(carrier_dir_new(dir, NULL), POSGATE_ERR_INVALID);
    CHECK_OK(carrier_dir_new(dir, &c));
    CHECK_ERR(carrier_fetch(c, "f.txt", 100, NULL, NULL), POSGATE_ERR_INVALID);
    CHECK_OK(carrier_fetch_buf(c, "f.txt", 100, &b));
    CHECK_STR(buf_cstr(&b), "hello world");
    CHECK_STR(carrier_errmsg(c), "");
    CHECK_ERR(carrier_fetch_buf(c, "f.txt", 5, &b), POSGATE_ERR_TOOBIG);
    CHECK_INT(b.len, 0);
    CHECK_CONTAINS(carrier_errmsg(c), "more than the 5 allowed");
    CHECK_ERR(carrier_fetch_buf(c, "missing.txt", 100, &b), POSGATE_ERR_NOTFOUND);
    CHECK_ERR(carrier_fetch_buf(c, "no/such/dir.txt", 100, &b), POSGATE_ERR_NOTFOUND);
    CHECK_ERR(carrier_fetch_buf(c, "../etc/passwd", 100, &b), POSGATE_ERR_INVALID);
    CHECK_ERR(carrier_fetch_buf(c, "/etc/passwd", 100, &b), POSGATE_ERR_INVALID);
    CHECK_ERR(carrier_fetch_buf(c, "a/../../x", 100, &b), POSGATE_ERR_INVALID);
    CHECK_ERR(carrier_fetch_buf(c, "a//b", 100, &b), POSGATE_ERR_INVALID);
    CHECK_ERR(carrier_fetch_buf(c, "", 100, &b), POSGATE_ERR_INVALID);
    CHECK_ERR(carrier_fetch_buf(c, "a\nb", 100, &b), POSGATE_ERR_INVALID);
    CHECK_ERR(carrier_fetch_buf(c, ".", 100, &b), POSGATE_ERR_INVALID);
    CHECK_ERR(carrier_fetch_buf(c, "a/./b", 100, &b), POSGATE_ERR_INVALID);
    /* A directory is not a file. */
    {
        char sub[PCAP];

        path_of(sub, dir, "sub");
        CHECK_OK(plat_mkdir_p(sub, 0755));
        CHECK_ERR(carrier_fetch_buf(c, "sub", 100, &b), POSGATE_ERR_IO);
    }
    carrier_free(c);
    carrier_free(NULL);
    rm_rf(dir);
    buf_free(&b);
}

/* A tiny HTTP/1.0 server on 127.0.0.1 for the HTTP carrier. */
struct server {
    int fd;
    int port;
    volatile int stop;
    pthread_t th;
    char last_path[512];
};

static void
send_all(int fd, const void *p, size_t n)
{
    const char *c = p;

    while (n > 0) {
        ssize_t w = send(fd, c, n, MSG_NOSIGNAL);

        if (w <= 0) {
            return;
        }
        c += w;
        n -= (size_t)w;
    }
}

static void
serve_one(struct server *s, int cfd)
{
    char req[2048], head[256];
    ssize_t n = 0, r;
    char *sp, *sp2;

    while (n < (ssize_t)sizeof(req) - 1) {
        r = recv(cfd, req + n, sizeof(req) - 1 - (size_t)n, 0);
        if (r <= 0) {
            break;
        }
        n += r;
        req[n] = 0;
        if (strstr(req, "\r\n\r\n") != NULL) {
            break;
        }
    }
    req[n > 0 ? n : 0] = 0;
    sp = strchr(req, ' ');
    sp2 = sp != NULL ? strchr(sp + 1, ' ') : NULL;
    if (sp == NULL || sp2 == NULL) {
        return;
    }
    *sp2 = 0;
    snprintf(s->last_path, sizeof(s->last_path), "%s", sp + 1);
    if (strcmp(sp + 1, "/repo/ok.txt") == 0) {
        const char *body = "hello over http";

        snprintf(head, sizeof(head), "HTTP/1.0 200 OK\r\nContent-Length: %zu\r\n\r\n",
                 strlen(body));
        send_all(cfd, head, strlen(head));
        send_all(cfd, body, strlen(body));
    } else if (strcmp(sp + 1, "/repo/big.bin") == 0) {
        char block[4096];

        memset(block, 'b', sizeof(block));
        snprintf(head, sizeof(head), "HTTP/1.0 200 OK\r\nContent-Length: 409600\r\n\r\n");
        send_all(cfd, head, strlen(head));
        for (int i = 0; i < 100; i++) {
            send_all(cfd, block, sizeof(block));
        }
    } else if (strcmp(sp + 1, "/repo/endless.bin") == 0) {
        char block[4096];

        memset(block, 'e', sizeof(block));
        snprintf(head, sizeof(head), "HTTP/1.0 200 OK\r\n\r\n");
        send_all(cfd, head, strlen(head));
        for (int i = 0; i < 25600 && !s->stop; i++) { /* up to 100 MiB, until the client hangs up */
            ssize_t w = send(cfd, block, sizeof(block), MSG_NOSIGNAL);

            if (w <= 0) {
                break;
            }
        }
    } else if (strcmp(sp + 1, "/repo/fail.txt") == 0) {
        const char *resp = "HTTP/1.0 503 Busy\r\nContent-Length: 4\r\n\r\nbusy";

        send_all(cfd, resp, strlen(resp));
    } else {
        const char *resp = "HTTP/1.0 404 Not Found\r\nContent-Length: 9\r\n\r\nnot found";

        send_all(cfd, resp, strlen(resp));
    }
}

static void *
server_main(void *arg)
{
    struct server *s = arg;

    while (!s->stop) {
        struct pollfd p = {s->fd, POLLIN, 0};
        int cfd;

        if (poll(&p, 1, 100) <= 0) {
            continue;
        }
        cfd = accept(s->fd, NULL, NULL);
        if (cfd < 0) {
            continue;
        }
        serve_one(s, cfd);
        close(cfd);
    }
    return NULL;
}

static int
server_start(struct server *s)
{
    struct sockaddr_in a;
    socklen_t len = sizeof(a);

    memset(s, 0, sizeof(*s));
    s->fd = socket(AF_INET, SOCK_STREAM, 0);
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (s->fd < 0 || bind(s->fd, (struct sockaddr *)&a, sizeof(a)) != 0 || listen(s->fd, 8) != 0 ||
        getsockname(s->fd, (struct sockaddr *)&a, &len) != 0) {
        return -1;
    }
    s->port = ntohs(a.sin_port);
    return pthread_create(&s->th, NULL, server_main, s);
}

static void
server_stop(struct server *s)
{
    s->stop = 1;
    pthread_join(s->th, NULL);
    close(s->fd);
}

static void
test_http_carrier(void)
{
    struct server s;
    struct carrier *c = NULL;
    struct buf b = BUF_INIT(1u << 20);
    struct carrier_http_options o;
    char url[128];

    if (server_start(&s) != 0) {
        CHECK_FAIL("cannot start the loopback HTTP server");
        return;
    }
    CHECK_ERR(carrier_http_new("ftp://127.0.0.1/", NULL, &c), POSGATE_ERR_INVALID);
    CHECK_ERR(carrier_http_new(NULL, NULL, &c), POSGATE_ERR_INVALID);
    memset(&o, 0, sizeof(o));
    o.timeout_s = 20;
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/repo", s.port); /* no trailing '/' */
    CHECK_OK(carrier_http_new(url, &o, &c));
    CHECK_OK(carrier_fetch_buf(c, "ok.txt", 1000, &b));
    CHECK_STR(buf_cstr(&b), "hello over http");
    CHECK_STR(s.last_path, "/repo/ok.txt");
    /* A 404 is NOTFOUND and its body never reaches the sink. */
    CHECK_ERR(carrier_fetch_buf(c, "missing.json", 1000, &b), POSGATE_ERR_NOTFOUND);
    CHECK_INT(b.len, 0);
    CHECK_CONTAINS(carrier_errmsg(c), "HTTP 404");
    CHECK_ERR(carrier_fetch_buf(c, "fail.txt", 1000, &b), POSGATE_ERR_RETRY);
    CHECK_CONTAINS(carrier_errmsg(c), "HTTP 503, expected 200");
    /* Declared length above the cap, and a body that never ends. */
    CHECK_ERR(carrier_fetch_buf(c, "big.bin", 4096, &b), POSGATE_ERR_TOOBIG);
    CHECK_CONTAINS(carrier_errmsg(c), "longer than the 4096 bytes allowed");
    CHECK_ERR(carrier_fetch_buf(c, "endless.bin", 100000, &b), POSGATE_ERR_TOOBIG);
    CHECK_INT(b.len, 0);
    /* Names are escaped into the URL; refused names never leave the process. */
    CHECK_ERR(carrier_fetch_buf(c, "1.a b#c.json", 1000, &b), POSGATE_ERR_NOTFOUND);
    CHECK_STR(s.last_path, "/repo/1.a%20b%23c.json");
    CHECK_ERR(carrier_fetch_buf(c, "../ok.txt", 1000, &b), POSGATE_ERR_INVALID);
    carrier_free(c);
    /* Nobody listening: a network error, not NOTFOUND. */
    server_stop(&s);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/", s.port);
    CHECK_OK(carrier_http_new(url, &o, &c));
    CHECK_ERR(carrier_fetch_buf(c, "ok.txt", 1000, &b), POSGATE_ERR_NETWORK);
    carrier_free(c);
    buf_free(&b);
}

int
main(void)
{
    signal(SIGPIPE, SIG_IGN);
    test_safety();
    test_dir_carrier();
    test_http_carrier();
    test_fresh_install_and_update();
    test_root_rotation();
    test_delegations();
    test_succinct_bins();
    test_rollback_and_freeze();
    test_wrong_keys_and_fast_forward();
    test_endless_and_arbitrary();
    return test_summary("tuf_client");
}
