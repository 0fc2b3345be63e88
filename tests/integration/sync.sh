#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# `posgate sync` against real servers on 127.0.0.1: posgate-hub over HTTP (first install, a
# delta update, a conditional 304 poll, a dead URL exiting 5 while the kiosk keeps serving, a
# mirror list whose first mirror is dead); the fault-injecting proxy (tests/integration/
# faultproxy.py) in each mode (drop, stall, truncate then resume with Range, 500, 429 with
# Retry-After, replay of an older timestamp): the kiosk keeps answering from its last good
# version, the exit code and message name the failure, and the next sync after the fault
# succeeds; nginx over HTTPS requiring a client certificate (throwaway CA made with openssl):
# --ca-file + --client-cert/--client-key works, a wrong CA and a missing client certificate fail
# with clear TLS messages (exit 5). Every server is killed at the end.
# Usage: sync.sh BUILD_DIR
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
B=${1:?usage: sync.sh BUILD_DIR}
SRC=$(cd "$(dirname "$0")" && pwd)
T=$(mktemp -d "${TMPDIR:-/tmp}/posgate-sync-XXXXXX")
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    rm -rf "$T"
}
trap cleanup EXIT
cd "$T"
unset POSGATE_DATA_DIR POSGATE_FAKE_NOW http_proxy https_proxy HTTP_PROXY HTTPS_PROXY
# shared helpers: fail, expect_rc, free_port, wait_for
. "$HERE/lib.sh"
expect_err() { # SYNC_VERBOSE=1 shows every message checked
    [[ -z ${SYNC_VERBOSE:-} ]] || echo "[$1] $(cat err.txt)" >&2
    grep -q -- "$1" err.txt || { cat err.txt >&2; fail "expected \"$1\" in the message"; }
}
pg() { "$B/posgate" --data-dir "$T/$1" "${@:2}"; }
wait_file() { for _ in $(seq 100); do [[ -s "$1" ]] && return 0; sleep 0.1; done; fail "no $1"; }
subject() { # subject SITUATION FIELD
    awk -F, -v s="$1" -v f="$2" '$1 == s { gsub(/"/, "", $0); print (f == "id" ? $2 : $3); exit }' subj.csv
}
fault() { curl -sf "http://127.0.0.1:$PX/__fault?$1" >/dev/null || fail "cannot set fault $1"; }
version() { pg "$1" status --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["feed_version"])'; }

# ---- a published feed served by posgate-hub ----
"$B/posgate-keygen" --out root >/dev/null
"$B/posgate-keygen" --out feed >/dev/null
"$B/posgate-keygen" --list-key --out list.key >/dev/null
"$B/posgate-synth" --count 3000 --seed 11 --out e1.csv --config-out feed.json --subjects-out subj.csv
"$B/posgate-publish" init --state st --config feed.json --root-key root.key --threshold 1 \
    --feed-key feed.key --list-key list.key >/dev/null
"$B/posgate-publish" update --state st --entries e1.csv --out feed >/dev/null 2>&1
LISTED=$(subject listed id) LSVC=$(subject listed service)
LISTING=$(awk -F, -v id="$LISTED" '$1 == "listed" && $2 == id { print $5; exit }' subj.csv)
[[ -n $LISTED && -n $LISTING ]] || fail "no listed subject in subj.csv"

expect_rc 0 "$B/posgate-hub" --help
grep -q "usage: posgate-hub" out.txt || fail "posgate-hub --help"
expect_rc 2 "$B/posgate-hub" --feed feed
"$B/posgate-hub" --feed feed --listen 127.0.0.1:0 --port-file hub.port 2>hub.log &
PIDS+=($!)
wait_file hub.port
HP=$(cat hub.port)
HUB=http://127.0.0.1:$HP
DEAD=http://127.0.0.1:$(free_port)

expect_rc 0 "$B/posgate" sync --help
grep -q "usage: posgate \[--data-dir DIR\] sync" out.txt || fail "sync --help"
expect_rc 2 pg k1 sync
expect_rc 2 pg k1 sync --url ftp://127.0.0.1/feed
expect_rc 2 pg k1 sync --url "$HUB" --client-cert c.pem
expect_rc 0 pg k1 init --root feed/metadata/1.root.json --list-key list.key --jurisdiction CN

