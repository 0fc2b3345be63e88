#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# One document, one key, end to end with the real binaries: a feed published by posgate-publish
# lists a cn_rid, passports (as DEU and as D) and names; a kiosk gets the listed answer for every
# other spelling of them (national_id:CN for the cn_rid; D, D<< and the TD3 MRZ for the German
# passport; case, spacing, order, decomposed accents and cedilla/comma-below for the names),
# from `posgate check` and from posgated's POST /v1/check; unknown issuer and country codes
# are input errors (exit 2, HTTP 400); a feed whose list targets carry an older identifier
# format is refused (exit 4, "republish") until the publisher republishes it.
# Usage: ident_forms.sh BUILD_DIR
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
B=${1:?usage: ident_forms.sh BUILD_DIR}
T=$(mktemp -d "${TMPDIR:-/tmp}/posgate-ident-XXXXXX")
DPID=""
cleanup() {
    if [[ -n $DPID ]]; then
        kill "$DPID" 2>/dev/null || true
        wait "$DPID" 2>/dev/null || true
    fi
    rm -rf "$T"
}
trap cleanup EXIT
cd "$T"
unset POSGATE_DATA_DIR POSGATE_FAKE_NOW
# shared helpers: fail, expect_rc, free_port, wait_for
. "$HERE/lib.sh"
pg() { "$B/posgate" --data-dir "$T/$1" "${@:2}"; }
# a valid cn_rid from its first 17 digits (ISO 7064 MOD 11-2)
rid() {
    python3 -c 'import sys
s = sys.argv[1]
t = sum(int(c) * pow(2, 17 - i, 11) for i, c in enumerate(s))
print(s + "10X98765432"[t % 11])' "$1"
}
RID=$(rid 11010519491231002)
[[ $RID == 11010519491231002X ]] || fail "reference check character: $RID"
RID2=$(rid 44052418800101001)
MRZ_DEU='P<D<<MUSTERMANN<<ERIKA<<<<<<<<<<<<<<<<<<<<<<|C01X00T478D<<6408125F2702283<<<<<<<<<<<<<<<4'

"$B/posgate-keygen" --out root >/dev/null
"$B/posgate-keygen" --out feed >/dev/null
"$B/posgate-keygen" --list-key --out list.key >/dev/null
"$B/posgate-synth" --count 10 --seed 7 --out synth.csv --config-out feed.json \
    --subjects-out subj.csv >/dev/null
L=spc-enforcement R=court-enforcement
cat > e.csv <<CSV
list,listing_id,kind,id_type,id_value,reason,valid_from,valid_until,scope
$L,ident-0001,restrict,cn_rid,$RID,$R,2020-01-01,,
$L,ident-0002,restrict,national_id,CN:$RID2,$R,2020-01-01,,
$L,ident-0003,restrict,passport,DEU:C01X00T47,$R,2020-01-01,,
$L,ident-0004,restrict,passport,D:X1234567,$R,2020-01-01,,
$L,ident-0005,restrict,name_dob,张伟|1980-01-01,$R,2020-01-01,,
$L,ident-0006,restrict,name_dob,Иван Петров|1975-05-05,$R,2020-01-01,,
$L,ident-0007,restrict,name_dob,Nguyễn Văn An|1970-01-01,$R,2020-01-01,,
$L,ident-0008,restrict,name_dob,Ștefan Popescu|1985-03-03,$R,2020-01-01,,
CSV
"$B/posgate-publish" init --state st --config feed.json --root-key root.key --threshold 1 \
    --feed-key feed.key --list-key list.key >/dev/null

# the publisher validates with the same function: a malformed national_id:CN row stops it
sed 's/^\(.*ident-0002.*CN:\)[0-9X]*/\1440524188001010010/' e.csv > bad.csv
grep -q 'CN:440524188001010010' bad.csv || fail "bad.csv was not written"
expect_rc 2 "$B/posgate-publish" update --state st --entries bad.csv --out feed
grep -q "cn_rid: check character" err.txt || fail "bad national_id:CN row: $(cat err.txt)"
sed 's/DEU:C01X00T47/ZZZ:C01X00T47/' e.csv > bad2.csv
expect_rc 2 "$B/posgate-publish" update --state st --entries bad2.csv --out feed
grep -q "ZZZ is not an ICAO 9303 code" err.txt || fail "bad issuer row: $(cat err.txt)"

