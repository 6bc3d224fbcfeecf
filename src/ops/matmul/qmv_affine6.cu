// Packed-weight mat-vec and mat-mat instances of the 6-bit MLX affine formats (pack_affine;
// formats.cuh, FAffine): bf16 or f16 scales, group sizes 32 / 64 / 128. One file per bit width so
// the build compiles them in parallel.
#include "ops/matmul/launch.h"
#include "ops/matmul/qmm_packed.cuh"

namespace lmk::cuda::mm {
#define LMK_AFFINE_INSTANTIATE(F16, GSHIFT)                                                      \
  template void run_qmvp<FAffine<6, F16, GSHIFT>>(const QmvpParams&, cudaStream_t);      \
  template void run_qmmp<FAffine<6, F16, GSHIFT>>(const QmmpParams&, int, cudaStream_t);
LMK_AFFINE_INSTANTIATE(false, 0)
LMK_AFFINE_INSTANTIATE(false, 1)
LMK_AFFINE_INSTANTIATE(false, 2)
LMK_AFFINE_INSTANTIATE(true, 0)
LMK_AFFINE_INSTANTIATE(true, 1)
LMK_AFFINE_INSTANTIATE(true, 2)
#undef LMK_AFFINE_INSTANTIATE
}  // namespace lmk::cuda::mm
