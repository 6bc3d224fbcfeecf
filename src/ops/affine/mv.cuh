// Shared pieces of the two affine mat-vec kernels (matvec.cu: items of up to 8 rows, routed or
// not; matvec_rows.cu: plain rows, up to 4): 16-byte units of MLX codes, their exact bf16 code
// pairs, activation loads, the cluster's sum of K-slices and the cluster launch.
#pragma once
#include <cooperative_groups.h>

#include "ops/affine/kernels.cuh"

namespace lmk::cuda::affine {

// A unit is what one lane loads from one weight row: 16 bytes (24 for 6-bit).
template <int Bits>
struct MvUnit {
  static constexpr int kUnitCodes = Bits == 6 ? 32 : 128 / Bits;  // codes per unit: 32, 32, 16
  static constexpr int kUnitWords = kUnitCodes * Bits / 32;       // 4, 6, 4 (16, 24, 16 bytes)
  static constexpr int kPairs = kUnitCodes / 8;                   // bf16x2 code pairs per 8 (4) codes
  static constexpr int kDepth = Bits == 6 ? 2 : 3;                // rounds of weight loads in flight
};

// The kPairs A registers of 8 codes (4 for 8-bit): pair i = (code i, code i + kPairs) as exact
// bf16. 128 + c (c < 128) is a bf16 whose mantissa is c, so OR-ing the code under 0x4300
// (128.0) and subtracting 128 is exact; 8-bit codes are rebuilt from their nibbles as
// 16 * hi + lo (<= 255, exact in bf16's 8-bit significand). w is their word; for 6-bit, w and h
// hold the 48-bit piece (bits 0..31, 32..47).
template <int Bits>
__device__ __forceinline__ void word_pairs(uint32_t w, uint32_t h, uint32_t (&out)[MvUnit<Bits>::kPairs]) {
  const __nv_bfloat162 k128 = bits_bf162(0x43004300u);
  if constexpr (Bits == 6) {
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const uint32_t c0 = (w >> (6 * i)) & 63u;  // code i: bits 6i .. 6i+5
      const int b = 24 + 6 * i;                   // code i + 4
      const uint32_t c1 = (b + 6 <= 32 ? (w >> b) : b >= 32 ? (h >> (b - 32)) : __funnelshift_r(w, h, b)) & 63u;
      out[i] = bf162_bits(__hsub2(bits_bf162(c0 | (c1 << 16) | 0x43004300u), k128));
    }
  } else if constexpr (Bits == 4) {
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const uint32_t m = ((w >> (4 * i)) & 0x000F000Fu) | 0x43004300u;
      out[i] = bf162_bits(__hsub2(bits_bf162(m), k128));
    }
  } else {
    const __nv_bfloat162 k16 = bits_bf162(0x41804180u);  // 16.0
#pragma unroll
    for (int i = 0; i < 2; ++i) {
      const uint32_t lo = ((w >> (8 * i)) & 0x000F000Fu) | 0x43004300u;
      const uint32_t hi = ((w >> (8 * i + 4)) & 0x000F000Fu) | 0x43004300u;
      out[i] = bf162_bits(__hfma2(__hsub2(bits_bf162(hi), k128), k16, __hsub2(bits_bf162(lo), k128)));
    }
  }
}

// N consecutive activations from element i (16-byte aligned for f32 with N = 4 or 8, and
// 8/16-byte aligned for 16-bit types), through the read-only path.
template <int N>
__device__ __forceinline__ void load_x_vec(const void* x, DType t, int64_t i, float (&v)[N]) {
  if (t == DType::f32) {
    const float4* p = reinterpret_cast<const float4*>(static_cast<const float*>(x) + i);
#pragma unroll
    for (int j = 0; j < N / 4; ++j) {
      const float4 q = __ldg(p + j);
      v[4 * j] = q.x;
      v[4 * j + 1] = q.y;
      v[4 * j + 2] = q.z;
      v[4 * j + 3] = q.w;
    }
    return;
  }
  const uint16_t* p16 = static_cast<const uint16_t*>(x) + i;
  uint32_t words[N / 2];
  if constexpr (N == 8) {
    const uint4 q = __ldg(reinterpret_cast<const uint4*>(p16));
    words[0] = q.x; words[1] = q.y; words[2] = q.z; words[3] = q.w;
  } else {
    const uint2 q = __ldg(reinterpret_cast<const uint2*>(p16));
    words[0] = q.x; words[1] = q.y;
  }
  const bool bf = t == DType::bf16;
#pragma unroll
  for (int j = 0; j < N / 2; ++j) {
    const uint16_t lo = uint16_t(words[j] & 0xffffu), hi = uint16_t(words[j] >> 16);
    v[2 * j] = bf ? __uint_as_float(uint32_t(lo) << 16) : __half2float(__ushort_as_half(lo));
    v[2 * j + 1] = bf ? __uint_as_float(uint32_t(hi) << 16) : __half2float(__ushort_as_half(hi));
  }
}

