#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# A contest finds its decision through an index (events.decision_id), not by reading every
# event's text:
#   - ingest fills decision_id with each decision event's own top-level "id";
#   - a database of the previous schema version (SQLite user_version 2, PostgreSQL
#     schema_version 3), its tables written here by hand exactly as the previous posgate-hub
#     made them and holding the real events a kiosk uploaded, is migrated when posgate-hub opens
#     it: every event's decision_id is backfilled from its stored text, equal to the id its
#     JSON holds at the top level and finding the very event that the previous text scan
#     (',"id":"ID"' in the text, then the parsed "id" compared) found; summaries get none;
#   - `posgate-hub decision ID` then answers every id, and records its lookup;
#   - the query it runs uses the index: SQLite's EXPLAIN QUERY PLAN of the statement taken from
#     the binary itself; on PostgreSQL the plan the server ran, logged by auto_explain (through
#     PGOPTIONS) with sequential scans disabled: a table of a few rows is read whole more
#     cheaply, so the option shows whether the index serves the query at all.
# With POSGATE_TEST_PG_URI set (with_pg.sh) on that PostgreSQL database, emptied first.
# Usage: contest_index.sh BUILD_DIR
set -euo pipefail
B=$(cd "${1:?usage: contest_index.sh BUILD_DIR}" && pwd)
HERE=$(cd "$(dirname "$0")" && pwd)
T=$(mktemp -d "${TMPDIR:-/tmp}/posgate-cindex-XXXXXX")
trap 'rm -rf "$T"' EXIT
unset POSGATE_DATA_DIR POSGATE_FAKE_NOW PGOPTIONS
. "$HERE/lib.sh"
EXPECT_DIR=$T
HUB=$B/posgate-hub
URI=${POSGATE_TEST_PG_URI:-}
psql_q() { psql -X -q -v ON_ERROR_STOP=1 "$URI" "$@"; }

bash "$HERE/audit_fixture.sh" "$B" "$T/fx" >/dev/null
# shellcheck disable=SC1091
source "$T/fx/subjects.env"
K=$T/fx/k
pg() { "$B/posgate" --data-dir "$K" "$@"; }
decide() { # decide RC ARGS... : one check on air; its decision id appended to ids.txt
    set +e; pg check --service air --json "$@" > "$T/check.json" 2>"$T/check.err"; local rc=$?; set -e
    [[ $rc == "${WANT:-$rc}" ]] || fail "check $* exited $rc: $(cat "$T/check.json" "$T/check.err")"
    python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["decision_id"])' "$T/check.json" >> "$T/ids.txt"
}
: > "$T/ids.txt"
WANT=1 decide --id "$HARD" --operator clerk-7
WANT=0 decide --id "$CLEAN" --operator clerk-7
WANT=1 decide --id "$BOTH" --operator clerk-8
WANT=3 decide --name "$NAME" --birth-date "$DOB" --operator clerk-8
WANT=0 decide --id "$OVR" --operator clerk-8 --override-by supervisor-2 --override-reason "papers seen"
[[ $(wc -l < "$T/ids.txt") == 5 ]] || fail "expected 5 decisions"
mkdir "$T/stick"
expect_rc 0 pg field-sync "$T/stick"

# dump DB OUT : one JSON line per event: device_id, seq, kind, decision_id, json
dump() {
    if [[ $1 == postgres* ]]; then
        psql -X -q -At -v ON_ERROR_STOP=1 "$1" -c "COPY (SELECT device_id, seq, kind,
            coalesce(decision_id, '-'), encode(convert_to(json, 'UTF8'), 'hex') FROM events
            ORDER BY device_id, seq) TO STDOUT" > "$T/dump.tsv"
    else
        python3 - "$1" > "$T/dump.tsv" <<'PY'
import sqlite3, sys
for r in sqlite3.connect(sys.argv[1]).execute(
        "SELECT device_id, seq, kind, coalesce(decision_id, '-'), json FROM events "
        "ORDER BY device_id, seq"):
    print("\t".join([r[0], str(r[1]), r[2], r[3], r[4].encode().hex()]))
