#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# A kiosk that never sees a network (posgate field-sync, posgate-hub ingest), end to end with
# real processes: a kiosk made by audit_fixture.sh, a collector database (SQLite, or whatever
# with_pg.sh, POSGATE_TEST_PG_URI), sticks as folders.
#   visit 1  stick A carries feed bundles v1 and v2: the newest (v2) is installed; the kiosk's
#            events go onto A as signed batches; the office ingests A twice (nothing stored
#            twice) and writes the ack; then A is lost.
#   visit 2  a fresh stick B: every event not acknowledged (all of them: A's ack never came
#            back) plus the new ones go onto B; the office ingests B (A's events as duplicates).
#   visit 3  B comes back: the kiosk reads the ack, holds nothing unacknowledged, B's batch
#            files are removed; the collector holds every seq once, chain_ok, no gap.
#   refusals a tampered bundle and a tampered batch are refused (exit 4); an ack of another
#            device and one past the kiosk's head are ignored (exit 4), nothing acknowledged.
# Usage: field_sync.sh BUILD_DIR
set -euo pipefail
B=$(cd "${1:?usage: field_sync.sh BUILD_DIR}" && pwd)
HERE=$(cd "$(dirname "$0")" && pwd)
T=$(mktemp -d "${TMPDIR:-/tmp}/posgate-fieldsync-XXXXXX")
trap 'rm -rf "$T"' EXIT
unset POSGATE_DATA_DIR POSGATE_FAKE_NOW
fail() { echo "FAIL: $*" >&2; exit 1; }
expect_rc() { # expect_rc RC CMD...
    local want=$1 rc=0; shift
    "$@" >"$T/out" 2>"$T/err" || rc=$?
    [[ $rc == "$want" ]] || fail "$* exited $rc, expected $want: $(cat "$T/out" "$T/err")"
}
bash "$HERE/audit_fixture.sh" "$B" "$T/fx" >/dev/null
# shellcheck disable=SC1091
source "$T/fx/subjects.env"
cd "$T/fx"
DB=${POSGATE_TEST_PG_URI:-$T/hub.db}
pg() { "$B/posgate" --data-dir "$T/fx/k" "$@"; }
hub() { "$B/posgate-hub" "$@"; }
checks() { # checks N: N checks, every third a DENY
    local i
    for i in $(seq "$1"); do
        if ((i % 3 == 0)); then pg check --service air --id "$HARD" >/dev/null || true
        else pg check --service air --id "$CLEAN" >/dev/null || true; fi
    done
}
head_seq() { pg status --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["audit"]["head_seq"])'; }
acked_seq() { pg status --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["audit"]["acked_seq"])'; }
feed_version() { pg status --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["feed_version"])'; }
DEV=$(pg device-key --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["device_id"])')
pg device-key > device.pub
expect_rc 0 hub enroll --db "$DB" --pub device.pub

# two bundles: v1 (installed) and v2, which also lists CLEAN
V1=$(feed_version)
"$B/posgate-publish" bundle --feed feed --out v1.bundle >/dev/null
echo "caac-safety,CAAC-NEW-1,restrict,cn_rid,${CLEAN#cn_rid:},air-safety,2020-01-01,," >> entries.csv
"$B/posgate-publish" update --state st --entries entries.csv --out feed --allow-mass-change \
    >/dev/null 2>&1
"$B/posgate-publish" bundle --feed feed --out v2.bundle >/dev/null

# usage errors
expect_rc 2 pg field-sync
expect_rc 2 pg field-sync "$T/none"
expect_rc 2 hub ingest "$T/fx" --db "$DB"

