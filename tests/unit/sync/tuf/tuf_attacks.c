/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The TUF threat model against our own client, with repositories our writer makes (its test
 * knobs play the attacker: wrong signers, forced versions and expiries) and files edited on the
 * carrier. Each attack must be refused with an error that names what was expected and what was
 * found, and must leave the client's trusted metadata directory byte-for-byte as it was. Then
 * the good paths: fresh install, update, root rotation 1 -> 4, timestamp key rotation.
 */
#define _POSIX_C_SOURCE 200809L
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <microhttpd.h>

#include "tuf_fixture.h"

#define TARGET1 "lists/a/snapshot-1.bin"
#define TARGET2 "lists/a/snapshot-2.bin"

/* A repository at version 2 (timestamp 2, snapshot 2, targets 2) that the client trusts. */
static void
setup(struct fx *f, const char *tag)
{
    char src[FX_PATH], msg[1024];

    fx_init(f, tag);
    fx_path(src, f->base, "t1.bin");
    fx_make_file(src, 70000, 11, NULL);
    CHECK_OK(tuf_writer_add_target(f->w, "targets", TARGET1, src, "{\"seq\":1}"));
    CHECK_OK(fx_publish(f));
    CHECK_OK(fx_bootstrap(f));
    CHECK_OK(fx_refresh(f, msg, sizeof(msg)));
    fx_path(src, f->base, "t2.bin");
    fx_make_file(src, 80000, 12, NULL);
    CHECK_OK(tuf_writer_add_target(f->w, "targets", TARGET2, src, "{\"seq\":2}"));
    CHECK_OK(fx_publish(f));
    CHECK_OK(fx_refresh(f, msg, sizeof(msg)));
    CHECK_INT(fx_trusted_version(f, "timestamp"), 2);
    CHECK_INT(fx_trusted_version(f, "targets"), 2);
}

/*
 * What a refused refresh may leave changed. The specification (section 5) persists each
 * verified file before the next step, and the public conformance suite checks it: a new, valid
 * timestamp is kept when its snapshot is then refused. So an attack on the snapshot may advance
 * the trusted timestamp, one on targets also the snapshot, and an expired final root is kept as
 * the trust anchor; each only to the repository's own, validly signed file. Everything else,
 * the attacked role above all, must stay byte-for-byte as it was.
 */
#define ADV_NONE 0
#define ADV_ROOT 1
#define ADV_TS   2
#define ADV_SNAP 4

/* 1 when the trusted file name may have advanced under adv and now equals the repository's. */
static int
advanced_ok(struct fx *f, const char *name, int adv)
{
    char trusted[FX_LONG], repo[FX_LONG];
    struct buf a, b;
    int64_t v;
    int same = 0;

    if (strcmp(name, "timestamp.json") == 0 && (adv & ADV_TS)) {
        snprintf(repo, sizeof(repo), "%s/timestamp.json", f->meta);
    } else if (strcmp(name, "snapshot.json") == 0 && (adv & ADV_SNAP)) {
        v = fx_trusted_version(f, "snapshot");
        snprintf(repo, sizeof(repo), "%s/%lld.snapshot.json", f->meta, (long long)v);
    } else if (strcmp(name, "root.json") == 0 && (adv & ADV_ROOT)) {
        v = fx_trusted_version(f, "root");
        snprintf(repo, sizeof(repo), "%s/%lld.root.json", f->meta, (long long)v);
    } else {
        return 0;
    }
    snprintf(trusted, sizeof(trusted), "%s/%s", f->trusted, name);
    if (fx_read(trusted, &a) == POSGATE_OK && fx_read(repo, &b) == POSGATE_OK) {
        same = a.len == b.len && memcmp(a.data, b.data, a.len) == 0;
    }
    buf_free(&a);
    buf_free(&b);
    return same;
}

/* Compares the trusted directory with before, allowing only the advances of adv. */
static int
trusted_unchanged(struct fx *f, const struct fx_dirpic *before, int adv)
{
    struct fx_dirpic now;
    int ok = 1;

    fx_pic_take(&now, f->trusted);
    for (size_t j = 0; j < now.n; j++) {
        size_t i;
        int same;

        for (i = 0; i < before->n; i++) {
            if (strcmp(now.names[j], before->names[i]) == 0) {
                break;
            }
        }
        same = i < before->n && now.data[j].len == before->data[i].len &&
               memcmp(now.data[j].data, before->data[i].data, now.data[j].len) == 0;
        if (!same && !advanced_ok(f, now.names[j], adv)) {
            fprintf(stderr, "trusted file %s changed\n", now.names[j]);
            ok = 0;
        }
    }
    for (size_t i = 0; i < before->n; i++) {
        size_t j;

        for (j = 0; j < now.n; j++) {
            if (strcmp(now.names[j], before->names[i]) == 0) {
                break;
            }
        }
        if (j == now.n) {
            fprintf(stderr, "trusted file %s disappeared\n", before->names[i]);
            ok = 0;
        }
    }
    fx_pic_free(&now);
    return ok;
}

