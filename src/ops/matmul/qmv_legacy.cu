// Mat-vec instances of the 32-element formats (see qmv.cuh).
#include "ops/matmul/launch.h"
#include "ops/matmul/qmv_packed.cuh"

namespace lmk::cuda::mm {
template <class F>
void run_qmv(const QmvParams& p, cudaStream_t stream) {
  launch_qmv<F>(p, stream);
}
template void run_qmv<FQ4_0>(const QmvParams&, cudaStream_t);
template void run_qmv<FIQ4_NL>(const QmvParams&, cudaStream_t);
template void run_qmv<FQ8_0>(const QmvParams&, cudaStream_t);
template void run_qmv<FQ5_0>(const QmvParams&, cudaStream_t);
template void run_qmv<FQ5_1>(const QmvParams&, cudaStream_t);
template <class F>
void run_qmvp(const QmvpParams& p, cudaStream_t stream) {
  launch_qmvp<F>(p, stream);
}
template void run_qmvp<FQ4_0>(const QmvpParams&, cudaStream_t);
template void run_qmvp<FIQ4_NL>(const QmvpParams&, cudaStream_t);
template void run_qmvp<FQ8_0>(const QmvpParams&, cudaStream_t);
template void run_qmvp<FQ5_0>(const QmvpParams&, cudaStream_t);
template void run_qmvp<FQ5_1>(const QmvpParams&, cudaStream_t);
}  // namespace lmk::cuda::mm
