/* SPDX-License-Identifier: Apache-2.0 */
/*
 * entries.csv: the tokenizer (quoted fields, doubled quotes, CRLF and LF, embedded newlines and
 * their line numbers, bounds, malformed quoting) and every row rule, each error checked for its
 * line number and for what it names, plus the keyed hash of a row equal to ident_entry_key.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "entries_csv.h"
#include "ident.h"
#include "plat_clock.h"
#include "posgate_err.h"
#include "test.h"

/* feed_config.h and feed_records.h both define FEED_SCOPE_MAX */
#undef FEED_SCOPE_MAX
#include "feed_config.h"

static const char config_json[] =
    "{\"feed_id\":\"t\",\"services\":[\"air\",\"air.first\",\"rail\",\"rail.hsr\","
    "\"rail.hsr.first\",\"hotel\"],"
    "\"lists\":[{\"id\":\"court\",\"authority\":\"C\",\"jurisdictions\":[\"CN\"],"
    "\"stale_after\":\"7d\",\"stale_policy\":\"refer\"},"
    "{\"id\":\"air-ban\",\"authority\":\"A\",\"stale_after\":\"2d\",\"stale_policy\":\"deny\"},"
    "{\"id\":\"east\",\"authority\":\"E\",\"stale_after\":\"2d\",\"timezone\":\"+08:00\"},"
    "{\"id\":\"west\",\"authority\":\"W\",\"stale_after\":\"2d\",\"timezone\":\"-05:30\"}],"
    "\"reasons\":[{\"id\":\"debt\",\"authority\":\"C\",\"legal_basis\":\"L\",\"contest\":\"X\","
    "\"scope\":[\"air\",\"rail.hsr\"]},"
    "{\"id\":\"unruly\",\"authority\":\"A\",\"legal_basis\":\"L\",\"contest\":\"X\","
    "\"scope\":[\"air\"]}]}";

#define HDR ENTRIES_CSV_HEADER "\n"

static struct feed_config *cfg;

/* Parses text; returns the error of the first failing row (or of open), OK when every row
 * passes; rows counts the rows read; msg receives the message. */
static enum posgate_err
parse_text(const char *text, size_t *rows, struct entries_row *last, char *msg, size_t cap)
{
    FILE *f = fmemopen((void *)text, strlen(text), "rb");
    struct entries_csv *r = NULL;
    struct entries_row row;
    enum posgate_err err;

    *rows = 0;
    msg[0] = '\0';
    if (f == NULL) {
        return POSGATE_ERR_IO;
    }
    err = entries_csv_open(f, "entries.csv", cfg, &r, msg, cap);
    if (err == POSGATE_OK) {
        while ((err = entries_csv_next(r, &row)) == POSGATE_OK) {
            (*rows)++;
            if (last != NULL) {
                *last = row;
            }
        }
        if (err == POSGATE_ERR_NOTFOUND) {
            err = POSGATE_OK;
        } else {
            snprintf(msg, cap, "%s", entries_csv_errmsg(r));
        }
    }
    entries_csv_free(r);
    fclose(f);
    return err;
}

