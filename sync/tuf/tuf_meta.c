/* SPDX-License-Identifier: Apache-2.0 */
/*
 * TUF metadata codec: turns one metadata file into a struct tuf_meta with every count and string
 * bounded, keeps the canonical bytes of "signed" for signature checks, and verifies thresholds
 * of distinct keys. This is one of the JSON codecs, so it includes cJSON; nothing else about
 * the file survives the parse but the typed struct. Field rules follow the specification and
 * the reference implementation (python-tuf): unknown members are tolerated, known ones must
 * have their documented types, duplicate signature keyids are refused outright.
 */
#define _POSIX_C_SOURCE 200809L
#include "tuf_meta.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "json_canon.h"
#include "plat_clock.h"
#include "plat_mem.h"

#define JSON_SAFE_MAX ((int64_t)9007199254740992) /* 2^53 */

/* Parse context: the role being parsed and the message buffer. */
struct pctx {
    const char *role;
    char *msg;
    size_t cap;
};

static enum posgate_err fail(struct pctx *p, enum posgate_err err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static enum posgate_err
fail(struct pctx *p, enum posgate_err err, const char *fmt, ...)
{
    va_list ap;
    size_t n;

    if (p->msg == NULL || p->cap == 0) {
        return err;
    }
    snprintf(p->msg, p->cap, "%s: ", p->role);
    n = strlen(p->msg);
    va_start(ap, fmt);
    vsnprintf(p->msg + n, p->cap - n, fmt, ap);
    va_end(ap);
    return err;
}

const char *
tuf_role_type_name(enum tuf_role_type t)
{
    switch (t) {
    case TUF_ROLE_ROOT:
        return "root";
    case TUF_ROLE_TIMESTAMP:
        return "timestamp";
    case TUF_ROLE_SNAPSHOT:
        return "snapshot";
    case TUF_ROLE_TARGETS:
        return "targets";
    }
    return "unknown";
}

/* ---- small helpers over cJSON ---- */

static size_t
count_children(const cJSON *v)
{
    size_t n = 0;

    for (const cJSON *c = v != NULL ? v->child : NULL; c != NULL; c = c->next) {
        n++;
    }
    return n;
}

/* Copies a string member or value. what names it in messages. */
static enum posgate_err
dup_string(struct pctx *p, const cJSON *v, const char *what, size_t maxlen, char **out)
{
    size_t n;

    if (!cJSON_IsString(v) || v->valuestring == NULL) {
        return fail(p, POSGATE_ERR_PARSE, "%s is not a string", what);
    }
    n = strlen(v->valuestring);
    if (n > maxlen) {
        return fail(p, POSGATE_ERR_TOOBIG, "%s is %zu bytes long, the limit is %zu", what, n,
                    maxlen);
    }
    *out = plat_strdup(v->valuestring);
    return *out == NULL ? POSGATE_ERR_NOMEM : POSGATE_OK;
}

static enum posgate_err
get_int(struct pctx *p, const cJSON *obj, const char *name, int64_t min, const char *what,
        int64_t *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);

    if (v == NULL) {
        return fail(p, POSGATE_ERR_PARSE, "%s has no '%s'", what, name);
    }
    if (json_get_int(obj, name, min, JSON_SAFE_MAX, out) != POSGATE_OK) {
        return fail(p, POSGATE_ERR_PARSE, "'%s' of %s is not an integer >= %lld", name, what,
                    (long long)min);
    }
    return POSGATE_OK;
}

static const cJSON *
get_object(struct pctx *p, const cJSON *obj, const char *name, const char *what,
           enum posgate_err *err)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);

    if (!cJSON_IsObject(v)) {
        *err = fail(p, POSGATE_ERR_PARSE, "'%s' of %s is %s, expected an object", name, what,
                    v == NULL ? "missing" : "not an object");
        return NULL;
    }
    *err = POSGATE_OK;
    return v;
}

static int
is_hex(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char c = s[i];

        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'))) {
            return 0;
        }
    }
    return 1;
}

/* ---- keys, roles, signatures ---- */

static void
key_cleanup(struct tuf_key *k)
{
    plat_free(k->keyid);
    plat_free(k->keytype);
    plat_free(k->scheme);
    crypto_pubkey_free(k->pub);
    memset(k, 0, sizeof(*k));
}

static void
role_keys_cleanup(struct tuf_role_keys *r)
{
    for (size_t i = 0; i < r->nkeyids; i++) {
        plat_free(r->keyids[i]);
    }
    plat_free(r->keyids);
    memset(r, 0, sizeof(*r));
}

static void
hashes_cleanup(struct tuf_hashes *h)
{
    plat_free(h->unknown);
    memset(h, 0, sizeof(*h));
}

/* Maps a TUF keytype/scheme pair to a crypto scheme; 0 when unsupported. */
static int
scheme_of(const char *keytype, const char *scheme, enum crypto_scheme *out)
{
    if ((strcmp(keytype, "ecdsa") == 0 || strcmp(keytype, "ecdsa-sha2-nistp256") == 0) &&
        strcmp(scheme, "ecdsa-sha2-nistp256") == 0) {
        *out = CRYPTO_SCHEME_ECDSA_P256_SHA256;
        return 1;
    }
    if (strcmp(keytype, "rsa") == 0 && strcmp(scheme, "rsassa-pss-sha256") == 0) {
        *out = CRYPTO_SCHEME_RSA_PSS_SHA256;
        return 1;
    }
    if (strcmp(keytype, "rsa") == 0 && strcmp(scheme, "rsa-pkcs1v15-sha256") == 0) {
        *out = CRYPTO_SCHEME_RSA_PKCS1_SHA256;
        return 1;
    }
    return 0;
}

