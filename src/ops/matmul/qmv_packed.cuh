// Quantized mat-vec on packed weights (pack_ggml, layout in packed_layout.h): the decode hot path.
// Same arithmetic as qmv.cuh (int8 mma on x split into four int8 pieces, qmv_accumulate), but the
// packed layout gives every lane its codes as 16-byte words of 512-byte warp loads, so the
// weights go straight from global memory into registers: no shared-memory staging, no 2-byte
// field loads, and registers rather than shared memory bound the bytes in flight.
//
// Work: a CTA owns a 16-row tile of one item (up to MT activation rows); its warps take the
// tile's 256-element chunks round-robin, each warp keeping the next chunk's loads in flight
// while it decodes the current one (across tile boundaries too). Partial sums are reduced
// across warps in shared memory. x pieces (split_x) are read through L1, where every CTA of the
// SM finds them. Deterministic: the summation order depends only on the shapes.
#pragma once
#include "ops/matmul/packed_layout.h"
#include "ops/matmul/qmv.cuh"

namespace lmk::cuda::mm {

struct QmvpParams {
  const uint8_t* w = nullptr;  // packed matrix (packed_layout.h)
  int64_t n = 0, nsb = 0;      // weight rows, 32-element sub-blocks of K
  int64_t tiles = 0, chunks = 0;
  const uint8_t* xq = nullptr;  // split_x records, [m_rows][nsb][kQmvXRecord]
  float* y = nullptr;           // [m_rows][n]
  int64_t m_rows = 0;
  int per_item = 1;  // activation rows per item (<= MT)
};

// 16 bytes the CTA reads once: keep them out of L1 (the x pieces live there).
__device__ __forceinline__ uint4 ld_stream16(const uint8_t* p) {
  uint4 v;
  asm volatile("ld.global.nc.L1::no_allocate.v4.u32 {%0,%1,%2,%3}, [%4];"
               : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
               : "l"(p));
  return v;
}

// One warp's registers for one chunk: both rows' lane words and header words.
template <DType T>
struct QmvpChunk {
  static constexpr int LW = packed::lane_words(T), HW = packed::hdr_words(T);
  uint4 lw[LW / 2];     // load i: words 2i, 2i + 1 of rows g and g + 8
  uint32_t hw[2 * HW];  // header words of row g, then row g + 8

