// Softmax kernels. Two shapes of work:
// - rows of up to 32768 elements (8192 on the scalar path for unaligned views): one block per
//   row, the row held in registers (VPT vectors per thread): one read, two block reductions
//   (max, sum), one write. Many f32 rows of up to 8192 instead read the row twice (the second
//   time from L2) and hold nothing across the reductions;
// - longer rows, or long rows when there are fewer rows than SMs: when the whole problem (from
//   256 KiB, 16-byte vectors, plain softmax) fits the GPU's registers at once, each row is split
//   over many ordinary blocks launched cooperatively: each block's slice loaded into registers
//   at once, (max, sum-of-exp) pairs exchanged through global memory at a per-row barrier, one
//   read and one write per element. Otherwise a thread-block cluster of up to 16 blocks per row.
//   Each block keeps its chunk in shared memory while it accumulates an online (max, sum-of-exp)
//   pair, the pairs meet through distributed shared memory, then each block writes its chunk.
//   When a chunk does not fit shared memory, it is read again instead.
// Edge semantics (spec §4) come out of the arithmetic: max with fmaxf, e = expf(x - max).
#include <cooperative_groups.h>

#include <algorithm>
#include <cmath>
#include <cuda/atomic>

#include "cuda/block_reduce.cuh"
#include "cuda/bulk.cuh"
#include "cuda/l2_hint.cuh"
#include "ops/softmax/backend.h"

namespace lmk::cuda {

namespace {
namespace cg = cooperative_groups;

constexpr float kNegInf = -INFINITY;
constexpr int kMaxRowFloats = 32;  // row elements one thread keeps in registers (16-byte vectors)
constexpr int kMaxRowScalars = 8;  // the same for scalar access (more address registers)
// Longest row of the one-block-per-row kernel (1024 threads).
template <int N>
constexpr int64_t kRowKernelMaxCols = int64_t(N == 1 ? kMaxRowScalars : kMaxRowFloats) * 1024;
template <int N>
constexpr int kMaxVpt = (N == 1 ? kMaxRowScalars : kMaxRowFloats) / N;
constexpr int kClusterThreads = 512;
// 16-byte vectors in flight per thread in the cluster kernel (fewer for 16-bit types, whose
// eight exp() per vector need more registers).
template <int N>
constexpr int kUnroll = N == 8 ? 2 : 4;
constexpr int64_t kPreferredChunkBytes = 64 << 10;
constexpr int64_t kMaxGridRows = 1 << 20;

// ---- row access policies ---------------------------------------------------------------------
// A policy yields, per row, loads of N consecutive values as `Cache` elements (what the
// cluster kernel keeps in shared memory) and stores of N f32 results.

template <typename T>
struct PlainRows {
  using Cache = T;
  static constexpr bool kMasked = false;
  static constexpr int kVec = int(16 / sizeof(T));
  const T* x;
  T* y;
  int64_t cols;

  struct Row {
    const T* x;
    T* y;
    template <int N, bool Streaming>
    __device__ __forceinline__ Packed<T, N> load(int64_t c) const {
      return load_vec<T, N, Streaming>(x + c);
    }
    // One 16-byte vector with an L2 eviction priority (evict-last: Keep, else evict-first).
    template <int N, bool Keep>
    __device__ __forceinline__ Packed<T, N> load_l2(int64_t c) const {
      static_assert(N * sizeof(T) == 16);
      const int4 q = load16_l2<Keep>(x + c);
      Packed<T, N> v;
      memcpy(&v, &q, 16);
      return v;
    }
    template <int N>
    __device__ __forceinline__ void store(int64_t c, const float (&o)[N]) const {
      Packed<T, N> p;
#pragma unroll
      for (int e = 0; e < N; ++e) p.v[e] = from_f32<T>(o[e]);
      store_packed<T, N>(y + c, p);
    }
  };
  __device__ __forceinline__ Row row(int64_t r) const { return {x + r * cols, y + r * cols}; }
};

// t = scores * scale + f32(mask[row mod seq_q]); cached as f32.
struct MaskedRows {
  using Cache = float;
  static constexpr bool kMasked = true;
  static constexpr int kVec = 4;
  const float* s;
  const __nv_bfloat16* mask;
  float* y;
  int64_t cols, seq_q;
  float scale;

