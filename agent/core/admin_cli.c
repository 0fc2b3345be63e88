/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The posgate command line's admin calls (posgate_admin.h) for init, compact, check, status and
 * verify: the parts of those commands that reach into the data dir, the store and the trusted
 * metadata. The update calls are in admin_cli_update.c, the audit reads in admin_cli_audit.c,
 * field-sync's stick exchange in admin_cli_stick.c.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "api_internal.h"
#include "datadir.h"
#include "feed_config.h"
#include "list_key.h"
#include "plat_clock.h"
#include "plat_file.h"
#include "plat_mem.h"
#include "posgate_admin.h"
#include "store.h"
#include "tuf_client.h"
#include "update.h"
#include "version.h"

_Static_assert(POSGATE_CLI_PATH_MAX == DATADIR_PATH_MAX, "posgate_admin.h: data dir paths");
_Static_assert(POSGATE_CLI_JURISDICTIONS_MAX == STORE_JURISDICTIONS_MAX,
               "posgate_admin.h: jurisdictions");
_Static_assert(POSGATE_CLI_KEY_CHECK_LEN == LIST_KEY_CHECK_HEX, "posgate_admin.h: key check");
_Static_assert(sizeof(((struct posgate_cli_status_list *)0)->id) == FEED_LIST_ID_MAX + 1,
               "posgate_admin.h: list ids");
_Static_assert(sizeof(((struct posgate_cli_status_list *)0)->digest) == STATE_DIGEST_HEX_LEN + 1,
               "posgate_admin.h: list digests");

int
posgate_cli_version(int argc, char **argv, FILE *out)
{
    if (!version_asked(argc, argv)) {
        return 0;
    }
    version_print(
        out, "posgate",
        VERSION_MBEDTLS | VERSION_SQLITE | VERSION_CURL | VERSION_CJSON | VERSION_UTF8PROC, NULL);
    return 1;
}

enum posgate_err
posgate_cli_data_dir(const char *data_dir, char root[POSGATE_CLI_PATH_MAX])
{
    struct datadir dd;
    enum posgate_err err = datadir_init(&dd, data_dir);

    if (err == POSGATE_OK) {
        memcpy(root, dd.root, sizeof(dd.root));
    }
    return err;
}

/* ---- init ---- */

/* The store of a new data dir, holding the gate jurisdictions. */
static enum posgate_err
init_store(const struct datadir *dd, const char *const *jur, size_t njur, char *msg, size_t cap)
{
    struct store *st = NULL;
    struct store_update *u = NULL;
    char why[1024];
    enum posgate_err err;

    err = store_open(dd->store, STORE_CREATE, &st, why, sizeof(why));
    if (err == POSGATE_OK) {
        err = store_begin_update(st, &u);
    }
    if (err == POSGATE_OK) {
        err = store_update_set_jurisdictions(u, jur, njur);
    }
    if (err == POSGATE_OK) {
        err = store_update_commit(u);
        u = NULL;
    }
    if (err != POSGATE_OK) {
        if (st != NULL) {
            snprintf(msg, cap, "store %s: %s", dd->store, store_errmsg(st));
        } else {
            snprintf(msg, cap, "%s", why); /* store_open names the file */
        }
        err = POSGATE_ERR_IO;
    }
    store_update_abort(u);
    store_close(st);
    return err;
}

