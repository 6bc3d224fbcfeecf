#include "lmk/error.h"

namespace lmk {
const char* to_string(ErrorCode code) {
  switch (code) {
    case ErrorCode::InvalidArgument: return "InvalidArgument";
    case ErrorCode::Unsupported: return "Unsupported";
    case ErrorCode::OutOfMemory: return "OutOfMemory";
    case ErrorCode::Cuda: return "Cuda";
    case ErrorCode::Format: return "Format";
    case ErrorCode::Io: return "Io";
  }
  return "Unknown";
}
}  // namespace lmk
