// Buffer: an owning RAII allocation on the host (256-byte aligned) or a CUDA device,
// zero-filled on creation. BufferPool: a caching allocator with power-of-two size classes.
#pragma once
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <map>
#include <mutex>
#include <span>
#include <vector>

#include "lmk/device.h"
#include "lmk/tensor.h"

namespace lmk {

class BufferPool;

class Buffer {
 public:
  Buffer() = default;
  // Allocates bytes (> 0) on device, zero-filled. Throws OutOfMemory / InvalidArgument.
  Buffer(int64_t bytes, Device device);
  // Allocates room for a contiguous tensor of the given dtype and shape.
  Buffer(DType dtype, std::span<const int64_t> shape, Device device);
  Buffer(DType dtype, std::initializer_list<int64_t> shape, Device device)
      : Buffer(dtype, std::span<const int64_t>(shape.begin(), shape.size()), device) {}
  Buffer(Buffer&& o) noexcept;
  Buffer& operator=(Buffer&& o) noexcept;
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  ~Buffer();

  void* data() const { return data_; }
  int64_t bytes() const { return bytes_; }
  Device device() const { return device_; }
  // The tensor this buffer was created for (dtype/shape constructor), or a u8 view.
  const Tensor& tensor() const { return tensor_; }
  Tensor view(DType dtype, std::span<const int64_t> shape) const;
  Tensor view(DType dtype, std::initializer_list<int64_t> shape) const {
    return view(dtype, std::span<const int64_t>(shape.begin(), shape.size()));
  }
  operator const Tensor&() const { return tensor_; }

 private:
  friend class BufferPool;
  void release();
  void* data_ = nullptr;
  int64_t bytes_ = 0;
  Device device_{};
  Tensor tensor_{};
  BufferPool* pool_ = nullptr;  // when set, memory returns to the pool instead of being freed
  int64_t capacity_ = 0;        // bytes actually held (size class)
};

// Raw allocation helpers (aligned host memory or cudaMalloc); throw on failure.
void* raw_alloc(int64_t bytes, Device device);
void raw_free(void* p, Device device) noexcept;

struct PoolStats {
  int64_t hits = 0, misses = 0;          // allocations served from cache / from the system
  int64_t bytes_in_use = 0;              // capacity handed out and not yet returned
  int64_t bytes_cached = 0;              // capacity held in free lists
  int64_t peak_bytes = 0;                // high-water mark of in_use + cached
};

// Caching allocator for one device. Requests round up to a power of two (min 256 bytes) and
// reuse a free block of that class; reused memory keeps its old contents (unlike a fresh
// Buffer). For CUDA, a returned block may be reused by later work on any stream: the caller
// must not release a buffer while a kernel that uses it is still queued on another stream.
class BufferPool {
 public:
  explicit BufferPool(Device device) : device_(device) {}
  ~BufferPool();
  BufferPool(const BufferPool&) = delete;
  BufferPool& operator=(const BufferPool&) = delete;

  Buffer alloc(int64_t bytes);
  Buffer alloc(DType dtype, std::span<const int64_t> shape);
  Buffer alloc(DType dtype, std::initializer_list<int64_t> shape) {
    return alloc(dtype, std::span<const int64_t>(shape.begin(), shape.size()));
  }
  void trim();  // return all cached blocks to the system
  PoolStats stats() const;
  Device device() const { return device_; }
  static int64_t size_class(int64_t bytes);

 private:
  friend class Buffer;
  void give_back(void* p, int64_t capacity) noexcept;
  Device device_;
  mutable std::mutex mu_;
  std::map<int64_t, std::vector<void*>> free_;
  PoolStats stats_;
};

// Copies between host and device memory (or within one). dst and src must have the same
// dtype and numel and be contiguous. Asynchronous on `stream` for CUDA; synchronous otherwise.
void copy_bytes(void* dst, Device dst_dev, const void* src, Device src_dev, int64_t bytes,
                Stream& stream = default_stream());
void copy_tensor(const Tensor& dst, const Tensor& src, Stream& stream = default_stream());

}  // namespace lmk
