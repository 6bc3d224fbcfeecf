// Quantized mat-vec on int8 tensor cores at f32 accuracy (spec §3.1 M <= 8, §3.3 routed rows):
// y[m, n] = Σ_k x[m, k]·W[n, k] for up to 8 activation rows per work item (weights decoded once
// per item).
//
// Why: at 4 bits a weight is half a byte, so streaming W at full bandwidth leaves ~4 thread
// instructions per weight on an H200; converting every code to f32 and multiplying costs more
// than that. Here the codes stay integers and go straight into mma.m16n8k32 (u8/s8 x s8 -> s32).
//
// Exactness (spec tolerance 1e-5, activations kept in f32): each 32-value sub-block of x is
// scaled by a power of two s (|x/s| < 64, exact) and split into four int8 pieces,
//   x = s·(p0 + p1·2^-7 + p2·2^-14 + p3·2^-21) + r,   |r| <= 2^-22·s,
// i.e. 27 significant bits relative to the sub-block's largest value, more than an f32 carries.
// The mma sums code·piece exactly in int32 (|Σ| < 2^20); per sub-block the four piece sums are
// combined (two per lane, exactly in int32), converted once and scaled in f32 by the weight
// scale and s; the format's offset (min term, or the code bias of Q4_0/Q5_0/Q6_K) is added as
// off·Σx in f32 (the factored form of spec §0). The pieces are the B columns: columns 4m..4m+3
// hold the pieces of activation row m, so one mma serves two activation rows.
//
// Loads: GGUF blocks are 18/34/210-byte records, so reading them in place means 2- and 4-byte
// loads. Each warp instead streams its part of the weights into shared memory with 16-byte
// cp.async copies (several stages in flight without holding registers) and decodes from there
// with the format decoders of formats.cuh (SharedBytes, codes8). A stage is 8 consecutive
// sub-blocks (one K-quant super-block, or 8 small blocks) of each of the CTA's 16 weight rows,
// plus the matching x records; the copy covers the 16-byte granules around the weight bytes, so
// any row stride works (granules sticking out of the weight tensor are filled by plain loads).
// (Bulk TMA copies, one per row and stage, measured slower: the copy instruction takes uniform
// operands, so 17 per-lane copies serialise.)
//
// Layout: a CTA owns one mma tile of 16 weight rows of one work item; its warps take the row's
// stages round-robin; lane (g, t) decodes rows g and g+8 (elements 4t..4t+3 and 16+4t..16+4t+3
// of each sub-block: exactly the m16n8k32 A fragment). Partial sums are reduced across the
// lane pair holding an activation row's pieces, then across warps in shared memory. The grid
// strides over (item, row tile) pairs, items fastest, so items that read the same weight rows
// run together and share them through L2.
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
  int64_t nsb = 0;                 // 32-element sub-blocks per row (k / 32)
  const uint8_t* w_end = nullptr;  // end of the whole weight tensor (every expert)
  RowSource rs;
  // int8 mat-vec only: x split into pieces (split_x_kernel, cuda.cu), in scratch: per x row and
  // sub-block a 144-byte record, [4 pieces][4 lanes t][8 bytes] then float4 {s, Σx of elements
  // 0..15, Σx of 16..31, 0}.
  int64_t x_rows = 0;
  uint8_t* xq = nullptr;
  // split_x also zeroes these outputs (the packed mat-vec's warp walk adds partial sums into them).
  float* zero = nullptr;
  int64_t zero_count = 0;
  bool programmatic = false;  // split_x: launched with programmatic dependence (routed packed rows)
  bool early = false;         // split_x: release the mat-vec behind it before its own work (split_x)
  bool perm4 = false;         // split_x: element 2(i % 16) + i / 16 at position i (raw 4-bit affine rows)
};

constexpr int kQmvXRecord = 144;  // bytes of one sub-block's x pieces + scale record
constexpr int kQmvStages = 3;     // stage slots per warp (2 stages in flight while one is decoded)
constexpr int kQmvCtaSmem = 110 * 1024;  // stage bytes per CTA: two CTAs per SM

// Scratch bytes for the x pieces of `x_rows` rows.
inline int64_t qmv_scratch_bytes(int64_t x_rows, int64_t nsb) { return x_rows * nsb * kQmvXRecord + 256; }

