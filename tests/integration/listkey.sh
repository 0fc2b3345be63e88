#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The list key's fingerprint end to end with the real binaries. A kiosk initialised with
# another list key must refuse the feed (exit 4, both fingerprints named, nothing installed)
# instead of installing it and allowing every listed person; with the right key the import
# works; once list.key in the data dir is replaced, status --json says list_key "mismatch",
# verify exits 4, and a check is refused (exit 4 on the command line, HTTP 500 from posgated),
# never ALLOW. (A feed configuration without the value is refused too: unit/update.) Last, a
# date-only valid_until of today in the list's timezone still applies now (whole days).
# Usage: listkey.sh BUILD_DIR
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
B=${1:?usage: listkey.sh BUILD_DIR}
T=$(mktemp -d "${TMPDIR:-/tmp}/posgate-listkey-XXXXXX")
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
    rm -rf "$T"
}
trap cleanup EXIT
cd "$T"
unset POSGATE_DATA_DIR POSGATE_FAKE_NOW
# shared helpers: fail, expect_rc, free_port, wait_for
. "$HERE/lib.sh"
FAIL_LOGS=(daemon.log)
pg() { "$B/posgate" --data-dir "$T/$1" "${@:2}"; }
status_field() { # status_field KIOSK FIELD
    pg "$1" status --json | python3 -c 'import json,sys; print(json.load(sys.stdin).get(sys.argv[1]))' "$2"
}

