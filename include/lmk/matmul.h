// Matmuls (spec: matmul-moe-sampling.md §0, §3, §5): GGML block-format weights (plain and
// expert-routed) and dense weights. Conventions of §0 everywhere: tensors dense row-major,
// weights stored [N, K] ("out x in"), every op computes y[m, n] = Σ_k x[m, k] · W[n, k].
// Outputs are passed in and never alias an input. Zero sizes are rejected.
//
// Precision (§0 table; the tests use e = |y - y_ref| / Σ_k |x_k|·|w_k|, with
// |w_k| := |scale·q_k| + |offset| for formats with a min term):
//   * quantized mat-vec path (M <= 8 by default): f32 activations times the exact f32 dequantized
//     weight, f32 accumulation (e <= 1e-5). Formats with a min/offset term (Q5_1, Q4_K, Q5_K,
//     Q2_K) are evaluated in the factored form scale·Σx·q + offset·Σx that §0 allows. On CUDA
//     the integer codes go into int8 tensor-core mmas: each 32-value sub-block of x is scaled by
//     a power of two and split into four int8 pieces (27 significant bits, more than an f32
//     holds), code·piece sums are exact in int32, and the scales are applied in f32 per
//     sub-block (per 16 values for Q6_K / Q2_K).
//   * quantized mat-mat path (M > 8): tensor cores on bf16 operands — activations rounded to bf16
//     (RNE), each weight dequantized in f32 and rounded once to bf16 — f32 accumulation
//     (bf16 row of the table, e <= 1.6e-2).
//   * dense_mm: bf16 / f16 weights: the activations are rounded to bf16 / f16 first (spec §5.3);
//     f32 weights: true f32 products, never TF32 (e <= 1e-5).
//
// CUDA scratch (no allocation in the steady state): the CUDA backend keeps one workspace per
// (device, stream) — a cuBLASLt handle (per device), a 32 MiB cuBLASLt workspace and a growable
// scratch for converted activations and expert-routing lists. It is created on the first call
// and grows (cudaMalloc, after synchronizing that stream) only when a call needs more than it
// holds; call matmul_workspace_reserve() with the largest shapes first to keep later calls —
// and CUDA graph capture — allocation-free. One workspace serves one stream, so calls on the
// same stream from several host threads at once are not supported (calls on different streams
// are). Scratch needs: quantized mat-vec path (M <= 8, and routed rows) 4.5·(rows of x)·K bytes
// (the activations split into int8 pieces); quantized mat-mat path 2·M·K bytes (bf16 activations); expert-routed
// 16·(E + 1) + 4·R + 12·(min(E, R) + R) bytes plus 2·(rows of x)·K for its mat-mat path
// (R = T·top_k); dense_mm with bf16/f16 weights and M > 8: 2·B1·M·K bytes.
#pragma once
#include <cstdint>

#include "lmk/buffer.h"
#include "lmk/device.h"
#include "lmk/tensor.h"

