// Checks for the layout family (core-ops.md §7; training-and-vision.md §6, §7, §9). Every op is
// a pure copy (or an exact widening / one RNE narrowing), so every comparison is bit-exact. The
// shapes walk each CUDA path: memcpy, 16-byte and element-wise tiled transposes (1/2/4/8-byte
// elements, partial tiles, batches), the indexed copy with and without vectors, multi-piece launches.
#include <random>

#include "check/check.h"
#include "lmk/layout.h"
#include "ref/layout.h"

namespace lmk::test {
namespace {

using Shape = std::vector<int64_t>;

// Random values the 0xFF poison can't imitate: floats in [-4, 4), integers in [0, 100).
HostTensor data(DType t, Shape shape, uint64_t seed) {
  if (dtype_info(t).is_float) return random_uniform(t, std::move(shape), seed, -4, 4);
  return random_uniform(t, std::move(shape), seed, 0, 100);
}

std::vector<int64_t> random_indices(int64_t n, int64_t lo, int64_t hi, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int64_t> dist(lo, hi - 1);
  std::vector<int64_t> v(static_cast<size_t>(n));
  for (auto& x : v) x = dist(rng);
  return v;
}

HostTensor index_tensor(DType t, const std::vector<int64_t>& v, Shape shape) {
  HostTensor h(t, std::move(shape));
  for (size_t i = 0; i < v.size(); ++i) h.set(int64_t(i), double(v[i]));
  return h;
}

std::string dims(const Shape& s) {
  std::string r;
  for (size_t i = 0; i < s.size(); ++i) {
    if (i) r += 'x';
    r += std::to_string(s[i]);
  }
  return r.empty() ? "scalar" : r;
}

// ---- copy of an arbitrary view ------------------------------------------------------------------

struct View {
  Shape shape, strides;
  int64_t offset = 0;
  std::string label;
};

// View dim k is dim perm[k] of a contiguous tensor of shape base.
View permuted(const Shape& base, const std::vector<int>& perm, int64_t offset = 0) {
  Shape strides(base.size());
  int64_t s = 1;
  for (int d = int(base.size()) - 1; d >= 0; --d) {
    strides[size_t(d)] = s;
    s *= base[size_t(d)];
  }
  View v{{}, {}, offset, dims(base) + " perm("};
  for (size_t k = 0; k < perm.size(); ++k) {
    v.shape.push_back(base[size_t(perm[k])]);
    v.strides.push_back(strides[size_t(perm[k])]);
    if (k) v.label += ',';
    v.label += std::to_string(perm[k]);
  }
  v.label += ")";
  if (offset) v.label += " +" + std::to_string(offset);
  return v;
}

View strided(Shape shape, Shape strides, int64_t offset, std::string label) {
  return View{std::move(shape), std::move(strides), offset, std::move(label)};
}

CompareResult check_copy(Device d, DType t, const View& v) {
  int64_t span = v.offset + 1;
  for (size_t k = 0; k < v.shape.size(); ++k) span += (v.shape[k] - 1) * v.strides[k];
  auto buf = data(t, {span}, case_seed("copy" + v.label + std::string(name(t))));
  auto dev = to_device(buf, d);
  Tensor src(static_cast<unsigned char*>(dev.buffer.data()) + v.offset * element_size(t), t, v.shape, v.strides, d);
  auto out = poisoned(t, v.shape, d);
  lmk::copy(src, out);
  return compare(to_host(out), ref::strided_read(buf.to_double(), v.offset, v.shape, v.strides), exact());
}

// ---- permutations ------------------------------------------------------------------------------

CompareResult check_transpose(Device d, DType t, int64_t R, int64_t C) {
  auto x = data(t, {R, C}, case_seed("transpose" + shape_name(t, {R, C})));
  auto dx = to_device(x, d);
  auto out = poisoned(t, {C, R}, d);
  lmk::transpose(dx, out);
  return compare(to_host(out), ref::transpose(x.to_double(), R, C), exact());
}

CompareResult check_transpose_last2(Device d, DType t, Shape s) {
  auto x = data(t, s, case_seed("transpose_last2" + shape_name(t, s)));
  auto dx = to_device(x, d);
  auto out = poisoned(t, {s[0], s[2], s[1]}, d);
  lmk::transpose_last2(dx, out);
  return compare(to_host(out), ref::transpose_last2(x.to_double(), s[0], s[1], s[2]), exact());
}

CompareResult check_permute_021(Device d, DType in, DType out_t, Shape s) {
  auto x = data(in, s, case_seed("permute_021" + shape_name(in, s) + std::string(name(out_t))));
  auto dx = to_device(x, d);
  auto out = poisoned(out_t, {s[1], s[0], s[2]}, d);
  lmk::permute_021(dx, out);
  return compare(to_host(out), ref::permute_021(x.to_double(), s[0], s[1], s[2]), exact());
}

// ---- gathers -----------------------------------------------------------------------------------

// gather (in-range indices: the CPU rejects the others) or embedding (with out-of-range ids).
CompareResult check_gather(Device d, bool embedding, DType t, DType idx_t, int64_t rows, int64_t W, int64_t N) {
  const std::string salt = (embedding ? "embedding" : "gather") + shape_name(t, {rows, W, N}) + std::string(name(idx_t));
  auto src = data(t, {rows, W}, case_seed(salt));
  // Embedding ids reach past V (and below 0 for i32): those rows must come back as +0.0.
  const int64_t lo = embedding && idx_t == DType::i32 ? -3 : 0, hi = embedding ? rows + 3 : rows;
  auto ids = random_indices(N, lo, hi, case_seed(salt + "idx"));
  auto idx = index_tensor(idx_t, ids, {N});
  auto dsrc = to_device(src, d), didx = to_device(idx, d);
  auto out = poisoned(t, {N, W}, d);
  if (embedding) lmk::embedding(dsrc, didx, out);
  else lmk::gather(dsrc, didx, out);
  return compare(to_host(out), ref::gather_rows(src.to_double(), rows, W, ids, embedding), exact());
}

CompareResult check_take_along_axis(Device d, int64_t R, int64_t Cc, int64_t k) {
  const std::string salt = "take_along_axis" + shape_name(DType::f32, {R, Cc, k});
  auto x = data(DType::f32, {R, Cc}, case_seed(salt));
  auto ids = random_indices(R * k, 0, Cc + 2, case_seed(salt + "idx"));  // a few land past Cc -> 0.0
  auto idx = index_tensor(DType::u32, ids, {R, k});
  auto dx = to_device(x, d), didx = to_device(idx, d);
  auto y = poisoned(DType::f32, {R, k}, d);
  lmk::take_along_axis(dx, didx, y);
  return compare(to_host(y), ref::take_along_axis(x.to_double(), R, Cc, ids, k), exact());
}

// ---- column ops and repeats --------------------------------------------------------------------

CompareResult check_qkv_split(Device d, DType t, int64_t T, int64_t qs, int64_t ks, int64_t vs) {
  const int64_t total = qs + ks + vs;
  auto qkv = data(t, {T, total}, case_seed("qkv_split" + shape_name(t, {T, qs, ks, vs})));
  auto dqkv = to_device(qkv, d);
  auto q = poisoned(t, {T, qs}, d), k = poisoned(t, {T, ks}, d), v = poisoned(t, {T, vs}, d);
  lmk::qkv_split(dqkv, q, k, v);
  const auto all = qkv.to_double();
  auto r = compare(to_host(q), ref::slice_cols(all, T, total, 0, qs), exact());
  r = merge(r, compare(to_host(k), ref::slice_cols(all, T, total, qs, ks), exact()), "k");
  return merge(r, compare(to_host(v), ref::slice_cols(all, T, total, qs + ks, vs), exact()), "v");
}

CompareResult check_repeat_tiled(Device d, DType t, int64_t T, int64_t Hg, int64_t H, int64_t K) {
  auto src = data(t, {T, Hg, K}, case_seed("repeat_tiled" + shape_name(t, {T, Hg, H, K})));
  auto dsrc = to_device(src, d);
  auto out = poisoned(t, {T, H, K}, d);
  lmk::repeat_tiled(dsrc, out);
  return compare(to_host(out), ref::repeat_tiled(src.to_double(), T, Hg, H, K), exact());
}

CompareResult check_slice(Device d, DType t, int64_t R, int64_t in_cols, int64_t start, int64_t cols) {
  auto in = data(t, {R, in_cols}, case_seed("slice_2d_cols" + shape_name(t, {R, in_cols, start, cols})));
  auto din = to_device(in, d);
  auto out = poisoned(t, {R, cols}, d);
  lmk::slice_2d_cols(din, start, out);
  return compare(to_host(out), ref::slice_cols(in.to_double(), R, in_cols, start, cols), exact());
}

// copy_2d_cols_into / feature_concat: dst starts with known random values; the pieces (widths
// `cols`, placed one after another from `start`) overwrite their slabs and nothing else.
CompareResult check_cols_into(Device d, bool concat, DType t, int64_t R, int64_t dst_cols, int64_t start,
                              const Shape& cols) {
  const std::string salt = (concat ? "feature_concat" : "copy_2d_cols_into") + shape_name(t, {R, dst_cols, start});
  auto dst = data(t, {R, dst_cols}, case_seed(salt));
  auto want = dst.to_double();
  auto ddst = to_device(dst, d);
  int64_t at = start;
  for (size_t i = 0; i < cols.size(); ++i) {
    auto src = data(t, {R, cols[i]}, case_seed(salt + std::to_string(i)));
    auto dsrc = to_device(src, d);
    if (concat) lmk::feature_concat(dsrc, ddst, at);
    else lmk::copy_2d_cols_into(dsrc, ddst, at);
    ref::cols_into(want, R, dst_cols, src.to_double(), cols[i], at);
    at += cols[i];
  }
  return compare(to_host(ddst), want, exact());
}

// ---- kv cache ----------------------------------------------------------------------------------

// Caches start with random values so that slots that must not change are checked too.
CompareResult check_kv_copy(Device d, DType t, int64_t cap, int64_t row, int64_t n, int64_t write_pos, bool ring) {
  const std::string salt = "kv_cache_copy" + shape_name(t, {cap, row, n, write_pos}) + (ring ? "ring" : "");
  auto cache = data(t, {cap, row}, case_seed(salt));
  auto src = data(t, {n, row}, case_seed(salt + "src"));
  auto want = cache.to_double();
  ref::kv_cache_copy(want, cap, row, src.to_double(), n, write_pos, ring);
  auto dcache = to_device(cache, d), dsrc = to_device(src, d);
  lmk::kv_cache_copy(dsrc, dcache, {.write_pos = write_pos, .ring = ring});
  return compare(to_host(dcache), want, exact());
}

CompareResult check_kv_batch(Device d, DType cache_t, int64_t H, int64_t cap, int64_t Dh, int64_t seq_pos) {
  const std::string salt = "kv_cache_copy_batch" + shape_name(cache_t, {H, cap, Dh, seq_pos});
  auto cache = data(cache_t, {H, cap, Dh}, case_seed(salt));
  auto src = data(DType::f32, {H * Dh}, case_seed(salt + "src"));
  auto want = cache.to_double();
  ref::kv_cache_copy_batch(want, H, cap, Dh, src.to_double(), seq_pos);
  auto dcache = to_device(cache, d), dsrc = to_device(src, d);
  lmk::kv_cache_copy_batch(dsrc, dcache, seq_pos);
  return compare(to_host(dcache), want, exact());  // f16 cache: compare rounds the f32 source RNE
}

struct SeqCase {
  int64_t n_src, H, Dh, cap, src_off, n, start;
};

CompareResult check_kv_seq(Device d, DType src_t, DType cache_t, SeqCase c, bool dual) {
  const std::string salt = "kv_cache_copy_seq" + shape_name(src_t, {c.n_src, c.H, c.Dh, c.cap, c.src_off, c.n, c.start}) +
                           std::string(name(cache_t)) + (dual ? "dual" : "");
  const KvCacheSeq p{.src_offset = c.src_off, .n_tokens = c.n, .seq_pos_start = c.start};
  CompareResult r;
  std::vector<HostTensor> caches, srcs;
  std::vector<DeviceTensor> dcaches, dsrcs;
  for (int i = 0; i < (dual ? 2 : 1); ++i) {
    caches.push_back(data(cache_t, {c.H, c.cap, c.Dh}, case_seed(salt + "cache" + std::to_string(i))));
    srcs.push_back(data(src_t, {c.n_src, c.H, c.Dh}, case_seed(salt + "src" + std::to_string(i))));
    dcaches.push_back(to_device(caches.back(), d));
    dsrcs.push_back(to_device(srcs.back(), d));
  }
  if (dual) lmk::kv_cache_copy_seq_dual(dsrcs[0], dsrcs[1], dcaches[0], dcaches[1], p);
  else lmk::kv_cache_copy_seq(dsrcs[0], dcaches[0], p);
  for (size_t i = 0; i < caches.size(); ++i) {
    auto want = caches[i].to_double();
    ref::kv_cache_copy_seq(want, c.H, c.cap, c.Dh, srcs[i].to_double(), c.src_off, c.n, c.start);
    r = merge(r, compare(to_host(dcaches[i]), want, exact()), i ? "v" : "k");
  }
  return r;
}

}  // namespace

LMK_CHECKS(layout) {
  // copy: one case per CUDA path and dtype size.
  struct CopyCase {
    DType t;
    View v;
    bool quick;
  };
  const std::vector<CopyCase> copies = {
      {DType::f32, strided({257, 1000}, {1000, 1}, 0, "257x1000 contiguous"), true},
      {DType::bf16, strided({5, 64}, {64, 1}, 1, "5x64 contiguous +1"), false},
      {DType::u8, strided({1, 65539}, {65539, 1}, 0, "1x65539 contiguous"), false},
      {DType::i64, strided({}, {}, 0, "scalar"), false},
      {DType::f32, strided({1, 1, 1}, {1, 1, 1}, 0, "1x1x1"), false},
      {DType::bf16, permuted({4, 32, 128}, {1, 0, 2}), true},
      {DType::f16, permuted({4, 32, 128}, {1, 0, 2}, 3), false},
      {DType::f32, permuted({3, 5, 7}, {1, 0, 2}), false},
      {DType::u8, permuted({6, 5, 48}, {1, 0, 2}), false},
      {DType::f64, permuted({6, 5, 12}, {1, 0, 2}), false},
      {DType::i32, permuted({3, 4, 5, 8}, {2, 0, 1, 3}), false},
      {DType::bf16, permuted({128, 192}, {1, 0}), true},
      {DType::f32, permuted({72, 200}, {1, 0}), false},
      {DType::u8, permuted({80, 208}, {1, 0}), false},
      {DType::i16, permuted({67, 131}, {1, 0}), false},
      {DType::f64, permuted({33, 65}, {1, 0}), false},
      {DType::u32, permuted({37, 41}, {1, 0}, 5), false},
      {DType::bf16, permuted({2, 3, 40, 24}, {1, 3, 0, 2}), false},
      {DType::f32, permuted({3, 5, 7, 9}, {3, 1, 0, 2}), false},
      {DType::i8, permuted({2, 3, 2, 2, 3, 2, 1, 5}, {7, 3, 0, 6, 5, 1, 4, 2}), false},
      {DType::f32, strided({5, 7, 9}, {0, 9, 1}, 0, "5x7x9 broadcast dim 0"), false},
      {DType::bf16, strided({4, 6}, {1, 0}, 0, "4x6 broadcast inner"), false},
      {DType::f32, strided({10, 20}, {120, 2}, 2, "10x20 step 2"), false},
      {DType::f16, strided({3, 1, 16}, {40, 7, 1}, 0, "3x1x16 padded rows"), false},
      {DType::u8, strided({9, 13}, {30, 2}, 1, "9x13 step 2"), false},
      {DType::i64, strided({6, 5}, {0, 1}, 0, "6x5 broadcast rows"), false},
  };
  for (const auto& c : copies)
    cases.push_back({"copy", std::string(name(c.t)) + " " + c.v.label, c.quick,
                     [c](Device d) { return check_copy(d, c.t, c.v); }});

  const std::vector<std::pair<int64_t, int64_t>> rc = {{1, 1}, {7, 3}, {64, 64}, {67, 131}, {72, 200}, {256, 320}, {1000, 257}};
  for (DType t : {DType::f32, DType::f16, DType::bf16, DType::i32, DType::u8, DType::f64})
    for (auto [r, c] : rc) {
      if ((t == DType::u8 || t == DType::f64) && r > 256) continue;
      const bool quick = t == DType::bf16 && r == 256;
      cases.push_back({"transpose", std::string(name(t)) + " " + dims({r, c}), quick,
                       [=](Device d) { return check_transpose(d, t, r, c); }});
    }
  for (DType t : {DType::bf16, DType::f16, DType::f32})
    for (const Shape& s : {Shape{1, 1, 1}, Shape{3, 17, 40}, Shape{4, 64, 128}, Shape{2, 72, 200}})
      cases.push_back({"transpose_last2", shape_name(t, s), t == DType::bf16 && s[2] == 128,
                       [=](Device d) { return check_transpose_last2(d, t, s); }});
  for (auto [in, out] : {std::pair{DType::f32, DType::f32}, std::pair{DType::bf16, DType::bf16},
                         std::pair{DType::f16, DType::f16}, std::pair{DType::bf16, DType::f32},
                         std::pair{DType::f16, DType::f32}})
    for (const Shape& s : {Shape{1, 1, 1}, Shape{4, 32, 128}, Shape{3, 5, 7}, Shape{2, 17, 64}})
      cases.push_back({"permute_021", shape_name(in, s) + "->" + std::string(name(out)),
                       in == DType::bf16 && out == DType::f32 && s[2] == 128,
                       [=](Device d) { return check_permute_021(d, in, out, s); }});

  struct GatherShape {
    int64_t rows, W, N;
  };
  const std::vector<GatherShape> gs = {{1, 1, 1}, {10, 7, 5}, {100, 64, 300}, {1000, 4096, 33}, {37, 4097, 9}, {50, 1000, 64}};
  for (bool emb : {false, true})
    for (DType t : float_types())
      for (size_t i = 0; i < gs.size(); ++i) {
        const auto g = gs[i];
        const DType it = i % 2 ? DType::i32 : DType::u32;
        const bool quick = t == DType::bf16 && g.W == 4096;
        cases.push_back({emb ? "embedding" : "gather",
                         shape_name(t, {g.rows, g.W}) + " x" + std::to_string(g.N) + " " + std::string(name(it)), quick,
                         [=](Device d) { return check_gather(d, emb, t, it, g.rows, g.W, g.N); }});
      }
  cases.push_back({"embedding", "f32[151936,64] x4096 u32", false,
                   [](Device d) { return check_gather(d, true, DType::f32, DType::u32, 151936, 64, 4096); }});

  for (auto [R, Cc, k] : {std::tuple{1, 1, 1}, std::tuple{3, 10, 10}, std::tuple{257, 64, 8}, std::tuple{5, 1000, 3}})
    cases.push_back({"take_along_axis", "f32 " + dims({R, Cc}) + " k" + std::to_string(k), R == 257,
                     [=](Device d) { return check_take_along_axis(d, R, Cc, k); }});

  for (int64_t T : {1, 128, 4106})
    cases.push_back({"qkv_split", "f32 T" + std::to_string(T) + " 256+256+2048", T == 128,
                     [=](Device d) { return check_qkv_split(d, DType::f32, T, 256, 256, 2048); }});
  cases.push_back({"qkv_split", "f32 7x(16+16+96)", false,
                   [](Device d) { return check_qkv_split(d, DType::f32, 7, 16, 16, 96); }});
  cases.push_back({"qkv_split", "bf16 T33 256+256+2048", false,
                   [](Device d) { return check_qkv_split(d, DType::bf16, 33, 256, 256, 2048); }});
  cases.push_back({"qkv_split", "f16 5x(3+9+1)", false,
                   [](Device d) { return check_qkv_split(d, DType::f16, 5, 3, 9, 1); }});

  for (int64_t T : {1, 128, 4106})
    cases.push_back({"repeat_tiled", "f32 T" + std::to_string(T) + " Hg2 H16 K128", T == 128,
                     [=](Device d) { return check_repeat_tiled(d, DType::f32, T, 2, 16, 128); }});
  cases.push_back({"repeat_tiled", "f32 T5 Hg16 H48 K128", false,
                   [](Device d) { return check_repeat_tiled(d, DType::f32, 5, 16, 48, 128); }});
  cases.push_back({"repeat_tiled", "f32 T7 identity", false,
                   [](Device d) { return check_repeat_tiled(d, DType::f32, 7, 4, 4, 32); }});
  cases.push_back({"repeat_tiled", "bf16 T33 Hg2 H16 K128", false,
                   [](Device d) { return check_repeat_tiled(d, DType::bf16, 33, 2, 16, 128); }});
  cases.push_back({"repeat_tiled", "f16 T3 Hg3 H6 K7", false,
                   [](Device d) { return check_repeat_tiled(d, DType::f16, 3, 3, 6, 7); }});

  struct SliceCase {
    DType t;
    int64_t R, in_cols, start, cols;
  };
  for (auto c : {SliceCase{DType::f32, 1, 1, 0, 1}, SliceCase{DType::f32, 17, 100, 13, 50},
                 SliceCase{DType::f32, 64, 2560, 512, 2048}, SliceCase{DType::bf16, 9, 64, 8, 32},
                 SliceCase{DType::f16, 3, 10, 9, 1}})
    cases.push_back({"slice_2d_cols", shape_name(c.t, {c.R, c.in_cols}) + " [" + std::to_string(c.start) + "+" +
                                          std::to_string(c.cols) + "]",
                     c.R == 64, [c](Device d) { return check_slice(d, c.t, c.R, c.in_cols, c.start, c.cols); }});

  struct IntoCase {
    DType t;
    int64_t R, dst_cols, start;
    Shape cols;
  };
  for (auto c : {IntoCase{DType::f32, 1, 1, 0, {1}}, IntoCase{DType::f32, 17, 100, 13, {50}},
                 IntoCase{DType::f32, 33, 3072, 1024, {2048}}, IntoCase{DType::bf16, 9, 80, 8, {32, 40}},
                 IntoCase{DType::f16, 4, 23, 3, {7, 1, 12}}})
    cases.push_back({"copy_2d_cols_into", shape_name(c.t, {c.R, c.dst_cols}) + " at " + std::to_string(c.start) +
                                              " pieces " + dims(c.cols),
                     c.dst_cols == 3072, [c](Device d) { return check_cols_into(d, false, c.t, c.R, c.dst_cols, c.start, c.cols); }});
  cases.push_back({"feature_concat", "f32 T11 4 chunks of 32", true,
                   [](Device d) { return check_cols_into(d, true, DType::f32, 11, 128, 0, {32, 32, 32, 32}); }});
  cases.push_back({"feature_concat", "f32 T11 chunks 7+32+5 into 50 at 3", false,
                   [](Device d) { return check_cols_into(d, true, DType::f32, 11, 50, 3, {7, 32, 5}); }});

  struct KvCase {
    DType t;
    int64_t cap, row, n, pos;
    bool ring;
    const char* what;
  };
  for (auto c : {KvCase{DType::f32, 16, 40, 5, 3, false, "linear"}, KvCase{DType::f32, 16, 40, 5, 11, false, "linear to the end"},
                 KvCase{DType::f16, 16, 40, 5, 14, true, "ring wrap"}, KvCase{DType::bf16, 16, 40, 5, 14, true, "ring wrap"},
                 KvCase{DType::bf16, 8, 33, 3, 25, true, "ring pos past cap"}, KvCase{DType::f32, 7, 9, 7, 4, true, "ring full"},
                 KvCase{DType::bf16, 1, 1, 1, 0, false, "1x1"}, KvCase{DType::bf16, 64, 1024, 64, 37, true, "ring 64x1024"}})
    cases.push_back({"kv_cache_copy", std::string(name(c.t)) + " cap" + std::to_string(c.cap) + " row" +
                                          std::to_string(c.row) + " n" + std::to_string(c.n) + " pos" +
                                          std::to_string(c.pos) + " " + c.what,
                     c.row == 1024, [c](Device d) { return check_kv_copy(d, c.t, c.cap, c.row, c.n, c.pos, c.ring); }});

  for (DType ct : {DType::f32, DType::f16})
    for (auto [H, cap, Dh, pos] : {std::tuple{8, 37, 128, 36}, std::tuple{1, 1, 1, 0}, std::tuple{3, 5, 7, 2}})
      cases.push_back({"kv_cache_copy_batch", "f32->" + std::string(name(ct)) + " " + dims({H, cap, Dh}) + " pos" +
                                                  std::to_string(pos),
                       ct == DType::f16 && Dh == 128,
                       [=](Device d) { return check_kv_batch(d, ct, H, cap, Dh, pos); }});

  const std::vector<SeqCase> seqs = {{10, 4, 64, 16, 3, 7, 13}, {5, 1, 1, 5, 0, 5, 0}, {20, 3, 7, 8, 12, 8, 5},
                                     {128, 8, 128, 256, 0, 128, 100}};
  for (auto [in, out] : {std::pair{DType::f32, DType::f32}, std::pair{DType::f32, DType::f16},
                         std::pair{DType::bf16, DType::f32}})
    for (size_t i = 0; i < seqs.size(); ++i) {
      const SeqCase c = seqs[i];
      const std::string label = std::string(name(in)) + "->" + std::string(name(out)) + " src" +
                                dims({c.n_src, c.H, c.Dh}) + " cap" + std::to_string(c.cap) + " off" +
                                std::to_string(c.src_off) + " n" + std::to_string(c.n) + " start" + std::to_string(c.start);
      cases.push_back({"kv_cache_copy_seq", label, i == 0 && out == DType::f16,
                       [=](Device d) { return check_kv_seq(d, in, out, c, false); }});
      if (i == 0 || i == 2)
        cases.push_back({"kv_cache_copy_seq_dual", label, i == 0 && in == DType::bf16,
                         [=](Device d) { return check_kv_seq(d, in, out, c, true); }});
    }
}

}  // namespace lmk::test
