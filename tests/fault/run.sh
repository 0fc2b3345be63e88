#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# I/O faults: runs `posgate import`, `posgate sync` (when the build has it) and
# `posgate-publish update` with the LD_PRELOAD fault injector (libfaultinject.so) making one
# kind of call fail with ENOSPC or EIO from its first, middle or last occurrence on, and checks
# that each fault
#   - ends the command with exit 5 (I/O) and a message on stderr,
#   - leaves the last good version serving: a kiosk's status, answers and verify unchanged (or,
#     for a fault after the store commit, the new version whole); for the publisher, the feed
#     directory still imports whole into a fresh kiosk,
#   - and that the next attempt, with the fault gone, succeeds and serves the new version.
# Faults: full disk while the store takes a delta and a snapshot (pwrite on store.db and its
# WAL), EIO on the store's fdatasync, ENOSPC on the WAL truncation, a failed rename while the
# verified metadata are promoted into tuf/, ENOSPC while targets are downloaded into incoming/
# (import and sync), ENOSPC on the staging copy of the metadata; publisher: ENOSPC writing the
# feed directory, EIO on fsync in its state, a failed rename in its state.
#
# usage: tests/fault/run.sh [--build DIR] [--count ENTRIES] [--keep]
# Prints "N passed, N failed"; exits 1 on any failure.
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
B="" COUNT=3000 KEEP=0
while [[ $# -gt 0 ]]; do
    case $1 in
        --build) B=$2; shift 2 ;;
        --count) COUNT=$2; shift 2 ;;
        --keep) KEEP=1; shift ;;
        -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
        *) echo "fault/run.sh: unknown option $1" >&2; exit 2 ;;
    esac
done
B=${B:-$HERE/../../build}
B=$(cd "$B" && pwd)
LIB=$B/tests/libfaultinject.so
for f in "$B/posgate" "$B/posgate-publish" "$LIB"; do
    [[ -e $f ]] || { echo "fault/run.sh: $f is missing (build first)" >&2; exit 2; }
done
unset POSGATE_DATA_DIR POSGATE_FAKE_NOW
FX=$(mktemp -d "${TMPDIR:-/tmp}/posgate-fault-XXXXXX")
FX_HTTP_PID=""
cleanup() {
    fx_http_stop
    if [[ $KEEP == 0 ]]; then rm -rf "$FX"; else echo "kept $FX"; fi
}
trap cleanup EXIT
# shellcheck source=../crash/fixture.sh
. "$HERE/../crash/fixture.sh"
fx_build "$COUNT" || { echo "fault: fixture failed"; echo "0 passed, 1 failed"; exit 1; }
HAVE_SYNC=0
if "$B/posgate" sync --help >/dev/null 2>&1; then
    HAVE_SYNC=1
    fx_http_start "$FX/feedB" || { echo "fault: http server did not start"; exit 1; }
fi

passed=0 failed=0 post_commit=0
K=$FX/k P=$FX/p
fail_case() { echo "  FAIL $case: $*"; ok=0; }

# with_fault OP PATH ERRNO AFTER CMD...: runs CMD with the injector; output in out/err.txt.
with_fault() {
    local op=$1 path=$2 errno=$3 after=$4; shift 4
    env LD_PRELOAD="$LIB" FAULT_OP="$op" FAULT_PATH_SUBSTR="$path" FAULT_ERRNO="$errno" \
        FAULT_AFTER="$after" FAULT_COUNT_FILE="$FX/count.txt" "$@" >"$FX/out.txt" 2>"$FX/err.txt"
}

# count OP PATH PREPARE CMD...: matching calls in a complete run (after PREPARE).
count() {
    local op=$1 path=$2 prep=$3; shift 3
    $prep
    rm -f "$FX/count.txt"
    with_fault "$op" "$path" ENOSPC 1000000000 "$@"
    cat "$FX/count.txt" 2>/dev/null || echo 0
}