# first install, then a delta, then a conditional poll
expect_rc 0 pg k1 sync --url "$HUB"
grep -q "installed feed version 1" out.txt || fail "first sync said: $(cat out.txt)"
expect_rc 1 pg k1 check --service "$LSVC" --id "$LISTED"
grep -v ",$LISTING," e1.csv > e2.csv
"$B/posgate-publish" update --state st --entries e2.csv --out feed >/dev/null 2>&1
expect_rc 0 pg k1 sync --url "$HUB"
grep -q "installed feed version 2" out.txt || fail "update sync said: $(cat out.txt)"
grep -q "1 delta" out.txt || fail "expected a delta: $(cat out.txt)"
expect_rc 0 pg k1 check --service "$LSVC" --id "$LISTED"
expect_rc 0 pg k1 sync --url "$HUB" --json
python3 - out.txt <<'EOF' || fail "poll --json: $(cat out.txt)"
import json, sys
d = json.load(open(sys.argv[1]))
assert d["ok"] is True and d["exit"] == 0 and d["changed"] is False and d["feed_version"] == 2, d
assert d["fetch"]["not_modified"] == 1, d          # timestamp.json answered 304
assert d["error"] is None and set(d["fetch"]["failures"]) >= {"network", "http_5xx", "tls"}, d
EOF
grep -q "GET /metadata/timestamp.json 304" hub.log || fail "hub saw no conditional GET"

# a dead URL: exit 5, the kiosk keeps serving; a dead first mirror is skipped
expect_rc 5 pg k1 sync --url "$DEAD"
expect_err "Couldn't connect\|Failed to connect"
expect_err "last good version keeps serving"
expect_rc 0 pg k1 check --service "$LSVC" --id "$LISTED"
expect_rc 0 pg k1 verify
expect_rc 0 pg k1 sync --url "$DEAD" --url "$HUB"
[[ $(version k1) == 2 ]] || fail "version after mirror sync: $(version k1)"

# ---- the fault-injecting proxy ----
python3 "$SRC/faultproxy.py" --upstream "$HUB" --port-file proxy.port --quiet >/dev/null 2>proxy.log &
PIDS+=($!)
wait_file proxy.port
PX=$(cat proxy.port)
PROXY=http://127.0.0.1:$PX
expect_rc 0 pg k1 sync --url "$PROXY"          # records version 2's timestamp for `replay`
# version 3 puts the listing back: every faulty sync must leave version 2 answering ALLOW
"$B/posgate-publish" update --state st --entries e1.csv --out feed >/dev/null 2>&1
still_v2() {
    expect_rc 0 pg k1 check --service "$LSVC" --id "$LISTED"
    expect_rc 0 pg k1 verify
    [[ $(version k1) == 2 ]] || fail "version changed during a fault: $(version k1)"
}
fault "mode=drop"
expect_rc 5 pg k1 sync --url "$PROXY"
expect_err "Empty reply from server"
still_v2
fault "mode=stall&stall_s=20"
expect_rc 5 pg k1 sync --url "$PROXY" --timeout 2
expect_err "timed out"
still_v2
fault "mode=error500"
expect_rc 5 pg k1 sync --url "$PROXY"
expect_err "HTTP 500"
still_v2
fault "mode=error429&retry_after=30"
expect_rc 5 pg k1 sync --url "$PROXY" --json
expect_err "HTTP 429"
expect_err "retry in 30 s"
python3 -c 'import json,sys; d=json.load(open("out.txt")); assert d["retry_after_s"] in (29,30) and d["exit"]==5, d' \
    || fail "429 --json: $(cat out.txt)"
