// CUDA micro-benchmarks: device read bandwidth (streaming read kernel vs cudaMemcpy D2D),
// rmsnorm throughput and cuBLAS fp16 GEMM times at decode/verify shapes. Prints a table; with
// --summary FILE also writes key=value lines for scripts/gpu_check.sh. Without a device it says
// so and exits 0.
#include <algorithm>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "dspark/backend_cuda.h"
#include "dspark/loader.h"

namespace dspark::cuda {
namespace {

constexpr int kWarmup = 3;
constexpr int kIters = 20;

struct Summary {
  std::vector<std::pair<std::string, std::string>> lines;
  void add(const std::string& key, const std::string& value) { lines.emplace_back(key, value); }
  void add(const std::string& key, double value) {
    char text[64];
    std::snprintf(text, sizeof text, "%.2f", value);
    add(key, std::string(text));
  }
};

// Fails the run with a message naming the step.
#define BENCH_CHECK(expr)                                        \
  do {                                                           \
    auto&& bench_status_ = (expr);                               \
    if (!bench_status_.ok()) {                                   \
      std::fprintf(stderr, "bench_cuda: %s failed: %s\n", #expr, \
                   bench_status_.error().message.c_str());       \
      return false;                                              \
    }                                                            \
  } while (0)

// Mean milliseconds of one call of fn over kIters after kWarmup untimed calls.
template <class Fn>
bool time_ms(const Stream& stream, Fn&& fn, double* ms_out) {
  auto start = Event::create();
  auto end = Event::create();
  BENCH_CHECK(start);
  BENCH_CHECK(end);
  for (int i = 0; i < kWarmup; ++i) BENCH_CHECK(fn());
  BENCH_CHECK(start->record(stream));
  for (int i = 0; i < kIters; ++i) BENCH_CHECK(fn());
  BENCH_CHECK(end->record(stream));
  auto ms = Event::elapsed_ms(*start, *end);
  BENCH_CHECK(ms);
  *ms_out = *ms / kIters;
  return true;
}

// Fills device memory with random floats in [-1, 1] by repeating one host chunk.
bool fill_random(float* device, size_t n, const Stream& stream) {
  const size_t chunk = std::min<size_t>(n, size_t(1) << 22);
  std::vector<float> host(chunk);
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  for (float& v : host) v = dist(rng);
  for (size_t at = 0; at < n; at += chunk) {
    BENCH_CHECK(
        copy_to_device(device + at, host.data(), std::min(chunk, n - at) * sizeof(float), stream));
  }
  return true;
}

void print_row(const char* what, const std::string& shape, double us, const std::string& rate) {
  std::printf("%-26s %-22s %11.2f  %s\n", what, shape.c_str(), us, rate.c_str());
}

// snprintf into a std::string (also keeps g++ 12's -Wrestrict false positive on chained
// string concatenation out of the way).
template <class... Args>
std::string format(const char* pattern, Args... args) {
  char text[160];
  std::snprintf(text, sizeof text, pattern, args...);
  return text;
}

std::string rate(double value, const char* unit) {
  return format("%9.1f %s", value, unit);
}

bool bench_bandwidth(const Stream& stream, Summary& summary) {
  const size_t bytes = size_t(2) << 30;  // far beyond L2
  auto a = DeviceBuffer::allocate(bytes);
  auto b = DeviceBuffer::allocate(bytes);
  auto sum = DeviceBuffer::allocate(sizeof(float));
  BENCH_CHECK(a);
  BENCH_CHECK(b);
  BENCH_CHECK(sum);
  const size_t n = bytes / sizeof(float);
  if (!fill_random(a->as<float>(), n, stream)) return false;

  double ms = 0;
  if (!time_ms(
          stream, [&] { return read_sweep(a->as<float>(), n, sum->as<float>(), stream); }, &ms)) {
    return false;
  }
  const double read_gbps = bytes / (ms * 1e-3) / 1e9;
  print_row("read kernel (reads)", "2 GiB", ms * 1e3, rate(read_gbps, "GB/s"));
  summary.add("read_gbps", read_gbps);

  if (!time_ms(
          stream, [&] { return copy_on_device(b->data(), a->data(), bytes, stream); }, &ms)) {
    return false;
  }
  const double copy_gbps = 2.0 * bytes / (ms * 1e-3) / 1e9;  // read + write
  print_row("memcpy D2D (read+write)", "2 GiB", ms * 1e3, rate(copy_gbps, "GB/s"));
  summary.add("d2d_gbps", copy_gbps);
  return true;
}

bool bench_rmsnorm(const Stream& stream, Summary& summary) {
  struct Shape {
    int64_t n, d;
  };
  for (const Shape s : {Shape{1, 896}, Shape{16, 1536}, Shape{16384, 4096}}) {
    auto x = DeviceBuffer::allocate(s.n * s.d * sizeof(float));
    auto y = DeviceBuffer::allocate(s.n * s.d * sizeof(float));
    auto w = DeviceBuffer::allocate(s.d * sizeof(float));
    BENCH_CHECK(x);
    BENCH_CHECK(y);
    BENCH_CHECK(w);
    if (!fill_random(x->as<float>(), s.n * s.d, stream)) return false;
    if (!fill_random(w->as<float>(), s.d, stream)) return false;
    double ms = 0;
    if (!time_ms(
            stream,
            [&] {
              return rmsnorm(x->as<float>(), w->as<float>(), s.n, s.d, 1e-6f, y->as<float>(),
                             stream);
            },
            &ms)) {
      return false;
    }
    const double gbps = 2.0 * s.n * s.d * sizeof(float) / (ms * 1e-3) / 1e9;
    const long n = static_cast<long>(s.n), d = static_cast<long>(s.d);
    print_row("rmsnorm fp32 (read+write)", format("[%ld, %ld]", n, d), ms * 1e3,
              rate(gbps, "GB/s"));
    summary.add(format("rmsnorm_%ldx%ld_us", n, d), ms * 1e3);
    if (s.n > 1000) summary.add("rmsnorm_gbps", gbps);
  }
  return true;
}

bool bench_gemm(const Stream& stream, uint64_t l2_bytes, Summary& summary) {
  auto blas = Blas::create();
  BENCH_CHECK(blas);
  struct Shape {
    int64_t cols, rows;
  };
  for (const Shape s : {Shape{896, 4864}, Shape{1536, 8960}}) {
    // Several copies of the weight, cycled, so each call streams it from memory rather than L2
    // (a decode step reads each weight once).
    const size_t weight_bytes = s.rows * s.cols * 2;
    const size_t copies = std::max<size_t>(2, (3 * l2_bytes + weight_bytes - 1) / weight_bytes);
    auto weights = DeviceBuffer::allocate(copies * weight_bytes);
    BENCH_CHECK(weights);
    {
      std::vector<uint16_t> host(s.rows * s.cols);
      std::mt19937 rng(11);
      std::uniform_real_distribution<float> dist(-0.05f, 0.05f);
      for (uint16_t& h : host) h = f32_to_f16(dist(rng));
      for (size_t c = 0; c < copies; ++c) {
        BENCH_CHECK(copy_to_device(weights->as<uint8_t>() + c * weight_bytes, host.data(),
                                   weight_bytes, stream));
      }
    }
    for (const int64_t n_tok : {1, 8, 16}) {
      auto x = DeviceBuffer::allocate(n_tok * s.cols * sizeof(float));
      auto y = DeviceBuffer::allocate(n_tok * s.rows * sizeof(float));
      BENCH_CHECK(x);
      BENCH_CHECK(y);
      if (!fill_random(x->as<float>(), n_tok * s.cols, stream)) return false;
      size_t next = 0;
      double ms = 0;
      auto call = [&] {
        const DeviceWeight w{DType::F16, s.rows, s.cols,
                             weights->as<uint8_t>() + (next++ % copies) * weight_bytes};
        return blas->matmul(w, x->as<float>(), n_tok, y->as<float>(), stream);
      };
      if (!time_ms(stream, call, &ms)) return false;
      const double weight_gbps = weight_bytes / (ms * 1e-3) / 1e9;
      const double tflops = 2.0 * n_tok * s.rows * s.cols / (ms * 1e-3) / 1e12;
      const long t = static_cast<long>(n_tok), cols = static_cast<long>(s.cols),
                 rows = static_cast<long>(s.rows);
      print_row("gemm fp16 W, fp32 x/y", format("t=%ld %ld->%ld", t, cols, rows), ms * 1e3,
                format("%9.1f GB/s  %6.2f TFLOP/s", weight_gbps, tflops));
      const std::string key = format("gemm_f16_%ldx%ld_t%ld", cols, rows, t);
      summary.add(key + "_us", ms * 1e3);
      summary.add(key + "_gbps", weight_gbps);
    }
  }
  return true;
}

int run(const char* summary_path) {
  Summary summary;
  auto write_summary = [&] {
    if (!summary_path) return;
    std::ofstream out(summary_path);
    for (const auto& [key, value] : summary.lines) out << key << "=" << value << "\n";
  };
  std::string why;
  if (!cuda_available(&why)) {
    std::printf("bench_cuda: no CUDA device: %s\n", why.c_str());
    summary.add("device", "none");
    summary.add("why", why);
    write_summary();
    return 0;
  }
  auto info = cuda_device_info(0);
  if (!info.ok()) {
    std::fprintf(stderr, "bench_cuda: %s\n", info.error().message.c_str());
    return 1;
  }
  std::printf("device: %s, cc %d.%d, %d SMs, %.1f GiB, L2 %.0f MiB, driver %d, runtime %d\n",
              info->name.c_str(), info->cc_major, info->cc_minor, info->sm_count,
              info->total_memory / double(1 << 30), info->l2_cache_bytes / double(1 << 20),
              info->driver_version, info->runtime_version);
  summary.add("device", info->name);
  summary.add("cc", format("%d.%d", info->cc_major, info->cc_minor));
  std::printf("%-26s %-22s %11s  %s\n", "bench", "size/shape", "time (us)", "rate");
  const Stream stream;
  const bool ok = bench_bandwidth(stream, summary) && bench_rmsnorm(stream, summary) &&
                  bench_gemm(stream, info->l2_cache_bytes, summary);
  summary.add("status", ok ? "ok" : "failed");
  write_summary();
  return ok ? 0 : 1;
}

}  // namespace
}  // namespace dspark::cuda

int main(int argc, char** argv) {
  const char* summary_path = nullptr;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--summary") == 0 && i + 1 < argc) {
      summary_path = argv[++i];
    } else {
      std::fprintf(stderr, "usage: %s [--summary FILE]\n", argv[0]);
      return 2;
    }
  }
  return dspark::cuda::run(summary_path);
}
