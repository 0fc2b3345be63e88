/* SPDX-License-Identifier: Apache-2.0 */
/*
 * `posgate audit list | export | verify` and `posgate device-key`: reading the audit queue of a
 * data dir without starting a writer (the daemon may be appending at the same time; WAL lets
 * both proceed), and printing the device's public key for enrolment at the collector.
 */
#define _POSIX_C_SOURCE 200809L
#include "audit_cli.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "plat_file.h"
#include "plat_text.h"
#include "posgate.h"
#include "posgate_admin.h"

#define EXIT_OK       0
#define EXIT_USAGE    2
#define EXIT_REJECTED 4
#define EXIT_IO       5

static const char usage_audit[] =
    "usage: posgate [--data-dir DIR] audit list [--json] [--since SEQ]\n"
    "       posgate [--data-dir DIR] audit export --out FILE [--since SEQ]\n"
    "       posgate [--data-dir DIR] audit verify [--json]\n"
    "\n"
    "The audit trail of this terminal (DIR/audit.db): one hash-chained event per decision, with\n"
    "device seq, time, decision, service, operator, keyed subject hashes (never identifiers in\n"
    "clear), the listings that matched, the feed version and list digests, and any supervisor\n"
    "override. See docs/audit.md.\n"
    "\n"
    "  list     a table: seq, time, decision, service, operator, listings; --json prints one\n"
    "           array of the events as stored (canonical JSON)\n"
    "  export   the events as JSON lines (one canonical event per line), written atomically\n"
    "  verify   recomputes the hash chain from the oldest kept event: exit 0 when intact, 4 when\n"
    "           an event was edited, removed or reordered behind posgate's back\n"
    "  --since SEQ  only events with a seq above SEQ\n";

static const char usage_device_key[] =
    "usage: posgate [--data-dir DIR] device-key [--json]\n"
    "\n"
    "Prints this terminal's public device key (PEM), made at `posgate init`. Enrol it at the\n"
    "collector (posgate-hub enroll --pub DEVICE.pub); the kiosk signs the head of its audit\n"
    "chain with the private half (DIR/device.key, mode 0600), which never leaves the terminal.\n"
    "  --json  {\"device_id\": ..., \"pem\": ...}; the device id is the hex of the first 16 bytes\n"
    "          of SHA-256 over the PEM text\n";

static int
is_help(const char *a)
{
    return strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0;
}

static int
usage(const char *cmd, const char *what, const char *arg)
{
    fprintf(stderr, "posgate %s: %s%s%s%s\n(see posgate %s --help)\n", cmd, what,
            arg != NULL ? " \"" : "", arg != NULL ? arg : "", arg != NULL ? "\"" : "", cmd);
    return EXIT_USAGE;
}

static void
put_json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p != 0; p++) {
        if (*p == '"' || *p == '\\') {
            fputc('\\', f);
            fputc(*p, f);
        } else if (*p == '\n') {
            fputs("\\n", f);
        } else if (*p < 0x20) {
            fprintf(f, "\\u%04x", *p);
        } else {
            fputc(*p, f);
        }
    }
    fputc('"', f);
}

/* Opens the queue read-only. *q stays NULL (exit 0, nothing to show) when no decision was
 * audited yet; an uninitialised data dir is an error. */
static int
open_ro(const char *data_dir, const char *cmd, struct posgate_cli_audit **q)
{
    char msg[1024], root[POSGATE_CLI_PATH_MAX];
    enum posgate_err err;

    *q = NULL;
    if (posgate_cli_data_dir(data_dir, root) != POSGATE_OK) {
        fprintf(stderr, "posgate %s: data dir path too long\n", cmd);
        return EXIT_USAGE;
    }
    err = posgate_cli_audit_open(data_dir, q, msg, sizeof(msg));
    if (err != POSGATE_OK) {
        fprintf(stderr, "posgate %s: %s\n", cmd, msg);
        return err == POSGATE_ERR_CORRUPT ? EXIT_REJECTED : EXIT_IO;
    }
    return EXIT_OK;
}

static int
parse_seq(const char *s, uint64_t *out)
{
    char *end = NULL;
    unsigned long long v;

    if (s == NULL || *s < '0' || *s > '9') {
        return 0;
    }
    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno != 0 || end == s || *end != 0) {
        return 0;
    }
    *out = v;
    return 1;
}

struct list_ctx {
    FILE *f;
    int json;
    uint64_t n;
    enum posgate_err err;
};

