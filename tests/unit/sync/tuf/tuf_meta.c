/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Tests of sync/tuf/tuf_meta.c: the safety cases first (NULLs, oversize input, wrong types, caps),
 * then golden metadata signed outside posgate (tests/fuzz/corpus/tuf_meta/, made with Python's
 * cryptography: ECDSA P-256, RSA-PSS and RSA PKCS#1 v1.5 over securesystemslib-style canonical
 * JSON) and forgeries of it, thresholds with freshly generated keys, hashes, path patterns and
 * succinct hash bins.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "buf.h"
#include "crypto.h"
#include "json_canon.h"
#include "plat_file.h"
#include "plat_mem.h"
#include "posgate_err.h"
#include "test.h"
#include "tuf_meta.h"

struct key {
    struct crypto_privkey *k;
    char id[2 * CRYPTO_SHA256_LEN + 1];
    char *pem;
};

static void
key_new(struct key *k)
{
    struct buf pem = BUF_INIT(CRYPTO_PEM_MAX);
    uint8_t h[CRYPTO_SHA256_LEN];

    memset(k, 0, sizeof(*k));
    CHECK_OK(crypto_privkey_generate(&k->k));
    CHECK_OK(crypto_privkey_public_pem(k->k, &pem));
    k->pem = plat_strdup(buf_cstr(&pem));
    crypto_sha256(pem.data, pem.len, h);
    crypto_hex(h, sizeof(h), k->id);
    buf_free(&pem);
}

static void
key_free(struct key *k)
{
    crypto_privkey_free(k->k);
    plat_free(k->pem);
}

static cJSON *
key_json(const struct key *k, const char *keytype, const char *scheme)
{
    cJSON *o = cJSON_CreateObject(), *kv = cJSON_CreateObject();

    cJSON_AddStringToObject(o, "keytype", keytype);
    cJSON_AddStringToObject(o, "scheme", scheme);
    cJSON_AddStringToObject(kv, "public", k->pem);
    cJSON_AddItemToObject(o, "keyval", kv);
    return o;
}

/* The envelope {"signatures": [...], "signed": s} as text; s is consumed. */
static char *
sign_doc(cJSON *s, struct key *const *keys, size_t n)
{
    struct buf canon = BUF_INIT(1u << 24), sig = BUF_INIT(1024);
    cJSON *env = cJSON_CreateObject(), *sigs = cJSON_CreateArray();
    char *text;

    if (n > 0) { /* unsigned envelopes may hold what has no canonical form (a float) */
        CHECK_OK(json_canon_encode(s, &canon));
    }
    for (size_t i = 0; i < n; i++) {
        cJSON *o = cJSON_CreateObject();
        char hex[2048];

        buf_reset(&sig);
        CHECK_OK(crypto_privkey_sign(keys[i]->k, canon.data, canon.len, &sig));
        crypto_hex(sig.data, sig.len, hex);
        cJSON_AddStringToObject(o, "keyid", keys[i]->id);
        cJSON_AddStringToObject(o, "sig", hex);
        cJSON_AddItemToArray(sigs, o);
    }
    cJSON_AddItemToObject(env, "signatures", sigs);
    cJSON_AddItemToObject(env, "signed", s);
    text = cJSON_PrintUnformatted(env);
    cJSON_Delete(env);
    buf_free(&canon);
    buf_free(&sig);
    return text;
}

static cJSON *
base_signed(const char *type, int version)
{
    cJSON *s = cJSON_CreateObject();

    cJSON_AddStringToObject(s, "_type", type);
    cJSON_AddStringToObject(s, "spec_version", "1.0.31");
    cJSON_AddNumberToObject(s, "version", version);
    cJSON_AddStringToObject(s, "expires", "2099-01-01T00:00:00Z");
    return s;
}

static cJSON *
role_json(struct key *const *keys, size_t n, int threshold)
{
    cJSON *r = cJSON_CreateObject(), *ids = cJSON_CreateArray();

    for (size_t i = 0; i < n; i++) {
        cJSON_AddItemToArray(ids, cJSON_CreateString(keys[i]->id));
    }
    cJSON_AddItemToObject(r, "keyids", ids);
    cJSON_AddNumberToObject(r, "threshold", threshold);
    return r;
}

/* A root whose four roles all use keys[0..n) with the threshold. */
static cJSON *
root_signed(struct key *const *keys, size_t n, int threshold)
{
    cJSON *s = base_signed("root", 1), *ks = cJSON_CreateObject(), *roles = cJSON_CreateObject();
    static const char *names[] = {"root", "timestamp", "snapshot", "targets"};

    cJSON_AddBoolToObject(s, "consistent_snapshot", 1);
    for (size_t i = 0; i < n; i++) {
        cJSON_AddItemToObject(ks, keys[i]->id, key_json(keys[i], "ecdsa", "ecdsa-sha2-nistp256"));
    }
    cJSON_AddItemToObject(s, "keys", ks);
    for (size_t i = 0; i < 4; i++) {
        cJSON_AddItemToObject(roles, names[i], role_json(keys, n, threshold));
    }
    cJSON_AddItemToObject(s, "roles", roles);
    return s;
}

