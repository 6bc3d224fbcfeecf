// Checks for the affine family (matmul-moe-sampling.md §1.4, §2; quant-formats.md §5).
//
// Tolerance, per output (spec §0): |y - y_ref| <= tol * Σ_k |x_k| (|s q_k| + |b|) + u_y * |y_ref|,
// u_y = 2^-8 (bf16 y), 2^-11 (f16 y), 0 (f32 y), with tol
//   1e-6   CPU (f32 dequant, f64 sums)
//   1e-5   CUDA f32-accurate paths: mat-vec (<= 8 rows; routed: <= 4 rows per expert on
//          average), the f32 fallback (unaligned views, any size) and qmm_affine
//   1.6e-2 CUDA tiled path (bf16 tensor-core operands; spec's bf16 row)
#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <sstream>
#include <tuple>

#include "check/check.h"
#include "lmk/affine.h"
#include "ref/affine.h"

namespace lmk::test {
namespace {

enum class Routing { random, distinct, skewed, one_expert, every_expert, repeated };

struct Spec {
  std::string op = "quantized_matmul";
  int bits = 4;             // 0: qmm_affine's unpacked u8 codes
  int gs = 64;
  int64_t M = 1, N = 8, K = 64;
  int64_t E = 0, top_k = 1;  // routed when E > 0
  DType xt = DType::f32, st = DType::bf16, yt = DType::f32;
  bool w_u8 = false;         // packed rows as u8 instead of u32 words
  bool ids_i32 = false;
  Routing routing = Routing::distinct;
  bool unaligned = false;    // x and w views 4 bytes past a 16-byte boundary
  bool packed = false;       // pack_affine, then the PackedAffine overloads (f32 x and y)