  struct Row {
    const float* s;
    const __nv_bfloat16* mask;
    float* y;
    float scale;
    template <int N, bool Streaming>
    __device__ __forceinline__ Packed<float, N> load(int64_t c) const {
      Packed<float, N> a = load_vec<float, N, Streaming>(s + c);
      const Packed<__nv_bfloat16, N> b = load_packed<__nv_bfloat16, N>(mask + c);
#pragma unroll
      for (int e = 0; e < N; ++e) a.v[e] = a.v[e] * scale + __bfloat162float(b.v[e]);
      return a;
    }
    // The scores with an L2 eviction priority (evict-last: Keep, else evict-first); the mask is
    // shared by every head and stays on the default policy.
    template <int N, bool Keep>
    __device__ __forceinline__ Packed<float, N> load_l2(int64_t c) const {
      static_assert(N == 4);
      const int4 q = load16_l2<Keep>(s + c);
      Packed<float, N> a;
      memcpy(&a, &q, 16);
      const Packed<__nv_bfloat16, N> b = load_packed<__nv_bfloat16, N>(mask + c);
#pragma unroll
      for (int e = 0; e < N; ++e) a.v[e] = a.v[e] * scale + __bfloat162float(b.v[e]);
      return a;
    }
    template <int N>
    __device__ __forceinline__ void store(int64_t c, const float (&o)[N]) const {
      Packed<float, N> p;
#pragma unroll
      for (int e = 0; e < N; ++e) p.v[e] = o[e];
      store_packed<float, N>(y + c, p);
    }
  };
  __device__ __forceinline__ Row row(int64_t r) const {
    return {s + r * cols, mask + (r % seq_q) * cols, y + r * cols, scale};
  }
};

// ---- one block per row, row in registers -------------------------------------------------------

template <class P, int N, int VPT>
constexpr bool rows_prefetch() {
  return P::kMasked && VPT * sizeof(Packed<typename P::Cache, N>) <= 32;
}

template <class P, int N, int VPT>
__global__ void __launch_bounds__(1024) softmax_rows_kernel(P p, int64_t rows) {
  static_assert(VPT <= kMaxVpt<N>);
  __shared__ float red_max[32], red_sum[32];
  const int tid = threadIdx.x, nthr = blockDim.x;
  const int64_t nvec = p.cols / N;
  using C = typename P::Cache;
  // Rows in a grid-stride loop; the next row's loads are issued before this row is reduced, so a
  // block always has a row in flight. The row stays in registers as loaded (16-bit values stay
  // 16-bit: half the registers); f32 rows keep exp(x - max) in place, 16-bit rows evaluate exp
  // again for the output.
  // Prefetching doubles the row registers; it pays for masked rows of <= 32 bytes per thread
  // (H200: scale_mask_softmax 32x2048x2048 328 -> 318 us) but not for plain rows (bf16 16384x4096
  // 84 -> 98 us), which run one row per block.
  constexpr bool kPrefetch = rows_prefetch<P, N, VPT>();
  Packed<C, N> v[VPT], next[kPrefetch ? VPT : 1];
  auto load_row = [&](int64_t r, auto& dst) {
    const auto row = p.row(r);
#pragma unroll
    for (int k = 0; k < VPT; ++k) {
      const int64_t i = int64_t(k) * nthr + tid;
      if (i < nvec) dst[k] = row.template load<N, true>(i * N);
    }
  };
  if (blockIdx.x < rows) load_row(blockIdx.x, v);
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const auto row = p.row(r);
    if constexpr (kPrefetch)
      if (r + gridDim.x < rows) load_row(r + gridDim.x, next);  // out may alias x: other row
    float m = kNegInf;
#pragma unroll
    for (int k = 0; k < VPT; ++k)
      if (int64_t(k) * nthr + tid < nvec)
#pragma unroll
        for (int e = 0; e < N; ++e) m = fmaxf(m, to_f32(v[k].v[e]));
    m = block_allreduce(m, red_max, MaxOp{}, kNegInf);
    const bool zero = P::kMasked && m == kNegInf;  // fully masked row -> zeros
    float s = 0.f;
#pragma unroll
    for (int k = 0; k < VPT; ++k) {
      if (int64_t(k) * nthr + tid < nvec) {
#pragma unroll
        for (int e = 0; e < N; ++e) {
          const float ex = zero ? 0.f : expf(to_f32(v[k].v[e]) - m);
          if constexpr (sizeof(C) == 4) v[k].v[e] = ex;
          s += ex;
        }
      }
    }
    s = block_allreduce(s, red_sum, SumOp{}, 0.f);
    const float inv = P::kMasked ? (s > 0.f ? 1.f / s : 0.f) : 1.f / s;
#pragma unroll
    for (int k = 0; k < VPT; ++k) {
      const int64_t i = int64_t(k) * nthr + tid;
      if (i < nvec) {
        float o[N];
#pragma unroll
        for (int e = 0; e < N; ++e) {
          if constexpr (sizeof(C) == 4) o[e] = v[k].v[e] * inv;
          else o[e] = (zero ? 0.f : expf(to_f32(v[k].v[e]) - m)) * inv;
        }
        row.template store<N>(i * N, o);
      }
    }
    if constexpr (kPrefetch) {
#pragma unroll
      for (int k = 0; k < VPT; ++k) v[k] = next[k];
    } else if (r + gridDim.x < rows) {
      __syncthreads();  // stores of this row before loads of the next (in-place: disjoint rows anyway)
      load_row(r + gridDim.x, v);
    }
    __syncthreads();  // red_max / red_sum are rewritten by the next row
  }
}

// ---- online (max, sum) pairs ---------------------------------------------------------------------
// A pair (m, s) stands for sum_j exp(x_j - m) over the values seen, with m their fmaxf. While
// m is -inf every value seen is -inf (or NaN) and s counts 0 (NaN) for each, so merging never
// forms -inf - -inf; the final pass still evaluates exp(x - M) exactly as the spec does.

__device__ __forceinline__ float rescale(float s, float m, float to) { return m == to ? s : s * expf(m - to); }

// Commutative bit for bit, so butterfly merges leave every lane with the same pair.
__device__ __forceinline__ void merge(float& m, float& s, float m2, float s2) {
  const float to = fmaxf(m, m2);
  s = rescale(s, m, to) + rescale(s2, m2, to);
  m = to;
}

__device__ __forceinline__ void warp_merge(float& m, float& s) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    const float m2 = __shfl_xor_sync(0xffffffffu, m, o), s2 = __shfl_xor_sync(0xffffffffu, s, o);
    merge(m, s, m2, s2);
  }
}