/* The trusted root, the list key and the device key into the data dir (made here). */
static enum posgate_err
init_files(const struct datadir *dd, const char *root, const void *rootb, size_t rootlen,
           const uint8_t *key, size_t keylen, char *msg, size_t cap)
{
    char why[1024];
    enum posgate_err err;

    if (plat_mkdir_p(dd->root, 0700) != POSGATE_OK || chmod(dd->root, 0700) != 0) {
        snprintf(msg, cap, "cannot create %s", dd->root);
        return POSGATE_ERR_IO;
    }
    err = tuf_client_bootstrap(dd->tuf, rootb, rootlen, why, sizeof(why));
    if (err != POSGATE_OK) {
        snprintf(msg, cap, "root %s refused: %s", root, why);
        return err == POSGATE_ERR_IO ? POSGATE_ERR_IO : POSGATE_ERR_REJECTED;
    }
    err = plat_write_atomic(dd->list_key, key, keylen, 0600);
    if (err != POSGATE_OK) {
        snprintf(msg, cap, "cannot write %s: %s", dd->list_key, posgate_strerror(err));
        return POSGATE_ERR_IO;
    }
    if (!plat_exists(dd->device_key) &&
        device_key_create(dd->device_key, dd->device_pub, why, sizeof(why)) != POSGATE_OK) {
        snprintf(msg, cap, "%s", why);
        return POSGATE_ERR_IO;
    }
    return POSGATE_OK;
}

enum posgate_err
posgate_cli_init(const char *data_dir, const char *root_file, const char *list_key_file,
                 const char *const *jurisdictions, size_t n,
                 char fingerprint[POSGATE_CLI_KEY_CHECK_LEN + 1], char *msg, size_t cap)
{
    struct datadir dd;
    struct buf rootb = BUF_INIT(TUF_DEFAULT_ROOT_MAX_LEN);
    uint8_t key[LIST_KEY_LEN];
    char why[1024];
    enum posgate_err err;

    msg[0] = 0;
    if (datadir_init(&dd, data_dir) != POSGATE_OK) {
        snprintf(msg, cap, "data dir path too long");
        return POSGATE_ERR_USAGE;
    }
    if (plat_exists(dd.store)) {
        snprintf(msg, cap, "%s is already initialised (remove it to start over)", dd.root);
        return POSGATE_ERR_USAGE;
    }
    err = datadir_read_list_key(list_key_file, key, why, sizeof(why));
    if (err != POSGATE_OK) {
        snprintf(msg, cap, "%s", why);
        return err == POSGATE_ERR_INVALID ? POSGATE_ERR_USAGE : POSGATE_ERR_IO;
    }
    err = list_key_check_raw(key, sizeof(key), fingerprint);
    if (err != POSGATE_OK) {
        snprintf(msg, cap, "%s", posgate_strerror(err));
        err = POSGATE_ERR_IO;
        goto out;
    }
    err = plat_read_file(root_file, &rootb);
    if (err != POSGATE_OK) {
        snprintf(msg, cap, "root %s: %s", root_file, posgate_strerror(err));
        err = err == POSGATE_ERR_NOTFOUND ? POSGATE_ERR_USAGE : POSGATE_ERR_IO;
        goto out;
    }
    err = init_files(&dd, root_file, rootb.data, rootb.len, key, sizeof(key), msg, cap);
    if (err == POSGATE_OK) {
        err = init_store(&dd, jurisdictions, n, msg, cap);
    }
out:
    plat_wipe(key, sizeof(key));
    buf_free(&rootb);
    return err;
}

/* ---- compact ---- */

enum posgate_err
posgate_cli_compact(const char *data_dir, uint64_t *merged_rows, uint64_t *filter_keys, char *msg,
                    size_t cap)
{
    *merged_rows = 0;
    *filter_keys = 0;
    return update_compact(data_dir, NULL, NULL, merged_rows, filter_keys, msg, cap);
}

/* ---- check ---- */

enum posgate_err
posgate_cli_result_footing(const struct posgate_result *res, int64_t *feed_version,
                           struct buf *line)
{
    const struct engine_result *e = &res->eng;
    char at[32], age[32];
    int stale = 0;
    enum posgate_err err;

