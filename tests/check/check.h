// Check cases: one op on one device against its fp64 reference on fresh random data. The same
// cases drive the GoogleTest suite (every case, every device) and `lmk check` (quick cases).
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "util/testkit.h"

namespace lmk::test {

struct CheckCase {
  std::string op;     // registered op name
  std::string name;   // what varies: dtype, shape, options
  bool quick = false; // part of `lmk check`'s default set
  std::function<CompareResult(Device)> run;
};

std::vector<CheckCase>& check_cases();
// Both must pass; messages joined.
CompareResult merge(CompareResult a, const CompareResult& b, const std::string& b_label = "");

struct CheckRegistrar {
  explicit CheckRegistrar(void (*add)(std::vector<CheckCase>&)) { add(check_cases()); }
};

// LMK_CHECKS(elementwise) { cases.push_back({...}); }
#define LMK_CHECKS(tag)                                               \
  static void lmk_checks_##tag(std::vector<::lmk::test::CheckCase>&);  \
  static ::lmk::test::CheckRegistrar lmk_check_registrar_##tag(&lmk_checks_##tag); \
  static void lmk_checks_##tag(std::vector<::lmk::test::CheckCase>& cases)

inline const std::vector<DType>& float_types() {
  static const std::vector<DType> t{DType::f32, DType::f16, DType::bf16};
  return t;
}
std::string shape_name(DType t, const std::vector<int64_t>& shape);

}  // namespace lmk::test
