#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# An authority's key replaced without touching kiosks, authorised by the root threshold, with the
# real binaries. Directories stand for machines: op/ (the feed operator), court/ and court2/
# (the authority's old and new key), holder1/ holder2/ (root key holders, threshold 2), k/ (a
# kiosk run by posgated, syncing over HTTP from posgate-hub) and k2/ (a kiosk importing from a
# directory). The authority's key files are never in op/.
#  1. the list is delegated to court's key, published, and pinned by both kiosks;
#  2. attack: the operator alone re-points the list at a key of its own and signs it: the
#     kiosks refuse (exit 4 / sync 4xx), the listed subject stays DENY, nothing changes;
#  3. attack: the operator records its own delegation in a root signed with its online key, or
#     with one root key: refused by posgate-publish, state and feed unchanged;
#  4. the authority's new key: `delegate` to court2's key, `authorize --export`, two holders sign,
#     `add-signatures`, the authority's update: the running daemon takes it on its next sync
#     (pins moved to the new key, by root version N), the import kiosk too;
#  5. attack: the authority's old (removed) key signs the list again: refused by the kiosks;
#  6. attack: the old authorisation replayed: refused by posgate-publish.
# Usage: keys_authority.sh BUILD_DIR
set -euo pipefail
B=${1:?usage: keys_authority.sh BUILD_DIR}
HERE=$(cd "$(dirname "$0")" && pwd)
# shared helpers: api and sync_now (the daemon's local API); this script's own fail follows
. "$HERE/lib.sh"
T=$(mktemp -d "${TMPDIR:-/tmp}/posgate-keysauth-XXXXXX")
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    rm -rf "$T"
}
trap cleanup EXIT
cd "$T"
unset POSGATE_DATA_DIR POSGATE_FAKE_NOW http_proxy https_proxy HTTP_PROXY HTTPS_PROXY
fail() { echo "FAIL: $*" >&2; exit 1; }
# by hand: POSGATE_PYTUF="PYTHON_WITH_TUF path/to/pytuf_follow.py" has python-tuf follow each
# step a kiosk takes (see pytuf_follow.py)
pytuf() { [[ -z ${POSGATE_PYTUF:-} ]] || $POSGATE_PYTUF "$T/op/feed" "$T/pytuf" ||
    fail "python-tuf refused the feed"; }
expect_rc() { # expect_rc RC CMD... : runs CMD, checks its exit code; output in out.txt/err.txt
    local want=$1; shift
    set +e; "$@" >out.txt 2>err.txt; local rc=$?; set -e
    [[ $rc == "$want" ]] || { cat out.txt err.txt >&2; fail "$* exited $rc, expected $want"; }
}
expect_err() { grep -qF -- "$1" err.txt || fail "expected \"$1\" in: $(cat err.txt)"; }
wait_file() { for _ in $(seq 100); do [[ -s "$1" ]] && return 0; sleep 0.1; done; fail "no $1"; }
P="$B/posgate-publish"
pg() { "$B/posgate" --data-dir "$T/$1" "${@:2}"; }
snap() { rm -rf before && mkdir before && cp -a op/st op/feed before/; }
unchanged() { diff -r op/st before/st >/dev/null && diff -r op/feed before/feed >/dev/null ||
    fail "$1: a refused step changed the state or the feed"; }
keyid() { # the TUF keyid of a .pub: sha256 of the key object's canonical JSON (raw newlines)
    python3 -c 'import hashlib, sys
pem = open(sys.argv[1]).read()
s = "{\"keytype\":\"ecdsa\",\"keyval\":{\"public\":\"%s\"},\"scheme\":\"ecdsa-sha2-nistp256\"}" % pem
print(hashlib.sha256(s.encode()).hexdigest())' "$1"
}
# the daemon's answers, over its unix socket
daemon_decision() { # the daemon's decision for the listed subject
    local code; code=$(api POST /v1/check '{"service": "'"$SVC"'", "ids": ["'"$ID"'"]}')
    [[ $code == 200 ]] || fail "check: $code $(cat resp.json)"
    python3 -c 'import json; print(json.load(open("resp.json"))["decision"])'
}
daemon_version() { api GET /v1/status >/dev/null
    python3 -c 'import json; print(json.load(open("resp.json"))["feed_version"])'; }
