// How deep to draft before drafting: expected commits per second over the target's verify cost
// (SPS table) plus the drafter's own learnt cost.
#include <algorithm>
#include <bit>
#include <cmath>

#include "dspark/spec.h"

namespace dspark::spec {

namespace {

int32_t bucket_of(int32_t n_requests) {
  const auto n = static_cast<uint32_t>(std::max(n_requests, 1));
  return std::min(static_cast<int32_t>(std::bit_width(n)) - 1, DraftCostTable::kBuckets - 1);
}

}  // namespace

DraftCostTable::DraftCostTable(int32_t max_depth)
    : max_depth_(std::max(max_depth, 0)), seconds_(size_t(kBuckets) * size_t(max_depth_), -1.0) {}

void DraftCostTable::observe(int32_t n_requests, int32_t depth, double seconds) {
  if (depth < 1 || depth > max_depth_ || !std::isfinite(seconds) || seconds < 0.0) return;
  double& entry = seconds_[size_t(bucket_of(n_requests)) * size_t(max_depth_) + size_t(depth - 1)];
  entry = entry < 0.0 ? seconds : (1.0 - kAlpha) * entry + kAlpha * seconds;
}

double DraftCostTable::seconds(int32_t n_requests, int32_t depth) const {
  if (depth < 1) return 0.0;
  const size_t row = size_t(bucket_of(n_requests)) * size_t(max_depth_);
  for (int32_t d = std::min(depth, max_depth_); d >= 1; --d) {
    if (seconds_[row + size_t(d - 1)] >= 0.0) return seconds_[row + size_t(d - 1)];
  }
  return 0.0;
}

int32_t choose_draft_depth(const DepthInput& in, const SpsTable& sps, const DraftCostTable& cost) {
  if (in.n_drafting < 1) return 0;
  const int32_t max_depth = std::min<int32_t>(in.max_depth, int32_t(in.survival.size()));
  const auto deepest = static_cast<int32_t>(
      std::min<int64_t>(max_depth, int64_t{in.max_draft_tokens} / in.n_drafting));
  if (deepest >= 1 &&
      cost.seconds(in.n_drafting, deepest) + in.catch_up_seconds < in.free_draft_seconds) {
    return deepest;
  }
  double commits = in.base_commits;
  double per_request = 1.0;  // tokens a drafting request commits per step
  const double plain = sps.latency(in.base_tokens);
  double best = plain > 0.0 ? commits / plain : 0.0;
  int32_t best_depth = 0;
  for (int32_t d = 1; d <= max_depth; ++d) {
    const int64_t tokens = int64_t{in.n_drafting} * d;
    if (tokens > in.max_draft_tokens) break;
    const double survival = std::clamp(in.survival[size_t(d - 1)], 0.0, 1.0);
    commits += in.n_drafting * survival;
    per_request += survival;
    const double steps_left = std::max(1.0, in.remaining_tokens / per_request);
    const double seconds = sps.latency(in.base_tokens + static_cast<int32_t>(tokens)) +
                           cost.seconds(in.n_drafting, d) + in.catch_up_seconds / steps_left;
    if (seconds <= 0.0) continue;
    if (commits / seconds > best) {
      best = commits / seconds;
      best_depth = d;
    }
  }
  return best_depth;
}

}  // namespace dspark::spec