  __device__ __forceinline__ void load(const uint8_t* rec, int lane) {
#pragma unroll
    for (int i = 0; i < LW / 2; ++i) lw[i] = ld_stream16(rec + (i * 32 + lane) * 16);
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

template <class F, int MT>
__global__ void __launch_bounds__(256, 2) qmvp_kernel(const QmvpParams p) {
  static_assert(MT == 1 || MT % 2 == 0, "one mma holds the pieces of two activation rows");
  constexpr int NB = (MT + 1) / 2;
  constexpr int XG = NB == 1 ? 4 : NB == 2 ? 2 : 1;  // sub-blocks per x load group (registers)
  constexpr int64_t R = packed::record_bytes(F::kType);
  using Chunk = QmvpChunk<F::kType>;
  __shared__ float red[8][16][MT];
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, nwarps = int(blockDim.x >> 5);
  const int g = lane >> 2, t = lane & 3, my_m = t >> 1;
  // Units (item, tile), items fastest (checked on the host to fit 32 bits).
  const uint32_t n_items = uint32_t((p.m_rows + p.per_item - 1) / p.per_item);
  const uint32_t total = n_items * uint32_t(p.tiles);
  const int64_t chunks = p.chunks;

  // This warp's sequence: for each unit u = blockIdx.x + i·gridDim.x, chunks warp, warp + nwarps, ...
  uint32_t unit = blockIdx.x;
  int64_t j = warp;
  auto rec_of = [&](uint32_t u, int64_t c) { return p.w + (int64_t(u / n_items) * chunks + c) * R; };
  auto advance = [&](uint32_t& u, int64_t& c) {
    c += nwarps;
    if (c >= chunks) {
      c = warp;
      u += gridDim.x;
    }
  };
  Chunk cur, nxt;
  const bool has_work = unit < total && j < chunks;
  if (has_work) cur.load(rec_of(unit, j), lane);
  asm volatile("griddepcontrol.wait;" ::: "memory");  // x pieces written by split_x

  for (; unit < total; unit += gridDim.x) {
    const uint32_t item = unit % n_items;
    const int64_t n0 = int64_t(unit / n_items) * 16, m0 = int64_t(item) * p.per_item;
    const int count = int(p.m_rows - m0 < p.per_item ? p.m_rows - m0 : p.per_item);
    const uint8_t* xrow[NB];  // x records of activation row 2nb + g / 4 (B) and 2nb + my_m (scales)
    const uint8_t* srow[NB];
#pragma unroll
    for (int nb = 0; nb < NB; ++nb) {
      const int bm = 2 * nb + g / 4, xm = 2 * nb + my_m;
      xrow[nb] = p.xq + (m0 + (bm < count ? bm : 0)) * p.nsb * kQmvXRecord + (g % 4) * 32 + t * 8;
      srow[nb] = p.xq + (m0 + (xm < count ? xm : 0)) * p.nsb * kQmvXRecord + 128;
    }
    float acc[NB][2] = {};
    for (; j < chunks; j += nwarps) {
      // Prefetch the warp's next chunk (possibly of its next unit) before decoding this one.
      uint32_t un = unit;
      int64_t jn = j;
      advance(un, jn);
      if (un < total) nxt.load(rec_of(un, jn), lane);
      uint32_t L0[Chunk::LW], L1[Chunk::LW];
      cur.row_words(0, L0);
      cur.row_words(1, L1);
      const uint32_t* H0 = cur.hw;
      const uint32_t* H1 = cur.hw + Chunk::HW;
      // x of XG sub-blocks at a time, loaded together (unconditionally: the partial last chunk
      // re-reads the row's last record) so their latency is paid once per group, not per mma.
#pragma unroll
      for (int s0 = 0; s0 < 8; s0 += XG) {
        uint2 b[XG][NB];
        float4 xs[XG][NB];
#pragma unroll
        for (int q = 0; q < XG; ++q) {
          const int64_t sb = j * 8 + s0 + q < p.nsb ? j * 8 + s0 + q : p.nsb - 1;
#pragma unroll
          for (int nb = 0; nb < NB; ++nb) {
            if (2 * nb >= count) continue;  // uniform
            b[q][nb] = __ldg(reinterpret_cast<const uint2*>(xrow[nb] + sb * kQmvXRecord));
            xs[q][nb] = __ldg(reinterpret_cast<const float4*>(srow[nb] + sb * kQmvXRecord));
          }
        }
#pragma unroll
        for (int q = 0; q < XG; ++q) {
          const int s = s0 + q;
          if (j * 8 + s < p.nsb) {  // uniform: the partial last chunk of a 32-element format
            Dec8 d0, d1;
            F::codes8(F::packed(L0, H0, s, t), s, d0);
            F::codes8(F::packed(L1, H1, s, t), s, d1);
#pragma unroll
            for (int nb = 0; nb < NB; ++nb)
              if (2 * nb + g / 4 >= count) b[q][nb] = make_uint2(0u, 0u);  // B columns past the item's rows
            qmv_accumulate<F>(acc, d0, d1, b[q], xs[q], t, count);
          }
        }
      }
      cur = nxt;
    }
    j = warp;  // the next unit starts at this warp's first chunk

    // Lanes t and t^1 hold the two piece pairs of activation row t/2: add them, then across warps.
#pragma unroll
    for (int nb = 0; nb < NB; ++nb) {
      acc[nb][0] += __shfl_xor_sync(0xffffffffu, acc[nb][0], 1);
      acc[nb][1] += __shfl_xor_sync(0xffffffffu, acc[nb][1], 1);
      const int m = 2 * nb + my_m;
      if ((t & 1) == 0 && m < MT) {
        red[warp][g][m] = acc[nb][0];
        red[warp][g + 8][m] = acc[nb][1];
      }
    }
    __syncthreads();
    for (int i = tid; i < 16 * MT; i += int(blockDim.x)) {
      const int r = i / MT, m = i % MT;
      float sum = 0.0f;
      for (int w = 0; w < nwarps; ++w) sum += red[w][r][m];
      if (m < count && n0 + r < p.n) p.y[(m0 + m) * p.n + n0 + r] = sum;
    }
    __syncthreads();
  }
}

template <class F, int MT>
void launch_qmvp_mt(const QmvpParams& p, cudaStream_t stream) {
  const int64_t n_items = (p.m_rows + p.per_item - 1) / p.per_item;
  const int64_t work = n_items * p.tiles;
  if (work <= 0) return;
  if (work > int64_t(INT32_MAX))
    LMK_THROW(Unsupported, "quantized mat-vec: ", work, " (item, row tile) pairs exceed the supported 2^31");
  auto kernel = qmvp_kernel<F, MT>;
  const int warps = int(std::min<int64_t>(8, p.chunks));
  const int64_t cap = int64_t(max_active_blocks(reinterpret_cast<const void*>(kernel), 32 * warps, 0)) * sm_count();
  cudaLaunchConfig_t cfg = {};
  cfg.gridDim = dim3(unsigned(work < cap ? work : cap));
  cfg.blockDim = dim3(unsigned(32 * warps));
  cfg.stream = stream;
  cudaLaunchAttribute attr[1];
  attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attr[0].val.programmaticStreamSerializationAllowed = 1;
  cfg.attrs = attr;
  cfg.numAttrs = 1;
  LMK_CUDA_CHECK(cudaLaunchKernelEx(&cfg, kernel, p));
}

// Items of up to 8 activation rows (p.per_item); p.xq must hold the x pieces (split_x).
template <class F>
void launch_qmvp(const QmvpParams& p, cudaStream_t stream) {
  const int64_t rows = std::min<int64_t>(p.m_rows, p.per_item);
  if (rows <= 1) launch_qmvp_mt<F, 1>(p, stream);
  else if (rows <= 2) launch_qmvp_mt<F, 2>(p, stream);
  else if (rows <= 4) launch_qmvp_mt<F, 4>(p, stream);
  else launch_qmvp_mt<F, 8>(p, stream);
}

}  // namespace lmk::cuda::mm
