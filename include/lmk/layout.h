// Layout and data movement (spec: core-ops.md §7; take_along_axis and feature_concat from
// training-and-vision.md §7 and §9). Every op here is a pure copy unless it says so: results are
// bit-exact (the one exception, a 16-bit -> f32 widening or an f32 -> f16 store, is exact / RNE).
//
// Rules common to the family:
// - Outputs never alias inputs (any overlap is InvalidArgument): output indices differ from input
//   indices, so an in-place call would race.
// - Tensors are contiguous unless an argument says it may be a strided view.
// - Zero sizes are InvalidArgument, except the documented no-ops of the kv_cache_copy family.
// - A dtype outside an op's list is Unsupported; every other rejection is InvalidArgument.
#pragma once
#include <cstdint>

#include "lmk/device.h"
#include "lmk/tensor.h"

namespace lmk {

// dst = src, element by element in row-major order of src's shape. src is any view: rank <= 8,
// any plain dtype (f32, f16, bf16, f64, i8, i16, i32, i64, u8, u32), arbitrary non-negative
// element strides (0 broadcasts; a negative stride is InvalidArgument). dst: contiguous, same
// dtype and shape as src, disjoint from every byte src spans. The general form of mlx-native's
// strided_copy_f32 / offset_copy_f32 (an offset copy is a copy of a view that starts later).
// CUDA: contiguous views become one device memcpy; views whose unit-stride dim is not the last
// go through a tiled transpose; everything else through an indexed copy (16-byte vectors when the
// innermost dim is contiguous and aligned).
void copy(const Tensor& src, const Tensor& dst, Stream& stream = default_stream());

// x [R, C] -> out [C, R]: out[c, r] = x[r, c]. Any plain dtype (the spec's f32/f16, plus bf16 and
// every other 1/2/4/8-byte type).
void transpose(const Tensor& x, const Tensor& out, Stream& stream = default_stream());

// x [A, B, C] -> out [A, C, B]: out[a, c, b] = x[a, b, c]. Any plain dtype (spec: bf16, f16).
void transpose_last2(const Tensor& x, const Tensor& out, Stream& stream = default_stream());

// x [A, B, C] -> out [B, A, C]: out[b, a, c] = x[a, b, c] (seq <-> heads). out has x's dtype
// (f32, f16, bf16), or is f32 for a bf16/f16 x (the permutation fused with exact widening).
void permute_021(const Tensor& x, const Tensor& out, Stream& stream = default_stream());

// index_select on dim 0: out[i, :] = src[idx[i], :]. src [rows, W] and out [N, W] in f32, f16 or
// bf16 (same dtype); idx [N] (any shape with N elements) u32 or i32.
// Out-of-range indices (>= rows, or negative i32): the CPU raises InvalidArgument before writing
// anything; CUDA never reads out of bounds and clamps them to the last row, like mlx-native's
// gather_f32 (indices live on the device, so lmk does no host-side check there).
void gather(const Tensor& src, const Tensor& idx, const Tensor& out, Stream& stream = default_stream());

// Embedding lookup: out[b, :] = table[ids[b], :], table [V, H] and out [B, H] in f32, f16 or bf16,
// ids [B] u32 or i32. An id >= V (or a negative i32 id) yields a row of +0.0 on every backend
// (training-and-vision.md §6; never an out-of-bounds read, never an error). The same row-gather
// kernel as `gather`; quantized tables are the quant family's business.
void embedding(const Tensor& table, const Tensor& ids, const Tensor& out, Stream& stream = default_stream());

// y[r, j] = x[r, idx[r, j]]; x f32 [R, Cc], idx u32 [R, k], y f32 [R, k], 1 <= k <= Cc. An index
// >= Cc yields 0.0 on every backend (training-and-vision.md §7; no error).
void take_along_axis(const Tensor& x, const Tensor& idx, const Tensor& y, Stream& stream = default_stream());

// De-interleave by column range: qkv [T, q_sp + k_sp + v_sp] -> q [T, q_sp], k [T, k_sp],
// v [T, v_sp]. f32, f16 or bf16 (all four the same). One launch on CUDA.
void qkv_split(const Tensor& qkv, const Tensor& q, const Tensor& k, const Tensor& v,
               Stream& stream = default_stream());

// GQA expansion, tiled: src [T, Hg, K] -> dst [T, H, K], dst[t, h, k] = src[t, h mod Hg, k]
// (not the block repeat h / (H / Hg)). H mod Hg != 0 is InvalidArgument. f32, f16, bf16.
void repeat_tiled(const Tensor& src, const Tensor& dst, Stream& stream = default_stream());

// out[r, c] = in[r, start + c] for c < out_cols; in [R, in_cols], out [R, out_cols];
// start + out_cols <= in_cols. f32, f16, bf16.
void slice_2d_cols(const Tensor& in, int64_t start, const Tensor& out, Stream& stream = default_stream());

// dst[r, start + c] = src[r, c] for c < src_cols; src [R, src_cols], dst [R, dst_cols];
// start + src_cols <= dst_cols. Only that column slab of dst is written (a concat is one call per
// piece). f32, f16, bf16.
void copy_2d_cols_into(const Tensor& src, const Tensor& dst, int64_t start, Stream& stream = default_stream());

// Vision prelude K5: dst[t, offset + j] = src[t, j], src [T, d], dst [T, S]; the same contract as
// copy_2d_cols_into (offset + d > S: "overflows the destination row"). f32, f16, bf16.
void feature_concat(const Tensor& src, const Tensor& dst, int64_t offset, Stream& stream = default_stream());

// ---- KV cache writes. Capacities come from the cache's shape. A wrapping (ring) call writes
// each slot at most once: n > capacity is InvalidArgument (the caller passes the last
// min(n, capacity) tokens). Zero-size calls (below) are no-ops after the dtype/device checks.

// Where kv_cache_copy writes: token t goes to slot write_pos + t (ring = false; write_pos + n must
// not exceed the capacity) or (write_pos + t) mod capacity (ring = true, sliding window).
struct KvCacheWrite {
  int64_t write_pos = 0;
  bool ring = false;
};
// src [n_new, row] -> cache [capacity, row]: cache[slot(t), :] = src[t, :]. Same dtype, f16, bf16
// (a bit copy) or f32. n_new == 0 or row == 0: no-op.
void kv_cache_copy(const Tensor& src, const Tensor& cache, KvCacheWrite where, Stream& stream = default_stream());

// One decode token, all heads: src [H * Dh] (any shape with that many elements) -> cache
// [H, capacity, Dh] at slot seq_pos (already wrapped, < capacity):
// cache[h, seq_pos, e] = src[h * Dh + e]. f32 -> f32 or f32 -> f16 (RNE). H == 0 or Dh == 0: no-op.
void kv_cache_copy_batch(const Tensor& src, const Tensor& cache, int64_t seq_pos, Stream& stream = default_stream());

// Tokens src_offset ... src_offset + n_tokens - 1 of a token-major src [n_src, H, Dh] go to the
// head-major ring cache [H, capacity, Dh] at slot (seq_pos_start + t) mod capacity:
// cache[h, slot, e] = src[src_offset + t, h, e]. Requires src_offset + n_tokens <= n_src and
// n_tokens <= capacity.
struct KvCacheSeq {
  int64_t src_offset = 0;
  int64_t n_tokens = 0;
  int64_t seq_pos_start = 0;
};
// f32 -> f32, f32 -> f16 (RNE), bf16 -> f32 (exact). n_tokens, H or Dh == 0: no-op.
void kv_cache_copy_seq(const Tensor& src, const Tensor& cache, KvCacheSeq p, Stream& stream = default_stream());
// K and V with the same metadata in one launch (mlx-native's *_dual): each pair follows
// kv_cache_copy_seq's contract; k and v tensors have identical shapes and dtypes, and no output
// overlaps any other tensor.
void kv_cache_copy_seq_dual(const Tensor& k_src, const Tensor& v_src, const Tensor& k_cache, const Tensor& v_cache,
                            KvCacheSeq p, Stream& stream = default_stream());

}  // namespace lmk
