#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Several collectors on one PostgreSQL database (run under with_pg.sh): first a SQLite
# collector's holdings moved by `posgate-hub migrate-db` (stats equal before and after); then
# three `posgate-hub serve` processes on that database and 200 simulated kiosks
# (collector_fleet) uploading their batches through all three at once: each batch posted to
# two hubs at the same time, some devices sending a later batch first (a gap, closed later),
# and hubs killed with SIGKILL and restarted on the same port while batches are being judged.
# Afterwards every device's events are complete (1..EVENTS), unique, chain-checked by hash in
# SQL, with no gap left open, no chain break, and the held gaps exactly the ones provoked.
# Usage: with_pg.sh collector_pg_fleet.sh BUILD_DIR
set -euo pipefail
B=$(cd "${1:?usage: collector_pg_fleet.sh BUILD_DIR}" && pwd)
URI=${POSGATE_TEST_PG_URI:?run under tests/integration/with_pg.sh}
T=$(mktemp -d "${TMPDIR:-/tmp}/posgate-pgfleet-XXXXXX")
trap 'rm -rf "$T"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
HUB=$B/posgate-hub
FLEET=$B/tests/collector_fleet
[[ -x $FLEET ]] || FLEET=$B/collector_fleet
[[ -x $FLEET ]] || fail "collector_fleet not built"
DEVICES=${FLEET_DEVICES:-200}
EVENTS=30
CHUNK=10
psql -X -q -v ON_ERROR_STOP=1 "$URI" -c 'DROP SCHEMA public CASCADE; CREATE SCHEMA public' \
    || fail "cannot empty $URI"
dbq() { psql -X -q -At -v ON_ERROR_STOP=1 "$URI" -c "$1" | head -1; }

start=$(date +%s)
mkdir -p "$T/fleet"
"$FLEET" "$T/fleet" "$DEVICES" "$EVENTS" "$CHUNK" || fail "collector_fleet"
echo "fleet of $DEVICES devices made in $(( $(date +%s) - start )) s"

# 1. migrate-db: the first five devices' first batches on SQLite, moved to PostgreSQL
for i in 0 1 2 3 4; do
    d=$(printf '%s/fleet/d%04d' "$T" "$i")
    "$HUB" enroll --db "$T/hub.db" --pub "$d/device.pub" > "$d/id" 2>/dev/null || fail "enroll $d"
done
python3 - "$HUB" "$T/hub.db" "$T" <<'PY' || fail "uploading to the SQLite collector"
import subprocess, sys, time, urllib.request, gzip
hub, db, t = sys.argv[1:4]
p = subprocess.Popen([hub, "serve", "--db", db, "--listen", "127.0.0.1:0", "--port-file",
                      t + "/sq.port", "--log-level", "error"])
try:
    for _ in range(100):
        try:
            port = open(t + "/sq.port").read().strip()
            if port: break
        except OSError: pass
        time.sleep(0.05)
    for i in range(5):
        body = open("%s/fleet/d%04d/batch-0.json" % (t, i), "rb").read()
        r = urllib.request.Request("http://127.0.0.1:%s/v1/audit" % port, data=body,
                                   headers={"Content-Type": "application/json"})
        assert urllib.request.urlopen(r, timeout=10).status == 200
finally:
    p.terminate(); p.wait()
PY
"$HUB" stats --db "$T/hub.db" --json > "$T/before.json"
"$HUB" migrate-db --from "$T/hub.db" --to "$URI" 2> "$T/mig.err" || { cat "$T/mig.err"; fail "migrate-db"; }
"$HUB" stats --db "$URI" --json > "$T/after.json"
cmp -s "$T/before.json" "$T/after.json" || { diff "$T/before.json" "$T/after.json" | head; fail "stats differ after migrate-db"; }
set +e; "$HUB" migrate-db --from "$T/hub.db" --to "$URI" 2>/dev/null; rc=$?; set -e
[[ $rc == 4 ]] || fail "a second migrate-db into a database with devices exited $rc, expected 4"
echo "migrate-db: $(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["events"])' "$T/after.json") events moved, stats equal"

# 2. enrol the rest and upload through three hubs, killing and restarting them
for ((i = 5; i < DEVICES; i++)); do
    d=$(printf '%s/fleet/d%04d' "$T" "$i")
    "$HUB" enroll --db "$URI" --pub "$d/device.pub" > "$d/id" 2>/dev/null || fail "enroll $d"
done
start=$(date +%s)
python3 - "$HUB" "$URI" "$T" "$DEVICES" "$EVENTS" "$CHUNK" <<'PY' || fail "fleet upload"
import json, os, random, signal, socket, subprocess, sys, threading, time, urllib.request
hub, uri, t = sys.argv[1:4]
devices, events, chunk = map(int, sys.argv[4:7])
nb = (events + chunk - 1) // chunk
ports = []
for _ in range(3):
    s = socket.socket(); s.bind(("127.0.0.1", 0)); ports.append(s.getsockname()[1]); s.close()
procs = [None] * 3
lock = threading.Lock()
# one connection to the server, the default four, and eight
CONNS = [["--db-connections", "1"], [], ["--db-connections", "8"]]
def start(i):
    procs[i] = subprocess.Popen([hub, "serve", "--db", uri, "--listen", "127.0.0.1:%d" % ports[i],
                                 "--log-level", "error", "--max-inflight", "64",
                                 "--max-bodies-per-peer", "4096", "--max-conns-per-peer", "4096"]
                                + CONNS[i])
