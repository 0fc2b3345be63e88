/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The device key files (device_key.h): creation at `posgate init`, loading with the public key
 * and device id read from device.pub (derived when it is missing), and signing behind a lock
 * so that any thread (the uploader, a CLI command) may sign with one loaded key.
 */
#define _POSIX_C_SOURCE 200809L
#include "device_key.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "crypto.h"
#include "plat_file.h"
#include "plat_mem.h"

struct device_key {
    struct crypto_privkey *priv;
    pthread_mutex_t lock; /* signing is serialised */
    struct buf pub;       /* public key PEM, NUL-terminated (device.pub) */
    char key_path[4096];  /* parsed at the first signature */
    char id[DEVICE_ID_HEX_LEN + 1];
};

void
device_id_from_pub_pem(const char *pem, size_t len, char out[DEVICE_ID_HEX_LEN + 1])
{
    uint8_t h[CRYPTO_SHA256_LEN];

    crypto_sha256(pem, len, h);
    crypto_hex(h, DEVICE_ID_HEX_LEN / 2, out);
}

enum posgate_err
device_key_create(const char *key_path, const char *pub_path, char *errmsg, size_t errcap)
{
    struct crypto_privkey *k = NULL;
    struct buf priv = BUF_INIT(CRYPTO_PEM_MAX), pub = BUF_INIT(CRYPTO_PEM_MAX);
    enum posgate_err err;

    if (plat_exists(key_path)) {
        snprintf(errmsg, errcap, "device key %s exists already (a device keeps its key)", key_path);
        return POSGATE_ERR_STATE;
    }
    err = crypto_privkey_generate(&k);
    if (err == POSGATE_OK) {
        err = crypto_privkey_pem(k, &priv);
    }
    if (err == POSGATE_OK) {
        err = crypto_privkey_public_pem(k, &pub);
    }
    if (err != POSGATE_OK) {
        snprintf(errmsg, errcap, "device key: cannot generate: %s", posgate_strerror(err));
        goto out;
    }
    /* the public half first: a crash between the two leaves no orphan private key */
    err = plat_write_atomic(pub_path, pub.data, pub.len, 0644);
    if (err == POSGATE_OK) {
        err = plat_write_atomic(key_path, priv.data, priv.len, 0600);
    }
    if (err != POSGATE_OK) {
        snprintf(errmsg, errcap, "device key: cannot write %s: %s", key_path,
                 posgate_strerror(err));
    }
out:
    buf_wipe(&priv);
    buf_free(&pub);
    crypto_privkey_free(k);
    return err;
}

/* Parses the private key and derives its public PEM (pub reset first). */
static enum posgate_err
parse_key(const char *key_path, struct crypto_privkey **priv, struct buf *pub, char *errmsg,
          size_t errcap)
{
    struct buf pem = BUF_INIT(CRYPTO_PEM_MAX);
    enum posgate_err err = plat_read_file(key_path, &pem);

    if (err != POSGATE_OK) {
        snprintf(errmsg, errcap, "device key %s: %s", key_path, posgate_strerror(err));
        goto out;
    }
    err = crypto_privkey_from_pem(buf_cstr(&pem), priv);
    if (err == POSGATE_OK) {
        buf_reset(pub);
        err = crypto_privkey_public_pem(*priv, pub);
    }
    if (err != POSGATE_OK) {
        snprintf(errmsg, errcap, "device key %s: expected a PEM ECDSA P-256 private key: %s",
                 key_path, posgate_strerror(err));
        err = err == POSGATE_ERR_NOMEM ? err : POSGATE_ERR_INVALID;
    }
out:
    buf_wipe(&pem);
    return err;
}

enum posgate_err
device_key_load(const char *key_path, const char *pub_path, struct device_key **out, char *errmsg,
                size_t errcap)
{
    struct device_key *k;
    enum posgate_err err;

    *out = NULL;
    if (!plat_exists(key_path)) {
        snprintf(errmsg, errcap, "device key %s: not found", key_path);
        return POSGATE_ERR_NOTFOUND;
    }
    k = plat_calloc(1, sizeof(*k));
    if (k == NULL) {
        return POSGATE_ERR_NOMEM;
    }
    buf_init(&k->pub, CRYPTO_PEM_MAX);
    if (pthread_mutex_init(&k->lock, NULL) != 0) {
        plat_free(k);
        return POSGATE_ERR_NOMEM;
    }
    snprintf(k->key_path, sizeof(k->key_path), "%s", key_path);
    /* The public half is all a check needs (the device id); the private key is parsed at the
     * first signature. Without device.pub it is derived and written now. */
    err = pub_path != NULL ? plat_read_file(pub_path, &k->pub) : POSGATE_ERR_NOTFOUND;
    if (err == POSGATE_ERR_NOTFOUND) {
        err = parse_key(key_path, &k->priv, &k->pub, errmsg, errcap);
        if (err == POSGATE_OK && pub_path != NULL) {
            err = plat_write_atomic(pub_path, k->pub.data, k->pub.len, 0644);
            if (err != POSGATE_OK) {
                snprintf(errmsg, errcap, "device key: cannot write %s: %s", pub_path,
                         posgate_strerror(err));
            }
        }
    } else if (err != POSGATE_OK) {
        snprintf(errmsg, errcap, "device key %s: %s", pub_path, posgate_strerror(err));
    }
    if (err != POSGATE_OK) {
        goto fail;
    }
    device_id_from_pub_pem((const char *)k->pub.data, k->pub.len, k->id);
    *out = k;
    return POSGATE_OK;
fail:
    device_key_free(k);
    return err;
}

void
device_key_free(struct device_key *k)
{
    if (k == NULL) {
        return;
    }
    crypto_privkey_free(k->priv);
    buf_free(&k->pub);
    pthread_mutex_destroy(&k->lock);
    plat_free(k);
}

const char *
device_key_id(const struct device_key *k)
{
    return k != NULL ? k->id : "";
}

const char *
device_key_pub_pem(const struct device_key *k)
{
    return k != NULL ? buf_cstr(&k->pub) : "";
}

enum posgate_err
device_key_sign(struct device_key *k, const void *msg, size_t len, struct buf *sig)
{
    enum posgate_err err;

    if (k == NULL || sig == NULL) {
        return POSGATE_ERR_INVALID;
    }
    pthread_mutex_lock(&k->lock);
    err = POSGATE_OK;
    if (k->priv == NULL) {
        struct buf derived = BUF_INIT(CRYPTO_PEM_MAX);
        char msgbuf[256];

        err = parse_key(k->key_path, &k->priv, &derived, msgbuf, sizeof(msgbuf));
        if (err == POSGATE_OK &&
            (derived.len != k->pub.len || memcmp(derived.data, k->pub.data, derived.len) != 0)) {
            /* device.pub was replaced: signatures would not match the enrolled key */
            crypto_privkey_free(k->priv);
            k->priv = NULL;
            err = POSGATE_ERR_CORRUPT;
        }
        buf_free(&derived);
    }
    if (err == POSGATE_OK) {
        err = crypto_privkey_sign(k->priv, msg, len, sig);
    }
    pthread_mutex_unlock(&k->lock);
    return err;
}
