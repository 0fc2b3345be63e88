#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The transparency report (`posgate-hub report --month YYYY-MM [--json|--html]`, and
# GET /v1/fleet/report?month= for the dashboard), with real processes: a kiosk decides on air,
# rail and rail.hsr (DENY on one list and on two, REFER, ALLOW, a supervisor override granted
# and one refused), an ALLOW summary of 11 is chained into its trail (a full queue's, standing
# for ALLOWs on air, rail, a service whose name is markup, and services_other), its batches and
# status reports reach the collector by stick (`posgate field-sync`, `posgate-hub ingest`), a
# second feed version is installed and reported, and two contests are looked up (the CLI and
# GET /v1/decisions/{id}); lookups that fail are not counted. Then:
#   - the month's figures, exactly, in text, JSON and HTML, and the same JSON over HTTP; the
#     propagation from the kiosk's own status reports (issued_at to installed_at);
#   - a month with nothing gives zeros; a malformed month is exit 2 (HTTP 400);
#   - no decision id, device id, operator, listing id, override reason or clear identifier in
#     any output; the HTML page has no script and no external URL, and every string escaped.
# With POSGATE_TEST_PG_URI set (with_pg.sh) the collector's store is that PostgreSQL database,
# emptied first, instead of a SQLite file.
# Usage: transparency.sh BUILD_DIR
set -euo pipefail
B=$(cd "${1:?usage: transparency.sh BUILD_DIR}" && pwd)
HERE=$(cd "$(dirname "$0")" && pwd)
T=$(mktemp -d "${TMPDIR:-/tmp}/posgate-transparency-XXXXXX")
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
    psql -X -q -v ON_ERROR_STOP=1 "$DB" -c 'SET client_min_messages = warning' \
        -c 'DROP SCHEMA public CASCADE; CREATE SCHEMA public' || fail "cannot empty $DB"
fi
AUDITOR=auditor-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
ADMIN=admin-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')

bash "$HERE/audit_fixture.sh" "$B" "$T/fx" >/dev/null
# shellcheck disable=SC1091
source "$T/fx/subjects.env"
K=$T/fx/k
pg() { "$B/posgate" --data-dir "$K" "$@"; }
decide() { # decide RC SERVICE ARGS... : one check; prints its decision id (none when refused)
    local want=$1 svc=$2; shift 2
    set +e; pg check --service "$svc" --json "$@" > "$T/check.json" 2>"$T/check.err"; local rc=$?; set -e
    [[ $rc == "$want" ]] || fail "check $svc $* exited $rc, expected $want: $(cat "$T/check.json" "$T/check.err")"
    python3 -c 'import json,sys; print(json.load(open(sys.argv[1])).get("decision_id", ""))' "$T/check.json"
}
visit() { # visit N : field-sync onto stick N, ingested at the collector
    mkdir -p "$T/stick$1"
    expect_rc 0 pg field-sync "$T/stick$1"
    expect_rc 0 "$HUB" ingest "$T/stick$1" --db "$DB"
}
start_hub() {
    rm -f "$T/hub.port" # before the start: after it, it could remove the new hub's own
    "$HUB" serve --db "$DB" --listen 127.0.0.1:0 --port-file "$T/hub.port" \
        --auditor-token "$AUDITOR" --admin-token "$ADMIN" 2>"$T/hub.log" &
    HUBPID=$!
    wait_for 10 test -s "$T/hub.port" || fail "posgate-hub did not start"
    URL=http://127.0.0.1:$(cat "$T/hub.port")
}
get() { # get CODE WHAT PATH TOKEN : the body in $T/resp
    local code=$1 what=$2 path=$3 token=$4 got
    got=$(curl -sS -o "$T/resp" -w '%{http_code}' -H "Authorization: Bearer $token" "$URL$path")
    [[ $got == "$code" ]] || fail "$what: HTTP $got, expected $code: $(cat "$T/resp")"
}

