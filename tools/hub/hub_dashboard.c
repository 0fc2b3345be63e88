/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The fleet dashboard over HTTP (hub_dashboard.h): routing of /dashboard and /v1/fleet/,
 * credentials and the browser's sessions, the compiled-in files, and the headers every answer
 * carries.
 */
#define _DEFAULT_SOURCE
#include "hub_dashboard.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "crypto.h"
#include "hub_assets.h"
#include "hub_fleet.h"
#include "hub_text.h"
#include "hub_transparency.h"
#include "plat_clock.h"
#include "plat_log.h"
#include "plat_mem.h"
#include "plat_random.h"

#define SESSIONS_MAX   64
#define SESSION_TTL_S  (8 * 3600)
#define SESSION_ID_LEN 32
#define COOKIE_NAME    "posgate_hub_session"
#define ANSWER_MAX     (256u * 1024u * 1024u)
#define DAYS_DEFAULT   30
#define LIMIT_DEFAULT  200

/* Scripts, styles, images and requests from the hub itself only; no inline script or style, no
 * framing, no form posted elsewhere, no <base>. */
#define CSP                                                                                        \
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "                    \
    "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

struct session {
    uint8_t id[SESSION_ID_LEN];
    uint64_t expires_ns; /* monotonic; 0: a free slot */
};

struct hub_dashboard {
    struct hub_db *db;
    char *feed_dir;
    uint8_t admin[CRYPTO_SHA256_LEN], auditor[CRYPTO_SHA256_LEN]; /* the tokens' SHA-256 */
    bool has_admin, has_auditor, client_ca, tls;
    int64_t silent_s;
    struct hub_throttle *throttle; /* borrowed */
    pthread_mutex_t mu; /* guards sessions */
    struct session sessions[SESSIONS_MAX];
};

/* THROTTLED: the peer presented too many wrong tokens lately (hub_throttle.h) */
enum who { WHO_NONE, WHO_BAD, WHO_THROTTLED, WHO_AUDITOR, WHO_ADMIN };

enum posgate_err
hub_dashboard_new(const struct hub_dashboard_config *c, struct hub_dashboard **out)
{
    struct hub_dashboard *d;

    *out = NULL;
    d = plat_calloc(1, sizeof(*d));
    if (d == NULL) {
        return POSGATE_ERR_NOMEM;
    }
    if (c->feed_dir != NULL && (d->feed_dir = plat_strdup(c->feed_dir)) == NULL) {
        plat_free(d);
        return POSGATE_ERR_NOMEM;
    }
    d->db = c->db;
    /* kept as hashes: compared in a time that depends on neither token's bytes nor length */
    d->has_admin = c->admin_token != NULL && c->admin_token[0] != 0;
    if (d->has_admin) {
        crypto_sha256(c->admin_token, strlen(c->admin_token), d->admin);
    }
    d->has_auditor = c->auditor_token != NULL && c->auditor_token[0] != 0;
    if (d->has_auditor) {
        crypto_sha256(c->auditor_token, strlen(c->auditor_token), d->auditor);
    }
    d->client_ca = c->client_ca;
    d->tls = c->tls;
    d->silent_s = c->silent_s;
    d->throttle = c->throttle;
    pthread_mutex_init(&d->mu, NULL);
    *out = d;
    return POSGATE_OK;
}

void
hub_dashboard_free(struct hub_dashboard *d)
{
    if (d == NULL) {
        return;
    }
    pthread_mutex_destroy(&d->mu);
    plat_free(d->feed_dir);
    plat_wipe(d, sizeof(*d));
    plat_free(d);
}

bool
hub_dashboard_owns(const char *url)
{
    return strcmp(url, "/dashboard") == 0 || strncmp(url, "/dashboard/", 11) == 0 ||
           strncmp(url, "/v1/fleet/", 10) == 0;
}

/* ---- answers ---- */

