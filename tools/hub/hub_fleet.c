/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The fleet's devices (hub_fleet.h): loading every enrolled device with its latest status report
 * and audit trail state in one snapshot, judging its states, and the overview, devices and
 * device answers of /v1/fleet/.
 */
#include "hub_fleet.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "hub_report.h"
#include "hub_store.h"
#include "json_canon.h"
#include "plat_file.h"
#include "plat_mem.h"

#define TIMESTAMP_MAX (1024u * 1024u)

#define HUB_FLEET_STATE_NAME(name, text) text,
static const char *const state_names[HUB_FLEET_N_STATES] = {HUB_FLEET_STATES(HUB_FLEET_STATE_NAME)};
#undef HUB_FLEET_STATE_NAME

const char *
hub_fleet_state_name(unsigned state)
{
    return state < HUB_FLEET_N_STATES ? state_names[state] : NULL;
}

int64_t
hub_fleet_served_version(const char *feed_dir)
{
    struct buf raw = BUF_INIT(TIMESTAMP_MAX);
    char path[4096], msg[128];
    cJSON *ts = NULL;
    int64_t v = 0;

    if (feed_dir == NULL || (size_t)snprintf(path, sizeof(path), "%s/metadata/timestamp.json",
                                             feed_dir) >= sizeof(path)) {
        return 0;
    }
    if (plat_read_file(path, &raw) == POSGATE_OK &&
        json_parse_bounded(raw.data, raw.len, raw.max, &ts, msg, sizeof(msg)) == POSGATE_OK &&
        json_get_int(cJSON_GetObjectItemCaseSensitive(ts, "signed"), "version", 1, INT64_MAX, &v) !=
            POSGATE_OK) {
        v = 0;
    }
    cJSON_Delete(ts);
    buf_free(&raw);
    return v;
}

enum posgate_err
hub_fleet_emit(cJSON *doc, struct buf *out)
{
    char *text = doc != NULL ? cJSON_PrintUnformatted(doc) : NULL;
    enum posgate_err err = text != NULL ? buf_append_str(out, text) : POSGATE_ERR_NOMEM;

    if (err == POSGATE_OK) {
        err = buf_append_str(out, "\n");
    }
    cJSON_free(text);
    cJSON_Delete(doc);
    return err;
}

/* ---- loading ---- */

static enum posgate_err
add_device(void *ctx, const struct hub_row *r)
{
    struct hub_fleet *f = ctx;
    struct hub_fleet_device *d;

    if (r->t[0] == NULL || r->tlen[0] != DEVICE_ID_HEX_LEN) {
        return POSGATE_OK; /* enrolment writes 32 hex: anything else is not a device of ours */
    }
    if (f->n == f->cap) {
        size_t nc = f->cap > 0 ? 2 * f->cap : 64;
        void *p = plat_realloc(f->dev, nc * sizeof(*f->dev));

        if (p == NULL) {
            return POSGATE_ERR_NOMEM;
        }
        f->dev = p;
        f->cap = nc;
    }
    d = &f->dev[f->n++];
    memset(d, 0, sizeof(*d));
    memcpy(d->id, r->t[0], DEVICE_ID_HEX_LEN);
    d->feed_version = -1;
    return POSGATE_OK;
}

static int
by_id(const void *a, const void *b)
{
    return strcmp(((const struct hub_fleet_device *)a)->id,
                  ((const struct hub_fleet_device *)b)->id);
}

struct hub_fleet_device *
hub_fleet_find(struct hub_fleet *f, const char *id)
{
    struct hub_fleet_device key;

    if (id == NULL || strlen(id) != DEVICE_ID_HEX_LEN || f->n == 0) {
        return NULL;
    }
    memcpy(key.id, id, DEVICE_ID_HEX_LEN + 1);
    return bsearch(&key, f->dev, f->n, sizeof(*f->dev), by_id);
}

static double
num_at(const cJSON *o, const char *name, double dflt)
{
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, name);

    return cJSON_IsNumber(x) ? x->valuedouble : dflt;
}

