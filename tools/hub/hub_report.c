/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Device status reports at the collector (hub_report.h): the envelope's codec, and the
 * `posgate-hub devices` listing of each device's latest report.
 */
#define _POSIX_C_SOURCE 200809L
#include "hub_report.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "crypto.h"
#include "hub_db.h"
#include "hub_text.h"
#include "json_canon.h"
#include "plat_clock.h"

static const char usage_devices[] =
    "usage: posgate-hub devices --db HUB.db|postgresql://... [--json]\n"
    "\n"
    "The latest status report of every device that sent one (posgated with each upload, or\n"
    "posgate field-sync on a stick), with the kiosk's own field names (docs/collector.md,\n"
    "\"Device status\"): software and feed version, each list's seq, digest, data age and stale\n"
    "state, metadata_expired, list_key, key_filter, the audit queue (unsent, oldest unsent\n"
    "age), the clock offset against the collector, and the last sync's result and source.\n"
    "  --json  one array: [{\"device_id\", \"received_at\", \"report\": {...}}]\n";

void
hub_report_free(struct hub_report *r)
{
    if (r != NULL) {
        free(r->report);
        free(r);
    }
}

enum posgate_err
hub_report_parse(const void *json, size_t len, struct hub_report **out, char *errmsg, size_t errcap)
{
    cJSON *env = NULL, *in = NULL;
    const cJSON *v, *id, *rep, *sig, *iid, *at;
    struct hub_report *r = NULL;
    struct buf sb = BUF_INIT(HUB_REPORT_SIG_MAX);
    enum posgate_err err = POSGATE_ERR_PARSE;

    *out = NULL;
    if (len > HUB_REPORT_MAX) {
        snprintf(errmsg, errcap, "a status report of %zu bytes, at most %u taken", len,
                 HUB_REPORT_MAX);
        return POSGATE_ERR_TOOBIG;
    }
    json_init_hooks();
    env = cJSON_ParseWithLength(json, len);
    v = cJSON_GetObjectItemCaseSensitive(env, "v");
    id = cJSON_GetObjectItemCaseSensitive(env, "device_id");
    rep = cJSON_GetObjectItemCaseSensitive(env, "report");
    sig = cJSON_GetObjectItemCaseSensitive(env, "signature");
    if (!cJSON_IsNumber(v) || v->valuedouble != 1 || !cJSON_IsString(id) ||
        !hub_lower_hex(id->valuestring, DEVICE_ID_HEX_LEN) || !cJSON_IsString(rep) ||
        !cJSON_IsString(sig)) {
        snprintf(errmsg, errcap,
                 "expected a status report {\"v\": 1, \"device_id\": 32 hex, \"report\": string, "
                 "\"signature\": hex}");
        goto out;
    }
    if (crypto_unhex(sig->valuestring, strlen(sig->valuestring), &sb) != POSGATE_OK) {
        snprintf(errmsg, errcap, "signature: expected hex DER of at most %d bytes",
                 HUB_REPORT_SIG_MAX);
        goto out;
    }
    in = cJSON_Parse(rep->valuestring);
    iid = cJSON_GetObjectItemCaseSensitive(in, "device_id");
    at = cJSON_GetObjectItemCaseSensitive(in, "reported_at_us");
    if (!cJSON_IsObject(in) || !cJSON_IsString(iid) ||
        strcmp(iid->valuestring, id->valuestring) != 0 || !cJSON_IsNumber(at) ||
        at->valuedouble < 1 || at->valuedouble > 9007199254740991.0) {
        snprintf(errmsg, errcap,
                 "report: expected an object with the envelope's device_id and reported_at_us "
                 "(microseconds)");
        goto out;
    }
    r = calloc(1, sizeof(*r));
    if (r == NULL || (r->report = strdup(rep->valuestring)) == NULL) {
        err = POSGATE_ERR_NOMEM;
        goto out;
    }
    memcpy(r->device_id, id->valuestring, DEVICE_ID_HEX_LEN + 1);
    r->report_len = strlen(r->report);
    r->reported_at_us = (int64_t)at->valuedouble;
    memcpy(r->sig, sb.data, sb.len);
    r->sig_len = sb.len;
    *out = r;
    r = NULL;
    err = POSGATE_OK;
out:
    hub_report_free(r);
    cJSON_Delete(env);
    cJSON_Delete(in);
    buf_free(&sb);
    return err;
}

/* ---- posgate-hub devices ---- */

struct listing {
    int json;
    size_t n;
    int64_t now;
    cJSON *arr;
};

static double
num(const cJSON *o, const char *name, double dflt)
{
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, name);

    return cJSON_IsNumber(x) ? x->valuedouble : dflt;
}

static const char *
str(const cJSON *o, const char *name)
{
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, name);

    return cJSON_IsString(x) ? x->valuestring : "-";
}