/* A refresh that must fail with want, a message holding every needle, and no trusted change
 * beyond adv. */
static void
expect_refused_at(struct fx *f, const char *repo, int64_t now, enum posgate_err want, int adv,
                  const char *n1, const char *n2, const char *n3)
{
    struct fx_dirpic before;
    char msg[1024];

    fx_pic_take(&before, f->trusted);
    CHECK(before.n >= 1);
    CHECK_ERR(fx_refresh_from(f->trusted, repo, now, msg, sizeof(msg)), want);
    CHECK_CONTAINS(msg, n1);
    if (n2 != NULL) {
        CHECK_CONTAINS(msg, n2);
    }
    if (n3 != NULL) {
        CHECK_CONTAINS(msg, n3);
    }
    CHECK(trusted_unchanged(f, &before, adv));
    fx_pic_free(&before);
}

static void
expect_refused(struct fx *f, enum posgate_err want, int adv, const char *n1, const char *n2,
               const char *n3)
{
    expect_refused_at(f, f->repo, 0, want, adv, n1, n2, n3);
}

/* The repository path of a target's consistent file. */
static void
target_file(struct fx *f, const char *name, char *out)
{
    struct fx_client fc;
    struct tuf_target_info info;
    char hex[2 * CRYPTO_SHA256_LEN + 1];
    const char *slash = strrchr(name, '/');

    out[0] = 0;
    CHECK_OK(fx_client_open(&fc, f->trusted, f->repo, 0));
    CHECK_OK(tuf_client_refresh(fc.c));
    CHECK_OK(tuf_client_find_target(fc.c, name, &info));
    crypto_hex(info.sha256, sizeof(info.sha256), hex);
    {
        struct buf b = BUF_INIT(FX_PATH);

        CHECK_OK(
            buf_printf(&b, "%s/%.*s/%s.%s", f->targets, (int)(slash - name), name, hex, slash + 1));
        snprintf(out, FX_PATH, "%s", buf_cstr(&b));
        buf_free(&b);
    }
    fx_client_close(&fc);
}

/* A download that must fail with want; no file appears at the destination. */
static void
expect_download_refused(struct fx *f, const char *name, enum posgate_err want, const char *n1,
                        const char *n2)
{
    struct fx_client fc;
    struct tuf_target_info info;
    struct fx_dirpic before;
    char dest[FX_PATH];

    fx_path(dest, f->base, "download.bin");
    CHECK_OK(fx_client_open(&fc, f->trusted, f->repo, 0));
    CHECK_OK(tuf_client_refresh(fc.c));
    fx_pic_take(&before, f->trusted);
    CHECK_OK(tuf_client_find_target(fc.c, name, &info));
    CHECK_ERR(tuf_client_download(fc.c, &info, dest), want);
    CHECK_CONTAINS(tuf_client_errmsg(fc.c), n1);
    if (n2 != NULL) {
        CHECK_CONTAINS(tuf_client_errmsg(fc.c), n2);
    }
    CHECK(!plat_exists(dest));
    CHECK(fx_pic_same(&before, f->trusted));
    fx_pic_free(&before);
    fx_client_close(&fc);
}

static void
append_bytes(const char *path, char c, size_t n)
{
    struct buf b;
    size_t i;

    CHECK_OK(fx_read(path, &b));
    for (i = 0; i < n && buf_append(&b, &c, 1) == POSGATE_OK; i++) {
    }
    CHECK_INT(i, n);
    fx_write(path, b.data, b.len);
    buf_free(&b);
}

static void
meta_file(struct fx *f, const char *name, char *out)
{
    fx_path(out, f->meta, name);
}

/* ---- attacks ----------------------------------------------------------------------------- */

static void
test_arbitrary_file(void)
{
    struct fx f;
    char path[FX_PATH];
    struct buf b;

    setup(&f, "aarb");
    target_file(&f, TARGET2, path);
    CHECK_OK(fx_read(path, &b));
    b.data[100] ^= 0x55; /* same length, other content */
    fx_write(path, b.data, b.len);
    buf_free(&b);
    expect_download_refused(&f, TARGET2, POSGATE_ERR_BADHASH, "sha256", NULL);
    fx_cleanup(&f);
}

