/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Shared fixture of the writer and threat-model tests: a fresh temporary tree with a writer
 * state, a published repository and a client's trusted metadata directory; freshly generated
 * ECDSA P-256 keys for every role; helpers to run one client refresh over a directory carrier
 * and to take a byte-for-byte picture of the trusted directory. Header-only (static functions)
 * so each test file stays one executable.
 */
#ifndef POSGATE_TUF_FIXTURE_H
#define POSGATE_TUF_FIXTURE_H

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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
#include "tuf_writer.h"

#define FX_PATH 1024
#define FX_LONG 2400 /* a fixture path plus a relative name */

/* Not every test file uses every helper. */
#pragma GCC diagnostic ignored "-Wunused-function"
#define FX_MAX_FILES 64

struct fx {
    char base[FX_PATH];
    char state[FX_PATH];
    char repo[FX_PATH];
    char meta[FX_PATH];    /* repo/metadata */
    char targets[FX_PATH]; /* repo/targets */
    char trusted[FX_PATH];
    struct crypto_privkey *root[3];
    struct crypto_privkey *ts, *snap, *tgt;
    struct crypto_privkey *keyring[6]; /* root[0], root[1], ts, snap, tgt + one spare slot */
    size_t nkeyring;
    struct tuf_writer *w;
    int64_t now;
};

/* A picture of a directory: every regular file's name and bytes. */
struct fx_dirpic {
    size_t n;
    char names[FX_MAX_FILES][256];
    struct buf data[FX_MAX_FILES];
};

static void
fx_path(char *out, const char *a, const char *b)
{
    int n = snprintf(out, FX_PATH, "%s/%s", a, b);

    if (n < 0 || n >= FX_PATH) {
        fprintf(stderr, "path too long: %s/%s\n", a, b);
        exit(1);
    }
}

static struct crypto_privkey *
fx_key(void)
{
    struct crypto_privkey *k = NULL;

    if (crypto_privkey_generate(&k) != POSGATE_OK) {
        fprintf(stderr, "key generation failed\n");
        exit(1);
    }
    return k;
}

/* PEMs handed out by fx_pub, freed together by fx_pub_free_all at the end of main. */
static char **fx_pems;
static size_t fx_npems;

/* PEM of k's public key; valid until fx_pub_free_all. */
static const char *
fx_pub(const struct crypto_privkey *k)
{
    struct buf b = BUF_INIT(CRYPTO_PEM_MAX);
    char **n = realloc(fx_pems, (fx_npems + 1) * sizeof(*n));

    if (n == NULL || crypto_privkey_public_pem(k, &b) != POSGATE_OK) {
        fprintf(stderr, "public PEM failed\n");
        exit(1);
    }
    fx_pems = n;
    fx_pems[fx_npems] = strdup(buf_cstr(&b));
    buf_free(&b);
    if (fx_pems[fx_npems] == NULL) {
        exit(1);
    }
    return fx_pems[fx_npems++];
}

static void
fx_pub_free_all(void)
{
    for (size_t i = 0; i < fx_npems; i++) {
        free(fx_pems[i]);
    }
    free(fx_pems);
    fx_pems = NULL;
    fx_npems = 0;
}

static void
fx_write(const char *path, const void *data, size_t len)
{
    if (plat_write_atomic(path, data, len, 0644) != POSGATE_OK) {
        fprintf(stderr, "cannot write %s\n", path);
        exit(1);
    }
}

/* Reads a file (up to 64 MiB) into out; out is initialised here. */
static enum posgate_err
fx_read(const char *path, struct buf *out)
{
    buf_init(out, 64u << 20);
    return plat_read_file(path, out);
}

static void
fx_copy_file(const char *from, const char *to)
{
    struct buf b;

    if (fx_read(from, &b) != POSGATE_OK) {
        fprintf(stderr, "cannot read %s\n", from);
        exit(1);
    }
    fx_write(to, b.data, b.len);
    buf_free(&b);
}

/* Creates the directories and keys and a writer state: root 3 keys threshold 2, one key each
 * for timestamp, snapshot, targets. Nothing is published. */
