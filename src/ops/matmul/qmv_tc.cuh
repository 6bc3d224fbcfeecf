// Quantized mat-vec for 2..8 activation rows on tensor cores, at f32 accuracy (spec §3.1 mat-vec
// path, tolerance 1e-5): y[m, n] = Σ_k x[m, k]·W[n, k].
//
// Why: with FMAs every lane keeps a partial sum per (weight row, activation row), so an
// activation load serves only a few weight rows and 8 activation rows of K = 14336 would be
// re-read from L2 for every few weight rows. An mma.sync m16n8k16 tile keeps 16 weight rows x 8
// activation rows spread over the warp, so one warp applies its activation fragments to 64 rows.
//
// Exactness: the integer codes of every format (|q| <= 128) are exact in bf16; each activation
// is split into three bf16 pieces x = x1 + x2 + x3 (x1 = bf16(x), x2 = bf16(x - x1),
// x3 = bf16(x - x1 - x2), the differences exact in f32), which carry 24 significant bits, so the
// products code·piece are exact and the tensor core sums them in f32. Per 16-value k-step the sum
// Σ code·x of each weight row is scaled in f32 by that row's scale (and the min term added as
// offset·Σx, Σx from one more mma against a ones matrix): the factored form of spec §0.
//
// Layout: lane (g, c) of a warp feeds weight rows g and g+8 of a 16-row tile with the 8 codes of
// formats.cuh (elements 4c..4c+3 and 16+4c..16+4c+3 of a 32-value sub-block: k-step 0 holds
// elements 0..15, k-step 1 elements 16..31; within a step lane c owns the mma k-slots
// {2c, 2c+1, 2c+8, 2c+9} for elements {4c, 4c+1, 4c+2, 4c+3} of that half) and activation row g
// through the same slot mapping. A CTA (8 warps) owns 64 weight rows (4 tiles per warp); its warps
// interleave over the sub-blocks of one K range, then reduce through shared memory. When 64-row
// slabs alone cannot fill the GPU, K is split over several CTAs: each writes its partial sums to
// scratch and the last one to finish (atomic counter, reset by that CTA) adds the partials in a
// fixed order — deterministic results.
#pragma once
#include "ops/matmul/formats.cuh"
#include "ops/matmul/qmm.cuh"  // mma_bf16, pack_bf16
#include "ops/matmul/qmv.cuh"  // QmvParams

