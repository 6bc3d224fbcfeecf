// Quantized mat-mat on tensor cores (spec §3.1 M > 8, §3.3 grouped pieces):
// y[m, n] = Σ_k bf16(x[m, k]) · bf16(dequant_f32(W)[n, k]) with f32 accumulation
// (mma.sync.m16n8k16 bf16). Activations are converted to bf16 once (RNE) before the launch;
// each weight is dequantized exactly in f32 inside the tile loop and rounded once to bf16.
//
// Tile: BM activation rows x 128 weight rows x 32 values of K, 8 warps (2 along M x 4 along N,
// each 16·BM/32 x 32). Per K-step the activation tile arrives by cp.async (16-byte copies,
// rows gathered through the item's row list, missing rows zero-filled) and the weight tile is
// decoded by the format decoders (two quad tasks per thread) into registers a step ahead, then
// stored as bf16; both tiles are double-buffered in shared memory (padded rows: conflict-free
// ldmatrix), one __syncthreads per step. Grid: (weight row tiles, items); routed items with an
// index beyond the device-side item count exit at once.
#pragma once
#include "ops/matmul/formats.cuh"

namespace lmk::cuda::mm {

struct QmmParams {
  const __nv_bfloat16* xb = nullptr;  // bf16 activations, row stride k
  int64_t k = 0;
  float* y = nullptr;
  int64_t n = 0;
  const uint8_t* w = nullptr;
  int64_t row_bytes = 0, expert_stride = 0;
  int64_t nsb = 0;  // K-steps (k / 32)
  bool fast = false;
  RowSource rs;     // plain (per_item = BM) or grouped (count <= BM)
};

constexpr int kQmmBN = 128, kQmmPitch = 40;  // weight rows per tile; bf16 per smem row (32 + 8 pad)

__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], const void* p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_u32(p)));
}

