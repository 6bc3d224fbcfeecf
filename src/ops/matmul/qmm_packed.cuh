// Quantized mat-mat on packed weights (pack_ggml, packed_layout.h) with Hopper warpgroup MMA:
// y[m, n] = Σ_k bf16(x[m, k]) · w_bf16[n, k], f32 accumulation (spec §3.1 M > 8): bf16-rounded
// activations x bf16 dequantized weights, the spec's 1.6e-2 row. The weights are dequantized in
// bf16 arithmetic where the codes allow it (qmmp_frags), else exactly in f32 and rounded once.
//
// The weights are the register operand A of wgmma.m64nBMk16: the packed layout already gives
// lane 4g + c of the warp that owns a 16-row tile the codes of elements 4c..4c+3 and
// 16 + 4c..16 + 4c + 3 of every 32-element sub-block of rows g and g + 8, so a warp copies its
// tile's record of a chunk from the ring (below) into registers and decodes it into A fragments:
// no shared-memory weight tile, no reshuffle. Those fragments hold k 2c, 2c + 1, 2c + 8, 2c + 9 of each
// 16-element half, so x is stored in the matching order (permute_x: within every 16 elements,
// position L holds element 4·((L % 8) / 2) + 2·(L / 8) + L % 2), converted to bf16 and padded
// with zeros to whole chunks once before the launch.
//
// CTA: two warpgroups, 128 weight rows (8 packed tiles, one per warp) x BM activation rows (an
// item of the RowSource: plain row tiles or per-expert row lists), all of K or one K-split. Two
// shared-memory rings feed it: the 8 tiles' records of a chunk arrive by bulk copy (one thread,
// one mbarrier per stage, SW stages ahead), x by cp.async in SX stages of 128 values of K (two
// 128-byte swizzle atoms per row). Step i (half a chunk) decodes its A fragments from the record
// while the wgmma group of step i - 1 runs, waits for x stage i, refills the x stage of step
// i - 2 (and, after a chunk's second half, that chunk's record stage), then issues 8 wgmma k16
// steps. K-splits (small grids) store partial sums that launch_sum_slices adds in order. The
// kernel is launched with programmatic dependence: its weight stages load while permute_x runs.
#pragma once
#include "cuda/wgmma.cuh"
#include "ops/matmul/qmm.cuh"
#include "ops/matmul/qmv_packed.cuh"

