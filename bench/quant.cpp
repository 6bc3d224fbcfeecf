// Benchmarks of the quant family (matmul-moe-sampling.md §1, §4). Memory-bound: compulsory
// bytes = weight bytes as stored (blocks, or packed codes + scales + biases) + bytes written.
#include "bench/bench.h"
#include "lmk/quant_ops.h"

namespace lmk::bench {
namespace {

std::vector<int64_t> weight_shape(const Context& c) {
  return c.device.is_cpu() ? std::vector<int64_t>{64, 4096} : std::vector<int64_t>{4096, 14336};
}
std::string shape_str(const std::vector<int64_t>& s) { return std::to_string(s[0]) + "x" + std::to_string(s[1]); }

const DType kBlockTypes[] = {DType::q4_0, DType::q5_0, DType::q5_1, DType::q8_0, DType::iq4_nl,
                             DType::q2_K, DType::q4_K, DType::q5_K, DType::q6_K, DType::iq4_xs};

}  // namespace

LMK_BENCHES(quant) {
  for (DType t : kBlockTypes) {
    const bool quick = t == DType::q4_0 || t == DType::q4_K;
    cases.push_back({"dequant_to_f16", std::string(name(t)), quick, quick, [t](Context& c) {
      auto s = weight_shape(c);
      auto w = c.random(t, s), o = c.empty(DType::f16, s);
      double us = c.time_us([&] { dequant_to_f16(w, o, c.stream); });
      c.record("dequant_to_f16", std::string(name(t)) + " " + shape_str(s), us, double(w.bytes() + o.bytes()));
    }});
  }
  cases.push_back({"dequantize", "q4_K->f32", false, false, [](Context& c) {
    auto s = weight_shape(c);
    auto w = c.random(DType::q4_K, s), o = c.empty(DType::f32, s);
    double us = c.time_us([&] { dequantize(w, o, c.stream); });
    c.record("dequantize", "q4_K->f32 " + shape_str(s), us, double(w.bytes() + o.bytes()));
  }});
  for (int bits : {4, 6, 8}) {
    cases.push_back({"dequant_affine", "bits" + std::to_string(bits), bits == 4, false, [bits](Context& c) {
      auto s = weight_shape(c);
      const int64_t gs = 64;
      auto p = c.random(DType::u8, {s[0], s[1] * bits / 8});
      auto sc = c.random(DType::bf16, {s[0], s[1] / gs}, 0.001, 0.01), bi = c.random(DType::bf16, {s[0], s[1] / gs});
      auto o = c.empty(DType::f16, s);
      double us = c.time_us([&] { dequant_affine(p, sc, bi, o, bits, gs, c.stream); });
      c.record("dequant_affine", std::to_string(bits) + "-bit gs64 bf16 " + shape_str(s), us,
               double(p.bytes() + sc.bytes() + bi.bytes() + o.bytes()));
    }});
  }
  for (DType fmt : {DType::q4_0, DType::q8_0}) {
    cases.push_back({"qdq_legacy", std::string(name(fmt)), fmt == DType::q4_0, false, [fmt](Context& c) {
      const int64_t n = c.device.is_cpu() ? (1 << 20) : (1 << 26);
      auto x = c.random(DType::f32, {n}), y = c.empty(DType::f32, {n});
      double us = c.time_us([&] { qdq_legacy(fmt, x, y, c.stream); });
      c.record("qdq_legacy", std::string(name(fmt)) + " n=" + std::to_string(n), us, 8.0 * double(n));
    }});
  }
  cases.push_back({"embedding_ggml", "q4_K", true, false, [](Context& c) {
    const int64_t vocab = 151936, dim = 4096, t = c.device.is_cpu() ? 64 : 4096;
    auto table = c.random(DType::q4_K, {vocab, dim});
    auto ids = c.random(DType::u32, {t}, 0, double(vocab - 1));
    auto o = c.empty(DType::f32, {t, dim});
    double us = c.time_us([&] { embedding_ggml(table, ids, o, c.stream); });
    c.record("embedding_ggml", "q4_K V=151936 D=4096 T=" + std::to_string(t), us,
             double(t) * (double(dim) / 256 * 144 + 4 + 4.0 * double(dim)));
  }});
  cases.push_back({"qdq_affine_forward", "gs64", false, false, [](Context& c) {
    const int64_t n = c.device.is_cpu() ? (1 << 20) : (1 << 26), gs = 64;
    auto q = c.random(DType::u8, {n}), s = c.random(DType::f32, {n / gs}), b = c.random(DType::f32, {n / gs});
    auto o = c.empty(DType::f32, {n});
    double us = c.time_us([&] { qdq_affine_forward(q, s, b, o, gs, c.stream); });
    c.record("qdq_affine_forward", "n=" + std::to_string(n) + " gs64", us, 5.0 * double(n) + 8.0 * double(n / gs));
  }});
}

}  // namespace lmk::bench
