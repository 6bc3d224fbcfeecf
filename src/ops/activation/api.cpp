#include "lmk/activation.h"

#include <cmath>

#include "core/check.h"
#include "lmk/registry.h"
#include "ops/activation/backend.h"

namespace lmk {

LMK_REGISTER_OP({"silu_mul", "activation", "f32, f16, bf16 (f16/bf16: lmk extension)", true, true, "core-ops.md §3",
                 "silu_mul_{f32,f16,bf16}"});
LMK_REGISTER_OP({"sigmoid_mul", "activation", "f32, bf16, f16 (f16: lmk extension)", true, true, "core-ops.md §3",
                 "sigmoid_mul_{f32,f16,bf16}"});
LMK_REGISTER_OP({"silu", "activation", "f32, f16, bf16 (f16/bf16: lmk extension)", true, true, "core-ops.md §3",
                 "silu_{f32,f16,bf16}"});
LMK_REGISTER_OP({"gelu", "activation", "f32, f16, bf16", true, true, "core-ops.md §3", "gelu_{f32,f16,bf16}"});
LMK_REGISTER_OP({"softcap", "activation", "f32, f16, bf16", true, true, "core-ops.md §3", "softcap_{f32,f16,bf16}"});
LMK_REGISTER_OP({"add_bias_row_2d", "activation", "f32, f16, bf16 (f16/bf16: lmk extension)", true, true,
                 "training-and-vision.md §9", "add_bias_row_2d_{f32,f16,bf16}"});
LMK_REGISTER_OP({"outer_product", "activation", "f32", true, true, "training-and-vision.md §8", "outer_product_f32"});

namespace {

using namespace detail;

// Two same-index inputs (a, b) and out: contiguous, same dtype, device and numel; out may be
// exactly a or b (in-place), never a partial overlap.
void check_gated(const char* op, const char* a_name, const Tensor& a, const char* b_name, const Tensor& b,
                 const Tensor& out) {
  check_contiguous(op, a_name, a);
  check_contiguous(op, b_name, b);
  check_contiguous(op, "out", out);
  check_dtype(op, a_name, a, {DType::f32, DType::f16, DType::bf16});
  check_same_dtype(op, b_name, b, a_name, a);
  check_same_dtype(op, "out", out, a_name, a);
  check_same_device(op, b_name, b, a_name, a);
  check_same_device(op, "out", out, a_name, a);
  check_numel(op, b_name, b, a.numel());
  check_numel(op, "out", out, a.numel());
  check_same_or_disjoint(op, "out", out, a_name, a);
  check_same_or_disjoint(op, "out", out, b_name, b);
}

void check_unary(const char* op, const Tensor& x, const Tensor& out) {
  check_contiguous(op, "x", x);
  check_contiguous(op, "out", out);
  check_dtype(op, "x", x, {DType::f32, DType::f16, DType::bf16});
  check_same_dtype(op, "out", out, "x", x);
  check_same_device(op, "out", out, "x", x);
  check_numel(op, "out", out, x.numel());
  check_same_or_disjoint(op, "out", out, "x", x);
}

void run_gated(const char* op, ActGatedOp kind, const char* a_name, const Tensor& a, const char* b_name,
               const Tensor& b, const Tensor& out, Stream& s) {
  check_gated(op, a_name, a, b_name, b, out);
  if (a.device().is_cpu()) cpu::gated(kind, a, b, out);
#ifdef LMK_WITH_CUDA
  else cuda::gated(kind, a, b, out, s);
#endif
}

void run_unary(const char* op, ActUnaryOp kind, const Tensor& x, const Tensor& out, Stream& s) {
  check_unary(op, x, out);
  if (x.device().is_cpu()) cpu::unary(kind, x, out);
#ifdef LMK_WITH_CUDA
  else cuda::unary(kind, x, out, s);
#endif
}

}  // namespace

void silu_mul(const Tensor& gate, const Tensor& up, const Tensor& out, Stream& s) {
  run_gated("silu_mul", ActGatedOp::silu_mul, "gate", gate, "up", up, out, s);
}
void sigmoid_mul(const Tensor& x, const Tensor& gate, const Tensor& out, Stream& s) {
  run_gated("sigmoid_mul", ActGatedOp::sigmoid_mul, "x", x, "gate", gate, out, s);
}
void silu(const Tensor& x, const Tensor& out, Stream& s) { run_unary("silu", ActUnaryOp::silu, x, out, s); }
void gelu(const Tensor& x, const Tensor& out, Stream& s) { run_unary("gelu", ActUnaryOp::gelu, x, out, s); }

void softcap(const Tensor& x, const Tensor& out, float cap, Stream& s) {
  const char* op = "softcap";
  check_unary(op, x, out);
  if (!std::isfinite(cap) || !(cap > 0.0f))
    LMK_THROW(InvalidArgument, op, ": argument 'cap' must be finite and > 0, got ", cap);
  if (x.device().is_cpu()) cpu::softcap(x, out, cap);
#ifdef LMK_WITH_CUDA
  else cuda::softcap(x, out, cap, s);
#endif
}

void add_bias_row_2d(const Tensor& a, const Tensor& bias, const Tensor& out, Stream& s) {
  const char* op = "add_bias_row_2d";
  check_contiguous(op, "a", a);
  check_contiguous(op, "bias", bias);
  check_contiguous(op, "out", out);
  check_dtype(op, "a", a, {DType::f32, DType::f16, DType::bf16});
  check_same_dtype(op, "bias", bias, "a", a);
  check_same_dtype(op, "out", out, "a", a);
  check_same_device(op, "bias", bias, "a", a);
  check_same_device(op, "out", out, "a", a);
  check_rank(op, "a", a, 2);
  const int64_t cols = a.size(1);
  check_numel(op, "bias", bias, cols);
  check_numel(op, "out", out, a.numel());
  check_same_or_disjoint(op, "out", out, "a", a);
  check_no_overlap(op, "out", out, "bias", bias);
  if (a.device().is_cpu()) cpu::add_bias_row_2d(a, bias, out, cols);
#ifdef LMK_WITH_CUDA
  else cuda::add_bias_row_2d(a, bias, out, cols, s);
#endif
}

void outer_product(const Tensor& lhs, const Tensor& rhs, const Tensor& out, Stream& s) {
  const char* op = "outer_product";
  check_contiguous(op, "lhs", lhs);
  check_operand(op, "rhs", rhs, {DType::f32}, "lhs", lhs);
  check_operand(op, "out", out, {DType::f32}, "lhs", lhs);
  check_dtype(op, "lhs", lhs, {DType::f32});
  check_shape(op, "out", out, {lhs.numel(), rhs.numel()});
  check_no_overlap(op, "out", out, "lhs", lhs);
  check_no_overlap(op, "out", out, "rhs", rhs);
  if (lhs.device().is_cpu()) cpu::outer_product(lhs, rhs, out);
#ifdef LMK_WITH_CUDA
  else cuda::outer_product(lhs, rhs, out, s);
#endif
}

}  // namespace lmk