namespace lmk::cuda::mm {

struct QmmpParams {
  const uint8_t* w = nullptr;  // packed weights, expert e at e · expert_bytes
  int64_t expert_bytes = 0;
  int64_t n = 0, tiles = 0, chunks = 0;
  const __nv_bfloat16* xp = nullptr;  // permuted bf16 x, [x rows][chunks · 256]
  RowSource rs;
  float* y = nullptr;  // [y_rows][n]
  int64_t y_rows = 0;
  float* part = nullptr;  // splits > 1: [split][y_rows][n]
  int splits = 1;
  int64_t split_chunks = 0;  // chunks per K-split
};

constexpr int kQmmpThreads = 256;  // two warpgroups
constexpr int kQmmpRows = 128;     // weight rows per CTA (one 16-row tile per warp)
// CTAs per SM: two for 32-row items (their wgmma is short: more warps hide the decode
// latency), else one; each gets an even share of the 220 KB dynamic shared-memory budget.
template <int BM>
constexpr int qmmp_ctas_per_sm() {
  return BM == 32 ? 2 : 1;
}
template <int BM>
constexpr int qmmp_smem_budget() {
  return 220 * 1024 / qmmp_ctas_per_sm<BM>();
}
// x stages (BM rows x 256 bytes) and weight record stages (8 records) of the rings.
template <int BM>
constexpr int qmmp_x_stages() {
  return BM == 128 ? 4 : BM == 64 ? 5 : 4;
}
template <int BM>
constexpr int qmmp_w_stages(DType t) {
  const int64_t left = qmmp_smem_budget<BM>() - 1024 - int64_t(qmmp_x_stages<BM>()) * BM * 256;
  const int64_t fit = left / (8 * packed::record_bytes(t));
  return int(fit < 2 ? 2 : fit > 6 ? 6 : fit);
}
template <int BM>
constexpr int qmmp_smem_bytes(DType t) {  // + 1024: alignment slack for the 1024-byte atoms
  return qmmp_x_stages<BM>() * BM * 256 + qmmp_w_stages<BM>(t) * 8 * int(packed::record_bytes(t)) + 1024;
}

// Logical position L (< 16) of x's wgmma order holds element qmmp_phys(L) of its 16-group.
__host__ __device__ constexpr int qmmp_phys(int L) { return 4 * ((L % 8) / 2) + 2 * (L / 8) + L % 2; }

// A fragments of one 32-element sub-block for rows g (d0) and g + 8 (d1): lo = the k16 step of
// elements 0..15, hi = elements 16..31.
//   Unsigned codes (every format but Q8_0 and the IQ4 codebooks; codes <= 63): bf16 arithmetic,
//   three instructions per pair: one byte permute builds bf16x2 (128 + code) (0x43bb is exactly
//   128 + bb for bb < 128), one exact subtraction leaves code + bias, one bf16x2 multiply by the
//   bf16-rounded scale (or fma with the bf16-rounded min term). Error: the scale's, the min
//   term's and the result's rounding (<= 3 bf16 ulps of |s·q| + |m|, the spec's bf16 row).
//   Signed 8-bit codes (no exact bf16 magic): exact f32 dequant, one rounding to bf16.
__device__ __forceinline__ uint32_t bf16x2_bits(__nv_bfloat162 v) { return *reinterpret_cast<uint32_t*>(&v); }

template <class F>
__device__ __forceinline__ void qmmp_frags(const Dec8& d0, const Dec8& d1, uint32_t (&lo)[4], uint32_t (&hi)[4]) {
  if constexpr (!F::kSigned) {
    const __nv_bfloat162 unbias = __float2bfloat162_rn(float(128 - F::kBias));
    auto pairs = [&](uint32_t codes, __nv_bfloat162 sc, __nv_bfloat162 off, uint32_t& p01, uint32_t& p23) {
      const uint32_t a = prmt(codes, 0x43u, 0x4140u), b = prmt(codes, 0x43u, 0x4342u);
      __nv_bfloat162 va = __hsub2(*reinterpret_cast<const __nv_bfloat162*>(&a), unbias);
      __nv_bfloat162 vb = __hsub2(*reinterpret_cast<const __nv_bfloat162*>(&b), unbias);
      if constexpr (F::kMin) {
        va = __hfma2(va, sc, off);
        vb = __hfma2(vb, sc, off);
      } else {
        va = __hmul2(va, sc);
        vb = __hmul2(vb, sc);
      }
      p01 = bf16x2_bits(va), p23 = bf16x2_bits(vb);
    };
    const __nv_bfloat162 s00 = __float2bfloat162_rn(d0.sc0), s10 = __float2bfloat162_rn(d1.sc0);
    const __nv_bfloat162 s01 = F::kHalfScales ? __float2bfloat162_rn(d0.sc1) : s00;
    const __nv_bfloat162 s11 = F::kHalfScales ? __float2bfloat162_rn(d1.sc1) : s10;
    __nv_bfloat162 o00{}, o10{}, o01{}, o11{};
    if constexpr (F::kMin) {
      o00 = __float2bfloat162_rn(d0.off0), o10 = __float2bfloat162_rn(d1.off0);
      o01 = F::kHalfScales ? __float2bfloat162_rn(d0.off1) : o00;
      o11 = F::kHalfScales ? __float2bfloat162_rn(d1.off1) : o10;
    }
    pairs(d0.lo, s00, o00, lo[0], lo[2]);
    pairs(d1.lo, s10, o10, lo[1], lo[3]);
    pairs(d0.hi, s01, o01, hi[0], hi[2]);
    pairs(d1.hi, s11, o11, hi[1], hi[3]);
  } else {
    constexpr int kB = 128 - F::kBias;
    float v0[8], v1[8];
    codes4<kB>(d0.lo ^ 0x80808080u, v0);
    codes4<kB>(d0.hi ^ 0x80808080u, v0 + 4);
    codes4<kB>(d1.lo ^ 0x80808080u, v1);
    codes4<kB>(d1.hi ^ 0x80808080u, v1 + 4);
#pragma unroll
    for (int i = 0; i < 8; ++i) {
      v0[i] *= i < 4 ? d0.sc0 : d0.sc1;
      v1[i] *= i < 4 ? d1.sc0 : d1.sc1;
    }
    lo[0] = pack_bf16(v0[0], v0[1]), lo[1] = pack_bf16(v1[0], v1[1]);
    lo[2] = pack_bf16(v0[2], v0[3]), lo[3] = pack_bf16(v1[2], v1[3]);
    hi[0] = pack_bf16(v0[4], v0[5]), hi[1] = pack_bf16(v1[4], v1[5]);
    hi[2] = pack_bf16(v0[6], v0[7]), hi[3] = pack_bf16(v1[6], v1[7]);
  }
}

template <class F, int BM>
__global__ void __launch_bounds__(kQmmpThreads, qmmp_ctas_per_sm<BM>()) qmmp_kernel(const QmmpParams p) {
  static_assert(BM == 32 || BM == 64 || BM == 128, "wgmma N");
  constexpr int SX = qmmp_x_stages<BM>(), SW = qmmp_w_stages<BM>(F::kType);
  constexpr int kStage = BM * 256, kAtom = BM * 128, XJ = BM * 16 / kQmmpThreads;
  constexpr int R = int(packed::record_bytes(F::kType));
  static_assert(kStage * SX + 8 * R * SW + 1024 <= qmmp_smem_budget<BM>() + 1024, "shared memory");
  using Chunk = QmvpChunk<F::kType>;
  extern __shared__ uint8_t smem_raw[];
  __shared__ int64_t yrow_s[BM], xrow_s[BM];
  __shared__ __align__(8) uint64_t wbar[SW];
  uint8_t* const xsm = smem_raw + ((1024 - (smem_u32(smem_raw) & 1023)) & 1023);
  uint8_t* const wsm = xsm + SX * kStage;

  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, t = lane & 3;
  const int64_t item = blockIdx.y;
  if (item >= item_count(p.rs)) return;
  const ItemHead h = item_head(p.rs, item);
  stage_item_rows<BM>(p.rs, h, tid, yrow_s, xrow_s);
  if (tid == 0)
    for (int s = 0; s < SW; ++s) mbar_init(&wbar[s]);
  __syncthreads();

  const int64_t c_begin = int64_t(blockIdx.z) * p.split_chunks;
  const int64_t c_end = c_begin + p.split_chunks < p.chunks ? c_begin + p.split_chunks : p.chunks;
  const int chunks = int(c_end - c_begin), steps = 2 * chunks;  // steps of 128 values of K
  const int64_t kp = p.chunks * 256;
  const int64_t tile0 = int64_t(blockIdx.x) * 8;
  const int my_tiles = int(p.tiles - tile0 < 8 ? p.tiles - tile0 : 8);  // tiles past the last: zero weights
  const bool has_tile = warp < my_tiles;
  const uint8_t* rec0 = p.w + h.expert * p.expert_bytes + (tile0 * p.chunks + c_begin) * R;

  // The records of chunk c (of this split) of the CTA's tiles into stage c % SW (thread 0).
  auto load_w = [&](int c, int stage) {
    uint8_t* st = wsm + stage * (8 * R);
    mbar_expect_tx(&wbar[stage], uint32_t(my_tiles * R));
    for (int w = 0; w < my_tiles; ++w) bulk_load(st + w * R, rec0 + (int64_t(w) * p.chunks + c) * R, R, &wbar[stage]);
  };
  // x stage of step i: rows of 2 atoms x 128 bytes, 16-byte chunk c of row r at c ^ (r % 8).
  // This thread copies chunk tid % 16 of rows tid / 16 + 16j: sources and the (swizzled) target
  // are fixed but for the step's K offset and the stage.
  const int xc = tid & 15, xrow0 = tid >> 4;
  const uint32_t xdst = smem_u32(xsm) + (xc >> 3) * kAtom + xrow0 * 128 + (((xc & 7) ^ (xrow0 & 7)) << 4);
  const __nv_bfloat16* xsrc[XJ];
  int xbytes[XJ];
#pragma unroll
  for (int j = 0; j < XJ; ++j) {
    const int64_t xr = xrow_s[xrow0 + 16 * j];
    xsrc[j] = p.xp + (xr < 0 ? 0 : xr * kp + c_begin * 256 + xc * 8);
    xbytes[j] = xr < 0 ? 0 : 16;
  }
  auto load_x = [&](int i, int stage) {
#pragma unroll
    for (int j = 0; j < XJ; ++j)
      cp_async16_u32(xdst + stage * kStage + j * 16 * 128, xsrc[j] + i * 128, xbytes[j]);
  };

  if (tid == 0)
    for (int c = 0; c < SW && c < chunks; ++c) load_w(c, c);
  // x is written by permute_x, the kernel before this one (programmatic dependence): the weight
  // stages above are already in flight while it finishes.
  asm volatile("griddepcontrol.wait;" ::: "memory");
#pragma unroll
  for (int i = 0; i < SX - 2; ++i) {
    if (i < steps) load_x(i, i);
    cp_async_commit();
  }
  // Ring positions: x stage of step i (use) and of step i + SX - 2 (load); record stage and
  // mbarrier phase of chunk c (use) and of chunk c + SW (load).
  int x_use = 0, x_load = SX - 2, w_use = 0, w_phase = 0;
  const uint64_t desc0 = wgmma_desc_sw128(xsm);

  float acc[BM / 2];
#pragma unroll
  for (int i = 0; i < BM / 2; ++i) acc[i] = 0.0f;
  wgmma_fence_operands(acc);
  uint32_t a[2][4][2][4] = {};  // [step parity][sub-block of the step][half][fragment register]

  for (int c = 0; c < chunks; ++c) {
    // This warp's record of chunk c: lane words of rows g and g + 8, header words.
    uint32_t L0[Chunk::LW], L1[Chunk::LW], H[2 * Chunk::HW];
    if (has_tile) {
      mbar_wait(&wbar[w_use], uint32_t(w_phase));
      const uint8_t* rec = wsm + w_use * (8 * R) + warp * R;
#pragma unroll
      for (int i = 0; i < Chunk::LW / 2; ++i) {
        const uint4 v = *reinterpret_cast<const uint4*>(rec + (i * 32 + lane) * 16);
        L0[2 * i] = v.x, L1[2 * i] = v.y, L0[2 * i + 1] = v.z, L1[2 * i + 1] = v.w;
      }
      const uint32_t* hw = reinterpret_cast<const uint32_t*>(rec + 256 * Chunk::LW + (lane >> 2) * 8 * Chunk::HW);
#pragma unroll
      for (int i = 0; i < 2 * Chunk::HW; ++i) H[i] = hw[i];
    }
#pragma unroll
    for (int half = 0; half < 2; ++half) {
      const int i = 2 * c + half;
      // A fragments of sub-blocks 4·half .. 4·half + 3 (registers last read by step i - 2).
      if (has_tile) {
#pragma unroll
        for (int q = 0; q < 4; ++q) {
          const int s = 4 * half + q;
          Dec8 d0, d1;
          F::codes8(F::packed(L0, H, s, t), s, d0);
          F::codes8(F::packed(L1, H + Chunk::HW, s, t), s, d1);
          qmmp_frags<F>(d0, d1, a[half][q][0], a[half][q][1]);
        }
      }
      // x stage i has landed (all threads); every warp is past step i - 2's wgmma and, after
      // a second half, done reading chunk c's record.
      cp_async_wait<SX - 3>();
      fence_proxy_async();
      __syncthreads();
      if (i + SX - 2 < steps) load_x(i + SX - 2, x_load);
      cp_async_commit();
      x_load = x_load + 1 == SX ? 0 : x_load + 1;
      if (half == 1) {
        if (tid == 0 && c + SW < chunks) load_w(c + SW, w_use);
        if (++w_use == SW) w_use = 0, w_phase ^= 1;
      }
      const uint64_t desc = desc0 + uint64_t((x_use * kStage) >> 4);
      x_use = x_use + 1 == SX ? 0 : x_use + 1;
      wgmma_fence_operands(acc);
      wgmma_fence();
#pragma unroll
      for (int j = 0; j < 8; ++j)  // k16 step j: sub-block j / 2, half j % 2
        wgmma_rs<BM>(acc, a[half][j >> 1][j & 1], desc + uint64_t(((j >> 2) * kAtom + (j & 3) * 32) >> 4));
      wgmma_commit();
      wgmma_fence_operands(acc);
      wgmma_wait<1>();
    }
  }
  wgmma_wait<0>();
  wgmma_fence_operands(acc);
  // The split sum (if any) may launch; it waits for this grid to finish before reading.
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");

  // acc[4j + e]: weight row 16·warp + g + 8(e / 2) of the CTA, activation row 8j + 2t + e % 2.
  const int64_t n_row = int64_t(blockIdx.x) * kQmmpRows + 16 * warp + (lane >> 2);
  float* out = p.splits > 1 ? p.part + int64_t(blockIdx.z) * p.y_rows * p.n : p.y;
#pragma unroll
  for (int j = 0; j < BM / 8; ++j)
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      const int64_t yr = yrow_s[8 * j + 2 * t + (e & 1)], n = n_row + 8 * (e >> 1);
      if (yr >= 0 && n < p.n) out[yr * p.n + n] = acc[4 * j + e];
    }
}

