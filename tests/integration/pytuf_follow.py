#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
# Interop check by hand (not run by ctest: python-tuf is not installable here from PyPI; set it
# up as ../shared/tools/tuf-conformance/run.sh does and point POSGATE_PYTUF at this script with
# that interpreter). python-tuf's ngclient reads a feed directory served over HTTP, keeping its
# trusted metadata in STATE_DIR between calls (created from FEEDDIR/metadata/1.root.json), and
# downloads every list target each targets role lists, through delegations. Prints the trusted
# root version and the number of targets fetched; exits 1 on any refusal.
# Usage: pytuf_follow.py FEEDDIR STATE_DIR
import http.server
import json
import os
import shutil
import sys
import threading

from tuf.ngclient import Updater

feed, state = sys.argv[1], sys.argv[2]
os.makedirs(os.path.join(state, "meta"), exist_ok=True)
trusted = os.path.join(state, "meta", "root.json")
if not os.path.exists(trusted):
    shutil.copy(os.path.join(feed, "metadata", "1.root.json"), trusted)


class Quiet(http.server.SimpleHTTPRequestHandler):
    def __init__(self, *a, **k):
        super().__init__(*a, directory=feed, **k)

    def log_message(self, *a):
        pass


srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
threading.Thread(target=srv.serve_forever, daemon=True).start()
base = "http://127.0.0.1:%d/" % srv.server_address[1]
u = Updater(os.path.join(state, "meta"), base + "metadata/", os.path.join(state, "targets"),
            base + "targets/")
u.refresh()
names = set()
meta = os.path.join(feed, "metadata")
for f in os.listdir(meta):
    if f.endswith(".json") and f.split(".", 1)[0].isdigit() and ".root." not in f \
            and ".snapshot." not in f:
        names.update(json.load(open(os.path.join(meta, f)))["signed"].get("targets", {}))
os.makedirs(os.path.join(state, "targets"), exist_ok=True)
got = 0
for n in sorted(names):
    info = u.get_targetinfo(n)
    if info is None:
        continue  # listed by an older version or by a delegator: not trusted for this path
    u.download_target(info, os.path.join(state, "targets", n.replace("/", "_")))
    got += 1
root = json.load(open(trusted))["signed"]["version"]
print("python-tuf: root version %d, %d targets downloaded" % (root, got))
srv.shutdown()
