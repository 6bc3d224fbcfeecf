// Tensor-core mat-vec for MLX affine weights (bits 4, 6, 8) on plain activation rows, up to 4,
// reading MLX's row-major codes as they are (pack_affine's packed kernels are faster still).
// cuda.cu takes it for 1..4 rows; routed rows and 5..8 rows take matvec.cu's kernel.
//
// One m16n8k16 bf16 MMA multiplies 16 weight rows (A: exact integer codes) by 16 k values
// (B: activations split into two bf16 terms, hi + lo, 16 significant bits; products summed in
// f32, then the group's scale and bias applied in f32: y += s * Σ q x + b * Σ x, with Σ x per
// 16-byte unit precomputed in f64 and rounded once). Accuracy: the f32 row of the spec (1e-5).
//
// Weight traffic: lane (g, t) of a warp loads unit u0 + t (16 bytes = 32 codes; 24 bytes for
// 6-bit, 16 codes for 8-bit) of weight rows g and g + 8 of its two 16-row tiles, several rounds
// in flight: a lane quad reads 64 contiguous bytes of each row per round. Unlike matvec.cu, a
// lane keeps its own unit (no quad transposes): the 16 k values of one MMA then come from four
// units, which may lie in different groups, so B is block-diagonal: column j of B holds
// activation row 2p + j / 4 only at the k slots of lane t = j % 4, and D[r][j] is the sum over
// unit u0 + j % 4 alone. Each unit is inside one group, so its scale applies after the MMAs of
// the round. Lanes (g, t) with t == g % 4 carry the nonzero B fragments; a pair of activation
// rows costs one MMA per term, so this layout pays for itself up to 4 rows (H200, 4-bit
// 4096x14336: 1 / 2 / 4 rows 1.65x / 1.73x / 1.23x faster than matvec.cu, 8 rows 1.5x slower;
// routed rows, in short items, 1.1-1.5x slower).
// The activations are staged in shared memory as those fragments, in the MMA's k order (pair i of
// a piece = codes (i, i + pairs)), XOR-swizzled so that the eight lanes' 16-byte reads of one MMA
// hit distinct banks. The window's scales and biases are staged beside them, a warp per row with
// 8 independent loads per lane before any store (loaded per round instead, their DRAM latency
// was exposed once per round; a load-then-store loop exposed it once per element).
//
// Block: 4 warps x 32 weight rows = 128 rows, over a slice of K; the ks blocks of a cluster split
// K and add their partial sums in a fixed order (mv_cluster_store).
#include <type_traits>

#include "ops/affine/mv.cuh"