// x[rows][k] (f32) -> bf16 [rows][kp] in qmmp_phys order within every 16 values, zeros past k.
// Pairs stay adjacent (qmmp_phys(2i + 1) = qmmp_phys(2i) + 1): one bf16x2 store per pair.
template <int = 0>
__global__ void __launch_bounds__(256) qmmp_permute_x_kernel(const float* x, int64_t rows, int64_t k, int64_t kp,
                                                             __nv_bfloat16* out) {
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");  // qmmp may start its weight loads
  const int64_t pairs = rows * (kp / 2), stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < pairs; i += stride) {
    const int64_t row = i / (kp / 2), j = 2 * (i % (kp / 2));
    const int64_t col = (j & ~int64_t(15)) + qmmp_phys(int(j & 15));
    const float lo = col < k ? x[row * k + col] : 0.0f, hi = col + 1 < k ? x[row * k + col + 1] : 0.0f;
    reinterpret_cast<__nv_bfloat162*>(out)[i] = __floats2bfloat162_rn(lo, hi);
  }
}

template <class F, int BM>
void launch_qmmp_bm(const QmmpParams& p, cudaStream_t stream) {
  auto kernel = qmmp_kernel<F, BM>;
  static const bool attr = [&] {
    LMK_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, qmmp_smem_bytes<BM>(F::kType)));
    return true;
  }();
  (void)attr;
  const dim3 grid(unsigned((p.tiles + 7) / 8), unsigned(p.rs.n_items), unsigned(p.splits));
  launch_pdl(kernel, grid, kQmmpThreads, qmmp_smem_bytes<BM>(F::kType), stream, p);
  if (p.splits > 1) launch_sum_slices(p.part, p.splits, p.y_rows * p.n, p.y, stream);
}

