/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Bundles: the container's safety cases (NULLs, bad paths, duplicates, offsets and lengths that
 * lie, truncation, trailing bytes), a write/read round trip, the bundle carrier's contract
 * (NOTFOUND, TOOBIG, INVALID names), and end to end: a feed published by the real
 * posgate-publish, bundled by `posgate-publish bundle`, verified by the TUF client through
 * bundle carriers exactly as through a directory carrier (same targets, same bytes), and a
 * tampered bundle refused.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "buf.h"
#include "bundle.h"
#include "carrier.h"
#include "feed_records.h"
#include "plat_file.h"
#include "posgate_err.h"
#include "test.h"
#include "test_files.h"
#include "tuf_client.h"

static char tmpdir[512];

static void
wfile(const char *name, const char *text, char *path_out, size_t cap)
{
    snprintf(path_out, cap, "%s/%s", tmpdir, name);
    if (plat_write_atomic(path_out, text, strlen(text), 0644) != POSGATE_OK) {
        fprintf(stderr, "cannot write %s\n", path_out);
        exit(1);
    }
}

static void
put_be(uint8_t *p, uint64_t v, unsigned n)
{
    for (unsigned i = 0; i < n; i++) {
        p[n - 1 - i] = (uint8_t)(v >> (8 * i));
    }
}

/* Builds a bundle in memory by hand: paths/bodies as given (no checks), for forgeries. */
static size_t
forge(uint8_t *out, size_t cap, const char *const *paths, const char *const *bodies, size_t n,
      long off_delta, long len_delta, size_t trailing)
{
    size_t index_len = 0, pos, i;
    uint64_t off;

    for (i = 0; i < n; i++) {
        index_len += 2 + strlen(paths[i]) + 16;
    }
    memset(out, 0, cap);
    memcpy(out, BUNDLE_MAGIC, 8);
    put_be(out + 8, 1, 4);
    put_be(out + 12, n, 4);
    put_be(out + 16, index_len, 8);
    pos = BUNDLE_HEADER_LEN;
    off = BUNDLE_HEADER_LEN + index_len;
    for (i = 0; i < n; i++) {
        size_t pl = strlen(paths[i]);

        put_be(out + pos, pl, 2);
        memcpy(out + pos + 2, paths[i], pl);
        put_be(out + pos + 2 + pl, (uint64_t)((long)off + (i == n - 1 ? off_delta : 0)), 8);
        put_be(out + pos + 2 + pl + 8,
               (uint64_t)((long)strlen(bodies[i]) + (i == n - 1 ? len_delta : 0)), 8);
        pos += 2 + pl + 16;
        off += strlen(bodies[i]);
    }
    for (i = 0; i < n; i++) {
        memcpy(out + pos, bodies[i], strlen(bodies[i]));
        pos += strlen(bodies[i]);
    }
    return pos + trailing;
}

