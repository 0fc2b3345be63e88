/* SPDX-License-Identifier: Apache-2.0 */
/* Tests of sync/list_config: building a delegated list's authority-signed config from feed.json
 * and comparing a feed.json with it. Safety cases first (NULLs, bad indices, oversize and
 * malformed signed configs), then the byte form, then each way the operator's feed.json may
 * differ (the list's fields, a used reason's fields, a reason moved, the services renamed or
 * reordered, the list dropped, a field added or left out, a repeated key), each refused with a
 * message naming the list and the field, and what the operator may still change (appended
 * services, other lists, unused reasons). */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "list_config.h"
#include "test.h"

#define SERVICES                                                                                   \
    "\"services\":[\"air\",\"air.first\",\"rail\",\"rail.hsr\",\"hotel\",\"hotel.star\"]"
#define NOFLY                                                                                      \
    "{\"id\":\"no-fly\",\"authority\":\"CAAC\",\"jurisdictions\":[\"CN\"],\"stale_after\":\"2d\"," \
    "\"stale_policy\":\"deny\"}"
#define SPC                                                                                        \
    "{\"id\":\"spc\",\"authority\":\"SPC\",\"jurisdictions\":[\"CN\"],\"stale_after\":\"7d\"}"
#define R_DEBTOR                                                                                   \
    "{\"id\":\"debtor\",\"authority\":\"SPC\",\"legal_basis\":\"Art. 3\",\"contest\":\"12368\","   \
    "\"scope\":[\"air\",\"rail.hsr\"]}"
#define R_AIR                                                                                      \
    "{\"id\":\"air-safety\",\"authority\":\"CAAC\",\"legal_basis\":\"Art. 9\",\"contest\":\"CAAC " \
    "within 30 days\",\"scope\":[\"air\"],\"override\":\"supervisor\",\"minors\":\"deny\"}"

/* lists [spc, no-fly], reasons [debtor, air-safety]; no-fly's rows use reason 1. */
static const char feed[] = "{\"feed_id\":\"f\"," SERVICES ",\"lists\":[" SPC "," NOFLY
                           "],\"reasons\":[" R_DEBTOR "," R_AIR "]}";
static const uint16_t used[1] = {1};

static void
build(const char *json, struct buf *out)
{
    char msg[LIST_CONFIG_ERRMSG];

    buf_reset(out);
    CHECK_OK(list_config_build(json, strlen(json), "no-fly", used, 1, out, msg, sizeof(msg)));
}

/* feed.json with from replaced by to (once), checked against the signed config of feed. */
static enum posgate_err
check_edit(const struct buf *sig, const char *from, const char *to, char *msg, size_t cap)
{
    struct buf edited = BUF_INIT(1u << 20);
    const char *at = strstr(feed, from);
    enum posgate_err err;

    CHECK(at != NULL);
    if (at == NULL) {
        return POSGATE_ERR_INVALID;
    }
    CHECK_OK(buf_append(&edited, feed, (size_t)(at - feed)));
    CHECK_OK(buf_append_str(&edited, to));
    CHECK_OK(buf_append_str(&edited, at + strlen(from)));
    msg[0] = 0;
    err = list_config_check(edited.data, edited.len, "no-fly", sig->data, sig->len, msg, cap);
    buf_free(&edited);
    return err;
}

static void
expect_differs(const struct buf *sig, const char *from, const char *to, const char *n1,
               const char *n2)
{
    char msg[LIST_CONFIG_ERRMSG];

    CHECK_ERR(check_edit(sig, from, to, msg, sizeof(msg)), POSGATE_ERR_REJECTED);
    CHECK_CONTAINS(msg, "list no-fly");
    CHECK_CONTAINS(msg, n1);
    if (n2 != NULL) {
        CHECK_CONTAINS(msg, n2);
    }
}

static void
expect_same(const struct buf *sig, const char *from, const char *to)
{
    char msg[LIST_CONFIG_ERRMSG];

    CHECK_OK(check_edit(sig, from, to, msg, sizeof(msg)));
    CHECK_STR(msg, "");
}

