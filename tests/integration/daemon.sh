#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# posgated end to end with real processes on 127.0.0.1 and a unix socket: config errors
# (exit 2 naming the key), /healthz 503 and a 502 sync before any feed is reachable, then a
# feed served by posgate-hub synced by hand and by the loop; POST /v1/check answers equal in
# decision and reasons to `posgate check --json` for DENY / ALLOW / REFER; 400 naming the bad
# field, 413, 404/405; the bearer token (401 on TCP, not needed on the unix socket); /metrics
# and /v1/status contents; removal propagation within two poll intervals; faults (feed server
# down, a replayed older timestamp) keep the last good version answering, are reported in
# /v1/status and /metrics, and recover; SIGHUP reload (token, poll interval, log level, a bad
# config kept out); SIGTERM exits 0 promptly. Every process started here is killed on exit.
# Usage: daemon.sh BUILD_DIR
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
B=${1:?usage: daemon.sh BUILD_DIR}
S=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
T=$(mktemp -d "${TMPDIR:-/tmp}/posgate-daemon-XXXXXX")
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null && wait "$p" 2>/dev/null || true; done
    rm -rf "$T"
}
trap cleanup EXIT
cd "$T"
unset POSGATE_DATA_DIR POSGATE_FAKE_NOW
# shared helpers: fail, expect_rc, free_port, wait_for
. "$HERE/lib.sh"
FAIL_LOGS=(daemon.log) FAIL_TAIL=30
POLL=2
TOKEN=tok-$RANDOM$RANDOM
ADMIN=adm-$RANDOM$RANDOM
DPORT=$(free_port)
SOCK=$T/api.sock
API=http://127.0.0.1:$DPORT

# http METHOD PATH [BODY] [extra curl args...]: prints the status; body in resp.json
http() {
    local m=$1 p=$2 body=${3:-}
    shift 3 || shift $#
    if [[ -n $body ]]; then
        curl -s -o resp.json -w '%{http_code}' -X "$m" -H "Authorization: Bearer ${AUTH_TOKEN:-$TOKEN}" \
            -H 'Content-Type: application/json' --data-binary "$body" "$@" "$API$p"
    else
        curl -s -o resp.json -w '%{http_code}' -X "$m" -H "Authorization: Bearer ${AUTH_TOKEN:-$TOKEN}" "$@" "$API$p"
    fi
}
expect_http() { # expect_http STATUS METHOD PATH [BODY]
    local want=$1; shift
    local got; got=$(http "$@")
    [[ $got == "$want" ]] || fail "$1 $2 answered $got, expected $want: $(cat resp.json)"
}
# sync_now: asks for a sync on the unix socket (privileged), waits for its result in
# GET /v1/status sync.result (written to resp.json); prints its http_status
sync_now() {
    python3 - "$SOCK" <<'PY'
import json, socket, sys, time
def req(method, path):
    s = socket.socket(socket.AF_UNIX); s.settimeout(30); s.connect(sys.argv[1])
    s.sendall(f"{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".encode())
    data = b""
    while True:
        d = s.recv(65536)
        if not d:
            break
        data += d
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body
code, body = req("POST", "/v1/sync")
if code != 202:
    open("resp.json", "wb").write(body); print(code); sys.exit(0)
want = json.loads(body)["sync_id"]
end = time.time() + 120
bad = None
while time.time() < end:
    code, body = req("GET", "/v1/status")
    try:
        res = json.loads(body)["sync"]["result"]
    except (ValueError, KeyError, TypeError):
        bad = (code, body[:300])  # not a status object: ask again, report it if it lasts
        open("status-bad.log", "a").write("%r\n" % (bad,))
        time.sleep(0.1)
        continue
    if res is not None and res["id"] >= want:
        json.dump(res, open("resp.json", "w")); print(res["http_status"]); sys.exit(0)
    time.sleep(0.1)
print("timeout", bad)
PY
}
expect_sync() { # expect_sync STATUS
    local got; got=$(sync_now)
    [[ $got == "$1" ]] || fail "POST /v1/sync ended $got, expected $1: $(cat resp.json)"
}
jget() { python3 -c 'import json,sys; d=json.load(open("resp.json")); print(eval(sys.argv[1]))' "$1"; }
subject() { # subject SITUATION TYPE_PREFIX FIELD
    awk -F, -v s="$1" -v t="$2" -v f="$3" \
        '$1 == s && index($2, t) == 1 { gsub(/"/, "", $0); print (f == "id" ? $2 : $3); exit }' subj.csv
}

