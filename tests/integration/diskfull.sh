#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# A full disk does not stop the counter (agent/audit/audit.h, "A full disk"). On a small tmpfs mounted
# here (skipped, exit 77, when mounting is not permitted): posgated and the CLI answer; the disk
# is filled; the CLI answers ALLOW, DENY and REFER with their events committed from the audit
# queue's reserve; posgated restarts on the full disk and answers all three over HTTP, while
# /healthz, /metrics and /v1/status say the disk is full; once space returns the reserve is made
# again and every DENY and REFER is in `posgate audit list`, the chain intact.
# Usage: diskfull.sh BUILD_DIR
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
B=${1:?usage: diskfull.sh BUILD_DIR}
T=$(mktemp -d "${TMPDIR:-/tmp}/posgate-diskfull-XXXXXX")
M=$T/mnt
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    umount "$M" 2>/dev/null || true
    rm -rf "$T"
}
trap cleanup EXIT
cd "$T"
unset POSGATE_DATA_DIR POSGATE_FAKE_NOW
mkdir -p "$M"
if ! mount -t tmpfs -o size=24m tmpfs "$M" 2>mount.err; then
    echo "SKIP: diskfull needs to mount a tmpfs (root, or a container allowing mount): $(cat mount.err)"
    exit 77
fi
# shared helpers: fail, expect_rc, free_port, wait_for
. "$HERE/lib.sh"
FAIL_LOGS=(daemon.log)
pg() { "$B/posgate" --data-dir "$M/k" "$@"; }
rid() { # rid BODY17 : a cn_rid with its ISO 7064 MOD 11-2 check character
    python3 -c '
import sys
b = sys.argv[1]; w = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
print(b + "10X98765432"[sum(int(c) * x for c, x in zip(b, w)) % 11])' "$1"
}
LISTED=$(rid 11010519800101123)
FREE=$(rid 11010519491231002)
cat > feed.json <<'JSON'
{
  "feed_id": "diskfull",
  "services": ["air", "rail", "rail.hsr", "hotel", "hotel.star"],
  "lists": [
    {"id": "spc", "authority": "Supreme People's Court", "jurisdictions": ["CN"],
     "stale_after": "7d", "stale_policy": "refer"}
  ],
  "reasons": [
    {"id": "debtor", "authority": "Supreme People's Court", "legal_basis": "Fa Shi [2015] No. 17",
     "contest": "hotline 12368", "scope": ["air", "rail.hsr", "hotel.star"]}
  ]
}
JSON
cat > e.csv <<CSV
list,listing_id,kind,id_type,id_value,reason,valid_from,valid_until,scope
spc,SPC-A,restrict,cn_rid,$LISTED,debtor,2020-01-01,,
spc,SPC-N,restrict,name_dob,Li Lei|1980-02-03,debtor,2020-01-01,,
CSV
"$B/posgate-keygen" --out root >/dev/null
"$B/posgate-keygen" --out feedk >/dev/null
"$B/posgate-keygen" --list-key --out list.key >/dev/null
"$B/posgate-publish" init --state st --config feed.json --root-key root.key --threshold 1 \
    --feed-key feedk.key --list-key list.key >/dev/null
"$B/posgate-publish" update --state st --entries e.csv --out feed >/dev/null 2>&1
expect_rc 0 pg init --root feed/metadata/1.root.json --list-key list.key --jurisdiction CN
expect_rc 0 pg import feed

