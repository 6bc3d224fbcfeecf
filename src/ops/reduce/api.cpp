#include "lmk/reduce.h"

#include "core/check.h"
#include "lmk/registry.h"
#include "ops/reduce/backend.h"

namespace lmk {

LMK_REGISTER_OP({"row_sum", "reduce", "f32", true, true, "core-ops.md §6", "row_sum_f32"});
LMK_REGISTER_OP({"cumsum", "reduce", "f32, bf16", true, true, "core-ops.md §6", "cumsum_{f32,bf16}"});

namespace {
using namespace detail;

}  // namespace

void row_sum(const Tensor& x, const Tensor& out, Stream& s) {
  const char* op = "row_sum";
  check_contiguous(op, "x", x);
  check_operand(op, "out", out, {DType::f32}, "x", x);
  check_dtype(op, "x", x, {DType::f32});
  const int64_t cols = row_length(op, "x", x);
  const int64_t rows = x.numel() / cols;
  check_numel(op, "out", out, rows);
  check_no_overlap(op, "out", out, "x", x);
  if (x.device().is_cpu()) cpu::row_sum(x, out, rows, cols);
#ifdef LMK_WITH_CUDA
  else cuda::row_sum(x, out, rows, cols, s);
#endif
}

void cumsum(const Tensor& x, const Tensor& out, Stream& s) {
  const char* op = "cumsum";
  check_contiguous(op, "x", x);
  check_contiguous(op, "out", out);
  check_dtype(op, "x", x, {DType::f32, DType::bf16});
  check_same_dtype(op, "out", out, "x", x);
  check_same_device(op, "out", out, "x", x);
  const int64_t cols = row_length(op, "x", x);
  const int64_t rows = x.numel() / cols;
  check_numel(op, "out", out, x.numel());
  check_same_or_disjoint(op, "out", out, "x", x);
  if (x.device().is_cpu()) cpu::cumsum(x, out, rows, cols);
#ifdef LMK_WITH_CUDA
  else cuda::cumsum(x, out, rows, cols, s);
#endif
}

}  // namespace lmk
