// Benchmarks of the softmax family. Memory-bound: compulsory bytes = input read once + output
// written once (scale_mask_softmax adds the mask once). Shapes from peers.md: the torch.compile
// regular shape, long rows (llama.cpp), single decode rows, an unfused attention prefill.
#include <vector>

#include "bench/bench.h"
#include "lmk/half.h"
#include "lmk/softmax.h"

namespace lmk::bench {
namespace {
std::string shape_str(int64_t r, int64_t c) { return std::to_string(r) + "x" + std::to_string(c); }
}  // namespace

LMK_BENCHES(softmax) {
  struct S {
    DType t;
    int64_t rows, cols;
    bool quick, cpu;
  };
  const S shapes[] = {
      {DType::bf16, 16384, 4096, true, true},  {DType::f32, 16384, 4096, false, true},
      {DType::bf16, 16, 262144, false, false}, {DType::f32, 16, 262144, false, false},
      {DType::f32, 1, 262144, false, true},    {DType::bf16, 1, 151936, true, true},
      {DType::f32, 1, 151936, false, true},
  };
  for (S s : shapes) {
    cases.push_back({"softmax", std::string(name(s.t)) + " " + shape_str(s.rows, s.cols), s.quick, s.cpu,
                     [s](Context& c) {
                       // The CPU runs 256 rows of the 16384-row shape.
                       const int64_t rows = c.device.is_cpu() && s.rows > 256 ? 256 : s.rows;
                       auto x = c.random(s.t, {rows, s.cols}, -8, 8), o = c.empty(s.t, {rows, s.cols});
                       double us = c.time_us([&] { softmax(x, o, c.stream); });
                       c.record("softmax", std::string(name(s.t)) + " " + shape_str(rows, s.cols), us,
                                2.0 * double(x.bytes()));
                     }});
  }
  // Unfused attention prefill: 32 heads, seq_q = seq_k = 2048, causal bf16 mask (the CPU runs
  // 4 heads of 256).
  cases.push_back({"scale_mask_softmax", "f32 32x2048x2048", true, true, [](Context& c) {
    const bool cpu = c.device.is_cpu();
    const int64_t nh = cpu ? 4 : 32, seq = cpu ? 256 : 2048;
    auto scores = c.random(DType::f32, {nh * seq, seq}, -30, 30), out = c.empty(DType::f32, {nh * seq, seq});
    auto mask = c.empty(DType::bf16, {seq, seq});
    std::vector<uint16_t> host(size_t(seq * seq));
    for (int64_t q = 0; q < seq; ++q)
      for (int64_t k = 0; k < seq; ++k) host[size_t(q * seq + k)] = k > q ? 0xff80 : 0;  // bf16 -inf : 0
    copy_bytes(mask.data(), c.device, host.data(), Device::cpu(), mask.bytes(), c.stream);
    c.stream.synchronize();
    double us = c.time_us([&] { scale_mask_softmax(scores, mask, out, seq, 0.08838835f, c.stream); });
    c.record("scale_mask_softmax", "f32 " + std::to_string(nh) + "x" + shape_str(seq, seq), us,
             2.0 * double(scores.bytes()) + double(mask.bytes()));
  }});
}

}  // namespace lmk::bench
