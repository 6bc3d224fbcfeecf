// GGUF and safetensors readers: valid round trips through test writers, and malformed files
// built by corrupting one field at a time (quant-formats.md §6/§7 checklists). Every malformed
// input must raise lmk::Error with the stated code, never crash.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <random>

#include "formats_writer.h"
#include "lmk/error.h"
#include "lmk/gguf.h"
#include "lmk/half.h"
#include "lmk/quant.h"
#include "lmk/safetensors.h"
#include "ref/quant.h"

namespace lmk {
namespace {

using namespace testfmt;
using Bytes = std::vector<uint8_t>;

struct Caught {
  bool thrown = false;
  ErrorCode code = ErrorCode::Io;
  std::string what;
};
template <typename F>
Caught catch_error(F&& f) {
  Caught c;
  try {
    f();
  } catch (const Error& e) {
    c.thrown = true;
    c.code = e.code();
    c.what = e.what();
  }
  return c;
}

Caught gguf_error(const Bytes& b) {
  return catch_error([&] { (void)GgufFile::parse(b); });
}
Caught st_error(const Bytes& b) {
  return catch_error([&] { (void)SafetensorsFile::parse(b); });
}

#define EXPECT_FORMAT(caught)                                         \
  for (auto c_ = (caught); !c_.what.empty() || !c_.thrown; c_.what.clear(), c_.thrown = true) \
  EXPECT_TRUE(c_.thrown && c_.code == ErrorCode::Format) << (c_.thrown ? c_.what : "no error thrown") << " "

std::string temp_path(const std::string& name) {
  auto dir = std::filesystem::temp_directory_path() / ("lmk_formats_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  return (dir / name).string();
}

Bytes random_bytes(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  Bytes b(n);
  for (auto& x : b) x = uint8_t(rng());
  return b;
}
template <typename T>
Bytes as_bytes(const std::vector<T>& v) {
  Bytes b(v.size() * sizeof(T));
  std::memcpy(b.data(), v.data(), b.size());
  return b;
}
Bytes valid_blocks(DType t, int64_t nblocks, uint64_t seed) {
  Bytes b(size_t(nblocks * ref::format_of(t).bytes));
  ref::fill_valid_blocks(t, b.data(), nblocks, seed);
  return b;
}

// A valid file with metadata of every type and tensors of several types; the last tensor ends
// at the end of the file.
GgufWriter sample_gguf() {
  GgufWriter w;
  w.kv_string("general.architecture", "llama");
  w.kv_scalar<uint8_t>("t.u8", kU8, 200);
  w.kv_scalar<int8_t>("t.i8", kI8, -100);
  w.kv_scalar<uint16_t>("t.u16", kU16, 60000);
  w.kv_scalar<int16_t>("t.i16", kI16, -30000);
  w.kv_scalar<uint32_t>("t.u32", kU32, 4000000000u);
  w.kv_scalar<int32_t>("t.i32", kI32, 123456);
  w.kv_scalar<int32_t>("t.i32neg", kI32, -5);
  w.kv_scalar<float>("t.f32", kF32, 1.5f);
  w.kv_scalar<uint8_t>("t.bool", kBool, 1);
  w.kv_scalar<uint64_t>("t.u64", kU64, 1ull << 40);
  w.kv_scalar<int64_t>("t.i64", kI64, -(1ll << 40));
  w.kv_scalar<double>("t.f64", kF64, 0.25);
  w.kv_array<uint32_t>("t.arr_u32", kU32, {1, 2, 3});
  w.kv_array<double>("t.arr_f64", kF64, {0.5, -1.0});
  w.kv_array<uint8_t>("t.arr_bool", kBool, {1, 0, 1});
  w.kv_string_array("tokenizer.tokens", {"a", "bé", "", "日本"});
  w.tensor("f32", {5, 3}, 0, as_bytes(std::vector<float>{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}));
  w.tensor("f16", {4}, 1, as_bytes(std::vector<uint16_t>{0x3c00, 0xc000, 0x0001, 0x7bff}));
  w.tensor("bf16", {2}, 30, as_bytes(std::vector<uint16_t>{0x3f80, 0xc2f7}));
  w.tensor("i16", {3}, 25, as_bytes(std::vector<int16_t>{-3, 0, 7}));
  w.tensor("i32", {2}, 26, as_bytes(std::vector<int32_t>{-70000, 9}));
  w.tensor("i8", {3}, 24, Bytes{0x80, 0x00, 0x7f});
  w.tensor("f64", {1}, 28, as_bytes(std::vector<double>{3.25}));
  w.tensor("scalar", {}, 0, as_bytes(std::vector<float>{42.0f}));
  w.tensor("empty", {0, 4}, 0, {});
  w.tensor("q4_0", {64, 2}, 2, valid_blocks(DType::q4_0, 4, 1));
  w.tensor("q8_0", {32, 3}, 8, valid_blocks(DType::q8_0, 3, 2));
  w.tensor("q4_K", {256, 2}, 12, valid_blocks(DType::q4_K, 2, 3));
  w.tensor("q6_K", {256, 1, 1}, 14, valid_blocks(DType::q6_K, 1, 4));
  w.tensor("iq4_xs", {512}, 23, valid_blocks(DType::iq4_xs, 2, 5));
  return w;
}

// ---- GGUF: valid files ----

TEST(Gguf, RoundTripEveryValueTypeAndTensor) {
  for (uint32_t version : {2u, 3u}) {
    GgufWriter w = sample_gguf();
    w.version = version;
    GgufLayout layout;
    Bytes b = w.build(&layout);
    const std::string path = temp_path("rt" + std::to_string(version) + ".gguf");
    write_file(path, b);
    GgufFile f = GgufFile::open(path);
    EXPECT_EQ(f.version(), version);
    EXPECT_EQ(f.alignment(), 32u);
    EXPECT_EQ(f.data_start(), layout.data_start);
    EXPECT_EQ(f.file_size(), b.size());
    EXPECT_TRUE(f.warnings().empty());
    EXPECT_EQ(f.kv_count(), w.kvs.size());
    ASSERT_EQ(f.keys().size(), w.kvs.size());
    for (size_t i = 0; i < w.kvs.size(); ++i) EXPECT_EQ(f.keys()[i], w.kvs[i].key);
    EXPECT_EQ(*f.get_string("general.architecture"), "llama");
    EXPECT_EQ(*f.get_u32("t.u8"), 200u);
    EXPECT_EQ(*f.get_i64("t.i8"), -100);
    EXPECT_EQ(*f.get_u32("t.u16"), 60000u);
    EXPECT_EQ(*f.get_i64("t.i16"), -30000);
    EXPECT_EQ(*f.get_u32("t.u32"), 4000000000u);
    EXPECT_EQ(*f.get_u32("t.i32"), 123456u);
    EXPECT_EQ(catch_error([&] { (void)f.get_u32("t.i32neg"); }).code, ErrorCode::InvalidArgument);
    EXPECT_EQ(*f.get_f32("t.f32"), 1.5f);
    EXPECT_EQ(*f.get_bool("t.bool"), true);
    EXPECT_EQ(*f.get_u64("t.u64"), 1ull << 40);
    EXPECT_EQ(*f.get_i64("t.i64"), -(1ll << 40));
    EXPECT_EQ(*f.get_f32("t.f64"), 0.25f);
    EXPECT_EQ(*f.get_f64("t.f64"), 0.25);
    EXPECT_EQ(catch_error([&] { (void)f.get_u32("t.u64"); }).code, ErrorCode::InvalidArgument);
    EXPECT_EQ(catch_error([&] { (void)f.get_string("t.u8"); }).code, ErrorCode::InvalidArgument);
    EXPECT_FALSE(f.get_u32("absent").has_value());
    EXPECT_EQ(f.get("absent"), nullptr);
    const GgufArray* a = f.get_array("t.arr_u32");
    ASSERT_NE(a, nullptr);
    EXPECT_EQ(a->count, 3u);
    EXPECT_EQ(a->uint_at(2), 3u);
    EXPECT_EQ(f.get_array("t.arr_f64")->float_at(1), -1.0);
    EXPECT_EQ(f.get_array("t.arr_bool")->uint_at(1), 0u);
    const GgufArray* s = f.get_array("tokenizer.tokens");
    ASSERT_NE(s, nullptr);
    EXPECT_EQ(s->string_at(1), "bé");
    EXPECT_EQ(s->string_at(3), "日本");
    EXPECT_EQ(catch_error([&] { (void)s->string_at(4); }).code, ErrorCode::InvalidArgument);
    EXPECT_NE(f.get("t.arr_u32")->str().find("[1, 2, 3]"), std::string::npos);

    ASSERT_EQ(f.tensor_count(), w.tensors.size());
    for (size_t i = 0; i < w.tensors.size(); ++i) {
      const auto& spec = w.tensors[i];
      EXPECT_EQ(f.names()[i], spec.name);
      const auto& ti = f.info(spec.name);
      EXPECT_EQ(ti.ggml_type, spec.type);
      EXPECT_EQ(ti.offset, layout.tensor_offset[i]);
      EXPECT_EQ(ti.nbytes, spec.data.size());
      ASSERT_EQ(ti.ne.size(), spec.ne.size());
      for (size_t d = 0; d < spec.ne.size(); ++d) {
        EXPECT_EQ(uint64_t(ti.ne[d]), spec.ne[d]);
        EXPECT_EQ(uint64_t(ti.shape[spec.ne.size() - 1 - d]), spec.ne[d]);
      }
      auto raw = f.raw_bytes(spec.name);
      ASSERT_EQ(raw.size(), spec.data.size());
      EXPECT_TRUE(std::equal(raw.begin(), raw.end(), spec.data.begin())) << spec.name;
      Tensor v = f.view(spec.name);
      EXPECT_EQ(v.dtype(), ti.dtype);
      EXPECT_EQ(v.nbytes(), int64_t(spec.data.size()));
      if (ti.nbytes > 0) {
        Buffer up = f.upload(spec.name, Device::cpu());
        EXPECT_EQ(std::memcmp(up.data(), spec.data.data(), spec.data.size()), 0) << spec.name;
        EXPECT_EQ(up.tensor().dtype(), ti.dtype);
        auto vals = f.load_f32(spec.name);
        auto want = dequantize_row(ti.dtype, spec.data, ti.numel());
        EXPECT_EQ(vals, want) << spec.name;
      }
    }
    EXPECT_EQ(f.info("q6_K").shape, (std::vector<int64_t>{1, 1, 256}));
    EXPECT_EQ(f.info("scalar").shape.size(), 0u);
    EXPECT_EQ(f.load_f32("scalar")[0], 42.0f);
    EXPECT_EQ(f.load_f32("f16")[1], -2.0f);
    EXPECT_EQ(f.load_f32("i32")[0], -70000.0f);
    EXPECT_EQ(f.info("q4_K").dtype, DType::q4_K);
    EXPECT_EQ(f.view("q4_K").size(-1), 256);
    EXPECT_EQ(catch_error([&] { (void)f.load_f32("empty"); }).code, ErrorCode::InvalidArgument);
    auto missing = catch_error([&] { (void)f.info("nope"); });
    EXPECT_EQ(missing.code, ErrorCode::InvalidArgument);
    EXPECT_NE(missing.what.find("tensor 'nope' not found in GGUF file"), std::string::npos) << missing.what;
    std::remove(path.c_str());
  }
}

TEST(Gguf, AlignmentAndOptionalPadding) {
  for (uint32_t a : {1u, 2u, 64u}) {
    GgufWriter w;
    w.set_alignment(a);
    w.tensor("a", {3}, 0, as_bytes(std::vector<float>{1, 2, 3}));
    w.tensor("b", {1}, 1, as_bytes(std::vector<uint16_t>{0x3c00}));
    GgufLayout l;
    Bytes b = w.build(&l);
    GgufFile f = GgufFile::parse(b);
    EXPECT_EQ(f.alignment(), a);
    EXPECT_EQ(f.data_start(), l.data_start);
    EXPECT_EQ(f.load_f32("b")[0], 1.0f);
  }
  // No tensors: data_start is the end of the metadata and nothing follows.
  GgufWriter w;
  w.kv_string("k", "v");
  GgufLayout l;
  Bytes b = w.build(&l);
  GgufFile f = GgufFile::parse(b);
  EXPECT_EQ(f.data_start(), b.size());
  EXPECT_EQ(f.tensor_count(), 0u);
}

TEST(Gguf, WarningsNotErrors) {
  GgufWriter w;
  w.tensor(std::string(80, 'n'), {4}, 0, as_bytes(std::vector<float>{1, 2, 3, 4}));
  GgufLayout l;
  Bytes b = w.build(&l);
  GgufFile f = GgufFile::parse(b);
  ASSERT_EQ(f.warnings().size(), 1u);
  // A gap between tensors is a warning.
  GgufWriter g;
  g.tensor("a", {4}, 0, as_bytes(std::vector<float>{1, 2, 3, 4}));
  g.tensor("b", {4}, 0, as_bytes(std::vector<float>{1, 2, 3, 4}));
  b = g.build(&l);
  b.resize(b.size() + 64, 0);
  patch_le<uint64_t>(b, l.tensor_offset_at[1], 64);
  GgufFile f2 = GgufFile::parse(b);
  EXPECT_EQ(f2.warnings().size(), 1u);
  EXPECT_EQ(f2.load_f32("b")[0], 0.0f);
}

// ---- GGUF: malformed files ----

TEST(Gguf, EveryTruncationIsAFormatError) {
  Bytes b = sample_gguf().build();
  for (size_t n = 0; n < b.size(); ++n) {
    Bytes p(b.begin(), b.begin() + std::ptrdiff_t(n));
    auto c = gguf_error(p);
    ASSERT_TRUE(c.thrown) << "prefix " << n;
    ASSERT_EQ(c.code, ErrorCode::Format) << "prefix " << n << ": " << c.what;
  }
}

TEST(Gguf, HeaderChecks) {
  GgufLayout l;
  const Bytes good = sample_gguf().build(&l);
  auto with = [&](auto edit) {
    Bytes b = good;
    edit(b);
    return gguf_error(b);
  };
  EXPECT_FORMAT(with([](Bytes& b) { b[0] = 'X'; }));
  auto v1 = with([](Bytes& b) { patch_le<uint32_t>(b, 4, 1); });
  EXPECT_EQ(v1.code, ErrorCode::Unsupported);
  EXPECT_NE(v1.what.find("GGUFv1 not supported"), std::string::npos);
  EXPECT_EQ(with([](Bytes& b) { patch_le<uint32_t>(b, 4, 4); }).code, ErrorCode::Unsupported);
  EXPECT_FORMAT(with([](Bytes& b) { patch_le<uint32_t>(b, 4, 0); }));
  auto be = with([](Bytes& b) { patch_le<uint32_t>(b, 4, 0x03000000u); });
  EXPECT_EQ(be.code, ErrorCode::Unsupported);
  EXPECT_NE(be.what.find("big-endian GGUF not supported"), std::string::npos);
  EXPECT_FORMAT(with([](Bytes& b) { patch_le<uint32_t>(b, 4, 0x12345678u); }));
  // Counts larger than the bytes can hold, or just one too many.
  EXPECT_FORMAT(with([&](Bytes& b) { patch_le<uint64_t>(b, l.tensor_count_at, 1ull << 40); }));
  EXPECT_FORMAT(with([&](Bytes& b) { patch_le<uint64_t>(b, l.kv_count_at, 1ull << 60); }));
  EXPECT_FORMAT(with([&](Bytes& b) { patch_le<uint64_t>(b, l.kv_count_at, UINT64_MAX); }));
  EXPECT_FORMAT(with([&](Bytes& b) { patch_le<uint64_t>(b, l.kv_count_at, l.kv_at.size() + 1); }));
  EXPECT_FORMAT(with([&](Bytes& b) { patch_le<uint64_t>(b, l.tensor_count_at, l.tensor_at.size() + 1); }));
  // Caps are configurable.
  Bytes b = good;
  GgufOptions small;
  small.max_tensors = 2;
  EXPECT_EQ(catch_error([&] { (void)GgufFile::parse(b, small); }).code, ErrorCode::Format);
}

TEST(Gguf, KeyAndValueChecks) {
  GgufLayout l;
  const Bytes good = sample_gguf().build(&l);
  auto with = [&](auto edit) {
    Bytes b = good;
    edit(b);
    return gguf_error(b);
  };
  const size_t k0 = l.kv_at[0];
  EXPECT_FORMAT(with([&](Bytes& b) { patch_le<uint64_t>(b, k0, 1ull << 62); }));       // absurd key length
  EXPECT_FORMAT(with([&](Bytes& b) { patch_le<uint64_t>(b, k0, b.size()); }));          // past the end
  EXPECT_FORMAT(with([&](Bytes& b) { b[k0 + 8] = 0xC0; }));                             // invalid UTF-8 key
  EXPECT_FORMAT(with([&](Bytes& b) { b[k0 + 8] = 0xFF; }));
  EXPECT_FORMAT(with([&](Bytes& b) { patch_le<uint32_t>(b, l.kv_type_at[0], 13); }));   // unknown value type
  auto bad_type = with([&](Bytes& b) { patch_le<uint32_t>(b, l.kv_type_at[1], 0xFFFFFFFFu); });
  EXPECT_EQ(bad_type.code, ErrorCode::Format);
  EXPECT_NE(bad_type.what.find("key 't.u8' has invalid GGUF type 4294967295"), std::string::npos) << bad_type.what;
  // Bool byte 2 (strict), accepted when not strict.
  GgufWriter w;
  w.kv_scalar<uint8_t>("b", kBool, 2);
  Bytes bb = w.build();
  EXPECT_FORMAT(gguf_error(bb));
  GgufOptions lax;
  lax.strict_bool = false;
  EXPECT_EQ(*GgufFile::parse(bb, lax).get_bool("b"), true);
  // Duplicate and empty keys.
  GgufWriter d;
  d.kv_string("k", "a");
  d.kv_string("k", "b");
  EXPECT_FORMAT(gguf_error(d.build()));
  GgufWriter e;
  e.kv_string("", "a");
  EXPECT_FORMAT(gguf_error(e.build()));
  // Invalid UTF-8 in a string value and in an array string.
  GgufWriter u;
  u.kv_string("k", std::string("\xed\xa0\x80", 3));  // a surrogate
  EXPECT_FORMAT(gguf_error(u.build()));
  GgufWriter ua;
  ua.kv_string_array("k", {"ok", std::string("\xe0\x80\x80", 3)});  // overlong
  EXPECT_FORMAT(gguf_error(ua.build()));
}

TEST(Gguf, ArrayChecks) {
  auto arr = [](uint32_t elem, uint64_t count, Bytes payload) {
    GgufWriter w;
    Bytes v;
    put_le<uint32_t>(v, elem);
    put_le<uint64_t>(v, count);
    v.insert(v.end(), payload.begin(), payload.end());
    w.kv_raw("a", kArray, v);
    return w.build();
  };
  EXPECT_NO_THROW((void)GgufFile::parse(arr(kU16, 2, {1, 0, 2, 0})));
  EXPECT_FORMAT(gguf_error(arr(kArray, 1, {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})));  // nested
  EXPECT_FORMAT(gguf_error(arr(13, 1, {0, 0, 0, 0})));                               // unknown elem type
  EXPECT_FORMAT(gguf_error(arr(kU32, 1ull << 61, {0, 0, 0, 0})));                    // count vs bytes
  EXPECT_FORMAT(gguf_error(arr(kString, 1ull << 40, {0, 0, 0, 0, 0, 0, 0, 0})));
  EXPECT_FORMAT(gguf_error(arr(kU8, 5, {1, 2, 3})));                                 // truncated
  EXPECT_FORMAT(gguf_error(arr(kBool, 2, {1, 7})));                                  // strict bool
  GgufOptions cap;
  cap.max_array_elems = 1;
  EXPECT_EQ(catch_error([&] { (void)GgufFile::parse(arr(kU8, 2, {1, 2}), cap); }).code, ErrorCode::Format);
  GgufOptions scap;
  scap.max_string_bytes = 2;
  GgufWriter w;
  w.kv_string("k", "long");
  EXPECT_EQ(catch_error([&] { (void)GgufFile::parse(w.build(), scap); }).code, ErrorCode::Format);
}

TEST(Gguf, TensorInfoChecks) {
  GgufLayout l;
  const Bytes good = sample_gguf().build(&l);
  auto with = [&](auto edit) {
    Bytes b = good;
    edit(b);
    return gguf_error(b);
  };
  const size_t t0 = l.tensor_at[0];
  EXPECT_FORMAT(with([&](Bytes& b) { patch_le<uint64_t>(b, t0, 1ull << 50); }));      // name length
  EXPECT_FORMAT(with([&](Bytes& b) { patch_le<uint32_t>(b, l.tensor_ndims_at[0], 5); }));
  EXPECT_FORMAT(with([&](Bytes& b) { patch_le<uint32_t>(b, l.tensor_ndims_at[0], 0xFFFFFFFFu); }));
  EXPECT_FORMAT(with([&](Bytes& b) { patch_le<uint64_t>(b, l.tensor_dims_at[0][0], 1ull << 63); }));
  EXPECT_FORMAT(with([&](Bytes& b) {  // product overflows int64
    patch_le<uint64_t>(b, l.tensor_dims_at[0][0], 1ull << 32);
    patch_le<uint64_t>(b, l.tensor_dims_at[0][1], 1ull << 32);
  }));
  EXPECT_FORMAT(with([&](Bytes& b) { patch_le<uint64_t>(b, l.tensor_dims_at[0][0], 1ull << 40); }));  // data past end
  // Type ids: unsupported-but-known -> Unsupported with the spec's message; unknown -> Format.
  auto q41 = with([&](Bytes& b) { patch_le<uint32_t>(b, l.tensor_type_at[0], 3); });
  EXPECT_EQ(q41.code, ErrorCode::Unsupported);
  EXPECT_NE(q41.what.find("unsupported ggml type 3 (q4_1) for tensor 'f32'"), std::string::npos) << q41.what;
  auto iq2 = with([&](Bytes& b) { patch_le<uint32_t>(b, l.tensor_type_at[0], 17); });  // IQ2_XS, not I16
  EXPECT_EQ(iq2.code, ErrorCode::Unsupported);
  EXPECT_NE(iq2.what.find("(iq2_xs)"), std::string::npos) << iq2.what;
  EXPECT_EQ(with([&](Bytes& b) { patch_le<uint32_t>(b, l.tensor_type_at[0], 27); }).code, ErrorCode::Unsupported);
  EXPECT_FORMAT(with([&](Bytes& b) { patch_le<uint32_t>(b, l.tensor_type_at[0], 4); }));   // removed id
  EXPECT_FORMAT(with([&](Bytes& b) { patch_le<uint32_t>(b, l.tensor_type_at[0], 43); }));
  EXPECT_FORMAT(with([&](Bytes& b) { patch_le<uint32_t>(b, l.tensor_type_at[0], 100000); }));
  // ne0 not a multiple of the block: the q4_0 tensor (index 9) with ne0 = 48.
  EXPECT_FORMAT(with([&](Bytes& b) { patch_le<uint64_t>(b, l.tensor_dims_at[9][0], 48); }));
  // Offsets: misaligned, past the end, overflowing, overlapping.
  EXPECT_FORMAT(with([&](Bytes& b) { patch_le<uint64_t>(b, l.tensor_offset_at[1], l.tensor_offset[1] + 2); }));
  EXPECT_FORMAT(with([&](Bytes& b) { patch_le<uint64_t>(b, l.tensor_offset_at[1], 1ull << 40); }));
  EXPECT_FORMAT(with([&](Bytes& b) { patch_le<uint64_t>(b, l.tensor_offset_at[1], UINT64_MAX - 31); }));
  auto overlap = with([&](Bytes& b) { patch_le<uint64_t>(b, l.tensor_offset_at[1], 0); });
  EXPECT_EQ(overlap.code, ErrorCode::Format);
  EXPECT_NE(overlap.what.find("overlap"), std::string::npos) << overlap.what;
  // Duplicate and empty tensor names.
  GgufWriter d;
  d.tensor("x", {1}, 0, as_bytes(std::vector<float>{1}));
  d.tensor("x", {1}, 0, as_bytes(std::vector<float>{2}));
  EXPECT_FORMAT(gguf_error(d.build()));
  GgufWriter e;
  e.tensor("", {1}, 0, as_bytes(std::vector<float>{1}));
  EXPECT_FORMAT(gguf_error(e.build()));
  // Tensors present but the file ends before the padded data start.
  GgufWriter t;
  t.tensor("x", {0}, 0, {});
  GgufLayout tl;
  Bytes tb = t.build(&tl);
  ASSERT_GT(tl.data_start, tl.end_of_infos);
  EXPECT_NO_THROW((void)GgufFile::parse(tb));
  tb.resize(tl.end_of_infos);
  EXPECT_FORMAT(gguf_error(tb));
}

TEST(Gguf, AlignmentKeyChecks) {
  auto with_alignment = [](uint32_t type, Bytes value) {
    GgufWriter w;
    w.kv_raw("general.alignment", type, value);
    w.tensor("x", {1}, 0, as_bytes(std::vector<float>{1}));
    return gguf_error(w.build());
  };
  EXPECT_FORMAT(with_alignment(kU64, {32, 0, 0, 0, 0, 0, 0, 0}));
  EXPECT_FORMAT(with_alignment(kI32, {32, 0, 0, 0}));
  EXPECT_FORMAT(with_alignment(kU32, {0, 0, 0, 0}));
  EXPECT_FORMAT(with_alignment(kU32, {3, 0, 0, 0}));
  EXPECT_FALSE(with_alignment(kU32, {32, 0, 0, 0}).thrown);
}

TEST(Gguf, RandomCorruptionNeverCrashes) {
  const Bytes good = sample_gguf().build();
  std::mt19937_64 rng(12345);
  int errors = 0;
  for (int it = 0; it < 3000; ++it) {
    Bytes b = good;
    const int flips = 1 + int(rng() % 4);
    for (int k = 0; k < flips; ++k) {
      const size_t at = size_t(rng() % std::min<uint64_t>(b.size(), 900));
      b[at] = uint8_t(rng() % 3 == 0 ? 0xFF : rng());
    }
    try {
      GgufFile f = GgufFile::parse(b);
      for (const auto& n : f.names()) (void)f.raw_bytes(n);
    } catch (const Error&) {
      ++errors;
    }
  }
  EXPECT_GT(errors, 100);
}

TEST(Gguf, OpenErrors) {
  EXPECT_EQ(catch_error([] { (void)GgufFile::open("/nonexistent/dir/x.gguf"); }).code, ErrorCode::Io);
  const std::string p = temp_path("empty.gguf");
  write_file(p, {});
  EXPECT_EQ(catch_error([&] { (void)GgufFile::open(p); }).code, ErrorCode::Format);
  std::remove(p.c_str());
}

// ---- safetensors ----

SafetensorsWriter sample_st() {
  SafetensorsWriter w;
  w.metadata = {{"format", "pt"}, {"note", "quote \" and \\ and \n"}};
  w.tensor("w.f32", "F32", {2, 3}, as_bytes(std::vector<float>{1, 2, 3, 4, 5, 6}));
  w.tensor("w.bf16", "BF16", {2}, as_bytes(std::vector<uint16_t>{0x3f80, 0x4000}));
  w.tensor("w.f16", "F16", {1}, as_bytes(std::vector<uint16_t>{0x3c00}));
  w.tensor("w.i64", "I64", {1}, as_bytes(std::vector<int64_t>{-5}));
  w.tensor("w.u32", "U32", {2, 2}, as_bytes(std::vector<uint32_t>{1, 2, 3, 4}));
  w.tensor("w.u16", "U16", {1}, as_bytes(std::vector<uint16_t>{7}));
  w.tensor("scalar", "F32", {}, as_bytes(std::vector<float>{9}));
  w.tensor("empty", "F32", {0, 7}, {});
  w.tensor("é\x01", "U8", {3}, {1, 2, 3});
  return w;
}

TEST(Safetensors, RoundTrip) {
  SafetensorsWriter w = sample_st();
  Bytes b = w.build();
  const std::string path = temp_path("rt.safetensors");
  write_file(path, b);
  SafetensorsFile f = SafetensorsFile::open(path);
  EXPECT_EQ(f.metadata().size(), 2u);
  EXPECT_EQ(*f.metadata("note"), "quote \" and \\ and \n");
  EXPECT_FALSE(f.metadata("absent").has_value());
  ASSERT_EQ(f.names().size(), w.tensors.size());
  for (size_t i = 0; i < w.tensors.size(); ++i) {
    const auto& spec = w.tensors[i];
    EXPECT_EQ(f.names()[i], spec.name);
    const auto& ti = f.info(spec.name);
    EXPECT_EQ(ti.dtype_name, spec.dtype);
    ASSERT_EQ(ti.shape.size(), spec.shape.size());
    auto bytes = f.bytes(spec.name);
    ASSERT_EQ(bytes.size(), spec.data.size());
    EXPECT_TRUE(std::equal(bytes.begin(), bytes.end(), spec.data.begin()));
    if (ti.dtype && ti.nbytes() > 0) {
      Buffer up = f.upload(spec.name, Device::cpu());
      EXPECT_EQ(std::memcmp(up.data(), spec.data.data(), spec.data.size()), 0);
      EXPECT_EQ(f.view(spec.name).numel(), ti.numel());
    }
  }
  EXPECT_EQ(f.info("w.f32").dtype, DType::f32);
  EXPECT_EQ(f.view("w.f32").size(1), 3);
  EXPECT_EQ(f.view("w.f32").data_as<float>()[5], 6.0f);
  EXPECT_EQ(f.info("scalar").numel(), 1);
  EXPECT_EQ(f.info("empty").nbytes(), 0u);
  EXPECT_EQ(catch_error([&] { (void)f.view("w.u16"); }).code, ErrorCode::Unsupported);
  EXPECT_EQ(catch_error([&] { (void)f.info("nope"); }).code, ErrorCode::InvalidArgument);
  EXPECT_EQ(f.load_all(Device::cpu()).size(), 8u);  // every tensor with data (U16 as raw u8)
  std::remove(path.c_str());
}

TEST(Safetensors, EveryTruncationIsAFormatError) {
  Bytes b = sample_st().build();
  for (size_t n = 0; n < b.size(); ++n) {
    Bytes p(b.begin(), b.begin() + std::ptrdiff_t(n));
    auto c = st_error(p);
    ASSERT_TRUE(c.thrown) << "prefix " << n;
    ASSERT_EQ(c.code, ErrorCode::Format) << "prefix " << n << ": " << c.what;
  }
}

TEST(Safetensors, HeaderLengthChecks) {
  Bytes b = sample_st().build();
  auto with_n = [&](uint64_t n) {
    Bytes c = b;
    patch_le<uint64_t>(c, 0, n);
    return st_error(c);
  };
  EXPECT_FORMAT(with_n(0));
  EXPECT_FORMAT(with_n(b.size()));
  EXPECT_FORMAT(with_n(UINT64_MAX));
  EXPECT_FORMAT(with_n(100000001));
  EXPECT_FORMAT(st_error({1, 0, 0}));
}

TEST(Safetensors, MalformedHeaders) {
  const Bytes data4 = as_bytes(std::vector<float>{1});
  auto hdr = [&](const std::string& h, const Bytes& d) { return st_error(SafetensorsWriter::assemble(h, d)); };
  const std::string ok = R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})";
  EXPECT_FALSE(hdr(ok, data4).thrown) << hdr(ok, data4).what;
  EXPECT_FALSE(hdr("  " + ok + "    ", data4).thrown);  // whitespace padding
  const char* bad[] = {
      R"([{"a":1}])",                                                                   // top level not an object
      R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]})",                        // unterminated
      R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},})",                      // trailing comma
      R"({'a':{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})",                       // single quotes
      R"({"a":{"dtype":"F32","shape":[01],"data_offsets":[0,4]}})",                      // leading zero
      R"({"a":{"dtype":"F32","shape":[1.0],"data_offsets":[0,4]}})",                     // float dim
      R"({"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})",                      // negative dim
      R"({"a":{"dtype":"F32","shape":[1e0],"data_offsets":[0,4]}})",                     // exponent
      R"({"a":{"dtype":"F32","shape":[18446744073709551616],"data_offsets":[0,4]}})",    // > u64
      R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4,4]}})",                     // 3 offsets
      R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[4,0]}})",                       // begin > end
      R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}})",                       // size mismatch
      R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",                       // past the end / gap
      R"({"a":{"dtype":"F32","shape":[1]}})",                                            // missing field
      R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4],"x":1}})",                 // extra field
      R"({"a":{"dtype":"F32","dtype":"F32","shape":[1],"data_offsets":[0,4]}})",         // duplicate field
      R"({"a":{"dtype":7,"shape":[1],"data_offsets":[0,4]}})",                           // dtype not a string
      R"({"a":{"dtype":"F32","shape":1,"data_offsets":[0,4]}})",                         // shape not an array
      R"({"a":[1]})",                                                                    // entry not an object
      R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[0],"data_offsets":[4,4]}})",
      R"({"":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})",                        // empty name
      R"({"__metadata__":[],"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})",     // metadata not object
      R"({"__metadata__":{"k":1},"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})",  // non-string value
      R"({"__metadata__":{"k":"v","k":"w"},"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})",
      R"({"__metadata__":{},"__metadata__":{},"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})",
      R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}} x)",                    // trailing garbage
      R"({"a\q":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})",                    // bad escape
      R"({"a\ud800":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})",                // lone surrogate
      "{\"a\x01\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}",           // control char
      "{\"a\xff\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}",           // invalid UTF-8
      R"({"a":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,4]}})",  // numel overflow
      R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})",
  };
  for (const char* h : bad) EXPECT_FORMAT(hdr(h, data4)) << h;
  // Overlap and trailing data.
  EXPECT_FORMAT(hdr(ok, Bytes(8, 0)));
  EXPECT_FORMAT(hdr(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
                    Bytes(8, 0)));
  // Unknown dtype: Unsupported, naming the tensor.
  auto u = hdr(R"({"t9":{"dtype":"F4","shape":[1],"data_offsets":[0,1]}})", Bytes(1, 0));
  EXPECT_EQ(u.code, ErrorCode::Unsupported);
  EXPECT_NE(u.what.find("'t9'"), std::string::npos) << u.what;
  // Deeply nested garbage inside a tensor entry is rejected, not recursed into.
  std::string deep = R"({"a":{"dtype":"F32","shape":)" + std::string(100000, '[');
  EXPECT_FORMAT(hdr(deep, data4));
  // Escapes decode: "\u00e9" is é.
  SafetensorsFile f = SafetensorsFile::parse(
      SafetensorsWriter::assemble(R"({"\u00e9\ud83d\ude00":{"dtype":"U8","shape":[],"data_offsets":[0,1]}})", Bytes{5}));
  EXPECT_TRUE(f.has_tensor("é😀"));
}

TEST(Safetensors, RandomCorruptionNeverCrashes) {
  const Bytes good = sample_st().build();
  std::mt19937_64 rng(777);
  int errors = 0;
  for (int it = 0; it < 3000; ++it) {
    Bytes b = good;
    const int flips = 1 + int(rng() % 3);
    for (int k = 0; k < flips; ++k) b[size_t(rng() % b.size())] = uint8_t(rng());
    try {
      SafetensorsFile f = SafetensorsFile::parse(b);
      for (const auto& n : f.names()) (void)f.bytes(n);
    } catch (const Error&) {
      ++errors;
    }
  }
  EXPECT_GT(errors, 100);
}

TEST(Safetensors, OpenErrors) {
  EXPECT_EQ(catch_error([] { (void)SafetensorsFile::open("/nonexistent/x.safetensors"); }).code, ErrorCode::Io);
  EXPECT_EQ(catch_error([] { (void)SafetensorsFile::open("/"); }).code, ErrorCode::Io);
}

}  // namespace
}  // namespace lmk
