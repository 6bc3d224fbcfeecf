// CPU backend helpers: dtype -> host storage type, f32 conversion with one RNE rounding.
#pragma once
#include "core/dispatch.h"
#include "lmk/half.h"

namespace lmk::cpu {

template <typename Fn>
decltype(auto) dispatch_float(const char* op, DType t, Fn&& fn) {
  return detail::dispatch_float<float, f16_t, bf16_t>(op, t, static_cast<Fn&&>(fn));
}

inline float to_f32(float x) { return x; }
inline float to_f32(f16_t x) { return float(x); }
inline float to_f32(bf16_t x) { return float(x); }
template <typename T> inline T from_f32(float x) { return T(x); }
template <> inline float from_f32<float>(float x) { return x; }

}  // namespace lmk::cpu
