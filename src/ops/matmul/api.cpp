#include "lmk/matmul.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "core/check.h"
#include "lmk/affine.h"
#include "lmk/registry.h"
#include "ops/matmul/backend.h"
#include "ops/matmul/packed_layout.h"

namespace lmk {

#define LMK_QFORMATS "q4_0, q5_0, q5_1, q8_0, iq4_nl, q2_K, q4_K, q5_K, q6_K, iq4_xs"
LMK_REGISTER_OP({"quantized_matmul_ggml", "matmul", "f32 x, GGML blocks (" LMK_QFORMATS ") w, f32 y", true, true,
                 "matmul-moe-sampling.md §3.1",
                 "M <= 8: qmvp_ring on the raw rows (16-byte rows, K % 256 == 0; 1-2 rows of q4_0 / q8_0 and one of "
                 "iq4_nl / q4_K keep qmv_<fmt>) or qmv_<fmt> (int8 mma on x split into 4 int8 pieces = f32); "
                 "M > 8: per-call pack into scratch + qmmp_<fmt> (wgmma), forced mat-mat qmm_<fmt>_bf16"});
LMK_REGISTER_OP({"quantized_matmul_ggml_packed", "matmul",
                 "f32 x, pack_ggml weight (" LMK_QFORMATS "), f32 y", true, true,
                 "matmul-moe-sampling.md §3.1 (load-time repack, issue 5)",
                 "qmvp_<fmt> (M <= 8: packed codes straight into int8 mma; a shared-memory ring of records "
                 "where it measured faster: most formats at M <= 8), qmmp_<fmt> (M > 8: wgmma, codes "
                 "decoded into the register operand); pack/unpack gather kernels"});
LMK_REGISTER_OP({"quantized_matmul_id_ggml_packed", "matmul",
                 "f32 x, pack_ggml expert weights [E,N,K] (" LMK_QFORMATS "), u32/i32 ids", true, true,
                 "matmul-moe-sampling.md §3.3 (load-time repack, issue 5)",
                 "qmvp_<fmt> per routed row (<= 64 rows averaging <= 16 per used expert, or <= 256 averaging "
                 "<= 1.5; runs of units per CTA, or of (unit, chunk) steps per warp from 16 units per SM) or "
                 "per-expert row lists (moe_route, shared-memory counters); qmmp_<fmt> (wgmma, items of the "
                 "tile above 1.1x the average) once experts average > 1.5 rows (> 16 up to 64 rows)"});
LMK_REGISTER_OP({"mul_mv_ext", "matmul", "f32 x, GGML blocks (" LMK_QFORMATS ") w, f32 y", true, true,
                 "matmul-moe-sampling.md §3.2", "qmv_<fmt> (weight decoded once for up to 8 rows)"});
LMK_REGISTER_OP({"quantized_matmul_id_ggml", "matmul", "f32 x, GGML blocks (" LMK_QFORMATS ") w [E,N,K], u32/i32 ids",
                 true, true, "matmul-moe-sampling.md §3.3",
                 "<= 256 rows: qmvp_ring per routed row on the raw rows (q4_0 up to 64: qmv_<fmt>); else "
                 "moe_route (count/scan/row lists), qmv_<fmt> per expert, qmm_<fmt>_bf16 grouped; past 256 rows "
                 "of q4_K / q5_K / q2_K / iq4_xs: per-call pack + the packed op's kernels"});
LMK_REGISTER_OP({"dense_mm", "matmul", "bf16, f16, f32 src0; f32 src1, dst", true, true, "matmul-moe-sampling.md §5.3",
                 "gemv_<t>_m{1,2,4,8} (M <= 8; bf16 / f16 M 5..32: gemv_tma (TMA + wgmma) if K % 8 == 0, else bf16 gemv_mma up to 8), cublasLt {bf16,f16,f32 (COMPUTE_32F, no TF32)}"});
LMK_REGISTER_OP({"dense_gemm", "matmul", "f16 (or bf16) a, b, c", true, true, "matmul-moe-sampling.md §5.1",
                 "gemv_f16_f16io (M <= 8), cublasLt f16/bf16 -> f16/bf16"});
LMK_REGISTER_OP({"dense_matvec", "matmul", "f32 a, c; f16, bf16, f32 b", true, true, "matmul-moe-sampling.md §5.1",
                 "gemv_{f16,bf16,f32}w_f32io"});
LMK_REGISTER_OP({"dense_gemv_bf16", "matmul", "bf16 src0, f32 src1, f32 dst", true, true,
                 "matmul-moe-sampling.md §5.2", "gemv_bf16_f32_m{1,2,4,8}; from 5 rows: gemv_tma (TMA + wgmma, K % 8 == 0; items of 8/16/32 rows) or gemv_mma (5..8 rows, K % 32 == 0), x as 3 bf16 terms"});
#undef LMK_QFORMATS

namespace {

using namespace detail;

[[maybe_unused]] bool debug_checks() {
  static const bool on = [] {
    const char* v = std::getenv("LMK_DEBUG_CHECKS");
    return v && *v && std::strcmp(v, "0") != 0;
  }();
  return on;
}

constexpr std::initializer_list<DType> kBlockTypes = {DType::q4_0, DType::q5_0,  DType::q5_1, DType::q8_0,
                                                      DType::iq4_nl, DType::q2_K, DType::q4_K, DType::q5_K,
                                                      DType::q6_K, DType::iq4_xs};

// K of a block-format weight must be a whole number of blocks.
void check_block_k(const char* op, const char* arg, DType t, int64_t k) {
  const int64_t qk = dtype_info(t).block_elems;
  if (k % qk != 0)
    LMK_THROW(InvalidArgument, op, ": argument '", arg, "' has K = ", k, ", not a multiple of the ", name(t),
              " block size ", qk);
}

void check_last_dim(const char* op, const char* arg, const Tensor& t, int64_t want, const char* what) {
  if (t.size(-1) != want)
    LMK_THROW(InvalidArgument, op, ": argument '", arg, "' has shape ", shape_str(t.shape()), "; its last dim must be ",
              what, " = ", want);
}

void dispatch_dense(const char* op, const DenseArgs& a, Device d, Stream& s) {
  if (d.is_cpu()) cpu::dense(a);
#ifdef LMK_WITH_CUDA
  else cuda::dense(a, s);
#else
  else LMK_THROW(Unsupported, op, ": built without CUDA");
#endif
}

// Shared by dense_mm and dense_gemv_bf16: src0 [B0,]N,K; src1 f32 [B1,]M,K; dst f32 [B1,]M,N.
DenseArgs check_batched(const char* op, const Tensor& src0, const Tensor& src1, const Tensor& dst,
                        std::initializer_list<DType> wtypes) {
  check_contiguous(op, "src0", src0);
  check_operand(op, "src1", src1, {DType::f32}, "src0", src0);
  check_operand(op, "dst", dst, {DType::f32}, "src0", src0);
  check_dtype(op, "src0", src0, wtypes);
  check_rank_between(op, "src0", src0, 2, 3);
  check_rank_between(op, "src1", src1, 2, 3);
  check_rank(op, "dst", dst, src1.rank());
  DenseArgs a;
  a.w = src0.data();
  a.wt = src0.dtype();
  a.x = src1.data();
  a.y = dst.data();
  a.b0 = src0.rank() == 3 ? src0.size(0) : 1;
  a.b1 = src1.rank() == 3 ? src1.size(0) : 1;
  a.n = src0.size(-2);
  a.k = src0.size(-1);
  a.m = src1.size(-2);
  check_last_dim(op, "src1", src1, a.k, "K of src0");
  if (a.b1 % a.b0 != 0)
    LMK_THROW(InvalidArgument, op, ": batch of 'src1' (", a.b1, ") is not a multiple of the batch of 'src0' (", a.b0,
              ")");
  if (src1.rank() == 3) check_shape(op, "dst", dst, {a.b1, a.m, a.n});
  else check_shape(op, "dst", dst, {a.m, a.n});
  check_no_overlap(op, "dst", dst, "src0", src0);
  check_no_overlap(op, "dst", dst, "src1", src1);
  return a;
}

// Validates the shared parts of the quantized ops and returns the weight of one expert [N, K].
QWeight quant_weight(const char* op, const Tensor& w, int64_t n, int64_t k) {
  QWeight q;
  q.data = w.data();
  q.type = w.dtype();
  q.n = n;
  q.k = k;
  q.row_bytes = storage_bytes(w.dtype(), k);
  q.expert_stride = 0;
  q.n_experts = 1;
  return q;
}

uint32_t* check_error_flag(const char* op, const Tensor& flag, const Tensor& y) {
  if (!flag.defined()) return nullptr;
  check_operand(op, "error_flag", flag, {DType::u32}, "y", y);
  check_no_overlap(op, "error_flag", flag, "y", y);
  return flag.data_as<uint32_t>();
}

void run_quantized(const char* op, const QmmArgs& a, Device d, MatmulPath path, Stream& s) {
  if (d.is_cpu()) cpu::quantized_matmul(a);
#ifdef LMK_WITH_CUDA
  else cuda::quantized_matmul(a, path, s);
#else
  else LMK_THROW(Unsupported, op, ": built without CUDA");
#endif
}


// Shared by both quantized_matmul_id_ggml overloads: the routed rows T·top_k (T = x rows, or x
// rows / top_k with input_per_slot) after checking x's K, ids' and y's shapes.
int64_t routed_rows(const char* op, const Tensor& x, const Tensor& ids, const Tensor& y, int64_t top_k,
                    bool input_per_slot, int64_t n, int64_t k) {
  const int64_t t = x.size(0);
  check_last_dim(op, "x", x, k, "K of w");
  int64_t rows = 0;
  if (input_per_slot) {
    rows = t;
    if (rows % top_k != 0)
      LMK_THROW(InvalidArgument, op, ": with input_per_slot, 'x' has ", rows, " rows, not a multiple of top_k = ",
                top_k);
  } else {
    rows = mul_checked(op, "T*top_k", t, top_k);
  }
  if (ids.numel() != rows || (ids.rank() == 2 && ids.size(1) != top_k) || ids.rank() > 2)
    LMK_THROW(InvalidArgument, op, ": argument 'ids' has shape ", shape_str(ids.shape()), ", expected [", rows,
              "] or [", rows / top_k, ", ", top_k, "]");
  if (y.rank() == 3) check_shape(op, "y", y, {rows / top_k, top_k, n});
  else check_shape(op, "y", y, {rows, n});
  return rows;
}

// y apart from ids; the optional error flag apart from y, x and ids.
uint32_t* routed_flag(const char* op, const Tensor& x, const Tensor& ids, const Tensor& y, const Tensor& error_flag) {
  check_no_overlap(op, "y", y, "ids", ids);
  uint32_t* flag = check_error_flag(op, error_flag, y);
  if (flag) {
    check_no_overlap(op, "error_flag", error_flag, "x", x);
    check_no_overlap(op, "error_flag", error_flag, "ids", ids);
  }
  return flag;
}

// The expert-routed arguments both overloads pass on (the weight part is set by the caller).
QmmIdArgs routed_args(const Tensor& x, const Tensor& ids, const Tensor& y, int64_t rows, int64_t top_k,
                      bool input_per_slot) {
  QmmIdArgs a;
  a.x = x.data_as<float>();
  a.x_rows = x.size(0);
  a.ids = ids.data();
  a.ids_i32 = ids.dtype() == DType::i32;
  a.y = y.data_as<float>();
  a.rows = rows;
  a.top_k = top_k;
  a.input_per_slot = input_per_slot;
  return a;
}

// Host-resident ids (CPU backend): reject an invalid one before anything is written.
void check_host_ids(const char* op, const QmmIdArgs& a, int64_t n_experts) {
  for (int64_t r = 0; r < a.rows; ++r) {
    const int64_t id = a.ids_i32 ? int64_t(static_cast<const int32_t*>(a.ids)[r])
                                 : int64_t(static_cast<const uint32_t*>(a.ids)[r]);
    if (id < 0 || id >= n_experts)
      LMK_THROW(InvalidArgument, op, ": invalid expert id ", id, " at row ", r, " (n_experts=", n_experts, ")");
  }
}
}  // namespace

void quantized_matmul_ggml(const Tensor& x, const Tensor& w, const Tensor& y, Stream& s, MatmulPath path) {
  const char* op = "quantized_matmul_ggml";
  check_operand(op, "x", x, {DType::f32}, "w", w);
  check_contiguous(op, "w", w);
  check_operand(op, "y", y, {DType::f32}, "w", w);
  check_dtype(op, "w", w, kBlockTypes);
  check_rank(op, "w", w, 2);
  check_rank(op, "x", x, 2);
  check_rank(op, "y", y, 2);
  const int64_t n = w.size(0), k = w.size(1), m = x.size(0);
  check_block_k(op, "w", w.dtype(), k);
  check_last_dim(op, "x", x, k, "K of w");
  check_shape(op, "y", y, {m, n});
  check_no_overlap(op, "y", y, "x", x);
  check_no_overlap(op, "y", y, "w", w);
  QmmArgs a{x.data_as<float>(), y.data_as<float>(), m, quant_weight(op, w, n, k)};
  run_quantized(op, a, w.device(), path, s);
}

namespace {
PackedView packed_view(const PackedGgml& w) {
  PackedView v;
  v.data = w.bytes.data();
  v.type = w.type;
  v.n = w.n;
  v.k = w.k;
  v.row_bytes = storage_bytes(w.type, w.k);
  v.n_experts = w.n_experts;
  return v;
}

// A packed weight as pack_ggml made it: known format, sizes that match its bytes.
void check_packed(const char* op, const PackedGgml& w) {
  if (!w.bytes.data())
    LMK_THROW(InvalidArgument, op, ": argument 'w' is an empty PackedGgml (not made by pack_ggml)");
  if (!std::count(kBlockTypes.begin(), kBlockTypes.end(), w.type))
    LMK_THROW(Unsupported, op, ": argument 'w' has dtype ", name(w.type), ", not a GGML block format");
  if (w.n <= 0 || w.k <= 0 || w.n_experts <= 0 || w.k % dtype_info(w.type).block_elems != 0)
    LMK_THROW(InvalidArgument, op, ": argument 'w' has shape [", w.n_experts, ", ", w.n, ", ", w.k,
              "], not a valid packed ", name(w.type), " weight");
  check_packed_bytes(op, packed::geometry(w.type, w.n, w.k, storage_bytes(w.type, w.k)), w.n_experts, w.bytes.bytes(),
                     std::string(name(w.type)));
}
}  // namespace

int64_t packed_bytes(const char* op, const packed::Geometry& g, int64_t n_experts) {
  return mul_checked(op, "packed bytes", mul_checked(op, "packed bytes", mul_checked(op, "packed bytes", g.tiles, g.chunks), g.rec),
                     n_experts);
}

void check_packed_bytes(const char* op, const packed::Geometry& g, int64_t n_experts, int64_t have, const std::string& what) {
  const bool fits = g.tiles <= INT64_MAX / g.chunks / g.rec && n_experts <= INT64_MAX / g.matrix_bytes();
  if (!fits || have != n_experts * g.matrix_bytes())
    LMK_THROW(InvalidArgument, op, ": argument 'w' holds ", have, " bytes, expected ",
              fits ? n_experts * g.matrix_bytes() : -1, " for a packed ", what, " [", n_experts, ", ", g.n, ", ", g.k, "]");
}

PackedGgml pack_ggml(const Tensor& w, Stream& s) {
  const char* op = "pack_ggml";
  check_contiguous(op, "w", w);
  check_dtype(op, "w", w, kBlockTypes);
  check_rank_between(op, "w", w, 2, 3);
  const int64_t e = w.rank() == 3 ? w.size(0) : 1, n = w.size(-2), k = w.size(-1);
  check_block_k(op, "w", w.dtype(), k);
  const auto g = packed::geometry(w.dtype(), n, k, storage_bytes(w.dtype(), k));
  const int64_t total = packed_bytes(op, g, e);
  PackedGgml p;
  p.type = w.dtype();
  p.n = n;
  p.k = k;
  p.n_experts = e;
  p.bytes = Buffer(total, w.device());
  const PackedView v = packed_view(p);
  if (w.device().is_cpu()) cpu::pack(w.data(), v, p.bytes.data());
#ifdef LMK_WITH_CUDA
  else cuda::pack(w.data(), v, p.bytes.data(), s);
#else
  else LMK_THROW(Unsupported, op, ": built without CUDA");
#endif
  return p;
}

void unpack_ggml(const PackedGgml& w, const Tensor& out, Stream& s) {
  const char* op = "unpack_ggml";
  check_packed(op, w);
  check_contiguous(op, "out", out);
  check_dtype(op, "out", out, {w.type});
  if (out.rank() == 3 || w.n_experts > 1) check_shape(op, "out", out, {w.n_experts, w.n, w.k});
  else check_shape(op, "out", out, {w.n, w.k});
  if (out.device() != w.device())
    LMK_THROW(InvalidArgument, op, ": argument 'out' is on ", out.device().str(), ", the packed weight on ",
              w.device().str());
  check_no_overlap(op, "out", out, "w", w.bytes.tensor());
  if (w.device().is_cpu()) cpu::unpack(packed_view(w), out.data());
#ifdef LMK_WITH_CUDA
  else cuda::unpack(packed_view(w), out.data(), s);
#else
  else LMK_THROW(Unsupported, op, ": built without CUDA");
#endif
}

namespace {
// An affine weight as pack_affine made it.
PackedView packed_view(const char* op, const PackedAffine& w) {
  if (!w.bytes.data())
    LMK_THROW(InvalidArgument, op, ": argument 'w' is an empty PackedAffine (not made by pack_affine)");
  if ((w.bits != 4 && w.bits != 6 && w.bits != 8) || (w.scale_dtype != DType::bf16 && w.scale_dtype != DType::f16) ||
      (w.group_size != 32 && w.group_size != 64 && w.group_size != 128) || w.n <= 0 || w.k <= 0 ||
      w.k % w.group_size != 0 || w.n_experts <= 0)
    LMK_THROW(InvalidArgument, op, ": argument 'w' is not a valid PackedAffine (bits ", w.bits, ", group size ",
              w.group_size, ", scales ", name(w.scale_dtype), ", shape [", w.n_experts, ", ", w.n, ", ", w.k, "])");
  PackedView v;
  v.data = w.bytes.data();
  v.affine_bits = w.bits;
  v.affine_gs = w.group_size;
  v.affine_f16 = w.scale_dtype == DType::f16;
  v.n = w.n;
  v.k = w.k;
  v.row_bytes = w.k * w.bits / 8;
  v.n_experts = w.n_experts;
  check_packed_bytes(op, geometry_of(v), w.n_experts, w.bytes.bytes(), std::to_string(w.bits) + "-bit affine");
  return v;
}

// y = x · Wᵀ for a packed weight v (one matrix; its bytes span `bytes`).
void packed_matmul(const char* op, const Tensor& x, const PackedView& v, const Tensor& bytes, const Tensor& y, Stream& s) {
  check_contiguous(op, "x", x);
  check_dtype(op, "x", x, {DType::f32});
  check_operand(op, "y", y, {DType::f32}, "x", x);
  if (x.device() != bytes.device())
    LMK_THROW(InvalidArgument, op, ": argument 'x' is on ", x.device().str(), ", the packed weight on ",
              bytes.device().str());
  check_rank(op, "x", x, 2);
  check_rank(op, "y", y, 2);
  const int64_t m = x.size(0);
  check_last_dim(op, "x", x, v.k, "K of w");
  check_shape(op, "y", y, {m, v.n});
  check_no_overlap(op, "y", y, "x", x);
  check_no_overlap(op, "y", y, "w", bytes);
  if (x.device().is_cpu()) cpu::quantized_matmul_packed(x.data_as<float>(), m, v, y.data_as<float>());
#ifdef LMK_WITH_CUDA
  else cuda::quantized_matmul_packed(x.data_as<float>(), m, v, y.data_as<float>(), s);
#else
  else LMK_THROW(Unsupported, op, ": built without CUDA");
#endif
}

// Expert-routed rows on packed expert weights v (their bytes span `bytes`).
void packed_matmul_id(const char* op, const Tensor& x, const PackedView& v, const Tensor& bytes, const Tensor& ids,
                      const Tensor& y, int64_t top_k, bool input_per_slot, Stream& s, const Tensor& error_flag) {
  check_contiguous(op, "x", x);
  check_dtype(op, "x", x, {DType::f32});
  if (x.device() != bytes.device())
    LMK_THROW(InvalidArgument, op, ": argument 'x' is on ", x.device().str(), ", the packed weight on ",
              bytes.device().str());
  check_operand(op, "ids", ids, {DType::u32, DType::i32}, "x", x);
  check_operand(op, "y", y, {DType::f32}, "x", x);
  check_rank(op, "x", x, 2);
  if (top_k <= 0) LMK_THROW(InvalidArgument, op, ": top_k must be > 0, got ", top_k);
  const int64_t rows = routed_rows(op, x, ids, y, top_k, input_per_slot, v.n, v.k);
  check_no_overlap(op, "y", y, "x", x);
  check_no_overlap(op, "y", y, "w", bytes);
  uint32_t* flag = routed_flag(op, x, ids, y, error_flag);
  QmmIdArgs a = routed_args(x, ids, y, rows, top_k, input_per_slot);
  a.w.type = v.type;
  a.w.n = v.n;
  a.w.k = v.k;
  a.w.row_bytes = v.row_bytes;
  a.w.n_experts = v.n_experts;
  a.w.expert_stride = v.row_bytes * v.n;
  if (x.device().is_cpu()) {
    check_host_ids(op, a, v.n_experts);
    cpu::quantized_matmul_id_packed(a, v);
  }
#ifdef LMK_WITH_CUDA
  else cuda::quantized_matmul_id_packed(a, v, flag, debug_checks(), s);
#else
  else LMK_THROW(Unsupported, op, ": built without CUDA");
#endif
}
}  // namespace

void quantized_matmul_ggml(const Tensor& x, const PackedGgml& w, const Tensor& y, Stream& s) {
  const char* op = "quantized_matmul_ggml";
  check_packed(op, w);
  if (w.n_experts != 1)
    LMK_THROW(InvalidArgument, op, ": argument 'w' packs ", w.n_experts,
              " experts; use quantized_matmul_id_ggml for expert weights");
  packed_matmul(op, x, packed_view(w), w.bytes.tensor(), y, s);
}

void quantized_matmul(const Tensor& x, const PackedAffine& w, const Tensor& y, Stream& s) {
  const char* op = "quantized_matmul";
  const PackedView v = packed_view(op, w);
  if (w.routed || w.n_experts != 1)
    LMK_THROW(InvalidArgument, op, ": argument 'w' packs an expert weight [", w.n_experts, ", ", w.n, ", ", w.k,
              "]; use quantized_matmul_id");
  packed_matmul(op, x, v, w.bytes.tensor(), y, s);
}

void quantized_matmul_id(const Tensor& x, const PackedAffine& w, const Tensor& ids, const Tensor& y, Stream& s,
                         const Tensor& error_flag) {
  const char* op = "quantized_matmul_id";
  const PackedView v = packed_view(op, w);
  check_rank(op, "ids", ids, 2);
  packed_matmul_id(op, x, v, w.bytes.tensor(), ids, y, ids.size(1), false, s, error_flag);
}

void mul_mv_ext(const Tensor& w, const Tensor& x, const Tensor& y, Stream& s) {
  const char* op = "mul_mv_ext";
  check_contiguous(op, "w", w);
  check_operand(op, "x", x, {DType::f32}, "w", w);
  check_operand(op, "y", y, {DType::f32}, "w", w);
  check_dtype(op, "w", w, kBlockTypes);
  check_rank(op, "w", w, 2);
  check_rank_between(op, "x", x, 2, 3);
  check_rank(op, "y", y, x.rank());
  const int64_t n = w.size(0), k = w.size(1);
  check_block_k(op, "w", w.dtype(), k);
  check_last_dim(op, "x", x, k, "K of w");
  const int64_t m = x.size(-2), batch = x.rank() == 3 ? x.size(0) : 1;
  if (m < 2 || m > 8)
    LMK_THROW(InvalidArgument, op, ": M (dim -2 of 'x') is ", m, ", expected 2..8 (use quantized_matmul_ggml for M = 1)");
  if (x.rank() == 3) check_shape(op, "y", y, {batch, m, n});
  else check_shape(op, "y", y, {m, n});
  check_no_overlap(op, "y", y, "x", x);
  check_no_overlap(op, "y", y, "w", w);
  QmmArgs a{x.data_as<float>(), y.data_as<float>(), mul_checked(op, "batch*M", batch, m), quant_weight(op, w, n, k)};
  run_quantized(op, a, w.device(), MatmulPath::matvec, s);
}

void quantized_matmul_id_ggml(const Tensor& x, const Tensor& w, const Tensor& ids, const Tensor& y, int64_t top_k,
                              bool input_per_slot, Stream& s, const Tensor& error_flag, MatmulPath path) {
  const char* op = "quantized_matmul_id_ggml";
  check_operand(op, "x", x, {DType::f32}, "w", w);
  check_tensor(op, "w", w);
  check_operand(op, "ids", ids, {DType::u32, DType::i32}, "w", w);
  check_operand(op, "y", y, {DType::f32}, "w", w);
  check_dtype(op, "w", w, kBlockTypes);
  check_rank(op, "w", w, 3);
  check_rank(op, "x", x, 2);
  if (top_k <= 0) LMK_THROW(InvalidArgument, op, ": top_k must be > 0, got ", top_k);
  const int64_t e = w.size(0), n = w.size(1), k = w.size(2);
  check_block_k(op, "w", w.dtype(), k);
  const int64_t blocks_per_row = k / dtype_info(w.dtype()).block_elems;
  const int64_t per_expert_blocks = mul_checked(op, "N*K/QK", n, blocks_per_row);
  if (w.stride(2) != 1 || (n > 1 && w.stride(1) != blocks_per_row))
    LMK_THROW(InvalidArgument, op, ": argument 'w' must have contiguous rows within each expert, got strides ",
              shape_str(w.strides()), " (in blocks) for shape ", shape_str(w.shape()));
  if (e > 1 && w.stride(0) < per_expert_blocks)
    LMK_THROW(InvalidArgument, op, ": argument 'w' has an expert stride of ", w.stride(0), " blocks, less than the ",
              per_expert_blocks, " blocks of one expert [", n, ", ", k, "]");
  const int64_t rows = routed_rows(op, x, ids, y, top_k, input_per_slot, n, k);
  // The bytes w really spans: (E - 1) expert strides plus one expert. (Tensor::span_bytes of a
  // strided block tensor counts the innermost dim in values, not blocks, and overestimates.)
  const int64_t w_bytes = mul_checked(op, "w bytes", e - 1, w.stride(0) * dtype_info(w.dtype()).block_bytes) +
                          mul_checked(op, "w bytes", n, storage_bytes(w.dtype(), k));
  const int64_t w_span[1] = {w_bytes};
  const Tensor w_extent(w.data(), DType::u8, w_span, w.device());
  check_no_overlap(op, "y", y, "x", x);
  check_no_overlap(op, "y", y, "w", w_extent);
  uint32_t* flag = routed_flag(op, x, ids, y, error_flag);

  QmmIdArgs a = routed_args(x, ids, y, rows, top_k, input_per_slot);
  a.w = quant_weight(op, w, n, k);
  a.w.n_experts = e;
  a.w.expert_stride = e > 1 ? mul_checked(op, "expert stride", w.stride(0), dtype_info(w.dtype()).block_bytes)
                            : a.w.row_bytes * n;

  if (w.device().is_cpu()) {
    check_host_ids(op, a, e);
    cpu::quantized_matmul_id(a);
  }
#ifdef LMK_WITH_CUDA
  else {
    cuda::quantized_matmul_id(a, path, flag, debug_checks(), s);
  }
#else
  else {
    LMK_THROW(Unsupported, op, ": built without CUDA");
  }
#endif
}

void quantized_matmul_id_ggml(const Tensor& x, const PackedGgml& w, const Tensor& ids, const Tensor& y, int64_t top_k,
                              bool input_per_slot, Stream& s, const Tensor& error_flag) {
  const char* op = "quantized_matmul_id_ggml";
  check_packed(op, w);
  packed_matmul_id(op, x, packed_view(w), w.bytes.tensor(), ids, y, top_k, input_per_slot, s, error_flag);
}

void dense_mm(const Tensor& src0, const Tensor& src1, const Tensor& dst, Stream& s) {
  const char* op = "dense_mm";
  DenseArgs a = check_batched(op, src0, src1, dst, {DType::bf16, DType::f16, DType::f32});
  a.xround = a.wt;  // bf16/f16 weights: activations rounded to the weight dtype (f32: kept)
  dispatch_dense(op, a, src0.device(), s);
}

void dense_gemv_bf16(const Tensor& src0, const Tensor& src1, const Tensor& dst, Stream& s) {
  const char* op = "dense_gemv_bf16";
  DenseArgs a = check_batched(op, src0, src1, dst, {DType::bf16});
  a.xround = DType::f32;
  a.own_kernel = true;
  dispatch_dense(op, a, src0.device(), s);
}

void dense_gemm(const Tensor& a, const Tensor& b, const Tensor& c, Stream& s) {
  const char* op = "dense_gemm";
  check_contiguous(op, "a", a);
  check_contiguous(op, "b", b);
  check_contiguous(op, "c", c);
  check_dtype(op, "a", a, {DType::f16, DType::bf16});
  check_same_dtype(op, "b", b, "a", a);
  check_same_dtype(op, "c", c, "a", a);
  check_same_device(op, "b", b, "a", a);
  check_same_device(op, "c", c, "a", a);
  check_rank(op, "a", a, 2);
  check_rank(op, "b", b, 2);
  check_rank(op, "c", c, 2);
  const int64_t m = a.size(0), k = a.size(1), n = b.size(0);
  check_last_dim(op, "b", b, k, "K of a");
  check_shape(op, "c", c, {m, n});
  check_no_overlap(op, "c", c, "a", a);
  check_no_overlap(op, "c", c, "b", b);
  DenseArgs d;
  d.w = b.data();
  d.wt = b.dtype();
  d.x = a.data();
  d.xt = a.dtype();
  d.y = c.data();
  d.yt = c.dtype();
  d.xround = DType::f32;  // a is already in the weight dtype: nothing to round
  d.m = m;
  d.n = n;
  d.k = k;
  dispatch_dense(op, d, a.device(), s);
}

void dense_matvec(const Tensor& a, const Tensor& b, const Tensor& c, Stream& s) {
  const char* op = "dense_matvec";
  check_contiguous(op, "a", a);
  check_operand(op, "b", b, {DType::f16, DType::bf16, DType::f32}, "a", a);
  check_operand(op, "c", c, {DType::f32}, "a", a);
  check_dtype(op, "a", a, {DType::f32});
  check_rank(op, "b", b, 2);
  check_rank_between(op, "a", a, 1, 2);
  check_rank(op, "c", c, a.rank());
  const int64_t n = b.size(0), k = b.size(1);
  if (a.rank() == 2 && a.size(0) != 1)
    LMK_THROW(InvalidArgument, op, ": argument 'a' has shape ", shape_str(a.shape()), ", M must be 1");
  check_last_dim(op, "a", a, k, "K of b");
  if (a.rank() == 2) check_shape(op, "c", c, {1, n});
  else check_shape(op, "c", c, {n});
  check_no_overlap(op, "c", c, "a", a);
  check_no_overlap(op, "c", c, "b", b);
  DenseArgs d;
  d.w = b.data();
  d.wt = b.dtype();
  d.x = a.data();
  d.y = c.data();
  d.xround = DType::f32;
  d.own_kernel = true;
  d.m = 1;
  d.n = n;
  d.k = k;
  dispatch_dense(op, d, a.device(), s);
}

void matmul_workspace_reserve(Stream& s, int64_t scratch_bytes) {
  if (scratch_bytes < 0) LMK_THROW(InvalidArgument, "matmul_workspace_reserve: negative size ", scratch_bytes);
#ifdef LMK_WITH_CUDA
  require_cuda("matmul_workspace_reserve", s.device());
  cuda::workspace_reserve(s, scratch_bytes);
#endif
}

}  // namespace lmk
