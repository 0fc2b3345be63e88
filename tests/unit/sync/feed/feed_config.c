/* SPDX-License-Identifier: Apache-2.0 */
/* Tests of sync/feed_config: parsing and validation of feed.json, strict and tolerant modes,
 * error messages naming the key, caps, and the lookups (service prefix match, lists, reasons). */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "feed_config.h"
#include "list_key.h"
#include "plat_file.h"
#include "plat_mem.h"
#include "test.h"

#define BASE_SERVICES                                                                              \
    "\"services\":[\"air\",\"air.first\",\"rail\",\"rail.hsr\",\"rail.hsr.first\",\"hotel\","      \
    "\"hotel.star\"]"
#define BASE_LIST                                                                                  \
    "{\"id\":\"spc\",\"authority\":\"SPC\",\"jurisdictions\":[\"CN\"],\"stale_after\":\"7d\","     \
    "\"stale_policy\":\"refer\"}"
#define BASE_REASON                                                                                \
    "{\"id\":\"debtor\",\"authority\":\"SPC\",\"legal_basis\":\"Art. 3\",\"contest\":\"call "      \
    "12368\",\"scope\":[\"rail.hsr\",\"air\"],\"override\":\"none\",\"minors\":\"refer\"}"

static enum posgate_err
parse(const char *json, unsigned flags, struct feed_config **cfg, char *msg, size_t cap)
{
    return feed_config_parse(json, strlen(json), flags, cfg, msg, cap);
}

/* Expects a refusal with err and a message containing each needle. */
static void
expect_fail(const char *json, unsigned flags, enum posgate_err err, const char *n1, const char *n2)
{
    struct feed_config *cfg = NULL;
    char msg[FEED_ERRMSG_MIN];

    CHECK_ERR(parse(json, flags, &cfg, msg, sizeof(msg)), err);
    CHECK(cfg == NULL);
    if (n1 != NULL) {
        CHECK_CONTAINS(msg, n1);
    }
    if (n2 != NULL) {
        CHECK_CONTAINS(msg, n2);
    }
    feed_config_free(cfg);
}

static void
test_safety(void)
{
    struct feed_config *cfg = NULL;
    char msg[FEED_ERRMSG_MIN];

    CHECK_ERR(feed_config_parse(NULL, 0, 0, &cfg, msg, sizeof(msg)), POSGATE_ERR_INVALID);
    CHECK_ERR(feed_config_parse("{}", 2, 0, NULL, msg, sizeof(msg)), POSGATE_ERR_INVALID);
    CHECK_ERR(feed_config_parse("{}", 2, 0, &cfg, NULL, 0), POSGATE_ERR_INVALID);
    CHECK(cfg == NULL);
    CHECK_ERR(feed_config_parse("{", 1, 0, &cfg, msg, sizeof(msg)), POSGATE_ERR_PARSE);
    CHECK_ERR(feed_config_parse("{}", FEED_CONFIG_MAX_BYTES + 1u, 0, &cfg, msg, sizeof(msg)),
              POSGATE_ERR_TOOBIG);
    feed_config_free(NULL);
    CHECK_INT(feed_config_service_find(NULL, "air"), -1);
    CHECK_INT(feed_config_list_find(NULL, "x"), -1);
    CHECK_INT(feed_config_reason_find(NULL, "x"), -1);
    CHECK(!feed_config_service_within(NULL, 0, 0));
    CHECK(!feed_config_list_applies_in(NULL, 0, "CN"));
    CHECK_STR(feed_stale_policy_name((enum feed_stale_policy)99), "unknown");
}

