// Quantized mat-vec on packed weights (pack_ggml, layout in packed_layout.h): the decode hot path.
// Same arithmetic as qmv.cuh (int8 mma on x split into four int8 pieces, qmv_accumulate), but the
// packed layout gives every lane its codes as 16-byte words of 512-byte warp loads, so the
// weights go straight from global memory into registers: no shared-memory staging of weights,
// no 2-byte field loads.
//
// Work items come from a RowSource (common.cuh): groups of up to 8 plain activation rows, single
// expert-routed rows, or per-expert row lists built on the device; a unit is (item, 16-row tile).
// Work: K is cut into slices of as many chunks as the x pieces of the item's rows fit in 96 KB of
// shared memory (all of K for one row up to K = 21504; 8 chunks for 8 rows); a CTA owns one slice
// and a set of units (UnitWalk: tiles strided over the grid for one plain item, contiguous
// item-major runs for routed items), and warp w decodes chunks w, w + 8, ... of its slice of
// each tile. Each warp stages its chunks' x pieces once, so every global load in the loop is a
// weight load, issued one or two chunks ahead of its decode (qmvp_depth). The decode cases (the
// plain item of M <= 8 rows, single routed rows) mostly take qmvp_ring_kernel instead (a
// shared-memory ring of records, below; qmvp_ring_default), whose warp walk gives single routed
// rows runs of (unit, chunk) steps per warp instead of units per CTA, and whose units at 3..8 rows
// are two 16-row tiles where their records fit (qmvp_ring_tpu: one x copy serves both).
// (Splitting x inside this kernel instead of in split_x measured slower: 18.9 -> 24.8 us.) The 8
// warps' sums of a tile are reduced in shared memory; with several slices each CTA stores its
// slice's partial sums and a small kernel, launched behind it, adds the slices in order
// (deterministic).
#pragma once
#include <algorithm>

#include "ops/matmul/packed_layout.h"
#include "ops/matmul/qmv.cuh"

namespace lmk::cuda::mm {

struct QmvpParams {
  const uint8_t* w = nullptr;  // packed weights (packed_layout.h), expert e at e · expert_bytes
  int64_t expert_bytes = 0;
  int64_t n = 0, nsb = 0;      // weight rows, 32-element sub-blocks of K
  int64_t tiles = 0, chunks = 0;
  const uint8_t* xq = nullptr;  // split_x records of every x row, [x rows][nsb][kQmvXRecord]
  RowSource rs;                 // work items: plain row groups, routed rows or per-expert row lists
  float* y = nullptr;           // [y_rows][n]
  int64_t y_rows = 0;
  float* part = nullptr;        // slices > 1: partial sums [slice][y_rows][n]
  int slices = 1;
  int slice_chunks = 8;         // chunks per slice (qmvp_slice_chunks)
  int ring = -1;                // decode cases: qmvp_ring_kernel (1), qmvp_kernel (0), measured choice (-1)
  bool warp_walk = false;       // single routed rows on the ring kernel: warps walk (unit, chunk) steps
  // The warp walk: walk_steps (unit, chunk) steps in proportional runs over walk_warps warps
  // (set by launch_qmvp_ring; grouped items recount them on the device).
  int64_t walk_warps = 0, walk_steps = 0;
  bool weights_evict_first = false;  // qmvp_kernel weight loads' L2 policy (stream_policy; cuda.cu read_once)
  // Raw affine rows (FAffineRaw): w holds the codes [experts][n][row_bytes], these the 16-bit
  // scales and biases [experts][n][groups].
  int64_t raw_row_bytes = 0, raw_groups = 0;
  const uint8_t* raw_scales = nullptr;
  const uint8_t* raw_biases = nullptr;
};

constexpr int kQmvpWarps = 8;                  // warps per CTA; warp w takes chunks w, w + 8, ...
constexpr int kQmvpXSmem = 96 * 1024;          // shared-memory budget of a slice's x pieces
// Chunks per K-slice for items of `rows` activation rows: as many as the x budget holds (a
// multiple of 8; at least 8), so M = 1 rows up to K = 21504 need no slice sum.
inline int64_t qmvp_slice_chunks(int64_t chunks, int rows) {
  const int64_t fit = std::max<int64_t>(kQmvpWarps, kQmvpXSmem / (int64_t(rows) * 8 * kQmvXRecord) / kQmvpWarps * kQmvpWarps);
  return std::min(chunks, fit);
}

// One warp's registers for one chunk: both rows' lane words and header words.
template <class F>
struct QmvpChunk {
  static constexpr int LW = PackedShape<F>::LW, HW = PackedShape<F>::HW;
  uint4 lw[LW / 2];     // load i: words 2i, 2i + 1 of rows g and g + 8
  uint32_t hw[2 * HW];  // header words of row g, then row g + 8

