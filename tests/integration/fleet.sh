#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The fleet dashboard's data and its gate, with real processes on 127.0.0.1: fleet_fixture.sh
# brings three kiosks to the collector (current; stale; behind with a broken chain) and
# `posgate-hub serve --feed --db --admin-token --auditor-token` answers
#   - GET /v1/fleet/overview, devices, devices/{id}, versions, decisions?by=...: each device in
#     its states, silent_minutes, a device's report history and chain breaks, the versions with
#     who is behind and the propagation of version 3, decisions counted by decision, list,
#     service and listing per day and per hour;
#   - GET /v1/fleet/decisions?listing=: what `posgate-hub decisions --listing --json` says, for
#     the admin and the auditor;
#   - who may read: 401 without a credential, 403 with another token (429 to an address after
#     10 wrong ones within a minute, whatever it presents then) or the auditor's outside
#     listings, 403 on a hub without --admin-token, 404 without --db; the login (session cookie
#     HttpOnly, SameSite=Strict; Secure over HTTPS), refused from another origin; the logout
#     ending it; over HTTPS, a certificate of --admin-client-ca as admin and one of the kiosks'
#     CA (--tls-client-ca) not;
#   - the headers: a Content-Security-Policy, nosniff, no CORS header even when asked; the
#     page's files with their types and no URL of another host.
# With POSGATE_TEST_PG_URI set (with_pg.sh) the collector's store is that PostgreSQL database,
# emptied first, instead of a SQLite file.
# Usage: fleet.sh BUILD_DIR
set -euo pipefail
B=$(cd "${1:?usage: fleet.sh BUILD_DIR}" && pwd)
HERE=$(cd "$(dirname "$0")" && pwd)
T=$(mktemp -d "${TMPDIR:-/tmp}/posgate-fleet-XXXXXX")
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
HUB=$B/posgate-hub
DB=$T/hub.db
if [[ -n ${POSGATE_TEST_PG_URI:-} ]]; then
    DB=$POSGATE_TEST_PG_URI
    psql -X -q -v ON_ERROR_STOP=1 "$DB" -c 'DROP SCHEMA public CASCADE; CREATE SCHEMA public' \
        || fail "cannot empty $DB"
fi
bash "$HERE/fleet_fixture.sh" "$B" "$T/fx" "$DB" || fail "fleet_fixture.sh"
# shellcheck disable=SC1091
source "$T/fx/fleet.env"

start_hub() { # start_hub [serve args]
    rm -f "$T/hub.port" # before the start: after it, it could remove the new hub's own
    "$HUB" serve --listen 127.0.0.1:0 --port-file "$T/hub.port" "$@" 2>>"$T/hub.log" &
    HUBPID=$!
    wait_for 10 test -s "$T/hub.port" || fail "posgate-hub did not start"
    URL=http://127.0.0.1:$(cat "$T/hub.port")
}
get() { # get PATH [curl args] : status in $T/status, body in $T/resp, headers in $T/head
    local p=$1; shift
    curl -sS -D "$T/head" -o "$T/resp" -w '%{http_code}' "$@" "$URL$p" > "$T/status"
}
expect() { # expect CODE WHAT PATH [curl args]
    local code=$1 what=$2; shift 2
    get "$@"
    [[ $(cat "$T/status") == "$code" ]] || fail "$what: HTTP $(cat "$T/status"), expected $code: $(head -c 600 "$T/resp")"
}
ADMIN=(-H "Authorization: Bearer $TOKEN_ADMIN")
AUDITOR=(-H "Authorization: Bearer $TOKEN_AUDITOR")
# holds WHAT PYTHON_EXPR : a Python expression over d (the last answer's JSON) and the fixture's
# ids is true
holds() {
    python3 - "$T/resp" "$CURRENT" "$STALE" "$BROKEN" "$2" <<'PY' || fail "$1: $(head -c 3000 "$T/resp")"
import json, sys
d = json.load(open(sys.argv[1]))
CURRENT, STALE, BROKEN = sys.argv[2:5]
dev = {x["device_id"]: x for x in d.get("devices", [])} if isinstance(d, dict) else {}
sys.exit(0 if eval("(" + sys.argv[5] + ")") else 1)
PY
}

