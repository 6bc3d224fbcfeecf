// Benchmarks of the matmul family (matmul-moe-sampling.md §0 cost model).
// Mat-vec: bytes = weight bytes as stored + 4·M·K (activations) + 4·M·N (outputs); GB/s and % of
// the copy bandwidth measured in the same run. Mat-mat: FLOPs = 2·M·N·K. Expert-routed: weight
// bytes of the distinct experts selected only. Case names are "<fmt> MxNxK" (N = weight rows,
// K = reduction), so peer keys read e.g. "quantized_matmul_ggml/q4_0 1x4096x14336".
// The in-run ceiling for the mat-mat rows is cuBLAS bf16 at the same shapes (dense_gemm bf16,
// and dense_mm bf16, which adds the conversion of the f32 activations).
#include <algorithm>
#include <set>
#include <string>
#include <vector>

#include "bench/bench.h"
#include "lmk/matmul.h"

namespace lmk::bench {
namespace {

std::string mnk(int64_t m, int64_t n, int64_t k) {
  return std::to_string(m) + "x" + std::to_string(n) + "x" + std::to_string(k);
}

// Weight rows x K of the mat-vec shapes (N, K).
const std::vector<std::pair<int64_t, int64_t>> kShapes = {{4096, 4096}, {14336, 4096}, {4096, 14336}, {151936, 4096}};
const std::vector<DType> kRequired = {DType::q4_0, DType::q8_0, DType::q5_1, DType::iq4_nl, DType::q4_K, DType::q6_K};
const std::vector<DType> kOptional = {DType::q5_0, DType::q5_K, DType::q2_K, DType::iq4_xs};

void quantized_case(Context& c, DType t, int64_t m, int64_t n, int64_t k, MatmulPath path = MatmulPath::automatic) {
  if (c.device.is_cpu()) {  // the CPU backend runs a small shape
    n = std::min<int64_t>(n, 256);
    k = std::min<int64_t>(k, 1024);
    m = std::min<int64_t>(m, 16);
  }
  auto w = c.random(t, {n, k});
  auto x = c.random(DType::f32, {m, k});
  auto y = c.empty(DType::f32, {m, n});
  if (c.device.is_cuda()) matmul_workspace_reserve(c.stream, 2 * m * k + (1 << 20));
  const double us = c.time_us([&] { quantized_matmul_ggml(x, w, y, c.stream, path); });
  const double bytes = double(w.bytes()) + 4.0 * double(m * k) + 4.0 * double(m * n);
  const bool mat_mat = path == MatmulPath::matmat || (path == MatmulPath::automatic && m > 8);
  const std::string nm = std::string(name(t)) + " " + mnk(m, n, k);
  c.record("quantized_matmul_ggml", nm, us, bytes, mat_mat ? 2.0 * double(m) * double(n) * double(k) : 0);
}

// The packed weights of pack_ggml (packing is load-time work, not timed). Same bytes as the raw
// case (the padding is not counted); the peer is llama.cpp's raw-weight figure.
void packed_case(Context& c, DType t, int64_t m, int64_t n, int64_t k) {
  if (c.device.is_cpu()) {
    n = std::min<int64_t>(n, 256);
    k = std::min<int64_t>(k, 1024);
  }
  auto w = c.random(t, {n, k});
  const PackedGgml pw = pack_ggml(w, c.stream);
  auto x = c.random(DType::f32, {m, k});
  auto y = c.empty(DType::f32, {m, n});
  if (c.device.is_cuda()) matmul_workspace_reserve(c.stream, 5 * m * k + (1 << 20));
  const double us = c.time_us([&] { quantized_matmul_ggml(x, pw, y, c.stream); });
  const double bytes = double(w.bytes()) + 4.0 * double(m * k) + 4.0 * double(m * n);
  const std::string nm = std::string(name(t)) + " " + mnk(m, n, k);
  const double flops = m > 8 ? 2.0 * double(m) * double(n) * double(k) : 0;  // the wgmma mat-mat
  c.record("quantized_matmul_ggml_packed", nm, us, bytes, flops, ("quantized_matmul_ggml/" + nm).c_str());
}

void dense_case(Context& c, const std::string& op, DType t, int64_t m, int64_t n, int64_t k) {
  if (c.device.is_cpu()) {
    n = std::min<int64_t>(n, 256);
    k = std::min<int64_t>(k, 1024);
    m = std::min<int64_t>(m, 16);
  }
  auto w = c.random(t, {n, k});
  const DType xt = op == "dense_gemm" ? t : DType::f32;
  auto x = c.random(xt, {m, k});
  auto y = c.empty(op == "dense_gemm" ? t : DType::f32, {m, n});
  if (c.device.is_cuda()) matmul_workspace_reserve(c.stream, 2 * m * k + (1 << 20));
  std::function<void()> fn;
  if (op == "dense_gemm") fn = [&] { dense_gemm(x, w, y, c.stream); };
  else if (op == "dense_gemv_bf16") fn = [&] { dense_gemv_bf16(w, x, y, c.stream); };
  else fn = [&] { dense_mm(w, x, y, c.stream); };
  const double us = c.time_us(fn);
  const double bytes = double(w.bytes()) + double(x.bytes()) + double(y.bytes());
  c.record(op, std::string(name(t)) + " " + mnk(m, n, k), us, bytes, m > 8 ? 2.0 * double(m) * double(n) * double(k) : 0);
}

// Qwen3-30B-A3B expert FFN shape: 128 experts, 8 used per token, N = 768, K = 2048.
void routed_case(Context& c, DType t, int64_t tokens, bool packed = false) {
  int64_t e = 128, top_k = 8, n = 768, k = 2048;
  if (c.device.is_cpu()) {
    e = 16;
    n = 64;
    k = 512;
    tokens = std::min<int64_t>(tokens, 8);
  }
  const int64_t rows = tokens * top_k;
  auto w = c.random(t, {e, n, k});
  auto x = c.random(DType::f32, {tokens, k});
  auto y = c.empty(DType::f32, {rows, n});
  auto ids = c.random(DType::u32, {rows}, 0, double(e));
  std::vector<uint32_t> host(static_cast<size_t>(rows));
  copy_bytes(host.data(), Device::cpu(), ids.data(), c.device, rows * 4, c.stream);
  c.stream.synchronize();
  for (auto& v : host) v = std::min<uint32_t>(v, uint32_t(e - 1));  // guard the top of the range
  copy_bytes(ids.data(), c.device, host.data(), Device::cpu(), rows * 4, c.stream);
  c.stream.synchronize();
  const std::set<uint32_t> distinct(host.begin(), host.end());
  if (c.device.is_cuda()) matmul_workspace_reserve(c.stream, int64_t(8) << 20);
  PackedGgml pw;
  if (packed) pw = pack_ggml(w, c.stream);  // load-time work, not timed
  const double us = c.time_us([&] {
    if (packed) quantized_matmul_id_ggml(x, pw, ids, y, top_k, false, c.stream);
    else quantized_matmul_id_ggml(x, w, ids, y, top_k, false, c.stream);
  });
  const double per_expert = double(w.bytes()) / double(e);
  const double bytes = double(distinct.size()) * per_expert + double(x.bytes()) + double(y.bytes());
  const double flops = tokens >= 32 ? 2.0 * double(rows) * double(n) * double(k) : 0;
  const std::string nm = std::string(name(t)) + " T" + std::to_string(tokens) + " E" + std::to_string(e) + " k" +
                         std::to_string(top_k) + " " + std::to_string(n) + "x" + std::to_string(k);
  // The packed op is compared with llama.cpp's raw-weight figure of the same case.
  c.record(packed ? "quantized_matmul_id_ggml_packed" : "quantized_matmul_id_ggml", nm, us, bytes, flops,
           packed ? ("quantized_matmul_id_ggml/" + nm).c_str() : nullptr);
}

}  // namespace

LMK_BENCHES(matmul) {
  // Mat-vec M = 1, every format, four shapes.
  for (DType t : kRequired)
    for (auto [n, k] : kShapes)
      cases.push_back({"quantized_matmul_ggml", std::string(name(t)) + " " + mnk(1, n, k),
                       n == 4096 && k == 14336 && (t == DType::q4_0 || t == DType::q4_K), n == 4096 && k == 4096,
                       [t, n, k](Context& c) { quantized_case(c, t, 1, n, k); }});
  for (DType t : kOptional)
    for (auto [n, k] : kShapes)
      cases.push_back({"quantized_matmul_ggml", std::string(name(t)) + " " + mnk(1, n, k), false, false,
                       [t, n, k](Context& c) { quantized_case(c, t, 1, n, k); }});
  // Small batches and prefill at N = 4096, K = 14336.
  for (DType t : kRequired) {
    for (int64_t m : {2, 4, 8, 16, 32})
      cases.push_back({"quantized_matmul_ggml", std::string(name(t)) + " " + mnk(m, 4096, 14336),
                       t == DType::q4_0 && m == 8, false, [t, m](Context& c) { quantized_case(c, t, m, 4096, 14336); }});
    cases.push_back({"quantized_matmul_ggml", std::string(name(t)) + " " + mnk(512, 4096, 14336), t == DType::q4_0,
                     false, [t](Context& c) { quantized_case(c, t, 512, 4096, 14336); }});
  }
  // Packed weights (pack_ggml): M = 1 at the four shapes, M = 2..512 at 4096 x 14336.
  for (DType t : kRequired) {
    for (auto [n, k] : kShapes)
      cases.push_back({"quantized_matmul_ggml_packed", std::string(name(t)) + " " + mnk(1, n, k),
                       n == 4096 && k == 14336, n == 4096 && k == 4096,
                       [t, n, k](Context& c) { packed_case(c, t, 1, n, k); }});
    for (int64_t m : {2, 4, 8, 16, 32, 512})
      cases.push_back({"quantized_matmul_ggml_packed", std::string(name(t)) + " " + mnk(m, 4096, 14336),
                       t == DType::q4_0, false, [t, m](Context& c) { packed_case(c, t, m, 4096, 14336); }});
  }
  cases.push_back({"mul_mv_ext", "iq4_nl 4x4096x14336", false, false, [](Context& c) {
    int64_t n = c.device.is_cpu() ? 256 : 4096, k = c.device.is_cpu() ? 1024 : 14336, m = 4;
    auto w = c.random(DType::iq4_nl, {n, k});
    auto x = c.random(DType::f32, {1, m, k});
    auto y = c.empty(DType::f32, {1, m, n});
    const double us = c.time_us([&] { mul_mv_ext(w, x, y, c.stream); });
    c.record("mul_mv_ext", "iq4_nl " + mnk(m, n, k), us, double(w.bytes() + x.bytes() + y.bytes()));
  }});
  // Dense: our bf16 mat-vec, and cuBLAS bf16 at the quantized shapes (the in-run ceiling).
  cases.push_back({"dense_gemv_bf16", "bf16 1x4096x14336", true, true,
                   [](Context& c) { dense_case(c, "dense_gemv_bf16", DType::bf16, 1, 4096, 14336); }});
  for (int64_t m : {2, 4, 8})
    cases.push_back({"dense_gemv_bf16", "bf16 " + mnk(m, 4096, 14336), false, false,
                     [m](Context& c) { dense_case(c, "dense_gemv_bf16", DType::bf16, m, 4096, 14336); }});
  cases.push_back({"dense_gemv_bf16", "bf16 8x14336x4096", false, false,
                   [](Context& c) { dense_case(c, "dense_gemv_bf16", DType::bf16, 8, 14336, 4096); }});
  cases.push_back({"dense_gemv_bf16", "bf16 1x151936x4096", false, false,
                   [](Context& c) { dense_case(c, "dense_gemv_bf16", DType::bf16, 1, 151936, 4096); }});
  for (int64_t m : {1, 8, 16, 32, 512})
    cases.push_back({"dense_mm", "bf16 " + mnk(m, 4096, 14336), m == 512, m == 1,
                     [m](Context& c) { dense_case(c, "dense_mm", DType::bf16, m, 4096, 14336); }});
  for (int64_t m : {8, 32})
    cases.push_back({"dense_mm", "f16 " + mnk(m, 4096, 14336), false, false,
                     [m](Context& c) { dense_case(c, "dense_mm", DType::f16, m, 4096, 14336); }});
  for (int64_t m : {16, 32, 512})
    cases.push_back({"dense_gemm", "bf16 " + mnk(m, 4096, 14336), m == 512, false,
                     [m](Context& c) { dense_case(c, "dense_gemm", DType::bf16, m, 4096, 14336); }});
  cases.push_back({"dense_gemm", "f16 64x151936x4096", false, false,
                   [](Context& c) { dense_case(c, "dense_gemm", DType::f16, 64, 151936, 4096); }});
  // Expert-routed at the Qwen3-30B-A3B shape.
  for (DType t : {DType::q4_0, DType::q8_0, DType::q4_K, DType::q6_K})
    for (int64_t tokens : {1, 8, 32, 512})
      cases.push_back({"quantized_matmul_id_ggml", std::string(name(t)) + " T" + std::to_string(tokens),
                       t == DType::q4_0 && tokens == 8, t == DType::q4_0 && tokens <= 8,
                       [t, tokens](Context& c) { routed_case(c, t, tokens); }});
  // The same on packed experts, plus 16 and 24 tokens (speculative-decode batches; 128 and 192
  // routed rows, around the switch from single rows to the per-expert mat-mat).
  for (DType t : {DType::q4_0, DType::q8_0, DType::q4_K, DType::q6_K})
    for (int64_t tokens : {1, 8, 16, 24, 32, 512})
      cases.push_back({"quantized_matmul_id_ggml_packed", std::string(name(t)) + " T" + std::to_string(tokens),
                       t == DType::q4_0 && tokens == 1, false, [t, tokens](Context& c) { routed_case(c, t, tokens, true); }});
}

}  // namespace lmk::bench
