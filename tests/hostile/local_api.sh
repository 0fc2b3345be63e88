#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The local API of posgated attacked the way a kiosk's own browser or another program on the
# box would (issue 16, items 1-6; docs/security.md). Loopback and a unix socket only; every
# attack is bounded in count and time:
#   - config: allow_remote without api_token, or an admin_token equal to api_token, is a
#     start-up error (exit 2);
#   - cross-site and DNS rebinding: a foreign Host (421), a foreign Origin (403; an allowed one
#     gets CORS headers), a POST body not typed application/json (415);
#   - privileges: POST /v1/sync and overrides refused (403) with the check token, granted on
#     the unix socket and with the admin token;
#   - sync flood: 64 concurrent POST /v1/sync while the mirror accepts and never answers all get
#     202 and one sync id at once, and checks keep a latency under 100 ms;
#   - slow clients: 256 connections trickling headers; a fresh loopback client and the unix
#     socket answer checks within 100 ms, and the server closes the trickling connections at
#     their request deadline; one peer address opening 552 connections gets 40 closed at once
#     (512 per peer) while other clients keep answering;
#   - text: NUL (\u0000), control characters and invalid UTF-8 in string fields get a 400
#     naming the field, and `posgate audit export` writes only valid JSON lines;
#   - a full disk during a sync (a small tmpfs mounted here; skipped with a message when
#     mounting is not permitted) is a store failure: sync.result kind "disk", http_status 500,
#     posgate_sync_failures_total{kind="disk"}.
# Usage: local_api.sh BUILD_DIR
set -euo pipefail
B=${1:?usage: local_api.sh BUILD_DIR}
B=$(cd "$B" && pwd)
S=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
T=$(mktemp -d "${TMPDIR:-/tmp}/posgate-localapi-XXXXXX")
PIDS=()
MOUNTED=""
cleanup() {
    for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null && wait "$p" 2>/dev/null || true; done
    if [[ -n $MOUNTED ]]; then umount "$MOUNTED" 2>/dev/null || true; fi
    rm -rf "$T"
}
trap cleanup EXIT
cd "$T"
unset POSGATE_DATA_DIR POSGATE_FAKE_NOW
fail() {
    echo "FAIL: $*" >&2
    for f in daemon.log disk.log; do if [[ -f $f ]]; then tail -20 "$f" >&2; fi; done
    exit 1
}
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
wait_for() { # wait_for SECONDS CMD...
    local end=$(( $(date +%s%N) + $1 * 1000000000 )); shift
    until "$@"; do
        (( $(date +%s%N) < end )) || return 1
        sleep 0.2
    done
}

# ---- a feed, a kiosk holding version 1, a mirror that accepts and never answers
"$B/posgate-keygen" --out root >/dev/null
"$B/posgate-keygen" --out feedk >/dev/null
"$B/posgate-keygen" --list-key --out list.key >/dev/null
"$B/posgate-synth" --count 400 --seed 11 --out e1.csv --config-out feed.json --subjects-out subj.csv
"$B/posgate-publish" init --state st --config feed.json --root-key root.key --threshold 1 \
    --feed-key feedk.key --list-key list.key >/dev/null
"$B/posgate-publish" update --state st --entries e1.csv --out feed >/dev/null 2>&1
"$B/posgate" --data-dir k init --root feed/metadata/1.root.json --list-key list.key \
    --jurisdiction CN >/dev/null
"$B/posgate" --data-dir k import feed >/dev/null

HANG=$(free_port)
python3 - "$HANG" <<'PY' &
import socket, sys, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(512)
held = []
end = time.time() + 120
s.settimeout(1)
while time.time() < end:
    try:
        c, _ = s.accept(); held.append(c)   # read nothing, answer nothing
    except socket.timeout:
        pass
PY
PIDS+=($!)

DPORT=$(free_port)
SOCK=$T/api.sock
TOKEN=tok-$RANDOM$RANDOM
ADMIN=adm-$RANDOM$RANDOM
ORIGIN=http://127.0.0.1:9
cat > daemon.json <<CFG
{"data_dir": "$T/k", "listen": ["127.0.0.1:$DPORT", "unix:$SOCK"],
 "feed_urls": ["http://127.0.0.1:$HANG/"], "poll_interval_s": 3600,
 "api_token": "$TOKEN", "admin_token": "$ADMIN", "allowed_origins": ["$ORIGIN"],
 "allowed_hosts": ["kiosk.test"], "log_level": "warn"}
