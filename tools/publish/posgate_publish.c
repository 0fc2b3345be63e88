/* SPDX-License-Identifier: Apache-2.0 */
/*
 * posgate-publish: turns entries.csv and feed.json into a signed feed (a TUF repository). It
 * keeps a state directory between runs (the TUF writer's state, the config, the key paths and,
 * per list, the last published snapshot with its seq and state digest), validates every row
 * before anything is published, sorts the rows by (key, listing id) in bounded memory, compares
 * with the last snapshot of each list by a merge walk, refuses a mass change, and writes each
 * changed list's new snapshot and delta as TUF targets. docs/publishing.md is the manual.
 *
 * State directory:
 *
 *   +------------------------------+---------------------------------------------------+
 *   | publish.json                 | key paths, per list: seq, entries, state digest,  |
 *   |                              | role, targets listed (snapshot, kept deltas),     |
 *   |                              | pending (a run stopped before its publication),   |
 *   |                              | ident_format (IDENT_FORMAT of its last keys)      |
 *   | feed.json                    | the feed configuration, published as config/...   |
 *   | lists/<id>/snapshot.pgs      | the last published snapshot body of the list      |
 *   | tuf/                         | the TUF writer's state (tuf_writer.h)             |
 *   | work/                        | temporary files of a run (sort runs, staging)     |
 *   +------------------------------+---------------------------------------------------+
 *
 * Sorting: rows are gathered in chunks of SORT_CHUNK fixed-size in-memory items (about 48 MB),
 * each chunk sorted with qsort and written as a run file of compact variable-length records;
 * the runs are then merged with a binary heap (an external merge sort). Memory stays bounded
 * whatever the row count (15 million rows make about 60 runs and 0.9 GB of temporary files),
 * where sorting fixed-size structs in memory would need about 3 GB.
 *
 * Exit codes: 0 ok, 2 usage or invalid input, 4 refused (mass change, missing authority key),
 * 5 I/O or other failure.
 */
#define _XOPEN_SOURCE 700
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "buf.h"
#include "bundle.h"
#include "crypto.h"
#include "entries_csv.h"
#include "json_canon.h"
#include "list_key.h"
#include "pkcs11_signer.h"
#include "list_config.h"
#include "publish_status.h"
#include "plat_clock.h"
#include "plat_file.h"
#include "plat_lock.h"
#include "plat_mem.h"
#include "posgate_err.h"
#include "publish_keys.h"
#include "state_digest.h"
#include "tuf_meta.h"
#include "tuf_writer.h"

/* feed_records.h (via entries_csv.h) and feed_config.h both define FEED_SCOPE_MAX; this file
 * only needs the entry's (feed_entry.scope). */
#undef FEED_SCOPE_MAX
#include "feed_config.h"
#include "ident.h"
#include "version.h"
#undef FEED_SCOPE_MAX
#define FEED_SCOPE_MAX (sizeof(((struct feed_entry *)0)->scope) / sizeof(uint16_t))

#define EXIT_OK      0
#define EXIT_USAGE   2
#define EXIT_REFUSED 4
#define EXIT_IO      5

#define PATH_CAP       4096
#define LIST_KEY_LEN   32
#define MAX_ROOT_KEYS  16
#define MAX_AUTH_KEYS  16
#define KEEP_DELTAS    10 /* deltas listed per list; a kiosk further behind takes a snapshot */
#define SORT_CHUNK     262144
#define STATE_JSON_MAX (16u << 20)
#define ROLE_PREFIX    "list-"

static const char *prog = "posgate-publish";

/* ------------------------------------------------------------------------------------------ */
/* small helpers */

static void die_msg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void
die_msg(const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "%s: ", prog);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

static int
exit_for(enum posgate_err err)
{
    switch (err) {
    case POSGATE_ERR_OK:
        return EXIT_OK;
    case POSGATE_ERR_INVALID:
    case POSGATE_ERR_USAGE:
    case POSGATE_ERR_PARSE:
    case POSGATE_ERR_TOOBIG:
    case POSGATE_ERR_NOTFOUND:
    case POSGATE_ERR_UNSUPPORTED:
    case POSGATE_ERR_STATE:
        return EXIT_USAGE;
    case POSGATE_ERR_REJECTED:
    case POSGATE_ERR_BADSIG:
        return EXIT_REFUSED;
    case POSGATE_ERR_NOMEM:
    case POSGATE_ERR_IO:
    case POSGATE_ERR_BADHASH:
    case POSGATE_ERR_ROLLBACK:
    case POSGATE_ERR_EXPIRED:
    case POSGATE_ERR_CORRUPT:
    case POSGATE_ERR_NETWORK:
    case POSGATE_ERR_RETRY:
    case POSGATE_ERR__COUNT:
        return EXIT_IO;
    }
    return EXIT_IO;
}

static enum posgate_err pathf(char *out, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static enum posgate_err
pathf(char *out, size_t cap, const char *fmt, ...)
{
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(out, cap, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= cap) {
        die_msg("path too long");
        return POSGATE_ERR_TOOBIG;
    }
    return POSGATE_OK;
}

/* Command line: "--name value" or "--name=value"; flags take no value. */
struct opt {
    const char *name;
    int takes_value;
    int multi;
    const char *values[MAX_ROOT_KEYS];
    size_t count;
};

static int
parse_opts(int argc, char **argv, struct opt *opts, size_t nopts, int *help)
{
    int i;

    *help = 0;
    for (i = 0; i < argc; i++) {
        const char *a = argv[i];
        const char *eq;
        size_t k, nlen;
        struct opt *o = NULL;

        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            *help = 1;
            return 0;
        }
        if (strncmp(a, "--", 2) != 0) {
            die_msg("unexpected argument \"%s\" (expected an option)", a);
            return -1;
        }
        eq = strchr(a, '=');
        nlen = eq != NULL ? (size_t)(eq - a - 2) : strlen(a + 2);
        for (k = 0; k < nopts; k++) {
            if (strlen(opts[k].name) == nlen && strncmp(a + 2, opts[k].name, nlen) == 0) {
                o = &opts[k];
            }
        }
        if (o == NULL) {
            die_msg("unknown option \"%s\"", a);
            return -1;
        }
        if (!o->takes_value) {
            if (eq != NULL) {
                die_msg("option --%s takes no value", o->name);
                return -1;
            }
            o->count++;
            continue;
        }
        if (o->count > 0 && !o->multi) {
            die_msg("option --%s given twice", o->name);
            return -1;
        }
        if (o->count == MAX_ROOT_KEYS) {
            die_msg("option --%s given more than %d times", o->name, MAX_ROOT_KEYS);
            return -1;
        }
        if (eq != NULL) {
            o->values[o->count++] = eq + 1;
        } else if (i + 1 < argc) {
            o->values[o->count++] = argv[++i];
        } else {
            die_msg("option --%s needs a value", o->name);
            return -1;
        }
    }
    return 0;
}

static const char *
optv(const struct opt *o)
{
    return o->count > 0 ? o->values[0] : NULL;
}

static int
require(const struct opt *o, const char *cmd)
{
    if (o->count == 0) {
        die_msg("%s: --%s is required (see %s %s --help)", cmd, o->name, prog, cmd);
        return -1;
    }
    return 0;
}

static enum posgate_err
abs_path(const char *p, char *out, size_t cap)
{
    char *r = realpath(p, NULL);
    enum posgate_err err = POSGATE_OK;

    if (r == NULL) {
        die_msg("%s: %s", p, strerror(errno));
        return errno == ENOENT ? POSGATE_ERR_NOTFOUND : POSGATE_ERR_IO;
    }
    if (strlen(r) >= cap) {
        err = POSGATE_ERR_TOOBIG;
    } else {
        memcpy(out, r, strlen(r) + 1);
    }
    free(r);
    return err;
}

/* A signing key: a key file, or a key in a PKCS#11 token named by a pkcs11: URI. */
static enum posgate_err
load_privkey(const char *path, struct crypto_privkey **out)
{
    char msg[512];
    enum posgate_err err = pkcs11_signer_load_any(path, out, msg, sizeof msg);

    if (err != POSGATE_OK) {
        die_msg("%s", msg);
    }
    return err;
}

/* Where init records a key: a file's absolute path, or a pkcs11: URI as given. */
static enum posgate_err
key_path(const char *p, char *out, size_t cap)
{
    if (pkcs11_signer_is_uri(p)) {
        if (strlen(p) >= cap) {
            die_msg("%.60s...: the pkcs11: URI is longer than %zu bytes", p, cap - 1);
            return POSGATE_ERR_TOOBIG;
        }
        memcpy(out, p, strlen(p) + 1);
        return POSGATE_OK;
    }
    return abs_path(p, out, cap);
}

static enum posgate_err
load_list_key(const char *path, struct crypto_hmac_key *k)
{
    struct buf raw = BUF_INIT(4096);
    enum posgate_err err;

    err = plat_read_file(path, &raw);
    if (err != POSGATE_OK) {
        die_msg("cannot read the list key %s: %s", path, posgate_strerror(err));
        goto out;
    }
    if (raw.len != LIST_KEY_LEN) {
        die_msg("list key %s is %zu bytes, expected %d (posgate-keygen --list-key)", path, raw.len,
                LIST_KEY_LEN);
        err = POSGATE_ERR_INVALID;
        goto out;
    }
    err = crypto_hmac_key_init(k, raw.data, raw.len);
out:
    buf_wipe(&raw);
    return err;
}

static enum posgate_err
load_config(const char *path, struct feed_config **cfg, struct buf *raw)
{
    char msg[512];
    enum posgate_err err;

    err = plat_read_file(path, raw);
    if (err != POSGATE_OK) {
        die_msg("cannot read the feed config %s: %s", path, posgate_strerror(err));
        return err;
    }
    err = feed_config_parse(raw->data, raw->len, FEED_CONFIG_STRICT, cfg, msg, sizeof msg);
    if (err != POSGATE_OK) {
        die_msg("%s: %s", path, msg);
    }
    return err;
}

/* The feed configuration as kiosks receive it: the operator's feed.json with the list key's
 * check value (list_key.h) inserted as its first member, every other byte as written, so that a
 * kiosk holding another list key refuses the feed instead of allowing everyone. A value
 * already present must be this key's (a different one means the list key file is not the one
 * the feed was set up with). *added is 1 when the value was inserted; *cfg is then re-parsed
 * from the new bytes (which must still fit FEED_CONFIG_MAX_BYTES). */
static enum posgate_err
add_key_check(const char *where, const struct crypto_hmac_key *hk, struct buf *raw,
              struct feed_config **cfg, int *added)
{
    char check[LIST_KEY_CHECK_HEX + 1];
    struct buf out = BUF_INIT(FEED_CONFIG_MAX_BYTES);
    struct feed_config *c = NULL;
    const char *p = (const char *)raw->data;
    size_t open = 0;
    enum posgate_err err = POSGATE_OK;

    *added = 0;
    list_key_check(hk, check);
    if ((*cfg)->list_key_check[0] != 0) {
        if (strcmp((*cfg)->list_key_check, check) != 0) {
            die_msg("%s: list_key_check is %s, but the list key's fingerprint is %s: the list "
                    "key is not the one this feed configuration names",
                    where, (*cfg)->list_key_check, check);
            err = POSGATE_ERR_REJECTED;
        }
        goto out;
    }
    while (open < raw->len && p[open] != '{') {
        open++;
    }
    if (open == raw->len) {
        die_msg("%s: expected a JSON object, found no \"{\"", where);
        err = POSGATE_ERR_INVALID;
        goto out;
    }
    err = buf_append(&out, raw->data, open + 1);
    if (err == POSGATE_OK) {
        err = buf_printf(&out, "\n  \"list_key_check\": \"%s\",", check);
    }
    if (err == POSGATE_OK) {
        err = buf_append(&out, p + open + 1, raw->len - open - 1);
    }
    if (err != POSGATE_OK) {
        die_msg("%s: cannot add list_key_check: %s", where, posgate_strerror(err));
        goto out;
    }
    err = feed_config_parse(out.data, out.len, FEED_CONFIG_STRICT, &c, NULL, 0);
    if (err != POSGATE_OK) {
        die_msg("%s: with list_key_check added it no longer parses: %s", where,
                posgate_strerror(err));
        goto out;
    }
    feed_config_free(*cfg);
    *cfg = c;
    buf_reset(raw);
    err = buf_append(raw, out.data, out.len);
    if (err != POSGATE_OK) {
        goto out;
    }
    *added = 1;
out:
    buf_free(&out);
    return err;
}

static void
time_text(int64_t t, char out[32])
{
    plat_time_format(t, out, 32);
}

