/* SPDX-License-Identifier: Apache-2.0 */
/*
 * `posgate-publish status`: what the publisher state holds, for the people who keep a feed alive
 * for years. For every role the writer has signed: its version and expiry, and, read from the
 * signed files themselves (through the kiosk's own parser, tuf_meta), the keys and threshold the
 * root gives each top-level role and the delegations of every targets role. A role whose expiry
 * is nearer than --warn (or past) is a warning: printed, and the exit code is 1, so that cron or
 * a monitoring check can act on it before kiosks start refusing the feed.
 */
#define _XOPEN_SOURCE 700
#include "publish_status.h"

#include <cjson/cJSON.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "plat_clock.h"
#include "tuf_meta.h"
#include "tuf_writer.h"

/* Default warning margins, by how long re-signing a role takes to arrange: the timestamp is
 * re-signed by cron (refresh) every hour, the other online roles by any update, the root only
 * at an offline signing ceremony. */
#define WARN_TIMESTAMP_S (6 * 3600)
#define WARN_ONLINE_S    (3 * 86400)
#define WARN_ROOT_S      (30 * 86400)

static const char usage[] =
    "usage: posgate-publish status --state DIR [--json] [--warn DURATION]\n"
    "Shows each role of the publisher state: version, expiry, the keys (key ids) and threshold\n"
    "the root gives it, and the delegations of every targets role (delegated role, key ids,\n"
    "threshold, paths), and the lists whose authority the root records, retired ones marked.\n"
    "A role that expires within --warn (default: 6h for the timestamp, 3d\n"
    "for snapshot and targets roles, 30d for the root) or has expired is a warning.\n"
    "Exit: 0 no warning, 1 a warning, 2 usage, 5 the state cannot be read.\n";

static enum tuf_role_type
role_type(const char *name)
{
    if (strcmp(name, "root") == 0) {
        return TUF_ROLE_ROOT;
    }
    if (strcmp(name, "timestamp") == 0) {
        return TUF_ROLE_TIMESTAMP;
    }
    if (strcmp(name, "snapshot") == 0) {
        return TUF_ROLE_SNAPSHOT;
    }
    return TUF_ROLE_TARGETS; /* "targets" and every delegated role */
}

static cJSON *
keys_json(const struct tuf_role_keys *k)
{
    cJSON *o = cJSON_CreateObject(), *ids = cJSON_AddArrayToObject(o, "keyids");

    for (size_t i = 0; i < k->nkeyids; i++) {
        cJSON_AddItemToArray(ids, cJSON_CreateString(k->keyids[i]));
    }
    cJSON_AddNumberToObject(o, "threshold", k->threshold);
    return o;
}

static void
print_keys(const char *indent, const struct tuf_role_keys *k)
{
    printf("%sthreshold %u of %zu key(s):", indent, k->threshold, k->nkeyids);
    for (size_t i = 0; i < k->nkeyids; i++) {
        printf(" %.16s", k->keyids[i]);
    }
    printf("\n");
}

