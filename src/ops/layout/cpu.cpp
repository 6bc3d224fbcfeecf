#include <cstring>
#include <type_traits>

#include "cpu/common.h"
#include "ops/layout/backend.h"

namespace lmk::cpu {

namespace {

// Unsigned storage type of a given size: same-dtype copies move bits, never values.
template <int Bytes> struct Bits;
template <> struct Bits<1> { using type = uint8_t; };
template <> struct Bits<2> { using type = uint16_t; };
template <> struct Bits<4> { using type = uint32_t; };
template <> struct Bits<8> { using type = uint64_t; };

// dst[c] = f(src[c]) over every coordinate c, odometer over the outer dims, a strided loop inside.
template <typename In, typename Out, typename F>
void copy_nd(const Tensor& src, const Tensor& dst, F f) {
  const In* sp = src.data_as<In>();
  Out* dp = dst.data_as<Out>();
  const int rank = src.rank();
  if (rank == 0) {
    *dp = f(*sp);
    return;
  }
  const int64_t inner = src.size(rank - 1), ss = src.stride(rank - 1), ds = dst.stride(rank - 1);
  int64_t coord[kMaxRank] = {};
  int64_t so = 0, doff = 0;
  const bool unit = ss == 1 && ds == 1;
  while (true) {
    if (unit && std::is_same_v<In, Out>) std::memcpy(dp + doff, sp + so, size_t(inner) * sizeof(In));
    else if (unit) for (int64_t j = 0; j < inner; ++j) dp[doff + j] = f(sp[so + j]);
    else for (int64_t j = 0; j < inner; ++j) dp[doff + j * ds] = f(sp[so + j * ss]);
    int d = rank - 2;
    for (; d >= 0; --d) {  // advance the odometer over dims 0 .. rank-2
      so += src.stride(d);
      doff += dst.stride(d);
      if (++coord[d] < src.size(d)) break;
      so -= coord[d] * src.stride(d);
      doff -= coord[d] * dst.stride(d);
      coord[d] = 0;
    }
    if (d < 0) return;
  }
}

void copy_piece(const CopyPiece& p) {
  const DType in = p.src.dtype(), out = p.dst.dtype();
  if (in == out) {
    auto bits = [&](auto tag) {
      using T = typename decltype(tag)::type;
      copy_nd<T, T>(p.src, p.dst, [](T v) { return v; });
    };
    switch (element_size(in)) {
      case 1: return bits(detail::TypeTag<Bits<1>::type>{});
      case 2: return bits(detail::TypeTag<Bits<2>::type>{});
      case 4: return bits(detail::TypeTag<Bits<4>::type>{});
      default: return bits(detail::TypeTag<Bits<8>::type>{});
    }
  }
  dispatch_float("copy", in, [&](auto in_tag) {
    using In = typename decltype(in_tag)::type;
    dispatch_float("copy", out, [&](auto out_tag) {
      using Out = typename decltype(out_tag)::type;
      copy_nd<In, Out>(p.src, p.dst, [](In v) { return from_f32<Out>(to_f32(v)); });
    });
  });
}

// Index i of a u32 or i32 index tensor as int64 (negative i32 stays negative).
int64_t index_at(const Tensor& idx, int64_t i) {
  return idx.dtype() == DType::u32 ? int64_t(idx.data_as<uint32_t>()[i]) : int64_t(idx.data_as<int32_t>()[i]);
}

}  // namespace

void copy_pieces(std::span<const CopyPiece> pieces) {
  for (const auto& p : pieces) copy_piece(p);
}

void gather_rows(const Tensor& src, const Tensor& idx, const Tensor& out, OutOfRange rule) {
  const int64_t rows = src.size(0), n = idx.numel();
  const size_t row_bytes = size_t(src.size(1) * element_size(src.dtype()));
  if (rule == OutOfRange::error_or_clamp)
    for (int64_t i = 0; i < n; ++i) {
      const int64_t r = index_at(idx, i);
      if (r < 0 || r >= rows)
        LMK_THROW(InvalidArgument, "gather: idx[", i, "] = ", r, " is out of range for 'src' with ", rows,
                  " rows (the CUDA backend clamps to the last row instead)");
    }
  const auto* sp = static_cast<const unsigned char*>(src.data());
  auto* op = static_cast<unsigned char*>(out.data());
  for (int64_t i = 0; i < n; ++i) {
    const int64_t r = index_at(idx, i);
    if (r >= 0 && r < rows) std::memcpy(op + size_t(i) * row_bytes, sp + size_t(r) * row_bytes, row_bytes);
    else std::memset(op + size_t(i) * row_bytes, 0, row_bytes);  // +0.0 in f32, f16 and bf16
  }
}

void take_along_axis(const Tensor& x, const Tensor& idx, const Tensor& y) {
  const int64_t rows = x.size(0), cols = x.size(1), k = idx.size(1);
  const float* xp = x.data_as<float>();
  const uint32_t* ip = idx.data_as<uint32_t>();
  float* yp = y.data_as<float>();
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < k; ++j) {
      const uint32_t c = ip[r * k + j];
      yp[r * k + j] = c < cols ? xp[r * cols + c] : 0.0f;
    }
}

}  // namespace lmk::cpu
