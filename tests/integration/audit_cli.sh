#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The audit trail from the command line, with the real binaries: init makes the device key
# (mode 0600) and `device-key` prints it; checks produce events (DENY, ALLOW, REFER);
# `audit list` (table and --json, --since), `audit export` (JSON lines that parse and re-hash to
# an intact chain), `audit verify` (0 when intact, 4 after an event is edited or deleted);
# supervisor overrides allowed (exit 0, JSON "override") and refused (exit 2, audited as the
# DENY); a `posgate check` killed with SIGKILL right after it printed a DENY still has its
# event on disk; --help on every command.
# Usage: audit_cli.sh BUILD_DIR
set -euo pipefail
B=${1:?usage: audit_cli.sh BUILD_DIR}
HERE=$(cd "$(dirname "$0")" && pwd)
T=$(mktemp -d "${TMPDIR:-/tmp}/posgate-auditcli-XXXXXX")
trap 'rm -rf "$T"' EXIT
unset POSGATE_DATA_DIR POSGATE_FAKE_NOW
# shared helpers: fail, expect_rc, free_port, wait_for
. "$HERE/lib.sh"
EXPECT_DIR=$T
bash "$HERE/audit_fixture.sh" "$B" "$T/fx"
# shellcheck disable=SC1091
source "$T/fx/subjects.env"
K=$T/fx/k
pg() { "$B/posgate" --data-dir "$K" "$@"; }

# --help, usage
for c in "audit" "audit list" "audit export" "audit verify" "device-key"; do
    # shellcheck disable=SC2086
    expect_rc 0 "$B/posgate" $c --help
    grep -q "usage: posgate" "$T/out.txt" || fail "$c --help printed no usage"
done
expect_rc 2 pg audit
expect_rc 2 pg audit frobnicate
expect_rc 2 pg audit export
expect_rc 2 pg audit list --since x
expect_rc 5 "$B/posgate" --data-dir "$T/none" audit list
expect_rc 5 "$B/posgate" --data-dir "$T/none" device-key

# the device key
[[ $(stat -c %a "$K/device.key") == 600 ]] || fail "device.key mode $(stat -c %a "$K/device.key")"
[[ -s $K/device.pub ]] || fail "no device.pub"
expect_rc 0 pg device-key
cmp -s "$T/out.txt" "$K/device.pub" || fail "device-key does not print device.pub"
grep -q "BEGIN PUBLIC KEY" "$T/out.txt" || fail "device-key printed no PEM"
pg device-key --json | python3 -c '
import hashlib, json, sys
d = json.load(sys.stdin)
pem = open(sys.argv[1], "rb").read()
assert d["pem"].encode() == pem, "pem differs"
assert d["device_id"] == hashlib.sha256(pem).hexdigest()[:32], d["device_id"]' "$K/device.pub" \
    || fail "device-key --json"

# an empty trail is fine
expect_rc 0 pg audit verify
expect_rc 0 pg audit list --json
[[ $(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))))' "$T/out.txt") == 0 ]] \
    || fail "empty trail lists events"

# decisions
expect_rc 1 pg check --service air --id "$HARD" --operator clerk-1
expect_rc 0 pg check --service air --id "$CLEAN" --operator clerk-1
expect_rc 3 pg check --service air --name "$NAME" --birth-date "$DOB"
expect_rc 1 pg check --service air --id "$OVR" --json
python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["audit_seq"] == 4, d["audit_seq"]' \
    "$T/out.txt" || fail "check --json audit_seq"
expect_rc 2 pg check --service nosuch --id "$CLEAN" # invalid input: not a decision, not audited

# overrides
expect_rc 0 pg check --service air --id "$OVR" --override-by sup-7 --override-reason "permit 12" --json
python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
assert d["decision"] == "allow", d["decision"]
assert d["override"] == {"by": "sup-7", "reason": "permit 12", "overridden_decision": "deny"}, d
assert d["audit_seq"] == 5' "$T/out.txt" || fail "override JSON: $(cat "$T/out.txt")"
expect_rc 2 pg check --service air --id "$HARD" --override-by sup-7 --override-reason "please"
grep -q "listing SPC-HARD-1 on list spc-enforcement does not allow a supervisor override" "$T/err.txt" \
    || fail "refused override message: $(cat "$T/err.txt")"
expect_rc 2 pg check --service air --id "$BOTH" --override-by sup-7 --override-reason "please"
expect_rc 2 pg check --service air --id "$CLEAN" --override-by sup-7 --override-reason "please"
grep -q "nothing to override" "$T/err.txt" || fail "override of an ALLOW: $(cat "$T/err.txt")"
expect_rc 2 pg check --service air --id "$OVR" --override-by sup-7

