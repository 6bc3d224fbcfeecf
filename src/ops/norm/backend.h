// Backend entry points of the norm family; arguments are already validated. Every op of the
// family is one row loop with a few switches, described by a NormCall.
#pragma once
#include <cstdint>

#include "lmk/device.h"
#include "lmk/dtype.h"

namespace lmk {

// What is reduced and what is written, per element of a row (v = the reduced value):
//   plain:    v = x;                 out = v·r·w
//   mul:      v = x;                 out = v·r·w·scale
//   add:      v = input (x);         out = (residual + v·r·w)·scalar
//   residual: v = residual + input;  out = v·r·w·scalar, sum_out = v
enum class NormKind : uint8_t { plain, mul, add, residual };

struct NormCall {
  NormKind kind = NormKind::plain;
  bool mean = true;                 // r = rsqrt(Σv²/D + eps); false: rsqrt(Σv² + eps) (l2_norm)
  DType dtype = DType::f32;         // of x, residual, scale, out, sum_out
  const void* x = nullptr;          // [R, D]; the input of add/residual
  const void* residual = nullptr;   // [R, D] (add, residual)
  const void* scale = nullptr;      // [R, D] (mul)
  const void* weight = nullptr;     // [D], f32 (x f32/f16) or bf16 (x bf16); null: no weight
  const float* scalar = nullptr;    // [1] or [D] (add, residual); null: none
  bool scalar_per_col = false;      // scalar has D elements
  void* out = nullptr;              // [R, D]
  void* sum_out = nullptr;          // [R, D] (residual); null: not stored
  int64_t rows = 0, dim = 0;
  float eps = 0;
};

namespace cpu {
void norm(const NormCall& c);
}  // namespace cpu
namespace cuda {
void norm(const NormCall& c, Stream& s);
}  // namespace cuda
}  // namespace lmk
