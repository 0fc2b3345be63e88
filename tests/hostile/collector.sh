#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The collector (posgate-hub --db) under attack, on 127.0.0.1 with real processes; each part is
# an attack that worked before the fix (issue 16, items 7, 8, 9 and 15):
#   frame    a captured batch resent with one event edited, before and after the device's own
#            upload: refused (422), no chain break recorded, chain_ok stays true, and the
#            device's honest batch is still taken;
#   counters 1,100 summary events with count 2^53-1, signed by an enrolled device: refused at
#            ingest (400); and a database that already holds them (written before the bound)
#            still gives `posgate-hub stats` (exit 0, exact past 2^63; past 2^64 saturated and
#            flagged);
#   slow     16 connections from 127.0.0.2 sending a 100 kB body one byte a second: uploads
#            from 127.0.0.1 keep getting 200 (never 429), and the trickles that were let in are
#            closed at --body-timeout;
#   halfsent 1,100 connections from 127.0.0.2 with half-sent request headers, against a hub
#            with the usual service limit of 1,024 descriptors: the feed and the collector still
#            answer 127.0.0.1 within 2 s each, and the hub keeps at most --max-conns-per-peer
#            of them open.
#   replay   refusals that already held stay (issue 16, item 10): duplicates counted once, a
#            gzip bomb 413, a device not enrolled 403, a batch signed by another key 401.
# Usage: tests/hostile/collector.sh BUILD_DIR [PART...]   (default: every part; ~25 s)
set -euo pipefail
B=$(cd "${1:?usage: collector.sh BUILD_DIR [PART...]}" && pwd)
shift
PARTS=${*:-replay frame counters slow halfsent}
HERE=$(cd "$(dirname "$0")" && pwd)
T=$(mktemp -d "${TMPDIR:-/tmp}/posgate-hostile-hub-XXXXXX")
HUBPID=
cleanup() {
    if [[ -n $HUBPID ]]; then kill "$HUBPID" 2>/dev/null || true; wait "$HUBPID" 2>/dev/null || true; fi
    rm -rf "$T"
}
trap cleanup EXIT
unset POSGATE_DATA_DIR POSGATE_FAKE_NOW
fail() { echo "FAIL: $*" >&2; [[ -f $T/hub.log ]] && tail -20 "$T/hub.log" >&2; exit 1; }
BATCH=$B/tests/collector_batch
[[ -x $BATCH ]] || BATCH=$B/collector_batch
[[ -x $BATCH ]] || fail "collector_batch not built"
HUB=$B/posgate-hub

bash "$HERE/../integration/audit_fixture.sh" "$B" "$T/fx" >/dev/null
# shellcheck disable=SC1091
source "$T/fx/subjects.env"
K=$T/fx/k
pg() { "$B/posgate" --data-dir "$K" "$@"; }
DEV=$(pg device-key --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["device_id"])')
# the kiosk's honest trail: DENY, ALLOW, DENY, ALLOW
for id in "$HARD" "$CLEAN" "$BOTH" "$CLEAN"; do pg check --service air --id "$id" >/dev/null || true; done

# start_hub DB [ARGS...] : posgate-hub serving the feed and collecting into DB; sets URL, PORT
start_hub() {
    local db=$1; shift
    rm -f "$T/hub.port"
    (ulimit -n 1024 && exec "$HUB" serve --feed "$T/fx/feed" --db "$db" --listen 127.0.0.1:0 --port-file "$T/hub.port" \
        "$@" 2>"$T/hub.log") &
    HUBPID=$!
    for _ in $(seq 100); do [[ -s $T/hub.port ]] && break; sleep 0.1; done
    [[ -s $T/hub.port ]] || fail "posgate-hub did not start"
    PORT=$(cat "$T/hub.port")
    URL=http://127.0.0.1:$PORT
}
stop_hub() {
    kill -TERM "$HUBPID"
    wait "$HUBPID" 2>/dev/null || true
    HUBPID=
}
# post FILE : gzip POST from 127.0.0.1; status in $T/status, body in $T/resp
post() {
    gzip -c "$1" > "$T/post.gz"
    curl -sS -o "$T/resp" -w '%{http_code}' -X POST -H 'Content-Type: application/json' \
        -H 'Content-Encoding: gzip' --data-binary @"$T/post.gz" "$URL/v1/audit" > "$T/status"
}
expect_status() { # expect_status CODE WHAT
    [[ $(cat "$T/status") == "$1" ]] || fail "$2: HTTP $(cat "$T/status"), expected $1: $(cat "$T/resp")"
}
# device DB EXPR : a Python expression over the device's entry d in `stats --json` of DB
device() {
    "$HUB" stats --db "$1" --json > "$T/stats.json" || fail "stats failed on $1"
    python3 - "$T/stats.json" "$DEV" "$2" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
d = next(x for x in s["devices"] if x["device_id"] == sys.argv[2])
print(eval(sys.argv[3]))
PY
}