static enum posgate_err
parse_text(const char *text, enum tuf_role_type t, struct tuf_meta **m, char *msg, size_t cap)
{
    return tuf_meta_parse(text, strlen(text), t, m, msg, cap);
}

static void
read_golden(const char *name, struct buf *out)
{
    const char *src = getenv("POSGATE_TEST_SRC");
    char path[4096];

    snprintf(path, sizeof(path), "%s/fuzz/corpus/tuf_meta/%s", src != NULL ? src : "tests", name);
    CHECK_OK(plat_read_file(path, out));
}

static void
test_safety(void)
{
    struct tuf_meta *m = (struct tuf_meta *)1;
    char msg[256];
    unsigned valid = 99;
    size_t big = (size_t)TUF_META_MAX_LEN + 1;
    char *huge;

    CHECK_ERR(tuf_meta_parse("{}", 2, TUF_ROLE_ROOT, NULL, msg, sizeof(msg)), POSGATE_ERR_INVALID);
    CHECK_ERR(tuf_meta_parse(NULL, 2, TUF_ROLE_ROOT, &m, msg, sizeof(msg)), POSGATE_ERR_INVALID);
    CHECK(m == NULL);
    CHECK_ERR(tuf_meta_parse("{}", 2, (enum tuf_role_type)7, &m, msg, sizeof(msg)),
              POSGATE_ERR_INVALID);
    /* Oversize input is refused before it is parsed. */
    huge = plat_malloc(big);
    CHECK(huge != NULL);
    if (huge != NULL) {
        memset(huge, ' ', big);
        CHECK_ERR(tuf_meta_parse(huge, big, TUF_ROLE_TARGETS, &m, msg, sizeof(msg)),
                  POSGATE_ERR_TOOBIG);
        CHECK_CONTAINS(msg, "exceeds the limit");
        plat_free(huge);
    }
    CHECK_ERR(parse_text("[]", TUF_ROLE_ROOT, &m, msg, sizeof(msg)), POSGATE_ERR_PARSE);
    CHECK_CONTAINS(msg, "not a JSON object");
    CHECK_ERR(parse_text("{}", TUF_ROLE_ROOT, &m, msg, sizeof(msg)), POSGATE_ERR_PARSE);
    CHECK_CONTAINS(msg, "'signed'");
    CHECK_ERR(parse_text("{\"signed\":", TUF_ROLE_ROOT, &m, msg, sizeof(msg)), POSGATE_ERR_PARSE);
    CHECK_ERR(parse_text("{\"signed\":{},\"signatures\":{}}", TUF_ROLE_ROOT, &m, NULL, 0),
              POSGATE_ERR_PARSE);
    CHECK(m == NULL);
    CHECK_ERR(tuf_meta_verify(NULL, NULL, 0, NULL, &valid), POSGATE_ERR_INVALID);
    CHECK_INT(valid, 0);
    CHECK_ERR(tuf_hashes_check(NULL, NULL, NULL, "x", msg, sizeof(msg)), POSGATE_ERR_INVALID);
    CHECK(tuf_meta_find_target(NULL, "a") == NULL);
    CHECK(tuf_meta_find_meta(NULL, "a") == NULL);
    CHECK(tuf_meta_find_key(NULL, 0, "a") == NULL);
    CHECK(!tuf_path_match(NULL, "a"));
    tuf_meta_free(NULL);
}

