// Tiled bf16 tensor-core GEMM for MLX affine weights (bits 4, 6, 8), items of up to BM rows.
//
// Block tile: BM activation rows x 128 weight rows, k steps of 64. Each k step every thread
// loads one 32-code chunk of one weight row (plus its scale and bias) and BM/4 activations
// into registers while the tensor cores work on the previous step; then it dequantizes the
// chunk (w = s * q + b in f32, rounded once to bf16) and converts the activations to bf16 into
// the other half of a double-buffered, XOR-swizzled shared-memory tile. 8 warps (2 x 4), warp
// tile BM/2 x 32, ldmatrix + mma.m16n8k16 (bf16 in, f32 accumulate), one barrier per k step.
#include "ops/affine/kernels.cuh"

namespace lmk::cuda::affine {
namespace {

constexpr int kRowBytes = mm::kBK * 2;  // one 64-value bf16 row of a tile: 128 bytes = 8 chunks of 16

// Byte offset of 16-byte chunk c (0..7) of tile row r: chunks are XOR-swizzled by r mod 8 so
// that ldmatrix's 8 rows at one chunk hit 8 different bank groups.
__device__ __forceinline__ int tile_off(int r, int c) { return r * kRowBytes + ((c ^ (r & 7)) << 4); }

template <int Bits>
__device__ __forceinline__ void load_chunk(const uint8_t* p, uint32_t (&w)[Bits]) {
  if constexpr (Bits == 6) {
#pragma unroll
    for (int i = 0; i < 3; ++i) {
      const uint2 v = ldg_stream8(p + 8 * i);
      w[2 * i] = v.x;
      w[2 * i + 1] = v.y;
    }
  } else {
#pragma unroll
    for (int i = 0; i < Bits / 4; ++i) {
      const uint4 v = ldg_stream16(p + 16 * i);
      w[4 * i] = v.x;
      w[4 * i + 1] = v.y;
      w[4 * i + 2] = v.z;
      w[4 * i + 3] = v.w;
    }
  }
}

template <int Bits, int BM>
__global__ void __launch_bounds__(mm::kThreads) affine_mm_kernel(const Operands o, const Items it) {
  constexpr int BN = mm::kBN, BK = mm::kBK;
  constexpr int MT = BM / 32;        // m16 tiles per warp (warp tile BM/2 rows)
  constexpr int NT = 4;              // n8 tiles per warp (32 weight rows)
  constexpr int XV = BM * BK / mm::kThreads;  // activations staged per thread: 32 or 16
  constexpr int XW = XV;             // raw words: f32 needs XV, 16-bit types XV/2
  extern __shared__ __align__(128) uint8_t smem[];
  uint8_t* as = smem;                      // [2][BM][64] bf16
  uint8_t* bs = smem + 2 * BM * kRowBytes;  // [2][BN][64] bf16
  __shared__ int s_xrow[BM], s_yrow[BM];

  const int tid = int(threadIdx.x), lane = tid & 31, warp = tid >> 5, g = lane >> 2, t = lane & 3;
  const int item = it.item_base + int(blockIdx.y);
  const int n0 = int(blockIdx.x) * BN;
  const ItemHeader hdr = item_header(it, item);
  if (hdr.count == 0) return;
  if (hdr.expert < 0) {
    invalid_row(o, it, item_yrow(it, item, 0), n0, min(n0 + BN, o.N));
    return;
  }
  const int count = hdr.count;
  for (int i = tid; i < BM; i += mm::kThreads) {
    if (i < count) {
      const int yr = item_yrow(it, item, i);
      s_yrow[i] = yr;
      s_xrow[i] = item_xrow(it, yr);
    } else {
      s_yrow[i] = s_xrow[i] = -1;
    }
  }
  __syncthreads();

  // This thread's weight chunk: row n0 + tid/2, codes [ks*64 + (tid&1)*32, +32).
  const int wr = tid >> 1, wc = tid & 1;
  const int wn = n0 + wr;
  const bool wrow_ok = wn < o.N;
  const uint8_t* wrow = o.w + int64_t(hdr.expert) * o.expert_bytes + int64_t(wn) * o.row_bytes;
  const int64_t sidx0 = int64_t(hdr.expert) * o.expert_groups + int64_t(wn) * o.groups;
  // This thread's activations: row tid / (64/XV), values [ks*64 + part*XV, +XV).
  constexpr int XPR = BK / XV;  // threads per activation row: 2 or 4
  const int xr = tid / XPR, xp = tid % XPR;
  const int xrow = s_xrow[xr];
  const bool x16 = o.x_dtype != DType::f32;

  uint32_t wraw[Bits];
  float ws = 0.0f, wb = 0.0f;
  bool wok = false;
  uint32_t xraw[XW];
  bool xok = false;

  auto load = [&](int ks) {
    const int k0 = ks * BK + wc * 32;
    wok = wrow_ok && k0 < o.K;
    if (wok) {
      load_chunk<Bits>(wrow + int64_t(k0) * Bits / 8, wraw);
      const int64_t si = sidx0 + k0 / o.gs;
      ws = load_f(o.scales, si, o.s_dtype);
      wb = load_f(o.biases, si, o.s_dtype);
    }
    const int xk0 = ks * BK + xp * XV;
    xok = xrow >= 0 && xk0 < o.K;  // K % 32 == 0: a part is wholly inside or outside
    if (xok) {
      if (x16) {
        const uint4* p = reinterpret_cast<const uint4*>(static_cast<const uint16_t*>(o.x) + int64_t(xrow) * o.K + xk0);
#pragma unroll
        for (int i = 0; i < XV / 8; ++i) {
          const uint4 v = p[i];
          xraw[4 * i] = v.x; xraw[4 * i + 1] = v.y; xraw[4 * i + 2] = v.z; xraw[4 * i + 3] = v.w;
        }
      } else {
        const uint4* p = reinterpret_cast<const uint4*>(static_cast<const float*>(o.x) + int64_t(xrow) * o.K + xk0);
#pragma unroll
        for (int i = 0; i < XV / 4; ++i) {
          const uint4 v = p[i];
          xraw[4 * i] = v.x; xraw[4 * i + 1] = v.y; xraw[4 * i + 2] = v.z; xraw[4 * i + 3] = v.w;
        }
      }
    }
  };

  auto store = [&](int buf) {
    // Weights: 32 dequantized values -> 4 chunks of row wr.
    uint8_t* bt = bs + buf * BN * kRowBytes;
#pragma unroll
    for (int c = 0; c < 4; ++c) {
      uint32_t v[4];
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        const int q = c * 8 + 2 * i;
        v[i] = wok ? pack_bf16(fmaf(ws, chunk_code_f32<Bits>(wraw, q), wb), fmaf(ws, chunk_code_f32<Bits>(wraw, q + 1), wb))
                   : 0u;
      }
      *reinterpret_cast<uint4*>(bt + tile_off(wr, wc * 4 + c)) = make_uint4(v[0], v[1], v[2], v[3]);
    }
    // Activations: XV values -> XV/8 chunks of row xr.
    uint8_t* at = as + buf * BM * kRowBytes;
#pragma unroll
    for (int c = 0; c < XV / 8; ++c) {
      uint32_t v[4];
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        const int e = c * 8 + 2 * i;  // element index within the part
        if (!xok) {
          v[i] = 0u;
        } else if (!x16) {
          v[i] = pack_bf16(__uint_as_float(xraw[e]), __uint_as_float(xraw[e + 1]));
        } else if (o.x_dtype == DType::bf16) {
          v[i] = xraw[e / 2];
        } else {
          const uint32_t h = xraw[e / 2];
          v[i] = pack_bf16(__half2float(__ushort_as_half(uint16_t(h & 0xffffu))), __half2float(__ushort_as_half(uint16_t(h >> 16))));
        }
      }
      *reinterpret_cast<uint4*>(at + tile_off(xr, xp * (XV / 8) + c)) = make_uint4(v[0], v[1], v[2], v[3]);
    }
  };

