#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The audit collector end to end with real processes on 127.0.0.1: a kiosk data dir makes real
# decisions (`posgate check`), collector_batch signs them as the uploader would, curl posts them
# gzip-compressed to `posgate-hub --feed --db` on a random port. Enrolment, an unknown device
# (403), a first post, the same batch again and a lost ack (no duplicates, the same ack), plain
# JSON, malformed / wrong type / oversized / wrong method / bad signature / too many at once,
# an event deleted on a second kiosk and an event edited in the kiosk's audit.db with python3's
# sqlite3 (422: not covered by the signed head; chain_ok stays true), `stats` and `--help`;
# on PostgreSQL, a server restart under the running hub (503, then taken).
# With POSGATE_TEST_PG_URI set (with_pg.sh) the collector's store is that PostgreSQL database,
# emptied first, instead of a SQLite file.
# Usage: collector.sh BUILD_DIR
set -euo pipefail
B=$(cd "${1:?usage: collector.sh BUILD_DIR}" && pwd)
HERE=$(cd "$(dirname "$0")" && pwd)
T=$(mktemp -d "${TMPDIR:-/tmp}/posgate-collector-XXXXXX")
HUBPID=
cleanup() {
    if [[ -n $HUBPID ]]; then kill "$HUBPID" 2>/dev/null || true; wait "$HUBPID" 2>/dev/null || true; fi
    rm -rf "$T"
}
trap cleanup EXIT
unset POSGATE_DATA_DIR POSGATE_FAKE_NOW
# shared helpers: fail, expect_rc, free_port, wait_for
. "$HERE/lib.sh"
FAIL_LOGS=("$T/hub.log")
EXPECT_DIR=$T
BATCH=$B/tests/collector_batch
[[ -x $BATCH ]] || BATCH=$B/collector_batch
[[ -x $BATCH ]] || fail "collector_batch not built"
HUB=$B/posgate-hub
DB=$T/hub.db
# dbq SQL : the first column of the first row of a query on the collector's store
if [[ -n ${POSGATE_TEST_PG_URI:-} ]]; then
    DB=$POSGATE_TEST_PG_URI
    psql -X -q -v ON_ERROR_STOP=1 "$DB" -c 'DROP SCHEMA public CASCADE; CREATE SCHEMA public' \
        || fail "cannot empty $DB"
    dbq() { psql -X -q -At -v ON_ERROR_STOP=1 "$DB" -c "$1" | head -1; }
else
    dbq() { python3 -c 'import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute(sys.argv[2]).fetchone()[0])' "$DB" "$1"; }
fi

bash "$HERE/audit_fixture.sh" "$B" "$T/fx" >/dev/null
# shellcheck disable=SC1091
source "$T/fx/subjects.env"
K=$T/fx/k
pg() { "$B/posgate" --data-dir "$K" "$@"; }
check() { # check RC ARGS... : one real decision on the kiosk
    local want=$1; shift
    expect_rc "$want" pg check --service air "$@"
}

# post FILE [curl args...] : gzip POST of a batch file; status in $T/status, body in $T/resp
post() {
    local f=$1; shift
    gzip -c "$f" > "$T/post.gz"
    curl -sS -o "$T/resp" -w '%{http_code}' -X POST -H 'Content-Type: application/json' \
        -H 'Content-Encoding: gzip' --data-binary @"$T/post.gz" "$@" "$URL/v1/audit" > "$T/status"
}
status() { cat "$T/status"; }
expect_status() { # expect_status CODE WHAT
    [[ $(status) == "$1" ]] || fail "$2: HTTP $(status), expected $1: $(cat "$T/resp")"
}
jfield() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$T/resp" "$1"; }
stats() { "$HUB" stats --db "$DB" --json > "$T/stats.json"; }
# sj EXPR : evaluates a Python expression over the stats document s and device d (the kiosk's)
sj() {
    python3 - "$T/stats.json" "$DEV" "$1" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
d = next((x for x in s["devices"] if x["device_id"] == sys.argv[2]), None)
print(eval(sys.argv[3]))
PY
}

# --help and usage
for c in "" serve enroll stats; do
    # shellcheck disable=SC2086
    expect_rc 0 "$HUB" $c --help
    grep -q "usage: posgate-hub" "$T/out.txt" || fail "posgate-hub $c --help printed no usage"
