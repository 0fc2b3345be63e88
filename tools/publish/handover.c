/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The handover file (handover.h draws it): opened and checked for form, its carried targets
 * extracted while hashed, envelope signatures counted against a key list, and written; and the
 * custom metadata of a list's targets parsed. No message goes to stderr here: every function
 * says why in errmsg, so that the fuzz target can run it.
 */
#define _XOPEN_SOURCE 700
#include "handover.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "bundle.h"
#include "feed_records.h"
#include "json_canon.h"
#include "plat_clock.h"
#include "plat_file.h"
#include "plat_mem.h"
#include "tuf_meta.h"
#include "tuf_writer.h"

#define COPY_CHUNK 65536

struct handover {
    struct bundle *b;
    struct buf manifest;
    struct buf role;
    struct handover_manifest m;
    size_t first_target; /* index of the first targets/ member; count when none */
};

static enum posgate_err say(char *errmsg, size_t cap, enum posgate_err err, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static enum posgate_err
say(char *errmsg, size_t cap, enum posgate_err err, const char *fmt, ...)
{
    va_list ap;

    if (errmsg != NULL && cap > 0) {
        va_start(ap, fmt);
        vsnprintf(errmsg, cap, fmt, ap);
        va_end(ap);
    }
    return err;
}

void
handover_free(struct handover *h)
{
    if (h == NULL) {
        return;
    }
    bundle_free(h->b);
    buf_free(&h->manifest);
    buf_free(&h->role);
    plat_free(h);
}

/* 1 when s is 1 .. HANDOVER_ID_MAX bytes of [A-Za-z0-9._-] not starting with '.'. */
static int
id_ok(const char *s)
{
    size_t n = strlen(s);

    if (n == 0 || n > HANDOVER_ID_MAX || s[0] == '.') {
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        char c = s[i];

        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-')) {
            return 0;
        }
    }
    return 1;
}

/* 1 when s is 64 lower-case hex digits. */
static int
hex64_ok(const char *s)
{
    if (strlen(s) != 2 * CRYPTO_SHA256_LEN) {
        return 0;
    }
    for (size_t i = 0; s[i] != 0; i++) {
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) {
            return 0;
        }
    }
    return 1;
}

static int
get_str(const cJSON *o, const char *name, char *out, size_t cap)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);

    if (!cJSON_IsString(v) || strlen(v->valuestring) >= cap) {
        return -1;
    }
    memcpy(out, v->valuestring, strlen(v->valuestring) + 1);
    return 0;
}

