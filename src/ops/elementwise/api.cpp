#include "lmk/elementwise.h"

#include "core/check.h"
#include "lmk/registry.h"
#include "ops/elementwise/backend.h"

namespace lmk {

LMK_REGISTER_OP({"add", "elementwise", "f32, f16, bf16", true, true, "core-ops.md §2", "elementwise_add_{f32,f16,bf16}"});
LMK_REGISTER_OP({"mul", "elementwise", "f32, f16, bf16", true, true, "core-ops.md §2", "elementwise_mul_{f32,f16,bf16}"});
LMK_REGISTER_OP({"divide", "elementwise", "f32", true, true, "core-ops.md §2", "divide_f32"});
LMK_REGISTER_OP({"scalar_mul", "elementwise", "f32, f16, bf16", true, true, "core-ops.md §2", "scalar_mul_{f32,bf16}"});
LMK_REGISTER_OP({"exp", "elementwise", "f32", true, true, "core-ops.md §2", "exp_f32"});
LMK_REGISTER_OP({"log", "elementwise", "f32", true, true, "core-ops.md §2", "log_f32"});
LMK_REGISTER_OP({"sqrt", "elementwise", "f32", true, true, "core-ops.md §2", "sqrt_f32"});
LMK_REGISTER_OP({"cast", "elementwise", "f32, f16, bf16 (any pair)", true, true, "core-ops.md §2",
                 "cast_{f16_to_f32,f32_to_f16,bf16_to_f32,f32_to_bf16}"});

namespace {

using namespace detail;

// Validates a binary op and returns the broadcast length of b (0 = same shape as a).
int64_t check_binary(const char* op, const Tensor& a, const Tensor& b, const Tensor& out, bool f32_only) {
  check_contiguous(op, "a", a);
  check_contiguous(op, "b", b);
  check_contiguous(op, "out", out);
  if (f32_only) check_dtype(op, "a", a, {DType::f32});
  else check_dtype(op, "a", a, {DType::f32, DType::f16, DType::bf16});
  check_same_dtype(op, "b", b, "a", a);
  check_same_dtype(op, "out", out, "a", a);
  check_same_device(op, "b", b, "a", a);
  check_same_device(op, "out", out, "a", a);
  check_numel(op, "out", out, a.numel());
  check_same_or_disjoint(op, "out", out, "a", a);
  int64_t b_cols = 0;
  if (b.numel() != a.numel()) {
    const int64_t cols = a.rank() > 0 ? a.size(-1) : 1;
    if (b.numel() != cols)
      LMK_THROW(InvalidArgument, op, ": argument 'b' has ", b.numel(), " elements; expected ", a.numel(),
                " (same shape as 'a') or ", cols, " (a row broadcast over the last dim of 'a')");
    b_cols = cols;
    check_no_overlap(op, "out", out, "b", b);
  } else {
    check_same_or_disjoint(op, "out", out, "b", b);
  }
  return b_cols;
}

void run_binary(const char* op, BinaryOp kind, const Tensor& a, const Tensor& b, const Tensor& out, Stream& s) {
  int64_t b_cols = check_binary(op, a, b, out, kind == BinaryOp::div);
  if (a.device().is_cpu()) cpu::binary(kind, a, b, out, b_cols);
#ifdef LMK_WITH_CUDA
  else cuda::binary(kind, a, b, out, b_cols, s);
#endif
}

void run_unary(const char* op, UnaryOp kind, const Tensor& x, const Tensor& out, Stream& s) {
  check_contiguous(op, "x", x);
  check_contiguous(op, "out", out);
  check_dtype(op, "x", x, {DType::f32});
  check_same_dtype(op, "out", out, "x", x);
  check_same_device(op, "out", out, "x", x);
  check_numel(op, "out", out, x.numel());
  check_same_or_disjoint(op, "out", out, "x", x);
  if (x.device().is_cpu()) cpu::unary(kind, x, out);
#ifdef LMK_WITH_CUDA
  else cuda::unary(kind, x, out, s);
#endif
}

}  // namespace

void add(const Tensor& a, const Tensor& b, const Tensor& out, Stream& s) { run_binary("add", BinaryOp::add, a, b, out, s); }
void mul(const Tensor& a, const Tensor& b, const Tensor& out, Stream& s) { run_binary("mul", BinaryOp::mul, a, b, out, s); }
void divide(const Tensor& a, const Tensor& b, const Tensor& out, Stream& s) {
  run_binary("divide", BinaryOp::div, a, b, out, s);
}
void exp(const Tensor& x, const Tensor& out, Stream& s) { run_unary("exp", UnaryOp::exp, x, out, s); }
void log(const Tensor& x, const Tensor& out, Stream& s) { run_unary("log", UnaryOp::log, x, out, s); }
void sqrt(const Tensor& x, const Tensor& out, Stream& s) { run_unary("sqrt", UnaryOp::sqrt, x, out, s); }

void scalar_mul(const Tensor& x, float scalar, const Tensor& out, Stream& s) {
  const char* op = "scalar_mul";
  check_contiguous(op, "x", x);
  check_contiguous(op, "out", out);
  check_dtype(op, "x", x, {DType::f32, DType::f16, DType::bf16});
  check_same_dtype(op, "out", out, "x", x);
  check_same_device(op, "out", out, "x", x);
  check_numel(op, "out", out, x.numel());
  check_same_or_disjoint(op, "out", out, "x", x);
  if (x.device().is_cpu()) cpu::scalar_mul(x, scalar, out);
#ifdef LMK_WITH_CUDA
  else cuda::scalar_mul(x, scalar, out, s);
#endif
}

void cast(const Tensor& x, const Tensor& out, Stream& s) {
  const char* op = "cast";
  check_contiguous(op, "x", x);
  check_operand(op, "out", out, {DType::f32, DType::f16, DType::bf16}, "x", x);
  check_dtype(op, "x", x, {DType::f32, DType::f16, DType::bf16});
  check_numel(op, "out", out, x.numel());
  if (x.dtype() == out.dtype()) check_same_or_disjoint(op, "out", out, "x", x);
  else check_no_overlap(op, "out", out, "x", x);
  if (x.device().is_cpu()) cpu::cast(x, out);
#ifdef LMK_WITH_CUDA
  else cuda::cast(x, out, s);
#endif
}

}  // namespace lmk
