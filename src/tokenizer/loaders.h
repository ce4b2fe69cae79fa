// Tokenizer specs from model files: GGUF tokenizer.ggml.* metadata and Hugging Face
// tokenizer.json (+ tokenizer_config.json, config.json, generation_config.json beside it).
#pragma once

#include <string>

#include "bpe_tokenizer.h"
#include "dspark/loader.h"

namespace dspark::tok {

Result<TokenizerSpec> spec_from_gguf(const ModelFile& file);
// json_text: the tokenizer.json contents; dir: its folder, for the side files ("" for none).
Result<TokenizerSpec> spec_from_hf_json(const std::string& json_text, const std::string& dir);

// Normalizers, pre-tokenizers and merge rule for a GGUF tokenizer.ggml.pre value, following the
// pre_tokenizer of the model family's original tokenizer.json.
struct PrePreset {
  std::vector<NormalizerStep> normalizers;
  std::vector<PreTokenizerStep> pre_tokenizers;
  bool ignore_merges = false;
  bool add_bos_default = false;  // when the file has no tokenizer.ggml.add_bos_token
};
Result<PrePreset> gguf_pre_preset(const std::string& pre);

}  // namespace dspark::tok
