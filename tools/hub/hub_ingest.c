/* SPDX-License-Identifier: Apache-2.0 */
/*
 * `posgate-hub ingest` (hub_ingest.h): reads the kiosks' folders on a field operator's stick,
 * hands each batch to the same judge as the HTTP collector and writes the acknowledgement the
 * kiosk reads on the next visit.
 */
#define _POSIX_C_SOURCE 200809L
#include "hub_ingest.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "field_sync_layout.h"
#include "hub_db.h"
#include "hub_text.h"
#include "plat_clock.h"
#include "plat_file.h"

#define INGEST_PATH_MAX  4096
#define INGEST_NAMES_MAX 4096

static const char usage_ingest[] =
    "usage: posgate-hub ingest STICK --db HUB.db|postgresql://... [--json]\n"
    "\n"
    "Takes the audit batches that `posgate field-sync` wrote onto a USB stick\n"
    "(STICK/posgate/DEVICE_ID/batch-*.json) exactly as uploads to POST /v1/audit: enrolled\n"
    "devices only, signatures and chains checked, each (device, seq) stored once, so a stick\n"
    "ingested twice changes nothing. Then writes STICK/posgate/DEVICE_ID/ack.json with the\n"
    "highest seq up to which the collector holds every event of that device; the kiosk reads it\n"
    "on the next visit and stops carrying those events.\n"
    "Exit 0 when every batch was taken, 4 when one was refused, 5 on I/O or database errors.\n"
    "Its status report (status.json) is taken as POST /v1/device-status would take it.\n"
    "  --json  one line per device: {\"device_id\", \"batches\", \"stored\", \"duplicates\",\n"
    "          \"acked_seq\", \"held_seq\", \"status_report\", \"error\"}\n";

static int
is_device_dir(const char *s)
{
    return hub_lower_hex(s, DEVICE_ID_HEX_LEN);
}

static int
is_batch_file(const char *s)
{
    size_t n = strlen(s);

    return strncmp(s, "batch-", 6) == 0 && n > 11 && strcmp(s + n - 5, ".json") == 0;
}

struct device_run {
    size_t batches, stored, duplicates;
    uint64_t acked_seq, held_seq;
    int acked;       /* the collector knows the device: an ack was written */
    int report;      /* status.json: -1 none, 0 kept (older than the latest), 1 now the latest */
    char error[600]; /* the first refusal, "" when none */
};

/* A device_run's error as a JSON string on stdout (hub_json_str: at most 6 bytes for each of
 * its 600); "" should memory for it run out. */
static void
put_json_str(const char *s)
{
    struct buf b = BUF_INIT(4096);

    if (hub_json_str(&b, s) == POSGATE_OK) {
        fwrite(b.data, 1, b.len, stdout);
    } else {
        fputs("\"\"", stdout);
    }
    buf_free(&b);
}

/* The stick's status.json of the device, if any, as POST /v1/device-status would take it. */
static int
ingest_report(struct hub_db *db, const char *dir, const char *id, struct buf *json,
              struct device_run *r)
{
    struct hub_report_result res;
    char path[INGEST_PATH_MAX];
    enum posgate_err err;

    err = plat_path_join(path, sizeof(path), dir, FIELD_SYNC_STATUS);
    if (err == POSGATE_OK) {
        err = plat_read_file(path, json);
    }
    if (err == POSGATE_ERR_NOTFOUND) {
        return 0;
    }
    if (err == POSGATE_OK) {
        err = hub_db_report(db, json->data, json->len, plat_wall_s(), &res);
    }
    if (err == POSGATE_OK && strcmp(res.device_id, id) != 0) {
        snprintf(r->error, sizeof(r->error), FIELD_SYNC_STATUS ": a report of device %s",
                 res.device_id);
        return 4;
    }
    if (err != POSGATE_OK) {
        snprintf(r->error, sizeof(r->error), FIELD_SYNC_STATUS ": %s: %.400s",
                 posgate_strerror(err), res.error[0] != 0 ? res.error : "refused");
        return err == POSGATE_ERR_RETRY || err == POSGATE_ERR_IO || err == POSGATE_ERR_NOMEM ? 5
                                                                                             : 4;
    }
    r->report = res.latest ? 1 : 0;
    return 0;
}