part_frame() {
    local db=$T/frame.db
    "$HUB" enroll --db "$db" --pub "$K/device.pub" >/dev/null 2>&1
    start_hub "$db"
    "$BATCH" "$K" 0 100 "$T/honest.json" >/dev/null
    # the attacker edits event 2 of a captured batch (an ALLOW made a DENY) and sends it first
    python3 - "$T/honest.json" "$T/forged.json" <<'PY'
import json, sys
b = json.load(open(sys.argv[1]))
e = b["events"][1]
assert e["decision"] == "allow", e
e["decision"] = "deny"
open(sys.argv[2], "w").write(json.dumps(b, separators=(",", ":")))
PY
    post "$T/forged.json"
    expect_status 422 "frame: an edited captured batch"
    grep -q "not covered by the signature" "$T/resp" || fail "frame: 422 body: $(cat "$T/resp")"
    [[ $(device "$db" 'd["chain_ok"] and d["chain_breaks"] == [] and d["events"] == 0') == True ]] \
        || fail "frame: the edited batch changed the device: $(cat "$T/stats.json")"
    post "$T/honest.json"
    expect_status 200 "frame: the device's own batch after the forgery"
    # and again after the honest upload: still refused, still nothing recorded
    post "$T/forged.json"
    expect_status 422 "frame: the edited batch after the honest one"
    [[ $(device "$db" 'd["chain_ok"] and d["chain_breaks"] == [] and d["events"] == 4 and d["last_seq"] == 4') == True ]] \
        || fail "frame: the device after both: $(cat "$T/stats.json")"
    stop_hub
    echo "frame: an edited captured batch is refused (422) and records nothing"
}

part_counters() {
    local db=$T/counters.db head KC=$T/kc
    cp -r "$K" "$KC" # the other parts keep the kiosk's honest trail
    "$HUB" enroll --db "$db" --pub "$KC/device.pub" >/dev/null 2>&1
    head=$("$BATCH" "$KC" 0 100000 "$T/all.json" | cut -d' ' -f3)
    # 1,100 summaries of 2^53-1 ALLOWs each, chained after the kiosk's head in its own audit.db
    # and signed by its device key (collector_batch), as a compromised kiosk would
    python3 - "$KC/audit.db" "$DEV" "$head" 1100 <<'PY'
import hashlib, json, sqlite3, sys, time
c = sqlite3.connect(sys.argv[1])
dev, head, n = sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
row = c.execute("SELECT hash FROM events WHERE seq = ?", (head,)).fetchone()
prev = bytes(row[0]) if row else bytes(32)
now = int(time.time() * 1e6)
for seq in range(head + 1, head + 1 + n):
    t = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now // 1000000))
    ev = {"cause": "queue_full", "count": 2**53 - 1, "device_id": dev, "first_time": t,
          "first_time_us": now, "kind": "allow_summary", "last_time": t, "last_time_us": now + 1000,
          "prev": prev.hex(), "seq": seq, "services": {"air": 2**53 - 1}, "services_other": 0, "v": 1}
    body = json.dumps(ev, sort_keys=True, separators=(",", ":"))
    h = hashlib.sha256(prev + body.encode()).digest()
    c.execute("INSERT INTO events(seq, kind, decision, time_us, body, hash) VALUES (?, ?, ?, ?, ?, ?)",
              (seq, "allow_summary", "allow", now + 1000, body, h))
    prev = h
c.commit()
PY
    "$BATCH" "$KC" "$head" 100000 "$T/sums.json" >/dev/null
    start_hub "$db"
    post "$T/sums.json"
    expect_status 400 "counters: 1,100 summaries of 2^53-1"
    grep -q "a summary of 9007199254740991 ALLOWs" "$T/resp" || fail "counters: 400 body: $(cat "$T/resp")"
    [[ $(device "$db" 'd["events"] == 0 and d["chain_ok"]') == True ]] || fail "counters: $(cat "$T/stats.json")"
    stop_hub
    # a database that already holds them (written before the bound): stats still answer, exact
    # past SQLite's 2^63 and saturated, flagged, past 2^64
    hold_summaries() { # hold_summaries FROM TO
        python3 - "$db" "$DEV" "$1" "$2" <<'PY'
import sqlite3, sys
c = sqlite3.connect(sys.argv[1])
for seq in range(int(sys.argv[3]), int(sys.argv[4]) + 1):
    c.execute("INSERT INTO events(device_id, seq, hash, prev_hash, kind, decision, count, json, received_at)"
              " VALUES (?, ?, zeroblob(32), zeroblob(32), 'allow_summary', 'summary', ?, '{}', 0)",
              (sys.argv[2], seq, 2**53 - 1))
c.commit()
PY
    }
    hold_summaries 1 1100
    [[ $(device "$db" 'd["events"] == 1100') == True ]] || fail "counters: stats of the old database"
    python3 -c 'import json,sys; b=json.load(open(sys.argv[1]))["by_decision"]; \
assert b["summary"] == 1100 and b["allow_folded"] == 1100 * (2**53 - 1) and "allow_folded_saturated" not in b, b' \
        "$T/stats.json" || fail "counters: by_decision: $(cat "$T/stats.json")"
    hold_summaries 1101 2100
    [[ $(device "$db" 'd["events"] == 2100') == True ]] || fail "counters: stats past 2^64"
    python3 -c 'import json,sys; b=json.load(open(sys.argv[1]))["by_decision"]; \
assert b["summary"] == 2100 and b["allow_folded"] == 2**64 - 1 and b["allow_folded_saturated"] is True, b' \
        "$T/stats.json" || fail "counters: by_decision past 2^64: $(cat "$T/stats.json")"
    "$HUB" stats --db "$db" > "$T/stats.txt" || fail "counters: text stats failed"
    grep -q "folding more than" "$T/stats.txt" || fail "counters: text stats: $(cat "$T/stats.txt")"
    echo "counters: summaries past their span refused (400); stats survive 2^64 (saturated)"
}