static enum posgate_err
parse_key(struct pctx *p, const cJSON *kv, struct tuf_key *k)
{
    enum posgate_err err;
    const cJSON *keyval, *pub;
    enum crypto_scheme sch;
    char what[TUF_KEYID_MAX + 16];

    snprintf(what, sizeof(what), "key %s", kv->string);
    if (!cJSON_IsObject(kv)) {
        return fail(p, POSGATE_ERR_PARSE, "%s is not an object", what);
    }
    err =
        dup_string(p, cJSON_GetObjectItemCaseSensitive(kv, "keytype"), "keytype", 64, &k->keytype);
    if (err == POSGATE_OK) {
        err =
            dup_string(p, cJSON_GetObjectItemCaseSensitive(kv, "scheme"), "scheme", 64, &k->scheme);
    }
    if (err != POSGATE_OK) {
        return err;
    }
    keyval = get_object(p, kv, "keyval", what, &err);
    if (keyval == NULL) {
        return err;
    }
    pub = cJSON_GetObjectItemCaseSensitive(keyval, "public");
    if (pub != NULL && !cJSON_IsString(pub)) {
        return fail(p, POSGATE_ERR_PARSE, "keyval.public of %s is not a string", what);
    }
    if (pub != NULL && strlen(pub->valuestring) > TUF_PEM_MAX) {
        return fail(p, POSGATE_ERR_TOOBIG, "public key of %s is longer than %d bytes", what,
                    TUF_PEM_MAX);
    }
    /* An unsupported type or an undecodable key is kept without a verifier: it never counts
     * toward a threshold, but it does not make the metadata unreadable (the spec lets roots
     * carry keys a given client cannot use). */
    if (pub != NULL && scheme_of(k->keytype, k->scheme, &sch)) {
        if (crypto_pubkey_from_pem(pub->valuestring, sch, &k->pub) != POSGATE_OK) {
            k->pub = NULL;
        }
    }
    return POSGATE_OK;
}

static enum posgate_err
parse_keys(struct pctx *p, const cJSON *keys, struct tuf_key **out, size_t *nout)
{
    size_t n = count_children(keys), i = 0;
    struct tuf_key *arr;
    enum posgate_err err = POSGATE_OK;

    if (n > TUF_MAX_KEYS) {
        return fail(p, POSGATE_ERR_TOOBIG, "%zu keys, the limit is %d", n, TUF_MAX_KEYS);
    }
    arr = plat_calloc(n ? n : 1, sizeof(*arr));
    if (arr == NULL) {
        return POSGATE_ERR_NOMEM;
    }
    for (const cJSON *c = keys->child; c != NULL && err == POSGATE_OK; c = c->next, i++) {
        if (strlen(c->string) == 0 || strlen(c->string) > TUF_KEYID_MAX) {
            err = fail(p, POSGATE_ERR_PARSE, "keyid \"%.40s\" is empty or too long", c->string);
            break;
        }
        arr[i].keyid = plat_strdup(c->string);
        if (arr[i].keyid == NULL) {
            err = POSGATE_ERR_NOMEM;
            break;
        }
        err = parse_key(p, c, &arr[i]);
    }
    if (err != POSGATE_OK) {
        for (size_t j = 0; j < n; j++) {
            key_cleanup(&arr[j]);
        }
        plat_free(arr);
        return err;
    }
    *out = arr;
    *nout = n;
    return POSGATE_OK;
}

/* "keyids" (unique strings) and "threshold" (>= 1) of a role object. */
static enum posgate_err
parse_role_keys(struct pctx *p, const cJSON *obj, const char *what, struct tuf_role_keys *r)
{
    const cJSON *ids = cJSON_GetObjectItemCaseSensitive(obj, "keyids");
    size_t n, i = 0;
    int64_t th;
    enum posgate_err err;

    if (!cJSON_IsArray(ids)) {
        return fail(p, POSGATE_ERR_PARSE, "'keyids' of %s is not an array", what);
    }
    n = count_children(ids);
    if (n > TUF_MAX_ROLE_KEYIDS) {
        return fail(p, POSGATE_ERR_TOOBIG, "%s lists %zu keyids, the limit is %d", what, n,
                    TUF_MAX_ROLE_KEYIDS);
    }
    err = get_int(p, obj, "threshold", 1, what, &th);
    if (err != POSGATE_OK) {
        return err;
    }
    if (th > 1000000) {
        return fail(p, POSGATE_ERR_PARSE, "threshold %lld of %s is absurd", (long long)th, what);
    }
    r->threshold = (unsigned)th;
    r->keyids = plat_calloc(n ? n : 1, sizeof(char *));
    if (r->keyids == NULL) {
        return POSGATE_ERR_NOMEM;
    }
    for (const cJSON *c = ids->child; c != NULL; c = c->next, i++) {
        err = dup_string(p, c, "keyid", TUF_KEYID_MAX, &r->keyids[i]);
        if (err != POSGATE_OK) {
            return err;
        }
        r->nkeyids = i + 1;
        for (size_t j = 0; j < i; j++) {
            if (strcmp(r->keyids[j], r->keyids[i]) == 0) {
                return fail(p, POSGATE_ERR_PARSE, "%s lists keyid %.16s... twice", what,
                            r->keyids[i]);
            }
        }
    }
    return POSGATE_OK;
}

