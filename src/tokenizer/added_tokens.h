// Added tokens (special tokens such as <|im_start|>, and user-defined ones such as <tool_call>):
// found in the text before normalization and BPE, leftmost-longest, the way Hugging Face's
// AddedVocabulary splits a sequence.
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "dspark/tokenizer.h"

namespace dspark::tok {

struct AddedToken {
  int32_t id = -1;
  std::string content;
  bool special = false;      // only matched when the caller parses special tokens
  bool lstrip = false;       // a match also swallows the whitespace before it
  bool rstrip = false;       // ... and after it
  bool normalized = false;   // matched in the normalized text instead of the raw text
  bool single_word = false;  // only matched when not inside a word
};

// A run of the input: an added token (id >= 0) or text to tokenize (id == -1). offset: where it
// starts in the text that was split.
struct Segment {
  std::string_view text;
  int32_t id = -1;
  size_t offset = 0;
};

class AddedTokenMatcher {
 public:
  explicit AddedTokenMatcher(std::vector<AddedToken> tokens);

  // Splits text on the tokens whose `normalized` flag equals normalized_pass. Special tokens
  // are skipped unless parse_special. No token is matched that has a byte inside `content`
  // (sorted, disjoint ranges of text). Empty text runs are left out.
  void split(std::string_view text, bool normalized_pass, bool parse_special,
             std::span<const ByteSpan> content, std::vector<Segment>* out) const;
  bool has_tokens(bool normalized_pass) const { return has_tokens_[normalized_pass ? 1 : 0]; }

 private:
  struct Index {
    // Token indices by first byte, longest content first.
    std::array<std::vector<uint32_t>, 256> buckets;
  };
  // Longest token of the pass matching at pos and ending by limit, or -1.
  int longest_at(const Index& index, std::string_view text, size_t pos, size_t limit) const;

  std::vector<AddedToken> tokens_;
  std::array<Index, 2> by_first_byte_;  // [0]: raw-text tokens, [1]: normalized-text tokens
  std::array<bool, 2> has_tokens_{};
};

}  // namespace dspark::tok
