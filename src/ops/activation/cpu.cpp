#include <cmath>

#include "cpu/common.h"
#include "ops/activation/backend.h"

namespace lmk::cpu {

namespace {
// f32 scalar forms, shared by every dtype (16-bit values are widened before and rounded after).
float silu_f32(float g) { return g / (1.0f + std::exp(-g)); }

float gelu_f32(float x) {
  float u = 0.7978845608028654f * (x + 0.044715f * (x * x * x));
  u = std::fmin(std::fmax(u, -15.0f), 15.0f);
  return 0.5f * x * (1.0f + std::tanh(u));
}

// out[i] = f(in[i]) in f32 with one rounding to T.
template <typename F>
void map_unary(const char* op, const Tensor& x, const Tensor& out, F f) {
  dispatch_float(op, x.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* px = x.data_as<T>();
    T* po = out.data_as<T>();
    for (int64_t i = 0, n = x.numel(); i < n; ++i) po[i] = from_f32<T>(f(to_f32(px[i])));
  });
}
}  // namespace

void gated(ActGatedOp op, const Tensor& a, const Tensor& b, const Tensor& out) {
  dispatch_float("activation", a.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* pa = a.data_as<T>();
    const T* pb = b.data_as<T>();
    T* po = out.data_as<T>();
    const int64_t n = a.numel();
    if (op == ActGatedOp::silu_mul) {  // a = gate, b = up
      for (int64_t i = 0; i < n; ++i) po[i] = from_f32<T>(silu_f32(to_f32(pa[i])) * to_f32(pb[i]));
    } else {  // a = x, b = gate
      for (int64_t i = 0; i < n; ++i) po[i] = from_f32<T>(to_f32(pa[i]) / (1.0f + std::exp(-to_f32(pb[i]))));
    }
  });
}

void unary(ActUnaryOp op, const Tensor& x, const Tensor& out) {
  if (op == ActUnaryOp::silu) map_unary("silu", x, out, silu_f32);
  else map_unary("gelu", x, out, gelu_f32);
}

void softcap(const Tensor& x, const Tensor& out, float cap) {
  map_unary("softcap", x, out, [cap](float v) { return std::tanh(v / cap) * cap; });
}

void add_bias_row_2d(const Tensor& a, const Tensor& bias, const Tensor& out, int64_t cols) {
  dispatch_float("add_bias_row_2d", a.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* pa = a.data_as<T>();
    const T* pb = bias.data_as<T>();
    T* po = out.data_as<T>();
    const int64_t rows = a.numel() / cols;
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = 0; c < cols; ++c) po[r * cols + c] = from_f32<T>(to_f32(pa[r * cols + c]) + to_f32(pb[c]));
  });
}

void outer_product(const Tensor& lhs, const Tensor& rhs, const Tensor& out) {
  const float* pl = lhs.data_as<float>();
  const float* pr = rhs.data_as<float>();
  float* po = out.data_as<float>();
  const int64_t n = lhs.numel(), m = rhs.numel();
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < m; ++j) po[i * m + j] = pl[i] * pr[j];
}

}  // namespace lmk::cpu
