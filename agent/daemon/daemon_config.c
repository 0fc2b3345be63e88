/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The daemon's JSON codecs (daemon_config.h): the posgated config file with its defaults and
 * per-key errors, the POST /v1/check body, and the small JSON answers of the HTTP API. Each
 * parser walks the members of the top object itself, so an unknown key is found and named
 * rather than ignored.
 */
#define _POSIX_C_SOURCE 200809L
#include "daemon_config.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "json_canon.h"
#include "plat_clock.h"
#include "plat_file.h"
#include "plat_mem.h"
#include "plat_text.h"
#include "posgate_admin.h"

void
daemon_config_defaults(struct daemon_config *c)
{
    memset(c, 0, sizeof(*c));
    snprintf(c->data_dir, sizeof(c->data_dir), "%s", "/var/lib/posgate");
    c->n_listen = 1;
    c->listen[0].kind = DAEMON_LISTEN_TCP4;
    snprintf(c->listen[0].text, sizeof(c->listen[0].text), "%s", "127.0.0.1:8421");
    c->listen[0].addr[0] = 127;
    c->listen[0].addr[3] = 1;
    c->listen[0].port = 8421;
    c->listen[0].loopback = 1;
    c->poll_interval_s = 300;
    c->log_level = PLAT_LOG_INFO;
    c->audit_batch_max = 500;
    c->audit_upload_interval_s = 10;
    c->audit_retention_days = 30;
    c->audit_max_bytes = 256u * 1024u * 1024u;
    c->at_tolerance_s = 300;
    c->at_horizon_days = 120;
    c->audit_strict = 0;
    c->http_threads = DAEMON_HTTP_THREADS_DEFAULT;
}

static const char *
json_type_name(const cJSON *v)
{
    if (cJSON_IsString(v)) {
        return "a string";
    }
    if (cJSON_IsNumber(v)) {
        return "a number";
    }
    if (cJSON_IsBool(v)) {
        return "a boolean";
    }
    if (cJSON_IsNull(v)) {
        return "null";
    }
    if (cJSON_IsArray(v)) {
        return "an array";
    }
    if (cJSON_IsObject(v)) {
        return "an object";
    }
    return "something else";
}

static int
has_control(const char *s)
{
    for (; *s; s++) {
        if ((unsigned char)*s < 0x20 || *s == 0x7f) {
            return 1;
        }
    }
    return 0;
}

/* A string member copied into dst; null allowed (dst = "") when nullable. */
static enum posgate_err
get_string(const cJSON *v, const char *key, int nullable, char *dst, size_t cap, char *errmsg,
           size_t errcap)
{
    size_t n;

    if (nullable && cJSON_IsNull(v)) {
        dst[0] = 0;
        return POSGATE_OK;
    }
    if (!cJSON_IsString(v)) {
        snprintf(errmsg, errcap, "%s: expected a string%s, found %s", key,
                 nullable ? " or null" : "", json_type_name(v));
        return POSGATE_ERR_INVALID;
    }
    n = strlen(v->valuestring);
    if (n == 0) {
        snprintf(errmsg, errcap, "%s: expected a non-empty string%s, found \"\"", key,
                 nullable ? " (or null)" : "");
        return POSGATE_ERR_INVALID;
    }
    if (n >= cap) {
        snprintf(errmsg, errcap, "%s: expected at most %zu bytes, found %zu", key, cap - 1, n);
        return POSGATE_ERR_INVALID;
    }
    if (has_control(v->valuestring)) {
        snprintf(errmsg, errcap, "%s: expected printable text, found a control character", key);
        return POSGATE_ERR_INVALID;
    }
    memcpy(dst, v->valuestring, n + 1);
    return POSGATE_OK;
}

static enum posgate_err
get_int(const cJSON *v, const char *key, int64_t min, int64_t max, int64_t *out, char *errmsg,
        size_t errcap)
{
    double d;

    if (!cJSON_IsNumber(v)) {
        snprintf(errmsg, errcap, "%s: expected an integer from %lld to %lld, found %s", key,
                 (long long)min, (long long)max, json_type_name(v));
        return POSGATE_ERR_INVALID;
    }
    d = v->valuedouble;
    if (!(d >= (double)min && d <= (double)max) || d != (double)(int64_t)d) {
        snprintf(errmsg, errcap, "%s: expected an integer from %lld to %lld, found %g", key,
                 (long long)min, (long long)max, d);
        return POSGATE_ERR_INVALID;
    }
    *out = (int64_t)d;
    return POSGATE_OK;
}

static enum posgate_err
get_bool(const cJSON *v, const char *key, int *out, char *errmsg, size_t errcap)
{
    if (!cJSON_IsBool(v)) {
        snprintf(errmsg, errcap, "%s: expected true or false, found %s", key, json_type_name(v));
        return POSGATE_ERR_INVALID;
    }
    *out = cJSON_IsTrue(v) ? 1 : 0;
    return POSGATE_OK;
}

static enum posgate_err
parse_port(const char *s, const char *whole, uint16_t *out, char *errmsg, size_t errcap)
{
    unsigned long v = 0;
    size_t n = 0;

    for (; s[n] >= '0' && s[n] <= '9' && n < 6; n++) {
        v = v * 10 + (unsigned long)(s[n] - '0');
    }
    if (n == 0 || s[n] != 0 || v == 0 || v > 65535) {
        snprintf(errmsg, errcap, "expected a port from 1 to 65535 after the last ':' in \"%.200s\"",
                 whole);
        return POSGATE_ERR_INVALID;
    }
    *out = (uint16_t)v;
    return POSGATE_OK;
}