static void
test_example(void)
{
    const char *src = getenv("POSGATE_TEST_SRC");
    char path[1024];
    struct buf raw = BUF_INIT(FEED_CONFIG_MAX_BYTES);
    struct feed_config *cfg = NULL;
    char msg[FEED_ERRMSG_MIN];
    int air, air_first, rail, hsr, hsr_first, hotel, star, spc, debtor;

    if (src != NULL) {
        snprintf(path, sizeof(path), "%s/../tools/examples/feed.json", src);
    } else {
        /* Run outside ctest: find the source tree from this file's path. */
        const char *f = __FILE__;
        const char *cut = strstr(f, "tests/unit/sync/feed/feed_config.c");

        snprintf(path, sizeof(path), "%.*stools/examples/feed.json",
                 (int)(cut != NULL ? cut - f : 0), f);
    }
    CHECK_OK(plat_read_file(path, &raw));
    CHECK_OK(feed_config_parse(raw.data, raw.len, FEED_CONFIG_STRICT, &cfg, msg, sizeof(msg)));
    if (cfg == NULL) {
        fprintf(stderr, "example feed.json: %s\n", msg);
        buf_free(&raw);
        return;
    }
    CHECK_STR(cfg->feed_id, "cn-transport-demo");
    CHECK_INT(cfg->n_services, 7);
    CHECK_INT(cfg->n_lists, 3);
    CHECK_INT(cfg->n_reasons, 4);
    air = feed_config_service_find(cfg, "air");
    air_first = feed_config_service_find(cfg, "air.first");
    rail = feed_config_service_find(cfg, "rail");
    hsr = feed_config_service_find(cfg, "rail.hsr");
    hsr_first = feed_config_service_find(cfg, "rail.hsr.first");
    hotel = feed_config_service_find(cfg, "hotel");
    star = feed_config_service_find(cfg, "hotel.star");
    CHECK_INT(air, 0);
    CHECK_INT(air_first, 1);
    CHECK_INT(rail, 2);
    CHECK_INT(hsr, 3);
    CHECK_INT(hsr_first, 4);
    CHECK_INT(hotel, 5);
    CHECK_INT(star, 6);
    CHECK_INT(feed_config_service_find(cfg, "rail.hs"), -1);
    CHECK_INT(feed_config_service_find(cfg, "rail.hsr.firstx"), -1);
    CHECK_INT(feed_config_service_find(cfg, ""), -1);
    CHECK_INT(feed_config_service_find_n(cfg, "rail.hsr.first", 8), hsr);
    CHECK_INT(cfg->services[hsr_first].parent, hsr);
    CHECK_INT(cfg->services[hsr].parent, rail);
    CHECK_INT(cfg->services[rail].parent, FEED_NONE);
    CHECK_INT(cfg->services[hsr_first].depth, 3);
    /* Prefix match both ways. */
    CHECK(feed_config_service_within(cfg, (unsigned)hsr_first, (unsigned)hsr));
    CHECK(feed_config_service_within(cfg, (unsigned)hsr_first, (unsigned)rail));
    CHECK(feed_config_service_within(cfg, (unsigned)hsr, (unsigned)hsr));
    CHECK(!feed_config_service_within(cfg, (unsigned)rail, (unsigned)hsr));
    CHECK(!feed_config_service_within(cfg, (unsigned)air_first, (unsigned)rail));
    CHECK(!feed_config_service_within(cfg, (unsigned)star, (unsigned)air));
    CHECK(!feed_config_service_within(cfg, 99, 0));
    spc = feed_config_list_find(cfg, "spc-enforcement");
    CHECK_INT(spc, 0);
    CHECK_INT(feed_config_list_find(cfg, "no-fly"), 1);
    CHECK_INT(feed_config_list_find(cfg, "hotel-ban"), 2);
    CHECK_INT(feed_config_list_find(cfg, "nope"), -1);
    CHECK_INT(cfg->lists[spc].stale_after_s, 7 * 86400);
    CHECK_STR(cfg->lists[spc].stale_after, "7d");
    CHECK_INT(cfg->lists[spc].stale_policy, FEED_STALE_REFER);
    CHECK_INT(cfg->lists[1].stale_policy, FEED_STALE_DENY);
    CHECK_INT(cfg->lists[2].stale_policy, FEED_STALE_ALLOW);
    CHECK(feed_config_list_applies_in(cfg, (unsigned)spc, "CN"));
    CHECK(feed_config_list_applies_in(cfg, (unsigned)spc, "cn"));
    CHECK(!feed_config_list_applies_in(cfg, (unsigned)spc, "HK"));
    CHECK(feed_config_list_applies_in(cfg, 2, "HK")); /* empty = everywhere */
    debtor = feed_config_reason_find(cfg, "dishonest-debtor");
    CHECK_INT(debtor, 0);
    CHECK_INT(feed_config_reason_find(cfg, "hotel-conduct"), 3);
    CHECK_INT(cfg->reasons[debtor].minors, FEED_MINORS_REFER);
    CHECK_INT(cfg->reasons[1].override, FEED_OVERRIDE_SUPERVISOR);
    CHECK_CONTAINS(cfg->reasons[debtor].contest, "12368");
    CHECK(feed_config_service_within_any(cfg, (unsigned)hsr_first, cfg->reasons[debtor].scope,
                                         cfg->reasons[debtor].n_scope));
    CHECK(!feed_config_service_within_any(cfg, (unsigned)hsr, cfg->reasons[debtor].scope,
                                          cfg->reasons[debtor].n_scope));
    feed_config_free(cfg);
    buf_free(&raw);
}

