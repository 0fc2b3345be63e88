/* SPDX-License-Identifier: Apache-2.0 */
/*
 * `posgate field-sync STICK` (field_sync.h): the USB round trip of a kiosk without a network,
 * as one command. The feed comes in exactly as `posgate import` brings it; the audit trail goes
 * out as the uploader's signed batches; the collector's answer comes back as an acknowledgement
 * file on the stick. The steps and the stick's layout are in agent/core (posgate_admin.h); this
 * file parses the command and prints what each step did.
 */
#define _POSIX_C_SOURCE 200809L
#include "field_sync.h"

#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "posgate.h"
#include "posgate_admin.h"

#define EXIT_OK       0
#define EXIT_USAGE    2
#define EXIT_REJECTED 4
#define EXIT_IO       5

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

/* Step 1. *rc is raised to the exit code of a refusal; result (for the status report) gets
 * the outcome, "" when the stick holds no bundle. */
static void
import_newest(const char *data_dir, const char *stick, int accept_expired, int *rc, char *result,
              size_t cap)
{
    struct posgate_cli_update_options o = {accept_expired, 0, 0};
    struct posgate_cli_update_result res;
    struct posgate_cli_source *src = NULL;
    char best[POSGATE_CLI_PATH_MAX], msg[2048] = "";
    enum posgate_err err;

    err = posgate_cli_stick_bundle(stick, best);
    if (err != POSGATE_OK) {
        fprintf(stderr, "posgate field-sync: %s: cannot list: %s\n", stick, posgate_strerror(err));
        *rc = EXIT_IO;
        return;
    }
    result[0] = 0;
    if (best[0] == 0) {
        printf("feed: no bundle on the stick, nothing imported\n");
        return;
    }
    err = posgate_cli_source_path(best, &src, msg, sizeof(msg));
    if (err == POSGATE_OK) {
        err = posgate_cli_update(data_dir, src, &o, &res, msg, sizeof(msg));
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
    posgate_cli_source_free(src);
}

/* Steps 2 and 3 on the open kiosk. */
static void
exchange_audit(struct posgate *pg, const char *stick, int *rc)
{
    struct posgate_cli_exchange x;

    posgate_cli_stick_exchange(pg, stick, &x);
    if (x.setup != POSGATE_OK) {
        fprintf(stderr, "posgate field-sync: %s: %s\n", stick, posgate_strerror(x.setup));
        *rc = EXIT_IO;
        return;
    }
    if (x.acked > x.acked_was) {
        printf("audit: the collector holds every event up to seq %llu (was %llu)\n",
               (unsigned long long)x.acked, (unsigned long long)x.acked_was);
    }
    if (x.ack != POSGATE_OK && x.ack != POSGATE_ERR_NOTFOUND) {
        fprintf(stderr, "posgate field-sync: acknowledgement ignored: %s\n", x.ack_msg);
        *rc = x.ack == POSGATE_ERR_REJECTED ? EXIT_REJECTED : EXIT_IO;
    }
    if (x.batches != POSGATE_OK) {
        fprintf(stderr, "posgate field-sync: writing audit batches into %s: %s\n", x.dir,
                posgate_strerror(x.batches));
        *rc = EXIT_IO;
        return;
    }
    if (x.sync_failed) {
        *rc = EXIT_IO;
    }
    if (x.files == 0) {
        printf("audit: nothing to deliver (acknowledged up to seq %llu)\n",
               (unsigned long long)x.acked);
    } else {
        printf("audit: %zu batch(es), seqs %llu..%llu, written to %s\n", x.files,
               (unsigned long long)x.first_seq, (unsigned long long)x.last_seq, x.dir);
    }
    if (x.removed > 0) {
        printf("audit: %zu batch file(s) the collector holds removed from the stick\n", x.removed);
    }
}

/* Step 4: the signed status report, after the exchange so that it shows the queue the stick
 * now carries. There is no collector Date on a stick: the clock offset is null. */
static void
write_report(struct posgate *pg, const char *stick, const char *result, int *rc)
{
    char path[POSGATE_CLI_PATH_MAX];
    enum posgate_err err = posgate_cli_stick_report(pg, stick, result, path);

    if (err != POSGATE_OK) {
        fprintf(stderr, "posgate field-sync: the status report: %s\n", posgate_strerror(err));
        *rc = *rc == EXIT_OK ? EXIT_IO : *rc;
    } else {
        printf("status: report written to %s\n", path);
    }
}

int
field_sync_cli_main(const char *data_dir, int argc, char **argv)
{
    const char *stick = NULL;
    int accept_expired = 0, rc = EXIT_OK;
    char result[512] = "", msg[512];
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
    err = posgate_admin_open(data_dir, &pg, msg, sizeof(msg));
    if (err != POSGATE_OK) {
        fprintf(stderr, "posgate field-sync: %s\n", msg[0] != 0 ? msg : posgate_strerror(err));
        return EXIT_IO;
    }
    exchange_audit(pg, stick, &rc);
    write_report(pg, stick, result, &rc);
    posgate_close(pg);
    return rc;
}