still_v2
fault "mode=error429&retry_after=30&date=1"
expect_rc 5 pg k1 sync --url "$PROXY"
expect_err "retry in [23][0-9] s"
still_v2
fault "mode=truncate&match=/targets/lists/"
expect_rc 5 pg k1 sync --url "$PROXY"
expect_err "transfer closed with"
still_v2
ls k1/incoming/partial/*.part >/dev/null 2>&1 || fail "no partial download kept for resume"
# partial downloads of targets no version needs any more (abandoned half-way): a successful
# sync removes them, except one a transfer holds locked right now
SP=k1/incoming/partial
printf 'stale' > "$SP/0123456789abcdef0123456789abcdef.part"
printf 'posgate-partial 1\nname old\netag \nlast-modified \n' > "$SP/0123456789abcdef0123456789abcdef.meta"
printf 'busy' > "$SP/fedcba9876543210fedcba9876543210.part"
flock "$SP/fedcba9876543210fedcba9876543210.part" sleep 60 &
LOCKER=$!
PIDS+=("$LOCKER")
sleep 0.3
# the fault stops: the next sync resumes the cut download with Range and installs version 3
fault "mode=pass"
expect_rc 0 pg k1 sync --url "$PROXY"
grep -q "installed feed version 3" out.txt || fail "recovery sync said: $(cat out.txt)"
grep -q "GET /targets/lists/.* 206 " hub.log || fail "the cut download was not resumed with Range"
[[ -f $SP/fedcba9876543210fedcba9876543210.part ]] || fail "a locked partial download was removed"
kill "$LOCKER" 2>/dev/null; wait "$LOCKER" 2>/dev/null || true
rm -f "$SP/fedcba9876543210fedcba9876543210.part"
[[ ! -e $SP/0123456789abcdef0123456789abcdef.meta ]] || fail "an abandoned partial's .meta was left"
if ls k1/incoming/partial/*.part >/dev/null 2>&1; then fail "partial files left after success: $(ls $SP)"; fi
expect_rc 1 pg k1 check --service "$LSVC" --id "$LISTED"
# replay of version 2's timestamp (a rollback/freeze attempt): refused, version 3 keeps serving
fault "mode=replay"
expect_rc 4 pg k1 sync --url "$PROXY"
expect_err "refused, nothing changed"
expect_rc 1 pg k1 check --service "$LSVC" --id "$LISTED"
expect_rc 0 pg k1 verify
[[ $(version k1) == 3 ]] || fail "version after replay: $(version k1)"
fault "mode=pass"
expect_rc 0 pg k1 sync --url "$PROXY"
curl -sf "$PROXY/__fault/stats" | python3 -c '
import json,sys; d=json.load(sys.stdin)
for m in ("drop","stall","error500","error429","truncate","replay"): assert d["faults"].get(m,0) >= 1, (m, d)' \
    || fail "proxy stats"

# ---- nginx over HTTPS with a client certificate required ----
mkdir -p pki nginx/tmp
(
    cd pki
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key \
        -out ca.pem -days 2 -subj /CN=posgate-test-ca 2>/dev/null
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout wrong.key \
        -out wrong-ca.pem -days 2 -subj /CN=some-other-ca 2>/dev/null
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout server.key \
        -out server.csr -subj /CN=127.0.0.1 2>/dev/null
    printf 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' > server.ext
    openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
        -extfile server.ext -out server.pem 2>/dev/null
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout client.key \
        -out client.csr -subj /CN=kiosk-1 2>/dev/null
    printf 'extendedKeyUsage=clientAuth\n' > client.ext
    openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
        -extfile client.ext -out client.pem 2>/dev/null
)
chmod 755 "$T"
chmod -R a+rX feed
start_nginx() {
    NP=$(free_port)
    cat > nginx/nginx.conf <<EOF
worker_processes 1;
pid $T/nginx/nginx.pid;
error_log $T/nginx/error.log info;
events { worker_connections 64; }
http {
    access_log $T/nginx/access.log;
    client_body_temp_path $T/nginx/tmp/body;
    proxy_temp_path $T/nginx/tmp/proxy;
    fastcgi_temp_path $T/nginx/tmp/fastcgi;
    uwsgi_temp_path $T/nginx/tmp/uwsgi;
    scgi_temp_path $T/nginx/tmp/scgi;
    server {
        listen 127.0.0.1:$NP ssl;
        ssl_certificate $T/pki/server.pem;
        ssl_certificate_key $T/pki/server.key;
        ssl_client_certificate $T/pki/ca.pem;
        ssl_verify_client on;
        root $T/feed;
        location / { }
    }
}
EOF
    nginx -p "$T/nginx" -c "$T/nginx/nginx.conf" -e "$T/nginx/error.log" -g 'daemon off;' \
        2>>nginx/stderr.log &
    NGINX_PID=$!
    PIDS+=($NGINX_PID)
    for _ in $(seq 50); do
        if curl -s -o /dev/null --cacert pki/ca.pem --cert pki/client.pem --key pki/client.key \
            "https://127.0.0.1:$NP/metadata/timestamp.json"; then return 0; fi
        kill -0 "$NGINX_PID" 2>/dev/null || return 1
        sleep 0.1
    done
    return 1
}
started=0
for _ in 1 2 3; do if start_nginx; then started=1; break; fi; done
[[ $started == 1 ]] || { cat nginx/stderr.log nginx/error.log >&2 || true; fail "nginx did not start"; }
NGX=https://127.0.0.1:$NP
expect_rc 0 pg k5 init --root feed/metadata/1.root.json --list-key list.key --jurisdiction CN
expect_rc 0 pg k5 sync --url "$NGX" --ca-file pki/ca.pem --client-cert pki/client.pem \
    --client-key pki/client.key
grep -q "installed feed version 3" out.txt || fail "nginx sync said: $(cat out.txt)"
expect_rc 1 pg k5 check --service "$LSVC" --id "$LISTED"
expect_rc 0 pg k5 sync --url "$NGX" --ca-file pki/ca.pem --client-cert pki/client.pem \
    --client-key pki/client.key --json
python3 -c 'import json; d=json.load(open("out.txt")); assert d["fetch"]["not_modified"]==1, d' \
    || fail "nginx conditional GET: $(cat out.txt)"
# a wrong CA: the server is not trusted
expect_rc 5 pg k5 sync --url "$NGX" --ca-file pki/wrong-ca.pem --client-cert pki/client.pem \
    --client-key pki/client.key
expect_err "TLS: certificate not trusted by ca_file pki/wrong-ca.pem"
# without --ca-file the system store does not know our throwaway CA either
expect_rc 5 pg k5 sync --url "$NGX" --client-cert pki/client.pem --client-key pki/client.key
expect_err "TLS: certificate not trusted by the system CA store"
# no client certificate: nginx refuses the request
expect_rc 5 pg k5 sync --url "$NGX" --ca-file pki/ca.pem
expect_err "No required SSL certificate was sent"
expect_err "client certificate"
# a client certificate the CA did not sign
expect_rc 5 pg k5 sync --url "$NGX" --ca-file pki/ca.pem --client-cert pki/wrong-ca.pem \
    --client-key pki/wrong.key
expect_err "HTTP 400"
# an unreadable client key is a clear TLS error
expect_rc 5 pg k5 sync --url "$NGX" --ca-file pki/ca.pem --client-cert pki/client.pem \
    --client-key pki/nonexistent.key
expect_err "client certificate"
expect_rc 1 pg k5 check --service "$LSVC" --id "$LISTED"
expect_rc 0 pg k5 verify

# posgate-hub over HTTPS with client certificates serves the same feed
"$B/posgate-hub" --feed feed --listen 127.0.0.1:0 --port-file hubs.port --tls-cert pki/server.pem \
    --tls-key pki/server.key --tls-client-ca pki/ca.pem 2>hubs.log &
PIDS+=($!)
wait_file hubs.port
HUBS=https://127.0.0.1:$(cat hubs.port)
expect_rc 0 pg k6 init --root feed/metadata/1.root.json --list-key list.key --jurisdiction CN
expect_rc 5 pg k6 sync --url "$HUBS" --ca-file pki/ca.pem
expect_err "HTTP 403"
expect_rc 0 pg k6 sync --url "$HUBS" --ca-file pki/ca.pem --client-cert pki/client.pem \
    --client-key pki/client.key
grep -q "installed feed version 3" out.txt || fail "hub https sync said: $(cat out.txt)"

# the hub stops cleanly on SIGTERM
kill -TERM "${PIDS[0]}"
set +e; wait "${PIDS[0]}"; rc=$?; set -e
[[ $rc == 0 ]] || fail "posgate-hub exited $rc on SIGTERM"
echo "sync: ok"