static void
test_golden(void)
{
    struct buf raw = BUF_INIT(1u << 20);
    struct tuf_meta *root = NULL, *m = NULL;
    char msg[TUF_ERRMSG_MAX];
    unsigned valid = 0;
    char *p;

    read_golden("root_rsa_ecdsa.json", &raw);
    CHECK_OK(tuf_meta_parse(raw.data, raw.len, TUF_ROLE_ROOT, &root, msg, sizeof(msg)));
    if (root == NULL) {
        buf_free(&raw);
        return;
    }
    CHECK_INT(root->nkeys, 3);
    for (size_t i = 0; i < root->nkeys; i++) {
        CHECK(root->keys[i].pub != NULL); /* ecdsa, rsa-pss and rsa-pkcs1v15 all load */
    }
    CHECK_STR(root->spec_version, "1.0.31");
    CHECK(root->consistent_snapshot);
    /* Three schemes, threshold 3: each signature must verify. */
    CHECK_OK(tuf_meta_verify(root, root->keys, root->nkeys, &root->roles[TUF_ROLE_ROOT], &valid));
    CHECK_INT(valid, 3);
    /* The unknown field is part of the signed bytes. */
    CHECK(strstr((const char *)root->signed_canon.data, "\"x-custom\":{") != NULL);

    /* A forgery: one changed byte in "signed" breaks all three signatures. */
    p = strstr((char *)raw.data, "2099-01-01");
    CHECK(p != NULL);
    if (p != NULL) {
        p[3] = '8';
        CHECK_OK(tuf_meta_parse(raw.data, raw.len, TUF_ROLE_ROOT, &m, msg, sizeof(msg)));
        if (m != NULL) {
            CHECK_ERR(
                tuf_meta_verify(m, root->keys, root->nkeys, &root->roles[TUF_ROLE_ROOT], &valid),
                POSGATE_ERR_BADSIG);
            CHECK_INT(valid, 0);
        }
        tuf_meta_free(m);
        m = NULL;
    }

    read_golden("timestamp.json", &raw);
    CHECK_ERR(tuf_meta_parse(raw.data, raw.len, TUF_ROLE_SNAPSHOT, &m, msg, sizeof(msg)),
              POSGATE_ERR_PARSE);
    CHECK_CONTAINS(msg, "_type is \"timestamp\", expected \"snapshot\"");
    CHECK_OK(tuf_meta_parse(raw.data, raw.len, TUF_ROLE_TIMESTAMP, &m, msg, sizeof(msg)));
    if (m != NULL) {
        const struct tuf_meta_file *f = tuf_meta_find_meta(m, "snapshot.json");

        CHECK(f != NULL);
        if (f != NULL) {
            CHECK_INT(f->version, 3);
            CHECK(f->has_length);
            CHECK_INT(f->length, 515);
            CHECK(f->hashes.has_sha256 && !f->hashes.has_sha512 && f->hashes.unknown == NULL);
        }
        CHECK_INT(m->version, 7);
        CHECK_OK(
            tuf_meta_verify(m, root->keys, root->nkeys, &root->roles[TUF_ROLE_TIMESTAMP], &valid));
    }
    tuf_meta_free(m);
    m = NULL;

    read_golden("targets_deleg.json", &raw);
    CHECK_OK(tuf_meta_parse(raw.data, raw.len, TUF_ROLE_TARGETS, &m, msg, sizeof(msg)));
    if (m != NULL) {
        const struct tuf_target *t = tuf_meta_find_target(m, "config/feed.json");

        CHECK_OK(
            tuf_meta_verify(m, root->keys, root->nkeys, &root->roles[TUF_ROLE_TARGETS], &valid));
        CHECK(t != NULL);
        if (t != NULL) {
            CHECK_STR(t->custom_json, "{\"kind\":\"config\",\"seq\":4}");
            CHECK_INT(t->length, 12);
        }
        t = tuf_meta_find_target(m, "lists/eu-1/snap-42.bin");
        CHECK(t != NULL && t->length == 0 && t->hashes.has_sha512 && t->custom_json == NULL);
        CHECK(m->has_delegations);
        CHECK_INT(m->delegations.nroles, 2);
        if (m->delegations.nroles == 2) {
            CHECK_STR(m->delegations.roles[0].name, "lists/eu-1");
            CHECK(m->delegations.roles[0].terminating && m->delegations.roles[0].has_paths);
            CHECK(tuf_deleg_role_matches(&m->delegations.roles[0], "lists/eu-1/snap-43.bin"));
            CHECK(!tuf_deleg_role_matches(&m->delegations.roles[0], "lists/eu-2/snap-43.bin"));
            CHECK(!m->delegations.roles[1].has_paths);
            CHECK_INT(m->delegations.roles[1].npaths, 2);
        }
    }
    tuf_meta_free(m);
    m = NULL;

    read_golden("targets_succinct.json", &raw);
    CHECK_OK(tuf_meta_parse(raw.data, raw.len, TUF_ROLE_TARGETS, &m, msg, sizeof(msg)));
    if (m != NULL) {
        CHECK(m->delegations.has_succinct);
        CHECK_INT(m->delegations.succinct.bit_length, 8);
        CHECK_STR(m->delegations.succinct.name_prefix, "bin");
        /* Signed by the ecdsa key only: threshold 3 of the root's targets role is not met. */
        CHECK_ERR(
            tuf_meta_verify(m, root->keys, root->nkeys, &root->roles[TUF_ROLE_TARGETS], &valid),
            POSGATE_ERR_BADSIG);
        CHECK_INT(valid, 1);
    }
    tuf_meta_free(m);
    tuf_meta_free(root);
    buf_free(&raw);
}