/* Judges every batch file of one device folder in seq order, then writes its ack. The first
 * refused batch stops the device: what follows it would only be judged against a gap. */
static int
ingest_device(struct hub_db *db, const char *dir, const char *id, struct device_run *r)
{
    struct plat_names ns;
    struct buf json = BUF_INIT(HUB_BATCH_JSON_MAX), ack = BUF_INIT(1024);
    struct hub_ingest res;
    struct hub_device_state ds;
    char path[INGEST_PATH_MAX];
    enum posgate_err err;
    int rc = 0;

    memset(r, 0, sizeof(*r));
    r->report = -1;
    err = plat_dir_names(dir, is_batch_file, INGEST_NAMES_MAX, &ns);
    if (err != POSGATE_OK) {
        snprintf(r->error, sizeof(r->error), "cannot list the folder: %s", posgate_strerror(err));
        return 5;
    }
    for (size_t i = 0; i < ns.n && rc == 0; i++) {
        err = plat_path_join(path, sizeof(path), dir, ns.v[i]);
        if (err == POSGATE_OK) {
            err = plat_read_file(path, &json);
        }
        if (err != POSGATE_OK) {
            snprintf(r->error, sizeof(r->error), "%.200s: %s", ns.v[i], posgate_strerror(err));
            rc = 5;
            break;
        }
        memset(&res, 0, sizeof(res));
        err = hub_db_ingest_json(db, json.data, json.len, NULL, plat_wall_s(), &res);
        if (err == POSGATE_OK && strcmp(res.device_id, id) != 0) {
            /* taken (it is signed by its own device), but this folder is not its own */
            snprintf(r->error, sizeof(r->error),
                     "%.200s: a batch of device %.32s in the folder of %.32s", ns.v[i],
                     res.device_id, id);
            rc = 4;
        } else if (err == POSGATE_OK) {
            r->batches++;
            r->stored += res.stored;
            r->duplicates += res.duplicates;
        } else {
            snprintf(r->error, sizeof(r->error), "%.200s: %s: %.360s", ns.v[i],
                     posgate_strerror(err), res.error[0] != 0 ? res.error : "refused");
            rc = err == POSGATE_ERR_RETRY || err == POSGATE_ERR_IO || err == POSGATE_ERR_NOMEM ? 5
                                                                                               : 4;
        }
    }
    plat_names_free(&ns);
    r->report = -1;
    if (rc == 0) {
        rc = ingest_report(db, dir, id, &json, r);
    }
    buf_free(&json);
    /* the ack says what the collector holds, whatever this stick brought */
    err = hub_db_device(db, id, &ds);
    if (err == POSGATE_OK) {
        err = buf_printf(&ack,
                         "{\"acked_seq\":%llu,\"device_id\":\"%s\",\"held_seq\":%llu,"
                         "\"ingested_at\":%lld,\"v\":1}\n",
                         (unsigned long long)ds.last_seq, id, (unsigned long long)ds.held_seq,
                         (long long)plat_wall_s());
        if (err == POSGATE_OK) {
            err = plat_path_join(path, sizeof(path), dir, FIELD_SYNC_ACK);
        }
        if (err == POSGATE_OK) {
            err = plat_write_atomic(path, ack.data, ack.len, 0644);
        }
        if (err != POSGATE_OK) {
            snprintf(r->error, sizeof(r->error), "writing the ack: %s", posgate_strerror(err));
            rc = 5;
        } else {
            r->acked = 1;
            r->acked_seq = ds.last_seq;
            r->held_seq = ds.held_seq;
        }
    } else if (rc == 0) {
        snprintf(r->error, sizeof(r->error), "device %.32s: %s", id,
                 err == POSGATE_ERR_NOTFOUND ? "not enrolled" : posgate_strerror(err));
        rc = err == POSGATE_ERR_NOTFOUND ? 4 : 5;
    }
    buf_free(&ack);
    return rc;
}

