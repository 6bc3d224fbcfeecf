#include <cmath>
#include <type_traits>

#include "cpu/common.h"
#include "ops/norm/backend.h"

namespace lmk::cpu {

namespace {

// f32 sum of term(i) over [lo, hi), pairwise so that long rows keep about f32 precision
// (a plain running sum of 65536 squares drifts by ~1e-5 relative).
template <typename F>
float pairwise_sum(const F& term, int64_t lo, int64_t hi) {
  if (hi - lo <= 64) {
    float s = 0;
    for (int64_t i = lo; i < hi; ++i) s += term(i);
    return s;
  }
  const int64_t mid = lo + (hi - lo) / 2;
  return pairwise_sum(term, lo, mid) + pairwise_sum(term, mid, hi);
}

}  // namespace

void norm(const NormCall& c) {
  dispatch_float("norm", c.dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    using W = std::conditional_t<std::is_same_v<T, bf16_t>, bf16_t, float>;
    const T* x = static_cast<const T*>(c.x);
    const T* res = static_cast<const T*>(c.residual);
    const T* scale = static_cast<const T*>(c.scale);
    const W* w = static_cast<const W*>(c.weight);
    T* out = static_cast<T*>(c.out);
    T* sum_out = static_cast<T*>(c.sum_out);
    const int64_t dim = c.dim;
    for (int64_t row = 0; row < c.rows; ++row) {
      const int64_t base = row * dim;
      // The reduced value: x, or residual + input in f32 for the residual kind.
      auto value = [&](int64_t i) {
        const float v = to_f32(x[base + i]);
        return c.kind == NormKind::residual ? to_f32(res[base + i]) + v : v;
      };
      const float ss = pairwise_sum([&](int64_t i) { const float v = value(i); return v * v; }, 0, dim);
      const float r = 1.0f / std::sqrt((c.mean ? ss / float(dim) : ss) + c.eps);
      // Each element is read before it is written, so outputs may alias the row inputs.
      for (int64_t i = 0; i < dim; ++i) {
        const float v = value(i);
        float y = v * r * (w ? to_f32(w[i]) : 1.0f);
        if (c.kind == NormKind::mul) y = y * to_f32(scale[base + i]);
        if (c.kind == NormKind::add) y = to_f32(res[base + i]) + y;
        if (c.scalar) y = y * c.scalar[c.scalar_per_col ? i : 0];
        out[base + i] = from_f32<T>(y);
        if (sum_out) sum_out[base + i] = from_f32<T>(v);
      }
    }
  });
}

}  // namespace lmk::cpu
