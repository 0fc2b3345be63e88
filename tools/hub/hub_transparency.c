/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The transparency report (hub_transparency.h): a month's decisions counted per service and per
 * list and service from the events, the contests looked up from the lookups table, the
 * propagation of the month's feed versions from hub_fleet_propagation, and the three ways it is
 * written (text, JSON, HTML), with the `posgate-hub report` command.
 */
#include "hub_transparency.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "hub_fleet.h"
#include "hub_store.h"
#include "hub_text.h"
#include "json_canon.h"
#include "plat_clock.h"
#include "plat_file.h"
#include "plat_mem.h"

#define CELLS_MAX 4096 /* distinct rows; past it, new services and lists count as "(other)" */
#define OTHER     "(other)"
#define NONE      "-" /* a decision without a service, as the dashboard shows it */

enum fig { F_CHECKS, F_ALLOW, F_DENY, F_REFER, F_ERROR, F_OVERRIDES, F_REFUSED, F_LOOKUPS, N_FIG };
static const char *const fig_names[N_FIG] = {
    "checks", "allow", "deny", "refer", "error", "overrides", "overrides_refused", "lookups",
};
/* The figures of a list row: what a decision citing the list did. */
static const enum fig list_figs[] = {F_DENY, F_REFER, F_OVERRIDES, F_REFUSED, F_LOOKUPS};
#define N_LIST_FIGS (sizeof(list_figs) / sizeof(list_figs[0]))

/* A service's row (list NULL), or a list's row under one service. */
struct cell {
    char *list;
    char *service;
    uint64_t n[N_FIG];
};

struct report {
    char month[8];
    int64_t from, until;
    struct cell total;
    struct cell *c; /* sorted by list (services' rows first), then service */
    size_t n, cap;
    uint64_t unreadable; /* events whose kind or time cannot be read: in no month */
    struct hub_fleet_prop prop;
};

/* ---- the month ---- */

enum posgate_err
hub_transparency_month(const char *month, int64_t *from_s, int64_t *until_s)
{
    unsigned y, m;

    if (month == NULL || strlen(month) != 7 || month[4] != '-' ||
        strspn(month, "0123456789") != 4 || strspn(month + 5, "0123456789") != 2) {
        return POSGATE_ERR_INVALID;
    }
    y = (unsigned)(month[0] - '0') * 1000 + (unsigned)(month[1] - '0') * 100 +
        (unsigned)(month[2] - '0') * 10 + (unsigned)(month[3] - '0');
    m = (unsigned)(month[5] - '0') * 10 + (unsigned)(month[6] - '0');
    if (y < 1970 || m < 1 || m > 12) {
        return POSGATE_ERR_INVALID;
    }
    *from_s = plat_days_from_civil(y, m, 1) * 86400;
    *until_s = plat_days_from_civil(m == 12 ? y + 1 : y, m == 12 ? 1 : m + 1, 1) * 86400;
    return POSGATE_OK;
}

/* ---- counting ---- */

static int
cmp_key(const char *la, const char *sa, const char *lb, const char *sb)
{
    int c = la == NULL || lb == NULL ? (la != NULL) - (lb != NULL) : strcmp(la, lb);

    return c != 0 ? c : strcmp(sa, sb);
}

static void
add(uint64_t *x, uint64_t n)
{
    *x = n > UINT64_MAX - *x ? UINT64_MAX : *x + n; /* saturates, as stats' allow_folded */
}