  __device__ __forceinline__ void load(const uint8_t* rec, int lane, uint64_t policy) {
#pragma unroll
    for (int i = 0; i < LW / 2; ++i) lw[i] = ldg_stream16<true>(rec + (i * 32 + lane) * 16, policy);  // a prefetch: kept in place
    const uint8_t* h = rec + 256 * LW + (lane >> 2) * 8 * HW;  // rows g, g + 8: 2·HW words
    if constexpr (HW % 2 == 0) {
#pragma unroll
      for (int i = 0; i < HW / 2; ++i) {
        const uint4 v = __ldg(reinterpret_cast<const uint4*>(h) + i);
        hw[4 * i] = v.x, hw[4 * i + 1] = v.y, hw[4 * i + 2] = v.z, hw[4 * i + 3] = v.w;
      }
    } else {
#pragma unroll
      for (int i = 0; i < HW; ++i) {
        const uint2 v = __ldg(reinterpret_cast<const uint2*>(h) + i);
        hw[2 * i] = v.x, hw[2 * i + 1] = v.y;
      }
    }
  }
  // Lane words of row r (0: g, 1: g + 8) in word order.
  __device__ __forceinline__ void row_words(int r, uint32_t (&out)[LW]) const {
#pragma unroll
    for (int i = 0; i < LW / 2; ++i) {
      out[2 * i] = r ? lw[i].y : lw[i].x;
      out[2 * i + 1] = r ? lw[i].w : lw[i].z;
    }
  }
};

// Chunks of weights in flight per warp beyond the one being decoded: 2 where the registers
// allow (measured: q4_0 lm_head 146 -> 112 us on an H200), else 1 (q8_0 / Q5 / Q6_K spill at 2).
template <class F, int MT>
constexpr int qmvp_depth() {
  return MT <= 2 && PackedShape<F>::LW + PackedShape<F>::HW <= 13 ? 2 : 1;
}

// The end of a unit: the warps' partial sums of the tile (16 rows x MT activation rows) are
// added in shared memory and stored (or, with several slices, the slice's partial) by
// qmv_sum_tile. An out-of-range expert id (routed rows) writes 0 and flags it once. Every
// thread of the CTA calls it.
template <int MT, int NB>
__device__ __forceinline__ void qmvp_store_unit(const QmvpParams& p, float (&acc)[NB][2], float (*red)[16][MT],
                                                const ItemHead& h, const int64_t (&yrow)[MT], int64_t n0,
                                                int64_t slice) {
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, nwarps = int(blockDim.x >> 5);
  const int count = h.count < MT ? h.count : MT;
  qmv_warp_partials<MT>(acc, red[warp], lane >> 2, lane & 3);
  __syncthreads();
  qmv_sum_tile<MT>(red, nwarps, yrow, count, n0, p.n, [&](int64_t yr, int64_t col, float sum) {
    float* out = p.slices > 1 ? p.part + (slice * p.y_rows + yr) * p.n : p.y + yr * p.n;
    out[col] = h.invalid ? 0.0f : sum;
  });
  if (h.invalid && tid == 0 && n0 == 0 && slice == 0) record_invalid(p.rs, h.start);
  __syncthreads();
}

// The units (item, 16-row tile) one CTA walks. One plain item: tiles strided over the grid.
// Routed or grouped items: a contiguous run of units in item-major order, so a CTA stages an
// item's x pieces once per run instead of once per unit and reads consecutive records of one
// expert (items of one expert still run side by side, in neighbouring CTAs).
// Walked with a cursor: first() divides once, next() steps without dividing (the 64-bit
// divisions per unit this replaced were as many instructions as decoding a routed unit's chunk).
template <bool One>
struct UnitWalk {
  struct Cursor {
    uint32_t item, tile;
  };
  int64_t lo = 0, count = 0;
  uint32_t tiles = 1;
  __device__ __forceinline__ UnitWalk(int64_t n_items, int64_t tiles_) : tiles(uint32_t(tiles_)) {
    const int64_t total = n_items * tiles_;  // fits 32 bits (checked on the host)
    if constexpr (One) {
      lo = blockIdx.x;
      count = blockIdx.x < total ? (total - blockIdx.x + gridDim.x - 1) / gridDim.x : 0;
    } else {
      lo = int64_t(blockIdx.x) * total / gridDim.x;
      count = int64_t(blockIdx.x + 1) * total / gridDim.x - lo;
    }
  }
  // Units [lo, lo + count) (the warp walk).
  __device__ __forceinline__ UnitWalk(int64_t lo_, int64_t count_, int64_t tiles_)
      : lo(lo_), count(count_), tiles(uint32_t(tiles_)) {}
  __device__ __forceinline__ Cursor first() const {
    if constexpr (One) return {0u, uint32_t(lo)};
    else return {uint32_t(lo) / tiles, uint32_t(lo) % tiles};
  }
  __device__ __forceinline__ void next(Cursor& c) const {
    if constexpr (One) c.tile += gridDim.x;
    else if (++c.tile == tiles) c.tile = 0, ++c.item;
  }
};

// One: the work is a single plain item (M <= 8 activation rows, the decode case): the item
// lookups fold away at compile time.
template <class F, int MT, bool One>
__global__ void __launch_bounds__(256, 2) qmvp_kernel(const QmvpParams p) {
  static_assert(MT == 1 || MT % 2 == 0, "one mma holds the pieces of two activation rows");
  constexpr int NB = (MT + 1) / 2;
  constexpr int XG = NB == 1 ? 4 : NB == 2 ? 2 : 1;  // sub-blocks per group of x reads
  constexpr int D = qmvp_depth<F, MT>();
  constexpr int64_t R = PackedShape<F>::R;
  using Chunk = QmvpChunk<F>;
  extern __shared__ __align__(16) uint8_t xsm[];  // [row][slice sub-blocks][kQmvXRecord]
  __shared__ float red[kQmvpWarps][16][MT];
  static_assert(16 * MT <= 32 * kQmvpWarps, "one output per thread");
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int g = lane >> 2, t = lane & 3, my_m = t >> 1;
  // This CTA's slice: chunks [c0, c0 + sc); warp w takes chunks c0 + w + 8i, i < nch.
  const int64_t slice = blockIdx.y, c0 = slice * p.slice_chunks;
  const int sc = int(p.chunks - c0 < p.slice_chunks ? p.chunks - c0 : p.slice_chunks);
  const int nch = warp < sc ? (sc - warp + kQmvpWarps - 1) / kQmvpWarps : 0;
  const int64_t sb0 = c0 * 8;                                    // first sub-block of the slice
  const int nsb_slice = int(p.nsb - sb0 < sc * 8 ? p.nsb - sb0 : sc * 8);
  const int row_stride = p.slice_chunks * 8 * kQmvXRecord;       // x rows in shared memory

  // Units (item, tile): UnitWalk. Fits 32 bits (checked on the host).
  const uint32_t n_items = One ? 1u : uint32_t(item_count(p.rs)), tiles = uint32_t(p.tiles);
  auto head = [&](uint32_t item) {
    if constexpr (One) {
      ItemHead h;
      h.count = int(p.rs.m_rows);
      return h;
    } else {
      return item_head(p.rs, item);
    }
  };
  const UnitWalk<One> walk(n_items, tiles);
  const int64_t my_units = walk.count;
  // The prefetch cursor walks this warp's (unit, chunk) sequence: unit pk, its chunk pi; the
  // divisions and the item lookup happen once per unit, not per chunk.
  int64_t pk = 0;
  int pi = 0;
  auto pcur = walk.first();
  auto unit_base = [&](typename UnitWalk<One>::Cursor u) {
    const ItemHead h = head(u.item);  // an invalid id reads expert 0 (zeroed below)
    return p.w + h.expert * p.expert_bytes + (int64_t(u.tile) * p.chunks + c0 + warp) * R;
  };
  const uint8_t* pbase = my_units > 0 && nch > 0 ? unit_base(pcur) : nullptr;
  const uint64_t wpol = stream_policy(p.weights_evict_first);
  auto prefetch = [&](Chunk& dst) {
    if (nch == 0 || pk >= my_units) return;
    dst.load(pbase + int64_t(pi) * kQmvpWarps * R, lane, wpol);
    if (++pi == nch) {
      pi = 0;
      walk.next(pcur);
      if (++pk < my_units) pbase = unit_base(pcur);
    }
  };
  Chunk cur, nxt, nxt2;
  prefetch(cur);
  if constexpr (D == 2) prefetch(nxt);
  // x is read (split_x, the kernel before this one: programmatic dependence) only after this.
  asm volatile("griddepcontrol.wait;" ::: "memory");
  // The slice sum (if any) may launch now; it waits for this grid to finish before reading.
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");

  uint32_t staged = 0xFFFFFFFFu;  // item whose x pieces are in shared memory
  auto unit = walk.first();
  for (int64_t k = 0; k < my_units; ++k, walk.next(unit)) {
    const uint32_t item = unit.item;
    const int64_t n0 = int64_t(unit.tile) * 16;
    const ItemHead h = head(item);
    const int count = h.count < MT ? h.count : MT;
    int64_t yrow[MT], xrow[MT];
#pragma unroll
    for (int m = 0; m < MT; ++m) item_row_of<One>(p.rs, h, m < count ? m : 0, yrow[m], xrow[m]);
    if (item != staged) {  // uniform: every warp walks the same units
      // The x pieces of this warp's chunks into shared memory (each warp reads only its own);
      // sub-blocks past K in the last chunk are zero-filled, so the decode needs no bound test
      // (their weights are zero padding, and zero x makes their terms exactly 0).
      __syncwarp();
      constexpr int G = 8 * kQmvXRecord / 16;  // granules of a chunk's x records per row
      for (int i = 0; i < nch; ++i) {
        const int sbc = (warp + kQmvpWarps * i) * 8, nvi = nsb_slice - sbc < 8 ? nsb_slice - sbc : 8;
        const int valid = nvi * (kQmvXRecord / 16);
        for (int e = lane; e < count * G; e += 32) {
          const int r = e / G, o = e - r * G;
          int64_t xr = xrow[0];
#pragma unroll
          for (int m = 1; m < MT; ++m)
            if (m == r) xr = xrow[m];
          cp_async16(xsm + r * row_stride + sbc * kQmvXRecord + 16 * o,
                     p.xq + (xr * p.nsb + sb0 + sbc) * kQmvXRecord + 16 * (o < valid ? o : 0), o < valid ? 16 : 0);
        }
      }
      cp_async_commit();
      cp_async_wait_all();
      __syncwarp();
      staged = item;
    }
    // This lane's B fragment and scale record of sub-block 0 of chunk c0 + warp, per row pair.
    const uint8_t* xb[NB];
    const uint8_t* xsc[NB];
#pragma unroll
    for (int nb = 0; nb < NB; ++nb) {
      const int bm = 2 * nb + g / 4, xm = 2 * nb + my_m;
      xb[nb] = xsm + (bm < count ? bm : 0) * row_stride + warp * 8 * kQmvXRecord + (g % 4) * 32 + t * 8;
      xsc[nb] = xsm + (xm < count ? xm : 0) * row_stride + warp * 8 * kQmvXRecord + 128;
    }

    float acc[NB][2] = {};
    for (int i = 0; i < nch; ++i) {
      prefetch(D == 1 ? nxt : nxt2);
      const int xo = i * kQmvpWarps * 8 * kQmvXRecord;  // chunk c0 + warp + 8i in the slice
      uint32_t L0[Chunk::LW], L1[Chunk::LW];
      cur.row_words(0, L0);
      cur.row_words(1, L1);
      const uint32_t* H0 = cur.hw;
      const uint32_t* H1 = cur.hw + Chunk::HW;
#pragma unroll
      for (int s0 = 0; s0 < 8; s0 += XG) {
        uint2 b[XG][NB];
        float4 xs[XG][NB];
#pragma unroll
        for (int q = 0; q < XG; ++q)
#pragma unroll
          for (int nb = 0; nb < NB; ++nb) {
            // B columns of absent rows read row 0's pieces: they feed sums that are never stored.
            b[q][nb] = *reinterpret_cast<const uint2*>(xb[nb] + xo + (s0 + q) * kQmvXRecord);
            xs[q][nb] = *reinterpret_cast<const float4*>(xsc[nb] + xo + (s0 + q) * kQmvXRecord);
          }
#pragma unroll
        for (int q = 0; q < XG; ++q) {
          const int s = s0 + q;
          Dec8 d0, d1;
          F::codes8(F::packed(L0, H0, s, t), s, d0);
          F::codes8(F::packed(L1, H1, s, t), s, d1);
          qmv_accumulate<F, NB, One>(acc, d0, d1, b[q], xs[q], t, count);
        }
      }
      cur = nxt;
      if constexpr (D == 2) nxt = nxt2;
    }

    qmvp_store_unit<MT>(p, acc, red, h, yrow, n0, slice);
  }
}

// The decode cases (one plain item of M <= 8 rows, or single routed rows), all of K per CTA, with
// a shared-memory ring instead of registers: each warp streams its chunks (the weight record and
// that chunk's x pieces) into qmvp_ring_slots() slots by cp.async, S - 1 chunks ahead of its decode
// and across unit boundaries, so more bytes are in flight than registers hold and no x staging
// round trip precedes a unit's first decode. Used where it measured faster (qmvp_ring_default);
// LMK_QMVP_RING=0 / 1 turns it off / on for every decode case.
constexpr int kQmvpRingSmem = 110 * 1024;  // ring bytes per CTA: two CTAs per SM (three for the shallow ring)
constexpr int kSmemPerSm = 227 * 1024;  // H100 / H200: 228 KB per SM, 1 KB of it reserved per CTA
// 16-row tiles per ring unit: two at 3..8 activation rows where two slots of two tiles' records fit
// a CTA, so one copy and one read of a chunk's x pieces (1152 bytes per activation row, at 8 rows
// four times a q4_0 chunk's weight bytes) serve 32 weight rows, and 4096 rows make one wave of
// units at one CTA per SM; else one. Always one for raw MLX rows (their copies and reads are per
// tile), and at 4 rows for raw q6_K and the 8-bit packed records (q8_0's and 8-bit MLX's 4352
// bytes), measured slower with two (H200, 4x4096x14336 graph: raw q6_K 32.4 -> 34.1 us, packed
// q8_0 18.3 -> 18.9; against raw q4_0 27.2 -> 17.8, raw q8_0 31.6 -> 25.5, packed q6_K 24.3 -> 20.1).
template <class F, int MT>
constexpr int qmvp_ring_tpu() {
  if constexpr (raw_affine<F>() || (MT != 4 && MT != 8)) {
    return 1;
  } else {
    constexpr int two = kQmvpWarps * 2 * (2 * int(PackedShape<F>::R) + MT * 8 * kQmvXRecord) + kQmvpWarps * 16 * MT * 4;
    constexpr bool slower = MT == 4 && (raw_ggml<F>() ? F::kType == DType::q6_K : PackedShape<F>::R >= 4352);
    return two <= kSmemPerSm && !slower ? 2 : 1;
  }
}
template <class F, int MT>
constexpr int qmvp_ring_slot() { return qmvp_ring_tpu<F, MT>() * int(PackedShape<F>::R) + MT * 8 * kQmvXRecord; }
// Slots per warp: as many as kQmvpRingSmem holds, 2..Cap (Cap 2: the shallow ring, below).
template <class F, int MT, int Cap = 6>
constexpr int qmvp_ring_slots() {
  constexpr int budget = qmvp_ring_tpu<F, MT>() > 1 ? kSmemPerSm - kQmvpWarps * 16 * MT * 4 : kQmvpRingSmem;
  constexpr int fit = budget / (kQmvpWarps * qmvp_ring_slot<F, MT>());
  return fit < 2 ? 2 : fit > Cap ? Cap : fit;
}
// CTAs per SM the ring kernel is compiled for (its register budget): two (three for the shallow
// ring), or as many as its shared memory lets in, if fewer (the 8-row rings and large-record
// 4-row rings: one), so such instances may use more registers at no cost in occupancy.
template <class F, int MT, int Cap>
constexpr int qmvp_ring_ctas() {
  constexpr int want = Cap == 2 ? 3 : 2;
  // ring slots plus the reduction array (its CTA-walk size, an upper bound)
  constexpr int smem = kQmvpWarps * qmvp_ring_slots<F, MT, Cap>() * qmvp_ring_slot<F, MT>() + kQmvpWarps * 16 * MT * 4;
  constexpr int fit = kSmemPerSm / smem;
  return fit < 1 ? 1 : fit < want ? fit : want;
}

// Warp walk (Warp, single routed rows): instead of a CTA taking whole units with warp w on
// chunks w, w + 8, ... and a CTA barrier and reduction per unit, each warp takes an equal
// contiguous run of the (unit, chunk) steps and decodes every chunk of its units itself: no
// barrier, and the sums are stored straight from the warp. Routed experts have few chunks per
// tile (768x2048: 8, one per warp per unit), so the per-unit barrier dominated. A unit split
// between two warps (runs are at least one unit long, so at most two) is added into outputs
// split_x zeroed: 0 + a + b in either order, deterministic.
template <class F, int MT, bool One, bool Warp, int Cap = 6>
__global__ void __launch_bounds__(256, qmvp_ring_ctas<F, MT, Cap>()) qmvp_ring_kernel(const QmvpParams p) {
  static_assert(MT == 1 || ((MT == 2 || MT == 4 || MT == 8) && One), "plain items of up to 8 rows, or single routed rows");
  static_assert(!Warp || (!One && MT == 1), "the warp walk is for single routed rows");
  constexpr int NB = (MT + 1) / 2, S = qmvp_ring_slots<F, MT, Cap>(), SLOT = qmvp_ring_slot<F, MT>();
  constexpr int64_t R = PackedShape<F>::R;
  constexpr int TPU = qmvp_ring_tpu<F, MT>();  // 16-row tiles per unit, records side by side in a slot
  constexpr int LW = PackedShape<F>::LW, HW = PackedShape<F>::HW;
  extern __shared__ __align__(16) uint8_t ring[];  // [warp][slot][record, then x records of MT rows]
  __shared__ float red[Warp ? 1 : kQmvpWarps][16][MT];
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, g = lane >> 2, t = lane & 3;
  const int64_t n_items = One ? 1 : item_count(p.rs);
  // This warp's steps (Warp) or chunks per unit (CTA walk).
  int64_t my_steps = 0, step0 = 0;
  if constexpr (Warp) {  // nw <= units: runs of at least one unit
    int64_t nw = p.walk_warps, steps = p.walk_steps;
    if (p.rs.mode == ItemMode::grouped) {  // the item count is known on the device only
      steps = n_items * p.tiles * p.chunks;
      nw = std::min<int64_t>(int64_t(gridDim.x) * kQmvpWarps, n_items * p.tiles);
    }
    // Proportional runs (not the longer ones first): when an item's steps span a whole number of
    // runs, the items sharing an expert read its records at the same time, and L2 serves the
    // second read (H100, 24 tokens of top-8, longer runs first: 1.21-1.36x slower for q8_0 / q6_K).
    const int64_t gw = int64_t(blockIdx.x) * kQmvpWarps + warp;
    if (gw < nw) step0 = gw * steps / nw, my_steps = (gw + 1) * steps / nw - step0;
  }
  const int nch = Warp ? 0 : warp < p.chunks ? int((p.chunks - warp + kQmvpWarps - 1) / kQmvpWarps) : 0;
  const int c_first = Warp ? int(step0 % p.chunks) : 0;  // the first unit's first chunk
  const UnitWalk<One> walk = [&] {
    if constexpr (Warp)
      return UnitWalk<One>(step0 / p.chunks, my_steps > 0 ? (step0 + my_steps - 1) / p.chunks - step0 / p.chunks + 1 : 0,
                           p.tiles);
    else
      return UnitWalk<One>(n_items, (p.tiles + TPU - 1) / TPU);  // units (item, TPU tiles)
  }();
  const int64_t my_units = walk.count;
  auto head = [&](int64_t item) {
    if constexpr (One) {
      ItemHead h;
      h.count = int(p.rs.m_rows < MT ? p.rs.m_rows : MT);
      return h;
    } else {
      return item_head(p.rs, item);  // an invalid id reads expert 0 (its output is zeroed)
    }
  };
  uint8_t* slots = ring + warp * S * SLOT;

  // The issue cursor: unit ik (its records wb, its x rows xr, cnt of them), its chunk ii (the
  // tile's chunk ii for the warp walk, warp + 8·ii for the CTA walk); is steps issued (Warp).
  int64_t ik = 0, is = 0;
  auto icur = walk.first();
  int ii = c_first, cnt = 0;
  const uint8_t* wb = nullptr;
  const uint8_t* xr = nullptr;
  int64_t sb_row = 0;  // raw affine rows: the tile's first row of scales and biases (element index)
  int rows_left = 16;  // raw rows: weight rows of the unit below n (up to 16 · TPU)
  int64_t second = 0;  // packed records: bytes from the unit's first tile's records to its second's (0: none)
  auto load_unit = [&] {
    if (ik >= my_units) return;
    const ItemHead h = head(icur.item);
    int64_t yrow0, xrow0;
    item_row_of<One>(p.rs, h, 0, yrow0, xrow0);
    cnt = h.count < MT ? h.count : MT;
    const int64_t tile0 = int64_t(icur.tile) * TPU;
    if constexpr (raw_affine<F>() || raw_ggml<F>()) {
      const int64_t row0 = tile0 * 16;
      wb = p.w + h.expert * p.expert_bytes + row0 * p.raw_row_bytes;
      if constexpr (raw_affine<F>()) sb_row = (h.expert * p.n + row0) * p.raw_groups;
      rows_left = int(p.n - row0 < 16 * TPU ? p.n - row0 : 16 * TPU);
    } else {
      wb = p.w + h.expert * p.expert_bytes + tile0 * p.chunks * R;
      second = TPU > 1 && tile0 + 1 < p.tiles ? p.chunks * R : 0;  // a missing second tile re-reads the first
    }
    xr = p.xq + xrow0 * p.nsb * kQmvXRecord;  // plain rows are consecutive x rows
  };
  load_unit();
  // A chunk's copies: each lane takes granules lane + 32j (16 bytes each) of the weight record
  // and of each row's 8 x records, so the per-lane addresses are a base plus constant offsets.
  const uint32_t lane_slots = smem_u32(slots) + 16 * lane;
  auto issue = [&](bool weights, bool x, int slot) {
    if (Warp ? is >= my_steps : nch == 0 || ik >= my_units) return;
    const uint32_t dst = lane_slots + slot * SLOT;
    const int64_t c = Warp ? int64_t(ii) : warp + int64_t(kQmvpWarps) * ii;
    // The weights keep the normal L2 policy. Evict-first (cp.async with .L2::cache_hint, its
    // shared address passed through a shuffle to dodge the ptxas 13.0 mis-encoding noted in
    // bulk.cuh) made cold runs 7-10% faster but back-to-back runs 20% slower (H100, q4_0
    // 1x4096x14336 cold 22.4 -> 20.8 us, back to back 14.1 -> 17.3: the repeated matrix no longer
    // partly hits L2); one bulk copy per record was slower both ways (cold 22.5 -> 37.8 us).
    if (weights) {
      if constexpr (raw_affine<F>()) {
        // 16 rows of kChunkBytes codes (16-byte granules, rows past n zero-filled), then each row's
        // kGroups scales (lanes 0..15) and biases (lanes 16..31).
        constexpr int GR = F::kChunkBytes / 16, RP = 32 / GR;  // granules per row, rows per pass
        const int r0 = lane / GR, col = lane % GR;
        const uint32_t slot0 = dst - 16 * lane;  // dst is this lane's granule of the slot
#pragma unroll
        for (int i = 0; i < 16 / RP; ++i) {
          const int r = r0 + RP * i;
          const bool live = r < rows_left;
          cp_async16_u32(slot0 + r * F::kRowStride + 16 * col,
                         wb + (live ? r : 0) * p.raw_row_bytes + c * F::kChunkBytes + 16 * col, live ? 16 : 0);
        }
        const int r = lane & 15;
        const bool live = r < rows_left;
        const uint8_t* sb = (lane < 16 ? p.raw_scales : p.raw_biases) +
                            2 * (sb_row + (live ? r : 0) * p.raw_groups + c * F::kGroups);
        cp_async_small<2 * F::kGroups>(slot0 + F::kHdrOffset + (lane >> 4) * 32 * F::kGroups + r * 2 * F::kGroups, sb,
                                       live);
      } else if constexpr (raw_ggml<F>()) {
        // The granules around the chunk's bytes in each of the 16 rows (rows past n, and granules
        // past the row's end in its last chunk, zero-filled: zero scales, so they add nothing).
        constexpr int G = F::kGranules;
        const int64_t first = (c * F::kChunkBytes) & ~int64_t(15);
        const uint32_t slot0 = dst - 16 * lane;
#pragma unroll
        for (int tp = 0; tp < TPU; ++tp)
#pragma unroll
          for (int j = 0; j < (16 * G + 31) / 32; ++j) {
            const int e = lane + 32 * j, r = e / G, gi = e - r * G, row = 16 * tp + r;
            const int64_t col = first + 16 * gi;
            const bool live = row < rows_left && col < p.raw_row_bytes;
            if ((16 * G) % 32 == 0 || e < 16 * G)
              cp_async16_u32(slot0 + tp * int(R) + r * F::kRowStride + 16 * gi, wb + (live ? row * p.raw_row_bytes + col : 0),
                             live ? 16 : 0);
          }
      } else {
#pragma unroll
        for (int tp = 0; tp < TPU; ++tp) {
          const uint8_t* src = wb + tp * second + c * R + 16 * lane;
#pragma unroll
          for (int j = 0; j < (int(R / 16) + 31) / 32; ++j)
            if (int(R / 16) % 32 == 0 || 32 * j + lane < int(R / 16))
              cp_async16_u32(dst + tp * int(R) + 512 * j, src + 512 * j, 16);
        }
      }
    }
    if (x) {  // sub-blocks past K zero-filled: the padded records' codes meet zeros
      constexpr int G = 8 * kQmvXRecord / 16;  // granules of a chunk's x records per row
      const int64_t left = p.nsb - c * 8;      // sub-blocks of K from this chunk on
#pragma unroll
      for (int m = 0; m < MT; ++m) {
        if (m >= cnt) break;
        const uint8_t* src = xr + (m * p.nsb + c * 8) * kQmvXRecord;
        const uint32_t d = dst + TPU * int(R) + m * 8 * kQmvXRecord;
        if (left >= 8) {  // uniform: a whole chunk of K
#pragma unroll
          for (int j = 0; j < (G + 31) / 32; ++j)
            if (32 * j + lane < G) cp_async16_u32(d + 512 * j, src + 16 * lane + 512 * j, 16);
        } else {
          const int valid = int(left) * (kQmvXRecord / 16);
#pragma unroll
          for (int j = 0; j < (G + 31) / 32; ++j) {
            const int o = 32 * j + lane;
            if (o < G) cp_async16_u32(d + 512 * j, src + 16 * (o < valid ? o : 0), o < valid ? 16 : 0);
          }
        }
      }
    }
  };
  auto advance = [&] {
    if constexpr (Warp) {
      if (is < my_steps && (++is, ++ii == p.chunks)) ii = 0, ++ik, walk.next(icur), load_unit();
    } else {
      if (nch > 0 && ++ii == nch) ii = 0, ++ik, walk.next(icur), load_unit();
    }
  };
  // Prologue: the weights of the first S - 1 chunks go out before waiting for split_x (the kernel
  // before this one, programmatic dependence), their x pieces after it. Groups: W0..W(S-2),
  // X0..X(S-2), then one (W + X) group per chunk: chunk j is complete when at most S - 1 later
  // groups are pending, for every j.
  // The cursor's start is kept, not recomputed after the wait (an id load and divisions on the
  // path from split_x's end to the first x copies).
  const int cnt0 = cnt, rows_left0 = rows_left;
  const uint8_t *wb0 = wb, *xr0 = xr;
  const int64_t sb_row0 = sb_row;
  for (int j = 0; j < S - 1; ++j) issue(true, false, j), cp_async_commit(), advance();
  asm volatile("griddepcontrol.wait;" ::: "memory");
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
  ik = 0, is = 0, ii = c_first, icur = walk.first(), cnt = cnt0, wb = wb0, xr = xr0;
  sb_row = sb_row0, rows_left = rows_left0;
  for (int j = 0; j < S - 1; ++j) issue(false, true, j), cp_async_commit(), advance();

  int slot = 0;  // the slot of the next chunk to decode
  int64_t done = 0;  // steps decoded (Warp)
  auto unit = walk.first();
  for (int64_t k = 0; k < my_units; ++k, walk.next(unit)) {
    const int64_t n0 = int64_t(unit.tile) * 16 * TPU;
    const ItemHead h = head(unit.item);
    const int count = h.count < MT ? h.count : MT;
    int64_t yrow[MT], xrow[MT];
#pragma unroll
    for (int m = 0; m < MT; ++m) item_row_of<One>(p.rs, h, m < count ? m : 0, yrow[m], xrow[m]);
    const int c0 = k == 0 ? c_first : 0;
    const int n_here = Warp ? int(std::min<int64_t>(p.chunks - c0, my_steps - done)) : nch;
    float acc[TPU][NB][2] = {};
    for (int i = 0; i < n_here; ++i) {
      __syncwarp();  // every lane is done with the slot refilled now (decoded one step ago)
      issue(true, true, slot == 0 ? S - 1 : slot - 1);
      cp_async_commit();
      advance();
      cp_async_wait<S - 1>();
      __syncwarp();  // the other lanes' copies of this chunk are visible
      const uint8_t* rec = slots + slot * SLOT;
      // Packed and raw affine records, per tile (raw GGML rows: read in place below).
      uint32_t L0[TPU][LW], L1[TPU][LW], H[TPU][2 * HW];
#pragma unroll
      for (int tp = 0; tp < TPU; ++tp) {
        const uint8_t* rt = rec + tp * R;
        if constexpr (raw_affine<F>()) {
          // Lane word w of rows g, g + 8: 4-bit word 4w + t of the row (sub-block w); 8-bit words
          // 8(w/2) + t and + 4 (sub-block w / 2). Header word j: scale j | bias j << 16.
          const uint32_t* r0 = reinterpret_cast<const uint32_t*>(rt + g * F::kRowStride);
          const uint32_t* r1 = reinterpret_cast<const uint32_t*>(rt + (g + 8) * F::kRowStride);
#pragma unroll
          for (int w = 0; w < LW; ++w) {
            const int word = LW == 8 ? 4 * w + t : 8 * (w >> 1) + 4 * (w & 1) + t;
            L0[tp][w] = r0[word], L1[tp][w] = r1[word];
          }
#pragma unroll
          for (int half = 0; half < 2; ++half) {
            const uint32_t* sc = reinterpret_cast<const uint32_t*>(rt + F::kHdrOffset + (g + 8 * half) * 2 * F::kGroups);
            const uint32_t* bi = sc + 8 * F::kGroups;  // the biases follow the 16 rows of scales
#pragma unroll
            for (int j = 0; j < HW / 2; ++j) {
              H[tp][half * HW + 2 * j] = __byte_perm(sc[j], bi[j], 0x5410);
              H[tp][half * HW + 2 * j + 1] = __byte_perm(sc[j], bi[j], 0x7632);
            }
          }
        } else if constexpr (!raw_ggml<F>()) {
#pragma unroll
          for (int w = 0; w < LW / 2; ++w) {
            const uint4 v = *reinterpret_cast<const uint4*>(rt + (w * 32 + lane) * 16);
            L0[tp][2 * w] = v.x, L1[tp][2 * w] = v.y, L0[tp][2 * w + 1] = v.z, L1[tp][2 * w + 1] = v.w;
          }
          const uint32_t* hw = reinterpret_cast<const uint32_t*>(rt + 256 * LW + g * 8 * HW);
#pragma unroll
          for (int w = 0; w < 2 * HW; ++w) H[tp][w] = hw[w];
        }
      }
      // B: column g = piece g % 4 of row g / 4 (row 0's pieces where that row does not exist: those
      // columns only feed lanes whose sums are never stored).
      const uint8_t* xb[NB];
      const uint8_t* xsc[NB];
#pragma unroll
      for (int nb = 0; nb < NB; ++nb) {
        const int bm = 2 * nb + g / 4, xm = 2 * nb + (t >> 1);
        xb[nb] = rec + TPU * R + (bm < count ? bm : 0) * 8 * kQmvXRecord + (g % 4) * 32 + t * 8;
        xsc[nb] = rec + TPU * R + (xm < count ? xm : 0) * 8 * kQmvXRecord + 128;
      }
      // The chunk's 8 sub-blocks, each x read once for every tile; raw_of(tp, r, s) gives tile tp's
      // row g + 8r fields of sub-block s.
      auto decode = [&](auto raw_of) {
#pragma unroll
        for (int s = 0; s < 8; ++s) {
          uint2 b[NB];
          float4 xs[NB];
#pragma unroll
          for (int nb = 0; nb < NB; ++nb) {
            b[nb] = *reinterpret_cast<const uint2*>(xb[nb] + s * kQmvXRecord);
            xs[nb] = *reinterpret_cast<const float4*>(xsc[nb] + s * kQmvXRecord);
          }
#pragma unroll
          for (int tp = 0; tp < TPU; ++tp) {
            Dec8 d0, d1;
            F::codes8(raw_of(tp, 0, s), s, d0);
            F::codes8(raw_of(tp, 1, s), s, d1);
            qmv_accumulate<F, NB, One>(acc[tp], d0, d1, b, xs, t, count);
          }
        }
      };
      if constexpr (raw_ggml<F>()) {
        // Raw blocks: the chunk starts `off` bytes into its first granule; the fields' alignment
        // mod 4 is then a compile-time constant (one instance per value of off mod 4).
        const int64_t dc = Warp ? int64_t(c0 + i) : warp + int64_t(kQmvpWarps) * i;  // the chunk decoded
        const int off = F::kAlign == 16 ? 0 : int((dc * F::kChunkBytes) & 15);
        const uint8_t* w0[TPU];
        const uint8_t* w1[TPU];
#pragma unroll
        for (int tp = 0; tp < TPU; ++tp) w0[tp] = rec + tp * R + g * F::kRowStride + off, w1[tp] = w0[tp] + 8 * F::kRowStride;
        auto fields = [&](auto mis) {
          decode([&](int tp, int r, int s) {
            const uint8_t* row = r ? w1[tp] : w0[tp];
            return F::load(SharedBytes{row, int(mis)}, row, s, t);
          });
        };
        if constexpr (F::kAlign % 4 == 0) fields(std::integral_constant<int, 0>{});
        else if ((off & 3) == 0) fields(std::integral_constant<int, 0>{});
        else fields(std::integral_constant<int, 2>{});
      } else {
        decode([&](int tp, int r, int s) { return F::packed(r ? L1[tp] : L0[tp], r ? H[tp] + HW : H[tp], s, t); });
      }
      slot = slot == S - 1 ? 0 : slot + 1;
    }
    if constexpr (Warp) {
      // Lanes t = 0 hold rows g and g + 8 (row pairs t, t ^ 1 summed); an invalid id stores nothing
      // (its outputs stay zero) and is flagged by the warp that has the item's first chunk.
      done += n_here;
      acc[0][0][0] += __shfl_xor_sync(0xffffffffu, acc[0][0][0], 1);
      acc[0][0][1] += __shfl_xor_sync(0xffffffffu, acc[0][0][1], 1);
      if (t == 0 && !h.invalid) {
        float* out = p.y + yrow[0] * p.n + n0;
        const bool whole = n_here == p.chunks;
#pragma unroll
        for (int half = 0; half < 2; ++half) {
          const int r = g + 8 * half;
          if (n0 + r < p.n) {
            if (whole) out[r] = acc[0][0][half];
            else atomicAdd(out + r, acc[0][0][half]);
          }
        }
      }
      if (h.invalid && lane == 0 && n0 == 0 && c0 == 0) record_invalid(p.rs, h.start);
    } else {
#pragma unroll
      for (int tp = 0; tp < TPU; ++tp)
        if (tp == 0 || n0 + 16 * tp < p.n) qmvp_store_unit<MT>(p, acc[tp], red, h, yrow, n0 + 16 * tp, 0);  // uniform
    }
  }
  cp_async_wait_all();  // nothing left in flight at exit (issues past the end copy nothing)
}

// y[i] = Σ_s part[s][i] over the slices, in slice order. Launched right behind the mat-vec
// (programmatic dependence) and waits for it to finish. (A template: this header is included by
// several translation units.)
template <int = 0>
__global__ void __launch_bounds__(256) qmvp_sum_slices_kernel(const float* part, int slices, int64_t count, float* y) {
  asm volatile("griddepcontrol.wait;" ::: "memory");
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < count; i += int64_t(gridDim.x) * blockDim.x) {
    float sum = part[i];
    for (int s = 1; s < slices; ++s) sum += part[s * count + i];
    y[i] = sum;
  }
}

