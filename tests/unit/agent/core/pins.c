/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Tests of the root-authorised pins (agent/core/pins.c, pins_apply_root): the verified root's
 * x-posgate-authorities record moves a list's pin; malformed records and pins files are refused
 * with the pins file unchanged; a root without a record leaves first-sight pins as they are; an
 * unchanged record does not rewrite the file. Retirement: a record marked "retired" makes the
 * list's pin a retiring one (also where the kiosk never pinned it), pins_check unpins it into
 * "retired" once the feed's config no longer has the list and refuses a config that lists it
 * again, a record without "retired" brings it back; a list the root never retired stays pinned
 * when the config drops it (update.c refuses that feed). (pins_check against real feeds is
 * covered by tests/unit/agent/core/update.c and tests/integration/keys_authority.sh,
 * keys_retire.sh.)
 */
#define _POSIX_C_SOURCE 200809L
#include "test.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "feed_config.h"
#include "pins.h"
#include "plat_file.h"

#define K1       "1111111111111111111111111111111111111111111111111111111111111111"
#define K2       "2222222222222222222222222222222222222222222222222222222222222222"
#define T1       "2026-05-01T08:00:00Z"
#define PIN_A(k) "\"a\":{\"role\":\"list-a\",\"threshold\":1,\"keys\":[\"" k "\"]"
#define REC_A_RETIRED                                                                              \
    "{\"a\":{\"role\":\"list-a\",\"threshold\":1,\"keys\":[\"" K1 "\"],\"retired\":\"" T1 "\"}}"

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
apply_v(int version, const char *auth_json, char *msg, size_t cap)
{
    char root[2048];

    snprintf(root, sizeof(root),
             "{\"signatures\":[],\"signed\":{\"_type\":\"root\",\"version\":%d%s%s}}", version,
             auth_json != NULL ? ",\"x-posgate-authorities\":" : "",
             auth_json != NULL ? auth_json : "");
    return pins_apply_root(pins_path, root, strlen(root), msg, cap);
}

static enum posgate_err
apply(const char *auth_json, char *msg, size_t cap)
{
    return apply_v(7, auth_json, msg, cap);
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
    /* a retirement whose time is not a string, not a time, or past any RFC 3339 length */
    CHECK_ERR(apply("{" PIN_A(K1) ",\"retired\":1}}", msg, sizeof(msg)), POSGATE_ERR_REJECTED);
    CHECK_CONTAINS(msg, "optional \"retired\": RFC 3339 time");
    CHECK_ERR(apply("{" PIN_A(K1) ",\"retired\":\"yesterday\"}}", msg, sizeof(msg)),
              POSGATE_ERR_REJECTED);
    CHECK_ERR(apply("{" PIN_A(K1) ",\"retired\":\"2026-05-01T08:00:00.000000000000000000000Z\"}}",
                    msg, sizeof(msg)),
              POSGATE_ERR_REJECTED);
    /* a retirement without the authority it retires */
    CHECK_ERR(apply("{\"a\":{\"retired\":\"" T1 "\"}}", msg, sizeof(msg)), POSGATE_ERR_REJECTED);
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
    put("{\"lists\":{},\"retired\":[]}");
    CHECK_ERR(apply(REC_A_RETIRED, msg, sizeof(msg)), POSGATE_ERR_CORRUPT);
    CHECK_CONTAINS(msg, "\"retired\" is not an object");
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
    /* ... nor by a later root restating it: the pin keeps the version that set it */
    CHECK_OK(
        apply_v(8, "{\"a\":{\"role\":\"list-a\",\"threshold\":2,\"keys\":[\"" K1 "\",\"" K2 "\"]}}",
                msg, sizeof(msg)));
    CHECK(stat(pins_path, &st2) == 0);
    CHECK(st1.st_mtime == st2.st_mtime && st1.st_ino == st2.st_ino);
}

/* A feed config of lists a and b when with_a, else of b only. */
static struct feed_config *
config(int with_a)
{
    char json[1024];
    struct feed_config *cfg = NULL;
    char msg[FEED_ERRMSG_MIN];

    snprintf(
        json, sizeof(json),
        "{\"feed_id\":\"t\",\"services\":[\"air\"],\"lists\":[%s{\"id\":\"b\","
        "\"authority\":\"B\",\"jurisdictions\":[],\"stale_after\":\"7d\"}],\"reasons\":[{\"id\":"
        "\"r\",\"authority\":\"B\",\"legal_basis\":\"x\",\"contest\":\"y\",\"scope\":[\"air\"],"
        "\"override\":\"none\",\"minors\":\"refer\"}]}",
        with_a ? "{\"id\":\"a\",\"authority\":\"A\",\"jurisdictions\":[],"
                 "\"stale_after\":\"7d\"},"
               : "");
    CHECK_OK(feed_config_parse(json, strlen(json), 0, &cfg, msg, sizeof(msg)));
    if (cfg == NULL) {
        fprintf(stderr, "config: %s\n", msg);
    }
    return cfg;
}

