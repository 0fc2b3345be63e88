#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The kiosk command line end to end with the real binaries: init, import from a directory and
# from a bundle (the same result), check exit codes for ALLOW / DENY / REFER / invalid input,
# status and verify; verify detecting a store edited behind posgate's back; a tampered bundle
# and a tampered feed refused with exit 4 leaving the installed version serving; an expired
# feed refused unless --accept-expired; --help on every command.
# Usage: kiosk.sh BUILD_DIR
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
B=${1:?usage: kiosk.sh BUILD_DIR}
T=$(mktemp -d "${TMPDIR:-/tmp}/posgate-kiosk-XXXXXX")
trap 'rm -rf "$T"' EXIT
cd "$T"
unset POSGATE_DATA_DIR POSGATE_FAKE_NOW
# shared helpers: fail, expect_rc, free_port, wait_for
. "$HERE/lib.sh"
pg() { "$B/posgate" --data-dir "$T/$1" "${@:2}"; }
subject() { # subject SITUATION TYPE_PREFIX FIELD
    awk -F, -v s="$1" -v t="$2" -v f="$3" \
        '$1 == s && index($2, t) == 1 { gsub(/"/, "", $0); print (f == "id" ? $2 : $3); exit }' subj.csv
}

"$B/posgate-keygen" --out root >/dev/null
"$B/posgate-keygen" --out feed >/dev/null
"$B/posgate-keygen" --list-key --out list.key >/dev/null
"$B/posgate-synth" --count 3000 --seed 7 --out e1.csv --config-out feed.json --subjects-out subj.csv
"$B/posgate-publish" init --state st --config feed.json --root-key root.key --threshold 1 \
    --feed-key feed.key --list-key list.key >/dev/null
"$B/posgate-publish" update --state st --entries e1.csv --out feed >/dev/null 2>&1
"$B/posgate-publish" bundle --feed feed --out feed.bundle >/dev/null

# --help everywhere, usage errors
for c in init import check status verify; do
    expect_rc 0 "$B/posgate" "$c" --help
    grep -q "usage: posgate" out.txt || fail "$c --help printed no usage"
done
expect_rc 0 "$B/posgate" --help
expect_rc 2 "$B/posgate"
expect_rc 2 "$B/posgate" frobnicate
expect_rc 5 pg none check --service air --id cn_rid:11010519491231002X
grep -q "posgate init" err.txt || fail "check without init should say to run init: $(cat err.txt)"

# init: two kiosks, one imports the directory, the other the bundle
expect_rc 2 pg k1 init --root feed/metadata/1.root.json --list-key list.key
expect_rc 2 pg k1 init --root feed/metadata/1.root.json --list-key list.key --jurisdiction CHINA
expect_rc 0 pg k1 init --root feed/metadata/1.root.json --list-key list.key --jurisdiction CN
[[ $(stat -c %a k1) == 700 ]] || fail "data dir mode $(stat -c %a k1)"
[[ $(stat -c %a k1/list.key) == 600 ]] || fail "list.key mode $(stat -c %a k1/list.key)"
expect_rc 2 pg k1 init --root feed/metadata/1.root.json --list-key list.key --jurisdiction CN
grep -q "already initialised" err.txt || fail "second init: $(cat err.txt)"
expect_rc 0 pg k2 init --root feed/metadata/1.root.json --list-key list.key --jurisdiction CN
# a root not signed by its own keys is refused
sed 's/"version": *1/"version":1 /' feed/metadata/1.root.json | python3 -c '
import json,sys; d=json.load(sys.stdin); d["signed"]["expires"]="2099-01-01T00:00:00Z"; print(json.dumps(d))' > forged-root.json
expect_rc 4 pg k9 init --root forged-root.json --list-key list.key --jurisdiction CN

