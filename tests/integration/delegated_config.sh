#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# A delegated list's configuration is its authority's, end to end with the real binaries. The
# list caac-safety is delegated to its authority and imported on a kiosk (which pins it). Then
# the feed operator, holding no authority key, edits feed.json three ways: drops the list, sets
# its jurisdictions to ["HK"], narrows the scope of the reason its entries use to
# ["hotel.star"]. posgate-publish refuses each (exit 4) and leaves the feed as it was; the same
# feed.json signed by the operator's keys alone (operator_publish, the TUF writer without
# posgate-publish's checks) is refused by the kiosk (exit 4, naming the list and the field) and
# the listed subject stays DENY (also for a rewritten contest route and a field left out). An
# operator-only change elsewhere goes through; refresh refuses to sign the role before the
# list's configuration is signed; the authority's own change of its list's stale_after is
# published and accepted, also from a bundle on a second kiosk.
# Usage: delegated_config.sh BUILD_DIR
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
B=${1:?usage: delegated_config.sh BUILD_DIR}
T=$(mktemp -d "${TMPDIR:-/tmp}/posgate-delegcfg-XXXXXX")
trap 'rm -rf "$T"' EXIT
cd "$T"
unset POSGATE_DATA_DIR POSGATE_FAKE_NOW
# shared helpers: fail, expect_rc, free_port, wait_for
. "$HERE/lib.sh"
expect_err() { # expect_err TEXT : err.txt holds TEXT
    grep -qF -- "$1" err.txt || fail "expected \"$1\" in: $(cat err.txt)"
}
pg() { "$B/posgate" --data-dir "$T/k" "$@"; }
installed() { # installed OUT : the kiosk's feed version and each list's seq and digest
    pg status --json | python3 -c 'import json, sys; d = json.load(sys.stdin)
print(d["feed_version"], sorted((l["id"], l["seq"], l["digest"]) for l in d["lists"]))' >"$1"
}
LIST=caac-safety
# edit_feed IN OUT PYTHON : OUT = feed.json IN with the python statement applied to d
edit_feed() {
    python3 - "$1" "$2" "$3" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
lst = next(l for l in d["lists"] if l["id"] == "caac-safety")
exec(sys.argv[3])
json.dump(d, open(sys.argv[2], "w"), indent=1)
EOF
}

"$B/posgate-keygen" --out root >/dev/null
"$B/posgate-keygen" --out feed >/dev/null
"$B/posgate-keygen" --out auth >/dev/null
"$B/posgate-keygen" --list-key --out list.key >/dev/null
"$B/posgate-synth" --count 3000 --seed 8 --out e1.csv --config-out feed.json --subjects-out subj.csv
# a subject listed on caac-safety, the service it is checked for, and its entry's reason
read -r ID SVC LID < <(awk -F, -v l=$LIST '$1 == "listed" && $4 == l { print $2, $3, $5; exit }' subj.csv)
[[ -n ${ID:-} ]] || fail "no listed subject of $LIST in subj.csv"
REASON=$(awk -F, -v id="$LID" '$2 == id { print $6; exit }' e1.csv)
[[ -n $REASON ]] || fail "no row of listing $LID in e1.csv"
grep -v "^$LIST," e1.csv >no-list.csv

expect_rc 0 "$B/posgate-publish" init --state st --config feed.json --root-key root.key \
    --threshold 1 --feed-key feed.key --list-key list.key
expect_rc 0 "$B/posgate-publish" update --state st --entries e1.csv --out feed
expect_rc 0 "$B/posgate-publish" delegate --state st --list $LIST --key auth.pub --threshold 1
# refresh reads no entries.csv and cannot sign the list's configuration: an update must come first
expect_rc 4 "$B/posgate-publish" refresh --state st --out feed --authority-key $LIST=auth.key
expect_err "its configuration (lists/$LIST/config.json) is not signed by it yet"
expect_rc 0 "$B/posgate-publish" update --state st --entries e1.csv --out feed \
    --authority-key $LIST=auth.key