static void
test_thresholds(void)
{
    struct key a, b, c;
    struct key *ab[2] = {&a, &b}, *abc[3] = {&a, &b, &c};
    struct tuf_meta *root = NULL, *m = NULL;
    char msg[TUF_ERRMSG_MAX];
    unsigned valid = 0;
    char *text;
    cJSON *doc;

    key_new(&a);
    key_new(&b);
    key_new(&c);
    /* Root trusts a and b with threshold 2. */
    text = sign_doc(root_signed(ab, 2, 2), ab, 2);
    CHECK_OK(parse_text(text, TUF_ROLE_ROOT, &root, msg, sizeof(msg)));
    cJSON_free(text);
    if (root == NULL) {
        goto out;
    }
    CHECK_OK(tuf_meta_verify(root, root->keys, root->nkeys, &root->roles[TUF_ROLE_ROOT], &valid));
    CHECK_INT(valid, 2);

    /* Under threshold: only a signs. */
    doc = base_signed("targets", 1);
    cJSON_AddItemToObject(doc, "targets", cJSON_CreateObject());
    text = sign_doc(doc, ab, 1);
    CHECK_OK(parse_text(text, TUF_ROLE_TARGETS, &m, msg, sizeof(msg)));
    cJSON_free(text);
    CHECK_ERR(tuf_meta_verify(m, root->keys, root->nkeys, &root->roles[TUF_ROLE_TARGETS], &valid),
              POSGATE_ERR_BADSIG);
    CHECK_INT(valid, 1);
    tuf_meta_free(m);
    m = NULL;

    /* a and c sign: c is not a key of the role, so still one valid signature. */
    doc = base_signed("targets", 1);
    cJSON_AddItemToObject(doc, "targets", cJSON_CreateObject());
    {
        struct key *ac[2] = {&a, &c};

        text = sign_doc(doc, ac, 2);
    }
    CHECK_OK(parse_text(text, TUF_ROLE_TARGETS, &m, msg, sizeof(msg)));
    cJSON_free(text);
    CHECK_ERR(tuf_meta_verify(m, root->keys, root->nkeys, &root->roles[TUF_ROLE_TARGETS], &valid),
              POSGATE_ERR_BADSIG);
    CHECK_INT(valid, 1);
    tuf_meta_free(m);
    m = NULL;

    /* All three sign: threshold 2 met by a and b. */
    doc = base_signed("targets", 1);
    cJSON_AddItemToObject(doc, "targets", cJSON_CreateObject());
    text = sign_doc(doc, abc, 3);
    CHECK_OK(parse_text(text, TUF_ROLE_TARGETS, &m, msg, sizeof(msg)));
    CHECK_OK(tuf_meta_verify(m, root->keys, root->nkeys, &root->roles[TUF_ROLE_TARGETS], &valid));
    CHECK_INT(valid, 2);
    tuf_meta_free(m);
    m = NULL;

    /* A duplicated signature (same keyid twice) is refused outright, so it can never count
     * twice toward a threshold. */
    {
        cJSON *d = cJSON_Parse(text);
        cJSON *sigs = cJSON_GetObjectItem(d, "signatures");
        char *dup;

        cJSON_AddItemToArray(sigs, cJSON_Duplicate(cJSON_GetArrayItem(sigs, 0), 1));
        dup = cJSON_PrintUnformatted(d);
        CHECK_ERR(parse_text(dup, TUF_ROLE_TARGETS, &m, msg, sizeof(msg)), POSGATE_ERR_PARSE);
        CHECK_CONTAINS(msg, "appears twice in signatures");
        cJSON_free(dup);

        /* A bad signature beside a good one: the good one still counts, the bad one does
         * not (an empty and a non-hex signature do not make the file unreadable). */
        cJSON_DeleteItemFromArray(sigs, 3);
        cJSON_ReplaceItemInObject(cJSON_GetArrayItem(sigs, 1), "sig", cJSON_CreateString(""));
        cJSON_ReplaceItemInObject(cJSON_GetArrayItem(sigs, 2), "sig", cJSON_CreateString("zz"));
        dup = cJSON_PrintUnformatted(d);
        CHECK_OK(parse_text(dup, TUF_ROLE_TARGETS, &m, msg, sizeof(msg)));
        CHECK_ERR(
            tuf_meta_verify(m, root->keys, root->nkeys, &root->roles[TUF_ROLE_TARGETS], &valid),
            POSGATE_ERR_BADSIG);
        CHECK_INT(valid, 1);
        tuf_meta_free(m);
        m = NULL;

        /* A flipped bit in a's signature. */
        {
            cJSON *s0 = cJSON_GetObjectItem(cJSON_GetArrayItem(sigs, 0), "sig");
            char *hex = plat_strdup(s0->valuestring);
            size_t n = strlen(hex);

            hex[n - 3] = hex[n - 3] == '0' ? '1' : '0';
            cJSON_ReplaceItemInObject(cJSON_GetArrayItem(sigs, 0), "sig", cJSON_CreateString(hex));
            plat_free(hex);
        }
        cJSON_free(dup);
        dup = cJSON_PrintUnformatted(d);
        CHECK_OK(parse_text(dup, TUF_ROLE_TARGETS, &m, msg, sizeof(msg)));
        CHECK_ERR(
            tuf_meta_verify(m, root->keys, root->nkeys, &root->roles[TUF_ROLE_TARGETS], &valid),
            POSGATE_ERR_BADSIG);
        CHECK_INT(valid, 0);
        tuf_meta_free(m);
        m = NULL;
        cJSON_free(dup);
        cJSON_Delete(d);
    }
    cJSON_free(text);

    /* A key of a type we cannot verify (ed25519) parses, but never counts. */
    {
        cJSON *s = root_signed(ab, 2, 1);
        cJSON *k = cJSON_GetObjectItem(cJSON_GetObjectItem(s, "keys"), a.id);
        struct key *only_a[1] = {&a};

        cJSON_ReplaceItemInObject(k, "keytype", cJSON_CreateString("ed25519"));
        cJSON_ReplaceItemInObject(k, "scheme", cJSON_CreateString("ed25519"));
        text = sign_doc(s, only_a, 1);
        CHECK_OK(parse_text(text, TUF_ROLE_ROOT, &m, msg, sizeof(msg)));
        if (m != NULL) {
            const struct tuf_key *ka = tuf_meta_find_key(m->keys, m->nkeys, a.id);

            CHECK(ka != NULL && ka->pub == NULL);
            CHECK_ERR(tuf_meta_verify(m, m->keys, m->nkeys, &m->roles[TUF_ROLE_ROOT], &valid),
                      POSGATE_ERR_BADSIG);
            CHECK_INT(valid, 0);
        }
        tuf_meta_free(m);
        m = NULL;
        cJSON_free(text);
    }
out:
    tuf_meta_free(root);
    key_free(&a);
    key_free(&b);
    key_free(&c);
}