pinned_keys() { python3 -c 'import json,sys; p=json.load(open(sys.argv[1]))["lists"][sys.argv[2]]
print(" ".join(p["keys"]), p["threshold"], p.get("root", 0))' "$1" "$LIST"; }

mkdir -p op usb court court2 holder1 holder2 k k2
"$B/posgate-keygen" --out usb/root1 >/dev/null
"$B/posgate-keygen" --out usb/root2 >/dev/null
"$B/posgate-keygen" --out op/feed >/dev/null
"$B/posgate-keygen" --out op/own >/dev/null
"$B/posgate-keygen" --out court/auth >/dev/null
"$B/posgate-keygen" --out court2/auth >/dev/null
"$B/posgate-keygen" --list-key --out op/list.key >/dev/null
"$B/posgate-synth" --count 2000 --seed 8 --out op/e1.csv --config-out op/feed.json \
    --subjects-out op/subj.csv
LIST=caac-safety
read -r ID SVC < <(awk -F, -v l=$LIST '$1 == "listed" && $4 == l { print $2, $3; exit }' op/subj.csv)
[[ -n ${ID:-} ]] || fail "no listed subject of $LIST"
cp court/auth.pub op/court.pub && cp court2/auth.pub op/court2.pub

# 1. delegated, published, pinned
expect_rc 0 "$P" init --state op/st --config op/feed.json --root-key usb/root1.key \
    --root-key usb/root2.key --threshold 2 --feed-key op/feed.key --list-key op/list.key
expect_rc 0 "$P" update --state op/st --entries op/e1.csv --out op/feed
# the root keys leave the operator's host, one to each holder
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
pytuf
[[ "$(pinned_keys k/pins.json)" == "$(keyid court/auth.pub) 1 0" ]] ||
    fail "first-sight pin: $(pinned_keys k/pins.json)"
V0=$(daemon_version)

# 2. the operator alone re-points the list at its own key and signs the list with it
cp -a op op.good
expect_rc 0 "$P" delegate --state op/st --list $LIST --key op/own.pub --threshold 1
expect_rc 0 "$P" update --state op/st --entries op/e1.csv --out op/feed \
    --authority-key $LIST=op/own.key
code=$(sync_now)
[[ $code == 4* ]] || fail "the daemon took an operator-only re-delegation: $code $(cat resp.json)"
grep -q "is pinned to its authority's delegation" resp.json || fail "sync said: $(cat resp.json)"
[[ $(daemon_decision) == deny && $(daemon_version) == "$V0" ]] || fail "daemon state moved"
expect_rc 4 pg k2 import op/feed
expect_err "list $LIST is pinned to its authority's delegation"
# 3. ... and records it in a root signed with its online key, or one root key
expect_rc 0 "$P" delegate --state op/st --list $LIST --key op/own.pub --threshold 1
snap
expect_rc 4 "$P" authorize --state op/st --list $LIST --root-key op/feed.key --out op/feed
expect_err "needs 2 signatures from new root keys"
unchanged "authorize with the feed key"
expect_rc 4 "$P" authorize --state op/st --list $LIST --root-key holder1/root1.key --out op/feed
unchanged "authorize with one root key"
expect_rc 0 "$P" authorize --state op/st --list $LIST --export op/own.proposal.json
cp op/own.proposal.json op/own.signed.json
expect_rc 0 "$P" sign --in op/own.signed.json --key holder1/root1.key --out op/own.signed.json
expect_rc 0 "$P" sign --in op/own.signed.json --key op/feed.key --out op/own.signed.json
expect_rc 4 "$P" add-signatures --state op/st --role root --in op/own.signed.json --out op/feed
expect_err "found 1"
unchanged "add-signatures of an operator-signed authorisation"
rm -rf op && mv op.good op

# 4. the authority's key is replaced, authorised by two root holders
expect_rc 0 "$P" delegate --state op/st --list $LIST --key op/court2.pub --threshold 1
expect_rc 0 "$P" authorize --state op/st --list $LIST --export op/auth.proposal.json
grep -q "$(keyid court2/auth.pub)" op/auth.proposal.json || fail "the proposal lacks the new key"
for i in 1 2; do
    cp op/auth.proposal.json holder$i/p.json
    expect_rc 0 "$P" sign --in holder$i/p.json --key holder$i/root$i.key --out holder$i/p.json
    grep -q "list $LIST authority: threshold 1 of $(keyid court2/auth.pub | cut -c1-16)" out.txt ||
        fail "sign summary: $(cat out.txt)"
    cp holder$i/p.json op/s$i.json
done
cp op/s1.json op/replay.json
expect_rc 0 "$P" add-signatures --state op/st --role root --in op/s1.json --in op/s2.json
RV=$(python3 -c 'import json; print(json.load(open("op/st/tuf/signed/root.json"))["signed"]["version"])')
# the authority (on its own machine's key file) signs its list; published with the new root
expect_rc 0 "$P" update --state op/st --entries op/e1.csv --out op/feed \
    --authority-key $LIST=court2/auth.key
[[ $(sync_now) == 200 ]] || fail "the daemon refused the root-authorised change: $(cat resp.json)"
[[ $(daemon_decision) == deny ]] || fail "listed subject not denied after the change"
(( $(daemon_version) > V0 )) || fail "daemon did not move past $V0"
[[ "$(pinned_keys k/pins.json)" == "$(keyid court2/auth.pub) 1 $RV" ]] ||
    fail "daemon pin after the change: $(pinned_keys k/pins.json)"
expect_rc 0 pg k2 import op/feed
pytuf
expect_rc 1 pg k2 check --service "$SVC" --id "$ID"
[[ "$(pinned_keys k2/pins.json)" == "$(keyid court2/auth.pub) 1 $RV" ]] ||
    fail "import kiosk pin after the change: $(pinned_keys k2/pins.json)"
V1=$(daemon_version)

# 5. the removed authority key signs the list again (the operator re-delegates to it): refused
cp -a op op.good
expect_rc 0 "$P" delegate --state op/st --list $LIST --key op/court.pub --threshold 1
expect_rc 0 "$P" update --state op/st --entries op/e1.csv --out op/feed \
    --authority-key $LIST=court/auth.key
code=$(sync_now)
[[ $code == 4* ]] || fail "the daemon took the removed authority key: $code $(cat resp.json)"
[[ $(daemon_decision) == deny && $(daemon_version) == "$V1" ]] || fail "daemon state moved"
expect_rc 4 pg k2 import op/feed
expect_err "list $LIST is pinned to its authority's delegation"
rm -rf op && mv op.good op

# 6. the old authorisation replayed
snap
expect_rc 4 "$P" add-signatures --state op/st --role root --in op/replay.json --in op/s2.json \
    --out op/feed
expect_err "expected version $((RV + 1))"
unchanged "replayed authorisation"
[[ $(sync_now) == 200 ]] || fail "sync after the refusals: $(cat resp.json)"
echo "keys_authority: ok"
