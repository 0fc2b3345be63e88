/* SPDX-License-Identifier: Apache-2.0 */
/*
 * PKCS#11 token keys for the writer: RFC 7512 URIs parsed by p11-kit (p11_kit_uri_parse), the
 * module loaded and initialised through p11-kit (which also shares one module between several
 * keys of a process), C_Sign for every signature. The only file that includes p11-kit.
 */
#define _POSIX_C_SOURCE 200809L
#include "pkcs11_signer.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <p11-kit/p11-kit.h>
#include <p11-kit/pkcs11.h>
#include <p11-kit/uri.h>

#include "plat_file.h"
#include "plat_mem.h"
#include "plat_random.h"

#define PIN_MAX      256
#define ATTR_MAX     1024 /* bytes of a modulus, a point or the curve parameters */
#define MATCH_MAX    64   /* objects looked at per search */
#define KEY_ID_BYTES 16

/* DER OID of prime256v1 (secp256r1), the only curve TUF's ecdsa-sha2-nistp256 allows. */
static const unsigned char p256_oid[] = {0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07};

/* An open session on the token of one key; owned by the key handle. */
struct token_key {
    CK_FUNCTION_LIST *module;
    CK_SESSION_HANDLE session;
    CK_OBJECT_HANDLE key;
};

static void
set_err(char *errmsg, size_t cap, const char *fmt, ...)
{
    va_list ap;

    if (errmsg == NULL || cap == 0) {
        return;
    }
    va_start(ap, fmt);
    vsnprintf(errmsg, cap, fmt, ap);
    va_end(ap);
}

bool
pkcs11_signer_is_uri(const char *spec)
{
    return spec != NULL && strncmp(spec, "pkcs11:", 7) == 0;
}

static void
module_close(CK_FUNCTION_LIST *m)
{
    if (m != NULL) {
        p11_kit_module_finalize(m);
        p11_kit_module_release(m);
    }
}

/* The slots of module m whose token the URI matches, appended to slots (at most cap). */
static size_t
matching_slots(P11KitUri *uri, CK_FUNCTION_LIST *m, CK_SLOT_ID *slots, size_t cap)
{
    CK_SLOT_ID list[MATCH_MAX];
    CK_ULONG n = MATCH_MAX;
    size_t found = 0;

    if (m->C_GetSlotList(CK_TRUE, list, &n) != CKR_OK) {
        return 0;
    }
    for (CK_ULONG i = 0; i < n && found < cap; i++) {
        CK_TOKEN_INFO ti;

        if (m->C_GetTokenInfo(list[i], &ti) == CKR_OK && p11_kit_uri_match_token_info(uri, &ti)) {
            slots[found++] = list[i];
        }
    }
    return found;
}

/*
 * Finds the one token the URI names: *module gets the initialised module (the caller closes
 * it), *slot its slot. NOTFOUND when none matches, INVALID when more than one does.
 */
static enum posgate_err
find_token(P11KitUri *uri, CK_FUNCTION_LIST **module, CK_SLOT_ID *slot, char *errmsg, size_t cap)
{
    const char *path = p11_kit_uri_get_module_path(uri);
    const char *name = p11_kit_uri_get_module_name(uri);
    CK_FUNCTION_LIST **all = NULL;
    CK_FUNCTION_LIST *chosen = NULL;
    CK_SLOT_ID slots[2];
    size_t matches = 0;
    enum posgate_err err = POSGATE_OK;

    *module = NULL;
    if (path == NULL) {
        path = getenv("POSGATE_PKCS11_MODULE");
    }
    if (path != NULL && path[0] != '\0') {
        CK_FUNCTION_LIST *m = p11_kit_module_load(path, 0);

        if (m == NULL || p11_kit_module_initialize(m) != CKR_OK) {
            set_err(errmsg, cap, "cannot load the PKCS#11 module %s: %s", path,
                    p11_kit_message() != NULL ? p11_kit_message() : "unknown error");
            if (m != NULL) {
                p11_kit_module_release(m);
            }
            return POSGATE_ERR_IO;
        }
        matches = matching_slots(uri, m, slots, 2);
        chosen = m;
    } else {
        all = p11_kit_modules_load_and_initialize(0);
        if (all == NULL) {
            set_err(errmsg, cap, "cannot load the registered PKCS#11 modules: %s",
                    p11_kit_message() != NULL ? p11_kit_message() : "unknown error");
            return POSGATE_ERR_IO;
        }
        for (size_t i = 0; all[i] != NULL && matches < 2; i++) {
            char *mname = p11_kit_module_get_name(all[i]);
            int skip = name != NULL && (mname == NULL || strcmp(mname, name) != 0);
            size_t got;

            free(mname);
            if (skip) {
                continue;
            }
            got = matching_slots(uri, all[i], slots + matches, 2 - matches);
            if (got > 0 && chosen == NULL) {
                chosen = all[i];
            }
            matches += got;
        }
    }
    if (matches != 1) {
        set_err(errmsg, cap,
                matches == 0 ? "no PKCS#11 token matches the URI (expected one; is the module "
                               "given as ?module-path=... and the token initialised?)"
                             : "more than one PKCS#11 token matches the URI (expected one; add "
                               "token= or serial=)");
        err = matches == 0 ? POSGATE_ERR_NOTFOUND : POSGATE_ERR_INVALID;
        chosen = NULL;
    }
    if (all != NULL) {
        for (size_t i = 0; all[i] != NULL; i++) {
            if (all[i] != chosen) {
                module_close(all[i]);
            }
        }
        free(all);
    } else if (err != POSGATE_OK) {
        module_close(chosen);
    }
    if (err == POSGATE_OK) {
        *module = chosen;
        *slot = slots[0];
    }
    return err;
}

