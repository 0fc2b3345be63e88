#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The fleet dashboard in a real browser: seeds a collector with three kiosks
# (tests/integration/fleet_fixture.sh: current, stale, behind with a broken chain), starts
# `posgate-hub serve --feed --db --admin-token` on 127.0.0.1 and runs dashboard.cjs, which drives
# Debian's chromium, headless, through playwright-core (pinned in package-lock.json, installed
# with `npm ci` into BUILD_DIR/browser/). Nothing is skipped: without node, npm or chromium the
# test fails (tools/install-deps.sh installs them; tests/run.sh runs it). The overview's
# screenshot is left in BUILD_DIR/browser/dashboard.png, and copied to PATH with --screenshot
# (docs/dashboard.png is made that way).
# Usage: dashboard.sh BUILD_DIR [--screenshot PATH]
set -euo pipefail
B=$(cd "${1:?usage: dashboard.sh BUILD_DIR [--screenshot PATH]}" && pwd)
SHOT_COPY=
if [[ ${2:-} == --screenshot ]]; then SHOT_COPY=${3:?--screenshot PATH}; fi
HERE=$(cd "$(dirname "$0")" && pwd)
IT=$HERE/../integration
T=$(mktemp -d "${TMPDIR:-/tmp}/posgate-browser-XXXXXX")
HUBPID=
trap 'if [[ -n $HUBPID ]]; then kill "$HUBPID" 2>/dev/null || true; wait "$HUBPID" 2>/dev/null || true; fi; rm -rf "$T"' EXIT
unset POSGATE_DATA_DIR POSGATE_FAKE_NOW
. "$IT/lib.sh"
FAIL_LOGS=("$T/hub.log")
CHROMIUM=${CHROMIUM:-/usr/bin/chromium}
for need in node npm; do
    command -v "$need" >/dev/null || fail "$need is missing (tools/install-deps.sh installs it)"
done
[[ -x $CHROMIUM ]] || fail "$CHROMIUM is missing (tools/install-deps.sh installs Debian's chromium)"

# playwright-core, exactly as package-lock.json pins it, once per lock file
W=$B/browser
mkdir -p "$W"
if ! cmp -s "$HERE/package-lock.json" "$W/installed.lock" || [[ ! -d $W/node_modules/playwright-core ]]; then
    cp "$HERE/package.json" "$HERE/package-lock.json" "$W/"
    (cd "$W" && npm ci --no-audit --no-fund --ignore-scripts --loglevel=error) > "$T/npm.log" 2>&1 \
        || { cat "$T/npm.log" >&2; fail "npm ci in $W"; }
    cp "$HERE/package-lock.json" "$W/installed.lock"
fi

bash "$IT/fleet_fixture.sh" "$B" "$T/fx" "$T/hub.db" || fail "fleet_fixture.sh"
# shellcheck disable=SC1091
source "$T/fx/fleet.env"
# a contest looked up (the report counts it), and the month of the fixture's decisions
"$B/posgate-hub" decisions --listing "$LISTING" --db "$T/hub.db" --json > "$T/cited.json" \
    || fail "decisions --listing"
read -r DID MONTH < <(python3 -c 'import json,sys; d=json.load(open(sys.argv[1]))[0]; print(d["decision_id"], d["time"][:7])' "$T/cited.json")
"$B/posgate-hub" decision "$DID" --db "$T/hub.db" > /dev/null || fail "decision $DID"
"$B/posgate-hub" serve --db "$T/hub.db" --feed "$FEED" --admin-token "$TOKEN_ADMIN" \
    --listen 127.0.0.1:0 --port-file "$T/hub.port" 2>"$T/hub.log" &
HUBPID=$!
wait_for 10 test -s "$T/hub.port" || fail "posgate-hub did not start"

HUB_URL=http://127.0.0.1:$(cat "$T/hub.port") TOKEN=$TOKEN_ADMIN CURRENT=$CURRENT STALE=$STALE \
    BROKEN=$BROKEN LISTING=$LISTING STALE_LIST=$STALE_LIST MONTH=$MONTH LOOKED_UP=${LISTING%%/*} \
    SHOT=$W/dashboard.png CHROMIUM=$CHROMIUM \
    NODE_PATH=$W/node_modules node "$HERE/dashboard.cjs" || fail "the dashboard in chromium"
kill "$HUBPID"
wait "$HUBPID" || fail "posgate-hub exited $? after SIGTERM"
HUBPID=
if grep -q "Sanitizer" "$T/hub.log"; then fail "sanitizer report"; fi
if [[ -n $SHOT_COPY ]]; then
    cp "$W/dashboard.png" "$SHOT_COPY"
    echo "screenshot: $SHOT_COPY"
fi