static enum MHD_Result
send_body(struct MHD_Connection *conn, unsigned status, const char *type, const void *data,
          size_t len, enum MHD_ResponseMemoryMode mode, const char *cookie, const char *method,
          const char *url)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(len, (void *)data, mode);
    enum MHD_Result ret;

    if (r == NULL) {
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", type);
    MHD_add_response_header(r, "Content-Security-Policy", CSP);
    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(r, "X-Frame-Options", "DENY");
    MHD_add_response_header(r, "Referrer-Policy", "no-referrer");
    MHD_add_response_header(r, "Cross-Origin-Resource-Policy", "same-origin");
    MHD_add_response_header(r, "Cross-Origin-Opener-Policy", "same-origin");
    MHD_add_response_header(r, "Cache-Control", "no-store");
    if (cookie != NULL) {
        MHD_add_response_header(r, "Set-Cookie", cookie);
    }
    if (status == MHD_HTTP_METHOD_NOT_ALLOWED) {
        size_t n = strlen(url);
        bool post = (n >= 6 && strcmp(url + n - 6, "/login") == 0) ||
                    (n >= 7 && strcmp(url + n - 7, "/logout") == 0);

        MHD_add_response_header(r, "Allow", post ? "POST" : "GET, HEAD");
    }
    if (status == MHD_HTTP_SERVICE_UNAVAILABLE) {
        MHD_add_response_header(r, "Retry-After", "2");
    }
    if (status == MHD_HTTP_UNAUTHORIZED) {
        MHD_add_response_header(r, "WWW-Authenticate", "Bearer realm=\"posgate-hub\"");
    }
    ret = MHD_queue_response(conn, status, r);
    MHD_destroy_response(r);
    plat_log(PLAT_LOG_INFO, "%s %s %u", method, url, status);
    return ret;
}

/* {"error": msg} under /v1/, the text elsewhere. */
static enum MHD_Result
refuse(struct MHD_Connection *conn, unsigned status, const char *msg, const char *method,
       const char *url)
{
    struct buf b = BUF_INIT(4096);
    enum MHD_Result ret;
    bool json = strncmp(url, "/v1/", 4) == 0;
    cJSON *doc = json ? cJSON_CreateObject() : NULL;

    if (doc != NULL) {
        cJSON_AddStringToObject(doc, "error", msg);
    }
    if ((json ? hub_fleet_emit(doc, &b) : buf_printf(&b, "%s\n", msg)) != POSGATE_OK) {
        buf_reset(&b);
    }
    ret = send_body(conn, status, json ? "application/json" : "text/plain; charset=utf-8",
                    b.data != NULL ? (const void *)b.data : "", b.len, MHD_RESPMEM_MUST_COPY, NULL,
                    method, url);
    buf_free(&b);
    return ret;
}

static enum MHD_Result
store_failed(struct MHD_Connection *conn, enum posgate_err err, const char *method, const char *url)
{
    return refuse(conn,
                  err == POSGATE_ERR_RETRY || err == POSGATE_ERR_NOMEM
                      ? MHD_HTTP_SERVICE_UNAVAILABLE
                      : MHD_HTTP_INTERNAL_SERVER_ERROR,
                  posgate_strerror(err), method, url);
}

/* ---- credentials ---- */

/* The bearer token of the request: NONE without one, BAD when it is neither token (counted
 * against the peer), THROTTLED when the peer has presented too many wrong ones lately. */
static enum who
bearer(const struct hub_dashboard *d, struct MHD_Connection *conn)
{
    const char *auth = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Authorization");
    uint8_t h[CRYPTO_SHA256_LEN];
    unsigned retry;

    if (auth == NULL) {
        return WHO_NONE;
    }
    if (hub_throttle_blocked(d->throttle, conn, &retry)) {
        return WHO_THROTTLED;
    }
    if (strncmp(auth, "Bearer ", 7) == 0 && auth[7] != 0) {
        crypto_sha256(auth + 7, strlen(auth + 7), h);
        if (d->has_admin && crypto_equal(h, d->admin, sizeof(h))) {
            return WHO_ADMIN;
        }
        if (d->has_auditor && crypto_equal(h, d->auditor, sizeof(h))) {
            return WHO_AUDITOR;
        }
    }
    hub_throttle_failed(d->throttle, conn);
    return WHO_BAD;
}

