// fp64 references for the softmax family, written from core-ops.md §4 (independent of src/).
#pragma once
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

namespace lmk::ref {

// Per row of [rows, cols]: m = max (NaN ignored), e = exp(x - m), y = e / sum(e). No special
// cases: a row with +inf, or of all -inf, comes out NaN as the spec requires.
inline std::vector<double> softmax(const std::vector<double>& x, int64_t rows, int64_t cols) {
  std::vector<double> y(x.size());
  for (int64_t r = 0; r < rows; ++r) {
    const double* xr = x.data() + r * cols;
    double* yr = y.data() + r * cols;
    double m = -std::numeric_limits<double>::infinity();
    for (int64_t j = 0; j < cols; ++j) m = std::fmax(m, xr[j]);
    double s = 0;
    for (int64_t j = 0; j < cols; ++j) s += std::exp(xr[j] - m);
    for (int64_t j = 0; j < cols; ++j) yr[j] = std::exp(xr[j] - m) / s;
  }
  return y;
}

// scores [rows, cols] with rows = nh * seq_q, mask [seq_q, cols] shared by the heads:
// t = scores * scale + mask[row mod seq_q]; a row whose max is -inf gives zeros (lmk fix);
// otherwise y = e * (S > 0 ? 1 / S : 0).
inline std::vector<double> scale_mask_softmax(const std::vector<double>& scores, const std::vector<double>& mask,
                                              int64_t rows, int64_t cols, int64_t seq_q, double scale) {
  std::vector<double> y(scores.size());
  std::vector<double> t(static_cast<size_t>(cols));
  for (int64_t r = 0; r < rows; ++r) {
    const double* mk = mask.data() + (r % seq_q) * cols;
    double m = -std::numeric_limits<double>::infinity();
    for (int64_t k = 0; k < cols; ++k) {
      t[size_t(k)] = scores[size_t(r * cols + k)] * scale + mk[k];
      m = std::fmax(m, t[size_t(k)]);
    }
    double* yr = y.data() + r * cols;
    if (m == -std::numeric_limits<double>::infinity()) {
      for (int64_t k = 0; k < cols; ++k) yr[k] = 0;
      continue;
    }
    double s = 0;
    for (int64_t k = 0; k < cols; ++k) s += std::exp(t[size_t(k)] - m);
    const double inv = s > 0 ? 1 / s : 0;
    for (int64_t k = 0; k < cols; ++k) yr[k] = std::exp(t[size_t(k)] - m) * inv;
  }
  return y;
}

}  // namespace lmk::ref