# ---- a hub without an admin credential, and one without a collector
start_hub --db "$DB" --feed "$FEED"
expect 403 "overview without --admin-token" /v1/fleet/overview "${ADMIN[@]}"
expect 403 "dashboard without --admin-token" /dashboard
expect 403 "login without --admin-token" /dashboard/login -X POST "${ADMIN[@]}"
stop_hub
start_hub --feed "$FEED" --admin-token "$TOKEN_ADMIN"
expect 404 "dashboard without --db" /dashboard
stop_hub

start_hub --db "$DB" --feed "$FEED" --admin-token "$TOKEN_ADMIN" --auditor-token "$TOKEN_AUDITOR"

# ---- who may read
expect 401 "no credential" /v1/fleet/overview
grep -qi '^WWW-Authenticate: Bearer' "$T/head" || fail "401 without WWW-Authenticate: $(cat "$T/head")"
expect 403 "another token" /v1/fleet/overview -H "Authorization: Bearer not-$TOKEN_ADMIN"
expect 403 "the auditor's token outside listings" /v1/fleet/devices "${AUDITOR[@]}"
expect 405 "POST to the data" /v1/fleet/overview -X POST "${ADMIN[@]}"

# ---- overview
expect 200 "overview" /v1/fleet/overview "${ADMIN[@]}" -H "Origin: http://evil.example"
if grep -qi '^Access-Control-' "$T/head"; then fail "a CORS header: $(cat "$T/head")"; fi
grep -qi "^Content-Security-Policy: default-src 'none'; script-src 'self'" "$T/head" || fail "CSP: $(cat "$T/head")"
grep -qi '^X-Content-Type-Options: nosniff' "$T/head" || fail "nosniff: $(cat "$T/head")"
grep -qi '^Content-Type: application/json' "$T/head" || fail "type: $(cat "$T/head")"
holds "overview" 'd["states"] == {"current": 1, "behind": 1, "stale": 1, "expired": 0,
    "list_key_mismatch": 0, "chain_broken": 1, "gaps": 0, "silent": 0} and
    d["newest_feed_version"] == 3 and d["newest_from"] == "served" and d["devices_enrolled"] == 3 and
    d["devices_reported"] == 3 and d["silent_minutes"] == 60 and
    d["feed_versions"] == [{"feed_version": 3, "devices": 2}, {"feed_version": 2, "devices": 1}]'

# ---- devices
expect 200 "devices" /v1/fleet/devices "${ADMIN[@]}"
holds "devices: states" 'dev[CURRENT]["states"] == ["current"] and dev[STALE]["states"] == ["stale"] and
    dev[BROKEN]["states"] == ["behind", "chain_broken"] and len(dev) == 3'
holds "devices: figures" 'dev[STALE]["stale_lists"] == ["caac-safety"] and dev[CURRENT]["stale_lists"] == [] and
    dev[BROKEN]["chain_ok"] is False and dev[BROKEN]["broken_at"] == 1 and dev[BROKEN]["feed_version"] == 2 and
    dev[CURRENT]["feed_version"] == 3 and dev[CURRENT]["events"] == 5 and dev[CURRENT]["list_key"] == "ok" and
    dev[STALE]["metadata_expired"] is False and dev[CURRENT]["chain_ok"] is True and dev[CURRENT]["gaps"] == 0 and
    all(x["last_report"] is not None and x["silent_s"] >= 0 for x in dev.values())'
sleep 1
expect 200 "devices, silent after 0 minutes" "/v1/fleet/devices?silent_minutes=0" "${ADMIN[@]}"
holds "silent after 0 minutes" 'all("silent" in x["states"] and "current" not in x["states"] for x in dev.values()) and
    d["silent_minutes"] == 0'
expect 400 "silent_minutes malformed" "/v1/fleet/devices?silent_minutes=-1" "${ADMIN[@]}"

