/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The collector's answers about decisions (hub_db.h): one decision for a contest (and the
 * lookup recorded, for the transparency report), the DENYs and REFERs that cited a listing, and
 * retention. The stores find the events (hub_store.h find_events); this file reads their
 * canonical JSON (cJSON) and writes the answers. No answer carries a clear identifier: the
 * collector holds only keyed hashes.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "crypto.h"
#include "feed_config.h"
#include "json_canon.h"
#include "hub_store.h"
#include "hub_text.h"
#include "plat_file.h"

#define FEED_CONFIG_MAX (4u * 1024u * 1024u)

static const char *
str_of(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);

    return cJSON_IsString(v) ? v->valuestring : "";
}

/* Appends s as a JSON string as cJSON prints one (\n, \t and the like in their short form,
 * other control bytes as \u00XX), as the decision document of hub_db_decision is printed.
 * hub_json_str (hub_text.h) writes every control byte as \u00XX: the two are kept apart so
 * that each answer stays byte for byte what it was. */
static enum posgate_err
jstr(struct buf *out, const char *s)
{
    cJSON *ref = cJSON_CreateStringReference(s);
    char *t = ref != NULL ? cJSON_PrintUnformatted(ref) : NULL;
    enum posgate_err err;

    cJSON_Delete(ref); /* the item only: a reference does not own the string */
    if (t == NULL) {
        return POSGATE_ERR_NOMEM;
    }
    err = buf_append_str(out, t);
    cJSON_free(t);
    return err;
}

/* ---- one decision ---- */

struct one {
    const char *id;
    cJSON *ev;
    char device[DEVICE_ID_HEX_LEN + 1];
    int64_t received_at;
    size_t n;
};

static enum posgate_err
one_row(void *ctx, const struct hub_row *r)
{
    struct one *o = ctx;
    cJSON *ev;

    if (o->ev != NULL) {
        return POSGATE_OK; /* ids are 128 random bits: the first held is the answer */
    }
    ev = cJSON_ParseWithLength(r->t[1], r->tlen[1]);
    if (ev == NULL) {
        return POSGATE_ERR_CORRUPT;
    }
    if (strcmp(str_of(ev, "id"), o->id) != 0) { /* not the event's own id (hub_db_sqlite.c) */
        cJSON_Delete(ev);
        return POSGATE_OK;
    }
    o->ev = ev;
    o->n++;
    snprintf(o->device, sizeof(o->device), "%.*s", DEVICE_ID_HEX_LEN, r->t[0]);
    o->received_at = r->i[1];
    return POSGATE_OK;
}

/* The JSON object of FEED/metadata/NAME (a served metadata file), or NULL. */
static cJSON *
read_meta(const char *feed_dir, const char *name)
{
    struct buf raw = BUF_INIT(16u << 20);
    char path[4096], msg[128];
    cJSON *v = NULL;

    snprintf(path, sizeof(path), "%.3800s/metadata/%s", feed_dir, name);
    if (plat_read_file(path, &raw) != POSGATE_OK ||
        json_parse_bounded(raw.data, raw.len, raw.max, &v, msg, sizeof(msg)) != POSGATE_OK) {
        v = NULL;
    }
    buf_free(&raw);
    return v;
}

/* The version a TUF meta map (timestamp's or snapshot's "meta") gives NAME, or -1. */
static int64_t
meta_version(const cJSON *role, const char *name)
{
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(role, "signed"), "meta"),
        name);
    int64_t v;

    return json_get_int(m, "version", 1, INT64_MAX, &v) == POSGATE_OK ? v : -1;
}

/* The path of the config/feed.json the served feed publishes now: the served timestamp names
 * the snapshot, the snapshot the top-level targets role, which lists the file by its SHA-256
 * (consistent snapshots: targets/config/<sha256>.feed.json). The metadata is the operator's own
 * and only names what to read: the file read must hash to what the role lists. 0 when found. */