enum posgate_err
daemon_listen_parse(const char *s, struct daemon_listen *out, char *errmsg, size_t errcap)
{
    struct daemon_listen l;
    char host[64];
    const char *colon;
    size_t hl;
    enum posgate_err err;

    memset(&l, 0, sizeof(l));
    if (s == NULL || strlen(s) >= sizeof(l.text) || has_control(s)) {
        snprintf(errmsg, errcap,
                 "expected an address like 127.0.0.1:8421, [::1]:8421 or "
                 "unix:/path, found an empty, overlong or unprintable value");
        return POSGATE_ERR_INVALID;
    }
    snprintf(l.text, sizeof(l.text), "%s", s);
    if (strncmp(s, "unix:", 5) == 0) {
        const char *p = s + 5;

        if (p[0] != '/' || strlen(p) > DAEMON_UNIX_PATH_MAX) {
            snprintf(errmsg, errcap,
                     "expected unix: followed by an absolute path of at most %d bytes, found "
                     "\"%.200s\"",
                     DAEMON_UNIX_PATH_MAX, s);
            return POSGATE_ERR_INVALID;
        }
        l.kind = DAEMON_LISTEN_UNIX;
        l.loopback = 1;
        snprintf(l.path, sizeof(l.path), "%s", p);
        *out = l;
        return POSGATE_OK;
    }
    if (s[0] == '[') {
        const char *close = strchr(s, ']');

        if (close == NULL || close[1] != ':' || (size_t)(close - s - 1) >= sizeof(host)) {
            snprintf(errmsg, errcap, "expected [IPV6]:PORT, found \"%.200s\"", s);
            return POSGATE_ERR_INVALID;
        }
        hl = (size_t)(close - s - 1);
        memcpy(host, s + 1, hl);
        host[hl] = 0;
        if (inet_pton(AF_INET6, host, l.addr) != 1) {
            snprintf(errmsg, errcap, "expected a numeric IPv6 address in [], found \"%.64s\"",
                     host);
            return POSGATE_ERR_INVALID;
        }
        err = parse_port(close + 2, s, &l.port, errmsg, errcap);
        if (err != POSGATE_OK) {
            return err;
        }
        l.kind = DAEMON_LISTEN_TCP6;
        {
            static const uint8_t lo6[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};

            l.loopback = memcmp(l.addr, lo6, 16) == 0;
        }
        *out = l;
        return POSGATE_OK;
    }
    colon = strrchr(s, ':');
    if (colon == NULL || (size_t)(colon - s) >= sizeof(host)) {
        snprintf(errmsg, errcap,
                 "expected an address like 127.0.0.1:8421, [::1]:8421 or unix:/path, found "
                 "\"%.200s\"",
                 s);
        return POSGATE_ERR_INVALID;
    }
    hl = (size_t)(colon - s);
    memcpy(host, s, hl);
    host[hl] = 0;
    if (inet_pton(AF_INET, host, l.addr) != 1) {
        snprintf(errmsg, errcap,
                 "expected a numeric IPv4 address (a host name is not resolved), found \"%.64s\"",
                 host);
        return POSGATE_ERR_INVALID;
    }
    err = parse_port(colon + 1, s, &l.port, errmsg, errcap);
    if (err != POSGATE_OK) {
        return err;
    }
    l.kind = DAEMON_LISTEN_TCP4;
    l.loopback = l.addr[0] == 127;
    *out = l;
    return POSGATE_OK;
}

/* http:// or https://, a host, no spaces or control characters. */
static int
url_ok(const char *u, int http_only)
{
    const char *rest;

    if (strncmp(u, "http://", 7) == 0) {
        rest = u + 7;
    } else if (strncmp(u, "https://", 8) == 0) {
        rest = u + 8;
    } else if (!http_only && strstr(u, "://") != NULL && strstr(u, "://") != u) {
        rest = strstr(u, "://") + 3;
    } else {
        return 0;
    }
    if (*rest == 0 || *rest == '/' || *rest == ':') {
        return 0;
    }
    for (const char *p = u; *p; p++) {
        if ((unsigned char)*p <= 0x20 || *p == 0x7f || *p == '"' || *p == '\\') {
            return 0;
        }
    }
    return 1;
}

static enum posgate_err
parse_listen_array(const cJSON *v, struct daemon_config *c, char *errmsg, size_t errcap)
{
    const cJSON *it;
    size_t n = 0;
    char msg[DAEMON_ERRMSG_MAX];

    if (!cJSON_IsArray(v)) {
        snprintf(errmsg, errcap, "listen: expected an array of addresses, found %s",
                 json_type_name(v));
        return POSGATE_ERR_INVALID;
    }
    cJSON_ArrayForEach(it, v)
    {
        if (n >= DAEMON_LISTEN_MAX) {
            snprintf(errmsg, errcap, "listen: expected at most %d addresses", DAEMON_LISTEN_MAX);
            return POSGATE_ERR_INVALID;
        }
        if (!cJSON_IsString(it)) {
            snprintf(errmsg, errcap, "listen[%zu]: expected a string, found %s", n,
                     json_type_name(it));
            return POSGATE_ERR_INVALID;
        }
        if (daemon_listen_parse(it->valuestring, &c->listen[n], msg, sizeof(msg)) != POSGATE_OK) {
            snprintf(errmsg, errcap, "listen[%zu]: %s", n, msg);
            return POSGATE_ERR_INVALID;
        }
        n++;
    }
    if (n == 0) {
        snprintf(errmsg, errcap, "listen: expected at least one address, found an empty array");
        return POSGATE_ERR_INVALID;
    }
    c->n_listen = n;
    return POSGATE_OK;
}

static enum posgate_err
parse_feed_urls(const cJSON *v, struct daemon_config *c, char *errmsg, size_t errcap)
{
    const cJSON *it;
    size_t n = 0;

    if (!cJSON_IsArray(v)) {
        snprintf(errmsg, errcap, "feed_urls: expected an array of http(s) URLs, found %s",
                 json_type_name(v));
        return POSGATE_ERR_INVALID;
    }
    cJSON_ArrayForEach(it, v)
    {
        if (n >= DAEMON_FEED_URLS_MAX) {
            snprintf(errmsg, errcap, "feed_urls: expected at most %d URLs", DAEMON_FEED_URLS_MAX);
            return POSGATE_ERR_INVALID;
        }
        if (!cJSON_IsString(it)) {
            snprintf(errmsg, errcap, "feed_urls[%zu]: expected a string, found %s", n,
                     json_type_name(it));
            return POSGATE_ERR_INVALID;
        }
        if (strlen(it->valuestring) >= DAEMON_URL_MAX || !url_ok(it->valuestring, 1)) {
            snprintf(errmsg, errcap,
                     "feed_urls[%zu]: expected an http:// or https:// URL with a host and no "
                     "spaces, found \"%.200s\"",
                     n, it->valuestring);
            return POSGATE_ERR_INVALID;
        }
        snprintf(c->feed_urls[n], sizeof(c->feed_urls[n]), "%s", it->valuestring);
        n++;
    }
    c->n_feed_urls = n;
    return POSGATE_OK;
}

/* A host name ("kiosk.local") or an origin ("http://127.0.0.1:8080"): printable ASCII, no
 * spaces; origins have a scheme. */