# ---- a published feed and a kiosk that has imported nothing yet
"$B/posgate-keygen" --out root >/dev/null
"$B/posgate-keygen" --out feedk >/dev/null
"$B/posgate-keygen" --list-key --out list.key >/dev/null
"$B/posgate-synth" --count 3000 --seed 7 --out e1.csv --config-out feed.json --subjects-out subj.csv
"$B/posgate-publish" init --state st --config feed.json --root-key root.key --threshold 1 \
    --feed-key feedk.key --list-key list.key >/dev/null
"$B/posgate-publish" update --state st --entries e1.csv --out feed >/dev/null 2>&1
"$B/posgate" --data-dir k init --root feed/metadata/1.root.json --list-key list.key \
    --jurisdiction CN >/dev/null
LISTED=$(subject listed cn_rid: id) LSVC=$(subject listed cn_rid: service)
NAME=$(subject name_only "" id) NSVC=$(subject name_only "" service)
[[ -n $LISTED && -n $NAME ]] || fail "subjects missing in subj.csv"

# ---- usage and config errors
"$B/posgated" --help | grep -q "usage: posgated" || fail "--help"
set +e
"$B/posgated" >/dev/null 2>&1; [[ $? == 2 ]] || fail "no --config should exit 2"
echo '{"poll_interval_s": "fast"}' > bad1.json
"$B/posgated" --check-config --config bad1.json 2>err.txt; rc=$?
[[ $rc == 2 ]] && grep -q poll_interval_s err.txt || fail "wrong type: rc $rc $(cat err.txt)"
echo '{"frobnicate": 1}' > bad2.json
"$B/posgated" --config bad2.json 2>err.txt; rc=$?
[[ $rc == 2 ]] && grep -q "frobnicate: unknown key" err.txt || fail "unknown key: rc $rc $(cat err.txt)"
echo '{"listen": ["0.0.0.0:'"$DPORT"'"], "data_dir": "'"$T/k"'"}' > bad3.json
"$B/posgated" --config bad3.json 2>err.txt; rc=$?
[[ $rc == 2 ]] && grep -q "not a loopback address" err.txt || fail "remote listen: rc $rc $(cat err.txt)"
echo '{"data_dir": "'"$T/none"'", "listen": ["127.0.0.1:'"$DPORT"'"]}' > bad4.json
"$B/posgated" --config bad4.json 2>err.txt; rc=$?
[[ $rc == 5 ]] && grep -q "posgate init" err.txt || fail "missing data dir: rc $rc $(cat err.txt)"
set -e

