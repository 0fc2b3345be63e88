#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Hostile updates and mirrors (issue 16, items 11 to 16), each attack as it was made, against
# real processes on 127.0.0.1 and the malicious mirror tests/hostile/mirror.py:
#   11 concurrent updates of one data dir (a no-op poll racing an import) never leave tuf/ and
#      the store disagreeing, nor fail each other; a caller that cannot wait is told "an update
#      is running (pid N)" (exit 5); a disagreement is refused by checks and shown by status; a
#      feed older than the store is refused even when tuf/ fell behind;
#   12 a timestamp declaring a 2^40-byte snapshot and an endless body: refused, bounded memory;
#   13 a mirror serving flipped bytes, garbage metadata or gzip bodies is skipped for the next;
#      a resumed body that fails is fetched again from byte 0; a 206 with another ETag is dropped;
#   14 a dripping mirror costs one timeout, not one per file; a sync has a time budget;
#      posgated stops within seconds of SIGTERM during a sync to a mirror that never answers;
#   15 abandoned part files are pruned by age and count even when no sync succeeds; importing a
#      FIFO does not block;
#   16 posgate-publish update and refresh at once never roll the served timestamp back, and a
#      run from a stale state copy is refused.
# Every server is killed at the end; each step is bounded by `timeout`.
# Usage: updates.sh BUILD_DIR [SECTION ...]   (sections: race lock agree bigsnap mirrors resume
#        slow sigterm leftovers publish; default all)
set -euo pipefail
B=${1:?usage: updates.sh BUILD_DIR [SECTION ...]}
shift
SECTIONS=${*:-race lock agree bigsnap mirrors resume slow sigterm leftovers publish}
SRC=$(cd "$(dirname "$0")" && pwd)
T=$(mktemp -d "${TMPDIR:-/tmp}/posgate-hostile-upd-XXXXXX")
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    rm -rf "$T"
}
trap cleanup EXIT
cd "$T"
unset POSGATE_DATA_DIR POSGATE_FAKE_NOW http_proxy https_proxy HTTP_PROXY HTTPS_PROXY
fail() { echo "FAIL: $*" >&2; exit 1; }
want() { [[ " $SECTIONS " == *" $1 "* ]]; }
pg() { "$B/posgate" --data-dir "$T/$1" "${@:2}"; }
pgt() { local t=$1; shift; timeout "$t" "$B/posgate" --data-dir "$T/$1" "${@:2}"; }
expect_rc() { # expect_rc RC CMD... : output in out.txt / err.txt
    local want=$1; shift
    set +e; "$@" >out.txt 2>err.txt; local rc=$?; set -e
    [[ $rc == "$want" ]] || { cat out.txt err.txt >&2; fail "$* exited $rc, expected $want"; }
}
jfield() { python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$@"; }
meta_version() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["signed"]["version"])' "$1"; }
status_field() { pg "$1" status --json > st.json && jfield st.json "d[\"$2\"]"; }
mirror() { # mirror NAME FEED MODE [ARGS...] : starts mirror.py, sets PORT_<NAME>
    rm -f "$1.port"
    python3 "$SRC/mirror.py" --root "$2" --mode "$3" --port-file "$1.port" --log "$1.log" \
        --max-seconds 170 "${@:4}" &
    PIDS+=($!)
    for _ in $(seq 100); do [[ -s $1.port ]] && break; sleep 0.05; done
    [[ -s $1.port ]] || fail "mirror $1 did not start"
    printf -v "PORT_$1" '%s' "$(cat "$1.port")"
}
url() { local v="PORT_$1"; echo "http://127.0.0.1:${!v}/"; }
# agree DIR: tuf/ holds the store's root and feed versions (read from the files themselves)
agree() {
    local fv rv
    pg "$1" status --json > st.json || fail "status of $1"
    fv=$(jfield st.json 'd["feed_version"]') rv=$(jfield st.json 'd["root_version"]')
    [[ $(meta_version "$1/tuf/timestamp.json") == "$fv" ]] ||
        fail "$1: tuf/timestamp.json is version $(meta_version "$1/tuf/timestamp.json"), the store $fv"
    [[ $(meta_version "$1/tuf/root.json") == "$rv" ]] ||
        fail "$1: tuf/root.json is version $(meta_version "$1/tuf/root.json"), the store $rv"
}

