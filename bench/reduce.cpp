// Benchmarks of the reduce family. Memory-bound: compulsory bytes = input read once + output
// written once. cumsum shapes from peers.md (torch.compile 4x2M, llama.cpp 1x2M).
#include "bench/bench.h"
#include "lmk/reduce.h"

namespace lmk::bench {
namespace {
std::string shape_str(int64_t r, int64_t c) { return std::to_string(r) + "x" + std::to_string(c); }
}  // namespace

LMK_BENCHES(reduce) {
  cases.push_back({"row_sum", "f32 16384x4096", true, true, [](Context& c) {
    const int64_t rows = c.device.is_cpu() ? 256 : 16384, cols = 4096;
    auto x = c.random(DType::f32, {rows, cols}), o = c.empty(DType::f32, {rows});
    double us = c.time_us([&] { row_sum(x, o, c.stream); });
    c.record("row_sum", "f32 " + shape_str(rows, cols), us, double(x.bytes() + o.bytes()));
  }});
  struct S {
    DType t;
    int64_t rows, cols;
    bool quick, cpu;
  };
  const S scans[] = {{DType::f32, 4, 2000000, true, false},
                     {DType::f32, 1, 2000000, true, true},
                     {DType::bf16, 4, 2000000, false, false},
                     {DType::f32, 4096, 4096, false, false}};
  for (S s : scans) {
    const std::string label = std::string(name(s.t)) + " " + shape_str(s.rows, s.cols);
    cases.push_back({"cumsum", label, s.quick, s.cpu, [s, label](Context& c) {
      auto x = c.random(s.t, {s.rows, s.cols}), o = c.empty(s.t, {s.rows, s.cols});
      double us = c.time_us([&] { cumsum(x, o, c.stream); });
      c.record("cumsum", label, us, 2.0 * double(x.bytes()));
    }});
  }
}

}  // namespace lmk::bench
