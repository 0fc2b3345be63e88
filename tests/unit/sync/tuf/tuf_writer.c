/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Tests of sync/tuf/tuf_writer*.c and tools/publish/posgate_keygen.c: refused inputs first, then repositories
 * the writer makes, read back by the real TUF client over a directory carrier: root with three
 * keys and threshold 2, targets with custom metadata, versions bumped only for changed roles,
 * delegation signed by the delegate's keys (the two-party workflow through the saved state),
 * root rotation over several versions, timestamp refresh with a new expiry, persistence across
 * reopen, and the keygen command line.
 */
#define _POSIX_C_SOURCE 200809L
#include <sys/wait.h>

#include "tuf_fixture.h"

static void
test_keyid(void)
{
    struct crypto_privkey *k = fx_key();
    const char *pem = fx_pub(k);
    char id[TUF_WRITER_KEYID_LEN + 1], id2[TUF_WRITER_KEYID_LEN + 1];
    char expect_hex[TUF_WRITER_KEYID_LEN + 1];
    struct buf canon = BUF_INIT(8192);
    uint8_t h[CRYPTO_SHA256_LEN];

    /* securesystemslib: sha256 of the canonical JSON of {keytype, keyval:{public}, scheme};
     * a PEM holds no '"' or '\\', so the canonical text is the plain concatenation. */
    CHECK_OK(buf_printf(&canon,
                        "{\"keytype\":\"ecdsa\",\"keyval\":{\"public\":\"%s\"},\"scheme\":"
                        "\"ecdsa-sha2-nistp256\"}",
                        pem));
    crypto_sha256(canon.data, canon.len, h);
    crypto_hex(h, sizeof(h), expect_hex);
    CHECK_OK(tuf_writer_keyid_pem(pem, id));
    CHECK_STR(id, expect_hex);
    CHECK_OK(tuf_writer_keyid(k, id2));
    CHECK_STR(id2, expect_hex);
    CHECK_ERR(
        tuf_writer_keyid_pem("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n", id),
        POSGATE_ERR_INVALID);
    CHECK_ERR(tuf_writer_keyid_pem(NULL, id), POSGATE_ERR_INVALID);
    CHECK_ERR(tuf_writer_keyid(NULL, id), POSGATE_ERR_INVALID);
    buf_free(&canon);
    crypto_privkey_free(k);
}

