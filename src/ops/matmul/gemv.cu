// Dense mat-vec for bf16 / f16 / f32 weights (dense_gemv_bf16, dense_matvec, and dense_mm /
// dense_gemm with at most 8 rows per weight slice): y[b, m, n] = Σ_k xr(x[b, m, k])·w[b/r, n, k],
// f32 accumulation, one rounding on store.
//
// A CTA owns 4 weight rows of one item (a batch index and up to MT activation rows). Each
// thread streams 16-byte chunks of the 4 rows (evict-first loads: the weights are read once),
// widens them exactly, and applies them to the item's activation rows (float4 loads, rounded
// to the weight dtype first where dense_mm requires it). Partial sums: warp reduce-scatter and
// one shared-memory pass. Rows whose length is not a multiple of the chunk, or misaligned views,
// take a scalar loop. One or two rows launch one CTA per 4-row block; otherwise the grid is
// occupancy-sized and strides over (item, row block) pairs. (Default-policy weight loads were
// 10% slower, cold and back to back alike; so were CTAs of 1 or 2 rows. At one row, .L2::256B
// prefetch forms of the load (ld.global.cs, or .nc with the evict-first policy or none) measured
// the same: H100 1x4096x14336 40.8 us in a CUDA graph, lm_head 424.7.)
//
// bf16 weights with f32 activations and 5..8 rows per item (K a multiple of 32, aligned views)
// take the tensor cores instead (gemv_mma_kernel): the f32 kernel's work grows with the rows
// (bf16 8x4096x14336: 95 us against 49 us for one row on H100), an m16n8k16 MMA takes 8 rows
// for the price of one. Each activation is split into NS bf16 terms, x = h0 + h1 + h2 exactly for
// finite x: bf16 x bf16 products are exact in f32, so three terms keep the f32 kernel's
// precision (dense_gemv_bf16), and one term is exactly the bf16 rounding dense_mm asks
// for. A CTA of W = mma_warps (16 or 8) warps owns 16·RT weight rows of one item; warp w takes the
// 32-wide k steps w, w + W, ... (the CTA reads W · 64 contiguous bytes of each row per round; a
// warp has mma_depth steps of weights and activations in flight) and lane (g, t) loads 16 bytes of
// rows g and g + 8 at k = 8t..8t+7 and the same 8 activations of row g. The MMA sums k in a
// permuted order, the same for A and B. The warps' partial tiles are added in shared memory in a
// fixed order (deterministic).
//
// Where K % 8 == 0 those 5..8 rows (and any M beyond, in items of up to 32 rows) take
// gemv_tma_kernel first (see its section): the weights come by TMA as L2 evict-first lines into a
// shared-memory ring and one warpgroup MMA covers all terms. H100, 8x4096x14336 back to back:
// dense_gemv_bf16 51.9 -> 45.9 us, dense_mm 47.1 -> 42.1 (cold 59.6 -> 60.7, 54.8 -> 55.0);
// 8x14336x4096 cold 63.6 -> 57.6. At one to four rows it loses to gemv_kernel (one row: 41.2 ->
// 43.9 us back to back). dense_mm also takes it for 9..32 rows (cuda.cu, dense), and with f16
// weights (activations rounded to f16): f16 8x4096x14336 cold 101.2 -> 54.2 us (the f32 kernel
// before), 32 rows 59.3 -> 56.4 (convert + cuBLAS before).
#include <cuda.h>

#include <algorithm>
#include <type_traits>

#include "cuda/wgmma.cuh"
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

