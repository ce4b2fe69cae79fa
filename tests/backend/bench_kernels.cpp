// Benchmark (not a test): matmul throughput per weight type at batch 1 and the cost of batches
// of 8 and 16 tokens relative to 1, against the machine's measured read bandwidth. Each case cycles
// through enough copies of its matrix (> 4x the L3 cache) that weights come from memory.
// Weights are packed as the model packs them at load; for the types with a packed layout the
// last column gives t(8)/t(1) in the file's layout too.
// With --cached 1 a single copy is used, which stays in cache: the kernels' compute cost alone.
// --type NAME runs only the cases of that weight type.
//   bench_kernels [--threads N] [--seconds S] [--cached 1] [--type Q4_K]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "backend_test_util.h"

namespace dspark::cpu {
namespace {

struct Case {
  DType type;
  int64_t rows, cols;
  const char* note;
};

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// Seconds per matmul over n_tok tokens, cycling through the copies for at least `budget` s.
double time_matmul(const std::vector<WeightView>& copies, int64_t n_tok, ThreadPool& pool,
                   double budget) {
  const int64_t cols = copies[0].cols, rows = copies[0].rows;
  const auto x = testing::random_floats(size_t(n_tok * cols), 3);
  std::vector<float> y(size_t(n_tok * rows));
  for (const auto& w : copies) matmul(w, x.data(), n_tok, y.data(), pool);  // warm-up
  int64_t calls = 0;
  const auto t0 = std::chrono::steady_clock::now();
  double elapsed = 0.0;
  do {
    for (const auto& w : copies) matmul(w, x.data(), n_tok, y.data(), pool);
    calls += int64_t(copies.size());
    elapsed = seconds_since(t0);
  } while (elapsed < budget);
  return elapsed / double(calls);
}

int run(int argc, char** argv) {
  int threads = 0;
  double budget = 0.5;
  bool cached = false;
  const char* only_type = nullptr;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (std::strcmp(argv[i], "--threads") == 0) threads = std::atoi(argv[i + 1]);
    if (std::strcmp(argv[i], "--seconds") == 0) budget = std::atof(argv[i + 1]);
    if (std::strcmp(argv[i], "--cached") == 0) cached = std::atoi(argv[i + 1]) != 0;
    if (std::strcmp(argv[i], "--type") == 0) only_type = argv[i + 1];
  }
  ThreadPool pool(threads);
  const double bw = measure_read_bandwidth(pool);
  std::printf("isa %s, %d threads, measured read bandwidth %.1f GB/s\n", isa_name(), pool.size(),
              bw / 1e9);
  std::printf("%-5s %-13s %-22s %9s %8s %7s %10s %10s %12s\n", "type", "shape", "note", "us/call",
              "GB/s", "of bw", "t(8)/t(1)", "t(16)/t(1)", "file layout");
  const Case cases[] = {
      {DType::Q4_1, 576, 1536, "smollm ffn_down"},
      {DType::Q4_1, 1536, 576, "smollm ffn_gate/up"},
      {DType::Q5_0, 4864, 896, "qwen2.5-0.5b ffn_up"},
      {DType::Q8_0, 49152, 576, "smollm output"},
      {DType::Q4_0, 4096, 1024, ""},
      {DType::Q5_1, 4096, 1024, ""},
      {DType::Q8_0, 4096, 1024, ""},
      {DType::Q4_K, 4096, 1024, ""},
      {DType::Q5_K, 4096, 1024, ""},
      {DType::Q6_K, 4096, 1024, ""},
      {DType::Q4_K, 8960, 1536, "qwen2.5-1.5b ffn_up"},
      {DType::Q6_K, 1536, 8960, "qwen2.5-1.5b ffn_down"},
      {DType::Q6_K, 896, 4864, "qwen2.5-0.5b ffn_down"},
      {DType::F16, 4096, 1024, ""},
      {DType::BF16, 4096, 1024, ""},
      {DType::F32, 2048, 1024, ""},
  };
  constexpr size_t kTotalBytes = size_t(160) << 20;  // 5x the 32 MiB L3
  for (const Case& c : cases) {
    if (only_type != nullptr && std::strcmp(only_type, dtype_info(c.type)->name) != 0) continue;
    const auto proto = testing::random_weight(c.type, c.rows, c.cols, 1);
    const size_t bytes = proto.bytes.size();
    const size_t n_copies = cached ? 1 : std::max<size_t>(1, kTotalBytes / bytes);
    std::vector<uint8_t> storage(bytes * n_copies);
    std::vector<WeightView> copies;
    for (size_t i = 0; i < n_copies; ++i) {
      std::memcpy(storage.data() + i * bytes, proto.bytes.data(), bytes);
      WeightView w = proto.view;
      w.data = storage.data() + i * bytes;
      copies.push_back(w);
    }
    std::vector<WeightView> packed;
    for (const WeightView& w : copies) packed.push_back(pack_for_matmul(w, false));
    const double t1 = time_matmul(packed, 1, pool, budget);
    const double t8 = time_matmul(packed, 8, pool, budget);
    const double t16 = time_matmul(packed, 16, pool, budget);
    const double gbs = double(bytes) / t1 / 1e9;
    const std::string shape = std::to_string(c.rows) + "x" + std::to_string(c.cols);
    std::printf("%-5s %-13s %-22s %9.1f %8.1f %6.0f%% %10.2f %10.2f", dtype_info(c.type)->name,
                shape.c_str(), c.note, t1 * 1e6, gbs, 100.0 * gbs * 1e9 / bw, t8 / t1, t16 / t1);
    if (packed[0].packed != nullptr) {
      packed.clear();  // frees the packed copies
      std::printf(" %12.2f",
                  time_matmul(copies, 8, pool, budget) / time_matmul(copies, 1, pool, budget));
    }
    std::printf("\n");
  }
  return 0;
}

}  // namespace
}  // namespace dspark::cpu

int main(int argc, char** argv) {
  return dspark::cpu::run(argc, argv);
}