expect_rc 0 "$B/posgate-publish" update --state st --entries e.csv --out feed
grep -q '"ident_format":2' feed/metadata/*.targets.json || fail "no ident_format in the targets"
expect_rc 0 pg k1 init --root feed/metadata/1.root.json --list-key list.key --jurisdiction CN
expect_rc 0 pg k1 import feed

# DENY for every spelling of the listed documents
deny() { expect_rc 1 pg k1 check --service air --id "$1"; }
deny "cn_rid:$RID"
deny "national_id:CN:$RID"
deny "national_id: cn : ${RID,,}"
deny "cn_rid:$RID2"
deny "national_id:CN:$RID2"
deny "passport:DEU:C01X00T47"
deny "passport:D:C01X00T47"
deny "passport:D<<:C01X00T47"
deny "passport:deu:c01x00t47"
deny "mrz:$MRZ_DEU"
deny "passport:DEU:X1234567"
deny "passport:D<<:X1234567"

# REFER for every spelling of the listed names
refer() { expect_rc 3 pg k1 check --service air --name "$1" --birth-date "$2"; }
refer "张伟" 1980-01-01
refer "张 伟" 1980-01-01
refer "张　伟" 1980-01-01
expect_rc 3 pg k1 check --service air --id "name_dob:张 伟|1980-01-01"
refer "Иван Петров" 1975-05-05
refer "ИВАН ПЕТРОВ" 1975-05-05
refer "Петров Иван" 1975-05-05
refer "Nguyễn Văn An" 1970-01-01
refer "$(printf 'Nguye\xcc\x82\xcc\x83n Va\xcc\x86n An')" 1970-01-01
refer "NGUYEN VAN AN" 1970-01-01
refer "$(printf '\xc5\x9etefan Popescu')" 1985-03-03
refer "$(printf 'POPESCU \xc8\x98TEFAN')" 1985-03-03
refer "$(printf '\xc5\x9ftefan popescu')" 1985-03-03
refer "Stefan Popescu" 1985-03-03

# not listed: ALLOW; malformed: input errors
expect_rc 0 pg k1 check --service air --name "Zhang San" --birth-date 1980-01-01
expect_rc 0 pg k1 check --service air --id "passport:DEU:C01X00T48"
expect_rc 2 pg k1 check --service air --id "passport:ZZZ:123"
grep -q "ZZZ" err.txt || fail "unknown issuer message: $(cat err.txt)"
expect_rc 2 pg k1 check --service air --id "national_id:ZZ:123"
grep -q "ZZ is not assigned" err.txt || fail "unknown country message: $(cat err.txt)"
expect_rc 2 pg k1 check --service air --id "national_id:CN:110105194912310021"
expect_rc 2 pg k1 check --service air --name "$(printf 'Iv\xc3n')" --birth-date 1975-05-05

# posgated: the same answers over POST /v1/check
DPORT=$(free_port) DEAD=$(free_port)
TOKEN=tok-$RANDOM$RANDOM
API=http://127.0.0.1:$DPORT
cat > daemon.json <<JSON
{"data_dir": "$T/k1", "listen": ["127.0.0.1:$DPORT"], "feed_urls": ["http://127.0.0.1:$DEAD/"],
 "poll_interval_s": 3600, "api_token": "$TOKEN", "log_level": "warn"}
JSON
"$B/posgated" --config daemon.json 2>daemon.log &
DPID=$!
for _ in $(seq 50); do
    curl -s -o /dev/null "$API/healthz" && break
    sleep 0.2
done
post() { # post BODY EXPECTED_STATUS [EXPECTED_DECISION]
    local code
    code=$(curl -s -o resp.json -w '%{http_code}' -H "Authorization: Bearer $TOKEN" \
        -H 'Content-Type: application/json' --data-binary "$1" "$API/v1/check")
    [[ $code == "$2" ]] || { tail -5 daemon.log >&2; fail "POST $1 answered $code, expected $2: $(cat resp.json)"; }
    if [[ -n ${3:-} ]]; then
        python3 -c 'import json,sys; d=json.load(open("resp.json")); assert d["decision"] == sys.argv[1], d["decision"]' "$3" ||
            fail "POST $1 decided $(cat resp.json), expected $3"
    fi
}
post '{"service": "air", "ids": ["passport:D:C01X00T47"]}' 200 deny
post "{\"service\": \"air\", \"ids\": [\"mrz:$MRZ_DEU\"]}" 200 deny
post "{\"service\": \"air\", \"ids\": [\"national_id:CN:$RID\"]}" 200 deny
post '{"service": "air", "name": "ИВАН ПЕТРОВ", "birth_date": "1975-05-05"}' 200 refer
post '{"service": "air", "name": "张 伟", "birth_date": "1980-01-01"}' 200 refer
post '{"service": "air", "ids": ["passport:ZZZ:123"]}' 400
kill "$DPID"
wait "$DPID" 2>/dev/null || true
DPID=""

# a feed whose list targets carry no identifier format (an older publisher's) is refused
mkdir work
"$B/tests/ident_old_format" st/tuf feed work root.key feed.key >/dev/null
grep -q '"ident_format"' "$(ls feed/metadata/*.targets.json | sort -V | tail -1)" &&
    fail "the old-format feed still has ident_format"
expect_rc 0 pg k2 init --root feed/metadata/1.root.json --list-key list.key --jurisdiction CN
expect_rc 4 pg k2 import feed
grep -q "republish" err.txt || fail "old format refusal does not say republish: $(cat err.txt)"
grep -q "identifier format 1, expected 2" err.txt || fail "old format refusal: $(cat err.txt)"
expect_rc 5 pg k2 check --service air --id "passport:D:C01X00T47"
# a kiosk that has the current version keeps serving it
expect_rc 4 pg k1 import feed
grep -q "republish" err.txt || fail "k1 old format refusal: $(cat err.txt)"
deny "passport:D:C01X00T47"

# the publisher, told by its state that the lists were keyed in format 1, republishes them
python3 - <<'PY'
import json
p = "st/publish.json"
d = json.load(open(p))
for l in d["lists"]:
    l["ident_format"] = 1
json.dump(d, open(p, "w"))
PY
expect_rc 0 "$B/posgate-publish" update --state st --entries e.csv --out feed
grep -q "republishing it in format 2" err.txt || fail "republish message: $(cat err.txt)"
expect_rc 0 pg k2 import feed
expect_rc 1 pg k2 check --service air --id "passport:D:C01X00T47"
expect_rc 3 pg k2 check --service air --name "ПЕТРОВ иван" --birth-date 1975-05-05
expect_rc 0 pg k1 import feed
deny "mrz:$MRZ_DEU"
echo "ident_forms: ok"
