// CUDA backend of the matmul family: path selection, the expert-routing pre-pass, activation
// conversion, cuBLASLt for large dense GEMMs, and the per-(device, stream) workspace.
#include <cublasLt.h>
#include <cudaTypedefs.h>

#include <algorithm>
#include <cstdlib>
#include <map>
#include <memory>
#include <mutex>
#include <tuple>
#include <type_traits>

#include "lmk/buffer.h"
#include "ops/matmul/formats.cuh"
#include "ops/matmul/instances.h"
#include "ops/matmul/launch.h"
#include "ops/matmul/qmm.cuh"
#include "ops/matmul/qmm_packed.cuh"
#include "ops/matmul/qmv.cuh"
#include "ops/matmul/qmv_packed.cuh"

namespace lmk::cuda {

namespace mm {

// ---- workspace ----------------------------------------------------------------------------------
namespace {

constexpr int64_t kLtWorkspaceBytes = int64_t(32) << 20;

struct WsEntry {
  Buffer scratch, lt, flags, counters;
  Workspace ws;
};

int current_device() {
  int d = 0;
  LMK_CUDA_CHECK(cudaGetDevice(&d));
  return d;
}

}  // namespace

Workspace& workspace(Stream& s, int64_t scratch_bytes) {
  static std::mutex mu;
  static std::map<std::pair<int, void*>, std::unique_ptr<WsEntry>> table;
  const Device dev = s.device();
  std::lock_guard<std::mutex> lock(mu);
  auto& e = table[{dev.index, s.handle()}];
  if (!e) {
    e = std::make_unique<WsEntry>();
    e->lt = Buffer(kLtWorkspaceBytes, dev);
    e->flags = Buffer(256, dev);
    e->counters = Buffer(kCounters * int64_t(sizeof(int)), dev);
    e->ws.counters = static_cast<int*>(e->counters.data());
    e->ws.lt_workspace = e->lt.data();
    e->ws.lt_workspace_bytes = kLtWorkspaceBytes;
    e->ws.flags = static_cast<uint32_t*>(e->flags.data());
  }
  if (e->ws.scratch_bytes < scratch_bytes) {
    // Work still queued on this stream may use the old scratch: wait for it before freeing.
    if (e->scratch.data()) LMK_CUDA_CHECK(cudaStreamSynchronize(stream_of(s)));
    const int64_t want = std::max<int64_t>(scratch_bytes + (scratch_bytes >> 3), int64_t(1) << 20);
    e->scratch = Buffer();
    e->scratch = Buffer(want, dev);
    e->ws.scratch = e->scratch.data();
    e->ws.scratch_bytes = want;
  }
  return e->ws;  // (a new Buffer's zero fill has completed when its constructor returns)
}

// The driver's cuTensorMapEncodeTiled, through the runtime (no link against libcuda).
static PFN_cuTensorMapEncodeTiled_v12000 tensor_map_encoder() {
  static const PFN_cuTensorMapEncodeTiled_v12000 fn = [] {
    void* f = nullptr;
    cudaDriverEntryPointQueryResult q{};
    LMK_CUDA_CHECK(cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &f, 12000, cudaEnableDefault, &q));
    if (!f || q != cudaDriverEntryPointSuccess) LMK_THROW(Cuda, "cuTensorMapEncodeTiled is not available from the driver");
    return reinterpret_cast<PFN_cuTensorMapEncodeTiled_v12000>(f);
  }();
  return fn;
}

CUtensorMap tensor_map_2d(CUtensorMapDataType type, const void* base, int64_t rows, int64_t cols, int64_t row_bytes,
                          int box_cols, int box_rows, const char* what) {
  CUtensorMap m;
  const cuuint64_t dims[2] = {cuuint64_t(cols), cuuint64_t(rows)};
  const cuuint64_t strides[1] = {cuuint64_t(row_bytes)};
  const cuuint32_t box[2] = {cuuint32_t(box_cols), cuuint32_t(box_rows)};
  const cuuint32_t elem[2] = {1, 1};
  const CUresult r = tensor_map_encoder()(&m, type, 2, const_cast<void*>(base), dims, strides, box, elem,
                                          CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_128B,
                                          CU_TENSOR_MAP_L2_PROMOTION_L2_256B, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
  if (r != CUDA_SUCCESS) LMK_THROW(Cuda, "cuTensorMapEncodeTiled failed (", int(r), ") for ", what, " [", rows, ", ", cols, "]");
  return m;
}

}  // namespace mm

using namespace mm;

namespace {

// Sets the current device for the scope of a call (restores the previous one).
struct DeviceGuard {
  int prev = -1;
  explicit DeviceGuard(Device d) {
    prev = mm::current_device();
    if (prev != d.index) LMK_CUDA_CHECK(cudaSetDevice(d.index));
    else prev = -1;
  }
  ~DeviceGuard() {
    if (prev >= 0) cudaSetDevice(prev);
  }
};

int64_t align_up(int64_t v, int64_t a) { return (v + a - 1) / a * a; }

// Tuning knobs (performance only, read once; common.cuh tuning): LMK_MM_MATVEC_MAX_M (largest M
// on the mat-vec path, default 8), LMK_MM_QMM_BM (mat-mat tile rows 64 / 128, 0 = by size),
// LMK_MM_DIRECT_ROWS (routed rows computed one by one without the pre-pass, default 64; packed
// experts: LMK_MM_PACKED_DIRECT_ROWS, default 256),
// LMK_MM_MATMAT_PER_EXPERT (average rows per expert above which routed pieces use the mat-mat
// kernel, default 16), LMK_QMVP_RING (the decode ring kernel: -1 where measured faster, 0, 1),
// LMK_QMVP_WARP_WALK (its warp walk for single routed rows: -1 from 16 units per SM, 0, 1);
// LMK_MM_RAW_RING (raw GGML rows on the ring mat-vec: -1 where measured faster, 0, 1),
// LMK_MM_RAW_REPACK_MB (largest per-call repack of raw weights, default 4096; 0: none);
// LMK_WEIGHT_L2 (1: the packed kernels' weight loads take the L2 evict-first policy where each
// weight is read once (read_once); 0: the normal policy everywhere);
// gemv.cu reads LMK_GEMV_MMA (dense bf16 mat-vec on tensor cores: -1 from 5 rows, 0, 1),
// LMK_GEMV_MMA_WIDE, LMK_GEMV_GRID and LMK_GEMV_PDL (programmatic launches: 1, 0).
const int64_t kMatvecMaxM = tuning("LMK_MM_MATVEC_MAX_M", 8);
const bool kWeightsEvictFirst = tuning("LMK_WEIGHT_L2", 1) != 0;
const int64_t kQmmBm = tuning("LMK_MM_QMM_BM", 0);

// Bump allocator over the workspace scratch (256-byte aligned pieces).
struct Carve {
  char* base;
  int64_t used = 0;
  template <class T>
  T* take(int64_t count) {
    T* p = reinterpret_cast<T*>(base + used);
    used += align_up(count * int64_t(sizeof(T)), 256);
    return p;
  }
};

// ---- activation conversion (f32 -> bf16 / f16, RNE) ---------------------------------------------------
template <class T>
__global__ void convert_kernel(const float* __restrict__ x, T* __restrict__ out, int64_t n, bool vec) {
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  if (vec) {
    const int64_t n4 = n / 4;
    for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n4; i += stride) {
      const float4 v = __ldcs(reinterpret_cast<const float4*>(x) + i);
      uint2 o;
      if constexpr (std::is_same_v<T, __half>) {
        const __half2 a = __floats2half2_rn(v.x, v.y), b = __floats2half2_rn(v.z, v.w);
        o = make_uint2(*reinterpret_cast<const uint32_t*>(&a), *reinterpret_cast<const uint32_t*>(&b));
      } else {
        const __nv_bfloat162 a = __floats2bfloat162_rn(v.x, v.y), b = __floats2bfloat162_rn(v.z, v.w);
        o = make_uint2(*reinterpret_cast<const uint32_t*>(&a), *reinterpret_cast<const uint32_t*>(&b));
      }
      *reinterpret_cast<uint2*>(out + 4 * i) = o;
    }
    for (int64_t i = 4 * n4 + blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += stride) {
      if constexpr (std::is_same_v<T, __half>) out[i] = __float2half_rn(x[i]);
      else out[i] = __float2bfloat16_rn(x[i]);
    }
  } else {
    for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += stride) {
      if constexpr (std::is_same_v<T, __half>) out[i] = __float2half_rn(x[i]);
      else out[i] = __float2bfloat16_rn(x[i]);
    }
  }
}

template <class T>
void convert(const float* x, T* out, int64_t n, cudaStream_t s) {
  const bool vec = is_aligned(x, 16) && is_aligned(out, 8);
  const int64_t blocks = std::min<int64_t>(ceil_div(vec ? n / 4 + 1 : n, 256), int64_t(sm_count()) * 8);
  convert_kernel<T><<<unsigned(std::max<int64_t>(blocks, 1)), 256, 0, s>>>(x, out, n, vec);
  LMK_LAUNCH_CHECK(convert_kernel);
}

// ---- expert routing pre-pass ------------------------------------------------------------------------
// One CTA: count the rows of each expert, exclusive scans of the row counts and of the item counts
// (ceil(count / tile)), per-expert row lists, and the item list {expert, start, count <= tile}.
// Rows with an out-of-range id are zeroed here and flagged; they appear in no list (the row
// list's tail past the valid rows holds -1).
struct RouteParams {
  const void* ids;
  bool ids_i32;
  int rows;
  int64_t n_experts;
  int tile;
  int* counts;     // [E]
  int* fill;       // [E]
  int* offsets;    // [E]
  int* item_off;   // [E]
  int* row_list;   // [rows]
  int* items;      // [max_items][3]
  int* n_items;    // [1]
  float* y;        // zeroed rows of invalid ids
  int64_t n;
  uint32_t* user_flag;
  uint32_t* debug_flags;
};