static enum MHD_Result
refuse_throttled(struct MHD_Connection *conn, const char *method, const char *url)
{
    return refuse(conn, MHD_HTTP_TOO_MANY_REQUESTS,
                  "too many wrong tokens from this address: try again in a minute", method, url);
}

/* The session slot of the request's cookie, or -1; expired sessions are freed on the way. */
static int
session_of(struct hub_dashboard *d, struct MHD_Connection *conn)
{
    const char *c = MHD_lookup_connection_value(conn, MHD_COOKIE_KIND, COOKIE_NAME);
    struct buf id = BUF_INIT(SESSION_ID_LEN);
    uint64_t now = plat_mono_ns();
    int found = -1;

    if (c == NULL || !hub_lower_hex(c, 2 * SESSION_ID_LEN) ||
        crypto_unhex(c, 2 * SESSION_ID_LEN, &id) != POSGATE_OK) {
        buf_free(&id);
        return -1;
    }
    pthread_mutex_lock(&d->mu);
    for (int i = 0; i < SESSIONS_MAX; i++) {
        struct session *s = &d->sessions[i];

        if (s->expires_ns != 0 && s->expires_ns <= now) {
            memset(s, 0, sizeof(*s));
        }
        if (s->expires_ns != 0 && crypto_equal(s->id, id.data, SESSION_ID_LEN)) {
            found = i;
        }
    }
    pthread_mutex_unlock(&d->mu);
    buf_free(&id);
    return found;
}

/* Who asks, and how ("certificate", "token", "session") into *via. */
static enum who
who_asks(struct hub_dashboard *d, struct MHD_Connection *conn, bool client_cert, const char **via)
{
    enum who w = bearer(d, conn);

    *via = NULL;
    if (d->client_ca && client_cert) {
        *via = "certificate";
        return WHO_ADMIN;
    }
    if (w != WHO_NONE) {
        *via = w == WHO_BAD || w == WHO_THROTTLED ? NULL : "token";
        return w;
    }
    if (d->has_admin && session_of(d, conn) >= 0) {
        *via = "session";
        return WHO_ADMIN;
    }
    return WHO_NONE;
}

/* A state-changing request must come from the dashboard's own page: the browser says where it
 * comes from (Sec-Fetch-Site; Origin, compared with Host), and neither may name another. */
static bool
same_origin(const struct hub_dashboard *d, struct MHD_Connection *conn)
{
    const char *site = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Sec-Fetch-Site");
    const char *origin = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Origin");
    const char *host = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Host");
    char want[512];

    if (site != NULL && strcmp(site, "same-origin") != 0) {
        return false;
    }
    if (origin == NULL) {
        return true; /* not a browser's cross-origin request (they all send Origin) */
    }
    if (host == NULL || (size_t)snprintf(want, sizeof(want), "%s://%s", d->tls ? "https" : "http",
                                         host) >= sizeof(want)) {
        return false;
    }
    return strcmp(origin, want) == 0;
}

