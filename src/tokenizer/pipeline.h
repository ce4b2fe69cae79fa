// The text stages before BPE, modelled on Hugging Face tokenizers: normalizers rewrite a text
// segment, pre-tokenizers cut it into pieces ("words") that BPE encodes independently.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "dspark/status.h"
#include "regex.h"

namespace dspark::tok {

struct NormalizerStep {
  enum class Kind { Nfc, Prepend, Replace } kind = Kind::Nfc;
  std::string text;     // Prepend: the prefix; Replace: the literal pattern
  std::string content;  // Replace: what each occurrence becomes
};

// Hugging Face's SplitDelimiterBehavior: what happens to the matched parts.
enum class SplitBehavior { Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous };

struct PreTokenizerStep {
  enum class Kind { Split, ByteLevel, Metaspace } kind = Kind::Split;
  // Split (Digits is a Split on \p{N} or \p{N}+); ByteLevel with use_regex (the GPT-2 pattern).
  std::optional<Regex> regex;
  SplitBehavior behavior = SplitBehavior::Isolated;
  bool invert = false;
  // ByteLevel: a space is put before each piece that does not start with one.
  bool add_prefix_space = false;
  // Metaspace: spaces become `replacement`, which is also prepended (always, or only to the piece
  // at the very start of the input), then optionally split before each replacement.
  enum class Prepend { Always, First, Never } prepend = Prepend::Always;
  std::string replacement;
  bool split = false;
};

// A piece of text and whether it begins at byte 0 of the caller's original input.
struct Piece {
  std::string text;
  bool at_start = false;
};

// GPT-2's pre-tokenizer pattern (Hugging Face ByteLevel with use_regex).
extern const char* const kGpt2Pattern;

Result<PreTokenizerStep> make_split_step(const std::string& pattern, bool literal,
                                         SplitBehavior behavior, bool invert);
Result<PreTokenizerStep> make_digits_step(bool individual_digits);
// Hugging Face's Punctuation: a Split on each punctuation character.
Result<PreTokenizerStep> make_punctuation_step(SplitBehavior behavior);
Result<PreTokenizerStep> make_byte_level_step(bool add_prefix_space, bool use_regex);
Result<PreTokenizerStep> make_metaspace_step(std::string replacement,
                                             PreTokenizerStep::Prepend prepend, bool split);

// Applies the normalizers in order (the text must be valid UTF-8).
std::string normalize(const std::vector<NormalizerStep>& steps, std::string_view text);

// Cuts text into non-empty pieces. With no steps the whole text is one piece. Split steps after
// a ByteLevel step match the byte-level spelling, as in Hugging Face, so such pieces may end
// inside a UTF-8 character.
void pre_tokenize(const std::vector<PreTokenizerStep>& steps, std::string_view text, bool at_start,
                  std::vector<Piece>* out);

}  // namespace dspark::tok
