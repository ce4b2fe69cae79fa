// Stop-string matching over streamed text and the per-request finish checks.
#include <algorithm>

#include "dspark/sample.h"

namespace dspark {

namespace {

// Length of the longest suffix of text that is a proper prefix of stop (a stop string that could
// still complete with more text).
size_t partial_overlap(const std::string& text, const std::string& stop) {
  for (size_t len = std::min(stop.size() - 1, text.size()); len > 0; --len) {
    if (text.compare(text.size() - len, len, stop, 0, len) == 0) return len;
  }
  return 0;
}

// Moves end back to the start of a UTF-8 sequence that text[0, end) cuts short, so streamed text
// never ends inside a character. Invalid bytes pass through unchanged.
size_t complete_utf8_prefix(const std::string& text, size_t end) {
  for (size_t back = 1; back <= 4 && back <= end; ++back) {
    const auto byte = static_cast<unsigned char>(text[end - back]);
    if ((byte & 0xC0) == 0x80) continue;  // continuation byte: keep looking for the lead
    size_t need = 1;
    if ((byte & 0xE0) == 0xC0) need = 2;
    if ((byte & 0xF0) == 0xE0) need = 3;
    if ((byte & 0xF8) == 0xF0) need = 4;
    return need > back ? end - back : end;
  }
  return end;
}

}  // namespace

StopStringMatcher::StopStringMatcher(std::vector<std::string> stops) : stops_(std::move(stops)) {
  // Empty strings would match everywhere; validate rejects them, and here they are ignored.
  std::erase_if(stops_, [](const std::string& s) { return s.empty(); });
}

std::string StopStringMatcher::feed(std::string_view piece) {
  if (matched_) return {};
  held_.append(piece);
  // Generation stops where a stop string first completes (so the answer does not depend on how
  // the text was cut into pieces); among those completing at the same byte, the earliest start.
  // held_ never contains a complete stop string before this append.
  size_t best_end = std::string::npos, best_start = 0;
  for (size_t i = 0; i < stops_.size(); ++i) {
    const size_t pos = held_.find(stops_[i]);
    if (pos == std::string::npos) continue;
    const size_t end = pos + stops_[i].size();
    if (end < best_end || (end == best_end && pos < best_start)) {
      best_end = end;
      best_start = pos;
      matched_ = i;
    }
  }
  if (matched_) {
    std::string out = held_.substr(0, best_start);
    held_.clear();
    return out;
  }
  size_t hold = 0;
  for (const std::string& stop : stops_) hold = std::max(hold, partial_overlap(held_, stop));
  const size_t emit = complete_utf8_prefix(held_, held_.size() - hold);
  std::string out = held_.substr(0, emit);
  held_.erase(0, emit);
  return out;
}

std::string StopStringMatcher::flush() {
  std::string out;
  if (!matched_) out.swap(held_);
  held_.clear();
  return out;
}

const char* finish_reason_name(FinishReason reason) {
  switch (reason) {
    case FinishReason::kStop:
      return "stop";
    case FinishReason::kLength:
      return "length";
    case FinishReason::kAbort:
      return "abort";
    case FinishReason::kError:
      return "error";
  }
  return "error";
}

FinishChecker::FinishChecker(const SamplingParams& params, std::vector<int32_t> eos_ids)
    : params_(params), eos_ids_(std::move(eos_ids)), matcher_(params.stop) {}

bool FinishChecker::is_stop_id(int32_t token) const {
  auto has = [token](const std::vector<int32_t>& ids) {
    return std::find(ids.begin(), ids.end(), token) != ids.end();
  };
  return has(params_.stop_token_ids) || (!params_.ignore_eos && has(eos_ids_));
}

FinishChecker::Step FinishChecker::on_token(int32_t token, std::string_view piece) {
  Step step;
  if (finished_) return step;
  ++generated_;
  // min_tokens blocks stop ids in the logits for the first min_tokens tokens; should one be drawn
  // anyway it is ordinary text.
  if (generated_ > params_.min_tokens && is_stop_id(token)) {
    step.text = matcher_.flush();  // the stop token's own text is not streamed
    step.finish = FinishReason::kStop;
  } else {
    step.text = matcher_.feed(piece);
    if (matcher_.stopped()) {
      step.finish = FinishReason::kStop;
    } else if (generated_ >= params_.max_tokens) {
      step.text += matcher_.flush();
      step.finish = FinishReason::kLength;
    }
  }
  finished_ = step.finish.has_value();
  return step;
}

}  // namespace dspark
