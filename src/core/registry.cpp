#include "lmk/registry.h"

#include <algorithm>
#include <mutex>

#include "lmk/error.h"

namespace lmk {

namespace {
std::vector<OpInfo>& table() {
  static std::vector<OpInfo> t;
  return t;
}
std::mutex& table_mutex() {
  static std::mutex m;
  return m;
}
}  // namespace

detail::OpRegistrar::OpRegistrar(OpInfo info) {
  std::lock_guard lock(table_mutex());
  for (const auto& o : table())
    if (o.name == info.name) LMK_THROW(InvalidArgument, "op '", info.name, "' registered twice");
  table().push_back(std::move(info));
}

std::vector<OpInfo> registered_ops() {
  std::lock_guard lock(table_mutex());
  auto t = table();
  std::sort(t.begin(), t.end(), [](const OpInfo& a, const OpInfo& b) {
    return a.family != b.family ? a.family < b.family : a.name < b.name;
  });
  return t;
}

const OpInfo* find_op(const std::string& name) {
  std::lock_guard lock(table_mutex());
  for (const auto& o : table())
    if (o.name == name) return &o;
  return nullptr;
}

}  // namespace lmk
