/* SPDX-License-Identifier: Apache-2.0 */
/* Wall and monotonic clocks, RFC 3339 and duration text. */
#define _POSIX_C_SOURCE 200809L
#include "plat_clock.h"
#include "plat_clock_hook.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int64_t
plat_wall_us(void)
{
    struct timespec ts;
    int64_t f;

    if (plat_clock_hook_now(&f)) {
        return f * 1000000;
    }
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t
plat_wall_s(void)
{
    struct timespec ts;
    int64_t f;

    if (plat_clock_hook_now(&f)) {
        return f;
    }
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec;
}

uint64_t
plat_mono_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

int64_t
plat_days_from_civil(int64_t y, unsigned m, unsigned d)
{
    /* Howard Hinnant's algorithm. */
    int64_t era, yoe, doy, doe;

    y -= m <= 2;
    era = (y >= 0 ? y : y - 399) / 400;
    yoe = y - era * 400;
    doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

void
plat_civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
    int64_t era, doe, yoe, doy, mp;

    z += 719468;
    era = (z >= 0 ? z : z - 146096) / 146097;
    doe = z - era * 146097;
    yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    *y = yoe + era * 400;
    doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    mp = (5 * doy + 2) / 153;
    *d = (unsigned)(doy - (153 * mp + 2) / 5 + 1);
    *m = (unsigned)(mp < 10 ? mp + 3 : mp - 9);
    *y += *m <= 2;
}

static int
digits(const char *s, int n, int *out)
{
    int v = 0;

    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return 0;
        }
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 1;
}

static int
days_in_month(int y, int m)
{
    static const int dm[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;

    return m == 2 && leap ? 29 : dm[m - 1];
}

enum posgate_err
plat_time_parse(const char *s, int64_t *out)
{
    int y, mo, d, h = 0, mi = 0, se = 0, oh = 0, om = 0, sign = 0;
    size_t n;
    const char *p;
    int64_t t;

    if (s == NULL || out == NULL) {
        return POSGATE_ERR_INVALID;
    }
    n = strlen(s);
    if (n < 10 || !digits(s, 4, &y) || s[4] != '-' || !digits(s + 5, 2, &mo) || s[7] != '-' ||
        !digits(s + 8, 2, &d)) {
        return POSGATE_ERR_INVALID;
    }
    if (mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo)) {
        return POSGATE_ERR_INVALID;
    }
    p = s + 10;
    if (*p != 0) {
        if ((*p != 'T' && *p != 't' && *p != ' ') || strlen(p) < 9 || !digits(p + 1, 2, &h) ||
            p[3] != ':' || !digits(p + 4, 2, &mi) || p[6] != ':' || !digits(p + 7, 2, &se)) {
            return POSGATE_ERR_INVALID;
        }
        if (h > 23 || mi > 59 || se > 60) {
            return POSGATE_ERR_INVALID;
        }
        p += 9;
        if (*p == '.') {
            p++;
            if (*p < '0' || *p > '9') {
                return POSGATE_ERR_INVALID;
            }
            while (*p >= '0' && *p <= '9') {
                p++;
            }
        }
        if (*p == 'Z' || *p == 'z') {
            p++;
        } else if (*p == '+' || *p == '-') {
            sign = *p == '-' ? -1 : 1;
            if (!digits(p + 1, 2, &oh) || p[3] != ':' || !digits(p + 4, 2, &om) || oh > 23 ||
                om > 59) {
                return POSGATE_ERR_INVALID;
            }
            p += 6;
        } else {
            /* no offset: UTC, as the feed format documents */
        }
        if (*p != 0) {
            return POSGATE_ERR_INVALID;
        }
    }
    if (se == 60) {
        se = 59;
    }
    t = plat_days_from_civil(y, (unsigned)mo, (unsigned)d) * 86400 + h * 3600 + mi * 60 + se;
    t -= (int64_t)sign * (oh * 3600 + om * 60);
    *out = t;
    return POSGATE_OK;
}

/* The last day plat_time_format turned into a date on this thread: a check formats today's time
 * once or twice, and the day's date is worked out once a day, not on every check. */
static _Thread_local struct {
    int64_t days, y;
    unsigned m, d;
    bool set;
} last_day;

void
plat_time_format(int64_t t, char *out, size_t cap)
{
    int64_t days = t >= 0 ? t / 86400 : -((-t + 86399) / 86400);
    int64_t rem = t - days * 86400;
    int64_t y;
    unsigned m, d;

    if (last_day.set && last_day.days == days) {
        y = last_day.y;
        m = last_day.m;
        d = last_day.d;
    } else {
        plat_civil_from_days(days, &y, &m, &d);
        last_day.days = days;
        last_day.y = y;
        last_day.m = m;
        last_day.d = d;
        last_day.set = true;
    }
    if (y >= 0 && y <= 9999 && cap >= 21) {
        /* every check formats a time or two: digits by hand, not through printf */
        unsigned v[6] = {
            (unsigned)y,         m, d, (unsigned)(rem / 3600), (unsigned)(rem % 3600 / 60),
            (unsigned)(rem % 60)};
        static const char sep[6] = {'-', '-', 'T', ':', ':', 'Z'};
        char *p = out;

        for (int i = 0; i < 6; i++) {
            if (i == 0) {
                *p++ = (char)('0' + v[0] / 1000);
                *p++ = (char)('0' + v[0] / 100 % 10);
            }
            *p++ = (char)('0' + v[i] / 10 % 10);
            *p++ = (char)('0' + v[i] % 10);
            *p++ = sep[i];
        }
        *p = 0;
        return;
    }
    snprintf(out, cap, "%04lld-%02u-%02uT%02d:%02d:%02dZ", (long long)y, m, d, (int)(rem / 3600),
             (int)(rem % 3600 / 60), (int)(rem % 60));
}

enum posgate_err
plat_duration_parse(const char *s, int64_t *out)
{
    int64_t v = 0, mul;
    const char *p = s;

    if (s == NULL || *s < '0' || *s > '9') {
        return POSGATE_ERR_INVALID;
    }
    while (*p >= '0' && *p <= '9') {
        if (v > (INT64_MAX / 10) - 10) {
            return POSGATE_ERR_INVALID;
        }
        v = v * 10 + (*p - '0');
        p++;
    }
    switch (*p) {
    case 's':
        mul = 1;
        break;
    case 'm':
        mul = 60;
        break;
    case 'h':
        mul = 3600;
        break;
    case 'd':
        mul = 86400;
        break;
    default:
        return POSGATE_ERR_INVALID;
    }
    if (p[1] != 0 || v > INT64_MAX / mul) {
        return POSGATE_ERR_INVALID;
    }
    *out = v * mul;
    return POSGATE_OK;
}
