// ModelConfig from GGUF and config.json, and the load-time errors of broken model files.
#include <gtest/gtest.h>

#include "tiny_models.h"

namespace dspark::test {
namespace {

using Scaling = RopeParams::Scaling;

ModelConfig config_of(const std::string& name) {
  auto file = ModelFile::open(tiny_path(name));
  EXPECT_TRUE(file.ok()) << name << ": " << (file.ok() ? "" : file.error().message);
  if (!file.ok()) return {};
  auto c = ModelConfig::from_file(**file);
  EXPECT_TRUE(c.ok()) << name << ": " << (c.ok() ? "" : c.error().message);
  return c.ok() ? c.value() : ModelConfig{};
}

TEST(ModelConfig, GgufLlama) {
  const ModelConfig c = config_of("llama-q4_0.gguf");
  EXPECT_EQ(c.arch, Arch::Llama);
  EXPECT_STREQ(arch_name(c.arch), "llama");
  EXPECT_EQ(c.n_layers, 2);
  EXPECT_EQ(c.d_model, 64);
  EXPECT_EQ(c.n_heads, 4);
  EXPECT_EQ(c.n_kv_heads, 2);
  EXPECT_EQ(c.head_dim, 16);
  EXPECT_EQ(c.d_ff, 128);
  EXPECT_EQ(c.vocab_size, 400);
  EXPECT_EQ(c.context_length, 2048);
  EXPECT_FLOAT_EQ(c.rms_eps, 1e-5f);
  EXPECT_EQ(c.rope.layout, RopeLayout::Interleaved);  // q/k permuted by the converter
  EXPECT_EQ(c.rope.rot_dims, 16);
  EXPECT_FLOAT_EQ(c.rope.theta, 10000.0f);
  EXPECT_EQ(c.rope.scaling, Scaling::None);
  EXPECT_FALSE(c.tied_embeddings);
  EXPECT_FALSE(c.qkv_bias);
  EXPECT_FALSE(c.qk_norm);
  EXPECT_EQ(c.name, "tiny llama-q4_0.gguf");
}

TEST(ModelConfig, HfLlamaUsesNeoxLayout) {
  const ModelConfig c = config_of("llama-hf-f32");
  EXPECT_EQ(c.arch, Arch::Llama);
  EXPECT_EQ(c.rope.layout, RopeLayout::Neox);
  EXPECT_EQ(c.head_dim, 16);
  EXPECT_EQ(c.vocab_size, 400);
  EXPECT_EQ(c.context_length, 2048);
  EXPECT_FALSE(c.tied_embeddings);
  EXPECT_EQ(c.name, "llama-hf-f32");
}

TEST(ModelConfig, TiedEmbeddings) {
  const ModelConfig gguf = config_of("llama-tied-q4_1.gguf");
  EXPECT_TRUE(gguf.tied_embeddings);  // no output.weight
  EXPECT_EQ(gguf.n_layers, 3);
  EXPECT_FLOAT_EQ(gguf.rope.theta, 100000.0f);
  EXPECT_TRUE(config_of("llama-tied-hf-f16").tied_embeddings);  // tie_word_embeddings
  EXPECT_TRUE(config_of("qwen2-tied-hf-bf16").tied_embeddings);
}

TEST(ModelConfig, Qwen2AndQwen3) {
  const ModelConfig q2 = config_of("qwen2-q5_0.gguf");
  EXPECT_EQ(q2.arch, Arch::Qwen2);
  EXPECT_TRUE(q2.qkv_bias);
  EXPECT_FALSE(q2.qk_norm);
  EXPECT_EQ(q2.rope.layout, RopeLayout::Neox);
  EXPECT_FLOAT_EQ(q2.rms_eps, 1e-6f);
  EXPECT_FLOAT_EQ(q2.rope.theta, 1e6f);
  EXPECT_TRUE(config_of("qwen2-hf-f32").qkv_bias);

  for (const char* name : {"qwen3-q4_0.gguf", "qwen3-hf-f16-sharded"}) {
    const ModelConfig q3 = config_of(name);
    EXPECT_EQ(q3.arch, Arch::Qwen3) << name;
    EXPECT_EQ(q3.head_dim, 32) << name;  // attention.key_length / head_dim != d_model / heads
    EXPECT_EQ(q3.rope.rot_dims, 32) << name;
    EXPECT_TRUE(q3.qk_norm) << name;
    EXPECT_FALSE(q3.qkv_bias) << name;
    EXPECT_EQ(q3.rope.layout, RopeLayout::Neox) << name;
  }
}

TEST(ModelConfig, RopeScaling) {
  for (const char* name : {"llama-linear-bf16.gguf", "llama-linear-hf-f32"}) {
    const ModelConfig c = config_of(name);
    EXPECT_EQ(c.rope.scaling, Scaling::Linear) << name;
    EXPECT_FLOAT_EQ(c.rope.factor, 4.0f) << name;
  }
  const ModelConfig hf = config_of("llama3-scaling-hf-f32");
  EXPECT_EQ(hf.rope.scaling, Scaling::Llama3);
  EXPECT_FLOAT_EQ(hf.rope.factor, 8.0f);
  EXPECT_FLOAT_EQ(hf.rope.low_freq_factor, 1.0f);
  EXPECT_FLOAT_EQ(hf.rope.high_freq_factor, 4.0f);
  EXPECT_EQ(hf.rope.original_context, 64);
  // The GGUF twin only has rope_freqs.weight: the fitted parameters may differ from the
  // original ones but must give the same frequencies (checked by FormatsAgree in
  // forward_test.cpp).
  const ModelConfig gguf = config_of("llama3-scaling-f32.gguf");
  EXPECT_EQ(gguf.rope.scaling, Scaling::Llama3);
  EXPECT_FLOAT_EQ(gguf.rope.factor, 8.0f);
  for (const char* name : {"qwen2-yarn-hf-f32", "qwen2-yarn-q8_0.gguf"}) {
    const ModelConfig c = config_of(name);
    EXPECT_EQ(c.rope.scaling, Scaling::Yarn) << name;
    EXPECT_FLOAT_EQ(c.rope.factor, 4.0f) << name;
    EXPECT_EQ(c.rope.original_context, 256) << name;
    EXPECT_FLOAT_EQ(c.rope.yarn_beta_fast, 32.0f) << name;
    EXPECT_FLOAT_EQ(c.rope.yarn_beta_slow, 1.0f) << name;
  }
}

// Loading must fail with a message naming the problem.
void expect_load_error(const std::string& name, const std::vector<std::string>& parts) {
  auto file = ModelFile::open(tiny_path("broken/" + name));
  ASSERT_TRUE(file.ok()) << name << ": " << file.error().message;
  auto model = Model::load(file.value(), *make_cpu_backend(1));
  ASSERT_FALSE(model.ok()) << name << " loaded";
  for (const std::string& p : parts) {
    EXPECT_NE(model.error().message.find(p), std::string::npos)
        << name << ": '" << model.error().message << "' lacks '" << p << "'";
  }
}

TEST(ModelLoad, RejectsUnknownArchitecture) {
  expect_load_error("unknown-arch.gguf",
                    {"unsupported architecture 'gpt2'", "llama, qwen2, qwen3"});
  expect_load_error("hf-unknown-arch", {"GPT2LMHeadModel", "LlamaForCausalLM, Qwen2ForCausalLM"});
}

TEST(ModelLoad, RejectsMissingTensor) {
  expect_load_error("missing-tensor.gguf", {"missing tensor 'blk.1.ffn_up.weight'"});
  expect_load_error("hf-missing-lm-head", {"missing tensor 'lm_head.weight'"});
}

TEST(ModelLoad, RejectsWrongShape) {
  expect_load_error("wrong-shape.gguf", {"blk.0.attn_k.weight", "[16, 64]", "expected [32, 64]"});
}

TEST(ModelLoad, RejectsTypeItCannotCompute) {
  expect_load_error("bad-dtype.gguf", {"blk.0.ffn_gate.weight", "I32", "cannot compute"});
}

TEST(ModelLoad, RejectsUnsupportedRopeScaling) {
  expect_load_error("bad-rope-scaling.gguf", {"longrope", "llama.rope.scaling.type"});
}

TEST(ModelLoad, NullFile) {
  auto model = Model::load(nullptr, *make_cpu_backend(1));
  ASSERT_FALSE(model.ok());
  EXPECT_NE(model.error().message.find("no model file"), std::string::npos);
}

TEST(ModelLoad, ProgressAndWeightBytes) {
  auto file = ModelFile::open(tiny_path("llama-f32.gguf"));
  ASSERT_TRUE(file.ok()) << file.error().message;
  std::vector<std::pair<uint64_t, uint64_t>> calls;
  auto model = Model::load(file.value(), *make_cpu_backend(1), [&](uint64_t done, uint64_t total) {
    calls.push_back({done, total});
  });
  ASSERT_TRUE(model.ok()) << model.error().message;
  const uint64_t total = (*file)->total_tensor_bytes();
  ASSERT_FALSE(calls.empty());
  EXPECT_EQ(calls.back(), std::make_pair(total, total));
  for (size_t i = 1; i < calls.size(); ++i) EXPECT_LE(calls[i - 1].first, calls[i].first);
  // Untied F32 model: every tensor but the embedding matrix is read by each forward.
  const TensorInfo* embd = (*file)->tensor("token_embd.weight");
  ASSERT_NE(embd, nullptr);
  EXPECT_EQ((*model)->weight_bytes(), total - embd->n_bytes);
}

TEST(KvStorage, Sizes) {
  const ModelConfig c = config_of("qwen3-q4_0.gguf");
  KvStorage kv(c, 8, 5);
  EXPECT_EQ(kv.block_size(), 8);
  EXPECT_EQ(kv.n_blocks(), 5);
  EXPECT_EQ(kv.n_slots(), 40);
  EXPECT_EQ(kv.n_layers(), 2);
  EXPECT_EQ(kv.row_elems(), 2 * 32);
  EXPECT_EQ(KvStorage::bytes_per_block(c, 8), uint64_t(2 * 2 * 2 * 8 * 64));
  KvStorage empty(c, 0, 5);
  EXPECT_EQ(empty.n_slots(), 0);
}

TEST(ForwardBatch, AddTokenTakesSlotsFromTheBlockTable) {
  ForwardBatch b;
  b.seqs.push_back({{3, 1}, 2});  // blocks 3 and 1 of 4 slots; 2 tokens cached
  b.seqs.push_back({{0}, 0});
  b.add_token(10, 2, 0, 4, false);
  b.add_token(11, 0, 1, 4, true);
  b.add_token(12, 3, 0, 4, true);
  b.add_token(13, 4, 0, 4, false);
  b.add_token(14, 5, 0, 4, false);
  b.add_token(15, 6, 0, 4, false);
  b.add_token(16, 7, 0, 4, false);
  b.add_token(17, 8, 0, 4, false);  // logical index 8: past the table
  b.add_token(18, 0, 7, 4, false);  // no such sequence
  EXPECT_EQ(b.tokens, (std::vector<int32_t>{10, 11, 12, 13, 14, 15, 16, 17, 18}));
  EXPECT_EQ(b.positions, (std::vector<int32_t>{2, 0, 3, 4, 5, 6, 7, 8, 0}));
  EXPECT_EQ(b.seq, (std::vector<int32_t>{0, 1, 0, 0, 0, 0, 0, 0, 7}));
  EXPECT_EQ(b.kv_slots, (std::vector<int32_t>{14, 0, 15, 4, 5, 6, 7, -1, -1}));
  EXPECT_EQ(b.logit_rows, (std::vector<int32_t>{1, 2}));
  EXPECT_TRUE(b.attend.empty());
}

}  // namespace
}  // namespace dspark::test
