/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What the files of the posgate-hub program share (not the collector's store, hub_db.h): the
 * limits of `serve`, the state of its HTTP handlers (struct hub: set up by hub_serve.c from the
 * command line; its upload counter and peer table kept by hub_http.c), the integer parser both
 * read numbers with, the two libmicrohttpd callbacks, and the usage and serve command that
 * posgate_hub.c's main prints and dispatches to.
 */
#ifndef POSGATE_HUB_INTERNAL_H
#define POSGATE_HUB_INTERNAL_H

#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include <microhttpd.h>

#include "hub_db.h"

#define HUB_MAX_BODY     (8u * 1024u * 1024u)
#define HUB_MAX_INFLIGHT 16u
#define HUB_AUDIT_PATH   "/v1/audit"
#define HUB_STATUS_PATH  "/v1/device-status"
/* Slow clients (docs/collector.md, "Limits"): a peer is one client address. */
#define HUB_PEER_BODIES  4u  /* audit bodies being received at once from one peer: 429 beyond */
#define HUB_PEER_CONNS   32u /* connections from one peer: closed at accept beyond */
#define HUB_BODY_TIMEOUT 30u /* seconds from the headers to the last byte of an audit body */
#define HUB_IDLE_TIMEOUT 10u /* seconds without a byte (headers, body, or a reader) */

struct hub_peer;      /* hub_http.c */
struct hub_dashboard; /* hub_dashboard.h */
struct hub_throttle;  /* hub_throttle.h */

struct hub {
    char root[PATH_MAX]; /* realpath of the feed directory; "" without --feed */
    size_t root_len;
    int client_ca;             /* --tls-client-ca: the feed and uploads want a kiosk's certificate */
    void *kiosk_trust;         /* its CA (hub_tls_trust_new), NULL without it */
    void *admin_trust;         /* --admin-client-ca: a certificate of this CA is admin, NULL: none */
    struct hub_db *db;         /* the collector; NULL without --db */
    const char *auditor_token; /* --auditor-token: GET /v1/decisions/{id}; NULL: refused */
    struct hub_dashboard *dash; /* /dashboard and /v1/fleet/ (hub_dashboard.h) */
    struct hub_throttle *throttle; /* wrong bearer tokens per peer (hub_throttle.h) */
    size_t max_body;
    unsigned max_inflight;
    atomic_uint inflight;
    unsigned peer_bodies; /* HUB_PEER_BODIES unless --max-bodies-per-peer */
    uint64_t body_timeout_ns;
    pthread_mutex_t peers_mu; /* guards peers */
    struct hub_peer *peers;   /* peers with bodies in progress; at most one per connection */
    size_t n_peers, cap_peers;
};

/* The CA certificates of pem (len bytes) as a trust list for hub_tls_peer_of: 0, or -1 when
 * pem holds none (gnutls is included by hub_http.c only). */
int hub_tls_trust_new(const char *pem, size_t len, void **out);
void hub_tls_trust_free(void *trust);

/* The usage of the whole program (posgate_hub.c), printed by main and by serve. */
extern const char hub_usage[];

/* s[0..n) as a decimal integer of at most 19 digits: 1, or 0 when it is not one. */
int hub_parse_u64(const char *s, size_t n, uint64_t *out);

/* libmicrohttpd's request and completion callbacks (hub_http.c); cls is the struct hub. */
enum MHD_Result hub_http_request(void *cls, struct MHD_Connection *conn, const char *url,
                                 const char *method, const char *version, const char *upload_data,
                                 size_t *upload_data_size, void **ctx);
void hub_http_completed(void *cls, struct MHD_Connection *conn, void **ctx,
                        enum MHD_RequestTerminationCode toe);

/* `posgate-hub [serve]` (argv after "serve", or after the program's name): the exit code. */
int hub_serve_main(int argc, char **argv);

#endif
