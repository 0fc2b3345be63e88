#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# posgate-publish end to end with the real binaries: keygen, synth, init, update; the feed's
# files; a mass change refused with exit 4 leaving the feed byte for byte unchanged, then
# accepted with --allow-mass-change; a CSV row error naming its line and publishing nothing;
# refresh; delegation (a delegated list changes only with its authority's key); and a bundle
# holding every root, the current metadata and every listed target.
# Usage: publish.sh BUILD_DIR
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
B=${1:?usage: publish.sh BUILD_DIR}
T=$(mktemp -d "${TMPDIR:-/tmp}/posgate-publish-XXXXXX")
trap 'rm -rf "$T"' EXIT
cd "$T"
# shared helpers: fail, expect_rc, free_port, wait_for
. "$HERE/lib.sh"

"$B/posgate-keygen" --out root >/dev/null
"$B/posgate-keygen" --out feed >/dev/null
"$B/posgate-keygen" --out auth >/dev/null
"$B/posgate-keygen" --list-key --out list.key >/dev/null
# README's `posgate-keygen --out keys/root` with no keys/ yet: keygen makes it, mode 0700
"$B/posgate-keygen" --out keys/root >/dev/null || fail "keygen --out keys/root without keys/"
[[ $(stat -c %a keys) == 700 && -f keys/root.key && -f keys/root.pub ]] ||
    fail "keys/ not made 0700 with root.key and root.pub: $(ls -la keys)"
"$B/posgate-synth" --count 2000 --seed 11 --out e1.csv --config-out feed.json --subjects-out subj.csv
[[ $(wc -l <e1.csv) == 2001 ]] || fail "synth wrote $(wc -l <e1.csv) lines, expected 2001"
grep -q '^listed,' subj.csv || fail "no listed subject in subj.csv"
grep -q '^clean,' subj.csv || fail "no clean subject in subj.csv"
# deterministic from the seed
"$B/posgate-synth" --count 2000 --seed 11 --out again.csv
cmp -s e1.csv again.csv || fail "posgate-synth is not deterministic"
"$B/posgate-synth" --count 2000 --seed 12 --out other.csv
! cmp -s e1.csv other.csv || fail "posgate-synth ignores the seed"

expect_rc 0 "$B/posgate-publish" init --state st --config feed.json --root-key root.key \
    --threshold 1 --feed-key feed.key --list-key list.key
expect_rc 2 "$B/posgate-publish" init --state st --config feed.json --root-key root.key \
    --threshold 1 --feed-key feed.key --list-key list.key
grep -q "already holds" err.txt || fail "second init: $(cat err.txt)"
expect_rc 2 "$B/posgate-publish" update --state st --out feed
grep -q -- "--entries is required" err.txt || fail "missing --entries: $(cat err.txt)"
for c in init update refresh delegate bundle; do
    expect_rc 0 "$B/posgate-publish" $c --help
    grep -q "usage: posgate-publish $c" out.txt || fail "$c --help"
done

# first publication
expect_rc 0 "$B/posgate-publish" update --state st --entries e1.csv --out feed
for f in feed/metadata/1.root.json feed/metadata/root.json feed/metadata/timestamp.json \
         feed/metadata/1.snapshot.json feed/metadata/1.targets.json; do
    [[ -s $f ]] || fail "missing $f"