// Splits one 32-value sub-block of x (lane = element, v = its value) into the 144-byte record
// at rec (any memory space): [4 pieces][4 lanes t][8 bytes] then float4 {s, Σx of elements 0..15,
// Σx of 16..31, 0}. A sub-block with a non-finite value gets s = NaN (every output it touches
// becomes NaN, as with f32 arithmetic on inf/NaN).
__device__ __forceinline__ void split_x_sub_block(float v, int lane, uint8_t* rec) {
  float mx = fabsf(v);
#pragma unroll
  for (int o = 16; o >= 1; o >>= 1) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, o));
  float half = v;  // Σ of lanes 0..15 and of 16..31
#pragma unroll
  for (int o = 8; o >= 1; o >>= 1) half += __shfl_xor_sync(0xffffffffu, half, o);
  const float other = __shfl_xor_sync(0xffffffffu, half, 16);
  const bool finite = isfinite(mx);  // false also when mx is NaN
  int e = 0;  // s = 2^e with |x| / s < 64: mx = f·2^e1 (f < 1), e = e1 - 6
  if (finite && mx > 0.0f) {
    frexpf(mx, &e);
    e -= 6;
  }
  uint32_t packed = 0;  // the four pieces of this element, bytes 0..3
  if (finite) {
    float r = ldexpf(v, -e);  // exact, |r| < 64
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const float pj = rintf(r);
      packed |= (uint32_t(int(pj)) & 0xFFu) << (8 * j);
      r = (r - pj) * 128.0f;  // exact: |r - pj| <= 1/2
    }
  }
  uint8_t* dst = rec + ((lane & 15) >> 2) * 8 + ((lane >> 4) << 2) + (lane & 3);
#pragma unroll
  for (int j = 0; j < 4; ++j) dst[32 * j] = uint8_t(packed >> (8 * j));
  if (lane == 0)
    *reinterpret_cast<float4*>(rec + 128) =
        make_float4(finite ? ldexpf(1.0f, e) : __int_as_float(0x7fc00000), half, other, 0.0f);
}

// ---- int8 mma ----------------------------------------------------------------------------------------
template <bool Signed>
__device__ __forceinline__ void mma_k32(int (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  if constexpr (Signed)
    asm("mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
                 "{%10,%10,%10,%10};\n"
                 : "=r"(d[0]), "=r"(d[1]), "=r"(d[2]), "=r"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1), "r"(0));
  else
    asm("mma.sync.aligned.m16n8k32.row.col.s32.u8.s8.s32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
                 "{%10,%10,%10,%10};\n"
                 : "=r"(d[0]), "=r"(d[1]), "=r"(d[2]), "=r"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1), "r"(0));
}
template <bool Signed>
__device__ __forceinline__ void mma_k16(int (&d)[4], uint32_t a0, uint32_t a1, uint32_t b0) {
  if constexpr (Signed)
    asm("mma.sync.aligned.m16n8k16.row.col.s32.s8.s8.s32 {%0,%1,%2,%3}, {%4,%5}, {%6}, {%7,%7,%7,%7};\n"
                 : "=r"(d[0]), "=r"(d[1]), "=r"(d[2]), "=r"(d[3])
                 : "r"(a0), "r"(a1), "r"(b0), "r"(0));
  else
    asm("mma.sync.aligned.m16n8k16.row.col.s32.u8.s8.s32 {%0,%1,%2,%3}, {%4,%5}, {%6}, {%7,%7,%7,%7};\n"
                 : "=r"(d[0]), "=r"(d[1]), "=r"(d[2]), "=r"(d[3])
                 : "r"(a0), "r"(a1), "r"(b0), "r"(0));
}