static enum posgate_err
parse_names(const cJSON *v, const char *k, int origin, char (*dst)[DAEMON_NAME_MAX + 1],
            size_t *n_out, char *errmsg, size_t errcap)
{
    const cJSON *it;
    size_t n = 0;

    if (!cJSON_IsArray(v)) {
        snprintf(errmsg, errcap, "%s: expected an array of strings, found %s", k,
                 json_type_name(v));
        return POSGATE_ERR_INVALID;
    }
    cJSON_ArrayForEach(it, v)
    {
        const char *t;
        int ok;

        if (n >= DAEMON_NAMES_MAX) {
            snprintf(errmsg, errcap, "%s: expected at most %d entries", k, DAEMON_NAMES_MAX);
            return POSGATE_ERR_INVALID;
        }
        if (!cJSON_IsString(it)) {
            snprintf(errmsg, errcap, "%s[%zu]: expected a string, found %s", k, n,
                     json_type_name(it));
            return POSGATE_ERR_INVALID;
        }
        t = it->valuestring;
        ok = t[0] != 0 && strlen(t) <= DAEMON_NAME_MAX;
        for (size_t j = 0; ok && t[j] != 0; j++) {
            ok = t[j] > 0x20 && t[j] < 0x7f && t[j] != ',';
        }
        if (ok && origin) {
            ok = strcmp(t, "null") == 0 || strncmp(t, "http://", 7) == 0 ||
                 strncmp(t, "https://", 8) == 0;
            ok = ok && t[strlen(t) - 1] != '/';
        } else if (ok) {
            ok = strchr(t, '/') == NULL && strchr(t, '@') == NULL;
        }
        if (!ok) {
            snprintf(errmsg, errcap,
                     "%s[%zu]: expected %s, found \"%.200s\"", k, n,
                     origin ? "an origin like \"http://127.0.0.1:8080\" (scheme, host, "
                              "optional port, no path)"
                            : "a host name like \"kiosk.local\" (no scheme, path or spaces)",
                     t);
            return POSGATE_ERR_INVALID;
        }
        snprintf(dst[n], DAEMON_NAME_MAX + 1, "%s", t);
        n++;
    }
    *n_out = n;
    return POSGATE_OK;
}

static enum posgate_err
parse_member(const cJSON *v, struct daemon_config *c, char *errmsg, size_t errcap)
{
    const char *k = v->string;
    int64_t i;
    enum posgate_err err;

    if (strcmp(k, "data_dir") == 0) {
        return get_string(v, k, 0, c->data_dir, sizeof(c->data_dir), errmsg, errcap);
    }
    if (strcmp(k, "listen") == 0) {
        return parse_listen_array(v, c, errmsg, errcap);
    }
    if (strcmp(k, "allow_remote") == 0) {
        return get_bool(v, k, &c->allow_remote, errmsg, errcap);
    }
    if (strcmp(k, "feed_urls") == 0) {
        return parse_feed_urls(v, c, errmsg, errcap);
    }
    if (strcmp(k, "poll_interval_s") == 0) {
        return get_int(v, k, 1, DAEMON_POLL_MAX_S, &c->poll_interval_s, errmsg, errcap);
    }
    if (strcmp(k, "ca_file") == 0) {
        return get_string(v, k, 1, c->ca_file, sizeof(c->ca_file), errmsg, errcap);
    }
    if (strcmp(k, "client_cert") == 0) {
        return get_string(v, k, 1, c->client_cert, sizeof(c->client_cert), errmsg, errcap);
    }
    if (strcmp(k, "client_key") == 0) {
        return get_string(v, k, 1, c->client_key, sizeof(c->client_key), errmsg, errcap);
    }
    if (strcmp(k, "proxy") == 0) {
        err = get_string(v, k, 1, c->proxy, sizeof(c->proxy), errmsg, errcap);
        if (err == POSGATE_OK && c->proxy[0] != 0 && !url_ok(c->proxy, 0)) {
            snprintf(errmsg, errcap,
                     "proxy: expected a URL like http://proxy:3128 or socks5://host:1080, found "
                     "\"%.200s\"",
                     c->proxy);
            err = POSGATE_ERR_INVALID;
        }
        return err;
    }
    if (strcmp(k, "max_recv_bytes_per_s") == 0) {
        err = get_int(v, k, 0, (int64_t)1 << 40, &i, errmsg, errcap);
        if (err == POSGATE_OK) {
            c->max_recv_bytes_per_s = (uint64_t)i;
        }
        return err;
    }
    if (strcmp(k, "api_token") == 0) {
        err = get_string(v, k, 1, c->api_token, sizeof(c->api_token), errmsg, errcap);
        if (err == POSGATE_OK && strchr(c->api_token, ' ') != NULL) {
            snprintf(errmsg, errcap, "api_token: expected a token without spaces");
            err = POSGATE_ERR_INVALID;
        }
        return err;
    }
    if (strcmp(k, "admin_token") == 0) {
        err = get_string(v, k, 1, c->admin_token, sizeof(c->admin_token), errmsg, errcap);
        if (err == POSGATE_OK && strchr(c->admin_token, ' ') != NULL) {
            snprintf(errmsg, errcap, "admin_token: expected a token without spaces");
            err = POSGATE_ERR_INVALID;
        }
        return err;
    }
    if (strcmp(k, "allowed_hosts") == 0) {
        return parse_names(v, k, 0, c->allowed_hosts, &c->n_allowed_hosts, errmsg, errcap);
    }
    if (strcmp(k, "allowed_origins") == 0) {
        return parse_names(v, k, 1, c->allowed_origins, &c->n_allowed_origins, errmsg, errcap);
    }
    if (strcmp(k, "socket_group") == 0) {
        err = get_string(v, k, 1, c->socket_group, sizeof(c->socket_group), errmsg, errcap);
        for (size_t j = 0; err == POSGATE_OK && c->socket_group[j] != 0; j++) {
            char ch = c->socket_group[j];

            if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                  (ch >= '0' && ch <= '9') || ch == '_' || ch == '-' || ch == '.')) {
                snprintf(errmsg, errcap,
                         "socket_group: expected a group name (letters, digits, _ - .), found "
                         "\"%.64s\"",
                         c->socket_group);
                err = POSGATE_ERR_INVALID;
            }
        }
        return err;
    }
    if (strcmp(k, "log_level") == 0) {
        if (!cJSON_IsString(v) || !plat_log_level_parse(v->valuestring, &c->log_level)) {
            snprintf(errmsg, errcap,
                     "log_level: expected one of \"debug\", \"info\", \"warn\", \"error\", "
                     "\"off\", found %s%.40s%s",
                     cJSON_IsString(v) ? "\"" : json_type_name(v),
                     cJSON_IsString(v) ? v->valuestring : "", cJSON_IsString(v) ? "\"" : "");
            return POSGATE_ERR_INVALID;
        }
        return POSGATE_OK;
    }
    if (strcmp(k, "audit_url") == 0) {
        err = get_string(v, k, 1, c->audit_url, sizeof(c->audit_url), errmsg, errcap);
        if (err == POSGATE_OK && c->audit_url[0] != 0 && !url_ok(c->audit_url, 1)) {
            snprintf(errmsg, errcap,
                     "audit_url: expected an http:// or https:// URL with a host and no spaces "
                     "(or null), found \"%.200s\"",
                     c->audit_url);
            err = POSGATE_ERR_INVALID;
        }
        return err;
    }
    if (strcmp(k, "audit_batch_max") == 0) {
        return get_int(v, k, 1, DAEMON_AUDIT_BATCH_MAX, &c->audit_batch_max, errmsg, errcap);
    }
    if (strcmp(k, "audit_upload_interval_s") == 0) {
        return get_int(v, k, 1, DAEMON_AUDIT_INTERVAL_MAX_S, &c->audit_upload_interval_s, errmsg,
                       errcap);
    }
    if (strcmp(k, "audit_retention_days") == 0) {
        return get_int(v, k, 0, DAEMON_AUDIT_RETENTION_MAX_DAYS, &c->audit_retention_days, errmsg,
                       errcap);
    }
    if (strcmp(k, "audit_max_bytes") == 0) {
        err = get_int(v, k, 0, (int64_t)1 << 50, &i, errmsg, errcap);
        if (err == POSGATE_OK) {
            c->audit_max_bytes = (uint64_t)i;
        }
        return err;
    }
    if (strcmp(k, "at_tolerance_s") == 0) {
        return get_int(v, k, 0, 86400, &c->at_tolerance_s, errmsg, errcap);
    }
    if (strcmp(k, "at_horizon_days") == 0) {
        return get_int(v, k, 0, 3660, &c->at_horizon_days, errmsg, errcap);
    }
    if (strcmp(k, "http_threads") == 0) {
        return get_int(v, k, 1, DAEMON_HTTP_THREADS_MAX, &c->http_threads, errmsg, errcap);
    }
    if (strcmp(k, "audit_durability") == 0) {
        if (cJSON_IsString(v) && strcmp(v->valuestring, "strict") == 0) {
            c->audit_strict = 1;
            return POSGATE_OK;
        }
        if (cJSON_IsString(v) && strcmp(v->valuestring, "batched") == 0) {
            c->audit_strict = 0;
            return POSGATE_OK;
        }
        snprintf(errmsg, errcap,
                 "audit_durability: expected \"batched\" or \"strict\", found %s%.40s%s",
                 cJSON_IsString(v) ? "\"" : json_type_name(v),
                 cJSON_IsString(v) ? v->valuestring : "", cJSON_IsString(v) ? "\"" : "");
        return POSGATE_ERR_INVALID;
    }
    snprintf(errmsg, errcap,
             "%.100s: unknown key (expected one of data_dir, listen, allow_remote, feed_urls, "
             "poll_interval_s, ca_file, client_cert, client_key, proxy, max_recv_bytes_per_s, "
             "api_token, admin_token, allowed_hosts, allowed_origins, socket_group, log_level, "
             "audit_url, audit_batch_max, audit_upload_interval_s, "
             "audit_retention_days, audit_max_bytes, audit_durability, http_threads, "
             "at_tolerance_s, at_horizon_days)",
             k);
    return POSGATE_ERR_INVALID;
}

