// Packed-weight mat-vec and mat-mat instances of the MLX affine formats (pack_affine; formats.cuh,
// FAffine): 4, 6 and 8 bits, bf16 or f16 scales.
#include "ops/matmul/launch.h"
#include "ops/matmul/qmm_packed.cuh"

namespace lmk::cuda::mm {
#define LMK_AFFINE_INSTANTIATE(BITS, F16)                                                   \
  template void run_qmvp<FAffine<BITS, F16>>(const QmvpParams&, cudaStream_t);      \
  template void run_qmmp<FAffine<BITS, F16>>(const QmmpParams&, int, cudaStream_t);
LMK_AFFINE_INSTANTIATE(4, false)
LMK_AFFINE_INSTANTIATE(4, true)
LMK_AFFINE_INSTANTIATE(6, false)
LMK_AFFINE_INSTANTIATE(6, true)
LMK_AFFINE_INSTANTIATE(8, false)
LMK_AFFINE_INSTANTIATE(8, true)
#undef LMK_AFFINE_INSTANTIATE
}  // namespace lmk::cuda::mm
