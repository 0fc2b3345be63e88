/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The bundle carrier: serves the members of a bundle file (bundle.h) under a prefix through the
 * carrier interface, so a USB-stick bundle goes through the same TUF client as a directory or
 * an HTTP server. Like every carrier it is untrusted: it only finds bytes, the client verifies.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <string.h>

#include "bundle.h"
#include "carrier.h"
#include "plat_mem.h"

#define PREFIX_MAX 64
#define CHUNK      65536

struct carrier_bundle {
    struct carrier base; /* first member: the carrier head */
    struct bundle *b;
    char prefix[PREFIX_MAX + 1];
};

static enum posgate_err
bundle_fetch(struct carrier *c, const char *name, uint64_t max_len, const struct carrier_sink *sink,
             uint64_t *got)
{
    struct carrier_bundle *cb = (struct carrier_bundle *)c;
    char full[PREFIX_MAX + CARRIER_NAME_MAX + 2];
    const struct bundle_entry *e;
    uint8_t chunk[CHUNK];
    uint64_t off = 0;
    enum posgate_err err;
    int n;

    c->errmsg[0] = '\0';
    if (name == NULL || sink == NULL || sink->write == NULL ||
        carrier_check_name(name) != POSGATE_OK) {
        snprintf(c->errmsg, sizeof c->errmsg, "bundle: invalid name");
        return POSGATE_ERR_INVALID;
    }
    n = snprintf(full, sizeof full, "%s%s", cb->prefix, name);
    if (n < 0 || (size_t)n >= sizeof full) {
        snprintf(c->errmsg, sizeof c->errmsg, "bundle: name too long");
        return POSGATE_ERR_INVALID;
    }
    e = bundle_find(cb->b, full);
    if (e == NULL) {
        snprintf(c->errmsg, sizeof c->errmsg, "bundle: no member %.400s", full);
        return POSGATE_ERR_NOTFOUND;
    }
    if (e->length > max_len) {
        snprintf(c->errmsg, sizeof c->errmsg,
                 "bundle: member %.400s is %llu bytes, more than the %llu allowed", full,
                 (unsigned long long)e->length, (unsigned long long)max_len);
        return POSGATE_ERR_TOOBIG;
    }
    while (off < e->length) {
        size_t want = e->length - off < CHUNK ? (size_t)(e->length - off) : CHUNK;

        err = bundle_read(cb->b, e, off, chunk, want);
        if (err != POSGATE_OK) {
            snprintf(c->errmsg, sizeof c->errmsg, "bundle: reading %.400s: %s", full,
                     posgate_strerror(err));
            return POSGATE_ERR_IO;
        }
        err = sink->write(sink->ctx, chunk, want);
        if (err != POSGATE_OK) {
            return err;
        }
        off += want;
    }
    if (got != NULL) {
        *got = e->length;
    }
    return POSGATE_OK;
}

static void
bundle_destroy(struct carrier *c)
{
    struct carrier_bundle *cb = (struct carrier_bundle *)c;

    bundle_free(cb->b);
    plat_free(cb);
}

static const struct carrier_ops bundle_ops = {"bundle", bundle_fetch, bundle_destroy};

enum posgate_err
carrier_bundle_new(const char *bundle_path, const char *prefix, struct carrier **out, char *errmsg,
                   size_t errcap)
{
    enum posgate_err err;
    struct carrier_bundle *cb;
    size_t plen;

    if (bundle_path == NULL || prefix == NULL || out == NULL) {
        return POSGATE_ERR_INVALID;
    }
    plen = strlen(prefix);
    if (plen > PREFIX_MAX || (plen > 0 && prefix[plen - 1] != '/')) {
        if (errmsg != NULL && errcap > 0) {
            snprintf(errmsg, errcap,
                     "bundle carrier: prefix \"%.64s\" must end in '/' and be at "
                     "most %d bytes",
                     prefix, PREFIX_MAX);
        }
        return POSGATE_ERR_INVALID;
    }
    cb = plat_calloc(1, sizeof *cb);
    if (cb == NULL) {
        return POSGATE_ERR_NOMEM;
    }
    err = bundle_open(bundle_path, &cb->b, errmsg, errcap);
    if (err != POSGATE_OK) {
        plat_free(cb);
        return err;
    }
    memcpy(cb->prefix, prefix, plen + 1);
    cb->base.ops = &bundle_ops;
    cb->base.errmsg[0] = '\0';
    *out = &cb->base;
    return POSGATE_OK;
}
