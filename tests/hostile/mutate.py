#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Hostile-feed generator: mutations of a valid posgate feed directory.

Given the new feed (NEW, made by posgate-publish) and the previous one (OLD, the version a kiosk
has installed), writes mutated copies of NEW under OUT/NNNN/ (unchanged files hard-linked) and
OUT/manifest.tsv with one line per mutation:

    id <TAB> kiosk <TAB> kind <TAB> file <TAB> description

`kiosk` names who reads the mutated file: "delta" (a kiosk at OLD taking NEW reads the
timestamp, snapshot and targets metadata, the config and the deltas) or "fresh" (a kiosk with
nothing installed reads the metadata, the config and the snapshots). Only files the import
reads are mutated (the lists of files read come from --reads-delta/--reads-fresh, recorded by
the harness), so every mutation is a rejection case unless it leaves the file's meaning intact
(the harness accepts that only when the kiosk then holds exactly NEW).

Kinds: bitflip (sampled positions in every file read), truncate, append, swap-list (a list's
file replaced by another list's of the same kind), swap-version (OLD's file copied over NEW's
under NEW's name: metadata of the previous version, an old snapshot under the new name),
delta-dup and delta-swap (byte ranges of a delta body duplicated or exchanged: records
repeated or reordered, since re-encoding needs the keys), oversize (length, version and count
fields in metadata JSON set huge or negative, and the count fields of body headers).
Deterministic for a given --seed.
"""
import argparse
import json
import os
import random
import re
import shutil
import struct
import sys


def rel_files(root):
    out = []
    for d, _, fs in os.walk(root):
        for f in fs:
            out.append(os.path.relpath(os.path.join(d, f), root))
    return sorted(out)


class Gen:
    def __init__(self, new, old, out, rng):
        self.new, self.old, self.out, self.rng = new, old, out, rng
        self.n = 0
        self.manifest = []
        self.files = rel_files(new)

    def emit(self, kiosk, kind, rel, desc, data=None, copy_from=None):
        """A mutated copy of NEW with rel replaced by data (bytes) or by the file copy_from."""
        self.n += 1
        mid = "%04d" % self.n
        dst = os.path.join(self.out, mid)
        for f in self.files:
            p = os.path.join(dst, f)
            os.makedirs(os.path.dirname(p), exist_ok=True)
            if f != rel:
                os.link(os.path.join(self.new, f), p)
        p = os.path.join(dst, rel)
        if copy_from is not None:
            shutil.copyfile(copy_from, p)
        else:
            with open(p, "wb") as fh:
                fh.write(data)
        self.manifest.append("\t".join((mid, kiosk, kind, rel, desc)))

    def read(self, rel, root=None):
        with open(os.path.join(root or self.new, rel), "rb") as fh:
            return fh.read()

    # --- kinds

    def bitflips(self, kiosk, rel, count):
        data = self.read(rel)
        if not data:
            return
        positions = set()
        # the start (magic, header, JSON opening), the end (trailer) and samples between
        for p in list(range(min(8, len(data)))) + [len(data) - 1, len(data) // 2]:
            positions.add(p)
        while len(positions) < min(count, len(data)):
            positions.add(self.rng.randrange(len(data)))
        for p in sorted(positions)[:count]:
            b = self.rng.randrange(8)
            m = bytearray(data)
            m[p] ^= 1 << b
            self.emit(kiosk, "bitflip", rel, "byte %d bit %d" % (p, b), bytes(m))

    def truncations(self, kiosk, rel):
        data = self.read(rel)
        for n in sorted({0, 1, len(data) // 2, max(len(data) - 1, 0)}):
            if n < len(data):
                self.emit(kiosk, "truncate", rel, "to %d of %d bytes" % (n, len(data)), data[:n])

    def appends(self, kiosk, rel):
        data = self.read(rel)
        for tail, what in ((b"\x00", "a NUL"), (b"{}", "'{}'"),
                           (bytes(self.rng.randrange(256) for _ in range(100)), "100 random bytes")):
            self.emit(kiosk, "append", rel, "appended " + what, data + tail)

    def swap_lists(self, kiosk, rels):
        # a list's delta (or snapshot) replaced by another list's, keeping the name
        for a in rels:
            for b in rels:
                la, lb = a.split("/")[2], b.split("/")[2]
                if la != lb:
                    self.emit(kiosk, "swap-list", a, "content of " + b, copy_from=os.path.join(self.new, b))
                    break

    def swap_versions(self, kiosk, rels):
        old_files = rel_files(self.old)
        for rel in rels:
            base = os.path.basename(rel)
            if rel.startswith("metadata/"):
                # the same role's previous version under the new name
                role = re.sub(r"^\d+\.", "", base)
                cands = [f for f in old_files if f.startswith("metadata/") and
                         re.sub(r"^\d+\.", "", os.path.basename(f)) == role and f != rel]
                cands += [f for f in old_files if f == rel]
            else:
                # an old snapshot (or delta) of the same list under the new name
                lst = rel.split("/")[:3]
                kind = "snapshot" if ".snapshot-" in base else "delta"
                cands = [f for f in old_files if f.split("/")[:3] == lst and ("." + kind + "-") in f]
            for c in cands[:1]:
                if self.read(c, self.old) != self.read(rel):
                    self.emit(kiosk, "swap-version", rel, "previous version's " + c,
                              copy_from=os.path.join(self.old, c))

    def delta_ops(self, kiosk, rel):
        data = self.read(rel)
        # header: magic 4, ver 1, flg 1, idn 1, list id, 5 u64, 2 digests; trailer 20 bytes
        idn = data[6] if len(data) > 7 else 0
        start, end = 7 + idn + 40 + 64, len(data) - 20
        if end - start < 16:
            return
        for _ in range(3):
            k = self.rng.randrange(4, min(40, (end - start) // 2) + 1)
            i = self.rng.randrange(start, end - k)
            j = self.rng.randrange(start, end - k)
            m = bytearray(data)
            m[j:j + k] = data[i:i + k]
            self.emit(kiosk, "delta-dup", rel, "%d bytes at %d repeated at %d" % (k, i, j), bytes(m))
            if abs(i - j) >= k:
                m = bytearray(data)
                m[i:i + k], m[j:j + k] = data[j:j + k], data[i:i + k]
                self.emit(kiosk, "delta-swap", rel, "%d bytes at %d and %d exchanged" % (k, i, j), bytes(m))

    def oversize_json(self, kiosk, rel):
        text = self.read(rel).decode("utf-8", "replace")
        for field in ("length", "version", "threshold", "spec_version"):
            for val in ("18446744073709551615", "-1", "1e308", "99999999999999999999999999"):
                pat = re.compile(r'("%s"\s*:\s*)("?)[-0-9.e+a-z]+("?)' % field)
                if pat.search(text):
                    new = pat.sub(lambda mo: mo.group(1) + val, text, count=1)
                    if new != text:
                        self.emit(kiosk, "oversize", rel, "first %s set to %s" % (field, val),
                                  new.encode())
                    break

    def oversize_body(self, kiosk, rel):
        data = self.read(rel)
        if len(data) < 8:
            return
        idn = data[6]
        off = 7 + idn
        if data[:4] == b"PGSN":
            fields = {"count": off + 8}
        else:
            fields = {"removals": off + 16, "additions": off + 24}
        for name, at in fields.items():
            for val in (2 ** 64 - 1, 1000000001, 0):
                if at + 8 <= len(data):
                    m = bytearray(data)
                    m[at:at + 8] = struct.pack(">Q", val)
                    if bytes(m) != data:
                        self.emit(kiosk, "oversize", rel, "header %s set to %d" % (name, val), bytes(m))
        # the trailer's count (after "PGEN")
        t = data.rfind(b"PGEN")
        if t > 0 and t + 12 <= len(data):
            m = bytearray(data)
            m[t + 4:t + 12] = struct.pack(">Q", 2 ** 63)
            self.emit(kiosk, "oversize", rel, "trailer count set to 2^63", bytes(m))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--new", required=True, help="the feed directory to mutate")
    ap.add_argument("--old", required=True, help="the previous version's feed directory")
    ap.add_argument("--reads-delta", required=True, help="file: paths a kiosk at OLD reads")
    ap.add_argument("--reads-fresh", required=True, help="file: paths a fresh kiosk reads")
    ap.add_argument("--out", required=True)
    ap.add_argument("--max", type=int, default=300, help="at most this many mutations")
    ap.add_argument("--flips", type=int, default=6, help="bit flips per file")
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    rng = random.Random(a.seed)
    os.makedirs(a.out, exist_ok=True)
    g = Gen(a.new, a.old, a.out, rng)
    reads = {}
    for kiosk, path in (("delta", a.reads_delta), ("fresh", a.reads_fresh)):
        with open(path) as fh:
            reads[kiosk] = [l.strip() for l in fh if l.strip() and l.strip() in g.files]
    plan = []
    seen = set()
    for kiosk in ("delta", "fresh"):
        for rel in reads[kiosk]:
            if rel in seen:
                continue            # a file both read is mutated once, for the first kiosk
            seen.add(rel)
            plan.append(lambda k=kiosk, r=rel: g.bitflips(k, r, a.flips))
            plan.append(lambda k=kiosk, r=rel: g.truncations(k, r))
            plan.append(lambda k=kiosk, r=rel: g.appends(k, r))
            if rel.endswith(".json"):
                plan.append(lambda k=kiosk, r=rel: g.oversize_json(k, r))
            elif rel.endswith(".pgd"):
                plan.append(lambda k=kiosk, r=rel: g.delta_ops(k, r))
                plan.append(lambda k=kiosk, r=rel: g.oversize_body(k, r))
            elif rel.endswith(".pgs"):
                plan.append(lambda k=kiosk, r=rel: g.oversize_body(k, r))
        lists = [r for r in reads[kiosk] if r.startswith("targets/lists/")]
        plan.append(lambda k=kiosk, l=lists: g.swap_lists(k, l))
        plan.append(lambda k=kiosk, r=reads[kiosk]: g.swap_versions(k, r))
    # run every generator into a scratch list, then keep a spread sample of at most --max
    for step in plan:
        step()
    keep = list(range(len(g.manifest)))
    if len(keep) > a.max:
        # every kind keeps a share: sample evenly over the manifest order
        keep = sorted(rng.sample(keep, a.max))
    kept = set(keep)
    lines = []
    for i, line in enumerate(g.manifest):
        mid = line.split("\t")[0]
        if i in kept:
            lines.append(line)
        else:
            shutil.rmtree(os.path.join(a.out, mid))
    with open(os.path.join(a.out, "manifest.tsv"), "w") as fh:
        fh.write("\n".join(lines) + "\n")
    kinds = {}
    for l in lines:
        kinds[l.split("\t")[2]] = kinds.get(l.split("\t")[2], 0) + 1
    print("mutate: %d mutations (%s) of %d generated" %
          (len(lines), ", ".join("%s %d" % kv for kv in sorted(kinds.items())), len(g.manifest)))


if __name__ == "__main__":
    sys.exit(main())
