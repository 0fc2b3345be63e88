/* SPDX-License-Identifier: Apache-2.0 */
/*
 * `posgate`: the kiosk command line. Subcommands init, import, sync, check, status, verify, audit,
 * device-key. Exit
 * codes (an interface: keep them): 0 ALLOW or success, 1 DENY, 2 usage or invalid input,
 * 3 REFER, 4 update rejected or integrity failure, 5 I/O or other failure.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "audit_cli.h"
#include "buf.h"
#include "field_sync.h"
#include "plat_clock.h"
#include "posgate.h"
#include "posgate_admin.h"

#define EXIT_ALLOW    0
#define EXIT_DENY     1
#define EXIT_USAGE    2
#define EXIT_REFER    3
#define EXIT_REJECTED 4
#define EXIT_IO       5

static const char *data_dir_opt;

static const char usage_main[] =
    "usage: posgate [--data-dir DIR] COMMAND [options]\n"
    "       posgate --version\n"
    "\n"
    "Answers \"may this person or organisation buy this service?\" from signed, locally\n"
    "installed restriction lists, offline.\n"
    "\n"
    "commands:\n"
    "  init     create the data dir from a trusted root and the list key\n"
    "  import   install a feed from a feed directory or a USB bundle file\n"
    "  sync     fetch the feed from a web server (mirrors, TLS) and install it\n"
    "  check    decide ALLOW / DENY / REFER for a subject and a service\n"
    "  status   show the installed feed version and list freshness\n"
    "  verify   recompute every list's digest and check the store\n"
    "  compact  merge the changes of deltas into the store's main table\n"
    "  audit    list, export or verify the audit trail of decisions\n"
    "  device-key  print the public device key (enrol it at the collector)\n"
    "  field-sync STICK  a visit without network: import the newest bundle on the stick, write\n"
    "           the unsent audit batches onto it, read the collector's acknowledgement\n"
    "\n"
    "--data-dir defaults to $POSGATE_DATA_DIR, else /var/lib/posgate.\n"
    "`posgate COMMAND --help` describes each command.\n"
    "exit codes: 0 allow/success, 1 deny, 2 usage or invalid input, 3 refer,\n"
    "            4 update rejected or integrity failure, 5 I/O or other failure\n";

static int usage_error(const char *cmd, const char *fmt, const char *arg)
    __attribute__((format(printf, 2, 0)));

static int
usage_error(const char *cmd, const char *fmt, const char *arg)
{
    fprintf(stderr, "posgate %s: ", cmd);
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
    fprintf(stderr, fmt, arg);
#pragma GCC diagnostic pop
    fprintf(stderr, "\n(see posgate %s --help)\n", cmd);
    return EXIT_USAGE;
}

static int
is_help(const char *a)
{
    return strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0;
}

/* ---- init ---- */

static const char usage_init[] =
    "usage: posgate [--data-dir DIR] init --root FEEDDIR/metadata/1.root.json --list-key FILE\n"
    "                                    --jurisdiction CC [--jurisdiction CC ...]\n"
    "\n"
    "Creates the data dir (mode 0700): installs the trusted TUF root (which must be signed by a\n"
    "threshold of its own keys), a copy of the 32-byte list key (mode 0600; it never travels in\n"
    "the feed) and the gate jurisdictions (ISO 3166 alpha-2) this terminal checks for, and makes\n"
    "the device key (device.key, mode 0600, and device.pub) that signs the audit trail. Prints\n"
    "the list key's fingerprint: a feed's list_key_check must equal it, or import refuses it.\n";

static int
cmd_init(int argc, char **argv)
{
    const char *root = NULL, *list_key = NULL;
    const char *jur[POSGATE_CLI_JURISDICTIONS_MAX];
    size_t njur = 0;
    char msg[8192], fingerprint[POSGATE_CLI_KEY_CHECK_LEN + 1], dir[POSGATE_CLI_PATH_MAX];
    enum posgate_err err;

    for (int i = 1; i < argc; i++) {
        if (is_help(argv[i])) {
            fputs(usage_init, stdout);
            return 0;
        } else if (strcmp(argv[i], "--root") == 0 && i + 1 < argc) {
            root = argv[++i];
        } else if (strcmp(argv[i], "--list-key") == 0 && i + 1 < argc) {
            list_key = argv[++i];
        } else if (strcmp(argv[i], "--jurisdiction") == 0 && i + 1 < argc) {
            const char *cc = argv[++i];

            if (strlen(cc) != 2 || cc[0] < 'A' || cc[0] > 'z' || cc[1] < 'A' || cc[1] > 'z') {
                return usage_error("init",
                                   "--jurisdiction: expected a two-letter country code "
                                   "like CN, found \"%s\"",
                                   cc);
            }
            if (njur == POSGATE_CLI_JURISDICTIONS_MAX) {
                return usage_error("init", "%s", "too many --jurisdiction");
            }
            jur[njur++] = cc;
        } else {
            return usage_error("init", "unexpected argument \"%s\"", argv[i]);
        }
    }
    if (root == NULL || list_key == NULL || njur == 0) {
        return usage_error("init", "%s", "--root, --list-key and --jurisdiction are required");
    }
    if (posgate_cli_data_dir(data_dir_opt, dir) != POSGATE_OK) {
        fprintf(stderr, "posgate init: data dir path too long\n");
        return EXIT_USAGE;
    }
    err = posgate_cli_init(data_dir_opt, root, list_key, jur, njur, fingerprint, msg, sizeof(msg));
    if (err != POSGATE_OK) {
        fprintf(stderr, "posgate init: %s\n", msg);
        return err == POSGATE_ERR_USAGE      ? EXIT_USAGE
               : err == POSGATE_ERR_REJECTED ? EXIT_REJECTED
                                             : EXIT_IO;
    }
    printf("initialised %s (jurisdictions:", dir);
    for (size_t i = 0; i < njur; i++) {
        printf(" %s", jur[i]);
    }
    printf("); next: posgate import FEEDDIR or BUNDLE\n");
    printf("list key fingerprint %s (a feed's list_key_check must equal it)\n", fingerprint);
    return 0;
}

