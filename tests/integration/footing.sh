#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Every answer, error and status says what it stands on, in a form programs can read:
#   - the check object (CLI --json and HTTP) carries at, feed_expired, stale_lists, list_key, and
#     the text notice and the CLI's footing line say an expired feed or a stale list in words;
#   - check --json errors are {"error": {"code", "field", "message"}} on stdout, exit codes kept;
#   - a check the terminal could not decide is audited as "error", not "refer";
#   - POST /v1/sync errors name the installed feed version;
#   - text status shows issue and install times, key filter, list key, stale, expired, health.
# Registered only in builds with -DPOSGATE_TEST_HOOKS=ON (it moves the clock with POSGATE_FAKE_NOW).
# Usage: footing.sh BUILD_DIR
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
B=${1:?usage: footing.sh BUILD_DIR}
T=$(mktemp -d "${TMPDIR:-/tmp}/posgate-footing-XXXXXX")
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$T"
}
trap cleanup EXIT
cd "$T"
unset POSGATE_DATA_DIR POSGATE_FAKE_NOW
# shared helpers: fail, expect_rc, free_port, wait_for
. "$HERE/lib.sh"
FAIL_LOGS=(daemon.log)
pg() { "$B/posgate" --data-dir "$T/$1" "${@:2}"; }
jq_py() { python3 -c "import json,sys; d=json.load(open('out.txt')); $1" || fail "$2: $(cat out.txt)"; }
rid() {
    python3 -c '
import sys
b = sys.argv[1]; w = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
print(b + "10X98765432"[sum(int(c) * x for c, x in zip(b, w)) % 11])' "$1"
}
LISTED=$(rid 11010519800101123)
FREE=$(rid 11010519491231002)
cat > feed.json <<'JSON'
{
  "feed_id": "footing",
  "services": ["air", "rail", "rail.hsr"],
  "lists": [
    {"id": "spc", "authority": "Supreme People's Court", "jurisdictions": ["CN"],
     "stale_after": "3d", "stale_policy": "refer"}
  ],
  "reasons": [
    {"id": "debtor", "authority": "Supreme People's Court", "legal_basis": "Fa Shi [2015] No. 17",
     "contest": "hotline 12368", "scope": ["air", "rail.hsr"]}
  ]
}
JSON
printf 'list,listing_id,kind,id_type,id_value,reason,valid_from,valid_until,scope\nspc,SPC-A,restrict,cn_rid,%s,debtor,2020-01-01,,\n' \
    "$LISTED" > e.csv
"$B/posgate-keygen" --out root >/dev/null
"$B/posgate-keygen" --out feedk >/dev/null
"$B/posgate-keygen" --list-key --out list.key >/dev/null
"$B/posgate-keygen" --list-key --out other.key >/dev/null
"$B/posgate-publish" init --state st --config feed.json --root-key root.key --threshold 1 \
    --feed-key feedk.key --list-key list.key >/dev/null
"$B/posgate-publish" update --state st --entries e.csv --out feed >/dev/null 2>&1
expect_rc 0 pg k init --root feed/metadata/1.root.json --list-key list.key --jurisdiction CN

# ---- nothing installed: the error object; the audit trail says "error"
expect_rc 5 pg k check --service air --id "cn_rid:$FREE" --json
jq_py 'e=d["error"]; assert e["code"]=="NOTFOUND" and e["field"] is None and "no verified list data" in e["message"], d; assert d["decision"]=="refer" and d["list_key"]=="none", d' \
    "error object, nothing installed"
expect_rc 0 pg k audit list --json
jq_py 'assert d[-1]["decision"]=="error" and "no verified" in d[-1]["error"], d[-1]' "audit error event"

expect_rc 0 pg k import feed
# ---- a fresh answer's footing
expect_rc 1 pg k check --service air --id "cn_rid:$LISTED" --json
jq_py 'assert d["feed_expired"] is False and d["stale_lists"]==[] and d["list_key"]=="ok" and d["at"], d' \
    "fresh footing"
expect_rc 0 pg k check --service air --id "cn_rid:$FREE"
grep -q '^footing: service date .*, data age [0-9]* s, feed signed, valid, list key ok, stale lists: none$' out.txt ||
    fail "footing line: $(head -3 out.txt)"

# ---- input errors: JSON on stdout, exit 2, the field named
expect_rc 2 pg k check --service air --id cn_rid:110105194912310021 --json
jq_py 'e=d["error"]; assert e["code"]=="INVALID" and e["field"]=="id" and "check character" in e["message"], d' "bad id"
expect_rc 2 pg k check --json --service nope --id "cn_rid:$FREE"
jq_py 'assert d["error"]["field"]=="service", d' "unknown service"
expect_rc 2 pg k check --service air --id "cn_rid:$FREE" --at 2000-01-01T00:00:00Z --json
jq_py 'assert d["error"]["field"]=="at", d' "backdated at"
expect_rc 2 pg k check --service air --name "Li Lei" --json
jq_py 'assert d["error"]["field"]=="birth_date", d' "name without birth date"

