/* SPDX-License-Identifier: Apache-2.0 */
/* Tests of platform/: errors, buffers, clocks and time text, atomic files, randomness, text. */
#define _POSIX_C_SOURCE 200809L
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "plat_clock.h"
#include "plat_file.h"
#include "plat_mem.h"
#include "plat_random.h"
#include "plat_text.h"
#include "posgate_err.h"
#include "test.h"

static void
test_errors(void)
{
    CHECK_STR(posgate_strerror(POSGATE_ERR_BADSIG), "signature verification failed");
    CHECK_STR(posgate_err_name(POSGATE_ERR_ROLLBACK), "ROLLBACK");
    CHECK_STR(posgate_strerror((enum posgate_err)9999), "unknown error");
    for (int i = 0; i < POSGATE_ERR__COUNT; i++) {
        CHECK(strlen(posgate_strerror((enum posgate_err)i)) > 0);
    }
}

static void
test_buf(void)
{
    struct buf b = BUF_INIT(8);

    CHECK_STR(buf_cstr(&b), "");
    CHECK_OK(buf_append_str(&b, "abcd"));
    CHECK_OK(buf_printf(&b, "%d", 1234));
    CHECK_STR(buf_cstr(&b), "abcd1234");
    CHECK_ERR(buf_append_str(&b, "x"), POSGATE_ERR_TOOBIG);
    CHECK_ERR(buf_printf(&b, "%s", "y"), POSGATE_ERR_TOOBIG);
    CHECK_INT(b.len, 8);
    buf_reset(&b);
    CHECK_INT(b.len, 0);
    plat_mem_fail_after(0);
    buf_free(&b);
    CHECK_ERR(buf_append_str(&b, "z"), POSGATE_ERR_NOMEM);
    plat_mem_fail_after(-1);
    buf_wipe(&b);

    /* storage full to its last byte (the NUL's): the next byte grows it, whatever max allows */
    {
        struct buf c = BUF_INIT(1000);
        char run[64];

        memset(run, 'a', sizeof(run));
        CHECK_OK(buf_append(&c, run, 63));
        CHECK(c.cap == 64);
        CHECK_OK(buf_append(&c, "b", 1));
        CHECK(c.cap > 64 && c.len == 64 && buf_cstr(&c)[63] == 'b' && buf_cstr(&c)[64] == 0);
        CHECK_OK(buf_append(&c, NULL, 0));
        CHECK_INT(c.len, 64);
        buf_free(&c);
    }
}

static void
test_str_copy(void)
{
    char d[5];

    memset(d, 'z', sizeof d);
    plat_str_copy(d, sizeof d, "abc");
    CHECK_STR(d, "abc");
    plat_str_copy(d, sizeof d, "abcdefgh"); /* cut to fit, terminated */
    CHECK_STR(d, "abcd");
    plat_str_copy(d, sizeof d, "");
    CHECK_STR(d, "");
    plat_str_copy(d, 1, "x");
    CHECK_STR(d, "");
    plat_msgf(d, sizeof d, "%s %d", "ab", 42); /* cut to fit, terminated */
    CHECK_STR(d, "ab 4");
    d[0] = 'q';
    plat_msgf(d, 0, "%s", "x"); /* no room: untouched */
    plat_msgf(NULL, 8, "%s", "x");
    CHECK(d[0] == 'q');
}

