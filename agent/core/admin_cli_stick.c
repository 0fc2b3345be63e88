/* SPDX-License-Identifier: Apache-2.0 */
/*
 * `posgate field-sync STICK` (posgate_admin.h, agent/audit/field_sync_layout.h): the USB round
 * trip of a kiosk without a network. The feed comes in through update_run, exactly as `posgate
 * import` (the bundle is chosen here); the audit trail goes out as the uploader's signed batches;
 * the collector's answer comes back as an acknowledgement file on the stick. This file owns the
 * stick's layout and the ack codec; the command line prints what happened.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>

#include "api_internal.h"
#include "bundle.h"
#include "carrier.h"
#include "device_report.h"
#include "field_sync_layout.h"
#include "json_canon.h"
#include "plat_clock.h"
#include "plat_file.h"
#include "posgate_admin.h"

#define STICK_NAMES_MAX 4096            /* files looked at in one folder */
#define TIMESTAMP_MAX   (1024u * 1024u) /* timestamp.json read to choose a bundle */
#define ACK_MAX         4096u

static int
has_suffix(const char *s, const char *suf)
{
    size_t n = strlen(s), k = strlen(suf);

    return n > k && strcmp(s + n - k, suf) == 0;
}

static int
is_bundle(const char *name)
{
    return has_suffix(name, ".bundle");
}

static int
is_batch(const char *name)
{
    return strncmp(name, "batch-", 6) == 0 && has_suffix(name, ".json");
}

/* The version a bundle's timestamp.json claims (untrusted: it only picks which bundle to
 * verify); 0 when it cannot be read. The signed part is canonical JSON with its keys sorted,
 * so its own "version" is the last one in the text. */
static long long
bundle_claimed_version(const char *path)
{
    struct carrier *meta = NULL;
    struct buf b = BUF_INIT(TIMESTAMP_MAX);
    char msg[CARRIER_ERRMSG_MAX];
    const char *p = NULL, *q;
    long long v = 0;

    if (carrier_bundle_new(path, "metadata/", &meta, msg, sizeof(msg)) == POSGATE_OK &&
        carrier_fetch_buf(meta, "timestamp.json", TIMESTAMP_MAX, &b) == POSGATE_OK &&
        buf_append(&b, "", 1) == POSGATE_OK) {
        for (q = (const char *)b.data; (q = strstr(q, "\"version\":")) != NULL; q++) {
            p = q;
        }
        if (p != NULL) {
            v = strtoll(p + strlen("\"version\":"), NULL, 10);
        }
    }
    carrier_free(meta);
    buf_free(&b);
    return v < 0 ? 0 : v;
}

enum posgate_err
posgate_cli_stick_bundle(const char *stick, char best[POSGATE_CLI_PATH_MAX])
{
    struct plat_names ns;
    char path[POSGATE_CLI_PATH_MAX];
    long long v, best_v = -1;
    enum posgate_err err;
    struct stat st;

    best[0] = 0;
    err = plat_dir_names(stick, is_bundle, STICK_NAMES_MAX, &ns);
    if (err != POSGATE_OK) {
        return err;
    }
    for (size_t i = 0; i < ns.n; i++) {
        if (plat_path_join(path, sizeof(path), stick, ns.v[i]) != POSGATE_OK ||
            stat(path, &st) != 0 || !S_ISREG(st.st_mode)) {
            continue;
        }
        v = bundle_claimed_version(path);
        if (v >= best_v) { /* a tie goes to the later name */
            best_v = v;
            memcpy(best, path, sizeof(path));
        }
    }
    plat_names_free(&ns);
    return POSGATE_OK;
}

/* Parses an ack file for device_id: OK with *acked, NOTFOUND when there is none, REJECTED
 * (msg says why) when it is not an ack of this device. */
