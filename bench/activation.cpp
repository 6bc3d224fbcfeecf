// Benchmarks of the activation family. Memory-bound: compulsory bytes = inputs + outputs
// (core-ops.md §3: 3·n·s for the gated ops, 2·n·s for the unary ones).
#include "bench/bench.h"
#include "lmk/activation.h"

namespace lmk::bench {
namespace {
std::string shape_str(const std::vector<int64_t>& s) { return std::to_string(s[0]) + "x" + std::to_string(s[1]); }
std::string case_name(DType t, const std::vector<int64_t>& s) { return std::string(name(t)) + " " + shape_str(s); }

// FFN-sized activations (peers.md: 8192 x 14336) and one decode row.
const std::vector<int64_t> kBig{8192, 14336};
const std::vector<int64_t> kDecode{1, 4096};

void gated(Context& c, const std::string& op, DType t, const std::vector<int64_t>& s) {
  auto a = c.random(t, s, -4, 4), b = c.random(t, s, -4, 4), o = c.empty(t, s);
  double us = op == "silu_mul" ? c.time_us([&] { silu_mul(a, b, o, c.stream); })
                               : c.time_us([&] { sigmoid_mul(a, b, o, c.stream); });
  c.record(op, case_name(t, s), us, 3.0 * double(a.bytes()));
}

void unary(Context& c, const std::string& op, DType t, const std::vector<int64_t>& s) {
  // softcap: logits around ±60 with cap 30 take both tanh paths; gelu/silu: typical MLP range.
  const double r = op == "softcap" ? 60 : 4;
  auto x = c.random(t, s, -r, r), o = c.empty(t, s);
  double us = op == "silu"   ? c.time_us([&] { silu(x, o, c.stream); })
              : op == "gelu" ? c.time_us([&] { gelu(x, o, c.stream); })
                             : c.time_us([&] { softcap(x, o, 30.0f, c.stream); });
  c.record(op, case_name(t, s), us, 2.0 * double(x.bytes()));
}
}  // namespace

LMK_BENCHES(activation) {
  for (const char* op : {"silu_mul", "sigmoid_mul"}) {
    for (DType t : {DType::bf16, DType::f32})
      cases.push_back({op, case_name(t, kBig), false, false, [op, t](Context& c) { gated(c, op, t, kBig); }});
    cases.push_back({op, case_name(DType::bf16, kDecode), true, true,
                     [op](Context& c) { gated(c, op, DType::bf16, kDecode); }});
  }
  for (const char* op : {"gelu", "softcap", "silu"}) {
    cases.push_back({op, case_name(DType::bf16, kBig), false, false,
                     [op](Context& c) { unary(c, op, DType::bf16, kBig); }});
    cases.push_back({op, case_name(DType::bf16, kDecode), true, true,
                     [op](Context& c) { unary(c, op, DType::bf16, kDecode); }});
  }

  // Patch-embed bias on a matmul accumulator: (2·M·N + N)·s bytes.
  for (const std::vector<int64_t>& s : {std::vector<int64_t>{16384, 4096}, std::vector<int64_t>{1, 4096}}) {
    const bool small = s[0] == 1;
    cases.push_back({"add_bias_row_2d", case_name(DType::f32, s), small, small, [s](Context& c) {
      auto a = c.random(DType::f32, s), bias = c.random(DType::f32, {s[1]}), o = c.empty(DType::f32, s);
      double us = c.time_us([&] { add_bias_row_2d(a, bias, o, c.stream); });
      c.record("add_bias_row_2d", case_name(DType::f32, s), us, 2.0 * double(a.bytes()) + double(bias.bytes()));
    }});
  }

  // outer_product forward: (N + M + N·M)·4 bytes.
  for (auto [n, m] : {std::pair<int64_t, int64_t>{8192, 8192}, std::pair<int64_t, int64_t>{4096, 128}}) {
    const bool small = m == 128;
    const std::string nm = "f32 " + std::to_string(n) + "x" + std::to_string(m);
    cases.push_back({"outer_product", nm, small, small, [n, m, nm](Context& c) {
      auto l = c.random(DType::f32, {n}), r = c.random(DType::f32, {m}), o = c.empty(DType::f32, {n, m});
      double us = c.time_us([&] { outer_product(l, r, o, c.stream); });
      c.record("outer_product", nm, us, double(l.bytes() + r.bytes() + o.bytes()));
    }});
  }
}

}  // namespace lmk::bench
