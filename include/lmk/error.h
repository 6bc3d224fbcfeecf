// lmk::Error — the one exception type of the library. Every rejected argument, failed
// allocation, CUDA error and malformed file surfaces as an Error with a code and a message
// naming the op, the argument, what was expected and what came.
#pragma once
#include <cstdint>
#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>

namespace lmk {

enum class ErrorCode : uint8_t { InvalidArgument, Unsupported, OutOfMemory, Cuda, Format, Io };

const char* to_string(ErrorCode code);

class Error : public std::runtime_error {
 public:
  Error(ErrorCode code, const std::string& message)
      : std::runtime_error(std::string(to_string(code)) + ": " + message), code_(code) {}
  ErrorCode code() const noexcept { return code_; }

 private:
  ErrorCode code_;
};

namespace detail {
template <typename... Args>
std::string cat(Args&&... args) {
  std::ostringstream os;
  (os << ... << std::forward<Args>(args));
  return os.str();
}
}  // namespace detail

// Throw an Error built from streamable pieces: LMK_THROW(InvalidArgument, "rms_norm: x ...").
#define LMK_THROW(code, ...) throw ::lmk::Error(::lmk::ErrorCode::code, ::lmk::detail::cat(__VA_ARGS__))
// Throw unless cond holds.
#define LMK_REQUIRE(cond, code, ...) \
  do {                               \
    if (!(cond)) LMK_THROW(code, __VA_ARGS__); \
  } while (0)

}  // namespace lmk