static void
test_endless_data(void)
{
    struct fx f;
    char path[FX_PATH], name[64];
    int64_t v;

    /* a target longer than its metadata says */
    setup(&f, "aend");
    target_file(&f, TARGET2, path);
    append_bytes(path, 'x', 5000);
    expect_download_refused(&f, TARGET2, POSGATE_ERR_TOOBIG, "longer than the 80000 bytes", NULL);

    /* a timestamp.json that never ends (past the client's cap) */
    meta_file(&f, "timestamp.json", path);
    append_bytes(path, ' ', 20000);
    expect_refused(&f, POSGATE_ERR_TOOBIG, ADV_NONE, "timestamp.json",
                   "longer than the 16384 bytes", NULL);
    fx_cleanup(&f);

    /* a snapshot longer than the length the timestamp lists */
    setup(&f, "aend2");
    CHECK_OK(tuf_writer_touch(f.w, "snapshot"));
    CHECK_OK(fx_publish(&f));
    CHECK_OK(tuf_writer_role_version(f.w, "snapshot", &v));
    snprintf(name, sizeof(name), "%lld.snapshot.json", (long long)v);
    meta_file(&f, name, path);
    append_bytes(&path[0], ' ', 100);
    expect_refused(&f, POSGATE_ERR_TOOBIG, ADV_TS, name, "longer than", NULL);
    fx_cleanup(&f);

    /* a targets file longer than the length the snapshot lists */
    setup(&f, "aend3");
    tuf_writer_set_snapshot_hashes(f.w, 1);
    CHECK_OK(tuf_writer_touch(f.w, "targets"));
    CHECK_OK(fx_publish(&f));
    meta_file(&f, "3.targets.json", path);
    append_bytes(path, ' ', 100);
    expect_refused(&f, POSGATE_ERR_TOOBIG, ADV_TS | ADV_SNAP, "3.targets.json", "longer than",
                   NULL);
    fx_cleanup(&f);
}

static void
test_rollback(void)
{
    struct fx f;
    char path[FX_PATH], old_ts[FX_PATH];

    /* an old timestamp served again */
    fx_init(&f, "arb1");
    CHECK_OK(fx_publish(&f));
    CHECK_OK(fx_bootstrap(&f));
    meta_file(&f, "timestamp.json", path);
    fx_path(old_ts, f.base, "timestamp-1.json");
    fx_copy_file(path, old_ts);
    CHECK_OK(fx_publish(&f));
    {
        char msg[1024];

        CHECK_OK(fx_refresh(&f, msg, sizeof(msg)));
    }
    fx_copy_file(old_ts, path);
    expect_refused(&f, POSGATE_ERR_ROLLBACK, ADV_NONE, "timestamp version 1",
                   "older than trusted version 2", NULL);
    fx_cleanup(&f);

    /* a new timestamp that lists an older snapshot */
    setup(&f, "arb2");
    CHECK_OK(tuf_writer_set_version(f.w, "snapshot", 1));
    CHECK_OK(fx_publish(&f));
    expect_refused(&f, POSGATE_ERR_ROLLBACK, ADV_NONE, "snapshot version 1", "older than version 2",
                   NULL);
    fx_cleanup(&f);

    /* a new snapshot that lists an older targets */
    setup(&f, "arb3");
    CHECK_OK(tuf_writer_set_version(f.w, "targets", 1));
    CHECK_OK(fx_publish(&f));
    expect_refused(&f, POSGATE_ERR_ROLLBACK, ADV_TS, "targets.json version 1",
                   "older than version 2", NULL);
    fx_cleanup(&f);
}

static void
test_freeze(void)
{
    static const char *const roles[4] = {"timestamp", "snapshot", "targets", "root"};
    static const int adv[4] = {ADV_NONE, ADV_TS, ADV_TS | ADV_SNAP, ADV_ROOT};
    struct fx f;

    for (int i = 0; i < 4; i++) {
        char tag[16], what[64];

        snprintf(tag, sizeof(tag), "afr%d", i);
        setup(&f, tag);
        CHECK_OK(tuf_writer_set_expires(f.w, roles[i], f.now - 60));
        CHECK_OK(fx_publish(&f));
        snprintf(what, sizeof(what), "%s version", roles[i]);
        expect_refused(&f, POSGATE_ERR_EXPIRED, adv[i], what, "expired at", "(now ");
        fx_cleanup(&f);
    }
    /* the repository stops changing; the kiosk's clock moves on */
    setup(&f, "afr4");
    expect_refused_at(&f, f.repo, f.now + 3 * 86400, POSGATE_ERR_EXPIRED, ADV_NONE,
                      "timestamp version 2", "expired at", NULL);
    fx_cleanup(&f);
}

/* The carrier serves another snapshot's bytes under the name the timestamp lists: refused on
 * length (the listed length caps the download: TOOBIG) or on the sha256 the timestamp lists. */
static void
expect_snapshot_swap_refused(struct fx *f, const char *old_path)
{
    struct buf old;
    cJSON *ts;
    const cJSON *len;
    char path[FX_PATH];

    meta_file(f, "timestamp.json", path);
    ts = fx_json(path);
    len = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(
            cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(ts, "signed"),
                                             "meta"),
            "snapshot.json"),
        "length");
    CHECK(cJSON_IsNumber(len));
    CHECK_OK(fx_read(old_path, &old));
    if (cJSON_IsNumber(len) && (double)old.len > len->valuedouble) {
        expect_refused(f, POSGATE_ERR_TOOBIG, ADV_TS, "3.snapshot.json", "longer than", NULL);
    } else {
        expect_refused(f, POSGATE_ERR_BADHASH, ADV_TS, "3.snapshot.json", NULL, NULL);
    }
    buf_free(&old);
    cJSON_Delete(ts);
}

