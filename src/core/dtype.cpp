#include "lmk/dtype.h"

#include <array>
#include <limits>

#include "lmk/error.h"

namespace lmk {

namespace {
// name, block_elems, block_bytes, is_float, is_quantized, ggml id
constexpr std::array<DTypeInfo, kNumDTypes> kInfo = {{
    {"f32", 1, 4, true, false, 0},     {"f16", 1, 2, true, false, 1},
    {"bf16", 1, 2, true, false, 30},   {"f64", 1, 8, true, false, 28},
    {"i8", 1, 1, false, false, 24},    {"i16", 1, 2, false, false, 25},
    {"i32", 1, 4, false, false, 26},   {"i64", 1, 8, false, false, 27},
    {"u8", 1, 1, false, false, -1},    {"u32", 1, 4, false, false, -1},
    {"q4_0", 32, 18, false, true, 2},  {"q5_0", 32, 22, false, true, 6},
    {"q5_1", 32, 24, false, true, 7},  {"q8_0", 32, 34, false, true, 8},
    {"iq4_nl", 32, 18, false, true, 20}, {"q2_K", 256, 84, false, true, 10},
    {"q4_K", 256, 144, false, true, 12}, {"q5_K", 256, 176, false, true, 13},
    {"q6_K", 256, 210, false, true, 14}, {"iq4_xs", 256, 136, false, true, 23},
}};
}  // namespace

const DTypeInfo& dtype_info(DType t) {
  auto i = static_cast<size_t>(t);
  if (i >= kInfo.size()) LMK_THROW(InvalidArgument, "dtype_info: invalid dtype value ", i);
  return kInfo[i];
}

std::optional<DType> dtype_from_name(std::string_view n) {
  for (int i = 0; i < kNumDTypes; ++i)
    if (kInfo[i].name == n) return static_cast<DType>(i);
  return std::nullopt;
}

std::optional<DType> dtype_from_ggml_id(int id) {
  for (int i = 0; i < kNumDTypes; ++i)
    if (kInfo[i].ggml_id == id && id >= 0) return static_cast<DType>(i);
  return std::nullopt;
}

int64_t storage_bytes(DType t, int64_t n) {
  const auto& info = dtype_info(t);
  if (n < 0) LMK_THROW(InvalidArgument, "storage_bytes: negative element count ", n);
  if (n % info.block_elems != 0)
    LMK_THROW(InvalidArgument, "storage_bytes: ", n, " elements is not a whole number of ", info.name,
              " blocks of ", info.block_elems);
  int64_t blocks = n / info.block_elems;
  if (blocks > std::numeric_limits<int64_t>::max() / info.block_bytes)
    LMK_THROW(InvalidArgument, "storage_bytes: ", n, " elements of ", info.name, " overflow int64 bytes");
  return blocks * info.block_bytes;
}

}  // namespace lmk