done
expect_rc 2 "$HUB" enroll --db "$DB"
expect_rc 2 "$HUB" stats
expect_rc 2 "$HUB" serve --listen 127.0.0.1:0
expect_rc 5 "$HUB" stats --db "$T/none.db"
expect_rc 2 "$HUB" serve --db "$DB" --listen 127.0.0.1:0 --db-connections 17
if [[ -z ${POSGATE_TEST_PG_URI:-} ]]; then
    expect_rc 5 "$HUB" serve --db "$DB" --listen 127.0.0.1:0 --db-connections 2
    grep -q "one writer" "$T/err.txt" || fail "--db-connections on SQLite: $(cat "$T/err.txt")"
fi

# decisions on the kiosk: DENY, ALLOW, REFER, DENY
check 1 --id "$HARD" --operator clerk-1
check 0 --id "$CLEAN" --operator clerk-1
check 3 --name "$NAME" --birth-date "$DOB"
check 1 --id "$OVR"
DEV=$(pg device-key --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["device_id"])')

# the collector, serving the feed as well
"$HUB" serve --feed "$T/fx/feed" --db "$DB" --listen 127.0.0.1:0 --port-file "$T/hub.port" \
    --max-body 200000 --max-inflight 2 --max-bodies-per-peer 2 2>"$T/hub.log" &
HUBPID=$!
for _ in $(seq 100); do [[ -s $T/hub.port ]] && break; sleep 0.1; done
[[ -s $T/hub.port ]] || fail "posgate-hub did not start"
URL=http://127.0.0.1:$(cat "$T/hub.port")
[[ $(curl -s -o /dev/null -w '%{http_code}' "$URL/metadata/timestamp.json") == 200 ]] \
    || fail "the feed is not served beside the collector"

# an unknown device is refused
"$BATCH" "$K" 0 100 "$T/b1.json" > "$T/info"
post "$T/b1.json"
expect_status 403 "batch of a device not enrolled"
grep -q "not enrolled" "$T/resp" || fail "403 body: $(cat "$T/resp")"

# enrolment prints the device id the kiosk computes
expect_rc 4 "$HUB" enroll --db "$DB" --pub "$T/fx/entries.csv"
expect_rc 0 "$HUB" enroll --db "$DB" --pub "$K/device.pub"
[[ $(cat "$T/out.txt") == "$DEV" ]] || fail "enroll printed $(cat "$T/out.txt"), expected $DEV"
expect_rc 0 "$HUB" enroll --db "$DB" --pub "$K/device.pub"
grep -q "enrolled already" "$T/err.txt" || fail "second enrolment: $(cat "$T/err.txt")"

# the first post: every event stored, the ack is the head
IDEM=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["idempotency_key"])' "$T/b1.json")
post "$T/b1.json" -H "Idempotency-Key: $IDEM"
expect_status 200 "first post"
[[ $(jfield acked_seq) == 4 && $(jfield stored) == 4 ]] || fail "first post: $(cat "$T/resp")"
# the collector answers twice: the same batch again stores nothing and acks the same
post "$T/b1.json" -H "Idempotency-Key: $IDEM"
expect_status 200 "the same batch again"
[[ $(jfield acked_seq) == 4 && $(jfield stored) == 0 && $(jfield duplicates) == 4 && \
   $(jfield repeated) == True ]] || fail "duplicate post: $(cat "$T/resp")"
# a key in the header that differs from the batch's is malformed
post "$T/b1.json" -H "Idempotency-Key: not-this-one"
expect_status 400 "differing Idempotency-Key"
stats
[[ $(sj 's["events"]') == 4 && $(sj 'd["events"]') == 4 ]] || fail "duplicates stored: $(cat "$T/stats.json")"

# a lost ack: the kiosk never heard "4", decides more, and sends everything since 0 again
check 0 --id "$CLEAN"
check 1 --id "$BOTH"
"$BATCH" "$K" 0 100 "$T/b2.json" > /dev/null
post "$T/b2.json"
expect_status 200 "resend after a lost ack"
[[ $(jfield acked_seq) == 6 && $(jfield stored) == 2 && $(jfield duplicates) == 4 ]] \
    || fail "lost ack: $(cat "$T/resp")"