template <int N>
__device__ __forceinline__ void online_add(float& m, float& s, const float (&v)[N]) {
  float vm = v[0];
#pragma unroll
  for (int e = 1; e < N; ++e) vm = fmaxf(vm, v[e]);
  if (vm > m) {
    s *= expf(m - vm);
    m = vm;
  }
  const float base = m == kNegInf ? 0.f : m;
#pragma unroll
  for (int e = 0; e < N; ++e) s += expf(v[e] - base);
}

// ---- many rows: each row read twice ---------------------------------------------------------------
// One block per row, V vectors per thread (thread t: vectors t, t + blockDim.x, ...). Pass 1 loads
// them with the L2 evict-last hint, reduces the row max, then the sum of exp(x - max) from the
// same registers; pass 2 loads the row again (L2 hits, evict-first) and writes exp(x - max) / sum.
// Nothing of the row is live after the sum, so large blocks run at full occupancy; the rows
// kernel holds the row (or its exponentials) in registers until the write.
template <class P, int V>
__global__ void __launch_bounds__(1024) softmax_reread_kernel(P p) {
  constexpr int N = P::kVec;
  using C = typename P::Cache;
  __shared__ float red_max[32], red_sum[32];
  const int tid = threadIdx.x;
  const int64_t nvec = p.cols / N;
  const auto row = p.row(blockIdx.x);
  float m = kNegInf, s = 0.f;
  {
    Packed<C, N> v[V];
#pragma unroll
    for (int k = 0; k < V; ++k) {
      const int64_t i = tid + int64_t(k) * blockDim.x;
      if (i < nvec) v[k] = row.template load_l2<N, true>(i * N);
    }
#pragma unroll
    for (int k = 0; k < V; ++k)
      if (tid + int64_t(k) * blockDim.x < nvec)
#pragma unroll
        for (int e = 0; e < N; ++e) m = fmaxf(m, to_f32(v[k].v[e]));
    m = block_allreduce(m, red_max, MaxOp{}, kNegInf);
    if (!(P::kMasked && m == kNegInf)) {
#pragma unroll
      for (int k = 0; k < V; ++k)
        if (tid + int64_t(k) * blockDim.x < nvec)
#pragma unroll
          for (int e = 0; e < N; ++e) s += expf(to_f32(v[k].v[e]) - m);
    }
  }
  s = block_allreduce(s, red_sum, SumOp{}, 0.f);
  const bool zero = P::kMasked && m == kNegInf;  // fully masked row -> zeros
  const float inv = P::kMasked ? (s > 0.f ? 1.f / s : 0.f) : 1.f / s;
#pragma unroll
  for (int k = 0; k < V; ++k) {
    const int64_t i = tid + int64_t(k) * blockDim.x;
    if (i < nvec) {
      const Packed<C, N> v = row.template load_l2<N, false>(i * N);
      float o[N];
#pragma unroll
      for (int e = 0; e < N; ++e) o[e] = (zero ? 0.f : expf(to_f32(v.v[e]) - m)) * inv;
      row.template store<N>(i * N, o);
    }
  }
}