/* The manifest's "signed" fields into h->m. */
static enum posgate_err
parse_manifest(struct handover *h, char *errmsg, size_t cap)
{
    struct handover_manifest *m = &h->m;
    cJSON *env = NULL;
    const cJSON *s;
    char msg[256], type[32], created[40];
    int64_t fmt;
    enum posgate_err err;

    err = json_parse_bounded(h->manifest.data, h->manifest.len, HANDOVER_MANIFEST_MAX, &env, msg,
                             sizeof msg);
    if (err != POSGATE_OK) {
        return say(errmsg, cap, POSGATE_ERR_PARSE, HANDOVER_MANIFEST ": %s", msg);
    }
    s = cJSON_GetObjectItemCaseSensitive(env, "signed");
    err = POSGATE_ERR_PARSE;
    if (!cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(env, "signatures")) || !cJSON_IsObject(s) ||
        get_str(s, "_type", type, sizeof type) != 0 || strcmp(type, HANDOVER_TYPE) != 0) {
        say(errmsg, cap, err,
            HANDOVER_MANIFEST ": expected {\"signatures\": [...], \"signed\": {\"_type\": \"" HANDOVER_TYPE
                              "\", ...}}, found something else");
        goto out;
    }
    if (json_get_int(s, "format", 0, INT32_MAX, &fmt) != POSGATE_OK) {
        say(errmsg, cap, err, HANDOVER_MANIFEST ": expected an integer \"format\", found none");
        goto out;
    }
    if (fmt != HANDOVER_FORMAT) {
        err = say(errmsg, cap, POSGATE_ERR_UNSUPPORTED,
                  HANDOVER_MANIFEST ": expected format %d, found format %lld", HANDOVER_FORMAT,
                  (long long)fmt);
        goto out;
    }
    if (get_str(s, "feed_id", m->feed_id, sizeof m->feed_id) != 0 || !id_ok(m->feed_id) ||
        get_str(s, "list", m->list, sizeof m->list) != 0 || !feed_list_id_valid(m->list) ||
        get_str(s, "role", m->role, sizeof m->role) != 0 || !id_ok(m->role)) {
        say(errmsg, cap, err,
            HANDOVER_MANIFEST ": expected \"feed_id\", \"list\" and \"role\" of 1 to %d characters "
                              "[A-Za-z0-9._-], found another value",
            HANDOVER_ID_MAX);
        goto out;
    }
    if (json_get_int(s, "base_version", 0, INT64_C(9007199254740991), &m->base_version) !=
            POSGATE_OK ||
        json_get_int(s, "version", 1, INT64_C(9007199254740992), &m->version) != POSGATE_OK ||
        m->version != m->base_version + 1) {
        say(errmsg, cap, err,
            HANDOVER_MANIFEST ": expected integers \"base_version\" N >= 0 and \"version\" N + 1, "
                              "found others");
        goto out;
    }
    if (get_str(s, "base_sha256", m->base_sha256, sizeof m->base_sha256) != 0 ||
        (m->base_version == 0 ? m->base_sha256[0] != 0 : !hex64_ok(m->base_sha256)) ||
        get_str(s, "role_sha256", m->role_sha256, sizeof m->role_sha256) != 0 ||
        !hex64_ok(m->role_sha256)) {
        say(errmsg, cap, err,
            HANDOVER_MANIFEST ": expected \"role_sha256\" and \"base_sha256\" of 64 lower-case hex "
                              "digits (\"base_sha256\" \"\" for base version 0), found others");
        goto out;
    }
    if (get_str(s, "created", created, sizeof created) != 0 ||
        plat_time_parse(created, &m->created) != POSGATE_OK) {
        say(errmsg, cap, err, HANDOVER_MANIFEST ": expected an RFC 3339 \"created\", found none");
        goto out;
    }
    err = POSGATE_OK;
out:
    cJSON_Delete(env);
    return err;
}

/* Reads member path into out, at most max bytes. */
static enum posgate_err
read_member(const struct bundle *b, const char *path, size_t max, struct buf *out, char *errmsg,
            size_t cap)
{
    const struct bundle_entry *e = bundle_find(b, path);
    enum posgate_err err;

    if (e == NULL) {
        return say(errmsg, cap, POSGATE_ERR_PARSE, "the handover lacks its %s", path);
    }
    if (e->length > max) {
        return say(errmsg, cap, POSGATE_ERR_TOOBIG, "%s: %llu bytes, at most %zu expected", path,
                   (unsigned long long)e->length, max);
    }
    buf_init(out, max);
    err = buf_reserve(out, (size_t)e->length);
    if (err == POSGATE_OK) {
        err = bundle_read(b, e, 0, out->data, (size_t)e->length);
    }
    if (err != POSGATE_OK) {
        return say(errmsg, cap, err, "cannot read %s: %s", path, posgate_strerror(err));
    }
    out->len = (size_t)e->length;
    return POSGATE_OK;
}