__device__ __forceinline__ int64_t route_id(const RouteParams& q, int r) {
  return q.ids_i32 ? int64_t(static_cast<const int32_t*>(q.ids)[r]) : int64_t(static_cast<const uint32_t*>(q.ids)[r]);
}

// Experts up to this many keep their counters in shared memory (16 bytes each); beyond, in the
// global scratch of q. One CTA; each thread keeps its first kRouteCachedIds ids in registers
// (rows past 1024 · kRouteCachedIds are read again for the second pass).
constexpr int64_t kRouteSmemExperts = 2048;
constexpr int kRouteCachedIds = 8;

template <bool Smem>
__global__ void __launch_bounds__(1024) route_kernel(const RouteParams q) {
  __shared__ int warp_rows[32], warp_items[32], valid_rows;
  extern __shared__ int route_smem[];  // Smem: counts, fill, offsets, item_off, [E] each
  const int tid = threadIdx.x, nt = blockDim.x, lane = tid & 31, warp = tid >> 5;
  const int64_t E = q.n_experts;
  int* const counts = Smem ? route_smem : q.counts;
  int* const fill = Smem ? route_smem + E : q.fill;
  int* const offsets = Smem ? route_smem + 2 * E : q.offsets;
  int* const item_off = Smem ? route_smem + 3 * E : q.item_off;
  int64_t ids[kRouteCachedIds];
#pragma unroll
  for (int j = 0; j < kRouteCachedIds; ++j) ids[j] = tid + j * nt < q.rows ? route_id(q, tid + j * nt) : -1;
  // Calls f(id, row) for this thread's rows, the first kRouteCachedIds from registers.
  auto each_row = [&](auto&& f) {
#pragma unroll
    for (int j = 0; j < kRouteCachedIds; ++j)
      if (tid + j * nt < q.rows) f(ids[j], tid + j * nt);
    for (int r = tid + kRouteCachedIds * nt; r < q.rows; r += nt) f(route_id(q, r), r);
  };
  for (int64_t e = tid; e < E; e += nt) {
    counts[e] = 0;
    fill[e] = 0;
  }
  __syncthreads();
  each_row([&](int64_t id, int r) {
    if (id >= 0 && id < E) {
      atomicAdd(counts + id, 1);
    } else {
      for (int64_t c = 0; c < q.n; ++c) q.y[int64_t(r) * q.n + c] = 0.0f;
      if (q.user_flag) atomicExch(q.user_flag, 1u);
      if (q.debug_flags) {
        atomicExch(q.debug_flags, 1u);
        atomicMin(q.debug_flags + 1, uint32_t(r));
      }
    }
  });
  __syncthreads();
  // Each thread scans a contiguous run of experts; block-wide exclusive scan of the run totals.
  const int64_t per = (E + nt - 1) / nt, e0 = std::min<int64_t>(E, tid * per), e1 = std::min<int64_t>(E, e0 + per);
  int rsum = 0, isum = 0;
  for (int64_t e = e0; e < e1; ++e) {
    const int c = counts[e];
    rsum += c;
    isum += (c + q.tile - 1) / q.tile;
  }
  int rinc = rsum, iinc = isum;
#pragma unroll
  for (int o = 1; o < 32; o *= 2) {
    const int a = __shfl_up_sync(0xffffffffu, rinc, o), b = __shfl_up_sync(0xffffffffu, iinc, o);
    if (lane >= o) {
      rinc += a;
      iinc += b;
    }
  }
  if (lane == 31) {
    warp_rows[warp] = rinc;
    warp_items[warp] = iinc;
  }
  __syncthreads();
  if (warp == 0) {  // inclusive scan of the warp totals
    const int nw = nt / 32;
    int a = lane < nw ? warp_rows[lane] : 0, b = lane < nw ? warp_items[lane] : 0;
#pragma unroll
    for (int o = 1; o < 32; o *= 2) {
      const int ua = __shfl_up_sync(0xffffffffu, a, o), ub = __shfl_up_sync(0xffffffffu, b, o);
      if (lane >= o) {
        a += ua;
        b += ub;
      }
    }
    if (lane < nw) {
      warp_rows[lane] = a;
      warp_items[lane] = b;
    }
  }
  __syncthreads();
  int rbase = (warp > 0 ? warp_rows[warp - 1] : 0) + rinc - rsum;
  int ibase = (warp > 0 ? warp_items[warp - 1] : 0) + iinc - isum;
  for (int64_t e = e0; e < e1; ++e) {
    const int c = counts[e];
    offsets[e] = rbase;
    item_off[e] = ibase;
    rbase += c;
    ibase += (c + q.tile - 1) / q.tile;
  }
  if (tid == nt - 1) *q.n_items = ibase, valid_rows = rbase;  // the last thread ends at the totals
  __syncthreads();
  each_row([&](int64_t id, int r) {
    if (id >= 0 && id < E) q.row_list[offsets[id] + atomicAdd(fill + id, 1)] = r;
    if (r >= valid_rows) q.row_list[r] = -1;  // the tail left by invalid ids: in no item
  });
  for (int64_t e = e0; e < e1; ++e) {
    const int c = counts[e];
    for (int j = 0, it = item_off[e]; j * q.tile < c; ++j, ++it) {
      q.items[3 * it] = int(e);
      q.items[3 * it + 1] = offsets[e] + j * q.tile;
      q.items[3 * it + 2] = std::min(q.tile, c - j * q.tile);
    }
  }
}

// ---- x -> pieces -----------------------------------------------------------------------------------
// One warp per (x row, sub-block), lane = element (split_x_sub_block, qmv.cuh).
__global__ void __launch_bounds__(256) split_x_kernel(const float* x, int64_t rows, int64_t nsb, int64_t k,
                                                      uint8_t* xq, float* zero, int64_t zero_count, bool early,
                                                      bool perm4) {
  // Launched with programmatic dependence (split_x): the kernel ahead may write x or still read
  // the previous call's pieces and outputs, so nothing is touched before it ends.
  asm volatile("griddepcontrol.wait;" ::: "memory");
  // The mat-vec kernel (launched with programmatic dependence) may start its prologue and weight
  // loads now: what wrote its routed ids has completed, and its griddepcontrol.wait still waits
  // for this grid's writes. early = false releases it only after this CTA's work (split_x).
  if (early) asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
  const int lane = threadIdx.x & 31;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < zero_count; i += int64_t(gridDim.x) * blockDim.x)
    zero[i] = 0.0f;
  const int64_t unit = int64_t(blockIdx.x) * (blockDim.x >> 5) + (threadIdx.x >> 5);
  if (unit >= rows * nsb) return;
  const int64_t row = unit / nsb, sb = unit - row * nsb;
  // perm4 (raw 4-bit affine rows, formats.cuh FAffineRaw): position i holds element 2(i % 16) + i / 16,
  // the order in which a lane's raw code word splits into low and high nibbles.
  const int elem = perm4 ? 2 * (lane & 15) + (lane >> 4) : lane;
  split_x_sub_block(x[row * k + sb * 32 + elem], lane, xq + unit * kQmvXRecord);
  if (!early) asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
}

void split_x(const QmvParams& p, cudaStream_t stream) {
  const int64_t units = p.x_rows * p.nsb;
  if (units <= 0) return;
  // A programmatic launch (p.programmatic) places split_x's CTAs while the kernel ahead runs (they
  // wait for it), so its launch latency leaves the decode chain. The mat-vec behind it reads the
  // routed ids before its own griddepcontrol.wait; that stays safe because split_x releases it
  // only after its wait, so whatever wrote the ids has completed.
  const unsigned grid = unsigned((units + 7) / 8);
  const bool early = p.early;
  if (p.programmatic) {
    launch_pdl(split_x_kernel, dim3(grid), 256, 0, stream, p.x, p.x_rows, p.nsb, p.k, p.xq, p.zero, p.zero_count, early,
               p.perm4);
  } else {
    split_x_kernel<<<grid, 256, 0, stream>>>(p.x, p.x_rows, p.nsb, p.k, p.xq, p.zero, p.zero_count, early, p.perm4);
    LMK_LAUNCH_CHECK(split_x_kernel);
  }
}

// ---- pack_ggml: byte gather / scatter through packed::source_of -----------------------------------
__global__ void pack_kernel(const uint8_t* raw, PackedView p, int64_t chunks, int64_t matrix_bytes, uint8_t* out,
                            bool unpack) {
  const int64_t stride = int64_t(gridDim.x) * blockDim.x, bytes = matrix_bytes * p.n_experts;
  for (int64_t off = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; off < bytes; off += stride) {
    const int64_t e = off / matrix_bytes;
    const int64_t src = packed::source_of(p.type, p.n, p.row_bytes, chunks, off - e * matrix_bytes);
    const int64_t at = e * p.n * p.row_bytes + src;  // in the raw [E, N, K] bytes
    if (!unpack) out[off] = src < 0 ? uint8_t(0) : raw[at];
    else if (src >= 0) out[at] = static_cast<const uint8_t*>(p.data)[off];
  }
}

