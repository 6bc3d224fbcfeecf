// The op registry: every public op registers itself once (name, family, dtypes, backends,
// spec section, kernel ids). `lmk ops`, `lmk check` and docs/ops.md are generated from it.
#pragma once
#include <string>
#include <vector>

namespace lmk {

struct OpInfo {
  std::string name;     // public function name, e.g. "rms_norm"
  std::string family;   // elementwise, norm, softmax, ...
  std::string dtypes;   // human-readable dtype list, e.g. "f32, f16 (f32 weight), bf16"
  bool cpu = true;
  bool cuda = true;
  std::string spec;     // spec section, e.g. "core-ops.md §5"
  std::string kernels;  // stable kernel ids (mlx-native names), e.g. "rms_norm_{f32,f16,bf16}"
};

// All registered ops, sorted by family then name.
std::vector<OpInfo> registered_ops();
const OpInfo* find_op(const std::string& name);

namespace detail {
struct OpRegistrar {
  explicit OpRegistrar(OpInfo info);
};
}  // namespace detail

#define LMK_REGISTER_OP_CAT2(a, b) a##b
#define LMK_REGISTER_OP_CAT(a, b) LMK_REGISTER_OP_CAT2(a, b)
// LMK_REGISTER_OP({.name = "add", .family = "elementwise", ...});
#define LMK_REGISTER_OP(...) \
  static ::lmk::detail::OpRegistrar LMK_REGISTER_OP_CAT(lmk_op_registrar_, __LINE__)(::lmk::OpInfo __VA_ARGS__)

}  // namespace lmk