// MinCtas: CTAs per SM the registers must allow (0: no bound). One row takes 8 (32 registers,
// one chunk of each row in flight per thread): a 4096-row matrix's 1024 CTAs are then one wave
// instead of 1.55 at 44 registers (H100, bf16 1x4096x14336 back to back 42.2 -> 41.2 us, cold
// 49.2 -> 48.8; lm_head equal; 6 CTAs: 41.8). Two rows spill at 6 or 8.
template <class WT, class XT, class YT, int XR, int MT, int MinCtas = 0>
__global__ void __launch_bounds__(256, MinCtas) gemv_kernel(const GemvParams p) {
  constexpr int RC = kRows, V = RC * MT, CH = 16 / int(sizeof(WT));
  __shared__ float red[8][V];
  pdl_wait_then_release();
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
#pragma unroll(MinCtas >= 8 ? 1 : 2)
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

// Both kernels start with pdl_wait_then_release, so they may be launched with programmatic
// dependence: their CTAs are placed as the kernel ahead retires its own (H100, bf16 4096x14336
// back to back: M = 1 42.8 -> 41.7 us, M = 4 50.7 -> 49.5; cold unchanged). LMK_GEMV_PDL=0
// launches them plainly.
void launch_gemv(void (*kernel)(GemvParams), unsigned grid, int threads, const GemvParams& p, cudaStream_t stream) {
  static const bool pdl = tuning("LMK_GEMV_PDL", 1) != 0;
  if (pdl) {
    launch_pdl(kernel, dim3(grid), threads, 0, stream, p);
  } else {
    kernel<<<grid, threads, 0, stream>>>(p);
    LMK_LAUNCH_CHECK(gemv);
  }
}

template <class WT, class XT, class YT, int XR>
void launch(const GemvParams& p, cudaStream_t stream) {
  const int64_t mt = p.m >= 8 ? 8 : p.m >= 4 ? 4 : p.m >= 2 ? 2 : 1;
  const int64_t chunks = p.vec ? p.k / (16 / int64_t(sizeof(WT))) : p.k;
  const int threads = int(chunks >= 256 ? 256 : (chunks + 31) / 32 * 32);
  const int64_t work = p.b1 * ((p.m + mt - 1) / mt) * ((p.n + kRows - 1) / kRows);
  auto go = [&](auto kernel) {
    // One CTA per work item for one or two rows (H100, 1x151936x4096: 436 -> 424 us; 4096x14336
    // unchanged; with programmatic launches, 2x4096x14336 back to back 46.2 -> 42.7 us, cold 49.5
    // -> 50.5), else the resident grid striding over the items (4 rows: 51.0 -> 49.5 back to
    // back). LMK_GEMV_GRID: -1 that rule, 0 resident grid, 1 one CTA per item.
    static const int grid_mode = int(tuning("LMK_GEMV_GRID", -1));
    const bool per_item = grid_mode < 0 ? mt <= 2 : grid_mode == 1;
    const int64_t cap = per_item ? int64_t(INT32_MAX)
                                 : int64_t(max_active_blocks(reinterpret_cast<const void*>(kernel), threads)) * sm_count();
    launch_gemv(kernel, unsigned(work < cap ? work : cap), threads, p, stream);
  };
  switch (mt) {
    case 1: go(gemv_kernel<WT, XT, YT, XR, 1, 8>); break;
    case 2: go(gemv_kernel<WT, XT, YT, XR, 2>); break;
    case 4: go(gemv_kernel<WT, XT, YT, XR, 4>); break;
    default: go(gemv_kernel<WT, XT, YT, XR, 8>); break;
  }
}

// ---- tensor-core path: bf16 weights, f32 activations split into NS bf16 terms ---------------------

// Warps per CTA: 16 for three terms (twice the weight loads in flight per SM of 8: H100,
// 8x4096x14336 back to back, dense_gemv_bf16 60.0 -> 55.5 us), 8 for one term, whose lighter
// instances then fit two CTAs per SM (with the register ring: dense_mm 49.1 -> 47.0 us, cold
// 59.2 -> 56.1; three terms equal).
template <int NS>
constexpr int mma_warps() { return NS == 1 ? 8 : 16; }
// k steps of 32 per warp in its register ring: as many as fit, without spills, the 128 registers
// a thread may hold (one CTA of 512 threads per SM, or two of 256; ptxas 13.0).
template <int NS, int RT>
constexpr int mma_depth() { return RT == 1 ? 5 : NS == 1 ? 4 : 3; }

// v as NS bf16 terms. NS = 1: v rounded to nearest even (dense_mm's rounding). NS > 1: all but
// the last term truncate (they never round up to infinity), so three terms hold all 24 bits of
// a finite f32 exactly; inf and NaN go whole into the first term.
template <int NS>
__device__ __forceinline__ void split_bf16(float v, float (&terms)[NS]) {
  if constexpr (NS == 1) {
    terms[0] = __bfloat162float(__float2bfloat16_rn(v));
  } else {
    const bool finite = isfinite(v);
#pragma unroll
    for (int s = 0; s < NS; ++s) {
      const float h = s + 1 < NS ? __uint_as_float(__float_as_uint(v) & 0xFFFF0000u)
                                 : __bfloat162float(__float2bfloat16_rn(v));
      terms[s] = finite ? h : s == 0 ? v : 0.f;
      v = finite ? v - h : 0.f;
    }
  }
}

// Loads and MMAs as volatile asm: they keep their program order (the next batch's weight loads
// before this batch's MMAs).
__device__ __forceinline__ uint4 load_stream_u4(const void* p) {
  uint4 v;
  asm volatile("ld.global.cs.v4.u32 {%0,%1,%2,%3}, [%4];" : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w) : "l"(p));
  return v;
}
__device__ __forceinline__ float4 load_ro_f4(const float* p) {
  float4 v;
  asm volatile("ld.global.nc.v4.f32 {%0,%1,%2,%3}, [%4];" : "=f"(v.x), "=f"(v.y), "=f"(v.z), "=f"(v.w) : "l"(p));
  return v;
}
__device__ __forceinline__ void mma_bf16_ordered(float (&d)[4], uint4 a_lo, uint4 a_hi, bool second, uint32_t b0,
                                                 uint32_t b1) {
  const uint32_t a0 = second ? a_lo.z : a_lo.x, a1 = second ? a_hi.z : a_hi.x;
  const uint32_t a2 = second ? a_lo.w : a_lo.y, a3 = second ? a_hi.w : a_hi.y;
  asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};"
               : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
               : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
}