# ---- visit 1: stick A ----
checks 12
H1=$(head_seq)
mkdir "$T/A"
cp v2.bundle "$T/A/b-new.bundle"   # the newest sorts first by name: chosen by version
cp v1.bundle "$T/A/z-old.bundle"
expect_rc 0 pg field-sync "$T/A"
grep -q "installed version" "$T/out" || fail "visit 1 did not install: $(cat "$T/out")"
V2=$(feed_version)
((V2 > V1)) || fail "feed version $V2 after field-sync, expected newer than $V1"
rc=0; pg check --service air --id "$CLEAN" >/dev/null || rc=$?
[[ $rc == 1 ]] || fail "CLEAN is listed in v2: check exited $rc, expected 1 (DENY)"
ls "$T/A/posgate/$DEV"/batch-*.json >/dev/null || fail "no batch on stick A"
[[ $(acked_seq) == 0 ]] || fail "nothing acknowledged yet"
# a tampered batch on a copy of the stick is refused and acknowledges nothing new
cp -r "$T/A" "$T/A-forged"
f=$(ls "$T/A-forged/posgate/$DEV"/batch-*.json | head -1)
python3 - "$f" <<'PY'
import json, sys
b = json.load(open(sys.argv[1]))
b["events"][0]["operator"] = "forged"
open(sys.argv[1], "w").write(json.dumps(b))
PY
expect_rc 4 hub ingest "$T/A-forged" --db "$DB"
# the office: twice, the second time nothing new
expect_rc 0 hub ingest "$T/A" --db "$DB" --json
python3 - "$T/out" "$DEV" "$H1" <<'PY'
import json, sys
r = [json.loads(l) for l in open(sys.argv[1])]
assert len(r) == 1 and r[0]["device_id"] == sys.argv[2], r
assert r[0]["stored"] == int(sys.argv[3]) and r[0]["duplicates"] == 0, r
assert r[0]["acked_seq"] == int(sys.argv[3]) and r[0]["error"] is None, r
PY
expect_rc 0 hub ingest "$T/A" --db "$DB" --json
python3 -c 'import json,sys; r=json.loads(open(sys.argv[1]).read()); assert r["stored"]==0 and r["duplicates"]==int(sys.argv[2]), r' "$T/out" "$H1"
[[ -f $T/A/posgate/$DEV/ack.json ]] || fail "no ack on stick A"
# the status report came with it: the kiosk's own fields, signed, the sync source a bundle
hub devices --db "$DB" --json > devices.json
python3 - devices.json "$DEV" "$V2" "$H1" <<'PY'
import json, sys
d = [x for x in json.load(open(sys.argv[1])) if x["device_id"] == sys.argv[2]]
assert len(d) == 1, d
r = d[0]["report"]
assert r["software_version"] and r["reported_at_us"] > 0, r
st = r["status"]
assert st["feed_version"] == int(sys.argv[3]), st
assert st["audit"]["unsent"] == int(sys.argv[4]) and st["audit"]["acked_seq"] == 0, st["audit"]
assert st["audit"]["oldest_unsent_age_s"] is not None, st["audit"]
assert st["list_key"] == "ok" and st["metadata_expired"] is False and "key_filter" in st, st
assert all("seq" in l and "digest" in l and "data_age_s" in l for l in st["lists"]), st["lists"]
assert r["sync"]["source"] == "bundle" and r["sync"]["result"] == "ok", r["sync"]
assert r["clock_offset_s"] is None, r
PY
hub devices --db "$DB" | grep -q "^$DEV software" || fail "devices (text): $(hub devices --db "$DB")"
cp "$T/A/posgate/$DEV/status.json" old-status.json
rm -rf "$T/A"   # lost on the way back

# ---- visit 2: a fresh stick B ----
checks 7
H2=$(head_seq)
mkdir "$T/B"
expect_rc 0 pg field-sync "$T/B"
grep -q "no bundle" "$T/out" || fail "visit 2: $(cat "$T/out")"
python3 - "$T/B/posgate/$DEV" "$H2" <<'PY'
import glob, json, sys
seqs = []
for f in sorted(glob.glob(sys.argv[1] + "/batch-*.json")):
    seqs += [e["seq"] for e in json.load(open(f))["events"]]
assert seqs == list(range(1, int(sys.argv[2]) + 1)), seqs
PY
expect_rc 0 hub ingest "$T/B" --db "$DB" --json
python3 -c 'import json,sys; r=json.loads(open(sys.argv[1]).read()); assert r["stored"]==int(sys.argv[2])-int(sys.argv[3]) and r["duplicates"]==int(sys.argv[3]) and r["acked_seq"]==int(sys.argv[2]), r' "$T/out" "$H2" "$H1"

