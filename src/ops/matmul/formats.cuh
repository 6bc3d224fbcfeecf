// Per-format decoders of the GGML block formats for the matmul kernels, reading the raw GGUF
// blocks in place (quant-formats.md §2–§3).
//
// Every format is cut into 32-element sub-blocks (a whole block for the 32-element formats, one
// eighth of a super-block for K-quants and IQ4_XS). Four lanes (c = 0..3) share a sub-block and
// lane c takes elements 4c..4c+3 and 16+4c..16+4c+3, which is how the nibbles of the split-half
// formats fall out of one 32-bit word of codes. For each format:
//   Raw  load(m, row, sb, c)      the words lane c needs from sub-block sb of a row (2-byte
//                                 aligned fields read through the byte policy m: GlobalBytes
//                                 in place, SharedBytes from a staged copy);
//   void codes8(raw, sb, Dec8&)   the integer codes as bytes (lo: elements 4c..4c+3, hi:
//                                 16+4c..16+4c+3) and the scale / min term of each half, so that
//                                 w = sc * (code + kBias) + off exactly as the spec's f32 dequant
//                                 (scales are exact f32 products; off = -min or +m, kMin formats);
//                                 flags kSigned (s8 codes), kHalfScales (16-value scales).
// decode_f32 turns them into floats with the 2^23 trick: bits 0x4B0000bb are the float 2^23 + bb,
// so one byte permute and one exact subtraction give the integer (no int->float conversion).
#pragma once
#include "ops/matmul/common.cuh"
#include "ops/matmul/packed_layout.h"

