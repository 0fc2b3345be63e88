/* SPDX-License-Identifier: Apache-2.0 */
/*
 * `posgate-hub serve` (hub_internal.h): reads the command line, resolves the feed directory
 * (--feed) and opens the collector's store (--db), starts libmicrohttpd on the address given,
 * HTTPS with --tls-cert and --tls-key and client certificates with --tls-client-ca, and waits
 * for SIGTERM or SIGINT. Every request is answered by hub_http.c. Exit 0 when stopped by a
 * signal, 2 on a usage error (a --feed that does not resolve too), 5 when it cannot start.
 */
#define _DEFAULT_SOURCE
#include "hub_internal.h"

#include <errno.h>
#include <sys/stat.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include "buf.h"
#include "hub_dashboard.h"
#include "hub_throttle.h"
#include "plat_file.h"
#include "plat_log.h"

#define HUB_PEM_MAX (256 * 1024)

/* serve's options as the command line gives them. */
struct serve_opts {
    const char *feed, *listen, *cert, *key, *ca, *admin_ca, *port_file, *dbpath, *auditor, *admin;
    const char *admin_file, *auditor_file;
    uint64_t silent_min; /* --silent-minutes */
    uint64_t db_conns;   /* --db-connections: 0 the store's default */
    uint64_t max_body, max_inflight, peer_bodies, peer_conns, body_timeout;
    enum plat_log_level lvl;
};

/* The PEM files of --tls-cert, --tls-key, --tls-client-ca and --admin-client-ca, read before MHD
 * starts; trust: both CAs, for the handshake to take a certificate of either. */
struct serve_pems {
    struct buf cert, key, ca, admin_ca, trust;
    struct buf admin, auditor; /* the tokens read from --admin-token-file, --auditor-token-file */
};

#define TOKEN_FILE_MAX 4096

/* A token from a file that only its owner may read (its first line; a final newline is not part
 * of it): 1, or 0 said on stderr. A token given as an argument shows in `ps` to every user of the
 * machine; a file does not. */
static int
read_token(const char *opt, const char *path, struct buf *out, const char **token)
{
    struct stat st;
    enum posgate_err err;

    if (stat(path, &st) != 0) {
        fprintf(stderr, "posgate-hub: %s %s: %s\n", opt, path, strerror(errno));
        return 0;
    }
    if ((st.st_mode & 077) != 0) {
        fprintf(stderr,
                "posgate-hub: %s %s: readable by other users (mode %03o): expected a file only "
                "its owner reads (chmod 600)\n",
                opt, path, (unsigned)(st.st_mode & 0777));
        return 0;
    }
    err = plat_read_file(path, out);
    if (err != POSGATE_OK) {
        fprintf(stderr, "posgate-hub: %s %s: %s\n", opt, path, posgate_strerror(err));
        return 0;
    }
    for (size_t i = 0; i < out->len; i++) {
        if (out->data[i] == '\n' || out->data[i] == '\r') {
            out->len = i;
        }
    }
    if (out->len > 0 && (buf_append(out, "", 1) != POSGATE_OK || out->len-- == 0)) {
        fprintf(stderr, "posgate-hub: %s %s: longer than %d bytes\n", opt, path, TOKEN_FILE_MAX);
        return 0;
    }
    if (out->len == 0 || memchr(out->data, 0, out->len) != NULL) {
        fprintf(stderr, "posgate-hub: %s %s: expected the token on the first line, found %s\n",
                opt, path, out->len == 0 ? "nothing" : "a NUL byte");
        return 0;
    }
    *token = buf_cstr(out);
    return 1;
}

static int
read_pem(const char *path, struct buf *out)
{
    enum posgate_err err = plat_read_file(path, out);

    if (err != POSGATE_OK) {
        fprintf(stderr, "posgate-hub: cannot read %s: %s\n", path, posgate_strerror(err));
        return 0;
    }
    return 1;
}

