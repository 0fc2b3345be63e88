#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Ways a listed person could be let through silently, each closed, through the real binaries
# (the CLI and posgated over HTTP on 127.0.0.1):
#   - a backdated service date (--at / "at") lifting a listing in effect now; a date outside the
#     window is an input error; a listing in effect only on the service date REFERs; the audit
#     event records the service date;
#   - an exemption of another identifier (someone else's, on the same list) lifting a listing;
#   - a child's cn_rid passed along with a listed adult's passport turning DENY into REFER;
#   - a check for a parent service (rail.hsr) of a listed sub-service (rail.hsr.first): REFER;
#   - an empty stale list with policy deny taking no part because it holds no rows.
# Usage: failclosed.sh BUILD_DIR
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
B=${1:?usage: failclosed.sh BUILD_DIR}
T=$(mktemp -d "${TMPDIR:-/tmp}/posgate-failclosed-XXXXXX")
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
rid() { # rid BODY17 : a cn_rid with its ISO 7064 MOD 11-2 check character
    python3 -c '
import sys
b = sys.argv[1]; w = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
print(b + "10X98765432"[sum(int(c) * x for c, x in zip(b, w)) % 11])' "$1"
}
day() { date -u -d "@$(( $(date +%s) + $1 * 86400 ))" +%Y-%m-%dT%H:%M:%SZ; }

MINOR=$(rid 11010520150301456) # a child's cn_rid, on no list
A=$(rid 11010519800101123)   # listed now on spc (air, rail.hsr.first, hotel.star)
B2=$(rid 11010519800101234)  # listed from in 10 days
C=$(rid 11010519800101345)   # listed, and exempted through the same identifier
D=$(rid 11010519800101456)   # listed on hk only: a list of another jurisdiction than the gate's
cat > feed.json <<'JSON'
{
  "feed_id": "failclosed",
  "services": ["air", "air.first", "rail", "rail.hsr", "rail.hsr.first", "hotel", "hotel.star"],
  "lists": [
    {"id": "spc", "authority": "Supreme People's Court", "jurisdictions": ["CN"],
     "stale_after": "7d", "stale_policy": "refer"},
    {"id": "hk", "authority": "High Court", "jurisdictions": ["HK"],
     "stale_after": "7d", "stale_policy": "refer"}
  ],
  "reasons": [
    {"id": "debtor", "authority": "Supreme People's Court", "legal_basis": "Fa Shi [2015] No. 17",
     "contest": "hotline 12368", "scope": ["air", "rail.hsr.first", "hotel.star"],
     "minors": "refer"}
  ]
}
JSON
cat > e.csv <<CSV
list,listing_id,kind,id_type,id_value,reason,valid_from,valid_until,scope
spc,SPC-A,restrict,cn_rid,$A,debtor,2020-01-01,,
spc,SPC-B,restrict,cn_rid,$B2,debtor,$(day 10),,
spc,SPC-C,restrict,cn_rid,$C,debtor,2020-01-01,,
spc,SPC-C-EX,exempt,cn_rid,$C,debtor,2020-01-01,,air
spc,SPC-OTHER-EX,exempt,national_id,FR:X1234567,debtor,2020-01-01,,
spc,SPC-P,restrict,passport,DEU:C01X00T47,debtor,2020-01-01,,
hk,HK-D,restrict,cn_rid,$D,debtor,2020-01-01,,
CSV
"$B/posgate-keygen" --out root >/dev/null
"$B/posgate-keygen" --out feedk >/dev/null
"$B/posgate-keygen" --list-key --out list.key >/dev/null
"$B/posgate-publish" init --state st --config feed.json --root-key root.key --threshold 1 \
    --feed-key feedk.key --list-key list.key >/dev/null
"$B/posgate-publish" update --state st --entries e.csv --out feed >/dev/null 2>&1
expect_rc 0 pg k init --root feed/metadata/1.root.json --list-key list.key --jurisdiction CN
expect_rc 0 pg k import feed

