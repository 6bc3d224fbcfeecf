// Launch parameters and launchers of the three affine kernels (cuda.cu picks one per problem).
//   mv:   tensor-core mat-vec for items of <= 8 rows, bits 4, 6 and 8 (matvec.cu; plain rows up to
//         4: matvec_rows.cu)
//   mm:   tiled bf16 tensor-core GEMM with the weights dequantized in the tile (gemm.cu)
//   simt: f32 CUDA-core tiled kernel for any bits, group size and alignment (simt.cu)
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

#include "ops/affine/common.cuh"

namespace lmk::cuda::affine {

// Operands common to every kernel; the expert of an item selects w/scales/biases slices.
struct Operands {
  const void* x = nullptr;
  DType x_dtype = DType::f32;
  int K = 0;                   // x row stride (elements) and reduction length
  const uint8_t* w = nullptr;  // packed rows
  int64_t row_bytes = 0;
  int64_t expert_bytes = 0;    // N * row_bytes
  const void* scales = nullptr;
  const void* biases = nullptr;
  DType s_dtype = DType::f32;
  int64_t groups = 0;          // K / gs: scales row stride
  int64_t expert_groups = 0;   // N * groups
  int N = 0;
  int bits = 4;
  int gs = 64;
  void* y = nullptr;           // y row stride N
  DType y_dtype = DType::f32;
};

// ---- mv --------------------------------------------------------------------------------------------
namespace mv {
inline constexpr int kThreads = 128;       // 4 warps
inline constexpr int kRowsPerBlock = 128;  // each warp: 2 tiles of 16 weight rows
inline constexpr int kMaxRows = 8;         // activation rows per item (the MMA's n = 8)
inline constexpr int kWinCodes = 2048;     // activation window staged in shared memory
}  // namespace mv

struct MvPlan {
  int units = 0;        // 16-byte units per weight row
  int slice_units = 0;  // units per cluster rank (multiple of 4)
  int win_units = 0;    // units per staged window (multiple of 4)
  int span_units = 0;   // units sharing one scale (min(gs / unit codes, 4)); matvec.cu
  int sb_stride = 1;    // staged (scale, bias) pairs per block row (odd); matvec_rows.cu
  int gs_shift = 6;     // log2(gs); matvec_rows.cu
  int ks = 1;           // cluster size: ranks splitting K
  int cmax = 1;         // rows per item (<= 8): sizes shared memory
  int row_blocks = 0;
  size_t smem = 0;      // dynamic shared memory bytes
};
MvPlan mv_plan(const Operands& o, int cmax);
void launch_mv(const Operands& o, const MvPlan& plan, Items items, int n_items, cudaStream_t s);
// Plain rows, items of <= 4 (matvec_rows.cu).
MvPlan mv_rows_plan(const Operands& o, int cmax);
void launch_mv_rows(const Operands& o, const MvPlan& plan, Items items, int n_items, cudaStream_t s);

// ---- mm --------------------------------------------------------------------------------------------
namespace mm {
inline constexpr int kThreads = 256;
inline constexpr int kBN = 128;
inline constexpr int kBK = 64;
}  // namespace mm
// bm: 64 or 128 rows per item.
void launch_mm(const Operands& o, int bm, Items items, int n_items, cudaStream_t s);

// ---- simt ------------------------------------------------------------------------------------------
namespace simt {
inline constexpr int kThreads = 256;
inline constexpr int kBM = 64;
inline constexpr int kBN = 64;
inline constexpr int kBK = 32;
}  // namespace simt
void launch_simt(const Operands& o, Items items, int n_items, cudaStream_t s);

// Zeroes output row y[row, :] and raises the error flag: what every kernel does for a direct
// item whose id is out of range. Called by all threads of a block with [n0, n1) its columns.
__device__ __forceinline__ void invalid_row(const Operands& o, const Items& it, int yrow, int n0, int n1) {
  for (int n = n0 + int(threadIdx.x); n < n1; n += int(blockDim.x)) store_f(o.y, int64_t(yrow) * o.N + n, 0.0f, o.y_dtype);
  if (threadIdx.x == 0 && it.error_flag) *it.error_flag = 1u;
}

}  // namespace lmk::cuda::affine