namespace lmk::cuda::mm {

struct Dec {
  float v[8];
  float sc0, sc1;    // scale of v[0..3] and of v[4..7]
  float off0, off1;  // offset (min term) of each half; 0 where the format has none
};

// 2^23 + byte B of w, as a float.
template <int B>
__device__ __forceinline__ float byte_f(uint32_t w) {
  return __uint_as_float(__byte_perm(w, 0x4B000000u, 0x7440u | B));
}
// v[i] = byte i of w minus BIAS (exact).
template <int BIAS>
__device__ __forceinline__ void codes4(uint32_t w, float* v) {
  constexpr float kMagic = 8388608.0f + float(BIAS);
  v[0] = byte_f<0>(w) - kMagic;
  v[1] = byte_f<1>(w) - kMagic;
  v[2] = byte_f<2>(w) - kMagic;
  v[3] = byte_f<3>(w) - kMagic;
}

__device__ __forceinline__ uint32_t prmt(uint32_t a, uint32_t b, uint32_t sel) {
  uint32_t d;
  asm("prmt.b32 %0, %1, %2, %3;" : "=r"(d) : "r"(a), "r"(b), "r"(sel));
  return d;
}

// Four bit pairs (bits 2i, 2i + 1 of h, i < 4) moved to bits 4, 5 of byte i.
__device__ __forceinline__ uint32_t spread2_bit4(uint32_t h) {
  const uint32_t p = h & 0xFFu;
  return ((p & 0x3u) | (p & 0xCu) << 6 | (p & 0x30u) << 12 | (p & 0xC0u) << 18) << 4;
}
// Four bits b0..b3 (bits 0..3 of h) moved to bit 4 of bytes 0..3.
__device__ __forceinline__ uint32_t spread4_bit4(uint32_t h) { return ((h & 0xFu) * 0x00204081u & 0x01010101u) << 4; }

// ---- IQ4 codebook lookup -----------------------------------------------------------------------
// kvalues_iq4nl as signed bytes, four per word (the byte permutes below pick from them).
namespace iq4 {
constexpr int kValues[16] = {-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113};
constexpr uint32_t word(int i) {
  return uint32_t(kValues[4 * i] & 0xFF) | uint32_t(kValues[4 * i + 1] & 0xFF) << 8 |
         uint32_t(kValues[4 * i + 2] & 0xFF) << 16 | uint32_t(kValues[4 * i + 3] & 0xFF) << 24;
}
constexpr uint32_t kT0 = word(0), kT1 = word(1), kT2 = word(2), kT3 = word(3);
}  // namespace iq4



// Integer codes for the int8 tensor-core mat-vec (qmv.cuh): lo / hi hold the codes of elements
// 4c..4c+3 / 16+4c..16+4c+3 as four bytes each (unsigned when F::kSigned is false), so that
// w = sc * (code + F::kBias) + off exactly as the spec's f32 dequant (sc0/off0 for elements
// 0..15 of the sub-block, sc1/off1 for 16..31; they differ only for F::kHalfScales formats;
// off is the min term, always 0 unless F::kMin).
struct Dec8 {
  uint32_t lo, hi;
  float sc0, sc1, off0, off1;
};
__device__ __forceinline__ void scale8(Dec8& d, float sc, float off) {
  d.sc0 = d.sc1 = sc;
  d.off0 = d.off1 = off;
}
// IQ4 codebook values of the 8 nibbles of q as signed bytes (lo: low nibbles, hi: high).
__device__ __forceinline__ void iq4_codes8(uint32_t q, Dec8& d) {
  const uint32_t q4 = q << 4;
  const uint32_t s0 = q & 0x77777777u, s1 = s0 >> 16;  // prmt reads selector bits 0..15 only
  const uint32_t a0 = prmt(iq4::kT0, iq4::kT1, s0), b0 = prmt(iq4::kT2, iq4::kT3, s0);
  const uint32_t a1 = prmt(iq4::kT0, iq4::kT1, s1), b1 = prmt(iq4::kT2, iq4::kT3, s1);
  const uint32_t m0 = prmt(q4, q, 0xD9C8u), m1 = prmt(q4, q, 0xFBEAu);
  const uint32_t r0 = (a0 & ~m0) | (b0 & m0);  // [lo0, hi0, lo1, hi1]
  const uint32_t r1 = (a1 & ~m1) | (b1 & m1);  // [lo2, hi2, lo3, hi3]
  d.lo = prmt(r0, r1, 0x6420u);
  d.hi = prmt(r0, r1, 0x7531u);
}

// The f32 form of codes8 (the mma mat-mat kernel, qmm.cuh): v = code + kBias as exact floats,
// the scale of each half and the min term, so that w = sc * v + off.
template <class F, class I>
__device__ __forceinline__ void decode_f32(const typename F::Raw& r, I sb, Dec& d) {
  Dec8 c;
  F::codes8(r, int(sb & 7), c);
  // Signed bytes are shifted to unsigned (+128) first; codes4<B> subtracts B exactly.
  constexpr int kB = (F::kSigned ? 128 : 0) - F::kBias;
  const uint32_t flip = F::kSigned ? 0x80808080u : 0u;
  codes4<kB>(c.lo ^ flip, d.v);
  codes4<kB>(c.hi ^ flip, d.v + 4);
  d.sc0 = c.sc0;
  d.sc1 = c.sc1;
  d.off0 = c.off0;
  d.off1 = c.off1;
}

// ---- 32-element formats -------------------------------------------------------------------------

struct FQ4_0 {
  static constexpr DType kType = DType::q4_0;
  static constexpr int kBytes = 18;
  static constexpr int kSubBlocks = 1;  // 32-element sub-blocks per block
  static constexpr bool kSigned = false, kHalfScales = false;
  static constexpr int kBias = -8;
  static constexpr bool kMin = false;
  struct Raw {
    uint32_t q, d;
  };
  template <class B, class I>
  static __device__ __forceinline__ Raw load(const B& m, const uint8_t* row, I sb, int c) {
    const uint8_t* b = row + sb * kBytes;
    return {m.u32(b + 2 + 4 * c), m.u16(b)};
  }
  static __device__ __forceinline__ void codes8(const Raw& r, int, Dec8& d) {
    d.lo = r.q & 0x0F0F0F0Fu;
    d.hi = (r.q >> 4) & 0x0F0F0F0Fu;
    const float sc = f16_lo(r.d);
    scale8(d, sc, 0.0f);
  }
  // Sub-block s of a packed chunk (packed_layout.h): L = this row's lane words, H = its header.
  static __device__ __forceinline__ Raw packed(const uint32_t* L, const uint32_t* H, int s, int) {
    return {L[s], H[s / 2] >> (16 * (s & 1))};
  }
};

struct FIQ4_NL {
  static constexpr DType kType = DType::iq4_nl;
  static constexpr int kBytes = 18;
  static constexpr int kSubBlocks = 1;
  static constexpr bool kSigned = true, kHalfScales = false;
  static constexpr int kBias = 0;
  static constexpr bool kMin = false;
  using Raw = FQ4_0::Raw;
  template <class B, class I>
  static __device__ __forceinline__ Raw load(const B& m, const uint8_t* row, I sb, int c) {
    return FQ4_0::load(m, row, sb, c);
  }
  static __device__ __forceinline__ void codes8(const Raw& r, int, Dec8& d) {
    iq4_codes8(r.q, d);
    scale8(d, f16_lo(r.d), 0.0f);
  }
  static __device__ __forceinline__ Raw packed(const uint32_t* L, const uint32_t* H, int s, int c) {
    return FQ4_0::packed(L, H, s, c);
  }
};

struct FQ8_0 {
  static constexpr DType kType = DType::q8_0;
  static constexpr int kBytes = 34;
  static constexpr int kSubBlocks = 1;
  static constexpr bool kSigned = true, kHalfScales = false;
  static constexpr int kBias = 0;
  static constexpr bool kMin = false;
  struct Raw {
    uint32_t q0, q1, d;
  };
  template <class B, class I>
  static __device__ __forceinline__ Raw load(const B& m, const uint8_t* row, I sb, int c) {
    const uint8_t* b = row + sb * kBytes;
    return {m.u32(b + 2 + 4 * c), m.u32(b + 18 + 4 * c), m.u16(b)};
  }
  static __device__ __forceinline__ void codes8(const Raw& r, int, Dec8& d) {
    d.lo = r.q0;
    d.hi = r.q1;
    scale8(d, f16_lo(r.d), 0.0f);
  }
  static __device__ __forceinline__ Raw packed(const uint32_t* L, const uint32_t* H, int s, int) {
    return {L[2 * s], L[2 * s + 1], H[s / 2] >> (16 * (s & 1))};
  }
};

struct FQ5_0 {
  static constexpr DType kType = DType::q5_0;
  static constexpr int kBytes = 22;
  static constexpr int kSubBlocks = 1;
  static constexpr bool kSigned = false, kHalfScales = false;
  static constexpr int kBias = -16;
  static constexpr bool kMin = false;
  struct Raw {
    uint32_t q, qh, d;
    int c;
  };
  template <class B, class I>
  static __device__ __forceinline__ Raw load(const B& m, const uint8_t* row, I sb, int c) {
    const uint8_t* b = row + sb * kBytes;
    return {m.u32(b + 6 + 4 * c), m.u32(b + 2), m.u16(b), c};
  }
  static __device__ __forceinline__ void codes8(const Raw& r, int, Dec8& d) {
    d.lo = (r.q & 0x0F0F0F0Fu) | spread4_bit4(r.qh >> (4 * r.c));
    d.hi = ((r.q >> 4) & 0x0F0F0F0Fu) | spread4_bit4(r.qh >> (16 + 4 * r.c));
    const float sc = f16_lo(r.d);
    scale8(d, sc, 0.0f);
  }
  static __device__ __forceinline__ Raw packed(const uint32_t* L, const uint32_t* H, int s, int c) {
    return {L[s], H[4 + s], H[s / 2] >> (16 * (s & 1)), c};
  }
};

struct FQ5_1 {
  static constexpr DType kType = DType::q5_1;
  static constexpr int kBytes = 24;
  static constexpr int kSubBlocks = 1;
  static constexpr bool kSigned = false, kHalfScales = false;
  static constexpr int kBias = 0;
  static constexpr bool kMin = true;
  struct Raw {
    uint32_t q, qh, dm;
    int c;
  };
  template <class B, class I>
  static __device__ __forceinline__ Raw load(const B& m, const uint8_t* row, I sb, int c) {
    const uint8_t* b = row + sb * kBytes;
    return {m.u32(b + 8 + 4 * c), m.u32(b + 4), m.u32(b), c};
  }
  static __device__ __forceinline__ void codes8(const Raw& r, int, Dec8& d) {
    d.lo = (r.q & 0x0F0F0F0Fu) | spread4_bit4(r.qh >> (4 * r.c));
    d.hi = ((r.q >> 4) & 0x0F0F0F0Fu) | spread4_bit4(r.qh >> (16 + 4 * r.c));
    scale8(d, f16_lo(r.dm), f16_hi(r.dm));
  }
  static __device__ __forceinline__ Raw packed(const uint32_t* L, const uint32_t* H, int s, int c) {
    return {L[s], H[8 + s], H[s], c};
  }
};

// ---- 256-element formats (sub-block sb: super-block sb / 8, part i = sb % 8) -------------------------

// 6-bit scale and min of sub-block i from the 12 scale bytes s0 (0..3), s1 (4..7), s2 (8..11).
__device__ __forceinline__ void kquant_sm(uint32_t s0, uint32_t s1, uint32_t s2, int i, int& sc, int& mn) {
  const int j = i & 3, sh = 8 * j;
  const int b0 = int(s0 >> sh) & 0xFF, b1 = int(s1 >> sh) & 0xFF, b2 = int(s2 >> sh) & 0xFF;
  if (i < 4) {
    sc = b0 & 63;
    mn = b1 & 63;
  } else {
    sc = (b2 & 0x0F) | ((b0 >> 6) << 4);
    mn = (b2 >> 4) | ((b1 >> 6) << 4);
  }
}

struct FQ4_K {
  static constexpr DType kType = DType::q4_K;
  static constexpr int kBytes = 144;
  static constexpr int kSubBlocks = 8;
  static constexpr bool kSigned = false, kHalfScales = false;
  static constexpr int kBias = 0;
  static constexpr bool kMin = true;
  struct Raw {
    uint32_t q0, q1, hdr, s0, s1, s2;
  };
  template <class B, class I>
  static __device__ __forceinline__ Raw load(const B& m, const uint8_t* row, I sb, int c) {
    const uint8_t* b = row + (sb >> 3) * kBytes;
    const int p = int(sb & 7) >> 1;
    const uint8_t* q = b + 16 + 32 * p + 4 * c;
    return {m.u32(q), m.u32(q + 16), m.u32(b),
            m.u32(b + 4), m.u32(b + 8), m.u32(b + 12)};
  }
  static __device__ __forceinline__ void codes8(const Raw& r, int sb, Dec8& d) {
    const int i = int(sb & 7), sh = 4 * (i & 1);
    d.lo = (r.q0 >> sh) & 0x0F0F0F0Fu;
    d.hi = (r.q1 >> sh) & 0x0F0F0F0Fu;
    int sc, mn;
    kquant_sm(r.s0, r.s1, r.s2, i, sc, mn);
    scale8(d, f16_lo(r.hdr) * float(sc), -(f16_hi(r.hdr) * float(mn)));
  }
  static __device__ __forceinline__ Raw packed(const uint32_t* L, const uint32_t* H, int s, int) {
    return {L[2 * (s / 2)], L[2 * (s / 2) + 1], H[0], H[1], H[2], H[3]};
  }
};

struct FQ5_K {
  static constexpr DType kType = DType::q5_K;
  static constexpr int kBytes = 176;
  static constexpr int kSubBlocks = 8;
  static constexpr bool kSigned = false, kHalfScales = false;
  static constexpr int kBias = 0;
  static constexpr bool kMin = true;
  struct Raw {
    uint32_t q0, q1, h0, h1, hdr, s0, s1, s2;
  };
  template <class B, class I>
  static __device__ __forceinline__ Raw load(const B& m, const uint8_t* row, I sb, int c) {
    const uint8_t* b = row + (sb >> 3) * kBytes;
    const int p = int(sb & 7) >> 1;
    const uint8_t* q = b + 48 + 32 * p + 4 * c;
    const uint8_t* h = b + 16 + 4 * c;
    return {m.u32(q),     m.u32(q + 16), m.u32(h),     m.u32(h + 16),
            m.u32(b),     m.u32(b + 4),  m.u32(b + 8), m.u32(b + 12)};
  }
  static __device__ __forceinline__ void codes8(const Raw& r, int sb, Dec8& d) {
    const int i = int(sb & 7), sh = 4 * (i & 1);
    d.lo = ((r.q0 >> sh) & 0x0F0F0F0Fu) | ((r.h0 >> i) & 0x01010101u) << 4;
    d.hi = ((r.q1 >> sh) & 0x0F0F0F0Fu) | ((r.h1 >> i) & 0x01010101u) << 4;
    int sc, mn;
    kquant_sm(r.s0, r.s1, r.s2, i, sc, mn);
    scale8(d, f16_lo(r.hdr) * float(sc), -(f16_hi(r.hdr) * float(mn)));
  }
  static __device__ __forceinline__ Raw packed(const uint32_t* L, const uint32_t* H, int s, int) {
    return {L[2 * (s / 2)], L[2 * (s / 2) + 1], L[8], L[9], H[0], H[1], H[2], H[3]};
  }
};

struct FQ6_K {
  static constexpr DType kType = DType::q6_K;
  static constexpr int kBytes = 210;
  static constexpr int kSubBlocks = 8;
  static constexpr bool kSigned = false, kHalfScales = true;
  static constexpr int kBias = -32;
  static constexpr bool kMin = false;
  struct Raw {
    uint32_t l0, l1, h0, h1, sc, d;
  };
  // Sub-block i: half h = i / 4, quarter t = i % 4 (elements 128h + 32t .. +31).
  template <class B, class I>
  static __device__ __forceinline__ Raw load(const B& m, const uint8_t* row, I sb, int c) {
    const uint8_t* b = row + (sb >> 3) * kBytes;
    const int i = int(sb & 7), h = i >> 2, t = i & 3;
    const uint8_t* l = b + 64 * h + 32 * (t & 1) + 4 * c;
    const uint8_t* q = b + 128 + 32 * h + 4 * c;
    return {m.u32(l), m.u32(l + 16), m.u32(q), m.u32(q + 16),
            m.u16(b + 192 + 8 * h + 2 * t), m.u16(b + 208)};
  }
  static __device__ __forceinline__ void codes8(const Raw& r, int sb, Dec8& d) {
    const int t = int(sb & 3), ns = 4 * (t >> 1), hs = 2 * t;
    d.lo = ((r.l0 >> ns) & 0x0F0F0F0Fu) | ((r.h0 >> hs) & 0x03030303u) << 4;
    d.hi = ((r.l1 >> ns) & 0x0F0F0F0Fu) | ((r.h1 >> hs) & 0x03030303u) << 4;
    const float dd = f16_lo(r.d);
    d.sc0 = dd * float(int8_t(r.sc & 0xFF));
    d.sc1 = dd * float(int8_t((r.sc >> 8) & 0xFF));
    d.off0 = d.off1 = 0.0f;  // codes are stored + 32: kBias
  }
  static __device__ __forceinline__ Raw packed(const uint32_t* L, const uint32_t* H, int s, int) {
    const int h = s / 4, t = s % 4;
    return {L[4 * h + 2 * (t & 1)], L[4 * h + 2 * (t & 1) + 1], L[8 + 2 * h], L[9 + 2 * h],
            H[2 * h + t / 2] >> (16 * (t & 1)), H[4]};
  }
};

struct FQ2_K {
  static constexpr DType kType = DType::q2_K;
  static constexpr int kBytes = 84;
  static constexpr int kSubBlocks = 8;
  static constexpr bool kSigned = false, kHalfScales = true;
  static constexpr int kBias = 0;
  static constexpr bool kMin = true;
  struct Raw {
    uint32_t q0, q1, sc, dd;
  };
  // Sub-block i = 16-element groups 2i, 2i+1: codes at qs[32 (i/4) + {0, 16} + l] >> 2 (i % 4).
  template <class B, class I>
  static __device__ __forceinline__ Raw load(const B& m, const uint8_t* row, I sb, int c) {
    const uint8_t* b = row + (sb >> 3) * kBytes;
    const int i = int(sb & 7);
    const uint8_t* q = b + 16 + 32 * (i >> 2) + 4 * c;
    return {m.u32(q), m.u32(q + 16), m.u16(b + 2 * i), m.u32(b + 80)};
  }
  static __device__ __forceinline__ void codes8(const Raw& r, int sb, Dec8& d) {
    const int sh = 2 * int(sb & 3);
    d.lo = (r.q0 >> sh) & 0x03030303u;
    d.hi = (r.q1 >> sh) & 0x03030303u;
    const float dd = f16_lo(r.dd), dmin = f16_hi(r.dd);
    const int s0 = int(r.sc & 0xFF), s1 = int(r.sc >> 8) & 0xFF;
    d.sc0 = dd * float(s0 & 15);
    d.sc1 = dd * float(s1 & 15);
    d.off0 = -(dmin * float(s0 >> 4));
    d.off1 = -(dmin * float(s1 >> 4));
  }
  static __device__ __forceinline__ Raw packed(const uint32_t* L, const uint32_t* H, int s, int) {
    return {L[2 * (s / 4)], L[2 * (s / 4) + 1], H[s / 2] >> (16 * (s & 1)), H[4]};
  }
};

struct FIQ4_XS {
  static constexpr DType kType = DType::iq4_xs;
  static constexpr int kBytes = 136;
  static constexpr int kSubBlocks = 8;
  static constexpr bool kSigned = true, kHalfScales = false;
  static constexpr int kBias = 0;
  static constexpr bool kMin = false;
  struct Raw {
    uint32_t q, hdr, sl;
  };
  template <class B, class I>
  static __device__ __forceinline__ Raw load(const B& m, const uint8_t* row, I sb, int c) {
    const uint8_t* b = row + (sb >> 3) * kBytes;
    const int i = int(sb & 7);
    return {m.u32(b + 8 + 16 * i + 4 * c), m.u32(b), m.u32(b + 4)};
  }
  static __device__ __forceinline__ void codes8(const Raw& r, int sb, Dec8& d) {
    const int i = int(sb & 7);
    iq4_codes8(r.q, d);
    const int ls = int((r.sl >> (4 * i)) & 15u) | int((r.hdr >> (16 + 2 * i)) & 3u) << 4;
    scale8(d, f16_lo(r.hdr) * float(ls - 32), 0.0f);
  }
  static __device__ __forceinline__ Raw packed(const uint32_t* L, const uint32_t* H, int s, int) {
    return {L[s], H[0], H[1]};
  }
};

// ---- MLX affine weights, packed (pack_affine, include/lmk/affine.h) ---------------------------------
// Not a GGML block type: pack_affine writes MLX's codes and per-group (scale, bias) into the packed
// record layout of packed_layout.h, so the packed mat-vec and mat-mat run them like the GGML
// formats. Per row and 256-element chunk:
//   4-bit: 8 lane words, word s = sub-block s with q4_0's nibble order (byte i of lane c: element
//          4c + i in the low nibble, 16 + 4c + i in the high one);
//   6-bit: 12 lane words: 4-bit's eight for the low bits, then word 8 + s / 2 holding the top two
//          bits of the sub-block's codes (bits 16·(s % 2) + 2i: element 4c + i, + 8: 16 + 4c + i);
//   8-bit: 16 lane words, words 2s and 2s + 1 = elements 4c.. and 16 + 4c.. of sub-block s
//          (unsigned bytes up to 255: kWideCodes);
//   header: 8 >> GShift words (group size 32 << GShift), word j = the 16-bit scale (low half) and
//          bias (high half) of the chunk's group j (bf16 or f16 as given: exact).
// w = scale·code + bias is the kMin form sc·(code + kBias) + off.
template <int Bits, bool F16, int GShift>
struct FAffine {
  static_assert(Bits == 4 || Bits == 6 || Bits == 8, "packed affine weights: 4, 6 or 8 bits");
  static_assert(GShift >= 0 && GShift <= 2, "group sizes 32, 64, 128");
  static constexpr DType kType = DType::u32;  // no GGML type: the record shape is PackedShape's
  static constexpr int kLaneWords = Bits == 4 ? 8 : Bits == 6 ? 12 : 16, kHdrWords = 8 >> GShift;
  static constexpr bool kSigned = false, kHalfScales = false;
  static constexpr int kBias = 0;
  static constexpr bool kMin = true, kWideCodes = Bits == 8;
  struct Raw {
    uint32_t lo, hi, sb;
  };
  static __device__ __forceinline__ void codes8(const Raw& r, int, Dec8& d) {
    if constexpr (Bits == 4) {
      d.lo = r.lo & 0x0F0F0F0Fu;
      d.hi = (r.lo >> 4) & 0x0F0F0F0Fu;
    } else if constexpr (Bits == 6) {  // r.hi: the 16 top-bit pairs of this lane and sub-block
      d.lo = (r.lo & 0x0F0F0F0Fu) | spread2_bit4(r.hi);
      d.hi = ((r.lo >> 4) & 0x0F0F0F0Fu) | spread2_bit4(r.hi >> 8);
    } else {
      d.lo = r.lo;
      d.hi = r.hi;
    }
    if constexpr (F16) scale8(d, f16_lo(r.sb), f16_hi(r.sb));
    else scale8(d, __uint_as_float(r.sb << 16), __uint_as_float(r.sb & 0xFFFF0000u));
  }
  static __device__ __forceinline__ Raw packed(const uint32_t* L, const uint32_t* H, int s, int) {
    const uint32_t h = H[s >> GShift];
    if constexpr (Bits == 4) return {L[s], 0u, h};
    else if constexpr (Bits == 6) return {L[s], L[8 + s / 2] >> (16 * (s & 1)), h};
    else return {L[2 * s], L[2 * s + 1], h};
  }
};

// MLX affine weights as stored (row-major codes, separate scale and bias rows), read by the ring
// mat-vec (qmv_packed.cuh) without pack_affine: each chunk's 16 rows of codes and their scales
// and biases are copied into the ring slot as they are, and each lane takes its words from there
// (4-bit: word s·4 + t of the row, i.e. codes 8t.. of sub-block s, whose even codes land in the
// low nibbles and odd ones in the high nibbles, so x is staged with the matching permutation,
// split_x's perm4; 8-bit: words 8s + t and 8s + 4 + t, the packed order already). Decoded as
// FAffine. Bits 4 and 8, K % 256 == 0 (each chunk's scales are then 4-byte aligned).
template <int Bits, bool F16, int GShift>
struct FAffineRaw : FAffine<Bits, F16, GShift> {
  static_assert(Bits == 4 || Bits == 8, "raw affine rows: 4 or 8 bits");
  static constexpr int kChunkBytes = 256 * Bits / 8;   // one row's codes per chunk
  static constexpr int kRowStride = kChunkBytes + 16;  // padded: a quad's words of 8 rows hit distinct banks
  static constexpr int kGroups = 8 >> GShift;          // groups per chunk
  static constexpr int kHdrOffset = 16 * kRowStride;   // then scales [16][kGroups], biases [16][kGroups]
};
template <class F>
constexpr bool raw_affine() {
  if constexpr (requires { F::kHdrOffset; }) return true;
  else return false;
}

// GGML blocks as stored (no pack_ggml), read by the ring mat-vec (qmv_packed.cuh): each chunk's 16
// rows of raw blocks (packed::chunk_bytes: 8 blocks, or one super-block) are copied into the ring
// slot as the 16-byte granules around them, and the lanes read their fields there with the
// format's own load (SharedBytes, 2-byte aligned fields). Needs rows of a multiple of 16 bytes
// and K % 256 == 0; a chunk then starts kAlign-aligned in its row (16 for 144-, 176-, 192- and
// 272-byte chunks; q6_K 2, q2_K 4, iq4_xs 8), so its granules span at most kGranules. Rows sit
// kRowStride apart, an odd number of granules, so a lane quad's words of 8 rows fall in
// distinct banks.
template <class F>
struct FGgmlRaw : F {
  static constexpr int kChunkBytes = int(packed::chunk_bytes(F::kType));
  static constexpr int kAlign = kChunkBytes % 16 == 0 ? 16 : (kChunkBytes & -kChunkBytes);
  static constexpr int kGranules = ((16 - kAlign) % 16 + kChunkBytes + 15) / 16;
  static constexpr int kRowStride = 16 * (kGranules | 1);
};
template <class F>
constexpr bool raw_ggml() {
  if constexpr (requires { F::kGranules; }) return true;
  else return false;
}

// Unsigned codes that may reach 128 (8-bit affine): the mat-mat's bf16 byte trick needs codes < 128.
template <class F>
constexpr bool wide_codes() {
  if constexpr (requires { F::kWideCodes; }) return F::kWideCodes;
  else return false;
}

// Lane words, header words and bytes of one packed record (packed_layout.h) of format F.
template <class F>
struct PackedShape {
  static constexpr int LW = packed::lane_words(F::kType), HW = packed::hdr_words(F::kType);
  static constexpr int64_t R = 256 * int64_t(LW) + 64 * int64_t(HW);
};
template <int Bits, bool F16, int GShift>
struct PackedShape<FAffine<Bits, F16, GShift>> {
  static constexpr int LW = FAffine<Bits, F16, GShift>::kLaneWords, HW = FAffine<Bits, F16, GShift>::kHdrWords;
  static constexpr int64_t R = 256 * int64_t(LW) + 64 * int64_t(HW);
};
// Raw affine rows: R is the ring slot's weight part (padded code rows, then scales and biases).
template <int Bits, bool F16, int GShift>
struct PackedShape<FAffineRaw<Bits, F16, GShift>> {
  using F = FAffineRaw<Bits, F16, GShift>;
  static constexpr int LW = F::kLaneWords, HW = F::kHdrWords;
  static constexpr int64_t R = F::kHdrOffset + 2 * 16 * 2 * F::kGroups;
};

// Raw GGML rows: R is the ring slot's weight part (16 padded rows, + 16 bytes for the word past the
// last field that SharedBytes may read).
template <class F>
struct PackedShape<FGgmlRaw<F>> {
  static constexpr int LW = PackedShape<F>::LW, HW = PackedShape<F>::HW;
  static constexpr int64_t R = 16 * FGgmlRaw<F>::kRowStride + 16;
};

// Runtime dtype -> format struct.
template <typename Fn>
void visit_format(DType t, Fn&& fn) {
  switch (t) {
    case DType::q4_0: fn(FQ4_0{}); break;
    case DType::q5_0: fn(FQ5_0{}); break;
    case DType::q5_1: fn(FQ5_1{}); break;
    case DType::q8_0: fn(FQ8_0{}); break;
    case DType::iq4_nl: fn(FIQ4_NL{}); break;
    case DType::q2_K: fn(FQ2_K{}); break;
    case DType::q4_K: fn(FQ4_K{}); break;
    case DType::q5_K: fn(FQ5_K{}); break;
    case DType::q6_K: fn(FQ6_K{}); break;
    case DType::iq4_xs: fn(FIQ4_XS{}); break;
    default: LMK_THROW(Unsupported, "matmul: dtype ", name(t), " is not a GGML block format");
  }
}

}  // namespace lmk::cuda::mm