# ---- the month's decisions (the kiosk's clock), and a summary of ALLOWs a full queue folded
D_HARD=$(decide 1 air --id "$HARD" --operator clerk-7)
decide 3 air --name "$NAME" --birth-date "$DOB" --operator clerk-7 >/dev/null
decide 0 air --id "$CLEAN" --operator clerk-7 >/dev/null
D_BOTH=$(decide 1 air --id "$BOTH" --operator clerk-8)
decide 0 air --id "$OVR" --operator clerk-8 --override-by supervisor-2 \
    --override-reason "papers-seen-by-supervisor" >/dev/null
decide 2 air --id "$HARD" --operator clerk-8 --override-by supervisor-2 \
    --override-reason "refused-override-reason" >/dev/null # refused: the DENY is written
decide 1 rail.hsr --id "$HARD" --operator clerk-9 >/dev/null
decide 0 rail --id "$CLEAN" --operator clerk-9 >/dev/null
SVC_MARKUP="<script>alert(1)</script>&\"'"
python3 - "$K/audit.db" "$SVC_MARKUP" <<'PY' || fail "cannot chain the summary"
import hashlib, json, sqlite3, sys, time
c = sqlite3.connect(sys.argv[1])
seq, prev = c.execute("SELECT seq, hash FROM events ORDER BY seq DESC LIMIT 1").fetchone()
dev = json.loads(c.execute("SELECT body FROM events WHERE seq = 1").fetchone()[0])["device_id"]
now = int(time.time() * 1e6)
t = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now // 1000000))
ev = {"cause": "queue_full", "count": 11, "device_id": dev, "first_time": t,
      "first_time_us": now - 1000, "kind": "allow_summary", "last_time": t, "last_time_us": now,
      "prev": bytes(prev).hex(), "seq": seq + 1,
      "services": {"air": 5, "rail": 2, sys.argv[2]: 1}, "services_other": 3, "v": 1}
body = json.dumps(ev, sort_keys=True, separators=(",", ":"))
c.execute("INSERT INTO events(seq, kind, decision, time_us, body, hash) VALUES (?, ?, ?, ?, ?, ?)",
          (seq + 1, "allow_summary", "allow", now, body, hashlib.sha256(bytes(prev) + body.encode()).digest()))
c.commit()
PY
expect_rc 0 pg audit verify
DEV=$(pg device-key --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["device_id"])')
python3 -c 'import sqlite3,json,sys; [print(json.loads(b).get("id", "")) for (b,) in sqlite3.connect(sys.argv[1]).execute("SELECT body FROM events")]' \
    "$K/audit.db" | grep . > "$T/decision_ids.txt"
[[ $(wc -l < "$T/decision_ids.txt") == 8 ]] || fail "expected 8 decisions in the trail"
MONTH=$(python3 -c 'import sqlite3,json,sys; print(json.loads(sqlite3.connect(sys.argv[1]).execute("SELECT body FROM events WHERE seq = 1").fetchone()[0])["time"][:7])' "$K/audit.db")

# ---- the collector: the trail and the status report by stick; feed version 2 installed and
# reported on the next visit
expect_rc 0 "$HUB" enroll --db "$DB" --pub "$K/device.pub"
visit 1
grep -v ',CAAC-BOTH-1,' "$T/fx/entries.csv" > "$T/fx/entries2.csv"
"$B/posgate-publish" update --state "$T/fx/st" --entries "$T/fx/entries2.csv" --out "$T/fx/feed" \
    >/dev/null 2>&1 || fail "posgate-publish update"
sleep 1 # installed a second after the issue at least
expect_rc 0 pg import "$T/fx/feed"
visit 2
# the kiosk's own word on each version: issued_at to installed_at (on a stick, no clock offset)
python3 - "$T" > "$T/propagation.json" <<'PY' || fail "the sticks' status reports"
import calendar, glob, json, sys, time
def ts(s):
    return calendar.timegm(time.strptime(s, "%Y-%m-%dT%H:%M:%SZ"))
