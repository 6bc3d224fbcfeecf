// Quantized mat-vec with f32 FMAs (spec §3.1 M = 1, §3.3 single routed rows): y[m, n] =
// Σ_k x[m, k]·W[n, k] for one activation row per work item, f32 activations, exact f32
// dequant, f32 FMA.
//
// Why staged: GGUF blocks are 18/34/210-byte records, so reading them in place means 2- and
// 4-byte loads and one load instruction per field per lane. Instead each warp streams its part of
// the weights into shared memory with 16-byte cp.async copies (a whole 512-byte warp request per
// instruction, several stages in flight without holding registers) and decodes from there with
// the same format decoders (formats.cuh, SharedBytes). A stage is 8 consecutive 32-element
// sub-blocks (one K-quant super-block, or 8 small blocks) of each of the CTA's R weight rows; the
// copy covers the 16-byte granules around them, so any row stride works (the granules that stick
// out of the weight tensor are filled by plain loads of their valid bytes).
//
// Layout: a CTA owns R = 8 weight rows of one work item (plain: the activation row; routed: one
// token slot and its expert); its warps take the row's stages round-robin, lane (sb, c) decodes
// the 8 codes (formats.cuh) of sub-block sb of each of the R rows and applies them to its 8
// activations, loaded once per stage (the activation reuse is R). Partial sums are reduced with a
// warp reduce-scatter and one shared-memory pass. The grid is sized by occupancy and strides over
// (item, row block) pairs, items fastest, so items that read the same weight rows run together
// and share them through L2.
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
  const uint8_t* w_end = nullptr;  // end of the whole weight tensor (every expert)
  RowSource rs;
};

constexpr int kQmvRows = 8;    // weight rows per CTA
constexpr int kQmvStages = 4;  // stage slots per warp (3 copies in flight while one is decoded)

// Shared-memory stage of format F: 8 sub-blocks of each of kQmvRows rows.
template <class F>
struct QmvStage {
  static constexpr int kRowBytes = F::kBytes * 8 / F::kSubBlocks;  // bytes of 8 sub-blocks
  static constexpr int kGranules = (kRowBytes + 30) / 16;          // 16-byte copies at any offset
  static constexpr int kSlot = kGranules * 16 + 16;                // + room for SharedBytes::u32
  static constexpr int kBytes = kQmvRows * kSlot;                  // one stage of one warp
};

template <class F>
constexpr int qmv_smem_bytes(int warps) {
  return warps * kQmvStages * QmvStage<F>::kBytes;
}