/* ---- import ---- */

static const char usage_import[] =
    "usage: posgate [--data-dir DIR] import PATH [--accept-expired] [--lock-wait S]\n"
    "\n"
    "Installs the newest verified feed version from PATH: a feed directory (holding metadata/\n"
    "and targets/) or a bundle file made by `posgate-publish bundle` (a USB stick). Every file\n"
    "is verified (TUF signatures, versions, expiry, lengths and hashes, list digests) before it\n"
    "is used; on any problem nothing changes, the last good version keeps serving, and the\n"
    "exit code is 4 with the reason.\n"
    "\n"
    "  --accept-expired  accept metadata past its expiry (a bundle carried for days), only when\n"
    "                    it is newer than what is installed; its lists then count as fresh only\n"
    "                    as of their own signed issue time (the stale policy applies after).\n"
    "  --lock-wait S     wait at most S seconds (default 60) for another update of the data\n"
    "                    dir (posgated's sync, another import) to finish; then exit 5 with\n"
    "                    \"an update is running (pid N)\"\n";

static int
update_exit(enum posgate_err err)
{
    switch (err) {
    case POSGATE_ERR_OK:
        return 0;
    case POSGATE_ERR_REJECTED:
    case POSGATE_ERR_CORRUPT:
        return EXIT_REJECTED;
    case POSGATE_ERR_INVALID:
    case POSGATE_ERR_USAGE:
        return EXIT_USAGE;
    case POSGATE_ERR_NOMEM:
    case POSGATE_ERR_IO:
    case POSGATE_ERR_NOTFOUND:
    case POSGATE_ERR_TOOBIG:
    case POSGATE_ERR_PARSE:
    case POSGATE_ERR_BADSIG:
    case POSGATE_ERR_BADHASH:
    case POSGATE_ERR_ROLLBACK:
    case POSGATE_ERR_EXPIRED:
    case POSGATE_ERR_UNSUPPORTED:
    case POSGATE_ERR_STATE:
    case POSGATE_ERR_NETWORK:
    case POSGATE_ERR_RETRY:
    case POSGATE_ERR__COUNT:
        break;
    }
    return EXIT_IO;
}

static void
print_update(const struct posgate_cli_update_result *res)
{
    if (res->feed_version == res->previous_version && !res->changed) {
        printf("feed version %lld is installed; no list changed\n", (long long)res->feed_version);
        return;
    }
    printf("installed feed version %lld (was %lld): %u snapshot(s), %u delta(s), %u list(s) "
           "dropped, %llu entries applied in %.3f s%s%s\n",
           (long long)res->feed_version, (long long)res->previous_version, res->snapshots,
           res->deltas, res->dropped, (unsigned long long)res->entries_changed, res->install_s,
           res->fallbacks ? "; a delta failed and the snapshot was used" : "",
           res->expired_accepted ? "; expired metadata accepted (lists age from their issue time)"
                                 : "");
    if (res->merged_rows > 0) {
        printf("merged %llu delta row(s) into the main table in %.3f s\n",
               (unsigned long long)res->merged_rows, res->merge_s);
    }
    if (res->filter_keys > 0) {
        printf("rebuilt the key filter with %llu key(s)\n", (unsigned long long)res->filter_keys);
    }
}

static int parse_count(const char *s, long long max, long long *out);

/* --lock-wait S: 0 means not at all (posgate_admin.h: a negative lock_wait_ms). */
static int
parse_lock_wait(const char *s, struct posgate_cli_update_options *o)
{
    long long v;

    if (!parse_count(s, 3600, &v)) {
        return 0;
    }
    o->lock_wait_ms = v == 0 ? -1 : (long)v * 1000;
    return 1;
}

