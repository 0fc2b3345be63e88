#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The publisher's systemd units (tools/systemd/posgate-refresh.{timer,service}) pass
# `systemd-analyze verify`, with the binary path pointed at the build; skipped (77) when
# systemd-analyze is not installed.
# Usage: systemd_units.sh SOURCE_DIR BUILD_DIR
set -euo pipefail
S=${1:?usage: systemd_units.sh SOURCE_DIR BUILD_DIR}
B=${2:?usage: systemd_units.sh SOURCE_DIR BUILD_DIR}
if ! command -v systemd-analyze >/dev/null; then
    echo "SKIP: systemd-analyze is not installed"
    exit 77
fi
T=$(mktemp -d "${TMPDIR:-/tmp}/posgate-units-XXXXXX")
trap 'rm -rf "$T"' EXIT
cp "$S/tools/systemd/posgate-refresh.timer" "$T/"
sed "s#/usr/bin/posgate-publish#$B/posgate-publish#" "$S/tools/systemd/posgate-refresh.service" \
    > "$T/posgate-refresh.service"
grep -q 'posgate-publish refresh --state' "$T/posgate-refresh.service" ||
    { echo "FAIL: the service does not run posgate-publish refresh" >&2; exit 1; }
cd "$T"
out=$(systemd-analyze verify --man=no ./posgate-refresh.timer ./posgate-refresh.service 2>&1) ||
    { echo "FAIL: systemd-analyze verify: $out" >&2; exit 1; }
[[ -z $out ]] || { echo "FAIL: systemd-analyze verify warns: $out" >&2; exit 1; }
echo "systemd units: ok"
