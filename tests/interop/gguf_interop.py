#!/usr/bin/env python3
"""GGUF interop: files written by the `gguf` package (PyPI) are read by lmkernels
(interop_tool gguf-dump) and compared with gguf's own reader and dequantization; files written
by lmkernels' test writer are read back by gguf's reader.

usage: gguf_interop.py INTEROP_TOOL WORKDIR      (exit 77 = skipped: packages missing)
"""
import json
import os
import subprocess
import sys

try:
    import numpy as np
    import gguf
    from gguf import GGMLQuantizationType as Q
    from gguf.constants import GGUFValueType as V
except ImportError as e:  # pragma: no cover
    print(f"SKIP: python packages missing ({e}); install with: pip install gguf safetensors numpy")
    sys.exit(77)

TOOL, WORK = sys.argv[1], sys.argv[2]
os.makedirs(WORK, exist_ok=True)
rng = np.random.default_rng(20240611)
failures = []


def check(cond, msg):
    if not cond:
        failures.append(msg)
        print("FAIL:", msg)


# Block size, bytes, and the byte offsets of f16 scale fields (quant-formats.md §2/§3):
# (offset, allow_negative).
BLOCKS = {
    Q.Q4_0: (32, 18, [(0, True)]),
    Q.Q5_0: (32, 22, [(0, True)]),
    Q.Q5_1: (32, 24, [(0, False), (2, True)]),
    Q.Q8_0: (32, 34, [(0, True)]),
    Q.IQ4_NL: (32, 18, [(0, True)]),
    Q.Q2_K: (256, 84, [(80, False), (82, False)]),
    Q.Q4_K: (256, 144, [(0, False), (2, False)]),
    Q.Q5_K: (256, 176, [(0, False), (2, False)]),
    Q.Q6_K: (256, 210, [(208, False)]),
    Q.IQ4_XS: (256, 136, [(0, True)]),
}