static void
test_refusals(void)
{
    struct fx f;
    struct tuf_writer *w2 = NULL;
    struct tuf_writer_init init;
    const char *pems[2];
    const char *paths[1] = {"lists/a/*"};
    struct tuf_writer_delegation d;
    char msg[TUF_WRITER_ERRMSG_MAX], src[FX_PATH], path[FX_PATH];
    struct crypto_privkey *only_ts[1];

    fx_init(&f, "wref");
    fx_path(src, f.base, "src.bin");
    fx_make_file(src, 100, 1, NULL);

    /* NULLs and a second create on the same state */
    CHECK_ERR(tuf_writer_create(f.state, NULL, &w2, msg, sizeof(msg)), POSGATE_ERR_INVALID);
    CHECK_ERR(tuf_writer_create(f.state, &init, NULL, msg, sizeof(msg)), POSGATE_ERR_INVALID);
    memset(&init, 0, sizeof(init));
    pems[0] = fx_pub(f.root[0]);
    pems[1] = fx_pub(f.root[1]);
    init.root = (struct tuf_writer_role_keys){pems, 2, 1};
    init.timestamp = init.root;
    init.snapshot = init.root;
    init.targets = init.root;
    CHECK_ERR(tuf_writer_create(f.state, &init, &w2, msg, sizeof(msg)), POSGATE_ERR_STATE);
    CHECK_CONTAINS(msg, "already holds a writer state");
    CHECK(w2 == NULL);
    CHECK_ERR(tuf_writer_open(f.base, &w2, msg, sizeof(msg)), POSGATE_ERR_NOTFOUND);
    CHECK_CONTAINS(msg, "writer.json");

    /* thresholds and keys */
    fx_path(path, f.base, "other");
    init.root.threshold = 3;
    CHECK_ERR(tuf_writer_create(path, &init, &w2, msg, sizeof(msg)), POSGATE_ERR_INVALID);
    CHECK_CONTAINS(msg, "threshold must be between 1 and the 2 keys given, found 3");
    init.root.threshold = 0;
    CHECK_ERR(tuf_writer_create(path, &init, &w2, msg, sizeof(msg)), POSGATE_ERR_INVALID);
    init.root.threshold = 1;
    pems[1] = pems[0];
    CHECK_ERR(tuf_writer_create(path, &init, &w2, msg, sizeof(msg)), POSGATE_ERR_INVALID);
    CHECK_CONTAINS(msg, "given twice");
    pems[1] = "not a key";
    CHECK_ERR(tuf_writer_create(path, &init, &w2, msg, sizeof(msg)), POSGATE_ERR_INVALID);
    CHECK_CONTAINS(msg, "expected a PEM ECDSA P-256 public key");
    CHECK(!plat_exists(path));

    /* targets: names, custom, roles */
    CHECK_ERR(tuf_writer_add_target(f.w, "targets", "../x", src, NULL), POSGATE_ERR_INVALID);
    CHECK_CONTAINS(tuf_writer_errmsg(f.w), "\"../x\"");
    CHECK_ERR(tuf_writer_add_target(f.w, "targets", "/abs", src, NULL), POSGATE_ERR_INVALID);
    CHECK_ERR(tuf_writer_add_target(f.w, "targets", "a//b", src, NULL), POSGATE_ERR_INVALID);
    CHECK_ERR(tuf_writer_add_target(f.w, "targets", "a/./b", src, NULL), POSGATE_ERR_INVALID);
    CHECK_ERR(tuf_writer_add_target(f.w, "targets", "", src, NULL), POSGATE_ERR_INVALID);
    CHECK_ERR(tuf_writer_add_target(f.w, "targets", "a\nb", src, NULL), POSGATE_ERR_INVALID);
    CHECK_ERR(tuf_writer_add_target(f.w, "targets", "x", src, "[1]"), POSGATE_ERR_INVALID);
    CHECK_CONTAINS(tuf_writer_errmsg(f.w), "expected a JSON object");
    CHECK_ERR(tuf_writer_add_target(f.w, "targets", "x", src, "{\"a\":"), POSGATE_ERR_INVALID);
    CHECK_ERR(tuf_writer_add_target(f.w, "targets", "x", src, "{\"a\":1.5}"), POSGATE_ERR_INVALID);
    CHECK_CONTAINS(tuf_writer_errmsg(f.w), "integers only");
    CHECK_ERR(tuf_writer_add_target(f.w, "nosuch", "x", src, NULL), POSGATE_ERR_NOTFOUND);
    CHECK_ERR(tuf_writer_add_target(f.w, "snapshot", "x", src, NULL), POSGATE_ERR_INVALID);
    fx_path(path, f.base, "absent.bin");
    CHECK_ERR(tuf_writer_add_target(f.w, "targets", "y", path, NULL), POSGATE_ERR_NOTFOUND);
    CHECK_CONTAINS(tuf_writer_errmsg(f.w), "absent.bin");
    CHECK_ERR(tuf_writer_remove_target(f.w, "targets", "y"), POSGATE_ERR_NOTFOUND);
    CHECK_ERR(tuf_writer_set_version(f.w, "targets", 0), POSGATE_ERR_INVALID);
    CHECK_ERR(tuf_writer_set_lifetime(f.w, "targets", 0), POSGATE_ERR_INVALID);
    CHECK_ERR(tuf_writer_set_role_keys(f.w, "list-a", &init.root), POSGATE_ERR_NOTFOUND);

    /* delegations */
    memset(&d, 0, sizeof(d));
    d.delegator = "targets";
    d.name = "lists/a";
    d.paths = paths;
    d.path_count = 1;
    d.keys = (struct tuf_writer_role_keys){pems, 1, 1};
    CHECK_ERR(tuf_writer_delegate(f.w, &d), POSGATE_ERR_INVALID);
    CHECK_CONTAINS(tuf_writer_errmsg(f.w), "[A-Za-z0-9._-]");
    d.name = "snapshot";
    CHECK_ERR(tuf_writer_delegate(f.w, &d), POSGATE_ERR_INVALID);
    d.name = "list-a";
    d.path_count = 0;
    CHECK_ERR(tuf_writer_delegate(f.w, &d), POSGATE_ERR_INVALID);
    d.path_count = 1;
    d.delegator = "timestamp";
    CHECK_ERR(tuf_writer_delegate(f.w, &d), POSGATE_ERR_INVALID);
    d.delegator = "targets";
    CHECK_OK(tuf_writer_delegate(f.w, &d));
    CHECK_ERR(tuf_writer_add_target(f.w, "list-a", "lists/b/x", src, NULL), POSGATE_ERR_INVALID);
    CHECK_CONTAINS(tuf_writer_errmsg(f.w), "outside the paths delegated to role list-a");
    CHECK_ERR(tuf_writer_add_target(f.w, "list-a", "lists/a/b/x", src, NULL), POSGATE_ERR_INVALID);
    CHECK_OK(tuf_writer_add_target(f.w, "list-a", "lists/a/x", src, NULL));
    CHECK_ERR(tuf_writer_undelegate(f.w, "targets", "list-b"), POSGATE_ERR_NOTFOUND);

    /* publish without the timestamp key: refused before anything is written */
    only_ts[0] = f.tgt;
    CHECK_ERR(tuf_writer_publish(f.w, f.repo, f.keyring, 2), POSGATE_ERR_BADSIG);
    CHECK_CONTAINS(tuf_writer_errmsg(f.w), "keyring holds");
    CHECK(!plat_exists(f.meta));
    CHECK_ERR(tuf_writer_publish(f.w, f.repo, only_ts, 1), POSGATE_ERR_BADSIG);
    CHECK_CONTAINS(tuf_writer_errmsg(f.w), "root");
    CHECK(!plat_exists(f.meta));
    /* without root[0]: neither the root threshold nor list-a's key (root[0]) */
    CHECK_ERR(tuf_writer_publish(f.w, f.repo, &f.keyring[1], 4), POSGATE_ERR_BADSIG);
    CHECK(!plat_exists(f.meta));
    CHECK_ERR(tuf_writer_publish(f.w, NULL, f.keyring, f.nkeyring), POSGATE_ERR_INVALID);
    CHECK_ERR(tuf_writer_save(NULL), POSGATE_ERR_INVALID);
    fx_cleanup(&f);
}

struct seen {
    int n;
    char names[8][64];
    char custom[8][128];
    uint64_t length[8];
};

static enum posgate_err
collect(void *ctx, const struct tuf_writer_target *t)
{
    struct seen *s = ctx;

    if (s->n >= 8) {
        return POSGATE_ERR_TOOBIG;
    }
    snprintf(s->names[s->n], sizeof(s->names[0]), "%s", t->name);
    snprintf(s->custom[s->n], sizeof(s->custom[0]), "%s",
             t->custom_json != NULL ? t->custom_json : "");
    s->length[s->n] = t->length;
    s->n++;
    return plat_exists(t->stored_path) ? POSGATE_OK : POSGATE_ERR_NOTFOUND;
}

