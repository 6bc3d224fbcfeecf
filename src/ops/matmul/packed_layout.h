// The packed GGML weight layout of pack_ggml() (include/lmk/matmul.h), shared by the host packer,
// the CUDA pack kernel and the packed mat-vec (qmv_packed.cuh).
//
// The raw GGUF blocks are 18/34/144/210-byte records, so a lane of the mat-vec that wants the
// four code bytes of its m16n8k32 A fragment finds them at 2-byte-aligned offsets, spread over 16
// rows. The packed layout is the same bytes permuted (plus zero padding), so that every lane's
// codes are 16-byte words and a warp's load is 512 contiguous bytes:
//
//   tile   = 16 weight rows (N padded to a multiple of 16), chunk = 256 elements of K (the last
//            chunk of a 32-element format may be partial: zero padded);
//   record = one (tile, chunk), records ordered tile-major: offset (tile·chunks + chunk)·R,
//            R = 256·LW + 64·HW bytes (LW / HW below);
//   lane plane (bytes [0, 256·LW)): lane l = 4g + c (g = l / 4, c = l % 4) owns, for rows g and
//            g + 8 (r = 0, 1), LW 32-bit words each: word w of row r is lane word u = 2w + r, at
//            byte ((u / 4)·32 + l)·16 + (u % 4)·4. So load i (16 bytes) of lane l holds words
//            2i, 2i + 1 of both rows;
//   header plane (bytes [256·LW, R)): for g = 0..7 and r = 0, 1 the HW header words of row
//            g + 8r (scales, mins, high bits: the bytes every lane c of the row shares), at
//            byte 256·LW + ((2g + r)·HW + j)·4.
//
// lane_src(t, w, c) / hdr_src(t, b) give, for each packed word / header byte, its byte offset in
// the row's raw chunk (8 blocks of a 32-element format, one super-block otherwise; -1: padding).
// Together they cover every raw byte exactly once, so unpacking is the inverse permutation.
#pragma once
#include <cstdint>

#include "lmk/dtype.h"

