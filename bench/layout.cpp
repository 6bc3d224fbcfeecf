// Benchmarks of the layout family. Compulsory bytes = every input element read once + every
// output element written once (gathers: the selected rows only, plus the indices).
#include "bench/bench.h"
#include "lmk/layout.h"

namespace lmk::bench {
namespace {

double bytes_of(const Buffer& b) { return double(b.bytes()); }
std::string x(int64_t a, int64_t b) { return std::to_string(a) + "x" + std::to_string(b); }
std::string x(int64_t a, int64_t b, int64_t c) { return x(a, b) + "x" + std::to_string(c); }

}  // namespace

LMK_BENCHES(layout) {
  // copy: a contiguous view (memcpy path) and a permuted 3-D view (indexed path, 16-byte vectors).
  cases.push_back({"copy", "bf16 contiguous", true, true, [](Context& c) {
    const int64_t r = c.device.is_cpu() ? 256 : 8192, k = c.device.is_cpu() ? 4096 : 14336;
    auto a = c.random(DType::bf16, {r, k}), o = c.empty(DType::bf16, {r, k});
    double us = c.time_us([&] { copy(a, o, c.stream); });
    c.record("copy", "bf16 " + x(r, k) + " contiguous", us, 2 * bytes_of(a));
  }});
  // The same copy at the sizes of the long-row softmax and cumsum cases (16 and 1 MiB each
  // way): the ceiling those small problems can reach under the same cold timing, launch and
  // first DRAM round trip included.
  for (int64_t n : {int64_t(16) << 18, int64_t(1) << 18}) {
    const std::string name = "f32 n=" + std::to_string(n) + " (long-row size)";
    cases.push_back({"copy", name, true, false, [n, name](Context& c) {
      auto a = c.random(DType::f32, {n}), o = c.empty(DType::f32, {n});
      double us = c.time_us([&] { copy(a, o, c.stream); });
      c.record("copy", name, us, 2 * bytes_of(a));
    }});
  }
  cases.push_back({"copy", "bf16 permuted 3-D view", true, true, [](Context& c) {
    const int64_t s = c.device.is_cpu() ? 256 : 16384, h = 32, d = 128;  // [s, h, d] viewed as [h, s, d]
    auto a = c.random(DType::bf16, {s, h, d}), o = c.empty(DType::bf16, {h, s, d});
    const int64_t shape[] = {h, s, d}, strides[] = {d, h * d, 1};
    const Tensor view(a.data(), DType::bf16, shape, strides, c.device);
    double us = c.time_us([&] { copy(view, o, c.stream); });
    c.record("copy", "bf16 " + x(s, h, d) + " perm(1,0,2)", us, 2 * bytes_of(a));
  }});

  for (DType t : {DType::bf16, DType::f32}) {
    cases.push_back({"transpose", std::string(name(t)), t == DType::bf16, t == DType::bf16, [t](Context& c) {
      const int64_t r = c.device.is_cpu() ? 512 : 8192, k = c.device.is_cpu() ? 1024 : 14336;
      auto a = c.random(t, {r, k}), o = c.empty(t, {k, r});
      double us = c.time_us([&] { transpose(a, o, c.stream); });
      c.record("transpose", std::string(name(t)) + " " + x(r, k), us, 2 * bytes_of(a));
    }});
  }
  cases.push_back({"transpose_last2", "bf16", false, false, [](Context& c) {
    const int64_t a_ = 64, b = 4096, d = 128;
    auto a = c.random(DType::bf16, {a_, b, d}), o = c.empty(DType::bf16, {a_, d, b});
    double us = c.time_us([&] { transpose_last2(a, o, c.stream); });
    c.record("transpose_last2", "bf16 " + x(a_, b, d), us, 2 * bytes_of(a));
  }});
  for (DType out : {DType::bf16, DType::f32}) {
    cases.push_back({"permute_021", "bf16->" + std::string(name(out)), false, false, [out](Context& c) {
      const int64_t s = 4096, h = 32, d = 128;
      auto a = c.random(DType::bf16, {s, h, d}), o = c.empty(out, {h, s, d});
      double us = c.time_us([&] { permute_021(a, o, c.stream); });
      c.record("permute_021", "bf16->" + std::string(name(out)) + " " + x(s, h, d), us, bytes_of(a) + bytes_of(o));
    }});
  }

  // Token-embedding gather of a Qwen-sized vocabulary (peers.md: torch.compile 29.7 us).
  for (const char* op : {"embedding", "gather"}) {
    cases.push_back({op, "bf16 4096 of 151936x4096", true, false, [op = std::string(op)](Context& c) {
      const int64_t V = 151936, H = 4096, N = 4096;
      auto table = c.random(DType::bf16, {V, H}), ids = c.random(DType::u32, {N}, 0, double(V));
      auto o = c.empty(DType::bf16, {N, H});
      double us = c.time_us([&] {
        if (op == "embedding") embedding(table, ids, o, c.stream);
        else gather(table, ids, o, c.stream);
      });
      c.record(op, "bf16 4096 of 151936x4096", us, 2 * bytes_of(o) + bytes_of(ids));
    }});
  }
  cases.push_back({"take_along_axis", "f32 router", false, true, [](Context& c) {
    const int64_t R = 4096, C = 256, k = 8;
    auto xs = c.random(DType::f32, {R, C}), idx = c.random(DType::u32, {R, k}, 0, double(C));
    auto y = c.empty(DType::f32, {R, k});
    double us = c.time_us([&] { take_along_axis(xs, idx, y, c.stream); });
    c.record("take_along_axis", "f32 " + x(R, C) + " k8", us, double(R * k * 12));
  }});

  // Qwen3.6-27B GatedDeltaNet prefill shapes (core-ops.md §7).
  cases.push_back({"qkv_split", "f32 T4106", true, true, [](Context& c) {
    const int64_t T = 4106, qs = 256, ks = 256, vs = 2048;
    auto qkv = c.random(DType::f32, {T, qs + ks + vs});
    auto q = c.empty(DType::f32, {T, qs}), k = c.empty(DType::f32, {T, ks}), v = c.empty(DType::f32, {T, vs});
    double us = c.time_us([&] { qkv_split(qkv, q, k, v, c.stream); });
    c.record("qkv_split", "f32 T4106 256+256+2048", us, 2 * bytes_of(qkv));
  }});
  cases.push_back({"repeat_tiled", "f32 T4106", true, true, [](Context& c) {
    const int64_t T = 4106, Hg = 2, H = 16, K = 128;
    auto src = c.random(DType::f32, {T, Hg, K}), dst = c.empty(DType::f32, {T, H, K});
    double us = c.time_us([&] { repeat_tiled(src, dst, c.stream); });
    c.record("repeat_tiled", "f32 T4106 Hg2 H16 K128", us, bytes_of(src) + bytes_of(dst));
  }});
  cases.push_back({"slice_2d_cols", "f32", false, true, [](Context& c) {
    const int64_t T = 4106, in = 2560, out = 2048;
    auto a = c.random(DType::f32, {T, in}), o = c.empty(DType::f32, {T, out});
    double us = c.time_us([&] { slice_2d_cols(a, 512, o, c.stream); });
    c.record("slice_2d_cols", "f32 " + x(T, in) + " [512+2048]", us, 2 * bytes_of(o));
  }});
  cases.push_back({"copy_2d_cols_into", "f32", false, true, [](Context& c) {
    const int64_t T = 4106, cols = 2048, dst_cols = 2560;
    auto a = c.random(DType::f32, {T, cols}), o = c.empty(DType::f32, {T, dst_cols});
    double us = c.time_us([&] { copy_2d_cols_into(a, o, 512, c.stream); });
    c.record("copy_2d_cols_into", "f32 " + x(T, cols) + " into " + x(T, dst_cols), us, 2 * bytes_of(a));
  }});

  // KV cache writes: a 4096-token prefill into an 8192-slot cache (wrapping), and one decode token.
  cases.push_back({"kv_cache_copy", "bf16 prefill ring", true, true, [](Context& c) {
    const int64_t n = 4096, row = 8 * 128, cap = 8192;
    auto src = c.random(DType::bf16, {n, row}), cache = c.empty(DType::bf16, {cap, row});
    double us = c.time_us([&] { kv_cache_copy(src, cache, {.write_pos = 6000, .ring = true}, c.stream); });
    c.record("kv_cache_copy", "bf16 4096x1024 into ring 8192 at 6000", us, 2 * bytes_of(src));
  }});
  for (auto [in, out] : {std::pair{DType::f32, DType::f16}, std::pair{DType::bf16, DType::f32}}) {
    cases.push_back({"kv_cache_copy_seq", std::string(name(in)) + "->" + std::string(name(out)), in == DType::f32, true,
                     [in, out](Context& c) {
      const int64_t n = 4096, H = 8, Dh = 128, cap = 8192;
      auto src = c.random(in, {n, H, Dh}), cache = c.empty(out, {H, cap, Dh});
      double us = c.time_us([&] {
        kv_cache_copy_seq(src, cache, {.src_offset = 0, .n_tokens = n, .seq_pos_start = 6000}, c.stream);
      });
      c.record("kv_cache_copy_seq", std::string(name(in)) + "->" + std::string(name(out)) + " 4096x8x128 ring 8192",
               us, double(n * H * Dh * (element_size(in) + element_size(out))));
    }});
  }
  cases.push_back({"kv_cache_copy_batch", "f32->f16 decode", false, true, [](Context& c) {
    const int64_t H = 8, Dh = 128, cap = 8192;
    auto src = c.random(DType::f32, {H * Dh}), cache = c.empty(DType::f16, {H, cap, Dh});
    double us = c.time_us([&] { kv_cache_copy_batch(src, cache, 4321, c.stream); });
    c.record("kv_cache_copy_batch", "f32->f16 8x128 decode", us, double(H * Dh * (4 + 2)));
  }});
}

}  // namespace lmk::bench