expect_err "list $LIST: configuration signed by its authority"
# the delegated role lists the list's configuration, the top-level targets role does not
role=$(ls feed/metadata/*.list-$LIST.json | sort -t. -k1,1n | tail -1)
grep -q "\"lists/$LIST/config.json\"" "$role" || fail "$role lists no lists/$LIST/config.json"
! grep -q "\"lists/$LIST/config.json\"" feed/metadata/*.targets.json ||
    fail "the top-level targets role lists lists/$LIST/config.json"
python3 - feed $LIST <<'EOF' || fail "the signed list config does not hold the list as feed.json has it"
import glob, json, sys
feed, lst = sys.argv[1], sys.argv[2]
cfg = json.load(open(glob.glob('%s/targets/lists/%s/*.config.json' % (feed, lst))[0]))
fj = json.load(open(glob.glob('%s/targets/config/*.feed.json' % feed)[0]))
assert cfg['format'] == 1
assert cfg['list'] == next(l for l in fj['lists'] if l['id'] == lst)
assert cfg['services'] == fj['services']
for r in cfg['reasons']:
    assert fj['reasons'][r['index']] == r['reason']
assert len(cfg['reasons']) >= 1
EOF

expect_rc 0 pg init --root feed/metadata/1.root.json --list-key list.key --jurisdiction CN
expect_rc 0 pg import feed
grep -q "\"$LIST\"" k/pins.json || fail "the kiosk did not pin $LIST: $(cat k/pins.json)"
expect_rc 1 pg check --service "$SVC" --id "$ID"
installed status.before

cp st/feed.json feed.json.good
attempt=0
# operator_edit NAME PYTHON ENTRIES PUBLISH_RC PUBLISH_TEXT KIOSK_TEXT...: the operator alone
# makes the edit
operator_edit() {
    local name=$1 edit=$2 entries=$3 prc=$4 ptext=$5; shift 5
    attempt=$((attempt + 1))
    edit_feed feed.json.good st/feed.json "$edit"
    # through posgate-publish: refused, the feed and the state untouched
    rm -rf feed.before st.before && cp -a feed feed.before && cp -a st st.before
    expect_rc "$prc" "$B/posgate-publish" update --state st --entries "$entries" --out feed
    expect_err "$ptext"
    grep -qi "nothing was published" err.txt || fail "$name: $(cat err.txt)"
    diff -r feed feed.before >/dev/null || fail "$name: a refused update changed the feed"
    diff -r st st.before >/dev/null || fail "$name: a refused update changed the state"
    # the same feed.json signed by the operator's keys alone: the kiosk refuses it
    rm -rf "st.$attempt" "feed.$attempt"
    cp -a st "st.$attempt" && cp -a feed "feed.$attempt"
    "$B/tests/operator_publish" "st.$attempt/tuf" "feed.$attempt" st/feed.json feed.key ||
        fail "$name: operator_publish failed"
    cmp -s feed/metadata/timestamp.json "feed.$attempt/metadata/timestamp.json" &&
        fail "$name: operator_publish signed no new timestamp"
    expect_rc 4 pg import "feed.$attempt"
    for t in "$@"; do
        expect_err "$t"
    done
    expect_rc 1 pg check --service "$SVC" --id "$ID"
    installed status.now
    cmp -s status.before status.now || fail "$name: a refused import changed the status"
    cp feed.json.good st/feed.json
}

# 1. the list dropped from feed.json
operator_edit drop 'd["lists"].remove(lst)' no-list.csv 4 \
    "list $LIST is delegated to its authority (role list-$LIST) and missing from feed.json" \
    "list $LIST is pinned to its authority's delegation (role list-$LIST)" \
    "config/feed.json drops it"
# 2. its jurisdictions moved elsewhere
operator_edit jurisdictions 'lst["jurisdictions"] = ["HK"]' e1.csv 4 \
    'list caac-safety: config/feed.json differs from what its authority signed' \
    "list $LIST: config/feed.json differs from what its authority signed in lists/$LIST/config.json" \
    'lists[1].jurisdictions is ["HK"], the authority signed ["CN"]'
# 3. the scope of the reason its entries use narrowed to a service the subject is not checked
# for (posgate-publish refuses it first for the rows narrowing that reason's scope to services
# now outside it)
operator_edit scope \
    'next(r for r in d["reasons"] if r["id"] == "'"$REASON"'")["scope"] = ["hotel.star"]' e1.csv \
    2 "is outside the scope of reason \"$REASON\" (hotel.star)" \
    "list $LIST: config/feed.json differs" '.scope is ["hotel.star"], the authority signed'
# ... or its contest route rewritten
operator_edit contest \
    'next(r for r in d["reasons"] if r["id"] == "'"$REASON"'")["contest"] = "nowhere"' e1.csv \
    4 '.contest is "nowhere", the authority signed' \
    "list $LIST: config/feed.json differs" '.contest is "nowhere", the authority signed'
# a field left out is a change too (stale_policy falls back to refer)
operator_edit omitted 'lst.pop("stale_policy")' e1.csv 4 \
    "lists[1].stale_policy is nothing, the authority signed \"deny\"" \
    "lists[1].stale_policy is nothing, the authority signed \"deny\""

# the operator's own list is the operator's: changed without any authority key, and accepted
edit_feed feed.json.good st/feed.json \
    'next(l for l in d["lists"] if l["id"] == "spc-enforcement")["stale_after"] = "8d"'
expect_rc 0 "$B/posgate-publish" update --state st --entries e1.csv --out feed
expect_err "config updated"
expect_rc 0 pg import feed
expect_rc 1 pg check --service "$SVC" --id "$ID"
cp st/feed.json feed.json.good

# the authority changes its list's stale_after: refused without its key, published with it,
# and accepted by the kiosk
edit_feed feed.json.good st/feed.json 'lst["stale_after"] = "3d"'
expect_rc 4 "$B/posgate-publish" update --state st --entries e1.csv --out feed
expect_err 'lists[1].stale_after is "3d", the authority signed "2d"'
expect_rc 0 "$B/posgate-publish" update --state st --entries e1.csv --out feed \
    --authority-key $LIST=auth.key
expect_err "list $LIST: configuration signed by its authority"
expect_rc 0 pg import feed
expect_rc 1 pg check --service "$SVC" --id "$ID"
installed status.after
(( $(cut -d' ' -f1 status.after) > $(cut -d' ' -f1 status.before) )) ||
    fail "the authority's change was not installed: $(cat status.before) -> $(cat status.after)"
grep -q '"stale_after":"3d"' feed/targets/lists/$LIST/*.config.json ||
    fail "no signed config with stale_after 3d"
# a bundle carries the signed list config: a second kiosk imports it from a USB stick
expect_rc 0 "$B/posgate-publish" bundle --feed feed --out feed.bundle
expect_rc 0 "$B/posgate" --data-dir "$T/k2" init --root feed/metadata/1.root.json \
    --list-key list.key --jurisdiction CN
expect_rc 0 "$B/posgate" --data-dir "$T/k2" import feed.bundle
expect_rc 1 "$B/posgate" --data-dir "$T/k2" check --service "$SVC" --id "$ID"
echo "delegated_config.sh: all checks passed"
