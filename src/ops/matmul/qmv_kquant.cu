// Mat-vec instances of the 256-element formats (see qmv.cuh).
#include "ops/matmul/launch.h"
#include "ops/matmul/qmv_packed.cuh"

namespace lmk::cuda::mm {
template <class F>
void run_qmv(const QmvParams& p, cudaStream_t stream) {
  launch_qmv<F>(p, stream);
}
template void run_qmv<FQ2_K>(const QmvParams&, cudaStream_t);
template void run_qmv<FQ4_K>(const QmvParams&, cudaStream_t);
template void run_qmv<FQ5_K>(const QmvParams&, cudaStream_t);
template void run_qmv<FQ6_K>(const QmvParams&, cudaStream_t);
template void run_qmv<FIQ4_XS>(const QmvParams&, cudaStream_t);
template <class F>
void run_qmvp(const QmvpParams& p, cudaStream_t stream) {
  launch_qmvp<F>(p, stream);
}
template void run_qmvp<FQ2_K>(const QmvpParams&, cudaStream_t);
template void run_qmvp<FQ4_K>(const QmvpParams&, cudaStream_t);
template void run_qmvp<FQ5_K>(const QmvpParams&, cudaStream_t);
template void run_qmvp<FQ6_K>(const QmvpParams&, cudaStream_t);
template void run_qmvp<FIQ4_XS>(const QmvpParams&, cudaStream_t);
}  // namespace lmk::cuda::mm
