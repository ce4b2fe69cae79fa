// TokenizerSpec from GGUF metadata (llama.cpp's tokenizer.ggml.* keys).
#include <cmath>
#include <utility>

#include "loaders.h"

namespace dspark::tok {

namespace {

// llama.cpp's token types (0: undefined, read as normal, as llama.cpp does).
enum GgufTokenType : int64_t {
  kUndefined = 0,
  kNormal = 1,
  kUnknown = 2,
  kControl = 3,
  kUserDefined = 4,
  kUnused = 5,
  kByte = 6,
};

// fallback: the id when the key is absent (-1 for none).
Result<int32_t> optional_id(const ModelFile& file, const std::string& key, size_t vocab_size,
                            int32_t fallback = -1) {
  if (file.find(key) == nullptr) {
    return fallback >= 0 && static_cast<size_t>(fallback) < vocab_size ? fallback : -1;
  }
  auto v = file.get_int(key);
  if (!v.ok()) return v.error();
  if (v.value() < 0 || static_cast<uint64_t>(v.value()) >= vocab_size) {
    return Error{"tokenizer: " + key + " = " + std::to_string(v.value()) +
                 " is outside the vocabulary of " + std::to_string(vocab_size)};
  }
  return static_cast<int32_t>(v.value());
}

Status read_merges(const ModelFile& file, TokenizerSpec* spec) {
  auto merges = file.get_string_array("tokenizer.ggml.merges");
  if (!merges.ok()) return merges.error();
  spec->merges.reserve(merges.value().size());
  for (const std::string& m : merges.value()) {
    const size_t space = m.find(' ');
    if (space == std::string::npos || space == 0 || space + 1 >= m.size()) {
      return Error{"tokenizer: malformed merge '" + m + "' in tokenizer.ggml.merges"};
    }
    spec->merges.emplace_back(m.substr(0, space), m.substr(space + 1));
  }
  return Status::Ok();
}

Result<std::vector<int64_t>> read_types(const ModelFile& file, size_t n) {
  std::vector<int64_t> types(n, kNormal);
  if (file.find("tokenizer.ggml.token_type") == nullptr) return types;
  auto t = file.get_int_array("tokenizer.ggml.token_type");
  if (!t.ok()) return t.error();
  if (t.value().size() != n) {
    return Error{"tokenizer: " + std::to_string(t.value().size()) + " token types for " +
                 std::to_string(n) + " tokens"};
  }
  types = std::move(t).value();
  for (size_t id = 0; id < n; ++id) {
    if (types[id] < kUndefined || types[id] > kByte) {
      return Error{"tokenizer: token " + std::to_string(id) + " has type " +
                   std::to_string(types[id]) + " (tokenizer.ggml.token_type must be 0-6)"};
    }
  }
  return types;
}

// SentencePiece scores: one finite number per token (they order the derived merges).
Status read_scores(const ModelFile& file, TokenizerSpec* spec) {
  if (file.find("tokenizer.ggml.scores") == nullptr) {
    return Error{
        "tokenizer: a SentencePiece ('llama') vocabulary without tokenizer.ggml.merges needs "
        "tokenizer.ggml.scores"};
  }
  auto scores = file.get_float_array("tokenizer.ggml.scores");
  if (!scores.ok()) return scores.error();
  if (scores.value().size() != spec->tokens.size()) {
    return Error{"tokenizer: " + std::to_string(scores.value().size()) +
                 " scores in tokenizer.ggml.scores for " + std::to_string(spec->tokens.size()) +
                 " tokens"};
  }
  for (size_t id = 0; id < scores.value().size(); ++id) {
    if (!std::isfinite(scores.value()[id])) {
      return Error{"tokenizer: token " + std::to_string(id) + " has a non-finite score"};
    }
  }
  spec->scores.assign(scores.value().begin(), scores.value().end());
  spec->merges_from_scores = true;
  return Status::Ok();
}

}  // namespace

Result<TokenizerSpec> spec_from_gguf(const ModelFile& file) {
  auto model = file.get_string("tokenizer.ggml.model");
  if (!model.ok()) return model.error();
  auto tokens = file.get_string_array("tokenizer.ggml.tokens");
  if (!tokens.ok()) return tokens.error();
  TokenizerSpec spec;
  spec.tokens = std::move(tokens).value();
  const size_t n = spec.tokens.size();

  auto types = read_types(file, n);
  if (!types.ok()) return types.error();
  spec.in_model.resize(n);
  for (size_t id = 0; id < n; ++id) {
    const int64_t type = types.value()[id];
    spec.in_model[id] = type != kUnused;
    // Control and unknown tokens are special (parsed only on request); user-defined tokens are
    // always matched whole, as llama.cpp and Hugging Face's non-special added tokens are.
    if (type == kControl || type == kUnknown || type == kUserDefined) {
      AddedToken t;
      t.id = static_cast<int32_t>(id);
      t.content = spec.tokens[id];
      t.special = type != kUserDefined;
      spec.added.push_back(std::move(t));
    }
  }

  // SentencePiece files without the keys get llama.cpp's defaults: <unk> 0, <s> 1, </s> 2.
  const bool spm = model.value() == "llama";
  auto bos = optional_id(file, "tokenizer.ggml.bos_token_id", n, spm ? 1 : -1);
  auto eos = optional_id(file, "tokenizer.ggml.eos_token_id", n, spm ? 2 : -1);
  auto unk = optional_id(file, "tokenizer.ggml.unknown_token_id", n, spm ? 0 : -1);
  auto eot = optional_id(file, "tokenizer.ggml.eot_token_id", n);
  auto eom = optional_id(file, "tokenizer.ggml.eom_token_id", n);
  for (const auto* r : {&bos, &eos, &unk, &eot, &eom}) {
    if (!r->ok()) return r->error();
  }
  spec.bos_id = bos.value();
  spec.eos_id = eos.value();
  for (int32_t id : {eot.value(), eom.value()}) {
    if (id >= 0) spec.extra_stop_ids.push_back(id);
  }

  bool add_bos_default = false;
  bool add_sep_default = false;
  if (model.value() == "gpt2") {
    spec.kind = TokenizerKind::ByteLevelBpe;
    spec.bpe.byte_level = true;
    spec.decode.byte_level = true;
    DSPARK_RETURN_IF_ERROR(read_merges(file, &spec));
    auto preset = gguf_pre_preset(file.get_string_or("tokenizer.ggml.pre", "default"));
    if (!preset.ok()) return preset.error();
    spec.normalizers = std::move(preset.value().normalizers);
    spec.pre_tokenizers = std::move(preset.value().pre_tokenizers);
    spec.bpe.ignore_merges = preset.value().ignore_merges;
    add_bos_default = preset.value().add_bos_default;
    if (preset.value().drop_bos) spec.bos_id = -1;
    add_sep_default = preset.value().add_sep_default;
  } else if (model.value() == "llama") {
    // SentencePiece BPE as in Llama 2's tokenizer.json: Prepend("▁") + Replace(" ", "▁")
    // normalizers, no pre-tokenizer, byte fallback, fused unknowns; the decoder strips the
    // prepended space.
    spec.kind = TokenizerKind::SentencePieceBpe;
    spec.bpe.byte_fallback = true;
    spec.bpe.fuse_unk = true;
    spec.bpe.unk_id = unk.value();
    // A space is prepended unless the file says otherwise, except for Gemma, whose
    // SentencePiece model has no dummy prefix (older Gemma GGUFs lack the key).
    const bool gemma = file.get_string_or("general.architecture", "").starts_with("gemma");
    const bool add_space_prefix = file.get_bool_or("tokenizer.ggml.add_space_prefix", !gemma);
    const std::string marker = "\xE2\x96\x81";  // U+2581
    if (add_space_prefix) spec.normalizers.push_back({NormalizerStep::Kind::Prepend, marker, ""});
    spec.normalizers.push_back({NormalizerStep::Kind::Replace, " ", marker});
    spec.decode.space_marker = marker;
    spec.decode.byte_tokens = true;
    spec.decode.strip_leading_spaces = add_space_prefix ? 1 : 0;
    if (file.find("tokenizer.ggml.merges") != nullptr) {
      DSPARK_RETURN_IF_ERROR(read_merges(file, &spec));
    } else {
      DSPARK_RETURN_IF_ERROR(read_scores(file, &spec));
    }
    add_bos_default = true;
  } else {
    return Error{"tokenizer: unsupported tokenizer.ggml.model '" + model.value() + "'"};
  }

  if (file.get_bool_or("tokenizer.ggml.add_bos_token", add_bos_default) && spec.bos_id >= 0) {
    spec.prefix_ids.push_back(spec.bos_id);
  }
  if (file.get_bool_or("tokenizer.ggml.add_eos_token", false) && spec.eos_id >= 0) {
    spec.suffix_ids.push_back(spec.eos_id);
  }
  // RoBERTa-style families end with SEP (llama.cpp's key spells it "seperator").
  auto sep = optional_id(file, "tokenizer.ggml.seperator_token_id", n);
  if (!sep.ok()) return sep.error();
  if (file.get_bool_or("tokenizer.ggml.add_sep_token", add_sep_default) && sep.value() >= 0) {
    spec.suffix_ids.push_back(sep.value());
  }
  return spec;
}

}  // namespace dspark::tok
