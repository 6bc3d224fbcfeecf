#!/usr/bin/env python3
"""safetensors interop: files written by the `safetensors` package (numpy API) are read by
lmkernels (interop_tool st-dump) and compared byte for byte; files written by lmkernels' test
writer are loaded by safetensors.

usage: safetensors_interop.py INTEROP_TOOL WORKDIR   (exit 77 = skipped: packages missing)
"""
import json
import os
import subprocess
import sys

try:
    import numpy as np
    from safetensors.numpy import load_file, save_file
except ImportError as e:  # pragma: no cover
    print(f"SKIP: python packages missing ({e}); install with: pip install gguf safetensors numpy")
    sys.exit(77)

TOOL, WORK = sys.argv[1], sys.argv[2]
os.makedirs(WORK, exist_ok=True)
rng = np.random.default_rng(7)
failures = []


def check(cond, msg):
    if not cond:
        failures.append(msg)
        print("FAIL:", msg)


def run_tool(*args, expect_ok=True):
    p = subprocess.run([TOOL, *args], capture_output=True, text=True)
    if expect_ok and p.returncode != 0:
        raise SystemExit(f"interop_tool {' '.join(args)} failed ({p.returncode}): {p.stderr}")
    return p


NAMES = {np.float32: "F32", np.float16: "F16", np.float64: "F64", np.int8: "I8", np.int16: "I16",
         np.int32: "I32", np.int64: "I64", np.uint8: "U8", np.uint16: "U16", np.uint32: "U32",
         np.uint64: "U64", np.bool_: "BOOL"}
arrays = {
    "model.embed.weight": rng.standard_normal((7, 5)).astype(np.float32),
    "h": rng.standard_normal((3,)).astype(np.float16),
    "d": rng.standard_normal((2, 2)).astype(np.float64),
    "i8": rng.integers(-128, 128, (9,), dtype=np.int8),
    "i16": rng.integers(-999, 999, (3, 1), dtype=np.int16),
    "i32": rng.integers(-2**31, 2**31 - 1, (4,), dtype=np.int32),
    "i64": rng.integers(-2**62, 2**62, (2,), dtype=np.int64),
    "u8": rng.integers(0, 256, (1, 1, 5), dtype=np.uint8),
    "u16": rng.integers(0, 65536, (3,), dtype=np.uint16),
    "layer.0.weight": rng.integers(0, 2**32, (4, 8), dtype=np.uint32),  # MLX-packed style
    "u64": rng.integers(0, 2**63, (2,), dtype=np.uint64),
    "flags": rng.integers(0, 2, (5,)).astype(np.bool_),
    "scalar": np.array(3.5, dtype=np.float32),
    "empty": np.zeros((0, 3), dtype=np.float32),
}
meta = {"format": "np", "note": "ünïcode \"quoted\""}
path = os.path.join(WORK, "from_safetensors.safetensors")
save_file(arrays, path, metadata=meta)

outdir = os.path.join(WORK, "st_dump")
os.makedirs(outdir, exist_ok=True)
info = json.loads(run_tool("st-dump", path, outdir).stdout)
check(info["metadata"] == meta, f"metadata {info['metadata']}")
got = {t["name"]: (i, t) for i, t in enumerate(info["tensors"])}
check(set(got) == set(arrays), f"names {sorted(got)}")
for name, arr in arrays.items():
    if name not in got:
        continue
    i, t = got[name]
    check(t["dtype"] == NAMES[arr.dtype.type], f"{name}: dtype {t['dtype']}")
    check(t["shape"] == list(arr.shape), f"{name}: shape {t['shape']} != {list(arr.shape)}")
    raw = open(os.path.join(outdir, f"{i}.bin"), "rb").read()
    check(raw == arr.astype(arr.dtype.newbyteorder("<")).tobytes(), f"{name}: bytes differ")

# Corruptions of a package-written file are Format errors, never crashes.
data = open(path, "rb").read()
bad = os.path.join(WORK, "bad.safetensors")
for cut in (4, 9, len(data) // 2, len(data) - 1):
    open(bad, "wb").write(data[:cut])
    p = run_tool("st-dump", bad, outdir, expect_ok=False)
    check(p.returncode == 1 and "Format" in p.stderr, f"truncated at {cut}: {p.returncode} {p.stderr}")
n = int.from_bytes(data[:8], "little")
hdr = data[8:8 + n].decode()
dup = hdr.replace('"format":"np"', '"format":"np","format":"np"', 1)
if dup != hdr:
    open(bad, "wb").write(len(dup.encode()).to_bytes(8, "little") + dup.encode() + data[8 + n:])
    p = run_tool("st-dump", bad, outdir, expect_ok=False)
    check(p.returncode == 1 and "duplicate" in p.stderr, f"duplicate metadata key: {p.stderr}")

# lmkernels' test writer -> safetensors.
run_tool("write-sample", WORK)
loaded = load_file(os.path.join(WORK, "sample.safetensors"))
check(np.array_equal(loaded["a"], (np.arange(6, dtype=np.float32) * 0.5 - 3.0).reshape(2, 3)), "sample a")
check(np.array_equal(loaded["b"], np.array([1, -2], dtype=np.int64)), "sample b")
check(np.array_equal(loaded["c"], np.array([7, 8, 9], dtype=np.uint8)), "sample c")

print(f"{len(failures)} failed" if failures else "safetensors interop: all checks passed")
sys.exit(1 if failures else 0)
