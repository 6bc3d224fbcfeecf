// Activations (spec: core-ops.md §3) plus two small training/vision maps (training-and-vision.md
// §8 outer_product forward, §9 add_bias_row_2d). Tensors are contiguous; f16/bf16 are widened to
// f32, computed in f32 and rounded once to nearest even on store. Where an op allows in-place use,
// out may be exactly the memory of the named input (same pointer, same size); any partial overlap
// is rejected. Zero sizes are rejected. A dtype outside an op's list is Unsupported; a second
// tensor whose dtype differs from the first is InvalidArgument.
#pragma once
#include "lmk/device.h"
#include "lmk/tensor.h"

namespace lmk {

// SwiGLU gate: out = g / (1 + exp(-g)) * up with g = gate[i]. gate, up, out: same numel and dtype.
// The spec names f32 only; lmk also accepts f16 and bf16 (all three the same dtype), computed in
// f32 with one rounding. out may alias gate or up. For finite g -> -inf the result underflows to
// ±0, never NaN; g = -inf gives NaN (-inf * 0), g = +inf gives +inf * up. The same holds for silu
// and for the sigmoid of sigmoid_mul (gate -> -inf: ±0).
void silu_mul(const Tensor& gate, const Tensor& up, const Tensor& out, Stream& stream = default_stream());

// Attention output gate: out = x * sigmoid(gate) = x / (1 + exp(-gate)). f32 or bf16 (spec), and
// f16 (lmk extension); x, gate, out: same numel and dtype. out may alias x or gate.
void sigmoid_mul(const Tensor& x, const Tensor& gate, const Tensor& out, Stream& stream = default_stream());

// out = x / (1 + exp(-x)). f32 (spec); f16 and bf16 are an lmk extension. Same numel and dtype;
// out may alias x.
void silu(const Tensor& x, const Tensor& out, Stream& stream = default_stream());

// GELU, tanh form (PyTorch approximate="tanh", not the erf form):
//   u = 0.7978845608028654 * (x + 0.044715 * x*x*x),  out = 0.5 * x * (1 + tanh(clamp(u, -15, 15))).
// f32, f16, bf16; same numel and dtype; out may alias x. Edge results: gelu(0) = 0, large positive
// x gives x exactly, large negative finite x gives -0, +inf -> +inf, -inf -> NaN, NaN -> NaN.
void gelu(const Tensor& x, const Tensor& out, Stream& stream = default_stream());

// Logit soft-capping: out = tanh(x / cap) * cap, so |out| <= cap. f32, f16, bf16; same numel and
// dtype; out may alias x. cap must be finite and > 0 (else InvalidArgument). In f16/bf16 the
// result may round to exactly cap (or past it when cap itself is not representable). The CUDA
// backend forms x / cap as x * (1 / cap) (within 1 ulp) unless 1 / cap is not a normal f32.
void softcap(const Tensor& x, const Tensor& out, float cap, Stream& stream = default_stream());

// out[i, j] = a[i, j] + bias[j]. a has rank 2, shape [M, N]; bias has N elements; out has M*N
// elements. f32 (spec); f16 and bf16 are an lmk extension (one f32 add, one rounding: equal to
// the correctly rounded sum). All three share the dtype. out may alias a, but must not overlap bias.
void add_bias_row_2d(const Tensor& a, const Tensor& bias, const Tensor& out, Stream& stream = default_stream());

// Outer product (forward): out[i, j] = lhs[i] * rhs[j], the exact f32 product. f32 only. lhs and rhs
// are vectors (any contiguous shape; N = numel(lhs), M = numel(rhs)); out has shape [N, M] and must
// not overlap lhs or rhs.
void outer_product(const Tensor& lhs, const Tensor& rhs, const Tensor& out, Stream& stream = default_stream());

}  // namespace lmk
