#include <cstdlib>
#include <cstring>
#include <vector>

#include "core/check.h"
#include "lmk/elementwise.h"
#include "lmk/quant.h"
#include "lmk/quant_ops.h"
#include "lmk/registry.h"
#include "ops/quant/backend.h"

namespace lmk {

LMK_REGISTER_OP({"dequant_to_f16", "quant", "q4_0 q5_0 q5_1 q8_0 iq4_nl q2_K q4_K q5_K q6_K iq4_xs, f32, bf16 -> f16", true,
                 true, "matmul-moe-sampling.md §1.1", "dequant_to_f16_{q4_0,q8_0,q5_1,iq4_nl,q4_K,q5_K,q6_K}"});
LMK_REGISTER_OP({"dequantize", "quant", "GGML block types, f32, f16, bf16 -> f32, f16, bf16", true, true,
                 "quant-formats.md §2-3", "dequant_{type}"});
LMK_REGISTER_OP({"dequant_affine", "quant", "MLX affine 4/6/8-bit, bf16/f16/f32 scales -> f32, f16, bf16", true, true,
                 "quant-formats.md §5", "dequant_affine_{4,6,8}bit"});
LMK_REGISTER_OP({"qdq_legacy", "quant", "f32 (q4_0, q8_0)", true, true, "matmul-moe-sampling.md §1.2",
                 "qdq_q4_0_f32, qdq_q8_0_f32"});
LMK_REGISTER_OP({"qdq_affine_init", "quant", "f32 -> u8 codes, f32 scales/biases", true, true,
                 "matmul-moe-sampling.md §1.3", "qdq_affine_init_f32"});
LMK_REGISTER_OP({"qdq_affine_forward", "quant", "u8 codes, f32 scales/biases -> f32", true, true,
                 "matmul-moe-sampling.md §1.3", "qdq_affine_forward_f32"});
LMK_REGISTER_OP({"qdq_affine_backward_scales", "quant", "u8 codes, f32", true, true, "matmul-moe-sampling.md §1.3",
                 "qdq_affine_backward_scales_f32"});
LMK_REGISTER_OP({"qdq_affine_backward_biases", "quant", "f32", true, true, "matmul-moe-sampling.md §1.3",
                 "qdq_affine_backward_biases_f32"});
LMK_REGISTER_OP({"embedding_ggml", "quant", "GGML block types, f32, f16, bf16 table; u32/i32 ids -> f32", true, true,
                 "matmul-moe-sampling.md §4.1",
                 "embedding_{q4_0,q8_0,q5_0,q2_k,q4_k,kquant,dense}"});
LMK_REGISTER_OP({"embedding_affine", "quant", "MLX affine 4/6/8-bit table, bf16/f16/f32 scales; u32/i32 ids -> f32",
                 true, true, "matmul-moe-sampling.md §4.1", "embedding_{4,6}bit"});

namespace {

using namespace detail;

bool is_float16_or_32(DType t) { return t == DType::f32 || t == DType::f16 || t == DType::bf16; }

// Quantized tensors need rank >= 1 and a last dim that is a whole number of blocks; checked
// before check_tensor (whose byte-size computation would otherwise report an overflow).
void check_block_tensor(const char* op, const char* arg, const Tensor& t) {
  if (!is_quantized(t.dtype())) return;
  if (t.rank() < 1) LMK_THROW(InvalidArgument, op, ": argument '", arg, "' must have rank >= 1 (blocks along the last dim)");
  const int64_t qk = dtype_info(t.dtype()).block_elems;
  if (t.size(-1) % qk != 0)
    LMK_THROW(InvalidArgument, op, ": argument '", arg, "' last dim ", t.size(-1), " is not a multiple of the ",
              name(t.dtype()), " block size ", qk);
}

bool debug_checks() {
  const char* v = std::getenv("LMK_DEBUG_CHECKS");
  return v && *v && std::strcmp(v, "0") != 0;
}

void run_dequantize(const char* op, const Tensor& src, const Tensor& dst, bool f16_only, Stream& s) {
  check_block_tensor(op, "src", src);
  check_contiguous(op, "src", src);
  check_contiguous(op, "dst", dst);
  if (!is_quantized(src.dtype()))
    check_dtype(op, "src", src, {DType::q4_0, DType::q5_0, DType::q5_1, DType::q8_0, DType::iq4_nl, DType::q2_K,
                                 DType::q4_K, DType::q5_K, DType::q6_K, DType::iq4_xs, DType::f32, DType::f16,
                                 DType::bf16});
  if (f16_only) check_dtype(op, "dst", dst, {DType::f16});
  else check_dtype(op, "dst", dst, {DType::f32, DType::f16, DType::bf16});
  check_same_device(op, "dst", dst, "src", src);
  check_same_shape(op, "dst", dst, "src", src);
  check_no_overlap(op, "dst", dst, "src", src);
  if (!is_quantized(src.dtype())) {
    cast(src, dst, s);  // exact widening / RNE narrowing, same contract
    return;
  }
  if (src.device().is_cpu()) cpu::dequantize(src, dst);
#ifdef LMK_WITH_CUDA
  else cuda::dequantize(src, dst, s);
#endif
}

// Validates the MLX affine operands for a table/matrix of `rows` rows of k values.
AffineArgs check_affine(const char* op, const Tensor& packed, const Tensor& scales, const Tensor& biases, int64_t rows,
                        int64_t k, int bits, int64_t gs, const Tensor& ref) {
  check_affine_format(op, bits, gs, k);
  check_contiguous(op, "packed", packed);
  check_contiguous(op, "scales", scales);
  check_contiguous(op, "biases", biases);
  check_dtype(op, "packed", packed, {DType::u32, DType::u8});
  check_dtype(op, "scales", scales, {DType::bf16, DType::f16, DType::f32});
  check_same_dtype(op, "biases", biases, "scales", scales);
  for (const auto& [arg, t] : {std::pair{"packed", &packed}, std::pair{"scales", &scales}, std::pair{"biases", &biases}})
    check_same_device(op, arg, *t, "out", ref);
  check_rank(op, "packed", packed, 2);
  const int64_t row_bytes = affine_packed_row_bytes(bits, k);
  const int64_t have = packed.size(1) * element_size(packed.dtype());
  if (packed.size(0) != rows || have != row_bytes)
    LMK_THROW(InvalidArgument, op, ": argument 'packed' has shape ", shape_str(packed.shape()), " (", name(packed.dtype()),
              "), expected ", rows, " rows of ", row_bytes, " bytes for ", k, " values at ", bits,
              " bits (bits/group_size disagree with tensor shapes?)");
  check_shape(op, "scales", scales, {rows, k / gs});
  check_shape(op, "biases", biases, {rows, k / gs});
  return AffineArgs{packed.data(), scales.data(), biases.data(), scales.dtype(), bits, gs, k, row_bytes};
}

// ids: u32/i32, any rank (numel = T). On the host every id is checked against vocab.
int64_t check_ids(const char* op, const Tensor& ids, const Tensor& out, int64_t vocab) {
  check_operand(op, "ids", ids, {DType::u32, DType::i32}, "out", out);
  const int64_t t = ids.numel();
  if (ids.device().is_cpu()) {
    for (int64_t i = 0; i < t; ++i) {
      const int64_t id = ids.dtype() == DType::u32 ? int64_t(ids.data_as<uint32_t>()[i]) : int64_t(ids.data_as<int32_t>()[i]);
      if (id < 0 || id >= vocab)
        LMK_THROW(InvalidArgument, op, ": invalid id ", id, " at row ", i, " (V=", vocab, ")");
    }
  }
  return t;
}

uint32_t* check_error_flag(const char* op, const Tensor& flag, const Tensor& out) {
  if (!flag.defined()) return nullptr;
  check_operand(op, "error_flag", flag, {DType::u32}, "out", out);
  check_no_overlap(op, "error_flag", flag, "out", out);
  return flag.data_as<uint32_t>();
}

int64_t check_group(const char* op, int64_t n, int64_t gs) {
  if (gs <= 0) LMK_THROW(InvalidArgument, op, ": group_size must be >= 1, got ", gs);
  if (n % gs != 0) LMK_THROW(InvalidArgument, op, ": ", n, " values is not a multiple of group_size ", gs);
  return n / gs;
}

}  // namespace

void dequant_to_f16(const Tensor& src, const Tensor& dst, Stream& s) { run_dequantize("dequant_to_f16", src, dst, true, s); }

void dequant_to_f16(const Tensor& src_bytes, DType type, int64_t n_rows, int64_t n_cols, const Tensor& dst, Stream& s) {
  const char* op = "dequant_to_f16";
  check_contiguous(op, "src", src_bytes);
  check_dtype(op, "src", src_bytes, {DType::u8});
  if (!is_quantized(type) && !is_float16_or_32(type))
    LMK_THROW(Unsupported, op, ": type ", name(type), " not supported (GGML block types, f32, f16, bf16)");
  if (n_rows <= 0 || n_cols <= 0)
    LMK_THROW(InvalidArgument, op, ": n_rows and n_cols must be positive, got ", n_rows, " x ", n_cols);
  const int64_t qk = dtype_info(type).block_elems;
  if (n_cols % qk != 0)
    LMK_THROW(InvalidArgument, op, ": n_cols ", n_cols, " is not a multiple of the ", name(type), " block size ", qk);
  const int64_t row_bytes = mul_checked(op, "row bytes", n_cols / qk, dtype_info(type).block_bytes);
  const int64_t need = mul_checked(op, "source bytes", n_rows, row_bytes);
  if (src_bytes.numel() != need)
    LMK_THROW(InvalidArgument, op, ": argument 'src' has ", src_bytes.numel(), " bytes, expected ", need, " (", n_rows,
              " rows x ", n_cols, " ", name(type), ")");
  Tensor typed(src_bytes.data(), type, {n_rows, n_cols}, src_bytes.device());
  run_dequantize(op, typed, dst, true, s);
}

void dequantize(const Tensor& src, const Tensor& dst, Stream& s) { run_dequantize("dequantize", src, dst, false, s); }

void dequant_affine(const Tensor& packed, const Tensor& scales, const Tensor& biases, const Tensor& dst, int bits,
                    int64_t gs, Stream& s) {
  const char* op = "dequant_affine";
  check_contiguous(op, "dst", dst);
  check_dtype(op, "dst", dst, {DType::f32, DType::f16, DType::bf16});
  check_rank(op, "dst", dst, 2);
  AffineArgs a = check_affine(op, packed, scales, biases, dst.size(0), dst.size(1), bits, gs, dst);
  check_no_overlap(op, "dst", dst, "packed", packed);
  check_no_overlap(op, "dst", dst, "scales", scales);
  check_no_overlap(op, "dst", dst, "biases", biases);
  if (dst.device().is_cpu()) cpu::dequant_affine(a, dst.size(0), dst);
#ifdef LMK_WITH_CUDA
  else cuda::dequant_affine(a, dst.size(0), dst, s);
#endif
}

void qdq_legacy(DType format, const Tensor& x, const Tensor& y, Stream& s) {
  const char* op = "qdq_legacy";
  if (format != DType::q4_0 && format != DType::q8_0)
    LMK_THROW(Unsupported, op, ": format ", name(format), " not supported, supported {q4_0, q8_0}");
  check_contiguous(op, "x", x);
  check_operand(op, "y", y, {DType::f32}, "x", x);
  check_dtype(op, "x", x, {DType::f32});
  check_numel(op, "y", y, x.numel());
  if (x.numel() % 32 != 0)
    LMK_THROW(InvalidArgument, op, ": ", x.numel(), " values is not a multiple of the block size 32");
  check_same_or_disjoint(op, "y", y, "x", x);
  if (x.device().is_cpu()) cpu::qdq_legacy(format, x, y);
#ifdef LMK_WITH_CUDA
  else cuda::qdq_legacy(format, x, y, s);
#endif
}

void qdq_affine_init(const Tensor& w, const Tensor& scales, const Tensor& biases, const Tensor& q, int64_t gs,
                     int n_bins, Stream& s) {
  const char* op = "qdq_affine_init";
  for (const auto& [arg, t] : {std::pair{"w", &w}, std::pair{"scales", &scales}, std::pair{"biases", &biases},
                               std::pair{"q", &q}})
    check_contiguous(op, arg, *t);
  check_dtype(op, "w", w, {DType::f32});
  check_dtype(op, "scales", scales, {DType::f32});
  check_dtype(op, "biases", biases, {DType::f32});
  check_dtype(op, "q", q, {DType::u8});
  const int64_t groups = check_group(op, w.numel(), gs);
  if (n_bins < 2 || n_bins > 256) LMK_THROW(InvalidArgument, op, ": n_bins must be in [2, 256], got ", n_bins);
  check_numel(op, "q", q, w.numel());
  check_numel(op, "scales", scales, groups);
  check_numel(op, "biases", biases, groups);
  for (const auto& [arg, t] : {std::pair{"scales", &scales}, std::pair{"biases", &biases}, std::pair{"q", &q}}) {
    check_same_device(op, arg, *t, "w", w);
    check_no_overlap(op, arg, *t, "w", w);
  }
  check_no_overlap(op, "scales", scales, "biases", biases);
  check_no_overlap(op, "q", q, "scales", scales);
  check_no_overlap(op, "q", q, "biases", biases);
  if (w.device().is_cpu()) cpu::qdq_affine_init(w, scales, biases, q, gs, n_bins);
#ifdef LMK_WITH_CUDA
  else cuda::qdq_affine_init(w, scales, biases, q, gs, n_bins, s);
#endif
}

void qdq_affine_forward(const Tensor& q, const Tensor& scales, const Tensor& biases, const Tensor& out, int64_t gs,
                        Stream& s) {
  const char* op = "qdq_affine_forward";
  for (const auto& [arg, t] : {std::pair{"q", &q}, std::pair{"scales", &scales}, std::pair{"biases", &biases},
                               std::pair{"out", &out}})
    check_contiguous(op, arg, *t);
  check_dtype(op, "q", q, {DType::u8});
  check_dtype(op, "scales", scales, {DType::f32});
  check_dtype(op, "biases", biases, {DType::f32});
  check_dtype(op, "out", out, {DType::f32});
  const int64_t groups = check_group(op, q.numel(), gs);
  check_numel(op, "out", out, q.numel());
  check_numel(op, "scales", scales, groups);
  check_numel(op, "biases", biases, groups);
  for (const auto& [arg, t] : {std::pair{"q", &q}, std::pair{"scales", &scales}, std::pair{"biases", &biases}}) {
    check_same_device(op, arg, *t, "out", out);
    check_no_overlap(op, "out", out, arg, *t);
  }
  if (out.device().is_cpu()) cpu::qdq_affine_forward(q, scales, biases, out, gs);
#ifdef LMK_WITH_CUDA
  else cuda::qdq_affine_forward(q, scales, biases, out, gs, s);
#endif
}

void qdq_affine_backward_scales(const Tensor& q, const Tensor& dy, const Tensor& d_scales, int64_t gs, Stream& s) {
  const char* op = "qdq_affine_backward_scales";
  check_contiguous(op, "q", q);
  check_operand(op, "dy", dy, {DType::f32}, "q", q);
  check_operand(op, "d_scales", d_scales, {DType::f32}, "q", q);
  check_dtype(op, "q", q, {DType::u8});
  const int64_t groups = check_group(op, q.numel(), gs);
  check_numel(op, "dy", dy, q.numel());
  check_numel(op, "d_scales", d_scales, groups);
  check_no_overlap(op, "d_scales", d_scales, "q", q);
  check_no_overlap(op, "d_scales", d_scales, "dy", dy);
  if (q.device().is_cpu()) cpu::qdq_affine_backward_scales(q, dy, d_scales, gs);
#ifdef LMK_WITH_CUDA
  else cuda::qdq_affine_backward_scales(q, dy, d_scales, gs, s);
#endif
}

void qdq_affine_backward_biases(const Tensor& dy, const Tensor& d_biases, int64_t gs, Stream& s) {
  const char* op = "qdq_affine_backward_biases";
  check_contiguous(op, "dy", dy);
  check_operand(op, "d_biases", d_biases, {DType::f32}, "dy", dy);
  check_dtype(op, "dy", dy, {DType::f32});
  const int64_t groups = check_group(op, dy.numel(), gs);
  check_numel(op, "d_biases", d_biases, groups);
  check_no_overlap(op, "d_biases", d_biases, "dy", dy);
  if (dy.device().is_cpu()) cpu::qdq_affine_backward_biases(dy, d_biases, gs);
#ifdef LMK_WITH_CUDA
  else cuda::qdq_affine_backward_biases(dy, d_biases, gs, s);
#endif
}

void embedding_ggml(const Tensor& table, const Tensor& ids, const Tensor& out, Stream& s, const Tensor& error_flag) {
  const char* op = "embedding_ggml";
  check_block_tensor(op, "table", table);
  check_contiguous(op, "table", table);
  check_contiguous(op, "out", out);
  if (!is_quantized(table.dtype())) check_dtype(op, "table", table, {DType::f32, DType::f16, DType::bf16});
  check_dtype(op, "out", out, {DType::f32});
  check_rank(op, "table", table, 2);
  check_rank(op, "out", out, 2);
  check_same_device(op, "table", table, "out", out);
  const int64_t vocab = table.size(0), dim = table.size(1);
  const int64_t t = check_ids(op, ids, out, vocab);
  check_shape(op, "out", out, {t, dim});
  check_no_overlap(op, "out", out, "table", table);
  check_no_overlap(op, "out", out, "ids", ids);
  uint32_t* flag = check_error_flag(op, error_flag, out);
  if (out.device().is_cpu()) cpu::embedding_ggml(table, ids, out);
#ifdef LMK_WITH_CUDA
  else cuda::embedding_ggml(table, ids, out, flag, debug_checks(), s);
#endif
  (void)flag;
}

void embedding_affine(const Tensor& packed, const Tensor& scales, const Tensor& biases, const Tensor& ids,
                      const Tensor& out, int bits, int64_t gs, Stream& s, const Tensor& error_flag) {
  const char* op = "embedding_affine";
  check_contiguous(op, "out", out);
  check_dtype(op, "out", out, {DType::f32});
  check_rank(op, "out", out, 2);
  check_contiguous(op, "packed", packed);
  check_rank(op, "packed", packed, 2);
  const int64_t vocab = packed.size(0), dim = out.size(1);
  AffineArgs a = check_affine(op, packed, scales, biases, vocab, dim, bits, gs, out);
  const int64_t t = check_ids(op, ids, out, vocab);
  check_shape(op, "out", out, {t, dim});
  for (const auto& [arg, p] : {std::pair{"packed", &packed}, std::pair{"scales", &scales}, std::pair{"biases", &biases},
                               std::pair{"ids", &ids}})
    check_no_overlap(op, "out", out, arg, *p);
  uint32_t* flag = check_error_flag(op, error_flag, out);
  if (out.device().is_cpu()) cpu::embedding_affine(a, ids, out);
#ifdef LMK_WITH_CUDA
  else cuda::embedding_affine(a, vocab, ids, out, flag, debug_checks(), s);
#endif
  (void)flag;
}

}  // namespace lmk