static void
test_defaults_and_unknown_keys(void)
{
    struct feed_config *cfg = NULL;
    char msg[FEED_ERRMSG_MIN];
    const char *json = "{\"feed_id\":\"f\",\"services\":[\"air\"],\"x-new\":1,"
                       "\"lists\":[{\"id\":\"l\",\"authority\":\"A\",\"stale_after\":\"90m\","
                       "\"later\":true}],"
                       "\"reasons\":[{\"id\":\"r\",\"authority\":\"A\",\"legal_basis\":\"B\","
                       "\"contest\":\"C\",\"scope\":[\"air\"]}]}";

    /* Tolerant: unknown keys ignored, defaults applied. */
    CHECK_OK(parse(json, 0, &cfg, msg, sizeof(msg)));
    if (cfg != NULL) {
        CHECK_INT(cfg->lists[0].n_jurisdictions, 0);
        CHECK_INT(cfg->lists[0].stale_policy, FEED_STALE_REFER);
        CHECK_INT(cfg->lists[0].stale_after_s, 5400);
        CHECK_INT(cfg->reasons[0].override, FEED_OVERRIDE_NONE);
        CHECK_INT(cfg->reasons[0].minors, FEED_MINORS_DENY);
    }
    feed_config_free(cfg);
    /* Strict: refused, naming the key. */
    expect_fail(json, FEED_CONFIG_STRICT, POSGATE_ERR_INVALID, "unknown key \"x-new\"", NULL);
}