/* Copies a file (streaming). */
static enum posgate_err
copy_file(const char *from, const char *to)
{
    FILE *f = fopen(from, "rb");
    struct plat_atomic_file af;
    uint8_t chunk[65536];
    enum posgate_err err;
    size_t n;

    af.fd = -1;
    af.tmp_path[0] = '\0';
    if (f == NULL) {
        die_msg("cannot open %s: %s", from, strerror(errno));
        return POSGATE_ERR_IO;
    }
    err = plat_atomic_open(&af, to, 0644);
    while (err == POSGATE_OK && (n = fread(chunk, 1, sizeof chunk, f)) > 0) {
        err = plat_atomic_write(&af, chunk, n);
    }
    if (err == POSGATE_OK && ferror(f)) {
        err = POSGATE_ERR_IO;
    }
    if (err == POSGATE_OK) {
        err = plat_atomic_commit(&af);
    }
    if (err != POSGATE_OK) {
        plat_atomic_abort(&af);
        die_msg("cannot copy %s to %s: %s", from, to, posgate_strerror(err));
    }
    fclose(f);
    return err;
}

/* Removes every file of a directory (not recursive) and the directory. */
static void
remove_dir(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    char p[PATH_CAP];

    if (d == NULL) {
        return;
    }
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0) {
            continue;
        }
        if (pathf(p, sizeof p, "%s/%s", dir, de->d_name) == POSGATE_OK) {
            (void)unlink(p);
        }
    }
    closedir(d);
    (void)rmdir(dir);
}

/* ------------------------------------------------------------------------------------------ */
/* publisher state (publish.json) */

struct pub_list {
    char id[FEED_NAME_ID_MAX + 1];
    int published;
    uint64_t seq;
    uint64_t entries;
    int64_t issued_at;
    struct state_digest state;
    char role[TUF_WRITER_ROLE_MAX + 1]; /* "targets" or the delegated role */
    char snapshot_target[256];          /* current snapshot's target name ("" none) */
    size_t ndeltas;
    char deltas[KEEP_DELTAS + 1][256]; /* listed delta target names, oldest first */
    unsigned auth_threshold;
    int resign;       /* delegated, its role not yet signed by the authority */
    int pending;      /* changed by a run that stopped before its publication finished: the next
                         update publishes the list whole (a new snapshot, no delta) */
    int ident_format; /* IDENT_FORMAT of its last publication (1 when the state predates it,
                         0 before the first) */
};

struct pub_state {
    char dir[PATH_CAP];
    char feed_key[PATH_CAP];
    char list_key[PATH_CAP];
    size_t nroot;
    char root_keys[MAX_ROOT_KEYS][PATH_CAP];
    size_t nonline;
    char online_keys[MAX_ROOT_KEYS][PATH_CAP]; /* rotated-in online keys (publish_keys.c) */
    char config_sha256[65];
    size_t nlists;
    struct pub_list *lists;
};

static void
pub_state_cleanup(struct pub_state *s)
{
    plat_free(s->lists);
    s->lists = NULL;
    s->nlists = 0;
}

static struct pub_list *
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

static struct pub_list *
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

static enum posgate_err
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

static enum posgate_err
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

/* ------------------------------------------------------------------------------------------ */
/* sort items and their compact encoding in run and staging files */

struct item {
    uint16_t list;
    uint64_t line;
    struct feed_entry e;
};

static int
item_cmp(const void *pa, const void *pb)
{
    const struct item *a = pa, *b = pb;
    int c;

    if (a->list != b->list) {
        return a->list < b->list ? -1 : 1;
    }
    c = feed_entry_compare(&a->e, &b->e);
    if (c != 0) {
        return c;
    }
    return a->line < b->line ? -1 : a->line > b->line;
}

static int
put_u(FILE *f, uint64_t v, unsigned n)
{
    uint8_t b[8];
    unsigned i;

    for (i = 0; i < n; i++) {
        b[n - 1 - i] = (uint8_t)(v >> (8 * i));
    }
    return fwrite(b, 1, n, f) == n ? 0 : -1;
}

static int
get_u(FILE *f, uint64_t *v, unsigned n)
{
    uint8_t b[8];
    unsigned i;

    if (fread(b, 1, n, f) != n) {
        return -1;
    }
    *v = 0;
    for (i = 0; i < n; i++) {
        *v = (*v << 8) | b[i];
    }
    return 0;
}

static enum posgate_err
item_write(FILE *f, const struct item *it)
{
    const struct feed_entry *e = &it->e;
    unsigned i;
    int bad = 0;

    bad |= put_u(f, it->list, 2);
    bad |= put_u(f, it->line, 8);
    bad |= fwrite(e->key, 1, FEED_KEY_LEN, f) == FEED_KEY_LEN ? 0 : -1;
    bad |= put_u(f, e->listing_id_len, 1);
    bad |= fwrite(e->listing_id, 1, e->listing_id_len, f) == e->listing_id_len ? 0 : -1;
    bad |= put_u(f, e->reason, 2);
    bad |= put_u(f, e->id_type, 1);
    bad |= put_u(f, e->kind, 1);
    bad |= put_u(f, (uint64_t)e->valid_from, 8);
    bad |= put_u(f, (uint64_t)e->valid_until, 8);
    bad |= put_u(f, e->scope_count, 1);
    for (i = 0; i < e->scope_count; i++) {
        bad |= put_u(f, e->scope[i], 2);
    }
    return bad != 0 ? POSGATE_ERR_IO : POSGATE_OK;
}

/* OK, NOTFOUND at a clean end, IO/CORRUPT otherwise. */
static enum posgate_err
item_read(FILE *f, struct item *it)
{
    uint64_t v;
    struct feed_entry *e = &it->e;
    unsigned i;
    int c = getc(f);

    if (c == EOF) {
        return ferror(f) ? POSGATE_ERR_IO : POSGATE_ERR_NOTFOUND;
    }
    if (ungetc(c, f) == EOF) {
        return POSGATE_ERR_IO;
    }
    memset(it, 0, sizeof *it);
    if (get_u(f, &v, 2) != 0) {
        return POSGATE_ERR_CORRUPT;
    }
    it->list = (uint16_t)v;
    if (get_u(f, &it->line, 8) != 0 || fread(e->key, 1, FEED_KEY_LEN, f) != FEED_KEY_LEN ||
        get_u(f, &v, 1) != 0 || v > FEED_LISTING_ID_MAX) {
        return POSGATE_ERR_CORRUPT;
    }
    e->listing_id_len = (uint8_t)v;
    if (fread(e->listing_id, 1, e->listing_id_len, f) != e->listing_id_len) {
        return POSGATE_ERR_CORRUPT;
    }
    e->listing_id[e->listing_id_len] = '\0';
    if (get_u(f, &v, 2) != 0) {
        return POSGATE_ERR_CORRUPT;
    }
    e->reason = (uint16_t)v;
    if (get_u(f, &v, 1) != 0) {
        return POSGATE_ERR_CORRUPT;
    }
    e->id_type = (uint8_t)v;
    if (get_u(f, &v, 1) != 0) {
        return POSGATE_ERR_CORRUPT;
    }
    e->kind = (uint8_t)v;
    if (get_u(f, &v, 8) != 0) {
        return POSGATE_ERR_CORRUPT;
    }
    e->valid_from = (int64_t)v;
    if (get_u(f, &v, 8) != 0) {
        return POSGATE_ERR_CORRUPT;
    }
    e->valid_until = (int64_t)v;
    if (get_u(f, &v, 1) != 0 || v > FEED_SCOPE_MAX) {
        return POSGATE_ERR_CORRUPT;
    }
    e->scope_count = (uint8_t)v;
    for (i = 0; i < e->scope_count; i++) {
        if (get_u(f, &v, 2) != 0) {
            return POSGATE_ERR_CORRUPT;
        }
        e->scope[i] = (uint16_t)v;
    }
    return POSGATE_OK;
}

/* The external sorter. */
struct sorter {
    char dir[PATH_CAP];
    struct item *chunk;
    size_t n;
    size_t nruns;
    FILE **runs; /* open for reading during the merge */
    struct item *heads;
    size_t *heap; /* indices of runs, ordered by their head item */
    size_t heap_n;
    size_t mem_pos; /* iteration over chunk when there is no run */
};

static enum posgate_err
sorter_flush(struct sorter *s)
{
    char p[PATH_CAP];
    FILE *f;
    size_t i;
    enum posgate_err err = POSGATE_OK;

    qsort(s->chunk, s->n, sizeof *s->chunk, item_cmp);
    err = pathf(p, sizeof p, "%s/run-%zu", s->dir, s->nruns);
    if (err != POSGATE_OK) {
        return err;
    }
    f = fopen(p, "wb");
    if (f == NULL) {
        die_msg("cannot create %s: %s", p, strerror(errno));
        return POSGATE_ERR_IO;
    }
    for (i = 0; i < s->n && err == POSGATE_OK; i++) {
        err = item_write(f, &s->chunk[i]);
    }
    if (fclose(f) != 0 || err != POSGATE_OK) {
        die_msg("cannot write %s", p);
        return POSGATE_ERR_IO;
    }
    s->nruns++;
    s->n = 0;
    return POSGATE_OK;
}

static enum posgate_err
sorter_add(struct sorter *s, uint16_t list, uint64_t line, const struct feed_entry *e)
{
    if (s->n == SORT_CHUNK) {
        enum posgate_err err = sorter_flush(s);

        if (err != POSGATE_OK) {
            return err;
        }
    }
    s->chunk[s->n].list = list;
    s->chunk[s->n].line = line;
    s->chunk[s->n].e = *e;
    s->n++;
    return POSGATE_OK;
}

static int
heap_less(const struct sorter *s, size_t a, size_t b)
{
    return item_cmp(&s->heads[a], &s->heads[b]) < 0;
}

static void
heap_down(struct sorter *s, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i, t;

        if (l < s->heap_n && heap_less(s, s->heap[l], s->heap[m])) {
            m = l;
        }
        if (r < s->heap_n && heap_less(s, s->heap[r], s->heap[m])) {
            m = r;
        }
        if (m == i) {
            return;
        }
        t = s->heap[i];
        s->heap[i] = s->heap[m];
        s->heap[m] = t;
        i = m;
    }
}

static enum posgate_err
sorter_finish(struct sorter *s)
{
    char p[PATH_CAP];
    size_t i;
    enum posgate_err err;

    if (s->nruns == 0) {
        qsort(s->chunk, s->n, sizeof *s->chunk, item_cmp);
        s->mem_pos = 0;
        return POSGATE_OK;
    }
    if (s->n > 0) {
        err = sorter_flush(s);
        if (err != POSGATE_OK) {
            return err;
        }
    }
    plat_free(s->chunk);
    s->chunk = NULL;
    s->runs = plat_calloc(s->nruns, sizeof *s->runs);
    s->heads = plat_calloc(s->nruns, sizeof *s->heads);
    s->heap = plat_calloc(s->nruns, sizeof *s->heap);
    if (s->runs == NULL || s->heads == NULL || s->heap == NULL) {
        return POSGATE_ERR_NOMEM;
    }
    for (i = 0; i < s->nruns; i++) {
        err = pathf(p, sizeof p, "%s/run-%zu", s->dir, i);
        if (err != POSGATE_OK) {
            return err;
        }
        s->runs[i] = fopen(p, "rb");
        if (s->runs[i] == NULL) {
            die_msg("cannot open %s: %s", p, strerror(errno));
            return POSGATE_ERR_IO;
        }
        err = item_read(s->runs[i], &s->heads[i]);
        if (err == POSGATE_OK) {
            s->heap[s->heap_n++] = i;
        } else if (err != POSGATE_ERR_NOTFOUND) {
            return err;
        }
    }
    for (i = s->heap_n; i-- > 0;) {
        heap_down(s, i);
    }
    return POSGATE_OK;
}

/* The next item in order: OK, NOTFOUND at the end. */
static enum posgate_err
sorter_next(struct sorter *s, struct item *out)
{
    size_t r;
    enum posgate_err err;

    if (s->nruns == 0) {
        if (s->mem_pos == s->n) {
            return POSGATE_ERR_NOTFOUND;
        }
        *out = s->chunk[s->mem_pos++];
        return POSGATE_OK;
    }
    if (s->heap_n == 0) {
        return POSGATE_ERR_NOTFOUND;
    }
    r = s->heap[0];
    *out = s->heads[r];
    err = item_read(s->runs[r], &s->heads[r]);
    if (err == POSGATE_ERR_NOTFOUND) {
        s->heap[0] = s->heap[--s->heap_n];
    } else if (err != POSGATE_OK) {
        die_msg("sort run %zu is damaged", r);
        return err;
    }
    heap_down(s, 0);
    return POSGATE_OK;
}