enum posgate_err
daemon_config_parse(const void *data, size_t len, struct daemon_config *out, char *errmsg,
                    size_t errcap)
{
    struct daemon_config *c;
    cJSON *root = NULL;
    const cJSON *it;
    enum posgate_err err;
    char msg[DAEMON_ERRMSG_MAX];

    json_init_hooks();
    c = cJSON_malloc(sizeof(*c));
    if (c == NULL) {
        return POSGATE_ERR_NOMEM;
    }
    daemon_config_defaults(c);
    err = json_parse_bounded(data, len, DAEMON_CONFIG_MAX_BYTES, &root, msg, sizeof(msg));
    if (err != POSGATE_OK) {
        snprintf(errmsg, errcap, "config: %s", msg);
        goto out;
    }
    if (!cJSON_IsObject(root)) {
        snprintf(errmsg, errcap, "config: expected a JSON object, found %s", json_type_name(root));
        err = POSGATE_ERR_INVALID;
        goto out;
    }
    cJSON_ArrayForEach(it, root)
    {
        err = parse_member(it, c, errmsg, errcap);
        if (err != POSGATE_OK) {
            goto out;
        }
    }
    for (size_t i = 0; i < c->n_listen; i++) {
        if (!c->listen[i].loopback && !c->allow_remote) {
            snprintf(errmsg, errcap,
                     "listen[%zu]: \"%.200s\" is not a loopback address; set \"allow_remote\": "
                     "true to listen on it",
                     i, c->listen[i].text);
            err = POSGATE_ERR_INVALID;
            goto out;
        }
    }
    if (c->allow_remote && c->api_token[0] == 0) {
        snprintf(errmsg, errcap,
                 "allow_remote: true needs an api_token (remote callers must authenticate), "
                 "found none");
        err = POSGATE_ERR_INVALID;
        goto out;
    }
    if (c->admin_token[0] != 0 && strcmp(c->admin_token, c->api_token) == 0) {
        snprintf(errmsg, errcap,
                 "admin_token: expected a token other than api_token (a check caller must not "
                 "hold the privileged credential), found the same");
        err = POSGATE_ERR_INVALID;
        goto out;
    }
    if ((c->client_cert[0] != 0) != (c->client_key[0] != 0)) {
        snprintf(errmsg, errcap,
                 "%s: expected client_cert and client_key together, found only "
                 "one of them",
                 c->client_cert[0] != 0 ? "client_key" : "client_cert");
        err = POSGATE_ERR_INVALID;
        goto out;
    }
    *out = *c;
out:
    cJSON_Delete(root);
    cJSON_free(c);
    return err;
}

enum posgate_err
daemon_config_load(const char *path, struct daemon_config *out, char *errmsg, size_t errcap)
{
    struct buf raw = BUF_INIT(DAEMON_CONFIG_MAX_BYTES);
    enum posgate_err err;

    if (path == NULL) {
        snprintf(errmsg, errcap, "config: no file given");
        return POSGATE_ERR_INVALID;
    }
    err = plat_read_file(path, &raw);
    if (err != POSGATE_OK) {
        snprintf(errmsg, errcap, "config %.300s: %s", path,
                 err == POSGATE_ERR_TOOBIG ? "larger than 64 KiB" : posgate_strerror(err));
        goto out;
    }
    err = daemon_config_parse(raw.data, raw.len, out, errmsg, errcap);
out:
    buf_free(&raw);
    return err;
}

/* ---- POST /v1/check ---- */

/* The text of every string in a request body is checked on the raw JSON, before cJSON decodes
 * it: cJSON turns \u0000 into a NUL that silently ends its C string, so "a\u0000b" would reach
 * the store as "a". Each string (keys too) is decoded here, escapes included, and must be
 * UTF-8 text without NUL or control characters (plat_text.h); only the identifiers in "ids"
 * may hold a newline (MRZ lines). Malformed JSON is left for the parser to name. */
