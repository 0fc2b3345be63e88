/* SPDX-License-Identifier: Apache-2.0 */
/* Tests of sync/crypto/json_canon.c: canonical encoding as TUF signs it, and the bounded parser. */
#include <cjson/cJSON.h>
#include <string.h>

#include "json_canon.h"
#include "test.h"

static const char *
canon(const char *json, struct buf *out)
{
    cJSON *v = NULL;
    char msg[128];

    buf_reset(out);
    if (json_parse_bounded(json, strlen(json), 1 << 20, &v, msg, sizeof(msg)) != POSGATE_OK) {
        return "PARSE-ERROR";
    }
    if (json_canon_encode(v, out) != POSGATE_OK) {
        cJSON_Delete(v);
        return "ENCODE-ERROR";
    }
    cJSON_Delete(v);
    return buf_cstr(out);
}

int
main(void)
{
    struct buf out = BUF_INIT(1 << 20), tiny = BUF_INIT(4);
    cJSON *v = NULL;
    char msg[128];
    int64_t i;

    /* safety */
    CHECK_ERR(json_parse_bounded(NULL, 0, 10, &v, msg, sizeof(msg)), POSGATE_ERR_INVALID);
    CHECK_ERR(json_parse_bounded("{}", 2, 1, &v, msg, sizeof(msg)), POSGATE_ERR_TOOBIG);
    CHECK_CONTAINS(msg, "exceeds the limit of 1 bytes");
    CHECK_ERR(json_parse_bounded("{} x", 4, 10, &v, msg, sizeof(msg)), POSGATE_ERR_PARSE);
    CHECK_CONTAINS(msg, "after the JSON value");
    CHECK_ERR(json_parse_bounded("{\"a\":1,\"a\":2}", 13, 100, &v, msg, sizeof(msg)),
              POSGATE_ERR_PARSE);
    CHECK_CONTAINS(msg, "key \"a\" twice");
    CHECK_ERR(json_parse_bounded("{\"a\"\0:1}", 8, 100, &v, msg, sizeof(msg)), POSGATE_ERR_PARSE);
    CHECK_ERR(json_parse_bounded("[1,", 3, 100, &v, msg, sizeof(msg)), POSGATE_ERR_PARSE);
    CHECK(v == NULL);
    {
        char deep[200];

        memset(deep, '[', 100);
        memset(deep + 100, ']', 100);
        CHECK_ERR(json_parse_bounded(deep, 200, 1000, &v, msg, sizeof(msg)), POSGATE_ERR_TOOBIG);
    }
    CHECK_ERR(json_canon_encode(NULL, &out), POSGATE_ERR_INVALID);

    /* canonical form: sorted keys by bytes, no whitespace, only " and \ escaped */
    CHECK_STR(canon("{ \"b\": 1, \"a\": [true, false, null], \"A\": \"x\" }", &out),
              "{\"A\":\"x\",\"a\":[true,false,null],\"b\":1}");
    CHECK_STR(canon("{\"s\": \"q\\\"b\\\\n\\n\"}", &out), "{\"s\":\"q\\\"b\\\\n\n\"}");
    CHECK_STR(canon("{\"\\u00e9\": \"\\u4e2d\", \"z\": -12}", &out),
              "{\"z\":-12,\"\xc3\xa9\":\"\xe4\xb8\xad\"}");
    CHECK_STR(canon("{\"n\": 1.5}", &out), "ENCODE-ERROR");
    CHECK_STR(canon("{\"n\": 1e300}", &out), "ENCODE-ERROR");
    CHECK_STR(canon("[9007199254740992]", &out), "[9007199254740992]");
    CHECK_STR(canon("{}", &out), "{}");
    CHECK_STR(canon("[0, -0, -9007199254740992, 10, -1]", &out),
              "[0,0,-9007199254740992,10,-1]");
    /* members in reverse order, and more of them than the sort keeps on its stack (32) */
    {
        struct buf in = BUF_INIT(4096), want = BUF_INIT(4096);

        for (int round = 0; round < 2; round++) {
            int n = round == 0 ? 9 : 40;

            buf_reset(&in);
            buf_reset(&want);
            CHECK_OK(buf_append_str(&in, "{"));
            CHECK_OK(buf_append_str(&want, "{"));
            for (int k = n - 1; k >= 0; k--) {
                CHECK_OK(buf_printf(&in, "%s\"k%02d\": %d", k == n - 1 ? "" : ", ", k, k));
            }
            for (int k = 0; k < n; k++) {
                CHECK_OK(buf_printf(&want, "%s\"k%02d\":%d", k == 0 ? "" : ",", k, k));
            }
            CHECK_OK(buf_append_str(&in, "}"));
            CHECK_OK(buf_append_str(&want, "}"));
            CHECK_STR(canon(buf_cstr(&in), &out), buf_cstr(&want));
            /* the same name twice among them */
            in.len--;
            CHECK_OK(buf_append_str(&in, ", \"k05\": 1}"));
            CHECK_ERR(json_parse_bounded(in.data, in.len, 4096, &v, msg, sizeof(msg)),
                      POSGATE_ERR_PARSE);
            CHECK_CONTAINS(msg, "key \"k05\" twice");
        }
        buf_free(&in);
        buf_free(&want);
    }
    CHECK_OK(json_parse_bounded("{\"k\":\"v\"}", 9, 100, &v, msg, sizeof(msg)));
    CHECK_ERR(json_canon_encode(v, &tiny), POSGATE_ERR_TOOBIG);
    cJSON_Delete(v);

    /* an arena: the same trees, past its end the allocator as usual (ASan and valgrind runs
     * see every allocation outside it freed), and the allocator as usual after it */
    {
        struct buf big = BUF_INIT(1 << 22);

        CHECK_OK(buf_append_str(&big, "["));
        for (int k = 0; k < 20000; k++) {
            CHECK_OK(buf_printf(&big, "%s{\"b\":\"x%d\",\"a\":%d}", k > 0 ? "," : "", k, k));
        }
        CHECK_OK(buf_append_str(&big, "]"));
        for (int round = 0; round < 3; round++) {
            if (round < 2) {
                json_arena_begin(round == 0 ? 4 * big.len : 1); /* 1: 64 KiB, soon full */
            }
            CHECK_OK(json_parse_bounded(big.data, big.len, big.len, &v, msg, sizeof(msg)));
            buf_reset(&out);
            CHECK_OK(json_canon_encode(v, &out));
            CHECK_CONTAINS(buf_cstr(&out), "{\"a\":19999,\"b\":\"x19999\"}]");
            CHECK_INT(out.len, big.len);
            cJSON_Delete(v);
            v = NULL;
            if (round < 2) {
                json_arena_end();
            }
        }
        buf_free(&big);
    }

    /* json_delete_wiped: inside an arena the freed strings stay readable, so what the delete
     * left there shows; cJSON_Delete leaves the identifiers, json_delete_wiped zeroes them */
    for (int wiped = 0; wiped < 2; wiped++) {
        const char *j = "{\"service\":\"rail.hsr\",\"ids\":[\"passport:DEU:C01X00T47\","
                        "\"cn_rid:11010519491231002X\"],\"n\":{\"name\":\"ZHANG San\"}}";
        const cJSON *ids, *name;
        const char *s0, *s1, *s2, *k2;
        int left = 0;

        json_arena_begin(1 << 16);
        CHECK_OK(json_parse_bounded(j, strlen(j), 1000, &v, msg, sizeof(msg)));
        ids = cJSON_GetObjectItemCaseSensitive(v, "ids");
        name = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(v, "n"), "name");
        CHECK(ids != NULL && name != NULL && cJSON_GetArraySize(ids) == 2);
        s0 = cJSON_GetArrayItem(ids, 0)->valuestring;
        s1 = cJSON_GetArrayItem(ids, 1)->valuestring;
        s2 = name->valuestring;
        k2 = name->string;
        if (wiped) {
            json_delete_wiped(v);
        } else {
            cJSON_Delete(v);
        }
        left += memcmp(s0, "passport:DEU:C01X00T47", 22) == 0;
        left += memcmp(s1, "cn_rid:11010519491231002X", 25) == 0;
        left += memcmp(s2, "ZHANG San", 9) == 0;
        left += memcmp(k2, "name", 4) == 0;
        CHECK_INT(left, wiped ? 0 : 4);
        if (wiped) {
            CHECK(s0[0] == 0 && s0[21] == 0 && s1[24] == 0 && s2[8] == 0 && k2[3] == 0);
        }
        json_arena_end();
        v = NULL;
    }
    json_delete_wiped(NULL);

    /* json_get_int */
    {
        const char *j = "{\"v\":7,\"f\":1.5,\"s\":\"7\",\"big\":1e20}";

        CHECK_OK(json_parse_bounded(j, strlen(j), 100, &v, msg, sizeof(msg)));
    }
    CHECK_OK(json_get_int(v, "v", 1, 10, &i));
    CHECK_INT(i, 7);
    CHECK_ERR(json_get_int(v, "v", 8, 10, &i), POSGATE_ERR_INVALID);
    CHECK_ERR(json_get_int(v, "f", 0, 10, &i), POSGATE_ERR_INVALID);
    CHECK_ERR(json_get_int(v, "s", 0, 10, &i), POSGATE_ERR_INVALID);
    CHECK_ERR(json_get_int(v, "big", 0, INT64_MAX, &i), POSGATE_ERR_INVALID);
    CHECK_ERR(json_get_int(v, "missing", 0, 10, &i), POSGATE_ERR_INVALID);
    cJSON_Delete(v);
    buf_free(&out);
    buf_free(&tiny);
    return test_summary("json_canon");
}