/* Form checks of an opened bundle (handover.h). */
static enum posgate_err
check(struct handover *h, char *errmsg, size_t cap)
{
    uint8_t sha[CRYPTO_SHA256_LEN];
    char hex[2 * CRYPTO_SHA256_LEN + 1];
    size_t n = bundle_count(h->b), tl = strlen(HANDOVER_TARGETS);
    enum posgate_err err;

    h->first_target = n;
    for (size_t i = 0; i < n; i++) {
        const char *p = bundle_entry_at(h->b, i)->path;

        if (strncmp(p, HANDOVER_TARGETS, tl) == 0 && p[tl] != 0) {
            if (h->first_target == n) {
                h->first_target = i;
            }
            continue;
        }
        if (strcmp(p, HANDOVER_MANIFEST) != 0 && strcmp(p, HANDOVER_ROLE) != 0) {
            return say(errmsg, cap, POSGATE_ERR_PARSE,
                       "the handover holds \"%.200s\"; expected only " HANDOVER_MANIFEST
                       ", " HANDOVER_ROLE " and " HANDOVER_TARGETS "<target>",
                       p);
        }
        if (h->first_target != n) {
            return say(errmsg, cap, POSGATE_ERR_PARSE, "the handover's members are out of order");
        }
    }
    err = read_member(h->b, HANDOVER_MANIFEST, HANDOVER_MANIFEST_MAX, &h->manifest, errmsg, cap);
    if (err == POSGATE_OK) {
        err = read_member(h->b, HANDOVER_ROLE, TUF_META_MAX_LEN, &h->role, errmsg, cap);
    }
    if (err == POSGATE_OK) {
        err = parse_manifest(h, errmsg, cap);
    }
    if (err != POSGATE_OK) {
        return err;
    }
    crypto_sha256(h->role.data, h->role.len, sha);
    crypto_hex(sha, sizeof sha, hex);
    if (strcmp(hex, h->m.role_sha256) != 0) {
        return say(errmsg, cap, POSGATE_ERR_BADHASH,
                   HANDOVER_ROLE " has sha256 %s, the manifest names %s", hex, h->m.role_sha256);
    }
    return POSGATE_OK;
}

static enum posgate_err
finish_open(struct handover *h, enum posgate_err err, struct handover **out, char *errmsg,
            size_t cap)
{
    if (err == POSGATE_OK) {
        err = check(h, errmsg, cap);
    }
    if (err != POSGATE_OK) {
        handover_free(h);
        return err;
    }
    *out = h;
    return POSGATE_OK;
}

enum posgate_err
handover_open(const char *path, struct handover **out, char *errmsg, size_t errcap)
{
    struct handover *h;

    if (path == NULL || out == NULL) {
        return POSGATE_ERR_INVALID;
    }
    *out = NULL;
    h = plat_calloc(1, sizeof *h);
    if (h == NULL) {
        return POSGATE_ERR_NOMEM;
    }
    return finish_open(h, bundle_open(path, &h->b, errmsg, errcap), out, errmsg, errcap);
}

enum posgate_err
handover_open_mem(const void *data, size_t len, struct handover **out, char *errmsg, size_t errcap)
{
    struct handover *h;

    if (data == NULL || out == NULL) {
        return POSGATE_ERR_INVALID;
    }
    *out = NULL;
    h = plat_calloc(1, sizeof *h);
    if (h == NULL) {
        return POSGATE_ERR_NOMEM;
    }
    return finish_open(h, bundle_open_mem(data, len, &h->b, errmsg, errcap), out, errmsg, errcap);
}

const struct handover_manifest *
handover_manifest(const struct handover *h)
{
    return &h->m;
}

const struct buf *
handover_manifest_bytes(const struct handover *h)
{
    return &h->manifest;
}

const struct buf *
handover_role_bytes(const struct handover *h)
{
    return &h->role;
}

size_t
handover_target_count(const struct handover *h)
{
    return bundle_count(h->b) - h->first_target;
}

const char *
handover_target_name(const struct handover *h, size_t i)
{
    if (i >= handover_target_count(h)) {
        return NULL;
    }
    return bundle_entry_at(h->b, h->first_target + i)->path + strlen(HANDOVER_TARGETS);
}

static const struct bundle_entry *
find_target(const struct handover *h, const char *name)
{
    char p[BUNDLE_PATH_MAX + 1];

    if (snprintf(p, sizeof p, HANDOVER_TARGETS "%s", name) >= (int)sizeof p) {
        return NULL;
    }
    return bundle_find(h->b, p);
}

