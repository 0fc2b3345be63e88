#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Builds the Debian packages posgate, posgated, posgate-publish, posgate-hub and
# libposgate-dev with debhelper (tools/debian/ becomes debian/ of a copy of the tree, so the
# top level stays as it is), then checks them with lintian: any error fails.
#
# usage: tools/package.sh [OUTDIR]     (default build/packages; needs the packages of
#                                       tools/install-deps.sh: debhelper, lintian, scdoc)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
OUT=${1:-$ROOT/build/packages}
bash tools/install-deps.sh --check || bash tools/install-deps.sh

VERSION=$(sed -n 's/^project(posgate VERSION \([0-9.]*\).*/\1/p' CMakeLists.txt)
[[ -n $VERSION ]] || { echo "package.sh: no version in CMakeLists.txt" >&2; exit 1; }
WORK=$(mktemp -d "${TMPDIR:-/tmp}/posgate-package-XXXXXX")
trap 'rm -rf "$WORK"' EXIT
SRC=$WORK/posgate-$VERSION
mkdir -p "$SRC"
# the working tree as it is (committed or not), without build trees and git's own files
git ls-files -co --exclude-standard -z | grep -zv '^build' | tar --null -T - -cf - | tar -xf - -C "$SRC"
cp -r tools/debian "$SRC/debian"
# the changelog follows the project version, so the two cannot disagree
cat >"$SRC/debian/changelog" <<CHANGELOG
posgate ($VERSION) unstable; urgency=medium

  * Release $VERSION.

 -- posgate maintainers <maintainers@posgate.invalid>  $(date -R -d @"${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}")
CHANGELOG

echo "== dpkg-buildpackage (posgate $VERSION)"
(cd "$SRC" && DEB_BUILD_OPTIONS="parallel=$(nproc) nocheck" dpkg-buildpackage -b -us -uc \
    >"$WORK/build.log" 2>&1) || { tail -40 "$WORK/build.log" >&2; exit 1; }

mkdir -p "$OUT"
rm -f "$OUT"/*.deb "$OUT"/*.changes "$OUT"/*.buildinfo
mv "$WORK"/*.deb "$WORK"/*.changes "$WORK"/*.buildinfo "$OUT/"
echo "== lintian"
lintian --fail-on error --suppress-tags-from-file /dev/null "$OUT"/posgate_"$VERSION"_*.changes
ls "$OUT"/*.deb