/* One role: its line (text) or object (json); *warned set when its expiry is near or past. */
static void
report_role(const char *name, const struct tuf_meta *m, const struct tuf_meta *root, int64_t now,
            int64_t warn_s, cJSON *roles, int *warned)
{
    char exp[32];
    int64_t left = m->expires - now;
    int warn;

    if (warn_s < 0) {
        warn_s = m->type == TUF_ROLE_ROOT        ? WARN_ROOT_S
                 : m->type == TUF_ROLE_TIMESTAMP ? WARN_TIMESTAMP_S
                                                 : WARN_ONLINE_S;
    }
    warn = left < warn_s;
    cJSON *o = NULL;

    plat_time_format(m->expires, exp, sizeof(exp));
    *warned |= warn;
    if (roles != NULL) {
        o = cJSON_CreateObject();
        cJSON_AddItemToArray(roles, o);
        cJSON_AddStringToObject(o, "role", name);
        cJSON_AddNumberToObject(o, "version", (double)m->version);
        cJSON_AddStringToObject(o, "expires", exp);
        cJSON_AddNumberToObject(o, "expires_in_s", (double)left);
        cJSON_AddBoolToObject(o, "warning", warn);
        cJSON_AddNumberToObject(o, "warn_s", (double)warn_s);
    } else {
        printf("%-24s version %-6" PRId64 " expires %s%s\n", name, m->version, exp,
               left < 0 ? "  WARNING: EXPIRED" : warn ? "  WARNING: expires soon" : "");
    }
    if (root != NULL && role_type(name) != TUF_ROLE_TARGETS) {
        const struct tuf_role_keys *k = &root->roles[role_type(name)];

        if (o != NULL) {
            cJSON_AddItemToObject(o, "keys", keys_json(k));
        } else {
            print_keys("    ", k);
        }
    } else if (root != NULL && strcmp(name, "targets") == 0) {
        if (o != NULL) {
            cJSON_AddItemToObject(o, "keys", keys_json(&root->roles[TUF_ROLE_TARGETS]));
        } else {
            print_keys("    ", &root->roles[TUF_ROLE_TARGETS]);
        }
    }
    if (m->type == TUF_ROLE_TARGETS && m->has_delegations) {
        cJSON *d = o != NULL ? cJSON_AddArrayToObject(o, "delegations") : NULL;

        for (size_t i = 0; i < m->delegations.nroles; i++) {
            const struct tuf_deleg_role *r = &m->delegations.roles[i];

            if (d != NULL) {
                cJSON *ro = keys_json(&r->keys), *paths = cJSON_AddArrayToObject(ro, "paths");

                cJSON_AddStringToObject(ro, "role", r->name);
                for (size_t j = 0; j < r->npaths; j++) {
                    cJSON_AddItemToArray(paths, cJSON_CreateString(r->paths[j]));
                }
                cJSON_AddItemToArray(d, ro);
            } else {
                printf("    delegates %s to %s (%s), ", r->npaths > 0 ? r->paths[0] : "-",
                       r->name, r->terminating ? "terminating" : "not terminating");
                print_keys("", &r->keys);
            }
        }
    }
}

/* The lists whose authority the root records (x-posgate-authorities, agent/core/pins.h): each
 * one's role and threshold, and whether the root retired it. */
static void
report_authorities(const void *root_file, size_t len, cJSON *out)
{
    cJSON *doc = cJSON_ParseWithLength(root_file, len);
    const cJSON *sig = cJSON_GetObjectItemCaseSensitive(doc, "signed");
    const cJSON *auth = cJSON_GetObjectItemCaseSensitive(sig != NULL ? sig : doc,
                                                         "x-posgate-authorities");
    const cJSON *rec;
    cJSON *arr = out != NULL ? cJSON_AddArrayToObject(out, "authorities") : NULL;

    cJSON_ArrayForEach(rec, auth)
    {
        const cJSON *role = cJSON_GetObjectItemCaseSensitive(rec, "role");
        const cJSON *thr = cJSON_GetObjectItemCaseSensitive(rec, "threshold");
        const cJSON *keys = cJSON_GetObjectItemCaseSensitive(rec, "keys");
        const cJSON *retired = cJSON_GetObjectItemCaseSensitive(rec, "retired");
        const char *r = cJSON_IsString(role) ? role->valuestring : "?";
        int t = cJSON_IsNumber(thr) ? thr->valueint : 0, n = cJSON_GetArraySize(keys);

        if (arr != NULL) {
            cJSON *o = cJSON_CreateObject();

            cJSON_AddStringToObject(o, "list", rec->string);
            cJSON_AddStringToObject(o, "role", r);
            cJSON_AddNumberToObject(o, "threshold", t);
            cJSON_AddNumberToObject(o, "keys", n);
            if (cJSON_IsString(retired)) {
                cJSON_AddStringToObject(o, "retired", retired->valuestring);
            } else {
                cJSON_AddNullToObject(o, "retired");
            }
            cJSON_AddItemToArray(arr, o);
        } else {
            printf("list %-19s authority %s, threshold %d of %d key(s)%s%s\n", rec->string, r, t, n,
                   cJSON_IsString(retired) ? ", RETIRED by the root since " : "",
                   cJSON_IsString(retired) ? retired->valuestring : "");
        }
    }
    cJSON_Delete(doc);
}