# before any import a check cannot answer
expect_rc 5 pg k1 check --service air --id cn_rid:11010519491231002X
expect_rc 0 pg k1 import feed
grep -q "installed feed version 1" out.txt || fail "import said: $(cat out.txt)"
expect_rc 0 pg k2 import feed.bundle
pg k1 status --json | python3 -c 'import json,sys; d=json.load(sys.stdin); print(json.dumps(sorted((l["id"],l["seq"],l["entries"],l["digest"]) for l in d["lists"])))' > s1.json
pg k2 status --json | python3 -c 'import json,sys; d=json.load(sys.stdin); print(json.dumps(sorted((l["id"],l["seq"],l["entries"],l["digest"]) for l in d["lists"])))' > s2.json
cmp -s s1.json s2.json || fail "bundle import differs from directory import: $(cat s1.json) vs $(cat s2.json)"
grep -q '"seq"' <(pg k1 status --json) || fail "status --json has no lists"
pg k1 status --json | python3 -c '
import json,sys; d=json.load(sys.stdin)
for k in ("feed_version","issued_at","expires_at","root_version","lists"): assert k in d, k
for l in d["lists"]:
    for k in ("id","seq","entries","digest","issued_at"): assert k in l, k
assert d["feed_version"] == 1' || fail "status --json fields"

# decisions: the same on both kiosks
LISTED=$(subject listed "" id) LSVC=$(subject listed "" service)
CLEAN=$(subject clean cn_rid: id)
EXEMPT=$(subject exempt "" id) ESVC=$(subject exempt "" service)
NAME=$(subject name_only "" id) NSVC=$(subject name_only "" service)
[[ -n $LISTED && -n $CLEAN && -n $EXEMPT && -n $NAME ]] || fail "subjects missing in subj.csv"
for k in k1 k2; do
    expect_rc 1 pg $k check --service "$LSVC" --id "$LISTED"
    grep -q "Legal basis" out.txt || fail "DENY without its notice: $(cat out.txt)"
    expect_rc 0 pg $k check --service rail.hsr --id cn_rid:11010519491231002X
    expect_rc 0 pg $k check --service "$ESVC" --id "$EXEMPT"
    expect_rc 3 pg $k check --service "$NSVC" --id "$NAME"
done
expect_rc 1 pg k1 check --service "$LSVC" --id "$LISTED" --json
python3 -c '
import json,sys; d=json.load(open("out.txt"))
assert d["decision"] == "deny", d
for k in ("decision_id","service","reasons","feed_version","data_age_s","notice"): assert k in d, k
r = d["reasons"][0]
for k in ("list","listing_id","reason","authority","legal_basis","contest","valid_from","valid_until","detail"): assert k in r, k
assert r["legal_basis"] and r["contest"] and r["listing_id"]' || fail "check --json fields"
# invalid input is exit 2, never an allow
expect_rc 0 pg k1 check --service rail.hsr --id "$CLEAN"
BAD=${CLEAN%?}$([[ ${CLEAN: -1} == 0 ]] && echo 1 || echo 0)
expect_rc 2 pg k1 check --service rail.hsr --id "$BAD"
grep -q "check character" err.txt || fail "bad check character message: $(cat err.txt)"
expect_rc 2 pg k1 check --service no.such.service --id "$LISTED"
expect_rc 2 pg k1 check --service "$LSVC"
expect_rc 2 pg k1 check --service "$LSVC" --id "$LISTED" --at yesterday
expect_rc 2 pg k1 check --service "$LSVC" --name "Li Lei"

# verify passes, then detects a row edited behind posgate's back
expect_rc 0 pg k1 verify
expect_rc 0 pg k1 verify --json
grep -q '"ok":true' out.txt || fail "verify --json: $(cat out.txt)"
cp -r k2 k2-edited
python3 - k2-edited/store.db <<'PY'
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
cols = [r[1] for r in db.execute("PRAGMA table_info(entries)")]
col = "f" if "f" in cols else cols[-1]
db.execute(f"UPDATE entries SET {col} = {col} + 1 WHERE rowid IN (SELECT rowid FROM entries LIMIT 1)" if False else
           f"UPDATE entries SET {col} = {col} + 1 WHERE k = (SELECT k FROM entries LIMIT 1)")
db.commit()
PY
expect_rc 4 pg k2-edited verify
expect_rc 4 pg k2-edited verify --json
grep -q '"ok":false' out.txt || fail "verify --json after an edit: $(cat out.txt)"

