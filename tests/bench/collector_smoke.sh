#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The collector's benchmark (tools/bench/collector-bench) still runs: a tiny mode (20 kiosks,
# 6 events each in batches of 3, 2 single-event batches, 8 connections) through every phase on
# the throwaway server of with_pg.sh; then the JSON it wrote holds every key the benchmark
# promises, every phase stored exactly the events it sent (and sent what the fleet holds), no
# upload failed, and the COPY floor copied the rows the first phase stored.
# Usage: with_pg.sh collector_smoke.sh BUILD_DIR
set -euo pipefail
B=$(cd "${1:?usage: collector_smoke.sh BUILD_DIR}" && pwd)
URI=${POSGATE_TEST_PG_URI:?run under tests/integration/with_pg.sh}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
T=$(mktemp -d "${TMPDIR:-/tmp}/posgate-collsmoke-XXXXXX")
trap 'rm -rf "$T"' EXIT
DEVICES=20 EVENTS=6 BATCH=3 TRICKLE=2
bash "$ROOT/tools/bench/collector-bench" --quick --devices $DEVICES --events-per-device $EVENTS \
    --batch-events $BATCH --trickle $TRICKLE --connections 8 --no-cache --pg-uri "$URI" \
    --build "$B" --json "$T/collector.json" >"$T/out.txt" 2>"$T/err.txt" ||
    { cat "$T/out.txt" "$T/err.txt" >&2; echo "FAIL: collector-bench exited non-zero" >&2; exit 1; }
python3 - "$T/collector.json" $DEVICES $EVENTS $BATCH $TRICKLE <<'PY'
import json, sys
doc = json.load(open(sys.argv[1]))
devices, events, batch, trickle = map(int, sys.argv[2:6])
phases = ["pg1", "pg3", "single", "trickle", "sqlite"]
per_phase = ["hubs", "connections", "devices", "devices_acked", "events_per_s", "batches_per_s",
             "ack_p50_ms", "ack_p99_ms", "ack_max_ms", "events_sent", "events_stored", "batches",
             "wall_s", "throttled", "reconnects", "errors", "hub_cpu_s", "db_cpu_s",
             "client_cpu_s", "machine_cpu_s", "cpu_us_per_event", "cpu_ms_per_batch", "wal_bytes",
             "wal_bytes_per_event"]
keys = ["devices", "events_per_device", "batch_events", "trickle_per_device", "connections",
        "past_partitions", "pg_pkey_bytes_per_event",
        "fleet_events", "fleet_batches", "fleet_trickle_batches", "fleet_json_bytes_per_event",
        "fleet_gzip_bytes_per_event", "copy_rows", "copy_s", "copy_rows_per_s", "copy_rounds",
        "copy_rows_per_s_rounds",
        "ratio_pg3_to_copy", "ratio_pg1_to_copy", "ratio_sqlite_to_copy", "target_ratio",
        "target_met", "pg_partitions", "pg_bytes_per_event", "pg_heap_bytes_per_event",
        "pg_index_bytes_per_event", "pg_event_json_bytes", "pg_batch_row_bytes",
        "pg_database_bytes", "copy_table_bytes_per_event", "sqlite_bytes_per_event",
        "copy_db_cpu_s", "copy_cpu_us_per_row", "copy_wal_bytes_per_row", "ratio_cpu_copy_to_pg3",
        "lookup_decision_ms", "lookup_listing_ms", "lookup_decision_indexed_ms",
        "pg_decision_id_index_bytes_per_event", "pg_listing_index_bytes_per_event",
        "pg3_top_statements", "meta"] + ["%s_%s" % (p, k) for p in phases for k in per_phase]
missing = [k for k in keys if k not in doc]
assert not missing, "keys missing from the JSON: %s" % missing
meta = ["date", "machine", "command", "load_avg_start", "load_avg_end", "postgresql",
        "pg3_db_exec_ms", "pg3_db_plan_ms", "fleet_make_s", "enroll_s", "not_measured"]
assert all(k in doc["meta"] for k in meta), "meta keys missing: %s" % [k for k in meta if k not in doc["meta"]]
# figures that every run measures (the server's CPU only on a server the bench started, and
# nothing of PostgreSQL's for the SQLite phase)
optional = {"%s_db_cpu_s" % p for p in phases} | {"sqlite_wal_bytes", "sqlite_wal_bytes_per_event",
                                                 "copy_db_cpu_s", "copy_cpu_us_per_row",
                                                 "ratio_cpu_copy_to_pg3"}
nulls = [k for k in keys if doc[k] is None and k not in optional]
assert not nulls, "figures not measured: %s" % nulls
want = {"pg1": (devices, devices * events), "pg3": (devices, devices * events),
        "single": (devices, devices * trickle), "trickle": (devices, devices * trickle),
        "sqlite": (devices, devices * events)}
for p, (ndev, nev) in want.items():
    assert doc[p + "_events_sent"] == nev, "%s sent %s events, expected %s" % (p, doc[p + "_events_sent"], nev)
    assert doc[p + "_events_stored"] == doc[p + "_events_sent"], \
        "%s stored %s of %s events" % (p, doc[p + "_events_stored"], doc[p + "_events_sent"])
    assert doc[p + "_devices"] == ndev and doc[p + "_devices_acked"] == ndev, \
        "%s: %s of %s devices acknowledged" % (p, doc[p + "_devices_acked"], doc[p + "_devices"])
    assert doc[p + "_errors"] == 0, "%s: %s uploads failed" % (p, doc[p + "_errors"])
    assert doc[p + "_events_per_s"] > 0 and doc[p + "_ack_p99_ms"] >= doc[p + "_ack_p50_ms"] > 0
assert doc["fleet_events"] == devices * events and doc["fleet_trickle_batches"] == devices * trickle
assert doc["fleet_batches"] == devices * ((events + batch - 1) // batch)
assert doc["copy_rows"] == doc["pg1_events_stored"], "COPY %s rows, pg1 stored %s" % (doc["copy_rows"], doc["pg1_events_stored"])
assert isinstance(doc["target_met"], bool) and doc["target_ratio"] == 0.3
assert len(doc["copy_rows_per_s_rounds"]) == doc["copy_rounds"] >= 1
assert doc["copy_rows_per_s"] == max(doc["copy_rows_per_s_rounds"])
assert doc["pg_bytes_per_event"] > doc["pg_event_json_bytes"] > 0
print("collector_smoke: ok (%d keys; pg3 %s events/s, COPY %s rows/s)" % (
    len(keys), doc["pg3_events_per_s"], doc["copy_rows_per_s"]))
PY
