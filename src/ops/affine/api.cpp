#include "lmk/affine.h"

#include <cstdlib>
#include <cstring>
#include <limits>
#include <utility>

#include "core/check.h"
#include "lmk/quant.h"
#include "lmk/registry.h"
#include "ops/affine/backend.h"
#include "ops/matmul/backend.h"

namespace lmk {

LMK_REGISTER_OP({"quantized_matmul", "affine", "x f32/f16/bf16, scales+biases f32/f16/bf16, y f32 or x's dtype; bits 4/6/8, gs 32/64/128",
                 true, true, "matmul-moe-sampling.md §2.1",
                 "f32 x and y, 16-bit scales, K%256==0, 4-bit M<=8 / 8-bit M<=4: qmvp_ring on the rows as stored "
                 "(int8 mma); else affine_mv_rows (M<=4) / affine_mv (M<=8), tensor-core mat-vec; M>8 with f32 x and y and 16-bit scales: "
                 "pack_affine into scratch, then qmmp (wgmma); otherwise affine_mm (tiled bf16 mma); affine_simt (unaligned)"});
LMK_REGISTER_OP({"quantized_matmul_id", "affine", "as quantized_matmul; ids u32/i32", true, true,
                 "matmul-moe-sampling.md §2.2",
                 "<= 64 rows with f32 x and y, 16-bit scales, K%256==0, 4/8-bit: qmvp_ring on the rows as stored; "
                 "else affine_route + affine_mv / affine_mm / affine_simt"});
LMK_REGISTER_OP({"quantized_matmul_packed", "affine",
                 "x f32, y f32; 4/6/8-bit weights, gs 32/64/128, bf16/f16 scales, packed once by pack_affine", true, true,
                 "matmul-moe-sampling.md §2.1, §2.2 (load-time repack)",
                 "pack_affine, then qmvp_ring / qmvp (M<=8, int8 mma), qmmp (M>8, wgmma); routed rows as "
                 "quantized_matmul_id_ggml on packed weights"});
LMK_REGISTER_OP({"qmm_affine", "affine", "f32 (codes u8)", true, true, "matmul-moe-sampling.md §1.4", "affine_simt"});

namespace {

using namespace detail;

bool debug_checks() {
  const char* v = std::getenv("LMK_DEBUG_CHECKS");
  return v && *v && std::strcmp(v, "0") != 0;
}

void require_int32(const char* op, const char* what, int64_t v) {
  if (v >= int64_t(std::numeric_limits<int32_t>::max()))
    LMK_THROW(InvalidArgument, op, ": ", what, " = ", v, " exceeds the supported limit 2^31 - 1");
}

// Validates the packed weights, scales and biases of `experts` stacked [N, K] matrices
// (experts == 0: a plain 2-D weight) and fills the weight part of p.
void check_weights(AffineProblem& p, const Tensor& w, const Tensor& scales, const Tensor& biases, int64_t experts,
                   const Tensor& ref, const char* ref_name = "x") {
  const char* op = p.op;
  check_contiguous(op, "w", w);
  check_contiguous(op, "scales", scales);
  check_contiguous(op, "biases", biases);
  check_dtype(op, "w", w, {DType::u32, DType::u8});
  check_dtype(op, "scales", scales, {DType::bf16, DType::f16, DType::f32});
  check_same_dtype(op, "biases", biases, "scales", scales);
  for (const auto& [arg, t] : {std::pair{"w", &w}, std::pair{"scales", &scales}, std::pair{"biases", &biases}})
    if (t != &ref) check_same_device(op, arg, *t, ref_name, ref);
  const int rank = experts ? 3 : 2;
  check_rank(op, "w", w, rank);
  const int64_t n = w.size(rank - 2);
  if (experts && w.size(0) != experts)
    LMK_THROW(InvalidArgument, op, ": argument 'w' has ", w.size(0), " experts, expected ", experts);
  const int64_t have = w.size(rank - 1) * element_size(w.dtype());
  if (have != p.row_bytes)
    LMK_THROW(InvalidArgument, op, ": argument 'w' has rows of ", have, " bytes (shape ", shape_str(w.shape()), ", ",
              name(w.dtype()), "), expected ", p.row_bytes, " bytes for K = ", p.K, " at ", p.bits,
              " bits (bits/group_size disagree with tensor shapes?)");
  const int64_t g = p.K / p.gs;
  if (experts) {
    check_shape(op, "scales", scales, {experts, n, g});
    check_shape(op, "biases", biases, {experts, n, g});
  } else {
    check_shape(op, "scales", scales, {n, g});
    check_shape(op, "biases", biases, {n, g});
  }
  require_int32(op, "N", n);
  p.N = n;
  p.w = w.data();
  p.scales = scales.data();
  p.biases = biases.data();
  p.s_dtype = scales.dtype();
  p.E = experts ? experts : 1;
}

// x [M, K] f32/f16/bf16; returns M and fills the activation part of p.
void check_x(AffineProblem& p, const Tensor& x) {
  check_contiguous(p.op, "x", x);
  check_dtype(p.op, "x", x, {DType::f32, DType::f16, DType::bf16});
  check_rank(p.op, "x", x, 2);
  p.x = x.data();
  p.x_dtype = x.dtype();
  p.M = x.size(0);
  p.K = x.size(1);
  require_int32(p.op, "K", p.K);
}

void check_y(AffineProblem& p, const Tensor& y, const Tensor& x) {
  check_contiguous(p.op, "y", y);
  if (y.dtype() != DType::f32 && y.dtype() != x.dtype())
    LMK_THROW(Unsupported, p.op, ": argument 'y' has dtype ", name(y.dtype()), "; supported f32 or the dtype of 'x' (",
              name(x.dtype()), ")");
  check_same_device(p.op, "y", y, "x", x);
  p.y = y.data();
  p.y_dtype = y.dtype();
}

void check_outputs_disjoint(const char* op, const Tensor& y, std::initializer_list<std::pair<const char*, const Tensor*>> ins) {
  for (const auto& [arg, t] : ins) check_no_overlap(op, "y", y, arg, *t);
}

void dispatch(const AffineProblem& p, Device d, Stream& s) {
  if (d.is_cpu()) cpu::affine_matmul(p);
#ifdef LMK_WITH_CUDA
  else cuda::affine_matmul(p, s);
#else
  (void)s;
#endif
}

}  // namespace

void quantized_matmul(const Tensor& x, const Tensor& w, const Tensor& scales, const Tensor& biases, const Tensor& y,
                      int bits, int group_size, Stream& s) {
  AffineProblem p;
  p.op = "quantized_matmul";
  check_x(p, x);
  check_affine_format(p.op, bits, group_size, p.K);
  p.bits = bits;
  p.gs = group_size;
  p.row_bytes = affine_packed_row_bytes(bits, p.K);
  check_weights(p, w, scales, biases, 0, x);
  check_y(p, y, x);
  check_shape(p.op, "y", y, {p.M, p.N});
  require_int32(p.op, "M", p.M);
  check_outputs_disjoint(p.op, y, {{"x", &x}, {"w", &w}, {"scales", &scales}, {"biases", &biases}});
  dispatch(p, x.device(), s);
}

void quantized_matmul_id(const Tensor& x, const Tensor& w, const Tensor& scales, const Tensor& biases,
                         const Tensor& ids, const Tensor& y, int bits, int group_size, Stream& s,
                         const Tensor& error_flag) {
  AffineProblem p;
  p.op = "quantized_matmul_id";
  check_x(p, x);
  check_affine_format(p.op, bits, group_size, p.K);
  p.bits = bits;
  p.gs = group_size;
  p.row_bytes = affine_packed_row_bytes(bits, p.K);
  check_contiguous(p.op, "w", w);
  check_rank(p.op, "w", w, 3);
  check_weights(p, w, scales, biases, w.size(0), x);
  check_contiguous(p.op, "ids", ids);
  check_dtype(p.op, "ids", ids, {DType::u32, DType::i32});
  check_same_device(p.op, "ids", ids, "x", x);
  check_rank(p.op, "ids", ids, 2);
  if (ids.size(0) != p.M)
    LMK_THROW(InvalidArgument, p.op, ": argument 'ids' has shape ", shape_str(ids.shape()), ", expected [", p.M,
              ", top_k] (one row per row of 'x')");
  p.ids = ids.data();
  p.ids_dtype = ids.dtype();
  p.top_k = ids.size(1);
  require_int32(p.op, "M * top_k", mul_checked(p.op, "M * top_k", p.M, p.top_k));
  require_int32(p.op, "E", p.E);
  check_y(p, y, x);
  check_shape(p.op, "y", y, {p.M, p.top_k, p.N});
  check_outputs_disjoint(p.op, y, {{"x", &x}, {"w", &w}, {"scales", &scales}, {"biases", &biases}, {"ids", &ids}});
  if (error_flag.defined()) {
    check_contiguous(p.op, "error_flag", error_flag);
    check_dtype(p.op, "error_flag", error_flag, {DType::u32});
    check_numel(p.op, "error_flag", error_flag, 1);
    check_same_device(p.op, "error_flag", error_flag, "x", x);
    check_no_overlap(p.op, "error_flag", error_flag, "y", y);
    p.error_flag = error_flag.data_as<uint32_t>();
  }
  p.debug = debug_checks();
  dispatch(p, x.device(), s);
}

PackedAffine pack_affine(const Tensor& w, const Tensor& scales, const Tensor& biases, int bits, int group_size,
                         Stream& s) {
  AffineProblem p;
  p.op = "pack_affine";
  check_contiguous(p.op, "w", w);
  check_dtype(p.op, "w", w, {DType::u32, DType::u8});
  check_rank_between(p.op, "w", w, 2, 3);
  if (w.numel() == 0) LMK_THROW(InvalidArgument, p.op, ": argument 'w' is empty (shape ", shape_str(w.shape()), ")");
  if (bits != 4 && bits != 6 && bits != 8)
    LMK_THROW(Unsupported, p.op, ": bits = ", bits, "; packed affine weights have 4, 6 or 8 bits");
  const int64_t row_bytes = w.size(-1) * element_size(w.dtype());
  p.K = row_bytes * 8 / bits;
  check_affine_format(p.op, bits, group_size, p.K);
  p.bits = bits;
  p.gs = group_size;
  p.row_bytes = affine_packed_row_bytes(bits, p.K);
  const int64_t experts = w.rank() == 3 ? w.size(0) : 0;
  check_weights(p, w, scales, biases, experts, w, "w");
  if (p.s_dtype != DType::bf16 && p.s_dtype != DType::f16)
    LMK_THROW(Unsupported, p.op, ": scales have dtype ", name(p.s_dtype),
              "; packed affine weights keep 16-bit scales (bf16 or f16; f32 scales run unpacked)");
  PackedView v;
  v.affine_bits = bits;
  v.affine_gs = group_size;
  v.affine_f16 = p.s_dtype == DType::f16;
  v.n = p.N;
  v.k = p.K;
  v.row_bytes = p.row_bytes;
  v.n_experts = p.E;
  const int64_t total = packed_bytes(p.op, geometry_of(v), p.E);
  PackedAffine out;
  out.bits = bits;
  out.group_size = group_size;
  out.scale_dtype = p.s_dtype;
  out.n = p.N;
  out.k = p.K;
  out.n_experts = p.E;
  out.routed = experts > 0;
  out.bytes = Buffer(total, w.device());
  packed::AffineSource src;
  src.codes = static_cast<const uint8_t*>(w.data());
  src.scales = static_cast<const uint16_t*>(scales.data());
  src.biases = static_cast<const uint16_t*>(biases.data());
  src.bits = bits;
  src.gs = group_size;
  if (w.device().is_cpu()) cpu::pack_affine(src, v, out.bytes.data());
#ifdef LMK_WITH_CUDA
  else cuda::pack_affine(src, v, out.bytes.data(), s);
#else
  else LMK_THROW(Unsupported, p.op, ": built without CUDA");
#endif
  return out;
}

void qmm_affine(const Tensor& x, const Tensor& q, const Tensor& scales, const Tensor& biases, const Tensor& y,
                int group_size, Stream& s) {
  AffineProblem p;
  p.op = "qmm_affine";
  check_contiguous(p.op, "x", x);
  check_contiguous(p.op, "q", q);
  check_contiguous(p.op, "scales", scales);
  check_contiguous(p.op, "biases", biases);
  check_contiguous(p.op, "y", y);
  check_dtype(p.op, "x", x, {DType::f32});
  check_dtype(p.op, "q", q, {DType::u8});
  check_dtype(p.op, "scales", scales, {DType::f32});
  check_dtype(p.op, "biases", biases, {DType::f32});
  check_dtype(p.op, "y", y, {DType::f32});
  for (const auto& [arg, t] : {std::pair{"q", &q}, std::pair{"scales", &scales}, std::pair{"biases", &biases},
                               std::pair{"y", &y}})
    check_same_device(p.op, arg, *t, "x", x);
  check_rank(p.op, "x", x, 2);
  check_rank(p.op, "q", q, 2);
  const int64_t m = x.size(0), k = x.size(1), n = q.size(0);
  if (group_size < 2 || group_size > 1024 || (group_size & (group_size - 1)) != 0)
    LMK_THROW(InvalidArgument, p.op, ": group_size must be a power of two in [2, 1024], got ", group_size);
  if (k % group_size != 0)
    LMK_THROW(InvalidArgument, p.op, ": K = ", k, " is not a multiple of group_size ", group_size);
  check_shape(p.op, "q", q, {n, k});
  check_shape(p.op, "scales", scales, {n, k / group_size});
  check_shape(p.op, "biases", biases, {n, k / group_size});
  check_shape(p.op, "y", y, {m, n});
  require_int32(p.op, "M", m);
  require_int32(p.op, "N", n);
  require_int32(p.op, "K", k);
  check_outputs_disjoint(p.op, y, {{"x", &x}, {"q", &q}, {"scales", &scales}, {"biases", &biases}});
  p.x = x.data();
  p.M = m;
  p.K = k;
  p.N = n;
  p.w = q.data();
  p.scales = scales.data();
  p.biases = biases.data();
  p.s_dtype = DType::f32;
  p.bits = 8;  // one byte per code: the 8-bit packing
  p.unpacked = true;
  p.gs = group_size;
  p.row_bytes = k;
  p.y = y.data();
  dispatch(p, x.device(), s);
}

}  // namespace lmk
