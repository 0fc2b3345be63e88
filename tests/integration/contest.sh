#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Answering a contest and repairing a wrong listing, with real processes on 127.0.0.1: a kiosk
# decides (`posgate check`: DENY, REFER, ALLOW, DENY through two listings), its batch is
# uploaded to `posgate-hub serve --db --auditor-token`, and then
#   - `posgate-hub decision ID [--json]` answers what was decided and why (list, listing id,
#     authority and legal basis from the feed it serves, feed version, device, operator, time)
#     for the id the counter
#     notice told the person to quote; an unknown id exits 3, a malformed one 2;
#   - GET /v1/decisions/{id}: 401 without a bearer, 403 with another token (429 after ten wrong
#     ones from one address within a minute, the right one too; the token read from a file only
#     its owner reads), 400 for a malformed
#     id, 404 for an unknown one, 200 with the same answer as the CLI; refused on a hub started
#     without --auditor-token;
#   - `posgate-hub decisions --listing LIST/LISTING_ID [--since T] [--json]` lists every DENY and
#     REFER that cited it and nothing else;
#   - no answer ever holds the identifier in clear (the collector has none);
#   - `posgate-hub prune --older-than 30d`, run with the wall clock 60 days on (POSGATE_FAKE_NOW:
#     test builds only), drops the events, the decision is gone (exit 3), and the kiosk's next
#     batch still verifies against the kept chain anchor.
# With POSGATE_TEST_PG_URI set (with_pg.sh) the collector's store is that PostgreSQL database,
# emptied first, instead of a SQLite file.
# Usage: contest.sh BUILD_DIR
set -euo pipefail
B=$(cd "${1:?usage: contest.sh BUILD_DIR}" && pwd)
HERE=$(cd "$(dirname "$0")" && pwd)
T=$(mktemp -d "${TMPDIR:-/tmp}/posgate-contest-XXXXXX")
HUBPID=
stop_hub() {
    if [[ -n $HUBPID ]]; then kill "$HUBPID" 2>/dev/null || true; wait "$HUBPID" 2>/dev/null || true; fi
    HUBPID=
}
trap 'stop_hub; rm -rf "$T"' EXIT
unset POSGATE_DATA_DIR POSGATE_FAKE_NOW
. "$HERE/lib.sh"
FAIL_LOGS=("$T/hub.log")
EXPECT_DIR=$T
BATCH=$B/tests/collector_batch
[[ -x $BATCH ]] || BATCH=$B/collector_batch
[[ -x $BATCH ]] || fail "collector_batch not built"
HUB=$B/posgate-hub
DB=$T/hub.db
if [[ -n ${POSGATE_TEST_PG_URI:-} ]]; then
    DB=$POSGATE_TEST_PG_URI
    psql -X -q -v ON_ERROR_STOP=1 "$DB" -c 'DROP SCHEMA public CASCADE; CREATE SCHEMA public' \
        || fail "cannot empty $DB"
fi
TOKEN=auditor-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')

