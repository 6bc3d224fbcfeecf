// Runs every registered check case on the CPU and on each CUDA device (skipped without one).
#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>

#include "check/check.h"
#include "lmk/device.h"

namespace lmk::test {
namespace {

struct Param {
  const CheckCase* c;
  Device device;
};

std::vector<Param> all_params() {
  std::vector<Param> p;
  for (const auto& c : check_cases()) {
    p.push_back({&c, Device::cpu()});
    p.push_back({&c, Device::cuda(0)});
  }
  return p;
}

class OpCheck : public ::testing::TestWithParam<Param> {};

TEST_P(OpCheck, MatchesFp64Reference) {
  const auto& [c, device] = GetParam();
  if (device.is_cuda() && !cuda_available()) GTEST_SKIP() << "no CUDA device here";
  CompareResult r = c->run(device);
  EXPECT_TRUE(r.ok) << c->op << " " << c->name << " on " << device.str() << ": " << r.message;
}

std::string param_name(const ::testing::TestParamInfo<Param>& info) {
  std::string s = info.param.c->op + "_" + info.param.c->name + "_" + (info.param.device.is_cpu() ? "cpu" : "cuda");
  for (auto& ch : s)
    if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
  return s + "_" + std::to_string(info.index);
}

INSTANTIATE_TEST_SUITE_P(All, OpCheck, ::testing::ValuesIn(all_params()), param_name);

}  // namespace
}  // namespace lmk::test
