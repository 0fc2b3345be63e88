/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The publisher state of posgate-publish (publish_internal.h draws its directory): publish.json
 * loaded and saved, one run per state at a time (a lock on the directory), the signing keys it
 * names together with the authority keys a run is given (the keyring), whether each delegated
 * list's role has its authority's signature, and the TUF writer it keeps: opened, its roles'
 * lifetimes set, the repository published.
 */
#define _XOPEN_SOURCE 700
#include <stdio.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "json_canon.h"
#include "pkcs11_signer.h"
#include "plat_clock.h"
#include "plat_file.h"
#include "plat_lock.h"
#include "plat_mem.h"
#include "publish_internal.h"

void
pub_state_cleanup(struct pub_state *s)
{
    plat_free(s->lists);
    s->lists = NULL;
    s->nlists = 0;
}

struct pub_list *
pub_find(struct pub_state *s, const char *id)
{
    size_t i;

    for (i = 0; i < s->nlists; i++) {
        if (strcmp(s->lists[i].id, id) == 0) {
            return &s->lists[i];
        }
    }
    return NULL;
}

struct pub_list *
pub_add(struct pub_state *s, const char *id)
{
    struct pub_list *l = pub_find(s, id), *nl;

    if (l != NULL) {
        return l;
    }
    nl = plat_realloc(s->lists, (s->nlists + 1) * sizeof *nl);
    if (nl == NULL) {
        return NULL;
    }
    s->lists = nl;
    l = &s->lists[s->nlists++];
    memset(l, 0, sizeof *l);
    snprintf(l->id, sizeof l->id, "%s", id);
    snprintf(l->role, sizeof l->role, "targets");
    state_digest_init(&l->state);
    return l;
}

static int
jstr(const cJSON *o, const char *name, char *out, size_t cap)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);

    if (!cJSON_IsString(v) || strlen(v->valuestring) >= cap) {
        return -1;
    }
    memcpy(out, v->valuestring, strlen(v->valuestring) + 1);
    return 0;
}

/* One run per state dir at a time: an update and a cron refresh at once each signed from the
 * same state, and the later one rolled the served timestamp back. Held until the process ends
 * (flock on the state directory itself, so the state holds no extra file; a killed run leaves
 * no lock behind). */
static struct plat_lock state_lock = PLAT_LOCK_INIT;

#define STATE_LOCK_WAIT_MS 60000

static enum posgate_err
lock_state(const char *dir)
{
    enum posgate_err err;

    if (state_lock.fd >= 0) {
        return POSGATE_OK;
    }
    err = plat_lock_dir(&state_lock, dir, STATE_LOCK_WAIT_MS);
    if (err == POSGATE_ERR_RETRY) {
        die_msg("another %s run holds the state %s: waited %d s; try again when it has finished",
                prog, dir, STATE_LOCK_WAIT_MS / 1000);
    } else if (err != POSGATE_OK) {
        die_msg("cannot lock the state %s: %s", dir, posgate_strerror(err));
    }
    return err;
}