/* Parses signed (unsigned envelope) and expects err with msg containing needle. */
static void
expect_refused(cJSON *s, enum tuf_role_type t, enum posgate_err err, const char *needle)
{
    char *text = sign_doc(s, NULL, 0);
    struct tuf_meta *m = NULL;
    char msg[TUF_ERRMSG_MAX];

    CHECK_ERR(parse_text(text, t, &m, msg, sizeof(msg)), err);
    CHECK(m == NULL);
    CHECK_CONTAINS(msg, needle);
    tuf_meta_free(m);
    cJSON_free(text);
}

static cJSON *
targets_with(const char *name, cJSON *target)
{
    cJSON *s = base_signed("targets", 1), *t = cJSON_CreateObject();

    cJSON_AddItemToObject(t, name, target);
    cJSON_AddItemToObject(s, "targets", t);
    return s;
}

static cJSON *
target_json(int length, const char *alg, const char *hex)
{
    cJSON *t = cJSON_CreateObject(), *h = cJSON_CreateObject();

    cJSON_AddNumberToObject(t, "length", length);
    cJSON_AddStringToObject(h, alg, hex);
    cJSON_AddItemToObject(t, "hashes", h);
    return t;
}

static void
test_wrong_types(void)
{
    struct key a;
    struct key *ka[1] = {&a};
    cJSON *s;

    key_new(&a);
    s = base_signed("timestamp", 1);
    cJSON_ReplaceItemInObject(s, "version", cJSON_CreateString("1"));
    expect_refused(s, TUF_ROLE_TIMESTAMP, POSGATE_ERR_PARSE,
                   "'version' of signed is not an integer");

    s = base_signed("timestamp", 0);
    expect_refused(s, TUF_ROLE_TIMESTAMP, POSGATE_ERR_PARSE, "not an integer >= 1");

    s = base_signed("snapshot", 1);
    cJSON_ReplaceItemInObject(s, "expires", cJSON_CreateString("next tuesday"));
    expect_refused(s, TUF_ROLE_SNAPSHOT, POSGATE_ERR_PARSE, "expires \"next tuesday\"");

    s = base_signed("snapshot", 1);
    cJSON_ReplaceItemInObject(s, "spec_version", cJSON_CreateString("2.0.0"));
    expect_refused(s, TUF_ROLE_SNAPSHOT, POSGATE_ERR_UNSUPPORTED, "not 1.x");

    s = base_signed("timestamp", 1);
    cJSON_AddItemToObject(s, "meta", cJSON_CreateObject());
    expect_refused(s, TUF_ROLE_TIMESTAMP, POSGATE_ERR_PARSE, "no \"snapshot.json\"");

    s = root_signed(ka, 1, 0);
    expect_refused(s, TUF_ROLE_ROOT, POSGATE_ERR_PARSE, "'threshold' of role \"root\"");

    s = root_signed(ka, 1, 1);
    cJSON_AddItemToArray(
        cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetObjectItem(s, "roles"), "snapshot"),
                            "keyids"),
        cJSON_CreateString(a.id));
    expect_refused(s, TUF_ROLE_ROOT, POSGATE_ERR_PARSE, "twice");

    s = root_signed(ka, 1, 1);
    cJSON_DeleteItemFromObject(cJSON_GetObjectItem(s, "roles"), "timestamp");
    expect_refused(s, TUF_ROLE_ROOT, POSGATE_ERR_PARSE, "roles has no object for \"timestamp\"");

    s = root_signed(ka, 1, 1);
    cJSON_ReplaceItemInObject(s, "consistent_snapshot", cJSON_CreateString("yes"));
    expect_refused(s, TUF_ROLE_ROOT, POSGATE_ERR_PARSE, "consistent_snapshot");

    s = targets_with("a.txt", target_json(-1, "sha256", "00"));
    expect_refused(s, TUF_ROLE_TARGETS, POSGATE_ERR_PARSE, "'length' of target \"a.txt\"");

    {
        cJSON *t = cJSON_CreateObject();

        cJSON_AddNumberToObject(t, "length", 1);
        s = targets_with("a.txt", t);
        expect_refused(s, TUF_ROLE_TARGETS, POSGATE_ERR_PARSE, "'hashes' of target \"a.txt\"");
    }
    {
        cJSON *t = target_json(1, "sha256", "00");

        cJSON_AddNumberToObject(t, "custom", 1.5);
        s = targets_with("a.txt", t);
        expect_refused(s, TUF_ROLE_TARGETS, POSGATE_ERR_PARSE, "'custom' of target");
    }
    /* Delegations: exactly one of paths / path_hash_prefixes; no top-level role names. */
    {
        cJSON *d = cJSON_CreateObject(), *roles = cJSON_CreateArray();
        cJSON *r = role_json(ka, 1, 1);

        s = targets_with("a.txt", target_json(1, "sha256", "00"));
        cJSON_AddStringToObject(r, "name", "lists/a");
        cJSON_AddBoolToObject(r, "terminating", 0);
        cJSON_AddItemToObject(r, "paths", cJSON_CreateArray());
        cJSON_AddItemToObject(r, "path_hash_prefixes", cJSON_CreateArray());
        cJSON_AddItemToArray(roles, r);
        cJSON_AddItemToObject(d, "keys", cJSON_CreateObject());
        cJSON_AddItemToObject(d, "roles", roles);
        cJSON_AddItemToObject(s, "delegations", d);
        expect_refused(cJSON_Duplicate(s, 1), TUF_ROLE_TARGETS, POSGATE_ERR_PARSE,
                       "exactly one of 'paths' and 'path_hash_prefixes'");
        cJSON_DeleteItemFromObject(r, "path_hash_prefixes");
        cJSON_ReplaceItemInObject(r, "name", cJSON_CreateString("snapshot"));
        expect_refused(cJSON_Duplicate(s, 1), TUF_ROLE_TARGETS, POSGATE_ERR_PARSE,
                       "top-level role name");
        cJSON_ReplaceItemInObject(r, "name", cJSON_CreateString("x"));
        cJSON_ReplaceItemInObject(r, "terminating", cJSON_CreateString("no"));
        expect_refused(cJSON_Duplicate(s, 1), TUF_ROLE_TARGETS, POSGATE_ERR_PARSE, "'terminating'");
        cJSON_ReplaceItemInObject(r, "terminating", cJSON_CreateFalse());
        cJSON_AddItemToArray(roles, cJSON_Duplicate(r, 1));
        expect_refused(s, TUF_ROLE_TARGETS, POSGATE_ERR_PARSE, "listed twice");
    }
    /* Unknown fields are tolerated (and signed). */
    {
        struct tuf_meta *m = NULL;
        char msg[TUF_ERRMSG_MAX];
        char *text;

        s = targets_with("a.txt", target_json(1, "sha256", "00"));
        cJSON_AddStringToObject(s, "x-unknown", "kept");
        cJSON_AddStringToObject(cJSON_GetObjectItem(cJSON_GetObjectItem(s, "targets"), "a.txt"),
                                "x-more", "too");
        text = sign_doc(s, ka, 1);
        CHECK_OK(parse_text(text, TUF_ROLE_TARGETS, &m, msg, sizeof(msg)));
        CHECK(m != NULL &&
              strstr((const char *)m->signed_canon.data, "\"x-more\":\"too\"") != NULL);
        tuf_meta_free(m);
        cJSON_free(text);
    }
    key_free(&a);
}