/* The row of (list, service), made when new (CELLS_MAX past: "(other)"); NULL: out of memory. */
static struct cell *
cell_of(struct report *r, const char *list, const char *service)
{
    size_t lo = 0, hi = r->n;
    struct cell *c;
    char *ns, *nl;

    service = service != NULL && service[0] != 0 ? service : NONE;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int k = cmp_key(r->c[mid].list, r->c[mid].service, list, service);

        if (k == 0) {
            return &r->c[mid];
        }
        if (k < 0) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    if (r->n >= CELLS_MAX && strcmp(service, OTHER) != 0) {
        return cell_of(r, list != NULL ? OTHER : NULL, OTHER); /* made even past CELLS_MAX */
    }
    if (r->n == r->cap) {
        size_t nc = r->cap > 0 ? 2 * r->cap : 32;
        void *p = plat_realloc(r->c, nc * sizeof(*r->c));

        if (p == NULL) {
            return NULL;
        }
        r->c = p;
        r->cap = nc;
    }
    ns = plat_strdup(service);
    nl = list != NULL ? plat_strdup(list) : NULL;
    if (ns == NULL || (list != NULL && nl == NULL)) {
        plat_free(ns);
        plat_free(nl);
        return NULL;
    }
    memmove(&r->c[lo + 1], &r->c[lo], (r->n - lo) * sizeof(*r->c));
    c = &r->c[lo];
    memset(c, 0, sizeof(*c));
    c->service = ns;
    c->list = nl;
    r->n++;
    return c;
}

static const char *
str_at(const cJSON *o, const char *name)
{
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, name);

    return cJSON_IsString(x) ? x->valuestring : NULL;
}

static int64_t
time_at(const cJSON *o, const char *name)
{
    const char *s = str_at(o, name);
    int64_t t;

    return s != NULL && plat_time_parse(s, &t) == POSGATE_OK ? t : -1;
}

/* Figure f counted n times for service, and for each distinct list of lists (a cJSON array of
 * reasons, each with "list", or of list id strings). */
static enum posgate_err
count(struct report *r, enum fig f, uint64_t n, const char *service, const cJSON *lists)
{
    struct cell *c = cell_of(r, NULL, service);
    const cJSON *x, *y;

    if (c == NULL) {
        return POSGATE_ERR_NOMEM;
    }
    add(&c->n[f], n);
    add(&r->total.n[f], n);
    cJSON_ArrayForEach(x, lists)
    {
        const char *l = cJSON_IsString(x) ? x->valuestring : str_at(x, "list");
        bool seen = l == NULL || l[0] == 0;

        for (y = lists->child; y != x && !seen; y = y->next) { /* counted for an earlier one */
            const char *l2 = cJSON_IsString(y) ? y->valuestring : str_at(y, "list");

            seen = l2 != NULL && strcmp(l, l2) == 0;
        }
        if (seen ||
            (f != F_DENY && f != F_REFER && f != F_OVERRIDES && f != F_REFUSED && f != F_LOOKUPS)) {
            continue;
        }
        c = cell_of(r, l, service);
        if (c == NULL) {
            return POSGATE_ERR_NOMEM;
        }
        add(&c->n[f], n);
    }
    return POSGATE_OK;
}

static enum posgate_err
count_decision(struct report *r, const cJSON *ev)
{
    const char *svc = str_at(ev, "service"), *dec = str_at(ev, "decision");
    const cJSON *reasons = cJSON_GetObjectItemCaseSensitive(ev, "reasons");
    const cJSON *ovr = cJSON_GetObjectItemCaseSensitive(ev, "override");
    enum posgate_err err = count(r, F_CHECKS, 1, svc, NULL);
    enum fig f = F_ERROR;

    if (dec != NULL && strcmp(dec, "allow") == 0) {
        f = F_ALLOW;
    } else if (dec != NULL && strcmp(dec, "deny") == 0) {
        f = F_DENY;
    } else if (dec != NULL && strcmp(dec, "refer") == 0) {
        f = F_REFER;
    }
    if (err == POSGATE_OK) {
        err = count(r, f, 1, svc, reasons); /* lists for DENY and REFER only */
    }
    if (err == POSGATE_OK && cJSON_IsObject(ovr)) {
        f = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(ovr, "refused")) ? F_REFUSED
                                                                           : F_OVERRIDES;
        err = count(r, f, 1, svc, reasons);
    }
    return err;
}

/* A summary's count as an integer; ingest bounds it far below 2^64 (HUB_SUMMARY_*), but a
 * database written before that bound is read without a cast that overflows. */
static uint64_t
allows(double n)
{
    return n >= 18446744073709551615.0 ? UINT64_MAX : (uint64_t)n;
}

