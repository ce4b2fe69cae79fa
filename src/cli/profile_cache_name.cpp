#include "profile_cache_name.h"

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <thread>

#include "dspark/backend_cpu.h"

namespace dspark::cli {

namespace {

// FNV-1a, 64 bits.
class Hash {
 public:
  void add(const void* data, size_t n) {
    const auto* p = static_cast<const uint8_t*>(data);
    for (size_t i = 0; i < n; ++i) h_ = (h_ ^ p[i]) * 1099511628211ull;
  }
  void add(const std::string& s) { add(s.data(), s.size() + 1); }  // with its terminator
  template <class T>
  void add_value(T v) {
    add(&v, sizeof v);
  }
  std::string hex() const {
    char out[17];
    std::snprintf(out, sizeof out, "%016llx", static_cast<unsigned long long>(h_));
    return out;
  }

 private:
  uint64_t h_ = 1469598103934665603ull;
};

// The tensor table and the first and last 4 KiB of each tensor's bytes: two files with the same
// fingerprint hold the same model for any practical purpose, and computing it reads little.
std::string fingerprint(const ModelFile& file) {
  constexpr uint64_t kEdge = 4096;
  Hash h;
  for (const TensorInfo& t : file.tensors()) {
    h.add(t.name);
    h.add_value(static_cast<uint32_t>(t.type));
    for (int64_t d : t.shape) h.add_value(d);
    h.add_value(t.n_bytes);
    const uint64_t edge = std::min(kEdge, t.n_bytes);
    h.add(t.data, edge);
    h.add(t.data + (t.n_bytes - edge), edge);
  }
  return h.hex();
}

std::string cpu_model() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("model name", 0) == 0) {
      const size_t colon = line.find(':');
      if (colon != std::string::npos) return line.substr(colon + 2);
    }
  }
  return "unknown cpu";
}

std::string cache_folder() {
  const char* xdg = std::getenv("XDG_CACHE_HOME");
  if (xdg != nullptr && xdg[0] == '/') return std::string(xdg) + "/dspark";
  const char* home = std::getenv("HOME");
  if (home != nullptr && home[0] == '/') return std::string(home) + "/.cache/dspark";
  return "";
}

}  // namespace

void name_profile_cache(engine::EngineConfig& config, const std::string& draft_path) {
  const std::string folder = cache_folder();
  if (folder.empty() || config.spec.method == engine::SpecMethod::kNone) return;
  std::string draft = "none";
  if (config.spec.draft_model) {
    draft = fingerprint(config.spec.draft_model->file());
  } else if (!draft_path.empty()) {
    auto file = ModelFile::open(draft_path);
    draft = file.ok() ? fingerprint(**file) : draft_path;
  }
  const int threads =
      config.threads > 0 ? config.threads : int(std::thread::hardware_concurrency());
  std::string key =
      "target=" + fingerprint(config.model->file()) +
      " method=" + engine::spec_method_name(config.spec.method) + " draft=" + draft +
      " cpu=" + cpu_model() + "/" + cpu::isa_name() + " threads=" + std::to_string(threads) +
      " step-tokens=" + std::to_string(config.max_num_batched_tokens) + " version=" DSPARK_VERSION;
  std::replace(key.begin(), key.end(), '\n', ' ');
  Hash h;
  h.add(key);
  config.spec.profile_cache = folder + "/profile-" + h.hex() + ".txt";
  config.spec.profile_key = std::move(key);
}

}  // namespace dspark::cli
