#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Rotation of every key and threshold signing across machines, with the real binaries. Separate
# directories stand for separate machines: op/ (the feed operator: state, feed key, list key),
# holder1/ .. holder4/ (offline root key holders, one key each), k/ (a kiosk). The root keys are
# "unplugged" after init: the operator's updates and refreshes go on without them.
#  1. each online role (timestamp, snapshot, targets) moves to a new key in a new root signed
#     here by two root holders' keys (--root-key); the kiosk follows each with `posgate import`;
#     later refreshes sign with the recorded new keys;
#  2. a compromised root key is replaced across machines: export the unsigned root, each holder
#     signs it on their own machine, the operator adds the signatures; one signature (below the
#     old and new threshold 2) is refused with the state and feed unchanged, so are a replayed
#     proposal, a proposal carrying the removed key's signature, and one signed by the
#     operator's online key; the kiosk follows;
#  3. a root that rotates an online role to a key the operator lacks is refused before signing.
# Usage: keys_rotate.sh BUILD_DIR
set -euo pipefail
B=${1:?usage: keys_rotate.sh BUILD_DIR}
T=$(mktemp -d "${TMPDIR:-/tmp}/posgate-keysrot-XXXXXX")
trap 'rm -rf "$T"' EXIT
cd "$T"
unset POSGATE_DATA_DIR POSGATE_FAKE_NOW
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
P="$B/posgate-publish"
pg() { "$B/posgate" --data-dir "$T/k" "$@"; }
root_version() { pg status --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["root_version"])'; }
keyid() { # the TUF keyid of a .pub: sha256 of the key object's canonical JSON (raw newlines)
    python3 -c 'import hashlib, sys
pem = open(sys.argv[1]).read()
s = "{\"keytype\":\"ecdsa\",\"keyval\":{\"public\":\"%s\"},\"scheme\":\"ecdsa-sha2-nistp256\"}" % pem
print(hashlib.sha256(s.encode()).hexdigest())' "$1"
}
# role_keys N ROLE: the keyids of ROLE in feed/metadata/N.root.json, sorted, space-separated
role_keys() { python3 -c 'import json,sys; r=json.load(open(sys.argv[1]))["signed"]["roles"][sys.argv[2]]
print(" ".join(sorted(r["keyids"])), r["threshold"])' "op/feed/metadata/$1.root.json" "$2"; }
snap() { rm -rf before && mkdir before && cp -a op/st op/feed before/; }
unchanged() { diff -r op/st before/st >/dev/null && diff -r op/feed before/feed >/dev/null ||
    fail "$1: a refused step changed the state or the feed"; }

mkdir -p op usb holder1 holder2 holder3 holder4 k
for i in 1 2 3; do "$B/posgate-keygen" --out usb/root$i >/dev/null; done
"$B/posgate-keygen" --out op/feed >/dev/null
"$B/posgate-keygen" --list-key --out op/list.key >/dev/null
"$B/posgate-synth" --count 500 --seed 3 --out op/e1.csv --config-out op/feed.json \
    --subjects-out op/subj.csv
read -r ID SVC < <(awk -F, '$1 == "listed" { print $2, $3; exit }' op/subj.csv)
expect_rc 0 "$P" init --state op/st --config op/feed.json --root-key usb/root1.key \
    --root-key usb/root2.key --root-key usb/root3.key --threshold 2 --feed-key op/feed.key \
    --list-key op/list.key
expect_rc 0 "$P" update --state op/st --entries op/e1.csv --out op/feed
# the root keys leave the operator's host: each holder takes one (holder4 gets a new one later)
for i in 1 2 3; do mv usb/root$i.key usb/root$i.pub holder$i/; done
rmdir usb
expect_rc 0 "$P" refresh --state op/st --out op/feed

expect_rc 0 pg init --root op/feed/metadata/1.root.json --list-key op/list.key --jurisdiction CN
expect_rc 0 pg import op/feed
pytuf
expect_rc 1 pg check --service "$SVC" --id "$ID"
[[ $(root_version) == 1 ]] || fail "kiosk at root $(root_version), expected 1"

# 1. every online role to a key of its own
v=1
for role in timestamp snapshot targets; do
    "$B/posgate-keygen" --out op/$role-2 >/dev/null
    # the operator's online key alone cannot sign a new root
    snap
    expect_rc 4 "$P" rotate --state op/st --role $role --add-key op/$role-2.pub \
        --remove-key op/feed.pub --root-key op/feed.key --online-key op/$role-2.key --out op/feed
    expect_err "needs 2 signatures from new root keys"
    unchanged "rotate $role signed by the feed key"
    # one root key is below the threshold 2
    expect_rc 4 "$P" rotate --state op/st --role $role --add-key op/$role-2.pub \
        --remove-key op/feed.pub --root-key holder1/root1.key --online-key op/$role-2.key \
        --out op/feed
    expect_err "Nothing was changed"
    unchanged "rotate $role signed by one root key"
    expect_rc 0 "$P" rotate --state op/st --role $role --add-key op/$role-2.pub \
        --remove-key op/feed.pub --root-key holder1/root1.key --root-key holder2/root2.key \
        --online-key op/$role-2.key --out op/feed
    v=$((v + 1))
    [[ "$(role_keys $v $role)" == "$(keyid op/$role-2.pub) 1" ]] ||
        fail "root $v: role $role is $(role_keys $v $role)"
    expect_rc 0 pg import op/feed
    pytuf
    [[ $(root_version) == "$v" ]] || fail "kiosk at root $(root_version), expected $v"
    expect_rc 1 pg check --service "$SVC" --id "$ID"
    # later runs sign with the recorded new key
    expect_rc 0 "$P" refresh --state op/st --out op/feed
    expect_rc 0 pg import op/feed
    pytuf
done
grep -q timestamp-2.key op/st/publish.json || fail "online key not recorded: $(cat op/st/publish.json)"
ts_signer=$(python3 -c 'import json; print(json.load(open("op/feed/metadata/timestamp.json"))["signatures"][0]["keyid"])')
[[ $ts_signer == "$(keyid op/timestamp-2.pub)" ]] || fail "timestamp signed by $ts_signer"

# 2. root key 3 is compromised: replace it by holder4's new key, threshold stays 2
"$B/posgate-keygen" --out holder4/root4 >/dev/null
cp holder4/root4.pub op/
cp holder3/root3.pub op/
snap
expect_rc 0 "$P" rotate --state op/st --role root --remove-key op/root3.pub --add-key op/root4.pub \
    --export op/root.proposal.json
unchanged "rotate --export"
for i in 1 2 3; do
    cp op/root.proposal.json holder$i/p.json
    expect_rc 0 "$P" sign --in holder$i/p.json --key holder$i/root$i.key --out holder$i/p.signed.json
    grep -q "role root: threshold 2 of" out.txt || fail "sign printed no summary: $(cat out.txt)"
done
cp holder1/p.signed.json op/s1.json && cp holder2/p.signed.json op/s2.json
cp holder3/p.signed.json op/s3.json
# below threshold: one holder's signature
expect_rc 4 "$P" add-signatures --state op/st --role root --in op/s1.json --out op/feed
expect_err "expected valid signatures from 2 of the new root keys (threshold), found 1"
unchanged "add-signatures with one signature"
# the operator's online key does not count
cp op/root.proposal.json op/sf.json
expect_rc 0 "$P" sign --in op/sf.json --key op/targets-2.key --out op/sf.json
expect_rc 4 "$P" add-signatures --state op/st --role root --in op/s1.json --in op/sf.json --out op/feed
unchanged "add-signatures with an online key's signature"
# holders 1 and 2: accepted
expect_rc 0 "$P" add-signatures --state op/st --role root --in op/s1.json --in op/s2.json \
    --out op/feed
v=$((v + 1))
[[ "$(role_keys $v root)" == "$(printf '%s\n' "$(keyid holder1/root1.pub)" "$(keyid holder2/root2.pub)" "$(keyid holder4/root4.pub)" | sort | tr '\n' ' ' | sed 's/ $//') 2" ]] ||
    fail "root $v: root role is $(role_keys $v root)"
expect_rc 0 pg import op/feed
pytuf
[[ $(root_version) == "$v" ]] || fail "kiosk at root $(root_version), expected $v"
# a replayed proposal (the same signed root again)
snap
expect_rc 4 "$P" add-signatures --state op/st --role root --in op/s1.json --in op/s2.json \
    --out op/feed
expect_err "expected version $((v + 1))"
unchanged "replayed root"
# the removed key 3 and one current key cannot make a new root: export the next one, sign with
# holders 1 and 3
"$B/posgate-keygen" --out op/extra >/dev/null
expect_rc 0 "$P" rotate --state op/st --role timestamp --add-key op/extra.pub \
    --online-key op/extra.key --export op/next.json
cp op/next.json holder1/n.json && cp op/next.json holder3/n.json
expect_rc 0 "$P" sign --in holder1/n.json --key holder1/root1.key --out holder1/n.json
expect_rc 0 "$P" sign --in holder3/n.json --key holder3/root3.key --out holder3/n.json
expect_rc 4 "$P" add-signatures --state op/st --role root --in holder1/n.json --in holder3/n.json \
    --online-key op/extra.key --out op/feed
expect_err "found 1"
unchanged "root signed with the removed key"
# ... while holders 1 and 4 can
cp op/next.json holder4/n.json
expect_rc 0 "$P" sign --in holder4/n.json --key holder4/root4.key --out holder4/n.json
expect_rc 0 "$P" add-signatures --state op/st --role root --in holder1/n.json --in holder4/n.json \
    --online-key op/extra.key --out op/feed
v=$((v + 1))
expect_rc 0 pg import op/feed
pytuf
[[ $(root_version) == "$v" ]] || fail "kiosk at root $(root_version), expected $v"
expect_rc 1 pg check --service "$SVC" --id "$ID"

# 3. an online role moved to a key the operator does not hold is refused before any signing
"$B/posgate-keygen" --out holder1/elsewhere >/dev/null
snap
expect_rc 4 "$P" rotate --state op/st --role snapshot --add-key holder1/elsewhere.pub \
    --remove-key op/snapshot-2.pub --root-key holder1/root1.key --root-key holder4/root4.key \
    --out op/feed
expect_err "pass --online-key NEW.key"
unchanged "rotation to a key the operator lacks"
# usage errors
expect_rc 2 "$P" rotate --state op/st --role snapshot --remove-key op/feed.pub --export x.json
expect_err "expected a key of role snapshot"
expect_rc 2 "$P" rotate --state op/st --role mirror --threshold 1 --export x.json
expect_rc 2 "$P" rotate --state op/st --role root --threshold 4 --export x.json
expect_err "expected 1 <= threshold <= keys"
echo "keys_rotate: ok"