# list
expect_rc 0 pg audit list
[[ $(grep -c '^[0-9]' "$T/out.txt") == 8 ]] || { cat "$T/out.txt"; fail "audit list: expected 8 rows"; }
grep -E '^1 .* deny +air +clerk-1 +spc-enforcement/SPC-HARD-1' "$T/out.txt" >/dev/null \
    || fail "audit list row 1: $(sed -n 2p "$T/out.txt")"
expect_rc 0 pg audit list --json --since 5
python3 -c '
import json, sys
ev = json.load(open(sys.argv[1]))
assert [e["seq"] for e in ev] == [6, 7, 8], [e["seq"] for e in ev]
assert ev[0]["decision"] == "deny" and ev[0]["override"]["refused"] is True, ev[0]
assert ev[2]["decision"] == "allow" and ev[2]["override"]["refused"] is True, ev[2]
for e in ev:
    assert len(e["subjects"]) == 1 and len(e["subjects"][0]) == 32' "$T/out.txt" \
    || fail "audit list --json --since 5"

# a check killed with SIGKILL right after printing its DENY: the event is on disk
for i in 1 2 3 4 5; do
    python3 - "$B/posgate" "$K" "$HARD" > "$T/killed.txt" <<'PY'
import os, signal, subprocess, sys
p = subprocess.Popen([sys.argv[1], "--data-dir", sys.argv[2], "check", "--service", "air",
                      "--id", sys.argv[3]], stdout=subprocess.PIPE)
line = p.stdout.readline().decode()
os.kill(p.pid, signal.SIGKILL)
p.wait()
assert line.startswith("DENY"), line
print(line.split("decision ")[1].split(",")[0])
PY
    id=$(cat "$T/killed.txt")
    pg audit list --json | python3 -c '
import json, sys
ids = [e.get("id") for e in json.load(sys.stdin)]
assert ids.count(sys.argv[1]) == 1, (sys.argv[1], ids[-3:])' "$id" || fail "killed check: event $id missing"
done

# export: JSON lines that re-hash to an intact chain
expect_rc 0 pg audit export --out "$T/trail.jsonl"
grep -q "exported 13 event(s)" "$T/out.txt" || fail "export: $(cat "$T/out.txt")"
python3 - "$T/trail.jsonl" "$(pg device-key --json)" <<'PY' || fail "export chain"
import hashlib, json, sys
dev = json.loads(sys.argv[2])["device_id"]
prev = bytes(32)
lines = open(sys.argv[1], "rb").read().split(b"\n")
assert lines[-1] == b"" and len(lines) == 14, len(lines)
digests, with_digest = {}, 0  # (list id, seq) -> digest, from the latest event that holds it
for n, raw in enumerate(lines[:-1], 1):
    e = json.loads(raw)
    assert e["seq"] == n and e["device_id"] == dev and e["v"] == (2 if e["kind"] == "decision" else 1), e
    assert e["prev"] == prev.hex(), (n, e["prev"])
    for l in e.get("lists", []):  # each decision's list digests can be told from the chain
        if "digest" in l:
            digests[(l["id"], l["seq"])] = l["digest"]
            with_digest += 1
        assert (l["id"], l["seq"]) in digests, (n, l)
    assert raw == json.dumps(e, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    prev = hashlib.sha256(prev + raw).digest()
assert with_digest > 0, with_digest  # each posgate check is a new process: a new queue each
PY
[[ $(stat -c %a "$T/trail.jsonl") == 600 ]] || fail "export mode"

# verify, then tampering
expect_rc 0 pg audit verify
grep -q "ok: 13 event(s), seq 1 to 13" "$T/out.txt" || fail "verify: $(cat "$T/out.txt")"
tamper() { # tamper SQL : on a copy of the data dir
    rm -rf "$T/k2"; cp -a "$K" "$T/k2"
    python3 -c 'import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); c.execute(sys.argv[2]); c.commit()' \
        "$T/k2/audit.db" "$1"
}
tamper "UPDATE events SET body = replace(body, '\"deny\"', '\"allow\"') WHERE seq = 1"
expect_rc 4 "$B/posgate" --data-dir "$T/k2" audit verify
grep -q "seq 1" "$T/err.txt" || fail "edit: $(cat "$T/err.txt")"
tamper "DELETE FROM events WHERE seq = 3"
expect_rc 4 "$B/posgate" --data-dir "$T/k2" audit verify --json
python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["ok"] is False and "expected seq 3" in d["error"], d' \
    "$T/out.txt" || fail "delete: $(cat "$T/out.txt")"
echo "audit_cli: ok"