static void
test_mix_and_match(void)
{
    struct fx f;
    char from[FX_PATH], to[FX_PATH];

    /* snapshot 3 lists targets 3; the carrier serves targets 2 under that name */
    setup(&f, "amix");
    CHECK_OK(tuf_writer_touch(f.w, "targets"));
    CHECK_OK(fx_publish(&f));
    meta_file(&f, "2.targets.json", from);
    meta_file(&f, "3.targets.json", to);
    fx_copy_file(from, to);
    expect_refused(&f, POSGATE_ERR_ROLLBACK, ADV_TS | ADV_SNAP, "targets version 2",
                   "does not match version 3 listed in snapshot", NULL);
    fx_cleanup(&f);

    /* timestamp 3 lists snapshot 3 with its hash; the carrier serves snapshot 2's bytes */
    setup(&f, "amix2");
    CHECK_OK(tuf_writer_touch(f.w, "snapshot"));
    CHECK_OK(fx_publish(&f));
    meta_file(&f, "2.snapshot.json", from);
    meta_file(&f, "3.snapshot.json", to);
    fx_copy_file(from, to);
    expect_snapshot_swap_refused(&f, from);
    fx_cleanup(&f);
}

static void
test_fast_forward(void)
{
    struct fx f;
    struct crypto_privkey *new_ts = fx_key();
    const char *pem[1] = {fx_pub(new_ts)};
    char path[FX_PATH], evil[FX_PATH], msg[1024];

    setup(&f, "aff");
    /* a thief of the timestamp key pushes the version to 100; the client cannot tell */
    CHECK_OK(tuf_writer_set_version(f.w, "timestamp", 100));
    CHECK_OK(fx_publish(&f));
    CHECK_OK(fx_refresh(&f, msg, sizeof(msg)));
    CHECK_INT(fx_trusted_version(&f, "timestamp"), 100);
    meta_file(&f, "timestamp.json", path);
    fx_path(evil, f.base, "timestamp-100.json");
    fx_copy_file(path, evil);
    /* the publisher's next honest timestamp now looks like a rollback */
    CHECK_OK(tuf_writer_set_version(f.w, "timestamp", 4));
    CHECK_OK(fx_publish(&f));
    expect_refused(&f, POSGATE_ERR_ROLLBACK, ADV_NONE, "timestamp version 4",
                   "older than trusted version 100", NULL);
    /* recovery: rotate the timestamp key in root 2; the client drops the fast-forwarded file */
    CHECK_OK(tuf_writer_set_role_keys(f.w, "timestamp", &(struct tuf_writer_role_keys){pem, 1, 1}));
    CHECK_OK(tuf_writer_set_version(f.w, "timestamp", 5));
    f.keyring[2] = new_ts;
    CHECK_OK(fx_publish(&f));
    CHECK_OK(fx_refresh(&f, msg, sizeof(msg)));
    CHECK_INT(fx_trusted_version(&f, "root"), 2);
    CHECK_INT(fx_trusted_version(&f, "timestamp"), 5);
    /* the thief replays the version-100 timestamp signed with the old key */
    fx_copy_file(evil, path);
    expect_refused(&f, POSGATE_ERR_BADSIG, ADV_NONE,
                   "timestamp has 0 valid signatures of threshold 1", "root 2", NULL);
    crypto_privkey_free(new_ts);
    fx_cleanup(&f);
}

static void
test_wrong_keys(void)
{
    struct fx f;
    struct crypto_privkey *rogue = fx_key();
    struct crypto_privkey *one[1];

    setup(&f, "awk1");
    one[0] = rogue;
    CHECK_OK(tuf_writer_set_signers(f.w, "timestamp", one, 1));
    CHECK_OK(fx_publish(&f));
    expect_refused(&f, POSGATE_ERR_BADSIG, ADV_NONE,
                   "timestamp has 0 valid signatures of threshold 1", NULL, NULL);
    fx_cleanup(&f);

    setup(&f, "awk2");
    one[0] = f.tgt; /* a key of the repository, but not the snapshot's */
    CHECK_OK(tuf_writer_set_signers(f.w, "snapshot", one, 1));
    CHECK_OK(fx_publish(&f));
    expect_refused(&f, POSGATE_ERR_BADSIG, ADV_TS, "snapshot has 0 valid signatures of threshold 1",
                   NULL, NULL);
    fx_cleanup(&f);

    setup(&f, "awk3");
    one[0] = rogue;
    CHECK_OK(tuf_writer_set_signers(f.w, "targets", one, 1));
    CHECK_OK(fx_publish(&f));
    expect_refused(&f, POSGATE_ERR_BADSIG, ADV_TS | ADV_SNAP, "targets",
                   "0 valid signatures of threshold 1", NULL);
    fx_cleanup(&f);

    /* no signature at all */
    setup(&f, "awk4");
    CHECK_OK(tuf_writer_set_signers(f.w, "timestamp", one, 0));
    CHECK_OK(fx_publish(&f));
    expect_refused(&f, POSGATE_ERR_BADSIG, ADV_NONE, "timestamp has 0 valid signatures", NULL,
                   NULL);
    fx_cleanup(&f);
    crypto_privkey_free(rogue);
}

