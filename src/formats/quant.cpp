// Host quantization utilities (quant-formats.md §2–§5) on top of formats/blocks.h.
#include "lmk/quant.h"

#include <cmath>
#include <cstring>

#include "formats/blocks.h"
#include "lmk/error.h"
#include "lmk/half.h"

namespace lmk {

namespace {

void check_count(const char* who, DType type, int64_t n) {
  if (n < 0) LMK_THROW(InvalidArgument, who, ": negative element count ", n);
  const auto& info = dtype_info(type);
  if (n % info.block_elems != 0)
    LMK_THROW(InvalidArgument, who, ": ", n, " values is not a multiple of the ", info.name, " block size ",
              info.block_elems);
}

// Copy block i into an aligned local before decoding: src may be 1-aligned (GGUF alignment 1).
template <typename T>
void dequant_blocks(const uint8_t* src, float* dst, int64_t nblocks) {
  typename T::block b;
  for (int64_t i = 0; i < nblocks; ++i) {
    std::memcpy(&b, src + i * T::block_bytes, sizeof b);
    T::dequant(b, dst + i * T::qk);
  }
}

template <typename S, typename F>
void convert_plain(const uint8_t* src, float* dst, int64_t n, F f) {
  for (int64_t i = 0; i < n; ++i) {
    S v;
    std::memcpy(&v, src + i * int64_t(sizeof(S)), sizeof(S));
    dst[i] = f(v);
  }
}

}  // namespace

void quantize_row(DType type, const float* x, void* dst, int64_t n) {
  const char* who = "quantize_row";
  if (type != DType::q4_0 && type != DType::q8_0)
    LMK_THROW(Unsupported, who, ": no quantizer for ", name(type), ", supported {q4_0, q8_0}");
  check_count(who, type, n);
  if (n > 0 && (!x || !dst)) LMK_THROW(InvalidArgument, who, ": null pointer");
  auto* out = static_cast<uint8_t*>(dst);
  for (int64_t i = 0; i < n / 32; ++i) {
    if (type == DType::q4_0) {
      blocks::block_q4_0 b;
      blocks::quantize_block_q4_0(x + 32 * i, &b);
      std::memcpy(out + 18 * i, &b, 18);
    } else {
      blocks::block_q8_0 b;
      blocks::quantize_block_q8_0(x + 32 * i, &b);
      std::memcpy(out + 34 * i, &b, 34);
    }
  }
}

void dequantize_row(DType type, const void* src, float* dst, int64_t n) {
  const char* who = "dequantize_row";
  check_count(who, type, n);
  if (n > 0 && (!src || !dst)) LMK_THROW(InvalidArgument, who, ": null pointer");
  const auto* p = static_cast<const uint8_t*>(src);
  const bool block = blocks::visit_block_format(type, [&](auto tag) {
    using T = typename decltype(tag)::type;
    dequant_blocks<T>(p, dst, n / T::qk);
  });
  if (block) return;
  switch (type) {
    case DType::f32: std::memcpy(dst, p, size_t(n) * 4); break;
    case DType::f16: convert_plain<uint16_t>(p, dst, n, [](uint16_t h) { return f16_bits_to_f32(h); }); break;
    case DType::bf16: convert_plain<uint16_t>(p, dst, n, [](uint16_t h) { return bf16_bits_to_f32(h); }); break;
    case DType::f64: convert_plain<double>(p, dst, n, [](double v) { return float(v); }); break;
    case DType::i8: convert_plain<int8_t>(p, dst, n, [](int8_t v) { return float(v); }); break;
    case DType::i16: convert_plain<int16_t>(p, dst, n, [](int16_t v) { return float(v); }); break;
    case DType::i32: convert_plain<int32_t>(p, dst, n, [](int32_t v) { return float(v); }); break;
    default: LMK_THROW(Unsupported, who, ": cannot convert ", name(type), " to f32");
  }
}

std::vector<float> dequantize_row(DType type, std::span<const uint8_t> src, int64_t n) {
  check_count("dequantize_row", type, n);
  const int64_t need = storage_bytes(type, n);
  if (int64_t(src.size()) != need)
    LMK_THROW(InvalidArgument, "dequantize_row: ", n, " values of ", name(type), " take ", need, " bytes, got ",
              src.size());
  std::vector<float> y(static_cast<size_t>(n));
  dequantize_row(type, src.data(), y.data(), n);
  return y;
}

void qdq_row(DType type, const float* x, float* y, int64_t n) {
  const char* who = "qdq_row";
  if (type != DType::q4_0 && type != DType::q8_0)
    LMK_THROW(Unsupported, who, ": format ", name(type), " not supported, expected {q4_0, q8_0}");
  check_count(who, type, n);
  for (int64_t i = 0; i < n / 32; ++i) {
    float out[32];
    if (type == DType::q4_0) {
      blocks::block_q4_0 b;
      blocks::quantize_block_q4_0(x + 32 * i, &b);
      blocks::Q4_0::dequant(b, out);
    } else {
      blocks::block_q8_0 b;
      blocks::quantize_block_q8_0(x + 32 * i, &b);
      blocks::Q8_0::dequant(b, out);
    }
    std::memcpy(y + 32 * i, out, sizeof out);
  }
}

// ---- MLX affine ----

int64_t affine_packed_row_bytes(int bits, int64_t k) { return blocks::affine_row_bytes(bits, k); }

void check_affine_format(const char* who, int bits, int64_t group_size, int64_t k) {
  if (bits != 4 && bits != 6 && bits != 8)
    LMK_THROW(Unsupported, who, ": MLX affine bits ", bits, " not supported, supported {4, 6, 8}",
              (bits == 2 || bits == 3 || bits == 5) ? " (MLX's 2/3/5-bit packings are not implemented)" : "");
  if (group_size <= 0) LMK_THROW(InvalidArgument, who, ": group_size must be positive, got ", group_size);
  if (group_size != 32 && group_size != 64 && group_size != 128)
    LMK_THROW(Unsupported, who, ": group_size ", group_size, " not supported, supported {32, 64, 128}");
  if (k <= 0) LMK_THROW(InvalidArgument, who, ": K must be positive, got ", k);
  if (k % group_size != 0)
    LMK_THROW(InvalidArgument, who, ": K = ", k, " is not a multiple of group_size ", group_size);
}

namespace {
float round_param(float v, DType t) {
  switch (t) {
    case DType::f32: return v;
    case DType::f16: return f16_bits_to_f32(f32_to_f16_bits(v));
    case DType::bf16: return bf16_bits_to_f32(f32_to_bf16_bits(v));
    default: LMK_THROW(Unsupported, "affine: scales/biases dtype ", name(t), " not supported, expected {f16, bf16, f32}");
  }
}
void store_param(void* base, int64_t i, float v, DType t) {
  if (t == DType::f32) static_cast<float*>(base)[i] = v;
  else if (t == DType::f16) static_cast<uint16_t*>(base)[i] = f32_to_f16_bits(v);
  else static_cast<uint16_t*>(base)[i] = f32_to_bf16_bits(v);
}
}  // namespace

void affine_quantize(const float* w, int64_t rows, int64_t k, int bits, int64_t gs, DType pt, void* packed,
                     void* scales, void* biases) {
  const char* who = "affine_quantize";
  check_affine_format(who, bits, gs, k);
  (void)round_param(0.f, pt);
  if (rows < 0) LMK_THROW(InvalidArgument, who, ": negative row count");
  const int64_t rb = affine_packed_row_bytes(bits, k), groups = k / gs;
  const uint32_t qmax = (1u << bits) - 1;
  auto* out = static_cast<uint8_t*>(packed);
  std::memset(out, 0, size_t(rows * rb));
  for (int64_t r = 0; r < rows; ++r) {
    uint8_t* row = out + r * rb;
    for (int64_t g = 0; g < groups; ++g) {
      const float* x = w + r * k + g * gs;
      float mn = x[0], mx = x[0];
      for (int64_t i = 1; i < gs; ++i) {
        mn = std::fmin(mn, x[i]);
        mx = std::fmax(mx, x[i]);
      }
      float s = (mx - mn) / float(qmax);
      if (!(s > 0.0f)) s = 1.0f;
      s = round_param(s, pt);
      if (!(s > 0.0f)) s = 1.0f;  // underflow in f16/bf16
      const float b = round_param(mn, pt);
      // Rounding may shrink the covered range [b, b + qmax*s]; widen s one step at a time.
      for (int step = 0; step < 4 && b + float(qmax) * s < mx; ++step) s = round_param(std::nextafter(s, INFINITY) * (1.0f + 1.0f / 512), pt);
      store_param(scales, r * groups + g, s, pt);
      store_param(biases, r * groups + g, b, pt);
      for (int64_t i = 0; i < gs; ++i) {
        float t = std::round((x[i] - b) / s);
        uint32_t q = t > 0.0f ? (t >= float(qmax) ? qmax : uint32_t(t)) : 0u;
        const int64_t bit = (g * gs + i) * bits;
        // Bits may straddle a byte boundary (6-bit).
        uint32_t v = q << (bit & 7);
        row[bit >> 3] |= uint8_t(v);
        if ((bit & 7) + bits > 8) row[(bit >> 3) + 1] |= uint8_t(v >> 8);
      }
    }
  }
}

void affine_dequantize(const void* packed, const void* scales, const void* biases, DType pt, int64_t rows, int64_t k,
                       int bits, int64_t gs, float* y) {
  const char* who = "affine_dequantize";
  check_affine_format(who, bits, gs, k);
  (void)round_param(0.f, pt);
  const int64_t rb = affine_packed_row_bytes(bits, k), groups = k / gs;
  const auto* in = static_cast<const uint8_t*>(packed);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < k; ++c) {
      const int64_t g = r * groups + c / gs;
      const float s = blocks::affine_param(scales, g, pt);
      const float b = biases ? blocks::affine_param(biases, g, pt) : 0.0f;
      y[r * k + c] = blocks::affine_value(s, b, blocks::affine_code(in + r * rb, c, bits));
    }
}

}  // namespace lmk