static enum posgate_err
client_find(struct fx *f, const char *name, struct tuf_target_info *info, char *dest)
{
    struct fx_client fc;
    enum posgate_err err = fx_client_open(&fc, f->trusted, f->repo, 0);

    if (err == POSGATE_OK) {
        err = tuf_client_refresh(fc.c);
    }
    if (err == POSGATE_OK) {
        err = tuf_client_find_target(fc.c, name, info);
    }
    if (err == POSGATE_OK && dest != NULL) {
        err = tuf_client_download(fc.c, info, dest);
    }
    if (err != POSGATE_OK) {
        fprintf(stderr, "client: %s: %s\n", posgate_err_name(err), tuf_client_errmsg(fc.c));
    }
    /* info's strings live in the client: keep only numbers and hashes */
    info->name = NULL;
    info->custom_json = NULL;
    info->role = NULL;
    fx_client_close(&fc);
    return err;
}

static void
test_round_trip(void)
{
    struct fx f;
    struct tuf_target_info info;
    struct seen seen;
    struct fx_client fc;
    char src[FX_PATH], big[FX_PATH], path[FX_LONG], dest[FX_PATH], hex[65], msg[1024];
    char custom[1100];
    uint8_t sha_small[CRYPTO_SHA256_LEN], sha_big[CRYPTO_SHA256_LEN];
    struct buf a, b;
    int64_t v, e;

    fx_init(&f, "wrt");
    fx_path(src, f.base, "feed.json");
    fx_path(big, f.base, "snap.bin");
    fx_make_file(src, 1000, 2, sha_small);
    fx_make_file(big, 3 * 65536 + 17, 3, sha_big); /* several copy chunks and a tail */
    CHECK_OK(tuf_writer_add_target(f.w, "targets", "config/feed.json", src,
                                   "{\"kind\":\"config\",\"seq\":1}"));
    CHECK_OK(tuf_writer_add_target(f.w, "targets", "lists/a/snapshot-1.bin", big,
                                   "{\"list\":\"a\",\"seq\":1,\"entries\":42}"));
    CHECK_OK(fx_publish(&f));

    /* files of a consistent-snapshot repository */
    fx_path(path, f.meta, "1.root.json");
    CHECK(plat_exists(path));
    CHECK_INT(fx_sig_count(path), 2); /* the keyring holds two of the three root keys */
    fx_path(path, f.meta, "root.json");
    CHECK(plat_exists(path));
    fx_path(path, f.meta, "1.targets.json");
    CHECK(plat_exists(path));
    fx_path(path, f.meta, "1.snapshot.json");
    CHECK(plat_exists(path));
    fx_path(path, f.meta, "timestamp.json");
    CHECK(plat_exists(path));
    crypto_hex(sha_big, sizeof(sha_big), hex);
    snprintf(path, sizeof(path), "%s/lists/a/%s.snapshot-1.bin", f.targets, hex);
    CHECK(plat_exists(path));
    crypto_hex(sha_small, sizeof(sha_small), hex);
    snprintf(path, sizeof(path), "%s/config/%s.feed.json", f.targets, hex);
    CHECK(plat_exists(path));

    /* the client accepts it */
    CHECK_OK(fx_bootstrap(&f));
    CHECK_OK(fx_refresh(&f, msg, sizeof(msg)));
    CHECK_INT(fx_trusted_version(&f, "root"), 1);
    CHECK_INT(fx_trusted_version(&f, "timestamp"), 1);
    CHECK_INT(fx_trusted_version(&f, "snapshot"), 1);
    CHECK_INT(fx_trusted_version(&f, "targets"), 1);

    fx_path(dest, f.base, "got.bin");
    CHECK_OK(client_find(&f, "lists/a/snapshot-1.bin", &info, dest));
    CHECK_INT(info.length, 3 * 65536 + 17);
    CHECK(info.has_sha256 && memcmp(info.sha256, sha_big, sizeof(sha_big)) == 0);
    CHECK_OK(fx_read(big, &a));
    CHECK_OK(fx_read(dest, &b));
    CHECK(a.len == b.len && memcmp(a.data, b.data, a.len) == 0);
    buf_free(&a);
    buf_free(&b);

    /* custom as the client sees it */
    CHECK_OK(fx_client_open(&fc, f.trusted, f.repo, 0));
    CHECK_OK(tuf_client_refresh(fc.c));
    CHECK_OK(tuf_client_find_target(fc.c, "config/feed.json", &info));
    CHECK_STR(info.custom_json, "{\"kind\":\"config\",\"seq\":1}");
    CHECK_STR(info.role, "targets");
    fx_client_close(&fc);

    /* the writer's own view */
    memset(&seen, 0, sizeof(seen));
    CHECK_OK(tuf_writer_foreach_target(f.w, "targets", collect, &seen));
    CHECK_INT(seen.n, 2);
    CHECK_STR(seen.names[0], "config/feed.json");
    CHECK_STR(seen.names[1], "lists/a/snapshot-1.bin");
    CHECK_STR(seen.custom[1], "{\"entries\":42,\"list\":\"a\",\"seq\":1}");
    CHECK_INT(seen.length[1], 3 * 65536 + 17);

    /* nothing changed: only the timestamp moves */
    CHECK_OK(fx_publish(&f));
    CHECK_OK(tuf_writer_role_version(f.w, "timestamp", &v));
    CHECK_INT(v, 2);
    CHECK_OK(tuf_writer_role_version(f.w, "snapshot", &v));
    CHECK_INT(v, 1);
    CHECK_OK(tuf_writer_role_version(f.w, "targets", &v));
    CHECK_INT(v, 1);
    CHECK_OK(tuf_writer_role_version(f.w, "root", &v));
    CHECK_INT(v, 1);
    CHECK_ERR(tuf_writer_role_version(f.w, "nosuch", &v), POSGATE_ERR_NOTFOUND);
    CHECK_OK(fx_refresh(&f, msg, sizeof(msg)));
    CHECK_INT(fx_trusted_version(&f, "timestamp"), 2);
    CHECK_INT(fx_trusted_version(&f, "snapshot"), 1);

    /* an update: targets and snapshot move, root does not */
    fx_make_file(big, 5000, 4, sha_big);
    snprintf(custom, sizeof(custom), "{\"list\":\"a\",\"seq\":2}");
    CHECK_OK(tuf_writer_add_target(f.w, "targets", "lists/a/snapshot-2.bin", big, custom));
    CHECK_OK(tuf_writer_remove_target(f.w, "targets", "lists/a/snapshot-1.bin"));
    CHECK_OK(fx_publish(&f));
    CHECK_OK(tuf_writer_role_version(f.w, "targets", &v));
    CHECK_INT(v, 2);
    CHECK_OK(tuf_writer_role_version(f.w, "snapshot", &v));
    CHECK_INT(v, 2);
    CHECK_OK(tuf_writer_role_version(f.w, "root", &v));
    CHECK_INT(v, 1);
    fx_path(path, f.meta, "2.targets.json");
    CHECK(plat_exists(path));
    fx_path(path, f.meta, "2.root.json");
    CHECK(!plat_exists(path));
    CHECK_OK(client_find(&f, "lists/a/snapshot-2.bin", &info, NULL));
    CHECK_INT(info.length, 5000);
    CHECK_ERR(client_find(&f, "lists/a/snapshot-1.bin", &info, NULL), POSGATE_ERR_NOTFOUND);
    CHECK_INT(fx_trusted_version(&f, "targets"), 2);

    /* refresh: a new timestamp expiry, read back by the client */
    CHECK_OK(tuf_writer_set_expires(f.w, "timestamp", f.now + 7200));
    CHECK_OK(fx_publish(&f));
    CHECK_OK(fx_refresh(&f, msg, sizeof(msg)));
    CHECK_INT(fx_trusted_info(&f, "timestamp", &e), 4);
    CHECK_INT(e, f.now + 7200);
    CHECK_OK(fx_client_open(&fc, f.trusted, f.repo, 0));
    CHECK_OK(tuf_client_refresh(fc.c));
    CHECK_OK(tuf_client_role_info(fc.c, "timestamp", &v, &e));
    CHECK_INT(v, 4);
    CHECK_INT(e, f.now + 7200);
    fx_client_close(&fc);

    /* lifetimes; and the state survives a reopen */
    CHECK_OK(tuf_writer_set_lifetime(f.w, "snapshot", 3600));
    CHECK_OK(tuf_writer_touch(f.w, "snapshot"));
    tuf_writer_set_now(f.w, f.now);
    CHECK_OK(tuf_writer_save(f.w));
    tuf_writer_free(f.w);
    f.w = NULL;
    CHECK_OK(tuf_writer_open(f.state, &f.w, msg, sizeof(msg)));
    tuf_writer_set_now(f.w, f.now);
    CHECK_OK(fx_publish(&f));
    CHECK_OK(tuf_writer_role_version(f.w, "timestamp", &v));
    CHECK_INT(v, 5);
    CHECK_OK(tuf_writer_role_version(f.w, "snapshot", &v));
    CHECK_INT(v, 3);
    CHECK_OK(fx_refresh(&f, msg, sizeof(msg)));
    CHECK_INT(fx_trusted_info(&f, "snapshot", &e), 3);
    CHECK_INT(e, f.now + 3600);

    /* publishing into a fresh directory rebuilds the whole repository from the state */
    {
        char repo2[FX_PATH], trusted2[FX_PATH];

        fx_path(repo2, f.base, "repo2");
        fx_path(trusted2, f.base, "trusted2");
        CHECK_OK(tuf_writer_publish(f.w, repo2, f.keyring, f.nkeyring));
        fx_path(path, repo2, "metadata/1.root.json");
        CHECK_OK(fx_read(path, &a));
        CHECK_OK(tuf_client_bootstrap(trusted2, a.data, a.len, msg, sizeof(msg)));
        buf_free(&a);
        CHECK_OK(fx_refresh_from(trusted2, repo2, 0, msg, sizeof(msg)));
        crypto_hex(sha_big, sizeof(sha_big), hex);
        snprintf(path, sizeof(path), "%s/targets/lists/a/%s.snapshot-2.bin", repo2, hex);
        CHECK(plat_exists(path));
    }
    fx_cleanup(&f);
}

