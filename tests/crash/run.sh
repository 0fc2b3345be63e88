#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Crash harness: SIGKILLs `posgate import`, `posgate sync` (when the build has it) and
# `posgate-publish update` at random points and checks what survives. A kill comes either after
# a random delay within the measured run time, or from the fault injector
# (build/tests/libfaultinject.so, FAULT_ACTION=kill) at the Nth call of one kind: the Nth
# rename (so between the fsync of a temp file and its rename), the Nth fsync or fdatasync, the
# Nth pwrite into the store or its WAL, the Nth write.
#
# After each kill of an import or a sync (a kiosk at v1 taking v2, or a fresh kiosk taking v1):
# the store opens, `posgate verify` passes, `status --json` shows exactly the old or the new
# version (feed version and every list's seq, entries and digest), the answers for every
# reference subject equal those of a kiosk that completed that version, and a rerun completes
# and serves the new version. After a kill of a publish (v1 -> v2): a rerun of the update
# succeeds, a fresh kiosk imports the feed and serves v2's lists and answers, and a kiosk at v1
# reaches v2 too.
#
# posgated is killed during its own sync (daemon_sync); killing it during audit uploads, with
# the completeness of the trail checked at a collector, is tests/integration/audit_upload.sh.
# Further scenarios plug in as more trial_* functions listed in SCENARIOS.
#
# usage: tests/crash/run.sh [--trials N] [--build DIR] [--seed S] [--count ENTRIES] [--keep]
#                           [--scenarios import_delta,import_fresh,publish,filter_rebuild,
#                            sync_delta,daemon_sync]
# Prints "N passed, N failed"; exits 1 on any failure.
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
TRIALS=30 B="" SEED=$RANDOM COUNT=20000 KEEP=0 ONLY=""
while [[ $# -gt 0 ]]; do
    case $1 in
        --trials) TRIALS=$2; shift 2 ;;
        --build) B=$2; shift 2 ;;
        --seed) SEED=$2; shift 2 ;;
        --count) COUNT=$2; shift 2 ;;
        --keep) KEEP=1; shift ;;
        --scenarios) ONLY=$2; shift 2 ;;
        -h|--help) sed -n '2,22p' "$0"; exit 0 ;;
        *) echo "crash/run.sh: unknown option $1" >&2; exit 2 ;;
    esac
done
B=${B:-$HERE/../../build}
B=$(cd "$B" && pwd)
LIB=$B/tests/libfaultinject.so
for f in "$B/posgate" "$B/posgate-publish" "$B/posgate-keygen" "$B/posgate-synth" "$LIB"; do
    [[ -e $f ]] || { echo "crash/run.sh: $f is missing (build first)" >&2; exit 2; }
done
unset POSGATE_DATA_DIR POSGATE_FAKE_NOW
RANDOM=$SEED
FX=$(mktemp -d "${TMPDIR:-/tmp}/posgate-crash-XXXXXX")
FX_HTTP_PID=""
cleanup() {
    fx_http_stop
    if [[ $KEEP == 0 ]]; then rm -rf "$FX"; else echo "kept $FX"; fi
}
trap cleanup EXIT
# shellcheck source=fixture.sh
. "$HERE/fixture.sh"

exec 3>&1
echo "crash: seed $SEED, $TRIALS trials, fixture of $COUNT entries in $FX"
fx_build "$COUNT" || { echo "crash: fixture failed"; echo "0 passed, 1 failed"; exit 1; }

HAVE_SYNC=0
if "$B/posgate" sync --help >/dev/null 2>&1; then
    HAVE_SYNC=1
    fx_http_start "$FX/feedB" || { echo "crash: http server did not start"; exit 1; }
fi

passed=0 failed=0 killed=0
declare -A by_scenario=()
note_fail() { echo "  FAIL trial $trial ($scenario, $how): $*" >&3; ok=0; }

rand_between() { # rand_between LO HI (inclusive)
    echo $(( $1 + (RANDOM * 32768 + RANDOM) % ($2 - $1 + 1) ))
}