def random_blocks(qtype, rows, cols):
    """Random valid blocks: random bytes, f16 scales in [1e-4, 1e-1] (spec §3 recipe)."""
    qk, nbytes, fields = BLOCKS[qtype]
    nb = rows * cols // qk
    raw = rng.integers(0, 256, size=(nb, nbytes), dtype=np.uint8)
    for off, neg in fields:
        mag = np.exp(rng.uniform(np.log(1e-4), np.log(1e-1), size=nb)).astype(np.float16)
        if neg:
            mag = np.where(rng.integers(0, 2, size=nb) == 1, -mag, mag).astype(np.float16)
        raw[:, off:off + 2] = mag.view(np.uint8).reshape(nb, 2)
    return raw.reshape(rows, cols // qk * nbytes)


def run_tool(*args, expect_ok=True):
    p = subprocess.run([TOOL, *args], capture_output=True, text=True)
    if expect_ok and p.returncode != 0:
        raise SystemExit(f"interop_tool {' '.join(args)} failed ({p.returncode}): {p.stderr}")
    return p


def bits_equal(a, b):
    a = np.ascontiguousarray(a, dtype=np.float32).reshape(-1)
    b = np.ascontiguousarray(b, dtype=np.float32).reshape(-1)
    if a.shape != b.shape:
        return False, f"shape {a.shape} vs {b.shape}"
    same = (a.view(np.uint32) == b.view(np.uint32)) | (np.isnan(a) & np.isnan(b))
    if same.all():
        return True, ""
    i = int(np.argmin(same))
    return False, f"{int((~same).sum())} of {a.size} differ, first at {i}: lmk {a[i]!r} vs gguf {b[i]!r}"


# ---- 1. gguf-written file -> lmkernels ----
path = os.path.join(WORK, "from_gguf.gguf")
w = gguf.GGUFWriter(path, arch="llama")
meta = {}  # key -> (type name, value)
def add(kind, key, value, fn):
    fn(key, value)
    meta[key] = (kind, value)
add("UINT8", "t.u8", 250, w.add_uint8)
add("INT8", "t.i8", -7, w.add_int8)
add("UINT16", "t.u16", 65000, w.add_uint16)
add("INT16", "t.i16", -1234, w.add_int16)
add("UINT32", "t.u32", 4000000000, w.add_uint32)
add("INT32", "t.i32", -123456, w.add_int32)
add("FLOAT32", "t.f32", 0.1, w.add_float32)
add("UINT64", "t.u64", 2**50 + 3, w.add_uint64)
add("INT64", "t.i64", -(2**45), w.add_int64)
add("FLOAT64", "t.f64", 1.0 / 3.0, w.add_float64)
add("BOOL", "t.bool", True, w.add_bool)
add("STRING", "t.str", "héllo \"world\"\n", w.add_string)
w.add_key_value("t.arr_i32", [1, -2, 3], V.ARRAY, V.INT32); meta["t.arr_i32"] = ("ARRAY", [1, -2, 3])
w.add_key_value("t.arr_u16", [7, 8], V.ARRAY, V.UINT16); meta["t.arr_u16"] = ("ARRAY", [7, 8])
w.add_key_value("t.arr_f32", [0.5, -2.0], V.ARRAY, V.FLOAT32); meta["t.arr_f32"] = ("ARRAY", [0.5, -2.0])
w.add_key_value("t.arr_str", ["a", "ü", ""], V.ARRAY, V.STRING); meta["t.arr_str"] = ("ARRAY", ["a", "ü", ""])

tensors = []  # (name, qtype, stored array, expected f32 values)
def add_tensor(name, arr, qtype=None):
    if qtype is None:
        w.add_tensor(name, arr)
        expected = arr.astype(np.float32)
        qt = {np.dtype(np.float32): Q.F32, np.dtype(np.float16): Q.F16, np.dtype(np.int8): Q.I8,
              np.dtype(np.int16): Q.I16, np.dtype(np.int32): Q.I32, np.dtype(np.float64): Q.F64}[arr.dtype]
    else:
        w.add_tensor(name, arr, raw_dtype=qtype)
        expected = gguf.quants.dequantize(arr, qtype)
        qt = qtype
    tensors.append((name, qt, arr, expected))

add_tensor("f32", rng.standard_normal((3, 5)).astype(np.float32))
add_tensor("f16", rng.standard_normal((2, 8)).astype(np.float16))
add_tensor("f64", rng.standard_normal((4,)).astype(np.float64))
add_tensor("i8", rng.integers(-128, 128, size=(6,), dtype=np.int8))
add_tensor("i16", rng.integers(-30000, 30000, size=(2, 3), dtype=np.int16))
add_tensor("i32", rng.integers(-2**31, 2**31 - 1, size=(5,), dtype=np.int32))
add_tensor("bf16", gguf.quants.quantize(rng.standard_normal((2, 4)).astype(np.float32), Q.BF16), Q.BF16)
# gguf's own quantizers (Q4_0, Q5_0, Q5_1, Q8_0), then raw valid blocks for every REQ format.
for qt in (Q.Q4_0, Q.Q5_0, Q.Q5_1, Q.Q8_0):
    x = (rng.standard_normal((4, 96)) * 3).astype(np.float32)
    add_tensor(f"quantized_{qt.name}", gguf.quants.quantize(x, qt), qt)
for qt, (qk, _, _) in BLOCKS.items():
    add_tensor(f"blocks_{qt.name}", random_blocks(qt, 3, qk * 3), qt)

w.write_header_to_file()
w.write_kv_data_to_file()
w.write_tensors_to_file()
w.close()

outdir = os.path.join(WORK, "dump1")
os.makedirs(outdir, exist_ok=True)
info = json.loads(run_tool("gguf-dump", path, outdir).stdout)
reader = gguf.GGUFReader(path)
check(info["version"] == 3, f"version {info['version']}")

# Metadata: every key gguf wrote (general.architecture first), with its type and value.
kv = {e["key"]: e for e in info["kv"]}
check(kv.get("general.architecture", {}).get("value") == "llama", "general.architecture")
for key, (kind, value) in meta.items():
    e = kv.get(key)
    if e is None:
        check(False, f"key {key} missing")
        continue
    check(e["type"] == kind, f"{key}: type {e['type']} != {kind}")
    got = e["value"]
    if kind == "FLOAT32":
        check(got == float(np.float32(value)), f"{key}: {got} != {value}")
    elif kind == "ARRAY" and isinstance(value[0], float):
        check(got == [float(np.float32(v)) for v in value], f"{key}: {got} != {value}")
    else:
        check(got == value, f"{key}: {got!r} != {value!r}")
reader_keys = [k for k in reader.fields if not k.startswith("GGUF.")]
check([e["key"] for e in info["kv"]] == reader_keys, "key order differs from GGUFReader")

# Tensors: order, type, ne, offsets (vs GGUFReader), values (vs gguf.quants.dequantize).
check(len(info["tensors"]) == len(tensors), "tensor count")
rt = {t.name: t for t in reader.tensors}
for i, (name, qt, arr, expected) in enumerate(tensors):
    t = info["tensors"][i]
    check(t["name"] == name, f"tensor {i}: name {t['name']} != {name}")
    check(t["ggml_type"] == int(qt), f"{name}: type {t['ggml_type']} != {int(qt)}")
    r = rt[name]
    check(t["ne"] == [int(d) for d in r.shape], f"{name}: ne {t['ne']} != {list(r.shape)}")
    check(t["file_offset"] == int(r.data_offset), f"{name}: file offset {t['file_offset']} != {r.data_offset}")
    check(t["nbytes"] == int(r.n_bytes), f"{name}: nbytes {t['nbytes']} != {r.n_bytes}")
    got = np.fromfile(os.path.join(outdir, f"{i}.f32"), dtype="<f4")
    ok, why = bits_equal(got, expected)
    check(ok, f"{name} ({qt.name}): values differ from gguf: {why}")

# ---- 2. custom alignment and an I64 tensor (lmkernels rejects I64 per the spec) ----
path2 = os.path.join(WORK, "align64.gguf")
w = gguf.GGUFWriter(path2, arch="llama")
w.add_custom_alignment(64)
w.add_tensor("a", np.arange(7, dtype=np.float32))
w.add_tensor("b", np.arange(3, dtype=np.float16))
w.write_header_to_file(); w.write_kv_data_to_file(); w.write_tensors_to_file(); w.close()
outdir2 = os.path.join(WORK, "dump2")
os.makedirs(outdir2, exist_ok=True)
info2 = json.loads(run_tool("gguf-dump", path2, outdir2).stdout)
check(info2["alignment"] == 64, f"alignment {info2['alignment']}")
r2 = gguf.GGUFReader(path2)
check([t["file_offset"] for t in info2["tensors"]] == [int(t.data_offset) for t in r2.tensors], "aligned offsets")

path3 = os.path.join(WORK, "i64.gguf")
w = gguf.GGUFWriter(path3, arch="llama")
w.add_tensor("x", np.arange(4, dtype=np.int64))
w.write_header_to_file(); w.write_kv_data_to_file(); w.write_tensors_to_file(); w.close()
p = run_tool("gguf-dump", path3, outdir2, expect_ok=False)
check(p.returncode == 1 and "unsupported ggml type 27 (i64) for tensor 'x'" in p.stderr, f"I64: {p.stderr}")

# Truncated gguf-written file -> Format error, no crash.
with open(path, "rb") as f:
    data = f.read()
trunc = os.path.join(WORK, "trunc.gguf")
data_end = max(int(t.data_offset) + int(t.n_bytes) for t in reader.tensors)  # gguf pads after the last tensor
for cut in (10, 100, len(data) // 2, data_end - 1):
    with open(trunc, "wb") as f:
        f.write(data[:cut])
    p = run_tool("gguf-dump", trunc, outdir2, expect_ok=False)
    check(p.returncode == 1 and "Format" in p.stderr, f"truncated at {cut}: rc {p.returncode} {p.stderr}")

# ---- 3. lmkernels' test writer -> gguf's reader ----
run_tool("write-sample", WORK)
r = gguf.GGUFReader(os.path.join(WORK, "sample.gguf"))
names = [t.name for t in r.tensors]
check(names == ["t.f32", "t.q4_0"], f"sample tensors {names}")
t0 = r.tensors[0]
check(list(t0.shape) == [4, 6] and t0.tensor_type == Q.F32, "sample f32 info")
check(np.array_equal(np.asarray(t0.data).reshape(-1), np.arange(24, dtype=np.float32) * 0.5 - 3.0), "sample f32 data")
t1 = r.tensors[1]
check(t1.tensor_type == Q.Q4_0 and list(t1.shape) == [32, 2], "sample q4_0 info")
deq = gguf.quants.dequantize(np.asarray(t1.data), Q.Q4_0)
sample_dump = os.path.join(WORK, "dump3")
os.makedirs(sample_dump, exist_ok=True)
json.loads(run_tool("gguf-dump", os.path.join(WORK, "sample.gguf"), sample_dump).stdout)
ok, why = bits_equal(np.fromfile(os.path.join(sample_dump, "1.f32"), dtype="<f4"), deq)
check(ok, f"sample q4_0 dequant: {why}")
tok = r.fields["tokens"]
check([bytes(tok.parts[i]).decode() for i in tok.data] == ["<s>", "héllo", ""], "sample string array")

print(f"{len(failures)} failed" if failures else "gguf interop: all checks passed")
sys.exit(1 if failures else 0)
