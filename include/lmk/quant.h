// Host (CPU) quantization utilities for the GGML block formats and MLX affine packing
// (spec: quant-formats.md §2–§5). These work on raw host memory; the registered device ops
// (dequant_to_f16, qdq_legacy, embedding_ggml, …) live in lmk/quant_ops.h.
//
// GGML rows: n values of a block type take n / qk blocks, stored back to back (row-major
// [rows, K] matrices are one long run of blocks since rows carry no padding).
// Every function validates its sizes and throws lmk::Error (InvalidArgument for bad sizes,
// Unsupported for a dtype or bits value it does not handle).
#pragma once
#include <cstdint>
#include <span>
#include <vector>

#include "lmk/dtype.h"

namespace lmk {

// Reference quantizers, bit-exact with ggml's quantize_row_q4_0_ref / quantize_row_q8_0_ref
// (quant-formats.md §4): x has n values (n % 32 == 0), dst receives storage_bytes(type, n)
// bytes. type: q4_0 or q8_0 (others: Unsupported — no K-quant/IQ quantizer is provided; the
// spec requires none). Finite inputs only: NaN input is unsupported (the result for it is
// defined — NaN codes become 0 — but does not match ggml, whose conversion is undefined).
void quantize_row(DType type, const float* x, void* dst, int64_t n);

// Dequantize n values of `type` to f32 with the exact f32 formulas of quant-formats.md §2/§3.
// type: any GGML block format of DType (q4_0, q5_0, q5_1, q8_0, iq4_nl, q2_K, q4_K, q5_K, q6_K,
// iq4_xs) or a plain f32, f16, bf16, f64, i8, i16, i32 (converted to f32; f64/i32 may round).
// src must hold storage_bytes(type, n) bytes; it may be unaligned.
void dequantize_row(DType type, const void* src, float* dst, int64_t n);
std::vector<float> dequantize_row(DType type, std::span<const uint8_t> src, int64_t n);

// The spec's quantize-then-dequantize round trip (qdq_legacy on the CPU): y may equal x.
void qdq_row(DType type, const float* x, float* y, int64_t n);

// ---- MLX affine (quant-formats.md §5) ----
// w[n, k] = scale[n, k/gs] * q[n, k] + bias[n, k/gs], q in [0, 2^bits). Packed rows are a
// little-endian bit stream (code k at bits k*bits ..), row bytes = affine_row_bytes(bits, K);
// as a safetensors U32 tensor the shape is [N, K*bits/32]. Supported: bits 4, 6, 8 and
// group_size 32, 64, 128 (MLX's 2/3/5-bit and other group sizes: Unsupported), K % gs == 0.
// scales/biases: [N, K/gs] of f16, bf16 or f32 (param_dtype).
int64_t affine_packed_row_bytes(int bits, int64_t k);
// Throws Unsupported / InvalidArgument naming `who` when (bits, group_size, k) is not valid.
void check_affine_format(const char* who, int bits, int64_t group_size, int64_t k);

// A simple min/max quantizer (not MLX's own, which the spec does not require): per group,
// scale = (max - min) / (2^bits - 1) (1 if that is not > 0), bias = min, both rounded to
// param_dtype first; q = clamp(round_half_away((w - bias) / scale), 0, 2^bits - 1).
// packed: rows * affine_packed_row_bytes bytes; scales/biases: rows * K/gs elements of
// param_dtype (raw bytes).
void affine_quantize(const float* w, int64_t rows, int64_t k, int bits, int64_t group_size, DType param_dtype,
                     void* packed, void* scales, void* biases);
// y[n, k] = scale * q + bias in f32 (one multiply, one add, no FMA). biases may be null (0).
void affine_dequantize(const void* packed, const void* scales, const void* biases, DType param_dtype, int64_t rows,
                       int64_t k, int bits, int64_t group_size, float* y);

}  // namespace lmk