// pack_ggml's gather for format T: a block per record (grid-stride). The record's 16 raw row pieces
// (chunk_bytes each) are staged in shared memory with coalesced 2-byte loads (every GGML block and
// field is 2-byte aligned), all of a thread's loads in flight before its stores; then each thread
// builds its packed words there (lane_src / hdr_src) and stores them coalesced. Rows past n and
// blocks past the row are zeros. It runs per call on the raw-block paths (repack_raw), so its
// speed counts; the byte-wise source_of kernel above serves unpacking.
constexpr int kPackThreads = 128;
template <DType T>
__global__ void __launch_bounds__(kPackThreads) pack_records_kernel(const uint8_t* __restrict__ raw, int64_t n,
                                                                    int64_t row_bytes, int64_t expert_stride,
                                                                    int64_t tiles, int64_t chunks, int64_t experts,
                                                                    uint32_t* __restrict__ out) {
  constexpr int LW = packed::lane_words(T), HW = packed::hdr_words(T), CB = int(packed::chunk_bytes(T));
  constexpr int kHalves = 16 * CB / 2, JL = (kHalves + kPackThreads - 1) / kPackThreads;
  constexpr int kWords = (256 * LW + 64 * HW) / 4, JW = (kWords + kPackThreads - 1) / kPackThreads;
  __shared__ uint16_t stage[kHalves + 2];  // [row][CB / 2]
  const uint8_t* sb = reinterpret_cast<const uint8_t*>(stage);
  const int64_t per_matrix = tiles * chunks, records = per_matrix * experts;
  for (int64_t rec = blockIdx.x; rec < records; rec += gridDim.x) {
    const int64_t e = rec / per_matrix, tile = rec % per_matrix / chunks, col0 = rec % chunks * CB;
    const uint8_t* rows = raw + e * expert_stride + tile * 16 * row_bytes + col0;
    const int live_rows = int(n - tile * 16 < 16 ? n - tile * 16 : 16);
    const int live_halves = int(row_bytes - col0 < CB ? row_bytes - col0 : CB) / 2;
    uint16_t h[JL];
#pragma unroll
    for (int j = 0; j < JL; ++j) {
      const int i = int(threadIdx.x) + kPackThreads * j, r = i / (CB / 2), c = i - r * (CB / 2);
      h[j] = (kHalves % kPackThreads == 0 || i < kHalves) && r < live_rows && c < live_halves
                 ? reinterpret_cast<const uint16_t*>(rows + r * row_bytes)[c]
                 : uint16_t(0);
    }
    __syncthreads();  // the previous record's words are built
#pragma unroll
    for (int j = 0; j < JL; ++j) {
      const int i = int(threadIdx.x) + kPackThreads * j;
      if (kHalves % kPackThreads == 0 || i < kHalves) stage[i] = h[j];
    }
    __syncthreads();
    uint32_t* dst = out + rec * kWords;
#pragma unroll
    for (int j = 0; j < JW; ++j) {
      const int w = int(threadIdx.x) + kPackThreads * j, in = 4 * w;
      if (kWords % kPackThreads != 0 && w >= kWords) break;
      uint32_t v = 0;
      if (in < 256 * LW) {
        const int lane = (in >> 4) & 31, u = 4 * (in >> 9) + ((in & 15) >> 2);  // u = 2·word + r
        const int r = (lane >> 2) + 8 * (u & 1), src = r * CB + packed::lane_src(T, u >> 1, lane & 3);
        v = uint32_t(stage[src / 2]) | uint32_t(stage[src / 2 + 1]) << 16;  // src is even
      } else {
        const int word = (in - 256 * LW) >> 2, gr = word / HW, r = (gr >> 1) + 8 * (gr & 1);  // gr = 2g + r
#pragma unroll
        for (int b = 0; b < 4; ++b) {
          const int src = packed::hdr_src(T, (word % HW) * 4 + b);
          if (src >= 0) v |= uint32_t(sb[r * CB + src]) << (8 * b);
        }
      }
      dst[w] = v;
    }
  }
}

// A block per record (grid-stride), its threads over the record's words: one index split per
// record instead of three 64-bit divisions per word (the pack runs per call in quantized_matmul's
// repack path, so its speed counts).
__global__ void pack_affine_kernel(const packed::AffineSource src, const packed::Geometry g, int64_t experts,
                                   uint32_t* out) {
  const int64_t per_matrix = g.tiles * g.chunks, records = per_matrix * experts;
  const int rec_words = int(g.rec / 4);
  for (int64_t r = blockIdx.x; r < records; r += gridDim.x) {
    const int64_t e = r / per_matrix, tile = r % per_matrix / g.chunks, chunk = r % g.chunks;
    for (int w = int(threadIdx.x); w < rec_words; w += int(blockDim.x))
      out[r * rec_words + w] = packed::affine_record_word(src, g, e, tile, chunk, 4 * w);
  }
}

// The packed format of a PackedView: a GGML type or an MLX affine one (formats.cuh, FAffine).
template <int Bits, bool F16, typename Fn>
void visit_affine_gs(int gs, Fn&& fn) {
  if (gs == 32) fn(FAffine<Bits, F16, 0>{});
  else if (gs == 64) fn(FAffine<Bits, F16, 1>{});
  else fn(FAffine<Bits, F16, 2>{});
}
template <int Bits, typename Fn>
void visit_affine(const PackedView& w, Fn&& fn) {
  if (w.affine_f16) visit_affine_gs<Bits, true>(w.affine_gs, fn);
  else visit_affine_gs<Bits, false>(w.affine_gs, fn);
}
template <typename Fn>
void visit_packed(const PackedView& w, Fn&& fn) {
  if (w.affine_bits == 4) visit_affine<4>(w, fn);
  else if (w.affine_bits == 6) visit_affine<6>(w, fn);
  else if (w.affine_bits == 8) visit_affine<8>(w, fn);
  else visit_format(w.type, fn);
}

// Packs raw GGML blocks (experts expert_stride bytes apart) into p's layout at out.
void launch_pack_records(const void* raw, const PackedView& p, int64_t expert_stride, void* out, cudaStream_t st) {
  const auto g = packed::geometry(p.type, p.n, p.k, p.row_bytes);
  const int64_t records = g.tiles * g.chunks * p.n_experts;
  if (records <= 0) return;
  const unsigned blocks = unsigned(std::min<int64_t>(records, int64_t(sm_count()) * 16));
  visit_format(p.type, [&](auto f) {
    constexpr DType T = decltype(f)::kType;
    pack_records_kernel<T><<<blocks, kPackThreads, 0, st>>>(static_cast<const uint8_t*>(raw), p.n, p.row_bytes, expert_stride,
                                                   g.tiles, g.chunks, p.n_experts, static_cast<uint32_t*>(out));
    LMK_LAUNCH_CHECK(pack_records_kernel);
  });
}

void launch_pack(const void* raw, const PackedView& p, void* out, bool unpack, Stream& s) {
  const auto g = packed::geometry(p.type, p.n, p.k, p.row_bytes);
  const int64_t blocks = std::min<int64_t>(ceil_div(g.matrix_bytes() * p.n_experts, 256), int64_t(sm_count()) * 16);
  pack_kernel<<<unsigned(blocks), 256, 0, stream_of(s)>>>(static_cast<const uint8_t*>(raw), p, g.chunks,
                                                          g.matrix_bytes(), static_cast<uint8_t*>(out), unpack);
  LMK_LAUNCH_CHECK(pack_kernel);
}

// ---- quantized dispatch -------------------------------------------------------------------------------

void run_qmv_fmt(DType t, const QmvParams& p, cudaStream_t s) {
  split_x(p, s);
  visit_format(t, [&](auto f) { run_qmv<decltype(f)>(p, s); });
}
void run_qmm_fmt(DType t, const QmmParams& p, int bm, cudaStream_t s) {
  if (p.rs.n_items > 65535)
    LMK_THROW(Unsupported, "quantized matmul: ", p.rs.n_items, " row tiles exceed the grid limit (65535)");
  visit_format(t, [&](auto f) { run_qmm<decltype(f)>(p, bm, s); });
}

// 4-byte aligned start and end of every expert: the fast word loads never leave the tensor.
bool fast_weights(const QWeight& w) {
  return is_aligned(w.data, 4) && (w.n * w.row_bytes) % 4 == 0 && w.expert_stride % 4 == 0;
}

QmvParams qmv_params(const QWeight& w, const float* x, float* y) {
  QmvParams p;
  p.x = x;
  p.k = w.k;
  p.y = y;
  p.n = w.n;
  p.w = static_cast<const uint8_t*>(w.data);
  p.row_bytes = w.row_bytes;
  p.expert_stride = w.expert_stride;
  p.nsb = w.k / 32;
  p.w_end = p.w + (w.n_experts - 1) * w.expert_stride + w.n * w.row_bytes;
  return p;
}

// The x pieces of the int8 mat-vec (qmv.cuh) for x_rows activation rows, carved from cv.
template <class CarveT>
void qmv_scratch(QmvParams& p, int64_t x_rows, CarveT& cv) {
  p.x_rows = x_rows;
  p.xq = cv.template take<uint8_t>(x_rows * p.nsb * kQmvXRecord);
}

QmmParams qmm_params(const QWeight& w, const __nv_bfloat16* xb, float* y) {
  QmmParams p;
  p.xb = xb;
  p.k = w.k;
  p.y = y;
  p.n = w.n;
  p.w = static_cast<const uint8_t*>(w.data);
  p.row_bytes = w.row_bytes;
  p.expert_stride = w.expert_stride;
  p.nsb = w.k / 32;
  p.fast = fast_weights(w);
  return p;
}

// Tile rows of the mat-mat kernel: 128 when that still gives two CTAs per SM.
int qmm_tile(int64_t m, int64_t n) {
  if (kQmmBm == 64 || kQmmBm == 128) return int(kQmmBm);
  const int64_t tiles128 = ceil_div(m, 128) * ceil_div(n, kQmmBN);
  return tiles128 >= 2 * int64_t(sm_count()) ? 128 : 64;
}

// ---- cuBLASLt ---------------------------------------------------------------------------------------

