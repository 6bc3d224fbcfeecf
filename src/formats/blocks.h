// Quantized weight layouts shared by host C++ and CUDA (spec: quant-formats.md §2–§5).
//
// What is here
//   * packed block structs of every REQ GGML format (byte offsets as in the spec, sizes
//     static_asserted), f16 fields as uint16_t bit patterns;
//   * host/device conversions f16/bf16 <-> f32 (exact widening, RNE narrowing) and f32
//     arithmetic helpers that never contract into an FMA (mul_rn, add_rn, div_rn);
//   * per format a traits struct (Q4_0 … IQ4_XS) with
//       dequant(b, y)      the whole block, y[0 .. qk-1], f32, exactly the spec's formula;
//       elem(b, j)         element j of the block (same bits as dequant);
//       group16(b, g, q, scale, offset)
//                          16-element group g (elements 16g .. 16g+15): integer codes q[16]
//                          (int8) and f32 (scale, offset) with y = scale * q + offset for every
//                          format — the shape matmul kernels want (int8 dot products, then one
//                          scale and one offset per 16 values);
//   * the K-quant 6-bit scale/min unpacking, the IQ4_NL codebook;
//   * the bit-exact ggml reference quantizers for Q4_0 and Q8_0 (one block, sequential scan, so
//     CPU and GPU share the tie rule and every rounding step);
//   * MLX affine helpers: code k of a packed row, 8 codes at once, scale/bias loads in f16, bf16
//     or f32, and the dequantized value.
//
// Precision contract (quant-formats.md §3): every product in the dequant formulas is exact in
// f32, the only rounding is the final add/subtract of a min term, so any evaluation order — FMA
// or not — gives the same bits. group16's form `scale * q + offset` preserves this: `scale` is
// itself an exact product, `scale * q` is exact, and offset is -0.0f for formats without a min
// term (x + -0.0 == x for every x, signed zeros included), so fmaf(scale, q, offset) and
// add_rn(mul_rn(scale, q), offset) are both bit-identical to dequant().
//
// Alignment: block structs have alignment 2 (their f16 fields). Never cast a pointer that is
// only 1-aligned (GGUF general.alignment may be 1); wider fields (Q5_0/Q5_1 qh) are read byte by
// byte. Everything is little-endian (static_asserted on the host).
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "lmk/dtype.h"

#if defined(__CUDACC__)
#include <cuda_fp16.h>
#define LMK_HD __host__ __device__ __forceinline__
#else
#define LMK_HD inline
#endif

#if !defined(__CUDA_ARCH__)
#include <cmath>

#include "lmk/half.h"
#endif

#if !defined(__CUDA_ARCH__) && defined(__BYTE_ORDER__)
static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "lmkernels formats assume a little-endian host");
#endif

