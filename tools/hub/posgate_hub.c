/* SPDX-License-Identifier: Apache-2.0 */
/*
 * `posgate-hub`: the operator's server, in two roles that one process can play at once.
 * With --feed it serves a feed directory (metadata/ and targets/, as posgate-publish writes it)
 * over HTTP or HTTPS, as any static web server would, with ETag ("<size hex>-<mtime ns hex>"),
 * Last-Modified, conditional requests (304), single byte ranges (206/416, If-Range) and HEAD.
 * Only GET and HEAD (405 otherwise). Paths are resolved with realpath and must stay inside the
 * feed directory: a ".." segment (also when sent percent-encoded, which libmicrohttpd decodes
 * first) is refused with 403, a symbolic link that leads outside with 403, anything missing or
 * not a regular file with 404. Nothing served here is trusted by the kiosk: it verifies every
 * byte. With --db it is the audit collector: `POST /v1/audit` takes the kiosks' signed batches
 * (gzip or plain JSON) into hub_db.c, answering with the highest contiguous seq held
 * (docs/collector.md); `enroll` and `stats` work on the same database. With --tls-client-ca a
 * client certificate signed by that CA is required for both roles (403 without one).
 *
 * This file holds the usage, main's choice of command and the commands that work on the
 * database alone (enroll, stats, migrate-db, decision, decisions, prune). `serve` is
 * hub_serve.c and the answers to its requests hub_http.c, the users of libmicrohttpd (through
 * hub_internal.h; main asks it only for its version); `ingest` is hub_ingest.c, `devices`
 * hub_report.c and `report` (the transparency report) hub_transparency.c.
 */
#define _DEFAULT_SOURCE
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "crypto.h"
#include "hub_db.h"
#include "hub_ingest.h"
#include "hub_internal.h"
#include "hub_report.h"
#include "hub_text.h"
#include "hub_transparency.h"
#include "plat_clock.h"
#include "plat_file.h"
#include "version.h"

