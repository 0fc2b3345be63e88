#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Signing keys in a PKCS#11 token, with the real binaries and SoftHSM2: a token in a temporary
# SOFTHSM2_CONF directory; posgate-keygen --token generates an EC P-256 root key and an RSA
# authority key in it, pkcs11-tool (when installed) another EC key for the feed roles;
# posgate-publish init/delegate/update/refresh sign with pkcs11: URIs only (no private key file
# exists); a kiosk (posgate init + import) accepts the feed and denies the listed subjects.
# Refusals: a wrong PIN, a missing PIN, a key label the token lacks, a malformed URI, a second
# key under an existing label, each with its message and nothing published.
# Exits 77 (skipped) only when SoftHSM2 is not installed.
# Usage: keys_hsm.sh BUILD_DIR
set -euo pipefail
B=${1:?usage: keys_hsm.sh BUILD_DIR}
MOD=""
for m in /usr/lib/softhsm/libsofthsm2.so /usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so \
         /usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so; do
    [[ -f $m ]] && { MOD=$m; break; }
done
if [[ -z $MOD ]] || ! command -v softhsm2-util >/dev/null; then
    echo "SKIP: SoftHSM2 is not installed (Debian softhsm2; tools/install-deps.sh installs it)"
    exit 77
fi
T=$(mktemp -d "${TMPDIR:-/tmp}/posgate-keyshsm-XXXXXX")
trap 'rm -rf "$T"' EXIT
cd "$T"
unset POSGATE_DATA_DIR POSGATE_FAKE_NOW POSGATE_PKCS11_PIN POSGATE_PKCS11_MODULE
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

# ---- a fresh token, private to this test
mkdir tokens hsm
cat > softhsm2.conf <<CONF
directories.tokendir = $T/tokens
objectstore.backend = file
log.level = ERROR
CONF
export SOFTHSM2_CONF=$T/softhsm2.conf
softhsm2-util --init-token --free --label posgate-test --so-pin 87654321 --pin 123456 >/dev/null
printf '123456\n' > hsm/pin
chmod 600 hsm/pin
TOK="pkcs11:token=posgate-test"
Q="module-path=$MOD&pin-source=file:$T/hsm/pin"
ROOT_URI="$TOK;object=root?$Q"
FEED_URI="$TOK;object=feed?$Q"
AUTH_URI="$TOK;object=court?$Q"

# ---- keys generated inside the token
expect_rc 0 "$B/posgate-keygen" --token "$ROOT_URI" --out hsm/root
grep -q '^keyid [0-9a-f]\{64\}$' out.txt || fail "keygen --token printed no keyid: $(cat out.txt)"
grep -q 'scheme ecdsa-sha2-nistp256' out.txt || fail "root is not ECDSA: $(cat out.txt)"
ROOT_ID=$(sed -n 's/^keyid //p' out.txt)
expect_rc 0 "$B/posgate-keygen" --type rsa --bits 2048 --token "$AUTH_URI" --out hsm/court
grep -q 'scheme rsassa-pss-sha256' out.txt || fail "authority key is not RSA: $(cat out.txt)"
if command -v pkcs11-tool >/dev/null; then
    pkcs11-tool --module "$MOD" --token-label posgate-test --login --pin 123456 \
        --keypairgen --key-type EC:prime256v1 --label feed --id 0f01 >/dev/null 2>&1 ||
        fail "pkcs11-tool could not generate the feed key"
else
    expect_rc 0 "$B/posgate-keygen" --token "$FEED_URI"
fi
expect_rc 0 "$B/posgate-keygen" --public "$FEED_URI" --out hsm/feed
grep -q '^keyid [0-9a-f]\{64\}$' out.txt || fail "keygen --public printed no keyid"
expect_rc 0 "$B/posgate-keygen" --public "$ROOT_URI"
grep -q "keyid $ROOT_ID" out.txt || fail "--public gives another keyid than --token: $(cat out.txt)"
grep -q 'BEGIN PUBLIC KEY' out.txt || fail "--public printed no PEM"
ls hsm | grep -q '\.key$' && fail "a private key file was written: $(ls hsm)"

