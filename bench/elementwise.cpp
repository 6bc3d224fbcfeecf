// Benchmarks of the elementwise family. Memory-bound: compulsory bytes = inputs + outputs.
#include "bench/bench.h"
#include "lmk/elementwise.h"

namespace lmk::bench {
namespace {
// Large shapes move >= 256 MiB; the CPU runs a small shape.
std::vector<int64_t> big(const Context& c) { return c.device.is_cpu() ? std::vector<int64_t>{256, 4096} : std::vector<int64_t>{8192, 14336}; }
std::string shape_str(const std::vector<int64_t>& s) { return std::to_string(s[0]) + "x" + std::to_string(s[1]); }
}  // namespace

LMK_BENCHES(elementwise) {
  for (DType t : {DType::bf16, DType::f32}) {
    cases.push_back({"add", std::string(name(t)), true, true, [t](Context& c) {
      auto s = big(c);
      auto a = c.random(t, s), b = c.random(t, s), o = c.empty(t, s);
      double us = c.time_us([&] { add(a, b, o, c.stream); });
      c.record("add", std::string(name(t)) + " " + shape_str(s), us, 3.0 * double(a.bytes()));
    }});
    cases.push_back({"mul", std::string(name(t)), false, false, [t](Context& c) {
      auto s = big(c);
      auto a = c.random(t, s), b = c.random(t, s), o = c.empty(t, s);
      double us = c.time_us([&] { mul(a, b, o, c.stream); });
      c.record("mul", std::string(name(t)) + " " + shape_str(s), us, 3.0 * double(a.bytes()));
    }});
  }
  cases.push_back({"add", "bf16 row-broadcast", false, false, [](Context& c) {
    auto s = big(c);
    auto a = c.random(DType::bf16, s), b = c.random(DType::bf16, {s[1]}), o = c.empty(DType::bf16, s);
    double us = c.time_us([&] { add(a, b, o, c.stream); });
    c.record("add", "bf16 " + shape_str(s) + " + row", us, 2.0 * double(a.bytes()) + double(b.bytes()));
  }});
  for (auto [from, to] : {std::pair{DType::bf16, DType::f32}, std::pair{DType::f32, DType::bf16}, std::pair{DType::f32, DType::f16}}) {
    cases.push_back({"cast", std::string(name(from)) + "->" + std::string(name(to)), from == DType::bf16, from == DType::bf16,
                     [from, to](Context& c) {
      auto s = big(c);
      auto x = c.random(from, s), o = c.empty(to, s);
      double us = c.time_us([&] { cast(x, o, c.stream); });
      c.record("cast", std::string(name(from)) + "->" + std::string(name(to)) + " " + shape_str(s), us,
               double(x.bytes() + o.bytes()));
    }});
  }
  for (const char* op : {"exp", "log", "sqrt", "divide", "scalar_mul"}) {
    cases.push_back({op, "f32", false, false, [op = std::string(op)](Context& c) {
      auto s = big(c);
      auto x = c.random(DType::f32, s, 0.5, 2), y = c.random(DType::f32, s, 0.5, 2), o = c.empty(DType::f32, s);
      double inputs = 1;
      std::function<void()> fn;
      if (op == "exp") fn = [&] { lmk::exp(x, o, c.stream); };
      else if (op == "log") fn = [&] { lmk::log(x, o, c.stream); };
      else if (op == "sqrt") fn = [&] { lmk::sqrt(x, o, c.stream); };
      else if (op == "divide") { fn = [&] { divide(x, y, o, c.stream); }; inputs = 2; }
      else fn = [&] { scalar_mul(x, 1.5f, o, c.stream); };
      double us = c.time_us(fn);
      c.record(op, "f32 " + shape_str(s), us, (inputs + 1) * double(x.bytes()));
    }});
  }
}

}  // namespace lmk::bench
