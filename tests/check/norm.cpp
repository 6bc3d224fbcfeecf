// Checks for the norm family (core-ops.md §5): every op and dtype over rows ∈ {1, 3, 257, 600}
// and row lengths from 1 to 65536 (each CUDA path: lanes-per-row, CTA-per-row in registers,
// rows read twice (600 rows: at least 4 per SM), two-pass vector and scalar), the spec's value
// ranges (N(0,1), |x| up to 1e15, |x| ≈ 1e-20, an all-zero row), in-place aliasing and unaligned
// views.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "check/check.h"
#include "lmk/norm.h"
#include "ref/norm.h"

namespace lmk::test {
namespace {

using Shape = std::vector<int64_t>;  // {R, D}

// Every CUDA path for every dtype: D = 32 and 256 lanes-per-row, 1000..32768 CTA-per-row
// (f32 32768 and 65536: two-pass vector), odd D: scalar two-pass.
const std::vector<Shape> kShapes = {{1, 1},    {257, 1},   {3, 7},     {257, 32},  {3, 255},
                                    {257, 256}, {257, 257}, {3, 1000},  {1, 4096},  {257, 4096},
                                    {3, 8193},  {3, 16384}, {3, 32768}, {3, 65536}, {600, 1000}};
const std::vector<Shape> kFewShapes = {{1, 1}, {3, 7}, {257, 32}, {257, 256}, {3, 1000}, {1, 4096}, {3, 8193},
                                       {3, 32768}, {3, 65536}, {600, 1000}};
const std::vector<Shape> kValueShapes = {{3, 7}, {257, 32}, {3, 4096}, {3, 8193}, {3, 65536}, {600, 1000}};

enum class Values { normal, large, tiny, zero_row };
// Output aliasing: none; in_place: out = x (rms_norm, l2_norm, rms_norm_mul), out = residual
// (fused_norm_add), sum_out = residual (fused_residual_norm); in_place2: out = scale
// (rms_norm_mul), out = input (fused_norm_add), normed_out = input and sum_out = residual
// (fused_residual_norm).
enum class Alias { none, in_place, in_place2 };

struct Case {
  std::string op;
  DType t = DType::f32;
  bool weight = true;
  int scalar = 0;  // 0: none, 1: [1], 2: [D]
  bool sum = true;  // fused_residual_norm: store sum_out
  Alias alias = Alias::none;
  Values values = Values::normal;
  bool offset = false;  // every tensor a view one element into its buffer (not 16-byte aligned)