enum posgate_err
pub_state_load(const char *dir, struct pub_state *s)
{
    char p[PATH_CAP], msg[256];
    struct buf raw = BUF_INIT(STATE_JSON_MAX);
    cJSON *root = NULL;
    const cJSON *arr, *it;
    enum posgate_err err;

    memset(s, 0, sizeof *s);
    snprintf(s->dir, sizeof s->dir, "%s", dir);
    err = pathf(p, sizeof p, "%s/publish.json", dir);
    if (err == POSGATE_OK && plat_exists(p)) {
        err = lock_state(dir);
    }
    if (err != POSGATE_OK) {
        goto out;
    }
    err = plat_read_file(p, &raw);
    if (err == POSGATE_ERR_NOTFOUND) {
        die_msg("%s holds no publisher state (run `%s init` first)", dir, prog);
        goto out;
    }
    if (err != POSGATE_OK) {
        die_msg("cannot read %s: %s", p, posgate_strerror(err));
        goto out;
    }
    err = json_parse_bounded(raw.data, raw.len, STATE_JSON_MAX, &root, msg, sizeof msg);
    if (err != POSGATE_OK) {
        die_msg("%s: %s", p, msg);
        goto out;
    }
    err = POSGATE_ERR_CORRUPT;
    if (jstr(root, "feed_key", s->feed_key, sizeof s->feed_key) != 0 ||
        jstr(root, "list_key", s->list_key, sizeof s->list_key) != 0 ||
        jstr(root, "config_sha256", s->config_sha256, sizeof s->config_sha256) != 0) {
        die_msg("%s: missing or bad feed_key, list_key or config_sha256", p);
        goto out;
    }
    arr = cJSON_GetObjectItemCaseSensitive(root, "root_keys");
    cJSON_ArrayForEach(it, arr)
    {
        if (!cJSON_IsString(it) || s->nroot == MAX_ROOT_KEYS ||
            strlen(it->valuestring) >= PATH_CAP) {
            die_msg("%s: bad root_keys", p);
            goto out;
        }
        memcpy(s->root_keys[s->nroot++], it->valuestring, strlen(it->valuestring) + 1);
    }
    arr = cJSON_GetObjectItemCaseSensitive(root, "online_keys");
    cJSON_ArrayForEach(it, arr)
    {
        if (!cJSON_IsString(it) || s->nonline == MAX_ROOT_KEYS ||
            strlen(it->valuestring) >= PATH_CAP) {
            die_msg("%s: bad online_keys", p);
            goto out;
        }
        memcpy(s->online_keys[s->nonline++], it->valuestring, strlen(it->valuestring) + 1);
    }
    arr = cJSON_GetObjectItemCaseSensitive(root, "lists");
    cJSON_ArrayForEach(it, arr)
    {
        char id[FEED_NAME_ID_MAX + 1], hex[STATE_DIGEST_SERIAL_LEN * 2 + 1];
        struct pub_list *l;
        struct buf ser = BUF_INIT(STATE_DIGEST_SERIAL_LEN);
        const cJSON *d;
        int64_t v;

        if (jstr(it, "id", id, sizeof id) != 0 || (l = pub_add(s, id)) == NULL) {
            die_msg("%s: bad list", p);
            goto out;
        }
        if (json_get_int(it, "seq", 0, INT64_MAX, &v) != POSGATE_OK) {
            goto bad_list;
        }
        l->seq = (uint64_t)v;
        l->published = l->seq > 0;
        if (json_get_int(it, "entries", 0, INT64_MAX, &v) != POSGATE_OK) {
            goto bad_list;
        }
        l->entries = (uint64_t)v;
        if (json_get_int(it, "issued_at", 0, INT64_MAX, &l->issued_at) != POSGATE_OK) {
            goto bad_list;
        }
        if (json_get_int(it, "auth_threshold", 0, 64, &v) != POSGATE_OK) {
            goto bad_list;
        }
        l->auth_threshold = (unsigned)v;
        if (json_get_int(it, "resign", 0, 1, &v) != POSGATE_OK) {
            goto bad_list;
        }
        l->resign = (int)v;
        v = 0;
        if (cJSON_GetObjectItemCaseSensitive(it, "pending") != NULL &&
            json_get_int(it, "pending", 0, 1, &v) != POSGATE_OK) {
            goto bad_list;
        }
        l->pending = (int)v;
        v = 1;
        if (cJSON_GetObjectItemCaseSensitive(it, "ident_format") != NULL &&
            json_get_int(it, "ident_format", 0, INT32_MAX, &v) != POSGATE_OK) {
            goto bad_list;
        }
        l->ident_format = (int)v;
        if (jstr(it, "role", l->role, sizeof l->role) != 0 ||
            jstr(it, "snapshot_target", l->snapshot_target, sizeof l->snapshot_target) != 0 ||
            jstr(it, "state", hex, sizeof hex) != 0 ||
            crypto_unhex(hex, strlen(hex), &ser) != POSGATE_OK ||
            state_digest_deserialise(&l->state, ser.data, ser.len) != POSGATE_OK) {
            buf_free(&ser);
            goto bad_list;
        }
        buf_free(&ser);
        cJSON_ArrayForEach(d, cJSON_GetObjectItemCaseSensitive(it, "deltas"))
        {
            if (!cJSON_IsString(d) || l->ndeltas == KEEP_DELTAS + 1 ||
                strlen(d->valuestring) >= sizeof l->deltas[0]) {
                goto bad_list;
            }
            memcpy(l->deltas[l->ndeltas++], d->valuestring, strlen(d->valuestring) + 1);
        }
        continue;
    bad_list:
        die_msg("%s: list \"%s\" has a missing or bad field", p, id);
        goto out;
    }
    err = POSGATE_OK;
out:
    cJSON_Delete(root);
    buf_free(&raw);
    return err;
}

