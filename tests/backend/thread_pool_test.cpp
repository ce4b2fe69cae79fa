// ThreadPool: every task runs exactly once, on a valid thread index, across many runs; CPU
// feature reporting and the ISA cap; the bandwidth probe returns a plausible number.
#include <gtest/gtest.h>

#include <atomic>
#include <vector>

#include "backend_test_util.h"

namespace dspark::cpu {
namespace {

TEST(ThreadPool, RunsEveryTaskOnce) {
  for (int n_threads : {1, 2, 3}) {
    ThreadPool pool(n_threads);
    EXPECT_EQ(pool.size(), n_threads);
    for (int64_t n_tasks : {0, 1, 2, 5, 100, 1000}) {
      std::vector<std::atomic<int>> hits(n_tasks);
      std::atomic<bool> bad_thread{false};
      pool.run(n_tasks, [&](int64_t i, int thread) {
        hits[i].fetch_add(1);
        if (thread < 0 || thread >= n_threads) bad_thread = true;
      });
      for (int64_t i = 0; i < n_tasks; ++i) EXPECT_EQ(hits[i].load(), 1);
      EXPECT_FALSE(bad_thread.load());
    }
  }
}

TEST(ThreadPool, ManySmallRuns) {
  ThreadPool pool(2);
  std::atomic<int64_t> sum{0};
  for (int run = 0; run < 20000; ++run) {
    pool.run(4, [&](int64_t i, int) { sum.fetch_add(i + 1); });
  }
  EXPECT_EQ(sum.load(), 20000 * 10);
}

TEST(ThreadPool, DefaultSizeIsAvailableCores) {
  ThreadPool pool;
  EXPECT_GE(pool.size(), 1);
}

TEST(CpuFeatures, CapLowersIsa) {
  const Isa top = testing::available_isas().back();
  {
    testing::IsaScope scope(Isa::Scalar);
    EXPECT_EQ(active_isa(), Isa::Scalar);
    EXPECT_STREQ(isa_name(), "scalar");
    EXPECT_FALSE(cpu_features().avx2);
  }
  EXPECT_EQ(set_isa_cap(Isa::Avx512), top);
  if (top >= Isa::Avx2) {
    EXPECT_TRUE(cpu_features().avx2 && cpu_features().fma);
  }
  if (top == Isa::Avx512) {
    EXPECT_STREQ(isa_name(), "avx512-vnni");
  }
}

TEST(Bandwidth, Positive) {
  ThreadPool pool(2);
  const double bw = measure_read_bandwidth(pool, size_t(16) << 20);
  EXPECT_GT(bw, 1e8);  // any machine reads 100 MB/s
}

}  // namespace
}  // namespace dspark::cpu