# a replayed older report is kept in the history but does not become the latest; an edited
# one does not verify
NEW=$(hub devices --db "$DB" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["report"]["reported_at_us"])')
mkdir -p "$T/R/posgate/$DEV"
cp old-status.json "$T/R/posgate/$DEV/status.json"
expect_rc 0 hub ingest "$T/R" --db "$DB" --json
grep -q '"status_report":"older"' "$T/out" || fail "replayed report: $(cat "$T/out")"
AT=$(hub devices --db "$DB" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["report"]["reported_at_us"])')
[[ $AT == "$NEW" ]] || fail "a replayed report replaced the latest ($AT, expected $NEW)"
python3 - "$T/R/posgate/$DEV/status.json" <<'PY'
import json, sys
e = json.load(open(sys.argv[1]))
r = json.loads(e["report"]); r["reported_at_us"] += 10**12; r["status"]["feed_version"] = 999
e["report"] = json.dumps(r)
open(sys.argv[1], "w").write(json.dumps(e))
PY
expect_rc 4 hub ingest "$T/R" --db "$DB"
grep -q "signature" "$T/err" || fail "forged report: $(cat "$T/err")"
AT=$(hub devices --db "$DB" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["report"]["reported_at_us"])')
[[ $AT == "$NEW" ]] || fail "a forged report replaced the latest"

# acks that are not this kiosk's are ignored
cp -r "$T/B" "$T/B-other"
python3 - "$T/B-other/posgate/$DEV/ack.json" <<'PY'
import json, sys
a = json.load(open(sys.argv[1])); a["device_id"] = "0" * 32
open(sys.argv[1], "w").write(json.dumps(a))
PY
expect_rc 4 pg field-sync "$T/B-other"
[[ $(acked_seq) == 0 ]] || fail "an ack of another device was taken"
python3 - "$T/B-other/posgate/$DEV/ack.json" "$DEV" <<'PY'
import json, sys
a = json.load(open(sys.argv[1])); a["device_id"] = sys.argv[2]; a["acked_seq"] = 10**9
open(sys.argv[1], "w").write(json.dumps(a))
PY
expect_rc 4 pg field-sync "$T/B-other"
[[ $(acked_seq) == 0 ]] || fail "an ack past the head was taken"

# ---- visit 3: B comes back ----
expect_rc 0 pg field-sync "$T/B"
grep -q "nothing to deliver" "$T/out" || fail "visit 3: $(cat "$T/out")"
[[ $(acked_seq) == "$H2" ]] || fail "acked_seq $(acked_seq) after visit 3, expected $H2"
if ls "$T/B/posgate/$DEV"/batch-*.json >/dev/null 2>&1; then fail "batches left on B"; fi

# the collector: every seq once, chain intact, no gap
hub stats --db "$DB" --json > stats.json
python3 - stats.json "$DEV" "$H2" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
d = [x for x in s["devices"] if x["device_id"] == sys.argv[2]][0]
n = int(sys.argv[3])
assert d["last_seq"] == n and d["held_seq"] == n and d["events"] == n, d
assert d["gaps"] == 0 and d["chain_ok"] is True, d
PY

# a tampered bundle is refused (exit 4), and the audit exchange still happens
mkdir "$T/C"
python3 - v2.bundle "$T/C/bad.bundle" <<'PY'
import sys
b = bytearray(open(sys.argv[1], "rb").read())
i = b.find(b'"_type":"timestamp"')
assert i > 0
b[i + 10:i + 11] = b"T"
open(sys.argv[2], "wb").write(bytes(b))
PY
checks 1
expect_rc 4 pg field-sync "$T/C"
ls "$T/C/posgate/$DEV"/batch-*.json >/dev/null || fail "no batch written after a refused bundle"
echo "field_sync: ok (device $DEV, $H2 events over two sticks, one lost)"