/* "127.0.0.1:8080" or "[::1]:8080" into a socket address. */
static int
parse_listen(const char *s, struct sockaddr_storage *ss, socklen_t *len, int *v6)
{
    char host[64];
    const char *colon;
    uint64_t port;

    memset(ss, 0, sizeof(*ss));
    if (s[0] == '[') {
        const char *end = strchr(s, ']');

        if (end == NULL || end[1] != ':' || (size_t)(end - s - 1) >= sizeof(host)) {
            return 0;
        }
        memcpy(host, s + 1, (size_t)(end - s - 1));
        host[end - s - 1] = 0;
        colon = end + 1;
    } else {
        colon = strrchr(s, ':');
        if (colon == NULL || (size_t)(colon - s) >= sizeof(host)) {
            return 0;
        }
        memcpy(host, s, (size_t)(colon - s));
        host[colon - s] = 0;
    }
    if (!hub_parse_u64(colon + 1, strlen(colon + 1), &port) || port > 65535) {
        return 0;
    }
    if (s[0] == '[') {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)ss;

        a->sin6_family = AF_INET6;
        a->sin6_port = htons((uint16_t)port);
        *len = sizeof(*a);
        *v6 = 1;
        return inet_pton(AF_INET6, host, &a->sin6_addr) == 1;
    } else {
        struct sockaddr_in *a = (struct sockaddr_in *)ss;

        a->sin_family = AF_INET;
        a->sin_port = htons((uint16_t)port);
        *len = sizeof(*a);
        *v6 = 0;
        return inet_pton(AF_INET, host, &a->sin_addr) == 1;
    }
}

static void
mhd_log(void *cls, const char *fmt, va_list ap)
{
    char line[512];

    (void)cls;
    vsnprintf(line, sizeof(line), fmt, ap);
    line[strcspn(line, "\n")] = 0;
    plat_log(PLAT_LOG_DEBUG, "microhttpd: %s", line);
}

/* argv into o, whose defaults the caller set: -1 to go on, or the exit code (0 after --help,
 * 2 for a usage error, said on stderr). */
static int
serve_args(int argc, char **argv, struct serve_opts *o)
{
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];

        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            fputs(hub_usage, stdout);
            return 0;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "posgate-hub: unexpected argument \"%s\"\n\n%s", a, hub_usage);
            return 2;
        }
        if (strcmp(a, "--feed") == 0) {
            o->feed = argv[++i];
        } else if (strcmp(a, "--auditor-token") == 0) {
            o->auditor = argv[++i];
        } else if (strcmp(a, "--admin-token") == 0) {
            o->admin = argv[++i];
        } else if (strcmp(a, "--admin-token-file") == 0) {
            o->admin_file = argv[++i];
        } else if (strcmp(a, "--auditor-token-file") == 0) {
            o->auditor_file = argv[++i];
        } else if (strcmp(a, "--db-connections") == 0) {
            i++;
            if (!hub_parse_u64(argv[i], strlen(argv[i]), &o->db_conns) || o->db_conns == 0 ||
                o->db_conns > 16) {
                fprintf(stderr, "posgate-hub: --db-connections: expected 1 to 16, got \"%s\"\n",
                        argv[i]);
                return 2;
            }
        } else if (strcmp(a, "--silent-minutes") == 0) {
            i++;
            if (!hub_parse_u64(argv[i], strlen(argv[i]), &o->silent_min) ||
                o->silent_min > 525600) {
                fprintf(stderr, "posgate-hub: --silent-minutes: expected 0 to 525600, got \"%s\"\n",
                        argv[i]);
                return 2;
            }
        } else if (strcmp(a, "--listen") == 0) {
            o->listen = argv[++i];
        } else if (strcmp(a, "--tls-cert") == 0) {
            o->cert = argv[++i];
        } else if (strcmp(a, "--tls-key") == 0) {
            o->key = argv[++i];
        } else if (strcmp(a, "--tls-client-ca") == 0) {
            o->ca = argv[++i];
        } else if (strcmp(a, "--admin-client-ca") == 0) {
            o->admin_ca = argv[++i];
        } else if (strcmp(a, "--port-file") == 0) {
            o->port_file = argv[++i];
        } else if (strcmp(a, "--db") == 0) {
            o->dbpath = argv[++i];
        } else if (strcmp(a, "--max-body") == 0 || strcmp(a, "--max-inflight") == 0) {
            uint64_t *dst = a[6] == 'b' ? &o->max_body : &o->max_inflight;

            i++;
            if (!hub_parse_u64(argv[i], strlen(argv[i]), dst) || *dst == 0 ||
                *dst > (a[6] == 'b' ? (uint64_t)HUB_BATCH_JSON_MAX : 4096u)) {
                fprintf(stderr,
                        "posgate-hub: %s: expected a positive integer up to %llu, got "
                        "\"%s\"\n",
                        a, a[6] == 'b' ? (unsigned long long)HUB_BATCH_JSON_MAX : 4096ull, argv[i]);
                return 2;
            }
        } else if (strcmp(a, "--max-bodies-per-peer") == 0 ||
                   strcmp(a, "--max-conns-per-peer") == 0 || strcmp(a, "--body-timeout") == 0) {
            uint64_t *dst = strcmp(a, "--body-timeout") == 0         ? &o->body_timeout
                            : strcmp(a, "--max-conns-per-peer") == 0 ? &o->peer_conns
                                                                     : &o->peer_bodies;

            i++;
            if (!hub_parse_u64(argv[i], strlen(argv[i]), dst) || *dst == 0 || *dst > 4096u) {
                fprintf(stderr,
                        "posgate-hub: %s: expected a positive integer up to 4096, got "
                        "\"%s\"\n",
                        a, argv[i]);
                return 2;
            }
        } else if (strcmp(a, "--log-level") == 0) {
            if (!plat_log_level_parse(argv[++i], &o->lvl)) {
                fprintf(stderr,
                        "posgate-hub: --log-level: expected debug, info, warn or error, "
                        "got \"%s\"\n",
                        argv[i]);
                return 2;
            }
        } else {
            fprintf(stderr, "posgate-hub: unexpected argument \"%s\"\n\n%s", a, hub_usage);
            return 2;
        }
    }
    if ((o->feed == NULL && o->dbpath == NULL) || o->listen == NULL) {
        fprintf(stderr,
                "posgate-hub: expected --feed DIR and/or --db HUB.db, and --listen "
                "ADDR:PORT\n\n%s",
                hub_usage);
        return 2;
    }
    if ((o->cert == NULL) != (o->key == NULL) ||
        ((o->ca != NULL || o->admin_ca != NULL) && o->cert == NULL)) {
        fprintf(stderr, "posgate-hub: --tls-cert and --tls-key go together, and "
                        "--tls-client-ca and --admin-client-ca need them\n");
        return 2;
    }
    if ((o->admin != NULL && o->admin_file != NULL) ||
        (o->auditor != NULL && o->auditor_file != NULL)) {
        fprintf(stderr, "posgate-hub: a token is given once: --admin-token or "
                        "--admin-token-file, --auditor-token or --auditor-token-file\n");
        return 2;
    }
    return -1;
}