# ---- one device
expect 200 "the stale device" "/v1/fleet/devices/$STALE" "${ADMIN[@]}"
holds "the stale device's page" 'd["device"]["device_id"] == STALE and d["device"]["states"] == ["stale"] and
    [h["feed_version"] for h in d["history"]] == [3, 2] and d["history"][0]["stale_lists"] == ["caac-safety"] and
    d["history"][1]["stale_lists"] == [] and d["report"]["device_id"] == STALE and d["chain_breaks"] == [] and
    d["gap_ranges"] == [] and any(l["id"] == "caac-safety" and l["stale"] for l in d["report"]["status"]["lists"])'
expect 200 "the stale device, one report" "/v1/fleet/devices/$STALE?limit=1" "${ADMIN[@]}"
holds "limit=1" '[h["feed_version"] for h in d["history"]] == [3]'
expect 200 "the broken device" "/v1/fleet/devices/$BROKEN" "${ADMIN[@]}"
holds "the broken device's page" 'd["chain_breaks"] == [{"seq": 1, "kind": "conflict", "times": 1}] and
    d["device"]["states"] == ["behind", "chain_broken"]'
expect 404 "an unknown device" "/v1/fleet/devices/0123456789abcdef0123456789abcdef" "${ADMIN[@]}"
expect 404 "a malformed device id" "/v1/fleet/devices/..%2Fetc" "${ADMIN[@]}"

# ---- versions
expect 200 "versions" /v1/fleet/versions "${ADMIN[@]}"
holds "versions" '[v["feed_version"] for v in d["versions"]] == [3, 2] and
    d["versions"][0]["behind"] == [BROKEN] and d["versions"][1]["behind"] == [] and
    d["versions"][0]["devices_on"] == 2 and d["versions"][0]["devices_installed"] == 2 and
    d["versions"][1]["devices_installed"] == 3 and d["versions"][0]["issued_at"] is not None and
    sorted(i["device_id"] for i in d["versions"][0]["installs"]) == sorted([CURRENT, STALE]) and
    d["versions"][0]["propagation"]["devices"] == 2 and
    0 <= d["versions"][0]["propagation"]["p50_s"] <= d["versions"][0]["propagation"]["p95_s"] ==
    d["versions"][0]["propagation"]["max_s"] == max(i["latency_s"] for i in d["versions"][0]["installs"]) < 600'

# ---- decisions over time: the collector's own count of the events, by decision
"$HUB" stats --db "$DB" --json > "$T/stats.json"
WANT=$(python3 -c 'import json,sys; b=json.load(open(sys.argv[1]))["by_decision"]; print({k: b[k] for k in ("allow", "deny", "refer") if b[k]})' "$T/stats.json")
expect 200 "decisions by decision" "/v1/fleet/decisions?by=decision&days=2" "${ADMIN[@]}"
holds "decisions by decision" "{s['key']: s['total'] for s in d['series']} == $WANT and d['bucket'] == 'day' and
    len(d['buckets']) == 3 and all(len(s['counts']) == 3 and sum(s['counts']) == s['total'] for s in d['series'])
    and d['decisions'] == sum($WANT.values()) and d['outside_window'] == 0 and d['unreadable'] == 0"
expect 200 "decisions per hour" "/v1/fleet/decisions?bucket=hour&days=1" "${ADMIN[@]}"
holds "decisions per hour" "{s['key']: s['total'] for s in d['series']} == $WANT and len(d['buckets']) in (24, 25) and
    d['buckets'][-1].endswith(':00Z')"
expect 200 "decisions by list" "/v1/fleet/decisions?by=list" "${ADMIN[@]}"
holds "decisions by list" '{s["key"]: s["total"] for s in d["series"]} == {"spc-enforcement": 5, "caac-safety": 3}'
expect 200 "decisions by service" "/v1/fleet/decisions?by=service" "${ADMIN[@]}"
holds "decisions by service" "[(s['key'], s['total']) for s in d['series']] == [('air', sum($WANT.values()))]"
expect 200 "decisions by listing" "/v1/fleet/decisions?by=listing" "${ADMIN[@]}"
holds "decisions by listing" '{s["key"]: s["total"] for s in d["series"]} == {"spc-enforcement/SPC-HARD-1": 3,
    "spc-enforcement/SPC-BOTH-2": 2, "caac-safety/CAAC-BOTH-1": 1, "caac-safety/CAAC-NAME-1": 1,
    "caac-safety/CAAC-OVR-1": 1}'