#define LMK_CUBLAS_CHECK(call)                                                                   \
  do {                                                                                           \
    cublasStatus_t st_ = (call);                                                                 \
    if (st_ != CUBLAS_STATUS_SUCCESS) LMK_THROW(Cuda, #call, " failed: cuBLAS status ", int(st_)); \
  } while (0)

cublasLtHandle_t lt_handle(int dev) {
  static std::mutex mu;
  static std::map<int, cublasLtHandle_t> handles;  // one per device, kept for the process lifetime
  std::lock_guard<std::mutex> lock(mu);
  auto it = handles.find(dev);
  if (it != handles.end()) return it->second;
  cublasLtHandle_t h = nullptr;
  LMK_CUBLAS_CHECK(cublasLtCreate(&h));
  handles[dev] = h;
  return h;
}

cudaDataType_t cuda_type(DType t) {
  switch (t) {
    case DType::f32: return CUDA_R_32F;
    case DType::f16: return CUDA_R_16F;
    case DType::bf16: return CUDA_R_16BF;
    default: LMK_THROW(Unsupported, "matmul: dtype ", name(t), " has no cuBLASLt type");
  }
}

// Largest power of two (<= 256) dividing every byte quantity.
uint32_t alignment_of(std::initializer_list<uint64_t> v) {
  uint64_t a = 256;
  for (uint64_t x : v)
    while (a > 1 && x % a) a /= 2;
  return uint32_t(a);
}

// A matmul plan: descriptors and the heuristic's algorithm, cached per shape (never freed: the
// handles live for the process).
struct LtPlan {
  cublasLtMatmulDesc_t desc = nullptr;
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, c = nullptr;
  cublasLtMatmulAlgo_t algo{};
  bool ok = false;
};

// D[N, M'] (col-major) = op(W)ᵀ·X per batch: W [N, K] row-major (col-major K x N, transposed),
// X [M', K] row-major (col-major K x M'), D = y [M', N] row-major (col-major N x M').
const LtPlan& lt_plan(int dev, cudaDataType_t wt, cudaDataType_t xt, cudaDataType_t yt, int64_t n, int64_t mp,
                      int64_t k, int64_t batch, uint32_t al_w, uint32_t al_x, uint32_t al_y) {
  using Key = std::tuple<int, int, int, int, int64_t, int64_t, int64_t, int64_t, uint32_t, uint32_t, uint32_t>;
  static std::mutex mu;
  static std::map<Key, LtPlan> plans;
  std::lock_guard<std::mutex> lock(mu);
  const Key key{dev, int(wt), int(xt), int(yt), n, mp, k, batch, al_w, al_x, al_y};
  auto it = plans.find(key);
  if (it != plans.end()) return it->second;
  LtPlan& p = plans[key];
  const cublasComputeType_t compute = CUBLAS_COMPUTE_32F;  // f32 accumulation; f32 operands: no TF32
  LMK_CUBLAS_CHECK(cublasLtMatmulDescCreate(&p.desc, compute, CUDA_R_32F));
  const cublasOperation_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
  LMK_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof(ta)));
  LMK_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof(tb)));
  LMK_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p.a, wt, uint64_t(k), uint64_t(n), k));
  LMK_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p.b, xt, uint64_t(k), uint64_t(mp), k));
  LMK_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p.c, yt, uint64_t(n), uint64_t(mp), n));
  if (batch > 1) {
    const int32_t bc = int32_t(batch);
    const int64_t sa = n * k, sb = mp * k, sc = mp * n;
    LMK_CUBLAS_CHECK(cublasLtMatrixLayoutSetAttribute(p.a, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &bc, sizeof(bc)));
    LMK_CUBLAS_CHECK(cublasLtMatrixLayoutSetAttribute(p.b, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &bc, sizeof(bc)));
    LMK_CUBLAS_CHECK(cublasLtMatrixLayoutSetAttribute(p.c, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &bc, sizeof(bc)));
    LMK_CUBLAS_CHECK(cublasLtMatrixLayoutSetAttribute(p.a, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &sa, sizeof(sa)));
    LMK_CUBLAS_CHECK(cublasLtMatrixLayoutSetAttribute(p.b, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &sb, sizeof(sb)));
    LMK_CUBLAS_CHECK(cublasLtMatrixLayoutSetAttribute(p.c, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &sc, sizeof(sc)));
  }
  cublasLtMatmulPreference_t pref = nullptr;
  LMK_CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref));
  const uint64_t wsb = uint64_t(kLtWorkspaceBytes);
  LMK_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &wsb, sizeof(wsb)));
  LMK_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &al_w, sizeof(al_w)));
  LMK_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &al_x, sizeof(al_x)));
  LMK_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &al_y, sizeof(al_y)));
  LMK_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &al_y, sizeof(al_y)));
  cublasLtMatmulHeuristicResult_t res{};
  int found = 0;
  const cublasStatus_t st =
      cublasLtMatmulAlgoGetHeuristic(lt_handle(dev), p.desc, p.a, p.b, p.c, p.c, pref, 1, &res, &found);
  cublasLtMatmulPreferenceDestroy(pref);
  if (st == CUBLAS_STATUS_SUCCESS && found > 0) {
    p.algo = res.algo;
    p.ok = true;
  }
  return p;
}

// Large dense GEMM through cuBLASLt; returns false when no algorithm fits (caller falls back).
bool dense_cublas(const DenseArgs& a, Stream& s) {
  const cudaStream_t st = stream_of(s);
  const int dev = s.device().index;
  const void* x = a.x;
  DType xt = a.xt;
  const int64_t rows = a.b1 * a.m;
  if (a.xt == DType::f32 && a.xround != DType::f32) {  // dense_mm bf16 / f16: round activations once
    Workspace& ws = workspace(s, rows * a.k * 2);
    if (a.xround == DType::bf16) convert(static_cast<const float*>(a.x), static_cast<__nv_bfloat16*>(ws.scratch), rows * a.k, st);
    else convert(static_cast<const float*>(a.x), static_cast<__half*>(ws.scratch), rows * a.k, st);
    x = ws.scratch;
    xt = a.xround;
  }
  const int64_t rep = a.b1 / a.b0, mp = rep * a.m;
  const uint64_t ws_ = uint64_t(element_size(a.wt)), xs = uint64_t(element_size(xt)), ys = uint64_t(element_size(a.yt));
  const uint32_t al_w = alignment_of({uint64_t(reinterpret_cast<uintptr_t>(a.w)), uint64_t(a.k) * ws_,
                                      a.b0 > 1 ? uint64_t(a.n * a.k) * ws_ : 0});
  const uint32_t al_x = alignment_of({uint64_t(reinterpret_cast<uintptr_t>(x)), uint64_t(a.k) * xs,
                                      a.b0 > 1 ? uint64_t(mp * a.k) * xs : 0});
  const uint32_t al_y = alignment_of({uint64_t(reinterpret_cast<uintptr_t>(a.y)), uint64_t(a.n) * ys,
                                      a.b0 > 1 ? uint64_t(mp * a.n) * ys : 0});
  const LtPlan& plan = lt_plan(dev, cuda_type(a.wt), cuda_type(xt), cuda_type(a.yt), a.n, mp, a.k, a.b0, al_w, al_x, al_y);
  if (!plan.ok) return false;
  Workspace& ws = workspace(s, 0);
  const float alpha = 1.0f, beta = 0.0f;
  LMK_CUBLAS_CHECK(cublasLtMatmul(lt_handle(dev), plan.desc, &alpha, a.w, plan.a, x, plan.b, &beta, a.y, plan.c, a.y,
                                  plan.c, &plan.algo, ws.lt_workspace, size_t(ws.lt_workspace_bytes), st));
  return true;
}

GemvParams gemv_params(const DenseArgs& a) {
  GemvParams g;
  g.w = a.w;
  g.wt = a.wt;
  g.x = a.x;
  g.xt = a.xt;
  g.y = a.y;
  g.yt = a.yt;
  g.xround = a.xround;
  g.b0 = a.b0;
  g.b1 = a.b1;
  g.m = a.m;
  g.n = a.n;
  g.k = a.k;
  return g;
}

[[noreturn]] void throw_invalid_id(const QmmIdArgs& a, uint32_t row) {
  int64_t id = 0;
  if (a.ids_i32) {
    int32_t v = 0;
    LMK_CUDA_CHECK(cudaMemcpy(&v, static_cast<const int32_t*>(a.ids) + row, 4, cudaMemcpyDeviceToHost));
    id = v;
  } else {
    uint32_t v = 0;
    LMK_CUDA_CHECK(cudaMemcpy(&v, static_cast<const uint32_t*>(a.ids) + row, 4, cudaMemcpyDeviceToHost));
    id = v;
  }
  LMK_THROW(InvalidArgument, "quantized_matmul_id_ggml: invalid expert id ", id, " at row ", row,
            " (n_experts=", a.w.n_experts, ")");
}

// The RowSource fields every expert-routed launch shares (mode and items are set by the caller).
RowSource routed_source(const QmmIdArgs& a, int64_t n_experts, uint32_t* error_flag) {
  if (a.rows > int64_t(INT32_MAX) / 4)
    LMK_THROW(Unsupported, "quantized_matmul_id_ggml: ", a.rows, " routed rows exceed the supported 2^29");
  RowSource rs;
  rs.ids = a.ids;
  rs.ids_i32 = a.ids_i32;
  rs.n_experts = n_experts;
  rs.top_k = a.top_k;
  rs.per_slot = a.input_per_slot;
  rs.user_flag = error_flag;
  return rs;
}

