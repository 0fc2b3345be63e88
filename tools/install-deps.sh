#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Installs the Debian packages posgate builds and tests with (as root: apt-get update first).
# With --check, only reports what is missing.
set -euo pipefail
PKGS=(build-essential cmake pkg-config clang libclang-rt-14-dev
      libmbedtls-dev libsqlite3-dev sqlite3 libcjson-dev libcurl4-openssl-dev libssl-dev libmicrohttpd-dev
      libgnutls28-dev zlib1g-dev libutf8proc-dev libp11-kit-dev softhsm2 opensc curl python3
      python3-cryptography nginx-light openssl valgrind libpq-dev postgresql-15)
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
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
