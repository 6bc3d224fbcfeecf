// Random device data for benchmarks (a counter hash; never zeros).
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "bench/bench.h"
#include "cuda/check.h"

namespace lmk::bench {
namespace {
__device__ __forceinline__ uint64_t mix(uint64_t x) {
  x ^= x >> 33; x *= 0xff51afd7ed558ccdull; x ^= x >> 33; x *= 0xc4ceb9fe1a85ec53ull; x ^= x >> 33;
  return x;
}
template <typename T>
__global__ void fill_kernel(T* p, int64_t n, uint64_t seed, double lo, double hi) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    double u = double(mix(seed ^ (uint64_t(i) * 0x9e3779b97f4a7c15ull)) >> 11) * (1.0 / 9007199254740992.0);
    double v = lo + (hi - lo) * u;
    if constexpr (std::is_same_v<T, __half>) p[i] = __float2half_rn(float(v));
    else if constexpr (std::is_same_v<T, __nv_bfloat16>) p[i] = __float2bfloat16_rn(float(v));
    else p[i] = T(v);
  }
}
template <typename T>
void run(const Tensor& t, int64_t n, uint64_t seed, double lo, double hi) {
  fill_kernel<T><<<1024, 256>>>(static_cast<T*>(t.data()), n, seed, lo, hi);
  LMK_CUDA_CHECK(cudaGetLastError());
}
}  // namespace

namespace {
// Reads every 16 bytes of p once; the xor only keeps the loads alive (the store never happens for
// data the bench writes, whose words are never all equal to the magic).
__global__ void read_all_kernel(const uint4* p, int64_t n, uint32_t* sink) {
  uint32_t acc = 0;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const uint4 v = p[i];
    acc ^= v.x ^ v.y ^ v.z ^ v.w;
  }
  if (acc == 0x9e3779b9u) *sink = acc;
}
}  // namespace

void read_all_cuda(const void* p, int64_t bytes, void* sink, void* stream) {
  read_all_kernel<<<1024, 512, 0, static_cast<cudaStream_t>(stream)>>>(static_cast<const uint4*>(p), bytes / 16,
                                                                     static_cast<uint32_t*>(sink));
  LMK_CUDA_CHECK(cudaGetLastError());
}

void fill_random_cuda(const Tensor& t, uint64_t seed, double lo, double hi) {
  const int64_t n = t.numel();
  switch (t.dtype()) {
    case DType::f32: run<float>(t, n, seed, lo, hi); break;
    case DType::f16: run<__half>(t, n, seed, lo, hi); break;
    case DType::bf16: run<__nv_bfloat16>(t, n, seed, lo, hi); break;
    case DType::i32: run<int32_t>(t, n, seed, lo, hi); break;
    case DType::u32: run<uint32_t>(t, n, seed, lo, hi); break;
    default: run<uint8_t>(t, t.nbytes(), seed, 0, 256); break;  // raw bytes (quantized blocks)
  }
  LMK_CUDA_CHECK(cudaDeviceSynchronize());
}
}  // namespace lmk::bench
