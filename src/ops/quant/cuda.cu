// CUDA kernels of the quant family. Every value is computed with the same LMK_HD code as the
// CPU (formats/blocks.h), so results are bit-identical across backends.
#include <map>
#include <mutex>

#include "cuda/common.cuh"
#include "formats/blocks.h"
#include "ops/quant/backend.h"

namespace lmk::cuda {

namespace {

using namespace lmk::blocks;

// ---- stores of 8/16 consecutive f32 results in the output dtype ------------------------------------

template <typename Out, int N>
__device__ __forceinline__ void store_run(Out* dst, const float* v, bool vec) {
  static_assert(N % 8 == 0);
  if (vec) {
    if constexpr (sizeof(Out) == 4) {
#pragma unroll
      for (int i = 0; i < N; i += 4) {
        Packed<float, 4> p;
#pragma unroll
        for (int j = 0; j < 4; ++j) p.v[j] = v[i + j];
        store_packed<float, 4>(reinterpret_cast<float*>(dst) + i, p);
      }
    } else {
#pragma unroll
      for (int i = 0; i < N; i += 8) {
        Packed<Out, 8> p;
#pragma unroll
        for (int j = 0; j < 8; ++j) p.v[j] = from_f32<Out>(v[i + j]);
        store_packed<Out, 8>(dst + i, p);
      }
    }
  } else {
#pragma unroll
    for (int i = 0; i < N; ++i) dst[i] = from_f32<Out>(v[i]);
  }
}

// ---- GGML block dequant --------------------------------------------------------------------------------
// A CTA stages kBlocks consecutive blocks (a multiple of 16 bytes) in shared memory with 16-byte
// loads, then each thread decodes one 16-value group and writes it with 16-byte stores.

template <typename T>
struct DequantGeom {
  static constexpr int kBlocks = T::qk == 32 ? 128 : 16;
  static constexpr int kThreads = kBlocks * T::groups;  // 256
  static constexpr int kBytes = kBlocks * T::block_bytes;
  static_assert(kBytes % 16 == 0);
};

template <typename T, typename Out>
__global__ void __launch_bounds__(DequantGeom<T>::kThreads)
    dequant_kernel(const uint8_t* __restrict__ src, Out* __restrict__ dst, int64_t nblocks, bool vec_src, bool vec_dst) {
  using G = DequantGeom<T>;
  __shared__ alignas(16) uint8_t sm[G::kBytes];
  const int64_t block0 = int64_t(blockIdx.x) * G::kBlocks;
  const int nb = nblocks - block0 < G::kBlocks ? int(nblocks - block0) : G::kBlocks;
  const int bytes = nb * T::block_bytes;
  const uint8_t* chunk = src + block0 * T::block_bytes;
  if (vec_src) {
    const int n16 = bytes / 16;
    for (int i = threadIdx.x; i < n16; i += blockDim.x)
      reinterpret_cast<int4*>(sm)[i] = __ldcs(reinterpret_cast<const int4*>(chunk) + i);
    for (int i = n16 * 16 + threadIdx.x; i < bytes; i += blockDim.x) sm[i] = chunk[i];
  } else {  // 2-byte aligned source (every block size is even)
    for (int i = threadIdx.x; i < bytes / 2; i += blockDim.x)
      reinterpret_cast<uint16_t*>(sm)[i] = reinterpret_cast<const uint16_t*>(chunk)[i];
  }
  __syncthreads();
  const int blk = threadIdx.x / T::groups, g = threadIdx.x % T::groups;
  if (blk >= nb) return;
  const auto& b = *reinterpret_cast<const typename T::block*>(sm + blk * T::block_bytes);
  int8_t q[16];
  float scale, offset, v[16];
  T::group16(b, g, q, scale, offset);
#pragma unroll
  for (int i = 0; i < 16; ++i) v[i] = add_rn(mul_rn(scale, float(q[i])), offset);
  store_run<Out, 16>(dst + (block0 + blk) * T::qk + 16 * g, v, vec_dst);
}

// ---- id checks (embeddings) -----------------------------------------------------------------------------

__device__ __forceinline__ int64_t read_id(const void* ids, bool u32, int64_t r) {
  return u32 ? int64_t(static_cast<const uint32_t*>(ids)[r]) : int64_t(static_cast<const int32_t*>(ids)[r]);
}

__device__ __forceinline__ void record_bad(uint32_t* flag, unsigned long long* first_bad, int64_t r, int64_t id) {
  if (flag) atomicOr(flag, 1u);
  if (first_bad) atomicMin(first_bad, (unsigned long long)(r) << 32 | (unsigned long long)(uint32_t(id)));
}

// ---- MLX affine dequant / embedding (8 codes per thread) -----------------------------------------------
// ids == nullptr: row r of dst is row r of the table; else row ids[r] (invalid ids give zeros).

template <int Bits, typename Out>
__global__ void __launch_bounds__(256)
    affine_kernel(AffineArgs a, const void* __restrict__ ids, bool ids_u32, int64_t n_rows, int64_t vocab,
                  Out* __restrict__ dst, bool vec_dst, uint32_t* flag, unsigned long long* first_bad) {
  const int64_t per_row = a.k / 8;
  const int64_t unit = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (unit >= n_rows * per_row) return;
  const int64_t r = unit / per_row, k0 = (unit % per_row) * 8;
  const int64_t row = ids ? read_id(ids, ids_u32, r) : r;
  float v[8];
  if (row < 0 || row >= vocab) {
#pragma unroll
    for (int i = 0; i < 8; ++i) v[i] = 0.0f;
    store_run<Out, 8>(dst + r * a.k + k0, v, vec_dst);
    if (k0 == 0) record_bad(flag, first_bad, r, row);
    return;
  }
  uint32_t q[8];
  affine_unpack8<Bits>(static_cast<const uint8_t*>(a.packed) + row * a.row_bytes + k0 * Bits / 8, q);
  const int64_t g = row * (a.k / a.group_size) + k0 / a.group_size;
  const float s = affine_param(a.scales, g, a.param_dtype), bias = affine_param(a.biases, g, a.param_dtype);
#pragma unroll
  for (int i = 0; i < 8; ++i) v[i] = affine_value(s, bias, q[i]);
  store_run<Out, 8>(dst + r * a.k + k0, v, vec_dst);
}

// ---- qdq_legacy: one thread per 32-value block, staged through padded shared memory -------------------

template <bool Q4>
__global__ void __launch_bounds__(128) qdq_legacy_kernel(const float* __restrict__ x, float* y, int64_t nblocks) {
  constexpr int kBlocks = 128, kStride = 33;
  __shared__ float sm[kBlocks * kStride];
  const int64_t block0 = int64_t(blockIdx.x) * kBlocks;
  const int nb = nblocks - block0 < kBlocks ? int(nblocks - block0) : kBlocks;
  const float* xs = x + block0 * 32;
  for (int i = threadIdx.x; i < nb * 32; i += blockDim.x) sm[(i / 32) * kStride + i % 32] = xs[i];
  __syncthreads();
  if (int(threadIdx.x) < nb) {
    float* row = sm + threadIdx.x * kStride;
    float out[32];
    if constexpr (Q4) {
      block_q4_0 b;
      quantize_block_q4_0(row, &b);
      Q4_0::dequant(b, out);
    } else {
      block_q8_0 b;
      quantize_block_q8_0(row, &b);
      Q8_0::dequant(b, out);
    }
#pragma unroll
    for (int j = 0; j < 32; ++j) row[j] = out[j];
  }
  __syncthreads();
  float* ys = y + block0 * 32;
  for (int i = threadIdx.x; i < nb * 32; i += blockDim.x) ys[i] = sm[(i / 32) * kStride + i % 32];
}

// ---- qdq_affine ---------------------------------------------------------------------------------------

__device__ __forceinline__ void affine_init_group(const float* x, float* s_out, float* b_out, uint8_t* q, int64_t begin,
                                                  int64_t end, int64_t step, float mn, float mx, float top) {
  float s = div_rn(add_rn(mx, -mn), top);
  if (!(s > 0.0f)) s = 1.0f;
  for (int64_t i = begin; i < end; i += step) {
    const float z = round_away(div_rn(add_rn(x[i], -mn), s));
    q[i] = uint8_t(z > 0.0f ? (z >= top ? top : z) : 0.0f);
  }
  *s_out = s;
  *b_out = mn;
}

// Warp per group (gs >= 32) or thread per group (gs < 32).
__global__ void __launch_bounds__(256) qdq_affine_init_kernel(const float* __restrict__ w, float* scales, float* biases,
                                                              uint8_t* q, int64_t groups, int64_t gs, int n_bins) {
  const float top = float(n_bins - 1);
  const int64_t tid = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (gs < 32) {
    if (tid >= groups) return;
    const float* x = w + tid * gs;
    float mn = x[0], mx = x[0];
    for (int64_t i = 1; i < gs; ++i) {
      mn = min_total(mn, x[i]);
      mx = max_total(mx, x[i]);
    }
    float s, b;
    affine_init_group(x, &s, &b, q + tid * gs, 0, gs, 1, mn, mx, top);
    scales[tid] = s;
    biases[tid] = b;
    return;
  }
  const int64_t g = tid / 32;
  const int lane = threadIdx.x % 32;
  if (g >= groups) return;
  const float* x = w + g * gs;
  float mn = x[lane], mx = x[lane];
  for (int64_t i = lane + 32; i < gs; i += 32) {
    mn = min_total(mn, x[i]);
    mx = max_total(mx, x[i]);
  }
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    mn = min_total(mn, __shfl_xor_sync(0xffffffffu, mn, o));
    mx = max_total(mx, __shfl_xor_sync(0xffffffffu, mx, o));
  }
  float s, b;
  affine_init_group(x, &s, &b, q + g * gs, lane, gs, 32, mn, mx, top);
  if (lane == 0) {
    scales[g] = s;
    biases[g] = b;
  }
}

__global__ void __launch_bounds__(256) qdq_affine_forward_kernel(const uint8_t* __restrict__ q, const float* __restrict__ s,
                                                                 const float* __restrict__ b, float* __restrict__ out,
                                                                 int64_t n, int64_t gs) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n) return;
  const int64_t g = i / gs;
  out[i] = add_rn(mul_rn(float(q[i]), s[g]), b[g]);
}

