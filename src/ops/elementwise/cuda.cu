#include "cuda/map.cuh"
#include "ops/elementwise/backend.h"

namespace lmk::cuda {

namespace {
template <typename T, BinaryOp Op>
struct BinaryFn {
  __device__ __forceinline__ T operator()(T a, T b) const {
    const float x = to_f32(a), y = to_f32(b);
    if constexpr (Op == BinaryOp::add) return from_f32<T>(x + y);
    else if constexpr (Op == BinaryOp::mul) return from_f32<T>(x * y);
    else return from_f32<T>(x / y);
  }
};

template <UnaryOp Op>
struct UnaryFn {
  __device__ __forceinline__ float operator()(float x) const {
    if constexpr (Op == UnaryOp::exp) return expf(x);
    else if constexpr (Op == UnaryOp::log) return logf(x);
    else return sqrtf(x);
  }
};

template <typename T>
struct ScaleFn {
  float s;
  __device__ __forceinline__ T operator()(T x) const { return from_f32<T>(to_f32(x) * s); }
};

template <typename Out, typename In>
struct CastFn {
  __device__ __forceinline__ Out operator()(In x) const { return from_f32<Out>(to_f32(x)); }
};
}  // namespace

void binary(BinaryOp op, const Tensor& a, const Tensor& b, const Tensor& out, int64_t b_cols, Stream& s) {
  dispatch_float("elementwise", a.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    Src<T> sa{a.data_as<T>()};
    auto run = [&](auto fn) {
      if (b_cols) launch_map(fn, out.data_as<T>(), a.numel(), stream_of(s), sa, RowSrc<T>{b.data_as<T>(), b_cols});
      else launch_map(fn, out.data_as<T>(), a.numel(), stream_of(s), sa, Src<T>{b.data_as<T>()});
    };
    switch (op) {
      case BinaryOp::add: run(BinaryFn<T, BinaryOp::add>{}); break;
      case BinaryOp::mul: run(BinaryFn<T, BinaryOp::mul>{}); break;
      case BinaryOp::div: run(BinaryFn<T, BinaryOp::div>{}); break;
    }
  });
}

void unary(UnaryOp op, const Tensor& x, const Tensor& out, Stream& s) {
  Src<float> sx{x.data_as<float>()};
  auto run = [&](auto fn) { launch_map(fn, out.data_as<float>(), x.numel(), stream_of(s), sx); };
  switch (op) {
    case UnaryOp::exp: run(UnaryFn<UnaryOp::exp>{}); break;
    case UnaryOp::log: run(UnaryFn<UnaryOp::log>{}); break;
    case UnaryOp::sqrt: run(UnaryFn<UnaryOp::sqrt>{}); break;
  }
}

void scalar_mul(const Tensor& x, float scalar, const Tensor& out, Stream& s) {
  dispatch_float("scalar_mul", x.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    launch_map(ScaleFn<T>{scalar}, out.data_as<T>(), x.numel(), stream_of(s), Src<T>{x.data_as<T>()});
  });
}

void cast(const Tensor& x, const Tensor& out, Stream& s) {
  dispatch_float("cast", x.dtype(), [&](auto in_tag) {
    using In = typename decltype(in_tag)::type;
    dispatch_float("cast", out.dtype(), [&](auto out_tag) {
      using Out = typename decltype(out_tag)::type;
      launch_map(CastFn<Out, In>{}, out.data_as<Out>(), x.numel(), stream_of(s), Src<In>{x.data_as<In>()});
    });
  });
}

}  // namespace lmk::cuda
