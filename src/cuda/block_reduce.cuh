// Warp/block all-reductions and thread-block-cluster launch limits, shared by the reduce and
// softmax families. Every reduction here is a butterfly over commutative operations, so every
// lane (and every warp) ends with the bit-identical result.
#pragma once
#include <cuda_runtime.h>

#include <map>
#include <mutex>
#include <utility>

#include "cuda/common.cuh"

namespace lmk::cuda {

struct SumOp {
  __device__ __forceinline__ float operator()(float a, float b) const { return a + b; }
};
struct MaxOp {
  __device__ __forceinline__ float operator()(float a, float b) const { return fmaxf(a, b); }
};

template <typename Op>
__device__ __forceinline__ float warp_allreduce(float v, Op op) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = op(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

// Reduces v over the block (blockDim.x a multiple of 32); every thread gets the result. `red`
// is a __shared__ float[32] that no thread touches again before the next __syncthreads().
template <typename Op>
__device__ __forceinline__ float block_allreduce(float v, float* red, Op op, float identity) {
  v = warp_allreduce(v, op);
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nwarps = blockDim.x >> 5;
  if (lane == 0) red[warp] = v;
  __syncthreads();
  v = lane < nwarps ? red[lane] : identity;
  return warp_allreduce(v, op);
}

// 16-byte vectors may be loaded with the evict-first hint (data read once).
template <typename T, int N, bool Streaming>
__device__ __forceinline__ Packed<T, N> load_vec(const T* p) {
  if constexpr (Streaming && (sizeof(T) * N) % 16 == 0) return load_packed_stream<T, N>(p);
  else return load_packed<T, N>(p);
}

// What a cluster kernel may use on the current device: the largest power-of-two cluster size
// (<= 16) that can be resident with `threads` threads per block and the largest dynamic shared
// memory (when use_smem), and that shared-memory size. The first call per kernel and device
// also opts the kernel into that shared memory and into non-portable cluster sizes. Cached.
struct ClusterLimits {
  int max_cluster = 1;
  int max_smem = 0;  // dynamic shared memory bytes per block
};

inline ClusterLimits cluster_limits(const void* kernel, int threads, bool use_smem) {
  static std::mutex mu;
  static std::map<std::pair<const void*, int>, ClusterLimits> cache;
  int dev = 0;
  LMK_CUDA_CHECK(cudaGetDevice(&dev));
  std::lock_guard<std::mutex> lock(mu);
  const auto key = std::make_pair(kernel, dev);
  if (auto it = cache.find(key); it != cache.end()) return it->second;
  ClusterLimits lim;
  if (use_smem) {
    cudaFuncAttributes fa{};
    LMK_CUDA_CHECK(cudaFuncGetAttributes(&fa, kernel));
    int optin = 0;
    LMK_CUDA_CHECK(cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev));
    lim.max_smem = optin - int(fa.sharedSizeBytes);
    LMK_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, lim.max_smem));
  }
  LMK_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeNonPortableClusterSizeAllowed, 1));
  for (int cs = 16; cs > 1; cs /= 2) {
    cudaLaunchAttribute attr[1];
    attr[0].id = cudaLaunchAttributeClusterDimension;
    attr[0].val.clusterDim.x = unsigned(cs);
    attr[0].val.clusterDim.y = 1;
    attr[0].val.clusterDim.z = 1;
    cudaLaunchConfig_t cfg{};
    cfg.gridDim = dim3(unsigned(cs));
    cfg.blockDim = dim3(unsigned(threads));
    cfg.dynamicSmemBytes = size_t(lim.max_smem);
    cfg.attrs = attr;
    cfg.numAttrs = 1;
    int n = 0;
    if (cudaOccupancyMaxActiveClusters(&n, kernel, &cfg) == cudaSuccess && n > 0) {
      lim.max_cluster = cs;
      break;
    }
    (void)cudaGetLastError();  // a refused size is not an error; try the next one
  }
  cache[key] = lim;
  return lim;
}

// Launches kernel over `grid` blocks of `threads` in clusters of cs blocks along x.
template <typename... Params, typename... Args>
void launch_clustered(void (*kernel)(Params...), unsigned grid, int threads, int cs, size_t smem, cudaStream_t stream,
                      Args&&... args) {
  cudaLaunchAttribute attr[1];
  attr[0].id = cudaLaunchAttributeClusterDimension;
  attr[0].val.clusterDim.x = unsigned(cs);
  attr[0].val.clusterDim.y = 1;
  attr[0].val.clusterDim.z = 1;
  cudaLaunchConfig_t cfg{};
  cfg.gridDim = dim3(grid);
  cfg.blockDim = dim3(unsigned(threads));
  cfg.dynamicSmemBytes = smem;
  cfg.stream = stream;
  cfg.attrs = attr;
  cfg.numAttrs = 1;
  LMK_CUDA_CHECK(cudaLaunchKernelEx(&cfg, kernel, static_cast<Args&&>(args)...));
}

}  // namespace lmk::cuda
