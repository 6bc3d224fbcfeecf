// Read-only memory mapping of a whole file (POSIX mmap, MAP_PRIVATE), shared by the GGUF and
// safetensors readers, plus small helpers for hostile-input parsing.
#pragma once
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

namespace lmk::formats {

class MappedFile {
 public:
  MappedFile() = default;
  // Throws ErrorCode::Io when the file cannot be opened, stat'ed or mapped. An empty file maps
  // to an empty span (the parsers then report it as truncated).
  explicit MappedFile(const std::string& path);
  MappedFile(MappedFile&& o) noexcept;
  MappedFile& operator=(MappedFile&& o) noexcept;
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  ~MappedFile();

  std::span<const uint8_t> bytes() const { return {data_, size_}; }

 private:
  void reset() noexcept;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
  void* map_ = nullptr;
};

// Whether s is well-formed UTF-8 (no overlong forms, no surrogates, nothing above U+10FFFF).
bool valid_utf8(std::string_view s);

// x rounded up to a multiple of a (a a power of two); false on overflow.
inline bool align_up(uint64_t x, uint64_t a, uint64_t& out) {
  const uint64_t r = x % a;
  if (r == 0) {
    out = x;
    return true;
  }
  if (x > UINT64_MAX - (a - r)) return false;
  out = x + (a - r);
  return true;
}

}  // namespace lmk::formats
