// Mat-vec instances (raw and packed weights) of the 256-element formats (see qmv.cuh, qmv_packed.cuh).
#include "ops/matmul/launch.h"
#include "ops/matmul/qmv_packed.cuh"

namespace lmk::cuda::mm {
LMK_QMV_INSTANTIATE(FQ2_K)
LMK_QMV_INSTANTIATE(FQ4_K)
LMK_QMV_INSTANTIATE(FQ5_K)
LMK_QMV_INSTANTIATE(FQ6_K)
LMK_QMV_INSTANTIATE(FIQ4_XS)
}  // namespace lmk::cuda::mm
