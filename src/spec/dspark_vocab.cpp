// The draft vocabulary of a DSpark checkpoint: a drafter trained with a loss over the most
// frequent ids (--loss-vocab) only ever learnt to rank those, and its Markov rows for the other
// ids are untrained. Drafting over that subset keeps what training saw and makes the two
// vocabulary-sized products of a round (lm_head and Markov W2) vocab / V' times cheaper; the
// target verifies every draft, so outputs stay exact.
#include <cstring>
#include <string>

#include "dspark_checkpoint.h"

namespace dspark::spec::dspark_detail {

namespace {

constexpr const char* kIdsTensor = "draft_vocab_ids";

Result<std::vector<int32_t>> read_ids(const TensorInfo& t, int64_t vocab, const std::string& dir) {
  const std::string who = "DSpark checkpoint " + dir + ": tensor '" + kIdsTensor + "' ";
  if (t.type != DType::I32) return Error{who + "must have type I32"};
  if (t.shape.size() != 1 || t.shape[0] < 1 || t.shape[0] > vocab) {
    return Error{who + "has shape " + shape_text(t.shape) +
                 ", expected [n] with 1 <= n <= " + std::to_string(vocab)};
  }
  if (t.n_bytes != uint64_t(t.shape[0]) * sizeof(int32_t)) {
    return Error{who + "holds " + std::to_string(t.n_bytes) + " bytes for " +
                 std::to_string(t.shape[0]) + " ids"};
  }
  std::vector<int32_t> ids(size_t(t.shape[0]));
  std::memcpy(ids.data(), t.data, t.n_bytes);
  for (size_t j = 0; j < ids.size(); ++j) {
    if (ids[j] < 0 || ids[j] >= vocab || (j > 0 && ids[j] <= ids[j - 1])) {
      return Error{who + "entry " + std::to_string(j) + " is " + std::to_string(ids[j]) +
                   ": ids must increase strictly and lie in [0, " + std::to_string(vocab) + ")"};
    }
  }
  return ids;
}

}  // namespace

Status cut_draft_vocab(const ModelFile& file, Backend& backend, Checkpoint* ck) {
  ck->draft_head = ck->lm_head;
  ck->draft_w2 = ck->markov_w2;
  const TensorInfo* t = file.tensor(kIdsTensor);
  if (t == nullptr) return Status::Ok();
  auto ids = read_ids(*t, ck->vocab(), file.dir());
  if (!ids.ok()) return ids.error();
  if (int64_t(ids->size()) == ck->vocab()) return Status::Ok();  // every id: nothing to cut
  ck->draft_ids = std::move(*ids);
  // Row copies the backend gathers and places like any weight (the views own them).
  const int32_t* ids_data = ck->draft_ids.data();
  const int64_t n = static_cast<int64_t>(ck->draft_ids.size());
  ck->draft_head = backend.gather_rows(ck->lm_head, ids_data, n);
  if (ck->markov_rank > 0) ck->draft_w2 = backend.gather_rows(ck->markov_w2, ids_data, n);
  return Status::Ok();
}

}  // namespace dspark::spec::dspark_detail