// y = the sum of `slices` partial results part[s][count], behind the kernel just launched.
inline void launch_sum_slices(const float* part, int slices, int64_t count, float* y, cudaStream_t stream) {
  const int64_t blocks = std::min<int64_t>((count + 255) / 256, int64_t(sm_count()) * 2);
  launch_pdl(qmvp_sum_slices_kernel<>, dim3(unsigned(blocks)), 256, 0, stream, part, slices, count, y);
}

template <class F, int MT, bool One>
void launch_qmvp_mt(const QmvpParams& p, cudaStream_t stream) {
  auto kernel = qmvp_kernel<F, MT, One>;
  static const bool attr = [&] {
    LMK_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, kQmvpXSmem));
    return true;
  }();
  (void)attr;
  const int smem = MT * p.slice_chunks * 8 * kQmvXRecord;
  // Tile groups: as many CTAs as are resident, spread over the slices.
  const int64_t resident =
      int64_t(max_active_blocks(reinterpret_cast<const void*>(kernel), 32 * kQmvpWarps, smem)) * sm_count();
  const int64_t units = p.rs.n_items * p.tiles;  // grouped: an upper bound
  const int64_t groups = std::min<int64_t>(units, std::max<int64_t>(1, resident / p.slices));
  launch_pdl(kernel, dim3(unsigned(groups), unsigned(p.slices)), 32 * kQmvpWarps, smem, stream, p);
  if (p.slices > 1) launch_sum_slices(p.part, p.slices, p.y_rows * p.n, p.y, stream);
}

