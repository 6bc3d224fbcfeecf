// Benchmarks of the norm family (core-ops.md §5). Memory-bound: compulsory bytes = every input
// element read once (the weight once, not once per row) + every output element written once.
#include "bench/bench.h"
#include "lmk/norm.h"

namespace lmk::bench {
namespace {

using Shape = std::vector<int64_t>;
// The peers.md shape (16384 x 4096); the CPU runs 256 rows.
Shape big(const Context& c) { return c.device.is_cpu() ? Shape{256, 4096} : Shape{16384, 4096}; }
std::string shape_str(const Shape& s) { return std::to_string(s[0]) + "x" + std::to_string(s[1]); }
DType weight_dtype(DType t) { return t == DType::bf16 ? DType::bf16 : DType::f32; }
std::string label(DType t, const Shape& s, const std::string& extra = "") {
  return std::string(name(t)) + (extra.empty() ? "" : " " + extra) + " " + shape_str(s);
}

// rms_norm on shape s (fixed, or big() when empty).
void bench_rms_norm(Context& c, DType t, Shape s, bool weighted) {
  if (s.empty()) s = big(c);
  auto x = c.random(t, s), o = c.empty(t, s), w = c.random(weight_dtype(t), {s[1]}, 0.5, 1.5);
  const Tensor wt = weighted ? w.tensor() : Tensor();
  double us = c.time_us([&] { rms_norm(x, wt, o, 1e-6f, c.stream); });
  c.record("rms_norm", label(t, s, weighted ? "" : "no-weight"), us,
           double(x.bytes() + o.bytes() + (weighted ? w.bytes() : 0)));
}

}  // namespace

LMK_BENCHES(norm) {
  for (DType t : {DType::bf16, DType::f32, DType::f16})
    cases.push_back({"rms_norm", std::string(name(t)), t == DType::bf16, t == DType::bf16,
                     [t](Context& c) { bench_rms_norm(c, t, {}, true); }});
  cases.push_back({"rms_norm", "bf16 no-weight", false, false, [](Context& c) { bench_rms_norm(c, DType::bf16, {}, false); }});
  // Decode: one token's hidden state (latency-bound).
  for (int64_t d : {4096, 8192})
    cases.push_back({"rms_norm", "bf16 decode " + std::to_string(d), d == 4096, true,
                     [d](Context& c) { bench_rms_norm(c, DType::bf16, {1, d}, true); }});
  // Per-head q/k norm: 8192 tokens x 32 heads of 128 (lanes-per-row kernel).
  cases.push_back({"rms_norm", "bf16 per-head 128", false, false,
                   [](Context& c) { bench_rms_norm(c, DType::bf16, {8192 * 32, 128}, true); }});

  cases.push_back({"rms_norm_mul", "bf16", false, false, [](Context& c) {
    auto s = big(c);
    auto x = c.random(DType::bf16, s), m = c.random(DType::bf16, s), o = c.empty(DType::bf16, s);
    auto w = c.random(DType::bf16, {s[1]}, 0.5, 1.5);
    double us = c.time_us([&] { rms_norm_mul(x, w, m, o, 1e-6f, c.stream); });
    c.record("rms_norm_mul", label(DType::bf16, s), us, double(x.bytes() + m.bytes() + o.bytes() + w.bytes()));
  }});

  for (DType t : {DType::bf16, DType::f32})
    cases.push_back({"l2_norm", std::string(name(t)), t == DType::bf16, false, [t](Context& c) {
      auto s = big(c);
      auto x = c.random(t, s), o = c.empty(t, s);
      double us = c.time_us([&] { l2_norm(x, o, 1e-6f, c.stream); });
      c.record("l2_norm", label(t, s), us, double(x.bytes() + o.bytes()));
    }});

  // fused_norm_add: bf16 with weight; f32 with the Gemma 4 layer scalar [1].
  for (DType t : {DType::bf16, DType::f32})
    cases.push_back({"fused_norm_add", std::string(name(t)), t == DType::bf16, t == DType::bf16, [t](Context& c) {
      auto s = big(c);
      auto r = c.random(t, s), x = c.random(t, s), o = c.empty(t, s), w = c.random(weight_dtype(t), {s[1]}, 0.5, 1.5);
      auto sc = c.random(DType::f32, {1}, 0.5, 1.5);
      const Tensor scalar = t == DType::f32 ? sc.tensor() : Tensor();
      double us = c.time_us([&] { fused_norm_add(r, x, w, o, 1e-6f, scalar, c.stream); });
      c.record("fused_norm_add", label(t, s, t == DType::f32 ? "scalar" : ""), us,
               double(r.bytes() + x.bytes() + o.bytes() + w.bytes() + (t == DType::f32 ? sc.bytes() : 0)));
    }});

  // fused_residual_norm: the peers.md case stores no sum; the in-place residual update stores it
  // into residual (4 passes of R·D). Decode: one token.
  cases.push_back({"fused_residual_norm", "bf16", true, true, [](Context& c) {
    auto s = big(c);
    auto r = c.random(DType::bf16, s), x = c.random(DType::bf16, s), o = c.empty(DType::bf16, s);
    auto w = c.random(DType::bf16, {s[1]}, 0.5, 1.5);
    double us = c.time_us([&] { fused_residual_norm(r, x, w, o, Tensor(), 1e-6f, Tensor(), c.stream); });
    c.record("fused_residual_norm", label(DType::bf16, s), us, double(r.bytes() + x.bytes() + o.bytes() + w.bytes()));
  }});
  for (DType t : {DType::bf16, DType::f32})
    cases.push_back({"fused_residual_norm", std::string(name(t)) + " sum=residual", false, false, [t](Context& c) {
      auto s = big(c);
      auto r = c.random(t, s), x = c.random(t, s), o = c.empty(t, s), w = c.random(weight_dtype(t), {s[1]}, 0.5, 1.5);
      double us = c.time_us([&] { fused_residual_norm(r, x, w, o, r, 1e-6f, Tensor(), c.stream); });
      c.record("fused_residual_norm", label(t, s, "sum=residual"), us,
               double(2 * r.bytes() + x.bytes() + o.bytes() + w.bytes()));
    }});
  cases.push_back({"fused_residual_norm", "bf16 decode 4096", false, true, [](Context& c) {
    const Shape s{1, 4096};
    auto r = c.random(DType::bf16, s), x = c.random(DType::bf16, s), o = c.empty(DType::bf16, s);
    auto w = c.random(DType::bf16, {s[1]}, 0.5, 1.5);
    double us = c.time_us([&] { fused_residual_norm(r, x, w, o, r, 1e-6f, Tensor(), c.stream); });
    c.record("fused_residual_norm", label(DType::bf16, s, "decode sum=residual"), us,
             double(2 * r.bytes() + x.bytes() + o.bytes() + w.bytes()));
  }});
}

}  // namespace lmk::bench