# ---- refusals: nothing generated, nothing published
expect_rc 5 "$B/posgate-keygen" --token "$ROOT_URI"
grep -q 'already holds a key matching the URI' err.txt || fail "duplicate label: $(cat err.txt)"
expect_rc 2 "$B/posgate-keygen" --public "pkcs11:token=posgate-test;object=%zz?module-path=$MOD"
grep -q 'malformed pkcs11: URI' err.txt || fail "malformed URI: $(cat err.txt)"
expect_rc 2 "$B/posgate-keygen" --public "pkcs11:token=posgate-test?module-path=$MOD"
grep -q 'names no key (expected object= or id=)' err.txt || fail "no object: $(cat err.txt)"
expect_rc 5 "$B/posgate-keygen" --public "pkcs11:token=nosuch;object=root?$Q"
grep -q 'no PKCS#11 token matches' err.txt || fail "unknown token: $(cat err.txt)"
expect_rc 5 "$B/posgate-keygen" --public "$TOK;object=root?module-path=$MOD&pin-value=000000"
grep -q 'refused the PIN' err.txt || fail "wrong PIN: $(cat err.txt)"
expect_rc 5 "$B/posgate-keygen" --public "$TOK;object=root?module-path=$MOD"
grep -q 'needs a user PIN, none was given' err.txt || fail "missing PIN: $(cat err.txt)"
expect_rc 5 "$B/posgate-keygen" --public "$TOK;object=nosuch?$Q"
grep -q 'holds 0 private keys matching' err.txt || fail "unknown label: $(cat err.txt)"
# the PIN from the environment works as well
POSGATE_PKCS11_PIN=123456 expect_rc 0 "$B/posgate-keygen" --public "$TOK;object=root?module-path=$MOD"

# ---- publish with token keys only
LISTED=cn_rid:11010519491231002X
cat > feed.json <<'JSON'
{
  "feed_id": "hsm-test",
  "services": ["rail", "rail.hsr"],
  "lists": [{"id": "court", "authority": "A court", "jurisdictions": ["CN"],
             "stale_after": "7d", "stale_policy": "refer"}],
  "reasons": [{"id": "debtor", "authority": "A court", "legal_basis": "Art. 3",
               "contest": "Write to the court", "scope": ["rail"]}]
}
JSON
cat > e1.csv <<CSV
list,listing_id,kind,id_type,id_value,reason,valid_from,valid_until,scope
court,C-1,restrict,cn_rid,${LISTED#cn_rid:},debtor,2020-01-01,,
CSV
"$B/posgate-keygen" --list-key --out list.key >/dev/null
expect_rc 2 "$B/posgate-publish" init --state bad --config feed.json \
    --root-key "$TOK;object=nosuch?$Q" --threshold 1 --feed-key "$FEED_URI" --list-key list.key
grep -q 'holds 0 private keys' err.txt || fail "init with an unknown token key: $(cat err.txt)"
[[ -e bad/writer.json ]] && fail "a refused init left a state"
expect_rc 0 "$B/posgate-publish" init --state st --config feed.json --root-key "$ROOT_URI" \
    --threshold 1 --feed-key "$FEED_URI" --list-key list.key
expect_rc 0 "$B/posgate-publish" delegate --state st --list court --key hsm/court.pub \
    --threshold 1
expect_rc 0 "$B/posgate-publish" update --state st --entries e1.csv --out feed \
    --authority-key "court=$AUTH_URI"
grep -q "$ROOT_ID" feed/metadata/1.root.json || fail "root 1 does not hold the token root key"
python3 - feed/metadata <<'PY' || fail "the token keys do not sign as expected"
import glob, json, os, sys
d = sys.argv[1]
root = json.load(open(os.path.join(d, "root.json")))
schemes = sorted(k["scheme"] for k in root["signed"]["keys"].values())
assert schemes == ["ecdsa-sha2-nistp256", "ecdsa-sha2-nistp256"], schemes
role = json.load(open(sorted(glob.glob(os.path.join(d, "*.list-court.json")))[-1]))
assert len(role["signatures"]) == 1 and len(role["signatures"][0]["sig"]) == 512, "RSA-2048 sig"
PY

# ---- a kiosk accepts it
expect_rc 0 pg kiosk init --root feed/metadata/1.root.json --list-key list.key --jurisdiction CN
expect_rc 0 pg kiosk import feed
grep -q "installed feed version 1" out.txt || fail "import said: $(cat out.txt)"
expect_rc 1 pg kiosk check --service rail.hsr --id "$LISTED"
expect_rc 0 pg kiosk verify

# ---- a refresh signed in the token, and a wrong PIN that publishes nothing
cp -r feed feed.before
printf '000000\n' > hsm/pin
set +e; "$B/posgate-publish" refresh --state st --out feed >out.txt 2>err.txt; rc=$?; set -e
[[ $rc != 0 ]] || fail "a refresh with a wrong PIN succeeded"
grep -q 'refused the PIN' err.txt || fail "refresh with a wrong PIN: $(cat err.txt)"
diff -r feed feed.before >/dev/null || fail "a refresh refused for its PIN changed the feed"
printf '123456\n' > hsm/pin
expect_rc 0 "$B/posgate-publish" refresh --state st --out feed
expect_rc 0 pg kiosk import feed
echo "keys_hsm: ok"
