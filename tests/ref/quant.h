// References for the quant family, written from quant-formats.md §2–§5 and
// matmul-moe-sampling.md §1 — independent of src/formats/blocks.h (byte offsets spelled out
// again from the spec tables, values in f64).
//
// Dequant values are exact in f64 (every product has <= 23 significant bits and every term is a
// multiple of 2^-24 below 2^27), so rounding the f64 result once to f32 gives the spec's f32
// value; dequant_f32() returns that rounding.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include "lmk/dtype.h"
#include "lmk/half.h"

namespace lmk::ref {

// IEEE binary16 -> double, from the bit fields.
inline double f16(uint16_t h) {
  const int sign = h >> 15, e = (h >> 10) & 31, m = h & 1023;
  double v;
  if (e == 0) v = std::ldexp(double(m), -24);
  else if (e == 31) v = m ? NAN : INFINITY;
  else v = std::ldexp(1024.0 + m, e - 25);
  return sign ? -v : v;
}
inline double bf16(uint16_t b) {
  uint32_t u = uint32_t(b) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
inline uint16_t rd16(const uint8_t* p) { return uint16_t(p[0] | p[1] << 8); }
inline uint32_t rd32(const uint8_t* p) { return uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 | uint32_t(p[3]) << 24; }

inline constexpr int kIq4nl[16] = {-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113};

struct Format {
  int qk, bytes;
};
inline Format format_of(DType t) {
  switch (t) {
    case DType::q4_0: return {32, 18};
    case DType::q5_0: return {32, 22};
    case DType::q5_1: return {32, 24};
    case DType::q8_0: return {32, 34};
    case DType::iq4_nl: return {32, 18};
    case DType::q2_K: return {256, 84};
    case DType::q4_K: return {256, 144};
    case DType::q5_K: return {256, 176};
    case DType::q6_K: return {256, 210};
    case DType::iq4_xs: return {256, 136};
    default: return {1, 0};
  }
}

// K-quant 6-bit scale/min of sub-block i from the 12 bytes s.
inline void scale_min_6bit(const uint8_t* s, int i, int& sc, int& mn) {
  if (i < 4) {
    sc = s[i] & 63;
    mn = s[i + 4] & 63;
  } else {
    sc = (s[i + 4] & 0x0F) | ((s[i - 4] >> 6) << 4);
    mn = (s[i + 4] >> 4) | ((s[i] >> 6) << 4);
  }
}

// Formats whose weights carry a min term (w = scale·code + offset); the others are scale·code.
inline bool has_min(DType t) {
  return t == DType::q5_1 || t == DType::q4_K || t == DType::q5_K || t == DType::q2_K;
}

// One block of `t` at p as exact terms: w[i] = sq[i] + off[i], sq = scale·code (the code with its
// bias, e.g. q - 8), off = the min term (0 unless has_min(t)). The matmul references use the
// split for the spec's offset-aware error normaliser.
inline void dequant_terms(DType t, const uint8_t* p, double* sq, double* off) {
  const Format f = format_of(t);
  for (int i = 0; i < f.qk; ++i) off[i] = 0.0;
  switch (t) {
    case DType::q4_0: {
      const double d = f16(rd16(p));
      for (int j = 0; j < 16; ++j) {
        sq[j] = ((p[2 + j] & 0x0F) - 8) * d;
        sq[j + 16] = ((p[2 + j] >> 4) - 8) * d;
      }
      break;
    }
    case DType::iq4_nl: {
      const double d = f16(rd16(p));
      for (int j = 0; j < 16; ++j) {
        sq[j] = d * kIq4nl[p[2 + j] & 0x0F];
        sq[j + 16] = d * kIq4nl[p[2 + j] >> 4];
      }
      break;
    }
    case DType::q5_0:
    case DType::q5_1: {
      const bool one = t == DType::q5_1;
      const double d = f16(rd16(p)), m = one ? f16(rd16(p + 2)) : 0.0;
      const uint32_t qh = rd32(p + (one ? 4 : 2));
      const uint8_t* qs = p + (one ? 8 : 6);
      for (int j = 0; j < 16; ++j) {
        const int x0 = (qs[j] & 0x0F) | (((qh >> j) & 1) << 4);
        const int x1 = (qs[j] >> 4) | (((qh >> (j + 16)) & 1) << 4);
        if (one) {
          sq[j] = x0 * d;
          sq[j + 16] = x1 * d;
          off[j] = off[j + 16] = m;
        } else {
          sq[j] = (x0 - 16) * d;
          sq[j + 16] = (x1 - 16) * d;
        }
      }
      break;
    }
    case DType::q8_0: {
      const double d = f16(rd16(p));
      for (int j = 0; j < 32; ++j) sq[j] = int8_t(p[2 + j]) * d;
      break;
    }
    case DType::q4_K:
    case DType::q5_K: {
      const bool five = t == DType::q5_K;
      const double d = f16(rd16(p)), dmin = f16(rd16(p + 2));
      const uint8_t* sc12 = p + 4;
      const uint8_t* qh = p + 16;
      const uint8_t* qs = p + (five ? 48 : 16);
      for (int pr = 0; pr < 4; ++pr) {
        int sc0, mn0, sc1, mn1;
        scale_min_6bit(sc12, 2 * pr, sc0, mn0);
        scale_min_6bit(sc12, 2 * pr + 1, sc1, mn1);
        for (int l = 0; l < 32; ++l) {
          int lo = qs[32 * pr + l] & 0xF, hi = qs[32 * pr + l] >> 4;
          if (five) {
            lo += 16 * ((qh[l] >> (2 * pr)) & 1);
            hi += 16 * ((qh[l] >> (2 * pr + 1)) & 1);
          }
          sq[64 * pr + l] = d * sc0 * lo;
          off[64 * pr + l] = -(dmin * mn0);
          sq[64 * pr + 32 + l] = d * sc1 * hi;
          off[64 * pr + 32 + l] = -(dmin * mn1);
        }
      }
      break;
    }
    case DType::q6_K: {
      const double d = f16(rd16(p + 208));
      for (int h = 0; h < 2; ++h) {
        const uint8_t* L = p + 64 * h;
        const uint8_t* H = p + 128 + 32 * h;
        const int8_t* S = reinterpret_cast<const int8_t*>(p + 192 + 8 * h);
        double* out = sq + 128 * h;
        for (int l = 0; l < 32; ++l) {
          const int is = l / 16;
          const int q1 = (L[l] & 0xF) | (((H[l] >> 0) & 3) << 4);
          const int q2 = (L[l + 32] & 0xF) | (((H[l] >> 2) & 3) << 4);
          const int q3 = (L[l] >> 4) | (((H[l] >> 4) & 3) << 4);
          const int q4 = (L[l + 32] >> 4) | (((H[l] >> 6) & 3) << 4);
          out[l] = d * S[is] * (q1 - 32);
          out[l + 32] = d * S[is + 2] * (q2 - 32);
          out[l + 64] = d * S[is + 4] * (q3 - 32);
          out[l + 96] = d * S[is + 6] * (q4 - 32);
        }
      }
      break;
    }
    case DType::q2_K: {
      const uint8_t* scales = p;
      const uint8_t* qs = p + 16;
      const double d = f16(rd16(p + 80)), dmin = f16(rd16(p + 82));
      for (int g = 0; g < 16; ++g) {
        const int half = g / 8, gi = g % 8, shift = 2 * (gi / 2), o = 32 * half + 16 * (gi % 2);
        for (int l = 0; l < 16; ++l) {
          sq[16 * g + l] = d * (scales[g] & 0xF) * ((qs[o + l] >> shift) & 3);
          off[16 * g + l] = -(dmin * (scales[g] >> 4));
        }
      }
      break;
    }
    case DType::iq4_xs: {
      const double d = f16(rd16(p));
      const uint32_t sh = rd16(p + 2);
      const uint8_t* sl = p + 4;
      const uint8_t* qs = p + 8;
      for (int b = 0; b < 8; ++b) {
        const int ls = ((sl[b / 2] >> (4 * (b % 2))) & 0xF) | (((sh >> (2 * b)) & 3) << 4);
        const double dl = d * (ls - 32);
        for (int j = 0; j < 16; ++j) {
          sq[32 * b + j] = dl * kIq4nl[qs[16 * b + j] & 0xF];
          sq[32 * b + 16 + j] = dl * kIq4nl[qs[16 * b + j] >> 4];
        }
      }
      break;
    }
    default: break;
  }
}

// One block of `t` at p -> y[0 .. qk-1] (exact values).
inline void dequant_block(DType t, const uint8_t* p, double* y) {
  double off[256];
  dequant_terms(t, p, y, off);
  if (has_min(t))
    for (int i = 0; i < format_of(t).qk; ++i) y[i] = y[i] + off[i];
}

// n values of t at p, each rounded once to f32 (the spec's f32 result), as doubles.
inline std::vector<double> dequant_f32(DType t, const uint8_t* p, int64_t n) {
  const Format f = format_of(t);
  std::vector<double> y(static_cast<size_t>(n));
  std::vector<double> tmp(static_cast<size_t>(f.qk));
  for (int64_t b = 0; b < n / f.qk; ++b) {
    dequant_block(t, p + b * f.bytes, tmp.data());
    for (int j = 0; j < f.qk; ++j) y[size_t(b * f.qk + j)] = double(float(tmp[size_t(j)]));
  }
  return y;
}

// ---- valid random blocks (quant-formats.md §3 "How tests obtain valid blocks") ----

// A random finite f16 with |v| in [2^-13, 2^-3) (inside the spec's [1e-4, 1e-1]), or a subnormal.
inline uint16_t random_scale(std::mt19937_64& rng, bool allow_negative, bool subnormal = false) {
  uint16_t bits;
  if (subnormal) bits = uint16_t(1 + rng() % 1023);
  else bits = uint16_t((uint32_t(2 + rng() % 10) << 10) | uint32_t(rng() % 1024));
  if (allow_negative && (rng() & 1)) bits |= 0x8000;
  return bits;
}
inline void put16(uint8_t* p, uint16_t v) {
  p[0] = uint8_t(v);
  p[1] = uint8_t(v >> 8);
}

// Fill nblocks blocks of t with random bytes, then valid f16 scale fields. subnormal_every > 0
// makes every that-many-th block's scale(s) f16 subnormals.
inline void fill_valid_blocks(DType t, uint8_t* p, int64_t nblocks, uint64_t seed, int subnormal_every = 0) {
  std::mt19937_64 rng(seed);
  const Format f = format_of(t);
  for (int64_t b = 0; b < nblocks; ++b) {
    uint8_t* blk = p + b * f.bytes;
    for (int i = 0; i < f.bytes; ++i) blk[i] = uint8_t(rng());
    const bool sub = subnormal_every > 0 && b % subnormal_every == 0;
    switch (t) {
      case DType::q4_0:
      case DType::q5_0:
      case DType::q8_0:
      case DType::iq4_nl:
      case DType::iq4_xs: put16(blk, random_scale(rng, true, sub)); break;
      case DType::q5_1:
        put16(blk, random_scale(rng, false, sub));
        put16(blk + 2, random_scale(rng, true, sub));
        break;
      case DType::q4_K:
      case DType::q5_K:
        put16(blk, random_scale(rng, false, sub));
        put16(blk + 2, random_scale(rng, false, sub));
        break;
      case DType::q6_K: put16(blk + 208, random_scale(rng, false, sub)); break;
      case DType::q2_K:
        put16(blk + 80, random_scale(rng, false, sub));
        put16(blk + 82, random_scale(rng, false, sub));
        break;
      default: break;
    }
  }
}

// ---- reference quantizers (quant-formats.md §4), f32 arithmetic as the spec states ----

struct Q40 {
  uint16_t d;
  uint8_t q[32];  // codes 0..15 in natural order
};
inline Q40 quantize_q4_0(const float* x) {
  float amax = 0.0f, max = 0.0f;
  for (int j = 0; j < 32; ++j)
    if (std::fabs(x[j]) > amax) {
      amax = std::fabs(x[j]);
      max = x[j];
    }
  volatile float d = max / -8.0f;
  volatile float id = d != 0.0f ? 1.0f / d : 0.0f;
  Q40 r;
  r.d = f32_to_f16_bits(d);
  for (int j = 0; j < 32; ++j) {
    volatile float prod = x[j] * id;
    volatile float v = prod + 8.5f;
    const float t = std::trunc(float(v));
    r.q[j] = uint8_t(t > 15.0f ? 15 : t);
  }
  return r;
}
struct Q80 {
  uint16_t d;
  int8_t q[32];
};
inline Q80 quantize_q8_0(const float* x) {
  float amax = 0.0f;
  for (int j = 0; j < 32; ++j) amax = std::fmax(amax, std::fabs(x[j]));
  volatile float d = amax / 127.0f;
  volatile float id = d != 0.0f ? 1.0f / d : 0.0f;
  Q80 r;
  r.d = f32_to_f16_bits(d);
  for (int j = 0; j < 32; ++j) {
    volatile float prod = x[j] * id;
    r.q[j] = int8_t(std::round(float(prod)));
  }
  return r;
}
// Block bytes as ggml lays them out.
inline void pack_q4_0(const Q40& b, uint8_t* out) {
  put16(out, b.d);
  for (int j = 0; j < 16; ++j) out[2 + j] = uint8_t(b.q[j] | (b.q[j + 16] << 4));
}
inline void pack_q8_0(const Q80& b, uint8_t* out) {
  put16(out, b.d);
  std::memcpy(out + 2, b.q, 32);
}
// qdq round trip: quantize, then dequantize with the f16-rounded scale.
inline std::vector<double> qdq(DType t, const std::vector<float>& x) {
  std::vector<double> y(x.size());
  for (size_t b = 0; b < x.size() / 32; ++b) {
    if (t == DType::q4_0) {
      Q40 q = quantize_q4_0(x.data() + 32 * b);
      for (int j = 0; j < 32; ++j) y[32 * b + j] = double(float((q.q[j] - 8) * f16(q.d)));
    } else {
      Q80 q = quantize_q8_0(x.data() + 32 * b);
      for (int j = 0; j < 32; ++j) y[32 * b + j] = double(float(q.q[j] * f16(q.d)));
    }
  }
  return y;
}

// ---- MLX affine (quant-formats.md §5) ----

// Code k of a packed row, per the spec's per-bits description.
inline uint32_t affine_code(const uint8_t* row, int64_t k, int bits) {
  if (bits == 4) return (rd32(row + 4 * (k / 8)) >> (4 * (k % 8))) & 0xF;
  if (bits == 8) return (rd32(row + 4 * (k / 4)) >> (8 * (k % 4))) & 0xFF;
  const uint8_t* t = row + 3 * (k / 4);  // 6-bit triplet
  const uint32_t v = uint32_t(t[0]) | uint32_t(t[1]) << 8 | uint32_t(t[2]) << 16;
  return (v >> (6 * (k % 4))) & 0x3F;
}
inline int64_t affine_row_bytes(int bits, int64_t k) {
  return bits == 4 ? (k + 7) / 8 * 4 : bits == 8 ? (k + 3) / 4 * 4 : (k + 3) / 4 * 3;
}
inline double param(const uint8_t* p, int64_t i, DType t) {
  if (t == DType::f32) {
    float f;
    std::memcpy(&f, p + 4 * i, 4);
    return f;
  }
  const uint16_t h = rd16(p + 2 * i);
  return t == DType::bf16 ? bf16(h) : f16(h);
}
// w[r, c] = s * q + b evaluated as f32 multiply then f32 add (the spec's bit-exact form for f32
// params; exact product for 16-bit params).
inline std::vector<double> affine_dequant(const uint8_t* packed, const uint8_t* scales, const uint8_t* biases, DType pt,
                                          int64_t rows, int64_t k, int bits, int64_t gs,
                                          const std::vector<int64_t>* row_ids = nullptr) {
  const int64_t n_out = row_ids ? int64_t(row_ids->size()) : rows;
  std::vector<double> y(static_cast<size_t>(n_out * k));
  const int64_t rb = affine_row_bytes(bits, k), groups = k / gs;
  for (int64_t o = 0; o < n_out; ++o) {
    const int64_t r = row_ids ? (*row_ids)[size_t(o)] : o;
    for (int64_t c = 0; c < k; ++c) {
      const float s = float(param(scales, r * groups + c / gs, pt)), b = float(param(biases, r * groups + c / gs, pt));
      const float prod = float(double(s) * affine_code(packed + r * rb, c, bits));
      y[size_t(o * k + c)] = double(float(double(prod) + double(b)));
    }
  }
  return y;
}

// ---- qdq_affine (matmul-moe-sampling.md §1.3) ----

struct AffineInit {
  std::vector<float> scales, biases;
  std::vector<uint8_t> q;
};
inline AffineInit qdq_affine_init(const std::vector<float>& w, int64_t gs, int n_bins) {
  const int64_t groups = int64_t(w.size()) / gs;
  AffineInit r;
  r.scales.resize(size_t(groups));
  r.biases.resize(size_t(groups));
  r.q.resize(w.size());
  for (int64_t g = 0; g < groups; ++g) {
    float mn = w[size_t(g * gs)], mx = mn;
    for (int64_t i = 0; i < gs; ++i) {
      mn = std::min(mn, w[size_t(g * gs + i)]);
      mx = std::max(mx, w[size_t(g * gs + i)]);
    }
    volatile float range = mx - mn;
    float s = range / float(n_bins - 1);
    if (!(s > 0.0f)) s = 1.0f;
    r.scales[size_t(g)] = s;
    r.biases[size_t(g)] = mn;
    for (int64_t i = 0; i < gs; ++i) {
      volatile float diff = w[size_t(g * gs + i)] - mn;
      volatile float z = diff / s;
      float qv = std::round(float(z));
      qv = std::min(std::max(qv, 0.0f), float(n_bins - 1));
      r.q[size_t(g * gs + i)] = uint8_t(qv);
    }
  }
  return r;
}

}  // namespace lmk::ref
