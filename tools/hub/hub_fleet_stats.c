/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The fleet over time (hub_fleet.h): feed versions and their propagation, read from the status
 * reports the collector keeps (device_reports), and decisions counted per day or hour, read
 * from the events. Both read only the window of history asked for (received at or after
 * now - days), streamed from the store row by row.
 *
 * Propagation of version V: its issue time is the signed issued_at that the reports carrying V
 * name (status.issued_at); a device installed V when it first reported V or a later version
 * (versions are cumulative: a device that went from V-1 to V+1 holds V's delistings from then
 * on), at the report's status.installed_at, moved onto the collector's clock by the report's
 * clock_offset_s when it has one. Latencies below zero (clocks that disagree) count as 0. The
 * transparency report takes the same figures over the versions first installed in a month
 * (hub_fleet_propagation).
 */
#include "hub_fleet.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "hub_report.h"
#include "hub_store.h"
#include "json_canon.h"
#include "plat_clock.h"
#include "plat_mem.h"

#define KEYS_MAX   4096 /* distinct series in one decisions answer; the rest go to "(other)" */
#define SERIES_OUT 50   /* series in the answer, the largest first */
#define OTHER      "(other)"

static double
num_at(const cJSON *o, const char *name, double dflt)
{
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, name);

    return cJSON_IsNumber(x) ? x->valuedouble : dflt;
}

static const char *
str_at(const cJSON *o, const char *name)
{
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, name);

    return cJSON_IsString(x) ? x->valuestring : NULL;
}

/* An RFC 3339 member as wall seconds, or -1. */
static int64_t
time_at(const cJSON *o, const char *name)
{
    const char *s = str_at(o, name);
    int64_t t;

    return s != NULL && plat_time_parse(s, &t) == POSGATE_OK ? t : -1;
}

static void
add_time(cJSON *o, const char *name, int64_t t)
{
    char s[32];

    if (t < 0) {
        cJSON_AddNullToObject(o, name);
        return;
    }
    plat_time_format(t, s, sizeof(s));
    cJSON_AddStringToObject(o, name, s);
}

/* ---- feed versions ---- */

/* A device's first report of a feed version inside the window. */
struct first {
    size_t dev; /* index in the fleet */
    int64_t version, reported_at_us;
    int64_t install_s; /* on the collector's clock */
    int64_t issued_s;  /* the version's signed issue time; -1 unknown */
};

struct firsts {
    struct hub_fleet *f;
    struct first *v;
    size_t n, cap;
    char cur[DEVICE_ID_HEX_LEN + 1]; /* the device whose reports are being read */
    struct hub_fleet_device *cur_dev;
    size_t cur_from;     /* its first entry in v */
    int64_t cur_scanned; /* the version text of its previous report; -2: none yet */
};

/* The number after the first "feed_version": of a report's text, or -1: a quick look that
 * spares parsing the (many, alike) heartbeats of a device whose version did not change. The
 * version kept is always read from the parsed report. */
static int64_t
scan_version(const char *t, size_t n)
{
    static const char key[] = "\"feed_version\":";
    size_t k = sizeof(key) - 1;
    int64_t v = 0;

    for (size_t i = 0; i + k < n; i++) {
        if (memcmp(t + i, key, k) == 0) {
            size_t j = i + k, d = 0;

            for (; j < n && d < 18 && t[j] >= '0' && t[j] <= '9'; j++, d++) {
                v = v * 10 + (t[j] - '0');
            }
            return d > 0 ? v : -1;
        }
    }
    return -1;
}

