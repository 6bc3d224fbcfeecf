// Backend entry points of the affine family; arguments are already validated.
#pragma once
#include <cstdint>

#include "lmk/device.h"
#include "lmk/dtype.h"
#include "lmk/tensor.h"

namespace lmk {

// One validated problem: rows r = 0 .. P-1 of y, each y[r, :] = x[r / top_k, :] · W_e ᵀ with
// e = ids[r] (routed) or 0 (dense: top_k = 1, ids = null, E = 1).
struct AffineProblem {
  const char* op = "";
  const void* x = nullptr;
  DType x_dtype = DType::f32;
  int64_t M = 0;             // rows of x
  const void* w = nullptr;   // packed rows, expert after expert
  const void* scales = nullptr;
  const void* biases = nullptr;
  DType s_dtype = DType::f32;
  int64_t N = 0, K = 0;
  int bits = 4;              // 4, 6, 8 (qmm_affine: 8, one byte per code)
  int gs = 64;               // group size
  int64_t row_bytes = 0;     // bytes of one packed row
  int64_t E = 1;             // experts
  const void* ids = nullptr; // routed only: u32 or i32 [P]
  DType ids_dtype = DType::u32;
  int64_t top_k = 1;
  void* y = nullptr;
  DType y_dtype = DType::f32;
  uint32_t* error_flag = nullptr;  // CUDA, routed only (may be null)
  bool debug = false;              // CUDA, routed only: synchronize and throw on invalid ids
  bool unpacked = false;           // qmm_affine: u8 codes, f32 params, any power-of-two group size

  int64_t rows() const { return M * top_k; }  // P
  int64_t groups() const { return K / gs; }
};

namespace cpu {
void affine_matmul(const AffineProblem& p);
}  // namespace cpu
namespace cuda {
void affine_matmul(const AffineProblem& p, Stream& s);
}  // namespace cuda
}  // namespace lmk
