#include <cmath>

#include "cpu/common.h"
#include "ops/elementwise/backend.h"

namespace lmk::cpu {

void binary(BinaryOp op, const Tensor& a, const Tensor& b, const Tensor& out, int64_t b_cols) {
  dispatch_float("elementwise", a.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* pa = a.data_as<T>();
    const T* pb = b.data_as<T>();
    T* po = out.data_as<T>();
    const int64_t n = a.numel();
    for (int64_t i = 0; i < n; ++i) {
      float x = to_f32(pa[i]), y = to_f32(pb[b_cols ? i % b_cols : i]);
      float r = op == BinaryOp::add ? x + y : op == BinaryOp::mul ? x * y : x / y;
      po[i] = from_f32<T>(r);
    }
  });
}

void unary(UnaryOp op, const Tensor& x, const Tensor& out) {
  const float* px = x.data_as<float>();
  float* po = out.data_as<float>();
  const int64_t n = x.numel();
  for (int64_t i = 0; i < n; ++i)
    po[i] = op == UnaryOp::exp ? std::exp(px[i]) : op == UnaryOp::log ? std::log(px[i]) : std::sqrt(px[i]);
}

void scalar_mul(const Tensor& x, float s, const Tensor& out) {
  dispatch_float("scalar_mul", x.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* px = x.data_as<T>();
    T* po = out.data_as<T>();
    for (int64_t i = 0, n = x.numel(); i < n; ++i) po[i] = from_f32<T>(to_f32(px[i]) * s);
  });
}

void cast(const Tensor& x, const Tensor& out) {
  dispatch_float("cast", x.dtype(), [&](auto in_tag) {
    using In = typename decltype(in_tag)::type;
    dispatch_float("cast", out.dtype(), [&](auto out_tag) {
      using Out = typename decltype(out_tag)::type;
      const In* px = x.data_as<In>();
      Out* po = out.data_as<Out>();
      for (int64_t i = 0, n = x.numel(); i < n; ++i) po[i] = from_f32<Out>(to_f32(px[i]));
    });
  });
}

}  // namespace lmk::cpu