/* targets with two keys and threshold 2, trusted by the client; then too few / duplicates. */
static void
test_threshold(void)
{
    struct fx f;
    struct crypto_privkey *tgt2 = fx_key();
    const char *pems[2];
    struct crypto_privkey *ring[7];
    struct crypto_privkey *signers[2];
    char msg[1024];

    for (int dup = 0; dup < 2; dup++) {
        setup(&f, dup ? "adup" : "afew");
        pems[0] = fx_pub(f.tgt);
        pems[1] = fx_pub(tgt2);
        CHECK_OK(
            tuf_writer_set_role_keys(f.w, "targets", &(struct tuf_writer_role_keys){pems, 2, 2}));
        memcpy(ring, f.keyring, 5 * sizeof(ring[0]));
        ring[5] = tgt2;
        CHECK_OK(tuf_writer_publish(f.w, f.repo, ring, 6));
        CHECK_OK(fx_refresh(&f, msg, sizeof(msg)));
        CHECK_INT(fx_trusted_version(&f, "root"), 2);
        CHECK_INT(fx_trusted_version(&f, "targets"), 3);
        signers[0] = f.tgt;
        signers[1] = f.tgt; /* the same key twice counts once */
        CHECK_OK(tuf_writer_set_signers(f.w, "targets", signers, dup ? 2 : 1));
        CHECK_OK(tuf_writer_publish(f.w, f.repo, ring, 6));
        {
            char path[FX_PATH];

            meta_file(&f, "4.targets.json", path);
            CHECK_INT(fx_sig_count(path), dup ? 2 : 1);
        }
        if (!dup) {
            expect_refused(&f, POSGATE_ERR_BADSIG, ADV_TS | ADV_SNAP, "targets",
                           "1 valid signature of threshold 2", NULL);
        } else {
            /* our parser refuses a keyid that signs twice outright (python-tuf does too);
             * a client that counts it once would say "1 valid signature of threshold 2" */
            expect_refused(&f, POSGATE_ERR_PARSE, ADV_TS | ADV_SNAP, "4.targets.json",
                           "appears twice in signatures", NULL);
        }
        fx_cleanup(&f);
    }
    crypto_privkey_free(tgt2);
}

/* Copies dir/metadata and dir/targets (two levels) to a mirror, as a stale mirror would. */
static void
copy_tree(const char *from, const char *to)
{
    DIR *d = opendir(from);
    struct dirent *e;
    char a[FX_PATH], b[FX_PATH];
    struct stat st;

    CHECK(d != NULL);
    if (d == NULL) {
        return;
    }
    CHECK_OK(plat_mkdir_p(to, 0755));
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') {
            continue;
        }
        fx_path(a, from, e->d_name);
        fx_path(b, to, e->d_name);
        if (stat(a, &st) == 0 && S_ISDIR(st.st_mode)) {
            copy_tree(a, b);
        } else {
            fx_copy_file(a, b);
        }
    }
    closedir(d);
}

static void
test_malicious_mirror(void)
{
    struct fx f;
    char mirror[FX_PATH], msg[1024], src[FX_PATH];

    setup(&f, "amir");
    fx_path(mirror, f.base, "mirror");
    copy_tree(f.repo, mirror); /* the mirror freezes at version 2 */
    fx_path(src, f.base, "t3.bin");
    fx_make_file(src, 1234, 13, NULL);
    CHECK_OK(tuf_writer_add_target(f.w, "targets", "lists/a/snapshot-3.bin", src, NULL));
    CHECK_OK(fx_publish(&f));
    CHECK_OK(fx_refresh(&f, msg, sizeof(msg)));
    CHECK_INT(fx_trusted_version(&f, "timestamp"), 3);
    /* the mirror's files are all validly signed, only old */
    expect_refused_at(&f, mirror, 0, POSGATE_ERR_ROLLBACK, ADV_NONE, "timestamp version 2",
                      "older than trusted version 3", NULL);
    fx_cleanup(&f);
}

