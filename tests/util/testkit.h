// Test kit: seeded random host tensors in every dtype, staging to a device, NaN poisoning,
// and comparison against fp64 references with a stated tolerance.
#pragma once
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <span>
#include <string>
#include <vector>

#include "lmk/buffer.h"
#include "lmk/tensor.h"

namespace lmk::test {

// The run's base seed: LMK_TEST_SEED if set, else fresh per process (printed with failures).
uint64_t base_seed();
// A seed for one case: base_seed mixed with a case-specific salt.
uint64_t case_seed(std::string_view salt);

// Host-side tensor that owns its bytes (contiguous row-major).
struct HostTensor {
  DType dtype = DType::f32;
  std::vector<int64_t> shape;
  std::vector<unsigned char> bytes;

  HostTensor() = default;
  HostTensor(DType t, std::vector<int64_t> s);
  int64_t numel() const;
  Tensor view() { return Tensor(bytes.data(), dtype, shape, Device::cpu()); }
  // Plain dtypes only: element i as a double, and set element i (rounded to dtype).
  double get(int64_t i) const;
  void set(int64_t i, double v);
  std::vector<double> to_double() const;
  template <typename T> T* as() { return reinterpret_cast<T*>(bytes.data()); }
  template <typename T> const T* as() const { return reinterpret_cast<const T*>(bytes.data()); }
};

// Uniform random values in [lo, hi) rounded to the dtype (ints: integers in [lo, hi)).
HostTensor random_uniform(DType t, std::vector<int64_t> shape, uint64_t seed, double lo = -1.0, double hi = 1.0);
// Normal(0, stddev) rounded to the dtype.
HostTensor random_normal(DType t, std::vector<int64_t> shape, uint64_t seed, double stddev = 1.0);

// A device copy of a host tensor (or a fresh poisoned tensor) that owns its memory.
struct DeviceTensor {
  Buffer buffer;
  Tensor tensor;
  operator const Tensor&() const { return tensor; }
};
DeviceTensor to_device(const HostTensor& h, Device d);
// Uninitialised-looking output: filled with NaN bytes (0xFF) so any unwritten element fails.
DeviceTensor poisoned(DType t, std::vector<int64_t> shape, Device d);
HostTensor to_host(const Tensor& t);
void synchronize(Device d);

// Tolerance: an element passes if |out - ref| <= max(abs, rel * |ref|, ulps * ulp(ref)), and the
// whole tensor needs ||out - ref|| / ||ref|| <= rel_l2. NaN must meet NaN; inf must meet inf of
// the same sign. bit_exact demands out == round_to_dtype(ref) exactly (NaN meets any NaN).
struct Tolerance {
  double rel_l2 = 0;
  double rel = 0;
  double abs = 0;
  double ulps = 0;
  bool bit_exact = false;
  std::string str() const;
};
Tolerance exact();
// Per-dtype defaults of core-ops.md §0.
Tolerance tol_rounding(DType t);       // one rounding (add, mul, cast) vs fp64
Tolerance tol_transcendental(DType t);
Tolerance tol_reduction(DType t);

struct CompareResult {
  bool ok = true;
  double rel_l2 = 0;      // ||out - ref|| / ||ref||
  double max_abs = 0;     // max |out - ref| over finite pairs
  int64_t worst = -1;     // index of the worst element (by tolerance ratio)
  double worst_out = 0, worst_ref = 0;
  int64_t failures = 0;   // elements outside tolerance
  std::string message;    // empty when ok
};
CompareResult compare(const HostTensor& out, std::span<const double> ref, const Tolerance& tol);
// Round an fp64 value to the dtype and back (what a correctly rounded kernel stores).
double round_to(DType t, double v);
double ulp_of(DType t, double v);

}  // namespace lmk::test
