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
// CTA (one per SM, persistent): consumer warps, one 16-row weight tile each (two warpgroups, or
// three for 32-row items), and a producer warpgroup; setmaxnreg moves registers from the producer
// (40) to the consumers. The CTA walks work units: its tiles x BM activation rows (an item of the
// RowSource: plain row tiles or per-expert row lists; routed x is permuted in row-list order so
// an item's rows are contiguous) x all of K or one K-split. One producer lane fills two rings,
// each stage with a full mbarrier (bytes) and an empty one (one arrival per consumer thread): the
// tiles' records of a chunk by bulk copy, and x by TMA in stages of 128 values of K (two boxes of
// 64 x BM, 128-byte swizzle: the wgmma B layout). The rings run on across units, so the next
// unit's loads overlap this one's last steps and stores. Consumers never meet at a CTA barrier:
// a warp copies its record to registers and releases the stage, decodes step i's A fragments
// while step i - 1's wgmma group runs, waits for x stage i, issues 8 wgmma k16 steps, and
// releases stage i - 1 once that group is done. K-splits (small grids) store partial sums that
// launch_sum_slices adds in order. The kernel is launched with programmatic dependence: its
// record stages load while permute_x runs.
#pragma once
#include <cuda.h>

#include "cuda/wgmma.cuh"
#include "ops/matmul/qmm.cuh"
#include "ops/matmul/qmv_packed.cuh"

