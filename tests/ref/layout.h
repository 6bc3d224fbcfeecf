// References for the layout family, written from core-ops.md §7 and training-and-vision.md §6/§7/§9
// (independent of src/). Values travel as doubles, which hold every f32/f16/bf16/int value the
// tests draw exactly; each function is the spec's index formula as a plain loop.
#pragma once
#include <cstdint>
#include <vector>

namespace lmk::ref {

using Vec = std::vector<double>;

// Row-major walk over `shape`: out[i] = buf[offset + sum_d coord_d * strides[d]].
inline Vec strided_read(const Vec& buf, int64_t offset, const std::vector<int64_t>& shape,
                        const std::vector<int64_t>& strides) {
  int64_t n = 1;
  for (auto d : shape) n *= d;
  Vec out(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    int64_t rest = i, at = offset;
    for (int d = int(shape.size()) - 1; d >= 0; --d) {
      at += (rest % shape[size_t(d)]) * strides[size_t(d)];
      rest /= shape[size_t(d)];
    }
    out[size_t(i)] = buf[size_t(at)];
  }
  return out;
}

// in [R, C] -> out [C, R]: out[c*R + r] = in[r*C + c].
inline Vec transpose(const Vec& in, int64_t R, int64_t C) {
  Vec out(in.size());
  for (int64_t r = 0; r < R; ++r)
    for (int64_t c = 0; c < C; ++c) out[size_t(c * R + r)] = in[size_t(r * C + c)];
  return out;
}

// [A, B, C] -> [A, C, B]: out[a*C*B + c*B + b] = in[a*B*C + b*C + c].
inline Vec transpose_last2(const Vec& in, int64_t A, int64_t B, int64_t C) {
  Vec out(in.size());
  for (int64_t a = 0; a < A; ++a)
    for (int64_t b = 0; b < B; ++b)
      for (int64_t c = 0; c < C; ++c) out[size_t(a * C * B + c * B + b)] = in[size_t(a * B * C + b * C + c)];
  return out;
}

// [A, B, C] -> [B, A, C]: out[b*A*C + a*C + c] = in[a*B*C + b*C + c].
inline Vec permute_021(const Vec& in, int64_t A, int64_t B, int64_t C) {
  Vec out(in.size());
  for (int64_t a = 0; a < A; ++a)
    for (int64_t b = 0; b < B; ++b)
      for (int64_t c = 0; c < C; ++c) out[size_t(b * A * C + a * C + c)] = in[size_t(a * B * C + b * C + c)];
  return out;
}

// out[i, :] = src[idx[i], :] for idx in [0, rows); otherwise the last row (clamp) or zeros.
inline Vec gather_rows(const Vec& src, int64_t rows, int64_t W, const std::vector<int64_t>& idx, bool oob_zero) {
  Vec out(idx.size() * size_t(W));
  for (size_t i = 0; i < idx.size(); ++i) {
    const bool inside = idx[i] >= 0 && idx[i] < rows;
    const int64_t r = inside ? idx[i] : rows - 1;
    for (int64_t w = 0; w < W; ++w)
      out[i * size_t(W) + size_t(w)] = (inside || !oob_zero) ? src[size_t(r * W + w)] : 0.0;
  }
  return out;
}

// y[r, j] = x[r, idx[r, j]], 0 for idx >= Cc.
inline Vec take_along_axis(const Vec& x, int64_t R, int64_t Cc, const std::vector<int64_t>& idx, int64_t k) {
  Vec y(static_cast<size_t>(R * k));
  for (int64_t r = 0; r < R; ++r)
    for (int64_t j = 0; j < k; ++j) {
      const int64_t c = idx[size_t(r * k + j)];
      y[size_t(r * k + j)] = c < Cc ? x[size_t(r * Cc + c)] : 0.0;
    }
  return y;
}

// out[r, c] = in[r, start + c] for c < out_cols (also the pieces of qkv_split).
inline Vec slice_cols(const Vec& in, int64_t R, int64_t in_cols, int64_t start, int64_t out_cols) {
  Vec out(static_cast<size_t>(R * out_cols));
  for (int64_t r = 0; r < R; ++r)
    for (int64_t c = 0; c < out_cols; ++c) out[size_t(r * out_cols + c)] = in[size_t(r * in_cols + start + c)];
  return out;
}

// dst[r, start + c] = src[r, c]; the rest of dst keeps its values.
inline void cols_into(Vec& dst, int64_t R, int64_t dst_cols, const Vec& src, int64_t src_cols, int64_t start) {
  for (int64_t r = 0; r < R; ++r)
    for (int64_t c = 0; c < src_cols; ++c) dst[size_t(r * dst_cols + start + c)] = src[size_t(r * src_cols + c)];
}

// dst[t, h, k] = src[t, h mod Hg, k].
inline Vec repeat_tiled(const Vec& src, int64_t T, int64_t Hg, int64_t H, int64_t K) {
  Vec out(static_cast<size_t>(T * H * K));
  for (int64_t t = 0; t < T; ++t)
    for (int64_t h = 0; h < H; ++h)
      for (int64_t k = 0; k < K; ++k) out[size_t((t * H + h) * K + k)] = src[size_t((t * Hg + h % Hg) * K + k)];
  return out;
}

// cache[p * row + e] = src[t * row + e], p = write_pos + t (linear) or (write_pos + t) mod cap (ring).
inline void kv_cache_copy(Vec& cache, int64_t cap, int64_t row, const Vec& src, int64_t n, int64_t write_pos,
                          bool ring) {
  for (int64_t t = 0; t < n; ++t) {
    const int64_t p = ring ? (write_pos + t) % cap : write_pos + t;
    for (int64_t e = 0; e < row; ++e) cache[size_t(p * row + e)] = src[size_t(t * row + e)];
  }
}

// cache[h*cap*Dh + seq_pos*Dh + e] = src[h*Dh + e].
inline void kv_cache_copy_batch(Vec& cache, int64_t H, int64_t cap, int64_t Dh, const Vec& src, int64_t seq_pos) {
  for (int64_t h = 0; h < H; ++h)
    for (int64_t e = 0; e < Dh; ++e) cache[size_t(h * cap * Dh + seq_pos * Dh + e)] = src[size_t(h * Dh + e)];
}

// cache[h*cap*Dh + slot*Dh + e] = src[(src_off + t)*H*Dh + h*Dh + e], slot = (seq_pos_start + t) mod cap.
inline void kv_cache_copy_seq(Vec& cache, int64_t H, int64_t cap, int64_t Dh, const Vec& src, int64_t src_off,
                              int64_t n, int64_t seq_pos_start) {
  for (int64_t t = 0; t < n; ++t) {
    const int64_t slot = (seq_pos_start + t) % cap;
    for (int64_t h = 0; h < H; ++h)
      for (int64_t e = 0; e < Dh; ++e)
        cache[size_t(h * cap * Dh + slot * Dh + e)] = src[size_t((src_off + t) * H * Dh + h * Dh + e)];
  }
}

}  // namespace lmk::ref