# plain JSON (no Content-Encoding) is taken too
check 0 --id "$CLEAN"
"$BATCH" "$K" 6 100 "$T/b3.json" > /dev/null
if [[ -n ${POSGATE_TEST_PG_DIR:-} ]]; then
    # PostgreSQL restarted under the running hub: a batch meanwhile is refused with 503 (the
    # kiosk sends it again), and the next one is taken on connections made again
    bash "$HERE/pg_server.sh" stop "$POSGATE_TEST_PG_DIR"
    post "$T/b3.json"
    expect_status 503 "a batch while PostgreSQL is down"
    bash "$HERE/pg_server.sh" resume "$POSGATE_TEST_PG_DIR"
fi
curl -sS -o "$T/resp" -w '%{http_code}' -X POST -H 'Content-Type: application/json' \
    --data-binary @"$T/b3.json" "$URL/v1/audit" > "$T/status"
expect_status 200 "plain JSON"
[[ $(jfield acked_seq) == 7 ]] || fail "plain JSON: $(cat "$T/resp")"
stats
[[ $(sj 's["events"]') == 7 && $(sj 'd["last_seq"]') == 7 && $(sj 'd["gaps"]') == 0 && \
   $(sj 'd["chain_ok"]') == True ]] || fail "after the lost ack: $(cat "$T/stats.json")"
[[ $(sj 's["by_decision"]["deny"]') == 3 && $(sj 's["by_decision"]["allow"]') == 3 && \
   $(sj 's["by_decision"]["refer"]') == 1 ]] || fail "by_decision: $(cat "$T/stats.json")"
[[ $(dbq "SELECT count(*) || ',' || count(DISTINCT seq) FROM events") == 7,7 ]] \
    || fail "events table holds duplicates"

# refusals
printf 'not gzip' > "$T/junk"
curl -sS -o "$T/resp" -w '%{http_code}' -X POST -H 'Content-Type: application/json' \
    -H 'Content-Encoding: gzip' --data-binary @"$T/junk" "$URL/v1/audit" > "$T/status"
expect_status 400 "a body that is not gzip"
printf '{"v":1,"events":' > "$T/junk.json"
post "$T/junk.json"
expect_status 400 "truncated JSON"
jfield error | grep -q . || fail "400 without an error: $(cat "$T/resp")"
curl -sS -o "$T/resp" -w '%{http_code}' -X POST -H 'Content-Type: text/plain' \
    --data-binary @"$T/b3.json" "$URL/v1/audit" > "$T/status"
expect_status 415 "a text/plain body"
head -c 300000 /dev/urandom > "$T/big"
curl -sS -o "$T/resp" -w '%{http_code}' -X POST -H 'Content-Type: application/json' \
    --data-binary @"$T/big" "$URL/v1/audit" > "$T/status" || true
expect_status 413 "a body past --max-body"
[[ $(curl -s -o /dev/null -w '%{http_code}' "$URL/v1/audit") == 405 ]] || fail "GET /v1/audit"
python3 - "$T/b3.json" "$T/badsig.json" <<'PY'
import json, sys
b = json.load(open(sys.argv[1]))
s = b["signature"]
b["signature"] = s[:20] + ("1" if s[20] == "0" else "0") + s[21:]
open(sys.argv[2], "w").write(json.dumps(b, separators=(",", ":")))
PY
post "$T/badsig.json"
expect_status 401 "a bad signature"
grep -q "does not verify" "$T/resp" || fail "401 body: $(cat "$T/resp")"
# too many uploads arriving at once from one address: two held open, the next refused with
# Retry-After; another address is still served (the held bodies take no upload slot)
python3 - "$T/hub.port" "$URL" "$T/b3.json" <<'PY' || fail "429 with Retry-After"
import socket, subprocess, sys, time
port = int(open(sys.argv[1]).read())
held = []
for _ in range(2):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b"POST /v1/audit HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
              b"Content-Length: 1000\r\n\r\n{")
    held.append(s)
time.sleep(0.3)
out = subprocess.run(["curl", "-sS", "-D", "-", "-o", "/dev/null", "-X", "POST", "-H",
                      "Content-Type: application/json", "--data-binary", "@" + sys.argv[3],
                      sys.argv[2] + "/v1/audit"], capture_output=True, text=True).stdout
other = subprocess.run(["curl", "-sS", "--interface", "127.0.0.2", "-o", "/dev/null", "-w",
                        "%{http_code}", "-X", "POST", "-H", "Content-Type: application/json",
                        "--data-binary", "@" + sys.argv[3], sys.argv[2] + "/v1/audit"],
                       capture_output=True, text=True).stdout
