#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Every program answers --version: its name and the project version on the first line, then
# one "NAME VERSION" line per library it runs on, exit 0.
set -euo pipefail
BIN=${1:?usage: version.sh BUILD_DIR}
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lib.sh
. "$HERE/lib.sh"
want=$(sed -n 's/^project(posgate VERSION \([0-9.]*\).*/\1/p' "$HERE/../../CMakeLists.txt")
declare -A libs=(
    [posgate]="mbedTLS SQLite libcurl cJSON utf8proc"
    [posgated]="mbedTLS SQLite libcurl cJSON utf8proc libmicrohttpd"
    [posgate-keygen]="mbedTLS"
    [posgate-publish]="mbedTLS cJSON utf8proc"
    [posgate-synth]="mbedTLS cJSON utf8proc"
    [posgate-hub]="mbedTLS SQLite cJSON libmicrohttpd"
    [posgate-tuf-client]="mbedTLS libcurl cJSON"
)
for prog in "${!libs[@]}"; do
    out=$("$BIN/$prog" --version) || fail "$prog --version exited $?"
    [[ $(head -1 <<<"$out") == "$prog $want" ]] || fail "$prog --version: expected \"$prog $want\", found \"$(head -1 <<<"$out")\""
    for lib in ${libs[$prog]}; do
        grep -Eq "^$lib [0-9]+\.[0-9]+" <<<"$out" || fail "$prog --version: no \"$lib X.Y\" line in: $out"
    done
done
echo "version: ok (${#libs[@]} programs)"