static enum posgate_err
parse_signatures(struct pctx *p, const cJSON *sigs, struct tuf_meta *m)
{
    size_t n, i = 0;
    enum posgate_err err;

    if (!cJSON_IsArray(sigs)) {
        return fail(p, POSGATE_ERR_PARSE, "'signatures' is %s, expected an array",
                    sigs == NULL ? "missing" : "not an array");
    }
    n = count_children(sigs);
    if (n > TUF_MAX_SIGS) {
        return fail(p, POSGATE_ERR_TOOBIG, "%zu signatures, the limit is %d", n, TUF_MAX_SIGS);
    }
    m->sigs = plat_calloc(n ? n : 1, sizeof(*m->sigs));
    if (m->sigs == NULL) {
        return POSGATE_ERR_NOMEM;
    }
    for (const cJSON *c = sigs->child; c != NULL; c = c->next, i++) {
        if (!cJSON_IsObject(c)) {
            return fail(p, POSGATE_ERR_PARSE, "signature %zu is not an object", i);
        }
        m->nsigs = i + 1;
        err = dup_string(p, cJSON_GetObjectItemCaseSensitive(c, "keyid"), "signature keyid",
                         TUF_KEYID_MAX, &m->sigs[i].keyid);
        if (err == POSGATE_OK) {
            err = dup_string(p, cJSON_GetObjectItemCaseSensitive(c, "sig"), "signature value",
                             TUF_SIG_HEX_MAX, &m->sigs[i].sig_hex);
        }
        if (err != POSGATE_OK) {
            return err;
        }
        /* The spec: a keyid must be unique in "signatures". Refusing the file outright (as the
         * reference implementation does) rather than counting once keeps two readers of the
         * same bytes from disagreeing. */
        for (size_t j = 0; j < i; j++) {
            if (strcmp(m->sigs[j].keyid, m->sigs[i].keyid) == 0) {
                return fail(p, POSGATE_ERR_PARSE,
                            "keyid %.16s... appears twice in signatures (each key may sign once)",
                            m->sigs[i].keyid);
            }
        }
    }
    return POSGATE_OK;
}

/* ---- hashes, meta files, targets ---- */

static enum posgate_err
parse_hashes(struct pctx *p, const cJSON *h, const char *what, struct tuf_hashes *out)
{
    struct buf tmp = BUF_INIT(CRYPTO_SHA512_LEN);
    enum posgate_err err = POSGATE_OK;

    if (!cJSON_IsObject(h)) {
        return fail(p, POSGATE_ERR_PARSE, "'hashes' of %s is not an object", what);
    }
    if (h->child == NULL) {
        return fail(p, POSGATE_ERR_PARSE, "'hashes' of %s is empty", what);
    }
    for (const cJSON *c = h->child; c != NULL; c = c->next) {
        size_t want = 0;
        uint8_t *dst = NULL;
        int *flag = NULL;

        if (!cJSON_IsString(c)) {
            err = fail(p, POSGATE_ERR_PARSE, "hash '%.32s' of %s is not a string", c->string, what);
            goto out;
        }
        out->count++;
        if (strcmp(c->string, "sha256") == 0) {
            want = CRYPTO_SHA256_LEN;
            dst = out->sha256;
            flag = &out->has_sha256;
        } else if (strcmp(c->string, "sha512") == 0) {
            want = CRYPTO_SHA512_LEN;
            dst = out->sha512;
            flag = &out->has_sha512;
        }
        buf_reset(&tmp);
        if (dst != NULL && strlen(c->valuestring) == 2 * want && is_hex(c->valuestring, 2 * want) &&
            crypto_unhex(c->valuestring, 2 * want, &tmp) == POSGATE_OK) {
            memcpy(dst, tmp.data, want);
            *flag = 1;
        } else if (out->unknown == NULL) {
            char name[80];

            /* Kept, not refused: the metadata stays readable, but nothing it describes can
             * pass tuf_hashes_check. */
            snprintf(name, sizeof(name), "%s%.40s", dst != NULL ? "malformed " : "", c->string);
            out->unknown = plat_strdup(name);
            if (out->unknown == NULL) {
                err = POSGATE_ERR_NOMEM;
                goto out;
            }
        }
    }
out:
    buf_free(&tmp);
    return err;
}

static enum posgate_err
parse_meta_file(struct pctx *p, const cJSON *v, struct tuf_meta_file *f)
{
    enum posgate_err err;
    const cJSON *len, *hashes;
    int64_t n;
    char what[TUF_NAME_MAX + 32];

    snprintf(what, sizeof(what), "meta \"%s\"", v->string);
    if (!cJSON_IsObject(v)) {
        return fail(p, POSGATE_ERR_PARSE, "%s is not an object", what);
    }
    err = get_int(p, v, "version", 1, what, &f->version);
    if (err != POSGATE_OK) {
        return err;
    }
    len = cJSON_GetObjectItemCaseSensitive(v, "length");
    if (len != NULL) {
        err = get_int(p, v, "length", 1, what, &n);
        if (err != POSGATE_OK) {
            return err;
        }
        f->has_length = 1;
        f->length = (uint64_t)n;
    }
    hashes = cJSON_GetObjectItemCaseSensitive(v, "hashes");
    if (hashes != NULL) {
        err = parse_hashes(p, hashes, what, &f->hashes);
        if (err != POSGATE_OK) {
            return err;
        }
    }
    return POSGATE_OK;
}

static enum posgate_err
parse_meta_map(struct pctx *p, const cJSON *signed_obj, struct tuf_meta *m)
{
    enum posgate_err err;
    const cJSON *meta = get_object(p, signed_obj, "meta", "signed", &err);
    size_t n, i = 0;

    if (meta == NULL) {
        return err;
    }
    n = count_children(meta);
    if (n > TUF_MAX_META) {
        return fail(p, POSGATE_ERR_TOOBIG, "%zu meta entries, the limit is %d", n, TUF_MAX_META);
    }
    m->meta = plat_calloc(n ? n : 1, sizeof(*m->meta));
    if (m->meta == NULL) {
        return POSGATE_ERR_NOMEM;
    }
    for (const cJSON *c = meta->child; c != NULL; c = c->next, i++) {
        if (strlen(c->string) > TUF_NAME_MAX + 5) {
            return fail(p, POSGATE_ERR_TOOBIG, "meta name longer than %d bytes", TUF_NAME_MAX);
        }
        m->nmeta = i + 1;
        m->meta[i].name = plat_strdup(c->string);
        if (m->meta[i].name == NULL) {
            return POSGATE_ERR_NOMEM;
        }
        err = parse_meta_file(p, c, &m->meta[i]);
        if (err != POSGATE_OK) {
            return err;
        }
    }
    if (m->type == TUF_ROLE_TIMESTAMP && tuf_meta_find_meta(m, "snapshot.json") == NULL) {
        return fail(p, POSGATE_ERR_PARSE, "meta has no \"snapshot.json\"");
    }
    return POSGATE_OK;
}

