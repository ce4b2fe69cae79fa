// Tokenizer specs from model files: GGUF tokenizer.ggml.* metadata and Hugging Face
// tokenizer.json (+ tokenizer_config.json, config.json, generation_config.json beside it).
#pragma once

#include <string>
#include <vector>

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
  bool add_sep_default = false;  // when the file has no tokenizer.ggml.add_sep_token
  bool drop_bos = false;         // the family has no BOS (llama.cpp ignores the file's)
};
// Unknown names are an error listing the supported ones.
Result<PrePreset> gguf_pre_preset(const std::string& pre);
// Every tokenizer.ggml.pre name gguf_pre_preset accepts, in table order.
std::vector<std::string> gguf_pre_names();

}  // namespace dspark::tok