static void
test_safety(void)
{
    struct entries_csv *r = NULL;
    struct csv_reader *c = NULL;
    char msg[ENTRIES_CSV_ERRMSG_MAX];
    size_t rows;

    CHECK_ERR(entries_csv_open(NULL, "x", cfg, &r, msg, sizeof msg), POSGATE_ERR_INVALID);
    CHECK_ERR(entries_csv_open(stdin, "x", NULL, &r, msg, sizeof msg), POSGATE_ERR_INVALID);
    CHECK_ERR(csv_reader_new(NULL, "x", 0, 0, &c), POSGATE_ERR_INVALID);
    CHECK_ERR(entries_csv_next(NULL, NULL), POSGATE_ERR_INVALID);
    CHECK_STR(entries_csv_errmsg(NULL), "");
    entries_csv_free(NULL);
    csv_reader_free(NULL);

    /* header rules */
    CHECK_ERR(parse_text("", &rows, NULL, msg, sizeof msg), POSGATE_ERR_INVALID);
    CHECK_CONTAINS(msg, "entries.csv line 1: the file is empty");
    CHECK_ERR(parse_text("list,listing_id\n", &rows, NULL, msg, sizeof msg), POSGATE_ERR_INVALID);
    CHECK_CONTAINS(msg, "header has 2 columns, expected 9");
    CHECK_ERR(parse_text("list,kind,listing_id,id_type,id_value,reason,valid_from,valid_until,"
                         "scope\n",
                         &rows, NULL, msg, sizeof msg),
              POSGATE_ERR_INVALID);
    CHECK_CONTAINS(msg, "header column 2 is \"kind\", expected \"listing_id\"");
    /* a byte order mark and CRLF are fine */
    CHECK_OK(parse_text("\xef\xbb\xbf" ENTRIES_CSV_HEADER "\r\n"
                        "court,C-1,restrict,cn_rid,11010519491231002X,debt,2020-01-01,,\r\n",
                        &rows, NULL, msg, sizeof msg));
    CHECK_INT(rows, 1);
}

static void
test_tokenizer(void)
{
    const char *text = "a,\"b,1\",\"say \"\"hi\"\"\"\r\n"
                       "\n"
                       "\"multi\nline\",,\n"
                       "last,x,\"\"";
    FILE *f = fmemopen((void *)text, strlen(text), "rb");
    struct csv_reader *r = NULL;
    size_t n;
    char *const *fv;
    const size_t *lv;

    CHECK_OK(csv_reader_new(f, "t.csv", 0, 0, &r));
    CHECK_OK(csv_reader_next(r, &n, &fv, &lv));
    CHECK_INT(n, 3);
    CHECK_STR(fv[0], "a");
    CHECK_STR(fv[1], "b,1");
    CHECK_STR(fv[2], "say \"hi\"");
    CHECK_INT(csv_reader_line(r), 1);
    CHECK_OK(csv_reader_next(r, &n, &fv, &lv));
    CHECK_INT(n, 3);
    CHECK_STR(fv[0], "multi\nline");
    CHECK_STR(fv[1], "");
    CHECK_STR(fv[2], "");
    CHECK_INT(csv_reader_line(r), 3); /* the empty line 2 was skipped */
    CHECK_OK(csv_reader_next(r, &n, &fv, &lv));
    CHECK_INT(n, 3);
    CHECK_STR(fv[0], "last");
    CHECK_STR(fv[2], "");
    CHECK_INT(csv_reader_line(r), 5);
    CHECK_ERR(csv_reader_next(r, &n, &fv, &lv), POSGATE_ERR_NOTFOUND);
    csv_reader_free(r);
    fclose(f);

    /* malformed quoting and bounds, each with its line */
    {
        struct {
            const char *text;
            enum posgate_err err;
            const char *needle;
        } bad[] = {
            {"ok\nab\"c\n", POSGATE_ERR_PARSE, "t.csv line 2: quote inside unquoted field 1"},
            {"\"ab\"c\n", POSGATE_ERR_PARSE, "line 1: 'c' after the closing quote of field 1"},
            {"x\n\"open\n\n", POSGATE_ERR_PARSE, "line 2: quoted field 1 is not closed"},
            {"a\rb\n", POSGATE_ERR_PARSE, "carriage return not followed by a line feed"},
            {"a,b\0c\n", POSGATE_ERR_PARSE, "NUL byte in field 2"},
            {"0123456789abcdefX\n", POSGATE_ERR_TOOBIG, "field 1 is longer than 16 bytes"},
        };
        for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
            size_t len = strlen(bad[i].text);

            if (i == 4) {
                len = 7;
            }
            f = fmemopen((void *)bad[i].text, len, "rb");
            CHECK_OK(csv_reader_new(f, "t.csv", 16, 64, &r));
            {
                enum posgate_err e;

                while ((e = csv_reader_next(r, &n, &fv, &lv)) == POSGATE_OK) {
                }
                CHECK_ERR(e, bad[i].err);
                CHECK_CONTAINS(csv_reader_errmsg(r), bad[i].needle);
                /* errors are sticky */
                CHECK_ERR(csv_reader_next(r, &n, &fv, &lv), POSGATE_ERR_STATE);
            }
            csv_reader_free(r);
            fclose(f);
        }
    }
    /* record bound */
    {
        const char *t =
            "aaaaaaaaaa,bbbbbbbbbb,cccccccccc,dddddddddd,eeeeeeeeee,ffffffffff,gggggggggg\n";

        f = fmemopen((void *)t, strlen(t), "rb");
        CHECK_OK(csv_reader_new(f, "t.csv", 16, 64, &r));
        CHECK_ERR(csv_reader_next(r, &n, &fv, &lv), POSGATE_ERR_TOOBIG);
        CHECK_CONTAINS(csv_reader_errmsg(r), "record is longer than 64 bytes");
        csv_reader_free(r);
        fclose(f);
    }
}