static void
test_refusals(void)
{
    char json[2048];

#define DOC(services, lists, reasons)                                                              \
    snprintf(json, sizeof(json), "{\"feed_id\":\"f\",%s,\"lists\":[%s],\"reasons\":[%s]}",         \
             services, lists, reasons)

    DOC(BASE_SERVICES, BASE_LIST, BASE_REASON);
    {
        struct feed_config *cfg = NULL;

        CHECK_OK(parse(json, FEED_CONFIG_STRICT, &cfg, NULL, 0));
        feed_config_free(cfg);
    }
    /* Missing parent in the taxonomy. */
    DOC("\"services\":[\"rail\",\"rail.hsr.first\"]", BASE_LIST, "");
    expect_fail(json, 0, POSGATE_ERR_INVALID, "services[1]", "parent \"rail.hsr\"");
    DOC("\"services\":[\"rail.hsr\",\"rail\"]", BASE_LIST, ""); /* parent after child: fine */
    {
        struct feed_config *cfg = NULL;

        CHECK_OK(parse(json, 0, &cfg, NULL, 0));
        CHECK(cfg != NULL && cfg->services[0].parent == 1);
        feed_config_free(cfg);
    }
    DOC("\"services\":[\"air\",\"air\"]", BASE_LIST, "");
    expect_fail(json, 0, POSGATE_ERR_INVALID, "\"air\" is listed twice", NULL);
    DOC("\"services\":[\"Air\"]", BASE_LIST, "");
    expect_fail(json, 0, POSGATE_ERR_INVALID, "services[0]", "found \"Air\"");
    DOC("\"services\":[\"rail..hsr\"]", BASE_LIST, "");
    expect_fail(json, 0, POSGATE_ERR_INVALID, "services[0]", NULL);
    DOC("\"services\":[\"a.b.c.d.e.f.g.h.i\"]", BASE_LIST, "");
    expect_fail(json, 0, POSGATE_ERR_INVALID, "at most 8 labels", NULL);
    DOC("\"services\":[]", BASE_LIST, "");
    expect_fail(json, 0, POSGATE_ERR_INVALID, "services", "empty");
    DOC("\"services\":\"air\"", BASE_LIST, "");
    expect_fail(json, 0, POSGATE_ERR_INVALID, "services: expected an array", "a string");
    /* Lists. */
    DOC(BASE_SERVICES,
        "{\"id\":\"spc\",\"authority\":\"SPC\",\"stale_after\":\"7d\","
        "\"stale_policy\":\"sometimes\"}",
        "");
    expect_fail(json, 0, POSGATE_ERR_INVALID, "lists[0].stale_policy", "found \"sometimes\"");
    DOC(BASE_SERVICES, "{\"id\":\"spc\",\"authority\":\"SPC\",\"stale_after\":\"7 days\"}", "");
    expect_fail(json, 0, POSGATE_ERR_INVALID, "lists[0].stale_after", "\"7 days\"");
    DOC(BASE_SERVICES, "{\"id\":\"spc\",\"authority\":\"SPC\",\"stale_after\":\"0h\"}", "");
    expect_fail(json, 0, POSGATE_ERR_INVALID, "lists[0].stale_after", NULL);
    DOC(BASE_SERVICES, "{\"id\":\"SPC\",\"authority\":\"SPC\",\"stale_after\":\"7d\"}", "");
    expect_fail(json, 0, POSGATE_ERR_INVALID, "lists[0].id", "[a-z0-9_-]");
    DOC(BASE_SERVICES,
        "{\"id\":\"abcdefghijabcdefghijabcdefghijabc\",\"authority\":\"S\",\"stale_after\":\"7d\"}",
        "");
    expect_fail(json, 0, POSGATE_ERR_INVALID, "lists[0].id", "1 to 32");
    DOC(BASE_SERVICES, "{\"id\":\"spc\",\"stale_after\":\"7d\"}", "");
    expect_fail(json, 0, POSGATE_ERR_INVALID, "lists[0].authority", "found nothing");
    DOC(BASE_SERVICES,
        "{\"id\":\"spc\",\"authority\":\"S\",\"jurisdictions\":[\"China\"],\"stale_after\":"
        "\"7d\"}",
        "");
    expect_fail(json, 0, POSGATE_ERR_INVALID, "lists[0].jurisdictions[0]", "\"China\"");
    DOC(BASE_SERVICES,
        "{\"id\":\"spc\",\"authority\":\"S\",\"jurisdictions\":[\"cn\"],\"stale_after\":\"7d\"}",
        "");
    expect_fail(json, 0, POSGATE_ERR_INVALID, "upper case", NULL);
    DOC(BASE_SERVICES, BASE_LIST "," BASE_LIST, "");
    expect_fail(json, 0, POSGATE_ERR_INVALID, "lists[1].id", "used twice");
    DOC(BASE_SERVICES, "{\"id\":\"spc\",\"authority\":\"bad\\u0001ctl\",\"stale_after\":\"7d\"}",
        "");
    expect_fail(json, 0, POSGATE_ERR_INVALID, "lists[0].authority", "control");
    /* Reasons. */
    DOC(BASE_SERVICES, BASE_LIST,
        "{\"id\":\"r\",\"authority\":\"A\",\"legal_basis\":\"B\",\"contest\":\"C\","
        "\"scope\":[\"rail.maglev\"]}");
    expect_fail(json, 0, POSGATE_ERR_INVALID, "reasons[0].scope[0]", "\"rail.maglev\"");
    DOC(BASE_SERVICES, BASE_LIST,
        "{\"id\":\"r\",\"authority\":\"A\",\"legal_basis\":\"B\",\"contest\":\"C\","
        "\"scope\":[]}");
    expect_fail(json, 0, POSGATE_ERR_INVALID, "reasons[0].scope", "empty");
    DOC(BASE_SERVICES, BASE_LIST,
        "{\"id\":\"r\",\"authority\":\"A\",\"legal_basis\":\"B\",\"contest\":\"C\","
        "\"scope\":[\"air\"],\"override\":\"always\"}");
    expect_fail(json, 0, POSGATE_ERR_INVALID, "reasons[0].override", "\"always\"");
    DOC(BASE_SERVICES, BASE_LIST,
        "{\"id\":\"r\",\"authority\":\"A\",\"legal_basis\":\"B\",\"contest\":\"C\","
        "\"scope\":[\"air\"],\"minors\":\"allow\"}");
    expect_fail(json, 0, POSGATE_ERR_INVALID, "reasons[0].minors", "\"allow\"");
    DOC(BASE_SERVICES, BASE_LIST,
        "{\"id\":\"r\",\"authority\":\"A\",\"legal_basis\":\"B\",\"scope\":[\"air\"]}");
    expect_fail(json, 0, POSGATE_ERR_INVALID, "reasons[0].contest", NULL);
    DOC(BASE_SERVICES, BASE_LIST, BASE_REASON "," BASE_REASON);
    expect_fail(json, 0, POSGATE_ERR_INVALID, "reasons[1].id", "used twice");
    DOC(BASE_SERVICES, BASE_LIST, "[]");
    expect_fail(json, 0, POSGATE_ERR_INVALID, "reasons[0]", "an object");
    /* Top level. */
    expect_fail("[]", 0, POSGATE_ERR_INVALID, "expected an object", NULL);
    expect_fail("{\"services\":[\"air\"],\"lists\":[],\"reasons\":[]}", 0, POSGATE_ERR_INVALID,
                "feed_id", NULL);
    expect_fail("{\"feed_id\":\"a b\",\"services\":[\"air\"],\"lists\":[],\"reasons\":[]}", 0,
                POSGATE_ERR_INVALID, "feed_id", "0x20");
#undef DOC
}

