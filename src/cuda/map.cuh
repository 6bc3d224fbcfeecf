// Elementwise map: out[i] = f(src0[i], src1[i], ...) over n elements, each input either the
// same length as out (Src) or a row vector broadcast along rows (RowSrc). Threads move 16-byte
// vectors of the narrowest type; unaligned views fall back to scalar access.
#pragma once
#include <algorithm>

#include "cuda/common.cuh"

namespace lmk::cuda {

// An input indexed like the output.
template <typename T>
struct Src {
  using type = T;
  const T* p;
  static constexpr bool kRow = false;
  template <int N>
  __device__ __forceinline__ Packed<T, N> load(int64_t i) const { return load_packed<T, N>(p + i); }
  __device__ __forceinline__ T at(int64_t i) const { return p[i]; }
};

// A [cols] row repeated over the rows of the output (bias, residual row). Kept a separate type
// so same-shape maps carry no 64-bit modulo.
template <typename T>
struct RowSrc {
  using type = T;
  const T* p;
  int64_t cols;
  static constexpr bool kRow = true;
  template <int N>
  __device__ __forceinline__ Packed<T, N> load(int64_t i) const { return load_packed<T, N>(p + i % cols); }
  __device__ __forceinline__ T at(int64_t i) const { return p[i % cols]; }
};

template <typename S>
int64_t row_cols(const S& s) {
  if constexpr (S::kRow) return s.cols;
  else return 0;
}

// Each thread handles kUnroll vectors spaced a block apart (coalesced), all loads issued
// before the first store so several 16-byte requests are in flight per thread.
constexpr int kMapThreads = 256;
constexpr int kMapUnroll = 1;  // measured on H200: 2 lowered bf16->f32 cast from 89% to 76% of copy

template <int N, typename F, typename Out, typename... S>
__global__ void __launch_bounds__(kMapThreads) map_kernel(F f, Out* __restrict__ out, int64_t n, S... src) {
  const int64_t base = int64_t(blockIdx.x) * kMapThreads * kMapUnroll * N + int64_t(threadIdx.x) * N;
  if (base + int64_t(kMapUnroll - 1) * kMapThreads * N + N <= n) {  // every vector of this thread is whole
    auto compute = [&](int64_t i) {
      Packed<Out, N> r;
      [&](auto... packs) {
#pragma unroll
        for (int k = 0; k < N; ++k) r.v[k] = f(packs.v[k]...);
      }(src.template load<N>(i)...);
      return r;
    };
    Packed<Out, N> o[kMapUnroll];
#pragma unroll
    for (int u = 0; u < kMapUnroll; ++u) o[u] = compute(base + int64_t(u) * kMapThreads * N);
#pragma unroll
    for (int u = 0; u < kMapUnroll; ++u) {
      if constexpr (sizeof(Packed<Out, N>) % 16 == 0) store_packed_stream<Out, N>(out + base + int64_t(u) * kMapThreads * N, o[u]);
      else store_packed<Out, N>(out + base + int64_t(u) * kMapThreads * N, o[u]);
    }
    return;
  }
  for (int u = 0; u < kMapUnroll; ++u) {  // tail block: element by element
    const int64_t i = base + int64_t(u) * kMapThreads * N;
    for (int64_t j = i; j < i + N && j < n; ++j) out[j] = f(src.at(j)...);
  }
}

template <typename F, typename Out, typename... S>
void launch_map(F f, Out* out, int64_t n, cudaStream_t stream, S... src) {
  // 16-byte vectors of the narrowest type, except for widening maps (bf16 -> f32), whose 16-byte
  // output vectors measured faster (H200: 16-byte loads + 32-byte stores reached 87% of copy).
  constexpr size_t narrowest = std::min({sizeof(Out), sizeof(typename S::type)...});
  constexpr int N = int(16 / (sizeof(Out) > narrowest ? sizeof(Out) : narrowest));
  const bool vec = is_aligned(out, N * sizeof(Out)) && (... && is_aligned(src.p, N * sizeof(typename S::type))) &&
                   (... && (row_cols(src) % N == 0));
  const int64_t per_block = int64_t(kMapThreads) * kMapUnroll;
  if (vec) {
    map_kernel<N><<<unsigned(ceil_div(n, per_block * N)), kMapThreads, 0, stream>>>(f, out, n, src...);
  } else {
    map_kernel<1><<<unsigned(ceil_div(n, per_block)), kMapThreads, 0, stream>>>(f, out, n, src...);
  }
  LMK_LAUNCH_CHECK(map_kernel);
}

}  // namespace lmk::cuda
