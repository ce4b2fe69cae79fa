// Shared helpers of the engine tests: loading a model with its tokenizer, building an engine,
// and prompts with shared prefixes.
#pragma once

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "dspark/engine.h"

namespace dspark::test {

struct Loaded {
  std::shared_ptr<const Model> model;
  std::shared_ptr<const Tokenizer> tokenizer;
  std::string error;
};

inline Loaded load_model(const std::string& path) {
  Loaded l;
  auto file = ModelFile::open(path);
  if (!file.ok()) {
    l.error = file.error().message;
    return l;
  }
  auto tok = Tokenizer::from_model_file(*file.value());
  if (!tok.ok()) {
    l.error = tok.error().message;
    return l;
  }
  auto model = Model::load(file.value(), *make_cpu_backend(1));
  if (!model.ok()) {
    l.error = model.error().message;
    return l;
  }
  l.model = std::move(model.value());
  l.tokenizer = std::move(tok.value());
  return l;
}

// Written by scripts/make_tiny_models.py (ctest fixture model_tiny_models_setup).
inline std::string tiny_model_path(const std::string& name) {
  return std::string(DSPARK_BINARY_DIR) + "/tiny_models/" + name;
}

// <DSPARK_MODELS_DIR or source/models>/name; empty when absent.
inline std::string real_model_path(const std::string& name) {
  const char* dir = std::getenv("DSPARK_MODELS_DIR");
  std::string path =
      (dir ? std::string(dir) : std::string(DSPARK_SOURCE_DIR) + "/models") + "/" + name;
  return std::filesystem::exists(path) ? path : std::string();
}

inline engine::EngineConfig engine_config(const Loaded& l, int32_t kv_blocks, int32_t block_size,
                                          bool prefix_caching) {
  engine::EngineConfig c;
  c.model = l.model;
  c.tokenizer = l.tokenizer;
  c.kv_blocks = kv_blocks;
  c.block_size = block_size;
  c.max_num_batched_tokens = 64;
  c.max_num_seqs = 8;
  c.prefix_caching = prefix_caching;
  c.long_prefill_chunk = 24;
  c.threads = 1;
  return c;
}

// A tiny qwen3 target whose first layer barely moves the residual stream, and a DSpark
// checkpoint built from its second layer (scripts/make_tiny_models.py): its drafts at the first
// block position mostly agree with the target, so rounds accept and commit drafts.
constexpr const char* kDSparkTarget = "qwen3-drafted-f32.gguf";
constexpr const char* kDSparkCheckpoint = "dspark-qwen3-aligned";

// The tiny target a speculation test of `method` runs on: kDSparkTarget for DSpark, else
// llama-f32.gguf.
inline std::string spec_target_path(engine::SpecMethod method) {
  return tiny_model_path(method == engine::SpecMethod::kDSpark ? kDSparkTarget : "llama-f32.gguf");
}

// Sets c.spec's method and drafter: draft names the tiny draft model file ("llama-f32.gguf":
// the target itself; loaded into *draft otherwise) or, for DSpark, the checkpoint folder.
inline void use_drafter(engine::EngineConfig& c, engine::SpecMethod method,
                        const std::string& draft, const Loaded& target, Loaded* loaded_draft) {
  c.spec.method = method;
  if (method == engine::SpecMethod::kDSpark) c.spec.dspark_checkpoint = tiny_model_path(draft);
  if (method != engine::SpecMethod::kDraftModel) return;
  if (draft == "llama-f32.gguf") {
    c.spec.draft_model = target.model;
    return;
  }
  *loaded_draft = load_model(tiny_model_path(draft));
  EXPECT_TRUE(loaded_draft->model) << loaded_draft->error;
  c.spec.draft_model = loaded_draft->model;
}

// Deterministic pseudo-random token ids in [0, vocab).
inline std::vector<int32_t> token_run(int n, int vocab, uint32_t seed) {
  std::vector<int32_t> out;
  uint32_t x = seed * 2654435761u + 12345u;
  for (int i = 0; i < n; ++i) {
    x = x * 1664525u + 1013904223u;
    out.push_back(static_cast<int32_t>((x >> 8) % uint32_t(vocab)));
  }
  return out;
}

// n prompts of varied lengths; every other one starts with a shared 20-token prefix.
inline std::vector<std::vector<int32_t>> mixed_prompts(int n, int vocab) {
  const std::vector<int32_t> shared = token_run(20, vocab, 999);
  std::vector<std::vector<int32_t>> prompts;
  for (int i = 0; i < n; ++i) {
    std::vector<int32_t> p;
    if (i % 2 == 0) p = shared;
    const std::vector<int32_t> own = token_run(5 + 7 * i % 31, vocab, uint32_t(i + 1));
    p.insert(p.end(), own.begin(), own.end());
    prompts.push_back(std::move(p));
  }
  return prompts;
}

}  // namespace dspark::test