static enum posgate_err
read_ack(const char *path, const char *device_id, uint64_t *acked, char *msg, size_t cap)
{
    struct buf b = BUF_INIT(ACK_MAX);
    cJSON *root = NULL;
    const cJSON *v, *id, *seq;
    enum posgate_err err;

    err = plat_read_file(path, &b);
    if (err != POSGATE_OK) {
        if (err != POSGATE_ERR_NOTFOUND) {
            snprintf(msg, cap, FIELD_SYNC_ACK ": %s", posgate_strerror(err));
        }
        goto out;
    }
    json_init_hooks();
    root = cJSON_ParseWithLength((const char *)b.data, b.len);
    v = cJSON_GetObjectItemCaseSensitive(root, "v");
    id = cJSON_GetObjectItemCaseSensitive(root, "device_id");
    seq = cJSON_GetObjectItemCaseSensitive(root, "acked_seq");
    if (!cJSON_IsNumber(v) || v->valuedouble != 1 || !cJSON_IsString(id) || !cJSON_IsNumber(seq) ||
        seq->valuedouble < 0 || seq->valuedouble > 9007199254740992.0) {
        snprintf(msg, cap, FIELD_SYNC_ACK ": expected {\"v\":1, \"device_id\", \"acked_seq\"}");
        err = POSGATE_ERR_REJECTED;
        goto out;
    }
    if (strcmp(id->valuestring, device_id) != 0) {
        snprintf(msg, cap, FIELD_SYNC_ACK ": acknowledges device %.40s, this kiosk is %.32s",
                 id->valuestring, device_id);
        err = POSGATE_ERR_REJECTED;
        goto out;
    }
    *acked = (uint64_t)seq->valuedouble;
out:
    cJSON_Delete(root);
    buf_free(&b);
    return err;
}

/* Step 2: the collector's acknowledgement, passed to the queue when it is this kiosk's and
 * moves it forward (x->acked then says how far). */
static void
take_ack(struct posgate *pg, const char *id, const struct audit_stats *st,
         struct posgate_cli_exchange *x)
{
    char path[POSGATE_CLI_PATH_MAX];
    uint64_t acked = 0;
    enum posgate_err err;

    err = plat_path_join(path, sizeof(path), x->dir, FIELD_SYNC_ACK);
    if (err == POSGATE_OK) {
        err = read_ack(path, id, &acked, x->ack_msg, sizeof(x->ack_msg));
    }
    if (err == POSGATE_OK && acked > st->head_seq) {
        snprintf(x->ack_msg, sizeof(x->ack_msg),
                 FIELD_SYNC_ACK ": acknowledges seq %llu, past this kiosk's last seq %llu: "
                                "not the collector of this trail",
                 (unsigned long long)acked, (unsigned long long)st->head_seq);
        err = POSGATE_ERR_REJECTED;
    }
    if (err == POSGATE_OK && acked > st->acked_seq) {
        err = audit_ack(pg->audit, acked);
        if (err != POSGATE_OK) {
            snprintf(x->ack_msg, sizeof(x->ack_msg), "audit_ack(%llu): %s",
                     (unsigned long long)acked, posgate_strerror(err));
        } else {
            x->acked = acked;
        }
    }
    x->ack = err;
}

/* Step 3: every event not acknowledged, as the uploader would post it, up to head; the names of
 * the batch files already there that were rewritten are taken out of old (set to NULL). */
static enum posgate_err
write_batches(struct posgate *pg, uint64_t head, struct plat_names *old,
              struct posgate_cli_exchange *x)
{
    struct buf batch = BUF_INIT(UINT32_MAX);
    struct audit_batch_info info;
    char path[POSGATE_CLI_PATH_MAX], name[80];
    uint64_t since = x->acked;
    enum posgate_err err = POSGATE_OK;