expect 400 "hour buckets over 32 days" "/v1/fleet/decisions?bucket=hour&days=32" "${ADMIN[@]}"
expect 400 "by nothing known" "/v1/fleet/decisions?by=operator" "${ADMIN[@]}"
expect 404 "an answer not known" /v1/fleet/nothing "${ADMIN[@]}"

# ---- one listing's decisions: the same as the command line, for the admin and the auditor
expect_rc 0 "$HUB" decisions --listing "$LISTING" --db "$DB" --json
python3 -c 'import json,sys; json.dump(json.load(open(sys.argv[1])), open(sys.argv[2], "w"), sort_keys=True)' \
    "$T/out.txt" "$T/cli.json"
for who in ADMIN AUDITOR; do
    declare -n cred=$who
    expect 200 "decisions?listing= ($who)" "/v1/fleet/decisions?listing=$LISTING" "${cred[@]}"
    python3 -c 'import json,sys; sys.exit(0 if json.load(open(sys.argv[1])) == json.load(open(sys.argv[2])) else 1)' \
        "$T/resp" "$T/cli.json" || fail "decisions?listing= ($who) differs from the CLI: $(cat "$T/resp")"
    unset -n cred
done
holds "three DENYs cite the listing" 'len(d) == 3 and all(x["decision"] == "deny" for x in d) and
    sorted(x["device_id"] for x in d) == sorted([CURRENT, STALE, BROKEN])'
expect 401 "decisions?listing= without a credential" "/v1/fleet/decisions?listing=$LISTING"
expect 400 "decisions?listing= malformed" "/v1/fleet/decisions?listing=nolisting" "${ADMIN[@]}"
expect 400 "decisions?listing= since malformed" "/v1/fleet/decisions?listing=$LISTING&since=x" "${ADMIN[@]}"

# ---- the page and its files
expect 200 "the page" /dashboard
grep -qi '^Content-Type: text/html' "$T/head" || fail "page type: $(cat "$T/head")"
grep -qi "^Content-Security-Policy: .*frame-ancestors 'none'" "$T/head" || fail "page CSP: $(cat "$T/head")"
cp "$T/resp" "$T/page.html"
for f in app.js charts.js app.css favicon.svg; do
    expect 200 "dashboard/$f" "/dashboard/$f"
    cat "$T/resp" >> "$T/page.html"
done
grep -qi '^Content-Type: image/svg+xml' "$T/head" || fail "icon type: $(cat "$T/head")"
expect 200 "app.js" /dashboard/app.js
grep -qi '^Content-Type: text/javascript' "$T/head" || fail "script type: $(cat "$T/head")"
# no URL of another host (the SVG namespace names no resource)
if grep -oE '(https?:)?//[a-zA-Z0-9.-]+' "$T/page.html" | grep -v 'www.w3.org' | grep -q .; then
    fail "the dashboard names another host: $(grep -oE '(https?:)?//[a-zA-Z0-9.-]+' "$T/page.html" | grep -v www.w3.org | sort -u)"
fi
if grep -qiE '<script>|<style>| style=| on[a-z]+=' "$T/page.html"; then fail "inline script or style in the page"; fi
expect 404 "a file that is not there" /dashboard/nothing.js

