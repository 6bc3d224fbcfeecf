// Shared pieces of the matmul CUDA kernels: work items (plain row tiles, one expert-routed row,
// or a device-built per-expert row list), loads of 2-byte-aligned block fields, the warp
// reduce-scatter, and the per-(device, stream) workspace.
#pragma once
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "cuda/bulk.cuh"
#include "cuda/common.cuh"
#include "ops/matmul/backend.h"

namespace lmk::cuda::mm {

// ---- workspace ----------------------------------------------------------------------------------
// One per (device, stream), see include/lmk/matmul.h. scratch() grows (after synchronizing the
// stream) when a call needs more; flags is a zero-initialised u32[2] the kernels use for the
// debug mode of out-of-range expert ids: {any invalid, lowest invalid row}; counters are kept at
// zero by the kernels that use them.
struct Workspace {
  void* scratch = nullptr;
  int64_t scratch_bytes = 0;
  void* lt_workspace = nullptr;  // cuBLASLt workspace
  int64_t lt_workspace_bytes = 0;
  uint32_t* flags = nullptr;
  int* counters = nullptr;  // kCounters ints, zero between launches (split-K completion counters)
};
constexpr int64_t kCounters = 4096;
Workspace& workspace(Stream& s, int64_t scratch_bytes);

// ---- work items ----------------------------------------------------------------------------------
enum class ItemMode : int { plain = 0, direct = 1, grouped = 2 };

// Where the rows of a work item come from. Weight row blocks are the second grid dimension.
struct RowSource {
  ItemMode mode = ItemMode::plain;
  int64_t m_rows = 0;              // plain: activation rows (items of `per_item` rows each)
  int per_item = 1;                // plain / grouped: rows per item (<= the kernel's tile)
  int64_t n_items = 0;             // plain / direct: item count; grouped: upper bound
  const int* n_items_dev = nullptr;  // grouped: actual count (device)
  const int* items = nullptr;        // grouped: [n][3] = expert, start in row_list, count
  const int* row_list = nullptr;     // grouped: output rows sorted by expert
  const void* ids = nullptr;         // direct: expert id of each row
  bool ids_i32 = false;
  int64_t n_experts = 1;
  int64_t top_k = 1;
  bool per_slot = false;
  uint32_t* user_flag = nullptr;   // direct: set to 1 on an invalid id (may be null)
  uint32_t* debug_flags = nullptr; // direct: {1, lowest invalid row} (may be null)
};

__device__ __forceinline__ int64_t item_count(const RowSource& rs) {
  return rs.mode == ItemMode::grouped ? int64_t(*rs.n_items_dev) : rs.n_items;
}

__device__ __forceinline__ void record_invalid(const RowSource& rs, int64_t row) {
  if (rs.user_flag) atomicExch(rs.user_flag, 1u);
  if (rs.debug_flags) {
    atomicExch(rs.debug_flags, 1u);
    atomicMin(rs.debug_flags + 1, uint32_t(row));
  }
}

// The head of one item: its expert, how many rows it has and where they start. invalid marks an
// out-of-range expert id (direct mode only): its single output row must be zeroed.
struct ItemHead {
  int64_t expert = 0;
  int64_t start = 0;  // plain: first row; direct: the row; grouped: offset into row_list
  int count = 0;
  bool invalid = false;
};

__device__ __forceinline__ ItemHead item_head(const RowSource& rs, int64_t item) {
  ItemHead h;
  if (rs.mode == ItemMode::plain) {
    h.start = item * rs.per_item;
    const int64_t left = rs.m_rows - h.start;
    h.count = int(left < rs.per_item ? left : rs.per_item);
  } else if (rs.mode == ItemMode::direct) {
    const int64_t id = rs.ids_i32 ? int64_t(static_cast<const int32_t*>(rs.ids)[item])
                                  : int64_t(static_cast<const uint32_t*>(rs.ids)[item]);
    h.invalid = id < 0 || id >= rs.n_experts;
    h.expert = h.invalid ? 0 : id;
    h.start = item;
    h.count = 1;
  } else {
    const int* it = rs.items + 3 * item;
    h.expert = it[0];
    h.start = it[1];
    h.count = it[2];
  }
  return h;
}

// Output row and input (x) row of row m (< count) of an item.
__device__ __forceinline__ void item_row(const RowSource& rs, const ItemHead& h, int m, int64_t& yrow, int64_t& xrow) {
  if (rs.mode == ItemMode::plain) {
    yrow = xrow = h.start + m;
    return;
  }
  yrow = rs.mode == ItemMode::direct ? h.start : int64_t(rs.row_list[h.start + m]);
  // Routed rows number at most 2^29 (routed_source checks): a 32-bit division.
  xrow = rs.per_slot ? yrow : int64_t(uint32_t(yrow) / uint32_t(rs.top_k));
}

// item_row where the caller knows the source is plain (Plain: the single plain item of the
// decode kernels), so the routed paths and their division are not compiled in.
template <bool Plain>
__device__ __forceinline__ void item_row_of(const RowSource& rs, const ItemHead& h, int m, int64_t& yrow, int64_t& xrow) {
  if constexpr (Plain) yrow = xrow = h.start + m;
  else item_row(rs, h, m, yrow, xrow);
}

// Output and input row of each of an item's first `tile` rows into shared memory (-1 past the
// item's count), one thread per row; the caller synchronizes before reading them.
template <int TILE>
__device__ __forceinline__ void stage_item_rows(const RowSource& rs, const ItemHead& h, int tid, int64_t* yrow,
                                                int64_t* xrow) {
  if (tid < TILE) {
    int64_t yr = -1, xr = -1;
    if (tid < h.count) item_row(rs, h, tid, yr, xr);
    yrow[tid] = yr;
    xrow[tid] = xr;
  }
}

// ---- loads ------------------------------------------------------------------------------------------
// 4 bytes at a 2-byte aligned address p inside a block tensor. fast: the tensor (every expert)
// starts and ends 4-byte aligned, so the aligned words overlapping [p, p+4) lie inside it: one
// aligned load, plus the next word when p is 2 mod 4. Otherwise two 2-byte loads.
__device__ __forceinline__ uint32_t ld_u32_2a(const uint8_t* p, bool fast) {
  if (fast) {
    const uintptr_t a = reinterpret_cast<uintptr_t>(p);
    const uint32_t* q = reinterpret_cast<const uint32_t*>(a & ~uintptr_t(3));
    const uint32_t sh = uint32_t(a & 2) * 8;  // 0 or 16
    const uint32_t lo = __ldg(q);
    const uint32_t hi = sh ? __ldg(q + 1) : 0u;
    return __funnelshift_r(lo, hi, sh);
  }
  const uint16_t* h = reinterpret_cast<const uint16_t*>(p);
  return uint32_t(__ldg(h)) | uint32_t(__ldg(h + 1)) << 16;
}
__device__ __forceinline__ uint32_t ld_u16(const uint8_t* p) {
  return __ldg(reinterpret_cast<const unsigned short*>(p));
}
__device__ __forceinline__ float f16_at(const uint8_t* p) { return __half2float(__ushort_as_half(ld_u16(p))); }
__device__ __forceinline__ float f16_lo(uint32_t w) { return __half2float(__ushort_as_half(uint16_t(w & 0xFFFF))); }
__device__ __forceinline__ float f16_hi(uint32_t w) { return __half2float(__ushort_as_half(uint16_t(w >> 16))); }

// Byte-access policies of the format decoders (formats.cuh): the same decoder reads blocks in
// place in global memory or from a shared-memory stage.
struct GlobalBytes {
  bool fast = false;  // see ld_u32_2a
  __device__ __forceinline__ uint32_t u32(const uint8_t* p) const { return ld_u32_2a(p, fast); }
  __device__ __forceinline__ uint32_t u16(const uint8_t* p) const { return ld_u16(p); }
};
// Shared memory, any 2-byte aligned address inside a staged copy whose start `base` lies
// `base_mis` bytes past a 4-byte boundary. The misalignment of p is taken from p - base, so when
// base_mis is a constant and the field offsets are too (an unrolled loop), it folds away and an
// aligned word is one load. A stage slot is padded so the word after the last field exists.
struct SharedBytes {
  const uint8_t* base;
  int base_mis;
  __device__ __forceinline__ uint32_t u32(const uint8_t* p) const {
    const int mis = (int(p - base) + base_mis) & 3;
    // Pointer arithmetic (not integer casts) keeps p's shared address space visible: LDS, not LD.
    const uint32_t* q = reinterpret_cast<const uint32_t*>(p - mis);
    return mis ? __funnelshift_r(q[0], q[1], uint32_t(mis) * 8) : q[0];
  }
  __device__ __forceinline__ uint32_t u16(const uint8_t* p) const { return *reinterpret_cast<const uint16_t*>(p); }
};


// ---- warp reduce-scatter ----------------------------------------------------------------------------
// v[0..V) per lane (V a power of two <= 32) summed over the warp with V - 1 + log2(32 / V)
// shuffles. Afterwards lanes with lane % (32 / V) == 0 hold in v[0] the total of output index
// `idx` (returned); the other lanes hold partial or duplicate sums.
template <int V, int HALF, int MASK>
struct ReduceScatter {
  static __device__ __forceinline__ void run(float (&v)[V], int lane, int& idx) {
    const bool upper = (lane & MASK) != 0;
#pragma unroll
    for (int i = 0; i < HALF; ++i) {
      const float send = upper ? v[i] : v[i + HALF];
      const float keep = upper ? v[i + HALF] : v[i];
      v[i] = keep + __shfl_xor_sync(0xffffffffu, send, MASK);
    }
    if (upper) idx += HALF;
    ReduceScatter<V, HALF / 2, MASK / 2>::run(v, lane, idx);
  }
};
template <int V, int MASK>
struct ReduceScatter<V, 0, MASK> {
  static __device__ __forceinline__ void run(float (&v)[V], int, int&) {
#pragma unroll
    for (int m = MASK; m >= 1; m /= 2) v[0] += __shfl_xor_sync(0xffffffffu, v[0], m);
  }
};
template <int V>
__device__ __forceinline__ int warp_reduce_scatter(float (&v)[V], int lane) {
  static_assert(V >= 1 && V <= 32 && (V & (V - 1)) == 0, "V must be a power of two <= 32");
  int idx = 0;
  ReduceScatter<V, V / 2, 16>::run(v, lane, idx);
  return idx;
}
template <int V>
__device__ __forceinline__ bool reduce_writer(int lane) {
  return lane % (32 / V) == 0;
}

// Start of a kernel launched by launch_pdl that reads nothing before the kernel ahead of it has
// finished: wait for it (its writes are then visible), then let the kernel behind this one place
// its CTAs as this one's retire (they too wait before reading or writing anything).
__device__ __forceinline__ void pdl_wait_then_release() {
  asm volatile("griddepcontrol.wait;" ::: "memory");
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
}

// Launches kernel with programmatic stream serialization: it may start before the kernel ahead
// of it on the stream finishes, and must execute griddepcontrol.wait before reading that kernel's
// output. cluster > 1: thread-block clusters of that many CTAs along x.
template <class... Args>
void launch_pdl_cluster(void (*kernel)(Args...), dim3 grid, int threads, int smem, int cluster, cudaStream_t stream,
                        Args... args) {
  cudaLaunchConfig_t cfg = {};
  cfg.gridDim = grid;
  cfg.blockDim = dim3(unsigned(threads));
  cfg.dynamicSmemBytes = size_t(smem);
  cfg.stream = stream;
  cudaLaunchAttribute attr[2];
  attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attr[0].val.programmaticStreamSerializationAllowed = 1;
  attr[1].id = cudaLaunchAttributeClusterDimension;
  attr[1].val.clusterDim.x = unsigned(cluster);
  attr[1].val.clusterDim.y = 1;
  attr[1].val.clusterDim.z = 1;
  cfg.attrs = attr;
  cfg.numAttrs = cluster > 1 ? 2 : 1;
  LMK_CUDA_CHECK(cudaLaunchKernelEx(&cfg, kernel, args...));
}
template <class... Args>
void launch_pdl(void (*kernel)(Args...), dim3 grid, int threads, int smem, cudaStream_t stream, Args... args) {
  launch_pdl_cluster(kernel, grid, threads, smem, 1, stream, args...);
}

}  // namespace lmk::cuda::mm
