#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The posgate demo, from nothing: installs what it needs, builds, creates keys, synthesises a
# 100,000-entry list, publishes a signed feed, initialises a kiosk store, imports it, prints a
# few decisions (ALLOW, DENY with its notice, REFER), publishes an update, imports it as a delta
# and shows the changed answer and `posgate status`; then serves the feed with posgate-hub, runs
# the daemon posgated, asks it for decisions over HTTP and shows it pick up an update by itself;
# collects both kiosks' audit trails and status reports and ends by printing how to open the
# fleet dashboard with them.
#
# usage: tools/demo.sh [--entries N] [--workdir DIR] [--no-install]
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
ENTRIES=100000 WORK="" INSTALL=1
while [[ $# -gt 0 ]]; do
    case $1 in
        --entries) ENTRIES=$2; shift 2 ;;
        --workdir) WORK=$2; shift 2 ;;
        --no-install) INSTALL=0; shift ;;
        -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
        *) echo "demo.sh: unknown option $1" >&2; exit 2 ;;
    esac
done

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
run() { printf '$ %s\n' "$*"; "$@"; }
# run_rc: run a command whose exit code is a decision, and say what it was.
run_rc() { printf '$ %s\n' "$*"; set +e; "$@"; local rc=$?; set -e; echo "(exit code $rc)"; }

if [[ $INSTALL == 1 ]]; then
    step "installing build dependencies (Debian packages)"
    bash tools/install-deps.sh
fi
step "building"
cmake -S "$ROOT" -B "$ROOT/build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPOSGATE_TEST_HOOKS=OFF >/dev/null
cmake --build "$ROOT/build" -j "$(nproc)" >/dev/null
B=$ROOT/build
export PATH="$B:$PATH"

[[ -n $WORK ]] || WORK=$(mktemp -d "${TMPDIR:-/tmp}/posgate-demo.XXXXXX")
mkdir -p "$WORK"
cd "$WORK"
rm -rf keys pubstate feed kiosk kiosk2 feed.bundle hub.db hub.db-* hub.port audit-hub.port *.log \
    stick admin.token dashboard.port
echo "working in $WORK"

step "publisher: keys (root, feed) and the list key"
mkdir -p keys
run posgate-keygen --out keys/root
run posgate-keygen --out keys/feed
run posgate-keygen --list-key --out keys/list.key

step "publisher: a synthetic list of $ENTRIES entries with valid check digits"
run posgate-synth --count "$ENTRIES" --seed 42 --out entries.csv --config-out feed.json \
    --subjects-out subjects.csv
# the three subjects of README's example checks, so that they answer there what README says
cat >> entries.csv <<'CSV'
spc-enforcement,spc-readme-0001,restrict,cn_rid,11010519491231002X,court-enforcement,2020-01-01,,
caac-safety,caac-readme-0002,restrict,passport,DEU:C01X00T47,air-safety,2020-01-01,,
spc-enforcement,spc-readme-0003,restrict,name_dob,Li Lei|1990-01-02,court-enforcement,2020-01-01,,
CSV
head -3 entries.csv

step "publisher: sign and publish the feed (a TUF repository)"
run posgate-publish init --state pubstate --config feed.json --root-key keys/root.key \
    --threshold 1 --feed-key keys/feed.key --list-key keys/list.key
run posgate-publish update --state pubstate --entries entries.csv --out feed
run posgate-publish bundle --feed feed --out feed.bundle
ls feed/metadata | head

step "kiosk: initialise with the trusted root and import from the USB bundle"
export POSGATE_DATA_DIR=$WORK/kiosk
run posgate init --root feed/metadata/1.root.json --list-key keys/list.key --jurisdiction CN
run posgate import feed.bundle

pick() {  # pick SITUATION FIELD [TYPE]: the first subject of a situation (fields: id, service)
    awk -F, -v s="$1" -v f="$2" -v t="${3:-}" \
        '$1 == s && index($2, t) == 1 { gsub(/"/, "", $0); print (f == "id" ? $2 : $3); exit }' \
        subjects.csv
}
LISTED_ID=$(pick listed id) LISTED_SVC=$(pick listed service)
CLEAN_ID=$(pick clean id cn_rid:)
EXEMPT_ID=$(pick exempt id) EXEMPT_SVC=$(pick exempt service)
NAME_ID=$(pick name_only id) NAME_SVC=$(pick name_only service)
for v in LISTED_ID LISTED_SVC CLEAN_ID EXEMPT_ID NAME_ID; do
    [[ -n ${!v} ]] || { echo "demo.sh: subjects.csv names no subject for $v" >&2; exit 1; }
done

