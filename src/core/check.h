// Argument validation shared by every op's api.cpp. Each helper throws lmk::Error naming the
// op and the argument, what was expected and what came.
#pragma once
#include <initializer_list>
#include <span>

#include "lmk/device.h"
#include "lmk/error.h"
#include "lmk/tensor.h"

namespace lmk::detail {

// Defined pointer, positive sizes (zero sizes only with allow_empty), pointer aligned to the
// element size, byte size free of overflow, and a CUDA device that exists.
void check_tensor(const char* op, const char* arg, const Tensor& t, bool allow_empty = false);
// check_tensor + dense row-major layout.
void check_contiguous(const char* op, const char* arg, const Tensor& t, bool allow_empty = false);
// dtype one of `allowed`, else Unsupported.
void check_dtype(const char* op, const char* arg, const Tensor& t, std::initializer_list<DType> allowed);
void check_same_dtype(const char* op, const char* arg, const Tensor& t, const char* ref_arg, const Tensor& ref);
void check_same_device(const char* op, const char* arg, const Tensor& t, const char* ref_arg, const Tensor& ref);
void check_numel(const char* op, const char* arg, const Tensor& t, int64_t numel);
void check_rank(const char* op, const char* arg, const Tensor& t, int rank);
void check_shape(const char* op, const char* arg, const Tensor& t, std::initializer_list<int64_t> shape);
void check_same_shape(const char* op, const char* arg, const Tensor& t, const char* ref_arg, const Tensor& ref);
// Memory ranges must be disjoint (ops whose outputs are written at other indices than read).
void check_no_overlap(const char* op, const char* arg, const Tensor& t, const char* other_arg, const Tensor& other);
// Either exactly the same memory (in-place) or disjoint; partial overlap is rejected.
void check_same_or_disjoint(const char* op, const char* arg, const Tensor& t, const char* other_arg,
                            const Tensor& other);
void check_finite(const char* op, const char* arg, double v);
// The operand check every op repeats: contiguous (check_contiguous), dtype one of `allowed`
// (Unsupported otherwise) and on the device of `ref`.
void check_operand(const char* op, const char* arg, const Tensor& t, std::initializer_list<DType> allowed,
                   const char* ref_arg, const Tensor& ref);
// Row ops ([..., D]): rank >= 1; returns D.
int64_t row_length(const char* op, const char* arg, const Tensor& t);
void check_rank_between(const char* op, const char* arg, const Tensor& t, int lo, int hi);
// Throws Unsupported when the library was built without CUDA or the device is absent.
void require_cuda(const char* op, Device d);
std::string shape_str(std::span<const int64_t> s);

// Checked arithmetic for sizes.
int64_t mul_checked(const char* op, const char* what, int64_t a, int64_t b);

}  // namespace lmk::detail