// ---- a cluster of blocks per row -----------------------------------------------------------------
// Block `rank` of the cluster owns columns [rank * chunk, (rank + 1) * chunk) of its row (chunk
// a multiple of N). Cached: the chunk stays in dynamic shared memory between the two passes.

template <class P, int N, bool Cached>
__global__ void __launch_bounds__(kClusterThreads, 2) softmax_cluster_kernel(P p, int64_t rows, int64_t chunk) {
  using C = typename P::Cache;
  extern __shared__ __align__(16) unsigned char smem[];
  Packed<C, N>* cache = reinterpret_cast<Packed<C, N>*>(smem);
  __shared__ float red_m[32], red_s[32];
  __shared__ float2 part;
  cg::cluster_group cluster = cg::this_cluster();
  const int cs = int(cluster.num_blocks()), rank = int(cluster.block_rank());
  const int tid = threadIdx.x, nthr = blockDim.x, lane = tid & 31, warp = tid >> 5, nwarps = nthr >> 5;
  const int64_t begin = std::min(p.cols, rank * chunk), end = std::min(p.cols, begin + chunk);
  const int64_t vbeg = begin / N, vend = end / N;
  const int64_t step = int64_t(kUnroll<N>) * nthr;
  // Plain rows with a cached chunk arrive by one bulk copy (the copy engine keeps the whole chunk
  // in flight at once); masked rows are transformed while loaded, so they use vector loads.
  constexpr bool kBulk = Cached && !P::kMasked && sizeof(Packed<C, N>) % 16 == 0;
  __shared__ uint64_t bar;
  uint32_t parity = 0;
  if constexpr (kBulk) {
    if (tid == 0) mbar_init(&bar);
    __syncthreads();
  }

  for (int64_t r = blockIdx.x / cs; r < rows; r += gridDim.x / cs) {
    const auto row = p.row(r);
    // Pass 1: online (max, sum) over this block's chunk.
    float m = kNegInf, s = 0.f;
    if constexpr (kBulk) {
      if (vend > vbeg) {
        if (tid == 0) {
          const uint32_t bytes = uint32_t((vend - vbeg) * int64_t(sizeof(Packed<C, N>)));
          mbar_expect_tx(&bar, bytes);
          constexpr uint32_t kPiece = 32 << 10;
          const unsigned char* src = reinterpret_cast<const unsigned char*>(&row.x[vbeg * N]);
          for (uint32_t off = 0; off < bytes; off += kPiece)
            bulk_load(smem + off, src + off, min(kPiece, bytes - off), &bar);
        }
        mbar_wait(&bar, parity);
        parity ^= 1;
        for (int64_t i = vbeg + tid; i < vend; i += nthr) {
          const Packed<C, N> raw = cache[i - vbeg];
          float v[N];
#pragma unroll
          for (int e = 0; e < N; ++e) v[e] = to_f32(raw.v[e]);
          online_add(m, s, v);
        }
      }
    }
    for (int64_t i0 = vbeg + tid; !kBulk && i0 < vend; i0 += step) {
      Packed<C, N> raw[kUnroll<N>];
#pragma unroll
      for (int u = 0; u < kUnroll<N>; ++u) {
        const int64_t i = i0 + int64_t(u) * nthr;
        if (i < vend) raw[u] = row.template load<N, Cached>(i * N);
      }
#pragma unroll
      for (int u = 0; u < kUnroll<N>; ++u) {
        const int64_t i = i0 + int64_t(u) * nthr;
        if (i < vend) {
          if constexpr (Cached) cache[i - vbeg] = raw[u];
          float v[N];
#pragma unroll
          for (int e = 0; e < N; ++e) v[e] = to_f32(raw[u].v[e]);
          online_add(m, s, v);
        }
      }
    }
    warp_merge(m, s);
    if (lane == 0) {
      red_m[warp] = m;
      red_s[warp] = s;
    }
    __syncthreads();
    m = lane < nwarps ? red_m[lane] : kNegInf;
    s = lane < nwarps ? red_s[lane] : 0.f;
    warp_merge(m, s);
    if (tid == 0) part = make_float2(m, s);
    cluster.sync();  // every block's pair is visible cluster-wide

    // Row totals: each warp merges the cluster's pairs (lane i reads block i's).
    float rm = kNegInf, rs = 0.f;
    if (lane < cs) {
      const float2 q = *cluster.map_shared_rank(&part, lane);
      rm = q.x;
      rs = q.y;
    }
    warp_merge(rm, rs);
    const bool zero = P::kMasked && rm == kNegInf;
    const float inv = P::kMasked ? (rs > 0.f ? 1.f / rs : 0.f) : 1.f / rs;

    // Pass 2: y = exp(x - max) * (1 / sum).
    for (int64_t i0 = vbeg + tid; i0 < vend; i0 += step) {
      Packed<C, N> raw[kUnroll<N>];
#pragma unroll
      for (int u = 0; u < kUnroll<N>; ++u) {  // all loads before any store (out may alias x)
        const int64_t i = i0 + int64_t(u) * nthr;
        if (i < vend) {
          if constexpr (Cached) raw[u] = cache[i - vbeg];
          else raw[u] = row.template load<N, false>(i * N);
        }
      }
#pragma unroll
      for (int u = 0; u < kUnroll<N>; ++u) {
        const int64_t i = i0 + int64_t(u) * nthr;
        if (i < vend) {
          float o[N];
#pragma unroll
          for (int e = 0; e < N; ++e) o[e] = (zero ? 0.f : expf(to_f32(raw[u].v[e]) - rm)) * inv;
          row.template store<N>(i * N, o);
        }
      }
    }
    // No block may leave (or overwrite part / the cache for the next row) while a peer still
    // reads its pair; the proxy fence orders this row's cache reads before the next bulk copy.
    if constexpr (kBulk) fence_proxy_async();
    cluster.sync();
  }
}