// The ring kernel over all of K (no slices: x is not staged whole).
template <class F, int MT, bool One, bool Warp = false, int Cap = 6>
void launch_qmvp_ring(const QmvpParams& p, cudaStream_t stream) {
  auto kernel = qmvp_ring_kernel<F, MT, One, Warp, Cap>;
  const int smem = kQmvpWarps * qmvp_ring_slots<F, MT, Cap>() * qmvp_ring_slot<F, MT>();
  static const bool attr = [&] {
    LMK_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
    return true;
  }();
  (void)attr;
  QmvpParams q = p;
  q.slices = 1;
  q.slice_chunks = int(p.chunks);
  const int64_t resident =
      int64_t(max_active_blocks(reinterpret_cast<const void*>(kernel), 32 * kQmvpWarps, smem)) * sm_count();
  constexpr int tpu = qmvp_ring_tpu<F, MT>();
  const int64_t units = p.rs.n_items * ((p.tiles + tpu - 1) / tpu);  // grouped: an upper bound
  const int64_t grid = std::min<int64_t>(units, resident);
  if constexpr (Warp) {  // runs of (unit, chunk) steps, each at least one unit long
    q.walk_warps = std::min<int64_t>(grid * kQmvpWarps, units);
    q.walk_steps = units * p.chunks;
  }
  launch_pdl(kernel, dim3(unsigned(grid)), 32 * kQmvpWarps, smem, stream, q);
}

