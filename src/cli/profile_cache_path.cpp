// Where `dspark generate` and `dspark serve` keep the engine's start-up profile: one file per
// combination of everything the timings depend on.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "engine_options.h"

namespace dspark::cli {

namespace {

namespace fs = std::filesystem;

// FNV-1a: stable across builds and compilers, unlike std::hash.
uint64_t fnv1a(const std::string& text) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : text) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}

// A file's or a folder's identity: its path, and the size and modification time of it or of
// each file directly inside it (a Hugging Face or DSpark checkpoint folder).
std::string identity(const std::string& path) {
  std::error_code ec;
  const fs::path p = fs::absolute(path, ec);
  std::string out = p.string();
  std::vector<fs::path> files;
  if (fs::is_directory(p, ec)) {
    for (const auto& entry : fs::directory_iterator(p, ec)) {
      if (entry.is_regular_file(ec)) files.push_back(entry.path());
    }
    std::sort(files.begin(), files.end());
  } else {
    files.push_back(p);
  }
  for (const fs::path& f : files) {
    const auto size = fs::file_size(f, ec);
    const auto time = fs::last_write_time(f, ec).time_since_epoch().count();
    out += "|" + f.filename().string() + ":" + std::to_string(ec ? 0 : size) + ":" +
           std::to_string(ec ? 0 : time);
  }
  return out;
}

std::string cpu_model() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("model name", 0) == 0) return line;
  }
  return "unknown cpu";
}

std::string cache_folder() {
  if (const char* xdg = std::getenv("XDG_CACHE_HOME"); xdg != nullptr && *xdg != '\0') {
    return std::string(xdg) + "/dspark";
  }
  if (const char* home = std::getenv("HOME"); home != nullptr && *home != '\0') {
    return std::string(home) + "/.cache/dspark";
  }
  return "";
}

}  // namespace

std::string profile_cache_path(const Args& args, const engine::EngineConfig& c) {
  if (args.has("no-profile-cache") || c.spec.method == engine::SpecMethod::kNone) return "";
  const std::string folder = cache_folder();
  if (folder.empty()) return "";
  const int threads =
      c.threads > 0 ? c.threads : std::max(1, int(std::thread::hardware_concurrency()));
  std::string key = std::string("dspark ") + DSPARK_VERSION + "|" + cpu_model() + "|threads " +
                    std::to_string(threads) + "|" + identity(args.str("model")) + "|spec " +
                    engine::spec_method_name(c.spec.method);
  if (args.has("draft-model")) key += "|" + identity(args.str("draft-model"));
  char name[40];
  std::snprintf(name, sizeof(name), "sps-%016llx", static_cast<unsigned long long>(fnv1a(key)));
  return folder + "/" + name;
}

}  // namespace dspark::cli
