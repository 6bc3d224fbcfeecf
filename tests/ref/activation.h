// fp64 references for the activation family, written from core-ops.md §3 and
// training-and-vision.md §8 (outer_product) / §9 (add_bias_row_2d), independent of src/.
#pragma once
#include <cmath>
#include <cstdint>
#include <vector>

// Nested namespace: other families' references may define functions of the same names.
namespace lmk::ref::activation {

inline double sigmoid(double x) { return 1.0 / (1.0 + std::exp(-x)); }

// silu_mul: g / (1 + exp(-g)) * up.
inline double silu_mul(double g, double up) { return g / (1.0 + std::exp(-g)) * up; }
// sigmoid_mul: x * 1 / (1 + exp(-gate)).
inline double sigmoid_mul(double x, double gate) { return x * sigmoid(gate); }
// silu: x * 1 / (1 + exp(-x)).
inline double silu(double x) { return x * sigmoid(x); }

// gelu, tanh form with the tanh argument clamped to ±15. At the clamp the reference takes the
// results §3 names, because tanh(±15) = ±(1 - 1.9e-13) is ±1 in f32: u >= 15 gives y = x (+inf
// stays +inf), u <= -15 gives 0.5·x·0 = -0 (and NaN for x = -inf, as in PyTorch). NaN stays NaN.
inline double gelu(double x) {
  const double u = 0.7978845608028654 * (x + 0.044715 * (x * x * x));
  if (u >= 15) return x;
  if (u <= -15) return 0.5 * x * 0.0;
  return 0.5 * x * (1.0 + std::tanh(u));
}

inline double softcap(double x, double cap) { return std::tanh(x / cap) * cap; }

// Elementwise over one or two same-length vectors.
template <typename F>
std::vector<double> map1(const std::vector<double>& x, F f) {
  std::vector<double> y(x.size());
  for (size_t i = 0; i < x.size(); ++i) y[i] = f(x[i]);
  return y;
}
template <typename F>
std::vector<double> map2(const std::vector<double>& a, const std::vector<double>& b, F f) {
  std::vector<double> y(a.size());
  for (size_t i = 0; i < a.size(); ++i) y[i] = f(a[i], b[i]);
  return y;
}

// out[i, j] = a[i, j] + bias[j] over a row-major [rows, cols].
inline std::vector<double> add_bias_row_2d(const std::vector<double>& a, const std::vector<double>& bias) {
  const size_t cols = bias.size();
  std::vector<double> y(a.size());
  for (size_t i = 0; i < a.size(); ++i) y[i] = a[i] + bias[i % cols];
  return y;
}

// y[i, j] = lhs[i] * rhs[j], row-major [N, M].
inline std::vector<double> outer_product(const std::vector<double>& lhs, const std::vector<double>& rhs) {
  std::vector<double> y(lhs.size() * rhs.size());
  for (size_t i = 0; i < lhs.size(); ++i)
    for (size_t j = 0; j < rhs.size(); ++j) y[i * rhs.size() + j] = lhs[i] * rhs[j];
  return y;
}

}  // namespace lmk::ref::activation
