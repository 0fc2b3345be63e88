/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The posgate command line's admin calls (agent/core/admin_cli*.c, posgate_admin.h) on their
 * own: the error conventions each documents (which error, which message) for the cases the
 * integration tests reach only through the command's exit code. The commands end to end are
 * tests/integration (kiosk, sync, audit_cli, field_sync, ...).
 */
#define _XOPEN_SOURCE 700
#include <ftw.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "plat_file.h"
#include "posgate_admin.h"
#include "test.h"
#include "test_files.h"

static void
test_data_dir(void)
{
    char root[POSGATE_CLI_PATH_MAX], longpath[POSGATE_CLI_PATH_MAX + 8];

    CHECK_OK(posgate_cli_data_dir("/srv/kiosk", root));
    CHECK_STR(root, "/srv/kiosk");
    memset(longpath, 'a', sizeof(longpath) - 1);
    longpath[0] = '/';
    longpath[sizeof(longpath) - 1] = 0;
    CHECK_ERR(posgate_cli_data_dir(longpath, root), POSGATE_ERR_TOOBIG);
}

static void
test_version(void)
{
    char *yes[] = {"posgate", "--version", NULL}, *no[] = {"posgate", "status", NULL};
    char line[128] = "";
    FILE *f = tmpfile();

    CHECK(f != NULL);
    if (f == NULL) {
        return;
    }
    CHECK_INT(posgate_cli_version(2, no, f), 0);
    CHECK_INT(ftell(f), 0);
    CHECK_INT(posgate_cli_version(2, yes, f), 1);
    rewind(f);
    CHECK(fgets(line, sizeof(line), f) != NULL);
    CHECK(strncmp(line, "posgate ", 8) == 0);
    fclose(f);
}

static void
test_error_json(void)
{
    struct buf b = BUF_INIT(1u << 16);

    /* an input error names the field its message starts with */
    CHECK_OK(
        posgate_cli_error_json(POSGATE_ERR_INVALID, NULL, "ids[1]: cn_rid: bad check digit", &b));
    CHECK_CONTAINS(buf_cstr(&b), "\"field\":\"ids[1]\"");
    CHECK_CONTAINS(buf_cstr(&b), "\"code\":\"INVALID\"");
    /* the field given wins; any other error without one has none */
    CHECK_OK(posgate_cli_error_json(POSGATE_ERR_INVALID, "override", "ids[1]: x", &b));
    CHECK_CONTAINS(buf_cstr(&b), "\"field\":\"override\"");
    CHECK_OK(posgate_cli_error_json(POSGATE_ERR_IO, NULL, "disk: gone", &b));
    CHECK_CONTAINS(buf_cstr(&b), "\"field\":null");
    CHECK(strncmp(buf_cstr(&b), "{\"error\":", 9) == 0); /* reset first: one object */
    buf_free(&b);
}

/* An uninitialised data dir: each call says so in its own terms. */
static void
test_uninitialised(const char *dir)
{
    struct posgate_cli_audit *a = (struct posgate_cli_audit *)1;
    struct buf pem = BUF_INIT(1u << 16);
    char msg[1024], id[POSGATE_CLI_DEVICE_ID_LEN + 1];
    size_t n = 7;

    CHECK_ERR(posgate_cli_audit_open(dir, &a, msg, sizeof(msg)), POSGATE_ERR_NOTFOUND);
    CHECK(a == NULL);
    CHECK_CONTAINS(msg, "is not initialised (run posgate init first)");
    CHECK_ERR(posgate_cli_device_key(dir, id, &pem, msg, sizeof(msg)), POSGATE_ERR_NOTFOUND);
    CHECK(msg[0] != 0);
    CHECK(posgate_cli_verify(dir, &n, msg, sizeof(msg)) != POSGATE_OK);
    CHECK_INT(n, 0);
    buf_free(&pem);
}