const char hub_usage[] =
    "usage: posgate-hub [serve] [--feed DIR] [--db HUB.db] --listen ADDR:PORT\n"
    "                   [--tls-cert CERT.pem --tls-key KEY.pem [--tls-client-ca CA.pem]\n"
    "                    [--admin-client-ca CA.pem]]\n"
    "                   [--port-file FILE] [--max-body BYTES] [--max-inflight N]\n"
    "                   [--max-bodies-per-peer N] [--max-conns-per-peer N] [--body-timeout S]\n"
    "                   [--auditor-token T | --auditor-token-file F]\n"
    "                   [--admin-token T | --admin-token-file F] [--silent-minutes N]\n"
    "                   [--db-connections N]\n"
    "                   [--log-level debug|info|warn|error]\n"
    "       posgate-hub enroll --db HUB.db --pub DEVICE.pub\n"
    "       posgate-hub stats --db HUB.db [--json]\n"
    "       posgate-hub migrate-db --from HUB.db --to postgresql://...\n"
    "       posgate-hub ingest STICK --db HUB.db [--json]   (posgate field-sync's stick)\n"
    "       posgate-hub devices --db HUB.db [--json]        (each device's latest status)\n"
    "       posgate-hub decision ID --db HUB.db [--feed DIR] [--json]   (answering a contest)\n"
    "       posgate-hub decisions --listing LIST/LISTING_ID --db HUB.db [--since T] [--json]\n"
    "       posgate-hub prune --older-than DURATION --db HUB.db\n"
    "       posgate-hub report --month YYYY-MM --db HUB.db [--json|--html]   (transparency)\n"
    "Each command answers --help.\n"
    "\n"
    "--db is a SQLite file (created when missing) or a libpq URI, postgresql://... or\n"
    "postgres://...: the PostgreSQL store, which several posgate-hub processes may share.\n"
    "\n"
    "serve: with --feed, serves a feed directory (metadata/ and targets/ from posgate-publish)\n"
    "to kiosks (`posgate sync --url http://ADDR:PORT`), with ETag, Last-Modified, conditional\n"
    "requests, byte ranges and HEAD; GET and HEAD only; paths outside DIR are refused. With --db,\n"
    "collects audit batches at POST /v1/audit (docs/collector.md). At least one of the two.\n"
    "\n"
    "  --listen ADDR:PORT   127.0.0.1:8080, [::1]:8080; PORT 0 picks a free port\n"
    "  --tls-cert, --tls-key  serve HTTPS with this certificate chain and key (PEM)\n"
    "  --tls-client-ca CA   the feed and uploads require a client certificate signed by CA\n"
    "                       (mTLS; the kiosks' CA)\n"
    "  --admin-client-ca CA a client certificate signed by CA is admin (the dashboard and\n"
    "                       /v1/fleet/): a CA of its own, not the kiosks' (every kiosk holds a\n"
    "                       certificate of theirs); needs --tls-cert\n"
    "  --port-file FILE     write the port actually bound (for PORT 0) to FILE\n"
    "  --max-body BYTES     largest audit request body as sent (default 8388608): 413 beyond\n"
    "  --max-inflight N     audit batches judged at once, once their body is here (default 16):\n"
    "                       429 beyond\n"
    "  --max-bodies-per-peer N  audit bodies arriving at once from one address (default 4):\n"
    "                       429 beyond\n"
    "  --max-conns-per-peer N  connections from one address (default 32): closed beyond\n"
    "  --body-timeout S     an audit body must arrive whole within S seconds (default 30),\n"
    "                       else the connection is closed; 10 s without a byte closes any\n"
    "                       connection\n"
    "  --auditor-token T    answer GET /v1/decisions/{id} to a bearer of T (with --db;\n"
    "                       without it, decision queries are refused)\n"
    "  --admin-token T      the fleet dashboard at /dashboard and GET /v1/fleet/... for a bearer\n"
    "                       of T (a browser logs in with it once); with --admin-client-ca a\n"
    "                       certificate of that CA is admin too; without either, both are\n"
    "                       refused\n"
    "  --admin-token-file F, --auditor-token-file F  the token from the first line of F, a file\n"
    "                       only its owner reads (chmod 600); a token given as an argument shows\n"
    "                       in `ps` to every user of the machine\n"
    "                       A peer that presents 10 wrong tokens within a minute gets 429 for the\n"
    "                       rest of that minute, whatever token it presents\n"
    "  --db-connections N   PostgreSQL: judge up to N batches at once, each on its own\n"
    "                       connection to the server (1 to 16, default 4)\n"
    "  --silent-minutes N   the dashboard calls a device silent after N minutes without a status\n"
    "                       report (default 60)\n"
    "\n"
    "Logs one line per request at info level on stderr. SIGTERM or SIGINT stop it (exit 0).\n"
    "exit codes: 0 stopped by a signal, 2 usage, 5 cannot start\n";

static const char usage_enroll[] =
    "usage: posgate-hub enroll --db HUB.db --pub DEVICE.pub\n"
    "\n"
    "Enrols a kiosk at the collector: DEVICE.pub is its device.pub (`posgate device-key`).\n"
    "Prints the device id (hex of the first 16 bytes of SHA-256 over the file's bytes).\n"
    "Enrolling the same key again changes nothing. Batches from devices not enrolled are refused.\n"
    "exit codes: 0 enrolled (or already), 2 usage, 4 not a P-256 public key or the id is\n"
    "enrolled with another key, 5 I/O\n";

static const char usage_stats[] =
    "usage: posgate-hub stats --db HUB.db [--json]\n"
    "\n"
    "Prints what the collector holds: events, by_decision (allow, deny, refer, summary and\n"
    "allow_folded, the ALLOWs the summaries stand for), and per device its last_seq (highest\n"
    "contiguous seq held), events, gaps (count, and gap_ranges [from, to]) and chain_ok\n"
    "(false once a chain break was found; broken_at names the seq).\n"
    "exit codes: 0 shown, 2 usage, 5 I/O\n";