__device__ __forceinline__ void mma_bf16(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
      "{%0, %1, %2, %3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

__device__ __forceinline__ uint32_t pack_bf16(float lo, float hi) {
  const __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
  return *reinterpret_cast<const uint32_t*>(&v);
}

template <class F, int BM>
__global__ void __launch_bounds__(256) qmm_kernel(const QmmParams p) {
  constexpr int BN = kQmmBN, PITCH = kQmmPitch, MI = BM / 32, XT = BM * 4 / 256;
  static_assert(BM == 64 || BM == 128, "BM");
  __shared__ __align__(16) __nv_bfloat16 xs[2][BM][PITCH];
  __shared__ __align__(16) __nv_bfloat16 ws[2][BN][PITCH];
  __shared__ int64_t yrow_s[BM];
  __shared__ int64_t xrow_s[BM];

  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int64_t item = blockIdx.y;
  if (item >= item_count(p.rs)) return;
  const ItemHead h = item_head(p.rs, item);
  stage_item_rows<BM>(p.rs, h, tid, yrow_s, xrow_s);
  __syncthreads();

  const int64_t n0 = int64_t(blockIdx.x) * BN;
  const uint8_t* wb = p.w + h.expert * p.expert_stride;
  const int c = tid & 3;
  const uint8_t* wrow[2];
  bool wvalid[2];
#pragma unroll
  for (int j = 0; j < 2; ++j) {
    const int64_t n = n0 + (tid >> 2) + 64 * j;
    wvalid[j] = n < p.n;
    wrow[j] = wb + (wvalid[j] ? n : 0) * p.row_bytes;
  }

  auto load_x = [&](int buf, int64_t kt) {
#pragma unroll
    for (int j = 0; j < XT; ++j) {
      const int i = tid + 256 * j, row = i >> 2, ch = i & 3;
      const int64_t xr = xrow_s[row];
      const __nv_bfloat16* src = p.xb + (xr < 0 ? 0 : xr * p.k + kt * 32 + ch * 8);
      cp_async16(&xs[buf][row][ch * 8], src, xr < 0 ? 0 : 16);
    }
  };
  using Raw = typename F::Raw;
  auto load_w = [&](int64_t kt, Raw (&raw)[2]) {
#pragma unroll
    for (int j = 0; j < 2; ++j) raw[j] = F::load(GlobalBytes{p.fast}, wrow[j], kt, c);
  };
  auto store_w = [&](int buf, int64_t kt, const Raw (&raw)[2]) {
#pragma unroll
    for (int j = 0; j < 2; ++j) {
      Dec d;
      decode_f32<F>(raw[j], kt, d);
      float w[8];
#pragma unroll
      for (int i = 0; i < 8; ++i) {
        const float sc = i < 4 ? d.sc0 : d.sc1;
        w[i] = F::kMin ? fmaf(sc, d.v[i], i < 4 ? d.off0 : d.off1) : sc * d.v[i];
        if (!wvalid[j]) w[i] = 0.0f;
      }
      const int row = (tid >> 2) + 64 * j;
      *reinterpret_cast<uint2*>(&ws[buf][row][4 * c]) = make_uint2(pack_bf16(w[0], w[1]), pack_bf16(w[2], w[3]));
      *reinterpret_cast<uint2*>(&ws[buf][row][16 + 4 * c]) = make_uint2(pack_bf16(w[4], w[5]), pack_bf16(w[6], w[7]));
    }
  };

  const int warp_m = warp >> 2, warp_n = warp & 3;
  const int m_base = warp_m * (BM / 2), n_base = warp_n * 32;
  float acc[MI][4][4];
#pragma unroll
  for (int i = 0; i < MI; ++i)
#pragma unroll
    for (int j = 0; j < 4; ++j)
#pragma unroll
      for (int e = 0; e < 4; ++e) acc[i][j][e] = 0.0f;

  Raw raw[2];
  load_x(0, 0);
  cp_async_commit();
  load_w(0, raw);
  store_w(0, 0, raw);
  cp_async_wait_all();
  __syncthreads();

  for (int64_t kt = 0; kt < p.nsb; ++kt) {
    const int buf = int(kt & 1);
    const bool more = kt + 1 < p.nsb;
    if (more) {
      load_x(buf ^ 1, kt + 1);
      cp_async_commit();
      load_w(kt + 1, raw);
    }
#pragma unroll
    for (int ks = 0; ks < 2; ++ks) {
      uint32_t a[MI][4], b[4][2];
#pragma unroll
      for (int mi = 0; mi < MI; ++mi)
        ldmatrix_x4(a[mi], &xs[buf][m_base + 16 * mi + (lane & 15)][16 * ks + 8 * (lane >> 4)]);
#pragma unroll
      for (int np = 0; np < 2; ++np) {
        uint32_t r[4];
        ldmatrix_x4(r, &ws[buf][n_base + 16 * np + 8 * (lane >> 4) + (lane & 7)][16 * ks + 8 * ((lane >> 3) & 1)]);
        b[2 * np][0] = r[0];
        b[2 * np][1] = r[1];
        b[2 * np + 1][0] = r[2];
        b[2 * np + 1][1] = r[3];
      }
#pragma unroll
      for (int mi = 0; mi < MI; ++mi)
#pragma unroll
        for (int ni = 0; ni < 4; ++ni) mma_bf16(acc[mi][ni], a[mi], b[ni][0], b[ni][1]);
    }
    if (more) store_w(buf ^ 1, kt + 1, raw);
    cp_async_wait_all();
    __syncthreads();
  }

  // Epilogue: acc[mi][ni] = rows m_base + 16mi + g (+8), columns n_base + 8ni + 2t (+1).
  const int g = lane >> 2, t = lane & 3;
#pragma unroll
  for (int mi = 0; mi < MI; ++mi) {
#pragma unroll
    for (int hh = 0; hh < 2; ++hh) {
      const int row = m_base + 16 * mi + g + 8 * hh;
      const int64_t yr = yrow_s[row];
      if (yr < 0) continue;
      float* yp = p.y + yr * p.n;
#pragma unroll
      for (int ni = 0; ni < 4; ++ni) {
        const int64_t n = n0 + n_base + 8 * ni + 2 * t;
        if (n < p.n) yp[n] = acc[mi][ni][2 * hh];
        if (n + 1 < p.n) yp[n + 1] = acc[mi][ni][2 * hh + 1];
      }
    }
  }
}

template <class F>
void launch_qmm(const QmmParams& p, int bm, cudaStream_t stream) {
  if (p.rs.n_items <= 0) return;
  const dim3 grid(unsigned((p.n + kQmmBN - 1) / kQmmBN), unsigned(p.rs.n_items));
  if (bm == 128) qmm_kernel<F, 128><<<grid, 256, 0, stream>>>(p);
  else qmm_kernel<F, 64><<<grid, 256, 0, stream>>>(p);
  LMK_LAUNCH_CHECK(qmm_kernel);
}

}  // namespace lmk::cuda::mm