namespace lmk {

// Which kernel family the quantized matmuls use. `automatic` picks by size (mat-vec for at most
// 8 rows per weight, else the tensor-core mat-mat); the others force a path (the test hook the
// spec asks for). Results agree within the tolerance of the path taken.
enum class MatmulPath : uint8_t { automatic, matvec, matmat };

// ---- §3.1 quantized_matmul_ggml -------------------------------------------------------------------
// y[m, n] = Σ_k x[m, k] · dequant(w)[n, k].
// x: f32 [M, K]; w: [N, K] of q4_0, q5_0, q5_1, q8_0, iq4_nl, q2_K, q4_K, q5_K, q6_K or iq4_xs
// (raw GGUF block bytes, row-major, K % block_elems == 0: 32 for the legacy formats, 256 for
// K-quants and iq4_xs); y: f32 [M, N]. Every format runs on both paths and both backends.
// CUDA, automatic path: up to 8 rows read the raw blocks in place (16-byte aligned weights whose
// rows are a multiple of 16 bytes, with K % 256 == 0, stream them through the packed layout's ring
// mat-vec; any other 2-byte aligned layout a slower kernel). More than 8 rows pack the weight per
// call into stream-ordered scratch (pack_ggml's layout, as many bytes as the packed weight; up to
// the LMK_MM_RAW_REPACK_MB environment value, default 4096 MiB, past which the raw-block mat-mat
// runs) and run the packed mat-mat, so they keep its bf16 operand precision. The forced paths
// (matvec, matmat) run the raw-block kernels. pack_ggml once at load time is faster still.
void quantized_matmul_ggml(const Tensor& x, const Tensor& w, const Tensor& y, Stream& stream = default_stream(),
                           MatmulPath path = MatmulPath::automatic);

// ---- explicit load-time repack for decode (issue 5: "repacking once at load time is allowed") --
// pack_ggml(w) returns the bytes of a GGML weight [N, K] permuted into the layout the CUDA
// mat-vec reads fastest (src/ops/matmul/packed_layout.h): per 16-row tile and 256-element chunk,
// every lane's codes as 16-byte words and the rows' scales beside them. Same bytes as the blocks
// plus zero padding to whole tiles and chunks (N rounded up to 16, K to 256), on w's device.
// Pack once when the model loads, then call quantized_matmul_ggml with the packed weight for
// every batch size: decode (M <= 8) runs the mat-vec with the same arithmetic as the raw weight's
// (the order of the partial sums may differ); M > 8 (speculative verify, prefill) runs a Hopper
// warpgroup-MMA mat-mat that decodes the packed codes straight into its register operand (on
// H100 it is 4-18x faster than the raw-weight mat-mat, see docs/perf.md). Both are deterministic:
// the same call gives the same bits every time. The CPU backend unpacks a 16-row tile at a time
// and runs its own kernel (exact f32 at every M).
// unpack_ggml restores the raw blocks (out: w's dtype, [N, K], on the packed weight's device).
// Expert weights [E, N, K] (contiguous) pack expert by expert (n_experts = E) and serve
// quantized_matmul_id_ggml.
struct PackedGgml {
  DType type = DType::q4_0;
  int64_t n = 0, k = 0;
  int64_t n_experts = 1;
  Buffer bytes;  // the packed matrices, one after another
  Device device() const { return bytes.device(); }
};
PackedGgml pack_ggml(const Tensor& w, Stream& stream = default_stream());
// out: [N, K] (n_experts == 1) or [E, N, K].
void unpack_ggml(const PackedGgml& w, const Tensor& out, Stream& stream = default_stream());
// y[m, n] = Σ_k x[m, k] · dequant(w)[n, k] for a packed w (one expert): x f32 [M, K], y f32
// [M, N]. Precision: M <= 8 (and the CPU backend) as the mat-vec path (e <= 1e-5); on CUDA,
// M > 8 uses bf16 operands (the bf16 row, e <= 1.6e-2): activations rounded to bf16, and weights
// dequantized in bf16 arithmetic (bf16-rounded scale and min term, one rounding of the product:
// at most 3·2^-9 of |scale·q| + |min| per weight) for the formats with unsigned codes, or
// exactly in f32 and rounded once to bf16 for q8_0, iq4_nl and iq4_xs (signed 8-bit codes).
// Scratch: 2·M·(K rounded up to 256) bytes, plus 4·M·N per K-split when the grid is small.
void quantized_matmul_ggml(const Tensor& x, const PackedGgml& w, const Tensor& y, Stream& stream = default_stream());
// quantized_matmul_id_ggml (below) on packed expert weights: same arguments, ids and error
// contract. Up to 64 routed rows while experts average <= 16 rows, or up to 256 while they
// average <= 1.5, run one item per row (mat-vec precision, e <= 1e-5). More run per-expert row
// lists: on CUDA, once experts average more than 16 rows (up to 64 rows) or 1.5 (beyond), up to
// 32 / 64 / 128 rows per item on the packed mat-mat with its bf16 precision; otherwise (and on
// the CPU) up to 8 rows per item on the mat-vec.
void quantized_matmul_id_ggml(const Tensor& x, const PackedGgml& w, const Tensor& ids, const Tensor& y, int64_t top_k,
                              bool input_per_slot = false, Stream& stream = default_stream(),
                              const Tensor& error_flag = Tensor());

// ---- §3.2 mul_mv_ext --------------------------------------------------------------------------------
// Small-batch mat-vec: y[b, m, n] = Σ_k x[b, m, k] · dequant(w)[n, k], the same weight for every
// batch index b (the weight is broadcast across the batch; mlx-native's kernel reads past it).
// w: [N, K] of any format of quantized_matmul_ggml; x: f32 [batch, M, K] (or [M, K] for batch 1);
// y: f32 of x's leading dims and N. M (the second-to-last dim) must be in [2, 8]. The weight is
// read once for all batch·M rows when batch·M <= 8. Same precision as the mat-vec path.
void mul_mv_ext(const Tensor& w, const Tensor& x, const Tensor& y, Stream& stream = default_stream());

// ---- §3.3 quantized_matmul_id_ggml ------------------------------------------------------------------
// Expert-routed matmul: for row r = t·top_k + s, e = ids[r],
//   y[r, n] = Σ_k xin(r)[k] · dequant(w[e])[n, k],  xin(r) = input_per_slot ? x[r] : x[t].
// x: f32 [T, K] (or [T·top_k, K] with input_per_slot); w: [E, N, K] of a quantized_matmul_ggml
// format, expert e at w.stride(0) blocks from expert 0 (rows within an expert contiguous; a
// strided view expresses an expert stride larger than N·K/QK blocks); ids: u32 or i32 [T·top_k]
// or [T, top_k]; y: f32 [T·top_k, N] or [T, top_k, N], written in (token, slot) order. Any top_k,
// repeated experts within a token allowed (each row is computed on its own).
// Invalid ids (>= E, or negative i32): the CPU throws InvalidArgument
// "invalid expert id <id> at row <r> (n_experts=<E>)" before writing anything. CUDA cannot check
// device-resident ids without a sync: it never reads out of bounds, writes such rows as 0.0 and,
// when error_flag (u32 [1] on the device, zeroed by the caller) is given, sets it to 1; with the
// environment variable LMK_DEBUG_CHECKS=1 it synchronizes and throws the CPU's error.
// Grouping (CUDA, no host sync): up to 256 routed rows (32 tokens of top-8) are computed one by one
// (with K % 256 == 0 and 16-byte aligned rows and experts on the ring mat-vec of the raw blocks);
// otherwise a device-side pass counts the rows of each expert, builds per-expert row lists and runs
// the mat-vec kernel (<= 8 rows per expert piece) or the tensor-core mat-mat kernel on each
// expert's rows. Past 256 rows, q4_K, q5_K, q2_K and iq4_xs experts are packed per call into
// stream-ordered scratch (as quantized_matmul_ggml) and take the packed kernels.
void quantized_matmul_id_ggml(const Tensor& x, const Tensor& w, const Tensor& ids, const Tensor& y, int64_t top_k,
                              bool input_per_slot = false, Stream& stream = default_stream(),
                              const Tensor& error_flag = Tensor(), MatmulPath path = MatmulPath::automatic);

// ---- §5.3 dense_mm (bf16 / f16 / f32 weights) -------------------------------------------------------
// dst[b, m, n] = Σ_k src1[b, m, k] · src0[b / r, n, k], r = B1 / B0 (GQA-style broadcast).
// src0: bf16, f16 or f32 [N, K] or [B0, N, K]; src1: f32 [M, K] or [B1, M, K]; dst: f32 with
// src1's leading dims and N. B1 % B0 == 0. Any K >= 1. src1 is rounded to src0's dtype (bf16 / f16,
// RNE; |x| >= 65520 becomes ±inf in f16) before multiplying; f32 weights use true f32 products
// (cuBLASLt CUBLAS_COMPUTE_32F, no TF32). CUDA: up to 8 rows per weight slice run our mat-vec
// kernel (bf16 weights with 5..8 rows: on bf16 tensor cores, the weights streamed by TMA where
// K % 8 == 0 and the views are 16-byte aligned); bf16 or f16 weights with 5..32 rows, K % 8 == 0
// and aligned views take the same TMA kernel (9..32 rows only on GPUs below 3.8 TB/s of peak DRAM
// bandwidth, e.g. H100: on H200 convert + cuBLASLt measured faster there); the rest run cuBLASLt
// (activations converted into the workspace scratch). The results are the same either way up to
// f32 summation order.
void dense_mm(const Tensor& src0, const Tensor& src1, const Tensor& dst, Stream& stream = default_stream());

// ---- §5.1 dense_gemm (lm_head) / dense_matvec -------------------------------------------------------
// c[m, n] = Σ_k a[m, k] · b[n, k] with f32 accumulation, rounded once (RNE) to c's dtype
// (f16 overflow gives ±inf). a: [M, K], b: [N, K], c: [M, N], all f16 (spec) or all bf16.
void dense_gemm(const Tensor& a, const Tensor& b, const Tensor& c, Stream& stream = default_stream());
// c[0, n] = Σ_k a[0, k] · b[n, k]: a f32 [1, K] (or [K]), b f16, bf16 or f32 [N, K], c f32 [1, N]
// (or [N]). Activations stay f32, weights widen exactly, f32 accumulation (the spec's
// dense_matvec_f16w_f32io / _bf16w_f32io / _f32).
void dense_matvec(const Tensor& a, const Tensor& b, const Tensor& c, Stream& stream = default_stream());

// ---- §5.2 dense_gemv_bf16 ---------------------------------------------------------------------------
// Shapes and broadcast as dense_mm with bf16 src0, but activations stay f32 (weights widen
// exactly, f32 accumulation). Built for M = 1 decode (one pass over the weights, 16-byte loads),
// correct for any M. CUDA, 5 or more rows per weight slice with K % 8 == 0 and 16-byte aligned
// views (or 5..8 rows with K % 32 == 0): bf16 tensor-core MMAs on the activations split exactly
// into three bf16 terms (same f32-level precision, e <= 1e-5), one pass over the weights per 32 rows.
void dense_gemv_bf16(const Tensor& src0, const Tensor& src1, const Tensor& dst, Stream& stream = default_stream());

// Makes the CUDA workspace of `stream` hold at least scratch_bytes of scratch (plus the cuBLASLt
// handle and workspace), allocating now so later calls on this stream allocate nothing.
// No-op for a CPU stream argument of a build without CUDA.
void matmul_workspace_reserve(Stream& stream, int64_t scratch_bytes);

}  // namespace lmk