check_all_cli() { # the three answers through the CLI
    expect_rc 0 pg check --service air --id "cn_rid:$FREE"
    expect_rc 1 pg check --service air --id "cn_rid:$LISTED"
    expect_rc 3 pg check --service air --name "Li Lei" --birth-date 1980-02-03
}
DPORT=$(free_port)
API=http://127.0.0.1:$DPORT
echo '{"data_dir": "'"$M/k"'", "listen": ["127.0.0.1:'"$DPORT"'"]}' > daemon.json
start_daemon() {
    "$B/posgated" --config daemon.json 2>>daemon.log &
    PIDS=("$!")
    for _ in $(seq 50); do curl -s -o /dev/null "$API/healthz" && return 0; sleep 0.2; done
    fail "posgated did not start"
}
stop_daemon() { kill "${PIDS[0]}"; wait "${PIDS[0]}" 2>/dev/null || true; PIDS=(); }
post() { # post BODY WANT_DECISION
    local code
    code=$(curl -s -o resp.json -w '%{http_code}' -X POST -H 'Content-Type: application/json' \
        --data-binary "$1" "$API/v1/check")
    [[ $code == 200 ]] || fail "HTTP check $1: $code $(cat resp.json)"
    python3 -c 'import json,sys; d=json.load(open("resp.json")); assert d["decision"]==sys.argv[1], d' \
        "$2" || fail "HTTP check $1: $(cat resp.json)"
}
check_all_http() {
    post '{"service": "air", "ids": ["cn_rid:'"$FREE"'"]}' allow
    post '{"service": "air", "ids": ["cn_rid:'"$LISTED"'"]}' deny
    post '{"service": "air", "name": "Li Lei", "birth_date": "1980-02-03"}' refer
}

# ---- room on the disk: the reserve is made, health is fine
start_daemon
check_all_http
[[ $(curl -s -o /dev/null -w '%{http_code}' "$API/healthz") == 200 ]] || fail "healthz before"
curl -s "$API/metrics" | grep -qx 'posgate_disk_full 0' || fail "metrics before: disk_full"
[[ -f $M/k/audit.db.reserve ]] || fail "no reserve beside the audit queue"
stop_daemon
check_all_cli

# ---- the disk fills (another program takes every free block)
dd if=/dev/zero of="$M/fill" bs=64k >/dev/null 2>&1 || true
[[ $(df --output=avail -k "$M" | tail -1 | tr -d ' ') -lt 64 ]] || fail "the tmpfs did not fill"
check_all_cli
[[ ! -f $M/k/audit.db.reserve ]] || fail "the reserve was not released on a full disk"
expect_rc 0 pg status --json
python3 -c 'import json; d=json.load(open("out.txt")); assert d["disk_full"] is True, d' ||
    fail "status --json on a full disk: $(cat out.txt)"

# ---- posgated restarts on the full disk and answers everything
start_daemon
check_all_http
check_all_http
code=$(curl -s -o health.json -w '%{http_code}' "$API/healthz")
[[ $code == 503 ]] && grep -q 'disk full' health.json || fail "healthz on a full disk: $code $(cat health.json)"
curl -s "$API/metrics" | grep -qx 'posgate_disk_full 1' || fail "metrics: posgate_disk_full"
curl -s "$API/v1/status" | grep -q '"disk_full":true' || fail "status: disk_full"
stop_daemon
check_all_cli

# ---- space returns: the reserve is made again, nothing was lost
rm -f "$M/fill"
check_all_cli
[[ -f $M/k/audit.db.reserve ]] || fail "the reserve was not made again once space returned"
expect_rc 0 pg status --json
python3 -c 'import json; d=json.load(open("out.txt")); assert d["disk_full"] is False, d' ||
    fail "status --json after: $(cat out.txt)"
expect_rc 0 pg audit list --json
python3 - <<'PY' || fail "audit list: $(head -c 600 out.txt)"
import json
ev = [e for e in json.load(open("out.txt")) if e.get("kind", "decision") == "decision"]
seqs = [e["seq"] for e in json.load(open("out.txt"))]
assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), seqs
by = {}
for e in ev:
    by[e["decision"]] = by.get(e["decision"], 0) + 1
# 3 HTTP rounds (1 before, 2 on the full disk) and 4 CLI rounds: 7 of each
assert by.get("deny") == 7 and by.get("refer") == 7 and by.get("allow") == 7, by
PY
expect_rc 0 pg audit verify
echo "diskfull: all checks passed"