// d[g] = sum over the group of (q ? q[i] : 1) * dy[i], f32 accumulation.
__global__ void __launch_bounds__(256) qdq_affine_backward_kernel(const uint8_t* __restrict__ q, const float* __restrict__ dy,
                                                                  float* __restrict__ d, int64_t groups, int64_t gs) {
  const int64_t tid = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (gs < 32) {
    if (tid >= groups) return;
    float acc = 0.0f;
    for (int64_t i = tid * gs; i < (tid + 1) * gs; ++i) acc = add_rn(acc, q ? mul_rn(float(q[i]), dy[i]) : dy[i]);
    d[tid] = acc;
    return;
  }
  const int64_t g = tid / 32;
  const int lane = threadIdx.x % 32;
  if (g >= groups) return;
  float acc = 0.0f;
  for (int64_t i = g * gs + lane; i < (g + 1) * gs; i += 32) acc = add_rn(acc, q ? mul_rn(float(q[i]), dy[i]) : dy[i]);
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) acc += __shfl_xor_sync(0xffffffffu, acc, o);
  if (lane == 0) d[g] = acc;
}

// ---- embedding on GGML block tables: one thread per 16-value group of an output row --------------------

template <typename T>
__global__ void __launch_bounds__(256)
    embedding_block_kernel(const uint8_t* __restrict__ table, const void* __restrict__ ids, bool ids_u32, int64_t t,
                           int64_t vocab, int64_t dim, float* __restrict__ out, bool vec_dst, uint32_t* flag,
                           unsigned long long* first_bad) {
  const int64_t per_row = dim / 16;
  const int64_t unit = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (unit >= t * per_row) return;
  const int64_t r = unit / per_row, u = unit % per_row;
  const int64_t id = read_id(ids, ids_u32, r);
  float v[16];
  if (id < 0 || id >= vocab) {
#pragma unroll
    for (int i = 0; i < 16; ++i) v[i] = 0.0f;
    if (u == 0) record_bad(flag, first_bad, r, id);
  } else {
    const int64_t blk = id * (dim / T::qk) + u / T::groups;
    const auto& b = *reinterpret_cast<const typename T::block*>(table + blk * T::block_bytes);
    int8_t q[16];
    float scale, offset;
    T::group16(b, int(u % T::groups), q, scale, offset);
#pragma unroll
    for (int i = 0; i < 16; ++i) v[i] = add_rn(mul_rn(scale, float(q[i])), offset);
  }
  store_run<float, 16>(out + r * dim + 16 * u, v, vec_dst);
}

