// GGUF reader (spec: quant-formats.md §6): versions 2 and 3, every metadata value type, tensor
// infos, alignment, data offset; the file is memory-mapped read-only and tensors are zero-copy
// views into the mapping.
//
// Hostile input never crashes the reader: every count and length is checked against the bytes
// that remain before anything is allocated from it, every size and offset is overflow-checked,
// and each failure throws lmk::Error naming the file, the byte offset and the key or tensor:
//   ErrorCode::Format       malformed file (truncated, bad magic/version, bad counts or
//                           lengths, invalid UTF-8, duplicate keys/names, nested arrays, unknown
//                           value types, unknown ggml type ids (>= 43 or ids ggml removed),
//                           misaligned or out-of-file or overlapping tensor data, bad alignment)
//   ErrorCode::Unsupported  a valid file lmkernels cannot use: GGUF v1, big-endian files,
//                           versions > 3, and ggml types outside the REQ/optional set of §1
//                           ("unsupported ggml type <id> (<name>) for tensor '<name>'")
//   ErrorCode::Io           open/stat/mmap failures
//   ErrorCode::InvalidArgument  a lookup of a missing key or tensor
//                           ("tensor '<n>' not found in GGUF file")
// Warnings (tensor names longer than ggml's 63 bytes, gaps between tensor data) are collected in
// warnings().
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <variant>
#include <vector>

#include "lmk/buffer.h"
#include "lmk/device.h"
#include "lmk/dtype.h"
#include "lmk/tensor.h"

namespace lmk {

enum class GgufType : uint32_t {
  UINT8 = 0, INT8 = 1, UINT16 = 2, INT16 = 3, UINT32 = 4, INT32 = 5, FLOAT32 = 6, BOOL = 7,
  STRING = 8, ARRAY = 9, UINT64 = 10, INT64 = 11, FLOAT64 = 12,
};
const char* to_string(GgufType t);

// An array value: zero-copy view of its elements in the mapping.
struct GgufArray {
  GgufType elem_type = GgufType::UINT8;
  uint64_t count = 0;
  std::span<const uint8_t> raw;            // count * element size bytes (numeric and bool arrays)
  std::vector<std::string_view> strings;   // STRING arrays
  // Element i widened: integers (bool as 0/1) to int64/uint64, floats to double. Throws
  // InvalidArgument for an index out of range or a type that does not convert.
  int64_t int_at(uint64_t i) const;
  uint64_t uint_at(uint64_t i) const;
  double float_at(uint64_t i) const;
  std::string_view string_at(uint64_t i) const;
};

// A metadata value. Strings view the mapping (valid while the GgufFile lives).
struct GgufValue {
  GgufType type = GgufType::UINT8;
  std::variant<uint64_t, int64_t, double, bool, std::string_view, GgufArray> v;
  std::string str() const;  // printable form; arrays abbreviated after `max_items`
  std::string str(size_t max_items) const;
};

struct GgufTensorInfo {
  std::string name;
  std::vector<int64_t> ne;     // GGUF order, innermost first (ne[0] = row length)
  std::vector<int64_t> shape;  // reversed: outermost first (lmk::Tensor order)
  uint32_t ggml_type = 0;
  DType dtype = DType::f32;
  uint64_t offset = 0;         // relative to data_start()
  uint64_t nbytes = 0;
  uint64_t file_offset = 0;    // data_start() + offset
  int64_t numel() const;
};

struct GgufOptions {
  uint64_t max_tensors = 100000;
  uint64_t max_kvs = 1000000;
  uint64_t max_string_bytes = 256ull << 20;  // mlx-native's cap
  uint64_t max_array_elems = 1ull << 30;     // ggml's cap
  bool strict_bool = true;                   // reject BOOL bytes other than 0/1
};

class GgufFile {
 public:
  // mmap the file read-only (MAP_PRIVATE) and validate the header, metadata and tensor infos.
  static GgufFile open(const std::string& path, const GgufOptions& opts = {});
  // Parse bytes owned by the caller (they must outlive the GgufFile); `name` labels errors.
  static GgufFile parse(std::span<const uint8_t> bytes, const GgufOptions& opts = {},
                        const std::string& name = "<memory>");

  GgufFile(GgufFile&&) noexcept;
  GgufFile& operator=(GgufFile&&) noexcept;
  ~GgufFile();

  const std::string& path() const;
  uint32_t version() const;
  uint64_t alignment() const;
  uint64_t data_start() const;
  uint64_t file_size() const;
  std::span<const uint8_t> bytes() const;  // the whole file
  const std::vector<std::string>& warnings() const;

  // ---- metadata ----
  size_t kv_count() const;
  const std::vector<std::string>& keys() const;  // file order
  const GgufValue* get(std::string_view key) const;  // nullptr when absent
  // Typed getters: nullopt when the key is absent; InvalidArgument when its type does not fit.
  std::optional<std::string_view> get_string(std::string_view key) const;
  std::optional<uint32_t> get_u32(std::string_view key) const;  // UINT8/16/32, INT32 >= 0
  std::optional<uint64_t> get_u64(std::string_view key) const;  // any unsigned, non-negative signed
  std::optional<int64_t> get_i64(std::string_view key) const;   // any integer that fits
  std::optional<float> get_f32(std::string_view key) const;     // FLOAT32, FLOAT64 narrowed
  std::optional<double> get_f64(std::string_view key) const;    // FLOAT32/64
  std::optional<bool> get_bool(std::string_view key) const;
  const GgufArray* get_array(std::string_view key) const;

  // ---- tensors ----
  size_t tensor_count() const;
  const std::vector<std::string>& names() const;  // file order
  bool has_tensor(std::string_view name) const;
  const GgufTensorInfo& info(std::string_view name) const;
  const std::vector<GgufTensorInfo>& tensors() const;  // file order
  // The tensor's bytes in the mapping (zero copy).
  std::span<const uint8_t> raw_bytes(std::string_view name) const;
  // A CPU Tensor viewing the mapping: dtype from the ggml id, shape = info.shape. The memory is
  // read-only (pass it only as an input). It may be misaligned when general.alignment is small;
  // ops reject misaligned views, upload() does not care.
  Tensor view(std::string_view name) const;
  // Dequantized / converted to f32 on the host (quant-formats.md §2/§3 formulas).
  // InvalidArgument for a zero-element tensor (as mlx-native).
  std::vector<float> load_f32(std::string_view name) const;
  // Copy of the tensor into a new owning Buffer on `device` (CPU or CUDA), shaped like view().
  Buffer upload(std::string_view name, Device device, Stream& stream = default_stream()) const;

 private:
  struct Impl;
  explicit GgufFile(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// ggml's name for a type id ("q4_K", "iq2_xs", ...), or "unknown" / "removed".
std::string_view ggml_type_name(uint32_t id);

}  // namespace lmk
