#include "util/testkit.h"

#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <random>
#include <sstream>

#include "lmk/error.h"
#include "lmk/half.h"
#ifdef LMK_WITH_CUDA
#include <cuda_runtime.h>
#endif

namespace lmk::test {

uint64_t base_seed() {
  static const uint64_t seed = [] {
    if (const char* s = std::getenv("LMK_TEST_SEED")) return uint64_t(std::strtoull(s, nullptr, 0));
    return uint64_t(std::random_device{}()) ^ uint64_t(std::chrono::steady_clock::now().time_since_epoch().count());
  }();
  return seed;
}

uint64_t case_seed(std::string_view salt) {
  uint64_t h = 1469598103934665603ull ^ base_seed();
  for (char c : salt) h = (h ^ uint8_t(c)) * 1099511628211ull;
  return h;
}

HostTensor::HostTensor(DType t, std::vector<int64_t> s) : dtype(t), shape(std::move(s)) {
  Tensor probe(nullptr, dtype, shape, Device::cpu());
  bytes.assign(size_t(probe.nbytes()), 0);
}

int64_t HostTensor::numel() const {
  int64_t n = 1;
  for (auto d : shape) n *= d;
  return n;
}

double HostTensor::get(int64_t i) const {
  switch (dtype) {
    case DType::f32: return as<float>()[i];
    case DType::f16: return f16_bits_to_f32(as<uint16_t>()[i]);
    case DType::bf16: return bf16_bits_to_f32(as<uint16_t>()[i]);
    case DType::f64: return as<double>()[i];
    case DType::i8: return as<int8_t>()[i];
    case DType::i16: return as<int16_t>()[i];
    case DType::i32: return as<int32_t>()[i];
    case DType::i64: return double(as<int64_t>()[i]);
    case DType::u8: return as<uint8_t>()[i];
    case DType::u32: return as<uint32_t>()[i];
    default: LMK_THROW(Unsupported, "HostTensor::get: quantized dtype ", name(dtype));
  }
}

void HostTensor::set(int64_t i, double v) {
  switch (dtype) {
    case DType::f32: as<float>()[i] = float(v); break;
    case DType::f16: as<uint16_t>()[i] = f32_to_f16_bits(float(v)); break;
    case DType::bf16: as<uint16_t>()[i] = f32_to_bf16_bits(float(v)); break;
    case DType::f64: as<double>()[i] = v; break;
    case DType::i8: as<int8_t>()[i] = int8_t(v); break;
    case DType::i16: as<int16_t>()[i] = int16_t(v); break;
    case DType::i32: as<int32_t>()[i] = int32_t(v); break;
    case DType::i64: as<int64_t>()[i] = int64_t(v); break;
    case DType::u8: as<uint8_t>()[i] = uint8_t(v); break;
    case DType::u32: as<uint32_t>()[i] = uint32_t(v); break;
    default: LMK_THROW(Unsupported, "HostTensor::set: quantized dtype ", name(dtype));
  }
}

std::vector<double> HostTensor::to_double() const {
  std::vector<double> v(static_cast<size_t>(numel()));
  for (int64_t i = 0; i < numel(); ++i) v[size_t(i)] = get(i);
  return v;
}

HostTensor random_uniform(DType t, std::vector<int64_t> shape, uint64_t seed, double lo, double hi) {
  HostTensor h(t, std::move(shape));
  std::mt19937_64 rng(seed);
  if (dtype_info(t).is_quantized) {
    for (auto& b : h.bytes) b = uint8_t(rng());
    return h;
  }
  const bool is_int = !dtype_info(t).is_float;
  std::uniform_real_distribution<double> dist(lo, hi);
  for (int64_t i = 0; i < h.numel(); ++i) {
    double v = dist(rng);
    h.set(i, is_int ? std::floor(v) : v);
  }
  return h;
}

HostTensor random_normal(DType t, std::vector<int64_t> shape, uint64_t seed, double stddev) {
  HostTensor h(t, std::move(shape));
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> dist(0.0, stddev);
  for (int64_t i = 0; i < h.numel(); ++i) h.set(i, dist(rng));
  return h;
}

DeviceTensor to_device(const HostTensor& h, Device d) {
  DeviceTensor dt{Buffer(std::max<int64_t>(int64_t(h.bytes.size()), 1), d), {}};
  dt.tensor = Tensor(dt.buffer.data(), h.dtype, h.shape, d);
  copy_bytes(dt.buffer.data(), d, h.bytes.data(), Device::cpu(), int64_t(h.bytes.size()));
  return dt;
}

DeviceTensor poisoned(DType t, std::vector<int64_t> shape, Device d) {
  HostTensor h(t, std::move(shape));
  std::memset(h.bytes.data(), 0xFF, h.bytes.size());
  return to_device(h, d);
}

HostTensor to_host(const Tensor& t) {
  HostTensor h(t.dtype(), std::vector<int64_t>(t.shape().begin(), t.shape().end()));
  synchronize(t.device());
  copy_bytes(h.bytes.data(), Device::cpu(), t.data(), t.device(), int64_t(h.bytes.size()));
  return h;
}

void synchronize(Device d) {
#ifdef LMK_WITH_CUDA
  if (d.is_cuda()) {
    cudaError_t e = cudaDeviceSynchronize();
    if (e != cudaSuccess) LMK_THROW(Cuda, "cudaDeviceSynchronize: ", cudaGetErrorString(e));
  }
#endif
}

std::string Tolerance::str() const {
  std::ostringstream os;
  if (bit_exact) return "bit-exact";
  os << "rel_l2 " << rel_l2;
  if (rel) os << ", rel " << rel;
  if (abs) os << ", abs " << abs;
  if (ulps) os << ", " << ulps << " ulp";
  return os.str();
}

Tolerance exact() { return Tolerance{.bit_exact = true}; }

Tolerance tol_rounding(DType t) {
  if (t == DType::f32) return Tolerance{.rel_l2 = 1e-7, .rel = 1.2e-7};
  return Tolerance{.rel_l2 = t == DType::f16 ? 1e-3 : 8e-3, .ulps = 0.5};
}
Tolerance tol_transcendental(DType t) {
  if (t == DType::f32) return Tolerance{.rel_l2 = 2e-6, .rel = 2e-6, .abs = 1e-7};
  return Tolerance{.rel_l2 = t == DType::f16 ? 1e-3 : 8e-3, .ulps = 1};
}
Tolerance tol_reduction(DType t) {
  if (t == DType::f32) return Tolerance{.rel_l2 = 1e-6, .rel = 1e-5, .abs = 1e-30};
  return Tolerance{.rel_l2 = t == DType::f16 ? 2e-3 : 1.6e-2, .ulps = 2};
}

double round_to(DType t, double v) {
  if (t == DType::f32) return double(float(v));
  if (t != DType::f16 && t != DType::bf16) return v;
  if (!std::isfinite(v)) return v;
  // Correct rounding straight from fp64 (no double rounding through f32): scale by the ulp of
  // v's binade, round half to even, then apply the format's overflow threshold.
  const double u = ulp_of(t, v);
  const double r = std::nearbyint(v / u) * u;
  const double max_finite = t == DType::f16 ? 65504.0 : std::ldexp(2.0 - std::ldexp(1.0, -7), 127);
  if (std::fabs(r) > max_finite) return std::copysign(INFINITY, v);
  return r;
}

double ulp_of(DType t, double v) {
  double a = std::fabs(v);
  int p, emin;
  switch (t) {
    case DType::f16: p = 11; emin = -14; break;
    case DType::bf16: p = 8; emin = -126; break;
    case DType::f32: p = 24; emin = -126; break;
    default: p = 53; emin = -1022; break;
  }
  int e = a > 0 ? std::ilogb(a) : emin;
  if (e < emin) e = emin;
  return std::ldexp(1.0, e - (p - 1));
}

CompareResult compare(const HostTensor& out, std::span<const double> ref, const Tolerance& tol) {
  CompareResult r;
  std::ostringstream msg;
  if (int64_t(ref.size()) != out.numel()) {
    r.ok = false;
    msg << "size mismatch: out " << out.numel() << " vs ref " << ref.size();
    r.message = msg.str();
    return r;
  }
  double num = 0, den = 0, worst_ratio = -1;
  for (int64_t i = 0; i < out.numel(); ++i) {
    const double o = out.get(i), f = ref[size_t(i)];
    bool bad = false;
    double ratio = 0;
    if (std::isnan(f) || std::isnan(o)) {
      bad = std::isnan(f) != std::isnan(o);
      ratio = bad ? INFINITY : 0;
    } else if (std::isinf(f) || std::isinf(o)) {
      bad = o != f && !(tol.bit_exact && round_to(out.dtype, f) == o);
      ratio = bad ? INFINITY : 0;
    } else {
      const double d = std::fabs(o - f);
      num += d * d;
      den += f * f;
      r.max_abs = std::max(r.max_abs, d);
      if (tol.bit_exact) {
        bad = o != round_to(out.dtype, f);
        ratio = bad ? INFINITY : 0;
      } else {
        double allowed = std::max({tol.abs, tol.rel * std::fabs(f), tol.ulps * ulp_of(out.dtype, f)});
        ratio = allowed > 0 ? d / allowed : (d > 0 ? INFINITY : 0);
        bad = d > allowed;
      }
    }
    if (bad) r.failures++;
    if (ratio > worst_ratio) {
      worst_ratio = ratio;
      r.worst = i;
      r.worst_out = o;
      r.worst_ref = f;
    }
  }
  r.rel_l2 = den > 0 ? std::sqrt(num / den) : std::sqrt(num);
  if (!tol.bit_exact && r.rel_l2 > tol.rel_l2 && den > 0) {
    r.ok = false;
    msg << "rel_l2 " << r.rel_l2 << " > " << tol.rel_l2 << "; ";
  }
  if (r.failures) {
    r.ok = false;
    msg << r.failures << " of " << out.numel() << " elements outside tolerance (" << tol.str() << "); worst at "
        << r.worst << ": got " << r.worst_out << " want " << r.worst_ref << "; ";
  }
  if (!r.ok) msg << "seed " << base_seed();
  r.message = msg.str();
  return r;
}

}  // namespace lmk::test
