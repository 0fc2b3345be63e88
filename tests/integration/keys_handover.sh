#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Two parties on two machines: an issuing authority signs its list on its own machine and hands
# the operator one file, which the operator verifies and publishes without ever holding the
# authority's key. Real binaries; directories stand for machines: op/ (the feed operator: state,
# feed key, list key, feed), court/ (the authority: its keys, its entries, its copy of the public
# feed and of the root it trusts), holder/ (the root key holder), other/ (the operator of another
# feed), k/ (a kiosk importing the operator's feed), usb/ (the root key's medium for init). The
# authority's key files are never in op/, nor is the root key after the first publication.
#  1. the operator publishes the feed, the list still its own; a kiosk imports it;
#  2. the authority: refusals on its side (no delegation yet without --new-keys, a malformed
#     row, a row of another list, a mass change), then its first handover;
#  3. the operator delegates the list, records the authority in the root (holder signs), accepts
#     the handover; the kiosk imports it and denies the listed subject;
#  4. a second handover (a listing added, one removed) accepted, the kiosk follows; the
#     operator's update without rows of the list leaves it as it is, with rows of it is refused;
#  5. attacks, each refused by accept with the operator's state and feed byte for byte
#     unchanged: a replayed old handover, the current one replayed, a handover for another feed,
#     a target altered after signing, a forged role signature, a target outside the delegated
#     paths, an operator-only re-delegation signed by the operator;
#     the authority changes its list's definition (from the feed as a bundle): refused until the
#     operator's feed.json says the same, then published;
#  6. the authority's key replaced (delegate, authorize): a handover signed by the removed key
#     refused; the threshold raised to 2: a handover signed by one key refused, by two accepted;
#     the kiosk follows each accepted step.
# By hand: POSGATE_PYTUF="PYTHON_WITH_TUF path/to/pytuf_follow.py" has python-tuf follow every
# published step (see pytuf_follow.py).
# Usage: keys_handover.sh BUILD_DIR
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
B=${1:?usage: keys_handover.sh BUILD_DIR}
T=$(mktemp -d "${TMPDIR:-/tmp}/posgate-handover-XXXXXX")
trap 'rm -rf "$T"' EXIT
cd "$T"
unset POSGATE_DATA_DIR POSGATE_FAKE_NOW
# shared helpers: fail, expect_rc
. "$HERE/lib.sh"
expect_err() { grep -qF -- "$1" err.txt || fail "expected \"$1\" in: $(cat err.txt)"; }
P="$B/posgate-publish"
pg() { "$B/posgate" --data-dir "$T/k" "$@"; }
pytuf() { [[ -z ${POSGATE_PYTUF:-} ]] || $POSGATE_PYTUF "$T/op/feed" "$T/pytuf" ||
    fail "python-tuf refused the feed"; }
