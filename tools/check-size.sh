#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The size check: no source file of the product (agent/ sync/ platform/ tools/) over MAX_FILE
# lines, no function over MAX_FUNC lines (from its opening brace to its closing one). Tests are
# not held to it. A function is a line starting at column 0 that opens a body "{" at column 0 (or
# ends with ") {"), closed by "}" at column 0: the house style (docs/../STYLE).
# Usage: tools/check-size.sh [--help]   (MAX_FILE=1500, MAX_FUNC=160 from the environment)
#   exit 0 within limits, 1 over, 2 usage.
set -euo pipefail
if [[ ${1:-} == --help || ${1:-} == -h ]]; then
    sed -n '3,/^set -euo/p' "$0" | grep -v '^set -euo' | sed 's/^# \{0,1\}//'
    exit 0
fi
[[ $# -eq 0 ]] || { echo "check-size: unexpected argument '$1' (try --help)" >&2; exit 2; }
cd "$(dirname "$0")/.."
MAX_FILE=${MAX_FILE:-1500} MAX_FUNC=${MAX_FUNC:-160} exec python3 - <<'PY'
import os, re, subprocess, sys
max_file, max_func = int(os.environ['MAX_FILE']), int(os.environ['MAX_FUNC'])
files = [f for f in subprocess.check_output(['git', 'ls-files', '*.c', '*.h'], text=True).split()
         if f.split('/')[0] in ('agent', 'sync', 'platform', 'tools') and os.path.exists(f)]
bad = []
head = re.compile(r'^[A-Za-z_].*\(')
name_re = re.compile(r'([A-Za-z_][A-Za-z0-9_]*)\s*\(')
for f in files:
    lines = open(f, encoding='utf-8', errors='replace').read().split('\n')
    if len(lines) - 1 > max_file:
        bad.append(f'{f}: {len(lines) - 1} lines (at most {max_file})')
    start = None
    for i, l in enumerate(lines):
        if start is None and (l == '{' or re.match(r'^[A-Za-z_].*\)\s*\{$', l)):
            j = i if l != '{' else i - 1
            while j >= 0 and lines[j] and not head.match(lines[j]):
                j -= 1
            m = name_re.search(lines[j]) if j >= 0 else None
            name, start = (m.group(1) if m else '?'), i
        elif start is not None and l == '}':
            if i - start + 1 > max_func:
                bad.append(f'{f}:{start + 1}: function {name} is {i - start + 1} lines (at most {max_func})')
            start = None
if bad:
    print('\n'.join(bad), file=sys.stderr)
    print(f'check-size: {len(bad)} over the limits', file=sys.stderr)
    sys.exit(1)
print(f'check-size: {len(files)} files within {max_file} lines, functions within {max_func}')
PY
