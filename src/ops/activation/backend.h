// Backend entry points of the activation family; arguments are already validated.
#pragma once
#include <cstdint>

#include "lmk/device.h"
#include "lmk/tensor.h"

namespace lmk {
// Two-input gated maps: out[i] = f(a[i], b[i]).
enum class ActGatedOp : uint8_t { silu_mul, sigmoid_mul };
// One-input maps: out[i] = f(x[i]).
enum class ActUnaryOp : uint8_t { silu, gelu };

namespace cpu {
void gated(ActGatedOp op, const Tensor& a, const Tensor& b, const Tensor& out);
void unary(ActUnaryOp op, const Tensor& x, const Tensor& out);
void softcap(const Tensor& x, const Tensor& out, float cap);
void add_bias_row_2d(const Tensor& a, const Tensor& bias, const Tensor& out, int64_t cols);
void outer_product(const Tensor& lhs, const Tensor& rhs, const Tensor& out);
}  // namespace cpu
namespace cuda {
void gated(ActGatedOp op, const Tensor& a, const Tensor& b, const Tensor& out, Stream& s);
void unary(ActUnaryOp op, const Tensor& x, const Tensor& out, Stream& s);
void softcap(const Tensor& x, const Tensor& out, float cap, Stream& s);
void add_bias_row_2d(const Tensor& a, const Tensor& bias, const Tensor& out, int64_t cols, Stream& s);
void outer_product(const Tensor& lhs, const Tensor& rhs, const Tensor& out, Stream& s);
}  // namespace cuda
}  // namespace lmk