  std::string label() const {
    std::string s;
    if (!weight) s += " no-weight";
    if (scalar) s += scalar == 1 ? " scalar[1]" : " scalar[D]";
    if (op == "fused_residual_norm" && !sum) s += " no-sum";
    if (alias != Alias::none) {
      const bool first = alias == Alias::in_place;
      if (op == "fused_norm_add") s += first ? " out=residual" : " out=input";
      else if (op == "fused_residual_norm") s += first ? " sum=residual" : " normed=input,sum=residual";
      else s += first ? " out=x" : " out=scale";
    }
    const char* v[] = {"", " |x|<1e15", " |x|~1e-20", " zero-row"};
    s += v[int(values)];
    if (offset) s += " unaligned";
    return s;
  }
};

HostTensor make_values(DType t, const Shape& shape, uint64_t seed, Values v) {
  if (v == Values::large) return random_uniform(t, shape, seed, -1e15, 1e15);
  HostTensor h = random_normal(t, shape, seed, v == Values::tiny ? 1e-20 : 1.0);
  if (v == Values::zero_row) {
    const int64_t row = shape[0] > 1 ? 1 : 0;
    for (int64_t i = 0; i < shape[1]; ++i) h.set(row * shape[1] + i, 0.0);
  }
  return h;
}

// A device copy of h (or of NaN bytes), optionally one element into its buffer.
struct Placed {
  DeviceTensor storage;
  Tensor view;
};
Placed place(const HostTensor& h, Device d, bool offset) {
  if (!offset) {
    DeviceTensor s = to_device(h, d);
    Tensor v = s.tensor;
    return {std::move(s), v};
  }
  HostTensor padded(h.dtype, {h.numel() + 1});
  const size_t es = size_t(element_size(h.dtype));
  std::memcpy(padded.bytes.data() + es, h.bytes.data(), h.bytes.size());
  DeviceTensor s = to_device(padded, d);
  Tensor v(static_cast<char*>(s.buffer.data()) + es, h.dtype, h.shape, d);
  return {std::move(s), v};
}
Placed place_poisoned(DType t, const Shape& shape, Device d, bool offset) {
  HostTensor h(t, shape);
  std::memset(h.bytes.data(), 0xFF, h.bytes.size());
  return place(h, d, offset);
}

CompareResult run_case(Device d, const Case& c, Shape shape) {
  const int64_t rows = shape[0], dim = shape[1];
  const uint64_t seed = case_seed(c.op + c.label() + shape_name(c.t, shape));
  const DType t = c.t, wt = t == DType::bf16 ? DType::bf16 : DType::f32;
  const bool add = c.op == "fused_norm_add", residual = c.op == "fused_residual_norm";
  const float eps = 1e-6f;

  HostTensor x = make_values(t, shape, seed, c.values);
  HostTensor res = add || residual ? make_values(t, shape, seed + 1, c.values == Values::zero_row ? Values::normal : c.values)
                                   : HostTensor();
  if (residual && c.values == Values::zero_row)  // s = residual + input is exactly 0 on that row
    for (int64_t i = 0; i < dim; ++i) res.set((rows > 1 ? dim : 0) + i, -x.get((rows > 1 ? dim : 0) + i));
  HostTensor w = random_uniform(wt, {dim}, seed + 2, -2, 2);
  HostTensor scale = c.op == "rms_norm_mul" ? random_uniform(t, shape, seed + 3, -2, 2) : HostTensor();
  HostTensor scalar = c.scalar ? random_uniform(DType::f32, {c.scalar == 1 ? 1 : dim}, seed + 4, -2, 2) : HostTensor();

  Placed px = place(x, d, c.offset), pw = place(w, d, c.offset);
  Placed pres = add || residual ? place(res, d, c.offset) : Placed{};
  Placed pscale = c.op == "rms_norm_mul" ? place(scale, d, c.offset) : Placed{};
  Placed pscalar = c.scalar ? place(scalar, d, c.offset) : Placed{};
  Placed pout = place_poisoned(t, shape, d, c.offset), psum = place_poisoned(t, shape, d, c.offset);
  const Tensor wv = c.weight ? pw.view : Tensor(), sv = c.scalar ? pscalar.view : Tensor();
  Tensor out = pout.view, sum = residual && c.sum ? psum.view : Tensor();
  if (c.alias == Alias::in_place) {
    if (add) out = pres.view;
    else if (residual) sum = pres.view;
    else out = px.view;
  } else if (c.alias == Alias::in_place2) {
    if (add) out = px.view;
    else if (residual) out = px.view, sum = pres.view;
    else out = pscale.view;
  }

  const std::vector<double> xs = x.to_double(), ws = c.weight ? w.to_double() : std::vector<double>();
  const std::vector<double> ss = c.scalar ? scalar.to_double() : std::vector<double>();
  if (c.op == "rms_norm") {
    rms_norm(px.view, wv, out, eps);
    return compare(to_host(out), ref::rms_norm(xs, dim, ws, eps), tol_reduction(t));
  }
  if (c.op == "l2_norm") {
    l2_norm(px.view, out, eps);
    return compare(to_host(out), ref::rms_norm(xs, dim, {}, eps, false), tol_reduction(t));
  }
  if (c.op == "rms_norm_mul") {
    rms_norm_mul(px.view, wv, pscale.view, out, eps);
    return compare(to_host(out), ref::rms_norm(xs, dim, ws, eps, true, scale.to_double()), tol_reduction(t));
  }
  const std::vector<double> rs = res.to_double();
  if (add) {
    fused_norm_add(pres.view, px.view, wv, out, eps, sv);
    // The final add may cancel: allow an absolute error of 1e-6 of the largest normalized term
    // (f32 evaluation of x·r·w carries ~5e-7 of it) besides the per-dtype reduction tolerance.
    const std::vector<double> terms = ref::fused_norm_add(std::vector<double>(rs.size(), 0.0), xs, dim, ws, ss, eps);
    const std::vector<double> want = ref::fused_norm_add(rs, xs, dim, ws, ss, eps);
    double term_max = 0, term_sq = 0, want_sq = 0;
    for (double v : terms) term_max = std::max(term_max, std::fabs(v)), term_sq += v * v;
    for (double v : want) want_sq += v * v;
    Tolerance tol = tol_reduction(t);
    tol.abs = std::max(tol.abs, 1e-6 * term_max);
    // The whole-tensor bound scales the same way: relative to the normalized terms when the sum
    // cancels below them.
    if (want_sq > 0) tol.rel_l2 *= std::max(1.0, std::sqrt(term_sq / want_sq));
    return compare(to_host(out), want, tol);
  }
  fused_residual_norm(pres.view, px.view, wv, out, sum, eps, sv);
  const ref::ResidualNorm want = ref::fused_residual_norm(rs, xs, dim, ws, ss, eps);
  CompareResult r = compare(to_host(out), want.normed, tol_reduction(t));
  // One add of two values of the dtype in f32, rounded once more: correctly rounded (§0).
  if (sum.defined()) r = merge(r, compare(to_host(sum), want.sum, exact()), "sum_out");
  return r;
}

void add_case(std::vector<CheckCase>& cases, const Case& c, const Shape& s, bool quick = false) {
  cases.push_back({c.op, shape_name(c.t, s) + c.label(), quick, [c, s](Device d) { return run_case(d, c, s); }});
}

bool is_quick(const Case& c, const Shape& s) {
  return c.t == DType::bf16 && c.weight && c.sum && s == Shape{257, 4096};
}

}  // namespace

LMK_CHECKS(norm) {
  for (const char* op : {"rms_norm", "l2_norm", "rms_norm_mul", "fused_norm_add", "fused_residual_norm"}) {
    const std::string o = op;
    for (DType t : float_types()) {
      // Plain forms over every shape.
      for (const auto& s : kShapes) {
        add_case(cases, {.op = o, .t = t}, s, is_quick({.op = o, .t = t}, s));
        if (o == "rms_norm" || o == "fused_norm_add") add_case(cases, {.op = o, .t = t, .weight = false}, s);
        if (o == "fused_residual_norm") add_case(cases, {.op = o, .t = t, .sum = false}, s);
      }
      // Variants over fewer shapes: layer scalar, in-place outputs.
      for (const auto& s : kFewShapes) {
        if (o == "fused_norm_add" || o == "fused_residual_norm")
          for (int sc : {1, 2}) add_case(cases, {.op = o, .t = t, .scalar = sc}, s);
        add_case(cases, {.op = o, .t = t, .alias = Alias::in_place}, s);
        if (o == "rms_norm_mul" || o == "fused_norm_add" || o == "fused_residual_norm")
          add_case(cases, {.op = o, .t = t, .alias = Alias::in_place2}, s);
      }
      // Value ranges (f16 has neither 1e15 nor 1e-20).
      for (Values v : {Values::large, Values::tiny, Values::zero_row}) {
        if (t == DType::f16 && v != Values::zero_row) continue;
        for (const auto& s : kValueShapes) add_case(cases, {.op = o, .t = t, .values = v}, s);
      }
      // The many-rows path at the benchmark's row length.
      add_case(cases, {.op = o, .t = t}, {600, 4096});
      // Views that are not 16-byte aligned take the scalar path even for D % 8 == 0.
      add_case(cases, {.op = o, .t = t, .offset = true}, {3, 4096});
      add_case(cases, {.op = o, .t = t, .offset = true}, {257, 64});
    }
  }
  // The scalar variant of fused_norm_add without a weight (mlx-native has none; ours composes).
  add_case(cases, {.op = "fused_norm_add", .t = DType::bf16, .weight = false, .scalar = 1}, {3, 4096});
}

}  // namespace lmk::test
