// Parsers for the parts of a Hugging Face tokenizer.json that shape the text pipeline:
// normalizer, pre_tokenizer, decoder and post_processor. Unsupported component types are
// errors that name the type, never silently ignored.
#pragma once

#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "bpe_tokenizer.h"

namespace dspark::tok {

Status parse_normalizer(const nlohmann::json& j, std::vector<NormalizerStep>* out);
// Sets *has_byte_level when a ByteLevel step is present (the BPE model then works on bytes).
Status parse_pre_tokenizer(const nlohmann::json& j, std::vector<PreTokenizerStep>* out,
                           bool* has_byte_level);
Status parse_decoder(const nlohmann::json& j, DecodeOptions* out);

// Special-token ids the post-processor puts before and after a single sequence.
struct PostProcessor {
  std::vector<int32_t> prefix, suffix;
};
// token_id: id of a token string, -1 when unknown.
Status parse_post_processor(const nlohmann::json& j,
                            const std::function<int32_t(const std::string&)>& token_id,
                            PostProcessor* out);

}  // namespace dspark::tok