static int
cmd_import(int argc, char **argv)
{
    const char *path = NULL;
    struct posgate_cli_update_options o;
    struct posgate_cli_update_result res;
    struct posgate_cli_source *src = NULL;
    char msg[2048];
    struct stat st;
    enum posgate_err err;
    int rc;

    memset(&o, 0, sizeof(o));
    for (int i = 1; i < argc; i++) {
        if (is_help(argv[i])) {
            fputs(usage_import, stdout);
            return 0;
        } else if (strcmp(argv[i], "--accept-expired") == 0) {
            o.accept_expired = 1;
        } else if (strcmp(argv[i], "--lock-wait") == 0 && i + 1 < argc) {
            if (!parse_lock_wait(argv[++i], &o)) {
                return usage_error("import", "--lock-wait: expected seconds (0..3600), got \"%s\"",
                                   argv[i]);
            }
        } else if (argv[i][0] == '-' || path != NULL) {
            return usage_error("import", "unexpected argument \"%s\"", argv[i]);
        } else {
            path = argv[i];
        }
    }
    if (path == NULL) {
        return usage_error("import", "%s", "expected a feed directory or a bundle file");
    }
    if (stat(path, &st) != 0) {
        fprintf(stderr, "posgate import: %s: no such file or directory\n", path);
        return EXIT_USAGE;
    }
    if (!S_ISDIR(st.st_mode) && !S_ISREG(st.st_mode)) {
        /* a FIFO would block the import until someone writes to it; a device is no bundle */
        fprintf(stderr,
                "posgate import: %s: expected a feed directory or a bundle file, found %s\n", path,
                S_ISFIFO(st.st_mode) ? "a FIFO" : "another kind of file (device or socket)");
        return EXIT_USAGE;
    }
    err = posgate_cli_source_path(path, &src, msg, sizeof(msg));
    if (err != POSGATE_OK) {
        fprintf(stderr, "posgate import: %s: %s\n", path, msg[0] ? msg : posgate_strerror(err));
        return err == POSGATE_ERR_IO || err == POSGATE_ERR_NOMEM ? EXIT_IO : EXIT_REJECTED;
    }
    o.progress = 1;
    err = posgate_cli_update(data_dir_opt, src, &o, &res, msg, sizeof(msg));
    if (err != POSGATE_OK) {
        fprintf(stderr, "posgate import: %s: refused, nothing changed: %s\n", path, msg);
        rc = update_exit(err);
    } else {
        print_update(&res);
        rc = 0;
    }
    posgate_cli_source_free(src);
    return rc;
}

/* ---- compact ---- */

/* Prints s as a JSON string (control characters dropped). */
static void
print_json_string(const char *s)
{
    putchar('"');
    for (const char *p = s; *p; p++) {
        if (*p == '"' || *p == '\\') {
            putchar('\\');
        }
        if ((unsigned char)*p >= 0x20) {
            putchar(*p);
        }
    }
    putchar('"');
}

/* Ends a --json object: the error (null when err is OK) and the closing brace. */
static void
print_json_error_end(enum posgate_err err, const char *msg)
{
    if (err == POSGATE_OK) {
        printf("null}\n");
    } else {
        print_json_string(msg[0] ? msg : posgate_strerror(err));
        printf("}\n");
    }
}

/* The options of a read command that takes only --json (and --help): -1 to go on, else
 * the exit code to return. */
static int
json_only_args(int argc, char **argv, const char *cmd, const char *usage, int *as_json)
{
    *as_json = 0;
    for (int i = 1; i < argc; i++) {
        if (is_help(argv[i])) {
            fputs(usage, stdout);
            return 0;
        } else if (strcmp(argv[i], "--json") == 0) {
            *as_json = 1;
        } else {
            return usage_error(cmd, "unexpected argument \"%s\"", argv[i]);
        }
    }
    return -1;
}

static const char usage_compact[] =
    "usage: posgate [--data-dir DIR] compact [--json]\n"
    "\n"
    "Merges the changes that deltas wrote to the store's recent table into its main table and\n"
    "erases the rows they removed, then rebuilds the store's key filter (store.db.filter) when\n"
    "it is not made for the installed version. Checks answer the same before and after, and\n"
    "may run meanwhile. posgate import and sync do this after each update and the daemon after\n"
    "each sync, so it is needed only after an update whose merge failed (it then said so), or\n"
    "when status says key_filter is not ok.\n"
    "\n"
    "  --json  print {\"ok\":true,\"merged_rows\":N,\"filter_keys\":K,\"seconds\":S} (or\n"
    "          \"error\"); K is the keys of a rebuilt filter, 0 when none was needed\n";

static int
cmd_compact(int argc, char **argv)
{
    int as_json = 0;
    uint64_t moved = 0, fkeys = 0, t0;
    double secs;
    char msg[1024];
    enum posgate_err err;

    int arc = json_only_args(argc, argv, "compact", usage_compact, &as_json);

    if (arc >= 0) {
        return arc;
    }
    t0 = plat_mono_ns();
    err = posgate_cli_compact(data_dir_opt, &moved, &fkeys, msg, sizeof(msg));
    secs = (double)(plat_mono_ns() - t0) / 1e9;
    if (as_json) {
        printf("{\"ok\":%s,\"merged_rows\":%llu,\"filter_keys\":%llu,\"seconds\":%.3f,"
               "\"error\":",
               err == POSGATE_OK ? "true" : "false", (unsigned long long)moved,
               (unsigned long long)fkeys, secs);
        print_json_error_end(err, msg);
    } else if (err == POSGATE_OK) {
        printf("merged %llu row(s)%s in %.3f s\n", (unsigned long long)moved,
               fkeys > 0 ? " and rebuilt the key filter" : "", secs);
    } else {
        fprintf(stderr, "posgate compact: %s\n", msg[0] ? msg : posgate_strerror(err));
    }
    return update_exit(err);
}

/* ---- sync ---- */

