// Stream: the per-request event queue between the engine thread and the caller.
#include "dspark/engine.h"

namespace dspark::engine {

const char* spec_method_name(SpecMethod method) {
  switch (method) {
    case SpecMethod::kNone:
      return "none";
    case SpecMethod::kNgram:
      return "ngram";
    case SpecMethod::kDraftModel:
      return "draft-model";
    case SpecMethod::kDSpark:
      return "dspark";
  }
  return "none";
}

double SpecStats::mean_accepted_length() const {
  return n_rounds > 0 ? double(n_rounds + n_accepted) / double(n_rounds) : 1.0;
}

void Stream::push(Event event) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (closed_) return;
    closed_ = event.final.has_value();
    events_.push_back(std::move(event));
  }
  cv_.notify_all();
}

Event Stream::next() {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait(lock, [&] { return !events_.empty() || final_.has_value(); });
  if (events_.empty()) return *final_;
  Event e = std::move(events_.front());
  events_.pop_front();
  if (e.final) final_ = e;
  return e;
}

std::optional<Event> Stream::next_for(std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(mu_);
  if (!cv_.wait_for(lock, timeout, [&] { return !events_.empty() || final_.has_value(); })) {
    return std::nullopt;
  }
  if (events_.empty()) return *final_;
  Event e = std::move(events_.front());
  events_.pop_front();
  if (e.final) final_ = e;
  return e;
}

Completion Stream::collect() {
  Completion c;
  for (;;) {
    Event e = next();
    ++c.n_events;
    c.tokens.insert(c.tokens.end(), e.tokens.begin(), e.tokens.end());
    c.text += e.text;
    c.logprobs.insert(c.logprobs.end(), e.logprobs.begin(), e.logprobs.end());
    if (e.final) {
      c.final = *e.final;
      return c;
    }
  }
}

}  // namespace dspark::engine