static enum posgate_err
add_report(void *ctx, const struct hub_row *r)
{
    struct hub_fleet *f = ctx;
    struct hub_fleet_device *d;
    char id[DEVICE_ID_HEX_LEN + 1], msg[128];
    cJSON *rep = NULL;

    if (r->t[0] == NULL || r->tlen[0] != DEVICE_ID_HEX_LEN || r->t[1] == NULL) {
        return POSGATE_OK;
    }
    memcpy(id, r->t[0], DEVICE_ID_HEX_LEN);
    id[DEVICE_ID_HEX_LEN] = 0;
    d = hub_fleet_find(f, id);
    if (d == NULL) {
        return POSGATE_OK;
    }
    /* parsed before it was kept (hub_report_parse); one that no longer parses counts as none */
    if (json_parse_bounded(r->t[1], r->tlen[1], HUB_REPORT_MAX, &rep, msg, sizeof(msg)) !=
        POSGATE_OK) {
        return POSGATE_OK;
    }
    d->report = rep;
    d->reported_at_us = r->i[0];
    d->received_at = r->i[1];
    d->feed_version =
        (int64_t)num_at(cJSON_GetObjectItemCaseSensitive(rep, "status"), "feed_version", -1);
    return POSGATE_OK;
}

static bool
any_stale(const cJSON *status)
{
    const cJSON *l;

    cJSON_ArrayForEach(l, cJSON_GetObjectItemCaseSensitive(status, "lists"))
    {
        if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(l, "stale"))) {
            return true;
        }
    }
    return false;
}

static unsigned
judge(const struct hub_fleet *f, const struct hub_fleet_device *d, const struct hub_fleet_opts *o)
{
    const cJSON *st = cJSON_GetObjectItemCaseSensitive(d->report, "status");
    const cJSON *lk = cJSON_GetObjectItemCaseSensitive(st, "list_key");
    unsigned s = 0;

    if (d->feed_version >= 0 && f->newest > 0 && d->feed_version < f->newest) {
        s |= 1u << HUB_FLEET_BEHIND;
    }
    if (any_stale(st)) {
        s |= 1u << HUB_FLEET_STALE;
    }
    if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(st, "metadata_expired"))) {
        s |= 1u << HUB_FLEET_EXPIRED;
    }
    if (cJSON_IsString(lk) && strcmp(lk->valuestring, "mismatch") == 0) {
        s |= 1u << HUB_FLEET_LIST_KEY;
    }
    if (!d->st.chain_ok) {
        s |= 1u << HUB_FLEET_CHAIN;
    }
    if (d->st.gaps > 0) {
        s |= 1u << HUB_FLEET_GAPS;
    }
    if (d->report == NULL || o->now_s - d->received_at > o->silent_s) {
        s |= 1u << HUB_FLEET_SILENT;
    }
    if (s == 0 && d->report != NULL) {
        s = 1u << HUB_FLEET_CURRENT;
    }
    return s;
}

enum posgate_err
hub_fleet_load(struct hub_db *db, const struct hub_fleet_opts *o, struct hub_fleet *f)
{
    void *impl;
    const struct hub_store_ops *ops = hub_db_store(db, &impl);
    enum posgate_err err;

    memset(f, 0, sizeof(*f));
    json_init_hooks();
    err = ops->read_begin(impl); /* one snapshot */
    if (err != POSGATE_OK) {
        return err;
    }
    err = ops->devices(impl, add_device, f);
    if (err == POSGATE_OK && f->n > 1) {
        qsort(f->dev, f->n, sizeof(*f->dev), by_id); /* the store's collation may differ */
    }
    for (size_t i = 0; err == POSGATE_OK && i < f->n; i++) {
        err = ops->device_state(impl, f->dev[i].id, &f->dev[i].st);
    }
    if (err == POSGATE_OK) {
        err = ops->reports(impl, add_report, f);
    }
    ops->read_end(impl);
    if (err != POSGATE_OK) {
        hub_fleet_cleanup(f);
        return err;
    }
    f->newest = o->served_version;
    f->newest_served = o->served_version > 0;
    for (size_t i = 0; !f->newest_served && i < f->n; i++) {
        if (f->dev[i].feed_version > f->newest) {
            f->newest = f->dev[i].feed_version;
        }
    }
    for (size_t i = 0; i < f->n; i++) {
        f->dev[i].states = judge(f, &f->dev[i], o);
    }
    return POSGATE_OK;
}

void
hub_fleet_cleanup(struct hub_fleet *f)
{
    for (size_t i = 0; f->dev != NULL && i < f->n; i++) {
        cJSON_Delete(f->dev[i].report);
    }
    plat_free(f->dev);
    memset(f, 0, sizeof(*f));
}

/* ---- one device ---- */

static void
copy_member(cJSON *to, const char *name, const cJSON *from, const char *from_name)
{
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(from, from_name);

    cJSON_AddItemToObject(to, name, x != NULL ? cJSON_Duplicate(x, true) : cJSON_CreateNull());
}