static void
test_delegation(void)
{
    struct fx f;
    struct crypto_privkey *auth[2] = {fx_key(), fx_key()};
    const char *auth_pems[2] = {fx_pub(auth[0]), fx_pub(auth[1])};
    const char *paths[1] = {"lists/a/*"};
    struct tuf_writer_delegation d;
    struct tuf_target_info info;
    struct seen seen;
    char src[FX_PATH], path[FX_PATH], msg[1024];
    int64_t v;

    fx_init(&f, "wdel");
    fx_path(src, f.base, "a.bin");
    fx_make_file(src, 4096, 5, NULL);
    memset(&d, 0, sizeof(d));
    d.delegator = "targets";
    d.name = "list-a";
    d.paths = paths;
    d.path_count = 1;
    d.keys = (struct tuf_writer_role_keys){auth_pems, 2, 2};
    d.terminating = 1;
    CHECK_OK(tuf_writer_delegate(f.w, &d));
    CHECK_OK(
        tuf_writer_add_target(f.w, "list-a", "lists/a/snapshot-1.bin", src, "{\"list\":\"a\"}"));
    /* the operator alone cannot publish the authority's role */
    CHECK_ERR(fx_publish(&f), POSGATE_ERR_BADSIG);
    CHECK_CONTAINS(tuf_writer_errmsg(f.w), "role list-a needs 2 signatures");
    CHECK_CONTAINS(tuf_writer_errmsg(f.w), "holds 0");
    /* one authority key is not enough either */
    CHECK_ERR(tuf_writer_sign_role(f.w, "list-a", auth, 1), POSGATE_ERR_BADSIG);
    CHECK_CONTAINS(tuf_writer_errmsg(f.w), "holds 1");
    /* the authority signs its role; the operator publishes in another session */
    CHECK_OK(tuf_writer_sign_role(f.w, "list-a", auth, 2));
    CHECK_ERR(tuf_writer_sign_role(f.w, "list-a", auth, 2), POSGATE_ERR_STATE);
    tuf_writer_free(f.w);
    f.w = NULL;
    CHECK_OK(tuf_writer_open(f.state, &f.w, msg, sizeof(msg)));
    CHECK_OK(fx_publish(&f));
    fx_path(path, f.meta, "1.list-a.json");
    CHECK(plat_exists(path));
    CHECK_INT(fx_sig_count(path), 2);

    CHECK_OK(fx_bootstrap(&f));
    CHECK_OK(client_find(&f, "lists/a/snapshot-1.bin", &info, NULL));
    CHECK_INT(info.length, 4096);
    {
        struct fx_client fc;

        CHECK_OK(fx_client_open(&fc, f.trusted, f.repo, 0));
        CHECK_OK(tuf_client_refresh(fc.c));
        CHECK_OK(tuf_client_find_target(fc.c, "lists/a/snapshot-1.bin", &info));
        CHECK_STR(info.role, "list-a");
        CHECK_STR(info.custom_json, "{\"list\":\"a\"}");
        fx_client_close(&fc);
    }
    memset(&seen, 0, sizeof(seen));
    CHECK_OK(tuf_writer_foreach_target(f.w, "list-a", collect, &seen));
    CHECK_INT(seen.n, 1);

    /* an operator-only change (a config target) needs no authority key */
    CHECK_OK(tuf_writer_add_target(f.w, "targets", "config/x.json", src, NULL));
    CHECK_OK(fx_publish(&f));
    CHECK_OK(tuf_writer_role_version(f.w, "list-a", &v));
    CHECK_INT(v, 1);
    CHECK_OK(tuf_writer_role_version(f.w, "targets", &v));
    CHECK_INT(v, 2);

    /* an authority update: list-a v2, targets unchanged */
    fx_make_file(src, 333, 6, NULL);
    CHECK_OK(tuf_writer_add_target(f.w, "list-a", "lists/a/snapshot-2.bin", src, NULL));
    CHECK_OK(tuf_writer_sign_role(f.w, "list-a", auth, 2));
    CHECK_OK(fx_publish(&f));
    CHECK_OK(tuf_writer_role_version(f.w, "list-a", &v));
    CHECK_INT(v, 2);
    CHECK_OK(tuf_writer_role_version(f.w, "targets", &v));
    CHECK_INT(v, 2);
    CHECK_OK(client_find(&f, "lists/a/snapshot-2.bin", &info, NULL));
    CHECK_INT(info.length, 333);
    CHECK_OK(fx_refresh(&f, msg, sizeof(msg)));

    /* withdrawing the delegation: no client finds the role's targets any more, but the
     * snapshot keeps listing the role at its last version (dropping it would be a rollback) */
    CHECK_OK(tuf_writer_undelegate(f.w, "targets", "list-a"));
    CHECK_OK(fx_publish(&f));
    CHECK_ERR(client_find(&f, "lists/a/snapshot-2.bin", &info, NULL), POSGATE_ERR_NOTFOUND);
    {
        cJSON *snap;
        char name[64];

        CHECK_OK(tuf_writer_role_version(f.w, "snapshot", &v));
        snprintf(name, sizeof(name), "%lld.snapshot.json", (long long)v);
        fx_path(path, f.meta, name);
        snap = fx_json(path);
        CHECK(snap != NULL);
        CHECK_INT(cJSON_GetObjectItemCaseSensitive(
                      cJSON_GetObjectItemCaseSensitive(
                          cJSON_GetObjectItemCaseSensitive(
                              cJSON_GetObjectItemCaseSensitive(snap, "signed"), "meta"),
                          "list-a.json"),
                      "version")
                      ->valuedouble,
                  2);
        cJSON_Delete(snap);
    }
    CHECK_OK(fx_refresh(&f, msg, sizeof(msg)));
    memset(&seen, 0, sizeof(seen));
    CHECK_OK(tuf_writer_foreach_target(f.w, "list-a", collect, &seen));
    CHECK_INT(seen.n, 0);
    CHECK_ERR(tuf_writer_add_target(f.w, "list-a", "lists/a/snapshot-3.bin", src, NULL),
              POSGATE_ERR_INVALID);
    /* delegated again: the role continues at version 3 */
    CHECK_OK(tuf_writer_delegate(f.w, &d));
    CHECK_OK(tuf_writer_add_target(f.w, "list-a", "lists/a/snapshot-3.bin", src, NULL));
    CHECK_OK(tuf_writer_sign_role(f.w, "list-a", auth, 2));
    CHECK_OK(fx_publish(&f));
    CHECK_OK(tuf_writer_role_version(f.w, "list-a", &v));
    CHECK_INT(v, 3);
    CHECK_OK(client_find(&f, "lists/a/snapshot-3.bin", &info, NULL));
    crypto_privkey_free(auth[0]);
    crypto_privkey_free(auth[1]);
    fx_cleanup(&f);
}

