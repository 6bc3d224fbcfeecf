// Dense mat-vec for bf16 / f16 / f32 weights (dense_gemv_bf16, dense_matvec, and dense_mm /
// dense_gemm with at most 8 rows per weight slice): y[b, m, n] = Σ_k xr(x[b, m, k])·w[b/r, n, k],
// f32 accumulation, one rounding on store.
//
// A CTA owns 4 weight rows of one item (a batch index and up to MT activation rows). Each
// thread streams 16-byte chunks of the 4 rows (evict-first loads: the weights are read once),
// widens them exactly, and applies them to the item's activation rows (float4 loads, rounded
// to the weight dtype first where dense_mm requires it). Partial sums: warp reduce-scatter and
// one shared-memory pass. Rows whose length is not a multiple of the chunk, or misaligned views,
// take a scalar loop. The grid is occupancy-sized and strides over (item, row block) pairs.
#include <type_traits>

#include "ops/matmul/common.cuh"
#include "ops/matmul/launch.h"

namespace lmk::cuda::mm {

namespace {

constexpr int kRows = 4;

template <class T>
__device__ __forceinline__ float widen(T v) {
  if constexpr (std::is_same_v<T, float>) return v;
  else if constexpr (std::is_same_v<T, __half>) return __half2float(v);
  else return __bfloat162float(v);
}
// XR: 0 keep, 1 round to bf16, 2 round to f16 (RNE), then back to f32 (exact).
template <int XR>
__device__ __forceinline__ float round_x(float v) {
  if constexpr (XR == 1) return __bfloat162float(__float2bfloat16_rn(v));
  else if constexpr (XR == 2) return __half2float(__float2half_rn(v));
  else return v;
}
template <class T>
__device__ __forceinline__ T narrow(float v) {
  if constexpr (std::is_same_v<T, float>) return v;
  else if constexpr (std::is_same_v<T, __half>) return __float2half_rn(v);
  else return __float2bfloat16_rn(v);
}

// 16 bytes of weights -> CH floats.
template <class WT>
__device__ __forceinline__ void widen16(const uint4& u, float* f) {
  const uint32_t w[4] = {u.x, u.y, u.z, u.w};
  if constexpr (std::is_same_v<WT, float>) {
#pragma unroll
    for (int i = 0; i < 4; ++i) f[i] = __uint_as_float(w[i]);
  } else if constexpr (std::is_same_v<WT, __half>) {
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const float2 t = __half22float2(*reinterpret_cast<const __half2*>(&w[i]));
      f[2 * i] = t.x;
      f[2 * i + 1] = t.y;
    }
  } else {
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      f[2 * i] = __uint_as_float(w[i] << 16);
      f[2 * i + 1] = __uint_as_float(w[i] & 0xFFFF0000u);
    }
  }
}

// CH consecutive activations as floats (vector path: the address is 16-byte aligned).
template <class XT, int XR, int CH>
__device__ __forceinline__ void load_x(const XT* p, float* f) {
  if constexpr (std::is_same_v<XT, float>) {
#pragma unroll
    for (int i = 0; i < CH; i += 4) {
      const float4 v = __ldg(reinterpret_cast<const float4*>(p + i));
      f[i] = round_x<XR>(v.x);
      f[i + 1] = round_x<XR>(v.y);
      f[i + 2] = round_x<XR>(v.z);
      f[i + 3] = round_x<XR>(v.w);
    }
  } else {
    static_assert(CH == 8, "16-bit activations come with 16-bit weights");
    uint4 u = __ldg(reinterpret_cast<const uint4*>(p));
    widen16<XT>(u, f);
  }
}