/* The PIN the URI, its pin-source file or $POSGATE_PKCS11_PIN gives; "" when none. */
static enum posgate_err
get_pin(P11KitUri *uri, char *pin, size_t cap, char *errmsg, size_t errcap)
{
    const char *v = p11_kit_uri_get_pin_value(uri);
    const char *src = p11_kit_uri_get_pin_source(uri);
    struct buf raw = BUF_INIT(PIN_MAX);
    enum posgate_err err = POSGATE_OK;

    pin[0] = '\0';
    if (v == NULL && src == NULL) {
        v = getenv("POSGATE_PKCS11_PIN");
    }
    if (v != NULL) {
        if (strlen(v) >= cap) {
            set_err(errmsg, errcap, "the PIN is longer than %zu bytes", cap - 1);
            return POSGATE_ERR_TOOBIG;
        }
        memcpy(pin, v, strlen(v) + 1);
        return POSGATE_OK;
    }
    if (src == NULL) {
        return POSGATE_OK;
    }
    if (strncmp(src, "file:", 5) == 0) {
        src += 5;
    }
    err = plat_read_file(src, &raw);
    if (err != POSGATE_OK) {
        set_err(errmsg, errcap, "pin-source %s: %s (expected a file holding the PIN)", src,
                posgate_strerror(err));
        goto out;
    }
    while (raw.len > 0 && (raw.data[raw.len - 1] == '\n' || raw.data[raw.len - 1] == '\r')) {
        raw.len--;
    }
    if (raw.len >= cap) {
        set_err(errmsg, errcap, "pin-source %s: the PIN is longer than %zu bytes", src, cap - 1);
        err = POSGATE_ERR_TOOBIG;
        goto out;
    }
    memcpy(pin, raw.data, raw.len);
    pin[raw.len] = '\0';
out:
    buf_wipe(&raw);
    return err;
}

/* Opens a session on the token (read-write when rw) and logs in when the token asks for it. */
static enum posgate_err
open_session(P11KitUri *uri, CK_FUNCTION_LIST *m, CK_SLOT_ID slot, int rw, CK_SESSION_HANDLE *s,
             char *errmsg, size_t cap)
{
    CK_TOKEN_INFO ti;
    CK_FLAGS flags = CKF_SERIAL_SESSION | (rw ? CKF_RW_SESSION : 0);
    char pin[PIN_MAX];
    CK_RV rv;
    enum posgate_err err;

    rv = m->C_OpenSession(slot, flags, NULL, NULL, s);
    if (rv != CKR_OK) {
        set_err(errmsg, cap, "C_OpenSession failed: CKR 0x%lx", (unsigned long)rv);
        return POSGATE_ERR_IO;
    }
    if (m->C_GetTokenInfo(slot, &ti) != CKR_OK || (ti.flags & CKF_LOGIN_REQUIRED) == 0) {
        return POSGATE_OK;
    }
    err = get_pin(uri, pin, sizeof pin, errmsg, cap);
    if (err == POSGATE_OK && pin[0] == '\0') {
        set_err(errmsg, cap,
                "the token needs a user PIN, none was given (expected pin-source= or pin-value= "
                "in the URI, or $POSGATE_PKCS11_PIN)");
        err = POSGATE_ERR_REJECTED;
    }
    if (err == POSGATE_OK) {
        rv = m->C_Login(*s, CKU_USER, (CK_UTF8CHAR *)pin, (CK_ULONG)strlen(pin));
        if (rv != CKR_OK && rv != CKR_USER_ALREADY_LOGGED_IN) {
            set_err(errmsg, cap, "the token refused the PIN: C_Login CKR 0x%lx",
                    (unsigned long)rv);
            err = POSGATE_ERR_REJECTED;
        }
    }
    plat_wipe(pin, sizeof pin);
    if (err != POSGATE_OK) {
        m->C_CloseSession(*s);
    }
    return err;
}

