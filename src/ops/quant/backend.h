// Backend entry points of the quant family; arguments are already validated.
#pragma once
#include <cstdint>

#include "lmk/device.h"
#include "lmk/tensor.h"

namespace lmk {

// The MLX affine operand set after validation (K from the output, row bytes from bits).
struct AffineArgs {
  const void* packed;
  const void* scales;
  const void* biases;
  DType param_dtype;
  int bits;
  int64_t group_size;
  int64_t k;          // values per row
  int64_t row_bytes;  // packed bytes per row
};

namespace cpu {
// src: GGML block tensor (contiguous); dst: f32/f16/bf16 with the same numel.
void dequantize(const Tensor& src, const Tensor& dst);
void dequant_affine(const AffineArgs& a, int64_t rows, const Tensor& dst);
void qdq_legacy(DType format, const Tensor& x, const Tensor& y);
void qdq_affine_init(const Tensor& w, const Tensor& scales, const Tensor& biases, const Tensor& q, int64_t gs, int n_bins);
void qdq_affine_forward(const Tensor& q, const Tensor& scales, const Tensor& biases, const Tensor& out, int64_t gs);
void qdq_affine_backward_scales(const Tensor& q, const Tensor& dy, const Tensor& d_scales, int64_t gs);
void qdq_affine_backward_biases(const Tensor& dy, const Tensor& d_biases, int64_t gs);
// ids already checked against V on the host.
void embedding_ggml(const Tensor& table, const Tensor& ids, const Tensor& out);
void embedding_affine(const AffineArgs& a, const Tensor& ids, const Tensor& out);
}  // namespace cpu

namespace cuda {
void dequantize(const Tensor& src, const Tensor& dst, Stream& s);
void dequant_affine(const AffineArgs& a, int64_t rows, const Tensor& dst, Stream& s);
void qdq_legacy(DType format, const Tensor& x, const Tensor& y, Stream& s);
void qdq_affine_init(const Tensor& w, const Tensor& scales, const Tensor& biases, const Tensor& q, int64_t gs, int n_bins,
                     Stream& s);
void qdq_affine_forward(const Tensor& q, const Tensor& scales, const Tensor& biases, const Tensor& out, int64_t gs,
                        Stream& s);
void qdq_affine_backward_scales(const Tensor& q, const Tensor& dy, const Tensor& d_scales, int64_t gs, Stream& s);
void qdq_affine_backward_biases(const Tensor& dy, const Tensor& d_biases, int64_t gs, Stream& s);
// Invalid ids write zero rows; error_flag (may be null) is set to 1; with debug set the call
// synchronizes and throws InvalidArgument naming op, id, row and V.
void embedding_ggml(const Tensor& table, const Tensor& ids, const Tensor& out, uint32_t* error_flag, bool debug,
                    Stream& s);
void embedding_affine(const AffineArgs& a, int64_t vocab, const Tensor& ids, const Tensor& out, uint32_t* error_flag,
                      bool debug, Stream& s);
}  // namespace cuda

}  // namespace lmk