/* Root 1 -> 2 -> 3 -> 4, replacing one root key each time; one client follows every step and
 * another jumps from 1 to 4. */
static void
test_root_rotation(void)
{
    struct fx f;
    struct crypto_privkey *keys[6];
    char msg[1024], path[FX_PATH], late[FX_PATH];
    int64_t v;

    fx_init(&f, "wrot");
    CHECK_OK(fx_publish(&f));
    CHECK_OK(fx_bootstrap(&f));
    fx_path(late, f.base, "late");
    {
        struct buf r;

        fx_path(path, f.meta, "1.root.json");
        CHECK_OK(fx_read(path, &r));
        CHECK_OK(tuf_client_bootstrap(late, r.data, r.len, msg, sizeof(msg)));
        buf_free(&r);
    }
    CHECK_OK(fx_refresh(&f, msg, sizeof(msg)));
    keys[0] = f.root[0];
    keys[1] = f.root[1];
    keys[2] = f.root[2];
    for (int step = 0; step < 3; step++) {
        const char *pems[3];
        struct crypto_privkey *old0 = keys[step], *old1 = keys[step + 1];
        struct crypto_privkey *ring[6];

        keys[step + 3] = fx_key();
        pems[0] = fx_pub(keys[step + 1]);
        pems[1] = fx_pub(keys[step + 2]);
        pems[2] = fx_pub(keys[step + 3]);
        CHECK_OK(tuf_writer_set_role_keys(f.w, "root", &(struct tuf_writer_role_keys){pems, 3, 2}));
        /* old threshold: old0 + old1; new threshold: old1 + the new key */
        ring[0] = old0;
        ring[1] = old1;
        ring[2] = keys[step + 3];
        ring[3] = f.ts;
        ring[4] = f.snap;
        ring[5] = f.tgt;
        CHECK_OK(tuf_writer_publish(f.w, f.repo, ring, 6));
        CHECK_OK(tuf_writer_role_version(f.w, "root", &v));
        CHECK_INT(v, step + 2);
        CHECK_OK(fx_refresh(&f, msg, sizeof(msg)));
        CHECK_INT(fx_trusted_version(&f, "root"), step + 2);
        f.keyring[0] = keys[step + 2];
        f.keyring[1] = keys[step + 3];
    }
    for (int n = 1; n <= 4; n++) {
        char name[32];

        snprintf(name, sizeof(name), "%d.root.json", n);
        fx_path(path, f.meta, name);
        CHECK(plat_exists(path));
    }
    CHECK_OK(fx_refresh_from(late, f.repo, 0, msg, sizeof(msg)));
    {
        struct fx_client fc;
        int64_t e;

        CHECK_OK(fx_client_open(&fc, late, f.repo, 0));
        CHECK_OK(tuf_client_refresh(fc.c));
        CHECK_OK(tuf_client_role_info(fc.c, "root", &v, &e));
        CHECK_INT(v, 4);
        fx_client_close(&fc);
    }
    /* the original root keys can no longer sign alone: a new root needs old and new threshold */
    CHECK_OK(tuf_writer_touch(f.w, "root"));
    f.keyring[0] = f.root[0];
    f.keyring[1] = f.root[1];
    CHECK_ERR(fx_publish(&f), POSGATE_ERR_BADSIG);
    CHECK_CONTAINS(tuf_writer_errmsg(f.w), "role root needs 2 signatures");
    for (int i = 3; i < 6; i++) {
        crypto_privkey_free(keys[i]);
    }
    fx_cleanup(&f);
}