CFG

# ---- config: remote listening without a token, one token for both roles
echo '{"listen": ["127.0.0.1:'"$DPORT"'"], "allow_remote": true}' > bad1.json
echo '{"api_token": "same", "admin_token": "same"}' > bad2.json
rc=0; "$B/posgated" --check-config --config bad1.json 2>err.txt || rc=$?
[[ $rc == 2 ]] && grep -q "allow_remote: true needs an api_token" err.txt ||
    fail "allow_remote without api_token: rc $rc $(cat err.txt)"
rc=0; "$B/posgated" --check-config --config bad2.json 2>err.txt || rc=$?
[[ $rc == 2 ]] && grep -q "admin_token: expected a token other than api_token" err.txt ||
    fail "admin_token equal to api_token: rc $rc $(cat err.txt)"

"$B/posgated" --config daemon.json 2>daemon.log &
PIDS+=($!)
wait_for 10 test -S "$SOCK" || fail "posgated did not start"
wait_for 10 curl -s -o /dev/null -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$DPORT/healthz" ||
    fail "posgated does not answer"

LISTED=$(awk -F, '$1 == "listed" && index($2, "cn_rid:") == 1 { gsub(/"/, "", $0); print $2 "," $3; exit }' subj.csv)
[[ -n $LISTED ]] || fail "no listed subject in subj.csv"

python3 "$S/local_api.py" --port "$DPORT" --sock "$SOCK" --token "$TOKEN" --admin "$ADMIN" \
    --origin "$ORIGIN" --subject "$LISTED" || fail "local API attacks"

# ---- every audit line exported is valid JSON, though hostile text was sent
"$B/posgate" --data-dir k audit export --out audit.jsonl >/dev/null || fail "audit export"
python3 - <<'PY' || fail "audit export wrote a line that is not JSON"
import json
n = 0
with open("audit.jsonl", "rb") as f:
    for line in f:
        json.loads(line.decode("utf-8", errors="strict"))
        n += 1
assert n > 0
print(f"audit export: {n} valid JSON lines")
PY

# ---- a full disk during a sync is a store failure, not a network one
kill -9 "${PIDS[-1]}" 2>/dev/null; wait "${PIDS[-1]}" 2>/dev/null || true
unset 'PIDS[-1]'
mkdir -p small
if ! mount -t tmpfs -o size=24m tmpfs "$T/small" 2>/dev/null; then
    echo "SKIP full disk: mounting a tmpfs is not permitted here"
    echo "local API: all attacks refused"
    exit 0
fi
MOUNTED=$T/small
cp -a k small/k
head -n 200 e1.csv > e2.csv # version 2 removes entries
"$B/posgate-publish" update --state st --entries e2.csv --out feed --allow-mass-change >/dev/null 2>&1 ||
    fail "publishing version 2"
HPORT=$(free_port)
SOCK2=$T/disk.sock
cat > disk.json <<CFG
{"data_dir": "$T/small/k", "listen": ["unix:$SOCK2"], "feed_urls": ["http://127.0.0.1:$HPORT/"],
 "poll_interval_s": 3600, "log_level": "warn"}
CFG
"$B/posgated" --config disk.json 2>disk.log &
PIDS+=($!)
wait_for 10 test -S "$SOCK2" || fail "posgated on the small file system did not start"
# then the file system fills up and the feed server comes up with version 2
dd if=/dev/zero of=small/ballast bs=64k 2>/dev/null || true
"$B/posgate-hub" --feed feed --listen "127.0.0.1:$HPORT" 2>hub.log &
PIDS+=($!)
wait_for 10 curl -s -o /dev/null "http://127.0.0.1:$HPORT/metadata/timestamp.json" || fail "hub did not start"
python3 "$S/local_api.py" --disk --sock "$SOCK2" || fail "full disk not reported as a store failure"
echo "local API: all attacks refused"