  bool routed() const { return E > 0; }
  int64_t rows() const { return M * top_k; }
  std::string name() const {
    std::ostringstream os;
    if (bits) os << bits << "bit";
    else os << "u8";
    os << " gs" << gs << " M" << M << " N" << N << " K" << K;
    if (routed()) os << " E" << E << " top" << top_k << " r" << int(routing) << (ids_i32 ? " i32" : "");
    os << " x" << lmk::name(xt) << " s" << lmk::name(st) << " y" << lmk::name(yt);
    if (w_u8) os << " w-u8";
    if (unaligned) os << " unaligned";
    if (packed) os << " packed";
    return os.str();
  }
};

// Device copy whose data starts `offset` bytes past the allocation (16-byte aligned + offset).
DeviceTensor to_device_at(const HostTensor& h, Device d, int64_t offset) {
  if (offset == 0) return to_device(h, d);
  DeviceTensor dt{Buffer(int64_t(h.bytes.size()) + offset, d), {}};
  auto* p = static_cast<unsigned char*>(dt.buffer.data()) + offset;
  dt.tensor = Tensor(p, h.dtype, h.shape, d);
  copy_bytes(p, d, h.bytes.data(), Device::cpu(), int64_t(h.bytes.size()));
  return dt;
}

std::vector<uint32_t> make_ids(const Spec& s, std::mt19937_64& rng) {
  std::vector<uint32_t> ids(size_t(s.rows()));
  std::uniform_int_distribution<uint32_t> pick(0, uint32_t(s.E - 1));
  for (int64_t m = 0; m < s.M; ++m) {
    std::vector<uint32_t> used;
    const uint32_t same = pick(rng);
    for (int64_t k = 0; k < s.top_k; ++k) {
      const int64_t r = m * s.top_k + k;
      uint32_t e = pick(rng);
      switch (s.routing) {
        case Routing::random: break;
        case Routing::distinct:
          while (int64_t(used.size()) < s.E && std::find(used.begin(), used.end(), e) != used.end()) e = pick(rng);
          used.push_back(e);
          break;
        case Routing::skewed: e = (rng() % 10 < 6) ? 0 : e; break;
        case Routing::one_expert: e = uint32_t(s.E - 1); break;
        case Routing::every_expert: e = uint32_t(r % s.E); break;
        case Routing::repeated: e = same; break;
      }
      ids[size_t(r)] = e;
    }
  }
  return ids;
}

// Whether CUDA takes the bf16 tiled path for this problem (see lmk/affine.h).
bool uses_bf16_path(const Spec& s, Device d) {
  if (!d.is_cuda() || s.bits == 0 || s.unaligned) return false;
  return s.routed() ? s.rows() > 4 * s.E : s.M > 8;
}

// Packed weights on CUDA: the wgmma mat-mat past 8 rows, and for routed rows the rule of
// quantized_matmul_id_ggml on packed weights (single rows up to 64 rows unless experts average
// more than 16, else per-expert mat-mat once they average more than 1.5).
bool uses_packed_mm(const Spec& s, Device d) {
  if (!d.is_cuda()) return false;
  if (!s.routed()) return s.M > 8;
  const double avg = double(s.rows()) / double(std::min(s.E, s.rows()));
  return s.rows() <= 64 ? avg > 16.0 : avg > 1.5;
}

double tolerance(const Spec& s, Device d) {
  if (d.is_cpu()) return 1e-6;
  if (s.packed) return uses_packed_mm(s, d) ? 1.6e-2 : 1e-5;
  return uses_bf16_path(s, d) ? 1.6e-2 : 1e-5;
}

CompareResult compare_normalised(const HostTensor& y, const std::vector<ref::AffineOut>& want, double tol) {
  CompareResult r;
  const double uy = y.dtype == DType::bf16 ? std::ldexp(1.0, -8) : y.dtype == DType::f16 ? std::ldexp(1.0, -11) : 0.0;
  double num = 0, den = 0, worst = -1;
  for (int64_t i = 0; i < y.numel(); ++i) {
    const double o = y.get(i), f = want[size_t(i)].y;
    const double allowed = tol * want[size_t(i)].norm + uy * std::fabs(f) + 1e-30;
    const double err = std::fabs(o - f);
    const double ratio = std::isfinite(o) ? err / allowed : INFINITY;
    if (std::isfinite(o)) {
      num += err * err;
      den += f * f;
      r.max_abs = std::max(r.max_abs, err);
    }
    if (!(ratio <= 1.0)) r.failures++;
    if (!(ratio <= worst)) {
      worst = ratio;
      r.worst = i;
      r.worst_out = o;
      r.worst_ref = f;
    }
  }
  r.rel_l2 = den > 0 ? std::sqrt(num / den) : std::sqrt(num);
  if (r.failures) {
    r.ok = false;
    std::ostringstream msg;
    msg << r.failures << " of " << y.numel() << " outputs outside tol " << tol << " x Σ|x|(|sq|+|b|); worst at "
        << r.worst << ": got " << r.worst_out << " want " << r.worst_ref << " (" << worst
        << "x the allowance); seed " << base_seed();
    r.message = msg.str();
  }
  return r;
}

CompareResult run_case(const Spec& s, Device d) {
  std::mt19937_64 rng(case_seed("affine " + s.op + s.name()));
  const int64_t experts = s.routed() ? s.E : 1;
  const int64_t G = s.K / s.gs;
  const int64_t rb = s.bits == 0 ? s.K : ref::affine_row_bytes(s.bits, s.K);

  // Packed weights: random bytes (every code value equally likely).
  std::vector<int64_t> wshape = s.routed() ? std::vector<int64_t>{experts, s.N} : std::vector<int64_t>{s.N};
  HostTensor wbytes = random_uniform(DType::u8, {experts * s.N * rb}, rng(), 0, 256);
  HostTensor w;
  if (s.w_u8 || s.bits == 0 || rb % 4 != 0) {
    wshape.push_back(rb);
    w = HostTensor(DType::u8, wshape);
  } else {
    wshape.push_back(rb / 4);
    w = HostTensor(DType::u32, wshape);
  }
  std::memcpy(w.bytes.data(), wbytes.bytes.data(), w.bytes.size());

  std::vector<int64_t> sshape = s.routed() ? std::vector<int64_t>{experts, s.N, G} : std::vector<int64_t>{s.N, G};
  HostTensor sc = random_uniform(s.st, sshape, rng(), 0.002, 0.05);
  HostTensor bi = random_uniform(s.st, sshape, rng(), -0.4, 0.4);
  HostTensor x = random_normal(s.xt, {s.M, s.K}, rng());
  std::vector<uint32_t> idv = s.routed() ? make_ids(s, rng) : std::vector<uint32_t>{};

  const int64_t off = s.unaligned ? 4 : 0;
  auto dx = to_device_at(x, d, off), dw = to_device_at(w, d, off);
  auto ds = to_device(sc, d), db = to_device(bi, d);
  std::vector<int64_t> yshape = s.routed() ? std::vector<int64_t>{s.M, s.top_k, s.N} : std::vector<int64_t>{s.M, s.N};
  auto out = poisoned(s.yt, yshape, d);

  if (s.packed) {
    const PackedAffine pw = lmk::pack_affine(dw, ds, db, s.bits, s.gs);
    if (!s.routed()) {
      lmk::quantized_matmul(dx, pw, out);
    } else {
      HostTensor ids(s.ids_i32 ? DType::i32 : DType::u32, {s.M, s.top_k});
      std::memcpy(ids.bytes.data(), idv.data(), idv.size() * 4);
      auto di = to_device(ids, d);
      lmk::quantized_matmul_id(dx, pw, di, out);
    }
  } else if (s.op == "qmm_affine") {
    lmk::qmm_affine(dx, dw, ds, db, out, s.gs);
  } else if (!s.routed()) {
    lmk::quantized_matmul(dx, dw, ds, db, out, s.bits, s.gs);
  } else {
    HostTensor ids(s.ids_i32 ? DType::i32 : DType::u32, {s.M, s.top_k});
    std::memcpy(ids.bytes.data(), idv.data(), idv.size() * 4);
    auto di = to_device(ids, d);
    lmk::quantized_matmul_id(dx, dw, ds, db, di, out, s.bits, s.gs);
  }
  HostTensor y = to_host(out);

  const std::vector<double> xd = x.to_double(), sd = sc.to_double(), bd = bi.to_double();
  std::vector<ref::AffineOut> want(size_t(s.rows() * s.N));
  for (int64_t r = 0; r < s.rows(); ++r) {
    const int64_t e = s.routed() ? int64_t(idv[size_t(r)]) : 0;
    const double* xr = xd.data() + (r / s.top_k) * s.K;
    for (int64_t n = 0; n < s.N; ++n) {
      const int64_t wr = e * s.N + n;
      want[size_t(r * s.N + n)] = ref::affine_dot(xr, wbytes.bytes.data() + wr * rb, sd.data() + wr * G,
                                                  bd.data() + wr * G, s.K, s.bits, s.gs);
    }
  }
  return compare_normalised(y, want, tolerance(s, d));
}

void add(std::vector<CheckCase>& cases, const Spec& s, bool quick = false) {
  cases.push_back({s.op, s.name(), quick, [s](Device d) { return run_case(s, d); }});
}

}  // namespace

LMK_CHECKS(affine) {
  // ---- quantized_matmul: every bits x group size over mat-vec and tiled shapes ----
  for (int bits : {4, 6, 8}) {
    for (int gs : {32, 64, 128}) {
      Spec s;
      s.bits = bits;
      s.gs = gs;
      s.M = 1, s.N = 12, s.K = gs == 128 ? 384 : 320;
      add(cases, s, gs == 64);
      s.M = 3, s.N = 13, s.K = 4096, s.st = DType::f16;
      add(cases, s);
      s.M = 8, s.N = 264, s.K = 1024, s.st = DType::bf16, s.w_u8 = true;
      add(cases, s);
      s.M = 17, s.N = 40, s.K = 2816, s.st = DType::f32, s.w_u8 = false;
      add(cases, s, gs == 64);
    }
  }
  {
    Spec s;  // 6-bit, odd N, 72-byte rows (triplets straddle words)
    s.bits = 6, s.gs = 32, s.N = 7, s.K = 96;
    for (int64_t m : {1, 5, 12}) {
      s.M = m;
      add(cases, s);
    }
  }
  for (int bits : {4, 8}) {
    Spec s;
    s.bits = bits;
    s.gs = 64;
    for (int64_t m : {1, 2, 4, 5, 7, 8}) {  // mat-vec: every item width, N not a multiple of 16
      s.M = m, s.N = 300, s.K = 4096;
      add(cases, s, m == 4);
    }
    s.M = 2, s.N = 24, s.K = 20480;  // several shared-memory windows per cluster rank
    add(cases, s);
    s.M = 1, s.N = 2816, s.K = 4096, s.st = DType::f32;
    add(cases, s, bits == 4);
    s.M = 128, s.N = 72, s.K = 2816, s.st = DType::bf16;  // 128-row tiles
    add(cases, s);
    s.M = 64, s.N = 130, s.K = 512;  // 64-row tiles, N tail
    add(cases, s);
  }
  for (int bits : {4, 8}) {  // MLX rows read as stored by the ring mat-vec (K % 256 == 0, <= 4 rows)
    for (int gs : {32, 128}) {
      Spec s;
      s.bits = bits, s.gs = gs, s.N = 40, s.K = 256;  // one chunk, N tail
      s.M = 1;
      add(cases, s);
      s.M = 4, s.N = 17, s.K = 768, s.st = DType::f16;
      add(cases, s);
    }
  }
  {
    Spec s;  // 16-bit activations and outputs
    s.bits = 4, s.gs = 64, s.N = 136, s.K = 512;
    for (auto [xt, yt] : {std::pair{DType::bf16, DType::bf16}, std::pair{DType::f16, DType::f32}, std::pair{DType::f16, DType::f16}}) {
      s.xt = xt, s.yt = yt;
      for (int64_t m : {4, 100}) {
        s.M = m;
        add(cases, s, m == 4 && xt == DType::bf16);
      }
    }
    s.bits = 8, s.gs = 32, s.xt = DType::bf16, s.yt = DType::bf16, s.st = DType::f16;
    for (int64_t m : {1, 33}) {
      s.M = m;
      add(cases, s);
    }
  }
  {
    Spec s;  // unaligned views take the f32 fallback
    s.bits = 4, s.gs = 64, s.N = 40, s.K = 512, s.w_u8 = true, s.unaligned = true;
    for (int64_t m : {3, 20}) {
      s.M = m;
      add(cases, s);
    }
  }

  // ---- quantized_matmul_id ----
  {
    Spec s;
    s.op = "quantized_matmul_id";
    s.bits = 4, s.gs = 64, s.N = 40, s.K = 256;
    s.E = 8, s.top_k = 2, s.M = 1;  // 2 rows: one item per row
    add(cases, s, true);
    s.M = 4, s.routing = Routing::repeated;  // 8 rows, the same expert twice per token
    add(cases, s);
    s.E = 128, s.top_k = 8, s.M = 3, s.N = 72, s.K = 512, s.routing = Routing::distinct;  // grouped mat-vec
    add(cases, s, true);
    s.M = 40, s.N = 64, s.K = 256, s.routing = Routing::skewed;  // uneven: ~60% on expert 0
    add(cases, s);
    s.E = 8, s.top_k = 8, s.M = 20, s.routing = Routing::one_expert;  // tiled, one expert gets all 160 rows
    add(cases, s, true);
    s.E = 1, s.top_k = 1, s.M = 9, s.routing = Routing::random;
    add(cases, s);
    s.E = 128, s.top_k = 1, s.M = 300, s.N = 48, s.routing = Routing::random, s.ids_i32 = true;  // down-proj style
    add(cases, s);
    s.E = 256, s.top_k = 8, s.M = 16, s.N = 24, s.K = 128, s.ids_i32 = false, s.routing = Routing::distinct;
    add(cases, s);
    s.bits = 8, s.gs = 32, s.E = 60, s.top_k = 4, s.M = 33, s.N = 40, s.K = 256, s.routing = Routing::every_expert;
    add(cases, s);
    s.M = 8, s.top_k = 2, s.E = 8, s.st = DType::f16, s.routing = Routing::random;  // 16 rows <= 4E: grouped mv
    add(cases, s);
    s.bits = 6, s.gs = 64, s.st = DType::bf16, s.M = 8, s.top_k = 2;  // 6-bit grouped mat-vec
    add(cases, s);
    s.M = 40;  // 6-bit tiled
    add(cases, s);
    s.bits = 4, s.gs = 128, s.M = 24, s.top_k = 4, s.E = 16, s.xt = DType::bf16, s.yt = DType::bf16;
    add(cases, s);
    s.M = 2, s.top_k = 3;  // 6 rows, direct, bf16 io
    add(cases, s);
  }
  for (int bits : {4, 8}) {  // 64 routed rows of 49 weight tiles: the raw ring's warp walk, N tail
    Spec s;
    s.op = "quantized_matmul_id";
    s.bits = bits, s.gs = bits == 4 ? 64 : 128, s.st = bits == 4 ? DType::bf16 : DType::f16;
    s.E = 16, s.top_k = 8, s.M = 8, s.N = 776, s.K = 256, s.routing = Routing::random;
    add(cases, s);
  }

  // ---- packed weights (pack_affine): mat-vec widths, K-slices, N / K tails, mat-mat, routed ----
  for (int bits : {4, 6, 8}) {
    for (int gs : {32, 64, 128}) {
      Spec s;
      s.op = "quantized_matmul_packed";
      s.packed = true;
      s.bits = bits;
      s.gs = gs;
      s.st = gs == 32 ? DType::f16 : DType::bf16;
      for (auto [m, n, k] : {std::tuple{1, 33, 384}, std::tuple{2, 47, 4096}, std::tuple{3, 20, 640},
                             std::tuple{5, 16, 1152}, std::tuple{8, 65, 4352}, std::tuple{1, 300, 23040},
                             std::tuple{16, 40, 768}, std::tuple{40, 33, 640}, std::tuple{130, 70, 1024}}) {
        if (k % gs != 0) continue;
        s.M = m, s.N = n, s.K = k;
        add(cases, s, gs == 64 && (m == 1 || m == 40) && n == 33);
      }
      s.st = gs == 32 ? DType::bf16 : DType::f16;  // the other scale dtype
      s.M = 4, s.N = 24, s.K = 512;
      add(cases, s);
    }
  }
  {
    Spec s;  // routed rows on packed experts: single rows (CTA walk, warp walk), 8-row lists, mat-mat
    s.op = "quantized_matmul_packed";
    s.packed = true;
    s.bits = 4, s.gs = 64, s.N = 40, s.K = 512;
    s.E = 16, s.top_k = 4, s.M = 1;
    add(cases, s, true);
    s.E = 128, s.top_k = 8, s.M = 8, s.N = 768, s.K = 256;  // 64 single rows x 48 tiles: the warp walk
    add(cases, s);
    s.M = 33, s.N = 72, s.routing = Routing::random, s.ids_i32 = true;  // 264 rows, ~2 per expert: mat-mat
    add(cases, s, true);
    s.E = 256, s.top_k = 1, s.M = 300, s.N = 24, s.ids_i32 = false;  // 300 rows, ~1.2 per expert: 8-row lists
    add(cases, s);
    s.bits = 8, s.st = DType::f16, s.gs = 128, s.E = 8, s.top_k = 2, s.M = 3, s.N = 33, s.K = 768;
    s.routing = Routing::distinct;
    add(cases, s);
    s.M = 100, s.routing = Routing::every_expert;  // 200 rows over 8 experts: mat-mat
    add(cases, s);
    s.bits = 6, s.gs = 64, s.st = DType::bf16, s.E = 32, s.top_k = 4, s.M = 2, s.routing = Routing::distinct;
    add(cases, s);  // 6-bit single rows
    s.M = 40, s.routing = Routing::random;  // 160 rows, 5 per expert: mat-mat
    add(cases, s);
  }

  // ---- qmm_affine (spec §1.4 shapes; f32) ----
  for (auto [m, n, k, gs] : {std::tuple{1, 13, 64, 32}, std::tuple{7, 16, 96, 32}, std::tuple{16, 13, 4096, 64},
                             std::tuple{33, 16, 4096, 128}, std::tuple{256, 13, 96, 32}, std::tuple{1, 4096, 64, 64},
                             std::tuple{64, 256, 1024, 128}, std::tuple{3, 5, 2048, 1024}, std::tuple{4, 7, 64, 2},
                             std::tuple{5, 9, 40, 8}}) {
    Spec s;
    s.op = "qmm_affine";
    s.bits = 0;
    s.gs = gs;
    s.M = m, s.N = n, s.K = k;
    s.st = DType::f32;
    add(cases, s, m == 7 || m == 33);
  }
}

}  // namespace lmk::test
