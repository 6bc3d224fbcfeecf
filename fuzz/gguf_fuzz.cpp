// libFuzzer target: the GGUF reader on arbitrary bytes (quant-formats.md §6). Any input must
// either parse or raise lmk::Error; accessors of a parsed file must stay inside the input.
#include <cstddef>
#include <cstdint>

#include "lmk/error.h"
#include "lmk/gguf.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    lmk::GgufFile f = lmk::GgufFile::parse(std::span<const uint8_t>(data, size));
    for (const auto& k : f.keys()) {
      const lmk::GgufValue* v = f.get(k);
      (void)v->str(4);
      try {
        (void)f.get_u64(k);
      } catch (const lmk::Error&) {
      }
    }
    for (const auto& n : f.names()) {
      auto raw = f.raw_bytes(n);
      volatile uint8_t sink = 0;
      if (!raw.empty()) sink = raw[0] ^ raw[raw.size() - 1];
      (void)sink;
      lmk::Tensor t = f.view(n);
      (void)t.nbytes();
      if (f.info(n).numel() > 0 && f.info(n).nbytes <= (1u << 20)) (void)f.load_f32(n);
    }
  } catch (const lmk::Error&) {
  }
  return 0;
}