PY
    fi
    python3 - "$T/dump.tsv" > "$2" <<'PY'
import json, sys
for line in open(sys.argv[1]):
    d, seq, kind, did, js = line.rstrip("\n").split("\t")
    print(json.dumps({"device_id": d, "seq": int(seq), "kind": kind,
                      "decision_id": None if did == "-" else did,
                      "json": bytes.fromhex(js).decode()}))
PY
}
# check_ids DUMP : every decision event's decision_id is its top-level "id", equal to what the
# previous version's scan finds for that id; summaries have none; every id decided is held
check_ids() {
    python3 - "$1" "$T/ids.txt" <<'PY' || fail "decision_id: $(head -c 600 "$1")"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
decided = [l.strip() for l in open(sys.argv[2]) if l.strip()]
for r in rows:
    ev = json.loads(r["json"])
    if r["kind"] != "decision":
        assert r["decision_id"] is None, ("a summary with a decision_id", r)
        continue
    assert r["decision_id"] == ev["id"], ("not the top-level id", r["decision_id"], ev["id"])
    # the scan of the previous version: ',"id":"ID"' in the text, then the parsed "id" compared
    found = [(x["device_id"], x["seq"]) for x in rows if x["kind"] == "decision"
             and ',"id":"%s"' % ev["id"] in x["json"] and json.loads(x["json"])["id"] == ev["id"]]
    assert found[:1] == [(r["device_id"], r["seq"])], ("the scan finds another event", found, r)
held = {r["decision_id"] for r in rows}
assert all(i in held for i in decided), ("a decision not held", decided, held)
# each event's text names ids of lists too: the scan's pattern alone is not the answer
assert any(t.count('"id":"') > 1 for t in (r["json"] for r in rows)), "no event names a list id"
PY
}

if [[ -z $URI ]]; then
    # ---- ingest fills decision_id
    expect_rc 0 "$HUB" enroll --db "$T/new.db" --pub "$K/device.pub"
    expect_rc 0 "$HUB" ingest "$T/stick" --db "$T/new.db"
    dump "$T/new.db" "$T/new.jsonl"
    check_ids "$T/new.jsonl"

    # ---- a database of schema version 2, as the previous posgate-hub wrote it
    python3 - "$T/old.db" "$T/new.db" <<'PY' || fail "cannot write the version 2 database"
import sqlite3, sys
old = sqlite3.connect(sys.argv[1])
old.executescript("""
CREATE TABLE IF NOT EXISTS devices(device_id TEXT PRIMARY KEY, pub_pem TEXT NOT NULL,
 enrolled_at INTEGER NOT NULL, last_seq INTEGER NOT NULL DEFAULT 0,
 chain_ok INTEGER NOT NULL DEFAULT 1, broken_at INTEGER);
CREATE TABLE IF NOT EXISTS events(device_id TEXT NOT NULL, seq INTEGER NOT NULL,
 hash BLOB NOT NULL, prev_hash BLOB NOT NULL, kind TEXT NOT NULL, decision TEXT NOT NULL,
 count INTEGER NOT NULL, json TEXT NOT NULL, received_at INTEGER NOT NULL,
 PRIMARY KEY(device_id, seq)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS gaps(device_id TEXT NOT NULL, from_seq INTEGER NOT NULL,
 to_seq INTEGER NOT NULL, detected_at INTEGER NOT NULL, closed_at INTEGER,
 PRIMARY KEY(device_id, from_seq, to_seq));
CREATE TABLE IF NOT EXISTS chain_breaks(device_id TEXT NOT NULL, seq INTEGER NOT NULL,
 kind TEXT NOT NULL, detail TEXT NOT NULL, event_json TEXT, first_seen INTEGER NOT NULL,
 last_seen INTEGER NOT NULL, times INTEGER NOT NULL, PRIMARY KEY(device_id, seq, kind));
CREATE TABLE IF NOT EXISTS batches(device_id TEXT NOT NULL, idempotency_key TEXT NOT NULL,
 first_seq INTEGER NOT NULL, last_seq INTEGER NOT NULL, n_events INTEGER NOT NULL,
 stored INTEGER NOT NULL, status TEXT NOT NULL, received_at INTEGER NOT NULL,
 times INTEGER NOT NULL, PRIMARY KEY(device_id, idempotency_key));
CREATE TABLE IF NOT EXISTS anchors(device_id TEXT PRIMARY KEY, seq INTEGER NOT NULL,
 hash BLOB NOT NULL, prev_hash BLOB NOT NULL, pruned_at INTEGER NOT NULL);
PRAGMA user_version=2;
CREATE TABLE IF NOT EXISTS device_status(device_id TEXT PRIMARY KEY,
 reported_at_us INTEGER NOT NULL, received_at INTEGER NOT NULL, report TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS device_reports(device_id TEXT NOT NULL,
 reported_at_us INTEGER NOT NULL, received_at INTEGER NOT NULL, report TEXT NOT NULL,
 PRIMARY KEY(device_id, reported_at_us)) WITHOUT ROWID;
""")
old.execute("ATTACH ? AS new", (sys.argv[2],))
old.execute("INSERT INTO devices SELECT * FROM new.devices")
old.execute("INSERT INTO events SELECT device_id, seq, hash, prev_hash, kind, decision, count, "
            "json, received_at FROM new.events")
