// Tensor-core mat-vec for MLX affine weights (bits 4, 6, 8), items of up to 8 activation rows.
//
// One m16n8k16 bf16 MMA multiplies 16 weight rows (A: exact integer codes) by 16 k values of
// up to 8 activation rows (B: each activation split into two bf16 terms, hi + lo, which carry
// 16 significant bits). Products are summed in f32 per group, then the group's scale and bias
// are applied in f32: y += s * Σ q x + b * Σ x (Σ x per group precomputed in f64, rounded once).
//
// Weight traffic: lane (g, t) of a warp loads unit u0 + t (16 bytes; 24 bytes = 32 codes for
// 6-bit) of weight rows g and g + 8 of each of its two 16-row tiles (4 x LDG.128 per round of 4
// units; 12 x LDG.64 for 6-bit), several rounds in flight. A 4x4 transpose inside each lane quad
// then gives lane t the t-th quarter of every unit (one u32 word; a 48-bit piece for 6-bit), so
// the 16 k values of one MMA all come from one unit — one group — and the per-group scaling
// stays exact. The MMA's k order is a permutation of the unit's codes; the activations are
// staged in shared memory in the same permuted order (pair i of a lane = codes (i, i+kPairs)).
//
// Block: 4 warps x 32 weight rows = 128 rows, over a slice of K. The ks blocks of a thread-block
// cluster split K and add their partial sums through distributed shared memory (fixed order,
// deterministic). ks depends on (N, K) only, so every item of a launch computes the same sums.
#include "ops/affine/mv.cuh"

