// The draft-model drafter: per-request draft KV kept in step with the committed tokens, one
// catch-up forward for all requests (logits at each anchor), then one forward per tree level
// over the frontier nodes of every request.
#include "draft_model_drafter.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <string>
#include <unordered_set>

#include "draft_candidates.h"

namespace dspark::spec {

namespace {

// Catch-up tokens of one request per forward: bounds the activations of a long prompt.
constexpr int32_t kMaxCatchUpChunk = 512;

std::string req_name(RequestId id) {
  return "draft-model drafter: request " + std::to_string(id);
}

// Copy-on-write from the block manager: every row of one block, all layers, K and V.
void copy_block(KvStorage& kv, const kv::BlockCopy& c) {
  const int64_t elems = int64_t{kv.block_size()} * kv.row_elems();
  for (int l = 0; l < kv.n_layers(); ++l) {
    std::memcpy(kv.k(l) + c.to_block * elems, kv.k(l) + c.from_block * elems,
                sizeof(uint16_t) * size_t(elems));
    std::memcpy(kv.v(l) + c.to_block * elems, kv.v(l) + c.from_block * elems,
                sizeof(uint16_t) * size_t(elems));
  }
}

int32_t slot_of(const std::vector<int32_t>& table, int32_t position, int32_t block_size) {
  return table[size_t(position / block_size)] * block_size + position % block_size;
}

}  // namespace

struct DraftModelDrafter::Active {
  Active(const DraftInput& in, size_t index, int32_t top_k)
      : input(index),
        id(in.id),
        tokens(in.tokens),
        max_depth(in.max_depth),
        tree(in.max_nodes, top_k, in.params,
             draft_detail::draft_seed(in.params != nullptr ? in.params->seed : 0, in.id,
                                      int64_t(in.tokens.size()))) {}

