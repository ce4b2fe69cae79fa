// The start-up latency profile kept on disk between runs: a small text file naming the key it
// was measured for, the sizes and the seconds of a target forward (and of a draft-model level)
// at each. Reading is forgiving (anything unexpected is a miss); writing is atomic.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "dspark/status.h"

namespace dspark::engine {

struct LatencyProfile {
  std::vector<int32_t> sizes;  // [n] ascending token counts
  std::vector<double> target;  // [n] seconds of a target forward over sizes[i] tokens
  std::vector<double> draft;   // [n] a draft-model level's seconds, or empty
};

// The profile in path if it exists, parses, was written for key and is consistent; else none.
std::optional<LatencyProfile> read_profile(const std::string& path, const std::string& key);
// Writes the profile for key (creating the folder; a temporary file renamed into place).
Status write_profile(const std::string& path, const std::string& key, const LatencyProfile& p);

}  // namespace dspark::engine
