#include "lmk/buffer.h"

#include <cstdlib>
#include <cstring>
#include <new>
#include <utility>

#include "core/check.h"
#include "lmk/error.h"
#ifdef LMK_WITH_CUDA
#include <cuda_runtime.h>
#include "cuda/check.h"
#endif

namespace lmk {

namespace {
constexpr int64_t kHostAlign = 256;
}

void* raw_alloc(int64_t bytes, Device device) {
  if (bytes <= 0) LMK_THROW(InvalidArgument, "alloc: size must be positive, got ", bytes, " bytes");
  if (device.is_cpu()) {
    if (bytes > INT64_MAX - kHostAlign) LMK_THROW(InvalidArgument, "alloc: size ", bytes, " overflows");
    int64_t rounded = (bytes + kHostAlign - 1) / kHostAlign * kHostAlign;
    void* p = std::aligned_alloc(kHostAlign, size_t(rounded));
    if (!p) LMK_THROW(OutOfMemory, "alloc: host allocation of ", bytes, " bytes failed");
    return p;
  }
  detail::require_cuda("alloc", device);
#ifdef LMK_WITH_CUDA
  void* p = nullptr;
  LMK_CUDA_CHECK(cudaSetDevice(device.index));
  cudaError_t e = cudaMalloc(&p, size_t(bytes));
  if (e != cudaSuccess) {
    (void)cudaGetLastError();
    LMK_THROW(OutOfMemory, "alloc: cudaMalloc of ", bytes, " bytes on ", device.str(), " failed: ",
              cudaGetErrorString(e));
  }
  return p;
#else
  return nullptr;
#endif
}

void raw_free(void* p, Device device) noexcept {
  if (!p) return;
  if (device.is_cpu()) {
    std::free(p);
    return;
  }
#ifdef LMK_WITH_CUDA
  cudaFree(p);
#endif
}

Buffer::Buffer(int64_t bytes, Device device) : bytes_(bytes), device_(device), capacity_(bytes) {
  data_ = raw_alloc(bytes, device);
  if (device.is_cpu()) {
    std::memset(data_, 0, size_t(bytes));
  } else {
#ifdef LMK_WITH_CUDA
    // The fill goes to the legacy stream; wait for it, so that work on any stream (non-blocking
    // ones do not order against the legacy stream) sees the zeros and never races them.
    cudaError_t e = cudaMemset(data_, 0, size_t(bytes));
    if (e == cudaSuccess) e = cudaStreamSynchronize(cudaStreamLegacy);
    if (e != cudaSuccess) {
      raw_free(data_, device);
      data_ = nullptr;
      LMK_CUDA_CHECK(e);
    }
#endif
  }
  const int64_t shape[1] = {bytes};
  tensor_ = Tensor(data_, DType::u8, shape, device);
}

Buffer::Buffer(DType dtype, std::span<const int64_t> shape, Device device) {
  Tensor probe(nullptr, dtype, shape, device);
  int64_t bytes = 0;
  try {
    bytes = probe.nbytes();
  } catch (const Error&) {
    LMK_THROW(InvalidArgument, "Buffer: shape ", detail::shape_str(shape), " of ", name(dtype), " overflows int64 bytes");
  }
  *this = Buffer(bytes, device);
  tensor_ = Tensor(data_, dtype, shape, device);
}

Buffer::Buffer(Buffer&& o) noexcept
    : data_(std::exchange(o.data_, nullptr)), bytes_(std::exchange(o.bytes_, 0)), device_(o.device_),
      tensor_(std::exchange(o.tensor_, Tensor{})), pool_(std::exchange(o.pool_, nullptr)),
      capacity_(std::exchange(o.capacity_, 0)) {}

Buffer& Buffer::operator=(Buffer&& o) noexcept {
  if (this != &o) {
    release();
    data_ = std::exchange(o.data_, nullptr);
    bytes_ = std::exchange(o.bytes_, 0);
    device_ = o.device_;
    tensor_ = std::exchange(o.tensor_, Tensor{});
    pool_ = std::exchange(o.pool_, nullptr);
    capacity_ = std::exchange(o.capacity_, 0);
  }
  return *this;
}

Buffer::~Buffer() { release(); }

void Buffer::release() {
  if (data_) {
    if (pool_) pool_->give_back(data_, capacity_);
    else raw_free(data_, device_);
  }
  data_ = nullptr;
  pool_ = nullptr;
  bytes_ = capacity_ = 0;
  tensor_ = Tensor{};
}

Tensor Buffer::view(DType dtype, std::span<const int64_t> shape) const {
  Tensor t(data_, dtype, shape, device_);
  if (t.nbytes() > bytes_)
    LMK_THROW(InvalidArgument, "Buffer::view: ", t.str(), " needs ", t.nbytes(), " bytes, buffer holds ", bytes_);
  return t;
}

// ---- BufferPool ---------------------------------------------------------------------------------

int64_t BufferPool::size_class(int64_t bytes) {
  if (bytes <= 0) LMK_THROW(InvalidArgument, "BufferPool: size must be positive, got ", bytes);
  if (bytes > (int64_t(1) << 62)) LMK_THROW(InvalidArgument, "BufferPool: size ", bytes, " too large");
  int64_t c = 256;
  while (c < bytes) c <<= 1;
  return c;
}

Buffer BufferPool::alloc(int64_t bytes) {
  int64_t cls = size_class(bytes);
  void* p = nullptr;
  {
    std::lock_guard lock(mu_);
    auto it = free_.find(cls);
    if (it != free_.end() && !it->second.empty()) {
      p = it->second.back();
      it->second.pop_back();
      stats_.hits++;
      stats_.bytes_cached -= cls;
    }
  }
  if (!p) {
    try {
      p = raw_alloc(cls, device_);
    } catch (const Error& e) {
      if (e.code() != ErrorCode::OutOfMemory) throw;
      trim();  // give cached blocks back and retry once
      p = raw_alloc(cls, device_);
    }
    std::lock_guard lock(mu_);
    stats_.misses++;
  }
  {
    std::lock_guard lock(mu_);
    stats_.bytes_in_use += cls;
    stats_.peak_bytes = std::max(stats_.peak_bytes, stats_.bytes_in_use + stats_.bytes_cached);
  }
  Buffer b;
  b.data_ = p;
  b.bytes_ = bytes;
  b.capacity_ = cls;
  b.device_ = device_;
  b.pool_ = this;
  const int64_t shape[1] = {bytes};
  b.tensor_ = Tensor(p, DType::u8, shape, device_);
  return b;
}

Buffer BufferPool::alloc(DType dtype, std::span<const int64_t> shape) {
  Tensor probe(nullptr, dtype, shape, device_);
  Buffer b = alloc(probe.nbytes());
  b.tensor_ = Tensor(b.data_, dtype, shape, device_);
  return b;
}

void BufferPool::give_back(void* p, int64_t capacity) noexcept {
  std::lock_guard lock(mu_);
  free_[capacity].push_back(p);
  stats_.bytes_in_use -= capacity;
  stats_.bytes_cached += capacity;
}

void BufferPool::trim() {
#ifdef LMK_WITH_CUDA
  if (device_.is_cuda()) cudaDeviceSynchronize();  // no queued kernel may still use a block
#endif
  std::lock_guard lock(mu_);
  for (auto& [cls, list] : free_) {
    for (void* p : list) raw_free(p, device_);
    stats_.bytes_cached -= cls * int64_t(list.size());
    list.clear();
  }
  free_.clear();
}

PoolStats BufferPool::stats() const {
  std::lock_guard lock(mu_);
  return stats_;
}

BufferPool::~BufferPool() { trim(); }

// ---- copies ---------------------------------------------------------------------------------------

void copy_bytes(void* dst, Device dst_dev, const void* src, Device src_dev, int64_t bytes, Stream& stream) {
  if (bytes < 0) LMK_THROW(InvalidArgument, "copy_bytes: negative size ", bytes);
  if (bytes == 0) return;
  if (!dst || !src) LMK_THROW(InvalidArgument, "copy_bytes: null pointer");
  if (dst_dev.is_cpu() && src_dev.is_cpu()) {
    std::memmove(dst, src, size_t(bytes));
    return;
  }
  detail::require_cuda("copy_bytes", dst_dev);
  detail::require_cuda("copy_bytes", src_dev);
#ifdef LMK_WITH_CUDA
  auto kind = dst_dev.is_cpu() ? cudaMemcpyDeviceToHost
              : src_dev.is_cpu() ? cudaMemcpyHostToDevice
                                 : cudaMemcpyDeviceToDevice;
  auto s = static_cast<cudaStream_t>(stream.handle());
  LMK_CUDA_CHECK(cudaMemcpyAsync(dst, src, size_t(bytes), kind, s));
  if (kind != cudaMemcpyDeviceToDevice) LMK_CUDA_CHECK(cudaStreamSynchronize(s));  // host memory is pageable
#endif
}

void copy_tensor(const Tensor& dst, const Tensor& src, Stream& stream) {
  detail::check_contiguous("copy_tensor", "dst", dst);
  detail::check_contiguous("copy_tensor", "src", src);
  detail::check_same_dtype("copy_tensor", "dst", dst, "src", src);
  detail::check_same_shape("copy_tensor", "dst", dst, "src", src);
  copy_bytes(dst.data(), dst.device(), src.data(), src.device(), src.nbytes(), stream);
}

}  // namespace lmk