  size_t input;  // index into propose's inputs
  RequestId id;
  std::span<const int32_t> tokens;  // [n] committed tokens, the anchor last
  int32_t max_depth;
  int32_t next = 0;          // first token whose draft KV is not written yet
  int32_t anchor_slot = -1;  // scratch slot to rerun the anchor in when its KV is written already
  bool have_anchor_logits = false;
  std::vector<float> anchor_logits;  // [vocab]
  std::vector<int32_t> table;        // [n_blocks] the request's draft block table
  draft_detail::CandidateTree tree;
  bool expanding = true;  // false once its scratch could not be allocated
};

DraftModelDrafter::DraftModelDrafter(DraftModelConfig config, kv::BlockManager blocks)
    : config_(std::move(config)),
      blocks_(std::move(blocks)),
      kv_(config_.model->config(), config_.block_size, config_.kv_blocks),
      own_backend_(config_.backend == nullptr ? make_cpu_backend() : nullptr),
      backend_(config_.backend != nullptr ? config_.backend : own_backend_.get()) {}

Result<std::unique_ptr<DraftModelDrafter>> DraftModelDrafter::create(DraftModelConfig config) {
  const std::string who = "draft-model drafter: ";
  if (config.model == nullptr) return Error{who + "no draft model"};
  if (config.kv_blocks < 1) {
    return Error{who + "kv_blocks must be at least 1 (got " + std::to_string(config.kv_blocks) +
                 ")"};
  }
  if (config.block_size < 1) {
    return Error{who + "block_size must be at least 1 (got " + std::to_string(config.block_size) +
                 ")"};
  }
  if (config.vocab_limit < 0) {
    return Error{who + "vocab_limit must not be negative (got " +
                 std::to_string(config.vocab_limit) + ")"};
  }
  if (config.top_k < 1) {
    return Error{who + "top_k must be at least 1 (got " + std::to_string(config.top_k) + ")"};
  }
  if (int64_t{config.kv_blocks} * config.block_size > std::numeric_limits<int32_t>::max()) {
    return Error{who + std::to_string(config.kv_blocks) + " blocks of " +
                 std::to_string(config.block_size) + " slots overflow int32 slot ids"};
  }
  if (config.model->config().vocab_size < 1)
    return Error{who + "the draft model has no vocabulary"};
  auto blocks = kv::BlockManager::create(kv::KvConfig{config.block_size, config.kv_blocks, true});
  if (!blocks.ok()) return Error{who + blocks.error().message};
  return std::unique_ptr<DraftModelDrafter>(
      new DraftModelDrafter(std::move(config), std::move(blocks.value())));
}

Result<std::unique_ptr<Drafter>> make_draft_model_drafter(DraftModelConfig config) {
  auto drafter = DraftModelDrafter::create(std::move(config));
  if (!drafter.ok()) return drafter.error();
  return std::unique_ptr<Drafter>(std::move(drafter.value()));
}

void DraftModelDrafter::drop(RequestId id) {
  if (blocks_.has_request(id)) (void)blocks_.free_request(id);
  tokens_.erase(id);
}

void DraftModelDrafter::release(RequestId id) {
  drop(id);
}

int64_t DraftModelDrafter::pending_tokens(RequestId id, int64_t n_committed) const {
  const auto held = tokens_.find(id);
  const int64_t have = held == tokens_.end() ? 0 : static_cast<int64_t>(held->second.size());
  return std::max<int64_t>(0, n_committed - have);
}

Status DraftModelDrafter::check_idle() const {
  if (blocks_.n_requests() != 0 || !tokens_.empty()) {
    return Error{"draft-model drafter: " + std::to_string(blocks_.n_requests()) +
                 " requests still hold draft KV (" + std::to_string(tokens_.size()) +
                 " remembered)"};
  }
  DSPARK_RETURN_IF_ERROR(blocks_.check_invariants());
  const kv::BlockPool& pool = blocks_.pool();
  if (pool.n_available() != pool.n_blocks()) {
    return Error{"draft-model drafter: " + std::to_string(pool.n_blocks() - pool.n_available()) +
                 " blocks still referenced with no request alive"};
  }
  return Status::Ok();
}

bool DraftModelDrafter::sync(Active& a) {
  const int32_t vocab = config_.model->config().vocab_size;
  for (int32_t t : a.tokens) {
    if (t < 0 || t >= vocab) {  // the draft cannot read this history
      drop(a.id);
      return false;
    }
  }
  auto held = tokens_.find(a.id);
  if (held != tokens_.end() &&
      (a.tokens.size() < held->second.size() ||
       !std::equal(held->second.begin(), held->second.end(), a.tokens.begin()))) {
    drop(a.id);  // the history changed under us: start over (cached blocks may still serve it)
    held = tokens_.end();
  }
  if (held == tokens_.end()) {
    auto added = blocks_.add_request(a.id, a.tokens);
    if (!added.ok()) return false;
    if (added->copy) copy_block(kv_, *added->copy);
    tokens_.emplace(a.id, std::vector<int32_t>(a.tokens.begin(), a.tokens.end()));
  } else if (a.tokens.size() > held->second.size()) {
    const size_t n_held = held->second.size();
    if (!blocks_.append(a.id, a.tokens.subspan(n_held)).ok()) {
      // Pool full: give its blocks back (full ones stay cached for its next try).
      drop(a.id);
      return false;
    }
    held->second.insert(held->second.end(), a.tokens.begin() + long(n_held), a.tokens.end());
  }
  a.next = *blocks_.n_computed(a.id);
  if (a.next == int32_t(a.tokens.size())) {
    // Proposed again without new tokens: the anchor's KV is written but its logits are gone, so
    // it reruns into a scratch slot (its own slot may sit in a shared cached block).
    auto slot = blocks_.alloc_scratch(a.id, 1);
    if (!slot.ok()) return false;
    a.anchor_slot = int32_t(slot->front());
  }
  a.table = *blocks_.block_table(a.id);
  return true;
}

Status DraftModelDrafter::catch_up(std::vector<Active>& active) {
  const Model& model = *config_.model;
  const int64_t vocab = draft_vocab();
  const int32_t bs = config_.block_size;
  for (;;) {
    ForwardBatch b;
    std::vector<size_t> owner;                       // [n_logit_rows] active index of each row
    std::vector<int32_t> advance(active.size(), 0);  // [n_active] tokens computed this forward
    for (size_t i = 0; i < active.size(); ++i) {
      Active& a = active[i];
      if (a.have_anchor_logits) continue;
      const int32_t n = int32_t(a.tokens.size());
      const int32_t s = int32_t(b.seqs.size());
      const bool rerun = a.anchor_slot >= 0;
      const int32_t first = rerun ? n - 1 : a.next;
      const int32_t len = rerun ? 1 : std::min(kMaxCatchUpChunk, n - a.next);
      b.seqs.push_back(SeqRef{a.table, first});
      for (int32_t pos = first; pos < first + len; ++pos) {
        b.tokens.push_back(a.tokens[size_t(pos)]);
        b.positions.push_back(pos);
        b.seq.push_back(s);
        b.kv_slots.push_back(rerun ? a.anchor_slot : slot_of(a.table, pos, bs));
      }
      if (first + len == n) {
        b.logit_rows.push_back(int32_t(b.tokens.size()) - 1);
        owner.push_back(i);
      }
      if (!rerun) advance[i] = len;
    }
    if (b.tokens.empty()) break;
    b.logit_vocab = int32_t(vocab);
    DSPARK_RETURN_IF_ERROR(model.forward(b, kv_, forward_out_, *backend_));
    for (size_t r = 0; r < owner.size(); ++r) {
      Active& a = active[owner[r]];
      const float* row = forward_out_.logits.data() + int64_t(r) * vocab;
      a.anchor_logits.assign(row, row + vocab);
      a.have_anchor_logits = true;
    }
    for (size_t i = 0; i < active.size(); ++i) {
      if (advance[i] == 0) continue;
      active[i].next += advance[i];
      DSPARK_RETURN_IF_ERROR(blocks_.mark_computed(active[i].id, active[i].next));
    }
  }
  for (Active& a : active) a.tree.expand(-1, a.anchor_logits.data(), vocab);
  return Status::Ok();
}

Result<bool> DraftModelDrafter::expand_level(std::vector<Active>& active, int32_t depth) {
  const Model& model = *config_.model;
  const int64_t vocab = draft_vocab();
  ForwardBatch b;
  std::vector<std::pair<size_t, int32_t>> rows;  // [n_tok] (active index, candidate) per token
  for (size_t i = 0; i < active.size(); ++i) {
    Active& a = active[i];
    if (!a.expanding || depth >= a.max_depth) continue;
    const std::vector<int32_t> front = a.tree.frontier(depth);
    if (front.empty()) continue;
    auto slots = blocks_.alloc_scratch(a.id, int32_t(front.size()));
    if (!slots.ok()) {  // pool full: the tree stays as drafted so far
      a.expanding = false;
      continue;
    }
    a.table = *blocks_.block_table(a.id);
    const int32_t n = int32_t(a.tokens.size());
    for (size_t j = 0; j < front.size(); ++j) {
      draft_detail::Candidate& c = a.tree.node(front[j]);
      c.slot = int32_t((*slots)[j]);
      // Its own SeqRef: the context, then its ancestors from earlier levels as extra slots.
      b.seqs.push_back(SeqRef{a.table, n, a.tree.ancestor_slots(front[j])});
      b.tokens.push_back(c.token);
      b.positions.push_back(n - 1 + depth);
      b.seq.push_back(int32_t(b.seqs.size()) - 1);
      b.kv_slots.push_back(c.slot);
      b.logit_rows.push_back(int32_t(b.tokens.size()) - 1);
      rows.emplace_back(i, front[j]);
    }
  }
  if (b.tokens.empty()) return false;
  b.logit_vocab = int32_t(vocab);
  DSPARK_RETURN_IF_ERROR(model.forward(b, kv_, forward_out_, *backend_));
  for (size_t r = 0; r < rows.size(); ++r) {
    active[rows[r].first].tree.expand(rows[r].second,
                                      forward_out_.logits.data() + int64_t(r) * vocab, vocab);
  }
  return true;
}

Status DraftModelDrafter::propose(std::span<const DraftInput> inputs, std::vector<DraftTree>& out) {
  out.assign(inputs.size(), DraftTree{});
  std::unordered_set<RequestId> seen;
  for (const DraftInput& in : inputs) {
    if (!seen.insert(in.id).second) return Error{req_name(in.id) + " appears twice in one call"};
  }
  std::vector<Active> active;
  for (size_t i = 0; i < inputs.size(); ++i) {
    const DraftInput& in = inputs[i];
    if (in.tokens.empty() || in.max_nodes <= 0 || in.max_depth <= 0) continue;
    Active a(in, i, config_.top_k);
    if (sync(a)) active.push_back(std::move(a));
  }
  Status status = catch_up(active);
  for (int32_t depth = 1; status.ok(); ++depth) {
    auto more = expand_level(active, depth);
    if (!more.ok()) status = more.error();
    if (!more.ok() || !*more) break;
  }
  for (Active& a : active) {
    // Tree KV is only needed while drafting: free the scratch slots (commit nothing).
    if (*blocks_.n_scratch(a.id) > 0) (void)blocks_.keep_path(a.id, {}, {});
    if (status.ok()) out[a.input] = a.tree.finish();
  }
  return status;
}

}  // namespace dspark::spec