// Start of an item's block: the item's header (count 0: nothing to do, including an invalid routed
// id, whose output row rank 0 of the cluster zeroes); threads < count fill s_yrow / s_xrow
// (visible after the next barrier).
__device__ __forceinline__ ItemHeader mv_item_begin(const Operands& o, const Items& it, int item, int row0,
                                                    int* s_yrow, int* s_xrow) {
  const ItemHeader hdr = item_header(it, item);
  if (hdr.count == 0) return hdr;  // uniform over the cluster
  if (hdr.expert < 0) {
    if (blockIdx.x == 0) invalid_row(o, it, item_yrow(it, item, 0), row0, min(row0 + mv::kRowsPerBlock, o.N));
    return {0, hdr.expert};
  }
  const int tid = int(threadIdx.x);
  if (tid < hdr.count) {
    const int yr = item_yrow(it, item, tid);
    s_yrow[tid] = yr;
    s_xrow[tid] = item_xrow(it, yr);
  }
  return hdr;
}

// A lane's weight rows in the block: a = row0 + 32 warp + 16 rt + g and b = a + 8 of its two
// 16-row tiles rt, on the item's expert, with that expert's scales and biases.
template <typename ST>
struct MvLane {
  int rowa[2];
  bool oka[2], okb[2];
  const uint8_t* pa[2];
  const uint8_t* pb[2];
  const ST* sexp;
  const ST* bexp;

  __device__ __forceinline__ MvLane(const Operands& o, int expert, int row0, int warp, int g) {
    const uint8_t* wexp = o.w + int64_t(expert) * o.expert_bytes;
    sexp = static_cast<const ST*>(o.scales) + int64_t(expert) * o.expert_groups;
    bexp = static_cast<const ST*>(o.biases) + int64_t(expert) * o.expert_groups;
#pragma unroll
    for (int rt = 0; rt < 2; ++rt) {
      rowa[rt] = row0 + warp * 32 + rt * 16 + g;
      oka[rt] = rowa[rt] < o.N;
      okb[rt] = rowa[rt] + 8 < o.N;
      pa[rt] = wexp + int64_t(rowa[rt]) * o.row_bytes;
      pb[rt] = pa[rt] + 8 * o.row_bytes;
    }
  }

  // buf[rt][row a/b][word] <- unit u of the four rows (zeros unless uok, and past N). InOrder
  // keeps 16-byte loads where they are written (prefetches the compiler must not sink).
  template <int kUW, bool InOrder>
  __device__ __forceinline__ void load_unit(uint32_t (&buf)[2][2][kUW], int u, bool uok) const {
#pragma unroll
    for (int rt = 0; rt < 2; ++rt) {
#pragma unroll
      for (int ab = 0; ab < 2; ++ab) {
        const bool ok = uok && (ab ? okb[rt] : oka[rt]);
        const uint8_t* p = (ab ? pb[rt] : pa[rt]) + int64_t(u) * (kUW * 4);
        if constexpr (kUW == 4) {
          const uint4 v = ok ? ldg_stream16<InOrder>(p) : make_uint4(0, 0, 0, 0);
          buf[rt][ab][0] = v.x; buf[rt][ab][1] = v.y; buf[rt][ab][2] = v.z; buf[rt][ab][3] = v.w;
        } else {
#pragma unroll
          for (int i = 0; i < kUW / 2; ++i) {
            const uint2 v = ok ? ldg_stream8(p + 8 * i) : make_uint2(0, 0);
            buf[rt][ab][2 * i] = v.x;
            buf[rt][ab][2 * i + 1] = v.y;
          }
        }
      }
    }
  }
};