static const char usage_sync[] =
    "usage: posgate [--data-dir DIR] sync --url URL [--url MIRROR ...] [--ca-file F]\n"
    "        [--client-cert C --client-key K] [--proxy P] [--max-recv-bytes-per-s N]\n"
    "        [--connect-timeout S] [--timeout S] [--sync-timeout S] [--lock-wait S]\n"
    "        [--accept-expired] [--json]\n"
    "\n"
    "Fetches the feed from a web server once and installs it as `import` does: URL is the base\n"
    "of a feed directory (holding metadata/ and targets/), served by posgate-hub or any static\n"
    "web server. Mirrors are tried in order. Every file is verified before it is used; on any\n"
    "problem nothing changes and the last good version keeps serving. Exit codes as for\n"
    "import: 0 installed or up to date, 4 the feed was refused, 5 network or I/O failure.\n"
    "\n"
    "  --url URL            feed base URL, http:// or https:// (repeat for mirrors, up to 8)\n"
    "  --ca-file F          PEM CA bundle: the ONLY trust for https (default: system store)\n"
    "  --client-cert C      PEM client certificate for servers that require one (with\n"
    "  --client-key K       its PEM key)\n"
    "  --proxy P            proxy URL (the *_proxy environment variables are ignored)\n"
    "  --max-recv-bytes-per-s N  byte-rate limit for thin links\n"
    "  --connect-timeout S  per connection (default 10); --timeout S whole transfer (300)\n"
    "  --sync-timeout S     the whole sync, every file and mirror (600); a mirror that\n"
    "                       times out is asked last for the rest of the sync\n"
    "  --lock-wait S        wait for another update of the data dir as for import (60)\n"
    "  --json               print the result as one JSON object\n"
    "Interrupted target downloads resume from DIR/incoming/partial; timestamp.json is polled\n"
    "with conditional GET (cache in DIR/http-cache). See docs/sync.md.\n";

static void
put_json_str(const char *s)
{
    putchar('"');
    for (const unsigned char *p = (const unsigned char *)s; *p != 0; p++) {
        if (*p == '"' || *p == '\\') {
            putchar('\\');
            putchar(*p);
        } else if (*p < 0x20) {
            printf("\\u%04x", *p);
        } else {
            putchar(*p);
        }
    }
    putchar('"');
}

static int
parse_count(const char *s, long long max, long long *out)
{
    char *end = NULL;
    long long v;

    errno = 0;
    v = strtoll(s, &end, 10);
    if (errno != 0 || end == s || *end != 0 || v < 0 || v > max) {
        return 0;
    }
    *out = v;
    return 1;
}

/* The result of a sync as one JSON object (--json). */
static void
print_sync_json(enum posgate_err err, int rc, const struct posgate_cli_update_result *res,
                const struct posgate_cli_fetch_stats *fs, const char *msg)
{
    printf("{\"ok\":%s,\"exit\":%d,\"feed_version\":%lld,\"previous_version\":%lld,"
           "\"changed\":%s,\"snapshots\":%u,\"deltas\":%u,\"dropped\":%u,"
           "\"entries_changed\":%llu,\"retry_after_s\":%llu,\"error\":",
           err == POSGATE_OK ? "true" : "false", rc, (long long)res->feed_version,
           (long long)res->previous_version, res->changed ? "true" : "false", res->snapshots,
           res->deltas, res->dropped, (unsigned long long)res->entries_changed,
           (unsigned long long)fs->retry_after_s);
    if (err == POSGATE_OK) {
        fputs("null", stdout);
    } else {
        put_json_str(msg[0] != 0 ? msg : posgate_strerror(err));
    }
    printf(",\"fetch\":{\"attempts\":%llu,\"ok\":%llu,\"not_modified\":%llu,"
           "\"not_found\":%llu,\"resumed\":%llu,\"bytes\":%llu,\"failures\":{",
           (unsigned long long)fs->attempts, (unsigned long long)fs->ok,
           (unsigned long long)fs->not_modified, (unsigned long long)fs->not_found,
           (unsigned long long)fs->resumed, (unsigned long long)fs->bytes);
    for (int k = 0; k < POSGATE_CLI_FETCH_FAILS; k++) {
        printf("%s\"%s\":%llu", k > 0 ? "," : "", fs->failures[k].name,
               (unsigned long long)fs->failures[k].n);
    }
    printf("}}}\n");
}

