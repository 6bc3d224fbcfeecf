// Softmax family (spec: core-ops.md §4). A "row" is the last dimension of a contiguous tensor;
// every other dimension counts rows. Maxima and sums are taken in f32, f16/bf16 inputs are
// widened and the output is rounded once (nearest even).
#pragma once
#include <cstdint>

#include "lmk/device.h"
#include "lmk/tensor.h"

namespace lmk {

// Row softmax of x [R, C] (C = last dim, R = numel / C): m = max_j x_j, e_j = exp(x_j - m),
// S = sum_j e_j, out_j = e_j * (1 / S), all in f32, one rounding on store.
// x, out: f32, f16 or bf16, same dtype and numel; out may alias x exactly (in-place).
// Edges are not special-cased: a row holding +inf, or a row that is entirely -inf, gives NaN in
// every element of that row (as in PyTorch); NaN inputs give a NaN row.
// Any row length works. CUDA: rows up to 32768 elements (8192 for views that are not 16-byte
// aligned or whose length is not a multiple of 16 bytes) are held in registers, one block per
// row. Longer rows, and long rows when there are fewer rows than SMs, are split over a
// thread-block cluster of up to 16 blocks that exchange partial (max, sum) pairs through
// distributed shared memory: one read and one write of the data while the cluster's chunks fit
// shared memory (about 0.9 M f32 / 1.8 M 16-bit elements per row on H100); beyond that the row
// is read twice. No scratch memory, nothing allocated, safe in CUDA graph capture.
void softmax(const Tensor& x, const Tensor& out, Stream& stream = default_stream());

// Masked, scaled softmax for unfused attention prefill.
// scores f32 [nh * seq_q, seq_k] (rows head-major: row = h * seq_q + q; seq_k = last dim),
// mask bf16 [seq_q, seq_k] shared by every head (0 attends, -inf masks, any finite value is an
// additive bias), out f32 with the scores' numel (may alias scores exactly).
// Per row, q = row mod seq_q: t_k = scores[row, k] * scale + f32(mask[q, k]); m = max_k t_k;
// e_k = exp(t_k - m); S = sum_k e_k; out_k = e_k * (S > 0 ? 1 / S : 0).
// lmk fix (spec §4): a row whose max is -inf (fully masked) gives all zeros, not NaN.
// Rejected: seq_q < 1, rows not a multiple of seq_q, mask numel != seq_q * seq_k, non-f32
// scores/out or non-bf16 mask (Unsupported), a non-finite scale (lmk addition), out overlapping
// the mask. Same CUDA strategy as softmax (any seq_k).
void scale_mask_softmax(const Tensor& scores, const Tensor& mask, const Tensor& out, int64_t seq_q, float scale,
                        Stream& stream = default_stream());

}  // namespace lmk
