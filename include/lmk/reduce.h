// Reductions and scans along the last dimension (spec: core-ops.md §6). A "row" is the last
// dimension of a contiguous tensor; every other dimension counts rows. f32 accumulation.
#pragma once
#include "lmk/device.h"
#include "lmk/tensor.h"

namespace lmk {

// out[r] = sum_j x[r, j]. x f32 [R, C] (C = last dim), out f32 with numel R; out must not
// overlap x. Summation order is a tree (not sequential), so results match an fp64 sum within
// about 1e-5 * sum_j |x[r, j]|. CUDA: one block per row; when rows are few and long, a row is
// split over a thread-block cluster (up to 16 blocks) whose partial sums meet in distributed
// shared memory — no scratch memory.
void row_sum(const Tensor& x, const Tensor& out, Stream& stream = default_stream());

// Inclusive prefix sum along the last dim: out[r, i] = sum_{j <= i} x[r, j].
// x, out: f32 or bf16 (f16 -> Unsupported), same dtype and numel; out may alias x exactly.
// Running sums are f32, rounded once on store. Any row length (no cap).
// CUDA: rows up to 8192 elements (and any row when there are many rows) are scanned by one
// block per row. Longer rows, when few, use a single-pass decoupled look-back scan over
// 8192-element tiles; it needs a small scratch (8 bytes per tile + 64) that lmk keeps per
// (device, stream), allocated at the first such call outside CUDA graph capture and never
// freed (graphs may keep pointing at it). Inside a capture with no scratch yet for that stream,
// the one-block-per-row scan is used instead (correct, slower): call cumsum once on the stream
// before capturing to get the fast path in the graph. A captured graph must not be replayed
// concurrently with other long-row cumsums on the stream it was captured on.
void cumsum(const Tensor& x, const Tensor& out, Stream& stream = default_stream());

}  // namespace lmk