bash "$HERE/audit_fixture.sh" "$B" "$T/fx" >/dev/null
# shellcheck disable=SC1091
source "$T/fx/subjects.env"
K=$T/fx/k
pg() { "$B/posgate" --data-dir "$K" "$@"; }
# decide RC FILE ARGS... : one decision as JSON in FILE; prints its decision id
decide() {
    local want=$1 f=$2; shift 2
    set +e; pg check --service air --json "$@" > "$f" 2>"$T/check.err"; local rc=$?; set -e
    [[ $rc == "$want" ]] || fail "check $* exited $rc, expected $want: $(cat "$f" "$T/check.err")"
    python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["decision_id"])' "$f"
}
# no_clear_ids FILE WHAT : none of the fixture's identifiers appears in FILE
no_clear_ids() {
    local v
    for v in "${HARD#*:}" "${BOTH#*:}" "${CLEAN#*:}" "${OVR#*:}" "$NAME"; do
        if grep -qF "$v" "$1"; then fail "$2 holds the identifier $v in clear"; fi
    done
}
post() { # post FILE : gzip POST of a batch; status in $T/status, body in $T/resp
    gzip -c "$1" > "$T/post.gz"
    curl -sS -o "$T/resp" -w '%{http_code}' -X POST -H 'Content-Type: application/json' \
        -H 'Content-Encoding: gzip' --data-binary @"$T/post.gz" "$URL/v1/audit" > "$T/status"
    [[ $(cat "$T/status") == 200 ]] || fail "upload: HTTP $(cat "$T/status"): $(cat "$T/resp")"
}
get() { # get PATH [curl args] : status in $T/status, body in $T/resp
    local p=$1; shift
    curl -sS -o "$T/resp" -w '%{http_code}' "$@" "$URL$p" > "$T/status"
}
expect_get() { # expect_get CODE WHAT PATH [curl args]
    local code=$1 what=$2; shift 2
    get "$@"
    [[ $(cat "$T/status") == "$code" ]] || fail "$what: HTTP $(cat "$T/status"), expected $code: $(cat "$T/resp")"
}
start_hub() { # start_hub [serve args]
    rm -f "$T/hub.port" # before the start: after it, it could remove the new hub's own
    "$HUB" serve --db "$DB" --listen 127.0.0.1:0 --port-file "$T/hub.port" "$@" 2>"$T/hub.log" &
    HUBPID=$!
    wait_for 10 test -s "$T/hub.port" || fail "posgate-hub did not start"
    URL=http://127.0.0.1:$(cat "$T/hub.port")
}

# ---- decisions at the counter; the notice names the id to quote
D_HARD=$(decide 1 "$T/hard.json" --id "$HARD" --operator clerk-7)
python3 - "$T/hard.json" "$D_HARD" <<'PY' || fail "the DENY notice does not end with its decision id"
import json, sys
n = json.load(open(sys.argv[1]))["notice"].rstrip("\n").splitlines()[-1]
assert n.startswith("Decision id: " + sys.argv[2] + "."), n
PY
D_REFER=$(decide 3 "$T/refer.json" --name "$NAME" --birth-date "$DOB" --operator clerk-7)
D_ALLOW=$(decide 0 "$T/allow.json" --id "$CLEAN" --operator clerk-7)
D_BOTH=$(decide 1 "$T/both.json" --id "$BOTH" --operator clerk-8)
LISTING=$(python3 -c 'import json,sys; r=json.load(open(sys.argv[1]))["reasons"][0]; print(r["list"]+"/"+r["listing_id"])' "$T/hard.json")
DEV=$(pg device-key --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["device_id"])')

# ---- the collector, with the auditor's token; the kiosk's batch uploaded
expect_rc 0 "$HUB" enroll --db "$DB" --pub "$K/device.pub"
start_hub --feed "$T/fx/feed" --auditor-token "$TOKEN"
"$BATCH" "$K" 0 100 "$T/b1.json" > /dev/null
post "$T/b1.json"

# ---- posgate-hub decision ID
expect_rc 0 "$HUB" decision "$D_HARD" --db "$DB" --feed "$T/fx/feed"
cp "$T/out.txt" "$T/decision.txt"
for want in "$D_HARD" deny spc-enforcement SPC-HARD-1 "Supreme People's Court" \
            "Provisions on Restricting High Consumption" clerk-7 "$DEV" air; do
    grep -qiF -- "$want" "$T/decision.txt" || fail "decision $D_HARD does not say '$want': $(cat "$T/decision.txt")"
done
no_clear_ids "$T/decision.txt" "posgate-hub decision"
expect_rc 0 "$HUB" decision "$D_HARD" --db "$DB" --feed "$T/fx/feed" --json
cp "$T/out.txt" "$T/decision.json"
python3 - "$T/decision.json" "$D_HARD" "$DEV" <<'PY' || fail "decision --json: $(cat "$T/decision.json")"
import json, sys
d = json.load(open(sys.argv[1]))
flat = json.dumps(d)
assert sys.argv[2] in flat and sys.argv[3] in flat, "id or device missing"
assert "deny" in flat.lower() and "SPC-HARD-1" in flat and "clerk-7" in flat
assert "feed_version" in flat, "no feed version"
PY
no_clear_ids "$T/decision.json" "posgate-hub decision --json"
expect_rc 0 "$HUB" decision "$D_REFER" --db "$DB"
grep -qi refer "$T/out.txt" || fail "decision $D_REFER is not a REFER: $(cat "$T/out.txt")"
expect_rc 3 "$HUB" decision "ffffffffffffffff0000000000000063" --db "$DB"
expect_rc 2 "$HUB" decision "not-an-id" --db "$DB"
expect_rc 2 "$HUB" decision "$D_HARD"