// One sub-block of 16 weight rows (d0: row g, d1: row g + 8 of lane (g, t)) against activation
// rows 2nb, 2nb + 1 for each nb: b[nb] is this lane's B fragment (column g = piece g % 4 of
// activation row 2nb + g / 4), xs[nb] the {s, Σx of elements 0..15, of 16..31, 0} record of
// activation row 2nb + t / 2. Per row and sub-block:
//   acc += sc·(fx·(128·c[2t] + c[2t+1]) + kBias·Σx) + off·Σx
// (Σx only on the lane holding pieces 0 and 1, so each row adds it once). Lanes whose activation
// row is absent accumulate values that are never stored.
// AllGroups: every group is accumulated, present or not (the single plain item, whose absent rows
// are at most the last few of its last group: computing them costs less than testing).
template <class F, int NB, bool AllGroups = false>
__device__ __forceinline__ void qmv_accumulate(float (&acc)[NB][2], const Dec8& d0, const Dec8& d1, const uint2 (&b)[NB],
                                               const float4 (&xs)[NB], int t, int count) {
  const float piece_w = (t & 1) ? 0x1p-21f : 0x1p-7f;  // weight of (128·c[2t] + c[2t+1])
  const bool sum_lane = (t & 1) == 0;                  // the lane that adds the Σx terms
  // fx·c + kBias·Σx (no multiply by a zero bias: that is an instruction per sub-block).
  auto term = [](float fx, int c, float sx) {
    if constexpr (F::kBias != 0) return fmaf(fx, float(c), float(F::kBias) * sx);
    else return fx * float(c);
  };
#pragma unroll
  for (int nb = 0; nb < NB; ++nb) {
    // Uniform: groups past the item's rows are skipped. One group always has a row (count >= 1),
    // and no branch there lets the lane constants above stay out of the sub-block loops.
    if (AllGroups || NB == 1 || 2 * nb < count) {
      const float fx = xs[nb].x * piece_w;
      const float sx_lo = sum_lane ? xs[nb].y : 0.0f, sx_hi = sum_lane ? xs[nb].z : 0.0f;
      float* ac = acc[nb];
      if constexpr (F::kHalfScales) {
        int c0[4], c1[4];
        mma_k16<F::kSigned>(c0, d0.lo, d1.lo, b[nb].x);
        mma_k16<F::kSigned>(c1, d0.hi, d1.hi, b[nb].y);
        ac[0] = fmaf(d0.sc0, term(fx, c0[0] * 128 + c0[1], sx_lo), ac[0]);
        ac[0] = fmaf(d0.sc1, term(fx, c1[0] * 128 + c1[1], sx_hi), ac[0]);
        ac[1] = fmaf(d1.sc0, term(fx, c0[2] * 128 + c0[3], sx_lo), ac[1]);
        ac[1] = fmaf(d1.sc1, term(fx, c1[2] * 128 + c1[3], sx_hi), ac[1]);
        if constexpr (F::kMin) {
          ac[0] = fmaf(d0.off0, sx_lo, fmaf(d0.off1, sx_hi, ac[0]));
          ac[1] = fmaf(d1.off0, sx_lo, fmaf(d1.off1, sx_hi, ac[1]));
        }
      } else {
        int c[4];
        const uint32_t a[4] = {d0.lo, d1.lo, d0.hi, d1.hi};
        mma_k32<F::kSigned>(c, a, b[nb].x, b[nb].y);
        const float sx = sx_lo + sx_hi;
        ac[0] = fmaf(d0.sc0, term(fx, c[0] * 128 + c[1], sx), ac[0]);
        ac[1] = fmaf(d1.sc0, term(fx, c[2] * 128 + c[3], sx), ac[1]);
        if constexpr (F::kMin) {
          ac[0] = fmaf(d0.off0, sx, ac[0]);
          ac[1] = fmaf(d1.off0, sx, ac[1]);
        }
      }
    }
  }
}

// Lanes t and t^1 hold the two piece pairs of activation row 2nb + t/2: add them and store the
// warp's partial sums of rows g, g + 8 (red_w[row][activation row]) for the cross-warp sum.
template <int MT, int NB>
__device__ __forceinline__ void qmv_warp_partials(float (&acc)[NB][2], float (*red_w)[MT], int g, int t) {
#pragma unroll
  for (int nb = 0; nb < NB; ++nb) {
    acc[nb][0] += __shfl_xor_sync(0xffffffffu, acc[nb][0], 1);
    acc[nb][1] += __shfl_xor_sync(0xffffffffu, acc[nb][1], 1);
    const int m = 2 * nb + (t >> 1);
    if ((t & 1) == 0 && m < MT) {
      red_w[g][m] = acc[nb][0];
      red_w[g + 8][m] = acc[nb][1];
    }
  }
}

