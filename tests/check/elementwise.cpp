// Checks for the elementwise family (core-ops.md §2).
#include <cmath>

#include "check/check.h"
#include "lmk/elementwise.h"
#include "ref/elementwise.h"

namespace lmk::test {
namespace {

const std::vector<std::vector<int64_t>> kShapes = {{1}, {7}, {3, 255}, {257, 1000}, {3, 8193}, {1, 65536 + 3}};

CompareResult check_binary(Device d, const std::string& op, DType t, std::vector<int64_t> shape, bool broadcast) {
  auto seed = case_seed(op + shape_name(t, shape));
  const bool is_div = op == "divide";
  auto a = random_uniform(t, shape, seed, -4, 4);
  std::vector<int64_t> bshape = broadcast ? std::vector<int64_t>{shape.back()} : shape;
  // Divisors kept away from zero so the reference is well conditioned.
  auto b = is_div ? random_uniform(t, bshape, seed + 1, 0.25, 4) : random_uniform(t, bshape, seed + 1, -4, 4);
  auto da = to_device(a, d), db = to_device(b, d);
  auto out = poisoned(t, shape, d);
  if (op == "add") lmk::add(da, db, out);
  else if (op == "mul") lmk::mul(da, db, out);
  else lmk::divide(da, db, out);
  auto kind = op == "add" ? ref::Binary::add : op == "mul" ? ref::Binary::mul : ref::Binary::div;
  auto want = ref::binary(kind, a.to_double(), b.to_double(), broadcast ? shape.back() : 0);
  // One IEEE operation on representable inputs: correctly rounded, so bit-exact.
  return compare(to_host(out), want, exact());
}

CompareResult check_unary(Device d, const std::string& op, std::vector<int64_t> shape) {
  auto seed = case_seed(op + shape_name(DType::f32, shape));
  double lo = op == "exp" ? -20 : 1e-3, hi = op == "exp" ? 20 : 1e4;
  auto x = random_uniform(DType::f32, shape, seed, lo, hi);
  auto dx = to_device(x, d);
  auto out = poisoned(DType::f32, shape, d);
  double (*f)(double) = op == "exp" ? static_cast<double (*)(double)>(std::exp)
                        : op == "log" ? static_cast<double (*)(double)>(std::log)
                                      : static_cast<double (*)(double)>(std::sqrt);
  if (op == "exp") lmk::exp(dx, out);
  else if (op == "log") lmk::log(dx, out);
  else lmk::sqrt(dx, out);
  Tolerance tol = op == "sqrt" ? exact() : Tolerance{.rel_l2 = 1e-6, .rel = 1e-6};
  return compare(to_host(out), ref::map(x.to_double(), f), tol);
}

CompareResult check_scalar_mul(Device d, DType t, std::vector<int64_t> shape) {
  auto seed = case_seed("scalar_mul" + shape_name(t, shape));
  auto x = random_uniform(t, shape, seed, -8, 8);
  const float s = -1.7182818f;
  auto dx = to_device(x, d);
  auto out = poisoned(t, shape, d);
  lmk::scalar_mul(dx, s, out);
  // Spec: the f32 product, then one rounding to the dtype (two roundings for 16-bit).
  auto want = ref::map(x.to_double(), [&](double v) { return double(float(v) * s); });
  return compare(to_host(out), want, exact());
}

CompareResult check_cast(Device d, DType from, DType to, std::vector<int64_t> shape) {
  auto seed = case_seed("cast" + shape_name(from, shape) + std::string(name(to)));
  auto x = random_normal(from, shape, seed, 1000.0);  // spans f16 overflow region
  if (x.numel() > 8) {  // edge values: ±0, ±inf, NaN, f16 overflow, subnormals, bf16 ties
    const double edges[] = {0.0, -0.0, INFINITY, -INFINITY, NAN, 70000.0, 3e-6, 1.0 + 1.0 / 256};
    for (int i = 0; i < 8; ++i) x.set(i, edges[i]);
  }
  auto dx = to_device(x, d);
  auto out = poisoned(to, shape, d);
  lmk::cast(dx, out);
  return compare(to_host(out), x.to_double(), exact());
}

}  // namespace

LMK_CHECKS(elementwise) {
  for (const char* op : {"add", "mul", "divide"}) {
    for (DType t : float_types()) {
      if (std::string(op) == "divide" && t != DType::f32) continue;
      for (const auto& s : kShapes) {
        const bool quick = s.size() == 2 && s[0] == 257;
        cases.push_back({op, shape_name(t, s), quick, [=](Device d) { return check_binary(d, op, t, s, false); }});
        if (s.size() == 2)
          cases.push_back({op, shape_name(t, s) + " row-broadcast b", quick,
                           [=](Device d) { return check_binary(d, op, t, s, true); }});
      }
    }
  }
  for (const char* op : {"exp", "log", "sqrt"})
    for (const auto& s : kShapes)
      cases.push_back({op, shape_name(DType::f32, s), s.size() == 2 && s[0] == 257,
                       [=](Device d) { return check_unary(d, op, s); }});
  for (DType t : float_types())
    for (const auto& s : kShapes)
      cases.push_back({"scalar_mul", shape_name(t, s), s.size() == 2 && s[0] == 257,
                       [=](Device d) { return check_scalar_mul(d, t, s); }});
  for (DType from : float_types())
    for (DType to : float_types())
      for (const auto& s : kShapes)
        cases.push_back({"cast", shape_name(from, s) + "->" + std::string(name(to)), s.size() == 2 && s[0] == 257,
                         [=](Device d) { return check_cast(d, from, to, s); }});
}

}  // namespace lmk::test