static enum posgate_err
first_row(void *ctx, const struct hub_row *r)
{
    struct firsts *fs = ctx;
    const cJSON *st;
    cJSON *rep = NULL;
    char msg[128];
    int64_t v, off, t;
    struct first *e;

    if (r->t[0] == NULL || r->tlen[0] != DEVICE_ID_HEX_LEN || r->t[1] == NULL) {
        return POSGATE_OK;
    }
    if (memcmp(fs->cur, r->t[0], DEVICE_ID_HEX_LEN) != 0) {
        memcpy(fs->cur, r->t[0], DEVICE_ID_HEX_LEN);
        fs->cur_dev = hub_fleet_find(fs->f, fs->cur);
        fs->cur_from = fs->n;
        fs->cur_scanned = -2;
    }
    v = scan_version(r->t[1], r->tlen[1]);
    if (fs->cur_dev == NULL || (v >= 0 && v == fs->cur_scanned)) {
        return POSGATE_OK;
    }
    fs->cur_scanned = v;
    if (json_parse_bounded(r->t[1], r->tlen[1], HUB_REPORT_MAX, &rep, msg, sizeof(msg)) !=
        POSGATE_OK) {
        return POSGATE_OK;
    }
    st = cJSON_GetObjectItemCaseSensitive(rep, "status");
    v = (int64_t)num_at(st, "feed_version", 0);
    for (size_t i = fs->cur_from; i < fs->n; i++) {
        if (fs->v[i].version == v) {
            v = 0; /* not its first report of v */
        }
    }
    if (v <= 0) {
        cJSON_Delete(rep);
        return POSGATE_OK;
    }
    if (fs->n == fs->cap) {
        size_t nc = fs->cap > 0 ? 2 * fs->cap : 64;
        void *p = plat_realloc(fs->v, nc * sizeof(*fs->v));

        if (p == NULL) {
            cJSON_Delete(rep);
            return POSGATE_ERR_NOMEM;
        }
        fs->v = p;
        fs->cap = nc;
    }
    e = &fs->v[fs->n++];
    e->dev = (size_t)(fs->cur_dev - fs->f->dev);
    e->version = v;
    e->reported_at_us = r->i[0];
    t = time_at(st, "installed_at");
    off = (int64_t)num_at(rep, "clock_offset_s", 0);
    e->install_s = (t >= 0 ? t : r->i[0] / 1000000) - off;
    e->issued_s = time_at(st, "issued_at");
    cJSON_Delete(rep);
    return POSGATE_OK;
}

static int
by_int64_desc(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

    return x < y ? 1 : x > y ? -1 : 0;
}

static int
by_int64(const void *a, const void *b)
{
    return -by_int64_desc(a, b);
}

/* The versions to show, newest first and each once, into v (HUB_FLEET_VERSIONS_MAX). */
static size_t
versions_of(const struct hub_fleet *f, const struct firsts *fs, int64_t served, int64_t *v)
{
    size_t cap = fs->n + f->n + 1, n = 0, out = 0;
    int64_t *all = plat_calloc(cap, sizeof(*all));

    if (all == NULL) {
        return 0;
    }
    for (size_t i = 0; i < fs->n; i++) {
        all[n++] = fs->v[i].version;
    }
    for (size_t i = 0; i < f->n; i++) {
        if (f->dev[i].feed_version > 0) {
            all[n++] = f->dev[i].feed_version;
        }
    }
    if (served > 0) {
        all[n++] = served;
    }
    qsort(all, n, sizeof(*all), by_int64_desc);
    for (size_t i = 0; i < n && out < HUB_FLEET_VERSIONS_MAX; i++) {
        if (out == 0 || v[out - 1] != all[i]) {
            v[out++] = all[i];
        }
    }
    plat_free(all);
    return out;
}

/* The signed issue time of version v: the latest its reports name (an expired bundle accepted
 * reports its oldest list's instead), from the window's reports or else the latest reports. */
static int64_t
issued_of(const struct hub_fleet *f, const struct firsts *fs, int64_t v)
{
    int64_t t = -1;

    for (size_t i = 0; i < fs->n; i++) {
        if (fs->v[i].version == v && fs->v[i].issued_s > t) {
            t = fs->v[i].issued_s;
        }
    }
    for (size_t i = 0; t < 0 && i < f->n; i++) {
        if (f->dev[i].feed_version == v) {
            t = time_at(cJSON_GetObjectItemCaseSensitive(f->dev[i].report, "status"), "issued_at");
        }
    }
    return t;
}

/* Nearest rank: the smallest value with at least pct % of the values at or below it. */
static int64_t
rank(const int64_t *sorted, size_t n, size_t pct)
{
    size_t k = (pct * n + 99) / 100;

    return sorted[k > 0 ? k - 1 : 0];
}

/* Each device's first report of v or of a later version among the firsts (versions are
 * cumulative), into got[d] (NULL: none in the window). */
