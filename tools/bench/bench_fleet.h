/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Simulated kiosks, for the collector's benchmark (tools/bench/collector-bench, through
 * posgate-bench fleet) and the collector's tests (tests/integration/collector_fleet.c). Each
 * device is made the way a kiosk makes itself: its own P-256 device key (device_key_create), an
 * audit queue (audit_open) into which its decisions are recorded by the kiosk's own code
 * (audit_record), and the batches its uploader would send, cut from that queue by
 * audit_batch_json and signed with the device key. So every batch is a valid signed hash chain
 * that the collector takes exactly as it takes a kiosk's.
 *
 * A device's directory, made by bench_fleet_make:
 *
 *   DIR/device.key   the private key (PEM, 0600)
 *   DIR/device.pub   the public key (PEM): what `posgate-hub enroll --pub` takes
 *   DIR/audit.db     the audit queue, with its reserve DIR/audit.db.reserve (8 MiB)
 *
 * The events are a kiosk's mix, reproducible from (device, seq): 88% ALLOW, 9% DENY (one
 * "match" reason naming a listing), 3% REFER (a "stale" reason); three lists take part in each
 * decision (gate and service lists, each with its seq and a 64-hex digest, the same for every
 * device at a feed version), one subject, an operator, the data age. The canonical text of one
 * is ~900 bytes, the size the kiosk's own events have with three lists (docs/benchmarks.md).
 */
#ifndef POSGATE_BENCH_FLEET_H
#define POSGATE_BENCH_FLEET_H

#include <stddef.h>

#include "audit.h"
#include "audit_event.h"
#include "buf.h"
#include "posgate_err.h"

/* A simulated device: its key and its filled queue. */
struct bench_fleet_dev {
    struct device_key *key;
    struct audit_queue *queue;
    unsigned long d;
    unsigned long events;
};

/* Called with each batch in turn (index 0, 1, ...; batch k holds the k-th chunk of the seqs
 * cut): json is the batch as audit_batch_json writes it (the uploader gzips these bytes).
 * Returns 0 to go on, anything else to stop (bench_fleet_cut then returns IO). */
typedef int (*bench_fleet_batch_fn)(void *ctx, unsigned long index, const struct buf *json,
                                    const struct audit_batch_info *info);

/* Fills e with event seq of device d (seq from 1), as the engine hands a decision to the queue. */
void bench_fleet_event(unsigned long d, unsigned long seq, struct audit_event *e);

/* Makes device d in the new directory dir (mode 0700; STATE when it exists): its key and a
 * queue of `events` decisions, committed. The files stay in dir (the caller removes what it
 * does not keep, after bench_fleet_free). errmsg says what failed. */
POSGATE_WUR enum posgate_err bench_fleet_make(const char *dir, unsigned long d,
                                              unsigned long events, struct bench_fleet_dev **out,
                                              char *errmsg, size_t errcap);
/* Cuts the batches of seqs 1..upto (at most the device's events), chunk events each, signed
 * by the device key, and hands each to fn in order. */
POSGATE_WUR enum posgate_err bench_fleet_cut(struct bench_fleet_dev *dev, unsigned long upto,
                                             unsigned long chunk, bench_fleet_batch_fn fn,
                                             void *ctx, char *errmsg, size_t errcap);
/* The device id (DEVICE_ID_HEX_LEN hex digits). */
const char *bench_fleet_id(const struct bench_fleet_dev *dev);
/* Closes the queue and wipes the key; NULL is a no-op. */
void bench_fleet_free(struct bench_fleet_dev *dev);

#endif