namespace lmk::cuda::affine {

namespace {

template <int Bits>
struct RowsTraits : MvUnit<Bits> {
  static constexpr int kPieceCodes = MvUnit<Bits>::kUnitCodes / 4;  // a unit is 4 pieces: a word (4/8-bit) or 48 bits
  static constexpr int kMmas = 2 * MvUnit<Bits>::kPairs;             // m16n8k16 MMAs per unit (per term)
};

constexpr int kMaxSmem = 112 * 1024;  // dynamic shared memory: 4 rows, gs 32, f32 scales: 100 KB

// A staged (scale, bias) pair: both 16-bit values in one word, or two floats for f32 scales.
template <typename ST>
using SbPair = std::conditional_t<sizeof(ST) == 4, float2, uint32_t>;
template <typename ST>
__device__ __forceinline__ SbPair<ST> make_sb(ST s, ST b) {
  if constexpr (sizeof(ST) == 4) return make_float2(s, b);
  else return uint32_t(__builtin_bit_cast(uint16_t, s)) | uint32_t(__builtin_bit_cast(uint16_t, b)) << 16;
}
template <typename ST>
__device__ __forceinline__ float2 read_sb(SbPair<ST> v) {
  if constexpr (sizeof(ST) == 4) return v;
  else
    return make_float2(to_f32(__builtin_bit_cast(ST, uint16_t(v & 0xffffu))),
                       to_f32(__builtin_bit_cast(ST, uint16_t(v >> 16))));
}

// Swizzled index of the B fragment (16 bytes: hi and lo terms of MMA mi) of window unit ur and
// activation row tok: the eight lanes that read one MMA's fragments (units ur & 3 = 0..3, rows of
// both parities) land on eight distinct 16-byte bank groups.
template <int Bits>
__device__ __forceinline__ int frag_index(int ur, int tok, int cmax, int mi) {
  constexpr int kM = RowsTraits<Bits>::kMmas;
  const int swz = kM == 8 ? ((ur & 3) << 1) | (tok & 1) : (ur & 3);
  return (ur * cmax + tok) * kM + (mi ^ swz);
}

// kMaxPairs: pairs of activation rows an item may have (1: items of <= 2 rows; 2: <= 4).
template <int Bits, typename ST, int kMaxPairs>
__global__ void __launch_bounds__(mv::kThreads)
    affine_mv_rows_kernel(const Operands o, const MvPlan plan, const Items it) {
  using Tr = RowsTraits<Bits>;
  constexpr int kUC = Tr::kUnitCodes, kUW = Tr::kUnitWords, kPC = Tr::kPieceCodes, kP = Tr::kPairs, kM = Tr::kMmas;
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
  const int count = hdr.count, cmax = plan.cmax, npairs = (count + 1) >> 1;
  const MvLane<ST> L(o, hdr.expert, row0, warp, g);
  const ST* sexp = L.sexp;
  const ST* bexp = L.bexp;

  uint4* xf = reinterpret_cast<uint4*>(smem);  // [win_units][cmax][kM] B fragments (frag_index)
  float* sx = reinterpret_cast<float*>(xf + plan.win_units * cmax * kM);  // [win_units][cmax] Σx per unit
  // [kRowsPerBlock][plan.sb_stride] (scale, bias) of the window's groups, from group g_first.
  SbPair<ST>* ssb = reinterpret_cast<SbPair<ST>*>(sx + plan.win_units * cmax);
  int g_first = 0;
  const int u_begin = rank * plan.slice_units;
  const int u_end = min(u_begin + plan.slice_units, plan.units);
  // acc[p][rt][ab]: activation row 2p + t / 2, weight row a (g) or b (g + 8) of tile rt, over the
  // units (2t) % 4 and (2t) % 4 + 1 of every round (lane t ^ 1 holds the other two).
  float acc[kMaxPairs][2][2] = {};
  // This lane's B fragments: nonzero only where t == g % 4 (activation row 2p + g / 4).
  const bool b_lane = t == (g & 3);

  // buf[rt][row a/b][word] <- unit ru + t of the four rows (zeros past the window or N).
  auto load_round = [&](uint32_t (&buf)[2][2][kUW], int ru, int we) {
    L.template load_unit<kUW, true>(buf, ru + t, ru + t < we);
  };

  // Activations of units [wu, wu + nunits): B fragments (hi and lo terms) and Σx per unit.
  auto stage = [&](int wu, int nunits) {
    for (int wi = tid; wi < nunits * count; wi += mv::kThreads) {
      const int tok = wi % count, ur = wi / count;
      const int64_t base = int64_t(s_xrow[tok]) * o.K + int64_t(wu + ur) * kUC;
      float v[kUC];
#pragma unroll
      for (int c = 0; c < kUC; c += 8) {
        float q[8];
        load_x_vec<8>(o.x, o.x_dtype, base + c, q);
#pragma unroll
        for (int i = 0; i < 8; ++i) v[c + i] = q[i];
      }
      double s = 0;
#pragma unroll
      for (int i = 0; i < kUC; ++i) s += double(v[i]);
      sx[ur * cmax + tok] = float(s);
#pragma unroll
      for (int mi = 0; mi < kM; ++mi) {
        const int c0 = mi / (kP / 2) * kPC + 2 * (mi % (kP / 2));  // pairs (c0, c0 + kP), (c0 + 1, c0 + 1 + kP)
        const __nv_bfloat162 h0 = __floats2bfloat162_rn(v[c0], v[c0 + kP]);
        const __nv_bfloat162 h1 = __floats2bfloat162_rn(v[c0 + 1], v[c0 + 1 + kP]);
        uint4 f;
        f.x = bf162_bits(h0);
        f.y = bf162_bits(h1);
        f.z = pack_bf16(v[c0] - __low2float(h0), v[c0 + kP] - __high2float(h0));
        f.w = pack_bf16(v[c0 + 1] - __low2float(h1), v[c0 + 1 + kP] - __high2float(h1));
        xf[frag_index<Bits>(ur, tok, cmax, mi)] = f;
      }
    }
  };

  // (scale, bias) of the block's rows for the groups of units [wu, we) (zeros past N).
  auto stage_scales = [&](int wu, int we) {
    g_first = (wu * kUC) >> plan.gs_shift;
    const int ng = ((we * kUC - 1) >> plan.gs_shift) - g_first + 1;
    // Warp w stages rows w, w + 4, ...: its lanes read a row's groups (consecutive 16-bit values),
    // kBatch rows per pass before any store (one memory latency per pass, no divisions).
    constexpr int kBatch = 8;
    for (int r0 = warp; r0 < mv::kRowsPerBlock; r0 += 4 * kBatch) {
      for (int gg = lane; gg < ng; gg += 32) {
        ST sv[kBatch], bv[kBatch];
#pragma unroll
        for (int j = 0; j < kBatch; ++j) {
          const int r = r0 + 4 * j, row = row0 + r;
          const bool ok = r < mv::kRowsPerBlock && row < o.N;
          const int64_t at = int64_t(row) * o.groups + g_first + gg;
          sv[j] = ok ? __ldg(sexp + at) : ST(0.0f);
          bv[j] = ok ? __ldg(bexp + at) : ST(0.0f);
        }
#pragma unroll
        for (int j = 0; j < kBatch; ++j) {
          const int r = r0 + 4 * j;
          if (r < mv::kRowsPerBlock) ssb[r * plan.sb_stride + gg] = make_sb<ST>(sv[j], bv[j]);
        }
      }
    }
  };

  // One round: unit ru + t of the four rows is in this lane's buf.
  auto process = [&](const uint32_t (&buf)[2][2][kUW], int ru, int wu, int we) {
    float d[kMaxPairs][2][4] = {};
    const int ur = ru - wu + t;
    const bool u_ok = ru + t < we;
#pragma unroll
    for (int pc = 0; pc < 4; ++pc) {
      // Piece pc of rows a and b of both tiles as kP code pairs.
      uint32_t qa[2][kP], qb[2][kP];
#pragma unroll
      for (int rt = 0; rt < 2; ++rt) {
#pragma unroll
        for (int ab = 0; ab < 2; ++ab) {
          const uint32_t* v = buf[rt][ab];
          uint32_t w, h = 0;
          if constexpr (Bits == 6) {  // 24 bytes -> four 48-bit pieces
            const int i = 3 * (pc >> 1);
            w = pc & 1 ? __funnelshift_r(v[i + 1], v[i + 2], 16) : v[i];
            h = pc & 1 ? v[i + 2] >> 16 : v[i + 1] & 0xffffu;
          } else {
            w = v[pc];
          }
          word_pairs<Bits>(w, h, ab ? qb[rt] : qa[rt]);
        }
      }
#pragma unroll
      for (int hh = 0; hh < kP / 2; ++hh) {
        const int mi = pc * (kP / 2) + hh;
#pragma unroll
        for (int p = 0; p < kMaxPairs; ++p) {
          if (p < npairs) {
            const int tok = 2 * p + (g >> 2);
            const uint4 f =
                b_lane && u_ok && tok < count ? xf[frag_index<Bits>(ur, tok, cmax, mi)] : make_uint4(0, 0, 0, 0);
#pragma unroll
            for (int rt = 0; rt < 2; ++rt) {
              mma_bf16(d[p][rt], qa[rt][2 * hh], qb[rt][2 * hh], qa[rt][2 * hh + 1], qb[rt][2 * hh + 1], f.x, f.y);
              mma_bf16(d[p][rt], qa[rt][2 * hh], qb[rt][2 * hh], qa[rt][2 * hh + 1], qb[rt][2 * hh + 1], f.z, f.w);
            }
          }
        }
      }
    }
    // Scale and bias of this lane's two D columns: units ru + j0 and ru + j0 + 1.
    const int j0 = (2 * t) & 3;
    float sa[2][2][2], sb[2][2][2];  // [rt][row a/b][column]: scale, bias
    bool cok[2];
#pragma unroll
    for (int c = 0; c < 2; ++c) {
      const int u = ru + j0 + c;
      cok[c] = u < we;
      const int gg = ((u * kUC) >> plan.gs_shift) - g_first;
#pragma unroll
      for (int rt = 0; rt < 2; ++rt) {
#pragma unroll
        for (int ab = 0; ab < 2; ++ab) {
          const int r = warp * 32 + rt * 16 + g + 8 * ab;  // rows past N were staged as zeros
          const float2 v = cok[c] ? read_sb<ST>(ssb[r * plan.sb_stride + gg]) : make_float2(0.0f, 0.0f);
          sa[rt][ab][c] = v.x;
          sb[rt][ab][c] = v.y;
        }
      }
    }
#pragma unroll
    for (int p = 0; p < kMaxPairs; ++p) {
      if (p < npairs) {
        const int tok = 2 * p + (t >> 1);
        float sxc[2];
#pragma unroll
        for (int c = 0; c < 2; ++c) sxc[c] = cok[c] && tok < count ? sx[(ru - wu + j0 + c) * cmax + tok] : 0.0f;
#pragma unroll
        for (int rt = 0; rt < 2; ++rt) {
#pragma unroll
          for (int ab = 0; ab < 2; ++ab) {
            float a = acc[p][rt][ab];
            a = fmaf(sa[rt][ab][0], d[p][rt][2 * ab], a);
            a = fmaf(sa[rt][ab][1], d[p][rt][2 * ab + 1], a);
            a = fmaf(sb[rt][ab][0], sxc[0], a);
            a = fmaf(sb[rt][ab][1], sxc[1], a);
            acc[p][rt][ab] = a;
          }
        }
      }
    }
  };

  using Round = uint32_t[2][2][kUW];
  mv_pipeline<kDepth, Round>(plan, u_begin, u_end, load_round, [&](int wu, int we) {
      stage_scales(wu, we);
      stage(wu, we - wu);
    }, process);

  // Lanes t and t ^ 1 hold the two halves of a round's units: add them into shared memory, then
  // the cluster's sum (mv_cluster_store).
#pragma unroll
  for (int p = 0; p < kMaxPairs; ++p) {
    if (p < npairs) {
#pragma unroll
      for (int rt = 0; rt < 2; ++rt) {
#pragma unroll
        for (int ab = 0; ab < 2; ++ab) {
          const float v = acc[p][rt][ab] + __shfl_xor_sync(0xffffffffu, acc[p][rt][ab], 1);
          if ((t & 1) == 0) red[(warp * 32 + rt * 16 + g + 8 * ab) * 8 + 2 * p + (t >> 1)] = v;
        }
      }
    }
  }
  mv_cluster_store(o, plan, red, s_yrow, count, row0);
}

template <int Bits, typename ST, int kMaxPairs>
void launch_typed(const Operands& o, const MvPlan& plan, Items items, int n_items, cudaStream_t s) {
  auto kernel = affine_mv_rows_kernel<Bits, ST, kMaxPairs>;
  static const bool configured = [&] {
    LMK_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, kMaxSmem));
    return true;
  }();
  (void)configured;
  launch_mv_clusters(kernel, o, plan, items, n_items, s);
}

