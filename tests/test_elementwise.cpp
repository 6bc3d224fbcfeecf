// Elementwise family: rejected inputs (each with its error code), IEEE edge cases from
// core-ops.md §2, and a CUDA graph capture of three ops replayed on new data.
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <vector>

#include "util/expect_error.h"
#include "lmk/lmk.h"
#include "util/testkit.h"

namespace lmk {
namespace {


Tensor f32(std::vector<float>& v, std::initializer_list<int64_t> shape) { return Tensor(v.data(), DType::f32, shape); }

TEST(ElementwiseErrors, RejectsBadArguments) {
  std::vector<float> a(12, 1.f), b(12, 2.f), o(12), small(5);
  std::vector<uint16_t> h(12);
  Tensor ta = f32(a, {3, 4}), tb = f32(b, {3, 4}), to = f32(o, {3, 4});
  EXPECT_EQ(code_of([&] { add(ta, f32(small, {5}), to); }), ErrorCode::InvalidArgument);          // shape
  EXPECT_EQ(code_of([&] { add(ta, tb, f32(small, {5})); }), ErrorCode::InvalidArgument);          // out numel
  EXPECT_EQ(code_of([&] { add(ta, Tensor(h.data(), DType::f16, {3, 4}), to); }), ErrorCode::InvalidArgument);  // dtype mix
  EXPECT_EQ(code_of([&] { divide(Tensor(h.data(), DType::f16, {12}), Tensor(h.data(), DType::f16, {12}),
                                 Tensor(h.data(), DType::f16, {12})); }), ErrorCode::Unsupported);
  EXPECT_EQ(code_of([&] { add(Tensor(a.data(), DType::i32, {12}), Tensor(b.data(), DType::i32, {12}),
                              Tensor(o.data(), DType::i32, {12})); }), ErrorCode::Unsupported);
  EXPECT_EQ(code_of([&] { add(Tensor(nullptr, DType::f32, {12}), tb, to); }), ErrorCode::InvalidArgument);  // null
  EXPECT_EQ(code_of([&] { add(Tensor(), tb, to); }), ErrorCode::InvalidArgument);                  // undefined
  EXPECT_EQ(code_of([&] { add(f32(a, {0}), f32(b, {0}), f32(o, {0})); }), ErrorCode::InvalidArgument);  // empty
  const int64_t shape[] = {3, 4}, strides[] = {1, 3};
  EXPECT_EQ(code_of([&] { add(Tensor(a.data(), DType::f32, shape, strides), tb, to); }), ErrorCode::InvalidArgument);
  auto* mis = reinterpret_cast<float*>(reinterpret_cast<char*>(a.data()) + 2);  // misaligned
  EXPECT_EQ(code_of([&] { add(Tensor(mis, DType::f32, {4}), f32(b, {4}), f32(o, {4})); }), ErrorCode::InvalidArgument);
  // Partial overlap of out with an input is rejected; exact in-place is allowed.
  EXPECT_EQ(code_of([&] { add(Tensor(a.data(), DType::f32, {8}), f32(b, {8}), Tensor(a.data() + 1, DType::f32, {8})); }),
            ErrorCode::InvalidArgument);
  add(ta, tb, ta);
  EXPECT_EQ(a[0], 3.f);
  EXPECT_EQ(code_of([&] { cast(ta, Tensor(a.data(), DType::f16, {12})); }), ErrorCode::InvalidArgument);  // alias across dtypes
  EXPECT_EQ(code_of([&] { cast(ta, Tensor(h.data(), DType::i32, {6})); }), ErrorCode::Unsupported);
  EXPECT_EQ(code_of([&] { exp(Tensor(h.data(), DType::bf16, {12}), Tensor(h.data(), DType::bf16, {12})); }),
            ErrorCode::Unsupported);
  // A row broadcast needs b numel == last dim.
  EXPECT_EQ(code_of([&] { mul(ta, f32(small, {3}), to); }), ErrorCode::InvalidArgument);
}

TEST(ElementwiseErrors, DeviceMismatch) {
  std::vector<float> a(4), b(4), o(4);
  ErrorCode c = code_of([&] { add(Tensor(a.data(), DType::f32, {4}), Tensor(b.data(), DType::f32, {4}, Device::cuda(0)),
                                  Tensor(o.data(), DType::f32, {4})); });
  EXPECT_TRUE(c == ErrorCode::InvalidArgument || c == ErrorCode::Unsupported);
}

// Runs fn on the CPU and, when present, on CUDA, with host vectors staged to the device.
template <typename Fn>
void on_each_device(Fn&& fn) {
  fn(Device::cpu());
  if (cuda_available()) fn(Device::cuda(0));
}

std::vector<float> run_unary(Device d, void (*op)(const Tensor&, const Tensor&, Stream&), std::vector<float> x) {
  test::HostTensor hx(DType::f32, {int64_t(x.size())});
  for (size_t i = 0; i < x.size(); ++i) hx.set(int64_t(i), x[i]);
  auto dx = test::to_device(hx, d);
  auto out = test::poisoned(DType::f32, {int64_t(x.size())}, d);
  op(dx, out, default_stream());
  auto h = test::to_host(out);
  return {h.as<float>(), h.as<float>() + x.size()};
}

TEST(ElementwiseEdges, IeeeResults) {
  on_each_device([](Device d) {
    auto e = run_unary(d, &exp, {88.8f, -104.f, 0.f, -INFINITY});
    EXPECT_TRUE(std::isinf(e[0]) && e[0] > 0) << d.str();
    EXPECT_GE(e[1], 0.f);
    EXPECT_LT(e[1], 1e-44f);
    EXPECT_EQ(e[2], 1.f);
    EXPECT_EQ(e[3], 0.f);
    auto l = run_unary(d, &log, {0.f, -1.f, 1.f, INFINITY});
    EXPECT_TRUE(std::isinf(l[0]) && l[0] < 0);
    EXPECT_TRUE(std::isnan(l[1]));
    EXPECT_EQ(l[2], 0.f);
    EXPECT_TRUE(std::isinf(l[3]));
    auto s = run_unary(d, &sqrt, {-1.f, -0.f, 4.f});
    EXPECT_TRUE(std::isnan(s[0]));
    EXPECT_TRUE(std::signbit(s[1]) && s[1] == 0.f);
    EXPECT_EQ(s[2], 2.f);
  });
}

TEST(ElementwiseEdges, ScalarMulBf16NearTieUsesF32Product) {
  on_each_device([](Device d) {
    test::HostTensor x(DType::bf16, {1});
    x.as<uint16_t>()[0] = 0x3F89;  // 1.0703125
    auto dx = test::to_device(x, d);
    auto out = test::poisoned(DType::bf16, {1}, d);
    scalar_mul(dx, std::bit_cast<float>(0x3FCD148Eu), out);
    EXPECT_EQ(test::to_host(out).get(0), 1.71875) << d.str();
  });
}

TEST(ElementwiseEdges, DivideSignedZeros) {
  on_each_device([](Device d) {
    test::HostTensor a(DType::f32, {4}), b(DType::f32, {4});
    float av[] = {1.f, -1.f, 0.f, 6.f}, bv[] = {0.f, 0.f, 0.f, -3.f};
    for (int i = 0; i < 4; ++i) a.set(i, av[i]), b.set(i, bv[i]);
    auto da = test::to_device(a, d), db = test::to_device(b, d);
    auto out = test::poisoned(DType::f32, {4}, d);
    divide(da, db, out);
    auto h = test::to_host(out);
    EXPECT_EQ(h.get(0), INFINITY);
    EXPECT_EQ(h.get(1), -INFINITY);
    EXPECT_TRUE(std::isnan(h.get(2)));
    EXPECT_EQ(h.get(3), -2.0);
  });
}

// GPU: capture add -> mul -> cast into a graph, replay it with fresh inputs in the same buffers.
TEST(GraphGpu, CaptureThreeOpsAndReplayWithNewData) {
  if (!cuda_available()) GTEST_SKIP() << "no CUDA device here";
  const Device d = Device::cuda(0);
  const int64_t n = 100003;
  Stream s = Stream::create(d);
  Buffer a(DType::f32, {n}, d), b(DType::f32, {n}, d), t(DType::f32, {n}, d), y(DType::bf16, {n}, d);
  Graph g;
  g.begin_capture(s);
  add(a, b, t, s);       // t = a + b
  mul(t, a, t, s);       // t = (a + b) * a
  cast(t, y, s);         // y = bf16(t)
  g.end_capture();
  EXPECT_GE(g.node_count(), 3);
  for (int round = 0; round < 3; ++round) {
    auto ha = test::random_uniform(DType::f32, {n}, test::case_seed("graph a") + round, -2, 2);
    auto hb = test::random_uniform(DType::f32, {n}, test::case_seed("graph b") + round, -2, 2);
    copy_bytes(a.data(), d, ha.bytes.data(), Device::cpu(), a.bytes(), s);
    copy_bytes(b.data(), d, hb.bytes.data(), Device::cpu(), b.bytes(), s);
    g.replay(s);
    s.synchronize();
    auto hy = test::to_host(y.tensor());
    std::vector<double> want(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) want[size_t(i)] = double(float(float(ha.get(i) + hb.get(i)) * float(ha.get(i))));
    auto r = test::compare(hy, want, test::exact());
    EXPECT_TRUE(r.ok) << "round " << round << ": " << r.message;
  }
  Graph empty;
  EXPECT_EQ(code_of([&] { empty.replay(s); }), ErrorCode::InvalidArgument);
  EXPECT_EQ(code_of([&] { g.begin_capture(default_stream()); }), ErrorCode::InvalidArgument);
}

// An op that throws inside a capture leaves it open; destroying the Graph ends it, so the stream
// runs ops again (before, every later launch on it failed as an invalidated capture).
TEST(GraphGpu, ThrowInsideCaptureLeavesTheStreamUsable) {
  if (!cuda_available()) GTEST_SKIP() << "no CUDA device here";
  const Device d = Device::cuda(0);
  const int64_t n = 1000;
  Stream s = Stream::create(d);
  Buffer a(DType::f32, {n}, d), b(DType::f32, {n}, d), y(DType::f32, {n}, d), wrong(DType::f32, {n + 1}, d);
  {
    Graph g;
    g.begin_capture(s);
    add(a, b, y, s);
    EXPECT_EQ(code_of([&] { add(a, wrong, y, s); }), ErrorCode::InvalidArgument);
  }  // ~Graph: the capture ends here
  auto ha = test::random_uniform(DType::f32, {n}, 5, -2, 2);
  copy_bytes(a.data(), d, ha.bytes.data(), Device::cpu(), a.bytes(), s);
  copy_bytes(b.data(), d, ha.bytes.data(), Device::cpu(), b.bytes(), s);
  add(a, b, y, s);
  s.synchronize();
  auto hy = test::to_host(y.tensor());
  for (int64_t i = 0; i < n; ++i) ASSERT_EQ(hy.get(i), double(float(ha.get(i)) + float(ha.get(i)))) << i;
}

TEST(BufferPoolGpu, DeviceAllocationsAndCopies) {
  if (!cuda_available()) GTEST_SKIP() << "no CUDA device here";
  BufferPool pool(Device::cuda(0));
  auto h = test::random_uniform(DType::f32, {1000}, 7);
  {
    Buffer b = pool.alloc(DType::f32, {1000});
    copy_bytes(b.data(), b.device(), h.bytes.data(), Device::cpu(), 4000);
    auto back = test::to_host(b.tensor());
    EXPECT_EQ(back.bytes, h.bytes);
  }
  EXPECT_EQ(pool.stats().bytes_cached, 4096);
  Buffer again = pool.alloc(4000);
  EXPECT_EQ(pool.stats().hits, 1);
}

}  // namespace
}  // namespace lmk
