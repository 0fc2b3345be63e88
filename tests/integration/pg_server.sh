#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# A throwaway PostgreSQL server for tests: initdb in DIR as an unprivileged user (initdb refuses
# root; as root the server runs as `nobody`), listening only on a unix socket in DIR (no TCP).
#   pg_server.sh start DIR   prints the libpq URI (postgresql:///posgate?host=DIR...) on stdout;
#                            exit 77 with a message when PostgreSQL's binaries are missing
#   pg_server.sh stop DIR    stops it (fast shutdown) and is quiet when nothing runs
#   pg_server.sh resume DIR  starts the server stopped in DIR again, with what it held (a
#                            server restart under running clients)
# Tests source nothing: they run `URI=$(pg_server.sh start "$T/pg") || ...` and trap a stop.
set -euo pipefail
cmd=${1:?usage: pg_server.sh start|stop|resume DIR}
dir=${2:?usage: pg_server.sh start|stop|resume DIR}
bindir=${POSGATE_PG_BINDIR:-}
if [[ -z $bindir ]]; then
    for d in /usr/lib/postgresql/15/bin /usr/lib/postgresql/*/bin; do
        if [[ -x $d/initdb ]]; then bindir=$d; break; fi
    done
fi
if [[ -z $bindir || ! -x $bindir/initdb || ! -x $bindir/pg_ctl ]]; then
    echo "pg_server.sh: PostgreSQL server binaries not found (apt-get install postgresql-15)" >&2
    exit 77
fi
as_user() { # runs a command as the unprivileged owner of the cluster
    if [[ $(id -u) == 0 ]]; then
        setpriv --reuid=nobody --regid=nogroup --clear-groups -- "$@"
    else
        "$@"
    fi
}
run_server() {
    as_user "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 30 \
        -o "-c listen_addresses='' -c unix_socket_directories='$dir' -c fsync=off \
            -c max_connections=200 -c shared_buffers=64MB" start >/dev/null \
        || { cat "$dir/server.log" >&2; exit 1; }
}
case $cmd in
resume)
    dir=$(cd "$dir" && pwd)
    run_server
    ;;
start)
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    if [[ $(id -u) == 0 ]]; then
        chown nobody:nogroup "$dir"
        # the socket's directory must be reachable by nobody along the whole path
        d=$dir; while [[ $d != / ]]; do d=$(dirname "$d"); chmod o+x "$d" 2>/dev/null || true; done
    fi
    as_user "$bindir/initdb" -D "$dir/data" -U posgate --auth=trust -E UTF8 --no-locale \
        >"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log" >&2; exit 1; }
    run_server
    as_user "$bindir/createdb" -h "$dir" -U posgate posgate
    echo "postgresql:///posgate?host=$dir&user=posgate"
    ;;
stop)
    if [[ -f $dir/data/postmaster.pid ]]; then
        as_user "$bindir/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1 || true
    fi
    ;;
*)
    echo "pg_server.sh: expected start, stop or resume, found \"$cmd\"" >&2
    exit 2
    ;;
esac