/* The ALLOWs of a summary under each service it counts. */
static enum posgate_err
count_summary(struct report *r, const cJSON *ev)
{
    const cJSON *sv, *other = cJSON_GetObjectItemCaseSensitive(ev, "services_other");
    enum posgate_err err = POSGATE_OK;

    cJSON_ArrayForEach(sv, cJSON_GetObjectItemCaseSensitive(ev, "services"))
    {
        if (err == POSGATE_OK && cJSON_IsNumber(sv) && sv->valuedouble > 0 && sv->string != NULL) {
            err = count(r, F_CHECKS, allows(sv->valuedouble), sv->string, NULL);
            if (err == POSGATE_OK) {
                err = count(r, F_ALLOW, allows(sv->valuedouble), sv->string, NULL);
            }
        }
    }
    if (err == POSGATE_OK && cJSON_IsNumber(other) && other->valuedouble > 0) {
        err = count(r, F_CHECKS, allows(other->valuedouble), OTHER, NULL);
        if (err == POSGATE_OK) {
            err = count(r, F_ALLOW, allows(other->valuedouble), OTHER, NULL);
        }
    }
    return err;
}

static enum posgate_err
event_row(void *ctx, const struct hub_row *row)
{
    struct report *r = ctx;
    cJSON *ev = row->t[1] != NULL ? cJSON_ParseWithLength(row->t[1], row->tlen[1]) : NULL;
    const char *kind = str_at(ev, "kind");
    bool summary = kind != NULL && strcmp(kind, "allow_summary") == 0;
    int64_t at = time_at(ev, summary ? "last_time" : "time");
    enum posgate_err err = POSGATE_OK;

    if (kind == NULL || (!summary && strcmp(kind, "decision") != 0) || at < 0) {
        r->unreadable++;
    } else if (at >= r->from && at < r->until) {
        err = summary ? count_summary(r, ev) : count_decision(r, ev);
    }
    cJSON_Delete(ev);
    return err;
}

/* lookups: t0 decision_id, t1 service, t2 lists (a JSON array); i0 looked_up_at */
static enum posgate_err
lookup_row(void *ctx, const struct hub_row *row)
{
    struct report *r = ctx;
    cJSON *lists;
    enum posgate_err err;

    if (row->i[0] < r->from || row->i[0] >= r->until) {
        return POSGATE_OK;
    }
    lists = row->t[2] != NULL ? cJSON_ParseWithLength(row->t[2], row->tlen[2]) : NULL;
    err = count(r, F_LOOKUPS, 1, row->t[1], cJSON_IsArray(lists) ? lists : NULL);
    cJSON_Delete(lists);
    return err;
}

static void
report_cleanup(struct report *r)
{
    for (size_t i = 0; i < r->n; i++) {
        plat_free(r->c[i].list);
        plat_free(r->c[i].service);
    }
    plat_free(r->c);
    hub_fleet_prop_cleanup(&r->prop);
}

static enum posgate_err
report_load(struct hub_db *db, const char *month, int64_t now_s, struct report *r)
{
    void *impl;
    const struct hub_store_ops *ops = hub_db_store(db, &impl);
    struct hub_fleet_opts o;
    enum posgate_err err;

    memset(r, 0, sizeof(*r));
    r->prop.median_s = -1;
    err = hub_transparency_month(month, &r->from, &r->until);
    if (err != POSGATE_OK) {
        return err;
    }
    memcpy(r->month, month, 8);
    json_init_hooks();
    err = ops->read_begin(impl); /* the events and the lookups in one snapshot */
    if (err == POSGATE_OK) {
        err = ops->events_since(impl, r->from, event_row, r);
        if (err == POSGATE_OK) {
            err = ops->each_row(impl, HUB_T_LOOKUPS, lookup_row, r);
        }
        ops->read_end(impl);
    }
    memset(&o, 0, sizeof(o));
    o.now_s = now_s;
    o.days = 1;
    if (err == POSGATE_OK) {
        err = hub_fleet_propagation(db, &o, r->from, r->until, &r->prop);
    }
    return err;
}

/* ---- writing it ---- */

/* A table of text cells, as the text and HTML reports print it; the first `left` columns are
 * names (left-aligned), the others figures. */
struct table {
    const char *title;
    const char *const *head;
    size_t cols, left, rows;
    char **cell; /* rows * cols, each owned */
};