int
publish_status_main(int argc, char **argv)
{
    const char *state = NULL;
    int json = 0, warned = 0, rc = 5;
    int64_t warn_s = -1, now = plat_wall_s(); /* -1: each role's default margin */
    char path[4096], msg[TUF_WRITER_ERRMSG_MAX];
    struct tuf_writer *w = NULL;
    struct tuf_meta *root = NULL;
    cJSON *out = NULL, *roles = NULL;

    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            fputs(usage, stdout);
            return 0;
        }
        if (strcmp(argv[i], "--json") == 0) {
            json = 1;
        } else if (strcmp(argv[i], "--state") == 0 && i + 1 < argc) {
            state = argv[++i];
        } else if (strcmp(argv[i], "--warn") == 0 && i + 1 < argc) {
            if (plat_duration_parse(argv[++i], &warn_s) != POSGATE_OK || warn_s < 0) {
                fprintf(stderr,
                        "posgate-publish status: --warn: expected a duration like 3d or 12h, "
                        "found \"%s\"\n",
                        argv[i]);
                return 2;
            }
        } else {
            fprintf(stderr, "posgate-publish status: unexpected argument \"%s\"\n%s", argv[i],
                    usage);
            return 2;
        }
    }
    if (state == NULL) {
        fprintf(stderr, "posgate-publish status: --state DIR is required\n%s", usage);
        return 2;
    }
    snprintf(path, sizeof(path), "%s/tuf", state);
    if (tuf_writer_open(path, &w, msg, sizeof(msg)) != POSGATE_OK) {
        fprintf(stderr, "posgate-publish status: cannot read the publisher state %s: %s\n", path,
                msg);
        return 5;
    }
    if (json) {
        out = cJSON_CreateObject();
        roles = cJSON_AddArrayToObject(out, "roles");
    }
    /* the root first: it names the keys of the other top-level roles */
    for (int pass = 0; pass < 2; pass++) {
        for (size_t i = 0; i < tuf_writer_role_count(w); i++) {
            const char *name = tuf_writer_role_name(w, i);
            const void *data;
            size_t len;
            struct tuf_meta *m = NULL;

            if ((pass == 0) != (strcmp(name, "root") == 0)) {
                continue;
            }
            if (tuf_writer_role_signed(w, name, &data, &len) != POSGATE_OK) {
                if (!json) {
                    printf("%-24s never signed (the next publish signs it)\n", name);
                }
                continue;
            }
            if (tuf_meta_parse(data, len, role_type(name), &m, msg, sizeof(msg)) != POSGATE_OK) {
                fprintf(stderr, "posgate-publish status: role %s: %s\n", name, msg);
                goto out;
            }
            report_role(name, m, pass == 0 ? m : root, now, warn_s, roles, &warned);
            if (pass == 0) {
                report_authorities(data, len, out);
                root = m;
            } else {
                tuf_meta_free(m);
            }
        }
    }
    if (json) {
        char *text;

        cJSON_AddBoolToObject(out, "warning", warned);
        text = cJSON_PrintUnformatted(out);
        if (text == NULL) {
            goto out;
        }
        puts(text);
        cJSON_free(text);
    } else if (warned) {
        printf("WARNING: a role expires soon or has expired: re-sign it (refresh for the timestamp, "
               "update for the others, a new root version for the root) before kiosks refuse "
               "the feed\n");
    }
    rc = warned ? 1 : 0;
out:
    cJSON_Delete(out);
    tuf_meta_free(root);
    tuf_writer_free(w);
    return rc;
}
