// Mat-vec instances (FMA and tensor-core) of the 32-element formats (see qmv.cuh).
#include "ops/matmul/launch.h"
#include "ops/matmul/qmv.cuh"
#include "ops/matmul/qmv_tc.cuh"

namespace lmk::cuda::mm {
template <class F>
void run_qmv(const QmvParams& p, cudaStream_t stream) {
  launch_qmv<F>(p, stream);
}
template <class F>
void run_qmv_tc(const QmvTcParams& p, cudaStream_t stream) {
  launch_qmv_tc<F>(p, stream);
}
template void run_qmv<FQ4_0>(const QmvParams&, cudaStream_t);
template void run_qmv<FIQ4_NL>(const QmvParams&, cudaStream_t);
template void run_qmv<FQ8_0>(const QmvParams&, cudaStream_t);
template void run_qmv<FQ5_0>(const QmvParams&, cudaStream_t);
template void run_qmv<FQ5_1>(const QmvParams&, cudaStream_t);
template void run_qmv_tc<FQ4_0>(const QmvTcParams&, cudaStream_t);
template void run_qmv_tc<FIQ4_NL>(const QmvTcParams&, cudaStream_t);
template void run_qmv_tc<FQ8_0>(const QmvTcParams&, cudaStream_t);
template void run_qmv_tc<FQ5_0>(const QmvTcParams&, cudaStream_t);
template void run_qmv_tc<FQ5_1>(const QmvTcParams&, cudaStream_t);
}  // namespace lmk::cuda::mm