old.commit()
PY
    DB=$T/old.db
    expect_rc 0 "$HUB" stats --db "$DB"
    [[ $(python3 -c 'import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute("PRAGMA user_version").fetchone()[0])' "$DB") == 3 ]] \
        || fail "the version 2 database was not migrated to 3"
else
    psql_q -c 'SET client_min_messages = warning' -c 'DROP SCHEMA public CASCADE; CREATE SCHEMA public' || fail "cannot empty $URI"
    # ---- ingest fills decision_id
    expect_rc 0 "$HUB" enroll --db "$URI" --pub "$K/device.pub"
    expect_rc 0 "$HUB" ingest "$T/stick" --db "$URI"
    dump "$URI" "$T/new.jsonl"
    check_ids "$T/new.jsonl"
    # the same events, as SQLite's ingest stores them, to be written into the old schema
    expect_rc 0 "$HUB" enroll --db "$T/new.db" --pub "$K/device.pub"
    expect_rc 0 "$HUB" ingest "$T/stick" --db "$T/new.db"

    # ---- a database of schema version 3, as the previous posgate-hub's migrations made it
    psql_q -c 'SET client_min_messages = warning' -c 'DROP SCHEMA public CASCADE; CREATE SCHEMA public' || fail "cannot empty $URI"
    cat > "$T/v3.sql" <<'SQL'
CREATE TABLE schema_version(version integer PRIMARY KEY, applied_at bigint NOT NULL);
CREATE TABLE devices(device_id text PRIMARY KEY, pub_pem text NOT NULL,
 enrolled_at bigint NOT NULL, last_seq bigint NOT NULL DEFAULT 0,
 chain_ok boolean NOT NULL DEFAULT true, broken_at bigint);
CREATE TABLE events(device_id text NOT NULL, seq bigint NOT NULL, hash bytea NOT NULL,
 prev_hash bytea NOT NULL, kind text NOT NULL, decision text NOT NULL, count bigint NOT NULL,
 json text NOT NULL, received_at bigint NOT NULL, PRIMARY KEY(device_id, seq, received_at))
 PARTITION BY RANGE (received_at);
CREATE INDEX events_decision ON events(decision);
CREATE TABLE gaps(device_id text NOT NULL, from_seq bigint NOT NULL, to_seq bigint NOT NULL,
 detected_at bigint NOT NULL, closed_at bigint, PRIMARY KEY(device_id, from_seq, to_seq));
CREATE TABLE chain_breaks(device_id text NOT NULL, seq bigint NOT NULL, kind text NOT NULL,
 detail text NOT NULL, event_json text, first_seen bigint NOT NULL,
 last_seen bigint NOT NULL, times bigint NOT NULL, PRIMARY KEY(device_id, seq, kind));