// LMK_DEBUG_CHECKS: the workspace's {any invalid, lowest invalid row} flags, reset on the stream
// (null when off), and afterwards a synchronizing check that throws the CPU's error.
uint32_t* debug_flags_begin(bool debug, Workspace& ws, cudaStream_t st) {
  if (!debug) return nullptr;
  LMK_CUDA_CHECK(cudaMemsetAsync(ws.flags, 0, 4, st));
  LMK_CUDA_CHECK(cudaMemsetAsync(ws.flags + 1, 0xFF, 4, st));
  return ws.flags;
}
void debug_flags_end(const QmmIdArgs& a, const uint32_t* dbg, cudaStream_t st) {
  if (!dbg) return;
  uint32_t flags[2] = {0, 0};
  LMK_CUDA_CHECK(cudaMemcpyAsync(flags, dbg, 8, cudaMemcpyDeviceToHost, st));
  LMK_CUDA_CHECK(cudaStreamSynchronize(st));
  if (flags[0]) throw_invalid_id(a, flags[1]);
}

// The routing pre-pass: per-expert row lists of a.rows rows cut into items of at most `tile`
// rows; rs becomes a grouped RowSource over them (n_items is an upper bound, the real count is
// on the device).
void build_routes(const QmmIdArgs& a, int tile, int64_t max_items, uint32_t* error_flag, uint32_t* dbg, Carve& cv,
                  RowSource& rs, cudaStream_t st) {
  const int64_t E = a.w.n_experts, R = a.rows;
  RouteParams q;
  q.ids = a.ids;
  q.ids_i32 = a.ids_i32;
  q.rows = int(R);
  q.n_experts = E;
  q.tile = tile;
  q.counts = cv.take<int>(E);
  q.fill = cv.take<int>(E);
  q.offsets = cv.take<int>(E);
  q.item_off = cv.take<int>(E);
  q.row_list = cv.take<int>(R);
  q.items = cv.take<int>(3 * max_items);
  q.n_items = cv.take<int>(1);
  q.y = a.y;
  q.n = a.w.n;
  q.user_flag = error_flag;
  q.debug_flags = dbg;
  // Shared-memory counters instead of global atomics (a chain of dependent L2 round trips): H100,
  // packed T512 (4096 rows over 128 experts), cold: q4_0 114.9 -> 110.2 us, q4_K 123.7 -> 121.1,
  // q6_K 129.4 -> 126.5, q8_0 142.6 -> 140.9.
  if (E <= kRouteSmemExperts) route_kernel<true><<<1, 1024, size_t(16 * E), st>>>(q);
  else route_kernel<false><<<1, 1024, 0, st>>>(q);
  LMK_LAUNCH_CHECK(route_kernel);
  rs.mode = ItemMode::grouped;
  rs.per_item = tile;
  rs.n_items = max_items;
  rs.n_items_dev = q.n_items;
  rs.items = q.items;
  rs.row_list = q.row_list;
}

// Route pre-pass scratch bytes for R rows, E experts and max_items items.
int64_t route_scratch_bytes(int64_t E, int64_t R, int64_t max_items) {
  return align_up(4 * E, 256) * 4 + align_up(4 * R, 256) + align_up(12 * max_items, 256) + 256;
}

// Rows routed one by one (no pre-pass) up to this many (T·top_k); grouped beyond. 64 covers 8
// tokens of top-8 routing (H100, q4_0 T8: packed 52.3 -> 45.6 us, raw 49.6 -> 43.7 us at 64 against 32).
const int64_t kDirectRows = tuning("LMK_MM_DIRECT_ROWS", 64);
// Packed experts: single rows up to 64 whatever their spread (kPackedDirectAnyRows, below the
// mat-mat's kMatMatRowsPerExpert), and up to 256 (32 tokens of top-8) while experts average at
// most kPackedMatMatRowsPerExpert rows, where the ring kernel's warp walk makes them beat 8-row
// mat-vec pieces though they read a shared expert once per row (H100, T32 at 2 rows per expert
// then: q4_0 130.8 -> 84.1 us, q4_K 139.3 -> 94.9, q6_K 161.4 -> 121.7; the mat-mat now beats both
// there, see quantized_matmul_id_packed).
constexpr int64_t kPackedDirectAnyRows = 64;
const int64_t kPackedDirectRows = tuning("LMK_MM_PACKED_DIRECT_ROWS", 256);
// The shared-memory ring kernel for the decode cases: -1 where it measured faster (qmvp_ring_default),
// 0 never, 1 always (plain M <= 8 and single routed rows).
const int kQmvpRing = int(tuning("LMK_QMVP_RING", -1));
// The ring kernel's warp walk for single routed rows: -1 from 16 units per SM (two CTAs of 8
// warps: every warp gets at least one unit's chunks), 0 never, 1 always.
const int kQmvpWarpWalk = int(tuning("LMK_QMVP_WARP_WALK", -1));
// Dense (dense_mm bf16 / f16): rows per weight slice up to which the TMA mat-vec replaces
// cuBLASLt (LMK_DENSE_TMA_ROWS; -1: by device, dense_tma_rows).
const int64_t kDenseTmaRows = tuning("LMK_DENSE_TMA_ROWS", -1);
// Packed grouped mat-mat: rows per item (0: from the average rows per expert; sweeps only).
const int64_t kPackedRoutedTile = tuning("LMK_MM_PACKED_ROUTED_TILE", 0);
// Grouped: the tensor-core path once experts average more rows than this.
const double kMatMatRowsPerExpert = double(tuning("LMK_MM_MATMAT_PER_EXPERT", 16));
// The same for packed experts past 64 rows, in tenths (quantized_matmul_id_packed).
const double kPackedMatMatRowsPerExpert = double(tuning("LMK_MM_PACKED_MATMAT_PER_EXPERT_X10", 15)) / 10.0;

}  // namespace