static void
test_safety(void)
{
    struct bundle *b = NULL;
    char msg[BUNDLE_ERRMSG_MAX];
    uint8_t mem[4096];
    size_t n;
    const char *p1[] = {"a/b", "a/c"};
    const char *b1[] = {"hello", "world!"};

    CHECK_ERR(bundle_open(NULL, &b, msg, sizeof msg), POSGATE_ERR_INVALID);
    CHECK_ERR(bundle_open("/nonexistent/x.bundle", &b, msg, sizeof msg), POSGATE_ERR_NOTFOUND);
    CHECK_ERR(bundle_open_mem("short", 5, &b, msg, sizeof msg), POSGATE_ERR_PARSE);
    CHECK_CONTAINS(msg, "header");
    CHECK(b == NULL);
    CHECK(bundle_find(NULL, "x") == NULL);
    CHECK_INT(bundle_count(NULL), 0);
    bundle_free(NULL);

    CHECK_OK(bundle_check_path("metadata/1.root.json", 20));
    CHECK_ERR(bundle_check_path("/etc/passwd", 11), POSGATE_ERR_INVALID);
    CHECK_ERR(bundle_check_path("a/../b", 6), POSGATE_ERR_INVALID);
    CHECK_ERR(bundle_check_path("..", 2), POSGATE_ERR_INVALID);
    CHECK_ERR(bundle_check_path("a//b", 4), POSGATE_ERR_INVALID);
    CHECK_ERR(bundle_check_path("a/./b", 5), POSGATE_ERR_INVALID);
    CHECK_ERR(bundle_check_path("a/", 2), POSGATE_ERR_INVALID);
    CHECK_ERR(bundle_check_path("a\nb", 3), POSGATE_ERR_INVALID);
    CHECK_ERR(bundle_check_path("a\\..\\b", 6), POSGATE_ERR_INVALID);
    CHECK_ERR(bundle_check_path("", 0), POSGATE_ERR_INVALID);

    /* a well-formed forged bundle opens */
    n = forge(mem, sizeof mem, p1, b1, 2, 0, 0, 0);
    CHECK_OK(bundle_open_mem(mem, n, &b, msg, sizeof msg));
    CHECK_INT(bundle_count(b), 2);
    bundle_free(b);
    b = NULL;

    /* bad magic */
    n = forge(mem, sizeof mem, p1, b1, 2, 0, 0, 0);
    mem[0] = 'X';
    CHECK_ERR(bundle_open_mem(mem, n, &b, msg, sizeof msg), POSGATE_ERR_PARSE);
    CHECK_CONTAINS(msg, "magic");
    /* unknown version */
    n = forge(mem, sizeof mem, p1, b1, 2, 0, 0, 0);
    mem[11] = 2;
    CHECK_ERR(bundle_open_mem(mem, n, &b, msg, sizeof msg), POSGATE_ERR_UNSUPPORTED);
    /* a body that does not start where the previous ends (overlap) */
    n = forge(mem, sizeof mem, p1, b1, 2, -2, 0, 0);
    CHECK_ERR(bundle_open_mem(mem, n, &b, msg, sizeof msg), POSGATE_ERR_INVALID);
    CHECK_CONTAINS(msg, "offset");
    /* a length past the end of the file */
    n = forge(mem, sizeof mem, p1, b1, 2, 0, 1000, 0);
    CHECK_ERR(bundle_open_mem(mem, n, &b, msg, sizeof msg), POSGATE_ERR_INVALID);
    CHECK_CONTAINS(msg, "past the end");
    /* a huge length that would wrap */
    n = forge(mem, sizeof mem, p1, b1, 2, 0, -7, 0);
    CHECK_ERR(bundle_open_mem(mem, n, &b, msg, sizeof msg), POSGATE_ERR_INVALID);
    /* bytes after the last body */
    n = forge(mem, sizeof mem, p1, b1, 2, 0, 0, 3);
    CHECK_ERR(bundle_open_mem(mem, n, &b, msg, sizeof msg), POSGATE_ERR_INVALID);
    /* truncated in the middle of a body */
    n = forge(mem, sizeof mem, p1, b1, 2, 0, 0, 0);
    CHECK(bundle_open_mem(mem, n - 1, &b, msg, sizeof msg) != POSGATE_OK);
    /* truncated in the index */
    CHECK_ERR(bundle_open_mem(mem, BUNDLE_HEADER_LEN + 3, &b, msg, sizeof msg), POSGATE_ERR_PARSE);
    {
        const char *dup[] = {"a/b", "a/b"};
        const char *dot[] = {"a/b", "../etc/passwd"};
        const char *abs[] = {"/etc/passwd"};
        const char *unsorted[] = {"b", "a"};

        n = forge(mem, sizeof mem, dup, b1, 2, 0, 0, 0);
        CHECK_ERR(bundle_open_mem(mem, n, &b, msg, sizeof msg), POSGATE_ERR_INVALID);
        CHECK_CONTAINS(msg, "duplicate");
        n = forge(mem, sizeof mem, dot, b1, 2, 0, 0, 0);
        CHECK_ERR(bundle_open_mem(mem, n, &b, msg, sizeof msg), POSGATE_ERR_INVALID);
        n = forge(mem, sizeof mem, abs, b1, 1, 0, 0, 0);
        CHECK_ERR(bundle_open_mem(mem, n, &b, msg, sizeof msg), POSGATE_ERR_INVALID);
        n = forge(mem, sizeof mem, unsorted, b1, 2, 0, 0, 0);
        CHECK_ERR(bundle_open_mem(mem, n, &b, msg, sizeof msg), POSGATE_ERR_INVALID);
    }
    /* an index count too large for the index */
    n = forge(mem, sizeof mem, p1, b1, 2, 0, 0, 0);
    put_be(mem + 12, 900000, 4);
    CHECK_ERR(bundle_open_mem(mem, n, &b, msg, sizeof msg), POSGATE_ERR_PARSE);
    CHECK(b == NULL);
}