static void
fx_init(struct fx *f, const char *tag)
{
    const char *tmp = getenv("TMPDIR");
    struct tuf_writer_init init;
    const char *root_pems[3], *ts_pem[1], *snap_pem[1], *tgt_pem[1];
    char msg[TUF_WRITER_ERRMSG_MAX];

    memset(f, 0, sizeof(*f));
    snprintf(f->base, sizeof(f->base), "%s/posgate-%s-XXXXXX", tmp != NULL ? tmp : "/tmp", tag);
    if (mkdtemp(f->base) == NULL) {
        perror("mkdtemp");
        exit(1);
    }
    fx_path(f->state, f->base, "state");
    fx_path(f->repo, f->base, "repo");
    fx_path(f->meta, f->repo, "metadata");
    fx_path(f->targets, f->repo, "targets");
    fx_path(f->trusted, f->base, "trusted");
    for (int i = 0; i < 3; i++) {
        f->root[i] = fx_key();
        root_pems[i] = fx_pub(f->root[i]);
    }
    f->ts = fx_key();
    f->snap = fx_key();
    f->tgt = fx_key();
    ts_pem[0] = fx_pub(f->ts);
    snap_pem[0] = fx_pub(f->snap);
    tgt_pem[0] = fx_pub(f->tgt);
    init.root = (struct tuf_writer_role_keys){root_pems, 3, 2};
    init.timestamp = (struct tuf_writer_role_keys){ts_pem, 1, 1};
    init.snapshot = (struct tuf_writer_role_keys){snap_pem, 1, 1};
    init.targets = (struct tuf_writer_role_keys){tgt_pem, 1, 1};
    f->keyring[0] = f->root[0];
    f->keyring[1] = f->root[1];
    f->keyring[2] = f->ts;
    f->keyring[3] = f->snap;
    f->keyring[4] = f->tgt;
    f->nkeyring = 5;
    f->now = plat_wall_s();
    if (tuf_writer_create(f->state, &init, &f->w, msg, sizeof(msg)) != POSGATE_OK) {
        fprintf(stderr, "tuf_writer_create: %s\n", msg);
        exit(1);
    }
}

static enum posgate_err
fx_publish(struct fx *f)
{
    enum posgate_err err = tuf_writer_publish(f->w, f->repo, f->keyring, f->nkeyring);

    if (err != POSGATE_OK) {
        fprintf(stderr, "publish: %s: %s\n", posgate_err_name(err), tuf_writer_errmsg(f->w));
    }
    return err;
}

/* Installs repo/metadata/1.root.json as the client's trust anchor. */
static enum posgate_err
fx_bootstrap(struct fx *f)
{
    char path[FX_PATH], msg[512];
    struct buf root;
    enum posgate_err err;

    fx_path(path, f->meta, "1.root.json");
    err = fx_read(path, &root);
    if (err == POSGATE_OK) {
        err = tuf_client_bootstrap(f->trusted, root.data, root.len, msg, sizeof(msg));
        if (err != POSGATE_OK) {
            fprintf(stderr, "bootstrap: %s\n", msg);
        }
    }
    buf_free(&root);
    return err;
}

/* A client over repo_dir (metadata/ and targets/ below it) with the given clock. */
struct fx_client {
    struct carrier *meta, *targets;
    struct tuf_client *c;
};

static enum posgate_err
fx_client_open(struct fx_client *fc, const char *trusted, const char *repo_dir, int64_t now)
{
    struct tuf_client_options opt;
    char m[FX_PATH], t[FX_PATH];
    enum posgate_err err;

    memset(fc, 0, sizeof(*fc));
    memset(&opt, 0, sizeof(opt));
    fx_path(m, repo_dir, "metadata");
    fx_path(t, repo_dir, "targets");
    err = carrier_dir_new(m, &fc->meta);
    if (err == POSGATE_OK) {
        err = carrier_dir_new(t, &fc->targets);
    }
    if (err != POSGATE_OK) {
        return err;
    }
    opt.metadata_dir = trusted;
    opt.metadata = fc->meta;
    opt.targets = fc->targets;
    opt.now = now;
    return tuf_client_new(&opt, &fc->c);
}

static void
fx_client_close(struct fx_client *fc)
{
    tuf_client_free(fc->c);
    carrier_free(fc->meta);
    carrier_free(fc->targets);
    memset(fc, 0, sizeof(*fc));
}

/* One refresh of the trusted directory against repo_dir; msg gets the client's message. */
static enum posgate_err
fx_refresh_from(const char *trusted, const char *repo_dir, int64_t now, char *msg, size_t cap)
{
    struct fx_client fc;
    enum posgate_err err = fx_client_open(&fc, trusted, repo_dir, now);

    if (err == POSGATE_OK) {
        err = tuf_client_refresh(fc.c);
    }
    snprintf(msg, cap, "%s", tuf_client_errmsg(fc.c));
    fx_client_close(&fc);
    return err;
}

static enum posgate_err
fx_refresh(struct fx *f, char *msg, size_t cap)
{
    return fx_refresh_from(f->trusted, f->repo, 0, msg, cap);
}

/* Version (and expiry) of a role in the trusted directory, read from its file; -1 when absent.
 * Read directly rather than through a client, which loads only what a refresh needs. */
