#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Clock faults on a kiosk, with POSGATE_FAKE_NOW (the wall clock platform/plat_clock.c reads):
#   - the wall clock set back before the newest signed issue time seen: `check` answers REFER
#     (exit 3) with a clock_fault reason whose detail names the clock, even for a subject that
#     is on no list, and `status --json` says clock_fault true; with the clock right again the
#     same checks answer as before;
#   - the wall clock past each list's stale_after: that list's signed stale policy applies (a
#     stale reason for the list with the policy's effect: refer, deny, or allow for no match),
#     the detail names staleness, the exit code is the strongest effect, and a subject listed
#     on a stale list with policy allow is REFERred, never allowed; before stale_after no list
#     is stale.
# The policies and thresholds are read from the feed.json posgate-synth writes, so the test
# follows the configuration. Then the daemon, its wall clock frozen 30 days back: it still
# syncs at its poll interval (monotonic scheduling) and its checks answer REFER (clock fault).
# Last, metadata signed five days ago and not yet expired (a lagging mirror or CDN): data age
# counts from the signed issue time, not from the install, so a 48 h deny list is stale.
# Usage: clock.sh BUILD_DIR
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
B=${1:?usage: clock.sh BUILD_DIR}
T=$(mktemp -d "${TMPDIR:-/tmp}/posgate-clock-XXXXXX")
trap 'rm -rf "$T"' EXIT
cd "$T"
unset POSGATE_DATA_DIR POSGATE_FAKE_NOW
# shared helpers: fail, expect_rc, free_port, wait_for
. "$HERE/lib.sh"
pg() { "$B/posgate" --data-dir "$T/k" "$@"; }

"$B/posgate-keygen" --out root >/dev/null
"$B/posgate-keygen" --out feed >/dev/null
"$B/posgate-keygen" --list-key --out list.key >/dev/null
"$B/posgate-synth" --count 3000 --seed 5 --out e.csv --config-out feed.json --subjects-out subj.csv
"$B/posgate-publish" init --state st --config feed.json --root-key root.key --threshold 1 \
    --feed-key feed.key --list-key list.key >/dev/null
"$B/posgate-publish" update --state st --entries e.csv --out feed >/dev/null 2>&1
pg init --root feed/metadata/1.root.json --list-key list.key --jurisdiction CN >/dev/null
pg import feed >/dev/null

NOW=$(date +%s)
CLEAN=$(awk -F, '$1 == "clean" { print $2; exit }' subj.csv)
read -r LISTED LSVC LLIST < <(awk -F, '$1 == "listed" { print $2, $3, $4; exit }' subj.csv)
[[ -n $CLEAN && -n $LISTED ]] || fail "subjects missing in subj.csv"
SERVICES=$(python3 -c 'import json; print(" ".join(json.load(open("feed.json"))["services"]))')

# check_json NOW SERVICE ID: the check's JSON in out.json, its exit code in $rc
check_at() {
    set +e
    POSGATE_FAKE_NOW=$1 pg check --service "$2" --id "$3" --json >out.json 2>err.txt
    rc=$?
    set -e
}

# --- the clock right: no fault, the clean subject allowed
pg status --json | python3 -c 'import json,sys; d=json.load(sys.stdin); assert d["clock_fault"] is False, d' ||
    fail "status says clock_fault with the clock right"
