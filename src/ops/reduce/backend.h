// Backend entry points of the reduce family; arguments are already validated.
#pragma once
#include <cstdint>

#include "lmk/device.h"
#include "lmk/tensor.h"

namespace lmk {
namespace cpu {
void row_sum(const Tensor& x, const Tensor& out, int64_t rows, int64_t cols);
void cumsum(const Tensor& x, const Tensor& out, int64_t rows, int64_t cols);
}  // namespace cpu
namespace cuda {
void row_sum(const Tensor& x, const Tensor& out, int64_t rows, int64_t cols, Stream& s);
void cumsum(const Tensor& x, const Tensor& out, int64_t rows, int64_t cols, Stream& s);
}  // namespace cuda
}  // namespace lmk
