// Host-side 16-bit floats: bit-exact IEEE binary16 and bfloat16 conversions with
// round-to-nearest-even, NaN preserved (quiet), overflow to ±inf. Used by the CPU backend and
// the test kit; CUDA code uses __half / __nv_bfloat16 with the same rounding.
#pragma once
#include <bit>
#include <cstdint>
#include <cstring>

namespace lmk {

inline float f16_bits_to_f32(uint16_t h) {
  uint32_t sign = uint32_t(h & 0x8000) << 16;
  uint32_t exp = (h >> 10) & 0x1f, man = h & 0x3ff;
  uint32_t bits;
  if (exp == 0) {
    if (man == 0) {
      bits = sign;
    } else {  // subnormal: normalise
      int e = -1;
      do { man <<= 1; ++e; } while (!(man & 0x400));
      bits = sign | uint32_t(127 - 15 - e) << 23 | (man & 0x3ff) << 13;
    }
  } else if (exp == 31) {
    bits = sign | 0x7f800000u | man << 13 | (man ? 0x400000u : 0);
  } else {
    bits = sign | (exp + 127 - 15) << 23 | man << 13;
  }
  return std::bit_cast<float>(bits);
}

inline uint16_t f32_to_f16_bits(float f) {
  uint32_t x = std::bit_cast<uint32_t>(f);
  uint16_t sign = uint16_t((x >> 16) & 0x8000);
  uint32_t ax = x & 0x7fffffffu;
  if (ax >= 0x7f800000u) return uint16_t(sign | 0x7c00 | (ax > 0x7f800000u ? 0x200 | ((ax >> 13) & 0x3ff) : 0));
  if (ax >= 0x477ff000u) return uint16_t(sign | 0x7c00);  // rounds to >= 65520 -> inf
  if (ax < 0x38800000u) {                                   // below 2^-14: subnormal or zero
    if (ax < 0x33000000u) return sign;                      // below half the smallest subnormal
    uint32_t man = (ax & 0x7fffff) | 0x800000;
    uint32_t full = 126 - (ax >> 23);                       // value / 2^-24 = man >> full, full in 14..24
    uint32_t r = man >> full, rem = man & ((1u << full) - 1), half = 1u << (full - 1);
    if (rem > half || (rem == half && (r & 1))) ++r;
    return uint16_t(sign | r);
  }
  uint32_t r = ((ax >> 13) - (112u << 10));  // rebias exponent
  uint32_t rem = ax & 0x1fff;
  if (rem > 0x1000 || (rem == 0x1000 && (r & 1))) ++r;
  return uint16_t(sign | r);
}

inline float bf16_bits_to_f32(uint16_t b) { return std::bit_cast<float>(uint32_t(b) << 16); }

inline uint16_t f32_to_bf16_bits(float f) {
  uint32_t x = std::bit_cast<uint32_t>(f);
  if ((x & 0x7fffffffu) > 0x7f800000u) return uint16_t((x >> 16) | 0x40);  // quiet NaN
  x += 0x7fffu + ((x >> 16) & 1);
  return uint16_t(x >> 16);
}

// Storage types with explicit conversions; arithmetic happens in float.
struct f16_t {
  uint16_t bits;
  f16_t() = default;
  explicit f16_t(float f) : bits(f32_to_f16_bits(f)) {}
  explicit operator float() const { return f16_bits_to_f32(bits); }
  static f16_t from_bits(uint16_t b) { f16_t h; h.bits = b; return h; }
};
struct bf16_t {
  uint16_t bits;
  bf16_t() = default;
  explicit bf16_t(float f) : bits(f32_to_bf16_bits(f)) {}
  explicit operator float() const { return bf16_bits_to_f32(bits); }
  static bf16_t from_bits(uint16_t b) { bf16_t h; h.bits = b; return h; }
};
static_assert(sizeof(f16_t) == 2 && sizeof(bf16_t) == 2);

}  // namespace lmk
