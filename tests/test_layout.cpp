// Layout family: every rejected input with its ErrorCode, the documented no-ops and out-of-range
// rules (core-ops.md §7, training-and-vision.md §6/§7/§9). Suites named *Gpu* need a CUDA device.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "util/expect_error.h"
#include "lmk/lmk.h"
#include "lmk/layout.h"
#include "util/testkit.h"

namespace lmk {
namespace {


template <typename F>
std::string message_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  ADD_FAILURE() << "no lmk::Error thrown";
  return "";
}

constexpr auto kInvalid = ErrorCode::InvalidArgument;
constexpr auto kUnsupported = ErrorCode::Unsupported;

// Host buffers for the error tests (values don't matter, only shapes and addresses).
struct Host {
  std::vector<double> mem;  // 8-byte aligned storage
  explicit Host(size_t bytes) : mem(bytes / 8 + 2, 0.0) {}
  Tensor t(DType d, std::initializer_list<int64_t> shape, int64_t byte_offset = 0) {
    return Tensor(reinterpret_cast<unsigned char*>(mem.data()) + byte_offset, d, shape);
  }
  Tensor strided(DType d, std::initializer_list<int64_t> shape, std::initializer_list<int64_t> strides) {
    return Tensor(mem.data(), d, std::span<const int64_t>(shape.begin(), shape.size()),
                  std::span<const int64_t>(strides.begin(), strides.size()));
  }
};

// ---- copy -----------------------------------------------------------------------------------

TEST(LayoutCopy, RejectsBadViews) {
  Host a(4096), b(4096);
  const Tensor dst = b.t(DType::f32, {4, 8});
  EXPECT_EQ(code_of([&] { copy(a.strided(DType::f32, {4, 8}, {8, -1}), dst); }), kInvalid);  // negative stride
  EXPECT_EQ(code_of([&] { copy(a.t(DType::f32, {4, 0}), b.t(DType::f32, {4, 0})); }), kInvalid);  // zero size
  EXPECT_EQ(code_of([&] { copy(a.strided(DType::f32, {4, 8}, {INT64_MAX / 2, 1}), dst); }), kInvalid);  // span overflow
  EXPECT_EQ(code_of([&] { copy(a.t(DType::f32, {4, 8}, 2), dst); }), kInvalid);  // misaligned pointer
  EXPECT_EQ(code_of([&] { copy(a.t(DType::f32, {4, 8}), b.strided(DType::f32, {4, 8}, {1, 4})); }), kInvalid);
  EXPECT_EQ(code_of([&] { copy(a.t(DType::f32, {4, 8}), b.t(DType::f32, {8, 4})); }), kInvalid);  // shape
  EXPECT_EQ(code_of([&] { copy(a.t(DType::f32, {4, 8}), b.t(DType::i32, {4, 8})); }), kInvalid);  // dtype
  EXPECT_EQ(code_of([&] { copy(a.t(DType::q8_0, {4, 32}), b.t(DType::q8_0, {4, 32})); }), kUnsupported);
}

TEST(LayoutCopy, RejectsOverlap) {
  Host a(4096);
  // dst inside the span of a strided src (src reads every other element of a 64-element range).
  const Tensor src = a.strided(DType::f32, {32}, {2});
  EXPECT_EQ(code_of([&] { copy(src, a.t(DType::f32, {32}, 4 * 40)); }), kInvalid);
  EXPECT_EQ(code_of([&] { copy(a.t(DType::f32, {32}), a.t(DType::f32, {32})); }), kInvalid);  // in place
}

TEST(LayoutCopy, BroadcastAndOffsetViews) {
  std::vector<float> src = {1, 2, 3, 4, 5, 6};
  std::vector<float> out(12, -1.0f);
  const int64_t shape[] = {3, 4}, strides[] = {0, 1};
  copy(Tensor(src.data() + 2, DType::f32, shape, strides), Tensor(out.data(), DType::f32, {3, 4}));
  for (int r = 0; r < 3; ++r)
    for (int c = 0; c < 4; ++c) EXPECT_EQ(out[size_t(r * 4 + c)], src[size_t(2 + c)]);
}

// ---- permutations ------------------------------------------------------------------------------

TEST(LayoutPermute, RejectsShapesDtypesAndAliasing) {
  Host a(4096), b(4096);
  EXPECT_EQ(code_of([&] { transpose(a.t(DType::f32, {4, 8}), b.t(DType::f32, {4, 8})); }), kInvalid);
  EXPECT_EQ(code_of([&] { transpose(a.t(DType::f32, {2, 4, 8}), b.t(DType::f32, {2, 8, 4})); }), kInvalid);
  EXPECT_EQ(code_of([&] { transpose(a.t(DType::f32, {4, 8}), a.t(DType::f32, {8, 4})); }), kInvalid);  // alias
  EXPECT_EQ(code_of([&] { transpose(a.t(DType::f32, {4, 8}), b.t(DType::bf16, {8, 4})); }), kInvalid);
  EXPECT_EQ(code_of([&] { transpose(a.t(DType::q4_0, {32, 32}), b.t(DType::q4_0, {32, 32})); }), kUnsupported);
  EXPECT_EQ(code_of([&] { transpose_last2(a.t(DType::bf16, {2, 4, 8}), b.t(DType::bf16, {2, 4, 8})); }), kInvalid);
  EXPECT_EQ(code_of([&] { transpose_last2(a.t(DType::bf16, {4, 8}), b.t(DType::bf16, {8, 4})); }), kInvalid);
  EXPECT_EQ(code_of([&] { permute_021(a.t(DType::f32, {2, 4, 8}), b.t(DType::f32, {2, 4, 8})); }), kInvalid);
  EXPECT_EQ(code_of([&] { permute_021(a.t(DType::f32, {2, 4, 8}), b.t(DType::bf16, {4, 2, 8})); }), kUnsupported);
  EXPECT_EQ(code_of([&] { permute_021(a.t(DType::i32, {2, 4, 8}), b.t(DType::i32, {4, 2, 8})); }), kUnsupported);
  EXPECT_EQ(code_of([&] { permute_021(a.t(DType::bf16, {2, 4, 8}), a.t(DType::f32, {4, 2, 8}, 64)); }), kInvalid);  // alias
  EXPECT_EQ(code_of([&] { transpose(a.t(DType::f32, {0, 8}), b.t(DType::f32, {8, 0})); }), kInvalid);
}

// ---- gather / embedding / take_along_axis ------------------------------------------------------

TEST(LayoutGather, CpuRejectsOutOfRangeIndices) {
  std::vector<float> src(5 * 3, 1.0f), out(2 * 3, -7.0f);
  std::vector<uint32_t> idx = {1, 5};
  std::vector<int32_t> neg = {0, -1};
  const Tensor s(src.data(), DType::f32, {5, 3}), o(out.data(), DType::f32, {2, 3});
  EXPECT_EQ(code_of([&] { gather(s, Tensor(idx.data(), DType::u32, {2}), o); }), kInvalid);
  EXPECT_EQ(code_of([&] { gather(s, Tensor(neg.data(), DType::i32, {2}), o); }), kInvalid);
  for (float v : out) EXPECT_EQ(v, -7.0f);  // nothing written
}

TEST(LayoutGather, EmbeddingOutOfRangeIdsGiveZeroRows) {
  std::vector<float> table = {1, 2, 3, 4, 5, 6};  // [3, 2]
  std::vector<int32_t> ids = {2, 3, -1, 0};
  std::vector<float> out(8, NAN);
  embedding(Tensor(table.data(), DType::f32, {3, 2}), Tensor(ids.data(), DType::i32, {4}),
            Tensor(out.data(), DType::f32, {4, 2}));
  const std::vector<float> want = {5, 6, 0, 0, 0, 0, 1, 2};
  for (size_t i = 0; i < want.size(); ++i) {
    EXPECT_EQ(out[i], want[i]) << i;
    EXPECT_FALSE(std::signbit(out[i])) << i;
  }
}

TEST(LayoutGather, RejectsBadArguments) {
  Host a(4096), b(4096), c(4096);
  const Tensor src = a.t(DType::f32, {8, 4}), idx = b.t(DType::u32, {3}), out = c.t(DType::f32, {3, 4});
  EXPECT_EQ(code_of([&] { gather(src, b.t(DType::i64, {3}), out); }), kUnsupported);
  EXPECT_EQ(code_of([&] { gather(a.t(DType::i32, {8, 4}), idx, c.t(DType::i32, {3, 4})); }), kUnsupported);
  EXPECT_EQ(code_of([&] { gather(src, idx, c.t(DType::f32, {3, 5})); }), kInvalid);
  EXPECT_EQ(code_of([&] { gather(src, idx, c.t(DType::f32, {4, 4})); }), kInvalid);
  EXPECT_EQ(code_of([&] { gather(src, idx, c.t(DType::bf16, {3, 4})); }), kInvalid);
  EXPECT_EQ(code_of([&] { gather(a.t(DType::f32, {32}), idx, c.t(DType::f32, {3, 4})); }), kInvalid);
  EXPECT_EQ(code_of([&] { gather(src, idx, a.t(DType::f32, {3, 4}, 64)); }), kInvalid);  // out overlaps src
  EXPECT_EQ(code_of([&] { gather(src, idx, b.t(DType::f32, {3, 4})); }), kInvalid);      // out overlaps idx
  EXPECT_EQ(code_of([&] { gather(src, b.t(DType::u32, {0}), c.t(DType::f32, {0, 4})); }), kInvalid);
  EXPECT_EQ(code_of([&] { embedding(src, b.t(DType::u8, {3}), out); }), kUnsupported);
}

TEST(LayoutTakeAlongAxis, RejectsBadArguments) {
  Host a(4096), b(4096), c(4096);
  const Tensor x = a.t(DType::f32, {3, 4}), idx = b.t(DType::u32, {3, 2}), y = c.t(DType::f32, {3, 2});
  EXPECT_EQ(code_of([&] { take_along_axis(x, b.t(DType::u32, {3, 5}), c.t(DType::f32, {3, 5})); }), kInvalid);  // k > Cc
  EXPECT_EQ(code_of([&] { take_along_axis(x, b.t(DType::i32, {3, 2}), y); }), kUnsupported);
  EXPECT_EQ(code_of([&] { take_along_axis(a.t(DType::bf16, {3, 4}), idx, y); }), kUnsupported);
  EXPECT_EQ(code_of([&] { take_along_axis(x, b.t(DType::u32, {2, 2}), y); }), kInvalid);
  EXPECT_EQ(code_of([&] { take_along_axis(x, idx, c.t(DType::f32, {3, 3})); }), kInvalid);
  EXPECT_EQ(code_of([&] { take_along_axis(x, idx, a.t(DType::f32, {3, 2}, 16)); }), kInvalid);  // y overlaps x
  EXPECT_EQ(code_of([&] { take_along_axis(a.t(DType::f32, {0, 4}), b.t(DType::u32, {0, 2}), c.t(DType::f32, {0, 2})); }),
            kInvalid);
}

TEST(LayoutTakeAlongAxis, OutOfRangeGivesZeroAndKEqualsCc) {
  std::vector<float> x = {1, 2, 3, 4, 5, 6};  // [2, 3]
  std::vector<uint32_t> idx = {2, 0, 7, 1, 1, 3};
  std::vector<float> y(6, NAN);
  take_along_axis(Tensor(x.data(), DType::f32, {2, 3}), Tensor(idx.data(), DType::u32, {2, 3}),
                  Tensor(y.data(), DType::f32, {2, 3}));
  const std::vector<float> want = {3, 1, 0, 5, 5, 0};
  for (size_t i = 0; i < want.size(); ++i) EXPECT_EQ(y[i], want[i]) << i;
}

// ---- column ops and repeats --------------------------------------------------------------------

TEST(LayoutColumns, RejectsBadArguments) {
  Host a(8192), b(4096), c(4096), d(4096);
  const Tensor qkv = a.t(DType::f32, {4, 12});
  EXPECT_EQ(code_of([&] { qkv_split(qkv, b.t(DType::f32, {4, 4}), c.t(DType::f32, {4, 4}), d.t(DType::f32, {4, 5})); }),
            kInvalid);  // widths don't add up
  EXPECT_EQ(code_of([&] { qkv_split(qkv, b.t(DType::f32, {3, 4}), c.t(DType::f32, {4, 4}), d.t(DType::f32, {4, 4})); }),
            kInvalid);  // rows
  EXPECT_EQ(code_of([&] { qkv_split(qkv, b.t(DType::f32, {4, 4}), b.t(DType::f32, {4, 4}, 32), d.t(DType::f32, {4, 4})); }),
            kInvalid);  // q and k overlap
  EXPECT_EQ(code_of([&] { qkv_split(qkv, b.t(DType::bf16, {4, 4}), c.t(DType::f32, {4, 4}), d.t(DType::f32, {4, 4})); }),
            kInvalid);
  EXPECT_EQ(code_of([&] { qkv_split(a.t(DType::i32, {4, 12}), b.t(DType::i32, {4, 4}), c.t(DType::i32, {4, 4}),
                                    d.t(DType::i32, {4, 4})); }),
            kUnsupported);
  EXPECT_EQ(code_of([&] { qkv_split(a.t(DType::f32, {4, 8}), b.t(DType::f32, {4, 4}), c.t(DType::f32, {4, 4}),
                                    d.t(DType::f32, {4, 0})); }),
            kInvalid);  // zero size

  EXPECT_EQ(code_of([&] { repeat_tiled(a.t(DType::f32, {2, 3, 4}), b.t(DType::f32, {2, 8, 4})); }), kInvalid);  // 8 % 3
  EXPECT_EQ(code_of([&] { repeat_tiled(a.t(DType::f32, {2, 2, 4}), b.t(DType::f32, {2, 8, 5})); }), kInvalid);
  EXPECT_EQ(code_of([&] { repeat_tiled(a.t(DType::f32, {2, 2, 4}), a.t(DType::f32, {2, 8, 4})); }), kInvalid);  // alias

  EXPECT_EQ(code_of([&] { slice_2d_cols(a.t(DType::f32, {4, 10}), 6, b.t(DType::f32, {4, 5})); }), kInvalid);
  EXPECT_EQ(code_of([&] { slice_2d_cols(a.t(DType::f32, {4, 10}), -1, b.t(DType::f32, {4, 5})); }), kInvalid);
  EXPECT_EQ(code_of([&] { slice_2d_cols(a.t(DType::f32, {4, 10}), 0, b.t(DType::f32, {3, 5})); }), kInvalid);
  EXPECT_EQ(code_of([&] { slice_2d_cols(a.t(DType::u8, {4, 10}), 0, b.t(DType::u8, {4, 5})); }), kUnsupported);

  EXPECT_EQ(code_of([&] { copy_2d_cols_into(b.t(DType::f32, {4, 5}), a.t(DType::f32, {4, 10}), 6); }), kInvalid);
  EXPECT_EQ(code_of([&] { copy_2d_cols_into(b.t(DType::f32, {4, 5}), a.t(DType::f32, {4, 10}), INT64_MAX); }), kInvalid);
  EXPECT_EQ(code_of([&] { copy_2d_cols_into(b.t(DType::f32, {4, 5}), a.t(DType::f32, {5, 10}), 0); }), kInvalid);
  EXPECT_EQ(code_of([&] { copy_2d_cols_into(b.t(DType::f32, {4, 5}), b.t(DType::f32, {4, 10}), 0); }), kInvalid);  // alias
  const std::string msg = message_of([&] { feature_concat(b.t(DType::f32, {11, 32}), a.t(DType::f32, {11, 64}), 40); });
  EXPECT_NE(msg.find("overflows the destination row"), std::string::npos) << msg;
  EXPECT_EQ(code_of([&] { feature_concat(b.t(DType::f32, {11, 0}), a.t(DType::f32, {11, 64}), 0); }), kInvalid);
}

TEST(LayoutColumns, CopyIntoWritesOnlyItsSlab) {
  std::vector<float> dst(3 * 6, -1.0f), src = {1, 2, 3, 4, 5, 6};
  copy_2d_cols_into(Tensor(src.data(), DType::f32, {3, 2}), Tensor(dst.data(), DType::f32, {3, 6}), 4);
  for (int r = 0; r < 3; ++r)
    for (int c = 0; c < 6; ++c) EXPECT_EQ(dst[size_t(r * 6 + c)], c >= 4 ? src[size_t(r * 2 + c - 4)] : -1.0f);
}

// ---- kv cache ----------------------------------------------------------------------------------

TEST(LayoutKvCache, ZeroSizeCallsAreNoOps) {
  std::vector<float> cache(4 * 8, 3.0f), src(8, 1.0f);
  const Tensor c(cache.data(), DType::f32, {4, 8});
  kv_cache_copy(Tensor(src.data(), DType::f32, {0, 8}), c, {.write_pos = 100});  // n_new = 0
  kv_cache_copy(Tensor(src.data(), DType::f32, {3, 0}), Tensor(cache.data(), DType::f32, {4, 0}), {.write_pos = 2});
  kv_cache_copy(Tensor(nullptr, DType::f32, {0, 8}), Tensor(nullptr, DType::f32, {0, 8}), {.ring = true});
  kv_cache_copy_batch(Tensor(src.data(), DType::f32, {0}), Tensor(cache.data(), DType::f32, {0, 4, 8}), 99);
  kv_cache_copy_batch(Tensor(src.data(), DType::f32, {0}), Tensor(cache.data(), DType::f32, {2, 4, 0}), 99);
  const Tensor c3(cache.data(), DType::f32, {1, 4, 8});
  kv_cache_copy_seq(Tensor(src.data(), DType::f32, {1, 1, 8}), c3, {.src_offset = 5, .n_tokens = 0});
  kv_cache_copy_seq(Tensor(src.data(), DType::f32, {1, 0, 8}), Tensor(cache.data(), DType::f32, {0, 4, 8}),
                    {.n_tokens = 1});
  kv_cache_copy_seq_dual(Tensor(src.data(), DType::f32, {1, 1, 8}), Tensor(src.data(), DType::f32, {1, 1, 8}), c3, c3,
                         {.n_tokens = 0});
  for (float v : cache) EXPECT_EQ(v, 3.0f);
}

TEST(LayoutKvCache, RejectsOverflowAndBadPositions) {
  Host a(8192), b(8192);
  const Tensor src = a.t(DType::f32, {5, 8}), cache = b.t(DType::f32, {16, 8});
  EXPECT_EQ(code_of([&] { kv_cache_copy(src, cache, {.write_pos = 12}); }), kInvalid);  // global overflow
  EXPECT_EQ(code_of([&] { kv_cache_copy(src, cache, {.write_pos = INT64_MAX}); }), kInvalid);
  EXPECT_EQ(code_of([&] { kv_cache_copy(src, cache, {.write_pos = -1, .ring = true}); }), kInvalid);
  EXPECT_EQ(code_of([&] { kv_cache_copy(src, b.t(DType::f32, {4, 8}), {.ring = true}); }), kInvalid);  // n > cap
  EXPECT_EQ(code_of([&] { kv_cache_copy(src, b.t(DType::f32, {0, 8}), {.ring = true}); }), kInvalid);  // cap 0
  EXPECT_EQ(code_of([&] { kv_cache_copy(src, b.t(DType::f32, {16, 9}), {}); }), kInvalid);            // row
  EXPECT_EQ(code_of([&] { kv_cache_copy(src, b.t(DType::f16, {16, 8}), {}); }), kInvalid);            // dtype pair
  EXPECT_EQ(code_of([&] { kv_cache_copy(a.t(DType::i32, {5, 8}), b.t(DType::i32, {16, 8}), {}); }), kUnsupported);
  EXPECT_EQ(code_of([&] { kv_cache_copy(src, a.t(DType::f32, {16, 8}), {}); }), kInvalid);            // alias

  const Tensor c3 = b.t(DType::f32, {2, 8, 4});
  EXPECT_EQ(code_of([&] { kv_cache_copy_batch(a.t(DType::f32, {8}), c3, 8); }), kInvalid);  // seq_pos >= cap
  EXPECT_EQ(code_of([&] { kv_cache_copy_batch(a.t(DType::f32, {8}), c3, -1); }), kInvalid);
  EXPECT_EQ(code_of([&] { kv_cache_copy_batch(a.t(DType::f32, {9}), c3, 0); }), kInvalid);  // numel
  EXPECT_EQ(code_of([&] { kv_cache_copy_batch(a.t(DType::f16, {8}), b.t(DType::f16, {2, 8, 4}), 0); }), kUnsupported);
  EXPECT_EQ(code_of([&] { kv_cache_copy_batch(a.t(DType::f32, {8}), b.t(DType::bf16, {2, 8, 4}), 0); }), kUnsupported);

  const Tensor s3 = a.t(DType::f32, {10, 2, 4});
  EXPECT_EQ(code_of([&] { kv_cache_copy_seq(s3, c3, {.n_tokens = 9}); }), kInvalid);  // n > cap
  EXPECT_EQ(code_of([&] { kv_cache_copy_seq(s3, c3, {.src_offset = 5, .n_tokens = 6}); }), kInvalid);  // past n_src
  EXPECT_EQ(code_of([&] { kv_cache_copy_seq(s3, c3, {.src_offset = -1, .n_tokens = 2}); }), kInvalid);
  EXPECT_EQ(code_of([&] { kv_cache_copy_seq(s3, c3, {.n_tokens = -2}); }), kInvalid);
  EXPECT_EQ(code_of([&] { kv_cache_copy_seq(a.t(DType::f32, {10, 3, 4}), c3, {.n_tokens = 2}); }), kInvalid);
  EXPECT_EQ(code_of([&] { kv_cache_copy_seq(a.t(DType::bf16, {10, 2, 4}), b.t(DType::f16, {2, 8, 4}), {.n_tokens = 2}); }),
            kUnsupported);
  EXPECT_EQ(code_of([&] { kv_cache_copy_seq(s3, a.t(DType::f32, {2, 8, 4}, 64), {.n_tokens = 2}); }), kInvalid);  // alias
  Host v(8192), w(8192);
  EXPECT_EQ(code_of([&] {
              kv_cache_copy_seq_dual(s3, v.t(DType::f32, {10, 2, 4}), c3, w.t(DType::f32, {2, 8, 5}), {.n_tokens = 2});
            }),
            kInvalid);  // v cache shape differs
  EXPECT_EQ(code_of([&] { kv_cache_copy_seq_dual(s3, v.t(DType::f32, {10, 2, 4}), c3, c3, {.n_tokens = 2}); }),
            kInvalid);  // k and v caches alias
}

// ---- devices -----------------------------------------------------------------------------------

TEST(LayoutGpu, DeviceMismatchIsRejected) {
  if (!cuda_available()) GTEST_SKIP() << "no CUDA device here";
  Buffer g(DType::f32, {4, 8}, Device::cuda(0));
  std::vector<float> h(32);
  EXPECT_EQ(code_of([&] { copy(g.tensor(), Tensor(h.data(), DType::f32, {4, 8})); }), kInvalid);
  EXPECT_EQ(code_of([&] { transpose(Tensor(h.data(), DType::f32, {8, 4}), g.tensor()); }), kInvalid);
}

TEST(LayoutGpu, GatherClampsOutOfRangeToLastRow) {
  if (!cuda_available()) GTEST_SKIP() << "no CUDA device here";
  const Device d = Device::cuda(0);
  auto src = test::random_uniform(DType::bf16, {5, 64}, test::case_seed("gather clamp"));
  for (DType it : {DType::u32, DType::i32}) {
    test::HostTensor idx(it, {4});
    const double vals[] = {0, 7, 4, it == DType::i32 ? -1.0 : 100000.0};
    for (int i = 0; i < 4; ++i) idx.set(i, vals[i]);
    auto dsrc = test::to_device(src, d), didx = test::to_device(idx, d);
    auto out = test::poisoned(DType::bf16, {4, 64}, d);
    gather(dsrc, didx, out);
    const auto got = test::to_host(out);
    const int64_t want_rows[] = {0, 4, 4, 4};
    for (int i = 0; i < 4; ++i)
      for (int w = 0; w < 64; ++w)
        ASSERT_EQ(got.as<uint16_t>()[i * 64 + w], src.as<uint16_t>()[want_rows[i] * 64 + w]) << name(it) << " row " << i;
  }
}

// The bf16 transpose of the benchmark, smaller: bit-identical to the CPU loop.
TEST(LayoutGpu, LargeTransposesMatchTheCpu) {
  if (!cuda_available()) GTEST_SKIP() << "no CUDA device here";
  for (auto [r, c] : {std::pair{1024, 1536}, std::pair{1000, 1544}, std::pair{4106, 136}}) {
    auto x = test::random_uniform(DType::bf16, {r, c}, test::case_seed("large transpose"));
    test::HostTensor want(DType::bf16, {c, r});
    transpose(x.view(), want.view());
    auto dx = test::to_device(x, Device::cuda(0));
    auto out = test::poisoned(DType::bf16, {c, r}, Device::cuda(0));
    transpose(dx, out);
    const auto got = test::to_host(out);
    ASSERT_EQ(std::memcmp(got.bytes.data(), want.bytes.data(), want.bytes.size()), 0) << r << "x" << c;
  }
}

}  // namespace
}  // namespace lmk