static void
test_safety(void)
{
    struct buf out = BUF_INIT(1u << 20), small = BUF_INIT(64);
    char msg[LIST_CONFIG_ERRMSG];
    const uint16_t twice[2] = {1, 1}, beyond[1] = {2};

    CHECK_ERR(list_config_build(NULL, 0, "no-fly", used, 1, &out, msg, sizeof(msg)),
              POSGATE_ERR_INVALID);
    CHECK_ERR(list_config_build(feed, strlen(feed), NULL, used, 1, &out, msg, sizeof(msg)),
              POSGATE_ERR_INVALID);
    CHECK_ERR(list_config_build(feed, strlen(feed), "no-fly", NULL, 1, &out, NULL, 0),
              POSGATE_ERR_INVALID);
    CHECK_ERR(list_config_build(feed, strlen(feed), "no-fly", used, 1, NULL, msg, sizeof(msg)),
              POSGATE_ERR_INVALID);
    CHECK_ERR(list_config_build(feed, strlen(feed), "absent", used, 1, &out, msg, sizeof(msg)),
              POSGATE_ERR_INVALID);
    CHECK_CONTAINS(msg, "expected list absent in feed.json, found none");
    CHECK_ERR(list_config_build(feed, strlen(feed), "no-fly", twice, 2, &out, msg, sizeof(msg)),
              POSGATE_ERR_INVALID);
    CHECK_CONTAINS(msg, "above 1, found 1");
    CHECK_ERR(list_config_build(feed, strlen(feed), "no-fly", beyond, 1, &out, msg, sizeof(msg)),
              POSGATE_ERR_INVALID);
    CHECK_CONTAINS(msg, "(2 of them)");
    CHECK_ERR(list_config_build("{", 1, "no-fly", used, 1, &out, msg, sizeof(msg)),
              POSGATE_ERR_PARSE);
    CHECK_ERR(list_config_build(feed, strlen(feed), "no-fly", used, 1, &small, msg, sizeof(msg)),
              POSGATE_ERR_TOOBIG);

    CHECK_ERR(list_config_check(NULL, 0, "no-fly", "{}", 2, msg, sizeof(msg)), POSGATE_ERR_INVALID);
    CHECK_ERR(list_config_check(feed, strlen(feed), "no-fly", NULL, 0, msg, sizeof(msg)),
              POSGATE_ERR_INVALID);
    CHECK_ERR(list_config_check(feed, strlen(feed), NULL, "{}", 2, NULL, 0), POSGATE_ERR_INVALID);
    buf_free(&out);
    buf_free(&small);
}

/* Signed configs that are not what a publisher writes: refused, naming the file. */
static void
test_malformed_signed(void)
{
    static const char *const bad[] = {
        "",
        "{",
        "[]",
        "{\"format\":2,\"list\":" NOFLY ",\"reasons\":[]," SERVICES "}",
        "{\"list\":" NOFLY ",\"reasons\":[]," SERVICES "}",
        "{\"format\":1,\"list\":" SPC ",\"reasons\":[]," SERVICES "}",
        "{\"format\":1,\"list\":[],\"reasons\":[]," SERVICES "}",
        "{\"format\":1,\"list\":" NOFLY "," SERVICES "}",
        "{\"format\":1,\"list\":" NOFLY ",\"reasons\":[]}",
        "{\"format\":1,\"list\":" NOFLY ",\"reasons\":[],\"services\":[1]}",
        "{\"format\":1,\"list\":" NOFLY ",\"reasons\":[{\"index\":1}]," SERVICES "}",
        "{\"format\":1,\"list\":" NOFLY ",\"reasons\":[{\"index\":-1,\"reason\":{}}]," SERVICES "}",
        "{\"format\":1,\"list\":" NOFLY ",\"reasons\":[{\"index\":1,\"reason\":" R_AIR "},"
        "{\"index\":1,\"reason\":" R_AIR "}]," SERVICES "}",
        "{\"format\":1,\"list\":" NOFLY ",\"reasons\":[{\"index\":\"1\",\"reason\":" R_AIR
        "}]," SERVICES "}",
    };
    char msg[LIST_CONFIG_ERRMSG];
    struct buf huge = BUF_INIT(LIST_CONFIG_MAX_BYTES + 64);

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        msg[0] = 0;
        CHECK_ERR(list_config_check(feed, strlen(feed), "no-fly", bad[i], strlen(bad[i]), msg,
                                    sizeof(msg)),
                  POSGATE_ERR_REJECTED);
        CHECK_CONTAINS(msg, "lists/no-fly/config.json");
    }
    CHECK_OK(buf_append_str(&huge, "[\""));
    while (huge.len < LIST_CONFIG_MAX_BYTES + 8) {
        CHECK_OK(buf_append_str(&huge, "aaaaaaaa"));
    }
    CHECK_OK(buf_append_str(&huge, "\"]"));
    CHECK_ERR(
        list_config_check(feed, strlen(feed), "no-fly", huge.data, huge.len, msg, sizeof(msg)),
        POSGATE_ERR_REJECTED);
    CHECK_CONTAINS(msg, "lists/no-fly/config.json");
    /* a malformed feed.json against a good signed config */
    {
        struct buf sig = BUF_INIT(1u << 20);

        build(feed, &sig);
        CHECK_ERR(
            list_config_check("{\"lists\":", 9, "no-fly", sig.data, sig.len, msg, sizeof(msg)),
            POSGATE_ERR_REJECTED);
        CHECK_CONTAINS(msg, "config/feed.json");
        buf_free(&sig);
    }
    buf_free(&huge);
}

