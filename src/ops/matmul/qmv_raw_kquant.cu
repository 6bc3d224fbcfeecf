// Ring mat-vec instances on raw GGML rows (no pack_ggml; formats.cuh FGgmlRaw) of the 256-element
// formats (see qmv_packed.cuh).
#include "ops/matmul/launch.h"
#include "ops/matmul/qmv_packed.cuh"

namespace lmk::cuda::mm {
LMK_QMV_RAW_INSTANTIATE(FQ2_K)
LMK_QMV_RAW_INSTANTIATE(FQ4_K)
LMK_QMV_RAW_INSTANTIATE(FQ5_K)
LMK_QMV_RAW_INSTANTIATE(FQ6_K)
LMK_QMV_RAW_INSTANTIATE(FIQ4_XS)
}  // namespace lmk::cuda::mm
