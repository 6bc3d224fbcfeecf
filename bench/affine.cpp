// Benchmarks of the affine family (MLX affine quantized matmuls). Bytes (spec §2 cost model):
// packed weights + scales + biases of every weight read (for the routed op only the distinct
// experts selected) + activations read + outputs written; FLOPs = 2 * rows * N * K, reported
// for the tiled sizes. bf16 scales/biases, group size 64, f32 activations and outputs.
#include <algorithm>
#include <random>
#include <set>

#include "bench/bench.h"
#include "lmk/affine.h"

namespace lmk::bench {
namespace {

double weight_bytes(int64_t n, int64_t k, int bits, int gs) { return double(n) * (double(k) * bits / 8 + 2.0 * 2 * k / gs); }

std::string dims(int64_t m, int64_t n, int64_t k) {
  return std::to_string(m) + "x" + std::to_string(n) + "x" + std::to_string(k);
}

// packed: pack_affine first, then the PackedAffine overload (op "quantized_matmul_packed"). The
// bytes counted are MLX's (the packed weight holds the same plus zero padding).
void bench_matmul(Context& c, int bits, int64_t m, int64_t n, int64_t k, bool peer, bool packed = false) {
  const int gs = 64;
  auto x = c.random(DType::f32, {m, k});
  auto w = c.random(DType::u32, {n, k * bits / 32}, 0, 4294967296.0);
  auto s = c.random(DType::bf16, {n, k / gs}, 0.002, 0.05);
  auto b = c.random(DType::bf16, {n, k / gs}, -0.4, 0.4);
  auto y = c.empty(DType::f32, {m, n});
  const std::string op = packed ? "quantized_matmul_packed" : "quantized_matmul";
  double us = 0;
  PackedAffine pw;  // lives until record() has timed the runs back to back
  if (packed) {
    pw = pack_affine(w, s, b, bits, gs, c.stream);
    us = c.time_us([&] { quantized_matmul(x, pw, y, c.stream); });
  } else {
    us = c.time_us([&] { quantized_matmul(x, w, s, b, y, bits, gs, c.stream); });
  }
  const std::string name = std::to_string(bits) + "bit g64 " + dims(m, n, k);
  const std::string key = op + "/" + name;
  const double bytes = weight_bytes(n, k, bits, gs) + 4.0 * m * k + 4.0 * m * n;
  c.record(op, name, us, bytes, m > 8 ? 2.0 * m * n * k : 0.0, peer ? key.c_str() : nullptr);
}

void bench_matmul_id(Context& c, int bits, int64_t tokens, bool packed = false) {
  const int gs = 64;
  const int64_t e = 128, top = 8, n = 768, k = 2048;
  auto x = c.random(DType::f32, {tokens, k});
  auto w = c.random(DType::u32, {e, n, k * bits / 32}, 0, 4294967296.0);
  auto s = c.random(DType::bf16, {e, n, k / gs}, 0.002, 0.05);
  auto b = c.random(DType::bf16, {e, n, k / gs}, -0.4, 0.4);
  auto y = c.empty(DType::f32, {tokens, top, n});
  // Router-like ids: 8 distinct experts per token.
  std::mt19937 rng(42);
  std::vector<uint32_t> ids;
  std::set<uint32_t> used;
  for (int64_t t = 0; t < tokens; ++t) {
    std::vector<uint32_t> all(e);
    for (int64_t i = 0; i < e; ++i) all[size_t(i)] = uint32_t(i);
    std::shuffle(all.begin(), all.end(), rng);
    for (int64_t j = 0; j < top; ++j) {
      ids.push_back(all[size_t(j)]);
      used.insert(all[size_t(j)]);
    }
  }
  Buffer dids(DType::u32, {tokens, top}, c.device);
  copy_bytes(dids.data(), c.device, ids.data(), Device::cpu(), int64_t(ids.size() * 4));
  const std::string op = packed ? "quantized_matmul_packed" : "quantized_matmul_id";
  double us = 0;
  PackedAffine pw;  // lives until record() has timed the runs back to back
  if (packed) {
    pw = pack_affine(w, s, b, bits, gs, c.stream);
    us = c.time_us([&] { quantized_matmul_id(x, pw, dids, y, c.stream); });
  } else {
    us = c.time_us([&] { quantized_matmul_id(x, w, s, b, dids, y, bits, gs, c.stream); });
  }
  const std::string name = std::to_string(bits) + "bit g64 E128 top8 768x2048 " + std::to_string(tokens) + " tok";
  const std::string key = op + "/" + name;
  const double bytes = double(used.size()) * weight_bytes(n, k, bits, gs) + 4.0 * tokens * k + 4.0 * tokens * top * n;
  c.record(op, name, us, bytes, tokens >= 64 ? 2.0 * tokens * top * n * k : 0.0, key.c_str());
}

}  // namespace

LMK_BENCHES(affine) {
  // 6-bit: the packed op only (peers: q6_K, 6.56 bits per weight against 6.5)
  cases.push_back({"quantized_matmul_packed", "6bit packed", false, false, [](Context& c) {
    for (int64_t m : {1, 8, 512}) bench_matmul(c, 6, m, 4096, 14336, true, true);
    for (int64_t t : {1, 8, 32, 512}) bench_matmul_id(c, 6, t, true);
  }});
  for (int bits : {4, 8}) {
    const bool q = bits == 4;
    cases.push_back({"quantized_matmul", std::to_string(bits) + "bit mat-vec", q, q, [bits](Context& c) {
      if (c.device.is_cpu()) return bench_matmul(c, bits, 1, 1024, 2048, false);
      bench_matmul(c, bits, 1, 4096, 14336, true);
      bench_matmul(c, bits, 1, 14336, 4096, false);
    }});
    cases.push_back({"quantized_matmul", std::to_string(bits) + "bit M=2..8", false, false, [bits](Context& c) {
      for (int64_t m : {2, 4, 8}) bench_matmul(c, bits, m, 4096, 14336, true);
      bench_matmul(c, bits, 8, 14336, 4096, false);
    }});
    cases.push_back({"quantized_matmul", std::to_string(bits) + "bit M=16..512", q, false, [bits](Context& c) {
      if (!c.quick)
        for (int64_t m : {16, 32}) bench_matmul(c, bits, m, 4096, 14336, false);
      bench_matmul(c, bits, 512, 4096, 14336, true);
      bench_matmul(c, bits, 512, 14336, 4096, false);
    }});
    cases.push_back({"quantized_matmul_id", std::to_string(bits) + "bit E128 top8", q, false, [bits](Context& c) {
      for (int64_t t : {1, 8, 32, 512}) bench_matmul_id(c, bits, t);
    }});
    cases.push_back({"quantized_matmul_packed", std::to_string(bits) + "bit packed mat-vec", q, q, [bits](Context& c) {
      if (c.device.is_cpu()) return bench_matmul(c, bits, 1, 1024, 2048, false, true);
      for (int64_t m : {1, 2, 4, 8}) bench_matmul(c, bits, m, 4096, 14336, true, true);
      bench_matmul(c, bits, 1, 14336, 4096, false, true);
    }});
    cases.push_back({"quantized_matmul_packed", std::to_string(bits) + "bit packed M=16..512", false, false,
                     [bits](Context& c) {
                       for (int64_t m : {16, 32, 512}) bench_matmul(c, bits, m, 4096, 14336, true, true);
                     }});
    cases.push_back({"quantized_matmul_packed", std::to_string(bits) + "bit packed E128 top8", q, false, [bits](Context& c) {
      for (int64_t t : {1, 8, 32, 512}) bench_matmul_id(c, bits, t, true);
    }});
  }
}

}  // namespace lmk::bench