/* One line: the figures a field operator scans for, then each list. */
static void
print_text(const char *id, const cJSON *rep, int64_t received_at)
{
    const cJSON *st = cJSON_GetObjectItemCaseSensitive(rep, "status");
    const cJSON *au = cJSON_GetObjectItemCaseSensitive(st, "audit");
    const cJSON *sy = cJSON_GetObjectItemCaseSensitive(rep, "sync");
    const cJSON *co = cJSON_GetObjectItemCaseSensitive(rep, "clock_offset_s");
    const cJSON *lists = cJSON_GetObjectItemCaseSensitive(st, "lists"), *l;
    const cJSON *exp = cJSON_GetObjectItemCaseSensitive(st, "metadata_expired");
    const cJSON *age = cJSON_GetObjectItemCaseSensitive(au, "oldest_unsent_age_s");

    printf("%s software %s feed %.0f expired %s list_key %s key_filter %s unsent %.0f "
           "oldest_unsent_age_s %s%.0f clock_offset_s %s%.0f sync %s/%s received_at %lld\n",
           id, str(rep, "software_version"), num(st, "feed_version", 0),
           cJSON_IsTrue(exp) ? "yes" : "no", str(st, "list_key"), str(st, "key_filter"),
           num(au, "unsent", 0), cJSON_IsNumber(age) ? "" : "null/",
           num(au, "oldest_unsent_age_s", 0), cJSON_IsNumber(co) ? "" : "null/",
           cJSON_IsNumber(co) ? co->valuedouble : 0, str(sy, "source"), str(sy, "result"),
           (long long)received_at);
    cJSON_ArrayForEach(l, lists)
    {
        printf("  list %s seq %.0f digest %s data_age_s %.0f stale %s\n", str(l, "id"),
               num(l, "seq", 0), str(l, "digest"), num(l, "data_age_s", 0),
               cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(l, "stale")) ? "yes" : "no");
    }
}

static enum posgate_err
device_row(void *ctx, const char *id, const char *report, size_t len, int64_t reported_at_us,
           int64_t received_at)
{
    struct listing *ls = ctx;
    cJSON *rep = cJSON_ParseWithLength(report, len), *o;

    (void)reported_at_us;
    ls->n++;
    if (rep == NULL) {
        return POSGATE_ERR_NOMEM; /* it was parsed before it was stored */
    }
    if (!ls->json) {
        print_text(id, rep, received_at);
        cJSON_Delete(rep);
        return POSGATE_OK;
    }
    o = cJSON_CreateObject();
    if (o == NULL) {
        cJSON_Delete(rep);
        return POSGATE_ERR_NOMEM;
    }
    cJSON_AddItemToArray(ls->arr, o);
    cJSON_AddStringToObject(o, "device_id", id);
    cJSON_AddNumberToObject(o, "received_at", (double)received_at);
    cJSON_AddItemToObject(o, "report", rep);
    return POSGATE_OK;
}

int
hub_devices_main(int argc, char **argv)
{
    const char *dbpath = NULL;
    struct hub_db *db = NULL;
    struct listing ls = {0, 0, 0, NULL};
    char msg[512] = "", *s;
    enum posgate_err err;
    int rc = 5;

    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            fputs(usage_devices, stdout);
            return 0;
        }
        if (strcmp(argv[i], "--json") == 0) {
            ls.json = 1;
        } else if (i + 1 < argc && strcmp(argv[i], "--db") == 0) {
            dbpath = argv[++i];
        } else {
            fprintf(stderr, "posgate-hub devices: unexpected argument \"%s\"\n\n%s", argv[i],
                    usage_devices);
            return 2;
        }
    }
    if (dbpath == NULL) {
        fprintf(stderr, "posgate-hub devices: expected --db HUB.db\n\n%s", usage_devices);
        return 2;
    }
    json_init_hooks();
    ls.arr = cJSON_CreateArray();
    if (ls.arr == NULL || hub_db_open_read(dbpath, &db, msg, sizeof(msg)) != POSGATE_OK) {
        fprintf(stderr, "posgate-hub devices: %s\n", msg[0] != 0 ? msg : "out of memory");
        goto out;
    }
    err = hub_db_reports(db, device_row, &ls);
    if (err != POSGATE_OK) {
        fprintf(stderr, "posgate-hub devices: %s\n", posgate_strerror(err));
        goto out;
    }
    if (ls.json) {
        s = cJSON_PrintUnformatted(ls.arr);
        if (s == NULL) {
            goto out;
        }
        printf("%s\n", s);
        cJSON_free(s);
    }
    rc = fflush(stdout) == 0 ? 0 : 5;
out:
    cJSON_Delete(ls.arr);
    hub_db_close(db);
    return rc;
}