static enum posgate_err
parse_target(struct pctx *p, const cJSON *v, struct tuf_target *t)
{
    enum posgate_err err;
    const cJSON *custom;
    int64_t n;
    char what[TUF_NAME_MAX + 32];

    snprintf(what, sizeof(what), "target \"%s\"", v->string);
    if (!cJSON_IsObject(v)) {
        return fail(p, POSGATE_ERR_PARSE, "%s is not an object", what);
    }
    err = get_int(p, v, "length", 0, what, &n);
    if (err != POSGATE_OK) {
        return err;
    }
    t->length = (uint64_t)n;
    err = parse_hashes(p, cJSON_GetObjectItemCaseSensitive(v, "hashes"), what, &t->hashes);
    if (err != POSGATE_OK) {
        return err;
    }
    custom = cJSON_GetObjectItemCaseSensitive(v, "custom");
    if (custom != NULL) {
        struct buf b = BUF_INIT(TUF_CUSTOM_MAX);

        err = json_canon_encode(custom, &b);
        if (err != POSGATE_OK) {
            buf_free(&b);
            return fail(
                p, err == POSGATE_ERR_TOOBIG || err == POSGATE_ERR_NOMEM ? err : POSGATE_ERR_PARSE,
                "'custom' of %s cannot be encoded (%s)", what, posgate_err_name(err));
        }
        t->custom_json = plat_strdup(buf_cstr(&b));
        buf_free(&b);
        if (t->custom_json == NULL) {
            return POSGATE_ERR_NOMEM;
        }
    }
    return POSGATE_OK;
}

static int
is_top_level_name(const char *s)
{
    return strcmp(s, "root") == 0 || strcmp(s, "timestamp") == 0 || strcmp(s, "snapshot") == 0 ||
           strcmp(s, "targets") == 0;
}

static enum posgate_err
parse_deleg_role(struct pctx *p, const cJSON *v, struct tuf_deleg_role *r)
{
    enum posgate_err err;
    const cJSON *term, *paths, *prefixes, *list;
    size_t n, i = 0;
    char what[TUF_NAME_MAX + 32];

    if (!cJSON_IsObject(v)) {
        return fail(p, POSGATE_ERR_PARSE, "a delegated role is not an object");
    }
    err = dup_string(p, cJSON_GetObjectItemCaseSensitive(v, "name"), "delegated role name",
                     TUF_NAME_MAX, &r->name);
    if (err != POSGATE_OK) {
        return err;
    }
    if (r->name[0] == 0 || is_top_level_name(r->name)) {
        return fail(p, POSGATE_ERR_PARSE,
                    "delegated role name \"%s\" is empty or a top-level "
                    "role name",
                    r->name);
    }
    snprintf(what, sizeof(what), "delegated role \"%s\"", r->name);
    err = parse_role_keys(p, v, what, &r->keys);
    if (err != POSGATE_OK) {
        return err;
    }
    term = cJSON_GetObjectItemCaseSensitive(v, "terminating");
    if (!cJSON_IsBool(term)) {
        return fail(p, POSGATE_ERR_PARSE, "'terminating' of %s is not a boolean", what);
    }
    r->terminating = cJSON_IsTrue(term);
    paths = cJSON_GetObjectItemCaseSensitive(v, "paths");
    prefixes = cJSON_GetObjectItemCaseSensitive(v, "path_hash_prefixes");
    if ((paths == NULL) == (prefixes == NULL)) {
        return fail(p, POSGATE_ERR_PARSE,
                    "%s must have exactly one of 'paths' and 'path_hash_prefixes'", what);
    }
    list = paths != NULL ? paths : prefixes;
    r->has_paths = paths != NULL;
    if (!cJSON_IsArray(list)) {
        return fail(p, POSGATE_ERR_PARSE, "'%s' of %s is not an array",
                    r->has_paths ? "paths" : "path_hash_prefixes", what);
    }
    n = count_children(list);
    if (n > TUF_MAX_PATHS) {
        return fail(p, POSGATE_ERR_TOOBIG, "%s has %zu paths, the limit is %d", what, n,
                    TUF_MAX_PATHS);
    }
    r->paths = plat_calloc(n ? n : 1, sizeof(char *));
    if (r->paths == NULL) {
        return POSGATE_ERR_NOMEM;
    }
    for (const cJSON *c = list->child; c != NULL; c = c->next, i++) {
        err = dup_string(p, c, "a path pattern", TUF_NAME_MAX, &r->paths[i]);
        if (err != POSGATE_OK) {
            return err;
        }
        r->npaths = i + 1;
    }
    return POSGATE_OK;
}