// Where the ring kernel measured faster than qmvp_kernel (H100, 4096x14336 cold, back to back in
// brackets): plain M = 2 for every format but q8_0 (q4_0 26.6 -> 22.7 us (24.5 -> 14.6), q4_K
// 32.6 -> 23.6, iq4_nl 34.4 -> 26.0, q5_1 33.8 -> 27.7; q8_0 33.0 -> 35.1); plain M = 1 for every
// format but q8_0 and q6_K, whose large records lose (q4_0 21.8 -> 21.6 (17.0 -> 11.4), q4_K
// 22.4 -> 22.4 (19.0 -> 15.1), iq4_nl 23.4 -> 22.5 (20.1 -> 15.2), q5_1 26.4 -> 27.0 (20.1 ->
// 17.1); lm_head 151936x4096 3-14% faster; q8_0 31.2 -> 33.9, q6_K 27.8 -> 29.9); plain M = 3..4
// for every format (q4_0 26.9 -> 23.6 (23.5 -> 16.6), q5_1 36.8 -> 28.3 (30.9 -> 24.9), iq4_nl
// 26.9 -> 24.0 (24.5 -> 18.8), q4_K 26.8 -> 24.5 (24.1 -> 19.9), q6_K 35.9 -> 34.4, q8_0 equal cold
// (29.2 -> 27.2)); plain M = 5..8 for every format (q5_1 45.1 -> 37.0 (40.5 -> 35.4), iq4_nl
// 35.7 -> 32.2, q4_K 37.0 -> 34.6, q8_0 38.4 -> 36.8 (34.4 -> 29.7), q6_K 46.1 -> 43.5; q4_0, once
// its 8-row instance stopped spilling (qmvp_ring_ctas), 36.1 -> 31.4 (33.3 -> 29.5); q5_0, not
// benchmarked, follows it); single routed rows but for q8_0 and q6_K (768x2048 experts: q4_0 T1
// 14.1 -> 12.5 us, T8 41.9 -> 39.2; q8_0 T8 49.5 -> 54.3, q6_K T8 47.4 -> 49.9).
// (By record bytes: large = q6_K's 3392 and up (q8_0, 8-bit affine), q5_1's 3072 not; q8_0's
// 4352 and 8-bit affine's 4608 are the 8-bit ones.)
inline bool qmvp_ring_default(int64_t record_bytes, int rows, bool routed) {
  const bool large_record = record_bytes > 3200, eight_bit = record_bytes > 4096;
  if (routed || rows == 1) return !large_record;
  return rows > 2 || !eight_bit;
}