namespace lmk::packed {

constexpr int kTileRows = 16;
constexpr int kChunkElems = 256;

// Lane words per row and chunk (even), header words per row and chunk.
constexpr int lane_words(DType t) {
  switch (t) {
    case DType::q8_0: return 16;
    case DType::q5_K: return 10;
    case DType::q6_K: return 12;
    case DType::q2_K: return 4;
    default: return 8;  // q4_0, iq4_nl, q5_0, q5_1, q4_K, iq4_xs
  }
}
constexpr int hdr_words(DType t) {
  switch (t) {
    case DType::q5_0: return 12;  // 8 f16 d, 8 qh words
    case DType::q5_1: return 16;  // 8 (d, m) pairs, 8 qh words
    case DType::q6_K: return 5;   // 16 scales, d, 2 bytes of padding
    case DType::q2_K: return 5;   // 16 scale bytes, d, dmin
    case DType::iq4_xs: return 2; // d, scales_h, scales_l
    default: return 4;            // 8 f16 d (q4_0, iq4_nl, q8_0) or the 16-byte K-quant header
  }
}
constexpr int64_t record_bytes(DType t) { return 256 * int64_t(lane_words(t)) + 64 * int64_t(hdr_words(t)); }

// Byte offset in the raw chunk of lane word w (< lane_words) of lane c (0..3).
constexpr int lane_src(DType t, int w, int c) {
  switch (t) {
    case DType::q4_0:
    case DType::iq4_nl: return 18 * w + 2 + 4 * c;                      // qs[4c..] of block w
    case DType::q8_0: return 34 * (w / 2) + 2 + 16 * (w % 2) + 4 * c;   // qs[4c..], qs[16 + 4c..]
    case DType::q5_0: return 22 * w + 6 + 4 * c;
    case DType::q5_1: return 24 * w + 8 + 4 * c;
    case DType::q4_K: return 16 + 32 * (w / 2) + 16 * (w % 2) + 4 * c;  // qs pair w / 2
    case DType::q5_K:
      return w < 8 ? 48 + 32 * (w / 2) + 16 * (w % 2) + 4 * c  // qs
                   : 16 + 16 * (w - 8) + 4 * c;                 // qh[4c..], qh[16 + 4c..]
    case DType::q6_K:
      return w < 8 ? 64 * (w / 4) + 32 * ((w / 2) % 2) + 16 * (w % 2) + 4 * c  // ql: half w / 4, quarter parity
                   : 128 + 32 * ((w - 8) / 2) + 16 * (w % 2) + 4 * c;      // qh of half (w - 8) / 2
    case DType::q2_K: return 16 + 32 * (w / 2) + 16 * (w % 2) + 4 * c;
    case DType::iq4_xs: return 8 + 16 * w + 4 * c;
    default: return -1;
  }
}

// Byte offset in the raw chunk of header byte b (< 4·hdr_words) of a row; -1: padding.
constexpr int hdr_src(DType t, int b) {
  switch (t) {
    case DType::q4_0:
    case DType::iq4_nl: return 18 * (b / 2) + b % 2;
    case DType::q8_0: return 34 * (b / 2) + b % 2;
    case DType::q5_0: return b < 16 ? 22 * (b / 2) + b % 2 : 22 * ((b - 16) / 4) + 2 + (b - 16) % 4;
    case DType::q5_1: return b < 32 ? 24 * (b / 4) + b % 4 : 24 * ((b - 32) / 4) + 4 + (b - 32) % 4;
    case DType::q4_K:
    case DType::q5_K:
    case DType::iq4_xs: return b;
    case DType::q6_K: return b < 16 ? 192 + b : b < 18 ? 208 + (b - 16) : -1;
    case DType::q2_K: return b < 16 ? b : 80 + (b - 16);
    default: return -1;
  }
}

// Raw bytes of one row's full chunk (8 blocks of a 32-element format, one super-block otherwise).
constexpr int64_t chunk_bytes(DType t) {
  switch (t) {
    case DType::q4_0:
    case DType::iq4_nl: return 8 * 18;
    case DType::q8_0: return 8 * 34;
    case DType::q5_0: return 8 * 22;
    case DType::q5_1: return 8 * 24;
    case DType::q4_K: return 144;
    case DType::q5_K: return 176;
    case DType::q6_K: return 210;
    case DType::q2_K: return 84;
    case DType::iq4_xs: return 136;
    default: return 0;
  }
}

// Geometry of one packed matrix [n, k] (an expert of a packed [E, n, k] weight is `matrix_bytes`
// further on).
struct Geometry {
  DType type = DType::q4_0;
  int64_t n = 0, k = 0, row_bytes = 0;  // raw row bytes
  int64_t tiles = 0, chunks = 0, rec = 0;
  int64_t matrix_bytes() const { return tiles * chunks * rec; }
};
inline Geometry geometry(DType t, int64_t n, int64_t k, int64_t row_bytes) {
  Geometry g;
  g.type = t;
  g.n = n;
  g.k = k;
  g.row_bytes = row_bytes;
  g.tiles = (n + kTileRows - 1) / kTileRows;
  g.chunks = (k + kChunkElems - 1) / kChunkElems;
  g.rec = record_bytes(t);
  return g;
}

// The raw byte (offset in the [n, k] matrix) that packed byte `off` (< matrix_bytes) holds, or -1
// for padding. One function serves packing (gather) and unpacking (scatter) on both backends.
constexpr int64_t source_of(DType t, int64_t n, int64_t row_bytes, int64_t chunks, int64_t off) {
  const int64_t rec = record_bytes(t);
  const int64_t tile = off / (chunks * rec), rem = off % (chunks * rec);
  const int64_t chunk = rem / rec;
  const int in = int(rem % rec);
  const int lw = lane_words(t), hw = hdr_words(t);
  int row_in_tile, src;
  if (in < 256 * lw) {
    const int i = in / 512, lane = (in / 16) % 32, u = 4 * i + (in % 16) / 4;  // u = 2w + r
    const int g = lane / 4, c = lane % 4, w = u / 2, r = u % 2;
    row_in_tile = g + 8 * r;
    src = lane_src(t, w, c) + in % 4;
  } else {
    const int h = in - 256 * lw, word = h / 4, gr = word / hw;  // gr = 2g + r
    row_in_tile = gr / 2 + 8 * (gr % 2);
    const int s = hdr_src(t, (word % hw) * 4 + h % 4);
    if (s < 0) return -1;
    src = s;
  }
  const int64_t row = tile * kTileRows + row_in_tile;
  const int64_t col = chunk * chunk_bytes(t) + src;  // byte within the raw row
  if (row >= n || col >= row_bytes) return -1;
  return row * row_bytes + col;
}

// ---- MLX affine weights (pack_affine, include/lmk/affine.h) -----------------------------------------
// Same tiles, chunks and record planes; the lane words and header of a row (formats.cuh, FAffine):
//   4-bit: 8 lane words, word s (sub-block s of the chunk), lane c: byte i = code 4c + i (low
//          nibble) | code 16 + 4c + i (high nibble) of the sub-block (q4_0's order);
//   6-bit: 12 lane words: words 0..7 the low four bits as 4-bit's; word 8 + s / 2, bits
//          16·(s % 2) + 2i and + 8 + 2i (i < 4): the top two bits of codes 4c + i and 16 + 4c + i;
//   8-bit: 16 lane words, word 2s + h, lane c: byte i = code 16h + 4c + i of sub-block s;
//   header: 256 / gs words (8, 4 or 2), word j = scale | bias << 16 (their 16-bit patterns) of
//          the chunk's group j, so sub-block s reads word s >> affine_group_shift(gs).
// Rows past N and sub-blocks past K are zeros (scale 0: they add nothing).
constexpr int affine_lane_words(int bits) { return bits == 4 ? 8 : bits == 6 ? 12 : 16; }
constexpr int affine_group_shift(int gs) { return gs == 32 ? 0 : gs == 64 ? 1 : 2; }  // gs 32 / 64 / 128
constexpr int affine_hdr_words(int gs) { return 8 >> affine_group_shift(gs); }
inline Geometry affine_geometry(int bits, int gs, int64_t n, int64_t k) {
  Geometry g;
  g.type = DType::u32;  // not a GGML type
  g.n = n;
  g.k = k;
  g.row_bytes = k * bits / 8;
  g.tiles = (n + kTileRows - 1) / kTileRows;
  g.chunks = (k + kChunkElems - 1) / kChunkElems;
  g.rec = 256 * int64_t(affine_lane_words(bits)) + 64 * int64_t(affine_hdr_words(gs));
  return g;
}

// The MLX arrays of [E, n, k] affine weights: codes (rows of k·bits/8 bytes, code j at bits
// j·bits of the row), scales and biases [E, n, k / gs] as 16-bit patterns (bf16 or f16).
struct AffineSource {
  const uint8_t* codes = nullptr;
  const uint16_t* scales = nullptr;
  const uint16_t* biases = nullptr;
  int bits = 4, gs = 64;
};

// The word at byte `in` (a multiple of 4) of the record of (tile, chunk) of expert e.
#ifdef __CUDACC__
__host__ __device__
#endif
inline uint32_t affine_record_word(const AffineSource& s, const Geometry& g, int64_t e, int64_t tile, int64_t chunk,
                                   int in) {
  const int lw = affine_lane_words(s.bits);
  int row_in_tile, sb_in_chunk, half = 0, lane_c = 0, w = 0;
  bool header = false;
  if (in < 256 * lw) {
    const int lane = (in / 16) % 32, u = 4 * (in / 512) + (in % 16) / 4;  // u = 2w + r
    w = u / 2;
    row_in_tile = lane / 4 + 8 * (u % 2);
    lane_c = lane % 4;
    sb_in_chunk = s.bits == 8 ? w / 2 : s.bits == 6 && w >= 8 ? 2 * (w - 8) : w;
    half = s.bits == 8 ? w % 2 : 0;
  } else {
    const int hdr = affine_hdr_words(s.gs), hw = (in - 256 * lw) / 4, gr = hw / hdr;  // gr = 2g + r
    row_in_tile = gr / 2 + 8 * (gr % 2);
    sb_in_chunk = (hw % hdr) << affine_group_shift(s.gs);  // the group's first sub-block
    header = true;
  }
  const int64_t row = tile * kTileRows + row_in_tile, sb = chunk * 8 + sb_in_chunk;
  if (row >= g.n) return 0;
  const int64_t mrow = e * g.n + row;
  if (header) {
    if (sb * 32 >= g.k) return 0;
    const int64_t groups = g.k / s.gs, at = mrow * groups + sb * 32 / s.gs;
    return uint32_t(s.scales[at]) | uint32_t(s.biases[at]) << 16;
  }
  const uint8_t* codes = s.codes + mrow * g.row_bytes;
  // Sub-blocks are whole (K % gs == 0, gs >= 32): past K a lane word is zero. 4- and 8-bit lane
  // words take their codes' bytes directly (what the code-by-code loop below gives).
  if (s.bits != 6 && sb * 32 >= g.k) return 0;
  if (s.bits == 4) {  // codes 4c .. 4c+3 and 16 + 4c .. 16 + 4c+3: two bytes each
    const uint8_t* p = codes + sb * 16 + 2 * lane_c;
    auto spread = [](uint32_t a) {  // nibble i -> low nibble of byte i
      return (a & 0xFu) | (a >> 4 & 0xFu) << 8 | (a >> 8 & 0xFu) << 16 | (a >> 12 & 0xFu) << 24;
    };
    return spread(p[0] | uint32_t(p[1]) << 8) | spread(p[8] | uint32_t(p[9]) << 8) << 4;
  }
  if (s.bits == 8) {
    const uint8_t* p = codes + sb * 32 + 16 * half + 4 * lane_c;
    return p[0] | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 | uint32_t(p[3]) << 24;
  }
  // Code j of the row (a little-endian bit stream of `bits`-bit codes; 0 past K).
  auto code = [&](int64_t j) -> uint32_t {
    if (j >= g.k) return 0;
    if (s.bits == 8) return codes[j];
    if (s.bits == 4) return (codes[j / 2] >> (4 * (j % 2))) & 0xFu;
    const int64_t bit = 6 * j, byte = bit / 8;
    const int sh = int(bit % 8);
    const uint32_t two = codes[byte] | (sh > 2 ? uint32_t(codes[byte + 1]) << 8 : 0u);
    return (two >> sh) & 63u;
  };
  uint32_t v = 0;
  if (s.bits == 6 && w >= 8) {  // the top-bit words: two sub-blocks, 16 bits each
    for (int part = 0; part < 2; ++part) {
      const int64_t base = (sb + part) * 32 + 4 * lane_c;
      for (int i = 0; i < 4; ++i) {
        v |= (code(base + i) >> 4) << (16 * part + 2 * i);
        v |= (code(base + 16 + i) >> 4) << (16 * part + 8 + 2 * i);
      }
    }
    return v;
  }
  for (int i = 0; i < 4; ++i) {
    const int64_t j = sb * 32 + 16 * half + 4 * lane_c + i;  // element of the row
    const uint32_t b = s.bits == 8 ? code(j) : (code(j) & 0xFu) | (code(j + 16) & 0xFu) << 4;
    v |= b << (8 * i);
  }
  return v;
}


// Word `word` (< matrix_bytes / 4) of expert e's packed matrix.
#ifdef __CUDACC__
__host__ __device__
#endif
inline uint32_t affine_packed_word(const AffineSource& s, const Geometry& g, int64_t e, int64_t word) {
  const int64_t rec_words = g.rec / 4, per_tile = g.chunks * rec_words;
  return affine_record_word(s, g, e, word / per_tile, word % per_tile / rec_words, int(word % rec_words) * 4);
}

}  // namespace lmk::packed
