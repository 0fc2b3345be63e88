#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# `posgate-hub migrate-db` moves a whole collector from SQLite to PostgreSQL (POSGATE_TEST_PG_URI,
# from with_pg.sh): a kiosk's audit and status reports reach a SQLite collector by USB stick
# (`posgate field-sync`, `posgate-hub ingest`), a contest is looked up, `prune` (its wall clock
# set on through POSGATE_FAKE_NOW: test builds only) drops every event and keeps the chain
# anchor; after the move `stats`, `devices` (latest report), the report history and the lookups
# read the same on PostgreSQL, and the kiosk's next batch, whose first event links to a pruned
# one, is taken with the chain intact: the anchor came along. A second collector, not pruned,
# moves into a second database with its events' decision ids: a contest is answered there.
# Usage: migrate_db.sh BUILD_DIR
set -euo pipefail
B=$(cd "${1:?usage: migrate_db.sh BUILD_DIR}" && pwd)
HERE=$(cd "$(dirname "$0")" && pwd)
URI=${POSGATE_TEST_PG_URI:?run through with_pg.sh}
T=$(mktemp -d "${TMPDIR:-/tmp}/posgate-migrate-XXXXXX")
trap 'rm -rf "$T"' EXIT
unset POSGATE_DATA_DIR POSGATE_FAKE_NOW
. "$HERE/lib.sh"
EXPECT_DIR=$T
HUB=$B/posgate-hub
psql -X -q -v ON_ERROR_STOP=1 "$URI" -c 'DROP SCHEMA public CASCADE; CREATE SCHEMA public' \
    || fail "cannot empty $URI"

bash "$HERE/audit_fixture.sh" "$B" "$T/fx" >/dev/null
# shellcheck disable=SC1091
source "$T/fx/subjects.env"
K=$T/fx/k
pg() { "$B/posgate" --data-dir "$K" "$@"; }
decide() { set +e; pg check --service air "$@" >/dev/null 2>&1; set -e; }
visit() { # visit DB : one field operator's round trip through the stick into collector DB
    expect_rc 0 pg field-sync "$T/stick"
    expect_rc 0 "$HUB" ingest "$T/stick" --db "$1" --json
    cp "$T/out.txt" "$T/ingest.json"
}
dbq() { psql -X -q -At -v ON_ERROR_STOP=1 "$URI" -c "$1" | head -1; }
sq() { python3 -c 'import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute(sys.argv[2]).fetchone()[0])' "$T/hub.db" "$1"; }

mkdir -p "$T/stick"
expect_rc 0 "$HUB" enroll --db "$T/hub.db" --pub "$K/device.pub"
decide --id "$HARD"; decide --id "$CLEAN"; decide --id "$BOTH"
visit "$T/hub.db"
decide --id "$HARD"; decide --id "$CLEAN"
visit "$T/hub.db"
# a contest looked up: a row of lookups to move
DID=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["decision_id"])' \
    "$(set +e; pg check --service air --id "$HARD" --json 2>/dev/null)")
visit "$T/hub.db"
expect_rc 0 "$HUB" decision "$DID" --db "$T/hub.db"
[[ $(sq "SELECT count(*) FROM lookups") == 1 ]] || fail "the lookup was not recorded"
# the same collector, not pruned, for the second move below
python3 -c 'import sqlite3,sys; sqlite3.connect(sys.argv[1]).backup(sqlite3.connect(sys.argv[2]))' \
    "$T/hub.db" "$T/hub2.db"
[[ $(sq "SELECT count(*) FROM device_reports") -ge 2 ]] || fail "the SQLite collector holds no report history"
# every event pruned, 60 days on: the anchor stands for them
POSGATE_FAKE_NOW=$(( $(date +%s) + 60 * 86400 )) expect_rc 0 "$HUB" prune --older-than 30d --db "$T/hub.db"
[[ $(sq "SELECT count(*) FROM events") == 0 && $(sq "SELECT count(*) FROM anchors") == 1 ]] \
    || fail "prune left $(sq "SELECT count(*) FROM events") events and $(sq "SELECT count(*) FROM anchors") anchors"

for v in stats devices; do
    expect_rc 0 "$HUB" "$v" --db "$T/hub.db" --json
    cp "$T/out.txt" "$T/$v.before"