// The software pipeline of both kernels over a block's K slice [u_begin, u_end) of units: per
// window of plan.win_units, kDepth rounds of 4 units in flight. load(buf, ru, we) issues a
// round's loads, stage(wu, we) stages the window's activations between two barriers (the first
// also publishes s_xrow), process(buf, ru, wu, we) consumes a round.
template <int kDepth, typename Buf, typename Load, typename Stage, typename Process>
__device__ __forceinline__ void mv_pipeline(const MvPlan& plan, int u_begin, int u_end, Load&& load, Stage&& stage,
                                            Process&& process) {
  for (int wu = u_begin; wu < u_end; wu += plan.win_units) {
    const int we = min(wu + plan.win_units, u_end);
    Buf buf[kDepth];
#pragma unroll
    for (int dd = 0; dd < kDepth; ++dd) load(buf[dd], wu + 4 * dd, we);
    __syncthreads();  // the previous window's fragments are no longer read (and s_xrow is visible)
    stage(wu, we);
    __syncthreads();
    for (int ru = wu; ru < we; ru += 4 * kDepth) {
#pragma unroll
      for (int dd = 0; dd < kDepth; ++dd) {
        const int r = ru + 4 * dd;
        if (r < we) {
          process(buf[dd], r, wu, we);
          load(buf[dd], r + 4 * kDepth, we);
        }
      }
    }
  }
}

// The end of both kernels: red[row * 8 + tok] holds this block's partial sums of its 128 rows;
// rank q of the cluster adds rows [q*per, (q+1)*per) of every rank's partials (distributed
// shared memory, ranks in order: deterministic) and stores them to y rows s_yrow[tok].
__device__ __forceinline__ void mv_cluster_store(const Operands& o, const MvPlan& plan, float* red, const int* s_yrow,
                                                 int count, int row0) {
  namespace cg = cooperative_groups;
  cg::cluster_group cluster = cg::this_cluster();
  cluster.sync();
  const int rank = int(blockIdx.x), per = mv::kRowsPerBlock / plan.ks;
  for (int i = int(threadIdx.x); i < per * count; i += mv::kThreads) {
    const int rl = rank * per + i % per, tok = i / per, row = row0 + rl;
    if (row < o.N) {
      float sum = 0.0f;
      for (int q = 0; q < plan.ks; ++q) sum += cluster.map_shared_rank(red, q)[rl * 8 + tok];
      store_f(o.y, int64_t(s_yrow[tok]) * o.N + row, sum, o.y_dtype);
    }
  }
  cluster.sync();  // peers may still read this block's partials
}

// Grid (ks, row blocks, items), clusters of ks blocks along x; items past 65535 in further launches.
template <typename Kernel>
void launch_mv_clusters(Kernel kernel, const Operands& o, const MvPlan& plan, Items items, int n_items, cudaStream_t s) {
  for (int base = 0; base < n_items; base += 65535) {
    items.item_base = base;
    cudaLaunchConfig_t cfg = {};
    cfg.gridDim = dim3(unsigned(plan.ks), unsigned(plan.row_blocks), unsigned(min(65535, n_items - base)));
    cfg.blockDim = dim3(mv::kThreads);
    cfg.dynamicSmemBytes = plan.smem;
    cfg.stream = s;
    cudaLaunchAttribute attr[1];
    attr[0].id = cudaLaunchAttributeClusterDimension;
    attr[0].val.clusterDim.x = unsigned(plan.ks);
    attr[0].val.clusterDim.y = 1;
    attr[0].val.clusterDim.z = 1;
    cfg.attrs = attr;
    cfg.numAttrs = 1;
    LMK_CUDA_CHECK(cudaLaunchKernelEx(&cfg, kernel, o, plan, items));
  }
}

// ---- host side ------------------------------------------------------------------------------------
// The plan both kernels share: units per row, 128-row blocks, and K split over a cluster (at
// most 8 ranks) until there are about two blocks per SM, keeping >= 8 units (2 rounds) per rank;
// it depends on (N, K, bits) only, so every item of a launch computes the same sums. Windows of
// kWinCodes staged activations. Each kernel adds its own fields and shared-memory size.
inline MvPlan mv_plan_common(const Operands& o, int cmax) {
  MvPlan p;
  const int uc = o.bits == 6 ? 32 : 128 / o.bits;
  p.units = o.K / uc;
  p.row_blocks = int(ceil_div(o.N, mv::kRowsPerBlock));
  const int sms = sm_count();
  int ks = 1;
  while (ks < 8 && p.row_blocks * ks < 2 * sms && p.units / (ks * 2) >= 8) ks *= 2;
  p.ks = ks;
  p.slice_units = int(ceil_div(ceil_div(p.units, ks), 4) * 4);
  p.win_units = min(mv::kWinCodes / uc, p.slice_units);
  p.cmax = cmax;
  return p;
}

// fn(ST{}) for the scales' element type.
template <typename Fn>
void visit_scale_type(DType t, Fn&& fn) {
  switch (t) {
    case DType::f32: return fn(float{});
    case DType::f16: return fn(__half{});
    default: return fn(__nv_bfloat16{});
  }
}

}  // namespace lmk::cuda::affine