// ---- many blocks per row, all resident, row in registers (few long rows) ----------------------
// A cluster holds at most 16 blocks and a lone row then gets only 16 SMs, whose loads take
// several microseconds each. Here a row is split over B ordinary blocks of kSplitThreads
// threads, launched cooperatively (every block resident, so blocks may wait for each other):
// block b loads its slice at once into registers (VPT 16-byte vectors per thread: all its bytes
// in flight), reduces it to a (max, sum-of-exp) pair, publishes the pair in global memory and
// meets the row's other blocks at a per-row counter barrier; every block then merges the row's
// B pairs in the same fixed order (bit-identical totals everywhere, deterministic) and writes
// y = exp(x - M) / S from its registers. One DRAM read and one write per element.
// H100, cold: 16x262144 f32 24.7 -> 18.7 us (the bulk-copy shared-memory version before it),
// one 151936 f32 row 11.3 -> 8.9 us (the cluster kernel); the barrier is about 2.3 us of it.
constexpr int kSplitThreads = 512;
constexpr int kSplitMaxVpt = 8;
// From about 256 KiB on the split beats the cluster kernel (one 151936 bf16 row: 8.0 against 10.4 us).
constexpr int64_t kSplitMinBytes = 256 << 10;
constexpr unsigned kPhaseBit = 0x80000000u;

template <typename T>
using DeviceAtomic = ::cuda::atomic_ref<T, ::cuda::thread_scope_device>;

// Barrier of `nblk` blocks on one counter that needs no reset: block 0 adds kPhaseBit - (nblk - 1),
// the others 1, so the top bit flips exactly when the last block arrives and the low bits come
// back to where they were (zero). One thread per block calls it; `part` writes made before it
// are visible to the other blocks after it.
__device__ __forceinline__ void row_barrier(unsigned* counter, int b, int nblk) {
  DeviceAtomic<unsigned> c(*counter);
  const unsigned add = b == 0 ? kPhaseBit - unsigned(nblk - 1) : 1u;
  const unsigned old = c.fetch_add(add, ::cuda::std::memory_order_acq_rel);
  while (((c.load(::cuda::std::memory_order_acquire) ^ old) & kPhaseBit) == 0) __nanosleep(20);
}

// Resident blocks per SM the split kernel is compiled for: registers for VPT · N values per
// thread (f32 VPT 4: 4 blocks of 512 threads, 32 registers, so 16 rows of 262144 fit the GPU).
template <typename T, int VPT>
constexpr int split_min_blocks() {
  constexpr int values = VPT * int(16 / sizeof(T));
  return values <= 16 ? 4 : values <= 32 ? 2 : 1;
}

