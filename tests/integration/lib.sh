# SPDX-License-Identifier: Apache-2.0
# Helpers the integration scripts share; sourced, never run. A script that needs another
# behaviour defines its own function after sourcing this file.
#
#   FAIL_LOGS=(daemon.log)   files whose last FAIL_TAIL lines (default 20) fail prints
#   EXPECT_DIR=$T            where expect_rc keeps out.txt and err.txt (default: the cwd)

FAIL_LOGS=()
FAIL_TAIL=20
EXPECT_DIR=.

# fail MSG...: says why on stderr, with the tail of each existing file in FAIL_LOGS; exits 1.
fail() {
    echo "FAIL: $*" >&2
    local f
    for f in "${FAIL_LOGS[@]}"; do
        if [[ -f $f ]]; then tail -"$FAIL_TAIL" "$f" >&2; fi
    done
    exit 1
}

# expect_rc RC CMD...: runs CMD, fails unless it exits RC; its output stays in
# $EXPECT_DIR/out.txt and $EXPECT_DIR/err.txt for the checks that follow.
expect_rc() {
    local want=$1; shift
    set +e; "$@" >"$EXPECT_DIR/out.txt" 2>"$EXPECT_DIR/err.txt"; local rc=$?; set -e
    [[ $rc == "$want" ]] || {
        cat "$EXPECT_DIR/out.txt" "$EXPECT_DIR/err.txt" >&2
        fail "$* exited $rc, expected $want"
    }
}

# free_port: a TCP port on 127.0.0.1 that nothing listens on right now.
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# wait_for SECONDS CMD...: retries CMD every 0.2 s until it succeeds (0) or time is up (1).
wait_for() {
    local end=$(( $(date +%s%N) + $1 * 1000000000 )); shift
    until "$@"; do
        (( $(date +%s%N) < end )) || return 1
        sleep 0.2
    done
}