enum posgate_err
pub_state_save(const struct pub_state *s)
{
    char p[PATH_CAP];
    cJSON *root = cJSON_CreateObject(), *arr, *lists;
    struct buf out = BUF_INIT(STATE_JSON_MAX);
    enum posgate_err err = POSGATE_ERR_NOMEM;
    size_t i, k;

    if (root == NULL) {
        goto out;
    }
    cJSON_AddNumberToObject(root, "format", 1);
    cJSON_AddStringToObject(root, "feed_key", s->feed_key);
    cJSON_AddStringToObject(root, "list_key", s->list_key);
    cJSON_AddStringToObject(root, "config_sha256", s->config_sha256);
    arr = cJSON_AddArrayToObject(root, "root_keys");
    lists = cJSON_AddArrayToObject(root, "lists");
    if (arr == NULL || lists == NULL) {
        goto out;
    }
    for (i = 0; i < s->nroot; i++) {
        cJSON_AddItemToArray(arr, cJSON_CreateString(s->root_keys[i]));
    }
    if (s->nonline > 0) {
        arr = cJSON_AddArrayToObject(root, "online_keys");
        for (i = 0; arr != NULL && i < s->nonline; i++) {
            cJSON_AddItemToArray(arr, cJSON_CreateString(s->online_keys[i]));
        }
    }
    for (i = 0; i < s->nlists; i++) {
        const struct pub_list *l = &s->lists[i];
        cJSON *o = cJSON_CreateObject(), *d;
        uint8_t ser[STATE_DIGEST_SERIAL_LEN];
        char hex[STATE_DIGEST_SERIAL_LEN * 2 + 1];

        if (o == NULL) {
            goto out;
        }
        cJSON_AddItemToArray(lists, o);
        state_digest_serialise(&l->state, ser);
        crypto_hex(ser, sizeof ser, hex);
        cJSON_AddStringToObject(o, "id", l->id);
        cJSON_AddNumberToObject(o, "seq", (double)l->seq);
        cJSON_AddNumberToObject(o, "entries", (double)l->entries);
        cJSON_AddNumberToObject(o, "issued_at", (double)l->issued_at);
        cJSON_AddNumberToObject(o, "auth_threshold", (double)l->auth_threshold);
        cJSON_AddNumberToObject(o, "resign", l->resign);
        cJSON_AddNumberToObject(o, "pending", l->pending);
        cJSON_AddNumberToObject(o, "ident_format", l->ident_format);
        cJSON_AddStringToObject(o, "role", l->role);
        cJSON_AddStringToObject(o, "snapshot_target", l->snapshot_target);
        cJSON_AddStringToObject(o, "state", hex);
        d = cJSON_AddArrayToObject(o, "deltas");
        if (d == NULL) {
            goto out;
        }
        for (k = 0; k < l->ndeltas; k++) {
            cJSON_AddItemToArray(d, cJSON_CreateString(l->deltas[k]));
        }
    }
    err = json_canon_encode(root, &out);
    if (err != POSGATE_OK) {
        goto out;
    }
    err = pathf(p, sizeof p, "%s/publish.json", s->dir);
    if (err == POSGATE_OK) {
        err = plat_write_atomic(p, out.data, out.len, 0600);
    }
    if (err != POSGATE_OK) {
        die_msg("cannot write %s: %s", p, posgate_strerror(err));
    }
out:
    cJSON_Delete(root);
    buf_free(&out);
    return err;
}

void
keyring_cleanup(struct keyring *kr)
{
    size_t i;

    for (i = 0; i < kr->n; i++) {
        crypto_privkey_free(kr->keys[i]);
    }
    memset(kr, 0, sizeof *kr);
}