static const char usage_migrate[] =
    "usage: posgate-hub migrate-db --from HUB.db --to postgresql://...\n"
    "\n"
    "Copies a collector's SQLite file (devices, events, gaps, chain breaks, batch records) into\n"
    "a PostgreSQL database that holds no device yet, in one transaction: all or nothing. Stop\n"
    "the hubs writing to HUB.db first; then start them with --db postgresql://...\n"
    "exit codes: 0 copied, 2 usage, 4 the destination holds devices or is not PostgreSQL,\n"
    "5 I/O\n";

static int
cmd_enroll(int argc, char **argv)
{
    const char *dbpath = NULL, *pub = NULL;
    struct hub_db *db = NULL;
    struct buf pem = BUF_INIT(CRYPTO_PEM_MAX);
    char id[DEVICE_ID_HEX_LEN + 1], msg[512] = "";
    bool added = false;
    enum posgate_err err;
    int rc = 5;

    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            fputs(usage_enroll, stdout);
            return 0;
        }
        if (i + 1 < argc && strcmp(argv[i], "--db") == 0) {
            dbpath = argv[++i];
        } else if (i + 1 < argc && strcmp(argv[i], "--pub") == 0) {
            pub = argv[++i];
        } else {
            fprintf(stderr, "posgate-hub enroll: unexpected argument \"%s\"\n\n%s", argv[i],
                    usage_enroll);
            return 2;
        }
    }
    if (dbpath == NULL || pub == NULL) {
        fprintf(stderr, "posgate-hub enroll: expected --db HUB.db and --pub DEVICE.pub\n\n%s",
                usage_enroll);
        return 2;
    }
    err = plat_read_file(pub, &pem);
    if (err != POSGATE_OK) {
        fprintf(stderr, "posgate-hub enroll: cannot read %s: %s\n", pub, posgate_strerror(err));
        goto out;
    }
    if (hub_db_open(dbpath, &db, msg, sizeof(msg)) != POSGATE_OK) {
        fprintf(stderr, "posgate-hub enroll: %s\n", msg);
        goto out;
    }
    err = hub_db_enroll(db, (const char *)pem.data, pem.len, plat_wall_s(), id, &added, msg,
                        sizeof(msg));
    if (err == POSGATE_ERR_INVALID || err == POSGATE_ERR_STATE) {
        fprintf(stderr, "posgate-hub enroll: %s: %s\n", pub, msg);
        rc = 4;
        goto out;
    }
    if (err != POSGATE_OK) {
        fprintf(stderr, "posgate-hub enroll: %s\n", msg[0] != 0 ? msg : posgate_strerror(err));
        goto out;
    }
    printf("%s\n", id);
    fprintf(stderr, "posgate-hub: device %s %s\n", id, added ? "enrolled" : "was enrolled already");
    rc = 0;
out:
    hub_db_close(db);
    buf_free(&pem);
    return rc;
}

static int
cmd_stats(int argc, char **argv)
{
    const char *dbpath = NULL;
    struct hub_db *db = NULL;
    struct buf out = BUF_INIT(SIZE_MAX / 2);
    char msg[512] = "";
    int json = 0, rc = 5;
    enum posgate_err err;

    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            fputs(usage_stats, stdout);
            return 0;
        }
        if (strcmp(argv[i], "--json") == 0) {
            json = 1;
        } else if (i + 1 < argc && strcmp(argv[i], "--db") == 0) {
            dbpath = argv[++i];
        } else {
            fprintf(stderr, "posgate-hub stats: unexpected argument \"%s\"\n\n%s", argv[i],
                    usage_stats);
            return 2;
        }
    }
    if (dbpath == NULL) {
        fprintf(stderr, "posgate-hub stats: expected --db HUB.db\n\n%s", usage_stats);
        return 2;
    }
    if (!hub_db_is_uri(dbpath) && !plat_exists(dbpath)) {
        fprintf(stderr, "posgate-hub stats: %s does not exist\n", dbpath);
        return 5;
    }
    if (hub_db_open_read(dbpath, &db, msg, sizeof(msg)) != POSGATE_OK) {
        fprintf(stderr, "posgate-hub stats: %s\n", msg);
        goto out;
    }
    err = json ? hub_db_stats_json(db, &out) : hub_db_stats_text(db, &out);
    if (err != POSGATE_OK) {
        fprintf(stderr, "posgate-hub stats: %s\n", posgate_strerror(err));
        goto out;
    }
    fwrite(out.data, 1, out.len, stdout);
    rc = fflush(stdout) == 0 ? 0 : 5;