  float acc[MT][NT][4] = {};
  const int wm = warp >> 2, wnn = warp & 3;
  auto compute = [&](int buf) {
    const uint8_t* at = as + buf * BM * kRowBytes;
    const uint8_t* bt = bs + buf * BN * kRowBytes;
#pragma unroll
    for (int kk = 0; kk < BK / 16; ++kk) {
      uint32_t bfr[NT][2];
#pragma unroll
      for (int np = 0; np < NT / 2; ++np) {
        const int r = wnn * 32 + np * 16 + (lane & 7) + ((lane >> 4) << 3);
        const int c = kk * 2 + ((lane >> 3) & 1);
        uint32_t q[4];
        ldmatrix_x4(q, bt + tile_off(r, c));
        bfr[2 * np][0] = q[0];
        bfr[2 * np][1] = q[1];
        bfr[2 * np + 1][0] = q[2];
        bfr[2 * np + 1][1] = q[3];
      }
#pragma unroll
      for (int mt = 0; mt < MT; ++mt) {
        const int r = wm * (BM / 2) + mt * 16 + (lane & 15);
        const int c = kk * 2 + (lane >> 4);
        uint32_t a[4];
        ldmatrix_x4(a, at + tile_off(r, c));
#pragma unroll
        for (int nt = 0; nt < NT; ++nt) mma_bf16(acc[mt][nt], a[0], a[1], a[2], a[3], bfr[nt][0], bfr[nt][1]);
      }
    }
  };

