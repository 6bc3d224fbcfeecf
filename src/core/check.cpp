#include "core/check.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <sstream>

namespace lmk::detail {

std::string shape_str(std::span<const int64_t> s) {
  std::ostringstream os;
  os << '[';
  for (size_t i = 0; i < s.size(); ++i) os << (i ? "," : "") << s[i];
  os << ']';
  return os.str();
}

int64_t mul_checked(const char* op, const char* what, int64_t a, int64_t b) {
  if (a < 0 || b < 0) LMK_THROW(InvalidArgument, op, ": negative ", what);
  if (a != 0 && b > std::numeric_limits<int64_t>::max() / a)
    LMK_THROW(InvalidArgument, op, ": ", what, " overflows int64 (", a, " * ", b, ")");
  return a * b;
}

void require_cuda(const char* op, Device d) {
  if (!d.is_cuda()) return;
  if (!built_with_cuda())
    LMK_THROW(Unsupported, op, ": tensors are on ", d.str(), " but lmkernels was built without CUDA");
  int n = cuda_device_count();
  if (d.index < 0 || d.index >= n)
    LMK_THROW(InvalidArgument, op, ": device ", d.str(), " does not exist (", n, " CUDA devices)");
}

void check_tensor(const char* op, const char* arg, const Tensor& t, bool allow_empty) {
  if (t.rank() == 0 && t.data() == nullptr)
    LMK_THROW(InvalidArgument, op, ": argument '", arg, "' is an undefined tensor");
  for (int d = 0; d < t.rank(); ++d) {
    if (t.size(d) == 0 && !allow_empty)
      LMK_THROW(InvalidArgument, op, ": argument '", arg, "' has a zero size in dim ", d, " (shape ",
                shape_str(t.shape()), ")");
  }
  int64_t n = 0;
  try {
    n = t.numel();
    (void)t.nbytes();
  } catch (const Error&) {
    LMK_THROW(InvalidArgument, op, ": argument '", arg, "' shape ", shape_str(t.shape()), " overflows int64 bytes");
  }
  if (n > 0 && t.data() == nullptr) LMK_THROW(InvalidArgument, op, ": argument '", arg, "' has a null data pointer");
  const auto& info = dtype_info(t.dtype());
  int64_t align = info.is_quantized ? 2 : info.block_bytes;  // quantized blocks hold f16 fields
  if (reinterpret_cast<uintptr_t>(t.data()) % uintptr_t(align) != 0)
    LMK_THROW(InvalidArgument, op, ": argument '", arg, "' pointer ", t.data(), " is not aligned to ", align,
              " bytes (", info.name, ")");
  require_cuda(op, t.device());
}

void check_contiguous(const char* op, const char* arg, const Tensor& t, bool allow_empty) {
  check_tensor(op, arg, t, allow_empty);
  if (!t.is_contiguous())
    LMK_THROW(InvalidArgument, op, ": argument '", arg, "' must be contiguous, got strides ",
              shape_str(t.strides()), " for shape ", shape_str(t.shape()));
}

void check_dtype(const char* op, const char* arg, const Tensor& t, std::initializer_list<DType> allowed) {
  if (std::find(allowed.begin(), allowed.end(), t.dtype()) != allowed.end()) return;
  std::ostringstream os;
  for (auto it = allowed.begin(); it != allowed.end(); ++it) os << (it == allowed.begin() ? "" : ", ") << name(*it);
  LMK_THROW(Unsupported, op, ": argument '", arg, "' has dtype ", name(t.dtype()), ", supported {", os.str(), "}");
}

void check_same_dtype(const char* op, const char* arg, const Tensor& t, const char* ref_arg, const Tensor& ref) {
  if (t.dtype() != ref.dtype())
    LMK_THROW(InvalidArgument, op, ": argument '", arg, "' has dtype ", name(t.dtype()), ", expected ",
              name(ref.dtype()), " (the dtype of '", ref_arg, "')");
}

void check_same_device(const char* op, const char* arg, const Tensor& t, const char* ref_arg, const Tensor& ref) {
  if (!(t.device() == ref.device()))
    LMK_THROW(InvalidArgument, op, ": argument '", arg, "' is on ", t.device().str(), " but '", ref_arg, "' is on ",
              ref.device().str());
}

void check_numel(const char* op, const char* arg, const Tensor& t, int64_t numel) {
  if (t.numel() != numel)
    LMK_THROW(InvalidArgument, op, ": argument '", arg, "' has ", t.numel(), " elements (shape ",
              shape_str(t.shape()), "), expected ", numel);
}

void check_rank(const char* op, const char* arg, const Tensor& t, int rank) {
  if (t.rank() != rank)
    LMK_THROW(InvalidArgument, op, ": argument '", arg, "' has rank ", t.rank(), " (shape ", shape_str(t.shape()),
              "), expected rank ", rank);
}

void check_shape(const char* op, const char* arg, const Tensor& t, std::initializer_list<int64_t> shape) {
  std::span<const int64_t> want(shape.begin(), shape.size());
  if (!std::equal(t.shape().begin(), t.shape().end(), want.begin(), want.end()))
    LMK_THROW(InvalidArgument, op, ": argument '", arg, "' has shape ", shape_str(t.shape()), ", expected ",
              shape_str(want));
}

void check_same_shape(const char* op, const char* arg, const Tensor& t, const char* ref_arg, const Tensor& ref) {
  if (!std::equal(t.shape().begin(), t.shape().end(), ref.shape().begin(), ref.shape().end()))
    LMK_THROW(InvalidArgument, op, ": argument '", arg, "' has shape ", shape_str(t.shape()), ", expected ",
              shape_str(ref.shape()), " (the shape of '", ref_arg, "')");
}

namespace {
bool overlaps(const Tensor& a, const Tensor& b) {
  if (!(a.device() == b.device())) return false;
  auto pa = reinterpret_cast<uintptr_t>(a.data()), pb = reinterpret_cast<uintptr_t>(b.data());
  auto ea = pa + uintptr_t(a.span_bytes()), eb = pb + uintptr_t(b.span_bytes());
  return pa < eb && pb < ea;
}
}  // namespace

void check_no_overlap(const char* op, const char* arg, const Tensor& t, const char* other_arg, const Tensor& other) {
  if (overlaps(t, other))
    LMK_THROW(InvalidArgument, op, ": argument '", arg, "' overlaps '", other_arg, "' in memory (aliasing is not allowed)");
}

void check_same_or_disjoint(const char* op, const char* arg, const Tensor& t, const char* other_arg,
                            const Tensor& other) {
  if (!overlaps(t, other)) return;
  if (t.data() == other.data() && t.span_bytes() == other.span_bytes() && t.is_contiguous() && other.is_contiguous())
    return;
  LMK_THROW(InvalidArgument, op, ": argument '", arg, "' partially overlaps '", other_arg,
            "' (only exact in-place aliasing is allowed)");
}

void check_finite(const char* op, const char* arg, double v) {
  if (!std::isfinite(v)) LMK_THROW(InvalidArgument, op, ": argument '", arg, "' must be finite, got ", v);
}

void check_operand(const char* op, const char* arg, const Tensor& t, std::initializer_list<DType> allowed,
                   const char* ref_arg, const Tensor& ref) {
  check_contiguous(op, arg, t);
  check_dtype(op, arg, t, allowed);
  check_same_device(op, arg, t, ref_arg, ref);
}

int64_t row_length(const char* op, const char* arg, const Tensor& t) {
  if (t.rank() < 1) LMK_THROW(InvalidArgument, op, ": argument '", arg, "' must have rank >= 1 (rows x columns)");
  return t.size(-1);
}

void check_rank_between(const char* op, const char* arg, const Tensor& t, int lo, int hi) {
  if (t.rank() < lo || t.rank() > hi)
    LMK_THROW(InvalidArgument, op, ": argument '", arg, "' has rank ", t.rank(), " (shape ", shape_str(t.shape()),
              "), expected rank ", lo, "..", hi);
}

}  // namespace lmk::detail
