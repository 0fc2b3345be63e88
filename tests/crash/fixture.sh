# SPDX-License-Identifier: Apache-2.0
# Shared fixture of the reliability harnesses (crash, fault, hostile), sourced, not run. It
# builds with the real binaries a publisher and two feed versions (v1: a synthetic list; v2:
# the listed subjects lifted and about one row in seven removed, a large delta), and reference
# kiosks that completed no import, the v1 import and the v1 then v2 imports. For each reference
# it records the installed state (feed version and per list seq, entries, digest) and the
# answers (exit codes of `posgate check`) for every subject of posgate-synth's subjects file,
# so a harness can tell which whole version a kiosk serves after a kill or a fault.
#
# Needs: B (build dir with the binaries), FX (an empty directory). Provides fx_build,
# fx_state KIOSK, fx_answers KIOSK, fx_which KIOSK ALLOWED... (prints the matching reference
# name or "mixed"), and the files $FX/ref.{none,A,B}.{state,answers}.

fx_pg() { "$B/posgate" --data-dir "$1" "${@:2}"; }

# The installed version in one line: feed_version|list:seq:entries:digest,...
fx_state() {
    fx_pg "$1" status --json 2>/dev/null | python3 -c '
import json, sys
try:
    d = json.load(sys.stdin)
except Exception:
    print("unreadable"); sys.exit(0)
ls = sorted("%s:%s:%s:%s" % (l["id"], l["seq"], l["entries"], l["digest"]) for l in d.get("lists", []))
print("%s|%s" % (d.get("feed_version"), ",".join(ls)))'
}

# The answers for every subject (of $FX_SUBJECTS when set): one exit code per subject.
fx_answers() {
    local out="" rc
    while IFS=, read -r _ id svc; do
        fx_pg "$1" check --service "$svc" --id "$id" >/dev/null 2>&1
        rc=$?
        out+="$rc "
    done < "${FX_SUBJECTS:-$FX/subjects}"
    echo "$out"
}

# Which reference the kiosk serves: its state and its answers both equal to one of ALLOWED.
fx_which() {
    local k=$1; shift
    local st ans r
    st=$(fx_state "$k")
    ans=$(fx_answers "$k")
    for r in "$@"; do
        if [[ $st == "$(cat "$FX/ref.$r.state")" && $ans == "$(cat "$FX/ref.$r.answers")" ]]; then
            echo "$r"
            return 0
        fi
    done
    echo "mixed state=[$st] answers=[$ans]"
    return 1
}

# Lists' content only (entries and digest, not seq): a republished feed may number differently.
fx_content() {
    fx_state "$1" | python3 -c '
import sys
v, _, ls = sys.stdin.read().strip().partition("|")
print(",".join(sorted(":".join((x.split(":")[0], x.split(":")[2], x.split(":")[3]))
                      for x in ls.split(",") if x)))'
}

# fx_build COUNT: publisher state stA/stB, feeds feedA/feedB, reference kiosks kN/kA/kB.
fx_build() {
    local count=${1:-20000}
    (
        set -e
        cd "$FX"
        "$B/posgate-keygen" --out root >/dev/null
        "$B/posgate-keygen" --out feed >/dev/null
        "$B/posgate-keygen" --list-key --out list.key >/dev/null
        "$B/posgate-synth" --count "$count" --seed 17 --out e1.csv --config-out feed.json \
            --subjects-out subj.csv >/dev/null
        awk -F, 'NR > 1 { print $1 "," $2 "," $3 }' subj.csv > subjects
        "$B/posgate-publish" init --state st --config feed.json --root-key root.key \
            --threshold 1 --feed-key feed.key --list-key list.key >/dev/null
        "$B/posgate-publish" update --state st --entries e1.csv --out feed >/dev/null 2>&1
        cp -a st stA
        cp -a feed feedA
        # v2: the listed subjects lifted, and one row in seven removed
        awk -F, '$1 == "listed" { print $5 }' subj.csv > lifted
        awk -F, 'NR == FNR { drop[$1] = 1; next }
                 FNR == 1 || (!($2 in drop) && FNR % 7 != 3)' lifted e1.csv > e2.csv
        "$B/posgate-publish" update --state st --entries e2.csv --out feed \
            --allow-mass-change >/dev/null 2>&1
        cp -a st stB
        cp -a feed feedB
        rm -rf st feed
        fx_pg kN init --root feedA/metadata/1.root.json --list-key list.key \
            --jurisdiction CN >/dev/null
        cp -a kN kA
        fx_pg kA import feedA >/dev/null
        cp -a kA kB
        fx_pg kB import feedB >/dev/null
    ) || return 1
    local r
    for r in N:none A:A B:B; do
        fx_state "$FX/k${r%%:*}" > "$FX/ref.${r#*:}.state"
        fx_answers "$FX/k${r%%:*}" > "$FX/ref.${r#*:}.answers"
    done
    # the two versions must differ in state and in answers, or the harness proves nothing
    if cmp -s "$FX/ref.A.answers" "$FX/ref.B.answers" || cmp -s "$FX/ref.A.state" "$FX/ref.B.state"; then
        echo "fixture: v1 and v2 give the same answers or state" >&2
        return 1
    fi
    return 0
}

# A free TCP port on 127.0.0.1.
fx_free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# fx_http_start DIR: serves DIR on 127.0.0.1 with python3 -m http.server; sets FX_HTTP_PID
# and FX_HTTP_URL. fx_http_stop ends it.
fx_http_start() {
    local port i
    port=$(fx_free_port)
    python3 -m http.server --bind 127.0.0.1 --directory "$1" "$port" >/dev/null 2>&1 &
    FX_HTTP_PID=$!
    FX_HTTP_URL="http://127.0.0.1:$port/"
    for i in $(seq 50); do
        if python3 -c "import urllib.request; urllib.request.urlopen('${FX_HTTP_URL}metadata/root.json', timeout=1)" 2>/dev/null; then
            return 0
        fi
        sleep 0.1
    done
    return 1
}

fx_http_stop() {
    if [[ -n ${FX_HTTP_PID:-} ]]; then
        kill "$FX_HTTP_PID" 2>/dev/null
        wait "$FX_HTTP_PID" 2>/dev/null
        FX_HTTP_PID=""
    fi
}