template <typename In>
__global__ void __launch_bounds__(256)
    embedding_dense_kernel(const In* __restrict__ table, const void* __restrict__ ids, bool ids_u32, int64_t t,
                           int64_t vocab, int64_t dim, float* __restrict__ out, uint32_t* flag,
                           unsigned long long* first_bad) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= t * dim) return;
  const int64_t r = i / dim, c = i % dim;
  const int64_t id = read_id(ids, ids_u32, r);
  if (id < 0 || id >= vocab) {
    out[i] = 0.0f;
    if (c == 0) record_bad(flag, first_bad, r, id);
    return;
  }
  out[i] = to_f32(table[id * dim + c]);
}

// ---- debug-mode error reporting ----------------------------------------------------------------------

// One 8-byte scratch word per device for the first invalid (row, id), allocated on first use.
unsigned long long* debug_slot(int device) {
  static std::mutex mu;
  static std::map<int, unsigned long long*> slots;
  std::lock_guard<std::mutex> lock(mu);
  auto& p = slots[device];
  if (!p) LMK_CUDA_CHECK(cudaMalloc(&p, sizeof(unsigned long long)));
  return p;
}

struct IdCheck {
  unsigned long long* slot = nullptr;
  cudaStream_t stream;
  IdCheck(bool debug, Device d, cudaStream_t s) : stream(s) {
    if (!debug) return;
    slot = debug_slot(d.index);
    LMK_CUDA_CHECK(cudaMemsetAsync(slot, 0xFF, sizeof(unsigned long long), s));
  }
  void finish(const char* op, int64_t vocab, bool ids_u32) {
    if (!slot) return;
    unsigned long long v = 0;
    LMK_CUDA_CHECK(cudaMemcpyAsync(&v, slot, sizeof v, cudaMemcpyDeviceToHost, stream));
    LMK_CUDA_CHECK(cudaStreamSynchronize(stream));
    if (v != ~0ull) {
      const uint32_t raw = uint32_t(v);
      const int64_t id = ids_u32 ? int64_t(raw) : int64_t(int32_t(raw));
      LMK_THROW(InvalidArgument, op, ": invalid id ", id, " at row ", int64_t(v >> 32), " (V=", vocab, ")");
    }
  }
};

