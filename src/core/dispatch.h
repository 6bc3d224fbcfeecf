// Runtime dtype -> compile-time type, one small switch per use. The default branch raises
// Unsupported naming the op and the dtype.
#pragma once
#include "lmk/dtype.h"
#include "lmk/error.h"

namespace lmk::detail {

template <typename T>
struct TypeTag {
  using type = T;
};

// FloatTypes supplies the storage type for each float dtype (host: float/f16_t/bf16_t,
// device: float/__half/__nv_bfloat16).
template <typename F32, typename F16, typename BF16, typename Fn>
decltype(auto) dispatch_float(const char* op, DType t, Fn&& fn) {
  switch (t) {
    case DType::f32: return fn(TypeTag<F32>{});
    case DType::f16: return fn(TypeTag<F16>{});
    case DType::bf16: return fn(TypeTag<BF16>{});
    default: LMK_THROW(Unsupported, op, ": dtype ", name(t), " not supported, expected {f32, f16, bf16}");
  }
}

}  // namespace lmk::detail