static void
test_roundtrip_and_carrier(void)
{
    char pa[600], pb[600], pc[600], out[600], msg[BUNDLE_ERRMSG_MAX];
    struct bundle_item items[3];
    struct bundle *b = NULL;
    const struct bundle_entry *e;
    struct carrier *c = NULL;
    struct buf got = BUF_INIT(1 << 20);
    char body[64];

    wfile("a.txt", "alpha", pa, sizeof pa);
    wfile("b.txt", "", pb, sizeof pb);
    wfile("c.txt", "gamma gamma", pc, sizeof pc);
    snprintf(out, sizeof out, "%s/t.bundle", tmpdir);
    items[0].path = "targets/z/c.txt";
    items[0].src_path = pc;
    items[1].path = "metadata/1.root.json";
    items[1].src_path = pa;
    items[2].path = "metadata/empty";
    items[2].src_path = pb;
    CHECK_OK(bundle_write(out, items, 3, msg, sizeof msg));
    CHECK_INT(bundle_is_bundle(out), 1);
    CHECK_INT(bundle_is_bundle(pa), 0);
    CHECK_OK(bundle_open(out, &b, msg, sizeof msg));
    CHECK_INT(bundle_count(b), 3);
    /* sorted by path */
    CHECK_STR(bundle_entry_at(b, 0)->path, "metadata/1.root.json");
    CHECK_STR(bundle_entry_at(b, 1)->path, "metadata/empty");
    CHECK_STR(bundle_entry_at(b, 2)->path, "targets/z/c.txt");
    CHECK(bundle_entry_at(b, 3) == NULL);
    e = bundle_find(b, "targets/z/c.txt");
    CHECK(e != NULL);
    if (e != NULL) {
        CHECK_INT(e->length, 11);
        memset(body, 0, sizeof body);
        CHECK_OK(bundle_read(b, e, 6, body, 5));
        CHECK_STR(body, "gamma");
        CHECK_ERR(bundle_read(b, e, 6, body, 6), POSGATE_ERR_INVALID);
    }
    CHECK(bundle_find(b, "targets/z") == NULL);
    bundle_free(b);

    /* the writer refuses duplicates and bad paths, and leaves no file behind */
    items[1].path = "targets/z/c.txt";
    snprintf(out, sizeof out, "%s/dup.bundle", tmpdir);
    CHECK_ERR(bundle_write(out, items, 3, msg, sizeof msg), POSGATE_ERR_INVALID);
    CHECK_CONTAINS(msg, "twice");
    CHECK_INT(plat_exists(out), 0);
    items[1].path = "metadata/../x";
    CHECK_ERR(bundle_write(out, items, 3, msg, sizeof msg), POSGATE_ERR_INVALID);
    items[1].path = "metadata/1.root.json";

    /* the carrier */
    snprintf(out, sizeof out, "%s/t.bundle", tmpdir);
    CHECK_ERR(carrier_bundle_new(out, "metadata", &c, msg, sizeof msg), POSGATE_ERR_INVALID);
    CHECK_ERR(carrier_bundle_new("/nonexistent", "metadata/", &c, msg, sizeof msg),
              POSGATE_ERR_NOTFOUND);
    CHECK_OK(carrier_bundle_new(out, "metadata/", &c, msg, sizeof msg));
    if (c != NULL) {
        CHECK_OK(carrier_fetch_buf(c, "1.root.json", 1000, &got));
        CHECK_INT(got.len, 5);
        CHECK(memcmp(got.data, "alpha", 5) == 0);
        CHECK_OK(carrier_fetch_buf(c, "empty", 1000, &got));
        CHECK_INT(got.len, 0);
        CHECK_ERR(carrier_fetch_buf(c, "1.root.json", 4, &got), POSGATE_ERR_TOOBIG);
        CHECK_ERR(carrier_fetch_buf(c, "2.root.json", 1000, &got), POSGATE_ERR_NOTFOUND);
        CHECK_ERR(carrier_fetch_buf(c, "../targets/z/c.txt", 1000, &got), POSGATE_ERR_INVALID);
        /* a prefix confines the carrier: a targets member is not a metadata name */
        CHECK_ERR(carrier_fetch_buf(c, "z/c.txt", 1000, &got), POSGATE_ERR_NOTFOUND);
    }
    carrier_free(c);
    buf_free(&got);
}

/* ---- end to end with the real publisher and the TUF client ---- */

static int
run(const char *cmd)
{
    int rc = system(cmd);

    if (rc == -1 || !WIFEXITED(rc)) {
        return -1;
    }
    return WEXITSTATUS(rc);
}

struct collected {
    size_t n;
    char names[64][256];
    struct tuf_target_info info[64];
};

static enum posgate_err
collect(void *ctx, const struct tuf_target_info *t)
{
    struct collected *c = ctx;

    if (c->n < 64) {
        snprintf(c->names[c->n], sizeof c->names[0], "%s", t->name);
        c->n++;
    }
    return POSGATE_OK;
}

