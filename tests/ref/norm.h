// fp64 references for the norm family, written from core-ops.md §5 (independent of src/).
// Rows are the consecutive runs of D elements; every formula is evaluated in double.
#pragma once
#include <cmath>
#include <cstdint>
#include <vector>

namespace lmk::ref {

// 1 / sqrt(Σx²/D + eps) (RMS) or 1 / sqrt(Σx² + eps) (l2) of the row x[0..D).
inline double row_rsqrt(const double* x, int64_t D, double eps, bool mean) {
  double ss = 0;
  for (int64_t i = 0; i < D; ++i) ss += x[i] * x[i];
  return 1.0 / std::sqrt((mean ? ss / double(D) : ss) + eps);
}

// Element i of an optional per-column vector (empty: 1; one element: broadcast).
inline double col_factor(const std::vector<double>& v, int64_t i) {
  return v.empty() ? 1.0 : v.size() == 1 ? v[0] : v[size_t(i)];
}

// rms_norm / rms_norm_mul / l2_norm: y = x·r·w·scale (w empty: no weight, scale empty: none).
inline std::vector<double> rms_norm(const std::vector<double>& x, int64_t D, const std::vector<double>& w,
                                    double eps, bool mean = true, const std::vector<double>& scale = {}) {
  std::vector<double> y(x.size());
  for (size_t base = 0; base < x.size(); base += size_t(D)) {
    const double r = row_rsqrt(&x[base], D, eps, mean);
    for (int64_t i = 0; i < D; ++i) {
      const size_t k = base + size_t(i);
      y[k] = x[k] * r * col_factor(w, i) * (scale.empty() ? 1.0 : scale[k]);
    }
  }
  return y;
}

// fused_norm_add: (residual + input·r(input)·w)·scalar.
inline std::vector<double> fused_norm_add(const std::vector<double>& residual, const std::vector<double>& input,
                                          int64_t D, const std::vector<double>& w, const std::vector<double>& scalar,
                                          double eps) {
  std::vector<double> y(input.size());
  for (size_t base = 0; base < input.size(); base += size_t(D)) {
    const double r = row_rsqrt(&input[base], D, eps, true);
    for (int64_t i = 0; i < D; ++i) {
      const size_t k = base + size_t(i);
      y[k] = (residual[k] + input[k] * r * col_factor(w, i)) * col_factor(scalar, i);
    }
  }
  return y;
}

// fused_residual_norm: s = residual + input; normed = s·r(s)·w·scalar; sum = s.
struct ResidualNorm {
  std::vector<double> normed, sum;
};
inline ResidualNorm fused_residual_norm(const std::vector<double>& residual, const std::vector<double>& input,
                                        int64_t D, const std::vector<double>& w, const std::vector<double>& scalar,
                                        double eps) {
  ResidualNorm o{std::vector<double>(input.size()), std::vector<double>(input.size())};
  for (size_t k = 0; k < input.size(); ++k) o.sum[k] = residual[k] + input[k];
  for (size_t base = 0; base < input.size(); base += size_t(D)) {
    const double r = row_rsqrt(&o.sum[base], D, eps, true);
    for (int64_t i = 0; i < D; ++i) {
      const size_t k = base + size_t(i);
      o.normed[k] = o.sum[k] * r * col_factor(w, i) * col_factor(scalar, i);
    }
  }
  return o;
}

}  // namespace lmk::ref