# ---- the service date cannot lift a listing in effect now
expect_rc 1 pg k check --service air --id "cn_rid:$A"
# the notice gives the decision id to quote when contesting
grep -q "^Decision id: [0-9a-f]\{32\}. Quote it to contest" out.txt || fail "no decision id to quote: $(cat out.txt)"
expect_rc 2 pg k check --service air --id "cn_rid:$A" --at 2000-01-01T00:00:00Z
grep -q "at: expected a service date from" err.txt || fail "backdated at: $(cat err.txt)"
expect_rc 2 pg k check --service air --id "cn_rid:$A" --at "$(day -1)"
expect_rc 2 pg k check --service air --id "cn_rid:$A" --at "$(day 121)"
grep -q "now plus 120 days" err.txt || fail "far at: $(cat err.txt)"
expect_rc 1 pg k check --service air --id "cn_rid:$A" --at "$(day 30)"
# a listing in effect only on the service date: REFER, saying so; today: ALLOW
expect_rc 0 pg k check --service air --id "cn_rid:$B2"
AT11=$(day 11)
expect_rc 3 pg k check --service air --id "cn_rid:$B2" --at "$AT11" --json
python3 - "$AT11" <<'PY' || fail "service-date REFER: $(cat out.txt)"
import json, sys
d = json.load(open("out.txt"))
assert d["decision"] == "refer" and d["at"] == sys.argv[1], d
assert "service date" in d["reasons"][0]["detail"], d["reasons"]
PY
# the audit trail records the service date
pg k audit export --out audit.jsonl >/dev/null
python3 - "$AT11" <<'PY' || fail "audit at: $(tail -2 audit.jsonl)"
import json, sys
ev = [json.loads(l) for l in open("audit.jsonl")]
assert all("at" in e for e in ev if e["kind"] == "decision"), ev[-1]
assert any(e.get("at") == sys.argv[1] and e["decision"] == "refer" for e in ev), ev[-1]
PY

# ---- an exemption lifts only what was found through the same identifier
expect_rc 1 pg k check --service air --id "cn_rid:$A" --id national_id:FR:X1234567
grep -q "SPC-A" out.txt || fail "other's exemption: $(cat out.txt)"
expect_rc 0 pg k check --service air --id "cn_rid:$C"
grep -q "SPC-C-EX" out.txt || fail "own exemption not named: $(cat out.txt)"
# C's exemption covers air only: hotel.star stays denied
expect_rc 1 pg k check --service hotel.star --id "cn_rid:$C"

# ---- the minors rule reads the identifier that matched, not a child's number passed along
expect_rc 1 pg k check --service air --id passport:DEU:C01X00T47
expect_rc 1 pg k check --service air --id passport:DEU:C01X00T47 --id "cn_rid:$MINOR"
grep -q "SPC-P" out.txt || fail "minor's number passed along: $(cat out.txt)"

# ---- an override must name someone: a supervisor of spaces only is refused (the audit would
# name nobody)
expect_rc 2 pg k check --service air --id "cn_rid:$A" --override-by "   " --override-reason "ok"
grep -q "override by: expected a value, found only spaces" err.txt || fail "blank supervisor: $(cat err.txt)"
expect_rc 2 pg k check --service air --id "cn_rid:$A" --override-by "sup-1" --override-reason "　"
grep -q "override reason: expected a value, found only spaces" err.txt || fail "blank reason: $(cat err.txt)"
expect_rc 2 pg k check --service air --id "cn_rid:$A" --operator " "

