#include "lmk/norm.h"

#include <cmath>

#include "core/check.h"
#include "lmk/registry.h"
#include "ops/norm/backend.h"

namespace lmk {

LMK_REGISTER_OP({"rms_norm", "norm", "f32, f16 (f32 weight), bf16; no weight: f32, f16, bf16", true, true,
                 "core-ops.md §5", "rms_norm_{f32,f16,bf16}, rms_norm_no_scale_{f32,bf16}"});
LMK_REGISTER_OP({"rms_norm_mul", "norm", "f32, f16 (f32 weight), bf16", true, true, "core-ops.md §5",
                 "rms_norm_mul_{f32,f16,bf16}"});
LMK_REGISTER_OP({"l2_norm", "norm", "f32, f16, bf16", true, true, "core-ops.md §5", "l2_norm_{f32,f16,bf16}"});
LMK_REGISTER_OP({"fused_norm_add", "norm", "f32, f16 (f32 weight), bf16; optional weight, f32 scalar [1] or [D]",
                 true, true, "core-ops.md §5",
                 "fused_norm_add_{f32,bf16}, fused_norm_add_no_weight_bf16, fused_norm_add_scalar_f32"});
LMK_REGISTER_OP({"fused_residual_norm", "norm", "f32, f16 (f32 weight), bf16; optional sum_out, f32 scalar [1] or [D]",
                 true, true, "core-ops.md §5", "fused_residual_norm_{f32,bf16}, fused_residual_norm_scalar_f32"});

namespace {

using namespace detail;

DType weight_dtype(DType x) { return x == DType::bf16 ? DType::bf16 : DType::f32; }

// The normalized input: contiguous, rank >= 1, f32/f16/bf16. Returns the row length D.
int64_t check_rows(const char* op, const char* arg, const Tensor& x) {
  check_contiguous(op, arg, x);
  const int64_t d = row_length(op, arg, x);
  check_dtype(op, arg, x, {DType::f32, DType::f16, DType::bf16});
  return d;
}

// Another [R, D] tensor (input or output) in the dtype of x.
void check_like(const char* op, const char* arg, const Tensor& t, const char* x_arg, const Tensor& x) {
  check_contiguous(op, arg, t);
  check_dtype(op, arg, t, {x.dtype()});
  check_same_device(op, arg, t, x_arg, x);
  check_numel(op, arg, t, x.numel());
}

void check_weight(const char* op, const Tensor& w, const char* x_arg, const Tensor& x, int64_t dim) {
  check_contiguous(op, "weight", w);
  check_dtype(op, "weight", w, {weight_dtype(x.dtype())});
  check_same_device(op, "weight", w, x_arg, x);
  check_numel(op, "weight", w, dim);
}

void check_scalar(const char* op, const Tensor& s, const char* x_arg, const Tensor& x, int64_t dim) {
  check_contiguous(op, "scalar", s);
  check_dtype(op, "scalar", s, {DType::f32});
  check_same_device(op, "scalar", s, x_arg, x);
  if (s.numel() != 1 && s.numel() != dim)
    LMK_THROW(InvalidArgument, op, ": argument 'scalar' has ", s.numel(), " elements (shape ", shape_str(s.shape()),
              "), expected 1 or ", dim, " (the row length)");
}

void check_eps(const char* op, float eps) {
  if (std::isnan(eps) || eps < 0) LMK_THROW(InvalidArgument, op, ": argument 'eps' must be >= 0, got ", eps);
}

// An output must not overlap a tensor that every row reads (weight, scalar).
void check_not_shared(const char* op, const char* arg, const Tensor& out, const Tensor& w, const Tensor& scalar) {
  if (w.defined()) check_no_overlap(op, arg, out, "weight", w);
  if (scalar.defined()) check_no_overlap(op, arg, out, "scalar", scalar);
}

NormCall make_call(NormKind kind, const Tensor& x, int64_t dim, float eps) {
  NormCall c;
  c.kind = kind;
  c.dtype = x.dtype();
  c.x = x.data();
  c.rows = x.numel() / dim;
  c.dim = dim;
  c.eps = eps;
  return c;
}

void set_scalar(NormCall& c, const Tensor& scalar) {
  if (!scalar.defined()) return;
  c.scalar = scalar.data_as<const float>();
  c.scalar_per_col = scalar.numel() != 1;
}

void run(const NormCall& c, Device d, Stream& s) {
  if (d.is_cpu()) cpu::norm(c);
#ifdef LMK_WITH_CUDA
  else cuda::norm(c, s);
#endif
}

}  // namespace

void rms_norm(const Tensor& x, const Tensor& weight, const Tensor& out, float eps, Stream& s) {
  const char* op = "rms_norm";
  const int64_t dim = check_rows(op, "x", x);
  if (weight.defined()) check_weight(op, weight, "x", x, dim);
  check_like(op, "out", out, "x", x);
  check_eps(op, eps);
  check_same_or_disjoint(op, "out", out, "x", x);
  check_not_shared(op, "out", out, weight, Tensor());
  NormCall c = make_call(NormKind::plain, x, dim, eps);
  c.weight = weight.data();
  c.out = out.data();
  run(c, x.device(), s);
}

void rms_norm_mul(const Tensor& x, const Tensor& weight, const Tensor& scale, const Tensor& out, float eps,
                  Stream& s) {
  const char* op = "rms_norm_mul";
  const int64_t dim = check_rows(op, "x", x);
  check_weight(op, weight, "x", x, dim);
  check_like(op, "scale", scale, "x", x);
  check_like(op, "out", out, "x", x);
  check_eps(op, eps);
  check_same_or_disjoint(op, "out", out, "x", x);
  check_same_or_disjoint(op, "out", out, "scale", scale);
  check_not_shared(op, "out", out, weight, Tensor());
  NormCall c = make_call(NormKind::mul, x, dim, eps);
  c.weight = weight.data();
  c.scale = scale.data();
  c.out = out.data();
  run(c, x.device(), s);
}

void l2_norm(const Tensor& x, const Tensor& out, float eps, Stream& s) {
  const char* op = "l2_norm";
  const int64_t dim = check_rows(op, "x", x);
  check_like(op, "out", out, "x", x);
  check_eps(op, eps);
  check_same_or_disjoint(op, "out", out, "x", x);
  NormCall c = make_call(NormKind::plain, x, dim, eps);
  c.mean = false;
  c.out = out.data();
  run(c, x.device(), s);
}

void fused_norm_add(const Tensor& residual, const Tensor& input, const Tensor& weight, const Tensor& out, float eps,
                    const Tensor& scalar, Stream& s) {
  const char* op = "fused_norm_add";
  const int64_t dim = check_rows(op, "input", input);
  check_like(op, "residual", residual, "input", input);
  if (weight.defined()) check_weight(op, weight, "input", input, dim);
  check_like(op, "out", out, "input", input);
  check_eps(op, eps);
  if (scalar.defined()) check_scalar(op, scalar, "input", input, dim);
  check_same_or_disjoint(op, "out", out, "residual", residual);
  check_same_or_disjoint(op, "out", out, "input", input);
  check_not_shared(op, "out", out, weight, scalar);
  NormCall c = make_call(NormKind::add, input, dim, eps);
  c.residual = residual.data();
  c.weight = weight.data();
  set_scalar(c, scalar);
  c.out = out.data();
  run(c, input.device(), s);
}

void fused_residual_norm(const Tensor& residual, const Tensor& input, const Tensor& weight, const Tensor& normed_out,
                         const Tensor& sum_out, float eps, const Tensor& scalar, Stream& s) {
  const char* op = "fused_residual_norm";
  const int64_t dim = check_rows(op, "input", input);
  check_like(op, "residual", residual, "input", input);
  check_weight(op, weight, "input", input, dim);
  check_like(op, "normed_out", normed_out, "input", input);
  if (sum_out.defined()) check_like(op, "sum_out", sum_out, "input", input);
  check_eps(op, eps);
  if (scalar.defined()) check_scalar(op, scalar, "input", input, dim);
  check_same_or_disjoint(op, "normed_out", normed_out, "residual", residual);
  check_same_or_disjoint(op, "normed_out", normed_out, "input", input);
  check_not_shared(op, "normed_out", normed_out, weight, scalar);
  if (sum_out.defined()) {
    check_same_or_disjoint(op, "sum_out", sum_out, "residual", residual);
    check_same_or_disjoint(op, "sum_out", sum_out, "input", input);
    check_no_overlap(op, "sum_out", sum_out, "normed_out", normed_out);
    check_not_shared(op, "sum_out", sum_out, weight, scalar);
  }
  NormCall c = make_call(NormKind::residual, input, dim, eps);
  c.residual = residual.data();
  c.weight = weight.data();
  set_scalar(c, scalar);
  c.out = normed_out.data();
  c.sum_out = sum_out.data();
  run(c, input.device(), s);
}

}  // namespace lmk