int
handover_carries(const struct handover *h, const char *name)
{
    return find_target(h, name) != NULL;
}

enum posgate_err
handover_extract(const struct handover *h, const char *name, const char *dest, uint64_t *length,
                 uint8_t sha256[CRYPTO_SHA256_LEN], char *errmsg, size_t errcap)
{
    const struct bundle_entry *e = find_target(h, name);
    struct plat_atomic_file af;
    struct crypto_hash_stream *hs = NULL;
    uint8_t *chunk = NULL, sha512[CRYPTO_SHA512_LEN];
    uint64_t off = 0;
    enum posgate_err err;

    af.fd = -1;
    af.tmp_path[0] = 0;
    if (e == NULL) {
        return say(errmsg, errcap, POSGATE_ERR_NOTFOUND, "the handover does not carry %s", name);
    }
    chunk = plat_malloc(COPY_CHUNK);
    err = chunk == NULL ? POSGATE_ERR_NOMEM : crypto_hash_stream_new(&hs);
    if (err == POSGATE_OK) {
        err = plat_atomic_open(&af, dest, 0600);
    }
    while (err == POSGATE_OK && off < e->length) {
        size_t n = e->length - off < COPY_CHUNK ? (size_t)(e->length - off) : COPY_CHUNK;

        err = bundle_read(h->b, e, off, chunk, n);
        if (err == POSGATE_OK) {
            crypto_hash_stream_update(hs, chunk, n);
            err = plat_atomic_write(&af, chunk, n);
        }
        off += n;
    }
    if (err == POSGATE_OK) {
        err = plat_atomic_commit(&af);
    }
    if (err == POSGATE_OK) {
        crypto_hash_stream_finish(hs, sha256, sha512);
        *length = e->length;
    } else {
        say(errmsg, errcap, err, "cannot extract %s to %s: %s", name, dest, posgate_strerror(err));
    }
    plat_atomic_abort(&af);
    crypto_hash_stream_free(hs);
    plat_free(chunk);
    return err;
}

/* Whether sig (hex) by the key at pem verifies over canon. */
static int
sig_ok(const char *pem, const char *hex, const struct buf *canon)
{
    struct crypto_pubkey *pk = NULL;
    struct buf raw = BUF_INIT(CRYPTO_SIG_MAX);
    enum crypto_scheme scheme;
    int ok = 0;

    if (crypto_pem_scheme(pem, &scheme) == POSGATE_OK &&
        crypto_unhex(hex, strlen(hex), &raw) == POSGATE_OK &&
        crypto_pubkey_from_pem(pem, scheme, &pk) == POSGATE_OK) {
        ok = crypto_pubkey_verify(pk, canon->data, canon->len, raw.data, raw.len) == POSGATE_OK;
    }
    crypto_pubkey_free(pk);
    buf_free(&raw);
    return ok;
}