static enum posgate_err
parse_delegations(struct pctx *p, const cJSON *d, struct tuf_delegations *out)
{
    enum posgate_err err;
    const cJSON *keys = get_object(p, d, "keys", "delegations", &err);
    const cJSON *roles, *succ;
    size_t n, i = 0;

    if (keys == NULL) {
        return err;
    }
    err = parse_keys(p, keys, &out->keys, &out->nkeys);
    if (err != POSGATE_OK) {
        return err;
    }
    roles = cJSON_GetObjectItemCaseSensitive(d, "roles");
    succ = cJSON_GetObjectItemCaseSensitive(d, "succinct_roles");
    if ((roles == NULL) == (succ == NULL)) {
        return fail(p, POSGATE_ERR_PARSE,
                    "delegations must have exactly one of 'roles' and 'succinct_roles'");
    }
    if (succ != NULL) {
        int64_t bits;

        if (!cJSON_IsObject(succ)) {
            return fail(p, POSGATE_ERR_PARSE, "'succinct_roles' is not an object");
        }
        out->has_succinct = 1;
        err = parse_role_keys(p, succ, "succinct_roles", &out->succinct.keys);
        if (err == POSGATE_OK) {
            err = get_int(p, succ, "bit_length", 1, "succinct_roles", &bits);
        }
        if (err == POSGATE_OK && bits > TUF_MAX_SUCCINCT_BITS) {
            err = fail(p, POSGATE_ERR_PARSE, "succinct_roles bit_length %lld is above %d",
                       (long long)bits, TUF_MAX_SUCCINCT_BITS);
        }
        if (err == POSGATE_OK) {
            out->succinct.bit_length = (unsigned)bits;
            err = dup_string(p, cJSON_GetObjectItemCaseSensitive(succ, "name_prefix"),
                             "succinct_roles name_prefix", TUF_NAME_MAX - 16,
                             &out->succinct.name_prefix);
        }
        return err;
    }
    if (!cJSON_IsArray(roles)) {
        return fail(p, POSGATE_ERR_PARSE, "delegations 'roles' is not an array");
    }
    n = count_children(roles);
    if (n > TUF_MAX_DELEG_ROLES) {
        return fail(p, POSGATE_ERR_TOOBIG, "%zu delegated roles, the limit is %d", n,
                    TUF_MAX_DELEG_ROLES);
    }
    out->roles = plat_calloc(n ? n : 1, sizeof(*out->roles));
    if (out->roles == NULL) {
        return POSGATE_ERR_NOMEM;
    }
    for (const cJSON *c = roles->child; c != NULL; c = c->next, i++) {
        out->nroles = i + 1;
        err = parse_deleg_role(p, c, &out->roles[i]);
        if (err != POSGATE_OK) {
            return err;
        }
        for (size_t j = 0; j < i; j++) {
            if (strcmp(out->roles[j].name, out->roles[i].name) == 0) {
                return fail(p, POSGATE_ERR_PARSE, "delegated role \"%s\" is listed twice",
                            out->roles[i].name);
            }
        }
    }
    return POSGATE_OK;
}

static enum posgate_err
parse_targets_map(struct pctx *p, const cJSON *signed_obj, struct tuf_meta *m)
{
    enum posgate_err err;
    const cJSON *targets = get_object(p, signed_obj, "targets", "signed", &err);
    const cJSON *deleg;
    size_t n, i = 0;

    if (targets == NULL) {
        return err;
    }
    n = count_children(targets);
    if (n > TUF_MAX_TARGETS) {
        return fail(p, POSGATE_ERR_TOOBIG, "%zu targets, the limit is %d", n, TUF_MAX_TARGETS);
    }
    m->targets = plat_calloc(n ? n : 1, sizeof(*m->targets));
    if (m->targets == NULL) {
        return POSGATE_ERR_NOMEM;
    }
    for (const cJSON *c = targets->child; c != NULL; c = c->next, i++) {
        if (strlen(c->string) > TUF_NAME_MAX) {
            return fail(p, POSGATE_ERR_TOOBIG, "a target path is longer than %d bytes",
                        TUF_NAME_MAX);
        }
        m->ntargets = i + 1;
        m->targets[i].name = plat_strdup(c->string);
        if (m->targets[i].name == NULL) {
            return POSGATE_ERR_NOMEM;
        }
        err = parse_target(p, c, &m->targets[i]);
        if (err != POSGATE_OK) {
            return err;
        }
    }
    deleg = cJSON_GetObjectItemCaseSensitive(signed_obj, "delegations");
    if (deleg != NULL && !cJSON_IsNull(deleg)) {
        if (!cJSON_IsObject(deleg)) {
            return fail(p, POSGATE_ERR_PARSE, "'delegations' is not an object");
        }
        m->has_delegations = 1;
        return parse_delegations(p, deleg, &m->delegations);
    }
    return POSGATE_OK;
}

static enum posgate_err
parse_root(struct pctx *p, const cJSON *s, struct tuf_meta *m)
{
    enum posgate_err err;
    const cJSON *cs = cJSON_GetObjectItemCaseSensitive(s, "consistent_snapshot");
    const cJSON *keys, *roles;

    if (cs != NULL && !cJSON_IsBool(cs)) {
        return fail(p, POSGATE_ERR_PARSE, "'consistent_snapshot' is not a boolean");
    }
    m->consistent_snapshot = cJSON_IsTrue(cs);
    keys = get_object(p, s, "keys", "signed", &err);
    if (keys == NULL) {
        return err;
    }
    err = parse_keys(p, keys, &m->keys, &m->nkeys);
    if (err != POSGATE_OK) {
        return err;
    }
    roles = get_object(p, s, "roles", "signed", &err);
    if (roles == NULL) {
        return err;
    }
    for (int r = TUF_ROLE_ROOT; r <= TUF_ROLE_TARGETS; r++) {
        const char *name = tuf_role_type_name((enum tuf_role_type)r);
        const cJSON *ro = cJSON_GetObjectItemCaseSensitive(roles, name);
        char what[64];

        if (!cJSON_IsObject(ro)) {
            return fail(p, POSGATE_ERR_PARSE, "roles has no object for \"%s\"", name);
        }
        snprintf(what, sizeof(what), "role \"%s\"", name);
        err = parse_role_keys(p, ro, what, &m->roles[r]);
        if (err != POSGATE_OK) {
            return err;
        }
    }
    return POSGATE_OK;
}