lat = {}
for n in (1, 2):
    env = json.load(open(glob.glob(sys.argv[1] + "/stick%d/posgate/*/status.json" % n)[0]))
    rep = json.loads(env["report"])
    st = rep["status"]
    v = st["feed_version"]
    lat.setdefault(v, (max(0, ts(st["installed_at"]) - ts(st["issued_at"])), st["issued_at"],
                       st["installed_at"]))
assert sorted(lat) == [1, 2], lat
pool = sorted(x[0] for x in lat.values())
print(json.dumps({"median_s": pool[0], "installs": 2, "versions": [
    {"feed_version": v, "issued_at": lat[v][1], "first_installed_at": lat[v][2], "devices": 1,
     "p50_s": lat[v][0], "p95_s": lat[v][0], "max_s": lat[v][0]} for v in (1, 2)]}))
PY

# ---- two contests looked up; lookups that fail, and listing queries, are not counted
expect_rc 0 "$HUB" decision "$D_HARD" --db "$DB"
expect_rc 3 "$HUB" decision ffffffffffffffff0000000000000063 --db "$DB"
expect_rc 0 "$HUB" decisions --listing spc-enforcement/SPC-HARD-1 --db "$DB"
start_hub
get 200 "a contest over HTTP" "/v1/decisions/$D_BOTH" "$AUDITOR"
get 404 "an unknown id" "/v1/decisions/ffffffffffffffff0000000000000063" "$AUDITOR"
get 400 "a malformed id" "/v1/decisions/xyz" "$AUDITOR"

# ---- the month's report, exactly
cat > "$T/expected.py" <<'PY'
import json, sys
svc_markup = sys.argv[2]
z = dict(checks=0, allow=0, deny=0, refer=0, error=0, overrides=0, overrides_refused=0, lookups=0)
def svc(name, **kw):
    return dict({"service": name}, **dict(z, **kw))
def lst(name, service, **kw):
    d = dict(deny=0, refer=0, overrides=0, overrides_refused=0, lookups=0)
    return dict({"list": name, "service": service}, **dict(d, **kw))
SERVICES = sorted([
    svc("air", checks=11, allow=7, deny=3, refer=1, overrides=1, overrides_refused=1, lookups=2),
    svc("rail", checks=3, allow=3),
    svc("rail.hsr", checks=1, deny=1),
    svc("(other)", checks=3, allow=3),
    svc(svc_markup, checks=1, allow=1),
], key=lambda x: x["service"].encode())
LISTS = [
    lst("caac-safety", "air", deny=1, refer=1, overrides=1, lookups=1),
    lst("spc-enforcement", "air", deny=3, overrides_refused=1, lookups=2),
    lst("spc-enforcement", "rail.hsr", deny=1),
]
TOTALS = dict(checks=19, allow=14, deny=4, refer=1, error=0, overrides=1, overrides_refused=1,
              lookups=2)
PY
expect_rc 0 "$HUB" report --month "$MONTH" --db "$DB" --json
cp "$T/out.txt" "$T/report.json"
python3 - "$T/report.json" "$SVC_MARKUP" "$MONTH" "$T/propagation.json" "$T/expected.py" <<'PY' \
    || fail "report --json: $(cat "$T/report.json")"
import json, sys
exec(open(sys.argv[5]).read())
r = json.load(open(sys.argv[1]))
assert list(r) == ["month", "from", "until", "totals", "services", "lists", "propagation",
                   "unreadable"], list(r)
assert r["month"] == sys.argv[3] and r["from"] == sys.argv[3] + "-01T00:00:00Z", r
assert r["totals"] == TOTALS, r["totals"]
assert r["services"] == SERVICES, r["services"]
assert r["lists"] == LISTS, r["lists"]
assert r["propagation"] == json.load(open(sys.argv[4])), (r["propagation"], open(sys.argv[4]).read())
assert r["unreadable"] == 0
PY
get 200 "GET /v1/fleet/report" "/v1/fleet/report?month=$MONTH" "$ADMIN"
cp "$T/resp" "$T/report.http.json"
python3 -c 'import json,sys; assert json.load(open(sys.argv[1])) == json.load(open(sys.argv[2]))' \
    "$T/report.json" "$T/report.http.json" || fail "the report over HTTP differs: $(cat "$T/resp")"
