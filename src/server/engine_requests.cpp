// Submitting, multiplexing, aborting and draining the engine requests of one HTTP request.
#include "engine_requests.h"

namespace dspark::server {

namespace {

// An aborted request finishes at the engine's next step boundary; this bounds the wait should
// the engine be wedged.
constexpr std::chrono::seconds kDrainTimeout{30};

}  // namespace

EngineRequests::EngineRequests(std::shared_ptr<State> state,
                               std::shared_ptr<const ServedModel> model)
    : state_(std::move(state)), model_(std::move(model)), started_(Clock::now()) {}

EngineRequests::~EngineRequests() {
  abort_and_drain();
}

Status EngineRequests::submit_n(engine::Request request, int32_t n) {
  auto streams = model_->engine->submit_n(std::move(request), n);
  if (!streams.ok()) return streams.error();
  for (std::shared_ptr<engine::Stream>& stream : streams.value()) {
    state_->add_live(stream->id());
    streams_.push_back(std::move(stream));
    submitted_.push_back(Clock::now());
    last_event_.push_back(submitted_.back());
    done_.push_back(false);
    has_tokens_.push_back(false);
  }
  return Status::Ok();
}

void EngineRequests::observe(size_t i, const engine::Event& event) {
  const Clock::time_point now = Clock::now();
  if (!event.tokens.empty()) {
    if (has_tokens_[i]) {
      state_->metrics.record_inter_token(
          std::chrono::duration<double>(now - last_event_[i]).count(),
          int64_t(event.tokens.size()));
    }
    has_tokens_[i] = true;
    last_event_[i] = now;
  }
  if (event.final) {
    done_[i] = true;
    ++n_done_;
    state_->remove_live(streams_[i]->id());
    state_->metrics.record_request(
        RequestRecord{*event.final, std::chrono::duration<double>(now - submitted_[i]).count()});
  }
}

std::optional<std::pair<size_t, engine::Event>> EngineRequests::next(
    std::chrono::milliseconds wait) {
  const size_t n = streams_.size();
  if (finished()) return std::nullopt;
  // A pass that takes whatever is ready, starting after the last stream served.
  for (size_t k = 0; k < n; ++k) {
    const size_t i = (cursor_ + k) % n;
    if (done_[i]) continue;
    if (auto event = streams_[i]->next_for(std::chrono::milliseconds(0))) {
      cursor_ = i + 1;
      observe(i, *event);
      return std::make_pair(i, std::move(*event));
    }
  }
  // Nothing ready: block on one stream. Several streams advance together in the same engine
  // steps, so a short wait on one costs the others little.
  size_t first = 0;
  while (done_[first]) ++first;
  const std::chrono::milliseconds w =
      n - n_done_ == 1 ? wait : std::min(wait, std::chrono::milliseconds(2));
  if (auto event = streams_[first]->next_for(w)) {
    cursor_ = first + 1;
    observe(first, *event);
    return std::make_pair(first, std::move(*event));
  }
  return std::nullopt;
}

void EngineRequests::abort_and_drain() {
  for (size_t i = 0; i < streams_.size(); ++i) {
    // The request may have finished in the meantime: an abort error is expected then.
    if (!done_[i]) (void)model_->engine->abort(streams_[i]->id());
  }
  const Clock::time_point deadline = Clock::now() + kDrainTimeout;
  for (size_t i = 0; i < streams_.size(); ++i) {
    while (!done_[i]) {
      const auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
      if (left.count() <= 0) return;
      if (auto event = streams_[i]->next_for(left)) observe(i, *event);
    }
  }
}

}  // namespace dspark::server
