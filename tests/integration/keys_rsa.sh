#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# RSA keys end to end with the real binaries: posgate-keygen --type rsa makes rsassa-pss-sha256
# keys; a feed whose root (an RSA and an ECDSA key, threshold 2), operator roles and delegated
# list are signed with them is imported by a kiosk, which then denies the listed subject. Every
# RSA signature is also checked by an independent verifier (python3-cryptography: PSS, MGF1
# SHA-256, salt length 32, as securesystemslib signs), and a forged one is refused by the kiosk.
# Usage: keys_rsa.sh BUILD_DIR
set -euo pipefail
B=${1:?usage: keys_rsa.sh BUILD_DIR}
T=$(mktemp -d "${TMPDIR:-/tmp}/posgate-keysrsa-XXXXXX")
trap 'rm -rf "$T"' EXIT
cd "$T"
unset POSGATE_DATA_DIR POSGATE_FAKE_NOW
fail() {
    echo "FAIL: $*" >&2
    exit 1
}
expect_rc() { # expect_rc RC CMD... : runs CMD, checks its exit code; output in out.txt/err.txt
    local want=$1; shift
    set +e; "$@" >out.txt 2>err.txt; local rc=$?; set -e
    [[ $rc == "$want" ]] || { cat out.txt err.txt >&2; fail "$* exited $rc, expected $want"; }
}
pg() { "$B/posgate" --data-dir "$T/$1" "${@:2}"; }
# by hand: POSGATE_PYTUF="PYTHON_WITH_TUF path/to/pytuf_follow.py" has python-tuf read the RSA
# feed too (see pytuf_follow.py)
pytuf() { [[ -z ${POSGATE_PYTUF:-} ]] || $POSGATE_PYTUF "$T/feed" "$T/pytuf" ||
    fail "python-tuf refused the feed"; }

LISTED=cn_rid:11010519491231002X
cat > feed.json <<'JSON'
{
  "feed_id": "rsa-test",
  "services": ["rail", "rail.hsr"],
  "lists": [{"id": "court", "authority": "A court", "jurisdictions": ["CN"],
             "stale_after": "7d", "stale_policy": "refer"},
            {"id": "ops", "authority": "The operator", "jurisdictions": ["CN"],
             "stale_after": "7d", "stale_policy": "refer"}],
  "reasons": [{"id": "debtor", "authority": "A court", "legal_basis": "Art. 3",
               "contest": "Write to the court", "scope": ["rail"]}]
}
JSON
cat > e1.csv <<CSV
list,listing_id,kind,id_type,id_value,reason,valid_from,valid_until,scope
court,C-1,restrict,cn_rid,${LISTED#cn_rid:},debtor,2020-01-01,,
ops,O-1,restrict,passport,CHN:E12345678,debtor,2020-01-01,,
CSV

# ---- keys: usage errors first, then one of each kind
expect_rc 2 "$B/posgate-keygen" --type dsa --out x
grep -q 'expected ecdsa or rsa' err.txt || fail "bad --type message: $(cat err.txt)"
expect_rc 2 "$B/posgate-keygen" --type rsa --bits 1024 --out x
grep -q 'expected a multiple of 8 from 2048 to 4096' err.txt || fail "bad --bits: $(cat err.txt)"
expect_rc 2 "$B/posgate-keygen" --bits 2048 --out x
mkdir operator authority
expect_rc 0 "$B/posgate-keygen" --type rsa --out operator/root-rsa
grep -q '^keyid [0-9a-f]\{64\}$' out.txt || fail "keygen printed no keyid: $(cat out.txt)"
grep -q 'BEGIN RSA PRIVATE KEY\|BEGIN PRIVATE KEY' operator/root-rsa.key || fail "not a PEM RSA key"
[[ $(stat -c %a operator/root-rsa.key) == 600 ]] || fail "private key mode is not 0600"
expect_rc 0 "$B/posgate-keygen" --type ecdsa --out operator/root-ec
expect_rc 0 "$B/posgate-keygen" --type rsa --bits 2048 --out operator/feed
expect_rc 0 "$B/posgate-keygen" --type rsa --out authority/court
expect_rc 0 "$B/posgate-keygen" --list-key --out list.key
python3 - operator/root-rsa.pub operator/feed.pub <<'PY' || fail "keygen --type rsa did not write RSA keys"
import sys
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from cryptography.hazmat.primitives.asymmetric import rsa
sizes = [load_pem_public_key(open(p, "rb").read()) for p in sys.argv[1:]]
assert all(isinstance(k, rsa.RSAPublicKey) for k in sizes)
assert [k.key_size for k in sizes] == [3072, 2048], [k.key_size for k in sizes]
PY

# ---- publish: RSA + ECDSA root (threshold 2), RSA operator key, RSA authority
expect_rc 0 "$B/posgate-publish" init --state operator/st --config feed.json \
    --root-key operator/root-rsa.key --root-key operator/root-ec.key --threshold 2 \
    --feed-key operator/feed.key --list-key list.key
expect_rc 0 "$B/posgate-publish" delegate --state operator/st --list court \
    --key authority/court.pub --threshold 1
expect_rc 0 "$B/posgate-publish" update --state operator/st --entries e1.csv --out feed \
    --authority-key court=authority/court.key

# ---- the metadata names the RSA keys as securesystemslib does and every signature verifies
python3 - feed/metadata <<'PY' || fail "the published RSA keys or signatures are not standard"
import glob, hashlib, json, os, sys
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding
from cryptography.hazmat.primitives.serialization import load_pem_public_key
d = sys.argv[1]
def enc(o):  # OLPC canonical JSON as securesystemslib writes it (strings escape only \\ and ")
    if isinstance(o, dict):
        return "{" + ",".join(enc(k) + ":" + enc(o[k]) for k in sorted(o)) + "}"
    if isinstance(o, list):
        return "[" + ",".join(enc(v) for v in o) + "]"
    if isinstance(o, str):
        return '"' + o.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(o, bool):
        return "true" if o else "false"
    if o is None:
        return "null"
    return str(o)
canon = lambda o: enc(o).encode()
keys = {}
def add_keys(obj):
    for kid, k in obj.items():
        assert hashlib.sha256(canon(k)).hexdigest() == kid, "keyid rule"
        keys[kid] = k
root = json.load(open(os.path.join(d, "root.json")))
add_keys(root["signed"]["keys"])
targets = sorted(glob.glob(os.path.join(d, "*.targets.json")))[-1]
add_keys(json.load(open(targets))["signed"]["delegations"]["keys"])
schemes = {k["scheme"] for k in keys.values()}
assert schemes == {"rsassa-pss-sha256", "ecdsa-sha2-nistp256"}, schemes
assert all(k["keytype"] == "rsa" for k in keys.values() if k["scheme"] == "rsassa-pss-sha256")
checked = 0
for f in glob.glob(os.path.join(d, "*.json")):
    env = json.load(open(f))
    msg = canon(env["signed"])
    for s in env["signatures"]:
        k = keys[s["keyid"]]
        pub = load_pem_public_key(k["keyval"]["public"].encode())
        sig = bytes.fromhex(s["sig"])
        if k["scheme"] == "rsassa-pss-sha256":
            pub.verify(sig, msg, padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32),
                       hashes.SHA256())
            checked += 1
        else:
            pub.verify(sig, msg, ec.ECDSA(hashes.SHA256()))
