// Quant family: formats (bit-exact dequant of every block type against the spec reference,
// reference quantizer edge cases), error paths of every op, and GPU-only id checks.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <random>

#include "util/expect_error.h"
#include "formats/blocks.h"
#include "lmk/lmk.h"
#include "lmk/quant.h"
#include "lmk/quant_ops.h"
#include "ref/quant.h"
#include "util/testkit.h"

namespace lmk {
namespace {

using test::HostTensor;


const DType kBlockTypes[] = {DType::q4_0, DType::q5_0, DType::q5_1, DType::q8_0, DType::iq4_nl,
                             DType::q2_K, DType::q4_K, DType::q5_K, DType::q6_K, DType::iq4_xs};

uint32_t bits_of(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

// ---- formats ----------------------------------------------------------------------------------------

TEST(QuantFormats, Iq4nlCodebookPinned) {
  const int8_t spec[16] = {-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113};
  EXPECT_EQ(std::memcmp(spec, blocks::kIq4nlValues, 16), 0);
  for (uint32_t i = 0; i < 16; ++i) EXPECT_EQ(blocks::iq4nl_value(i), spec[i]) << i;
}

TEST(QuantFormats, DequantEveryFormatBitExact) {
  for (DType t : kBlockTypes) {
    const auto f = ref::format_of(t);
    const int64_t nblocks = f.qk == 32 ? 4096 : 512;
    std::vector<uint8_t> bytes(static_cast<size_t>(nblocks * f.bytes));
    ref::fill_valid_blocks(t, bytes.data(), nblocks, test::case_seed(std::string("dq") + std::string(name(t))), 5);
    auto got = dequantize_row(t, bytes, nblocks * f.qk);
    auto want = ref::dequant_f32(t, bytes.data(), nblocks * f.qk);
    int64_t bad = 0;
    for (size_t i = 0; i < got.size(); ++i)
      if (bits_of(got[i]) != bits_of(float(want[i]))) ++bad;
    EXPECT_EQ(bad, 0) << name(t) << " seed " << test::base_seed();
  }
}

TEST(QuantFormats, UnalignedSourceAndGroup16MatchDequant) {
  for (DType t : kBlockTypes) {
    const auto f = ref::format_of(t);
    std::vector<uint8_t> bytes(static_cast<size_t>(3 * f.bytes + 1));
    ref::fill_valid_blocks(t, bytes.data() + 1, 3, test::case_seed(std::string("ua") + std::string(name(t))));
    std::vector<float> got(static_cast<size_t>(3 * f.qk));
    dequantize_row(t, bytes.data() + 1, got.data(), 3 * f.qk);  // odd address
    auto want = ref::dequant_f32(t, bytes.data() + 1, 3 * f.qk);
    for (size_t i = 0; i < got.size(); ++i) ASSERT_EQ(bits_of(got[i]), bits_of(float(want[i]))) << name(t) << " " << i;
    // group16 / elem give the same bits as dequant (and so as the reference).
    blocks::visit_block_format(t, [&](auto tag) {
      using T = typename decltype(tag)::type;
      typename T::block b;
      std::memcpy(&b, bytes.data() + 1, sizeof b);
      for (int g = 0; g < T::groups; ++g) {
        int8_t q[16];
        float s, o;
        T::group16(b, g, q, s, o);
        for (int i = 0; i < 16; ++i) {
          const float v = s * float(q[i]) + o;
          ASSERT_EQ(bits_of(v), bits_of(got[size_t(16 * g + i)])) << name(t) << " group " << g << " lane " << i;
          ASSERT_EQ(bits_of(std::fma(s, float(q[i]), o)), bits_of(v)) << name(t);
          ASSERT_EQ(bits_of(T::elem(b, 16 * g + i)), bits_of(v)) << name(t);
        }
      }
    });
  }
}

TEST(QuantFormats, DequantRejectsBadSizes) {
  std::vector<uint8_t> b(18 * 2);
  EXPECT_EQ(code_of([&] { dequantize_row(DType::q4_0, b, 33); }), ErrorCode::InvalidArgument);
  EXPECT_EQ(code_of([&] { dequantize_row(DType::q4_0, b, 96); }), ErrorCode::InvalidArgument);  // bytes mismatch
  EXPECT_EQ(code_of([&] { dequantize_row(DType::u32, b, 9); }), ErrorCode::Unsupported);
  float x[32] = {};
  uint8_t out[64];
  EXPECT_EQ(code_of([&] { quantize_row(DType::q4_K, x, out, 256); }), ErrorCode::Unsupported);
  EXPECT_EQ(code_of([&] { quantize_row(DType::q8_0, x, out, 31); }), ErrorCode::InvalidArgument);
}

// ---- reference quantizers (quant-formats.md §4 edge cases) ------------------------------------------

TEST(QuantRefQuantizer, AllZeroBlock) {
  float x[32] = {};
  uint8_t b4[18], b8[34];
  quantize_row(DType::q4_0, x, b4, 32);
  quantize_row(DType::q8_0, x, b8, 32);
  EXPECT_EQ(b4[0] | b4[1] << 8, 0x8000);  // d = +0 / -8 = -0.0
  for (int j = 2; j < 18; ++j) EXPECT_EQ(b4[j], 0x88);
  EXPECT_EQ(b8[0] | b8[1] << 8, 0x0000);
  for (int j = 2; j < 34; ++j) EXPECT_EQ(b8[j], 0);
  float y[32];
  dequantize_row(DType::q4_0, b4, y, 32);
  for (float v : y) EXPECT_EQ(bits_of(v), 0x80000000u);  // -0.0
  dequantize_row(DType::q8_0, b8, y, 32);
  for (float v : y) EXPECT_EQ(bits_of(v), 0u);
  qdq_row(DType::q4_0, x, y, 32);
  for (float v : y) EXPECT_EQ(bits_of(v), 0x80000000u);
}

TEST(QuantRefQuantizer, Q4TieKeepsLowestIndexAndSign) {
  for (auto [i, j] : {std::pair{8, 16}, std::pair{0, 31}}) {
    float x[32] = {};
    x[i] = -2.0f;
    x[j] = 2.0f;
    uint8_t b[18];
    quantize_row(DType::q4_0, x, b, 32);
    // max = x[i] = -2 -> d = 0.25; x[i] maps to code 0, x[j] to v = 16.5 -> clipped 15.
    EXPECT_FLOAT_EQ(ref::f16(uint16_t(b[0] | b[1] << 8)), 0.25);
    auto code = [&](int k) { return k < 16 ? b[2 + k] & 15 : b[2 + k - 16] >> 4; };
    EXPECT_EQ(code(i), 0);
    EXPECT_EQ(code(j), 15);
  }
}

TEST(QuantRefQuantizer, Q8RoundsHalfAwayFromZero) {
  float x[32] = {};
  x[0] = 127.0f;  // d = id = 1
  const float in[] = {0.5f, -0.5f, 1.5f, -1.5f, 2.5f, -2.5f, 0.49999997f, -0.49999997f, -127.0f};
  const int want[] = {1, -1, 2, -2, 3, -3, 0, 0, -127};
  for (int k = 0; k < 9; ++k) x[1 + k] = in[k];
  uint8_t b[34];
  quantize_row(DType::q8_0, x, b, 32);
  EXPECT_EQ(b[0] | b[1] << 8, 0x3c00);  // 1.0
  EXPECT_EQ(int8_t(b[2]), 127);
  for (int k = 0; k < 9; ++k) EXPECT_EQ(int8_t(b[3 + k]), want[k]) << in[k];
}

TEST(QuantRefQuantizer, Q4HalfwayRoundsUp) {
  float x[32];
  for (int j = 0; j < 32; ++j) x[j] = float(j % 16) - 7.5f;  // x*id + 8.5 integral with d = 1
  x[0] = -8.0f;
  uint8_t b[18];
  quantize_row(DType::q4_0, x, b, 32);
  EXPECT_EQ(b[0] | b[1] << 8, 0x3c00);  // d = -8 / -8 = 1
  auto code = [&](int k) { return k < 16 ? b[2 + k] & 15 : b[2 + k - 16] >> 4; };
  EXPECT_EQ(code(0), 0);
  for (int j = 1; j < 32; ++j) EXPECT_EQ(code(j), std::min(15, int(x[j] + 8.5f))) << j;
}

TEST(QuantRefQuantizer, MatchesIndependentReferenceBytes) {
  auto x = test::random_normal(DType::f32, {32 * 2000}, test::case_seed("qref"), 3.0);
  const float* px = x.as<float>();
  std::vector<uint8_t> got4(18 * 2000), got8(34 * 2000);
  quantize_row(DType::q4_0, px, got4.data(), 32 * 2000);
  quantize_row(DType::q8_0, px, got8.data(), 32 * 2000);
  for (int b = 0; b < 2000; ++b) {
    uint8_t w4[18], w8[34];
    ref::pack_q4_0(ref::quantize_q4_0(px + 32 * b), w4);
    ref::pack_q8_0(ref::quantize_q8_0(px + 32 * b), w8);
    ASSERT_EQ(std::memcmp(w4, got4.data() + 18 * b, 18), 0) << "q4_0 block " << b;
    ASSERT_EQ(std::memcmp(w8, got8.data() + 34 * b, 34), 0) << "q8_0 block " << b;
  }
}

TEST(QuantRefQuantizer, ExtremeCodes) {
  float x[32];
  for (int j = 0; j < 32; ++j) x[j] = j % 2 ? 1.0f : -1.0f;
  uint8_t b[34];
  quantize_row(DType::q8_0, x, b, 32);
  for (int j = 0; j < 32; ++j) EXPECT_EQ(int8_t(b[2 + j]), j % 2 ? 127 : -127);
}

// ---- MLX affine host helpers --------------------------------------------------------------------------

TEST(QuantAffine, HostRoundTripWithinHalfStep) {
  for (int bits : {4, 6, 8})
    for (int64_t gs : {32, 64, 128})
      for (DType pt : {DType::f32, DType::f16, DType::bf16}) {
        const int64_t rows = 3, k = 256;
        auto w = test::random_normal(DType::f32, {rows, k}, test::case_seed("aff" + std::to_string(bits)), 1.0);
        std::vector<uint8_t> packed(size_t(rows * affine_packed_row_bytes(bits, k)));
        std::vector<uint8_t> sc(size_t(rows * k / gs * 4)), bi(sc.size());
        affine_quantize(w.as<float>(), rows, k, bits, gs, pt, packed.data(), sc.data(), bi.data());
        std::vector<float> y(static_cast<size_t>(rows * k));
        affine_dequantize(packed.data(), sc.data(), bi.data(), pt, rows, k, bits, gs, y.data());
        double wmax = 0;
        for (int64_t i = 0; i < rows * k; ++i) wmax = std::max(wmax, double(std::fabs(w.as<float>()[i])));
        for (int64_t i = 0; i < rows * k; ++i) {
          const double s = ref::param(sc.data(), i / gs, pt);
          // Half a step, plus the rounding of scale and bias to the param dtype.
          ASSERT_LE(std::fabs(y[size_t(i)] - w.as<float>()[i]), 0.5 * s + 0.01 * wmax)
              << bits << " " << gs << " " << name(pt) << " at " << i;
        }
        // Codes agree with the reference unpacking.
        auto want = ref::affine_dequant(packed.data(), sc.data(), bi.data(), pt, rows, k, bits, gs);
        for (size_t i = 0; i < y.size(); ++i) ASSERT_EQ(double(y[i]), want[i]);
      }
}

TEST(QuantAffine, RejectsBadFormats) {
  EXPECT_EQ(code_of([] { check_affine_format("t", 5, 64, 128); }), ErrorCode::Unsupported);
  EXPECT_EQ(code_of([] { check_affine_format("t", 2, 64, 128); }), ErrorCode::Unsupported);
  EXPECT_EQ(code_of([] { check_affine_format("t", 4, 16, 128); }), ErrorCode::Unsupported);
  EXPECT_EQ(code_of([] { check_affine_format("t", 4, 0, 128); }), ErrorCode::InvalidArgument);
  EXPECT_EQ(code_of([] { check_affine_format("t", 4, 128, 320); }), ErrorCode::InvalidArgument);
  EXPECT_EQ(affine_packed_row_bytes(6, 96), 72);
  EXPECT_EQ(affine_packed_row_bytes(4, 64), 32);
  EXPECT_EQ(affine_packed_row_bytes(8, 64), 64);
}

// ---- op error paths (CPU tensors) ---------------------------------------------------------------------

TEST(QuantOps, DequantToF16Rejects) {
  HostTensor q(DType::q4_0, {2, 64});
  HostTensor out16(DType::f16, {2, 64}), out32(DType::f32, {2, 64}), wrong(DType::f16, {2, 32});
  EXPECT_EQ(code_of([&] { dequant_to_f16(q.view(), out32.view()); }), ErrorCode::Unsupported);
  EXPECT_EQ(code_of([&] { dequant_to_f16(q.view(), wrong.view()); }), ErrorCode::InvalidArgument);
  HostTensor i32(DType::i32, {2, 64});
  EXPECT_EQ(code_of([&] { dequant_to_f16(i32.view(), out16.view()); }), ErrorCode::Unsupported);
  // K not a multiple of the block.
  std::vector<uint8_t> raw(18 * 4 + 2);
  Tensor bad_k(raw.data(), DType::q4_0, {2, 48});
  HostTensor o48(DType::f16, {2, 48});
  EXPECT_EQ(code_of([&] { dequant_to_f16(bad_k, o48.view()); }), ErrorCode::InvalidArgument);
  // Raw-bytes form: size mismatch, n_cols % qk, unsupported type.
  Tensor bytes(raw.data(), DType::u8, {int64_t(raw.size())});
  EXPECT_EQ(code_of([&] { dequant_to_f16(bytes, DType::q4_0, 2, 64, out16.view()); }), ErrorCode::InvalidArgument);
  EXPECT_EQ(code_of([&] { dequant_to_f16(bytes, DType::q4_0, 2, 40, out16.view()); }), ErrorCode::InvalidArgument);
  EXPECT_EQ(code_of([&] { dequant_to_f16(bytes, DType::u32, 2, 40, out16.view()); }), ErrorCode::Unsupported);
  Tensor exact_bytes(raw.data(), DType::u8, {18 * 4});
  EXPECT_NO_THROW(dequant_to_f16(exact_bytes, DType::q4_0, 2, 64, out16.view()));
  // Overlap of dst and src.
  Tensor alias(q.bytes.data(), DType::f16, {2, 64});
  EXPECT_EQ(code_of([&] { dequantize(q.view(), alias); }), ErrorCode::InvalidArgument);
}

TEST(QuantOps, QdqLegacyRejects) {
  HostTensor x(DType::f32, {64}), y(DType::f32, {64}), x33(DType::f32, {33}), y33(DType::f32, {33}), h(DType::f16, {64});
  EXPECT_EQ(code_of([&] { qdq_legacy(DType::q4_K, x.view(), y.view()); }), ErrorCode::Unsupported);
  EXPECT_EQ(code_of([&] { qdq_q4_0(x33.view(), y33.view()); }), ErrorCode::InvalidArgument);
  EXPECT_EQ(code_of([&] { qdq_q8_0(h.view(), h.view()); }), ErrorCode::Unsupported);
  EXPECT_EQ(code_of([&] { qdq_q8_0(x.view(), y33.view()); }), ErrorCode::InvalidArgument);
  Tensor empty(x.bytes.data(), DType::f32, {0});
  EXPECT_EQ(code_of([&] { qdq_q8_0(empty, empty); }), ErrorCode::InvalidArgument);
  EXPECT_NO_THROW(qdq_q8_0(x.view(), x.view()));  // in place
}

TEST(QuantOps, QdqAffineRejects) {
  HostTensor w(DType::f32, {64}), s(DType::f32, {2}), b(DType::f32, {2}), q(DType::u8, {64}), s3(DType::f32, {3});
  EXPECT_EQ(code_of([&] { qdq_affine_init(w.view(), s.view(), b.view(), q.view(), 0, 16); }), ErrorCode::InvalidArgument);
  EXPECT_EQ(code_of([&] { qdq_affine_init(w.view(), s.view(), b.view(), q.view(), 48, 16); }), ErrorCode::InvalidArgument);
  EXPECT_EQ(code_of([&] { qdq_affine_init(w.view(), s.view(), b.view(), q.view(), 32, 1); }), ErrorCode::InvalidArgument);
  EXPECT_EQ(code_of([&] { qdq_affine_init(w.view(), s.view(), b.view(), q.view(), 32, 257); }), ErrorCode::InvalidArgument);
  EXPECT_EQ(code_of([&] { qdq_affine_init(w.view(), s3.view(), b.view(), q.view(), 32, 16); }), ErrorCode::InvalidArgument);
  EXPECT_EQ(code_of([&] { qdq_affine_init(w.view(), s.view(), b.view(), w.view(), 32, 16); }), ErrorCode::Unsupported);
  EXPECT_EQ(code_of([&] { qdq_affine_forward(q.view(), s.view(), b.view(), w.view(), 64); }), ErrorCode::InvalidArgument);
  EXPECT_EQ(code_of([&] { qdq_affine_forward(w.view(), s.view(), b.view(), w.view(), 32); }), ErrorCode::Unsupported);
  EXPECT_EQ(code_of([&] { qdq_affine_backward_scales(q.view(), w.view(), s3.view(), 32); }), ErrorCode::InvalidArgument);
  EXPECT_EQ(code_of([&] { qdq_affine_backward_biases(w.view(), s.view(), 0); }), ErrorCode::InvalidArgument);
  EXPECT_NO_THROW(qdq_affine_init(w.view(), s.view(), b.view(), q.view(), 32, 16));
}

TEST(QuantOps, QdqAffineSpecCases) {
  // Constant group: s = 1, codes 0, forward reproduces the input exactly.
  HostTensor w(DType::f32, {32}), s(DType::f32, {1}), b(DType::f32, {1}), q(DType::u8, {32}), out(DType::f32, {32});
  for (int i = 0; i < 32; ++i) w.as<float>()[i] = -1.25f;
  qdq_affine_init(w.view(), s.view(), b.view(), q.view(), 32, 16);
  EXPECT_EQ(s.as<float>()[0], 1.0f);
  EXPECT_EQ(b.as<float>()[0], -1.25f);
  for (int i = 0; i < 32; ++i) EXPECT_EQ(q.as<uint8_t>()[i], 0);
  qdq_affine_forward(q.view(), s.view(), b.view(), out.view(), 32);
  for (int i = 0; i < 32; ++i) EXPECT_EQ(out.as<float>()[i], -1.25f);
  // min 0, max 15, n_bins 16 -> s = 1, b = 0; 0.49999997 -> code 0 (roundf, not floor(z + 0.5)).
  for (int i = 0; i < 32; ++i) w.as<float>()[i] = float(i % 16);
  w.as<float>()[3] = 0.49999997f;
  qdq_affine_init(w.view(), s.view(), b.view(), q.view(), 32, 16);
  EXPECT_EQ(s.as<float>()[0], 1.0f);
  EXPECT_EQ(b.as<float>()[0], 0.0f);
  EXPECT_EQ(q.as<uint8_t>()[3], 0);
  EXPECT_EQ(q.as<uint8_t>()[15], 15);
  // Finite differences of L = sum(dy * forward) w.r.t. s and b match the backward ops.
  HostTensor dy = test::random_normal(DType::f32, {32}, 7, 1.0), ds(DType::f32, {1}), db(DType::f32, {1});
  qdq_affine_backward_scales(q.view(), dy.view(), ds.view(), 32);
  qdq_affine_backward_biases(dy.view(), db.view(), 32);
  auto loss = [&](float sv, float bv) {
    double l = 0;
    for (int i = 0; i < 32; ++i) l += double(dy.as<float>()[i]) * (double(q.as<uint8_t>()[i]) * sv + bv);
    return l;
  };
  const double h = 1e-3;
  EXPECT_NEAR((loss(1.0f + h, 0) - loss(1.0f - h, 0)) / (2 * h), ds.as<float>()[0], 1e-3);
  EXPECT_NEAR((loss(1.0f, h) - loss(1.0f, -h)) / (2 * h), db.as<float>()[0], 1e-3);
}

TEST(QuantOps, EmbeddingRejects) {
  HostTensor table(DType::q4_K, {10, 256}), out(DType::f32, {3, 256}), ids(DType::u32, {3});
  ids.as<uint32_t>()[0] = 1;
  ids.as<uint32_t>()[1] = 9;
  ids.as<uint32_t>()[2] = 10;  // == V
  try {
    embedding_ggml(table.view(), ids.view(), out.view());
    ADD_FAILURE() << "no error for an id == V";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::InvalidArgument);
    EXPECT_NE(std::string(e.what()).find("invalid id 10 at row 2 (V=10)"), std::string::npos) << e.what();
  }
  HostTensor neg(DType::i32, {3});
  neg.as<int32_t>()[1] = -1;
  EXPECT_EQ(code_of([&] { embedding_ggml(table.view(), neg.view(), out.view()); }), ErrorCode::InvalidArgument);
  HostTensor fids(DType::f32, {3});
  EXPECT_EQ(code_of([&] { embedding_ggml(table.view(), fids.view(), out.view()); }), ErrorCode::Unsupported);
  HostTensor out_small(DType::f32, {3, 128});
  ids.as<uint32_t>()[2] = 0;
  EXPECT_EQ(code_of([&] { embedding_ggml(table.view(), ids.view(), out_small.view()); }), ErrorCode::InvalidArgument);
  HostTensor out16(DType::f16, {3, 256});
  EXPECT_EQ(code_of([&] { embedding_ggml(table.view(), ids.view(), out16.view()); }), ErrorCode::Unsupported);
  std::vector<uint8_t> raw(144 * 10);
  Tensor bad_d(raw.data(), DType::q4_K, {10, 200});
  EXPECT_EQ(code_of([&] { embedding_ggml(bad_d, ids.view(), out.view()); }), ErrorCode::InvalidArgument);
  EXPECT_NO_THROW(embedding_ggml(table.view(), ids.view(), out.view()));

  // Affine: V from packed, D from out.
  HostTensor packed(DType::u32, {10, 256 * 4 / 32}), sc(DType::bf16, {10, 4}), bi(DType::bf16, {10, 4});
  EXPECT_NO_THROW(embedding_affine(packed.view(), sc.view(), bi.view(), ids.view(), out.view(), 4, 64));
  EXPECT_EQ(code_of([&] { embedding_affine(packed.view(), sc.view(), bi.view(), ids.view(), out.view(), 6, 64); }),
            ErrorCode::InvalidArgument);  // packed row bytes disagree with bits
  EXPECT_EQ(code_of([&] { embedding_affine(packed.view(), sc.view(), bi.view(), ids.view(), out.view(), 3, 64); }),
            ErrorCode::Unsupported);
  EXPECT_EQ(code_of([&] { embedding_affine(packed.view(), sc.view(), bi.view(), ids.view(), out.view(), 4, 32); }),
            ErrorCode::InvalidArgument);  // scales shape [10, 4] != [10, 8]
  HostTensor bi16(DType::f16, {10, 4}), sc64(DType::f64, {10, 4});
  EXPECT_EQ(code_of([&] { embedding_affine(packed.view(), sc.view(), bi16.view(), ids.view(), out.view(), 4, 64); }),
            ErrorCode::InvalidArgument);
  EXPECT_EQ(code_of([&] { embedding_affine(packed.view(), sc64.view(), sc64.view(), ids.view(), out.view(), 4, 64); }),
            ErrorCode::Unsupported);
  ids.as<uint32_t>()[0] = 11;
  EXPECT_EQ(code_of([&] { embedding_affine(packed.view(), sc.view(), bi.view(), ids.view(), out.view(), 4, 64); }),
            ErrorCode::InvalidArgument);
}

TEST(QuantOps, DequantAffineRejects) {
  HostTensor packed(DType::u8, {4, 72}), sc(DType::f32, {4, 3}), bi(DType::f32, {4, 3}), out(DType::f16, {4, 96});
  EXPECT_NO_THROW(dequant_affine(packed.view(), sc.view(), bi.view(), out.view(), 6, 32));
  EXPECT_EQ(code_of([&] { dequant_affine(packed.view(), sc.view(), bi.view(), out.view(), 6, 64); }),
            ErrorCode::InvalidArgument);  // 96 % 64
  EXPECT_EQ(code_of([&] { dequant_affine(packed.view(), sc.view(), bi.view(), out.view(), 8, 32); }),
            ErrorCode::InvalidArgument);
  HostTensor out_i(DType::i32, {4, 96});
  EXPECT_EQ(code_of([&] { dequant_affine(packed.view(), sc.view(), bi.view(), out_i.view(), 6, 32); }),
            ErrorCode::Unsupported);
}

// ---- GPU-only ------------------------------------------------------------------------------------------

class QuantGpu : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!cuda_available()) GTEST_SKIP() << "no CUDA device here";
  }
};

