// Row norms on CUDA. Two kernel templates share the per-element code (load_row / store_row):
//  - norm_cached<G>: the row stays in registers (up to kVecs 16-byte vectors per thread), read
//    once, reduced, then normalized and written from registers. G > 0: G lanes per row and
//    kGroupThreads / G rows per CTA, warp-shuffle reduction only (short rows). G == 0: one CTA
//    per row, warp shuffles + one small shared array.
//  - norm_reread<V>: many rows (decode-sized calls keep norm_cached): V vectors per thread, read
//    twice (the second time from L2), so nothing of the row is live across the reduction and
//    registers stay low enough for full occupancy at large CTAs.
//  - norm_two_pass<N>: rows longer than the register cache (N = vector width) and views that
//    are not 16-byte aligned or have D % vector width != 0 (N = 1): pass 1 reduces, pass 2
//    re-reads the row and writes it.
// Every element is read again (if at all) only by the thread that writes it, and only after the
// whole row has been reduced, so outputs may alias the row inputs exactly.
#include <algorithm>
#include <type_traits>
#include <climits>

#include "cuda/common.cuh"
#include "cuda/l2_hint.cuh"
#include "ops/norm/backend.h"

namespace lmk::cuda {

namespace {

constexpr int kVecs = 4;            // register cache: 16-byte vectors per thread
constexpr int kGroupThreads = 256;  // CTA size of the lanes-per-row kernels
constexpr int kMaxThreads = 1024;   // CTA size limit of the one-CTA-per-row kernels
constexpr int kPrefetchRows = 64;   // calls with at most this many rows prefetch the weight

template <typename T> struct WeightOf { using type = float; };
template <> struct WeightOf<__nv_bfloat16> { using type = __nv_bfloat16; };

template <typename T>
struct Args {
  using W = typename WeightOf<T>::type;
  const T* x;
  const T* res;
  const T* scale;
  const W* w;
  const float* scalar;
  bool scalar_per_col;
  bool mean;
  T* out;
  T* sum_out;
  int64_t rows, dim;
  float eps;
};

// Cache hint of a 16-byte load: row data read once (streaming), tensors that no thread writes
// (weight, scalar: read-only path), anything else (default).
// keep / drop: L2 evict-last for a first read whose lines are read again soon, evict-first for
// that second read.
enum class Hint : uint8_t { normal, streaming, readonly, keep, drop };

template <Hint H>
__device__ __forceinline__ int4 load16(const void* p) {
  const int4* q = static_cast<const int4*>(p);
  if constexpr (H == Hint::streaming) return __ldcs(q);
  else if constexpr (H == Hint::readonly) return __ldg(q);
  else if constexpr (H == Hint::keep) return load16_l2<true>(q);
  else if constexpr (H == Hint::drop) return load16_l2<false>(q);
  else return __ldca(q);
}

// N consecutive elements at p widened to f32: whole 16-byte vectors where N elements fill them
// (the launcher checked the alignment), single elements otherwise.
template <int N, Hint H = Hint::normal, typename E>
__device__ __forceinline__ void load_f32(const E* p, float (&v)[N]) {
  constexpr int kPer = int(16 / sizeof(E));
  if constexpr (N % kPer == 0) {
#pragma unroll
    for (int c = 0; c < N / kPer; ++c) {
      const int4 raw = load16<H>(p + c * kPer);
      E e[kPer];
      memcpy(e, &raw, 16);
#pragma unroll
      for (int j = 0; j < kPer; ++j) v[c * kPer + j] = to_f32(e[j]);
    }
  } else {
#pragma unroll
    for (int j = 0; j < N; ++j) v[j] = to_f32(p[j]);
  }
}

// Rounds N f32 values to E and stores them (16-byte vectors where they fill them). The vector
// store is explicit (st.global.wb.v4) so that it is never split into element stores.
template <int N, typename E>
__device__ __forceinline__ void store_f32(E* p, const float (&y)[N]) {
  constexpr int kPer = int(16 / sizeof(E));
  if constexpr (N % kPer == 0) {
#pragma unroll
    for (int c = 0; c < N / kPer; ++c) {
      E e[kPer];
#pragma unroll
      for (int j = 0; j < kPer; ++j) e[j] = from_f32<E>(y[c * kPer + j]);
      int4 raw;
      memcpy(&raw, e, 16);
      __stwb(reinterpret_cast<int4*>(p + c * kPer), raw);
    }
  } else {
#pragma unroll
    for (int j = 0; j < N; ++j) p[j] = from_f32<E>(y[j]);
  }
}

// Asks L2 for the line holding p (no register, no wait): lets the weight of a decode-sized call
// arrive while the row is being loaded and reduced.
__device__ __forceinline__ void prefetch_l2(const void* p) { asm volatile("prefetch.global.L2 [%0];" ::"l"(p)); }

// The reduced values of the N elements at offset off: x, or residual + input (f32).
template <NormKind K, int N, Hint H, typename T>
__device__ __forceinline__ void load_row(const Args<T>& a, int64_t off, float (&v)[N]) {
  load_f32<N, H>(a.x + off, v);
  if constexpr (K == NormKind::residual) {
    float r[N];
    load_f32<N, H>(a.res + off, r);
#pragma unroll
    for (int j = 0; j < N; ++j) v[j] = r[j] + v[j];
  }
}

// Writes the outputs of the N elements at offset off (column col) from their values v.
template <NormKind K, int N, typename T>
__device__ __forceinline__ void store_row(const Args<T>& a, int64_t off, int64_t col, const float (&v)[N], float r) {
  float w[N], y[N];
  if (a.w) {
    load_f32<N, Hint::readonly>(a.w + col, w);
  } else {
#pragma unroll
    for (int j = 0; j < N; ++j) w[j] = 1.0f;  // exact: x·r·1 == x·r
  }
#pragma unroll
  for (int j = 0; j < N; ++j) y[j] = v[j] * r * w[j];
  if constexpr (K == NormKind::mul) {
    float m[N];
    load_f32<N>(a.scale + off, m);
#pragma unroll
    for (int j = 0; j < N; ++j) y[j] = y[j] * m[j];
  }
  if constexpr (K == NormKind::add) {
    float rs[N];
    load_f32<N>(a.res + off, rs);
#pragma unroll
    for (int j = 0; j < N; ++j) y[j] = rs[j] + y[j];
  }
  if constexpr (K == NormKind::add || K == NormKind::residual) {
    if (a.scalar) {
      float s[N];
      if (a.scalar_per_col) {
        load_f32<N, Hint::readonly>(a.scalar + col, s);
      } else {
#pragma unroll
        for (int j = 0; j < N; ++j) s[j] = a.scalar[0];
      }
#pragma unroll
      for (int j = 0; j < N; ++j) y[j] = y[j] * s[j];
    }
  }
  store_f32<N>(a.out + off, y);
  if constexpr (K == NormKind::residual) {
    if (a.sum_out) store_f32<N>(a.sum_out + off, v);
  }
}

// Sum over aligned groups of G lanes (G a power of two <= 32); every lane of a group gets the
// same bits (the xor butterfly adds the same pairs in every lane). All 32 lanes must call it.
template <int G>
__device__ __forceinline__ float group_sum(float v) {
#pragma unroll
  for (int o = G / 2; o > 0; o /= 2) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

// Sum over the CTA (blockDim.x a multiple of 32); every thread gets the same total. A second call
// needs a __syncthreads() after the first (the shared partials are rewritten).
__device__ __forceinline__ float block_sum(float v) {
  __shared__ float partial[32];
  v = group_sum<32>(v);
  if (threadIdx.x % 32 == 0) partial[threadIdx.x / 32] = v;
  __syncthreads();
  float total = 0;
  for (int i = 0; i < int(blockDim.x / 32); ++i) total += partial[i];
  return total;
}

template <typename T>
__device__ __forceinline__ float inv_rms(const Args<T>& a, float sum_sq) {
  return rsqrtf((a.mean ? sum_sq / float(a.dim) : sum_sq) + a.eps);
}

// Cached row data as f32: raw 16-byte vectors are unpacked, f32 arrays copied.
template <int N, typename T>
__device__ __forceinline__ void widen(const int4& raw, float (&v)[N]) {
  T e[N];
  memcpy(e, &raw, 16);
#pragma unroll
  for (int j = 0; j < N; ++j) v[j] = to_f32(e[j]);
}
template <int N, typename T>
__device__ __forceinline__ void widen(const float (&c)[N], float (&v)[N]) {
#pragma unroll
  for (int j = 0; j < N; ++j) v[j] = c[j];
}

// Whether the one-CTA-per-row kernel loops over rows with the next row prefetched: only for raw
// 16-bit rows. Measured on H200: f32 rows got slower with it (rms_norm 139 -> 148 us), and 16-bit
// residual rows (f32 cache of 32 floats) would spill.
template <NormKind K, typename T>
constexpr bool row_loop() {
  return sizeof(T) == 2 && K != NormKind::residual;
}

// Row in registers. Requires dim % N == 0, 16-byte aligned row pointers and
// dim / N <= kVecs * (G ? G : blockDim.x). Lane l holds vectors l, l + lanes, l + 2·lanes, ...
template <NormKind K, typename T, int G>
__global__ void __launch_bounds__(G ? kGroupThreads : kMaxThreads) norm_cached(Args<T> a) {
  constexpr int N = int(16 / sizeof(T));
  const int lanes = G ? G : int(blockDim.x);
  const int lane = G ? int(threadIdx.x) % G : int(threadIdx.x);
  const int64_t nvec = a.dim / N;
  const bool prefetch_w = G == 0 && a.w != nullptr && a.rows <= kPrefetchRows;  // decode-sized calls
  // 16-bit rows without a residual stay in registers as raw 16-byte vectors (half the registers
  // of f32) and are widened again when written.
  constexpr bool kRaw = sizeof(T) == 2 && K != NormKind::residual;
  // One CTA per row: a grid-stride loop over rows that loads the next row before reducing this
  // one, so a CTA always has a row in flight (8 KB bf16 rows are too short to keep HBM busy one
  // row per CTA: measured 72% of copy on H200, 82% with the loop).
  constexpr bool kLoop = G == 0 && row_loop<K, T>();
  using Cached = std::conditional_t<kRaw, int4, float[N]>;
  Cached c[kVecs], next[kLoop ? kVecs : 1];

  auto load = [&](int64_t row, auto& dst) {
    const bool live = row < a.rows;
    const int64_t base = row * a.dim;
#pragma unroll
    for (int k = 0; k < kVecs; ++k) {
      const int64_t i = lane + int64_t(k) * lanes;
      if (live && i < nvec) {
        if (prefetch_w) prefetch_l2(a.w + i * N);
        if constexpr (kRaw) dst[k] = load16<Hint::streaming>(a.x + base + i * N);
        else load_row<K, N, Hint::streaming>(a, base + i * N, dst[k]);
      } else {
        if constexpr (kRaw) dst[k] = make_int4(0, 0, 0, 0);
        else
#pragma unroll
          for (int j = 0; j < N; ++j) dst[k][j] = 0.0f;
      }
    }
  };
  // Reduces the cached row and writes it. Every lane of the CTA (or group) must call it.
  auto finish = [&](int64_t row) {
    const bool live = row < a.rows;  // G > 0: idle lanes of the last CTA still shuffle
    const int64_t base = row * a.dim;
    float ss = 0.0f;
#pragma unroll
    for (int k = 0; k < kVecs; ++k) {
      float v[N];
      widen<N, T>(c[k], v);
#pragma unroll
      for (int j = 0; j < N; ++j) ss += v[j] * v[j];
    }
    if constexpr (G > 0) ss = group_sum<G>(ss);
    else ss = block_sum(ss);
    const float r = inv_rms(a, ss);
#pragma unroll
    for (int k = 0; k < kVecs; ++k) {
      const int64_t i = lane + int64_t(k) * lanes;
      if (live && i < nvec) {
        float v[N];
        widen<N, T>(c[k], v);
        store_row<K, N>(a, base + i * N, i * N, v, r);
      }
    }
  };

  if constexpr (kLoop) {
    int64_t row = blockIdx.x;
    load(row, c);
    for (; row < a.rows; row += gridDim.x) {
      if (row + gridDim.x < a.rows) load(row + gridDim.x, next);  // outputs may alias x: other row
      finish(row);
#pragma unroll
      for (int k = 0; k < kVecs; ++k) {
        if constexpr (kRaw) c[k] = next[k];
        else
#pragma unroll
          for (int j = 0; j < N; ++j) c[k][j] = next[k][j];
      }
      __syncthreads();  // block_sum's shared partials are rewritten for the next row
    }
  } else {
    const int64_t row = G ? int64_t(blockIdx.x) * (kGroupThreads / G) + threadIdx.x / G : int64_t(blockIdx.x);
    load(row, c);
    finish(row);
  }
}

// Many rows: one CTA per row, V vectors per thread (dim / N <= V * blockDim.x; thread t holds
// vectors t, t + blockDim.x, ...). Pass 1 loads them with the L2 evict-last hint and reduces;
// pass 2 loads them again (L2 hits, evict-first) and writes. Holding the row in registers across
// the reduction instead (norm_cached) costs occupancy: measured on the H100 at 16384 x 4096,
// rms_norm bf16 99.9 -> 94.3 us, f32 184.8 -> 181.6, fused_residual_norm bf16 146.4 -> 135.8.
template <NormKind K, typename T, int V>
__global__ void __launch_bounds__(kMaxThreads) norm_reread(Args<T> a) {
  constexpr int N = int(16 / sizeof(T));
  const int64_t nvec = a.dim / N, base = int64_t(blockIdx.x) * a.dim;
  float ss = 0.0f;
  {
    float v[V][N];
#pragma unroll
    for (int k = 0; k < V; ++k) {
      const int64_t i = threadIdx.x + int64_t(k) * blockDim.x;
      if (i < nvec) {
        load_row<K, N, Hint::keep>(a, base + i * N, v[k]);
      } else {
#pragma unroll
        for (int j = 0; j < N; ++j) v[k][j] = 0.0f;
      }
    }
#pragma unroll
    for (int k = 0; k < V; ++k)
#pragma unroll
      for (int j = 0; j < N; ++j) ss += v[k][j] * v[k][j];
  }
  const float r = inv_rms(a, block_sum(ss));
#pragma unroll
  for (int k = 0; k < V; ++k) {
    const int64_t i = threadIdx.x + int64_t(k) * blockDim.x;
    if (i < nvec) {
      float v[N];
      load_row<K, N, Hint::drop>(a, base + i * N, v);
      store_row<K, N>(a, base + i * N, i * N, v, r);
    }
  }
}

// One CTA per row, two passes over the row in units of N elements (N = 1: scalar access).
template <NormKind K, typename T, int N>
__global__ void __launch_bounds__(kMaxThreads) norm_two_pass(Args<T> a) {
  const int64_t base = int64_t(blockIdx.x) * a.dim, units = a.dim / N;
  float ss = 0.0f;
#pragma unroll 4
  for (int64_t i = threadIdx.x; i < units; i += blockDim.x) {
    float v[N];
    load_row<K, N, Hint::normal>(a, base + i * N, v);
#pragma unroll
    for (int j = 0; j < N; ++j) ss += v[j] * v[j];
  }
  const float r = inv_rms(a, block_sum(ss));
#pragma unroll 4
  for (int64_t i = threadIdx.x; i < units; i += blockDim.x) {
    float v[N];
    load_row<K, N, Hint::normal>(a, base + i * N, v);
    store_row<K, N>(a, base + i * N, i * N, v, r);
  }
}

bool aligned16(const void* p) { return p == nullptr || is_aligned(p, 16); }

unsigned grid_of(int64_t blocks) {
  if (blocks > INT_MAX) LMK_THROW(Unsupported, "norm: ", blocks, " CTAs exceed the CUDA grid limit");
  return unsigned(blocks);
}

int64_t round_up_warp(int64_t n) { return ceil_div(n, 32) * 32; }

template <NormKind K, typename T>
void launch(const Args<T>& a, cudaStream_t st) {
  constexpr int N = int(16 / sizeof(T));
  const bool vec = a.dim % N == 0 && aligned16(a.x) && aligned16(a.res) && aligned16(a.scale) && aligned16(a.w) &&
                   aligned16(a.out) && aligned16(a.sum_out) && (!a.scalar_per_col || aligned16(a.scalar));
  const int64_t nvec = a.dim / N;
  // norm_reread: V = 32 bytes per thread and pass (residual rows are two inputs), measured best
  // on the H100 (V = 1 / 2 / 4); from 4 rows per SM, where whole waves of CTAs stream rows.
  constexpr int kRereadVecs = K == NormKind::residual ? 1 : 2;
  const int64_t reread = tuning("LMK_NORM_REREAD", -1);  // -1: rule, 0: off, 1: wherever it fits
  const bool use_reread = vec && nvec > 16 * kVecs && nvec <= int64_t(kMaxThreads) * kRereadVecs && reread != 0 &&
                          (reread == 1 || a.rows >= 4 * int64_t(sm_count()));
  if (use_reread) {
    norm_reread<K, T, kRereadVecs><<<grid_of(a.rows), int(round_up_warp(ceil_div(nvec, kRereadVecs))), 0, st>>>(a);
    LMK_LAUNCH_CHECK(norm_reread);
  } else if (vec && nvec <= 4 * kVecs) {
    norm_cached<K, T, 4><<<grid_of(ceil_div(a.rows, kGroupThreads / 4)), kGroupThreads, 0, st>>>(a);
    LMK_LAUNCH_CHECK(norm_cached);
  } else if (vec && nvec <= 16 * kVecs) {
    norm_cached<K, T, 16><<<grid_of(ceil_div(a.rows, kGroupThreads / 16)), kGroupThreads, 0, st>>>(a);
    LMK_LAUNCH_CHECK(norm_cached);
  } else if (vec && nvec <= int64_t(kMaxThreads) * kVecs) {
    const int threads = int(round_up_warp(ceil_div(nvec, kVecs)));
    int64_t grid = a.rows;
    if constexpr (row_loop<K, T>()) {  // the row-loop kernel: resident CTAs only
      const int per_sm = max_active_blocks(reinterpret_cast<const void*>(norm_cached<K, T, 0>), threads);
      grid = std::min<int64_t>(a.rows, int64_t(per_sm) * sm_count());
    }
    norm_cached<K, T, 0><<<grid_of(grid), threads, 0, st>>>(a);
    LMK_LAUNCH_CHECK(norm_cached);
  } else if (vec) {
    const int threads = int(std::min<int64_t>(kMaxThreads, round_up_warp(ceil_div(nvec, 4))));
    norm_two_pass<K, T, N><<<grid_of(a.rows), threads, 0, st>>>(a);
    LMK_LAUNCH_CHECK(norm_two_pass);
  } else {
    const int threads = int(std::min<int64_t>(kMaxThreads, round_up_warp(ceil_div(a.dim, 4))));
    norm_two_pass<K, T, 1><<<grid_of(a.rows), threads, 0, st>>>(a);
    LMK_LAUNCH_CHECK(norm_two_pass);
  }
}

}  // namespace

void norm(const NormCall& c, Stream& s) {
  dispatch_float("norm", c.dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    Args<T> a{static_cast<const T*>(c.x),
              static_cast<const T*>(c.residual),
              static_cast<const T*>(c.scale),
              static_cast<const typename Args<T>::W*>(c.weight),
              c.scalar,
              c.scalar_per_col,
              c.mean,
              static_cast<T*>(c.out),
              static_cast<T*>(c.sum_out),
              c.rows,
              c.dim,
              c.eps};
    switch (c.kind) {
      case NormKind::plain: launch<NormKind::plain>(a, stream_of(s)); break;
      case NormKind::mul: launch<NormKind::mul>(a, stream_of(s)); break;
      case NormKind::add: launch<NormKind::add>(a, stream_of(s)); break;
      case NormKind::residual: launch<NormKind::residual>(a, stream_of(s)); break;
    }
  });
}

}  // namespace lmk::cuda
