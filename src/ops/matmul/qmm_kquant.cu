// Tensor-core mat-mat instances (raw blocks and packed weights) of the 256-element formats (see qmm.cuh,
// qmm_packed.cuh).
#include "ops/matmul/launch.h"
#include "ops/matmul/qmm_packed.cuh"

namespace lmk::cuda::mm {
LMK_QMM_INSTANTIATE(FQ2_K)
LMK_QMM_INSTANTIATE(FQ4_K)
LMK_QMM_INSTANTIATE(FQ5_K)
LMK_QMM_INSTANTIATE(FQ6_K)
LMK_QMM_INSTANTIATE(FIQ4_XS)
}  // namespace lmk::cuda::mm