// Items of up to 8 activation rows (p.rs.per_item; 1 for single routed rows).
template <class F>
void launch_qmvp(const QmvpParams& p, cudaStream_t stream) {
  if (p.rs.n_items * p.tiles > int64_t(INT32_MAX) || p.slices > 65535)
    LMK_THROW(Unsupported, "quantized mat-vec: ", p.rs.n_items, " items x ", p.tiles, " row tiles x ", p.slices,
              " K-slices exceed the grid");
  // One plain item: M <= 8 rows, 1, 2, 4 or 8 of them per mma set. Otherwise single routed rows
  // or items of up to 8 rows (plain M > 8, per-expert row lists).
  if (p.rs.mode == ItemMode::plain && p.rs.n_items == 1) {
    const int64_t rows = p.rs.m_rows;
    if (p.ring < 0 ? qmvp_ring_default(PackedShape<F>::R, int(rows), false) : p.ring != 0)
      return rows <= 1   ? launch_qmvp_ring<F, 1, true>(p, stream)
             : rows <= 2 ? launch_qmvp_ring<F, 2, true>(p, stream)
             : rows <= 4 ? launch_qmvp_ring<F, 4, true>(p, stream)
                         : launch_qmvp_ring<F, 8, true>(p, stream);
    if (rows <= 1) launch_qmvp_mt<F, 1, true>(p, stream);
    else if (rows <= 2) launch_qmvp_mt<F, 2, true>(p, stream);
    else if (rows <= 4) launch_qmvp_mt<F, 4, true>(p, stream);
    else launch_qmvp_mt<F, 8, true>(p, stream);
  } else if (p.rs.mode == ItemMode::direct || p.rs.per_item == 1) {
    // Few units (one token's routed rows): the shallow ring, two slots per warp, whose smaller
    // shared memory fits three CTAs per SM, so each CTA takes at most one unit and the critical
    // path is one unit's chunk instead of two; for every format (H100, 768x2048 experts, T1 cold
    // (back to back): q4_0 12.7 -> 11.3 us (9.7 -> 8.5), q4_K 13.2 -> 11.6 (10.6 -> 8.4), q6_K
    // 15.4 -> 14.6 (11.5 -> 9.5), q8_0 15.0 -> 14.7 (11.2 -> 9.6); q8_0 / q6_K otherwise take
    // qmvp_kernel).
    static const int shallow = int(tuning("LMK_QMVP_SHALLOW_RING", -1));  // -1 rule, 0 off, 1 on
    const bool few = p.rs.n_items * p.tiles <= 3 * int64_t(sm_count());
    // The warp walk on the shallow ring too (three CTAs per SM) up to 32 units per SM (8 tokens
    // of top-8 768x2048 experts: 23) for q4_K, where it measured faster (H100, T8 back to back:
    // 23.3 against 23.9 us on the deep ring). q4_0 took it too until the prologue kept its cursor
    // and split_x released the mat-vec early; since then the deep ring is faster there (same call,
    // back to back: 17.6-19.1 against 20.5-21.8 us). Other formats: q8_0 unchanged, q6_K 3%
    // slower (spills), 4-bit MLX affine 7% slower. LMK_QMVP_SHALLOW_WALK: -1 that rule, 0 never,
    // 1 always (q4_K).
    if constexpr (F::kType == DType::q4_K) {
      static const int shallow_walk = int(tuning("LMK_QMVP_SHALLOW_WALK", -1));
      if (p.warp_walk && (shallow_walk < 0 ? p.rs.n_items * p.tiles <= 32 * int64_t(sm_count()) : shallow_walk != 0))
        return launch_qmvp_ring<F, 1, false, true, 2>(p, stream);
    }
    if (p.warp_walk) launch_qmvp_ring<F, 1, false, true>(p, stream);
    else if (p.ring != 0 && (shallow < 0 ? few : shallow != 0)) launch_qmvp_ring<F, 1, false, false, 2>(p, stream);
    else if (p.ring < 0 ? qmvp_ring_default(PackedShape<F>::R, 1, true) : p.ring != 0) launch_qmvp_ring<F, 1, false>(p, stream);
    else launch_qmvp_mt<F, 1, false>(p, stream);
  } else {
    launch_qmvp_mt<F, 8, false>(p, stream);
  }
}