/* The options of sync into m and o (*json for --json): -1 to go on, else the exit code. */
static int
sync_args(int argc, char **argv, const char **urls, struct posgate_cli_mirrors *m,
          struct posgate_cli_update_options *o, int *json)
{
    long long v;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];

        if (is_help(a)) {
            fputs(usage_sync, stdout);
            return 0;
        } else if (strcmp(a, "--json") == 0) {
            *json = 1;
        } else if (strcmp(a, "--accept-expired") == 0) {
            o->accept_expired = 1;
        } else if (i + 1 >= argc) {
            return usage_error("sync", "unexpected argument \"%s\" (or its value is missing)", a);
        } else if (strcmp(a, "--url") == 0) {
            if (m->n_urls == POSGATE_CLI_MIRRORS_MAX) {
                return usage_error("sync", "at most 8 --url, got more (\"%s\")", argv[i + 1]);
            }
            urls[m->n_urls++] = argv[++i];
        } else if (strcmp(a, "--ca-file") == 0) {
            m->ca_file = argv[++i];
        } else if (strcmp(a, "--client-cert") == 0) {
            m->client_cert = argv[++i];
        } else if (strcmp(a, "--client-key") == 0) {
            m->client_key = argv[++i];
        } else if (strcmp(a, "--proxy") == 0) {
            m->proxy = argv[++i];
        } else if (strcmp(a, "--max-recv-bytes-per-s") == 0) {
            if (!parse_count(argv[++i], INT64_MAX, &v)) {
                return usage_error("sync",
                                   "--max-recv-bytes-per-s: expected a number of bytes, "
                                   "got \"%s\"",
                                   argv[i]);
            }
            m->max_recv_bytes_per_s = (uint64_t)v;
        } else if (strcmp(a, "--lock-wait") == 0) {
            if (!parse_lock_wait(argv[++i], o)) {
                return usage_error("sync", "--lock-wait: expected seconds (0..3600), got \"%s\"",
                                   argv[i]);
            }
        } else if (strcmp(a, "--sync-timeout") == 0) {
            if (!parse_count(argv[++i], 86400, &v) || v == 0) {
                return usage_error("sync", "--sync-timeout: expected seconds (1..86400), got \"%s\"",
                                   argv[i]);
            }
            m->sync_timeout_s = (long)v;
        } else if (strcmp(a, "--connect-timeout") == 0 || strcmp(a, "--timeout") == 0) {
            if (!parse_count(argv[++i], 86400, &v) || v == 0) {
                return usage_error("sync",
                                   "expected seconds (1..86400) after the timeout, got "
                                   "\"%s\"",
                                   argv[i]);
            }
            if (a[2] == 'c') {
                m->connect_timeout_s = (long)v;
            } else {
                m->timeout_s = (long)v;
            }
        } else {
            return usage_error("sync", "unexpected argument \"%s\"", a);
        }
    }
    if (m->n_urls == 0) {
        return usage_error("sync", "%s", "expected --url URL");
    }
    if ((m->client_cert == NULL) != (m->client_key == NULL)) {
        return usage_error("sync", "%s", "--client-cert and --client-key go together");
    }
    return -1;
}

static int
cmd_sync(int argc, char **argv)
{
    const char *urls[POSGATE_CLI_MIRRORS_MAX];
    struct posgate_cli_mirrors m;
    struct posgate_cli_update_options o;
    struct posgate_cli_update_result res;
    struct posgate_cli_fetch_stats fs;
    struct posgate_cli_source *src = NULL;
    char msg[2048];
    enum posgate_err err;
    int json = 0, rc;

    memset(&m, 0, sizeof(m));
    memset(&o, 0, sizeof(o));
    rc = sync_args(argc, argv, urls, &m, &o, &json);
    if (rc >= 0) {
        return rc;
    }
    m.urls = urls;
    err = posgate_cli_source_mirrors(data_dir_opt, &m, &src, msg, sizeof(msg));
    if (err != POSGATE_OK) {
        fprintf(stderr, "posgate sync: %s\n", msg);
        return err == POSGATE_ERR_INVALID ? EXIT_USAGE : EXIT_IO;
    }
    o.progress = !json;
    err = posgate_cli_update(data_dir_opt, src, &o, &res, msg, sizeof(msg));
    rc = update_exit(err);
    posgate_cli_source_stats(src, &fs);
    if (json) {
        print_sync_json(err, rc, &res, &fs, msg);
    }
    if (err == POSGATE_ERR_REJECTED || err == POSGATE_ERR_CORRUPT) {
        fprintf(stderr, "posgate sync: %s: refused, nothing changed: %s\n", urls[0], msg);
    } else if (err != POSGATE_OK) {
        uint64_t wait;

        posgate_cli_source_stats(src, &fs);
        wait = fs.retry_after_s;
        fprintf(stderr,
                "posgate sync: %s: nothing changed, the last good version keeps "
                "serving: %s",
                urls[0], msg[0] != 0 ? msg : posgate_strerror(err));
        if (wait > 0) {
            fprintf(stderr, " (the server asks to retry in %llu s)", (unsigned long long)wait);
        }
        fputc('\n', stderr);
    } else if (!json) {
        print_update(&res);
    }
    posgate_cli_source_free(src);
    return rc;
}

/* ---- check ---- */

static const char usage_check[] =
    "usage: posgate [--data-dir DIR] check --service S --id TYPE:VALUE [--id ...]\n"
    "        [--name NAME --birth-date YYYY-MM-DD] [--operator ID] [--at RFC3339] [--json]\n"
    "        [--override-by SUPERVISOR --override-reason TEXT]\n"
    "\n"
    "Decides ALLOW (exit 0), DENY (exit 1) or REFER (exit 3) for the subject and the service\n"
    "from the installed lists, offline. A DENY prints the notice to hand to the customer: list,\n"
    "authority, legal basis, listing id, since, until and how to contest.\n"
    "\n"
    "identifier types: cn_rid (18 characters, ISO 7064 MOD 11-2 check), cn_uscc (GB 32100),\n"
    "  passport (ISSUER:NUMBER, ICAO 9303 issuer), mrz (TD3: two 44-character lines joined by\n"
    "  '|' or a newline), national_id (CC:VALUE), name_dob (NAME|YYYY-MM-DD; only ever REFER).\n"
    "A malformed identifier is an input error (exit 2), never an ALLOW.\n"
    "  --at T  the service date (RFC 3339; default now): the day of the journey or stay. A\n"
    "          listing in effect now applies whatever T is; one in effect only at T gives\n"
    "          REFER. T before now less 5 minutes or after now plus 120 days: exit 2.\n"
    "  --json  print the decision as one JSON object\n"
    "  --override-by, --override-reason  a supervisor override: turns a DENY into ALLOW only\n"
    "          when every denying listing allows `override: supervisor`; else exit 2. Audited.\n"
    "Every decision is committed to the audit trail (DIR/audit.db) before it is printed.\n";