// After qmv_warp_partials and a barrier: adds the warps' partial sums of a 16-row tile and hands
// each output (row n0 + r < n, item row m < count) to store(y row, column, sum), in a fixed
// order (deterministic). The CTA's threads stride over the 16·MT outputs.
template <int MT, class Store>
__device__ __forceinline__ void qmv_sum_tile(const float (*red)[16][MT], int nwarps, const int64_t (&yrow)[MT],
                                             int count, int64_t n0, int64_t n, Store store) {
  for (int i = int(threadIdx.x); i < 16 * MT; i += int(blockDim.x)) {
    const int r = i / MT, m = i % MT;
    if (m >= count || n0 + r >= n) continue;
    float sum = 0.0f;
    for (int w = 0; w < nwarps; ++w) sum += red[w][r][m];
    int64_t yr = yrow[0];
#pragma unroll
    for (int mm = 1; mm < MT; ++mm)
      if (mm == m) yr = yrow[mm];
    store(yr, n0 + r, sum);
  }
}

// Shared-memory stage of format F for MT activation rows: 8 sub-blocks of each of 16 weight rows,
// then the x records (MT x 8 x 144 bytes) of those sub-blocks.
template <class F, int MT>
struct QmvStage {
  static constexpr int kRowBytes = F::kBytes * 8 / F::kSubBlocks;  // bytes of 8 sub-blocks
  static constexpr int kGranules = (kRowBytes + 30) / 16;          // 16-byte copies at any offset
  static constexpr int kAlignedGranules = (kRowBytes + 15) / 16;   // rows 16-byte aligned
  static constexpr int kSlot = kGranules * 16 + 16;                // + room for SharedBytes::u32
  static constexpr int kX = 16 * kSlot;                            // offset of the x records
  static constexpr int kBytes = kX + MT * 8 * kQmvXRecord;         // one stage of one warp
};

template <class F, int MT>
constexpr int qmv_smem_bytes(int warps) {
  return warps * kQmvStages * QmvStage<F, MT>::kBytes;
}