static enum posgate_err
put(struct table *t, size_t row, size_t col, const char *fmt_s, uint64_t v)
{
    char num[24];
    const char *s = fmt_s;

    if (s == NULL) {
        snprintf(num, sizeof(num), "%" PRIu64, v);
        s = num;
    }
    t->cell[row * t->cols + col] = plat_strdup(s);
    return t->cell[row * t->cols + col] != NULL ? POSGATE_OK : POSGATE_ERR_NOMEM;
}

static void
table_free(struct table *t)
{
    for (size_t i = 0; t->cell != NULL && i < t->rows * t->cols; i++) {
        plat_free(t->cell[i]);
    }
    plat_free(t->cell);
    t->cell = NULL;
}

static void
fmt_time(int64_t t, char out[32])
{
    plat_time_format(t, out, 32);
}

/* The three tables: by service, by list and service, the month's feed versions. */
static enum posgate_err
tables(const struct report *r, struct table t[3])
{
    static const char *const h_svc[] = {"service", "checks",    "allow",   "deny",   "refer",
                                        "error",   "overrides", "refused", "lookups"};
    static const char *const h_list[] = {"list",      "service", "deny",   "refer",
                                         "overrides", "refused", "lookups"};
    static const char *const h_ver[] = {
        "feed version", "issued", "first installed", "devices", "p50_s", "p95_s", "max_s"};
    size_t ns = 0, nl = 0;
    enum posgate_err err = POSGATE_OK;

    for (size_t i = 0; i < r->n; i++) {
        ns += r->c[i].list == NULL ? 1 : 0;
    }
    nl = r->n - ns;
    t[0].title = "by service";
    t[1].title = "by list and service (a DENY, REFER, override or lookup counts once under every "
                 "list its decision cites)";
    t[2].title = "feed versions first installed this month";
    t[0].head = h_svc;
    t[1].head = h_list;
    t[2].head = h_ver;
    t[0].cols = sizeof(h_svc) / sizeof(h_svc[0]);
    t[1].cols = sizeof(h_list) / sizeof(h_list[0]);
    t[2].cols = sizeof(h_ver) / sizeof(h_ver[0]);
    t[0].left = 1;
    t[1].left = 2;
    t[2].left = 3;
    t[0].rows = ns;
    t[1].rows = nl;
    t[2].rows = r->prop.n;
    for (int k = 0; k < 3; k++) {
        t[k].cell = plat_calloc(t[k].rows * t[k].cols + 1, sizeof(char *));
        if (t[k].cell == NULL) {
            return POSGATE_ERR_NOMEM;
        }
    }
    for (size_t i = 0, s = 0, l = 0; err == POSGATE_OK && i < r->n; i++) {
        const struct cell *c = &r->c[i];

        if (c->list == NULL) {
            err = put(&t[0], s, 0, c->service, 0);
            for (size_t f = 0; err == POSGATE_OK && f < N_FIG; f++) {
                err = put(&t[0], s, f + 1, NULL, c->n[f]);
            }
            s++;
            continue;
        }
        err = put(&t[1], l, 0, c->list, 0);
        if (err == POSGATE_OK) {
            err = put(&t[1], l, 1, c->service, 0);
        }
        for (size_t f = 0; err == POSGATE_OK && f < N_LIST_FIGS; f++) {
            err = put(&t[1], l, f + 2, NULL, c->n[list_figs[f]]);
        }
        l++;
    }
    for (size_t i = 0; err == POSGATE_OK && i < r->prop.n; i++) {
        const struct hub_fleet_prop_version *v = &r->prop.v[i];
        char a[32], b[32];

        fmt_time(v->issued_s, a);
        fmt_time(v->first_install_s, b);
        err = put(&t[2], i, 0, NULL, (uint64_t)v->feed_version);
        if (err == POSGATE_OK) {
            err = put(&t[2], i, 1, a, 0);
        }
        if (err == POSGATE_OK) {
            err = put(&t[2], i, 2, b, 0);
        }
        if (err == POSGATE_OK) {
            err = put(&t[2], i, 3, NULL, v->devices);
        }
        if (err == POSGATE_OK) {
            err = put(&t[2], i, 4, NULL, (uint64_t)v->p50_s);
        }
        if (err == POSGATE_OK) {
            err = put(&t[2], i, 5, NULL, (uint64_t)v->p95_s);
        }
        if (err == POSGATE_OK) {
            err = put(&t[2], i, 6, NULL, (uint64_t)v->max_s);
        }
    }
    return err;
}