static void
test_bad_root_rotation(void)
{
    struct fx f;
    struct crypto_privkey *nk[3] = {fx_key(), fx_key(), fx_key()};
    const char *pems[3] = {fx_pub(nk[0]), fx_pub(nk[1]), fx_pub(nk[2])};
    struct tuf_writer_role_keys newroot = {pems, 3, 2};
    struct crypto_privkey *signers[3];
    char from[FX_PATH], to[FX_PATH];

    /* root 2 signed only by the new keys */
    setup(&f, "arr1");
    CHECK_OK(tuf_writer_set_role_keys(f.w, "root", &newroot));
    signers[0] = nk[0];
    signers[1] = nk[1];
    CHECK_OK(tuf_writer_set_signers(f.w, "root", signers, 2));
    CHECK_OK(fx_publish(&f));
    expect_refused(&f, POSGATE_ERR_BADSIG, ADV_NONE, "root 2 has 0 valid signatures of threshold 2",
                   "by the old root's (version 1) keys", NULL);
    fx_cleanup(&f);

    /* root 2 signed by one old key: below the old threshold */
    setup(&f, "arr2");
    CHECK_OK(tuf_writer_set_role_keys(f.w, "root", &newroot));
    signers[0] = f.root[0];
    signers[1] = nk[0];
    signers[2] = nk[1];
    CHECK_OK(tuf_writer_set_signers(f.w, "root", signers, 3));
    CHECK_OK(fx_publish(&f));
    expect_refused(&f, POSGATE_ERR_BADSIG, ADV_NONE, "root 2 has 1 valid signature of threshold 2",
                   "old root", NULL);
    fx_cleanup(&f);

    /* root 2 not signed by its own new keys */
    setup(&f, "arr3");
    CHECK_OK(tuf_writer_set_role_keys(f.w, "root", &newroot));
    signers[0] = f.root[0];
    signers[1] = f.root[1];
    CHECK_OK(tuf_writer_set_signers(f.w, "root", signers, 2));
    CHECK_OK(fx_publish(&f));
    expect_refused(&f, POSGATE_ERR_BADSIG, ADV_NONE, "root 2 has 0 valid signatures of threshold 2",
                   "by its own root keys", NULL);
    fx_cleanup(&f);

    /* root 3 served as 2.root.json: a version may not be skipped */
    setup(&f, "arr4");
    CHECK_OK(tuf_writer_set_role_keys(f.w, "root", &newroot));
    CHECK_OK(tuf_writer_set_version(f.w, "root", 3));
    {
        struct crypto_privkey *ring[7] = {f.root[0], f.root[1], nk[0], nk[1], f.ts, f.snap, f.tgt};

        CHECK_OK(tuf_writer_publish(f.w, f.repo, ring, 7));
    }
    meta_file(&f, "3.root.json", from);
    meta_file(&f, "2.root.json", to);
    CHECK(!plat_exists(to));
    fx_copy_file(from, to);
    expect_refused(&f, POSGATE_ERR_REJECTED, ADV_NONE, "2.root.json holds root version 3",
                   "expected 2", NULL);
    fx_cleanup(&f);
    for (int i = 0; i < 3; i++) {
        crypto_privkey_free(nk[i]);
    }
}

static void
test_delegation_signed_by_delegator(void)
{
    struct fx f;
    struct crypto_privkey *auth = fx_key();
    const char *pem[1] = {fx_pub(auth)};
    const char *paths[1] = {"lists/b/*"};
    struct tuf_writer_delegation d;
    struct crypto_privkey *one[1];
    struct fx_client fc;
    struct fx_dirpic before;
    struct tuf_target_info info;
    char src[FX_PATH], msg[1024];

    setup(&f, "adel");
    memset(&d, 0, sizeof(d));
    d.delegator = "targets";
    d.name = "list-b";
    d.paths = paths;
    d.path_count = 1;
    d.keys = (struct tuf_writer_role_keys){pem, 1, 1};
    d.terminating = 1;
    CHECK_OK(tuf_writer_delegate(f.w, &d));
    fx_path(src, f.base, "b1.bin");
    fx_make_file(src, 500, 21, NULL);
    CHECK_OK(tuf_writer_add_target(f.w, "list-b", "lists/b/snapshot-1.bin", src, NULL));
    one[0] = auth;
    CHECK_OK(tuf_writer_sign_role(f.w, "list-b", one, 1));
    CHECK_OK(fx_publish(&f));
    CHECK_OK(fx_refresh(&f, msg, sizeof(msg)));
    CHECK_OK(fx_client_open(&fc, f.trusted, f.repo, 0));
    CHECK_OK(tuf_client_refresh(fc.c));
    CHECK_OK(tuf_client_find_target(fc.c, "lists/b/snapshot-1.bin", &info));
    fx_client_close(&fc);

    /* the operator puts a target on the authority's list and signs it with its own key */
    fx_make_file(src, 600, 22, NULL);
    CHECK_OK(tuf_writer_add_target(f.w, "list-b", "lists/b/snapshot-2.bin", src, NULL));
    one[0] = f.tgt;
    CHECK_OK(tuf_writer_set_signers(f.w, "list-b", one, 1));
    CHECK_OK(fx_publish(&f));
    CHECK_OK(fx_client_open(&fc, f.trusted, f.repo, 0));
    CHECK_OK(tuf_client_refresh(fc.c));
    fx_pic_take(&before, f.trusted);
    CHECK_ERR(tuf_client_find_target(fc.c, "lists/b/snapshot-2.bin", &info), POSGATE_ERR_BADSIG);
    CHECK_CONTAINS(tuf_client_errmsg(fc.c), "list-b");
    CHECK_CONTAINS(tuf_client_errmsg(fc.c), "0 valid signatures of threshold 1");
    CHECK_CONTAINS(tuf_client_errmsg(fc.c), "targets delegates");
    CHECK(fx_pic_same(&before, f.trusted));
    fx_pic_free(&before);
    fx_client_close(&fc);
    crypto_privkey_free(auth);
    fx_cleanup(&f);
}