# ---- the daemon, before its feed server is up
HPORT=$(free_port)
FEED_URL=http://127.0.0.1:$HPORT/
write_config() { # write_config TOKEN POLL LOG_LEVEL
    cat > daemon.json.tmp <<EOF
{"data_dir": "$T/k", "listen": ["127.0.0.1:$DPORT", "unix:$SOCK"],
 "feed_urls": ["$FEED_URL"], "poll_interval_s": $2,
 "api_token": "$1", "admin_token": "$ADMIN", "log_level": "$3"}
EOF
    mv daemon.json.tmp daemon.json
}
write_config "$TOKEN" "$POLL" info
"$B/posgated" --check-config --config daemon.json >/dev/null || fail "--check-config of a good config"
"$B/posgated" --config daemon.json 2>daemon.log &
DPID=$!
PIDS+=("$DPID")
wait_for 10 curl -s -o /dev/null "$API/healthz" || fail "posgated did not start"
wait_for 5 test -S "$SOCK" || fail "no unix socket at $SOCK"
expect_http 503 GET /healthz
[[ $(jget 'd["ok"]') == False ]] || fail "healthz ok before any sync"
grep -q "no verified" resp.json || fail "healthz reason: $(cat resp.json)"
expect_http 503 POST /v1/check '{"service": "air", "ids": ["cn_rid:11010519491231002X"]}'
expect_sync 502
[[ $(jget 'd["ok"]') == False && $(jget 'd["error"] is not None') == True ]] || fail "sync 502 body: $(cat resp.json)"
expect_http 200 GET /v1/status
python3 - <<'PY' || fail "status sync fields before the first sync: $(cat resp.json)"
import json; d = json.load(open("resp.json")); s = d["sync"]
assert set(("last_attempt", "last_success", "last_error", "next_attempt")) <= set(s), s
assert s["last_attempt"] and s["last_success"] is None and s["last_error"], s
assert s["next_attempt"], s
PY

# ---- the feed server comes up; a sync by hand installs version 1
"$B/posgate-hub" --feed feed --listen "127.0.0.1:$HPORT" 2>hub.log &
HPID=$!
PIDS+=("$HPID")
wait_for 10 curl -s -o /dev/null "http://127.0.0.1:$HPORT/metadata/timestamp.json" || fail "hub did not start"
expect_sync 200
[[ $(jget 'd["ok"]') == True && $(jget 'd["feed_version"]') == 1 ]] || fail "sync body: $(cat resp.json)"
if [[ $(jget 'd["changed"]') != True ]]; then
    # the daemon's own retry (1 s after the failure above) may install version 1 first: then the
    # hand sync changes nothing, and the status says a sync already succeeded
    cp resp.json hand-sync.json
    expect_http 200 GET /v1/status
    [[ $(jget 'd["feed_version"]') == 1 && $(jget 'd["sync"]["last_success"] is not None') == True ]] ||
        fail "sync by hand changed nothing, and no sync installed version 1: $(cat hand-sync.json resp.json)"
fi
expect_http 200 GET /healthz
[[ $(jget 'd["ok"]') == True ]] || fail "healthz after sync: $(cat resp.json)"