static int64_t
fx_trusted_info(struct fx *f, const char *role, int64_t *expires)
{
    char path[FX_LONG];
    struct buf b;
    cJSON *j = NULL;
    const cJSON *s, *v, *e;
    int64_t out = -1;

    snprintf(path, sizeof(path), "%s/%s.json", f->trusted, role);
    if (fx_read(path, &b) == POSGATE_OK) {
        j = cJSON_ParseWithLength((const char *)b.data, b.len);
    }
    buf_free(&b);
    s = cJSON_GetObjectItemCaseSensitive(j, "signed");
    v = cJSON_GetObjectItemCaseSensitive(s, "version");
    e = cJSON_GetObjectItemCaseSensitive(s, "expires");
    if (cJSON_IsNumber(v)) {
        out = (int64_t)v->valuedouble;
    }
    if (expires != NULL) {
        *expires = 0;
        if (cJSON_IsString(e) && plat_time_parse(e->valuestring, expires) != POSGATE_OK) {
            *expires = 0;
        }
    }
    cJSON_Delete(j);
    return out;
}

static int64_t
fx_trusted_version(struct fx *f, const char *role)
{
    return fx_trusted_info(f, role, NULL);
}

static void
fx_pic_take(struct fx_dirpic *p, const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    char path[FX_PATH];

    memset(p, 0, sizeof(*p));
    if (d == NULL) {
        return;
    }
    while ((e = readdir(d)) != NULL && p->n < FX_MAX_FILES) {
        if (e->d_name[0] == '.') {
            continue;
        }
        snprintf(p->names[p->n], sizeof(p->names[p->n]), "%s", e->d_name);
        fx_path(path, dir, e->d_name);
        if (fx_read(path, &p->data[p->n]) != POSGATE_OK) {
            buf_free(&p->data[p->n]);
        }
        p->n++;
    }
    closedir(d);
}

static void
fx_pic_free(struct fx_dirpic *p)
{
    for (size_t i = 0; i < p->n; i++) {
        buf_free(&p->data[i]);
    }
    p->n = 0;
}

/* 1 when dir holds exactly the files of p with the same bytes. */
static int
fx_pic_same(const struct fx_dirpic *p, const char *dir)
{
    struct fx_dirpic now;
    int same;

    fx_pic_take(&now, dir);
    same = now.n == p->n;
    for (size_t i = 0; same && i < p->n; i++) {
        size_t j;

        for (j = 0; j < now.n; j++) {
            if (strcmp(now.names[j], p->names[i]) == 0) {
                break;
            }
        }
        same =
            j < now.n && now.data[j].len == p->data[i].len &&
            (p->data[i].len == 0 || memcmp(now.data[j].data, p->data[i].data, p->data[i].len) == 0);
        if (!same) {
            fprintf(stderr, "trusted file %s changed\n", p->names[i]);
        }
    }
    fx_pic_free(&now);
    return same;
}

/* Removes a tree (test directories only; depth-first over readdir). */
static void
fx_rmtree(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    char path[FX_PATH];
    struct stat st;

    if (d == NULL) {
        (void)unlink(dir);
        return;
    }
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) {
            continue;
        }
        fx_path(path, dir, e->d_name);
        if (lstat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
            fx_rmtree(path);
        } else {
            (void)unlink(path);
        }
    }
    closedir(d);
    (void)rmdir(dir);
}

static void
fx_cleanup(struct fx *f)
{
    tuf_writer_free(f->w);
    for (int i = 0; i < 3; i++) {
        crypto_privkey_free(f->root[i]);
    }
    crypto_privkey_free(f->ts);
    crypto_privkey_free(f->snap);
    crypto_privkey_free(f->tgt);
    if (getenv("POSGATE_KEEP_TMP") == NULL) {
        fx_rmtree(f->base);
    }
    memset(f, 0, sizeof(*f));
}

/* Writes a file of n pseudo-random bytes (seeded) and returns its SHA-256. */
static void
fx_make_file(const char *path, size_t n, unsigned seed, uint8_t sha[CRYPTO_SHA256_LEN])
{
    uint8_t *p = malloc(n + 1);
    uint32_t x = seed * 2654435761u + 1;

    for (size_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        p[i] = (uint8_t)x;
    }
    fx_write(path, p, n);
    if (sha != NULL) {
        crypto_sha256(p, n, sha);
    }
    free(p);
}

/* Parses a metadata file; the caller frees with cJSON_Delete. */
static cJSON *
fx_json(const char *path)
{
    struct buf b;
    cJSON *j = NULL;

    if (fx_read(path, &b) == POSGATE_OK) {
        j = cJSON_ParseWithLength((const char *)b.data, b.len);
    }
    buf_free(&b);
    return j;
}

static int
fx_sig_count(const char *path)
{
    cJSON *j = fx_json(path);
    int n = j != NULL ? cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(j, "signatures")) : -1;

    cJSON_Delete(j);
    return n;
}

#endif
