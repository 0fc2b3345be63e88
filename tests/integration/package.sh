#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The Debian packages on this machine: tools/package.sh builds them (lintian without errors),
# apt installs them, the installed posgate-keygen, posgate-synth and posgate-publish make a
# feed, the installed posgate-hub serves it, the installed posgate (as the posgate user) imports
# it and answers DENY and ALLOW, the installed posgated syncs from the hub and answers over
# HTTP; the unit passes `systemd-analyze verify`; purging leaves nothing in /usr, /etc/posgate
# or /var/lib/posgate. Skipped (exit 77) when not root, without dpkg, or when posgate packages
# are installed already (they are not this test's to remove).
# Usage: package.sh BUILD_DIR
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
# shared helpers: fail, expect_rc, free_port, wait_for
. "$HERE/lib.sh"
PKGS=(posgate posgated posgate-publish posgate-hub libposgate-dev)

if [[ $(id -u) != 0 ]]; then
    echo "package: SKIPPED: installs packages, needs root"; exit 77
fi
for tool in dpkg dpkg-buildpackage apt-get runuser; do
    command -v "$tool" >/dev/null || { echo "package: SKIPPED: no $tool"; exit 77; }
done
for p in "${PKGS[@]}"; do
    if dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "installed\|config-files"; then
        echo "package: SKIPPED: $p is already on this machine"; exit 77
    fi
done

T=$(mktemp -d "${TMPDIR:-/tmp}/posgate-package-XXXXXX")
chmod 755 "$T"   # the posgate user reads the feed from here
PIDS=()
INSTALLED=0
APT=(apt-get -o DPkg::Lock::Timeout=600 -y -qq)
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    if [[ $INSTALLED == 1 ]]; then
        DEBIAN_FRONTEND=noninteractive "${APT[@]}" purge "${PKGS[@]}" >/dev/null 2>&1 || true
    fi
    rm -rf "$T"
}
trap cleanup EXIT
cd "$T"
FAIL_LOGS=(hub.log daemon.log)
unset POSGATE_DATA_DIR POSGATE_FAKE_NOW

# build, lintian (inside package.sh), install
bash "$ROOT/tools/package.sh" "$T/debs" >package.log 2>&1 || { cat package.log >&2; fail "tools/package.sh"; }
grep -q '^E: ' package.log && fail "lintian errors: $(grep '^E: ' package.log)"
debs=()
for p in "${PKGS[@]}"; do debs+=("$T/debs/${p}_"*_*.deb); done
DEBIAN_FRONTEND=noninteractive "${APT[@]}" install "${debs[@]}" >apt.log 2>&1 ||
    { cat apt.log >&2; fail "apt-get install of the packages"; }
INSTALLED=1

# what the packages put in place
for b in posgate posgated posgate-publish posgate-keygen posgate-synth posgate-hub; do
    [[ $(command -v $b) == /usr/bin/$b ]] || fail "$b is not /usr/bin/$b: $(command -v $b)"
    /usr/bin/$b --version | head -1 | grep -q "^$b [0-9]" || fail "$b --version"
done
getent passwd posgate >/dev/null || fail "no posgate user"
[[ $(stat -c '%a %U' /var/lib/posgate) == "700 posgate" ]] ||
    fail "/var/lib/posgate is $(stat -c '%a %U' /var/lib/posgate), expected 700 posgate"
UNIT=/lib/systemd/system/posgated.service
[[ -f $UNIT && -f /etc/posgate/posgated.json ]] || fail "unit or /etc/posgate/posgated.json missing"
/usr/bin/posgated --check-config --config /etc/posgate/posgated.json >/dev/null ||
    fail "the shipped /etc/posgate/posgated.json is not valid"
