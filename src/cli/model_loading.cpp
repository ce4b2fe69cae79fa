#include "model_loading.h"

#include <unistd.h>

#include <chrono>
#include <cstdio>

namespace dspark::cli {

namespace {

// Redraws one stderr line at most every 100 ms, only when stderr is a terminal.
class ProgressBar {
 public:
  explicit ProgressBar(bool enabled) : enabled_(enabled && isatty(STDERR_FILENO)) {}
  void update(uint64_t done, uint64_t total) {
    if (!enabled_ || total == 0) return;
    auto now = std::chrono::steady_clock::now();
    if (done < total && now - last_ < std::chrono::milliseconds(100)) return;
    last_ = now;
    const int width = 40;
    const int filled = int(double(done) / double(total) * width);
    std::fprintf(stderr, "\rloading weights [%.*s%*s] %5.1f%% of %.0f MiB", filled,
                 "########################################", width - filled, "",
                 100.0 * double(done) / double(total), double(total) / (1 << 20));
    if (done >= total) std::fputc('\n', stderr);
    std::fflush(stderr);
  }

 private:
  bool enabled_;
  std::chrono::steady_clock::time_point last_{};
};

}  // namespace

Result<LoadedModel> load_model(const std::string& path, bool quiet) {
  auto t0 = std::chrono::steady_clock::now();
  LoadedModel loaded;
  auto file = ModelFile::open(path);
  if (!file.ok()) return file.error();
  loaded.file = file.value();
  ProgressBar bar(!quiet);
  // Weights are placed for the CPU kernels; the engines run forwards on CPU backends of their
  // own (any thread count), so a one-thread backend places them.
  auto model = Model::load(loaded.file, *make_cpu_backend(1),
                           [&](uint64_t done, uint64_t total) { bar.update(done, total); });
  if (!model.ok()) return model.error();  // Model::load names the file
  loaded.model = std::move(model).value();
  auto tokenizer = Tokenizer::from_model_file(*loaded.file);
  if (!tokenizer.ok()) return Error{path + ": " + tokenizer.error().message};
  loaded.tokenizer = std::move(tokenizer).value();
  if (!quiet) {
    const ModelConfig& c = loaded.model->config();
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::fprintf(stderr,
                 "model: %s (%s), %d layers, d_model %d, %d heads / %d kv, vocab %d, "
                 "%.1f MiB weights, loaded in %.2f s\n",
                 c.name.c_str(), arch_name(c.arch), c.n_layers, c.d_model, c.n_heads, c.n_kv_heads,
                 c.vocab_size, double(loaded.model->weight_bytes()) / (1 << 20), secs);
  }
  return loaded;
}

}  // namespace dspark::cli