unsigned grid_for(int64_t units, int threads) { return unsigned(ceil_div(units, threads)); }

template <typename Fn>
void dispatch_bits(int bits, Fn&& fn) {
  switch (bits) {
    case 4: fn(std::integral_constant<int, 4>{}); break;
    case 6: fn(std::integral_constant<int, 6>{}); break;
    case 8: fn(std::integral_constant<int, 8>{}); break;
    default: LMK_THROW(Unsupported, "affine: bits ", bits, " not supported, supported {4, 6, 8}");
  }
}

}  // namespace

void dequantize(const Tensor& src, const Tensor& dst, Stream& s) {
  const bool vec_src = is_aligned(src.data(), 16), vec_dst = is_aligned(dst.data(), 16);
  const auto* p = static_cast<const uint8_t*>(src.data());
  visit_block_format(src.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    using G = DequantGeom<T>;
    const int64_t nblocks = src.nbytes() / T::block_bytes;
    dispatch_float("dequantize", dst.dtype(), [&](auto otag) {
      using Out = typename decltype(otag)::type;
      dequant_kernel<T, Out><<<grid_for(nblocks, G::kBlocks), G::kThreads, 0, stream_of(s)>>>(
          p, dst.data_as<Out>(), nblocks, vec_src, vec_dst);
      LMK_LAUNCH_CHECK(dequant_kernel);
    });
  });
}

void dequant_affine(const AffineArgs& a, int64_t rows, const Tensor& dst, Stream& s) {
  const bool vec = is_aligned(dst.data(), 16);
  dispatch_bits(a.bits, [&](auto bits) {
    dispatch_float("dequant_affine", dst.dtype(), [&](auto otag) {
      using Out = typename decltype(otag)::type;
      affine_kernel<decltype(bits)::value, Out><<<grid_for(rows * (a.k / 8), 256), 256, 0, stream_of(s)>>>(
          a, nullptr, true, rows, rows, dst.data_as<Out>(), vec, nullptr, nullptr);
      LMK_LAUNCH_CHECK(affine_kernel);
    });
  });
}

void qdq_legacy(DType format, const Tensor& x, const Tensor& y, Stream& s) {
  const int64_t nblocks = x.numel() / 32;
  if (format == DType::q4_0)
    qdq_legacy_kernel<true><<<grid_for(nblocks, 128), 128, 0, stream_of(s)>>>(x.data_as<float>(), y.data_as<float>(), nblocks);
  else
    qdq_legacy_kernel<false><<<grid_for(nblocks, 128), 128, 0, stream_of(s)>>>(x.data_as<float>(), y.data_as<float>(), nblocks);
  LMK_LAUNCH_CHECK(qdq_legacy_kernel);
}

