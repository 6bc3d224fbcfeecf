#include "lmk/softmax.h"

#include "core/check.h"
#include "lmk/registry.h"
#include "ops/softmax/backend.h"

namespace lmk {

LMK_REGISTER_OP({"softmax", "softmax", "f32, f16, bf16", true, true, "core-ops.md §4", "softmax_{f32,f16,bf16}"});
LMK_REGISTER_OP({"scale_mask_softmax", "softmax", "f32 scores/out, bf16 mask", true, true, "core-ops.md §4",
                 "scale_mask_softmax_f32"});

namespace {
using namespace detail;

}  // namespace

void softmax(const Tensor& x, const Tensor& out, Stream& s) {
  const char* op = "softmax";
  check_contiguous(op, "x", x);
  check_contiguous(op, "out", out);
  check_dtype(op, "x", x, {DType::f32, DType::f16, DType::bf16});
  check_same_dtype(op, "out", out, "x", x);
  check_same_device(op, "out", out, "x", x);
  const int64_t cols = row_length(op, "x", x);
  const int64_t rows = x.numel() / cols;
  check_numel(op, "out", out, x.numel());
  check_same_or_disjoint(op, "out", out, "x", x);
  if (x.device().is_cpu()) cpu::softmax(x, out, rows, cols);
#ifdef LMK_WITH_CUDA
  else cuda::softmax(x, out, rows, cols, s);
#endif
}

void scale_mask_softmax(const Tensor& scores, const Tensor& mask, const Tensor& out, int64_t seq_q, float scale,
                        Stream& s) {
  const char* op = "scale_mask_softmax";
  check_contiguous(op, "scores", scores);
  check_operand(op, "mask", mask, {DType::bf16}, "scores", scores);
  check_operand(op, "out", out, {DType::f32}, "scores", scores);
  check_dtype(op, "scores", scores, {DType::f32});
  if (seq_q < 1) LMK_THROW(InvalidArgument, op, ": seq_q must be >= 1, got ", seq_q);
  check_finite(op, "scale", scale);
  const int64_t cols = row_length(op, "scores", scores);
  const int64_t rows = scores.numel() / cols;
  if (rows % seq_q != 0)
    LMK_THROW(InvalidArgument, op, ": scores has ", rows, " rows, not a multiple of seq_q = ", seq_q,
              " (rows are nh * seq_q)");
  check_numel(op, "mask", mask, mul_checked(op, "seq_q * seq_k", seq_q, cols));
  check_numel(op, "out", out, scores.numel());
  check_same_or_disjoint(op, "out", out, "scores", scores);
  check_no_overlap(op, "out", out, "mask", mask);
  if (scores.device().is_cpu()) cpu::scale_mask_softmax(scores, mask, out, rows, cols, seq_q, scale);
#ifdef LMK_WITH_CUDA
  else cuda::scale_mask_softmax(scores, mask, out, rows, cols, seq_q, scale, s);
#endif
}

}  // namespace lmk