#define SCAN_DEPTH 8

struct scan_frame {
    int is_obj;
    int want_key;
    size_t index;
    char key[48];
};

static size_t
hex4(const char *p, const char *end, uint32_t *v)
{
    *v = 0;
    if (end - p < 4) {
        return 0;
    }
    for (int i = 0; i < 4; i++) {
        char c = p[i];

        *v <<= 4;
        if (c >= '0' && c <= '9') {
            *v |= (uint32_t)(c - '0');
        } else if (c >= 'a' && c <= 'f') {
            *v |= (uint32_t)(c - 'a' + 10);
        } else if (c >= 'A' && c <= 'F') {
            *v |= (uint32_t)(c - 'A' + 10);
        } else {
            return 0;
        }
    }
    return 4;
}

static size_t
put_utf8(uint32_t cp, char *o)
{
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (char)(0xC0 | (cp >> 6));
        o[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | (cp >> 12));
        o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | (cp >> 18));
    o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* Decodes the string whose opening quote is at p[-1] into out (room for end - p bytes).
 * Returns the position after the closing quote, or NULL when the string is malformed JSON. A
 * lone surrogate escape decodes to bytes that plat_text_check refuses. */
static const char *
decode_string(const char *p, const char *end, char *out, size_t *n)
{
    size_t o = 0;

    while (p < end && *p != '"') {
        uint32_t cp, lo;

        if (*p != '\\') {
            out[o++] = *p++;
            continue;
        }
        if (end - p < 2) {
            return NULL;
        }
        switch (p[1]) {
        case '"':
        case '\\':
        case '/':
            out[o++] = p[1];
            p += 2;
            continue;
        case 'b':
            out[o++] = '\b';
            p += 2;
            continue;
        case 'f':
            out[o++] = '\f';
            p += 2;
            continue;
        case 'n':
            out[o++] = '\n';
            p += 2;
            continue;
        case 'r':
            out[o++] = '\r';
            p += 2;
            continue;
        case 't':
            out[o++] = '\t';
            p += 2;
            continue;
        case 'u':
            break;
        default:
            return NULL;
        }
        if (hex4(p + 2, end, &cp) == 0) {
            return NULL;
        }
        p += 6;
        if (cp >= 0xD800 && cp <= 0xDBFF && end - p >= 6 && p[0] == '\\' && p[1] == 'u' &&
            hex4(p + 2, end, &lo) != 0 && lo >= 0xDC00 && lo <= 0xDFFF) {
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            p += 6;
        }
        if (cp >= 0xD800 && cp <= 0xDFFF) {
            out[o++] = (char)0xED; /* a lone surrogate: not UTF-8, refused below */
            continue;
        }
        o += put_utf8(cp, out + o);
    }
    if (p >= end) {
        return NULL;
    }
    *n = o;
    return p + 1;
}

static void
scan_path(const struct scan_frame *f, size_t depth, int is_key, char *out, size_t cap)
{
    size_t used = 0;

    out[0] = 0;
    for (size_t i = 0; i < depth && used < cap; i++) {
        int r;

        if (f[i].is_obj) {
            if (is_key && i + 1 == depth) {
                break;
            }
            r = snprintf(out + used, cap - used, "%s%s", used > 0 ? "." : "", f[i].key);
        } else {
            r = snprintf(out + used, cap - used, "[%zu]", f[i].index);
        }
        if (r < 0) {
            break;
        }
        used += (size_t)r;
    }
    if (out[0] == 0) {
        snprintf(out, cap, "body");
    }
}

enum posgate_err
daemon_body_text_check(const void *data, size_t len, char *errmsg, size_t errcap)
{
    const char *p = data, *end = p + len;
    struct scan_frame f[SCAN_DEPTH];
    size_t depth = 0;
    char *tmp;
    enum posgate_err err = POSGATE_OK;

    if (len == 0) {
        return POSGATE_OK;
    }
    tmp = cJSON_malloc(len);
    if (tmp == NULL) {
        return POSGATE_ERR_NOMEM;
    }
    memset(f, 0, sizeof(f));
    while (p < end) {
        char c = *p++;

        if (c == '{' || c == '[') {
            if (depth >= SCAN_DEPTH) {
                break; /* deeper than any request: the parser names what is wrong */
            }
            memset(&f[depth], 0, sizeof(f[depth]));
            f[depth].is_obj = c == '{';
            f[depth].want_key = c == '{';
            depth++;
        } else if (c == '}' || c == ']') {
            if (depth == 0) {
                break;
            }
            depth--;
        } else if (c == ',' && depth > 0) {
            f[depth - 1].want_key = f[depth - 1].is_obj;
            f[depth - 1].index += !f[depth - 1].is_obj;
        } else if (c == '"') {
            size_t n = 0, at = 0;
            int is_key = depth > 0 && f[depth - 1].is_obj && f[depth - 1].want_key;
            unsigned flags = 0;
            const char *bad;
            char path[128];

            p = decode_string(p, end, tmp, &n);
            if (p == NULL) {
                break;
            }
            if (!is_key && depth >= 2 && f[0].is_obj && strcmp(f[0].key, "ids") == 0) {
                flags = PLAT_TEXT_ALLOW_NEWLINE;
            }
            bad = plat_text_check(tmp, n, flags, &at);
            if (bad != NULL) {
                scan_path(f, depth, is_key, path, sizeof(path));
                snprintf(errmsg, errcap,
                         "%s: expected UTF-8 text without NUL or control characters, found %s "
                         "at byte %zu%s",
                         path, bad, at, is_key ? " of a key" : "");
                err = POSGATE_ERR_INVALID;
                break;
            }
            if (is_key) {
                size_t k = n < sizeof(f[depth - 1].key) - 1 ? n : sizeof(f[depth - 1].key) - 1;

                memcpy(f[depth - 1].key, tmp, k);
                f[depth - 1].key[k] = 0;
                f[depth - 1].want_key = 0;
            }
        }
    }
    cJSON_free(tmp);
    return err;
}

static enum posgate_err
body_string(const cJSON *v, const char *field, char *errmsg, size_t errcap)
{
    if (!cJSON_IsString(v)) {
        snprintf(errmsg, errcap, "%s: expected a string, found %s", field, json_type_name(v));
        return POSGATE_ERR_INVALID;
    }
    return POSGATE_OK;
}

/* The members of a check body's top object, each given at most once (NULL: not given). */
struct body_members {
    const cJSON *service, *ids, *name, *dob, *op, *at, *ov_by, *ov_reason;
};

