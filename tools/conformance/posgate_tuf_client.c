/* SPDX-License-Identifier: Apache-2.0 */
/*
 * posgate-tuf-client: the client-under-test command line of the public TUF conformance suite
 * (tuf-conformance CLIENT-CLI.md) on the same verifier the agent uses (sync/tuf/tuf_client.h).
 * Commands: init (install a trusted root), refresh (the client workflow), download (refresh,
 * then look each target up and download it verified, skipping one already present with the
 * right hashes). A URL that is not http(s):// is read as a directory (handy for local tests).
 * Exit status 0 on success, 1 on any failure.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "carrier.h"
#include "plat_file.h"
#include "plat_text.h"
#include "posgate_err.h"
#include "tuf_client.h"
#include "version.h"

#define MAX_TARGETS 256

static void
usage(FILE *f)
{
    fprintf(f, "usage: posgate-tuf-client --metadata-dir DIR init TRUSTED_ROOT\n"
               "       posgate-tuf-client --metadata-dir DIR --metadata-url URL refresh\n"
               "       posgate-tuf-client --metadata-dir DIR --metadata-url URL\n"
               "                          --target-name NAME [--target-name NAME ...]\n"
               "                          --target-base-url URL --target-dir DIR download\n"
               "\n"
               "The TUF conformance client-under-test interface of posgate's TUF client.\n"
               "  init      install TRUSTED_ROOT (checked: a TUF root signed by its own keys)\n"
               "  refresh   update root, timestamp, snapshot and targets (TUF spec section 5)\n"
               "  download  refresh, then download each target verified into DIR (named by the\n"
               "            URL-escaped target path); a file already there with the right length\n"
               "            and hashes is not downloaded again\n"
               "URLs not starting with http:// or https:// are read as local directories.\n"
               "Exit status: 0 on success, 1 on failure (the reason goes to stderr).\n");
}

static enum posgate_err
make_carrier(const char *url, struct carrier **out)
{
    if (strncmp(url, "http://", 7) == 0 || strncmp(url, "https://", 8) == 0) {
        return carrier_http_new(url, NULL, out);
    }
    return carrier_dir_new(url, out);
}

/* The target's file name in the target directory: the path escaped as one segment (at most
 * 4096 bytes). */
static int
target_file(const char *dir, const char *name, char *out, size_t cap)
{
    char seg[4096 + 1];

    if (plat_url_escape(name, strlen(name), 0, seg, sizeof(seg), NULL) != POSGATE_OK) {
        return 0;
    }
    /* "." and ".." must not name the directory itself. */
    if (strcmp(seg, ".") == 0 || strcmp(seg, "..") == 0) {
        return 0;
    }
    return plat_path_join(out, cap, dir, seg) == POSGATE_OK;
}

static int
cmd_init(const char *mdir, const char *root_path)
{
    struct buf raw = BUF_INIT(4u * 1024u * 1024u);
    char msg[1024];
    enum posgate_err err = plat_read_file(root_path, &raw);

    if (err != POSGATE_OK) {
        fprintf(stderr, "posgate-tuf-client: cannot read %s: %s\n", root_path,
                posgate_strerror(err));
        buf_free(&raw);
        return 1;
    }
    err = tuf_client_bootstrap(mdir, raw.data, raw.len, msg, sizeof(msg));
    buf_free(&raw);
    if (err != POSGATE_OK) {
        fprintf(stderr, "posgate-tuf-client: init failed (%s): %s\n", posgate_err_name(err), msg);
        return 1;
    }
    fprintf(stderr, "posgate-tuf-client: trusted root installed in %s\n", mdir);
    return 0;
}