static struct tuf_client *
client_for(const char *trusted, const char *root_path, struct carrier *meta, struct carrier *tgts)
{
    struct buf root = BUF_INIT(1 << 20);
    struct tuf_client_options opt;
    struct tuf_client *c = NULL;
    char msg[512];

    CHECK_OK(plat_read_file(root_path, &root));
    CHECK_OK(tuf_client_bootstrap(trusted, root.data, root.len, msg, sizeof msg));
    buf_free(&root);
    memset(&opt, 0, sizeof opt);
    opt.metadata_dir = trusted;
    opt.metadata = meta;
    opt.targets = tgts;
    CHECK_OK(tuf_client_new(&opt, &c));
    return c;
}

static void
test_end_to_end(void)
{
    const char *bin = getenv("POSGATE_BIN");
    char cmd[4096], feed[600], bundle[600], p[700], p2[700], msg[512];
    struct carrier *dir_meta = NULL, *dir_tg = NULL, *b_meta = NULL, *b_tg = NULL;
    struct tuf_client *cd = NULL, *cb = NULL;
    struct collected *names = calloc(1, sizeof *names);
    struct buf x = BUF_INIT(64u << 20), y = BUF_INIT(64u << 20);
    size_t i, snapshots = 0, configs = 0;

    if (bin == NULL || names == NULL) {
        fprintf(stderr, "POSGATE_BIN is not set\n");
        CHECK(0);
        free(names);
        return;
    }
    snprintf(cmd, sizeof cmd,
             "cd %s && %s/posgate-keygen --out root >/dev/null && "
             "%s/posgate-keygen --out feed >/dev/null && "
             "%s/posgate-keygen --list-key --out list.key >/dev/null && "
             "%s/posgate-synth --count 500 --seed 3 --out e.csv --config-out feed.json && "
             "%s/posgate-publish init --state st --config feed.json --root-key root.key "
             "--threshold 1 --feed-key feed.key --list-key list.key >/dev/null && "
             "%s/posgate-publish update --state st --entries e.csv --out feed 2>/dev/null && "
             "%s/posgate-synth --count 520 --seed 3 --out e2.csv && "
             "%s/posgate-publish update --state st --entries e2.csv --out feed 2>/dev/null && "
             "%s/posgate-publish bundle --feed feed --out feed.bundle >/dev/null",
             tmpdir, bin, bin, bin, bin, bin, bin, bin, bin, bin);
    CHECK_INT(run(cmd), 0);
    snprintf(feed, sizeof feed, "%s/feed", tmpdir);
    snprintf(bundle, sizeof bundle, "%s/feed.bundle", tmpdir);
    snprintf(p, sizeof p, "%s/metadata", feed);
    snprintf(p2, sizeof p2, "%s/targets", feed);
    CHECK_OK(carrier_dir_new(p, &dir_meta));
    CHECK_OK(carrier_dir_new(p2, &dir_tg));
    CHECK_OK(carrier_bundle_new(bundle, "metadata/", &b_meta, msg, sizeof msg));
    CHECK_OK(carrier_bundle_new(bundle, "targets/", &b_tg, msg, sizeof msg));
    snprintf(p, sizeof p, "%s/metadata/1.root.json", feed);
    snprintf(p2, sizeof p2, "%s/trusted-dir", tmpdir);
    cd = client_for(p2, p, dir_meta, dir_tg);
    snprintf(p2, sizeof p2, "%s/trusted-bundle", tmpdir);
    cb = client_for(p2, p, b_meta, b_tg);
    if (cd == NULL || cb == NULL) {
        CHECK(0);
        goto out;
    }
    CHECK_OK(tuf_client_refresh(cd));
    CHECK_OK(tuf_client_refresh(cb));
    if (tuf_client_errmsg(cb)[0] != '\0') {
        fprintf(stderr, "bundle client: %s\n", tuf_client_errmsg(cb));
    }
    CHECK_OK(tuf_client_foreach_target(cd, "targets", collect, names));
    /* config + per list (3): snapshot-2 and delta-1-2 */
    CHECK_INT(names->n, 7);
    for (i = 0; i < names->n; i++) {
        struct tuf_target_info ti, tb;

        snapshots += strstr(names->names[i], "/snapshot-2.pgs") != NULL;
        configs += strcmp(names->names[i], "config/feed.json") == 0;
        CHECK_OK(tuf_client_find_target(cd, names->names[i], &ti));
        CHECK_OK(tuf_client_find_target(cb, names->names[i], &tb));
        snprintf(p, sizeof p, "%s/dl-dir-%zu", tmpdir, i);
        snprintf(p2, sizeof p2, "%s/dl-bundle-%zu", tmpdir, i);
        CHECK_OK(tuf_client_download(cd, &ti, p));
        CHECK_OK(tuf_client_download(cb, &tb, p2));
        CHECK_OK(plat_read_file(p, &x));
        CHECK_OK(plat_read_file(p2, &y));
        CHECK(x.len == y.len && memcmp(x.data, y.data, x.len) == 0);
        if (strstr(names->names[i], "/snapshot-2.pgs") != NULL) {
            /* the body is a snapshot of seq 2 whose entry count matches "custom" */
            struct feed_source src;
            struct feed_mem m;
            struct feed_reader *r = NULL;
            const struct feed_header *h = NULL;
            char want[64];

            feed_source_mem(&src, &m, x.data, x.len);
            CHECK_OK(feed_reader_new(&src, FEED_READ_VERIFY_DIGEST, &r));
            CHECK_OK(feed_reader_header(r, &h));
            if (h != NULL) {
                CHECK_INT(h->seq, 2);
                snprintf(want, sizeof want, "\"entries\":%llu", (unsigned long long)h->count);
                CHECK_CONTAINS(ti.custom_json, want);
                CHECK_CONTAINS(ti.custom_json, "\"seq\":2");
            }
            feed_reader_free(r);
        }
    }
    CHECK_INT(snapshots, 3);
    CHECK_INT(configs, 1);

    /* a bundle with one byte of one target changed is refused by the client */
    {
        struct buf raw = BUF_INIT(64u << 20);
        struct bundle *b = NULL;
        const struct bundle_entry *e = NULL;
        struct carrier *tm = NULL, *tt = NULL;
        struct tuf_client *ct = NULL;
        struct tuf_target_info ti;
        char forged[700];
        int tampered = 0;

        CHECK_OK(plat_read_file(bundle, &raw));
        CHECK_OK(bundle_open(bundle, &b, msg, sizeof msg));
        for (i = 0; b != NULL && i < bundle_count(b); i++) {
            if (strstr(bundle_entry_at(b, i)->path, ".pgs") != NULL) {
                e = bundle_entry_at(b, i);
                break;
            }
        }
        CHECK(e != NULL);
        if (e != NULL) {
            raw.data[e->offset + e->length / 2] ^= 0x01;
            snprintf(forged, sizeof forged, "%s/forged.bundle", tmpdir);
            CHECK_OK(plat_write_atomic(forged, raw.data, raw.len, 0644));
            CHECK_OK(carrier_bundle_new(forged, "metadata/", &tm, msg, sizeof msg));
            CHECK_OK(carrier_bundle_new(forged, "targets/", &tt, msg, sizeof msg));
            snprintf(p, sizeof p, "%s/metadata/1.root.json", feed);
            snprintf(p2, sizeof p2, "%s/trusted-forged", tmpdir);
            ct = client_for(p2, p, tm, tt);
            CHECK_OK(tuf_client_refresh(ct));
            for (i = 0; i < names->n; i++) {
                const char *base = strrchr(names->names[i], '/');
                size_t dlen = base != NULL ? (size_t)(base - names->names[i]) : 0;

                if (base != NULL && strncmp(e->path, "targets/", 8) == 0 &&
                    strncmp(e->path + 8, names->names[i], dlen + 1) == 0 &&
                    strlen(e->path) > strlen(base) &&
                    strcmp(e->path + strlen(e->path) - strlen(base + 1), base + 1) == 0) {
                    CHECK_OK(tuf_client_find_target(ct, names->names[i], &ti));
                    snprintf(p, sizeof p, "%s/dl-forged", tmpdir);
                    CHECK_ERR(tuf_client_download(ct, &ti, p), POSGATE_ERR_BADHASH);
                    CHECK_INT(plat_exists(p), 0);
                    tampered++;
                }
            }
        }
        CHECK_INT(tampered, 1);
        tuf_client_free(ct);
        carrier_free(tm);
        carrier_free(tt);
        bundle_free(b);
        buf_free(&raw);
    }
out:
    tuf_client_free(cd);
    tuf_client_free(cb);
    carrier_free(dir_meta);
    carrier_free(dir_tg);
    carrier_free(b_meta);
    carrier_free(b_tg);
    buf_free(&x);
    buf_free(&y);
    free(names);
}

int
main(void)
{
    char cmd[700];

    if (!test_mkdtemp(tmpdir, sizeof tmpdir, "bundle")) {
        return 1;
    }
    test_safety();
    test_roundtrip_and_carrier();
    test_end_to_end();
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (test_failures == 0 && system(cmd) != 0) {
        fprintf(stderr, "cannot remove %s\n", tmpdir);
    }
    return test_summary("bundle");
}
