// Devices and streams. A Device names where memory lives (the host, or CUDA device i).
// A Stream orders work on a CUDA device; CPU work is synchronous and ignores streams.
#pragma once
#include <cstdint>
#include <string>

namespace lmk {

enum class DeviceType : uint8_t { CPU, CUDA };

struct Device {
  DeviceType type = DeviceType::CPU;
  int index = 0;
  static Device cpu() { return {DeviceType::CPU, 0}; }
  static Device cuda(int i = 0) { return {DeviceType::CUDA, i}; }
  bool is_cpu() const { return type == DeviceType::CPU; }
  bool is_cuda() const { return type == DeviceType::CUDA; }
  friend bool operator==(const Device&, const Device&) = default;
  std::string str() const;
};

struct DeviceProperties {
  std::string name;
  int sm_count = 0;
  int compute_major = 0, compute_minor = 0;
  int64_t l2_bytes = 0;
  int64_t global_memory_bytes = 0;
  int64_t max_smem_per_block_optin = 0;
};

bool cuda_available();      // built with CUDA and at least one device present
int cuda_device_count();    // 0 when built without CUDA or no device
DeviceProperties device_properties(Device d);
// The best device here: CUDA 0 when present, else the CPU.
Device default_device();
// Versions/architectures compiled into the library, e.g. "0.1.0" and "sm_90a".
const char* version();
const char* cuda_archs();   // "" when built without CUDA
bool built_with_cuda();

// A CUDA stream (owning or borrowed) bound to one device. The default-constructed Stream is the
// CUDA legacy default stream of the current device; Stream::create makes a non-blocking one.
class Stream {
 public:
  Stream() = default;
  static Stream create(Device d);
  static Stream wrap(void* cuda_stream, Device d);  // borrow a stream owned elsewhere
  Stream(Stream&& o) noexcept;
  Stream& operator=(Stream&& o) noexcept;
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;
  ~Stream();

  void* handle() const { return handle_; }  // cudaStream_t
  Device device() const { return device_; }
  void synchronize() const;                  // no-op for the CPU

 private:
  void* handle_ = nullptr;
  Device device_ = Device::cuda(0);
  bool owned_ = false;
};

// The process-wide default stream (CUDA legacy stream of device 0).
Stream& default_stream();

}  // namespace lmk
