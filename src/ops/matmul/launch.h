// Host-side launchers of the matmul kernels. Each heavy template family is instantiated in its
// own .cu file (qmv_*.cu, qmm_*.cu, gemv.cu) so the build compiles them in parallel; cuda.cu
// only sees these declarations.
#pragma once
#include <cuda.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "lmk/dtype.h"

namespace lmk::cuda::mm {

struct QmvParams;
struct QmvpParams;
struct QmmParams;
struct QmmpParams;

// Dense mat-vec: y[b, m, n] = Σ_k xround(x[b, m, k]) · w[b / (b1 / b0), n, k].
struct GemvParams {
  const void* w = nullptr;
  DType wt = DType::bf16;
  const void* x = nullptr;
  DType xt = DType::f32;
  void* y = nullptr;
  DType yt = DType::f32;
  DType xround = DType::f32;
  int64_t b0 = 1, b1 = 1, m = 0, n = 0, k = 0;
  bool vec = false;  // set by gemv(): 16-byte chunks
};
void gemv(const GemvParams& p, cudaStream_t stream);
// The TMA + warpgroup-MMA mat-vec (gemv.cu) for any M (items of up to 32 rows): f32 activations
// and output with bf16 weights (activations kept, or rounded to bf16) or f16 weights (rounded to
// f16), K % 8 == 0, 16-byte aligned. False (nothing launched) where it does not apply.
bool gemv_tma(const GemvParams& p, cudaStream_t stream);

// 2-D TMA map of a row-major matrix [rows][cols] (row stride row_bytes) in boxes of box_cols x
// box_rows, 128-byte swizzle (the wgmma K-major layout); elements past the ends read as zeros
// (cuda.cu).
CUtensorMap tensor_map_2d(CUtensorMapDataType type, const void* base, int64_t rows, int64_t cols, int64_t row_bytes,
                          int box_cols, int box_rows, const char* what);

// Quantized kernels of format F (a formats.cuh struct); explicitly instantiated per format in
// qmv_*.cu / qmm_*.cu. run_qmv: items of 1 or up to 8 activation rows; bm: tile rows
// of the mat-mat kernel (64, 128).
template <class F>
void run_qmv(const QmvParams& p, cudaStream_t stream);
template <class F>
void run_qmvp(const QmvpParams& p, cudaStream_t stream);  // packed weights (qmv_packed.cuh)
template <class F>
void run_qmvp_raw(const QmvpParams& p, cudaStream_t stream);  // raw affine or GGML rows, <= 8 (qmv_packed.cuh)
template <class F>
void run_qmvp_raw_routed(const QmvpParams& p, cudaStream_t stream);  // raw rows, single routed rows
template <class F>
void run_qmm(const QmmParams& p, int bm, cudaStream_t stream);
template <class F>
void run_qmmp(const QmmpParams& p, int bm, cudaStream_t stream);  // packed weights (qmm_packed.cuh)

}  // namespace lmk::cuda::mm