namespace {
// Whether the kernels read each weight once for these items (one plain item): then the weight
// loads take the L2 evict-first policy (l2_hint.cuh, stream_policy). H100, cold, 4096x14336: M = 16
// / 32 2-10% faster (q8_0 39.7 -> 35.9 us, q6_K 34.9 -> 31.8, q4_0 26.6 -> 25.5); M <= 8 and
// routed rows unchanged. Several items re-read the weights from L2 (M = 512: up to 3% slower with
// it), so they keep the normal policy.
bool read_once(const RowSource& rs) { return kWeightsEvictFirst && rs.mode == ItemMode::plain && rs.n_items == 1; }

// The packed mat-vec for the items of rs: x split into pieces (split_x), then qmvp over K-slices
// (and the slice sum when K needs several).
void run_packed(const float* x, int64_t x_rows, const PackedView& w, const RowSource& rs, int item_rows, float* y,
                int64_t y_rows, Carve& cv, cudaStream_t st) {
  const auto g = geometry_of(w);
  const int mt = item_rows <= 1 ? 1 : item_rows <= 2 ? 2 : item_rows <= 4 ? 4 : 8;  // the kernel's rows
  const int64_t slice_chunks = qmvp_slice_chunks(g.chunks, mt);
  const int64_t slices = ceil_div(g.chunks, slice_chunks);
  QmvParams sp;  // split_x's view of x
  sp.x = x;
  sp.k = w.k;
  sp.nsb = w.k / 32;
  qmv_scratch(sp, x_rows, cv);
  QmvpParams p;
  p.w = static_cast<const uint8_t*>(w.data);
  p.expert_bytes = g.matrix_bytes();
  p.n = w.n;
  p.nsb = sp.nsb;
  p.tiles = g.tiles;
  p.chunks = g.chunks;
  p.xq = sp.xq;
  p.rs = rs;
  p.y = y;
  p.y_rows = y_rows;
  p.part = slices > 1 ? cv.take<float>(slices * y_rows * w.n) : nullptr;
  p.slices = int(slices);
  p.slice_chunks = int(slice_chunks);
  p.ring = kQmvpRing;
  p.weights_evict_first = read_once(rs);
  // Single routed rows with many units: the ring kernel's warp walk (qmv_packed.cuh), which adds
  // the two halves of a unit split between warps into zeroed outputs. It beats the CTA walk and
  // qmvp_kernel for every format (H200, 768x2048 experts, T8: q4_0 33.6 -> 26.2 us, q4_K 39.4 ->
  // 31.5, q6_K 43.3 -> 35.1, q8_0 39.0 -> 38.0), so it takes the ring kernel unless
  // LMK_QMVP_RING=0.
  const bool single_routed = rs.mode == ItemMode::direct || (rs.mode != ItemMode::plain && rs.per_item == 1);
  const int64_t units = rs.n_items * g.tiles;
  p.warp_walk = single_routed && p.ring != 0 && slices == 1 &&
                (kQmvpWarpWalk < 0 ? units >= 16 * int64_t(sm_count()) : kQmvpWarpWalk != 0);
  if (p.warp_walk) sp.zero = y, sp.zero_count = y_rows * w.n;
  // split_x launched programmatically for routed rows: H100, 768x2048 experts, back to back,
  // median of three rounds, plain -> programmatic: T1 q4_0 10.3 -> 9.1 us, q8_0 10.0 -> 8.9, q4_K
  // 9.4 -> 8.8, q6_K 9.8 -> 9.2; T8 q8_0 35.8 -> 33.7, q6_K 34.4 -> 32.8, q4_K 24.7 -> 23.9, q4_0
  // 23.9 -> 23.5 (cold equal). Plain rows keep the plain launch (M = 1 q8_0 24.9 -> 25.8, q6_K
  // 22.3 -> 23.3 with it). LMK_SPLIT_X_PDL=0 turns it off.
  static const bool split_x_pdl = tuning("LMK_SPLIT_X_PDL", 1) != 0;
  sp.programmatic = split_x_pdl && rs.mode != ItemMode::plain;
  // split_x releases the mat-vec (its prologue and first weight copies) before its own work where
  // the mat-vec has at most 32 units per SM (LMK_SPLIT_X_EARLY: -1 that rule, 0 never, 1 always).
  // H100, same call, early against late, q4_0: routed 768x2048 T1 graph 5.1 / 5.7 us, T8 back to
  // back 17.6-19.1 / 20.1-20.5 (the deep ring), plain 1x4096x14336 cold 16.8 / 17.4; but T24 (70
  // units per SM) cold 50.5 / 45.4, T16 (47) equal (likely: the early weight copies delay
  // split_x's own loads and stores, which the whole mat-vec waits for).
  static const int split_x_early = int(tuning("LMK_SPLIT_X_EARLY", -1));
  sp.early = split_x_early < 0 ? units <= 32 * int64_t(sm_count()) : split_x_early != 0;
  split_x(sp, st);
  visit_packed(w, [&](auto f) { run_qmvp<decltype(f)>(p, st); });
}

// Scratch bytes of run_packed.
int64_t packed_scratch_bytes(const PackedView& w, int64_t x_rows, int item_rows, int64_t y_rows) {
  const auto g = geometry_of(w);
  const int mt = item_rows <= 1 ? 1 : item_rows <= 2 ? 2 : item_rows <= 4 ? 4 : 8;
  const int64_t slices = ceil_div(g.chunks, qmvp_slice_chunks(g.chunks, mt));
  return align_up(qmv_scratch_bytes(x_rows, w.k / 32), 256) + (slices > 1 ? align_up(slices * y_rows * w.n * 4, 256) : 0);
}

// Rows per item of the packed mat-mat (the kernel's wgmma N) for items of up to `rows` rows.
int qmmp_tile(int64_t rows) { return rows <= 32 ? 32 : rows <= 64 ? 64 : 128; }

// K-splits of the packed mat-mat: enough CTAs (one per SM) to cover the GPU when the 128-row tiles
// x items do not, at least 2 chunks per split. Plain items only (split partials cover every row).
int64_t qmmp_splits(const packed::Geometry& g, int64_t items, bool plain, int bm) {
  if (!plain) return 1;
  const int64_t units = ceil_div(g.tiles, int64_t(qmmp_warps(bm))) * items;  // one CTA per SM walks them
  const int64_t want = std::min<int64_t>(sm_count() / std::max<int64_t>(units, 1), g.chunks / 2);
  if (want <= 1) return 1;
  return ceil_div(g.chunks, ceil_div(g.chunks, want));
}

// Scratch bytes of run_packed_mm.
int64_t packed_mm_scratch_bytes(const PackedView& w, int64_t x_rows, int64_t items, bool plain, int bm, int64_t y_rows) {
  const auto g = geometry_of(w);
  const int64_t splits = qmmp_splits(g, items, plain, bm);
  const int64_t rows = plain ? x_rows : y_rows;  // routed: one permuted row per slot
  return align_up(rows * g.chunks * 256 * 2, 256) + (splits > 1 ? align_up(splits * y_rows * w.n * 4, 256) : 0);
}

// TMA map of the permuted x (bf16 [rows][kp]) in boxes of 64 values x bm rows, 128-byte swizzle
// (the layout of the wgmma B descriptor); rows past the end read as zeros.
CUtensorMap x_tensor_map(const __nv_bfloat16* xp, int64_t rows, int64_t kp, int bm) {
  return tensor_map_2d(CU_TENSOR_MAP_DATA_TYPE_BFLOAT16, xp, rows, kp, kp * 2, 64, bm, "x");
}

// The packed mat-mat for the items of rs (bm rows each): x permuted into bf16 once (routed rows
// in row-list order, so an item's rows are contiguous for TMA), then qmmp over 128-row tiles x
// items (x K-splits, summed behind it, when that grid is small).
void run_packed_mm(const float* x, int64_t x_rows, const PackedView& w, const RowSource& rs, int bm, float* y,
                   int64_t y_rows, Carve& cv, cudaStream_t st) {
  const auto g = geometry_of(w);
  const int64_t kp = g.chunks * 256;
  const bool routed = rs.mode == ItemMode::grouped;
  const int64_t rows = routed ? y_rows : x_rows;  // routed: one permuted row per slot
  if (rows > INT32_MAX || kp > INT32_MAX)  // TMA box coordinates are 32-bit
    LMK_THROW(Unsupported, "quantized mat-mat: x of ", rows, " rows x ", kp, " values exceeds the 32-bit TMA coordinates");
  auto* xp = cv.take<__nv_bfloat16>(rows * kp);
  const dim3 grid(unsigned(ceil_div(kp / 16, int64_t(kPermuteThreads))), unsigned(std::clamp<int64_t>(rows, 1, 65535)));
  qmmp_permute_x_kernel<><<<grid, kPermuteThreads, 0, st>>>(
      x, rows, w.k, kp, routed ? rs.row_list : nullptr, rs.top_k, rs.per_slot, xp);
  LMK_LAUNCH_CHECK(qmmp_permute_x_kernel);
  QmmpParams p;
  p.xmap = x_tensor_map(xp, rows, kp, qmmp_tile(bm));  // the box is the kernel's item (launch_qmmp)
  p.w = static_cast<const uint8_t*>(w.data);
  p.expert_bytes = g.matrix_bytes();
  p.n = w.n;
  p.tiles = g.tiles;
  p.chunks = g.chunks;
  p.rs = rs;
  p.y = y;
  p.y_rows = y_rows;
  p.splits = int(qmmp_splits(g, rs.n_items, rs.mode == ItemMode::plain, bm));
  p.split_chunks = ceil_div(g.chunks, int64_t(p.splits));
  p.weights_evict_first = read_once(rs);
  p.part = p.splits > 1 ? cv.take<float>(p.splits * y_rows * w.n) : nullptr;
  visit_packed(w, [&](auto f) { run_qmmp<decltype(f)>(p, bm, st); });
}

// ---- raw GGML blocks through the packed kernels ------------------------------------------------------
// The ring mat-vec reads raw rows in place (formats.cuh FGgmlRaw) when K % 256 == 0 and every row
// and expert starts 16-byte aligned at a multiple of 16 bytes (q6_K: K % 2048 == 0, q2_K: K % 1024
// == 0, iq4_xs: K % 512 == 0): up to 8 plain rows, and up to kRawRingRoutedRows routed rows one
// by one (32 tokens of top-8; its warp walk reads an expert shared by several rows once per row,
// still less than packing every expert first). LMK_MM_RAW_RING=0 turns it off.
// Where the raw-block mat-vec (qmv.cuh) measured faster, it stays (H200, same call, two rounds,
// best of each; cold / graph, ring against qmv.cuh):
//   q4_0 and q8_0 at one or two rows: 1x4096x14336 q4_0 21.5 / 20.5, graph 17.0 / 16.3 us;
//     151936x4096 q4_0 182 / 146, q8_0 245 / 198; M = 2 q4_0 23.5 / 23.3 (graph 18.9 / 19.6);
//   q4_K single rows past two 16-row tiles per SM: 14336x4096 28.0 / 27.1, 151936x4096 187 / 184
//     (while 1x4096x14336 takes the ring: 23.1 / 24.2, graph 18.7 / 20.1);
//   routed q4_0 up to 8 rows (one token of top-8): T1 12.4 / 11.2 (graph 8.9 / 8.0; two calls).
// Everything else is as fast or faster on the ring: iq4_nl 1x4096x14336 23.7 / 24.7 (graph 19.6 /
// 20.6), 151936x4096 187 / 192; routed q4_0 T8 33.5 / 33.2 (graph 29.1 / 29.8); q6_K 1x4096x14336
// 26.6 / 80.8, q5_1 22.9 / 25.7, q4_0 M = 8 45.2 / 88.5.
const int kRawRing = int(tuning("LMK_MM_RAW_RING", -1));  // -1 that rule, 0 never, 1 always
constexpr int64_t kRawRingRoutedRows = 256;
bool raw_ring_ok(const QWeight& w, int64_t rows, bool routed) {
  if (kRawRing == 0 || w.k % 256 != 0 || !is_aligned(w.data, 16) || w.row_bytes % 16 != 0 ||
      (w.n_experts > 1 && w.expert_stride % 16 != 0))
    return false;
  if (kRawRing == 1) return true;
  const DType t = w.type;
  if (routed) return t != DType::q4_0 || rows > 8;
  if (rows > 2) return true;
  if (t == DType::q4_0 || t == DType::q8_0) return false;
  return rows == 2 || t != DType::q4_K || ceil_div(w.n, int64_t(16)) <= 2 * int64_t(sm_count());
}

// The ring kernel on raw rows (GGML blocks, or MLX codes with their scales and biases set by the
// caller): x's pieces in `scratch` (split_x; perm4: the nibble order of raw 4-bit MLX words), one
// plain item of up to 8 rows or rs's direct routed rows (as quantized_matmul_id_packed's direct
// items: the warp walk from 16 units per SM, into outputs split_x zeroes).
struct RawRing {
  QmvParams sp;  // split_x's view of x
  QmvpParams p;
};
RawRing raw_ring_params(const void* w, int64_t expert_bytes, int64_t n, int64_t k, int64_t row_bytes, const float* x,
                        int64_t x_rows, const RowSource& rs, float* y, int64_t y_rows, void* scratch, bool perm4) {
  const bool routed = rs.mode == ItemMode::direct;
  const int64_t tiles = ceil_div(n, int64_t(16)), units = (routed ? rs.n_items : 1) * tiles;
  if (units > int64_t(INT32_MAX))
    LMK_THROW(Unsupported, "quantized matmul: ", units, " (row, 16 weight rows) units exceed the mat-vec grid");
  RawRing r;
  Carve cv{static_cast<char*>(scratch)};
  r.sp.x = x;
  r.sp.k = k;
  r.sp.nsb = k / 32;
  r.sp.perm4 = perm4;
  r.sp.early = units <= 32 * int64_t(sm_count());  // as run_packed
  r.sp.programmatic = routed;                       // as run_packed for routed rows
  qmv_scratch(r.sp, x_rows, cv);
  QmvpParams& p = r.p;
  p.w = static_cast<const uint8_t*>(w);
  p.expert_bytes = expert_bytes;
  p.n = n;
  p.nsb = k / 32;
  p.tiles = tiles;
  p.chunks = k / 256;
  p.xq = r.sp.xq;
  p.rs = rs;
  p.y = y;
  p.y_rows = y_rows;
  p.slice_chunks = int(p.chunks);
  p.raw_row_bytes = row_bytes;
  if (routed) {
    p.warp_walk = kQmvpWarpWalk < 0 ? units >= 16 * int64_t(sm_count()) : kQmvpWarpWalk != 0;
    if (p.warp_walk) r.sp.zero = y, r.sp.zero_count = y_rows * n;
  }
  return r;
}

void raw_ring_matmul(const QWeight& w, const float* x, int64_t x_rows, const RowSource& rs, float* y, int64_t y_rows,
                     Workspace& ws, cudaStream_t st) {
  const RawRing r = raw_ring_params(w.data, w.expert_stride, w.n, w.k, w.row_bytes, x, x_rows, rs, y, y_rows,
                                    ws.scratch, false);
  split_x(r.sp, st);
  visit_format(w.type, [&](auto f) {
    using F = FGgmlRaw<decltype(f)>;
    if (rs.mode == ItemMode::direct) run_qmvp_raw_routed<F>(r.p, st);
    else run_qmvp_raw<F>(r.p, st);
  });
}

// Past the ring (more than 8 plain rows, more than kRawRingRoutedRows routed ones) the raw blocks
// are packed per call into stream-ordered scratch (pack_ggml's layout, its gather kernel) and run
// through the packed kernels: the tensor-core mat-mat is many times faster on the packed layout
// than the raw-block kernels (qmm.cuh), and the pack reads and writes the weights once. Up to
// LMK_MM_RAW_REPACK_MB (default 4096) of packed weights; 0 turns it off.
const int64_t kRawRepackBytes = tuning("LMK_MM_RAW_REPACK_MB", 4096) << 20;
bool repack_ok(const QWeight& w) {
  const auto g = packed::geometry(w.type, w.n, w.k, w.row_bytes);
  return is_aligned(w.data, 2) && g.tiles * g.chunks <= kRawRepackBytes / g.rec / w.n_experts;
}
// Routed rows past the ring: the repack where the raw grouped kernels decode slowly, the K-quants
// with 4-bit codes and sub-block scales (H200, 512 tokens of top-8 over 128 768x2048 experts, raw
// kernels against repack: q4_K 353.8 / 208.9 us); the other formats' raw grouped kernels keep up
// with reading every expert once more (q4_0 225.5 / 234.7, q8_0 281.5 / 350.0, q6_K 327.7 / 333.5).
bool repack_routed(DType t) { return t == DType::q4_K || t == DType::q5_K || t == DType::q2_K || t == DType::iq4_xs; }

// The packed copy of w (its experts contiguous) in `buf`'s scratch.
PackedView repack_raw(const QWeight& w, const PoolScratch& buf, cudaStream_t st) {
  PackedView v;
  v.data = buf.ptr;
  v.type = w.type;
  v.n = w.n;
  v.k = w.k;
  v.row_bytes = w.row_bytes;
  v.n_experts = w.n_experts;
  launch_pack_records(w.data, v, w.n_experts > 1 ? w.expert_stride : w.n * w.row_bytes, buf.ptr, st);
  return v;
}
int64_t repacked_bytes(const QWeight& w) {
  return packed::geometry(w.type, w.n, w.k, w.row_bytes).matrix_bytes() * w.n_experts;
}
}  // namespace

