#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""A fault-injecting HTTP reverse proxy for tests (Python 3 standard library only, loopback).

It forwards every request to an upstream (posgate-hub, nginx ...) and, by mode, misbehaves:

  pass      forward unchanged (default); records the first 200 body of every metadata/ path
            that has no version prefix (timestamp.json, snapshot.json ...) for `replay`
  drop      read the request, close the connection without answering
  stall     read the request, send nothing for `stall_s` seconds (default 30), then close
  truncate  forward, but send only the first half of the body (headers announce all of it),
            then close the connection
  error500  answer 500
  error429  answer 429 with Retry-After: `retry_after` seconds (default 2); with date=1 the
            value is an HTTP-date instead
  replay    answer recorded paths with the recorded (older) body, status 200, ignoring
            conditional headers: a freeze/rollback attempt; other paths are forwarded

Modes switch at run time through the control URL on the same port (never forwarded):

  GET /__fault?mode=MODE[&match=SUBSTRING][&count=N][&retry_after=S][&date=1][&stall_s=S]
      match: only requests whose path contains SUBSTRING misbehave (default: all);
      count: only the next N matching requests misbehave, then the mode returns to pass
  GET /__fault/stats   JSON: {"mode":..., "requests":N, "faults":{mode: n}, "recorded":[...]}
  GET /__fault/forget  drop the recordings

Usage: faultproxy.py --upstream http://127.0.0.1:PORT [--listen 127.0.0.1:0]
                     [--port-file FILE] [--mode MODE] [--quiet]