/* "1", "1.0", "1.0.31": major 1, digits only. */
static int
spec_version_ok(const char *v)
{
    int parts = 0;
    const char *s = v;

    while (1) {
        const char *start = s;

        while (*s >= '0' && *s <= '9') {
            s++;
        }
        if (s == start) {
            return 0;
        }
        parts++;
        if (*s == 0) {
            break;
        }
        if (*s != '.') {
            return 0;
        }
        s++;
    }
    return parts >= 2 && parts <= 3 && v[0] == '1' && v[1] == '.';
}

enum posgate_err
tuf_meta_parse(const void *data, size_t len, enum tuf_role_type expected, struct tuf_meta **out,
               char *errmsg, size_t errcap)
{
    struct pctx p = {tuf_role_type_name(expected), errmsg, errcap};
    cJSON *root = NULL;
    const cJSON *s, *type, *spec, *exp;
    struct tuf_meta *m = NULL;
    enum posgate_err err;
    char jmsg[256];
    char *tmp = NULL;

    if (errmsg != NULL && errcap > 0) {
        errmsg[0] = 0;
    }
    if (out == NULL) {
        return POSGATE_ERR_INVALID;
    }
    *out = NULL;
    if (data == NULL || (int)expected < TUF_ROLE_ROOT || (int)expected > TUF_ROLE_TARGETS) {
        return fail(&p, POSGATE_ERR_INVALID, "no data");
    }
    err = json_parse_bounded(data, len, TUF_META_MAX_LEN, &root, jmsg, sizeof(jmsg));
    if (err != POSGATE_OK) {
        return fail(&p, err, "%s", jmsg);
    }
    m = plat_calloc(1, sizeof(*m));
    if (m == NULL) {
        err = POSGATE_ERR_NOMEM;
        goto out;
    }
    m->type = expected;
    buf_init(&m->signed_canon, 2 * (size_t)TUF_META_MAX_LEN);
    if (!cJSON_IsObject(root)) {
        err = fail(&p, POSGATE_ERR_PARSE, "metadata is not a JSON object");
        goto out;
    }
    s = get_object(&p, root, "signed", "metadata", &err);
    if (s == NULL) {
        goto out;
    }
    err = parse_signatures(&p, cJSON_GetObjectItemCaseSensitive(root, "signatures"), m);
    if (err != POSGATE_OK) {
        goto out;
    }
    type = cJSON_GetObjectItemCaseSensitive(s, "_type");
    if (!cJSON_IsString(type) || strcmp(type->valuestring, p.role) != 0) {
        err = fail(&p, POSGATE_ERR_PARSE, "_type is \"%.32s\", expected \"%s\"",
                   cJSON_IsString(type) ? type->valuestring : "(not a string)", p.role);
        goto out;
    }
    spec = cJSON_GetObjectItemCaseSensitive(s, "spec_version");
    if (!cJSON_IsString(spec) || strlen(spec->valuestring) >= sizeof(m->spec_version)) {
        err = fail(&p, POSGATE_ERR_PARSE, "spec_version is missing or not a short string");
        goto out;
    }
    if (!spec_version_ok(spec->valuestring)) {
        err =
            fail(&p, POSGATE_ERR_UNSUPPORTED, "spec_version \"%s\" is not 1.x", spec->valuestring);
        goto out;
    }
    memcpy(m->spec_version, spec->valuestring, strlen(spec->valuestring) + 1);
    err = get_int(&p, s, "version", 1, "signed", &m->version);
    if (err != POSGATE_OK) {
        goto out;
    }
    exp = cJSON_GetObjectItemCaseSensitive(s, "expires");
    err = dup_string(&p, exp, "expires", 64, &tmp);
    if (err != POSGATE_OK) {
        goto out;
    }
    if (plat_time_parse(tmp, &m->expires) != POSGATE_OK) {
        err = fail(&p, POSGATE_ERR_PARSE, "expires \"%s\" is not an RFC 3339 time", tmp);
        goto out;
    }
    /* posgate's signed issue time: what data age counts from (docs/tuf.md) */
    exp = cJSON_GetObjectItemCaseSensitive(s, TUF_ISSUED_FIELD);
    if (exp != NULL) {
        plat_free(tmp);
        tmp = NULL;
        err = dup_string(&p, exp, TUF_ISSUED_FIELD, 64, &tmp);
        if (err != POSGATE_OK) {
            goto out;
        }
        if (plat_time_parse(tmp, &m->issued) != POSGATE_OK || m->issued <= 0) {
            err = fail(&p, POSGATE_ERR_PARSE, TUF_ISSUED_FIELD " \"%s\" is not an RFC 3339 time",
                       tmp);
            goto out;
        }
    }
    switch (expected) {
    case TUF_ROLE_ROOT:
        err = parse_root(&p, s, m);
        break;
    case TUF_ROLE_TIMESTAMP:
    case TUF_ROLE_SNAPSHOT:
        err = parse_meta_map(&p, s, m);
        break;
    case TUF_ROLE_TARGETS:
        err = parse_targets_map(&p, s, m);
        break;
    }
    if (err != POSGATE_OK) {
        goto out;
    }
    err = json_canon_encode(s, &m->signed_canon);
    if (err != POSGATE_OK) {
        err = fail(&p, err == POSGATE_ERR_NOMEM ? err : POSGATE_ERR_PARSE,
                   "'signed' has no canonical form (%s: a float or an out-of-range number?)",
                   posgate_err_name(err));
        goto out;
    }
    *out = m;
    m = NULL;
out:
    plat_free(tmp);
    tuf_meta_free(m);
    cJSON_Delete(root);
    return err;
}