# ---- the browser's session
expect 200 "session, signed out" /dashboard/session
holds "signed out" 'd == {"admin": False, "via": None, "token_login": True}'
expect 405 "GET /dashboard/login" /dashboard/login
expect 401 "login without a token" /dashboard/login -X POST
expect 403 "login with another token" /dashboard/login -X POST -H "Authorization: Bearer x$TOKEN_ADMIN"
expect 403 "login from another origin" /dashboard/login -X POST "${ADMIN[@]}" -H "Origin: http://evil.example"
expect 403 "login from another site" /dashboard/login -X POST "${ADMIN[@]}" -H "Sec-Fetch-Site: cross-site"
if grep -qi '^Set-Cookie' "$T/head"; then fail "a refused login set a cookie"; fi
expect 200 "login" /dashboard/login -X POST "${ADMIN[@]}" -H "Origin: $URL" -H "Sec-Fetch-Site: same-origin"
COOKIE=$(sed -n 's/^Set-Cookie: \(posgate_hub_session=[0-9a-f]\{64\}\);.*/\1/Ip' "$T/head" | tr -d '\r')
[[ -n $COOKIE ]] || fail "no session cookie: $(cat "$T/head")"
grep -i '^Set-Cookie' "$T/head" | grep -qi 'HttpOnly; SameSite=Strict' || fail "cookie attributes: $(cat "$T/head")"
expect 200 "overview with the session" /v1/fleet/overview -H "Cookie: $COOKIE"
expect 200 "session, signed in" /dashboard/session -H "Cookie: $COOKIE"
holds "signed in" 'd["admin"] is True and d["via"] == "session"'
expect 401 "another session id" /v1/fleet/overview -H "Cookie: posgate_hub_session=$(printf '0%.0s' {1..64})"
expect 403 "logout from another origin" /dashboard/logout -X POST -H "Cookie: $COOKIE" -H "Origin: http://evil.example"
expect 200 "overview, the session still there" /v1/fleet/overview -H "Cookie: $COOKIE"
expect 200 "logout" /dashboard/logout -X POST -H "Cookie: $COOKIE"
expect 401 "overview after the logout" /v1/fleet/overview -H "Cookie: $COOKIE"
stop_hub

# ---- HTTPS with client certificates: a certificate of the admins' CA is admin, one of the
# kiosks' CA is not (every kiosk holds one), and the cookie is Secure
mkdir "$T/pki"
(
    cd "$T/pki"
    ec=(-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes)
    openssl req -x509 "${ec[@]}" -keyout ca.key -out ca.pem -days 2 -subj /CN=fleet-ca 2>/dev/null
    openssl req -x509 "${ec[@]}" -keyout admin-ca.key -out admin-ca.pem -days 2 -subj /CN=admin-ca 2>/dev/null
    openssl req -x509 "${ec[@]}" -keyout other.key -out other.pem -days 2 -subj /CN=other 2>/dev/null
    openssl req "${ec[@]}" -keyout server.key -out server.csr -subj /CN=127.0.0.1 2>/dev/null
    printf 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' > server.ext
    openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
        -extfile server.ext -out server.pem 2>/dev/null
    printf 'extendedKeyUsage=clientAuth\n' > client.ext
    openssl req "${ec[@]}" -keyout client.key -out client.csr -subj /CN=kiosk-7 2>/dev/null
    openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
        -extfile client.ext -out client.pem 2>/dev/null
    openssl req "${ec[@]}" -keyout admin.key -out admin.csr -subj /CN=operator 2>/dev/null
    openssl x509 -req -in admin.csr -CA admin-ca.pem -CAkey admin-ca.key -CAcreateserial -days 2 \
        -extfile client.ext -out admin.pem 2>/dev/null
    # a certificate of the admins' CA for servers only: not a client credential
    printf 'extendedKeyUsage=serverAuth\n' > serveronly.ext
    openssl req "${ec[@]}" -keyout srvonly.key -out srvonly.csr -subj /CN=not-a-client 2>/dev/null
    openssl x509 -req -in srvonly.csr -CA admin-ca.pem -CAkey admin-ca.key -CAcreateserial -days 2 \
        -extfile serveronly.ext -out srvonly.pem 2>/dev/null
)
P=$T/pki
KIOSK_CERT=(--cert "$P/client.pem" --key "$P/client.key")
ADMIN_CERT=(--cert "$P/admin.pem" --key "$P/admin.key")
code_of() { curl -s -o /dev/null -w '%{http_code}' --cacert "$P/ca.pem" "$@" || true; }
# the kiosks' CA only: a kiosk's certificate fetches the feed and is not admin
start_hub --db "$DB" --feed "$FEED" --tls-cert "$P/server.pem" --tls-key "$P/server.key" \
    --tls-client-ca "$P/ca.pem"
URL=https://127.0.0.1:$(cat "$T/hub.port")
expect 403 "kiosks' CA only: no admin credential" /v1/fleet/overview --cacert "$P/ca.pem" "${KIOSK_CERT[@]}"
grep -q "admin-client-ca" "$T/resp" || fail "the refusal names --admin-client-ca: $(cat "$T/resp")"
[[ $(code_of "${KIOSK_CERT[@]}" "$URL/metadata/timestamp.json") == 200 ]] ||
    fail "a kiosk's certificate does not fetch the feed"
