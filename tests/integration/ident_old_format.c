/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Test helper of tests/integration/ident_forms.sh: turns a feed into one an older publisher
 * would have signed, whose list targets carry no "ident_format" in their custom metadata.
 * Opens the publisher's TUF writer state, lists every target of the top-level targets role
 * again with that field taken out of its custom, and publishes the repository with the keys.
 * Usage: ident_old_format TUF_STATE_DIR OUT_DIR WORK_DIR KEY...
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crypto.h"
#include "tuf_writer.h"

#define TARGETS_MAX 64

struct old_target {
    char name[256];
    char copy[4096];
    char custom[1024];
};

struct collect {
    const char *work;
    struct old_target v[TARGETS_MAX];
    size_t n;
};

/* Copies src to dst; 0 on success. */
static int
copy_file(const char *src, const char *dst)
{
    FILE *in = fopen(src, "rb"), *out = NULL;
    char buf[65536];
    size_t n;
    int rc = -1;

    if (in == NULL) {
        goto out;
    }
    out = fopen(dst, "wb");
    if (out == NULL) {
        goto out;
    }
    while ((n = fread(buf, 1, sizeof(buf), in)) > 0) {
        if (fwrite(buf, 1, n, out) != n) {
            goto out;
        }
    }
    rc = ferror(in) ? -1 : 0;
out:
    if (in != NULL) {
        fclose(in);
    }
    if (out != NULL && fclose(out) != 0) {
        rc = -1;
    }
    return rc;
}

static enum posgate_err
collect_fn(void *ctx, const struct tuf_writer_target *t)
{
    struct collect *c = ctx;
    struct old_target *o;
    const char *f, *end;
    size_t at, len;

    if (t->custom_json == NULL || strstr(t->custom_json, "\"ident_format\":") == NULL) {
        return POSGATE_OK;
    }
    if (c->n == TARGETS_MAX || strlen(t->name) >= sizeof(o->name) ||
        strlen(t->custom_json) >= sizeof(o->custom)) {
        fprintf(stderr, "ident_old_format: target %s: expected at most %d short targets\n", t->name,
                TARGETS_MAX);
        return POSGATE_ERR_INVALID;
    }
    o = &c->v[c->n];
    snprintf(o->name, sizeof(o->name), "%s", t->name);
    snprintf(o->copy, sizeof(o->copy), "%s/target-%zu", c->work, c->n);
    if (copy_file(t->stored_path, o->copy) != 0) {
        fprintf(stderr, "ident_old_format: cannot copy %s to %s\n", t->stored_path, o->copy);
        return POSGATE_ERR_IO;
    }
    /* canonical JSON: "ident_format":N is followed by ',' (keys after it) */
    f = strstr(t->custom_json, "\"ident_format\":");
    end = strchr(f, ',');
    if (end == NULL) {
        fprintf(stderr, "ident_old_format: target %s: expected a key after ident_format in %s\n",
                t->name, t->custom_json);
        return POSGATE_ERR_INVALID;
    }
    at = (size_t)(f - t->custom_json);
    len = (size_t)(end + 1 - f);
    memcpy(o->custom, t->custom_json, at);
    snprintf(o->custom + at, sizeof(o->custom) - at, "%s", t->custom_json + at + len);
    c->n++;
    return POSGATE_OK;
}

int
main(int argc, char **argv)
{
    struct tuf_writer *w = NULL;
    struct crypto_privkey *keys[4] = {NULL, NULL, NULL, NULL};
    struct collect *c = NULL;
    char msg[512] = "";
    size_t nkeys = 0;
    int rc = 1;

    if (argc < 5 || argc > 8) {
        fprintf(stderr, "usage: ident_old_format TUF_STATE_DIR OUT_DIR WORK_DIR KEY...\n");
        return 2;
    }
    for (int i = 4; i < argc; i++) {
        if (crypto_privkey_load(argv[i], &keys[nkeys]) != POSGATE_OK) {
            fprintf(stderr, "ident_old_format: cannot load the key %s\n", argv[i]);
            goto out;
        }
        nkeys++;
    }
    if (tuf_writer_open(argv[1], &w, msg, sizeof(msg)) != POSGATE_OK) {
        fprintf(stderr, "ident_old_format: cannot open %s: %s\n", argv[1], msg);
        goto out;
    }
    c = calloc(1, sizeof(*c));
    if (c == NULL) {
        goto out;
    }
    c->work = argv[3];
    if (tuf_writer_foreach_target(w, "targets", collect_fn, c) != POSGATE_OK) {
        goto out;
    }
    if (c->n == 0) {
        fprintf(stderr, "ident_old_format: expected targets with ident_format, found none\n");
        goto out;
    }
    for (size_t i = 0; i < c->n; i++) {
        if (tuf_writer_add_target(w, "targets", c->v[i].name, c->v[i].copy, c->v[i].custom) !=
            POSGATE_OK) {
            fprintf(stderr, "ident_old_format: %s: %s\n", c->v[i].name, tuf_writer_errmsg(w));
            goto out;
        }
    }
    if (tuf_writer_publish(w, argv[2], keys, nkeys) != POSGATE_OK) {
        fprintf(stderr, "ident_old_format: publishing to %s: %s\n", argv[2], tuf_writer_errmsg(w));
        goto out;
    }
    printf("%zu targets without ident_format\n", c->n);
    rc = 0;
out:
    free(c);
    tuf_writer_free(w);
    for (size_t i = 0; i < nkeys; i++) {
        crypto_privkey_free(keys[i]);
    }
    return rc;
}
