#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Device status reports end to end (docs/collector.md, "Device status"): posgated with
# audit_url sends a signed report after each upload round, and a heartbeat when there is
# nothing to upload, to posgate-hub serve --db (SQLite, or POSGATE_TEST_PG_URI from with_pg.sh);
# `posgate-hub devices` lists the latest with the kiosk's own fields and the clock offset
# against the collector's Date. A replayed older report is kept in the history but never
# becomes the latest; an edited one is refused (401); one of a device not enrolled, 403.
# Usage: device_status.sh BUILD_DIR
set -euo pipefail
B=$(cd "${1:?usage: device_status.sh BUILD_DIR}" && pwd)
HERE=$(cd "$(dirname "$0")" && pwd)
T=$(mktemp -d "${TMPDIR:-/tmp}/posgate-devstatus-XXXXXX")
PIDS=()
cleanup() {
    local p
    for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    rm -rf "$T"
}
trap cleanup EXIT
unset POSGATE_DATA_DIR POSGATE_FAKE_NOW
fail() {
    echo "FAIL: $*" >&2
    for f in "$T"/*.log; do [[ -f $f ]] && { echo "--- $f" >&2; tail -15 "$f" >&2; }; done
    exit 1
}
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
wait_for() { # wait_for SECONDS CMD...
    local n=$(($1 * 20)); shift
    for _ in $(seq "$n"); do "$@" >/dev/null 2>&1 && return 0; sleep 0.05; done
    return 1
}
bash "$HERE/audit_fixture.sh" "$B" "$T/fx" >/dev/null
# shellcheck disable=SC1091
source "$T/fx/subjects.env"
K=$T/fx/k
DB=${POSGATE_TEST_PG_URI:-$T/hub.db}
DEV=$("$B/posgate" --data-dir "$K" device-key --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["device_id"])')
"$B/posgate-hub" enroll --db "$DB" --pub "$K/device.pub" >/dev/null
# an older report, made before the daemon runs (field-sync onto an empty stick)
mkdir "$T/stick"
"$B/posgate" --data-dir "$K" field-sync "$T/stick" >/dev/null
cp "$T/stick/posgate/$DEV/status.json" "$T/old.json"

HP=$(free_port) DP=$(free_port)
"$B/posgate-hub" serve --db "$DB" --listen "127.0.0.1:$HP" 2>>"$T/hub.log" &
PIDS+=($!)
wait_for 10 curl -s -o /dev/null "http://127.0.0.1:$HP/v1/audit" || fail "hub did not start"
python3 - "$T/d.json" "$K" "$DP" "http://127.0.0.1:$HP/v1/audit" <<'PY'
import json, sys
json.dump({"data_dir": sys.argv[2], "listen": ["127.0.0.1:" + sys.argv[3]],
           "audit_url": sys.argv[4], "audit_upload_interval_s": 1, "log_level": "warn"},
          open(sys.argv[1], "w"))
PY
"$B/posgated" --config "$T/d.json" 2>>"$T/daemon.log" &
DPID=$!
PIDS+=("$DPID")
wait_for 10 curl -s -o /dev/null "http://127.0.0.1:$DP/healthz" || fail "posgated did not start"

# device_is EXPR: a Python expression over r, the device's latest report, holds now
device_is() {
    "$B/posgate-hub" devices --db "$DB" --json | python3 -c '
import json, sys
d = [x for x in json.load(sys.stdin) if x["device_id"] == sys.argv[1]]
r = d[0]["report"] if d else None
sys.exit(0 if r is not None and eval(sys.argv[2]) else 1)' "$DEV" "$1"
}
# the heartbeat: nothing to upload, the report still comes, with the clock offset
wait_for 15 device_is 'r["status"]["audit"]["head_seq"] == 0 and r["clock_offset_s"] is not None' ||
    fail "no heartbeat report: $("$B/posgate-hub" devices --db "$DB" --json)"
device_is 'abs(r["clock_offset_s"]) <= 2' || fail "clock offset: $("$B/posgate-hub" devices --db "$DB" --json)"
# decisions: the report after the upload round shows them acknowledged
for i in 1 2 3 4 5; do
    curl -s -o /dev/null -X POST -H 'Content-Type: application/json' \
        --data "{\"service\":\"air\",\"ids\":[\"$CLEAN\"]}" "http://127.0.0.1:$DP/v1/check"
done
curl -s -o /dev/null -X POST -H 'Content-Type: application/json' \
    --data "{\"service\":\"air\",\"ids\":[\"$HARD\"]}" "http://127.0.0.1:$DP/v1/check"
wait_for 15 device_is 'r["status"]["audit"]["head_seq"] == 6 and r["status"]["audit"]["unsent"] == 0' ||
    fail "no report after the upload: $("$B/posgate-hub" devices --db "$DB" --json)"
device_is '(r["status"]["feed_version"] > 0 and r["status"]["list_key"] == "ok" and r["software_version"] != "" and
    all("seq" in l and "digest" in l and "data_age_s" in l and "stale" in l for l in r["status"]["lists"]) and
    r["status"]["audit"]["oldest_unsent_age_s"] is None and "key_filter" in r["status"] and
    r["status"]["metadata_expired"] is False)' || fail "fields: $("$B/posgate-hub" devices --db "$DB" --json)"
"$B/posgate-hub" devices --db "$DB" | grep -q "^$DEV software" || fail "devices (text)"

# a replayed older report: 200, kept in the history, not the latest
post() { # post FILE : prints the HTTP status, the body into $T/resp
    curl -s -o "$T/resp" -w '%{http_code}' -X POST -H 'Content-Type: application/json' \
        --data-binary "@$1" "http://127.0.0.1:$HP/v1/device-status"
}
[[ $(post "$T/old.json") == 200 ]] || fail "replay: $(cat "$T/resp")"
grep -q '"latest":false' "$T/resp" || fail "a replayed report became the latest: $(cat "$T/resp")"
device_is 'r["status"]["audit"]["head_seq"] == 6' || fail "the replay replaced the latest"
# an edited report does not verify; a device not enrolled is refused
python3 - "$T/old.json" "$T/forged.json" "$T/other.json" <<'PY'
import json, sys
e = json.load(open(sys.argv[1]))
r = json.loads(e["report"]); r["reported_at_us"] += 10**13
f = dict(e, report=json.dumps(r)); json.dump(f, open(sys.argv[2], "w"))
r["device_id"] = "0" * 32
o = dict(e, device_id="0" * 32, report=json.dumps(r)); json.dump(o, open(sys.argv[3], "w"))
PY
[[ $(post "$T/forged.json") == 401 ]] || fail "forged: $(cat "$T/resp")"
[[ $(post "$T/other.json") == 403 ]] || fail "not enrolled: $(cat "$T/resp")"
echo '{"v":1}' > "$T/bad.json"
[[ $(post "$T/bad.json") == 400 ]] || fail "malformed: $(cat "$T/resp")"
device_is 'r["status"]["audit"]["head_seq"] == 6' || fail "a refused report changed the latest"
if [[ -z ${POSGATE_TEST_PG_URI:-} ]]; then
    n=$(python3 -c 'import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute("SELECT count(*) FROM device_reports").fetchone()[0])' "$DB")
    ((n >= 3)) || fail "history holds $n reports, expected the old one and at least two of the daemon"
fi
kill "$DPID"
rc=0; wait "$DPID" || rc=$?
[[ $rc == 0 ]] || fail "posgated exited $rc after SIGTERM"
! grep -q "Sanitizer" "$T/daemon.log" "$T/hub.log" || fail "sanitizer report"
echo "device_status: ok (device $DEV)"