out:
    hub_db_close(db);
    buf_free(&out);
    return rc;
}

static int
cmd_migrate(int argc, char **argv)
{
    const char *from = NULL, *to = NULL;
    struct hub_db *src = NULL, *dst = NULL;
    char msg[512] = "";
    uint64_t n = 0;
    enum posgate_err err;
    int rc = 5;

    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            fputs(usage_migrate, stdout);
            return 0;
        }
        if (i + 1 < argc && strcmp(argv[i], "--from") == 0) {
            from = argv[++i];
        } else if (i + 1 < argc && strcmp(argv[i], "--to") == 0) {
            to = argv[++i];
        } else {
            fprintf(stderr, "posgate-hub migrate-db: unexpected argument \"%s\"\n\n%s", argv[i],
                    usage_migrate);
            return 2;
        }
    }
    if (from == NULL || to == NULL || hub_db_is_uri(from) || !hub_db_is_uri(to)) {
        fprintf(stderr,
                "posgate-hub migrate-db: expected --from a SQLite file and --to a "
                "postgresql:// URI\n\n%s",
                usage_migrate);
        return 2;
    }
    if (!plat_exists(from)) {
        fprintf(stderr, "posgate-hub migrate-db: %s does not exist\n", from);
        return 5;
    }
    if (hub_db_open(from, &src, msg, sizeof(msg)) != POSGATE_OK ||
        hub_db_open(to, &dst, msg, sizeof(msg)) != POSGATE_OK) {
        fprintf(stderr, "posgate-hub migrate-db: %s\n", msg);
        goto out;
    }
    err = hub_db_migrate(src, dst, &n, msg, sizeof(msg));
    if (err != POSGATE_OK) {
        fprintf(stderr, "posgate-hub migrate-db: %s\n", msg[0] != 0 ? msg : posgate_strerror(err));
        rc = err == POSGATE_ERR_STATE ? 4 : 5;
        goto out;
    }
    fprintf(stderr, "posgate-hub: %llu events copied from %s\n", (unsigned long long)n, from);
    rc = 0;
out:
    hub_db_close(src);
    hub_db_close(dst);
    return rc;
}

static const char usage_decision[] =
    "usage: posgate-hub decision ID --db HUB.db [--feed DIR] [--json]\n"
    "  what was decided under that decision id and why (docs/collector.md); exit 3 when no\n"
    "  event holds it. Each answer is counted (the lookups of the transparency report)\n";
static const char usage_decisions[] =
    "usage: posgate-hub decisions --listing LIST/LISTING_ID --db HUB.db [--since T] [--json]\n"
    "  every DENY and REFER that cited the listing: decision id, time, decision, device,\n"
    "  service, operator (T: RFC 3339 UTC or its prefix, 2025-03-01)\n";
static const char usage_prune[] =
    "usage: posgate-hub prune --older-than DURATION --db HUB.db\n"
    "  deletes events received more than DURATION ago (30d, 12w, 2y: d, w, y = 365 d),\n"
    "  keeping each device's chain anchor\n";

/* decision, decisions and prune: their common options; 2 on a usage error, else 0. */
static int
query_args(int argc, char **argv, const char *usage_text, const char *name, const char **dbpath,
           const char **pos, const char **opt, const char *opt_name, const char **since,
           const char **feed, bool *json)
{
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            fputs(usage_text, stdout);
            return 1;
        }
        if (json != NULL && strcmp(argv[i], "--json") == 0) {
            *json = true;
        } else if (i + 1 < argc && strcmp(argv[i], "--db") == 0) {
            *dbpath = argv[++i];
        } else if (opt != NULL && i + 1 < argc && strcmp(argv[i], opt_name) == 0) {
            *opt = argv[++i];
        } else if (since != NULL && i + 1 < argc && strcmp(argv[i], "--since") == 0) {
            *since = argv[++i];
        } else if (feed != NULL && i + 1 < argc && strcmp(argv[i], "--feed") == 0) {
            *feed = argv[++i];
        } else if (pos != NULL && *pos == NULL && argv[i][0] != '-') {
            *pos = argv[i];
        } else {
            fprintf(stderr, "posgate-hub %s: unexpected argument \"%s\"\n\n%s", name, argv[i],
                    usage_text);
            return 2;
        }
    }
    if (*dbpath == NULL || (pos != NULL && *pos == NULL) || (opt != NULL && *opt == NULL)) {
        fprintf(stderr, "posgate-hub %s: missing arguments\n\n%s", name, usage_text);
        return 2;
    }
    return 0;
}