template <class F>
__global__ void __launch_bounds__(256) qmv_kernel(const QmvParams p) {
  using S = QmvStage<F>;
  constexpr int R = kQmvRows, P = kQmvStages;
  extern __shared__ __align__(16) uint8_t qmv_smem[];
  __shared__ float red[8][R];
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, nwarps = int(blockDim.x >> 5);
  const int sbl = lane >> 2, c = lane & 3;  // sub-block within the stage, quarter
  uint8_t* ring = qmv_smem + warp * (P * S::kBytes);
  const int64_t nst = (p.nsb + 7) / 8;  // stages per row
  const int64_t my_stages = nst > warp ? (nst - warp + nwarps - 1) / nwarps : 0;
  const uintptr_t lo = reinterpret_cast<uintptr_t>(p.w), hi = reinterpret_cast<uintptr_t>(p.w_end);
  const int64_t n_rg = (p.n + R - 1) / R;
  const int64_t n_items = item_count(p.rs);
  const int64_t total = n_items * n_rg;
  for (int64_t wi = blockIdx.x; wi < total; wi += gridDim.x) {
    const int64_t item = wi % n_items, n0 = (wi / n_items) * R;
    const ItemHead h = item_head(p.rs, item);
    if (h.invalid) {  // out-of-range expert id: zero this item's output row slice
      if (tid < R && n0 + tid < p.n) p.y[h.start * p.n + n0 + tid] = 0.0f;
      if (tid == 0 && n0 == 0) record_invalid(p.rs, h.start);
      continue;
    }
    const uintptr_t wb = lo + uintptr_t(h.expert * p.expert_stride);
    int64_t yrow = 0, xrow = 0;
    item_row(p.rs, h, 0, yrow, xrow);
    const float* xr = p.x + xrow * p.k + 4 * c;

    // Stage j of this warp (row stage s = warp + j * nwarps) into slot j % P.
    auto issue = [&](int64_t j) {
      if (j < my_stages) {
        const int64_t s = warp + j * nwarps;
        uint8_t* slot = ring + (j % P) * S::kBytes;
        for (int g = lane; g < R * S::kGranules; g += 32) {
          const int r = g / S::kGranules, gi = g - r * S::kGranules;
          const int64_t row = n0 + r < p.n ? n0 + r : p.n - 1;
          const uintptr_t a = (wb + uintptr_t(row * p.row_bytes + s * S::kRowBytes)) & ~uintptr_t(15);
          const uintptr_t src = a + 16 * gi;
          uint8_t* dst = slot + r * S::kSlot + 16 * gi;
          if (src >= lo && src + 16 <= hi) {
            cp_async16(dst, reinterpret_cast<const void*>(src), 16);
          } else {  // tensor edge: only the bytes inside the tensor
#pragma unroll 1
            for (int b = 0; b < 16; ++b)
              dst[b] = src + b >= lo && src + b < hi ? *reinterpret_cast<const uint8_t*>(src + b) : uint8_t(0);
          }
        }
      }
      cp_async_commit();
    };

    float acc[R];
#pragma unroll
    for (int r = 0; r < R; ++r) acc[r] = 0.0f;
#pragma unroll
    for (int j = 0; j < P - 1; ++j) issue(j);
    for (int64_t j = 0; j < my_stages; ++j) {
      issue(j + P - 1);
      cp_async_wait<P - 1>();
      __syncwarp();
      const int64_t s = warp + j * nwarps, sb = s * 8 + sbl;
      if (sb < p.nsb) {
        const uint8_t* slot = ring + (j % P) * S::kBytes;
        const float4 xa = ldx4(xr + sb * 32, p.xvec), xb = ldx4(xr + sb * 32 + 16, p.xvec);
        float sa = 0.0f, sbx = 0.0f;
        if constexpr (F::kOffset) {
          sa = (xa.x + xa.y) + (xa.z + xa.w);
          sbx = (xb.x + xb.y) + (xb.z + xb.w);
        }
#pragma unroll
        for (int r = 0; r < R; ++r) {
          const int64_t row = n0 + r < p.n ? n0 + r : p.n - 1;
          const int off = int((wb + uintptr_t(row * p.row_bytes + s * S::kRowBytes)) & 15);
          Dec d;
          F::finish(F::load(SharedBytes{}, slot + r * S::kSlot + off, sbl, c), sbl, d);
          const float* v = d.v;
          float t0 = v[0] * xa.x;
          t0 = fmaf(v[1], xa.y, t0);
          t0 = fmaf(v[2], xa.z, t0);
          t0 = fmaf(v[3], xa.w, t0);
          float t1 = v[4] * xb.x;
          t1 = fmaf(v[5], xb.y, t1);
          t1 = fmaf(v[6], xb.z, t1);
          t1 = fmaf(v[7], xb.w, t1);
          float a = fmaf(d.sc0, t0, acc[r]);
          a = fmaf(d.sc1, t1, a);
          if constexpr (F::kOffset) {
            a = fmaf(d.off0, sa, a);
            a = fmaf(d.off1, sbx, a);
          }
          acc[r] = a;
        }
      }
      __syncwarp();  // the slot is refilled by the next issue
    }

    const int idx = warp_reduce_scatter<R>(acc, lane);
    if (reduce_writer<R>(lane)) red[warp][idx] = acc[0];
    __syncthreads();
    if (tid < R && n0 + tid < p.n) {
      float s = 0.0f;
      for (int w = 0; w < nwarps; ++w) s += red[w][tid];
      p.y[yrow * p.n + n0 + tid] = s;
    }
    __syncthreads();
  }
}

// One activation row per item (M = 1 decode and single routed rows); 2..8 rows per weight read
// use the tensor-core mat-vec (qmv_tc.cuh). Warps: one per stage of a row, at most 8.
template <class F>
void launch_qmv(const QmvParams& p, cudaStream_t stream) {
  const int64_t n_rg = (p.n + kQmvRows - 1) / kQmvRows;
  const int64_t work = p.rs.n_items * n_rg;
  if (work <= 0) return;
  const int64_t nst = (p.nsb + 7) / 8;
  const int warps = int(nst < 8 ? nst : 8);
  const int smem = qmv_smem_bytes<F>(warps);
  auto kernel = qmv_kernel<F>;
  static const bool attr = [&] {
    LMK_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, qmv_smem_bytes<F>(8)));
    return true;
  }();
  (void)attr;
  const int64_t cap =
      int64_t(max_active_blocks(reinterpret_cast<const void*>(kernel), 32 * warps, smem)) * sm_count();
  kernel<<<unsigned(work < cap ? work : cap), 32 * warps, smem, stream>>>(p);
  LMK_LAUNCH_CHECK(qmv_kernel);
}

}  // namespace lmk::cuda::mm