void
tuf_meta_free(struct tuf_meta *m)
{
    if (m == NULL) {
        return;
    }
    buf_free(&m->signed_canon);
    for (size_t i = 0; i < m->nsigs; i++) {
        plat_free(m->sigs[i].keyid);
        plat_free(m->sigs[i].sig_hex);
    }
    plat_free(m->sigs);
    for (size_t i = 0; i < m->nkeys; i++) {
        key_cleanup(&m->keys[i]);
    }
    plat_free(m->keys);
    for (int r = 0; r < 4; r++) {
        role_keys_cleanup(&m->roles[r]);
    }
    for (size_t i = 0; i < m->nmeta; i++) {
        plat_free(m->meta[i].name);
        hashes_cleanup(&m->meta[i].hashes);
    }
    plat_free(m->meta);
    for (size_t i = 0; i < m->ntargets; i++) {
        plat_free(m->targets[i].name);
        plat_free(m->targets[i].custom_json);
        hashes_cleanup(&m->targets[i].hashes);
    }
    plat_free(m->targets);
    for (size_t i = 0; i < m->delegations.nkeys; i++) {
        key_cleanup(&m->delegations.keys[i]);
    }
    plat_free(m->delegations.keys);
    for (size_t i = 0; i < m->delegations.nroles; i++) {
        struct tuf_deleg_role *r = &m->delegations.roles[i];

        plat_free(r->name);
        role_keys_cleanup(&r->keys);
        for (size_t j = 0; j < r->npaths; j++) {
            plat_free(r->paths[j]);
        }
        plat_free(r->paths);
    }
    plat_free(m->delegations.roles);
    plat_free(m->delegations.succinct.name_prefix);
    role_keys_cleanup(&m->delegations.succinct.keys);
    plat_free(m);
}

/* ---- verification and lookups ---- */

const struct tuf_key *
tuf_meta_find_key(const struct tuf_key *keys, size_t nkeys, const char *keyid)
{
    if (keys == NULL || keyid == NULL) {
        return NULL;
    }
    for (size_t i = 0; i < nkeys; i++) {
        if (strcmp(keys[i].keyid, keyid) == 0) {
            return &keys[i];
        }
    }
    return NULL;
}

enum posgate_err
tuf_meta_verify(const struct tuf_meta *m, const struct tuf_key *keys, size_t nkeys,
                const struct tuf_role_keys *role, unsigned *valid)
{
    struct buf sig = BUF_INIT(TUF_SIG_HEX_MAX / 2);
    unsigned count = 0;
    enum posgate_err err = POSGATE_OK;

    if (valid != NULL) {
        *valid = 0;
    }
    if (m == NULL || role == NULL) {
        return POSGATE_ERR_INVALID;
    }
    /* Iterate over the role's keyids, not the signatures: each key counts at most once however
     * often it appears among the signatures. */
    for (size_t i = 0; i < role->nkeyids; i++) {
        const struct tuf_key *k = tuf_meta_find_key(keys, nkeys, role->keyids[i]);

        if (k == NULL || k->pub == NULL) {
            continue;
        }
        for (size_t j = 0; j < m->nsigs; j++) {
            const char *hex = m->sigs[j].sig_hex;

            if (strcmp(m->sigs[j].keyid, role->keyids[i]) != 0) {
                continue;
            }
            buf_reset(&sig);
            if (crypto_unhex(hex, strlen(hex), &sig) != POSGATE_OK || sig.len == 0) {
                continue;
            }
            if (crypto_pubkey_verify(k->pub, m->signed_canon.data, m->signed_canon.len, sig.data,
                                     sig.len) == POSGATE_OK) {
                count++;
                break;
            }
        }
    }
    buf_free(&sig);
    if (valid != NULL) {
        *valid = count;
    }
    if (count < role->threshold) {
        err = POSGATE_ERR_BADSIG;
    }
    return err;
}

const struct tuf_meta_file *
tuf_meta_find_meta(const struct tuf_meta *m, const char *name)
{
    if (m == NULL || name == NULL) {
        return NULL;
    }
    for (size_t i = 0; i < m->nmeta; i++) {
        if (strcmp(m->meta[i].name, name) == 0) {
            return &m->meta[i];
        }
    }
    return NULL;
}

const struct tuf_target *
tuf_meta_find_target(const struct tuf_meta *m, const char *name)
{
    if (m == NULL || name == NULL) {
        return NULL;
    }
    for (size_t i = 0; i < m->ntargets; i++) {
        if (strcmp(m->targets[i].name, name) == 0) {
            return &m->targets[i];
        }
    }
    return NULL;
}

enum posgate_err
tuf_hashes_check(const struct tuf_hashes *h, const uint8_t *sha256, const uint8_t *sha512,
                 const char *what, char *errmsg, size_t errcap)
{
    char exp[2 * CRYPTO_SHA512_LEN + 1], got[2 * CRYPTO_SHA512_LEN + 1];
    char dummy[8];

    if (errmsg == NULL || errcap == 0) {
        errmsg = dummy;
        errcap = sizeof(dummy);
    }
    if (h == NULL || what == NULL) {
        snprintf(errmsg, errcap, "no hashes to check");
        return POSGATE_ERR_INVALID;
    }
    if (h->unknown != NULL) {
        snprintf(errmsg, errcap,
                 "%s lists a hash we cannot check (%s); expected only sha256 and sha512", what,
                 h->unknown);
        return POSGATE_ERR_BADHASH;
    }
    if (h->has_sha256 && (sha256 == NULL || !crypto_equal(h->sha256, sha256, CRYPTO_SHA256_LEN))) {
        crypto_hex(h->sha256, CRYPTO_SHA256_LEN, exp);
        if (sha256 != NULL) {
            crypto_hex(sha256, CRYPTO_SHA256_LEN, got);
        } else {
            snprintf(got, sizeof(got), "(not computed)");
        }
        snprintf(errmsg, errcap, "%s has sha256 %.16s..., expected %.16s...", what, got, exp);
        return POSGATE_ERR_BADHASH;
    }
    if (h->has_sha512 && (sha512 == NULL || !crypto_equal(h->sha512, sha512, CRYPTO_SHA512_LEN))) {
        crypto_hex(h->sha512, CRYPTO_SHA512_LEN, exp);
        if (sha512 != NULL) {
            crypto_hex(sha512, CRYPTO_SHA512_LEN, got);
        } else {
            snprintf(got, sizeof(got), "(not computed)");
        }
        snprintf(errmsg, errcap, "%s has sha512 %.16s..., expected %.16s...", what, got, exp);
        return POSGATE_ERR_BADHASH;
    }
    return POSGATE_OK;
}