static void
test_caps(void)
{
    struct buf b = BUF_INIT(1u << 20);
    struct feed_config *cfg = NULL;
    char msg[FEED_ERRMSG_MIN];

    /* One service past the cap. */
    CHECK_OK(buf_append_str(&b, "{\"feed_id\":\"f\",\"services\":["));
    for (int i = 0; i <= FEED_SERVICES_MAX; i++) {
        CHECK_OK(buf_printf(&b, "%s\"s%d\"", i ? "," : "", i));
    }
    CHECK_OK(buf_append_str(&b, "],\"lists\":[],\"reasons\":[]}"));
    CHECK_ERR(feed_config_parse(b.data, b.len, 0, &cfg, msg, sizeof(msg)), POSGATE_ERR_INVALID);
    CHECK_CONTAINS(msg, "at most 1024");
    /* Exactly the cap works, and lookups find every one. */
    buf_reset(&b);
    CHECK_OK(buf_append_str(&b, "{\"feed_id\":\"f\",\"services\":["));
    for (int i = 0; i < FEED_SERVICES_MAX; i++) {
        CHECK_OK(buf_printf(&b, "%s\"s%d\"", i ? "," : "", i));
    }
    CHECK_OK(buf_append_str(&b, "],\"lists\":[],\"reasons\":[]}"));
    CHECK_OK(feed_config_parse(b.data, b.len, 0, &cfg, msg, sizeof(msg)));
    if (cfg != NULL) {
        int ok = 1;

        for (int i = 0; i < FEED_SERVICES_MAX; i++) {
            char name[16];

            snprintf(name, sizeof(name), "s%d", i);
            ok &= feed_config_service_find(cfg, name) == i;
        }
        CHECK(ok);
    }
    feed_config_free(cfg);
    buf_free(&b);
}

static void
test_alloc_failures(void)
{
    const char *json = "{\"feed_id\":\"f\"," BASE_SERVICES ",\"lists\":[" BASE_LIST
                       "],\"reasons\":[" BASE_REASON "]}";
    int succeeded = 0;

    for (long n = 0; n < 200 && !succeeded; n++) {
        struct feed_config *cfg = NULL;
        enum posgate_err err;

        plat_mem_fail_after(n);
        err = parse(json, 0, &cfg, NULL, 0);
        plat_mem_fail_after(-1);
        if (err == POSGATE_OK) {
            succeeded = 1;
            CHECK(cfg != NULL);
        } else {
            CHECK(err == POSGATE_ERR_NOMEM || err == POSGATE_ERR_PARSE);
            CHECK(cfg == NULL);
        }
        feed_config_free(cfg);
    }
    CHECK(succeeded);
}

/* list_key_check: optional for the parser (the kiosk refuses its absence, list_key.h), exactly
 * 16 lower-case hex digits when present, accepted in strict mode (the publisher's own state),
 * and equal to HMAC-SHA256(key, "posgate list key check v1") truncated to 8 bytes. */