template <int NS, int RT, int W = mma_warps<NS>()>
__global__ void __launch_bounds__(W * 32, W == 8 ? 2 : 1) gemv_mma_kernel(const GemvParams p) {
  __shared__ float red[W][RT][4][32];
  pdl_wait_then_release();
  const int lane = int(threadIdx.x & 31), warp = int(threadIdx.x >> 5), g = lane >> 2, t = lane & 3;
  const int64_t m_items = (p.m + 7) / 8, n_items = p.b1 * m_items;
  const int64_t n_rb = (p.n + 16 * RT - 1) / (16 * RT);
  const int64_t total = n_items * n_rb, rep = p.b1 / p.b0, steps = p.k / 32;
  const auto* wbase = static_cast<const __nv_bfloat16*>(p.w);
  const auto* xbase = static_cast<const float*>(p.x);
  auto* ybase = static_cast<float*>(p.y);
  for (int64_t wi = blockIdx.x; wi < total; wi += gridDim.x) {
    const int64_t item = wi % n_items, n0 = (wi / n_items) * 16 * RT;
    const int64_t b = item / m_items, m0 = (item % m_items) * 8;
    const int count = int(p.m - m0 < 8 ? p.m - m0 : 8);
    const __nv_bfloat16* wrow[RT][2];
#pragma unroll
    for (int i = 0; i < RT; ++i)
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const int64_t n = n0 + 16 * i + g + 8 * h;
        wrow[i][h] = wbase + ((b / rep) * p.n + (n < p.n ? n : p.n - 1)) * p.k + 8 * t;
      }
    const float* xrow = g < count ? xbase + (b * p.m + m0 + g) * p.k + 8 * t : nullptr;
    float acc[RT][4] = {};
    // A register ring of D k steps (weights and activations): step s + D - 1 is loaded before
    // step s is multiplied, and the loop is unrolled D times so no register is copied (copying
    // a prefetched batch waits for its loads: about one batch was in flight, 59% of DRAM peak;
    // H100, 8x4096x14336 back to back: dense_mm 51.7 -> 49.3 us, dense_gemv_bf16 55.3 -> 53.0).
    constexpr int D = mma_depth<NS, RT>();
    uint4 a[D][RT][2];
    float4 xv[D][2];
    auto load = [&](int64_t s, int d) {
      const bool ok = s < steps;
#pragma unroll
      for (int i = 0; i < RT; ++i)
#pragma unroll
        for (int h = 0; h < 2; ++h) a[d][i][h] = ok ? load_stream_u4(wrow[i][h] + s * 32) : make_uint4(0, 0, 0, 0);
#pragma unroll
      for (int q = 0; q < 2; ++q) xv[d][q] = ok && xrow ? load_ro_f4(xrow + s * 32 + 4 * q) : make_float4(0, 0, 0, 0);
    };
    auto multiply = [&](int d) {
      const float xs[8] = {xv[d][0].x, xv[d][0].y, xv[d][0].z, xv[d][0].w,
                           xv[d][1].x, xv[d][1].y, xv[d][1].z, xv[d][1].w};
      float terms[8][NS];
#pragma unroll
      for (int j = 0; j < 8; ++j) split_bf16<NS>(xs[j], terms[j]);
#pragma unroll
      for (int sn = 0; sn < NS; ++sn) {
        uint32_t bx[4];  // the terms are bf16 values: packing is exact
#pragma unroll
        for (int q = 0; q < 4; ++q) bx[q] = pack_bf16(terms[2 * q][sn], terms[2 * q + 1][sn]);
#pragma unroll
        for (int i = 0; i < RT; ++i) {
          mma_bf16_ordered(acc[i], a[d][i][0], a[d][i][1], false, bx[0], bx[1]);  // k = 8t + 0..3
          mma_bf16_ordered(acc[i], a[d][i][0], a[d][i][1], true, bx[2], bx[3]);   // k = 8t + 4..7
        }
      }
    };
#pragma unroll
    for (int d = 0; d < D - 1; ++d) load(warp + int64_t(d) * W, d);
    for (int64_t s0 = warp; s0 < steps; s0 += int64_t(D) * W) {
#pragma unroll
      for (int d = 0; d < D; ++d) {
        load(s0 + int64_t(d + D - 1) * W, (d + D - 1) % D);
        if (s0 + int64_t(d) * W < steps) multiply(d);
      }
    }
#pragma unroll
    for (int i = 0; i < RT; ++i)
#pragma unroll
      for (int r = 0; r < 4; ++r) red[warp][i][r][lane] = acc[i][r];
    __syncthreads();
    for (int o = int(threadIdx.x); o < RT * 128; o += int(blockDim.x)) {
      const int i = o / 128, r = (o / 32) % 4, l = o % 32;
      float sum = 0.f;
#pragma unroll
      for (int w = 0; w < W; ++w) sum += red[w][i][r][l];
      const int64_t n = n0 + 16 * i + (l >> 2) + (r >= 2 ? 8 : 0);
      const int m = 2 * (l & 3) + (r & 1);
      if (m < count && n < p.n) ybase[(b * p.m + m0 + m) * p.n + n] = sum;
    }
    __syncthreads();
  }
}