/* Sorts the members of root into m; INVALID naming an unknown key or one given twice. */
static enum posgate_err
body_members(const cJSON *root, struct body_members *m, char *errmsg, size_t errcap)
{
    const cJSON *it;

    memset(m, 0, sizeof(*m));
    cJSON_ArrayForEach(it, root)
    {
        const cJSON **slot = NULL;

        if (strcmp(it->string, "service") == 0) {
            slot = &m->service;
        } else if (strcmp(it->string, "ids") == 0) {
            slot = &m->ids;
        } else if (strcmp(it->string, "name") == 0) {
            slot = &m->name;
        } else if (strcmp(it->string, "birth_date") == 0) {
            slot = &m->dob;
        } else if (strcmp(it->string, "operator") == 0) {
            slot = &m->op;
        } else if (strcmp(it->string, "at") == 0) {
            slot = &m->at;
        } else if (strcmp(it->string, "override_by") == 0) {
            slot = &m->ov_by;
        } else if (strcmp(it->string, "override_reason") == 0) {
            slot = &m->ov_reason;
        } else {
            snprintf(errmsg, errcap,
                     "%.100s: unknown key (expected service, ids, name, birth_date, operator, "
                     "at, override_by, override_reason)",
                     it->string);
            return POSGATE_ERR_INVALID;
        }
        if (*slot != NULL) {
            snprintf(errmsg, errcap, "%s: key given twice", it->string);
            return POSGATE_ERR_INVALID;
        }
        *slot = it;
    }
    return POSGATE_OK;
}

/* ---- the common check body, read without a tree ---- */

/* The longest string the direct reader copies; a longer one goes to the general parser. */
#define FAST_STR_MAX 255

struct span {
    const char *p;
    size_t n;
};

static const char *
fast_ws(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) {
        p++;
    }
    return p;
}

/* A string without escapes or bytes below 0x20, at p: its bytes in *s and the byte after its
 * closing quote; NULL for anything else. */
static const char *
fast_str(const char *p, const char *end, struct span *s)
{
    if (p >= end || *p != '"') {
        return NULL;
    }
    s->p = ++p;
    while (p < end && *p != '"') {
        if ((unsigned char)*p < 0x20 || *p == '\\') {
            return NULL;
        }
        p++;
    }
    if (p >= end || (size_t)(p - s->p) > FAST_STR_MAX) {
        return NULL;
    }
    s->n = (size_t)(p - s->p);
    return p + 1;
}

static int
span_is(const struct span *s, const char *lit)
{
    return s->n == strlen(lit) && memcmp(s->p, lit, s->n) == 0;
}

/* The ids array at p ('['): at least one and at most POSGATED_IDS_MAX plain strings. */
static const char *
fast_ids(const char *p, const char *end, struct span *ids, size_t *n)
{
    if (p >= end || *p != '[') {
        return NULL;
    }
    p++;
    *n = 0;
    for (;;) {
        if (*n == POSGATED_IDS_MAX) {
            return NULL;
        }
        p = fast_str(fast_ws(p, end), end, &ids[*n]);
        if (p == NULL) {
            return NULL;
        }
        (*n)++;
        p = fast_ws(p, end);
        if (p < end && *p == ',') {
            p++;
            continue;
        }
        return p < end && *p == ']' ? p + 1 : NULL;
    }
}

/* Sets what a string names through set (service) or add (an identifier) from a copy ended by a
 * NUL; 0 when the request refuses it. */
static int
fast_apply(struct posgate_request *rq, const struct span *s, int is_id)
{
    char v[FAST_STR_MAX + 1];
    int ok;

    memcpy(v, s->p, s->n);
    v[s->n] = 0;
    ok = (is_id ? posgate_request_add_id(rq, v) : posgate_request_set_service(rq, v)) ==
         POSGATE_OK;
    plat_wipe(v, s->n); /* an identifier in clear */
    return ok;
}

enum posgate_err
daemon_check_body_fast(const void *data, size_t len, struct posgate_request *rq)
{
    const char *p = data, *end = p + len;
    struct span key, service = {NULL, 0}, ids[POSGATED_IDS_MAX];
    size_t n_ids = 0, at;
    int have_ids = 0;

    if (rq == NULL || data == NULL || len > DAEMON_CHECK_BODY_MAX) {
        return POSGATE_ERR_PARSE;
    }
    p = fast_ws(p, end);
    if (p >= end || *p != '{') {
        return POSGATE_ERR_PARSE;
    }
    do {
        p = fast_str(fast_ws(p + 1, end), end, &key);
        p = p != NULL ? fast_ws(p, end) : NULL;
        if (p == NULL || p >= end || *p != ':') {
            return POSGATE_ERR_PARSE;
        }
        p = fast_ws(p + 1, end);
        if (span_is(&key, "service") && service.p == NULL) {
            p = fast_str(p, end, &service);
        } else if (span_is(&key, "ids") && !have_ids) {
            have_ids = 1;
            p = fast_ids(p, end, ids, &n_ids);
        } else {
            return POSGATE_ERR_PARSE; /* another key, or one given twice */
        }
        p = p != NULL ? fast_ws(p, end) : NULL;
    } while (p != NULL && p < end && *p == ',');
    if (p == NULL || p >= end || *p != '}' || fast_ws(p + 1, end) != end || service.p == NULL ||
        !have_ids) {
        return POSGATE_ERR_PARSE;
    }
    /* the general parser's order: every string judged as text first, then the service, then
     * each identifier in turn */
    if (plat_text_check(service.p, service.n, 0, &at) != NULL) {
        return POSGATE_ERR_PARSE;
    }
    for (size_t i = 0; i < n_ids; i++) {
        if (plat_text_check(ids[i].p, ids[i].n, PLAT_TEXT_ALLOW_NEWLINE, &at) != NULL) {
            return POSGATE_ERR_PARSE;
        }
    }
    posgate_request_reset(rq);
    if (!fast_apply(rq, &service, 0)) {
        return POSGATE_ERR_PARSE;
    }
    for (size_t i = 0; i < n_ids; i++) {
        if (!fast_apply(rq, &ids[i], 1)) {
            return POSGATE_ERR_PARSE;
        }
    }
    return POSGATE_OK;
}

