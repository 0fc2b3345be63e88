/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Signing keys held in a PKCS#11 token (an HSM, a smart card, SoftHSM2), named by an RFC 7512
 * URI. The only code that includes p11-kit: it parses the URI, loads the module, finds the
 * token and the key, logs in and signs digests with C_Sign; the private key never leaves the
 * token. Built into its own library (posgate_pkcs11) that only the publisher tools link, so a
 * kiosk never loads a PKCS#11 module.
 *
 * The URI, e.g.
 *
 *   pkcs11:token=posgate;object=root-1;type=private?module-path=/usr/lib/softhsm/libsofthsm2.so
 *          &pin-source=file:/etc/posgate/token.pin
 *
 *   +-------------------------+--------------------------------------------------------------+
 *   | path: token, manufacturer, model, serial | which token (every given one must match;     |
 *   |                         | exactly one token of the module(s) may match)                 |
 *   | path: object, id        | the key's CKA_LABEL and/or CKA_ID (at least one)              |
 *   | path: type              | absent or "private" (the public half is found by id or label) |
 *   | query: module-path      | the module to load; else $POSGATE_PKCS11_MODULE; else every   |
 *   |                         | module p11-kit has registered (filtered by module-name)       |
 *   | query: pin-value        | the user PIN; or pin-source (a file, "file:" optional); else  |
 *   |                         | $POSGATE_PKCS11_PIN; needed when the token requires a login   |
 *   +-------------------------+--------------------------------------------------------------+
 *
 * Key types: EC keys on P-256 sign ecdsa-sha2-nistp256 (CKM_ECDSA over the SHA-256 digest),
 * RSA keys of 2048 to 4096 bits sign rsassa-pss-sha256 (CKM_RSA_PKCS_PSS, MGF1-SHA256, salt
 * length 32). Not thread-safe.
 */
#ifndef POSGATE_PKCS11_SIGNER_H
#define POSGATE_PKCS11_SIGNER_H

#include <stdbool.h>
#include <stddef.h>

#include "buf.h"
#include "crypto.h"
#include "posgate_err.h"

#define PKCS11_SIGNER_URI_MAX 4096

/* True when spec is a "pkcs11:" URI rather than a file path. */
bool pkcs11_signer_is_uri(const char *spec);

/* Opens the token key the URI names as a private key handle whose signatures the token makes
 * (crypto_privkey_external). INVALID for a malformed URI, NOTFOUND when no token or key
 * matches, REJECTED for a refused or missing PIN, UNSUPPORTED for another key type, IO for a module failure;
 * errmsg (may be NULL) names what was expected and what was found. */
POSGATE_WUR enum posgate_err pkcs11_signer_open(const char *uri, struct crypto_privkey **out,
                                                char *errmsg, size_t errcap);

/* Generates a key pair in the token the URI names, labelled by its object= (and id= when given;
 * else a random 16-byte CKA_ID): P-256 for CRYPTO_SCHEME_ECDSA_P256_SHA256, RSA of rsa_bits
 * for CRYPTO_SCHEME_RSA_PSS_SHA256. The private key is sensitive and not extractable. STATE when
 * the token already holds a key with that label or id (never replaced). */
POSGATE_WUR enum posgate_err pkcs11_signer_generate(const char *uri, enum crypto_scheme scheme,
                                                    unsigned rsa_bits, char *errmsg,
                                                    size_t errcap);

/* A key file (PEM, crypto_privkey_load) or a pkcs11: URI, whichever spec is. */
POSGATE_WUR enum posgate_err pkcs11_signer_load_any(const char *spec, struct crypto_privkey **out,
                                                    char *errmsg, size_t errcap);

#endif
