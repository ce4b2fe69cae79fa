// Loading tokenizer.json (and the side files beside it); malformed files are errors, not crashes.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "test_util.h"

namespace dspark::tok {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

class HfJson : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("dspark_tok_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string write(const std::string& name, const std::string& text) {
    const fs::path p = dir_ / name;
    std::ofstream(p) << text;
    return p.string();
  }

  // Byte-level vocabulary with merges "a b" -> "ab" and "Ġ ab" -> "Ġab", Qwen2-style pipeline.
  static json qwen_like() {
    json vocab = json::object();
    for (int b = 0; b < 256; ++b) vocab[bytes_to_byte_level(std::string(1, char(b)))] = b;
    vocab["ab"] = 256;
    vocab
        ["\xC4\xA0"
         "ab"] = 257;
    json j;
    j["version"] = "1.0";
    j["added_tokens"] = json::array(
        {{{"id", 258}, {"content", "<|bos|>"}, {"special", true}, {"normalized", false}},
         {{"id", 259}, {"content", "<|im_end|>"}, {"special", true}, {"normalized", false}},
         {{"id", 260}, {"content", "<tool>"}, {"special", false}, {"normalized", false}}});
    j["normalizer"] = {{"type", "NFC"}};
    j["pre_tokenizer"] = {
        {"type", "Sequence"},
        {"pretokenizers",
         json::array(
             {{{"type", "Split"},
               {"pattern", {{"Regex", R"(\p{N}| ?\p{L}+|\s+|[^\s\p{L}\p{N}]+)"}}},
               {"behavior", "Isolated"},
               {"invert", false}},
              {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", false}}})}};
    j["post_processor"] = {
        {"type", "TemplateProcessing"},
        {"single", json::array({{{"SpecialToken", {{"id", "<|bos|>"}, {"type_id", 0}}}},
                                {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}})},
        {"special_tokens", {{"<|bos|>", {{"id", "<|bos|>"}, {"ids", {258}}}}}}};
    j["decoder"] = {{"type", "ByteLevel"}};
    j["model"] = {{"type", "BPE"},
                  {"vocab", vocab},
                  {"merges", json::array({json::array({"a", "b"}), "\xC4\xA0 ab"})}};
    return j;
  }

  fs::path dir_;
};

TEST_F(HfJson, LoadsAndEncodes) {
  auto t = Tokenizer::from_hf_json(write("tokenizer.json", qwen_like().dump()));
  ASSERT_TRUE(t.ok()) << t.error().message;
  const Tokenizer& tok = *t.value();
  EXPECT_EQ(tok.kind(), TokenizerKind::ByteLevelBpe);
  EXPECT_EQ(tok.vocab_size(), 261);
  // " ab" -> "Ġab"; "12" -> digits one by one; "e\u0301" -> NFC "é" (2 byte tokens).
  EXPECT_EQ(tok.encode("ab ab12", false, false), (std::vector<int32_t>{256, 257, '1', '2'}));
  EXPECT_EQ(tok.encode("ab", true, false), (std::vector<int32_t>{258, 256}));
  EXPECT_EQ(tok.encode("e\xCC\x81", false, false), (std::vector<int32_t>{0xC3, 0xA9}));
  EXPECT_EQ(tok.encode("<|im_end|><tool>", false, true), (std::vector<int32_t>{259, 260}));
  EXPECT_EQ(tok.encode("<tool>", false, false), (std::vector<int32_t>{260}));
  EXPECT_EQ(tok.decode({258, 256, 257}, false), "ab ab");
  EXPECT_EQ(tok.stop_ids(), (std::vector<int32_t>{259}));
}

TEST_F(HfJson, PunctuationPreTokenizer) {
  // Falcon's first step: a run of punctuation is its own piece ("ab!!ab" -> ab, !, !, ab); an
  // unknown behaviour is an error.
  json j = qwen_like();
  j["normalizer"] = nullptr;
  j["pre_tokenizer"] = {
      {"type", "Sequence"},
      {"pretokenizers", json::array({{{"type", "Punctuation"}, {"behavior", "Contiguous"}},
                                     {{"type", "ByteLevel"}, {"add_prefix_space", false}}})}};
  auto t = Tokenizer::from_hf_json(write("tokenizer.json", j.dump()));
  ASSERT_TRUE(t.ok()) << t.error().message;
  EXPECT_EQ(t.value()->encode("ab!!ab", false, false), (std::vector<int32_t>{256, '!', '!', 256}));
  j["pre_tokenizer"] = {{"type", "Punctuation"}, {"behavior", "Sideways"}};
  EXPECT_FALSE(Tokenizer::from_hf_json(write("tokenizer.json", j.dump())).ok());
}

TEST_F(HfJson, SideFilesSetBosEosAndStops) {
  write("tokenizer_config.json",
        R"({"bos_token": {"content": "<|bos|>"}, "eos_token": "<|im_end|>",
            "add_bos_token": false})");
  write("generation_config.json", R"({"eos_token_id": [259, 260]})");
  auto t = Tokenizer::from_hf_json(write("tokenizer.json", qwen_like().dump()));
  ASSERT_TRUE(t.ok()) << t.error().message;
  EXPECT_EQ(t.value()->bos_id(), 258);
  EXPECT_EQ(t.value()->eos_id(), 259);
  EXPECT_EQ(t.value()->encode("ab", true, false), (std::vector<int32_t>{256}));  // no BOS now
  EXPECT_EQ(t.value()->stop_ids(), (std::vector<int32_t>{259, 260}));
}

TEST_F(HfJson, SafetensorsFolderUsesItsTokenizerJson) {
  write("tokenizer.json", qwen_like().dump());
  write("config.json", R"({"bos_token_id": 258, "eos_token_id": 259})");
  // model.safetensors: 8-byte header length, JSON header, one F32 value.
  const std::string header = R"({"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}})";
  std::string st(8, '\0');
  for (int i = 0; i < 8; ++i) st[i] = static_cast<char>((header.size() >> (8 * i)) & 0xFF);
  st += header + std::string(4, '\0');
  write("model.safetensors", st);
  auto file = ModelFile::open(dir_.string());
  ASSERT_TRUE(file.ok()) << file.error().message;
  ASSERT_EQ(file.value()->format(), FileFormat::Safetensors);
  auto t = Tokenizer::from_model_file(*file.value());
  ASSERT_TRUE(t.ok()) << t.error().message;
  EXPECT_EQ(t.value()->bos_id(), 258);  // from config.json: no tokenizer_config.json here
  EXPECT_EQ(t.value()->eos_id(), 259);
  EXPECT_EQ(t.value()->encode("ab ab", false, false), (std::vector<int32_t>{256, 257}));
}

TEST_F(HfJson, SentencePieceStyle) {
  const std::string m = "\xE2\x96\x81";
  json vocab = {{"<unk>", 0}, {"<s>", 1},   {"</s>", 2}, {m, 3},        {"h", 4},
                {"i", 5},     {m + "h", 6}, {"hi", 7},   {m + "hi", 8}, {"<0x21>", 9}};
  json j;
  j["added_tokens"] = json::array({{{"id", 1}, {"content", "<s>"}, {"special", true}}});
  j["normalizer"] = {
      {"type", "Sequence"},
      {"normalizers",
       json::array({{{"type", "Prepend"}, {"prepend", m}},
                    {{"type", "Replace"}, {"pattern", {{"String", " "}}}, {"content", m}}})}};
  j["pre_tokenizer"] = nullptr;
  j["decoder"] = {
      {"type", "Sequence"},
      {"decoders",
       json::array({{{"type", "Replace"}, {"pattern", {{"String", m}}}, {"content", " "}},
                    {{"type", "ByteFallback"}},
                    {{"type", "Fuse"}},
                    {{"type", "Strip"}, {"content", " "}, {"start", 1}, {"stop", 0}}})}};
  j["model"] = {{"type", "BPE"},        {"vocab", vocab},
                {"unk_token", "<unk>"}, {"byte_fallback", true},
                {"fuse_unk", true},     {"merges", json::array({"h i", m + " hi", m + " h"})}};
  auto t = Tokenizer::from_hf_json(write("tokenizer.json", j.dump()));
  ASSERT_TRUE(t.ok()) << t.error().message;
  const Tokenizer& tok = *t.value();
  EXPECT_EQ(tok.kind(), TokenizerKind::SentencePieceBpe);
  EXPECT_EQ(tok.encode("hi hi!", false, false), (std::vector<int32_t>{8, 8, 9}));
  EXPECT_EQ(tok.encode("x", false, false), (std::vector<int32_t>{3, 0}));
  EXPECT_EQ(tok.decode({8, 8, 9}, false), "hi hi!");
}

TEST_F(HfJson, MalformedFilesAreErrors) {
  auto expect_error = [&](const std::string& text, const std::string& needle) {
    auto t = Tokenizer::from_hf_json(write("tokenizer.json", text));
    ASSERT_FALSE(t.ok()) << text;
    EXPECT_NE(t.error().message.find(needle), std::string::npos) << t.error().message;
  };
  expect_error("{", "not a valid JSON");
  expect_error("[]", "not a valid JSON");
  expect_error(R"({"model": {"type": "WordPiece", "vocab": {}}})", "WordPiece");
  json j = qwen_like();
  j["pre_tokenizer"] = {{"type", "Whitespace"}};
  expect_error(j.dump(), "Whitespace");
  j = qwen_like();
  j["model"]["vocab"]["ab"] = "x";
  expect_error(j.dump(), "bad id");
  j = qwen_like();
  j["model"]["merges"] = json::array({"zz"});
  expect_error(j.dump(), "malformed merge");
  j = qwen_like();
  j["added_tokens"] = json::array({{{"id", -3}, {"content", "x"}}});
  expect_error(j.dump(), "malformed added token");
  j = qwen_like();
  j["normalizer"] = {{"type", "Sequence"}, {"normalizers", json::array({{{"type", "NFKC"}}})}};
  expect_error(j.dump(), "NFKC");
  auto missing = Tokenizer::from_hf_json((dir_ / "absent.json").string());
  EXPECT_FALSE(missing.ok());
}

}  // namespace
}  // namespace dspark::tok