    *feed_version = res->feed_version;
    buf_reset(line);
    plat_time_format(res->at, at, sizeof(at));
    if (e->data_age_s < 0) {
        snprintf(age, sizeof(age), "unknown");
    } else {
        snprintf(age, sizeof(age), "%lld s", (long long)e->data_age_s);
    }
    err = buf_printf(
        line, "footing: service date %s, data age %s, feed %s, list key %s, stale lists:", at, age,
        res->expires_at != 0 && res->checked_now >= res->expires_at ? "EXPIRED" : "signed, valid",
        res->list_key != NULL ? res->list_key : "none");
    for (size_t i = 0; err == POSGATE_OK && i < e->n_reasons; i++) {
        if (e->reasons[i].kind == ENGINE_REASON_STALE && e->reasons[i].list_id != NULL) {
            err = buf_printf(line, " %s", e->reasons[i].list_id);
            stale = 1;
        }
    }
    if (err == POSGATE_OK) {
        err = buf_printf(line, "%s\n", stale ? "" : " none");
    }
    return err;
}

enum posgate_err
posgate_cli_error_json(enum posgate_err err, const char *field, const char *msg, struct buf *out)
{
    char derived[64];

    if (field == NULL && err == POSGATE_ERR_INVALID) {
        report_error_field(msg, derived, sizeof(derived));
        field = derived;
    }
    buf_reset(out);
    return report_error_json(err, field, msg, out);
}

/* ---- status and verify ---- */

/* Compares the installed feed config's list key check value with key_check (list_key.h).
 * OK when they match or no feed is installed (*installed 0); CORRUPT with msg when they differ
 * or the installed config has none; other errors when the config cannot be read. */
static enum posgate_err
installed_key_matches(struct store *st, const char *key_check, int *installed, char *msg,
                      size_t cap)
{
    struct buf json = BUF_INIT(FEED_CONFIG_MAX_BYTES);
    struct feed_config *cfg = NULL;
    enum posgate_err err;

    *installed = 0;
    err = store_get_config(st, &json);
    if (err == POSGATE_ERR_NOTFOUND) {
        err = POSGATE_OK;
        goto out;
    }
    if (err == POSGATE_OK) {
        err = feed_config_parse(json.data, json.len, 0, &cfg, msg, cap);
    }
    if (err != POSGATE_OK) {
        snprintf(msg, cap, "the installed feed config cannot be read: %s", posgate_strerror(err));
        err = POSGATE_ERR_CORRUPT;
        goto out;
    }
    *installed = 1;
    if (list_key_check_match(cfg->list_key_check, key_check, msg, cap) != POSGATE_OK) {
        err = POSGATE_ERR_CORRUPT;
    }
out:
    feed_config_free(cfg);
    buf_free(&json);
    return err;
}

/* The installed feed config, or NULL when none or unreadable (the list key line says which). */
static struct feed_config *
installed_config(struct store *st)
{
    struct buf json = BUF_INIT(FEED_CONFIG_MAX_BYTES);
    struct feed_config *cfg = NULL;

    if (store_get_config(st, &json) != POSGATE_OK ||
        feed_config_parse(json.data, json.len, 0, &cfg, NULL, 0) != POSGATE_OK) {
        cfg = NULL;
    }
    buf_free(&json);
    return cfg;
}

/* The lists of a status, with their staleness at out->now by the installed config. */
static void
status_lists(struct store *st, const struct store_list *lists, size_t n, const struct store_meta *m,
             struct posgate_cli_status *out)
{
    struct feed_config *cfg = installed_config(st);

    out->n_lists = n;
    for (size_t i = 0; i < n && i < POSGATE_CLI_STATUS_LISTS; i++) {
        struct posgate_cli_status_list *l = &out->lists[i];
        int64_t fresh = store_list_fresh_at(&lists[i], m);
        int li = cfg != NULL ? feed_config_list_find(cfg, lists[i].id) : -1;

        memcpy(l->id, lists[i].id, sizeof(l->id));
        memcpy(l->digest, lists[i].digest, sizeof(l->digest));
        l->seq = lists[i].seq;
        l->entries = lists[i].entries;
        l->fresh_at = fresh;
        l->stale = li >= 0 && out->now - fresh > cfg->lists[li].stale_after_s;
    }
    feed_config_free(cfg);
}

