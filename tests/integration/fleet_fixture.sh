#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Fixture of the fleet dashboard's tests (tests/integration/fleet.sh, tests/browser/): a
# collector DB (a SQLite file, or a PostgreSQL URI) holding three kiosks that reached it through
# `posgate field-sync` and `posgate-hub ingest`, every report and batch made by the real programs:
#   CURRENT  on the newest feed version, everything fresh;
#   STALE    on the newest version too, but its last report was made 2.5 days on (POSGATE_FAKE_NOW:
#            test builds only), when caac-safety (stale_after 2d) had gone stale;
#   BROKEN   still on the version before (behind), and a second trail signed under its key
#            after its queue was lost (a conflict at seq 1: chain broken).
# The feed OUT/fx/feed is at version 3: version 2 re-signed the timestamp for 30 days, version 3
# delisted CAAC-BOTH-1. Each kiosk decided a few checks (DENY, ALLOW, REFER on `air`).
# Writes OUT/fleet.env: CURRENT, STALE, BROKEN (device ids), FEED, LISTING (a listing DENYs
# cited), STALE_LIST, TOKEN_ADMIN, TOKEN_AUDITOR.
# Usage: fleet_fixture.sh BUILD_DIR OUT_DIR DB
set -euo pipefail
B=$(cd "${1:?usage: fleet_fixture.sh BUILD_DIR OUT_DIR DB}" && pwd)
O=${2:?usage: fleet_fixture.sh BUILD_DIR OUT_DIR DB}
DB=${3:?usage: fleet_fixture.sh BUILD_DIR OUT_DIR DB}
HERE=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$O"
O=$(cd "$O" && pwd)
unset POSGATE_DATA_DIR POSGATE_FAKE_NOW
bash "$HERE/audit_fixture.sh" "$B" "$O/fx" >/dev/null
# shellcheck disable=SC1091
source "$O/fx/subjects.env"
FX=$O/fx
HUB=$B/posgate-hub
die() { echo "fleet_fixture: $*" >&2; exit 1; }
kiosk() { local k=$1; shift; "$B/posgate" --data-dir "$O/$k" "$@"; }
decide() { # decide KIOSK ID_OR_NAME... : checks on air, whatever they answer
    local k=$1 a; shift
    for a in "$@"; do
        set +e
        if [[ $a == name ]]; then
            kiosk "$k" check --service air --name "$NAME" --birth-date "$DOB" --operator clerk-1 >/dev/null
        else
            kiosk "$k" check --service air --id "$a" --operator clerk-1 >/dev/null
        fi
        set -e
    done
}
visit() { # visit KIOSK STICK [env...] : field-sync onto a new stick, then ingest it; ingest's exit
    local k=$1 s=$O/sticks/$2 rc; shift 2
    mkdir -p "$s"
    env "$@" "$B/posgate" --data-dir "$O/$k" field-sync "$s" >/dev/null
    rc=0
    "$HUB" ingest "$s" --db "$DB" >"$s.out" 2>&1 || rc=$?
    return $rc
}
dev_id() { kiosk "$1" device-key --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["device_id"])'; }

# version 2: the timestamp signed for 30 days
"$B/posgate-publish" refresh --state "$FX/st" --out "$FX/feed" --expires 30d >"$O/publish.log" 2>&1
mv "$FX/k" "$O/current"
for k in stale broken; do
    kiosk "$k" init --root "$FX/feed/metadata/1.root.json" --list-key "$FX/list.key" \
        --jurisdiction CN >/dev/null
done
for k in current stale broken; do
    kiosk "$k" import "$FX/feed" >/dev/null
    "$HUB" enroll --db "$DB" --pub "$O/$k/device.pub" >/dev/null 2>&1
done
decide current "$HARD" "$CLEAN" "$BOTH"
decide stale "$HARD" "$OVR" name
decide broken "$CLEAN" "$CLEAN" "$HARD"
for k in current stale broken; do
    visit "$k" "$k-1" || die "ingest of $k-1: $(cat "$O/sticks/$k-1.out")"
done

# version 3: CAAC-BOTH-1 delisted; the current and the stale kiosks install it, the broken one
# does not
grep -v ',CAAC-BOTH-1,' "$FX/entries.csv" > "$FX/entries3.csv"
"$B/posgate-publish" update --state "$FX/st" --entries "$FX/entries3.csv" --out "$FX/feed" \
    --expires 30d >/dev/null 2>&1
sleep 1 # installs a second after the issue at least
for k in current stale; do
    kiosk "$k" import "$FX/feed" >/dev/null
done
decide current "$BOTH" "$CLEAN"
visit current current-2 || die "ingest of current-2: $(cat "$O/sticks/current-2.out")"
visit stale stale-2 POSGATE_FAKE_NOW=$(( $(date +%s) + 60 * 3600 )) \
    || die "ingest of stale-2: $(cat "$O/sticks/stale-2.out")"
python3 - "$O/sticks/stale-2/posgate" <<'PY' || die "the stale kiosk's report names no stale list: a build without POSGATE_TEST_HOOKS=ON ignores POSGATE_FAKE_NOW"
import glob, json, sys
r = json.loads(json.load(open(glob.glob(sys.argv[1] + "/*/status.json")[0]))["report"])
sys.exit(0 if any(l.get("stale") for l in r["status"]["lists"]) else 1)
PY

# the broken kiosk's queue is lost; the trail it signs anew conflicts with the one held
mkdir "$O/lost"
mv "$O/broken/audit.db"* "$O/lost/"
decide broken "$HARD" "$OVR"
rc=0
visit broken broken-2 || rc=$?
[[ $rc == 4 ]] || die "the conflicting trail was ingested with exit $rc, expected 4: $(cat "$O/sticks/broken-2.out")"

cat > "$O/fleet.env" <<ENV
CURRENT=$(dev_id current)
STALE=$(dev_id stale)
BROKEN=$(dev_id broken)
FEED=$FX/feed
LISTING=spc-enforcement/SPC-HARD-1
STALE_LIST=caac-safety
TOKEN_ADMIN=admin-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
TOKEN_AUDITOR=auditor-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
ENV