    while (err == POSGATE_OK && since < head) {
        err = audit_batch_json(pg->audit, since, FIELD_SYNC_BATCH_MAX, &batch, &info);
        if (err != POSGATE_OK || info.n_events == 0) {
            break;
        }
        snprintf(name, sizeof(name), "batch-%020llu-%020llu.json",
                 (unsigned long long)info.first_seq, (unsigned long long)info.last_seq);
        err = plat_path_join(path, sizeof(path), x->dir, name);
        if (err == POSGATE_OK) {
            err = plat_write_atomic(path, batch.data, batch.len, 0644);
        }
        for (size_t i = 0; i < old->n; i++) {
            if (old->v[i] != NULL && strcmp(old->v[i], name) == 0) {
                free(old->v[i]); /* rewritten: not stale */
                old->v[i] = NULL;
            }
        }
        x->first_seq = x->first_seq == 0 ? info.first_seq : x->first_seq;
        x->last_seq = info.last_seq;
        x->files++;
        since = info.last_seq;
    }
    buf_free(&batch);
    return err;
}

void
posgate_cli_stick_exchange(struct posgate *pg, const char *stick, struct posgate_cli_exchange *x)
{
    const char *id = device_key_id(pg->dk);
    char path[POSGATE_CLI_PATH_MAX];
    struct audit_stats st;
    struct plat_names old = {NULL, 0};
    enum posgate_err err;

    memset(x, 0, sizeof(*x));
    err = plat_path_join(path, sizeof(path), stick, FIELD_SYNC_DIR);
    if (err == POSGATE_OK) {
        err = plat_path_join(x->dir, sizeof(x->dir), path, id);
    }
    if (err == POSGATE_OK) {
        err = plat_mkdir_p(x->dir, 0755);
    }
    if (err == POSGATE_OK) {
        err = audit_stats(pg->audit, &st);
    }
    if (err != POSGATE_OK) {
        x->setup = err;
        return;
    }
    x->acked_was = x->acked = st.acked_seq;
    take_ack(pg, id, &st, x);
    err = plat_dir_names(x->dir, is_batch, STICK_NAMES_MAX, &old);
    if (err == POSGATE_ERR_NOTFOUND) {
        err = POSGATE_OK; /* made above: only a race empties it */
    }
    if (err == POSGATE_OK) {
        err = write_batches(pg, st.head_seq, &old, x);
    }
    if (err != POSGATE_OK) {
        x->batches = err;
        plat_names_free(&old);
        return;
    }
    /* batches the collector holds (or that an older cut of the trail left) go last, so a
     * stick pulled out midway still holds every unacknowledged event */
    for (size_t i = 0; i < old.n; i++) {
        if (old.v[i] != NULL &&
            plat_path_join(path, sizeof(path), x->dir, old.v[i]) == POSGATE_OK &&
            plat_unlink(path) == POSGATE_OK) {
            x->removed++;
        }
    }
    x->sync_failed = plat_fsync_dir(x->dir) != POSGATE_OK;
    plat_names_free(&old);
}

enum posgate_err
posgate_cli_stick_report(struct posgate *pg, const char *stick, const char *result,
                         char path[POSGATE_CLI_PATH_MAX])
{
    struct device_report_sync sync = {"bundle", result, plat_wall_s()};
    struct buf rep = BUF_INIT(DEVICE_REPORT_MAX);
    char dir[POSGATE_CLI_PATH_MAX];
    enum posgate_err err;

    err = plat_path_join(path, POSGATE_CLI_PATH_MAX, stick, FIELD_SYNC_DIR);
    if (err == POSGATE_OK) {
        err = plat_path_join(dir, sizeof(dir), path, device_key_id(pg->dk));
    }
    if (err == POSGATE_OK) {
        err = plat_path_join(path, POSGATE_CLI_PATH_MAX, dir, FIELD_SYNC_STATUS);
    }
    if (err == POSGATE_OK) {
        err = device_report_json(pg, result[0] != 0 ? &sync : NULL, NULL, plat_wall_us(), &rep);
    }
    if (err == POSGATE_OK) {
        err = plat_write_atomic(path, rep.data, rep.len, 0644);
    }
    buf_free(&rep);
    return err;
}
