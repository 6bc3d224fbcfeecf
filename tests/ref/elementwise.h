// fp64 references for the elementwise family, written from core-ops.md §2 (independent of src/).
#pragma once
#include <cmath>
#include <cstdint>
#include <vector>

namespace lmk::ref {

enum class Binary { add, mul, div };

// b may be a row of length b_cols broadcast over a (b_cols == 0: same length as a).
inline std::vector<double> binary(Binary op, const std::vector<double>& a, const std::vector<double>& b, int64_t b_cols) {
  std::vector<double> y(a.size());
  for (size_t i = 0; i < a.size(); ++i) {
    double x = a[i], z = b[b_cols ? i % size_t(b_cols) : i];
    y[i] = op == Binary::add ? x + z : op == Binary::mul ? x * z : x / z;
  }
  return y;
}

template <typename F>
std::vector<double> map(const std::vector<double>& x, F f) {
  std::vector<double> y(x.size());
  for (size_t i = 0; i < x.size(); ++i) y[i] = f(x[i]);
  return y;
}

}  // namespace lmk::ref
