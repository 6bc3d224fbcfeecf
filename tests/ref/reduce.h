// fp64 references for the reduce family, written from core-ops.md §6 (independent of src/).
#pragma once
#include <cmath>
#include <cstdint>
#include <vector>

namespace lmk::ref {

// out[r] = sum_j x[r, j].
inline std::vector<double> row_sum(const std::vector<double>& x, int64_t rows, int64_t cols) {
  std::vector<double> y(static_cast<size_t>(rows), 0.0);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < cols; ++j) y[size_t(r)] += x[size_t(r * cols + j)];
  return y;
}

// sum_j |x[r, j]|: the scale of row_sum's error bound (1e-5 * sum |x|).
inline std::vector<double> row_abs_sum(const std::vector<double>& x, int64_t rows, int64_t cols) {
  std::vector<double> y(static_cast<size_t>(rows), 0.0);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < cols; ++j) y[size_t(r)] += std::fabs(x[size_t(r * cols + j)]);
  return y;
}

// Inclusive prefix sum along each row.
inline std::vector<double> cumsum(const std::vector<double>& x, int64_t rows, int64_t cols) {
  std::vector<double> y(x.size());
  for (int64_t r = 0; r < rows; ++r) {
    double run = 0;
    for (int64_t i = 0; i < cols; ++i) {
      run += x[size_t(r * cols + i)];
      y[size_t(r * cols + i)] = run;
    }
  }
  return y;
}

}  // namespace lmk::ref
