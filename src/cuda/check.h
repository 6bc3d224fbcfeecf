// CUDA error checking: every runtime call and launch becomes an lmk::Error (code Cuda).
#pragma once
#include <cuda_runtime.h>

#include "lmk/error.h"

#define LMK_CUDA_CHECK(call)                                                                       \
  do {                                                                                             \
    cudaError_t lmk_err_ = (call);                                                                 \
    if (lmk_err_ != cudaSuccess) {                                                                 \
      if (lmk_err_ == cudaErrorMemoryAllocation) {                                                 \
        (void)cudaGetLastError();                                                                  \
        LMK_THROW(OutOfMemory, #call, ": ", cudaGetErrorString(lmk_err_));                         \
      }                                                                                            \
      LMK_THROW(Cuda, #call, " failed: ", cudaGetErrorName(lmk_err_), " (", cudaGetErrorString(lmk_err_), \
                ") at ", __FILE__, ":", __LINE__);                                                 \
    }                                                                                              \
  } while (0)

// After a <<<...>>> launch: surfaces bad configurations and sticky errors.
#define LMK_LAUNCH_CHECK(kernel_name) LMK_CUDA_CHECK(cudaGetLastError())