static void
test_build(void)
{
    struct buf a = BUF_INIT(1u << 20), b = BUF_INIT(1u << 20);
    static const char spaced[] = "{ \"reasons\": [" R_DEBTOR ", " R_AIR "], \"lists\": [" SPC
                                 ", " NOFLY "], " SERVICES ", \"feed_id\": \"f\" }";
    char msg[LIST_CONFIG_ERRMSG];

    build(feed, &a);
    /* canonical: keys sorted, no whitespace, the objects verbatim, only the used reason */
    CHECK_CONTAINS(buf_cstr(&a), "{\"format\":1,\"list\":{\"authority\":\"CAAC\","
                                 "\"id\":\"no-fly\",\"jurisdictions\":[\"CN\"],"
                                 "\"stale_after\":\"2d\",\"stale_policy\":\"deny\"},"
                                 "\"reasons\":[{\"index\":1,\"reason\":{\"authority\":\"CAAC\",");
    CHECK_CONTAINS(buf_cstr(&a), "\"services\":[\"air\",\"air.first\",\"rail\",\"rail.hsr\","
                                 "\"hotel\",\"hotel.star\"]}");
    CHECK(strstr(buf_cstr(&a), "debtor") == NULL);
    /* the same content in another layout builds the same bytes */
    build(spaced, &b);
    CHECK_INT(a.len, b.len);
    CHECK(a.len == b.len && memcmp(a.data, b.data, a.len) == 0);
    /* and checks clean against both layouts */
    CHECK_OK(list_config_check(feed, strlen(feed), "no-fly", a.data, a.len, msg, sizeof(msg)));
    CHECK_OK(list_config_check(spaced, strlen(spaced), "no-fly", a.data, a.len, msg, sizeof(msg)));
    /* no reasons used: an empty array */
    buf_reset(&b);
    CHECK_OK(list_config_build(feed, strlen(feed), "no-fly", NULL, 0, &b, msg, sizeof(msg)));
    CHECK_CONTAINS(buf_cstr(&b), "\"reasons\":[]");
    buf_free(&a);
    buf_free(&b);
}