# ---- GET /v1/decisions/{id}
expect_get 401 "no bearer" "/v1/decisions/$D_HARD"
expect_get 403 "another token" "/v1/decisions/$D_HARD" -H "Authorization: Bearer ${TOKEN}x"
expect_get 403 "a token one byte short" "/v1/decisions/$D_HARD" -H "Authorization: Bearer ${TOKEN%?}"
expect_get 400 "a malformed id" "/v1/decisions/..%2f..%2fhub.db" -H "Authorization: Bearer $TOKEN"
expect_get 404 "an unknown id" "/v1/decisions/ffffffffffffffff0000000000000063" -H "Authorization: Bearer $TOKEN"
expect_get 200 "the auditor" "/v1/decisions/$D_HARD" -H "Authorization: Bearer $TOKEN"
python3 - "$T/resp" "$T/decision.json" <<'PY' || fail "HTTP and CLI answers differ: $(cat "$T/resp")"
import json, sys
assert json.load(open(sys.argv[1])) == json.load(open(sys.argv[2]))
PY
no_clear_ids "$T/resp" "GET /v1/decisions"
stop_hub
start_hub --feed "$T/fx/feed"
expect_get 403 "a hub without --auditor-token" "/v1/decisions/$D_HARD" -H "Authorization: Bearer $TOKEN"
stop_hub

# ---- the token from a file only its owner reads (an argument shows in ps); wrong tokens from
# one address: 429 after 10 within a minute, for every token it presents until the minute ends
printf '%s\n' "$TOKEN" > "$T/auditor.token"
chmod 644 "$T/auditor.token"
expect_rc 5 "$HUB" serve --db "$DB" --listen 127.0.0.1:0 --auditor-token-file "$T/auditor.token"
grep -q "chmod 600" "$T/err.txt" || fail "a token file others can read: $(cat "$T/err.txt")"
chmod 600 "$T/auditor.token"
expect_rc 2 "$HUB" serve --db "$DB" --listen 127.0.0.1:0 --auditor-token "$TOKEN" \
    --auditor-token-file "$T/auditor.token"
start_hub --auditor-token-file "$T/auditor.token"
if tr '\0' ' ' < "/proc/$HUBPID/cmdline" | grep -qF -- "$TOKEN"; then
    fail "the token shows in the hub's command line"
fi
expect_get 200 "the auditor, its token from a file" "/v1/decisions/$D_HARD" -H "Authorization: Bearer $TOKEN"
for i in 1 2 3 4 5 6 7 8 9 10; do
    expect_get 403 "wrong token $i" "/v1/decisions/$D_HARD" -H "Authorization: Bearer guess-$i"
done
expect_get 429 "an 11th wrong token within the minute" "/v1/decisions/$D_HARD" -H "Authorization: Bearer guess-11"
expect_get 429 "the right token from the address that guessed" "/v1/decisions/$D_HARD" -H "Authorization: Bearer $TOKEN"
grep -q "try again" "$T/resp" || fail "429 body: $(cat "$T/resp")"
stop_hub

# ---- posgate-hub decisions --listing: the DENY that cited it, not the others
expect_rc 0 "$HUB" decisions --listing "$LISTING" --db "$DB" --json
cp "$T/out.txt" "$T/listing.json"
python3 - "$T/listing.json" "$D_HARD" "$D_REFER" "$D_ALLOW" "$D_BOTH" <<'PY' || fail "decisions --listing: $(cat "$T/listing.json")"
import json, sys
flat = json.dumps(json.load(open(sys.argv[1])))
assert sys.argv[2] in flat, "the DENY citing the listing is missing"
for other in sys.argv[3:]:
    assert other not in flat, other + " did not cite the listing"
