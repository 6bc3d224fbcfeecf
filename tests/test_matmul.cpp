// Matmul family (matmul-moe-sampling.md §3, §5): every rejected input with its ErrorCode, the
// out-of-range expert id contract on both backends, and the agreement of mul_mv_ext and the
// forced mat-vec / mat-mat paths with quantized_matmul_ggml. Numerical checks over formats and
// shapes live in tests/check/matmul.cpp.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "util/expect_error.h"
#include "lmk/buffer.h"
#include "lmk/device.h"
#include "lmk/error.h"
#include "lmk/graph.h"
#include "lmk/matmul.h"
#include "ref/matmul.h"
#include "util/testkit.h"

namespace lmk {
namespace {


constexpr ErrorCode kInvalid = ErrorCode::InvalidArgument;
constexpr ErrorCode kUnsupported = ErrorCode::Unsupported;
constexpr int64_t M = 2, N = 3, K = 64;

// Host storage for small problems; tensors are views into it.
struct Host {
  std::vector<float> x = std::vector<float>(64 * K, 0.5f), y = std::vector<float>(64 * 64, 0.0f);
  std::vector<uint8_t> w = std::vector<uint8_t>(64 * 64 * 34, 0);  // enough for any format
  std::vector<uint32_t> ids = std::vector<uint32_t>(64, 0);
  std::vector<uint16_t> h16 = std::vector<uint16_t>(64 * K, 0x3c00);
  Tensor X(int64_t m = M, int64_t k = K) { return Tensor(x.data(), DType::f32, {m, k}); }
  Tensor Y(int64_t m = M, int64_t n = N) { return Tensor(y.data(), DType::f32, {m, n}); }
  Tensor Wq(DType t = DType::q4_0, int64_t n = N, int64_t k = K) { return Tensor(w.data(), t, {n, k}); }
};

TEST(MatmulErrors, QuantizedRejectsBadArguments) {
  Host h;
  auto run = [&](const Tensor& x, const Tensor& w, const Tensor& y) { quantized_matmul_ggml(x, w, y); };
  EXPECT_NO_THROW(run(h.X(), h.Wq(), h.Y()));
  // Not a block format / unsupported activation or output dtype.
  EXPECT_EQ(code_of([&] { run(h.X(), Tensor(h.x.data(), DType::f32, {N, K}), h.Y()); }), kUnsupported);
  EXPECT_EQ(code_of([&] { run(h.X(), Tensor(h.h16.data(), DType::bf16, {N, K}), h.Y()); }), kUnsupported);
  EXPECT_EQ(code_of([&] { run(Tensor(h.h16.data(), DType::f16, {M, K}), h.Wq(), h.Y()); }), kUnsupported);
  EXPECT_EQ(code_of([&] { run(h.X(), h.Wq(), Tensor(h.h16.data(), DType::bf16, {M, N})); }), kUnsupported);
  // K not a multiple of the block size (32 for q4_0, 256 for q4_K).
  EXPECT_EQ(code_of([&] { run(h.X(M, 48), h.Wq(DType::q4_0, N, 48), h.Y()); }), kInvalid);
  EXPECT_EQ(code_of([&] { run(h.X(M, 64), h.Wq(DType::q4_K, N, 64), h.Y()); }), kInvalid);
  // Shape mismatches.
  EXPECT_EQ(code_of([&] { run(h.X(M, 32), h.Wq(), h.Y()); }), kInvalid);
  EXPECT_EQ(code_of([&] { run(h.X(), h.Wq(), h.Y(M, N + 1)); }), kInvalid);
  EXPECT_EQ(code_of([&] { run(h.X(), h.Wq(), h.Y(M + 1, N)); }), kInvalid);
  EXPECT_EQ(code_of([&] { run(Tensor(h.x.data(), DType::f32, {1, M, K}), h.Wq(), h.Y()); }), kInvalid);
  // Zero sizes.
  EXPECT_EQ(code_of([&] { run(h.X(0, K), h.Wq(), h.Y(0, N)); }), kInvalid);
  EXPECT_EQ(code_of([&] { run(h.X(), h.Wq(DType::q4_0, 0, K), h.Y(M, 0)); }), kInvalid);
  // Non-contiguous activations.
  const int64_t shape[2] = {M, K}, strides[2] = {2 * K, 1};
  EXPECT_EQ(code_of([&] { run(Tensor(h.x.data(), DType::f32, shape, strides), h.Wq(), h.Y()); }), kInvalid);
  // Aliasing: y over x, y over w.
  EXPECT_EQ(code_of([&] { run(h.X(), h.Wq(), Tensor(h.x.data(), DType::f32, {M, N})); }), kInvalid);
  EXPECT_EQ(code_of([&] { run(h.X(), h.Wq(), Tensor(h.w.data(), DType::f32, {M, N})); }), kInvalid);
  // Misaligned weight pointer (blocks hold f16 fields: 2-byte alignment).
  EXPECT_EQ(code_of([&] { run(h.X(), Tensor(h.w.data() + 1, DType::q4_0, {N, K}), h.Y()); }), kInvalid);
}

TEST(MatmulErrors, MulMvExtRejectsBadArguments) {
  Host h;
  EXPECT_NO_THROW(mul_mv_ext(h.Wq(DType::q5_1), Tensor(h.x.data(), DType::f32, {2, 4, K}),
                             Tensor(h.y.data(), DType::f32, {2, 4, N})));
  // M outside [2, 8].
  EXPECT_EQ(code_of([&] { mul_mv_ext(h.Wq(), h.X(1, K), h.Y(1, N)); }), kInvalid);
  EXPECT_EQ(code_of([&] { mul_mv_ext(h.Wq(), h.X(9, K), h.Y(9, N)); }), kInvalid);
  EXPECT_EQ(code_of([&] { mul_mv_ext(h.Wq(), h.X(4, 32), h.Y(4, N)); }), kInvalid);
  EXPECT_EQ(code_of([&] { mul_mv_ext(h.Wq(), Tensor(h.x.data(), DType::f32, {2, 4, K}), h.Y(8, N)); }), kInvalid);
  EXPECT_EQ(code_of([&] { mul_mv_ext(h.Wq(DType::q5_1, N, 48), h.X(4, 48), h.Y(4, N)); }), kInvalid);
  EXPECT_EQ(code_of([&] { mul_mv_ext(Tensor(h.h16.data(), DType::f16, {N, K}), h.X(4, K), h.Y(4, N)); }), kUnsupported);
}

// Expert-routed problem: T tokens, top_k slots, E experts of [N, K] q4_0.
struct IdHost {
  static constexpr int64_t T = 3, top_k = 2, E = 4;
  Host h;
  std::vector<int32_t> ids32 = std::vector<int32_t>(T * top_k, 0);
  Tensor X() { return h.X(T, K); }
  Tensor W(int64_t e = E) { return Tensor(h.w.data(), DType::q4_0, {e, N, K}); }
  Tensor Ids() { return Tensor(h.ids.data(), DType::u32, {T * top_k}); }
  Tensor Y() { return h.Y(T * top_k, N); }
};

TEST(MatmulErrors, QuantizedIdRejectsBadArguments) {
  IdHost s;
  auto run = [&](const Tensor& x, const Tensor& w, const Tensor& ids, const Tensor& y, int64_t k = IdHost::top_k,
                 bool per_slot = false) { quantized_matmul_id_ggml(x, w, ids, y, k, per_slot); };
  EXPECT_NO_THROW(run(s.X(), s.W(), s.Ids(), s.Y()));
  // [T, top_k] ids and [T, top_k, N] outputs are accepted too.
  EXPECT_NO_THROW(run(s.X(), s.W(), Tensor(s.h.ids.data(), DType::u32, {IdHost::T, IdHost::top_k}),
                      Tensor(s.h.y.data(), DType::f32, {IdHost::T, IdHost::top_k, N})));
  EXPECT_EQ(code_of([&] { run(s.X(), s.W(), s.Ids(), s.Y(), 0); }), kInvalid);            // top_k == 0
  EXPECT_EQ(code_of([&] { run(s.X(), s.W(0), s.Ids(), s.Y()); }), kInvalid);              // E == 0
  EXPECT_EQ(code_of([&] { run(s.X(), s.W(), s.h.Y(1, 5), s.Y()); }), kUnsupported);       // ids f32
  EXPECT_EQ(code_of([&] { run(s.X(), s.W(), Tensor(s.h.ids.data(), DType::u32, {5}), s.Y()); }), kInvalid);
  EXPECT_EQ(code_of([&] { run(s.X(), s.W(), s.Ids(), s.h.Y(IdHost::T, N)); }), kInvalid);  // y rows
  EXPECT_EQ(code_of([&] { run(s.h.X(IdHost::T, 32), s.W(), s.Ids(), s.Y()); }), kInvalid);   // K mismatch
  EXPECT_EQ(code_of([&] { run(s.X(), Tensor(s.h.w.data(), DType::q4_0, {IdHost::E, N, 48}), s.Ids(), s.Y()); }),
            kInvalid);  // K % 32
  // input_per_slot: x must have T·top_k rows.
  EXPECT_EQ(code_of([&] { run(s.h.X(5, K), s.W(), s.Ids(), s.Y(), IdHost::top_k, true); }), kInvalid);
  EXPECT_NO_THROW(run(s.h.X(IdHost::T * IdHost::top_k, K), s.W(), s.Ids(), s.Y(), IdHost::top_k, true));
  // Expert stride smaller than one expert.
  const int64_t shape[3] = {IdHost::E, N, K}, strides[3] = {N * K / 32 - 1, K / 32, 1};
  EXPECT_EQ(code_of([&] { run(s.X(), Tensor(s.h.w.data(), DType::q4_0, shape, strides), s.Ids(), s.Y()); }), kInvalid);
  // Output overlapping the ids.
  EXPECT_EQ(code_of([&] { run(s.X(), s.W(), s.Ids(), Tensor(s.h.ids.data(), DType::f32, {6, N})); }), kInvalid);
}

TEST(MatmulErrors, QuantizedIdRejectsOutOfRangeIdsOnCpu) {
  IdHost s;
  std::fill(s.h.y.begin(), s.h.y.end(), 7.0f);
  s.h.ids[4] = IdHost::E;  // row 4
  std::string msg;
  EXPECT_EQ(code_of([&] { quantized_matmul_id_ggml(s.X(), s.W(), s.Ids(), s.Y(), IdHost::top_k); }, &msg), kInvalid);
  EXPECT_NE(msg.find("invalid expert id 4 at row 4 (n_experts=4)"), std::string::npos) << msg;
  EXPECT_EQ(s.h.y[0], 7.0f);  // nothing written
  // Negative i32 id.
  s.ids32[1] = -1;
  EXPECT_EQ(code_of([&] {
              quantized_matmul_id_ggml(s.X(), s.W(), Tensor(s.ids32.data(), DType::i32, {6}), s.Y(), IdHost::top_k);
            }, &msg),
            kInvalid);
  EXPECT_NE(msg.find("invalid expert id -1 at row 1"), std::string::npos) << msg;
}

TEST(MatmulErrors, DenseRejectsBadArguments) {
  Host h;
  auto w16 = [&](int64_t b, int64_t n, int64_t k) { return Tensor(h.h16.data(), DType::bf16, {b, n, k}); };
  auto x3 = [&](int64_t b, int64_t m, int64_t k) { return Tensor(h.x.data(), DType::f32, {b, m, k}); };
  auto y3 = [&](int64_t b, int64_t m, int64_t n) { return Tensor(h.y.data(), DType::f32, {b, m, n}); };
  EXPECT_NO_THROW(dense_mm(w16(2, 3, 8), x3(4, 2, 8), y3(4, 2, 3)));
  EXPECT_EQ(code_of([&] { dense_mm(w16(3, 3, 8), x3(4, 2, 8), y3(4, 2, 3)); }), kInvalid);  // B1 % B0
  EXPECT_EQ(code_of([&] { dense_mm(w16(2, 3, 8), x3(4, 2, 7), y3(4, 2, 3)); }), kInvalid);  // K
  EXPECT_EQ(code_of([&] { dense_mm(w16(2, 3, 8), x3(4, 2, 8), y3(4, 2, 4)); }), kInvalid);  // N
  EXPECT_EQ(code_of([&] { dense_mm(w16(2, 3, 8), x3(4, 0, 8), y3(4, 0, 3)); }), kInvalid);  // zero
  EXPECT_EQ(code_of([&] { dense_mm(Tensor(h.w.data(), DType::q4_0, {3, 32}), h.X(2, 32), h.Y(2, 3)); }), kUnsupported);
  EXPECT_EQ(code_of([&] { dense_mm(w16(1, 3, 8), Tensor(h.h16.data() + 512, DType::bf16, {1, 2, 8}), y3(1, 2, 3)); }),
            kUnsupported);  // src1 must be f32
  EXPECT_EQ(code_of([&] { dense_mm(w16(1, 3, 8), x3(1, 2, 8), Tensor(h.x.data(), DType::f32, {1, 2, 3})); }),
            kInvalid);  // dst aliases src1
  EXPECT_EQ(code_of([&] { dense_gemv_bf16(Tensor(h.x.data(), DType::f32, {3, 8}), h.X(2, 8), h.Y(2, 3)); }),
            kUnsupported);
  // dense_matvec: M must be 1.
  EXPECT_NO_THROW(dense_matvec(h.X(1, 8), Tensor(h.h16.data(), DType::f16, {3, 8}), h.Y(1, 3)));
  EXPECT_EQ(code_of([&] { dense_matvec(h.X(2, 8), Tensor(h.h16.data(), DType::f16, {3, 8}), h.Y(2, 3)); }), kInvalid);
  // dense_gemm: one dtype for a, b, c (f16 or bf16).
  std::vector<uint16_t> c16(64, 0);
  EXPECT_NO_THROW(dense_gemm(Tensor(h.h16.data(), DType::f16, {2, 8}), Tensor(h.h16.data() + 64, DType::f16, {3, 8}),
                             Tensor(c16.data(), DType::f16, {2, 3})));
  EXPECT_EQ(code_of([&] {
              dense_gemm(Tensor(h.h16.data(), DType::f16, {2, 8}), Tensor(h.h16.data() + 64, DType::bf16, {3, 8}),
                         Tensor(c16.data(), DType::f16, {2, 3}));
            }),
            kInvalid);
  EXPECT_EQ(code_of([&] { dense_gemm(h.X(2, 8), h.X(3, 8), h.Y(2, 3)); }), kUnsupported);
}

const std::vector<DType> kAllFormats = {DType::q4_0, DType::q5_0,  DType::q5_1, DType::q8_0, DType::iq4_nl,
                                        DType::q2_K, DType::q4_K, DType::q5_K, DType::q6_K, DType::iq4_xs};

// pack_ggml is a permutation of the raw bytes plus zero padding: every raw byte lands in exactly
// one packed byte (a weight of all-0xA5 bytes packs to exactly that many 0xA5 bytes, the rest 0),
// and unpack_ggml restores random blocks bit for bit. Ragged N and K included.
TEST(MatmulPacked, PackIsAPermutationPlusPaddingCpu) {
  for (DType t : kAllFormats) {
    const int64_t qk = ref::mm::block_elems(t);
    for (auto [n, k] : {std::pair<int64_t, int64_t>{37, qk == 256 ? 768 : 704}, {1, qk}, {16, 1024}}) {
      const int64_t blocks = n * k / qk, bytes = blocks * ref::mm::block_size(t);
      std::vector<uint8_t> fill(size_t(bytes), 0xA5);
      const PackedGgml pf = pack_ggml(Tensor(fill.data(), t, {n, k}));
      EXPECT_EQ(pf.n, n);
      EXPECT_EQ(pf.k, k);
      EXPECT_EQ(pf.bytes.bytes() % 64, 0) << name(t);  // records stay 16-byte aligned
      const auto* pb = static_cast<const uint8_t*>(pf.bytes.data());
      int64_t marked = 0, other = 0;
      for (int64_t i = 0; i < pf.bytes.bytes(); ++i) {
        if (pb[i] == 0xA5) ++marked;
        else if (pb[i] != 0) ++other;
      }
      EXPECT_EQ(marked, bytes) << name(t) << " " << n << "x" << k;
      EXPECT_EQ(other, 0) << name(t);
      auto wb = ref::mm::random_blocks(t, blocks, 7 + uint64_t(n));
      const PackedGgml pr = pack_ggml(Tensor(wb.data(), t, {n, k}));
      std::vector<uint8_t> back(wb.size(), 0);
      unpack_ggml(pr, Tensor(back.data(), t, {n, k}));
      EXPECT_EQ(back, wb) << name(t) << " " << n << "x" << k;
    }
  }
}

// Expert weights [E, N, K] pack expert by expert; unpack restores them; the routed op on packed
// experts rejects what the raw one rejects, and a multi-expert pack is refused by the plain op.
TEST(MatmulPacked, ExpertsPackAndRoutedErrorsCpu) {
  const int64_t e = 3, n = 20, k = 512;
  auto wb = ref::mm::random_blocks(DType::q4_K, e * n * k / 256, 11);
  const PackedGgml pw = pack_ggml(Tensor(wb.data(), DType::q4_K, {e, n, k}));
  EXPECT_EQ(pw.n_experts, e);
  std::vector<uint8_t> back(wb.size(), 0);
  unpack_ggml(pw, Tensor(back.data(), DType::q4_K, {e, n, k}));
  EXPECT_EQ(back, wb);
  EXPECT_EQ(code_of([&] { unpack_ggml(pw, Tensor(back.data(), DType::q4_K, {n, k})); }), kInvalid);
  std::vector<float> x(size_t(2 * k), 0.25f), y(size_t(4 * n), 0.0f);
  std::vector<uint32_t> ids = {0, 2, 1, 2};
  const Tensor X(x.data(), DType::f32, {2, k}), Y(y.data(), DType::f32, {4, n}), I(ids.data(), DType::u32, {2, 2});
  EXPECT_NO_THROW(quantized_matmul_id_ggml(X, pw, I, Y, 2));
  EXPECT_EQ(code_of([&] { quantized_matmul_ggml(X, pw, Tensor(y.data(), DType::f32, {2, n})); }), kInvalid);
  EXPECT_EQ(code_of([&] { quantized_matmul_id_ggml(X, pw, I, Y, 0); }), kInvalid);                     // top_k
  EXPECT_EQ(code_of([&] { quantized_matmul_id_ggml(X, pw, I, Tensor(y.data(), DType::f32, {4, n + 1}), 2); }), kInvalid);
  EXPECT_EQ(code_of([&] { quantized_matmul_id_ggml(Tensor(x.data(), DType::f32, {2, 256}), pw, I, Y, 2); }), kInvalid);
  EXPECT_EQ(code_of([&] { quantized_matmul_id_ggml(X, pw, Tensor(ids.data(), DType::u32, {3}), Y, 2); }), kInvalid);
  ids[3] = 3;  // out of range: rejected before anything is written
  std::fill(y.begin(), y.end(), 7.0f);
  EXPECT_EQ(code_of([&] { quantized_matmul_id_ggml(X, pw, I, Y, 2); }), kInvalid);
  EXPECT_EQ(y[0], 7.0f);
}

TEST(MatmulErrors, PackedRejectsBadArguments) {
  Host h;
  EXPECT_EQ(code_of([&] { (void)pack_ggml(Tensor(h.x.data(), DType::f32, {N, K})); }), kUnsupported);
  EXPECT_EQ(code_of([&] { (void)pack_ggml(h.Wq(DType::q4_0, N, 48)); }), kInvalid);
  EXPECT_EQ(code_of([&] { (void)pack_ggml(Tensor(h.w.data(), DType::q4_0, {1, 1, N, K})); }), kInvalid);
  EXPECT_EQ(code_of([&] { (void)pack_ggml(h.Wq(DType::q4_0, 0, K)); }), kInvalid);
  EXPECT_EQ(code_of([&] { (void)pack_ggml(Tensor(h.w.data() + 1, DType::q4_0, {N, K})); }), kInvalid);
  const PackedGgml pw = pack_ggml(h.Wq());
  auto run = [&](const Tensor& x, const PackedGgml& w, const Tensor& y) { quantized_matmul_ggml(x, w, y); };
  EXPECT_NO_THROW(run(h.X(), pw, h.Y()));
  EXPECT_EQ(code_of([&] { run(h.X(M, 32), pw, h.Y()); }), kInvalid);            // K mismatch
  EXPECT_EQ(code_of([&] { run(h.X(), pw, h.Y(M, N + 1)); }), kInvalid);        // N mismatch
  EXPECT_EQ(code_of([&] { run(h.X(), pw, h.Y(M + 1, N)); }), kInvalid);        // M mismatch
  EXPECT_EQ(code_of([&] { run(Tensor(h.h16.data(), DType::f16, {M, K}), pw, h.Y()); }), kUnsupported);
  EXPECT_EQ(code_of([&] { run(h.X(), pw, Tensor(h.x.data(), DType::f32, {M, N})); }), kInvalid);  // y over x
  EXPECT_EQ(code_of([&] { run(h.X(), PackedGgml{}, h.Y()); }), kInvalid);      // not made by pack_ggml
  EXPECT_EQ(code_of([&] { run(h.X(), pw, Tensor(pw.bytes.data(), DType::f32, {M, N})); }), kInvalid);  // y over w
  PackedGgml bad = pack_ggml(h.Wq());
  bad.n = 40;  // sizes that do not match the bytes
  EXPECT_EQ(code_of([&] { run(h.X(), bad, Tensor(h.y.data(), DType::f32, {M, 40})); }), kInvalid);
  bad.n = N;
  bad.type = DType::f32;
  EXPECT_EQ(code_of([&] { run(h.X(), bad, h.Y()); }), kUnsupported);
  bad.type = DType::q4_K;  // K = 64 is no q4_K matrix
  EXPECT_EQ(code_of([&] { run(h.X(), bad, h.Y()); }), kInvalid);
  std::vector<uint8_t> out(size_t(N * K), 0);
  EXPECT_EQ(code_of([&] { unpack_ggml(pw, Tensor(out.data(), DType::q8_0, {N, K})); }), kUnsupported);
  EXPECT_EQ(code_of([&] { unpack_ggml(pw, Tensor(out.data(), DType::q4_0, {N + 1, K})); }), kInvalid);
  // out over the packed bytes themselves.
  EXPECT_EQ(code_of([&] { unpack_ggml(pw, Tensor(pw.bytes.data(), DType::q4_0, {N, K})); }), kInvalid);
}

TEST(Matmul, MulMvExtMatchesQuantizedMatmulCpu) {
  // The same weight for every batch index: mul_mv_ext == quantized_matmul_ggml on [batch·M, K].
  const int64_t batch = 2, m = 3, n = 5, k = 256;
  auto w = ref::mm::random_blocks(DType::iq4_nl, n * k / 32, 11);
  auto x = test::random_normal(DType::f32, {batch, m, k}, 12);
  std::vector<float> y1(batch * m * n), y2(batch * m * n);
  Tensor tw(w.data(), DType::iq4_nl, {n, k});
  mul_mv_ext(tw, x.view(), Tensor(y1.data(), DType::f32, {batch, m, n}));
  quantized_matmul_ggml(Tensor(x.bytes.data(), DType::f32, {batch * m, k}), tw,
                        Tensor(y2.data(), DType::f32, {batch * m, n}));
  EXPECT_EQ(y1, y2);
}

#ifdef LMK_WITH_CUDA
// ---- GPU ------------------------------------------------------------------------------------------

bool have_gpu() { return cuda_available(); }

TEST(MatmulGpu, DeviceMismatchRejected) {
  if (!have_gpu()) GTEST_SKIP() << "no CUDA device here";
  Host h;
  auto dw = test::to_device(test::HostTensor(DType::q4_0, {N, K}), Device::cuda(0));
  EXPECT_EQ(code_of([&] { quantized_matmul_ggml(h.X(), dw, h.Y()); }), kInvalid);
}

const char* path_name(MatmulPath p) {
  return p == MatmulPath::matvec ? "matvec" : p == MatmulPath::matmat ? "matmat" : "automatic";
}

// fp64 references of y[r, :] = x[xrow(r)] · W_r^T (spec §0): `exact` with the exact f32 dequant,
// `bf16` with the mat-mat path's documented roundings (x and the dequantized weight to bf16, RNE).
// Each output also gets its normaliser Σ|x|·|w|: the paths are only accurate relative to it (a
// bf16 product of two large terms that cancel can be off by far more than |y|).
struct Refs {
  ref::mm::Result exact, bf16;
  explicit Refs(int64_t rows, int64_t n)
      : exact{std::vector<double>(size_t(rows * n)), std::vector<double>(size_t(rows * n))},
        bf16{std::vector<double>(size_t(rows * n)), std::vector<double>(size_t(rows * n))} {}
  void add_row(const std::vector<double>& x, int64_t xrow, const std::vector<ref::mm::W>& w, int64_t n, int64_t k,
               int64_t row) {
    auto rb = [](double v) { return test::round_to(DType::bf16, v); };
    ref::mm::matmul_rows(x, {xrow}, w.data(), n, k, ref::mm::identity, ref::mm::identity, exact, row);
    ref::mm::matmul_rows(x, {xrow}, w.data(), n, k, rb, rb, bf16, row);
  }
};

// Allowed |y - ref| of element i for a path (tolerances of tests/check/matmul.cpp): mat-vec 1e-5
// against the exact reference; forced mat-mat 1e-4 against the bf16-rounded reference; automatic
// (mat-vec or mat-mat pieces, chosen on the device) the spec's bf16 row, 1.6e-2, against the exact.
struct Expect {
  double want, allowed;
};
Expect expect(const Refs& r, MatmulPath p, size_t i) {
  if (p == MatmulPath::matmat) return {r.bf16.y[i], 1e-4 * (r.bf16.norm[i] + 1e-30)};
  return {r.exact.y[i], (p == MatmulPath::matvec ? 1e-5 : 1.6e-2) * (r.exact.norm[i] + 1e-30)};
}

// Invalid ids on CUDA: never read out of bounds, rows written as 0, error flag set; valid rows are
// computed normally (compared with fp64 references of the path's documented precision).
TEST(MatmulGpu, OutOfRangeIdsWriteZerosAndSetFlag) {
  if (!have_gpu()) GTEST_SKIP() << "no CUDA device here";
  const Device g = Device::cuda(0);
  for (int64_t tokens : {int64_t(2), int64_t(40)}) {  // direct rows and the grouped path
    const int64_t top_k = 4, e = 8, n = 33, k = 256, rows = tokens * top_k;
    auto wb = ref::mm::random_blocks(DType::q4_K, e * n * k / 256, 21);
    test::HostTensor w(DType::q4_K, {e, n, k});
    std::memcpy(w.bytes.data(), wb.data(), wb.size());
    auto x = test::random_normal(DType::f32, {tokens, k}, 22);
    test::HostTensor ids(DType::u32, {rows});
    for (int64_t r = 0; r < rows; ++r) ids.set(r, double((r * 5) % e));
    const std::vector<int64_t> bad = {1, rows - 1};
    std::vector<uint32_t> bad_vals = {uint32_t(e), 0xFFFFFFFFu};
    Refs refs(rows, n);
    {
      const auto xd = x.to_double();
      const int64_t expert_bytes = n * (k / 256) * ref::mm::block_size(DType::q4_K);
      for (int64_t r = 0; r < rows; ++r) {
        const int64_t id = (r * 5) % e;
        refs.add_row(xd, r / top_k, ref::mm::dequant_matrix(DType::q4_K, w.bytes.data() + id * expert_bytes, n, k), n,
                     k, r);
      }
    }
    for (size_t i = 0; i < bad.size(); ++i) ids.as<uint32_t>()[bad[i]] = bad_vals[i];
    auto dx = test::to_device(x, g), dw = test::to_device(w, g), dids = test::to_device(ids, g);
    for (MatmulPath p : {MatmulPath::automatic, MatmulPath::matvec, MatmulPath::matmat}) {
      auto y = test::poisoned(DType::f32, {rows, n}, g);
      test::HostTensor zero(DType::u32, {1});
      auto flag = test::to_device(zero, g);
      quantized_matmul_id_ggml(dx, dw, dids, y, top_k, false, default_stream(), flag, p);
      auto hy = test::to_host(y);
      auto hf = test::to_host(flag);
      EXPECT_EQ(hf.as<uint32_t>()[0], 1u) << "tokens " << tokens << " path " << path_name(p);
      for (int64_t r = 0; r < rows; ++r) {
        const bool is_bad = r == bad[0] || r == bad[1];
        for (int64_t j = 0; j < n; ++j) {
          const float v = hy.as<float>()[r * n + j];
          if (is_bad) {
            ASSERT_EQ(v, 0.0f) << "tokens " << tokens << " path " << path_name(p) << " row " << r;
          } else {
            const Expect ex = expect(refs, p, size_t(r * n + j));
            ASSERT_NEAR(v, ex.want, ex.allowed)
                << "tokens " << tokens << " path " << path_name(p) << " row " << r << " col " << j;
          }
        }
      }
    }
  }
}

// The forced mat-vec and mat-mat paths agree on the same inputs (spec §3.1 test hook): each meets
// its own precision contract, and the two differ by at most the spec's bf16 tolerance (1.6e-2 of
// Σ|x|·|w|). A plain |a - b| <= c·(|a| + 1) test is wrong for the bf16 mat-mat path: q6_K weights
// reach |d·scale·q| ~ 400, and an output that cancels to ~0.2 may move by ~0.4 under bf16 rounding.
TEST(MatmulGpu, PathsAgree) {
  if (!have_gpu()) GTEST_SKIP() << "no CUDA device here";
  const Device g = Device::cuda(0);
  const int64_t m = 24, n = 70, k = 512;
  for (DType t : {DType::q4_0, DType::q6_K, DType::q4_K, DType::q2_K}) {
    auto wb = ref::mm::random_blocks(t, n * k / ref::mm::block_elems(t), 31);
    test::HostTensor w(t, {n, k});
    std::memcpy(w.bytes.data(), wb.data(), wb.size());
    auto x = test::random_normal(DType::f32, {m, k}, 32);
    Refs refs(m, n);
    {
      const auto xd = x.to_double();
      const auto wd = ref::mm::dequant_matrix(t, w.bytes.data(), n, k);
      for (int64_t r = 0; r < m; ++r) refs.add_row(xd, r, wd, n, k, r);
    }
    auto dx = test::to_device(x, g), dw = test::to_device(w, g);
    auto y1 = test::poisoned(DType::f32, {m, n}, g), y2 = test::poisoned(DType::f32, {m, n}, g);
    quantized_matmul_ggml(dx, dw, y1, default_stream(), MatmulPath::matvec);
    quantized_matmul_ggml(dx, dw, y2, default_stream(), MatmulPath::matmat);
    auto a = test::to_host(y1), b = test::to_host(y2);
    for (int64_t i = 0; i < m * n; ++i) {
      const float va = a.as<float>()[i], vb = b.as<float>()[i];
      const Expect ea = expect(refs, MatmulPath::matvec, size_t(i)), eb = expect(refs, MatmulPath::matmat, size_t(i));
      ASSERT_NEAR(va, ea.want, ea.allowed) << name(t) << " matvec " << i;
      ASSERT_NEAR(vb, eb.want, eb.allowed) << name(t) << " matmat " << i;
      ASSERT_NEAR(va, vb, 1.6e-2 * refs.exact.norm[size_t(i)]) << name(t) << " agreement " << i;
    }
  }
}

// The rows of hm (all rows of x) and h1 (row 0 alone) against the fp64 reference at mat-vec
// precision (1e-5 of Σ|x|·|w|); w: the first [n, k] matrix of the weight's blocks.
void expect_matvec_rows(const test::HostTensor& x, const test::HostTensor& w, DType ty, int64_t n, int64_t k,
                        const test::HostTensor& hm, const test::HostTensor& h1) {
  const int64_t m = x.shape[0];
  Refs refs(m, n);
  const auto xd = x.to_double();
  const auto wd = ref::mm::dequant_matrix(ty, w.bytes.data(), n, k);
  for (int64_t r = 0; r < m; ++r) refs.add_row(xd, r, wd, n, k, r);
  for (int64_t i = 0; i < m * n; ++i) {
    const Expect e = expect(refs, MatmulPath::matvec, size_t(i));
    ASSERT_NEAR(hm.as<float>()[i], e.want, e.allowed) << name(ty) << " M=" << m << " " << i;
    if (i < n) ASSERT_NEAR(h1.as<float>()[i], e.want, e.allowed) << name(ty) << " M=1 " << i;
  }
}

// Captures launch(outputs, stream) into a CUDA graph on a fresh stream (scratch reserved first:
// capture must not allocate), replays it twice into poisoned outputs and expects each output to
// equal the eager run's bytes (`eager`, in the order of `outputs`).
template <class Launch>
void expect_graph_replays(Device g, const std::vector<const test::HostTensor*>& eager, Launch launch,
                          std::string_view what) {
  Stream s = Stream::create(g);
  matmul_workspace_reserve(s, int64_t(1) << 20);
  std::vector<test::DeviceTensor> outs;
  outs.reserve(eager.size());
  std::vector<Tensor> views;
  for (const auto* e : eager) {
    outs.push_back(test::poisoned(e->dtype, e->shape, g));
    views.push_back(outs.back().tensor);
  }
  Graph graph;
  graph.begin_capture(s);
  launch(views, s);
  graph.end_capture();
  graph.replay(s);
  graph.replay(s);
  s.synchronize();
  for (size_t i = 0; i < outs.size(); ++i) EXPECT_EQ(eager[i]->bytes, test::to_host(outs[i]).bytes) << what << " output " << i;
}

// The mat-vec path (x split kernel, then the mat-vec launched with programmatic dependence) is
// correct against the fp64 reference, deterministic, and can be captured into a CUDA graph:
// plain M = 1 and M = 4, and routed rows (K = 4096: the ring mat-vec on the raw rows where it
// applies). M = 20 packs the raw weight per call into stream-ordered scratch (graph memory nodes
// when captured) and runs the packed mat-mat: deterministic and capturable too.
TEST(MatmulGpu, MatvecIsDeterministicAndCapturable) {
  if (!have_gpu()) GTEST_SKIP() << "no CUDA device here";
  const Device g = Device::cuda(0);
  const int64_t n = 300, k = 4096, e = 4, top = 2, t = 3;
  for (DType ty : {DType::q4_0, DType::q6_K}) {
    auto wb = ref::mm::random_blocks(ty, e * n * k / ref::mm::block_elems(ty), 41);
    test::HostTensor w(ty, {e, n, k});
    std::memcpy(w.bytes.data(), wb.data(), wb.size());
    test::HostTensor ids(DType::u32, {t, top});
    for (int64_t i = 0; i < t * top; ++i) ids.as<uint32_t>()[i] = uint32_t((i * 3 + 1) % e);
    auto x = test::random_normal(DType::f32, {4, k}, 42);
    auto x20 = test::random_normal(DType::f32, {20, k}, 43);
    auto dw = test::to_device(w, g), dx = test::to_device(x, g), di = test::to_device(ids, g);
    auto dx20 = test::to_device(x20, g);
    const Tensor w0(dw.tensor.data(), ty, {n, k}, g);  // expert 0
    const Tensor x1(dx.tensor.data(), DType::f32, {1, k}, g), x3(dx.tensor.data(), DType::f32, {t, k}, g);
    auto run = [&](const Tensor& y1, const Tensor& y4, const Tensor& yr, const Tensor& y20, Stream& s) {
      quantized_matmul_ggml(x1, w0, y1, s);
      quantized_matmul_ggml(dx.tensor, w0, y4, s);
      quantized_matmul_id_ggml(x3, dw.tensor, di.tensor, yr, top, false, s);
      quantized_matmul_ggml(dx20.tensor, w0, y20, s);
    };
    auto a1 = test::poisoned(DType::f32, {1, n}, g), a4 = test::poisoned(DType::f32, {4, n}, g);
    auto ar = test::poisoned(DType::f32, {t, top, n}, g), a20 = test::poisoned(DType::f32, {20, n}, g);
    run(a1.tensor, a4.tensor, ar.tensor, a20.tensor, default_stream());
    const auto h1 = test::to_host(a1), h4 = test::to_host(a4), hr = test::to_host(ar), h20 = test::to_host(a20);
    run(a1.tensor, a4.tensor, ar.tensor, a20.tensor, default_stream());
    EXPECT_EQ(h1.bytes, test::to_host(a1).bytes) << name(ty);
    EXPECT_EQ(h4.bytes, test::to_host(a4).bytes) << name(ty);
    EXPECT_EQ(hr.bytes, test::to_host(ar).bytes) << name(ty);
    EXPECT_EQ(h20.bytes, test::to_host(a20).bytes) << name(ty);
    expect_matvec_rows(x, w, ty, n, k, h4, h1);  // the plain rows use expert 0
    expect_graph_replays(
        g, {&h1, &h4, &hr, &h20}, [&](const std::vector<Tensor>& y, Stream& s) { run(y[0], y[1], y[2], y[3], s); },
        name(ty));
  }
}
// The CUDA packer and unpacker agree with the CPU's byte for byte; the packed mat-vec (M = 1, 3)
// agrees with the fp64 reference; the mat-vec and the mat-mat (M = 20) are deterministic and
// replay bit-identically from a CUDA graph.
TEST(MatmulGpu, PackedMatchesCpuAndIsCapturable) {
  if (!have_gpu()) GTEST_SKIP() << "no CUDA device here";
  const Device g = Device::cuda(0);
  for (DType ty : kAllFormats) {
    const int64_t n = 45, k = ref::mm::block_elems(ty) == 256 ? 2048 : 1760;
    auto wb = ref::mm::random_blocks(ty, n * k / ref::mm::block_elems(ty), 43);
    test::HostTensor w(ty, {n, k});
    std::memcpy(w.bytes.data(), wb.data(), wb.size());
    const PackedGgml cpu = pack_ggml(w.view());
    auto dw = test::to_device(w, g);
    Stream ps = Stream::create(g);  // a non-blocking stream: packing must not race the buffer's zero fill
    const PackedGgml gpu = pack_ggml(dw.tensor, ps);
    ps.synchronize();
    ASSERT_EQ(gpu.bytes.bytes(), cpu.bytes.bytes());
    std::vector<uint8_t> got(size_t(gpu.bytes.bytes()));
    copy_bytes(got.data(), Device::cpu(), gpu.bytes.data(), g, gpu.bytes.bytes(), default_stream());
    EXPECT_EQ(0, std::memcmp(got.data(), cpu.bytes.data(), got.size())) << name(ty);
    auto back = test::poisoned(ty, {n, k}, g);
    unpack_ggml(gpu, back.tensor);
    EXPECT_EQ(test::to_host(back).bytes, w.bytes) << name(ty);

    auto x = test::random_normal(DType::f32, {3, k}, 44);
    auto dx = test::to_device(x, g);
    const Tensor x1(dx.tensor.data(), DType::f32, {1, k}, g);
    auto a1 = test::poisoned(DType::f32, {1, n}, g), a3 = test::poisoned(DType::f32, {3, n}, g);
    quantized_matmul_ggml(x1, gpu, a1.tensor);
    quantized_matmul_ggml(dx.tensor, gpu, a3.tensor);
    const auto h1 = test::to_host(a1), h3 = test::to_host(a3);
    expect_matvec_rows(x, w, ty, n, k, h3, h1);
    // M = 20: the wgmma mat-mat (K-splits here: one 128-row tile), launched with programmatic
    // dependence behind permute_x, with the split sum behind it.
    auto x20 = test::random_normal(DType::f32, {20, k}, 45);
    auto dx20 = test::to_device(x20, g);
    auto a20 = test::poisoned(DType::f32, {20, n}, g);
    quantized_matmul_ggml(dx20.tensor, gpu, a20.tensor);
    const auto h20 = test::to_host(a20);
    expect_graph_replays(
        g, {&h1, &h3, &h20},
        [&](const std::vector<Tensor>& y, Stream& s) {
          quantized_matmul_ggml(x1, gpu, y[0], s);
          quantized_matmul_ggml(dx.tensor, gpu, y[1], s);
          quantized_matmul_ggml(dx20.tensor, gpu, y[2], s);
        },
        name(ty));
  }
  // A CPU x with a GPU packed weight is rejected.
  Host h;
  auto dw = test::to_device(test::HostTensor(DType::q4_0, {N, K}), g);
  const PackedGgml pw = pack_ggml(dw.tensor);
  EXPECT_EQ(code_of([&] { quantized_matmul_ggml(h.X(), pw, h.Y()); }), kInvalid);
}
// Packed experts on CUDA: out-of-range ids write zero rows and set the flag (direct rows and
// per-expert row lists), valid rows agree with the fp64 reference at mat-vec precision.
TEST(MatmulGpu, PackedRoutedInvalidIdsAndReference) {
  if (!have_gpu()) GTEST_SKIP() << "no CUDA device here";
  const Device g = Device::cuda(0);
  const int64_t e = 8, n = 33, k = 512, top = 4;
  auto wb = ref::mm::random_blocks(DType::q4_0, e * n * k / 32, 51);
  test::HostTensor w(DType::q4_0, {e, n, k});
  std::memcpy(w.bytes.data(), wb.data(), wb.size());
  auto dw = test::to_device(w, g);
  const PackedGgml pw = pack_ggml(dw.tensor);
  for (int64_t t : {2, 40}) {  // 8 direct rows; 160 rows through the per-expert lists (mat-mat)
    const int64_t rows = t * top;
    auto x = test::random_normal(DType::f32, {t, k}, 52);
    test::HostTensor ids(DType::u32, {t, top});
    for (int64_t i = 0; i < rows; ++i) ids.as<uint32_t>()[i] = uint32_t(i % 5 == 3 ? e + 2 : (i * 7) % e);
    auto dx = test::to_device(x, g), di = test::to_device(ids, g);
    auto y = test::poisoned(DType::f32, {rows, n}, g);
    test::HostTensor flag(DType::u32, {1});
    auto df = test::to_device(flag, g);
    quantized_matmul_id_ggml(dx.tensor, pw, di.tensor, y.tensor, top, false, default_stream(), df.tensor);
    const auto hy = test::to_host(y);
    EXPECT_EQ(test::to_host(df).as<uint32_t>()[0], 1u) << "T=" << t;
    const auto xd = x.to_double();
    for (int64_t r = 0; r < rows; ++r) {
      const uint32_t id = ids.as<uint32_t>()[r];
      if (id >= e) {
        for (int64_t j = 0; j < n; ++j) ASSERT_EQ(hy.as<float>()[r * n + j], 0.0f) << "T=" << t << " row " << r;
        continue;
      }
      const auto wd = ref::mm::dequant_matrix(DType::q4_0, w.bytes.data() + id * (n * k / 32 * 18), n, k);
      Refs refs(1, n);
      refs.add_row(xd, r / top, wd, n, k, 0);
      for (int64_t j = 0; j < n; ++j) {
        // T = 40: 20 rows per expert take the wgmma mat-mat (bf16 operands; q4_0 dequantized in
        // bf16 arithmetic: 8e-3, the bound of tests/check/matmul.cpp's packed_mm_tol).
        const Expect ex = t == 40 ? Expect{refs.bf16.y[size_t(j)], 8e-3 * (refs.bf16.norm[size_t(j)] + 1e-30)}
                                  : expect(refs, MatmulPath::matvec, size_t(j));
        ASSERT_NEAR(hy.as<float>()[r * n + j], ex.want, ex.allowed) << "T=" << t << " row " << r;
      }
    }
  }
}
#endif

}  // namespace
}  // namespace lmk
