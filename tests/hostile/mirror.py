#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""A malicious feed mirror for tests/hostile/updates.sh (Python 3 standard library, plus the
`cryptography` package for the one mode that re-signs a timestamp).

Serves a feed directory on 127.0.0.1 only, like a static web server (ETag, Last-Modified,
single byte ranges with If-Range, 404 for missing files), and misbehaves in one MODE:

  good              an honest mirror
  badbytes          every file but root and timestamp: the right length, every byte flipped
  garbage           metadata other than root and timestamp: the right length of non-JSON
  gzip              every body gzip-encoded (Content-Encoding: gzip), whatever was asked
  drip              every body sent one byte per --drip-s seconds (the slow retrieval attack)
  hang              accepts, reads the request and never answers
  cut               target bodies stop half-way (the connection closes): leaves a part file
  range-other-etag  a Range request gets 206 with another ETag and bytes of nothing
  bigsnap           timestamp.json re-signed with --key, its version raised and the snapshot's
                    length declared 2^40; the snapshot is then an endless body

Bounded in time: the process exits after --max-seconds whatever it is doing. Each request is
logged to --log as "METHOD PATH RANGE" lines (used by the test to count what was asked).
Usage: mirror.py --root FEED --port-file F [--mode MODE] [--key feed.key] [--max-seconds S]
"""
import argparse
import gzip
import hashlib
import json
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ARGS = None
LOG_LOCK = threading.Lock()


def log(line):
    if ARGS.log:
        with LOG_LOCK, open(ARGS.log, "a") as f:
            f.write(line + "\n")


def resign_timestamp(raw):
    """The honest timestamp with its version raised and a 2^40-byte snapshot, signed again."""
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    env = json.loads(raw)
    signed = env["signed"]
    signed["version"] += 1000
    signed["meta"]["snapshot.json"]["length"] = 1 << 40
    signed["meta"]["snapshot.json"].pop("hashes", None)
    with open(ARGS.key, "rb") as f:
        key = serialization.load_pem_private_key(f.read(), password=None)
    canon = json.dumps(signed, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    sig = key.sign(canon.encode(), ec.ECDSA(hashes.SHA256()))
    env["signatures"] = [{"keyid": env["signatures"][0]["keyid"], "sig": sig.hex()}]
    return json.dumps(env, separators=(",", ":")).encode()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):  # quiet: the test reads --log
        pass

    def send_body(self, code, body, headers=()):
        self.send_response(code)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_HEAD(self):
        self.do_GET()

    def do_GET(self):
        try:
            self.serve()
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client gave up: that is the point of most modes

    def serve(self):
        mode = ARGS.mode
        rng = self.headers.get("Range", "")
        log("%s %s %s" % (self.command, self.path, rng))
        rel = self.path.split("?", 1)[0].lstrip("/")
        path = os.path.realpath(os.path.join(ARGS.root, rel))
        if not path.startswith(os.path.realpath(ARGS.root) + os.sep) or not os.path.isfile(path):
            self.send_body(404, b"not found")
            return
        if mode == "hang":
            time.sleep(ARGS.max_seconds)
            return
        with open(path, "rb") as f:
            body = f.read()
        st = os.stat(path)
        etag = '"%x-%x"' % (st.st_size, st.st_mtime_ns)
        name = os.path.basename(rel)
        is_meta = rel.startswith("metadata/")
        trusted_kind = name.endswith("root.json") or name == "timestamp.json"
        if mode == "bigsnap" and name == "timestamp.json":
            self.send_body(200, resign_timestamp(body), [("ETag", '"bigsnap"')])
            return
        if mode == "bigsnap" and name.endswith(".snapshot.json"):
            self.endless()
            return
        if mode == "badbytes" and not trusted_kind:
            body = bytes(b ^ 0xFF for b in body)
        if mode == "garbage" and is_meta and not trusted_kind:
            body = (b"<html>not metadata</html>" + b"x" * len(body))[: len(body)]
        headers = [("ETag", etag), ("Accept-Ranges", "bytes")]
        if rng.startswith("bytes=") and rng.endswith("-"):
            first = int(rng[6:-1])
            if_range = self.headers.get("If-Range")
            if mode == "range-other-etag":
                rest = os.urandom(max(len(body) - first, 0))
                self.send_body(206, rest, [("ETag", '"other"'), ("Content-Range", "bytes %d-%d/%d" % (first, len(body) - 1, len(body)))])
                return
            if (if_range is None or if_range == etag) and first < len(body):
                headers.append(("Content-Range", "bytes %d-%d/%d" % (first, len(body) - 1, len(body))))
                self.send_body(206, body[first:], headers)
                return
        if mode == "gzip":
            self.send_body(200, gzip.compress(body), headers + [("Content-Encoding", "gzip")])
            return
        if mode == "drip":
            self.send_response(200)
            for k, v in headers:
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            for i in range(len(body)):
                self.wfile.write(body[i : i + 1])
                self.wfile.flush()
                time.sleep(ARGS.drip_s)
            return
        if mode == "cut" and rel.startswith("targets/") and len(body) > 64:
            self.send_response(200)
            for k, v in headers:
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        self.send_body(200, body, headers)

    def endless(self):
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        chunk = b" " * 65536
        try:
            while True:
                self.wfile.write(chunk)
        except OSError:
            pass
        self.close_connection = True


def main():
    global ARGS
    p = argparse.ArgumentParser()
    p.add_argument("--root", required=True)
    p.add_argument("--port-file", required=True)
    p.add_argument("--mode", default="good")
    p.add_argument("--key")
    p.add_argument("--log")
    p.add_argument("--drip-s", type=float, default=0.3)
    p.add_argument("--max-seconds", type=float, default=170)
    ARGS = p.parse_args()
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    srv.daemon_threads = True
    timer = threading.Timer(ARGS.max_seconds, lambda: os._exit(0))
    timer.daemon = True
    timer.start()
    with open(ARGS.port_file + ".tmp", "w") as f:
        f.write(str(srv.server_address[1]))
    os.rename(ARGS.port_file + ".tmp", ARGS.port_file)
    srv.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
