// Checks for the reduce family (core-ops.md §6): row_sum with its sum|x| error bound, cumsum
// (f32, bf16) on rows of one tile, many tiles (look-back on CUDA), many rows, odd lengths.
#include <algorithm>
#include <cmath>
#include <limits>

#include "check/check.h"
#include "lmk/reduce.h"
#include "ref/reduce.h"

namespace lmk::test {
namespace {

struct Shape {
  int64_t rows, cols;
};

CompareResult check_row_sum(Device d, Shape s) {
  const std::vector<int64_t> shape{s.rows, s.cols};
  auto x = random_uniform(DType::f32, shape, case_seed("row_sum" + shape_name(DType::f32, shape)), -1, 1);
  auto dx = to_device(x, d);
  auto out = poisoned(DType::f32, {s.rows}, d);
  lmk::row_sum(dx, out);
  const auto xv = x.to_double();
  const auto want = ref::row_sum(xv, s.rows, s.cols), scale = ref::row_abs_sum(xv, s.rows, s.cols);
  // Spec bound |err| <= 1e-5 * sum_j |x[r, j]|: compare out / sum|x| against ref / sum|x|.
  const HostTensor got = to_host(out);
  HostTensor norm(DType::f64, {s.rows});
  std::vector<double> norm_ref(size_t(s.rows));
  for (int64_t r = 0; r < s.rows; ++r) {
    const double k = scale[size_t(r)] > 0 ? scale[size_t(r)] : 1.0;
    norm.set(r, got.get(r) / k);
    norm_ref[size_t(r)] = want[size_t(r)] / k;
  }
  return compare(norm, norm_ref, Tolerance{.rel_l2 = 1e300, .abs = 1e-5});
}

CompareResult check_cumsum(Device d, DType t, Shape s) {
  const std::vector<int64_t> shape{s.rows, s.cols};
  auto x = random_uniform(t, shape, case_seed("cumsum" + shape_name(t, shape)), -1, 1);
  auto dx = to_device(x, d);
  auto out = poisoned(t, shape, d);
  lmk::cumsum(dx, out);
  const auto want = ref::cumsum(x.to_double(), s.rows, s.cols);
  double peak = 0;
  for (double v : want) peak = std::max(peak, std::fabs(v));
  // Spec: abs 1e-4 * max|prefix| for f32 (f32 running sums); bf16 adds its 2-ulp rounding of
  // the f32 result on top of that.
  Tolerance tol{.rel_l2 = 1e-3, .abs = 1e-4 * peak};
  if (t == DType::bf16) tol = Tolerance{.rel_l2 = 1.6e-2, .abs = 1e-4 * peak, .ulps = 2};
  return compare(to_host(out), want, tol);
}

}  // namespace

LMK_CHECKS(reduce) {
  const Shape sums[] = {{1, 1}, {3, 7}, {257, 32}, {3, 255}, {257, 1000}, {257, 4096}, {3, 8193},
                        {1, 65539}, {2, 1000000}, {5, 300000}};
  for (Shape s : sums)
    cases.push_back({"row_sum", shape_name(DType::f32, {s.rows, s.cols}), s.rows == 257 && s.cols == 4096,
                     [=](Device d) { return check_row_sum(d, s); }});

  // 8192 = one CUDA tile; 8193+ = several (look-back when rows are few, one block per row for
  // 600 rows); odd lengths take the scalar path.
  const Shape scans[] = {{1, 1},    {3, 7},     {257, 32},     {3, 255},     {3, 1000},   {257, 4096},
                         {1, 8192}, {3, 8193},  {2, 100000},   {2, 100001},  {600, 8200}, {1, 2000000}};
  for (DType t : {DType::f32, DType::bf16})
    for (Shape s : scans)
      cases.push_back({"cumsum", shape_name(t, {s.rows, s.cols}), s.rows == 2 && s.cols == 100000,
                       [=](Device d) { return check_cumsum(d, t, s); }});
}

}  // namespace lmk::test
