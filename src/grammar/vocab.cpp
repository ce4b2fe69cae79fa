// GrammarVocab: the vocabulary handed to xgrammar as raw token bytes (VocabType::RAW), so one
// path serves byte-level BPE and SentencePiece vocabularies alike; special tokens are given as
// empty strings, which xgrammar never allows.
#include <algorithm>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "dspark/grammar.h"
#include "dspark/tokenizer.h"
#include "xgrammar_glue.h"

namespace dspark {

GrammarVocab::GrammarVocab(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
GrammarVocab::~GrammarVocab() = default;
int32_t GrammarVocab::size() const {
  return impl_->size;
}
int32_t GrammarVocab::mask_words() const {
  return grammar_mask_words(impl_->size);
}
const std::vector<int32_t>& GrammarVocab::eos_ids() const {
  return impl_->eos_ids;
}

Result<std::shared_ptr<const GrammarVocab>> GrammarVocab::from_tokens(
    std::span<const std::string> tokens, std::span<const int32_t> eos_ids, int32_t vocab_size) {
  const int32_t n = static_cast<int32_t>(tokens.size());
  if (vocab_size < 0) vocab_size = n;
  if (n == 0) return Error{"grammar vocabulary: no tokens"};
  if (vocab_size < n) {
    return Error{"grammar vocabulary: vocab_size " + std::to_string(vocab_size) + " is below the " +
                 std::to_string(n) + " tokens"};
  }
  if (eos_ids.empty()) return Error{"grammar vocabulary: no end-of-sequence id"};
  std::vector<int32_t> eos(eos_ids.begin(), eos_ids.end());
  for (int32_t id : eos) {
    if (id < 0 || id >= vocab_size) {
      return Error{"grammar vocabulary: end-of-sequence id " + std::to_string(id) +
                   " is outside the vocabulary"};
    }
  }
  std::sort(eos.begin(), eos.end());
  eos.erase(std::unique(eos.begin(), eos.end()), eos.end());
  std::vector<std::string> encoded(tokens.begin(), tokens.end());
  auto info = xgrammar_call<xgrammar::TokenizerInfo>("grammar vocabulary", [&] {
    return xgrammar::TokenizerInfo(encoded, xgrammar::VocabType::RAW, vocab_size, eos, false);
  });
  if (!info.ok()) return info.error();
  auto impl = std::make_unique<Impl>(Impl{std::move(info).value(), vocab_size, std::move(eos)});
  return std::shared_ptr<const GrammarVocab>(std::make_shared<GrammarVocab>(std::move(impl)));
}

Result<std::shared_ptr<const GrammarVocab>> GrammarVocab::from_tokenizer(
    const Tokenizer& tokenizer, std::span<const int32_t> eos_ids, int32_t vocab_size) {
  const int32_t n = tokenizer.vocab_size();
  std::vector<std::string> tokens(static_cast<size_t>(n));
  for (int32_t id = 0; id < n; ++id) {
    // Special and control tokens: empty, i.e. never allowed (EOS ids are allowed separately).
    if (!tokenizer.is_special(id)) tokens[id] = tokenizer.token_bytes(id, false);
  }
  std::vector<int32_t> eos(eos_ids.begin(), eos_ids.end());
  if (eos.empty()) eos = tokenizer.stop_ids();
  if (eos.empty() && tokenizer.eos_id() >= 0) eos.push_back(tokenizer.eos_id());
  return from_tokens(tokens, eos, vocab_size < 0 ? n : vocab_size);
}

}  // namespace dspark
