// Checks for the softmax family (core-ops.md §4): every dtype, row lengths from 1 to 2 M
// (one block per row, register rows, cluster rows cached in shared memory and streamed twice,
// vector and scalar paths), against the fp64 reference with the §0 reduction tolerance.
#include <algorithm>
#include <cmath>
#include <limits>

#include "check/check.h"
#include "lmk/softmax.h"
#include "ref/softmax.h"

namespace lmk::test {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

struct Shape {
  int64_t rows, cols;
  bool f32_only = false;
};

// Spec §0 row-op shapes, plus rows long enough for every CUDA path: rows split over many
// blocks with the row in registers (a decode row of 151936, 1-2 M), rows split over a cluster
// and cached (40000 bf16), rows too long to cache (1000003 on the scalar path; 9 x 524288 f32:
// more than the registers of the GPU hold), many rows (600: at least 4 per SM) read twice; odd
// lengths take the scalar path.
const std::vector<Shape> kShapes = {
    {1, 1},      {3, 7},        {257, 32},        {1, 255},        {3, 256},         {257, 257},
    {3, 1000},   {257, 4096},   {3, 8193},        {1, 65536, true}, {2, 40000},      {1, 151936},
    {2, 1000000}, {1, 1000003, true}, {1, 1048576, true}, {1, 2000000}, {9, 524288, true},
    {600, 1024},  {600, 4096},
};

CompareResult check_softmax(Device d, DType t, Shape s, double lo, double hi, const char* tag) {
  const std::vector<int64_t> shape{s.rows, s.cols};
  auto x = random_uniform(t, shape, case_seed(std::string("softmax") + tag + shape_name(t, shape)), lo, hi);
  auto dx = to_device(x, d);
  auto out = poisoned(t, shape, d);
  lmk::softmax(dx, out);
  const auto want = ref::softmax(x.to_double(), s.rows, s.cols);
  Tolerance tol = tol_reduction(t);
  if (t != DType::f32) {
    // Spec §0: the rel figures hold in the normal range only; long rows make most f16 outputs
    // subnormal, so the L2 bound is also taken as the one 2-ulp errors (subnormal spacing
    // included) would give.
    double num = 0, den = 0;
    for (double v : want) {
      const double u = ulp_of(t, v);
      num += u * u;
      den += v * v;
    }
    if (den > 0) tol.rel_l2 = std::max(tol.rel_l2, 2 * std::sqrt(num / den));
  }
  return compare(to_host(out), want, tol);
}

// Mask kinds: causal with the queries at the end of the keys (k > q + seq_k - seq_q masked),
// causal plus one fully masked query row, or causal plus a finite per-distance bias.
enum class Mask { causal, causal_one_row_masked, causal_bias };

HostTensor make_mask(int64_t seq_q, int64_t seq_k, Mask kind) {
  HostTensor m(DType::bf16, {seq_q, seq_k});
  for (int64_t q = 0; q < seq_q; ++q) {
    const int64_t last = q + seq_k - seq_q;  // last visible key of query q
    for (int64_t k = 0; k < seq_k; ++k) {
      double v = k > last ? -kInf : 0.0;
      if (kind == Mask::causal_bias && k <= last) v = -0.125 * double(last - k);
      if (kind == Mask::causal_one_row_masked && q == seq_q / 2) v = -kInf;
      m.set(q * seq_k + k, v);
    }
  }
  return m;
}

CompareResult check_masked(Device d, int64_t nh, int64_t seq_q, int64_t seq_k, float scale, Mask kind,
                           const std::string& name) {
  const std::vector<int64_t> shape{nh * seq_q, seq_k};
  auto scores = random_uniform(DType::f32, shape, case_seed("scale_mask_softmax" + name), -40, 40);
  auto mask = make_mask(seq_q, seq_k, kind);
  auto ds = to_device(scores, d), dm = to_device(mask, d);
  auto out = poisoned(DType::f32, shape, d);
  lmk::scale_mask_softmax(ds, dm, out, seq_q, scale);
  auto want = ref::scale_mask_softmax(scores.to_double(), mask.to_double(), nh * seq_q, seq_k, seq_q, double(scale));
  return compare(to_host(out), want, tol_reduction(DType::f32));
}

}  // namespace

LMK_CHECKS(softmax) {
  for (DType t : float_types()) {
    for (const Shape& s : kShapes) {
      if (s.f32_only && t != DType::f32) continue;
      const bool quick = s.rows == 257 && s.cols == 4096;
      const std::string name = shape_name(t, {s.rows, s.cols});
      cases.push_back({"softmax", name, quick, [=](Device d) { return check_softmax(d, t, s, -8, 8, ""); }});
    }
    // Wide range: most outputs underflow to 0 or subnormals (f16 subnormal spacing applies).
    const Shape wide{3, 4096};
    cases.push_back({"softmax", shape_name(t, {3, 4096}) + " x in [-60, 60]", false,
                     [=](Device d) { return check_softmax(d, t, wide, -60, 60, "wide"); }});
  }

  const float s128 = 0.08838834764831845f;  // 1 / sqrt(128)
  struct M {
    const char* name;
    int64_t nh, seq_q, seq_k;
    float scale;
    Mask kind;
    bool quick;
  };
  const M masked[] = {
      {"1 head, 1 query, seq_k 64 (only k = 0 visible)", 1, 1, 64, s128, Mask::causal, false},
      {"1 head 8x8 causal", 1, 8, 8, s128, Mask::causal, false},
      {"4 heads 16x16 causal (shared mask)", 4, 16, 16, s128, Mask::causal, false},
      {"4 heads 128x128 causal", 4, 128, 128, s128, Mask::causal, true},
      {"2 heads 7 queries x 2455 keys", 2, 7, 2455, s128, Mask::causal, false},
      {"2 heads 4x100, one fully masked row", 2, 4, 100, s128, Mask::causal_one_row_masked, false},
      {"2 heads 8x64 scale 0", 2, 8, 64, 0.f, Mask::causal, false},
      {"2 heads 32x32 finite bias", 2, 32, 32, s128, Mask::causal_bias, false},
      {"3 heads 4x2048 one fully masked row", 3, 4, 2048, s128, Mask::causal_one_row_masked, false},
      {"2 heads 2 queries x 40000 keys", 2, 2, 40000, s128, Mask::causal, false},
      {"1 head 3 queries x 12345 keys", 1, 3, 12345, s128, Mask::causal_one_row_masked, false},
      // More rows than resident blocks: each block takes several rows, the next one prefetched.
      {"6 heads 2730x256 finite bias", 6, 2730, 256, s128, Mask::causal_bias, false},
  };
  for (const M& m : masked)
    cases.push_back({"scale_mask_softmax", m.name, m.quick, [=](Device d) {
                       return check_masked(d, m.nh, m.seq_q, m.seq_k, m.scale, m.kind, m.name);
                     }});
}

}  // namespace lmk::test
