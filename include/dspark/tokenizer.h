// Tokenizers: GPT-2 style byte-level BPE (pre-tokenizer chosen by GGUF's tokenizer.ggml.pre or
// tokenizer.json's pre_tokenizer) and SentencePiece-style BPE with byte fallback, loaded from GGUF
// metadata or a Hugging Face tokenizer.json. Token ids match the Hugging Face `tokenizers` library.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "dspark/loader.h"
#include "dspark/status.h"
#include "dspark/text.h"

namespace dspark {

enum class TokenizerKind { ByteLevelBpe, SentencePieceBpe };

class Tokenizer {
 public:
  // From a model file: GGUF tokenizer.ggml.* metadata, or tokenizer.json (plus
  // tokenizer_config.json for BOS/EOS rules) in a safetensors model's folder.
  static Result<std::unique_ptr<Tokenizer>> from_model_file(const ModelFile& file);
  // From a tokenizer.json path (tokenizer_config.json beside it is read when present).
  static Result<std::unique_ptr<Tokenizer>> from_hf_json(const std::string& path);

  virtual ~Tokenizer() = default;

  // add_special: prepend BOS / append EOS as the model's rules say. parse_special: text such as
  // "<|im_start|>" becomes the special token instead of being split as plain text (non-special
  // added tokens, e.g. GGUF USER_DEFINED ones, are always matched, as in Hugging Face).
  // Invalid UTF-8 is encoded as U+FFFD per maximal invalid subpart (Python's errors="replace").
  // Thread-safe.
  virtual std::vector<int32_t> encode(std::string_view text, bool add_special,
                                      bool parse_special) const = 0;
  // encode(text, add_special, /*parse_special=*/true), except that no added token, special or
  // not, is matched on any byte inside `content` (sorted, disjoint ranges of text, such as
  // RenderedPrompt::content): those bytes are tokenized as ordinary text. Chat prompts use it
  // so that a message can never produce control tokens. Text with no added token's string in
  // `content` gives exactly encode()'s ids, as BPE still runs over the whole text unsplit.
  virtual std::vector<int32_t> encode_with_content(std::string_view text,
                                                   std::span<const ByteSpan> content,
                                                   bool add_special) const = 0;
  // Bytes of one token (special tokens render as their text when render_special is set).
  virtual std::string token_bytes(int32_t id, bool render_special) const = 0;
  // Whole-sequence decode; invalid UTF-8 produced by byte tokens is kept as raw bytes.
  std::string decode(const std::vector<int32_t>& ids, bool render_special) const;

  virtual TokenizerKind kind() const = 0;
  virtual int32_t vocab_size() const = 0;
  virtual int32_t bos_id() const = 0;  // -1 if none
  virtual int32_t eos_id() const = 0;  // -1 if none
  // Ids that end generation: EOS, end-of-turn ids the model files name, and the added tokens
  // <|im_end|>, <|eot_id|>, <|end_of_text|>, <|endoftext|>, <end_of_turn>, </s> when present.
  virtual const std::vector<int32_t>& stop_ids() const = 0;
  virtual bool is_special(int32_t id) const = 0;
  // Id of an exact token string as stored in the vocabulary (byte-level vocabularies spell a
  // space "Ġ"), or an added token's text; -1 if absent.
  virtual int32_t token_id(std::string_view piece) const = 0;

 protected:
  // Last step of decode() on the concatenated bytes: SentencePiece tokenizers drop the space
  // their encoder put in front of the text. Streaming detokenization does not apply it.
  virtual void finish_decode(std::string* text) const { (void)text; }
};

// Turns a stream of token ids into text without ever emitting a broken UTF-8 sequence: bytes of
// an incomplete character are held back until the character completes (or flush() is called).
class StreamingDetokenizer {
 public:
  explicit StreamingDetokenizer(const Tokenizer& tokenizer, bool render_special = false);
  // Text that became complete with this token (possibly empty).
  std::string push(int32_t id);
  // Whatever is still held back; invalid bytes become U+FFFD.
  std::string flush();

 private:
  const Tokenizer& tokenizer_;
  bool render_special_;
  std::string pending_;  // bytes of an incomplete UTF-8 character
};

}  // namespace dspark
