// Elementwise map: out[i] = f(src0[i], src1[i], ...) over n elements, each input either the
// same length as out or a row vector broadcast along rows (Src::cols). Each thread moves one
// 16-byte vector of the narrowest type; unaligned views fall back to scalar access.
#pragma once
#include <algorithm>

#include "cuda/common.cuh"

namespace lmk::cuda {

template <typename T>
struct Src {
  const T* p;
  int64_t cols = 0;  // 0: indexed like out; > 0: a [cols] row repeated over the rows of out
  template <int N>
  __device__ __forceinline__ Packed<T, N> load(int64_t i) const {
    return load_packed<T, N>(p + (cols ? i % cols : i));
  }
  __device__ __forceinline__ T at(int64_t i) const { return p[cols ? i % cols : i]; }
};

template <int N, typename F, typename Out, typename... In>
__global__ void __launch_bounds__(256) map_kernel(F f, Out* __restrict__ out, int64_t n, Src<In>... src) {
  const int64_t i = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) * N;
  if (i >= n) return;
  if (i + N <= n) {
    Packed<Out, N> o;
    [&](auto... packs) {
#pragma unroll
      for (int k = 0; k < N; ++k) o.v[k] = f(packs.v[k]...);
    }(src.template load<N>(i)...);
    store_packed<Out, N>(out + i, o);
  } else {
    for (int64_t j = i; j < n; ++j) out[j] = f(src.at(j)...);
  }
}

template <typename F, typename Out, typename... In>
void launch_map(F f, Out* out, int64_t n, cudaStream_t stream, Src<In>... src) {
  constexpr size_t narrowest = std::min({sizeof(Out), sizeof(In)...});
  constexpr int N = int(16 / narrowest);
  const bool vec = is_aligned(out, N * sizeof(Out)) && (... && is_aligned(src.p, N * sizeof(In))) &&
                   (... && (src.cols % N == 0));
  constexpr int kThreads = 256;
  if (vec) {
    map_kernel<N><<<unsigned(ceil_div(ceil_div(n, N), kThreads)), kThreads, 0, stream>>>(f, out, n, src...);
  } else {
    map_kernel<1><<<unsigned(ceil_div(n, kThreads)), kThreads, 0, stream>>>(f, out, n, src...);
  }
  LMK_LAUNCH_CHECK(map_kernel);
}

}  // namespace lmk::cuda