CREATE TABLE batches(device_id text NOT NULL, idempotency_key text NOT NULL,
 first_seq bigint NOT NULL, last_seq bigint NOT NULL, n_events bigint NOT NULL,
 stored bigint NOT NULL, status text NOT NULL, received_at bigint NOT NULL,
 times bigint NOT NULL, PRIMARY KEY(device_id, idempotency_key));
CREATE TABLE anchors(device_id text PRIMARY KEY, seq bigint NOT NULL, hash bytea NOT NULL,
 prev_hash bytea NOT NULL, pruned_at bigint NOT NULL);
CREATE TABLE device_status(device_id text PRIMARY KEY, reported_at_us bigint NOT NULL,
 received_at bigint NOT NULL, report text NOT NULL);
CREATE TABLE device_reports(device_id text NOT NULL, reported_at_us bigint NOT NULL,
 received_at bigint NOT NULL, report text NOT NULL,
 PRIMARY KEY(device_id, reported_at_us));
INSERT INTO schema_version VALUES (1, 0), (2, 0), (3, 0);
SQL
    # a partition for each month the rows were received in, then the rows
    python3 - "$T/new.db" >> "$T/v3.sql" <<'PY'
import datetime, sqlite3, sys
db = sqlite3.connect(sys.argv[1])
q = lambda s: "'" + s.replace("'", "''") + "'"
h = lambda b: "'\\x" + b.hex() + "'::bytea"
utc = datetime.timezone.utc
events = db.execute("SELECT device_id, seq, hash, prev_hash, kind, decision, count, json, "
                    "received_at FROM events").fetchall()
for y, m in sorted({(t.year, t.month) for t in
                    (datetime.datetime.fromtimestamp(e[8], utc) for e in events)}):
    lo = int(datetime.datetime(y, m, 1, tzinfo=utc).timestamp())
    ny, nm = (y + 1, 1) if m == 12 else (y, m + 1)
    hi = int(datetime.datetime(ny, nm, 1, tzinfo=utc).timestamp())
    print("CREATE TABLE events_%04d_%02d PARTITION OF events FOR VALUES FROM (%d) TO (%d);"
          % (y, m, lo, hi))
for d in db.execute("SELECT device_id, pub_pem, enrolled_at, last_seq FROM devices"):
    print("INSERT INTO devices(device_id, pub_pem, enrolled_at, last_seq) VALUES (%s, %s, %d, %d);"
          % (q(d[0]), q(d[1]), d[2], d[3]))
for e in events:
    print("INSERT INTO events VALUES (%s, %d, %s, %s, %s, %s, %d, %s, %d);"
          % (q(e[0]), e[1], h(e[2]), h(e[3]), q(e[4]), q(e[5]), e[6], q(e[7]), e[8]))
PY
    psql_q -f "$T/v3.sql" >/dev/null || fail "cannot write the version 3 database"
    DB=$URI
    # a command that only reads does not migrate (a standby takes it): it says what does
    expect_rc 5 "$HUB" stats --db "$DB"
    grep -q "schema is version 3, this posgate-hub reads version 5" "$T/err.txt" ||
        fail "stats on a version 3 database: $(cat "$T/err.txt")"
    expect_rc 0 "$HUB" enroll --db "$DB" --pub "$K/device.pub" # migrates; enrolled already
    expect_rc 0 "$HUB" stats --db "$DB"
    [[ $(psql_q -At -c 'SELECT max(version) FROM schema_version') == 5 ]] \
        || fail "the version 3 database was not migrated to 5"
    # migration 5: each device's head (its highest seq held, that event's hash and prev)
    [[ $(psql_q -At -c 'SELECT count(*) FROM devices WHERE head_seq > 0') -ge 1 ]] \
        || fail "migration 5 left every device's head empty"
    BAD_HEADS=$(psql_q -At -c "SELECT count(*) FROM devices d WHERE NOT EXISTS (SELECT 1 FROM
        events e WHERE e.device_id = d.device_id AND e.seq = d.head_seq AND e.hash = d.head_hash
        AND e.prev_hash = d.head_prev AND NOT EXISTS (SELECT 1 FROM events f WHERE
        f.device_id = d.device_id AND f.seq > e.seq))")
    [[ $BAD_HEADS == 0 ]] || fail "migration 5: $BAD_HEADS device(s) whose head is not their last event"
    # a hub of the previous version still running during the upgrade would store events
    # without moving the head: its insert (the previous version's own statement) is refused
    if psql_q -At -c "INSERT INTO events(device_id, seq, hash, prev_hash, kind, decision, count,
        json, received_at, decision_id) SELECT device_id, head_seq + 1, '\\x01'::bytea,
        '\\x02'::bytea, 'decision', 'allow', 1, '{}', (SELECT max(received_at) FROM events),
        NULL FROM devices WHERE head_seq > 0 LIMIT 1" 2>"$T/old_writer.txt"; then
        fail "an insert of the previous version's hub was taken after migration 5"
    fi
    grep -q 'writer' "$T/old_writer.txt" || fail "the old writer's insert: $(cat "$T/old_writer.txt")"