stop_hub
start_hub --db "$DB" --feed "$FEED" --tls-cert "$P/server.pem" --tls-key "$P/server.key" \
    --tls-client-ca "$P/ca.pem" --admin-client-ca "$P/admin-ca.pem"
URL=https://127.0.0.1:$(cat "$T/hub.port")
expect 401 "HTTPS, no certificate" /v1/fleet/overview --cacert "$P/ca.pem"
expect 401 "HTTPS, a kiosk's certificate" /v1/fleet/overview --cacert "$P/ca.pem" "${KIOSK_CERT[@]}"
expect 200 "HTTPS, an admin's certificate" /v1/fleet/overview --cacert "$P/ca.pem" "${ADMIN_CERT[@]}"
holds "overview with a certificate" 'd["states"]["chain_broken"] == 1'
expect 200 "session with a certificate" /dashboard/session --cacert "$P/ca.pem" "${ADMIN_CERT[@]}"
holds "admin by certificate" 'd == {"admin": True, "via": "certificate", "token_login": False}'
expect 200 "session with a kiosk's certificate" /dashboard/session --cacert "$P/ca.pem" "${KIOSK_CERT[@]}"
holds "a kiosk's certificate is no admin" 'd["admin"] is False'
code=$(code_of --cert "$P/srvonly.pem" --key "$P/srvonly.key" "$URL/v1/fleet/overview")
[[ $code == 401 || $code == 000 ]] || fail "an admins' CA certificate for servers only: HTTP $code"
# an admin's certificate is not a kiosk's: no feed
[[ $(code_of "${ADMIN_CERT[@]}" "$URL/metadata/timestamp.json") == 403 ]] ||
    fail "an admin's certificate fetched the feed"
[[ $(code_of "${KIOSK_CERT[@]}" "$URL/metadata/timestamp.json") == 200 ]] ||
    fail "a kiosk's certificate does not fetch the feed"
code=$(code_of --cert "$P/other.pem" --key "$P/other.key" "$URL/v1/fleet/overview")
[[ $code == 401 || $code == 000 ]] || fail "a certificate of another CA: HTTP $code"
expect 403 "login without --admin-token" /dashboard/login -X POST --cacert "$P/ca.pem" "${ADMIN[@]}"
stop_hub
start_hub --db "$DB" --tls-cert "$P/server.pem" --tls-key "$P/server.key" --admin-token "$TOKEN_ADMIN"
URL=https://127.0.0.1:$(cat "$T/hub.port")
expect 200 "HTTPS login" /dashboard/login -X POST --cacert "$P/ca.pem" "${ADMIN[@]}"
grep -i '^Set-Cookie' "$T/head" | grep -qi 'HttpOnly; SameSite=Strict; Max-Age=28800; Secure' \
    || fail "the cookie over HTTPS: $(cat "$T/head")"
# guessing the token: after 10 wrong ones within a minute, 429 to that address, the right token
# and the login included
for i in 1 2 3 4 5 6 7 8 9 10; do
    expect 403 "wrong token $i" /v1/fleet/overview --cacert "$P/ca.pem" -H "Authorization: Bearer guess-$i"
done
expect 429 "an 11th wrong token" /v1/fleet/overview --cacert "$P/ca.pem" -H "Authorization: Bearer guess-11"
expect 429 "the admin token from the guessing address" /v1/fleet/overview --cacert "$P/ca.pem" "${ADMIN[@]}"
expect 429 "a login from the guessing address" /dashboard/login -X POST --cacert "$P/ca.pem" "${ADMIN[@]}"
if grep -qi '^Set-Cookie' "$T/head"; then fail "a throttled login set a cookie"; fi
stop_hub
if grep -q "Sanitizer" "$T/hub.log"; then fail "sanitizer report"; fi
STORE=SQLite
if [[ -n ${POSGATE_TEST_PG_URI:-} ]]; then STORE=PostgreSQL; fi
echo "fleet: ok ($STORE; devices $CURRENT current, $STALE stale, $BROKEN behind and chain broken)"