namespace lmk::cuda::affine {

namespace {

template <int Bits>
struct MvTraits : MvUnit<Bits> {
  static constexpr int kLaneCodes = MvUnit<Bits>::kUnitCodes / 4;  // codes of one lane per unit
  static constexpr int kMmas = MvUnit<Bits>::kUnitCodes / 16;      // m16n8k16 MMAs per unit
};

// Lane quad (lanes 4g .. 4g+3) transposes a 4x4 matrix of words: on entry lane t holds row t,
// on exit lane t holds column t (v[j] = word t of lane j's row).
__device__ __forceinline__ void quad_transpose(uint32_t (&v)[4], int t) {
  const bool b1 = (t & 2) != 0;
  uint32_t s0 = b1 ? v[0] : v[2], s1 = b1 ? v[1] : v[3];
  uint32_t r0 = __shfl_xor_sync(0xffffffffu, s0, 2), r1 = __shfl_xor_sync(0xffffffffu, s1, 2);
  if (b1) { v[0] = r0; v[1] = r1; } else { v[2] = r0; v[3] = r1; }
  const bool b0 = (t & 1) != 0;
  s0 = b0 ? v[0] : v[1];
  s1 = b0 ? v[2] : v[3];
  r0 = __shfl_xor_sync(0xffffffffu, s0, 1);
  r1 = __shfl_xor_sync(0xffffffffu, s1, 1);
  if (b0) { v[0] = r0; v[2] = r1; } else { v[1] = r0; v[3] = r1; }
}

template <int Bits, typename ST>
__global__ void __launch_bounds__(mv::kThreads) affine_mv_kernel(const Operands o, const MvPlan plan, const Items it) {
  using Tr = MvTraits<Bits>;
  constexpr int kUC = Tr::kUnitCodes, kUW = Tr::kUnitWords, kLC = Tr::kLaneCodes, kP = Tr::kPairs, kM = Tr::kMmas;
  constexpr int kDepth = Tr::kDepth;
  extern __shared__ __align__(16) uint32_t smem[];
  __shared__ float red[mv::kRowsPerBlock * mv::kMaxRows];
  __shared__ int s_xrow[mv::kMaxRows], s_yrow[mv::kMaxRows];

  const int tid = int(threadIdx.x), lane = tid & 31, warp = tid >> 5, g = lane >> 2, t = lane & 3;
  const int rank = int(blockIdx.x);  // the grid's x extent is one cluster
  const int item = it.item_base + int(blockIdx.z);
  const int row0 = int(blockIdx.y) * mv::kRowsPerBlock;

  const ItemHeader hdr = mv_item_begin(o, it, item, row0, s_yrow, s_xrow);
  if (hdr.count == 0) return;  // uniform over the cluster
  const int count = hdr.count, cmax = plan.cmax, es = plan.span_units;
  const MvLane<ST> L(o, hdr.expert, row0, warp, g);
  const ST* sexp = L.sexp;
  const ST* bexp = L.bexp;

  uint32_t* xf = smem;  // [win_units][2 terms][cmax][4 lanes t][kP]
  float* sx = reinterpret_cast<float*>(smem + plan.win_units * 2 * cmax * 4 * kP);  // [win_units / es][cmax]
  const int u_begin = rank * plan.slice_units;
  const int u_end = min(u_begin + plan.slice_units, plan.units);
  float acc[2][4] = {};

  // buf[rt][row a/b][word] <- unit ru + t of the four rows (zeros past the window or N).
  auto load_round = [&](uint32_t (&buf)[2][2][kUW], int ru, int we) {
    L.template load_unit<kUW, false>(buf, ru + t, ru + t < we);
  };

  // Activations of units [wu, wu + nunits) as B fragments (hi and lo terms) and Σx per span.
  auto stage = [&](int wu, int nunits) {
    const int work = nunits * count * 4;
#pragma unroll 2
    for (int wi = tid; wi < work; wi += mv::kThreads) {
      const int tt = wi & 3, rest = wi >> 2, tok = rest % count, ur = rest / count;
      float v[kLC];
      load_x_vec<kLC>(o.x, o.x_dtype, int64_t(s_xrow[tok]) * o.K + int64_t(wu + ur) * kUC + tt * kLC, v);
      uint32_t hi[kP], lo[kP];
#pragma unroll
      for (int i = 0; i < kP; ++i) {
        const __nv_bfloat162 h = __floats2bfloat162_rn(v[i], v[i + kP]);
        hi[i] = bf162_bits(h);
        lo[i] = pack_bf16(v[i] - __low2float(h), v[i + kP] - __high2float(h));
      }
      uint32_t* dhi = xf + (((ur * 2 + 0) * cmax + tok) * 4 + tt) * kP;
      uint32_t* dlo = xf + (((ur * 2 + 1) * cmax + tok) * 4 + tt) * kP;
      if constexpr (kP == 4) {
        *reinterpret_cast<uint4*>(dhi) = make_uint4(hi[0], hi[1], hi[2], hi[3]);
        *reinterpret_cast<uint4*>(dlo) = make_uint4(lo[0], lo[1], lo[2], lo[3]);
      } else {
        *reinterpret_cast<uint2*>(dhi) = make_uint2(hi[0], hi[1]);
        *reinterpret_cast<uint2*>(dlo) = make_uint2(lo[0], lo[1]);
      }
    }
    // Σx per span (32 .. 128 values, 8 at a time), summed in f64 and rounded once.
    const int nspans = nunits / es, span_codes = es * kUC;
    for (int wi = tid; wi < nspans * count; wi += mv::kThreads) {
      const int tok = wi % count, sp = wi / count;
      const int64_t base = int64_t(s_xrow[tok]) * o.K + int64_t(wu + sp * es) * kUC;
      double s = 0;
#pragma unroll 4
      for (int c = 0; c < span_codes; c += 8) {
        float v[8];
        load_x_vec<8>(o.x, o.x_dtype, base + c, v);
#pragma unroll
        for (int i = 0; i < 8; ++i) s += double(v[i]);
      }
      sx[sp * cmax + tok] = float(s);
    }
  };

  // One round: units ru .. ru+3 of both row tiles.
  auto process = [&](const uint32_t (&buf)[2][2][kUW], int ru, int wu, int we) {
    // q[rt][ab][j]: quarter t of unit ru + j (word; 6-bit: low 32 bits, qh: bits 32..47).
    uint32_t q[2][2][4], qh[2][2][4];
#pragma unroll
    for (int rt = 0; rt < 2; ++rt) {
#pragma unroll
      for (int ab = 0; ab < 2; ++ab) {
        const uint32_t* v = buf[rt][ab];
        if constexpr (Bits == 6) {  // 24 bytes -> four 48-bit pieces (8 codes each)
          q[rt][ab][0] = v[0];
          qh[rt][ab][0] = v[1] & 0xffffu;
          q[rt][ab][1] = __funnelshift_r(v[1], v[2], 16);
          qh[rt][ab][1] = v[2] >> 16;
          q[rt][ab][2] = v[3];
          qh[rt][ab][2] = v[4] & 0xffffu;
          q[rt][ab][3] = __funnelshift_r(v[4], v[5], 16);
          qh[rt][ab][3] = v[5] >> 16;
          quad_transpose(qh[rt][ab], t);
        } else {
#pragma unroll
          for (int i = 0; i < 4; ++i) q[rt][ab][i] = v[i], qh[rt][ab][i] = 0;
        }
        quad_transpose(q[rt][ab], t);
      }
    }
    // Scales and biases of the current span (rows a, a+8 of both tiles), loaded one span ahead.
    float sc[2][4];
    auto load_scales = [&](int us) {
      const int64_t grp = int64_t(us) * kUC / o.gs;
#pragma unroll
      for (int rt = 0; rt < 2; ++rt) {
        const int64_t ia = int64_t(L.rowa[rt]) * o.groups + grp, ib = ia + 8 * o.groups;
        sc[rt][0] = L.oka[rt] ? to_f32(__ldg(sexp + ia)) : 0.0f;
        sc[rt][1] = L.oka[rt] ? to_f32(__ldg(bexp + ia)) : 0.0f;
        sc[rt][2] = L.okb[rt] ? to_f32(__ldg(sexp + ib)) : 0.0f;
        sc[rt][3] = L.okb[rt] ? to_f32(__ldg(bexp + ib)) : 0.0f;
      }
    };
    load_scales(ru);
    float d[2][4] = {};
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const int u = ru + j;
      if (u >= we) break;  // uniform; spans are whole, so a partial round ends on a span boundary
      uint32_t bh[kP], bl[kP];
      if (g < count) {
        const uint32_t* shi = xf + ((((u - wu) * 2 + 0) * cmax + g) * 4 + t) * kP;
        const uint32_t* slo = xf + ((((u - wu) * 2 + 1) * cmax + g) * 4 + t) * kP;
        if constexpr (kP == 4) {
          const uint4 a = *reinterpret_cast<const uint4*>(shi), b = *reinterpret_cast<const uint4*>(slo);
          bh[0] = a.x; bh[1] = a.y; bh[2] = a.z; bh[3] = a.w;
          bl[0] = b.x; bl[1] = b.y; bl[2] = b.z; bl[3] = b.w;
        } else {
          const uint2 a = *reinterpret_cast<const uint2*>(shi), b = *reinterpret_cast<const uint2*>(slo);
          bh[0] = a.x; bh[1] = a.y;
          bl[0] = b.x; bl[1] = b.y;
        }
      } else {
#pragma unroll
        for (int i = 0; i < kP; ++i) bh[i] = bl[i] = 0;
      }
#pragma unroll
      for (int rt = 0; rt < 2; ++rt) {
        uint32_t qa[kP], qb[kP];
        word_pairs<Bits>(q[rt][0][j], qh[rt][0][j], qa);
        word_pairs<Bits>(q[rt][1][j], qh[rt][1][j], qb);
#pragma unroll
        for (int h = 0; h < kM; ++h) {
          mma_bf16(d[rt], qa[2 * h], qb[2 * h], qa[2 * h + 1], qb[2 * h + 1], bh[2 * h], bh[2 * h + 1]);
          mma_bf16(d[rt], qa[2 * h], qb[2 * h], qa[2 * h + 1], qb[2 * h + 1], bl[2 * h], bl[2 * h + 1]);
        }
      }
      if (((j + 1) & (es - 1)) == 0) {  // last unit of a span: scale and bias, in f32
        const int sp = (u + 1 - es - wu) / es;
        const float sx0 = 2 * t < count ? sx[sp * cmax + 2 * t] : 0.0f;
        const float sx1 = 2 * t + 1 < count ? sx[sp * cmax + 2 * t + 1] : 0.0f;
#pragma unroll
        for (int rt = 0; rt < 2; ++rt) {
          acc[rt][0] = fmaf(sc[rt][0], d[rt][0], fmaf(sc[rt][1], sx0, acc[rt][0]));
          acc[rt][1] = fmaf(sc[rt][0], d[rt][1], fmaf(sc[rt][1], sx1, acc[rt][1]));
          acc[rt][2] = fmaf(sc[rt][2], d[rt][2], fmaf(sc[rt][3], sx0, acc[rt][2]));
          acc[rt][3] = fmaf(sc[rt][2], d[rt][3], fmaf(sc[rt][3], sx1, acc[rt][3]));
#pragma unroll
          for (int i = 0; i < 4; ++i) d[rt][i] = 0.0f;
        }
        if (j < 3 && u + 1 < we) load_scales(u + 1);
      }
    }
  };