static int
current_config(const char *feed_dir, char *path, size_t cap, char sha[2 * CRYPTO_SHA256_LEN + 1])
{
    cJSON *ts = read_meta(feed_dir, "timestamp.json"), *snap = NULL, *tg = NULL;
    const cJSON *h;
    char name[64];
    int64_t v;
    int rc = -1;

    v = ts != NULL ? meta_version(ts, "snapshot.json") : -1;
    if (v > 0) {
        snprintf(name, sizeof(name), "%" PRId64 ".snapshot.json", v);
        snap = read_meta(feed_dir, name);
    }
    v = snap != NULL ? meta_version(snap, "targets.json") : -1;
    if (v > 0) {
        snprintf(name, sizeof(name), "%" PRId64 ".targets.json", v);
        tg = read_meta(feed_dir, name);
    }
    h = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(
            cJSON_GetObjectItemCaseSensitive(tg, "signed"), "targets"), "config/feed.json"),
        "hashes"), "sha256");
    if (cJSON_IsString(h) && strlen(h->valuestring) == 2 * CRYPTO_SHA256_LEN &&
        strspn(h->valuestring, "0123456789abcdef") == 2 * CRYPTO_SHA256_LEN) {
        memcpy(sha, h->valuestring, 2 * CRYPTO_SHA256_LEN + 1);
        snprintf(path, cap, "%.3800s/targets/config/%s.feed.json", feed_dir, sha);
        rc = 0;
    }
    cJSON_Delete(ts);
    cJSON_Delete(snap);
    cJSON_Delete(tg);
    return rc;
}

/* The config/feed.json the served feed publishes now, or NULL (why in note). */
static struct feed_config *
load_config(const char *feed_dir, char *note, size_t cap)
{
    struct buf raw = BUF_INIT(FEED_CONFIG_MAX);
    struct feed_config *cfg = NULL;
    char path[4096], msg[256] = "", want[2 * CRYPTO_SHA256_LEN + 1], got[2 * CRYPTO_SHA256_LEN + 1];
    uint8_t h[CRYPTO_SHA256_LEN];

    if (feed_dir == NULL) {
        snprintf(note, cap,
                 "this hub serves no feed (--feed): authority and legal basis are "
                 "not known here, only the ids");
        return NULL;
    }
    if (current_config(feed_dir, path, sizeof(path), want) != 0) {
        snprintf(note, cap, "the served feed's metadata names no config/feed.json: only the ids");
        return NULL;
    }
    if (plat_read_file(path, &raw) == POSGATE_OK) {
        crypto_sha256(raw.data, raw.len, h);
        crypto_hex(h, sizeof(h), got);
        if (strcmp(got, want) == 0 &&
            feed_config_parse(raw.data, raw.len, 0, &cfg, msg, sizeof(msg)) != POSGATE_OK) {
            cfg = NULL;
        }
    }
    buf_free(&raw);
    if (cfg == NULL) {
        snprintf(note, cap, "the served feed has no readable config/feed.json: only the ids");
    }
    return cfg;
}

static const struct feed_reason *
reason_of(const struct feed_config *cfg, const char *id)
{
    for (uint16_t i = 0; cfg != NULL && i < cfg->n_reasons; i++) {
        if (strcmp(cfg->reasons[i].id, id) == 0) {
            return &cfg->reasons[i];
        }
    }
    return NULL;
}

static const struct feed_list *
list_of(const struct feed_config *cfg, const char *id)
{
    for (uint16_t i = 0; cfg != NULL && i < cfg->n_lists; i++) {
        if (strcmp(cfg->lists[i].id, id) == 0) {
            return &cfg->lists[i];
        }
    }
    return NULL;
}

/* Appends s as canonical JSON writes a string's inside (only " and \\ escaped, control bytes
 * left raw): the bytes a stored event holds, for a pattern found in its text. Not an ordinary
 * JSON string on purpose: hub_json_str (hub_text.h), which escapes control bytes too, writes
 * answers, and its output would not be found in canonical text. */
static enum posgate_err
pat_str(struct buf *b, const char *s)
{
    enum posgate_err err = POSGATE_OK;

    for (; err == POSGATE_OK && *s != 0; s++) {
        err = *s == '"' || *s == '\\' ? buf_printf(b, "\\%c", *s) : buf_append(b, s, 1);
    }
    return err;
}

static enum posgate_err
find(struct hub_db *db, const struct hub_event_filter *f, hub_row_fn fn, void *ctx)
{
    void *impl;
    const struct hub_store_ops *ops = hub_db_store(db, &impl);
    enum posgate_err err = ops->read_begin(impl);

    if (err != POSGATE_OK) {
        return err;
    }
    err = ops->find_events(impl, f, fn, ctx);
    ops->read_end(impl);
    return err;
}

