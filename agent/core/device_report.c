/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The device status report's codec and signature (device_report.h): the kiosk's status object
 * wrapped with its identity, time, sync outcome and clock offset, signed by the device key.
 */
#include "device_report.h"

#include <string.h>

#include <cjson/cJSON.h>

#include "api_internal.h"
#include "crypto.h"
#include "json_canon.h"

#ifndef POSGATE_SOFTWARE_VERSION
#define POSGATE_SOFTWARE_VERSION "0.0.0"
#endif

enum posgate_err
device_report_message(const char *device_id, const char *report, size_t len, struct buf *out)
{
    enum posgate_err err;

    buf_reset(out);
    err = buf_append_str(out, DEVICE_REPORT_MAGIC);
    if (err == POSGATE_OK) {
        err = buf_append_str(out, device_id);
    }
    if (err == POSGATE_OK) {
        err = buf_append(out, "\n", 1);
    }
    if (err == POSGATE_OK) {
        err = buf_append(out, report, len);
    }
    return err;
}

/* The report (inside) as text: a string owned by cJSON into *text. */
static enum posgate_err
report_text(struct posgate *pg, const struct device_report_sync *sync,
            const int64_t *clock_offset_s, int64_t now_us, char **text)
{
    char *status = NULL;
    cJSON *root = NULL, *st, *sy;
    enum posgate_err err;

    *text = NULL;
    json_init_hooks();
    err = posgate_status_json(pg, &status);
    if (err != POSGATE_OK) {
        return err;
    }
    st = cJSON_Parse(status);
    posgate_free(status);
    root = cJSON_CreateObject();
    if (st == NULL || root == NULL) {
        cJSON_Delete(st);
        cJSON_Delete(root);
        return POSGATE_ERR_NOMEM;
    }
    cJSON_AddNumberToObject(root, "v", 1);
    cJSON_AddStringToObject(root, "device_id", device_key_id(pg->dk));
    cJSON_AddNumberToObject(root, "reported_at_us", (double)now_us);
    cJSON_AddStringToObject(root, "software_version", POSGATE_SOFTWARE_VERSION);
    cJSON_AddItemToObject(root, "status", st);
    if (sync != NULL && sync->source != NULL) {
        sy = cJSON_AddObjectToObject(root, "sync");
        if (sy != NULL) {
            cJSON_AddStringToObject(sy, "source", sync->source);
            cJSON_AddStringToObject(sy, "result", sync->result != NULL ? sync->result : "");
            cJSON_AddNumberToObject(sy, "at", (double)sync->at);
        }
    } else {
        cJSON_AddNullToObject(root, "sync");
    }
    if (clock_offset_s != NULL) {
        cJSON_AddNumberToObject(root, "clock_offset_s", (double)*clock_offset_s);
    } else {
        cJSON_AddNullToObject(root, "clock_offset_s");
    }
    *text = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    return *text != NULL ? POSGATE_OK : POSGATE_ERR_NOMEM;
}

enum posgate_err
device_report_json(struct posgate *pg, const struct device_report_sync *sync,
                   const int64_t *clock_offset_s, int64_t now_us, struct buf *out)
{
    struct buf msg = BUF_INIT(DEVICE_REPORT_MAX), sig = BUF_INIT(512);
    char *text = NULL, *env = NULL, hex[2 * 512 + 1];
    cJSON *root = NULL;
    enum posgate_err err;

    if (pg == NULL || out == NULL) {
        return POSGATE_ERR_INVALID;
    }
    err = report_text(pg, sync, clock_offset_s, now_us, &text);
    if (err == POSGATE_OK) {
        err = device_report_message(device_key_id(pg->dk), text, strlen(text), &msg);
    }
    if (err == POSGATE_OK) {
        err = device_key_sign(pg->dk, msg.data, msg.len, &sig);
    }
    if (err == POSGATE_OK && sig.len > 512) {
        err = POSGATE_ERR_TOOBIG;
    }
    if (err != POSGATE_OK) {
        goto out;
    }
    crypto_hex(sig.data, sig.len, hex);
    root = cJSON_CreateObject();
    if (root == NULL) {
        err = POSGATE_ERR_NOMEM;
        goto out;
    }
    cJSON_AddNumberToObject(root, "v", 1);
    cJSON_AddStringToObject(root, "device_id", device_key_id(pg->dk));
    cJSON_AddStringToObject(root, "report", text);
    cJSON_AddStringToObject(root, "signature", hex);
    env = cJSON_PrintUnformatted(root);
    if (env == NULL) {
        err = POSGATE_ERR_NOMEM;
        goto out;
    }
    buf_reset(out);
    err = buf_append_str(out, env);
out:
    cJSON_free(env);
    cJSON_free(text);
    cJSON_Delete(root);
    buf_free(&msg);
    buf_free(&sig);
    return err;
}
