#!/usr/bin/env python3
"""Same-card ratios: `lmk bench --json` against llama.cpp's test-backend-ops (scripts/peer-llama.sh)
and cuBLAS (scripts/peer-cublas.py) outputs from the same GPU machine.

usage: peer-compare.py LMK.json [LLAMA_MUL_MAT.txt] [LLAMA_MUL_MAT_ID.txt] [CUBLAS.txt]
For each lmk case with a llama.cpp twin: our time by llama.cpp's own method (a CUDA graph where
ggml-cuda uses one, else back to back: bench/peers.h peer_in_cuda_graph), llama.cpp's, the ratio.
Cases with M = 16 / 32 / 512 also get cuBLAS (bf16 activations, and f32 ones converted first),
cold against cold."""
import json
import re
import sys

lmk = json.load(open(sys.argv[1]))
texts = [open(p).read() for p in sys.argv[2:]]
llama, cublas = {}, {}
for t in texts:
    for m in re.finditer(r"MUL_MAT\(type_a=(\w+),type_b=f32,m=4096,n=(\d+),k=14336,.*?([\d.]+) us/run", t):
        llama[("mm", m[1], int(m[2]))] = float(m[3])
    for m in re.finditer(r"MUL_MAT_ID\(type_a=(\w+),type_b=f32,n_mats=128,n_used=8,b=0,m=768,n=(\d+),k=2048,.*?([\d.]+) us/run", t):
        llama[("id", m[1], int(m[2]))] = float(m[3])
    for m in re.finditer(r"M=\s*(\d+)\s+bf16 x: cold\s+([\d.]+) us\s+b2b\s+([\d.]+) us(?:.*?cold\s+([\d.]+)\s+b2b\s+([\d.]+))?", t):
        cublas[int(m[1])] = (float(m[2]), float(m[4]) if m[4] else 0.0)

# The ops whose contract matches llama.cpp's MUL_MAT / MUL_MAT_ID on these shapes (the raw-block
# and MLX affine ops have no twin there).
COMPARED = {"dense_gemv_bf16", "dense_mm", "quantized_matmul_ggml_packed", "quantized_matmul_id_ggml_packed"}
print(f"{lmk['device']}, copy {lmk['copy_gbps']:.0f} GB/s")
print(f"{'op':32} {'case':36} {'ours µs':>9} {'how':>5} {'llama.cpp':>9} {'ratio':>6}   {'cold':>7} {'cuBLAS':>7} {'ratio':>6} {'cvt+cuBLAS':>10} {'ratio':>6}")
for r in lmk["results"]:
    op, case = r["op"], r["case"]
    mm = re.match(r"(\w+) (\d+)x4096x14336$", case)
    mi = re.match(r"(\w+) T(\d+) E128 k8 768x2048$", case)
    key = ("mm", mm[1], int(mm[2])) if mm else ("id", mi[1], int(mi[2])) if mi else None
    if key is None or op not in COMPARED:
        continue
    rows = key[2]
    line, has = f"{op:32} {case:36}", False
    if key in llama:
        graph = key[0] == "mm" or rows == 1
        ours = r["graph_us"] if graph and r["graph_us"] else r["b2b_us"]
        line += f" {ours:9.2f} {'graph' if graph else 'b2b':>5} {llama[key]:9.2f} {llama[key] / ours:5.2f}x" if ours else " " * 32
        has = has or bool(ours)
    else:
        line += " " * 32
    if key[0] == "mm" and rows in cublas and rows >= 16:
        c, cv = cublas[rows]
        line += f"   {r['us']:7.2f} {c:7.2f} {c / r['us']:5.2f}x {cv:10.2f} {cv / r['us']:5.2f}x"
        has = True
    if has:
        print(line.rstrip())