# ---- an expired feed (timestamp expiry 1 day) and a stale list (3 days): flagged and said
NOW=$(date +%s)
POSGATE_FAKE_NOW=$((NOW + 2 * 86400)) expect_rc 0 pg k check --service air --id "cn_rid:$FREE" --json
jq_py 'assert d["decision"]=="allow" and d["feed_expired"] is True and d["stale_lists"]==[], d; assert "metadata expired" in d["notice"], d["notice"]' \
    "expired feed"
POSGATE_FAKE_NOW=$((NOW + 4 * 86400)) expect_rc 3 pg k check --service air --id "cn_rid:$FREE" --json
jq_py 'assert d["feed_expired"] is True and d["stale_lists"]==["spc"], d; assert "list spc is stale" in d["notice"], d["notice"]' \
    "stale list"
POSGATE_FAKE_NOW=$((NOW + 4 * 86400)) expect_rc 3 pg k check --service air --id "cn_rid:$FREE"
grep -q 'feed EXPIRED, list key ok, stale lists: spc$' out.txt || fail "footing stale: $(head -3 out.txt)"

# ---- text status: issue and install times, key filter, list key, stale, expired, health
expect_rc 0 pg k status
for want in '^issued at .*(signed)$' '^installed at ' '^key filter    ok$' '^list key      ok' '^health        ok$'; do
    grep -q "$want" out.txt || fail "status: no $want in $(cat out.txt)"
done
POSGATE_FAKE_NOW=$((NOW + 4 * 86400)) expect_rc 0 pg k status
grep -q 'EXPIRED' out.txt && grep -q 'STALE$' out.txt &&
    grep -q '^health        NOT OK: feed metadata expired, stale list$' out.txt || fail "status stale: $(cat out.txt)"
rm -f k/store.db.filter
expect_rc 0 pg k status
grep -q '^key filter    missing' out.txt || fail "status without filter: $(cat out.txt)"
expect_rc 0 pg k compact

# ---- another list key: every check refused, exit 4, audited as error
cp k/list.key list.key.saved
cp other.key k/list.key
expect_rc 4 pg k check --service air --id "cn_rid:$FREE" --json
jq_py 'assert d["error"]["code"]=="CORRUPT" and d["list_key"]=="mismatch", d' "list key mismatch"
expect_rc 0 pg k status
grep -q '^list key      MISMATCH' out.txt && grep -q 'NOT OK: list key mismatch' out.txt ||
    fail "status mismatch: $(cat out.txt)"
cp list.key.saved k/list.key

# ---- HTTP: the same footing; a failed sync names the installed version
DPORT=$(free_port)
API=http://127.0.0.1:$DPORT
SOCK=$T/api.sock
echo '{"data_dir": "'"$T/k"'", "listen": ["127.0.0.1:'"$DPORT"'", "unix:'"$SOCK"'"], "feed_urls": ["http://127.0.0.1:1/"], "poll_interval_s": 3600}' > daemon.json
"$B/posgated" --config daemon.json 2>daemon.log &
PIDS+=("$!")
for _ in $(seq 50); do curl -s -o /dev/null "$API/healthz" && break; sleep 0.2; done
curl -s -o out.txt -X POST -H 'Content-Type: application/json' \
    -d '{"service": "air", "ids": ["cn_rid:'"$LISTED"'"]}' "$API/v1/check"
jq_py 'assert d["decision"]=="deny" and d["feed_expired"] is False and d["stale_lists"]==[] and d["list_key"]=="ok", d' \
    "HTTP footing"
# a sync is privileged (the unix socket) and answered at once (202); its result is in /v1/status
code=$(curl -s -o out.txt -w '%{http_code}' --unix-socket "$SOCK" -X POST http://localhost/v1/sync)
[[ $code == 202 ]] || fail "sync to a closed port: $code $(cat out.txt)"
SID=$(python3 -c 'import json; print(json.load(open("out.txt"))["sync_id"])')
synced() {
    curl -s -o out.txt --unix-socket "$SOCK" http://localhost/v1/status &&
        python3 -c 'import json,sys; r = json.load(open("out.txt"))["sync"]["result"]; sys.exit(0 if r and r["id"] >= int(sys.argv[1]) else 1)' "$SID"
}
for _ in $(seq 50); do synced && break; sleep 0.2; done
synced || fail "no sync result in /v1/status: $(cat out.txt)"
jq_py 'r = d["sync"]["result"]; assert r["ok"] is False and r["feed_version"]==1 and r["http_status"]==502, r' \
    "sync error feed version"
echo "footing: all checks passed"