static void
test_list_key_check(void)
{
    static const char *const bad[] = {"", "0123456789ABCDEF", "0123456789abcde",
                                      "0123456789abcdef0", "0123456789abcdeg"};
    struct feed_config *cfg = NULL;
    char msg[FEED_ERRMSG_MIN], json[1024], check[LIST_KEY_CHECK_HEX + 1];
    uint8_t key[32];

    snprintf(json, sizeof(json),
             "{\"feed_id\":\"f\",\"list_key_check\":\"0123456789abcdef\",%s,\"lists\":[%s],"
             "\"reasons\":[%s]}",
             BASE_SERVICES, BASE_LIST, BASE_REASON);
    CHECK_OK(parse(json, FEED_CONFIG_STRICT, &cfg, msg, sizeof(msg)));
    CHECK(cfg != NULL && strcmp(cfg->list_key_check, "0123456789abcdef") == 0);
    feed_config_free(cfg);
    cfg = NULL;
    snprintf(json, sizeof(json), "{\"feed_id\":\"f\",%s,\"lists\":[%s],\"reasons\":[%s]}",
             BASE_SERVICES, BASE_LIST, BASE_REASON);
    CHECK_OK(parse(json, FEED_CONFIG_STRICT, &cfg, msg, sizeof(msg)));
    CHECK(cfg != NULL && cfg->list_key_check[0] == 0);
    feed_config_free(cfg);
    cfg = NULL;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        snprintf(json, sizeof(json),
                 "{\"feed_id\":\"f\",\"list_key_check\":\"%s\",%s,\"lists\":[%s],"
                 "\"reasons\":[%s]}",
                 bad[i], BASE_SERVICES, BASE_LIST, BASE_REASON);
        expect_fail(json, 0, POSGATE_ERR_INVALID, "list_key_check", "expected");
    }
    snprintf(json, sizeof(json),
             "{\"feed_id\":\"f\",\"list_key_check\":42,%s,\"lists\":[%s],\"reasons\":[%s]}",
             BASE_SERVICES, BASE_LIST, BASE_REASON);
    expect_fail(json, 0, POSGATE_ERR_INVALID, "list_key_check", "found a number");

    /* the value itself: a known key gives a known, stable fingerprint (a publisher and a
     * kiosk built years apart must agree), and another key another one */
    for (size_t i = 0; i < sizeof(key); i++) {
        key[i] = (uint8_t)i;
    }
    CHECK_OK(list_key_check_raw(key, sizeof(key), check));
    CHECK(strlen(check) == LIST_KEY_CHECK_HEX);
    CHECK(strcmp(check, "dca444bc1a4f797f") == 0); /* python3 hmac, key bytes 0..31 */
    key[0] ^= 1;
    {
        char other[LIST_KEY_CHECK_HEX + 1], kmsg[512];

        CHECK_OK(list_key_check_raw(key, sizeof(key), other));
        CHECK(strcmp(check, other) != 0);
        CHECK_ERR(list_key_check_match(check, other, kmsg, sizeof(kmsg)), POSGATE_ERR_REJECTED);
        CHECK_CONTAINS(kmsg, check);
        CHECK_CONTAINS(kmsg, other);
        CHECK_ERR(list_key_check_match("", other, kmsg, sizeof(kmsg)), POSGATE_ERR_REJECTED);
        CHECK_CONTAINS(kmsg, "republish");
        CHECK_OK(list_key_check_match(other, other, kmsg, sizeof(kmsg)));
    }
}

