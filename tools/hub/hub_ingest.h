/* SPDX-License-Identifier: Apache-2.0 */
/*
 * `posgate-hub ingest STICK --db HUB`: the office end of the field operator's USB round trip
 * (`posgate field-sync`, agent/audit/field_sync_layout.h draws the stick). Every batch file of every kiosk
 * folder is judged exactly like a POST /v1/audit (hub_db_ingest_json: signature, coverage,
 * chain, duplicates, gaps), in seq order, so ingesting a stick twice changes nothing; then an
 * ack.json goes into the folder with what the collector now holds for that device.
 */
#ifndef POSGATE_HUB_INGEST_H
#define POSGATE_HUB_INGEST_H

/* The command line (argv after "ingest"); returns the exit code: 0 every batch taken, 4 one
 * was refused (not enrolled, bad signature, chain break, malformed), 5 I/O or database. */
int hub_ingest_main(int argc, char **argv);

#endif