done
expect_rc 0 "$HUB" migrate-db --from "$T/hub.db" --to "$URI"
for v in stats devices; do
    expect_rc 0 "$HUB" "$v" --db "$URI" --json
    cmp -s "$T/$v.before" "$T/out.txt" || { diff "$T/$v.before" "$T/out.txt" | head >&2; fail "$v differs after migrate-db"; }
done
[[ $(dbq "SELECT count(*) FROM anchors") == 1 ]] || fail "the chain anchor did not move"
# each device's head (the ingest judges a batch that follows it from the device's row alone)
[[ $(dbq "SELECT count(*) FROM devices d WHERE head_hash IS NULL OR head_seq <> greatest((SELECT
    max(seq) FROM events e WHERE e.device_id = d.device_id), (SELECT seq FROM anchors a WHERE
    a.device_id = d.device_id))") == 0 ]] || fail "a device's head is not its highest seq held"
[[ $(dbq "SELECT count(*) FROM device_reports") == $(sq "SELECT count(*) FROM device_reports") ]] \
    || fail "the report history did not move whole"
psql -X -q -At -v ON_ERROR_STOP=1 "$URI" \
    -c "SELECT report FROM device_reports ORDER BY reported_at_us" > "$T/reports.pg"
python3 -c 'import sqlite3,sys; print("\n".join(r[0] for r in sqlite3.connect(sys.argv[1]).execute("SELECT report FROM device_reports ORDER BY reported_at_us")))' \
    "$T/hub.db" > "$T/reports.sq"
cmp -s "$T/reports.pg" "$T/reports.sq" || fail "the reports differ after migrate-db"
L="decision_id || ' ' || looked_up_at || ' ' || service || ' ' || lists || ' ' || via FROM lookups"
[[ $(dbq "SELECT $L") == "$(sq "SELECT $L")" ]] || fail "the lookups did not move: $(dbq "SELECT $L")"

# the kiosk's next visit goes to PostgreSQL: its first event links to a pruned one
decide --id "$HARD"
visit "$URI"
python3 - "$T/ingest.json" <<'PY' || fail "ingest after the move: $(cat "$T/ingest.json")"
import json, sys
d = json.load(open(sys.argv[1]))
flat = json.dumps(d)
assert '"stored": 1' in flat or '"stored":1' in flat, "expected the one new event stored"
PY
expect_rc 0 "$HUB" stats --db "$URI" --json
python3 - "$T/out.txt" <<'PY' || fail "chain after the move: $(cat "$T/out.txt")"
import json, sys
devs = json.load(open(sys.argv[1]))["devices"]
assert len(devs) == 1 and devs[0]["chain_ok"] is True and devs[0]["gaps"] == 0, devs
PY
# ---- a collector not pruned: its events move with their decision ids, and a contest is
# answered on PostgreSQL through the index
URI2=${URI/posgate\?/posgate2?}
[[ $URI2 != "$URI" ]] || fail "cannot name a second database after $URI"
psql -X -q -v ON_ERROR_STOP=1 "$URI" -c 'CREATE DATABASE posgate2' || fail "cannot create posgate2"
expect_rc 0 "$HUB" migrate-db --from "$T/hub2.db" --to "$URI2"
python3 -c 'import sqlite3,sys; print("\n".join("%s %d %s" % r for r in sqlite3.connect(sys.argv[1]).execute("SELECT device_id, seq, coalesce(decision_id, \x27-\x27) FROM events ORDER BY device_id, seq")))' \
    "$T/hub2.db" > "$T/ids.sq"
psql -X -q -At -F ' ' -v ON_ERROR_STOP=1 "$URI2" \
    -c "SELECT device_id, seq, coalesce(decision_id, '-') FROM events ORDER BY device_id, seq" > "$T/ids.pg"
[[ -s $T/ids.sq ]] && ! grep -q ' -$' "$T/ids.sq" || fail "the second collector's decision ids: $(cat "$T/ids.sq")"
cmp -s "$T/ids.sq" "$T/ids.pg" || { diff "$T/ids.sq" "$T/ids.pg" | head >&2; fail "the decision ids did not move"; }
expect_rc 0 "$HUB" decision "$DID" --db "$URI2" --json
grep -qF "$DID" "$T/out.txt" || fail "decision $DID after the move: $(cat "$T/out.txt")"
echo "migrate_db: events, decision ids, anchor, reports and lookups moved; the next batch verifies on PostgreSQL"
