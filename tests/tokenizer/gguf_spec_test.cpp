// Tokenizers from GGUF metadata (tiny in-memory GGUF files): both models, token types,
// BOS/EOS rules, pre-tokenizer presets, and errors for bad metadata.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>

#include "test_util.h"
#include "tokenizer/loaders.h"

namespace dspark::tok {
namespace {

using testing::GgufWriter;

Result<std::unique_ptr<Tokenizer>> load(const GgufWriter& w) {
  const std::vector<uint8_t> bytes = w.bytes();
  auto file = ModelFile::parse_gguf_bytes(bytes.data(), bytes.size());
  if (!file.ok()) return file.error();
  return Tokenizer::from_model_file(*file.value());
}

// Byte-level vocabulary: the 256 byte spellings, "Ġt", "he", "Ġthe", control/user/unused
// tokens, and "12".
GgufWriter byte_level_gguf(const std::string& pre) {
  std::vector<std::string> tokens;
  for (int b = 0; b < 256; ++b) tokens.push_back(bytes_to_byte_level(std::string(1, char(b))));
  tokens.insert(tokens.end(), {"\xC4\xA0t", "he", "\xC4\xA0the", "<|im_start|>", "<|im_end|>",
                               "<think>", "[PAD]", "12"});
  std::vector<int32_t> types(tokens.size(), 1);
  types[259] = 3;
  types[260] = 3;
  types[261] = 4;
  types[262] = 5;
  GgufWriter w;
  w.add_string("general.architecture", "llama");
  w.add_string("tokenizer.ggml.model", "gpt2");
  w.add_string("tokenizer.ggml.pre", pre);
  w.add_strings("tokenizer.ggml.tokens", tokens);
  w.add_i32s("tokenizer.ggml.token_type", types);
  w.add_strings("tokenizer.ggml.merges", {"\xC4\xA0 t", "h e", "\xC4\xA0t he", "1 2"});
  w.add_u32("tokenizer.ggml.bos_token_id", 259);
  w.add_u32("tokenizer.ggml.eos_token_id", 260);
  return w;
}

TEST(GgufSpec, ByteLevelWithSpecialTokens) {
  GgufWriter w = byte_level_gguf("gpt2");
  w.add_bool("tokenizer.ggml.add_bos_token", false);
  auto t = load(w);
  ASSERT_TRUE(t.ok()) << t.error().message;
  const Tokenizer& tok = *t.value();
  EXPECT_EQ(tok.kind(), TokenizerKind::ByteLevelBpe);
  EXPECT_EQ(tok.encode("<|im_start|>the the<think>", false, true),
            (std::vector<int32_t>{259, 't', 257, 258, 261}));
  // Control tokens need parse_special; user-defined ones are always whole.
  const auto plain = tok.encode("<|im_start|><think>", false, false);
  EXPECT_EQ(plain.back(), 261);
  EXPECT_EQ(std::count(plain.begin(), plain.end(), 259), 0);
  EXPECT_EQ(tok.encode("the", true, false), (std::vector<int32_t>{'t', 257}));
  EXPECT_EQ(tok.bos_id(), 259);
  EXPECT_EQ(tok.eos_id(), 260);
  EXPECT_TRUE(tok.is_special(259));
  EXPECT_FALSE(tok.is_special(261));
  EXPECT_EQ(tok.stop_ids(), (std::vector<int32_t>{260}));
}

TEST(GgufSpec, Presets) {
  for (const char* pre : {"gpt2", "default", "llama-bpe", "qwen2", "smollm"}) {
    auto t = load(byte_level_gguf(pre));
    ASSERT_TRUE(t.ok()) << pre << ": " << t.error().message;
  }
  // smollm splits digits one by one; gpt2 keeps " 12" one piece, so the "1 2" merge applies.
  auto smol = load(byte_level_gguf("smollm"));
  auto gpt2 = load(byte_level_gguf("gpt2"));
  EXPECT_EQ(smol.value()->encode("a 12", false, false), (std::vector<int32_t>{'a', ' ', '1', '2'}));
  EXPECT_EQ(gpt2.value()->encode("a 12", false, false), (std::vector<int32_t>{'a', ' ', 263}));
  // llama-bpe adds BOS by default.
  auto llama3 = load(byte_level_gguf("llama-bpe"));
  EXPECT_EQ(llama3.value()->encode("he", true, false), (std::vector<int32_t>{259, 257}));
  auto bad = load(byte_level_gguf("no-such-pre"));
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message.find("no-such-pre"), std::string::npos);
  // The error lists the supported names.
  EXPECT_NE(bad.error().message.find("deepseek-coder"), std::string::npos);
}

TEST(GgufSpec, EveryTablePresetBuilds) {
  const std::vector<std::string> names = gguf_pre_names();
  for (const char* expected :
       {"gpt-2",      "deepseek-llm", "deepseek-coder", "deepseek-v3",  "mpt",       "starcoder",
        "refact",     "command-r",    "olmo",           "dbrx",         "smaug-bpe", "poro-chat",
        "jais",       "stablelm2",    "tekken",         "chatglm-bpe",  "viking",    "jina-v2-es",
        "jina-v2-de", "jina-v2-code", "bloom",          "gpt3-finnish", "exaone",    "falcon3",
        "megrez",     "gpt-4o",       "falcon",         "bailingmoe",   "seed-coder"}) {
    EXPECT_NE(std::find(names.begin(), names.end(), expected), names.end()) << expected;
  }
  for (const std::string& pre : names) {
    EXPECT_EQ(std::count(names.begin(), names.end(), pre), 1) << pre << " listed twice";
    auto t = load(byte_level_gguf(pre));
    ASSERT_TRUE(t.ok()) << pre << ": " << t.error().message;
    // Every pipeline keeps the bytes: "the 12" decodes back to itself.
    const auto ids = t.value()->encode("the 12", false, false);
    EXPECT_EQ(t.value()->decode(ids, false), "the 12") << pre;
  }
}

TEST(GgufSpec, PresetFlags) {
  // tekken: BOS by default; chatglm-bpe: never BOS; jina-v2-code: SEP after the text.
  auto tekken = load(byte_level_gguf("tekken"));
  EXPECT_EQ(tekken.value()->encode("he", true, false), (std::vector<int32_t>{259, 257}));
  GgufWriter glm = byte_level_gguf("chatglm-bpe");
  glm.add_bool("tokenizer.ggml.add_bos_token", true);
  EXPECT_EQ(load(glm).value()->encode("he", true, false), (std::vector<int32_t>{257}));
  GgufWriter jina = byte_level_gguf("jina-v2-code");
  jina.add_u32("tokenizer.ggml.seperator_token_id", 260);
  EXPECT_EQ(load(jina).value()->encode("he", true, false), (std::vector<int32_t>{257, 260}));
  jina.add_bool("tokenizer.ggml.add_sep_token", false);
  EXPECT_EQ(load(jina).value()->encode("he", true, false), (std::vector<int32_t>{257}));
  // deepseek-coder splits digits one by one, falcon keeps a run whole.
  auto coder = load(byte_level_gguf("deepseek-coder"));
  auto falcon = load(byte_level_gguf("falcon"));
  EXPECT_EQ(coder.value()->encode("12", false, false), (std::vector<int32_t>{'1', '2'}));
  EXPECT_EQ(falcon.value()->encode("12", false, false), (std::vector<int32_t>{263}));
}

// SentencePiece vocabulary: <unk> <s> </s>, the 256 byte tokens, then ▁ h i hi ▁hi with scores.
GgufWriter spm_gguf(const std::string& arch, bool with_ids = true) {
  const std::string m = "\xE2\x96\x81";
  std::vector<std::string> tokens = {"<unk>", "<s>", "</s>"};
  std::vector<int32_t> types = {2, 3, 3};
  std::vector<float> scores = {0, 0, 0};
  for (int b = 0; b < 256; ++b) {
    char buf[8];
    std::snprintf(buf, sizeof(buf), "<0x%02X>", b);
    tokens.push_back(buf);
    types.push_back(6);
    scores.push_back(0);
  }
  for (const auto& [p, s] : std::vector<std::pair<std::string, float>>{
           {m, -1}, {"h", -2}, {"i", -3}, {"hi", -4}, {m + "hi", -5}}) {
    tokens.push_back(p);
    types.push_back(1);
    scores.push_back(s);
  }
  GgufWriter w;
  w.add_string("general.architecture", arch);
  w.add_string("tokenizer.ggml.model", "llama");
  w.add_strings("tokenizer.ggml.tokens", tokens);
  w.add_i32s("tokenizer.ggml.token_type", types);
  w.add_f32s("tokenizer.ggml.scores", scores);
  if (with_ids) {
    w.add_u32("tokenizer.ggml.bos_token_id", 1);
    w.add_u32("tokenizer.ggml.eos_token_id", 2);
    w.add_u32("tokenizer.ggml.unknown_token_id", 0);
  }
  return w;
}

TEST(GgufSpec, SentencePieceFromScores) {
  const std::string m = "\xE2\x96\x81";
  auto t = load(spm_gguf("llama"));
  ASSERT_TRUE(t.ok()) << t.error().message;
  const Tokenizer& tok = *t.value();
  const int32_t mark_hi = tok.token_id(m + "hi");
  EXPECT_EQ(tok.kind(), TokenizerKind::SentencePieceBpe);
  // BOS by default for SentencePiece files; "!" falls back to its byte token.
  EXPECT_EQ(tok.encode("hi!", true, false), (std::vector<int32_t>{1, mark_hi, 3 + '!'}));
  EXPECT_EQ(tok.decode({1, mark_hi, 3 + '!'}, false), "hi!");
  EXPECT_EQ(tok.encode("</s>", false, true), (std::vector<int32_t>{2}));
  EXPECT_EQ(tok.stop_ids(), (std::vector<int32_t>{2}));
}

TEST(GgufSpec, SentencePieceFamilyDefaults) {
  const std::string m = "\xE2\x96\x81";
  // No add_space_prefix key: Llama prepends "▁", Gemma does not; the key overrides both.
  auto llama = load(spm_gguf("llama"));
  auto gemma = load(spm_gguf("gemma3"));
  GgufWriter keyed = spm_gguf("gemma3");
  keyed.add_bool("tokenizer.ggml.add_space_prefix", true);
  auto gemma_keyed = load(keyed);
  ASSERT_TRUE(llama.ok() && gemma.ok() && gemma_keyed.ok());
  const int32_t hi = gemma.value()->token_id("hi");
  const int32_t mark_hi = gemma.value()->token_id(m + "hi");
  EXPECT_EQ(llama.value()->encode("hi", false, false), (std::vector<int32_t>{mark_hi}));
  EXPECT_EQ(gemma.value()->encode("hi", false, false), (std::vector<int32_t>{hi}));
  EXPECT_EQ(gemma_keyed.value()->encode("hi", false, false), (std::vector<int32_t>{mark_hi}));
  // Without prefix nothing is stripped on decode: " hi" stays " hi".
  EXPECT_EQ(gemma.value()->decode({mark_hi}, false), " hi");
  EXPECT_EQ(llama.value()->decode({mark_hi}, false), "hi");
  // No BOS/EOS/UNK keys: llama.cpp's SentencePiece defaults <unk> 0, <s> 1, </s> 2.
  auto bare = load(spm_gguf("llama", /*with_ids=*/false));
  ASSERT_TRUE(bare.ok()) << bare.error().message;
  EXPECT_EQ(bare.value()->bos_id(), 1);
  EXPECT_EQ(bare.value()->eos_id(), 2);
  EXPECT_EQ(bare.value()->encode("hi", true, false), (std::vector<int32_t>{1, mark_hi}));
}

std::string load_error(const GgufWriter& w) {
  auto r = load(w);
  return r.ok() ? "(loaded)" : r.error().message;
}

// A small SentencePiece GGUF without the key named `left_out`, which set() may add back.
GgufWriter spm_with(const std::string& left_out, const std::function<void(GgufWriter*)>& set) {
  const std::string& key = left_out;
  GgufWriter w;
  w.add_string("general.architecture", "llama");
  w.add_string("tokenizer.ggml.model", "llama");
  std::vector<std::string> tokens = {"<unk>", "<s>", "</s>", "a", "b", "ab"};
  if (key != "tokens") w.add_strings("tokenizer.ggml.tokens", tokens);
  if (key != "types") w.add_i32s("tokenizer.ggml.token_type", {2, 3, 3, 1, 1, 1});
  if (key != "scores") w.add_f32s("tokenizer.ggml.scores", {0, 0, 0, -1, -2, -3});
  set(&w);
  return w;
}

TEST(GgufSpec, BadSentencePieceMetadataIsAnError) {
  auto nothing = [](GgufWriter*) {};
  EXPECT_EQ(load_error(spm_with("", nothing)), "(loaded)");
  EXPECT_NE(load_error(spm_with("scores", nothing)).find("needs tokenizer.ggml.scores"),
            std::string::npos);
  const std::string short_scores = load_error(spm_with("scores", [](GgufWriter* w) {
    w->add_f32s("tokenizer.ggml.scores", {0, 0});
  }));
  EXPECT_NE(short_scores.find("2 scores in tokenizer.ggml.scores for 6 tokens"), std::string::npos)
      << short_scores;
  const std::string nan_score = load_error(spm_with("scores", [](GgufWriter* w) {
    w->add_f32s("tokenizer.ggml.scores", {0, 0, 0, -1, std::nanf(""), -3});
  }));
  EXPECT_NE(nan_score.find("token 4 has a non-finite score"), std::string::npos) << nan_score;
  const std::string bad_type = load_error(spm_with("types", [](GgufWriter* w) {
    w->add_i32s("tokenizer.ggml.token_type", {2, 3, 3, 1, 9, 1});
  }));
  EXPECT_NE(bad_type.find("token 4 has type 9"), std::string::npos) << bad_type;
  const std::string few_types = load_error(
      spm_with("types", [](GgufWriter* w) { w->add_i32s("tokenizer.ggml.token_type", {1}); }));
  EXPECT_NE(few_types.find("1 token types for 6 tokens"), std::string::npos) << few_types;
}

TEST(GgufSpec, BadMetadataIsAnError) {
  GgufWriter no_model;
  no_model.add_strings("tokenizer.ggml.tokens", {"a"});
  EXPECT_FALSE(load(no_model).ok());

  GgufWriter bad_model;
  bad_model.add_string("tokenizer.ggml.model", "bert");
  bad_model.add_strings("tokenizer.ggml.tokens", {"a"});
  auto r = load(bad_model);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("bert"), std::string::npos);

  GgufWriter bad_eos = byte_level_gguf("gpt2");
  bad_eos.add_u32("tokenizer.ggml.eot_token_id", 99999);
  EXPECT_FALSE(load(bad_eos).ok());

  GgufWriter bad_types;
  bad_types.add_string("tokenizer.ggml.model", "gpt2");
  bad_types.add_strings("tokenizer.ggml.tokens", {"a", "b"});
  bad_types.add_i32s("tokenizer.ggml.token_type", {1});
  bad_types.add_strings("tokenizer.ggml.merges", {});
  EXPECT_FALSE(load(bad_types).ok());

  GgufWriter w;
  w.add_string("tokenizer.ggml.model", "gpt2");
  w.add_strings("tokenizer.ggml.tokens", {"a", "b"});
  w.add_strings("tokenizer.ggml.merges", {"ab"});
  r = load(w);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("malformed merge"), std::string::npos);
}

}  // namespace
}  // namespace dspark::tok