/* s with control bytes as '?': a kiosk's text on a terminal. */
static enum posgate_err
text_str(struct buf *b, const char *s, size_t width, bool left)
{
    size_t n = strlen(s);
    enum posgate_err err = POSGATE_OK;

    for (size_t i = 0; !left && err == POSGATE_OK && i + n < width; i++) {
        err = buf_append(b, " ", 1);
    }
    for (const unsigned char *p = (const unsigned char *)s; err == POSGATE_OK && *p != 0; p++) {
        err = buf_append(b, *p < 0x20 || *p == 0x7f ? "?" : (const char *)p, 1);
    }
    for (size_t i = 0; left && err == POSGATE_OK && i + n < width; i++) {
        err = buf_append(b, " ", 1);
    }
    return err;
}

static enum posgate_err
text_table(const struct table *t, struct buf *out)
{
    size_t w[16];
    enum posgate_err err = buf_printf(out, "\n%s\n", t->title);

    if (err == POSGATE_OK && t->rows == 0) {
        return buf_append_str(out, "  none\n");
    }
    for (size_t c = 0; c < t->cols; c++) {
        w[c] = strlen(t->head[c]);
        for (size_t r = 0; r < t->rows; r++) {
            size_t n = strlen(t->cell[r * t->cols + c]);

            w[c] = n > w[c] ? n : w[c];
        }
    }
    for (size_t r = 0; err == POSGATE_OK && r <= t->rows; r++) {
        for (size_t c = 0; err == POSGATE_OK && c < t->cols; c++) {
            err = buf_append_str(out, "  ");
            if (err == POSGATE_OK) {
                err = text_str(out, r == 0 ? t->head[c] : t->cell[(r - 1) * t->cols + c],
                               c + 1 == t->cols && c < t->left ? 0 : w[c], c < t->left);
            }
        }
        if (err == POSGATE_OK) {
            err = buf_append_str(out, "\n");
        }
    }
    return err;
}

static enum posgate_err
summary_text(const struct report *r, struct buf *out)
{
    const uint64_t *n = r->total.n;
    char from[32], until[32];
    enum posgate_err err;

    fmt_time(r->from, from);
    fmt_time(r->until, until);
    err = buf_printf(out,
                     "posgate transparency report, %s (UTC)\n"
                     "from %s to %s; decisions by their own time (the kiosk's clock), contests "
                     "by the collector's\n\n"
                     "checks %" PRIu64 ": allow %" PRIu64 ", deny %" PRIu64 ", refer %" PRIu64
                     ", error %" PRIu64 "\n"
                     "supervisor overrides %" PRIu64 " granted, %" PRIu64 " refused\n"
                     "contests looked up %" PRIu64 "\n",
                     r->month, from, until, n[F_CHECKS], n[F_ALLOW], n[F_DENY], n[F_REFER],
                     n[F_ERROR], n[F_OVERRIDES], n[F_REFUSED], n[F_LOOKUPS]);
    if (err == POSGATE_OK && r->prop.installs == 0) {
        err = buf_append_str(out, "delisting propagation: no feed version first installed "
                                  "this month\n");
    } else if (err == POSGATE_OK) {
        err = buf_printf(out,
                         "delisting propagation: median %" PRId64 " s over %zu installs of %zu "
                         "feed version(s) first installed this month\n",
                         r->prop.median_s, r->prop.installs, r->prop.n);
    }
    if (err == POSGATE_OK && r->unreadable > 0) {
        err = buf_printf(out, "%" PRIu64 " events unreadable (no kind or time): in no month\n",
                         r->unreadable);
    }
    return err;
}

/* ---- JSON ---- */

