// CPU backend of the matmul family: weights dequantized with the exact f32 formulas of
// quant-formats.md (formats/blocks.h), products and sums in double (more accurate than the f32
// accumulation the spec allows), one rounding when storing.
#include <cstring>
#include <vector>

#include "cpu/common.h"
#include "formats/blocks.h"
#include "ops/matmul/backend.h"
#include "ops/matmul/packed_layout.h"

namespace lmk::cpu {

namespace {

// Row n of a block-format matrix, dequantized to f32 (k values).
void dequant_row(DType t, const uint8_t* row, int64_t k, float* out) {
  const bool ok = blocks::visit_block_format(t, [&](auto tag) {
    using F = typename decltype(tag)::type;
    const int64_t nb = k / F::qk;
    typename F::block blk;
    for (int64_t b = 0; b < nb; ++b) {
      std::memcpy(&blk, row + b * F::block_bytes, F::block_bytes);
      F::dequant(blk, out + b * F::qk);
    }
  });
  if (!ok) LMK_THROW(Unsupported, "matmul: dtype ", name(t), " is not a GGML block format");
}

double dot(const float* x, const float* w, int64_t k) {
  double acc = 0;
  for (int64_t i = 0; i < k; ++i) acc += double(x[i]) * double(w[i]);
  return acc;
}

float load_as_f32(const void* p, DType t, int64_t i) {
  switch (t) {
    case DType::f32: return static_cast<const float*>(p)[i];
    case DType::f16: return float(static_cast<const f16_t*>(p)[i]);
    case DType::bf16: return float(static_cast<const bf16_t*>(p)[i]);
    default: LMK_THROW(Unsupported, "matmul: dtype ", name(t), " not supported");
  }
}

// Rounds an f32 value to t and back (t = f32 keeps it).
float round_through(float v, DType t) {
  if (t == DType::f16) return float(f16_t(v));
  if (t == DType::bf16) return float(bf16_t(v));
  return v;
}

void store_from_f64(void* p, DType t, int64_t i, double v) {
  const float f = float(v);
  switch (t) {
    case DType::f32: static_cast<float*>(p)[i] = f; break;
    case DType::f16: static_cast<f16_t*>(p)[i] = f16_t(f); break;
    case DType::bf16: static_cast<bf16_t*>(p)[i] = bf16_t(f); break;
    default: LMK_THROW(Unsupported, "matmul: output dtype ", name(t), " not supported");
  }
}

}  // namespace

void pack(const void* raw, const PackedView& p, void* packed) {
  const auto g = packed::geometry(p.type, p.n, p.k, p.row_bytes);
  const int64_t mb = g.matrix_bytes(), rb = p.n * p.row_bytes;
  for (int64_t e = 0; e < p.n_experts; ++e) {
    const auto* src = static_cast<const uint8_t*>(raw) + e * rb;
    auto* dst = static_cast<uint8_t*>(packed) + e * mb;
    for (int64_t off = 0; off < mb; ++off) {
      const int64_t s = packed::source_of(p.type, p.n, p.row_bytes, g.chunks, off);
      dst[off] = s < 0 ? uint8_t(0) : src[s];
    }
  }
}

namespace {
// The raw rows [16·tile, 16·tile + 16) of expert e of a packed weight into rows (rows past N are
// not written, so rows may point into the raw [N, K] matrix itself): one tile's records scattered back.
void unpack_tile(const PackedView& p, const packed::Geometry& g, int64_t e, int64_t tile, uint8_t* rows) {
  const int64_t tile_bytes = g.chunks * g.rec, first = tile * tile_bytes;
  const auto* src = static_cast<const uint8_t*>(p.data) + e * g.matrix_bytes() + first;
  const int64_t base = tile * packed::kTileRows * p.row_bytes;  // raw offset of the tile's first row
  for (int64_t off = 0; off < tile_bytes; ++off) {
    const int64_t s = packed::source_of(p.type, p.n, p.row_bytes, g.chunks, first + off);
    if (s >= 0) rows[s - base] = src[off];
  }
}
}  // namespace

void unpack(const PackedView& p, void* raw) {
  const auto g = packed::geometry(p.type, p.n, p.k, p.row_bytes);
  for (int64_t e = 0; e < p.n_experts; ++e)
    for (int64_t t = 0; t < g.tiles; ++t)
      unpack_tile(p, g, e, t, static_cast<uint8_t*>(raw) + (e * p.n + t * packed::kTileRows) * p.row_bytes);
}

void pack_affine(const packed::AffineSource& src, const PackedView& p, void* out) {
  const auto g = geometry_of(p);
  const int64_t words = g.matrix_bytes() / 4;
  auto* o = static_cast<uint32_t*>(out);
  for (int64_t e = 0; e < p.n_experts; ++e)
    for (int64_t i = 0; i < words; ++i) o[e * words + i] = packed::affine_packed_word(src, g, e, i);
}

namespace {
// Row n of expert e of packed affine weights, dequantized as the spec's reference does (f32
// scale·q, then + bias), read straight from the packed records (packed_layout.h): per chunk and
// 32-value sub-block s, lane quarter c holds values 4c..4c+3 and 16+4c..16+4c+3.
void affine_packed_row(const PackedView& p, const packed::Geometry& g, int64_t e, int64_t n, float* row) {
  const auto* base = static_cast<const uint8_t*>(p.data) + e * g.matrix_bytes();
  const int lw = packed::affine_lane_words(p.affine_bits), hdr = packed::affine_hdr_words(p.affine_gs);
  const int gshift = packed::affine_group_shift(p.affine_gs);
  const int64_t tile = n / packed::kTileRows;
  const int gq = int(n % 8), rr = int(n % packed::kTileRows) / 8;
  for (int64_t chunk = 0; chunk * packed::kChunkElems < p.k; ++chunk) {
    const uint8_t* rec = base + (tile * g.chunks + chunk) * g.rec;
    auto word = [&](int w, int c) {  // lane word w of lane quarter c, this row
      const int u = 2 * w + rr;
      uint32_t v;
      std::memcpy(&v, rec + ((u / 4) * 32 + 4 * gq + c) * 16 + (u % 4) * 4, 4);
      return v;
    };
    for (int s = 0; s < 8 && (chunk * 8 + s) * 32 < p.k; ++s) {
      uint16_t h[2];  // scale, bias
      std::memcpy(h, rec + 256 * lw + ((2 * gq + rr) * hdr + (s >> gshift)) * 4, 4);
      const DType st = p.affine_f16 ? DType::f16 : DType::bf16;
      const float sc = load_as_f32(h, st, 0), bi = load_as_f32(h, st, 1);
      float* out = row + (chunk * 8 + s) * 32;
      for (int c = 0; c < 4; ++c) {
        uint32_t lo, hi;  // bytes i: the codes of values 4c + i and 16 + 4c + i
        if (p.affine_bits == 8) {
          lo = word(2 * s, c), hi = word(2 * s + 1, c);
        } else {
          const uint32_t q = word(s, c);
          lo = q & 0x0F0F0F0Fu, hi = (q >> 4) & 0x0F0F0F0Fu;
          if (p.affine_bits == 6) {  // top two bits: word 8 + s / 2, bits 16·(s % 2) + 8·half + 2i
            const uint32_t t = word(8 + s / 2, c) >> (16 * (s % 2));
            for (int i = 0; i < 4; ++i) {
              lo |= ((t >> (2 * i)) & 3u) << (8 * i + 4);
              hi |= ((t >> (8 + 2 * i)) & 3u) << (8 * i + 4);
            }
          }
        }
        for (int i = 0; i < 4; ++i) {
          out[4 * c + i] = sc * float((lo >> (8 * i)) & 0xFFu) + bi;
          out[16 + 4 * c + i] = sc * float((hi >> (8 * i)) & 0xFFu) + bi;
        }
      }
    }
  }
}

// Row n of expert e of any packed weight, dequantized. Callers walk n upward from 0: a GGML tile is
// unpacked into tile_rows at its first row.
void packed_row(const PackedView& p, const packed::Geometry& g, int64_t e, int64_t n, std::vector<uint8_t>& tile_rows,
                float* row) {
  if (p.affine_bits) return affine_packed_row(p, g, e, n, row);
  const int64_t t = n / packed::kTileRows, r = n % packed::kTileRows;
  if (r == 0) unpack_tile(p, g, e, t, tile_rows.data());
  dequant_row(p.type, tile_rows.data() + r * p.row_bytes, p.k, row);
}
}  // namespace

void quantized_matmul_packed(const float* x, int64_t m_rows, const PackedView& p, float* y) {
  const auto g = geometry_of(p);
  std::vector<uint8_t> rows(size_t(packed::kTileRows * p.row_bytes));
  std::vector<float> row(static_cast<size_t>(p.k));
  for (int64_t n = 0; n < p.n; ++n) {
    packed_row(p, g, 0, n, rows, row.data());
    for (int64_t m = 0; m < m_rows; ++m) y[m * p.n + n] = float(dot(x + m * p.k, row.data(), p.k));
  }
}

void quantized_matmul_id_packed(const QmmIdArgs& a, const PackedView& p) {
  const auto g = geometry_of(p);
  auto id_of = [&](int64_t r) -> int64_t {
    return a.ids_i32 ? int64_t(static_cast<const int32_t*>(a.ids)[r]) : int64_t(static_cast<const uint32_t*>(a.ids)[r]);
  };
  std::vector<std::vector<int64_t>> by_expert(size_t(p.n_experts));  // ids were validated
  for (int64_t r = 0; r < a.rows; ++r) by_expert[size_t(id_of(r))].push_back(r);
  std::vector<uint8_t> rows(size_t(packed::kTileRows * p.row_bytes));
  std::vector<float> row(static_cast<size_t>(p.k));
  for (int64_t e = 0; e < p.n_experts; ++e) {
    const auto& rs = by_expert[size_t(e)];
    if (rs.empty()) continue;
    for (int64_t n = 0; n < p.n; ++n) {
      packed_row(p, g, e, n, rows, row.data());
      for (int64_t yr : rs) {
        const int64_t xr = a.input_per_slot ? yr : yr / a.top_k;
        a.y[yr * p.n + n] = float(dot(a.x + xr * p.k, row.data(), p.k));
      }
    }
  }
}

void quantized_matmul(const QmmArgs& a) {
  const QWeight& w = a.w;
  std::vector<float> row(static_cast<size_t>(w.k));
  const auto* base = static_cast<const uint8_t*>(w.data);
  for (int64_t n = 0; n < w.n; ++n) {
    dequant_row(w.type, base + n * w.row_bytes, w.k, row.data());
    for (int64_t m = 0; m < a.rows; ++m) a.y[m * w.n + n] = float(dot(a.x + m * w.k, row.data(), w.k));
  }
}

void quantized_matmul_id(const QmmIdArgs& a) {
  const QWeight& w = a.w;
  auto id_of = [&](int64_t r) -> int64_t {
    return a.ids_i32 ? int64_t(static_cast<const int32_t*>(a.ids)[r]) : int64_t(static_cast<const uint32_t*>(a.ids)[r]);
  };
  // Rows of each expert (ids were validated), so every weight row is dequantized once per expert.
  std::vector<std::vector<int64_t>> by_expert(size_t(w.n_experts));
  for (int64_t r = 0; r < a.rows; ++r) by_expert[size_t(id_of(r))].push_back(r);
  std::vector<float> row(static_cast<size_t>(w.k));
  const auto* base = static_cast<const uint8_t*>(w.data);
  for (int64_t e = 0; e < w.n_experts; ++e) {
    const auto& rows = by_expert[size_t(e)];
    if (rows.empty()) continue;
    const uint8_t* we = base + e * w.expert_stride;
    for (int64_t n = 0; n < w.n; ++n) {
      dequant_row(w.type, we + n * w.row_bytes, w.k, row.data());
      for (int64_t r : rows) {
        const int64_t xr = a.input_per_slot ? r : r / a.top_k;
        a.y[r * w.n + n] = float(dot(a.x + xr * w.k, row.data(), w.k));
      }
    }
  }
}

void dense(const DenseArgs& a) {
  const int64_t r = a.b1 / a.b0;
  std::vector<float> wrow(static_cast<size_t>(a.k));
  for (int64_t b = 0; b < a.b1; ++b) {
    const int64_t wb = b / r;
    // Widen this batch's weight rows one at a time; rows of x are rounded once up front.
    std::vector<float> xs(static_cast<size_t>(a.m * a.k));
    for (int64_t i = 0; i < a.m * a.k; ++i)
      xs[size_t(i)] = round_through(load_as_f32(a.x, a.xt, b * a.m * a.k + i), a.xround);
    for (int64_t n = 0; n < a.n; ++n) {
      for (int64_t i = 0; i < a.k; ++i) wrow[size_t(i)] = load_as_f32(a.w, a.wt, (wb * a.n + n) * a.k + i);
      for (int64_t m = 0; m < a.m; ++m)
        store_from_f64(a.y, a.yt, (b * a.m + m) * a.n + n, dot(xs.data() + m * a.k, wrow.data(), a.k));
    }
  }
}

}  // namespace lmk::cpu