PY
no_clear_ids "$T/listing.json" "posgate-hub decisions --listing"
expect_rc 0 "$HUB" decisions --listing "$LISTING" --db "$DB"
grep -qF "$D_HARD" "$T/out.txt" || fail "decisions --listing (text): $(cat "$T/out.txt")"
expect_rc 0 "$HUB" decisions --listing "$LISTING" --db "$DB" --since 2999-01-01 --json
if grep -qF "$D_HARD" "$T/out.txt"; then fail "--since 2999 still lists $D_HARD"; fi
expect_rc 2 "$HUB" decisions --listing "no-slash" --db "$DB"

# ---- retention: prune 60 days on, the anchor keeps the chain verifiable
LATER=$(( $(date +%s) + 60 * 86400 ))
POSGATE_FAKE_NOW=$LATER expect_rc 0 "$HUB" prune --older-than 30d --db "$DB"
grep -q "pruned 4 events" "$T/out.txt" || fail "prune: $(cat "$T/out.txt")"
expect_rc 3 "$HUB" decision "$D_HARD" --db "$DB"
D_NEXT=$(decide 1 "$T/next.json" --id "$HARD" --operator clerk-7)
start_hub --auditor-token "$TOKEN"
"$BATCH" "$K" 4 100 "$T/b2.json" > /dev/null
post "$T/b2.json"
python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); assert r["acked_seq"] == 5 and r["stored"] == 1, r' "$T/resp" \
    || fail "the batch after the prune: $(cat "$T/resp")"
expect_rc 0 "$HUB" stats --db "$DB" --json
python3 - "$T/out.txt" "$DEV" <<'PY' || fail "chain after prune: $(cat "$T/out.txt")"
import json, sys
d = next(x for x in json.load(open(sys.argv[1]))["devices"] if x["device_id"] == sys.argv[2])
assert d["chain_ok"] is True, d
PY
expect_get 200 "the decision after the prune" "/v1/decisions/$D_NEXT" -H "Authorization: Bearer $TOKEN"

# ---- PostgreSQL: the commands that only read answer from a database that takes no write (as a
# hot standby), and refuse a schema they do not read with what to do; the others refuse it
if [[ -n ${POSGATE_TEST_PG_URI:-} ]]; then
    DBNAME=$(psql -X -At "$DB" -c 'SELECT current_database()')
    psql -X -q -v ON_ERROR_STOP=1 "$DB" -c "ALTER DATABASE \"$DBNAME\" SET default_transaction_read_only = on" \
        || fail "could not make the database read-only"
    expect_rc 0 "$HUB" stats --db "$DB" --json
    expect_rc 0 "$HUB" decisions --listing "$LISTING" --db "$DB" --json
    grep -qF "$D_NEXT" "$T/out.txt" || fail "decisions --listing on a read-only database: $(cat "$T/out.txt")"
    expect_rc 0 "$HUB" report --month "$(date -u +%Y-%m)" --db "$DB" --json
    expect_rc 0 "$HUB" devices --db "$DB" --json
    expect_rc 5 "$HUB" decision "$D_NEXT" --db "$DB" # it records the lookup: a write
    grep -q "read-only transaction" "$T/out.txt" "$T/err.txt" 2>/dev/null ||
        fail "decision on a read-only database: $(cat "$T/out.txt" "$T/err.txt" 2>/dev/null)"
    psql -X -q -v ON_ERROR_STOP=1 "$DB" -c "SET default_transaction_read_only = off" \
        -c "ALTER DATABASE \"$DBNAME\" RESET default_transaction_read_only" &&
        psql -X -q -v ON_ERROR_STOP=1 "$DB" \
            -c "DELETE FROM schema_version WHERE version = (SELECT max(version) FROM schema_version)" ||
        fail "could not put the schema a version back"
    expect_rc 5 "$HUB" stats --db "$DB" --json
    grep -q "migrates it" "$T/out.txt" "$T/err.txt" 2>/dev/null ||
        fail "stats on an older schema: $(cat "$T/out.txt" "$T/err.txt" 2>/dev/null)"
fi
echo "contest: decision, decisions --listing, GET /v1/decisions and prune answer as documented"
