// Backend entry points of the softmax family; arguments are already validated.
#pragma once
#include <cstdint>

#include "lmk/device.h"
#include "lmk/tensor.h"

namespace lmk {
namespace cpu {
void softmax(const Tensor& x, const Tensor& out, int64_t rows, int64_t cols);
void scale_mask_softmax(const Tensor& scores, const Tensor& mask, const Tensor& out, int64_t rows, int64_t cols,
                        int64_t seq_q, float scale);
}  // namespace cpu
namespace cuda {
void softmax(const Tensor& x, const Tensor& out, int64_t rows, int64_t cols, Stream& s);
void scale_mask_softmax(const Tensor& scores, const Tensor& mask, const Tensor& out, int64_t rows, int64_t cols,
                        int64_t seq_q, float scale, Stream& s);
}  // namespace cuda
}  // namespace lmk