for m in posgate.1 posgated.8 posgated.json.5 posgate-publish.1 posgate-keygen.1 posgate-hub.8; do
    [[ -f /usr/share/man/man${m##*.}/$m.gz ]] || fail "man page $m not installed"
done
if command -v systemd-analyze >/dev/null; then
    systemd-analyze verify "$UNIT" >verify.log 2>&1 || { cat verify.log >&2; fail "systemd-analyze verify $UNIT"; }
    echo "package: systemd-analyze verify: ok"
else
    echo "package: systemd-analyze not available, unit not verified"
fi
pkg-config --exists posgate && [[ $(pkg-config --modversion posgate) == $(posgated --version | head -1 | cut -d' ' -f2) ]] ||
    fail "pkg-config posgate"
# a program built against the installed library and header
cat >use.c <<'C'
#include <posgate.h>
#include <stdio.h>
int main(void) { puts(posgate_strerror(POSGATE_OK)); return 0; }
C
cc use.c $(pkg-config --cflags --libs posgate) -o use && ./use >/dev/null || fail "linking libposgate"

# a feed made with the installed publisher tools, served by the installed hub
posgate-keygen --out keys/root >/dev/null
posgate-keygen --out keys/feed >/dev/null
posgate-keygen --list-key --out keys/list.key >/dev/null
posgate-synth --count 500 --seed 3 --out entries.csv --config-out feed.json --subjects-out subj.csv >/dev/null
posgate-publish init --state st --config feed.json --root-key keys/root.key --threshold 1 \
    --feed-key keys/feed.key --list-key keys/list.key >/dev/null
posgate-publish update --state st --entries entries.csv --out feed >/dev/null 2>&1
chmod -R a+rX feed
HPORT=$(free_port)
posgate-hub --feed feed --listen "127.0.0.1:$HPORT" >hub.log 2>&1 &
PIDS+=($!)
wait_for 10 curl -sf -o /dev/null "http://127.0.0.1:$HPORT/metadata/timestamp.json" || fail "posgate-hub did not serve the feed"

# the installed CLI as the posgate user, on /var/lib/posgate
install -m 0600 -o posgate -g posgate keys/list.key list.key
as_posgate() { runuser -u posgate -- "$@"; }
expect_rc 0 as_posgate posgate init --root feed/metadata/1.root.json --list-key list.key --jurisdiction CN
expect_rc 0 as_posgate posgate sync --url "http://127.0.0.1:$HPORT/"
expect_rc 0 as_posgate posgate status
LISTED=$(awk -F, '$1 == "listed" { print $2 "," $3; exit }' subj.csv)
CLEAN=$(awk -F, '$1 == "clean" && index($2, "cn_rid:") == 1 { print $2; exit }' subj.csv)
[[ -n $LISTED && -n $CLEAN ]] || fail "subjects missing in subj.csv"
expect_rc 1 as_posgate posgate check --service "${LISTED#*,}" --id "${LISTED%%,*}"
expect_rc 0 as_posgate posgate check --service rail.hsr --id "$CLEAN"

# the installed daemon, as the unit runs it (user posgate, the packaged data dir)
APORT=$(free_port)
cat >posgated.json <<JSON
{"data_dir": "/var/lib/posgate", "listen": ["127.0.0.1:$APORT"],
 "feed_urls": ["http://127.0.0.1:$HPORT/"], "poll_interval_s": 60}
JSON
runuser -u posgate -- posgated --config "$T/posgated.json" >daemon.log 2>&1 &
PIDS+=($!)
wait_for 10 curl -sf -o /dev/null "http://127.0.0.1:$APORT/healthz" || fail "posgated /healthz is not 200"
code=$(curl -s -o resp.json -w '%{http_code}' -X POST "http://127.0.0.1:$APORT/v1/check" \
    -H 'Content-Type: application/json' \
    -d "{\"service\": \"${LISTED#*,}\", \"ids\": [\"${LISTED%%,*}\"], \"operator\": \"pkg-test\"}")
[[ $code == 200 ]] && grep -q '"decision":"deny"' resp.json || fail "POST /v1/check: $code $(cat resp.json)"
for p in "${PIDS[@]}"; do kill "$p"; done
wait 2>/dev/null || true
PIDS=()

# purge: nothing of ours left
DEBIAN_FRONTEND=noninteractive "${APT[@]}" purge "${PKGS[@]}" >apt.log 2>&1 || { cat apt.log >&2; fail "purge"; }
INSTALLED=0
left=$(dpkg-query -W -f='${Package} ${Status}\n' "${PKGS[@]}" 2>/dev/null | grep -v "not-installed" || true)
[[ -z $left ]] || fail "after purge dpkg still knows: $left"
for path in /usr/bin/posgate /usr/bin/posgated /usr/bin/posgate-publish /usr/bin/posgate-keygen \
            /usr/bin/posgate-synth /usr/bin/posgate-hub /usr/include/posgate "$UNIT" \
            /etc/posgate /var/lib/posgate /usr/share/doc/posgate /usr/share/man/man1/posgate.1.gz; do
    [[ ! -e $path ]] || fail "$path is left after purge"
done
leftover=$(find /usr -name 'libposgate*' -o -name 'posgate.pc' 2>/dev/null)
[[ -z $leftover ]] || fail "left in /usr after purge: $leftover"
echo "package: ok (built, lintian clean, installed, posgate and posgated served a feed, purged)"