static void
installs_of(const struct hub_fleet *f, const struct firsts *fs, int64_t v, const struct first **got)
{
    for (size_t d = 0; d < f->n; d++) {
        got[d] = NULL;
    }
    for (size_t i = 0; i < fs->n; i++) {
        const struct first *e = &fs->v[i];

        if (e->version >= v &&
            (got[e->dev] == NULL || e->reported_at_us < got[e->dev]->reported_at_us)) {
            got[e->dev] = e;
        }
    }
}

/* From the issue time to the install; below zero (clocks that disagree) 0. */
static int64_t
latency(const struct first *e, int64_t issued)
{
    return e->install_s > issued ? e->install_s - issued : 0;
}

/* The propagation of version v to each device that has it (firsts in the window). */
static enum posgate_err
propagation(cJSON *x, const struct hub_fleet *f, const struct firsts *fs, int64_t v, int64_t issued)
{
    int64_t *lat = plat_calloc(f->n + 1, sizeof(*lat));
    const struct first **got = plat_calloc(f->n + 1, sizeof(*got));
    cJSON *installs = cJSON_AddArrayToObject(x, "installs"), *p;
    size_t n = 0, unknown = 0;
    enum posgate_err err = POSGATE_ERR_NOMEM;

    if (lat == NULL || got == NULL || installs == NULL) {
        goto out;
    }
    installs_of(f, fs, v, got);
    for (size_t d = 0; d < f->n; d++) {
        if (got[d] == NULL) {
            unknown += f->dev[d].feed_version >= v ? 1 : 0; /* installed before the window */
            continue;
        }
        lat[n] = latency(got[d], issued);
        p = cJSON_CreateObject();
        if (p == NULL) {
            goto out;
        }
        cJSON_AddStringToObject(p, "device_id", f->dev[d].id);
        add_time(p, "installed_at", got[d]->install_s);
        cJSON_AddNumberToObject(p, "latency_s", (double)lat[n++]);
        cJSON_AddItemToArray(installs, p);
    }
    cJSON_AddNumberToObject(x, "install_time_unknown", (double)unknown);
    err = POSGATE_OK;
    if (n == 0) {
        cJSON_AddNullToObject(x, "propagation");
        goto out;
    }
    qsort(lat, n, sizeof(*lat), by_int64);
    p = cJSON_AddObjectToObject(x, "propagation");
    cJSON_AddNumberToObject(p, "devices", (double)n);
    cJSON_AddNumberToObject(p, "p50_s", (double)rank(lat, n, 50));
    cJSON_AddNumberToObject(p, "p95_s", (double)rank(lat, n, 95));
    cJSON_AddNumberToObject(p, "max_s", (double)lat[n - 1]);
out:
    plat_free(lat);
    plat_free(got);
    return err;
}

static enum posgate_err
version_json(cJSON *arr, const struct hub_fleet *f, const struct firsts *fs, int64_t v,
             int64_t since)
{
    cJSON *x = cJSON_CreateObject(), *behind;
    int64_t issued = issued_of(f, fs, v);
    size_t on = 0, installed = 0;

    if (x == NULL) {
        return POSGATE_ERR_NOMEM;
    }
    cJSON_AddItemToArray(arr, x);
    cJSON_AddNumberToObject(x, "feed_version", (double)v);
    add_time(x, "issued_at", issued);
    behind = cJSON_AddArrayToObject(x, "behind");
    for (size_t i = 0; behind != NULL && i < f->n; i++) {
        int64_t dv = f->dev[i].feed_version;

        on += dv == v ? 1 : 0;
        installed += dv >= v ? 1 : 0;
        if (dv >= 0 && dv < v) {
            cJSON_AddItemToArray(behind, cJSON_CreateString(f->dev[i].id));
        }
    }
    cJSON_AddNumberToObject(x, "devices_on", (double)on);
    cJSON_AddNumberToObject(x, "devices_installed", (double)installed);
    if (issued < since) { /* unknown, or issued before the window: its installs are not all here */
        cJSON_AddNullToObject(x, "propagation");
        return POSGATE_OK;
    }
    return propagation(x, f, fs, v, issued);
}

/* The fleet, and the first report of each feed version of each device among the status
 * reports received since since_s (streamed, in one snapshot). */