// The tensor-core path: LMK_GEMV_MMA -1 (default) from 5 rows, 0 never, 1 at every M.
// H200, bf16 Mx4096x14336 cold, f32 kernel -> this one: M = 8 89 -> 56 us (dense_mm 96 -> 53),
// but M = 1 / 2 / 4 36 -> 47, 37 -> 51, 44 -> 53 us: with two or more rows its activation loads
// (L2, one round at a time) limit it, and the f32 kernel still fits 2 or 4 rows in one pass.
// Returns false where it does not apply (the caller runs gemv_kernel).
bool launch_mma(const GemvParams& p, int xr, cudaStream_t stream) {
  static const int mode = int(tuning("LMK_GEMV_MMA", -1));
  if (mode == 0 || (mode < 0 && p.m < 5) || p.wt != DType::bf16 || p.xt != DType::f32 || p.yt != DType::f32 ||
      xr == 2 || !p.vec || p.k % 32 != 0)  // vec: 16-byte aligned weights and activations
    return false;
  const int64_t items = p.b1 * ((p.m + 7) / 8);
  // 16-row blocks unless 32-row blocks still give every SM one (half the activation reads from
  // L2, which match the weight bytes at 8 rows of f32). With the register ring, 16-row blocks
  // won at 128 blocks of 32 rows for both term counts (H100, 8x4096x14336 back to back:
  // dense_gemv_bf16 53.0 -> 51.8 us, dense_mm 54.1 -> 49.2). LMK_GEMV_MMA_WIDE: -1 that rule,
  // 0 never, 1 always.
  static const int wide_mode = int(tuning("LMK_GEMV_MMA_WIDE", -1));
  const int64_t blocks32 = items * ((p.n + 31) / 32);
  const bool wide = wide_mode < 0 ? blocks32 >= sm_count() : wide_mode != 0;
  auto go = [&](auto kernel, int rows, int warps) {
    const int64_t work = items * ((p.n + rows - 1) / rows);
    const int64_t cap = int64_t(max_active_blocks(reinterpret_cast<const void*>(kernel), warps * 32)) * sm_count();
    launch_gemv(kernel, unsigned(work < cap ? work : cap), warps * 32, p, stream);
  };
  if (xr == 1) wide ? go(gemv_mma_kernel<1, 2>, 32, mma_warps<1>()) : go(gemv_mma_kernel<1, 1>, 16, mma_warps<1>());
  else wide ? go(gemv_mma_kernel<3, 2>, 32, mma_warps<3>()) : go(gemv_mma_kernel<3, 1>, 16, mma_warps<3>());
  return true;
}

// ---- bulk-copy path: weights by TMA, warpgroup MMA from shared memory -------------------------------
// The same contract as gemv_mma_kernel, for items of MI = 8, 16 or 32 activation rows, with the
// weight loads taken off the threads: a producer lane streams 64 weight rows by TMA
// (128-byte swizzle, L2 evict-first) into a ring whose stages hold KB k blocks of 64; 8·MI
// builder threads (one per activation row and 16-byte chunk of a k block) write the item's
// activations for the same k blocks into the stage as the B operand of wgmma.m64n(MI·NS)k16
// (K-major, row MI·s + m holds term s of activation row m; rows past the item's count are zero);
// the consumer warpgroup multiplies the 64 weight rows (A, shared memory) by them and releases
// the stage. So one MMA covers all NS terms and a CTA reads the activations once per 64 rows; a
// stage asks for KB · 128 contiguous bytes of each weight row at once. SPLIT > 1 cuts K between
// the CTAs of a cluster; ranks 1.. put their partial tiles into rank 0's shared memory
// (distributed shared memory), which adds them in rank order (deterministic).
constexpr int kTmaAhead = 4;  // k blocks of activations a builder thread has in flight

