// Elementwise ops (spec: core-ops.md §2). Tensors are contiguous; out may alias an input of
// the same dtype and shape (in-place). f16/bf16 compute in f32 and round once to nearest even.
#pragma once
#include "lmk/device.h"
#include "lmk/tensor.h"

namespace lmk {

// out = a + b. a, out: same shape and dtype (f32, f16, bf16). b: same shape as a, or a row
// vector with numel == the last dim of a, broadcast over every row (a bias/residual row).
void add(const Tensor& a, const Tensor& b, const Tensor& out, Stream& stream = default_stream());
// out = a * b, same rules as add.
void mul(const Tensor& a, const Tensor& b, const Tensor& out, Stream& stream = default_stream());
// out = a / b (IEEE division; b = 0 gives ±inf/NaN). f32 only, same rules as add.
void divide(const Tensor& a, const Tensor& b, const Tensor& out, Stream& stream = default_stream());
// out = x * scalar: the f32 product, then one rounding to the dtype (f32, bf16, f16).
void scalar_mul(const Tensor& x, float scalar, const Tensor& out, Stream& stream = default_stream());
// out = exp(x), ln(x), sqrt(x); f32 only; IEEE edge results (exp overflow -> inf, ln 0 -> -inf,
// ln/sqrt of negatives -> NaN) are not errors.
void exp(const Tensor& x, const Tensor& out, Stream& stream = default_stream());
void log(const Tensor& x, const Tensor& out, Stream& stream = default_stream());
void sqrt(const Tensor& x, const Tensor& out, Stream& stream = default_stream());
// out = convert(x) between any two of f32, f16, bf16 (widening exact, narrowing RNE, NaN kept,
// overflow -> ±inf). Same numel; no aliasing unless the dtypes are equal.
void cast(const Tensor& x, const Tensor& out, Stream& stream = default_stream());

}  // namespace lmk
