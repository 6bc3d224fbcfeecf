// Tensor: a non-owning view (pointer, dtype, device, shape of rank <= 8, element strides).
// Strides count elements (blocks for quantized types, whose innermost dim counts values).
#pragma once
#include <array>
#include <cstdint>
#include <initializer_list>
#include <span>
#include <string>

#include "lmk/device.h"
#include "lmk/dtype.h"

namespace lmk {

inline constexpr int kMaxRank = 8;

class Tensor {
 public:
  Tensor() = default;
  // Contiguous row-major view.
  Tensor(void* data, DType dtype, std::span<const int64_t> shape, Device device = Device::cpu());
  Tensor(void* data, DType dtype, std::initializer_list<int64_t> shape, Device device = Device::cpu())
      : Tensor(data, dtype, std::span<const int64_t>(shape.begin(), shape.size()), device) {}
  // Arbitrary strides (elements). Throws InvalidArgument for rank > 8 or negative sizes.
  Tensor(void* data, DType dtype, std::span<const int64_t> shape, std::span<const int64_t> strides,
         Device device = Device::cpu());

  void* data() const { return data_; }
  template <typename T> T* data_as() const { return static_cast<T*>(data_); }
  DType dtype() const { return dtype_; }
  Device device() const { return device_; }
  int rank() const { return rank_; }
  int64_t size(int d) const { return shape_[norm_dim(d)]; }
  int64_t stride(int d) const { return strides_[norm_dim(d)]; }
  std::span<const int64_t> shape() const { return {shape_.data(), size_t(rank_)}; }
  std::span<const int64_t> strides() const { return {strides_.data(), size_t(rank_)}; }
  int64_t numel() const;            // product of the shape (1 for rank 0)
  int64_t nbytes() const;           // bytes of numel() elements (whole blocks for quantized)
  bool is_contiguous() const;       // dense row-major
  bool defined() const { return data_ != nullptr; }
  // Bytes between the first and one past the last addressed element (for range checks).
  int64_t span_bytes() const;

  // Same memory, new contiguous shape (numel must match; the view must be contiguous).
  Tensor reshape(std::span<const int64_t> shape) const;
  Tensor reshape(std::initializer_list<int64_t> shape) const {
    return reshape(std::span<const int64_t>(shape.begin(), shape.size()));
  }
  std::string str() const;  // "bf16[16,4096] cuda:0"

 private:
  int norm_dim(int d) const;
  void* data_ = nullptr;
  DType dtype_ = DType::f32;
  Device device_{};
  int rank_ = 0;
  std::array<int64_t, kMaxRank> shape_{};
  std::array<int64_t, kMaxRank> strides_{};
};

}  // namespace lmk
