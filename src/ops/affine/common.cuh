// Device helpers shared by the affine kernels: work items (which activation rows go with which
// expert), dtype loads/stores chosen at run time, MLX code extraction, bf16 tensor-core wrappers.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>
#include <cstring>

#include "cuda/bulk.cuh"
#include "cuda/common.cuh"
#include "lmk/dtype.h"

namespace lmk::cuda::affine {

// ---- work items ------------------------------------------------------------------------------------
// An item is a set of up to T output rows that share one expert. Row j of an item reads
// activation row xrow(j) and writes output row yrow(j).
//   dense:   item i = rows [i*T, min((i+1)*T, rows)), expert 0, xrow = yrow
//   direct:  item i = routed row i alone (T = 1), expert ids[i], xrow = i / top_k
//   grouped: item i from the routing lists (info = {expert, start, count}, pairs[start ..])
enum ItemMode : int { kDense = 0, kDirect = 1, kGrouped = 2 };

struct Items {
  int mode = kDense;
  int rows = 0;       // dense: rows of x and y; direct: routed rows P
  int tile = 1;       // dense: rows per item
  int top_k = 1;      // activation row of routed row r is r / top_k
  const void* ids = nullptr;  // direct: u32 or i32
  int ids_signed = 0;
  int n_experts = 1;
  const int* info = nullptr;     // grouped
  const int* pairs = nullptr;    // grouped
  const int* n_items = nullptr;  // grouped
  int item_base = 0;             // first item of this launch (launches are split at 65535 items)
  uint32_t* error_flag = nullptr;
};

struct ItemHeader {
  int count;   // rows in the item (0: nothing to do)
  int expert;  // -1: a direct item whose id is out of range (row must be zeroed)
};

__device__ __forceinline__ uint32_t routed_id(const Items& it, int r) {
  return it.ids_signed ? uint32_t(static_cast<const int32_t*>(it.ids)[r]) : static_cast<const uint32_t*>(it.ids)[r];
}

// Uniform for every thread of a block (and of a cluster: it depends on the item only).
__device__ __forceinline__ ItemHeader item_header(const Items& it, int item) {
  if (it.mode == kDense) {
    const int start = item * it.tile;
    return {start < it.rows ? min(it.tile, it.rows - start) : 0, 0};
  }
  if (it.mode == kDirect) {
    if (item >= it.rows) return {0, 0};
    const uint32_t e = routed_id(it, item);
    return {1, e < uint32_t(it.n_experts) ? int(e) : -1};
  }
  if (item >= *it.n_items) return {0, 0};
  return {it.info[3 * item + 2], it.info[3 * item]};
}

// Output row of row j of the item (valid for j < count).
__device__ __forceinline__ int item_yrow(const Items& it, int item, int j) {
  if (it.mode == kDense) return item * it.tile + j;
  if (it.mode == kDirect) return item;
  return it.pairs[it.info[3 * item + 1] + j];
}
__device__ __forceinline__ int item_xrow(const Items& it, int yrow) {
  return it.mode == kDense ? yrow : yrow / it.top_k;
}

// ---- run-time dtype access --------------------------------------------------------------------------
__device__ __forceinline__ float load_f(const void* base, int64_t i, DType t) {
  if (t == DType::f32) return static_cast<const float*>(base)[i];
  if (t == DType::bf16) return __bfloat162float(static_cast<const __nv_bfloat16*>(base)[i]);
  return __half2float(static_cast<const __half*>(base)[i]);
}
__device__ __forceinline__ void store_f(void* base, int64_t i, float v, DType t) {
  if (t == DType::f32) static_cast<float*>(base)[i] = v;
  else if (t == DType::bf16) static_cast<__nv_bfloat16*>(base)[i] = __float2bfloat16_rn(v);
  else static_cast<__half*>(base)[i] = __float2half_rn(v);
}

// ---- MLX codes ----------------------------------------------------------------------------------------
// Code k of a packed row of any alignment: a little-endian bit stream, code k at bits
// [k*bits, (k+1)*bits).
__device__ __forceinline__ uint32_t code_at(const uint8_t* row, int64_t k, int bits, int64_t row_bytes) {
  const int64_t bit = k * bits;
  const int64_t byte = bit >> 3;
  const int sh = int(bit & 7);
  uint32_t v = row[byte];
  if (sh + bits > 8 && byte + 1 < row_bytes) v |= uint32_t(row[byte + 1]) << 8;
  return (v >> sh) & ((1u << bits) - 1);
}

// Code i (compile-time after unrolling) of a 32-code chunk held as Bits little-endian words,
// returned as an exact f32 (the code in the mantissa of 2^23, minus 2^23).
template <int Bits>
__device__ __forceinline__ float chunk_code_f32(const uint32_t (&w)[Bits], int i) {
  const int bit = i * Bits, wd = bit >> 5, off = bit & 31;
  uint32_t v;
  if (off + Bits <= 32) {
    v = w[wd] >> off;
  } else {
    const int wd2 = wd + 1 < Bits ? wd + 1 : wd;
    v = __funnelshift_r(w[wd], w[wd2], off);
  }
  return __uint_as_float((v & ((1u << Bits) - 1)) | 0x4B000000u) - 8388608.0f;
}

// ---- bf16 pairs and tensor-core wrappers --------------------------------------------------------------
__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], const void* smem) {
  const uint32_t a = static_cast<uint32_t>(__cvta_generic_to_shared(smem));
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(a)
               : "memory");
}

}  // namespace lmk::cuda::affine