# ---- checks equal to the CLI's
compare_check() { # compare_check SERVICE ID_OR_NAME_DOB BODY
    local svc=$1 id=$2 body=$3
    expect_http 200 POST /v1/check "$body"
    cp resp.json api.json
    if [[ $id == name_dob:* ]]; then
        local nd=${id#name_dob:}
        "$B/posgate" --data-dir k check --service "$svc" --name "${nd%|*}" --birth-date "${nd##*|}" --json >cli.json || true
    else
        "$B/posgate" --data-dir k check --service "$svc" --id "$id" --json >cli.json || true
    fi
    python3 - <<'PY' || fail "API and CLI differ for $id: $(cat api.json) vs $(cat cli.json)"
import json
a, c = json.load(open("api.json")), json.load(open("cli.json"))
for k in ("decision", "service", "reasons", "feed_version", "notice"):
    if k == "notice":
        continue  # carries the time of the check
    assert a[k] == c[k], (k, a[k], c[k])
for k in ("decision_id", "data_age_s", "notice"):
    assert k in a, k
PY
    jget 'd["decision"]'
}
[[ $(compare_check "$LSVC" "$LISTED" '{"service": "'"$LSVC"'", "ids": ["'"$LISTED"'"], "operator": "clerk-1"}') == deny ]] ||
    fail "listed subject not denied: $(cat api.json)"
grep -q legal_basis api.json || fail "deny without reasons"
[[ $(compare_check rail.hsr cn_rid:11010519491231002X '{"service": "rail.hsr", "ids": ["cn_rid:11010519491231002X"]}') == allow ]] ||
    fail "unlisted subject not allowed: $(cat api.json)"
ND=${NAME#name_dob:}
[[ $(compare_check "$NSVC" "$NAME" '{"service": "'"$NSVC"'", "name": "'"${ND%|*}"'", "birth_date": "'"${ND##*|}"'"}') == refer ]] ||
    fail "name match not refer: $(cat api.json)"

# ---- bad requests
BAD=${LISTED%?}$([[ ${LISTED: -1} == 0 ]] && echo 1 || echo 0)
expect_http 400 POST /v1/check '{"service": "air", "ids": ["cn_rid:11010519491231002X", "'"$BAD"'"]}'
grep -q '"error":"ids\[1\]: .*check character' resp.json || fail "malformed id message: $(cat resp.json)"
expect_http 400 POST /v1/check '{"service": "air", "ids": ["cn_rid:11010519491231002X"], "colour": "red"}'
grep -q 'colour: unknown key' resp.json || fail "unknown key message: $(cat resp.json)"
expect_http 400 POST /v1/check '{"service": "no.such.service", "ids": ["cn_rid:11010519491231002X"]}'
grep -q 'no.such.service' resp.json || fail "unknown service message: $(cat resp.json)"
expect_http 400 POST /v1/check '{"ids": ["cn_rid:11010519491231002X"]}'
grep -q '"error":"service' resp.json || fail "missing service message: $(cat resp.json)"
expect_http 400 POST /v1/check '{"service": "air", '
python3 -c 'print("{\"service\": \"air\", \"name\": \"" + "x" * 70000 + "\"}")' > big.json
code=$(curl -s -o resp.json -w '%{http_code}' -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' --data-binary @big.json "$API/v1/check")
[[ $code == 413 ]] || fail "oversize body answered $code"
expect_http 404 GET /v2/nothing
expect_http 405 GET /v1/check

# ---- supervisor override: only where every denying listing allows it; always audited
python3 - "$API" "$TOKEN" > override.txt <<'PY'
import csv, json, sys, urllib.request
api, token = sys.argv[1], sys.argv[2]
def check(body):
    req = urllib.request.Request(api + "/v1/check", data=json.dumps(body).encode(),
                                 headers={"Authorization": "Bearer " + token,
                                          "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req) as r:
            return r.status, json.load(r)
    except urllib.error.HTTPError as e:
        return e.code, json.load(e)
yes = no = None
for row in csv.reader(open("subj.csv")):
    if row[0] not in ("listed", "narrowed") or (yes and no):
        continue
    code, d = check({"service": row[2], "ids": [row[1]]})
    if code != 200 or d["decision"] != "deny":
        continue
    deny = [r for r in d["reasons"] if r["effect"] == "deny"]
    if all(r["override_allowed"] for r in deny):
        yes = yes or (row[2], row[1])
    else:
        no = no or (row[2], row[1])
print(json.dumps({"yes": yes, "no": no}))
PY
OV_YES=$(python3 -c 'import json; d=json.load(open("override.txt")); print(json.dumps(d["yes"]) if d["yes"] else "")')
OV_NO=$(python3 -c 'import json; d=json.load(open("override.txt")); print(json.dumps(d["no"]) if d["no"] else "")')
[[ -n $OV_YES || -n $OV_NO ]] || fail "no denied subject to try an override on: $(cat override.txt)"
if [[ -n $OV_YES ]]; then
    body=$(python3 -c 'import json,sys; s,i=json.loads(sys.argv[1]); print(json.dumps({"service": s, "ids": [i], "override_by": "sup-9", "override_reason": "court letter 12"}))' "$OV_YES")
    expect_http 403 POST /v1/check "$body" # a check caller may not override
    AUTH_TOKEN=$ADMIN expect_http 200 POST /v1/check "$body"
    [[ $(jget 'd["decision"]') == allow && $(jget 'd["override"]["by"]') == sup-9 ]] ||
        fail "override not applied: $(cat resp.json)"
fi
if [[ -n $OV_NO ]]; then
    body=$(python3 -c 'import json,sys; s,i=json.loads(sys.argv[1]); print(json.dumps({"service": s, "ids": [i], "override_by": "sup-9", "override_reason": "x"}))' "$OV_NO")
    AUTH_TOKEN=$ADMIN expect_http 400 POST /v1/check "$body"
    grep -q "override" resp.json || fail "refused override message: $(cat resp.json)"
fi
expect_http 400 POST /v1/check '{"service": "air", "ids": ["cn_rid:11010519491231002X"], "override_by": "sup-9"}'
echo "override: granted ${OV_YES:-(no overridable subject)}, refused ${OV_NO:-(no other subject)}"

# ---- the bearer token: TCP needs it, the unix socket does not
code=$(curl -s -o resp.json -w '%{http_code}' "$API/v1/status")
[[ $code == 401 ]] || fail "no token answered $code"
code=$(curl -s -o resp.json -w '%{http_code}' -H "Authorization: Bearer wrong" "$API/v1/status")
[[ $code == 401 ]] || fail "wrong token answered $code"
code=$(curl -s -o resp.json -w '%{http_code}' --unix-socket "$SOCK" -H 'Content-Type: application/json' -d '{"service": "'"$LSVC"'", "ids": ["'"$LISTED"'"]}' http://localhost/v1/check)
[[ $code == 200 && $(jget 'd["decision"]') == deny ]] || fail "unix socket check: $code $(cat resp.json)"

# ---- metrics and status
expect_http 200 GET /metrics
cp resp.json metrics.txt
for m in 'posgate_checks_total{decision="deny"} [1-9]' 'posgate_checks_total{decision="allow"} [1-9]' \
         'posgate_checks_total{decision="refer"} [1-9]' 'posgate_checks_total{decision="error"} [1-9]' \
         'posgate_check_duration_seconds_bucket{le="1e-06"} ' 'posgate_check_duration_seconds_bucket{le="0.1"} ' \
         'posgate_check_duration_seconds_count [1-9]' 'posgate_feed_version 1$' 'posgate_data_age_seconds [0-9]' \
         'posgate_sync_attempts_total \([2-9]\|[1-9][0-9]\)' \
         'posgate_sync_failures_total{kind="network"} [1-9]' \
         'posgate_fetch_bytes_total [1-9]'; do
    grep -q "^$m" metrics.txt || fail "metrics lack /^$m/: $(cat metrics.txt)"
done
expect_http 200 GET /v1/status
python3 - <<'PY' || fail "status after sync: $(cat resp.json)"
import json; d = json.load(open("resp.json")); s = d["sync"]
assert d["feed_version"] == 1 and d["lists"], d
assert s["last_success"] and s["last_error"] is None and s["next_attempt"], s
PY

# ---- removal propagation: within two poll intervals, no help from POST /v1/sync
cp -r feed/metadata ts-v1   # kept for the replay fault below
VAL=${LISTED#cn_rid:}
grep -v -F "$VAL" e1.csv > e2.csv
"$B/posgate-publish" update --state st --entries e2.csv --out feed >/dev/null 2>&1
t0=$(date +%s%N)
allowed() { [[ $(http POST /v1/check '{"service": "'"$LSVC"'", "ids": ["'"$LISTED"'"]}') == 200 &&
              $(jget 'd["decision"]') == allow ]]; }
wait_for $((2 * POLL + 1)) allowed || fail "removal not propagated within $((2 * POLL)) s: $(cat resp.json)"
echo "removal propagated in $(( ($(date +%s%N) - t0) / 1000000 )) ms (poll interval ${POLL} s)"
[[ $(jget 'd["feed_version"]') == 2 ]] || fail "allowed at feed version $(jget 'd["feed_version"]')"
# the sync thread then merges the delta's rows into the main table: recent ends empty and the
# removed row is gone from entries, while the answer stays the same
wait_for 10 grep -q "merged 1 recent row(s) into the store's main table" daemon.log ||
    fail "the delta was not merged after the sync: $(grep -i merg daemon.log)"
python3 - "$T/k/store.db" <<'PY' || fail "the store after the merge"
import sqlite3, sys
db = sqlite3.connect("file:%s?mode=ro" % sys.argv[1], uri=True)
assert db.execute("SELECT count(*) FROM recent").fetchone()[0] == 0, "recent is not empty"
assert db.execute("SELECT count(*) FROM entries").fetchone()[0] == \
    db.execute("SELECT sum(entries) FROM lists").fetchone()[0], "entries and the lists differ"
PY
allowed || fail "after the merge: $(cat resp.json)"
expect_http 200 GET /v1/status
[[ $(jget 'd["unmerged_rows"]') == 0 && $(jget 'd["key_filter"]') == ok ]] ||
    fail "status after the merge: $(cat resp.json)"
expect_sync 200
[[ $(jget 'd["ok"]') == True && $(jget 'd["changed"]') == False && $(jget 'd["feed_version"]') == 2 ]] ||
    fail "no-change sync: $(cat resp.json)"

# ---- fault: the feed server goes away
kill "$HPID"; wait "$HPID" 2>/dev/null || true
expect_sync 502
check_still_v2() {
    expect_http 200 POST /v1/check '{"service": "'"$LSVC"'", "ids": ["'"$LISTED"'"]}'
    [[ $(jget 'd["decision"]') == allow && $(jget 'd["feed_version"]') == 2 ]] || fail "last good version lost: $(cat resp.json)"
}
check_still_v2
expect_http 200 GET /healthz
expect_http 200 GET /v1/status
[[ $(jget 'd["sync"]["last_error"] is not None') == True ]] || fail "status does not report the failure: $(cat resp.json)"
nf1=$(curl -s -H "Authorization: Bearer $TOKEN" "$API/metrics" | awk '/^posgate_sync_failures_total\{kind="network"\}/ {print $2}')
# backoff: the loop does not hammer a dead server (at most one attempt per second)
a1=$(curl -s -H "Authorization: Bearer $TOKEN" "$API/metrics" | awk '/^posgate_sync_attempts_total/ {print $2}')
sleep 3
a2=$(curl -s -H "Authorization: Bearer $TOKEN" "$API/metrics" | awk '/^posgate_sync_attempts_total/ {print $2}')
(( a2 - a1 <= 3 )) || fail "no backoff: $((a2 - a1)) attempts in 3 s"
(( nf1 >= 2 )) || fail "network failures not counted: $nf1"
"$B/posgate-hub" --feed feed --listen "127.0.0.1:$HPORT" 2>>hub.log &
HPID=$!
PIDS+=("$HPID")
wait_for 10 curl -s -o /dev/null "http://127.0.0.1:$HPORT/metadata/timestamp.json" || fail "hub did not restart"
recovered() { http GET /v1/status >/dev/null; [[ $(jget 'd["sync"]["last_error"] is None') == True ]]; }
# the backoff is capped at 8 poll intervals
wait_for $((8 * POLL + 3)) recovered || fail "no recovery after the server came back: $(cat resp.json)"

# ---- fault: a replayed older timestamp (signed, but a rollback)
cp feed/metadata/timestamp.json ts-good.json
cp ts-v1/timestamp.json feed/metadata/timestamp.json
expect_sync 422
[[ $(jget 'd["ok"]') == False ]] || fail "replay accepted: $(cat resp.json)"
check_still_v2
rejected_counted() {
    curl -s -H "Authorization: Bearer $TOKEN" "$API/metrics" |
        grep -q '^posgate_sync_failures_total{kind="rejected"} [1-9]'
}
wait_for 5 rejected_counted || fail "rejected feed not counted in metrics: $(curl -s -H "Authorization: Bearer $TOKEN" "$API/metrics" | grep sync_failures)"
expect_http 200 GET /v1/status
[[ $(jget 'd["sync"]["last_error"]') == *REJECTED* || $(jget 'd["sync"]["last_error"]') == *ROLLBACK* ]] ||
    fail "status last_error: $(cat resp.json)"
cp ts-good.json feed/metadata/timestamp.json
expect_sync 200
check_still_v2

# ---- SIGHUP: a bad config is kept out, a good one changes token, poll interval, log level
echo '{"poll_interval_s": 0}' > daemon.json
kill -HUP "$DPID"
sleep 0.5
kill -0 "$DPID" || fail "daemon died on a bad reload"
grep -q "keeping the running config" daemon.log || fail "bad reload not logged"
expect_http 200 GET /healthz
OLD=$TOKEN
TOKEN=tok2-$RANDOM
write_config "$TOKEN" 1 debug
kill -HUP "$DPID"
wait_for 5 grep -q "config reloaded" daemon.log || fail "reload not logged"
expect_http 200 GET /v1/status
code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $OLD" "$API/v1/status")
[[ $code == 401 ]] || fail "old token still accepted after reload ($code)"
wait_for 5 grep -q "sync: feed version" daemon.log || fail "no sync logged"
check_still_v2

# ---- keep-alive and parallel checks
curl -s -o /dev/null -o /dev/null -w '%{num_connects}\n' -H "Authorization: Bearer $TOKEN" \
    "$API/healthz" "$API/healthz" > conns.txt
[[ $(tail -1 conns.txt) == 0 ]] || fail "connection not kept alive: $(cat conns.txt)"
# the counters of /metrics, kept per request thread, add up across threads (each /metrics read
# counts itself: two after the checks)
metric() { curl -s -H "Authorization: Bearer $TOKEN" "$API/metrics" |
           awk -v m="$1" '$1 == m {print $2}'; }
ALLOW0=$(metric 'posgate_checks_total{decision="allow"}')
REQS0=$(metric posgate_http_requests_total)
CURLS=()
for i in 1 2 3 4 5 6 7 8; do
    curl -s -o "par$i.json" -H "Authorization: Bearer $TOKEN" -H "Content-Type: application/json" \
        -d '{"service": "rail.hsr", "ids": ["cn_rid:11010519491231002X"]}' "$API/v1/check" &
    CURLS+=("$!")
done
wait "${CURLS[@]}"
for i in 1 2 3 4 5 6 7 8; do grep -q '"decision":"allow"' "par$i.json" || fail "parallel check $i: $(cat par$i.json)"; done
ALLOW1=$(metric 'posgate_checks_total{decision="allow"}')
REQS1=$(metric posgate_http_requests_total)
[[ $((ALLOW1 - ALLOW0)) == 8 && $((REQS1 - REQS0)) == 10 ]] ||
    fail "metrics after 8 parallel checks: allow $ALLOW0 -> $ALLOW1, requests $REQS0 -> $REQS1"

# ---- the fault proxy in front of the hub (feed_urls switched by SIGHUP)
python3 "$S/faultproxy.py" --upstream "http://127.0.0.1:$HPORT" --listen 127.0.0.1:0 \
    --port-file fp.port --quiet >/dev/null 2>fp.log &
PIDS+=("$!")
wait_for 10 test -s fp.port || fail "faultproxy did not start: $(cat fp.log)"
FP=http://127.0.0.1:$(cat fp.port)
FEED_URL=$FP/
write_config "$TOKEN" 1 info
kill -HUP "$DPID"
through_proxy() { [[ $(sync_now) == 200 ]] &&
                  curl -s "$FP/__fault/stats" | grep -q '"requests": *[1-9]'; }
wait_for 10 through_proxy || fail "no sync through the fault proxy: $(cat resp.json)"
# a newer version, so the proxy holds an older timestamp to replay
"$B/posgate-publish" refresh --state st --out feed >/dev/null 2>&1
expect_sync 200
[[ $(jget 'd["feed_version"]') == 3 ]] || fail "refresh not installed: $(cat resp.json)"
check_still() { # check_still VERSION: the listed-then-removed subject answers from VERSION
    expect_http 200 POST /v1/check '{"service": "'"$LSVC"'", "ids": ["'"$LISTED"'"]}'
    [[ $(jget 'd["decision"]') == allow && $(jget 'd["feed_version"]') == "$1" ]] ||
        fail "last good version lost: $(cat resp.json)"
}
failures() { curl -s -H "Authorization: Bearer $TOKEN" "$API/metrics" |
             awk '/^posgate_sync_failures_total/ {n += $2} END {print n + 0}'; }
recovered_ok() { [[ $(sync_now) == 200 ]] && http GET /v1/status >/dev/null &&
                 [[ $(jget 'd["sync"]["last_error"] is None') == True ]]; }
for fault in "mode=drop" "mode=stall&stall_s=2" "mode=truncate&match=.feed.json" "mode=error500" \
             "mode=error429&retry_after=2" "mode=error429&retry_after=2&date=1" "mode=replay"; do
    f0=$(failures)
    curl -s -o /dev/null "$FP/__fault?$fault" || fail "faultproxy control"
    code=$(sync_now)
    [[ $code == 502 || $code == 422 ]] || fail "$fault: sync answered $code: $(cat resp.json)"
    [[ $(jget 'd["ok"]') == False ]] || fail "$fault: sync body $(cat resp.json)"
    if [[ $fault == mode=replay ]]; then
        [[ $code == 422 ]] || fail "replay should be a rejected feed (422), got $code"
    fi
    check_still 3
    expect_http 200 GET /healthz
    expect_http 200 GET /v1/status
    [[ $(jget 'd["sync"]["last_error"] is not None') == True ]] || fail "$fault: not in status: $(cat resp.json)"
    (( $(failures) > f0 )) || fail "$fault: not counted in /metrics"
    curl -s -o /dev/null "$FP/__fault?mode=pass"
    # Retry-After closes the mirror for a while: recovery comes from the loop or a later sync
    wait_for 15 recovered_ok || fail "$fault: no recovery: $(cat resp.json)"
    check_still 3
    echo "fault $fault: reported ($code), served version 3 throughout, recovered"
done
curl -s -H "Authorization: Bearer $TOKEN" "$API/metrics" > metrics.txt
grep -q '^posgate_fetch_failures_total{kind="http_5xx"} ' metrics.txt ||
    fail "fetch failures by kind missing from /metrics"
# the injected faults were counted (which kind a 500 lands in depends on the mirror's timing)
grep -qE '^posgate_fetch_failures_total\{kind="[a-z0-9_]+"\} [1-9]' metrics.txt ||
    fail "no fetch failure counted in /metrics: $(grep fetch_failures metrics.txt)"

# ---- SIGTERM: exit 0 promptly, socket removed
t0=$(date +%s%N)
kill -TERM "$DPID"
set +e; wait "$DPID"; rc=$?; set -e
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
[[ $rc == 0 ]] || fail "SIGTERM exit code $rc"
(( ms < 5000 )) || fail "SIGTERM took $ms ms"
[[ ! -e $SOCK ]] || fail "unix socket left behind"
grep -q stopped daemon.log || fail "no stop logged"

# ---- a port in use is a start-up failure (exit 5) naming the address
write_config "$TOKEN" 2 info
python3 -c 'import socket,time,sys; s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(); time.sleep(30)' "$DPORT" &
PIDS+=("$!")
sleep 0.5
set +e; timeout 10 "$B/posgated" --config daemon.json 2>err.txt; rc=$?; set -e
[[ $rc == 5 ]] && grep -q "127.0.0.1:$DPORT" err.txt || fail "busy port: rc $rc $(cat err.txt)"
# ---- the systemd unit, when systemd-analyze is installed (it is not required)
if command -v systemd-analyze >/dev/null 2>&1; then
    sed "s|/usr/bin/posgated|$B/posgated|g" "$S/../../tools/systemd/posgated.service" > posgated.service
    systemd-analyze verify ./posgated.service 2>unit.txt || fail "unit: $(cat unit.txt)"
    [[ ! -s unit.txt ]] || fail "systemd-analyze verify warns: $(cat unit.txt)"
fi
echo "daemon.sh: all checks passed"
