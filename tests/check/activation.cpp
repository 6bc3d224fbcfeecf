// Checks for the activation family (core-ops.md §3; add_bias_row_2d and outer_product forward
// from training-and-vision.md §9 and §8).
#include <cmath>
#include <cstring>

#include "check/check.h"
#include "lmk/activation.h"
#include "ref/activation.h"

namespace lmk::test {
namespace {

namespace R = ref::activation;

const std::vector<std::vector<int64_t>> kShapes = {{1}, {7}, {3, 255}, {257, 1000}, {3, 8193}, {1, 65536 + 3}};
bool is_quick_shape(const std::vector<int64_t>& s) { return s.size() == 2 && s[0] == 257; }

// Spec §3 edge values (plus ±1e30, where x*x*x overflows f32, and ±inf / NaN).
const double kEdges[] = {0.0, -0.0, 1e-8, -1e-8, 88.0, -88.0, 1e4, -1e4, 1e30, -1e30, INFINITY, -INFINITY, NAN};
constexpr int64_t kNumEdges = int64_t(sizeof(kEdges) / sizeof(kEdges[0]));

// Uniform over [-20, 20], with the edge values written at [first, first + kNumEdges) when they fit.
// Two-input ops put the edges of their inputs at different indices.
HostTensor inputs(DType t, const std::vector<int64_t>& shape, uint64_t seed, int64_t first) {
  HostTensor h = random_uniform(t, shape, seed, -20, 20);
  if (h.numel() >= first + kNumEdges)
    for (int64_t k = 0; k < kNumEdges; ++k) h.set(first + k, kEdges[k]);
  return h;
}

// A correctly rounded result beyond the output format's range is ±inf (f16 silu_mul with up = 1e4).
std::vector<double> saturate(DType t, std::vector<double> v) {
  for (auto& x : v)
    if (std::isinf(round_to(t, x))) x = round_to(t, x);
  return v;
}

// plain: fresh tensors; unaligned: every tensor starts one element into its buffer (CUDA's scalar
// fallback); inplace: out is the first input.
enum class Mode { plain, unaligned, inplace };
const char* mode_suffix(Mode m) { return m == Mode::plain ? "" : m == Mode::unaligned ? " unaligned" : " in-place"; }

struct Staged {
  DeviceTensor owner;
  Tensor view;
};

Staged stage(const HostTensor& h, Device d, bool offset) {
  if (!offset) {
    DeviceTensor dt = to_device(h, d);
    Tensor v = dt.tensor;
    return {std::move(dt), v};
  }
  const int64_t es = element_size(h.dtype);
  HostTensor padded(h.dtype, {h.numel() + 1});
  std::memcpy(padded.bytes.data() + es, h.bytes.data(), h.bytes.size());
  DeviceTensor dt = to_device(padded, d);
  Tensor v(static_cast<unsigned char*>(dt.buffer.data()) + es, h.dtype, h.shape, d);
  return {std::move(dt), v};
}

Staged stage_poisoned(DType t, const std::vector<int64_t>& shape, Device d, bool offset) {
  HostTensor h(t, shape);
  std::memset(h.bytes.data(), 0xFF, h.bytes.size());
  return stage(h, d, offset);
}

// §0 "transcendental / fused chain"; gelu adds abs 1e-6 (its negative tail: 1 + tanh(u) cancels).
// With a handful of elements all may be tiny (f16 subnormal, gelu tail), where only the per-element
// bound means anything, so the norm criterion applies from 64 elements on.
Tolerance tol_act(DType t, int64_t numel, bool is_gelu = false) {
  Tolerance tol = tol_transcendental(t);
  if (is_gelu) tol.abs = 1e-6;
  if (numel < 64) tol.rel_l2 = 1.0;
  return tol;
}

CompareResult check_gated(Device d, const std::string& op, DType t, std::vector<int64_t> shape, Mode mode) {
  auto seed = case_seed(op + shape_name(t, shape) + mode_suffix(mode));
  HostTensor a = inputs(t, shape, seed, 0), b = inputs(t, shape, seed + 1, kNumEdges);
  const bool off = mode == Mode::unaligned;
  Staged da = stage(a, d, off), db = stage(b, d, off);
  Staged out = mode == Mode::inplace ? Staged{} : stage_poisoned(t, shape, d, off);
  const Tensor& o = mode == Mode::inplace ? da.view : out.view;
  if (op == "silu_mul") silu_mul(da.view, db.view, o);  // (gate, up)
  else sigmoid_mul(da.view, db.view, o);                 // (x, gate)
  auto want = R::map2(a.to_double(), b.to_double(), op == "silu_mul" ? R::silu_mul : R::sigmoid_mul);
  return compare(to_host(o), saturate(t, want), tol_act(t, a.numel()));
}

CompareResult check_unary(Device d, const std::string& op, DType t, std::vector<int64_t> shape, Mode mode,
                          float cap = 30.0f) {
  auto seed = case_seed(op + shape_name(t, shape) + mode_suffix(mode) + std::to_string(cap));
  HostTensor x = inputs(t, shape, seed, 0);
  const bool off = mode == Mode::unaligned;
  Staged dx = stage(x, d, off);
  Staged out = mode == Mode::inplace ? Staged{} : stage_poisoned(t, shape, d, off);
  const Tensor& o = mode == Mode::inplace ? dx.view : out.view;
  std::vector<double> want;
  if (op == "silu") {
    silu(dx.view, o);
    want = R::map1(x.to_double(), R::silu);
  } else if (op == "gelu") {
    gelu(dx.view, o);
    want = R::map1(x.to_double(), R::gelu);
  } else {
    softcap(dx.view, o, cap);
    want = R::map1(x.to_double(), [cap](double v) { return R::softcap(v, double(cap)); });
  }
  return compare(to_host(o), saturate(t, want), tol_act(t, x.numel(), op == "gelu"));
}

CompareResult check_add_bias(Device d, DType t, std::vector<int64_t> shape, Mode mode) {
  auto seed = case_seed("add_bias_row_2d" + shape_name(t, shape) + mode_suffix(mode));
  HostTensor a = random_uniform(t, shape, seed, -4, 4), bias = random_uniform(t, {shape[1]}, seed + 1, -4, 4);
  const bool off = mode == Mode::unaligned;
  Staged da = stage(a, d, off), db = stage(bias, d, off);
  Staged out = mode == Mode::inplace ? Staged{} : stage_poisoned(t, shape, d, off);
  const Tensor& o = mode == Mode::inplace ? da.view : out.view;
  add_bias_row_2d(da.view, db.view, o);
  // One f32 add of two values of the dtype, one rounding: the correctly rounded sum (§0).
  return compare(to_host(o), R::add_bias_row_2d(a.to_double(), bias.to_double()), exact());
}

CompareResult check_outer(Device d, int64_t n, int64_t m, bool unaligned) {
  auto seed = case_seed("outer_product" + std::to_string(n) + "x" + std::to_string(m) + (unaligned ? "u" : ""));
  HostTensor lhs = random_uniform(DType::f32, {n}, seed, -4, 4), rhs = random_uniform(DType::f32, {m}, seed + 1, -4, 4);
  Staged dl = stage(lhs, d, unaligned), dr = stage(rhs, d, unaligned);
  Staged out = stage_poisoned(DType::f32, {n, m}, d, unaligned);
  outer_product(dl.view, dr.view, out.view);
  // The exact product of two f32 values fits in fp64, so rounding it gives the f32 product.
  return compare(to_host(out.view), R::outer_product(lhs.to_double(), rhs.to_double()), exact());
}

}  // namespace

LMK_CHECKS(activation) {
  for (const char* op : {"silu_mul", "sigmoid_mul"})
    for (DType t : float_types()) {
      for (const auto& s : kShapes)
        cases.push_back({op, shape_name(t, s), is_quick_shape(s) && t == DType::bf16,
                         [=](Device d) { return check_gated(d, op, t, s, Mode::plain); }});
      for (Mode m : {Mode::unaligned, Mode::inplace}) {
        const std::vector<int64_t> s{3, 1000};
        cases.push_back({op, shape_name(t, s) + mode_suffix(m), false,
                         [=](Device d) { return check_gated(d, op, t, s, m); }});
      }
    }
  for (const char* op : {"silu", "gelu", "softcap"})
    for (DType t : float_types()) {
      for (const auto& s : kShapes)
        cases.push_back({op, shape_name(t, s), is_quick_shape(s) && t == DType::bf16,
                         [=](Device d) { return check_unary(d, op, t, s, Mode::plain); }});
      for (Mode m : {Mode::unaligned, Mode::inplace}) {
        const std::vector<int64_t> s{3, 1000};
        cases.push_back({op, shape_name(t, s) + mode_suffix(m), false,
                         [=](Device d) { return check_unary(d, op, t, s, m); }});
      }
    }
  for (DType t : float_types())  // a small cap saturates much of [-20, 20]
    cases.push_back({"softcap", shape_name(t, {257, 1000}) + " cap 5", false,
                     [=](Device d) { return check_unary(d, "softcap", t, {257, 1000}, Mode::plain, 5.0f); }});

  const std::vector<std::vector<int64_t>> bias_shapes = {{1, 1}, {1, 7}, {17, 33}, {3, 255}, {257, 1000}, {5, 8193}, {64, 4096}};
  for (DType t : float_types()) {
    for (const auto& s : bias_shapes)
      cases.push_back({"add_bias_row_2d", shape_name(t, s), t == DType::f32 && s[0] == 17,
                       [=](Device d) { return check_add_bias(d, t, s, Mode::plain); }});
    for (Mode m : {Mode::unaligned, Mode::inplace}) {
      const std::vector<int64_t> s{33, 256};
      cases.push_back({"add_bias_row_2d", shape_name(t, s) + mode_suffix(m), false,
                       [=](Device d) { return check_add_bias(d, t, s, m); }});
    }
  }

  const std::pair<int64_t, int64_t> outer_shapes[] = {{1, 1}, {1, 7}, {7, 1}, {4096, 128}, {33, 1000}, {3, 8193}, {257, 255}};
  for (auto [n, m] : outer_shapes)
    cases.push_back({"outer_product", "f32 " + std::to_string(n) + "x" + std::to_string(m), n == 4096,
                     [=](Device d) { return check_outer(d, n, m, false); }});
  cases.push_back({"outer_product", "f32 65x256 unaligned", false, [](Device d) { return check_outer(d, 65, 256, true); }});
}

}  // namespace lmk::test