static enum posgate_err
json_figs(struct buf *out, const struct cell *c, const enum fig *figs, size_t n)
{
    enum posgate_err err = POSGATE_OK;

    for (size_t i = 0; err == POSGATE_OK && i < n; i++) {
        err = buf_printf(out, ",\"%s\":%" PRIu64, fig_names[figs[i]], c->n[figs[i]]);
    }
    return err;
}

static enum posgate_err
report_json(const struct report *r, struct buf *out)
{
    static const enum fig all[] = {F_CHECKS, F_ALLOW,     F_DENY,    F_REFER,
                                   F_ERROR,  F_OVERRIDES, F_REFUSED, F_LOOKUPS};
    char from[32], until[32];
    bool first = true;
    enum posgate_err err;

    fmt_time(r->from, from);
    fmt_time(r->until, until);
    err = buf_printf(out, "{\"month\":\"%s\",\"from\":\"%s\",\"until\":\"%s\",\"totals\":{",
                     r->month, from, until);
    for (size_t i = 0; err == POSGATE_OK && i < N_FIG; i++) {
        err = buf_printf(out, "%s\"%s\":%" PRIu64, i > 0 ? "," : "", fig_names[all[i]],
                         r->total.n[all[i]]);
    }
    if (err == POSGATE_OK) {
        err = buf_append_str(out, "},\"services\":[");
    }
    for (size_t i = 0; err == POSGATE_OK && i < r->n; i++) {
        if (r->c[i].list != NULL) {
            continue;
        }
        err = buf_append_str(out, first ? "{\"service\":" : ",{\"service\":");
        first = false;
        if (err == POSGATE_OK) {
            err = hub_json_str(out, r->c[i].service);
        }
        if (err == POSGATE_OK) {
            err = json_figs(out, &r->c[i], all, N_FIG);
        }
        if (err == POSGATE_OK) {
            err = buf_append_str(out, "}");
        }
    }
    first = true;
    if (err == POSGATE_OK) {
        err = buf_append_str(out, "],\"lists\":[");
    }
    for (size_t i = 0; err == POSGATE_OK && i < r->n; i++) {
        if (r->c[i].list == NULL) {
            continue;
        }
        err = buf_append_str(out, first ? "{\"list\":" : ",{\"list\":");
        first = false;
        if (err == POSGATE_OK) {
            err = hub_json_str(out, r->c[i].list);
        }
        if (err == POSGATE_OK) {
            err = buf_append_str(out, ",\"service\":");
        }
        if (err == POSGATE_OK) {
            err = hub_json_str(out, r->c[i].service);
        }
        if (err == POSGATE_OK) {
            err = json_figs(out, &r->c[i], list_figs, N_LIST_FIGS);
        }
        if (err == POSGATE_OK) {
            err = buf_append_str(out, "}");
        }
    }
    if (err == POSGATE_OK) {
        err = r->prop.installs > 0
                  ? buf_printf(out,
                               "],\"propagation\":{\"median_s\":%" PRId64
                               ",\"installs\":%zu,\"versions\":[",
                               r->prop.median_s, r->prop.installs)
                  : buf_append_str(out, "],\"propagation\":{\"median_s\":null,\"installs\":0,"
                                        "\"versions\":[");
    }
    for (size_t i = 0; err == POSGATE_OK && i < r->prop.n; i++) {
        const struct hub_fleet_prop_version *v = &r->prop.v[i];
        char a[32], b[32];

        fmt_time(v->issued_s, a);
        fmt_time(v->first_install_s, b);
        err = buf_printf(out,
                         "%s{\"feed_version\":%" PRId64 ",\"issued_at\":\"%s\","
                         "\"first_installed_at\":\"%s\",\"devices\":%zu,\"p50_s\":%" PRId64
                         ",\"p95_s\":%" PRId64 ",\"max_s\":%" PRId64 "}",
                         i > 0 ? "," : "", v->feed_version, a, b, v->devices, v->p50_s, v->p95_s,
                         v->max_s);
    }
    if (err == POSGATE_OK) {
        err = buf_printf(out, "]},\"unreadable\":%" PRIu64 "}\n", r->unreadable);
    }
    return err;
}

/* ---- HTML ---- */