/* ---- a tiny HTTP server on 127.0.0.1 (libmicrohttpd) ---------------------------------------
 * Serves files below root; with endless set, GET of that name answers with a body that never
 * ends (chunked, no length), the endless data attack over a real network carrier. */

struct http_srv {
    struct MHD_Daemon *d;
    char root[FX_PATH];
    const char *endless; /* URL path served endlessly, or NULL */
    unsigned short port;
    unsigned long long endless_sent;
};

static ssize_t
endless_body(void *cls, uint64_t pos, char *out, size_t max)
{
    struct http_srv *h = cls;

    (void)pos;
    memset(out, ' ', max);
    h->endless_sent += max;
    return (ssize_t)max;
}

static enum MHD_Result
http_handler(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
             const char *version, const char *upload_data, size_t *upload_data_size, void **state)
{
    struct http_srv *h = cls;
    struct MHD_Response *resp;
    struct buf body;
    char path[FX_LONG];
    unsigned code = MHD_HTTP_OK;
    enum MHD_Result rc;

    (void)version;
    (void)upload_data;
    (void)upload_data_size;
    (void)state;
    if (strcmp(method, "GET") != 0) {
        return MHD_NO;
    }
    if (h->endless != NULL && strcmp(url, h->endless) == 0) {
        resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, endless_body, h, NULL);
    } else {
        buf_init(&body, 0);
        if (strstr(url, "..") != NULL ||
            snprintf(path, sizeof(path), "%s%s", h->root, url) >= (int)sizeof(path) ||
            fx_read(path, &body) != POSGATE_OK) {
            code = MHD_HTTP_NOT_FOUND;
            buf_reset(&body);
        }
        resp = MHD_create_response_from_buffer(body.len, body.len > 0 ? body.data : (void *)"",
                                               MHD_RESPMEM_MUST_COPY);
        buf_free(&body);
    }
    if (resp == NULL) {
        return MHD_NO;
    }
    rc = MHD_queue_response(conn, code, resp);
    MHD_destroy_response(resp);
    return rc;
}

static int
http_start(struct http_srv *h, const char *root)
{
    struct sockaddr_in a;
    const union MHD_DaemonInfo *info;

    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_port = 0;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    snprintf(h->root, sizeof(h->root), "%s", root);
    h->d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD, 0, NULL, NULL, http_handler, h,
                            MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&a, MHD_OPTION_END);
    if (h->d == NULL) {
        return 0;
    }
    info = MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_BIND_PORT);
    h->port = info != NULL ? info->port : 0;
    return h->port != 0;
}

static void
http_stop(struct http_srv *h)
{
    if (h->d != NULL) {
        MHD_stop_daemon(h->d);
        h->d = NULL;
    }
}

/* One refresh over HTTP against the server's repository. */
static enum posgate_err
http_refresh(struct fx *f, const struct http_srv *h, char *msg, size_t cap)
{
    struct carrier *meta = NULL, *tg = NULL;
    struct tuf_client *c = NULL;
    struct tuf_client_options opt;
    char url[128];
    enum posgate_err err;

    snprintf(url, sizeof(url), "http://127.0.0.1:%u/metadata/", (unsigned)h->port);
    err = carrier_http_new(url, NULL, &meta);
    snprintf(url, sizeof(url), "http://127.0.0.1:%u/targets/", (unsigned)h->port);
    if (err == POSGATE_OK) {
        err = carrier_http_new(url, NULL, &tg);
    }
    memset(&opt, 0, sizeof(opt));
    opt.metadata_dir = f->trusted;
    opt.metadata = meta;
    opt.targets = tg;
    if (err == POSGATE_OK) {
        err = tuf_client_new(&opt, &c);
    }
    if (err == POSGATE_OK) {
        err = tuf_client_refresh(c);
    }
    snprintf(msg, cap, "%s", tuf_client_errmsg(c));
    tuf_client_free(c);
    carrier_free(meta);
    carrier_free(tg);
    return err;
}