for s in held:
    s.close()
assert out.startswith("HTTP/1.1 429"), out
assert "retry-after: 1" in out.lower(), out
assert other == "200", other
PY
sleep 0.3

# a second kiosk: unknown until enrolled; an event deleted before upload leaves events the
# signed head does not cover: refused (422), and nothing is held against the device
"$B/posgate" --data-dir "$T/k2" init --root "$T/fx/feed/metadata/1.root.json" \
    --list-key "$T/fx/list.key" --jurisdiction CN >/dev/null
"$B/posgate" --data-dir "$T/k2" import "$T/fx/feed" >/dev/null
for id in "$HARD" "$CLEAN" "$BOTH" "$CLEAN" "$HARD"; do
    set +e; "$B/posgate" --data-dir "$T/k2" check --service air --id "$id" >/dev/null; set -e
done
DEV2=$("$HUB" enroll --db "$DB" --pub "$T/k2/device.pub" 2>/dev/null)
"$BATCH" "$T/k2" 0 2 "$T/c1.json" > /dev/null
post "$T/c1.json"
expect_status 200 "second kiosk, first two"
python3 -c 'import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); c.execute("DELETE FROM events WHERE seq = 4"); c.commit()' \
    "$T/k2/audit.db"
"$BATCH" "$T/k2" 2 100 "$T/c2.json" > /dev/null
post "$T/c2.json"
expect_status 422 "an event deleted on the kiosk"
[[ $(jfield broken_at) == 3 && $(jfield acked_seq) == 2 ]] || fail "deleted event: $(cat "$T/resp")"
grep -q "not covered by the signature" "$T/resp" || fail "422 body: $(cat "$T/resp")"
stats
DEV=$DEV2
[[ $(sj 'd["chain_ok"]') == True && $(sj 'd["broken_at"]') == None && $(sj 'd["events"]') == 2 && \
   $(sj 'd["chain_breaks"]') == "[]" ]] \
    || fail "deleted event in stats: $(cat "$T/stats.json")"
DEV=$(pg device-key --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["device_id"])')

# an event edited in the kiosk's audit.db after upload: the re-sent batch is not covered either
python3 -c 'import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); c.execute("UPDATE events SET body = replace(body, '"'"'\"deny\"'"'"', '"'"'\"allow\"'"'"') WHERE seq = 1"); c.commit()' \
    "$K/audit.db"
expect_rc 4 pg audit verify
"$BATCH" "$K" 0 100 "$T/b4.json" > /dev/null
post "$T/b4.json"
expect_status 422 "an edited event"
[[ $(jfield broken_at) == 1 && $(jfield acked_seq) == 7 ]] || fail "edited event: $(cat "$T/resp")"
# and an edit the collector has not seen yet
check 1 --id "$HARD"
check 0 --id "$CLEAN"
python3 -c 'import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); c.execute("UPDATE events SET body = replace(body, '"'"'\"deny\"'"'"', '"'"'\"allow\"'"'"') WHERE seq = 8"); c.commit()' \
    "$K/audit.db"
"$BATCH" "$K" 7 100 "$T/b5.json" > /dev/null
post "$T/b5.json"
expect_status 422 "an edited event not yet uploaded"
[[ $(jfield broken_at) == 8 ]] || fail "edited new event: $(cat "$T/resp")"
stats
[[ $(sj 'd["chain_ok"]') == True && $(sj 'd["events"]') == 7 && \
   $(sj 'd["last_seq"]') == 7 && $(sj 'd["chain_breaks"]') == "[]" ]] \
    || fail "edited event in stats: $(cat "$T/stats.json")"
"$HUB" stats --db "$DB" > "$T/stats.txt"
if grep -q "BROKEN" "$T/stats.txt"; then fail "stats text: $(cat "$T/stats.txt")"; fi
[[ $(dbq "SELECT count(*) FROM events WHERE device_id = '$DEV' AND seq = 1 AND json LIKE '%\"decision\":\"deny\"%'") == 1 ]] \
    || fail "the held event 1 was replaced by the edited one"

# SIGTERM stops it cleanly
kill -TERM "$HUBPID"
set +e; wait "$HUBPID"; rc=$?; set -e
HUBPID=
[[ $rc == 0 ]] || fail "posgate-hub exited $rc on SIGTERM"
echo "collector: ok"