TEST_F(QuantGpu, EmbeddingInvalidIdSetsFlagAndZeroRow) {
  const Device d = Device::cuda(0);
  HostTensor table(DType::q8_0, {4, 64});
  ref::fill_valid_blocks(DType::q8_0, table.bytes.data(), 8, 3);
  HostTensor ids(DType::u32, {3});
  ids.as<uint32_t>()[0] = 3;
  ids.as<uint32_t>()[1] = 4;  // == V
  ids.as<uint32_t>()[2] = 0;
  auto dt = test::to_device(table, d), di = test::to_device(ids, d);
  auto out = test::poisoned(DType::f32, {3, 64}, d);
  HostTensor zero(DType::u32, {1});
  auto flag = test::to_device(zero, d);
  unsetenv("LMK_DEBUG_CHECKS");
  embedding_ggml(dt, di, out, default_stream(), flag);
  test::synchronize(d);
  auto f = test::to_host(flag);
  EXPECT_EQ(f.as<uint32_t>()[0], 1u);
  auto o = test::to_host(out);
  for (int c = 0; c < 64; ++c) EXPECT_EQ(o.as<float>()[64 + c], 0.0f);
  auto want = ref::dequant_f32(DType::q8_0, table.bytes.data() + 3 * 68, 64);
  for (int c = 0; c < 64; ++c) EXPECT_EQ(double(o.as<float>()[c]), want[size_t(c)]);
  // Debug mode: synchronizes and throws the CPU's error.
  setenv("LMK_DEBUG_CHECKS", "1", 1);
  try {
    embedding_ggml(dt, di, out);
    ADD_FAILURE() << "no error in debug mode";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::InvalidArgument);
    EXPECT_NE(std::string(e.what()).find("invalid id 4 at row 1 (V=4)"), std::string::npos) << e.what();
  }
  HostTensor packed(DType::u32, {4, 8}), sc(DType::bf16, {4, 1}), bi(DType::bf16, {4, 1});
  auto dp = test::to_device(packed, d), ds = test::to_device(sc, d), db = test::to_device(bi, d);
  auto out2 = test::poisoned(DType::f32, {3, 64}, d);
  EXPECT_EQ(code_of([&] { embedding_affine(dp, ds, db, di, out2, 4, 64); }), ErrorCode::InvalidArgument);
  unsetenv("LMK_DEBUG_CHECKS");
}

TEST_F(QuantGpu, DequantUnalignedSourceMatchesCpu) {
  // A 2-byte-aligned (not 16-byte-aligned) source takes the scalar staging path.
  const Device d = Device::cuda(0);
  for (DType t : kBlockTypes) {
    const auto f = ref::format_of(t);
    const int64_t rows = 3, cols = 2 * f.qk, nbytes = rows * 2 * f.bytes;
    std::vector<uint8_t> host(static_cast<size_t>(nbytes + 2));
    ref::fill_valid_blocks(t, host.data() + 2, rows * 2, 11);
    Buffer buf(nbytes + 2, d);
    copy_bytes(buf.data(), d, host.data(), Device::cpu(), nbytes + 2);
    Tensor src(static_cast<uint8_t*>(buf.data()) + 2, t, {rows, cols}, d);
    auto out = test::poisoned(DType::f32, {rows, cols}, d);
    dequantize(src, out);
    auto cmp = test::compare(test::to_host(out), ref::dequant_f32(t, host.data() + 2, rows * cols), test::exact());
    EXPECT_TRUE(cmp.ok) << name(t) << ": " << cmp.message;
  }
}

}  // namespace
}  // namespace lmk
