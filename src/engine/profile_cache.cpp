#include "profile_cache.h"

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <unistd.h>

namespace dspark::engine {

namespace {

constexpr const char* kMagic = "dspark-latency-profile 1";

// "name v0 v1 ..." into values; false when the line has another name or a bad number.
template <class T>
bool parse_line(const std::string& line, const char* name, std::vector<T>& values) {
  std::istringstream in(line);
  std::string head;
  if (!(in >> head) || head != name) return false;
  T v{};
  while (in >> v) values.push_back(v);
  return in.eof();
}

bool consistent(const LatencyProfile& p) {
  if (p.sizes.empty() || p.target.size() != p.sizes.size()) return false;
  if (!p.draft.empty() && p.draft.size() != p.sizes.size()) return false;
  for (size_t i = 0; i < p.sizes.size(); ++i) {
    if (p.sizes[i] < 1 || (i > 0 && p.sizes[i] <= p.sizes[i - 1])) return false;
    if (!std::isfinite(p.target[i]) || p.target[i] <= 0.0) return false;
    if (!p.draft.empty() && (!std::isfinite(p.draft[i]) || p.draft[i] <= 0.0)) return false;
  }
  return true;
}

}  // namespace

std::optional<LatencyProfile> read_profile(const std::string& path, const std::string& key) {
  std::ifstream in(path);
  if (!in) return std::nullopt;
  std::string magic, key_line, sizes, target, draft;
  if (!std::getline(in, magic) || magic != kMagic) return std::nullopt;
  if (!std::getline(in, key_line) || key_line != "key " + key) return std::nullopt;
  LatencyProfile p;
  if (!std::getline(in, sizes) || !parse_line(sizes, "sizes", p.sizes)) return std::nullopt;
  if (!std::getline(in, target) || !parse_line(target, "target", p.target)) return std::nullopt;
  if (std::getline(in, draft) && !parse_line(draft, "draft", p.draft)) return std::nullopt;
  if (!consistent(p)) return std::nullopt;
  return p;
}

Status write_profile(const std::string& path, const std::string& key, const LatencyProfile& p) {
  if (!consistent(p)) return Error{"latency profile: nothing consistent to write"};
  if (key.find('\n') != std::string::npos) return Error{"latency profile: key has a line break"};
  std::error_code ec;
  const std::filesystem::path file(path);
  if (file.has_parent_path()) std::filesystem::create_directories(file.parent_path(), ec);
  if (ec)
    return Error{"latency profile: cannot create " + file.parent_path().string() + ": " +
                 ec.message()};
  const std::string tmp = path + ".tmp" + std::to_string(::getpid());
  {
    std::ofstream out(tmp, std::ios::trunc);
    out.precision(9);
    out << kMagic << "\nkey " << key << "\nsizes";
    for (int32_t n : p.sizes) out << ' ' << n;
    out << "\ntarget";
    for (double s : p.target) out << ' ' << s;
    out << '\n';
    if (!p.draft.empty()) {
      out << "draft";
      for (double s : p.draft) out << ' ' << s;
      out << '\n';
    }
    if (!out.flush()) return Error{"latency profile: cannot write " + tmp};
  }
  std::filesystem::rename(tmp, file, ec);
  if (ec) {
    std::filesystem::remove(tmp, ec);
    return Error{"latency profile: cannot replace " + path};
  }
  return Status::Ok();
}

}  // namespace dspark::engine