// Block b of a row owns vectors [b·cv, (b + 1)·cv) of it; thread t holds vectors t + k·threads.
template <typename T, int VPT>
__global__ void __launch_bounds__(kSplitThreads, split_min_blocks<T, VPT>())
    softmax_split_kernel(const T* x, T* y, int64_t cols, int cv, int nblk, unsigned* count, unsigned long long* part) {
  constexpr int N = int(16 / sizeof(T));  // values per 16-byte vector
  __shared__ float red_m[32], red_s[32];
  __shared__ float2 total;
  const int tid = threadIdx.x, nthr = blockDim.x, lane = tid & 31, warp = tid >> 5, nwarps = nthr >> 5;
  const int64_t row = blockIdx.x / unsigned(nblk);
  const int b = int(blockIdx.x % unsigned(nblk));
  const int64_t begin = int64_t(b) * cv * N;
  const int nv = int(std::min<int64_t>(int64_t(cv) * N, cols - begin) / N);  // vectors of this block (> 0)
  using V = Packed<T, N>;
  const V* src = reinterpret_cast<const V*>(x + row * cols + begin);
  V v[VPT];
#pragma unroll
  for (int k = 0; k < VPT; ++k)
    if (k * nthr + tid < nv) v[k] = load_vec<T, N, true>(reinterpret_cast<const T*>(src + k * nthr + tid));

  float m = kNegInf;
#pragma unroll
  for (int k = 0; k < VPT; ++k)
    if (k * nthr + tid < nv)
#pragma unroll
      for (int e = 0; e < N; ++e) m = fmaxf(m, to_f32(v[k].v[e]));
  float s = 0.f;
  const float off = m == kNegInf ? 0.f : m;  // all -inf so far: e = 0, never -inf - -inf
#pragma unroll
  for (int k = 0; k < VPT; ++k)
    if (k * nthr + tid < nv)
#pragma unroll
      for (int e = 0; e < N; ++e) s += expf(to_f32(v[k].v[e]) - off);

  // Block pair, then the row's pairs.
  warp_merge(m, s);
  if (lane == 0) {
    red_m[warp] = m;
    red_s[warp] = s;
  }
  __syncthreads();
  if (warp == 0) {
    float bm = lane < nwarps ? red_m[lane] : kNegInf, bs = lane < nwarps ? red_s[lane] : 0.f;
    warp_merge(bm, bs);
    if (nblk > 1) {
      unsigned long long* row_part = part + row * nblk;
      if (lane == 0) {
        const unsigned long long w = (static_cast<unsigned long long>(__float_as_uint(bs)) << 32) | __float_as_uint(bm);
        DeviceAtomic<unsigned long long>(row_part[b]).store(w, ::cuda::std::memory_order_relaxed);
        row_barrier(count + row, b, nblk);
      }
      __syncwarp();
      // Lane l merges blocks l, l + 32, ... in order, then the butterfly: the same result in
      // every block of the row. (Lane 0's acquire at the barrier orders these loads.)
      bm = kNegInf;
      bs = 0.f;
      for (int q = lane; q < nblk; q += 32) {
        const unsigned long long w = DeviceAtomic<unsigned long long>(row_part[q]).load(::cuda::std::memory_order_relaxed);
        merge(bm, bs, __uint_as_float(uint32_t(w)), __uint_as_float(uint32_t(w >> 32)));
      }
      warp_merge(bm, bs);
    }
    if (lane == 0) total = make_float2(bm, bs);
  }
  __syncthreads();

  const float rm = total.x, inv = 1.f / total.y;
  V* out = reinterpret_cast<V*>(y + row * cols + begin);
#pragma unroll
  for (int k = 0; k < VPT; ++k)
    if (k * nthr + tid < nv) {
      V o;
#pragma unroll
      for (int e = 0; e < N; ++e) o.v[e] = from_f32<T>(expf(to_f32(v[k].v[e]) - rm) * inv);
      store_packed_stream<T, N>(reinterpret_cast<T*>(out + k * nthr + tid), o);
    }
}

// ---- launchers ------------------------------------------------------------------------------------

int64_t round_up(int64_t a, int64_t b) { return ceil_div(a, b) * b; }

template <class P, int N, int VPT>
void launch_rows_vpt(const P& p, int64_t rows, int vpt, int threads, cudaStream_t st) {
  if constexpr (VPT < kMaxVpt<N>) {
    if (vpt > VPT) return launch_rows_vpt<P, N, VPT * 2>(p, rows, vpt, threads, st);
  }
  // Prefetching kernels: as many blocks as are resident at once, each looping over rows with the
  // next row in flight. Otherwise one row per block.
  int64_t grid = std::min(rows, kMaxGridRows);
  if constexpr (rows_prefetch<P, N, VPT>()) {
    const int per_sm = max_active_blocks(reinterpret_cast<const void*>(softmax_rows_kernel<P, N, VPT>), threads);
    grid = std::min<int64_t>(rows, int64_t(per_sm) * sm_count());
  }
  softmax_rows_kernel<P, N, VPT><<<unsigned(grid), threads, 0, st>>>(p, rows);
  LMK_LAUNCH_CHECK(softmax_rows_kernel);
}