template <class WT, class XT, class YT, int XR, int MT>
__global__ void __launch_bounds__(256) gemv_kernel(const GemvParams p) {
  constexpr int RC = kRows, V = RC * MT, CH = 16 / int(sizeof(WT));
  __shared__ float red[8][V];
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, nwarps = int(blockDim.x >> 5);
  const int nt = int(blockDim.x);
  const int64_t m_items = (p.m + MT - 1) / MT;
  const int64_t n_items = p.b1 * m_items;
  const int64_t n_rg = (p.n + RC - 1) / RC;
  const int64_t total = n_items * n_rg;
  const int64_t rep = p.b1 / p.b0;
  const WT* wbase = static_cast<const WT*>(p.w);
  const XT* xbase = static_cast<const XT*>(p.x);
  YT* ybase = static_cast<YT*>(p.y);
  for (int64_t wi = blockIdx.x; wi < total; wi += gridDim.x) {
    const int64_t item = wi % n_items, n0 = (wi / n_items) * RC;
    const int64_t b = item / m_items, m0 = (item % m_items) * MT;
    const int count = int(p.m - m0 < MT ? p.m - m0 : MT);
    const WT* rows[RC];
#pragma unroll
    for (int r = 0; r < RC; ++r) rows[r] = wbase + ((b / rep) * p.n + (n0 + r < p.n ? n0 + r : p.n - 1)) * p.k;
    const XT* xr[MT];
#pragma unroll
    for (int m = 0; m < MT; ++m) xr[m] = xbase + (b * p.m + m0 + (m < count ? m : 0)) * p.k;
    float acc[RC][MT];
#pragma unroll
    for (int r = 0; r < RC; ++r)
#pragma unroll
      for (int m = 0; m < MT; ++m) acc[r][m] = 0.0f;

    if (p.vec) {
      const int64_t chunks = p.k / CH;
#pragma unroll 2
      for (int64_t ch = tid; ch < chunks; ch += nt) {
        float wf[RC][CH];
#pragma unroll
        for (int r = 0; r < RC; ++r) widen16<WT>(__ldcs(reinterpret_cast<const uint4*>(rows[r] + ch * CH)), wf[r]);
#pragma unroll
        for (int m = 0; m < MT; ++m) {
          if (m < count) {
            float xf[CH];
            load_x<XT, XR, CH>(xr[m] + ch * CH, xf);
#pragma unroll
            for (int r = 0; r < RC; ++r) {
              float a = acc[r][m];
#pragma unroll
              for (int i = 0; i < CH; ++i) a = fmaf(wf[r][i], xf[i], a);
              acc[r][m] = a;
            }
          }
        }
      }
    } else {
      for (int64_t k = tid; k < p.k; k += nt) {
        float wf[RC];
#pragma unroll
        for (int r = 0; r < RC; ++r) wf[r] = widen(rows[r][k]);
#pragma unroll
        for (int m = 0; m < MT; ++m) {
          if (m < count) {
            const float xv = round_x<XR>(widen(xr[m][k]));
#pragma unroll
            for (int r = 0; r < RC; ++r) acc[r][m] = fmaf(wf[r], xv, acc[r][m]);
          }
        }
      }
    }

    float v[V];
#pragma unroll
    for (int r = 0; r < RC; ++r)
#pragma unroll
      for (int m = 0; m < MT; ++m) v[r * MT + m] = acc[r][m];
    const int idx = warp_reduce_scatter<V>(v, lane);
    if (reduce_writer<V>(lane)) red[warp][idx] = v[0];
    __syncthreads();
    if (tid < V) {
      const int r = tid / MT, m = tid % MT;
      float s = 0.0f;
      for (int w = 0; w < nwarps; ++w) s += red[w][tid];
      if (m < count && n0 + r < p.n) ybase[(b * p.m + m0 + m) * p.n + n0 + r] = narrow<YT>(s);
    }
    __syncthreads();
  }
}

template <class WT, class XT, class YT, int XR>
void launch(const GemvParams& p, cudaStream_t stream) {
  const int64_t mt = p.m >= 8 ? 8 : p.m >= 4 ? 4 : p.m >= 2 ? 2 : 1;
  const int64_t chunks = p.vec ? p.k / (16 / int64_t(sizeof(WT))) : p.k;
  const int threads = int(chunks >= 256 ? 256 : (chunks + 31) / 32 * 32);
  const int64_t work = p.b1 * ((p.m + mt - 1) / mt) * ((p.n + kRows - 1) / kRows);
  auto go = [&](auto kernel) {
    const int64_t cap = int64_t(max_active_blocks(reinterpret_cast<const void*>(kernel), threads)) * sm_count();
    kernel<<<unsigned(work < cap ? work : cap), threads, 0, stream>>>(p);
    LMK_LAUNCH_CHECK(gemv_kernel);
  };
  switch (mt) {
    case 1: go(gemv_kernel<WT, XT, YT, XR, 1>); break;
    case 2: go(gemv_kernel<WT, XT, YT, XR, 2>); break;
    case 4: go(gemv_kernel<WT, XT, YT, XR, 4>); break;
    default: go(gemv_kernel<WT, XT, YT, XR, 8>); break;
  }
}

}  // namespace

void gemv(const GemvParams& p, cudaStream_t stream) {
  GemvParams q = p;
  const int64_t wsize = element_size(p.wt), xsize = element_size(p.xt);
  const int64_t ch = 16 / wsize;
  q.vec = p.k % ch == 0 && is_aligned(p.w, 16) && is_aligned(p.x, 16) && (p.xt == DType::f32 || xsize * ch == 16);
  const int xr = p.xround == DType::bf16 ? 1 : p.xround == DType::f16 ? 2 : 0;
  if (p.xt == DType::f32 && p.yt == DType::f32) {
    switch (p.wt) {
      case DType::bf16:
        if (xr == 1) launch<__nv_bfloat16, float, float, 1>(q, stream);
        else launch<__nv_bfloat16, float, float, 0>(q, stream);
        return;
      case DType::f16:
        if (xr == 2) launch<__half, float, float, 2>(q, stream);
        else launch<__half, float, float, 0>(q, stream);
        return;
      case DType::f32: launch<float, float, float, 0>(q, stream); return;
      default: break;
    }
  } else if (p.wt == p.xt && p.wt == p.yt && xr == 0) {
    if (p.wt == DType::f16) return launch<__half, __half, __half, 0>(q, stream);
    if (p.wt == DType::bf16) return launch<__nv_bfloat16, __nv_bfloat16, __nv_bfloat16, 0>(q, stream);
  }
  LMK_THROW(Unsupported, "matmul: no mat-vec kernel for weights ", name(p.wt), ", activations ", name(p.xt),
            ", output ", name(p.yt));
}

}  // namespace lmk::cuda::mm