enum posgate_err
daemon_check_body_parse(const void *data, size_t len, struct posgate_request *rq, char *errmsg,
                        size_t errcap)
{
    cJSON *root = NULL;
    struct body_members m;
    const cJSON *it;
    enum posgate_err err;
    char msg[DAEMON_ERRMSG_MAX];

    if (rq == NULL || (data == NULL && len > 0)) {
        snprintf(errmsg, errcap, "body: no request");
        return POSGATE_ERR_INVALID;
    }
    if (len <= DAEMON_CHECK_BODY_MAX && daemon_check_body_fast(data, len, rq) == POSGATE_OK) {
        return POSGATE_OK;
    }
    posgate_request_reset(rq);
    json_init_hooks();
    if (len > DAEMON_CHECK_BODY_MAX) {
        snprintf(errmsg, errcap, "body: expected at most %u bytes, found %zu",
                 DAEMON_CHECK_BODY_MAX, len);
        return POSGATE_ERR_TOOBIG;
    }
    err = daemon_body_text_check(data, len, errmsg, errcap);
    if (err != POSGATE_OK) {
        goto out;
    }
    err = json_parse_bounded(data, len, DAEMON_CHECK_BODY_MAX, &root, msg, sizeof(msg));
    if (err != POSGATE_OK) {
        snprintf(errmsg, errcap, "body: %s", msg);
        goto out;
    }
    err = POSGATE_ERR_INVALID;
    if (!cJSON_IsObject(root)) {
        snprintf(errmsg, errcap, "body: expected a JSON object, found %s", json_type_name(root));
        goto out;
    }
    if (body_members(root, &m, errmsg, errcap) != POSGATE_OK) {
        goto out;
    }
    if (m.service == NULL) {
        snprintf(errmsg, errcap, "service: required, not given");
        goto out;
    }
    if (body_string(m.service, "service", errmsg, errcap) != POSGATE_OK) {
        goto out;
    }
    if (posgate_request_set_service(rq, m.service->valuestring) != POSGATE_OK) {
        snprintf(errmsg, errcap, "%s", posgate_request_errmsg(rq));
        goto out;
    }
    if (m.ids != NULL) {
        size_t i = 0;

        if (!cJSON_IsArray(m.ids)) {
            snprintf(errmsg, errcap, "ids: expected an array of \"TYPE:VALUE\" strings, found %s",
                     json_type_name(m.ids));
            goto out;
        }
        cJSON_ArrayForEach(it, m.ids)
        {
            if (!cJSON_IsString(it)) {
                snprintf(errmsg, errcap, "ids[%zu]: expected a \"TYPE:VALUE\" string, found %s", i,
                         json_type_name(it));
                goto out;
            }
            if (posgate_request_add_id(rq, it->valuestring) != POSGATE_OK) {
                snprintf(errmsg, errcap, "ids[%zu]: %s", i, posgate_request_errmsg(rq));
                goto out;
            }
            i++;
        }
    }
    if ((m.name == NULL) != (m.dob == NULL)) {
        snprintf(errmsg, errcap, "%s: required together with %s",
                 m.name == NULL ? "name" : "birth_date", m.name == NULL ? "birth_date" : "name");
        goto out;
    }
    if (m.name != NULL) {
        if (body_string(m.name, "name", errmsg, errcap) != POSGATE_OK ||
            body_string(m.dob, "birth_date", errmsg, errcap) != POSGATE_OK) {
            goto out;
        }
        if (posgate_request_set_name_dob(rq, m.name->valuestring, m.dob->valuestring) !=
            POSGATE_OK) {
            const char *em = posgate_request_errmsg(rq);

            snprintf(errmsg, errcap, "%s: %s",
                     strstr(em, "birth") != NULL || strstr(em, "date") != NULL ? "birth_date"
                                                                                 : "name",
                     em);
            goto out;
        }
    }
    if ((m.ids == NULL || cJSON_GetArraySize(m.ids) == 0) && m.name == NULL) {
        snprintf(errmsg, errcap,
                 "ids: expected at least one \"TYPE:VALUE\" identifier (or name and birth_date)");
        goto out;
    }
    if (m.op != NULL) {
        if (body_string(m.op, "operator", errmsg, errcap) != POSGATE_OK) {
            goto out;
        }
        if (posgate_request_set_operator(rq, m.op->valuestring) != POSGATE_OK) {
            snprintf(errmsg, errcap, "%s", posgate_request_errmsg(rq));
            goto out;
        }
    }
    if ((m.ov_by == NULL) != (m.ov_reason == NULL)) {
        snprintf(errmsg, errcap, "%s: required together with %s",
                 m.ov_by == NULL ? "override_by" : "override_reason",
                 m.ov_by == NULL ? "override_reason" : "override_by");
        goto out;
    }
    if (m.ov_by != NULL) {
        if (body_string(m.ov_by, "override_by", errmsg, errcap) != POSGATE_OK ||
            body_string(m.ov_reason, "override_reason", errmsg, errcap) != POSGATE_OK) {
            goto out;
        }
        if (posgate_request_set_override(rq, m.ov_by->valuestring, m.ov_reason->valuestring) !=
            POSGATE_OK) {
            snprintf(errmsg, errcap, "%s", posgate_request_errmsg(rq));
            goto out;
        }
    }
    if (m.at != NULL) {
        if (body_string(m.at, "at", errmsg, errcap) != POSGATE_OK) {
            goto out;
        }
        if (posgate_request_set_at(rq, m.at->valuestring) != POSGATE_OK) {
            snprintf(errmsg, errcap, "%s", posgate_request_errmsg(rq));
            goto out;
        }
    }
    err = POSGATE_OK;
out:
    json_delete_wiped(root); /* identifiers in clear */
    return err;
}

/* ---- answers ---- */

static void
add_time(cJSON *o, const char *name, int64_t t)
{
    char s[32];

    if (t == 0) {
        cJSON_AddNullToObject(o, name);
        return;
    }
    plat_time_format(t, s, sizeof(s));
    cJSON_AddStringToObject(o, name, s);
}