static cJSON *
states_json(unsigned states)
{
    cJSON *a = cJSON_CreateArray();

    for (unsigned i = 0; a != NULL && i < HUB_FLEET_N_STATES; i++) {
        if ((states & (1u << i)) != 0) {
            cJSON_AddItemToArray(a, cJSON_CreateString(state_names[i]));
        }
    }
    return a;
}

/* The ids of the stale lists of a report's status. */
static cJSON *
stale_lists(const cJSON *status)
{
    cJSON *a = cJSON_CreateArray();
    const cJSON *l;

    cJSON_ArrayForEach(l, cJSON_GetObjectItemCaseSensitive(status, "lists"))
    {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(l, "id");

        if (a != NULL && cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(l, "stale")) &&
            cJSON_IsString(id)) {
            cJSON_AddItemToArray(a, cJSON_CreateString(id->valuestring));
        }
    }
    return a;
}

/* The figures of one report that the table and the history show, added to o. */
static void
report_figures(cJSON *o, const cJSON *rep)
{
    const cJSON *st = cJSON_GetObjectItemCaseSensitive(rep, "status");
    const cJSON *au = cJSON_GetObjectItemCaseSensitive(st, "audit");
    const cJSON *sy = cJSON_GetObjectItemCaseSensitive(rep, "sync");

    copy_member(o, "software_version", rep, "software_version");
    copy_member(o, "feed_version", st, "feed_version");
    copy_member(o, "issued_at", st, "issued_at");
    copy_member(o, "installed_at", st, "installed_at");
    copy_member(o, "metadata_expired", st, "metadata_expired");
    copy_member(o, "list_key", st, "list_key");
    cJSON_AddItemToObject(o, "stale_lists", stale_lists(st));
    copy_member(o, "unsent", au, "unsent");
    copy_member(o, "oldest_unsent_age_s", au, "oldest_unsent_age_s");
    copy_member(o, "clock_offset_s", rep, "clock_offset_s");
    copy_member(o, "sync_source", sy, "source");
    copy_member(o, "sync_result", sy, "result");
    copy_member(o, "sync_at", sy, "at");
}

cJSON *
hub_fleet_device_json(const struct hub_fleet_device *d, const struct hub_fleet_opts *o)
{
    cJSON *x = cJSON_CreateObject();

    if (x == NULL) {
        return NULL;
    }
    cJSON_AddStringToObject(x, "device_id", d->id);
    cJSON_AddItemToObject(x, "states", states_json(d->states));
    cJSON_AddNumberToObject(x, "enrolled_at", (double)d->st.enrolled_at);
    if (d->report != NULL) {
        cJSON_AddNumberToObject(x, "last_report", (double)d->received_at);
        cJSON_AddNumberToObject(x, "silent_s", (double)(o->now_s - d->received_at));
        cJSON_AddNumberToObject(x, "reported_at_us", (double)d->reported_at_us);
    } else {
        cJSON_AddNullToObject(x, "last_report");
        cJSON_AddNullToObject(x, "silent_s");
        cJSON_AddNullToObject(x, "reported_at_us");
    }
    report_figures(x, d->report);
    cJSON_AddNumberToObject(x, "events", (double)d->st.events);
    cJSON_AddNumberToObject(x, "last_seq", (double)d->st.last_seq);
    cJSON_AddNumberToObject(x, "held_seq", (double)d->st.held_seq);
    cJSON_AddNumberToObject(x, "gaps", (double)d->st.gaps);
    cJSON_AddBoolToObject(x, "chain_ok", d->st.chain_ok);
    if (d->st.chain_ok) {
        cJSON_AddNullToObject(x, "broken_at");
    } else {
        cJSON_AddNumberToObject(x, "broken_at", (double)d->st.broken_at);
    }
    return x;
}

cJSON *
hub_fleet_doc(const struct hub_fleet *f, const struct hub_fleet_opts *o)
{
    cJSON *doc = cJSON_CreateObject();

    if (doc == NULL) {
        return NULL;
    }
    cJSON_AddNumberToObject(doc, "now", (double)o->now_s);
    cJSON_AddNumberToObject(doc, "silent_minutes", (double)(o->silent_s / 60));
    if (f->newest > 0) {
        cJSON_AddNumberToObject(doc, "newest_feed_version", (double)f->newest);
    } else {
        cJSON_AddNullToObject(doc, "newest_feed_version");
    }
    cJSON_AddStringToObject(doc, "newest_from", f->newest_served ? "served" : "fleet");
    cJSON_AddNumberToObject(doc, "devices_enrolled", (double)f->n);
    return doc;
}