int
hub_ingest_main(int argc, char **argv)
{
    const char *stick = NULL, *dbpath = NULL;
    struct hub_db *db = NULL;
    struct plat_names devs = {NULL, 0};
    struct device_run r;
    char root[INGEST_PATH_MAX], dir[INGEST_PATH_MAX], msg[512] = "";
    int json = 0, rc = 0, one;
    enum posgate_err err;

    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            fputs(usage_ingest, stdout);
            return 0;
        }
        if (strcmp(argv[i], "--json") == 0) {
            json = 1;
        } else if (i + 1 < argc && strcmp(argv[i], "--db") == 0) {
            dbpath = argv[++i];
        } else if (argv[i][0] != '-' && stick == NULL) {
            stick = argv[i];
        } else {
            fprintf(stderr, "posgate-hub ingest: unexpected argument \"%s\"\n\n%s", argv[i],
                    usage_ingest);
            return 2;
        }
    }
    if (stick == NULL || dbpath == NULL) {
        fprintf(stderr, "posgate-hub ingest: expected STICK and --db\n\n%s", usage_ingest);
        return 2;
    }
    if (plat_path_join(root, sizeof(root), stick, FIELD_SYNC_DIR) != POSGATE_OK) {
        fprintf(stderr, "posgate-hub ingest: %s: path too long\n", stick);
        return 2;
    }
    err = plat_dir_names(root, is_device_dir, INGEST_NAMES_MAX, &devs);
    if (err == POSGATE_ERR_NOTFOUND) {
        fprintf(stderr, "posgate-hub ingest: %s holds no kiosk folder (expected %s/DEVICE_ID)\n",
                stick, root);
        return 2;
    }
    if (err != POSGATE_OK) {
        fprintf(stderr, "posgate-hub ingest: %s: %s\n", root, posgate_strerror(err));
        return 5;
    }
    if (hub_db_open(dbpath, &db, msg, sizeof(msg)) != POSGATE_OK) {
        fprintf(stderr, "posgate-hub ingest: %s\n", msg);
        rc = 5;
        goto out;
    }
    for (size_t i = 0; i < devs.n; i++) {
        if (plat_path_join(dir, sizeof(dir), root, devs.v[i]) != POSGATE_OK) {
            continue;
        }
        one = ingest_device(db, dir, devs.v[i], &r);
        rc = one > rc ? one : rc;
        if (json) {
            printf("{\"device_id\":\"%s\",\"batches\":%zu,\"stored\":%zu,\"duplicates\":%zu,",
                   devs.v[i], r.batches, r.stored, r.duplicates);
            if (r.acked) {
                printf("\"acked_seq\":%llu,\"held_seq\":%llu,", (unsigned long long)r.acked_seq,
                       (unsigned long long)r.held_seq);
            } else {
                printf("\"acked_seq\":null,\"held_seq\":null,");
            }
            printf("\"status_report\":%s,\"error\":", r.report < 0 ? "null"
                                                      : r.report   ? "\"latest\""
                                                                   : "\"older\"");
            if (r.error[0] != 0) {
                put_json_str(r.error);
            } else {
                printf("null");
            }
            printf("}\n");
        } else {
            printf("%s: %zu batch(es), %zu event(s) stored, %zu already held", devs.v[i], r.batches,
                   r.stored, r.duplicates);
            if (r.acked) {
                printf("; acknowledged up to seq %llu", (unsigned long long)r.acked_seq);
            }
            if (r.report >= 0) {
                printf("; status report %s", r.report ? "taken" : "older than the latest, kept");
            }
            printf("\n");
            if (r.error[0] != 0) {
                fprintf(stderr, "posgate-hub ingest: %s: %s\n", devs.v[i], r.error);
            }
        }
    }
    if (fflush(stdout) != 0) {
        rc = 5;
    }
out:
    plat_names_free(&devs);
    hub_db_close(db);
    return rc;
}