template <int Bits, typename ST>
void launch_pairs(const Operands& o, const MvPlan& plan, const Items& items, int n_items, cudaStream_t s) {
  if (plan.cmax <= 2) launch_typed<Bits, ST, 1>(o, plan, items, n_items, s);
  else launch_typed<Bits, ST, 2>(o, plan, items, n_items, s);
}

template <int Bits>
void launch_bits(const Operands& o, const MvPlan& plan, const Items& items, int n_items, cudaStream_t s) {
  visit_scale_type(o.s_dtype, [&](auto st) { launch_pairs<Bits, decltype(st)>(o, plan, items, n_items, s); });
}

}  // namespace

MvPlan mv_rows_plan(const Operands& o, int cmax) {
  // (Four blocks per SM measured the same or up to 12% slower than mv_plan_common's two.)
  MvPlan p = mv_plan_common(o, cmax);
  const int uc = o.bits == 6 ? 32 : 128 / o.bits, pairs = uc / 8;
  // A window may start inside a group: up to win codes / gs + 2 groups; odd row stride (banks).
  p.sb_stride = ((p.win_units * uc + o.gs - 1) / o.gs + 1) | 1;
  p.gs_shift = 0;
  while ((1 << p.gs_shift) < o.gs) ++p.gs_shift;  // gs is 32, 64 or 128
  p.smem = size_t(p.win_units) * 2 * cmax * 4 * pairs * 4 + size_t(p.win_units) * cmax * 4 +
           size_t(mv::kRowsPerBlock) * p.sb_stride * (o.s_dtype == DType::f32 ? 8 : 4);
  return p;
}

void launch_mv_rows(const Operands& o, const MvPlan& plan, Items items, int n_items, cudaStream_t s) {
  if (n_items <= 0) return;
  if (o.bits == 4) launch_bits<4>(o, plan, items, n_items, s);
  else if (o.bits == 6) launch_bits<6>(o, plan, items, n_items, s);
  else launch_bits<8>(o, plan, items, n_items, s);
}

}  // namespace lmk::cuda::affine