static int
run(const char *cmd, const char *mdir, const char *murl, const char *const *names, int nnames,
    const char *turl, const char *tdir)
{
    struct tuf_client_options opt;
    struct tuf_client *c = NULL;
    struct carrier *mc = NULL, *tc = NULL;
    enum posgate_err err;
    int rc = 1;

    memset(&opt, 0, sizeof(opt));
    if (make_carrier(murl, &mc) != POSGATE_OK) {
        fprintf(stderr, "posgate-tuf-client: bad metadata URL %s\n", murl);
        goto out;
    }
    if (turl != NULL && make_carrier(turl, &tc) != POSGATE_OK) {
        fprintf(stderr, "posgate-tuf-client: bad target base URL %s\n", turl);
        goto out;
    }
    opt.metadata_dir = mdir;
    opt.metadata = mc;
    opt.targets = tc;
    err = tuf_client_new(&opt, &c);
    if (err != POSGATE_OK) {
        fprintf(stderr, "posgate-tuf-client: cannot open %s (%s)\n", mdir, posgate_err_name(err));
        goto out;
    }
    err = tuf_client_refresh(c);
    if (err != POSGATE_OK) {
        fprintf(stderr, "posgate-tuf-client: refresh failed (%s): %s\n", posgate_err_name(err),
                tuf_client_errmsg(c));
        goto out;
    }
    if (strcmp(cmd, "refresh") == 0) {
        fprintf(stderr, "posgate-tuf-client: refreshed metadata in %s\n", mdir);
        rc = 0;
        goto out;
    }
    for (int i = 0; i < nnames; i++) {
        struct tuf_target_info info;
        char path[8192];

        err = tuf_client_find_target(c, names[i], &info);
        if (err != POSGATE_OK) {
            fprintf(stderr, "posgate-tuf-client: %s (%s)\n", tuf_client_errmsg(c),
                    posgate_err_name(err));
            goto out;
        }
        if (!target_file(tdir, names[i], path, sizeof(path))) {
            fprintf(stderr, "posgate-tuf-client: no usable file name for target %s\n", names[i]);
            goto out;
        }
        if (tuf_client_verify_file(c, &info, path) == POSGATE_OK) {
            fprintf(stderr, "posgate-tuf-client: %s is up to date in %s\n", names[i], path);
            continue;
        }
        err = tuf_client_download(c, &info, path);
        if (err != POSGATE_OK) {
            fprintf(stderr, "posgate-tuf-client: download failed (%s): %s\n", posgate_err_name(err),
                    tuf_client_errmsg(c));
            goto out;
        }
        fprintf(stderr, "posgate-tuf-client: downloaded %s (signed by %s) to %s\n", names[i],
                info.role, path);
    }
    rc = 0;
out:
    tuf_client_free(c);
    carrier_free(mc);
    carrier_free(tc);
    return rc;
}

int
main(int argc, char **argv)
{
    const char *mdir = NULL, *murl = NULL, *turl = NULL, *tdir = NULL, *cmd = NULL;
    const char *root = NULL;
    const char *names[MAX_TARGETS];
    int nnames = 0;

    if (version_asked(argc, argv)) {
        version_print(stdout, "posgate-tuf-client", VERSION_MBEDTLS | VERSION_CURL | VERSION_CJSON,
                      NULL);
        return 0;
    }
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char **slot = NULL;

        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return 0;
        }
        if (strcmp(a, "-v") == 0 || strcmp(a, "--verbose") == 0) {
            continue;
        }
        if (strcmp(a, "--metadata-dir") == 0) {
            slot = &mdir;
        } else if (strcmp(a, "--metadata-url") == 0) {
            slot = &murl;
        } else if (strcmp(a, "--target-base-url") == 0) {
            slot = &turl;
        } else if (strcmp(a, "--target-dir") == 0) {
            slot = &tdir;
        } else if (strcmp(a, "--target-name") == 0) {
            if (i + 1 >= argc || nnames >= MAX_TARGETS) {
                usage(stderr);
                return 1;
            }
            names[nnames++] = argv[++i];
            continue;
        } else if (a[0] == '-') {
            fprintf(stderr, "posgate-tuf-client: unknown option %s\n", a);
            usage(stderr);
            return 1;
        } else if (cmd == NULL) {
            cmd = a;
            continue;
        } else if (root == NULL && strcmp(cmd, "init") == 0) {
            root = a;
            continue;
        } else {
            fprintf(stderr, "posgate-tuf-client: unexpected argument %s\n", a);
            return 1;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "posgate-tuf-client: %s needs a value\n", a);
            return 1;
        }
        *slot = argv[++i];
    }
    if (cmd == NULL || mdir == NULL) {
        usage(stderr);
        return 1;
    }
    if (strcmp(cmd, "init") == 0) {
        if (root == NULL) {
            usage(stderr);
            return 1;
        }
        return cmd_init(mdir, root);
    }
    if (strcmp(cmd, "refresh") == 0 && murl != NULL) {
        return run(cmd, mdir, murl, NULL, 0, NULL, NULL);
    }
    if (strcmp(cmd, "download") == 0 && murl != NULL && turl != NULL && tdir != NULL &&
        nnames > 0) {
        return run(cmd, mdir, murl, names, nnames, turl, tdir);
    }
    usage(stderr);
    return 1;
}
