// The one concrete Tokenizer: added-token split -> normalizers -> pre-tokenizers -> BPE, for both
// byte-level (GPT-2 style) and SentencePiece-style vocabularies. Loaders (GGUF metadata,
// tokenizer.json) describe a tokenizer as a TokenizerSpec and build it here.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "added_tokens.h"
#include "bpe_model.h"
#include "dspark/tokenizer.h"
#include "pipeline.h"

namespace dspark::tok {

struct DecodeOptions {
  bool byte_level = false;       // token text is a GPT-2 byte-level spelling of its bytes
  std::string space_marker;      // SentencePiece: this text (U+2581) decodes to a space
  bool byte_tokens = false;      // tokens spelled "<0xXX>" decode to that byte
  int strip_leading_spaces = 0;  // decode() drops up to this many leading spaces
};

struct TokenizerSpec {
  TokenizerKind kind = TokenizerKind::ByteLevelBpe;
  std::vector<std::string> tokens;  // [vocab_size] token text as stored; "" for an unused id
  std::vector<bool> in_model;       // [vocab_size] whether BPE may produce the token
  // Merges best first, as the two tokens' texts. Ignored when merges_from_scores.
  std::vector<std::pair<std::string, std::string>> merges;
  // SentencePiece vocabularies without merges: merges are derived from the token scores.
  bool merges_from_scores = false;
  std::vector<float> scores;  // [vocab_size]
  BpeOptions bpe;             // bpe.byte_level must match kind
  std::vector<AddedToken> added;
  std::vector<NormalizerStep> normalizers;
  std::vector<PreTokenizerStep> pre_tokenizers;
  DecodeOptions decode;
  std::vector<int32_t> prefix_ids, suffix_ids;  // put around the text when add_special
  int32_t bos_id = -1, eos_id = -1;
  std::vector<int32_t> extra_stop_ids;  // end-of-turn ids named by the model files
};

// Validates the spec (ids in range, merges resolvable) and builds the tokenizer.
Result<std::unique_ptr<Tokenizer>> build_tokenizer(TokenizerSpec spec);

class BpeTokenizer final : public Tokenizer {
 public:
  std::vector<int32_t> encode(std::string_view text, bool add_special,
                              bool parse_special) const override;
  std::vector<int32_t> encode_with_content(std::string_view text, std::span<const ByteSpan> content,
                                           bool add_special) const override;
  std::string token_bytes(int32_t id, bool render_special) const override;
  TokenizerKind kind() const override { return kind_; }
  int32_t vocab_size() const override { return static_cast<int32_t>(tokens_.size()); }
  int32_t bos_id() const override { return bos_id_; }
  int32_t eos_id() const override { return eos_id_; }
  const std::vector<int32_t>& stop_ids() const override { return stop_ids_; }
  bool is_special(int32_t id) const override;
  int32_t token_id(std::string_view piece) const override;

 protected:
  void finish_decode(std::string* text) const override;

 private:
  friend Result<std::unique_ptr<Tokenizer>> build_tokenizer(TokenizerSpec spec);
  BpeTokenizer(TokenizerSpec spec, std::unique_ptr<BpeModel> model);

  // text must be valid UTF-8; content: sorted, disjoint, non-empty ranges inside it.
  std::vector<int32_t> encode_valid(std::string_view text, bool add_special, bool parse_special,
                                    std::span<const ByteSpan> content) const;
  void encode_text(std::string_view text, bool at_start, bool parse_special,
                   std::span<const ByteSpan> content, std::vector<int32_t>* ids) const;

  TokenizerKind kind_;
  std::vector<std::string> tokens_;       // [vocab_size] as stored
  std::vector<std::string> token_bytes_;  // [vocab_size] decoded bytes
  std::vector<bool> special_;             // [vocab_size]
  StringIdMap token_to_id_;
  std::unique_ptr<BpeModel> model_;
  AddedTokenMatcher added_;
  std::vector<NormalizerStep> normalizers_;
  std::vector<PreTokenizerStep> pre_tokenizers_;
  int strip_leading_spaces_;
  std::vector<int32_t> prefix_ids_, suffix_ids_;
  int32_t bos_id_, eos_id_;
  std::vector<int32_t> stop_ids_;
};

}  // namespace dspark::tok
