// 16-byte global loads with an L2 eviction priority, for kernels that read the same bytes twice
// in quick succession (two-pass row kernels): the first read marks its lines evict-last so that
// the second read hits L2, and the second read marks them evict-first so they leave early.
#pragma once
#include <cstdint>

namespace lmk::cuda {

template <bool Keep>
__device__ __forceinline__ int4 load16_l2(const void* p) {
  uint64_t policy;
  int4 r;
  if constexpr (Keep) {
    asm("createpolicy.fractional.L2::evict_last.b64 %0, 1.0;" : "=l"(policy));
    asm volatile("ld.global.L1::evict_last.L2::cache_hint.v4.s32 {%0,%1,%2,%3}, [%4], %5;"
                 : "=r"(r.x), "=r"(r.y), "=r"(r.z), "=r"(r.w)
                 : "l"(p), "l"(policy));
  } else {
    asm("createpolicy.fractional.L2::evict_first.b64 %0, 1.0;" : "=l"(policy));
    asm volatile("ld.global.L1::evict_first.L2::cache_hint.v4.s32 {%0,%1,%2,%3}, [%4], %5;"
                 : "=r"(r.x), "=r"(r.y), "=r"(r.z), "=r"(r.w)
                 : "l"(p), "l"(policy));
  }
  return r;
}

}  // namespace lmk::cuda
