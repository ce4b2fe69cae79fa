// ModelConfig from GGUF metadata (<arch>.* keys) or a Hugging Face config.json ("hf.*" keys).
#include <cmath>
#include <filesystem>

#include "config_read.h"

namespace dspark {

using model_detail::bool_or;
using model_detail::float_or;
using model_detail::in_range;
using model_detail::int_or;
using model_detail::string_or;
using model_detail::Tensor;
using model_detail::tensor_name;

const char* arch_name(Arch arch) {
  switch (arch) {
    case Arch::Llama:
      return "llama";
    case Arch::Qwen2:
      return "qwen2";
    case Arch::Qwen3:
      return "qwen3";
  }
  return "unknown";
}

namespace {

constexpr const char* kSupportedGguf = "llama, qwen2, qwen3";
constexpr const char* kSupportedHf = "LlamaForCausalLM, Qwen2ForCausalLM, Qwen3ForCausalLM";

// Limits that keep every size product far from overflow while covering real models.
constexpr int64_t kMaxLayers = 1024, kMaxWidth = 1 << 17, kMaxHeads = 1024, kMaxVocab = 1 << 24;

// Rows of the embedding matrix: the vocabulary size every token id is checked against.
Result<int64_t> embedding_rows(const ModelFile& file) {
  const std::string name = tensor_name(file.format(), Tensor::Embedding);
  const TensorInfo* t = file.tensor(name);
  if (t == nullptr) return Error{"missing tensor '" + name + "' (token embeddings)"};
  if (t->shape.size() != 2) {
    return Error{"tensor '" + name + "' has " + std::to_string(t->shape.size()) +
                 " dimensions, expected 2 [vocab, d_model]"};
  }
  return t->shape[0];
}

// Sizes shared by both formats, and the keys they came from (for error messages).
struct RawSizes {
  int64_t n_layers, d_model, n_heads, n_kv_heads, head_dim, d_ff, rot_dims;
};
struct SizeKeys {
  const char *n_layers, *d_model, *n_heads, *n_kv_heads, *head_dim, *d_ff, *rot_dims;
};
constexpr SizeKeys kGgufKeys{"block_count",          "embedding_length",
                             "attention.head_count", "attention.head_count_kv",
                             "attention.key_length", "feed_forward_length",
                             "rope.dimension_count"};
constexpr SizeKeys kHfKeys{"num_hidden_layers",
                           "hidden_size",
                           "num_attention_heads",
                           "num_key_value_heads",
                           "head_dim",
                           "intermediate_size",
                           "head_dim * partial_rotary_factor"};

Status fill_sizes(const RawSizes& r, const std::string& prefix, const SizeKeys& k, ModelConfig* c) {
  auto set = [&](const char* key, int64_t v, int64_t lo, int64_t hi, int* dst) -> Status {
    auto x = in_range(prefix + key, v, lo, hi);
    if (!x.ok()) return x.error();
    *dst = *x;
    return Status::Ok();
  };
  DSPARK_RETURN_IF_ERROR(set(k.n_layers, r.n_layers, 1, kMaxLayers, &c->n_layers));
  DSPARK_RETURN_IF_ERROR(set(k.d_model, r.d_model, 1, kMaxWidth, &c->d_model));
  DSPARK_RETURN_IF_ERROR(set(k.n_heads, r.n_heads, 1, kMaxHeads, &c->n_heads));
  DSPARK_RETURN_IF_ERROR(set(k.n_kv_heads, r.n_kv_heads, 1, kMaxHeads, &c->n_kv_heads));
  DSPARK_RETURN_IF_ERROR(set(k.head_dim, r.head_dim, 2, 4096, &c->head_dim));
  DSPARK_RETURN_IF_ERROR(set(k.d_ff, r.d_ff, 1, 4 * kMaxWidth, &c->d_ff));
  return set(k.rot_dims, r.rot_dims, 2, 4096, &c->rope.rot_dims);
}

// Checks that hold for every architecture once all sizes are known.
Status check_consistency(const std::string& src, const ModelConfig& c) {
  if (c.n_heads % c.n_kv_heads != 0) {
    return Error{src + ": " + std::to_string(c.n_heads) +
                 " attention heads are not a multiple of " + std::to_string(c.n_kv_heads) +
                 " key/value heads"};
  }
  if (c.head_dim % 2 != 0 || c.rope.rot_dims % 2 != 0 || c.rope.rot_dims > c.head_dim) {
    return Error{src + ": rotary dims " + std::to_string(c.rope.rot_dims) + " and head dim " +
                 std::to_string(c.head_dim) + " must be even with rotary dims <= head dim"};
  }
  if (!(c.rms_eps > 0.0f) || !std::isfinite(c.rms_eps)) {
    return Error{src + ": RMS norm epsilon " + std::to_string(c.rms_eps) + " must be positive"};
  }
  if (!(c.rope.theta > 0.0f) || !std::isfinite(c.rope.theta)) {
    return Error{src + ": RoPE base " + std::to_string(c.rope.theta) + " must be positive"};
  }
  if (c.context_length < 1) {
    return Error{src + ": context length " + std::to_string(c.context_length) + " must be >= 1"};
  }
  return Status::Ok();
}

Result<ModelConfig> from_gguf(const ModelFile& file) {
  ModelConfig c;
  auto arch = file.get_string("general.architecture");
  if (!arch.ok()) return arch.error();
  if (*arch == "llama") {
    c.arch = Arch::Llama;
  } else if (*arch == "qwen2") {
    c.arch = Arch::Qwen2;
  } else if (*arch == "qwen3") {
    c.arch = Arch::Qwen3;
  } else {
    return Error{"unsupported architecture '" + *arch +
                 "' (general.architecture); dspark supports " + kSupportedGguf};
  }
  const std::string p = *arch + ".";
  RawSizes r{};
  for (auto [key, dst] : {std::pair{"block_count", &r.n_layers},
                          {"embedding_length", &r.d_model},
                          {"attention.head_count", &r.n_heads},
                          {"feed_forward_length", &r.d_ff}}) {
    auto v = file.get_int(p + key);
    if (!v.ok()) return v.error();
    *dst = *v;
  }
  auto kv = int_or(file, p + "attention.head_count_kv", r.n_heads);
  if (!kv.ok()) return kv.error();
  r.n_kv_heads = *kv;
  if (r.n_heads < 1 || r.n_heads > kMaxHeads) {
    auto bad = in_range(p + "attention.head_count", r.n_heads, 1, kMaxHeads);
    return bad.error();
  }
  const bool explicit_head_dim = file.find(p + "attention.key_length") != nullptr;
  if (!explicit_head_dim && r.d_model % r.n_heads != 0) {
    return Error{p + "embedding_length " + std::to_string(r.d_model) +
                 " is not a multiple of the head count " + std::to_string(r.n_heads) +
                 " (and attention.key_length is absent)"};
  }
  auto hd = int_or(file, p + "attention.key_length", r.d_model / r.n_heads);
  if (!hd.ok()) return hd.error();
  r.head_dim = *hd;
  auto vl = int_or(file, p + "attention.value_length", r.head_dim);
  if (!vl.ok()) return vl.error();
  if (*vl != r.head_dim) {
    return Error{p + "attention.value_length " + std::to_string(*vl) +
                 " differs from the key length " + std::to_string(r.head_dim) +
                 "; dspark needs equal key and value head sizes"};
  }
  auto rot = int_or(file, p + "rope.dimension_count", r.head_dim);
  if (!rot.ok()) return rot.error();
  r.rot_dims = *rot;
  DSPARK_RETURN_IF_ERROR(fill_sizes(r, p, kGgufKeys, &c));

  auto eps = file.get_float(p + "attention.layer_norm_rms_epsilon");
  if (!eps.ok()) return eps.error();
  c.rms_eps = static_cast<float>(*eps);
  auto theta = float_or(file, p + "rope.freq_base", 10000.0);
  if (!theta.ok()) return theta.error();
  c.rope.theta = static_cast<float>(*theta);
  auto ctx = file.get_int(p + "context_length");
  if (!ctx.ok()) return ctx.error();
  c.context_length = *ctx;
  // llama.cpp's converter permutes llama q/k rows so that adjacent pairs rotate; it leaves
  // qwen2/qwen3 in the Hugging Face half-split order.
  c.rope.layout = c.arch == Arch::Llama ? RopeLayout::Interleaved : RopeLayout::Neox;
  DSPARK_RETURN_IF_ERROR(model_detail::read_gguf_rope_scaling(file, *arch, &c));

  auto vocab = embedding_rows(file);
  if (!vocab.ok()) return vocab.error();
  auto v = in_range("rows of token_embd.weight", *vocab, 1, kMaxVocab);
  if (!v.ok()) return v.error();
  c.vocab_size = *v;
  auto meta_vocab = int_or(file, p + "vocab_size", c.vocab_size);
  if (!meta_vocab.ok()) return meta_vocab.error();
  if (*meta_vocab != c.vocab_size) {
    return Error{p + "vocab_size " + std::to_string(*meta_vocab) +
                 " differs from the token_embd.weight rows " + std::to_string(c.vocab_size)};
  }
  c.tied_embeddings = file.tensor(tensor_name(FileFormat::Gguf, Tensor::Output)) == nullptr;
  c.qkv_bias = c.arch == Arch::Qwen2 ||
               file.tensor(tensor_name(FileFormat::Gguf, Tensor::QBias, 0)) != nullptr;
  c.qk_norm = c.arch == Arch::Qwen3;
  auto name = string_or(file, "general.name", std::filesystem::path(file.path()).stem().string());
  if (!name.ok()) return name.error();
  c.name = *name;
  DSPARK_RETURN_IF_ERROR(check_consistency("GGUF " + *arch, c));
  return c;
}

Result<ModelConfig> from_hf(const ModelFile& file) {
  ModelConfig c;
  std::string arch_key;
  if (file.find("hf.architectures") != nullptr) {
    auto archs = file.get_string_array("hf.architectures");
    if (!archs.ok()) return archs.error();
    if (archs->size() != 1) {
      return Error{"config.json: 'architectures' lists " + std::to_string(archs->size()) +
                   " entries, expected one of " + kSupportedHf};
    }
    arch_key = archs->front();
  } else {
    auto type = file.get_string("hf.model_type");
    if (!type.ok()) return Error{"config.json has neither 'architectures' nor 'model_type'"};
    arch_key = *type;
  }
  if (arch_key == "LlamaForCausalLM" || arch_key == "llama") {
    c.arch = Arch::Llama;
  } else if (arch_key == "Qwen2ForCausalLM" || arch_key == "qwen2") {
    c.arch = Arch::Qwen2;
  } else if (arch_key == "Qwen3ForCausalLM" || arch_key == "qwen3") {
    c.arch = Arch::Qwen3;
  } else {
    return Error{"unsupported architecture '" + arch_key + "' in config.json; dspark supports " +
                 kSupportedHf};
  }
  RawSizes r{};
  for (auto [key, dst] : {std::pair{"hf.num_hidden_layers", &r.n_layers},
                          {"hf.hidden_size", &r.d_model},
                          {"hf.num_attention_heads", &r.n_heads},
                          {"hf.intermediate_size", &r.d_ff}}) {
    auto v = file.get_int(key);
    if (!v.ok()) return Error{"config.json: " + v.error().message};
    *dst = *v;
  }
  if (r.n_heads < 1 || r.n_heads > kMaxHeads) {
    return in_range("hf.num_attention_heads", r.n_heads, 1, kMaxHeads).error();
  }
  auto kv = int_or(file, "hf.num_key_value_heads", r.n_heads);
  if (!kv.ok()) return kv.error();
  r.n_kv_heads = *kv;
  if (file.find("hf.head_dim") == nullptr && r.d_model % r.n_heads != 0) {
    return Error{"config.json: hidden_size " + std::to_string(r.d_model) +
                 " is not a multiple of num_attention_heads " + std::to_string(r.n_heads) +
                 " (and head_dim is absent)"};
  }
  auto hd = int_or(file, "hf.head_dim", r.d_model / r.n_heads);
  if (!hd.ok()) return hd.error();
  r.head_dim = *hd;
  auto partial = float_or(file, "hf.partial_rotary_factor", 1.0);
  if (!partial.ok()) return partial.error();
  if (!(*partial > 0.0 && *partial <= 1.0)) {
    return Error{"config.json: partial_rotary_factor " + std::to_string(*partial) +
                 " must be in (0, 1]"};
  }
  r.rot_dims = static_cast<int64_t>(std::llround(*partial * static_cast<double>(r.head_dim)));
  DSPARK_RETURN_IF_ERROR(fill_sizes(r, "hf.", kHfKeys, &c));

  auto eps = float_or(file, "hf.rms_norm_eps", 1e-6);
  if (!eps.ok()) return eps.error();
  c.rms_eps = static_cast<float>(*eps);
  // Newer transformers releases move rope_theta into rope_parameters.
  auto theta_nested = float_or(file, "hf.rope_parameters.rope_theta", 10000.0);
  if (!theta_nested.ok()) return theta_nested.error();
  auto theta = float_or(file, "hf.rope_theta", *theta_nested);
  if (!theta.ok()) return theta.error();
  c.rope.theta = static_cast<float>(*theta);
  auto ctx = file.get_int("hf.max_position_embeddings");
  if (!ctx.ok()) return Error{"config.json: " + ctx.error().message};
  c.context_length = *ctx;
  c.rope.layout = RopeLayout::Neox;  // Hugging Face q/k rows are in half-split order
  DSPARK_RETURN_IF_ERROR(model_detail::read_hf_rope_scaling(file, &c));

  auto vocab = embedding_rows(file);
  if (!vocab.ok()) return vocab.error();
  auto v = in_range("rows of model.embed_tokens.weight", *vocab, 1, kMaxVocab);
  if (!v.ok()) return v.error();
  c.vocab_size = *v;
  auto meta_vocab = int_or(file, "hf.vocab_size", c.vocab_size);
  if (!meta_vocab.ok()) return meta_vocab.error();
  if (*meta_vocab != c.vocab_size) {
    return Error{"config.json: vocab_size " + std::to_string(*meta_vocab) +
                 " differs from the model.embed_tokens.weight rows " +
                 std::to_string(c.vocab_size)};
  }
  // transformers' defaults: llama, qwen2 and qwen3 configs all default to untied heads.
  auto tied = bool_or(file, "hf.tie_word_embeddings", false);
  if (!tied.ok()) return tied.error();
  c.tied_embeddings = *tied;
  auto bias = bool_or(file, "hf.attention_bias", c.arch == Arch::Qwen2);
  if (!bias.ok()) return bias.error();
  c.qkv_bias = c.arch == Arch::Qwen2 || *bias;
  c.qk_norm = c.arch == Arch::Qwen3;
  c.name = std::filesystem::path(file.dir()).filename().string();
  DSPARK_RETURN_IF_ERROR(check_consistency("config.json", c));
  return c;
}

}  // namespace

Result<ModelConfig> ModelConfig::from_file(const ModelFile& file) {
  return file.format() == FileFormat::Gguf ? from_gguf(file) : from_hf(file);
}

}  // namespace dspark