# ---- a parent service of a listed sub-service: REFER naming the part
expect_rc 3 pg k check --service rail.hsr --id "cn_rid:$A"
grep -q "listed for rail.hsr.first, a part of rail.hsr" out.txt || fail "parent: $(cat out.txt)"
expect_rc 1 pg k check --service rail.hsr.first --id "cn_rid:$A"
expect_rc 0 pg k check --service rail.hsr --id "cn_rid:$B2"
# that ALLOW was judged against spc (a reason of its entries covers a part of rail.hsr): its
# audit event names spc among the lists that took part, and not hk (its jurisdiction is not the
# gate's, so the check did not judge it)
pg k audit export --out audit2.jsonl >/dev/null
python3 - <<'PY' || fail "parent ALLOW's lists: $(tail -1 audit2.jsonl)"
import json
e = [json.loads(l) for l in open("audit2.jsonl")][-1]
assert e["decision"] == "allow" and e["service"] == "rail.hsr", e
assert [l["id"] for l in e["lists"]] == ["spc"], e["lists"]
PY

# ---- the same over HTTP
DPORT=$(free_port)
API=http://127.0.0.1:$DPORT
echo '{"data_dir": "'"$T/k"'", "listen": ["127.0.0.1:'"$DPORT"'"]}' > daemon.json
"$B/posgated" --config daemon.json 2>daemon.log &
PIDS+=("$!")
for _ in $(seq 50); do curl -s -o /dev/null "$API/healthz" && break; sleep 0.2; done
post() { # post BODY : prints the status, body in resp.json
    curl -s -o resp.json -w '%{http_code}' -X POST -H 'Content-Type: application/json' \
        --data-binary "$1" "$API/v1/check"
}
decision() { python3 -c 'import json; print(json.load(open("resp.json"))["decision"])'; }
[[ $(post '{"service": "air", "ids": ["cn_rid:'"$A"'"], "at": "2000-01-01T00:00:00Z"}') == 400 ]] ||
    fail "HTTP backdated at: $(cat resp.json)"
grep -q "service date" resp.json || fail "HTTP backdated at body: $(cat resp.json)"
[[ $(post '{"service": "air", "ids": ["cn_rid:'"$A"'"], "at": "'"$(day 30)"'"}') == 200 &&
    $(decision) == deny ]] || fail "HTTP future at: $(cat resp.json)"
[[ $(post '{"service": "air", "ids": ["cn_rid:'"$B2"'"], "at": "'"$(day 11)"'"}') == 200 &&
    $(decision) == refer ]] || fail "HTTP service-date refer: $(cat resp.json)"
[[ $(post '{"service": "air", "ids": ["cn_rid:'"$A"'", "national_id:FR:X1234567"]}') == 200 &&
    $(decision) == deny ]] || fail "HTTP other's exemption: $(cat resp.json)"
[[ $(post '{"service": "rail.hsr", "ids": ["cn_rid:'"$A"'"]}') == 200 && $(decision) == refer ]] ||
    fail "HTTP parent service: $(cat resp.json)"
kill "${PIDS[0]}"; wait "${PIDS[0]}" 2>/dev/null || true; PIDS=()

# ---- an empty stale list with policy deny takes part in every check its feed's reasons cover
sed -e 's/"stale_after": "7d", "stale_policy": "refer"/"stale_after": "2s", "stale_policy": "deny"/' \
    -e 's/"failclosed"/"failclosed-stale"/' feed.json > feed2.json
printf 'list,listing_id,kind,id_type,id_value,reason,valid_from,valid_until,scope\n' > empty.csv
"$B/posgate-publish" init --state st2 --config feed2.json --root-key root.key --threshold 1 \
    --feed-key feedk.key --list-key list.key >/dev/null
"$B/posgate-publish" update --state st2 --entries empty.csv --out feed2 >/dev/null 2>&1
expect_rc 0 pg k2 init --root feed2/metadata/1.root.json --list-key list.key --jurisdiction CN
expect_rc 0 pg k2 import feed2
sleep 3
expect_rc 1 pg k2 check --service hotel.star --id "cn_rid:$B2" --json
python3 -c '
import json; d = json.load(open("out.txt"))
assert d["decision"] == "deny" and d["reasons"][0]["detail"].startswith("stale list"), d' ||
    fail "empty stale deny list: $(cat out.txt)"
echo "failclosed: all checks passed"
