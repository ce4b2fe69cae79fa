// Batch validation and attention planning for Model::forward.
#include "batch_plan.h"

#include <string>

namespace dspark::model_detail {

namespace {

std::string tok(size_t t) {
  return "token " + std::to_string(t) + ": ";
}

// Physical slot of logical index j of a sequence (the table is known to cover j).
int32_t context_slot(const SeqRef& s, int64_t j, int block_size) {
  return static_cast<int32_t>(int64_t{s.block_table[j / block_size]} * block_size + j % block_size);
}

Status check_shapes(const ModelConfig& c, const ForwardBatch& b, const KvStorage& kv) {
  const size_t n = b.tokens.size();
  if (b.positions.size() != n || b.seq.size() != n || b.kv_slots.size() != n) {
    return Error{"forward batch: tokens, positions, seq and kv_slots must have the same length (" +
                 std::to_string(n) + ", " + std::to_string(b.positions.size()) + ", " +
                 std::to_string(b.seq.size()) + ", " + std::to_string(b.kv_slots.size()) + ")"};
  }
  if (!b.attend.empty() && b.attend.size() != n) {
    return Error{"forward batch: attend has " + std::to_string(b.attend.size()) + " lists for " +
                 std::to_string(n) + " tokens (must be empty or one per token)"};
  }
  if (kv.n_layers() != c.n_layers || kv.row_elems() != int64_t{c.n_kv_heads} * c.head_dim) {
    return Error{"forward batch: the KV storage was made for another model (" +
                 std::to_string(kv.n_layers()) + " layers x " + std::to_string(kv.row_elems()) +
                 " values per slot, this model needs " + std::to_string(c.n_layers) + " x " +
                 std::to_string(int64_t{c.n_kv_heads} * c.head_dim) + ")"};
  }
  return Status::Ok();
}

Status check_seqs(const ForwardBatch& b, const KvStorage& kv) {
  const int64_t bs = kv.block_size();
  for (size_t s = 0; s < b.seqs.size(); ++s) {
    const SeqRef& r = b.seqs[s];
    const std::string who = "forward batch: sequence " + std::to_string(s) + ": ";
    if (r.n_past < 0) return Error{who + "n_past " + std::to_string(r.n_past) + " is negative"};
    if (int64_t{r.n_past} > static_cast<int64_t>(r.block_table.size()) * bs) {
      return Error{who + "its block table (" + std::to_string(r.block_table.size()) +
                   " blocks of " + std::to_string(bs) + ") does not cover n_past " +
                   std::to_string(r.n_past)};
    }
    for (size_t i = 0; i < r.block_table.size(); ++i) {
      if (r.block_table[i] < 0 || r.block_table[i] >= kv.n_blocks()) {
        return Error{who + "block_table[" + std::to_string(i) +
                     "] = " + std::to_string(r.block_table[i]) + " is outside the KV storage's " +
                     std::to_string(kv.n_blocks()) + " blocks"};
      }
    }
  }
  return Status::Ok();
}

// Runs after check_seqs, so every context slot is inside the storage.
Status check_tokens(const ModelConfig& c, const ForwardBatch& b, const KvStorage& kv,
                    std::vector<uint8_t>* mark) {
  // mark: 1 = context slot of some sequence in the batch, 2 = written by a batch token.
  const int bs = kv.block_size();
  for (const SeqRef& r : b.seqs) {
    for (int64_t j = 0; j < r.n_past; ++j) (*mark)[context_slot(r, j, bs)] = 1;
  }
  Status status;
  for (size_t t = 0; t < b.tokens.size() && status.ok(); ++t) {
    const int32_t slot = b.kv_slots[t];
    if (b.tokens[t] < 0 || b.tokens[t] >= c.vocab_size) {
      status = Error{"forward batch: " + tok(t) + "id " + std::to_string(b.tokens[t]) +
                     " is outside the vocabulary [0, " + std::to_string(c.vocab_size) + ")"};
    } else if (b.positions[t] < 0) {
      status = Error{"forward batch: " + tok(t) + "position " + std::to_string(b.positions[t]) +
                     " is negative"};
    } else if (b.seq[t] < 0 || static_cast<size_t>(b.seq[t]) >= b.seqs.size()) {
      status = Error{"forward batch: " + tok(t) + "sequence index " + std::to_string(b.seq[t]) +
                     " is outside the batch's " + std::to_string(b.seqs.size()) + " sequences"};
    } else if (slot < 0 || slot >= kv.n_slots()) {
      status = Error{"forward batch: " + tok(t) + "kv slot " + std::to_string(slot) +
                     " is outside the KV storage [0, " + std::to_string(kv.n_slots()) + ")" +
                     (slot == -1 ? " (add_token gives -1 when the block table does not cover "
                                   "the token)"
                                 : "")};
    } else if ((*mark)[slot] == 1) {
      status = Error{"forward batch: " + tok(t) + "kv slot " + std::to_string(slot) +
                     " holds cached context of a sequence in the batch; writing it would "
                     "corrupt that context"};
    } else if ((*mark)[slot] == 2) {
      status = Error{"forward batch: " + tok(t) + "kv slot " + std::to_string(slot) +
                     " is also written by an earlier token of the batch"};
    } else {
      (*mark)[slot] = 2;
    }
  }
  // Leave the scratch all zero for the next call.
  for (const SeqRef& r : b.seqs) {
    for (int64_t j = 0; j < r.n_past; ++j) (*mark)[context_slot(r, j, bs)] = 0;
  }
  for (int32_t slot : b.kv_slots) {
    if (slot >= 0 && slot < kv.n_slots()) (*mark)[slot] = 0;
  }
  return status;
}

// Whether physical slot lies in s's context [0, n_past) (the table is known to be in range).
bool in_context(const SeqRef& s, int64_t slot, int block_size) {
  const int64_t block = slot / block_size, offset = slot % block_size;
  for (size_t i = 0; i < s.block_table.size(); ++i) {
    if (s.block_table[i] == block && int64_t(i) * block_size + offset < s.n_past) return true;
  }
  return false;
}

// Runs after check_tokens, so the batch's kv_slots are valid and distinct.
Status check_extra_slots(const ForwardBatch& b, const KvStorage& kv, std::vector<uint8_t>* mark) {
  // mark: 2 = written by a batch token, 3 = an extra slot of the sequence being checked.
  for (int32_t slot : b.kv_slots) (*mark)[slot] = 2;
  Status status;
  for (size_t s = 0; s < b.seqs.size() && status.ok(); ++s) {
    const SeqRef& r = b.seqs[s];
    const std::string who = "forward batch: sequence " + std::to_string(s) + ": extra_slots[";
    size_t i = 0;
    for (; i < r.extra_slots.size() && status.ok(); ++i) {
      const int32_t slot = r.extra_slots[i];
      const std::string what = who + std::to_string(i) + "] = " + std::to_string(slot);
      if (slot < 0 || slot >= kv.n_slots()) {
        status =
            Error{what + " is outside the KV storage [0, " + std::to_string(kv.n_slots()) + ")"};
      } else if ((*mark)[slot] == 2) {
        status = Error{what +
                       " is written by this batch (extra slots must hold KV of an "
                       "earlier forward)"};
      } else if ((*mark)[slot] == 3) {
        status = Error{what + " appears twice in the sequence's extra slots"};
      } else if (in_context(r, slot, kv.block_size())) {
        status = Error{what + " is one of the sequence's context slots"};
      } else {
        (*mark)[slot] = 3;
      }
    }
    // Unmark the ones this sequence marked (the failing one, if any, was not marked).
    for (size_t j = 0; j < i; ++j) {
      const int32_t slot = r.extra_slots[j];
      if (slot >= 0 && slot < kv.n_slots() && (*mark)[slot] == 3) (*mark)[slot] = 0;
    }
  }
  for (int32_t slot : b.kv_slots) (*mark)[slot] = 0;
  return status;
}

Status check_attend(const ForwardBatch& b) {
  for (size_t t = 0; t < b.attend.size(); ++t) {
    int32_t prev = -1;
    for (int32_t a : b.attend[t]) {
      if (a < 0 || static_cast<size_t>(a) >= t) {
        return Error{"forward batch: " + tok(t) + "attends to token " + std::to_string(a) +
                     ", which is not an earlier token of the batch"};
      }
      if (b.seq[a] != b.seq[t]) {
        return Error{"forward batch: " + tok(t) + "attends to token " + std::to_string(a) +
                     " of another sequence (" + std::to_string(b.seq[a]) + " vs " +
                     std::to_string(b.seq[t]) + ")"};
      }
      if (a <= prev) {
        return Error{"forward batch: " + tok(t) + "attend list must be strictly increasing (" +
                     std::to_string(a) + " after " + std::to_string(prev) + ")"};
      }
      prev = a;
    }
  }
  return Status::Ok();
}

Status check_outputs(const ModelConfig& c, const ForwardBatch& b) {
  if (b.logit_vocab < 0 || b.logit_vocab > c.vocab_size) {
    return Error{"forward batch: logit_vocab " + std::to_string(b.logit_vocab) + " outside [0, " +
                 std::to_string(c.vocab_size) + "]"};
  }
  for (size_t i = 0; i < b.logit_rows.size(); ++i) {
    const int32_t r = b.logit_rows[i];
    if (r < 0 || static_cast<size_t>(r) >= b.tokens.size()) {
      return Error{"forward batch: logit_rows[" + std::to_string(i) + "] = " + std::to_string(r) +
                   " is not a token of the batch (" + std::to_string(b.tokens.size()) + " tokens)"};
    }
  }
  for (size_t i = 0; i < b.capture_layers.size(); ++i) {
    const int32_t l = b.capture_layers[i];
    if (l < -1 || l >= c.n_layers) {
      return Error{"forward batch: capture_layers[" + std::to_string(i) + "] = " +
                   std::to_string(l) + " is outside [-1, " + std::to_string(c.n_layers) + ")"};
    }
  }
  return Status::Ok();
}

}  // namespace

Status plan_batch(const ModelConfig& config, const ForwardBatch& batch, const KvStorage& kv,
                  AttentionPlan* plan, std::vector<uint8_t>* slot_mark) {
  DSPARK_RETURN_IF_ERROR(check_shapes(config, batch, kv));
  DSPARK_RETURN_IF_ERROR(check_seqs(batch, kv));
  if (slot_mark->size() < static_cast<size_t>(kv.n_slots())) {
    slot_mark->assign(static_cast<size_t>(kv.n_slots()), 0);
  }
  DSPARK_RETURN_IF_ERROR(check_tokens(config, batch, kv, slot_mark));
  DSPARK_RETURN_IF_ERROR(check_extra_slots(batch, kv, slot_mark));
  DSPARK_RETURN_IF_ERROR(check_attend(batch));
  DSPARK_RETURN_IF_ERROR(check_outputs(config, batch));

  plan->reset(kv.block_size());
  for (const SeqRef& r : batch.seqs) plan->add_sequence(r.block_table, r.n_past, r.extra_slots);
  plan->set_tokens(batch.seq, batch.kv_slots);
  if (batch.attend.empty()) return Status::Ok();  // causal
  plan->use_mask();
  for (size_t t = 0; t < batch.attend.size(); ++t) {
    const int32_t self = static_cast<int32_t>(t);
    for (int32_t u : batch.attend[t]) plan->allow(self, u);
    plan->allow(self, self);
  }
  return Status::Ok();
}

}  // namespace dspark::model_detail