  using Round = uint32_t[2][2][kUW];
  mv_pipeline<kDepth, Round>(plan, u_begin, u_end, load_round, [&](int wu, int we) {
      stage(wu, we - wu);
    }, process);

  // Partial sums of this rank -> shared memory, then the cluster's sum (mv_cluster_store).
#pragma unroll
  for (int rt = 0; rt < 2; ++rt) {
    const int rl = warp * 32 + rt * 16 + g;
    red[rl * 8 + 2 * t] = acc[rt][0];
    red[rl * 8 + 2 * t + 1] = acc[rt][1];
    red[(rl + 8) * 8 + 2 * t] = acc[rt][2];
    red[(rl + 8) * 8 + 2 * t + 1] = acc[rt][3];
  }
  mv_cluster_store(o, plan, red, s_yrow, count, row0);
}

template <int Bits, typename ST>
void launch_typed(const Operands& o, const MvPlan& plan, Items items, int n_items, cudaStream_t s) {
  auto kernel = affine_mv_kernel<Bits, ST>;
  static const bool configured = [&] {
    LMK_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, 96 * 1024));
    return true;
  }();
  (void)configured;
  launch_mv_clusters(kernel, o, plan, items, n_items, s);
}

template <int Bits>
void launch_bits(const Operands& o, const MvPlan& plan, const Items& items, int n_items, cudaStream_t s) {
  visit_scale_type(o.s_dtype, [&](auto st) { launch_typed<Bits, decltype(st)>(o, plan, items, n_items, s); });
}

}  // namespace

MvPlan mv_plan(const Operands& o, int cmax) {
  // (Four or eight blocks per SM with clusters of 16 measured the same, H200 4-bit 1x4096x14336
  // 54 us: this kernel is issue-bound on its decode, about 900 instructions per 2 KB of codes.)
  MvPlan p = mv_plan_common(o, cmax);
  const int uc = o.bits == 6 ? 32 : 128 / o.bits, pairs = uc / 8;
  p.span_units = min(o.gs / uc, 4);
  p.smem = size_t(p.win_units) * 2 * cmax * 4 * pairs * 4 + size_t(p.win_units / p.span_units) * cmax * 4;
  return p;
}

void launch_mv(const Operands& o, const MvPlan& plan, Items items, int n_items, cudaStream_t s) {
  if (n_items <= 0) return;
  if (o.bits == 4) launch_bits<4>(o, plan, items, n_items, s);
  else if (o.bits == 6) launch_bits<6>(o, plan, items, n_items, s);
  else launch_bits<8>(o, plan, items, n_items, s);
}

}  // namespace lmk::cuda::affine
