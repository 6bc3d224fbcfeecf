// Quantization ops (spec: matmul-moe-sampling.md §1 and §4, formats of quant-formats.md).
// Every op runs on the CPU and on CUDA, chosen by the tensors' device. Tensors are contiguous;
// a GGML block tensor is a view of dtype q4_0 … iq4_xs whose innermost dim counts values (so a
// weight W [N, K] is Tensor(ptr, DType::q4_K, {N, K}) and takes N * K/qk * block_bytes bytes).
// GGML blocks need only 2-byte alignment (their f16 fields); nothing wider is assumed.
//
// Dequantization is bit-exact across backends (quant-formats.md §3 precision contract): the
// f32 value of every element is the spec's formula, and 16-bit outputs are RNE of that f32.
#pragma once
#include <cstdint>

#include "lmk/device.h"
#include "lmk/tensor.h"

namespace lmk {

// ---- §1.1 dequant_to_f16 -------------------------------------------------------------------------
// dst[r, c] = RNE_f16(dequant_f32(src)[r, c]). src: a GGML block tensor [rows, cols]
// (cols % qk == 0, Q4_0 Q5_0 Q5_1 Q8_0 IQ4_NL Q2_K Q4_K Q5_K Q6_K IQ4_XS) or f32/bf16/f16
// (converted). dst: f16 with src's shape. Values beyond the f16 range become ±inf.
void dequant_to_f16(const Tensor& src, const Tensor& dst, Stream& stream = default_stream());
// Raw-bytes form of the spec's call: src is a u8 tensor of exactly
// n_rows * (n_cols / qk) * block_bytes bytes holding blocks of `type`; dst is f16 [n_rows, n_cols].
void dequant_to_f16(const Tensor& src_bytes, DType type, int64_t n_rows, int64_t n_cols, const Tensor& dst,
                    Stream& stream = default_stream());
// Same as dequant_to_f16 with a dst of f32 (exact f32 values), f16 or bf16 (RNE of the f32).
void dequantize(const Tensor& src, const Tensor& dst, Stream& stream = default_stream());

// MLX affine dequant (quant-formats.md §5): dst[n, k] = scales[n, k/gs] * q(n, k) + biases[n, k/gs]
// in f32 (one multiply, one add, no FMA), rounded RNE to dst's dtype (f32, f16, bf16).
// packed: u32 [N, K*bits/32] (the safetensors layout) or u8 [N, row_bytes]; scales/biases:
// [N, K/gs] of one dtype in {bf16, f16, f32}; K comes from dst [N, K]. bits {4, 6, 8},
// gs {32, 64, 128} (others Unsupported); K % gs != 0 or any size mismatch: InvalidArgument.
void dequant_affine(const Tensor& packed, const Tensor& scales, const Tensor& biases, const Tensor& dst, int bits,
                    int64_t group_size, Stream& stream = default_stream());

// ---- §1.2 qdq_legacy -------------------------------------------------------------------------------
// y = dequant(quantize_ref(x)) per 32-value block with ggml's reference Q4_0 or Q8_0 quantizer,
// bit-exact (quant-formats.md §4). x, y: f32 with equal numel, numel % 32 == 0; y may be x
// (in place). format: q4_0 or q8_0. NaN input is unsupported (its block's output is defined
// but not ggml's).
void qdq_legacy(DType format, const Tensor& x, const Tensor& y, Stream& stream = default_stream());
inline void qdq_q4_0(const Tensor& x, const Tensor& y, Stream& s = default_stream()) { qdq_legacy(DType::q4_0, x, y, s); }
inline void qdq_q8_0(const Tensor& x, const Tensor& y, Stream& s = default_stream()) { qdq_legacy(DType::q8_0, x, y, s); }

// ---- §1.3 qdq_affine (DWQ: learnable per-group scales/biases, frozen codes) ----------------------
// Flat n = G * gs values, group g = [g*gs, (g+1)*gs). gs >= 1 with n % gs == 0 (lmkernels
// relaxes mlx-native's power-of-two gs); n_bins in [2, 256]. All f32 except q (u8).
// init: per group mn = min, mx = max (NaN-ignoring), s = (mx - mn)/(n_bins - 1) (f32, true
// division), s = 1 unless s > 0, b = mn, q = clamp(round_half_away((w - b) / s), 0, n_bins - 1).
void qdq_affine_init(const Tensor& w, const Tensor& scales, const Tensor& biases, const Tensor& q, int64_t group_size,
                     int n_bins, Stream& stream = default_stream());
// out[i] = f32(q[i]) * s[g] + b[g] (one multiply then one add, so both backends agree bitwise).
void qdq_affine_forward(const Tensor& q, const Tensor& scales, const Tensor& biases, const Tensor& out,
                        int64_t group_size, Stream& stream = default_stream());
// Exact gradients of the forward with frozen codes (no straight-through estimator for w):
// d_scales[g] = sum_{i in g} q[i] * dy[i]; d_biases[g] = sum_{i in g} dy[i]. Outputs are
// overwritten, not accumulated into. CPU sums in f64, CUDA in f32 (tree order).
void qdq_affine_backward_scales(const Tensor& q, const Tensor& dy, const Tensor& d_scales, int64_t group_size,
                                Stream& stream = default_stream());
void qdq_affine_backward_biases(const Tensor& dy, const Tensor& d_biases, int64_t group_size,
                                Stream& stream = default_stream());

// ---- §4.1 embedding on quantized tables -----------------------------------------------------------
// out[t, :] = dequant_f32(table[ids[t], :]) — bit-identical to the CPU dequant.
// table: [V, D] of a GGML block type (D % qk == 0) or dense f32/f16/bf16 (exact widening).
// ids: u32 or i32 [T]; out: f32 [T, D]; out must not overlap table or ids.
// Invalid ids (>= V or negative): the CPU throws InvalidArgument "invalid id <id> at row <t>
// (V=<V>)" before writing anything. CUDA cannot check ids without a sync: it writes the row as
// zeros and, when `error_flag` (u32 [1] on the device, zeroed by the caller) is given, sets it
// to 1; with the environment variable LMK_DEBUG_CHECKS=1 it synchronizes and throws the CPU's
// error (rows of valid ids are written in every case).
void embedding_ggml(const Tensor& table, const Tensor& ids, const Tensor& out, Stream& stream = default_stream(),
                    const Tensor& error_flag = Tensor());
// MLX affine table: packed u32 [V, D*bits/32] or u8 [V, row_bytes], scales/biases [V, D/gs]
// (bf16, f16 or f32), ids, out f32 [T, D]: out[t, c] = s * q + b (f32, no FMA, bit-exact).
// bits {4, 6, 8}, gs {32, 64, 128}. Invalid ids as embedding_ggml.
void embedding_affine(const Tensor& packed, const Tensor& scales, const Tensor& biases, const Tensor& ids,
                      const Tensor& out, int bits, int64_t group_size, Stream& stream = default_stream(),
                      const Tensor& error_flag = Tensor());

}  // namespace lmk
