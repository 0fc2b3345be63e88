/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Fuzz target for the request router's gate (httpd_gate) with the headers a browser or a
 * hostile program controls, followed by the check body parser for what the gate lets through.
 * Input: one byte choosing the listener (bit 0: unix socket; bit 1: an api_token is set; bit 2:
 * IPv6 loopback), then an HTTP head in text ("METHOD URL" line, "Name: value" lines, a blank
 * line) and the body. Beyond not crashing:
 *   - a request that passes carries no Origin outside allowed_origins, and on TCP a Host that
 *     is the listener's address, localhost or an allowed_hosts name, with the listener's port;
 *   - POST /v1/sync passes only privileged (the unix socket or the admin token);
 *   - privileged on TCP means the Authorization header is exactly "Bearer ADMIN_TOKEN";
 *   - a POST that passes is typed application/json or has no body;
 *   - every refusal has a status from the documented set and a message;
 *   - a body the text check accepts holds no NUL in any string cJSON decodes (a check body
 *     that parses has an operator without control characters).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "daemon_config.h"
#include "httpd.h"
#include "posgate_admin.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define HEAD_MAX 4096
#define FIELDS   8

static const char *
header(char names[][64], char values[][512], size_t n, const char *want)
{
    for (size_t i = 0; i < n; i++) {
        if (strcasecmp(names[i], want) == 0) {
            return values[i];
        }
    }
    return NULL;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct httpd_access acc;
    static char names[FIELDS][64], values[FIELDS][512];
    struct httpd_peer peer;
    struct httpd_head hd;
    char head[HEAD_MAX + 1], method[16], url[256], msg[DAEMON_ERRMSG_MAX];
    const char *p, *end, *body;
    size_t n_hdr = 0, hl, body_len;
    unsigned status;
    int privileged = 0, flags;

    if (size < 1) {
        return 0;
    }
    flags = data[0];
    data++;
    size--;
    memset(&acc, 0, sizeof(acc));
    if (flags & 2) {
        memcpy(acc.api_token, "user-token", 11);
    }
    memcpy(acc.admin_token, "admin-token", 12);
    memcpy(acc.hosts[0], "kiosk.local", 12);
    acc.n_hosts = 1;
    memcpy(acc.origins[0], "http://127.0.0.1:8080", 22);
    acc.n_origins = 1;
    peer.is_unix = flags & 1;
    peer.loopback = 1;
    peer.addr = peer.is_unix ? "" : (flags & 4) ? "[::1]" : "127.0.0.1";
    peer.port = peer.is_unix ? "" : "8421";

    /* the head: up to the first blank line; the rest is the body */
    hl = 0;
    while (hl < size && hl < HEAD_MAX &&
           !(data[hl] == '\n' && hl + 1 < size && data[hl + 1] == '\n')) {
        hl++;
    }
    memcpy(head, data, hl);
    head[hl] = 0;
    body = (const char *)data + (hl + 2 <= size ? hl + 2 : size);
    body_len = size - (size_t)(body - (const char *)data);
    if (strlen(head) != hl) {
        return 0; /* MHD never hands a header with a NUL */
    }
    p = head;
    end = strchr(p, '\n');
    if (end == NULL) {
        end = p + strlen(p);
    }
    {
        const char *sp = memchr(p, ' ', (size_t)(end - p));
        size_t ml, ul;

        if (sp == NULL) {
            return 0;
        }
        ml = (size_t)(sp - p);
        ul = (size_t)(end - sp - 1);
        if (ml == 0 || ml >= sizeof(method) || ul >= sizeof(url)) {
            return 0;
        }
        memcpy(method, p, ml);
        method[ml] = 0;
        memcpy(url, sp + 1, ul);
        url[ul] = 0;
    }
    p = *end == '\n' ? end + 1 : end;
    while (*p != 0 && n_hdr < FIELDS) {
        const char *colon, *eol = strchr(p, '\n');
        size_t nl, vl;

        if (eol == NULL) {
            eol = p + strlen(p);
        }
        colon = memchr(p, ':', (size_t)(eol - p));
        if (colon != NULL) {
            const char *v = colon + 1;

            while (v < eol && *v == ' ') {
                v++;
            }
            nl = (size_t)(colon - p);
            vl = (size_t)(eol - v);
            if (nl > 0 && nl < sizeof(names[0]) && vl < sizeof(values[0])) {
                memcpy(names[n_hdr], p, nl);
                names[n_hdr][nl] = 0;
                memcpy(values[n_hdr], v, vl);
                values[n_hdr][vl] = 0;
                n_hdr++;
            }
        }
        p = *eol == '\n' ? eol + 1 : eol;
    }
    memset(&hd, 0, sizeof(hd));
    hd.method = method;
    hd.url = url;
    hd.host = header(names, values, n_hdr, "Host");
    hd.origin = header(names, values, n_hdr, "Origin");
    hd.authorization = header(names, values, n_hdr, "Authorization");
    hd.content_type = header(names, values, n_hdr, "Content-Type");
    hd.content_length = header(names, values, n_hdr, "Content-Length");
    hd.transfer_encoding = header(names, values, n_hdr, "Transfer-Encoding");

    status = httpd_gate(&acc, &peer, &hd, &privileged, msg, sizeof(msg));
    if (status != 0) {
        if (msg[0] == 0 ||
            (status != 401 && status != 403 && status != 413 && status != 415 && status != 421)) {
            abort();
        }
        return 0;
    }
    if (hd.origin != NULL && strcmp(hd.origin, "http://127.0.0.1:8080") != 0) {
        abort();
    }
    if (!peer.is_unix && hd.host != NULL) {
        const char *h = hd.host;
        size_t al = strlen(peer.addr);
        const char *rest = NULL;

        if (strncasecmp(h, peer.addr, al) == 0) {
            rest = h + al;
        } else if (strncasecmp(h, "localhost", 9) == 0) {
            rest = h + 9;
        } else if (strncasecmp(h, "kiosk.local", 11) == 0) {
            rest = h + 11;
        }
        if (rest == NULL || (*rest != 0 && strcmp(rest, ":8421") != 0)) {
            abort();
        }
    }
    if (privileged && !peer.is_unix &&
        (hd.authorization == NULL || strcmp(hd.authorization, "Bearer admin-token") != 0)) {
        abort();
    }
    if (strcmp(method, "POST") == 0 && strcmp(url, "/v1/sync") == 0 && !privileged) {
        abort();
    }
    if (strcmp(method, "POST") == 0 && hd.content_type != NULL &&
        strncasecmp(hd.content_type, "application/json", 16) != 0) {
        abort();
    }
    if (strcmp(method, "POST") == 0 && strcmp(url, "/v1/check") == 0) {
        struct posgate_request *rq = NULL;

        if (posgate_request_new(&rq) != POSGATE_OK) {
            return 0;
        }
        msg[0] = 0;
        if (daemon_check_body_parse(body, body_len, rq, msg, sizeof(msg)) != POSGATE_OK) {
            if (msg[0] == 0 || strchr(msg, ':') == NULL) {
                abort();
            }
        } else {
            struct posgated_request_view v;

            posgated_request_view(rq, &v);
            for (const char *o = v.operator_id; *o != 0; o++) {
                if ((unsigned char)*o < 0x20 || *o == 0x7f) {
                    abort();
                }
            }
            if (v.has_override && (v.override_by[0] == 0 || v.override_reason[0] == 0)) {
                abort();
            }
        }
        posgate_request_free(rq);
    }
    return 0;
}