/* ---- overview ---- */

/* Adds 1 under key in the array of {key_name: key, "devices": n} objects. */
static void
tally(cJSON *arr, const char *key_name, const cJSON *key)
{
    cJSON *e;

    if (key == NULL) {
        return; /* a report without the member is not counted under any value */
    }
    cJSON_ArrayForEach(e, arr)
    {
        cJSON *k = cJSON_GetObjectItemCaseSensitive(e, key_name);

        if (cJSON_Compare(k, key, true)) {
            cJSON *n = cJSON_GetObjectItemCaseSensitive(e, "devices");

            cJSON_SetNumberValue(n, n->valuedouble + 1);
            return;
        }
    }
    e = cJSON_CreateObject();
    if (e != NULL) {
        cJSON_AddItemToObject(e, key_name, cJSON_Duplicate(key, true));
        cJSON_AddNumberToObject(e, "devices", 1);
        cJSON_AddItemToArray(arr, e);
    }
}

static int
by_version_desc(const void *a, const void *b)
{
    const cJSON *x = *(const cJSON *const *)a, *y = *(const cJSON *const *)b;
    double vx = num_at(x, "feed_version", -1), vy = num_at(y, "feed_version", -1);

    return vx < vy ? 1 : vx > vy ? -1 : 0;
}

/* Orders the {feed_version, devices} entries newest first. */
static void
sort_versions(cJSON *arr)
{
    int n = cJSON_GetArraySize(arr);
    cJSON **v = n > 0 ? plat_calloc((size_t)n, sizeof(*v)) : NULL;

    if (v == NULL) {
        return; /* unordered, or nothing to order */
    }
    for (int i = n - 1; i >= 0; i--) {
        v[i] = cJSON_DetachItemFromArray(arr, i);
    }
    qsort(v, (size_t)n, sizeof(*v), by_version_desc);
    for (int i = 0; i < n; i++) {
        cJSON_AddItemToArray(arr, v[i]);
    }
    plat_free(v);
}

enum posgate_err
hub_fleet_overview(struct hub_db *db, const struct hub_fleet_opts *o, struct buf *out)
{
    struct hub_fleet f;
    cJSON *doc, *states, *versions, *software;
    size_t reported = 0;
    enum posgate_err err = hub_fleet_load(db, o, &f);

    if (err != POSGATE_OK) {
        return err;
    }
    doc = hub_fleet_doc(&f, o);
    states = cJSON_AddObjectToObject(doc, "states");
    versions = cJSON_AddArrayToObject(doc, "feed_versions");
    software = cJSON_AddArrayToObject(doc, "software_versions");
    if (states == NULL || versions == NULL || software == NULL) {
        hub_fleet_cleanup(&f);
        cJSON_Delete(doc);
        return POSGATE_ERR_NOMEM;
    }
    for (unsigned s = 0; s < HUB_FLEET_N_STATES; s++) {
        double n = 0;

        for (size_t i = 0; i < f.n; i++) {
            n += (f.dev[i].states & (1u << s)) != 0 ? 1 : 0;
        }
        cJSON_AddNumberToObject(states, state_names[s], n);
    }
    for (size_t i = 0; i < f.n; i++) {
        const cJSON *st = cJSON_GetObjectItemCaseSensitive(f.dev[i].report, "status");

        if (f.dev[i].report == NULL) {
            continue;
        }
        reported++;
        tally(versions, "feed_version", cJSON_GetObjectItemCaseSensitive(st, "feed_version"));
        tally(software, "software_version",
              cJSON_GetObjectItemCaseSensitive(f.dev[i].report, "software_version"));
    }
    sort_versions(versions);
    cJSON_AddNumberToObject(doc, "devices_reported", (double)reported);
    hub_fleet_cleanup(&f);
    return hub_fleet_emit(doc, out);
}

/* ---- devices ---- */

enum posgate_err
hub_fleet_devices(struct hub_db *db, const struct hub_fleet_opts *o, struct buf *out)
{
    struct hub_fleet f;
    cJSON *doc, *arr;
    enum posgate_err err = hub_fleet_load(db, o, &f);

    if (err != POSGATE_OK) {
        return err;
    }
    doc = hub_fleet_doc(&f, o);
    arr = cJSON_AddArrayToObject(doc, "devices");
    for (size_t i = 0; arr != NULL && i < f.n; i++) {
        cJSON *x = hub_fleet_device_json(&f.dev[i], o);

        if (x == NULL) {
            arr = NULL;
            break;
        }
        cJSON_AddItemToArray(arr, x);
    }
    hub_fleet_cleanup(&f);
    if (arr == NULL) {
        cJSON_Delete(doc);
        return POSGATE_ERR_NOMEM;
    }
    return hub_fleet_emit(doc, out);
}

