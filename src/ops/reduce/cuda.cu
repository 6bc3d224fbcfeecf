// Reduce-family kernels.
// row_sum: one block per row (16-byte loads, 4 in flight per thread, f32 partials, block tree);
//   with fewer rows than SMs, a row is split over a cluster of up to 16 blocks whose partial
//   sums meet in distributed shared memory.
// cumsum: tiles of 8192 elements scanned by 256 threads in registers (each warp scans its
//   contiguous quarter-kilo steps with shuffles, warps meet in shared memory). Rows of one tile,
//   or many rows, take one block per row (tiles in sequence with a carry). Few long rows take a
//   single-pass decoupled look-back scan: tiles are handed out in arrival order (a ticket), each
//   publishes its aggregate, then its inclusive prefix, in one 64-bit status word tagged with a
//   per-launch epoch, so the status array never needs clearing between launches.
#include <cooperative_groups.h>

#include <algorithm>
#include <cstdint>
#include <cuda/atomic>
#include <map>
#include <mutex>
#include <vector>

#include "ops/reduce/backend.h"
#include "cuda/block_reduce.cuh"

namespace lmk::cuda {

namespace {
namespace cg = cooperative_groups;

constexpr int kUnroll = 4;
constexpr int64_t kMaxGridRows = 1 << 20;
int64_t round_up(int64_t a, int64_t b) { return ceil_div(a, b) * b; }

// ---- row_sum --------------------------------------------------------------------------------

constexpr int kSumThreads = 256;

template <int N>
__global__ void __launch_bounds__(kSumThreads) row_sum_kernel(const float* x, float* y, int64_t rows, int64_t cols,
                                                              int64_t chunk) {
  __shared__ float red[32];
  __shared__ float part;
  cg::cluster_group cluster = cg::this_cluster();
  const int cs = int(cluster.num_blocks()), rank = int(cluster.block_rank());
  const int tid = threadIdx.x, nthr = blockDim.x, lane = tid & 31, warp = tid >> 5;
  const int64_t begin = std::min(cols, rank * chunk), end = std::min(cols, begin + chunk);
  const int64_t vbeg = begin / N, vend = end / N;
  for (int64_t r = blockIdx.x / cs; r < rows; r += gridDim.x / cs) {
    const float* xr = x + r * cols;
    float acc[N] = {};
    for (int64_t i0 = vbeg + tid; i0 < vend; i0 += int64_t(kUnroll) * nthr) {
      Packed<float, N> v[kUnroll];
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) {
        const int64_t i = i0 + int64_t(u) * nthr;
        if (i < vend) {
          v[u] = load_vec<float, N, true>(xr + i * N);
        } else {
#pragma unroll
          for (int e = 0; e < N; ++e) v[u].v[e] = 0.f;
        }
      }
#pragma unroll
      for (int u = 0; u < kUnroll; ++u)
#pragma unroll
        for (int e = 0; e < N; ++e) acc[e] += v[u].v[e];
    }
    float s = 0.f;
#pragma unroll
    for (int e = 0; e < N; ++e) s += acc[e];
    s = block_allreduce(s, red, SumOp{}, 0.f);
    if (cs == 1) {
      if (tid == 0) y[r] = s;
      __syncthreads();  // red is rewritten by the next row
    } else {
      if (tid == 0) part = s;
      cluster.sync();
      if (rank == 0 && warp == 0) {
        float q = lane < cs ? *cluster.map_shared_rank(&part, lane) : 0.f;
        q = warp_allreduce(q, SumOp{});
        if (lane == 0) y[r] = q;
      }
      cluster.sync();  // part is read remotely until here; red and part are free again
    }
  }
}

template <int N>
void launch_row_sum(const float* x, float* y, int64_t rows, int64_t cols, cudaStream_t st) {
  auto* kernel = row_sum_kernel<N>;
  const ClusterLimits lim = cluster_limits(reinterpret_cast<const void*>(kernel), kSumThreads, false);
  const int64_t sms = sm_count();
  auto chunk_for = [&](int cs) { return round_up(ceil_div(cols, cs), N); };
  int cs = 1;
  while (cs < lim.max_cluster && rows * cs < 2 * sms && chunk_for(cs * 2) >= 4096) cs *= 2;
  const int64_t grid_rows = std::min(rows, kMaxGridRows);
  launch_clustered(kernel, unsigned(grid_rows * cs), kSumThreads, cs, 0, st, x, y, rows, cols, chunk_for(cs));
}

// ---- cumsum ---------------------------------------------------------------------------------

constexpr int kScanWarps = 8;
constexpr int kScanThreads = kScanWarps * 32;
constexpr int64_t kTile = 8192;  // kScanWarps * 32 lanes * K steps * N values, K * N = 32

// Loads tile [tile_begin, tile_begin + kTile) of a row of `len` values (zeros past the end) and
// leaves in v the inclusive scan within the tile, minus the offset of the warps before this
// one (returned in warp_offset). Returns the tile total (the same value in every thread).
// Warp w owns kTile / kScanWarps consecutive values, scanned in K steps of 32 lanes x N values.
template <typename T, int N>
__device__ __forceinline__ float scan_tile(const T* in, int64_t len, int64_t tile_begin, float (&v)[32 / N][N],
                                           float* wsum, float& warp_offset) {
  constexpr int K = 32 / N;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int64_t wbeg = tile_begin + int64_t(warp) * (K * 32 * N);
#pragma unroll
  for (int k = 0; k < K; ++k) {
    const int64_t i = wbeg + (int64_t(k) * 32 + lane) * N;  // N divides len on the vector path
    if (i < len) {
      const Packed<T, N> p = load_vec<T, N, true>(in + i);
#pragma unroll
      for (int e = 0; e < N; ++e) v[k][e] = to_f32(p.v[e]);
    } else {
#pragma unroll
      for (int e = 0; e < N; ++e) v[k][e] = 0.f;
    }
  }
  float carry = 0.f;  // warp total of the steps so far
#pragma unroll
  for (int k = 0; k < K; ++k) {
#pragma unroll
    for (int e = 1; e < N; ++e) v[k][e] += v[k][e - 1];
    float incl = v[k][N - 1];
#pragma unroll
    for (int d = 1; d < 32; d <<= 1) {
      const float t = __shfl_up_sync(0xffffffffu, incl, d);
      if (lane >= d) incl += t;
    }
    float excl = __shfl_up_sync(0xffffffffu, incl, 1);
    if (lane == 0) excl = 0.f;
    const float step_total = __shfl_sync(0xffffffffu, incl, 31);
    const float off = carry + excl;
#pragma unroll
    for (int e = 0; e < N; ++e) v[k][e] += off;
    carry += step_total;
  }
  if (lane == 0) wsum[warp] = carry;
  __syncthreads();
  float before = 0.f, total = 0.f;
#pragma unroll
  for (int w = 0; w < kScanWarps; ++w) {
    const float t = wsum[w];
    if (w < warp) before += t;
    total += t;
  }
  warp_offset = before;
  return total;
}

template <typename T, int N>
__device__ __forceinline__ void store_tile(T* out, int64_t len, int64_t tile_begin, const float (&v)[32 / N][N],
                                           float base) {
  constexpr int K = 32 / N;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int64_t wbeg = tile_begin + int64_t(warp) * (K * 32 * N);
#pragma unroll
  for (int k = 0; k < K; ++k) {
    const int64_t i = wbeg + (int64_t(k) * 32 + lane) * N;
    if (i < len) {
      Packed<T, N> p;
#pragma unroll
      for (int e = 0; e < N; ++e) p.v[e] = from_f32<T>(v[k][e] + base);
      store_packed<T, N>(out + i, p);
    }
  }
}

// One block per row, tiles in sequence. Each tile is fully read before it is written, so out
// may alias x.
template <typename T, int N>
__global__ void __launch_bounds__(kScanThreads) cumsum_rows_kernel(const T* x, T* y, int64_t rows, int64_t len) {
  __shared__ float wsum[kScanWarps];
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const T* in = x + r * len;
    T* out = y + r * len;
    float carry = 0.f;
    for (int64_t tb = 0; tb < len; tb += kTile) {
      float v[32 / N][N];
      float woff;
      const float total = scan_tile<T, N>(in, len, tb, v, wsum, woff);
      store_tile<T, N>(out, len, tb, v, carry + woff);
      carry += total;
      __syncthreads();  // wsum is rewritten by the next tile
    }
  }
}