get 403 "the report for the auditor" "/v1/fleet/report?month=$MONTH" "$AUDITOR"

expect_rc 0 "$HUB" report --month "$MONTH" --db "$DB"
cp "$T/out.txt" "$T/report.txt"
python3 - "$T/report.txt" "$SVC_MARKUP" "$MONTH" "$T/propagation.json" "$T/expected.py" <<'PY' \
    || fail "report (text): $(cat "$T/report.txt")"
import json, sys
exec(open(sys.argv[5]).read())
text = open(sys.argv[1]).read()
prop = json.load(open(sys.argv[4]))
lines = text.splitlines()
assert lines[0] == "posgate transparency report, %s (UTC)" % sys.argv[3], lines[0]
for want in ["checks 19: allow 14, deny 4, refer 1, error 0",
             "supervisor overrides 1 granted, 1 refused", "contests looked up 2",
             "delisting propagation: median %d s over 2 installs of 2 feed version(s) first "
             "installed this month" % prop["median_s"]]:
    assert want in lines, want
def section(title):
    i = next(k for k, l in enumerate(lines) if l.startswith(title))
    rows = []
    for l in lines[i + 2:]:
        if not l.startswith("  "):
            break
        rows.append(l.split())
    return rows
figs = ["checks", "allow", "deny", "refer", "error", "overrides", "overrides_refused", "lookups"]
got = {r[0]: [int(x) for x in r[1:]] for r in section("by service")}
want = {s["service"]: [s[f] for f in figs] for s in SERVICES}
assert got == want, (got, want)
lf = ["deny", "refer", "overrides", "overrides_refused", "lookups"]
got = [r[:2] + [int(x) for x in r[2:]] for r in section("by list and service")]
assert got == [[l["list"], l["service"]] + [l[f] for f in lf] for l in LISTS], got
got = [r for r in section("feed versions first installed this month")]
want = [[str(v["feed_version"]), v["issued_at"], v["first_installed_at"], str(v["devices"]),
         str(v["p50_s"]), str(v["p95_s"]), str(v["max_s"])] for v in prop["versions"]]
assert got == want, (got, want)
PY

expect_rc 0 "$HUB" report --month "$MONTH" --db "$DB" --html
cp "$T/out.txt" "$T/report.html"
python3 - "$T/report.html" "$SVC_MARKUP" "$MONTH" "$T/propagation.json" "$T/expected.py" <<'PY' \
    || fail "report --html: $(head -c 3000 "$T/report.html")"
