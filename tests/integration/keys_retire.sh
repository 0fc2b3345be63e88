#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# A delegated list retired, authorised by the root threshold, with the real binaries.
# Directories stand for machines: op/ (the feed operator), holder1/ holder2/ (root key holders,
# threshold 2), court/ (the list's authority), k/ (a kiosk run by posgated, syncing over HTTP
# from posgate-hub), k2/ (a kiosk importing from a directory) and k3/ (a kiosk installed while
# the retirement is under way).
#  1. the list is delegated to court's key, published, and pinned by both kiosks on first sight;
#  2. attack: the operator alone drops the list from feed.json: posgate-publish refuses, and the
#     same feed.json signed with the operator's keys alone is refused by both kiosks, the listed
#     subject still DENY;
#  3. attack: a retirement signed with the operator's key or one root key: refused by
#     posgate-publish (state and feed unchanged); the one-key retirement root put in the feed by
#     hand, with the list dropped: refused by the kiosk's TUF client;
#  4. the retirement: `authorize --retire --export`, two holders sign, `add-signatures --out`:
#     the kiosks take the root, the list is retiring (still pinned, still DENY; k3 pins it from
#     the record); accept refuses the authority's next handover; the operator alone still
#     cannot re-point it;
#  5. the operator drops the list (`update`): the delegation is withdrawn, the list leaves the
#     state; the running daemon and the import kiosks accept the feed, the subject is ALLOW,
#     status no longer shows the list, pins.json records the retirement (root version, time);
#  6. replays: the retirement proposal again and a second retirement (posgate-publish), the
#     pre-retirement feed and the pre-retirement root as the next root version (kiosks), the
#     list brought back by the operator alone (kiosks: "was retired by the root");
#  7. the list comes back: as the operator's own, refused by posgate-publish; delegated to its
#     authority and recorded anew by two holders, taken by the kiosks (pinned to the new record,
#     the subject DENY again).
# Usage: keys_retire.sh BUILD_DIR
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
B=${1:?usage: keys_retire.sh BUILD_DIR}
T=$(mktemp -d "${TMPDIR:-/tmp}/posgate-keysretire-XXXXXX")
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    rm -rf "$T"
}
trap cleanup EXIT
cd "$T"
unset POSGATE_DATA_DIR POSGATE_FAKE_NOW http_proxy https_proxy HTTP_PROXY HTTPS_PROXY
# shared helpers: fail, expect_rc
. "$HERE/lib.sh"
FAIL_LOGS=(daemon.log status-odd.txt)
expect_err() { grep -qF -- "$1" err.txt || fail "expected \"$1\" in: $(cat err.txt)"; }
wait_file() { for _ in $(seq 100); do [[ -s "$1" ]] && return 0; sleep 0.1; done; fail "no $1"; }
P="$B/posgate-publish"
pg() { "$B/posgate" --data-dir "$T/$1" "${@:2}"; }
snap() { rm -rf before && mkdir before && cp -a op/st op/feed before/; }
unchanged() { diff -r op/st before/st >/dev/null && diff -r op/feed before/feed >/dev/null ||
    fail "$1: a refused step changed the state or the feed"; }
