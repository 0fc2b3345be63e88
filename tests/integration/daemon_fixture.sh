#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Fixture for tests/unit/agent/core/daemon_concurrency.c: a kiosk at feed version 1 (about a thousand
# entries) and a feed directory at version 2 holding COUNT entries (a mass change of the same
# lists). Subject X is absent from version 1 and listed in version 2 (ALLOW -> DENY); subject Y
# is listed in both (DENY, DENY). Writes OUT/k (data dir), OUT/feed (version 2), and
# OUT/subjects.txt: "X_ID X_SERVICE" then "Y_ID Y_SERVICE".
# Usage: daemon_fixture.sh BUILD_DIR OUT_DIR COUNT
set -euo pipefail
B=${1:?usage: daemon_fixture.sh BUILD_DIR OUT_DIR COUNT}
O=${2:?usage: daemon_fixture.sh BUILD_DIR OUT_DIR COUNT}
N=${3:?usage: daemon_fixture.sh BUILD_DIR OUT_DIR COUNT}
mkdir -p "$O"
cd "$O"
"$B/posgate-keygen" --out root >/dev/null
"$B/posgate-keygen" --out feedk >/dev/null
"$B/posgate-keygen" --list-key --out list.key >/dev/null
"$B/posgate-synth" --count "$N" --seed 8 --out big.csv --config-out feed.json --subjects-out subj.csv
# two listed cn_rid subjects whose rows are among the first thousand
mapfile -t L < <(awk -F, '$1 == "listed" && index($2, "cn_rid:") == 1 { print $2 " " $3 }' subj.csv | head -2)
[[ ${#L[@]} == 2 ]] || { echo "fixture: fewer than two listed subjects" >&2; exit 1; }
X=${L[0]%% *} Y=${L[1]%% *}
head -1001 big.csv | grep -v -F "${X#cn_rid:}" > v1.csv
grep -q -F "${Y#cn_rid:}" v1.csv || { echo "fixture: Y not in version 1" >&2; exit 1; }
"$B/posgate-publish" init --state st --config feed.json --root-key root.key --threshold 1 \
    --feed-key feedk.key --list-key list.key >/dev/null
"$B/posgate-publish" update --state st --entries v1.csv --out feed >/dev/null 2>&1
"$B/posgate" --data-dir k init --root feed/metadata/1.root.json --list-key list.key \
    --jurisdiction CN >/dev/null
"$B/posgate" --data-dir k import feed >/dev/null
"$B/posgate-publish" update --state st --entries big.csv --out feed --allow-mass-change >/dev/null 2>&1
printf '%s\n%s\n' "${L[0]}" "${L[1]}" > subjects.txt
