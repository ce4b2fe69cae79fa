// GrammarMatcher over xgrammar's matcher: masks, accept/rollback bookkeeping, forced tokens.
// Every xgrammar call is guarded: its checks throw, and nothing may escape this module.
#include <dlpack/dlpack.h>

#include <algorithm>
#include <bit>
#include <cstddef>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "dspark/grammar.h"
#include "xgrammar_glue.h"

namespace dspark {

Result<std::unique_ptr<GrammarMatcher>> CompiledGrammar::make_matcher() const {
  auto matcher = xgrammar_call<xgrammar::GrammarMatcher>(
      "grammar matcher", [&] { return xgrammar::GrammarMatcher(impl_->compiled); });
  if (!matcher.ok()) return matcher.error();
  auto impl = std::make_unique<GrammarMatcher::Impl>(
      GrammarMatcher::Impl{impl_->vocab, impl_->compiled, std::move(matcher).value(), 0,
                           std::vector<uint32_t>(static_cast<size_t>(impl_->vocab->mask_words()))});
  return std::make_unique<GrammarMatcher>(std::move(impl));
}

GrammarMatcher::GrammarMatcher(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
GrammarMatcher::~GrammarMatcher() = default;
const GrammarVocab& GrammarMatcher::vocab() const {
  return *impl_->vocab;
}
int GrammarMatcher::accepted() const {
  return impl_->accepted;
}

bool GrammarMatcher::is_terminated() const {
  try {
    return impl_->matcher.IsTerminated();
  } catch (...) {
    return true;
  }
}

bool GrammarMatcher::can_end() const {
  try {
    return impl_->matcher.IsTerminated() || impl_->matcher.IsCompleted();
  } catch (...) {
    return false;
  }
}

Status GrammarMatcher::fill_mask(std::span<uint32_t> mask) {
  const int32_t words = impl_->vocab->mask_words();
  if (static_cast<int64_t>(mask.size()) != words) {
    return Error{"grammar mask: " + std::to_string(mask.size()) + " words given, " +
                 std::to_string(words) + " needed"};
  }
  std::fill(mask.begin(), mask.end(), 0u);
  if (is_terminated()) return Status::Ok();  // xgrammar refuses to fill after termination
  int64_t shape[1] = {words};
  DLTensor tensor{};
  tensor.data = mask.data();
  tensor.device = DLDevice{kDLCPU, 0};
  tensor.ndim = 1;
  tensor.dtype = DLDataType{kDLInt, 32, 1};
  tensor.shape = shape;
  auto filled = xgrammar_call<bool>("grammar mask",
                                    [&] { return impl_->matcher.FillNextTokenBitmask(&tensor); });
  if (!filled.ok()) {
    std::fill(mask.begin(), mask.end(), 0u);
    return filled.error();
  }
  return Status::Ok();
}

bool GrammarMatcher::accept(int32_t token) {
  if (token < 0 || token >= impl_->vocab->size() || is_terminated()) return false;
  auto ok =
      xgrammar_call<bool>("grammar accept", [&] { return impl_->matcher.AcceptToken(token); });
  if (!ok.ok() || !ok.value()) return false;
  ++impl_->accepted;
  return true;
}

Status GrammarMatcher::rollback(int k) {
  if (k < 0 || k > impl_->accepted) {
    return Error{"grammar rollback: " + std::to_string(k) + " tokens asked, " +
                 std::to_string(impl_->accepted) + " accepted"};
  }
  if (k == 0) return Status::Ok();
  auto done = xgrammar_call<bool>("grammar rollback", [&] {
    impl_->matcher.Rollback(k);
    return true;
  });
  if (!done.ok()) return done.error();
  impl_->accepted -= k;
  return Status::Ok();
}

void GrammarMatcher::reset() {
  try {
    impl_->matcher.Reset();
  } catch (...) {
  }
  impl_->accepted = 0;
}

std::optional<int32_t> GrammarMatcher::forced_token() {
  if (!fill_mask(impl_->scratch).ok()) return std::nullopt;
  return grammar_single_token(impl_->scratch, impl_->vocab->size());
}

std::vector<int32_t> GrammarMatcher::forced_tokens(int max_tokens) {
  std::vector<int32_t> run;
  while (static_cast<int>(run.size()) < max_tokens && !is_terminated()) {
    std::optional<int32_t> token = forced_token();
    if (!token || !accept(*token)) break;
    run.push_back(*token);
  }
  // Undo the walk: the matcher is left where it was.
  if (!rollback(static_cast<int>(run.size())).ok()) run.clear();
  return run;
}

std::string GrammarMatcher::forced_string() {
  if (is_terminated()) return {};
  auto s = xgrammar_call<std::string>("grammar forced string",
                                      [&] { return impl_->matcher.FindJumpForwardString(); });
  return s.ok() ? std::move(s).value() : std::string();
}

void grammar_apply_mask(std::span<const uint32_t> mask, std::span<float> logits) {
  const float neg_inf = -std::numeric_limits<float>::infinity();
  const size_t covered = std::min(logits.size(), mask.size() * 32);
  for (size_t w = 0; w * 32 < covered; ++w) {
    const uint32_t bits = mask[w];
    if (bits == ~0u) continue;  // all 32 allowed
    const size_t end = std::min(covered, w * 32 + 32);
    for (size_t i = w * 32; i < end; ++i) {
      if (!((bits >> (i - w * 32)) & 1u)) logits[i] = neg_inf;
    }
  }
  std::fill(logits.begin() + static_cast<std::ptrdiff_t>(covered), logits.end(), neg_inf);
}

std::optional<int32_t> grammar_single_token(std::span<const uint32_t> mask, int32_t vocab_size) {
  std::optional<int32_t> found;
  const size_t words = std::min(mask.size(), static_cast<size_t>(grammar_mask_words(vocab_size)));
  for (size_t w = 0; w < words; ++w) {
    uint32_t bits = mask[w];
    if (bits == 0) continue;
    if (found || (bits & (bits - 1)) != 0) return std::nullopt;  // a second allowed token
    int32_t id = static_cast<int32_t>(w * 32 + std::countr_zero(bits));
    if (id >= vocab_size) return std::nullopt;
    found = id;
  }
  return found;
}

}  // namespace dspark
