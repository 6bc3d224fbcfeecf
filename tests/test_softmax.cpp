// Softmax family: rejected inputs (each with its error code), the edge cases of core-ops.md §4
// on every device, and CUDA path coverage (in-place, unaligned views, repeated launches).
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "util/expect_error.h"
#include "lmk/lmk.h"
#include "lmk/softmax.h"
#include "util/testkit.h"

namespace lmk {
namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();


template <typename Fn>
void on_each_device(Fn&& fn) {
  fn(Device::cpu());
  if (cuda_available()) fn(Device::cuda(0));
}

// Softmax of host rows on device d, as f32 values.
std::vector<float> run_softmax(Device d, DType t, const std::vector<float>& x, int64_t rows) {
  const int64_t cols = int64_t(x.size()) / rows;
  test::HostTensor hx(t, {rows, cols});
  for (size_t i = 0; i < x.size(); ++i) hx.set(int64_t(i), x[i]);
  auto dx = test::to_device(hx, d);
  auto out = test::poisoned(t, {rows, cols}, d);
  softmax(dx, out);
  auto h = test::to_host(out);
  std::vector<float> y(x.size());
  for (size_t i = 0; i < y.size(); ++i) y[i] = float(h.get(int64_t(i)));
  return y;
}

TEST(SoftmaxErrors, RejectsBadArguments) {
  std::vector<float> a(12, 1.f), o(12), small(5);
  std::vector<uint16_t> h(12);
  Tensor ta(a.data(), DType::f32, {3, 4}), to(o.data(), DType::f32, {3, 4});
  EXPECT_EQ(code_of([&] { softmax(Tensor(a.data(), DType::f32, {0, 4}), Tensor(o.data(), DType::f32, {0, 4})); }),
            ErrorCode::InvalidArgument);  // zero rows
  EXPECT_EQ(code_of([&] { softmax(Tensor(a.data(), DType::f32, {3, 0}), Tensor(o.data(), DType::f32, {3, 0})); }),
            ErrorCode::InvalidArgument);  // zero cols
  EXPECT_EQ(code_of([&] { softmax(ta, Tensor(small.data(), DType::f32, {5})); }), ErrorCode::InvalidArgument);
  EXPECT_EQ(code_of([&] { softmax(Tensor(a.data(), DType::i32, {3, 4}), Tensor(o.data(), DType::i32, {3, 4})); }),
            ErrorCode::Unsupported);
  EXPECT_EQ(code_of([&] { softmax(Tensor(a.data(), DType::f64, {6}), Tensor(o.data(), DType::f64, {6})); }),
            ErrorCode::Unsupported);
  EXPECT_EQ(code_of([&] { softmax(ta, Tensor(h.data(), DType::bf16, {3, 4})); }), ErrorCode::InvalidArgument);
  EXPECT_EQ(code_of([&] { softmax(Tensor(), to); }), ErrorCode::InvalidArgument);
  const int64_t shape[] = {3, 4}, strides[] = {1, 3};
  EXPECT_EQ(code_of([&] { softmax(Tensor(a.data(), DType::f32, shape, strides), to); }), ErrorCode::InvalidArgument);
  auto* mis = reinterpret_cast<float*>(reinterpret_cast<char*>(a.data()) + 2);
  EXPECT_EQ(code_of([&] { softmax(Tensor(mis, DType::f32, {4}), Tensor(o.data(), DType::f32, {4})); }),
            ErrorCode::InvalidArgument);
  // Partial overlap is rejected; exact in-place is allowed.
  EXPECT_EQ(code_of([&] { softmax(Tensor(a.data(), DType::f32, {2, 4}), Tensor(a.data() + 1, DType::f32, {2, 4})); }),
            ErrorCode::InvalidArgument);
  softmax(ta, ta);
  EXPECT_FLOAT_EQ(a[0], 0.25f);
}

TEST(SoftmaxErrors, DeviceMismatch) {
  std::vector<float> a(4), o(4);
  ErrorCode c = code_of([&] { softmax(Tensor(a.data(), DType::f32, {4}), Tensor(o.data(), DType::f32, {4}, Device::cuda(0))); });
  EXPECT_TRUE(c == ErrorCode::InvalidArgument || c == ErrorCode::Unsupported);
}

TEST(ScaleMaskSoftmaxErrors, RejectsBadArguments) {
  // 2 heads x 2 queries x 3 keys.
  std::vector<float> s(12, 0.f), o(12), big(24);
  std::vector<uint16_t> m(6, 0), h(12);
  Tensor ts(s.data(), DType::f32, {4, 3}), to(o.data(), DType::f32, {4, 3}), tm(m.data(), DType::bf16, {2, 3});
  auto run = [&](const Tensor& sc, const Tensor& mk, const Tensor& out, int64_t seq_q, float scale) {
    return code_of([&] { scale_mask_softmax(sc, mk, out, seq_q, scale); });
  };
  EXPECT_EQ(run(ts, tm, to, 0, 1.f), ErrorCode::InvalidArgument);   // seq_q = 0
  EXPECT_EQ(run(ts, tm, to, -2, 1.f), ErrorCode::InvalidArgument);  // negative seq_q
  EXPECT_EQ(run(ts, Tensor(m.data(), DType::bf16, {1, 3}), to, 3, 1.f), ErrorCode::InvalidArgument);  // 4 rows % 3
  EXPECT_EQ(run(ts, Tensor(m.data(), DType::bf16, {5}), to, 2, 1.f), ErrorCode::InvalidArgument);     // mask numel
  EXPECT_EQ(run(ts, tm, Tensor(big.data(), DType::f32, {8, 3}), 2, 1.f), ErrorCode::InvalidArgument);  // out numel
  EXPECT_EQ(run(Tensor(s.data(), DType::f32, {0, 3}), tm, Tensor(o.data(), DType::f32, {0, 3}), 2, 1.f),
            ErrorCode::InvalidArgument);  // zero rows
  EXPECT_EQ(run(Tensor(s.data(), DType::f32, {4, 0}), Tensor(m.data(), DType::bf16, {2, 0}),
                Tensor(o.data(), DType::f32, {4, 0}), 2, 1.f),
            ErrorCode::InvalidArgument);  // zero cols
  EXPECT_EQ(run(Tensor(h.data(), DType::f16, {4, 3}), tm, to, 2, 1.f), ErrorCode::Unsupported);  // scores dtype
  EXPECT_EQ(run(ts, Tensor(s.data(), DType::f32, {2, 3}), to, 2, 1.f), ErrorCode::Unsupported);   // mask dtype
  EXPECT_EQ(run(ts, tm, Tensor(h.data(), DType::bf16, {4, 3}), 2, 1.f), ErrorCode::Unsupported);  // out dtype
  EXPECT_EQ(run(ts, tm, to, 2, std::nanf("")), ErrorCode::InvalidArgument);                      // scale
  EXPECT_EQ(run(ts, tm, to, 2, kInf), ErrorCode::InvalidArgument);
  const int64_t shape[] = {4, 3}, strides[] = {1, 4};
  EXPECT_EQ(run(Tensor(s.data(), DType::f32, shape, strides), tm, to, 2, 1.f), ErrorCode::InvalidArgument);
  EXPECT_EQ(run(ts, tm, Tensor(s.data() + 1, DType::f32, {4, 3}), 2, 1.f), ErrorCode::InvalidArgument);  // partial
  EXPECT_EQ(run(ts, tm, Tensor(m.data(), DType::f32, {4, 3}), 2, 1.f), ErrorCode::InvalidArgument);  // out over mask
  ErrorCode c = run(ts, Tensor(m.data(), DType::bf16, {2, 3}, Device::cuda(0)), to, 2, 1.f);
  EXPECT_TRUE(c == ErrorCode::InvalidArgument || c == ErrorCode::Unsupported);
  scale_mask_softmax(ts, tm, ts, 2, 1.f);  // exact in-place
  EXPECT_FLOAT_EQ(s[0], 1.f / 3);
}

TEST(Softmax, SumsToOne) {
  on_each_device([](Device d) {
    for (DType t : {DType::f32, DType::bf16, DType::f16}) {
      for (int64_t cols : {1, 7, 1000, 8193, 70000}) {
        auto x = test::random_uniform(t, {3, cols}, test::case_seed("sum1"), -10, 10);
        auto dx = test::to_device(x, d);
        auto out = test::poisoned(t, {3, cols}, d);
        softmax(dx, out);
        auto h = test::to_host(out);
        for (int64_t r = 0; r < 3; ++r) {
          double s = 0;
          for (int64_t j = 0; j < cols; ++j) s += h.get(r * cols + j);
          // bf16/f16 outputs each carry up to half an ulp of rounding; spec: 1e-2 for 16-bit.
          EXPECT_NEAR(s, 1.0, t == DType::f32 ? 1e-5 : 1e-2) << name(t) << " cols " << cols << " on " << d.str();
        }
      }
    }
  });
}

TEST(Softmax, EdgeCases) {
  on_each_device([](Device d) {
    for (DType t : {DType::f32, DType::bf16}) {
      // Large magnitudes stay finite (bf16 holds 1000..1003 as 1000, 1000, 1004, 1004: the
      // expected values use the rounded inputs).
      for (double sign : {1.0, -1.0}) {
        const std::vector<float> x{float(sign * 1000), float(sign * 1001), float(sign * 1002), float(sign * 1003)};
        auto y = run_softmax(d, t, x, 1);
        double xr[4], m = -INFINITY, se = 0;
        for (int i = 0; i < 4; ++i) m = std::fmax(m, xr[i] = test::round_to(t, x[size_t(i)]));
        for (int i = 0; i < 4; ++i) se += std::exp(xr[i] - m);
        for (int i = 0; i < 4; ++i)
          EXPECT_NEAR(y[size_t(i)], std::exp(xr[i] - m) / se, t == DType::f32 ? 1e-6 : 1e-2) << d.str() << " " << i;
      }
      // Uniform row -> 1/C; C = 1 -> 1.
      auto u = run_softmax(d, t, std::vector<float>(300, 2.5f), 1);
      for (float v : u) EXPECT_NEAR(v, 1.0 / 300, t == DType::f32 ? 1e-9 : 1e-5);
      EXPECT_EQ(run_softmax(d, t, {-7.f, 3.f, 1e30f}, 3), (std::vector<float>{1.f, 1.f, 1.f}));
      // A row of all -inf, or one holding +inf, is NaN everywhere (not special-cased); the other
      // rows are untouched.
      auto n = run_softmax(d, t, {-kInf, -kInf, -kInf, 0.f, 1.f, 2.f, kInf, 0.f, 1.f}, 3);
      for (int i : {0, 1, 2, 6, 7, 8}) EXPECT_TRUE(std::isnan(n[size_t(i)])) << i << " " << d.str();
      EXPECT_NEAR(n[5], std::exp(0.0) / (std::exp(-2.0) + std::exp(-1.0) + 1.0), t == DType::f32 ? 1e-6 : 1e-2);
      // -inf entries in a finite row are exact zeros.
      auto m = run_softmax(d, t, {-kInf, 0.f, -kInf, 0.f}, 1);
      EXPECT_EQ(m, (std::vector<float>{0.f, 0.5f, 0.f, 0.5f}));
    }
  });
}

TEST(Softmax, InPlace) {
  on_each_device([](Device d) {
    for (int64_t cols : {1000, 8192, 100000}) {
      auto x = test::random_uniform(DType::f32, {2, cols}, test::case_seed("inplace"), -5, 5);
      auto want_dev = test::to_device(x, d);
      auto want = test::poisoned(DType::f32, {2, cols}, d);
      softmax(want_dev, want);
      auto dx = test::to_device(x, d);
      softmax(dx, dx);
      auto a = test::to_host(want), b = test::to_host(dx);
      EXPECT_EQ(a.bytes, b.bytes) << "cols " << cols << " on " << d.str();
    }
  });
}

TEST(ScaleMaskSoftmax, FullyMaskedRowIsZeroAndScaleZeroIsUniform) {
  on_each_device([](Device d) {
    const float ninf = -kInf;
    // 1 head, 2 queries, 4 keys: query 0 fully masked; query 1 sees keys 0..2 (scale 0 ->
    // uniform 1/3 over them, 0 on key 3).
    std::vector<float> scores{5, 6, 7, 8, 100, -100, 3, 9};
    std::vector<float> mask{ninf, ninf, ninf, ninf, 0, 0, 0, ninf};
    test::HostTensor hs(DType::f32, {2, 4}), hm(DType::bf16, {2, 4});
    for (int i = 0; i < 8; ++i) {
      hs.set(i, scores[size_t(i)]);
      hm.set(i, mask[size_t(i)]);
    }
    auto ds = test::to_device(hs, d), dm = test::to_device(hm, d);
    auto out = test::poisoned(DType::f32, {2, 4}, d);
    scale_mask_softmax(ds, dm, out, 2, 0.f);
    auto h = test::to_host(out);
    for (int i = 0; i < 4; ++i) EXPECT_EQ(h.get(i), 0.0) << d.str();
    for (int i = 4; i < 7; ++i) EXPECT_FLOAT_EQ(float(h.get(i)), 1.f / 3) << d.str();
    EXPECT_EQ(h.get(7), 0.0);
  });
}

// CUDA: every kernel path with in-place aliasing and unaligned (scalar-path) views against the
// CPU backend, and repeated launches.
TEST(SoftmaxGpu, PathsInPlaceAndUnaligned) {
  if (!cuda_available()) GTEST_SKIP() << "no CUDA device here";
  const Device d = Device::cuda(0);
  struct C {
    int64_t rows, cols;
  } shapes[] = {{64, 4096}, {4, 32768}, {2, 65536}, {1, 151936}, {1, 1048576}, {300, 40000}};
  for (DType t : {DType::f32, DType::bf16}) {
    for (auto s : shapes) {
      const int64_t n = s.rows * s.cols;
      auto x = test::random_uniform(t, {s.rows, s.cols}, test::case_seed("gpu paths"), -6, 6);
      auto want = test::poisoned(t, {s.rows, s.cols}, Device::cpu());
      softmax(x.view(), want);
      // In place, aligned.
      auto dx = test::to_device(x, d);
      softmax(dx, dx);
      auto got = test::to_host(dx);
      auto r1 = test::compare(got, test::to_host(want).to_double(), test::tol_reduction(t));
      EXPECT_TRUE(r1.ok) << name(t) << " " << s.rows << "x" << s.cols << " in place: " << r1.message;
      // Views one element off 16-byte alignment take the scalar path.
      const int64_t es = element_size(t);
      Buffer bx((n + 8) * es, d), by((n + 8) * es, d);
      copy_bytes(static_cast<char*>(bx.data()) + es, d, x.bytes.data(), Device::cpu(), n * es);
      Tensor vx(static_cast<char*>(bx.data()) + es, t, {s.rows, s.cols}, d);
      Tensor vy(static_cast<char*>(by.data()) + es, t, {s.rows, s.cols}, d);
      for (int rep = 0; rep < 2; ++rep) softmax(vx, vy);
      auto r2 = test::compare(test::to_host(vy), test::to_host(want).to_double(), test::tol_reduction(t));
      EXPECT_TRUE(r2.ok) << name(t) << " " << s.rows << "x" << s.cols << " unaligned: " << r2.message;
    }
  }
}

// CUDA, few long rows (each split over many blocks): whole chunks of -inf next to finite
// values, a row of all -inf and a row holding +inf (NaN rows beside finite ones), results equal
// on repeated launches, and inside graph capture on a fresh stream with and without its scratch.
TEST(SoftmaxGpu, LongRowsSplitEdgesAndGraphCapture) {
  if (!cuda_available()) GTEST_SKIP() << "no CUDA device here";
  const Device d = Device::cuda(0);
  for (DType t : {DType::f32, DType::bf16}) {
    const int64_t rows = 4, cols = 262144;
    auto x = test::random_uniform(t, {rows, cols}, test::case_seed("split edges"), -8, 8);
    for (int64_t j = 0; j < 100000; ++j) x.set(j, -kInf);              // row 0: first 100000 -inf
    for (int64_t j = 0; j < cols; ++j) x.set(cols + j, -kInf);         // row 1: all -inf
    x.set(2 * cols + 77777, kInf);                                     // row 2: one +inf
    auto want = test::poisoned(t, {rows, cols}, Device::cpu());
    softmax(x.view(), want);
    auto hw = test::to_host(want);
    auto dx = test::to_device(x, d);
    auto out = test::poisoned(t, {rows, cols}, d);
    softmax(dx, out);
    // Exact zeros, NaN rows, and rows 0 and 3 against the CPU.
    auto check = [&](const test::HostTensor& got, const std::string& what) {
      for (int64_t j = 0; j < 2 * cols; ++j) {
        if (j < 100000) ASSERT_EQ(got.get(j), 0.0) << what << " " << j;
        if (j >= cols) ASSERT_TRUE(std::isnan(got.get(j)) && std::isnan(got.get(j + cols))) << what << " " << j;
      }
      for (int64_t r : {0, 3}) {
        test::HostTensor g(t, {1, cols}), w(t, {1, cols});
        for (int64_t j = 0; j < cols; ++j) {
          g.set(j, got.get(r * cols + j));
          w.set(j, hw.get(r * cols + j));
        }
        auto c = test::compare(g, w.to_double(), test::tol_reduction(t));
        EXPECT_TRUE(c.ok) << what << " row " << r << ": " << c.message;
      }
    };
    auto got = test::to_host(out);
    check(got, std::string(name(t)));
    softmax(dx, out);
    EXPECT_EQ(test::to_host(out).bytes, got.bytes) << name(t) << " second launch";

    for (bool warm : {false, true}) {
      Stream s = Stream::create(d);
      auto gx = test::to_device(x, d);
      auto gout = test::poisoned(t, {rows, cols}, d);
      if (warm) {
        softmax(gx, gout, s);
        s.synchronize();
      }
      Graph g;
      g.begin_capture(s);
      softmax(gx, gout, s);
      g.end_capture();
      for (int rep = 0; rep < 2; ++rep) {
        g.replay(s);
        s.synchronize();
        check(test::to_host(gout), std::string(name(t)) + (warm ? " warm" : " cold") + " replay");
      }
    }
  }
}

TEST(ScaleMaskSoftmaxGpu, MatchesCpuOnLongRowsInPlace) {
  if (!cuda_available()) GTEST_SKIP() << "no CUDA device here";
  const Device d = Device::cuda(0);
  for (int64_t seq_k : {2048, 40000, 40001}) {
    const int64_t nh = 3, seq_q = 5;
    auto s = test::random_uniform(DType::f32, {nh * seq_q, seq_k}, test::case_seed("sms gpu"), -20, 20);
    test::HostTensor m(DType::bf16, {seq_q, seq_k});
    for (int64_t q = 0; q < seq_q; ++q)
      for (int64_t k = 0; k < seq_k; ++k) m.set(q * seq_k + k, q == 1 || k > q + seq_k - seq_q ? -kInf : 0.0);
    auto want = test::poisoned(DType::f32, {nh * seq_q, seq_k}, Device::cpu());
    scale_mask_softmax(s.view(), m.view(), want, seq_q, 0.125f);
    auto ds = test::to_device(s, d), dm = test::to_device(m, d);
    scale_mask_softmax(ds, dm, ds, seq_q, 0.125f);
    auto r = test::compare(test::to_host(ds), test::to_host(want).to_double(), test::tol_reduction(DType::f32));
    EXPECT_TRUE(r.ok) << "seq_k " << seq_k << ": " << r.message;
  }
}

}  // namespace
}  // namespace lmk
