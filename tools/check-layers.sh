#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The layering check: every #include "..." in our C sources must point down a layer (or stay in
# its own folder), and a library's private headers are included only inside its folder.
#
#   rank  folder                 what it is
#   0     agent/include/posgate  the installed public headers (posgate.h, posgate_err.h)
#   1     platform               files, clock, locks, logs, memory, randomness, text
#   2     sync/crypto            hashes, signatures, canonical JSON, PKCS#11
#   3     sync/feed              identifiers, feed and list config, records, entries.csv
#   3     sync/transport         carriers, the fetcher, bundles
#   4     sync/tuf               TUF metadata, client, writer
#   4     sync/upload            the audit uploader
#   5     agent/store            the store and its key filter
#   6     agent/audit            the audit queue, events, device key
#   7     agent/core             the API of posgate.h, engine, update, pins, data dir
#   8     agent/cli              the posgate command line       } only the public headers, the
#   8     agent/daemon           posgated                        } platform and posgate_admin.h
#   9     tools/*                publisher, hub, synth, conformance client
#   10    tools/bench            the benchmarks' drivers, which measure the parts above (the
#                                hub's batch parse among them)
#
# Rules, each failure printed as FILE:LINE: what was included and why it is refused:
#   1. a header is found in exactly one folder of the table (bare names are unique);
#   2. an include points to a lower rank, or to the same folder (two folders of one rank do not
#      include each other);
#   3. a private header (NAME_internal.h) is included only from its own folder, and from the
#      tests that mirror it (tests/unit/<folder>/);
#   4. agent/cli and agent/daemon include from outside their folder only rank 0, platform,
#      agent/core/posgate_admin.h and the bounded JSON parser (sync/crypto/json_canon.h): they use
#      the library through its public and admin headers.
# Tests (tests/) may include any header that is not private to another folder.
# Usage: tools/check-layers.sh [--help]   exit 0 clean, 1 violations, 2 usage.
set -euo pipefail
if [[ ${1:-} == --help || ${1:-} == -h ]]; then
    sed -n '3,/^set -euo/p' "$0" | grep -v '^set -euo' | sed 's/^# \{0,1\}//'
    exit 0
fi
[[ $# -eq 0 ]] || { echo "check-layers: unexpected argument '$1' (try --help)" >&2; exit 2; }
cd "$(dirname "$0")/.."
exec python3 - "$@" <<'PY'
import os, re, subprocess, sys
RANK = {
    'agent/include/posgate': 0, 'platform': 1, 'sync/crypto': 2, 'sync/feed': 3,
    'sync/transport': 3, 'sync/tuf': 4, 'sync/upload': 4, 'agent/store': 5, 'agent/audit': 6,
    'agent/core': 7, 'agent/cli': 8, 'agent/daemon': 8, 'tools/publish': 9, 'tools/hub': 9,
    'tools/bench': 10, 'tools/synth': 9, 'tools/conformance': 9,
}
FRONT = {'agent/cli', 'agent/daemon'}
ADMIN = 'agent/core/posgate_admin.h'
FRONT_EXTRA = {'sync/crypto/json_canon.h'}  # the bounded JSON parser, for their own codecs
try:
    files = subprocess.check_output(['git', 'ls-files', '*.c', '*.h'], text=True).split()
except (OSError, subprocess.CalledProcessError):
    files = [os.path.join(d, f) for top in ('agent', 'sync', 'platform', 'tools', 'tests')
             for d, _, fs in os.walk(top) for f in fs if f.endswith(('.c', '.h'))]
files = [f for f in files if os.path.exists(f)]
bad = []
where = {}
for f in files:
    d = os.path.dirname(f)
    if f.endswith('.h') and d in RANK:
        where.setdefault(os.path.basename(f), []).append(f)
    elif f.endswith('.h') and not d.startswith('tests') :
        bad.append(f'{f}: a header outside the folders of the layer table (add its folder to tools/check-layers.sh)')
    if f.endswith('.c') and not d.startswith('tests') and d not in RANK:
        bad.append(f'{f}: a source outside the folders of the layer table (add its folder to tools/check-layers.sh)')
for name, paths in where.items():
    if len(paths) > 1:
        bad.append(f'{paths[0]}: header name {name} also in {", ".join(paths[1:])} (bare names must be unique)')
inc = re.compile(r'^\s*#\s*include\s*"([^"]+)"')
for f in files:
    d = os.path.dirname(f)
    test = d.startswith('tests')
    if not test and d not in RANK:
        continue
    with open(f, encoding='utf-8', errors='replace') as fh:
        for n, line in enumerate(fh, 1):
            m = inc.match(line)
            if not m:
                continue
            name = m.group(1)
            if os.path.exists(os.path.join(d, name)):
                hdr = os.path.normpath(os.path.join(d, name))
            elif os.path.basename(name) in where and '/' not in name:
                hdr = where[name][0]
            else:
                if test:
                    continue  # a test's own helper header, or a .c fuzz replay file
                bad.append(f'{f}:{n}: includes "{name}", which no folder of the layer table holds')
                continue
            hd = os.path.dirname(hdr)
            if hd == d:
                continue
            if hd not in RANK:
                continue  # tests' own headers
            private = os.path.basename(hdr).endswith('_internal.h')
            if test:
                if private and not d.startswith('tests/unit/' + hd):
                    bad.append(f'{f}:{n}: includes {hdr}, private to {hd}/ (only tests/unit/{hd}/ may)')
                continue
            if private:
                bad.append(f'{f}:{n}: includes {hdr}, private to {hd}/')
                continue
            if RANK[hd] >= RANK[d]:
                bad.append(f'{f}:{n}: includes {hdr}: {hd} (rank {RANK[hd]}) is not below {d} (rank {RANK[d]})')
                continue
            if d in FRONT and not (RANK[hd] <= 1 or hdr == ADMIN or hdr in FRONT_EXTRA):
                bad.append(f'{f}:{n}: includes {hdr}: {d} uses only the public headers, platform/ and {ADMIN}')
if bad:
    print('\n'.join(bad), file=sys.stderr)
    print(f'check-layers: {len(bad)} violation(s)', file=sys.stderr)
    sys.exit(1)
print(f'check-layers: {len(files)} files, every include points down')
PY