__device__ __forceinline__ void cluster_sync() {
  asm volatile("barrier.cluster.arrive.release;\nbarrier.cluster.wait.acquire;\n" ::: "memory");
}
__device__ __forceinline__ uint32_t cluster_addr(const void* p, int rank) {  // p in CTA `rank` of the cluster
  uint32_t r;
  asm volatile("mapa.shared::cluster.u32 %0, %1, %2;" : "=r"(r) : "r"(smem_u32(p)), "r"(rank));
  return r;
}

struct GemvTmaParams {
  CUtensorMap wmap;  // bf16 / f16 [b0 · n][k], boxes of 64 values x 64 rows
  const float* x = nullptr;
  float* y = nullptr;
  int64_t m = 0, n = 0, k = 0, rep = 1;  // rep = b1 / b0
  int m_items = 0;                       // ceil(m / MI)
  int kblocks = 0;                       // ceil(k / 64)
  int stages = 2;                        // ring depth (2..kMaxStages)
  bool evict_first = true;               // the weights' L2 policy (l2_hint.cuh, stream_policy)
};

template <int NS, int MI, int KB>
struct TmaShape {
  static constexpr int kBN = 64, kNB = MI * NS;                   // weight rows (a warpgroup's); B rows
  static constexpr int kATile = kBN * 128, kBTile = kNB * 128;     // one k block (1024-byte multiples)
  static constexpr int kStage = KB * (kATile + kBTile);
  static constexpr int kMaxStages = (200 * 1024) / kStage < 8 ? (200 * 1024) / kStage : 8;
  static constexpr int kBuilders = 8 * MI;  // one per (activation row, 16-byte chunk of a k block)
  static constexpr int kConsumers = 128, kThreads = kConsumers + 32 + kBuilders;  // + producer
  static constexpr int smem(int stages) { return stages * kStage + 1024; }  // + alignment slack
  static_assert(kMaxStages >= 2, "stage too large for a ring");
};

