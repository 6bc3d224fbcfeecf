// Normalization ops (spec: core-ops.md §5). Every op normalizes the rows of a contiguous
// [R, D] view (D = the last dim, R = numel / D; any rank >= 1) with f32 accumulation of the sum
// of squares: r = rsqrt(Σx²/D + eps) (RMS) or rsqrt(Σx² + eps) (l2). Output elements are
// evaluated left to right in f32 as written below and rounded once (RNE) to the output dtype.
//
// Dtypes, one rule for the whole family: activations (x, residual, input, scale, outputs) share
// one dtype of f32, f16, bf16; the weight is f32 for f32 and f16 activations and bf16 for bf16;
// the optional layer scalar is always f32. Any other combination is Unsupported.
// eps is required: eps < 0 or NaN is InvalidArgument (+inf is allowed: every finite row maps
// to 0). Zero sizes, numel mismatches (outputs and row-shaped inputs: R·D; weight: D; scalar:
// 1 or D), non-contiguous views, device mismatches and partial overlaps are InvalidArgument.
// Aliasing: an output may be exactly the memory of a row-shaped input (in place); it must not
// overlap the weight or the scalar, and two outputs must not overlap each other.
#pragma once
#include "lmk/device.h"
#include "lmk/tensor.h"

namespace lmk {

// y = x·r·w. weight [D]; an undefined (default-constructed) weight means no scale, y = x·r
// (the rms_norm_no_scale kernels). f16 x takes an f32 weight. out may alias x.
void rms_norm(const Tensor& x, const Tensor& weight, const Tensor& out, float eps,
              Stream& stream = default_stream());

// y = x·r·w·scale, scale [R, D] in the dtype of x (the fusion target of rms_norm followed by
// mul). weight is required. out may alias x or scale.
void rms_norm_mul(const Tensor& x, const Tensor& weight, const Tensor& scale, const Tensor& out, float eps,
                  Stream& stream = default_stream());

// y = x·rsqrt(Σx² + eps): the sum, not the mean; eps inside the rsqrt. No weight. out may
// alias x. eps = 0 on an all-zero row gives NaN (0·inf), as the formula says.
void l2_norm(const Tensor& x, const Tensor& out, float eps, Stream& stream = default_stream());

// out = (residual + input·r(input)·w) · scalar: the norm of the sublayer output, then the
// residual add (Gemma 4 post-attention / post-FFN). weight undefined: no scale
// (fused_norm_add_no_weight). scalar: undefined (no factor), f32 [1] (Gemma 4 layer scalar) or
// f32 [D]. out may alias residual or input.
void fused_norm_add(const Tensor& residual, const Tensor& input, const Tensor& weight, const Tensor& out, float eps,
                    const Tensor& scalar = Tensor(), Stream& stream = default_stream());

// s = residual + input (in f32, never rounded before the norm); normed_out = s·r(s)·w·scalar;
// sum_out = round(s) when sum_out is defined (the updated residual stream). weight is required;
// scalar as for fused_norm_add. The row is reduced before any of it is written and every
// element is re-read only by the thread that writes it, so normed_out and sum_out may each
// alias residual or input (sum_out = residual is the in-place residual update); they must not
// overlap each other.
void fused_residual_norm(const Tensor& residual, const Tensor& input, const Tensor& weight, const Tensor& normed_out,
                         const Tensor& sum_out, float eps, const Tensor& scalar = Tensor(),
                         Stream& stream = default_stream());

}  // namespace lmk
