#include "added_tokens.h"

#include <algorithm>

#include "dspark/text.h"
#include "regex.h"

namespace dspark::tok {

namespace {

// Hugging Face's single_word test: is the character next to the match a word character (\w)?
bool is_word_char_at(std::string_view text, size_t pos) {
  static const Regex word = [] {
    auto re = Regex::compile(R"(\w)");
    return std::move(re).value();  // a constant pattern that always compiles
  }();
  return word.matches_at_start(text.substr(pos));
}

bool ends_with_word(std::string_view text) {
  if (text.empty()) return false;
  size_t pos = text.size() - 1;
  while (pos > 0 && (static_cast<uint8_t>(text[pos]) & 0xC0) == 0x80) --pos;
  return is_word_char_at(text, pos);
}

size_t whitespace_before(std::string_view text, size_t end, size_t floor) {
  size_t start = end;
  while (start > floor) {
    size_t p = start - 1;
    while (p > floor && (static_cast<uint8_t>(text[p]) & 0xC0) == 0x80) --p;
    size_t q = p;
    if (!is_unicode_whitespace(utf8_next(text, &q))) break;
    start = p;
  }
  return start;
}

size_t whitespace_after(std::string_view text, size_t begin) {
  size_t pos = begin;
  while (pos < text.size()) {
    size_t q = pos;
    if (!is_unicode_whitespace(utf8_next(text, &q))) break;
    pos = q;
  }
  return pos;
}

}  // namespace

AddedTokenMatcher::AddedTokenMatcher(std::vector<AddedToken> tokens) : tokens_(std::move(tokens)) {
  for (uint32_t i = 0; i < tokens_.size(); ++i) {
    const AddedToken& t = tokens_[i];
    if (t.content.empty()) continue;
    const int pass = t.normalized ? 1 : 0;
    by_first_byte_[pass].buckets[static_cast<uint8_t>(t.content[0])].push_back(i);
    has_tokens_[pass] = true;
  }
  for (Index& index : by_first_byte_) {
    for (auto& bucket : index.buckets) {
      std::stable_sort(bucket.begin(), bucket.end(), [&](uint32_t a, uint32_t b) {
        return tokens_[a].content.size() > tokens_[b].content.size();
      });
    }
  }
}

int AddedTokenMatcher::longest_at(const Index& index, std::string_view text, size_t pos,
                                  size_t limit) const {
  for (uint32_t i : index.buckets[static_cast<uint8_t>(text[pos])]) {
    const std::string& c = tokens_[i].content;
    if (pos + c.size() > limit) continue;
    if (text.compare(pos, c.size(), c) == 0) return static_cast<int>(i);
  }
  return -1;
}

void AddedTokenMatcher::split(std::string_view text, bool normalized_pass, bool parse_special,
                              std::span<const ByteSpan> content, std::vector<Segment>* out) const {
  const Index& index = by_first_byte_[normalized_pass ? 1 : 0];
  size_t emitted = 0;  // end of the last emitted segment
  size_t pos = 0;
  size_t next = 0;  // first content range that does not end before pos
  auto emit_text = [&](size_t begin, size_t end) {
    if (end > begin) out->push_back({text.substr(begin, end - begin), -1, begin});
  };
  while (pos < text.size()) {
    while (next < content.size() && content[next].end <= pos) ++next;
    size_t limit = text.size();  // matches must end before the next content byte
    if (next < content.size()) {
      if (content[next].begin <= pos) {
        pos = content[next].end;  // no token starts inside content
        continue;
      }
      limit = std::min(limit, content[next].begin);
    }
    const int found = longest_at(index, text, pos, limit);
    if (found < 0) {
      ++pos;
      continue;
    }
    const AddedToken& tok = tokens_[found];
    size_t start = pos;
    size_t stop = pos + tok.content.size();
    pos = stop;  // matches never overlap, even the ones skipped below
    if (tok.special && !parse_special) continue;
    if (tok.single_word) {
      const bool word_before = ends_with_word(text.substr(0, start));
      const bool word_after = stop < text.size() && is_word_char_at(text, stop);
      if (word_before || word_after) continue;
    }
    if (tok.lstrip) start = whitespace_before(text, start, emitted);
    if (tok.rstrip) stop = whitespace_after(text, stop);
    emit_text(emitted, start);
    out->push_back({text.substr(start, stop - start), tok.id, start});
    emitted = stop;
    pos = stop;
  }
  emit_text(emitted, text.size());
}

}  // namespace dspark::tok