static void
test_rows(void)
{
    char msg[ENTRIES_CSV_ERRMSG_MAX];
    struct entries_row row;
    size_t rows;
    int64_t t;

    /* a full valid row with everything */
    CHECK_OK(parse_text(HDR "court,C-2024-001,restrict,cn_rid,11010519491231002x,debt,"
                            "2024-01-02,2030-01-01T12:00:00+02:00,rail.hsr; air.first\n",
                        &rows, &row, msg, sizeof msg));
    CHECK_INT(rows, 1);
    CHECK_INT(row.line, 2);
    CHECK_INT(row.list, 0);
    CHECK_STR(row.entry.listing_id, "C-2024-001");
    CHECK_INT(row.entry.kind, FEED_KIND_RESTRICT);
    CHECK_INT(row.entry.id_type, IDENT_CN_RID);
    CHECK_INT(row.entry.reason, 0);
    CHECK_OK(plat_time_parse("2024-01-02", &t));
    CHECK_INT(row.entry.valid_from, t);
    CHECK_OK(plat_time_parse("2030-01-01T10:00:00Z", &t));
    CHECK_INT(row.entry.valid_until, t);
    CHECK_INT(row.entry.scope_count, 2);
    CHECK_INT(row.entry.scope[0], feed_config_service_find(cfg, "air.first"));
    CHECK_INT(row.entry.scope[1], feed_config_service_find(cfg, "rail.hsr"));

    /* exempt, open-ended, empty scope, an mrz reduced to passport */
    CHECK_OK(parse_text(HDR "air-ban,A-1,exempt,mrz,"
                            "P<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<<<<<<<<<|"
                            "L898902C36UTO7408122F1204159ZE184226B<<<<<10,unruly,2020-01-01,,\n",
                        &rows, &row, msg, sizeof msg));
    CHECK_INT(rows, 1);
    CHECK_INT(row.list, 1);
    CHECK_INT(row.entry.kind, FEED_KIND_EXEMPT);
    CHECK_INT(row.entry.id_type, IDENT_PASSPORT);
    CHECK_INT(row.entry.valid_until, FEED_UNTIL_OPEN);
    CHECK_INT(row.entry.scope_count, 0);

    /* every rule, with its line number and what it names */
    {
        struct {
            const char *row;
            const char *needle;
        } bad[] = {
            {"nolist,C-1,restrict,cn_rid,11010519491231002X,debt,2020-01-01,,",
             "entries.csv line 3: unknown list \"nolist\"; expected one of \"court\", "
             "\"air-ban\""},
            {"court,C-1,restrict,cn_rid,11010519491231002X,x,2020-01-01,,",
             "entries.csv line 3: unknown reason \"x\"; expected one of \"debt\", \"unruly\""},
            {"court,C-1,ban,cn_rid,11010519491231002X,debt,2020-01-01,,",
             "line 3: kind \"ban\": expected \"restrict\" or \"exempt\""},
            {"court,C-1,restrict,cn_rid,110105194912310025,debt,2020-01-01,,",
             "line 3: id_value: cn_rid: check character"},
            {"court,C-1,restrict,dna,ACGT,debt,2020-01-01,,", "line 3: id_value:"},
            {"court,,restrict,cn_rid,11010519491231002X,debt,2020-01-01,,",
             "line 3: listing_id \"\": expected 1 to 64 printable"},
            {"court,C-1,restrict,cn_rid,11010519491231002X,debt,,,", "line 3: valid_from is empty"},
            {"court,C-1,restrict,cn_rid,11010519491231002X,debt,01/02/2020,,",
             "line 3: valid_from \"01/02/2020\" is not a date"},
            {"court,C-1,restrict,cn_rid,11010519491231002X,debt,2020-01-02,2020-01-01,",
             "line 3: valid_until 2020-01-01 is not later than valid_from 2020-01-02"},
            {"court,C-1,restrict,cn_rid,11010519491231002X,debt,2020-01-01T00:00:00Z,"
             "2020-01-01T00:00:00Z,",
             "line 3: valid_until 2020-01-01T00:00:00Z is not later than valid_from"},
            {"court,C-1,restrict,cn_rid,11010519491231002X,debt,2020-01-01,,boat",
             "line 3: scope: unknown service \"boat\""},
            {"court,C-1,restrict,cn_rid,11010519491231002X,debt,2020-01-01,,hotel",
             "line 3: scope: service \"hotel\" is outside the scope of reason \"debt\""},
            {"court,C-1,restrict,cn_rid,11010519491231002X,unruly,2020-01-01,,rail.hsr",
             "outside the scope of reason \"unruly\""},
            {"court,C-1,restrict,cn_rid,11010519491231002X,debt,2020-01-01,,air;",
             "line 3: scope ends with ';'"},
            {"court,C-1,restrict,cn_rid,11010519491231002X,debt,2020-01-01,",
             "line 3: 8 fields, expected 9"},
        };
        for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
            char text[1024];

            snprintf(text, sizeof text,
                     HDR "court,OK-1,restrict,cn_rid,11010519491231002X,debt,2020-01-01,,\n%s\n"
                         "court,OK-2,restrict,cn_rid,11010519491231002X,debt,2020-01-01,,\n",
                     bad[i].row);
            CHECK_ERR(parse_text(text, &rows, NULL, msg, sizeof msg), POSGATE_ERR_INVALID);
            CHECK_INT(rows, 1);
            CHECK_CONTAINS(msg, bad[i].needle);
        }
    }
    /* a line number after a quoted field with newlines counts physical lines */
    CHECK_ERR(parse_text(HDR "court,\"C\n-1\",restrict,cn_rid,11010519491231002X,debt,"
                             "2020-01-01,,\ncourt,C-2,restrict,cn_rid,1,debt,2020-01-01,,\n",
                         &rows, NULL, msg, sizeof msg),
              POSGATE_ERR_INVALID);
    CHECK_CONTAINS(msg, "listing_id"); /* a newline is not printable */
    CHECK_INT(rows, 0);
    CHECK_CONTAINS(msg, "line 2:");
    CHECK_ERR(parse_text(HDR
                         "court,\"C-1\",restrict,cn_rid,\"11010519491231002X\",debt,"
                         "2020-01-01,,\"\"\n\n\ncourt,C-2,restrict,cn_rid,1,debt,2020-01-01,,\n",
                         &rows, NULL, msg, sizeof msg),
              POSGATE_ERR_INVALID);
    CHECK_INT(rows, 1);
    CHECK_CONTAINS(msg, "entries.csv line 5: id_value");
}