The bound port is written to --port-file (atomically) and printed on stdout.
"""
import argparse
import email.utils
import http.client
import http.server
import json
import os
import re
import sys
import threading
import time
import urllib.parse

HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer",
       "upgrade", "proxy-authenticate", "proxy-authorization"}
MODES = {"pass", "drop", "stall", "truncate", "error500", "error429", "replay"}


class State:
    def __init__(self, upstream, mode):
        u = urllib.parse.urlsplit(upstream)
        if u.scheme != "http" or u.hostname not in ("127.0.0.1", "::1", "localhost"):
            raise SystemExit("faultproxy: --upstream must be http:// on loopback")
        self.host, self.port = u.hostname, u.port or 80
        self.prefix = u.path.rstrip("/")
        self.lock = threading.Lock()
        self.mode, self.match, self.count = mode, "", None
        self.retry_after, self.date, self.stall_s = 2, False, 30.0
        self.requests, self.faults, self.recorded = 0, {}, {}
        self.stopping = threading.Event()

    def pick(self, path):
        """The mode for this request (and consume one of `count`)."""
        with self.lock:
            self.requests += 1
            mode = self.mode
            if mode == "pass" or (self.match and self.match not in path):
                return "pass"
            if mode == "replay" and path not in self.recorded:
                return "pass"
            if self.count is not None:
                self.count -= 1
                if self.count <= 0:
                    self.mode, self.count = "pass", None
            self.faults[mode] = self.faults.get(mode, 0) + 1
            return mode


UNVERSIONED_META = re.compile(r"/metadata/[^/0-9][^/]*\.json$")


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "faultproxy"

    def log_message(self, fmt, *args):
        if not self.server.quiet:
            sys.stderr.write("faultproxy: %s\n" % (fmt % args))

    def do_GET(self):
        self.handle_any()

    def do_HEAD(self):
        self.handle_any()

    def control(self):
        st = self.server.state
        u = urllib.parse.urlsplit(self.path)
        q = dict(urllib.parse.parse_qsl(u.query))
        if u.path == "/__fault":
            mode = q.get("mode", "pass")
            if mode not in MODES:
                return self.reply(400, "unknown mode %r; expected one of %s\n" % (mode, sorted(MODES)))
            with st.lock:
                st.mode, st.match = mode, q.get("match", "")
                st.count = int(q["count"]) if "count" in q else None
                st.retry_after = int(q.get("retry_after", "2"))
                st.date = q.get("date") == "1"
                st.stall_s = float(q.get("stall_s", "30"))
            return self.reply(200, "mode %s\n" % mode)
        if u.path == "/__fault/stats":
            with st.lock:
                body = json.dumps({"mode": st.mode, "match": st.match, "count": st.count,
                                   "requests": st.requests, "faults": st.faults,
                                   "recorded": sorted(st.recorded)})
            return self.reply(200, body + "\n", "application/json")
        if u.path == "/__fault/forget":
            with st.lock:
                st.recorded.clear()
            return self.reply(200, "forgotten\n")
        return self.reply(404, "unknown control path\n")

    def reply(self, status, text, ctype="text/plain", extra=None):
        body = text.encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def upstream(self):
        st = self.server.state
        conn = http.client.HTTPConnection(st.host, st.port, timeout=60)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP}
        conn.request(self.command, st.prefix + self.path, headers=headers)
        resp = conn.getresponse()
        body = resp.read() if self.command != "HEAD" else b""
        hdrs = [(k, v) for k, v in resp.getheaders() if k.lower() not in HOP]
        conn.close()
        return resp.status, hdrs, body

    def send_upstream(self, status, hdrs, body, cut=None):
        self.send_response(status)
        for k, v in hdrs:
            if k.lower() in ("content-length", "date", "server"):
                continue
            self.send_header(k, v)
        length = dict((k.lower(), v) for k, v in hdrs).get("content-length", str(len(body)))
        self.send_header("Content-Length", length)
        if cut is not None:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body if cut is None else body[:cut])
        if cut is not None:
            self.wfile.flush()
            self.close_connection = True

    def handle_any(self):
        if self.path.startswith("/__fault"):
            return self.control()
        st = self.server.state
        path = urllib.parse.urlsplit(self.path).path
        mode = st.pick(path)
        if mode == "drop":
            self.close_connection = True
            return
        if mode == "stall":
            st.stopping.wait(st.stall_s)
            self.close_connection = True
            return
        if mode == "error500":
            return self.reply(500, "injected failure\n")
        if mode == "error429":
            ra = str(st.retry_after)
            if st.date:
                ra = email.utils.formatdate(time.time() + st.retry_after, usegmt=True)
            return self.reply(429, "slow down\n", extra={"Retry-After": ra})
        if mode == "replay":
            with st.lock:
                hdrs, body = st.recorded[path]
            return self.send_upstream(200, [(k, v) for k, v in hdrs if k.lower() != "content-length"]
                                      + [("Content-Length", str(len(body)))], body)
        try:
            status, hdrs, body = self.upstream()
        except OSError as e:
            return self.reply(502, "upstream: %s\n" % e)
        if mode == "pass" and status == 200 and self.command == "GET" and UNVERSIONED_META.search(path):
            with st.lock:
                st.recorded.setdefault(path, (hdrs, body))
        if mode == "truncate" and status in (200, 206) and len(body) > 1:
            return self.send_upstream(status, hdrs, body, cut=len(body) // 2)
        return self.send_upstream(status, hdrs, body)


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def main():
    ap = argparse.ArgumentParser(description="fault-injecting reverse proxy (loopback only)")
    ap.add_argument("--upstream", required=True)
    ap.add_argument("--listen", default="127.0.0.1:0")
    ap.add_argument("--port-file")
    ap.add_argument("--mode", default="pass", choices=sorted(MODES))
    ap.add_argument("--quiet", action="store_true")
    a = ap.parse_args()
    host, _, port = a.listen.rpartition(":")
    if host not in ("127.0.0.1", "localhost"):
        raise SystemExit("faultproxy: listens on 127.0.0.1 only")
    srv = Server((host, int(port)), Handler)
    srv.state = State(a.upstream, a.mode)
    srv.quiet = a.quiet
    bound = srv.server_address[1]
    if a.port_file:
        tmp = a.port_file + ".tmp"
        with open(tmp, "w") as f:
            f.write("%d\n" % bound)
        os.replace(tmp, a.port_file)
    print(bound, flush=True)
    import signal

    def stop(*_):
        srv.state.stopping.set()
        threading.Thread(target=srv.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        srv.serve_forever(poll_interval=0.2)
    finally:
        srv.server_close()


if __name__ == "__main__":
    main()
