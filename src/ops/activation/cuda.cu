#include <cmath>

#include "cuda/map.cuh"
#include "ops/activation/backend.h"

namespace lmk::cuda {

namespace {
// f32 scalar forms. expf/tanhf are the accurate library functions (no fast-math intrinsics,
// core-ops §0). The sigmoid avoids IEEE division, whose out-of-line slow path makes ptxas spill
// in these unrolled maps: its denominator is kept in [1, 2], where one Newton step on the
// hardware reciprocal is within 1 ulp.

// 1 / d for d in [1, 2] (NaN stays NaN).
__device__ __forceinline__ float rcp_1_2(float d) {
  float r;
  asm("rcp.approx.ftz.f32 %0, %1;" : "=f"(r) : "f"(d));
  return fmaf(r, fmaf(-d, r, 1.0f), r);
}

// sigmoid(g) = 1 / (1 + exp(-g)) through t = exp(-|g|) in [0, 1]: g >= 0 gives 1 / (1 + t), g < 0
// gives t / (1 + t). +inf -> 1, -inf -> 0, NaN -> NaN; large negative g underflows to +0.
__device__ __forceinline__ float sigmoid_f32(float g) {
  const float t = expf(-fabsf(g));
  const float r = rcp_1_2(1.0f + t);
  return g >= 0.0f ? r : t * r;
}

// silu(g) = g * sigmoid(g): -inf -> NaN (-inf * 0, as the spec's g / (1 + exp(-g))), +inf -> +inf,
// large negative finite g -> -0.
__device__ __forceinline__ float silu_f32(float g) { return g * sigmoid_f32(g); }

// gelu(x) = 0.5·x·(1 + tanh(u)) = x·sigmoid(2u): the same function through one expf instead of
// tanhf (which made the kernel instruction-bound at 79% of copy). Where the spec's f32 form
// 1 + tanh(u) rounds to 0 (tanh(u) within half an ulp of -1, i.e. sigmoid(2u) < 2^-26) the factor
// is flushed to 0, so large negative x still gives -0 and -inf gives NaN, as the tanh form does.
__device__ __forceinline__ float gelu_f32(float x) {
  float u = 0.7978845608028654f * (x + 0.044715f * (x * x * x));
  u = fminf(fmaxf(u, -15.0f), 15.0f);
  float s = sigmoid_f32(2.0f * u);
  s = s < 0x1p-26f ? 0.0f : s;
  return x * s;
}

template <typename T>
struct SiluMulFn {  // (gate, up)
  __device__ __forceinline__ T operator()(T g, T u) const { return from_f32<T>(silu_f32(to_f32(g)) * to_f32(u)); }
};

template <typename T>
struct SigmoidMulFn {  // (x, gate)
  __device__ __forceinline__ T operator()(T x, T g) const { return from_f32<T>(to_f32(x) * sigmoid_f32(to_f32(g))); }
};

template <typename T, ActUnaryOp Op>
struct UnaryFn {
  __device__ __forceinline__ T operator()(T x) const {
    if constexpr (Op == ActUnaryOp::silu) return from_f32<T>(silu_f32(to_f32(x)));
    else return from_f32<T>(gelu_f32(to_f32(x)));
  }
};

// tanh(x / cap) * cap. kRecip: x / cap as x * (1 / cap) (the f32 reciprocal, within 1 ulp of the
// quotient), used whenever 1 / cap is a normal f32, i.e. for every cap outside the subnormal and
// > 2^126 extremes; those keep the IEEE division.
template <typename T, bool kRecip>
struct SoftcapFn {
  float cap, inv_cap;
  __device__ __forceinline__ T operator()(T x) const {
    const float v = kRecip ? to_f32(x) * inv_cap : to_f32(x) / cap;
    return from_f32<T>(tanhf(v) * cap);
  }
};

template <typename T>
struct AddFn {
  __device__ __forceinline__ T operator()(T a, T b) const { return from_f32<T>(to_f32(a) + to_f32(b)); }
};

// out[i, j] = lhs[i] * rhs[j]. Threads of a block form a (tx, ty) tile: x walks the row in vectors
// of V floats (one 16-byte store each when V = 4), y walks rows, looping when the grid's y extent
// (capped at 65535 blocks) does not cover every row. The rhs vector stays in registers across rows.
template <int V>
__global__ void __launch_bounds__(256)
    outer_product_kernel(const float* __restrict__ lhs, const float* __restrict__ rhs, float* __restrict__ out,
                         int64_t n, int64_t m) {
  const int64_t j = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) * V;
  if (j >= m) return;
  const Packed<float, V> r = load_packed<float, V>(rhs + j);
  const int64_t row_step = int64_t(gridDim.y) * blockDim.y;
  for (int64_t i = int64_t(blockIdx.y) * blockDim.y + threadIdx.y; i < n; i += row_step) {
    const float l = lhs[i];
    Packed<float, V> o;
#pragma unroll
    for (int k = 0; k < V; ++k) o.v[k] = l * r.v[k];
    store_packed<float, V>(out + i * m + j, o);
  }
}

template <int V>
void launch_outer(const float* lhs, const float* rhs, float* out, int64_t n, int64_t m, cudaStream_t stream) {
  constexpr int kThreads = 256;
  const int64_t vecs = m / V;  // V divides m (checked by the caller)
  int tx = 1;
  while (tx < kThreads && tx < vecs) tx *= 2;
  const int ty = kThreads / tx;
  const dim3 block{unsigned(tx), unsigned(ty)};
  const dim3 grid{unsigned(ceil_div(vecs, tx)), unsigned(std::min<int64_t>(ceil_div(n, ty), 65535))};
  outer_product_kernel<V><<<grid, block, 0, stream>>>(lhs, rhs, out, n, m);
  LMK_LAUNCH_CHECK(outer_product_kernel);
}
}  // namespace