/* read: a command that only reads (hub_db_open_read: a standby answers it). */
static int
open_db(const char *name, const char *dbpath, bool read, struct hub_db **db)
{
    char msg[512] = "";

    if (!hub_db_is_uri(dbpath) && !plat_exists(dbpath)) {
        fprintf(stderr, "posgate-hub %s: %s does not exist\n", name, dbpath);
        return 5;
    }
    if ((read ? hub_db_open_read : hub_db_open)(dbpath, db, msg, sizeof(msg)) != POSGATE_OK) {
        fprintf(stderr, "posgate-hub %s: %s\n", name, msg);
        return 5;
    }
    return 0;
}

static int
cmd_decision(int argc, char **argv)
{
    const char *dbpath = NULL, *id = NULL, *feed = NULL;
    struct hub_db *db = NULL;
    struct buf out = BUF_INIT(SIZE_MAX / 2);
    bool json = false;
    enum posgate_err err;
    int rc = query_args(argc, argv, usage_decision, "decision", &dbpath, &id, NULL, NULL, NULL,
                        &feed, &json);

    if (rc != 0) {
        return rc == 1 ? 0 : rc;
    }
    if (!hub_lower_hex(id, 32)) {
        fprintf(stderr, "posgate-hub decision: a decision id is 32 lowercase hex digits (as the "
                        "counter notice prints it), not \"%.80s\"\n", id);
        return 2;
    }
    rc = open_db("decision", dbpath, false, &db); /* records the lookup (the report counts it) */
    if (rc != 0) {
        return rc;
    }
    err = hub_db_lookup(db, id, feed, json, "cli", plat_wall_s(), &out);
    if (err == POSGATE_ERR_NOTFOUND) {
        fprintf(stderr, "posgate-hub decision: no event held has decision id %s\n", id);
        rc = 3;
    } else if (err != POSGATE_OK) {
        fprintf(stderr, "posgate-hub decision: %s\n", posgate_strerror(err));
        rc = 5;
    } else {
        fwrite(out.data, 1, out.len, stdout);
        rc = fflush(stdout) == 0 ? 0 : 5;
    }
    hub_db_close(db);
    buf_free(&out);
    return rc;
}

static int
cmd_decisions(int argc, char **argv)
{
    const char *dbpath = NULL, *listing = NULL, *since = NULL, *slash;
    struct hub_db *db = NULL;
    struct buf out = BUF_INIT(SIZE_MAX / 2);
    char list[AUDIT_ID_MAX + 1];
    bool json = false;
    enum posgate_err err;
    int rc = query_args(argc, argv, usage_decisions, "decisions", &dbpath, NULL, &listing,
                        "--listing", &since, NULL, &json);

    if (rc != 0) {
        return rc == 1 ? 0 : rc;
    }
    slash = strchr(listing, '/');
    if (slash == NULL || slash == listing || slash[1] == 0 ||
        (size_t)(slash - listing) > AUDIT_ID_MAX) {
        fprintf(stderr, "posgate-hub decisions: --listing expects LIST/LISTING_ID, not \"%s\"\n",
                listing);
        return 2;
    }
    snprintf(list, sizeof(list), "%.*s", (int)(slash - listing), listing);
    rc = open_db("decisions", dbpath, true, &db);
    if (rc != 0) {
        return rc;
    }
    err = hub_db_decisions(db, list, slash + 1, since, json, &out, NULL);
    if (err != POSGATE_OK) {
        fprintf(stderr, "posgate-hub decisions: %s\n",
                err == POSGATE_ERR_INVALID ? "--since expects an RFC 3339 UTC time or its prefix"
                                           : posgate_strerror(err));
        rc = err == POSGATE_ERR_INVALID ? 2 : 5;
    } else {
        fwrite(out.data, 1, out.len, stdout);
        rc = fflush(stdout) == 0 ? 0 : 5;
    }
    hub_db_close(db);
    buf_free(&out);
    return rc;
}