static void
sorter_cleanup(struct sorter *s)
{
    size_t i;

    for (i = 0; s->runs != NULL && i < s->nruns; i++) {
        if (s->runs[i] != NULL) {
            fclose(s->runs[i]);
        }
    }
    plat_free(s->runs);
    plat_free(s->heads);
    plat_free(s->heap);
    plat_free(s->chunk);
    memset(s, 0, sizeof *s);
}

/* ------------------------------------------------------------------------------------------ */
/* update: per-list work */

struct list_work {
    struct pub_list *pl; /* state of the list (NULL fields until published) */
    const char *id;
    uint64_t rows; /* rows of this list in the CSV */
    int first;     /* never published */
    int reformat;  /* last keyed in an older IDENT_FORMAT: published even when unchanged */
    uint64_t additions, removals;
    uint64_t new_seq;
    struct state_digest new_state;
    char snap_path[PATH_CAP];  /* staged new snapshot */
    char delta_path[PATH_CAP]; /* staged delta ("" when none) */
    char adds_path[PATH_CAP];
    char rems_path[PATH_CAP];
};

struct file_src {
    FILE *f;
};

/* Opens the previous snapshot of a list for reading (NULL reader when never published). */
static enum posgate_err
open_prev(const struct pub_state *s, const struct list_work *lw, FILE **f, struct feed_source *src,
          struct feed_reader **r)
{
    char p[PATH_CAP];
    const struct feed_header *h;
    enum posgate_err err;

    *f = NULL;
    *r = NULL;
    if (lw->first) {
        return POSGATE_OK;
    }
    err = pathf(p, sizeof p, "%s/lists/%s/snapshot.pgs", s->dir, lw->id);
    if (err != POSGATE_OK) {
        return err;
    }
    *f = fopen(p, "rb");
    if (*f == NULL) {
        die_msg("the last snapshot of list %s (%s) is missing: %s", lw->id, p, strerror(errno));
        return POSGATE_ERR_CORRUPT;
    }
    feed_source_file(src, *f);
    err = feed_reader_new(src, 0, r);
    if (err == POSGATE_OK) {
        err = feed_reader_header(*r, &h);
    }
    if (err == POSGATE_OK && (h->body != FEED_BODY_SNAPSHOT || h->seq != lw->pl->seq)) {
        die_msg("the last snapshot of list %s (%s) is seq %" PRIu64 ", the state says %" PRIu64,
                lw->id, p, h->seq, lw->pl->seq);
        err = POSGATE_ERR_CORRUPT;
    }
    if (err != POSGATE_OK && *r != NULL) {
        die_msg("the last snapshot of list %s (%s): %s", lw->id, p, feed_reader_error(*r));
    }
    return err;
}

static enum posgate_err
prev_next(struct feed_reader *r, struct feed_entry *e, int *have)
{
    enum feed_item item;
    enum posgate_err err;

    *have = 0;
    if (r == NULL) {
        return POSGATE_OK;
    }
    err = feed_reader_next(r, &item, e);
    if (err != POSGATE_OK) {
        die_msg("reading the last snapshot: %s", feed_reader_error(r));
        return err;
    }
    if (item == FEED_ITEM_ENTRY) {
        *have = 1;
    } else if (item != FEED_ITEM_END) {
        die_msg("the last snapshot holds a delta record");
        return POSGATE_ERR_CORRUPT;
    }
    return POSGATE_OK;
}

static enum posgate_err
stage_write(FILE *f, uint16_t list, const struct feed_entry *e)
{
    struct item it;

    it.list = list;
    it.line = 0;
    it.e = *e;
    return item_write(f, &it);
}

/*
 * Pass 1 for one list: merges the sorted new rows of the list (pulled from the sorter; *pending
 * holds the first item of the list, or of the next list afterwards) with the previous snapshot,
 * writes the new snapshot into staging and the removals and additions into staging files.
 */
static enum posgate_err
list_pass(struct pub_state *s, struct list_work *lw, uint16_t li, struct sorter *so,
          struct item *pending, int *have_pending, int64_t now, const char *label)
{
    FILE *pf = NULL, *sf = NULL, *af = NULL, *rf = NULL;
    struct feed_source psrc;
    struct feed_reader *pr = NULL;
    struct feed_sink sink;
    struct feed_writer *w = NULL;
    struct feed_header h;
    struct feed_entry old;
    struct item cur, prev_new;
    int have_old = 0, have_new, have_prev_new = 0;
    enum posgate_err err;

    memset(&h, 0, sizeof h);
    err = open_prev(s, lw, &pf, &psrc, &pr);
    if (err != POSGATE_OK) {
        goto out;
    }
    sf = fopen(lw->snap_path, "wb");
    af = fopen(lw->adds_path, "wb");
    rf = fopen(lw->rems_path, "wb");
    if (sf == NULL || af == NULL || rf == NULL) {
        die_msg("cannot create staging files in %s/work: %s", s->dir, strerror(errno));
        err = POSGATE_ERR_IO;
        goto out;
    }
    feed_sink_file(&sink, sf);
    err = feed_writer_new(&sink, &w);
    if (err != POSGATE_OK) {
        goto out;
    }
    h.body = FEED_BODY_SNAPSHOT;
    h.version = FEED_FORMAT_VERSION;
    snprintf(h.list_id, sizeof h.list_id, "%s", lw->id);
    h.seq = lw->new_seq;
    h.count = lw->rows;
    h.issued_at = now;
    /* A republished list's state is updated in O(delta) from the last one; a first snapshot's
     * state is computed by the writer from its entries. */
    err = feed_writer_begin(w, &h, lw->first ? 0 : FEED_WRITE_CALLER_STATE);
    if (err != POSGATE_OK) {
        die_msg("list %s: %s", lw->id, feed_writer_error(w));
        goto out;
    }
    if (lw->first) {
        state_digest_init(&lw->new_state);
    } else {
        lw->new_state = lw->pl->state;
    }
    err = prev_next(pr, &old, &have_old);
    if (err != POSGATE_OK) {
        goto out;
    }
    for (;;) {
        int c = 0;

        have_new = *have_pending && pending->list == li;
        if (have_new) {
            cur = *pending;
            err = sorter_next(so, pending);
            if (err == POSGATE_ERR_NOTFOUND) {
                *have_pending = 0;
                err = POSGATE_OK;
            } else if (err != POSGATE_OK) {
                goto out;
            }
            if (have_prev_new && feed_entry_compare(&prev_new.e, &cur.e) == 0) {
                die_msg("%s lines %" PRIu64 " and %" PRIu64 ": the same subject with listing id "
                        "\"%s\" twice in list %s (expected one row per subject and listing)",
                        label, prev_new.line, cur.line, cur.e.listing_id, lw->id);
                err = POSGATE_ERR_INVALID;
                goto out;
            }
            prev_new = cur;
            have_prev_new = 1;
            err = feed_writer_add(w, &cur.e);
            if (err != POSGATE_OK) {
                die_msg("%s line %" PRIu64 ": %s", label, cur.line, feed_writer_error(w));
                goto out;
            }
        }
        if (!have_new && !have_old) {
            break;
        }
        /* merge walk: new rows against the old snapshot */
        for (;;) {
            c = !have_old ? 1 : !have_new ? -1 : feed_entry_compare(&old, &cur.e);
            if (c >= 0) {
                break;
            }
            /* old < new (or no new left): a removal */
            err = stage_write(rf, li, &old);
            if (err != POSGATE_OK) {
                goto out;
            }
            lw->removals++;
            if (!lw->first) {
                state_digest_remove(&lw->new_state, &old);
            }
            err = prev_next(pr, &old, &have_old);
            if (err != POSGATE_OK) {
                goto out;
            }
            if (!have_old && !have_new) {
                break;
            }
        }
        if (!have_new) {
            break;
        }
        if (c == 0) {
            if (!feed_entry_equal(&old, &cur.e)) {
                /* same subject and listing, other terms: replace */
                err = stage_write(rf, li, &old);
                if (err == POSGATE_OK) {
                    err = stage_write(af, li, &cur.e);
                }
                if (err != POSGATE_OK) {
                    goto out;
                }
                lw->removals++;
                lw->additions++;
                if (!lw->first) {
                    state_digest_remove(&lw->new_state, &old);
                    state_digest_add(&lw->new_state, &cur.e);
                }
            }
            err = prev_next(pr, &old, &have_old);
            if (err != POSGATE_OK) {
                goto out;
            }
        } else {
            /* a first publication has no delta: its additions are only counted */
            if (!lw->first) {
                err = stage_write(af, li, &cur.e);
                if (err != POSGATE_OK) {
                    goto out;
                }
            }
            lw->additions++;
            if (!lw->first) {
                state_digest_add(&lw->new_state, &cur.e);
            }
        }
    }
    err = feed_writer_finish(w, lw->first ? NULL : &lw->new_state);
    if (err != POSGATE_OK) {
        die_msg("list %s: %s", lw->id, feed_writer_error(w));
        goto out;
    }
    if (lw->first) {
        lw->new_state = *feed_writer_state(w);
    }
out:
    feed_writer_free(w);
    feed_reader_free(pr);
    if (pf != NULL) {
        fclose(pf);
    }
    if (sf != NULL && fclose(sf) != 0 && err == POSGATE_OK) {
        err = POSGATE_ERR_IO;
    }
    if (af != NULL && fclose(af) != 0 && err == POSGATE_OK) {
        err = POSGATE_ERR_IO;
    }
    if (rf != NULL && fclose(rf) != 0 && err == POSGATE_OK) {
        err = POSGATE_ERR_IO;
    }
    return err;
}

/* Writes the staged delta of a list: header, removals, additions. */
static enum posgate_err
write_delta(struct list_work *lw, int64_t now)
{
    FILE *df = NULL, *in = NULL;
    struct feed_sink sink;
    struct feed_writer *w = NULL;
    struct feed_header h;
    struct item it;
    enum posgate_err err;
    int pass;

    memset(&h, 0, sizeof h);
    df = fopen(lw->delta_path, "wb");
    if (df == NULL) {
        die_msg("cannot create %s: %s", lw->delta_path, strerror(errno));
        return POSGATE_ERR_IO;
    }
    feed_sink_file(&sink, df);
    err = feed_writer_new(&sink, &w);
    if (err != POSGATE_OK) {
        goto out;
    }
    h.body = FEED_BODY_DELTA;
    h.version = FEED_FORMAT_VERSION;
    snprintf(h.list_id, sizeof h.list_id, "%s", lw->id);
    h.base_seq = lw->pl->seq;
    h.seq = lw->new_seq;
    h.removals = lw->removals;
    h.additions = lw->additions;
    h.issued_at = now;
    state_digest_finish(&lw->pl->state, h.base_digest);
    state_digest_finish(&lw->new_state, h.result_digest);
    err = feed_writer_begin(w, &h, 0);
    for (pass = 0; pass < 2 && err == POSGATE_OK; pass++) {
        in = fopen(pass == 0 ? lw->rems_path : lw->adds_path, "rb");
        if (in == NULL) {
            err = POSGATE_ERR_IO;
            break;
        }
        while ((err = item_read(in, &it)) == POSGATE_OK) {
            err = pass == 0 ? feed_writer_remove(w, &it.e) : feed_writer_add(w, &it.e);
            if (err != POSGATE_OK) {
                break;
            }
        }
        if (err == POSGATE_ERR_NOTFOUND) {
            err = POSGATE_OK;
        }
        fclose(in);
        in = NULL;
    }
    if (err == POSGATE_OK) {
        err = feed_writer_finish(w, NULL);
    }
    if (err != POSGATE_OK) {
        die_msg("list %s: writing the delta: %s", lw->id,
                w != NULL ? feed_writer_error(w) : posgate_strerror(err));
    }
out:
    feed_writer_free(w);
    if (fclose(df) != 0 && err == POSGATE_OK) {
        err = POSGATE_ERR_IO;
    }
    return err;
}

/* A list last published with older identifier spellings (IDENT_FORMAT) is republished, changed
 * or not (its delta replaces the keys whose spelling changed): kiosks refuse its old keys,
 * which no longer match what they compute. */
static int
ident_format_old(const struct pub_list *pl)
{
    if (pl->published && pl->ident_format < IDENT_FORMAT) {
        fprintf(stderr,
                "%s: list %s: keys of identifier format %d, republishing it in format "
                "%d\n",
                prog, pl->id, pl->ident_format, IDENT_FORMAT);
        return 1;
    }
    return 0;
}