for i in range(3): start(i)
kills = 0
stop = False
def killer():
    global kills
    rnd = random.Random(7)
    while not stop:
        time.sleep(0.3 + rnd.random() * 0.4)
        i = rnd.randrange(3)
        with lock:
            procs[i].send_signal(signal.SIGKILL); procs[i].wait()
            kills += 1
            start(i)
def post(body):
    """Posts until a hub answers 200; returns the answer. Refusals other than 429/503 fail."""
    tries = 0
    while True:
        tries += 1
        port = random.choice(ports)
        r = urllib.request.Request("http://127.0.0.1:%d/v1/audit" % port, data=body,
                                   headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(r, timeout=20) as a:
                return json.load(a), tries
        except urllib.error.HTTPError as e:
            if e.code not in (429, 503):
                raise SystemExit("HTTP %d: %s" % (e.code, e.read()[:300]))
        except (OSError, ConnectionError):
            pass  # a hub killed mid-request, or not listening yet
        time.sleep(0.05 + random.random() * 0.1)
errors = []
retries = [0]
def device(d):
    try:
        base = "%s/fleet/d%04d" % (t, d)
        order = list(range(nb))
        if d % 10 == 0:  # a later batch first: a gap, closed when the first arrives
            order = [1, 0] + order[2:]
        for b in order:
            body = open("%s/batch-%d.json" % (base, b), "rb").read()
            res = [None, None]
            def one(k):
                res[k] = post(body)
            th = [threading.Thread(target=one, args=(k,)) for k in range(2)]
            for x in th: x.start()
            for x in th: x.join()
            for a, tries in res:
                if a is None: raise SystemExit("no answer")
                retries[0] += tries - 1
    except BaseException as e:
        errors.append("device %d: %s" % (d, e))
t0 = time.time()
k = threading.Thread(target=killer); k.start()
pool = []
first = 5  # devices 0..4 came with migrate-db (batch 0 held); they upload everything again
for d in range(devices):
    th = threading.Thread(target=device, args=(d,)); th.start(); pool.append(th)
    if len(pool) >= 64:
        pool.pop(0).join()
for th in pool: th.join()
stop = True; k.join()
for p in procs: p.terminate(); p.wait()
el = time.time() - t0
print("uploaded %d batches (each posted twice) in %.1f s; %d hub kills; %d retried posts"
      % (devices * nb, el, kills, retries[0]))
if errors:
    print("\n".join(errors[:10])); sys.exit(1)
if kills == 0:
    sys.exit("no hub was killed: the test proves nothing")
PY
echo "upload phase: $(( $(date +%s) - start )) s"

# 3. every device complete, unique, chained; gaps exactly the provoked ones, all closed
total=$(dbq "SELECT count(*) FROM events")
[[ $total == $((DEVICES * EVENTS)) ]] || fail "events held: $total, expected $((DEVICES * EVENTS))"
[[ $(dbq "SELECT count(*) FROM (SELECT device_id, seq FROM events GROUP BY 1, 2 HAVING count(*) > 1) x") == 0 ]] \
    || fail "an event is stored twice"
[[ $(dbq "SELECT count(*) FROM (SELECT device_id, count(*) AS n, min(seq) AS lo, max(seq) AS hi FROM events GROUP BY 1) x WHERE n <> $EVENTS OR lo <> 1 OR hi <> $EVENTS") == 0 ]] \
    || fail "a device's events are not exactly 1..$EVENTS"
[[ $(dbq "SELECT count(*) FROM (SELECT seq, prev_hash, lag(hash) OVER (PARTITION BY device_id ORDER BY seq) AS ph FROM events) x WHERE seq > 1 AND prev_hash <> ph") == 0 ]] \
    || fail "a held event does not name the hash of the event before it"
[[ $(dbq "SELECT count(*) FROM devices WHERE last_seq <> $EVENTS OR NOT chain_ok") == 0 ]] \
    || fail "a device is not acknowledged to $EVENTS or its chain is marked broken: $(dbq "SELECT device_id || ' ' || last_seq || ' ' || chain_ok FROM devices WHERE last_seq <> $EVENTS OR NOT chain_ok")"
[[ $(dbq "SELECT count(*) FROM chain_breaks") == 0 ]] || fail "chain breaks recorded"
want_gaps=$(( (DEVICES + 9) / 10 - 1 )) # d % 10 == 0 except d0, whose batch 0 came by migrate-db
[[ $(dbq "SELECT count(*) FROM gaps WHERE closed_at IS NOT NULL AND from_seq = 1 AND to_seq = $CHUNK") == "$want_gaps" && \
   $(dbq "SELECT count(*) FROM gaps") == "$want_gaps" ]] \
    || fail "gaps: $(dbq "SELECT count(*) FROM gaps"), expected $want_gaps, all [1, $CHUNK] and closed"
"$HUB" stats --db "$URI" --json > "$T/stats.json"
python3 - "$T/stats.json" "$DEVICES" "$EVENTS" <<'PY' || fail "stats"
import json, sys
s = json.load(open(sys.argv[1])); n, e = int(sys.argv[2]), int(sys.argv[3])
assert s["events"] == n * e and len(s["devices"]) == n, (s["events"], len(s["devices"]))
assert all(d["last_seq"] == e and d["gaps"] == 0 and d["chain_ok"] for d in s["devices"])
PY
echo "partitions: $(dbq "SELECT string_agg(c.relname, ',') FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE c.relkind = 'r'")"
echo "collector_pg_fleet: ok"
