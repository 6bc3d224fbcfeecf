// Packed mat-vec and mat-mat instances of the 4-bit MLX affine formats (pack_affine; formats.cuh,
// FAffine; LMK_AFFINE_INSTANTIATE in qmm_packed.cuh).
#include "ops/matmul/launch.h"
#include "ops/matmul/qmm_packed.cuh"

namespace lmk::cuda::mm {
LMK_AFFINE_INSTANTIATE(4)
LMK_AFFINE_RAW_INSTANTIATE(4)
}  // namespace lmk::cuda::mm