enum posgate_err
posgate_cli_status(struct posgate *pg, struct posgate_cli_status *out, char *msg, size_t cap)
{
    struct store_meta m;
    struct store_list lists[POSGATE_CLI_STATUS_LISTS];
    size_t n = 0;
    enum store_filter_state fs;
    struct audit_stats as;
    int installed = 0;

    memset(out, 0, sizeof(*out));
    out->now = plat_wall_s();
    if (store_get_meta(pg->st, &m) != POSGATE_OK ||
        store_get_lists(pg->st, lists, POSGATE_CLI_STATUS_LISTS, &n) != POSGATE_OK) {
        snprintf(msg, cap, "%s", store_errmsg(pg->st));
        return POSGATE_ERR_IO;
    }
    memcpy(out->data_dir, pg->dd.root, sizeof(out->data_dir));
    out->feed_version = m.feed_version;
    out->root_version = m.root_version;
    out->issued_at = m.issued_at;
    out->installed_at = m.installed_at;
    out->expires_at = m.expires_at;
    out->newest_issue_seen = m.newest_issue_seen;
    out->n_jurisdictions = m.n_jurisdictions;
    memcpy(out->jurisdictions, m.jurisdictions, sizeof(out->jurisdictions));
    memcpy(out->key_check, pg->key_check, sizeof(out->key_check));
    out->key_ok = installed_key_matches(pg->st, pg->key_check, &installed, out->key_msg,
                                        sizeof(out->key_msg)) == POSGATE_OK;
    out->key_installed = installed;
    if (store_filter_check(pg->st, &fs, NULL) == POSGATE_OK) {
        out->key_filter = store_filter_state_name(fs);
        out->key_filter_ok = fs == STORE_FILTER_OK;
    }
    out->disk_full = audit_stats(pg->audit, &as) == POSGATE_OK && as.disk_full;
    out->meta_disagrees =
        api_meta_disagreement(pg, &m, out->meta_msg, sizeof(out->meta_msg)) != NULL;
    status_lists(pg->st, lists, n, &m, out);
    return POSGATE_OK;
}

/* The trusted metadata verify, and the installed feed is keyed with the data dir's list key. */
static enum posgate_err
verify_keys(const struct datadir *dd, struct store *st, char *msg, size_t cap)
{
    struct tuf_client_options o;
    struct tuf_client *tc = NULL;
    char mine[LIST_KEY_CHECK_HEX + 1];
    int installed = 0;
    enum posgate_err err;

    memset(&o, 0, sizeof(o));
    o.metadata_dir = dd->tuf;
    err = tuf_client_new(&o, &tc);
    tuf_client_free(tc);
    if (err != POSGATE_OK) {
        snprintf(msg, cap, "trusted metadata in %.900s does not verify", dd->tuf);
        return POSGATE_ERR_CORRUPT;
    }
    /* the installed feed must be keyed with the list key in the data dir, or every check
     * is refused (someone replaced list.key, or the feed came from another publisher) */
    err = datadir_list_key_check(dd->list_key, mine, msg, cap);
    if (err == POSGATE_ERR_INVALID) {
        err = POSGATE_ERR_CORRUPT;
    }
    if (err == POSGATE_OK) {
        err = installed_key_matches(st, mine, &installed, msg, cap);
    }
    return err;
}

enum posgate_err
posgate_cli_verify(const char *data_dir, size_t *n_lists, char *msg, size_t cap)
{
    struct datadir dd;
    struct store *st = NULL;
    struct store_list lists[STORE_LISTS_MAX];
    enum posgate_err err;

    *n_lists = 0;
    msg[0] = 0;
    err = datadir_init(&dd, data_dir);
    if (err != POSGATE_OK) {
        return err;
    }
    err = store_open(dd.store, STORE_READONLY, &st, msg, cap);
    if (err == POSGATE_OK) {
        msg[0] = 0;
        err = store_verify(st, NULL, NULL, msg, cap);
    }
    if (err == POSGATE_OK) {
        err = store_get_lists(st, lists, STORE_LISTS_MAX, n_lists);
    }
    if (err == POSGATE_OK) {
        err = verify_keys(&dd, st, msg, cap);
    }
    store_close(st);
    return err;
}
