// Backend entry points of the layout family; arguments are already validated.
#pragma once
#include <cstdint>
#include <span>

#include "lmk/device.h"
#include "lmk/tensor.h"

namespace lmk {

// One view-to-view copy: dst[c] = convert(src[c]) for every coordinate c of their common shape.
// Validated: same shape and device, non-negative strides, dst free of repeated elements, no
// overlap between any source and any destination. dtypes: equal (a bit copy), or a conversion
// between f32, f16 and bf16 (widening exact, narrowing RNE).
struct CopyPiece {
  Tensor src;
  Tensor dst;
};

// What a row gather does with an index outside [0, rows).
enum class OutOfRange : uint8_t {
  error_or_clamp,  // gather: the CPU raises InvalidArgument, CUDA reads the last row
  zero,            // embedding: a row of +0.0
};

namespace cpu {
void copy_pieces(std::span<const CopyPiece> pieces);
void gather_rows(const Tensor& src, const Tensor& idx, const Tensor& out, OutOfRange rule);
void take_along_axis(const Tensor& x, const Tensor& idx, const Tensor& y);
}  // namespace cpu
namespace cuda {
// All pieces go out in as few launches as possible (one indexed-copy launch for every piece that
// is neither a plain memcpy nor a transpose).
void copy_pieces(std::span<const CopyPiece> pieces, Stream& s);
void gather_rows(const Tensor& src, const Tensor& idx, const Tensor& out, OutOfRange rule, Stream& s);
void take_along_axis(const Tensor& x, const Tensor& idx, const Tensor& y, Stream& s);
}  // namespace cuda
}  // namespace lmk
