#include "cuda/common.cuh"

namespace lmk::cuda {
int sm_count() {
  static int n = [] {
    int dev = 0, v = 0;
    LMK_CUDA_CHECK(cudaGetDevice(&dev));
    LMK_CUDA_CHECK(cudaDeviceGetAttribute(&v, cudaDevAttrMultiProcessorCount, dev));
    return v;
  }();
  return n;
}
}  // namespace lmk::cuda
