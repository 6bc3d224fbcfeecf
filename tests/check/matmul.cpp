// Checks for the matmul family (matmul-moe-sampling.md §3, §5) against fp64 references.
//
// Error metric (spec §0): per output e = |y - y_ref| / (Σ_k |x_k|·|w_k| + 1e-30), with
// |w_k| := |scale·q_k| + |offset| for formats with a min term; every output must have
// e <= tol (and f16/bf16 outputs may add 2^-11 / 2^-8 of |y_ref| for their rounding). Outputs
// start poisoned with NaN, so an unwritten element fails.
// Tolerances:
//   * f32 activations x exact weights, f32 accumulation (quantized mat-vec path, dense_matvec,
//     dense_gemv_bf16, dense_mm f32, every CPU result): 1e-5.
//   * paths that round operands to bf16/f16 (quantized mat-mat path, dense_mm bf16/f16 and
//     dense_gemm on CUDA tensor cores): compared with a reference that applies the same documented
//     roundings (x -> bf16/f16 RNE, dequantized f32 weight -> bf16 RNE), tol 1e-4 (f32
//     accumulation only; 160x tighter than the spec's 1.6e-2 against the unrounded reference).
//   * the automatic path of the expert-routed op on CUDA mixes mat-vec and mat-mat pieces chosen
//     on the device: the spec's bf16 row, 1.6e-2 against the unrounded reference.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <sstream>
#include <tuple>

#include "check/check.h"
#include "lmk/matmul.h"
#include "ref/matmul.h"