void gated(ActGatedOp op, const Tensor& a, const Tensor& b, const Tensor& out, Stream& s) {
  dispatch_float("activation", a.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    Src<T> sa{a.data_as<T>()}, sb{b.data_as<T>()};
    auto run = [&](auto fn) { launch_map(fn, out.data_as<T>(), a.numel(), stream_of(s), sa, sb); };
    switch (op) {
      case ActGatedOp::silu_mul: run(SiluMulFn<T>{}); break;
      case ActGatedOp::sigmoid_mul: run(SigmoidMulFn<T>{}); break;
    }
  });
}

void unary(ActUnaryOp op, const Tensor& x, const Tensor& out, Stream& s) {
  dispatch_float("activation", x.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    Src<T> sx{x.data_as<T>()};
    auto run = [&](auto fn) { launch_map(fn, out.data_as<T>(), x.numel(), stream_of(s), sx); };
    switch (op) {
      case ActUnaryOp::silu: run(UnaryFn<T, ActUnaryOp::silu>{}); break;
      case ActUnaryOp::gelu: run(UnaryFn<T, ActUnaryOp::gelu>{}); break;
    }
  });
}

void softcap(const Tensor& x, const Tensor& out, float cap, Stream& s) {
  dispatch_float("softcap", x.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    const float inv = 1.0f / cap;
    Src<T> sx{x.data_as<T>()};
    if (std::isnormal(inv)) launch_map(SoftcapFn<T, true>{cap, inv}, out.data_as<T>(), x.numel(), stream_of(s), sx);
    else launch_map(SoftcapFn<T, false>{cap, inv}, out.data_as<T>(), x.numel(), stream_of(s), sx);
  });
}

void add_bias_row_2d(const Tensor& a, const Tensor& bias, const Tensor& out, int64_t cols, Stream& s) {
  dispatch_float("add_bias_row_2d", a.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    launch_map(AddFn<T>{}, out.data_as<T>(), a.numel(), stream_of(s), Src<T>{a.data_as<T>()},
               RowSrc<T>{bias.data_as<T>(), cols});
  });
}

void outer_product(const Tensor& lhs, const Tensor& rhs, const Tensor& out, Stream& s) {
  const int64_t n = lhs.numel(), m = rhs.numel();
  const float* pl = lhs.data_as<float>();
  const float* pr = rhs.data_as<float>();
  float* po = out.data_as<float>();
  // 16-byte rows need m % 4 == 0 and 16-byte aligned rhs/out; anything else writes scalars.
  if (m % 4 == 0 && is_aligned(pr, 16) && is_aligned(po, 16)) launch_outer<4>(pl, pr, po, n, m, stream_of(s));
  else launch_outer<1>(pl, pr, po, n, m, stream_of(s));
}

}  // namespace lmk::cuda