root_version() { python3 -c 'import json, sys
print(json.load(open(sys.argv[1]))["signed"]["version"])' "$1"; }
# the daemon's answers, over its unix socket
daemon_decision() { # the daemon's decision for the listed subject
    local code; code=$(api POST /v1/check '{"service": "'"$SVC"'", "ids": ["'"$ID"'"]}')
    [[ $code == 200 ]] || fail "check: $code $(cat resp.json)"
    python3 -c 'import json; print(json.load(open("resp.json"))["decision"])'
}
daemon_version() { api GET /v1/status >/dev/null
    python3 -c 'import json; print(json.load(open("resp.json"))["feed_version"])'; }
daemon_lists() { api GET /v1/status >/dev/null
    python3 -c 'import json; print(" ".join(sorted(l["id"] for l in json.load(open("resp.json"))["lists"])))'; }
status_lists() { pg "$1" status --json | python3 -c 'import json, sys
print(" ".join(sorted(l["id"] for l in json.load(sys.stdin)["lists"])))'; }
pin_of() { # pin_of PINS SECTION : the list's entry under "lists" or "retired", as JSON ("none")
    python3 -c 'import json, sys; p = json.load(open(sys.argv[1])).get(sys.argv[2], {})
print(json.dumps(p[sys.argv[3]], sort_keys=True) if sys.argv[3] in p else "none")' "$1" "$2" "$LIST"
}
# edit_feed IN OUT PYTHON : OUT = feed.json IN with the python statement applied to d
edit_feed() {
    python3 - "$1" "$2" "$3" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
exec(sys.argv[3])
json.dump(d, open(sys.argv[2], "w"), indent=1)
EOF
}
DROP='d["lists"] = [l for l in d["lists"] if l["id"] != "caac-safety"]'
# the feed.json of state ST signed with the operator's keys alone (no posgate-publish checks)
operator_only() { # operator_only CONFIG OUTFEED : OUTFEED = op/feed with CONFIG as config/feed.json
    rm -rf op.tmp "$2" && cp -a op/st op.tmp && cp -a op/feed "$2"
    "$B/tests/operator_publish" op.tmp/tuf "$2" "$1" op/feed.key || fail "operator_publish failed"
    rm -rf op.tmp
}

mkdir -p op usb court holder1 holder2 k k2 k3
"$B/posgate-keygen" --out usb/root1 >/dev/null
"$B/posgate-keygen" --out usb/root2 >/dev/null
"$B/posgate-keygen" --out op/feed >/dev/null
"$B/posgate-keygen" --out op/own >/dev/null
"$B/posgate-keygen" --out court/auth >/dev/null
"$B/posgate-keygen" --list-key --out op/list.key >/dev/null
"$B/posgate-synth" --count 2000 --seed 8 --out op/e1.csv --config-out op/feed.json \
    --subjects-out op/subj.csv
LIST=caac-safety
read -r ID SVC < <(awk -F, -v l=$LIST '$1 == "listed" && $4 == l { print $2, $3; exit }' op/subj.csv)
[[ -n ${ID:-} ]] || fail "no listed subject of $LIST"
# the subject is listed on this list only, so that its retirement makes it ALLOW
[[ $(grep -c ",${ID#*:}," op/e1.csv) == 1 ]] || fail "$ID is listed more than once"
grep -v "^$LIST," op/e1.csv >op/e-rest.csv
cp court/auth.pub op/court.pub

# 1. delegated, published, pinned on first sight
expect_rc 0 "$P" init --state op/st --config op/feed.json --root-key usb/root1.key \
    --root-key usb/root2.key --threshold 2 --feed-key op/feed.key --list-key op/list.key
expect_rc 0 "$P" update --state op/st --entries op/e1.csv --out op/feed
mv usb/root1.* holder1/ && mv usb/root2.* holder2/ && rmdir usb
expect_rc 0 "$P" delegate --state op/st --list $LIST --key op/court.pub --threshold 1
expect_rc 0 "$P" update --state op/st --entries op/e1.csv --out op/feed \
    --authority-key $LIST=court/auth.key
"$B/posgate-hub" --feed op/feed --listen 127.0.0.1:0 --port-file hub.port 2>hub.log &
PIDS+=($!)
wait_file hub.port
SOCK=$T/posgated.sock
expect_rc 0 pg k init --root op/feed/metadata/1.root.json --list-key op/list.key --jurisdiction CN
cat > daemon.json <<EOF
{"data_dir": "$T/k", "listen": ["unix:$SOCK"], "feed_urls": ["http://127.0.0.1:$(cat hub.port)/"],
 "poll_interval_s": 3600}
EOF
"$B/posgated" --config daemon.json 2>daemon.log &
PIDS+=($!)
for _ in $(seq 100); do [[ -S $SOCK ]] && break; sleep 0.1; done
[[ -S $SOCK ]] || fail "posgated did not start: $(cat daemon.log)"
[[ $(sync_now) == 200 ]] || fail "first sync: $(cat resp.json)"
[[ $(daemon_decision) == deny ]] || fail "listed subject not denied"
expect_rc 0 pg k2 init --root op/feed/metadata/1.root.json --list-key op/list.key --jurisdiction CN
expect_rc 0 pg k2 import op/feed
expect_rc 1 pg k2 check --service "$SVC" --id "$ID"
[[ $(pin_of k/pins.json lists) != none && $(pin_of k2/pins.json lists) != none ]] ||
    fail "the kiosks did not pin $LIST"
V0=$(daemon_version)
ALL_LISTS=$(daemon_lists)
[[ " $ALL_LISTS " == *" $LIST "* ]] || fail "status lists: $ALL_LISTS"

# 2. the operator alone drops the list
cp op/st/feed.json op/feed.json.good
edit_feed op/feed.json.good op/st/feed.json "$DROP"
snap
expect_rc 4 "$P" update --state op/st --entries op/e-rest.csv --out op/feed
expect_err "list $LIST is delegated to its authority (role list-$LIST) and missing from feed.json"
expect_err "Only the root threshold retires a delegated list: posgate-publish authorize --list $LIST --retire"
unchanged "update without the list"
# ... and signs feed.json without it with the online keys alone
cp op/st/feed.json op/feed-drop.json
cp op/feed.json.good op/st/feed.json
cp -a op op.good
operator_only op/feed-drop.json op/feed.drop
rm -rf op/feed && mv op/feed.drop op/feed
code=$(sync_now)
[[ $code == 4* ]] || fail "the daemon took an operator-only drop: $code $(cat resp.json)"
grep -q "config/feed.json drops it" resp.json || fail "sync said: $(cat resp.json)"
[[ $(daemon_decision) == deny && $(daemon_version) == "$V0" ]] || fail "daemon state moved"
expect_rc 4 pg k2 import op/feed
expect_err "list $LIST is pinned to its authority's delegation (role list-$LIST); this feed's config/feed.json drops it"
expect_err "authorize --retire"
expect_rc 1 pg k2 check --service "$SVC" --id "$ID"
rm -rf op && mv op.good op

# 3. a retirement signed with the operator's key, or one root key
RV0=$(root_version op/st/tuf/signed/root.json)
snap
expect_rc 4 "$P" authorize --state op/st --list $LIST --retire --root-key op/feed.key --out op/feed
unchanged "retirement signed with the feed key"
expect_rc 4 "$P" authorize --state op/st --list $LIST --retire --root-key holder1/root1.key \
    --out op/feed
unchanged "retirement signed with one root key"
expect_rc 0 "$P" authorize --state op/st --list $LIST --retire --export op/one.json
unchanged "an exported retirement"
expect_rc 0 "$P" sign --in op/one.json --key holder1/root1.key --out op/one.json
expect_rc 0 "$P" sign --in op/one.json --key op/feed.key --out op/one.json
expect_rc 4 "$P" add-signatures --state op/st --role root --in op/one.json --out op/feed
expect_err "found 1"
unchanged "add-signatures of a retirement below the threshold"
# put in the feed by hand, the list dropped (operator keys): the kiosk's TUF client refuses
operator_only op/feed-drop.json feed.forged
cp op/one.json "feed.forged/metadata/$((RV0 + 1)).root.json"
expect_rc 4 pg k2 import feed.forged
expect_err "root $((RV0 + 1)) has 1 valid signature of threshold 2 by the old root's"
expect_rc 1 pg k2 check --service "$SVC" --id "$ID"
[[ $(root_version k2/tuf/root.json) == "$RV0" ]] || fail "the kiosk took the one-key root"

# 4. the retirement, signed by two holders on their machines and published; the list is still
# in the feed: kiosks keep it, held to its pin
expect_rc 0 "$P" authorize --state op/st --list $LIST --retire --export op/retire.json
grep -q '"retired"' op/retire.json || fail "the proposal records no retirement"
for i in 1 2; do
    cp op/retire.json holder$i/p.json
    expect_rc 0 "$P" sign --in holder$i/p.json --key holder$i/root$i.key --out holder$i/p.json
    grep -q "list $LIST RETIRED as of " out.txt || fail "sign summary: $(cat out.txt)"
    cp holder$i/p.json op/s$i.json
done
cp -a op/feed feed.before-retire
expect_rc 0 "$P" add-signatures --state op/st --role root --in op/s1.json --in op/s2.json \
    --out op/feed
RV=$(root_version op/st/tuf/signed/root.json)
[[ $RV == $((RV0 + 1)) ]] || fail "root version $RV after the retirement, expected $((RV0 + 1))"
WHEN=$(python3 -c 'import json, sys
print(json.load(open(sys.argv[1]))["signed"]["x-posgate-authorities"][sys.argv[2]]["retired"])' \
    op/st/tuf/signed/root.json $LIST)
# posgate-publish status shows the retirement (text and JSON)
expect_rc 0 "$P" status --state op/st --warn 0s
grep -q "list $LIST .*RETIRED by the root since $WHEN" out.txt || fail "status text: $(cat out.txt)"
expect_rc 0 "$P" status --state op/st --warn 0s --json
python3 - out.txt "$LIST" "$WHEN" <<'PY' || fail "status --json: $(cat out.txt)"
import json, sys
a = {x["list"]: x for x in json.load(open(sys.argv[1]))["authorities"]}
assert a[sys.argv[2]]["retired"] == sys.argv[3], a
PY
[[ $(sync_now) == 200 ]] || fail "the daemon refused the retirement root: $(cat resp.json)"
[[ $(daemon_decision) == deny ]] || fail "a retiring list still in the feed stopped denying"
expect_rc 0 pg k2 import op/feed
expect_rc 1 pg k2 check --service "$SVC" --id "$ID"
for k in k k2; do
    python3 -c 'import json, sys; p = json.loads(sys.argv[1])
assert p["retired"] == sys.argv[2] and p["root"] == int(sys.argv[3]), p' \
        "$(pin_of $k/pins.json lists)" "$WHEN" "$RV" || fail "$k: retiring pin $(pin_of $k/pins.json lists)"
done
# a kiosk installed now pins the retiring list from the root's record
expect_rc 0 pg k3 init --root op/feed/metadata/1.root.json --list-key op/list.key --jurisdiction CN
expect_rc 0 pg k3 import op/feed
expect_rc 1 pg k3 check --service "$SVC" --id "$ID"
[[ $(pin_of k3/pins.json lists) == "$(pin_of k2/pins.json lists)" ]] ||
    fail "k3 pin: $(pin_of k3/pins.json lists), k2: $(pin_of k2/pins.json lists)"
# the authority's next handover (signed on its machine from the public feed): accept refuses it
cp -a op/feed court/feed && cp op/feed/metadata/1.root.json court/root.json
cp op/list.key court/list.key
{ head -1 op/e1.csv; grep "^$LIST," op/e1.csv; } >court/e.csv
expect_rc 0 "$P" authority-sign --list $LIST --feed court/feed --root court/root.json \
    --entries court/e.csv --list-key court/list.key --key court/auth.key --out court/h.pgh
cp court/h.pgh op/h.pgh
snap
expect_rc 4 "$P" accept --state op/st --handover op/h.pgh --out op/feed
expect_err "list $LIST is retired by the root (since $WHEN)"
unchanged "accept of a retired list's handover"
# the operator alone re-points the retiring list at its own key: refused as before
cp -a op op.good
cp op/own.pub op/own-auth.pub
expect_rc 0 "$P" delegate --state op/st --list $LIST --key op/own-auth.pub --threshold 1
expect_rc 0 "$P" update --state op/st --entries op/e1.csv --out op/feed \
    --authority-key $LIST=op/own.key
expect_rc 4 pg k2 import op/feed
expect_err "list $LIST is pinned to its authority's delegation"
expect_rc 1 pg k2 check --service "$SVC" --id "$ID"
rm -rf op && mv op.good op

# 5. the operator drops the retired list
V1=$(daemon_version)
cp op/feed-drop.json op/st/feed.json
expect_rc 0 "$P" update --state op/st --entries op/e-rest.csv --out op/feed
expect_err "list $LIST: retired by the root ($WHEN) and dropped from feed.json; its delegation (role list-$LIST) is withdrawn"
! grep -q "\"$LIST\"" op/st/publish.json || fail "the state still records $LIST"
[[ ! -e op/st/lists/$LIST ]] || fail "op/st/lists/$LIST is still there"
python3 - op/feed/metadata $LIST <<'EOF' || fail "the published metadata"
import glob, json, os, sys
meta, lst = sys.argv[1], sys.argv[2]
def newest(kind):
    return max(glob.glob('%s/*.%s.json' % (meta, kind)), key=lambda p: int(os.path.basename(p).split('.')[0]))
targets = json.load(open(newest('targets')))['signed']
assert all(r['name'] != 'list-' + lst for r in targets.get('delegations', {}).get('roles', [])), 'still delegated'
assert not any(n.startswith('lists/%s/' % lst) for n in targets['targets']), 'listed by targets'
snapshot = json.load(open(newest('snapshot')))['signed']
assert 'list-%s.json' % lst in snapshot['meta'], 'the retired role left the snapshot'
EOF
[[ $(sync_now) == 200 ]] || fail "the daemon refused the retired list's drop: $(cat resp.json)"
[[ $(daemon_decision) == allow ]] || fail "the retired list still denies: $(daemon_decision)"
(( $(daemon_version) > V1 )) || fail "daemon did not move past $V1"
[[ " $(daemon_lists) " != *" $LIST "* ]] || fail "daemon status still shows $LIST: $(daemon_lists)"
for k in k2 k3; do
    expect_rc 0 pg $k import op/feed
    expect_rc 0 pg $k check --service "$SVC" --id "$ID"
    [[ " $(status_lists $k) " != *" $LIST "* ]] || fail "$k status still shows $LIST"
done
for k in k k2 k3; do
    [[ $(pin_of $k/pins.json lists) == none ]] || fail "$k still pins $LIST"
    python3 -c 'import json, sys; p = json.loads(sys.argv[1])
assert p["retired"] == sys.argv[2] and p["root"] == int(sys.argv[3]), p' \
        "$(pin_of $k/pins.json retired)" "$WHEN" "$RV" ||
        fail "$k: retirement record $(pin_of $k/pins.json retired)"
done
V2=$(daemon_version)

# 6. replays. The retirement proposal again: posgate-publish refuses it, as it refuses to
# retire the list a second time
snap
expect_rc 2 "$P" authorize --state op/st --list $LIST --retire --export op/again.json
expect_err "the root already records list $LIST as retired ($WHEN); nothing to sign"
expect_rc 4 "$P" add-signatures --state op/st --role root --in op/s1.json --in op/s2.json \
    --out op/feed
expect_err "expected version $((RV + 1))"
unchanged "replayed retirement"
# the feed from before the retirement (the list, its pin, no record): TUF rollback
expect_rc 4 pg k2 import feed.before-retire
expect_err "is older than trusted version"
expect_rc 0 pg k2 check --service "$SVC" --id "$ID"
# the root from before the retirement served as the next root version: refused
rm -rf feed.replay && cp -a op/feed feed.replay
cp "op/feed/metadata/$RV0.root.json" "feed.replay/metadata/$((RV + 1)).root.json"
expect_rc 4 pg k2 import feed.replay
expect_err "$((RV + 1)).root.json holds root version $RV0, expected $((RV + 1))"
[[ $(root_version k2/tuf/root.json) == "$RV" ]] || fail "the kiosk's root moved"
# the operator alone brings the list back (feed.json as before, online keys): refused
operator_only op/feed.json.good feed.back
expect_rc 4 pg k2 import feed.back
expect_err "list $LIST was retired by the root (root version $RV, retired $WHEN)"
expect_rc 0 pg k2 check --service "$SVC" --id "$ID"
[[ $(sync_now) == 200 ]] || fail "sync after the refusals: $(cat resp.json)"
[[ $(daemon_version) == "$V2" ]] || fail "daemon version moved: $(daemon_version), expected $V2"

# 7. the list comes back as a new one. As the operator's own: refused by posgate-publish
cp op/feed.json.good op/st/feed.json
snap
expect_rc 4 "$P" update --state op/st --entries op/e1.csv --out op/feed
expect_err "list $LIST is retired by the root (since $WHEN) and feed.json lists it as the operator's own"
unchanged "update bringing a retired list back as the operator's"
# delegated to its authority and recorded anew by two holders, published with its authority's
# first signature: the kiosks pin it to the new record and deny the subject again
expect_rc 0 "$P" delegate --state op/st --list $LIST --key op/court.pub --threshold 1
expect_rc 0 "$P" authorize --state op/st --list $LIST --export op/back.json
for i in 1 2; do
    cp op/back.json holder$i/b.json
    expect_rc 0 "$P" sign --in holder$i/b.json --key holder$i/root$i.key --out holder$i/b.json
    grep -q "list $LIST authority: threshold 1 of" out.txt || fail "sign summary: $(cat out.txt)"
    cp holder$i/b.json op/b$i.json
done
expect_rc 0 "$P" add-signatures --state op/st --role root --in op/b1.json --in op/b2.json
expect_rc 0 "$P" update --state op/st --entries op/e1.csv --out op/feed \
    --authority-key $LIST=court/auth.key
[[ $(sync_now) == 200 ]] || fail "the daemon refused the list's return: $(cat resp.json)"
[[ $(daemon_decision) == deny ]] || fail "the returned list does not deny"
[[ " $(daemon_lists) " == *" $LIST "* ]] || fail "daemon status lacks $LIST: $(daemon_lists)"
expect_rc 0 pg k2 import op/feed
expect_rc 1 pg k2 check --service "$SVC" --id "$ID"
for k in k k2; do
    [[ $(pin_of $k/pins.json retired) == none ]] || fail "$k still holds $LIST as retired"
    python3 -c 'import json, sys; p = json.loads(sys.argv[1])
assert "retired" not in p and p["root"] == int(sys.argv[2]), p' \
        "$(pin_of $k/pins.json lists)" "$((RV + 1))" || fail "$k: pin $(pin_of $k/pins.json lists)"
done
echo "keys_retire: ok"