// Look-back state at the start of the scratch; the 64-bit tile status words follow at byte 64.
struct ScanState {
  unsigned ticket;  // next tile to hand out
  unsigned done;    // blocks finished
  unsigned epoch;   // launches completed; tags this launch's status words
};
constexpr int64_t kStatusOffset = 64;
constexpr uint32_t kFlagAggregate = 1, kFlagInclusive = 2;
constexpr uint32_t kEpochMask = 0x3fffffffu;
template <typename T>
using DeviceAtomic = ::cuda::atomic_ref<T, ::cuda::thread_scope_device>;
constexpr auto kRelaxed = ::cuda::std::memory_order_relaxed;

// Status word: high 32 bits = epoch tag << 2 | flag, low 32 bits = the f32 value.
__device__ __forceinline__ void publish(unsigned long long* w, uint32_t flag, uint32_t tag, float value) {
  const unsigned long long word = (static_cast<unsigned long long>((tag << 2) | flag) << 32) | __float_as_uint(value);
  DeviceAtomic<unsigned long long>(*w).store(word, kRelaxed);
}

// Single pass: grid = rows * tiles_per_row blocks, tile = arrival ticket (so every tile a block
// waits for belongs to a block that is already running).
template <typename T, int N>
__global__ void __launch_bounds__(kScanThreads) cumsum_lookback_kernel(const T* x, T* y, int64_t len,
                                                                       uint32_t tiles_per_row, uint32_t tiles,
                                                                       ScanState* state,
                                                                       unsigned long long* status) {
  __shared__ float wsum[kScanWarps];
  __shared__ uint32_t s_tile, s_epoch;
  __shared__ float s_prefix;
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  if (tid == 0) {
    s_tile = atomicAdd(&state->ticket, 1u);
    s_epoch = DeviceAtomic<unsigned>(state->epoch).load(kRelaxed);
  }
  __syncthreads();
  const uint32_t tile = s_tile, tag = s_epoch & kEpochMask;
  const int64_t row = tile / tiles_per_row, j = tile % tiles_per_row;
  const T* in = x + row * len;
  T* out = y + row * len;

  float v[32 / N][N];
  float woff;
  const float total = scan_tile<T, N>(in, len, j * kTile, v, wsum, woff);

  if (warp == 0) {
    float prefix = 0.f;
    if (j > 0) {
      if (lane == 0) publish(status + tile, kFlagAggregate, tag, total);
      const int64_t first = int64_t(tile) - j;  // status index of the row's tile 0
      // Window of 32 predecessors (lane i looks at tile pred - i), nearest first.
      for (int64_t pred = j - 1;; pred -= 32) {
        const int64_t q = pred - lane;
        uint32_t flag = kFlagInclusive;  // before tile 0: nothing to add
        float val = 0.f;
        if (q >= 0) {
          DeviceAtomic<unsigned long long> ref(status[first + q]);
          unsigned long long w;
          for (;;) {
            w = ref.load(kRelaxed);
            const uint32_t hi = uint32_t(w >> 32);
            if ((hi & 3u) != 0 && (hi >> 2) == tag) break;
          }
          flag = uint32_t(w >> 32) & 3u;
          val = __uint_as_float(uint32_t(w));
        }
        const unsigned incl = __ballot_sync(0xffffffffu, flag == kFlagInclusive);
        const int stop = incl ? __ffs(int(incl)) - 1 : 31;  // nearest inclusive prefix in the window
        prefix += warp_allreduce(lane <= stop ? val : 0.f, SumOp{});
        if (incl) break;
      }
    }
    if (lane == 0) {
      publish(status + tile, kFlagInclusive, tag, prefix + total);
      s_prefix = prefix;
    }
  }
  __syncthreads();
  store_tile<T, N>(out, len, j * kTile, v, s_prefix + woff);

  if (tid == 0) {  // the last block to finish resets the tickets and opens the next epoch
    if (atomicAdd(&state->done, 1u) == tiles - 1) {
      state->done = 0;
      state->ticket = 0;
      DeviceAtomic<unsigned>(state->epoch)
          .store(state->epoch + 1, kRelaxed);
    }
  }
}