/* Up to cap objects of class cls whose label and id are the URI's (those it gives). */
static size_t
find_objects(P11KitUri *uri, CK_FUNCTION_LIST *m, CK_SESSION_HANDLE s, CK_OBJECT_CLASS cls,
             CK_OBJECT_HANDLE *out, size_t cap)
{
    CK_ATTRIBUTE tmpl[3];
    CK_ATTRIBUTE *a;
    CK_ULONG n = 0, got = 0;

    tmpl[n].type = CKA_CLASS;
    tmpl[n].pValue = &cls;
    tmpl[n].ulValueLen = sizeof cls;
    n++;
    a = p11_kit_uri_get_attribute(uri, CKA_LABEL);
    if (a != NULL) {
        tmpl[n++] = *a;
    }
    a = p11_kit_uri_get_attribute(uri, CKA_ID);
    if (a != NULL) {
        tmpl[n++] = *a;
    }
    if (m->C_FindObjectsInit(s, tmpl, n) != CKR_OK) {
        return 0;
    }
    if (m->C_FindObjects(s, out, (CK_ULONG)cap, &got) != CKR_OK) {
        got = 0;
    }
    m->C_FindObjectsFinal(s);
    return (size_t)got;
}

static enum posgate_err
get_attr(CK_FUNCTION_LIST *m, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE o, CK_ATTRIBUTE_TYPE type,
         unsigned char *val, size_t cap, size_t *len)
{
    CK_ATTRIBUTE a = {type, val, (CK_ULONG)cap};

    if (m->C_GetAttributeValue(s, o, &a, 1) != CKR_OK || a.ulValueLen == (CK_ULONG)-1 ||
        a.ulValueLen > cap) {
        return POSGATE_ERR_NOTFOUND;
    }
    *len = (size_t)a.ulValueLen;
    return POSGATE_OK;
}

/* PEM of the key's public half: from its public key object (found by the URI, else by the
 * private key's CKA_ID), or the private object's own public attributes (RSA). */
static enum posgate_err
public_pem(P11KitUri *uri, struct token_key *tk, CK_KEY_TYPE kt, struct buf *pem, char *errmsg,
           size_t cap)
{
    CK_OBJECT_HANDLE pubs[2];
    CK_OBJECT_HANDLE src = tk->key;
    unsigned char a[ATTR_MAX], b[ATTR_MAX];
    size_t alen = 0, blen = 0;
    enum posgate_err err;

    if (find_objects(uri, tk->module, tk->session, CKO_PUBLIC_KEY, pubs, 2) == 1) {
        src = pubs[0];
    }
    if (kt == CKK_RSA) {
        err = get_attr(tk->module, tk->session, src, CKA_MODULUS, a, sizeof a, &alen);
        if (err == POSGATE_OK) {
            err = get_attr(tk->module, tk->session, src, CKA_PUBLIC_EXPONENT, b, sizeof b, &blen);
        }
        if (err == POSGATE_OK) {
            err = crypto_pubkey_pem_from_rsa(a, alen, b, blen, pem);
        }
        if (err != POSGATE_OK) {
            set_err(errmsg, cap,
                    "cannot read the token RSA key's modulus and exponent, or it is not of "
                    "2048 to 4096 bits: %s",
                    posgate_strerror(err));
        }
        return err;
    }
    err = get_attr(tk->module, tk->session, src, CKA_EC_PARAMS, a, sizeof a, &alen);
    if (err != POSGATE_OK || alen != sizeof p256_oid || memcmp(a, p256_oid, alen) != 0) {
        set_err(errmsg, cap, "the token EC key is not on P-256 (expected prime256v1, the curve "
                             "of ecdsa-sha2-nistp256)");
        return POSGATE_ERR_UNSUPPORTED;
    }
    err = get_attr(tk->module, tk->session, src, CKA_EC_POINT, b, sizeof b, &blen);
    if (err != POSGATE_OK) {
        set_err(errmsg, cap, "cannot read the token EC key's public point (expected a public key "
                             "object beside the private key, with the same id or label)");
        return err;
    }
    /* CKA_EC_POINT is the DER OCTET STRING around 0x04 || X || Y (some modules give it bare). */
    if (blen == 67 && b[0] == 0x04 && b[1] == 0x41) {
        err = crypto_pubkey_pem_from_ec_point(b + 2, 65, pem);
    } else {
        err = crypto_pubkey_pem_from_ec_point(b, blen, pem);
    }
    if (err != POSGATE_OK) {
        set_err(errmsg, cap, "the token EC key's public point (%zu bytes) is not a P-256 point",
                blen);
    }
    return err;
}