// Align (checked by the launcher) — 16: the weight rows start 16-byte aligned and a stage is
// whole granules; 4: the rows start 4-byte aligned. In both every field's alignment in a stage
// is a compile-time constant (for 4, one of two by the stage's parity), so a word is one load.
// 2: any 2-byte aligned rows, alignment handled at run time.
template <class F, int MT, int Align>
__global__ void __launch_bounds__(256, 2) qmv_kernel(const QmvParams p) {
  static_assert(MT == 1 || MT % 2 == 0, "one mma holds the pieces of two activation rows");
  constexpr int NB = (MT + 1) / 2;  // mmas per sub-block: activation rows 2nb, 2nb + 1
  using S = QmvStage<F, MT>;
  constexpr int P = kQmvStages;
  extern __shared__ __align__(16) uint8_t qmv_smem[];
  __shared__ float red[8][16][MT];
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, nwarps = int(blockDim.x >> 5);
  const int g = lane >> 2, t = lane & 3;
  uint8_t* ring = qmv_smem + warp * (P * S::kBytes);
  const int64_t nst = (p.nsb + 7) / 8;  // stages per row
  const int64_t my_stages = nst > warp ? (nst - warp + nwarps - 1) / nwarps : 0;
  const uintptr_t lo = reinterpret_cast<uintptr_t>(p.w), hi = reinterpret_cast<uintptr_t>(p.w_end);
  // Work units (item, row tile) fit 32 bits (checked on the host): 32-bit divisions below.
  const uint32_t n_rt = uint32_t((p.n + 15) / 16);
  const uint32_t n_items = uint32_t(item_count(p.rs));
  const uint32_t total = n_items * n_rt;
  // This lane's weight granules of a stage: granule i = lane + 32k of the 16 rows x G (row
  // i / G, granule i % G), fixed for the kernel; their row-relative source offsets are set per
  // work unit (rows past N re-read the last row).
  constexpr int G = Align == 16 ? S::kAlignedGranules : S::kGranules;
  constexpr int KW = (16 * G + 31) / 32;
  uint32_t gsrc[KW];  // per unit: row offset within the tile (+ 16·gi when Align == 16)
  int gdst[KW];       // offset in the slot; -1: no granule
  // This lane's activation row (column group) and piece pair: columns 2t, 2t+1 of the mma.
  const int my_m = t >> 1;  // + 2nb: this lane's activation row in mma nb

#pragma unroll
  for (int k = 0; k < KW; ++k) {
    const int i = lane + 32 * k, r = i / G, gi = i - r * G;
    gdst[k] = i < 16 * G ? r * S::kSlot + 16 * gi : -1;
  }
  bool x_ready = false;  // griddepcontrol.wait done (x pieces written by split_x)
  for (uint32_t wi = blockIdx.x; wi < total; wi += gridDim.x) {
    const uint32_t item = wi % n_items;
    const int64_t n0 = int64_t(wi / n_items) * 16;
    const ItemHead h = item_head(p.rs, item);
    if (h.invalid) {  // out-of-range expert id: zero this item's output row slice
      if (tid < 16 && n0 + tid < p.n) p.y[h.start * p.n + n0 + tid] = 0.0f;
      if (tid == 0 && n0 == 0) record_invalid(p.rs, h.start);
      continue;
    }
    const int count = h.count < MT ? h.count : MT;
    const uintptr_t wb = lo + uintptr_t(h.expert * p.expert_stride);
    int64_t yrow[MT], xrow[MT];
#pragma unroll
    for (int m = 0; m < MT; ++m) item_row(p.rs, h, m < count ? m : 0, yrow[m], xrow[m]);
    // Weight row n0 + r starts at tile + roff(r) (rows past N re-read the last row); tile spans
    // < 2^31 bytes (checked on the host).
    const uintptr_t tile = wb + uintptr_t(n0 * p.row_bytes);
    const int last = int(p.n - n0 < 16 ? p.n - n0 : 16) - 1;
    const int rb = int(p.row_bytes);
    auto roff = [&](int r) { return uint32_t((r < last ? r : last) * rb); };
    // Every granule of this tile lies inside the weight tensor: no edge checks.
    // (A stage's copy at address a ends before a + kRowBytes + 30.)
    const bool interior = (tile & ~uintptr_t(15)) >= lo && tile + roff(15) + uintptr_t(nst * S::kRowBytes) + 32 <= hi;
    const uint8_t* xbase[MT];
#pragma unroll
    for (int m = 0; m < MT; ++m) xbase[m] = p.xq + xrow[m] * p.nsb * kQmvXRecord;
#pragma unroll
    for (int k = 0; k < KW; ++k) {
      const int i = lane + 32 * k, r = i / G, gi = i - r * G;
      gsrc[k] = roff(r < 16 ? r : 15) + (Align == 16 ? uint32_t(16 * gi) : 0u);
    }

    // Stage j of this warp (row stage s = warp + j * nwarps) into slot j % P: its weight
    // granules, then the x records of its sub-blocks (contiguous, 9 granules each).
    auto issue_w = [&](int64_t j) {
      if (j >= my_stages) return;
      const int64_t s = warp + j * nwarps;
      uint8_t* slot = ring + (j % P) * S::kBytes;
      const uintptr_t stage = tile + uintptr_t(s * S::kRowBytes);
#pragma unroll
      for (int k = 0; k < KW; ++k) {
        if (gdst[k] < 0) continue;
        const int gi = (lane + 32 * k) % G;
        // Align 16: rows and stages are whole granules; else the granules around the row bytes.
        const uintptr_t src =
            Align == 16 ? stage + gsrc[k] : ((stage + gsrc[k]) & ~uintptr_t(15)) + 16 * uintptr_t(gi);
        uint8_t* dst = slot + gdst[k];
        if (interior || (src >= lo && src + 16 <= hi)) {
          cp_async16(dst, reinterpret_cast<const void*>(src), 16);
        } else {  // tensor edge: only the bytes inside the tensor
#pragma unroll 1
          for (int b = 0; b < 16; ++b)
            dst[b] = src + b >= lo && src + b < hi ? *reinterpret_cast<const uint8_t*>(src + b) : uint8_t(0);
        }
      }
    };
    auto issue_x = [&](int64_t j) {
      if (j >= my_stages) return;
      const int64_t s = warp + j * nwarps;
      uint8_t* slot = ring + (j % P) * S::kBytes;
      const int nv = int(p.nsb - s * 8 < 8 ? p.nsb - s * 8 : 8);
#pragma unroll
      for (int m = 0; m < MT; ++m) {
        if (m < count) {
          const uint8_t* src = xbase[m] + s * 8 * kQmvXRecord;
          for (int i = lane; i < nv * 9; i += 32)
            cp_async16(slot + S::kX + m * 8 * kQmvXRecord + 16 * i, src + 16 * i, 16);
        }
      }
    };

    float acc[NB][2] = {};  // rows g, g + 8 for activation row 2nb + my_m
    // Prologue: the weights of the first stages go out before waiting for split_x (launched
    // just before this kernel with programmatic dependence), so they overlap its tail.
#pragma unroll
    for (int j = 0; j < P - 1; ++j) issue_w(j);
    if (!x_ready) {
      asm volatile("griddepcontrol.wait;" ::: "memory");
      x_ready = true;
    }
#pragma unroll
    for (int j = 0; j < P - 1; ++j) {
      issue_x(j);
      cp_async_commit();
    }
    for (int64_t j = 0; j < my_stages; ++j) {
      issue_w(j + P - 1);
      issue_x(j + P - 1);
      cp_async_commit();
      cp_async_wait<P - 1>();
      __syncwarp();
      const int64_t s = warp + j * nwarps;
      const uint8_t* slot = ring + (j % P) * S::kBytes;
      const uintptr_t stage = tile + uintptr_t(s * S::kRowBytes);
      const int og = Align == 16 ? 0 : int((stage + roff(g)) & 15);
      const int og8 = Align == 16 ? 0 : int((stage + roff(g + 8)) & 15);
      const uint8_t* wg = slot + g * S::kSlot + og;
      const uint8_t* wg8 = slot + (g + 8) * S::kSlot + og8;
      const int nv = int(p.nsb - s * 8 < 8 ? p.nsb - s * 8 : 8);
      // The stage's sub-blocks, with the rows' misalignment (mod 4) as compile-time constants
      // where Align allows (one instantiation per value) or run-time ints.
      auto decode_stage = [&](auto mis0, auto mis1) {
        const SharedBytes m0{wg, int(mis0)}, m1{wg8, int(mis1)};
        // Unrolled (the partial last stage of a K % 256 != 0 row is a uniform guard) so the shared
        // loads and mmas of neighbouring sub-blocks overlap.
#pragma unroll
        for (int sbl = 0; sbl < 8; ++sbl) {
          if (sbl < nv) {
            Dec8 d0, d1;  // rows g and g + 8
            F::codes8(F::load(m0, wg, sbl, t), sbl, d0);
            F::codes8(F::load(m1, wg8, sbl, t), sbl, d1);
            uint2 b[NB];
            float4 xs[NB];
#pragma unroll
            for (int nb = 0; nb < NB; ++nb) {
              if (2 * nb >= count) continue;  // uniform; skipped by qmv_accumulate too
              // B: column g = piece g % 4 of activation row 2nb + g / 4 (zero past the item's rows).
              const int bm = 2 * nb + g / 4, xm = 2 * nb + my_m;
              b[nb] = *reinterpret_cast<const uint2*>(slot + S::kX + ((bm < MT ? bm : 0) * 8 + sbl) * kQmvXRecord +
                                                      (g % 4) * 32 + t * 8);
              if (bm >= count) b[nb] = make_uint2(0u, 0u);
              xs[nb] = *reinterpret_cast<const float4*>(slot + S::kX + ((xm < MT ? xm : 0) * 8 + sbl) * kQmvXRecord + 128);
            }
            qmv_accumulate<F>(acc, d0, d1, b, xs, t, count);
          }
        }
      };
      using C0 = std::integral_constant<int, 0>;
      using C2 = std::integral_constant<int, 2>;
      if constexpr (Align == 16) {
        decode_stage(C0{}, C0{});
      } else if constexpr (Align == 4) {  // fields are 2-byte aligned: the stage start is 0 or 2 mod 4
        if (((s * S::kRowBytes) & 3) == 0)
          decode_stage(C0{}, C0{});
        else
          decode_stage(C2{}, C2{});
      } else {
        decode_stage(og & 3, og8 & 3);
      }
      __syncwarp();  // the slot is refilled by the next issue
    }

    qmv_warp_partials<MT>(acc, red[warp], g, t);
    __syncthreads();
    qmv_sum_tile<MT>(red, nwarps, yrow, count, n0, p.n,
                     [&](int64_t yr, int64_t col, float sum) { p.y[yr * p.n + col] = sum; });
    __syncthreads();
  }
}