// Look-back scratch per (device, stream), grown on demand outside graph capture and never freed
// (a captured graph may hold a pointer to an older block). Returns nullptr when it cannot be had
// now (capturing and none large enough yet).
unsigned char* scan_scratch(cudaStream_t st, int64_t tiles) {
  struct Block {
    unsigned char* p = nullptr;
    int64_t tiles = 0;
  };
  static std::mutex mu;
  static std::map<std::pair<int, cudaStream_t>, Block> blocks;
  int dev = 0;
  LMK_CUDA_CHECK(cudaGetDevice(&dev));
  std::lock_guard<std::mutex> lock(mu);
  Block& b = blocks[{dev, st}];
  if (b.tiles >= tiles) return b.p;
  cudaStreamCaptureStatus capture = cudaStreamCaptureStatusNone;
  LMK_CUDA_CHECK(cudaStreamIsCapturing(st, &capture));
  if (capture != cudaStreamCaptureStatusNone) return nullptr;
  const int64_t n = std::max<int64_t>({tiles, 2 * b.tiles, 4096});
  const size_t bytes = size_t(kStatusOffset + 8 * n);
  void* p = nullptr;
  LMK_CUDA_CHECK(cudaMalloc(&p, bytes));
  LMK_CUDA_CHECK(cudaMemsetAsync(p, 0, bytes, st));  // zero state, all status words invalid
  b = {static_cast<unsigned char*>(p), n};
  return b.p;
}