static void
test_init_refusals(const char *dir)
{
    const char *jur[] = {"CN"};
    char fp[POSGATE_CLI_KEY_CHECK_LEN + 1], msg[8192], data[1024], key[1024], store[2048];

    snprintf(data, sizeof(data), "%s/data", dir);
    snprintf(key, sizeof(key), "%s/short.key", dir);
    CHECK_OK(plat_write_atomic(key, "0123456789", 10, 0600));
    /* a list key file of the wrong size is the caller's mistake (exit 2), a missing one I/O */
    CHECK_ERR(posgate_cli_init(data, "/nonexistent/1.root.json", key, jur, 1, fp, msg, sizeof(msg)),
              POSGATE_ERR_USAGE);
    CHECK_CONTAINS(msg, "expected exactly 32 bytes");
    snprintf(key, sizeof(key), "%s/missing.key", dir);
    CHECK_ERR(posgate_cli_init(data, "/nonexistent/1.root.json", key, jur, 1, fp, msg, sizeof(msg)),
              POSGATE_ERR_IO);
    /* a root file that does not exist is a usage error, named in the message */
    snprintf(key, sizeof(key), "%s/good.key", dir);
    CHECK_OK(plat_write_atomic(key, "0123456789abcdef0123456789abcdef", 32, 0600));
    CHECK_ERR(posgate_cli_init(data, "/nonexistent/1.root.json", key, jur, 1, fp, msg, sizeof(msg)),
              POSGATE_ERR_USAGE);
    CHECK(strstr(msg, "root /nonexistent/1.root.json: ") == msg);
    CHECK_INT(strlen(fp), POSGATE_CLI_KEY_CHECK_LEN);
    CHECK(!plat_exists(data)); /* nothing made before every input was read */
    /* an initialised data dir is never made again */
    CHECK_OK(plat_mkdir_p(data, 0700));
    snprintf(store, sizeof(store), "%s/store.db", data);
    CHECK_OK(plat_write_atomic(store, "x", 1, 0600));
    CHECK_ERR(posgate_cli_init(data, "/nonexistent/1.root.json", key, jur, 1, fp, msg, sizeof(msg)),
              POSGATE_ERR_USAGE);
    CHECK_CONTAINS(msg, "is already initialised (remove it to start over)");
}

static void
test_sources(const char *dir)
{
    struct posgate_cli_source *src = (struct posgate_cli_source *)1;
    struct posgate_cli_fetch_stats fs;
    char msg[2048], path[1024];

    snprintf(path, sizeof(path), "%s/none.bundle", dir);
    CHECK(posgate_cli_source_path(path, &src, msg, sizeof(msg)) != POSGATE_OK);
    CHECK(src == NULL);
    /* a directory is a feed directory: its carriers open without reading anything */
    CHECK_OK(posgate_cli_source_path(dir, &src, msg, sizeof(msg)));
    posgate_cli_source_stats(src, &fs);
    CHECK_INT(fs.attempts + fs.bytes + fs.retry_after_s, 0);
    CHECK_STR(fs.failures[0].name, "network");
    for (int k = 0; k < POSGATE_CLI_FETCH_FAILS; k++) {
        CHECK(fs.failures[k].name != NULL && fs.failures[k].n == 0);
    }
    posgate_cli_source_free(src);
    posgate_cli_source_free(NULL);
}

static void
test_stick_bundle(const char *dir)
{
    char stick[1024], path[2048], best[POSGATE_CLI_PATH_MAX];

    snprintf(stick, sizeof(stick), "%s/stick", dir);
    CHECK(posgate_cli_stick_bundle(stick, best) != POSGATE_OK); /* no stick */
    CHECK_OK(plat_mkdir_p(stick, 0755));
    CHECK_OK(posgate_cli_stick_bundle(stick, best));
    CHECK_STR(best, "");
    /* bundles whose timestamp cannot be read claim version 0: the later name wins the tie; a
     * directory named like a bundle is not one */
    snprintf(path, sizeof(path), "%s/a.bundle", stick);
    CHECK_OK(plat_write_atomic(path, "not a bundle", 12, 0644));
    snprintf(path, sizeof(path), "%s/b.bundle", stick);
    CHECK_OK(plat_write_atomic(path, "not a bundle", 12, 0644));
    snprintf(path, sizeof(path), "%s/c.bundle", stick);
    CHECK_OK(plat_mkdir_p(path, 0755));
    CHECK_OK(posgate_cli_stick_bundle(stick, best));
    snprintf(path, sizeof(path), "%s/b.bundle", stick);
    CHECK_STR(best, path);
}

static int
remove_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

int
main(void)
{
    char dir[512];

    if (!test_mkdtemp(dir, sizeof(dir), "admin-cli")) {
        return 1;
    }
    test_data_dir();
    test_version();
    test_error_json();
    test_uninitialised(dir);
    test_init_refusals(dir);
    test_sources(dir);
    test_stick_bundle(dir);
    nftw(dir, remove_one, 16, FTW_DEPTH | FTW_PHYS);
    return test_summary("admin_cli");
}