/* ---- delegation matching ---- */

/* Matches one path segment against one pattern segment: '*' any run, '?' one byte, '[...]' a
 * set (with '!' or '^' negation and ranges), everything else literally (fnmatch semantics
 * without FNM_PERIOD). Both strings contain no '/'. Iterative with one backtrack point. */
static int
match_segment(const char *pat, size_t plen, const char *s, size_t slen)
{
    size_t pi = 0, si = 0, star_p = (size_t)-1, star_s = 0;

    while (si < slen) {
        if (pi < plen && pat[pi] == '*') {
            star_p = pi++;
            star_s = si;
            continue;
        }
        if (pi < plen && pat[pi] == '?') {
            pi++;
            si++;
            continue;
        }
        if (pi < plen && pat[pi] == '[') {
            size_t j = pi + 1;
            int neg = 0, hit = 0;

            if (j < plen && (pat[j] == '!' || pat[j] == '^')) {
                neg = 1;
                j++;
            }
            if (j < plen && pat[j] == ']') { /* a leading ']' is literal */
                hit = s[si] == ']';
                j++;
            }
            while (j < plen && pat[j] != ']') {
                if (j + 2 < plen && pat[j + 1] == '-' && pat[j + 2] != ']') {
                    if ((unsigned char)s[si] >= (unsigned char)pat[j] &&
                        (unsigned char)s[si] <= (unsigned char)pat[j + 2]) {
                        hit = 1;
                    }
                    j += 3;
                } else {
                    if (s[si] == pat[j]) {
                        hit = 1;
                    }
                    j++;
                }
            }
            if (j < plen) { /* a complete set */
                if (hit != neg) {
                    pi = j + 1;
                    si++;
                    continue;
                }
            } else if (s[si] == '[') { /* no closing ']': a literal '[' */
                pi++;
                si++;
                continue;
            }
        } else if (pi < plen && pat[pi] == s[si]) {
            pi++;
            si++;
            continue;
        }
        if (star_p == (size_t)-1) {
            return 0;
        }
        pi = star_p + 1;
        si = ++star_s;
    }
    while (pi < plen && pat[pi] == '*') {
        pi++;
    }
    return pi == plen;
}

int
tuf_path_match(const char *pattern, const char *path)
{
    if (pattern == NULL || path == NULL) {
        return 0;
    }
    while (1) {
        size_t pl = strcspn(pattern, "/"), sl = strcspn(path, "/");

        if (!match_segment(pattern, pl, path, sl)) {
            return 0;
        }
        pattern += pl;
        path += sl;
        if (*pattern == 0 || *path == 0) {
            return *pattern == 0 && *path == 0;
        }
        pattern++;
        path++;
    }
}

int
tuf_deleg_role_matches(const struct tuf_deleg_role *r, const char *target_path)
{
    char hex[2 * CRYPTO_SHA256_LEN + 1];

    if (r == NULL || target_path == NULL) {
        return 0;
    }
    if (r->has_paths) {
        for (size_t i = 0; i < r->npaths; i++) {
            if (tuf_path_match(r->paths[i], target_path)) {
                return 1;
            }
        }
        return 0;
    }
    {
        uint8_t h[CRYPTO_SHA256_LEN];

        crypto_sha256(target_path, strlen(target_path), h);
        crypto_hex(h, sizeof(h), hex);
    }
    for (size_t i = 0; i < r->npaths; i++) {
        size_t n = strlen(r->paths[i]);

        if (n <= sizeof(hex) - 1 && strncmp(hex, r->paths[i], n) == 0) {
            return 1;
        }
    }
    return 0;
}

enum posgate_err
tuf_succinct_role_for(const struct tuf_succinct *s, const char *target_path, char *out, size_t cap)
{
    uint8_t h[CRYPTO_SHA256_LEN];
    uint32_t first, bin, last;
    int width = 1;
    int n;

    if (s == NULL || target_path == NULL || out == NULL || s->bit_length < 1 ||
        s->bit_length > TUF_MAX_SUCCINCT_BITS || s->name_prefix == NULL) {
        return POSGATE_ERR_INVALID;
    }
    crypto_sha256(target_path, strlen(target_path), h);
    first = (uint32_t)h[0] << 24 | (uint32_t)h[1] << 16 | (uint32_t)h[2] << 8 | (uint32_t)h[3];
    bin = s->bit_length == 32 ? first : first >> (32 - s->bit_length);
    last = s->bit_length == 32 ? UINT32_MAX : (uint32_t)((1ull << s->bit_length) - 1);
    /* The suffix is as wide as the hex form of the last bin number. */
    while (width < 8 && (last >> (4 * width)) != 0) {
        width++;
    }
    n = snprintf(out, cap, "%s-%0*x", s->name_prefix, width, (unsigned)bin);
    if (n < 0 || (size_t)n >= cap) {
        return POSGATE_ERR_TOOBIG;
    }
    return POSGATE_OK;
}