static void
test_time(void)
{
    int64_t t;
    char s[32];

    CHECK_OK(plat_time_parse("1970-01-01T00:00:00Z", &t));
    CHECK_INT(t, 0);
    CHECK_OK(plat_time_parse("2026-11-21", &t));
    CHECK_INT(t, 1795219200);
    CHECK_OK(plat_time_parse("2026-11-21T08:00:00+08:00", &t));
    CHECK_INT(t, 1795219200);
    CHECK_OK(plat_time_parse("2026-11-21T00:00:00.123Z", &t));
    CHECK_INT(t, 1795219200);
    CHECK_OK(plat_time_parse("2026-11-21T00:00:00", &t)); /* no offset: UTC */
    CHECK_INT(t, 1795219200);
    CHECK_ERR(plat_time_parse("2026-02-30", &t), POSGATE_ERR_INVALID);
    CHECK_ERR(plat_time_parse("2026-13-01", &t), POSGATE_ERR_INVALID);
    CHECK_ERR(plat_time_parse("2026-11-21T25:00:00Z", &t), POSGATE_ERR_INVALID);
    CHECK_ERR(plat_time_parse("2026-11-21Tjunk", &t), POSGATE_ERR_INVALID);
    CHECK_ERR(plat_time_parse("2026-11-21T00:00:00Zx", &t), POSGATE_ERR_INVALID);
    CHECK_ERR(plat_time_parse(NULL, &t), POSGATE_ERR_INVALID);
    plat_time_format(1795219200 + 3723, s, sizeof(s));
    CHECK_STR(s, "2026-11-21T01:02:03Z");
    plat_time_format(-1, s, sizeof(s));
    CHECK_STR(s, "1969-12-31T23:59:59Z");
    /* the same day again, the next, the one before, and back (the thread's last day is kept) */
    plat_time_format(0, s, sizeof(s));
    CHECK_STR(s, "1970-01-01T00:00:00Z");
    plat_time_format(86399, s, sizeof(s));
    CHECK_STR(s, "1970-01-01T23:59:59Z");
    plat_time_format(86400, s, sizeof(s));
    CHECK_STR(s, "1970-01-02T00:00:00Z");
    plat_time_format(-86400, s, sizeof(s));
    CHECK_STR(s, "1969-12-31T00:00:00Z");
    plat_time_format(1795219200 + 3723, s, sizeof(s));
    CHECK_STR(s, "2026-11-21T01:02:03Z");
    plat_time_format(1795219200 + 86399, s, sizeof(s));
    CHECK_STR(s, "2026-11-21T23:59:59Z");
    /* against gmtime_r over years 0 to 9999 (the digits are written by hand there) and past */
    {
        uint64_t x = 42;
        unsigned bad = 0;

        for (int i = 0; i < 50000; i++) {
            int64_t tt;
            struct tm tm;
            time_t tv;
            char want[64];

            x = x * 6364136223846793005ull + 1442695040888963407ull;
            tt =
                -62167219200 + (int64_t)((x >> 11) % (253402300800ull + 62167219200ull + 10000000));
            tv = (time_t)tt;
            gmtime_r(&tv, &tm);
            snprintf(want, sizeof(want), "%04d-%02d-%02dT%02d:%02d:%02dZ", tm.tm_year + 1900,
                     tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
            plat_time_format(tt, s, sizeof(s));
            bad += strcmp(s, want) != 0;
        }
        CHECK_INT(bad, 0);
    }
    CHECK_OK(plat_duration_parse("90m", &t));
    CHECK_INT(t, 5400);
    CHECK_OK(plat_duration_parse("7d", &t));
    CHECK_INT(t, 604800);
    CHECK_ERR(plat_duration_parse("7", &t), POSGATE_ERR_INVALID);
    CHECK_ERR(plat_duration_parse("h", &t), POSGATE_ERR_INVALID);
    CHECK_ERR(plat_duration_parse("99999999999999999999d", &t), POSGATE_ERR_INVALID);
    CHECK(plat_mono_ns() > 0);
    setenv("POSGATE_FAKE_NOW", "1000", 1);
#ifdef POSGATE_TEST_HOOKS
    CHECK_INT(plat_wall_s(), 1000);
#else
    CHECK(plat_wall_s() > 1700000000); /* a shippable build ignores the environment */
    CHECK(plat_wall_us() > 1700000000LL * 1000000);
#endif
    unsetenv("POSGATE_FAKE_NOW");
    CHECK(plat_wall_s() > 1700000000);
}

static void
test_files(void)
{
    char dir[] = "/tmp/posgate-plat-XXXXXX";
    char path[4096], sub[4300];
    struct buf b = BUF_INIT(1 << 20);
    struct buf small = BUF_INIT(3);
    struct stat st;
    struct plat_atomic_file f;
    uint64_t size;

    CHECK(mkdtemp(dir) != NULL);
    CHECK_OK(plat_path_join(path, sizeof(path), dir, "a.txt"));
    CHECK_ERR(plat_read_file(path, &b), POSGATE_ERR_NOTFOUND);
    CHECK_OK(plat_write_atomic(path, "hello", 5, 0600));
    CHECK_OK(plat_read_file(path, &b));
    CHECK_STR(buf_cstr(&b), "hello");
    CHECK(stat(path, &st) == 0 && (st.st_mode & 0777) == 0600);
    CHECK_OK(plat_file_size(path, &size));
    CHECK_INT(size, 5);
    CHECK_ERR(plat_read_file(path, &small), POSGATE_ERR_TOOBIG);
    /* An aborted replace leaves the old content and no temp file. */
    CHECK_OK(plat_atomic_open(&f, path, 0644));
    CHECK_OK(plat_atomic_write(&f, "partial", 7));
    CHECK(plat_exists(f.tmp_path));
    snprintf(sub, sizeof(sub), "%s", f.tmp_path);
    plat_atomic_abort(&f);
    CHECK(!plat_exists(sub));
    CHECK_OK(plat_read_file(path, &b));
    CHECK_STR(buf_cstr(&b), "hello");
    CHECK_OK(plat_write_atomic(path, "world!", 6, 0644));
    CHECK_OK(plat_read_file(path, &b));
    CHECK_STR(buf_cstr(&b), "world!");
    CHECK_OK(plat_path_join(sub, sizeof(sub), dir, "x/y/z"));
    CHECK_OK(plat_mkdir_p(sub, 0700));
    CHECK(plat_exists(sub));
    CHECK_ERR(plat_path_join(sub, 4, dir, "x"), POSGATE_ERR_TOOBIG);
    CHECK_OK(plat_unlink(path));
    CHECK_OK(plat_unlink(path));
    CHECK(!plat_exists(path));
    buf_free(&b);
    buf_free(&small);
}

static void
test_random(void)
{
    uint8_t a[32] = {0}, b[32] = {0};
    uint64_t v;

    CHECK_OK(plat_random(a, sizeof(a)));
    CHECK_OK(plat_random(b, sizeof(b)));
    CHECK(memcmp(a, b, sizeof(a)) != 0);
    for (int i = 0; i < 1000; i++) {
        CHECK_OK(plat_random_below(7, &v));
        if (v >= 7) {
            CHECK(v < 7);
            break;
        }
    }
    CHECK_OK(plat_random_below(0, &v));
    CHECK_INT(v, 0);
}

static void
test_text(void)
{
    static const struct {
        const char *s;
        size_t n;
        unsigned flags;
        int ok;
        size_t at;
    } cases[] = {
        {"desk 7", 6, 0, 1, 0},
        {"\xe5\x8c\x97\xe4\xba\xac", 6, 0, 1, 0},     /* CJK */
        {"\xf0\x9f\x98\x80", 4, 0, 1, 0},               /* U+1F600 */
        {"ab\0cd", 5, 0, 0, 2},                          /* NUL */
        {"a\x07", 2, 0, 0, 1},                           /* BEL */
        {"a\x7f", 2, 0, 0, 1},                           /* DEL */
        {"a\xc2\x85", 3, 0, 0, 1},                       /* C1 NEL */
        {"l1\nl2", 5, 0, 0, 2},                          /* newline refused ... */
        {"l1\nl2", 5, PLAT_TEXT_ALLOW_NEWLINE, 1, 0},    /* ... unless allowed */
        {"l1\rl2", 5, PLAT_TEXT_ALLOW_NEWLINE, 0, 2},    /* CR never */
        {"\xc0\xaf", 2, 0, 0, 0},                        /* overlong '/' */
        {"\xe0\x80\xaf", 3, 0, 0, 0},                    /* overlong, 3 bytes */
        {"\xed\xa0\x80", 3, 0, 0, 0},                    /* surrogate D800 */
        {"\xf4\x90\x80\x80", 4, 0, 0, 0},                /* past U+10FFFF */
        {"ab\xe5\x8c", 4, 0, 0, 2},                      /* truncated */
        {"\xff", 1, 0, 0, 0},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        size_t at = 99;
        const char *bad = plat_text_check(cases[i].s, cases[i].n, cases[i].flags, &at);

        CHECK_INT(bad == NULL, cases[i].ok);
        if (!cases[i].ok) {
            CHECK_INT(at, cases[i].at);
        }
    }
}

/* The bytes plat_url_escape keeps under flags, spelled out apart from its code. */
static int
url_kept(unsigned c, unsigned flags)
{
    static const char unreserved[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                                     "0123456789-._~";
    static const char path[] = "/!$&'()*+,;=:@";

    if (c != 0 && strchr(unreserved, (int)c) != NULL) {
        return 1;
    }
    if (c == '%') {
        return (flags & PLAT_URL_KEEP_PERCENT) != 0;
    }
    return (flags & PLAT_URL_KEEP_PATH) != 0 && c != 0 && strchr(path, (int)c) != NULL;
}

static void
test_url_escape(void)
{
    static const unsigned all_flags[] = {0, PLAT_URL_KEEP_PATH, PLAT_URL_KEEP_PERCENT,
                                         PLAT_URL_KEEP_PATH | PLAT_URL_KEEP_PERCENT};
    /* 66 unreserved bytes, 14 more of a path, '%' */
    static const size_t kept_count[] = {66, 80, 67, 81};
    unsigned char every[256];
    char out[3 * 256 + 1], want[3 * 256 + 1], small[8];
    size_t n = 99;

    /* empty: the result "" needs one byte, for its NUL; with none it is refused */
    CHECK_OK(plat_url_escape("", 0, 0, small, sizeof small, &n));
    CHECK_STR(small, "");
    CHECK_INT(n, 0);
    CHECK_OK(plat_url_escape(NULL, 0, 0, small, 1, &n));
    CHECK_STR(small, "");
    CHECK_ERR(plat_url_escape("", 0, 0, NULL, 0, &n), POSGATE_ERR_TOOBIG);
    CHECK_ERR(plat_url_escape("a", 1, 0, NULL, 4, NULL), POSGATE_ERR_INVALID);
    CHECK_ERR(plat_url_escape(NULL, 1, 0, small, sizeof small, NULL), POSGATE_ERR_INVALID);

    /* every byte 0..255, once per flag combination, against the list above */
    for (unsigned i = 0; i < 256; i++) {
        every[i] = (unsigned char)i;
    }
    for (size_t f = 0; f < sizeof(all_flags) / sizeof(all_flags[0]); f++) {
        size_t w = 0, kept = 0;

        for (unsigned i = 0; i < 256; i++) {
            if (url_kept(i, all_flags[f])) {
                want[w++] = (char)i;
                kept++;
            } else {
                w += (size_t)snprintf(want + w, sizeof(want) - w, "%%%02X", i);
            }
        }
        want[w] = 0;
        CHECK_OK(plat_url_escape(every, sizeof every, all_flags[f], out, sizeof out, &n));
        CHECK_INT(n, w);
        CHECK(memcmp(out, want, w + 1) == 0);
        CHECK_INT(kept, kept_count[f]);
        /* truncation refused: exactly w + 1 bytes fit, one less gives nothing */
        CHECK_OK(plat_url_escape(every, sizeof every, all_flags[f], out, w + 1, &n));
        CHECK_INT(n, w);
        memset(out, 'x', sizeof out);
        CHECK_ERR(plat_url_escape(every, sizeof every, all_flags[f], out, w, &n),
                  POSGATE_ERR_TOOBIG);
        CHECK_STR(out, "");
        CHECK_INT(n, 0);
    }
    CHECK_INT(strlen(want), 3 * 256 - 2 * 81); /* the last one: both flags */

    /* one byte short in the middle of an escape, and of a kept byte */
    CHECK_ERR(plat_url_escape("a/", 2, 0, small, 4, NULL), POSGATE_ERR_TOOBIG);
    CHECK_OK(plat_url_escape("a/", 2, 0, small, 5, NULL));
    CHECK_STR(small, "a%2F");
    CHECK_ERR(plat_url_escape("abc", 3, 0, small, 3, NULL), POSGATE_ERR_TOOBIG);
    CHECK_OK(plat_url_escape("abc", 3, 0, small, 4, NULL));
    CHECK_STR(small, "abc");

    /* '%' both ways: escaped as "%25", or kept when the input is escaped already */
    CHECK_OK(plat_url_escape("a%2Fb", 5, 0, out, sizeof out, &n));
    CHECK_STR(out, "a%252Fb");
    CHECK_INT(n, 7);
    CHECK_OK(plat_url_escape("a%2Fb", 5, PLAT_URL_KEEP_PERCENT, out, sizeof out, &n));
    CHECK_STR(out, "a%2Fb");
    CHECK_OK(plat_url_escape("lists/a%2Fb c", 13, PLAT_URL_KEEP_PATH | PLAT_URL_KEEP_PERCENT, out,
                             sizeof out, NULL));
    CHECK_STR(out, "lists/a%2Fb%20c");
    CHECK_OK(plat_url_escape("lists/a%2Fb c", 13, PLAT_URL_KEEP_PATH, out, sizeof out, NULL));
    CHECK_STR(out, "lists/a%252Fb%20c");

    /* a NUL inside the input is a byte like the others; the length, not the NUL, ends it */
    CHECK_OK(plat_url_escape("a\0b", 3, 0, out, sizeof out, &n));
    CHECK_STR(out, "a%00b");
    CHECK_OK(plat_url_escape("\xc3\xa9/x", 4, PLAT_URL_KEEP_PATH, out, sizeof out, NULL));
    CHECK_STR(out, "%C3%A9/x");
}

int
main(void)
{
    test_errors();
    test_buf();
    test_str_copy();
    test_time();
    test_files();
    test_random();
    test_text();
    test_url_escape();
    return test_summary("platform");
}