# The FAULT_AFTER values tried: the first, a middle and the last matching call.
points() {
    local n=$1
    if [[ $n -le 0 ]]; then return; fi
    printf '%s\n' 0 $((n / 2)) $((n - 1)) | sort -un
}

prep_kA() { rm -rf "$K"; cp -a "$FX/kA" "$K"; }
prep_kN() { rm -rf "$K"; cp -a "$FX/kN" "$K"; }

# kiosk_case NAME PREP OLD NEW OP PATH ERRNO CMD...: each fault point of one kind.
kiosk_case() {
    local name=$1 prep=$2 old=$3 new=$4 op=$5 path=$6 errno=$7; shift 7
    local n after rc got
    n=$(count "$op" "$path" "$prep" "$@")
    if [[ $n -le 0 ]]; then
        case=$name ok=1
        fail_case "no $op call on a path with \"$path\" in a complete run: the fault cannot be placed"
        failed=$((failed + 1))
        return
    fi
    for after in $(points "$n"); do
        case="$name ($op $errno after $after of $n)" ok=1
        $prep
        with_fault "$op" "$path" "$errno" "$after" "$@"
        rc=$?
        fx_pg "$K" verify >/dev/null 2>&1 || fail_case "verify fails after the fault"
        got=$(fx_which "$K" "$old" "$new")
        if [[ $rc == 0 && $got == "$new" ]]; then
            # the fault came after the commit was durable (a checkpoint, a cleanup) and the
            # command could finish: the new version whole is what must be served
            post_commit=$((post_commit + 1))
        else
            [[ $rc == 5 ]] || fail_case "exit $rc, expected 5: $(head -c 300 "$FX/err.txt")"
            [[ -s $FX/err.txt ]] || fail_case "no error message"
            grep -qiE "space|full|I/O|input/output|cannot|fail" "$FX/err.txt" ||
                fail_case "the message does not say what failed: $(head -c 300 "$FX/err.txt")"
            if [[ $got == "$new" && $op == rename && $path == */tuf/ ]]; then
                # the store committed, then promoting the metadata failed: the new version
                # whole serves and the next run promotes the metadata
                post_commit=$((post_commit + 1))
            elif [[ $got != "$old" ]]; then
                fail_case "after the fault (exit $rc) the kiosk serves $got, expected $old"
            fi
        fi
        if ! "$@" >"$FX/r.txt" 2>&1; then
            fail_case "the retry without the fault failed: $(head -c 300 "$FX/r.txt")"
        fi
        got=$(fx_which "$K" "$new")
        [[ $got == "$new" ]] || fail_case "after the retry the kiosk serves $got, expected $new"
        if [[ $ok == 1 ]]; then passed=$((passed + 1)); echo "  ok   $case"; else failed=$((failed + 1)); fi
    done
}

IMPORT_B=("$B/posgate" --data-dir "$K" import "$FX/feedB")
IMPORT_A=("$B/posgate" --data-dir "$K" import "$FX/feedA")
echo "fault: kiosk imports"
kiosk_case "delta import, full disk in the store" prep_kA A B pwrite /k/store.db ENOSPC "${IMPORT_B[@]}"
kiosk_case "snapshot import, full disk in the store" prep_kN none A pwrite /k/store.db ENOSPC "${IMPORT_A[@]}"
kiosk_case "delta import, EIO on the store's fdatasync" prep_kA A B fdatasync /k/store.db EIO "${IMPORT_B[@]}"
kiosk_case "snapshot import, EIO on the store's fdatasync" prep_kN none A fdatasync /k/store.db EIO "${IMPORT_A[@]}"
kiosk_case "delta import, metadata promotion rename fails" prep_kA A B rename /k/tuf/ EIO "${IMPORT_B[@]}"
kiosk_case "delta import, full disk in incoming/" prep_kA A B write /k/incoming ENOSPC "${IMPORT_B[@]}"
kiosk_case "snapshot import, full disk in incoming/" prep_kN none A write /k/incoming ENOSPC "${IMPORT_A[@]}"
kiosk_case "delta import, full disk staging metadata" prep_kA A B write /k/tuf-staging ENOSPC "${IMPORT_B[@]}"
if [[ $HAVE_SYNC == 1 ]]; then
    SYNC=("$B/posgate" --data-dir "$K" sync --url "$FX_HTTP_URL" --timeout 30)
    echo "fault: kiosk sync from $FX_HTTP_URL"
    kiosk_case "sync, full disk in incoming/" prep_kA A B write /k/incoming ENOSPC "${SYNC[@]}"
    kiosk_case "sync, full disk in the store" prep_kA A B pwrite /k/store.db ENOSPC "${SYNC[@]}"
