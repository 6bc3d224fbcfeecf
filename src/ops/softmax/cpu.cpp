#include <cmath>
#include <limits>

#include "cpu/common.h"
#include "ops/softmax/backend.h"

namespace lmk::cpu {

namespace {
constexpr float kNegInf = -std::numeric_limits<float>::infinity();

// f32 sum of f(i) for i in [lo, hi), pairwise (error grows with log n, not n), so long rows stay
// within the reduction tolerance.
template <typename F>
float pairwise_sum(int64_t lo, int64_t hi, const F& f) {
  if (hi - lo <= 64) {
    float s = 0.f;
    for (int64_t i = lo; i < hi; ++i) s += f(i);
    return s;
  }
  const int64_t mid = lo + (hi - lo) / 2;
  return pairwise_sum(lo, mid, f) + pairwise_sum(mid, hi, f);
}
}  // namespace

void softmax(const Tensor& x, const Tensor& out, int64_t rows, int64_t cols) {
  dispatch_float("softmax", x.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    for (int64_t r = 0; r < rows; ++r) {
      const T* px = x.data_as<T>() + r * cols;
      T* py = out.data_as<T>() + r * cols;
      float m = kNegInf;
      for (int64_t j = 0; j < cols; ++j) m = std::fmax(m, to_f32(px[j]));
      const float s = pairwise_sum(0, cols, [&](int64_t j) { return std::exp(to_f32(px[j]) - m); });
      const float inv = 1.f / s;
      // e_j is recomputed (same f32 value) rather than stored, so out may alias x.
      for (int64_t j = 0; j < cols; ++j) py[j] = from_f32<T>(std::exp(to_f32(px[j]) - m) * inv);
    }
  });
}

void scale_mask_softmax(const Tensor& scores, const Tensor& mask, const Tensor& out, int64_t rows, int64_t cols,
                        int64_t seq_q, float scale) {
  const float* ps = scores.data_as<float>();
  const bf16_t* pm = mask.data_as<bf16_t>();
  float* po = out.data_as<float>();
  for (int64_t r = 0; r < rows; ++r) {
    const float* s = ps + r * cols;
    const bf16_t* mk = pm + (r % seq_q) * cols;
    float* y = po + r * cols;
    auto t = [&](int64_t k) { return s[k] * scale + to_f32(mk[k]); };
    float m = kNegInf;
    for (int64_t k = 0; k < cols; ++k) m = std::fmax(m, t(k));
    if (m == kNegInf) {  // fully masked row: zeros (lmk fix, spec §4)
      for (int64_t k = 0; k < cols; ++k) y[k] = 0.f;
      continue;
    }
    const float sum = pairwise_sum(0, cols, [&](int64_t k) { return std::exp(t(k) - m); });
    const float inv = sum > 0.f ? 1.f / sum : 0.f;
    for (int64_t k = 0; k < cols; ++k) y[k] = std::exp(t(k) - m) * inv;
  }
}

}  // namespace lmk::cpu
