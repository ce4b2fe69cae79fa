// How deep to draft before drafting: expected commits per second over the target's verify cost
// (SPS table) plus the drafter's own learnt cost.
#include <algorithm>
#include <bit>
#include <cmath>

#include "dspark/spec.h"

namespace dspark::spec {

int32_t power_of_two_bucket(int32_t n, int32_t n_buckets) {
  const auto u = static_cast<uint32_t>(std::max(n, 1));
  return std::min(static_cast<int32_t>(std::bit_width(u)) - 1, n_buckets - 1);
}

namespace {

int32_t bucket_of(int32_t n_requests) {
  return power_of_two_bucket(n_requests, DraftCostTable::kBuckets);
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

namespace {

struct DepthChoice {
  int32_t depth = 0;
  double gain = 1.0;  // expected commits per second at depth over plain decoding's
};

// The argmax over depths of expected commits per second, the catch-up spread over
// remaining_tokens of the drafting requests.
DepthChoice best_depth(const DepthInput& in, const SpsTable& sps, const DraftCostTable& cost,
                       double remaining_tokens) {
  const int32_t max_depth = std::min<int32_t>(in.max_depth, int32_t(in.survival.size()));
  double commits = in.base_commits;
  double per_request = 1.0;  // tokens a drafting request commits per step
  const double plain_latency = sps.latency(in.base_tokens);
  const double plain = plain_latency > 0.0 ? commits / plain_latency : 0.0;
  double best = plain;
  DepthChoice choice;
  for (int32_t d = 1; d <= max_depth; ++d) {
    const int64_t tokens = int64_t{in.n_drafting} * d;
    if (tokens > in.max_draft_tokens) break;
    const double survival = std::clamp(in.survival[size_t(d - 1)], 0.0, 1.0);
    commits += in.n_drafting * survival;
    per_request += survival;
    const double steps_left = std::max(1.0, remaining_tokens / per_request);
    const double seconds = sps.latency(in.base_tokens + static_cast<int32_t>(tokens)) +
                           cost.seconds(in.n_drafting, d) + in.catch_up_seconds / steps_left;
    if (seconds <= 0.0) continue;
    if (commits / seconds > best) {
      best = commits / seconds;
      choice.depth = d;
    }
  }
  choice.gain = plain > 0.0 ? best / plain : 1.0;
  return choice;
}

// The deepest depth whose drafting and extra verified tokens lengthen the step by at most
// max_prefill_delay of its plain latency; max_depth where no prompt is prefilled.
int32_t prefill_depth_cap(const DepthInput& in, const SpsTable& sps, const DraftCostTable& cost,
                          int32_t max_depth) {
  if (in.n_prefilling < 1) return max_depth;
  const double plain = sps.latency(in.base_tokens);
  const double allowed = std::max(0.0, in.max_prefill_delay) * plain;
  int32_t cap = 0;
  for (int32_t d = 1; d <= max_depth; ++d) {
    const int32_t tokens = in.base_tokens + in.n_drafting * d;
    const double added =
        sps.latency(tokens) - plain + cost.seconds(in.n_drafting, d) + in.catch_up_seconds;
    if (added > allowed) break;
    cap = d;
  }
  return cap;
}

}  // namespace

int32_t choose_draft_depth(const DepthInput& input, const SpsTable& sps,
                           const DraftCostTable& cost) {
  if (input.n_drafting < 1) return 0;
  DepthInput in = input;
  in.max_depth = prefill_depth_cap(
      input, sps, cost, std::min<int32_t>(input.max_depth, int32_t(input.survival.size())));
  if (in.max_depth < 1) return 0;
  const int32_t max_depth = in.max_depth;
  const auto deepest = static_cast<int32_t>(
      std::min<int64_t>(max_depth, int64_t{in.max_draft_tokens} / in.n_drafting));
  if (deepest >= 1 &&
      cost.seconds(in.n_drafting, deepest) + in.catch_up_seconds < in.free_draft_seconds) {
    return deepest;
  }
  double remaining_tokens = in.remaining_tokens;
  if (in.catch_up_seconds > 0.0 && in.coming_requests > 0) {
    DepthInput steady = input;  // later decode steps: no prefill to cap them
    steady.survival = in.cautious_survival;
    steady.base_tokens = steady.base_commits = steady.n_drafting = in.coming_requests;
    steady.max_draft_tokens =
        std::max(0, in.max_draft_tokens + in.base_tokens - in.coming_requests);
    steady.catch_up_seconds = 0.0;
    if (best_depth(steady, sps, cost, 0.0).gain < 1.0 + in.catch_up_margin) {
      remaining_tokens = 0.0;
    }
  }
  return best_depth(in, sps, cost, remaining_tokens).depth;
}

void RecentAcceptance::observe(size_t n_tried, size_t n_accepted) {
  if (n_tried > verified_at_.size()) {
    verified_at_.resize(n_tried, 0.0);
    accepted_at_.resize(n_tried, 0.0);
  }
  for (size_t d = 0; d < verified_at_.size(); ++d) {
    verified_at_[d] = kKeep * verified_at_[d] + (d < n_tried ? 1.0 : 0.0);
    accepted_at_[d] = kKeep * accepted_at_[d] + (d < n_accepted ? 1.0 : 0.0);
  }
}

std::vector<double> cautious_survival(std::span<const double> forecast,
                                      std::span<const double> verified_at,
                                      std::span<const double> accepted_at, double prior_rounds,
                                      double prior_acceptance) {
  std::vector<double> out(forecast.size());  // [max_depth]
  double alive = 1.0;
  for (size_t d = 0; d < out.size(); ++d) {
    const double verified = d < verified_at.size() ? verified_at[d] : 0.0;
    const double accepted = d < accepted_at.size() ? accepted_at[d] : 0.0;
    alive *= (accepted + prior_rounds * prior_acceptance) / (verified + prior_rounds);
    out[d] = std::min(alive, forecast[d]);
  }
  return out;
}

}  // namespace dspark::spec