static void
test_caps(void)
{
    struct tuf_meta *m = NULL;
    char msg[TUF_ERRMSG_MAX];
    cJSON *s, *env, *sigs;
    char *text, longname[TUF_NAME_MAX + 2];

    /* More signatures than TUF_MAX_SIGS. */
    s = base_signed("timestamp", 1);
    env = cJSON_CreateObject();
    sigs = cJSON_CreateArray();
    for (int i = 0; i <= TUF_MAX_SIGS; i++) {
        cJSON *o = cJSON_CreateObject();
        char id[16];

        snprintf(id, sizeof(id), "k%d", i);
        cJSON_AddStringToObject(o, "keyid", id);
        cJSON_AddStringToObject(o, "sig", "00");
        cJSON_AddItemToArray(sigs, o);
    }
    cJSON_AddItemToObject(env, "signatures", sigs);
    cJSON_AddItemToObject(env, "signed", s);
    text = cJSON_PrintUnformatted(env);
    CHECK_ERR(parse_text(text, TUF_ROLE_TIMESTAMP, &m, msg, sizeof(msg)), POSGATE_ERR_TOOBIG);
    CHECK_CONTAINS(msg, "signatures, the limit is");
    cJSON_free(text);
    cJSON_Delete(env);

    /* A target path longer than TUF_NAME_MAX. */
    memset(longname, 'a', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = 0;
    s = targets_with(longname, target_json(1, "sha256", "00"));
    expect_refused(s, TUF_ROLE_TARGETS, POSGATE_ERR_TOOBIG, "longer than");

    /* More keys than TUF_MAX_KEYS. */
    s = base_signed("root", 1);
    {
        cJSON *ks = cJSON_CreateObject();

        for (int i = 0; i <= TUF_MAX_KEYS; i++) {
            cJSON *k = cJSON_CreateObject();
            char id[16];

            snprintf(id, sizeof(id), "k%d", i);
            cJSON_AddStringToObject(k, "keytype", "ecdsa");
            cJSON_AddItemToObject(ks, id, k);
        }
        cJSON_AddItemToObject(s, "keys", ks);
    }
    expect_refused(s, TUF_ROLE_ROOT, POSGATE_ERR_TOOBIG, "keys, the limit is");
}

static void
test_hashes(void)
{
    struct tuf_meta *m = NULL;
    char msg[TUF_ERRMSG_MAX];
    uint8_t h256[CRYPTO_SHA256_LEN], h512[CRYPTO_SHA512_LEN];
    char hex[2 * CRYPTO_SHA512_LEN + 1];
    char *text;
    cJSON *s, *t;

    crypto_sha256("abc", 3, h256);
    crypto_sha512("abc", 3, h512);
    crypto_hex(h256, sizeof(h256), hex);
    /* sha256 and an unknown algorithm: the file parses, the hash check refuses. */
    t = target_json(3, "sha256", hex);
    cJSON_AddStringToObject(cJSON_GetObjectItem(t, "hashes"), "md5",
                            "900150983cd24fb0d6963f7d28e17f72");
    s = targets_with("a.txt", t);
    t = target_json(3, "sha512", "");
    crypto_hex(h512, sizeof(h512), hex);
    cJSON_ReplaceItemInObject(cJSON_GetObjectItem(t, "hashes"), "sha512", cJSON_CreateString(hex));
    cJSON_AddItemToObject(cJSON_GetObjectItem(s, "targets"), "b.txt", t);
    cJSON_AddItemToObject(cJSON_GetObjectItem(s, "targets"), "c.txt",
                          target_json(3, "sha256", "abcd"));
    text = sign_doc(s, NULL, 0);
    CHECK_OK(parse_text(text, TUF_ROLE_TARGETS, &m, msg, sizeof(msg)));
    cJSON_free(text);
    if (m == NULL) {
        return;
    }
    {
        const struct tuf_target *a = tuf_meta_find_target(m, "a.txt");
        const struct tuf_target *b = tuf_meta_find_target(m, "b.txt");
        const struct tuf_target *c = tuf_meta_find_target(m, "c.txt");
        uint8_t bad[CRYPTO_SHA512_LEN];

        CHECK(a != NULL && b != NULL && c != NULL);
        if (a != NULL && b != NULL && c != NULL) {
            CHECK_ERR(tuf_hashes_check(&a->hashes, h256, h512, "a.txt", msg, sizeof(msg)),
                      POSGATE_ERR_BADHASH);
            CHECK_CONTAINS(msg, "cannot check (md5)");
            CHECK_OK(tuf_hashes_check(&b->hashes, h256, h512, "b.txt", msg, sizeof(msg)));
            memcpy(bad, h512, sizeof(bad));
            bad[10] ^= 1;
            CHECK_ERR(tuf_hashes_check(&b->hashes, h256, bad, "b.txt", msg, sizeof(msg)),
                      POSGATE_ERR_BADHASH);
            CHECK_CONTAINS(msg, "b.txt has sha512");
            CHECK_ERR(tuf_hashes_check(&c->hashes, h256, h512, "c.txt", msg, sizeof(msg)),
                      POSGATE_ERR_BADHASH);
            CHECK_CONTAINS(msg, "malformed sha256");
        }
    }
    tuf_meta_free(m);
}

static void
test_paths(void)
{
    struct tuf_deleg_role r;
    char *prefixes[1];
    uint8_t h[CRYPTO_SHA256_LEN];
    char hex[2 * CRYPTO_SHA256_LEN + 1];

    CHECK(tuf_path_match("*.md", "README.md"));
    CHECK(!tuf_path_match("*.md", "releases/README.md")); /* '*' does not cross '/' */
    CHECK(!tuf_path_match("*.md", "README.MD"));          /* case sensitive */
    CHECK(tuf_path_match("foo-?.tgz", "foo-1.tgz"));
    CHECK(!tuf_path_match("foo-?.tgz", "foo-alpha.tgz"));
    CHECK(tuf_path_match("releases/*/*", "releases/x/x_v1"));
    CHECK(!tuf_path_match("releases/*/*", "releases/x"));
    CHECK(!tuf_path_match("releases/*", "releases/x/y"));
    CHECK(tuf_path_match("lists/eu-1/*", "lists/eu-1/snap-42.bin"));
    CHECK(!tuf_path_match("lists/eu-1/*", "lists/eu-10/snap-42.bin"));
    CHECK(tuf_path_match("*", "anything"));
    CHECK(!tuf_path_match("*", "a/b"));
    CHECK(tuf_path_match("[ab]*", "beta"));
    CHECK(!tuf_path_match("[!ab]*", "beta"));
    CHECK(tuf_path_match("v[0-9].bin", "v7.bin"));
    CHECK(tuf_path_match("a*b*c", "aXXbYYc"));
    CHECK(!tuf_path_match("a*b*c", "aXXbYY"));
    CHECK(tuf_path_match("", ""));

    /* Hash prefixes: the target path's SHA-256 in hex starts with a listed prefix. */
    crypto_sha256("lists/x", 7, h);
    crypto_hex(h, sizeof(h), hex);
    hex[3] = 0;
    memset(&r, 0, sizeof(r));
    prefixes[0] = hex;
    r.paths = prefixes;
    r.npaths = 1;
    CHECK(tuf_deleg_role_matches(&r, "lists/x"));
    hex[2] = hex[2] == 'f' ? '0' : 'f';
    CHECK(!tuf_deleg_role_matches(&r, "lists/x"));
}

static void
test_succinct(void)
{
    struct tuf_succinct s;
    char out[64], want[64];
    uint8_t h[CRYPTO_SHA256_LEN];

    memset(&s, 0, sizeof(s));
    s.name_prefix = "bin";
    s.bit_length = 8;
    crypto_sha256("lists/a/snap.bin", 16, h);
    snprintf(want, sizeof(want), "bin-%02x", h[0]);
    CHECK_OK(tuf_succinct_role_for(&s, "lists/a/snap.bin", out, sizeof(out)));
    CHECK_STR(out, want);
    /* 3 bits: bins 0..7, one hex digit. */
    s.bit_length = 3;
    snprintf(want, sizeof(want), "bin-%x", h[0] >> 5);
    CHECK_OK(tuf_succinct_role_for(&s, "lists/a/snap.bin", out, sizeof(out)));
    CHECK_STR(out, want);
    /* 9 bits: bins 0..511, three hex digits. */
    s.bit_length = 9;
    snprintf(want, sizeof(want), "bin-%03x", (unsigned)(h[0] << 1 | h[1] >> 7));
    CHECK_OK(tuf_succinct_role_for(&s, "lists/a/snap.bin", out, sizeof(out)));
    CHECK_STR(out, want);
    CHECK_ERR(tuf_succinct_role_for(&s, "x", out, 4), POSGATE_ERR_TOOBIG);
    s.bit_length = 0;
    CHECK_ERR(tuf_succinct_role_for(&s, "x", out, sizeof(out)), POSGATE_ERR_INVALID);
}

int
main(void)
{
    test_safety();
    test_golden();
    test_thresholds();
    test_wrong_types();
    test_caps();
    test_hashes();
    test_paths();
    test_succinct();
    return test_summary("tuf_meta");
}