namespace lmk::cuda::mm {

struct QmvTcParams {
  QmvParams q;
  int splits = 1;             // CTAs along K per (item, slab)
  float* partial = nullptr;   // [slots][splits][64 * 8] when splits > 1
  int* counters = nullptr;    // [slots], zero between launches
};

constexpr int kTcRows = 64;   // weight rows per CTA
constexpr int kTcTiles = 4;   // 16-row tiles per warp

// Three bf16 pieces of the pair (a, b), packed like an mma operand (a in the low half).
__device__ __forceinline__ void split3(float a, float b, uint32_t& p1, uint32_t& p2, uint32_t& p3) {
  const __nv_bfloat162 h1 = __floats2bfloat162_rn(a, b);
  const float ra = a - __low2float(h1), rb = b - __high2float(h1);
  const __nv_bfloat162 h2 = __floats2bfloat162_rn(ra, rb);
  const float sa = ra - __low2float(h2), sb = rb - __high2float(h2);
  const __nv_bfloat162 h3 = __floats2bfloat162_rn(sa, sb);
  p1 = *reinterpret_cast<const uint32_t*>(&h1);
  p2 = *reinterpret_cast<const uint32_t*>(&h2);
  p3 = *reinterpret_cast<const uint32_t*>(&h3);
}

template <class F>
__global__ void __launch_bounds__(256) qmv_tc_kernel(const QmvTcParams tp) {
  const QmvParams& p = tp.q;
  constexpr int T = kTcTiles, OUT = kTcRows * 8;
  __shared__ float red[8][OUT];
  __shared__ int last_cta;
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int g = lane >> 2, c = lane & 3;

  const int64_t n_slabs = (p.n + kTcRows - 1) / kTcRows;
  const int64_t bound = p.rs.n_items;  // grid = bound * n_slabs * splits
  const int64_t item = blockIdx.x % bound, rest = blockIdx.x / bound;
  const int split = int(rest % tp.splits);
  const int64_t slab = rest / tp.splits;
  if (item >= item_count(p.rs)) return;
  const ItemHead h = item_head(p.rs, item);
  const int64_t n0 = slab * kTcRows;

  // Activation row of this lane's mma column g (zero when the item has fewer rows).
  const float* xr = nullptr;
  if (g < h.count) {
    int64_t yrow = 0, xrow = 0;
    item_row(p.rs, h, g, yrow, xrow);
    xr = p.x + xrow * p.k;
  }
  const uint8_t* wb = p.w + h.expert * p.expert_stride;
  const uint8_t* rows[T][2];
#pragma unroll
  for (int t = 0; t < T; ++t)
#pragma unroll
    for (int hh = 0; hh < 2; ++hh) {
      const int64_t r = n0 + 16 * t + g + 8 * hh;
      rows[t][hh] = wb + (r < p.n ? r : p.n - 1) * p.row_bytes;
    }

  float acc[T][4];
#pragma unroll
  for (int t = 0; t < T; ++t)
#pragma unroll
    for (int e = 0; e < 4; ++e) acc[t][e] = 0.0f;

  const int64_t sb0 = p.nsb * split / tp.splits, sb1 = p.nsb * (split + 1) / tp.splits;
  constexpr uint32_t kOnes = 0x3F803F80u;  // bf16 pair (1, 1)
  const uint32_t ones[4] = {kOnes, kOnes, kOnes, kOnes};

  for (int64_t sb = sb0 + warp; sb < sb1; sb += 8) {
    // B fragments: step s covers elements 16s + {4c .. 4c+3} of activation row g.
    uint32_t bx[2][3][2];  // [step][piece][b0/b1]
    {
      float4 xa = make_float4(0.f, 0.f, 0.f, 0.f), xb = xa;
      if (xr) {
        xa = ldx4(xr + sb * 32 + 4 * c, p.xvec);
        xb = ldx4(xr + sb * 32 + 16 + 4 * c, p.xvec);
      }
      split3(xa.x, xa.y, bx[0][0][0], bx[0][1][0], bx[0][2][0]);
      split3(xa.z, xa.w, bx[0][0][1], bx[0][1][1], bx[0][2][1]);
      split3(xb.x, xb.y, bx[1][0][0], bx[1][1][0], bx[1][2][0]);
      split3(xb.z, xb.w, bx[1][0][1], bx[1][1][1], bx[1][2][1]);
    }
    // Σx per step for the min terms: columns 2c, 2c+1 of (ones · X).
    float xs[2][4] = {};
    if constexpr (F::kOffset) {
#pragma unroll
      for (int s = 0; s < 2; ++s)
#pragma unroll
        for (int pc = 2; pc >= 0; --pc) mma_bf16(xs[s], ones, bx[s][pc][0], bx[s][pc][1]);
    }
#pragma unroll
    for (int t = 0; t < T; ++t) {
      const typename F::Raw r0 = F::load(GlobalBytes{p.fast}, rows[t][0], sb, c);
      const typename F::Raw r1 = F::load(GlobalBytes{p.fast}, rows[t][1], sb, c);
      Dec d0, d1;  // rows g and g + 8
      F::finish(r0, sb, d0);
      F::finish(r1, sb, d1);
#pragma unroll
      for (int s = 0; s < 2; ++s) {
        const uint32_t a[4] = {pack_bf16(d0.v[4 * s], d0.v[4 * s + 1]), pack_bf16(d1.v[4 * s], d1.v[4 * s + 1]),
                               pack_bf16(d0.v[4 * s + 2], d0.v[4 * s + 3]), pack_bf16(d1.v[4 * s + 2], d1.v[4 * s + 3])};
        float tmp[4] = {0.f, 0.f, 0.f, 0.f};
#pragma unroll
        for (int pc = 2; pc >= 0; --pc) mma_bf16(tmp, a, bx[s][pc][0], bx[s][pc][1]);
        const float s0 = s ? d0.sc1 : d0.sc0, s1 = s ? d1.sc1 : d1.sc0;
        acc[t][0] = fmaf(s0, tmp[0], acc[t][0]);
        acc[t][1] = fmaf(s0, tmp[1], acc[t][1]);
        acc[t][2] = fmaf(s1, tmp[2], acc[t][2]);
        acc[t][3] = fmaf(s1, tmp[3], acc[t][3]);
        if constexpr (F::kOffset) {
          const float o0 = s ? d0.off1 : d0.off0, o1 = s ? d1.off1 : d1.off0;
          acc[t][0] = fmaf(o0, xs[s][0], acc[t][0]);
          acc[t][1] = fmaf(o0, xs[s][1], acc[t][1]);
          acc[t][2] = fmaf(o1, xs[s][2], acc[t][2]);
          acc[t][3] = fmaf(o1, xs[s][3], acc[t][3]);
        }
      }
    }
  }

  // CTA reduction: output o = local_row * 8 + column.
#pragma unroll
  for (int t = 0; t < T; ++t) {
    const int r = 16 * t + g;
    red[warp][r * 8 + 2 * c] = acc[t][0];
    red[warp][r * 8 + 2 * c + 1] = acc[t][1];
    red[warp][(r + 8) * 8 + 2 * c] = acc[t][2];
    red[warp][(r + 8) * 8 + 2 * c + 1] = acc[t][3];
  }
  __syncthreads();
  float sum[2];
#pragma unroll
  for (int j = 0; j < 2; ++j) {
    const int o = tid + 256 * j;
    float s = 0.0f;
#pragma unroll
    for (int w = 0; w < 8; ++w) s += red[w][o];
    sum[j] = s;
  }
  const int64_t slot = item * n_slabs + slab;
  if (tp.splits > 1) {
    float* mine = tp.partial + (slot * tp.splits + split) * OUT;
#pragma unroll
    for (int j = 0; j < 2; ++j) mine[tid + 256 * j] = sum[j];
    __threadfence();
    __syncthreads();
    if (tid == 0) last_cta = atomicAdd(tp.counters + slot, 1) == tp.splits - 1;
    __syncthreads();
    if (!last_cta) return;
    __threadfence();
    const float* all = tp.partial + slot * tp.splits * OUT;
#pragma unroll
    for (int j = 0; j < 2; ++j) {
      float s = 0.0f;
      for (int k = 0; k < tp.splits; ++k) s += __ldcg(all + k * OUT + tid + 256 * j);
      sum[j] = s;
    }
    if (tid == 0) tp.counters[slot] = 0;  // ready for the next launch
  }
#pragma unroll
  for (int j = 0; j < 2; ++j) {
    const int o = tid + 256 * j, r = o >> 3, col = o & 7;
    if (col < h.count && n0 + r < p.n) {
      int64_t yrow = 0, xrow = 0;
      item_row(p.rs, h, col, yrow, xrow);
      p.y[yrow * p.n + n0 + r] = sum[j];
    }
  }
}

// Splits along K so that (items x slabs x splits) CTAs give about two per SM, each split keeping
// at least 16 sub-blocks (two per warp).
inline int qmv_tc_splits(int64_t items, int64_t n, int64_t nsb) {
  const int64_t ctas = items * ((n + kTcRows - 1) / kTcRows);
  int64_t s = (2 * int64_t(sm_count()) + ctas - 1) / ctas;
  s = s < 1 ? 1 : s > 8 ? 8 : s;
  while (s > 1 && nsb / s < 16) --s;
  return int(s);
}

template <class F>
void launch_qmv_tc(const QmvTcParams& tp, cudaStream_t stream) {
  const int64_t blocks = tp.q.rs.n_items * ((tp.q.n + kTcRows - 1) / kTcRows) * tp.splits;
  if (blocks <= 0) return;
  qmv_tc_kernel<F><<<unsigned(blocks), 256, 0, stream>>>(tp);
  LMK_LAUNCH_CHECK(qmv_tc_kernel);
}

}  // namespace lmk::cuda::mm
