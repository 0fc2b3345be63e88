#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Hostile feeds: mutations of a valid feed (tests/hostile/mutate.py: bit flips, truncations,
# appended bytes, files swapped between lists and between versions, delta records repeated or
# reordered, oversized counts and lengths) imported by a kiosk holding the previous version
# (which reads the metadata, config and deltas) or by a fresh one (metadata, config,
# snapshots). Only files the import reads are mutated: the harness records them first with
# strace when it is installed, else from the feed layout. Every mutation must be
#   - rejected: `posgate import` exits 4, and the kiosk's status, answers for a set of subjects
#     and `posgate verify` are exactly as before; or
#   - recovered: a damaged delta is refused and the kiosk takes the list's signed snapshot
#     instead (exit 0, "the snapshot was used", exactly the new version);
#   - harmless: exit 0 and the kiosk then holds exactly the new version (a flip that leaves the
#     file's meaning intact, e.g. one whitespace byte for another outside the signed part);
#   - the older version: the previous signed timestamp put back, the kiosk keeps or installs
#     the whole older version (a freeze, which only the metadata's expiry ends);
# anything else (another exit code, a crash, a mixed or changed version) is a failure.
#
# usage: tests/hostile/run.sh [--build DIR] [--max N] [--seed S] [--flips N] [--keep]
#   --max N   mutations to run (default 300, the ctest budget; more by hand)
# Prints "N passed, N failed"; exits 1 on any failure.
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
B="" MAX=300 SEED=1 FLIPS=6 KEEP=0 COUNT=3000
while [[ $# -gt 0 ]]; do
    case $1 in
        --build) B=$2; shift 2 ;;
        --max) MAX=$2; shift 2 ;;
        --seed) SEED=$2; shift 2 ;;
        --flips) FLIPS=$2; shift 2 ;;
        --keep) KEEP=1; shift ;;
        -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
        *) echo "hostile/run.sh: unknown option $1" >&2; exit 2 ;;
    esac
done
B=${B:-$HERE/../../build}
B=$(cd "$B" && pwd)
unset POSGATE_DATA_DIR POSGATE_FAKE_NOW
FX=$(mktemp -d "${TMPDIR:-/tmp}/posgate-hostile-XXXXXX")
trap '[[ $KEEP == 0 ]] && rm -rf "$FX" || echo "kept $FX"' EXIT
# shellcheck source=../crash/fixture.sh
. "$HERE/../crash/fixture.sh"
fx_build "$COUNT" || { echo "hostile: fixture failed"; echo "0 passed, 1 failed"; exit 1; }
# a smaller subject set for the per-mutation answers: the listed ones (their answers change
# between the versions) and a few others
{ grep '^listed,' "$FX/subj.csv" | head -4; grep -v '^listed,' "$FX/subj.csv" | sed 1d | head -4; } |
    cut -d, -f1-3 > "$FX/subjects.small"
export FX_SUBJECTS=$FX/subjects.small
for r in N:none A:A B:B; do
    fx_answers "$FX/k${r%%:*}" > "$FX/small.${r#*:}.answers"
done

