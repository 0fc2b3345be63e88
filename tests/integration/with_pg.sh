#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Runs CMD... with POSGATE_TEST_PG_URI naming a throwaway PostgreSQL server (pg_server.sh, in
# POSGATE_TEST_PG_DIR),
# stopped and removed afterwards; exit 77 (skipped) when PostgreSQL's binaries are missing.
# Usage: with_pg.sh CMD [ARGS...]
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
T=$(mktemp -d "${TMPDIR:-/tmp}/posgate-pg-XXXXXX")
cleanup() { bash "$HERE/pg_server.sh" stop "$T/pg"; rm -rf "$T"; }
trap cleanup EXIT
set +e
URI=$(bash "$HERE/pg_server.sh" start "$T/pg")
rc=$?
set -e
if [[ $rc == 77 ]]; then
    echo "SKIP: PostgreSQL server binaries missing; the PostgreSQL store is not tested" >&2
    exit 77
fi
[[ $rc == 0 ]] || { echo "with_pg.sh: cannot start PostgreSQL (exit $rc)" >&2; exit 1; }
export POSGATE_TEST_PG_URI=$URI
# for a test that restarts the server (pg_server.sh stop / resume)
export POSGATE_TEST_PG_DIR=$T/pg
"$@"