/* libmicrohttpd on ss, HTTPS with the PEMs when --tls-cert was given: NULL when it does not
 * start (its own message says why, through mhd_log). */
static struct MHD_Daemon *
start_daemon(struct hub *h, const struct serve_opts *o, struct sockaddr_storage *ss, int v6,
             const struct serve_pems *pems)
{
    struct MHD_OptionItem tls[4];
    size_t nt = 0;
    unsigned flags = MHD_USE_AUTO_INTERNAL_THREAD | MHD_USE_ERROR_LOG;

    if (v6) {
        flags |= MHD_USE_IPv6;
    }
    if (o->cert != NULL) {
        flags |= MHD_USE_TLS;
        tls[nt++] =
            (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_CERT, 0, (void *)buf_cstr(&pems->cert)};
        tls[nt++] =
            (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_KEY, 0, (void *)buf_cstr(&pems->key)};
    }
    if (pems->trust.len > 0) {
        tls[nt++] =
            (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_TRUST, 0, (void *)buf_cstr(&pems->trust)};
    }
    tls[nt] = (struct MHD_OptionItem){MHD_OPTION_END, 0, NULL};
    /* the collector waits on fsync: a few threads keep the feed served meanwhile */
    return MHD_start_daemon(
        flags, 0, NULL, NULL, hub_http_request, h, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)ss,
        MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL, MHD_OPTION_CONNECTION_TIMEOUT, HUB_IDLE_TIMEOUT,
        MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)o->peer_conns, MHD_OPTION_NOTIFY_COMPLETED,
        hub_http_completed, h, MHD_OPTION_THREAD_POOL_SIZE,
        h->db == NULL ? 1u : o->db_conns > 4 ? (unsigned)o->db_conns : 4u,
        MHD_OPTION_ARRAY, tls, MHD_OPTION_END);
}

/* Logs what d serves and where, and writes the port it bound to --port-file: 0, or 5 when
 * that file cannot be written. */
