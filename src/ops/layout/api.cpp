#include "lmk/layout.h"

#include <algorithm>
#include <limits>
#include <vector>

#include "core/check.h"
#include "lmk/registry.h"
#include "ops/layout/backend.h"

namespace lmk {

LMK_REGISTER_OP({"copy", "layout", "f32, f16, bf16, f64, i8, i16, i32, i64, u8, u32 (any strided view)", true, true,
                 "core-ops.md §7", "strided_copy_f32, copy_f32"});
LMK_REGISTER_OP({"transpose", "layout", "any plain dtype", true, true, "core-ops.md §7", "transpose_2d_{f32,f16}"});
LMK_REGISTER_OP({"transpose_last2", "layout", "any plain dtype", true, true, "core-ops.md §7",
                 "transpose_last2_{bf16,f16}"});
LMK_REGISTER_OP({"permute_021", "layout", "f32, f16, bf16, bf16->f32, f16->f32", true, true, "core-ops.md §7",
                 "permute_021_{f32,bf16}, permute_021_bf16_to_f32"});
LMK_REGISTER_OP({"gather", "layout", "f32, f16, bf16 (u32/i32 indices)", true, true, "core-ops.md §7", "gather_f32"});
LMK_REGISTER_OP({"embedding", "layout", "f32, f16, bf16 tables (u32/i32 ids)", true, true,
                 "training-and-vision.md §6", "embedding_lookup_f32"});
LMK_REGISTER_OP({"take_along_axis", "layout", "f32 (u32 indices)", true, true, "training-and-vision.md §7",
                 "take_along_axis_f32"});
LMK_REGISTER_OP({"qkv_split", "layout", "f32, f16, bf16", true, true, "core-ops.md §7", "qkv_split_f32"});
LMK_REGISTER_OP({"repeat_tiled", "layout", "f32, f16, bf16", true, true, "core-ops.md §7", "repeat_tiled_f32"});
LMK_REGISTER_OP({"slice_2d_cols", "layout", "f32, f16, bf16", true, true, "core-ops.md §7", "slice_2d_cols_f32"});
LMK_REGISTER_OP({"copy_2d_cols_into", "layout", "f32, f16, bf16", true, true, "core-ops.md §7",
                 "copy_2d_cols_into_f32"});
LMK_REGISTER_OP({"feature_concat", "layout", "f32, f16, bf16", true, true, "training-and-vision.md §9",
                 "feature_concat_f32"});
LMK_REGISTER_OP({"kv_cache_copy", "layout", "f16, bf16, f32", true, true, "core-ops.md §7",
                 "kv_cache_copy, kv_cache_copy_f32"});
LMK_REGISTER_OP({"kv_cache_copy_batch", "layout", "f32->f32, f32->f16", true, true, "core-ops.md §7",
                 "kv_cache_copy_batch_f32, kv_cache_copy_batch_f32_to_f16"});
LMK_REGISTER_OP({"kv_cache_copy_seq", "layout", "f32->f32, f32->f16, bf16->f32", true, true, "core-ops.md §7",
                 "kv_cache_copy_seq_{f32,f32_to_f16,bf16}"});
LMK_REGISTER_OP({"kv_cache_copy_seq_dual", "layout", "f32->f32, f32->f16, bf16->f32", true, true, "core-ops.md §7",
                 "kv_cache_copy_seq_{f32,f32_to_f16}_dual"});

namespace {

using namespace detail;
constexpr std::initializer_list<DType> kFloat = {DType::f32, DType::f16, DType::bf16};

int64_t add_checked(const char* op, const char* what, int64_t a, int64_t b) {
  if (a < 0 || b < 0) LMK_THROW(InvalidArgument, op, ": negative ", what);
  if (b > std::numeric_limits<int64_t>::max() - a)
    LMK_THROW(InvalidArgument, op, ": ", what, " overflows int64 (", a, " + ", b, ")");
  return a + b;
}

void check_plain(const char* op, const char* arg, const Tensor& t) {
  if (dtype_info(t.dtype()).is_quantized)
    LMK_THROW(Unsupported, op, ": argument '", arg, "' has the block-quantized dtype ", name(t.dtype()),
              ", supported: plain dtypes");
}

// A strided source view: check_tensor, non-negative strides, and a span that fits in int64 bytes.
void check_strided(const char* op, const char* arg, const Tensor& t) {
  check_tensor(op, arg, t);
  int64_t last = 0;
  for (int d = 0; d < t.rank(); ++d) {
    if (t.stride(d) < 0)
      LMK_THROW(InvalidArgument, op, ": argument '", arg, "' has the negative stride ", t.stride(d), " in dim ", d,
                " (strides ", shape_str(t.strides()), "); negative strides are not supported");
    last = add_checked(op, "source span", last, mul_checked(op, "source span", t.size(d) - 1, t.stride(d)));
  }
  mul_checked(op, "source span bytes", add_checked(op, "source span", last, 1), element_size(t.dtype()));
}

// kv_cache tensors may be empty (documented no-ops). An empty tensor counts as contiguous whatever
// its strides (Tensor::is_contiguous is not reliable for zero-size dims).
void check_dense_or_empty(const char* op, const char* arg, const Tensor& t) {
  if (t.numel() == 0) check_tensor(op, arg, t, true);
  else check_contiguous(op, arg, t);
}

// Element offset `off` into t, reshaped to shape/strides (all within t's memory: callers ensure it).
Tensor sub_view(const Tensor& t, int64_t off, std::initializer_list<int64_t> shape,
                std::initializer_list<int64_t> strides) {
  auto* p = static_cast<unsigned char*>(t.data()) + off * element_size(t.dtype());
  return Tensor(p, t.dtype(), std::span<const int64_t>(shape.begin(), shape.size()),
                std::span<const int64_t>(strides.begin(), strides.size()), t.device());
}

void run(std::span<const CopyPiece> pieces, Stream& s) {
  if (pieces.empty()) return;
  if (pieces[0].dst.device().is_cpu()) cpu::copy_pieces(pieces);
#ifdef LMK_WITH_CUDA
  else cuda::copy_pieces(pieces, s);
#endif
}

// Contiguous same-dtype same-device pair with out disjoint from x.
void check_pair(const char* op, const Tensor& x, const Tensor& out, std::initializer_list<DType> dtypes = {}) {
  check_contiguous(op, "x", x);
  check_contiguous(op, "out", out);
  if (dtypes.size()) check_dtype(op, "x", x, dtypes);
  else check_plain(op, "x", x);
  check_same_dtype(op, "out", out, "x", x);
  check_same_device(op, "out", out, "x", x);
  check_no_overlap(op, "out", out, "x", x);
}

// Validation shared by gather and embedding.
void check_gather(const char* op, const char* src_name, const char* idx_name, const Tensor& src, const Tensor& idx,
                  const Tensor& out) {
  check_contiguous(op, src_name, src);
  check_contiguous(op, idx_name, idx);
  check_contiguous(op, "out", out);
  check_dtype(op, src_name, src, kFloat);
  check_dtype(op, idx_name, idx, {DType::u32, DType::i32});
  check_rank(op, src_name, src, 2);
  check_same_dtype(op, "out", out, src_name, src);
  check_same_device(op, idx_name, idx, src_name, src);
  check_same_device(op, "out", out, src_name, src);
  check_shape(op, "out", out, {idx.numel(), src.size(1)});
  check_no_overlap(op, "out", out, src_name, src);
  check_no_overlap(op, "out", out, idx_name, idx);
}

void run_gather(const Tensor& src, const Tensor& idx, const Tensor& out, OutOfRange rule, Stream& s) {
  if (src.device().is_cpu()) cpu::gather_rows(src, idx, out, rule);
#ifdef LMK_WITH_CUDA
  else cuda::gather_rows(src, idx, out, rule, s);
#endif
}

// Column-slab copy shared by copy_2d_cols_into and feature_concat.
void cols_into(const char* op, const Tensor& src, const Tensor& dst, int64_t start, const char* overflow_msg,
               Stream& s) {
  check_contiguous(op, "src", src);
  check_contiguous(op, "dst", dst);
  check_dtype(op, "src", src, kFloat);
  check_rank(op, "src", src, 2);
  check_rank(op, "dst", dst, 2);
  check_same_dtype(op, "dst", dst, "src", src);
  check_same_device(op, "dst", dst, "src", src);
  const int64_t rows = src.size(0), cols = src.size(1), dst_cols = dst.size(1);
  if (dst.size(0) != rows)
    LMK_THROW(InvalidArgument, op, ": argument 'dst' has ", dst.size(0), " rows (shape ", shape_str(dst.shape()),
              "), expected ", rows, " (the rows of 'src')");
  if (start < 0) LMK_THROW(InvalidArgument, op, ": start column ", start, " is negative");
  if (start > dst_cols - cols)
    LMK_THROW(InvalidArgument, op, ": columns [", start, ", ", start, " + ", cols, ") ", overflow_msg, " of ",
              dst_cols, " columns");
  check_no_overlap(op, "dst", dst, "src", src);
  CopyPiece p{src, sub_view(dst, start, {rows, cols}, {dst_cols, 1})};
  run({&p, 1}, s);
}

// Validation shared by the kv_cache_copy_seq variants; returns false for a no-op call.
bool check_kv_seq(const char* op, const char* src_name, const char* cache_name, const Tensor& src,
                  const Tensor& cache, const KvCacheSeq& p) {
  check_dense_or_empty(op, src_name, src);
  check_dense_or_empty(op, cache_name, cache);
  check_dtype(op, src_name, src, {DType::f32, DType::bf16});
  if (src.dtype() == DType::f32) check_dtype(op, cache_name, cache, {DType::f32, DType::f16});
  else check_dtype(op, cache_name, cache, {DType::f32});
  check_same_device(op, cache_name, cache, src_name, src);
  check_rank(op, src_name, src, 3);
  check_rank(op, cache_name, cache, 3);
  const int64_t heads = cache.size(0), cap = cache.size(1), dim = cache.size(2);
  if (src.size(1) != heads || src.size(2) != dim)
    LMK_THROW(InvalidArgument, op, ": argument '", src_name, "' has shape ", shape_str(src.shape()),
              ", expected [n_src, ", heads, ", ", dim, "] (heads and head_dim of '", cache_name, "' ",
              shape_str(cache.shape()), ")");
  if (p.n_tokens < 0) LMK_THROW(InvalidArgument, op, ": n_tokens ", p.n_tokens, " is negative");
  if (p.n_tokens == 0 || heads == 0 || dim == 0) return false;
  if (p.src_offset < 0 || p.seq_pos_start < 0)
    LMK_THROW(InvalidArgument, op, ": src_offset ", p.src_offset, " and seq_pos_start ", p.seq_pos_start,
              " must be non-negative");
  if (p.src_offset > src.size(0) - p.n_tokens)
    LMK_THROW(InvalidArgument, op, ": tokens [", p.src_offset, ", ", p.src_offset, " + ", p.n_tokens,
              ") exceed the ", src.size(0), " tokens of '", src_name, "'");
  if (p.n_tokens > cap)
    LMK_THROW(InvalidArgument, op, ": n_tokens ", p.n_tokens, " exceeds the ring capacity ", cap, " of '", cache_name,
              "' (each slot may be written once: pass the last min(n, capacity) tokens)");
  check_no_overlap(op, cache_name, cache, src_name, src);
  return true;
}

// The (at most two) pieces of a ring write of p.n_tokens tokens.
void kv_seq_pieces(const Tensor& src, const Tensor& cache, const KvCacheSeq& p, std::vector<CopyPiece>& out) {
  const int64_t heads = cache.size(0), cap = cache.size(1), dim = cache.size(2);
  const int64_t s0 = p.seq_pos_start % cap, first = std::min(p.n_tokens, cap - s0);
  auto piece = [&](int64_t tok, int64_t slot, int64_t n) {
    out.push_back({sub_view(src, tok * heads * dim, {heads, n, dim}, {dim, heads * dim, 1}),
                   sub_view(cache, slot * dim, {heads, n, dim}, {cap * dim, dim, 1})});
  };
  piece(p.src_offset, s0, first);
  if (first < p.n_tokens) piece(p.src_offset + first, 0, p.n_tokens - first);
}

}  // namespace

void copy(const Tensor& src, const Tensor& dst, Stream& s) {
  const char* op = "copy";
  check_strided(op, "src", src);
  check_plain(op, "src", src);
  check_contiguous(op, "dst", dst);
  check_same_dtype(op, "dst", dst, "src", src);
  check_same_device(op, "dst", dst, "src", src);
  check_same_shape(op, "dst", dst, "src", src);
  check_no_overlap(op, "dst", dst, "src", src);
  CopyPiece p{src, dst};
  run({&p, 1}, s);
}

void transpose(const Tensor& x, const Tensor& out, Stream& s) {
  const char* op = "transpose";
  check_pair(op, x, out);
  check_rank(op, "x", x, 2);
  const int64_t r = x.size(0), c = x.size(1);
  check_shape(op, "out", out, {c, r});
  CopyPiece p{sub_view(x, 0, {c, r}, {1, c}), out};
  run({&p, 1}, s);
}

void transpose_last2(const Tensor& x, const Tensor& out, Stream& s) {
  const char* op = "transpose_last2";
  check_pair(op, x, out);
  check_rank(op, "x", x, 3);
  const int64_t a = x.size(0), b = x.size(1), c = x.size(2);
  check_shape(op, "out", out, {a, c, b});
  CopyPiece p{sub_view(x, 0, {a, c, b}, {b * c, 1, c}), out};
  run({&p, 1}, s);
}

void permute_021(const Tensor& x, const Tensor& out, Stream& s) {
  const char* op = "permute_021";
  check_contiguous(op, "x", x);
  check_contiguous(op, "out", out);
  check_dtype(op, "x", x, kFloat);
  if (x.dtype() == DType::f32) check_dtype(op, "out", out, {DType::f32});
  else check_dtype(op, "out", out, {x.dtype(), DType::f32});
  check_same_device(op, "out", out, "x", x);
  check_no_overlap(op, "out", out, "x", x);
  check_rank(op, "x", x, 3);
  const int64_t a = x.size(0), b = x.size(1), c = x.size(2);
  check_shape(op, "out", out, {b, a, c});
  CopyPiece p{sub_view(x, 0, {b, a, c}, {c, b * c, 1}), out};
  run({&p, 1}, s);
}

void gather(const Tensor& src, const Tensor& idx, const Tensor& out, Stream& s) {
  check_gather("gather", "src", "idx", src, idx, out);
  run_gather(src, idx, out, OutOfRange::error_or_clamp, s);
}

void embedding(const Tensor& table, const Tensor& ids, const Tensor& out, Stream& s) {
  check_gather("embedding", "table", "ids", table, ids, out);
  run_gather(table, ids, out, OutOfRange::zero, s);
}

void take_along_axis(const Tensor& x, const Tensor& idx, const Tensor& y, Stream& s) {
  const char* op = "take_along_axis";
  check_contiguous(op, "x", x);
  check_operand(op, "idx", idx, {DType::u32}, "x", x);
  check_operand(op, "y", y, {DType::f32}, "x", x);
  check_dtype(op, "x", x, {DType::f32});
  check_rank(op, "x", x, 2);
  check_rank(op, "idx", idx, 2);
  const int64_t rows = x.size(0), k = idx.size(1);
  check_shape(op, "idx", idx, {rows, k});
  check_shape(op, "y", y, {rows, k});
  if (k > x.size(1))
    LMK_THROW(InvalidArgument, op, ": k = ", k, " (columns of 'idx') exceeds the ", x.size(1), " columns of 'x'");
  check_no_overlap(op, "y", y, "x", x);
  check_no_overlap(op, "y", y, "idx", idx);
  if (x.device().is_cpu()) cpu::take_along_axis(x, idx, y);
#ifdef LMK_WITH_CUDA
  else cuda::take_along_axis(x, idx, y, s);
#endif
}

void qkv_split(const Tensor& qkv, const Tensor& q, const Tensor& k, const Tensor& v, Stream& s) {
  const char* op = "qkv_split";
  check_contiguous(op, "qkv", qkv);
  check_dtype(op, "qkv", qkv, kFloat);
  check_rank(op, "qkv", qkv, 2);
  const int64_t rows = qkv.size(0), total = qkv.size(1);
  const Tensor* outs[3] = {&q, &k, &v};
  const char* names[3] = {"q", "k", "v"};
  int64_t width = 0;
  for (int i = 0; i < 3; ++i) {
    const Tensor& t = *outs[i];
    check_contiguous(op, names[i], t);
    check_rank(op, names[i], t, 2);
    check_same_dtype(op, names[i], t, "qkv", qkv);
    check_same_device(op, names[i], t, "qkv", qkv);
    if (t.size(0) != rows)
      LMK_THROW(InvalidArgument, op, ": argument '", names[i], "' has ", t.size(0), " rows (shape ",
                shape_str(t.shape()), "), expected ", rows, " (the rows of 'qkv')");
    width = add_checked(op, "q_sp + k_sp + v_sp", width, t.size(1));
    check_no_overlap(op, names[i], t, "qkv", qkv);
    for (int j = 0; j < i; ++j) check_no_overlap(op, names[i], t, names[j], *outs[j]);
  }
  if (width != total)
    LMK_THROW(InvalidArgument, op, ": q_sp + k_sp + v_sp = ", q.size(1), " + ", k.size(1), " + ", v.size(1), " = ",
              width, ", but 'qkv' has ", total, " columns");
  CopyPiece p[3];
  int64_t col = 0;
  for (int i = 0; i < 3; ++i) {
    const int64_t w = outs[i]->size(1);
    p[i] = {sub_view(qkv, col, {rows, w}, {total, 1}), *outs[i]};
    col += w;
  }
  run(p, s);
}

void repeat_tiled(const Tensor& src, const Tensor& dst, Stream& s) {
  const char* op = "repeat_tiled";
  check_contiguous(op, "src", src);
  check_contiguous(op, "dst", dst);
  check_dtype(op, "src", src, kFloat);
  check_same_dtype(op, "dst", dst, "src", src);
  check_same_device(op, "dst", dst, "src", src);
  check_rank(op, "src", src, 3);
  check_rank(op, "dst", dst, 3);
  const int64_t t = src.size(0), hg = src.size(1), kd = src.size(2), h = dst.size(1);
  if (dst.size(0) != t || dst.size(2) != kd)
    LMK_THROW(InvalidArgument, op, ": argument 'dst' has shape ", shape_str(dst.shape()), ", expected [", t,
              ", H, ", kd, "] (T and K of 'src' ", shape_str(src.shape()), ")");
  if (h % hg != 0)
    LMK_THROW(InvalidArgument, op, ": H = ", h, " (dst heads) is not a multiple of Hg = ", hg, " (src heads)");
  check_no_overlap(op, "dst", dst, "src", src);
  const int64_t reps = h / hg;
  CopyPiece p{sub_view(src, 0, {t, reps, hg, kd}, {hg * kd, 0, kd, 1}), dst.reshape({t, reps, hg, kd})};
  run({&p, 1}, s);
}

void slice_2d_cols(const Tensor& in, int64_t start, const Tensor& out, Stream& s) {
  const char* op = "slice_2d_cols";
  check_contiguous(op, "in", in);
  check_contiguous(op, "out", out);
  check_dtype(op, "in", in, kFloat);
  check_rank(op, "in", in, 2);
  check_rank(op, "out", out, 2);
  check_same_dtype(op, "out", out, "in", in);
  check_same_device(op, "out", out, "in", in);
  const int64_t rows = in.size(0), in_cols = in.size(1), cols = out.size(1);
  if (out.size(0) != rows)
    LMK_THROW(InvalidArgument, op, ": argument 'out' has ", out.size(0), " rows (shape ", shape_str(out.shape()),
              "), expected ", rows, " (the rows of 'in')");
  if (start < 0) LMK_THROW(InvalidArgument, op, ": start column ", start, " is negative");
  if (start > in_cols - cols)
    LMK_THROW(InvalidArgument, op, ": columns [", start, ", ", start, " + ", cols, ") exceed the ", in_cols,
              " columns of 'in'");
  check_no_overlap(op, "out", out, "in", in);
  CopyPiece p{sub_view(in, start, {rows, cols}, {in_cols, 1}), out};
  run({&p, 1}, s);
}

void copy_2d_cols_into(const Tensor& src, const Tensor& dst, int64_t start, Stream& s) {
  cols_into("copy_2d_cols_into", src, dst, start, "exceed the destination row", s);
}

void feature_concat(const Tensor& src, const Tensor& dst, int64_t offset, Stream& s) {
  cols_into("feature_concat", src, dst, offset, "overflows the destination row", s);
}

void kv_cache_copy(const Tensor& src, const Tensor& cache, KvCacheWrite w, Stream& s) {
  const char* op = "kv_cache_copy";
  check_dense_or_empty(op, "src", src);
  check_dense_or_empty(op, "cache", cache);
  check_dtype(op, "src", src, kFloat);
  check_same_dtype(op, "cache", cache, "src", src);
  check_same_device(op, "cache", cache, "src", src);
  check_rank(op, "src", src, 2);
  check_rank(op, "cache", cache, 2);
  const int64_t n = src.size(0), row = src.size(1), cap = cache.size(0);
  if (cache.size(1) != row)
    LMK_THROW(InvalidArgument, op, ": argument 'cache' has rows of ", cache.size(1), " elements (shape ",
              shape_str(cache.shape()), "), expected ", row, " (the row size of 'src')");
  if (n == 0 || row == 0) return;  // spec: no-op
  if (w.write_pos < 0) LMK_THROW(InvalidArgument, op, ": write_pos ", w.write_pos, " is negative");
  if (cap == 0) LMK_THROW(InvalidArgument, op, ": 'cache' has capacity 0 but ", n, " tokens are to be written");
  if (w.ring && n > cap)
    LMK_THROW(InvalidArgument, op, ": ", n, " tokens exceed the ring capacity ", cap,
              " (each slot may be written once: pass the last min(n, capacity) tokens)");
  if (!w.ring && w.write_pos > cap - n)
    LMK_THROW(InvalidArgument, op, ": write_pos ", w.write_pos, " + ", n, " tokens exceeds the capacity ", cap,
              " of the (non-wrapping) cache");
  check_no_overlap(op, "cache", cache, "src", src);
  const int64_t s0 = w.ring ? w.write_pos % cap : w.write_pos, first = std::min(n, cap - s0);
  CopyPiece p[2];
  p[0] = {sub_view(src, 0, {first, row}, {row, 1}), sub_view(cache, s0 * row, {first, row}, {row, 1})};
  if (first < n) p[1] = {sub_view(src, first * row, {n - first, row}, {row, 1}), sub_view(cache, 0, {n - first, row}, {row, 1})};
  run({p, size_t(first < n ? 2 : 1)}, s);
}

void kv_cache_copy_batch(const Tensor& src, const Tensor& cache, int64_t seq_pos, Stream& s) {
  const char* op = "kv_cache_copy_batch";
  check_dense_or_empty(op, "src", src);
  check_dense_or_empty(op, "cache", cache);
  check_dtype(op, "src", src, {DType::f32});
  check_dtype(op, "cache", cache, {DType::f32, DType::f16});
  check_same_device(op, "cache", cache, "src", src);
  check_rank(op, "cache", cache, 3);
  const int64_t heads = cache.size(0), cap = cache.size(1), dim = cache.size(2);
  check_numel(op, "src", src, mul_checked(op, "heads * head_dim", heads, dim));
  if (heads == 0 || dim == 0) return;  // spec: no-op
  if (seq_pos < 0 || seq_pos >= cap)
    LMK_THROW(InvalidArgument, op, ": seq_pos ", seq_pos, " is outside the cache capacity [0, ", cap,
              ") (pass the already wrapped slot)");
  check_no_overlap(op, "cache", cache, "src", src);
  CopyPiece p{sub_view(src, 0, {heads, dim}, {dim, 1}), sub_view(cache, seq_pos * dim, {heads, dim}, {cap * dim, 1})};
  run({&p, 1}, s);
}

void kv_cache_copy_seq(const Tensor& src, const Tensor& cache, KvCacheSeq p, Stream& s) {
  if (!check_kv_seq("kv_cache_copy_seq", "src", "cache", src, cache, p)) return;
  std::vector<CopyPiece> pieces;
  kv_seq_pieces(src, cache, p, pieces);
  run(pieces, s);
}

void kv_cache_copy_seq_dual(const Tensor& k_src, const Tensor& v_src, const Tensor& k_cache, const Tensor& v_cache,
                            KvCacheSeq p, Stream& s) {
  const char* op = "kv_cache_copy_seq_dual";
  const bool k_work = check_kv_seq(op, "k_src", "k_cache", k_src, k_cache, p);
  const bool v_work = check_kv_seq(op, "v_src", "v_cache", v_src, v_cache, p);
  check_same_device(op, "v_src", v_src, "k_src", k_src);
  check_same_dtype(op, "v_src", v_src, "k_src", k_src);
  check_same_dtype(op, "v_cache", v_cache, "k_cache", k_cache);
  check_same_shape(op, "v_src", v_src, "k_src", k_src);
  check_same_shape(op, "v_cache", v_cache, "k_cache", k_cache);
  if (!k_work || !v_work) return;
  check_no_overlap(op, "v_cache", v_cache, "k_cache", k_cache);
  check_no_overlap(op, "v_cache", v_cache, "k_src", k_src);
  check_no_overlap(op, "k_cache", k_cache, "v_src", v_src);
  std::vector<CopyPiece> pieces;
  kv_seq_pieces(k_src, k_cache, p, pieces);
  kv_seq_pieces(v_src, v_cache, p, pieces);
  run(pieces, s);
}

}  // namespace lmk