static enum posgate_err
token_sign(void *ctx, enum crypto_scheme scheme, const uint8_t digest[CRYPTO_SHA256_LEN],
           struct buf *sig)
{
    struct token_key *tk = ctx;
    CK_RSA_PKCS_PSS_PARAMS pss = {CKM_SHA256, CKG_MGF1_SHA256, CRYPTO_SHA256_LEN};
    CK_MECHANISM mech = {CKM_ECDSA, NULL, 0};
    unsigned char out[CRYPTO_SIG_MAX];
    CK_ULONG len = sizeof out;

    if (scheme == CRYPTO_SCHEME_RSA_PSS_SHA256) {
        mech.mechanism = CKM_RSA_PKCS_PSS;
        mech.pParameter = &pss;
        mech.ulParameterLen = sizeof pss;
    }
    if (tk->module->C_SignInit(tk->session, &mech, tk->key) != CKR_OK ||
        tk->module->C_Sign(tk->session, (CK_BYTE *)digest, CRYPTO_SHA256_LEN, out, &len) !=
            CKR_OK) {
        return POSGATE_ERR_IO;
    }
    return buf_append(sig, out, (size_t)len);
}

static void
token_free(void *ctx)
{
    struct token_key *tk = ctx;

    if (tk == NULL) {
        return;
    }
    if (tk->module != NULL) {
        tk->module->C_CloseSession(tk->session);
        module_close(tk->module);
    }
    plat_free(tk);
}

static const struct crypto_signer_ops token_ops = {token_sign, token_free};

/* Parses an object URI; INVALID (with the parser's reason) for a malformed one or one that
 * names no key (object= or id=). */
static enum posgate_err
parse_uri(const char *text, P11KitUri **out, char *errmsg, size_t cap)
{
    P11KitUri *uri;
    CK_ATTRIBUTE *cls;
    int rc;

    *out = NULL;
    if (text == NULL || !pkcs11_signer_is_uri(text)) {
        set_err(errmsg, cap, "expected a pkcs11: URI, found \"%.40s\"", text != NULL ? text : "");
        return POSGATE_ERR_INVALID;
    }
    if (strlen(text) > PKCS11_SIGNER_URI_MAX) {
        set_err(errmsg, cap, "the pkcs11: URI is longer than %d bytes", PKCS11_SIGNER_URI_MAX);
        return POSGATE_ERR_TOOBIG;
    }
    uri = p11_kit_uri_new();
    if (uri == NULL) {
        return POSGATE_ERR_NOMEM;
    }
    rc = p11_kit_uri_parse(text, P11_KIT_URI_FOR_ANY, uri);
    if (rc != P11_KIT_URI_OK) {
        set_err(errmsg, cap, "malformed pkcs11: URI (RFC 7512): %s", p11_kit_uri_message(rc));
        p11_kit_uri_free(uri);
        return POSGATE_ERR_INVALID;
    }
    if (p11_kit_uri_get_attribute(uri, CKA_LABEL) == NULL &&
        p11_kit_uri_get_attribute(uri, CKA_ID) == NULL) {
        set_err(errmsg, cap, "the pkcs11: URI names no key (expected object= or id=)");
        p11_kit_uri_free(uri);
        return POSGATE_ERR_INVALID;
    }
    cls = p11_kit_uri_get_attribute(uri, CKA_CLASS);
    if (cls != NULL && (cls->ulValueLen != sizeof(CK_OBJECT_CLASS) ||
                        *(CK_OBJECT_CLASS *)cls->pValue != CKO_PRIVATE_KEY)) {
        set_err(errmsg, cap, "the pkcs11: URI names a type other than private (expected "
                             "type=private or no type)");
        p11_kit_uri_free(uri);
        return POSGATE_ERR_INVALID;
    }
    *out = uri;
    return POSGATE_OK;
}