enum posgate_err
handover_count_signatures(const void *env, size_t len, const char *const *pems, size_t n,
                          unsigned *valid, char *errmsg, size_t errcap)
{
    cJSON *root = NULL;
    const cJSON *body, *sigs, *s;
    struct buf canon = BUF_INIT(TUF_META_MAX_LEN);
    char ids[TUF_WRITER_MAX_KEYS][TUF_WRITER_KEYID_LEN + 1], msg[256];
    size_t k;
    unsigned count = 0;
    enum posgate_err err;

    if (env == NULL || valid == NULL || (n > 0 && pems == NULL) || n > TUF_WRITER_MAX_KEYS) {
        return POSGATE_ERR_INVALID;
    }
    err = json_parse_bounded(env, len, TUF_META_MAX_LEN, &root, msg, sizeof msg);
    if (err != POSGATE_OK) {
        return say(errmsg, errcap, POSGATE_ERR_PARSE, "%s", msg);
    }
    body = cJSON_GetObjectItemCaseSensitive(root, "signed");
    sigs = cJSON_GetObjectItemCaseSensitive(root, "signatures");
    if (!cJSON_IsObject(body) || !cJSON_IsArray(sigs)) {
        err = say(errmsg, errcap, POSGATE_ERR_PARSE,
                  "expected {\"signatures\": [...], \"signed\": {...}}, found something else");
        goto out;
    }
    err = json_canon_encode(body, &canon);
    if (err != POSGATE_OK) {
        err = say(errmsg, errcap, POSGATE_ERR_PARSE, "its signed part has no canonical form");
        goto out;
    }
    for (k = 0; k < n; k++) {
        int seen = 0;

        if (tuf_writer_keyid_pem(pems[k], ids[k]) != POSGATE_OK) {
            ids[k][0] = 0;
            continue;
        }
        for (size_t j = 0; j < k; j++) {
            seen |= strcmp(ids[j], ids[k]) == 0;
        }
        if (seen) {
            continue; /* a key counts once */
        }
        cJSON_ArrayForEach(s, sigs)
        {
            const cJSON *id = cJSON_GetObjectItemCaseSensitive(s, "keyid");
            const cJSON *hex = cJSON_GetObjectItemCaseSensitive(s, "sig");

            /* the first signature of a keyid is its signature, as the writer's import takes it */
            if (cJSON_IsString(id) && strcmp(id->valuestring, ids[k]) == 0) {
                count += cJSON_IsString(hex) && sig_ok(pems[k], hex->valuestring, &canon);
                break;
            }
        }
    }
    *valid = count;
out:
    cJSON_Delete(root);
    buf_free(&canon);
    return err;
}

enum posgate_err
handover_manifest_json(const struct handover_manifest *m, struct buf *out)
{
    cJSON *env = cJSON_CreateObject(), *s = cJSON_CreateObject();
    char created[40];
    enum posgate_err err = POSGATE_ERR_NOMEM;

    if (env == NULL || s == NULL) {
        cJSON_Delete(s);
        goto out;
    }
    cJSON_AddItemToObject(env, "signed", s);
    plat_time_format(m->created, created, sizeof created);
    if (cJSON_AddArrayToObject(env, "signatures") == NULL ||
        cJSON_AddStringToObject(s, "_type", HANDOVER_TYPE) == NULL ||
        cJSON_AddNumberToObject(s, "format", HANDOVER_FORMAT) == NULL ||
        cJSON_AddStringToObject(s, "feed_id", m->feed_id) == NULL ||
        cJSON_AddStringToObject(s, "list", m->list) == NULL ||
        cJSON_AddStringToObject(s, "role", m->role) == NULL ||
        cJSON_AddNumberToObject(s, "base_version", (double)m->base_version) == NULL ||
        cJSON_AddStringToObject(s, "base_sha256", m->base_sha256) == NULL ||
        cJSON_AddNumberToObject(s, "version", (double)m->version) == NULL ||
        cJSON_AddStringToObject(s, "role_sha256", m->role_sha256) == NULL ||
        cJSON_AddStringToObject(s, "created", created) == NULL) {
        goto out;
    }
    buf_reset(out);
    err = json_canon_encode(env, out);
out:
    cJSON_Delete(env);
    return err;
}

enum posgate_err
handover_write(const char *out_path, const char *manifest_path, const char *role_path,
               const struct handover_file *files, size_t n, char *errmsg, size_t errcap)
{
    struct bundle_item *items = plat_calloc(n + 2, sizeof *items);
    char **names = plat_calloc(n + 1, sizeof *names);
    enum posgate_err err = items != NULL && names != NULL ? POSGATE_OK : POSGATE_ERR_NOMEM;
    size_t i;

    for (i = 0; err == POSGATE_OK && i < n; i++) {
        size_t len = strlen(HANDOVER_TARGETS) + strlen(files[i].name) + 1;

        names[i] = plat_malloc(len);
        if (names[i] == NULL) {
            err = POSGATE_ERR_NOMEM;
            break;
        }
        snprintf(names[i], len, HANDOVER_TARGETS "%s", files[i].name);
        items[i + 2].path = names[i];
        items[i + 2].src_path = files[i].path;
    }
    if (err == POSGATE_OK) {
        items[0].path = HANDOVER_MANIFEST;
        items[0].src_path = manifest_path;
        items[1].path = HANDOVER_ROLE;
        items[1].src_path = role_path;
        err = bundle_write(out_path, items, n + 2, errmsg, errcap);
    }
    for (i = 0; names != NULL && i < n; i++) {
        plat_free(names[i]);
    }
    plat_free(names);
    plat_free(items);
    return err;
}

