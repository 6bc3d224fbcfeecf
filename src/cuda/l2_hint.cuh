// L2 eviction policies (createpolicy) for loads that carry .L2::cache_hint, and 16-byte global
// loads with an eviction priority for kernels that read the same bytes twice in quick
// succession (two-pass row kernels): the first read marks its lines evict-last so that the
// second read hits L2, and the second read marks them evict-first so they leave early.
#pragma once
#include <cstdint>

namespace lmk::cuda {

enum class L2Evict { first, normal, last };

// A policy that gives every line it touches (fraction 1.0) the priority E.
template <L2Evict E>
__device__ __forceinline__ uint64_t l2_policy() {
  uint64_t policy;
  if constexpr (E == L2Evict::first) asm("createpolicy.fractional.L2::evict_first.b64 %0, 1.0;" : "=l"(policy));
  else if constexpr (E == L2Evict::normal) asm("createpolicy.fractional.L2::evict_normal.b64 %0, 1.0;" : "=l"(policy));
  else asm("createpolicy.fractional.L2::evict_last.b64 %0, 1.0;" : "=l"(policy));
  return policy;
}

// Weights read once per call go through L2 as evict-first lines: a miss then replaces an earlier
// line of the same stream rather than what other kernels left in L2, so the stream neither
// evicts their data nor forces their dirty lines out to memory while it reads (the cold-L2
// bench leaves L2 full of dirty lines; each normal-priority miss then costs a write-back too).
// evict_first = false gives the normal policy (the LMK_WEIGHT_L2 knob of the matmul kernels).
// Used with bulk.cuh's ldg_stream16 / bulk_load policy forms.
__device__ __forceinline__ uint64_t stream_policy(bool evict_first) {
  const uint64_t first = l2_policy<L2Evict::first>(), normal = l2_policy<L2Evict::normal>();
  return evict_first ? first : normal;  // both made, then selected: no branch in the prologue
}

template <bool Keep>
__device__ __forceinline__ int4 load16_l2(const void* p) {
  const uint64_t policy = l2_policy<Keep ? L2Evict::last : L2Evict::first>();
  int4 r;
  if constexpr (Keep)
    asm volatile("ld.global.L1::evict_last.L2::cache_hint.v4.s32 {%0,%1,%2,%3}, [%4], %5;"
                 : "=r"(r.x), "=r"(r.y), "=r"(r.z), "=r"(r.w)
                 : "l"(p), "l"(policy));
  else
    asm volatile("ld.global.L1::evict_first.L2::cache_hint.v4.s32 {%0,%1,%2,%3}, [%4], %5;"
                 : "=r"(r.x), "=r"(r.y), "=r"(r.z), "=r"(r.w)
                 : "l"(p), "l"(policy));
  return r;
}

}  // namespace lmk::cuda
