// fp64 references for the affine family, written from quant-formats.md §5 and
// matmul-moe-sampling.md §0, §1.4, §2 (independent of src/).
#pragma once
#include <cmath>
#include <cstdint>
#include <vector>

namespace lmk::ref {

// Bytes of one packed row of K codes (quant-formats §5).
inline int64_t affine_row_bytes(int bits, int64_t k) {
  if (bits == 4) return (k + 7) / 8 * 4;
  if (bits == 8) return (k + 3) / 4 * 4;
  return (k + 3) / 4 * 3;  // 6-bit triplets
}

// Code k of a packed row, following the spec's per-format description literally.
inline uint32_t affine_code(const uint8_t* row, int bits, int64_t k) {
  auto word_at = [&](int64_t w) {  // little-endian u32 word w of the row
    const uint8_t* b = row + 4 * w;
    return uint32_t(b[0]) | uint32_t(b[1]) << 8 | uint32_t(b[2]) << 16 | uint32_t(b[3]) << 24;
  };
  if (bits == 4) return (word_at(k / 8) >> (4 * (k % 8))) & 0xF;
  if (bits == 8) return (word_at(k / 4) >> (8 * (k % 4))) & 0xFF;
  const uint8_t* t = row + 3 * (k / 4);  // 6-bit: triplet k/4, code k%4
  const uint32_t v = uint32_t(t[0]) | uint32_t(t[1]) << 8 | uint32_t(t[2]) << 16;
  return (v >> (6 * (k % 4))) & 0x3F;
}

// One output of y = x · dequant(W)ᵀ and the spec's offset-aware error normaliser
// Σ_k |x_k| (|s q_k| + |b|).
struct AffineOut {
  double y = 0;
  double norm = 0;
};

// x: one activation row (K values). row: packed codes of weight row n (codes one byte each when
// bits == 0, the unpacked qmm_affine layout). s, b: that row's K/gs scales and biases.
inline AffineOut affine_dot(const double* x, const uint8_t* row, const double* s, const double* b, int64_t K,
                            int bits, int64_t gs) {
  AffineOut r;
  for (int64_t k = 0; k < K; ++k) {
    const double q = bits == 0 ? double(row[k]) : double(affine_code(row, bits, k));
    const double sc = s[k / gs], bi = b[k / gs];
    r.y += x[k] * (sc * q + bi);
    r.norm += std::fabs(x[k]) * (std::fabs(sc * q) + std::fabs(bi));
  }
  return r;
}

}  // namespace lmk::ref