done
ls feed/targets/config/*.feed.json >/dev/null || fail "no config target"
for l in spc-enforcement caac-safety rail-safety; do
    ls feed/targets/lists/$l/*.snapshot-1.pgs >/dev/null || fail "no snapshot-1 of $l"
done
grep -q '"custom":{"digest":"[0-9a-f]\{64\}","entries":[0-9]*,"ident_format":2,"issued_at":"[0-9T:Z-]*","list":"caac-safety","seq":1,"type":"snapshot"}' \
    feed/metadata/1.targets.json || fail "snapshot custom fields"
if grep -q "$(xxd -p -c 64 list.key 2>/dev/null || od -An -tx1 list.key | tr -d ' \n')" -r feed; then
    fail "the list key is in the feed"
fi

# a small change: 5% more rows -> deltas
"$B/posgate-synth" --count 2100 --seed 11 --out e2.csv
expect_rc 0 "$B/posgate-publish" update --state st --entries e2.csv --out feed
ls feed/targets/lists/spc-enforcement/*.delta-1-2.pgd >/dev/null || fail "no delta-1-2"
grep -q '"base_seq":1,' feed/metadata/2.targets.json || fail "delta custom base_seq"

# a mass change is refused and publishes nothing
"$B/posgate-synth" --count 2600 --seed 11 --out e3.csv
cp -a feed feed.before
cp -a st st.before
expect_rc 4 "$B/posgate-publish" update --state st --entries e3.csv --out feed
grep -q "list spc-enforcement: [0-9]* additions + 0 removals" err.txt || fail "mass msg: $(cat err.txt)"
grep -q -- "--allow-mass-change" err.txt || fail "mass msg names no option"
grep -q "more than 10% and at least 100 rows" err.txt || fail "mass msg names no marks: $(cat err.txt)"
diff -r feed feed.before >/dev/null || fail "a refused update changed the feed"
diff -r --exclude=work st st.before >/dev/null || fail "a refused update changed the state"
# removals count too: dropping 20% of the rows is refused as well
head -n 1601 e2.csv >e4.csv
expect_rc 4 "$B/posgate-publish" update --state st --entries e4.csv --out feed
grep -q "removals" err.txt || fail "removal mass msg"
diff -r feed feed.before >/dev/null || fail "a refused removal changed the feed"
expect_rc 0 "$B/posgate-publish" update --state st --entries e3.csv --out feed --allow-mass-change
# a list a stopped run left pending is republished whole, but a mass change is still refused
cp -a st stp; cp -a feed feedp
python3 - stp/publish.json <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
for l in d["lists"]:
    l["pending"] = 1
json.dump(d, open(sys.argv[1], "w"))
PY
"$B/posgate-synth" --count 3600 --seed 11 --out e3p.csv
expect_rc 4 "$B/posgate-publish" update --state stp --entries e3p.csv --out feedp
grep -q "list spc-enforcement: [0-9]* additions" err.txt || fail "pending mass msg: $(cat err.txt)"
expect_rc 0 "$B/posgate-publish" update --state stp --entries e3p.csv --out feedp --allow-mass-change
rm -rf stp feedp
# a small list: removing 1 of 5 rows is past 10% but under 100 rows, not a mass change
cat > small.json <<'JSON'
{"feed_id": "small", "services": ["air"],
 "lists": [{"id": "few", "authority": "A", "jurisdictions": ["CN"], "stale_after": "7d",
            "stale_policy": "refer"}],
 "reasons": [{"id": "r", "authority": "A", "legal_basis": "L", "contest": "C", "scope": ["air"]}]}
JSON
printf 'list,listing_id,kind,id_type,id_value,reason,valid_from,valid_until,scope\n' > small5.csv
for n in 1 2 3 4 5; do
    printf 'few,F-%s,restrict,national_id,FR:X123456%s,r,2020-01-01,,\n' "$n" "$n" >> small5.csv
done
head -n 5 small5.csv > small4.csv
expect_rc 0 "$B/posgate-publish" init --state sts --config small.json --root-key root.key \
    --threshold 1 --feed-key feed.key --list-key list.key
expect_rc 0 "$B/posgate-publish" update --state sts --entries small5.csv --out feeds
expect_rc 0 "$B/posgate-publish" update --state sts --entries small4.csv --out feeds
# a list's own marks (mass_change in feed.json): rows 1 makes removing 1 of 4 a mass change
python3 -c '
import json; c = json.load(open("small.json"))
c["lists"][0]["mass_change"] = {"percent": 20, "rows": 1}
json.dump(c, open("small2.json", "w"))'
expect_rc 0 "$B/posgate-publish" init --state sts2 --config small2.json --root-key root.key \
    --threshold 1 --feed-key feed.key --list-key list.key
expect_rc 0 "$B/posgate-publish" update --state sts2 --entries small4.csv --out feeds2
head -n 4 small4.csv > small3.csv
expect_rc 4 "$B/posgate-publish" update --state sts2 --entries small3.csv --out feeds2
grep -q "more than 20% and at least 1 rows (mass_change" err.txt || fail "list marks: $(cat err.txt)"
expect_rc 0 "$B/posgate-publish" update --state sts2 --entries small3.csv --out feeds2 \
    --allow-mass-change
# marks out of range are refused with the key named
python3 -c '
import json; c = json.load(open("small.json"))
c["lists"][0]["mass_change"] = {"percent": 0}
json.dump(c, open("small3.json", "w"))'
expect_rc 2 "$B/posgate-publish" init --state sts3 --config small3.json --root-key root.key \
    --threshold 1 --feed-key feed.key --list-key list.key
grep -q "lists\[0\].mass_change.percent: expected an integer from 1 to 100" err.txt ||
    fail "mass_change range: $(cat err.txt)"
ls feed/targets/lists/spc-enforcement/*.delta-2-3.pgd >/dev/null || fail "no delta-2-3"
grep -q '"version":3' feed/metadata/timestamp.json || fail "timestamp version after 3 updates"

# a bad row names its line and publishes nothing
cp e3.csv bad.csv
sed -i '17s/,restrict,/,forbid,/' bad.csv
rm -rf feed.before; cp -a feed feed.before
expect_rc 2 "$B/posgate-publish" update --state st --entries bad.csv --out feed
grep -q 'bad.csv line 17: kind "forbid": expected "restrict" or "exempt"' err.txt ||
    fail "row error: $(cat err.txt)"
grep -q "nothing was published" err.txt || fail "row error does not say nothing was published"
printf 'spc-enforcement,Z-1,restrict,cn_rid,110105194912310025,court-enforcement,2020-01-01,,\n' >>bad.csv
sed -i '17s/,forbid,/,restrict,/' bad.csv
expect_rc 2 "$B/posgate-publish" update --state st --entries bad.csv --out feed
grep -q "bad.csv line 2602: id_value: cn_rid: check character" err.txt || fail "ident error: $(cat err.txt)"
diff -r feed feed.before >/dev/null || fail "a rejected CSV changed the feed"
# the same subject and listing twice
{ cat e3.csv; sed -n '2p' e3.csv; } >dup.csv
expect_rc 2 "$B/posgate-publish" update --state st --entries dup.csv --out feed
grep -q "lines 2 and 2602: the same subject" err.txt || fail "duplicate: $(cat err.txt)"

# refresh: a new timestamp, nothing else
expect_rc 0 "$B/posgate-publish" refresh --state st --out feed --expires 2h
grep -q '"version":4' feed/metadata/timestamp.json || fail "refresh did not sign timestamp 4"
[[ ! -e feed/metadata/4.targets.json ]] || fail "refresh signed a new targets"
expect_rc 2 "$B/posgate-publish" refresh --state st --out feed --expires soon

# delegation: the list's role needs the authority's key
expect_rc 0 "$B/posgate-publish" delegate --state st --list rail-safety --key auth.pub --threshold 1
expect_rc 4 "$B/posgate-publish" update --state st --entries e3.csv --out feed
grep -q "list rail-safety is delegated" err.txt || fail "delegated without key: $(cat err.txt)"
expect_rc 0 "$B/posgate-publish" update --state st --entries e3.csv --out feed \
    --authority-key rail-safety=auth.key
ls feed/metadata/*.list-rail-safety.json >/dev/null || fail "no delegated role metadata"
grep -q '"name":"list-rail-safety"' feed/metadata/4.targets.json || fail "no delegation in targets"
"$B/posgate-synth" --count 2150 --seed 11 --out e5.csv  # fewer rows: removals in every list
expect_rc 4 "$B/posgate-publish" update --state st --entries e5.csv --out feed --allow-mass-change
expect_rc 0 "$B/posgate-publish" update --state st --entries e5.csv --out feed --allow-mass-change \
    --authority-key rail-safety=auth.key
ls feed/targets/lists/rail-safety/*.delta-3-4.pgd >/dev/null || fail "no delegated delta"

# the bundle holds every root, the current metadata and every listed target
expect_rc 0 "$B/posgate-publish" bundle --feed feed --out feed.bundle
python3 - feed feed.bundle <<'EOF'
import json, os, struct, sys
feed, path = sys.argv[1], sys.argv[2]
data = open(path, 'rb').read()
assert data[:8] == b'PGBUNDL1', 'magic'
ver, count, ilen, _ = struct.unpack('>IIQQ', data[8:32])
pos, names = 32, {}
for _ in range(count):
    (n,) = struct.unpack('>H', data[pos:pos + 2]); p = data[pos + 2:pos + 2 + n].decode()
    off, ln = struct.unpack('>QQ', data[pos + 2 + n:pos + 18 + n]); pos += 18 + n
    names[p] = data[off:off + ln]
for p, body in names.items():
    assert open(os.path.join(feed, p), 'rb').read() == body, 'body of ' + p
roots = sorted(f for f in os.listdir(feed + '/metadata') if f.endswith('.root.json') and f[0].isdigit())
for r in roots:
    assert 'metadata/' + r in names, 'missing root ' + r
ts = json.load(open(feed + '/metadata/timestamp.json'))['signed']['meta']['snapshot.json']['version']
snap = json.load(open('%s/metadata/%d.snapshot.json' % (feed, ts)))['signed']['meta']
want = set()
for role, m in snap.items():
    f = 'metadata/%d.%s' % (m['version'], role)
    assert f in names, 'missing ' + f
    for t, info in json.load(open(feed + '/' + f))['signed']['targets'].items():
        d, b = os.path.split(t)
        want.add('targets/%s/%s.%s' % (d, info['hashes']['sha256'], b))
got = {p for p in names if p.startswith('targets/')}
assert got == want, 'targets differ: %s' % (got ^ want)
assert any('.delta-' in p for p in got) and any('config/' in p for p in got)
assert 'metadata/timestamp.json' in names
print('bundle: %d files, %d targets, %d roots' % (len(names), len(got), len(roots)))
EOF
expect_rc 2 "$B/posgate-publish" bundle --feed nowhere --out x.bundle
# status: every role's version, expiry, keys and delegations; a near expiry is a warning (exit 1)
expect_rc 0 "$B/posgate-publish" status --state st
grep -q "^timestamp  *version [0-9]" out.txt || fail "status timestamp line: $(cat out.txt)"
grep -q "threshold 1 of 1 key(s)" out.txt || fail "status keys: $(cat out.txt)"
grep -q "delegates lists/" out.txt || fail "status delegations: $(cat out.txt)"
expect_rc 1 "$B/posgate-publish" status --state st --json --warn 400d
python3 -c '
import json; d = json.load(open("out.txt"))
names = [r["role"] for r in d["roles"]]
assert d["warning"] is True and names[:4] == ["root", "timestamp", "snapshot", "targets"], d
assert all(r["warning"] and r["version"] >= 1 for r in d["roles"]), d
t = [r for r in d["roles"] if r["role"] == "targets"][0]
assert t["delegations"] and t["delegations"][0]["threshold"] >= 1, t' || fail "status json: $(cat out.txt)"
expect_rc 2 "$B/posgate-publish" status --state st --warn soon
expect_rc 5 "$B/posgate-publish" status --state nowhere
echo "publish.sh: all checks passed"
