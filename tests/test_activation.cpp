// Activation family: rejected inputs (each asserting its ErrorCode) and the edge results that
// core-ops.md §3 names exactly. The edge tests run on the CPU and, in the Gpu suite, on CUDA.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <vector>

#include "util/expect_error.h"
#include "check/check.h"
#include "lmk/activation.h"
#include "lmk/lmk.h"

namespace lmk {
namespace {

using test::DeviceTensor;
using test::HostTensor;


constexpr ErrorCode kInvalid = ErrorCode::InvalidArgument;
constexpr ErrorCode kUnsupported = ErrorCode::Unsupported;

// Host scratch memory big enough for every view below (views may overlap on purpose).
struct Scratch {
  std::vector<double> mem = std::vector<double>(4096);
  Tensor t(DType dt, std::initializer_list<int64_t> shape, int64_t byte_offset = 0) {
    return Tensor(reinterpret_cast<unsigned char*>(mem.data()) + byte_offset, dt, shape);
  }
};

// ---- rejected inputs ----------------------------------------------------------------------------

TEST(ActivationErrors, GatedOpsRejectBadArguments) {
  Scratch s;
  const DType f32 = DType::f32, bf16 = DType::bf16;
  auto a = s.t(f32, {4, 8}), b = s.t(f32, {4, 8}, 1024), o = s.t(f32, {4, 8}, 2048);
  using Fn = void (*)(const Tensor&, const Tensor&, const Tensor&, Stream&);
  for (Fn fn : {static_cast<Fn>(silu_mul), static_cast<Fn>(sigmoid_mul)}) {
    auto call = [&](const Tensor& x, const Tensor& y, const Tensor& z) { return code_of([&] { fn(x, y, z, default_stream()); }); };
    EXPECT_NO_THROW(fn(a, b, o, default_stream()));
    EXPECT_NO_THROW(fn(a, b, a, default_stream()));  // in-place over the first input
    EXPECT_NO_THROW(fn(a, b, b, default_stream()));  // in-place over the second input
    EXPECT_EQ(call(s.t(DType::i32, {4, 8}), s.t(DType::i32, {4, 8}, 1024), s.t(DType::i32, {4, 8}, 2048)), kUnsupported);
    EXPECT_EQ(call(s.t(DType::f64, {4, 8}), s.t(DType::f64, {4, 8}, 1024), s.t(DType::f64, {4, 8}, 2048)), kUnsupported);
    EXPECT_EQ(call(a, s.t(bf16, {4, 8}, 1024), o), kInvalid);                 // second input dtype differs
    EXPECT_EQ(call(a, b, s.t(bf16, {4, 8}, 2048)), kInvalid);                 // out dtype differs
    EXPECT_EQ(call(a, s.t(f32, {4, 7}, 1024), o), kInvalid);                  // numel mismatch (input)
    EXPECT_EQ(call(a, b, s.t(f32, {33}, 2048)), kInvalid);                    // numel mismatch (out)
    EXPECT_EQ(call(s.t(f32, {0, 8}), s.t(f32, {0, 8}, 1024), s.t(f32, {0, 8}, 2048)), kInvalid);  // empty
    EXPECT_EQ(call(a, b, s.t(f32, {4, 8}, 4)), kInvalid);                     // out partially overlaps a
    EXPECT_EQ(call(a, b, s.t(f32, {4, 8}, 1028)), kInvalid);                  // out partially overlaps b
    EXPECT_EQ(call(s.t(f32, {4, 8}, 2), b, o), kInvalid);                     // misaligned pointer
    EXPECT_EQ(call(Tensor(), b, o), kInvalid);                                // undefined tensor
    const int64_t shape[] = {4, 8}, strides[] = {16, 2};
    Tensor strided(s.mem.data(), f32, shape, strides);
    EXPECT_EQ(call(strided, b, o), kInvalid);                                 // not contiguous
  }
}

TEST(ActivationErrors, UnaryOpsRejectBadArguments) {
  Scratch s;
  const DType f32 = DType::f32;
  auto x = s.t(f32, {5, 7}), o = s.t(f32, {5, 7}, 1024);
  const std::vector<std::function<void(const Tensor&, const Tensor&)>> ops = {
      [](const Tensor& a, const Tensor& b) { silu(a, b); },
      [](const Tensor& a, const Tensor& b) { gelu(a, b); },
      [](const Tensor& a, const Tensor& b) { softcap(a, b, 30.0f); }};
  for (auto& fn : ops) {
    auto call = [&](const Tensor& a, const Tensor& b) { return code_of([&] { fn(a, b); }); };
    EXPECT_NO_THROW(fn(x, o));
    EXPECT_NO_THROW(fn(x, x));  // in-place
    EXPECT_EQ(call(s.t(DType::i32, {5, 7}), s.t(DType::i32, {5, 7}, 1024)), kUnsupported);
    EXPECT_EQ(call(s.t(DType::u8, {5, 7}), s.t(DType::u8, {5, 7}, 1024)), kUnsupported);
    EXPECT_EQ(call(x, s.t(DType::f16, {5, 7}, 1024)), kInvalid);  // out dtype differs
    EXPECT_EQ(call(x, s.t(f32, {36}, 1024)), kInvalid);           // numel mismatch
    EXPECT_EQ(call(s.t(f32, {5, 0}), s.t(f32, {5, 0}, 1024)), kInvalid);  // empty
    EXPECT_EQ(call(x, s.t(f32, {5, 7}, 8)), kInvalid);            // partial overlap
    EXPECT_EQ(call(s.t(f32, {5, 7}, 1), o), kInvalid);            // misaligned pointer
    const int64_t shape[] = {5, 7}, strides[] = {1, 5};
    EXPECT_EQ(call(Tensor(s.mem.data(), f32, shape, strides), o), kInvalid);  // not contiguous
  }
}

TEST(ActivationErrors, SoftcapRejectsBadCap) {
  Scratch s;
  auto x = s.t(DType::bf16, {3, 9}), o = s.t(DType::bf16, {3, 9}, 512);
  for (float cap : {0.0f, -0.0f, -30.0f, NAN, INFINITY, -INFINITY})
    EXPECT_EQ(code_of([&] { softcap(x, o, cap); }), kInvalid) << cap;
  EXPECT_NO_THROW(softcap(x, o, 1e-3f));
}

TEST(ActivationErrors, AddBiasRow2dRejectsBadArguments) {
  Scratch s;
  const DType f32 = DType::f32;
  auto a = s.t(f32, {6, 10}), bias = s.t(f32, {10}, 1024), o = s.t(f32, {6, 10}, 2048);
  auto call = [&](const Tensor& x, const Tensor& y, const Tensor& z) { return code_of([&] { add_bias_row_2d(x, y, z); }); };
  EXPECT_NO_THROW(add_bias_row_2d(a, bias, o));
  EXPECT_NO_THROW(add_bias_row_2d(a, bias, a));           // out may alias a
  EXPECT_NO_THROW(add_bias_row_2d(a, bias, s.t(f32, {60}, 2048)));  // out: any shape of M*N elements
  EXPECT_EQ(call(s.t(DType::i32, {6, 10}), s.t(DType::i32, {10}, 1024), s.t(DType::i32, {6, 10}, 2048)), kUnsupported);
  EXPECT_EQ(call(a, s.t(DType::bf16, {10}, 1024), o), kInvalid);         // bias dtype differs
  EXPECT_EQ(call(a, bias, s.t(DType::f16, {6, 10}, 2048)), kInvalid);    // out dtype differs
  EXPECT_EQ(call(s.t(f32, {60}), bias, o), kInvalid);                    // a not rank 2
  EXPECT_EQ(call(s.t(f32, {2, 3, 10}), bias, o), kInvalid);              // a not rank 2
  EXPECT_EQ(call(a, s.t(f32, {6}, 1024), o), kInvalid);                  // bias numel != N
  EXPECT_EQ(call(a, bias, s.t(f32, {6, 11}, 2048)), kInvalid);           // out numel != M*N
  EXPECT_EQ(call(s.t(f32, {0, 10}), bias, s.t(f32, {0, 10}, 2048)), kInvalid);  // M = 0
  EXPECT_EQ(call(s.t(f32, {6, 0}), s.t(f32, {0}, 1024), s.t(f32, {6, 0}, 2048)), kInvalid);  // N = 0
  EXPECT_EQ(call(a, bias, s.t(f32, {6, 10}, 4)), kInvalid);              // out partially overlaps a
  EXPECT_EQ(call(a, s.t(f32, {10}, 40), a), kInvalid);                   // out (= a) overlaps bias
}

TEST(ActivationErrors, OuterProductRejectsBadArguments) {
  Scratch s;
  const DType f32 = DType::f32;
  auto lhs = s.t(f32, {6}), rhs = s.t(f32, {5}, 256), o = s.t(f32, {6, 5}, 1024);
  auto call = [&](const Tensor& x, const Tensor& y, const Tensor& z) { return code_of([&] { outer_product(x, y, z); }); };
  EXPECT_NO_THROW(outer_product(lhs, rhs, o));
  EXPECT_NO_THROW(outer_product(lhs, lhs, s.t(f32, {6, 6}, 1024)));  // the inputs may be the same vector
  EXPECT_EQ(call(s.t(DType::bf16, {6}), rhs, o), kUnsupported);
  EXPECT_EQ(call(lhs, s.t(DType::f16, {5}, 256), o), kUnsupported);
  EXPECT_EQ(call(lhs, rhs, s.t(DType::bf16, {6, 5}, 1024)), kUnsupported);
  EXPECT_EQ(call(lhs, rhs, s.t(f32, {5, 6}, 1024)), kInvalid);   // transposed shape
  EXPECT_EQ(call(lhs, rhs, s.t(f32, {30}, 1024)), kInvalid);     // right numel, wrong rank
  EXPECT_EQ(call(lhs, rhs, s.t(f32, {6, 4}, 1024)), kInvalid);   // numel mismatch
  EXPECT_EQ(call(s.t(f32, {0}), rhs, s.t(f32, {0, 5}, 1024)), kInvalid);   // N = 0
  EXPECT_EQ(call(lhs, s.t(f32, {0}, 256), s.t(f32, {6, 0}, 1024)), kInvalid);  // M = 0
  EXPECT_EQ(call(lhs, rhs, s.t(f32, {6, 5}, 0)), kInvalid);      // out overlaps lhs
  EXPECT_EQ(call(lhs, rhs, s.t(f32, {6, 5}, 240)), kInvalid);    // out overlaps rhs
}

// ---- edge results (§3) ----------------------------------------------------------------------------

// Runs op on the device over the given values (in dtype t) and returns the outputs as doubles.
template <typename Op>
std::vector<double> run_values(Device d, DType t, const std::vector<double>& xs, Op op) {
  HostTensor h(t, {int64_t(xs.size())});
  for (size_t i = 0; i < xs.size(); ++i) h.set(int64_t(i), xs[i]);
  DeviceTensor dx = test::to_device(h, d);
  DeviceTensor out = test::poisoned(t, {int64_t(xs.size())}, d);
  op(dx.tensor, out.tensor);
  return test::to_host(out.tensor).to_double();
}

void gelu_edges(Device d) {
  for (DType t : test::float_types()) {
    const double big = t == DType::f16 ? 6e4 : 1e30;  // x*x*x overflows f32 for the 1e30 case
    std::vector<double> xs = {0.0, INFINITY, -INFINITY, NAN, 6.0, 7.5, 100.0, big, -10.0, -100.0, -big, -0.0};
    auto y = run_values(d, t, xs, [](const Tensor& x, const Tensor& o) { gelu(x, o); });
    const std::string tag = std::string(name(t)) + " on " + d.str();
    EXPECT_EQ(y[0], 0.0) << tag;
    EXPECT_FALSE(std::signbit(y[0])) << tag;
    EXPECT_EQ(y[1], INFINITY) << tag;
    EXPECT_TRUE(std::isnan(y[2])) << tag;  // -inf * 0, as in PyTorch
    EXPECT_TRUE(std::isnan(y[3])) << tag;
    for (int i = 4; i < 8; ++i)  // y = x exactly (x as stored: f32 first, then the dtype)
      EXPECT_EQ(y[i], test::round_to(t, double(float(xs[i])))) << tag << " x=" << xs[i];
    for (int i = 8; i < 11; ++i) {  // large negative finite: -0
      EXPECT_EQ(y[i], 0.0) << tag << " x=" << xs[i];
      EXPECT_TRUE(std::signbit(y[i])) << tag << " x=" << xs[i];
    }
    EXPECT_TRUE(y[11] == 0.0 && std::signbit(y[11])) << tag;
  }
}

void softcap_edges(Device d) {
  for (DType t : test::float_types()) {
    const double cap = 30.0;
    std::vector<double> xs = {0.0, 1e3, -1e3, 6e4, -6e4, INFINITY, -INFINITY, NAN, 29.0, -31.0, 300.0};
    auto y = run_values(d, t, xs, [&](const Tensor& x, const Tensor& o) { softcap(x, o, float(cap)); });
    const std::string tag = std::string(name(t)) + " on " + d.str();
    EXPECT_EQ(y[0], 0.0) << tag;
    for (size_t i = 1; i < xs.size(); ++i) {
      if (std::isnan(xs[i])) {
        EXPECT_TRUE(std::isnan(y[i])) << tag;
        continue;
      }
      EXPECT_LE(std::fabs(y[i]), cap) << tag << " x=" << xs[i];  // bounded: cap = 30 is exact in every dtype
      EXPECT_EQ(std::signbit(y[i]), std::signbit(xs[i])) << tag << " x=" << xs[i];
    }
    EXPECT_EQ(y[5], cap) << tag;
    EXPECT_EQ(y[6], -cap) << tag;
  }
}

// silu, silu_mul and sigmoid_mul never give NaN for finite g -> -inf: the result underflows to
// zero (exactly ±0 once exp(-g) overflows; a backend may keep a subnormal a little longer).
void silu_sigmoid_edges(Device d) {
  auto tiny_with_sign = [](double v, bool negative) {
    return !std::isnan(v) && std::fabs(v) <= 1e-30 && std::signbit(v) == negative;
  };
  for (DType t : test::float_types()) {
    const std::vector<double> gs = {-100.0, -1e4, t == DType::f16 ? -6e4 : -1e30};
    const std::string tag = std::string(name(t)) + " on " + d.str();
    auto y = run_values(d, t, gs, [](const Tensor& x, const Tensor& o) { silu(x, o); });
    for (double v : y) EXPECT_TRUE(tiny_with_sign(v, true)) << tag << " silu " << v;
    y = run_values(d, t, gs, [](const Tensor& x, const Tensor& o) { silu_mul(x, x, o); });  // up = g < 0
    for (double v : y) EXPECT_TRUE(tiny_with_sign(v, false)) << tag << " silu_mul " << v;
    y = run_values(d, t, gs, [](const Tensor& x, const Tensor& o) { sigmoid_mul(x, x, o); });  // x = g < 0
    for (double v : y) EXPECT_TRUE(tiny_with_sign(v, true)) << tag << " sigmoid_mul " << v;
    EXPECT_EQ(y[1], 0.0) << tag;  // exp(1e4) overflows in every backend: exactly -0
    y = run_values(d, t, {0.0, -0.0, INFINITY, -INFINITY}, [](const Tensor& x, const Tensor& o) { silu(x, o); });
    EXPECT_TRUE(y[0] == 0.0 && !std::signbit(y[0])) << tag;
    EXPECT_TRUE(y[1] == 0.0 && std::signbit(y[1])) << tag;
    EXPECT_EQ(y[2], INFINITY) << tag;
    EXPECT_TRUE(std::isnan(y[3])) << tag;  // -inf / (1 + inf)
  }
}

TEST(ActivationEdges, Gelu) { gelu_edges(Device::cpu()); }
TEST(ActivationEdges, SoftcapBounded) { softcap_edges(Device::cpu()); }
TEST(ActivationEdges, SiluSigmoidNoNaN) { silu_sigmoid_edges(Device::cpu()); }

TEST(ActivationGpu, GeluEdges) {
  if (!cuda_available()) GTEST_SKIP() << "no CUDA device here";
  gelu_edges(Device::cuda(0));
}
TEST(ActivationGpu, SoftcapBounded) {
  if (!cuda_available()) GTEST_SKIP() << "no CUDA device here";
  softcap_edges(Device::cuda(0));
}
TEST(ActivationGpu, SiluSigmoidNoNaN) {
  if (!cuda_available()) GTEST_SKIP() << "no CUDA device here";
  silu_sigmoid_edges(Device::cuda(0));
}

}  // namespace
}  // namespace lmk