/* One row's bounds: the instants the publisher writes for from and until on list. */
static void
bounds(const char *list, const char *from, const char *until, int64_t *f, int64_t *u)
{
    char text[512], msg[ENTRIES_CSV_ERRMSG_MAX];
    struct entries_row row;
    size_t rows = 0;

    snprintf(text, sizeof text, HDR "%s,C-1,restrict,cn_rid,11010519491231002X,debt,%s,%s,\n", list,
             from, until);
    memset(&row, 0, sizeof row);
    CHECK_OK(parse_text(text, &rows, &row, msg, sizeof msg));
    CHECK_INT(rows, 1);
    *f = row.entry.valid_from;
    *u = row.entry.valid_until;
}

static int64_t
instant(const char *rfc3339)
{
    int64_t t = 0;

    CHECK_OK(plat_time_parse(rfc3339, &t));
    return t;
}

/* A date-only bound is a whole day in the list's timezone (UTC by default): valid_from from the
 * start of the day, valid_until to the start of the next (inclusive); timestamps as given. */
static void
test_dates(void)
{
    int64_t f, u;

    /* UTC+8: the day of 2026-12-31 there ends at 16:00 UTC; 2026-01-01 starts the day before */
    bounds("east", "2026-01-01", "2026-12-31", &f, &u);
    CHECK_INT(f, instant("2025-12-31T16:00:00Z"));
    CHECK_INT(u, instant("2026-12-31T16:00:00Z"));
    /* UTC (no timezone): until 2026-12-31 includes that whole day */
    bounds("court", "2026-01-01", "2026-12-31", &f, &u);
    CHECK_INT(f, instant("2026-01-01T00:00:00Z"));
    CHECK_INT(u, instant("2027-01-01T00:00:00Z"));
    /* west of UTC, with minutes */
    bounds("west", "2026-03-01", "2026-03-01", &f, &u);
    CHECK_INT(f, instant("2026-03-01T05:30:00Z"));
    CHECK_INT(u, instant("2026-03-02T05:30:00Z")); /* a one-day listing */
    /* full timestamps are taken as given, whatever the list's zone */
    bounds("east", "2026-01-01T00:00:00Z", "2026-12-31T10:00:00+08:00", &f, &u);
    CHECK_INT(f, instant("2026-01-01T00:00:00Z"));
    CHECK_INT(u, instant("2026-12-31T02:00:00Z"));
    /* mixed: a date-only until in the zone after a timestamp from */
    bounds("east", "2026-12-31T15:00:00Z", "2026-12-31", &f, &u);
    CHECK_INT(u - f, 3600);
}

