// Shared CUDA helpers: float type mapping, 16-byte vector access, launch geometry.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <cstring>

#include "core/dispatch.h"
#include "cuda/check.h"
#include "lmk/device.h"

namespace lmk::cuda {

inline cudaStream_t stream_of(const Stream& s) { return static_cast<cudaStream_t>(s.handle()); }

// Every float op runs through this: dtype -> float / __half / __nv_bfloat16.
template <typename Fn>
decltype(auto) dispatch_float(const char* op, DType t, Fn&& fn) {
  return detail::dispatch_float<float, __half, __nv_bfloat16>(op, t, static_cast<Fn&&>(fn));
}

// Conversions in and out of the f32 compute type; stores round to nearest even.
__device__ __forceinline__ float to_f32(float x) { return x; }
__device__ __forceinline__ float to_f32(__half x) { return __half2float(x); }
__device__ __forceinline__ float to_f32(__nv_bfloat16 x) { return __bfloat162float(x); }
template <typename T> __device__ __forceinline__ T from_f32(float x);
template <> __device__ __forceinline__ float from_f32<float>(float x) { return x; }
template <> __device__ __forceinline__ __half from_f32<__half>(float x) { return __float2half_rn(x); }
template <> __device__ __forceinline__ __nv_bfloat16 from_f32<__nv_bfloat16>(float x) { return __float2bfloat16_rn(x); }

// N elements of T moved as one aligned vector access (N * sizeof(T) = 16 or 32 bytes).
template <typename T, int N>
struct alignas(sizeof(T) * N) Packed {
  T v[N];
};

template <typename T, int N>
__device__ __forceinline__ Packed<T, N> load_packed(const T* p) {
  return *reinterpret_cast<const Packed<T, N>*>(p);
}
// Streaming load that bypasses L1 allocation (data read once).
template <typename T, int N>
__device__ __forceinline__ Packed<T, N> load_packed_stream(const T* p) {
  static_assert(sizeof(Packed<T, N>) % 16 == 0);
  Packed<T, N> r;
  const int4* src = reinterpret_cast<const int4*>(p);
  int4* dst = reinterpret_cast<int4*>(&r);
#pragma unroll
  for (int i = 0; i < int(sizeof(r) / 16); ++i) dst[i] = __ldcs(src + i);
  return r;
}
// Streaming store (evict-first in L2: data written once and not read back soon).
template <typename T, int N>
__device__ __forceinline__ void store_packed_stream(T* p, const Packed<T, N>& v) {
  static_assert(sizeof(Packed<T, N>) % 16 == 0);
  const int4* src = reinterpret_cast<const int4*>(&v);
  int4* dst = reinterpret_cast<int4*>(p);
#pragma unroll
  for (int i = 0; i < int(sizeof(v) / 16); ++i) __stcs(dst + i, src[i]);
}
template <typename T, int N>
__device__ __forceinline__ void store_packed(T* p, const Packed<T, N>& v) {
  *reinterpret_cast<Packed<T, N>*>(p) = v;
}

inline bool is_aligned(const void* p, size_t bytes) { return reinterpret_cast<uintptr_t>(p) % bytes == 0; }

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Number of SMs of the current device (cached).
int sm_count();

// Peak DRAM bandwidth of the current device in GB/s: 2 x memory clock x bus width (cached per
// device). H100 SXM 3352 (2619 MHz, 5120 bits), H200 4917 (3201 MHz, 6144 bits).
double peak_dram_gbps();

// Zero-initialised device scratch of at least `bytes`, one block per (owner, device, stream),
// kept for kernels that leave it in a reusable state (counters that return to their start
// value, epoch-tagged words). Grown on demand outside graph capture and never freed (a
// captured graph may still hold an older block); returns nullptr when a larger block is
// needed while the stream is capturing. `owner` is any address that names the user.
unsigned char* stream_scratch(const void* owner, cudaStream_t st, size_t bytes);

// Stream-ordered device scratch from a library-owned memory pool per device (kept, never
// trimmed): allocated and freed in stream order, so it is valid for the kernels launched on the
// stream in between and works inside graph capture. Throws lmk::Error (Cuda) when the pool
// cannot grow.
struct PoolScratch {
  void* ptr = nullptr;
  cudaStream_t stream = nullptr;
  PoolScratch(size_t bytes, cudaStream_t s);
  ~PoolScratch();
  PoolScratch(const PoolScratch&) = delete;
  PoolScratch& operator=(const PoolScratch&) = delete;
};

// Resident blocks per SM of `kernel` at this block size and dynamic shared memory, at least 1
// (cached per device, kernel and configuration): the grid of persistent or cooperative launches.
int max_active_blocks(const void* kernel, int threads, int smem_bytes = 0);

// A tuning knob: the integer in environment variable `name`, else `fallback`. For sweeps of
// performance choices only (scripts/env-sweep.sh); results never depend on it.
int64_t tuning(const char* name, int64_t fallback);

// bf16 pairs as the 32-bit registers of MMA operands.
__device__ __forceinline__ uint32_t bf162_bits(__nv_bfloat162 v) {
  uint32_t u;
  memcpy(&u, &v, 4);
  return u;
}
__device__ __forceinline__ __nv_bfloat162 bits_bf162(uint32_t u) {
  __nv_bfloat162 v;
  memcpy(&v, &u, 4);
  return v;
}
// (lo, hi) rounded to nearest even; lo in the low 16 bits (the lower k index of an MMA pair).
__device__ __forceinline__ uint32_t pack_bf16(float lo, float hi) { return bf162_bits(__floats2bfloat162_rn(lo, hi)); }
// The same for f16 (|x| >= 65520 becomes ±inf).
__device__ __forceinline__ uint32_t pack_f16(float lo, float hi) {
  const __half2 v = __floats2half2_rn(lo, hi);
  uint32_t u;
  memcpy(&u, &v, 4);
  return u;
}

// D += A (16x16 bf16, row) * B (16x8 bf16, col), f32 accumulate (mma.sync m16n8k16). Lane
// (g, t) = (lane / 4, lane % 4) holds, two bf16 per register (lower k in the low half):
// a0 = A[g][2t, 2t+1], a1 = A[g+8][2t, 2t+1], a2 = A[g][2t+8, 2t+9], a3 = A[g+8][2t+8, 2t+9];
// b0 = B[2t, 2t+1][g], b1 = B[2t+8, 2t+9][g]; d = D[g][2t, 2t+1], D[g+8][2t, 2t+1].
__device__ __forceinline__ void mma_bf16(float (&d)[4], uint32_t a0, uint32_t a1, uint32_t a2, uint32_t a3, uint32_t b0,
                                         uint32_t b1) {
  asm("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
}

}  // namespace lmk::cuda
