#include "bpe_tokenizer.h"

#include "content_spans.h"
#include "dspark/text.h"

namespace dspark::tok {

BpeTokenizer::BpeTokenizer(TokenizerSpec spec, std::unique_ptr<BpeModel> model)
    : kind_(spec.kind),
      tokens_(std::move(spec.tokens)),
      model_(std::move(model)),
      added_(spec.added),
      normalizers_(std::move(spec.normalizers)),
      pre_tokenizers_(std::move(spec.pre_tokenizers)),
      strip_leading_spaces_(spec.decode.strip_leading_spaces),
      prefix_ids_(std::move(spec.prefix_ids)),
      suffix_ids_(std::move(spec.suffix_ids)),
      bos_id_(spec.bos_id),
      eos_id_(spec.eos_id) {}

std::vector<int32_t> BpeTokenizer::encode(std::string_view text, bool add_special,
                                          bool parse_special) const {
  // Invalid bytes are encoded as U+FFFD, as Hugging Face sees text decoded lossily.
  std::string clean;
  if (!utf8_is_valid(text)) {
    clean = utf8_sanitize(text);
    text = clean;
  }
  return encode_valid(text, add_special, parse_special, {});
}

std::vector<int32_t> BpeTokenizer::encode_with_content(std::string_view text,
                                                       std::span<const ByteSpan> content,
                                                       bool add_special) const {
  std::vector<ByteSpan> spans = canonical_spans(content, text.size());
  std::string clean;
  if (!utf8_is_valid(text)) {
    sanitize_with_spans(text, &spans, &clean);
    text = clean;
  }
  return encode_valid(text, add_special, /*parse_special=*/true, spans);
}

std::vector<int32_t> BpeTokenizer::encode_valid(std::string_view text, bool add_special,
                                                bool parse_special,
                                                std::span<const ByteSpan> content) const {
  std::vector<int32_t> ids;
  ids.reserve(text.size() / 3 + prefix_ids_.size() + suffix_ids_.size() + 1);
  if (add_special) ids = prefix_ids_;
  std::vector<Segment> segments;
  added_.split(text, /*normalized_pass=*/false, parse_special, content, &segments);
  std::vector<ByteSpan> seg_content;
  for (const Segment& seg : segments) {
    if (seg.id >= 0) {
      ids.push_back(seg.id);
      continue;
    }
    if (!content.empty())
      seg_content = spans_within(content, seg.offset, seg.offset + seg.text.size());
    encode_text(seg.text, seg.offset == 0, parse_special, seg_content, &ids);
  }
  if (add_special) ids.insert(ids.end(), suffix_ids_.begin(), suffix_ids_.end());
  return ids;
}

void BpeTokenizer::encode_text(std::string_view text, bool at_start, bool parse_special,
                               std::span<const ByteSpan> content, std::vector<int32_t>* ids) const {
  const std::string_view raw = text;
  std::string normalized;
  if (!normalizers_.empty()) {
    normalized = normalize(normalizers_, text);
    text = normalized;
  }
  std::vector<Segment> segments;
  if (added_.has_tokens(/*normalized_pass=*/true)) {
    std::vector<ByteSpan> mapped;
    if (!content.empty() && !normalizers_.empty()) {
      mapped = normalized_spans(normalizers_, raw, text, content);
      content = mapped;
    }
    added_.split(text, true, parse_special, content, &segments);
  } else {
    segments.push_back({text, -1, 0});
  }
  std::vector<Piece> pieces;
  for (const Segment& seg : segments) {
    if (seg.id >= 0) {
      ids->push_back(seg.id);
      continue;
    }
    pieces.clear();
    pre_tokenize(pre_tokenizers_, seg.text, at_start && seg.offset == 0, &pieces);
    for (const Piece& piece : pieces) model_->encode_word(piece.text, ids);
  }
}

std::string BpeTokenizer::token_bytes(int32_t id, bool render_special) const {
  if (id < 0 || id >= vocab_size()) return {};
  if (special_[id] && !render_special) return {};
  return token_bytes_[id];
}

bool BpeTokenizer::is_special(int32_t id) const {
  return id >= 0 && id < vocab_size() && special_[id];
}

int32_t BpeTokenizer::token_id(std::string_view piece) const {
  const auto it = token_to_id_.find(piece);
  return it == token_to_id_.end() ? -1 : it->second;
}

void BpeTokenizer::finish_decode(std::string* text) const {
  size_t n = 0;
  while (n < text->size() && n < static_cast<size_t>(strip_leading_spaces_) && (*text)[n] == ' ') {
    ++n;
  }
  text->erase(0, n);
}

}  // namespace dspark::tok