/* ---- list targets ------------------------------------------------------------------------- */

static int
get_u64(const cJSON *o, const char *name, uint64_t *out)
{
    int64_t v;

    if (json_get_int(o, name, 0, INT64_C(9007199254740992), &v) != POSGATE_OK) {
        return -1;
    }
    *out = (uint64_t)v;
    return 0;
}

/* The fields a snapshot and a delta share. */
static int
list_fields(const cJSON *o, struct list_target *t)
{
    char issued[40];
    int64_t v;

    if (get_u64(o, "seq", &t->seq) != 0 || get_u64(o, "entries", &t->entries) != 0 ||
        json_get_int(o, "ident_format", 0, INT32_MAX, &v) != POSGATE_OK ||
        get_str(o, "issued_at", issued, sizeof issued) != 0 ||
        plat_time_parse(issued, &t->issued_at) != POSGATE_OK ||
        get_str(o, "digest", t->digest, sizeof t->digest) != 0 || !hex64_ok(t->digest)) {
        return -1;
    }
    t->ident_format = (int)v;
    return 0;
}

enum posgate_err
list_target_parse(const char *custom_json, struct list_target *out, char *errmsg, size_t errcap)
{
    cJSON *o = NULL;
    char type[32], msg[200];
    enum posgate_err err;

    memset(out, 0, sizeof *out);
    if (custom_json == NULL) {
        return say(errmsg, errcap, POSGATE_ERR_PARSE, "expected custom metadata, found none");
    }
    err = json_parse_bounded(custom_json, strlen(custom_json), TUF_CUSTOM_MAX, &o, msg, sizeof msg);
    if (err != POSGATE_OK) {
        return say(errmsg, errcap, POSGATE_ERR_PARSE, "custom: %s", msg);
    }
    err = POSGATE_ERR_PARSE;
    if (get_str(o, "type", type, sizeof type) != 0 ||
        get_str(o, "list", out->list, sizeof out->list) != 0 || !feed_list_id_valid(out->list)) {
        say(errmsg, errcap, err, "custom: expected a \"type\" and a \"list\", found none");
        goto out;
    }
    if (strcmp(type, "list-config") == 0) {
        out->type = LIST_TARGET_CONFIG;
    } else if (strcmp(type, "snapshot") == 0) {
        out->type = LIST_TARGET_SNAPSHOT;
        if (list_fields(o, out) != 0) {
            say(errmsg, errcap, err,
                "custom of a snapshot: expected seq, entries, ident_format, issued_at and digest");
            goto out;
        }
    } else if (strcmp(type, "delta") == 0) {
        out->type = LIST_TARGET_DELTA;
        if (list_fields(o, out) != 0 || get_u64(o, "base_seq", &out->base_seq) != 0 ||
            get_u64(o, "additions", &out->additions) != 0 ||
            get_u64(o, "removals", &out->removals) != 0 || out->base_seq >= out->seq) {
            say(errmsg, errcap, err,
                "custom of a delta: expected seq, base_seq below it, additions, removals, "
                "entries, ident_format, issued_at and digest");
            goto out;
        }
    } else {
        say(errmsg, errcap, err,
            "custom: expected type snapshot, delta or list-config, found \"%.40s\"", type);
        goto out;
    }
    err = POSGATE_OK;
out:
    cJSON_Delete(o);
    return err;
}
