#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Fixture for the audit tests (tests/unit/agent/core/audit.c, tests/integration/audit_cli.sh): a kiosk data
# dir OUT/k (jurisdiction CN) with a small feed whose subjects are known: OVR is denied on `air`
# by a listing whose reason allows a supervisor override (air-safety), HARD is denied on `air`
# by a listing that does not (court-enforcement), BOTH is on both lists, CLEAN is on none, and
# the name NAME with birth date DOB is a name_dob listing (REFER). Writes OUT/subjects.env with
# OVR, HARD, BOTH, CLEAN, NAME, DOB (shell assignments; also read by the C test).
# Usage: audit_fixture.sh BUILD_DIR OUT_DIR
set -euo pipefail
B=${1:?usage: audit_fixture.sh BUILD_DIR OUT_DIR}
O=${2:?usage: audit_fixture.sh BUILD_DIR OUT_DIR}
mkdir -p "$O"
cd "$O"
rid() { # rid BODY17 : a cn_rid with its ISO 7064 MOD 11-2 check character
    python3 -c '
import sys
b = sys.argv[1]
w = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
print(b + "10X98765432"[sum(int(c) * x for c, x in zip(b, w)) % 11])' "$1"
}
OVR=$(rid 11010519800101001) HARD=$(rid 11010519800101002) BOTH=$(rid 11010519800101003)
CLEAN=$(rid 11010519800101004)
"$B/posgate-keygen" --out root >/dev/null
"$B/posgate-keygen" --out feedk >/dev/null
"$B/posgate-keygen" --list-key --out list.key >/dev/null
"$B/posgate-synth" --count 20 --seed 5 --out synth.csv --config-out feed.json >/dev/null
cat > entries.csv <<CSV
list,listing_id,kind,id_type,id_value,reason,valid_from,valid_until,scope
caac-safety,CAAC-OVR-1,restrict,cn_rid,$OVR,air-safety,2020-01-01,,
spc-enforcement,SPC-HARD-1,restrict,cn_rid,$HARD,court-enforcement,2020-01-01,,
caac-safety,CAAC-BOTH-1,restrict,cn_rid,$BOTH,air-safety,2020-01-01,,
spc-enforcement,SPC-BOTH-2,restrict,cn_rid,$BOTH,court-enforcement,2020-01-01,,
caac-safety,CAAC-NAME-1,restrict,name_dob,ZHANG SAN|1980-01-01,air-safety,2020-01-01,,
CSV
"$B/posgate-publish" init --state st --config feed.json --root-key root.key --threshold 1 \
    --feed-key feedk.key --list-key list.key >/dev/null
"$B/posgate-publish" update --state st --entries entries.csv --out feed --allow-mass-change \
    >/dev/null 2>&1
"$B/posgate" --data-dir k init --root feed/metadata/1.root.json --list-key list.key \
    --jurisdiction CN >/dev/null
"$B/posgate" --data-dir k import feed >/dev/null
printf 'OVR=cn_rid:%s\nHARD=cn_rid:%s\nBOTH=cn_rid:%s\nCLEAN=cn_rid:%s\nNAME="Zhang San"\nDOB=1980-01-01\n' \
    "$OVR" "$HARD" "$BOTH" "$CLEAN" > subjects.env