static enum posgate_err
load_firsts(struct hub_db *db, const struct hub_fleet_opts *o, int64_t since_s, struct hub_fleet *f,
            struct firsts *fs)
{
    void *impl;
    const struct hub_store_ops *ops = hub_db_store(db, &impl);
    enum posgate_err err = hub_fleet_load(db, o, f);

    memset(fs, 0, sizeof(*fs));
    if (err != POSGATE_OK) {
        return err;
    }
    fs->f = f;
    err = ops->read_begin(impl);
    if (err == POSGATE_OK) {
        err = ops->report_history(impl, NULL, since_s, 0, first_row, fs);
        ops->read_end(impl);
    }
    if (err != POSGATE_OK) {
        plat_free(fs->v);
        memset(fs, 0, sizeof(*fs));
        hub_fleet_cleanup(f);
    }
    return err;
}

enum posgate_err
hub_fleet_versions(struct hub_db *db, const struct hub_fleet_opts *o, struct buf *out)
{
    struct hub_fleet f;
    struct firsts fs;
    int64_t since = o->now_s - o->days * 86400, v[HUB_FLEET_VERSIONS_MAX];
    size_t nv;
    cJSON *doc = NULL, *arr;
    enum posgate_err err = load_firsts(db, o, since, &f, &fs);

    if (err != POSGATE_OK) {
        return err;
    }
    nv = versions_of(&f, &fs, o->served_version, v);
    doc = hub_fleet_doc(&f, o);
    add_time(doc, "since", since);
    arr = cJSON_AddArrayToObject(doc, "versions");
    if (arr == NULL) {
        err = POSGATE_ERR_NOMEM;
        goto out;
    }
    for (size_t i = 0; err == POSGATE_OK && i < nv; i++) {
        err = version_json(arr, &f, &fs, v[i], since);
    }
    if (err == POSGATE_OK) {
        err = hub_fleet_emit(doc, out);
        doc = NULL;
    }
out:
    cJSON_Delete(doc);
    plat_free(fs.v);
    hub_fleet_cleanup(&f);
    return err;
}

/* ---- propagation over a span of first installs (the transparency report) ---- */

/* Appends the latencies of one version of the span to p (its row, and the pool). */
static enum posgate_err
span_version(struct hub_fleet_prop *p, int64_t v, int64_t issued, int64_t first, int64_t *lat,
             size_t n)
{
    struct hub_fleet_prop_version *x;
    void *q;

    q = plat_realloc(p->v, (p->n + 1) * sizeof(*p->v));
    if (q == NULL) {
        return POSGATE_ERR_NOMEM;
    }
    p->v = q;
    q = plat_realloc(p->latency_s, (p->installs + n) * sizeof(*p->latency_s));
    if (q == NULL) {
        return POSGATE_ERR_NOMEM;
    }
    p->latency_s = q;
    qsort(lat, n, sizeof(*lat), by_int64);
    x = &p->v[p->n++];
    x->feed_version = v;
    x->issued_s = issued;
    x->first_install_s = first;
    x->devices = n;
    x->p50_s = rank(lat, n, 50);
    x->p95_s = rank(lat, n, 95);
    x->max_s = lat[n - 1];
    memcpy(p->latency_s + p->installs, lat, n * sizeof(*lat));
    p->installs += n;
    return POSGATE_OK;
}