/* The lookup of ev recorded (hub_db_lookup): its service and the distinct lists its reasons
 * cite, as a JSON array, in the order they are cited. */
static enum posgate_err
note_lookup(struct hub_db *db, const cJSON *ev, const char *via, int64_t now_s)
{
    void *impl;
    const struct hub_store_ops *ops = hub_db_store(db, &impl);
    const cJSON *rs = cJSON_GetObjectItemCaseSensitive(ev, "reasons");
    cJSON *lists = cJSON_CreateArray();
    char *text = NULL, msg[256];
    enum posgate_err err = lists != NULL ? POSGATE_OK : POSGATE_ERR_NOMEM;

    for (const cJSON *r = cJSON_IsArray(rs) ? rs->child : NULL; err == POSGATE_OK && r != NULL;
         r = r->next) {
        const char *l = str_of(r, "list");
        bool seen = l[0] == 0;

        for (const cJSON *x = lists->child; x != NULL && !seen; x = x->next) {
            seen = strcmp(x->valuestring, l) == 0;
        }
        if (!seen && !cJSON_AddItemToArray(lists, cJSON_CreateString(l))) {
            err = POSGATE_ERR_NOMEM;
        }
    }
    if (err == POSGATE_OK) {
        text = cJSON_PrintUnformatted(lists);
        err = text != NULL ? POSGATE_OK : POSGATE_ERR_NOMEM;
    }
    if (err == POSGATE_OK) {
        err = ops->lookup_put(impl, str_of(ev, "id"), now_s, str_of(ev, "service"), text, via, msg,
                              sizeof(msg));
    }
    cJSON_free(text);
    cJSON_Delete(lists);
    return err;
}

