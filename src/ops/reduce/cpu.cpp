#include "cpu/common.h"
#include "ops/reduce/backend.h"

namespace lmk::cpu {

namespace {
// f32 pairwise sum of p[lo, hi): the error grows with log n, so a 1 M-element row stays well
// inside 1e-5 * sum |x| (a sequential f32 sum would not).
float pairwise_sum(const float* p, int64_t lo, int64_t hi) {
  if (hi - lo <= 64) {
    float s = 0.f;
    for (int64_t i = lo; i < hi; ++i) s += p[i];
    return s;
  }
  const int64_t mid = lo + (hi - lo) / 2;
  return pairwise_sum(p, lo, mid) + pairwise_sum(p, mid, hi);
}
}  // namespace

void row_sum(const Tensor& x, const Tensor& out, int64_t rows, int64_t cols) {
  const float* px = x.data_as<float>();
  float* po = out.data_as<float>();
  for (int64_t r = 0; r < rows; ++r) po[r] = pairwise_sum(px + r * cols, 0, cols);
}

void cumsum(const Tensor& x, const Tensor& out, int64_t rows, int64_t cols) {
  dispatch_float("cumsum", x.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    for (int64_t r = 0; r < rows; ++r) {
      const T* px = x.data_as<T>() + r * cols;
      T* py = out.data_as<T>() + r * cols;
      float run = 0.f;  // f32 running sum, one rounding per stored element
      for (int64_t i = 0; i < cols; ++i) {
        run += to_f32(px[i]);
        py[i] = from_f32<T>(run);
      }
    }
  });
}

}  // namespace lmk::cpu
