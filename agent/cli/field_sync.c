/* SPDX-License-Identifier: Apache-2.0 */
/*
 * `posgate field-sync STICK` (field_sync.h): the USB round trip of a kiosk without a network,
 * as one command. The feed comes in through update_run, exactly as `posgate import`; the audit
 * trail goes out as the uploader's signed batches; the collector's answer comes back as an
 * acknowledgement file on the stick. This file owns the stick's layout and the ack codec.
 */
#define _POSIX_C_SOURCE 200809L
#include "field_sync.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>

#include "api_internal.h"
#include "bundle.h"
#include "carrier.h"
#include "device_report.h"
#include "json_canon.h"
#include "plat_clock.h"
#include "plat_file.h"
#include "update.h"

#define EXIT_OK       0
#define EXIT_USAGE    2
#define EXIT_REJECTED 4
#define EXIT_IO       5

#define STICK_PATH_MAX  4096
#define STICK_NAMES_MAX 4096            /* files looked at in one folder */
#define TIMESTAMP_MAX   (1024u * 1024u) /* timestamp.json read to choose a bundle */
#define ACK_MAX         4096u

static const char usage_field_sync[] =
    "usage: posgate [--data-dir DIR] field-sync STICK [--accept-expired]\n"
    "\n"
    "The field operator's visit to a kiosk without a network, with a USB stick mounted at STICK:\n"
    "  1. imports the newest feed bundle (STICK/*.bundle), verified as `posgate import` does;\n"
    "  2. reads the collector's acknowledgement (STICK/posgate/DEVICE_ID/ack.json, written by\n"
    "     `posgate-hub ingest`) and forgets what the collector holds;\n"
    "  3. writes every audit event not yet acknowledged as signed batches into\n"
    "     STICK/posgate/DEVICE_ID/, exactly as posgated would upload them.\n"
    "A lost stick loses nothing: the next stick gets everything not acknowledged.\n"
    "Exit 0 when all three succeeded, 4 when the bundle or the ack was refused, 5 on I/O.\n";

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

/* Step 1. *rc is raised to the exit code of a refusal; result (for the status report) gets
 * the outcome, "" when the stick holds no bundle. */