static int
list_one(void *ctx, uint64_t seq, const char *body, size_t len)
{
    struct list_ctx *c = ctx;
    struct posgate_cli_audit_row info;
    char msg[256];

    if (c->json) {
        fputs(c->n > 0 ? ",\n" : "\n", c->f);
        fwrite(body, 1, len, c->f);
    } else if (posgate_cli_audit_row(body, len, &info, msg, sizeof(msg)) != POSGATE_OK) {
        fprintf(c->f, "%-8llu (unreadable: %s)\n", (unsigned long long)seq, msg);
    } else {
        fprintf(c->f, "%-8llu %-20s %-6s %-16s %-16s %s\n", (unsigned long long)seq, info.time,
                info.decision, info.kind[0] == 'a' ? "(summary)" : info.service,
                info.operator_id[0] ? info.operator_id : "-",
                info.listings[0] ? info.listings : "-");
    }
    c->n++;
    return 0;
}

static int
export_one(void *ctx, uint64_t seq, const char *body, size_t len)
{
    struct plat_atomic_file *f = ((struct plat_atomic_file **)ctx)[0];
    struct list_ctx *c = ((struct list_ctx **)ctx)[1];

    const char *bad;
    size_t at = 0;

    /* one JSON text per line: an event stored by an older version with bytes that are not
     * UTF-8 text stops the export rather than writing a line no reader can parse */
    bad = plat_text_check(body, len, 0, &at);
    if (bad != NULL) {
        fprintf(stderr,
                "posgate audit export: event seq %llu: expected UTF-8 JSON text, found %s at "
                "byte %zu\n",
                (unsigned long long)seq, bad, at);
        c->err = POSGATE_ERR_CORRUPT;
        return 1;
    }
    c->err = plat_atomic_write(f, body, len);
    if (c->err == POSGATE_OK) {
        c->err = plat_atomic_write(f, "\n", 1);
    }
    c->n++;
    return c->err != POSGATE_OK;
}

static int
cmd_list(const char *data_dir, int argc, char **argv)
{
    struct posgate_cli_audit *q = NULL;
    struct list_ctx c = {stdout, 0, 0, POSGATE_OK};
    uint64_t since = 0;
    enum posgate_err err;
    int rc;

    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0) {
            c.json = 1;
        } else if (strcmp(argv[i], "--since") == 0 && i + 1 < argc) {
            if (!parse_seq(argv[++i], &since)) {
                return usage("audit", "--since: expected a seq (a whole number), found", argv[i]);
            }
        } else {
            return usage("audit", "unexpected argument", argv[i]);
        }
    }
    rc = open_ro(data_dir, "audit list", &q);
    if (rc != EXIT_OK) {
        return rc;
    }
    if (c.json) {
        fputs("[", stdout);
    } else {
        printf("%-8s %-20s %-6s %-16s %-16s %s\n", "SEQ", "TIME", "DEC", "SERVICE", "OPERATOR",
               "LISTINGS");
    }
    err = q != NULL ? posgate_cli_audit_each(q, since, list_one, &c) : POSGATE_OK;
    if (c.json) {
        fputs(c.n > 0 ? "\n]\n" : "]\n", stdout);
    }
    posgate_cli_audit_close(q);
    if (err != POSGATE_OK) {
        fprintf(stderr, "posgate audit list: %s\n", posgate_strerror(err));
        return EXIT_IO;
    }
    return EXIT_OK;
}

static int
cmd_export(const char *data_dir, int argc, char **argv)
{
    struct posgate_cli_audit *q = NULL;
    struct plat_atomic_file f;
    struct list_ctx c = {NULL, 0, 0, POSGATE_OK};
    void *ctx[2];
    const char *out = NULL;
    uint64_t since = 0;
    enum posgate_err err;
    int rc;

    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--out") == 0 && i + 1 < argc) {
            out = argv[++i];
        } else if (strcmp(argv[i], "--since") == 0 && i + 1 < argc) {
            if (!parse_seq(argv[++i], &since)) {
                return usage("audit", "--since: expected a seq (a whole number), found", argv[i]);
            }
        } else {
            return usage("audit", "unexpected argument", argv[i]);
        }
    }
    if (out == NULL) {
        return usage("audit", "export: --out FILE is required", NULL);
    }
    rc = open_ro(data_dir, "audit export", &q);
    if (rc != EXIT_OK) {
        return rc;
    }
    f.fd = -1;
    err = plat_atomic_open(&f, out, 0600);
    if (err == POSGATE_OK && q != NULL) {
        ctx[0] = &f;
        ctx[1] = &c;
        err = posgate_cli_audit_each(q, since, export_one, ctx);
        if (err == POSGATE_OK) {
            err = c.err;
        }
    }
    if (err == POSGATE_OK) {
        err = plat_atomic_commit(&f);
    }
    plat_atomic_abort(&f);
    posgate_cli_audit_close(q);
    if (err != POSGATE_OK) {
        fprintf(stderr, "posgate audit export: %s: %s (nothing written)\n", out,
                posgate_strerror(err));
        return EXIT_IO;
    }
    printf("exported %llu event(s) to %s\n", (unsigned long long)c.n, out);
    return EXIT_OK;
}