# the operator's state and feed, file names and contents
tree_sum() { (cd op && find st feed -type f -print0 | sort -z | xargs -0 sha256sum); }
snap() { tree_sum >before.sum; }
unchanged() { tree_sum | cmp -s - before.sum || fail "$1: a refused accept changed the operator's state or feed"; }
# no file under op/ holds an authority signing key (the list key both sides hold)
no_authority_key_in_op() {
    local f h
    find op -type f -exec sha256sum {} + >op-files.sum
    for f in court/[abc].key; do
        h=$(sha256sum <"$f" | cut -d' ' -f1)
        if grep -q "^$h " op-files.sum; then
            fail "the authority's key $f is in the operator's directory: $(grep "^$h " op-files.sum)"
        fi
    done
}
# the feed as the authority fetches it (any carrier would do), and a handover carried to op/
fetch_feed() { rm -rf "court/$1" && cp -a op/feed "court/$1"; }
hand_over() { cp "court/$1" "op/$1"; no_authority_key_in_op; }
# the kiosk's seq of the list
kiosk_seq() { pg status --json | python3 -c 'import json, sys
print(next(l["seq"] for l in json.load(sys.stdin)["lists"] if l["id"] == sys.argv[1]))' "$LIST"; }
# root_authorize: the operator records the list's current delegation in a new root, signed by
# the holder on the holder's machine (authorize --export, sign, add-signatures)
root_authorize() {
    expect_rc 0 "$P" authorize --state op/st --list $LIST --export op/auth.json
    cp op/auth.json holder/p.json
    expect_rc 0 "$P" sign --in holder/p.json --key holder/root.key --out holder/p.json
    cp holder/p.json op/auth.signed.json
    expect_rc 0 "$P" add-signatures --state op/st --role root --in op/auth.signed.json
}
# a handover's members, unpacked and packed again (the bundle format, bundle.h)
cat >hop.py <<'EOF'
import os, struct, sys
def unpack(f, d):
    b = open(f, "rb").read()
    assert b[:8] == b"PGBUNDL1"
    count, ilen = struct.unpack(">IQ", b[12:24])
    p = 32
    for _ in range(count):
        (n,) = struct.unpack(">H", b[p:p + 2]); path = b[p + 2:p + 2 + n].decode()
        off, ln = struct.unpack(">QQ", b[p + 2 + n:p + 18 + n]); p += 18 + n
        os.makedirs(os.path.dirname(os.path.join(d, path)) or d, exist_ok=True)
        open(os.path.join(d, path), "wb").write(b[off:off + ln])
def pack(d, f):
    paths = sorted((os.path.relpath(os.path.join(r, x), d) for r, _, fs in os.walk(d) for x in fs),
                   key=lambda s: s.encode())
    bodies = [open(os.path.join(d, x), "rb").read() for x in paths]
    index = b"".join(struct.pack(">H", len(x.encode())) + x.encode() + b"\0" * 16 for x in paths)
    off, idx = 32 + len(index), b""
    for x, body in zip(paths, bodies):
        idx += struct.pack(">H", len(x.encode())) + x.encode() + struct.pack(">QQ", off, len(body))
        off += len(body)
    open(f, "wb").write(b"PGBUNDL1" + struct.pack(">IIQQ", 1, len(paths), len(idx), 0) + idx +
                        b"".join(bodies))
{"unpack": unpack, "pack": pack}[sys.argv[1]](sys.argv[2], sys.argv[3])
EOF
hop() { python3 hop.py "$@"; }
# resign_manifest DIR: the manifest of an unpacked handover names its role.json's sha256 again
# and is signed anew by the authority's key a (on court/, where the key is)
resign_manifest() {
    python3 - "$1" <<'EOF'
import hashlib, json, sys
d = sys.argv[1]
m = json.load(open(d + "/handover.json"))
m["signed"]["role_sha256"] = hashlib.sha256(open(d + "/role.json", "rb").read()).hexdigest()
m["signatures"] = []
json.dump(m, open(d + "/handover.json", "w"))
EOF
    expect_rc 0 "$P" sign --in "$1/handover.json" --key court/a.key --out "$1/handover.json"
}

mkdir -p op court holder k other usb
"$B/posgate-keygen" --out usb/root >/dev/null
"$B/posgate-keygen" --out op/feed >/dev/null
"$B/posgate-keygen" --out op/own >/dev/null
for k in a b c; do "$B/posgate-keygen" --out court/$k >/dev/null; done
"$B/posgate-keygen" --list-key --out op/list.key >/dev/null
"$B/posgate-synth" --count 2000 --seed 8 --out op/e1.csv --config-out op/feed.json \
    --subjects-out op/subj.csv
LIST=caac-safety
# ID: a subject listed on the list; ID2: one listed once, on this list only (removed in step 4)
read -r ID SVC ID2 LID2 < <(python3 - op/subj.csv $LIST <<'EOF'
import csv, sys
rows = [r for r in csv.DictReader(open(sys.argv[1])) if r["status"] == "listed"]
mine = [r for r in rows if r["list"] == sys.argv[2]]
once = [r for r in mine[1:] if sum(1 for x in rows if x["id"] == r["id"]) == 1]
print(mine[0]["id"], mine[0]["service"], once[0]["id"], once[0]["listing_id"])
EOF
)
[[ -n ${LID2:-} ]] || fail "no subjects of $LIST in subj.csv"
# the authority's entries: the list's rows; the operator's: every other list's
(head -1 op/e1.csv && grep "^$LIST," op/e1.csv) >court/e1.csv
grep -v "^$LIST," op/e1.csv >op/others.csv
# what the authority gets by its own channels: the list key, the root it trusts, the public feed
cp op/list.key court/list.key
for k in a b c; do cp court/$k.pub op/court-$k.pub; done

# 1. the operator's feed, the list still its own
expect_rc 0 "$P" init --state op/st --config op/feed.json --root-key usb/root.key \
    --threshold 1 --feed-key op/feed.key --list-key op/list.key
expect_rc 0 "$P" update --state op/st --entries op/e1.csv --out op/feed
# the root key leaves the operator's host for its holder's
mv usb/root.* holder/ && rmdir usb
cp op/feed/metadata/1.root.json court/root.json
expect_rc 0 pg init --root op/feed/metadata/1.root.json --list-key op/list.key --jurisdiction CN
expect_rc 0 pg import op/feed
expect_rc 1 pg check --service "$SVC" --id "$ID"
pytuf

# 2. the authority, on its machine
fetch_feed feed.1
sign1() { "$P" authority-sign --list $LIST --feed court/feed.1 --root court/root.json \
    --list-key court/list.key --key court/a.key "$@"; }
expect_rc 4 sign1 --entries court/e1.csv --out court/h1.pgh
expect_err "the feed does not delegate list $LIST"
python3 - court/e1.csv court/bad.csv <<'EOF'
import sys
rows = open(sys.argv[1]).read().splitlines()
f = rows[5].split(","); f[6] = "2026-13-45"  # valid_from: no such month
rows[5] = ",".join(f)
open(sys.argv[2], "w").write("\n".join(rows) + "\n")
EOF
expect_rc 2 sign1 --entries court/bad.csv --out court/h1.pgh --new-keys
expect_err "bad.csv line 6"
(cat court/e1.csv && grep -m1 "^rail-safety," op/e1.csv) >court/other-list.csv
expect_rc 2 sign1 --entries court/other-list.csv --out court/h1.pgh --new-keys
expect_err "a row of list rail-safety; expected rows of list $LIST only"
(head -1 court/e1.csv && sed -n '2~2p' court/e1.csv) >court/half.csv
expect_rc 4 sign1 --entries court/half.csv --out court/h1.pgh --new-keys
expect_err "mass change"
[[ ! -e court/h1.pgh ]] || fail "a refused authority-sign wrote its handover"
expect_rc 0 sign1 --entries court/half.csv --out court/mass.pgh --new-keys --allow-mass-change
expect_rc 0 sign1 --entries court/e1.csv --out court/h1.pgh --new-keys
expect_err "configuration signed"
hand_over h1.pgh

# 3. the operator delegates the list to the authority's key, records it in the root, accepts
expect_rc 0 "$P" delegate --state op/st --list $LIST --key op/court-a.pub --threshold 1
root_authorize
expect_rc 0 "$P" accept --state op/st --handover op/h1.pgh --out op/feed
expect_err "accepted the handover of list $LIST: role list-$LIST version 1 (on 0)"
expect_rc 0 pg import op/feed
expect_rc 1 pg check --service "$SVC" --id "$ID"
grep -q "\"$LIST\"" k/pins.json || fail "the kiosk did not pin $LIST: $(cat k/pins.json)"
pytuf

# 4. the authority's next version: a listing added, one removed
python3 - court/e1.csv court/e2.csv "$LID2" <<'EOF'
import csv, sys
rows = list(csv.reader(open(sys.argv[1])))
body = [r for r in rows[1:] if r[1] != sys.argv[3]]
assert len(body) == len(rows) - 2
new = list(body[0]); new[1] = "caac-saf-2026-900000001"
csv.writer(open(sys.argv[2], "w", newline="")).writerows([rows[0]] + body + [new])
EOF
fetch_feed feed.2
expect_rc 0 "$P" authority-sign --list $LIST --feed court/feed.2 --root court/root.json \
    --entries court/e2.csv --list-key court/list.key --key court/a.key --out court/h2.pgh
expect_err "list $LIST: seq 2"
expect_err "(+1 -1)"
hand_over h2.pgh
expect_rc 0 "$P" accept --state op/st --handover op/h2.pgh --out op/feed
expect_rc 0 pg import op/feed
[[ $(kiosk_seq) == 2 ]] || fail "the kiosk has seq $(kiosk_seq) of $LIST, expected 2"
expect_rc 1 pg check --service "$SVC" --id "$ID"
expect_rc 0 pg check --service air --id "$ID2"
pytuf
# the operator's own update, without rows of the list: left as the authority published it
expect_rc 0 "$P" update --state op/st --entries op/others.csv --out op/feed
expect_err "list $LIST: no rows in others.csv; left as its authority last published it (seq 2"
expect_rc 0 pg import op/feed
[[ $(kiosk_seq) == 2 ]] || fail "the operator's update moved $LIST to seq $(kiosk_seq)"
expect_rc 1 pg check --service "$SVC" --id "$ID"
# ... with rows of it, and no authority key: refused as before
snap
expect_rc 4 "$P" update --state op/st --entries op/e1.csv --out op/feed
expect_err "only its authority changes it"
unchanged "the operator's update with rows of $LIST"

# 5. attacks on accept
snap
expect_rc 4 "$P" accept --state op/st --handover op/h1.pgh --out op/feed
expect_err "built on version 0 of role list-$LIST and makes version 1; this state holds version 2"
expect_err "a replayed or stale handover"
unchanged "the first handover replayed"
expect_rc 4 "$P" accept --state op/st --handover op/h2.pgh --out op/feed
expect_err "was accepted already: a replay"
unchanged "the current handover replayed"
# another feed (another operator, its own feed_id) delegating the same list to the same key
python3 -c 'import json, sys; d = json.load(open(sys.argv[1])); d["feed_id"] = "other-feed"
json.dump(d, open(sys.argv[2], "w"))' op/feed.json other/feed.json
"$B/posgate-keygen" --out other/root >/dev/null && "$B/posgate-keygen" --out other/feed >/dev/null
expect_rc 0 "$P" init --state other/st --config other/feed.json --root-key other/root.key \
    --threshold 1 --feed-key other/feed.key --list-key op/list.key
expect_rc 0 "$P" update --state other/st --entries op/e1.csv --out other/feed
expect_rc 0 "$P" authority-sign --list $LIST --feed other/feed --root other/feed/metadata/1.root.json \
    --entries court/e2.csv --list-key court/list.key --key court/a.key --out court/other.pgh --new-keys
hand_over other.pgh
expect_rc 4 "$P" accept --state op/st --handover op/other.pgh --out op/feed
expect_err "the handover is for feed \"other-feed\", this state publishes feed \"cn-transport-demo\""
unchanged "a handover for another feed"
# a valid third version, and forgeries of it (made where the key is)
(cat court/e2.csv && grep -m1 "^$LIST," court/e1.csv | sed 's/,caac-saf-[^,]*,/,caac-saf-2026-900000002,/') \
    >court/e3.csv
fetch_feed feed.3
expect_rc 0 "$P" authority-sign --list $LIST --feed court/feed.3 --root court/root.json \
    --entries court/e3.csv --list-key court/list.key --key court/a.key --out court/h3.pgh
rm -rf court/x && hop unpack court/h3.pgh court/x
snapshot=$(cd court/x && ls targets/lists/$LIST/*.pgs)
# a target altered after signing
cp -a court/x court/altered
python3 -c 'import sys; p = sys.argv[1]; b = bytearray(open(p, "rb").read()); b[-40] ^= 1
open(p, "wb").write(b)' "court/altered/$snapshot"
hop pack court/altered court/altered.pgh
# a forged role signature, in a manifest the authority's key signed
cp -a court/x court/forged
python3 - court/forged/role.json <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
s = r["signatures"][0]["sig"]
r["signatures"][0]["sig"] = s[:20] + ("0" if s[20] != "0" else "1") + s[21:]
json.dump(r, open(sys.argv[1], "w"))
EOF
resign_manifest court/forged
hop pack court/forged court/forged.pgh
# a target outside the delegated paths (another list's), the role and manifest signed by the key
cp -a court/x court/outside
mkdir -p court/outside/targets/lists/rail-safety
cp "court/x/$snapshot" court/outside/targets/lists/rail-safety/snapshot-9.pgs
python3 - court/outside/role.json "$snapshot" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
t = r["signed"]["targets"]
t["lists/rail-safety/snapshot-9.pgs"] = dict(t[sys.argv[2][len("targets/"):]])
r["signatures"] = []
json.dump(r, open(sys.argv[1], "w"))
EOF
expect_rc 0 "$P" sign --in court/outside/role.json --key court/a.key --out court/outside/role.json
resign_manifest court/outside
hop pack court/outside court/outside.pgh
for f in altered forged outside h3; do hand_over $f.pgh; done
expect_rc 4 "$P" accept --state op/st --handover op/altered.pgh --out op/feed
expect_err "the role lists"
expect_err "the handover carries"
unchanged "a target altered after signing"
expect_rc 4 "$P" accept --state op/st --handover op/forged.pgh --out op/feed
expect_err "role (role.json) is signed by 0 of the 1 key(s)"
unchanged "a forged role signature"
expect_rc 4 "$P" accept --state op/st --handover op/outside.pgh --out op/feed
expect_err "target lists/rail-safety/snapshot-9.pgs is outside the paths delegated to role list-$LIST"
unchanged "a target outside the delegated paths"
# the operator alone re-points the list at its own key and signs a handover with it
rm -rf op.good && cp -a op op.good
expect_rc 0 "$P" delegate --state op/st --list $LIST --key op/own.pub --threshold 1
expect_rc 0 "$P" authority-sign --list $LIST --feed op/feed --root op/feed/metadata/1.root.json \
    --entries court/e3.csv --list-key op/list.key --key op/own.key --out op/own.pgh --new-keys
snap
expect_rc 4 "$P" accept --state op/st --handover op/own.pgh --out op/feed
expect_err "differs from the root's record of its authority"
unchanged "an operator-only re-delegation"
rm -rf op && mv op.good op
# the genuine one
expect_rc 0 "$P" accept --state op/st --handover op/h3.pgh --out op/feed
expect_rc 0 pg import op/feed
[[ $(kiosk_seq) == 3 ]] || fail "the kiosk has seq $(kiosk_seq) of $LIST, expected 3"
expect_rc 1 pg check --service "$SVC" --id "$ID"
pytuf

# the authority changes its list's definition (stale_after), from the feed carried as a bundle
expect_rc 0 "$P" bundle --feed op/feed --out court/feed.c.pgb
python3 - court/feed.c.pgb court/feed-c.json $LIST <<'EOF2'
import json, struct, sys
b = open(sys.argv[1], "rb").read()
count = struct.unpack(">I", b[12:16])[0]
p, members = 32, {}
for _ in range(count):
    (n,) = struct.unpack(">H", b[p:p + 2]); path = b[p + 2:p + 2 + n].decode()
    off, ln = struct.unpack(">QQ", b[p + 2 + n:p + 18 + n]); p += 18 + n
    members[path] = b[off:off + ln]
ts = json.loads(members["metadata/timestamp.json"])["signed"]["meta"]["snapshot.json"]["version"]
sn = json.loads(members["metadata/%d.snapshot.json" % ts])["signed"]["meta"]["targets.json"]["version"]
tg = json.loads(members["metadata/%d.targets.json" % sn])["signed"]["targets"]["config/feed.json"]
d = json.loads(members["targets/config/%s.feed.json" % tg["hashes"]["sha256"]])
next(l for l in d["lists"] if l["id"] == sys.argv[3])["stale_after"] = "30d"
json.dump(d, open(sys.argv[2], "w"), indent=1)
EOF2
expect_rc 0 "$P" authority-sign --list $LIST --feed court/feed.c.pgb --root court/root.json \
    --entries court/e3.csv --list-key court/list.key --key court/a.key --config court/feed-c.json \
    --out court/hc.pgh
expect_err "its configuration signed"
hand_over hc.pgh
snap
expect_rc 4 "$P" accept --state op/st --handover op/hc.pgh --out op/feed
expect_err "differs from what its authority signed"
expect_err "the operator's feed.json must say what the authority signed"
unchanged "a changed list definition the operator's feed.json does not hold"
python3 -c 'import json, sys; d = json.load(open(sys.argv[1]))
next(l for l in d["lists"] if l["id"] == sys.argv[2])["stale_after"] = "30d"
json.dump(d, open(sys.argv[1], "w"), indent=1)' op/st/feed.json $LIST
expect_rc 0 "$P" accept --state op/st --handover op/hc.pgh --out op/feed
expect_err "config/feed.json published anew"
expect_rc 0 pg import op/feed
pg status --json | python3 -c 'import json, sys
l = next(l for l in json.load(sys.stdin)["lists"] if l["id"] == sys.argv[1])
assert l["stale_after"] == "30d", l' $LIST || fail "the kiosk does not hold the new stale_after"
expect_rc 1 pg check --service "$SVC" --id "$ID"
pytuf

# 6. the authority's key replaced: a to b, authorised by the root
expect_rc 0 "$P" delegate --state op/st --list $LIST --key op/court-b.pub --threshold 1
fetch_feed feed.4
expect_rc 0 "$P" authority-sign --list $LIST --feed court/feed.4 --root court/root.json \
    --entries court/e3.csv --list-key court/list.key --key court/b.key --out court/h4.pgh --new-keys
hand_over h4.pgh
snap
expect_rc 4 "$P" accept --state op/st --handover op/h4.pgh --out op/feed
expect_err "differs from the root's record of its authority"
unchanged "a key change the root has not authorised"
root_authorize
expect_rc 0 "$P" accept --state op/st --handover op/h4.pgh --out op/feed
expect_rc 0 pg import op/feed
expect_rc 1 pg check --service "$SVC" --id "$ID"
pytuf
# the removed key signs the next version
fetch_feed feed.5
expect_rc 4 "$P" authority-sign --list $LIST --feed court/feed.5 --root court/root.json \
    --entries court/e3.csv --list-key court/list.key --key court/a.key --out court/h5.pgh
expect_err "are not among role list-$LIST's 1 key(s) in the feed"
expect_rc 0 "$P" authority-sign --list $LIST --feed court/feed.5 --root court/root.json \
    --entries court/e3.csv --list-key court/list.key --key court/a.key --out court/h5.pgh --new-keys
hand_over h5.pgh
snap
expect_rc 4 "$P" accept --state op/st --handover op/h5.pgh --out op/feed
expect_err "manifest (handover.json) is signed by 0 of the 1 key(s) this state delegates list $LIST to"
unchanged "a handover signed by the removed key"
# threshold 2 of b and c; one signature is not enough
expect_rc 0 "$P" delegate --state op/st --list $LIST --key op/court-b.pub --key op/court-c.pub \
    --threshold 2
root_authorize
sign6() { "$P" authority-sign --list $LIST --feed court/feed.5 --root court/root.json \
    --entries court/e3.csv --list-key court/list.key "$@"; }
expect_rc 0 sign6 --key court/b.key --out court/h6.pgh
hand_over h6.pgh
snap
expect_rc 4 "$P" accept --state op/st --handover op/h6.pgh --out op/feed
expect_err "signed by 1 of the 2 key(s) this state delegates list $LIST to (role list-$LIST), expected 2"
unchanged "a handover below the threshold"
expect_rc 0 sign6 --key court/b.key --key court/c.key --out court/h7.pgh --new-keys
hand_over h7.pgh
expect_rc 0 "$P" accept --state op/st --handover op/h7.pgh --out op/feed
expect_rc 0 pg import op/feed
expect_rc 1 pg check --service "$SVC" --id "$ID"
pytuf
# the public feed now says threshold 2: the authority's own side refuses one key
fetch_feed feed.6
expect_rc 4 "$P" authority-sign --list $LIST --feed court/feed.6 --root court/root.json \
    --entries court/e3.csv --list-key court/list.key --key court/b.key --out court/h8.pgh
expect_err "needs signatures of 2 of its keys (threshold), 1 given"
no_authority_key_in_op
echo "keys_handover: ok"
