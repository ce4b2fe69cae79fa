// tokenizer.ggml.pre -> the text pipeline of the model family's original tokenizer.json.
#include <utility>

#include "loaders.h"

namespace dspark::tok {

namespace {

// Llama 3's Split pattern (its tokenizer.json pre_tokenizer).
const char* const kLlama3Pattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
// Qwen2's Split pattern: as Llama 3's but single digits.
const char* const kQwen2Pattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

Status push(Result<PreTokenizerStep> step, PrePreset* preset) {
  if (!step.ok()) return step.error();
  preset->pre_tokenizers.push_back(std::move(step).value());
  return Status::Ok();
}

}  // namespace

Result<PrePreset> gguf_pre_preset(const std::string& pre) {
  PrePreset p;
  if (pre == "gpt2" || pre == "default") {
    // GPT-2: ByteLevel with its built-in regex.
    DSPARK_RETURN_IF_ERROR(push(make_byte_level_step(false, true), &p));
  } else if (pre == "llama-bpe" || pre == "llama3" || pre == "llama-v3") {
    // Llama 3: Split(pattern, Isolated) + ByteLevel(use_regex=false); BPE ignore_merges=true;
    // the post-processor adds <|begin_of_text|>.
    DSPARK_RETURN_IF_ERROR(
        push(make_split_step(kLlama3Pattern, false, SplitBehavior::Isolated, false), &p));
    DSPARK_RETURN_IF_ERROR(push(make_byte_level_step(false, false), &p));
    p.ignore_merges = true;
    p.add_bos_default = true;
  } else if (pre == "qwen2" || pre == "deepseek-r1-qwen") {
    // Qwen2: NFC normalizer, Split(pattern, Isolated) + ByteLevel(use_regex=false).
    p.normalizers.push_back({NormalizerStep::Kind::Nfc, "", ""});
    DSPARK_RETURN_IF_ERROR(
        push(make_split_step(kQwen2Pattern, false, SplitBehavior::Isolated, false), &p));
    DSPARK_RETURN_IF_ERROR(push(make_byte_level_step(false, false), &p));
  } else if (pre == "smollm" || pre == "starcoder") {
    // SmolLM / StarCoder: Digits(individual_digits=true) + ByteLevel(use_regex=true).
    DSPARK_RETURN_IF_ERROR(push(make_digits_step(true), &p));
    DSPARK_RETURN_IF_ERROR(push(make_byte_level_step(false, true), &p));
  } else {
    return Error{"tokenizer: unsupported tokenizer.ggml.pre '" + pre + "'"};
  }
  return p;
}

}  // namespace dspark::tok