/* A failed check: the message on stderr and, with --json, {"error": {"code", "field",
 * "message"}} on stdout (field: the option or request field it is about, or null). Returns rc. */
static int
check_error(int json, int rc, enum posgate_err err, const char *field, const char *msg)
{
    struct buf b = BUF_INIT(1u << 16);

    fprintf(stderr, "posgate check: %s%s\n", err == POSGATE_ERR_INVALID ? "invalid input: " : "",
            msg);
    if (json && posgate_cli_error_json(err, field, msg, &b) == POSGATE_OK) {
        puts(buf_cstr(&b));
    }
    buf_free(&b);
    return rc;
}

/* The option a request field comes from: "--id" -> "id". */
static const char *
option_field(const char *opt)
{
    return strcmp(opt, "--birth-date") == 0 ? "birth_date" : opt + 2;
}

static int
cmd_check(int argc, char **argv)
{
    struct posgate *pg = NULL;
    struct posgate_request *rq = NULL;
    struct posgate_result *res = NULL;
    const char *name = NULL, *dob = NULL, *ov_by = NULL, *ov_reason = NULL;
    char msg[512];
    int json = 0, rc = EXIT_IO;
    enum posgate_err err;

    for (int i = 1; i < argc; i++) {
        if (is_help(argv[i])) {
            fputs(usage_check, stdout);
            return 0;
        }
        /* known before any option is read: every error then takes the JSON form */
        json |= strcmp(argv[i], "--json") == 0;
    }
    if (posgate_request_new(&rq) != POSGATE_OK || posgate_result_new(&res) != POSGATE_OK) {
        fprintf(stderr, "posgate check: out of memory\n");
        goto out;
    }
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];

        err = POSGATE_OK;
        if (strcmp(a, "--json") == 0) {
            json = 1;
            continue;
        }
        if (i + 1 >= argc ||
            (strcmp(a, "--service") != 0 && strcmp(a, "--id") != 0 && strcmp(a, "--name") != 0 &&
             strcmp(a, "--birth-date") != 0 && strcmp(a, "--operator") != 0 &&
             strcmp(a, "--at") != 0 && strcmp(a, "--override-by") != 0 &&
             strcmp(a, "--override-reason") != 0)) {
            rc = usage_error("check", "unexpected argument \"%s\"", a);
            goto out;
        }
        i++;
        if (strcmp(a, "--service") == 0) {
            err = posgate_request_set_service(rq, argv[i]);
        } else if (strcmp(a, "--id") == 0) {
            err = posgate_request_add_id(rq, argv[i]);
        } else if (strcmp(a, "--name") == 0) {
            name = argv[i];
        } else if (strcmp(a, "--birth-date") == 0) {
            dob = argv[i];
        } else if (strcmp(a, "--operator") == 0) {
            err = posgate_request_set_operator(rq, argv[i]);
        } else if (strcmp(a, "--override-by") == 0) {
            ov_by = argv[i];
        } else if (strcmp(a, "--override-reason") == 0) {
            ov_reason = argv[i];
        } else {
            err = posgate_request_set_at(rq, argv[i]);
        }
        if (err != POSGATE_OK) {
            rc = check_error(json, EXIT_USAGE, POSGATE_ERR_INVALID, option_field(a),
                             posgate_request_errmsg(rq));
            goto out;
        }
    }
    if ((name == NULL) != (dob == NULL)) {
        rc = json ? check_error(json, EXIT_USAGE, POSGATE_ERR_INVALID, name == NULL ? "name" : "birth_date",
                                "--name and --birth-date go together")
                  : usage_error("check", "%s", "--name and --birth-date go together");
        goto out;
    }
    if ((ov_by == NULL) != (ov_reason == NULL)) {
        rc = json ? check_error(json, EXIT_USAGE, POSGATE_ERR_INVALID, "override",
                                "--override-by and --override-reason go together")
                  : usage_error("check", "%s", "--override-by and --override-reason go together");
        goto out;
    }
    if (ov_by != NULL && posgate_request_set_override(rq, ov_by, ov_reason) != POSGATE_OK) {
        rc = check_error(json, EXIT_USAGE, POSGATE_ERR_INVALID, "override",
                         posgate_request_errmsg(rq));
        goto out;
    }
    if (name != NULL && posgate_request_set_name_dob(rq, name, dob) != POSGATE_OK) {
        rc = check_error(json, EXIT_USAGE, POSGATE_ERR_INVALID, "name",
                         posgate_request_errmsg(rq));
        goto out;
    }
    err = posgate_admin_open(data_dir_opt, &pg, msg, sizeof(msg));
    if (err != POSGATE_OK) {
        rc = check_error(json, err == POSGATE_ERR_CORRUPT ? EXIT_REJECTED : EXIT_IO, err, "",
                         msg);
        goto out;
    }
    err = posgate_check(pg, rq, res);
    if (err == POSGATE_ERR_INVALID) {
        rc = check_error(json, EXIT_USAGE, err, NULL, posgate_result_errmsg(res));
        goto out;
    }
    if (err != POSGATE_OK) {
        /* the refusal is audited (decision "error"): the object names its decision_id */
        fprintf(stderr, "posgate check: %s\n", posgate_result_errmsg(res));
        if (json) {
            puts(posgate_result_json(res));
        }
        rc = err == POSGATE_ERR_CORRUPT ? EXIT_REJECTED : EXIT_IO;
        goto out;
    }
    if (json) {
        const char *j = posgate_result_json(res);

        if (j == NULL) {
            fprintf(stderr, "posgate check: out of memory\n");
            goto out;
        }
        puts(j);
    } else {
        const char *d = posgate_decision_name(posgate_result_decision(res));
        struct buf footing = BUF_INIT(1u << 20);
        int64_t feed_version = 0;
        char up[8];
        size_t k;

        for (k = 0; d[k] != 0 && k < sizeof(up) - 1; k++) {
            up[k] = (char)(d[k] - 'a' + 'A');
        }
        up[k] = 0;
        err = posgate_cli_result_footing(res, &feed_version, &footing);
        printf("%s  (decision %s, feed version %lld)\n", up, posgate_result_decision_id(res),
               (long long)feed_version);
        if (err != POSGATE_OK) {
            fprintf(stderr, "posgate check: out of memory\n");
            buf_free(&footing);
            goto out;
        }
        fputs(buf_cstr(&footing), stdout);
        buf_free(&footing);
        printf("%s\n", posgate_result_notice(res));
    }
    rc = (int)posgate_result_decision(res);
