#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The one test command: installs what a fresh Debian machine lacks, builds the normal and the
# ASan+UBSan builds (warnings are errors), and runs every test of both through ctest.
#
# usage: tests/run.sh [--no-install] [--only normal|asan] [--fuzz-seconds N] [--valgrind]
#                     [-- ctest args]
#   --no-install      skip apt-get (the packages are already there)
#   --only B          build and test one build only (normal, asan or tsan)
#   --fuzz-seconds N  when clang is present, run each libFuzzer target for N seconds (default 10
#                     when clang is present, 0 to skip; POSGATE_FUZZ_SECONDS sets it too)
#   --valgrind        run every unit test of the normal build under valgrind memcheck (without
#                     it, a short subset runs when valgrind is present)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

INSTALL=1 ONLY="" FUZZ_SECONDS=${POSGATE_FUZZ_SECONDS:-10} VALGRIND_ALL=0
CTEST_EXTRA=()
while [[ $# -gt 0 ]]; do
    case $1 in
        --no-install) INSTALL=0; shift ;;
        --only) ONLY=$2; shift 2 ;;
        --fuzz-seconds) FUZZ_SECONDS=$2; shift 2 ;;
        --valgrind) VALGRIND_ALL=1; shift ;;
        --) shift; CTEST_EXTRA=("$@"); break ;;
        -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
        *) echo "tests/run.sh: unknown option $1" >&2; exit 2 ;;
    esac
done

# The last two lines say what ran and how it went, whatever ends the run (CI reads the second):
#   tests/run.sh: PASS (unsafe-check, layers, sizes, normal 60/60, asan 57/57, tsan 4/4, valgrind 5/5, ...)
#   N passed, N failed
PARTS=() NPASS=0 NFAIL=0
note() {  # note WHAT PASSED FAILED
    PARTS+=("$1 $2/$(($2 + $3))")
    NPASS=$((NPASS + $2)) NFAIL=$((NFAIL + $3))
}
summary() {
    local rc=$? verdict=PASS
    if [[ $rc != 0 || $status != 0 || $NFAIL != 0 ]]; then verdict=FAIL; fi
    if [[ $rc != 0 && $status == 0 ]]; then
        PARTS+=("stopped early: exit $rc")
        NFAIL=$((NFAIL + 1)) # the step that stopped the run counts as a failure
    fi
    local IFS=,
    echo "tests/run.sh: $verdict (${PARTS[*]:-nothing ran})" | sed 's/,/, /g'
    echo "$NPASS passed, $NFAIL failed"
}
status=0
trap summary EXIT

bash tools/install-deps.sh $([[ $INSTALL == 0 ]] && echo --check)

if bash tests/check-unsafe.sh; then note unsafe-check 1 0; else note unsafe-check 0 1; status=1; fi
# the layout's rules: includes point down a layer, files and functions stay readable
if bash tools/check-layers.sh; then note layers 1 0; else note layers 0 1; status=1; fi
if bash tools/check-size.sh; then note sizes 1 0; else note sizes 0 1; status=1; fi

JOBS=$(nproc)
build() {  # build DIR [cmake args...]
    local dir=$1; shift
    cmake -S "$ROOT" -B "$dir" -DPOSGATE_WERROR=ON "$@" >/dev/null
    cmake --build "$dir" -j "$JOBS"
}

ctest_note() {  # ctest_note LABEL LOG: counts from ctest's "N% tests passed, F tests failed out of T"
    local line total failed
    line=$(grep -E 'tests passed, [0-9]+ tests? failed out of [0-9]+' "$2" | tail -1)
    if [[ -z $line ]]; then note "$1 (no ctest summary)" 0 1; return; fi
    failed=$(sed -E 's/.* ([0-9]+) tests? failed.*/\1/' <<<"$line")
    total=$(sed -E 's/.*out of ([0-9]+).*/\1/' <<<"$line")
    note "$1" $((total - failed)) "$failed"
}
run_ctest() {  # run_ctest DIR LABEL
    echo "== ctest ($2)"
    if ! ctest --test-dir "$1" --output-on-failure -j "$JOBS" "${CTEST_EXTRA[@]}" |
            tee "$1/ctest-summary.log"; then
        status=1
    fi
    ctest_note "$2" "$1/ctest-summary.log"
}

