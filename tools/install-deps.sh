#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Installs the Debian packages posgate builds and tests with (as root: apt-get update first).
# With --check, only reports what is missing. scdoc turns docs/man/*.scd into man pages;
# debhelper and lintian build and check the Debian packages (tools/package.sh). apt waits up
# to 10 minutes for another package manager's lock instead of failing.
set -euo pipefail
PKGS=(build-essential cmake pkg-config clang libclang-rt-14-dev
      libmbedtls-dev libsqlite3-dev sqlite3 libcjson-dev libcurl4-openssl-dev libssl-dev libmicrohttpd-dev
      libgnutls28-dev zlib1g-dev libutf8proc-dev libp11-kit-dev softhsm2 opensc curl python3
      python3-cryptography nginx-light openssl valgrind libpq-dev postgresql-15 scdoc debhelper
      lintian)
# the browser tests (tests/browser): Debian's chromium, and node with npm for playwright-core; a
# node that brings its own npm (another vendor's package, which conflicts with Debian's npm)
# serves as well
PKGS+=(chromium)
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then PKGS+=(nodejs npm); fi
missing=()
for p in "${PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [[ ${#missing[@]} -eq 0 ]]; then
    exit 0
fi
if [[ ${1:-} == --check ]]; then
    echo "missing packages: ${missing[*]}" >&2
    exit 1
fi
SUDO=""
if [[ $(id -u) != 0 ]]; then SUDO=sudo; fi
echo "installing: ${missing[*]}"
LOCK_WAIT=(-o DPkg::Lock::Timeout=600)
# apt-get update takes the lists lock, which not every apt release waits for: retry it too
for try in $(seq 60); do
    if out=$($SUDO apt-get "${LOCK_WAIT[@]}" update -qq 2>&1); then
        break
    fi
    if ! grep -qi 'lock' <<<"$out" || [[ $try == 60 ]]; then
        echo "$out" >&2
        exit 1
    fi
    echo "install-deps: the package lists are locked by another apt; waiting" >&2
    sleep 10
done
DEBIAN_FRONTEND=noninteractive $SUDO apt-get "${LOCK_WAIT[@]}" install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
