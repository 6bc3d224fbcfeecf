// CUDA backend of the affine family: picks a kernel per problem, builds work items (routing
// lists for quantized_matmul_id), checks invalid ids in debug mode.
//
// Paths (shapes only, never data):
//   raw  up to 8 dense rows or 256 routed rows of 4- or 8-bit codes, f32 x and y, 16-bit scales,
//        K % 256 == 0: matmul's packed ring mat-vec reading the rows as stored
//        (quantized_matmul_affine_raw).
//   mv   gs 32/64/128, aligned operands, at most 8 rows (dense) or at most 4 routed rows per
//        expert on average (routed): tensor-core mat-vec, f32-accurate.
//   mm   the same formats with more rows: bf16 tiled GEMM.
//   simt everything else (unaligned views, qmm_affine): f32 tiled.
// Routed rows: at most 8 -> one item per row ("direct", no scratch); otherwise a one-block
// routing kernel groups rows by expert into items of <= T rows (T = the kernel's tile rows) in
// stream-ordered scratch.
#include <cub/block/block_scan.cuh>

#include <algorithm>
#include <memory>
#include <vector>

#include "ops/affine/backend.h"
#include "ops/affine/kernels.cuh"
#include "ops/matmul/backend.h"

namespace lmk::cuda {
namespace {

using namespace affine;

constexpr int kRouteThreads = 1024;

struct RouteArgs {
  const void* ids = nullptr;
  int ids_signed = 0;
  int P = 0, E = 0, T = 1;
  int* counts = nullptr;     // [E]
  int* offs = nullptr;       // [E + 1]
  int* item_offs = nullptr;  // [E + 1]
  int* pairs = nullptr;      // [P]
  int* info = nullptr;       // [3 * max_items]
  int* n_items = nullptr;    // [1]
  void* y = nullptr;
  DType y_dtype = DType::f32;
  int N = 0;
  uint32_t* error_flag = nullptr;
};

// One block: count rows per expert, prefix sums, scatter row indices into per-expert lists,
// cut each list into items of <= T rows. Rows with an out-of-range id are zeroed and flagged.
__global__ void __launch_bounds__(kRouteThreads) affine_route_kernel(const RouteArgs a) {
  using Scan = cub::BlockScan<int, kRouteThreads>;
  __shared__ typename Scan::TempStorage scan_tmp;
  const int tid = int(threadIdx.x);
  auto id_of = [&](int r) -> uint32_t {
    return a.ids_signed ? uint32_t(static_cast<const int32_t*>(a.ids)[r]) : static_cast<const uint32_t*>(a.ids)[r];
  };
  for (int e = tid; e < a.E; e += kRouteThreads) a.counts[e] = 0;
  __syncthreads();
  for (int r = tid; r < a.P; r += kRouteThreads) {
    const uint32_t e = id_of(r);
    if (e < uint32_t(a.E)) {
      atomicAdd(&a.counts[e], 1);
    } else {
      for (int n = 0; n < a.N; ++n) store_f(a.y, int64_t(r) * a.N + n, 0.0f, a.y_dtype);
      if (a.error_flag) *a.error_flag = 1u;
    }
  }
  __syncthreads();
  // Exclusive scans over experts: each thread owns a contiguous run of experts.
  const int per = (a.E + kRouteThreads - 1) / kRouteThreads;
  const int e0 = min(tid * per, a.E), e1 = min(e0 + per, a.E);
  int rows = 0, items = 0;
  for (int e = e0; e < e1; ++e) {
    const int c = a.counts[e];
    rows += c;
    items += (c + a.T - 1) / a.T;
  }
  int row_pre = 0, item_pre = 0, row_total = 0, item_total = 0;
  Scan(scan_tmp).ExclusiveSum(rows, row_pre, row_total);
  __syncthreads();
  Scan(scan_tmp).ExclusiveSum(items, item_pre, item_total);
  for (int e = e0; e < e1; ++e) {
    const int c = a.counts[e];
    a.offs[e] = row_pre;
    a.item_offs[e] = item_pre;
    row_pre += c;
    item_pre += (c + a.T - 1) / a.T;
  }
  if (tid == 0) {
    a.offs[a.E] = row_total;
    a.item_offs[a.E] = item_total;
    *a.n_items = item_total;
  }
  __syncthreads();
  for (int e = tid; e < a.E; e += kRouteThreads) a.counts[e] = a.offs[e];  // cursors
  __syncthreads();
  for (int r = tid; r < a.P; r += kRouteThreads) {
    const uint32_t e = id_of(r);
    if (e < uint32_t(a.E)) a.pairs[atomicAdd(&a.counts[e], 1)] = r;
  }
  for (int e = tid; e < a.E; e += kRouteThreads) {
    const int c = a.offs[e + 1] - a.offs[e];
    for (int j = 0, base = a.item_offs[e]; j * a.T < c; ++j) {
      a.info[3 * (base + j)] = e;
      a.info[3 * (base + j) + 1] = a.offs[e] + j * a.T;
      a.info[3 * (base + j) + 2] = min(a.T, c - j * a.T);
    }
  }
}

// Debug mode: wait for the launch and raise the CPU backend's error for the first invalid id.
void raise_invalid_ids(const AffineProblem& p, cudaStream_t s) {
  cudaStreamCaptureStatus cap = cudaStreamCaptureStatusNone;
  LMK_CUDA_CHECK(cudaStreamIsCapturing(s, &cap));
  if (cap != cudaStreamCaptureStatusNone) return;  // cannot wait inside a capture
  LMK_CUDA_CHECK(cudaStreamSynchronize(s));
  const int64_t P = p.rows();
  std::vector<uint32_t> ids(static_cast<size_t>(P));
  LMK_CUDA_CHECK(cudaMemcpy(ids.data(), p.ids, size_t(P) * 4, cudaMemcpyDeviceToHost));
  for (int64_t r = 0; r < P; ++r) {
    const int64_t e = p.ids_dtype == DType::u32 ? int64_t(ids[size_t(r)]) : int64_t(int32_t(ids[size_t(r)]));
    if (e < 0 || e >= p.E)
      LMK_THROW(InvalidArgument, p.op, ": invalid expert id ", e, " at row ", r, " (n_experts=", p.E, ")");
  }
}

enum class Path { mv, mm, simt };

// The weight's codes, 16-bit scales and biases as pack_affine and the raw ring mat-vec read them.
packed::AffineSource affine_source(const AffineProblem& p) {
  packed::AffineSource src;
  src.codes = static_cast<const uint8_t*>(p.w);
  src.scales = static_cast<const uint16_t*>(p.scales);
  src.biases = static_cast<const uint16_t*>(p.biases);
  src.bits = p.bits;
  src.gs = p.gs;
  return src;
}

// More than 8 rows of f32 x and y with 16-bit scales: pack the weight (pack_affine's layout) into
// stream-ordered scratch and run the packed warpgroup-MMA mat-mat (the same bf16 operand
// precision as the tiled kernel). The pack reads and writes the weight once; H200, 4-bit
// 4096x14336, M = 16 / 32 / 512: 365 / 385 / 698 us on the tiled kernel, 91 / 92 / 167 with the
// repack (8-bit 3.1-3.3x; docs/perf.md). LMK_AFFINE_REPACK=0 turns it off.
bool repack_applies(const AffineProblem& p, bool routed, bool formats_ok, bool aligned) {
  return !routed && formats_ok && aligned && p.M > mv::kMaxRows && p.x_dtype == DType::f32 &&
         p.y_dtype == DType::f32 && (p.s_dtype == DType::bf16 || p.s_dtype == DType::f16) &&
         tuning("LMK_AFFINE_REPACK", 1) != 0;
}

void repacked_matmul(const AffineProblem& p, cudaStream_t s, Stream& stream) {
  PackedView v;
  v.affine_bits = p.bits;
  v.affine_gs = p.gs;
  v.affine_f16 = p.s_dtype == DType::f16;
  v.n = p.N;
  v.k = p.K;
  v.row_bytes = p.row_bytes;
  v.n_experts = 1;
  PoolScratch buf(size_t(packed_bytes(p.op, geometry_of(v), 1)), s);
  v.data = buf.ptr;
  pack_affine(affine_source(p), v, buf.ptr, stream);
  quantized_matmul_packed(static_cast<const float*>(p.x), p.M, v, static_cast<float*>(p.y), stream);
}  // the scratch is freed in stream order, after the mat-mat

// Up to 8 dense rows, or up to 256 routed rows (32 tokens of top-8, one item per row as
// quantized_matmul_id_packed's direct items; H200, against the grouped kernels: 4-bit T32 156.6 ->
// 64.6 us, 8-bit 196.9 -> 109.1; 8-bit M = 8 108.3 -> 38.5), of f32 x and y with 16-bit scales and
// K % 256 == 0: the packed ring mat-vec reading MLX's rows as they are (matmul's
// quantized_matmul_affine_raw; formats.cuh FAffineRaw), 4-bit codes against x staged in their
// nibble order. LMK_AFFINE_RAW_RING=0 keeps the kernels below.
bool raw_ring_applies(const AffineProblem& p, bool routed, bool formats_ok) {
  static const bool on = tuning("LMK_AFFINE_RAW_RING", 1) != 0;
  const bool rows_ok = routed ? p.rows() <= 256 : p.M <= 8;
  return formats_ok && rows_ok && (p.bits == 4 || p.bits == 8) && p.K % 256 == 0 &&
         p.x_dtype == DType::f32 && p.y_dtype == DType::f32 && (p.s_dtype == DType::bf16 || p.s_dtype == DType::f16) &&
         is_aligned(p.w, 16) && is_aligned(p.scales, 16) && is_aligned(p.biases, 16) && p.row_bytes % 16 == 0 && on;
}

void raw_ring_matmul(const AffineProblem& p, bool routed, cudaStream_t s, Stream& stream) {
  PoolScratch xq(size_t(quantized_matmul_affine_raw_scratch(p.M, p.K)), s);  // x's pieces
  AffineRawRoute route;
  route.ids = p.ids;
  route.ids_i32 = p.ids_dtype == DType::i32;
  route.top_k = p.top_k;
  route.n_experts = p.E;
  route.error_flag = p.error_flag;
  quantized_matmul_affine_raw(static_cast<const float*>(p.x), p.M, affine_source(p), p.N, p.K, p.row_bytes,
                              p.s_dtype == DType::f16, static_cast<float*>(p.y), xq.ptr, stream, routed ? &route : nullptr);
  if (routed && p.debug) raise_invalid_ids(p, s);
}  // the scratch is freed in stream order, after the mat-vec

}  // namespace

void affine_matmul(const AffineProblem& p, Stream& stream) {
  const cudaStream_t s = stream_of(stream);
  const bool routed = p.ids != nullptr;
  const bool formats_ok = !p.unpacked && (p.gs == 32 || p.gs == 64 || p.gs == 128);
  const bool aligned = is_aligned(p.x, 16) && is_aligned(p.w, p.bits == 6 ? 8 : 16);
  const int64_t P = p.rows();

  if (repack_applies(p, routed, formats_ok, aligned)) return repacked_matmul(p, s, stream);
  if (raw_ring_applies(p, routed, formats_ok)) return raw_ring_matmul(p, routed, s, stream);

  Path path = Path::simt;
  if (formats_ok && aligned) {
    const bool small = routed ? P <= 4 * p.E : p.M <= mv::kMaxRows;
    if (!small) path = Path::mm;
    else if (ceil_div(p.N, mv::kRowsPerBlock) <= 65535) path = Path::mv;
  }

  Operands o;
  o.x = p.x;
  o.x_dtype = p.x_dtype;
  o.K = int(p.K);
  o.w = static_cast<const uint8_t*>(p.w);
  o.row_bytes = p.row_bytes;
  o.expert_bytes = p.N * p.row_bytes;
  o.scales = p.scales;
  o.biases = p.biases;
  o.s_dtype = p.s_dtype;
  o.groups = p.groups();
  o.expert_groups = p.N * p.groups();
  o.N = int(p.N);
  o.bits = p.bits;
  o.gs = p.gs;
  o.y = p.y;
  o.y_dtype = p.y_dtype;

  const int bm = path == Path::mm ? (routed || P <= 64 ? 64 : 128) : 0;
  const int tile = path == Path::mv ? mv::kMaxRows : path == Path::mm ? bm : simt::kBM;

  Items items;
  items.top_k = int(p.top_k);
  items.error_flag = p.error_flag;
  int n_items = 0;
  std::unique_ptr<PoolScratch> scratch;
  int cmax = tile;
  if (!routed) {
    items.mode = kDense;
    items.rows = int(p.M);
    items.tile = tile;
    n_items = int(ceil_div(p.M, tile));
    cmax = int(std::min<int64_t>(p.M, tile));
  } else if (P <= 8) {
    items.mode = kDirect;
    items.rows = int(P);
    items.ids = p.ids;
    items.ids_signed = p.ids_dtype == DType::i32;
    items.n_experts = int(p.E);
    n_items = int(P);
    cmax = 1;
  } else {
    const int E = int(p.E);  // < 2^31 (validated)
    const int64_t max_items = std::min<int64_t>(P, ceil_div(P, tile) + p.E);
    const int64_t ints = int64_t(E) + 2 * (int64_t(E) + 1) + P + 3 * max_items + 1;
    scratch = std::make_unique<PoolScratch>(size_t(ints) * 4, s);
    int* base = static_cast<int*>(scratch->ptr);
    RouteArgs a;
    a.ids = p.ids;
    a.ids_signed = p.ids_dtype == DType::i32;
    a.P = int(P);
    a.E = E;
    a.T = tile;
    a.counts = base;
    a.offs = a.counts + E;
    a.item_offs = a.offs + E + 1;
    a.pairs = a.item_offs + E + 1;
    a.info = a.pairs + P;
    a.n_items = a.info + 3 * max_items;
    a.y = p.y;
    a.y_dtype = p.y_dtype;
    a.N = int(p.N);
    a.error_flag = p.error_flag;
    affine_route_kernel<<<1, kRouteThreads, 0, s>>>(a);
    LMK_LAUNCH_CHECK(affine_route_kernel);
    items.mode = kGrouped;
    items.info = a.info;
    items.pairs = a.pairs;
    items.n_items = a.n_items;
    n_items = int(max_items);
  }

  switch (path) {
    case Path::mv:
      // Plain rows up to 4: the rows kernel (matvec_rows.cu; LMK_AFFINE_MV_ROWS=0 turns it off).
      if (!routed && cmax <= 4 && tuning("LMK_AFFINE_MV_ROWS", 1) != 0)
        launch_mv_rows(o, mv_rows_plan(o, cmax), items, n_items, s);
      else
        launch_mv(o, mv_plan(o, cmax), items, n_items, s);
      break;
    case Path::mm: launch_mm(o, bm, items, n_items, s); break;
    case Path::simt: launch_simt(o, items, n_items, s); break;
  }
  scratch.reset();  // freed in stream order after the kernels
  if (routed && p.debug) raise_invalid_ids(p, s);
}

}  // namespace lmk::cuda
