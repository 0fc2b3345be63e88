#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""The report of tools/bench/collector-bench: reads the name=value lines the run collected,
prints the table, writes the JSON (stable keys, below) and, for a full run, the collector's
section of docs/benchmarks.md, between the markers BEGIN and END (replaced in place;
tools/bench/bench keeps it when it rewrites the rest of the file).

JSON keys: the run's shape (devices, events_per_device, batch_events, trickle_per_device,
connections, past_partitions, fleet_*), the floor (copy_*: the fastest of copy_rounds, each
round's rows/s in copy_rows_per_s_rounds), per phase P in pg1, pg3, single, trickle, sqlite:
P_hubs, P_connections, P_devices, P_devices_acked, P_events_per_s, P_batches_per_s,
P_ack_p50_ms, P_ack_p99_ms, P_ack_max_ms, P_events_sent, P_events_stored, P_batches, P_wall_s, P_throttled, P_reconnects, P_errors,
P_hub_cpu_s, P_db_cpu_s, P_client_cpu_s, P_machine_cpu_s, P_cpu_us_per_event,
P_cpu_ms_per_batch, P_wal_bytes, P_wal_bytes_per_event; the target (ratio_pg3_to_copy,
target_ratio, target_met) and the other ratios (ratio_cpu_copy_to_pg3: the floor's server CPU
per row over the hubs' and server's CPU per event); sizes (pg_*_bytes_per_event,
pg_event_json_bytes, pg_batch_row_bytes, sqlite_bytes_per_event, pg_pkey_bytes_per_event, the
contest's index pg_decision_id_index_bytes_per_event, and pg_listing_index_bytes_per_event, a
partial index by listing id the benchmark makes to weigh it); lookups (lookup_decision_ms,
lookup_listing_ms, lookup_decision_indexed_ms); pg3_top_statements; meta. A figure not measured
is null, with its reason in meta.not_measured.
"""
import argparse
import datetime
import json
import os
import platform

BEGIN = "<!-- collector-bench: begin -->"
END = "<!-- collector-bench: end -->"
PHASES = [
    ("pg1", "one hub, PostgreSQL"),
    ("pg3", "three hubs, PostgreSQL"),
    ("single", "one hub, PostgreSQL, one connection, single-event batches"),
    ("trickle", "three hubs, PostgreSQL, single-event batches"),
    ("sqlite", "one hub, SQLite"),
]
TARGET_RATIO = 0.3


def read_kv(path):
    out = {}
    if path and os.path.exists(path):
        for line in open(path):
            k, _, v = line.rstrip("\n").partition("=")
            if k:
                out[k] = v
    return out


def num(raw, k):
    v = raw.get(k)
    if v in (None, ""):
        return None
    try:
        f = float(v)
    except ValueError:
        return None
    return int(f) if f.is_integer() else f


def div(a, b, scale=1.0):
    if a is None or b in (None, 0):
        return None
    return round(a / b * scale, 3)


def machine():
    cpu = "unknown"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = 0
    for line in open("/proc/meminfo"):
        if line.startswith("MemTotal"):
            mem = int(line.split()[1]) // 1024
    return {"nproc": os.cpu_count(), "cpu": cpu, "memory_mb": mem, "kernel": platform.release()}


def figures(raw, notes):
    out = {}
    for k in ("devices", "events_per_device", "batch_events", "trickle_per_device", "connections",
              "past_partitions",
              "fleet_events", "fleet_batches", "fleet_trickle_batches", "copy_rows", "copy_s",
              "copy_rows_per_s", "copy_rounds"):
        out[k] = num(raw, k)
    out["copy_rows_per_s_rounds"] = [float(x) for x in raw.get("copy_rows_per_s_rounds", "").split(",") if x]
    out["fleet_json_bytes_per_event"] = div(num(raw, "fleet_json_bytes"), out["fleet_events"])
    out["fleet_gzip_bytes_per_event"] = div(num(raw, "fleet_body_bytes"), out["fleet_events"])
    for p, _ in PHASES:
        g = lambda k: num(raw, p + "_" + k)
        out[p + "_hubs"] = g("hubs")
        out[p + "_events_per_s"] = g("events_per_s")
        out[p + "_batches_per_s"] = g("batches_per_s")
        for q in ("p50", "p99", "max"):
            out["%s_ack_%s_ms" % (p, q)] = div(g(q + "_us"), 1000.0)
        for k in ("connections", "devices", "devices_acked", "events_sent", "events_stored",
                  "batches", "wall_s", "throttled", "reconnects", "errors", "hub_cpu_s",
                  "db_cpu_s", "client_cpu_s", "machine_cpu_s", "wal_bytes"):
            out[p + "_" + k] = g(k)
        out[p + "_wal_bytes_per_event"] = div(g("wal_bytes"), g("events"))
        cpu = None
        if g("hub_cpu_s") is not None:
            cpu = g("hub_cpu_s") + (g("db_cpu_s") or 0)
        out[p + "_cpu_us_per_event"] = div(cpu, g("events"), 1e6)
        out[p + "_cpu_ms_per_batch"] = div(cpu, g("batches"), 1e3)
        if g("events_per_s") is None and p + "_events_per_s" not in notes:
            notes[p + "_events_per_s"] = "not measured: the phase did not run"
    out["copy_db_cpu_s"] = num(raw, "copy_db_cpu_s")
    out["copy_cpu_us_per_row"] = div(out["copy_db_cpu_s"], out["copy_rows"], 1e6)
    out["copy_wal_bytes_per_row"] = div(num(raw, "copy_wal_bytes"), out["copy_rows"])
    out["ratio_pg3_to_copy"] = div(out["pg3_events_per_s"], out["copy_rows_per_s"])
    # the same comparison in CPU time (the machine's other load moves it less than rates)
    out["ratio_cpu_copy_to_pg3"] = div(out["copy_cpu_us_per_row"], out["pg3_cpu_us_per_event"])
    out["ratio_pg1_to_copy"] = div(out["pg1_events_per_s"], out["copy_rows_per_s"])
    out["ratio_sqlite_to_copy"] = div(out["sqlite_events_per_s"], out["copy_rows_per_s"])
    out["target_ratio"] = TARGET_RATIO
    r = out["ratio_pg3_to_copy"]
    out["target_met"] = None if r is None else r >= TARGET_RATIO
    ev = num(raw, "pg1_events_stored")
    out["pg_partitions"] = num(raw, "pg_partitions")
    out["pg_bytes_per_event"] = div(num(raw, "pg_events_total_bytes"), ev)
    out["pg_heap_bytes_per_event"] = div(num(raw, "pg_events_heap_bytes"), ev)
    out["pg_index_bytes_per_event"] = div(num(raw, "pg_events_index_bytes"), ev)
    out["pg_pkey_bytes_per_event"] = div(num(raw, "pg_events_pkey_bytes"), ev)
    out["pg_event_json_bytes"] = num(raw, "pg_event_json_bytes")
    out["pg_batch_row_bytes"] = div(num(raw, "pg_batches_total_bytes"), num(raw, "pg_batches_rows"))
    out["pg_database_bytes"] = num(raw, "pg_database_bytes")
    out["copy_table_bytes_per_event"] = div(num(raw, "copy_table_bytes"), out["copy_rows"])
    out["sqlite_bytes_per_event"] = div(num(raw, "sqlite_file_bytes"), num(raw, "sqlite_events_stored"))
    for k in ("lookup_decision_ms", "lookup_listing_ms", "lookup_decision_indexed_ms"):
        out[k] = num(raw, k)
    out["pg_decision_id_index_bytes_per_event"] = div(num(raw, "pg_decision_id_index_bytes"), ev)
    out["pg_listing_index_bytes_per_event"] = div(num(raw, "pg_listing_index_bytes"), ev)
    return out


def statements(path):
    rows = []
    if path and os.path.exists(path):
        for line in open(path):
            f = line.rstrip("\n").split("\t")
            if len(f) == 5:
                rows.append({"calls": int(f[0]), "plan_ms": float(f[1]), "exec_ms": float(f[2]),
                             "rows": int(f[3]), "query": f[4]})
    return rows


def fmt(v):
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "pass" if v else "MISS"
    if isinstance(v, int) or abs(v) >= 1000:
        return "{:,.0f}".format(v)
    return "{:.3g}".format(v) if abs(v) < 10 else "{:.1f}".format(v)


def markdown(doc, stmts, findings):
    m, meta = doc["meta"]["machine"], doc["meta"]
    L = [BEGIN, "", "## The collector (issue 19)", ""]
    L.append("Written by `tools/bench/collector-bench` (`tools/bench/bench --collector`); rerun it "
             "rather than editing this section by hand. Simulated kiosks upload their signed audit "
             "batches over HTTP to `posgate-hub serve`, measured in one run against the floor of "
             "PostgreSQL `COPY` of the same rows.")
    L.append("")
    L.append("- date: " + meta["date"])
    L.append("- machine: %s CPU(s), %s, %s MB memory, Linux %s; load average %s at the start, %s at "
             "the end (other work on the machine shares its two cores)" % (
                 m["nproc"], m["cpu"], m["memory_mb"], m["kernel"], meta["load_avg_start"],
                 meta["load_avg_end"]))
    L.append("- command: `%s`" % meta["command"])
    pg = meta["postgresql"]
    L.append("- PostgreSQL %s on the same machine, unix socket: fsync %s, synchronous_commit %s, "
             "full_page_writes %s, shared_buffers %s, max_wal_size %s" % (
                 pg.get("server_version"), pg.get("fsync"), pg.get("synchronous_commit"),
                 pg.get("full_page_writes"), pg.get("shared_buffers"), pg.get("max_wal_size")))
    L.append("- kiosks: {:,} devices, each its own P-256 device key enrolled with `posgate-hub "
             "enroll`; {} events each, sent in batches of {} ({:,} batches, {:,} events); "
             "{:.0f} bytes of canonical JSON an event, {:.0f} bytes an event gzipped as sent; "
             "{} connections".format(
                 doc["devices"], doc["events_per_device"], doc["batch_events"],
                 doc["fleet_batches"] or 0, doc["fleet_events"] or 0,
                 doc["fleet_json_bytes_per_event"] or 0, doc["fleet_gzip_bytes_per_event"] or 0,
                 doc["connections"]))
    if doc.get("past_partitions"):
        L.append("- `events` held %d empty monthly partitions before the current month "
                 "(`--past-partitions`)" % doc["past_partitions"])
    L.append("")
    L.append("| phase | events/s | batches/s | ack p50 ms | ack p99 ms | events sent = stored | "
             "CPU us/event (hubs + server) | JSON keys |")
    L.append("|---|---:|---:|---:|---:|---|---:|---|")
    for p, label in PHASES:
        if doc.get(p + "_events_per_s") is None:
            continue
        same = doc[p + "_events_sent"] == doc[p + "_events_stored"]
        L.append("| %s | %s | %s | %s | %s | %s = %s %s | %s | `%s_*` |" % (
            label, fmt(doc[p + "_events_per_s"]), fmt(doc[p + "_batches_per_s"]),
            fmt(doc[p + "_ack_p50_ms"]), fmt(doc[p + "_ack_p99_ms"]),
            fmt(doc[p + "_events_sent"]), fmt(doc[p + "_events_stored"]),
            "(yes)" if same else "(NO)", fmt(doc[p + "_cpu_us_per_event"]), p))
    L.append("| floor: `COPY` of the same rows, one stream, fastest of %s (%s) | %s rows/s | | | | %s rows | %s (server) | `copy_*` |" % (
        fmt(doc["copy_rounds"]), ", ".join(fmt(x) for x in doc["copy_rows_per_s_rounds"]),
        fmt(doc["copy_rows_per_s"]), fmt(doc["copy_rows"]), fmt(doc["copy_cpu_us_per_row"])))
    L.append("")
    L.append("**Target** `pg3_events_per_s` >= %.1f x `copy_rows_per_s`: ratio %s, **%s** "
             "(one hub %s x, SQLite %s x). In CPU time: the floor's server spent %s us a row, the "
             "three hubs and their server %s us an event (`ratio_cpu_copy_to_pg3` %s)." % (
                 TARGET_RATIO, fmt(doc["ratio_pg3_to_copy"]), fmt(doc["target_met"]),
                 fmt(doc["ratio_pg1_to_copy"]), fmt(doc["ratio_sqlite_to_copy"]),
                 fmt(doc["copy_cpu_us_per_row"]), fmt(doc["pg3_cpu_us_per_event"]),
                 fmt(doc["ratio_cpu_copy_to_pg3"])))
    L.append("")
    L.append("Where the CPU went (seconds over the phase; the machine's busy seconds include "
             "everything else running on it):")
    L.append("")
    L.append("| phase | wall s | hubs | PostgreSQL | client | machine busy | CPU ms a batch | WAL bytes an event |")
    L.append("|---|---:|---:|---:|---:|---:|---:|---:|")
    for p, label in PHASES:
        if doc.get(p + "_wall_s") is None:
            continue
        L.append("| %s | %s | %s | %s | %s | %s | %s | %s |" % (
            label, fmt(doc[p + "_wall_s"]), fmt(doc[p + "_hub_cpu_s"]),
            fmt(doc[p + "_db_cpu_s"]), fmt(doc[p + "_client_cpu_s"]),
            fmt(doc[p + "_machine_cpu_s"]), fmt(doc[p + "_cpu_ms_per_batch"]),
            fmt(doc[p + "_wal_bytes_per_event"])))
    L.append("| floor (`COPY`) | %s | | %s | | | | %s |" % (
        fmt(doc["copy_s"]), fmt(doc["copy_db_cpu_s"]), fmt(doc["copy_wal_bytes_per_row"])))
    L.append("")
    L.append("Sizes after pg1 (`pg_total_relation_size` of the month's partition of `events`, "
             "with its indexes): {} bytes an event ({} heap, {} indexes of which {} the primary "
             "key; the event's JSON text {} bytes); the `batches` table {} bytes a batch; the same "
             "rows COPYed into one table {} bytes an event; SQLite {} bytes an event (the whole "
             "file).".format(
                 fmt(doc["pg_bytes_per_event"]), fmt(doc["pg_heap_bytes_per_event"]),
                 fmt(doc["pg_index_bytes_per_event"]), fmt(doc["pg_pkey_bytes_per_event"]),
                 fmt(doc["pg_event_json_bytes"]),
                 fmt(doc["pg_batch_row_bytes"]), fmt(doc["copy_table_bytes_per_event"]),
                 fmt(doc["sqlite_bytes_per_event"])))
    L.append("")
    L.append("Lookups on pg1's {:,} events, whole commands: a contest, `posgate-hub decision "
             "ID`, {} ms (its query through `events_decision_id` {} ms of server time; the index "
             "{} bytes an event); a repair query, `posgate-hub decisions --listing`, {} ms (no "
             "index serves it: the DENY and REFER events' text is searched in every partition; a "
             "partial index of them by listing id, made by the benchmark to weigh it and "
             "dropped, {} bytes an event).".format(
                 doc["pg1_events_stored"] or 0, fmt(doc["lookup_decision_ms"]),
                 fmt(doc["lookup_decision_indexed_ms"]),
                 fmt(doc["pg_decision_id_index_bytes_per_event"]),
                 fmt(doc["lookup_listing_ms"]), fmt(doc["pg_listing_index_bytes_per_event"])))
    L.append("")
    if stmts:
        L.append("PostgreSQL's planning and execution time by statement during pg3 "
                 "(pg_stat_statements, `pg3_top_statements`; %s ms planning and %s ms executing in "
                 "all, of %s s of the server's CPU):" % (
                     fmt(doc["meta"].get("pg3_db_plan_ms")), fmt(doc["meta"].get("pg3_db_exec_ms")),
                     fmt(doc["pg3_db_cpu_s"])))
        L.append("")
        L.append("| calls | planning ms | executing ms | rows | statement |")
        L.append("|---:|---:|---:|---:|---|")
        for s in stmts[:8]:
            L.append("| %s | %s | %s | %s | `%s` |" % (
                fmt(s["calls"]), fmt(s["plan_ms"]), fmt(s["exec_ms"]), fmt(s["rows"]),
                s["query"].replace("|", "\\|")))
        L.append("")
    if findings and os.path.exists(findings):
        L.append(open(findings).read().rstrip("\n"))
        L.append("")
    L.append(END)
    return "\n".join(L) + "\n"


def write_md(path, block):
    text = open(path).read() if os.path.exists(path) else ""
    if BEGIN in text and END in text:
        a = text.index(BEGIN)
        b = text.index(END) + len(END)
        text = text[:a] + block.rstrip("\n") + text[b:]
    else:
        text = text.rstrip("\n") + "\n\n" + block
    with open(path, "w") as f:
        f.write(text if text.endswith("\n") else text + "\n")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--results", required=True)
    ap.add_argument("--notes")
    ap.add_argument("--statements")
    ap.add_argument("--json", default="")
    ap.add_argument("--md", default="")
    ap.add_argument("--cmdline", default="")
    ap.add_argument("--findings")
    a = ap.parse_args()
    raw, notes = read_kv(a.results), read_kv(a.notes)
    doc = figures(raw, notes)
    stmts = statements(a.statements)
    doc["pg3_top_statements"] = stmts
    doc["meta"] = {
        "date": raw.get("run_date") or
                datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine(), "command": raw.get("command") or a.cmdline,
        "load_avg_start": num(raw, "load_avg_start"), "load_avg_end": num(raw, "load_avg_end"),
        "postgresql": {k: raw.get("pg_" + k) for k in (
            "server_version", "fsync", "synchronous_commit", "full_page_writes", "shared_buffers",
            "max_wal_size", "wal_level")},
        "pg3_db_exec_ms": num(raw, "pg3_db_exec_ms"), "pg3_db_plan_ms": num(raw, "pg3_db_plan_ms"),
        "fleet_make_s": num(raw, "fleet_make_s"), "enroll_s": num(raw, "enroll_s"),
        "not_measured": {k: v for k, v in notes.items()},
    }
    if a.json:
        with open(a.json, "w") as f:
            json.dump(doc, f, indent=2)
            f.write("\n")
    rows = [("copy_rows_per_s", doc["copy_rows_per_s"])]
    for p, _ in PHASES:
        for k in ("events_per_s", "batches_per_s", "ack_p50_ms", "ack_p99_ms", "events_sent",
                  "events_stored", "cpu_us_per_event"):
            rows.append((p + "_" + k, doc[p + "_" + k]))
    rows += [("ratio_pg3_to_copy", doc["ratio_pg3_to_copy"]),
             ("copy_cpu_us_per_row", doc["copy_cpu_us_per_row"]),
             ("ratio_cpu_copy_to_pg3", doc["ratio_cpu_copy_to_pg3"]),
             ("lookup_decision_ms", doc["lookup_decision_ms"]),
             ("pg_bytes_per_event", doc["pg_bytes_per_event"]),
             ("pg_batch_row_bytes", doc["pg_batch_row_bytes"]),
             ("sqlite_bytes_per_event", doc["sqlite_bytes_per_event"])]
    w = max(len(k) for k, _ in rows)
    for k, v in rows:
        print("%-*s  %14s" % (w, k, fmt(v)))
    print("%-*s  %14s  (>= %.1f x the COPY floor with three hubs)" % (
        w, "target", fmt(doc["target_met"]), TARGET_RATIO))
    if a.md:
        write_md(a.md, markdown(doc, stmts, a.findings))
        print("wrote " + a.md + (" and " + a.json if a.json else ""))
    elif a.json:
        print("wrote " + a.json)


if __name__ == "__main__":
    main()