if [[ -z $ONLY || $ONLY == normal ]]; then
    echo "== build (normal)"
    build build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPOSGATE_TEST_HOOKS=ON
    run_ctest build normal
    # memcheck: every unit test with --valgrind, else a short subset (well under a minute)
    if command -v valgrind >/dev/null; then
        if [[ $VALGRIND_ALL == 1 ]]; then
            vg_tests=$(cd build/tests && ls unit_* | sed 's/^unit_//')
        else
            vg_tests="platform ident engine json_canon keyfilter"  # about 30 s; feed_records alone takes 50 s
        fi
        echo "== valgrind memcheck: $(echo $vg_tests | wc -w) unit tests"
        vg_pass=0 vg_fail=0
        for t in $vg_tests; do
            if ! (cd build/tests && POSGATE_TEST_SRC="$ROOT/tests" POSGATE_BIN="$ROOT/build" \
                    valgrind -q --error-exitcode=1 --leak-check=full \
                    --errors-for-leak-kinds=definite --trace-children=no \
                    "./unit_$t" >"../valgrind-$t.log" 2>&1); then
                echo "valgrind: unit/$t failed (see build/valgrind-$t.log)"; tail -30 "build/valgrind-$t.log"
                status=1
                vg_fail=$((vg_fail + 1))
            else
                vg_pass=$((vg_pass + 1))
            fi
        done
        note valgrind $vg_pass $vg_fail
    elif [[ $VALGRIND_ALL == 1 ]]; then
        echo "valgrind is not installed"; status=1
    fi
fi
if [[ -z $ONLY || $ONLY == asan ]]; then
    echo "== build (ASan+UBSan)"
    # without test hooks, as shipped: POSGATE_FAKE_NOW must not move its clock (integration/kiosk)
    build build-asan -DCMAKE_BUILD_TYPE=Debug -DPOSGATE_SANITIZE=ON -DPOSGATE_TEST_HOOKS=OFF
    ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
        run_ctest build-asan asan
fi

if [[ -z $ONLY || $ONLY == tsan ]]; then
    # ThreadSanitizer over the tests that run threads against one store and one audit queue,
    # and the state digest's helper thread
    echo "== build (ThreadSanitizer: concurrency tests)"
    cmake -S "$ROOT" -B build-tsan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPOSGATE_TSAN=ON \
        -DPOSGATE_WERROR=ON >/dev/null
    cmake --build build-tsan -j "$JOBS" --target unit_store unit_audit unit_audit_ring \
        unit_daemon_concurrency unit_state_digest
    echo "== ctest (tsan)"
    if ! TSAN_OPTIONS=halt_on_error=1 POSGATE_CONCURRENCY_COUNT=100000 ctest --test-dir build-tsan \
            --output-on-failure -R '^unit/(store|audit|audit_ring|daemon_concurrency|state_digest)$' |
            tee build-tsan/ctest-summary.log; then
        status=1
    fi
    ctest_note tsan build-tsan/ctest-summary.log
fi

if [[ $FUZZ_SECONDS -gt 0 ]] && command -v clang >/dev/null; then
    echo "== fuzz (${FUZZ_SECONDS}s per target)"
    # only the fuzz targets: the other programs are built and tested above
    fuzz_targets=()
    for src in tests/fuzz/*_fuzz.c; do
        n=${src##*/}
        fuzz_targets+=("fuzz_${n%_fuzz.c}")
    done
    CC=clang cmake -S "$ROOT" -B build-fuzz -DCMAKE_BUILD_TYPE=Debug -DPOSGATE_FUZZ=ON >/dev/null
    cmake --build build-fuzz -j "$JOBS" --target "${fuzz_targets[@]}"
    fz_pass=0 fz_fail=0
    for f in build-fuzz/tests/fuzz_*; do
        [[ -x $f ]] || continue
        name=${f##*/fuzz_}
        work=$(mktemp -d)
        cp -r "tests/fuzz/corpus/$name/." "$work/"
        if ! "$f" -max_total_time="$FUZZ_SECONDS" -timeout=10 -rss_limit_mb=2048 \
                -artifact_prefix="build-fuzz/$name-" "$work" >"build-fuzz/$name.log" 2>&1; then
            echo "fuzz: $name found a crash (see build-fuzz/$name.log and build-fuzz/$name-*);"\
                 "add the input to tests/fuzz/corpus/$name/ once fixed"
            status=1
            fz_fail=$((fz_fail + 1))
        else
            fz_pass=$((fz_pass + 1))
        fi
        rm -rf "$work"
    done
    note "fuzz ${FUZZ_SECONDS} s per target" $fz_pass $fz_fail
fi

exit $status