/* hub_db_decision, and with via the lookup recorded before the answer is written. */
static enum posgate_err
answer(struct hub_db *db, const char *decision_id, const char *feed_dir, bool json, const char *via,
       int64_t now_s, struct buf *out)
{
    struct hub_event_filter f = {0};
    struct one o = {0};
    struct feed_config *cfg = NULL;
    cJSON *doc = NULL, *reasons, *src;
    char note[160] = "";
    char *text = NULL;
    enum posgate_err err;

    if (!hub_lower_hex(decision_id, 32)) {
        return POSGATE_ERR_NOTFOUND; /* a decision id is 32 lowercase hex */
    }
    f.decision_id = decision_id;
    o.id = decision_id;
    err = find(db, &f, one_row, &o);
    if (err == POSGATE_OK && o.ev == NULL) {
        err = POSGATE_ERR_NOTFOUND;
    }
    if (err == POSGATE_OK && via != NULL) {
        err = note_lookup(db, o.ev, via, now_s);
    }
    if (err != POSGATE_OK) {
        goto out;
    }
    cfg = load_config(feed_dir, note, sizeof(note));
    doc = cJSON_CreateObject();
    reasons = cJSON_AddArrayToObject(doc, "reasons");
    if (doc == NULL || reasons == NULL) {
        err = POSGATE_ERR_NOMEM;
        goto out;
    }
    cJSON_AddStringToObject(doc, "decision_id", str_of(o.ev, "id"));
    cJSON_AddStringToObject(doc, "decision", str_of(o.ev, "decision"));
    cJSON_AddStringToObject(doc, "service", str_of(o.ev, "service"));
    cJSON_AddStringToObject(doc, "at", str_of(o.ev, "at"));
    cJSON_AddStringToObject(doc, "time", str_of(o.ev, "time"));
    cJSON_AddStringToObject(doc, "device_id", o.device);
    cJSON_AddStringToObject(doc, "operator", str_of(o.ev, "operator"));
    src = cJSON_GetObjectItemCaseSensitive(o.ev, "feed_version");
    cJSON_AddNumberToObject(doc, "feed_version", cJSON_IsNumber(src) ? src->valuedouble : 0);
    cJSON_AddNumberToObject(doc, "seq",
                            cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(o.ev, "seq")));
    cJSON_AddNumberToObject(doc, "received_at", (double)o.received_at);
    if (cJSON_GetObjectItemCaseSensitive(o.ev, "error") != NULL) {
        cJSON_AddStringToObject(doc, "error", str_of(o.ev, "error"));
    }
    src = cJSON_GetObjectItemCaseSensitive(o.ev, "override");
    if (cJSON_IsObject(src)) {
        cJSON_AddItemToObject(doc, "override", cJSON_Duplicate(src, true));
    }
    src = cJSON_GetObjectItemCaseSensitive(o.ev, "reasons");
    for (cJSON *r = cJSON_IsArray(src) ? src->child : NULL; r != NULL; r = r->next) {
        cJSON *x = cJSON_CreateObject();
        const struct feed_reason *fr = reason_of(cfg, str_of(r, "reason"));
        const struct feed_list *fl = list_of(cfg, str_of(r, "list"));

        if (x == NULL) {
            err = POSGATE_ERR_NOMEM;
            goto out;
        }
        cJSON_AddItemToArray(reasons, x);
        cJSON_AddStringToObject(x, "kind", str_of(r, "kind"));
        cJSON_AddStringToObject(x, "effect", str_of(r, "effect"));
        cJSON_AddStringToObject(x, "list", str_of(r, "list"));
        cJSON_AddStringToObject(x, "listing_id", str_of(r, "listing_id"));
        cJSON_AddStringToObject(x, "reason", str_of(r, "reason"));
        if (fr != NULL || fl != NULL) {
            const char *a = fr != NULL && fr->authority != NULL ? fr->authority
                            : fl != NULL                        ? fl->authority
                                                                : NULL;

            cJSON_AddStringToObject(x, "authority", a != NULL ? a : "");
            if (fr != NULL && fr->legal_basis != NULL) {
                cJSON_AddStringToObject(x, "legal_basis", fr->legal_basis);
            }
        }
    }
    if (note[0] != 0) {
        cJSON_AddStringToObject(doc, "note", note);
    }
    if (json) {
        text = cJSON_PrintUnformatted(doc);
        err = text == NULL ? POSGATE_ERR_NOMEM : buf_append_str(out, text);
        if (err == POSGATE_OK) {
            err = buf_append_str(out, "\n");
        }
        goto out;
    }
    err = buf_printf(out,
                     "decision %s: %s\nservice %s, for %s\ntime %s, device %s, operator %s\n"
                     "feed version %.0f\n",
                     str_of(doc, "decision_id"), str_of(doc, "decision"), str_of(doc, "service"),
                     str_of(doc, "at"), str_of(doc, "time"), o.device, str_of(doc, "operator"),
                     cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(doc, "feed_version")));
    for (cJSON *r = reasons->child; err == POSGATE_OK && r != NULL; r = r->next) {
        err = buf_printf(out, "reason: %s %s, list %s, listing %s, reason %s", str_of(r, "kind"),
                         str_of(r, "effect"), str_of(r, "list"), str_of(r, "listing_id"),
                         str_of(r, "reason"));
        if (err == POSGATE_OK && cJSON_GetObjectItemCaseSensitive(r, "authority") != NULL) {
            err = buf_printf(out, ", authority %s", str_of(r, "authority"));
        }
        if (err == POSGATE_OK && cJSON_GetObjectItemCaseSensitive(r, "legal_basis") != NULL) {
            err = buf_printf(out, ", legal basis %s", str_of(r, "legal_basis"));
        }
        if (err == POSGATE_OK) {
            err = buf_append_str(out, "\n");
        }
    }
    if (err == POSGATE_OK && note[0] != 0) {
        err = buf_printf(out, "note: %s\n", note);
    }
out:
    cJSON_free(text);
    cJSON_Delete(doc);
    cJSON_Delete(o.ev);
    feed_config_free(cfg);
    return err;
}

enum posgate_err
hub_db_decision(struct hub_db *db, const char *decision_id, const char *feed_dir, bool json,
                struct buf *out)
{
    return answer(db, decision_id, feed_dir, json, NULL, 0, out);
}

enum posgate_err
hub_db_lookup(struct hub_db *db, const char *decision_id, const char *feed_dir, bool json,
              const char *via, int64_t now_s, struct buf *out)
{
    if (via == NULL) {
        return POSGATE_ERR_INVALID;
    }
    return answer(db, decision_id, feed_dir, json, via, now_s, out);
}

/* ---- the decisions that cited a listing ---- */

struct cited {
    const char *list, *listing_id, *since;
    struct buf *out;
    bool json;
    size_t n;
};