static enum MHD_Result
login(struct hub_dashboard *d, struct MHD_Connection *conn, const char *method, const char *url)
{
    struct session *slot = NULL;
    uint8_t id[SESSION_ID_LEN];
    char hex[2 * SESSION_ID_LEN + 1], cookie[256];
    uint64_t now = plat_mono_ns();
    enum who w;

    if (!d->has_admin) {
        return refuse(conn, MHD_HTTP_FORBIDDEN, "this hub has no --admin-token: no login", method,
                      url);
    }
    if (!same_origin(d, conn)) {
        return refuse(conn, MHD_HTTP_FORBIDDEN, "a login from another site", method, url);
    }
    w = bearer(d, conn);
    if (w == WHO_NONE) {
        return refuse(conn, MHD_HTTP_UNAUTHORIZED, "Authorization: Bearer TOKEN expected", method,
                      url);
    }
    if (w == WHO_THROTTLED) {
        return refuse_throttled(conn, method, url);
    }
    if (w != WHO_ADMIN) {
        return refuse(conn, MHD_HTTP_FORBIDDEN, "not the admin token", method, url);
    }
    if (plat_random(id, sizeof(id)) != POSGATE_OK) {
        return refuse(conn, MHD_HTTP_SERVICE_UNAVAILABLE, "no randomness for a session", method,
                      url);
    }
    pthread_mutex_lock(&d->mu);
    for (int i = 0; i < SESSIONS_MAX; i++) { /* a free or expired slot, else the oldest */
        struct session *s = &d->sessions[i];

        if (slot == NULL || s->expires_ns <= now || s->expires_ns < slot->expires_ns) {
            slot = s;
        }
    }
    memcpy(slot->id, id, sizeof(id));
    slot->expires_ns = now + (uint64_t)SESSION_TTL_S * 1000000000u;
    pthread_mutex_unlock(&d->mu);
    crypto_hex(id, sizeof(id), hex);
    snprintf(cookie, sizeof(cookie),
             COOKIE_NAME "=%s; Path=/; HttpOnly; SameSite=Strict; Max-Age=%d%s", hex, SESSION_TTL_S,
             d->tls ? "; Secure" : "");
    plat_wipe(id, sizeof(id));
    plat_wipe(hex, sizeof(hex));
    return send_body(conn, MHD_HTTP_OK, "application/json", "{\"admin\":true}\n", 15,
                     MHD_RESPMEM_PERSISTENT, cookie, method, url);
}

static enum MHD_Result
logout(struct hub_dashboard *d, struct MHD_Connection *conn, const char *method, const char *url)
{
    int i;

    if (!same_origin(d, conn)) {
        return refuse(conn, MHD_HTTP_FORBIDDEN, "a logout from another site", method, url);
    }
    i = session_of(d, conn);
    if (i >= 0) {
        pthread_mutex_lock(&d->mu);
        memset(&d->sessions[i], 0, sizeof(d->sessions[i]));
        pthread_mutex_unlock(&d->mu);
    }
    return send_body(conn, MHD_HTTP_OK, "application/json", "{\"admin\":false}\n", 16,
                     MHD_RESPMEM_PERSISTENT,
                     COOKIE_NAME "=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0", method, url);
}

/* GET /dashboard/session: whether this browser is signed in, always 200 (the page asks before
 * it shows anything, and a refusal would be logged as an error in the browser's console). */
static enum MHD_Result
session_state(struct hub_dashboard *d, struct MHD_Connection *conn, bool client_cert,
              const char *method, const char *url)
{
    const char *via;
    enum who w = who_asks(d, conn, client_cert, &via);
    char body[160];
    int n = snprintf(body, sizeof(body), "{\"admin\":%s,\"via\":%s%s%s,\"token_login\":%s}\n",
                     w == WHO_ADMIN ? "true" : "false", via != NULL ? "\"" : "",
                     via != NULL ? via : "null", via != NULL ? "\"" : "",
                     d->has_admin ? "true" : "false");

    return send_body(conn, MHD_HTTP_OK, "application/json", body, (size_t)n, MHD_RESPMEM_MUST_COPY,
                     NULL, method, url);
}

/* ---- the files ---- */

static enum MHD_Result
asset(struct MHD_Connection *conn, const char *name, const char *method, const char *url)
{
    for (size_t i = 0; i < hub_n_assets; i++) {
        if (strcmp(hub_assets[i].name, name) == 0) {
            return send_body(conn, MHD_HTTP_OK, hub_assets[i].type, hub_assets[i].data,
                             hub_assets[i].len, MHD_RESPMEM_PERSISTENT, NULL, method, url);
        }
    }
    return refuse(conn, MHD_HTTP_NOT_FOUND, "not found", method, url);
}

/* ---- /v1/fleet/ ---- */

