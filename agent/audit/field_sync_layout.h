/* SPDX-License-Identifier: Apache-2.0 */
/*
 * `posgate field-sync STICK`: a kiosk that never sees a network exchanges everything with the
 * office through one USB stick per visit (docs/audit.md, "Field sync"). In this order it
 *   1. imports the newest feed bundle on the stick (the same update_run as `posgate import`;
 *      the newest is chosen by the timestamp version each bundle claims, untrusted, and then
 *      verified like any import);
 *   2. reads the collector's acknowledgement left by `posgate-hub ingest` and passes its
 *      acked_seq to audit_ack (never past the kiosk's own head, never for another device);
 *   3. writes every unacknowledged audit event as signed batches, exactly the JSON the
 *      uploader posts (audit_batch_json), and removes batch files the collector now holds;
 *   4. writes its signed status report (device_report.h), the sync source being "bundle".
 * A lost stick loses nothing: a fresh stick gets every event not acknowledged.
 *
 *   STICK/
 *   +-- *.bundle                          feed bundles (posgate-publish bundle)
 *   +-- posgate/<device_id>/              one folder per kiosk, 32 hex digits
 *       +-- batch-<first>-<last>.json     a signed audit batch, seqs zero-padded to 20 digits
 *       +-- status.json                   the signed status report (device_report.h)
 *       +-- ack.json                      written by posgate-hub ingest (below), read here
 *
 *   ack.json (unsigned: the collector holds no key; see docs/audit.md for what that allows)
 *   +-------------+----------------------------------------------------------------+
 *   | v           | 1                                                              |
 *   | device_id   | 32 hex, the folder's name                                      |
 *   | acked_seq   | every seq 1..acked_seq is held by the collector                |
 *   | held_seq    | highest seq held (> acked_seq only while a gap is open)        |
 *   | ingested_at | collector's wall clock, seconds                                |
 *   +-------------+----------------------------------------------------------------+
 */
#ifndef POSGATE_FIELD_SYNC_LAYOUT_H
#define POSGATE_FIELD_SYNC_LAYOUT_H

#define FIELD_SYNC_DIR       "posgate"
#define FIELD_SYNC_ACK       "ack.json"
#define FIELD_SYNC_STATUS    "status.json"
#define FIELD_SYNC_BATCH_MAX 5000 /* events in one batch file (the collector takes 10,000) */

#endif