/* s escaped for HTML text and attribute values; control bytes but the newline as '?'. */
static enum posgate_err
html_str(struct buf *b, const char *s)
{
    enum posgate_err err = POSGATE_OK;

    for (const unsigned char *p = (const unsigned char *)s; err == POSGATE_OK && *p != 0; p++) {
        switch (*p) {
        case '&':
            err = buf_append_str(b, "&amp;");
            break;
        case '<':
            err = buf_append_str(b, "&lt;");
            break;
        case '>':
            err = buf_append_str(b, "&gt;");
            break;
        case '"':
            err = buf_append_str(b, "&quot;");
            break;
        case '\'':
            err = buf_append_str(b, "&#39;");
            break;
        default:
            err = buf_append(b, (*p < 0x20 && *p != '\n') || *p == 0x7f ? "?" : (const char *)p, 1);
            break;
        }
    }
    return err;
}

static enum posgate_err
html_table(const struct table *t, const char *id, struct buf *out)
{
    enum posgate_err err = buf_append_str(out, "<h2>");

    if (err == POSGATE_OK) {
        err = html_str(out, t->title);
    }
    if (err == POSGATE_OK && t->rows == 0) {
        return buf_append_str(out, "</h2>\n<p>none</p>\n");
    }
    if (err == POSGATE_OK) {
        err = buf_printf(out, "</h2>\n<table id=\"%s\">\n<tr>", id);
    }
    for (size_t r = 0; err == POSGATE_OK && r <= t->rows; r++) {
        for (size_t c = 0; err == POSGATE_OK && c < t->cols; c++) {
            err = buf_append_str(out, r == 0 ? "<th>" : c < t->left ? "<td>" : "<td class=\"n\">");
            if (err == POSGATE_OK) {
                err = html_str(out, r == 0 ? t->head[c] : t->cell[(r - 1) * t->cols + c]);
            }
            if (err == POSGATE_OK) {
                err = buf_append_str(out, r == 0 ? "</th>" : "</td>");
            }
        }
        if (err == POSGATE_OK) {
            err = buf_append_str(out, r == t->rows ? "</tr>\n" : "</tr>\n<tr>");
        }
    }
    if (err == POSGATE_OK) {
        err = buf_append_str(out, "</table>\n");
    }
    return err;
}

static enum posgate_err
report_html(const struct report *r, const struct table t[3], struct buf *out)
{
    static const char *const ids[3] = {"services", "lists", "versions"};
    struct buf sum = BUF_INIT(64 * 1024);
    enum posgate_err err = summary_text(r, &sum);

    if (err == POSGATE_OK) {
        err = buf_printf(out,
                         "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
                         "<title>posgate transparency report %s</title>\n<style>\n"
                         "body{font:15px/1.45 system-ui,sans-serif;margin:2em auto;max-width:"
                         "60em;padding:0 1em;color:#1d2430}\n"
                         "table{border-collapse:collapse;margin:.5em 0 1.5em}\n"
                         "th,td{border-bottom:1px solid #d5dae1;padding:.3em .7em;text-align:"
                         "left}\ntd.n{text-align:right;font-variant-numeric:tabular-nums}\n"
                         "pre{white-space:pre-wrap}\n</style>\n</head>\n<body>\n"
                         "<h1>posgate transparency report, %s</h1>\n<pre id=\"summary\">",
                         r->month, r->month);
    }
    if (err == POSGATE_OK) {
        err = html_str(out, buf_cstr(&sum));
    }
    if (err == POSGATE_OK) {
        err = buf_append_str(out, "</pre>\n");
    }
    for (int k = 0; err == POSGATE_OK && k < 3; k++) {
        err = html_table(&t[k], ids[k], out);
    }
    if (err == POSGATE_OK) {
        err = buf_append_str(out, "<p>Aggregates only: no device, operator, decision or listing "
                                  "is named. A list with one DENY in a month still shows that "
                                  "someone was denied under it.</p>\n</body>\n</html>\n");
    }
    buf_free(&sum);
    return err;
}

enum posgate_err
hub_transparency(struct hub_db *db, const char *month, int64_t now_s,
                 enum hub_transparency_format format, struct buf *out)
{
    struct report r;
    struct table t[3];
    enum posgate_err err = report_load(db, month, now_s, &r);