step "kiosk: decisions"
echo "-- a subject on a list, for a service its reason covers:"
run_rc posgate check --service "$LISTED_SVC" --id "$LISTED_ID"
echo "-- a subject nobody listed (a valid resident id):"
run_rc posgate check --service rail.hsr --id "$CLEAN_ID"
echo "-- a listed subject with a court-approved exemption:"
run_rc posgate check --service "$EXEMPT_SVC" --id "$EXEMPT_ID"
echo "-- a bare name and birth date match can only REFER:"
run_rc posgate check --service "$NAME_SVC" --id "$NAME_ID"
echo "-- a mistyped identifier is an input error, never an ALLOW:"
BAD_ID=${CLEAN_ID%?}$( [[ ${CLEAN_ID: -1} == 0 ]] && echo 1 || echo 0 )   # wrong check character
run_rc posgate check --service rail.hsr --id "$BAD_ID"
echo "-- the same decision as JSON (its footing: service date, data age, feed_expired, stale_lists, list_key):"
run_rc posgate check --service "$LISTED_SVC" --id "$LISTED_ID" --json
echo "-- README's example checks, on this kiosk (POSGATE_DATA_DIR=$POSGATE_DATA_DIR):"
run_rc posgate check --service rail.hsr --id cn_rid:11010519491231002X
run_rc posgate check --service air --id passport:DEU:C01X00T47 --json
run_rc posgate check --service hotel.star --name "Li Lei" --birth-date 1990-01-02