enum posgate_err
hub_fleet_propagation(struct hub_db *db, const struct hub_fleet_opts *o, int64_t from_s,
                      int64_t until_s, struct hub_fleet_prop *out)
{
    struct hub_fleet f;
    struct firsts fs;
    int64_t since = from_s > HUB_FLEET_PROP_LOOKBACK_S ? from_s - HUB_FLEET_PROP_LOOKBACK_S : 0;
    int64_t *vs = NULL, *lat = NULL;
    const struct first **got = NULL;
    enum posgate_err err;

    memset(out, 0, sizeof(*out));
    out->median_s = -1;
    err = load_firsts(db, o, since, &f, &fs);
    if (err != POSGATE_OK) {
        return err;
    }
    vs = plat_calloc(fs.n + 1, sizeof(*vs));
    lat = plat_calloc(f.n + 1, sizeof(*lat));
    got = plat_calloc(f.n + 1, sizeof(*got));
    if (vs == NULL || lat == NULL || got == NULL) {
        err = POSGATE_ERR_NOMEM;
        goto out;
    }
    for (size_t i = 0; i < fs.n; i++) {
        vs[i] = fs.v[i].version;
    }
    qsort(vs, fs.n, sizeof(*vs), by_int64);
    for (size_t i = 0; err == POSGATE_OK && i < fs.n; i++) {
        int64_t v = vs[i], issued = issued_of(&f, &fs, v), first = INT64_MAX;
        size_t n = 0;

        /* each version once; one issued before what was read may have installs before it too,
         * so its first install is not known (as /v1/fleet/versions leaves its propagation out) */
        if ((i > 0 && vs[i - 1] == v) || issued < 0 || issued < since) {
            continue;
        }
        installs_of(&f, &fs, v, got);
        for (size_t d = 0; d < f.n; d++) {
            if (got[d] != NULL) {
                lat[n++] = latency(got[d], issued);
                first = got[d]->install_s < first ? got[d]->install_s : first;
            }
        }
        if (n > 0 && first >= from_s && first < until_s) {
            err = span_version(out, v, issued, first, lat, n);
        }
    }
    if (err == POSGATE_OK && out->installs > 0) {
        qsort(out->latency_s, out->installs, sizeof(*out->latency_s), by_int64);
        out->median_s = rank(out->latency_s, out->installs, 50);
    }
out:
    if (err != POSGATE_OK) {
        hub_fleet_prop_cleanup(out);
    }
    plat_free(vs);
    plat_free(lat);
    plat_free(got);
    plat_free(fs.v);
    hub_fleet_cleanup(&f);
    return err;
}

void
hub_fleet_prop_cleanup(struct hub_fleet_prop *p)
{
    plat_free(p->v);
    plat_free(p->latency_s);
    memset(p, 0, sizeof(*p));
    p->median_s = -1;
}

/* ---- decisions over time ---- */

struct series {
    char *key;
    double total;
    double *counts; /* one per bucket */
};

struct tally {
    enum hub_fleet_by by;
    int64_t start, step; /* the first bucket's start and a bucket's length, seconds */
    size_t nb;
    struct series *s;
    size_t n, cap;
    uint32_t *slots; /* open addressing: series index + 1, 0 empty */
    size_t nslots;
    double events, outside, unreadable;
};

static uint32_t
hash(const char *s)
{
    uint32_t h = 2166136261u; /* FNV-1a */

    for (; *s != 0; s++) {
        h = (h ^ (uint8_t)*s) * 16777619u;
    }
    return h;
}

/* The series of key, made when new (past KEYS_MAX: "(other)"); NULL when memory ran out. */
static struct series *
series_of(struct tally *t, const char *key)
{
    size_t i = hash(key) & (t->nslots - 1);
    struct series *s;

    for (; t->slots[i] != 0; i = (i + 1) & (t->nslots - 1)) {
        if (strcmp(t->s[t->slots[i] - 1].key, key) == 0) {
            return &t->s[t->slots[i] - 1];
        }
    }
    if (t->n >= KEYS_MAX && strcmp(key, OTHER) != 0) {
        return series_of(t, OTHER); /* made even past KEYS_MAX: nslots holds one more */
    }
    if (t->n == t->cap) {
        size_t nc = t->cap > 0 ? 2 * t->cap : 16;
        void *p = plat_realloc(t->s, nc * sizeof(*t->s));

        if (p == NULL) {
            return NULL;
        }
        t->s = p;
        t->cap = nc;
    }
    s = &t->s[t->n];
    s->total = 0;
    s->key = plat_malloc(strlen(key) + 1);
    s->counts = plat_calloc(t->nb, sizeof(*s->counts));
    if (s->key == NULL || s->counts == NULL) {
        plat_free(s->key);
        plat_free(s->counts);
        return NULL;
    }
    memcpy(s->key, key, strlen(key) + 1);
    t->slots[i] = (uint32_t)++t->n;
    return s;
}

static enum posgate_err
count(struct tally *t, const char *key, size_t b, double n)
{
    struct series *s = series_of(t, key != NULL && key[0] != 0 ? key : "-");

    if (s == NULL) {
        return POSGATE_ERR_NOMEM;
    }
    s->counts[b] += n;
    s->total += n;
    return POSGATE_OK;
}