# run_killed CMD...: runs CMD, killed as $how says; sets was_killed (1 when SIGKILL ended it).
# how: "delay:MS" or "fault:OP:PATH_SUBSTR:N".
run_killed() {
    local pid rc
    case $how in
        delay:*)
            "$@" >"$FX/out.txt" 2>"$FX/err.txt" &
            pid=$!
            sleep "$(awk -v ms="${how#delay:}" 'BEGIN { printf "%.3f", ms / 1000 }')"
            kill -KILL "$pid" 2>/dev/null
            wait "$pid"; rc=$?
            ;;
        fault:*)
            local op path n
            IFS=: read -r _ op path n <<<"$how"
            env LD_PRELOAD="$LIB" FAULT_OP="$op" FAULT_PATH_SUBSTR="$path" FAULT_AFTER=$((n - 1)) \
                FAULT_ACTION=kill "$@" >"$FX/out.txt" 2>"$FX/err.txt"
            rc=$?
            ;;
    esac
    was_killed=$([[ $rc == 137 ]] && echo 1 || echo 0)
    if [[ $was_killed == 0 && $rc != 0 ]]; then
        note_fail "the command exited $rc without being killed: $(head -c 300 "$FX/err.txt")"
    fi
}

# count_calls OP PATH CMD...: how many matching calls a complete run makes (in a scratch copy
# prepared by the caller).
count_calls() {
    local op=$1 path=$2; shift 2
    env LD_PRELOAD="$LIB" FAULT_OP="$op" FAULT_PATH_SUBSTR="$path" FAULT_AFTER=1000000000 \
        FAULT_COUNT_FILE="$FX/count.txt" "$@" >/dev/null 2>&1
    cat "$FX/count.txt" 2>/dev/null || echo 0
}

