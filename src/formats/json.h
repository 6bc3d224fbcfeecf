// A small strict JSON pull parser (RFC 8259) for file headers: no allocation beyond decoded
// strings, a depth limit, exact positions in errors. Used by the safetensors reader.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>

namespace lmk::formats {

struct JsonError {
  size_t offset;
  std::string message;
};

class JsonReader {
 public:
  explicit JsonReader(std::string_view text, int max_depth = 64) : s_(text), max_depth_(max_depth) {}

  size_t pos() const { return pos_; }
  void skip_ws();
  // Next non-whitespace character (0 at the end of the text), not consumed.
  char peek();
  bool at_end() { return peek() == 0 && pos_ >= s_.size(); }
  void expect(char c);
  bool consume(char c);  // after whitespace
  // A string value (escapes decoded, UTF-8 checked, lone surrogates rejected).
  std::string string();
  // A non-negative integer literal without fraction or exponent that fits u64; anything else
  // (a valid JSON number included) throws with `what` in the message.
  uint64_t unsigned_integer(const char* what);
  // Validates and skips any JSON value.
  void skip_value();
  [[noreturn]] void fail(const std::string& msg) const { throw JsonError{pos_, msg}; }

 private:
  void skip_value(int depth);
  void number();
  unsigned hex4();
  std::string_view s_;
  size_t pos_ = 0;
  int max_depth_;
};

}  // namespace lmk::formats
