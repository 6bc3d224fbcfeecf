#!/usr/bin/env python3
"""cuBLAS (through PyTorch) bf16 GEMM times at the issue-5 shapes, on this machine's GPU: the peer
figures of dense_mm and of the packed mat-mat's "x cuBLAS" targets, measured on the same card as
`lmk bench`. y[M, 4096] = x[M, 14336] @ w[4096, 14336]^T, bf16 operands, f32 accumulation.
Prints per M: cold (L2 flushed before each call) and back-to-back microseconds; with --f32, also
the f32 -> bf16 conversion of x plus the GEMM (the contract dense_mm implements).
usage: python3 scripts/peer-cublas.py [--f32]"""
import sys
import torch

N, K = 4096, 14336
f32 = "--f32" in sys.argv
dev = torch.device("cuda")
flush = torch.empty(256 << 20, dtype=torch.uint8, device=dev)  # larger than L2
w = torch.randn(N, K, device=dev, dtype=torch.bfloat16)


def timed(fn, cold, reps):
    start = [torch.cuda.Event(enable_timing=True) for _ in range(reps)]
    end = [torch.cuda.Event(enable_timing=True) for _ in range(reps)]
    for _ in range(3):
        fn()
    if not cold:
        start[0].record()
        for _ in range(reps):
            fn()
        end[0].record()
        torch.cuda.synchronize()
        return start[0].elapsed_time(end[0]) * 1000 / reps
    for i in range(reps):
        flush.add_(1)
        start[i].record()
        fn()
        end[i].record()
    torch.cuda.synchronize()
    times = sorted(s.elapsed_time(e) * 1000 for s, e in zip(start, end))
    return times[len(times) // 2]


print(f"cuBLAS via torch {torch.__version__} on {torch.cuda.get_device_name()}: bf16 M x {N} x {K}")
for m in (1, 8, 16, 32, 512):
    x = torch.randn(m, K, device=dev, dtype=torch.float32)
    xb = x.to(torch.bfloat16)
    gemm = lambda: torch.matmul(xb, w.t())
    line = f"M={m:4d}  bf16 x: cold {timed(gemm, True, 50):8.2f} us  b2b {timed(gemm, False, 200):8.2f} us"
    if f32:
        conv = lambda: torch.matmul(x.to(torch.bfloat16), w.t())
        line += f"  | f32 x (convert + GEMM): cold {timed(conv, True, 50):8.2f}  b2b {timed(conv, False, 200):8.2f}"
    print(line, flush=True)
