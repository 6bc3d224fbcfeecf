// libFuzzer target: the safetensors reader on arbitrary bytes (quant-formats.md §7).
#include <cstddef>
#include <cstdint>

#include "lmk/error.h"
#include "lmk/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    lmk::SafetensorsFile f = lmk::SafetensorsFile::parse(std::span<const uint8_t>(data, size));
    for (const auto& [k, v] : f.metadata()) (void)f.metadata(k);
    for (const auto& n : f.names()) {
      auto b = f.bytes(n);
      volatile uint8_t sink = 0;
      if (!b.empty()) sink = b[0] ^ b[b.size() - 1];
      (void)sink;
      if (f.info(n).dtype) (void)f.view(n).nbytes();
    }
  } catch (const lmk::Error&) {
  }
  return 0;
}
