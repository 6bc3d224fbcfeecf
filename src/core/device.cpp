#include "lmk/device.h"

#include <utility>

#include "lmk/error.h"
#ifdef LMK_WITH_CUDA
#include <cuda_runtime.h>
#include "cuda/check.h"
#endif

namespace lmk {

std::string Device::str() const { return is_cpu() ? std::string("cpu") : "cuda:" + std::to_string(index); }

bool built_with_cuda() {
#ifdef LMK_WITH_CUDA
  return true;
#else
  return false;
#endif
}

const char* version() { return LMK_VERSION; }
const char* cuda_archs() {
#ifdef LMK_WITH_CUDA
  return LMK_CUDA_ARCHS_STR;
#else
  return "";
#endif
}

int cuda_device_count() {
#ifdef LMK_WITH_CUDA
  static const int count = [] {
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
      (void)cudaGetLastError();
      return 0;
    }
    return n;
  }();
  return count;
#else
  return 0;
#endif
}

bool cuda_available() { return cuda_device_count() > 0; }

Device default_device() { return cuda_available() ? Device::cuda(0) : Device::cpu(); }

DeviceProperties device_properties(Device d) {
  DeviceProperties p;
  if (d.is_cpu()) {
    p.name = "cpu";
    return p;
  }
#ifdef LMK_WITH_CUDA
  if (d.index < 0 || d.index >= cuda_device_count())
    LMK_THROW(InvalidArgument, "device_properties: no device ", d.str());
  cudaDeviceProp prop{};
  LMK_CUDA_CHECK(cudaGetDeviceProperties(&prop, d.index));
  p.name = prop.name;
  p.sm_count = prop.multiProcessorCount;
  p.compute_major = prop.major;
  p.compute_minor = prop.minor;
  p.l2_bytes = prop.l2CacheSize;
  p.global_memory_bytes = int64_t(prop.totalGlobalMem);
  p.max_smem_per_block_optin = int64_t(prop.sharedMemPerBlockOptin);
  return p;
#else
  LMK_THROW(Unsupported, "device_properties: built without CUDA");
#endif
}

Stream Stream::create(Device d) {
  Stream s;
  s.device_ = d;
  if (d.is_cpu()) return s;
#ifdef LMK_WITH_CUDA
  cudaStream_t h{};
  LMK_CUDA_CHECK(cudaSetDevice(d.index));
  LMK_CUDA_CHECK(cudaStreamCreateWithFlags(&h, cudaStreamNonBlocking));
  s.handle_ = h;
  s.owned_ = true;
  return s;
#else
  LMK_THROW(Unsupported, "Stream::create: built without CUDA");
#endif
}

Stream Stream::wrap(void* h, Device d) {
  Stream s;
  s.handle_ = h;
  s.device_ = d;
  return s;
}

Stream::Stream(Stream&& o) noexcept
    : handle_(std::exchange(o.handle_, nullptr)), device_(o.device_), owned_(std::exchange(o.owned_, false)) {}

Stream& Stream::operator=(Stream&& o) noexcept {
  if (this != &o) {
    this->~Stream();
    handle_ = std::exchange(o.handle_, nullptr);
    device_ = o.device_;
    owned_ = std::exchange(o.owned_, false);
  }
  return *this;
}

Stream::~Stream() {
#ifdef LMK_WITH_CUDA
  if (owned_ && handle_) cudaStreamDestroy(static_cast<cudaStream_t>(handle_));
#endif
  handle_ = nullptr;
  owned_ = false;
}

void Stream::synchronize() const {
#ifdef LMK_WITH_CUDA
  if (device_.is_cuda() && cuda_available()) LMK_CUDA_CHECK(cudaStreamSynchronize(static_cast<cudaStream_t>(handle_)));
#endif
}

Stream& default_stream() {
  static Stream s;
  return s;
}

}  // namespace lmk
