#include "pipeline.h"

#include <algorithm>
#include <utility>

#include "byte_unicode.h"
#include "nfc.h"

namespace dspark::tok {

const char* const kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

namespace {

struct Span {
  size_t begin, end;
  bool is_match;
};

// The whole text as alternating gaps and matches, as Hugging Face's Pattern::find_matches.
std::vector<Span> labelled_spans(const Regex& re, std::string_view text, bool invert) {
  std::vector<std::pair<size_t, size_t>> matches;
  re.find_all(text, &matches);
  std::vector<Span> spans;
  spans.reserve(matches.size() * 2 + 1);
  size_t prev = 0;
  for (const auto& [b, e] : matches) {
    if (b > prev) spans.push_back({prev, b, invert});
    spans.push_back({b, e, !invert});
    prev = e;
  }
  if (prev < text.size()) spans.push_back({prev, text.size(), invert});
  return spans;
}

// Groups the spans into pieces as `behavior` says (Hugging Face's NormalizedString::split).
std::vector<std::pair<size_t, size_t>> apply_behavior(const std::vector<Span>& spans,
                                                      SplitBehavior behavior) {
  std::vector<std::pair<size_t, size_t>> out;
  switch (behavior) {
    case SplitBehavior::Removed:
      for (const Span& s : spans) {
        if (!s.is_match) out.emplace_back(s.begin, s.end);
      }
      break;
    case SplitBehavior::Isolated:
      for (const Span& s : spans) out.emplace_back(s.begin, s.end);
      break;
    case SplitBehavior::MergedWithPrevious: {
      bool previous_match = false;
      for (const Span& s : spans) {
        if (s.is_match && !previous_match && !out.empty()) {
          out.back().second = s.end;
        } else {
          out.emplace_back(s.begin, s.end);
        }
        previous_match = s.is_match;
      }
      break;
    }
    case SplitBehavior::MergedWithNext: {
      bool previous_match = false;
      for (auto it = spans.rbegin(); it != spans.rend(); ++it) {
        if (it->is_match && !previous_match && !out.empty()) {
          out.back().first = it->begin;
        } else {
          out.emplace_back(it->begin, it->end);
        }
        previous_match = it->is_match;
      }
      std::reverse(out.begin(), out.end());
      break;
    }
    case SplitBehavior::Contiguous: {
      bool previous_match = false;
      for (const Span& s : spans) {
        if (s.is_match == previous_match && !out.empty()) {
          out.back().second = s.end;
        } else {
          out.emplace_back(s.begin, s.end);
        }
        previous_match = s.is_match;
      }
      break;
    }
  }
  return out;
}

void split_piece(const Regex& re, SplitBehavior behavior, bool invert, const Piece& piece,
                 std::vector<Piece>* out) {
  const std::string_view text = piece.text;
  for (const auto& [b, e] : apply_behavior(labelled_spans(re, text, invert), behavior)) {
    if (e > b) out->push_back({std::string(text.substr(b, e - b)), piece.at_start && b == 0});
  }
}

// A split as Hugging Face applies it after a ByteLevel step: on the byte-level spelling (one
// character per byte), so a piece may end inside a UTF-8 character (Falcon's Digits).
void split_piece_bytes(const Regex& re, SplitBehavior behavior, bool invert, const Piece& piece,
                       std::vector<Piece>* out) {
  const std::string mapped = bytes_to_byte_level(piece.text);
  std::vector<size_t> raw(mapped.size() + 1, 0);  // mapped offset -> byte offset, at characters
  size_t m = 0;
  for (size_t i = 0; i < piece.text.size(); ++i) {
    raw[m] = i;
    m += byte_to_unicode(static_cast<uint8_t>(piece.text[i])) < 0x80 ? 1 : 2;
  }
  raw[m] = piece.text.size();
  for (const auto& [b, e] : apply_behavior(labelled_spans(re, mapped, invert), behavior)) {
    if (e > b) {
      out->push_back({piece.text.substr(raw[b], raw[e] - raw[b]), piece.at_start && b == 0});
    }
  }
}

std::string replace_all(std::string_view text, std::string_view from, std::string_view to) {
  std::string out;
  out.reserve(text.size());
  size_t pos = 0;
  while (true) {
    const size_t hit = from.empty() ? std::string_view::npos : text.find(from, pos);
    if (hit == std::string_view::npos) break;
    out.append(text.substr(pos, hit - pos));
    out.append(to);
    pos = hit + from.size();
  }
  out.append(text.substr(pos));
  return out;
}

// Builds a new string rather than std::string::insert(0, ...), which trips GCC 12's
// -Wrestrict false positive at -O3.
void prepend(std::string_view prefix, std::string* s) {
  std::string out;
  out.reserve(prefix.size() + s->size());
  out.append(prefix);
  out.append(*s);
  *s = std::move(out);
}

bool starts_with(std::string_view s, std::string_view prefix) {
  return s.substr(0, prefix.size()) == prefix;
}

// after_byte_level: a ByteLevel step ran earlier, so Hugging Face's pieces are byte-mapped.
void apply_step(const PreTokenizerStep& step, bool after_byte_level, std::vector<Piece>& pieces,
                std::vector<Piece>* out) {
  for (Piece& piece : pieces) {
    switch (step.kind) {
      case PreTokenizerStep::Kind::Split:
        if (after_byte_level) {
          split_piece_bytes(*step.regex, step.behavior, step.invert, piece, out);
        } else {
          split_piece(*step.regex, step.behavior, step.invert, piece, out);
        }
        break;
      case PreTokenizerStep::Kind::ByteLevel:
        if (step.add_prefix_space && !starts_with(piece.text, " ")) prepend(" ", &piece.text);
        if (step.regex) {
          split_piece(*step.regex, SplitBehavior::Isolated, false, piece, out);
        } else {
          out->push_back(std::move(piece));
        }
        break;
      case PreTokenizerStep::Kind::Metaspace: {
        piece.text = replace_all(piece.text, " ", step.replacement);
        const bool add = !starts_with(piece.text, step.replacement) &&
                         (step.prepend == PreTokenizerStep::Prepend::Always ||
                          (step.prepend == PreTokenizerStep::Prepend::First && piece.at_start));
        if (add) prepend(step.replacement, &piece.text);
        if (step.split) {
          split_piece(*step.regex, SplitBehavior::MergedWithNext, false, piece, out);
        } else {
          out->push_back(std::move(piece));
        }
        break;
      }
    }
  }
}

}  // namespace

Result<PreTokenizerStep> make_split_step(const std::string& pattern, bool literal,
                                         SplitBehavior behavior, bool invert) {
  auto re = Regex::compile(pattern, literal);
  if (!re.ok()) return re.error();
  PreTokenizerStep step;
  step.kind = PreTokenizerStep::Kind::Split;
  step.regex = std::move(re).value();
  step.behavior = behavior;
  step.invert = invert;
  return step;
}

Result<PreTokenizerStep> make_digits_step(bool individual_digits) {
  return make_split_step(individual_digits ? R"(\p{N})" : R"(\p{N}+)", false,
                         SplitBehavior::Isolated, false);
}

Result<PreTokenizerStep> make_punctuation_step(SplitBehavior behavior) {
  // Rust's is_ascii_punctuation (which takes in $+<=>^`|~) or a Unicode P* category.
  return make_split_step(R"([\p{P}!-/:-@\[-`{-~])", false, behavior, false);
}

Result<PreTokenizerStep> make_byte_level_step(bool add_prefix_space, bool use_regex) {
  PreTokenizerStep step;
  step.kind = PreTokenizerStep::Kind::ByteLevel;
  step.add_prefix_space = add_prefix_space;
  if (use_regex) {
    auto re = Regex::compile(kGpt2Pattern);
    if (!re.ok()) return re.error();
    step.regex = std::move(re).value();
  }
  return step;
}

Result<PreTokenizerStep> make_metaspace_step(std::string replacement,
                                             PreTokenizerStep::Prepend prepend, bool split) {
  if (replacement.empty()) return Error{"tokenizer: Metaspace replacement is empty"};
  PreTokenizerStep step;
  step.kind = PreTokenizerStep::Kind::Metaspace;
  step.prepend = prepend;
  step.split = split;
  if (split) {
    auto re = Regex::compile(replacement, true);
    if (!re.ok()) return re.error();
    step.regex = std::move(re).value();
  }
  step.replacement = std::move(replacement);
  return step;
}

std::string normalize(const std::vector<NormalizerStep>& steps, std::string_view text) {
  std::string s(text);
  for (const NormalizerStep& step : steps) {
    switch (step.kind) {
      case NormalizerStep::Kind::Nfc:
        s = nfc_normalize(s);
        break;
      case NormalizerStep::Kind::Prepend:
        if (!s.empty()) prepend(step.text, &s);
        break;
      case NormalizerStep::Kind::Replace:
        s = replace_all(s, step.text, step.content);
        break;
    }
  }
  return s;
}

void pre_tokenize(const std::vector<PreTokenizerStep>& steps, std::string_view text, bool at_start,
                  std::vector<Piece>* out) {
  if (text.empty()) return;
  std::vector<Piece> pieces{{std::string(text), at_start}};
  std::vector<Piece> next;
  bool after_byte_level = false;
  for (const PreTokenizerStep& step : steps) {
    next.clear();
    apply_step(step, after_byte_level, pieces, &next);
    pieces.swap(next);
    after_byte_level = after_byte_level || step.kind == PreTokenizerStep::Kind::ByteLevel;
  }
  for (Piece& p : pieces) out->push_back(std::move(p));
}

}  // namespace dspark::tok