// Smallest power-of-two VPT that needs <= 256 threads, else the largest VPT (<= 1024 threads).
// (128-thread blocks for rows under 16 KB measured slower on H200: bf16 16384x4096 87 -> 99 us.)
template <class P, int N>
void launch_rows(const P& p, int64_t rows, cudaStream_t st) {
  const int64_t nvec = p.cols / N;
  // 16-bit rows (cached raw, 16 registers for 4 vectors) use 128-thread blocks: twice the bytes
  // in flight per SM (H200, bf16 16384x4096: 96 us at 256 threads, 84 us at 128).
  // LMK_SOFTMAX_ROW_THREADS (masked rows: LMK_SOFTMAX_MASKED_ROW_THREADS) overrides the target
  // for sweeps.
  static const int plain_target = int(tuning("LMK_SOFTMAX_ROW_THREADS", 0));
  static const int masked_target = int(tuning("LMK_SOFTMAX_MASKED_ROW_THREADS", 0));
  const int tuned = P::kMasked ? masked_target : plain_target;
  const int target = tuned >= 32 ? std::min(tuned, 1024) : sizeof(typename P::Cache) == 2 ? 128 : 256;
  auto threads_for = [&](int vpt) { return int(round_up(ceil_div(nvec, vpt), 32)); };
  int vpt = 1;
  while (vpt < kMaxVpt<N> && threads_for(vpt) > target) vpt *= 2;
  launch_rows_vpt<P, N, 1>(p, rows, vpt, threads_for(vpt), st);
}

template <class P, int N>
void launch_cluster(const P& p, int64_t rows, cudaStream_t st) {
  using C = typename P::Cache;
  auto* cached = softmax_cluster_kernel<P, N, true>;
  const ClusterLimits lim = cluster_limits(reinterpret_cast<const void*>(cached), kClusterThreads, true);
  const int64_t sms = sm_count();
  auto chunk_for = [&](int cs) { return round_up(ceil_div(p.cols, cs), N); };
  int cs = 1;
  while (cs < lim.max_cluster &&
         (rows * cs < 2 * sms || chunk_for(cs) * int64_t(sizeof(C)) > kPreferredChunkBytes))
    cs *= 2;
  const int64_t grid_rows = std::min(rows, kMaxGridRows);
  const int64_t bytes = chunk_for(cs) * int64_t(sizeof(C));
  if (bytes <= lim.max_smem) {
    launch_clustered(cached, unsigned(grid_rows * cs), kClusterThreads, cs, size_t(bytes), st, p, rows,
                     chunk_for(cs));
    return;
  }
  // The row is too long for the cluster's shared memory: read it twice.
  auto* streamed = softmax_cluster_kernel<P, N, false>;
  const ClusterLimits lim2 = cluster_limits(reinterpret_cast<const void*>(streamed), kClusterThreads, false);
  cs = lim2.max_cluster;
  launch_clustered(streamed, unsigned(grid_rows * cs), kClusterThreads, cs, 0, st, p, rows, chunk_for(cs));
}