static void
import_newest(const char *data_dir, const char *stick, int accept_expired, int *rc, char *result,
              size_t cap)
{
    struct plat_names ns;
    struct update_options o;
    struct update_result res;
    struct carrier *meta = NULL, *targets = NULL;
    char path[STICK_PATH_MAX], best[STICK_PATH_MAX] = "", msg[2048] = "";
    long long v, best_v = -1;
    enum posgate_err err;
    struct stat st;

    err = plat_dir_names(stick, is_bundle, STICK_NAMES_MAX, &ns);
    if (err != POSGATE_OK) {
        fprintf(stderr, "posgate field-sync: %s: cannot list: %s\n", stick, posgate_strerror(err));
        *rc = EXIT_IO;
        return;
    }
    for (size_t i = 0; i < ns.n; i++) {
        if (plat_path_join(path, sizeof(path), stick, ns.v[i]) != POSGATE_OK ||
            stat(path, &st) != 0 || !S_ISREG(st.st_mode)) {
            continue;
        }
        v = bundle_claimed_version(path);
        if (v >= best_v) { /* a tie goes to the later name */
            best_v = v;
            memcpy(best, path, sizeof(best));
        }
    }
    plat_names_free(&ns);
    result[0] = 0;
    if (best[0] == 0) {
        printf("feed: no bundle on the stick, nothing imported\n");
        return;
    }
    err = carrier_bundle_new(best, "metadata/", &meta, msg, sizeof(msg));
    if (err == POSGATE_OK) {
        err = carrier_bundle_new(best, "targets/", &targets, msg, sizeof(msg));
    }
    if (err == POSGATE_OK) {
        memset(&o, 0, sizeof(o));
        o.data_dir = data_dir;
        o.metadata = meta;
        o.targets = targets;
        o.accept_expired = accept_expired;
        err = update_run(&o, &res, msg, sizeof(msg));
    }
    if (err == POSGATE_ERR_ROLLBACK) {
        /* an old stick: the kiosk already has something newer, which is not a failure */
        printf("feed: %s is older than the installed feed, not imported: %s\n", best, msg);
        snprintf(result, cap, "older");
    } else if (err != POSGATE_OK) {
        fprintf(stderr, "posgate field-sync: %s: refused, nothing changed: %s\n", best,
                msg[0] != 0 ? msg : posgate_strerror(err));
        if (*rc == EXIT_OK) {
            *rc = err == POSGATE_ERR_IO || err == POSGATE_ERR_NOMEM ? EXIT_IO : EXIT_REJECTED;
        }
        snprintf(result, cap, "refused: %.400s", msg[0] != 0 ? msg : posgate_strerror(err));
    } else if (res.feed_version == res.previous_version && !res.changed) {
        printf("feed: version %lld from %s is installed; no list changed\n",
               (long long)res.feed_version, best);
        snprintf(result, cap, "unchanged");
    } else {
        printf("feed: installed version %lld (was %lld) from %s\n", (long long)res.feed_version,
               (long long)res.previous_version, best);
        snprintf(result, cap, "ok");
    }
    carrier_free(meta);
    carrier_free(targets);
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

/* Steps 2 and 3 on the open kiosk. */
static void
exchange_audit(struct posgate *pg, const char *stick, int *rc)
{
    const char *id = device_key_id(pg->dk);
    char dir[STICK_PATH_MAX], path[STICK_PATH_MAX], name[80], msg[1024] = "";
    struct audit_stats st;
    struct audit_batch_info info;
    struct buf batch = BUF_INIT(UINT32_MAX);
    struct plat_names old = {NULL, 0};
    uint64_t acked = 0, since, first = 0, last = 0;
    size_t files = 0, removed = 0;
    enum posgate_err err;
    int keep;

    err = plat_path_join(path, sizeof(path), stick, FIELD_SYNC_DIR);
    if (err == POSGATE_OK) {
        err = plat_path_join(dir, sizeof(dir), path, id);
    }
    if (err == POSGATE_OK) {
        err = plat_mkdir_p(dir, 0755);
    }
    if (err == POSGATE_OK) {
        err = audit_stats(pg->audit, &st);
    }
    if (err != POSGATE_OK) {
        fprintf(stderr, "posgate field-sync: %s: %s\n", stick, posgate_strerror(err));
        *rc = EXIT_IO;
        goto out;
    }
    /* step 2: the collector's acknowledgement */
    err = plat_path_join(path, sizeof(path), dir, FIELD_SYNC_ACK);
    if (err == POSGATE_OK) {
        err = read_ack(path, id, &acked, msg, sizeof(msg));
    }
    if (err == POSGATE_OK && acked > st.head_seq) {
        snprintf(msg, sizeof(msg),
                 FIELD_SYNC_ACK ": acknowledges seq %llu, past this kiosk's last seq %llu: "
                                "not the collector of this trail",
                 (unsigned long long)acked, (unsigned long long)st.head_seq);
        err = POSGATE_ERR_REJECTED;
    }
    if (err == POSGATE_OK && acked > st.acked_seq) {
        err = audit_ack(pg->audit, acked);
        if (err != POSGATE_OK) {
            snprintf(msg, sizeof(msg), "audit_ack(%llu): %s", (unsigned long long)acked,
                     posgate_strerror(err));
        } else {
            printf("audit: the collector holds every event up to seq %llu (was %llu)\n",
                   (unsigned long long)acked, (unsigned long long)st.acked_seq);
            st.acked_seq = acked;
        }
    }
    if (err != POSGATE_OK && err != POSGATE_ERR_NOTFOUND) {
        fprintf(stderr, "posgate field-sync: acknowledgement ignored: %s\n", msg);
        *rc = err == POSGATE_ERR_REJECTED ? EXIT_REJECTED : EXIT_IO;
    }
    /* step 3: every event not acknowledged, as the uploader would post it */
    err = plat_dir_names(dir, is_batch, STICK_NAMES_MAX, &old);
    if (err == POSGATE_ERR_NOTFOUND) {
        err = POSGATE_OK; /* made above: only a race empties it */
    }
    since = st.acked_seq;
    while (err == POSGATE_OK && since < st.head_seq) {
        err = audit_batch_json(pg->audit, since, FIELD_SYNC_BATCH_MAX, &batch, &info);
        if (err != POSGATE_OK || info.n_events == 0) {
            break;
        }
        snprintf(name, sizeof(name), "batch-%020llu-%020llu.json",
                 (unsigned long long)info.first_seq, (unsigned long long)info.last_seq);
        err = plat_path_join(path, sizeof(path), dir, name);
        if (err == POSGATE_OK) {
            err = plat_write_atomic(path, batch.data, batch.len, 0644);
        }
        for (size_t i = 0; i < old.n; i++) {
            if (old.v[i] != NULL && strcmp(old.v[i], name) == 0) {
                free(old.v[i]); /* rewritten: not stale */
                old.v[i] = NULL;
            }
        }
        first = first == 0 ? info.first_seq : first;
        last = info.last_seq;
        files++;
        since = info.last_seq;
    }
    if (err != POSGATE_OK) {
        fprintf(stderr, "posgate field-sync: writing audit batches into %s: %s\n", dir,
                posgate_strerror(err));
        *rc = EXIT_IO;
        goto out;
    }
    /* batches the collector holds (or that an older cut of the trail left) go last, so a
     * stick pulled out midway still holds every unacknowledged event */
    for (size_t i = 0; i < old.n; i++) {
        keep = old.v[i] == NULL;
        if (!keep && plat_path_join(path, sizeof(path), dir, old.v[i]) == POSGATE_OK &&
            plat_unlink(path) == POSGATE_OK) {
            removed++;
        }
    }
    if (plat_fsync_dir(dir) != POSGATE_OK) {
        *rc = EXIT_IO;
    }
    if (files == 0) {
        printf("audit: nothing to deliver (acknowledged up to seq %llu)\n",
               (unsigned long long)st.acked_seq);
    } else {
        printf("audit: %zu batch(es), seqs %llu..%llu, written to %s\n", files,
               (unsigned long long)first, (unsigned long long)last, dir);
    }
    if (removed > 0) {
        printf("audit: %zu batch file(s) the collector holds removed from the stick\n", removed);
    }
out:
    plat_names_free(&old);
    buf_free(&batch);
}

/* Step 4: the signed status report, after the exchange so that it shows the queue the stick
 * now carries. There is no collector Date on a stick: the clock offset is null. */
static void
write_report(struct posgate *pg, const char *stick, const char *result, int *rc)
{
    struct device_report_sync sync = {"bundle", result, plat_wall_s()};
    struct buf rep = BUF_INIT(DEVICE_REPORT_MAX);
    char path[STICK_PATH_MAX], dir[STICK_PATH_MAX];
    enum posgate_err err;

    err = plat_path_join(path, sizeof(path), stick, FIELD_SYNC_DIR);
    if (err == POSGATE_OK) {
        err = plat_path_join(dir, sizeof(dir), path, device_key_id(pg->dk));
    }
    if (err == POSGATE_OK) {
        err = plat_path_join(path, sizeof(path), dir, FIELD_SYNC_STATUS);
    }
    if (err == POSGATE_OK) {
        err = device_report_json(pg, result[0] != 0 ? &sync : NULL, NULL, plat_wall_us(), &rep);
    }
    if (err == POSGATE_OK) {
        err = plat_write_atomic(path, rep.data, rep.len, 0644);
    }
    if (err != POSGATE_OK) {
        fprintf(stderr, "posgate field-sync: the status report: %s\n", posgate_strerror(err));
        *rc = *rc == EXIT_OK ? EXIT_IO : *rc;
    } else {
        printf("status: report written to %s\n", path);
    }
    buf_free(&rep);
}

int
field_sync_cli_main(const char *data_dir, int argc, char **argv)
{
    const char *stick = NULL;
    int accept_expired = 0, rc = EXIT_OK;
    char result[512];
    struct posgate *pg = NULL;
    struct stat st;
    enum posgate_err err;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            fputs(usage_field_sync, stdout);
            return EXIT_OK;
        } else if (strcmp(argv[i], "--accept-expired") == 0) {
            accept_expired = 1;
        } else if (argv[i][0] == '-' || stick != NULL) {
            fprintf(stderr, "posgate field-sync: unexpected argument \"%s\"\n\n%s", argv[i],
                    usage_field_sync);
            return EXIT_USAGE;
        } else {
            stick = argv[i];
        }
    }
    if (stick == NULL) {
        fprintf(stderr, "posgate field-sync: expected the stick's directory\n\n%s",
                usage_field_sync);
        return EXIT_USAGE;
    }
    if (stat(stick, &st) != 0 || !S_ISDIR(st.st_mode)) {
        fprintf(stderr, "posgate field-sync: %s: expected a directory (the mounted stick)\n",
                stick);
        return EXIT_USAGE;
    }
    import_newest(data_dir, stick, accept_expired, &rc, result, sizeof(result));
    err = posgate_open(data_dir, &pg);
    if (err != POSGATE_OK) {
        fprintf(stderr, "posgate field-sync: %s\n",
                posgate_open_errmsg()[0] != 0 ? posgate_open_errmsg() : posgate_strerror(err));
        return EXIT_IO;
    }
    exchange_audit(pg, stick, &rc);
    write_report(pg, stick, result, &rc);
    posgate_close(pg);
    return rc;
}
