// Row gathers (gather, embedding) and take_along_axis on CUDA. The view copies live in
// cuda_copy.cu.
#include <algorithm>

#include "cuda/common.cuh"
#include "ops/layout/backend.h"

namespace lmk::cuda {

namespace {

constexpr int kGatherThreads = 128;
constexpr int kGatherUnroll = 4;  // 16-byte vectors in flight per thread

// One CTA per output row (blockIdx.x); blockIdx.y strides over chunks of kGatherThreads *
// kGatherUnroll vectors when a row is longer than one chunk. Each thread loads all its vectors
// before storing any. Out-of-range indices: kZero writes +0.0, otherwise the last row is read.
template <typename E, int V, typename Idx, bool kZero>
__global__ void __launch_bounds__(kGatherThreads)
    gather_rows_kernel(const E* __restrict__ src, const Idx* __restrict__ idx, E* __restrict__ out, int64_t rows,
                       int64_t row_vecs) {
  using Vec = Packed<E, V>;
  const int64_t i = blockIdx.x;
  int64_t r = int64_t(idx[i]);  // i32 stays signed, u32 stays non-negative
  const bool outside = r < 0 || r >= rows;
  if (outside) r = rows - 1;    // never read out of bounds
  const Vec* s = reinterpret_cast<const Vec*>(src + r * row_vecs * V);
  Vec* o = reinterpret_cast<Vec*>(out + i * row_vecs * V);
  constexpr int kChunk = kGatherThreads * kGatherUnroll;
  for (int64_t c0 = int64_t(blockIdx.y) * kChunk + threadIdx.x; c0 < row_vecs; c0 += int64_t(gridDim.y) * kChunk) {
    Vec v[kGatherUnroll];
#pragma unroll
    for (int u = 0; u < kGatherUnroll; ++u) {
      const int64_t c = c0 + u * kGatherThreads;
      if (c < row_vecs) v[u] = (kZero && outside) ? Vec{} : s[c];
    }
#pragma unroll
    for (int u = 0; u < kGatherUnroll; ++u) {
      const int64_t c = c0 + u * kGatherThreads;
      if (c < row_vecs) o[c] = v[u];
    }
  }
}

template <typename E, int V, typename Idx>
void launch_gather(const Tensor& src, const Tensor& idx, const Tensor& out, OutOfRange rule, cudaStream_t stream) {
  const int64_t n = idx.numel(), row_vecs = src.size(1) / V;
  if (n > int64_t(INT32_MAX)) LMK_THROW(Unsupported, "gather: ", n, " indices exceed the CUDA grid limit");
  const dim3 grid(unsigned(n), unsigned(std::min<int64_t>(ceil_div(row_vecs, kGatherThreads * kGatherUnroll), 65535)));
  auto* s = static_cast<const E*>(src.data());
  auto* o = static_cast<E*>(out.data());
  auto* ix = static_cast<const Idx*>(idx.data());
  if (rule == OutOfRange::zero)
    gather_rows_kernel<E, V, Idx, true><<<grid, kGatherThreads, 0, stream>>>(s, ix, o, src.size(0), row_vecs);
  else
    gather_rows_kernel<E, V, Idx, false><<<grid, kGatherThreads, 0, stream>>>(s, ix, o, src.size(0), row_vecs);
  LMK_LAUNCH_CHECK(gather_rows_kernel);
}

template <typename E>
void gather_typed(const Tensor& src, const Tensor& idx, const Tensor& out, OutOfRange rule, cudaStream_t stream) {
  constexpr int V = 16 / int(sizeof(E));
  const bool vec = src.size(1) % V == 0 && is_aligned(src.data(), 16) && is_aligned(out.data(), 16);
  const bool u32 = idx.dtype() == DType::u32;
  if (vec) {
    if (u32) launch_gather<E, V, uint32_t>(src, idx, out, rule, stream);
    else launch_gather<E, V, int32_t>(src, idx, out, rule, stream);
  } else {
    if (u32) launch_gather<E, 1, uint32_t>(src, idx, out, rule, stream);
    else launch_gather<E, 1, int32_t>(src, idx, out, rule, stream);
  }
}

__global__ void __launch_bounds__(256)
    take_along_axis_kernel(const float* __restrict__ x, const uint32_t* __restrict__ idx, float* __restrict__ y,
                           int64_t total, int64_t k, int64_t cols) {
  for (int64_t e = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; e < total; e += int64_t(gridDim.x) * blockDim.x) {
    const uint32_t c = idx[e];
    y[e] = c < cols ? x[(e / k) * cols + c] : 0.0f;
  }
}

}  // namespace

void gather_rows(const Tensor& src, const Tensor& idx, const Tensor& out, OutOfRange rule, Stream& s) {
  // A bit copy: the element size is all that matters.
  if (element_size(src.dtype()) == 4) gather_typed<uint32_t>(src, idx, out, rule, stream_of(s));
  else gather_typed<uint16_t>(src, idx, out, rule, stream_of(s));
}

void take_along_axis(const Tensor& x, const Tensor& idx, const Tensor& y, Stream& s) {
  const int64_t total = y.numel();
  const int blocks = int(std::min<int64_t>(ceil_div(total, 256), int64_t(sm_count()) * 16));
  take_along_axis_kernel<<<blocks, 256, 0, stream_of(s)>>>(x.data_as<float>(), idx.data_as<uint32_t>(),
                                                           y.data_as<float>(), total, idx.size(1), x.size(1));
  LMK_LAUNCH_CHECK(take_along_axis_kernel);
}

}  // namespace lmk::cuda
