// Element and block types. Plain types have block_elems == 1; GGML quantized types store
// block_elems values in block_bytes bytes (spec: quant-formats.md §1).
#pragma once
#include <cstdint>
#include <optional>
#include <string_view>

namespace lmk {

enum class DType : uint8_t {
  f32, f16, bf16, f64, i8, i16, i32, i64, u8, u32,
  // GGML block formats (quant-formats.md). Values are ours; ggml ids come from ggml_type_id().
  q4_0, q5_0, q5_1, q8_0, iq4_nl, q2_K, q4_K, q5_K, q6_K, iq4_xs,
};
inline constexpr int kNumDTypes = static_cast<int>(DType::iq4_xs) + 1;

struct DTypeInfo {
  std::string_view name;
  int64_t block_elems;  // values per block (1 for plain types)
  int64_t block_bytes;  // bytes per block (element size for plain types)
  bool is_float;        // plain floating point (f32, f16, bf16, f64)
  bool is_quantized;    // GGML block format
  int ggml_id;          // ggml_type value, -1 where ggml has none
};

const DTypeInfo& dtype_info(DType t);
inline std::string_view name(DType t) { return dtype_info(t).name; }
inline int64_t element_size(DType t) { return dtype_info(t).block_bytes; }  // plain types only
inline bool is_quantized(DType t) { return dtype_info(t).is_quantized; }
std::optional<DType> dtype_from_name(std::string_view name);
std::optional<DType> dtype_from_ggml_id(int ggml_id);

// Bytes that n elements of t take; throws InvalidArgument when n is not a whole number of
// blocks, Unsupported never (every DType has a size), InvalidArgument on overflow.
int64_t storage_bytes(DType t, int64_t n);

}  // namespace lmk
