#include <algorithm>
#include <cstdlib>
#include <map>
#include <mutex>
#include <tuple>

#include "cuda/common.cuh"

namespace lmk::cuda {
int64_t tuning(const char* name, int64_t fallback) {
  const char* v = std::getenv(name);
  return v && *v ? std::strtoll(v, nullptr, 10) : fallback;
}

int max_active_blocks(const void* kernel, int threads, int smem_bytes) {
  static std::mutex mu;
  static std::map<std::tuple<int, const void*, int, int>, int> cache;
  int dev = 0;
  LMK_CUDA_CHECK(cudaGetDevice(&dev));
  std::lock_guard<std::mutex> lock(mu);
  const auto key = std::make_tuple(dev, kernel, threads, smem_bytes);
  if (auto it = cache.find(key); it != cache.end()) return it->second;
  int n = 0;
  LMK_CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&n, kernel, threads, smem_bytes));
  return cache[key] = std::max(n, 1);
}

int sm_count() {
  static int n = [] {
    int dev = 0, v = 0;
    LMK_CUDA_CHECK(cudaGetDevice(&dev));
    LMK_CUDA_CHECK(cudaDeviceGetAttribute(&v, cudaDevAttrMultiProcessorCount, dev));
    return v;
  }();
  return n;
}

double peak_dram_gbps() {
  static std::mutex mu;
  static std::map<int, double> cache;
  int dev = 0;
  LMK_CUDA_CHECK(cudaGetDevice(&dev));
  std::lock_guard<std::mutex> lock(mu);
  if (auto it = cache.find(dev); it != cache.end()) return it->second;
  int khz = 0, bits = 0;
  LMK_CUDA_CHECK(cudaDeviceGetAttribute(&khz, cudaDevAttrMemoryClockRate, dev));
  LMK_CUDA_CHECK(cudaDeviceGetAttribute(&bits, cudaDevAttrGlobalMemoryBusWidth, dev));
  return cache[dev] = 2.0 * double(khz) * 1e3 * double(bits) / 8.0 / 1e9;
}

unsigned char* stream_scratch(const void* owner, cudaStream_t st, size_t bytes) {
  struct Block {
    unsigned char* p = nullptr;
    size_t bytes = 0;
  };
  static std::mutex mu;
  static std::map<std::tuple<const void*, int, cudaStream_t>, Block> blocks;
  int dev = 0;
  LMK_CUDA_CHECK(cudaGetDevice(&dev));
  std::lock_guard<std::mutex> lock(mu);
  Block& b = blocks[{owner, dev, st}];
  if (b.bytes >= bytes) return b.p;
  cudaStreamCaptureStatus capture = cudaStreamCaptureStatusNone;
  LMK_CUDA_CHECK(cudaStreamIsCapturing(st, &capture));
  if (capture != cudaStreamCaptureStatusNone) return nullptr;
  const size_t n = std::max({bytes, 2 * b.bytes, size_t(32) << 10});
  void* p = nullptr;
  LMK_CUDA_CHECK(cudaMalloc(&p, n));
  LMK_CUDA_CHECK(cudaMemsetAsync(p, 0, n, st));
  b = {static_cast<unsigned char*>(p), n};
  return b.p;
}
namespace {
cudaMemPool_t scratch_pool() {
  static std::mutex mu;
  static std::map<int, cudaMemPool_t> pools;
  int dev = 0;
  LMK_CUDA_CHECK(cudaGetDevice(&dev));
  std::lock_guard<std::mutex> lock(mu);
  if (auto it = pools.find(dev); it != pools.end()) return it->second;
  cudaMemPoolProps props = {};
  props.allocType = cudaMemAllocationTypePinned;
  props.handleTypes = cudaMemHandleTypeNone;
  props.location.type = cudaMemLocationTypeDevice;
  props.location.id = dev;
  cudaMemPool_t pool = nullptr;
  LMK_CUDA_CHECK(cudaMemPoolCreate(&pool, &props));
  uint64_t keep = UINT64_MAX;
  LMK_CUDA_CHECK(cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &keep));
  pools.emplace(dev, pool);
  return pool;
}
}  // namespace

PoolScratch::PoolScratch(size_t bytes, cudaStream_t s) : stream(s) {
  LMK_CUDA_CHECK(cudaMallocFromPoolAsync(&ptr, bytes, scratch_pool(), s));
}
PoolScratch::~PoolScratch() {
  if (ptr) (void)cudaFreeAsync(ptr, stream);
}
}  // namespace lmk::cuda
