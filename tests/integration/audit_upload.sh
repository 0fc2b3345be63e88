#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The audit uploader of posgated end to end with real processes on 127.0.0.1: kiosks made by
# audit_fixture.sh, posgated with audit_url, posgate-hub --db as the collector, hub.db read with
# python3's sqlite3. Scenarios (each with its own kiosk copy and hub.db):
#   kill   SIGKILL posgated at random points while checks (POST /v1/check, every answered
#          decision_id recorded) and uploads run, ROUNDS times (POSGATE_AUDIT_KILL_ROUNDS,
#          default 50); after a restart and a drain every answered decision is at the collector
#          exactly once, seqs without gaps, chain_ok.
#   down   the collector down for 2,000 checks (status and metrics report the failures), then
#          up: the queue drains, nothing lost.
#   ack    a proxy that loses the collector's answer, then one that posts every batch twice:
#          no event stored twice, every decision once.
#   break  an event edited (and, on a second kiosk, deleted) in audit.db before upload: the
#          collector refuses the batch (422, nothing recorded: the signed head does not cover
#          it), the daemon stops uploading and says why.
#   full   a tiny audit_max_bytes with the collector down: every DENY and REFER kept, every
#          ALLOW accounted for (allow events + allow_folded == ALLOWs answered).
# Usage: audit_upload.sh BUILD_DIR [SCENARIO...]
set -euo pipefail
B=$(cd "${1:?usage: audit_upload.sh BUILD_DIR [SCENARIO...]}" && pwd)
shift
SCEN=${*:-kill down ack break full}
HERE=$(cd "$(dirname "$0")" && pwd)
T=$(mktemp -d "${TMPDIR:-/tmp}/posgate-auditup-XXXXXX")
ROUNDS=${POSGATE_AUDIT_KILL_ROUNDS:-50}
PIDS=()
cleanup() {
    local p
    for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    rm -rf "$T"
}
trap cleanup EXIT
unset POSGATE_DATA_DIR POSGATE_FAKE_NOW
# shared helpers: free_port (fail and wait_for are its own: every log, quiet polls)
. "$HERE/lib.sh"
fail() {
    echo "FAIL: $*" >&2
    for f in "$T"/*.log; do [[ -f $f ]] && { echo "--- $f" >&2; tail -15 "$f" >&2; }; done
    exit 1
}
wait_for() { # wait_for SECONDS CMD...
    local n=$(($1 * 20)); shift
    for _ in $(seq "$n"); do "$@" >/dev/null 2>&1 && return 0; sleep 0.05; done
    return 1
}
bash "$HERE/audit_fixture.sh" "$B" "$T/fx" >/dev/null
# shellcheck disable=SC1091
source "$T/fx/subjects.env"
export OVR HARD BOTH CLEAN NAME DOB

# The checker: N checks (0: until killed) against 127.0.0.1:PORT, a mix of ALLOW, DENY and
# REFER; every answered decision is appended to OUT as "decision decision_id", flushed at once.
cat > "$T/checker.py" <<'PY'
import http.client, json, os, random, sys
port, n, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
bodies = [({"service": "air", "ids": [os.environ["CLEAN"]]}, 3),
          ({"service": "air", "ids": [os.environ["HARD"]]}, 1),
          ({"service": "air", "ids": [os.environ["BOTH"]]}, 1),
          ({"service": "air", "name": os.environ["NAME"], "birth_date": os.environ["DOB"]}, 1)]
pool = [b for b, w in bodies for _ in range(w)]
f = open(out, "a", buffering=1)
conn = None
i = 0
while n == 0 or i < n:
    i += 1
    try:
        if conn is None:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("POST", "/v1/check", json.dumps(random.choice(pool)),
                     {"Content-Type": "application/json"})
        r = conn.getresponse()
        body = r.read()
    except (OSError, http.client.HTTPException):
        if n != 0:
            sys.exit("checker: the daemon went away")
        conn = None
        continue
    if r.status != 200:
        sys.exit("checker: HTTP %d: %s" % (r.status, body[:200]))
    d = json.loads(body)
    f.write("%s %s\n" % (d["decision"], d["decision_id"]))
PY

HUBPID= DPID=
# start_hub DB PORT : posgate-hub serving the collector on PORT
start_hub() {
    "$B/posgate-hub" serve --db "$1" --listen "127.0.0.1:$2" 2>>"$T/hub.log" &
    HUBPID=$!
    PIDS+=("$HUBPID")
    wait_for 10 curl -s -o /dev/null -X POST "http://127.0.0.1:$2/v1/audit" || fail "posgate-hub did not start"
}
stop_hub() { kill "$HUBPID" 2>/dev/null || true; wait "$HUBPID" 2>/dev/null || true; HUBPID=; }
# write_config FILE KIOSK DPORT AUDIT_URL [EXTRA_JSON_MEMBERS] : the extra members win
write_config() {
    python3 - "$@" <<'PY'
import json, sys
c = {"data_dir": sys.argv[2], "listen": ["127.0.0.1:" + sys.argv[3]], "audit_url": sys.argv[4],
     "audit_upload_interval_s": 1, "audit_batch_max": 200, "log_level": "warn"}
if len(sys.argv) > 5:
    c.update(json.loads("{" + sys.argv[5] + "}"))
json.dump(c, open(sys.argv[1], "w"))
PY
}
start_daemon() { # start_daemon CONFIG DPORT
    "$B/posgated" --config "$1" 2>>"$T/daemon.log" &
    DPID=$!
    PIDS+=("$DPID")
    wait_for 10 curl -s -o /dev/null "http://127.0.0.1:$2/healthz" || fail "posgated did not start"
}
stop_daemon() { # SIGTERM; a clean stop exits 0 without sanitizer reports
    local rc=0
    kill "$DPID" 2>/dev/null || true
    wait "$DPID" 2>/dev/null || rc=$?
    DPID=
    [[ $rc == 0 ]] || fail "posgated exited $rc after SIGTERM"
    ! grep -q "Sanitizer" "$T/daemon.log" || fail "sanitizer report in daemon.log"
}
audit_is() { # audit_is DPORT EXPR : true when EXPR holds now (re-evaluated at each wait_for try)
    [[ $(status_audit "$1" "$2") == True ]]
}
status_audit() { # status_audit DPORT EXPR : a Python expression over the status "audit" object a
    curl -s "http://127.0.0.1:$1/v1/status" | python3 -c '
import json, sys
a = json.load(sys.stdin)["audit"]
print(eval(sys.argv[1]))' "$2"
}
drained() { [[ $(status_audit "$1" 'a["queued"] == 0 and a["last_error"] is None') == True ]]; }
new_kiosk() { rm -rf "$1"; cp -a "$T/fx/k" "$1"; }
enroll() { "$B/posgate-hub" enroll --db "$1" --pub "$T/fx/k/device.pub" >/dev/null; }
# verify_hub DB ANSWERED : every answered decision at the collector exactly once, no seq gap,
# the chain intact, no decision id stored twice
verify_hub() {
    "$B/posgate-hub" stats --db "$1" --json > "$T/stats.json"
    python3 - "$1" "$2" "$T/stats.json" <<'PY' || fail "collector check of $1"
import collections, json, sqlite3, sys
db, answered, stats = sys.argv[1], sys.argv[2], json.load(open(sys.argv[3]))
ids = [l.split()[1] for l in open(answered) if l.strip()]
c = sqlite3.connect(db)
rows = c.execute("SELECT seq, json FROM events ORDER BY seq").fetchall()
stored = collections.Counter()
for seq, text in rows:
    e = json.loads(text)
    if e.get("kind") == "decision":
        stored[e["id"]] += 1
dup = [i for i, n in stored.items() if n > 1]
assert not dup, "decision ids stored more than once: %s" % dup[:5]
missing = [i for i in ids if stored[i] != 1]
assert not missing, "%d of %d answered decisions not at the collector: %s" % (len(missing), len(ids), missing[:5])
seqs = [r[0] for r in rows]
assert seqs == list(range(1, len(seqs) + 1)), "seqs at the collector are not 1..n"
d = stats["devices"][0]
assert d["gaps"] == 0 and d["chain_ok"] is True and d["last_seq"] == d["events"] == len(seqs), d
print("collector holds %d events, %d answered decisions each once, no gaps, chain ok" % (len(seqs), len(ids)))
PY
}

# ---- kill: SIGKILL posgated at random points during checks and uploads
scenario_kill() {
    local K=$T/kill DB=$T/kill-hub.db HP DP
    new_kiosk "$K"; enroll "$DB"
    HP=$(free_port) DP=$(free_port)
    start_hub "$DB" "$HP"
    write_config "$T/kill.json" "$K" "$DP" "http://127.0.0.1:$HP/v1/audit" \
        '"audit_durability": "strict", "audit_batch_max": 20'
    : > "$T/kill-answered"
    local t0=$SECONDS
    for r in $(seq "$ROUNDS"); do
        start_daemon "$T/kill.json" "$DP"
        python3 "$T/checker.py" "$DP" 0 "$T/kill-answered" 2>/dev/null &
        local cp=$!
        PIDS+=("$cp")
        sleep "0.$((RANDOM % 4 + 1))$((RANDOM % 10))"
        kill -9 "$DPID"; wait "$DPID" 2>/dev/null || true
        kill "$cp" 2>/dev/null || true; wait "$cp" 2>/dev/null || true
        DPID=
        ((r % 10 == 0)) && echo "kill: round $r, $(wc -l < "$T/kill-answered") decisions answered"
    done
    start_daemon "$T/kill.json" "$DP"
    wait_for 30 drained "$DP" || fail "kill: the queue did not drain: $(curl -s "http://127.0.0.1:$DP/v1/status")"
    stop_daemon
    stop_hub
    "$B/posgate" --data-dir "$K" audit verify >/dev/null || fail "kill: the kiosk's own chain does not verify"
    [[ $(wc -l < "$T/kill-answered") -ge $ROUNDS ]] || fail "kill: too few decisions answered"
    verify_hub "$DB" "$T/kill-answered"
    echo "kill: $ROUNDS rounds in $((SECONDS - t0)) s"
}

# ---- down: the collector down for 2,000 checks, then up
scenario_down() {
    local K=$T/down DB=$T/down-hub.db HP DP
    new_kiosk "$K"; enroll "$DB"
    HP=$(free_port) DP=$(free_port)
    write_config "$T/down.json" "$K" "$DP" "http://127.0.0.1:$HP/v1/audit" '"audit_batch_max": 500'
    start_daemon "$T/down.json" "$DP"
    : > "$T/down-answered"
    python3 "$T/checker.py" "$DP" 2000 "$T/down-answered" || fail "down: checks failed"
    [[ $(wc -l < "$T/down-answered") == 2000 ]] || fail "down: not 2000 answers"
    wait_for 10 audit_is "$DP" 'a["last_error"] is not None and a["queued"] >= 2000' \
        || fail "down: status does not report the failing uploads: $(curl -s "http://127.0.0.1:$DP/v1/status")"
    curl -s "http://127.0.0.1:$DP/metrics" > "$T/metrics.txt"
    grep -Eq '^posgate_audit_upload_failures_total\{kind="network"\} [1-9]' "$T/metrics.txt" \
        || fail "down: metrics: $(grep audit "$T/metrics.txt")"
    grep -Eq '^posgate_audit_queued (200[0-9]|20[1-9][0-9])$' "$T/metrics.txt" \
        || fail "down: queued metric: $(grep audit_queued "$T/metrics.txt")"
    start_hub "$DB" "$HP"
    wait_for 40 drained "$DP" || fail "down: the queue did not drain: $(curl -s "http://127.0.0.1:$DP/v1/status")"
    curl -s "http://127.0.0.1:$DP/metrics" > "$T/metrics.txt"
    grep -Eq '^posgate_audit_uploaded_total (200[0-9]|20[1-9][0-9])$' "$T/metrics.txt" \
        || fail "down: uploaded metric: $(grep audit_uploaded "$T/metrics.txt")"
    [[ $(status_audit "$DP" 'a["last_upload"] is not None and a["last_acked_seq"] >= 2000') == True ]] \
        || fail "down: status after the drain: $(curl -s "http://127.0.0.1:$DP/v1/status")"
    stop_daemon
    stop_hub
    verify_hub "$DB" "$T/down-answered"
}

# ---- ack: the answer lost, then every batch posted twice (a collector that acknowledges twice)
scenario_ack() {
    local K=$T/ack DB=$T/ack-hub.db HP DP PP
    new_kiosk "$K"; enroll "$DB"
    HP=$(free_port) DP=$(free_port) PP=$(free_port)
    start_hub "$DB" "$HP"
    # the proxy: the first 3 POSTs reach the collector but their answers are lost (connection
    # closed); the next 3 are posted to the collector twice and the second answer is returned
    python3 - "$PP" "$HP" > "$T/proxy.log" 2>&1 <<'PY' &
import http.client, http.server, sys, threading
port, up = int(sys.argv[1]), int(sys.argv[2])
lock, n = threading.Lock(), [0]
class H(http.server.BaseHTTPRequestHandler):
    def log_message(self, *a): pass
    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        hdrs = {k: v for k, v in self.headers.items() if k.lower() in ("content-type", "content-encoding", "idempotency-key")}
        with lock:
            n[0] += 1; k = n[0]
        times = 2 if 4 <= k <= 6 else 1
        for _ in range(times):
            c = http.client.HTTPConnection("127.0.0.1", up, timeout=30)
            c.request("POST", self.path, body, hdrs)
            r = c.getresponse(); data = r.read(); st = r.status; c.close()
        print("request %d: upstream %d x%d %s" % (k, st, times, data[:80]), flush=True)
        if k <= 3:
            self.close_connection = True
            return
        self.send_response(st)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
http.server.ThreadingHTTPServer(("127.0.0.1", port), H).serve_forever()
PY
    PIDS+=("$!")
    wait_for 10 python3 -c 'import socket,sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])))' "$PP" \
        || fail "ack: the proxy did not start"
    write_config "$T/ack.json" "$K" "$DP" "http://127.0.0.1:$PP/v1/audit" '"audit_batch_max": 7'
    start_daemon "$T/ack.json" "$DP"
    : > "$T/ack-answered"
    for _ in 1 2 3 4 5 6 7 8; do
        python3 "$T/checker.py" "$DP" 10 "$T/ack-answered" || fail "ack: checks failed"
        sleep 0.3
    done
    wait_for 60 drained "$DP" || fail "ack: the queue did not drain: $(curl -s "http://127.0.0.1:$DP/v1/status")"
    [[ $(grep -c "x2" "$T/proxy.log") -ge 1 && $(grep -c "request" "$T/proxy.log") -ge 6 ]] \
        || fail "ack: the proxy did not see the faults: $(cat "$T/proxy.log")"
    stop_daemon
    stop_hub
    python3 -c 'import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); \
n=c.execute("SELECT count(*), count(DISTINCT seq) FROM events").fetchone(); assert n[0] == n[1] == 80, n; \
r=c.execute("SELECT count(*) FROM batches").fetchone(); assert r[0] >= 6, r' "$DB" \
        || fail "ack: the collector holds duplicates or lost events"
    verify_hub "$DB" "$T/ack-answered"
}

# ---- break: an event edited / deleted in the kiosk's audit.db leaves events the signed head
# does not cover: the collector refuses the batch (422) without holding it against the device
# (anyone could have edited a captured batch), and the kiosk stops uploading and says why
scenario_break() {
    local mode K DB HP DP
    for mode in edit delete; do
        K=$T/break-$mode DB=$T/break-$mode-hub.db
        new_kiosk "$K"; enroll "$DB"
        HP=$(free_port) DP=$(free_port)
        start_hub "$DB" "$HP"
        write_config "$T/break.json" "$K" "$DP" "http://127.0.0.1:$HP/v1/audit"
        start_daemon "$T/break.json" "$DP"
        : > "$T/break-answered"
        python3 "$T/checker.py" "$DP" 10 "$T/break-answered" || fail "break: checks failed"
        wait_for 20 drained "$DP" || fail "break: first upload"
        stop_daemon
        # five more decisions while the daemon is down, then one of them is changed
        for _ in 1 2 3 4 5; do
            "$B/posgate" --data-dir "$K" check --service air --id "$HARD" >/dev/null 2>&1 || true
        done
        python3 - "$K/audit.db" "$mode" <<'PY' || fail "break: editing audit.db"
import sqlite3, sys
c = sqlite3.connect(sys.argv[1])
head = c.execute("SELECT max(seq) FROM events").fetchone()[0]
if sys.argv[2] == "edit":
    body = c.execute("SELECT body FROM events WHERE seq = ?", (head - 2,)).fetchone()[0]
    assert '"deny"' in body, body
    c.execute("UPDATE events SET body = ? WHERE seq = ?", (body.replace('"deny"', '"allow"', 1), head - 2))
else:
    c.execute("DELETE FROM events WHERE seq = ?", (head - 2,))
c.commit()
PY
        start_daemon "$T/break.json" "$DP"
        wait_for 20 audit_is "$DP" 'a["stopped"]' \
            || fail "break $mode: the daemon did not stop at the chain break: $(curl -s "http://127.0.0.1:$DP/v1/status")"
        [[ $(status_audit "$DP" '"chain_break" in a["last_error"] and a["queued"] >= 4') == True ]] \
            || fail "break $mode: status: $(curl -s "http://127.0.0.1:$DP/v1/status")"
        sleep 2 # a looping uploader would post again within this time
        curl -s "http://127.0.0.1:$DP/metrics" > "$T/metrics.txt"
        grep -Eq '^posgate_audit_upload_failures_total\{kind="chain_break"\} 1$' "$T/metrics.txt" \
            || fail "break $mode: chain_break not counted once (the daemon must not loop): $(grep audit "$T/metrics.txt")"
        grep -Eq '^posgate_audit_upload_stopped 1$' "$T/metrics.txt" \
            || fail "break $mode: stopped gauge: $(grep audit "$T/metrics.txt")"
        "$B/posgate-hub" stats --db "$DB" --json > "$T/stats.json"
        python3 -c 'import json,sys; d=json.load(open(sys.argv[1]))["devices"][0]; \
assert d["chain_ok"] is True and d["chain_breaks"] == [] and d["last_seq"] == 10 and d["events"] == 10, d' "$T/stats.json" \
            || fail "break $mode: collector stats: $(cat "$T/stats.json")"
        stop_daemon
        stop_hub
        echo "break $mode: the collector refuses the batch its head does not cover (422), records nothing; uploads stopped"
    done
}

# ---- full: a tiny queue folds ALLOWs, keeps every DENY and REFER
scenario_full() {
    local K=$T/full DB=$T/full-hub.db HP DP
    new_kiosk "$K"; enroll "$DB"
    HP=$(free_port) DP=$(free_port)
    write_config "$T/full.json" "$K" "$DP" "http://127.0.0.1:$HP/v1/audit" '"audit_max_bytes": 4000'
    start_daemon "$T/full.json" "$DP"
    : > "$T/full-answered"
    python3 "$T/checker.py" "$DP" 400 "$T/full-answered" || fail "full: checks failed"
    start_hub "$DB" "$HP"
    wait_for 40 drained "$DP" || fail "full: the queue did not drain: $(curl -s "http://127.0.0.1:$DP/v1/status")"
    stop_daemon
    stop_hub
    "$B/posgate-hub" stats --db "$DB" --json > "$T/stats.json"
    python3 - "$DB" "$T/full-answered" "$T/stats.json" <<'PY' || fail "full: accounting"
import collections, json, sqlite3, sys
c = sqlite3.connect(sys.argv[1])
ans = [l.split() for l in open(sys.argv[2]) if l.strip()]
want = collections.Counter(d for d, _ in ans)
stored = {}
for (text,) in c.execute("SELECT json FROM events"):
    e = json.loads(text)
    if e.get("kind") == "decision":
        stored[e["id"]] = e["decision"]
for d, i in ans:
    if d in ("deny", "refer"):
        assert stored.get(i) == d, "%s %s not at the collector" % (d, i)
s = json.load(open(sys.argv[3]))
b = s["by_decision"]
assert b.get("summary", 0) > 0, "no ALLOW was folded: the queue was not full (%s)" % b
assert b["deny"] == want["deny"] and b["refer"] == want["refer"], (b, want)
assert b["allow"] + b.get("allow_folded", 0) == want["allow"], (b, want)
d = s["devices"][0]
assert d["gaps"] == 0 and d["chain_ok"] is True and d["last_seq"] == d["events"], d
print("full: %d answered (%s); collector: %s" % (len(ans), dict(want), b))
PY
}

for s in $SCEN; do
    "scenario_$s"
done
echo "audit_upload: OK ($SCEN)"