/* ---- one device's page ---- */

struct page {
    cJSON *gaps, *breaks, *history;
};

static enum posgate_err
page_gap(void *ctx, const struct hub_row *r)
{
    struct page *p = ctx;
    cJSON *g = cJSON_CreateArray();

    if (g == NULL) {
        return POSGATE_ERR_NOMEM;
    }
    cJSON_AddItemToArray(g, cJSON_CreateNumber((double)r->i[0]));
    cJSON_AddItemToArray(g, cJSON_CreateNumber((double)r->i[1]));
    cJSON_AddItemToArray(p->gaps, g);
    return POSGATE_OK;
}

static enum posgate_err
page_break(void *ctx, const struct hub_row *r)
{
    struct page *p = ctx;
    cJSON *b = cJSON_CreateObject();

    if (b == NULL) {
        return POSGATE_ERR_NOMEM;
    }
    cJSON_AddNumberToObject(b, "seq", (double)r->i[0]);
    cJSON_AddStringToObject(b, "kind", r->t[0] != NULL ? r->t[0] : "");
    cJSON_AddNumberToObject(b, "times", (double)r->i[1]);
    cJSON_AddItemToArray(p->breaks, b);
    return POSGATE_OK;
}

/* One report of the history; the rows come oldest first and the page lists newest first. */
static enum posgate_err
page_report(void *ctx, const struct hub_row *r)
{
    struct page *p = ctx;
    char msg[128];
    cJSON *rep = NULL, *h;

    if (json_parse_bounded(r->t[1], r->tlen[1], HUB_REPORT_MAX, &rep, msg, sizeof(msg)) !=
        POSGATE_OK) {
        return POSGATE_OK;
    }
    h = cJSON_CreateObject();
    if (h == NULL) {
        cJSON_Delete(rep);
        return POSGATE_ERR_NOMEM;
    }
    cJSON_AddNumberToObject(h, "reported_at_us", (double)r->i[0]);
    cJSON_AddNumberToObject(h, "received_at", (double)r->i[1]);
    report_figures(h, rep);
    cJSON_Delete(rep);
    cJSON_InsertItemInArray(p->history, 0, h);
    return POSGATE_OK;
}

enum posgate_err
hub_fleet_device(struct hub_db *db, const char *id, const struct hub_fleet_opts *o, int64_t limit,
                 struct buf *out)
{
    void *impl;
    const struct hub_store_ops *ops = hub_db_store(db, &impl);
    struct hub_fleet f;
    struct hub_fleet_device *d;
    struct page p;
    cJSON *doc = NULL;
    enum posgate_err err = hub_fleet_load(db, o, &f);

    if (err != POSGATE_OK) {
        return err;
    }
    d = hub_fleet_find(&f, id);
    if (d == NULL) {
        err = POSGATE_ERR_NOTFOUND;
        goto out;
    }
    doc = hub_fleet_doc(&f, o);
    cJSON_AddItemToObject(doc, "device", hub_fleet_device_json(d, o));
    cJSON_AddItemToObject(
        doc, "report", d->report != NULL ? cJSON_Duplicate(d->report, true) : cJSON_CreateNull());
    p.gaps = cJSON_AddArrayToObject(doc, "gap_ranges");
    p.breaks = cJSON_AddArrayToObject(doc, "chain_breaks");
    p.history = cJSON_AddArrayToObject(doc, "history");
    if (p.gaps == NULL || p.breaks == NULL || p.history == NULL) {
        err = POSGATE_ERR_NOMEM;
        goto out;
    }
    err = ops->read_begin(impl);
    if (err != POSGATE_OK) {
        goto out;
    }
    err = ops->gap_ranges(impl, d->id, page_gap, &p);
    if (err == POSGATE_OK) {
        err = ops->breaks(impl, d->id, page_break, &p);
    }
    if (err == POSGATE_OK) {
        err = ops->report_history(impl, d->id, o->now_s - o->days * 86400, limit, page_report, &p);
    }
    ops->read_end(impl);
    if (err == POSGATE_OK) {
        err = hub_fleet_emit(doc, out);
        doc = NULL;
    }
out:
    cJSON_Delete(doc);
    hub_fleet_cleanup(&f);
    return err;
}
