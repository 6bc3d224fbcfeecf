// Tensor-core mat-mat instances of the 32-element formats (see qmm.cuh).
#include "ops/matmul/launch.h"
#include "ops/matmul/qmm.cuh"

namespace lmk::cuda::mm {
template <class F>
void run_qmm(const QmmParams& p, int bm, cudaStream_t stream) {
  launch_qmm<F>(p, bm, stream);
}
template void run_qmm<FQ4_0>(const QmmParams&, int, cudaStream_t);
template void run_qmm<FIQ4_NL>(const QmmParams&, int, cudaStream_t);
template void run_qmm<FQ8_0>(const QmmParams&, int, cudaStream_t);
template void run_qmm<FQ5_0>(const QmmParams&, int, cudaStream_t);
template void run_qmm<FQ5_1>(const QmmParams&, int, cudaStream_t);
}  // namespace lmk::cuda::mm