part_slow() {
    local db=$T/slow.db
    "$HUB" enroll --db "$db" --pub "$K/device.pub" >/dev/null 2>&1
    "$BATCH" "$K" 0 100 "$T/honest.json" >/dev/null
    start_hub "$db" --body-timeout 5
    python3 - "$PORT" "$T/honest.json" <<'PY' || fail "slow: honest uploads during the trickle"
import gzip, http.client, socket, sys, threading, time
port, body = int(sys.argv[1]), gzip.compress(open(sys.argv[2], "rb").read())
SIZE, stop, opened, closed_at = 100_000, threading.Event(), [], {}
def trickle(i):
    s = socket.socket()
    s.bind(("127.0.0.2", 0))
    s.connect(("127.0.0.1", port))
    s.sendall(b"POST /v1/audit HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
              b"Content-Length: %d\r\n\r\n" % SIZE)
    opened.append(i)
    t0 = time.monotonic()
    s.settimeout(1.0)
    while not stop.is_set():
        try:
            s.sendall(b"{")
            data = s.recv(4096)
            if data.startswith(b"HTTP/1.1 429"):
                closed_at[i] = ("429", time.monotonic() - t0)
                return
            if data == b"":
                closed_at[i] = ("closed", time.monotonic() - t0)
                return
        except socket.timeout:
            continue  # one byte a second
        except OSError:
            closed_at[i] = ("closed", time.monotonic() - t0)
            return
threads = [threading.Thread(target=trickle, args=(i,), daemon=True) for i in range(16)]
for t in threads:
    t.start()
time.sleep(1.0)
statuses, t_end = [], time.monotonic() + 9
while time.monotonic() < t_end:
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    c.request("POST", "/v1/audit", body, {"Content-Type": "application/json",
                                           "Content-Encoding": "gzip"})
    statuses.append(c.getresponse().status)
    c.close()
    time.sleep(0.3)
stop.set()
for t in threads:
    t.join(3)
assert len(opened) == 16, opened
assert statuses and all(s == 200 for s in statuses), statuses
refused = [v for v in closed_at.values() if v[0] == "429"]
cut = [v for v in closed_at.values() if v[0] == "closed"]
assert len(refused) == 12, closed_at            # past 4 bodies arriving from 127.0.0.2
assert len(cut) == 4 and all(4.0 <= v[1] <= 8.0 for v in cut), closed_at  # at --body-timeout 5
print("slow: %d uploads from 127.0.0.1 all 200 while 16 trickled; 12 refused (429), "
      "4 closed at %.1f-%.1f s" % (len(statuses), min(v[1] for v in cut), max(v[1] for v in cut)))
PY
    stop_hub
}