static int
cmd_verify(const char *data_dir, int argc, char **argv)
{
    struct posgate_cli_audit *q = NULL;
    uint64_t n = 0, first = 0, head = 0, acked = 0;
    char msg[1024] = "";
    int json = 0, rc;
    enum posgate_err err = POSGATE_OK;

    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0) {
            json = 1;
        } else {
            return usage("audit", "unexpected argument", argv[i]);
        }
    }
    rc = open_ro(data_dir, "audit verify", &q);
    if (rc != EXIT_OK) {
        return rc;
    }
    if (q != NULL) {
        err = posgate_cli_audit_verify(q, &n, &first, &head, &acked, msg, sizeof(msg));
    }
    posgate_cli_audit_close(q);
    rc = err == POSGATE_OK ? EXIT_OK : err == POSGATE_ERR_CORRUPT ? EXIT_REJECTED : EXIT_IO;
    if (json) {
        printf("{\"ok\":%s,\"events\":%llu,\"first_seq\":%llu,\"head_seq\":%llu,"
               "\"acked_seq\":%llu,\"error\":",
               err == POSGATE_OK ? "true" : "false", (unsigned long long)n,
               (unsigned long long)first, (unsigned long long)head, (unsigned long long)acked);
        if (err == POSGATE_OK) {
            fputs("null", stdout);
        } else {
            put_json_str(stdout, msg[0] ? msg : posgate_strerror(err));
        }
        puts("}");
    } else if (err == POSGATE_OK) {
        printf("ok: %llu event(s), seq %llu to %llu, the chain is intact (acknowledged up to "
               "%llu)\n",
               (unsigned long long)n, (unsigned long long)first, (unsigned long long)head,
               (unsigned long long)acked);
    } else {
        fprintf(stderr, "posgate audit verify: FAILED: %s\n", msg[0] ? msg : posgate_strerror(err));
    }
    return rc;
}

int
audit_cli_main(const char *data_dir, int argc, char **argv)
{
    if (argc < 2 || is_help(argv[1])) {
        fputs(usage_audit, argc < 2 ? stderr : stdout);
        return argc < 2 ? EXIT_USAGE : EXIT_OK;
    }
    for (int i = 2; i < argc; i++) {
        if (is_help(argv[i])) {
            fputs(usage_audit, stdout);
            return EXIT_OK;
        }
    }
    if (strcmp(argv[1], "list") == 0) {
        return cmd_list(data_dir, argc, argv);
    }
    if (strcmp(argv[1], "export") == 0) {
        return cmd_export(data_dir, argc, argv);
    }
    if (strcmp(argv[1], "verify") == 0) {
        return cmd_verify(data_dir, argc, argv);
    }
    return usage("audit", "expected list, export or verify, found", argv[1]);
}

int
device_key_cli_main(const char *data_dir, int argc, char **argv)
{
    struct buf pem = BUF_INIT(1u << 16);
    char msg[1024], id[POSGATE_CLI_DEVICE_ID_LEN + 1], root[POSGATE_CLI_PATH_MAX];
    int json = 0;
    enum posgate_err err;

    for (int i = 1; i < argc; i++) {
        if (is_help(argv[i])) {
            fputs(usage_device_key, stdout);
            return EXIT_OK;
        } else if (strcmp(argv[i], "--json") == 0) {
            json = 1;
        } else {
            return usage("device-key", "unexpected argument", argv[i]);
        }
    }
    if (posgate_cli_data_dir(data_dir, root) != POSGATE_OK) {
        return EXIT_USAGE;
    }
    err = posgate_cli_device_key(data_dir, id, &pem, msg, sizeof(msg));
    if (err != POSGATE_OK) {
        fprintf(stderr, "posgate device-key: %s%s\n", msg,
                err == POSGATE_ERR_NOTFOUND ? " (posgate init makes it)" : "");
        buf_free(&pem);
        return err == POSGATE_ERR_INVALID ? EXIT_REJECTED : EXIT_IO;
    }
    if (json) {
        printf("{\"device_id\":\"%s\",\"pem\":", id);
        put_json_str(stdout, buf_cstr(&pem));
        puts("}");
    } else {
        fputs(buf_cstr(&pem), stdout);
    }
    buf_free(&pem);
    return EXIT_OK;
}