fi

# ---- the events held before the migration have their ids
dump "$DB" "$T/old.jsonl"
check_ids "$T/old.jsonl"
[[ $(wc -l < "$T/old.jsonl") == 5 ]] || fail "expected the 5 events in the migrated database"

# ---- each decision answered through the index; each lookup recorded
while read -r id; do
    expect_rc 0 "$HUB" decision "$id" --db "$DB" --json
    python3 - "$T/out.txt" "$id" "$T/old.jsonl" <<'PY' || fail "decision $id: $(cat "$T/out.txt")"
import json, sys
d = json.load(open(sys.argv[1]))
row = next(json.loads(l) for l in open(sys.argv[3]) if json.loads(l)["decision_id"] == sys.argv[2])
assert d["decision_id"] == sys.argv[2] and d["seq"] == row["seq"], (d, row)
PY
done < "$T/ids.txt"
if [[ -z $URI ]]; then
    N=$(python3 -c 'import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute("SELECT count(*) FROM lookups").fetchone()[0])' "$DB")
else
    N=$(psql_q -At -c 'SELECT count(*) FROM lookups')
fi
[[ $N == 5 ]] || fail "expected 5 lookups recorded, found $N"

# ---- the plan of the query posgate-hub runs
ID=$(head -1 "$T/ids.txt")
if [[ -z $URI ]]; then
    strings -n 24 "$HUB" | grep -F 'WHERE decision_id = ?1' > "$T/query.sql" \
        || fail "no query by decision_id in $HUB"
    [[ $(wc -l < "$T/query.sql") == 1 ]] || fail "expected one query by decision_id: $(cat "$T/query.sql")"
    python3 - "$DB" "$T/query.sql" "$ID" <<'PY' || fail "the plan does not use events_decision_id"
import sqlite3, sys
sql = open(sys.argv[2]).read().strip()
plan = [r[3] for r in sqlite3.connect(sys.argv[1]).execute("EXPLAIN QUERY PLAN " + sql, (sys.argv[3],))]
print(sql, plan, file=sys.stderr)
assert any("USING INDEX events_decision_id" in p for p in plan), plan
PY
else
    PGOPTIONS="-c session_preload_libraries=auto_explain -c auto_explain.log_min_duration=0 \
-c auto_explain.log_level=warning -c enable_seqscan=off" \
        expect_rc 0 "$HUB" decision "$ID" --db "$DB"
    python3 - "$T/err.txt" <<'PY' || fail "the plan does not use the decision_id index: $(cat "$T/err.txt")"
import re, sys
plans = open(sys.argv[1]).read().split("WARNING:")
plan = [p for p in plans if "WHERE decision_id = $1" in p]
assert len(plan) == 1, "the query by decision_id was not run once"
assert re.search(r"Index Scan using events_\d{4}_\d{2}_decision_id_idx", plan[0]), plan[0]
assert "Seq Scan" not in plan[0], plan[0]
PY
fi
echo "contest_index: decision ids filled at ingest and backfilled by the migration; contests read the index"
