// View-to-view copies on CUDA: the engine behind copy, transpose, permute, repeat_tiled, the
// column slices and the kv_cache writes. Each piece is planned on the host:
//   1. dims of size 1 are dropped and neighbours that are contiguous with each other (in both
//      views) are merged;
//   2. a piece that is then one contiguous run of the same dtype is a cudaMemcpyAsync;
//   3. a same-dtype piece whose unit-stride source dim is not the innermost is a (batched) tiled
//      transpose through shared memory, 16-byte accesses on both sides when aligned;
//   4. every other piece goes to one indexed-copy launch (up to 4 pieces per launch, one per
//      blockIdx.y): each thread decodes its flat index into coordinates with multiply-high
//      division and moves 16-byte vectors along the innermost dim when that dim is contiguous in
//      both views and aligned, single elements otherwise.
#include <algorithm>
#include <type_traits>
#include <vector>

#include "cuda/common.cuh"
#include "ops/layout/backend.h"

namespace lmk::cuda {

namespace {

constexpr int kThreads = 256;
constexpr int kUnroll = 4;      // vectors in flight per thread (indexed copy, 32-bit indices)
constexpr int kMaxPieces = 4;   // pieces per indexed-copy launch (gridDim.y)
constexpr int kMaxBatch = kMaxRank - 2;

template <int Bytes> struct BitsT;
template <> struct BitsT<1> { using type = uint8_t; };
template <> struct BitsT<2> { using type = uint16_t; };
template <> struct BitsT<4> { using type = uint32_t; };
template <> struct BitsT<8> { using type = uint64_t; };
template <int Bytes> using Bits = typename BitsT<Bytes>::type;

// ---- division helpers ---------------------------------------------------------------------------

// n / d for every 32-bit n and 1 <= d < 2^32 with one multiply-high, an add and a shift
// (Granlund & Montgomery 1994, fig. 4.1: l = ceil(log2 d), m = floor(2^32 (2^l - d) / d) + 1,
// q = (mulhi(m, n) + n) >> l, the sum taken in 64 bits).
struct FastDiv32 {
  uint32_t d = 1, m = 1, shift = 0;
  FastDiv32() = default;
  explicit FastDiv32(uint64_t div) : d(uint32_t(div)) {
    shift = 0;
    while ((uint64_t(1) << shift) < div) ++shift;
    m = uint32_t(((uint64_t(1) << 32) * ((uint64_t(1) << shift) - div)) / div + 1);
  }
  __device__ __forceinline__ uint32_t div(uint32_t n) const {
    return uint32_t((uint64_t(__umulhi(n, m)) + n) >> shift);
  }
};

// Plain 64-bit division for pieces too large for 32-bit indexing.
struct Div64 {
  uint64_t d = 1;
  Div64() = default;
  explicit Div64(uint64_t div) : d(div) {}
  __device__ __forceinline__ uint64_t div(uint64_t n) const { return n / d; }
};

// ---- host planning --------------------------------------------------------------------------

// A piece after collapsing: dims innermost first, strides in elements.
struct Plan {
  int rank = 0;
  int64_t size[kMaxRank], ss[kMaxRank], ds[kMaxRank];
  int64_t numel() const {
    int64_t n = 1;
    for (int k = 0; k < rank; ++k) n *= size[k];
    return n;
  }
};

Plan collapse(const CopyPiece& p) {
  // Outer -> inner, skipping unit dims; merge a dim into its outer neighbour when both views
  // step over it contiguously (outer stride == inner stride * inner size).
  int64_t sz[kMaxRank], a[kMaxRank], b[kMaxRank];
  int r = 0;
  for (int d = 0; d < p.src.rank(); ++d) {
    const int64_t n = p.src.size(d), s = p.src.stride(d), t = p.dst.stride(d);
    if (n == 1) continue;
    if (r > 0 && a[r - 1] == s * n && b[r - 1] == t * n) {
      sz[r - 1] *= n;
      a[r - 1] = s;
      b[r - 1] = t;
      continue;
    }
    sz[r] = n;
    a[r] = s;
    b[r] = t;
    ++r;
  }
  Plan plan;
  if (r == 0) {  // a single element
    plan.rank = 1;
    plan.size[0] = 1;
    plan.ss[0] = plan.ds[0] = 1;
    return plan;
  }
  plan.rank = r;
  for (int k = 0; k < r; ++k) {
    plan.size[k] = sz[r - 1 - k];
    plan.ss[k] = a[r - 1 - k];
    plan.ds[k] = b[r - 1 - k];
  }
  return plan;
}

// ---- indexed copy -----------------------------------------------------------------------------

template <typename Index, typename Div>
struct Piece {
  const void* src = nullptr;
  void* dst = nullptr;
  Index n = 0;  // units to move (vectors of V elements, or elements)
  int rank = 1;
  Div size[kMaxRank];                       // innermost first; size[0] counts units
  int64_t ss[kMaxRank] = {}, ds[kMaxRank] = {};  // element step per unit of each dim
};

template <typename Index, typename Div>
struct PieceBatch {
  Piece<Index, Div> p[kMaxPieces];
};

template <typename Index, typename Div>
__device__ __forceinline__ void unit_offsets(const Piece<Index, Div>& p, Index i, int64_t& so, int64_t& dof) {
  so = 0;
  dof = 0;
#pragma unroll
  for (int k = 0; k < kMaxRank; ++k) {
    if (k == p.rank - 1) {  // the outermost coordinate is what is left of i
      so += int64_t(i) * p.ss[k];
      dof += int64_t(i) * p.ds[k];
      return;
    }
    const Index q = p.size[k].div(i);
    const Index c = i - q * p.size[k].d;
    so += int64_t(c) * p.ss[k];
    dof += int64_t(c) * p.ds[k];
    i = q;
  }
}

template <typename Out, typename In>
__device__ __forceinline__ Out convert(In x) {
  return from_f32<Out>(to_f32(x));
}

// Pieces of more than 2^31 elements (rare) index in 64 bits and keep one vector in flight: the
// 64-bit divisions would not fit four times in registers.
template <typename Index>
constexpr int unroll_for = sizeof(Index) == 4 ? kUnroll : 1;

template <typename In, typename Out, int V, typename Index, typename Div>
__global__ void __launch_bounds__(kThreads) indexed_copy_kernel(const __grid_constant__ PieceBatch<Index, Div> batch) {
  constexpr int kU = unroll_for<Index>;
  const Piece<Index, Div>& p = batch.p[blockIdx.y];
  const Index first = Index(blockIdx.x) * Index(kThreads * kU) + Index(threadIdx.x);
  if (first >= p.n) return;
  const In* src = static_cast<const In*>(p.src);
  Out* dst = static_cast<Out*>(p.dst);
  Packed<In, V> v[kU];
  int64_t at[kU];
#pragma unroll
  for (int u = 0; u < kU; ++u) {
    const Index i = first + Index(u * kThreads);
    if (i < p.n) {
      int64_t so;
      unit_offsets(p, i, so, at[u]);
      v[u] = load_packed<In, V>(src + so);
    }
  }
#pragma unroll
  for (int u = 0; u < kU; ++u) {
    const Index i = first + Index(u * kThreads);
    if (i < p.n) {
      if constexpr (std::is_same_v<In, Out>) {
        store_packed<Out, V>(dst + at[u], v[u]);
      } else {
        Packed<Out, V> o;
#pragma unroll
        for (int k = 0; k < V; ++k) o.v[k] = convert<Out>(v[u].v[k]);
        store_packed<Out, V>(dst + at[u], o);
      }
    }
  }
}

template <typename In, typename Out, int V, typename Index, typename Div>
void launch_indexed(const std::vector<std::pair<Plan, const CopyPiece*>>& group, cudaStream_t stream) {
  PieceBatch<Index, Div> batch;
  int64_t max_n = 0;
  for (size_t j = 0; j < group.size(); ++j) {
    const Plan& plan = group[j].first;
    auto& p = batch.p[j];
    p.src = group[j].second->src.data();
    p.dst = group[j].second->dst.data();
    p.rank = plan.rank;
    for (int k = 0; k < plan.rank; ++k) {
      const int64_t unit = k == 0 ? V : 1;
      p.size[k] = Div(uint64_t(plan.size[k] / unit));
      p.ss[k] = plan.ss[k] * unit;
      p.ds[k] = plan.ds[k] * unit;
    }
    p.n = Index(plan.numel() / V);
    max_n = std::max(max_n, plan.numel() / V);
  }
  const dim3 grid(unsigned(ceil_div(max_n, kThreads * unroll_for<Index>)), unsigned(group.size()));
  indexed_copy_kernel<In, Out, V, Index, Div><<<grid, kThreads, 0, stream>>>(batch);
  LMK_LAUNCH_CHECK(indexed_copy_kernel);
}

// One launch for up to kMaxPieces pieces that share dtypes.
template <typename In, typename Out>
void indexed_copy(const std::vector<std::pair<Plan, const CopyPiece*>>& group, cudaStream_t stream) {
  constexpr int V = 16 / int(sizeof(In));
  bool vec = true, wide = false;
  for (const auto& [q, piece] : group) {
    vec = vec && q.ss[0] == 1 && q.ds[0] == 1 && q.size[0] % V == 0 &&
          is_aligned(piece->src.data(), V * sizeof(In)) && is_aligned(piece->dst.data(), V * sizeof(Out));
    for (int k = 1; k < q.rank; ++k) vec = vec && q.ss[k] % V == 0 && q.ds[k] % V == 0;
    wide = wide || q.numel() > (int64_t(1) << 31);
  }
  if (vec) {
    if (wide) launch_indexed<In, Out, V, uint64_t, Div64>(group, stream);
    else launch_indexed<In, Out, V, uint32_t, FastDiv32>(group, stream);
  } else {
    if (wide) launch_indexed<In, Out, 1, uint64_t, Div64>(group, stream);
    else launch_indexed<In, Out, 1, uint32_t, FastDiv32>(group, stream);
  }
}

void indexed_copy_dispatch(DType in, DType out, const std::vector<std::pair<Plan, const CopyPiece*>>& group,
                           cudaStream_t stream) {
  if (in == out) {
    switch (element_size(in)) {
      case 1: return indexed_copy<Bits<1>, Bits<1>>(group, stream);
      case 2: return indexed_copy<Bits<2>, Bits<2>>(group, stream);
      case 4: return indexed_copy<Bits<4>, Bits<4>>(group, stream);
      default: return indexed_copy<Bits<8>, Bits<8>>(group, stream);
    }
  }
  if (in == DType::bf16 && out == DType::f32) return indexed_copy<__nv_bfloat16, float>(group, stream);
  if (in == DType::f16 && out == DType::f32) return indexed_copy<__half, float>(group, stream);
  if (in == DType::f32 && out == DType::f16) return indexed_copy<float, __half>(group, stream);
  LMK_THROW(Unsupported, "copy: no CUDA conversion from ", name(in), " to ", name(out));
}

// ---- tiled transpose --------------------------------------------------------------------------

// The piece as a batch of 2-D transposes: i is the dim of unit source stride, l the innermost
// dim (unit destination stride); every other dim is a batch dim.
struct TileArgs {
  const void* src = nullptr;
  void* dst = nullptr;
  int64_t n_i = 0, n_l = 0;  // extents
  int64_t s_l = 0;           // source stride of l (the source stride of i is 1)
  int64_t d_i = 0;           // destination stride of i (the destination stride of l is 1)
  FastDiv32 tiles_i, tiles_l;  // tile counts (the whole grid is < 2^31 tiles)
  int nb = 0;
  FastDiv32 bsize[kMaxBatch];                      // batch dims, innermost first
  int64_t bss[kMaxBatch] = {}, bds[kMaxBatch] = {};
};

// This CTA's tile: origin (i0, l0) and the element offsets of its batch in both views.
__device__ __forceinline__ void tile_origin(const TileArgs& a, int ti_ext, int tl_ext, int64_t& i0, int64_t& l0,
                                            int64_t& so, int64_t& dof) {
  uint32_t t = blockIdx.x;
  uint32_t q = a.tiles_l.div(t);
  l0 = int64_t(t - q * a.tiles_l.d) * tl_ext;
  t = q;
  q = a.tiles_i.div(t);
  i0 = int64_t(t - q * a.tiles_i.d) * ti_ext;
  t = q;
  so = 0;
  dof = 0;
#pragma unroll
  for (int k = 0; k < kMaxBatch; ++k) {
    if (k == a.nb) break;
    q = a.bsize[k].div(t);
    const int64_t c = t - q * a.bsize[k].d;
    t = q;
    so += c * a.bss[k];
    dof += c * a.bds[k];
  }
}

// 16-byte tiled transpose for 1-, 2- and 4-byte elements. Tile: TI = 128 bytes of source row
// (along i) x TL = 64 elements along l. Shared memory holds 32-bit words that pack P = 4 / ES
// l-consecutive elements of one i, so the store side reads 4 words per 16-byte vector; the row
// pitch TI + 1 words keeps those reads free of bank conflicts (bank = 4 lv + m + i mod 32 for the
// 8 lv x 4 i lanes of a warp).
// Preconditions (host): n_i % V == 0, n_l % V == 0, both base pointers 16-byte aligned, and every
// stride other than the two unit ones a multiple of V elements (V = 16 / ES).
template <int ES>
__global__ void __launch_bounds__(kThreads) transpose_vec_kernel(const __grid_constant__ TileArgs a) {
  using E = Bits<ES>;
  constexpr int P = 4 / ES;        // elements per smem word
  constexpr int V = 16 / ES;       // elements per 16-byte vector
  constexpr int TI = 128 / ES;     // tile extent along i
  constexpr int TL = 64;           // tile extent along l
  constexpr int WR = TL / P;       // word rows
  __shared__ uint32_t sm[WR][TI + 1];

  int64_t i0, l0, so, dof;
  tile_origin(a, TI, TL, i0, l0, so, dof);
  const E* src = static_cast<const E*>(a.src) + so + i0 + l0 * a.s_l;
  E* dst = static_cast<E*>(a.dst) + dof + i0 * a.d_i + l0;

  // Load: a unit is P source vectors (rows l = lw*P + q, elements iv*V .. iv*V + V-1 along i).
  // A warp covers V word rows x (32 / V) vectors so that its smem writes (bank lw + V*iv + k)
  // spread over the banks.
  constexpr int kVecPerRow = TI / V;  // 8
  constexpr int kLoadUnits = WR * kVecPerRow;
  constexpr int kLoadIters = (kLoadUnits + kThreads - 1) / kThreads;
  constexpr int IVL = 32 / V;               // lanes along iv
  constexpr int IVG = kVecPerRow / IVL;     // iv groups
  Packed<E, V> buf[kLoadIters][P];
#pragma unroll
  for (int it = 0; it < kLoadIters; ++it) {
    const int u = it * kThreads + int(threadIdx.x);
    const int lane = u % 32, w = u / 32;
    const int iv = (w % IVG) * IVL + lane % IVL, lw = (w / IVG) * V + lane / IVL;
    const bool i_ok = u < kLoadUnits && i0 + iv * V < a.n_i;
#pragma unroll
    for (int q = 0; q < P; ++q) {
      const int l = lw * P + q;
      if (i_ok && l0 + l < a.n_l) buf[it][q] = load_packed<E, V>(src + iv * V + l * a.s_l);
      else buf[it][q] = Packed<E, V>{};
    }
  }
#pragma unroll
  for (int it = 0; it < kLoadIters; ++it) {
    const int u = it * kThreads + int(threadIdx.x);
    if (u >= kLoadUnits) continue;
    const int lane = u % 32, w = u / 32;
    const int iv = (w % IVG) * IVL + lane % IVL, lw = (w / IVG) * V + lane / IVL;
#pragma unroll
    for (int k = 0; k < V; ++k) {
      uint32_t word = 0;
#pragma unroll
      for (int q = 0; q < P; ++q) word |= uint32_t(buf[it][q].v[k]) << (8 * ES * q);
      sm[lw][iv * V + k] = word;
    }
  }
  __syncthreads();

  // Store: a unit is one 16-byte destination vector (row i, elements lv*V .. lv*V + V-1 along l),
  // i.e. the 4 words sm[lv*4 + m][i]. A warp covers 8 (or fewer) lv x the rest in i.
  constexpr int LVN = TL / V;                   // vectors along l: 16, 8, 4
  constexpr int LVL = LVN < 8 ? LVN : 8;        // lanes along lv
  constexpr int IL = 32 / LVL;                  // lanes along i
  constexpr int LVG = LVN / LVL;
  constexpr int kStoreUnits = TI * LVN;
  static_assert(kStoreUnits % kThreads == 0);
#pragma unroll
  for (int it = 0; it < kStoreUnits / kThreads; ++it) {
    const int u = it * kThreads + int(threadIdx.x);
    const int lane = u % 32, w = u / 32;
    const int lv = (w % LVG) * LVL + lane % LVL, i = (w / LVG) * IL + lane / LVL;
    if (i0 + i < a.n_i && l0 + lv * V < a.n_l) {
      Packed<uint32_t, 4> o;
#pragma unroll
      for (int m = 0; m < 4; ++m) o.v[m] = sm[lv * 4 + m][i];
      *reinterpret_cast<Packed<uint32_t, 4>*>(dst + i * a.d_i + lv * V) = o;
    }
  }
}

// Element-wise 32 x 32 tiled transpose: any element size, any alignment and extent.
template <int ES>
__global__ void __launch_bounds__(kThreads) transpose_scalar_kernel(const __grid_constant__ TileArgs a) {
  using E = Bits<ES>;
  constexpr int T = 32, kRowsPerPass = kThreads / T;
  __shared__ E sm[T][T + 1];
  int64_t i0, l0, so, dof;
  tile_origin(a, T, T, i0, l0, so, dof);
  const E* src = static_cast<const E*>(a.src) + so + i0 + l0 * a.s_l;
  E* dst = static_cast<E*>(a.dst) + dof + i0 * a.d_i + l0;
  const int tx = int(threadIdx.x) % T, ty = int(threadIdx.x) / T;
#pragma unroll
  for (int r = ty; r < T; r += kRowsPerPass)  // r along l, tx along i: coalesced reads
    if (i0 + tx < a.n_i && l0 + r < a.n_l) sm[r][tx] = src[tx + r * a.s_l];
  __syncthreads();
#pragma unroll
  for (int r = ty; r < T; r += kRowsPerPass)  // r along i, tx along l: coalesced writes
    if (i0 + r < a.n_i && l0 + tx < a.n_l) dst[r * a.d_i + tx] = sm[tx][r];
}

// Index of the dim (>= 1) with unit source stride, or 0 when the piece is not a transpose.
int transpose_dim(const Plan& q) {
  if (q.ds[0] != 1 || q.ss[0] == 1) return 0;
  for (int k = 1; k < q.rank; ++k)
    if (q.ss[k] == 1) return k;
  return 0;
}

void tiled_transpose(const Plan& q, int j, const CopyPiece& piece, cudaStream_t stream) {
  TileArgs a;
  a.src = piece.src.data();
  a.dst = piece.dst.data();
  a.n_l = q.size[0];
  a.s_l = q.ss[0];
  a.n_i = q.size[j];
  a.d_i = q.ds[j];
  int64_t batch = 1;
  for (int k = 1; k < q.rank; ++k) {
    if (k == j) continue;
    a.bsize[a.nb] = FastDiv32(uint64_t(q.size[k]));  // < 2^31: the grid check below bounds it
    a.bss[a.nb] = q.ss[k];
    a.bds[a.nb] = q.ds[k];
    batch *= q.size[k];
    ++a.nb;
  }
  const int es = int(element_size(piece.src.dtype()));
  const int v = 16 / es;
  bool vec = es <= 4 && a.n_i % v == 0 && a.n_l % v == 0 && a.s_l % v == 0 && a.d_i % v == 0 &&
             is_aligned(a.src, 16) && is_aligned(a.dst, 16);
  for (int k = 0; k < a.nb; ++k) vec = vec && a.bss[k] % v == 0 && a.bds[k] % v == 0;
  const int ti = vec ? 128 / es : 32, tl = vec ? 64 : 32;
  const int64_t tiles_i = ceil_div(a.n_i, ti), tiles_l = ceil_div(a.n_l, tl);
  const int64_t tiles = tiles_i * tiles_l * batch;  // <= numel: no overflow
  if (tiles > int64_t(INT32_MAX))
    LMK_THROW(Unsupported, "copy: a transposing copy of ", tiles, " tiles exceeds the CUDA grid limit");
  a.tiles_i = FastDiv32(uint64_t(tiles_i));
  a.tiles_l = FastDiv32(uint64_t(tiles_l));
  const unsigned grid = unsigned(tiles);
  if (vec) {
    switch (es) {
      case 1: transpose_vec_kernel<1><<<grid, kThreads, 0, stream>>>(a); break;
      case 2: transpose_vec_kernel<2><<<grid, kThreads, 0, stream>>>(a); break;
      default: transpose_vec_kernel<4><<<grid, kThreads, 0, stream>>>(a); break;
    }
    LMK_LAUNCH_CHECK(transpose_vec_kernel);
  } else {
    switch (es) {
      case 1: transpose_scalar_kernel<1><<<grid, kThreads, 0, stream>>>(a); break;
      case 2: transpose_scalar_kernel<2><<<grid, kThreads, 0, stream>>>(a); break;
      case 4: transpose_scalar_kernel<4><<<grid, kThreads, 0, stream>>>(a); break;
      default: transpose_scalar_kernel<8><<<grid, kThreads, 0, stream>>>(a); break;
    }
    LMK_LAUNCH_CHECK(transpose_scalar_kernel);
  }
}

}  // namespace

void copy_pieces(std::span<const CopyPiece> pieces, Stream& s) {
  const cudaStream_t stream = stream_of(s);
  std::vector<std::pair<Plan, const CopyPiece*>> group;
  auto flush = [&] {
    if (group.empty()) return;
    indexed_copy_dispatch(group[0].second->src.dtype(), group[0].second->dst.dtype(), group, stream);
    group.clear();
  };
  for (const auto& piece : pieces) {
    const Plan q = collapse(piece);
    const bool same = piece.src.dtype() == piece.dst.dtype();
    if (same && q.rank == 1 && q.ss[0] == 1 && q.ds[0] == 1) {
      LMK_CUDA_CHECK(cudaMemcpyAsync(piece.dst.data(), piece.src.data(), size_t(piece.src.nbytes()),
                                     cudaMemcpyDeviceToDevice, stream));
      continue;
    }
    if (same) {
      if (const int j = transpose_dim(q)) {
        tiled_transpose(q, j, piece, stream);
        continue;
      }
    }
    if (!group.empty() && (group.size() == size_t(kMaxPieces) ||
                           group[0].second->src.dtype() != piece.src.dtype() ||
                           group[0].second->dst.dtype() != piece.dst.dtype()))
      flush();
    group.push_back({q, &piece});
  }
  flush();
}

}  // namespace lmk::cuda