template <typename T, int N>
void launch_cumsum(const T* x, T* y, int64_t rows, int64_t len, cudaStream_t st) {
  const int64_t tiles_per_row = ceil_div(len, kTile);
  const int64_t tiles = rows * tiles_per_row;
  if (tiles_per_row > 1 && rows < 4 * int64_t(sm_count()) && tiles <= int64_t(INT32_MAX)) {
    if (unsigned char* scratch = scan_scratch(st, tiles)) {
      cumsum_lookback_kernel<T, N><<<unsigned(tiles), kScanThreads, 0, st>>>(
          x, y, len, uint32_t(tiles_per_row), uint32_t(tiles), reinterpret_cast<ScanState*>(scratch),
          reinterpret_cast<unsigned long long*>(scratch + kStatusOffset));
      LMK_LAUNCH_CHECK(cumsum_lookback_kernel);
      return;
    }
  }
  cumsum_rows_kernel<T, N><<<unsigned(std::min(rows, kMaxGridRows)), kScanThreads, 0, st>>>(x, y, rows, len);
  LMK_LAUNCH_CHECK(cumsum_rows_kernel);
}

template <typename T>
void run_cumsum(const Tensor& x, const Tensor& out, int64_t rows, int64_t cols, cudaStream_t st) {
  constexpr int V = int(16 / sizeof(T));
  const T* px = x.data_as<T>();
  T* py = out.data_as<T>();
  if (cols % V == 0 && is_aligned(px, 16) && is_aligned(py, 16)) launch_cumsum<T, V>(px, py, rows, cols, st);
  else launch_cumsum<T, 1>(px, py, rows, cols, st);
}

}  // namespace

void row_sum(const Tensor& x, const Tensor& out, int64_t rows, int64_t cols, Stream& s) {
  const float* px = x.data_as<float>();
  float* py = out.data_as<float>();
  if (cols % 4 == 0 && is_aligned(px, 16)) launch_row_sum<4>(px, py, rows, cols, stream_of(s));
  else launch_row_sum<1>(px, py, rows, cols, stream_of(s));
}

void cumsum(const Tensor& x, const Tensor& out, int64_t rows, int64_t cols, Stream& s) {
  if (x.dtype() == DType::f32) run_cumsum<float>(x, out, rows, cols, stream_of(s));
  else run_cumsum<__nv_bfloat16>(x, out, rows, cols, stream_of(s));
}

}  // namespace lmk::cuda