# ---- fixture: feed v1, v2 (subject X listed only in v2), v3; a kiosk at v1 ----
"$B/posgate-keygen" --out root >/dev/null
"$B/posgate-keygen" --out feedk >/dev/null
"$B/posgate-keygen" --list-key --out list.key >/dev/null
"$B/posgate-synth" --count 1500 --seed 16 --out all.csv --config-out feed.json --subjects-out subj.csv
X=$(awk -F, '$1 == "listed" && index($2, "cn_rid:") == 1 { print $2; exit }' subj.csv)
XSVC=$(awk -F, -v x="$X" '$1 == "listed" && $2 == x { print $3; exit }' subj.csv)
[[ -n $X && -n $XSVC ]] || fail "no listed cn_rid subject"
grep -v -F "${X#cn_rid:}" all.csv > v1.csv
"$B/posgate-publish" init --state st --config feed.json --root-key root.key --threshold 1 \
    --feed-key feedk.key --list-key list.key >/dev/null
"$B/posgate-publish" update --state st --entries v1.csv --out feed >/dev/null 2>&1
cp -a feed feed1
"$B/posgate-publish" update --state st --entries all.csv --out feed >/dev/null 2>&1
cp -a feed feed2
"$B/posgate-publish" bundle --feed feed2 --out v2.bundle >/dev/null 2>&1
"$B/posgate-publish" refresh --state st --out feed >/dev/null 2>&1
cp -a feed feed3
pg k1 init --root feed1/metadata/1.root.json --list-key list.key --jurisdiction CN >/dev/null
pg k1 import feed1 >/dev/null
expect_rc 0 pg k1 check --service "$XSVC" --id "$X"
mirror good1 feed1 good
mirror good2 feed2 good
fresh() { rm -rf "$T/$1"; cp -a "$T/k1" "$T/$1"; }

# ---- 11: a no-op poll racing an import. Before the update lock, 3 of 10 such rounds left
# tuf/ and the store apart (or failed one side); two imports of one bundle failed each other.
# 12 rounds of (3 polls + 1 import) and 12 of (2 imports); 0 failures allowed.
if want race; then
    for round in $(seq 12); do
        fresh kr
        # a poll of the v1 mirror is a no-op before the import and a refused rollback (exit 4,
        # "older than trusted") after it; anything else is a failure
        rm -f poll.fail
        ( for _ in 1 2 3; do
              set +e; "$B/posgate" --data-dir "$T/kr" sync --url "$(url good1)" >poll.out 2>&1
              prc=$?; set -e
              if [[ $prc != 0 ]] && ! [[ $prc == 4 ]] || { [[ $prc == 4 ]] && ! grep -q "older than trusted" poll.out; }; then
                  echo "poll exited $prc: $(cat poll.out)" > poll.fail
              fi
          done ) &
        poller=$!
        set +e; "$B/posgate" --data-dir "$T/kr" import v2.bundle >imp.out 2>&1; irc=$?; set -e
        wait "$poller"
        [[ $irc == 0 ]] || fail "race round $round: import exited $irc: $(cat imp.out)"
        [[ ! -e poll.fail ]] || fail "race round $round: $(cat poll.fail)"
        agree kr
        [[ $(jfield st.json 'd["feed_version"]') == 2 ]] ||
            fail "race round $round: feed version $(jfield st.json 'd["feed_version"]') after importing v2"
        expect_rc 1 pg kr check --service "$XSVC" --id "$X"
    done
    for round in $(seq 12); do
        fresh kr
        "$B/posgate" --data-dir "$T/kr" import v2.bundle >imp1.out 2>&1 & i1=$!
        set +e; "$B/posgate" --data-dir "$T/kr" import v2.bundle >imp2.out 2>&1; rc2=$?
        wait "$i1"; rc1=$?; set -e
        [[ $rc1 == 0 && $rc2 == 0 ]] ||
            fail "race round $round: two imports of one bundle exited $rc1 and $rc2: $(cat imp1.out imp2.out)"
        agree kr
    done
    echo "ok race: 24 rounds, tuf/ and the store always agree"
fi