check_at "$NOW" "$LSVC" "$CLEAN"
[[ $rc == 0 ]] || fail "clean subject not allowed with the clock right: $rc $(cat out.json err.txt)"
NEWEST=$(pg status --json | python3 -c '
import json, sys, datetime
d = json.load(sys.stdin)
print(int(datetime.datetime.strptime(d["newest_issue_seen"], "%Y-%m-%dT%H:%M:%SZ")
          .replace(tzinfo=datetime.timezone.utc).timestamp()))')

# --- the wall clock before the newest signed issue time: REFER, named as a clock fault
for back in 1 3600 $((30 * 86400)); do
    at=$((NEWEST - back))
    for id in "$CLEAN" "$LISTED"; do
        check_at "$at" "$LSVC" "$id"
        [[ $rc == 3 || ( $id == "$LISTED" && $rc == 1 ) ]] ||
            fail "clock ${back}s behind: $id answered exit $rc, expected REFER: $(cat out.json err.txt)"
        python3 - <<'PY' || fail "clock ${back}s behind: no clock_fault reason: $(cat out.json)"
import json
d = json.load(open("out.json"))
assert d["clock_fault"] is True, d
r = [x for x in d["reasons"] if x.get("kind") == "clock_fault"]
assert r and r[0]["effect"] == "refer" and "clock" in r[0]["detail"], d["reasons"]
assert "Clock fault" in d["notice"] or "clock" in d["notice"].lower(), d["notice"]
PY
    done
    [[ $(POSGATE_FAKE_NOW=$at pg status --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["clock_fault"])') == True ]] ||
        fail "status --json does not say clock_fault true with the clock ${back}s behind"
done
# the clean subject with the clock right again
check_at "$NOW" "$LSVC" "$CLEAN"
[[ $rc == 0 ]] || fail "clean subject not allowed after the clock came right: $rc"

# --- the wall clock past each list's stale_after: its policy applies
python3 - > lists.txt <<'PY'
import json, re
units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
for l in json.load(open("feed.json"))["lists"]:
    m = re.fullmatch(r"(\d+)([smhd])", l["stale_after"])
    print(l["id"], int(m.group(1)) * units[m.group(2)], l.get("stale_policy", "refer"))
PY
[[ -s lists.txt ]] || fail "no lists in feed.json"
# before any list is stale: no stale reason anywhere
MIN=$(sort -k2 -n lists.txt | head -1 | cut -d' ' -f2)
for svc in $SERVICES; do
    check_at $((NOW + MIN - 600)) "$svc" "$CLEAN"
    ! grep -q '"kind":"stale"' out.json || fail "a list is stale before its stale_after: $(cat out.json)"
done
stale_checks=0
while read -r list after policy; do
    at=$((NOW + after + 600))
    seen=0
    for svc in $SERVICES; do
        check_at "$at" "$svc" "$CLEAN"
        [[ $rc == 0 || $rc == 1 || $rc == 3 ]] || fail "check at +${after}s on $svc: exit $rc $(cat err.txt)"
        if python3 - "$list" "$policy" "$rc" <<'PY'; then seen=1; fi
import json, sys
lst, policy, rc = sys.argv[1], sys.argv[2], int(sys.argv[3])
d = json.load(open("out.json"))
r = [x for x in d["reasons"] if x.get("kind") == "stale" and x.get("list") == lst]
if not r:
    sys.exit(1)              # the list does not apply to this service
want = {"refer": "refer", "deny": "deny", "allow": "allow"}[policy]
assert r[0]["effect"] == want, (lst, policy, r)
assert "stale" in r[0]["detail"], r
rank = {"allow": 0, "refer": 1, "deny": 2}
strongest = max((x["effect"] for x in d["reasons"]), key=rank.get, default="allow")
assert d["decision"] == strongest, (d["decision"], strongest)
assert rc == {"allow": 0, "deny": 1, "refer": 3}[d["decision"]], (rc, d["decision"])
PY
    done
    [[ $seen == 1 ]] || fail "list $list (stale_after ${after}s, policy $policy): no check showed it stale"
    stale_checks=$((stale_checks + 1))
done < lists.txt

# a subject listed on a stale list whose policy is allow is referred, not allowed
LPOL=$(awk -v l="$LLIST" '$1 == l { print $3 }' lists.txt)
LAFTER=$(awk -v l="$LLIST" '$1 == l { print $2 }' lists.txt)
check_at "$NOW" "$LSVC" "$LISTED"
[[ $rc == 1 ]] || fail "listed subject not denied while fresh: exit $rc"
check_at $((NOW + LAFTER + 600)) "$LSVC" "$LISTED"
case $LPOL in
    allow|refer) [[ $rc == 3 || $rc == 1 ]] || fail "listed on stale $LLIST ($LPOL): exit $rc, expected REFER" ;;
    deny) [[ $rc == 1 ]] || fail "listed on stale $LLIST (deny): exit $rc, expected DENY" ;;
esac
python3 - "$LLIST" <<'PY' || fail "listed on stale $LLIST: no refer/deny reason for the list: $(cat out.json)"
import json, sys
d = json.load(open("out.json"))
r = [x for x in d["reasons"] if x.get("list") == sys.argv[1] and x["effect"] in ("refer", "deny")]
assert r, d["reasons"]
PY
# --- the daemon schedules on the monotonic clock: with its wall clock frozen 30 days in the past
# (POSGATE_FAKE_NOW pins the wall clock), a daemon polling every second still syncs every
# second, and a check through it answers REFER for the clock fault.
if [[ -x $B/posgated ]]; then
    free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
    HP=$(free_port) AP=$(free_port)
    python3 -m http.server --bind 127.0.0.1 --directory feed "$HP" >http.log 2>&1 &
    HTTP_PID=$!
    printf '{"data_dir": "%s", "listen": ["127.0.0.1:%s"], "feed_urls": ["http://127.0.0.1:%s/"], "poll_interval_s": 1, "log_level": "error"}\n' \
        "$T/k" "$AP" "$HP" >posgated.json
    POSGATE_FAKE_NOW=$((NOW - 30 * 86400)) "$B/posgated" --config posgated.json >posgated.log 2>&1 &
    D_PID=$!
    trap 'kill $HTTP_PID $D_PID 2>/dev/null; rm -rf "$T"' EXIT
    attempts() { curl -s "http://127.0.0.1:$AP/metrics" | awk '$1 == "posgate_sync_attempts_total" { print $2 }'; }
    for _ in $(seq 50); do [[ -n $(attempts) ]] && break; sleep 0.1; done
    a0=$(attempts)
    [[ -n $a0 ]] || fail "posgated did not answer: $(cat posgated.log)"
    sleep 4.5
    a1=$(attempts)
    (( a1 - a0 >= 3 )) || fail "with a frozen wall clock the daemon synced $((a1 - a0)) times in 4.5 s at a 1 s poll interval"
    code=$(curl -s -o resp.json -w '%{http_code}' -X POST -H 'Content-Type: application/json' -d "{\"service\": \"$LSVC\", \"ids\": [\"$CLEAN\"]}" "http://127.0.0.1:$AP/v1/check")
    [[ $code == 200 ]] && python3 -c 'import json; d=json.load(open("resp.json")); assert d["decision"] == "refer" and d["clock_fault"], d' ||
        fail "check through the daemon with its clock set back: $code $(cat resp.json)"
    kill -TERM "$D_PID"; wait "$D_PID" || fail "posgated did not exit 0 on SIGTERM"
    echo "clock: daemon synced $((a1 - a0)) times in 4.5 s with its wall clock frozen 30 days back"
fi

# --- five-day-old, unexpired metadata is five-day-old data
mkdir old && cd old
cat > feed.json <<'JSON'
{"feed_id": "old", "services": ["air"],
 "lists": [{"id": "no-fly", "authority": "CAAC", "stale_after": "48h", "stale_policy": "deny"}],
 "reasons": [{"id": "avsec", "authority": "CAAC", "legal_basis": "Art. 14", "contest": "12326",
              "scope": ["air"]}]}
JSON
printf 'list,listing_id,kind,id_type,id_value,reason,valid_from,valid_until,scope\nno-fly,NF-1,restrict,passport,DEU:C01X00T47,avsec,2020-01-01,,\n' > e.csv
OLD=$((NOW - 5 * 86400))
POSGATE_FAKE_NOW=$OLD "$B/posgate-publish" init --state st --config feed.json --root-key ../root.key \
    --threshold 1 --feed-key ../feed.key --list-key ../list.key >/dev/null
POSGATE_FAKE_NOW=$OLD "$B/posgate-publish" update --state st --entries e.csv --out feed \
    --expires 30d >/dev/null 2>&1
"$B/posgate" --data-dir k init --root feed/metadata/1.root.json --list-key ../list.key \
    --jurisdiction CN >/dev/null
"$B/posgate" --data-dir k import feed >/dev/null || fail "unexpired old metadata refused"
set +e
"$B/posgate" --data-dir k check --service air --id national_id:FR:X1234567 --json >out.json
rc=$?
set -e
python3 - <<'PY' || fail "five-day-old metadata counted as fresh: rc $rc $(cat out.json)"
import json
d = json.load(open("out.json"))
assert d["decision"] == "deny", d
assert d["data_age_s"] >= 5 * 86400 - 60, d
assert "stale list" in d["reasons"][0]["detail"], d["reasons"]
PY
"$B/posgate" --data-dir k status --json | python3 -c '
import json, sys, datetime
d = json.load(sys.stdin)
issued = datetime.datetime.strptime(d["issued_at"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.timezone.utc)
assert abs(issued.timestamp() - '"$OLD"') < 120, d["issued_at"]' ||
    fail "status issued_at is not the signed issue time"
cd ..
echo "clock: clock fault and $stale_checks stale policies checked; old metadata counts as old"
