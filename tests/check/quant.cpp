// Checks for the quant family (matmul-moe-sampling.md §1, §4; quant-formats.md §2–§5).
#include <algorithm>
#include <cmath>
#include <random>

#include "check/check.h"
#include "lmk/quant.h"
#include "lmk/quant_ops.h"
#include "ref/quant.h"

namespace lmk::test {
namespace {

const std::vector<DType> kBlockTypes = {DType::q4_0, DType::q5_0, DType::q5_1,   DType::q8_0, DType::iq4_nl,
                                        DType::q2_K, DType::q4_K, DType::q5_K, DType::q6_K, DType::iq4_xs};

// Random valid blocks for a [rows, cols] tensor (every 7th block with f16-subnormal scales).
HostTensor random_blocks(DType t, std::vector<int64_t> shape, uint64_t seed) {
  HostTensor h(t, shape);
  const auto f = ref::format_of(t);
  ref::fill_valid_blocks(t, h.bytes.data(), int64_t(h.bytes.size()) / f.bytes, seed, 7);
  return h;
}

CompareResult check_dequant(Device d, DType t, DType out_t, std::vector<int64_t> shape, bool to_f16_op) {
  auto src = random_blocks(t, shape, case_seed("dequant" + shape_name(t, shape) + std::string(name(out_t))));
  auto dsrc = to_device(src, d);
  auto out = poisoned(out_t, shape, d);
  if (to_f16_op) dequant_to_f16(dsrc, out);
  else dequantize(dsrc, out);
  // f32 reference rounded once more to the output dtype by compare(): RNE(f32 value), exactly.
  return compare(to_host(out), ref::dequant_f32(t, src.bytes.data(), src.numel()), exact());
}

struct AffineData {
  HostTensor packed, scales, biases;
};
AffineData random_affine(int64_t rows, int64_t k, int bits, int64_t gs, DType pt, uint64_t seed) {
  AffineData a{HostTensor(DType::u32, {rows, k * bits / 32}), random_uniform(pt, {rows, k / gs}, seed + 1, 0.001, 0.1),
               random_uniform(pt, {rows, k / gs}, seed + 2, -1, 1)};
  std::mt19937_64 rng(seed);
  for (auto& b : a.packed.bytes) b = uint8_t(rng());
  return a;
}

CompareResult check_dequant_affine(Device d, int bits, int64_t gs, DType pt, DType out_t, int64_t rows, int64_t k) {
  auto seed = case_seed("dequant_affine" + std::to_string(bits) + std::to_string(gs) + std::string(name(pt)) +
                        std::string(name(out_t)) + std::to_string(rows) + "x" + std::to_string(k));
  auto a = random_affine(rows, k, bits, gs, pt, seed);
  auto dp = to_device(a.packed, d), ds = to_device(a.scales, d), db = to_device(a.biases, d);
  auto out = poisoned(out_t, {rows, k}, d);
  dequant_affine(dp, ds, db, out, bits, gs);
  return compare(to_host(out),
                 ref::affine_dequant(a.packed.bytes.data(), a.scales.bytes.data(), a.biases.bytes.data(), pt, rows, k,
                                     bits, gs),
                 exact());
}

// Random normals plus the spec's edge blocks (§1.2 test list) in the first blocks.
std::vector<float> qdq_input(int64_t n, uint64_t seed) {
  auto x = random_normal(DType::f32, {n}, seed, 1.0);
  std::vector<float> v(x.as<float>(), x.as<float>() + n);
  auto block = [&](int64_t b) { return v.data() + 32 * b; };
  const int64_t nb = n / 32;
  if (nb > 0) std::fill(block(0), block(0) + 32, 0.0f);  // all-zero block
  if (nb > 1) {  // tie |x[8]| = |x[16]|, opposite signs
    block(1)[8] = -3.0f;
    block(1)[16] = 3.0f;
  }
  if (nb > 2) {  // tie at (0, 31)
    block(2)[0] = 2.5f;
    block(2)[31] = -2.5f;
  }
  if (nb > 3) {  // one non-zero
    std::fill(block(3), block(3) + 32, 0.0f);
    block(3)[5] = -0.75f;
  }
  if (nb > 4) {  // amax = 127: Q8_0 d = id = 1, halfway cases and 0.49999997
    float* b = block(4);
    const float vals[] = {127.0f, 0.5f, -0.5f, 1.5f, -1.5f, 0.49999997f, -0.49999997f, 2.5f, -126.5f};
    for (int j = 0; j < 9; ++j) b[j] = vals[j];
  }
  if (nb > 5) {  // Q4_0 max = -8: d = 1, id = 1, x*id + 8.5 integral for half-integers
    float* b = block(5);
    for (int j = 0; j < 32; ++j) b[j] = float(j % 16) - 7.5f;
    b[0] = -8.0f;
  }
  return v;
}

CompareResult check_qdq_legacy(Device d, DType fmt, int64_t n, bool in_place) {
  auto seed = case_seed("qdq_legacy" + std::string(name(fmt)) + std::to_string(n) + (in_place ? "i" : ""));
  auto v = qdq_input(n, seed);
  HostTensor x(DType::f32, {n});
  std::copy(v.begin(), v.end(), x.as<float>());
  auto dx = to_device(x, d);
  auto out = in_place ? to_device(x, d) : poisoned(DType::f32, {n}, d);
  qdq_legacy(fmt, in_place ? out.tensor : dx.tensor, out);
  return compare(to_host(out), ref::qdq(fmt, v), exact());
}

CompareResult check_qdq_affine_init(Device d, int64_t groups, int64_t gs, int n_bins) {
  auto seed = case_seed("qdq_affine_init" + std::to_string(groups) + "x" + std::to_string(gs) + "b" + std::to_string(n_bins));
  const int64_t n = groups * gs;
  auto w = random_normal(DType::f32, {n}, seed, 2.0);
  if (groups > 1) std::fill(w.as<float>() + gs, w.as<float>() + 2 * gs, 0.37f);  // constant group
  if (groups > 2 && gs >= 3 && n_bins == 16) {  // min 0, max 15, and 0.49999997 -> code 0
    float* g = w.as<float>() + 2 * gs;
    for (int64_t i = 0; i < gs; ++i) g[i] = float(i % 15);
    g[0] = 0.0f;
    g[1] = 15.0f;
    g[2] = 0.49999997f;
  }
  auto dw = to_device(w, d);
  auto ds = poisoned(DType::f32, {groups}, d), db = poisoned(DType::f32, {groups}, d);
  auto dq = poisoned(DType::u8, {n}, d);
  qdq_affine_init(dw, ds, db, dq, gs, n_bins);
  auto want = ref::qdq_affine_init(std::vector<float>(w.as<float>(), w.as<float>() + n), gs, n_bins);
  std::vector<double> wq(want.q.begin(), want.q.end()), wsc(want.scales.begin(), want.scales.end()),
      wb(want.biases.begin(), want.biases.end());
  auto r = compare(to_host(dq), wq, exact());
  r = merge(r, compare(to_host(ds), wsc, Tolerance{.rel_l2 = 1e-6, .rel = 1e-6}), "scales");
  return merge(r, compare(to_host(db), wb, exact()), "biases");
}

CompareResult check_qdq_affine_forward(Device d, int64_t groups, int64_t gs) {
  auto seed = case_seed("qdq_affine_forward" + std::to_string(groups) + "x" + std::to_string(gs));
  const int64_t n = groups * gs;
  auto q = random_uniform(DType::u8, {n}, seed, 0, 256);
  auto s = random_uniform(DType::f32, {groups}, seed + 1, 0.001, 0.5);
  auto b = random_uniform(DType::f32, {groups}, seed + 2, -8, 8);
  auto dq = to_device(q, d), ds = to_device(s, d), db = to_device(b, d);
  auto out = poisoned(DType::f32, {n}, d);
  qdq_affine_forward(dq, ds, db, out, gs);
  std::vector<double> want(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    // f32 multiply then f32 add, as lmkernels evaluates it on both backends.
    const float prod = float(double(q.as<uint8_t>()[i]) * double(s.as<float>()[i / gs]));
    want[size_t(i)] = double(float(double(prod) + double(b.as<float>()[i / gs])));
  }
  return compare(to_host(out), want, exact());
}

// Backward sums: e = |y - y_ref| / (sum |terms| + 1e-30) <= 1e-6 per group.
CompareResult check_qdq_affine_backward(Device d, bool scales, int64_t groups, int64_t gs) {
  auto seed = case_seed(std::string("qdq_affine_backward") + (scales ? "s" : "b") + std::to_string(groups) + "x" +
                        std::to_string(gs));
  const int64_t n = groups * gs;
  auto q = random_uniform(DType::u8, {n}, seed, 0, 16);
  auto dy = random_normal(DType::f32, {n}, seed + 1, 1.0);
  auto dq = to_device(q, d), ddy = to_device(dy, d);
  auto out = poisoned(DType::f32, {groups}, d);
  if (scales) qdq_affine_backward_scales(dq, ddy, out, gs);
  else qdq_affine_backward_biases(ddy, out, gs);
  auto got = to_host(out);
  CompareResult r;
  double worst = 0;
  for (int64_t g = 0; g < groups; ++g) {
    double sum = 0, mag = 0;
    for (int64_t i = g * gs; i < (g + 1) * gs; ++i) {
      const double term = (scales ? double(q.as<uint8_t>()[i]) : 1.0) * dy.as<float>()[i];
      sum += term;
      mag += std::fabs(term);
    }
    const double e = std::fabs(got.get(g) - sum) / (mag + 1e-30);
    if (!(e <= 1e-6)) {
      r.failures++;
      if (!(e <= worst)) {
        worst = std::isnan(e) ? INFINITY : e;
        r.worst = g;
        r.worst_out = got.get(g);
        r.worst_ref = sum;
      }
    }
    r.max_abs = std::max(r.max_abs, std::fabs(got.get(g) - sum));
  }
  if (r.failures) {
    r.ok = false;
    r.message = std::to_string(r.failures) + " groups with e > 1e-6; worst group " + std::to_string(r.worst) +
                " got " + std::to_string(r.worst_out) + " want " + std::to_string(r.worst_ref) + "; seed " +
                std::to_string(base_seed());
  }
  return r;
}

// Ids with repeats and the first and last row.
HostTensor random_ids(int64_t t, int64_t vocab, uint64_t seed) {
  HostTensor ids(DType::u32, {t});
  std::mt19937_64 rng(seed);
  for (int64_t i = 0; i < t; ++i) ids.as<uint32_t>()[i] = uint32_t(rng() % uint64_t(vocab));
  ids.as<uint32_t>()[0] = 0;
  if (t > 1) ids.as<uint32_t>()[t - 1] = uint32_t(vocab - 1);
  if (t > 2) ids.as<uint32_t>()[1] = ids.as<uint32_t>()[0];
  return ids;
}

CompareResult check_embedding_ggml(Device d, DType t, int64_t vocab, int64_t dim, int64_t tokens) {
  auto seed = case_seed("embedding_ggml" + shape_name(t, {vocab, dim, tokens}));
  HostTensor table = is_quantized(t) ? random_blocks(t, {vocab, dim}, seed) : random_normal(t, {vocab, dim}, seed);
  auto ids = random_ids(tokens, vocab, seed + 1);
  auto dt = to_device(table, d), di = to_device(ids, d);
  auto out = poisoned(DType::f32, {tokens, dim}, d);
  embedding_ggml(dt, di, out);
  std::vector<double> want(static_cast<size_t>(tokens * dim));
  const int64_t row_bytes = int64_t(table.bytes.size()) / vocab;
  for (int64_t i = 0; i < tokens; ++i) {
    const int64_t id = ids.as<uint32_t>()[i];
    std::vector<double> row;
    if (is_quantized(t)) {
      row = ref::dequant_f32(t, table.bytes.data() + id * row_bytes, dim);
    } else {
      for (int64_t c = 0; c < dim; ++c) row.push_back(table.get(id * dim + c));
    }
    std::copy(row.begin(), row.end(), want.begin() + i * dim);
  }
  return compare(to_host(out), want, exact());
}

CompareResult check_embedding_affine(Device d, int bits, int64_t gs, DType pt, int64_t vocab, int64_t dim, int64_t tokens) {
  auto seed = case_seed("embedding_affine" + std::to_string(bits) + std::to_string(gs) + std::string(name(pt)) +
                        std::to_string(vocab) + "x" + std::to_string(dim) + "t" + std::to_string(tokens));
  auto a = random_affine(vocab, dim, bits, gs, pt, seed);
  auto ids = random_ids(tokens, vocab, seed + 3);
  auto dp = to_device(a.packed, d), ds = to_device(a.scales, d), db = to_device(a.biases, d), di = to_device(ids, d);
  auto out = poisoned(DType::f32, {tokens, dim}, d);
  embedding_affine(dp, ds, db, di, out, bits, gs);
  std::vector<int64_t> rows(ids.as<uint32_t>(), ids.as<uint32_t>() + tokens);
  return compare(to_host(out),
                 ref::affine_dequant(a.packed.bytes.data(), a.scales.bytes.data(), a.biases.bytes.data(), pt, vocab, dim,
                                     bits, gs, &rows),
                 exact());
}

std::string dims(std::initializer_list<int64_t> v) {
  std::string s;
  for (auto x : v) s += (s.empty() ? "" : "x") + std::to_string(x);
  return s;
}

}  // namespace

LMK_CHECKS(quant) {
  for (DType t : kBlockTypes) {
    const int64_t qk = ref::format_of(t).qk;
    std::vector<std::vector<int64_t>> shapes = {{1, qk}, {3, 3 * qk}, {33, 2816}, {2, 7 * qk}};
    if (qk == 32) shapes.push_back({5, 96});
    for (const auto& s : shapes) {
      const bool quick = s[0] == 33;
      cases.push_back({"dequant_to_f16", shape_name(t, s), quick, [=](Device d) { return check_dequant(d, t, DType::f16, s, true); }});
      cases.push_back({"dequantize", shape_name(t, s) + "->f32", quick, [=](Device d) { return check_dequant(d, t, DType::f32, s, false); }});
    }
    cases.push_back({"dequantize", shape_name(t, {4, 512}) + "->bf16", false,
                     [=](Device d) { return check_dequant(d, t, DType::bf16, {4, 512}, false); }});
    cases.push_back({"embedding_ggml", shape_name(t, {97, 512}) + " T=33", t == DType::q4_K,
                     [=](Device d) { return check_embedding_ggml(d, t, 97, 512, 33); }});
  }
  cases.push_back({"embedding_ggml", "q4_0 V=1000 D=256 T=4096", false,
                   [](Device d) { return check_embedding_ggml(d, DType::q4_0, 1000, 256, 4096); }});
  cases.push_back({"embedding_ggml", "q6_K V=5 D=256 T=1", false,
                   [](Device d) { return check_embedding_ggml(d, DType::q6_K, 5, 256, 1); }});
  for (DType t : float_types())
    cases.push_back({"embedding_ggml", shape_name(t, {50, 96}) + " dense T=17", false,
                     [=](Device d) { return check_embedding_ggml(d, t, 50, 96, 17); }});

  for (int bits : {4, 6, 8})
    for (int64_t gs : {32, 64, 128})
      for (DType pt : float_types()) {
        const bool quick = gs == 64 && pt == DType::bf16;
        cases.push_back({"dequant_affine", "bits" + std::to_string(bits) + " gs" + std::to_string(gs) + " " +
                                               std::string(name(pt)) + " 13x384",
                         quick, [=](Device d) { return check_dequant_affine(d, bits, gs, pt, DType::f32, 13, 384); }});
        cases.push_back({"embedding_affine", "bits" + std::to_string(bits) + " gs" + std::to_string(gs) + " " +
                                                 std::string(name(pt)) + " V=41 D=256 T=19",
                         quick, [=](Device d) { return check_embedding_affine(d, bits, gs, pt, 41, 256, 19); }});
      }
  for (DType out_t : {DType::f16, DType::bf16})
    cases.push_back({"dequant_affine", "bits6 gs32 bf16 7x96 ->" + std::string(name(out_t)), false,
                     [=](Device d) { return check_dequant_affine(d, 6, 32, DType::bf16, out_t, 7, 96); }});
  cases.push_back({"embedding_affine", "bits4 gs64 bf16 V=300 D=2048 T=4096", false,
                   [](Device d) { return check_embedding_affine(d, 4, 64, DType::bf16, 300, 2048, 4096); }});

  for (DType fmt : {DType::q4_0, DType::q8_0})
    for (int64_t n : {int64_t(32), int64_t(96), int64_t(32 * 1000), int64_t(32 * 12345), int64_t(1) << 24}) {
      const std::string nm = std::string(name(fmt)) + " n=" + std::to_string(n);
      cases.push_back({"qdq_legacy", nm, n == 32 * 1000, [=](Device d) { return check_qdq_legacy(d, fmt, n, false); }});
      if (n == 96) cases.push_back({"qdq_legacy", nm + " in-place", false, [=](Device d) { return check_qdq_legacy(d, fmt, n, true); }});
    }

  for (int64_t gs : {2, 32, 64, 128, 1024, 48}) {
    const int64_t groups = gs >= 1024 ? 9 : 67;
    const bool quick = gs == 64;
    for (int n_bins : {16, 256, 3})
      cases.push_back({"qdq_affine_init", dims({groups, gs}) + " bins" + std::to_string(n_bins), quick && n_bins == 16,
                       [=](Device d) { return check_qdq_affine_init(d, groups, gs, n_bins); }});
    cases.push_back({"qdq_affine_forward", dims({groups, gs}), quick, [=](Device d) { return check_qdq_affine_forward(d, groups, gs); }});
    cases.push_back({"qdq_affine_backward_scales", dims({groups, gs}), quick,
                     [=](Device d) { return check_qdq_affine_backward(d, true, groups, gs); }});
    cases.push_back({"qdq_affine_backward_biases", dims({groups, gs}), quick,
                     [=](Device d) { return check_qdq_affine_backward(d, false, groups, gs); }});
  }
}

}  // namespace lmk::test
