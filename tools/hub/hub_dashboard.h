/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The fleet dashboard over HTTP (docs/collector.md, "Fleet dashboard"): the page and its files
 * at /dashboard (hub_assets.h), the JSON answers of hub_fleet.h at /v1/fleet/..., and who may
 * read them. Part of posgate-hub's HTTP server (libmicrohttpd), beside posgate_hub.c.
 *
 * Credentials, each checked on every request to /v1/fleet/:
 *   admin     a verified client certificate (when the hub runs with --tls-client-ca), or
 *             `Authorization: Bearer T` with T = --admin-token, or the session cookie that a
 *             login with that bearer token set (below);
 *   auditor   `Authorization: Bearer T` with T = --auditor-token: only
 *             GET /v1/fleet/decisions?listing=LIST/LISTING_ID, as GET /v1/decisions/{id}.
 * Without an admin credential configured, the dashboard and /v1/fleet/ answer 403.
 *
 * The browser's session: the page posts the token once (POST /dashboard/login, the token in the
 * Authorization header, never in a body, a URL or the page's storage); the hub answers with a
 * cookie holding a random session id (HttpOnly, SameSite=Strict, Path=/, Secure over HTTPS)
 * that it keeps in memory for 8 hours at most (SESSION_TTL_S), forgets at POST
 * /dashboard/logout and on a restart. A login that says it comes from another origin
 * (Origin, Sec-Fetch-Site) is refused; no answer carries a CORS header, so another site's page
 * cannot send the Authorization header here (the browser's preflight fails) nor read an answer.
 * Every answer carries a Content-Security-Policy that allows scripts, styles and requests from
 * the hub itself only, X-Content-Type-Options: nosniff and Cross-Origin-Resource-Policy:
 * same-origin.
 */
#ifndef POSGATE_HUB_DASHBOARD_H
#define POSGATE_HUB_DASHBOARD_H

#include <stdbool.h>
#include <stdint.h>

#include <microhttpd.h>

#include "hub_db.h"
#include "hub_throttle.h"
#include "posgate_err.h"

struct hub_dashboard;

struct hub_dashboard_config {
    struct hub_db *db;         /* borrowed, for the dashboard's life; NULL: no collector (404) */
    const char *feed_dir;      /* the served feed (its version is the newest), or NULL */
    const char *admin_token;   /* --admin-token, or NULL; copied */
    const char *auditor_token; /* --auditor-token, or NULL; copied */
    bool client_ca;            /* --admin-client-ca: a certificate of that CA is admin */
    bool tls;                  /* HTTPS: the session cookie is Secure */
    int64_t silent_s;          /* --silent-minutes, as seconds: the default of silent_minutes */
    struct hub_throttle *throttle; /* borrowed: wrong tokens per peer (hub_throttle.h), or NULL */
};

POSGATE_WUR enum posgate_err hub_dashboard_new(const struct hub_dashboard_config *c,
                                               struct hub_dashboard **out);
void hub_dashboard_free(struct hub_dashboard *d); /* NULL is a no-op; wipes the tokens */

/* Whether url is the dashboard's: /dashboard, /dashboard/..., /v1/fleet/... */
bool hub_dashboard_owns(const char *url);
/* Answers one request for a url it owns (its body, if any, was dropped). client_cert: the
 * connection presented a client certificate that --tls-client-ca verified. */
enum MHD_Result hub_dashboard_request(struct hub_dashboard *d, struct MHD_Connection *conn,
                                      const char *url, const char *method, bool client_cert);

#endif