/* Feed key, root keys and the --authority-key values. */
enum posgate_err
keyring_load(const struct pub_state *s, const struct opt *auth, struct keyring *kr)
{
    enum posgate_err err;
    size_t i;

    memset(kr, 0, sizeof *kr);
    err = load_privkey(s->feed_key, &kr->keys[kr->n]);
    if (err != POSGATE_OK) {
        return err;
    }
    kr->n++;
    for (i = 0; i < s->nroot; i++) {
        if (!pkcs11_signer_is_uri(s->root_keys[i]) && !plat_exists(s->root_keys[i])) {
            continue; /* kept offline: needed only to sign a new root, which then fails naming
                         the threshold */
        }
        err = load_privkey(s->root_keys[i], &kr->keys[kr->n]);
        if (err != POSGATE_OK) {
            return err;
        }
        kr->n++;
    }
    for (i = 0; i < s->nonline; i++) {
        err = load_privkey(s->online_keys[i], &kr->keys[kr->n]);
        if (err != POSGATE_OK) {
            return err;
        }
        kr->n++;
    }
    for (i = 0; auth != NULL && i < auth->count; i++) {
        const char *v = auth->values[i], *eq = strchr(v, '=');
        size_t idlen = eq != NULL ? (size_t)(eq - v) : 0;

        if (eq == NULL || idlen == 0 || idlen > FEED_NAME_ID_MAX) {
            die_msg("--authority-key \"%s\": expected LIST=KEY.key", v);
            return POSGATE_ERR_USAGE;
        }
        err = load_privkey(eq + 1, &kr->keys[kr->n]);
        if (err != POSGATE_OK) {
            return err;
        }
        memcpy(kr->auth[kr->nauth].list, v, idlen);
        kr->auth[kr->nauth].list[idlen] = '\0';
        kr->auth[kr->nauth].k = kr->keys[kr->n];
        kr->nauth++;
        kr->n++;
    }
    return POSGATE_OK;
}

size_t
keyring_auth_count(const struct keyring *kr, const char *list)
{
    size_t i, n = 0;

    for (i = 0; i < kr->nauth; i++) {
        if (strcmp(kr->auth[i].list, list) == 0) {
            n++;
        }
    }
    return n;
}

/* A list delegated since the last publication needs its authority to sign its role. */
enum posgate_err
check_resign(const struct pub_state *s, const struct keyring *kr)
{
    size_t i;

    for (i = 0; i < s->nlists; i++) {
        const struct pub_list *l = &s->lists[i];

        if (l->resign && keyring_auth_count(kr, l->id) < l->auth_threshold) {
            die_msg("refused: list %s was delegated to its authority (role %s, threshold %u); "
                    "its role must be signed: pass --authority-key %s=KEY.key. Nothing was "
                    "published.",
                    l->id, l->role, l->auth_threshold, l->id);
            return POSGATE_ERR_REJECTED;
        }
    }
    return POSGATE_OK;
}

/* After a publication: the delegated roles are signed now. */
enum posgate_err
clear_resign(struct pub_state *s, const struct keyring *kr)
{
    size_t i;
    int any = 0;

    for (i = 0; i < s->nlists; i++) {
        if (s->lists[i].resign && keyring_auth_count(kr, s->lists[i].id) > 0) {
            s->lists[i].resign = 0;
            any = 1;
        }
    }
    return any ? pub_state_save(s) : POSGATE_OK;
}

enum posgate_err
set_lifetimes(struct tuf_writer *w, int64_t timestamp_s)
{
    enum posgate_err err = tuf_writer_set_lifetime(w, "timestamp", timestamp_s);

    if (err == POSGATE_OK) {
        err = tuf_writer_set_lifetime(w, "snapshot", 7 * 86400);
    }
    if (err == POSGATE_OK) {
        err = tuf_writer_set_lifetime(w, "targets", 30 * 86400);
    }
    if (err == POSGATE_OK) {
        err = tuf_writer_set_lifetime(w, "root", 365 * 86400);
    }
    return err;
}

enum posgate_err
parse_expires(const struct opt *o, int64_t *out)
{
    *out = 86400;
    if (o->count == 0) {
        return POSGATE_OK;
    }
    if (plat_duration_parse(opt_value(o), out) != POSGATE_OK || *out <= 0) {
        die_msg("--expires \"%s\": expected a duration like 90m, 48h or 7d", opt_value(o));
        return POSGATE_ERR_USAGE;
    }
    return POSGATE_OK;
}

enum posgate_err
open_writer(const struct pub_state *s, struct tuf_writer **w)
{
    char p[PATH_CAP], msg[TUF_WRITER_ERRMSG_MAX];
    enum posgate_err err = pathf(p, sizeof p, "%s/tuf", s->dir);

    if (err == POSGATE_OK) {
        err = tuf_writer_open(p, w, msg, sizeof msg);
        if (err != POSGATE_OK) {
            die_msg("cannot open the TUF writer state %s: %s", p, msg);
        }
    }
    return err;
}

enum posgate_err
publish_repo(struct tuf_writer *w, const char *out_dir, struct keyring *kr)
{
    enum posgate_err err = tuf_writer_publish(w, out_dir, kr->keys, kr->n);

    if (err != POSGATE_OK) {
        die_msg("publishing to %s failed: %s", out_dir, tuf_writer_errmsg(w));
    }
    return err;
}