  const int steps = (o.K + BK - 1) / BK;
  load(0);
  store(0);
  __syncthreads();
  for (int ks = 0; ks < steps; ++ks) {
    const bool more = ks + 1 < steps;
    if (more) load(ks + 1);
    compute(ks & 1);
    if (more) store((ks + 1) & 1);
    __syncthreads();
  }

  // acc[mt][nt]: rows m = wm*BM/2 + mt*16 + g (+8), columns n = n0 + wnn*32 + nt*8 + 2t (+1).
#pragma unroll
  for (int mt = 0; mt < MT; ++mt) {
#pragma unroll
    for (int half = 0; half < 2; ++half) {
      const int m = wm * (BM / 2) + mt * 16 + g + half * 8;
      if (m >= count) continue;
      const int64_t ybase = int64_t(s_yrow[m]) * o.N;
#pragma unroll
      for (int nt = 0; nt < NT; ++nt) {
        const int n = n0 + wnn * 32 + nt * 8 + 2 * t;
        if (n < o.N) store_f(o.y, ybase + n, acc[mt][nt][2 * half], o.y_dtype);
        if (n + 1 < o.N) store_f(o.y, ybase + n + 1, acc[mt][nt][2 * half + 1], o.y_dtype);
      }
    }
  }
}

template <int Bits, int BM>
void launch_typed(const Operands& o, Items items, int n_items, cudaStream_t s) {
  auto kernel = affine_mm_kernel<Bits, BM>;
  constexpr size_t smem = size_t(2) * (BM + mm::kBN) * kRowBytes;
  static const bool configured = [&] {
    LMK_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)));
    return true;
  }();
  (void)configured;
  const unsigned nb = unsigned(ceil_div(o.N, mm::kBN));
  for (int base = 0; base < n_items; base += 65535) {
    items.item_base = base;
    kernel<<<dim3(nb, unsigned(min(65535, n_items - base))), mm::kThreads, smem, s>>>(o, items);
    LMK_LAUNCH_CHECK(affine_mm_kernel);
  }
}

template <int Bits>
void launch_bits(const Operands& o, int bm, const Items& items, int n_items, cudaStream_t s) {
  if (bm == 128) launch_typed<Bits, 128>(o, items, n_items, s);
  else launch_typed<Bits, 64>(o, items, n_items, s);
}

}  // namespace

void launch_mm(const Operands& o, int bm, Items items, int n_items, cudaStream_t s) {
  if (n_items <= 0) return;
  switch (o.bits) {
    case 4: return launch_bits<4>(o, bm, items, n_items, s);
    case 6: return launch_bits<6>(o, bm, items, n_items, s);
    default: return launch_bits<8>(o, bm, items, n_items, s);
  }
}

}  // namespace lmk::cuda::affine