static int
announce(const struct hub *h, const struct serve_opts *o, struct MHD_Daemon *d)
{
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    char pbuf[16];
    int n;

    if (di == NULL) {
        return 0;
    }
    n = snprintf(pbuf, sizeof(pbuf), "%u\n", (unsigned)di->port);
    plat_log(PLAT_LOG_INFO, "serving %s%s%s on %s port %u (%s)", h->root_len > 0 ? h->root : "",
             h->root_len > 0 && h->db != NULL ? " and " : "",
             h->db != NULL ? "audit collection at " HUB_AUDIT_PATH : "", o->listen,
             (unsigned)di->port,
             o->cert == NULL                             ? "HTTP"
             : o->ca != NULL && o->admin_ca != NULL ? "HTTPS, kiosk and admin client certificates"
             : o->ca != NULL                        ? "HTTPS, kiosk client certificates"
             : o->admin_ca != NULL                  ? "HTTPS, admin client certificates"
                                                    : "HTTPS");
    if (o->port_file != NULL &&
        plat_write_atomic(o->port_file, pbuf, (size_t)n, 0644) != POSGATE_OK) {
        fprintf(stderr, "posgate-hub: cannot write %s\n", o->port_file);
        return 5;
    }
    return 0;
}

/* The kiosks' CA (--tls-client-ca) and the admins' (--admin-client-ca), each its own trust list,
 * and both for the handshake: 1, or 0 said. A certificate of the kiosks' CA is not admin: every
 * kiosk holds one, and a program on any kiosk could read it; an admin's does not pass for a
 * kiosk's. The two may be one file, for a hub whose operator wants it so. */
static int
client_trusts(struct hub *h, const struct serve_opts *o, struct serve_pems *pems)
{
    if (o->ca != NULL && hub_tls_trust_new(buf_cstr(&pems->ca), pems->ca.len, &h->kiosk_trust)) {
        fprintf(stderr, "posgate-hub: --tls-client-ca %s: expected PEM CA certificates\n", o->ca);
        return 0;
    }
    if (o->admin_ca != NULL &&
        hub_tls_trust_new(buf_cstr(&pems->admin_ca), pems->admin_ca.len, &h->admin_trust)) {
        fprintf(stderr, "posgate-hub: --admin-client-ca %s: expected PEM CA certificates\n",
                o->admin_ca);
        return 0;
    }
    if (buf_append(&pems->trust, pems->ca.data, pems->ca.len) != POSGATE_OK ||
        buf_append(&pems->trust, "\n", o->ca != NULL ? 1 : 0) != POSGATE_OK ||
        buf_append(&pems->trust, pems->admin_ca.data, pems->admin_ca.len) != POSGATE_OK) {
        fprintf(stderr, "posgate-hub: out of memory\n");
        return 0;
    }
    return 1;
}

/* The fleet dashboard's state (hub_dashboard.h), from the options: 0, or -1 said. */
static int
start_dashboard(struct hub *h, const struct serve_opts *o)
{
    struct hub_dashboard_config dc = {.db = h->db,
                                      .feed_dir = h->root_len > 0 ? h->root : NULL,
                                      .admin_token = o->admin,
                                      .auditor_token = o->auditor,
                                      .client_ca = o->admin_ca != NULL,
                                      .tls = o->cert != NULL,
                                      .silent_s = (int64_t)o->silent_min * 60};

    if (hub_throttle_new(&h->throttle) != POSGATE_OK) {
        fprintf(stderr, "posgate-hub: out of memory\n");
        return -1;
    }
    dc.throttle = h->throttle;
    if (hub_dashboard_new(&dc, &h->dash) != POSGATE_OK) {
        fprintf(stderr, "posgate-hub: out of memory\n");
        return -1;
    }
    return 0;
}

