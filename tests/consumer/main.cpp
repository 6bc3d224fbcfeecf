// A program built against the installed package: adds two vectors on the CPU and checks them.
#include <cstdio>
#include <lmk/lmk.h>

int main() {
  float a[5] = {1, 2, 3, 4, 5}, b[5] = {10, 20, 30, 40, 50}, out[5] = {};
  lmk::add(lmk::Tensor(a, lmk::DType::f32, {5}), lmk::Tensor(b, lmk::DType::f32, {5}),
           lmk::Tensor(out, lmk::DType::f32, {5}));
  for (int i = 0; i < 5; ++i)
    if (out[i] != a[i] + b[i]) return 1;
  std::printf("consumer ok: lmkernels %s, %zu ops\n", lmk::version(), lmk::registered_ops().size());
  return lmk::registered_ops().empty() ? 1 : 0;
}