step "publisher: the listing of $LISTED_ID is lifted; publish an update"
LISTING=$(awk -F, -v id="$LISTED_ID" '$1 == "listed" && $2 == id { print $5; exit }' subjects.csv)
[[ -n $LISTING ]] || { echo "demo.sh: no listing id for $LISTED_ID" >&2; exit 1; }
grep -v ",$LISTING," entries.csv > entries2.csv
echo "removed $(( $(wc -l < entries.csv) - $(wc -l < entries2.csv) )) row(s) of listing $LISTING"
run posgate-publish update --state pubstate --entries entries2.csv --out feed
ls feed/targets/lists/*/ | grep -c delta | sed 's/^/delta targets in the feed: /'

step "kiosk: import the update (a delta) and ask again"
run posgate import feed
run_rc posgate check --service "$LISTED_SVC" --id "$LISTED_ID"
run posgate status
run posgate verify
step "network: posgate-hub serves the feed, posgated syncs by itself and answers over HTTP"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT
rm -f hub.port
posgate-hub --feed feed --listen 127.0.0.1:0 --port-file hub.port --log-level warn &
PIDS+=($!)
for _ in $(seq 50); do [[ -s hub.port ]] && break; sleep 0.1; done
HUB=http://127.0.0.1:$(cat hub.port)
API_PORT=$(free_port)
POLL=2
posgate --data-dir "$WORK/kiosk2" init --root feed/metadata/1.root.json --list-key keys/list.key \
    --jurisdiction CN >/dev/null
cat > posgated.json <<JSON
{
  "data_dir": "$WORK/kiosk2",
  "listen": ["127.0.0.1:$API_PORT"],
  "feed_urls": ["$HUB"],
  "poll_interval_s": $POLL,
  "log_level": "warn"
}
JSON
cat posgated.json
posgated --config posgated.json &
DAEMON=$!
PIDS+=($DAEMON)
API=http://127.0.0.1:$API_PORT
for _ in $(seq 100); do curl -sf "$API/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
run curl -s "$API/healthz"; echo
# another listed subject: the first one was lifted above
SUBJECT=$(awk -F, -v x="$LISTED_ID" '$1 == "listed" && $2 != x { gsub(/"/, "", $0); print $2; exit }' subjects.csv)
SVC=$(awk -F, -v x="$LISTED_ID" '$1 == "listed" && $2 != x { print $3; exit }' subjects.csv)
BODY="{\"service\": \"$SVC\", \"ids\": [\"$SUBJECT\"], \"operator\": \"counter-7\"}"
echo "-- POST /v1/check $BODY"
curl -s -X POST -H 'Content-Type: application/json' -d "$BODY" "$API/v1/check" |
    python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["decision"].upper(), [r["listing_id"] for r in d["reasons"]], "feed version", d["feed_version"])'
echo "-- POST /v1/check with a mistyped identifier: HTTP $(curl -s -o /dev/null -w '%{http_code}' -X POST -H 'Content-Type: application/json' \
    -d "{\"service\": \"rail.hsr\", \"ids\": [\"$BAD_ID\"]}" "$API/v1/check") (the error names the field)"

step "publisher lifts the listing of $SUBJECT; the daemon picks it up within two poll intervals"
SUBJECT_LISTING=$(awk -F, -v id="$SUBJECT" '$1 == "listed" && $2 == id { print $5; exit }' subjects.csv)
grep -v ",$SUBJECT_LISTING," entries2.csv > entries3.csv
run posgate-publish update --state pubstate --entries entries3.csv --out feed
start=$(date +%s%N)
for _ in $(seq $((POLL * 20))); do
    d=$(curl -s -X POST -H 'Content-Type: application/json' -d "$BODY" "$API/v1/check" | python3 -c 'import json,sys; print(json.load(sys.stdin)["decision"])')
    [[ $d == allow ]] && break
    sleep 0.1
done
printf 'now %s after %d ms (poll interval %d s)\n' "$(echo "$d" | tr a-z A-Z)" \
    $(( ($(date +%s%N) - start) / 1000000 )) "$POLL"
curl -s "$API/v1/status" | python3 -c 'import json,sys; d=json.load(sys.stdin); print("feed version", d["feed_version"], "sync", d["sync"])'
curl -s "$API/metrics" | grep -E '^posgate_(checks_total|feed_version|sync_attempts_total)' | head -6

step "stopping the daemon and the hub cleanly (SIGTERM)"
kill -TERM "$DAEMON"; wait "$DAEMON" && echo "posgated exited 0"
cleanup; trap - EXIT


step "audit: posgated uploads its decisions to posgate-hub --db; the collector verifies the chain"
# the kiosk's device key (made by `posgate init`) is enrolled at the collector, then the daemon
# is started again with audit_url: every decision it made above, and the ones below, arrive once
run posgate --data-dir "$WORK/kiosk2" device-key
rm -f hub.db hub.db-wal hub.db-shm collector.port
run posgate-hub enroll --db hub.db --pub "$WORK/kiosk2/device.pub"
PIDS=()
trap cleanup EXIT
posgate-hub serve --db hub.db --listen 127.0.0.1:0 --port-file collector.port --log-level warn &
PIDS+=($!)
for _ in $(seq 50); do [[ -s collector.port ]] && break; sleep 0.1; done
python3 - posgated.json "http://127.0.0.1:$(cat collector.port)/v1/audit" > posgated-audit.json <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
c.update({"audit_url": sys.argv[2], "audit_upload_interval_s": 1, "audit_durability": "batched",
          "log_level": "error"})  # the feed hub is stopped: sync warnings would be noise
print(json.dumps(c, indent=2))
PY
cat posgated-audit.json
posgated --config posgated-audit.json &
DAEMON=$!
PIDS+=($DAEMON)
for _ in $(seq 100); do curl -sf "$API/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
for _ in 1 2 3; do curl -s -o /dev/null -X POST -H 'Content-Type: application/json' -d "$BODY" "$API/v1/check"; done
for _ in $(seq 100); do
    q=$(curl -s "$API/v1/status" | python3 -c 'import json,sys; a=json.load(sys.stdin)["audit"]; print(a["queued"] == 0 and a["last_upload"] is not None)')
    [[ $q == True ]] && break
    sleep 0.1
done
curl -s "$API/v1/status" | python3 -c 'import json,sys; print("audit", json.load(sys.stdin)["audit"])'
curl -s "$API/metrics" | grep -E '^posgate_audit_(queued|uploaded_total)'
run posgate-hub stats --db hub.db
posgate-hub stats --db hub.db --json | python3 -c 'import json,sys; s=json.load(sys.stdin); d=s["devices"][0]; print("collector: %d events, by decision %s; device %s last_seq %d, gaps %d, chain_ok %s" % (s["events"], s["by_decision"], d["device_id"], d["last_seq"], d["gaps"], d["chain_ok"]))'
kill -TERM "$DAEMON"; wait "$DAEMON" && echo "posgated exited 0"
cleanup; trap - EXIT

step "fleet dashboard: the first kiosk's visit on a USB stick, then the hub's /dashboard"
# the kiosk that imported by hand never uploads: a field operator carries its audit trail and its
# status report to the collector on a stick
run posgate-hub enroll --db hub.db --pub "$WORK/kiosk/device.pub"
rm -rf stick; mkdir stick
run posgate --data-dir "$WORK/kiosk" field-sync stick
run posgate-hub ingest stick --db hub.db
TOKEN=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
(umask 077; echo "$TOKEN" > admin.token)
rm -f dashboard.port
PIDS=()
trap cleanup EXIT
posgate-hub serve --feed feed --db hub.db --admin-token "$TOKEN" --listen 127.0.0.1:0 \
    --port-file dashboard.port --log-level warn &
PIDS+=($!)
for _ in $(seq 50); do [[ -s dashboard.port ]] && break; sleep 0.1; done
echo "-- GET /v1/fleet/devices (the dashboard's data, for other tools too):"
curl -s -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$(cat dashboard.port)/v1/fleet/devices" |
    python3 -c 'import json,sys; d=json.load(sys.stdin); print("newest feed version %s (%s)" % (d["newest_feed_version"], d["newest_from"])); [print("device %s feed version %s: %s" % (x["device_id"], x["feed_version"], ", ".join(x["states"]))) for x in d["devices"]]'
cleanup; trap - EXIT
echo
echo "demo finished; files are in $WORK"
echo
echo "The fleet dashboard, with the demo's $(posgate-hub stats --db hub.db --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["devices"]))') kiosks in it: start the hub (it stops with Ctrl-C),"
echo "  $B/posgate-hub serve --feed $WORK/feed --db $WORK/hub.db --admin-token $TOKEN --listen 127.0.0.1:8090"
echo "then open http://127.0.0.1:8090/dashboard and sign in with the admin token $TOKEN"
echo "(also in $WORK/admin.token)."