int
hub_serve_main(int argc, char **argv)
{
    struct serve_opts o = {.max_body = HUB_MAX_BODY,
                           .max_inflight = HUB_MAX_INFLIGHT,
                           .peer_bodies = HUB_PEER_BODIES,
                           .peer_conns = HUB_PEER_CONNS,
                           .body_timeout = HUB_BODY_TIMEOUT,
                           .silent_min = 60,
                           .lvl = PLAT_LOG_INFO};
    struct serve_pems pems = {BUF_INIT(HUB_PEM_MAX),     BUF_INIT(HUB_PEM_MAX),
                              BUF_INIT(HUB_PEM_MAX),     BUF_INIT(HUB_PEM_MAX),
                              BUF_INIT(2 * HUB_PEM_MAX), BUF_INIT(TOKEN_FILE_MAX),
                              BUF_INIT(TOKEN_FILE_MAX)};
    struct hub h;
    char dbmsg[512] = "";
    struct sockaddr_storage ss;
    socklen_t sl = 0;
    struct MHD_Daemon *d = NULL;
    sigset_t set;
    int v6 = 0, sig = 0, rc = serve_args(argc, argv, &o);

    if (rc >= 0) {
        return rc;
    }
    rc = 5;
    if (!parse_listen(o.listen, &ss, &sl, &v6)) {
        fprintf(stderr,
                "posgate-hub: --listen: expected 127.0.0.1:PORT or [::1]:PORT, got "
                "\"%s\"\n",
                o.listen);
        return 2;
    }
    plat_log_set_level(o.lvl);
    memset(&h, 0, sizeof(h));
    h.auditor_token = o.auditor;
    atomic_init(&h.inflight, 0u);
    h.max_body = (size_t)o.max_body;
    h.max_inflight = (unsigned)o.max_inflight;
    h.peer_bodies = (unsigned)o.peer_bodies;
    h.body_timeout_ns = o.body_timeout * 1000000000u;
    pthread_mutex_init(&h.peers_mu, NULL);
    if (o.feed != NULL && realpath(o.feed, h.root) == NULL) {
        fprintf(stderr, "posgate-hub: --feed %s: %s\n", o.feed, strerror(errno));
        return 2;
    }
    h.root_len = strlen(h.root);
    h.client_ca = o.ca != NULL;
    if (o.dbpath != NULL && hub_db_open(o.dbpath, &h.db, dbmsg, sizeof(dbmsg)) != POSGATE_OK) {
        /* a URI may carry a password: only a file's path is repeated */
        fprintf(stderr, "posgate-hub: --db %s: %s\n",
                hub_db_is_uri(o.dbpath) ? "(PostgreSQL URI)" : o.dbpath, dbmsg);
        goto out;
    }
    if (o.db_conns > 0 && hub_db_set_connections(h.db, (unsigned)o.db_conns) != POSGATE_OK) {
        fprintf(stderr, "posgate-hub: --db-connections needs --db with a PostgreSQL URI (a "
                        "SQLite file has one writer)\n");
        goto out;
    }
    if ((o.admin_file != NULL &&
         !read_token("--admin-token-file", o.admin_file, &pems.admin, &o.admin)) ||
        (o.auditor_file != NULL &&
         !read_token("--auditor-token-file", o.auditor_file, &pems.auditor, &o.auditor))) {
        goto out;
    }
    h.auditor_token = o.auditor;
    if (start_dashboard(&h, &o) != 0) {
        goto out;
    }
    if (o.cert != NULL && (!read_pem(o.cert, &pems.cert) || !read_pem(o.key, &pems.key) ||
                           (o.ca != NULL && !read_pem(o.ca, &pems.ca)) ||
                           (o.admin_ca != NULL && !read_pem(o.admin_ca, &pems.admin_ca)))) {
        goto out;
    }
    if (!client_trusts(&h, &o, &pems)) {
        goto out;
    }
    /* signals are taken synchronously by the main thread; block them before MHD's threads */
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    d = start_daemon(&h, &o, &ss, v6, &pems);
    if (d == NULL) {
        fprintf(stderr,
                "posgate-hub: cannot listen on %s: is another program using that address "
                "and port? (the message above names the cause; with --tls-cert, a certificate "
                "or key that does not load stops it too)\n",
                o.listen);
        goto out;
    }
    if (announce(&h, &o, d) != 0) {
        goto out;
    }
    (void)sl;
    while (sigwait(&set, &sig) != 0) {
    }
    plat_log(PLAT_LOG_INFO, "signal %d: stopping", sig);
    rc = 0;
out:
    if (d != NULL) {
        MHD_stop_daemon(d);
    }
    hub_dashboard_free(h.dash);
    hub_throttle_free(h.throttle);
    hub_db_close(h.db);
    free(h.peers);
    pthread_mutex_destroy(&h.peers_mu);
    buf_wipe(&pems.key);
    buf_wipe(&pems.admin);
    buf_wipe(&pems.auditor);
    buf_free(&pems.cert);
    buf_free(&pems.ca);
    buf_free(&pems.admin_ca);
    buf_free(&pems.trust);
    hub_tls_trust_free(h.kiosk_trust);
    hub_tls_trust_free(h.admin_trust);
    return rc;
}