    memset(t, 0, sizeof(t));
    if (err == POSGATE_OK && format == HUB_TRANSPARENCY_JSON) {
        err = report_json(&r, out);
    } else if (err == POSGATE_OK) {
        err = tables(&r, t);
        if (err == POSGATE_OK && format == HUB_TRANSPARENCY_HTML) {
            err = report_html(&r, t, out);
        } else if (err == POSGATE_OK) {
            err = summary_text(&r, out);
            for (int k = 0; err == POSGATE_OK && k < 3; k++) {
                err = text_table(&t[k], out);
            }
        }
    }
    for (int k = 0; k < 3; k++) {
        table_free(&t[k]);
    }
    report_cleanup(&r);
    return err;
}

/* ---- posgate-hub report ---- */

static const char usage_report[] =
    "usage: posgate-hub report --month YYYY-MM --db HUB.db|postgresql://... [--json | --html]\n"
    "\n"
    "The transparency report of a month (UTC; docs/collector.md, \"Transparency report\"): per\n"
    "service the checks (an ALLOW summary counts for every ALLOW it stands for), ALLOW, DENY,\n"
    "REFER and error, supervisor overrides granted and refused, and the contests looked up; the\n"
    "same per list and service (a decision counts once under every list it cites); and the\n"
    "median delisting propagation of the feed versions first installed in the month. Decisions\n"
    "count in the month of their own time (the kiosk's clock), lookups in the collector's.\n"
    "Aggregates only: no device, operator, decision or listing id.\n"
    "  --json  one JSON document     --html  one self-contained page (no script, nothing fetched)\n"
    "exit codes: 0 written, 2 usage (a malformed month), 5 I/O\n";

int
hub_transparency_main(int argc, char **argv)
{
    const char *dbpath = NULL, *month = NULL;
    enum hub_transparency_format fmt = HUB_TRANSPARENCY_TEXT;
    struct hub_db *db = NULL;
    struct buf out = BUF_INIT(SIZE_MAX / 2);
    char msg[512] = "";
    int64_t a, b;
    int formats = 0, rc = 5;
    enum posgate_err err;

    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            fputs(usage_report, stdout);
            return 0;
        }
        if (strcmp(argv[i], "--json") == 0 || strcmp(argv[i], "--html") == 0) {
            fmt = argv[i][4] == 'o' ? HUB_TRANSPARENCY_JSON : HUB_TRANSPARENCY_HTML;
            formats++;
        } else if (i + 1 < argc && strcmp(argv[i], "--db") == 0) {
            dbpath = argv[++i];
        } else if (i + 1 < argc && strcmp(argv[i], "--month") == 0) {
            month = argv[++i];
        } else {
            fprintf(stderr, "posgate-hub report: unexpected argument \"%s\"\n\n%s", argv[i],
                    usage_report);
            return 2;
        }
    }
    if (dbpath == NULL || month == NULL || formats > 1) {
        fprintf(stderr,
                "posgate-hub report: expected --month YYYY-MM, --db and at most one of "
                "--json and --html\n\n%s",
                usage_report);
        return 2;
    }
    if (hub_transparency_month(month, &a, &b) != POSGATE_OK) {
        fprintf(stderr,
                "posgate-hub report: --month expects YYYY-MM (1970-01 or later), not "
                "\"%.40s\"\n",
                month);
        return 2;
    }
    if (!hub_db_is_uri(dbpath) && !plat_exists(dbpath)) {
        fprintf(stderr, "posgate-hub report: %s does not exist\n", dbpath);
        return 5;
    }
    if (hub_db_open_read(dbpath, &db, msg, sizeof(msg)) != POSGATE_OK) {
        fprintf(stderr, "posgate-hub report: %s\n", msg);
        goto out;
    }
    err = hub_transparency(db, month, plat_wall_s(), fmt, &out);
    if (err != POSGATE_OK) {
        fprintf(stderr, "posgate-hub report: %s\n", posgate_strerror(err));
        goto out;
    }
    fwrite(out.data, 1, out.len, stdout);
    rc = fflush(stdout) == 0 ? 0 : 5;
out:
    hub_db_close(db);
    buf_free(&out);
    return rc;
}
