// Backend entry points of the elementwise family; arguments are already validated.
#pragma once
#include <cstdint>

#include "lmk/device.h"
#include "lmk/tensor.h"

namespace lmk {
enum class BinaryOp : uint8_t { add, mul, div };
enum class UnaryOp : uint8_t { exp, log, sqrt };

namespace cpu {
void binary(BinaryOp op, const Tensor& a, const Tensor& b, const Tensor& out, int64_t b_cols);
void unary(UnaryOp op, const Tensor& x, const Tensor& out);
void scalar_mul(const Tensor& x, float s, const Tensor& out);
void cast(const Tensor& x, const Tensor& out);
}  // namespace cpu
namespace cuda {
void binary(BinaryOp op, const Tensor& a, const Tensor& b, const Tensor& out, int64_t b_cols, Stream& s);
void unary(UnaryOp op, const Tensor& x, const Tensor& out, Stream& s);
void scalar_mul(const Tensor& x, float s, const Tensor& out, Stream& st);
void cast(const Tensor& x, const Tensor& out, Stream& s);
}  // namespace cuda
}  // namespace lmk