assert checked >= 5, checked
PY

# ---- a kiosk takes it
expect_rc 0 pg kiosk init --root feed/metadata/1.root.json --list-key list.key --jurisdiction CN
expect_rc 0 pg kiosk import feed
grep -q "installed feed version 1" out.txt || fail "import said: $(cat out.txt)"
pytuf
expect_rc 1 pg kiosk check --service rail.hsr --id "$LISTED"
expect_rc 1 pg kiosk check --service rail.hsr --id passport:CHN:E12345678
expect_rc 0 pg kiosk verify

# ---- a refresh signed by the RSA feed key is taken too
expect_rc 0 "$B/posgate-publish" refresh --state operator/st --out feed
expect_rc 0 pg kiosk import feed
pytuf

# ---- a forged RSA signature on the timestamp is refused, nothing changes
cp -r feed forged
python3 - forged/metadata/timestamp.json <<'PY'
import json, sys
p = sys.argv[1]
env = json.load(open(p))
env["signed"]["version"] += 1
sig = bytearray.fromhex(env["signatures"][0]["sig"])
sig[-1] ^= 1
env["signatures"][0]["sig"] = sig.hex()
json.dump(env, open(p, "w"))
PY
# the status without the figures that move with the clock (ages in seconds)
state() {
    pg kiosk status --json | python3 -c '
import json, sys
def strip(o):
    if isinstance(o, dict):
        return {k: strip(v) for k, v in o.items() if not k.endswith("age_s")}
    if isinstance(o, list):
        return [strip(v) for v in o]
    return o
print(json.dumps(strip(json.load(sys.stdin)), sort_keys=True))'
}
before=$(state)
set +e; pg kiosk import forged >out.txt 2>err.txt; rc=$?; set -e
[[ $rc != 0 ]] || fail "a forged RSA-signed timestamp was imported"
[[ $(state) == "$before" ]] || fail "the refused import changed the kiosk"
echo "keys_rsa: ok"
