// Affine family: rejected inputs (each with its error code, spec §1.4, §2), invalid expert ids,
// the quantized_matmul_id == quantized_matmul-on-the-slice contract, and on CUDA: invalid ids
// (zeroed rows, error flag, debug mode), bit-identity across paths' tilings, determinism and a
// graph capture of the routed op.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <random>
#include <vector>

#include "util/expect_error.h"
#include "lmk/affine.h"
#include "lmk/error.h"
#include "lmk/buffer.h"
#include "lmk/graph.h"
#include "ref/affine.h"
#include "util/testkit.h"

namespace lmk {
namespace {

using test::HostTensor;


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

// Host operands of a 4-bit (or `bits`) weight [E, N, K] (E = 0: plain [N, K]) with bf16 params.
struct Operands {
  HostTensor x, w, s, b;
  Operands(int64_t m, int64_t n, int64_t k, int bits, int gs, int64_t e = 0, uint64_t seed = 7) {
    x = test::random_normal(DType::f32, {m, k}, seed);
    const int64_t words = k * bits / 32;
    std::vector<int64_t> ws = e ? std::vector<int64_t>{e, n, words} : std::vector<int64_t>{n, words};
    std::vector<int64_t> ss = e ? std::vector<int64_t>{e, n, k / gs} : std::vector<int64_t>{n, k / gs};
    w = test::random_uniform(DType::u32, ws, seed + 1, 0, 4294967296.0);
    s = test::random_uniform(DType::bf16, ss, seed + 2, 0.002, 0.05);
    b = test::random_uniform(DType::bf16, ss, seed + 3, -0.4, 0.4);
  }
};

TEST(AffineErrors, PackedWeightsRejectBadArguments) {
  Operands o(2, 8, 128, 4, 64);
  Tensor w = o.w.view(), sc = o.s.view(), b = o.b.view();
  const PackedAffine p = pack_affine(w, sc, b, 4, 64);  // valid
  EXPECT_EQ(p.bits, 4);
  EXPECT_EQ(p.n, 8);
  EXPECT_EQ(p.k, 128);
  EXPECT_EQ(code_of([&] { pack_affine(w, sc, b, 5, 64); }), ErrorCode::Unsupported);
  EXPECT_EQ(code_of([&] { pack_affine(w, sc, b, 2, 64); }), ErrorCode::Unsupported);
  EXPECT_EQ(code_of([&] { pack_affine(w, sc, b, 4, 48); }), ErrorCode::Unsupported);   // group size
  EXPECT_EQ(code_of([&] { pack_affine(w, sc, b, 8, 64); }), ErrorCode::InvalidArgument);  // scales: 2 groups, 1 expected
  HostTensor s32(DType::f32, {8, 2}), b32(DType::f32, {8, 2});
  EXPECT_EQ(code_of([&] { pack_affine(w, s32.view(), b32.view(), 4, 64); }), ErrorCode::Unsupported);  // f32 scales
  EXPECT_EQ(code_of([&] { pack_affine(w, sc, o.s.view().reshape({16}), 4, 64); }), ErrorCode::InvalidArgument);
  EXPECT_EQ(code_of([&] { pack_affine(Tensor(o.w.bytes.data(), DType::u32, {0, 16}), sc, b, 4, 64); }),
            ErrorCode::InvalidArgument);  // empty

  HostTensor y(DType::f32, {2, 8}), y_bad(DType::f32, {2, 9}), x16(DType::bf16, {2, 128}), x_k(DType::f32, {2, 64});
  quantized_matmul(o.x.view(), p, y.view());  // valid
  EXPECT_EQ(code_of([&] { quantized_matmul(o.x.view(), p, y_bad.view()); }), ErrorCode::InvalidArgument);
  EXPECT_EQ(code_of([&] { quantized_matmul(x16.view(), p, y.view()); }), ErrorCode::Unsupported);  // f32 x only
  EXPECT_EQ(code_of([&] { quantized_matmul(x_k.view(), p, y.view()); }), ErrorCode::InvalidArgument);  // K
  EXPECT_EQ(code_of([&] { quantized_matmul(o.x.view(), PackedAffine{}, y.view()); }), ErrorCode::InvalidArgument);
  PackedAffine lying = pack_affine(w, sc, b, 4, 64);
  lying.n = 9;  // bytes no longer match the shape
  EXPECT_EQ(code_of([&] { quantized_matmul(o.x.view(), lying, y.view()); }), ErrorCode::InvalidArgument);
  lying.n = 8, lying.group_size = 32;  // the record shape depends on the group size
  EXPECT_EQ(code_of([&] { quantized_matmul(o.x.view(), lying, y.view()); }), ErrorCode::InvalidArgument);

  Operands oe(2, 8, 128, 8, 32, 3);
  const PackedAffine pe = pack_affine(oe.w.view(), oe.s.view(), oe.b.view(), 8, 32);
  EXPECT_TRUE(pe.routed);
  EXPECT_EQ(pe.n_experts, 3);
  EXPECT_EQ(code_of([&] { quantized_matmul(oe.x.view(), pe, y.view()); }), ErrorCode::InvalidArgument);  // experts
  std::vector<uint32_t> idv = {0, 2, 1, 5};  // 5: out of range
  HostTensor ids(DType::u32, {2, 2}), ye(DType::f32, {2, 2, 8});
  std::memcpy(ids.bytes.data(), idv.data(), 16);
  EXPECT_EQ(code_of([&] { quantized_matmul_id(oe.x.view(), pe, ids.view(), ye.view()); }), ErrorCode::InvalidArgument);
  idv[3] = 1;
  std::memcpy(ids.bytes.data(), idv.data(), 16);
  quantized_matmul_id(oe.x.view(), pe, ids.view(), ye.view());  // valid
  HostTensor ye_bad(DType::f32, {2, 3, 8});
  EXPECT_EQ(code_of([&] { quantized_matmul_id(oe.x.view(), pe, ids.view(), ye_bad.view()); }), ErrorCode::InvalidArgument);
}

TEST(AffineErrors, QuantizedMatmulRejectsBadArguments) {
  Operands o(2, 8, 128, 4, 64);
  HostTensor y(DType::f32, {2, 8});
  auto qm = [&](const Tensor& x, const Tensor& w, const Tensor& s, const Tensor& b, const Tensor& yy, int bits, int gs) {
    quantized_matmul(x, w, s, b, yy, bits, gs);
  };
  Tensor x = o.x.view(), w = o.w.view(), s = o.s.view(), b = o.b.view(), yv = y.view();
  qm(x, w, s, b, yv, 4, 64);  // valid
  EXPECT_EQ(code_of([&] { qm(x, w, s, b, yv, 5, 64); }), ErrorCode::Unsupported);   // bits
  EXPECT_EQ(code_of([&] { qm(x, w, s, b, yv, 2, 64); }), ErrorCode::Unsupported);
  EXPECT_EQ(code_of([&] { qm(x, w, s, b, yv, 4, 0); }), ErrorCode::InvalidArgument);  // gs == 0
  EXPECT_EQ(code_of([&] { qm(x, w, s, b, yv, 4, -64); }), ErrorCode::InvalidArgument);
  EXPECT_EQ(code_of([&] { qm(x, w, s, b, yv, 4, 16); }), ErrorCode::Unsupported);   // gs not in {32,64,128}
  EXPECT_EQ(code_of([&] { qm(x, w, s, b, yv, 4, 256); }), ErrorCode::Unsupported);
  // K % gs (spec reject cases): K = 96 with gs 64, K = 64 and 320 with gs 128.
  Operands k96(2, 8, 96, 4, 32), k64(2, 8, 64, 4, 32), k320(2, 8, 320, 4, 32);
  EXPECT_EQ(code_of([&] { qm(k96.x.view(), k96.w.view(), k96.s.view(), k96.b.view(), yv, 4, 64); }),
            ErrorCode::InvalidArgument);
  EXPECT_EQ(code_of([&] { qm(k64.x.view(), k64.w.view(), k64.s.view(), k64.b.view(), yv, 4, 128); }),
            ErrorCode::InvalidArgument);
  EXPECT_EQ(code_of([&] { qm(k320.x.view(), k320.w.view(), k320.s.view(), k320.b.view(), yv, 4, 128); }),
            ErrorCode::InvalidArgument);
  // Packed row bytes disagree with bits (a 4-bit weight passed as 8-bit).
  EXPECT_EQ(code_of([&] { qm(x, w, s, b, yv, 8, 64); }), ErrorCode::InvalidArgument);
  // Scales shape / dtypes.
  HostTensor s_bad(DType::bf16, {8, 3}), s_f16(DType::f16, {8, 2}), s_f64(DType::f64, {8, 2});
  EXPECT_EQ(code_of([&] { qm(x, w, s_bad.view(), b, yv, 4, 64); }), ErrorCode::InvalidArgument);
  EXPECT_EQ(code_of([&] { qm(x, w, s_f16.view(), b, yv, 4, 64); }), ErrorCode::InvalidArgument);  // s/b dtypes differ
  EXPECT_EQ(code_of([&] { qm(x, w, s_f64.view(), s_f64.view(), yv, 4, 64); }), ErrorCode::Unsupported);
  // Weight dtype and shape.
  EXPECT_EQ(code_of([&] { qm(x, Tensor(o.w.bytes.data(), DType::i32, {8, 16}), s, b, yv, 4, 64); }), ErrorCode::Unsupported);
  EXPECT_EQ(code_of([&] { qm(x, Tensor(o.w.bytes.data(), DType::u32, {8, 15}), s, b, yv, 4, 64); }),
            ErrorCode::InvalidArgument);
  EXPECT_EQ(code_of([&] { qm(x, Tensor(o.w.bytes.data(), DType::u8, {8, 60}), s, b, yv, 4, 64); }),
            ErrorCode::InvalidArgument);  // u8 rows of 60 bytes, 64 expected
  // Activations and outputs.
  std::vector<int32_t> xi(256);
  EXPECT_EQ(code_of([&] { qm(Tensor(xi.data(), DType::i32, {2, 128}), w, s, b, yv, 4, 64); }), ErrorCode::Unsupported);
  HostTensor y16(DType::f16, {2, 8}), ywrong(DType::f32, {2, 9});
  EXPECT_EQ(code_of([&] { qm(x, w, s, b, y16.view(), 4, 64); }), ErrorCode::Unsupported);  // f16 y with f32 x
  EXPECT_EQ(code_of([&] { qm(x, w, s, b, ywrong.view(), 4, 64); }), ErrorCode::InvalidArgument);
  EXPECT_EQ(code_of([&] { qm(Tensor(o.x.bytes.data(), DType::f32, {0, 128}), w, s, b, Tensor(y.bytes.data(), DType::f32, {0, 8}), 4, 64); }),
            ErrorCode::InvalidArgument);  // zero rows
  EXPECT_EQ(code_of([&] { qm(x, w, s, b, Tensor(o.x.bytes.data(), DType::f32, {2, 8}), 4, 64); }),
            ErrorCode::InvalidArgument);  // y overlaps x
  const int64_t shape[] = {2, 128}, strides[] = {1, 2};
  EXPECT_EQ(code_of([&] { qm(Tensor(o.x.bytes.data(), DType::f32, shape, strides), w, s, b, yv, 4, 64); }),
            ErrorCode::InvalidArgument);  // not contiguous
}

TEST(AffineErrors, U8RowsAreAccepted) {
  Operands o(2, 8, 128, 4, 64);
  HostTensor y1(DType::f32, {2, 8}), y2(DType::f32, {2, 8});
  quantized_matmul(o.x.view(), o.w.view(), o.s.view(), o.b.view(), y1.view(), 4, 64);
  quantized_matmul(o.x.view(), Tensor(o.w.bytes.data(), DType::u8, {8, 64}), o.s.view(), o.b.view(), y2.view(), 4, 64);
  EXPECT_EQ(y1.bytes, y2.bytes);
}

TEST(AffineErrors, QuantizedMatmulIdRejectsBadArguments) {
  const int64_t m = 3, n = 16, k = 64, e = 4, top = 2;
  Operands o(m, n, k, 4, 32, e);
  std::vector<uint32_t> ids = {0, 1, 2, 3, 3, 3};
  HostTensor y(DType::f32, {m, top, n});
  Tensor ti(ids.data(), DType::u32, {m, top});
  auto qid = [&](const Tensor& idt, const Tensor& yy) {
    quantized_matmul_id(o.x.view(), o.w.view(), o.s.view(), o.b.view(), idt, yy, 4, 32);
  };
  qid(ti, y.view());  // valid
  EXPECT_EQ(code_of([&] { qid(Tensor(ids.data(), DType::u32, {2, 3}), y.view()); }), ErrorCode::InvalidArgument);
  EXPECT_EQ(code_of([&] { qid(Tensor(ids.data(), DType::f32, {m, top}), y.view()); }), ErrorCode::Unsupported);
  EXPECT_EQ(code_of([&] { qid(Tensor(ids.data(), DType::u32, {m * top}), y.view()); }), ErrorCode::InvalidArgument);
  HostTensor y2(DType::f32, {m, n});
  EXPECT_EQ(code_of([&] { qid(ti, y2.view()); }), ErrorCode::InvalidArgument);  // y must be [M, top_k, N]
  // A 2-D weight is not a stack of experts; scales must agree on E.
  EXPECT_EQ(code_of([&] { quantized_matmul_id(o.x.view(), Tensor(o.w.bytes.data(), DType::u32, {e * n, k / 8}), o.s.view(),
                                              o.b.view(), ti, y.view(), 4, 32); }),
            ErrorCode::InvalidArgument);
  EXPECT_EQ(code_of([&] { quantized_matmul_id(o.x.view(), o.w.view(), Tensor(o.s.bytes.data(), DType::bf16, {e - 1, n, 2}),
                                              Tensor(o.b.bytes.data(), DType::bf16, {e - 1, n, 2}), ti, y.view(), 4, 32); }),
            ErrorCode::InvalidArgument);
  // Invalid ids: CPU throws the spec's message before writing anything.
  for (uint32_t bad : {uint32_t(e), 1000u}) {
    std::vector<uint32_t> ids2 = ids;
    ids2[4] = bad;
    HostTensor yp(DType::f32, {m, top, n});
    std::memset(yp.bytes.data(), 0xFF, yp.bytes.size());
    const std::string msg = message_of([&] { qid(Tensor(ids2.data(), DType::u32, {m, top}), yp.view()); });
    EXPECT_NE(msg.find("invalid expert id " + std::to_string(bad) + " at row 4 (n_experts=4)"), std::string::npos) << msg;
    for (auto byte : yp.bytes) ASSERT_EQ(byte, 0xFF);
  }
  std::vector<int32_t> neg = {0, 1, -1, 2, 0, 0};
  EXPECT_EQ(code_of([&] { qid(Tensor(neg.data(), DType::i32, {m, top}), y.view()); }), ErrorCode::InvalidArgument);
  // A bad error_flag tensor.
  std::vector<float> flag_f(1);
  EXPECT_EQ(code_of([&] { quantized_matmul_id(o.x.view(), o.w.view(), o.s.view(), o.b.view(), ti, y.view(), 4, 32,
                                              default_stream(), Tensor(flag_f.data(), DType::f32, {1})); }),
            ErrorCode::Unsupported);
}

TEST(AffineErrors, QmmAffineRejectsBadArguments) {
  const int64_t m = 2, n = 4, k = 64;
  std::vector<float> x(m * k, 0.5f), s(n * 2, 0.1f), b(n * 2, 0.f), y(m * n);
  std::vector<uint8_t> q(n * k, 3);
  auto run = [&](int gs, std::initializer_list<int64_t> sshape) {
    qmm_affine(Tensor(x.data(), DType::f32, {m, k}), Tensor(q.data(), DType::u8, {n, k}), Tensor(s.data(), DType::f32, sshape),
               Tensor(b.data(), DType::f32, sshape), Tensor(y.data(), DType::f32, {m, n}), gs);
  };
  run(32, {n, 2});
  EXPECT_FLOAT_EQ(y[0], 64 * 0.5f * 0.3f);
  for (int gs : {0, 3, 48, 2048}) EXPECT_EQ(code_of([&] { run(gs, {n, 2}); }), ErrorCode::InvalidArgument) << gs;
  EXPECT_EQ(code_of([&] { run(128, {n, 1}); }), ErrorCode::InvalidArgument);  // K % gs (64 % 128)
  std::vector<float> x96(m * 96, 1.f), y96(m * n);
  std::vector<uint8_t> q96(n * 96, 1);
  for (int gs : {64, 128})  // K = 96 with gs 64 / 128
    EXPECT_EQ(code_of([&] {
                qmm_affine(Tensor(x96.data(), DType::f32, {m, 96}), Tensor(q96.data(), DType::u8, {n, 96}),
                           Tensor(s.data(), DType::f32, {n, 1}), Tensor(b.data(), DType::f32, {n, 1}),
                           Tensor(y96.data(), DType::f32, {m, n}), gs);
              }),
              ErrorCode::InvalidArgument);
  EXPECT_EQ(code_of([&] { run(32, {n, 3}); }), ErrorCode::InvalidArgument);   // scales shape
  EXPECT_EQ(code_of([&] {
              qmm_affine(Tensor(x.data(), DType::f32, {m, k}), Tensor(q.data(), DType::u32, {n, k / 4}),
                         Tensor(s.data(), DType::f32, {n, 2}), Tensor(b.data(), DType::f32, {n, 2}),
                         Tensor(y.data(), DType::f32, {m, n}), 32);
            }),
            ErrorCode::Unsupported);
  EXPECT_EQ(code_of([&] {
              qmm_affine(Tensor(x.data(), DType::f32, {m, k}), Tensor(q.data(), DType::u8, {n, k}),
                         Tensor(s.data(), DType::bf16, {n, 2}), Tensor(b.data(), DType::bf16, {n, 2}),
                         Tensor(y.data(), DType::f32, {m, n}), 32);
            }),
            ErrorCode::Unsupported);
}

// Runs quantized_matmul_id and, per row, quantized_matmul with that row's activations on the
// selected expert slice. tol 0: they must agree bit for bit; else |a - b| <= tol * the spec's
// normaliser Σ|x|(|s q| + |b|) of that output (the two may take different mat-vec kernels).
void expect_id_equals_slices(Device d, int bits, int gs, int64_t m, int64_t top, int64_t e, int64_t n, int64_t k,
                             double tol = 0) {
  Operands o(m, n, k, bits, gs, e, 11);
  std::mt19937 rng(5);
  std::vector<uint32_t> ids(size_t(m * top));
  for (auto& v : ids) v = rng() % uint32_t(e);
  HostTensor hid(DType::u32, {m, top});
  std::memcpy(hid.bytes.data(), ids.data(), ids.size() * 4);
  auto dx = test::to_device(o.x, d), dw = test::to_device(o.w, d), ds = test::to_device(o.s, d), db = test::to_device(o.b, d);
  auto di = test::to_device(hid, d);
  auto y = test::poisoned(DType::f32, {m, top, n}, d);
  quantized_matmul_id(dx, dw, ds, db, di, y, bits, gs);
  HostTensor got = test::to_host(y);
  const int64_t wrow = n * k * bits / 32, srow = n * (k / gs);
  for (int64_t r = 0; r < m * top; ++r) {
    const int64_t ex = ids[size_t(r)];
    auto* xb = static_cast<char*>(dx.buffer.data()) + (r / top) * k * 4;
    Tensor xs(xb, DType::f32, {1, k}, d);
    Tensor wsl(static_cast<char*>(dw.buffer.data()) + ex * wrow * 4, DType::u32, {n, k * bits / 32}, d);
    Tensor ssl(static_cast<char*>(ds.buffer.data()) + ex * srow * 2, DType::bf16, {n, k / gs}, d);
    Tensor bsl(static_cast<char*>(db.buffer.data()) + ex * srow * 2, DType::bf16, {n, k / gs}, d);
    auto y1 = test::poisoned(DType::f32, {1, n}, d);
    quantized_matmul(xs, wsl, ssl, bsl, y1, bits, gs);
    HostTensor one = test::to_host(y1);
    if (tol == 0) {
      ASSERT_EQ(0, std::memcmp(one.bytes.data(), got.bytes.data() + r * n * 4, size_t(n) * 4)) << "row " << r;
      continue;
    }
    std::vector<double> xr(static_cast<size_t>(k)), sr(static_cast<size_t>(k / gs)), br(static_cast<size_t>(k / gs));
    for (int64_t i = 0; i < k; ++i) xr[size_t(i)] = o.x.get((r / top) * k + i);
    for (int64_t col = 0; col < n; ++col) {
      for (int64_t g = 0; g < k / gs; ++g) {
        sr[size_t(g)] = o.s.get((ex * n + col) * (k / gs) + g);
        br[size_t(g)] = o.b.get((ex * n + col) * (k / gs) + g);
      }
      const auto* wrow = o.w.bytes.data() + ((ex * n + col) * (k * bits / 32)) * 4;
      const double norm = ref::affine_dot(xr.data(), wrow, sr.data(), br.data(), k, bits, gs).norm;
      const double a = one.get(col), b = got.get(r * n + col);
      ASSERT_LE(std::fabs(a - b), tol * norm) << "row " << r << " col " << col << ": " << a << " vs " << b;
    }
  }
}

TEST(AffineCpu, IdRowsEqualTheSliceMatmul) { expect_id_equals_slices(Device::cpu(), 4, 64, 5, 3, 6, 24, 256); }

// ---- CUDA ------------------------------------------------------------------------------------------

#define REQUIRE_GPU() \
  if (!cuda_available()) GTEST_SKIP() << "no CUDA device here"

// Routed rows (up to 256: the raw ring mat-vec) and the slices' plain rows (the ring up to 8 rows,
// else matvec_rows.cu / matvec.cu) are each within 1e-5 of the reference, so within 2e-5 of each
// other.
TEST(AffineGpu, IdRowsAgreeWithTheSliceMatmulOnTheMatvecPath) {
  REQUIRE_GPU();
  expect_id_equals_slices(Device::cuda(0), 4, 64, 1, 8, 128, 768, 2048, 2e-5);   // direct items
  expect_id_equals_slices(Device::cuda(0), 4, 64, 6, 8, 128, 200, 1024, 2e-5);   // grouped items
  expect_id_equals_slices(Device::cuda(0), 8, 128, 9, 2, 8, 100, 512, 2e-5);     // 8-bit, grouped
  expect_id_equals_slices(Device::cuda(0), 6, 32, 5, 4, 16, 72, 96, 2e-5);       // 6-bit, 72-byte rows
}

// Dense M > 64 runs 128-row tiles, the routed op 64-row tiles: per-row results are identical.
// (Dense f32 rows past 8 normally repack and take the packed mat-mat: LMK_AFFINE_REPACK=0 keeps
// them on the tiled kernel.)
TEST(AffineGpu, TiledPathIsTileIndependent) {
  REQUIRE_GPU();
  setenv("LMK_AFFINE_REPACK", "0", 1);
  const Device d = Device::cuda(0);
  const int64_t m = 300, n = 136, k = 1024;  // past the 256 routed rows of the raw ring
  Operands o(m, n, k, 4, 64, 1, 21);
  std::vector<uint32_t> zeros(m, 0);
  HostTensor hid(DType::u32, {m, 1});
  std::memcpy(hid.bytes.data(), zeros.data(), zeros.size() * 4);
  auto dx = test::to_device(o.x, d), dw = test::to_device(o.w, d), ds = test::to_device(o.s, d), db = test::to_device(o.b, d);
  auto di = test::to_device(hid, d);
  auto y1 = test::poisoned(DType::f32, {m, n}, d), y2 = test::poisoned(DType::f32, {m, 1, n}, d);
  auto w2 = Tensor(dw.buffer.data(), DType::u32, {n, k / 8}, d);
  auto s2 = Tensor(ds.buffer.data(), DType::bf16, {n, k / 64}, d), b2 = Tensor(db.buffer.data(), DType::bf16, {n, k / 64}, d);
  quantized_matmul(dx, w2, s2, b2, y1, 4, 64);
  quantized_matmul_id(dx, dw, ds, db, di, y2, 4, 64);
  unsetenv("LMK_AFFINE_REPACK");
  EXPECT_EQ(test::to_host(y1).bytes, test::to_host(y2).bytes);
}

TEST(AffineGpu, InvalidIdsZeroRowsAndRaiseTheFlag) {
  REQUIRE_GPU();
  const Device d = Device::cuda(0);
  for (int64_t m : {1, 3, 40}) {  // direct items (<= 8 rows), grouped mat-vec, grouped tiled
    const int64_t top = 4, e = 8, n = 72, k = 256;
    Operands o(m, n, k, 4, 64, e, 3);
    std::vector<uint32_t> ids(size_t(m * top));
    for (size_t i = 0; i < ids.size(); ++i) ids[i] = uint32_t(i % e);
    ids[1] = 8;        // == E
    ids.back() = ~0u;  // huge
    HostTensor hid(DType::u32, {m, top});
    std::memcpy(hid.bytes.data(), ids.data(), ids.size() * 4);
    HostTensor zero_flag(DType::u32, {1});
    auto dx = test::to_device(o.x, d), dw = test::to_device(o.w, d), ds = test::to_device(o.s, d), db = test::to_device(o.b, d);
    auto di = test::to_device(hid, d), flag = test::to_device(zero_flag, d);
    auto y = test::poisoned(DType::f32, {m, top, n}, d);
    quantized_matmul_id(dx, dw, ds, db, di, y, 4, 64, default_stream(), flag);
    HostTensor got = test::to_host(y), f = test::to_host(flag);
    EXPECT_EQ(f.as<uint32_t>()[0], 1u) << "m " << m;
    // Valid rows: the CPU result on the same ids with the bad ones replaced; bad rows: zeros.
    std::vector<uint32_t> fixed = ids;
    fixed[1] = 0;
    fixed.back() = 0;
    HostTensor yc(DType::f32, {m, top, n});
    quantized_matmul_id(o.x.view(), o.w.view(), o.s.view(), o.b.view(), Tensor(fixed.data(), DType::u32, {m, top}),
                        yc.view(), 4, 64);
    for (int64_t r = 0; r < m * top; ++r) {
      const bool bad = r == 1 || r == m * top - 1;
      for (int64_t j = 0; j < n; ++j) {
        const float g = got.as<float>()[r * n + j], c = yc.as<float>()[r * n + j];
        if (bad) ASSERT_EQ(g, 0.0f) << "row " << r;
        else ASSERT_NEAR(g, c, 2e-2 * (std::fabs(c) + 10.0)) << "row " << r << " col " << j;
      }
    }
    // Debug mode: the call synchronizes and raises the CPU's error.
    setenv("LMK_DEBUG_CHECKS", "1", 1);
    const std::string msg = message_of([&] { quantized_matmul_id(dx, dw, ds, db, di, y, 4, 64); });
    unsetenv("LMK_DEBUG_CHECKS");
    EXPECT_NE(msg.find("invalid expert id 8 at row 1 (n_experts=8)"), std::string::npos) << msg;
  }
}

TEST(AffineGpu, RoutedResultsAreDeterministicAndCapturable) {
  REQUIRE_GPU();
  const Device d = Device::cuda(0);
  const int64_t m = 32, top = 8, e = 128, n = 768, k = 2048;
  Operands o(m, n, k, 4, 64, e, 9);
  std::mt19937 rng(2);
  std::vector<uint32_t> ids(size_t(m * top));
  for (auto& v : ids) v = rng() % uint32_t(e);
  HostTensor hid(DType::u32, {m, top});
  std::memcpy(hid.bytes.data(), ids.data(), ids.size() * 4);
  auto dx = test::to_device(o.x, d), dw = test::to_device(o.w, d), ds = test::to_device(o.s, d), db = test::to_device(o.b, d);
  auto di = test::to_device(hid, d);
  auto y1 = test::poisoned(DType::f32, {m, top, n}, d), y2 = test::poisoned(DType::f32, {m, top, n}, d);
  quantized_matmul_id(dx, dw, ds, db, di, y1, 4, 64);
  HostTensor first = test::to_host(y1);
  quantized_matmul_id(dx, dw, ds, db, di, y1, 4, 64);
  EXPECT_EQ(first.bytes, test::to_host(y1).bytes);
  // Captured into a graph (stream-ordered scratch becomes graph memory nodes), replayed twice.
  Stream s = Stream::create(d);
  Graph g;
  g.begin_capture(s);
  quantized_matmul_id(dx, dw, ds, db, di, y2, 4, 64, s);
  g.end_capture();
  g.replay(s);
  g.replay(s);
  s.synchronize();
  EXPECT_EQ(first.bytes, test::to_host(y2).bytes);
}

// Dense rows past 8 (f32 x and y, 16-bit scales) repack per call into stream-ordered scratch and
// run the packed mat-mat: the same bits on every call and in a replayed graph, once a call
// outside the capture has sized the stream's matmul workspace.
TEST(AffineGpu, DenseRepackIsDeterministicAndCapturable) {
  REQUIRE_GPU();
  const Device d = Device::cuda(0);
  const int64_t m = 24, n = 200, k = 1024;
  Operands o(m, n, k, 4, 64, 0, 13);
  auto dx = test::to_device(o.x, d), dw = test::to_device(o.w, d), ds = test::to_device(o.s, d), db = test::to_device(o.b, d);
  Stream s = Stream::create(d);
  auto y1 = test::poisoned(DType::f32, {m, n}, d), y2 = test::poisoned(DType::f32, {m, n}, d);
  quantized_matmul(dx, dw, ds, db, y1, 4, 64, s);
  s.synchronize();
  HostTensor first = test::to_host(y1);
  quantized_matmul(dx, dw, ds, db, y1, 4, 64, s);
  s.synchronize();
  EXPECT_EQ(first.bytes, test::to_host(y1).bytes);
  Graph g;
  g.begin_capture(s);
  quantized_matmul(dx, dw, ds, db, y2, 4, 64, s);
  g.end_capture();
  g.replay(s);
  g.replay(s);
  s.synchronize();
  EXPECT_EQ(first.bytes, test::to_host(y2).bytes);
}

// pack_affine on the GPU writes the same bytes as on the CPU: every bit width and group size,
// bf16 and f16 scales, N and K tails (rows past N and chunks past K are padding), two experts.
TEST(AffineGpu, PackMatchesTheCpuPack) {
  REQUIRE_GPU();
  const Device d = Device::cuda(0);
  for (int bits : {4, 6, 8}) {
    for (int gs : {32, 64, 128}) {
      for (DType st : {DType::bf16, DType::f16}) {
        const int64_t e = 2, n = 40, k = gs == 128 ? 384 : 320;
        Operands o(1, n, k, bits, gs, e, 17 + uint64_t(bits) + uint64_t(gs));
        HostTensor s16 = o.s, b16 = o.b;
        s16.dtype = b16.dtype = st;  // the same 16-bit patterns read as f16
        const PackedAffine cpu = pack_affine(o.w.view(), s16.view(), b16.view(), bits, gs);
        auto dw = test::to_device(o.w, d), ds = test::to_device(s16, d), db = test::to_device(b16, d);
        const PackedAffine gpu = pack_affine(dw, ds, db, bits, gs);
        ASSERT_EQ(cpu.bytes.bytes(), gpu.bytes.bytes());
        std::vector<unsigned char> from_gpu(size_t(gpu.bytes.bytes()));
        copy_bytes(from_gpu.data(), Device::cpu(), gpu.bytes.data(), d, gpu.bytes.bytes());
        EXPECT_EQ(0, std::memcmp(from_gpu.data(), cpu.bytes.data(), from_gpu.size()))
            << bits << "-bit gs " << gs << " " << name(st);
      }
    }
  }
}

// Packed weights (pack_affine): every path of quantized_matmul / quantized_matmul_id gives the same
// bits on every call and inside a replayed CUDA graph (after one call outside it has sized the
// workspace). Routed rows: single rows (one token) and the per-expert mat-mat (64 tokens).
TEST(AffineGpu, PackedResultsAreDeterministicAndCapturable) {
  REQUIRE_GPU();
  const Device d = Device::cuda(0);
  const int64_t top = 8, e = 64, n = 200, k = 1024;
  Operands o(64, n, k, 4, 64, e, 11);
  auto dx = test::to_device(o.x, d), dw = test::to_device(o.w, d), ds = test::to_device(o.s, d), db = test::to_device(o.b, d);
  Stream s = Stream::create(d);
  const PackedAffine pw = pack_affine(dw, ds, db, 4, 64, s);
  std::mt19937 rng(3);
  for (int64_t m : {1, 64}) {
    std::vector<uint32_t> ids(size_t(m * top));
    for (auto& v : ids) v = rng() % uint32_t(e);
    HostTensor hid(DType::u32, {m, top});
    std::memcpy(hid.bytes.data(), ids.data(), ids.size() * 4);
    auto di = test::to_device(hid, d);
    const Tensor x(dx.tensor.data(), DType::f32, {m, k}, d);  // the first m rows
    auto y1 = test::poisoned(DType::f32, {m, top, n}, d), y2 = test::poisoned(DType::f32, {m, top, n}, d);
    quantized_matmul_id(x, pw, di, y1, s);
    s.synchronize();
    HostTensor first = test::to_host(y1);
    quantized_matmul_id(x, pw, di, y1, s);
    s.synchronize();
    EXPECT_EQ(first.bytes, test::to_host(y1).bytes) << m << " tokens";
    Graph g;
    g.begin_capture(s);
    quantized_matmul_id(x, pw, di, y2, s);
    g.end_capture();
    g.replay(s);
    g.replay(s);
    s.synchronize();
    EXPECT_EQ(first.bytes, test::to_host(y2).bytes) << m << " tokens, graph";
  }
}

}  // namespace
}  // namespace lmk
