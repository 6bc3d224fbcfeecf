#include "check/check.h"

#include <sstream>

#include "lmk/dtype.h"

namespace lmk::test {

std::vector<CheckCase>& check_cases() {
  static std::vector<CheckCase> cases;
  return cases;
}

CompareResult merge(CompareResult a, const CompareResult& b, const std::string& b_label) {
  a.rel_l2 = std::max(a.rel_l2, b.rel_l2);
  a.max_abs = std::max(a.max_abs, b.max_abs);
  a.failures += b.failures;
  if (!b.ok) {
    a.ok = false;
    a.message += (a.message.empty() ? "" : " | ") + b_label + (b_label.empty() ? "" : ": ") + b.message;
  }
  return a;
}

std::string shape_name(DType t, const std::vector<int64_t>& shape) {
  std::ostringstream os;
  os << name(t) << '[';
  for (size_t i = 0; i < shape.size(); ++i) os << (i ? "," : "") << shape[i];
  os << ']';
  return os.str();
}

}  // namespace lmk::test