// F16: f16 weights, activations rounded to f16 (NS = 1); else bf16 weights.
template <int NS, int MI, int SPLIT, int KB, bool F16>
__global__ void __launch_bounds__(TmaShape<NS, MI, KB>::kThreads, 1)
    gemv_tma_kernel(const __grid_constant__ GemvTmaParams p) {
  static_assert(!F16 || NS == 1, "f16 weights take one term (dense_mm's rounding)");
  using Sh = TmaShape<NS, MI, KB>;
  constexpr int Q = MI / 8;  // activation rows per thread and weight row: m = 8q + 2t + (0, 1)
  constexpr int BN = Sh::kBN, NB = Sh::kNB;
  const int S = p.stages;
  extern __shared__ uint8_t smem_raw[];
  // full: the producer's arrival with the weight bytes + one per builder thread; empty: one
  // arrival per consumer thread.
  __shared__ __align__(8) uint64_t full[Sh::kMaxStages], empty[Sh::kMaxStages];
  __shared__ float2 red[SPLIT > 1 ? SPLIT - 1 : 1][BN][Q][4];  // rank 0: the other ranks' partial tiles
  uint8_t* const ring = smem_raw + ((1024 - (smem_u32(smem_raw) & 1023)) & 1023);
  const int tid = int(threadIdx.x), warp = tid >> 5, lane = tid & 31;
  const int rank = SPLIT > 1 ? int(blockIdx.x % SPLIT) : 0;
  const int64_t n0 = int64_t(blockIdx.x / SPLIT) * BN, item = blockIdx.y;
  const int64_t b = item / p.m_items, m0 = (item % p.m_items) * MI;
  const int count = int(p.m - m0 < MI ? p.m - m0 : MI);
  const int kb0 = rank * p.kblocks / SPLIT, nkb = (rank + 1) * p.kblocks / SPLIT - kb0;  // >= 1 (host)
  const int stages = (nkb + KB - 1) / KB;
  // Stage s: KB weight tiles [BN rows][64], then KB activation tiles [NB rows][64].
  auto a_tile = [&](int s, int kb) { return ring + s * Sh::kStage + kb * Sh::kATile; };
  auto b_tile = [&](int s, int kb) { return ring + s * Sh::kStage + KB * Sh::kATile + kb * Sh::kBTile; };
  if (tid == 0) {
    for (int s = 0; s < S; ++s) mbar_init(&full[s], 1 + Sh::kBuilders), mbar_init(&empty[s], Sh::kConsumers);
    asm volatile("prefetch.tensormap [%0];" ::"l"(&p.wmap) : "memory");
  }
  __syncthreads();
  if constexpr (SPLIT > 1) cluster_sync();  // every CTA of the cluster runs (its shared memory is written below)
  pdl_wait_then_release();

  if (warp == 4) {  // producer
    if (lane == 0) {
      const int wrow = int((b / p.rep) * p.n + n0);
      const uint64_t policy = stream_policy(p.evict_first);
      for (int i = 0; i < stages; ++i) {
        const int s = i % S;
        if (i >= S) mbar_wait(&empty[s], uint32_t(i / S - 1) & 1u);
        mbar_expect_tx(&full[s], uint32_t(KB * Sh::kATile));
        // Every stage holds KB whole tiles: k blocks past the rank's end read past K (zeros), so
        // the MMA run has no branch (ptxas serializes wgmma across one).
        for (int kb = 0; kb < KB; ++kb) {
          const int j = i * KB + kb;
          tma_load_2d(a_tile(s, kb), &p.wmap, (j < nkb ? kb0 + j : p.kblocks) * 64, wrow, &full[s], policy);
        }
      }
    }
  } else if (warp > 4) {  // builders: thread (row mm, 16-byte chunk c) of each k block's B tile
    const int bt = tid - Sh::kConsumers - 32, mm = bt >> 3, c = bt & 7;
    const float* xrow = mm < count ? p.x + ((b * p.m + m0 + mm) * p.k + 8 * c) : nullptr;
    float4 xv[kTmaAhead][2];
    auto load = [&](int j, int d) {  // k block j of this rank
      const int64_t k = int64_t(kb0 + j) * 64;
      const bool ok = j < nkb && xrow && k + 8 * c < p.k;  // k % 8 == 0 (host): whole chunks
      xv[d][0] = ok ? load_ro_f4(xrow + k) : make_float4(0, 0, 0, 0);
      xv[d][1] = ok ? load_ro_f4(xrow + k + 4) : make_float4(0, 0, 0, 0);
    };
#pragma unroll
    for (int d = 0; d < kTmaAhead - 1; ++d) load(d, d);
    for (int j0 = 0; j0 < stages * KB; j0 += kTmaAhead) {  // k blocks past nkb: zeros
#pragma unroll
      for (int d = 0; d < kTmaAhead; ++d) {
        const int j = j0 + d;
        load(j + kTmaAhead - 1, (d + kTmaAhead - 1) % kTmaAhead);
        if (j < stages * KB) {
          const float xs[8] = {xv[d][0].x, xv[d][0].y, xv[d][0].z, xv[d][0].w,
                               xv[d][1].x, xv[d][1].y, xv[d][1].z, xv[d][1].w};
          float terms[8][NS];
#pragma unroll
          for (int e = 0; e < 8; ++e) {
            if constexpr (F16) terms[e][0] = __half2float(__float2half_rn(xs[e]));
            else split_bf16<NS>(xs[e], terms[e]);
          }
          const int i = j / KB, kb = j % KB, s = i % S;
          if (kb == 0 && i >= S) mbar_wait(&empty[s], uint32_t(i / S - 1) & 1u);
          // B row r = MI·sn + mm, 16-byte chunk c, 128-byte swizzle: atom r / 8, row r % 8 = mm % 8,
          // chunk c ^ (mm % 8).
          uint8_t* bs = b_tile(s, kb) + (mm >> 3) * 1024 + (mm & 7) * 128 + ((c ^ (mm & 7)) << 4);
#pragma unroll
          for (int sn = 0; sn < NS; ++sn) {
            uint32_t w[4];  // the terms are values of the operand type: packing is exact
#pragma unroll
            for (int q = 0; q < 4; ++q) w[q] = F16 ? pack_f16(terms[2 * q][sn], terms[2 * q + 1][sn])
                                                   : pack_bf16(terms[2 * q][sn], terms[2 * q + 1][sn]);
            *reinterpret_cast<uint4*>(bs + sn * MI * 128) = make_uint4(w[0], w[1], w[2], w[3]);
          }
          if (kb == KB - 1) {
            fence_proxy_async();  // the generic stores, then the MMAs' (async proxy) reads
            mbar_arrive(&full[s]);
          }
        }
      }
    }
  }

  // Consumers: v[h][q][e] = weight row row0 + 8h, activation row 8q + 2t + e.
  float v[2][Q][2] = {};
  const int g = lane >> 2, t = lane & 3;
  const int row0 = 16 * warp + g;
  if (warp < 4) {
    float acc[NB / 2];
#pragma unroll
    for (int j = 0; j < NB / 2; ++j) acc[j] = 0.f;
    for (int i = 0; i < stages; ++i) {
      const int s = i % S;
      mbar_wait(&full[s], uint32_t(i / S) & 1u);
      wgmma_fence_operands(acc);
      wgmma_fence();
#pragma unroll
      for (int kb = 0; kb < KB; ++kb) {
        const uint64_t adesc = wgmma_desc_sw128(a_tile(s, kb));
        const uint64_t bdesc = wgmma_desc_sw128(b_tile(s, kb));
#pragma unroll
        for (int kk = 0; kk < 4; ++kk) wgmma_ss<NB, F16>(acc, adesc + uint64_t(2 * kk), bdesc + uint64_t(2 * kk));
      }
      wgmma_commit();
      wgmma_fence_operands(acc);
      wgmma_wait<1>();  // the previous stage's MMAs are done: it goes back
      if (i > 0) mbar_arrive(&empty[(i - 1) % S]);
    }
    wgmma_wait<0>();
    wgmma_fence_operands(acc);
    // acc[4j + 2h + e]: weight row row0 + 8h, column 8j + 2t + e = term j / Q of activation row
    // 8(j % Q) + 2t + e. Terms are added in order.
#pragma unroll
    for (int sn = 0; sn < NS; ++sn)
#pragma unroll
      for (int q = 0; q < Q; ++q)
#pragma unroll
        for (int h = 0; h < 2; ++h)
#pragma unroll
          for (int e = 0; e < 2; ++e) v[h][q][e] += acc[4 * (sn * Q + q) + 2 * h + e];
  }
  if constexpr (SPLIT > 1) {
    if (rank > 0 && warp < 4) {
#pragma unroll
      for (int h = 0; h < 2; ++h)
#pragma unroll
        for (int q = 0; q < Q; ++q)
          asm volatile("st.shared::cluster.v2.f32 [%0], {%1, %2};" ::"r"(cluster_addr(&red[rank - 1][row0 + 8 * h][q][t], 0)),
                       "f"(v[h][q][0]), "f"(v[h][q][1])
                       : "memory");
    }
    cluster_sync();
    if (rank > 0) return;
    if (warp < 4) {
#pragma unroll
      for (int r = 0; r < SPLIT - 1; ++r)
#pragma unroll
        for (int h = 0; h < 2; ++h)
#pragma unroll
          for (int q = 0; q < Q; ++q) {
            const float2 o = red[r][row0 + 8 * h][q][t];
            v[h][q][0] += o.x, v[h][q][1] += o.y;
          }
    }
  }
  if (warp < 4) {
#pragma unroll
    for (int h = 0; h < 2; ++h)
#pragma unroll
      for (int q = 0; q < Q; ++q)
#pragma unroll
        for (int e = 0; e < 2; ++e) {
          const int m = 8 * q + 2 * t + e;
          const int64_t n = n0 + row0 + 8 * h;
          if (m < count && n < p.n) p.y[(b * p.m + m0 + m) * p.n + n] = v[h][q][e];
        }
  }
}