// bm: activation rows per item (32, 64 or 128).
template <class F>
void launch_qmmp(const QmmpParams& p, int bm, cudaStream_t stream) {
  if (p.rs.n_items <= 0) return;
  if (p.rs.n_items > 65535 || p.splits > 65535 || (p.tiles + 7) / 8 > int64_t(INT32_MAX))
    LMK_THROW(Unsupported, "quantized mat-mat: ", p.rs.n_items, " items x ", p.splits, " K-splits exceed the grid");
  if (bm <= 32) launch_qmmp_bm<F, 32>(p, stream);
  else if (bm <= 64) launch_qmmp_bm<F, 64>(p, stream);
  else launch_qmmp_bm<F, 128>(p, stream);
}

// The two mat-mat entry points of launch.h; qmm_legacy.cu / qmm_kquant.cu instantiate them per
// format with LMK_QMM_INSTANTIATE.
template <class F>
void run_qmm(const QmmParams& p, int bm, cudaStream_t stream) {
  launch_qmm<F>(p, bm, stream);
}
template <class F>
void run_qmmp(const QmmpParams& p, int bm, cudaStream_t stream) {
  launch_qmmp<F>(p, bm, stream);
}
#define LMK_QMM_INSTANTIATE(F)                                        \
  template void run_qmm<F>(const QmmParams&, int, cudaStream_t);     \
  template void run_qmmp<F>(const QmmpParams&, int, cudaStream_t);

}  // namespace lmk::cuda::mm