part_halfsent() {
    local db=$T/half.db
    "$HUB" enroll --db "$db" --pub "$K/device.pub" >/dev/null 2>&1
    "$BATCH" "$K" 0 100 "$T/honest.json" >/dev/null
    start_hub "$db"
    python3 - "$PORT" "$T/honest.json" "$HUBPID" <<'PY' || fail "halfsent: the hub stopped answering while one client held half-sent requests"
import os, resource, socket, sys, time, urllib.request
port, body, pid, N = int(sys.argv[1]), open(sys.argv[2], "rb").read(), sys.argv[3], 1100
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (min(max(soft, 2048), hard), hard))
held = []
for i in range(N):
    s = socket.socket()
    s.bind(("127.0.0.2", 0))
    s.setblocking(False)
    try:
        s.connect(("127.0.0.1", port))
    except BlockingIOError:
        pass
    held.append(s)
time.sleep(0.5)
for s in held:
    try:
        s.send(b"GET /metadata/timestamp.json HTTP/1.1\r\nHost: x\r\nX-Half: ")
    except OSError:
        pass
time.sleep(1.0)
def timed(req):
    t0 = time.monotonic()
    with urllib.request.urlopen(req, timeout=2) as r:
        r.read()
        return r.status, time.monotonic() - t0
for _ in range(3):
    st, dt = timed("http://127.0.0.1:%d/metadata/timestamp.json" % port)
    assert st == 200 and dt < 2, (st, dt)
    st, dt = timed(urllib.request.Request("http://127.0.0.1:%d/v1/audit" % port, data=body,
                                          headers={"Content-Type": "application/json"}))
    assert st == 200 and dt < 2, (st, dt)
fds = len(os.listdir("/proc/%s/fd" % pid))
assert fds < 120, "the hub holds %d descriptors" % fds
for s in held:
    s.close()
print("halfsent: feed and collector answered within 2 s while %d requests hung; the hub "
      "held %d descriptors" % (N, fds))
PY
    stop_hub
}

part_replay() {
    local db=$T/replay.db
    "$BATCH" "$K" 0 4 "$T/honest.json" >/dev/null
    start_hub "$db"
    post "$T/honest.json"
    expect_status 403 "replay: a device not enrolled"
    "$HUB" enroll --db "$db" --pub "$K/device.pub" >/dev/null 2>&1
    for i in 1 2 3; do
        post "$T/honest.json"
        expect_status 200 "replay: the same batch, time $i"
    done
    [[ $(device "$db" 'd["events"] == 4 and d["last_seq"] == 4 and d["chain_ok"]') == True ]] \
        || fail "replay: duplicates not counted once: $(cat "$T/stats.json")"
    # a gzip bomb: 40 MiB of zeros in ~40 kB
    python3 -c 'import gzip,sys; open(sys.argv[1],"wb").write(gzip.compress(b"0" * (40 << 20), 9))' "$T/bomb.gz"
    curl -sS -o "$T/resp" -w '%{http_code}' -X POST -H 'Content-Type: application/json' \
        -H 'Content-Encoding: gzip' --data-binary @"$T/bomb.gz" "$URL/v1/audit" > "$T/status"
    expect_status 413 "replay: a gzip bomb"
    # the device's batch with a signature made by another kiosk's key (a forged device): 401
    "$B/posgate" --data-dir "$T/k3" init --root "$T/fx/feed/metadata/1.root.json" \
        --list-key "$T/fx/list.key" --jurisdiction CN >/dev/null
    "$BATCH" "$T/k3" 0 4 "$T/k3.json" >/dev/null
    python3 - "$T/honest.json" "$T/k3.json" "$T/forged.json" <<'PY'
import json, sys
h, o = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
h["signature"] = o["signature"]
open(sys.argv[3], "w").write(json.dumps(h, separators=(",", ":")))
PY
    post "$T/forged.json"
    expect_status 401 "replay: a batch signed by another device's key"
    [[ $(device "$db" 'd["events"] == 4 and d["chain_ok"] and d["chain_breaks"] == []') == True ]] \
        || fail "replay: refusals changed the device: $(cat "$T/stats.json")"
    stop_hub
    echo "replay: duplicates counted once, gzip bomb 413, not enrolled 403, forged device 401"
}

for p in $PARTS; do
    "part_$p"
done
echo "hostile collector: ok"