namespace lmk::test {
namespace {

namespace mm = ref::mm;

const std::vector<DType> kFormats = {DType::q4_0, DType::q5_0, DType::q5_1, DType::q8_0, DType::iq4_nl,
                                     DType::q2_K, DType::q4_K, DType::q5_K, DType::q6_K, DType::iq4_xs};

bool is_k_quant(DType t) { return mm::block_elems(t) == 256; }

CompareResult compare_norm(const HostTensor& out, const mm::Result& ref, double tol, double out_rel = 0) {
  CompareResult r;
  double num = 0, den = 0, worst = -1;
  for (int64_t i = 0; i < out.numel(); ++i) {
    const double o = out.get(i), f = ref.y[size_t(i)], nrm = ref.norm[size_t(i)];
    const double d = std::fabs(o - f);
    const double allowed = tol * (nrm + 1e-30) + out_rel * std::fabs(f);
    const bool bad = std::isnan(o) || !(d <= allowed);
    const double ratio = std::isnan(o) ? INFINITY : d / allowed;
    if (!std::isnan(o)) {
      num += d * d;
      den += f * f;
      r.max_abs = std::max(r.max_abs, d);
    }
    if (bad) r.failures++;
    if (ratio > worst) {
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
    msg << r.failures << " of " << out.numel() << " outputs outside e <= " << tol << " (normalised by sum |x*w|"
        << (out_rel ? " + output rounding" : "") << "); worst at " << r.worst << ": got " << r.worst_out << " want "
        << r.worst_ref << " (" << worst << "x the allowed error); seed " << base_seed();
    r.message = msg.str();
  }
  return r;
}

// N(0, 1) activations; with more than one row the last row spans 1e-3 .. 1e3 (spec §3.1).
HostTensor activations(std::vector<int64_t> shape, uint64_t seed) {
  HostTensor x = random_normal(DType::f32, shape, seed);
  const int64_t k = shape.back(), rows = x.numel() / k;
  if (rows > 1) {
    std::mt19937_64 rng(seed ^ 0x5eed);
    std::uniform_real_distribution<double> e(-3, 3);
    for (int64_t i = 0; i < k; ++i)
      x.set((rows - 1) * k + i, (rng() & 1 ? -1.0 : 1.0) * std::pow(10.0, e(rng)));
  }
  return x;
}

HostTensor block_weight(DType t, std::vector<int64_t> shape, uint64_t seed) {
  HostTensor w(t, shape);
  auto bytes = mm::random_blocks(t, int64_t(w.bytes.size()) / mm::block_size(t), seed);
  std::memcpy(w.bytes.data(), bytes.data(), bytes.size());
  return w;
}

double round_bf16(double v) { return round_to(DType::bf16, v); }
double round_f16(double v) { return round_to(DType::f16, v); }

std::vector<int64_t> iota(int64_t n) {
  std::vector<int64_t> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) v[size_t(i)] = i;
  return v;
}

// Reference of a plain quantized matmul, optionally with the mat-mat path's roundings.
mm::Result quant_ref(const HostTensor& x, const HostTensor& w, bool bf16_operands) {
  const int64_t n = w.shape[0], k = w.shape[1], m = x.numel() / k;
  auto wd = mm::dequant_matrix(w.dtype, w.bytes.data(), n, k);
  mm::Result r{std::vector<double>(size_t(m * n)), std::vector<double>(size_t(m * n))};
  if (bf16_operands) mm::matmul_rows(x.to_double(), iota(m), wd.data(), n, k, round_bf16, round_bf16, r, 0);
  else mm::matmul_rows(x.to_double(), iota(m), wd.data(), n, k, mm::identity, mm::identity, r, 0);
  return r;
}

// Tolerance of the packed wgmma mat-mat against the bf16-rounded reference (x and w rounded once):
// signed-code formats dequantize exactly in f32 (1e-4, as the raw mat-mat); the others in bf16
// arithmetic, whose scale, min-term and result roundings add at most 3 · 2^-9 of |s·q| + |m| per
// weight (5.9e-3, checked at 8e-3; the spec's bf16 row allows 1.6e-2 against the exact product).
double packed_mm_tol(DType t) { return t == DType::q8_0 || t == DType::iq4_nl || t == DType::iq4_xs ? 1e-4 : 8e-3; }

CompareResult check_quantized(Device d, DType t, int64_t m, int64_t n, int64_t k, MatmulPath path) {
  const std::string tag = "qmm" + shape_name(t, {m, n, k}) + std::to_string(int(path));
  const uint64_t seed = case_seed(tag);
  auto x = activations({m, k}, seed);
  auto w = block_weight(t, {n, k}, seed + 1);
  auto dx = to_device(x, d), dw = to_device(w, d);
  auto y = poisoned(DType::f32, {m, n}, d);
  quantized_matmul_ggml(dx, dw, y, default_stream(), path);
  // CUDA, more than 8 rows: the forced mat-mat runs the raw-block kernel (1e-4 against the
  // bf16-rounded operands); the automatic one packs the weight per call and runs the packed
  // wgmma mat-mat (packed_mm_tol).
  const bool repacked = d.is_cuda() && path == MatmulPath::automatic && m > 8;
  const bool mat_mat = repacked || (d.is_cuda() && path == MatmulPath::matmat);
  return compare_norm(to_host(y), quant_ref(x, w, mat_mat), repacked ? packed_mm_tol(t) : mat_mat ? 1e-4 : 1e-5);
}

// pack_ggml then the packed mat-vec (M <= 8: exact operands, 1e-5) or, on CUDA, the packed wgmma
// mat-mat (M > 8: bf16 operands, packed_mm_tol), against the fp64 reference.
CompareResult check_packed(Device d, DType t, int64_t m, int64_t n, int64_t k) {
  const uint64_t seed = case_seed("packed" + shape_name(t, {m, n, k}));
  auto x = activations({m, k}, seed);
  auto w = block_weight(t, {n, k}, seed + 1);
  auto dx = to_device(x, d), dw = to_device(w, d);
  const PackedGgml pw = pack_ggml(dw);
  auto y = poisoned(DType::f32, {m, n}, d);
  quantized_matmul_ggml(dx, pw, y);
  const bool mat_mat = d.is_cuda() && m > 8;
  return compare_norm(to_host(y), quant_ref(x, w, mat_mat), mat_mat ? packed_mm_tol(t) : 1e-5);
}

CompareResult check_mv_ext(Device d, DType t, int64_t batch, int64_t m, int64_t n, int64_t k) {
  const uint64_t seed = case_seed("mv_ext" + shape_name(t, {batch, m, n, k}));
  auto x = activations({batch, m, k}, seed);
  auto w = block_weight(t, {n, k}, seed + 1);
  auto dx = to_device(x, d), dw = to_device(w, d);
  auto y = poisoned(DType::f32, {batch, m, n}, d);
  mul_mv_ext(dw, dx, y);
  return compare_norm(to_host(y), quant_ref(x, w, false), 1e-5);
}

enum class Routing { uniform, distinct, skewed, one_expert, repeated };

struct IdCase {
  DType t;
  int64_t e, top_k, tokens, n, k;
  Routing routing = Routing::uniform;
  bool per_slot = false;
  bool i32_ids = false;
  int64_t expert_pad_blocks = 0;  // extra blocks between experts (strided view)
  MatmulPath path = MatmulPath::automatic;
  int64_t lead_blocks = 0;  // the weight view starts this many blocks into its buffer (e.g. one
                            // 18-byte block: a base 2 bytes past a 16-byte boundary)
};

std::string id_name(const IdCase& c) {
  static const char* routes[] = {"uniform", "distinct", "skewed", "one-expert", "repeated"};
  std::ostringstream os;
  os << name(c.t) << " E" << c.e << " k" << c.top_k << " T" << c.tokens << " N" << c.n << " K" << c.k << " "
     << routes[int(c.routing)] << (c.per_slot ? " per-slot" : "") << (c.i32_ids ? " i32" : "")
     << (c.expert_pad_blocks ? " strided" : "") << (c.lead_blocks ? " offset" : "")
     << (c.path == MatmulPath::matvec ? " mv" : c.path == MatmulPath::matmat ? " mm" : "");
  return os.str();
}

std::vector<int64_t> make_ids(const IdCase& c, uint64_t seed) {
  std::mt19937_64 rng(seed);
  const int64_t rows = c.tokens * c.top_k;
  std::vector<int64_t> ids(static_cast<size_t>(rows));
  for (int64_t t = 0; t < c.tokens; ++t) {
    for (int64_t s = 0; s < c.top_k; ++s) {
      int64_t id = 0;
      switch (c.routing) {
        case Routing::uniform: id = int64_t(rng() % uint64_t(c.e)); break;
        case Routing::distinct: id = (t * c.top_k + s) % c.e; break;  // every expert used, in order
        case Routing::skewed: {  // Zipf-like: half the rows on expert 0, a long tail, many unused
          const double u = double(rng() >> 11) / 9007199254740992.0;
          id = std::min<int64_t>(c.e - 1, int64_t(std::floor(std::pow(double(c.e), u * u)) - 1));
          break;
        }
        case Routing::one_expert: id = c.e - 1; break;
        case Routing::repeated: id = (s % 2 == 0) ? 0 : int64_t(rng() % uint64_t(c.e)); break;  // same expert twice
      }
      ids[size_t(t * c.top_k + s)] = id;
    }
  }
  return ids;
}

CompareResult check_quantized_id(Device d, const IdCase& c) {
  const uint64_t seed = case_seed("qmm_id " + id_name(c));
  const int64_t rows = c.tokens * c.top_k, x_rows = c.per_slot ? rows : c.tokens;
  const int qk = mm::block_elems(c.t), bs = mm::block_size(c.t);
  const int64_t per_expert = c.n * c.k / qk, stride = per_expert + c.expert_pad_blocks;
  auto x = activations({x_rows, c.k}, seed);
  // Weight bytes: E experts of `stride` blocks; only the first per_expert blocks of each are used.
  HostTensor wbytes(DType::u8, {(c.lead_blocks + c.e * stride) * bs});
  auto blocks = mm::random_blocks(c.t, c.lead_blocks + c.e * stride, seed + 1);
  std::memcpy(wbytes.bytes.data(), blocks.data(), blocks.size());
  auto ids = make_ids(c, seed + 2);
  HostTensor hids(c.i32_ids ? DType::i32 : DType::u32, {c.tokens, c.top_k});
  for (int64_t r = 0; r < rows; ++r) hids.set(r, double(ids[size_t(r)]));

  auto dx = to_device(x, d), dwb = to_device(wbytes, d), dids = to_device(hids, d);
  const int64_t shape[3] = {c.e, c.n, c.k}, strides[3] = {stride, c.k / qk, 1};
  Tensor dw(static_cast<uint8_t*>(dwb.buffer.data()) + c.lead_blocks * bs, c.t, shape, strides, d);
  auto y = poisoned(DType::f32, {rows, c.n}, d);
  quantized_matmul_id_ggml(dx, dw, dids, y, c.top_k, c.per_slot, default_stream(), Tensor(), c.path);

  const bool mat_mat = d.is_cuda() && c.path == MatmulPath::matmat;
  // Automatic on CUDA may take a bf16 mat-mat (1.6e-2); single rows on the ring mat-vec (up to
  // 256 rows of 16-byte aligned raw rows, K % 256 == 0) and the direct mat-vec (up to 64) are
  // exact (1e-5).
  const bool ring_rows = rows <= 256 && c.k % 256 == 0 && c.lead_blocks == 0 && (c.k / qk * bs) % 16 == 0 &&
                         (stride * bs) % 16 == 0;
  const bool mixed = d.is_cuda() && c.path == MatmulPath::automatic && !ring_rows && rows > 64;
  mm::Result r{std::vector<double>(size_t(rows * c.n)), std::vector<double>(size_t(rows * c.n))};
  const auto xd = x.to_double();
  for (int64_t row = 0; row < rows; ++row) {
    const int64_t e = ids[size_t(row)];
    auto wd = mm::dequant_matrix(c.t, wbytes.bytes.data() + (c.lead_blocks + e * stride) * bs, c.n, c.k);
    const std::vector<int64_t> xr{c.per_slot ? row : row / c.top_k};
    if (mat_mat) mm::matmul_rows(xd, xr, wd.data(), c.n, c.k, round_bf16, round_bf16, r, row);
    else mm::matmul_rows(xd, xr, wd.data(), c.n, c.k, mm::identity, mm::identity, r, row);
  }
  return compare_norm(to_host(y), r, mat_mat ? 1e-4 : mixed ? 1.6e-2 : 1e-5);
}

// dense_mm / dense_gemv_bf16: src0 [B0, N, K], src1 f32 [B1, M, K] -> f32 [B1, M, N].
CompareResult check_dense(Device d, const std::string& op, DType wt, int64_t b0, int64_t b1, int64_t m, int64_t n,
                          int64_t k) {
  const uint64_t seed = case_seed(op + shape_name(wt, {b0, b1, m, n, k}));
  auto w = random_uniform(wt, {b0, n, k}, seed, -1, 1);
  auto x = activations({b1, m, k}, seed + 1);
  auto dw = to_device(w, d), dx = to_device(x, d);
  auto y = poisoned(DType::f32, {b1, m, n}, d);
  const bool rounds = op == "dense_mm" && wt != DType::f32;
  if (op == "dense_mm") dense_mm(dw, dx, y);
  else dense_gemv_bf16(dw, dx, y);
  mm::Result r{std::vector<double>(size_t(b1 * m * n)), std::vector<double>(size_t(b1 * m * n))};
  const auto xd = x.to_double(), wdv = w.to_double();
  const int64_t rep = b1 / b0;
  for (int64_t b = 0; b < b1; ++b) {
    std::vector<mm::W> wb(static_cast<size_t>(n * k));
    for (int64_t i = 0; i < n * k; ++i) {
      const double v = wdv[size_t((b / rep) * n * k + i)];
      wb[size_t(i)] = {v, std::fabs(v)};
    }
    std::vector<int64_t> rows(static_cast<size_t>(m));
    for (int64_t i = 0; i < m; ++i) rows[size_t(i)] = b * m + i;
    if (rounds && wt == DType::bf16) mm::matmul_rows(xd, rows, wb.data(), n, k, round_bf16, mm::identity, r, b * m);
    else if (rounds) mm::matmul_rows(xd, rows, wb.data(), n, k, round_f16, mm::identity, r, b * m);
    else mm::matmul_rows(xd, rows, wb.data(), n, k, mm::identity, mm::identity, r, b * m);
  }
  // Rounded operands on CUDA go through tensor cores when more than 8 rows share a weight slice.
  const double tol = rounds && d.is_cuda() && m > 8 ? 1e-4 : 1e-5;
  return compare_norm(to_host(y), r, tol);
}

CompareResult check_gemm(Device d, DType t, int64_t m, int64_t n, int64_t k) {
  const uint64_t seed = case_seed("dense_gemm" + shape_name(t, {m, n, k}));
  auto a = random_uniform(t, {m, k}, seed, -1, 1);
  auto b = random_uniform(t, {n, k}, seed + 1, -1, 1);
  auto da = to_device(a, d), db = to_device(b, d);
  auto c = poisoned(t, {m, n}, d);
  dense_gemm(da, db, c);
  mm::Result r{std::vector<double>(size_t(m * n)), std::vector<double>(size_t(m * n))};
  const auto bd = b.to_double();
  std::vector<mm::W> wb(static_cast<size_t>(n * k));
  for (int64_t i = 0; i < n * k; ++i) wb[size_t(i)] = {bd[size_t(i)], std::fabs(bd[size_t(i)])};
  mm::matmul_rows(a.to_double(), iota(m), wb.data(), n, k, mm::identity, mm::identity, r, 0);
  // f16 x f16 products are exact in f32: accumulation (tensor cores: 1e-4) + one output rounding.
  const double tol = d.is_cuda() && m > 8 ? 1e-4 : 1e-5;
  return compare_norm(to_host(c), r, tol, t == DType::f16 ? std::ldexp(1.0, -11) : std::ldexp(1.0, -8));
}

CompareResult check_matvec(Device d, DType wt, int64_t n, int64_t k) {
  const uint64_t seed = case_seed("dense_matvec" + shape_name(wt, {n, k}));
  auto a = activations({1, k}, seed);
  auto b = random_uniform(wt, {n, k}, seed + 1, -1, 1);
  auto da = to_device(a, d), db = to_device(b, d);
  auto c = poisoned(DType::f32, {1, n}, d);
  dense_matvec(da, db, c);
  mm::Result r{std::vector<double>(size_t(n)), std::vector<double>(size_t(n))};
  const auto bd = b.to_double();
  std::vector<mm::W> wb(static_cast<size_t>(n * k));
  for (int64_t i = 0; i < n * k; ++i) wb[size_t(i)] = {bd[size_t(i)], std::fabs(bd[size_t(i)])};
  mm::matmul_rows(a.to_double(), {0}, wb.data(), n, k, mm::identity, mm::identity, r, 0);
  return compare_norm(to_host(c), r, 1e-5);
}

}  // namespace

// The expert-routed op on packed experts (pack_ggml of the contiguous [E, N, K] weight): mat-vec
// precision (1e-5) for single rows and 8-row lists; on CUDA, bf16 operands (packed_mm_tol) once the rows
// go to the wgmma mat-mat (the rule below, from quantized_matmul_id_packed).
CompareResult check_quantized_id_packed(Device d, const IdCase& c) {
  const uint64_t seed = case_seed("qmm_id packed " + id_name(c));
  const int64_t rows = c.tokens * c.top_k, x_rows = c.per_slot ? rows : c.tokens;
  auto x = activations({x_rows, c.k}, seed);
  auto w = block_weight(c.t, {c.e, c.n, c.k}, seed + 1);
  auto ids = make_ids(c, seed + 2);
  HostTensor hids(c.i32_ids ? DType::i32 : DType::u32, {c.tokens, c.top_k});
  for (int64_t r = 0; r < rows; ++r) hids.set(r, double(ids[size_t(r)]));
  auto dx = to_device(x, d), dw = to_device(w, d), dids = to_device(hids, d);
  const PackedGgml pw = pack_ggml(dw);
  auto y = poisoned(DType::f32, {rows, c.n}, d);
  quantized_matmul_id_ggml(dx, pw, dids, y, c.top_k, c.per_slot);
  mm::Result r{std::vector<double>(size_t(rows * c.n)), std::vector<double>(size_t(rows * c.n))};
  const auto xd = x.to_double();
  const int64_t expert_bytes = c.n * c.k / mm::block_elems(c.t) * mm::block_size(c.t);
  // The CUDA op's rule (quantized_matmul_id_packed): single rows up to 64 rows unless experts
  // average more than 16, else per-expert mat-mat once they average more than 1.5.
  const double avg = double(rows) / double(std::min(c.e, rows));
  const bool mat_mat = d.is_cuda() && (rows <= 64 ? avg > 16.0 : avg > 1.5);
  for (int64_t row = 0; row < rows; ++row) {
    const int64_t e = ids[size_t(row)];
    auto wd = mm::dequant_matrix(c.t, w.bytes.data() + e * expert_bytes, c.n, c.k);
    if (mat_mat) mm::matmul_rows(xd, {c.per_slot ? row : row / c.top_k}, wd.data(), c.n, c.k, round_bf16, round_bf16, r, row);
    else mm::matmul_rows(xd, {c.per_slot ? row : row / c.top_k}, wd.data(), c.n, c.k, mm::identity, mm::identity, r, row);
  }
  return compare_norm(to_host(y), r, mat_mat ? packed_mm_tol(c.t) : 1e-5);
}

LMK_CHECKS(matmul) {
  // §3.1: every format; M = 1, 2..8, > 8; N odd; K not a multiple of 256 for 32-blocks (704 = 22
  // blocks; 96 = 3 blocks, odd so rows are not 4-byte multiples); both paths forced on two sizes.
  for (DType t : kFormats) {
    const bool kq = is_k_quant(t);
    const int64_t k_odd = kq ? 768 : 704, k_small = kq ? 256 : 96, k_fast = kq ? 1024 : 512;
    const std::string f(name(t));
    auto add = [&](int64_t m, int64_t n, int64_t k, MatmulPath p, bool quick) {
      std::string nm = f + " " + std::to_string(m) + "x" + std::to_string(n) + "x" + std::to_string(k) +
                       (p == MatmulPath::matvec ? " mv" : p == MatmulPath::matmat ? " mm" : "");
      cases.push_back({"quantized_matmul_ggml", nm, quick, [=](Device d) { return check_quantized(d, t, m, n, k, p); }});
    };
    add(1, 33, k_odd, MatmulPath::automatic, true);
    add(1, 7, k_small, MatmulPath::automatic, false);
    add(1, 300, k_fast, MatmulPath::automatic, false);
    add(2, 33, k_odd, MatmulPath::automatic, false);
    add(3, 65, k_fast, MatmulPath::automatic, false);
    add(5, 8, k_small, MatmulPath::automatic, false);
    add(8, 33, k_odd, MatmulPath::automatic, true);
    add(9, 33, k_small, MatmulPath::automatic, false);
    add(64, 96, 512 + (kq ? 0 : 32), MatmulPath::automatic, true);  // mat-mat, ragged tiles
    add(16, 37, k_odd, MatmulPath::matvec, false);
    // Packed weights (pack_ggml): ragged tiles (N % 16 != 0) and chunks (K % 256 != 0), one row,
    // several tiles per CTA and chunks per warp, M = 2..8 in one item and M > 8 in several.
    auto add_packed = [&](int64_t m, int64_t n, int64_t k, bool quick) {
      cases.push_back({"quantized_matmul_ggml_packed", f + " " + std::to_string(m) + "x" + std::to_string(n) + "x" + std::to_string(k),
                       quick, [=](Device d) { return check_packed(d, t, m, n, k); }});
    };
    add_packed(1, 33, k_odd, true);
    add_packed(1, 1, k_small, false);
    add_packed(1, 600, 4096, false);
    add_packed(2, 47, k_fast, false);
    add_packed(4, 16, k_odd, false);
    add_packed(8, 65, k_fast, true);
    add_packed(5, 33, k_odd, false);  // partial 8-row groups (the 8-row ring's row count)
    add_packed(7, 40, k_fast, false);
    add_packed(11, 20, k_small, false);
    add_packed(3, 40, 4352 + (kq ? 0 : 32), false);  // 2 K-slices (16 chunks each), the last one partial
    add_packed(8, 24, 4352 + (kq ? 0 : 32), false);  // 3 K-slices of 8 chunks
    // The wgmma mat-mat (M > 8): 32-, 64- and 128-row items, a partial 128-row tile and a
    // partial last chunk, K-splits (a small grid), several items with a ragged last one.
    add_packed(40, 33, k_odd, true);
    add_packed(16, 600, 4096 + (kq ? 0 : 32), false);
    add_packed(130, 70, k_fast, false);
    add_packed(24, 200, 4352 + (kq ? 0 : 32), false);
    // More units (71 tile blocks x 2 items) than SMs: CTAs walk several, the rings run on.
    if (t == DType::q4_0) add_packed(130, 9000, 288, false);
    add(16, 37, k_odd, MatmulPath::matmat, false);
    add(3, 33, k_small, MatmulPath::matmat, false);
    add(1, 1, kq ? 256 : 32, MatmulPath::automatic, false);
    add(4, 70, kq ? 4096 : 2048, MatmulPath::automatic, false);  // split-K tensor-core mat-vec
    // M = 1 mat-vec: more row tiles than resident CTAs (grid-stride loop), and a long K (the
    // stage ring wraps); 32-element formats with K % 256 != 0 (partial last stage, rows not
    // 16-byte aligned).
    add(1, 9000, kq ? 1024 : 1056, MatmulPath::automatic, false);
    add(1, 40, kq ? 14336 : 14368, MatmulPath::automatic, false);
    // Both paths forced on three 8-row mat-vec items and a ragged mat-mat tile (N = 70: a partial
    // 64-row slab / 128-row tile); the shape of MatmulGpu.PathsAgree, for every format.
    add(24, 70, kq ? 512 : 704, MatmulPath::matvec, false);
    add(24, 70, kq ? 512 : 704, MatmulPath::matmat, false);
    // K = 2048: rows of a multiple of 16 bytes for every format (q6_K's 210-byte super-blocks
    // need 8 per row), so up to 8 rows take the ring mat-vec on the raw rows (chunks at 2-, 4-
    // and 8-byte offsets for q6_K, q2_K and iq4_xs); N tails; the 8-row instance at 6 and 8 rows.
    add(1, 33, 2048, MatmulPath::automatic, false);
    add(2, 40, 2048, MatmulPath::automatic, false);
    add(6, 47, 2048, MatmulPath::automatic, false);
    add(8, 17, 2048, MatmulPath::automatic, false);
  }
  // §3.2 mul_mv_ext: M in 2..8, batch 1 and 2.
  for (DType t : {DType::q5_1, DType::iq4_nl, DType::q4_K, DType::q6_K}) {
    const bool kq = is_k_quant(t);
    for (int64_t m = 2; m <= 8; ++m) {
      const int64_t batch = m % 3 == 0 ? 2 : 1, k = kq ? (m % 2 ? 256 : 2816) : (m % 2 ? 128 : 32);
      const int64_t n = 37;
      cases.push_back({"mul_mv_ext", std::string(name(t)) + " " + std::to_string(batch) + "x" + std::to_string(m) + "x" +
                                         std::to_string(n) + "x" + std::to_string(k),
                       m == 4, [=](Device d) { return check_mv_ext(d, t, batch, m, n, k); }});
    }
  }
  // §3.3 expert-routed.
  std::vector<IdCase> id_cases = {
      {DType::q4_0, 8, 2, 5, 33, 704},
      {DType::q4_0, 128, 8, 1, 64, 256, Routing::uniform},                                      // decode
      {DType::q4_0, 128, 8, 64, 40, 256, Routing::skewed},                                      // many experts, uneven
      {DType::q4_K, 60, 4, 33, 33, 768, Routing::uniform},
      {DType::q6_K, 128, 8, 2, 24, 256, Routing::distinct},
      {DType::q8_0, 4, 8, 8, 33, 96, Routing::repeated},
      {DType::q8_0, 16, 8, 9, 17, 64, Routing::one_expert},
      {DType::q5_1, 16, 2, 40, 31, 128, Routing::uniform, true},                                // down-projection style
      {DType::iq4_nl, 1, 1, 33, 33, 160},
      {DType::q5_K, 8, 2, 20, 20, 512, Routing::uniform, false, true},                          // i32 ids
      {DType::q2_K, 8, 2, 12, 16, 256, Routing::uniform, false, false, 3},                      // strided experts
      {DType::iq4_xs, 60, 4, 40, 24, 512, Routing::distinct},
      {DType::q5_0, 8, 8, 70, 24, 128, Routing::uniform, false, false, 0, MatmulPath::matmat},  // grouped mat-mat
      {DType::q4_K, 8, 8, 70, 24, 256, Routing::skewed, false, false, 0, MatmulPath::matmat},
      {DType::q6_K, 32, 4, 40, 16, 256, Routing::uniform, false, false, 0, MatmulPath::matvec},  // grouped mat-vec
      {DType::q4_0, 8, 2, 100, 48, 512, Routing::one_expert, false, false, 0, MatmulPath::matvec},
      {DType::q4_0, 8, 2, 100, 48, 512, Routing::one_expert, false, false, 0, MatmulPath::matmat},
      {DType::q5_0, 128, 1, 40, 24, 128, Routing::distinct},  // grouped, one row per expert
      {DType::q8_0, 4, 2, 30, 20, 1024, Routing::skewed},      // grouped pieces with split K
      {DType::q4_0, 2100, 8, 40, 16, 64, Routing::uniform},    // more experts than the routing's shared counters
      // K-quants with a min term, N = 33 (a ragged last row group), every path: direct rows
      // (8 rows), grouped mat-vec and mat-mat pieces (the shapes of
      // MatmulGpu.OutOfRangeIdsWriteZerosAndSetFlag, without the invalid ids).
      {DType::q4_K, 8, 4, 2, 33, 256, Routing::uniform},
      {DType::q4_K, 8, 4, 2, 33, 256, Routing::uniform, false, false, 0, MatmulPath::matvec},
      {DType::q4_K, 8, 4, 2, 33, 256, Routing::uniform, false, false, 0, MatmulPath::matmat},
      {DType::q4_K, 8, 4, 40, 33, 256, Routing::uniform, false, false, 0, MatmulPath::matvec},
      {DType::q4_K, 8, 4, 40, 33, 256, Routing::uniform, false, false, 0, MatmulPath::matmat},
      {DType::q6_K, 8, 4, 40, 33, 512, Routing::uniform},  // automatic: grouped mat-mat (20 rows per expert)
      {DType::q2_K, 8, 4, 2, 33, 256, Routing::distinct},
      // Weight views whose base is not 16-byte aligned (the mat-vec's first granules lie partly
      // before the tensor): single routed rows and grouped 8-row pieces.
      {DType::q4_0, 8, 2, 3, 40, 512, Routing::uniform, false, false, 0, MatmulPath::automatic, 1},
      {DType::q6_K, 8, 2, 3, 40, 512, Routing::uniform, false, false, 0, MatmulPath::automatic, 1},
      {DType::iq4_xs, 4, 2, 40, 40, 512, Routing::uniform, false, false, 0, MatmulPath::matvec, 1},
      // Raw rows on the ring mat-vec (K = 2048 or 16-byte rows): single routed rows up to 256, on
      // the shallow ring's CTA walk and (past 16 units per SM) the warp walk; a 16-byte aligned
      // expert stride; a per-slot x.
      {DType::q6_K, 16, 8, 24, 40, 2048, Routing::uniform},
      {DType::q8_0, 32, 8, 32, 200, 2048, Routing::skewed},
      {DType::iq4_xs, 8, 4, 50, 120, 2048, Routing::repeated, true},
      {DType::q2_K, 8, 2, 30, 70, 2048, Routing::distinct},
      {DType::q4_0, 8, 2, 12, 40, 512, Routing::uniform, false, false, 8},
      // More than 256 rows of the sub-block-scale K-quants: the raw blocks packed per call, then
      // the packed kernels (grouped mat-mat or mat-vec pieces by the rows per expert); a strided
      // view. (q6_K: the raw grouped kernels.)
      {DType::q5_K, 32, 8, 40, 33, 512, Routing::uniform},
      {DType::iq4_xs, 16, 8, 40, 24, 512, Routing::uniform, false, false, 16},
      {DType::q4_K, 128, 8, 40, 40, 256, Routing::distinct},
      {DType::q6_K, 32, 8, 40, 33, 512, Routing::uniform},
  };
  for (const auto& c : id_cases)
    cases.push_back({"quantized_matmul_id_ggml", id_name(c), c.tokens == 5 || c.tokens == 33,
                     [=](Device d) { return check_quantized_id(d, c); }});
  // Packed experts: the contiguous cases (the path field does not apply), plus grouped wgmma
  // mat-mat items of 32, 64 and 128 rows (20, 50 and 100 rows per expert), and one per-slot x
  // with many items.
  for (const auto& c : std::vector<IdCase>{{DType::q4_0, 8, 4, 40, 40, 512, Routing::uniform},
                                           {DType::q4_K, 4, 2, 100, 24, 768, Routing::uniform},
                                           {DType::q6_K, 2, 2, 100, 130, 256, Routing::skewed},
                                           // ~200 32-row items x 3 tile blocks: more units than SMs
                                           {DType::q5_1, 64, 8, 256, 400, 288, Routing::uniform, true}})
    cases.push_back({"quantized_matmul_id_ggml_packed", id_name(c) + " wgmma", false,
                     [=](Device d) { return check_quantized_id_packed(d, c); }});
  // 64 direct rows over 35-38 row tiles: more than 16 units per SM (132 SMs), so the ring kernel's
  // warp walk, with units split between two warps (2-3 chunks per unit); q4_0 and q4_K, under 32
  // units per SM, walk on the shallow ring.
  for (const auto& c : std::vector<IdCase>{{DType::q4_0, 16, 8, 8, 600, 512, Routing::uniform},
                                           {DType::q4_K, 16, 8, 8, 560, 768, Routing::skewed},
                                           {DType::iq4_nl, 32, 8, 8, 600, 512, Routing::repeated}})
    cases.push_back({"quantized_matmul_id_ggml_packed", id_name(c) + " warp walk", false,
                     [=](Device d) { return check_quantized_id_packed(d, c); }});
  for (const auto& c : id_cases)
    if (c.expert_pad_blocks == 0 && c.lead_blocks == 0 && c.path == MatmulPath::automatic)
      cases.push_back({"quantized_matmul_id_ggml_packed", id_name(c), c.tokens == 5 || c.tokens == 33,
                       [=](Device d) { return check_quantized_id_packed(d, c); }});

  // §5.3 dense_mm: K < 32 accepted, GQA broadcast, M around the mat-vec / GEMM switch.
  struct DenseShape {
    int64_t b0, b1, m, n, k;
  };
  const std::vector<DenseShape> dense_shapes = {{1, 1, 1, 100, 80},  {1, 1, 31, 16, 1},   {1, 1, 128, 100, 128},
                                                {2, 8, 5, 16, 32},   {4, 4, 9, 33, 16},   {1, 1, 8, 257, 4096},
                                                {1, 1, 33, 64, 257}, {2, 4, 40, 24, 96},  {1, 1, 6, 4500, 96},
                                                {1, 4, 8, 4500, 256},
                                                // 9..32 rows: the TMA mat-vec (items of 16 and 32 rows)
                                                {1, 1, 16, 300, 2112}, {2, 4, 27, 70, 4096}};
  for (DType t : {DType::bf16, DType::f16, DType::f32})
    for (const auto& s : dense_shapes)
      cases.push_back({"dense_mm", shape_name(t, {s.b0, s.b1, s.m, s.n, s.k}), s.m == 128,
                       [=](Device d) { return check_dense(d, "dense_mm", t, s.b0, s.b1, s.m, s.n, s.k); }});
  // §5.2 dense_gemv_bf16.
  const std::vector<DenseShape> gemv_shapes = {{1, 1, 1, 7, 4},     {1, 1, 1, 1, 6},      {1, 1, 1, 4097, 256},
                                               {2, 8, 1, 7, 2816},  {1, 1, 3, 33, 2816},  {1, 1, 12, 9, 40},
                                               {2, 8, 2, 64, 1000}, {2, 8, 7, 40, 96},    {1, 1, 12, 50, 64},
                                               // the tensor-core path's 32-row blocks (N/32 >= SMs)
                                               {1, 1, 5, 4500, 64},
                                               // longer K, batches, many row blocks
                                               {1, 1, 7, 600, 2112}, {2, 8, 6, 130, 2048}, {1, 4, 8, 4500, 256},
                                               // items of 16 and 32 rows, several items
                                               {1, 1, 32, 130, 520}, {2, 4, 20, 64, 2048}, {1, 1, 70, 100, 256},
                                               // a 2-way K split (65 row tiles, 18 k blocks: rank 0 ends
                                               // on a half-filled stage, rank 1 on the K tail)
                                               {1, 1, 6, 4100, 1096}};
  for (const auto& s : gemv_shapes)
    cases.push_back({"dense_gemv_bf16", shape_name(DType::bf16, {s.b0, s.b1, s.m, s.n, s.k}), s.n == 4097,
                     [=](Device d) { return check_dense(d, "dense_gemv_bf16", DType::bf16, s.b0, s.b1, s.m, s.n, s.k); }});
  // §5.1 dense_gemm (f16 lm_head; bf16 too) and dense_matvec.
  for (auto [t, m, n, k] : {std::tuple{DType::f16, 1, 4099, 256}, std::tuple{DType::f16, 4, 300, 2816},
                            std::tuple{DType::f16, 64, 257, 64}, std::tuple{DType::bf16, 17, 130, 200}})
    cases.push_back({"dense_gemm", shape_name(t, {m, n, k}), m == 4,
                     [=](Device d) { return check_gemm(d, t, m, n, k); }});
  for (DType t : {DType::f16, DType::bf16, DType::f32})
    for (auto [n, k] : {std::pair{7, 6}, std::pair{1000, 2816}, std::pair{33, 5376}})
      cases.push_back({"dense_matvec", shape_name(t, {n, k}), n == 1000,
                       [=](Device d) { return check_matvec(d, t, n, k); }});
}

}  // namespace lmk::test