LISTED=cn_rid:11010519491231002X
cat > feed.json <<'EOF'
{
  "feed_id": "listkey-test",
  "services": ["rail", "rail.hsr"],
  "lists": [{"id": "court", "authority": "A court", "jurisdictions": ["CN"],
             "stale_after": "7d", "stale_policy": "refer"}],
  "reasons": [{"id": "debtor", "authority": "A court", "legal_basis": "Art. 3",
               "contest": "Write to the court", "scope": ["rail"]}]
}
EOF
cat > e1.csv <<EOF
list,listing_id,kind,id_type,id_value,reason,valid_from,valid_until,scope
court,C-1,restrict,cn_rid,${LISTED#cn_rid:},debtor,2020-01-01,,
EOF
"$B/posgate-keygen" --out root >/dev/null
"$B/posgate-keygen" --out feedk >/dev/null
"$B/posgate-keygen" --list-key --out list.key >/dev/null
"$B/posgate-keygen" --list-key --out other.key >/dev/null
expect_rc 0 "$B/posgate-publish" init --state st --config feed.json --root-key root.key \
    --threshold 1 --feed-key feedk.key --list-key list.key
"$B/posgate-publish" update --state st --entries e1.csv --out feed >/dev/null 2>&1 ||
    fail "publish update"
FEED_FP=$(python3 -c '
import glob, json
print(json.load(open(glob.glob("feed/targets/config/*.feed.json")[0])).get("list_key_check", ""))')
[[ $FEED_FP =~ ^[0-9a-f]{16}$ ]] || fail "published config has no list_key_check: \"$FEED_FP\""
grep -q "fingerprint $FEED_FP" <("$B/posgate-publish" init --state st2 --config feed.json \
    --root-key root.key --threshold 1 --feed-key feedk.key --list-key list.key) ||
    fail "posgate-publish init does not print the list key fingerprint $FEED_FP"
# the operator's input may carry the value, but only the list key's own
python3 -c '
import json; d = json.load(open("feed.json")); d["list_key_check"] = "0123456789abcdef"
json.dump(d, open("feed-wrong.json", "w"))'
expect_rc 4 "$B/posgate-publish" init --state st3 --config feed-wrong.json --root-key root.key \
    --threshold 1 --feed-key feedk.key --list-key list.key

# ---- the attack: a kiosk set up with another list key
expect_rc 0 pg bad init --root feed/metadata/1.root.json --list-key other.key --jurisdiction CN
KIOSK_FP=$(sed -n 's/^list key fingerprint \([0-9a-f]*\).*/\1/p' out.txt)
[[ $KIOSK_FP =~ ^[0-9a-f]{16}$ ]] || fail "init printed no fingerprint: $(cat out.txt)"
[[ $KIOSK_FP != "$FEED_FP" ]] || fail "two random keys with one fingerprint"
expect_rc 4 pg bad import feed
grep -q "$FEED_FP" err.txt && grep -q "$KIOSK_FP" err.txt ||
    fail "the refusal does not name both fingerprints ($FEED_FP, $KIOSK_FP): $(cat err.txt)"
grep -qi "mismatch" err.txt || fail "the refusal does not say mismatch: $(cat err.txt)"
[[ $(status_field bad feed_version) == 0 ]] || fail "something was installed: $(pg bad status --json)"
[[ $(status_field bad list_key) == none ]] || fail "list_key of an empty kiosk: $(pg bad status --json)"
expect_rc 5 pg bad check --service rail.hsr --id "$LISTED"

# ---- the right key
expect_rc 0 pg good init --root feed/metadata/1.root.json --list-key list.key --jurisdiction CN
grep -q "fingerprint $FEED_FP" out.txt || fail "init fingerprint differs from the feed's: $(cat out.txt)"
expect_rc 0 pg good import feed
grep -q "installed feed version 1" out.txt || fail "import said: $(cat out.txt)"
[[ $(status_field good list_key) == ok ]] || fail "list_key: $(pg good status --json)"
expect_rc 0 pg good status
grep -q "list key *ok" out.txt || fail "status text: $(cat out.txt)"
expect_rc 0 pg good verify
expect_rc 1 pg good check --service rail.hsr --id "$LISTED"

# ---- list.key replaced behind posgate's back
cp other.key good/list.key
[[ $(status_field good list_key) == mismatch ]] || fail "list_key after replacing list.key: $(pg good status --json)"
expect_rc 0 pg good status
grep -q "MISMATCH" out.txt || fail "status text does not show the mismatch: $(cat out.txt)"
expect_rc 4 pg good verify
grep -q "$FEED_FP" err.txt && grep -q "$KIOSK_FP" err.txt || fail "verify message: $(cat err.txt)"
expect_rc 4 pg good check --service rail.hsr --id "$LISTED"
grep -qi "list key mismatch" err.txt || fail "check message: $(cat err.txt)"
expect_rc 4 pg good check --service rail.hsr --id cn_rid:11010519491231002X --json
grep -q '"decision": *"allow"' out.txt && fail "a check under the wrong key answered allow: $(cat out.txt)"

# ---- the daemon with the replaced key refuses checks
DPORT=$(free_port)
TOKEN=tok-$RANDOM$RANDOM
cat > daemon.json <<EOF
{"data_dir": "$T/good", "listen": ["127.0.0.1:$DPORT"], "api_token": "$TOKEN",
 "poll_interval_s": 3600}
EOF
"$B/posgated" --config daemon.json 2>daemon.log &
PIDS+=("$!")
wait_for 10 curl -s -o /dev/null "http://127.0.0.1:$DPORT/healthz" || fail "posgated did not start"
code=$(curl -s -o resp.json -w '%{http_code}' -H "Authorization: Bearer $TOKEN" \
    -H 'Content-Type: application/json' \
    --data-binary '{"service": "rail.hsr", "ids": ["'"$LISTED"'"]}' \
    "http://127.0.0.1:$DPORT/v1/check")
[[ $code == 500 || $code == 503 ]] || fail "posgated check under the wrong key answered $code: $(cat resp.json)"
grep -qi "list key mismatch" resp.json || fail "posgated check body: $(cat resp.json)"
code=$(curl -s -o resp.json -w '%{http_code}' -H "Authorization: Bearer $TOKEN" \
    "http://127.0.0.1:$DPORT/v1/status")
[[ $code == 200 ]] && grep -q '"list_key": *"mismatch"' resp.json ||
    fail "posgated status: $code $(cat resp.json)"
code=$(curl -s -o resp.json -w "%{http_code}" -H "Authorization: Bearer $TOKEN" \
    "http://127.0.0.1:$DPORT/healthz")
[[ $code == 503 ]] && grep -qi "list key mismatch" resp.json ||
    fail "posgated healthz under the wrong key: $code $(cat resp.json)"

# ---- the right key back: checks answer again
cp list.key good/list.key
expect_rc 0 pg good verify
expect_rc 1 pg good check --service rail.hsr --id "$LISTED"
# ---- date-only bounds are whole days in the list's timezone (here "+00:00"): an entry whose
# valid_until is today still applies now (until tomorrow 00:00 in the zone), one whose
# valid_until is yesterday has lapsed. Before, a date-only valid_until ended at 00:00 UTC of
# that day, so the first was ALLOW already.
if (( $(date -u +%s) % 86400 > 86400 - 30 )); then sleep 31; fi # not across midnight
TODAY=$(date -u +%F) YESTERDAY=$(date -u -d yesterday +%F) TOMORROW=$(date -u -d tomorrow +%F)
LAPSED=cn_rid:110105198001010016
python3 -c '
import json; d = json.load(open("feed.json")); d["lists"][0]["timezone"] = "+00:00"
json.dump(d, open("feed-tz.json", "w"))'
cat > e2.csv <<EOF
list,listing_id,kind,id_type,id_value,reason,valid_from,valid_until,scope
court,C-1,restrict,cn_rid,${LISTED#cn_rid:},debtor,2020-01-01,$TODAY,
court,C-2,restrict,cn_rid,${LAPSED#cn_rid:},debtor,2020-01-01,$YESTERDAY,
EOF
expect_rc 0 "$B/posgate-publish" init --state st-tz --config feed-tz.json --root-key root.key \
    --threshold 1 --feed-key feedk.key --list-key list.key
"$B/posgate-publish" update --state st-tz --entries e2.csv --out feed-tz >/dev/null 2>&1 ||
    fail "publish update with dates"
expect_rc 0 pg dated init --root feed-tz/metadata/1.root.json --list-key list.key --jurisdiction CN
expect_rc 0 pg dated import feed-tz
expect_rc 1 pg dated check --service rail.hsr --id "$LISTED" --json
python3 -c '
import json, sys
r = json.load(open("out.txt"))["reasons"][0]
assert r["valid_until"] == sys.argv[1] + "T00:00:00Z", r
' "$TOMORROW" || fail "valid_until of today should end at tomorrow 00:00Z: $(cat out.txt)"
expect_rc 0 pg dated check --service rail.hsr --id "$LAPSED"
echo "listkey: ok"