namespace lmk::blocks {

// ---- scalar helpers ------------------------------------------------------------------------------

LMK_HD float bits_to_f32(uint32_t u) {
#if defined(__CUDA_ARCH__)
  return __uint_as_float(u);
#else
  float f;
  std::memcpy(&f, &u, 4);
  return f;
#endif
}
LMK_HD uint32_t f32_to_bits(float f) {
#if defined(__CUDA_ARCH__)
  return __float_as_uint(f);
#else
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
#endif
}

// IEEE binary16 bits -> f32, exact (subnormals, ±inf, NaN kept).
LMK_HD float f16_to_f32(uint16_t h) {
#if defined(__CUDA_ARCH__)
  return __half2float(__ushort_as_half(h));
#else
  return ::lmk::f16_bits_to_f32(h);
#endif
}
// f32 -> binary16 bits, round to nearest even, overflow to ±inf.
LMK_HD uint16_t f32_to_f16(float f) {
#if defined(__CUDA_ARCH__)
  return __half_as_ushort(__float2half_rn(f));
#else
  return ::lmk::f32_to_f16_bits(f);
#endif
}
// bfloat16 bits -> f32 (exact).
LMK_HD float bf16_to_f32(uint16_t b) { return bits_to_f32(uint32_t(b) << 16); }

// f32 operations that are never fused with a neighbour (nvcc contracts a*b+c across statements
// unless told not to). On the host each is its own call, which no compiler contracts.
LMK_HD float mul_rn(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fmul_rn(a, b);
#else
  return a * b;
#endif
}
LMK_HD float add_rn(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fadd_rn(a, b);
#else
  return a + b;
#endif
}
// Correctly rounded IEEE division whatever -prec-div says.
LMK_HD float div_rn(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fdiv_rn(a, b);
#else
  return a / b;
#endif
}

// C roundf: halfway cases away from zero.
LMK_HD float round_away(float x) {
#if defined(__CUDA_ARCH__)
  return roundf(x);
#else
  return std::round(x);
#endif
}

// Order-independent min/max for reductions: NaN ignored (unless both are NaN), -0 < +0, so a
// sequential scan and any reduction tree give the same bits.
LMK_HD float min_total(float a, float b) {
  if (a != a) return b;
  if (b != b) return a;
  if (a == b) return (f32_to_bits(a) >> 31) ? a : b;
  return a < b ? a : b;
}
LMK_HD float max_total(float a, float b) {
  if (a != a) return b;
  if (b != b) return a;
  if (a == b) return (f32_to_bits(a) >> 31) ? b : a;
  return a > b ? a : b;
}

// Little-endian loads from possibly unaligned bytes.
LMK_HD uint32_t load_u16_le(const uint8_t* p) { return uint32_t(p[0]) | uint32_t(p[1]) << 8; }
LMK_HD uint32_t load_u24_le(const uint8_t* p) { return uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16; }
LMK_HD uint32_t load_u32_le(const uint8_t* p) {
  return uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 | uint32_t(p[3]) << 24;
}

// ---- IQ4_NL codebook -------------------------------------------------------------------------------

// kvalues_iq4nl (quant-formats.md §2), host table.
inline constexpr int8_t kIq4nlValues[16] = {-127, -104, -83, -65, -49, -35, -22, -10,
                                            1,    13,   25,  38,  53,  69,  89,  113};
namespace detail {
constexpr uint32_t pack4(int a, int b, int c, int d) {
  return uint32_t(uint8_t(a)) | uint32_t(uint8_t(b)) << 8 | uint32_t(uint8_t(c)) << 16 | uint32_t(uint8_t(d)) << 24;
}
}  // namespace detail
// The same 16 int8 values as four little-endian words (value i = byte i % 4 of word i / 4).
// Scalars, so usable in device code without a memory table (e.g. with __byte_perm).
inline constexpr uint32_t kIq4nlWord0 = detail::pack4(-127, -104, -83, -65);
inline constexpr uint32_t kIq4nlWord1 = detail::pack4(-49, -35, -22, -10);
inline constexpr uint32_t kIq4nlWord2 = detail::pack4(1, 13, 25, 38);
inline constexpr uint32_t kIq4nlWord3 = detail::pack4(53, 69, 89, 113);

// kvalues_iq4nl[i & 15], computed from registers on both host and device.
LMK_HD int iq4nl_value(uint32_t i) {
  i &= 15;
  const uint32_t w = i < 8 ? (i < 4 ? kIq4nlWord0 : kIq4nlWord1) : (i < 12 ? kIq4nlWord2 : kIq4nlWord3);
  return int(int8_t(uint8_t(w >> (8 * (i & 3)))));
}

// ---- K-quant 6-bit scale/min packing (Q4_K, Q5_K) ---------------------------------------------------

// Sub-block i (0..7) of the 12-byte `scales` field: 6-bit scale sc and 6-bit min mn.
LMK_HD void kquant_scale_min(const uint8_t* s, int i, int& sc, int& mn) {
  if (i < 4) {
    sc = s[i] & 63;
    mn = s[i + 4] & 63;
  } else {
    sc = (s[i + 4] & 0x0F) | ((s[i - 4] >> 6) << 4);
    mn = (s[i + 4] >> 4) | ((s[i] >> 6) << 4);
  }
}

// ---- block structs (packed; offsets of quant-formats.md §2/§3) --------------------------------------

struct block_q4_0 {  // 18 bytes / 32 values
  uint16_t d;        // f16
  uint8_t qs[16];    // byte j: element j (low nibble), element j+16 (high nibble)
};
struct block_q5_0 {  // 22 bytes / 32 values
  uint16_t d;
  uint8_t qh[4];     // u32 LE: bit j = 5th bit of element j
  uint8_t qs[16];
};
struct block_q5_1 {  // 24 bytes / 32 values
  uint16_t d;
  uint16_t m;        // f16 min
  uint8_t qh[4];
  uint8_t qs[16];
};
struct block_q8_0 {  // 34 bytes / 32 values
  uint16_t d;
  int8_t qs[32];
};
struct block_iq4_nl {  // 18 bytes / 32 values
  uint16_t d;
  uint8_t qs[16];      // nibbles index kIq4nlValues, split-half order as Q4_0
};
struct block_q2_K {    // 84 bytes / 256 values
  uint8_t scales[16];  // low nibble scale, high nibble min, one per 16-value group
  uint8_t qs[64];      // 2-bit codes
  uint16_t d;
  uint16_t dmin;
};
struct block_q4_K {    // 144 bytes / 256 values
  uint16_t d;
  uint16_t dmin;
  uint8_t scales[12];  // kquant_scale_min
  uint8_t qs[128];
};
struct block_q5_K {    // 176 bytes / 256 values
  uint16_t d;
  uint16_t dmin;
  uint8_t scales[12];
  uint8_t qh[32];
  uint8_t qs[128];
};
struct block_q6_K {    // 210 bytes / 256 values
  uint8_t ql[128];
  uint8_t qh[64];
  int8_t scales[16];
  uint16_t d;          // last
};
struct block_iq4_xs {  // 136 bytes / 256 values
  uint16_t d;
  uint16_t scales_h;   // 8 x 2-bit high parts
  uint8_t scales_l[4]; // 8 x 4-bit low parts
  uint8_t qs[128];
};

static_assert(sizeof(block_q4_0) == 18 && offsetof(block_q4_0, qs) == 2);
static_assert(sizeof(block_q5_0) == 22 && offsetof(block_q5_0, qh) == 2 && offsetof(block_q5_0, qs) == 6);
static_assert(sizeof(block_q5_1) == 24 && offsetof(block_q5_1, m) == 2 && offsetof(block_q5_1, qh) == 4 &&
              offsetof(block_q5_1, qs) == 8);
static_assert(sizeof(block_q8_0) == 34 && offsetof(block_q8_0, qs) == 2);
static_assert(sizeof(block_iq4_nl) == 18 && offsetof(block_iq4_nl, qs) == 2);
static_assert(sizeof(block_q2_K) == 84 && offsetof(block_q2_K, qs) == 16 && offsetof(block_q2_K, d) == 80 &&
              offsetof(block_q2_K, dmin) == 82);
static_assert(sizeof(block_q4_K) == 144 && offsetof(block_q4_K, dmin) == 2 && offsetof(block_q4_K, scales) == 4 &&
              offsetof(block_q4_K, qs) == 16);
static_assert(sizeof(block_q5_K) == 176 && offsetof(block_q5_K, scales) == 4 && offsetof(block_q5_K, qh) == 16 &&
              offsetof(block_q5_K, qs) == 48);
static_assert(sizeof(block_q6_K) == 210 && offsetof(block_q6_K, qh) == 128 && offsetof(block_q6_K, scales) == 192 &&
              offsetof(block_q6_K, d) == 208);
static_assert(sizeof(block_iq4_xs) == 136 && offsetof(block_iq4_xs, scales_h) == 2 &&
              offsetof(block_iq4_xs, scales_l) == 4 && offsetof(block_iq4_xs, qs) == 8);
static_assert(alignof(block_q4_0) == 2 && alignof(block_q6_K) == 2 && alignof(block_q2_K) == 2);

// ---- per-format traits --------------------------------------------------------------------------------
//
// Every traits struct T has: block, dtype, qk, block_bytes, groups (= qk / 16) and
//   static float elem(const block& b, int j);                         j in [0, qk)
//   static void  dequant(const block& b, float* y);                   y[0 .. qk-1]
//   static void  group16(const block& b, int g, int8_t q[16], float& scale, float& offset);
// with y[16g + i] == scale * q[i] + offset bit-exactly (see the header comment).

struct Q4_0 {
  using block = block_q4_0;
  static constexpr DType dtype = DType::q4_0;
  static constexpr int qk = 32, block_bytes = 18, groups = 2;
  static LMK_HD int code(const block& b, int j) { return j < 16 ? (b.qs[j] & 15) : (b.qs[j - 16] >> 4); }
  static LMK_HD float elem(const block& b, int j) { return mul_rn(float(code(b, j) - 8), f16_to_f32(b.d)); }
  static LMK_HD void dequant(const block& b, float* y) {
    const float d = f16_to_f32(b.d);
    for (int j = 0; j < 16; ++j) {
      y[j] = mul_rn(float((b.qs[j] & 15) - 8), d);
      y[j + 16] = mul_rn(float((b.qs[j] >> 4) - 8), d);
    }
  }
  static LMK_HD void group16(const block& b, int g, int8_t* q, float& scale, float& offset) {
    for (int i = 0; i < 16; ++i) q[i] = int8_t((g ? b.qs[i] >> 4 : b.qs[i] & 15) - 8);
    scale = f16_to_f32(b.d);
    offset = -0.0f;
  }
};

struct Q5_0 {
  using block = block_q5_0;
  static constexpr DType dtype = DType::q5_0;
  static constexpr int qk = 32, block_bytes = 22, groups = 2;
  static LMK_HD int code(const block& b, int j) {  // 0..31
    const uint32_t qh = load_u32_le(b.qh);
    const int lo = j < 16 ? (b.qs[j] & 15) : (b.qs[j - 16] >> 4);
    return lo | int((qh >> j) & 1) << 4;
  }
  static LMK_HD float elem(const block& b, int j) { return mul_rn(float(code(b, j) - 16), f16_to_f32(b.d)); }
  static LMK_HD void dequant(const block& b, float* y) {
    const float d = f16_to_f32(b.d);
    const uint32_t qh = load_u32_le(b.qh);
    for (int j = 0; j < 16; ++j) {
      const int x0 = (b.qs[j] & 15) | int((qh >> j) & 1) << 4;
      const int x1 = (b.qs[j] >> 4) | int((qh >> (j + 16)) & 1) << 4;
      y[j] = mul_rn(float(x0 - 16), d);
      y[j + 16] = mul_rn(float(x1 - 16), d);
    }
  }
  static LMK_HD void group16(const block& b, int g, int8_t* q, float& scale, float& offset) {
    const uint32_t qh = load_u32_le(b.qh) >> (16 * g);
    for (int i = 0; i < 16; ++i)
      q[i] = int8_t(((g ? b.qs[i] >> 4 : b.qs[i] & 15) | int((qh >> i) & 1) << 4) - 16);
    scale = f16_to_f32(b.d);
    offset = -0.0f;
  }
};

struct Q5_1 {
  using block = block_q5_1;
  static constexpr DType dtype = DType::q5_1;
  static constexpr int qk = 32, block_bytes = 24, groups = 2;
  static LMK_HD int code(const block& b, int j) {  // 0..31
    const uint32_t qh = load_u32_le(b.qh);
    const int lo = j < 16 ? (b.qs[j] & 15) : (b.qs[j - 16] >> 4);
    return lo | int((qh >> j) & 1) << 4;
  }
  static LMK_HD float elem(const block& b, int j) {
    return add_rn(mul_rn(float(code(b, j)), f16_to_f32(b.d)), f16_to_f32(b.m));
  }
  static LMK_HD void dequant(const block& b, float* y) {
    const float d = f16_to_f32(b.d), m = f16_to_f32(b.m);
    const uint32_t qh = load_u32_le(b.qh);
    for (int j = 0; j < 16; ++j) {
      const int x0 = (b.qs[j] & 15) | int((qh >> j) & 1) << 4;
      const int x1 = (b.qs[j] >> 4) | int((qh >> (j + 16)) & 1) << 4;
      y[j] = add_rn(mul_rn(float(x0), d), m);
      y[j + 16] = add_rn(mul_rn(float(x1), d), m);
    }
  }
  static LMK_HD void group16(const block& b, int g, int8_t* q, float& scale, float& offset) {
    const uint32_t qh = load_u32_le(b.qh) >> (16 * g);
    for (int i = 0; i < 16; ++i) q[i] = int8_t((g ? b.qs[i] >> 4 : b.qs[i] & 15) | int((qh >> i) & 1) << 4);
    scale = f16_to_f32(b.d);
    offset = f16_to_f32(b.m);
  }
};

struct Q8_0 {
  using block = block_q8_0;
  static constexpr DType dtype = DType::q8_0;
  static constexpr int qk = 32, block_bytes = 34, groups = 2;
  static LMK_HD int code(const block& b, int j) { return b.qs[j]; }
  static LMK_HD float elem(const block& b, int j) { return mul_rn(float(b.qs[j]), f16_to_f32(b.d)); }
  static LMK_HD void dequant(const block& b, float* y) {
    const float d = f16_to_f32(b.d);
    for (int j = 0; j < 32; ++j) y[j] = mul_rn(float(b.qs[j]), d);
  }
  static LMK_HD void group16(const block& b, int g, int8_t* q, float& scale, float& offset) {
    for (int i = 0; i < 16; ++i) q[i] = b.qs[16 * g + i];
    scale = f16_to_f32(b.d);
    offset = -0.0f;
  }
};

struct IQ4_NL {
  using block = block_iq4_nl;
  static constexpr DType dtype = DType::iq4_nl;
  static constexpr int qk = 32, block_bytes = 18, groups = 2;
  static LMK_HD int code(const block& b, int j) { return iq4nl_value(j < 16 ? b.qs[j] & 15 : b.qs[j - 16] >> 4); }
  static LMK_HD float elem(const block& b, int j) { return mul_rn(f16_to_f32(b.d), float(code(b, j))); }
  static LMK_HD void dequant(const block& b, float* y) {
    const float d = f16_to_f32(b.d);
    for (int j = 0; j < 16; ++j) {
      y[j] = mul_rn(d, float(iq4nl_value(b.qs[j] & 15)));
      y[j + 16] = mul_rn(d, float(iq4nl_value(b.qs[j] >> 4)));
    }
  }
  static LMK_HD void group16(const block& b, int g, int8_t* q, float& scale, float& offset) {
    for (int i = 0; i < 16; ++i) q[i] = int8_t(iq4nl_value(g ? b.qs[i] >> 4 : b.qs[i] & 15));
    scale = f16_to_f32(b.d);
    offset = -0.0f;
  }
};

struct Q2_K {
  using block = block_q2_K;
  static constexpr DType dtype = DType::q2_K;
  static constexpr int qk = 256, block_bytes = 84, groups = 16;
  // Code (0..3) of lane l of 16-value group g.
  static LMK_HD int code16(const block& b, int g, int l) {
    const int half = g / 8, gi = g % 8, shift = 2 * (gi / 2), off = 32 * half + 16 * (gi % 2);
    return (b.qs[off + l] >> shift) & 3;
  }
  static LMK_HD void group16(const block& b, int g, int8_t* q, float& scale, float& offset) {
    for (int l = 0; l < 16; ++l) q[l] = int8_t(code16(b, g, l));
    scale = mul_rn(f16_to_f32(b.d), float(b.scales[g] & 15));
    offset = -mul_rn(f16_to_f32(b.dmin), float(b.scales[g] >> 4));
  }
  static LMK_HD float elem(const block& b, int j) {
    const int g = j / 16;
    const float sc = mul_rn(f16_to_f32(b.d), float(b.scales[g] & 15));
    const float mn = mul_rn(f16_to_f32(b.dmin), float(b.scales[g] >> 4));
    return add_rn(mul_rn(sc, float(code16(b, g, j % 16))), -mn);
  }
  static LMK_HD void dequant(const block& b, float* y) {
    const float d = f16_to_f32(b.d), dmin = f16_to_f32(b.dmin);
    for (int g = 0; g < 16; ++g) {
      const float sc = mul_rn(d, float(b.scales[g] & 15));
      const float mn = mul_rn(dmin, float(b.scales[g] >> 4));
      for (int l = 0; l < 16; ++l) y[16 * g + l] = add_rn(mul_rn(sc, float(code16(b, g, l))), -mn);
    }
  }
};

// Q4_K and Q5_K: 8 sub-blocks of 32 values, each with a 6-bit scale and min (d·sc, dmin·mn, exact
// f32 products); value = scale·code - min. The two formats differ only in code() (F::code).
template <class F, class Block>
struct KQuantScaleMin {
  using block = Block;
  static constexpr int qk = 256, groups = 16;
  static LMK_HD void sub_scale_min(const block& b, int i, float& scale, float& min) {
    int sc, mn;
    kquant_scale_min(b.scales, i, sc, mn);
    scale = mul_rn(f16_to_f32(b.d), float(sc));
    min = mul_rn(f16_to_f32(b.dmin), float(mn));
  }
  static LMK_HD float elem(const block& b, int j) {
    float s, m;
    sub_scale_min(b, j / 32, s, m);
    return add_rn(mul_rn(s, float(F::code(b, j))), -m);
  }
  static LMK_HD void dequant(const block& b, float* y) {
    for (int i = 0; i < 8; ++i) {
      float s, m;
      sub_scale_min(b, i, s, m);
      for (int l = 0; l < 32; ++l) y[32 * i + l] = add_rn(mul_rn(s, float(F::code(b, 32 * i + l))), -m);
    }
  }
  static LMK_HD void group16(const block& b, int g, int8_t* q, float& scale, float& offset) {
    for (int i = 0; i < 16; ++i) q[i] = int8_t(F::code(b, 16 * g + i));
    float m;
    sub_scale_min(b, g / 2, scale, m);
    offset = -m;
  }
};

struct Q4_K : KQuantScaleMin<Q4_K, block_q4_K> {
  static constexpr DType dtype = DType::q4_K;
  static constexpr int block_bytes = 144;
  // Nibble of element j (0..15): pair p = j/64; low nibble for the first 32 of the pair.
  static LMK_HD int code(const block& b, int j) {
    const int p = j / 64, r = j % 64;
    const uint8_t v = b.qs[32 * p + (r & 31)];
    return r < 32 ? (v & 15) : (v >> 4);
  }
};

struct Q5_K : KQuantScaleMin<Q5_K, block_q5_K> {
  static constexpr DType dtype = DType::q5_K;
  static constexpr int block_bytes = 176;
  // 5-bit code (0..31) of element j: nibble as Q4_K plus bit (j/32) of qh[j % 32] times 16.
  static LMK_HD int code(const block& b, int j) {
    const int p = j / 64, r = j % 64, l = r & 31;
    const uint8_t v = b.qs[32 * p + l];
    const int nib = r < 32 ? (v & 15) : (v >> 4);
    return nib | ((b.qh[l] >> (j / 32)) & 1) << 4;
  }
};

struct Q6_K {
  using block = block_q6_K;
  static constexpr DType dtype = DType::q6_K;
  static constexpr int qk = 256, block_bytes = 210, groups = 16;
  // q - 32 (-32..31) of element j. Half h = j/128, quarter t = (j%128)/32, lane l = j%32.
  static LMK_HD int code(const block& b, int j) {
    const int h = j / 128, t = (j % 128) / 32, l = j % 32;
    const uint8_t lo = b.ql[64 * h + l + 32 * (t & 1)];
    const int nib = t < 2 ? (lo & 15) : (lo >> 4);
    const int hi = (b.qh[32 * h + l] >> (2 * t)) & 3;
    return (nib | hi << 4) - 32;
  }
  // The scale of 16-value group g is scales[g] (group g covers elements 16g .. 16g+15).
  static LMK_HD float group_scale(const block& b, int g) { return mul_rn(f16_to_f32(b.d), float(b.scales[g])); }
  static LMK_HD float elem(const block& b, int j) { return mul_rn(group_scale(b, j / 16), float(code(b, j))); }
  static LMK_HD void dequant(const block& b, float* y) {
    for (int j = 0; j < 256; ++j) y[j] = elem(b, j);
  }
  static LMK_HD void group16(const block& b, int g, int8_t* q, float& scale, float& offset) {
    for (int i = 0; i < 16; ++i) q[i] = int8_t(code(b, 16 * g + i));
    scale = group_scale(b, g);
    offset = -0.0f;
  }
};

struct IQ4_XS {
  using block = block_iq4_xs;
  static constexpr DType dtype = DType::iq4_xs;
  static constexpr int qk = 256, block_bytes = 136, groups = 16;
  // ls - 32 (-32..31) of 32-value sub-block s.
  static LMK_HD int sub_scale(const block& b, int s) {
    const int ls = ((b.scales_l[s / 2] >> (4 * (s % 2))) & 15) | ((b.scales_h >> (2 * s)) & 3) << 4;
    return ls - 32;
  }
  static LMK_HD int code(const block& b, int j) {  // the kvalue of element j
    const int s = j / 32, r = j % 32;
    const uint8_t v = b.qs[16 * s + (r & 15)];
    return iq4nl_value(r < 16 ? v & 15 : v >> 4);
  }
  static LMK_HD float elem(const block& b, int j) {
    const float dl = mul_rn(f16_to_f32(b.d), float(sub_scale(b, j / 32)));
    return mul_rn(dl, float(code(b, j)));
  }
  static LMK_HD void dequant(const block& b, float* y) {
    const float d = f16_to_f32(b.d);
    for (int s = 0; s < 8; ++s) {
      const float dl = mul_rn(d, float(sub_scale(b, s)));
      const uint8_t* q = b.qs + 16 * s;
      for (int j = 0; j < 16; ++j) {
        y[32 * s + j] = mul_rn(dl, float(iq4nl_value(q[j] & 15)));
        y[32 * s + 16 + j] = mul_rn(dl, float(iq4nl_value(q[j] >> 4)));
      }
    }
  }
  static LMK_HD void group16(const block& b, int g, int8_t* q, float& scale, float& offset) {
    const uint8_t* p = b.qs + 16 * (g / 2);
    for (int i = 0; i < 16; ++i) q[i] = int8_t(iq4nl_value(g % 2 ? p[i] >> 4 : p[i] & 15));
    scale = mul_rn(f16_to_f32(b.d), float(sub_scale(b, g / 2)));
    offset = -0.0f;
  }
};

// Free-function spellings (whole block).
LMK_HD void dequant_block_q4_0(const block_q4_0* b, float* y) { Q4_0::dequant(*b, y); }
LMK_HD void dequant_block_q5_0(const block_q5_0* b, float* y) { Q5_0::dequant(*b, y); }
LMK_HD void dequant_block_q5_1(const block_q5_1* b, float* y) { Q5_1::dequant(*b, y); }
LMK_HD void dequant_block_q8_0(const block_q8_0* b, float* y) { Q8_0::dequant(*b, y); }
LMK_HD void dequant_block_iq4_nl(const block_iq4_nl* b, float* y) { IQ4_NL::dequant(*b, y); }
LMK_HD void dequant_block_q2_K(const block_q2_K* b, float* y) { Q2_K::dequant(*b, y); }
LMK_HD void dequant_block_q4_K(const block_q4_K* b, float* y) { Q4_K::dequant(*b, y); }
LMK_HD void dequant_block_q5_K(const block_q5_K* b, float* y) { Q5_K::dequant(*b, y); }
LMK_HD void dequant_block_q6_K(const block_q6_K* b, float* y) { Q6_K::dequant(*b, y); }
LMK_HD void dequant_block_iq4_xs(const block_iq4_xs* b, float* y) { IQ4_XS::dequant(*b, y); }

template <typename T>
struct TraitsTag {
  using type = T;
};

// Runtime DType -> traits: fn(TraitsTag<Q4_0>{}) etc. Returns false (fn not called) for a
// dtype that is not a GGML block format. Host code.
template <typename Fn>
inline bool visit_block_format(DType t, Fn&& fn) {
  switch (t) {
    case DType::q4_0: fn(TraitsTag<Q4_0>{}); return true;
    case DType::q5_0: fn(TraitsTag<Q5_0>{}); return true;
    case DType::q5_1: fn(TraitsTag<Q5_1>{}); return true;
    case DType::q8_0: fn(TraitsTag<Q8_0>{}); return true;
    case DType::iq4_nl: fn(TraitsTag<IQ4_NL>{}); return true;
    case DType::q2_K: fn(TraitsTag<Q2_K>{}); return true;
    case DType::q4_K: fn(TraitsTag<Q4_K>{}); return true;
    case DType::q5_K: fn(TraitsTag<Q5_K>{}); return true;
    case DType::q6_K: fn(TraitsTag<Q6_K>{}); return true;
    case DType::iq4_xs: fn(TraitsTag<IQ4_XS>{}); return true;
    default: return false;
  }
}

// ---- reference quantizers (quant-formats.md §4, ggml bit-exact) ------------------------------------
// One block of 32 finite f32 values. NaN input is unsupported (documented); blocks whose scale
// overflows 1/d are clamped instead of hitting an undefined float->int conversion, identically on
// host and device.

// Q4_0: signed max with the lowest-index tie rule, d = max / -8, q = min(15, trunc(x*id + 8.5)).
LMK_HD void quantize_block_q4_0(const float* x, block_q4_0* out) {
  float amax = 0.0f, max = 0.0f;
  for (int j = 0; j < 32; ++j) {
    const float a = x[j] < 0.0f ? -x[j] : x[j];
    if (a > amax) {
      amax = a;
      max = x[j];
    }
  }
  const float d = div_rn(max, -8.0f);
  const float id = d != 0.0f ? div_rn(1.0f, d) : 0.0f;
  out->d = f32_to_f16(d);
  uint8_t q[32];
  for (int j = 0; j < 32; ++j) {
    const float v = add_rn(mul_rn(x[j], id), 8.5f);
    q[j] = uint8_t(v >= 15.0f ? 15 : v > 0.0f ? int(v) : 0);  // trunc; NaN -> 0
  }
  for (int j = 0; j < 16; ++j) out->qs[j] = uint8_t(q[j] | q[j + 16] << 4);
}

// Q8_0: d = amax / 127, q = roundf(x * id) (half away from zero).
LMK_HD void quantize_block_q8_0(const float* x, block_q8_0* out) {
  float amax = 0.0f;
  for (int j = 0; j < 32; ++j) {
    const float a = x[j] < 0.0f ? -x[j] : x[j];
    if (a > amax) amax = a;
  }
  const float d = div_rn(amax, 127.0f);
  const float id = d != 0.0f ? div_rn(1.0f, d) : 0.0f;
  out->d = f32_to_f16(d);
  for (int j = 0; j < 32; ++j) {
    const float t = round_away(mul_rn(x[j], id));
    out->qs[j] = int8_t(t >= 127.0f ? 127 : t <= -128.0f ? -128 : t == t ? int(t) : 0);
  }
}

// ---- MLX affine packing (quant-formats.md §5) ------------------------------------------------------
// A packed row is a little-endian bit stream: code k occupies bits [k*bits, (k+1)*bits) of the
// row's bytes. That one rule covers MLX's 4-bit and 8-bit u32 words and 6-bit byte triplets (and
// MLX's 2/3/5-bit layouts, which lmkernels rejects per the spec). Row bytes for K values:
// K*bits/8 (K a multiple of 32, since K % group_size == 0 and group_size >= 32).

inline constexpr int64_t affine_row_bytes(int bits, int64_t k) {
  return bits == 4 ? (k + 7) / 8 * 4 : bits == 8 ? (k + 3) / 4 * 4 : bits == 6 ? (k + 3) / 4 * 3 : (k * bits + 7) / 8;
}

// Code k of a row (any bits in 1..8).
LMK_HD uint32_t affine_code(const uint8_t* row, int64_t k, int bits) {
  const int64_t bit = k * bits;
  const uint8_t* p = row + (bit >> 3);
  const int sh = int(bit & 7);
  uint32_t v = p[0];
  if (sh + bits > 8) v |= uint32_t(p[1]) << 8;
  return (v >> sh) & ((1u << bits) - 1);
}

// Compile-time bits: code k of a row.
template <int Bits>
LMK_HD uint32_t affine_code(const uint8_t* row, int64_t k) {
  static_assert(Bits == 4 || Bits == 6 || Bits == 8, "lmkernels supports MLX affine bits 4, 6, 8");
  if constexpr (Bits == 8) {
    return row[k];
  } else if constexpr (Bits == 4) {
    return (row[k >> 1] >> (4 * (k & 1))) & 15u;
  } else {
    return (load_u24_le(row + 3 * (k >> 2)) >> (6 * (k & 3))) & 63u;
  }
}

// Eight consecutive codes k0 .. k0+7 (k0 a multiple of 8); p = row + k0*Bits/8, which is
// Bits-byte aligned relative to the row start (4 bytes for 4-bit, 6 for 6-bit, 8 for 8-bit).
template <int Bits>
LMK_HD void affine_unpack8(const uint8_t* p, uint32_t* q) {
  static_assert(Bits == 4 || Bits == 6 || Bits == 8, "lmkernels supports MLX affine bits 4, 6, 8");
  if constexpr (Bits == 8) {
    for (int i = 0; i < 8; ++i) q[i] = p[i];
  } else if constexpr (Bits == 4) {
    const uint32_t w = load_u32_le(p);
    for (int i = 0; i < 8; ++i) q[i] = (w >> (4 * i)) & 15u;
  } else {
    const uint32_t t0 = load_u24_le(p), t1 = load_u24_le(p + 3);
    for (int i = 0; i < 4; ++i) {
      q[i] = (t0 >> (6 * i)) & 63u;
      q[4 + i] = (t1 >> (6 * i)) & 63u;
    }
  }
}

// Scale/bias element i of a tensor of dtype f16, bf16 or f32 (any other dtype reads as f32;
// callers validate).
LMK_HD float affine_param(const void* base, int64_t i, DType t) {
  if (t == DType::f32) return static_cast<const float*>(base)[i];
  const uint16_t h = static_cast<const uint16_t*>(base)[i];
  return t == DType::bf16 ? bf16_to_f32(h) : f16_to_f32(h);
}

// w = scale * q + bias: one f32 multiply, one f32 add, never fused (bit-exact across backends;
// with bf16/f16 scales the product is exact anyway).
LMK_HD float affine_value(float scale, float bias, uint32_t q) { return add_rn(mul_rn(scale, float(q)), bias); }

}  // namespace lmk::blocks