static void
test_sign_file(void)
{
    struct fx f;
    struct crypto_privkey *two[2];
    char path[FX_PATH];
    cJSON *j;

    fx_init(&f, "wsig");
    CHECK_OK(fx_publish(&f));
    fx_path(path, f.meta, "1.targets.json");
    two[0] = f.tgt;
    two[1] = f.tgt;
    CHECK_OK(tuf_writer_sign_file(path, two, 2, 0));
    CHECK_INT(fx_sig_count(path), 2);
    CHECK_OK(tuf_writer_sign_file(path, two, 1, 1));
    CHECK_INT(fx_sig_count(path), 3);
    j = fx_json(path);
    CHECK(j != NULL);
    CHECK_STR(
        cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(j, "signed"), "_type")
            ->valuestring,
        "targets");
    cJSON_Delete(j);
    fx_path(path, f.meta, "absent.json");
    CHECK_ERR(tuf_writer_sign_file(path, two, 1, 0), POSGATE_ERR_NOTFOUND);
    CHECK_ERR(tuf_writer_sign_file(NULL, two, 1, 0), POSGATE_ERR_INVALID);
    fx_cleanup(&f);
}

static int
run(const char *cmd)
{
    int rc = system(cmd);

    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

static void
test_keygen(void)
{
    const char *bin = getenv("POSGATE_BIN");
    char dir[FX_PATH], cmd[3 * FX_PATH], path[FX_PATH];
    struct crypto_privkey *k = NULL;
    struct buf pub, pub2 = BUF_INIT(CRYPTO_PEM_MAX);
    struct stat st;

    if (bin == NULL) {
        fprintf(stderr, "POSGATE_BIN not set: keygen test skipped\n");
        return;
    }
    snprintf(dir, sizeof(dir), "/tmp/posgate-keygen-XXXXXX");
    CHECK(mkdtemp(dir) != NULL);
    snprintf(cmd, sizeof(cmd), "%s/posgate-keygen --out %s/op >/dev/null 2>&1", bin, dir);
    CHECK_INT(run(cmd), 0);
    fx_path(path, dir, "op.key");
    CHECK(stat(path, &st) == 0 && (st.st_mode & 0777) == 0600);
    CHECK_OK(crypto_privkey_load(path, &k));
    fx_path(path, dir, "op.pub");
    CHECK_OK(fx_read(path, &pub));
    if (k != NULL) {
        CHECK_OK(crypto_privkey_public_pem(k, &pub2));
        CHECK_STR(buf_cstr(&pub), buf_cstr(&pub2));
    }
    /* never overwrites */
    CHECK_INT(run(cmd), 5);
    snprintf(cmd, sizeof(cmd), "%s/posgate-keygen --list-key --out %s/list.key >/dev/null 2>&1",
             bin, dir);
    CHECK_INT(run(cmd), 0);
    fx_path(path, dir, "list.key");
    CHECK(stat(path, &st) == 0 && (st.st_mode & 0777) == 0600 && st.st_size == 32);
    CHECK_INT(run(cmd), 5);
    snprintf(cmd, sizeof(cmd), "%s/posgate-keygen --bogus 2>/dev/null", bin);
    CHECK_INT(run(cmd), 2);
    snprintf(cmd, sizeof(cmd), "%s/posgate-keygen 2>/dev/null", bin);
    CHECK_INT(run(cmd), 2);
    snprintf(cmd, sizeof(cmd), "%s/posgate-keygen --help >/dev/null", bin);
    CHECK_INT(run(cmd), 0);
    /* a missing parent directory is made, mode 0700 (it holds private keys) */
    snprintf(cmd, sizeof(cmd), "%s/posgate-keygen --out %s/new/sub/k >/dev/null", bin, dir);
    CHECK_INT(run(cmd), 0);
    fx_path(path, dir, "new/sub");
    CHECK(stat(path, &st) == 0 && S_ISDIR(st.st_mode) && (st.st_mode & 0777) == 0700);
    fx_path(path, dir, "new/sub/k.key");
    CHECK(stat(path, &st) == 0 && (st.st_mode & 0777) == 0600);
    /* ... but a parent that cannot be a directory is an I/O error */
    snprintf(cmd, sizeof(cmd), "%s/posgate-keygen --out %s/list.key/k 2>/dev/null", bin, dir);
    CHECK_INT(run(cmd), 5);
    buf_free(&pub);
    buf_free(&pub2);
    crypto_privkey_free(k);
    fx_rmtree(dir);
}

/* Threshold signing across machines: export, sign elsewhere (tuf_writer_sign_file), import. */
static void
test_export_import(void)
{
    struct fx f;
    struct crypto_privkey *one[1], *newk = fx_key();
    struct tuf_writer_key_list kl;
    struct buf prop = BUF_INIT(1u << 20), got = BUF_INIT(1u << 20), extra = BUF_INIT(4096);
    char path[FX_PATH], msg[1024];
    const char *pems[3];
    int64_t v;

    fx_init(&f, "wexp");
    CHECK_OK(fx_publish(&f));
    CHECK_OK(fx_bootstrap(&f));
    CHECK_OK(fx_refresh(&f, msg, sizeof(msg)));
    /* safety: NULLs, unknown roles, nothing to sign, a role signed at each publication */
    CHECK_ERR(tuf_writer_export_role(NULL, "root", 0, &prop), POSGATE_ERR_INVALID);
    CHECK_ERR(tuf_writer_export_role(f.w, "root", 0, NULL), POSGATE_ERR_INVALID);
    CHECK_ERR(tuf_writer_export_role(f.w, "nosuch", 0, &prop), POSGATE_ERR_NOTFOUND);
    CHECK_ERR(tuf_writer_export_role(f.w, "root", 0, &prop), POSGATE_ERR_STATE);
    CHECK_CONTAINS(tuf_writer_errmsg(f.w), "no changes to sign");
    CHECK_ERR(tuf_writer_export_role(f.w, "timestamp", 0, &prop), POSGATE_ERR_INVALID);
    CHECK_ERR(tuf_writer_import_signed(f.w, "root", NULL, 0), POSGATE_ERR_INVALID);
    CHECK_ERR(tuf_writer_import_signed(f.w, "root", "{", 1), POSGATE_ERR_PARSE);
    CHECK_ERR(tuf_writer_import_signed(f.w, "snapshot", "{}", 2), POSGATE_ERR_INVALID);
    CHECK_ERR(tuf_writer_get_role_keys(f.w, "nosuch", &kl), POSGATE_ERR_NOTFOUND);
    CHECK_ERR(tuf_writer_set_root_field(f.w, "roles", "{}"), POSGATE_ERR_INVALID);
    CHECK_CONTAINS(tuf_writer_errmsg(f.w), "expected a root field of our own");
    CHECK_ERR(tuf_writer_get_root_field(f.w, "x-none", &extra), POSGATE_ERR_NOTFOUND);

    /* the current keys of a role */
    CHECK_OK(tuf_writer_get_role_keys(f.w, "root", &kl));
    CHECK_INT(kl.count, 3);
    CHECK_INT(kl.threshold, 2);
    tuf_writer_key_list_cleanup(&kl);

    /* rotate root key 2 out for a new one, and record a field of our own */
    pems[0] = fx_pub(f.root[0]);
    pems[1] = fx_pub(f.root[1]);
    pems[2] = fx_pub(newk);
    CHECK_OK(tuf_writer_set_role_keys(f.w, "root", &(struct tuf_writer_role_keys){pems, 3, 2}));
    CHECK_OK(tuf_writer_set_root_field(f.w, "x-test", "{\"a\":[1]}"));
    CHECK_OK(tuf_writer_get_root_field(f.w, "x-test", &extra));
    CHECK(extra.len == 9 && memcmp(extra.data, "{\"a\":[1]}", 9) == 0);
    CHECK_OK(tuf_writer_export_role(f.w, "root", 0, &prop));
    CHECK_CONTAINS((const char *)buf_cstr(&prop), "\"signatures\":[]");
    fx_path(path, f.base, "proposal.json");

    /* one old key: below both thresholds */
    fx_write(path, prop.data, prop.len);
    one[0] = f.root[0];
    CHECK_OK(tuf_writer_sign_file(path, one, 1, 1));
    CHECK_OK(fx_read(path, &got));
    CHECK_ERR(tuf_writer_import_signed(f.w, "root", got.data, got.len), POSGATE_ERR_BADSIG);
    CHECK_CONTAINS(tuf_writer_errmsg(f.w), "expected valid signatures from 2 of the new root keys "
                                           "(threshold), found 1");
    buf_free(&got);
    /* the same key twice counts once */
    CHECK_OK(tuf_writer_sign_file(path, one, 1, 1));
    CHECK_OK(fx_read(path, &got));
    CHECK_ERR(tuf_writer_import_signed(f.w, "root", got.data, got.len), POSGATE_ERR_BADSIG);
    buf_free(&got);
    /* root 0 and the removed root 2: the old threshold holds, the new one does not */
    one[0] = f.root[2];
    CHECK_OK(tuf_writer_sign_file(path, one, 1, 1));
    CHECK_OK(fx_read(path, &got));
    CHECK_ERR(tuf_writer_import_signed(f.w, "root", got.data, got.len), POSGATE_ERR_BADSIG);
    CHECK_CONTAINS(tuf_writer_errmsg(f.w), "of the new root keys");
    buf_free(&got);
    /* root 1 as well (on a third machine): accepted */
    one[0] = f.root[1];
    CHECK_OK(tuf_writer_sign_file(path, one, 1, 1));
    CHECK_OK(fx_read(path, &got));
    /* root 1's signature forged (one bit): it does not count, so the threshold fails */
    {
        struct buf forged = BUF_INIT(1u << 20);
        const char *needle = "\"sig\":\"";
        char *at = NULL, *p;

        CHECK_OK(buf_append(&forged, got.data, got.len));
        CHECK_OK(buf_append(&forged, "", 1));
        for (p = strstr((char *)forged.data, needle); p != NULL; p = strstr(p + 1, needle)) {
            at = p; /* the last signature: root 1's */
        }
        CHECK(at != NULL);
        at += strlen(needle) + 20;
        *at = *at == '0' ? '1' : '0';
        CHECK_ERR(tuf_writer_import_signed(f.w, "root", forged.data, forged.len - 1),
                  POSGATE_ERR_BADSIG);
        buf_free(&forged);
    }
    CHECK_OK(tuf_writer_import_signed(f.w, "root", got.data, got.len));
    CHECK_OK(tuf_writer_role_version(f.w, "root", &v));
    CHECK_INT(v, 2);
    /* replayed: not the next version */
    CHECK_ERR(tuf_writer_import_signed(f.w, "root", got.data, got.len), POSGATE_ERR_ROLLBACK);
    CHECK_CONTAINS(tuf_writer_errmsg(f.w), "expected version 3 (the next after 2), found 2");
    buf_free(&got);
    /* published without any root key, and the client follows */
    f.keyring[0] = f.ts;
    f.keyring[1] = f.ts;
    CHECK_OK(fx_publish(&f));
    CHECK_OK(fx_refresh(&f, msg, sizeof(msg)));
    CHECK_INT(fx_trusted_version(&f, "root"), 2);

    /* a targets role: content must be the state's, the signature its key's */
    {
        char src[FX_PATH];

        fx_path(src, f.base, "t.bin");
        fx_write(src, "abc", 3);
        CHECK_OK(tuf_writer_add_target(f.w, "targets", "t.bin", src, NULL));
    }
    buf_reset(&prop);
    CHECK_OK(tuf_writer_export_role(f.w, "targets", 0, &prop));
    fx_write(path, prop.data, prop.len);
    one[0] = f.root[0];
    CHECK_OK(tuf_writer_sign_file(path, one, 1, 1));
    CHECK_OK(fx_read(path, &got));
    CHECK_ERR(tuf_writer_import_signed(f.w, "targets", got.data, got.len), POSGATE_ERR_BADSIG);
    buf_free(&got);
    fx_write(path, prop.data, prop.len);
    one[0] = f.tgt;
    CHECK_OK(tuf_writer_sign_file(path, one, 1, 1));
    CHECK_OK(fx_read(path, &got));
    {
        /* the same signature over other content: refused before any signature is counted */
        struct buf other = BUF_INIT(1u << 20);
        char *at;

        CHECK_OK(buf_append(&other, got.data, got.len));
        CHECK_OK(buf_append(&other, "", 1));
        at = strstr((char *)other.data, "\"t.bin\"");
        CHECK(at != NULL);
        at[1] = 'u';
        CHECK_ERR(tuf_writer_import_signed(f.w, "targets", other.data, other.len - 1),
                  POSGATE_ERR_REJECTED);
        CHECK_CONTAINS(tuf_writer_errmsg(f.w), "differs from the state's next version");
        buf_free(&other);
    }
    CHECK_OK(tuf_writer_import_signed(f.w, "targets", got.data, got.len));
    buf_free(&got);
    f.keyring[2] = f.ts;
    f.keyring[4] = f.snap; /* the targets key is not needed any more */
    CHECK_OK(fx_publish(&f));
    CHECK_OK(fx_refresh(&f, msg, sizeof(msg)));
    CHECK_INT(fx_trusted_version(&f, "targets"), 2);

    buf_free(&prop);
    buf_free(&extra);
    crypto_privkey_free(newk);
    fx_cleanup(&f);
}

int
main(void)
{
    test_keyid();
    test_refusals();
    test_round_trip();
    test_delegation();
    test_root_rotation();
    test_sign_file();
    test_export_import();
    test_keygen();
    fx_pub_free_all();
    return test_summary("tuf_writer");
}
