// StepTurns: a fair turn between engines' steps (paired benchmarks in one process).
#include <algorithm>

#include "dspark/engine.h"

namespace dspark::engine {

StepTurns::StepTurns(int n_players) : waiting_(size_t(std::max(n_players, 1)), 0) {}

void StepTurns::begin(int player) {
  std::unique_lock<std::mutex> lock(mu_);
  waiting_.at(size_t(player)) = 1;
  cv_.wait(lock, [&] { return turn_ == player || turn_ == -1; });
  turn_ = player;
  waiting_[size_t(player)] = 0;
}

void StepTurns::end(int player) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    turn_ = -1;
    const int n = static_cast<int>(waiting_.size());
    for (int k = 1; k < n; ++k) {
      const int next = (player + k) % n;
      if (waiting_[size_t(next)]) {
        turn_ = next;
        break;
      }
    }
  }
  cv_.notify_all();
}

}  // namespace dspark::engine