// LMK_GEMV_TMA: -1 (default) from LMK_GEMV_TMA_MIN_ROWS rows, 0 never, 1 at every M.
// LMK_GEMV_TMA_SPLIT (sweeps): the K split (1, 2, 4; 0 chooses).
const int kGemvTma = int(tuning("LMK_GEMV_TMA", -1));
const int64_t kGemvTmaMinRows = tuning("LMK_GEMV_TMA_MIN_ROWS", 5);
const int kGemvTmaSplit = int(tuning("LMK_GEMV_TMA_SPLIT", 0));
const bool kGemvTmaEvictFirst = tuning("LMK_GEMV_TMA_L2_FIRST", 1) != 0;
// Ring bytes (at most). 88 KB rings (four stages of two k blocks) let the next launch's CTA be
// placed beside this one's (programmatic launches). H100, 8x4096x14336 back to back, stages x k
// blocks at 176 / 88 KB rings: 4 x 4 47.0 us, 2 x 4 50.5, 8 x 2 47.9, 4 x 2 45.5, 8 x 1 49.9. CTAs
// of two consumer warpgroups (128 weight rows) were no faster than one.
const int kGemvTmaRing = int(tuning("LMK_GEMV_TMA_RING_KIB", 100)) * 1024;
constexpr int kTmaKb = 2;

template <int NS, int MI, int SPLIT, bool F16>
void launch_tma_kernel(const GemvTmaParams& d, int tiles, int items, cudaStream_t stream) {
  using Sh = TmaShape<NS, MI, kTmaKb>;
  auto kernel = gemv_tma_kernel<NS, MI, SPLIT, kTmaKb, F16>;
  static const bool once = [&] {
    LMK_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, Sh::smem(Sh::kMaxStages)));
    return true;
  }();
  (void)once;
  GemvTmaParams q = d;
  q.stages = std::max(2, std::min(Sh::kMaxStages, kGemvTmaRing / Sh::kStage));
  launch_pdl_cluster(kernel, dim3(unsigned(tiles * SPLIT), unsigned(items)), Sh::kThreads, Sh::smem(q.stages), SPLIT,
                     stream, q);
}

