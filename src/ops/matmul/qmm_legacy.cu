// Tensor-core mat-mat instances (raw blocks and packed weights) of the 32-element formats (see qmm.cuh,
// qmm_packed.cuh).
#include "ops/matmul/launch.h"
#include "ops/matmul/qmm_packed.cuh"

namespace lmk::cuda::mm {
LMK_QMM_INSTANTIATE(FQ4_0)
LMK_QMM_INSTANTIATE(FIQ4_NL)
LMK_QMM_INSTANTIATE(FQ8_0)
LMK_QMM_INSTANTIATE(FQ5_0)
LMK_QMM_INSTANTIATE(FQ5_1)
}  // namespace lmk::cuda::mm