// The two mat-vec entry points of launch.h; qmv_legacy.cu / qmv_kquant.cu instantiate them per
// format with LMK_QMV_INSTANTIATE (two files so the build compiles them in parallel).
template <class F>
void run_qmv(const QmvParams& p, cudaStream_t stream) {
  launch_qmv<F>(p, stream);
}
template <class F>
void run_qmvp(const QmvpParams& p, cudaStream_t stream) {
  launch_qmvp<F>(p, stream);
}
// Raw rows (FAffineRaw, FGgmlRaw): one plain item of up to 8 rows on the ring kernel. (The 8-row
// instances of the largest slots, 8-bit codes, take two slots per warp and one CTA per SM.)
template <class F>
void run_qmvp_raw(const QmvpParams& p, cudaStream_t stream) {
  static_assert(kQmvpWarps * 2 * qmvp_ring_slot<F, 8>() + kQmvpWarps * 16 * 8 * 4 <= kSmemPerSm, "8-row ring");
  const int64_t rows = p.rs.m_rows;
  if (rows <= 1) launch_qmvp_ring<F, 1, true>(p, stream);
  else if (rows <= 2) launch_qmvp_ring<F, 2, true>(p, stream);
  else if (rows <= 4) launch_qmvp_ring<F, 4, true>(p, stream);
  else launch_qmvp_ring<F, 8, true>(p, stream);
}
// Raw rows, single routed rows (direct items): the warp walk on the deep ring where every warp
// gets a unit's chunks (p.warp_walk, as run_packed sets it), else the shallow ring's CTA walk.
template <class F>
void run_qmvp_raw_routed(const QmvpParams& p, cudaStream_t stream) {
  if (p.warp_walk) launch_qmvp_ring<F, 1, false, true>(p, stream);
  else launch_qmvp_ring<F, 1, false, false, 2>(p, stream);
}
#define LMK_QMV_INSTANTIATE(F)                                    \
  template void run_qmv<F>(const QmvParams&, cudaStream_t);      \
  template void run_qmvp<F>(const QmvpParams&, cudaStream_t);
// The raw GGML rows of format F on the ring kernel (qmv_raw_legacy.cu / qmv_raw_kquant.cu).
#define LMK_QMV_RAW_INSTANTIATE(F)                                                  \
  template void run_qmvp_raw<FGgmlRaw<F>>(const QmvpParams&, cudaStream_t);        \
  template void run_qmvp_raw_routed<FGgmlRaw<F>>(const QmvpParams&, cudaStream_t);

}  // namespace lmk::cuda::mm