/* "30d", "12w", "2y", "3600s", "48h": seconds, or -1. */
static int64_t
parse_duration(const char *s)
{
    char *end = NULL;
    long long v = strtoll(s, &end, 10);
    int64_t unit;

    if (end == s || v <= 0 || v > 100000 || end[0] == 0 || end[1] != 0) {
        return -1;
    }
    unit = end[0] == 's' ? 1 : end[0] == 'h' ? 3600 : end[0] == 'd' ? 86400
         : end[0] == 'w' ? 7 * 86400 : end[0] == 'y' ? 365 * 86400 : -1;
    return unit < 0 ? -1 : (int64_t)v * unit;
}

static int
cmd_prune(int argc, char **argv)
{
    const char *dbpath = NULL, *older = NULL;
    struct hub_db *db = NULL;
    struct hub_prune res;
    char msg[512] = "";
    int64_t d, now = plat_wall_s();
    enum posgate_err err;
    int rc = query_args(argc, argv, usage_prune, "prune", &dbpath, NULL, &older, "--older-than",
                        NULL, NULL, NULL);

    if (rc != 0) {
        return rc == 1 ? 0 : rc;
    }
    d = parse_duration(older);
    if (d < 0) {
        fprintf(stderr, "posgate-hub prune: --older-than expects N followed by s, h, d, w or y, "
                        "not \"%s\"\n", older);
        return 2;
    }
    rc = open_db("prune", dbpath, false, &db);
    if (rc != 0) {
        return rc;
    }
    err = hub_db_prune(db, now - d, now, &res, msg, sizeof(msg));
    if (err != POSGATE_OK) {
        fprintf(stderr, "posgate-hub prune: %s\n", msg[0] != 0 ? msg : posgate_strerror(err));
        rc = 5;
    } else {
        printf("pruned %" PRIu64 " events received before %" PRId64 " (%" PRIu64
               " partitions dropped whole); %" PRIu64 " chain anchors moved\n",
               res.events, now - d, res.partitions, res.anchors);
        rc = fflush(stdout) == 0 ? 0 : 5;
    }
    hub_db_close(db);
    return rc;
}

/* The commands, each given the arguments after its name. */
static const struct {
    const char *name;
    int (*run)(int argc, char **argv);
} commands[] = {
    {"serve", hub_serve_main},   {"enroll", cmd_enroll},      {"stats", cmd_stats},
    {"migrate-db", cmd_migrate}, {"decision", cmd_decision},  {"decisions", cmd_decisions},
    {"prune", cmd_prune},        {"ingest", hub_ingest_main}, {"devices", hub_devices_main},
    {"report", hub_transparency_main},
};

int
main(int argc, char **argv)
{
    if (version_asked(argc, argv)) {
        char extra[128];

        snprintf(extra, sizeof(extra), "libmicrohttpd %s\n", MHD_get_version());
        version_print(stdout, "posgate-hub", VERSION_MBEDTLS | VERSION_SQLITE | VERSION_CJSON,
                      extra);
        return 0;
    }
    if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        fputs(hub_usage, stdout);
        return 0;
    }
    for (size_t i = 0; argc >= 2 && i < sizeof(commands) / sizeof(commands[0]); i++) {
        if (strcmp(argv[1], commands[i].name) == 0) {
            return commands[i].run(argc - 2, argv + 2);
        }
    }
    if (argc >= 2 && argv[1][0] != '-') {
        fprintf(stderr, "posgate-hub: unknown command \"%s\"\n\n%s", argv[1], hub_usage);
        return 2;
    }
    return hub_serve_main(argc - 1, argv + 1);
}
