// fp64 references for the matmul family, written from matmul-moe-sampling.md §0/§3/§5 and the
// block layouts of quant-formats.md §2–§3 (byte offsets spelled out again here, independent of
// src/formats/blocks.h and of tests/ref/quant.h; own namespace so nothing collides).
//
// Dequantized weights follow the spec's f32 contract: every product is exact, the only rounding
// is the final add of a min term (done here in f32 exactly as written in the spec). Sums run in
// f64. Each output also gets its normaliser Σ_k |x_k|·|w_k|, where for formats with a min term
// |w_k| := |scale·q_k| + |offset| (§0, offset-aware), so a test checks
//   e = |y - y_ref| / (normaliser + 1e-30) <= tol.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include "lmk/dtype.h"

namespace lmk::ref::mm {

inline double f16v(uint16_t h) {
  const int sign = h >> 15, e = (h >> 10) & 31, m = h & 1023;
  double v;
  if (e == 0) v = std::ldexp(double(m), -24);
  else if (e == 31) v = m ? NAN : INFINITY;
  else v = std::ldexp(1024.0 + m, e - 25);
  return sign ? -v : v;
}
inline uint16_t u16at(const uint8_t* p) { return uint16_t(p[0] | p[1] << 8); }
inline uint32_t u32at(const uint8_t* p) {
  return uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 | uint32_t(p[3]) << 24;
}

inline constexpr int kCodebook[16] = {-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113};

inline int block_elems(DType t) {
  switch (t) {
    case DType::q4_0: case DType::q5_0: case DType::q5_1: case DType::q8_0: case DType::iq4_nl: return 32;
    default: return 256;
  }
}
inline int block_size(DType t) {
  switch (t) {
    case DType::q4_0: return 18;
    case DType::q5_0: return 22;
    case DType::q5_1: return 24;
    case DType::q8_0: return 34;
    case DType::iq4_nl: return 18;
    case DType::q2_K: return 84;
    case DType::q4_K: return 144;
    case DType::q5_K: return 176;
    case DType::q6_K: return 210;
    case DType::iq4_xs: return 136;
    default: return 0;
  }
}

// One dequantized element: the value (f32 formula) and |w| for the normaliser.
struct W {
  double v, a;
};
// Without a min term: v = s·q exactly.
inline W plain(double s, int q) { return {s * q, std::fabs(s * q)}; }
// With a min term: f32(s·q) is exact, then one f32 add of the offset.
inline W offset(double s, int q, double off) {
  const float v = float(s * q) + float(off);
  return {double(v), std::fabs(s * q) + std::fabs(off)};
}

// 6-bit scale and min of sub-block i of the K-quant `scales[12]` field.
inline void kq_scale_min(const uint8_t* s, int i, int& sc, int& mn) {
  if (i < 4) {
    sc = s[i] & 63;
    mn = s[i + 4] & 63;
  } else {
    sc = (s[i + 4] & 15) | ((s[i - 4] >> 6) << 4);
    mn = (s[i + 4] >> 4) | ((s[i] >> 6) << 4);
  }
}

// The block of type t at p -> w[0 .. qk-1].
inline void dequant_block(DType t, const uint8_t* p, W* w) {
  switch (t) {
    case DType::q4_0: {
      const double d = f16v(u16at(p));
      for (int j = 0; j < 16; ++j) {
        w[j] = plain(d, (p[2 + j] & 15) - 8);
        w[j + 16] = plain(d, (p[2 + j] >> 4) - 8);
      }
      break;
    }
    case DType::iq4_nl: {
      const double d = f16v(u16at(p));
      for (int j = 0; j < 16; ++j) {
        w[j] = plain(d, kCodebook[p[2 + j] & 15]);
        w[j + 16] = plain(d, kCodebook[p[2 + j] >> 4]);
      }
      break;
    }
    case DType::q5_0: {
      const double d = f16v(u16at(p));
      const uint32_t qh = u32at(p + 2);
      for (int j = 0; j < 16; ++j) {
        const int x0 = (p[6 + j] & 15) | int((qh >> j) & 1) << 4;
        const int x1 = (p[6 + j] >> 4) | int((qh >> (j + 16)) & 1) << 4;
        w[j] = plain(d, x0 - 16);
        w[j + 16] = plain(d, x1 - 16);
      }
      break;
    }
    case DType::q5_1: {
      const double d = f16v(u16at(p)), m = f16v(u16at(p + 2));
      const uint32_t qh = u32at(p + 4);
      for (int j = 0; j < 16; ++j) {
        const int x0 = (p[8 + j] & 15) | int((qh >> j) & 1) << 4;
        const int x1 = (p[8 + j] >> 4) | int((qh >> (j + 16)) & 1) << 4;
        w[j] = offset(d, x0, m);
        w[j + 16] = offset(d, x1, m);
      }
      break;
    }
    case DType::q8_0: {
      const double d = f16v(u16at(p));
      for (int j = 0; j < 32; ++j) w[j] = plain(d, int(int8_t(p[2 + j])));
      break;
    }
    case DType::q4_K:
    case DType::q5_K: {
      const bool five = t == DType::q5_K;
      const double d = f16v(u16at(p)), dmin = f16v(u16at(p + 2));
      const uint8_t* sc = p + 4;
      const uint8_t* qh = p + 16;
      const uint8_t* qs = p + (five ? 48 : 16);
      for (int pr = 0; pr < 4; ++pr) {
        for (int half = 0; half < 2; ++half) {
          const int sub = 2 * pr + half;
          int s6, m6;
          kq_scale_min(sc, sub, s6, m6);
          const double s = double(float(d * s6)), mn = double(float(dmin * m6));
          for (int l = 0; l < 32; ++l) {
            const uint8_t byte = qs[32 * pr + l];
            int q = half ? byte >> 4 : byte & 15;
            if (five) q |= ((qh[l] >> sub) & 1) << 4;
            w[64 * pr + 32 * half + l] = offset(s, q, -mn);
          }
        }
      }
      break;
    }
    case DType::q6_K: {
      const double d = f16v(u16at(p + 208));
      for (int h = 0; h < 2; ++h) {
        const uint8_t* L = p + 64 * h;
        const uint8_t* H = p + 128 + 32 * h;
        const int8_t* S = reinterpret_cast<const int8_t*>(p + 192 + 8 * h);
        W* out = w + 128 * h;
        for (int l = 0; l < 32; ++l) {
          const int is = l / 16;
          const int q1 = (L[l] & 15) | ((H[l] >> 0) & 3) << 4;
          const int q2 = (L[l + 32] & 15) | ((H[l] >> 2) & 3) << 4;
          const int q3 = (L[l] >> 4) | ((H[l] >> 4) & 3) << 4;
          const int q4 = (L[l + 32] >> 4) | ((H[l] >> 6) & 3) << 4;
          out[l] = plain(d * S[is], q1 - 32);
          out[l + 32] = plain(d * S[is + 2], q2 - 32);
          out[l + 64] = plain(d * S[is + 4], q3 - 32);
          out[l + 96] = plain(d * S[is + 6], q4 - 32);
        }
      }
      break;
    }
    case DType::q2_K: {
      const double d = f16v(u16at(p + 80)), dmin = f16v(u16at(p + 82));
      for (int g = 0; g < 16; ++g) {
        const int half = g / 8, gi = g % 8, shift = 2 * (gi / 2), off = 32 * half + 16 * (gi % 2);
        const double s = d * (p[g] & 15), mn = dmin * (p[g] >> 4);
        for (int l = 0; l < 16; ++l) w[16 * g + l] = offset(s, (p[16 + off + l] >> shift) & 3, -mn);
      }
      break;
    }
    case DType::iq4_xs: {
      const double d = f16v(u16at(p));
      const uint16_t sh = u16at(p + 2);
      for (int b = 0; b < 8; ++b) {
        const int ls = ((p[4 + b / 2] >> (4 * (b % 2))) & 15) | ((sh >> (2 * b)) & 3) << 4;
        const double dl = d * (ls - 32);
        const uint8_t* q = p + 8 + 16 * b;
        for (int j = 0; j < 16; ++j) {
          w[32 * b + j] = plain(dl, kCodebook[q[j] & 15]);
          w[32 * b + 16 + j] = plain(dl, kCodebook[q[j] >> 4]);
        }
      }
      break;
    }
    default: break;
  }
}

// A whole [rows, k] block matrix -> rows*k elements.
inline std::vector<W> dequant_matrix(DType t, const uint8_t* p, int64_t rows, int64_t k) {
  const int qk = block_elems(t), bs = block_size(t);
  std::vector<W> w(static_cast<size_t>(rows * k));
  for (int64_t b = 0; b < rows * k / qk; ++b) dequant_block(t, p + b * bs, &w[size_t(b * qk)]);
  return w;
}

// Random valid blocks (quant-formats.md §3 recipe): random bytes, every f16 scale field replaced
// by a finite f16 with magnitude in [1e-4, 1e-1] (random sign where the format allows one,
// positive for K-quant d/dmin).
inline std::vector<uint8_t> random_blocks(DType t, int64_t nblocks, uint64_t seed) {
  const int bs = block_size(t);
  std::vector<uint8_t> v(static_cast<size_t>(nblocks * bs));
  std::mt19937_64 rng(seed);
  for (auto& b : v) b = uint8_t(rng());
  std::uniform_real_distribution<double> mag(std::log(1e-4), std::log(1e-1));
  auto scale = [&](uint8_t* p, bool signed_ok) {
    const double m = std::exp(mag(rng));
    // m in [1e-4, 0.1]: a normal f16; encode exponent and 10 mantissa bits (truncated).
    int e;
    const double fr = std::frexp(m, &e);  // m = fr * 2^e, fr in [0.5, 1)
    const int exp16 = e - 1 + 15;
    const int man = int((fr * 2 - 1) * 1024);
    uint16_t h = uint16_t(exp16 << 10 | man);
    if (signed_ok && (rng() & 1)) h |= 0x8000;
    p[0] = uint8_t(h);
    p[1] = uint8_t(h >> 8);
  };
  for (int64_t i = 0; i < nblocks; ++i) {
    uint8_t* p = v.data() + i * bs;
    switch (t) {
      case DType::q4_0: case DType::q5_0: case DType::q8_0: case DType::iq4_nl: scale(p, true); break;
      case DType::q5_1: scale(p, true); scale(p + 2, true); break;
      case DType::q4_K: case DType::q5_K: scale(p, false); scale(p + 2, false); break;
      case DType::q6_K: scale(p + 208, true); break;
      case DType::q2_K: scale(p + 80, false); scale(p + 82, false); break;
      case DType::iq4_xs: scale(p, true); break;
      default: break;
    }
  }
  return v;
}

struct Result {
  std::vector<double> y;     // Σ_k x·w in f64
  std::vector<double> norm;  // Σ_k |x|·|w| (offset-aware)
};

// y[m, n] = Σ_k x[m, k]·w[n, k] over x rows xr(m). x: [?, k] f64 values; w: [n, k] dequantized.
// x_round / w_round: optional per-value roundings applied first (e.g. to bf16), as documented for
// paths that round their operands.
template <typename XRound, typename WRound>
inline void matmul_rows(const std::vector<double>& x, const std::vector<int64_t>& x_rows, const W* w, int64_t n,
                        int64_t k, XRound x_round, WRound w_round, Result& out, int64_t out_row0) {
  const int64_t m = int64_t(x_rows.size());
  std::vector<double> xr(static_cast<size_t>(k)), wr(static_cast<size_t>(k)), wa(static_cast<size_t>(k));
  for (int64_t j = 0; j < n; ++j) {
    for (int64_t i = 0; i < k; ++i) {
      wr[size_t(i)] = w_round(w[j * k + i].v);
      // Rounded weights are normalised by their own magnitude plus the original decomposition.
      wa[size_t(i)] = std::max(w[j * k + i].a, std::fabs(wr[size_t(i)]));
    }
    for (int64_t r = 0; r < m; ++r) {
      const double* xp = &x[size_t(x_rows[size_t(r)] * k)];
      double acc = 0, nrm = 0;
      for (int64_t i = 0; i < k; ++i) {
        const double xv = x_round(xp[i]);
        acc += xv * wr[size_t(i)];
        nrm += std::fabs(xv) * wa[size_t(i)];
      }
      out.y[size_t((out_row0 + r) * n + j)] = acc;
      out.norm[size_t((out_row0 + r) * n + j)] = nrm;
    }
  }
}

inline double identity(double v) { return v; }

}  // namespace lmk::ref::mm
