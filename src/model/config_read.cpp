// Typed optional metadata, range checks and tensor names for the config and weight readers.
#include "config_read.h"

namespace dspark::model_detail {

Result<int64_t> int_or(const ModelFile& file, const std::string& key, int64_t fallback) {
  if (file.find(key) == nullptr) return fallback;
  return file.get_int(key);
}

Result<double> float_or(const ModelFile& file, const std::string& key, double fallback) {
  if (file.find(key) == nullptr) return fallback;
  return file.get_float(key);
}

Result<std::string> string_or(const ModelFile& file, const std::string& key,
                              const std::string& fallback) {
  if (file.find(key) == nullptr) return fallback;
  return file.get_string(key);
}

Result<bool> bool_or(const ModelFile& file, const std::string& key, bool fallback) {
  if (file.find(key) == nullptr) return fallback;
  return file.get_bool(key);
}

Result<int> in_range(const std::string& key, int64_t value, int64_t lo, int64_t hi) {
  if (value < lo || value > hi) {
    return Error{"'" + key + "' = " + std::to_string(value) + " is outside the supported range [" +
                 std::to_string(lo) + ", " + std::to_string(hi) + "]"};
  }
  return static_cast<int>(value);
}

std::string tensor_name(FileFormat format, Tensor t, int layer) {
  const bool gguf = format == FileFormat::Gguf;
  switch (t) {
    case Tensor::Embedding:
      return gguf ? "token_embd.weight" : "model.embed_tokens.weight";
    case Tensor::OutputNorm:
      return gguf ? "output_norm.weight" : "model.norm.weight";
    case Tensor::Output:
      return gguf ? "output.weight" : "lm_head.weight";
    default:
      break;
  }
  const char* suffix = "";
  switch (t) {
    case Tensor::AttnNorm:
      suffix = gguf ? "attn_norm.weight" : "input_layernorm.weight";
      break;
    case Tensor::Q:
      suffix = gguf ? "attn_q.weight" : "self_attn.q_proj.weight";
      break;
    case Tensor::K:
      suffix = gguf ? "attn_k.weight" : "self_attn.k_proj.weight";
      break;
    case Tensor::V:
      suffix = gguf ? "attn_v.weight" : "self_attn.v_proj.weight";
      break;
    case Tensor::O:
      suffix = gguf ? "attn_output.weight" : "self_attn.o_proj.weight";
      break;
    case Tensor::QBias:
      suffix = gguf ? "attn_q.bias" : "self_attn.q_proj.bias";
      break;
    case Tensor::KBias:
      suffix = gguf ? "attn_k.bias" : "self_attn.k_proj.bias";
      break;
    case Tensor::VBias:
      suffix = gguf ? "attn_v.bias" : "self_attn.v_proj.bias";
      break;
    case Tensor::QNorm:
      suffix = gguf ? "attn_q_norm.weight" : "self_attn.q_norm.weight";
      break;
    case Tensor::KNorm:
      suffix = gguf ? "attn_k_norm.weight" : "self_attn.k_norm.weight";
      break;
    case Tensor::FfnNorm:
      suffix = gguf ? "ffn_norm.weight" : "post_attention_layernorm.weight";
      break;
    case Tensor::Gate:
      suffix = gguf ? "ffn_gate.weight" : "mlp.gate_proj.weight";
      break;
    case Tensor::Up:
      suffix = gguf ? "ffn_up.weight" : "mlp.up_proj.weight";
      break;
    case Tensor::Down:
      suffix = gguf ? "ffn_down.weight" : "mlp.down_proj.weight";
      break;
    default:
      break;
  }
  return (gguf ? "blk." : "model.layers.") + std::to_string(layer) + "." + suffix;
}

}  // namespace dspark::model_detail