out:
    posgate_result_free(res);
    posgate_request_free(rq);
    posgate_close(pg);
    return rc;
}

/* ---- status ---- */

static const char usage_status[] =
    "usage: posgate [--data-dir DIR] status [--json]\n"
    "\n"
    "Shows the installed feed version, when it was issued and expires, the root version, and\n"
    "per list its seq, entry count, digest, age and whether it is stale.\n";

/* Adds what makes the terminal unhealthy to the text status's health line. */
static void
health_bad(char *health, size_t cap, const char *what)
{
    size_t len = strlen(health);

    if (strstr(health, what) == NULL && len < cap) {
        snprintf(health + len, cap - len, "%s%s", len == 0 ? "NOT OK: " : ", ", what);
    }
}

/* The text form of status (without --json). */
static void
print_status(const struct posgate_cli_status *m)
{
    char t1[32], t2[32], health[256] = "";
    int64_t now = m->now;

    plat_time_format(m->issued_at, t1, sizeof(t1));
    plat_time_format(m->expires_at, t2, sizeof(t2));
    printf("data dir      %s\n", m->data_dir);
    if (m->feed_version == 0) {
        printf("feed          none installed (run posgate import)\n");
        health_bad(health, sizeof(health), "no verified list data is installed");
    } else {
        char t3[32];

        plat_time_format(m->installed_at, t3, sizeof(t3));
        printf("feed version  %lld (root version %lld)\n", (long long)m->feed_version,
               (long long)m->root_version);
        printf("issued at     %s (signed)\ninstalled at  %s\nexpires at    %s%s\n", t1, t3, t2,
               now >= m->expires_at ? "  (EXPIRED: import a newer feed)" : "");
        if (now >= m->expires_at) {
            health_bad(health, sizeof(health), "feed metadata expired");
        }
        if (now < m->newest_issue_seen) {
            printf("clock         FAULT: the wall clock is earlier than the newest signed "
                   "issue time\n");
            health_bad(health, sizeof(health), "clock fault");
        }
    }
    if (m->key_ok) {
        printf("list key      %s (fingerprint %s)\n", m->key_installed ? "ok" : "none installed",
               m->key_check);
    } else {
        printf("list key      MISMATCH: %s\n", m->key_msg);
        health_bad(health, sizeof(health), "list key mismatch");
    }
    if (m->key_filter != NULL) {
        printf("key filter    %s%s\n", m->key_filter,
               m->key_filter_ok ? ""
                                : "  (checks read the store alone, same answers; "
                                  "posgate compact rebuilds it)");
    }
    if (m->disk_full) {
        printf("disk          FULL: the audit queue records on its reserve; free space "
               "in %s\n",
               m->data_dir);
        health_bad(health, sizeof(health), "disk full");
    }
    if (m->meta_disagrees) {
        printf("metadata      DISAGREES WITH THE STORE (checks refused): %s\n", m->meta_msg);
        health_bad(health, sizeof(health), "trusted metadata and store disagree");
    }
    printf("jurisdictions");
    for (size_t i = 0; i < m->n_jurisdictions; i++) {
        printf(" %s", m->jurisdictions[i]);
    }
    printf("\n");
    for (size_t i = 0; i < m->n_lists && i < POSGATE_CLI_STATUS_LISTS; i++) {
        const struct posgate_cli_status_list *l = &m->lists[i];

        printf("list %-24s seq %-6llu entries %-10llu age %5.1fh  digest %.16s...%s\n", l->id,
               (unsigned long long)l->seq, (unsigned long long)l->entries,
               (double)(now - l->fresh_at) / 3600.0, l->digest, l->stale ? "  STALE" : "");
        if (l->stale) {
            health_bad(health, sizeof(health), "stale list");
        }
    }
    if (m->n_lists > POSGATE_CLI_STATUS_LISTS) {
        printf("(%zu more lists: see --json)\n", m->n_lists - POSGATE_CLI_STATUS_LISTS);
    }
    printf("health        %s\n", health[0] ? health : "ok");
}