# ---- 11: a second caller that will not wait is told plainly who holds the lock ----
if want lock; then
    fresh kl
    python3 - "$T/kl/update.lock" <<'PY' &
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o600)
fcntl.flock(fd, fcntl.LOCK_EX)
os.ftruncate(fd, 0); os.write(fd, b"%d\n" % os.getpid())
open(sys.argv[1] + ".held", "w").close()
time.sleep(20)
PY
    holder=$!
    PIDS+=("$holder")
    for _ in $(seq 100); do [[ -e kl/update.lock.held ]] && break; sleep 0.05; done
    expect_rc 5 pgt 20 kl import --lock-wait 1 v2.bundle
    grep -q "an update is running (pid $holder)" err.txt || fail "lock message: $(cat err.txt)"
    expect_rc 5 pgt 20 kl sync --lock-wait 0 --url "$(url good2)"
    grep -q "an update is running (pid $holder)" err.txt || fail "lock message: $(cat err.txt)"
    kill "$holder"; wait "$holder" 2>/dev/null || true
    expect_rc 0 pgt 30 kl import --lock-wait 1 v2.bundle
    echo "ok lock: a caller that cannot wait gets exit 5 naming the holder"
fi

# ---- 11: tuf/ behind the store is refused by checks, shown by status; an older feed is refused
if want agree; then
    fresh ka
    pg ka import feed2 >/dev/null
    rm -rf ka/tuf-staging
    cp ka/tuf/root.json ka/root.keep
    rm -f ka/tuf/*.json
    cp k1/tuf/*.json ka/tuf/      # the trusted metadata of v1 under a store at v2
    set +e; pg ka check --service "$XSVC" --id "$X" >out.txt 2>err.txt; rc=$?; set -e
    [[ $rc != 0 ]] || fail "a check answered ALLOW with tuf/ at v1 and the store at v2"
    grep -qi "trusted metadata" out.txt err.txt || fail "check message: $(cat out.txt err.txt)"
    pg ka status --json > st.json
    [[ $(jfield st.json 'd.get("metadata_agree")') == False ]] || fail "status: $(cat st.json)"
    expect_rc 4 pg ka sync --url "$(url good1)"
    grep -q "older than the installed feed version 2" err.txt || fail "rollback message: $(cat err.txt)"
    [[ $(status_field ka feed_version) == 2 ]] || fail "an older feed changed the store"
    expect_rc 0 pg ka sync --url "$(url good2)"
    agree ka
    pg ka status --json > st.json
    [[ $(jfield st.json 'd.get("metadata_agree")') == True ]] || fail "not repaired: $(cat st.json)"
    expect_rc 1 pg ka check --service "$XSVC" --id "$X"
    echo "ok agree: a disagreement is refused and shown; the next sync repairs it"
fi

# ---- 12: a 2^40-byte snapshot and an endless body: refused before a byte is buffered ----
if want bigsnap; then
    mirror big feed2 bigsnap --key feedk.key
    rm -rf kb
    pg kb init --root feed1/metadata/1.root.json --list-key list.key --jurisdiction CN >/dev/null
    python3 - "$B/posgate" "$T/kb" "$(url big)" <<'PY' > rss.txt 2>err.txt || true
import resource, subprocess, sys
p = subprocess.run([sys.argv[1], "--data-dir", sys.argv[2], "sync", "--url", sys.argv[3]],
                   capture_output=True, text=True, timeout=60)
sys.stderr.write(p.stderr)
print(p.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
PY
    read -r rc rss < rss.txt || fail "bigsnap: no result: $(cat err.txt)"
    (( rss < 65536 )) || fail "bigsnap: the sync held $rss KiB (before the cap: ~990 MB)"
    [[ $rc == 4 ]] || fail "bigsnap: exit $rc, expected 4: $(cat err.txt)"
    grep -q "16777216" err.txt || fail "bigsnap: the limit is not named: $(cat err.txt)"
    echo "ok bigsnap: refused with the limit named, max RSS $rss KiB"
fi

# ---- 13: a bad first mirror does not block the good second one ----
if want mirrors; then
    for mode in badbytes garbage gzip; do
        mirror "bad_$mode" feed2 "$mode"
        fresh km
        expect_rc 0 pgt 60 km sync --json --url "$(url "bad_$mode")" --url "$(url good2)"
        [[ $(jfield out.txt 'd["feed_version"]') == 2 ]] || fail "$mode: $(cat out.txt)"
        (( $(jfield out.txt 'd["fetch"]["failures"]["rejected"]') >= 1 )) ||
            fail "$mode: the bad mirror was not counted: $(cat out.txt)"
        expect_rc 1 pg km check --service "$XSVC" --id "$X"
    done
    # only bad mirrors: refused (exit 4), nothing installed
    fresh km
    expect_rc 4 pgt 60 km sync --url "$(url bad_badbytes)" --url "$(url bad_garbage)"
    [[ $(status_field km feed_version) == 1 ]] || fail "bad mirrors changed the store"
    echo "ok mirrors: flipped bytes, garbage and gzip each skipped for the next mirror"
fi

# ---- 13: resumed bodies: a part file that does not belong, a 206 of another file ----
if want resume; then
    mirror cut feed2 cut
    mirror other feed2 range-other-etag
    # a part file whose held bytes are wrong, resumed with the right validator
    fresh kp
    expect_rc 5 pgt 60 kp sync --url "$(url cut)"
    parts=(kp/incoming/partial/*.part)
    [[ -s ${parts[0]} ]] || fail "the cut transfer left no part file"
    for p in "${parts[@]}"; do
        python3 -c 'import sys; f=open(sys.argv[1],"r+b"); b=f.read(); f.seek(0); f.write(bytes(x^0x55 for x in b))' "$p"
    done
    : > good2.log
    expect_rc 0 pgt 60 kp sync --url "$(url good2)"
    grep -q "bytes=" good2.log || fail "no resume was tried: $(cat good2.log)"
    [[ $(status_field kp feed_version) == 2 ]] || fail "resume: not installed"
    # a 206 naming another ETag is discarded and the file asked again whole
    fresh kq
    expect_rc 5 pgt 60 kq sync --url "$(url cut)"
    expect_rc 0 pgt 60 kq sync --url "$(url other)"
    [[ $(status_field kq feed_version) == 2 ]] || fail "206 of another ETag: not installed"
    expect_rc 1 pg kq check --service "$XSVC" --id "$X"
    echo "ok resume: a bad resumed body is fetched again; a 206 of another file is dropped"
fi

# ---- 14: a dripping mirror first: one timeout for the whole sync; a budget for a sync ----
if want slow; then
    mirror drip feed2 drip --drip-s 0.5
    fresh ks
    start=$(date +%s)
    expect_rc 0 pgt 60 ks sync --timeout 3 --url "$(url drip)" --url "$(url good2)"
    took=$(( $(date +%s) - start ))
    (( took <= 10 )) || fail "a dripping first mirror cost $took s (one 3 s timeout per file)"
    [[ $(status_field ks feed_version) == 2 ]] || fail "drip: not installed"
    fresh ks
    start=$(date +%s)
    expect_rc 5 pgt 60 ks sync --timeout 30 --sync-timeout 4 --url "$(url drip)"
    took=$(( $(date +%s) - start ))
    (( took <= 8 )) || fail "a 4 s sync budget took $took s"
    grep -q "budget" err.txt || fail "budget message: $(cat err.txt)"
    echo "ok slow: one timeout for a dripping mirror; the sync budget holds"
fi

# ---- 14: posgated stops within seconds of SIGTERM in the middle of a sync ----
if want sigterm; then
    mirror hang feed2 hang
    fresh kd
    cat > daemon.json <<EOF
{"data_dir": "$T/kd", "listen": ["unix:$T/kd.sock"], "feed_urls": ["$(url hang)"],
 "poll_interval_s": 3600, "log_level": "info"}
EOF
    "$B/posgated" --config daemon.json 2>daemon.log &
    dpid=$!
    PIDS+=("$dpid")
    for _ in $(seq 200); do grep -q "timestamp.json" hang.log 2>/dev/null && break; sleep 0.05; done
    grep -q "timestamp.json" hang.log || fail "posgated never asked the mirror: $(cat daemon.log)"
    sleep 0.5
    start=$(date +%s%N)
    kill -TERM "$dpid"
    for _ in $(seq 200); do kill -0 "$dpid" 2>/dev/null || break; sleep 0.05; done
    took_ms=$(( ($(date +%s%N) - start) / 1000000 ))
    kill -0 "$dpid" 2>/dev/null && fail "posgated still runs 10 s after SIGTERM during a sync"
    set +e; wait "$dpid"; drc=$?; set -e
    [[ $drc == 0 ]] || fail "posgated exited $drc after SIGTERM: $(tail -5 daemon.log)"
    (( took_ms <= 5000 )) || fail "posgated took $took_ms ms to stop"
    [[ $(status_field kd feed_version) == 1 ]] || fail "the cancelled sync changed the store"
    expect_rc 0 pg kd verify
    [[ ! -d kd/tuf-staging ]] || [[ -z $(ls -A kd/tuf-staging) ]] || fail "half state left in tuf-staging"
    agree kd
    echo "ok sigterm: posgated stopped in $took_ms ms, store untouched"
fi

# ---- 15: abandoned part files are pruned though no sync succeeds; a FIFO does not block ----
if want leftovers; then
    fresh kf
    mkdir -p kf/incoming/partial
    for i in $(seq 12); do
        h=$(printf '%032x' "$i")
        head -c 100 /dev/urandom > "kf/incoming/partial/$h.part"
        printf 'posgate-partial 1\nname x%d\netag "e"\nlast-modified \n' "$i" > "kf/incoming/partial/$h.meta"
        if (( i <= 3 )); then
            touch -d '10 days ago' "kf/incoming/partial/$h.part"
        else
            touch -d "$((20 - i)) minutes ago" "kf/incoming/partial/$h.part"
        fi
    done
    dead=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    expect_rc 5 pgt 30 kf sync --url "http://127.0.0.1:$dead/"
    n=$(ls kf/incoming/partial/*.part 2>/dev/null | wc -l)
    (( n <= 8 )) || fail "$n part files left after a failed sync (at most 8 expected)"
    # 1-3 are 10 days old; of the fresh 4-12, 4 is the oldest beyond the newest 8
    for i in 1 2 3 4; do
        h=$(printf '%032x' "$i")
        [[ ! -e kf/incoming/partial/$h.part ]] || fail "part $i (old or beyond the newest 8) kept"
        [[ ! -e kf/incoming/partial/$h.meta ]] || fail "the .meta of part $i kept"
    done
    for i in $(seq 5 12); do
        [[ -e kf/incoming/partial/$(printf '%032x' "$i").part ]] || fail "a recent part $i removed"
    done
    mkfifo fifo.bundle
    expect_rc 2 pgt 10 kf import fifo.bundle
    grep -q "FIFO" err.txt || fail "FIFO message: $(cat err.txt)"
    echo "ok leftovers: $n part files kept; a FIFO is refused at once"
fi

# ---- 16: publisher runs at once. Before the state lock, update + refresh at once rolled the
# served timestamp back once in 30 rounds and left state and feed apart in 3; 25 rounds of
# (update + 2 refreshes), 0 failures allowed.
if want publish; then
    cp -a st stp
    cp -a feed fp
    hi=$(meta_version fp/metadata/timestamp.json)
    for round in $(seq 25); do
        src=$([[ $((round % 2)) == 0 ]] && echo all.csv || echo v1.csv)
        "$B/posgate-publish" update --state stp --entries "$src" --out fp >pu.out 2>&1 & u=$!
        "$B/posgate-publish" refresh --state stp --out fp >pr1.out 2>&1 & r1=$!
        set +e; "$B/posgate-publish" refresh --state stp --out fp >pr2.out 2>&1; rc3=$?
        wait "$u"; rc1=$?; wait "$r1"; rc2=$?; set -e
        [[ $rc1 == 0 && $rc2 == 0 && $rc3 == 0 ]] ||
            fail "publish round $round: exits $rc1 $rc2 $rc3: $(cat pu.out pr1.out pr2.out)"
        v=$(meta_version fp/metadata/timestamp.json)
        (( v >= hi + 3 )) || fail "publish round $round: served timestamp $v after $hi and three runs"
        hi=$v
    done
    rm -rf kx
    pg kx init --root fp/metadata/1.root.json --list-key list.key --jurisdiction CN >/dev/null
    expect_rc 0 pg kx import fp
    # a run from a stale copy of the state must not write a lower version
    cp -a stp stale
    "$B/posgate-publish" refresh --state stp --out fp >/dev/null 2>&1
    "$B/posgate-publish" refresh --state stp --out fp >/dev/null 2>&1
    before=$(meta_version fp/metadata/timestamp.json)
    set +e; "$B/posgate-publish" refresh --state stale --out fp >out.txt 2>err.txt; rc=$?; set -e
    [[ $rc != 0 ]] || fail "a stale state wrote timestamp $(meta_version fp/metadata/timestamp.json) over $before"
    grep -q "would go back from version $before" err.txt || fail "stale message: $(cat err.txt)"
    [[ $(meta_version fp/metadata/timestamp.json) == "$before" ]] || fail "served timestamp changed"
    echo "ok publish: 25 rounds, the served timestamp only went up; a stale state is refused"
fi
echo "hostile updates: ok"
