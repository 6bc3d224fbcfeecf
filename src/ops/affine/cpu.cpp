// CPU backend of the affine family: dequantize one weight row in f32 (s*q, then + b, as
// quant-formats §5 writes it), then f64 dot products with every activation row that uses it.
#include <cstring>
#include <vector>

#include "cpu/common.h"
#include "lmk/error.h"
#include "ops/affine/backend.h"

namespace lmk::cpu {
namespace {

// Code k of a packed row: a little-endian bit stream, code k at bits [k*bits, (k+1)*bits).
inline uint32_t code_at(const uint8_t* row, int64_t k, int bits) {
  const int64_t bit = k * bits;
  const uint8_t* b = row + (bit >> 3);
  const int sh = int(bit & 7);
  uint32_t v = b[0];
  if (sh + bits > 8) v |= uint32_t(b[1]) << 8;
  return (v >> sh) & ((1u << bits) - 1);
}

float load_f(const void* base, int64_t i, DType t) {
  switch (t) {
    case DType::f32: return static_cast<const float*>(base)[i];
    case DType::f16: return f16_bits_to_f32(static_cast<const uint16_t*>(base)[i]);
    default: return bf16_bits_to_f32(static_cast<const uint16_t*>(base)[i]);
  }
}

void store_f(void* base, int64_t i, double v, DType t) {
  const float f = float(v);
  switch (t) {
    case DType::f32: static_cast<float*>(base)[i] = f; break;
    case DType::f16: static_cast<uint16_t*>(base)[i] = f32_to_f16_bits(f); break;
    default: static_cast<uint16_t*>(base)[i] = f32_to_bf16_bits(f); break;
  }
}

int64_t expert_of(const AffineProblem& p, int64_t r) {
  if (!p.ids) return 0;
  return p.ids_dtype == DType::u32 ? int64_t(static_cast<const uint32_t*>(p.ids)[r])
                                   : int64_t(static_cast<const int32_t*>(p.ids)[r]);
}

}  // namespace

void affine_matmul(const AffineProblem& p) {
  const int64_t P = p.rows(), N = p.N, K = p.K, G = p.groups();
  // Ids first, so an invalid one leaves y untouched.
  for (int64_t r = 0; p.ids && r < P; ++r) {
    const int64_t e = expert_of(p, r);
    if (e < 0 || e >= p.E)
      LMK_THROW(InvalidArgument, p.op, ": invalid expert id ", e, " at row ", r, " (n_experts=", p.E, ")");
  }
  // Activations widened once.
  std::vector<float> x(static_cast<size_t>(p.M * K));
  for (int64_t i = 0; i < p.M * K; ++i) x[size_t(i)] = load_f(p.x, i, p.x_dtype);
  // Rows grouped by expert so each weight row is dequantized once per expert.
  std::vector<std::vector<int64_t>> rows_of(size_t(p.E));
  for (int64_t r = 0; r < P; ++r) rows_of[size_t(expert_of(p, r))].push_back(r);

  std::vector<float> w(static_cast<size_t>(K));
  const auto* wbase = static_cast<const uint8_t*>(p.w);
  for (int64_t e = 0; e < p.E; ++e) {
    const auto& rows = rows_of[size_t(e)];
    if (rows.empty()) continue;
    for (int64_t n = 0; n < N; ++n) {
      const uint8_t* row = wbase + (e * N + n) * p.row_bytes;
      const int64_t sb = (e * N + n) * G;
      for (int64_t g = 0; g < G; ++g) {
        const float s = load_f(p.scales, sb + g, p.s_dtype), b = load_f(p.biases, sb + g, p.s_dtype);
        for (int64_t k = g * p.gs; k < (g + 1) * p.gs; ++k) {
          const float sq = s * float(code_at(row, k, p.bits));
          w[size_t(k)] = sq + b;
        }
      }
      for (int64_t r : rows) {
        const float* xr = x.data() + (r / p.top_k) * K;
        double acc = 0;
        for (int64_t k = 0; k < K; ++k) acc += double(xr[k]) * double(w[size_t(k)]);
        store_f(p.y, r * N + n, acc, p.y_dtype);
      }
    }
  }
}

}  // namespace lmk::cpu
