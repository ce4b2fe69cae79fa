// DSparkDrafter: input checks, context commits at the target's slots, grouping of requests
// into block passes and the factory.
#include "dspark_drafter.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

namespace dspark::spec {

namespace {

const std::string kWho = "dspark drafter: ";

// Rows of context projected per write_context call: bounds the activations of a long prompt.
constexpr int64_t kCommitChunk = 256;

}  // namespace

struct DSparkDrafter::Active {
  size_t input;     // index into propose's inputs
  int32_t start;    // the anchor's position: context is positions [0, start)
  int32_t n_nodes;  // drafts wanted, <= B
  int32_t anchor;
  float temperature;  // <= 1e-5: greedy
};

DSparkDrafter::DSparkDrafter(const DSparkDrafterConfig& config, dspark_detail::Checkpoint ck,
                             std::unique_ptr<Backend> own_backend)
    : config_(config),
      ck_(std::move(ck)),
      target_slots_(int64_t{config.kv_blocks} * config.block_size),
      // Scratch blocks after the target's: room for every block row of one pass.
      kv_(ck_.layers_config, config.block_size,
          config.kv_blocks +
              (config.max_requests * ck_.block_size + config.block_size - 1) / config.block_size),
      own_backend_(std::move(own_backend)),
      backend_(config.backend != nullptr ? config.backend : own_backend_.get()),
      rng_(config.seed),
      dropped_(size_t(target_slots_), 0) {}

Result<std::unique_ptr<DSparkDrafter>> DSparkDrafter::create(const DSparkDrafterConfig& config) {
  if (config.target_model == nullptr) return Error{kWho + "no target model"};
  if (config.kv_blocks < 1 || config.block_size < 1) {
    return Error{kWho + "the target KV pool must have at least one block of one slot (got " +
                 std::to_string(config.kv_blocks) + " blocks of " +
                 std::to_string(config.block_size) + ")"};
  }
  if (config.max_requests < 1 || config.max_requests > 4096) {
    return Error{kWho + "max_requests " + std::to_string(config.max_requests) +
                 " is not in [1, 4096]"};
  }
  // The backend places the weights it copies at load (cut heads, quantized layers) and runs the
  // drafter's ops.
  std::unique_ptr<Backend> own_backend = config.backend == nullptr ? make_cpu_backend() : nullptr;
  Backend& backend = config.backend != nullptr ? *config.backend : *own_backend;
  auto ck = dspark_detail::load_checkpoint(config.path, *config.target_model, backend);
  if (!ck.ok()) return ck.error();
  if (config.quantize_layers) {
    DSPARK_RETURN_IF_ERROR(dspark_detail::quantize_layers(backend, &ck.value()));
  }
  const int64_t scratch = int64_t{config.max_requests} * ck->block_size + config.block_size;
  if (int64_t{config.kv_blocks} * config.block_size + scratch >
      std::numeric_limits<int32_t>::max()) {
    return Error{kWho + std::to_string(config.kv_blocks) + " blocks of " +
                 std::to_string(config.block_size) + " slots overflow int32 slot ids"};
  }
  return std::unique_ptr<DSparkDrafter>(
      new DSparkDrafter(config, std::move(ck.value()), std::move(own_backend)));
}

Result<std::unique_ptr<Drafter>> make_dspark_drafter(const DSparkDrafterConfig& config) {
  auto drafter = DSparkDrafter::create(config);
  if (!drafter.ok()) return drafter.error();
  return std::unique_ptr<Drafter>(std::move(drafter.value()));
}

Status DSparkDrafter::commit_features(std::span<const int64_t> slots,
                                      std::span<const int32_t> positions,
                                      std::span<const float> features) {
  const int64_t n = static_cast<int64_t>(slots.size());
  const int64_t row = ck_.n_features() * ck_.d_model();
  if (positions.size() != slots.size() || int64_t(features.size()) != n * row) {
    return Error{kWho + "commit_features got " + std::to_string(slots.size()) + " slots, " +
                 std::to_string(positions.size()) + " positions and " +
                 std::to_string(features.size()) + " feature values (expected " +
                 std::to_string(row) + " per token: " + std::to_string(ck_.n_features()) +
                 " layers of " + std::to_string(ck_.d_model()) + ")"};
  }
  for (int64_t i = 0; i < n; ++i) {
    if (slots[size_t(i)] < 0 || slots[size_t(i)] >= target_slots_) {
      return Error{kWho + "commit_features: slot " + std::to_string(slots[size_t(i)]) +
                   " is outside the target's " + std::to_string(target_slots_) + " slots"};
    }
    if (positions[size_t(i)] < 0) {
      return Error{kWho + "commit_features: negative position " +
                   std::to_string(positions[size_t(i)])};
    }
  }
  std::lock_guard<std::mutex> lock(mutex_);
  pending_slots_.insert(pending_slots_.end(), slots.begin(), slots.end());
  pending_positions_.insert(pending_positions_.end(), positions.begin(), positions.end());
  pending_features_.insert(pending_features_.end(), features.begin(), features.end());
  if (pending_features_.size() > config_.max_pending_floats) {
    // A long prompt on a drafting server is projected; a stretch of rests is dropped.
    if (rest_steps_ >= config_.rest_steps_to_drop) {
      drop_pending();
    } else {
      project_pending();
    }
  }
  return Status::Ok();
}

void DSparkDrafter::rest() {
  std::lock_guard<std::mutex> lock(mutex_);
  ++rest_steps_;
}

void DSparkDrafter::drop_pending() {
  for (const int64_t slot : pending_slots_) dropped_[size_t(slot)] = 1;
  pending_slots_.clear();
  pending_positions_.clear();
  pending_features_.clear();
}

bool DSparkDrafter::context_dropped(const DraftInput& in) const {
  const int64_t bs = config_.block_size;
  const int64_t start = int64_t(in.tokens.size()) - 1;  // context: positions [0, start)
  for (int64_t p = 0; p < start; ++p) {
    if (dropped_[size_t(in.block_table[size_t(p / bs)] * bs + p % bs)]) return true;
  }
  return false;
}

void DSparkDrafter::project_context() {
  std::lock_guard<std::mutex> lock(mutex_);
  project_pending();
}

void DSparkDrafter::project_pending() {
  const int64_t row = ck_.n_features() * ck_.d_model();
  const auto n = static_cast<int64_t>(pending_slots_.size());
  for (int64_t begin = 0; begin < n; begin += kCommitChunk) {
    const int64_t m = std::min(kCommitChunk, n - begin);
    ctx_slots_.assign(pending_slots_.begin() + begin, pending_slots_.begin() + begin + m);
    for (const int64_t slot : ctx_slots_) dropped_[size_t(slot)] = 0;
    dspark_detail::write_context(ck_, pending_features_.data() + begin * row,
                                 pending_positions_.data() + begin, ctx_slots_.data(), m, kv_,
                                 scratch_, *backend_);
  }
  pending_slots_.clear();
  pending_positions_.clear();
  pending_features_.clear();
}

void DSparkDrafter::copy_slots(int64_t from_slot, int64_t to_slot, int64_t n) {
  const auto inside = [&](int64_t s) { return s >= 0 && n <= target_slots_ - s; };
  if (n <= 0 || !inside(from_slot) || !inside(to_slot)) return;
  std::lock_guard<std::mutex> lock(mutex_);
  project_pending();  // the source rows must hold their features before they are copied
  kv_.copy_slots(from_slot, to_slot, n);
  std::vector<uint8_t> flags(dropped_.begin() + from_slot, dropped_.begin() + from_slot + n);
  std::copy(flags.begin(), flags.end(), dropped_.begin() + to_slot);
}

Status DSparkDrafter::check_input(const DraftInput& in, size_t index) const {
  const std::string who =
      kWho + "input " + std::to_string(index) + " (request " + std::to_string(in.id) + "): ";
  const int32_t anchor = in.tokens.back();
  if (anchor < 0 || anchor >= ck_.vocab()) {
    return Error{who + "anchor token " + std::to_string(anchor) + " is outside the vocabulary"};
  }
  const int64_t start = int64_t(in.tokens.size()) - 1;
  if (start + ck_.block_size > std::numeric_limits<int32_t>::max()) {
    return Error{who + std::to_string(start) + " tokens exceed int32 positions"};
  }
  const int64_t bs = config_.block_size;
  const int64_t need = (start + bs - 1) / bs;
  if (int64_t(in.block_table.size()) < need) {
    return Error{who + "block table has " + std::to_string(in.block_table.size()) +
                 " blocks; the context of " + std::to_string(start) + " positions needs " +
                 std::to_string(need)};
  }
  for (int64_t b = 0; b < need; ++b) {
    const int32_t block = in.block_table[size_t(b)];
    if (block < 0 || block >= config_.kv_blocks) {
      return Error{who + "block table entry " + std::to_string(b) + " is " + std::to_string(block) +
                   ", outside the target's " + std::to_string(config_.kv_blocks) + " blocks"};
    }
  }
  if (in.params != nullptr &&
      !(std::isfinite(in.params->temperature) && in.params->temperature >= 0.0f)) {
    return Error{who + "temperature " + std::to_string(in.params->temperature) +
                 " is not a finite non-negative number"};
  }
  return Status::Ok();
}

Status DSparkDrafter::propose(std::span<const DraftInput> inputs, std::vector<DraftTree>& out) {
  out.assign(inputs.size(), DraftTree{});
  std::vector<Active> active;
  std::lock_guard<std::mutex> lock(mutex_);
  for (size_t i = 0; i < inputs.size(); ++i) {
    const DraftInput& in = inputs[i];
    const int32_t n_nodes = std::min({ck_.block_size, in.max_depth, in.max_nodes});
    // start >= 1: the block needs at least one context position.
    if (n_nodes <= 0 || in.tokens.size() < 2) continue;
    DSPARK_RETURN_IF_ERROR(check_input(in, i));
    active.push_back(Active{i, static_cast<int32_t>(in.tokens.size() - 1), n_nodes,
                            in.tokens.back(),
                            in.params != nullptr ? in.params->temperature : 0.0f});
  }
  if (!active.empty()) {
    rest_steps_ = 0;
    project_pending();
  }
  // A context with a dropped slot is stale: that request decodes plainly.
  std::erase_if(active, [&](const Active& a) { return context_dropped(inputs[a.input]); });
  last_logits_.assign(keep_logits_ ? inputs.size() : 0, {});
  const size_t group = static_cast<size_t>(config_.max_requests);
  for (size_t begin = 0; begin < active.size(); begin += group) {
    const size_t n = std::min(group, active.size() - begin);
    propose_group(std::span<const Active>(active).subspan(begin, n), inputs, out);
  }
  return Status::Ok();
}

void DSparkDrafter::propose_group(std::span<const Active> group, std::span<const DraftInput> inputs,
                                  std::vector<DraftTree>& out) {
  const int32_t B = ck_.block_size;
  const int64_t bs = config_.block_size, d = ck_.d_model(), V = ck_.draft_vocab();
  dspark_detail::BlockBatch& b = batch_;
  b.tokens.clear();
  b.positions.clear();
  b.slots.clear();
  b.seq.clear();
  b.plan.reset(static_cast<int32_t>(bs));
  for (size_t r = 0; r < group.size(); ++r) {
    const Active& a = group[r];
    const int32_t base = static_cast<int32_t>(target_slots_ + int64_t(r) * B);
    b.plan.add_sequence(inputs[a.input].block_table, a.start, {});
    for (int32_t j = 0; j < B; ++j) {
      b.tokens.push_back(j == 0 ? a.anchor : ck_.mask_token);
      b.positions.push_back(a.start + j);
      b.slots.push_back(base + j);
      b.seq.push_back(static_cast<int32_t>(r));
    }
  }
  // Every row of a block sees the same keys: the context, then the whole block in order.
  b.plan.set_tokens(b.seq, b.slots);
  b.plan.use_mask();
  for (int32_t t = 0; t < int32_t(b.rows()); ++t) {
    const int32_t first = t - t % B;
    for (int32_t u = first; u < first + B; ++u) b.plan.allow(t, u);
  }
  dspark_detail::run_block(ck_, b, kv_, scratch_, *backend_, h_);

  // Logits only for the rows that become drafts (the head is the largest matrix).
  int64_t n_rows = 0;
  for (const Active& a : group) n_rows += a.n_nodes;
  h_rows_.resize(size_t(n_rows * d));
  int64_t row = 0;
  for (size_t r = 0; r < group.size(); ++r) {
    const float* src = h_.data() + int64_t(r) * B * d;
    std::copy(src, src + group[r].n_nodes * d, h_rows_.data() + row * d);
    row += group[r].n_nodes;
  }
  logits_.resize(size_t(n_rows * V));
  backend_->matmul(ck_.draft_head, h_rows_.data(), n_rows, logits_.data());

  row = 0;
  for (const Active& a : group) {
    const float* U = logits_.data() + row * V;
    dspark_detail::draft_chain(ck_, h_rows_.data() + row * d, U, a.n_nodes, a.anchor, a.temperature,
                               rng_, head_scratch_, *backend_, out[a.input]);
    if (keep_logits_) last_logits_[a.input].assign(U, U + a.n_nodes * V);
    row += a.n_nodes;
  }
}

}  // namespace dspark::spec
