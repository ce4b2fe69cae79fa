// Start-up profiles on disk: a small text file per model and settings,
//   dspark-sps-profile 1
//   next <index>
//   <size> <ratio> <samples>     (one line per size, ascending)
#include "profile_cache.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>

#include <unistd.h>

namespace dspark::engine {

namespace {

constexpr const char* kMagic = "dspark-sps-profile";
constexpr int kFormat = 1;

bool valid(const ProfileRecord& r) {
  if (r.sizes.empty() || r.sizes.size() != r.ratios.size() || r.sizes.size() != r.samples.size() ||
      r.sizes[0] != 1) {
    return false;
  }
  for (size_t i = 0; i < r.sizes.size(); ++i) {
    if (i > 0 && r.sizes[i] <= r.sizes[i - 1]) return false;
    if (!std::isfinite(r.ratios[i]) || r.ratios[i] <= 0.0 || r.samples[i] < 1) return false;
  }
  return r.next >= 0 && size_t(r.next) < r.sizes.size();
}

}  // namespace

Result<ProfileRecord> read_profile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return ProfileRecord{};
  std::string magic;
  int format = 0;
  std::string next_key;
  ProfileRecord r;
  if (!(in >> magic >> format) || magic != kMagic || format != kFormat) {
    return Error{"profile cache " + path + ": not a dspark-sps-profile 1 file"};
  }
  if (!(in >> next_key >> r.next) || next_key != "next") {
    return Error{"profile cache " + path + ": no 'next' line"};
  }
  int32_t size = 0, samples = 0;
  double ratio = 0.0;
  while (in >> size >> ratio >> samples) {
    r.sizes.push_back(size);
    r.ratios.push_back(ratio);
    r.samples.push_back(samples);
  }
  if (!in.eof() || !valid(r)) return Error{"profile cache " + path + ": malformed entries"};
  return r;
}

Status write_profile(const std::string& path, const ProfileRecord& record) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const fs::path target(path);
  if (target.has_parent_path()) fs::create_directories(target.parent_path(), ec);
  if (ec)
    return Error{"profile cache: cannot create " + target.parent_path().string() + ": " +
                 ec.message()};
  // Two processes starting at once each write their own file; the last rename wins.
  const std::string tmp = path + ".tmp" + std::to_string(::getpid());
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << kMagic << ' ' << kFormat << "\nnext " << record.next << '\n';
    out.precision(17);
    for (size_t i = 0; i < record.sizes.size(); ++i) {
      out << record.sizes[i] << ' ' << record.ratios[i] << ' ' << record.samples[i] << '\n';
    }
    if (!out.flush()) return Error{"profile cache: cannot write " + tmp};
  }
  fs::rename(tmp, target, ec);
  if (ec) return Error{"profile cache: cannot rename " + tmp + ": " + ec.message()};
  return Status::Ok();
}

std::vector<bool> sizes_to_time(const ProfileRecord& record, const std::vector<int32_t>& sizes) {
  const bool complete =
      std::none_of(record.samples.begin(), record.samples.end(), [](int32_t n) { return n < 1; });
  if (record.sizes != sizes || !complete) return std::vector<bool>(sizes.size(), true);
  std::vector<bool> out(sizes.size(), false);
  out[0] = true;
  if (sizes.size() > 1) out[1] = true;
  out[size_t(record.next)] = true;
  return out;
}

void fold_profile(ProfileRecord& record, const std::vector<int32_t>& sizes,
                  const std::vector<double>& seconds) {
  if (record.sizes != sizes) {
    record = ProfileRecord{};
    record.sizes = sizes;
    record.ratios.assign(sizes.size(), 1.0);
    record.samples.assign(sizes.size(), 0);
  }
  const double one = seconds[0];
  for (size_t i = 0; i < sizes.size(); ++i) {
    if (!(seconds[i] > 0.0) || !std::isfinite(seconds[i])) continue;
    const double ratio = seconds[i] / one;
    const int32_t n = std::min(record.samples[i] + 1, ProfileRecord::kMaxSamples);
    record.ratios[i] += (ratio - record.ratios[i]) / n;
    record.samples[i] = n;
  }
  // Rotate over the sizes a warm start does not always time (2 and up), largest first.
  const int32_t n = static_cast<int32_t>(sizes.size());
  record.next = n > 2 ? (record.next <= 2 ? n - 1 : record.next - 1) : 0;
}

std::vector<double> profile_latencies(const ProfileRecord& record, double one_token_seconds) {
  std::vector<double> out(record.ratios.size());  // [n_sizes]
  for (size_t i = 0; i < out.size(); ++i) {
    out[i] = record.ratios[i] * one_token_seconds;
    if (i > 0) out[i] = std::max(out[i], out[i - 1]);
  }
  return out;
}

}  // namespace dspark::engine