namespace lmk::cuda::mm {

struct QmmpParams {
  CUtensorMap xmap;  // TMA map of the permuted bf16 x, [rows][chunks · 256] (plain rows, or the routed
                     // rows in row-list order: an item's rows contiguous), boxes of 64 x BM, 128-byte swizzle
  const uint8_t* w = nullptr;  // packed weights, expert e at e · expert_bytes
  int64_t expert_bytes = 0;
  int64_t n = 0, tiles = 0, chunks = 0;
  RowSource rs;
  float* y = nullptr;  // [y_rows][n]
  int64_t y_rows = 0;
  float* part = nullptr;  // splits > 1: [split][y_rows][n]
  int splits = 1;
  int64_t split_chunks = 0;  // chunks per K-split
  bool weights_evict_first = false;  // weight records' L2 policy (stream_policy; cuda.cu read_once)
};

// Consumer warps (one 16-row weight tile each): three warpgroups for 32-row items, whose short
// wgmma leaves the decode latency-bound (more warps hide it; four would leave too few registers),
// else two. Plus a producer warpgroup, of which one lane works.
constexpr int qmmp_warps(int bm) { return bm <= 32 ? 12 : 8; }
constexpr int qmmp_threads(int bm) { return 32 * qmmp_warps(bm) + 128; }
// Per-thread registers after setmaxnreg: the producer warpgroup gives registers up, the consumer
// warps take them. setmaxnreg.inc waits until the CTA's pool (threads x the compiled count, fixed
// at launch) holds the request, so a split that does not fit it hangs; launch_qmmp_bm checks.
constexpr int kQmmpProducerRegs = 40;
constexpr int qmmp_consumer_regs(int bm) { return bm <= 32 ? 152 : 232; }
constexpr int qmmp_register_split(int bm) { return 128 * kQmmpProducerRegs + 32 * qmmp_warps(bm) * qmmp_consumer_regs(bm); }
static_assert(qmmp_register_split(32) <= 65536 && qmmp_register_split(128) <= 65536);
// Dynamic shared memory of the one CTA per SM.
constexpr int kQmmpSmemBudget = 220 * 1024;
// x stages (BM rows x 256 bytes) and weight record stages (a record per consumer warp) of the rings.
template <int BM>
constexpr int qmmp_x_stages() {
  return BM == 128 ? 4 : BM == 64 ? 5 : 6;
}
template <int BM>
constexpr int qmmp_w_stages(int64_t record_bytes) {
  const int64_t left = kQmmpSmemBudget - 1024 - int64_t(qmmp_x_stages<BM>()) * BM * 256;
  const int64_t fit = left / (qmmp_warps(BM) * record_bytes);
  return int(fit < 2 ? 2 : fit > 6 ? 6 : fit);
}
template <int BM>
constexpr int qmmp_smem_bytes(int64_t record_bytes) {  // + 1024: alignment slack for the 1024-byte atoms
  return qmmp_x_stages<BM>() * BM * 256 + qmmp_w_stages<BM>(record_bytes) * qmmp_warps(BM) * int(record_bytes) + 1024;
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
//   Signed 8-bit codes and 8-bit affine codes (no exact bf16 magic): exact f32 dequant (plus the
//   min term), one rounding to bf16.
__device__ __forceinline__ uint32_t bf16x2_bits(__nv_bfloat162 v) { return *reinterpret_cast<uint32_t*>(&v); }

template <class F>
__device__ __forceinline__ void qmmp_frags(const Dec8& d0, const Dec8& d1, uint32_t (&lo)[4], uint32_t (&hi)[4]) {
  if constexpr (!F::kSigned && !wide_codes<F>()) {
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
    // Signed bytes are shifted to unsigned (+128) first; codes4<B> subtracts B exactly.
    constexpr int kB = (F::kSigned ? 128 : 0) - F::kBias;
    constexpr uint32_t flip = F::kSigned ? 0x80808080u : 0u;
    float v0[8], v1[8];
    codes4<kB>(d0.lo ^ flip, v0);
    codes4<kB>(d0.hi ^ flip, v0 + 4);
    codes4<kB>(d1.lo ^ flip, v1);
    codes4<kB>(d1.hi ^ flip, v1 + 4);
#pragma unroll
    for (int i = 0; i < 8; ++i) {
      if constexpr (F::kMin) {
        v0[i] = fmaf(v0[i], i < 4 ? d0.sc0 : d0.sc1, i < 4 ? d0.off0 : d0.off1);
        v1[i] = fmaf(v1[i], i < 4 ? d1.sc0 : d1.sc1, i < 4 ? d1.off0 : d1.off1);
      } else {
        v0[i] *= i < 4 ? d0.sc0 : d0.sc1;
        v1[i] *= i < 4 ? d1.sc0 : d1.sc1;
      }
    }
    lo[0] = pack_bf16(v0[0], v0[1]), lo[1] = pack_bf16(v1[0], v1[1]);
    lo[2] = pack_bf16(v0[2], v0[3]), lo[3] = pack_bf16(v1[2], v1[3]);
    hi[0] = pack_bf16(v0[4], v0[5]), hi[1] = pack_bf16(v1[4], v1[5]);
    hi[2] = pack_bf16(v0[6], v0[7]), hi[3] = pack_bf16(v1[6], v1[7]);
  }
}

template <class F, int BM>
__global__ void __launch_bounds__(qmmp_threads(BM), 1) qmmp_kernel(const __grid_constant__ QmmpParams p) {
  static_assert(BM == 32 || BM == 64 || BM == 128, "wgmma N");
  constexpr int SX = qmmp_x_stages<BM>(), SW = qmmp_w_stages<BM>(PackedShape<F>::R);
  constexpr int kStage = BM * 256, kAtom = BM * 128, kConsumers = qmmp_warps(BM);
  constexpr int R = int(PackedShape<F>::R);
  static_assert(kStage * SX + kConsumers * R * SW + 1024 <= kQmmpSmemBudget + 1024, "shared memory");
  using Chunk = QmvpChunk<F>;
  extern __shared__ uint8_t smem_raw[];
  // full: the producer's arrival + the bytes of the stage; empty: one arrival per consumer thread.
  __shared__ __align__(8) uint64_t x_full[SX], x_empty[SX], w_full[SW], w_empty[SW];
  uint8_t* const xsm = smem_raw + ((1024 - (smem_u32(smem_raw) & 1023)) & 1023);
  uint8_t* const wsm = xsm + SX * kStage;

  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, t = lane & 3;
  if (tid == 0) {
    // Empty barriers take one arrival per consumer thread: an arrival releases only its own
    // thread's reads of the stage (a single lane after __syncwarp is not enough for racecheck).
    for (int s = 0; s < SX; ++s) mbar_init(&x_full[s]), mbar_init(&x_empty[s], 32 * kConsumers);
    for (int s = 0; s < SW; ++s) mbar_init(&w_full[s]), mbar_init(&w_empty[s], 32 * kConsumers);
  }
  __syncthreads();

  // Work units (block of kConsumers tiles, item, K-split), tile blocks fastest (neighbours share
  // x); CTA b takes units b, b + grid, ...; items past the routing pre-pass's count are skipped.
  const int64_t blocks = (p.tiles + kConsumers - 1) / kConsumers, units = blocks * p.rs.n_items * p.splits, n_items = item_count(p.rs);
  struct Unit {
    int64_t tile0, item, split, c_begin;
    int chunks, my_tiles;
  };
  auto unit = [&](int64_t u) {
    Unit w;
    w.tile0 = (u % blocks) * kConsumers;
    w.item = (u / blocks) % p.rs.n_items;
    w.split = u / blocks / p.rs.n_items;
    w.c_begin = w.split * p.split_chunks;
    const int64_t c_end = w.c_begin + p.split_chunks < p.chunks ? w.c_begin + p.split_chunks : p.chunks;
    w.chunks = int(c_end - w.c_begin);  // >= 1 (qmmp_splits)
    w.my_tiles = int(p.tiles - w.tile0 < kConsumers ? p.tiles - w.tile0 : kConsumers);  // tiles past the last: zero weights
    return w;
  };

  if (warp >= kConsumers) {
    // Producer warpgroup: gives its registers to the consumers; one lane walks every unit's
    // steps, refilling each ring stage once its consumers release it (parity of the previous
    // phase). Ring positions run on across units.
    asm volatile("setmaxnreg.dec.sync.aligned.u32 %0;\n" ::"n"(kQmmpProducerRegs) : "memory");
    if (warp == kConsumers && lane == 0) {
      int64_t xi = 0, wc = 0;  // x stages and record stages filled so far
      const uint64_t wpol = stream_policy(p.weights_evict_first);
      for (int64_t u = blockIdx.x; u < units; u += gridDim.x) {
        const Unit w = unit(u);
        if (w.item >= n_items) continue;
        const ItemHead h = item_head(p.rs, w.item);
        const uint8_t* rec0 = p.w + h.expert * p.expert_bytes + (w.tile0 * p.chunks + w.c_begin) * R;
        // x rows of the item: its first row (plain) or its first row-list slot (routed).
        const int row0 = int(h.start), k0 = int(w.c_begin * 256);
        for (int i = 0; i < 2 * w.chunks; ++i) {
          if ((i & 1) == 0) {
            const int s = int(wc % SW);
            if (wc >= SW) mbar_wait(&w_empty[s], uint32_t(wc / SW - 1) & 1u);
            uint8_t* st = wsm + s * (kConsumers * R);
            mbar_expect_tx(&w_full[s], uint32_t(w.my_tiles * R));
            for (int j = 0; j < w.my_tiles; ++j)
              bulk_load(st + j * R, rec0 + (int64_t(j) * p.chunks + i / 2) * R, R, &w_full[s], wpol);
            // x is written by permute_x, the kernel before this one (programmatic dependence):
            // the first record stage is in flight before the wait.
            if (wc++ == 0) asm volatile("griddepcontrol.wait;" ::: "memory");
          }
          const int s = int(xi % SX);
          if (xi >= SX) mbar_wait(&x_empty[s], uint32_t(xi / SX - 1) & 1u);
          uint8_t* st = xsm + s * kStage;
          mbar_expect_tx(&x_full[s], uint32_t(kStage));
          tma_load_2d(st, &p.xmap, k0 + 128 * i, row0, &x_full[s]);
          tma_load_2d(st + kAtom, &p.xmap, k0 + 128 * i + 64, row0, &x_full[s]);
          ++xi;
        }
      }
    }
    return;
  }

  // Consumers: warp w owns tile tile0 + w (rows 16w .. 16w + 15 of its warpgroup's wgmma).
  // Registers (of 65536): 40 · 128 + 232 · 256, or 40 · 128 + 152 · 384 (qmmp_register_split).
  asm volatile("setmaxnreg.inc.sync.aligned.u32 %0;\n" ::"n"(qmmp_consumer_regs(BM)) : "memory");
  uint32_t a[2][4][2][4] = {};  // [step parity][sub-block of the step][half][fragment register]
  const uint64_t desc0 = wgmma_desc_sw128(xsm);
  int x_use = 0, x_phase = 0, w_use = 0, w_phase = 0;
  for (int64_t u = blockIdx.x; u < units; u += gridDim.x) {
    const Unit w = unit(u);
    if (w.item >= n_items) continue;
    const bool has_tile = warp < w.my_tiles;  // else a[] is stale: rows past n, never stored
    float acc[BM / 2];
#pragma unroll
    for (int i = 0; i < BM / 2; ++i) acc[i] = 0.0f;
    wgmma_fence_operands(acc);
    for (int c = 0; c < w.chunks; ++c) {
      // This warp's record of chunk c into registers, then the stage goes back to the producer.
      uint32_t L0[Chunk::LW], L1[Chunk::LW], H[2 * Chunk::HW];
      mbar_wait(&w_full[w_use], uint32_t(w_phase));
      if (has_tile) {
        const uint8_t* rec = wsm + w_use * (kConsumers * R) + warp * R;
#pragma unroll
        for (int i = 0; i < Chunk::LW / 2; ++i) {
          const uint4 v = *reinterpret_cast<const uint4*>(rec + (i * 32 + lane) * 16);
          L0[2 * i] = v.x, L1[2 * i] = v.y, L0[2 * i + 1] = v.z, L1[2 * i + 1] = v.w;
        }
        const uint32_t* hw = reinterpret_cast<const uint32_t*>(rec + 256 * Chunk::LW + (lane >> 2) * 8 * Chunk::HW);
#pragma unroll
        for (int i = 0; i < 2 * Chunk::HW; ++i) H[i] = hw[i];
      }
      mbar_arrive(&w_empty[w_use]);
      if (++w_use == SW) w_use = 0, w_phase ^= 1;
#pragma unroll
      for (int half = 0; half < 2; ++half) {
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
        mbar_wait(&x_full[x_use], uint32_t(x_phase));
        const uint64_t desc = desc0 + uint64_t((x_use * kStage) >> 4);
        wgmma_fence_operands(acc);
        wgmma_fence();
#pragma unroll
        for (int j = 0; j < 8; ++j)  // k16 step j: sub-block j / 2, half j % 2
          wgmma_rs<BM>(acc, a[half][j >> 1][j & 1], desc + uint64_t(((j >> 2) * kAtom + (j & 3) * 32) >> 4));
        wgmma_commit();
        wgmma_fence_operands(acc);
        // The previous step's group is done: its x stage goes back to the producer.
        wgmma_wait<1>();
        if (2 * c + half > 0) mbar_arrive(&x_empty[x_use == 0 ? SX - 1 : x_use - 1]);
        if (++x_use == SX) x_use = 0, x_phase ^= 1;
      }
    }
    wgmma_wait<0>();
    wgmma_fence_operands(acc);
    mbar_arrive(&x_empty[x_use == 0 ? SX - 1 : x_use - 1]);  // the unit's last x stage

    // acc[4j + e]: weight row 16·warp + g + 8(e / 2) of the tile block, activation row
    // 8j + 2t + e % 2 of the item.
    const ItemHead h = item_head(p.rs, w.item);
    const int64_t n_row = w.tile0 * 16 + 16 * warp + (lane >> 2);
    float* out = p.splits > 1 ? p.part + w.split * p.y_rows * p.n : p.y;
#pragma unroll
    for (int j = 0; j < BM / 8; ++j)
#pragma unroll
      for (int r = 0; r < 2; ++r) {
        const int m = 8 * j + 2 * t + r;
        if (m >= h.count) continue;
        int64_t yr, xr;
        item_row(p.rs, h, m, yr, xr);
#pragma unroll
        for (int e = r; e < 4; e += 2)
          if (n_row + 8 * (e >> 1) < p.n) out[yr * p.n + n_row + 8 * (e >> 1)] = acc[4 * j + e];
      }
  }
  // The split sum (if any) may launch; it waits for this grid to finish before reading.
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
}

// x (f32, row stride k) -> bf16 [rows][kp] in qmmp_phys order within every 16 values, zeros past
// k. Row r of the output is x row r (slots == nullptr) or the x row of routed slot slots[r]
// (slots[r] / top_k, or slots[r] itself per slot; zeros for -1): an item's rows become
// contiguous. One thread per 16 values (grid: x over the 16-groups, y over rows): four 16-byte
// loads where the row allows, two 16-byte stores.
constexpr int kPermuteThreads = 128;
template <int = 0>
__global__ void __launch_bounds__(kPermuteThreads) qmmp_permute_x_kernel(const float* x, int64_t rows, int64_t k,
                                                                         int64_t kp, const int* slots, int64_t top_k,
                                                                         bool per_slot, __nv_bfloat16* out) {
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");  // qmmp may start its weight loads
  const int64_t c0 = (int64_t(blockIdx.x) * kPermuteThreads + threadIdx.x) * 16;
  if (c0 >= kp) return;
  for (int64_t row = blockIdx.y; row < rows; row += gridDim.y) {
    const int64_t slot = slots ? int64_t(slots[row]) : row;  // -1: a routed row of no item
    const int64_t xr = slots && !per_slot ? slot / top_k : slot;
    float v[16];
    const float* src = x + (slot >= 0 ? xr * k + c0 : 0);
    if (slot >= 0 && c0 + 16 <= k && (reinterpret_cast<uintptr_t>(src) & 15) == 0) {
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        const float4 f = __ldg(reinterpret_cast<const float4*>(src) + i);
        v[4 * i] = f.x, v[4 * i + 1] = f.y, v[4 * i + 2] = f.z, v[4 * i + 3] = f.w;
      }
    } else {
#pragma unroll
      for (int i = 0; i < 16; ++i) v[i] = slot >= 0 && c0 + i < k ? src[i] : 0.0f;
    }
    uint32_t w[8];
#pragma unroll
    for (int L = 0; L < 16; L += 2) {  // pairs stay adjacent: qmmp_phys(L + 1) = qmmp_phys(L) + 1
      const __nv_bfloat162 b2 = __floats2bfloat162_rn(v[qmmp_phys(L)], v[qmmp_phys(L) + 1]);
      w[L / 2] = *reinterpret_cast<const uint32_t*>(&b2);
    }
    uint4* o = reinterpret_cast<uint4*>(out + row * kp + c0);
    o[0] = make_uint4(w[0], w[1], w[2], w[3]);
    o[1] = make_uint4(w[4], w[5], w[6], w[7]);
  }
}

template <class F, int BM>
void launch_qmmp_bm(const QmmpParams& p, cudaStream_t stream) {
  auto kernel = qmmp_kernel<F, BM>;
  static const bool attr = [&] {
    LMK_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, qmmp_smem_bytes<BM>(PackedShape<F>::R)));
    cudaFuncAttributes fa{};
    LMK_CUDA_CHECK(cudaFuncGetAttributes(&fa, kernel));
    return fa.numRegs * qmmp_threads(BM) >= qmmp_register_split(BM);
  }();
  if (!attr)  // the kernel would wait forever in setmaxnreg.inc
    LMK_THROW(Cuda, "quantized mat-mat: the ", qmmp_threads(BM), "-thread kernel was compiled with too few registers for its ",
              qmmp_register_split(BM), "-register producer/consumer split");
  // Persistent: one CTA per SM at most, each walking its share of the units.
  const int64_t units = (p.tiles + qmmp_warps(BM) - 1) / qmmp_warps(BM) * p.rs.n_items * p.splits;
  const dim3 grid(unsigned(std::min<int64_t>(units, sm_count())));
  launch_pdl(kernel, grid, qmmp_threads(BM), qmmp_smem_bytes<BM>(PackedShape<F>::R), stream, p);
  if (p.splits > 1) launch_sum_slices(p.part, p.splits, p.y_rows * p.n, p.y, stream);
}

