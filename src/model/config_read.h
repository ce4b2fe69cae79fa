// Helpers shared by the GGUF and config.json readers of ModelConfig: optional metadata with type
// checks, range checks with messages that name the key, and the tensor names of each format.
#pragma once

#include <cstdint>
#include <string>

#include "dspark/loader.h"
#include "dspark/model.h"
#include "dspark/status.h"

namespace dspark::model_detail {

// The value of `key`, or `fallback` when absent; a present key of the wrong type is an error.
Result<int64_t> int_or(const ModelFile& file, const std::string& key, int64_t fallback);
Result<double> float_or(const ModelFile& file, const std::string& key, double fallback);
Result<std::string> string_or(const ModelFile& file, const std::string& key,
                              const std::string& fallback);
Result<bool> bool_or(const ModelFile& file, const std::string& key, bool fallback);

// `value` (read from `key`) as an int in [lo, hi], or an error naming the key.
Result<int> in_range(const std::string& key, int64_t value, int64_t lo, int64_t hi);

// Tensor names: GGUF ("blk.3.attn_q.weight") or Hugging Face ("model.layers.3.self_attn...").
enum class Tensor {
  Embedding,
  OutputNorm,
  Output,
  AttnNorm,
  Q,
  K,
  V,
  O,
  QBias,
  KBias,
  VBias,
  QNorm,
  KNorm,
  FfnNorm,
  Gate,
  Up,
  Down,
};
std::string tensor_name(FileFormat format, Tensor t, int layer = -1);

// Rope scaling from metadata (GGUF <arch>.rope.scaling.* or config.json rope_scaling) and, for
// GGUF llama 3 files, from the rope_freqs.weight tensor.
Status read_gguf_rope_scaling(const ModelFile& file, const std::string& arch, ModelConfig* c);
Status read_hf_rope_scaling(const ModelFile& file, ModelConfig* c);

}  // namespace dspark::model_detail
