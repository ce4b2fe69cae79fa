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

// Copies the rows ids of w into owned storage (kept alive by ck->owned) and packs them for
// the kernels like any weight.
cpu::WeightView cut_rows(const cpu::WeightView& w, const std::vector<int32_t>& ids,
                         Checkpoint* ck) {
  auto rows = std::make_shared<std::vector<uint8_t>>(ids.size() * w.row_bytes);
  const auto* src = static_cast<const uint8_t*>(w.data);
  for (size_t j = 0; j < ids.size(); ++j) {
    std::memcpy(rows->data() + j * w.row_bytes, src + uint64_t(ids[j]) * w.row_bytes, w.row_bytes);
  }
  cpu::WeightView cut = w;
  cut.rows = static_cast<int64_t>(ids.size());
  cut.data = rows->data();
  cut.packed = nullptr;
  ck->owned.push_back(std::move(rows));
  return cpu::pack_for_matmul(cut, /*release_source=*/false);
}

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

Status cut_draft_vocab(const ModelFile& file, Checkpoint* ck) {
  ck->draft_head = ck->lm_head;
  ck->draft_w2 = ck->markov_w2;
  const TensorInfo* t = file.tensor(kIdsTensor);
  if (t == nullptr) return Status::Ok();
  auto ids = read_ids(*t, ck->vocab(), file.dir());
  if (!ids.ok()) return ids.error();
  if (int64_t(ids->size()) == ck->vocab()) return Status::Ok();  // every id: nothing to cut
  ck->draft_ids = std::move(*ids);
  ck->draft_head = cut_rows(ck->lm_head, ck->draft_ids, ck);
  if (ck->markov_rank > 0) ck->draft_w2 = cut_rows(ck->markov_w2, ck->draft_ids, ck);
  return Status::Ok();
}

}  // namespace dspark::spec::dspark_detail