fi

# ---- publisher: update v1 -> v2 with a fault; the feed directory stays importable
prep_pub() { rm -rf "$P"; mkdir -p "$P"; cp -a "$FX/stA" "$P/st"; cp -a "$FX/feedA" "$P/feed"; }
PUBLISH=("$B/posgate-publish" update --state "$P/st" --entries "$FX/e2.csv" --out "$P/feed"
         --allow-mass-change)

publish_case() { # publish_case NAME OP PATH ERRNO
    local name=$1 op=$2 path=$3 errno=$4
    local n after rc got want
    want=$(fx_content "$FX/kB")
    n=$(count "$op" "$path" prep_pub "${PUBLISH[@]}")
    if [[ $n -le 0 ]]; then
        case=$name ok=1
        fail_case "no $op call on a path with \"$path\": the fault cannot be placed"
        failed=$((failed + 1))
        return
    fi
    for after in $(points "$n"); do
        case="$name ($op $errno after $after of $n)" ok=1
        prep_pub
        with_fault "$op" "$path" "$errno" "$after" "${PUBLISH[@]}"
        rc=$?
        [[ $rc == 5 ]] || fail_case "exit $rc, expected 5: $(head -c 300 "$FX/err.txt")"
        [[ -s $FX/err.txt ]] || fail_case "no error message"
        # the feed as it stands imports whole into a fresh kiosk: v1, or v2 if it got out
        prep_kN
        if ! fx_pg "$K" import "$P/feed" >"$FX/i.txt" 2>&1; then
            fail_case "the feed left by the failed update does not import: $(head -c 300 "$FX/i.txt")"
        else
            got=$(fx_which "$K" A B)
            [[ $got == A || $got == B ]] || fail_case "the feed left behind is mixed: $got"
        fi
        if ! "${PUBLISH[@]}" >"$FX/r.txt" 2>&1; then
            fail_case "the retry without the fault failed: $(head -c 300 "$FX/r.txt")"
        fi
        prep_kA
        if ! fx_pg "$K" import "$P/feed" >"$FX/i.txt" 2>&1; then
            fail_case "a kiosk at v1 cannot import the retried feed: $(head -c 300 "$FX/i.txt")"
        else
            got=$(fx_content "$K")
            [[ $got == "$want" ]] || fail_case "after the retry a kiosk holds [$got], v2 is [$want]"
            [[ $(fx_answers "$K") == "$(cat "$FX/ref.B.answers")" ]] ||
                fail_case "after the retry a kiosk answers differently from v2"
        fi
        if [[ $ok == 1 ]]; then passed=$((passed + 1)); echo "  ok   $case"; else failed=$((failed + 1)); fi
    done
}

echo "fault: publisher"
publish_case "publish, full disk in the feed directory" write /p/feed/ ENOSPC
publish_case "publish, EIO on fsync in the state" fsync /p/st/ EIO
publish_case "publish, rename in the state fails" rename /p/st/ EIO
publish_case "publish, full disk in the state" write /p/st/ ENOSPC

echo "fault: $post_commit faults came after the store commit (the new version served whole)"
echo "$passed passed, $failed failed"
[[ $failed == 0 ]]