# A random way to kill: a delay within the measured duration, or the Nth call of a kind.
# pick_how DURATION_MS PREPARE CMD... (PREPARE resets the scratch copy for a count run)
declare -A call_counts=()
pick_how() {
    local dur=$1 prepare=$2; shift 2
    local kinds=("rename:" "fsync:" "fdatasync:store.db" "pwrite:store.db" "write:")
    local pick=$((RANDOM % 7)) kind key cnt
    if [[ $pick -ge ${#kinds[@]} ]]; then
        how="delay:$(rand_between 1 "$((dur > 2 ? dur : 2))")"
        return
    fi
    kind=${kinds[$pick]}
    key="$scenario/$kind"
    if [[ -z ${call_counts[$key]:-} ]]; then
        $prepare
        call_counts[$key]=$(count_calls "${kind%%:*}" "${kind#*:}" "$@")
    fi
    cnt=${call_counts[$key]}
    if [[ $cnt -lt 1 ]]; then
        how="delay:$(rand_between 1 "$((dur > 2 ? dur : 2))")"
        return
    fi
    how="fault:$kind:$(rand_between 1 "$cnt")"
}

duration_ms() { # duration_ms PREPARE CMD...
    local prepare=$1; shift
    $prepare
    local t0 t1
    t0=$(date +%s%N)
    "$@" >/dev/null 2>&1
    t1=$(date +%s%N)
    echo $(( (t1 - t0) / 1000000 + 1 ))
}

# ---- kiosk scenarios: import v1 -> v2 (a delta), import into a fresh kiosk (snapshots), sync

K=$FX/k
prep_import_delta() { rm -rf "$K"; cp -a "$FX/kA" "$K"; }
prep_import_fresh() { rm -rf "$K"; cp -a "$FX/kN" "$K"; }

check_kiosk() { # check_kiosk OLD NEW RERUN_CMD...
    local old=$1 new=$2; shift 2
    local got
    if ! fx_pg "$K" verify >"$FX/v.txt" 2>&1; then
        note_fail "verify failed after the kill: $(head -c 300 "$FX/v.txt")"
    fi
    got=$(fx_which "$K" "$old" "$new")
    if [[ $got != "$old" && $got != "$new" ]]; then
        note_fail "after the kill the kiosk serves neither $old nor $new: $got"
    fi
    # rows a delta left in the store's recent table: the kill came after the install, during
    # the merge into the main table (agent/store/store.h)
    if [[ $(recent_rows) != 0 ]]; then
        in_merge=$((in_merge + 1))
    fi
    if ! "$@" >"$FX/r.txt" 2>&1; then
        note_fail "the rerun failed: $(head -c 400 "$FX/r.txt")"
    fi
    got=$(fx_which "$K" "$new")
    [[ $got == "$new" ]] || note_fail "after the rerun the kiosk does not serve $new: $got"
    fx_pg "$K" verify >/dev/null 2>&1 || note_fail "verify failed after the rerun"
    [[ $(recent_rows) == 0 ]] || note_fail "the rerun left $(recent_rows) rows unmerged in recent"
    [[ $(key_filter) == ok ]] || note_fail "after the rerun the key filter is $(key_filter)"
}
key_filter() { # the store's key filter state as status --json says it (agent/store/store.h)
    fx_pg "$K" status --json 2>/dev/null |
        python3 -c 'import json, sys; print(json.load(sys.stdin).get("key_filter"))' 2>/dev/null ||
        echo "unreadable"
}
in_merge=0
recent_rows() {
    python3 -c 'import sqlite3, sys; print(sqlite3.connect(sys.argv[1]).execute("SELECT count(*) FROM recent").fetchone()[0])' \
        "$K/store.db" 2>/dev/null || echo "unreadable"
}

trial_import_delta() {
    local cmd=("$B/posgate" --data-dir "$K" import "$FX/feedB")
    [[ -n ${dur_import_delta:-} ]] || dur_import_delta=$(duration_ms prep_import_delta "${cmd[@]}")
    pick_how "$dur_import_delta" prep_import_delta "${cmd[@]}"
    prep_import_delta
    run_killed "${cmd[@]}"
    check_kiosk A B "${cmd[@]}"
}

trial_import_fresh() {
    local cmd=("$B/posgate" --data-dir "$K" import "$FX/feedA")
    [[ -n ${dur_import_fresh:-} ]] || dur_import_fresh=$(duration_ms prep_import_fresh "${cmd[@]}")
    pick_how "$dur_import_fresh" prep_import_fresh "${cmd[@]}"
    prep_import_fresh
    run_killed "${cmd[@]}"
    check_kiosk none A "${cmd[@]}"
}

trial_sync_delta() {
    local cmd=("$B/posgate" --data-dir "$K" sync --url "$FX_HTTP_URL" --timeout 30)
    [[ -n ${dur_sync:-} ]] || dur_sync=$(duration_ms prep_import_delta "${cmd[@]}")
    pick_how "$dur_sync" prep_import_delta "${cmd[@]}"
    prep_import_delta
    run_killed "${cmd[@]}"
    check_kiosk A B "${cmd[@]}"
}

# posgate compact writing a new key filter for a kiosk at v2 whose filter is gone (a crash, or
# removed by hand), killed at a random point of the rebuild: checks must give v2's answers
# whatever is left, and a rerun must leave a filter made for the store's version.
prep_filter() { rm -rf "$K"; cp -a "$FX/kB" "$K"; rm -f "$K/store.db.filter"; }
trial_filter_rebuild() {
    local cmd=("$B/posgate" --data-dir "$K" compact)
    [[ -n ${dur_filter:-} ]] || dur_filter=$(duration_ms prep_filter "${cmd[@]}")
    pick_how "$dur_filter" prep_filter "${cmd[@]}"
    prep_filter
    run_killed "${cmd[@]}"
    check_kiosk B B "${cmd[@]}"
}

# posgated syncing v1 -> v2 by itself, killed at a random moment of its start and first sync (a
# daemon never ends on its own, so only delays are drawn); the rerun is a one-shot sync.
trial_daemon_sync() {
    local port cfg=$FX/posgated.json
    local rerun=("$B/posgate" --data-dir "$K" sync --url "$FX_HTTP_URL" --timeout 30)
    [[ -n ${dur_sync:-} ]] || dur_sync=$(duration_ms prep_import_delta "${rerun[@]}")
    prep_import_delta
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    printf '{"data_dir": "%s", "listen": ["127.0.0.1:%s"], "feed_urls": ["%s"], "poll_interval_s": 1, "log_level": "error"}\n' \
        "$K" "$port" "$FX_HTTP_URL" >"$cfg"
    how="delay:$(rand_between 1 $((dur_sync + 300)))"
    run_killed "$B/posgated" --config "$cfg"
    check_kiosk A B "${rerun[@]}"
}

# ---- publisher scenario: update v1 -> v2 killed, then rerun

P=$FX/p
prep_publish() { rm -rf "$P"; mkdir -p "$P"; cp -a "$FX/stA" "$P/st"; cp -a "$FX/feedA" "$P/feed"; }
publish_cmd=("$B/posgate-publish" update --state "$P/st" --entries "$FX/e2.csv"
             --out "$P/feed" --allow-mass-change)

trial_publish() {
    local got want_content
    [[ -n ${dur_publish:-} ]] || dur_publish=$(duration_ms prep_publish "${publish_cmd[@]}")
    pick_how "$dur_publish" prep_publish "${publish_cmd[@]}"
    prep_publish
    run_killed "${publish_cmd[@]}"
    if ! "${publish_cmd[@]}" >"$FX/r.txt" 2>&1; then
        note_fail "the rerun of the update failed: $(head -c 400 "$FX/r.txt")"
        return
    fi
    want_content=$(fx_content "$FX/kB")
    # a fresh kiosk takes the whole feed
    rm -rf "$K"; cp -a "$FX/kN" "$K"
    if ! fx_pg "$K" import "$P/feed" >"$FX/i.txt" 2>&1; then
        note_fail "a fresh kiosk cannot import the republished feed: $(head -c 400 "$FX/i.txt")"
    else
        got=$(fx_content "$K")
        [[ $got == "$want_content" ]] || note_fail "fresh kiosk lists [$got], v2 has [$want_content]"
        [[ $(fx_answers "$K") == "$(cat "$FX/ref.B.answers")" ]] ||
            note_fail "fresh kiosk answers differ from v2's"
        fx_pg "$K" verify >/dev/null 2>&1 || note_fail "verify failed on the fresh kiosk"
    fi
    # a kiosk at v1 follows (delta or snapshot)
    rm -rf "$K"; cp -a "$FX/kA" "$K"
    if ! fx_pg "$K" import "$P/feed" >"$FX/i.txt" 2>&1; then
        note_fail "a kiosk at v1 cannot import the republished feed: $(head -c 400 "$FX/i.txt")"
    else
        got=$(fx_content "$K")
        [[ $got == "$want_content" ]] || note_fail "kiosk at v1 then has lists [$got], v2 has [$want_content]"
        [[ $(fx_answers "$K") == "$(cat "$FX/ref.B.answers")" ]] ||
            note_fail "kiosk at v1 then answers differently from v2"
    fi
}

SCENARIOS=(import_delta import_fresh publish filter_rebuild)
[[ $HAVE_SYNC == 1 ]] && SCENARIOS+=(sync_delta)
[[ $HAVE_SYNC == 1 && -x $B/posgated ]] && SCENARIOS+=(daemon_sync)
if [[ -n $ONLY ]]; then
    IFS=, read -r -a SCENARIOS <<<"$ONLY"
fi

for ((trial = 1; trial <= TRIALS; trial++)); do
    scenario=${SCENARIOS[$(( (trial - 1) % ${#SCENARIOS[@]} ))]}
    ok=1 how="" was_killed=0
    "trial_$scenario" 2>/dev/null
    killed=$((killed + was_killed))
    if [[ $ok == 1 ]]; then
        passed=$((passed + 1))
        by_scenario[$scenario]=$(( ${by_scenario[$scenario]:-0} + 1 ))
        echo "  ok   trial $trial ($scenario, $how$([[ $was_killed == 1 ]] && echo ", killed" || echo ", ran to completion"))"
    else
        failed=$((failed + 1))
    fi
done

summary=""
for s in "${SCENARIOS[@]}"; do summary+=" $s=${by_scenario[$s]:-0}"; done
echo "crash: $killed of $TRIALS runs were killed mid-way ($in_merge during a merge of recent); passed per scenario:$summary"
echo "$passed passed, $failed failed"
[[ $failed == 0 ]]
