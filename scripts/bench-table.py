#!/usr/bin/env python3
"""One table from several `lmk bench --json` files: every case's time per label, per round.

usage: bench-table.py TITLE LABEL=a.json[,b.json...] [LABEL=...]
Each cell: the cold times of the rounds (b2b, then graph, in brackets where taken) and the best cold time's
ratio to the first label. Used by ab-bench.sh (labels: source trees) and env-sweep.sh (values).
"""
import json
import os
import sys

title, specs = sys.argv[1], sys.argv[2:]
labels, runs, device = [], {}, ""
for spec in specs:
    label, files = spec.split("=", 1)
    labels.append(label)
    for path in files.split(","):
        if not os.path.exists(path):
            continue
        d = json.load(open(path))
        device = f"{d['device']}, copy {d['copy_gbps']:.0f} GB/s"
        for x in d["results"]:
            runs.setdefault((x["op"], x["case"]), {}).setdefault(label, []).append((x["us"], x.get("b2b_us", 0), x.get("graph_us", 0)))
width = max(24, max(len(l) for l in labels) + 2)
print(f"{title} on {device}: µs per round (b2b, graph) / best ratio to {labels[0]}")
print(f"{'op':32} {'case':36} " + " ".join(f"{l:>{width}}" for l in labels))
for (op, case), per in runs.items():
    base = min((t[0] for t in per.get(labels[0], [])), default=0) or None
    cols = []
    for l in labels:
        t = per.get(l)
        if not t:
            cols.append(f"{'-':>{width}}")
            continue
        cell = "/".join(f"{c:.1f}" + (f"({b:.1f}" + (f",{g:.1f}" if g else "") + ")" if b else "") for c, b, g in t)
        ratio = f" {min(c[0] for c in t) / base:4.2f}x" if base else ""
        cols.append(f"{cell + ratio:>{width}}")
    print(f"{op[:32]:32} {case[:36]:36} " + " ".join(cols))