// bm: activation rows per item (32, 64 or 128).
template <class F>
void launch_qmmp(const QmmpParams& p, int bm, cudaStream_t stream) {
  if (p.rs.n_items <= 0) return;
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

// The packed mat-vec and mat-mat of the BITS-bit MLX affine formats (FAffine): bf16 or f16 scales,
// group sizes 32 / 64 / 128 (qmv_affine<BITS>.cu, one file per bit width).
#define LMK_AFFINE_INSTANTIATE_ONE(BITS, F16, GSHIFT)                                          \
  template void run_qmvp<FAffine<BITS, F16, GSHIFT>>(const QmvpParams&, cudaStream_t);      \
  template void run_qmmp<FAffine<BITS, F16, GSHIFT>>(const QmmpParams&, int, cudaStream_t);
#define LMK_AFFINE_RAW_INSTANTIATE_ONE(BITS, F16, GSHIFT)                                       \
  template void run_qmvp_raw<FAffineRaw<BITS, F16, GSHIFT>>(const QmvpParams&, cudaStream_t);     \
  template void run_qmvp_raw_routed<FAffineRaw<BITS, F16, GSHIFT>>(const QmvpParams&, cudaStream_t);
#define LMK_AFFINE_RAW_INSTANTIATE(BITS)                                                                  \
  LMK_AFFINE_RAW_INSTANTIATE_ONE(BITS, false, 0) LMK_AFFINE_RAW_INSTANTIATE_ONE(BITS, false, 1)           \
  LMK_AFFINE_RAW_INSTANTIATE_ONE(BITS, false, 2) LMK_AFFINE_RAW_INSTANTIATE_ONE(BITS, true, 0)            \
  LMK_AFFINE_RAW_INSTANTIATE_ONE(BITS, true, 1) LMK_AFFINE_RAW_INSTANTIATE_ONE(BITS, true, 2)
#define LMK_AFFINE_INSTANTIATE(BITS)                                                              \
  LMK_AFFINE_INSTANTIATE_ONE(BITS, false, 0) LMK_AFFINE_INSTANTIATE_ONE(BITS, false, 1)           \
  LMK_AFFINE_INSTANTIATE_ONE(BITS, false, 2) LMK_AFFINE_INSTANTIATE_ONE(BITS, true, 0)            \
  LMK_AFFINE_INSTANTIATE_ONE(BITS, true, 1) LMK_AFFINE_INSTANTIATE_ONE(BITS, true, 2)

}  // namespace lmk::cuda::mm