# a tampered bundle is refused and the installed version keeps serving
cp feed.bundle bad.bundle
size=$(stat -c %s bad.bundle)
flip() { # flip FILE OFFSET: invert one byte (writing a fixed value may leave it unchanged)
    python3 -c 'import sys; f=open(sys.argv[1],"r+b"); f.seek(int(sys.argv[2])); b=f.read(1); f.seek(int(sys.argv[2])); f.write(bytes([b[0] ^ 0xff]))' "$1" "$2"
}
flip bad.bundle $((size - 100))
# (a kiosk already at this version reads nothing of the bundle's targets: a fresh one does)
expect_rc 0 pg k4 init --root feed/metadata/1.root.json --list-key list.key --jurisdiction CN
pg k4 status --json > before.json
expect_rc 4 pg k4 import bad.bundle
grep -q "nothing changed" err.txt || fail "tampered bundle message: $(cat err.txt)"
pg k4 status --json > after.json
cmp -s before.json after.json || fail "a refused import changed the status"
expect_rc 5 pg k4 check --service "$LSVC" --id "$LISTED"
expect_rc 0 pg k2 import bad.bundle
expect_rc 1 pg k2 check --service "$LSVC" --id "$LISTED"
# a tampered target in a feed directory is refused too
cp -r feed badfeed
f=$(ls badfeed/targets/lists/*/*.pgs | head -1)
flip "$f" 40
expect_rc 4 pg k4 import badfeed
grep -q "target lists/" err.txt || fail "tampered target message: $(cat err.txt)"
expect_rc 0 pg k1 verify

# an update: the listed subject is lifted; the delta is taken; both import paths agree
LISTING=$(awk -F, -v id="$LISTED" '$1 == "listed" && $2 == id { print $5; exit }' subj.csv)
grep -v ",$LISTING," e1.csv > e2.csv
"$B/posgate-publish" update --state st --entries e2.csv --out feed >/dev/null 2>&1
"$B/posgate-publish" bundle --feed feed --out feed2.bundle >/dev/null
expect_rc 0 pg k1 import feed
grep -q "1 delta" out.txt || fail "expected a delta: $(cat out.txt)"
# the delta's one removal is merged into the main table before import returns
grep -q "merged 1 delta row(s) into the main table" out.txt || fail "no merge: $(cat out.txt)"
expect_rc 0 pg k1 status --json
grep -q '"unmerged_rows":0' out.txt || fail "status after import: $(cat out.txt)"
grep -q '"key_filter":"ok"' out.txt || fail "key filter after import: $(cat out.txt)"
expect_rc 0 pg k1 compact --json
grep -q '"ok":true,"merged_rows":0,"filter_keys":0,' out.txt || fail "compact after import: $(cat out.txt)"
# the key filter: without it checks read the store alone (same answers); compact rebuilds it,
# and verify finds a filter that lacks keys of the store
STILL=$(awk -F, -v id="$LISTED" '$1 == "listed" && $2 != id { print $2 "," $3; exit }' subj.csv)
STILL_ID=${STILL%,*} STILL_SVC=${STILL#*,}
[[ -n $STILL_ID ]] || fail "no second listed subject in subj.csv"
rm k1/store.db.filter
expect_rc 0 pg k1 status --json
grep -q '"key_filter":"missing"' out.txt || fail "status without the key filter: $(cat out.txt)"
expect_rc 1 pg k1 check --service "$STILL_SVC" --id "$STILL_ID"
expect_rc 0 pg k1 check --service "$LSVC" --id "$LISTED"
expect_rc 0 pg k1 check --service rail.hsr --id "$CLEAN"
expect_rc 0 pg k1 compact --json
grep -Eq '"ok":true,"merged_rows":0,"filter_keys":[1-9]' out.txt || fail "compact rebuild: $(cat out.txt)"
expect_rc 0 pg k1 status --json
grep -q '"key_filter":"ok"' out.txt || fail "key filter after compact: $(cat out.txt)"
expect_rc 1 pg k1 check --service "$STILL_SVC" --id "$STILL_ID"
expect_rc 0 pg k1 check --service rail.hsr --id "$CLEAN"
python3 - k1/store.db.filter <<'PY'
import sys
with open(sys.argv[1], "r+b") as f:
    f.seek(4096)
    n = len(f.read())
    f.seek(4096)
    f.write(bytes(n))
PY
expect_rc 4 pg k1 verify
grep -q "key filter" err.txt || fail "verify of an emptied key filter: $(cat err.txt)"
# checks refuse it (a spot check of a few keys of the store) and answer from the store
expect_rc 1 pg k1 check --service "$STILL_SVC" --id "$STILL_ID"
expect_rc 0 pg k1 status --json
grep -q '"key_filter":"damaged"' out.txt || fail "status with an emptied key filter: $(cat out.txt)"
expect_rc 0 pg k1 compact --json
grep -Eq '"filter_keys":[1-9]' out.txt || fail "compact over a damaged filter: $(cat out.txt)"
expect_rc 0 pg k1 verify
# one bit of the blocks lost on disk: its checksum finds it (a spot check of a few keys would
# most likely not); status, verify and compact as above
python3 - k1/store.db.filter <<'PY'
import sys
with open(sys.argv[1], "r+b") as f:
    data = f.read()
    i = next(i for i in range(4096, len(data)) if data[i] != 0)
    f.seek(i)
    f.write(bytes([data[i] & (data[i] - 1)]))  # clears its lowest set bit
PY
expect_rc 0 pg k1 status --json
grep -q '"key_filter":"damaged"' out.txt || fail "status with one bit of the key filter lost: $(cat out.txt)"
expect_rc 4 pg k1 verify
grep -q "checksum" err.txt || fail "verify with one bit of the key filter lost: $(cat err.txt)"
expect_rc 1 pg k1 check --service "$STILL_SVC" --id "$STILL_ID"
expect_rc 0 pg k1 compact --json
expect_rc 0 pg k1 verify
expect_rc 0 pg k1 compact --help
grep -q "usage: posgate" out.txt || fail "compact --help"
expect_rc 2 pg k1 compact --bogus
expect_rc 0 pg k2 import feed2.bundle
expect_rc 0 pg k1 check --service "$LSVC" --id "$LISTED"
expect_rc 0 pg k2 check --service "$LSVC" --id "$LISTED"
expect_rc 0 pg k1 verify
# importing the same version again changes nothing; the older bundle is a rollback
expect_rc 0 pg k1 import feed
expect_rc 4 pg k2 import feed.bundle

# expiry: a kiosk whose clock is past the metadata's expiry refuses it unless told
expect_rc 0 pg k3 init --root feed/metadata/1.root.json --list-key list.key --jurisdiction CN
FUTURE=$(( $(date +%s) + 40 * 86400 ))
if [[ ${POSGATE_TEST_HOOKS:-0} == 1 ]]; then
    POSGATE_FAKE_NOW=$FUTURE expect_rc 4 pg k3 import feed2.bundle
    grep -q -- "--accept-expired" err.txt || fail "expired message: $(cat err.txt)"
    POSGATE_FAKE_NOW=$FUTURE expect_rc 0 pg k3 import --accept-expired feed2.bundle
    grep -q "expired metadata accepted" out.txt || fail "accept-expired said: $(cat out.txt)"
    # not newer than installed: refused even with the flag
    POSGATE_FAKE_NOW=$FUTURE expect_rc 4 pg k3 import --accept-expired feed2.bundle
    grep -q "not newer" err.txt || fail "expired, not newer: $(cat err.txt)"
else
    # A build without test hooks (what ships) reads the real clock whatever POSGATE_FAKE_NOW
    # says: the feed is not expired, and a check is not frozen in the future.
    POSGATE_FAKE_NOW=$FUTURE expect_rc 0 pg k3 import feed2.bundle
    grep -q "expired metadata accepted" out.txt && fail "a shipped build took POSGATE_FAKE_NOW"
    POSGATE_FAKE_NOW=$FUTURE expect_rc 0 pg k3 status --json
    python3 - "$FUTURE" out.txt <<'PY' || fail "status under POSGATE_FAKE_NOW: $(cat out.txt)"
import json, sys, time
s = json.load(open(sys.argv[2]))
assert not s.get("clock_fault"), s
PY
fi
echo "kiosk: all checks passed"