static void
test_key(void)
{
    struct crypto_hmac_key k;
    uint8_t raw[32];
    struct ident id;
    uint8_t want[IDENT_KEY_LEN];
    const char *text = HDR "court,C-1,restrict,cn_rid,11010519491231002x,debt,2020-01-01,,\n";
    FILE *f = fmemopen((void *)text, strlen(text), "rb");
    struct entries_csv *r = NULL;
    struct entries_row row;
    char msg[256];

    memset(raw, 7, sizeof raw);
    CHECK_OK(crypto_hmac_key_init(&k, raw, sizeof raw));
    CHECK_OK(ident_parse("cn_rid", "11010519491231002X", 18, &id, msg, sizeof msg));
    ident_entry_key(&k, &id, want);
    CHECK_OK(entries_csv_open(f, "e.csv", cfg, &r, msg, sizeof msg));
    entries_csv_set_key(r, &k);
    CHECK_OK(entries_csv_next(r, &row));
    CHECK(memcmp(row.entry.key, want, IDENT_KEY_LEN) == 0);
    CHECK_ERR(entries_csv_next(r, &row), POSGATE_ERR_NOTFOUND);
    entries_csv_free(r);
    fclose(f);
    crypto_hmac_key_cleanup(&k);
}

int
main(void)
{
    char msg[512];

    if (feed_config_parse(config_json, strlen(config_json), FEED_CONFIG_STRICT, &cfg, msg,
                          sizeof msg) != POSGATE_OK) {
        fprintf(stderr, "test config: %s\n", msg);
        return 1;
    }
    test_safety();
    test_tokenizer();
    test_rows();
    test_dates();
    test_key();
    feed_config_free(cfg);
    return test_summary("entries_csv");
}