enum posgate_err
pkcs11_signer_open(const char *text, struct crypto_privkey **out, char *errmsg, size_t cap)
{
    P11KitUri *uri = NULL;
    struct token_key *tk = NULL;
    struct buf pem = BUF_INIT(CRYPTO_PEM_MAX);
    CK_OBJECT_HANDLE keys[2];
    CK_SLOT_ID slot = 0;
    CK_KEY_TYPE kt = 0;
    size_t n, len = 0;
    enum posgate_err err;

    if (out == NULL) {
        return POSGATE_ERR_INVALID;
    }
    *out = NULL;
    err = parse_uri(text, &uri, errmsg, cap);
    if (err != POSGATE_OK) {
        goto out;
    }
    tk = plat_calloc(1, sizeof *tk);
    if (tk == NULL) {
        err = POSGATE_ERR_NOMEM;
        goto out;
    }
    err = find_token(uri, &tk->module, &slot, errmsg, cap);
    if (err != POSGATE_OK) {
        goto out;
    }
    err = open_session(uri, tk->module, slot, 0, &tk->session, errmsg, cap);
    if (err != POSGATE_OK) {
        module_close(tk->module);
        tk->module = NULL;
        goto out;
    }
    n = find_objects(uri, tk->module, tk->session, CKO_PRIVATE_KEY, keys, 2);
    if (n != 1) {
        set_err(errmsg, cap, "the token holds %zu private keys matching the URI (expected one)",
                n);
        err = n == 0 ? POSGATE_ERR_NOTFOUND : POSGATE_ERR_INVALID;
        goto out;
    }
    tk->key = keys[0];
    err = get_attr(tk->module, tk->session, tk->key, CKA_KEY_TYPE, (unsigned char *)&kt,
                   sizeof kt, &len);
    if (err != POSGATE_OK || (kt != CKK_EC && kt != CKK_RSA)) {
        set_err(errmsg, cap, "the token key is of type 0x%lx (expected EC P-256 or RSA)",
                (unsigned long)kt);
        err = POSGATE_ERR_UNSUPPORTED;
        goto out;
    }
    err = public_pem(uri, tk, kt, &pem, errmsg, cap);
    if (err != POSGATE_OK) {
        goto out;
    }
    err = crypto_privkey_external(buf_cstr(&pem), &token_ops, tk, out);
    if (err != POSGATE_OK) {
        set_err(errmsg, cap, "the token key's public half is not a TUF signing key: %s",
                posgate_strerror(err));
        goto out;
    }
    tk = NULL; /* the key handle owns the session now */
out:
    token_free(tk);
    buf_free(&pem);
    if (uri != NULL) {
        p11_kit_uri_free(uri);
    }
    return err;
}

