#include "lmk/tensor.h"

#include <sstream>

#include "core/check.h"
#include "lmk/error.h"

namespace lmk {

namespace {
void set_contiguous_strides(int rank, const std::array<int64_t, kMaxRank>& shape,
                            std::array<int64_t, kMaxRank>& strides) {
  int64_t s = 1;
  for (int d = rank - 1; d >= 0; --d) {
    strides[d] = s;
    s *= shape[d] > 0 ? shape[d] : 1;
  }
}
}  // namespace

Tensor::Tensor(void* data, DType dtype, std::span<const int64_t> shape, Device device)
    : data_(data), dtype_(dtype), device_(device) {
  if (shape.size() > size_t(kMaxRank))
    LMK_THROW(InvalidArgument, "Tensor: rank ", shape.size(), " exceeds the maximum ", kMaxRank);
  rank_ = int(shape.size());
  for (int d = 0; d < rank_; ++d) {
    if (shape[d] < 0) LMK_THROW(InvalidArgument, "Tensor: negative size ", shape[d], " in dim ", d);
    shape_[d] = shape[d];
  }
  set_contiguous_strides(rank_, shape_, strides_);
  // Quantized types count values in the innermost dim; strides count blocks.
  if (is_quantized(dtype) && rank_ > 0) {
    int64_t be = dtype_info(dtype).block_elems;
    int64_t s = 1;
    for (int d = rank_ - 1; d >= 0; --d) {
      strides_[d] = s;
      s *= (d == rank_ - 1) ? (shape_[d] + be - 1) / be : std::max<int64_t>(shape_[d], 1);
    }
  }
}

Tensor::Tensor(void* data, DType dtype, std::span<const int64_t> shape, std::span<const int64_t> strides,
               Device device)
    : Tensor(data, dtype, shape, device) {
  if (strides.size() != shape.size())
    LMK_THROW(InvalidArgument, "Tensor: ", strides.size(), " strides for rank ", shape.size());
  for (int d = 0; d < rank_; ++d) strides_[d] = strides[d];
}

int Tensor::norm_dim(int d) const {
  int n = d < 0 ? d + rank_ : d;
  if (n < 0 || n >= rank_) LMK_THROW(InvalidArgument, "Tensor: dim ", d, " out of range for rank ", rank_);
  return n;
}

int64_t Tensor::numel() const {
  int64_t n = 1;
  for (int d = 0; d < rank_; ++d) n = detail::mul_checked("Tensor", "numel", n, shape_[d]);
  return n;
}

int64_t Tensor::nbytes() const {
  if (is_quantized(dtype_) && rank_ > 0) {
    int64_t rows = 1;
    for (int d = 0; d + 1 < rank_; ++d) rows = detail::mul_checked("Tensor", "rows", rows, shape_[d]);
    return detail::mul_checked("Tensor", "nbytes", rows, storage_bytes(dtype_, shape_[rank_ - 1]));
  }
  return storage_bytes(dtype_, numel());
}

bool Tensor::is_contiguous() const {
  int64_t s = 1;
  for (int d = rank_ - 1; d >= 0; --d) {
    if (shape_[d] != 1 && strides_[d] != s) return false;
    int64_t ext = shape_[d];
    if (d == rank_ - 1 && is_quantized(dtype_)) ext = (ext + dtype_info(dtype_).block_elems - 1) / dtype_info(dtype_).block_elems;
    s *= std::max<int64_t>(ext, 1);
  }
  return true;
}

int64_t Tensor::span_bytes() const {
  if (numel() == 0) return 0;
  if (is_contiguous()) return nbytes();
  int64_t last = 0;
  for (int d = 0; d < rank_; ++d) {
    int64_t ext = shape_[d];  // the innermost dim of a block type counts values, strides count blocks
    if (d == rank_ - 1 && is_quantized(dtype_)) ext = (ext + dtype_info(dtype_).block_elems - 1) / dtype_info(dtype_).block_elems;
    last += (ext - 1) * (strides_[d] > 0 ? strides_[d] : 0);
  }
  return (last + 1) * dtype_info(dtype_).block_bytes;
}

Tensor Tensor::reshape(std::span<const int64_t> shape) const {
  if (!is_contiguous()) LMK_THROW(InvalidArgument, "Tensor::reshape: view ", str(), " is not contiguous");
  Tensor t(data_, dtype_, shape, device_);
  if (t.numel() != numel())
    LMK_THROW(InvalidArgument, "Tensor::reshape: ", detail::shape_str(shape), " has ", t.numel(),
              " elements, view has ", numel());
  return t;
}

std::string Tensor::str() const {
  std::ostringstream os;
  os << name(dtype_) << detail::shape_str(shape()) << ' ' << device_.str();
  if (!is_contiguous()) os << " strides" << detail::shape_str(strides());
  return os.str();
}

}  // namespace lmk
