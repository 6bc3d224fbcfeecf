#include <cmath>
#include <cstring>
#include <vector>

#include "cpu/common.h"
#include "formats/blocks.h"
#include "lmk/quant.h"
#include "ops/quant/backend.h"

namespace lmk::cpu {

namespace {

// Store n f32 values into dst of dtype f32/f16/bf16 starting at element offset.
void store_row(const float* v, int64_t n, const Tensor& dst, int64_t offset) {
  dispatch_float("quant", dst.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    T* p = dst.data_as<T>() + offset;
    for (int64_t i = 0; i < n; ++i) p[i] = from_f32<T>(v[i]);
  });
}

int64_t id_at(const Tensor& ids, int64_t i) {
  return ids.dtype() == DType::u32 ? int64_t(ids.data_as<uint32_t>()[i]) : int64_t(ids.data_as<int32_t>()[i]);
}

void affine_row(const AffineArgs& a, int64_t row, float* y) {
  const auto* p = static_cast<const uint8_t*>(a.packed) + row * a.row_bytes;
  const int64_t groups = a.k / a.group_size;
  for (int64_t c = 0; c < a.k; ++c) {
    const int64_t g = row * groups + c / a.group_size;
    y[c] = blocks::affine_value(blocks::affine_param(a.scales, g, a.param_dtype),
                                blocks::affine_param(a.biases, g, a.param_dtype), blocks::affine_code(p, c, a.bits));
  }
}

}  // namespace

void dequantize(const Tensor& src, const Tensor& dst) {
  const int64_t n = src.numel();
  if (dst.dtype() == DType::f32) {
    dequantize_row(src.dtype(), src.data(), dst.data_as<float>(), n);
    return;
  }
  // Row by row through an f32 scratch row, then one RNE rounding.
  const int64_t cols = src.size(-1), rows = n / cols;
  const int64_t row_bytes = storage_bytes(src.dtype(), cols);
  std::vector<float> tmp(static_cast<size_t>(cols));
  for (int64_t r = 0; r < rows; ++r) {
    dequantize_row(src.dtype(), static_cast<const uint8_t*>(src.data()) + r * row_bytes, tmp.data(), cols);
    store_row(tmp.data(), cols, dst, r * cols);
  }
}

void dequant_affine(const AffineArgs& a, int64_t rows, const Tensor& dst) {
  std::vector<float> tmp(static_cast<size_t>(a.k));
  for (int64_t r = 0; r < rows; ++r) {
    affine_row(a, r, tmp.data());
    store_row(tmp.data(), a.k, dst, r * a.k);
  }
}

void qdq_legacy(DType format, const Tensor& x, const Tensor& y) {
  qdq_row(format, x.data_as<float>(), y.data_as<float>(), x.numel());
}

void qdq_affine_init(const Tensor& w, const Tensor& scales, const Tensor& biases, const Tensor& q, int64_t gs, int n_bins) {
  const float* pw = w.data_as<float>();
  float* ps = scales.data_as<float>();
  float* pb = biases.data_as<float>();
  uint8_t* pq = q.data_as<uint8_t>();
  const int64_t groups = w.numel() / gs;
  const float top = float(n_bins - 1);
  for (int64_t g = 0; g < groups; ++g) {
    const float* x = pw + g * gs;
    float mn = x[0], mx = x[0];
    for (int64_t i = 1; i < gs; ++i) {
      mn = blocks::min_total(mn, x[i]);
      mx = blocks::max_total(mx, x[i]);
    }
    float s = blocks::div_rn(blocks::add_rn(mx, -mn), top);
    if (!(s > 0.0f)) s = 1.0f;
    const float b = mn;
    ps[g] = s;
    pb[g] = b;
    for (int64_t i = 0; i < gs; ++i) {
      const float z = blocks::round_away(blocks::div_rn(blocks::add_rn(x[i], -b), s));
      pq[g * gs + i] = uint8_t(z > 0.0f ? (z >= top ? top : z) : 0.0f);  // NaN -> 0
    }
  }
}

void qdq_affine_forward(const Tensor& q, const Tensor& scales, const Tensor& biases, const Tensor& out, int64_t gs) {
  const uint8_t* pq = q.data_as<uint8_t>();
  const float* ps = scales.data_as<float>();
  const float* pb = biases.data_as<float>();
  float* po = out.data_as<float>();
  for (int64_t i = 0, n = q.numel(); i < n; ++i)
    po[i] = blocks::add_rn(blocks::mul_rn(float(pq[i]), ps[i / gs]), pb[i / gs]);
}

void qdq_affine_backward_scales(const Tensor& q, const Tensor& dy, const Tensor& d_scales, int64_t gs) {
  const uint8_t* pq = q.data_as<uint8_t>();
  const float* pd = dy.data_as<float>();
  float* po = d_scales.data_as<float>();
  for (int64_t g = 0, groups = q.numel() / gs; g < groups; ++g) {
    double acc = 0;
    for (int64_t i = g * gs; i < (g + 1) * gs; ++i) acc += double(pq[i]) * double(pd[i]);
    po[g] = float(acc);
  }
}

void qdq_affine_backward_biases(const Tensor& dy, const Tensor& d_biases, int64_t gs) {
  const float* pd = dy.data_as<float>();
  float* po = d_biases.data_as<float>();
  for (int64_t g = 0, groups = dy.numel() / gs; g < groups; ++g) {
    double acc = 0;
    for (int64_t i = g * gs; i < (g + 1) * gs; ++i) acc += double(pd[i]);
    po[g] = float(acc);
  }
}

void embedding_ggml(const Tensor& table, const Tensor& ids, const Tensor& out) {
  const int64_t dim = table.size(1), t = ids.numel();
  const int64_t row_bytes = storage_bytes(table.dtype(), dim);
  const auto* base = static_cast<const uint8_t*>(table.data());
  float* po = out.data_as<float>();
  for (int64_t i = 0; i < t; ++i) dequantize_row(table.dtype(), base + id_at(ids, i) * row_bytes, po + i * dim, dim);
}

void embedding_affine(const AffineArgs& a, const Tensor& ids, const Tensor& out) {
  float* po = out.data_as<float>();
  for (int64_t i = 0, t = ids.numel(); i < t; ++i) affine_row(a, id_at(ids, i), po + i * a.k);
}

}  // namespace lmk::cpu
