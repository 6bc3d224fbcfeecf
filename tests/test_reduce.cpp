// Reduce family: rejected inputs (each with its error code), the cases core-ops.md §6 names on
// every device, and CUDA specifics: the look-back scan across launches (epochs), in place,
// unaligned views, and inside CUDA graph capture with and without a warmed-up scratch.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "util/expect_error.h"
#include "lmk/lmk.h"
#include "lmk/reduce.h"
#include "util/testkit.h"

namespace lmk {
namespace {


template <typename Fn>
void on_each_device(Fn&& fn) {
  fn(Device::cpu());
  if (cuda_available()) fn(Device::cuda(0));
}

TEST(RowSumErrors, RejectsBadArguments) {
  std::vector<float> a(12, 1.f), o(4);
  std::vector<uint16_t> h(12);
  Tensor ta(a.data(), DType::f32, {3, 4}), to(o.data(), DType::f32, {3});
  EXPECT_EQ(code_of([&] { row_sum(Tensor(a.data(), DType::f32, {0, 4}), Tensor(o.data(), DType::f32, {0})); }),
            ErrorCode::InvalidArgument);
  EXPECT_EQ(code_of([&] { row_sum(Tensor(a.data(), DType::f32, {3, 0}), to); }), ErrorCode::InvalidArgument);
  EXPECT_EQ(code_of([&] { row_sum(ta, Tensor(o.data(), DType::f32, {4})); }), ErrorCode::InvalidArgument);  // numel
  EXPECT_EQ(code_of([&] { row_sum(Tensor(h.data(), DType::bf16, {3, 4}), to); }), ErrorCode::Unsupported);
  EXPECT_EQ(code_of([&] { row_sum(ta, Tensor(h.data(), DType::f16, {3})); }), ErrorCode::Unsupported);
  EXPECT_EQ(code_of([&] { row_sum(ta, Tensor(a.data() + 2, DType::f32, {3})); }), ErrorCode::InvalidArgument);
  const int64_t shape[] = {3, 4}, strides[] = {1, 3};
  EXPECT_EQ(code_of([&] { row_sum(Tensor(a.data(), DType::f32, shape, strides), to); }), ErrorCode::InvalidArgument);
  EXPECT_EQ(code_of([&] { row_sum(Tensor(), to); }), ErrorCode::InvalidArgument);
  ErrorCode c = code_of([&] { row_sum(ta, Tensor(o.data(), DType::f32, {3}, Device::cuda(0))); });
  EXPECT_TRUE(c == ErrorCode::InvalidArgument || c == ErrorCode::Unsupported);
}

TEST(CumsumErrors, RejectsBadArguments) {
  std::vector<float> a(12, 1.f), o(12);
  std::vector<uint16_t> h(12), g(12);
  Tensor ta(a.data(), DType::f32, {3, 4}), to(o.data(), DType::f32, {3, 4});
  EXPECT_EQ(code_of([&] { cumsum(Tensor(h.data(), DType::f16, {12}), Tensor(g.data(), DType::f16, {12})); }),
            ErrorCode::Unsupported);
  EXPECT_EQ(code_of([&] { cumsum(Tensor(a.data(), DType::i32, {12}), Tensor(o.data(), DType::i32, {12})); }),
            ErrorCode::Unsupported);
  EXPECT_EQ(code_of([&] { cumsum(ta, Tensor(h.data(), DType::bf16, {3, 4})); }), ErrorCode::InvalidArgument);
  EXPECT_EQ(code_of([&] { cumsum(Tensor(a.data(), DType::f32, {0, 4}), Tensor(o.data(), DType::f32, {0, 4})); }),
            ErrorCode::InvalidArgument);
  EXPECT_EQ(code_of([&] { cumsum(Tensor(a.data(), DType::f32, {4, 0}), Tensor(o.data(), DType::f32, {4, 0})); }),
            ErrorCode::InvalidArgument);
  EXPECT_EQ(code_of([&] { cumsum(ta, Tensor(o.data(), DType::f32, {11})); }), ErrorCode::InvalidArgument);
  EXPECT_EQ(code_of([&] { cumsum(Tensor(a.data(), DType::f32, {8}), Tensor(a.data() + 1, DType::f32, {8})); }),
            ErrorCode::InvalidArgument);  // partial overlap
  const int64_t shape[] = {3, 4}, strides[] = {1, 3};
  EXPECT_EQ(code_of([&] { cumsum(Tensor(a.data(), DType::f32, shape, strides), to); }), ErrorCode::InvalidArgument);
  ErrorCode c = code_of([&] { cumsum(ta, Tensor(o.data(), DType::f32, {3, 4}, Device::cuda(0))); });
  EXPECT_TRUE(c == ErrorCode::InvalidArgument || c == ErrorCode::Unsupported);
  cumsum(ta, ta);  // exact in-place is allowed
  EXPECT_EQ(a[3], 4.f);
  EXPECT_EQ(a[4], 1.f);
}

TEST(RowSum, CancellationStaysWithinTheSumAbsBound) {
  on_each_device([](Device d) {
    test::HostTensor x(DType::f32, {2, 3});
    const double v[6] = {1e8, 1, -1e8, -1e8, 1, 1e8};
    for (int i = 0; i < 6; ++i) x.set(i, v[i]);
    auto dx = test::to_device(x, d);
    auto out = test::poisoned(DType::f32, {2}, d);
    row_sum(dx, out);
    auto h = test::to_host(out);
    for (int r = 0; r < 2; ++r) {
      EXPECT_FALSE(std::isnan(h.get(r)));
      EXPECT_LE(std::fabs(h.get(r) - 1.0), 1e-5 * 2.00000001e8) << d.str();  // 0 or 1 are both fine
    }
  });
}

std::vector<double> run_cumsum(Device d, DType t, const std::vector<double>& x, int64_t rows) {
  const int64_t cols = int64_t(x.size()) / rows;
  test::HostTensor hx(t, {rows, cols});
  for (size_t i = 0; i < x.size(); ++i) hx.set(int64_t(i), x[i]);
  auto dx = test::to_device(hx, d);
  auto out = test::poisoned(t, {rows, cols}, d);
  cumsum(dx, out);
  return test::to_host(out).to_double();
}

TEST(Cumsum, SpecCases) {
  on_each_device([](Device d) {
    for (DType t : {DType::f32, DType::bf16}) {
      EXPECT_EQ(run_cumsum(d, t, {1, 2, 3, 4}, 1), (std::vector<double>{1, 3, 6, 10}));
      EXPECT_EQ(run_cumsum(d, t, {-1, 0, 2, -3, 0, 0, 5, -0.5}, 2), (std::vector<double>{-1, -1, 1, -2, 0, 0, 5, 4.5}));
    }
    // All ones: every prefix is an integer below 2^24, exact in any f32 summation order.
    for (int64_t n : {8192, 8193, 100000}) {
      for (int64_t rows : {1, 3}) {
        auto y = run_cumsum(d, DType::f32, std::vector<double>(size_t(n * rows), 1.0), rows);
        bool ok = true;
        for (int64_t r = 0; r < rows; ++r)
          for (int64_t i = 0; i < n; ++i) ok = ok && y[size_t(r * n + i)] == double(i + 1);
        EXPECT_TRUE(ok) << "n " << n << " rows " << rows << " on " << d.str();
        EXPECT_EQ(y.back(), double(n));
      }
    }
  });
}

// Integer-valued data (|x| <= 8, prefixes < 2^24) makes every f32 order exact, so GPU results
// must equal the CPU's bit for bit.
test::HostTensor integer_rows(DType t, int64_t rows, int64_t cols, const char* salt) {
  auto x = test::random_uniform(t, {rows, cols}, test::case_seed(salt), -8, 9);
  for (int64_t i = 0; i < x.numel(); ++i) x.set(i, std::floor(x.get(i)));
  return x;
}

TEST(CumsumGpu, LookbackAcrossLaunchesInPlaceAndUnaligned) {
  if (!cuda_available()) GTEST_SKIP() << "no CUDA device here";
  const Device d = Device::cuda(0);
  for (auto [rows, cols] : {std::pair<int64_t, int64_t>{1, 2000000}, {4, 300000}, {3, 8193}, {7, 65536}}) {
    auto x = integer_rows(DType::f32, rows, cols, "lookback");
    auto want = test::poisoned(DType::f32, {rows, cols}, Device::cpu());
    cumsum(x.view(), want);
    const auto ref = test::to_host(want).bytes;
    auto dx = test::to_device(x, d);
    auto out = test::poisoned(DType::f32, {rows, cols}, d);
    for (int rep = 0; rep < 3; ++rep) {  // status words of earlier launches must not leak in
      cumsum(dx, out);
      EXPECT_EQ(test::to_host(out).bytes, ref) << rows << "x" << cols << " launch " << rep;
    }
    cumsum(dx, dx);
    EXPECT_EQ(test::to_host(dx).bytes, ref) << rows << "x" << cols << " in place";
    const int64_t n = rows * cols;
    Buffer bx((n + 4) * 4, d), by((n + 4) * 4, d);
    copy_bytes(static_cast<float*>(bx.data()) + 1, d, x.bytes.data(), Device::cpu(), n * 4);
    Tensor vx(static_cast<float*>(bx.data()) + 1, DType::f32, {rows, cols}, d);
    Tensor vy(static_cast<float*>(by.data()) + 3, DType::f32, {rows, cols}, d);
    cumsum(vx, vy);
    EXPECT_EQ(test::to_host(vy).bytes, ref) << rows << "x" << cols << " unaligned";
  }
}

TEST(CumsumGpu, GraphCaptureWithAndWithoutScratch) {
  if (!cuda_available()) GTEST_SKIP() << "no CUDA device here";
  const Device d = Device::cuda(0);
  const int64_t rows = 2, cols = 500000;
  for (bool warm : {false, true}) {  // cold first: its stream is surely new
    Stream s = Stream::create(d);  // a fresh stream has no look-back scratch yet
    auto x = integer_rows(DType::f32, rows, cols, "graph");
    auto dx = test::to_device(x, d);
    auto out = test::poisoned(DType::f32, {rows, cols}, d);
    if (warm) {
      cumsum(dx, out, s);
      s.synchronize();
    }
    Graph g;
    g.begin_capture(s);
    cumsum(dx, out, s);
    g.end_capture();
    for (int rep = 0; rep < 3; ++rep) {
      auto xr = integer_rows(DType::f32, rows, cols, rep == 0 ? "graph a" : rep == 1 ? "graph b" : "graph c");
      auto want = test::poisoned(DType::f32, {rows, cols}, Device::cpu());
      cumsum(xr.view(), want);
      copy_bytes(dx.tensor.data(), d, xr.bytes.data(), Device::cpu(), rows * cols * 4, s);
      g.replay(s);
      s.synchronize();
      EXPECT_EQ(test::to_host(out).bytes, test::to_host(want).bytes) << (warm ? "warm" : "cold") << " replay " << rep;
    }
  }
}

TEST(RowSumGpu, ClusterSplitMatchesBound) {
  if (!cuda_available()) GTEST_SKIP() << "no CUDA device here";
  const Device d = Device::cuda(0);
  // Integer data: every partial sum is exact, so the split result equals the CPU's.
  for (auto [rows, cols] : {std::pair<int64_t, int64_t>{1, 3000000}, {3, 65537}, {1000, 4096}}) {
    auto x = integer_rows(DType::f32, rows, cols, "rowsum");
    auto want = test::poisoned(DType::f32, {rows}, Device::cpu());
    row_sum(x.view(), want);
    auto dx = test::to_device(x, d);
    auto out = test::poisoned(DType::f32, {rows}, d);
    row_sum(dx, out);
    EXPECT_EQ(test::to_host(out).bytes, test::to_host(want).bytes) << rows << "x" << cols;
  }
}

}  // namespace
}  // namespace lmk
