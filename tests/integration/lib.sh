# SPDX-License-Identifier: Apache-2.0
# Helpers the integration scripts share; sourced, never run. A script that needs another
# behaviour defines its own function after sourcing this file.
#
#   FAIL_LOGS=(daemon.log)   files whose last FAIL_TAIL lines (default 20) fail prints
#   EXPECT_DIR=$T            where expect_rc keeps out.txt and err.txt (default: the cwd)

FAIL_LOGS=()
FAIL_TAIL=20
EXPECT_DIR=.

# fail MSG...: says why on stderr, with the tail of each existing file in FAIL_LOGS; exits 1.
fail() {
    echo "FAIL: $*" >&2
    local f
    for f in "${FAIL_LOGS[@]}"; do
        if [[ -f $f ]]; then tail -"$FAIL_TAIL" "$f" >&2; fi
    done
    exit 1
}

# expect_rc RC CMD...: runs CMD, fails unless it exits RC; its output stays in
# $EXPECT_DIR/out.txt and $EXPECT_DIR/err.txt for the checks that follow.
expect_rc() {
    local want=$1; shift
    set +e; "$@" >"$EXPECT_DIR/out.txt" 2>"$EXPECT_DIR/err.txt"; local rc=$?; set -e
    [[ $rc == "$want" ]] || {
        cat "$EXPECT_DIR/out.txt" "$EXPECT_DIR/err.txt" >&2
        fail "$* exited $rc, expected $want"
    }
}

# free_port: a TCP port on 127.0.0.1 that nothing listens on right now.
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# wait_for SECONDS CMD...: retries CMD every 0.2 s until it succeeds (0) or time is up (1).
wait_for() {
    local end=$(( $(date +%s%N) + $1 * 1000000000 )); shift
    until "$@"; do
        (( $(date +%s%N) < end )) || return 1
        sleep 0.2
    done
}

# The daemon's local API over its unix socket $SOCK (the keys_* scripts):
#   api METHOD PATH [BODY]  prints the HTTP status, keeps the body in resp.json
#   sync_now                asks for a sync, waits for its result (asking the status again when
#                           an answer is not the status object, kept in status-odd.txt) and
#                           prints its http_status, the result in resp.json
api() { # api METHOD PATH [BODY] : prints the status, body in resp.json
    python3 - "$SOCK" "$1" "$2" "${3:-}" <<'PY'
import socket, sys
s = socket.socket(socket.AF_UNIX); s.settimeout(60); s.connect(sys.argv[1])
body = sys.argv[4].encode()
s.sendall(("%s %s HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Type: application/json\r\n"
           "Content-Length: %d\r\n\r\n" % (sys.argv[2], sys.argv[3], len(body))).encode() + body)
data = b""
while True:
    d = s.recv(65536)
    if not d:
        break
    data += d
head, _, rest = data.partition(b"\r\n\r\n")
open("resp.json", "wb").write(rest)
print(int(head.split()[1]))
PY
}
sync_now() { # asks the daemon for a sync and prints its result's http_status
    python3 - "$SOCK" <<'PY'
import json, socket, sys, time
def req(method, path):
    s = socket.socket(socket.AF_UNIX); s.settimeout(30); s.connect(sys.argv[1])
    s.sendall(f"{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".encode())
    data = b""
    while True:
        d = s.recv(65536)
        if not d:
            break
        data += d
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body
code, body = req("POST", "/v1/sync")
if code != 202:
    open("resp.json", "wb").write(body); print(code); sys.exit(0)
want = json.loads(body)["sync_id"]
end = time.time() + 120
while time.time() < end:
    code, body = req("GET", "/v1/status")
    try:
        res = json.loads(body)["sync"]["result"] if code == 200 else None
    except (ValueError, KeyError):
        res = None  # an answer other than the status: asked again, and kept for the record
        open("status-odd.txt", "ab").write(b"%d %s\n" % (code, body))
    if res is not None and res["id"] >= want:
        json.dump(res, open("resp.json", "w")); print(res["http_status"]); sys.exit(0)
    time.sleep(0.1)
print("timeout")
PY
}