static enum posgate_err
cited_row(void *ctx, const struct hub_row *r)
{
    struct cited *c = ctx;
    cJSON *ev = cJSON_ParseWithLength(r->t[1], r->tlen[1]);
    enum posgate_err err = POSGATE_OK;

    const cJSON *rs;
    bool cites = false;

    if (ev == NULL) {
        return POSGATE_ERR_CORRUPT;
    }
    rs = cJSON_GetObjectItemCaseSensitive(ev, "reasons");
    for (const cJSON *x = cJSON_IsArray(rs) ? rs->child : NULL; x != NULL; x = x->next) {
        cites = cites || (strcmp(str_of(x, "list"), c->list) == 0 &&
                          strcmp(str_of(x, "listing_id"), c->listing_id) == 0);
    }
    if (!cites || (c->since != NULL && strcmp(str_of(ev, "time"), c->since) < 0)) {
        cJSON_Delete(ev);
        return POSGATE_OK;
    }
    if (c->json) {
        err = buf_append_str(c->out, c->n > 0 ? ",\n{\"decision_id\":" : "{\"decision_id\":");
        if (err == POSGATE_OK) {
            err = jstr(c->out, str_of(ev, "id"));
        }
        if (err == POSGATE_OK) {
            err = buf_printf(c->out, ",\"decision\":\"%s\",\"device_id\":\"%.*s\",\"operator\":",
                             strcmp(str_of(ev, "decision"), "deny") == 0 ? "deny" : "refer",
                             DEVICE_ID_HEX_LEN, r->t[0]);
        }
        if (err == POSGATE_OK) {
            err = jstr(c->out, str_of(ev, "operator"));
        }
        if (err == POSGATE_OK) {
            err = buf_append_str(c->out, ",\"service\":");
        }
        if (err == POSGATE_OK) {
            err = jstr(c->out, str_of(ev, "service"));
        }
        if (err == POSGATE_OK) {
            err = buf_append_str(c->out, ",\"time\":");
        }
        if (err == POSGATE_OK) {
            err = jstr(c->out, str_of(ev, "time"));
        }
        if (err == POSGATE_OK) {
            err = buf_append_str(c->out, "}");
        }
    } else {
        err = buf_printf(c->out, "%.40s %.40s %-5.8s %.*s %.128s %.64s\n", str_of(ev, "id"),
                         str_of(ev, "time"), str_of(ev, "decision"), DEVICE_ID_HEX_LEN, r->t[0],
                         str_of(ev, "service"), str_of(ev, "operator"));
    }
    c->n++;
    cJSON_Delete(ev);
    return err;
}

/* "2025-03" or "2025-03-01" or RFC 3339: the text compared with event times. */
static bool
time_ok(const char *t)
{
    size_t n = strlen(t);

    return n >= 4 && n <= 40 && strspn(t, "0123456789-:TZ.+") == n;
}

enum posgate_err
hub_db_decisions(struct hub_db *db, const char *list, const char *listing_id, const char *since,
                 bool json, struct buf *out, size_t *n)
{
    struct hub_event_filter f = {0};
    struct cited c = {list, listing_id, since, out, json, 0};
    struct buf pat = BUF_INIT(1024);
    enum posgate_err err;

    if (since != NULL && !time_ok(since)) {
        return POSGATE_ERR_INVALID;
    }
    err = buf_append_str(&pat, "\"list\":\"");
    if (err == POSGATE_OK) {
        err = pat_str(&pat, list);
    }
    if (err == POSGATE_OK) {
        err = buf_append_str(&pat, "\",\"listing_id\":\"");
    }
    if (err == POSGATE_OK) {
        err = pat_str(&pat, listing_id);
    }
    if (err == POSGATE_OK) {
        err = buf_append_str(&pat, "\"");
    }
    f.listing_pattern = buf_cstr(&pat);
    if (err == POSGATE_OK) {
        err = buf_append_str(out, json ? "[" : "");
    }
    if (err == POSGATE_OK) {
        err = find(db, &f, cited_row, &c);
    }
    if (err == POSGATE_OK && json) {
        err = buf_append_str(out, "]\n");
    }
    if (n != NULL) {
        *n = c.n;
    }
    buf_free(&pat);
    return err;
}

/* ---- retention ---- */

enum posgate_err
hub_db_prune(struct hub_db *db, int64_t before_s, int64_t now_s, struct hub_prune *res,
             char *errmsg, size_t errcap)
{
    void *impl;
    const struct hub_store_ops *ops = hub_db_store(db, &impl);

    return ops->prune(impl, before_s, now_s, res, errmsg, errcap);
}
