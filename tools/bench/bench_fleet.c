/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Simulated kiosks (bench_fleet.h): a device key, an audit queue filled with a kiosk's mix of
 * decisions through audit_record, and the signed batches its uploader would send.
 */
#define _POSIX_C_SOURCE 200809L
#include "bench_fleet.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "bench.h"
#include "device_key.h"
#include "plat_clock.h"

#define FEED_VERSION 4711 /* the feed every simulated kiosk has installed */

/* The lists that take part in every decision: the gate's national list and the service's. */
static const char *const lists[] = {"cn.national.wanted", "rail.hsr.banned", "rail.hsr.exempt"};

static void
hex_of(uint64_t seed, char *out, size_t ndigits)
{
    static const char hex[] = "0123456789abcdef";
    uint64_t x = 0;

    for (size_t i = 0; i < ndigits; i++) {
        if (i % 16 == 0) {
            x = bench_mix(seed + i);
        }
        out[i] = hex[x & 0xf];
        x >>= 4;
    }
    out[ndigits] = '\0';
}

void
bench_fleet_event(unsigned long d, unsigned long seq, struct audit_event *e)
{
    uint64_t r = bench_mix(((uint64_t)d << 32) ^ seq);
    unsigned pct = (unsigned)(r % 100);
    int64_t now_us = plat_wall_us();

    memset(e, 0, sizeof(*e));
    snprintf(e->id, sizeof(e->id), "%08lx%08lx%016" PRIx64, d, seq, r);
    e->time_us = now_us;
    e->mono_us = (int64_t)(plat_mono_ns() / 1000u);
    e->at = now_us / 1000000 / 86400 * 86400;
    e->decision = pct < 88 ? AUDIT_ALLOW : pct < 97 ? AUDIT_DENY : AUDIT_REFER;
    snprintf(e->service, sizeof(e->service), "%s", "rail.hsr");
    snprintf(e->operator_id, sizeof(e->operator_id), "clerk-%lu-%lu", d % 1000, seq % 7);
    e->n_subjects = 1;
    for (size_t i = 0; i < AUDIT_SUBJECT_LEN; i++) {
        e->subjects[0][i] = (uint8_t)(bench_mix(r + i) & 0xff);
    }
    e->feed_version = FEED_VERSION;
    e->data_age_s = (int64_t)(60 + r % 3600);
    e->n_lists = sizeof(lists) / sizeof(lists[0]);
    for (size_t i = 0; i < e->n_lists; i++) {
        snprintf(e->lists[i].id, sizeof(e->lists[i].id), "%s", lists[i]);
        e->lists[i].seq = 100 + i;
        hex_of((uint64_t)FEED_VERSION * 64 + i, e->lists[i].digest, 64);
    }
    if (e->decision != AUDIT_ALLOW) {
        struct audit_reason *why = &e->reasons[0];

        e->n_reasons = 1;
        snprintf(why->kind, sizeof(why->kind), "%s", e->decision == AUDIT_DENY ? "match" : "stale");
        snprintf(why->effect, sizeof(why->effect), "%s",
                 e->decision == AUDIT_DENY ? "deny" : "refer");
        snprintf(why->list, sizeof(why->list), "%s", lists[1]);
        if (e->decision == AUDIT_DENY) {
            snprintf(why->listing_id, sizeof(why->listing_id), "L-%06" PRIu64, r % 1000000);
            snprintf(why->reason, sizeof(why->reason), "%s", "court_order");
        }
    }
}

enum posgate_err
bench_fleet_make(const char *dir, unsigned long d, unsigned long events,
                 struct bench_fleet_dev **out, char *errmsg, size_t errcap)
{
    char kp[4200], pp[4200], qp[4200];
    struct bench_fleet_dev *dev;
    struct audit_options o;
    enum posgate_err err;

    *out = NULL;
    snprintf(kp, sizeof(kp), "%s/device.key", dir);
    snprintf(pp, sizeof(pp), "%s/device.pub", dir);
    snprintf(qp, sizeof(qp), "%s/audit.db", dir);
    if (mkdir(dir, 0700) != 0) {
        snprintf(errmsg, errcap, "%s: cannot make the directory: %s", dir, strerror(errno));
        return errno == EEXIST ? POSGATE_ERR_STATE : POSGATE_ERR_IO;
    }
    dev = calloc(1, sizeof(*dev));
    if (dev == NULL) {
        return POSGATE_ERR_NOMEM;
    }
    dev->d = d;
    dev->events = events;
    audit_options_default(&o);
    o.durability = AUDIT_BATCHED; /* ALLOWs group-committed, as on a kiosk */
    err = device_key_create(kp, pp, errmsg, errcap);
    if (err == POSGATE_OK) {
        err = device_key_load(kp, pp, &dev->key, errmsg, errcap);
    }
    if (err == POSGATE_OK) {
        err = audit_open(qp, dev->key, &o, 0, &dev->queue, errmsg, errcap);
    }
    for (unsigned long i = 1; err == POSGATE_OK && i <= events; i++) {
        struct audit_event e;

        bench_fleet_event(d, i, &e);
        err = audit_record(dev->queue, &e, NULL);
        if (err != POSGATE_OK) {
            snprintf(errmsg, errcap, "device %lu: cannot record event %lu: %s", d, i,
                     posgate_strerror(err));
        }
    }
    if (err == POSGATE_OK) {
        err = audit_flush(dev->queue);
        if (err != POSGATE_OK) {
            snprintf(errmsg, errcap, "device %lu: audit_flush: %s", d, posgate_strerror(err));
        }
    }
    if (err != POSGATE_OK) {
        bench_fleet_free(dev);
        return err;
    }
    *out = dev;
    return POSGATE_OK;
}

enum posgate_err
bench_fleet_cut(struct bench_fleet_dev *dev, unsigned long upto, unsigned long chunk,
                bench_fleet_batch_fn fn, void *ctx, char *errmsg, size_t errcap)
{
    struct buf out = BUF_INIT(64u * 1024u * 1024u);
    struct audit_batch_info bi;
    enum posgate_err err = POSGATE_OK;

    if (chunk == 0 || upto > dev->events) {
        snprintf(errmsg, errcap,
                 "device %lu: batches of %lu events up to seq %lu: expected 1 or more events "
                 "a batch, up to at most %lu",
                 dev->d, chunk, upto, dev->events);
        return POSGATE_ERR_INVALID;
    }
    for (unsigned long b = 0; err == POSGATE_OK && b * chunk < upto; b++) {
        size_t n = upto - b * chunk < chunk ? upto - b * chunk : chunk;

        err = audit_batch_json(dev->queue, b * chunk, n, &out, &bi);
        if (err != POSGATE_OK) {
            snprintf(errmsg, errcap, "device %lu: batch %lu: %s", dev->d, b, posgate_strerror(err));
        } else if (fn(ctx, b, &out, &bi) != 0) {
            snprintf(errmsg, errcap, "device %lu: batch %lu not taken", dev->d, b);
            err = POSGATE_ERR_IO;
        }
    }
    buf_free(&out);
    return err;
}

const char *
bench_fleet_id(const struct bench_fleet_dev *dev)
{
    return device_key_id(dev->key);
}

void
bench_fleet_free(struct bench_fleet_dev *dev)
{
    if (dev == NULL) {
        return;
    }
    audit_close(dev->queue);
    device_key_free(dev->key);
    free(dev);
}
