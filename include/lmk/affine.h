// MLX affine quantized matmuls (spec: matmul-moe-sampling.md §1.4, §2; quant-formats.md §5).
//
// Weight format (quant-formats §5): a logical W [N, K] (N = output features, K = input
// features) stored as packed codes q in [0, 2^bits) plus per-group scales and biases,
//   W[n, k] = scales[n, k/gs] * q(n, k) + biases[n, k/gs].
// A packed row is a little-endian bit stream (code k at bits k*bits ...): 4-bit and 8-bit rows
// are MLX's u32 words (8 or 4 codes each), 6-bit rows are byte triplets (4 codes in 3 bytes).
// Row bytes: K/2 (4-bit), 3K/4 (6-bit), K (8-bit). The packed tensor may be u32 [N, K*bits/32]
// (as MLX's safetensors store it) or u8 [N, row_bytes]; either way its last dim must hold
// exactly one row. bits in {4, 6, 8}, group_size (gs) in {32, 64, 128}, K % gs == 0.
// scales and biases share one dtype: f32, f16 or bf16 (MLX checkpoints use the model's dtype).
//
// Every op computes y[r, n] = Σ_k x[r', k] * W[n, k] with the weights never materialised.
// All tensors are contiguous, dims > 0; outputs must not overlap any input.
//
// Precision (spec §0 error metric e = |y - y_ref| / Σ_k |x_k| (|s q_k| + |b|)):
//  * CPU: weights dequantized in f32 (s*q, then + b), products summed in f64, one rounding to
//    y's dtype. e <= 1e-6.
//  * CUDA, mat-vec path — quantized_matmul with M <= 8, quantized_matmul_id with
//    M*top_k <= 4*E (at most 4 routed rows per expert on average): codes exact, activations
//    carried as two bf16 terms (hi + lo, 16 significant bits), tensor-core products summed in
//    f32, scale and bias applied per group in f32 (y += s * Σ q x + b * Σ x, Σ x in f64).
//    e <= 1e-5. (Views whose x/w pointers are not 16-byte aligned — 8 for 6-bit w — take an
//    f32 CUDA-core kernel at every size instead: same bound, slower.) quantized_matmul with up
//    to 8 rows (4- or 8-bit codes) of f32 x and y, bf16 / f16 scales, K % 256 == 0 and 16-byte
//    aligned w, scales and biases reads the rows as stored with the packed mat-vec instead
//    (pack_affine's precision, below: x in int8 pieces, exact integer sums, e <= 1e-5), and so
//    does quantized_matmul_id with up to 256 routed rows under the same conditions;
//    LMK_AFFINE_RAW_RING=0 keeps the kernels above.
//  * CUDA, tiled path (more rows than above): activations rounded to bf16, each weight computed
//    in f32 and rounded once to bf16, tensor-core products summed in f32: the spec's bf16 row,
//    e <= 1.6e-2 (typically ~1e-3). quantized_matmul with more than 8 rows of f32 x and y and
//    bf16 / f16 scales packs the weight per call (pack_affine's layout, into scratch) and runs
//    the packed mat-mat instead (about 3x faster at 512 rows): the same bf16 row. Set
//    LMK_AFFINE_REPACK=0 to keep the tiled kernel. Pack once with pack_affine to skip the pack.
//  * bf16/f16 outputs add one rounding (2^-8 / 2^-11 relative).
// The path depends only on shapes and alignment (never on the data), and results are
// deterministic run to run. A row of quantized_matmul_id is bit-identical to quantized_matmul on
// the selected expert slice where both run the same kernel (the tiled path; routed rows against
// dense items of 5..8 rows); a dense item of up to 4 rows runs its own mat-vec kernel, which
// agrees with the routed rows within the bound above.
//
// CUDA scratch: quantized_matmul_id with more than 8 routed rows builds per-expert row lists,
// quantized_matmul's repack (above) holds the packed weight and its packed mat-vec on the rows as
// stored holds x's int8 pieces, in stream-ordered scratch
// (cudaMallocFromPoolAsync from a library-owned pool, freed on the same stream after the
// kernels; capturable in a CUDA graph). The repack's mat-mat also uses the stream's matmul
// workspace (include/lmk/matmul.h), created and grown on a call: before capturing such a call,
// make one outside the capture or call matmul_workspace_reserve(). No other op allocates.
#pragma once
#include "lmk/buffer.h"
#include "lmk/device.h"
#include "lmk/tensor.h"