void qdq_affine_init(const Tensor& w, const Tensor& scales, const Tensor& biases, const Tensor& q, int64_t gs, int n_bins,
                     Stream& s) {
  const int64_t groups = w.numel() / gs;
  const int64_t threads = gs < 32 ? groups : groups * 32;
  qdq_affine_init_kernel<<<grid_for(threads, 256), 256, 0, stream_of(s)>>>(
      w.data_as<float>(), scales.data_as<float>(), biases.data_as<float>(), q.data_as<uint8_t>(), groups, gs, n_bins);
  LMK_LAUNCH_CHECK(qdq_affine_init_kernel);
}

void qdq_affine_forward(const Tensor& q, const Tensor& scales, const Tensor& biases, const Tensor& out, int64_t gs,
                        Stream& s) {
  const int64_t n = q.numel();
  qdq_affine_forward_kernel<<<grid_for(n, 256), 256, 0, stream_of(s)>>>(
      q.data_as<uint8_t>(), scales.data_as<float>(), biases.data_as<float>(), out.data_as<float>(), n, gs);
  LMK_LAUNCH_CHECK(qdq_affine_forward_kernel);
}

void qdq_affine_backward_scales(const Tensor& q, const Tensor& dy, const Tensor& d_scales, int64_t gs, Stream& s) {
  const int64_t groups = q.numel() / gs;
  const int64_t threads = gs < 32 ? groups : groups * 32;
  qdq_affine_backward_kernel<<<grid_for(threads, 256), 256, 0, stream_of(s)>>>(
      q.data_as<uint8_t>(), dy.data_as<float>(), d_scales.data_as<float>(), groups, gs);
  LMK_LAUNCH_CHECK(qdq_affine_backward_kernel);
}

void qdq_affine_backward_biases(const Tensor& dy, const Tensor& d_biases, int64_t gs, Stream& s) {
  const int64_t groups = dy.numel() / gs;
  const int64_t threads = gs < 32 ? groups : groups * 32;
  qdq_affine_backward_kernel<<<grid_for(threads, 256), 256, 0, stream_of(s)>>>(
      nullptr, dy.data_as<float>(), d_biases.data_as<float>(), groups, gs);
  LMK_LAUNCH_CHECK(qdq_affine_backward_kernel);
}

void embedding_ggml(const Tensor& table, const Tensor& ids, const Tensor& out, uint32_t* flag, bool debug, Stream& s) {
  const int64_t t = ids.numel(), vocab = table.size(0), dim = table.size(1);
  const bool u32 = ids.dtype() == DType::u32;
  IdCheck check(debug, out.device(), stream_of(s));
  const bool block = visit_block_format(table.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    embedding_block_kernel<T><<<grid_for(t * (dim / 16), 256), 256, 0, stream_of(s)>>>(
        static_cast<const uint8_t*>(table.data()), ids.data(), u32, t, vocab, dim, out.data_as<float>(),
        is_aligned(out.data(), 16), flag, check.slot);
    LMK_LAUNCH_CHECK(embedding_block_kernel);
  });
  if (!block) {
    dispatch_float("embedding_ggml", table.dtype(), [&](auto tag) {
      using In = typename decltype(tag)::type;
      embedding_dense_kernel<In><<<grid_for(t * dim, 256), 256, 0, stream_of(s)>>>(
          table.data_as<In>(), ids.data(), u32, t, vocab, dim, out.data_as<float>(), flag, check.slot);
      LMK_LAUNCH_CHECK(embedding_dense_kernel);
    });
  }
  check.finish("embedding_ggml", vocab, u32);
}

void embedding_affine(const AffineArgs& a, int64_t vocab, const Tensor& ids, const Tensor& out, uint32_t* flag, bool debug,
                      Stream& s) {
  const int64_t t = ids.numel();
  const bool u32 = ids.dtype() == DType::u32;
  IdCheck check(debug, out.device(), stream_of(s));
  dispatch_bits(a.bits, [&](auto bits) {
    affine_kernel<decltype(bits)::value, float><<<grid_for(t * (a.k / 8), 256), 256, 0, stream_of(s)>>>(
        a, ids.data(), u32, t, vocab, out.data_as<float>(), is_aligned(out.data(), 16), flag,
        check.slot);
    LMK_LAUNCH_CHECK(affine_kernel);
  });
  check.finish("embedding_affine", vocab, u32);
}

}  // namespace lmk::cuda
