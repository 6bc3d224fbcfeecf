// f32 CUDA-core tiled kernel for MLX affine weights: any bits (4, 6, 8; qmm_affine's one byte
// per code is the 8-bit layout), any group size, any alignment. The correctness fallback
// (6-bit at small M, unaligned views) and qmm_affine's kernel.
//
// Block tile 64 activation rows x 64 weight rows, k steps of 32 staged in shared memory as f32
// (weights dequantized as fmaf(s, q, b) from byte loads), 4 x 4 outputs per thread; each k
// step's products are summed apart and then added to the accumulators (blocked summation).
#include "ops/affine/kernels.cuh"

namespace lmk::cuda::affine {
namespace {

__global__ void __launch_bounds__(simt::kThreads) affine_simt_kernel(const Operands o, const Items it) {
  constexpr int BM = simt::kBM, BN = simt::kBN, BK = simt::kBK;
  __shared__ __align__(16) float xs[BK][BM + 4];
  __shared__ __align__(16) float wsm[BK][BN + 4];
  __shared__ int s_xrow[BM], s_yrow[BM];

  const int tid = int(threadIdx.x);
  const int item = it.item_base + int(blockIdx.y);
  const int n0 = int(blockIdx.x) * BN;
  const ItemHeader hdr = item_header(it, item);
  if (hdr.count == 0) return;
  if (hdr.expert < 0) {
    invalid_row(o, it, item_yrow(it, item, 0), n0, min(n0 + BN, o.N));
    return;
  }
  const int count = hdr.count;
  if (tid < BM) {
    if (tid < count) {
      const int yr = item_yrow(it, item, tid);
      s_yrow[tid] = yr;
      s_xrow[tid] = item_xrow(it, yr);
    } else {
      s_yrow[tid] = s_xrow[tid] = -1;
    }
  }
  __syncthreads();

  const uint8_t* wexp = o.w + int64_t(hdr.expert) * o.expert_bytes;
  const int64_t sexp = int64_t(hdr.expert) * o.expert_groups;
  // Staging: thread -> row tid/4 (activation row for x, weight row for w), 8 consecutive k.
  const int sr = tid >> 2, sk = (tid & 3) * 8;
  const int xrow = s_xrow[sr];
  const int wn = n0 + sr;
  const bool wok = wn < o.N;
  const uint8_t* wrow = wexp + int64_t(wn) * o.row_bytes;
  // Compute: thread -> rows ty*4 .. +3, columns tx*4 .. +3.
  const int tx = tid & 15, ty = tid >> 4;
  float acc[4][4] = {};

  for (int k0 = 0; k0 < o.K; k0 += BK) {
#pragma unroll
    for (int i = 0; i < 8; ++i) {
      const int k = k0 + sk + i;
      xs[sk + i][sr] = (xrow >= 0 && k < o.K) ? load_f(o.x, int64_t(xrow) * o.K + k, o.x_dtype) : 0.0f;
      float w = 0.0f;
      if (wok && k < o.K) {
        const int64_t si = sexp + int64_t(wn) * o.groups + k / o.gs;
        const float s = load_f(o.scales, si, o.s_dtype), b = load_f(o.biases, si, o.s_dtype);
        w = fmaf(s, float(code_at(wrow, k, o.bits, o.row_bytes)), b);
      }
      wsm[sk + i][sr] = w;
    }
    __syncthreads();
    float part[4][4] = {};
#pragma unroll 8
    for (int kk = 0; kk < BK; ++kk) {
      const float4 a = *reinterpret_cast<const float4*>(&xs[kk][ty * 4]);
      const float4 b = *reinterpret_cast<const float4*>(&wsm[kk][tx * 4]);
      const float av[4] = {a.x, a.y, a.z, a.w}, bv[4] = {b.x, b.y, b.z, b.w};
#pragma unroll
      for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int j = 0; j < 4; ++j) part[i][j] = fmaf(av[i], bv[j], part[i][j]);
    }
#pragma unroll
    for (int i = 0; i < 4; ++i)
#pragma unroll
      for (int j = 0; j < 4; ++j) acc[i][j] += part[i][j];
    __syncthreads();
  }

#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const int m = ty * 4 + i;
    if (m >= count) continue;
    const int64_t ybase = int64_t(s_yrow[m]) * o.N;
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const int n = n0 + tx * 4 + j;
      if (n < o.N) store_f(o.y, ybase + n, acc[i][j], o.y_dtype);
    }
  }
}

}  // namespace

void launch_simt(const Operands& o, Items items, int n_items, cudaStream_t s) {
  const unsigned nb = unsigned(ceil_div(o.N, simt::kBN));
  for (int base = 0; base < n_items; base += 65535) {
    items.item_base = base;
    affine_simt_kernel<<<dim3(nb, unsigned(min(65535, n_items - base))), simt::kThreads, 0, s>>>(o, items);
    LMK_LAUNCH_CHECK(affine_simt_kernel);
  }
}

}  // namespace lmk::cuda::affine
