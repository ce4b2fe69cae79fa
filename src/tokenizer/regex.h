// A compiled PCRE2 pattern in UTF + UCP mode (so \p{L}, \s, \w are Unicode-aware, as in the
// Oniguruma patterns Hugging Face tokenizers use), JIT-compiled when the platform allows.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "dspark/status.h"

namespace dspark::tok {

class Regex {
 public:
  // literal: the pattern is matched as plain text (Hugging Face's String split patterns).
  static Result<Regex> compile(const std::string& pattern, bool literal = false);

  // Non-overlapping matches, left to right, as [begin, end) byte offsets. text must be valid
  // UTF-8. After an empty match the search goes on one character later; an empty match right
  // at the end of the previous match, or at the end of text, is not reported.
  void find_all(std::string_view text, std::vector<std::pair<size_t, size_t>>* out) const;
  // Whether the pattern matches at the very start of text.
  bool matches_at_start(std::string_view text) const;

  const std::string& pattern() const { return pattern_; }

 private:
  struct Code;
  std::shared_ptr<const Code> code_;  // shared: compiled code is read-only and thread-safe
  std::string pattern_;
};

// The Oniguruma pattern rewritten for PCRE2: nested non-negated classes flattened into their
// parent ("[^a[bc]]" -> "[^abc]"). Exposed for tests.
std::string flatten_nested_classes(const std::string& pattern);

}  // namespace dspark::tok