enum posgate_err
daemon_health_from_status(const char *status_json, struct daemon_health *h)
{
    cJSON *root = NULL;
    const cJSON *v, *lists, *it;
    enum posgate_err err;
    char msg[128];

    memset(h, 0, sizeof(*h));
    h->data_age_s = -1;
    json_init_hooks();
    err = json_parse_bounded(status_json, strlen(status_json), 1u << 22, &root, msg, sizeof(msg));
    if (err != POSGATE_OK) {
        return POSGATE_ERR_PARSE;
    }
    v = cJSON_GetObjectItemCaseSensitive(root, "feed_version");
    lists = cJSON_GetObjectItemCaseSensitive(root, "lists");
    if (!cJSON_IsNumber(v) || !cJSON_IsArray(lists)) {
        err = POSGATE_ERR_PARSE;
        goto out;
    }
    h->feed_version = (int64_t)v->valuedouble;
    cJSON_ArrayForEach(it, lists)
    {
        const cJSON *age = cJSON_GetObjectItemCaseSensitive(it, "data_age_s");
        const cJSON *stale = cJSON_GetObjectItemCaseSensitive(it, "stale");
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(it, "id");

        if (cJSON_IsNumber(age) && (int64_t)age->valuedouble > h->data_age_s) {
            h->data_age_s = (int64_t)age->valuedouble;
        }
        if (cJSON_IsTrue(stale) && h->reason[0] == 0) {
            snprintf(h->reason, sizeof(h->reason), "list %.100s is stale (data age %lld s)",
                     cJSON_IsString(id) ? id->valuestring : "?",
                     cJSON_IsNumber(age) ? (long long)age->valuedouble : -1LL);
        }
    }
    v = cJSON_GetObjectItemCaseSensitive(root, "list_key");
    if (h->feed_version <= 0) {
        snprintf(h->reason, sizeof(h->reason), "no verified list data is installed yet");
    } else if (cJSON_IsString(v) && strcmp(v->valuestring, "mismatch") == 0) {
        snprintf(h->reason, sizeof(h->reason),
                 "list key mismatch: the installed feed was keyed with another list key; every "
                 "check is refused");
    } else if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(root, "metadata_expired"))) {
        v = cJSON_GetObjectItemCaseSensitive(root, "expires_at");
        snprintf(h->reason, sizeof(h->reason), "feed metadata expired at %.40s",
                 cJSON_IsString(v) ? v->valuestring : "?");
    } else if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(root, "clock_fault"))) {
        snprintf(h->reason, sizeof(h->reason),
                 "clock fault: the wall clock is earlier than the newest signed issue time");
    } else if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(root, "disk_full"))) {
        snprintf(h->reason, sizeof(h->reason),
                 "disk full: the audit queue is recording on the space it set aside; checks "
                 "are answered, free space in the data dir");
    }
    h->ok = h->reason[0] == 0;
out:
    cJSON_Delete(root);
    return err;
}

enum posgate_err
daemon_status_with_sync(const char *status_json, const struct daemon_sync_state *s, struct buf *out)
{
    cJSON *root = NULL, *sync, *audit;
    char msg[128];
    enum posgate_err err;

    json_init_hooks();
    err = json_parse_bounded(status_json, strlen(status_json), 1u << 22, &root, msg, sizeof(msg));
    if (err != POSGATE_OK) {
        return POSGATE_ERR_PARSE;
    }
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return POSGATE_ERR_PARSE;
    }
    sync = cJSON_AddObjectToObject(root, "sync");
    if (sync == NULL) {
        cJSON_Delete(root);
        return POSGATE_ERR_NOMEM;
    }
    add_time(sync, "last_attempt", s->last_attempt);
    add_time(sync, "last_success", s->last_success);
    if (s->last_error[0] != 0) {
        cJSON_AddStringToObject(sync, "last_error", s->last_error);
    } else {
        cJSON_AddNullToObject(sync, "last_error");
    }
    add_time(sync, "next_attempt", s->next_attempt);
    cJSON_AddBoolToObject(sync, "running", s->running != 0);
    if (s->pending_id > 0) {
        cJSON_AddNumberToObject(sync, "pending_id", (double)s->pending_id);
    } else {
        cJSON_AddNullToObject(sync, "pending_id");
    }
    if (s->last_id > 0) {
        cJSON *r = cJSON_AddObjectToObject(sync, "result");

        if (r == NULL) {
            cJSON_Delete(root);
            return POSGATE_ERR_NOMEM;
        }
        cJSON_AddNumberToObject(r, "id", (double)s->last_id);
        cJSON_AddBoolToObject(r, "ok", s->last_ok != 0);
        cJSON_AddStringToObject(r, "kind", s->last_kind != NULL ? s->last_kind : "store");
        cJSON_AddNumberToObject(r, "http_status", (double)s->last_status);
        cJSON_AddNumberToObject(r, "feed_version", (double)s->last_feed_version);
        cJSON_AddBoolToObject(r, "changed", s->last_changed != 0);
        if (s->last_ok || s->last_error[0] == 0) {
            cJSON_AddNullToObject(r, "error");
        } else {
            cJSON_AddStringToObject(r, "error", s->last_error);
        }
    } else {
        cJSON_AddNullToObject(sync, "result");
    }
    /* the kiosk's status has the queue's figures (head_seq, acked_seq, unsent ...): the
     * uploader's state goes into the same object */
    audit = cJSON_GetObjectItemCaseSensitive(root, "audit");
    if (!cJSON_IsObject(audit)) {
        audit = cJSON_AddObjectToObject(root, "audit");
    }
    if (audit == NULL) {
        cJSON_Delete(root);
        return POSGATE_ERR_NOMEM;
    }
    cJSON_AddBoolToObject(audit, "enabled", s->audit.enabled != 0);
    cJSON_AddNumberToObject(audit, "queued", (double)s->audit.queued);
    cJSON_AddNumberToObject(audit, "last_acked_seq", (double)s->audit.last_acked_seq);
    add_time(audit, "last_upload", s->audit.last_upload);
    if (s->audit.last_error[0] != 0) {
        cJSON_AddStringToObject(audit, "last_error", s->audit.last_error);
    } else {
        cJSON_AddNullToObject(audit, "last_error");
    }
    add_time(audit, "next_upload", s->audit.next_upload);
    cJSON_AddBoolToObject(audit, "stopped", s->audit.stopped != 0);
    return json_print_to_buf(root, out);
}

enum posgate_err
daemon_sync_accepted_json(uint64_t id, int running, struct buf *out)
{
    cJSON *root;
    char where[96];

    json_init_hooks();
    root = cJSON_CreateObject();
    if (root != NULL) {
        snprintf(where, sizeof(where), "/v1/status sync.result, once sync.result.id >= %llu",
                 (unsigned long long)id);
        cJSON_AddNumberToObject(root, "sync_id", (double)id);
        cJSON_AddBoolToObject(root, "running", running != 0);
        cJSON_AddStringToObject(root, "result", where);
    }
    return json_print_to_buf(root, out);
}

enum posgate_err
daemon_error_json(const char *msg, struct buf *out)
{
    cJSON *root;

    json_init_hooks();
    root = cJSON_CreateObject();
    if (root != NULL) {
        cJSON_AddStringToObject(root, "error", msg != NULL ? msg : "");
    }
    return json_print_to_buf(root, out);
}

enum posgate_err
daemon_health_json(const struct daemon_health *h, struct buf *out)
{
    cJSON *root;

    json_init_hooks();
    root = cJSON_CreateObject();
    if (root != NULL) {
        cJSON_AddBoolToObject(root, "ok", h->ok != 0);
        if (!h->ok) {
            cJSON_AddStringToObject(root, "reason", h->reason);
        }
        cJSON_AddNumberToObject(root, "feed_version", (double)h->feed_version);
    }
    return json_print_to_buf(root, out);
}