/* pins_check of a feed that delegates nothing (the delegation checks themselves are update.c's
 * tests): what retirement changes is which lists the config may drop or list. */
static enum posgate_err
check(int with_a, char *msg, size_t cap)
{
    static const char targets[] = "{\"signatures\":[],\"signed\":{\"_type\":\"targets\"}}";
    struct feed_config *cfg = config(with_a);
    enum posgate_err err;

    if (cfg == NULL) {
        return POSGATE_ERR_INVALID;
    }
    err = pins_check(pins_path, targets, strlen(targets), NULL, cfg, msg, cap);
    feed_config_free(cfg);
    return err;
}

static void
test_retire(void)
{
    char msg[512], *s, *before;
    struct stat st1, st2;

    /* the root retires a list this kiosk pinned on first sight: the pin becomes a retiring one,
     * still held to its delegation while the feed carries the list */
    put("{\"lists\":{" PIN_A(K1) "}}}");
    CHECK_OK(apply_v(9, REC_A_RETIRED, msg, sizeof(msg)));
    s = get();
    CHECK_CONTAINS(s, PIN_A(K1) ",\"root\":9,\"retired\":\"" T1 "\"}");
    free(s);
    CHECK_ERR(check(1, msg, sizeof(msg)), POSGATE_ERR_REJECTED);
    CHECK_CONTAINS(msg, "list a is pinned to its authority's delegation");
    CHECK_CONTAINS(msg, "this feed removes it");
    /* the feed drops the list: unpinned, its retirement kept */
    CHECK_OK(check(0, msg, sizeof(msg)));
    s = get();
    CHECK_STR(s, "{\"lists\":{},\"retired\":{" PIN_A(K1) ",\"root\":9,\"retired\":\"" T1 "\"}}}");
    free(s);
    /* later roots restating the retirement change nothing; nor does another feed without it */
    CHECK(stat(pins_path, &st1) == 0);
    sleep(1);
    CHECK_OK(apply_v(10, REC_A_RETIRED, msg, sizeof(msg)));
    CHECK_OK(check(0, msg, sizeof(msg)));
    CHECK(stat(pins_path, &st2) == 0);
    CHECK(st1.st_mtime == st2.st_mtime && st1.st_ino == st2.st_ino);
    /* a feed listing it again, under the root's retirement: refused, pins unchanged */
    before = get();
    CHECK_ERR(check(1, msg, sizeof(msg)), POSGATE_ERR_REJECTED);
    CHECK_CONTAINS(msg, "list a was retired by the root (root version 9, retired " T1 ")");
    CHECK_CONTAINS(msg, "recorded anew");
    s = get();
    CHECK_STR(s, before);
    free(s);
    free(before);
    /* a root recording the list anew (another key): it returns, pinned to the record */
    CHECK_OK(apply_v(11, "{\"a\":{\"role\":\"list-a\",\"threshold\":1,\"keys\":[\"" K2 "\"]}}", msg,
                     sizeof(msg)));
    s = get();
    CHECK_STR(s, "{\"lists\":{" PIN_A(K2) ",\"root\":11}},\"retired\":{}}");
    free(s);

    /* a kiosk that never pinned the list (installed after its delegation) pins the retiring
     * authority from the record; a feed without the list then unpins it */
    unlink(pins_path);
    CHECK_OK(apply_v(9, REC_A_RETIRED, msg, sizeof(msg)));
    s = get();
    CHECK_STR(s, "{\"lists\":{" PIN_A(K1) ",\"root\":9,\"retired\":\"" T1 "\"}}}");
    free(s);
    CHECK_OK(check(0, msg, sizeof(msg)));
    s = get();
    CHECK_CONTAINS(s, "\"retired\":{\"a\":");
    free(s);

    /* without the root's retirement a pinned list the config drops stays pinned (update.c then
     * refuses the feed: "config/feed.json drops it") */
    put("{\"lists\":{" PIN_A(K1) ",\"root\":3}}}");
    before = get();
    CHECK_OK(check(0, msg, sizeof(msg)));
    s = get();
    CHECK_STR(s, before);
    free(s);
    free(before);
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
    test_retire();
    unlink(pins_path);
    rmdir(dir);
    return test_summary("pins");
}
