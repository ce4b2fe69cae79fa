// measure_read_bandwidth: every pool thread streams through its slice of a buffer larger than
// the caches; the best of a few passes is reported.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <memory>
#include <new>

#include "dspark/backend_cpu.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

namespace dspark::cpu {
namespace {

// Sum of the 64-bit words of p[0, n) (n a multiple of 64 bytes): four independent accumulators
// keep enough loads in flight to saturate memory from one core.
uint64_t read_slice(const uint8_t* p, size_t n) {
#if defined(__x86_64__) || defined(__i386__)
  __m128i a0 = _mm_setzero_si128(), a1 = a0, a2 = a0, a3 = a0;
  for (size_t i = 0; i < n; i += 64) {
    // Prefetching well ahead, as the matmul kernels do, to measure what they can reach.
    _mm_prefetch(reinterpret_cast<const char*>(p + i) + 8192, _MM_HINT_T0);
    a0 = _mm_add_epi64(a0, _mm_load_si128(reinterpret_cast<const __m128i*>(p + i)));
    a1 = _mm_add_epi64(a1, _mm_load_si128(reinterpret_cast<const __m128i*>(p + i + 16)));
    a2 = _mm_add_epi64(a2, _mm_load_si128(reinterpret_cast<const __m128i*>(p + i + 32)));
    a3 = _mm_add_epi64(a3, _mm_load_si128(reinterpret_cast<const __m128i*>(p + i + 48)));
  }
  const __m128i s = _mm_add_epi64(_mm_add_epi64(a0, a1), _mm_add_epi64(a2, a3));
  uint64_t out[2];
  std::memcpy(out, &s, sizeof(out));
  return out[0] + out[1];
#else
  uint64_t s = 0;
  for (size_t i = 0; i < n; i += 8) {
    uint64_t v;
    std::memcpy(&v, p + i, 8);
    s += v;
  }
  return s;
#endif
}

struct AlignedFree {
  void operator()(uint8_t* p) const { ::operator delete[](p, std::align_val_t(64)); }
};

}  // namespace

double measure_read_bandwidth(ThreadPool& pool, size_t bytes) {
  const int64_t n_threads = pool.size();
  const size_t slice = std::max<size_t>(bytes / size_t(n_threads) / 64 * 64, 64);
  const size_t total = slice * size_t(n_threads);
  std::unique_ptr<uint8_t[], AlignedFree> buf(
      static_cast<uint8_t*>(::operator new[](total, std::align_val_t(64))));
  // Each thread first touches its own slice so its pages are mapped before timing.
  pool.run(n_threads, [&](int64_t i, int) { std::memset(buf.get() + i * slice, 1, slice); });
  std::atomic<uint64_t> sink{0};
  double best = 0.0;
  for (int pass = 0; pass < 5; ++pass) {
    const auto start = std::chrono::steady_clock::now();
    pool.run(n_threads, [&](int64_t i, int) {
      sink.fetch_add(read_slice(buf.get() + i * slice, slice), std::memory_order_relaxed);
    });
    const double s =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (s > 0.0) best = std::max(best, double(total) / s);
  }
  return sink.load() == 0 ? 0.0 : best;
}

}  // namespace dspark::cpu
