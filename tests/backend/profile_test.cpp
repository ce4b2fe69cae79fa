// The opt-in op profile: nothing is recorded while it is off; while on, each op kind and matmul
// shape gets one entry with its call count.
#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "backend_test_util.h"

namespace dspark::cpu {
namespace {

const profile::Entry* find(const std::vector<profile::Entry>& entries, const std::string& name) {
  const auto it = std::find_if(entries.begin(), entries.end(),
                               [&](const profile::Entry& e) { return e.name == name; });
  return it == entries.end() ? nullptr : &*it;
}

TEST(Profile, RecordsOnlyWhileEnabled) {
  ThreadPool pool(2);
  const auto w = testing::random_weight(DType::Q4_1, 37, 64, 1);
  const auto x = testing::random_floats(2 * 64, 2);
  std::vector<float> y(2 * 37), normed(2 * 64);
  profile::take();  // whatever an earlier test left

  matmul(w.view, x.data(), 2, y.data(), pool);
  EXPECT_TRUE(profile::take().empty());

  profile::set_enabled(true);
  matmul(w.view, x.data(), 2, y.data(), pool);
  matmul(w.view, x.data(), 2, y.data(), pool);
  rmsnorm(x.data(), x.data(), 2, 64, 1e-5f, normed.data());
  profile::set_enabled(false);
  const auto entries = profile::take();
  const profile::Entry* mm = find(entries, "matmul Q4_1 64->37");
  ASSERT_NE(mm, nullptr);
  EXPECT_EQ(mm->calls, 2);
  EXPECT_GE(mm->seconds, 0.0);
  const profile::Entry* quant = find(entries, "quantize activations");
  ASSERT_NE(quant, nullptr);
  EXPECT_EQ(quant->calls, 2);
  const profile::Entry* norm = find(entries, "rmsnorm");
  ASSERT_NE(norm, nullptr);
  EXPECT_EQ(norm->calls, 1);
  EXPECT_TRUE(profile::take().empty());  // take() cleared the table
}

}  // namespace
}  // namespace dspark::cpu