// ---- entry points -----------------------------------------------------------------------------------

void quantized_matmul(const QmmArgs& a, MatmulPath path, Stream& s) {
  DeviceGuard guard(s.device());
  const cudaStream_t st = stream_of(s);
  const bool mat_mat = path == MatmulPath::matmat || (path == MatmulPath::automatic && a.rows > kMatvecMaxM);
  if (path == MatmulPath::automatic && mat_mat && repack_ok(a.w)) {
    PoolScratch buf(size_t(repacked_bytes(a.w)), st);
    quantized_matmul_packed(a.x, a.rows, repack_raw(a.w, buf, st), a.y, s);
    return;
  }  // the scratch is freed in stream order, after the mat-mat
  if (!mat_mat && a.rows <= 8 && raw_ring_ok(a.w, a.rows, false)) {
    RowSource rs;
    rs.mode = ItemMode::plain;
    rs.m_rows = a.rows;
    rs.per_item = int(a.rows);
    rs.n_items = 1;
    raw_ring_matmul(a.w, a.x, a.rows, rs, a.y, a.rows, workspace(s, qmv_scratch_bytes(a.rows, a.w.k / 32)), st);
    return;
  }
  if (!mat_mat) {
    QmvParams p = qmv_params(a.w, a.x, a.y);
    p.rs.mode = ItemMode::plain;
    p.rs.m_rows = a.rows;
    p.rs.per_item = int(std::min<int64_t>(a.rows, 8));
    p.rs.n_items = ceil_div(a.rows, int64_t(p.rs.per_item));
    Workspace& ws = workspace(s, qmv_scratch_bytes(a.rows, p.nsb));
    Carve cv{static_cast<char*>(ws.scratch)};
    qmv_scratch(p, a.rows, cv);
    run_qmv_fmt(a.w.type, p, st);
    return;
  }
  Workspace& ws = workspace(s, a.rows * a.w.k * 2);
  auto* xb = static_cast<__nv_bfloat16*>(ws.scratch);
  convert(a.x, xb, a.rows * a.w.k, st);
  QmmParams p = qmm_params(a.w, xb, a.y);
  const int bm = qmm_tile(a.rows, a.w.n);
  p.rs.mode = ItemMode::plain;
  p.rs.m_rows = a.rows;
  p.rs.per_item = bm;
  p.rs.n_items = ceil_div(a.rows, bm);
  run_qmm_fmt(a.w.type, p, bm, st);
}

void quantized_matmul_id(const QmmIdArgs& a, MatmulPath path, uint32_t* error_flag, bool debug, Stream& s) {
  DeviceGuard guard(s.device());
  const cudaStream_t st = stream_of(s);
  const int64_t E = a.w.n_experts, R = a.rows;
  RowSource rs = routed_source(a, E, error_flag);
  if (R > 0 && path != MatmulPath::matmat && R <= kRawRingRoutedRows && raw_ring_ok(a.w, R, true)) {
    Workspace& ws = workspace(s, qmv_scratch_bytes(a.x_rows, a.w.k / 32));
    uint32_t* dbg = debug_flags_begin(debug, ws, st);
    rs.debug_flags = dbg;
    rs.mode = ItemMode::direct;
    rs.n_items = R;
    raw_ring_matmul(a.w, a.x, a.x_rows, rs, a.y, R, ws, st);
    debug_flags_end(a, dbg, st);
    return;
  }
  if (R > kRawRingRoutedRows && path == MatmulPath::automatic && repack_routed(a.w.type) && repack_ok(a.w)) {
    PoolScratch buf(size_t(repacked_bytes(a.w)), st);
    quantized_matmul_id_packed(a, repack_raw(a.w, buf, st), error_flag, debug, s);
    return;
  }  // the scratch is freed in stream order, after the kernels

  const bool direct = path != MatmulPath::matmat && R <= kDirectRows;
  const double avg = double(R) / double(std::min(E, R));
  const bool mat_mat = path == MatmulPath::matmat || (path == MatmulPath::automatic && !direct && avg > kMatMatRowsPerExpert);
  // Mat-vec pieces: single rows when experts average one row, else up to 8 rows per piece.
  const int tile = mat_mat ? 64 : avg > 1.0 ? 8 : 1;
  const int64_t max_items = std::min(E, R) + ceil_div(R, tile);
  const int64_t route_bytes = route_scratch_bytes(E, R, max_items);
  const int64_t xb_bytes = mat_mat ? align_up(a.x_rows * a.w.k * 2, 256) : 0;
  const int64_t qmv_bytes = !mat_mat ? qmv_scratch_bytes(a.x_rows, a.w.k / 32) : 0;
  Workspace& ws = workspace(s, (direct ? 0 : route_bytes + xb_bytes) + qmv_bytes);
  uint32_t* dbg = debug_flags_begin(debug, ws, st);
  rs.debug_flags = dbg;

  if (direct) {
    QmvParams p = qmv_params(a.w, a.x, a.y);
    rs.mode = ItemMode::direct;
    rs.n_items = R;
    p.rs = rs;
    Carve cv{static_cast<char*>(ws.scratch)};
    qmv_scratch(p, a.x_rows, cv);
    run_qmv_fmt(a.w.type, p, st);
  } else {
    Carve cv{static_cast<char*>(ws.scratch)};
    build_routes(a, tile, max_items, error_flag, dbg, cv, rs, st);
    if (mat_mat) {
      auto* xb = cv.take<__nv_bfloat16>(a.x_rows * a.w.k);
      convert(a.x, xb, a.x_rows * a.w.k, st);
      QmmParams p = qmm_params(a.w, xb, a.y);
      p.rs = rs;
      run_qmm_fmt(a.w.type, p, 64, st);
    } else {
      QmvParams p = qmv_params(a.w, a.x, a.y);
      p.rs = rs;
      qmv_scratch(p, a.x_rows, cv);
      run_qmv_fmt(a.w.type, p, st);
    }
  }
  debug_flags_end(a, dbg, st);
}