// f32 activations and output with bf16 weights, xr 0 (three terms) or 1 (dense_mm's rounding), or
// f16 weights, xr 2 (dense_mm's f16 rounding); items of up to 32 activation rows (8, 16 or 32: one
// pass over the weights per item). Returns false where it does not apply (nothing launched).
bool launch_tma(const GemvParams& p, int xr, bool any_rows, cudaStream_t stream) {
  const bool f16 = p.wt == DType::f16 && xr == 2, bf16 = p.wt == DType::bf16 && xr != 2;
  if (kGemvTma == 0 || (kGemvTma < 0 && !any_rows && p.m < kGemvTmaMinRows) || !(f16 || bf16) ||
      p.xt != DType::f32 || p.yt != DType::f32 || !p.vec || p.k % 8 != 0)  // vec: 16-byte aligned
    return false;
  const int mi = p.m <= 8 ? 8 : p.m <= 16 ? 16 : 32;
  const int64_t items = p.b1 * ceil_div(p.m, mi), kblocks = ceil_div(p.k, 64);
  // 32-bit TMA coordinates, grid rows.
  if (items > 65535 || p.b0 * p.n > INT32_MAX - 256 || p.k > INT32_MAX - 64) return false;
  // One CTA per SM: the K split that fills the most SMs, each rank keeping at least 8 k blocks;
  // ties to the smaller split.
  const int64_t sms = sm_count(), tiles = ceil_div(p.n, int64_t(64));
  int split = 1;
  double best_fill = -1.0;
  for (int sp : {1, 2, 4}) {
    if (kGemvTmaSplit ? sp != kGemvTmaSplit : sp > 1 && kblocks < 8 * sp) continue;
    if (kblocks < sp) continue;
    const int64_t ctas = tiles * sp * items;
    const double fill = double(ctas) / double(ceil_div(ctas, sms) * sms);
    if (fill > best_fill + 1e-9) best_fill = fill, split = sp;
  }
  if (best_fill < 0 || tiles * split > INT32_MAX) return false;
  GemvTmaParams d;
  d.wmap = tensor_map_2d(f16 ? CU_TENSOR_MAP_DATA_TYPE_FLOAT16 : CU_TENSOR_MAP_DATA_TYPE_BFLOAT16, p.w, p.b0 * p.n,
                         p.k, p.k * 2, 64, 64, "mat-vec weights");
  d.x = static_cast<const float*>(p.x);
  d.y = static_cast<float*>(p.y);
  d.m = p.m, d.n = p.n, d.k = p.k, d.rep = p.b1 / p.b0;
  d.m_items = int(ceil_div(p.m, mi));
  d.kblocks = int(kblocks);
  d.evict_first = kGemvTmaEvictFirst;
  auto by_split = [&](auto ns, auto m) {
    constexpr int NS = decltype(ns)::value, MI = decltype(m)::value;
    constexpr bool F16 = NS == 0;  // (ns = 0: f16 weights, one term)
    constexpr int T = F16 ? 1 : NS;
    if (split == 1) launch_tma_kernel<T, MI, 1, F16>(d, int(tiles), int(items), stream);
    else if (split == 2) launch_tma_kernel<T, MI, 2, F16>(d, int(tiles), int(items), stream);
    else launch_tma_kernel<T, MI, 4, F16>(d, int(tiles), int(items), stream);
  };
  auto by_rows = [&](auto ns) {
    if (mi == 8) by_split(ns, std::integral_constant<int, 8>{});
    else if (mi == 16) by_split(ns, std::integral_constant<int, 16>{});
    else by_split(ns, std::integral_constant<int, 32>{});
  };
  if (f16) by_rows(std::integral_constant<int, 0>{});
  else if (xr == 1) by_rows(std::integral_constant<int, 1>{});
  else by_rows(std::integral_constant<int, 3>{});
  return true;
}

// gemv()'s view of p: vec set where weights and activations allow 16-byte chunks.
GemvParams with_vec(const GemvParams& p) {
  GemvParams q = p;
  const int64_t wsize = element_size(p.wt), xsize = element_size(p.xt);
  const int64_t ch = 16 / wsize;
  q.vec = p.k % ch == 0 && is_aligned(p.w, 16) && is_aligned(p.x, 16) && (p.xt == DType::f32 || xsize * ch == 16);
  return q;
}
int x_rounding(const GemvParams& p) { return p.xround == DType::bf16 ? 1 : p.xround == DType::f16 ? 2 : 0; }

}  // namespace

bool gemv_tma(const GemvParams& p, cudaStream_t stream) { return launch_tma(with_vec(p), x_rounding(p), true, stream); }

void gemv(const GemvParams& p, cudaStream_t stream) {
  const GemvParams q = with_vec(p);
  const int xr = x_rounding(p);
  if (launch_tma(q, xr, false, stream) || launch_mma(q, xr, stream)) return;
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