static enum posgate_err
custom_json(char *out, size_t cap, const struct list_work *lw, int delta, int64_t now)
{
    char hex[STATE_DIGEST_HEX_LEN + 1], ts[32];
    int n;

    state_digest_hex(&lw->new_state, hex);
    time_text(now, ts);
    /* keys in canonical (byte) order */
    if (delta) {
        n = snprintf(out, cap,
                     "{\"additions\":%" PRIu64 ",\"base_seq\":%" PRIu64 ",\"digest\":\"%s\","
                     "\"entries\":%" PRIu64 ",\"ident_format\":%d,\"issued_at\":\"%s\","
                     "\"list\":\"%s\",\"removals\":%" PRIu64 ",\"seq\":%" PRIu64
                     ",\"type\":\"delta\"}",
                     lw->additions, lw->pl->seq, hex, lw->rows, IDENT_FORMAT, ts, lw->id,
                     lw->removals, lw->new_seq);
    } else {
        n = snprintf(out, cap,
                     "{\"digest\":\"%s\",\"entries\":%" PRIu64 ",\"ident_format\":%d,"
                     "\"issued_at\":\"%s\",\"list\":\"%s\",\"seq\":%" PRIu64
                     ",\"type\":\"snapshot\"}",
                     hex, lw->rows, IDENT_FORMAT, ts, lw->id, lw->new_seq);
    }
    return n > 0 && (size_t)n < cap ? POSGATE_OK : POSGATE_ERR_TOOBIG;
}

static enum posgate_err
remove_target_quiet(struct tuf_writer *w, const char *role, const char *name)
{
    enum posgate_err err = tuf_writer_remove_target(w, role, name);

    return err == POSGATE_ERR_NOTFOUND ? POSGATE_OK : err;
}

/* Authority keys given as ID=KEY.key. */
struct auth_key {
    char list[FEED_NAME_ID_MAX + 1];
    struct crypto_privkey *k;
};

struct keyring {
    struct crypto_privkey *keys[2 * MAX_ROOT_KEYS + MAX_AUTH_KEYS + 1];
    size_t n;
    struct auth_key auth[MAX_AUTH_KEYS];
    size_t nauth;
};

static void
keyring_cleanup(struct keyring *kr)
{
    size_t i;

    for (i = 0; i < kr->n; i++) {
        crypto_privkey_free(kr->keys[i]);
    }
    memset(kr, 0, sizeof *kr);
}

/* Feed key, root keys and the --authority-key values. */
static enum posgate_err
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

static size_t
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
static enum posgate_err
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
static enum posgate_err
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

static enum posgate_err
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

static enum posgate_err
parse_expires(const struct opt *o, int64_t *out)
{
    *out = 86400;
    if (o->count == 0) {
        return POSGATE_OK;
    }
    if (plat_duration_parse(optv(o), out) != POSGATE_OK || *out <= 0) {
        die_msg("--expires \"%s\": expected a duration like 90m, 48h or 7d", optv(o));
        return POSGATE_ERR_USAGE;
    }
    return POSGATE_OK;
}

static enum posgate_err
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

static enum posgate_err
publish_repo(struct tuf_writer *w, const char *out_dir, struct keyring *kr)
{
    enum posgate_err err = tuf_writer_publish(w, out_dir, kr->keys, kr->n);

    if (err != POSGATE_OK) {
        die_msg("publishing to %s failed: %s", out_dir, tuf_writer_errmsg(w));
    }
    return err;
}

/* Adds config/feed.json when it is not listed yet or changed. */
static enum posgate_err
publish_config(struct pub_state *s, struct tuf_writer *w, const struct buf *raw, int *changed)
{
    uint8_t sha[CRYPTO_SHA256_LEN];
    char hex[65], p[PATH_CAP], custom[256];
    enum posgate_err err;

    *changed = 0;
    crypto_sha256(raw->data, raw->len, sha);
    crypto_hex(sha, sizeof sha, hex);
    if (strcmp(hex, s->config_sha256) == 0) {
        return POSGATE_OK;
    }
    err = pathf(p, sizeof p, "%s/feed.json", s->dir);
    if (err != POSGATE_OK) {
        return err;
    }
    snprintf(custom, sizeof custom, "{\"type\":\"config\"}");
    err = tuf_writer_add_target(w, "targets", "config/feed.json", p, custom);
    if (err != POSGATE_OK) {
        die_msg("cannot add config/feed.json: %s", tuf_writer_errmsg(w));
        return err;
    }
    memcpy(s->config_sha256, hex, sizeof hex);
    *changed = 1;
    return POSGATE_OK;
}

/* ------------------------------------------------------------------------------------------ */
/* a delegated list's configuration, signed by its authority (list_config.h) */

#define REASON_BITS_BYTES (FEED_REASONS_MAX / 8) /* a bit per reason, per list */

/* One delegated list's lists/<id>/config.json in this run. */
struct signed_cfg {
    int write;             /* its authority signs a new one in this run */
    char staged[PATH_CAP]; /* its body, in the work directory */
};

/* Notes that a row of list uses reason (used: REASON_BITS_BYTES per list of the config). */
static void
reason_used_mark(uint8_t *used, uint16_t list, uint16_t reason)
{
    if (reason < FEED_REASONS_MAX) {
        used[(size_t)list * REASON_BITS_BYTES + reason / 8] |= (uint8_t)(1u << (reason % 8));
    }
}

/* The reasons rows of list use, in increasing order; their count. */
static size_t
reasons_used(const uint8_t *used, uint16_t list, uint16_t *out)
{
    size_t n = 0;

    for (unsigned r = 0; r < FEED_REASONS_MAX; r++) {
        if ((used[(size_t)list * REASON_BITS_BYTES + r / 8] & (1u << (r % 8))) != 0) {
            out[n++] = (uint16_t)r;
        }
    }
    return n;
}

/*
 * Before anything is written: for every delegated list, the list config its authority signs
 * (the list and the reasons its rows use, from feed.json) is compared with the one it signed
 * last (<state>/lists/<id>/config.json). With the authority's keys a new one is staged when it
 * differs; without them a difference kiosks would refuse is refused here (exit 4), as is a
 * delegated list dropped from feed.json (kiosks pinned it) or one never signed yet.
 */
static enum posgate_err
signed_cfg_plan(struct pub_state *s, const struct feed_config *cfg, const struct buf *cfg_raw,
                const uint8_t *used, const struct keyring *kr, const char *workdir,
                struct signed_cfg *sc)
{
    struct buf now = BUF_INIT(LIST_CONFIG_MAX_BYTES), old = BUF_INIT(LIST_CONFIG_MAX_BYTES);
    uint16_t *idx = plat_calloc(FEED_REASONS_MAX, sizeof *idx);
    char p[PATH_CAP], msg[LIST_CONFIG_ERRMSG];
    enum posgate_err err = POSGATE_OK;
    size_t i;

    if (idx == NULL) {
        err = POSGATE_ERR_NOMEM;
        goto out;
    }
    for (i = 0; i < s->nlists; i++) {
        const struct pub_list *pl = &s->lists[i];

        if (strcmp(pl->role, "targets") != 0 && feed_config_list_find(cfg, pl->id) < 0) {
            die_msg("refused: list %s is delegated to its authority (role %s) and missing from "
                    "feed.json; kiosks pinned it and would refuse the feed (retiring a "
                    "delegated list is not supported in this version). Nothing was published.",
                    pl->id, pl->role);
            err = POSGATE_ERR_REJECTED;
            goto out;
        }
    }
    for (i = 0; i < cfg->n_lists; i++) {
        const struct pub_list *pl = pub_find(s, cfg->lists[i].id);
        int keys;

        if (pl == NULL || strcmp(pl->role, "targets") == 0) {
            continue;
        }
        keys = keyring_auth_count(kr, pl->id) >= pl->auth_threshold;
        buf_reset(&now);
        buf_reset(&old);
        err = list_config_build(cfg_raw->data, cfg_raw->len, pl->id, idx,
                                reasons_used(used, (uint16_t)i, idx), &now, msg, sizeof msg);
        if (err != POSGATE_OK) {
            die_msg("list %s: %s", pl->id, msg);
            goto out;
        }
        err = pathf(p, sizeof p, "%s/lists/%s/config.json", s->dir, pl->id);
        if (err != POSGATE_OK) {
            goto out;
        }
        err = plat_read_file(p, &old);
        if (err != POSGATE_OK && err != POSGATE_ERR_NOTFOUND) {
            die_msg("cannot read %s: %s", p, posgate_strerror(err));
            goto out;
        }
        if (err == POSGATE_OK && old.len == now.len && memcmp(old.data, now.data, now.len) == 0) {
            continue;
        }
        if (!keys && err == POSGATE_ERR_NOTFOUND) {
            die_msg("refused: list %s is delegated to its authority (role %s, threshold %u) and "
                    "its configuration (lists/%s/config.json) is not signed by it yet; pass "
                    "--authority-key %s=KEY.key. Nothing was published.",
                    pl->id, pl->role, pl->auth_threshold, pl->id, pl->id);
            err = POSGATE_ERR_REJECTED;
            goto out;
        }
        if (!keys) {
            /* the operator's own change (a service appended) that kiosks accept as is */
            err = list_config_check(cfg_raw->data, cfg_raw->len, pl->id, old.data, old.len, msg,
                                    sizeof msg);
            if (err != POSGATE_OK) {
                die_msg("%s; only its authority may change it: pass --authority-key %s=KEY.key. "
                        "Nothing was published.",
                        msg, pl->id);
                goto out;
            }
            continue;
        }
        err = pathf(sc[i].staged, sizeof sc[i].staged, "%s/list-config-%zu.json", workdir, i);
        if (err == POSGATE_OK) {
            err = plat_write_atomic(sc[i].staged, now.data, now.len, 0600);
        }
        if (err != POSGATE_OK) {
            die_msg("cannot write %s: %s", sc[i].staged, posgate_strerror(err));
            goto out;
        }
        sc[i].write = 1;
    }
    err = POSGATE_OK;
out:
    plat_free(idx);
    buf_free(&now);
    buf_free(&old);
    return err;
}

/* Lists each staged list config in its delegated role (signed there by its authority). */
static enum posgate_err
signed_cfg_add(struct pub_state *s, const struct feed_config *cfg, struct tuf_writer *w,
               const struct signed_cfg *sc)
{
    char name[FEED_NAME_ID_MAX + 32], custom[FEED_NAME_ID_MAX + 64];
    enum posgate_err err;
    size_t i;

    for (i = 0; i < cfg->n_lists; i++) {
        const struct pub_list *pl = pub_find(s, cfg->lists[i].id);

        if (!sc[i].write || pl == NULL) {
            continue;
        }
        snprintf(name, sizeof name, "lists/%s/config.json", pl->id);
        snprintf(custom, sizeof custom, "{\"list\":\"%s\",\"type\":\"list-config\"}", pl->id);
        err = tuf_writer_add_target(w, pl->role, name, sc[i].staged, custom);
        if (err != POSGATE_OK) {
            die_msg("cannot add %s: %s", name, tuf_writer_errmsg(w));
            return err;
        }
    }
    return POSGATE_OK;
}

/* refresh reads no entries.csv, so it cannot sign a list's configuration: a delegated list
 * whose authority has not signed one yet needs an update first (kiosks would refuse the feed). */
static enum posgate_err
signed_cfg_require(const struct pub_state *s)
{
    char p[PATH_CAP];
    enum posgate_err err;
    size_t i;

    for (i = 0; i < s->nlists; i++) {
        const struct pub_list *l = &s->lists[i];

        if (strcmp(l->role, "targets") == 0) {
            continue;
        }
        err = pathf(p, sizeof p, "%s/lists/%s/config.json", s->dir, l->id);
        if (err != POSGATE_OK) {
            return err;
        }
        if (access(p, F_OK) != 0) {
            die_msg("refused: list %s is delegated to its authority (role %s) and its "
                    "configuration (lists/%s/config.json) is not signed by it yet; run %s update "
                    "with --authority-key %s=KEY.key first. Nothing was published.",
                    l->id, l->role, l->id, prog, l->id);
            return POSGATE_ERR_REJECTED;
        }
    }
    return POSGATE_OK;
}

/* After the publication: the configs just signed are the ones to compare with next time. */
static enum posgate_err
signed_cfg_commit(const struct pub_state *s, const struct feed_config *cfg,
                  const struct signed_cfg *sc)
{
    char dir[PATH_CAP], to[PATH_CAP];
    enum posgate_err err;
    size_t i;

    for (i = 0; i < cfg->n_lists; i++) {
        if (!sc[i].write) {
            continue;
        }
        err = pathf(dir, sizeof dir, "%s/lists/%s", s->dir, cfg->lists[i].id);
        if (err == POSGATE_OK) {
            err = plat_mkdir_p(dir, 0700);
        }
        if (err == POSGATE_OK) {
            err = pathf(to, sizeof to, "%s/config.json", dir);
        }
        if (err == POSGATE_OK) {
            err = copy_file(sc[i].staged, to);
        }
        if (err != POSGATE_OK) {
            return err;
        }
        fprintf(stderr, "%s: list %s: configuration signed by its authority\n", prog,
                cfg->lists[i].id);
    }
    return POSGATE_OK;
}

