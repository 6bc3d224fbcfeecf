// Core runtime: dtypes, half conversions, tensors, buffers, the pool, errors, registry, docs.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <sstream>

#include "util/expect_error.h"
#include "check/check.h"
#include "lmk/lmk.h"

namespace lmk {
namespace {


TEST(DType, TraitsMatchQuantFormatsSpec) {
  EXPECT_EQ(element_size(DType::f32), 4);
  EXPECT_EQ(element_size(DType::bf16), 2);
  EXPECT_EQ(element_size(DType::i64), 8);
  struct { DType t; int64_t qk, bytes; int ggml; } q[] = {
      {DType::q4_0, 32, 18, 2}, {DType::q5_0, 32, 22, 6}, {DType::q5_1, 32, 24, 7}, {DType::q8_0, 32, 34, 8},
      {DType::iq4_nl, 32, 18, 20}, {DType::q2_K, 256, 84, 10}, {DType::q4_K, 256, 144, 12},
      {DType::q5_K, 256, 176, 13}, {DType::q6_K, 256, 210, 14}, {DType::iq4_xs, 256, 136, 23}};
  for (auto& e : q) {
    EXPECT_EQ(dtype_info(e.t).block_elems, e.qk) << name(e.t);
    EXPECT_EQ(dtype_info(e.t).block_bytes, e.bytes) << name(e.t);
    EXPECT_EQ(dtype_from_ggml_id(e.ggml), e.t);
    EXPECT_EQ(dtype_from_name(name(e.t)), e.t);
  }
  EXPECT_EQ(storage_bytes(DType::q4_K, 4096), 16 * 144);
  EXPECT_EQ(code_of([] { storage_bytes(DType::q4_0, 33); }), ErrorCode::InvalidArgument);
  EXPECT_EQ(code_of([] { storage_bytes(DType::f64, INT64_MAX / 4); }), ErrorCode::InvalidArgument);
  EXPECT_FALSE(dtype_from_ggml_id(3).has_value());  // Q4_1 is rejected
}

TEST(Half, RoundTripEveryF16Pattern) {
  for (uint32_t b = 0; b < 65536; ++b) {
    float f = f16_bits_to_f32(uint16_t(b));
    if (std::isnan(f)) {
      EXPECT_TRUE(std::isnan(f16_bits_to_f32(f32_to_f16_bits(f))));
      continue;
    }
    ASSERT_EQ(f32_to_f16_bits(f), b) << b;
  }
}

TEST(Half, RoundsToNearestEven) {
  EXPECT_EQ(f32_to_f16_bits(70000.f), 0x7c00);          // overflow -> inf
  EXPECT_EQ(f32_to_f16_bits(65519.f), 0x7bff);          // below the tie -> max finite
  EXPECT_EQ(f32_to_f16_bits(65520.f), 0x7c00);          // tie with max -> even (inf)
  EXPECT_EQ(f32_to_f16_bits(std::ldexp(1.f, -25)), 0);  // tie below smallest subnormal -> 0
  EXPECT_EQ(f32_to_f16_bits(std::ldexp(1.5f, -25)), 1);
  EXPECT_EQ(f32_to_bf16_bits(1.0f + 1.0f / 256), 0x3f80);      // tie -> even (1.0)
  EXPECT_EQ(f32_to_bf16_bits(1.0f + 3.0f / 256), 0x3f82);      // tie -> even (up)
  EXPECT_TRUE(std::isnan(bf16_bits_to_f32(f32_to_bf16_bits(NAN))));
  for (uint32_t b = 0; b < 65536; ++b) {
    float f = bf16_bits_to_f32(uint16_t(b));
    if (!std::isnan(f)) ASSERT_EQ(f32_to_bf16_bits(f), b);
  }
}

TEST(Tensor, ShapesStridesAndErrors) {
  float data[24];
  Tensor t(data, DType::f32, {2, 3, 4});
  EXPECT_EQ(t.numel(), 24);
  EXPECT_EQ(t.nbytes(), 96);
  EXPECT_EQ(t.stride(0), 12);
  EXPECT_EQ(t.stride(-1), 1);
  EXPECT_TRUE(t.is_contiguous());
  EXPECT_EQ(t.reshape({6, 4}).size(0), 6);
  EXPECT_EQ(code_of([&] { (void)t.reshape({5, 5}); }), ErrorCode::InvalidArgument);
  const int64_t shape[] = {3, 4}, strides[] = {1, 3};
  Tensor tt(data, DType::f32, shape, strides);
  EXPECT_FALSE(tt.is_contiguous());
  EXPECT_EQ(tt.span_bytes(), 12 * 4);
  EXPECT_EQ(code_of([&] { (void)t.size(3); }), ErrorCode::InvalidArgument);
  const int64_t nine[9] = {1, 1, 1, 1, 1, 1, 1, 1, 1};
  EXPECT_EQ(code_of([&] { Tensor bad(data, DType::f32, nine); }), ErrorCode::InvalidArgument);
  EXPECT_EQ(code_of([&] { Tensor bad(data, DType::f32, {2, -1}); }), ErrorCode::InvalidArgument);
  Tensor q(data, DType::q4_0, {2, 64});
  EXPECT_EQ(q.nbytes(), 2 * 2 * 18);
  EXPECT_NE(t.str().find("f32[2,3,4]"), std::string::npos);
}

TEST(Buffer, ZeroFilledAlignedAndMovable) {
  Buffer b(DType::f32, {1000}, Device::cpu());
  EXPECT_EQ(reinterpret_cast<uintptr_t>(b.data()) % 256, 0u);
  for (int i = 0; i < 1000; ++i) ASSERT_EQ(b.tensor().data_as<float>()[i], 0.f);
  Buffer c = std::move(b);
  EXPECT_EQ(b.data(), nullptr);
  EXPECT_EQ(c.bytes(), 4000);
  EXPECT_EQ(code_of([] { Buffer z(0, Device::cpu()); }), ErrorCode::InvalidArgument);
  EXPECT_EQ(code_of([] { Buffer z(DType::f32, {INT64_MAX / 2, 4}, Device::cpu()); }), ErrorCode::InvalidArgument);
  EXPECT_EQ(code_of([&] { (void)c.view(DType::f32, {2000}); }), ErrorCode::InvalidArgument);
}

TEST(BufferPool, ReusesSizeClassesAndTrims) {
  BufferPool pool(Device::cpu());
  EXPECT_EQ(BufferPool::size_class(1), 256);
  EXPECT_EQ(BufferPool::size_class(257), 512);
  void* first = nullptr;
  {
    Buffer a = pool.alloc(1000);
    first = a.data();
    EXPECT_EQ(pool.stats().bytes_in_use, 1024);
  }
  EXPECT_EQ(pool.stats().bytes_cached, 1024);
  {
    Buffer b = pool.alloc(DType::f32, {200});  // 800 bytes -> the same 1024 class
    EXPECT_EQ(b.data(), first);
    EXPECT_EQ(b.tensor().numel(), 200);
  }
  auto s = pool.stats();
  EXPECT_EQ(s.hits, 1);
  EXPECT_EQ(s.misses, 1);
  pool.trim();
  EXPECT_EQ(pool.stats().bytes_cached, 0);
  EXPECT_EQ(code_of([&] { pool.alloc(0); }), ErrorCode::InvalidArgument);
}

TEST(Copy, HostRoundTripAndErrors) {
  float a[4] = {1, 2, 3, 4}, b[4] = {};
  copy_tensor(Tensor(b, DType::f32, {4}), Tensor(a, DType::f32, {4}));
  EXPECT_EQ(b[3], 4.f);
  EXPECT_EQ(code_of([&] { copy_tensor(Tensor(b, DType::f32, {4}), Tensor(a, DType::f32, {2, 2})); }),
            ErrorCode::InvalidArgument);
  EXPECT_EQ(code_of([&] { copy_tensor(Tensor(b, DType::f16, {4}), Tensor(a, DType::f32, {4})); }),
            ErrorCode::InvalidArgument);
}

TEST(Error, CarriesCodeAndMessage) {
  try {
    LMK_THROW(Format, "gguf: truncated header at byte ", 12);
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::Format);
    EXPECT_NE(std::string(e.what()).find("truncated header at byte 12"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("Format"), std::string::npos);
  }
}

TEST(Device, CpuAlwaysThereAndCudaErrorsAreClean) {
  EXPECT_EQ(default_device().is_cuda(), cuda_available());
  EXPECT_FALSE(std::string(version()).empty());
  if (!cuda_available()) {
    float a[4] = {};
    Tensor t(a, DType::f32, {4}, Device::cuda(0));
    ErrorCode c = code_of([&] { add(t, t, t); });
    EXPECT_TRUE(c == ErrorCode::Unsupported || c == ErrorCode::InvalidArgument);
  }
}

TEST(Registry, EveryOpHasChecksAndDocsAreCurrent) {
  auto ops = registered_ops();
  ASSERT_FALSE(ops.empty());
  for (const auto& o : ops) {
    int n = 0;
    for (const auto& c : test::check_cases()) n += c.op == o.name;
    EXPECT_GT(n, 0) << "op " << o.name << " has no check case";
  }
  for (const auto& c : test::check_cases()) EXPECT_NE(find_op(c.op), nullptr) << "check for unregistered op " << c.op;
  // docs/ops.md must equal what `lmk ops --markdown` prints now.
  std::string cmd = std::string(LMK_BINARY_DIR) + "/lmk ops --markdown --perf " + LMK_SOURCE_DIR + "/docs/perf-latest.tsv";
  FILE* p = popen(cmd.c_str(), "r");
  ASSERT_NE(p, nullptr);
  std::string generated;
  char buf[4096];
  while (size_t n = fread(buf, 1, sizeof buf, p)) generated.append(buf, n);
  ASSERT_EQ(pclose(p), 0);
  std::ifstream f(std::string(LMK_SOURCE_DIR) + "/docs/ops.md");
  std::stringstream committed;
  committed << f.rdbuf();
  EXPECT_EQ(committed.str(), generated) << "docs/ops.md is stale: run `make docs`";
}

}  // namespace
}  // namespace lmk
