// Ring mat-vec instances on raw GGML rows (no pack_ggml; formats.cuh FGgmlRaw) of the 32-element
// formats (see qmv_packed.cuh).
#include "ops/matmul/launch.h"
#include "ops/matmul/qmv_packed.cuh"

namespace lmk::cuda::mm {
LMK_QMV_RAW_INSTANTIATE(FQ4_0)
LMK_QMV_RAW_INSTANTIATE(FIQ4_NL)
LMK_QMV_RAW_INSTANTIATE(FQ8_0)
LMK_QMV_RAW_INSTANTIATE(FQ5_0)
LMK_QMV_RAW_INSTANTIATE(FQ5_1)
}  // namespace lmk::cuda::mm
