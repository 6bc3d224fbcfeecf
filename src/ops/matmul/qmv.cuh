// Quantized mat-vec with f32 FMAs (spec §3.1 M = 1, §3.3 single routed rows): y[m, n] =
// Σ_k x[m, k]·W[n, k] for up to MT activation rows per weight read (instantiated for MT = 1),
// f32 activations, exact f32 dequant, f32 FMA.
//
// Layout: a CTA owns RC = 4 weight rows of one work item (plain: MT activation rows; routed: the
// rows of one expert). Its threads walk the rows' 32-element sub-blocks four lanes per sub-block
// (formats.cuh), so one warp covers 8 consecutive sub-blocks (256 values = one K-quant
// super-block) per step and the quads of a CTA stride over K. Each lane decodes its 8 codes of
// the RC rows once and applies them to the MT activation rows held in registers per step (x
// loads are shared by the RC rows; float4 loads, 64 contiguous bytes per quad). Partial sums
// are reduced with a warp reduce-scatter and one shared-memory pass. The grid is sized by
// occupancy and strides over (item, row block) pairs, items fastest, so items that read the
// same weight rows run together and share them through L2.
#pragma once
#include "ops/matmul/formats.cuh"

namespace lmk::cuda::mm {

struct QmvParams {
  const float* x = nullptr;
  int64_t k = 0;
  float* y = nullptr;
  int64_t n = 0;
  const uint8_t* w = nullptr;
  int64_t row_bytes = 0, expert_stride = 0;
  int64_t nsb = 0;    // 32-element sub-blocks per row (k / 32)
  bool fast = false;  // the weight tensor starts and ends 4-byte aligned (see ld_u32_2a)
  bool xvec = false;  // x is 16-byte aligned (float4 loads)
  RowSource rs;
};

constexpr int kQmvRows = 4;

template <class F, int MT>
__global__ void __launch_bounds__(256) qmv_kernel(const QmvParams p) {
  constexpr int RC = kQmvRows, V = RC * MT;
  __shared__ float red[8][V];
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, nwarps = int(blockDim.x >> 5);
  const int c = tid & 3, quad = tid >> 2, nquads = int(blockDim.x >> 2);
  const int64_t n_rg = (p.n + RC - 1) / RC;
  const int64_t n_items = item_count(p.rs);
  const int64_t total = n_items * n_rg;
  for (int64_t wi = blockIdx.x; wi < total; wi += gridDim.x) {
    const int64_t item = wi % n_items, n0 = (wi / n_items) * RC;
    const ItemHead h = item_head(p.rs, item);
    if (h.invalid) {  // out-of-range expert id: zero this item's output row slice
      if (tid < RC && n0 + tid < p.n) p.y[h.start * p.n + n0 + tid] = 0.0f;
      if (tid == 0 && n0 == 0) record_invalid(p.rs, h.start);
      continue;
    }
    const uint8_t* wb = p.w + h.expert * p.expert_stride;
    const uint8_t* rows[RC];
#pragma unroll
    for (int r = 0; r < RC; ++r) rows[r] = wb + (n0 + r < p.n ? n0 + r : p.n - 1) * p.row_bytes;
    const float* xr[MT];
    int64_t yr[MT];
#pragma unroll
    for (int m = 0; m < MT; ++m) {
      int64_t yrow = 0, xrow = 0;
      item_row(p.rs, h, m < h.count ? m : 0, yrow, xrow);
      yr[m] = yrow;
      xr[m] = p.x + xrow * p.k + 4 * c;
    }
    float acc[RC][MT];
#pragma unroll
    for (int r = 0; r < RC; ++r)
#pragma unroll
      for (int m = 0; m < MT; ++m) acc[r][m] = 0.0f;

    for (int64_t sb = quad; sb < p.nsb; sb += nquads) {
      typename F::Raw raw[RC];
#pragma unroll
      for (int r = 0; r < RC; ++r) raw[r] = F::load(rows[r], sb, c, p.fast);
      Dec d[RC];
#pragma unroll
      for (int r = 0; r < RC; ++r) F::finish(raw[r], sb, d[r]);
#pragma unroll
      for (int m = 0; m < MT; ++m) {
        if (m < h.count) {
          const float4 xa = ldx4(xr[m] + sb * 32, p.xvec), xb = ldx4(xr[m] + sb * 32 + 16, p.xvec);
          float sa = 0.0f, sbx = 0.0f;
          if constexpr (F::kOffset) {
            sa = (xa.x + xa.y) + (xa.z + xa.w);
            sbx = (xb.x + xb.y) + (xb.z + xb.w);
          }
#pragma unroll
          for (int r = 0; r < RC; ++r) {
            const float* v = d[r].v;
            float t0 = v[0] * xa.x;
            t0 = fmaf(v[1], xa.y, t0);
            t0 = fmaf(v[2], xa.z, t0);
            t0 = fmaf(v[3], xa.w, t0);
            float t1 = v[4] * xb.x;
            t1 = fmaf(v[5], xb.y, t1);
            t1 = fmaf(v[6], xb.z, t1);
            t1 = fmaf(v[7], xb.w, t1);
            float a = fmaf(d[r].sc0, t0, acc[r][m]);
            a = fmaf(d[r].sc1, t1, a);
            if constexpr (F::kOffset) {
              a = fmaf(d[r].off0, sa, a);
              a = fmaf(d[r].off1, sbx, a);
            }
            acc[r][m] = a;
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
      int64_t yrow = yr[0];
#pragma unroll
      for (int mm = 1; mm < MT; ++mm)
        if (mm == m) yrow = yr[mm];
      if (m < h.count && n0 + r < p.n) p.y[yrow * p.n + n0 + r] = s;
    }
    __syncthreads();
  }
}

// Threads per CTA: four per sub-block of a row, at most 256.
inline int qmv_threads(int64_t nsb) {
  const int64_t t = (4 * nsb + 31) / 32 * 32;
  return int(t < 256 ? t : 256);
}

// One activation row per item (M = 1 decode and single routed rows); 2..8 rows per weight read
// use the tensor-core mat-vec (qmv_tc.cuh), whose activation reuse does not depend on registers.
template <class F>
void launch_qmv(const QmvParams& p, cudaStream_t stream) {
  const int threads = qmv_threads(p.nsb);
  const int64_t n_rg = (p.n + kQmvRows - 1) / kQmvRows;
  const int64_t work = p.rs.n_items * n_rg;
  if (work <= 0) return;
  auto kernel = qmv_kernel<F, 1>;
  const int64_t cap = int64_t(max_active_blocks(reinterpret_cast<const void*>(kernel), threads)) * sm_count();
  kernel<<<unsigned(work < cap ? work : cap), threads, 0, stream>>>(p);
  LMK_LAUNCH_CHECK(qmv_kernel);
}

}  // namespace lmk::cuda::mm
