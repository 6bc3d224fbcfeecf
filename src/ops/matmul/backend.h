// Backend entry points of the matmul family; arguments are already validated (api.cpp).
#pragma once
#include <cstdint>
#include <string>

#include "lmk/device.h"
#include "lmk/dtype.h"
#include "lmk/matmul.h"
#include "ops/matmul/packed_layout.h"

namespace lmk {

// A GGML block-format weight: n_experts matrices [n, k], expert e at byte e * expert_stride.
struct QWeight {
  const void* data = nullptr;
  DType type = DType::q4_0;
  int64_t n = 0, k = 0;
  int64_t row_bytes = 0;       // (k / qk) * block_bytes
  int64_t expert_stride = 0;   // bytes between experts (>= n * row_bytes); 0 for a single matrix
  int64_t n_experts = 1;
};

// y[m, :] = x[m, :] · Wᵀ for m < rows (x: rows x k f32, y: rows x n f32).
struct QmmArgs {
  const float* x = nullptr;
  float* y = nullptr;
  int64_t rows = 0;
  QWeight w;
};

// Expert-routed: row r (< rows = T·top_k) uses expert ids[r] and input row
// (input_per_slot ? r : r / top_k) of x.
struct QmmIdArgs {
  const float* x = nullptr;
  int64_t x_rows = 0;
  const void* ids = nullptr;   // u32 or i32
  bool ids_i32 = false;
  float* y = nullptr;
  int64_t rows = 0;
  int64_t top_k = 1;
  bool input_per_slot = false;
  QWeight w;
};

// Dense: y[b, m, :] = round_x(x[b, m, :]) · w[b / (b1 / b0)]ᵀ with f32 accumulation, stored in yt.
// wt in {bf16, f16, f32}; xt in {f32, wt}; yt in {f32, wt}; xround: f32 (keep x) or wt.
struct DenseArgs {
  const void* w = nullptr;
  DType wt = DType::bf16;
  const void* x = nullptr;
  DType xt = DType::f32;
  void* y = nullptr;
  DType yt = DType::f32;
  DType xround = DType::f32;
  int64_t b0 = 1, b1 = 1, m = 0, n = 0, k = 0;
  bool own_kernel = false;  // always the mat-vec kernel (dense_gemv_bf16, dense_matvec)
};

// A packed weight (pack_ggml, or pack_affine when affine_bits != 0): matrices [n, k] in the layout
// of ops/matmul/packed_layout.h.
struct PackedView {
  const void* data = nullptr;
  DType type = DType::q4_0;  // GGML type (unused for affine weights)
  int64_t n = 0, k = 0;
  int64_t row_bytes = 0;  // raw row bytes
  int64_t n_experts = 1;  // matrices, each packed on its own (packed::Geometry::matrix_bytes apart)
  int affine_bits = 0;    // MLX affine weights: 4, 6 or 8 bits (0: a GGML type)
  int affine_gs = 64;     // their group size (32, 64, 128)
  bool affine_f16 = false;  // their scales and biases are f16 (else bf16)
};
// Bytes of n_experts packed matrices of geometry g; InvalidArgument (naming op) on overflow.
int64_t packed_bytes(const char* op, const packed::Geometry& g, int64_t n_experts);
// InvalidArgument unless `have` bytes are exactly n_experts packed matrices of geometry g (`what`
// names the format in the message).
void check_packed_bytes(const char* op, const packed::Geometry& g, int64_t n_experts, int64_t have, const std::string& what);
inline packed::Geometry geometry_of(const PackedView& v) {
  return v.affine_bits ? packed::affine_geometry(v.affine_bits, v.affine_gs, v.n, v.k) : packed::geometry(v.type, v.n, v.k, v.row_bytes);
}

namespace cpu {
// Gather (pack) / scatter (unpack) between raw blocks and the packed layout.
void pack(const void* raw, const PackedView& p, void* packed);
void unpack(const PackedView& p, void* raw);
// MLX affine weights (src) into p's packed layout (p.affine_bits set).
void pack_affine(const packed::AffineSource& src, const PackedView& p, void* packed);
// Packed weights, read a 16-row tile at a time (no whole-matrix unpack per call).
void quantized_matmul_packed(const float* x, int64_t rows, const PackedView& w, float* y);
// ids were checked (< n_experts) by the caller.
void quantized_matmul_id_packed(const QmmIdArgs& a, const PackedView& w);
void quantized_matmul(const QmmArgs& a);
// ids were checked (< n_experts) by the caller.
void quantized_matmul_id(const QmmIdArgs& a);
void dense(const DenseArgs& a);
}  // namespace cpu

namespace cuda {
void quantized_matmul(const QmmArgs& a, MatmulPath path, Stream& s);
// error_flag (device u32, may be null) is set to 1 when an id is out of range; with debug the
// call synchronizes and throws the CPU's error.
void quantized_matmul_id(const QmmIdArgs& a, MatmulPath path, uint32_t* error_flag, bool debug, Stream& s);
void dense(const DenseArgs& a, Stream& s);
void workspace_reserve(Stream& s, int64_t scratch_bytes);
void pack(const void* raw, const PackedView& p, void* packed, Stream& s);
void unpack(const PackedView& p, void* raw, Stream& s);
void pack_affine(const packed::AffineSource& src, const PackedView& p, void* packed, Stream& s);
// y[m, :] = x[m, :] · Wᵀ for m < rows, W packed.
void quantized_matmul_packed(const float* x, int64_t rows, const PackedView& w, float* y, Stream& s);
// Expert-routed rows (a.w describes the shape; the weights are w, packed).
void quantized_matmul_id_packed(const QmmIdArgs& a, const PackedView& w, uint32_t* error_flag, bool debug, Stream& s);
// y[m, :] = x[m, :] · Wᵀ for m < rows (<= 8 for 4-bit, <= 4 for 8-bit), W MLX affine weights as stored (src: codes, 16-bit
// scales and biases; bits 4 or 8, k % 256 == 0, 16-byte aligned arrays), through the packed
// ring mat-vec reading the rows as they are (formats.cuh FAffineRaw). f16: the scales are f16.
// scratch: quantized_matmul_affine_raw_scratch(rows, k) bytes, 256-byte aligned, for x's pieces
// (the caller's, so that a first call can be captured in a CUDA graph).
// route (optional): each of the rows · top_k outputs y[r, :] uses x row r / top_k and expert
// ids[r] (src holds n_experts matrices back to back); an out-of-range id zeroes its row and sets
// *error_flag (if not null) to 1.
struct AffineRawRoute {
  const void* ids = nullptr;
  bool ids_i32 = false;
  int64_t top_k = 1, n_experts = 1;
  uint32_t* error_flag = nullptr;
};
int64_t quantized_matmul_affine_raw_scratch(int64_t rows, int64_t k);
void quantized_matmul_affine_raw(const float* x, int64_t rows, const packed::AffineSource& src, int64_t n, int64_t k,
                                 int64_t row_bytes, bool f16, float* y, void* scratch, Stream& s,
                                 const AffineRawRoute* route = nullptr);
}  // namespace cuda

}  // namespace lmk
