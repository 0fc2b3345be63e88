/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Tests of the root-authorised pins (agent/core/pins.c, pins_apply_root): the verified root's
 * x-posgate-authorities record moves a list's pin; malformed records and pins files are refused
 * with the pins file unchanged; a root without a record leaves first-sight pins as they are; an
 * unchanged record does not rewrite the file. (pins_check against real feeds is covered by
 * tests/unit/agent/core/update.c and tests/integration/keys_authority.sh.)
 */
#define _POSIX_C_SOURCE 200809L
#include "test.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "pins.h"
#include "plat_file.h"

#define K1 "1111111111111111111111111111111111111111111111111111111111111111"
#define K2 "2222222222222222222222222222222222222222222222222222222222222222"

static char dir[256], pins_path[300];

static void
put(const char *text)
{
    CHECK_OK(plat_write_atomic(pins_path, text, strlen(text), 0600));
}

static char *
get(void)
{
    struct buf b = BUF_INIT(1u << 20);
    char *s;

    if (plat_read_file(pins_path, &b) != POSGATE_OK) {
        buf_free(&b);
        return NULL;
    }
    s = calloc(1, b.len + 1);
    memcpy(s, b.data, b.len);
    buf_free(&b);
    return s;
}

static enum posgate_err
apply(const char *auth_json, char *msg, size_t cap)
{
    char root[2048];

    snprintf(
        root, sizeof(root), "{\"signatures\":[],\"signed\":{\"_type\":\"root\",\"version\":7%s%s}}",
        auth_json != NULL ? ",\"x-posgate-authorities\":" : "", auth_json != NULL ? auth_json : "");
    return pins_apply_root(pins_path, root, strlen(root), msg, cap);
}

static void
test_refusals(void)
{
    char msg[512], *before;

    put("{\"lists\":{\"a\":{\"role\":\"list-a\",\"threshold\":1,\"keys\":[\"" K1 "\"]}}}");
    before = get();
    CHECK_ERR(pins_apply_root(pins_path, "{", 1, msg, sizeof(msg)), POSGATE_ERR_PARSE);
    CHECK_CONTAINS(msg, "trusted root.json");
    CHECK_ERR(apply("[]", msg, sizeof(msg)), POSGATE_ERR_REJECTED);
    CHECK_CONTAINS(msg, "expected x-posgate-authorities to be an object");
    /* threshold above the key count, zero, duplicate keys, a key that is not a sha256 hex */
    CHECK_ERR(apply("{\"a\":{\"role\":\"list-a\",\"threshold\":2,\"keys\":[\"" K1 "\"]}}", msg,
                    sizeof(msg)),
              POSGATE_ERR_REJECTED);
    CHECK_CONTAINS(msg, "root version 7: x-posgate-authorities.a: expected");
    CHECK_ERR(apply("{\"a\":{\"role\":\"list-a\",\"threshold\":0,\"keys\":[\"" K1 "\"]}}", msg,
                    sizeof(msg)),
              POSGATE_ERR_REJECTED);
    CHECK_ERR(apply("{\"a\":{\"role\":\"list-a\",\"threshold\":1,\"keys\":[\"" K1 "\",\"" K1
                    "\"]}}",
                    msg, sizeof(msg)),
              POSGATE_ERR_REJECTED);
    CHECK_ERR(
        apply("{\"a\":{\"role\":\"list-a\",\"threshold\":1,\"keys\":[\"abc\"]}}", msg, sizeof(msg)),
        POSGATE_ERR_REJECTED);
    CHECK_ERR(apply("{\"a\":{\"threshold\":1,\"keys\":[\"" K1 "\"]}}", msg, sizeof(msg)),
              POSGATE_ERR_REJECTED);
    {
        char *now = get();

        CHECK_STR(now, before);
        free(now);
    }
    /* a damaged pins file */
    put("[1]");
    CHECK_ERR(apply("{\"a\":{\"role\":\"list-a\",\"threshold\":1,\"keys\":[\"" K2 "\"]}}", msg,
                    sizeof(msg)),
              POSGATE_ERR_CORRUPT);
    CHECK_CONTAINS(msg, "not an object");
    put(before);
    free(before);
}

static void
test_moves(void)
{
    char msg[512], *s;
    struct stat st1, st2;

    /* no record: nothing written, not even a missing file */
    unlink(pins_path);
    CHECK_OK(apply(NULL, msg, sizeof(msg)));
    CHECK(get() == NULL);
    /* a record pins a list never seen */
    CHECK_OK(apply("{\"a\":{\"role\":\"list-a\",\"threshold\":1,\"keys\":[\"" K2 "\"]}}", msg,
                   sizeof(msg)));
    s = get();
    CHECK(s != NULL);
    CHECK_CONTAINS(s,
                   "\"a\":{\"role\":\"list-a\",\"threshold\":1,\"keys\":[\"" K2 "\"],\"root\":7}");
    free(s);
    /* a first-sight pin of another list stays; the recorded one moves (its name kept) */
    put("{\"lists\":{\"a\":{\"role\":\"list-a\",\"threshold\":1,\"keys\":[\"" K1
        "\"]},\"b\":{\"role\":\"list-b\",\"threshold\":1,\"keys\":[\"" K1 "\"]}}}");
    CHECK_OK(apply("{\"a\":{\"role\":\"list-a\",\"threshold\":2,\"keys\":[\"" K2 "\",\"" K1 "\"]}}",
                   msg, sizeof(msg)));
    s = get();
    CHECK_CONTAINS(s, "\"a\":{\"role\":\"list-a\",\"threshold\":2,\"keys\":[\"" K1 "\",\"" K2
                      "\"],\"root\":7}");
    CHECK_CONTAINS(s, "\"b\":{\"role\":\"list-b\",\"threshold\":1,\"keys\":[\"" K1 "\"]}");
    free(s);
    /* the same record again: the file is not rewritten */
    CHECK(stat(pins_path, &st1) == 0);
    sleep(1);
    CHECK_OK(apply("{\"a\":{\"role\":\"list-a\",\"threshold\":2,\"keys\":[\"" K1 "\",\"" K2 "\"]}}",
                   msg, sizeof(msg)));
    CHECK(stat(pins_path, &st2) == 0);
    CHECK(st1.st_mtime == st2.st_mtime && st1.st_ino == st2.st_ino);
}

int
main(void)
{
    const char *tmp = getenv("TMPDIR");

    snprintf(dir, sizeof(dir), "%s/posgate-pins-XXXXXX", tmp != NULL ? tmp : "/tmp");
    if (mkdtemp(dir) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    snprintf(pins_path, sizeof(pins_path), "%s/pins.json", dir);
    test_refusals();
    test_moves();
    unlink(pins_path);
    rmdir(dir);
    return test_summary("pins");
}
