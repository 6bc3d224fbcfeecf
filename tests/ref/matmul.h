// fp64 references for the matmul family, written from matmul-moe-sampling.md §0/§3/§5. Blocks
// are decoded by the quant family's reference (tests/ref/quant.h: dequant_terms, independent of
// src/formats/blocks.h); this file adds the spec's f32 rounding of the min term and the
// offset-aware |w| of the error normaliser.
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
#include "ref/quant.h"

namespace lmk::ref::mm {

inline int block_elems(DType t) { return ref::format_of(t).qk; }
inline int block_size(DType t) { return ref::format_of(t).bytes; }

// One dequantized element: the value (f32 formula) and |w| for the normaliser.
struct W {
  double v, a;
};
// The block of type t at p -> w[0 .. qk-1]. Without a min term v = scale·code exactly; with
// one, f32(scale·code) is exact and the spec adds the offset in f32 (one rounding), while |w|
// counts both terms.
inline void dequant_block(DType t, const uint8_t* p, W* w) {
  double sq[256], off[256];
  ref::dequant_terms(t, p, sq, off);
  const bool min_term = ref::has_min(t);
  for (int i = 0; i < block_elems(t); ++i) {
    if (min_term) w[i] = {double(float(sq[i]) + float(off[i])), std::fabs(sq[i]) + std::fabs(off[i])};
    else w[i] = {sq[i], std::fabs(sq[i])};
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