# the files each kind of kiosk reads from the new feed
reads() { # reads KIOSK OUTFILE
    local k=$FX/probe
    rm -rf "$k"; cp -a "$FX/$1" "$k"
    if command -v strace >/dev/null; then
        strace -f -e trace=open,openat -o "$FX/trace.txt" \
            "$B/posgate" --data-dir "$k" import "$FX/feedB" >/dev/null 2>&1
        grep -o "\"$FX/feedB/[^\"]*\"" "$FX/trace.txt" | tr -d '"' | sed "s#^$FX/feedB/##" |
            grep -v '/$' | sort -u > "$2"
    fi
    if [[ ! -s $2 ]]; then
        # without strace: the new version's metadata, the config, and the deltas (a kiosk at
        # the previous version) or the newest snapshots (a fresh kiosk)
        (cd "$FX/feedB" && ls metadata/timestamp.json metadata/2.snapshot.json metadata/2.targets.json
         ls targets/config/*
         if [[ $1 == kA ]]; then ls targets/lists/*/*.delta-*; else ls targets/lists/*/*.snapshot-2.pgs; fi) > "$2"
    fi
}
reads kA "$FX/reads.delta"
reads kN "$FX/reads.fresh"
echo "hostile: a kiosk at v1 reads $(wc -l < "$FX/reads.delta") files, a fresh one $(wc -l < "$FX/reads.fresh")"
python3 "$HERE/mutate.py" --new "$FX/feedB" --old "$FX/feedA" --reads-delta "$FX/reads.delta" \
    --reads-fresh "$FX/reads.fresh" --out "$FX/mut" --max "$MAX" --seed "$SEED" --flips "$FLIPS" ||
    { echo "hostile: mutate.py failed"; echo "0 passed, 1 failed"; exit 1; }

passed=0 failed=0 harmless=0 older=0 recovered=0
declare -A kind_pass=()
K=$FX/k
while IFS=$'\t' read -r id kiosk kind file desc; do
    [[ -n $id ]] || continue
    if [[ $kiosk == delta ]]; then base=kA old=A; else base=kN old=none; fi
    rm -rf "$K"; cp -a "$FX/$base" "$K"
    "$B/posgate" --data-dir "$K" import "$FX/mut/$id" >"$FX/out.txt" 2>"$FX/err.txt"
    rc=$?
    why=""
    st=$(fx_state "$K")
    ans=$(fx_answers "$K")
    if [[ $rc == 4 ]]; then
        [[ $st == "$(cat "$FX/ref.$old.state")" ]] || why="status changed: $st"
        [[ $ans == "$(cat "$FX/small.$old.answers")" ]] || why+=" answers changed: $ans"
        grep -q . "$FX/err.txt" || why+=" no message"
    elif [[ $rc == 0 ]]; then
        if [[ $st == "$(cat "$FX/ref.B.state")" && $ans == "$(cat "$FX/small.B.answers")" ]]; then
            if [[ $file == *.pgd ]] && grep -q "snapshot was used" "$FX/out.txt"; then
                recovered=$((recovered + 1)) # the delta refused, the signed snapshot taken
            else
                harmless=$((harmless + 1))
                echo "$id $kind $file ($desc)" >> "$FX/harmless.txt"
            fi
        elif [[ $kind == swap-version && $file == metadata/timestamp.json &&
                $st == "$(cat "$FX/ref.A.state")" && $ans == "$(cat "$FX/small.A.answers")" ]]; then
            # the previous, validly signed and unexpired timestamp: the carrier presents the
            # whole older version, which a kiosk may hold (a freeze only expiry can end)
            older=$((older + 1))
        else
            why="exit 0 and the kiosk holds $st, neither a refusal nor the new version"
        fi
    else
        why="exit $rc (expected 4): $(head -c 300 "$FX/err.txt")"
    fi
    "$B/posgate" --data-dir "$K" verify >/dev/null 2>&1 || why+=" verify fails"
    if [[ -z $why ]]; then
        passed=$((passed + 1))
        kind_pass[$kind]=$(( ${kind_pass[$kind]:-0} + 1 ))
    else
        failed=$((failed + 1))
        echo "  FAIL $id $kind $file ($desc, $kiosk kiosk): $why"
    fi
done < "$FX/mut/manifest.tsv"

summary=""
for k in "${!kind_pass[@]}"; do summary+=" $k=${kind_pass[$k]}"; done
echo "hostile: passed per kind:$summary"
echo "hostile: $recovered damaged deltas were refused and the kiosk took the signed snapshot instead"
echo "hostile: $harmless mutations left the file's meaning intact (the new version installed),"\
     "$older presented the older signed version whole (installed or kept)"
if [[ -s $FX/harmless.txt ]]; then
    cut -d' ' -f3 "$FX/harmless.txt" | sort | uniq -c | sed 's/^/    harmless in /'
fi
echo "$passed passed, $failed failed"
[[ $failed == 0 ]]