/* An integer query argument in [min, max]: its default when absent, -1 when malformed. */
static int64_t
arg_int(struct MHD_Connection *conn, const char *name, int64_t dflt, int64_t min, int64_t max)
{
    const char *s = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, name);
    int64_t v = 0;

    if (s == NULL) {
        return dflt;
    }
    if (s[0] == 0 || strlen(s) > 12 || strspn(s, "0123456789") != strlen(s)) {
        return -1;
    }
    for (; *s != 0; s++) {
        v = v * 10 + (*s - '0');
    }
    return v >= min && v <= max ? v : -1;
}

/* GET /v1/fleet/decisions?listing=LIST/LISTING_ID[&since=T]: decisions --listing --json. */
static enum posgate_err
listing(struct hub_dashboard *d, const char *arg, const char *since, struct buf *out)
{
    const char *slash = strchr(arg, '/');
    char list[AUDIT_ID_MAX + 1];

    if (slash == NULL || slash == arg || slash[1] == 0 || (size_t)(slash - arg) > AUDIT_ID_MAX ||
        strlen(slash + 1) > AUDIT_ID_MAX) {
        return POSGATE_ERR_INVALID;
    }
    snprintf(list, sizeof(list), "%.*s", (int)(slash - arg), arg);
    return hub_db_decisions(d->db, list, slash + 1, since, true, out, NULL);
}

/* Which answer of /v1/fleet/ url names, into out; INVALID for a malformed argument. */
static enum posgate_err
fleet_answer(struct hub_dashboard *d, struct MHD_Connection *conn, const char *what,
             struct hub_fleet_opts *o, struct buf *out)
{
    const char *by = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "by");
    const char *bucket = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "bucket");
    int64_t minutes = arg_int(conn, "silent_minutes", d->silent_s / 60, 0, 525600);
    int64_t limit = arg_int(conn, "limit", LIMIT_DEFAULT, 1, HUB_FLEET_HISTORY_MAX);
    enum hub_fleet_by b = HUB_FLEET_BY_DECISION;

    o->now_s = plat_wall_s();
    o->days = arg_int(conn, "days", DAYS_DEFAULT, 1, HUB_FLEET_DAYS_MAX);
    o->served_version = hub_fleet_served_version(d->feed_dir);
    if (minutes < 0 || limit < 0 || o->days < 0) {
        return POSGATE_ERR_INVALID;
    }
    o->silent_s = minutes * 60;
    if (strcmp(what, "overview") == 0) {
        return hub_fleet_overview(d->db, o, out);
    }
    if (strcmp(what, "devices") == 0) {
        return hub_fleet_devices(d->db, o, out);
    }
    if (strncmp(what, "devices/", 8) == 0) {
        return hub_lower_hex(what + 8, DEVICE_ID_HEX_LEN)
                   ? hub_fleet_device(d->db, what + 8, o, limit, out)
                   : POSGATE_ERR_NOTFOUND;
    }
    if (strcmp(what, "versions") == 0) {
        return hub_fleet_versions(d->db, o, out);
    }
    if (strcmp(what, "report") == 0) { /* the transparency report, as report --json */
        return hub_transparency(d->db,
                                MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "month"),
                                o->now_s, HUB_TRANSPARENCY_JSON, out);
    }
    if (strcmp(what, "decisions") != 0) {
        return POSGATE_ERR_NOTFOUND;
    }
    if (by == NULL || strcmp(by, "decision") == 0) {
        b = HUB_FLEET_BY_DECISION;
    } else if (strcmp(by, "list") == 0) {
        b = HUB_FLEET_BY_LIST;
    } else if (strcmp(by, "service") == 0) {
        b = HUB_FLEET_BY_SERVICE;
    } else if (strcmp(by, "listing") == 0) {
        b = HUB_FLEET_BY_LISTING;
    } else {
        return POSGATE_ERR_INVALID;
    }
    if (bucket != NULL && strcmp(bucket, "day") != 0 && strcmp(bucket, "hour") != 0) {
        return POSGATE_ERR_INVALID;
    }
    return hub_fleet_decisions(d->db, o, b, bucket != NULL && strcmp(bucket, "hour") == 0, out);
}