import html.parser, json, re, sys
exec(open(sys.argv[5]).read())
page = open(sys.argv[1]).read()
prop = json.load(open(sys.argv[4]))
low = page.lower()
assert page.startswith("<!DOCTYPE html>") and low.rstrip().endswith("</html>")
assert "<script" not in low and "javascript:" not in low, "a script in the page"
assert not re.search(r"(src|href|action)\s*=", low), "a reference to load"
assert "http://" not in low and "https://" not in low and "url(" not in low, "an external URL"
assert "&lt;script&gt;alert(1)&lt;/script&gt;&amp;&quot;&#39;" in page, "the markup service unescaped"
class Tables(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.t, self.cur, self.cell = {}, None, None
    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "table":
            self.cur = self.t.setdefault(a["id"], [])
        elif tag == "tr" and self.cur is not None:
            self.cur.append([])
        elif tag in ("td", "th") and self.cur is not None:
            self.cell = ""
    def handle_endtag(self, tag):
        if tag in ("td", "th") and self.cell is not None:
            self.cur[-1].append(self.cell)
            self.cell = None
        elif tag == "table":
            self.cur = None
    def handle_data(self, d):
        if self.cell is not None:
            self.cell += d
p = Tables()
p.convert_charrefs = True
p.feed(page)
figs = ["checks", "allow", "deny", "refer", "error", "overrides", "overrides_refused", "lookups"]
assert p.t["services"][1:] == [[s["service"]] + [str(s[f]) for f in figs] for s in SERVICES], p.t["services"]
lf = ["deny", "refer", "overrides", "overrides_refused", "lookups"]
assert p.t["lists"][1:] == [[l["list"], l["service"]] + [str(l[f]) for f in lf] for l in LISTS], p.t["lists"]
assert p.t["versions"][1:] == [[str(v["feed_version"]), v["issued_at"], v["first_installed_at"],
                                str(v["devices"]), str(v["p50_s"]), str(v["p95_s"]), str(v["max_s"])]
                               for v in prop["versions"]], p.t["versions"]
assert "\nchecks 19: allow 14, deny 4, refer 1, error 0\n" in page, "the summary"
PY

# ---- a month with nothing
for f in "" --json --html; do
    expect_rc 0 "$HUB" report --month 2001-01 --db "$DB" $f
    cp "$T/out.txt" "$T/empty${f:-.txt}"
done
python3 - "$T/empty--json" <<'PY' || fail "report of 2001-01: $(cat "$T/empty--json")"
import json, sys
r = json.load(open(sys.argv[1]))
assert r["month"] == "2001-01" and set(r["totals"].values()) == {0}, r
assert r["services"] == [] and r["lists"] == [], r
assert r["propagation"] == {"median_s": None, "installs": 0, "versions": []}, r
PY
grep -qx "checks 0: allow 0, deny 0, refer 0, error 0" "$T/empty.txt" || fail "report of 2001-01 (text): $(cat "$T/empty.txt")"
grep -qx "contests looked up 0" "$T/empty.txt" || fail "report of 2001-01 (text): $(cat "$T/empty.txt")"
[[ $(grep -c '^  none$' "$T/empty.txt") == 3 ]] || fail "report of 2001-01 (text): $(cat "$T/empty.txt")"
[[ $(grep -c '<p>none</p>' "$T/empty--html") == 3 ]] || fail "report of 2001-01 (html)"
get 200 "the report of an empty month" "/v1/fleet/report?month=2001-01" "$ADMIN"
cmp -s "$T/resp" "$T/empty--json" || fail "the empty month over HTTP: $(cat "$T/resp")"

# ---- malformed months
for m in 2026-1 2026-13 2026-00 26-12 2026/12 1969-12 2026-12-01 "" x; do
    expect_rc 2 "$HUB" report --month "$m" --db "$DB"
    get 400 "month=$m" "/v1/fleet/report?month=$m" "$ADMIN"
done
expect_rc 2 "$HUB" report --db "$DB"
expect_rc 0 "$HUB" report --help
grep -q "usage: posgate-hub report --month YYYY-MM" "$T/out.txt" || fail "report --help: $(cat "$T/out.txt")"
expect_rc 5 "$HUB" report --month "$MONTH" --db "$T/none.db"
expect_rc 2 "$HUB" report --month "$MONTH" --db "$DB" --json --html
get 400 "no month" "/v1/fleet/report" "$ADMIN"
stop_hub

# ---- no identifier in any output
python3 - "$T" "$DEV" "$T/decision_ids.txt" "${HARD#*:}" "${BOTH#*:}" "${CLEAN#*:}" "${OVR#*:}" \
    "$NAME" <<'PY' || fail "an identifier in the report"
import glob, sys
d = sys.argv[1]
ids = [l.strip() for l in open(sys.argv[3]) if l.strip()]
never = ids + [sys.argv[2]] + sys.argv[4:] + [
    "clerk-7", "clerk-8", "clerk-9", "supervisor-2", "papers-seen-by-supervisor",
    "refused-override-reason", "SPC-HARD-1", "SPC-BOTH-2", "CAAC-OVR-1", "CAAC-BOTH-1",
    "CAAC-NAME-1"]
outs = [d + "/" + n for n in ("report.json", "report.http.json", "report.txt", "report.html",
                              "empty.txt", "empty--json", "empty--html")]
for f in outs:
    text = open(f).read()
    for v in never:
        assert v not in text, (f, v)
PY
echo "transparency: the month's figures in text, JSON, HTML and over HTTP; zeros for an empty month; no identifier"
