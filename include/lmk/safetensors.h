// safetensors reader (spec: quant-formats.md §7): an 8-byte little-endian header length, a
// UTF-8 JSON header (parsed by lmkernels' own strict parser: duplicate keys rejected), then
// the data buffer. The file is memory-mapped read-only; tensors are zero-copy views.
//
// Errors (lmk::Error) name the file, the byte offset where known, and the tensor:
//   ErrorCode::Format       malformed file: short file, header length 0 / > 10^8 / past the end,
//                           invalid UTF-8 or JSON, top level not an object, duplicate keys,
//                           __metadata__ not an object of strings, tensor entries without
//                           exactly dtype/shape/data_offsets of the right JSON types, negative
//                           or non-integer or overflowing dims/offsets, begin > end, size !=
//                           numel * element size, data past the end, overlaps, gaps (the data
//                           buffer must be tiled exactly, as the reference library requires),
//                           empty tensor names
//   ErrorCode::Unsupported  a dtype name outside the spec's list (naming the tensor); view() or
//                           upload() of a listed dtype lmkernels has no DType for (BOOL, U16,
//                           U64, F8_E5M2, F8_E4M3 — their bytes() still work)
//   ErrorCode::Io           open/stat/mmap failures
//   ErrorCode::InvalidArgument  lookup of a missing tensor ("tensor '<n>' not found")
//
// Whole MLX-quantized model directories (shards + quantization config, paired into
// QuantizedWeight structs): load_quantized_weights in lmk/weights.h.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "lmk/buffer.h"
#include "lmk/device.h"
#include "lmk/dtype.h"
#include "lmk/tensor.h"

namespace lmk {

struct SafetensorsTensorInfo {
  std::string name;
  std::string dtype_name;      // as in the file: "F32", "BF16", ...
  std::optional<DType> dtype;  // lmkernels' dtype, nullopt for BOOL/U16/U64/F8_*
  int64_t element_size = 0;
  std::vector<int64_t> shape;  // outermost first; [] = scalar
  uint64_t begin = 0, end = 0; // data_offsets, relative to the data buffer
  uint64_t file_offset = 0;    // 8 + header length + begin
  uint64_t nbytes() const { return end - begin; }
  int64_t numel() const;
  // Whether the data is aligned to its element size in the file (views of misaligned data are
  // rejected by ops; upload() copies into aligned memory).
  bool aligned() const { return element_size == 0 || file_offset % uint64_t(element_size) == 0; }
};

struct SafetensorsOptions {
  uint64_t max_header_bytes = 100000000;  // the reference library's cap (10^8)
};

class SafetensorsFile {
 public:
  static SafetensorsFile open(const std::string& path, const SafetensorsOptions& opts = {});
  // Parse bytes owned by the caller (they must outlive the object); `name` labels errors.
  static SafetensorsFile parse(std::span<const uint8_t> bytes, const SafetensorsOptions& opts = {},
                               const std::string& name = "<memory>");
  SafetensorsFile(SafetensorsFile&&) noexcept;
  SafetensorsFile& operator=(SafetensorsFile&&) noexcept;
  ~SafetensorsFile();

  const std::string& path() const;
  uint64_t header_size() const;  // N
  uint64_t data_offset() const;  // 8 + N
  std::span<const uint8_t> file_bytes() const;

  // __metadata__ entries in file order.
  const std::vector<std::pair<std::string, std::string>>& metadata() const;
  std::optional<std::string> metadata(std::string_view key) const;

  const std::vector<std::string>& names() const;  // header (JSON) order
  bool has_tensor(std::string_view name) const;
  const SafetensorsTensorInfo& info(std::string_view name) const;
  const std::vector<SafetensorsTensorInfo>& tensors() const;
  std::span<const uint8_t> bytes(std::string_view name) const;  // zero copy
  // A read-only CPU view into the mapping (Unsupported for dtypes without a DType).
  Tensor view(std::string_view name) const;
  // A copy on `device` (owning, aligned).
  Buffer upload(std::string_view name, Device device, Stream& stream = default_stream()) const;
  // Every tensor with data uploaded to `device`, keyed by name (mlx-native load_all); tensors
  // whose dtype lmkernels lacks come as u8 buffers of their raw bytes; zero-byte ones are left out.
  std::map<std::string, Buffer> load_all(Device device, Stream& stream = default_stream()) const;

 private:
  struct Impl;
  explicit SafetensorsFile(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Element size of a safetensors dtype name, 0 when unknown.
int64_t safetensors_dtype_size(std::string_view dtype_name);

}  // namespace lmk
