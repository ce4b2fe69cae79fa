// Start-up step-latency profiles kept on disk between runs (SpecConfig::profile_cache): each
// profiled size's latency as a ratio to one token's, averaged over start-ups, so that one start's
// unlucky sample fades instead of sticking (a cached forward(2) = 1.006 x forward(1) once made
// the controller verify a draft for every request at every load). A cold start times every
// size; a warm one re-times one token, two tokens and one other size in rotation, and scales
// the averaged ratios by this start's one-token latency (live steps then follow the machine).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "dspark/status.h"

namespace dspark::engine {

struct ProfileRecord {
  std::vector<int32_t> sizes;    // [n_sizes] ascending, sizes[0] == 1
  std::vector<double> ratios;    // [n_sizes] latency(size) / latency(1), averaged over starts
  std::vector<int32_t> samples;  // [n_sizes] starts averaged into each ratio (capped)
  int32_t next = 0;              // index of the size the next warm start re-times

  static constexpr int32_t kMaxSamples = 8;  // a new sample weighs at least 1/8
};

// The record at path: empty when there is no file; an error naming the problem when the file is
// malformed (the caller then profiles from scratch and overwrites it).
Result<ProfileRecord> read_profile(const std::string& path);
// Writes the record to a temporary file beside path and renames it over path, creating the
// folder first.
Status write_profile(const std::string& path, const ProfileRecord& record);

// [n_sizes] which of sizes (ascending, sizes[0] == 1) a start must time: all of them when the
// record holds other sizes (or none), else 1, 2 and the record's rotating size.
std::vector<bool> sizes_to_time(const ProfileRecord& record, const std::vector<int32_t>& sizes);
// Folds one start's timings into the record: seconds [n_sizes] at sizes, <= 0 where a size was
// not timed (seconds[0], one token, must be timed). A record for other sizes starts over.
void fold_profile(ProfileRecord& record, const std::vector<int32_t>& sizes,
                  const std::vector<double>& seconds);
// [n_sizes] latencies for the SPS table: the averaged ratios times one_token_seconds, each at
// least the previous one (a larger step is never cheaper).
std::vector<double> profile_latencies(const ProfileRecord& record, double one_token_seconds);

}  // namespace dspark::engine