template <class F, int MT, int Align>
void launch_qmv_kernel(const QmvParams& p, int warps, int smem, int64_t work, cudaStream_t stream) {
  auto kernel = qmv_kernel<F, MT, Align>;
  // Launches stay within kQmvCtaSmem (launch_qmv_mt) or one warp's stages (under 48 KiB).
  static const bool attr = [&] {
    LMK_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                        std::min(qmv_smem_bytes<F, MT>(8), kQmvCtaSmem)));
    return true;
  }();
  (void)attr;
  const int64_t cap = int64_t(max_active_blocks(reinterpret_cast<const void*>(kernel), 32 * warps, smem)) * sm_count();
  // Programmatic dependent launch: the kernel may start while split_x finishes; it waits
  // (griddepcontrol.wait) before reading the x pieces.
  launch_pdl(kernel, dim3(unsigned(work < cap ? work : cap)), 32 * warps, smem, stream, p);
}

template <class F, int MT>
void launch_qmv_mt(const QmvParams& p, cudaStream_t stream) {
  const int64_t work = p.rs.n_items * ((p.n + 15) / 16);
  if (work <= 0) return;
  if (work > int64_t(INT32_MAX))
    LMK_THROW(Unsupported, "quantized mat-vec: ", work, " (item, row tile) pairs exceed the supported 2^31");
  const int64_t nst = (p.nsb + 7) / 8;
  const int by_smem = kQmvCtaSmem / (kQmvStages * QmvStage<F, MT>::kBytes);
  // Warps split a row's stages: enough for ~16 warps per SM when there are few work units,
  // else ~4 stages per warp (the per-unit setup is paid per warp); at most 8 and one per stage.
  const int64_t want = std::max<int64_t>((nst + 3) / 4, (16 * int64_t(sm_count()) + work - 1) / work);
  const int warps = int(std::max<int64_t>(1, std::min<int64_t>({want, nst, 8, by_smem})));
  const int smem = qmv_smem_bytes<F, MT>(warps);
  auto rows_aligned = [&](int64_t a) {
    return reinterpret_cast<uintptr_t>(p.w) % a == 0 && p.row_bytes % a == 0 && p.expert_stride % a == 0;
  };
  if constexpr (QmvStage<F, MT>::kRowBytes % 16 == 0) {
    if (rows_aligned(16)) return launch_qmv_kernel<F, MT, 16>(p, warps, smem, work, stream);
  }
  if (rows_aligned(4)) return launch_qmv_kernel<F, MT, 4>(p, warps, smem, work, stream);
  launch_qmv_kernel<F, MT, 2>(p, warps, smem, work, stream);
}

// Items of one activation row (M = 1 decode, single routed rows) or of up to 8 (p.rs.per_item:
// small batches, grouped routed rows; the weights are decoded once per item). p.xq must hold
// the pieces of x (split_x in cuda.cu, run before). Warps per CTA: see launch_qmv_mt.
template <class F>
void launch_qmv(const QmvParams& p, cudaStream_t stream) {
  if (16 * p.row_bytes >= (int64_t(1) << 31))
    LMK_THROW(Unsupported, "quantized mat-vec: rows of ", p.row_bytes, " bytes exceed the supported 2^27");
  // Items smaller than 8 rows (M = 2..4 plain batches) take a narrower stage: less shared
  // memory per warp, more warps per SM.
  const int64_t rows = p.rs.mode == ItemMode::plain ? std::min<int64_t>(p.rs.m_rows, p.rs.per_item) : p.rs.per_item;
  if (rows <= 1)
    launch_qmv_mt<F, 1>(p, stream);
  else if (rows <= 2)
    launch_qmv_mt<F, 2>(p, stream);
  else if (rows <= 4)
    launch_qmv_mt<F, 4>(p, stream);
  else
    launch_qmv_mt<F, 8>(p, stream);
}

}  // namespace lmk::cuda::mm