static void
usage_update(FILE *f)
{
    fprintf(f,
            "usage: posgate-publish update --state DIR --entries entries.csv --out FEEDDIR\n"
            "                              [--expires DURATION] [--allow-mass-change]\n"
            "                              [--authority-key LIST=KEY.key ...]\n"
            "Validates every row of entries.csv against the feed config (nothing is published\n"
            "on any error), sorts each list by entry key, compares it with the last published\n"
            "snapshot and publishes a new snapshot and a delta for every changed list, then\n"
            "signs and writes the TUF repository to FEEDDIR. A change of more than %d%% of a\n"
            "list (additions + removals against its last entry count) and at least %d rows\n"
            "is refused with exit 4 unless --allow-mass-change is given (a list's own marks:\n"
            "\"mass_change\": {\"percent\": P, \"rows\": R} in feed.json). --expires sets the timestamp's lifetime\n"
            "(default 1d). A list delegated to its authority (posgate-publish delegate) needs\n"
            "its authority's key(s) to change: --authority-key LIST=KEY.key.\n"
            "Exit: 0 ok, 2 invalid input, 4 refused, 5 I/O.\n",
            FEED_MASS_PERCENT, FEED_MASS_ROWS);
}

static int
cmd_update(int argc, char **argv)
{
    struct opt o[] = {{"state", 1, 0, {0}, 0},
                      {"entries", 1, 0, {0}, 0},
                      {"out", 1, 0, {0}, 0},
                      {"expires", 1, 0, {0}, 0},
                      {"allow-mass-change", 0, 0, {0}, 0},
                      {"authority-key", 1, 1, {0}, 0}};
    struct pub_state s;
    struct feed_config *cfg = NULL;
    struct buf cfg_raw = BUF_INIT(FEED_CONFIG_MAX_BYTES);
    struct crypto_hmac_key hk;
    struct entries_csv *csv = NULL;
    struct entries_row row;
    struct sorter so;
    struct list_work *lw = NULL;
    struct signed_cfg *sc = NULL;
    uint8_t *used = NULL;
    struct tuf_writer *w = NULL;
    struct keyring kr;
    struct item pending;
    FILE *in = NULL;
    char p[PATH_CAP], workdir[PATH_CAP], msg[ENTRIES_CSV_ERRMSG_MAX], label[PATH_CAP];
    int help, have_pending = 0, refused = 0, cfg_changed = 0, key_check_added = 0;
    int64_t expires, now = plat_wall_s();
    uint64_t total = 0;
    size_t i, changed = 0;
    enum posgate_err err = POSGATE_ERR_USAGE;

    memset(&s, 0, sizeof s);
    memset(&so, 0, sizeof so);
    memset(&kr, 0, sizeof kr);
    memset(&hk, 0, sizeof hk);
    workdir[0] = '\0';
    if (parse_opts(argc, argv, o, sizeof o / sizeof o[0], &help) != 0) {
        usage_update(stderr);
        return EXIT_USAGE;
    }
    if (help) {
        usage_update(stdout);
        return EXIT_OK;
    }
    if (require(&o[0], "update") || require(&o[1], "update") || require(&o[2], "update")) {
        return EXIT_USAGE;
    }
    err = parse_expires(&o[3], &expires);
    if (err != POSGATE_OK) {
        return EXIT_USAGE;
    }
    err = pub_state_load(optv(&o[0]), &s);
    if (err != POSGATE_OK) {
        goto out;
    }
    err = pathf(p, sizeof p, "%s/feed.json", s.dir);
    if (err == POSGATE_OK) {
        err = load_config(p, &cfg, &cfg_raw);
    }
    if (err == POSGATE_OK) {
        err = load_list_key(s.list_key, &hk);
    }
    if (err == POSGATE_OK) {
        /* a state made before feeds carried the check value gets it now, and publishes it */
        err = add_key_check(p, &hk, &cfg_raw, &cfg, &key_check_added);
    }
    if (err == POSGATE_OK && key_check_added) {
        err = plat_write_atomic(p, cfg_raw.data, cfg_raw.len, 0644);
        if (err != POSGATE_OK) {
            die_msg("cannot write %s: %s", p, posgate_strerror(err));
        }
    }
    if (err == POSGATE_OK) {
        err = keyring_load(&s, &o[5], &kr);
    }
    if (err != POSGATE_OK) {
        goto out;
    }
    for (i = 0; i < kr.nauth; i++) {
        if (feed_config_list_find(cfg, kr.auth[i].list) < 0) {
            die_msg("--authority-key: unknown list \"%s\"", kr.auth[i].list);
            err = POSGATE_ERR_USAGE;
            goto out;
        }
    }
    lw = plat_calloc(cfg->n_lists > 0 ? cfg->n_lists : 1, sizeof *lw);
    sc = plat_calloc(cfg->n_lists > 0 ? cfg->n_lists : 1, sizeof *sc);
    used = plat_calloc(cfg->n_lists > 0 ? cfg->n_lists : 1, REASON_BITS_BYTES);
    if (lw == NULL || sc == NULL || used == NULL) {
        err = POSGATE_ERR_NOMEM;
        goto out;
    }
    for (i = 0; i < cfg->n_lists; i++) {
        lw[i].id = cfg->lists[i].id;
        lw[i].pl = pub_add(&s, cfg->lists[i].id);
        if (lw[i].pl == NULL) {
            err = POSGATE_ERR_NOMEM;
            goto out;
        }
        /* a list a stopped run left pending is published whole: its snapshot.pgs may be
         * newer than its seq says, and what reached the repository is unknown */
        lw[i].first = !lw[i].pl->published || lw[i].pl->pending;
        lw[i].reformat = ident_format_old(lw[i].pl);
        lw[i].new_seq = lw[i].pl->seq + 1;
    }
    /* pub_add may have moved the array: take the pointers again */
    for (i = 0; i < cfg->n_lists; i++) {
        lw[i].pl = pub_find(&s, cfg->lists[i].id);
    }

    /* work directory for sort runs and staged bodies */
    err = pathf(workdir, sizeof workdir, "%s/work", s.dir);
    if (err != POSGATE_OK) {
        goto out;
    }
    remove_dir(workdir);
    err = plat_mkdir_p(workdir, 0700);
    if (err != POSGATE_OK) {
        die_msg("cannot create %s: %s", workdir, posgate_strerror(err));
        goto out;
    }

    /* 1. parse and validate every row, key it, feed the sorter */
    in = fopen(optv(&o[1]), "rb");
    if (in == NULL) {
        die_msg("cannot open %s: %s", optv(&o[1]), strerror(errno));
        err = errno == ENOENT ? POSGATE_ERR_NOTFOUND : POSGATE_ERR_IO;
        goto out;
    }
    {
        const char *slash = strrchr(optv(&o[1]), '/');

        snprintf(label, sizeof label, "%s", slash != NULL ? slash + 1 : optv(&o[1]));
    }
    err = entries_csv_open(in, label, cfg, &csv, msg, sizeof msg);
    if (err != POSGATE_OK) {
        die_msg("%s", msg);
        goto out;
    }
    entries_csv_set_key(csv, &hk);
    snprintf(so.dir, sizeof so.dir, "%s", workdir);
    so.chunk = plat_malloc(SORT_CHUNK * sizeof *so.chunk);
    if (so.chunk == NULL) {
        err = POSGATE_ERR_NOMEM;
        goto out;
    }
    while ((err = entries_csv_next(csv, &row)) == POSGATE_OK) {
        err = sorter_add(&so, row.list, row.line, &row.entry);
        if (err != POSGATE_OK) {
            goto out;
        }
        lw[row.list].rows++;
        reason_used_mark(used, row.list, row.entry.reason);
        total++;
    }
    if (err != POSGATE_ERR_NOTFOUND) {
        die_msg("%s", entries_csv_errmsg(csv));
        die_msg("nothing was published");
        goto out;
    }
    err = sorter_finish(&so);
    if (err != POSGATE_OK) {
        goto out;
    }

    /* 2. per list: merge walk against the last snapshot, staged snapshot and changes */
    err = sorter_next(&so, &pending);
    if (err == POSGATE_OK) {
        have_pending = 1;
    } else if (err != POSGATE_ERR_NOTFOUND) {
        goto out;
    }
    for (i = 0; i < cfg->n_lists; i++) {
        struct list_work *l = &lw[i];

        if ((err = pathf(l->snap_path, PATH_CAP, "%s/snap-%zu", workdir, i)) != POSGATE_OK ||
            (err = pathf(l->adds_path, PATH_CAP, "%s/adds-%zu", workdir, i)) != POSGATE_OK ||
            (err = pathf(l->rems_path, PATH_CAP, "%s/rems-%zu", workdir, i)) != POSGATE_OK) {
            goto out;
        }
        err = list_pass(&s, l, (uint16_t)i, &so, &pending, &have_pending, now, label);
        if (err != POSGATE_OK) {
            die_msg("nothing was published");
            goto out;
        }
    }

    /* 3. the mass-change guard, before anything is written to the feed */
    for (i = 0; i < cfg->n_lists; i++) {
        struct list_work *l = &lw[i];
        uint64_t changes = l->additions + l->removals;
        const struct feed_list *fl = &cfg->lists[i];

        /* a list never published has nothing to compare with; one a stopped run left
         * pending is republished whole, but its rows were compared with its last snapshot
         * all the same, so the guard holds for it too */
        if (!l->pl->published || changes == 0) {
            continue;
        }
        /* mass only past both marks: removing 1 row of 5 is a correction, not a bad export */
        if (changes * 100 > l->pl->entries * fl->mass_percent && changes >= fl->mass_min_rows) {
            fprintf(stderr,
                    "%s: list %s: %" PRIu64 " additions + %" PRIu64 " removals = %" PRIu64
                    " changes against %" PRIu64 " entries: more than %u%% and at least %" PRIu32
                    " rows (mass_change of the list in feed.json)%s\n",
                    prog, l->id, l->additions, l->removals, changes, l->pl->entries,
                    fl->mass_percent, fl->mass_min_rows,
                    o[4].count > 0 ? " (allowed by --allow-mass-change)"
                                   : "; --allow-mass-change publishes it");
            refused = 1;
        }
    }
    if (refused && o[4].count == 0) {
        die_msg("refused: a mass change; check the export, then pass --allow-mass-change to "
                "publish it anyway. Nothing was published.");
        err = POSGATE_ERR_REJECTED;
        goto out;
    }

    /* 4. delegated lists need their authority's keys */
    for (i = 0; i < cfg->n_lists; i++) {
        struct list_work *l = &lw[i];

        if (strcmp(l->pl->role, "targets") != 0 &&
            (l->first || l->reformat || l->pl->resign || l->additions + l->removals > 0) &&
            keyring_auth_count(&kr, l->id) < l->pl->auth_threshold) {
            die_msg("refused: list %s is delegated to its authority (role %s, threshold %u) and "
                    "changed; pass --authority-key %s=KEY.key (%zu given). Nothing was published.",
                    l->id, l->pl->role, l->pl->auth_threshold, l->id,
                    keyring_auth_count(&kr, l->id));
            err = POSGATE_ERR_REJECTED;
            goto out;
        }
    }

    /* 4b. a delegated list's configuration changes only with its authority's keys */
    err = signed_cfg_plan(&s, cfg, &cfg_raw, used, &kr, workdir, sc);
    if (err != POSGATE_OK) {
        goto out;
    }

    /* 5. deltas, then targets */
    err = open_writer(&s, &w);
    if (err != POSGATE_OK) {
        goto out;
    }
    err = set_lifetimes(w, expires);
    if (err != POSGATE_OK) {
        goto out;
    }
    err = publish_config(&s, w, &cfg_raw, &cfg_changed);
    if (err == POSGATE_OK) {
        err = signed_cfg_add(&s, cfg, w, sc);
    }
    if (err != POSGATE_OK) {
        goto out;
    }
    for (i = 0; i < cfg->n_lists; i++) {
        struct list_work *l = &lw[i];
        struct pub_list *pl = l->pl;
        char name[256], custom[1024], dst[PATH_CAP], dir[PATH_CAP];

        if (!l->first && !l->reformat && l->additions + l->removals == 0) {
            continue;
        }
        changed++;
        err = custom_json(custom, sizeof custom, l, 0, now);
        if (err == POSGATE_OK) {
            err = pathf(name, sizeof name, "lists/%s/snapshot-%" PRIu64 ".pgs", l->id, l->new_seq);
        }
        if (err == POSGATE_OK) {
            err = tuf_writer_add_target(w, pl->role, name, l->snap_path, custom);
            if (err != POSGATE_OK) {
                die_msg("cannot add %s: %s", name, tuf_writer_errmsg(w));
            }
        }
        if (err == POSGATE_OK && pl->pending) {
            /* A run stopped before its publication finished: what it left in the writer's
             * state is unknown, so its deltas and snapshots are withdrawn (kiosks take the new
             * snapshot) and the list is published whole under a seq never published before. */
            for (size_t k = 0; err == POSGATE_OK && k < pl->ndeltas; k++) {
                err = remove_target_quiet(w, pl->role, pl->deltas[k]);
            }
            pl->ndeltas = 0;
            for (uint64_t k = 0; err == POSGATE_OK && k < 2 && pl->seq > k; k++) {
                char old[256];

                err =
                    pathf(old, sizeof old, "lists/%s/snapshot-%" PRIu64 ".pgs", l->id, pl->seq - k);
                if (err == POSGATE_OK && strcmp(old, name) != 0) {
                    err = remove_target_quiet(w, pl->role, old);
                }
            }
        }
        if (err == POSGATE_OK && pl->snapshot_target[0] != '\0' &&
            strcmp(pl->snapshot_target, name) != 0) {
            err = remove_target_quiet(w, pl->role, pl->snapshot_target);
        }
        if (err != POSGATE_OK) {
            goto out;
        }
        if (!l->first) {
            err = pathf(l->delta_path, PATH_CAP, "%s/delta-%zu", workdir, i);
            if (err == POSGATE_OK) {
                err = write_delta(l, now);
            }
            if (err == POSGATE_OK) {
                err = custom_json(custom, sizeof custom, l, 1, now);
            }
            if (err != POSGATE_OK) {
                goto out;
            }
            if (pl->ndeltas == KEEP_DELTAS) {
                err = remove_target_quiet(w, pl->role, pl->deltas[0]);
                if (err != POSGATE_OK) {
                    goto out;
                }
                memmove(pl->deltas[0], pl->deltas[1], (KEEP_DELTAS - 1) * sizeof pl->deltas[0]);
                pl->ndeltas--;
            }
            snprintf(pl->deltas[pl->ndeltas], sizeof pl->deltas[0],
                     "lists/%s/delta-%" PRIu64 "-%" PRIu64 ".pgd", l->id, pl->seq, l->new_seq);
            err =
                tuf_writer_add_target(w, pl->role, pl->deltas[pl->ndeltas], l->delta_path, custom);
            if (err != POSGATE_OK) {
                die_msg("cannot add %s: %s", pl->deltas[pl->ndeltas], tuf_writer_errmsg(w));
                goto out;
            }
            pl->ndeltas++;
        }
        /* the new snapshot becomes the list's reference */
        err = pathf(dir, sizeof dir, "%s/lists/%s", s.dir, l->id);
        if (err == POSGATE_OK) {
            err = plat_mkdir_p(dir, 0700);
        }
        if (err == POSGATE_OK) {
            err = pathf(dst, sizeof dst, "%s/snapshot.pgs.new", dir);
        }
        if (err == POSGATE_OK) {
            err = copy_file(l->snap_path, dst);
        }
        if (err != POSGATE_OK) {
            goto out;
        }
        snprintf(pl->snapshot_target, sizeof pl->snapshot_target, "%s", name);
        fprintf(stderr,
                "%s: list %s: seq %" PRIu64 ", %" PRIu64 " entries (+%" PRIu64 " -%" PRIu64 ")\n",
                prog, l->id, l->new_seq, l->rows, l->additions, l->removals);
    }

    /*
     * 6. Our state first, then the repository: should the publish fail after this, the next
     * update starts from a seq that was never published, and kiosks fall back to a snapshot;
     * the reverse order could publish the same seq twice with different contents. The changed
     * lists are marked pending before their snapshot.pgs is replaced and until the repository
     * is written, so a run killed anywhere in between leaves them to be published whole by the
     * next update (without the mark, the next update found snapshot.pgs newer than the state,
     * or found no change and never published the lists at all).
     */
    for (i = 0; i < cfg->n_lists; i++) {
        if (lw[i].first || lw[i].reformat || lw[i].additions + lw[i].removals > 0) {
            lw[i].pl->pending = 1;
        }
    }
    err = pub_state_save(&s);
    if (err != POSGATE_OK) {
        goto out;
    }
    for (i = 0; i < cfg->n_lists; i++) {
        struct list_work *l = &lw[i];
        char from[PATH_CAP], to[PATH_CAP];

        if (!l->first && !l->reformat && l->additions + l->removals == 0) {
            continue;
        }
        if ((err = pathf(from, sizeof from, "%s/lists/%s/snapshot.pgs.new", s.dir, l->id)) !=
                POSGATE_OK ||
            (err = pathf(to, sizeof to, "%s/lists/%s/snapshot.pgs", s.dir, l->id)) != POSGATE_OK) {
            goto out;
        }
        err = plat_rename_durable(from, to);
        if (err != POSGATE_OK) {
            die_msg("cannot rename %s: %s", from, posgate_strerror(err));
            goto out;
        }
        l->pl->seq = l->new_seq;
        l->pl->published = 1;
        l->pl->entries = l->rows;
        l->pl->issued_at = now;
        l->pl->state = l->new_state;
    }
    err = pub_state_save(&s);
    if (err != POSGATE_OK) {
        goto out;
    }
    err = publish_repo(w, optv(&o[2]), &kr);
    if (err == POSGATE_OK) {
        err = signed_cfg_commit(&s, cfg, sc);
    }
    if (err != POSGATE_OK) {
        goto out;
    }
    for (i = 0; i < s.nlists; i++) {
        s.lists[i].pending = 0;
        s.lists[i].ident_format = IDENT_FORMAT;
    }
    err = pub_state_save(&s);
    if (err != POSGATE_OK) {
        goto out;
    }
    err = clear_resign(&s, &kr);
    if (err != POSGATE_OK) {
        goto out;
    }
    fprintf(stderr, "%s: published %" PRIu64 " rows; %zu list(s) changed%s; feed in %s\n", prog,
            total, changed, cfg_changed ? ", config updated" : "", optv(&o[2]));
out:
    if (in != NULL) {
        fclose(in);
    }
    if (workdir[0] != '\0') {
        sorter_cleanup(&so);
        remove_dir(workdir);
    } else {
        sorter_cleanup(&so);
    }
    entries_csv_free(csv);
    tuf_writer_free(w);
    keyring_cleanup(&kr);
    crypto_hmac_key_cleanup(&hk);
    feed_config_free(cfg);
    buf_free(&cfg_raw);
    plat_free(lw);
    plat_free(sc);
    plat_free(used);
    pub_state_cleanup(&s);
    return exit_for(err);
}