static void
test_differences(void)
{
    struct buf sig = BUF_INIT(1u << 20);
    char msg[LIST_CONFIG_ERRMSG];

    build(feed, &sig);
    /* the list's own fields */
    expect_differs(&sig, "\"jurisdictions\":[\"CN\"],\"stale_after\":\"2d\"",
                   "\"jurisdictions\":[\"HK\"],\"stale_after\":\"2d\"",
                   "lists[1].jurisdictions is [\"HK\"], the authority signed [\"CN\"]",
                   "differs from what its authority signed in lists/no-fly/config.json");
    expect_differs(&sig, "\"stale_after\":\"2d\"", "\"stale_after\":\"30d\"",
                   "lists[1].stale_after is \"30d\", the authority signed \"2d\"", NULL);
    expect_differs(&sig, "\"stale_policy\":\"deny\"", "\"stale_policy\":\"allow\"",
                   "lists[1].stale_policy", NULL);
    expect_differs(&sig, "\"authority\":\"CAAC\",\"jurisdictions\"",
                   "\"authority\":\"Someone\",\"jurisdictions\"", "lists[1].authority", NULL);
    /* a field left out (its default) or added */
    expect_differs(&sig, ",\"stale_policy\":\"deny\"}", "}",
                   "lists[1].stale_policy is nothing, the authority signed \"deny\"", NULL);
    expect_differs(&sig, "\"stale_policy\":\"deny\"}",
                   "\"stale_policy\":\"deny\",\"timezone\":\"UTC\"}",
                   "lists[1].timezone is \"UTC\", the authority signed nothing", NULL);
    /* a repeated key (the second value not what was signed): refused by the parser */
    CHECK_ERR(check_edit(&sig, "\"stale_policy\":\"deny\"}",
                         "\"stale_policy\":\"deny\",\"stale_policy\":\"allow\"}", msg, sizeof(msg)),
              POSGATE_ERR_REJECTED);
    CHECK_CONTAINS(msg, "config/feed.json: JSON object has the key \"stale_policy\" twice");
    /* the list dropped, or moved under another id */
    expect_differs(&sig, "," NOFLY, "", "config/feed.json drops it", NULL);
    expect_differs(&sig, "\"id\":\"no-fly\"", "\"id\":\"no-fly2\"", "drops it", NULL);
    /* a used reason's fields */
    expect_differs(&sig, "\"scope\":[\"air\"],\"override\"",
                   "\"scope\":[\"hotel.star\"],\"override\"",
                   "reasons[1].scope is [\"hotel.star\"], the authority signed [\"air\"]", NULL);
    expect_differs(&sig, "\"legal_basis\":\"Art. 9\"", "\"legal_basis\":\"Art. 10\"",
                   "reasons[1].legal_basis", NULL);
    expect_differs(&sig, "\"contest\":\"CAAC within 30 days\"", "\"contest\":\"nowhere\"",
                   "reasons[1].contest is \"nowhere\"", NULL);
    expect_differs(&sig, "\"override\":\"supervisor\"", "\"override\":\"none\"",
                   "reasons[1].override", NULL);
    expect_differs(&sig, ",\"minors\":\"deny\"}", "}", "reasons[1].minors is nothing", NULL);
    /* the used reason moved: index 1 now holds another one, or nothing */
    expect_differs(&sig, R_DEBTOR "," R_AIR, R_AIR "," R_DEBTOR, "reasons[1].", NULL);
    expect_differs(&sig, R_DEBTOR "," R_AIR, R_AIR, "reasons[1] is nothing", NULL);
    /* the services before the signed end renamed or reordered */
    expect_differs(&sig, "\"rail.hsr\",\"hotel\"", "\"rail.hsr\",\"hotels\"",
                   "services[4] is \"hotels\", the authority signed \"hotel\"", NULL);
    expect_differs(&sig, "\"air\",\"air.first\",\"rail\"", "\"air\",\"rail\",\"air.first\"",
                   "services[1] is \"rail\"", NULL);
    expect_differs(&sig, ",\"hotel.star\"]", "]", "services[5] is nothing", NULL);

    /* what stays the operator's: services appended, other lists, unused reasons */
    expect_same(&sig, "\"hotel.star\"]", "\"hotel.star\",\"bus\"]");
    expect_same(&sig, "\"stale_after\":\"7d\"}", "\"stale_after\":\"9d\"}");
    expect_same(&sig, "\"contest\":\"12368\"", "\"contest\":\"call 12368\"");
    expect_same(&sig, R_AIR "]", R_AIR ",{\"id\":\"new\"}]");
    /* key order and spacing inside the objects do not matter */
    expect_same(&sig, "\"id\":\"no-fly\",\"authority\":\"CAAC\"",
                "\"authority\" : \"CAAC\", \"id\":\"no-fly\"");
    /* a list id that is not in the signed config */
    CHECK_ERR(list_config_check(feed, strlen(feed), "spc", sig.data, sig.len, msg, sizeof(msg)),
              POSGATE_ERR_REJECTED);
    CHECK_CONTAINS(msg, "expected \"list\" to be the object of list spc, found list no-fly");
    buf_free(&sig);
}

int
main(void)
{
    test_safety();
    test_malformed_signed();
    test_build();
    test_differences();
    return test_summary("list_config");
}