void quantized_matmul_id_packed(const QmmIdArgs& a, const PackedView& w, uint32_t* error_flag, bool debug, Stream& s) {
  if (a.rows == 0) return;  // no routed rows: nothing to compute (and no expert average to take)
  DeviceGuard guard(s.device());
  const cudaStream_t st = stream_of(s);
  const int64_t E = w.n_experts, R = a.rows;
  RowSource rs = routed_source(a, E, error_flag);
  // Up to 64 rows (8 tokens of top-8) one item per routed row unless experts average more than
  // kMatMatRowsPerExpert; beyond, per-expert row lists through the mat-mat (items of 32 / 64 /
  // 128 rows) once experts average more than kPackedMatMatRowsPerExpert, else one item per row up
  // to kPackedDirectRows rows and 1- or 8-row mat-vec pieces past them. H100, T32 (256 rows, 2
  // per expert), cold (back to back), single rows -> mat-mat: q4_0 81.0 (69.5) -> 67.9 (66.0) us,
  // q4_K 87.3 (77.4) -> 73.2 (71.7), q6_K 119.3 (110.0) -> 84.8 (74.5), q8_0 138.3 (128.7) ->
  // 99.7 (88.8); T8 stays faster as single rows than as 8-row mat-vec pieces (q4_0 31.6 ->
  // 38.8 us).
  const double avg = double(R) / double(std::min(E, R));
  const bool direct = (R <= kPackedDirectAnyRows && avg <= kMatMatRowsPerExpert) ||
                      (R <= kPackedDirectRows && avg <= kPackedMatMatRowsPerExpert);
  const bool mat_mat = !direct && avg > kPackedMatMatRowsPerExpert;
  // Mat-mat items: a tile above the average, so that most experts take one item (each item
  // decodes its expert's weights once). H100, T512 (32 rows per expert on average, so 45% of the
  // experts of a random routing have more), cold, 32 / 64 / 128-row items: q4_0 110.1 / 103.4 /
  // 123.6 us, q4_K 118.9 / 112.9 / 132.4, q6_K 126.5 / 118.4 / 139.4, q8_0 138.3 / 131.9 / 144.4.
  const int64_t mm_rows = kPackedRoutedTile > 0 ? kPackedRoutedTile : int64_t(avg * 1.1);
  const int tile = mat_mat ? qmmp_tile(mm_rows) : direct ? 1 : avg > 1.0 ? 8 : 1;
  const int64_t max_items = std::min(E, R) + ceil_div(R, tile);
  const int64_t route_bytes = direct ? 0 : route_scratch_bytes(E, R, max_items);
  const int64_t run_bytes = mat_mat ? packed_mm_scratch_bytes(w, a.x_rows, max_items, false, tile, R)
                                    : packed_scratch_bytes(w, a.x_rows, tile, R);
  Workspace& ws = workspace(s, route_bytes + run_bytes);
  uint32_t* dbg = debug_flags_begin(debug, ws, st);
  rs.debug_flags = dbg;
  Carve cv{static_cast<char*>(ws.scratch)};
  if (direct) {
    rs.mode = ItemMode::direct;
    rs.n_items = R;
  } else {
    build_routes(a, tile, max_items, error_flag, dbg, cv, rs, st);
  }
  if (mat_mat) run_packed_mm(a.x, a.x_rows, w, rs, tile, a.y, R, cv, st);
  else run_packed(a.x, a.x_rows, w, rs, tile, a.y, R, cv, st);
  debug_flags_end(a, dbg, st);
}

void pack(const void* raw, const PackedView& p, void* packed, Stream& s) {
  DeviceGuard guard(s.device());
  if (is_aligned(raw, 2)) launch_pack_records(raw, p, p.n * p.row_bytes, packed, stream_of(s));
  else launch_pack(raw, p, packed, false, s);  // fields at odd addresses: the byte-wise gather
}

void pack_affine(const packed::AffineSource& src, const PackedView& p, void* packed, Stream& s) {
  DeviceGuard guard(s.device());
  const auto g = geometry_of(p);
  const int64_t records = g.tiles * g.chunks * p.n_experts;  // every expert's
  const int64_t blocks = std::min<int64_t>(records, int64_t(sm_count()) * 16);
  pack_affine_kernel<<<unsigned(blocks), 256, 0, stream_of(s)>>>(src, g, p.n_experts, static_cast<uint32_t*>(packed));
  LMK_LAUNCH_CHECK(pack_affine_kernel);
}

void unpack(const PackedView& p, void* raw, Stream& s) {
  DeviceGuard guard(s.device());
  launch_pack(nullptr, p, raw, true, s);
}


void quantized_matmul_packed(const float* x, int64_t rows, const PackedView& w, float* y, Stream& s) {
  DeviceGuard guard(s.device());
  RowSource rs;
  rs.mode = ItemMode::plain;
  rs.m_rows = rows;
  const bool mat_mat = rows > kMatvecMaxM;
  rs.per_item = mat_mat ? qmmp_tile(rows) : int(std::min<int64_t>(rows, 8));
  rs.n_items = ceil_div(rows, int64_t(rs.per_item));
  Workspace& ws = workspace(s, mat_mat ? packed_mm_scratch_bytes(w, rows, rs.n_items, true, rs.per_item, rows)
                                       : packed_scratch_bytes(w, rows, rs.per_item, rows));
  Carve cv{static_cast<char*>(ws.scratch)};
  if (mat_mat) run_packed_mm(x, rows, w, rs, rs.per_item, y, rows, cv, stream_of(s));
  else run_packed(x, rows, w, rs, rs.per_item, y, rows, cv, stream_of(s));
}

int64_t quantized_matmul_affine_raw_scratch(int64_t rows, int64_t k) { return align_up(qmv_scratch_bytes(rows, k / 32), 256); }

void quantized_matmul_affine_raw(const float* x, int64_t rows, const packed::AffineSource& src, int64_t n, int64_t k,
                                 int64_t row_bytes, bool f16, float* y, void* scratch, Stream& s,
                                 const AffineRawRoute* route) {
  DeviceGuard guard(s.device());
  const cudaStream_t st = stream_of(s);
  RowSource rs;
  if (route) {  // single routed rows
    rs.mode = ItemMode::direct;
    rs.n_items = rows * route->top_k;
    rs.ids = route->ids;
    rs.ids_i32 = route->ids_i32;
    rs.n_experts = route->n_experts;
    rs.top_k = route->top_k;
    rs.user_flag = route->error_flag;
  } else {
    rs.mode = ItemMode::plain;
    rs.m_rows = rows;
    rs.per_item = int(rows);
    rs.n_items = 1;
  }
  RawRing r = raw_ring_params(src.codes, n * row_bytes, n, k, row_bytes, x, rows, rs, y, route ? rs.n_items : rows,
                              scratch, src.bits == 4);
  QmvpParams& p = r.p;
  p.raw_groups = k / src.gs;
  p.raw_scales = reinterpret_cast<const uint8_t*>(src.scales);
  p.raw_biases = reinterpret_cast<const uint8_t*>(src.biases);
  split_x(r.sp, st);
  auto run = [&](auto f) {
    if (route) run_qmvp_raw_routed<decltype(f)>(p, st);
    else run_qmvp_raw<decltype(f)>(p, st);
  };
  auto by_gs = [&]<int Bits, bool F16>() {
    if (src.gs == 32) run(FAffineRaw<Bits, F16, 0>{});
    else if (src.gs == 64) run(FAffineRaw<Bits, F16, 1>{});
    else run(FAffineRaw<Bits, F16, 2>{});
  };
  if (src.bits == 4) f16 ? by_gs.template operator()<4, true>() : by_gs.template operator()<4, false>();
  else f16 ? by_gs.template operator()<8, true>() : by_gs.template operator()<8, false>();
}

// Rows per weight slice up to which dense_mm takes the TMA mat-vec rather than convert + cuBLASLt.
// The crossover follows the memory: cold, Mx4096x14336, the same card for both paths,
//   H100 (3.35 TB/s peak): convert + cuBLAS -> TMA, bf16 M = 16 58.1 -> 56.5 us, M = 32 59.5 -> 56.8,
//     f16 M = 32 59.3 -> 56.4;
//   H200 (4.9 TB/s: 3201 MHz, 6144 bits): TMA -> convert + cuBLAS, bf16 M = 16 47.8 -> 43.7,
//     M = 32 49.6 -> 44.7, f16 M = 32 47.9 -> 44.4 (cuBLAS gains with the bandwidth, the TMA
//     kernel less).
// So 32 rows below 3.8 TB/s, else 8 (the mat-vec, gemv, takes 8 and fewer everywhere).
namespace {
int64_t dense_tma_rows() {
  if (kDenseTmaRows >= 0) return kDenseTmaRows;
  return peak_dram_gbps() < 3800.0 ? 32 : 8;
}
}  // namespace

void dense(const DenseArgs& a, Stream& s) {
  DeviceGuard guard(s.device());
  const cudaStream_t st = stream_of(s);
  const GemvParams p = gemv_params(a);
  if (a.own_kernel || a.m <= 8) return gemv(p, st);
  // Up to dense_tma_rows() rows per weight slice (bf16 / f16 weights, f32 activations rounded to
  // them), the TMA mat-vec reads the weights once and needs no conversion pass.
  if (a.m <= dense_tma_rows() && gemv_tma(p, st)) return;
  if (!dense_cublas(a, s)) gemv(p, st);
}

void workspace_reserve(Stream& s, int64_t scratch_bytes) {
  DeviceGuard guard(s.device());
  (void)workspace(s, scratch_bytes);
  (void)lt_handle(s.device().index);
}

}  // namespace lmk::cuda