static enum MHD_Result
fleet(struct hub_dashboard *d, struct MHD_Connection *conn, const char *url, const char *method,
      bool client_cert)
{
    const char *arg = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "listing");
    const char *via;
    bool for_listing = strcmp(url, "/v1/fleet/decisions") == 0 && arg != NULL;
    enum who w = who_asks(d, conn, client_cert, &via);
    struct hub_fleet_opts o;
    struct buf out = BUF_INIT(ANSWER_MAX);
    enum posgate_err err;
    enum MHD_Result ret;

    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
        return refuse(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "use GET", method, url);
    }
    if (!d->has_admin && !d->client_ca && !(for_listing && d->has_auditor)) {
        return refuse(conn, MHD_HTTP_FORBIDDEN,
                      "this hub has no admin credential: start it with --admin-token T (or "
                      "--admin-client-ca)",
                      method, url);
    }
    if (w == WHO_THROTTLED) {
        return refuse_throttled(conn, method, url);
    }
    if (w == WHO_BAD || (w == WHO_AUDITOR && !for_listing)) {
        return refuse(conn, MHD_HTTP_FORBIDDEN, "not a credential for this answer", method, url);
    }
    if (w == WHO_NONE) {
        return refuse(conn, MHD_HTTP_UNAUTHORIZED,
                      "an admin credential is required (Authorization: Bearer, a login session "
                      "or a client certificate)",
                      method, url);
    }
    if (for_listing) {
        err = listing(d, arg, MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "since"),
                      &out);
    } else {
        err = fleet_answer(d, conn, url + 10, &o, &out);
    }
    if (err == POSGATE_OK) {
        ret = send_body(conn, MHD_HTTP_OK, "application/json", buf_cstr(&out), out.len,
                        MHD_RESPMEM_MUST_COPY, NULL, method, url);
    } else if (err == POSGATE_ERR_NOTFOUND) {
        ret = refuse(conn, MHD_HTTP_NOT_FOUND, "no such device or answer", method, url);
    } else if (err == POSGATE_ERR_INVALID) {
        ret = refuse(conn, MHD_HTTP_BAD_REQUEST,
                     "a malformed argument: silent_minutes 0..525600, days 1..366 (hour buckets "
                     "up to 31), limit 1..5000, by decision|list|service|listing, bucket "
                     "day|hour, listing LIST/LISTING_ID, since an RFC 3339 time or its prefix, "
                     "month YYYY-MM",
                     method, url);
    } else {
        ret = store_failed(conn, err, method, url);
    }
    buf_free(&out);
    return ret;
}

enum MHD_Result
hub_dashboard_request(struct hub_dashboard *d, struct MHD_Connection *conn, const char *url,
                      const char *method, bool client_cert)
{
    bool get = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;
    const char *name = strncmp(url, "/dashboard/", 11) == 0 ? url + 11 : "";

    if (d == NULL || d->db == NULL) {
        return refuse(conn, MHD_HTTP_NOT_FOUND, "not found (the dashboard needs a collector: --db)",
                      method, url);
    }
    if (strncmp(url, "/v1/fleet/", 10) == 0) {
        return fleet(d, conn, url, method, client_cert);
    }
    if (!d->has_admin && !d->client_ca) {
        return refuse(conn, MHD_HTTP_FORBIDDEN,
                      "this hub has no admin credential: start it with --admin-token T (or "
                      "--admin-client-ca)",
                      method, url);
    }
    if (strcmp(name, "login") == 0 || strcmp(name, "logout") == 0) {
        if (strcmp(method, "POST") != 0) {
            return refuse(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "use POST", method, url);
        }
        return name[3] == 'i' ? login(d, conn, method, url) : logout(d, conn, method, url);
    }
    if (!get) {
        return refuse(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "use GET", method, url);
    }
    if (strcmp(name, "session") == 0) {
        return session_state(d, conn, client_cert, method, url);
    }
    return asset(conn, name[0] == 0 ? "index.html" : name, method, url);
}