namespace lmk {

// y[m, n] = Σ_k x[m, k] * (scales[n, k/gs] * q(n, k) + biases[n, k/gs])
//   x:        [M, K] f32, f16 or bf16
//   w:        packed codes of W [N, K]: u32 [N, K*bits/32] or u8 [N, row_bytes]
//   scales:   [N, K/gs], biases: same shape and dtype (f32, f16, bf16)
//   y:        [M, N], f32 or the dtype of x (f32 output avoids f16 overflow at large K)
// Errors: bits not in {4,6,8}, a positive gs not in {32,64,128}, a dtype outside the lists
// above -> Unsupported; gs <= 0, K % gs != 0, any shape disagreeing with (bits, gs, K, N),
// scales/biases of different dtypes, zero sizes, overlap of y with an input -> InvalidArgument.
void quantized_matmul(const Tensor& x, const Tensor& w, const Tensor& scales, const Tensor& biases,
                      const Tensor& y, int bits, int group_size, Stream& stream = default_stream());

// Expert-routed variant (spec §2.2): for token m and slot s, e = ids[m, s],
//   y[m, s, n] = Σ_k x[m, k] * W_e[n, k]
//   x:        [M, K] (every slot of a token reads the same row; for a down projection whose
//             input differs per slot pass M' = M*top_k rows, ids [M*top_k, 1])
//   w:        [E, N, row] packed (u32 or u8 as above), experts back to back
//   scales:   [E, N, K/gs], biases: same shape and dtype
//   ids:      [M, top_k] u32 or i32, each in [0, E)
//   y:        [M, top_k, N], f32 or the dtype of x
// Invalid ids (>= E, or negative i32): the CPU throws InvalidArgument "quantized_matmul_id:
// invalid expert id <id> at row <r> (n_experts=<E>)" (r = m*top_k + s) before writing anything.
// CUDA never reads out of bounds: such a row is written as zeros and, when `error_flag`
// (u32 [1] on the same device, zeroed by the caller) is given, it is set to 1; with the
// environment variable LMK_DEBUG_CHECKS=1 the call synchronizes and throws the CPU's error.
// Rows of valid ids are correct in every case. Limits: M*top_k < 2^31.
void quantized_matmul_id(const Tensor& x, const Tensor& w, const Tensor& scales, const Tensor& biases,
                         const Tensor& ids, const Tensor& y, int bits, int group_size,
                         Stream& stream = default_stream(), const Tensor& error_flag = Tensor());

// ---- explicit load-time repack for decode ------------------------------------------------------------
// pack_affine(w, scales, biases, bits, gs) returns 4-, 6- or 8-bit MLX affine weights ([N, K] or
// experts [E, N, K], as above, with bf16 or f16 scales and biases) rearranged into the packed
// layout of the GGML formats (pack_ggml, include/lmk/matmul.h; src/ops/matmul/packed_layout.h):
// per 16-row tile and 256-value chunk, every lane's codes as 16-byte words and the groups' (scale,
// bias) pairs beside them (copied bit for bit: nothing is requantized). It takes MLX's bytes,
// k·bits/8 + 4·k/gs per row, plus zero padding to whole tiles and chunks, on w's device. Pack once
// when the model loads; the quantized_matmul / quantized_matmul_id overloads below then run the
// packed kernels of the GGML formats (H100: 3-5x faster than the unpacked weights at decode
// sizes, 5-6x at 512 rows; docs/perf.md). Limits: bf16 / f16 scales (f32 scales stay on the
// unpacked ops: Unsupported).
struct PackedAffine {
  int bits = 4, group_size = 64;
  DType scale_dtype = DType::bf16;  // bf16 or f16
  int64_t n = 0, k = 0;
  int64_t n_experts = 1;  // 1 for a plain [N, K] weight
  bool routed = false;    // packed from an [E, N, K] weight (quantized_matmul_id)
  Buffer bytes;
  Device device() const { return bytes.device(); }
};
PackedAffine pack_affine(const Tensor& w, const Tensor& scales, const Tensor& biases, int bits, int group_size,
                         Stream& stream = default_stream());
// y[m, n] = Σ_k x[m, k] · W[n, k] for packed W: x f32 [M, K], y f32 [M, N]. Precision: M <= 8 on
// CUDA (and every M on the CPU) as the unpacked mat-vec path or better: codes exact, x split into
// int8 pieces (27 significant bits), exact integer sums, scale and bias applied per 32 values in
// f32 (s·Σqx + b·Σx), e <= 1e-5; CUDA M > 8: the packed warpgroup-MMA mat-mat on bf16 operands
// (activations rounded to bf16, each weight s·q + b computed in bf16 arithmetic for 4- and 6-bit
// codes or in f32 for 8-bit ones, then rounded to bf16), the bf16 row, e <= 1.6e-2.
void quantized_matmul(const Tensor& x, const PackedAffine& w, const Tensor& y, Stream& stream = default_stream());
// Expert-routed on packed expert weights: x f32 [M, K], ids [M, top_k] u32/i32, y f32 [M, top_k, N];
// ids and error_flag as quantized_matmul_id above; rows are grouped as quantized_matmul_id_ggml
// does on packed weights (include/lmk/matmul.h), with that precision.
void quantized_matmul_id(const Tensor& x, const PackedAffine& w, const Tensor& ids, const Tensor& y,
                         Stream& stream = default_stream(), const Tensor& error_flag = Tensor());

// Unpacked-codes variant for DWQ-trained weights (spec §1.4):
//   y[m, n] = Σ_k x[m, k] * (q[n, k] * scales[n, k/gs] + biases[n, k/gs])
//   x f32 [M, K], q u8 [N, K] (codes 0..255), scales/biases f32 [N, K/gs], y f32 [M, N].
//   group_size: a power of two in [2, 1024] with K % group_size == 0 (else InvalidArgument).
// f32 throughout on both backends (e <= 1e-5). CUDA: an f32 CUDA-core tiled kernel.
void qmm_affine(const Tensor& x, const Tensor& q, const Tensor& scales, const Tensor& biases, const Tensor& y,
                int group_size, Stream& stream = default_stream());

}  // namespace lmk