/* A decision counted once under each distinct list (or LIST/LISTING_ID) of its reasons. */
static enum posgate_err
count_reasons(struct tally *t, const cJSON *ev, size_t b)
{
    const cJSON *rs = cJSON_GetObjectItemCaseSensitive(ev, "reasons"), *r, *q;
    enum posgate_err err = POSGATE_OK;
    char key[2 * AUDIT_ID_MAX + 2];
    const char *dec = str_at(ev, "decision");

    if (t->by == HUB_FLEET_BY_LISTING &&
        (dec == NULL || (strcmp(dec, "deny") != 0 && strcmp(dec, "refer") != 0))) {
        return POSGATE_OK; /* as decisions --listing: the DENYs and REFERs that cited it */
    }
    cJSON_ArrayForEach(r, rs)
    {
        const char *l = str_at(r, "list"), *id = str_at(r, "listing_id");
        bool seen = false;

        if (l == NULL || (t->by == HUB_FLEET_BY_LISTING && (id == NULL || id[0] == 0))) {
            continue;
        }
        for (q = rs->child; q != r && !seen; q = q->next) { /* counted for an earlier reason */
            const char *l2 = str_at(q, "list"), *id2 = str_at(q, "listing_id");

            seen = l2 != NULL && strcmp(l, l2) == 0 &&
                   (t->by == HUB_FLEET_BY_LIST || (id2 != NULL && strcmp(id, id2) == 0));
        }
        if (seen) {
            continue;
        }
        snprintf(key, sizeof(key), "%.*s%s%.*s", AUDIT_ID_MAX, l,
                 t->by == HUB_FLEET_BY_LISTING ? "/" : "", AUDIT_ID_MAX,
                 t->by == HUB_FLEET_BY_LISTING ? id : "");
        err = count(t, key, b, 1);
        if (err != POSGATE_OK) {
            break;
        }
    }
    return err;
}

/* The ALLOWs of a summary under each service it counts. */
static enum posgate_err
count_services(struct tally *t, const cJSON *ev, size_t b)
{
    const cJSON *sv;
    enum posgate_err err = POSGATE_OK;
    double other = num_at(ev, "services_other", 0);

    cJSON_ArrayForEach(sv, cJSON_GetObjectItemCaseSensitive(ev, "services"))
    {
        if (err == POSGATE_OK && cJSON_IsNumber(sv) && sv->string != NULL) {
            err = count(t, sv->string, b, sv->valuedouble);
        }
    }
    if (err == POSGATE_OK && other > 0) {
        err = count(t, OTHER, b, other);
    }
    return err;
}

static enum posgate_err
event_row(void *ctx, const struct hub_row *r)
{
    struct tally *t = ctx;
    cJSON *ev = r->t[1] != NULL ? cJSON_ParseWithLength(r->t[1], r->tlen[1]) : NULL;
    const char *kind = str_at(ev, "kind");
    bool summary = kind != NULL && strcmp(kind, "allow_summary") == 0;
    double n = summary ? num_at(ev, "count", 0) : 1;
    int64_t at = time_at(ev, summary ? "last_time" : "time");
    enum posgate_err err = POSGATE_OK;
    size_t b;

    if (kind == NULL || (!summary && strcmp(kind, "decision") != 0) || at < 0) {
        t->unreadable++;
        cJSON_Delete(ev);
        return POSGATE_OK;
    }
    if (at < t->start || (size_t)((at - t->start) / t->step) >= t->nb) {
        t->outside += n; /* decided outside the window, by the kiosk's clock */
        cJSON_Delete(ev);
        return POSGATE_OK;
    }
    b = (size_t)((at - t->start) / t->step);
    t->events += n;
    switch (t->by) {
    case HUB_FLEET_BY_DECISION:
        err =
            count(t,
                  summary                                                 ? "allow"
                  : cJSON_GetObjectItemCaseSensitive(ev, "error") != NULL ? "error"
                                                                          : str_at(ev, "decision"),
                  b, n);
        break;
    case HUB_FLEET_BY_SERVICE:
        err = summary ? count_services(t, ev, b) : count(t, str_at(ev, "service"), b, 1);
        break;
    case HUB_FLEET_BY_LIST:
    case HUB_FLEET_BY_LISTING:
        err = summary ? POSGATE_OK : count_reasons(t, ev, b); /* an ALLOW folded cites none */
        break;
    default:
        break;
    }
    cJSON_Delete(ev);
    return err;
}