/* ------------------------------------------------------------------------------------------ */
/* init */

static void
usage_init(FILE *f)
{
    fprintf(f,
            "usage: posgate-publish init --state DIR --config feed.json --root-key K.key\n"
            "                            [--root-key K2.key ...] --threshold N --feed-key F.key\n"
            "                            --list-key FILE\n"
            "Creates the publisher state in DIR (which must not hold one): a TUF repository\n"
            "whose root role is the root keys with threshold N and whose timestamp, snapshot\n"
            "and targets roles are the feed key; a copy of the validated feed config; and the\n"
            "paths of the keys and of the 32-byte list key (which never goes into the feed).\n"
            "Nothing is published until the first update.\n"
            "Exit: 0 ok, 2 invalid input, 5 I/O.\n");
}

static int
cmd_init(int argc, char **argv)
{
    struct opt o[] = {{"state", 1, 0, {0}, 0},    {"config", 1, 0, {0}, 0},
                      {"root-key", 1, 1, {0}, 0}, {"threshold", 1, 0, {0}, 0},
                      {"feed-key", 1, 0, {0}, 0}, {"list-key", 1, 0, {0}, 0}};
    struct pub_state s;
    struct feed_config *cfg = NULL;
    struct buf cfg_raw = BUF_INIT(FEED_CONFIG_MAX_BYTES);
    struct buf root_pem[MAX_ROOT_KEYS], feed_pem = BUF_INIT(CRYPTO_PEM_MAX);
    const char *root_pems[MAX_ROOT_KEYS], *feed_pems[1];
    struct crypto_privkey *k = NULL;
    struct crypto_hmac_key hk;
    struct tuf_writer_init wi;
    struct tuf_writer *w = NULL;
    char p[PATH_CAP], msg[TUF_WRITER_ERRMSG_MAX], *end = NULL;
    int help, key_check_added = 0;
    unsigned long thr;
    size_t i;
    enum posgate_err err = POSGATE_ERR_USAGE;

    memset(&s, 0, sizeof s);
    memset(&hk, 0, sizeof hk);
    for (i = 0; i < MAX_ROOT_KEYS; i++) {
        buf_init(&root_pem[i], CRYPTO_PEM_MAX);
    }
    if (parse_opts(argc, argv, o, sizeof o / sizeof o[0], &help) != 0) {
        usage_init(stderr);
        return EXIT_USAGE;
    }
    if (help) {
        usage_init(stdout);
        return EXIT_OK;
    }
    for (i = 0; i < sizeof o / sizeof o[0]; i++) {
        if (require(&o[i], "init") != 0) {
            return EXIT_USAGE;
        }
    }
    errno = 0;
    thr = strtoul(optv(&o[3]), &end, 10);
    if (errno != 0 || end == optv(&o[3]) || *end != '\0' || thr < 1 || thr > o[2].count) {
        die_msg("--threshold \"%s\": expected a number from 1 to %zu (the number of root keys)",
                optv(&o[3]), o[2].count);
        return EXIT_USAGE;
    }
    err = plat_mkdir_p(optv(&o[0]), 0700);
    if (err != POSGATE_OK) {
        die_msg("cannot create %s: %s", optv(&o[0]), posgate_strerror(err));
        goto out;
    }
    err = abs_path(optv(&o[0]), s.dir, sizeof s.dir);
    if (err != POSGATE_OK) {
        goto out;
    }
    err = pathf(p, sizeof p, "%s/publish.json", s.dir);
    if (err != POSGATE_OK) {
        goto out;
    }
    if (plat_exists(p)) {
        die_msg("%s already holds a publisher state; refusing to overwrite it", s.dir);
        err = POSGATE_ERR_STATE;
        goto out;
    }
    err = load_config(optv(&o[1]), &cfg, &cfg_raw);
    if (err != POSGATE_OK) {
        goto out;
    }
    err = abs_path(optv(&o[5]), s.list_key, sizeof s.list_key);
    if (err == POSGATE_OK) {
        err = load_list_key(s.list_key, &hk);
    }
    if (err == POSGATE_OK) {
        err = add_key_check(optv(&o[1]), &hk, &cfg_raw, &cfg, &key_check_added);
    }
    if (err != POSGATE_OK) {
        goto out;
    }
    for (i = 0; i < o[2].count; i++) {
        err = key_path(o[2].values[i], s.root_keys[i], PATH_CAP);
        if (err == POSGATE_OK) {
            err = load_privkey(s.root_keys[i], &k);
        }
        if (err == POSGATE_OK) {
            err = crypto_privkey_public_pem(k, &root_pem[i]);
        }
        crypto_privkey_free(k);
        k = NULL;
        if (err != POSGATE_OK) {
            goto out;
        }
        root_pems[i] = buf_cstr(&root_pem[i]);
    }
    s.nroot = o[2].count;
    err = key_path(optv(&o[4]), s.feed_key, sizeof s.feed_key);
    if (err == POSGATE_OK) {
        err = load_privkey(s.feed_key, &k);
    }
    if (err == POSGATE_OK) {
        err = crypto_privkey_public_pem(k, &feed_pem);
    }
    crypto_privkey_free(k);
    k = NULL;
    if (err != POSGATE_OK) {
        goto out;
    }
    feed_pems[0] = buf_cstr(&feed_pem);
    memset(&wi, 0, sizeof wi);
    wi.root.public_pems = root_pems;
    wi.root.count = o[2].count;
    wi.root.threshold = (unsigned)thr;
    wi.timestamp.public_pems = feed_pems;
    wi.timestamp.count = 1;
    wi.timestamp.threshold = 1;
    wi.snapshot = wi.timestamp;
    wi.targets = wi.timestamp;
    err = pathf(p, sizeof p, "%s/tuf", s.dir);
    if (err != POSGATE_OK) {
        goto out;
    }
    err = tuf_writer_create(p, &wi, &w, msg, sizeof msg);
    if (err != POSGATE_OK) {
        die_msg("cannot create the TUF repository state in %s: %s", p, msg);
        goto out;
    }
    err = set_lifetimes(w, 86400);
    if (err == POSGATE_OK) {
        err = tuf_writer_save(w);
    }
    if (err != POSGATE_OK) {
        die_msg("cannot save the TUF writer state: %s", tuf_writer_errmsg(w));
        goto out;
    }
    err = pathf(p, sizeof p, "%s/feed.json", s.dir);
    if (err == POSGATE_OK) {
        err = plat_write_atomic(p, cfg_raw.data, cfg_raw.len, 0644);
    }
    if (err != POSGATE_OK) {
        die_msg("cannot write %s: %s", p, posgate_strerror(err));
        goto out;
    }
    s.config_sha256[0] = '\0';
    for (i = 0; i < cfg->n_lists; i++) {
        if (pub_add(&s, cfg->lists[i].id) == NULL) {
            err = POSGATE_ERR_NOMEM;
            goto out;
        }
    }
    err = pub_state_save(&s);
    if (err != POSGATE_OK) {
        goto out;
    }
    printf("initialised %s: %zu root key(s), threshold %lu; feed %s with %u list(s); list key "
           "fingerprint %s\n",
           s.dir, s.nroot, thr, cfg->feed_id, (unsigned)cfg->n_lists, cfg->list_key_check);
out:
    tuf_writer_free(w);
    crypto_hmac_key_cleanup(&hk);
    feed_config_free(cfg);
    buf_free(&cfg_raw);
    for (i = 0; i < MAX_ROOT_KEYS; i++) {
        buf_free(&root_pem[i]);
    }
    buf_free(&feed_pem);
    pub_state_cleanup(&s);
    return exit_for(err);
}