/* lists[].timezone: a fixed UTC offset or "Z"; absent = UTC. */
static void
test_timezone(void)
{
    static const struct {
        const char *tz;
        int32_t off;
    } good[] = {{"Z", 0},
                {"+08:00", 8 * 3600},
                {"-05:30", -(5 * 3600 + 30 * 60)},
                {"+14:00", 14 * 3600},
                {"-00:00", 0}};
    static const char *const bad[] = {"+15:00", "+14:30", "08:00", "+8:00",        "+08:60",
                                      "+0800",  "UTC",    "",      "Asia/Shanghai"};
    struct feed_config *cfg = NULL;
    char msg[FEED_ERRMSG_MIN], json[1024];

    snprintf(json, sizeof(json), "{\"feed_id\":\"f\",%s,\"lists\":[%s],\"reasons\":[%s]}",
             BASE_SERVICES, BASE_LIST, BASE_REASON);
    CHECK_OK(parse(json, FEED_CONFIG_STRICT, &cfg, msg, sizeof(msg)));
    CHECK(cfg != NULL && cfg->lists[0].tz_offset_s == 0);
    feed_config_free(cfg);
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        cfg = NULL;
        snprintf(json, sizeof(json),
                 "{\"feed_id\":\"f\",%s,\"lists\":[{\"id\":\"l\",\"authority\":\"A\","
                 "\"stale_after\":\"7d\",\"timezone\":\"%s\"}],\"reasons\":[%s]}",
                 BASE_SERVICES, good[i].tz, BASE_REASON);
        CHECK_OK(parse(json, FEED_CONFIG_STRICT, &cfg, msg, sizeof(msg)));
        CHECK(cfg != NULL && cfg->lists[0].tz_offset_s == good[i].off);
        feed_config_free(cfg);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        snprintf(json, sizeof(json),
                 "{\"feed_id\":\"f\",%s,\"lists\":[{\"id\":\"l\",\"authority\":\"A\","
                 "\"stale_after\":\"7d\",\"timezone\":\"%s\"}],\"reasons\":[%s]}",
                 BASE_SERVICES, bad[i], BASE_REASON);
        expect_fail(json, 0, POSGATE_ERR_INVALID,
                    bad[i][0] != 0 ? "lists[0].timezone" : "lists[0].timezone: expected 1 to",
                    NULL);
    }
}

/* lists[].mass_change: the publisher's guard, {"percent": 1..100, "rows": 0..10^9}. */
static void
test_mass_change(void)
{
    static const struct {
        const char *mc;
        unsigned pct, rows;
    } good[] = {{"", FEED_MASS_PERCENT, FEED_MASS_ROWS},
                {",\"mass_change\":{}", FEED_MASS_PERCENT, FEED_MASS_ROWS},
                {",\"mass_change\":{\"percent\":25}", 25, FEED_MASS_ROWS},
                {",\"mass_change\":{\"rows\":0}", FEED_MASS_PERCENT, 0},
                {",\"mass_change\":{\"percent\":100,\"rows\":1000000000}", 100, 1000000000}};
    static const char *const bad[] = {
        ",\"mass_change\":{\"percent\":0}",  ",\"mass_change\":{\"percent\":101}",
        ",\"mass_change\":{\"percent\":2.5}", ",\"mass_change\":{\"rows\":-1}",
        ",\"mass_change\":{\"rows\":\"9\"}",  ",\"mass_change\":{\"share\":1}",
        ",\"mass_change\":10"};
    struct feed_config *cfg = NULL;
    char msg[FEED_ERRMSG_MIN], json[1024];

    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        cfg = NULL;
        snprintf(json, sizeof(json),
                 "{\"feed_id\":\"f\",%s,\"lists\":[{\"id\":\"l\",\"authority\":\"A\","
                 "\"stale_after\":\"7d\"%s}],\"reasons\":[%s]}",
                 BASE_SERVICES, good[i].mc, BASE_REASON);
        CHECK_OK(parse(json, FEED_CONFIG_STRICT, &cfg, msg, sizeof(msg)));
        CHECK(cfg != NULL && cfg->lists[0].mass_percent == good[i].pct &&
              cfg->lists[0].mass_min_rows == good[i].rows);
        feed_config_free(cfg);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        snprintf(json, sizeof(json),
                 "{\"feed_id\":\"f\",%s,\"lists\":[{\"id\":\"l\",\"authority\":\"A\","
                 "\"stale_after\":\"7d\"%s}],\"reasons\":[%s]}",
                 BASE_SERVICES, bad[i], BASE_REASON);
        expect_fail(json, FEED_CONFIG_STRICT, POSGATE_ERR_INVALID, "lists[0].mass_change", NULL);
    }
}

int
main(void)
{
    test_safety();
    test_example();
    test_defaults_and_unknown_keys();
    test_refusals();
    test_caps();
    test_alloc_failures();
    test_list_key_check();
    test_timezone();
    test_mass_change();
    return test_summary("feed_config");
}
