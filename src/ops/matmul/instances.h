// Explicit instantiation declarations of the per-format launchers (launch.h) for cuda.cu: their
// definitions are visible there through the kernel headers, and without these cuda.cu would
// compile every kernel a second time. The definitions are in qmv_*.cu and qmm_*.cu.
#pragma once
#include "ops/matmul/formats.cuh"
#include "ops/matmul/launch.h"

namespace lmk::cuda::mm {

#define LMK_MM_EXTERN_GGML(F)                                                                \
  extern template void run_qmv<F>(const QmvParams&, cudaStream_t);                         \
  extern template void run_qmvp<F>(const QmvpParams&, cudaStream_t);                       \
  extern template void run_qmm<F>(const QmmParams&, int, cudaStream_t);                    \
  extern template void run_qmmp<F>(const QmmpParams&, int, cudaStream_t);                  \
  extern template void run_qmvp_raw<FGgmlRaw<F>>(const QmvpParams&, cudaStream_t);         \
  extern template void run_qmvp_raw_routed<FGgmlRaw<F>>(const QmvpParams&, cudaStream_t);
LMK_MM_EXTERN_GGML(FQ4_0)
LMK_MM_EXTERN_GGML(FIQ4_NL)
LMK_MM_EXTERN_GGML(FQ8_0)
LMK_MM_EXTERN_GGML(FQ5_0)
LMK_MM_EXTERN_GGML(FQ5_1)
LMK_MM_EXTERN_GGML(FQ2_K)
LMK_MM_EXTERN_GGML(FQ4_K)
LMK_MM_EXTERN_GGML(FQ5_K)
LMK_MM_EXTERN_GGML(FQ6_K)
LMK_MM_EXTERN_GGML(FIQ4_XS)
#undef LMK_MM_EXTERN_GGML

#define LMK_MM_EXTERN_AFFINE(BITS, F16, G)                                                             \
  extern template void run_qmvp<FAffine<BITS, F16, G>>(const QmvpParams&, cudaStream_t);            \
  extern template void run_qmmp<FAffine<BITS, F16, G>>(const QmmpParams&, int, cudaStream_t);
#define LMK_MM_EXTERN_AFFINE_RAW(BITS, F16, G)                                                         \
  extern template void run_qmvp_raw<FAffineRaw<BITS, F16, G>>(const QmvpParams&, cudaStream_t);     \
  extern template void run_qmvp_raw_routed<FAffineRaw<BITS, F16, G>>(const QmvpParams&, cudaStream_t);
#define LMK_MM_EXTERN_AFFINE_BITS(BITS, X) X(BITS, false, 0) X(BITS, false, 1) X(BITS, false, 2) \
  X(BITS, true, 0) X(BITS, true, 1) X(BITS, true, 2)
LMK_MM_EXTERN_AFFINE_BITS(4, LMK_MM_EXTERN_AFFINE)
LMK_MM_EXTERN_AFFINE_BITS(6, LMK_MM_EXTERN_AFFINE)
LMK_MM_EXTERN_AFFINE_BITS(8, LMK_MM_EXTERN_AFFINE)
LMK_MM_EXTERN_AFFINE_BITS(4, LMK_MM_EXTERN_AFFINE_RAW)
LMK_MM_EXTERN_AFFINE_BITS(8, LMK_MM_EXTERN_AFFINE_RAW)
#undef LMK_MM_EXTERN_AFFINE_BITS
#undef LMK_MM_EXTERN_AFFINE_RAW
#undef LMK_MM_EXTERN_AFFINE

}  // namespace lmk::cuda::mm