/* ------------------------------------------------------------------------------------------ */
/* refresh */

static void
usage_refresh(FILE *f)
{
    fprintf(f, "usage: posgate-publish refresh --state DIR --out FEEDDIR [--expires DURATION]\n"
               "                               [--authority-key LIST=KEY.key ...]\n"
               "Signs a new timestamp (and any role with pending changes) without changing a\n"
               "list, and writes the repository to FEEDDIR. --expires sets the timestamp's\n"
               "lifetime (default 1d). A delegated list is fresh only as of its authority's last\n"
               "signature: --authority-key LIST=KEY re-signs that list's role, vouching for it\n"
               "now (run it more often than the list's stale_after).\n"
               "Exit: 0 ok, 2 invalid input, 4 refused, 5 I/O.\n");
}

/* A delegated list is as fresh as its authority's last signature (kiosks count its data age from
 * its role's signing time, never from the operator's timestamp): a refresh given an authority's
 * key re-signs that list's role, which vouches for the list as of now. */
static enum posgate_err
touch_authority_roles(struct tuf_writer *w, const struct keyring *kr)
{
    char role[TUF_WRITER_ROLE_MAX + 1];
    enum posgate_err err;

    for (size_t i = 0; i < kr->nauth; i++) {
        snprintf(role, sizeof role, "%s%.*s", ROLE_PREFIX, FEED_NAME_ID_MAX, kr->auth[i].list);
        err = tuf_writer_touch(w, role);
        if (err != POSGATE_OK) {
            die_msg("--authority-key for list %s: %s", kr->auth[i].list, tuf_writer_errmsg(w));
            return err;
        }
    }
    return POSGATE_OK;
}

static int
cmd_refresh(int argc, char **argv)
{
    struct opt o[] = {{"state", 1, 0, {0}, 0},
                      {"out", 1, 0, {0}, 0},
                      {"expires", 1, 0, {0}, 0},
                      {"authority-key", 1, 1, {0}, 0}};
    struct pub_state s;
    struct tuf_writer *w = NULL;
    struct keyring kr;
    int help;
    int64_t expires, v = 0;
    enum posgate_err err;

    memset(&s, 0, sizeof s);
    memset(&kr, 0, sizeof kr);
    if (parse_opts(argc, argv, o, sizeof o / sizeof o[0], &help) != 0) {
        usage_refresh(stderr);
        return EXIT_USAGE;
    }
    if (help) {
        usage_refresh(stdout);
        return EXIT_OK;
    }
    if (require(&o[0], "refresh") || require(&o[1], "refresh")) {
        return EXIT_USAGE;
    }
    err = parse_expires(&o[2], &expires);
    if (err == POSGATE_OK) {
        err = pub_state_load(optv(&o[0]), &s);
    }
    if (err == POSGATE_OK) {
        err = keyring_load(&s, &o[3], &kr);
    }
    if (err == POSGATE_OK) {
        err = check_resign(&s, &kr);
    }
    if (err == POSGATE_OK) {
        err = signed_cfg_require(&s);
    }
    if (err == POSGATE_OK) {
        err = open_writer(&s, &w);
    }
    if (err == POSGATE_OK) {
        err = set_lifetimes(w, expires);
    }
    if (err == POSGATE_OK) {
        err = touch_authority_roles(w, &kr);
    }
    if (err == POSGATE_OK) {
        err = publish_repo(w, optv(&o[1]), &kr);
    }
    if (err == POSGATE_OK) {
        err = clear_resign(&s, &kr);
    }
    if (err == POSGATE_OK && tuf_writer_role_version(w, "timestamp", &v) == POSGATE_OK) {
        fprintf(stderr, "%s: timestamp version %" PRId64 " written to %s\n", prog, v, optv(&o[1]));
    }
    tuf_writer_free(w);
    keyring_cleanup(&kr);
    pub_state_cleanup(&s);
    return exit_for(err);
}

/* ------------------------------------------------------------------------------------------ */
/* delegate */

static void
usage_delegate(FILE *f)
{
    fprintf(
        f, "usage: posgate-publish delegate --state DIR --list ID --key AUTH.pub [--key ...]\n"
           "                                --threshold N\n"
           "Delegates the targets lists/ID/* to the list's issuing authority: from now on only\n"
           "a threshold of the authority's keys can change the list (role \"" ROLE_PREFIX "ID\"),\n"
           "so the next update needs --authority-key ID=KEY.key. The list's current\n"
           "targets move into the delegated role. Nothing is published until then.\n"
           "Exit: 0 ok, 2 invalid input, 5 I/O.\n");
}

struct move_ctx {
    const char *prefix;
    size_t n;
    char names[KEEP_DELTAS + 4][256];
    char stored[KEEP_DELTAS + 4][PATH_CAP];
    char custom[KEEP_DELTAS + 4][1024];
};

static enum posgate_err
collect_target(void *ctx, const struct tuf_writer_target *t)
{
    struct move_ctx *m = ctx;

    if (strncmp(t->name, m->prefix, strlen(m->prefix)) != 0) {
        return POSGATE_OK;
    }
    if (m->n == KEEP_DELTAS + 4 || strlen(t->name) >= 256 || strlen(t->stored_path) >= PATH_CAP ||
        (t->custom_json != NULL && strlen(t->custom_json) >= 1024)) {
        return POSGATE_ERR_TOOBIG;
    }
    snprintf(m->names[m->n], 256, "%s", t->name);
    snprintf(m->stored[m->n], PATH_CAP, "%s", t->stored_path);
    snprintf(m->custom[m->n], 1024, "%s", t->custom_json != NULL ? t->custom_json : "");
    m->n++;
    return POSGATE_OK;
}

static int
cmd_delegate(int argc, char **argv)
{
    struct opt o[] = {{"state", 1, 0, {0}, 0},
                      {"list", 1, 0, {0}, 0},
                      {"key", 1, 1, {0}, 0},
                      {"threshold", 1, 0, {0}, 0}};
    struct pub_state s;
    struct tuf_writer *w = NULL;
    struct pub_list *pl;
    struct buf pems[MAX_ROOT_KEYS];
    const char *pem_ptrs[MAX_ROOT_KEYS];
    const char *paths[1];
    char pattern[128], role[TUF_WRITER_ROLE_MAX + 1], prefix[128], workdir[PATH_CAP];
    char keyid[TUF_WRITER_KEYID_LEN + 1], *end = NULL;
    struct tuf_writer_delegation d;
    struct move_ctx *mv = NULL;
    unsigned long thr;
    int help;
    size_t i;
    enum posgate_err err = POSGATE_ERR_USAGE;

    memset(&s, 0, sizeof s);
    for (i = 0; i < MAX_ROOT_KEYS; i++) {
        buf_init(&pems[i], CRYPTO_PEM_MAX);
    }
    if (parse_opts(argc, argv, o, sizeof o / sizeof o[0], &help) != 0) {
        usage_delegate(stderr);
        return EXIT_USAGE;
    }
    if (help) {
        usage_delegate(stdout);
        return EXIT_OK;
    }
    for (i = 0; i < 4; i++) {
        if (require(&o[i], "delegate") != 0) {
            return EXIT_USAGE;
        }
    }
    errno = 0;
    thr = strtoul(optv(&o[3]), &end, 10);
    if (errno != 0 || end == optv(&o[3]) || *end != '\0' || thr < 1 || thr > o[2].count) {
        die_msg("--threshold \"%s\": expected a number from 1 to %zu (the number of keys)",
                optv(&o[3]), o[2].count);
        return EXIT_USAGE;
    }
    err = pub_state_load(optv(&o[0]), &s);
    if (err != POSGATE_OK) {
        goto out;
    }
    pl = pub_find(&s, optv(&o[1]));
    if (pl == NULL) {
        die_msg("--list \"%s\": not a list of the feed config", optv(&o[1]));
        err = POSGATE_ERR_INVALID;
        goto out;
    }
    for (i = 0; i < o[2].count; i++) {
        err = plat_read_file(o[2].values[i], &pems[i]);
        if (err == POSGATE_OK) {
            err = tuf_writer_keyid_pem(buf_cstr(&pems[i]), keyid);
        }
        if (err != POSGATE_OK) {
            die_msg("--key %s: %s (expected a PEM ECDSA P-256 or RSA public key, PREFIX.pub "
                    "from posgate-keygen)",
                    o[2].values[i], posgate_strerror(err));
            goto out;
        }
        pem_ptrs[i] = buf_cstr(&pems[i]);
    }
    snprintf(pattern, sizeof pattern, "lists/%s/*", pl->id);
    snprintf(prefix, sizeof prefix, "lists/%s/", pl->id);
    snprintf(role, sizeof role, ROLE_PREFIX "%s", pl->id);
    paths[0] = pattern;
    memset(&d, 0, sizeof d);
    d.delegator = "targets";
    d.name = role;
    d.paths = paths;
    d.path_count = 1;
    d.keys.public_pems = pem_ptrs;
    d.keys.count = o[2].count;
    d.keys.threshold = (unsigned)thr;
    d.terminating = 1;
    err = open_writer(&s, &w);
    if (err != POSGATE_OK) {
        goto out;
    }
    err = tuf_writer_delegate(w, &d);
    if (err != POSGATE_OK) {
        die_msg("cannot delegate %s: %s", pattern, tuf_writer_errmsg(w));
        goto out;
    }
    /* move the list's targets from the top-level role into the delegated one */
    if (strcmp(pl->role, "targets") == 0) {
        mv = plat_calloc(1, sizeof *mv);
        if (mv == NULL) {
            err = POSGATE_ERR_NOMEM;
            goto out;
        }
        mv->prefix = prefix;
        err = tuf_writer_foreach_target(w, "targets", collect_target, mv);
        if (err != POSGATE_OK) {
            die_msg("cannot list the targets of list %s: %s", pl->id, posgate_strerror(err));
            goto out;
        }
        err = pathf(workdir, sizeof workdir, "%s/work", s.dir);
        if (err == POSGATE_OK) {
            remove_dir(workdir);
            err = plat_mkdir_p(workdir, 0700);
        }
        for (i = 0; i < mv->n && err == POSGATE_OK; i++) {
            char tmp[PATH_CAP];

            err = pathf(tmp, sizeof tmp, "%s/move-%zu", workdir, i);
            if (err == POSGATE_OK) {
                err = copy_file(mv->stored[i], tmp);
            }
            if (err == POSGATE_OK) {
                err = tuf_writer_remove_target(w, "targets", mv->names[i]);
            }
            if (err == POSGATE_OK) {
                err = tuf_writer_add_target(w, role, mv->names[i], tmp,
                                            mv->custom[i][0] != '\0' ? mv->custom[i] : NULL);
            }
            if (err != POSGATE_OK) {
                die_msg("cannot move %s into role %s: %s", mv->names[i], role,
                        tuf_writer_errmsg(w));
            }
        }
        if (err != POSGATE_OK) {
            goto out;
        }
    }
    snprintf(pl->role, sizeof pl->role, "%s", role);
    pl->auth_threshold = (unsigned)thr;
    pl->resign = 1;
    err = tuf_writer_save(w);
    if (err != POSGATE_OK) {
        die_msg("cannot save the TUF writer state: %s", tuf_writer_errmsg(w));
        goto out;
    }
    err = pub_state_save(&s);
    if (err != POSGATE_OK) {
        goto out;
    }
    printf("delegated %s to role %s: %zu key(s), threshold %lu%s\n", pattern, role, o[2].count, thr,
           mv != NULL && mv->n > 0 ? "; its targets moved into the role" : "");
    printf("the next update needs --authority-key %s=KEY.key (its authority signs the list's "
           "configuration too)\n",
           pl->id);
out:
    if (mv != NULL && workdir[0] != '\0') {
        remove_dir(workdir);
    }
    plat_free(mv);
    tuf_writer_free(w);
    for (i = 0; i < MAX_ROOT_KEYS; i++) {
        buf_free(&pems[i]);
    }
    pub_state_cleanup(&s);
    return exit_for(err);
}

