// Norm family (core-ops.md §5): every rejected input kind with its ErrorCode, the spec's l2_norm
// and D = 1 edge cases, and in-place fused_residual_norm against the out-of-place result.
// Numerical checks over shapes and dtypes live in tests/check/norm.cpp.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "util/expect_error.h"
#include "lmk/device.h"
#include "lmk/error.h"
#include "lmk/norm.h"
#include "util/testkit.h"

namespace lmk {
namespace {


constexpr ErrorCode kInvalid = ErrorCode::InvalidArgument;
constexpr ErrorCode kUnsupported = ErrorCode::Unsupported;
constexpr int64_t R = 4, D = 8;
constexpr float kEps = 1e-6f;

// Host buffers for a [R, D] problem in every dtype the tests need; tensors are views into them.
struct Host {
  std::vector<float> x = std::vector<float>(R * D + 8, 1.0f), x2 = x, out = x, out2 = x;
  std::vector<float> w = std::vector<float>(D + 8, 1.0f), scalar = std::vector<float>(D, 1.0f);
  std::vector<uint16_t> h16 = std::vector<uint16_t>(R * D + 8, 0x3c00), w16 = std::vector<uint16_t>(D + 8, 0x3f80);
  std::vector<double> f64 = std::vector<double>(R * D, 1.0);
  Tensor X() { return Tensor(x.data(), DType::f32, {R, D}); }
  Tensor X2() { return Tensor(x2.data(), DType::f32, {R, D}); }
  Tensor Out() { return Tensor(out.data(), DType::f32, {R, D}); }
  Tensor Out2() { return Tensor(out2.data(), DType::f32, {R, D}); }
  Tensor W() { return Tensor(w.data(), DType::f32, {D}); }
  Tensor S(int64_t n) { return Tensor(scalar.data(), DType::f32, {n}); }
};

TEST(NormErrors, RejectsZeroRowsOrColumns) {
  Host h;
  for (const std::vector<int64_t>& shape : {std::vector<int64_t>{0, D}, std::vector<int64_t>{R, 0}}) {
    Tensor x(h.x.data(), DType::f32, std::span<const int64_t>(shape)),
        o(h.out.data(), DType::f32, std::span<const int64_t>(shape)),
        r(h.x2.data(), DType::f32, std::span<const int64_t>(shape));
    EXPECT_EQ(code_of([&] { rms_norm(x, Tensor(), o, kEps); }), kInvalid);
    EXPECT_EQ(code_of([&] { l2_norm(x, o, kEps); }), kInvalid);
    EXPECT_EQ(code_of([&] { rms_norm_mul(x, h.W(), r, o, kEps); }), kInvalid);
    EXPECT_EQ(code_of([&] { fused_norm_add(r, x, Tensor(), o, kEps); }), kInvalid);
    EXPECT_EQ(code_of([&] { fused_residual_norm(r, x, h.W(), o, Tensor(), kEps); }), kInvalid);
  }
}

TEST(NormErrors, RejectsUndefinedOrRankZeroTensors) {
  Host h;
  EXPECT_EQ(code_of([&] { rms_norm(Tensor(), h.W(), h.Out(), kEps); }), kInvalid);
  EXPECT_EQ(code_of([&] { rms_norm(h.X(), h.W(), Tensor(), kEps); }), kInvalid);
  EXPECT_EQ(code_of([&] { rms_norm_mul(h.X(), Tensor(), h.X2(), h.Out(), kEps); }), kInvalid);
  EXPECT_EQ(code_of([&] { fused_norm_add(Tensor(), h.X(), h.W(), h.Out(), kEps); }), kInvalid);
  EXPECT_EQ(code_of([&] { fused_residual_norm(h.X2(), h.X(), Tensor(), h.Out(), Tensor(), kEps); }), kInvalid);
  Tensor scalar0(h.x.data(), DType::f32, std::span<const int64_t>());
  EXPECT_EQ(code_of([&] { l2_norm(scalar0, scalar0, kEps); }), kInvalid);
}

TEST(NormErrors, RejectsNumelMismatches) {
  Host h;
  Tensor short_out(h.out.data(), DType::f32, {R, D - 1}), long_out(h.out.data(), DType::f32, {R * D + 1});
  EXPECT_EQ(code_of([&] { rms_norm(h.X(), h.W(), short_out, kEps); }), kInvalid);
  EXPECT_EQ(code_of([&] { l2_norm(h.X(), long_out, kEps); }), kInvalid);
  EXPECT_EQ(code_of([&] { rms_norm_mul(h.X(), h.W(), Tensor(h.x2.data(), DType::f32, {R, D + 1}), h.Out(), kEps); }),
            kInvalid);
  EXPECT_EQ(code_of([&] { fused_norm_add(Tensor(h.x2.data(), DType::f32, {R - 1, D}), h.X(), h.W(), h.Out(), kEps); }),
            kInvalid);
  EXPECT_EQ(code_of([&] { fused_residual_norm(h.X2(), h.X(), h.W(), h.Out(), short_out, kEps); }), kInvalid);
  // A different shape with the same numel is fine (rows are taken from the normalized input).
  EXPECT_NO_THROW(rms_norm(h.X(), h.W(), Tensor(h.out.data(), DType::f32, {R * D}), kEps));
}

TEST(NormErrors, RejectsWeightOfWrongLength) {
  Host h;
  for (int64_t n : {D - 1, D + 1, int64_t(1)}) {
    Tensor w(h.w.data(), DType::f32, {n});
    EXPECT_EQ(code_of([&] { rms_norm(h.X(), w, h.Out(), kEps); }), kInvalid) << n;
    EXPECT_EQ(code_of([&] { rms_norm_mul(h.X(), w, h.X2(), h.Out(), kEps); }), kInvalid) << n;
    EXPECT_EQ(code_of([&] { fused_norm_add(h.X2(), h.X(), w, h.Out(), kEps); }), kInvalid) << n;
    EXPECT_EQ(code_of([&] { fused_residual_norm(h.X2(), h.X(), w, h.Out(), Tensor(), kEps); }), kInvalid) << n;
  }
}

TEST(NormErrors, RejectsScalarOfWrongLength) {
  Host h;
  EXPECT_EQ(code_of([&] { fused_norm_add(h.X2(), h.X(), h.W(), h.Out(), kEps, h.S(2)); }), kInvalid);
  EXPECT_EQ(code_of([&] { fused_residual_norm(h.X2(), h.X(), h.W(), h.Out(), Tensor(), kEps, h.S(D - 1)); }), kInvalid);
  EXPECT_NO_THROW(fused_norm_add(h.X2(), h.X(), h.W(), h.Out(), kEps, h.S(1)));
  EXPECT_NO_THROW(fused_residual_norm(h.X2(), h.X(), h.W(), h.Out(), Tensor(), kEps, h.S(D)));
}

TEST(NormErrors, RejectsUnsupportedDtypeCombinations) {
  Host h;
  Tensor x64(h.f64.data(), DType::f64, {R, D}), o64(h.f64.data(), DType::f64, {R, D});
  Tensor xi(h.x.data(), DType::i32, {R, D}), oi(h.out.data(), DType::i32, {R, D});
  Tensor x16(h.h16.data(), DType::f16, {R, D}), xb(h.h16.data(), DType::bf16, {R, D});
  Tensor w16(h.w16.data(), DType::f16, {D}), wb(h.w16.data(), DType::bf16, {D});
  Tensor ob(h.out.data(), DType::bf16, {R, D}), o16(h.out.data(), DType::f16, {R, D});
  EXPECT_EQ(code_of([&] { rms_norm(x64, Tensor(), o64, kEps); }), kUnsupported);
  EXPECT_EQ(code_of([&] { l2_norm(xi, oi, kEps); }), kUnsupported);
  EXPECT_EQ(code_of([&] { rms_norm(h.X(), wb, h.Out(), kEps); }), kUnsupported);  // f32 x needs f32 weight
  EXPECT_EQ(code_of([&] { rms_norm(x16, w16, o16, kEps); }), kUnsupported);       // f16 x needs f32 weight
  EXPECT_EQ(code_of([&] { rms_norm(xb, h.W(), ob, kEps); }), kUnsupported);        // bf16 x needs bf16 weight
  EXPECT_EQ(code_of([&] { rms_norm(h.X(), h.W(), ob, kEps); }), kUnsupported);     // out in another dtype
  EXPECT_EQ(code_of([&] { l2_norm(x16, ob, kEps); }), kUnsupported);
  EXPECT_EQ(code_of([&] { rms_norm_mul(h.X(), h.W(), xb, h.Out(), kEps); }), kUnsupported);
  EXPECT_EQ(code_of([&] { fused_norm_add(xb, h.X(), h.W(), h.Out(), kEps); }), kUnsupported);
  EXPECT_EQ(code_of([&] { fused_residual_norm(h.X2(), h.X(), h.W(), h.Out(), ob, kEps); }), kUnsupported);
  Tensor sb(h.w16.data(), DType::bf16, {1});
  EXPECT_EQ(code_of([&] { fused_norm_add(h.X2(), h.X(), h.W(), h.Out(), kEps, sb); }), kUnsupported);
  // The supported combinations pass validation.
  EXPECT_NO_THROW(rms_norm(x16, h.W(), Tensor(h.h16.data(), DType::f16, {R, D}), kEps));
  EXPECT_NO_THROW(rms_norm(xb, wb, Tensor(h.h16.data(), DType::bf16, {R, D}), kEps));
}

TEST(NormErrors, RejectsNegativeOrNanEps) {
  Host h;
  for (float eps : {-1e-6f, -std::numeric_limits<float>::infinity(), std::numeric_limits<float>::quiet_NaN()}) {
    EXPECT_EQ(code_of([&] { rms_norm(h.X(), h.W(), h.Out(), eps); }), kInvalid) << eps;
    EXPECT_EQ(code_of([&] { l2_norm(h.X(), h.Out(), eps); }), kInvalid) << eps;
    EXPECT_EQ(code_of([&] { rms_norm_mul(h.X(), h.W(), h.X2(), h.Out(), eps); }), kInvalid) << eps;
    EXPECT_EQ(code_of([&] { fused_norm_add(h.X2(), h.X(), h.W(), h.Out(), eps); }), kInvalid) << eps;
    EXPECT_EQ(code_of([&] { fused_residual_norm(h.X2(), h.X(), h.W(), h.Out(), Tensor(), eps); }), kInvalid) << eps;
  }
  // eps = 0 and eps = +inf are valid: a row of ones gives 1, resp. 0.
  rms_norm(h.X(), Tensor(), h.Out(), 0.0f);
  EXPECT_EQ(h.out[0], 1.0f);
  rms_norm(h.X(), Tensor(), h.Out(), std::numeric_limits<float>::infinity());
  EXPECT_EQ(h.out[0], 0.0f);
}

TEST(NormErrors, RejectsNonContiguousViews) {
  Host h;
  const int64_t shape[] = {R, D / 2}, strides[] = {D, 2};
  Tensor xs(h.x.data(), DType::f32, shape, strides), os(h.out.data(), DType::f32, shape, strides);
  Tensor o(h.out.data(), DType::f32, {R, D / 2});
  const int64_t wshape[] = {D}, wstride[] = {2};
  Tensor ws(h.w.data(), DType::f32, wshape, wstride);
  EXPECT_EQ(code_of([&] { l2_norm(xs, o, kEps); }), kInvalid);
  EXPECT_EQ(code_of([&] { rms_norm(Tensor(h.x2.data(), DType::f32, {R, D / 2}), Tensor(), os, kEps); }), kInvalid);
  EXPECT_EQ(code_of([&] { rms_norm(h.X(), ws, h.Out(), kEps); }), kInvalid);
  EXPECT_EQ(code_of([&] { fused_norm_add(xs, Tensor(h.x2.data(), DType::f32, {R, D / 2}), Tensor(), o, kEps); }),
            kInvalid);
}

TEST(NormErrors, RejectsMisalignedPointers) {
  Host h;
  Tensor x(reinterpret_cast<char*>(h.x.data()) + 2, DType::f32, {R, D});
  EXPECT_EQ(code_of([&] { rms_norm(x, h.W(), h.Out(), kEps); }), kInvalid);
}

TEST(NormErrors, RejectsPartialOverlapAndSharedOutputs) {
  Host h;
  Tensor shifted(h.x.data() + 1, DType::f32, {R, D});
  EXPECT_EQ(code_of([&] { rms_norm(h.X(), h.W(), shifted, kEps); }), kInvalid);
  EXPECT_EQ(code_of([&] { l2_norm(h.X(), shifted, kEps); }), kInvalid);
  EXPECT_EQ(code_of([&] { rms_norm_mul(h.X2(), h.W(), h.X(), shifted, kEps); }), kInvalid);
  EXPECT_EQ(code_of([&] { fused_norm_add(h.X(), h.X2(), h.W(), shifted, kEps); }), kInvalid);
  EXPECT_EQ(code_of([&] { fused_residual_norm(h.X(), h.X2(), h.W(), h.Out(), shifted, kEps); }), kInvalid);
  // Outputs must not touch the weight or the scalar, nor each other.
  Tensor over_w(h.w.data(), DType::f32, {1, D});
  EXPECT_EQ(code_of([&] { rms_norm(Tensor(h.x.data(), DType::f32, {1, D}), h.W(), over_w, kEps); }), kInvalid);
  Tensor over_s(h.scalar.data(), DType::f32, {1, D});
  EXPECT_EQ(code_of([&] {
              fused_norm_add(Tensor(h.x.data(), DType::f32, {1, D}), Tensor(h.x2.data(), DType::f32, {1, D}), h.W(),
                             over_s, kEps, h.S(1));
            }),
            kInvalid);
  EXPECT_EQ(code_of([&] { fused_residual_norm(h.X2(), h.X(), h.W(), h.Out(), h.Out(), kEps); }), kInvalid);
  // Exact aliasing of the row inputs is allowed.
  EXPECT_NO_THROW(rms_norm(h.X(), h.W(), h.X(), kEps));
  EXPECT_NO_THROW(fused_residual_norm(h.X2(), h.X(), h.W(), h.X(), h.X2(), kEps));
}

TEST(GpuNorm, RejectsDeviceMismatch) {
  if (!cuda_available()) GTEST_SKIP() << "no CUDA device here";
  Host h;
  auto x = test::to_device(test::random_normal(DType::f32, {R, D}, 1), Device::cuda(0));
  auto o = test::poisoned(DType::f32, {R, D}, Device::cuda(0));
  EXPECT_EQ(code_of([&] { rms_norm(x, h.W(), o, kEps); }), kInvalid);          // weight on the host
  EXPECT_EQ(code_of([&] { l2_norm(x, h.Out(), kEps); }), kInvalid);            // out on the host
  EXPECT_EQ(code_of([&] { fused_norm_add(h.X2(), x, Tensor(), o, kEps); }), kInvalid);  // residual on the host
}

// l2_norm cases of the spec: [3, 4] with eps = 0 -> [0.6, 0.8]; zero row -> 0; eps = 9 -> [3, 4] / sqrt(34).
void check_l2_edges(Device d) {
  auto x = test::to_device([] {
    test::HostTensor h(DType::f32, {3, 2});
    const double v[] = {3, 4, 0, 0, 3, 4};
    for (int i = 0; i < 6; ++i) h.set(i, v[i]);
    return h;
  }(), d);
  auto out = test::poisoned(DType::f32, {3, 2}, d);
  const Tensor row0(x.tensor.data(), DType::f32, {1, 2}, d), out0(out.tensor.data(), DType::f32, {1, 2}, d);
  const Tensor row1(x.tensor.data_as<float>() + 2, DType::f32, {1, 2}, d),
      out1(out.tensor.data_as<float>() + 2, DType::f32, {1, 2}, d);
  const Tensor row2(x.tensor.data_as<float>() + 4, DType::f32, {1, 2}, d),
      out2(out.tensor.data_as<float>() + 4, DType::f32, {1, 2}, d);
  l2_norm(row0, out0, 0.0f);
  l2_norm(row1, out1, 1e-6f);
  l2_norm(row2, out2, 9.0f);
  const auto y = test::to_host(out.tensor).to_double();
  EXPECT_NEAR(y[0], 0.6, 1e-6);
  EXPECT_NEAR(y[1], 0.8, 1e-6);
  EXPECT_EQ(y[2], 0.0);
  EXPECT_EQ(y[3], 0.0);
  EXPECT_NEAR(y[4], 3 / std::sqrt(34.0), 1e-6);
  EXPECT_NEAR(y[5], 4 / std::sqrt(34.0), 1e-6);
}

// D = 1: y = x·rsqrt(x² + eps)·w ≈ sign(x)·w for |x| >> sqrt(eps); a zero row stays 0.
void check_single_column(Device d, DType t) {
  test::HostTensor x(t, {5, 1}), w(t == DType::bf16 ? DType::bf16 : DType::f32, {1});
  const double v[] = {-3, 0.5, 7, 0, -2};
  for (int i = 0; i < 5; ++i) x.set(i, v[i]);
  w.set(0, 1.5);
  auto dx = test::to_device(x, d), dw = test::to_device(w, d);
  auto out = test::poisoned(t, {5, 1}, d);
  rms_norm(dx, dw, out, kEps);
  const auto y = test::to_host(out.tensor).to_double();
  for (int i = 0; i < 5; ++i) {
    const double want = v[i] > 0 ? 1.5 : v[i] < 0 ? -1.5 : 0.0;
    EXPECT_NEAR(y[size_t(i)], want, t == DType::f32 ? 1e-5 : 1e-2) << name(t) << " x = " << v[i];
  }
}

// fused_residual_norm with sum_out = residual (and normed_out = input) matches the out-of-place
// result bit for bit, for D = 4096 and for rows longer than any register-cached CTA.
void check_in_place_residual(Device d, DType t, int64_t rows, int64_t dim) {
  const uint64_t seed = test::case_seed("in-place residual " + std::to_string(dim));
  const auto res = test::random_normal(t, {rows, dim}, seed), inp = test::random_normal(t, {rows, dim}, seed + 1);
  const auto w = test::random_uniform(t == DType::bf16 ? DType::bf16 : DType::f32, {dim}, seed + 2, 0.5, 1.5);
  auto dres = test::to_device(res, d), dinp = test::to_device(inp, d), dw = test::to_device(w, d);
  auto normed = test::poisoned(t, {rows, dim}, d), sum = test::poisoned(t, {rows, dim}, d);
  fused_residual_norm(dres, dinp, dw, normed, sum, kEps);
  const auto want_normed = test::to_host(normed.tensor), want_sum = test::to_host(sum.tensor);

  auto r1 = test::to_device(res, d), i1 = test::to_device(inp, d);
  auto normed1 = test::poisoned(t, {rows, dim}, d);
  fused_residual_norm(r1, i1, dw, normed1, r1, kEps);  // residual updated in place
  EXPECT_EQ(test::to_host(normed1.tensor).bytes, want_normed.bytes) << name(t) << " D=" << dim;
  EXPECT_EQ(test::to_host(r1.tensor).bytes, want_sum.bytes) << name(t) << " D=" << dim;

  auto r2 = test::to_device(res, d), i2 = test::to_device(inp, d);
  fused_residual_norm(r2, i2, dw, i2, r2, kEps);  // both outputs in place
  EXPECT_EQ(test::to_host(i2.tensor).bytes, want_normed.bytes) << name(t) << " D=" << dim;
  EXPECT_EQ(test::to_host(r2.tensor).bytes, want_sum.bytes) << name(t) << " D=" << dim;
}

TEST(L2Norm, SpecEdgeCases) { check_l2_edges(Device::cpu()); }
TEST(GpuNorm, L2NormSpecEdgeCases) {
  if (!cuda_available()) GTEST_SKIP() << "no CUDA device here";
  check_l2_edges(Device::cuda(0));
}

TEST(RmsNorm, SingleColumnIsSignTimesWeight) {
  for (DType t : {DType::f32, DType::f16, DType::bf16}) check_single_column(Device::cpu(), t);
}
TEST(GpuNorm, RmsNormSingleColumnIsSignTimesWeight) {
  if (!cuda_available()) GTEST_SKIP() << "no CUDA device here";
  for (DType t : {DType::f32, DType::f16, DType::bf16}) check_single_column(Device::cuda(0), t);
}

TEST(FusedResidualNorm, InPlaceMatchesOutOfPlace) {
  for (DType t : {DType::f32, DType::bf16})
    for (int64_t dim : {4096, 5000}) check_in_place_residual(Device::cpu(), t, 3, dim);
}
TEST(GpuNorm, FusedResidualNormInPlaceMatchesOutOfPlace) {
  if (!cuda_available()) GTEST_SKIP() << "no CUDA device here";
  // 256: lanes per row; 4096: CTA per row in registers; 4099: scalar two-pass; 65536: two-pass vector.
  for (DType t : {DType::f32, DType::bf16})
    for (int64_t dim : {256, 4096, 4099, 65536}) check_in_place_residual(Device::cuda(0), t, dim > 8192 ? 5 : 257, dim);
}

}  // namespace
}  // namespace lmk
