#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# A delegated list is fresh only as of its authority's signatures. The feed operator (no
# authority key) cannot keep an old version of the list fresh by re-signing the timestamp
# alone: after the list's stale_after its signed stale policy applies (here deny), and the
# answer says which list is stale. The authority vouches for its list again with
# `posgate-publish refresh --authority-key LIST=KEY`, which re-signs the list's role.
# Usage: delegated_fresh.sh BUILD_DIR
set -euo pipefail
B=${1:?usage: delegated_fresh.sh BUILD_DIR}
T=$(mktemp -d "${TMPDIR:-/tmp}/posgate-dfresh-XXXXXX")
trap 'rm -rf "$T"' EXIT
cd "$T"
unset POSGATE_DATA_DIR POSGATE_FAKE_NOW
fail() { echo "FAIL: $*" >&2; exit 1; }
pg() { "$B/posgate" --data-dir "$T/k" "$@"; }
answer() { # answer ID : prints "decision stale_lists" of a check for air
    set +e
    pg check --service air --id "cn_rid:$1" --json >out.json 2>err.txt
    set -e
    python3 -c 'import json; d = json.load(open("out.json")); print(d["decision"], ",".join(d["stale_lists"]))'
}
A=110105198001011238   # listed
B2=110105198001012345  # listed only in the version the operator withholds
cat > feed.json <<'JSON'
{"feed_id": "dg", "services": ["air", "hotel"],
 "lists": [{"id": "spc", "authority": "SPC", "jurisdictions": ["CN"], "stale_after": "4s",
            "stale_policy": "deny"}],
 "reasons": [{"id": "debtor", "authority": "SPC", "legal_basis": "x", "contest": "y", "scope": ["air"]}]}
JSON
printf 'list,listing_id,kind,id_type,id_value,reason,valid_from,valid_until,scope\nspc,SPC-A,restrict,cn_rid,%s,debtor,2020-01-01,,\n' $A > e1.csv
cp e1.csv e2.csv
echo "spc,SPC-B2,restrict,cn_rid,$B2,debtor,2020-01-01,," >> e2.csv
mkdir auth
"$B/posgate-keygen" --out root >/dev/null
"$B/posgate-keygen" --out feedk >/dev/null
"$B/posgate-keygen" --out auth/auth >/dev/null
"$B/posgate-keygen" --list-key --out list.key >/dev/null
"$B/posgate-publish" init --state st --config feed.json --root-key root.key --threshold 1 \
    --feed-key feedk.key --list-key list.key >/dev/null
"$B/posgate-publish" update --state st --entries e1.csv --out feed >/dev/null 2>&1
"$B/posgate-publish" delegate --state st --list spc --key auth/auth.pub --threshold 1 >/dev/null 2>&1
"$B/posgate-publish" update --state st --entries e1.csv --out feed --authority-key spc=auth/auth.key \
    >/dev/null 2>&1
pg init --root feed/metadata/1.root.json --list-key list.key --jurisdiction CN >/dev/null
pg import feed >/dev/null
[[ $(answer $A) == "deny " ]] || fail "fresh listed subject: $(cat out.json)"
# the authority signs B2's listing; the operator keeps it and serves only timestamp refreshes
cp -a st st-auth
cp -a feed feed-auth
"$B/posgate-publish" update --state st-auth --entries e2.csv --out feed-auth \
    --authority-key spc=auth/auth.key >/dev/null 2>&1
sleep 5
"$B/posgate-publish" refresh --state st --out feed >/dev/null 2>&1
pg import feed >/dev/null
[[ $(answer $B2) == "deny spc" ]] ||
    fail "an operator-only refresh kept the delegated list fresh: $(cat out.json)"
pg status --json | python3 -c '
import json, sys
d = json.load(sys.stdin); l = d["lists"][0]
assert l["stale"] and l["data_age_s"] >= 4, l' || fail "status after an operator-only refresh"
# the authority vouches for its list again: fresh, and B2 (not in the version served) allowed
"$B/posgate-publish" refresh --state st --out feed --authority-key spc=auth/auth.key >/dev/null 2>&1
pg import feed >/dev/null
[[ $(answer $B2) == "allow " ]] || fail "after the authority's refresh: $(cat out.json)"
[[ $(answer $A) == "deny " ]] || fail "listed subject after the authority's refresh: $(cat out.json)"
echo "delegated_fresh: all checks passed"