static int
cmd_status(int argc, char **argv)
{
    struct posgate *pg = NULL;
    struct posgate_cli_status m;
    char *json = NULL, msg[2048];
    int as_json = 0, rc = EXIT_IO;
    enum posgate_err err;

    int arc = json_only_args(argc, argv, "status", usage_status, &as_json);

    if (arc >= 0) {
        return arc;
    }
    err = posgate_admin_open(data_dir_opt, &pg, msg, sizeof(msg));
    if (err != POSGATE_OK) {
        fprintf(stderr, "posgate status: %s\n", msg);
        return err == POSGATE_ERR_CORRUPT ? EXIT_REJECTED : EXIT_IO;
    }
    err = posgate_status_json(pg, &json);
    if (err != POSGATE_OK) {
        fprintf(stderr, "posgate status: %s\n", posgate_strerror(err));
        goto out;
    }
    if (as_json) {
        puts(json);
    } else {
        if (posgate_cli_status(pg, &m, msg, sizeof(msg)) != POSGATE_OK) {
            fprintf(stderr, "posgate status: %s\n", msg);
            goto out;
        }
        print_status(&m);
    }
    rc = 0;
out:
    posgate_free(json);
    posgate_close(pg);
    return rc;
}

/* ---- verify ---- */

static const char usage_verify[] =
    "usage: posgate [--data-dir DIR] verify [--json]\n"
    "\n"
    "Recomputes every installed list's state digest from the rows on disk and compares it with\n"
    "the signed digest recorded at import, checks the trusted TUF root, and that the installed\n"
    "feed was keyed with the data dir's list.key (fingerprints compared). Exit 0 when all\n"
    "match, 4 when the store or list.key was changed behind posgate's back or is damaged.\n";

static int
cmd_verify(int argc, char **argv)
{
    char msg[1024], root[POSGATE_CLI_PATH_MAX];
    size_t n = 0;
    int as_json = 0, rc;
    enum posgate_err err;

    int arc = json_only_args(argc, argv, "verify", usage_verify, &as_json);

    if (arc >= 0) {
        return arc;
    }
    if (posgate_cli_data_dir(data_dir_opt, root) != POSGATE_OK) {
        return EXIT_USAGE;
    }
    err = posgate_cli_verify(data_dir_opt, &n, msg, sizeof(msg));
    rc = err == POSGATE_OK                                             ? 0
         : (err == POSGATE_ERR_REJECTED || err == POSGATE_ERR_CORRUPT) ? EXIT_REJECTED
                                                                       : EXIT_IO;
    if (as_json) {
        printf("{\"ok\":%s,\"lists\":%zu,\"error\":", err == POSGATE_OK ? "true" : "false", n);
        print_json_error_end(err, msg);
    } else if (err == POSGATE_OK) {
        printf("ok: %zu list(s), every digest matches its signed value\n", n);
    } else {
        fprintf(stderr, "posgate verify: FAILED: %s\n", msg[0] ? msg : posgate_strerror(err));
    }
    return rc;
}

int
main(int argc, char **argv)
{
    int i = 1;

    if (posgate_cli_version(argc, argv, stdout)) {
        return 0;
    }
    if (argc >= 3 && strcmp(argv[1], "--data-dir") == 0) {
        data_dir_opt = argv[2];
        i = 3;
    } else if (argc >= 2 && strncmp(argv[1], "--data-dir=", 11) == 0) {
        data_dir_opt = argv[1] + 11;
        i = 2;
    }
    if (i >= argc || is_help(argv[i])) {
        fputs(usage_main, i >= argc ? stderr : stdout);
        return i >= argc ? EXIT_USAGE : 0;
    }
    argc -= i;
    argv += i;
    if (strcmp(argv[0], "init") == 0) {
        return cmd_init(argc, argv);
    }
    if (strcmp(argv[0], "import") == 0) {
        return cmd_import(argc, argv);
    }
    if (strcmp(argv[0], "sync") == 0) {
        return cmd_sync(argc, argv);
    }
    if (strcmp(argv[0], "check") == 0) {
        return cmd_check(argc, argv);
    }
    if (strcmp(argv[0], "status") == 0) {
        return cmd_status(argc, argv);
    }
    if (strcmp(argv[0], "verify") == 0) {
        return cmd_verify(argc, argv);
    }
    if (strcmp(argv[0], "compact") == 0) {
        return cmd_compact(argc, argv);
    }
    if (strcmp(argv[0], "audit") == 0) {
        return audit_cli_main(data_dir_opt, argc, argv);
    }
    if (strcmp(argv[0], "device-key") == 0) {
        return device_key_cli_main(data_dir_opt, argc, argv);
    }
    if (strcmp(argv[0], "field-sync") == 0) {
        return field_sync_cli_main(data_dir_opt, argc, argv);
    }
    fprintf(stderr, "posgate: unknown command \"%s\"\n\n%s", argv[0], usage_main);
    return EXIT_USAGE;
}