static int
by_total_desc(const void *a, const void *b)
{
    const struct series *x = a, *y = b;

    return x->total < y->total ? 1 : x->total > y->total ? -1 : strcmp(x->key, y->key);
}

static const char *const by_names[] = {"decision", "list", "service", "listing"};

static cJSON *
decisions_doc(struct tally *t, const struct hub_fleet_opts *o, bool hourly)
{
    cJSON *doc = cJSON_CreateObject(), *labels, *series;
    char s[32];

    if (doc == NULL) {
        return NULL;
    }
    cJSON_AddStringToObject(doc, "by", by_names[t->by]);
    cJSON_AddStringToObject(doc, "bucket", hourly ? "hour" : "day");
    cJSON_AddNumberToObject(doc, "days", (double)o->days);
    add_time(doc, "from", t->start);
    add_time(doc, "until", t->start + (int64_t)t->nb * t->step);
    labels = cJSON_AddArrayToObject(doc, "buckets");
    for (size_t i = 0; labels != NULL && i < t->nb; i++) {
        plat_time_format(t->start + (int64_t)i * t->step, s, sizeof(s));
        memcpy(s + (hourly ? 13 : 10), hourly ? ":00Z" : "", hourly ? 5 : 1);
        cJSON_AddItemToArray(labels, cJSON_CreateString(s));
    }
    qsort(t->s, t->n, sizeof(*t->s), by_total_desc);
    series = cJSON_AddArrayToObject(doc, "series");
    for (size_t i = 0; series != NULL && i < t->n && i < SERIES_OUT; i++) {
        cJSON *x = cJSON_CreateObject();

        if (x == NULL) {
            cJSON_Delete(doc);
            return NULL;
        }
        cJSON_AddStringToObject(x, "key", t->s[i].key);
        cJSON_AddNumberToObject(x, "total", t->s[i].total);
        cJSON_AddItemToObject(x, "counts", cJSON_CreateDoubleArray(t->s[i].counts, (int)t->nb));
        cJSON_AddItemToArray(series, x);
    }
    cJSON_AddNumberToObject(doc, "series_omitted",
                            (double)(t->n > SERIES_OUT ? t->n - SERIES_OUT : 0));
    cJSON_AddNumberToObject(doc, "decisions", t->events);
    cJSON_AddNumberToObject(doc, "outside_window", t->outside);
    cJSON_AddNumberToObject(doc, "unreadable", t->unreadable);
    return doc;
}

enum posgate_err
hub_fleet_decisions(struct hub_db *db, const struct hub_fleet_opts *o, enum hub_fleet_by by,
                    bool hourly, struct buf *out)
{
    void *impl;
    const struct hub_store_ops *ops = hub_db_store(db, &impl);
    struct tally t;
    int64_t since = o->now_s - o->days * 86400;
    enum posgate_err err;

    if (o->days < 1 || o->days > (hourly ? 31 : HUB_FLEET_DAYS_MAX) || since < 0 ||
        (unsigned)by > HUB_FLEET_BY_LISTING) {
        return POSGATE_ERR_INVALID;
    }
    memset(&t, 0, sizeof(t));
    t.by = by;
    t.step = hourly ? 3600 : 86400;
    t.start = since / t.step * t.step;
    t.nb = (size_t)((o->now_s - t.start) / t.step + 1);
    t.nslots = 2 * KEYS_MAX;
    t.slots = plat_calloc(t.nslots, sizeof(*t.slots));
    if (t.slots == NULL) {
        return POSGATE_ERR_NOMEM;
    }
    json_init_hooks();
    err = ops->read_begin(impl);
    if (err == POSGATE_OK) {
        err = ops->events_since(impl, since, event_row, &t);
        ops->read_end(impl);
    }
    if (err == POSGATE_OK) {
        err = hub_fleet_emit(decisions_doc(&t, o, hourly), out);
    }
    for (size_t i = 0; i < t.n; i++) {
        plat_free(t.s[i].key);
        plat_free(t.s[i].counts);
    }
    plat_free(t.s);
    plat_free(t.slots);
    return err;
}