// Launches the split kernel with the fewest vectors per thread whose grid is resident at once
// (fewer per thread: more SMs share a row); returns false when no VPT fits or no scratch is at
// hand (the caller falls back to the cluster kernel).
template <typename T, int VPT = 1>
bool launch_split(const T* x, T* y, int64_t rows, int64_t cols, cudaStream_t st) {
  constexpr int N = int(16 / sizeof(T));
  if (rows * cols * int64_t(sizeof(T)) < kSplitMinBytes) return false;
  const int64_t vec = cols / N;
  const int64_t nblk = ceil_div(vec, int64_t(VPT) * kSplitThreads);
  const int64_t grid = rows * nblk;
  const int per_sm = max_active_blocks(reinterpret_cast<const void*>(softmax_split_kernel<T, VPT>), kSplitThreads);
  if (grid > int64_t(per_sm) * sm_count() || grid > int64_t(INT32_MAX)) {
    if constexpr (VPT < kSplitMaxVpt) return launch_split<T, VPT * 2>(x, y, rows, cols, st);
    else return false;
  }
  const int64_t cv = ceil_div(vec, nblk);  // vectors per block, balanced over the row's blocks
  // Scratch: one barrier counter per row, then one (max, sum) word per block.
  const int64_t count_bytes = round_up(rows * 4, 256);
  unsigned char* scratch = stream_scratch(reinterpret_cast<const void*>(softmax_split_kernel<T, 1>), st,
                                          size_t(count_bytes + grid * 8));
  if (!scratch) return false;
  cudaLaunchAttribute attr[1];
  attr[0].id = cudaLaunchAttributeCooperative;
  attr[0].val.cooperative = 1;
  cudaLaunchConfig_t cfg{};
  cfg.gridDim = dim3(unsigned(grid));
  cfg.blockDim = dim3(unsigned(kSplitThreads));
  cfg.stream = st;
  cfg.attrs = attr;
  cfg.numAttrs = 1;
  LMK_CUDA_CHECK(cudaLaunchKernelEx(&cfg, softmax_split_kernel<T, VPT>, x, y, cols, int(cv), int(nblk),
                                    reinterpret_cast<unsigned*>(scratch),
                                    reinterpret_cast<unsigned long long*>(scratch + count_bytes)));
  return true;
}

template <class P, int N>
void run_n(const P& p, int64_t rows, cudaStream_t st) {
  const bool long_rows = p.cols > kRowKernelMaxCols<N> || (rows < sm_count() && p.cols >= 8192);
  if constexpr (N * sizeof(typename P::Cache) == 16) {
    // Many f32 rows: the read-twice kernel, V = 2 (32 bytes per thread). Measured on the H100 at
    // 16384 x 4096: f32 184.4 -> 180.9 us (V = 1: 218, V = 4: 192); bf16 rows stay on the rows
    // kernel (95.8 us there, 106 read twice: its second exp per element is not hidden), and so do
    // masked rows (32 x 2048 x 2048: 424 us there, 440 read twice); the knobs force it for checks.
    constexpr int kRereadVecs = 2;
    const int64_t nvec = p.cols / N;
    const int64_t reread = tuning(P::kMasked ? "LMK_MASKED_SOFTMAX_REREAD" : "LMK_SOFTMAX_REREAD", -1);  // -1 rule, 0 off, 1 on
    if (reread != 0 && nvec <= 1024 * kRereadVecs && rows <= kMaxGridRows &&
        (reread == 1 || (!P::kMasked && sizeof(typename P::Cache) == 4 && rows >= 4 * int64_t(sm_count()) && nvec >= 128))) {
      const unsigned threads = unsigned(round_up(ceil_div(nvec, kRereadVecs), 32));
      softmax_reread_kernel<P, kRereadVecs><<<unsigned(rows), threads, 0, st>>>(p);
      LMK_LAUNCH_CHECK(softmax_reread_kernel);
      return;
    }
  }
  if (!long_rows) return launch_rows<P, N>(p, rows, st);
  // Plain rows of whole 16-byte vectors: many blocks per row when the grid fits the GPU.
  if constexpr (!P::kMasked && N * sizeof(typename P::Cache) == 16) {
    if (launch_split(p.x, p.y, rows, p.cols, st)) return;
  }
  launch_cluster<P, N>(p, rows, st);
}

template <class P>
void run(const P& p, int64_t rows, bool vec, cudaStream_t st) {
  if (vec) run_n<P, P::kVec>(p, rows, st);
  else run_n<P, 1>(p, rows, st);
}

}  // namespace

void softmax(const Tensor& x, const Tensor& out, int64_t rows, int64_t cols, Stream& s) {
  dispatch_float("softmax", x.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    const PlainRows<T> p{x.data_as<T>(), out.data_as<T>(), cols};
    const bool vec = cols % PlainRows<T>::kVec == 0 && is_aligned(p.x, 16) && is_aligned(p.y, 16);
    run(p, rows, vec, stream_of(s));
  });
}

void scale_mask_softmax(const Tensor& scores, const Tensor& mask, const Tensor& out, int64_t rows, int64_t cols,
                        int64_t seq_q, float scale, Stream& s) {
  const MaskedRows p{scores.data_as<float>(), mask.data_as<__nv_bfloat16>(), out.data_as<float>(), cols, seq_q, scale};
  const bool vec = cols % MaskedRows::kVec == 0 && is_aligned(p.s, 16) && is_aligned(p.y, 16) && is_aligned(p.mask, 8);
  run(p, rows, vec, stream_of(s));
}

}  // namespace lmk::cuda