/* ------------------------------------------------------------------------------------------ */
/* bundle */

static void
usage_bundle(FILE *f)
{
    fprintf(f, "usage: posgate-publish bundle --feed FEEDDIR --out FILE\n"
               "Writes one file for a USB stick holding what a kiosk needs from the feed: every\n"
               "root version (so an old kiosk can walk the chain), the current timestamp,\n"
               "snapshot, targets and delegated roles, and every target they list (the feed\n"
               "config, each list's current snapshot and its listed deltas). Nothing is verified\n"
               "here: the kiosk verifies the bundle exactly like a feed directory.\n"
               "Exit: 0 ok, 2 invalid input, 5 I/O.\n");
}

struct bundle_list {
    struct bundle_item *items;
    char **owned;
    size_t n, cap;
};

static enum posgate_err
bl_add(struct bundle_list *bl, const char *feed, const char *rel)
{
    char src[PATH_CAP];
    enum posgate_err err;
    size_t i;

    for (i = 0; i < bl->n; i++) {
        if (strcmp(bl->items[i].path, rel) == 0) {
            return POSGATE_OK;
        }
    }
    err = pathf(src, sizeof src, "%s/%s", feed, rel);
    if (err != POSGATE_OK) {
        return err;
    }
    if (!plat_exists(src)) {
        die_msg("the feed lacks %s (expected by its metadata)", src);
        return POSGATE_ERR_NOTFOUND;
    }
    if (bl->n + 1 > bl->cap) {
        size_t nc = bl->cap == 0 ? 64 : bl->cap * 2;
        struct bundle_item *ni = plat_realloc(bl->items, nc * sizeof *ni);
        char **no;

        if (ni == NULL) {
            return POSGATE_ERR_NOMEM;
        }
        bl->items = ni;
        no = plat_realloc(bl->owned, nc * 2 * sizeof *no);
        if (no == NULL) {
            return POSGATE_ERR_NOMEM;
        }
        bl->owned = no;
        bl->cap = nc;
    }
    bl->owned[2 * bl->n] = plat_strdup(rel);
    bl->owned[2 * bl->n + 1] = plat_strdup(src);
    if (bl->owned[2 * bl->n] == NULL || bl->owned[2 * bl->n + 1] == NULL) {
        plat_free(bl->owned[2 * bl->n]);
        plat_free(bl->owned[2 * bl->n + 1]);
        return POSGATE_ERR_NOMEM;
    }
    bl->items[bl->n].path = bl->owned[2 * bl->n];
    bl->items[bl->n].src_path = bl->owned[2 * bl->n + 1];
    bl->n++;
    return POSGATE_OK;
}

static void
bl_cleanup(struct bundle_list *bl)
{
    size_t i;

    for (i = 0; i < 2 * bl->n; i++) {
        plat_free(bl->owned[i]);
    }
    plat_free(bl->owned);
    plat_free(bl->items);
    memset(bl, 0, sizeof *bl);
}

static enum posgate_err
load_meta(const char *feed, const char *rel, enum tuf_role_type type, struct tuf_meta **m)
{
    char p[PATH_CAP], msg[TUF_ERRMSG_MAX];
    struct buf raw = BUF_INIT(TUF_META_MAX_LEN);
    enum posgate_err err = pathf(p, sizeof p, "%s/%s", feed, rel);

    if (err == POSGATE_OK) {
        err = plat_read_file(p, &raw);
        if (err != POSGATE_OK) {
            die_msg("cannot read %s: %s", p, posgate_strerror(err));
        }
    }
    if (err == POSGATE_OK) {
        err = tuf_meta_parse(raw.data, raw.len, type, m, msg, sizeof msg);
        if (err != POSGATE_OK) {
            die_msg("%s: %s", p, msg);
        }
    }
    buf_free(&raw);
    return err;
}

/* Adds the targets a targets role lists, under their consistent-snapshot names. */
static enum posgate_err
add_role_targets(struct bundle_list *bl, const char *feed, const struct tuf_meta *m)
{
    size_t i;
    enum posgate_err err = POSGATE_OK;

    for (i = 0; i < m->ntargets && err == POSGATE_OK; i++) {
        const struct tuf_target *t = &m->targets[i];
        const char *slash = strrchr(t->name, '/');
        char hex[CRYPTO_SHA256_LEN * 2 + 1], rel[PATH_CAP];

        if (!t->hashes.has_sha256) {
            die_msg("target %s lists no sha256", t->name);
            return POSGATE_ERR_UNSUPPORTED;
        }
        crypto_hex(t->hashes.sha256, CRYPTO_SHA256_LEN, hex);
        if (slash != NULL) {
            err = pathf(rel, sizeof rel, "targets/%.*s/%s.%s", (int)(slash - t->name), t->name, hex,
                        slash + 1);
        } else {
            err = pathf(rel, sizeof rel, "targets/%s.%s", hex, t->name);
        }
        if (err == POSGATE_OK) {
            err = bl_add(bl, feed, rel);
        }
    }
    return err;
}

static int
cmd_bundle(int argc, char **argv)
{
    struct opt o[] = {{"feed", 1, 0, {0}, 0}, {"out", 1, 0, {0}, 0}};
    struct bundle_list bl;
    struct tuf_meta *ts = NULL, *snap = NULL, *tm = NULL;
    const struct tuf_meta_file *mf;
    char rel[PATH_CAP], p[PATH_CAP], msg[BUNDLE_ERRMSG_MAX];
    const char *feed;
    int help;
    size_t i;
    int64_t n;
    enum posgate_err err;

    memset(&bl, 0, sizeof bl);
    if (parse_opts(argc, argv, o, 2, &help) != 0) {
        usage_bundle(stderr);
        return EXIT_USAGE;
    }
    if (help) {
        usage_bundle(stdout);
        return EXIT_OK;
    }
    if (require(&o[0], "bundle") || require(&o[1], "bundle")) {
        return EXIT_USAGE;
    }
    feed = optv(&o[0]);
    /* every root version, from 1 up to the first gap */
    for (n = 1;; n++) {
        err = pathf(rel, sizeof rel, "metadata/%" PRId64 ".root.json", n);
        if (err != POSGATE_OK) {
            goto out;
        }
        err = pathf(p, sizeof p, "%s/%s", feed, rel);
        if (err != POSGATE_OK) {
            goto out;
        }
        if (!plat_exists(p)) {
            break;
        }
        err = bl_add(&bl, feed, rel);
        if (err != POSGATE_OK) {
            goto out;
        }
    }
    if (n == 1) {
        die_msg("%s/metadata/1.root.json is missing: not a published feed directory", feed);
        err = POSGATE_ERR_NOTFOUND;
        goto out;
    }
    err = bl_add(&bl, feed, "metadata/timestamp.json");
    if (err == POSGATE_OK) {
        err = load_meta(feed, "metadata/timestamp.json", TUF_ROLE_TIMESTAMP, &ts);
    }
    if (err != POSGATE_OK) {
        goto out;
    }
    mf = tuf_meta_find_meta(ts, "snapshot.json");
    if (mf == NULL) {
        die_msg("timestamp.json names no snapshot.json");
        err = POSGATE_ERR_PARSE;
        goto out;
    }
    err = pathf(rel, sizeof rel, "metadata/%" PRId64 ".snapshot.json", mf->version);
    if (err == POSGATE_OK) {
        err = bl_add(&bl, feed, rel);
    }
    if (err == POSGATE_OK) {
        err = load_meta(feed, rel, TUF_ROLE_SNAPSHOT, &snap);
    }
    if (err != POSGATE_OK) {
        goto out;
    }
    for (i = 0; i < snap->nmeta; i++) {
        const struct tuf_meta_file *f = &snap->meta[i];

        err = pathf(rel, sizeof rel, "metadata/%" PRId64 ".%s", f->version, f->name);
        if (err == POSGATE_OK) {
            err = bl_add(&bl, feed, rel);
        }
        if (err == POSGATE_OK) {
            err = load_meta(feed, rel, TUF_ROLE_TARGETS, &tm);
        }
        if (err == POSGATE_OK) {
            err = add_role_targets(&bl, feed, tm);
        }
        tuf_meta_free(tm);
        tm = NULL;
        if (err != POSGATE_OK) {
            goto out;
        }
    }
    err = bundle_write(optv(&o[1]), bl.items, bl.n, msg, sizeof msg);
    if (err != POSGATE_OK) {
        die_msg("%s", msg);
        goto out;
    }
    printf("wrote %s: %zu files\n", optv(&o[1]), bl.n);
out:
    tuf_meta_free(ts);
    tuf_meta_free(snap);
    bl_cleanup(&bl);
    return exit_for(err);
}

/* ------------------------------------------------------------------------------------------ */

static void
usage(FILE *f)
{
    fprintf(f, "usage: posgate-publish COMMAND [options]   (COMMAND --help for details)\n"
               "  init      create the publisher state: keys, thresholds, feed config, list key\n"
               "  update    publish entries.csv: new snapshots and deltas of changed lists\n"
               "  refresh   re-sign the timestamp, no list change\n"
               "  status    each role's version, expiry, keys and delegations; warns before expiry\n"
               "  delegate  hand lists/<id>/* to the issuing authority's keys\n"
               "  bundle    one file with the feed's metadata and targets, for a USB stick\n"
               "  rotate    change a top-level role's keys or threshold in a new root version\n"
               "  authorize record a delegated list's authority keys in a new root version\n"
               "  export    write a role's next version unsigned, for signers elsewhere\n"
               "  sign      add one key's signature to an exported role (no state needed)\n"
               "  add-signatures  install a role signed elsewhere (threshold checked)\n"
               "Exit: 0 ok, 2 usage or invalid input, 4 refused, 5 I/O.\n");
}

int
main(int argc, char **argv)
{
    json_init_hooks();
    if (version_asked(argc, argv)) {
        version_print(stdout, "posgate-publish", VERSION_MBEDTLS | VERSION_CJSON | VERSION_UTF8PROC,
                      NULL);
        return EXIT_OK;
    }
    if (argc < 2) {
        usage(stderr);
        return EXIT_USAGE;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        usage(stdout);
        return EXIT_OK;
    }
    if (strcmp(argv[1], "init") == 0) {
        return cmd_init(argc - 2, argv + 2);
    }
    if (strcmp(argv[1], "update") == 0) {
        return cmd_update(argc - 2, argv + 2);
    }
    if (strcmp(argv[1], "refresh") == 0) {
        return cmd_refresh(argc - 2, argv + 2);
    }
    if (strcmp(argv[1], "status") == 0) {
        return publish_status_main(argc - 2, argv + 2);
    }
    if (strcmp(argv[1], "delegate") == 0) {
        return cmd_delegate(argc - 2, argv + 2);
    }
    if (strcmp(argv[1], "bundle") == 0) {
        return cmd_bundle(argc - 2, argv + 2);
    }
    if (strcmp(argv[1], "rotate") == 0) {
        return publish_cmd_rotate(argc - 2, argv + 2);
    }
    if (strcmp(argv[1], "authorize") == 0) {
        return publish_cmd_authorize(argc - 2, argv + 2);
    }
    if (strcmp(argv[1], "export") == 0) {
        return publish_cmd_export(argc - 2, argv + 2);
    }
    if (strcmp(argv[1], "sign") == 0) {
        return publish_cmd_sign(argc - 2, argv + 2);
    }
    if (strcmp(argv[1], "add-signatures") == 0) {
        return publish_cmd_add_signatures(argc - 2, argv + 2);
    }
    die_msg("unknown command \"%s\"", argv[1]);
    usage(stderr);
    return EXIT_USAGE;
}