static void
test_http_carrier(void)
{
    struct fx f;
    struct http_srv h;
    struct fx_dirpic before;
    char mirror[FX_PATH], msg[1024], src[FX_PATH];

    setup(&f, "ahttp");
    fx_path(mirror, f.base, "mirror");
    copy_tree(f.repo, mirror); /* a mirror that stops at version 2 */
    fx_path(src, f.base, "t3.bin");
    fx_make_file(src, 999, 41, NULL);
    CHECK_OK(tuf_writer_add_target(f.w, "targets", "lists/a/snapshot-3.bin", src, NULL));
    CHECK_OK(fx_publish(&f));

    /* the good server: update over HTTP */
    memset(&h, 0, sizeof(h));
    CHECK(http_start(&h, f.repo));
    CHECK_OK(http_refresh(&f, &h, msg, sizeof(msg)));
    CHECK_INT(fx_trusted_version(&f, "timestamp"), 3);

    /* a timestamp.json that never ends: the client stops at its cap */
    h.endless = "/metadata/timestamp.json";
    fx_pic_take(&before, f.trusted);
    CHECK_ERR(http_refresh(&f, &h, msg, sizeof(msg)), POSGATE_ERR_TOOBIG);
    CHECK_CONTAINS(msg, "timestamp.json");
    CHECK_CONTAINS(msg, "longer than the 16384 bytes");
    CHECK(h.endless_sent < 16u << 20); /* the client hung up long before 16 MiB */
    CHECK(trusted_unchanged(&f, &before, ADV_NONE));
    fx_pic_free(&before);
    http_stop(&h);

    /* a malicious mirror serving the old, validly signed files */
    memset(&h, 0, sizeof(h));
    CHECK(http_start(&h, mirror));
    fx_pic_take(&before, f.trusted);
    CHECK_ERR(http_refresh(&f, &h, msg, sizeof(msg)), POSGATE_ERR_ROLLBACK);
    CHECK_CONTAINS(msg, "timestamp version 2");
    CHECK_CONTAINS(msg, "older than trusted version 3");
    CHECK(trusted_unchanged(&f, &before, ADV_NONE));
    fx_pic_free(&before);
    http_stop(&h);
    fx_cleanup(&f);
}

/* ---- good paths -------------------------------------------------------------------------- */

static void
test_good_paths(void)
{
    struct fx f;
    struct crypto_privkey *keys[6], *new_ts = fx_key();
    const char *pem[1];
    char msg[1024], src[FX_PATH], dest[FX_PATH];
    struct fx_client fc;
    struct tuf_target_info info;

    /* fresh install and update */
    setup(&f, "agood");
    fx_path(dest, f.base, "t2.out");
    CHECK_OK(fx_client_open(&fc, f.trusted, f.repo, 0));
    CHECK_OK(tuf_client_refresh(fc.c));
    CHECK_OK(tuf_client_find_target(fc.c, TARGET2, &info));
    CHECK_OK(tuf_client_download(fc.c, &info, dest));
    CHECK_OK(tuf_client_verify_file(fc.c, &info, dest));
    fx_client_close(&fc);

    /* root rotation 1 -> 2 -> 3 -> 4 with the timestamp key rotated at root 3 */
    keys[0] = f.root[0];
    keys[1] = f.root[1];
    keys[2] = f.root[2];
    for (int step = 0; step < 3; step++) {
        const char *pems[3];
        struct crypto_privkey *ring[7];

        keys[step + 3] = fx_key();
        pems[0] = fx_pub(keys[step + 1]);
        pems[1] = fx_pub(keys[step + 2]);
        pems[2] = fx_pub(keys[step + 3]);
        CHECK_OK(tuf_writer_set_role_keys(f.w, "root", &(struct tuf_writer_role_keys){pems, 3, 2}));
        if (step == 1) {
            pem[0] = fx_pub(new_ts);
            CHECK_OK(tuf_writer_set_role_keys(f.w, "timestamp",
                                              &(struct tuf_writer_role_keys){pem, 1, 1}));
            f.keyring[2] = new_ts;
        }
        ring[0] = keys[step];
        ring[1] = keys[step + 1];
        ring[2] = keys[step + 3];
        ring[3] = f.keyring[2];
        ring[4] = f.snap;
        ring[5] = f.tgt;
        fx_path(src, f.base, "tn.bin");
        fx_make_file(src, 100 + (size_t)step, 30u + (unsigned)step, NULL);
        CHECK_OK(tuf_writer_add_target(f.w, "targets", "config/feed.json", src, NULL));
        CHECK_OK(tuf_writer_publish(f.w, f.repo, ring, 6));
        if (step != 1) { /* the client skips one step and catches up over two roots */
            CHECK_OK(fx_refresh(&f, msg, sizeof(msg)));
            CHECK_INT(fx_trusted_version(&f, "root"), step + 2);
        }
    }
    CHECK_INT(fx_trusted_version(&f, "timestamp"), 5);
    CHECK_INT(fx_trusted_version(&f, "targets"), 5);
    CHECK_OK(fx_client_open(&fc, f.trusted, f.repo, 0));
    CHECK_OK(tuf_client_refresh(fc.c));
    CHECK_OK(tuf_client_find_target(fc.c, "config/feed.json", &info));
    CHECK_INT(info.length, 102);
    fx_client_close(&fc);
    for (int i = 3; i < 6; i++) {
        crypto_privkey_free(keys[i]);
    }
    crypto_privkey_free(new_ts);
    fx_cleanup(&f);
}

int
main(void)
{
    test_arbitrary_file();
    test_endless_data();
    test_rollback();
    test_freeze();
    test_mix_and_match();
    test_fast_forward();
    test_wrong_keys();
    test_threshold();
    test_malicious_mirror();
    test_bad_root_rotation();
    test_delegation_signed_by_delegator();
    test_http_carrier();
    test_good_paths();
    fx_pub_free_all();
    return test_summary("tuf_attacks");
}
