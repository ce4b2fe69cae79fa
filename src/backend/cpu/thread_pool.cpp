// ThreadPool: workers wait on a generation counter, spinning briefly before they sleep, so the
// hundreds of run() calls of a forward pass cost microseconds each. Tasks are handed out by an
// atomic counter; which thread runs a task never changes its result (kernels are per-task
// deterministic).
#include <sched.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

#include "dspark/backend_cpu.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define DSPARK_CPU_RELAX() _mm_pause()
#else
#define DSPARK_CPU_RELAX() std::this_thread::yield()
#endif

namespace dspark::cpu {
namespace {

// Pause iterations a worker spins before sleeping (roughly 100 microseconds): long enough to
// bridge the gap between consecutive kernels of a forward, short enough not to burn a core
// between requests.
constexpr int kSpinIterations = 4000;

int available_cores() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) == 0) {
    int n = CPU_COUNT(&set);
    if (n > 0) return n;
  }
  unsigned hc = std::thread::hardware_concurrency();
  return hc > 0 ? static_cast<int>(hc) : 1;
}

}  // namespace

struct ThreadPool::Impl {
  int n_threads = 1;
  std::vector<std::thread> workers;

  std::atomic<uint32_t> generation{0};  // bumped for every job
  std::atomic<bool> stop{false};
  std::atomic<int> sleepers{0};
  std::mutex sleep_mutex;
  std::condition_variable wake;

  // The current job, written by run() before job_open is set. A worker touches it only after
  // registering in in_job and seeing the job still open, so run() can return as soon as all
  // tasks are done and no worker is inside: a worker that wakes late (the cores are shared)
  // finds the job closed and costs the caller nothing.
  const std::function<void(int64_t, int)>* fn = nullptr;
  int64_t n_tasks = 0;
  std::atomic<int64_t> next_task{0};
  std::atomic<int64_t> done_tasks{0};
  std::atomic<bool> job_open{false};
  std::atomic<int> in_job{0};

  std::mutex run_mutex;  // one run() at a time

  void work(int thread_index) {
    int64_t done = 0;
    for (;;) {
      const int64_t i = next_task.fetch_add(1, std::memory_order_relaxed);
      if (i >= n_tasks) break;
      (*fn)(i, thread_index);
      ++done;
    }
    if (done > 0) done_tasks.fetch_add(done, std::memory_order_release);
  }

  void worker_loop(int thread_index) {
    uint32_t seen = 0;
    for (;;) {
      uint32_t g = generation.load(std::memory_order_acquire);
      for (int spin = 0; g == seen && spin < kSpinIterations; ++spin) {
        DSPARK_CPU_RELAX();
        g = generation.load(std::memory_order_acquire);
      }
      if (g == seen) {
        std::unique_lock<std::mutex> lock(sleep_mutex);
        sleepers.fetch_add(1, std::memory_order_seq_cst);
        wake.wait(lock, [&] {
          return generation.load(std::memory_order_seq_cst) != seen ||
                 stop.load(std::memory_order_seq_cst);
        });
        sleepers.fetch_sub(1, std::memory_order_relaxed);
        g = generation.load(std::memory_order_acquire);
      }
      if (stop.load(std::memory_order_acquire)) return;
      seen = g;
      in_job.fetch_add(1, std::memory_order_seq_cst);
      if (job_open.load(std::memory_order_seq_cst) &&
          generation.load(std::memory_order_seq_cst) == seen) {
        work(thread_index);
      }
      in_job.fetch_sub(1, std::memory_order_release);
    }
  }

  void wake_sleepers() {
    if (sleepers.load(std::memory_order_seq_cst) > 0) {
      { std::lock_guard<std::mutex> lock(sleep_mutex); }
      wake.notify_all();
    }
  }
};

namespace {

// Pause iterations the caller spins waiting for the last tasks before it starts yielding: a
// task is a few microseconds, and a worker that takes longer has likely lost its core to
// another process, which a yield may give it back.
constexpr int kWaitSpinIterations = 256;

// Spins briefly on `done`, then yields the core.
template <class Done>
void wait_until(Done done) {
  for (int spin = 0; !done(); ++spin) {
    if (spin < kWaitSpinIterations) {
      DSPARK_CPU_RELAX();
    } else {
      std::this_thread::yield();
    }
  }
}

}  // namespace

ThreadPool::ThreadPool(int n_threads) : impl_(std::make_unique<Impl>()) {
  impl_->n_threads = n_threads > 0 ? n_threads : available_cores();
  for (int t = 1; t < impl_->n_threads; ++t) {
    impl_->workers.emplace_back([this, t] { impl_->worker_loop(t); });
  }
}

ThreadPool::~ThreadPool() {
  impl_->stop.store(true, std::memory_order_seq_cst);
  impl_->generation.fetch_add(1, std::memory_order_seq_cst);
  { std::lock_guard<std::mutex> lock(impl_->sleep_mutex); }
  impl_->wake.notify_all();
  for (auto& w : impl_->workers) w.join();
}

int ThreadPool::size() const {
  return impl_->n_threads;
}

void ThreadPool::run(int64_t n_tasks, const std::function<void(int64_t, int)>& fn) {
  if (n_tasks <= 0) return;
  Impl& p = *impl_;
  if (p.workers.empty() || n_tasks == 1) {
    for (int64_t i = 0; i < n_tasks; ++i) fn(i, 0);
    return;
  }
  std::lock_guard<std::mutex> guard(p.run_mutex);
  p.fn = &fn;
  p.n_tasks = n_tasks;
  p.next_task.store(0, std::memory_order_relaxed);
  p.done_tasks.store(0, std::memory_order_relaxed);
  p.job_open.store(true, std::memory_order_seq_cst);
  p.generation.fetch_add(1, std::memory_order_seq_cst);
  p.wake_sleepers();
  p.work(0);
  profile::Scope waiting("pool wait");
  wait_until([&] { return p.done_tasks.load(std::memory_order_acquire) == n_tasks; });
  p.job_open.store(false, std::memory_order_seq_cst);
  wait_until([&] { return p.in_job.load(std::memory_order_seq_cst) == 0; });
  p.fn = nullptr;
}

}  // namespace dspark::cpu