enum posgate_err
pkcs11_signer_generate(const char *text, enum crypto_scheme scheme, unsigned rsa_bits,
                       char *errmsg, size_t cap)
{
    P11KitUri *uri = NULL;
    CK_FUNCTION_LIST *m = NULL;
    CK_SESSION_HANDLE s = 0;
    CK_SLOT_ID slot = 0;
    CK_OBJECT_HANDLE found[1], pub = 0, priv = 0;
    CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
    CK_ULONG bits = rsa_bits;
    CK_BYTE exponent[] = {0x01, 0x00, 0x01};
    unsigned char idbuf[KEY_ID_BYTES];
    CK_ATTRIBUTE label = {CKA_LABEL, NULL, 0}, id = {CKA_ID, idbuf, sizeof idbuf};
    CK_ATTRIBUTE *a;
    CK_MECHANISM mech = {CKM_EC_KEY_PAIR_GEN, NULL, 0};
    CK_RV rv;
    int session = 0;
    enum posgate_err err;

    if (scheme == CRYPTO_SCHEME_RSA_PSS_SHA256 &&
        (rsa_bits < CRYPTO_RSA_MIN_BITS || rsa_bits > CRYPTO_RSA_MAX_BITS)) {
        set_err(errmsg, cap, "RSA keys of %u bits are not supported (expected %d to %d)",
                rsa_bits, CRYPTO_RSA_MIN_BITS, CRYPTO_RSA_MAX_BITS);
        return POSGATE_ERR_INVALID;
    }
    if (scheme != CRYPTO_SCHEME_RSA_PSS_SHA256 && scheme != CRYPTO_SCHEME_ECDSA_P256_SHA256) {
        set_err(errmsg, cap, "only ECDSA P-256 and RSA-PSS keys can be generated");
        return POSGATE_ERR_UNSUPPORTED;
    }
    err = parse_uri(text, &uri, errmsg, cap);
    if (err != POSGATE_OK) {
        goto out;
    }
    a = p11_kit_uri_get_attribute(uri, CKA_LABEL);
    if (a != NULL) {
        label = *a;
    }
    a = p11_kit_uri_get_attribute(uri, CKA_ID);
    if (a != NULL) {
        id = *a;
    } else {
        err = plat_random(idbuf, sizeof idbuf);
        if (err != POSGATE_OK) {
            goto out;
        }
    }
    err = find_token(uri, &m, &slot, errmsg, cap);
    if (err != POSGATE_OK) {
        goto out;
    }
    err = open_session(uri, m, slot, 1, &s, errmsg, cap);
    if (err != POSGATE_OK) {
        goto out;
    }
    session = 1;
    if (find_objects(uri, m, s, CKO_PRIVATE_KEY, found, 1) != 0 ||
        find_objects(uri, m, s, CKO_PUBLIC_KEY, found, 1) != 0) {
        set_err(errmsg, cap, "the token already holds a key matching the URI; refusing to add "
                             "another (expected a new object= label)");
        err = POSGATE_ERR_STATE;
        goto out;
    }
    {
        CK_ATTRIBUTE pub_ec[] = {{CKA_TOKEN, &yes, sizeof yes},
                                 {CKA_VERIFY, &yes, sizeof yes},
                                 {CKA_EC_PARAMS, (void *)p256_oid, sizeof p256_oid},
                                 label,
                                 id};
        CK_ATTRIBUTE pub_rsa[] = {{CKA_TOKEN, &yes, sizeof yes},
                                  {CKA_VERIFY, &yes, sizeof yes},
                                  {CKA_MODULUS_BITS, &bits, sizeof bits},
                                  {CKA_PUBLIC_EXPONENT, exponent, sizeof exponent},
                                  label,
                                  id};
        CK_ATTRIBUTE prv[] = {{CKA_TOKEN, &yes, sizeof yes},   {CKA_PRIVATE, &yes, sizeof yes},
                              {CKA_SIGN, &yes, sizeof yes},    {CKA_SENSITIVE, &yes, sizeof yes},
                              {CKA_EXTRACTABLE, &no, sizeof no}, label,
                              id};
        int rsa = scheme == CRYPTO_SCHEME_RSA_PSS_SHA256;
        CK_ULONG npub = rsa ? 6 : 5, nprv = 7;

        if (label.pValue == NULL) {
            npub--; /* the label is the last but one: drop it by moving the id down */
            nprv--;
            if (rsa) {
                pub_rsa[4] = id;
            } else {
                pub_ec[3] = id;
            }
            prv[5] = id;
        }
        if (rsa) {
            mech.mechanism = CKM_RSA_PKCS_KEY_PAIR_GEN;
        }
        rv = m->C_GenerateKeyPair(s, &mech, rsa ? pub_rsa : pub_ec, npub, prv, nprv, &pub, &priv);
    }
    if (rv != CKR_OK) {
        set_err(errmsg, cap, "the token could not generate the key pair: C_GenerateKeyPair CKR "
                             "0x%lx",
                (unsigned long)rv);
        err = POSGATE_ERR_IO;
    }
out:
    if (session) {
        m->C_CloseSession(s);
    }
    module_close(m);
    if (uri != NULL) {
        p11_kit_uri_free(uri);
    }
    return err;
}

enum posgate_err
pkcs11_signer_load_any(const char *spec, struct crypto_privkey **out, char *errmsg, size_t cap)
{
    enum posgate_err err;

    if (pkcs11_signer_is_uri(spec)) {
        return pkcs11_signer_open(spec, out, errmsg, cap);
    }
    err = crypto_privkey_load(spec, out);
    if (err != POSGATE_OK) {
        set_err(errmsg, cap,
                "cannot load the private key %s: %s (expected a PEM ECDSA P-256 or RSA key from "
                "posgate-keygen, or a pkcs11: URI)",
                spec, posgate_strerror(err));
    }
    return err;
}
